// The twin's conditions (from the active faults) and its load model.
#include <algorithm>
#include <cmath>
#include <functional>

#include "cpn/inventory/inventory.hpp"
#include "cpn/sim/twin.hpp"
#include "cpn/template/instances.hpp"
#include "cpn/template/template.hpp"

namespace cpn::sim {
namespace {

// M/M/1: a unit's time in the system is its service time over (1 - load),
// with the load capped so that a saturated component reads 20x, not infinity.
constexpr double kMaxLoad = 0.95;

double round3(double v) { return std::round(v * 1000) / 1000; }

}  // namespace

bool Conditions::node_up(const engine::Engine& engine, const std::string& node) const {
  const engine::Object* n = engine.find(inventory::kNode, node);
  if (!n || n->body.value("state", "ready") == "down") return false;
  return !faulted(node, n->body.value("site", ""));
}

Conditions conditions_of(const engine::Engine& engine) {
  Conditions c;
  for (const auto* f : engine.list(kFault)) {
    const Json& b = f->body;
    std::string type = b.value("type", ""), target = b.value("target", "");
    if (type == "node-down") c.nodes_down.insert(target);
    if (type == "site-down") c.sites_down.insert(target);
    if (type == "link-degraded") {
      LinkCondition& l = c.links[target];
      if (b.contains("bandwidth_mbps")) {
        double bw = b["bandwidth_mbps"].get<double>();
        l.bandwidth_mbps = l.bandwidth_mbps ? std::min(*l.bandwidth_mbps, bw) : bw;
      }
      l.extra_latency_ms += b.value("extra_latency_ms", 0.0);
      l.fault = l.fault.empty() ? f->id : l.fault + "," + f->id;
    }
    if (type == "load-surge") {
      std::string dep = b.value("deployment", target);
      c.surge[dep] = c.surge.count(dep) ? c.surge[dep] * b.value("factor", 2.0) : b.value("factor", 2.0);
      c.surge_fault[dep] = c.surge_fault.count(dep) ? c.surge_fault[dep] + "," + f->id : f->id;
    }
  }
  return c;
}

namespace {

struct Running {
  double demand = 0, capacity = 0, weighted_latency = 0;
  int running = 0, total = 0;
};

}  // namespace

Json model_load(const Json& tmpl, const std::map<std::string, std::string>& instance_states, double surge,
                const Conditions& conditions, const std::map<std::string, double>& link_allocated,
                const std::string& deployment_id) {
  const Json& spec = tmpl["spec"];
  // What runs: each component's capacity is that of its running instances.
  std::map<std::string, Running> comps;
  std::vector<std::string> order;
  for (const auto& comp : spec["components"]) {
    std::string name = comp["name"];
    Running& r = comps[name];
    order.push_back(name);
    r.demand = comp.value("demand", 0.0);
    auto ids = templates::placement_ids(deployment_id, comp);
    for (std::size_t j = 0; j < ids.size(); ++j) {
      const Json& p = comp["placements"][j];
      int n = p["instances"].get<int>(), up = 0;
      for (const auto& iid : ids[j]) {
        auto it = instance_states.find(iid);
        up += it != instance_states.end() && it->second == "running";
      }
      r.running += up;
      r.total += n;
      double share = p.value("capacity", 0.0) * up / std::max(1, n);
      r.capacity += share;
      r.weighted_latency += share * p.value("latency_ms", 0.0);
    }
  }
  // What is offered: the ordered load times the surge, less what upstream
  // components could not serve (a saturated detector passes on only what it saw).
  std::map<std::string, std::string> parent;
  for (const auto& f : spec.value("network", Json::array()))
    if (f["from"] != "location") parent[f["to"]] = f["from"];
  std::map<std::string, double> reach_memo;
  std::function<double(const std::string&)> reach = [&](const std::string& c) -> double {
    if (auto it = reach_memo.find(c); it != reach_memo.end()) return it->second;
    double r = surge;
    if (auto p = parent.find(c); p != parent.end() && comps.count(p->second) && p->second != c) {
      reach_memo[c] = surge;  // a cycle (refused at compile time) cannot recurse forever
      const Running& up = comps[p->second];
      double offered = up.demand * reach(p->second);
      double pass = offered <= 0 ? 1.0 : std::min(1.0, up.capacity / offered);
      r = reach(p->second) * pass;
    }
    return reach_memo[c] = r;
  };
  auto passed = [&](const std::string& c) {  // the share of the ordered load that leaves c
    const Running& r = comps[c];
    double offered = r.demand * reach(c);
    return reach(c) * (offered <= 0 ? 1.0 : std::min(1.0, r.capacity / offered));
  };

  Json components = Json::object();
  std::map<std::string, std::optional<double>> latency_of;
  for (const auto& name : order) {
    const Running& r = comps[name];
    double offered = r.demand * reach(name);
    Json c = {{"offered", round3(offered)}, {"capacity", round3(r.capacity)},
              {"instances", {{"running", r.running}, {"total", r.total}}}};
    if (r.capacity > 0) {
      double load = offered / r.capacity;
      double latency = (r.weighted_latency / r.capacity) / (1 - std::min(load, kMaxLoad));
      c["utilization"] = round3(load);
      c["served"] = round3(std::min(offered, r.capacity));
      c["dropped"] = round3(std::max(0.0, offered - r.capacity));
      c["latency_ms"] = round3(latency);
      c["saturated"] = load >= 1;
      latency_of[name] = latency;
    } else {
      c["utilization"] = nullptr;
      c["served"] = 0;
      c["dropped"] = round3(offered);
      c["latency_ms"] = nullptr;
      c["saturated"] = true;
      latency_of[name] = std::nullopt;
    }
    components[name] = c;
  }

  // Flows: what is offered, what the reservation and a degraded link let
  // through, and the latency a degraded link adds.
  Json network = Json::array();
  std::map<std::string, std::vector<std::pair<std::string, double>>> edges;  // from -> (to, latency)
  for (const auto& f : spec.value("network", Json::array())) {
    std::string from = f["from"];
    double reserved = f.value("bandwidth_mbps", 0.0);
    double offered = reserved * (comps.count(from) ? passed(from) : surge);
    double through = reserved, latency = f.value("latency_ms", 0.0);
    std::string degraded_by;
    for (const auto& link : f.value("links", Json::array())) {
      auto it = conditions.links.find(link.get<std::string>());
      if (it == conditions.links.end()) continue;
      latency += it->second.extra_latency_ms;
      if (it->second.bandwidth_mbps) {
        // A degraded link is shared in proportion to what each deployment holds on it.
        auto held_it = link_allocated.find(link.get<std::string>());
        double held = std::max(reserved, held_it != link_allocated.end() ? held_it->second : reserved);
        through = std::min(through, held > 0 ? reserved * std::min(1.0, *it->second.bandwidth_mbps / held) : 0.0);
      }
      degraded_by = degraded_by.empty() ? it->second.fault : degraded_by + "," + it->second.fault;
    }
    Json flow = {{"from", from}, {"to", f["to"]}, {"path", f["path"]}, {"links", f.value("links", Json::array())},
                 {"reserved_mbps", round3(reserved)}, {"offered_mbps", round3(offered)},
                 {"delivered_mbps", round3(std::min(offered, through))}, {"latency_ms", round3(latency)},
                 {"congested", offered > through + 1e-9}};
    if (!degraded_by.empty()) flow["degraded_by"] = degraded_by;
    network.push_back(flow);
    if (!f.value("async", false)) edges[from].push_back({f["to"], latency});
  }

  // End to end: the slowest way from the location through the component
  // tree, each hop's flow latency plus the component's own.
  std::function<std::optional<double>(const std::string&, int)> slowest = [&](const std::string& from,
                                                                              int depth) -> std::optional<double> {
    double worst = 0;
    if (depth > 64) return worst;
    for (const auto& [to, hop] : edges[from]) {
      auto own = latency_of.count(to) ? latency_of[to] : std::optional<double>(0.0);
      auto rest = slowest(to, depth + 1);
      if (!own || !rest) return std::nullopt;
      worst = std::max(worst, hop + *own + *rest);
    }
    return worst;
  };
  std::optional<double> e2e = 0.0;
  if (edges.count("location"))
    e2e = slowest("location", 0);
  else
    for (const auto& [name, l] : latency_of) e2e = (e2e && l) ? std::optional<double>(std::max(*e2e, *l)) : std::nullopt;
  Json end_to_end = {{"latency_ms", e2e ? Json(round3(*e2e)) : Json()}};
  if (spec.contains("slo") && spec["slo"].contains("latency_ms")) {
    double slo = spec["slo"]["latency_ms"].get<double>();
    end_to_end["slo_ms"] = slo;
    end_to_end["slo_met"] = e2e && *e2e <= slo;
  }
  Json out = {{"source", "sim"}, {"surge", surge}, {"components", components}, {"network", network}, {"end_to_end", end_to_end}};
  if (auto it = conditions.surge_fault.find(deployment_id); it != conditions.surge_fault.end()) out["surged_by"] = it->second;
  return out;
}

}  // namespace cpn::sim
