// Compiling a blueprint: schema, template expansion, then the semantic
// checks, every problem with its pointer, reported together.
#include <fmt/format.h>

#include "cpn/blueprint/blueprint.hpp"
#include "cpn/core/quantity.hpp"
#include "cpn/schema/schema.hpp"

namespace cpn::blueprint {
namespace {

const std::set<std::string> kArchs = {"x86_64", "aarch64", "riscv64"};
const std::set<std::string> kTiers = {"center", "edge", "end"};

std::string expr_text(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

expr::Type param_type(const Json& decl) {
  std::string t = decl.value("type", "number");
  if (t == "string") return expr::Type::string;
  if (t == "boolean") return expr::Type::boolean;
  return expr::Type::number;
}

struct Compiler {
  const Context& ctx;
  std::vector<FieldError> errs;

  void problem(std::string pointer, std::string message) { errs.push_back({std::move(pointer), std::move(message)}); }

  // Parses and type-checks one expression field; it must give a number.
  std::optional<expr::Expression> number_expr(const Json& v, const std::string& pointer,
                                              const std::map<std::string, expr::Type>& scope) {
    auto e = expr::Expression::parse(expr_text(v));
    if (!e) {
      problem(pointer, e.error().message);
      return std::nullopt;
    }
    auto t = e->check(scope);
    if (!t) {
      problem(pointer, t.error().message);
      return std::nullopt;
    }
    if (*t != expr::Type::number) {
      problem(pointer, fmt::format("must give a number, not a {}", expr::type_name(*t)));
      return std::nullopt;
    }
    return *e;
  }
};

}  // namespace

std::string version_id(const std::string& name, const std::string& version) { return name + "@" + version; }

Result<Blueprint> Blueprint::compile(const Json& doc, const Context& ctx) {
  Compiler c{ctx, schema::problems("blueprint", doc)};
  if (!doc.is_object()) return fail(Error::invalid_document("blueprint", std::move(c.errs)));
  bool schema_ok = c.errs.empty();
  Blueprint bp;
  bp.document_ = doc;
  bp.name_ = doc.value("/metadata/name"_json_pointer, "");
  bp.version_ = doc.value("/metadata/version"_json_pointer, "");

  // Parameters: their types make the scope of every expression.
  std::map<std::string, expr::Type> params;
  const Json declared = doc.value("parameters", Json::object());
  for (const auto& [name, decl] : declared.items()) {
    if (!decl.is_object()) continue;
    params[name] = param_type(decl);
    std::string base = "/parameters/" + pointer_token(name);
    if (decl.contains("default")) {
      const Json& d = decl["default"];
      bool fits = params[name] == expr::Type::string ? d.is_string()
                  : params[name] == expr::Type::boolean ? d.is_boolean()
                                                        : d.is_number();
      if (!fits) c.problem(base + "/default", fmt::format("the default is not a {}", decl.value("type", "number")));
      else if (decl.contains("enum") && std::find(decl["enum"].begin(), decl["enum"].end(), d) == decl["enum"].end())
        c.problem(base + "/default", "the default is not one of the enum values");
      else if (d.is_number() && ((decl.contains("minimum") && d.get<double>() < decl["minimum"].get<double>()) ||
                                 (decl.contains("maximum") && d.get<double>() > decl["maximum"].get<double>())))
        c.problem(base + "/default", "the default is outside minimum..maximum");
    }
  }
  std::vector<std::pair<std::string, std::string>> derived;
  const Json derived_doc = doc.value("derived", Json::object());
  for (const auto& [name, text] : derived_doc.items())
    if (text.is_string() || text.is_number()) derived.emplace_back(name, expr_text(text));
  auto ds = expr::DerivedSet::compile(params, derived);
  if (!ds) {
    for (const auto& p : ds.error()) c.problem("/derived/" + pointer_token(p.name), p.message);
  } else {
    bp.derived_ = std::move(*ds);
  }
  // When the derived values fail, later expressions still see their names
  // (as numbers), so one mistake is reported once, not again downstream.
  std::map<std::string, expr::Type> fallback = params;
  if (!ds)
    for (const auto& [name, text] : derived) fallback.emplace(name, expr::Type::number);
  const auto& scope = ds ? bp.derived_.scope() : fallback;

  // Components, with templates expanded.
  bp.expanded_ = doc;
  Json& comps = bp.expanded_["components"];
  if (!comps.is_array()) comps = Json::array();
  std::set<std::string> names;
  for (std::size_t i = 0; i < comps.size(); ++i) {
    std::string base = fmt::format("/components/{}", i);
    Json& comp = comps[i];
    if (!comp.is_object()) continue;
    if (comp.contains("template") && comp["template"].is_string()) {
      std::string ref = comp["template"];
      const Json* spec = ctx.find_template ? ctx.find_template(ref) : nullptr;
      if (!spec) {
        c.problem(base + "/template", fmt::format("unknown component template '{}'", ref));
        names.insert(comp.value("name", ""));  // connections and policies may still name it
        continue;
      }
      Json merged = *spec;
      Json own = comp;
      own.erase("template");
      merged.merge_patch(own);
      merged["template"] = ref;
      comp = std::move(merged);
    }
    std::string name = comp.value("name", "");
    if (!names.insert(name).second) c.problem(base + "/name", fmt::format("duplicate component name '{}'", name));
    for (const char* f : {"tier", "image", "demand"})
      if (!comp.contains(f)) c.problem(base + "/" + f, "required field is missing (not in the component nor its template)");
    if (comp.contains("tier") && (!comp["tier"].is_string() || !kTiers.count(comp["tier"].get<std::string>())))
      c.problem(base + "/tier", "tier must be center, edge or end");
    Component out;
    out.name = name;
    out.tier = comp.value("tier", "");
    out.image = comp.value("image", "");
    out.model = comp.value("model", "");
    out.training = comp.value("training", false);
    out.min_instances = comp.value("min_instances", 0);
    out.spread_min_nodes = comp.contains("spread") ? comp["spread"].value("min_nodes", 2) : 2;
    if (comp.contains("demand"))
      if (auto e = c.number_expr(comp["demand"], base + "/demand", scope)) out.demand = *e;
    const Json profiles = comp.value("profiles", Json::array());
    if (!profiles.is_array() || profiles.empty()) c.problem(base + "/profiles", "a component needs at least one profile");
    for (std::size_t j = 0; profiles.is_array() && j < profiles.size(); ++j) {
      std::string pb = fmt::format("{}/profiles/{}", base, j);
      const Json& p = profiles[j];
      if (!p.is_object()) continue;
      Profile prof;
      Json target = p.value("target", Json::object());
      prof.arch = target.value("arch", "");
      prof.accelerator = target.value("accelerator", "");
      if (!kArchs.count(prof.arch)) c.problem(pb + "/target/arch", fmt::format("unknown architecture '{}'", prof.arch));
      if (!prof.accelerator.empty() && !ctx.accelerator_models.count(prof.accelerator))
        c.problem(pb + "/target/accelerator", fmt::format("unknown accelerator model '{}'", prof.accelerator));
      prof.capacity = p.value("capacity", 0.0);
      prof.latency_ms = p.value("latency_ms", 0.0);
      Json req = p.value("requests", Json::object());
      auto cpu = parse_quantity(req.value("cpu", Json(0)), QuantityUnit::cores);
      auto mem = parse_quantity(req.value("memory", Json(0)), QuantityUnit::gib);
      if (!cpu) c.problem(pb + "/requests/cpu", "not a quantity");
      if (!mem) c.problem(pb + "/requests/memory", "not a quantity");
      prof.cpu = cpu.value_or(0);
      prof.memory = mem.value_or(0);
      prof.accelerators = req.value("accelerators", prof.accelerator.empty() ? 0 : 1);
      if (!prof.accelerator.empty() && prof.accelerators < 1)
        c.problem(pb + "/requests/accelerators", "a profile that targets an accelerator needs at least one");
      if (schema_ok && prof.capacity <= 0) c.problem(pb + "/capacity", "capacity must be above 0");
      out.profiles.push_back(prof);
    }
    bp.components_.push_back(std::move(out));
  }

  const Json conns = doc.value("connections", Json::array());
  for (std::size_t k = 0; conns.is_array() && k < conns.size(); ++k) {
    std::string base = fmt::format("/connections/{}", k);
    const Json& cn = conns[k];
    if (!cn.is_object()) continue;
    Connection out;
    out.from = cn.value("from", "");
    out.to = cn.value("to", "");
    if (out.from != "location" && !names.count(out.from))
      c.problem(base + "/from", fmt::format("'{}' is neither a component nor 'location'", out.from));
    if (!names.count(out.to)) c.problem(base + "/to", fmt::format("'{}' is not a component", out.to));
    if (cn.contains("bandwidth_mbps"))
      if (auto e = c.number_expr(cn["bandwidth_mbps"], base + "/bandwidth_mbps", scope)) out.bandwidth_mbps = *e;
    if (cn.contains("max_latency_ms"))
      out.max_latency_ms = c.number_expr(cn["max_latency_ms"], base + "/max_latency_ms", scope);
    out.async = cn.value("async", false);
    bp.connections_.push_back(std::move(out));
  }
  // Data flows from the location down a tree: each component is fed by at
  // most one connection, and following the feeds never comes back. (Joins
  // would make the end-to-end latency a maximum over converging paths the
  // placement search does not model.)
  std::map<std::string, std::size_t> fed_by;
  for (std::size_t k = 0; k < bp.connections_.size(); ++k) {
    const auto& to = bp.connections_[k].to;
    if (!names.count(to)) continue;
    auto [it, fresh] = fed_by.emplace(to, k);
    if (!fresh)
      c.problem(fmt::format("/connections/{}/to", k),
                fmt::format("'{}' is already fed by connection {}: a component has one incoming connection", to, it->second));
  }
  for (const auto& [start, first] : fed_by) {
    std::string at = start;
    for (std::size_t steps = 0; steps <= fed_by.size(); ++steps) {
      auto it = fed_by.find(at);
      if (it == fed_by.end()) break;
      at = bp.connections_[it->second].from;
      if (at == start) {
        c.problem(fmt::format("/connections/{}/from", first), fmt::format("'{}' is fed by itself through a cycle", start));
        break;
      }
    }
  }
  if (doc.contains("slo") && doc["slo"].is_object() && doc["slo"].contains("latency_ms"))
    bp.slo_latency_ = c.number_expr(doc["slo"]["latency_ms"], "/slo/latency_ms", scope);
  if (doc.contains("metering") && doc["metering"].is_object() && doc["metering"].contains("requests_per_second"))
    bp.requests_per_second_ =
        c.number_expr(doc["metering"]["requests_per_second"], "/metering/requests_per_second", scope);

  const Json policies = doc.value("policies", Json::array());
  std::set<std::string> policy_names;
  for (std::size_t p = 0; policies.is_array() && p < policies.size(); ++p) {
    std::string base = fmt::format("/policies/{}", p);
    const Json& pol = policies[p];
    if (!pol.is_object()) continue;
    if (!policy_names.insert(pol.value("name", "")).second)
      c.problem(base + "/name", fmt::format("duplicate policy name '{}'", pol.value("name", "")));
    if (pol.contains("component") && !names.count(pol.value("component", "")))
      c.problem(base + "/component", fmt::format("unknown component '{}'", pol.value("component", "")));
    if (pol.contains("connection") && pol["connection"].is_number_integer() &&
        (pol["connection"].get<int>() < 0 || pol["connection"].get<std::size_t>() >= conns.size()))
      c.problem(base + "/connection", fmt::format("there is no connection {}", pol["connection"].get<int>()));
    if (pol.contains("max_per_hour"))
      if (auto e = c.number_expr(pol["max_per_hour"], base + "/max_per_hour", scope))
        bp.policy_budgets_.emplace_back(p, *e);
  }
  if (!c.errs.empty()) {
    std::vector<FieldError> unique;
    for (auto& e : c.errs)
      if (std::none_of(unique.begin(), unique.end(), [&](const FieldError& u) { return u.pointer == e.pointer; }))
        unique.push_back(std::move(e));
    std::string what = bp.name_.empty() ? "blueprint" : fmt::format("blueprint '{}'", bp.name_);
    return fail(Error::invalid_document(what, std::move(unique)));
  }
  return bp;
}

}  // namespace cpn::blueprint
