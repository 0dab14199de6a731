// Reproducible synthetic compute power networks for the solver's benchmark
// and property tests: regions with an edge site and camera end sites,
// centres serving groups of regions, a realistic mix of x86_64 and aarch64
// nodes with T4, A10, A100, Ascend 310/910 and FPGA cards, prices that vary
// by site, links whose latency follows distance, and part of every node
// already held by earlier orders. Same spec, same network.
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cpn/solver/snapshot.hpp"

namespace cpn::test {

struct NetworkSpec {
  int nodes = 1000;
  std::uint64_t seed = 1;
  double held = 0.3;  // mean share of each node already allocated
};

struct SyntheticNetwork {
  solver::Snapshot snapshot;
  std::vector<std::string> end_sites;
  int sites = 0, links = 0;
};

inline SyntheticNetwork synthetic_network(const NetworkSpec& spec) {
  std::mt19937_64 rng(spec.seed);
  auto uniform = [&](double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); };
  auto pick = [&](const std::vector<double>& weights) {
    return static_cast<int>(std::discrete_distribution<int>(weights.begin(), weights.end())(rng));
  };
  solver::Snapshot::Builder b;
  SyntheticNetwork out;
  const int regions = std::max(2, spec.nodes / 50);
  const int centres = std::max(1, regions / 10);
  const int grid = static_cast<int>(std::ceil(std::sqrt(regions)));
  auto region_xy = [&](int r) { return std::pair<double, double>(r % grid, r / grid); };
  auto distance = [](std::pair<double, double> a, std::pair<double, double> b) {
    return std::hypot(a.first - b.first, a.second - b.second);
  };
  std::vector<std::pair<double, double>> centre_xy;
  for (int k = 0; k < centres; ++k) centre_xy.push_back({uniform(0, grid), uniform(0, grid)});

  auto prices = [&](double cpu) {
    solver::Prices p;
    double f = uniform(0.75, 1.25);
    p.cpu_core_hour = cpu * f;
    p.memory_gib_hour = 0.005 * f;
    for (auto [model, price] : std::vector<std::pair<std::string, double>>{{"nvidia-t4", 1.2},
                                                                          {"nvidia-a10", 2.5},
                                                                          {"nvidia-a100", 9.5},
                                                                          {"ascend-310", 0.8},
                                                                          {"ascend-910", 7.5},
                                                                          {"xilinx-alveo-u50", 1.5}})
      p.accelerators[model] = price * uniform(0.75, 1.25);
    return p;
  };
  for (int k = 0; k < centres; ++k) b.add_site({fmt::format("centre-{}", k), "center", fmt::format("city-c{}", k), prices(0.03)});
  for (int r = 0; r < regions; ++r) {
    b.add_site({fmt::format("edge-{}", r), "edge", fmt::format("city-{}", r), prices(0.045)});
    for (int e = 0; e < 3; ++e) {
      std::string id = fmt::format("end-{}-{}", r, e);
      b.add_site({id, "end", fmt::format("city-{}", r), prices(0.06)});
      out.end_sites.push_back(id);
    }
  }
  out.sites = centres + regions * 4;

  struct Kind {
    std::string arch;
    double cpu, memory;
    std::string model;
    int count;
  };
  const std::vector<Kind> edge_kinds = {{"x86_64", 64, 256, "", 0},          {"x86_64", 32, 128, "nvidia-t4", 2},
                                        {"x86_64", 48, 192, "nvidia-a10", 2}, {"aarch64", 64, 128, "ascend-310", 4},
                                        {"x86_64", 32, 128, "xilinx-alveo-u50", 1}};
  const std::vector<double> edge_weights = {35, 20, 15, 20, 10};
  const std::vector<Kind> centre_kinds = {{"x86_64", 96, 768, "", 0},           {"x86_64", 128, 1024, "nvidia-a100", 8},
                                          {"aarch64", 192, 1024, "ascend-910", 8}, {"x86_64", 64, 512, "nvidia-a10", 4},
                                          {"aarch64", 128, 512, "", 0}};
  const std::vector<double> centre_weights = {40, 25, 15, 10, 10};
  const std::vector<Kind> end_kinds = {{"aarch64", 8, 16, "ascend-310", 1}, {"x86_64", 8, 32, "", 0}};

  auto add_node = [&](const std::string& site, const std::string& id, const Kind& k) {
    solver::Node n;
    n.id = id;
    n.arch = k.arch;
    double held = std::clamp(uniform(0, 2 * spec.held), 0.0, 1.0);
    n.cpu_free = std::floor(k.cpu * (1 - held));
    n.memory_free = std::floor(k.memory * (1 - held));
    if (k.count > 0) n.accelerators.push_back({k.model, k.count - static_cast<int>(std::round(k.count * held))});
    n.ready = uniform(0, 1) > 0.02;  // a few are cordoned or down
    b.add_node(site, std::move(n));
  };
  int centre_nodes = spec.nodes * 15 / 100, end_nodes = spec.nodes / 10;
  int edge_nodes = spec.nodes - centre_nodes - end_nodes;
  for (int i = 0; i < centre_nodes; ++i)
    add_node(fmt::format("centre-{}", i % centres), fmt::format("c{}-n{}", i % centres, i), centre_kinds[pick(centre_weights)]);
  for (int i = 0; i < edge_nodes; ++i)
    add_node(fmt::format("edge-{}", i % regions), fmt::format("e{}-n{}", i % regions, i), edge_kinds[pick(edge_weights)]);
  for (int i = 0; i < end_nodes; ++i) {
    int r = i % regions;
    add_node(fmt::format("end-{}-{}", r, (i / regions) % 3), fmt::format("x{}-n{}", r, i), end_kinds[i % 2]);
  }

  auto link = [&](const std::string& a, const std::string& z, double latency, double mbps, double price) {
    solver::Link l;
    l.id = a + "--" + z;
    l.latency_ms = std::round(latency * 10) / 10;
    l.free_mbps = std::round(mbps);
    l.price_mbps_hour = price;
    b.add_link(a, z, std::move(l));
    ++out.links;
  };
  for (int r = 0; r < regions; ++r) {
    std::string edge = fmt::format("edge-{}", r);
    for (int e = 0; e < 3; ++e)
      link(fmt::format("end-{}-{}", r, e), edge, uniform(1, 4), uniform(1000, 10000), uniform(0.0008, 0.0015));
    // Neighbouring regions on the grid.
    for (int n : {r + 1, r + grid})
      if (n < regions && (n != r + 1 || (r + 1) % grid != 0))
        link(edge, fmt::format("edge-{}", n), 2 + 4 * distance(region_xy(r), region_xy(n)) + uniform(0, 2),
             uniform(10000, 40000), uniform(0.0004, 0.001));
    // The two nearest centres.
    std::vector<std::pair<double, int>> near;
    for (int k = 0; k < centres; ++k) near.push_back({distance(region_xy(r), centre_xy[k]), k});
    std::sort(near.begin(), near.end());
    for (std::size_t k = 0; k < std::min<std::size_t>(2, near.size()); ++k)
      link(edge, fmt::format("centre-{}", near[k].second), 4 + 3 * near[k].first + uniform(0, 3), uniform(20000, 100000),
           uniform(0.0002, 0.0006));
  }
  for (int k = 0; k + 1 < centres; ++k)
    link(fmt::format("centre-{}", k), fmt::format("centre-{}", k + 1), 8 + 3 * distance(centre_xy[k], centre_xy[k + 1]),
         100000, 0.0002);
  auto built = std::move(b).build();
  out.snapshot = std::move(*built);
  return out;
}

}  // namespace cpn::test
