// The lowest-cost placement problem as an integer program (CPLEX LP
// format, which CBC reads), written from the snapshot and the demand alone,
// independently of the solver's search:
//   y[c][s]     binary: component c runs at site s (exactly one site each)
//   x[c][n][p]  integer: instances of profile p of c on node n (only at c's site)
//   z[k][i][j]  pair of sites of connection k's ends, forced to 1 when both are chosen
//   w[c][p]     binary: profile p of c is used; P[c] >= its processing latency
//   t[c], u[c][n]  spread: two or more instances use two or more nodes
// Constraints: demand covered, min_instances, node cpu/memory/accelerators
// shared by all components, per-hop latency budgets, link capacity along
// each pair's route, and the end-to-end SLO along every path of the chain.
// Objective: instance costs at site prices plus bandwidth x route price.
// Routes are the lowest-latency ones with enough free bandwidth (as the
// solver's), so both price the same network.
#pragma once

#include <string>

#include "cpn/solver/solver.hpp"

namespace cpn::bench {

struct IntegerProgram {
  std::string lp;     // the model
  bool empty = false; // some component has no candidate site: infeasible as written
  int variables = 0, constraints = 0;
};

IntegerProgram lowest_cost_program(const solver::Snapshot& s, const solver::Demand& d);

}  // namespace cpn::bench
