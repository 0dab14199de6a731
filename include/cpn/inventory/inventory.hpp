// The compute power network's inventory: sites (centre, edge, end), their
// nodes of many architectures with accelerators, and the links between
// sites. Backed by the engine; bulk import and export as a Topology document.
#pragma once

#include <functional>

#include "cpn/inventory/measurement.hpp"
#include "cpn/resource/collection.hpp"

namespace cpn::inventory {

inline constexpr const char* kSite = "site";
inline constexpr const char* kNode = "node";
inline constexpr const char* kLink = "link";
inline constexpr const char* kMeasurement = "measurement";

struct ImportSummary {
  int created = 0;
  int updated = 0;
  int unchanged = 0;
  std::int64_t resource_version = 0;  // after the import
  Json to_json() const;
};

class Inventory {
 public:
  explicit Inventory(engine::Engine& engine);

  resource::Collection& sites() { return sites_; }
  resource::Collection& nodes() { return nodes_; }
  resource::Collection& links() { return links_; }

  // All-or-nothing: every problem of the document is reported with its
  // pointer and nothing is written; re-import upserts; an unchanged object
  // is not written at all (an import of the export changes nothing).
  Result<ImportSummary> import_topology(const Json& document);
  Json export_topology() const;

  // Total, allocated and free per resource, architecture and accelerator.
  Result<Json> site_capacity(const std::string& site_id) const;

  // cordon: no new placements; uncordon: ready again; drain: cordon and
  // move workloads away (the orchestrator evicts what runs there).
  Result<Json> set_node_state(const std::string& id, const std::string& state, const std::string& event_type,
                              std::optional<std::int64_t> if_match);

  Measurement measurement() const;

  // What answers a site's `conditions` (its driver's view of its controller).
  void set_site_condition(std::function<Json(const std::string& site)> condition) {
    site_condition_ = std::move(condition);
  }

 private:
  engine::Engine& engine_;
  std::function<Json(const std::string&)> site_condition_;
  resource::Collection sites_;
  resource::Collection nodes_;
  resource::Collection links_;
};

// Normalises one node body in place (quantities to numbers, defaults) and
// returns what is wrong, with pointers under base.
std::vector<FieldError> normalize_node(Json& node, const std::string& base);
std::vector<FieldError> normalize_site(Json& site, const std::string& base);
std::vector<FieldError> normalize_link(Json& link, const std::string& base);
std::string link_id(const Json& link);

}  // namespace cpn::inventory
