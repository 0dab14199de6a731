// Blueprints: an operator's service model. Components per tier with
// per-architecture profiles, connections with bandwidth and latency
// budgets, policies, and a demand model written as expressions over order
// parameters. A blueprint is validated and compiled once (schema, then
// semantic checks, every problem with its JSON pointer); evaluating it for
// an order's parameters then yields each component's demand.
#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cpn/core/document.hpp"
#include "cpn/expr/expr.hpp"

namespace cpn::blueprint {

inline constexpr const char* kBlueprint = "blueprint";
inline constexpr const char* kComponentTemplate = "component-template";

// What a blueprint may refer to outside itself.
struct Context {
  // The spec of component template "name@version", or null if unknown.
  std::function<const Json*(const std::string& ref)> find_template;
  std::set<std::string> accelerator_models;  // known models (ratings table and inventory)
};

struct Profile {
  std::string arch;
  std::string accelerator;  // empty: CPU only
  double capacity = 0;      // work units one instance serves
  double cpu = 0;           // cores
  double memory = 0;        // GiB
  int accelerators = 0;
  double latency_ms = 0;    // processing latency of one item
};

struct Component {
  std::string name, tier, image, model;
  bool training = false;
  int min_instances = 0;
  int spread_min_nodes = 2;  // instances >= 2 use at least this many nodes
  expr::Expression demand;
  std::vector<Profile> profiles;
};

struct Connection {
  std::string from, to;
  expr::Expression bandwidth_mbps;
  std::optional<expr::Expression> max_latency_ms;
  bool async = false;  // off the end-to-end latency path
};

class Blueprint {
 public:
  // doc is a Blueprint document; templates are expanded (the component's
  // own fields override the template's, objects merged field by field).
  static Result<Blueprint> compile(const Json& doc, const Context& context);

  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }
  const Json& document() const { return document_; }  // as written
  const Json& expanded() const { return expanded_; }  // templates applied, quantities numeric
  const std::vector<Component>& components() const { return components_; }
  const std::vector<Connection>& connections() const { return connections_; }

  // Checks parameters against their declarations (type, range, enum),
  // fills defaults; pointers under base ("/parameters/streams"). An order
  // binds strictly: a parameter declared `required` must be given. Trying a
  // blueprint does not: what is missing is listed instead.
  enum class Mode { order, trial };
  Result<std::map<std::string, expr::Value>> bind(const Json& parameters, const std::string& base,
                                                  Mode mode = Mode::order) const;
  // Declared `required`, without a default, and not in parameters.
  std::vector<std::string> missing_required(const Json& parameters) const;

  // Every derived value and each component's demand, bandwidth and
  // latency budget, with the expression that produced it (a trial: see
  // `missing_required` in the answer).
  Result<Json> evaluate(const Json& parameters) const;

 private:
  std::string name_, version_;
  Json document_, expanded_;
  expr::DerivedSet derived_;
  std::vector<Component> components_;
  std::vector<Connection> connections_;
  std::optional<expr::Expression> slo_latency_;
  std::optional<expr::Expression> requests_per_second_;  // metering: what a per_request bill counts
  std::vector<std::pair<std::size_t, expr::Expression>> policy_budgets_;  // policy index, max_per_hour
};

// The id under which a version is stored: "name@version".
std::string version_id(const std::string& name, const std::string& version);

// A list of the differences between two documents, as JSON Patch (RFC 6902).
Json diff(const Json& from, const Json& to);

}  // namespace cpn::blueprint
