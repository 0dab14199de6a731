// The solver turns an order's resource demand into several priced
// placements over an inventory snapshot. It is a pure function (no I/O, no
// clock): Filter (which nodes can host what, each filter counting what it
// removed) -> Score (per site, the cheapest packing of each component for
// each processing-latency level) -> Select (the (cost, latency) Pareto front
// of whole placements along the component chain, from which each strategy
// takes its best), then each pick is checked against shared node and link
// capacity.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cpn/core/document.hpp"
#include "cpn/solver/snapshot.hpp"

namespace cpn::solver {

struct Profile {
  std::string arch;
  std::string accelerator;  // empty: CPU only
  double capacity = 0;      // work units one instance serves
  double cpu = 0, memory = 0;
  int accelerators = 0;
  double latency_ms = 0;  // processing latency
};

struct Component {
  std::string name, tier, image;
  double demand = 0;  // work units
  int min_instances = 0;
  int spread_min_nodes = 2;  // two or more instances use at least this many nodes
  std::vector<Profile> profiles;
};

inline constexpr int kLocation = -1;  // a connection end at the order's location

struct Connection {
  int from = kLocation, to = 0;  // component indexes
  double bandwidth_mbps = 0;
  std::optional<double> max_latency_ms;  // this hop's network path
  bool async = false;                    // not on the end-to-end latency path
  int index = -1;                        // the blueprint's numbering, shown in answers (-1: the position)
};

struct Demand {
  std::vector<Component> components;
  std::vector<Connection> connections;
  std::string location;  // a site id or a city
  std::optional<double> slo_latency_ms;
  std::optional<double> max_cost_per_hour;  // the budget, in resource cost
};

// A strategy is a weighting of the scorers: normalised cost and latency.
struct Strategy {
  std::string label;
  double cost_weight = 1;
  double latency_weight = 0;
};
std::vector<Strategy> default_strategies();  // lowest-cost, lowest-latency, balanced

struct Options {
  std::vector<Strategy> strategies = default_strategies();
  std::size_t sites_per_component = 8;  // kept per ranking (cost, latency)
};

struct Placement {
  int component = 0;
  int node = 0;
  int profile = 0;
  int instances = 0;
};

struct Flow {
  int connection = 0;
  int from_site = 0, to_site = 0;
  double mbps = 0;
  Path path;
};

struct Solution {
  std::vector<std::string> labels;  // strategies that chose it
  std::vector<Placement> placements;
  std::vector<Flow> flows;
  std::vector<double> connection_latency_ms;  // per connection, worst path
  double latency_ms = 0;                      // end to end: network and processing
  double compute_cost = 0, network_cost = 0;  // per hour
  double cost_per_hour() const { return compute_cost + network_cost; }
  double utilization = 0;  // demand over capacity placed
  std::vector<double> component_capacity;  // work units placed per component
};

// Why nothing (or less) fits, per constraint.
struct FilterCount {
  std::string filter, reason;
  std::size_t removed = 0;
};

struct ComponentReport {
  std::string component;
  std::size_t nodes = 0;  // considered
  std::vector<FilterCount> filters;
  std::size_t feasible_nodes = 0;
  std::size_t feasible_sites = 0;   // with nodes left after the filters
  std::size_t serving_sites = 0;    // able to serve the whole demand alone
  std::size_t spread_sites = 0;     // would serve it, but on fewer nodes than the spread asks
  double free_capacity = 0;         // work units the feasible nodes could serve together
};

struct Explanation {
  std::vector<ComponentReport> components;
  // Constraints on whole placements: name -> placements it rejected.
  std::vector<FilterCount> combinations;
  std::optional<double> cheapest_cost_per_hour;  // when the budget removed every placement
  std::optional<double> latency_needed_ms;       // the least end-to-end latency any placement reaches
  std::optional<std::string> blocking_component; // the first component nothing can host
};

struct Answer {
  std::vector<int> sources;  // sites the location resolves to
  std::vector<Solution> solutions;  // merged: each distinct placement once
  Explanation explanation;
};

// The answer as the API shows it (DESIGN.md "Order and solutions"), less
// the quote, which the catalogue adds: solutions get ids s1, s2, ...
Json solution_json(const Snapshot& s, const Demand& d, const Solution& sol, const std::string& id);
Json explanation_json(const Snapshot& s, const Demand& d, const Answer& answer);

// Errors only for a demand that names what the snapshot lacks (an unknown
// location: pointer /parameters/location).
Result<Answer> solve(const Snapshot& snapshot, const Demand& demand, const Options& options = {});

// What one instance of a profile costs per hour at a site's prices.
double instance_cost(const Profile& profile, const Prices& prices);

}  // namespace cpn::solver
