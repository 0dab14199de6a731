// An independent check of a solution against its snapshot and demand,
// written from the rules (DESIGN.md, the solver issue), not from the
// solver's code: what a placement may take, what a route may carry, what a
// latency budget allows. Returns every violation found.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cpn/solver/solver.hpp"

namespace cpn::test {

inline std::vector<std::string> violations(const solver::Snapshot& s, const solver::Demand& d, const solver::Solution& sol) {
  std::vector<std::string> out;
  const int n = static_cast<int>(d.components.size());
  std::map<int, double> cpu, memory;
  std::map<std::pair<int, std::string>, int> acc;
  std::vector<double> capacity(n, 0), processing(n, 0);
  std::vector<int> instances(n, 0);
  std::vector<std::set<int>> nodes(n);
  std::vector<std::map<int, double>> site_capacity(n);
  double compute = 0;
  for (const auto& p : sol.placements) {
    const auto& comp = d.components[p.component];
    const auto& prof = comp.profiles[p.profile];
    const auto& node = s.nodes()[p.node];
    const auto& site = s.sites()[node.site];
    if (!node.ready) out.push_back(fmt::format("{} placed on node {} which is not ready", comp.name, node.id));
    if (site.tier != comp.tier) out.push_back(fmt::format("{} placed on {} tier site {}", comp.name, site.tier, site.id));
    if (node.arch != prof.arch) out.push_back(fmt::format("{} profile {} on {} node {}", comp.name, prof.arch, node.arch, node.id));
    cpu[p.node] += prof.cpu * p.instances;
    memory[p.node] += prof.memory * p.instances;
    if (prof.accelerators > 0) acc[{p.node, prof.accelerator}] += prof.accelerators * p.instances;
    capacity[p.component] += prof.capacity * p.instances;
    site_capacity[p.component][node.site] += prof.capacity * p.instances;
    instances[p.component] += p.instances;
    nodes[p.component].insert(p.node);
    processing[p.component] = std::max(processing[p.component], prof.latency_ms);
    compute += solver::instance_cost(prof, site.prices) * p.instances;
  }
  for (auto [node, used] : cpu)
    if (used > s.nodes()[node].cpu_free + 1e-6) out.push_back(fmt::format("node {} cpu {} > free {}", s.nodes()[node].id, used, s.nodes()[node].cpu_free));
  for (auto [node, used] : memory)
    if (used > s.nodes()[node].memory_free + 1e-6)
      out.push_back(fmt::format("node {} memory {} > free {}", s.nodes()[node].id, used, s.nodes()[node].memory_free));
  for (auto [key, used] : acc) {
    int free = 0;
    for (const auto& a : s.nodes()[key.first].accelerators)
      if (a.model == key.second) free = a.free;
    if (used > free) out.push_back(fmt::format("node {} {} {} > free {}", s.nodes()[key.first].id, key.second, used, free));
  }
  for (int c = 0; c < n; ++c) {
    const auto& comp = d.components[c];
    if (capacity[c] + 1e-6 < comp.demand) out.push_back(fmt::format("{} serves {} of {}", comp.name, capacity[c], comp.demand));
    if (instances[c] < comp.min_instances) out.push_back(fmt::format("{} has {} instances, min {}", comp.name, instances[c], comp.min_instances));
    if (instances[c] >= 2 && static_cast<int>(nodes[c].size()) < std::min(comp.spread_min_nodes, instances[c]))
      out.push_back(fmt::format("{}: {} instances on {} nodes", comp.name, instances[c], nodes[c].size()));
  }
  // Links: the flows along each route fit the free bandwidth; routes are connected.
  std::map<int, double> load;
  std::vector<double> hop(d.connections.size(), 0.0);
  std::vector<double> carried(d.connections.size(), 0.0);
  double network = 0;
  for (const auto& f : sol.flows) {
    int at = f.from_site;
    double latency = 0, price = 0;
    for (int l : f.path.links) {
      const auto& link = s.links()[l];
      if (link.a != at && link.b != at) out.push_back(fmt::format("route of connection {} is broken at {}", f.connection, link.id));
      at = link.a == at ? link.b : link.a;
      load[l] += f.mbps;
      latency += link.latency_ms;
      price += link.price_mbps_hour;
    }
    if (at != f.to_site) out.push_back(fmt::format("route of connection {} does not reach its site", f.connection));
    hop[f.connection] = std::max(hop[f.connection], latency);
    carried[f.connection] += f.mbps;
    network += f.mbps * price;
  }
  for (auto [l, mbps] : load)
    if (mbps > s.links()[l].free_mbps + 1e-6) out.push_back(fmt::format("link {} carries {} > free {}", s.links()[l].id, mbps, s.links()[l].free_mbps));
  for (std::size_t k = 0; k < d.connections.size(); ++k) {
    const auto& conn = d.connections[k];
    if (conn.max_latency_ms && hop[k] > *conn.max_latency_ms + 1e-6)
      out.push_back(fmt::format("connection {} takes {} ms > {} ms", k, hop[k], *conn.max_latency_ms));
    bool placed = conn.from == solver::kLocation || capacity[conn.from] > 0;
    if (placed && capacity[conn.to] > 0 && std::abs(carried[k] - conn.bandwidth_mbps) > 1e-6 * (1 + conn.bandwidth_mbps))
      out.push_back(fmt::format("connection {} carries {} of {} Mbps", k, carried[k], conn.bandwidth_mbps));
  }
  // End to end along synchronous hops from the location (a chain per component).
  if (d.slo_latency_ms) {
    std::vector<int> parent(n, -1);
    for (std::size_t k = 0; k < d.connections.size(); ++k)
      if (parent[d.connections[k].to] < 0) parent[d.connections[k].to] = static_cast<int>(k);
    for (int c = 0; c < n; ++c) {
      double total = 0;
      bool sync = true;
      for (int at = c; at != solver::kLocation && sync;) {
        int k = parent[at];
        if (k < 0 || d.connections[k].async) {
          sync = false;
          break;
        }
        total += hop[k] + processing[at];
        at = d.connections[k].from;
      }
      if (sync && total > *d.slo_latency_ms + 1e-6)
        out.push_back(fmt::format("{} is reached after {} ms > slo {}", d.components[c].name, total, *d.slo_latency_ms));
    }
  }
  if (std::abs(compute - sol.compute_cost) > 1e-6 * (1 + compute))
    out.push_back(fmt::format("compute cost {} but placements cost {}", sol.compute_cost, compute));
  if (std::abs(network - sol.network_cost) > 1e-6 * (1 + network))
    out.push_back(fmt::format("network cost {} but flows cost {}", sol.network_cost, network));
  return out;
}

}  // namespace cpn::test
