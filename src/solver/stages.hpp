// The solver's stages, private to src/solver: the capacity overlay, the
// filters, per-site packing, the placement options of each component and
// the Pareto search over the component chain.
#pragma once

#include <map>
#include <memory>
#include <unordered_map>

#include "cpn/solver/solver.hpp"

namespace cpn::solver::detail {

// Slack for comparing capacities, latencies and costs computed in double.
inline constexpr double kEps = 1e-9;

// What this solve has already taken from nodes, over the snapshot's free capacity.
class Overlay {
 public:
  explicit Overlay(const Snapshot& snapshot) : snapshot_(&snapshot) {}
  // Instances of the profile the node can still take.
  int fits(int node, const Profile& p) const;
  void take(int node, const Profile& p, int instances);

 private:
  struct Used {
    double cpu = 0, memory = 0;
    std::map<std::string, int> accelerators;
  };
  const Snapshot* snapshot_;
  std::unordered_map<int, Used> nodes_;
};

// Filter stage output for one component: per site, the node classes left
// and which profiles each can run.
struct SiteCandidates {
  int site = -1;
  std::vector<std::pair<int, std::vector<int>>> classes;  // class, profile indexes
};

struct Filtered {
  std::vector<SiteCandidates> sites;  // in site order
  std::vector<double> reach_latency;  // per site, from the upstream's feasible sites
  std::vector<double> reach_price;    // per site, cheapest Mbps-hour from upstream
  ComponentReport report;
};

struct Graph;  // below

// Runs the filters for component c, fed by connection `parent` (null for
// none) from upstream_sites (the sources, or the feeding component's sites).
Filtered filter_component(const Snapshot& s, const Demand& d, int c, const Connection* parent,
                          const std::vector<int>& upstream_sites, const Overlay& overlay);

struct Packing {
  std::vector<Placement> placements;
  double cost = 0;
  double processing_ms = 0;  // slowest profile used
  double capacity = 0;       // work units placed
  int instances = 0;
};

// The cheapest packing of `demand` units of component c on one site's
// candidates using profiles no slower than latency_cap. partial: place what
// fits when the site cannot serve it all (for spilling over several sites).
std::optional<Packing> pack(const Snapshot& s, const Component& comp, int c, const SiteCandidates& site,
                            double demand, double latency_cap, const Overlay& overlay, bool partial,
                            int spread_nodes);

// One way to place a component: one site, or several sharing the demand.
struct Option {
  std::vector<std::pair<int, double>> sites;  // site, share of the demand
  Packing packing;
  double latency_cap = 0;
};

// The pairwise hop between two options over one connection.
struct Hop {
  bool feasible = false;
  double latency_ms = 0, cost = 0;
};

// Routes from a site at a bandwidth within a latency limit, computed once
// per solve (the limit keeps each search small on large networks).
class RouteCache {
 public:
  explicit RouteCache(const Snapshot& s) : snapshot_(&s) {}
  const Routes& from(int site, double mbps, double max_latency_ms = 1e18);

 private:
  const Snapshot* snapshot_;
  std::map<std::tuple<int, double, double>, std::unique_ptr<Routes>> cache_;
};

Hop hop_between(const Snapshot& s, RouteCache& routes, const Connection& conn,
                const std::vector<std::pair<int, double>>& from, const std::vector<std::pair<int, double>>& to);

// The component graph as a tree from the location: each component's parent
// is the source of its first incoming connection.
struct Graph {
  std::vector<int> order;                 // parents before children
  std::vector<int> parent_connection;     // per component, -1 without one
  std::vector<std::vector<int>> children; // connection indexes, by parent component (+1; 0 is the location)
};
Graph component_graph(const Demand& d);

// A whole placement on the Pareto front: one option per component.
struct Choice {
  double cost = 0, latency_ms = 0;
  std::vector<int> option;  // per component
};

struct Plan {
  std::vector<Filtered> filtered;
  std::vector<std::vector<Option>> options;
  std::vector<Choice> front;  // sorted by cost
  std::size_t hop_latency_rejected = 0, hop_unreachable = 0, slo_rejected = 0;
};

Plan make_plan(const Snapshot& s, const Demand& d, const std::vector<int>& sources, const Graph& g,
               const Overlay& overlay, const Options& options, bool enforce_slo, RouteCache& routes);

}  // namespace cpn::solver::detail
