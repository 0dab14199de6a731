// Solutions and explanations as JSON, with the snapshot's names.
#include <cmath>

#include "cpn/solver/solver.hpp"

namespace cpn::solver {
namespace {

double round_to(double v, double unit) { return std::round(v / unit) * unit; }

std::string end_name(const Demand& d, int component) {
  return component == kLocation ? "location" : d.components[component].name;
}

}  // namespace

Json solution_json(const Snapshot& s, const Demand& d, const Solution& sol, const std::string& id) {
  Json placements = Json::array();
  std::vector<int> instances(d.components.size(), 0);
  for (const auto& p : sol.placements) {
    const Component& comp = d.components[p.component];
    const Profile& prof = comp.profiles[p.profile];
    const Node& node = s.nodes()[p.node];
    Json target = {{"arch", prof.arch}};
    if (!prof.accelerator.empty()) target["accelerator"] = prof.accelerator;
    placements.push_back({{"component", comp.name},
                          {"site", s.sites()[node.site].id},
                          {"node", node.id},
                          {"target", target},
                          {"image", comp.image},
                          {"instances", p.instances},
                          {"requests", {{"cpu", prof.cpu}, {"memory", prof.memory}, {"accelerators", prof.accelerators}}},
                          {"capacity", prof.capacity * p.instances},
                          {"latency_ms", prof.latency_ms}});
    instances[p.component] += p.instances;
  }
  Json network = Json::array();
  for (const auto& f : sol.flows) {
    const Connection& conn = d.connections[f.connection];
    Json path = Json::array(), links = Json::array();
    for (int site : f.path.sites) path.push_back(s.sites()[site].id);
    for (int link : f.path.links) links.push_back(s.links()[link].id);
    Json entry = {{"connection", conn.index >= 0 ? conn.index : f.connection},
                  {"from", end_name(d, conn.from)},
                  {"to", end_name(d, conn.to)},
                  {"from_site", s.sites()[f.from_site].id},
                  {"to_site", s.sites()[f.to_site].id},
                  {"path", path},
                  {"links", links},
                  {"bandwidth_mbps", f.mbps},  // exact: confirming reserves this
                  {"latency_ms", round_to(f.path.latency_ms, 1e-3)},
                  {"async", conn.async}};
    if (conn.max_latency_ms) entry["max_latency_ms"] = round_to(*conn.max_latency_ms, 1e-3);
    network.push_back(entry);
  }
  Json components = Json::array();
  for (std::size_t c = 0; c < d.components.size(); ++c) {
    double cap = sol.component_capacity[c];
    components.push_back({{"name", d.components[c].name},
                          {"instances", instances[c]},
                          {"demand", d.components[c].demand},
                          {"capacity", cap},
                          {"utilization", cap > 0 ? round_to(std::min(1.0, d.components[c].demand / cap), 1e-4) : 0.0}});
  }
  Json estimate = {{"latency_ms", round_to(sol.latency_ms, 1e-3)},
                   {"utilization", round_to(sol.utilization, 1e-4)},
                   {"cost_per_hour", round_to(sol.cost_per_hour(), 1e-6)},
                   {"compute_cost_per_hour", round_to(sol.compute_cost, 1e-6)},
                   {"network_cost_per_hour", round_to(sol.network_cost, 1e-6)},
                   {"components", components}};
  if (d.slo_latency_ms) estimate["slo_latency_ms"] = *d.slo_latency_ms;
  return {{"id", id},
          {"label", sol.labels.empty() ? "" : sol.labels.front()},
          {"labels", sol.labels},
          {"placements", placements},
          {"network", network},
          {"estimate", estimate}};
}

Json explanation_json(const Snapshot& s, const Demand& d, const Answer& answer) {
  const Explanation& why = answer.explanation;
  Json components = Json::array();
  for (const auto& r : why.components) {
    Json filters = Json::array();
    for (const auto& f : r.filters) filters.push_back({{"filter", f.filter}, {"reason", f.reason}, {"removed", f.removed}});
    double demand = 0;
    for (const auto& c : d.components)
      if (c.name == r.component) demand = c.demand;
    components.push_back({{"component", r.component},
                          {"nodes", r.nodes},
                          {"filters", filters},
                          {"feasible_nodes", r.feasible_nodes},
                          {"feasible_sites", r.feasible_sites},
                          {"serving_sites", r.serving_sites},
                          {"sites_short_of_spread", r.spread_sites},
                          {"demand", demand},
                          {"free_capacity", r.free_capacity}});
  }
  Json combos = Json::array();
  for (const auto& f : why.combinations)
    if (f.removed > 0) combos.push_back({{"constraint", f.filter}, {"reason", f.reason}, {"rejected", f.removed}});
  Json sources = Json::array();
  for (int site : answer.sources) sources.push_back(s.sites()[site].id);
  Json out = {{"sources", sources}, {"components", components}, {"placements", combos}};
  if (why.blocking_component) out["blocking_component"] = *why.blocking_component;
  if (why.cheapest_cost_per_hour) out["cheapest_cost_per_hour"] = round_to(*why.cheapest_cost_per_hour, 1e-6);
  if (why.latency_needed_ms) out["latency_needed_ms"] = round_to(*why.latency_needed_ms, 1e-3);
  return out;
}

}  // namespace cpn::solver
