// Reservations: what a deployment holds on nodes and links, taken and
// given back in the same engine commit as the deployment's own change.
#include <cmath>

#include <fmt/format.h>

#include "cpn/inventory/inventory.hpp"
#include "cpn/template/template.hpp"

namespace cpn::templates {

Json reservation_of(const Json& doc) {
  Json nodes = Json::object(), links = Json::object();
  const Json& spec = doc["spec"];
  for (const auto& c : spec["components"])
    for (const auto& p : c["placements"]) {
      std::string node = p["node"];
      int n = p["instances"];
      Json& r = nodes[node];
      if (r.is_null()) r = {{"cpu", 0.0}, {"memory", 0.0}, {"accelerators", Json::object()}};
      const Json& req = p["requests"];
      r["cpu"] = r["cpu"].get<double>() + req.value("cpu", 0.0) * n;
      r["memory"] = r["memory"].get<double>() + req.value("memory", 0.0) * n;
      int acc = req.value("accelerators", 0) * n;
      if (acc > 0) {
        std::string model = p.value("accelerator", "");
        r["accelerators"][model] = r["accelerators"].value(model, 0) + acc;
      }
    }
  for (const auto& f : spec.value("network", Json::array()))
    for (const auto& l : f.value("links", Json::array())) {
      std::string id = l;
      links[id] = links.value(id, 0.0) + f["bandwidth_mbps"].get<double>();
    }
  return {{"nodes", nodes}, {"links", links}};
}

Result<std::vector<engine::Change>> reserve(const Json& reservation, int sign, const engine::Engine& engine,
                                            const std::string& pointer) {
  std::vector<engine::Change> changes;
  std::vector<FieldError> short_of;
  for (const auto& [id, r] : reservation["nodes"].items()) {
    const engine::Object* o = engine.find(inventory::kNode, id);
    if (!o) {
      if (sign > 0) short_of.push_back({pointer, fmt::format("node '{}' is gone", id)});
      continue;
    }
    Json body = o->body;
    Json& alloc = body["allocated"];
    if (!alloc.is_object()) alloc = Json::object();
    Json& by_model = alloc["accelerators_by_model"];
    if (!by_model.is_object()) by_model = Json::object();
    double cpu = alloc.value("cpu", 0.0) + sign * r["cpu"].get<double>();
    double memory = alloc.value("memory", 0.0) + sign * r["memory"].get<double>();
    int acc_total = alloc.value("accelerators", 0);
    if (sign > 0) {
      if (body.value("state", "ready") != "ready")
        short_of.push_back({pointer, fmt::format("node '{}' is {}", id, body.value("state", ""))});
      if (cpu > body.value("cpu", 0.0) + 1e-9 || memory > body.value("memory", 0.0) + 1e-9)
        short_of.push_back({pointer, fmt::format("node '{}' no longer has the cpu or memory free", id)});
    }
    for (const auto& [model, n] : r["accelerators"].items()) {
      int now = by_model.value(model, 0) + sign * n.get<int>();
      int have = 0;
      for (const auto& a : body.value("accelerators", Json::array()))
        if (a.value("model", "") == model) have += a.value("count", 0);
      if (sign > 0 && now > have)
        short_of.push_back({pointer, fmt::format("node '{}' no longer has {} {} free", id, n.get<int>(), model)});
      if (now > 0) by_model[model] = now;
      else by_model.erase(model);
      acc_total += sign * n.get<int>();
    }
    if (by_model.empty()) alloc.erase("accelerators_by_model");  // all given back: as it was before any
    alloc["cpu"] = std::max(0.0, std::round(cpu * 1e6) / 1e6);
    alloc["memory"] = std::max(0.0, std::round(memory * 1e6) / 1e6);
    alloc["accelerators"] = std::max(0, acc_total);
    changes.push_back({engine::Change::Op::put, inventory::kNode, id, std::move(body), sign > 0 ? "NodeReserved" : "NodeReleased"});
  }
  for (const auto& [id, mbps] : reservation["links"].items()) {
    const engine::Object* o = engine.find(inventory::kLink, id);
    if (!o) {
      if (sign > 0) short_of.push_back({pointer, fmt::format("link '{}' is gone", id)});
      continue;
    }
    Json body = o->body;
    double now = body.value("allocated_mbps", 0.0) + sign * mbps.get<double>();
    if (sign > 0 && now > body.value("bandwidth_mbps", 0.0) + 1e-6)
      short_of.push_back({pointer, fmt::format("link '{}' no longer has {} Mbps free", id, mbps.get<double>())});
    body["allocated_mbps"] = std::max(0.0, std::round(now * 1e6) / 1e6);  // no float drift over many orders
    changes.push_back({engine::Change::Op::put, inventory::kLink, id, std::move(body), sign > 0 ? "LinkReserved" : "LinkReleased"});
  }
  if (!short_of.empty())
    return fail(Error::conflict("it no longer fits the inventory", std::move(short_of)));
  return changes;
}

}  // namespace cpn::templates
