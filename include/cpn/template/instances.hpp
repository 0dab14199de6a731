// Instance identity. Each placement of a deployment's template lists the
// ids of its instances (`instance_ids`, assigned by cpnd, never by a
// submitter). Ids are `<deployment>-<component>-<ordinal>` with ordinals
// from a per-component counter that only goes up (`next_ordinal` in the
// deployment), so an id is never reused: an instance replaced, moved or
// retired leaves every other id where it was.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cpn/core/document.hpp"

namespace cpn::templates {

// The ids of each placement of a component, in template order. A
// placement recorded before ids were kept has the positional ids its
// instances were created under (<deployment>-<component>-<k>, k counted
// over the component's placements).
std::vector<std::vector<std::string>> placement_ids(const std::string& deployment, const Json& component);
// The same, flattened.
std::vector<std::string> instance_ids(const std::string& deployment, const Json& component);

// Writes the ids of every placement of a deployment's template that lacks
// them (positional ones, which is what provisioning assigns and what older
// records were created under) and sets its counters past every id in use.
void assign_ids(Json& deployment_body);
// A fresh id for one more instance of a component (the counter moves on).
std::string next_id(Json& deployment_body, const std::string& component);

// Takes one instance out of a component's placements: its placement loses
// one instance (and the instance's share of capacity), or goes when it was
// the last. Answers that one instance as a placement of its own (for a
// retiring entry), or nothing when the id is not there.
std::optional<Json> take_out(Json& component, const std::string& instance_id);

}  // namespace cpn::templates
