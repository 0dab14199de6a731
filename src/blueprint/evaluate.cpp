// Binding order parameters and evaluating a compiled blueprint: the
// demand model's answer for one order, with the expression behind each
// figure.
#include <cmath>

#include <fmt/format.h>

#include "cpn/blueprint/blueprint.hpp"

namespace cpn::blueprint {
namespace {

Json to_json(const expr::Value& v) {
  if (auto d = std::get_if<double>(&v)) {
    double r = std::round(*d);
    return std::fabs(*d - r) < 1e-9 && std::fabs(r) < 9e15 ? Json(static_cast<long long>(r)) : Json(*d);
  }
  if (auto s = std::get_if<std::string>(&v)) return *s;
  return std::get<bool>(v);
}

Json figure(const expr::Expression& e, const expr::Value& v) { return {{"value", to_json(v)}, {"expression", e.text()}}; }

}  // namespace

std::vector<std::string> Blueprint::missing_required(const Json& parameters) const {
  std::vector<std::string> out;
  const Json decls = document_.value("parameters", Json::object());
  for (const auto& [name, decl] : decls.items())
    if (decl.value("required", false) && !decl.contains("default") &&
        !(parameters.is_object() && parameters.contains(name)))
      out.push_back(name);
  return out;
}

Result<std::map<std::string, expr::Value>> Blueprint::bind(const Json& parameters, const std::string& base,
                                                          Mode mode) const {
  std::vector<FieldError> errs;
  if (!parameters.is_object()) return fail(Error::invalid_field(base, "parameters must be an object"));
  if (mode == Mode::order)
    for (const auto& name : missing_required(parameters))
      errs.push_back({base + "/" + pointer_token(name), "required by this blueprint"});
  const Json decls = document_.value("parameters", Json::object());
  for (const auto& [name, v] : parameters.items())
    if (!decls.contains(name)) errs.push_back({base + "/" + pointer_token(name), "unknown parameter"});
  // A parameter without a default is required when an expression reads it.
  std::set<std::string> read;
  for (const auto& [n, e] : derived_.ordered()) read.insert(e.names().begin(), e.names().end());
  for (const auto& c : components_) read.insert(c.demand.names().begin(), c.demand.names().end());
  for (const auto& c : connections_) {
    read.insert(c.bandwidth_mbps.names().begin(), c.bandwidth_mbps.names().end());
    if (c.max_latency_ms) read.insert(c.max_latency_ms->names().begin(), c.max_latency_ms->names().end());
  }
  if (slo_latency_) read.insert(slo_latency_->names().begin(), slo_latency_->names().end());
  if (requests_per_second_) read.insert(requests_per_second_->names().begin(), requests_per_second_->names().end());

  std::map<std::string, expr::Value> values;
  for (const auto& [name, decl] : decls.items()) {
    std::string ptr = base + "/" + pointer_token(name);
    Json v = parameters.contains(name) ? parameters[name] : decl.value("default", Json());
    if (v.is_null()) {
      bool said = std::any_of(errs.begin(), errs.end(), [&](const FieldError& e) { return e.pointer == ptr; });
      if (read.count(name) && !said) errs.push_back({ptr, "required: the demand model uses it and it has no default"});
      continue;
    }
    std::string type = decl.value("type", "number");
    if (type == "integer" && !(v.is_number_integer() || (v.is_number() && v.get<double>() == std::floor(v.get<double>())))) {
      errs.push_back({ptr, fmt::format("{} is not an integer", v.dump())});
      continue;
    }
    if ((type == "integer" || type == "number") && !v.is_number()) {
      errs.push_back({ptr, fmt::format("{} is not a number", v.dump())});
      continue;
    }
    if (type == "string" && !v.is_string()) {
      errs.push_back({ptr, fmt::format("{} is not a string", v.dump())});
      continue;
    }
    if (type == "boolean" && !v.is_boolean()) {
      errs.push_back({ptr, fmt::format("{} is not a boolean", v.dump())});
      continue;
    }
    if (decl.contains("enum") && std::find(decl["enum"].begin(), decl["enum"].end(), v) == decl["enum"].end()) {
      errs.push_back({ptr, fmt::format("{} is not one of {}", v.dump(), decl["enum"].dump())});
      continue;
    }
    if (v.is_number()) {
      double d = v.get<double>();
      if (decl.contains("minimum") && d < decl["minimum"].get<double>())
        errs.push_back({ptr, fmt::format("{} is below the minimum {}", v.dump(), decl["minimum"].dump())});
      else if (decl.contains("maximum") && d > decl["maximum"].get<double>())
        errs.push_back({ptr, fmt::format("{} is above the maximum {}", v.dump(), decl["maximum"].dump())});
      values[name] = d;
    } else if (v.is_string()) {
      values[name] = v.get<std::string>();
    } else {
      values[name] = v.get<bool>();
    }
  }
  if (!errs.empty()) return fail(Error::invalid_document("parameters", std::move(errs)));
  return values;
}

Result<Json> Blueprint::evaluate(const Json& parameters) const {
  auto bound = bind(parameters, "/parameters", Mode::trial);
  if (!bound) return fail(bound.error());
  auto values = derived_.evaluate(*bound);
  if (!values) return fail(values.error());
  auto eval = [&](const expr::Expression& e) -> Result<expr::Value> { return e.evaluate(*values); };

  Json out = {{"blueprint", {{"name", name_}, {"version", version_}}}};
  Json params = Json::object(), derived = Json::object();
  for (const auto& [name, v] : *bound) params[name] = to_json(v);
  for (const auto& [name, e] : derived_.ordered()) derived[name] = figure(e, values->at(name));
  out["parameters"] = params;
  out["missing_required"] = missing_required(parameters);  // an order would have to give these
  out["derived"] = derived;

  Json comps = Json::array();
  for (const auto& c : components_) {
    auto d = eval(c.demand);
    if (!d) return fail(Error{ErrorKind::unprocessable, fmt::format("component '{}': demand: {}", c.name, d.error().message), {}});
    double demand = std::get<double>(*d);
    if (!(demand < 1e12))  // also NaN
      return fail(Error{ErrorKind::unprocessable,
                        fmt::format("component '{}': a demand of {} work units is beyond any network", c.name, demand), {}});
    if (demand < 0)
      return fail(Error{ErrorKind::unprocessable,
                        fmt::format("component '{}': the demand model gives {} work units; it cannot be negative", c.name, demand), {}});
    Json profiles = Json::array();
    for (const auto& p : c.profiles) {
      Json target = {{"arch", p.arch}};
      if (!p.accelerator.empty()) target["accelerator"] = p.accelerator;
      int instances = std::max(c.min_instances, static_cast<int>(std::ceil(std::max(0.0, demand) / p.capacity)));
      profiles.push_back({{"target", target},
                          {"capacity", p.capacity},
                          {"instances", instances},
                          {"requests", {{"cpu", p.cpu}, {"memory", p.memory}, {"accelerators", p.accelerators}}},
                          {"latency_ms", p.latency_ms}});
    }
    comps.push_back({{"name", c.name}, {"tier", c.tier}, {"image", c.image}, {"training", c.training},
                     {"demand", figure(c.demand, *d)}, {"profiles", profiles}});
  }
  out["components"] = comps;

  Json conns = Json::array();
  for (const auto& c : connections_) {
    auto bw = eval(c.bandwidth_mbps);
    if (!bw) return fail(Error{ErrorKind::unprocessable, fmt::format("connection {} -> {}: {}", c.from, c.to, bw.error().message), {}});
    double mbps = std::get<double>(*bw);
    if (!(mbps >= 0 && mbps < 1e9))  // also NaN
      return fail(Error{ErrorKind::unprocessable,
                        fmt::format("connection {} -> {}: a bandwidth of {} Mbps is not possible", c.from, c.to, mbps), {}});
    Json j = {{"from", c.from}, {"to", c.to}, {"bandwidth_mbps", figure(c.bandwidth_mbps, *bw)}, {"max_latency_ms", nullptr},
              {"async", c.async}};
    if (c.max_latency_ms) {
      auto l = eval(*c.max_latency_ms);
      if (!l) return fail(l.error());
      j["max_latency_ms"] = figure(*c.max_latency_ms, *l);
    }
    conns.push_back(j);
  }
  out["connections"] = conns;
  out["slo"] = Json::object();
  if (slo_latency_) {
    auto l = eval(*slo_latency_);
    if (!l) return fail(l.error());
    out["slo"]["latency_ms"] = figure(*slo_latency_, *l);
  }
  out["metering"] = Json::object();
  if (requests_per_second_) {
    auto r = eval(*requests_per_second_);
    if (!r) return fail(r.error());
    out["metering"]["requests_per_second"] = figure(*requests_per_second_, *r);
  }
  Json policies = document_.value("policies", Json::array());
  for (const auto& [index, e] : policy_budgets_) {
    // A budget over a parameter the order did not give is no budget.
    bool known = std::all_of(e.names().begin(), e.names().end(), [&](const std::string& n) { return values->count(n); });
    if (!known) {
      policies[index]["max_per_hour"] = nullptr;
      continue;
    }
    auto v = eval(e);
    if (!v) return fail(Error{ErrorKind::unprocessable, fmt::format("policy {}: max_per_hour: {}", index, v.error().message), {}});
    policies[index]["max_per_hour"] = figure(e, *v);
  }
  out["policies"] = policies;
  return out;
}

Json diff(const Json& from, const Json& to) {
  Json ops = Json::array();
  std::function<void(const Json&, const Json&, const std::string&)> walk = [&](const Json& a, const Json& b,
                                                                                const std::string& path) {
    if (a == b) return;
    if (a.is_object() && b.is_object()) {
      for (const auto& [k, v] : a.items())
        if (!b.contains(k)) ops.push_back({{"op", "remove"}, {"path", path + "/" + pointer_token(k)}});
      for (const auto& [k, v] : b.items()) {
        std::string p = path + "/" + pointer_token(k);
        if (!a.contains(k)) ops.push_back({{"op", "add"}, {"path", p}, {"value", v}});
        else walk(a[k], v, p);
      }
      return;
    }
    if (a.is_array() && b.is_array() && a.size() == b.size()) {
      for (std::size_t i = 0; i < a.size(); ++i) walk(a[i], b[i], path + "/" + std::to_string(i));
      return;
    }
    ops.push_back({{"op", "replace"}, {"path", path}, {"value", b}});
  };
  walk(from, to, "");
  return ops;
}

}  // namespace cpn::blueprint
