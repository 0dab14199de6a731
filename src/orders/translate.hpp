// Intent translation, private to src/orders: a blueprint's evaluation for
// an order's parameters becomes the solver's demand, the usage a bill
// counts, and the solutions with their quotes.
#pragma once

#include "cpn/blueprint/blueprint.hpp"
#include "cpn/catalog/quote.hpp"
#include "cpn/solver/solver.hpp"

namespace cpn::orders::detail {

// Training components are left out: they run as scheduled training jobs in
// the centre, not as part of the service's placement.
solver::Demand demand_of(const blueprint::Blueprint& bp, const Json& evaluation, const Json& parameters);
catalog::Usage usage_of(const Json& evaluation);

struct Translated {
  Json demand;     // the evaluation: derived values, components, connections
  Json solutions;  // with quotes
  Json infeasible; // null when something fits
};

// offering: the offering's body (its billing), or null to price at cost.
Result<Translated> translate(const solver::Snapshot& snapshot, const blueprint::Blueprint& bp, const Json& offering,
                             const Json& parameters, const std::string& billing_mode, double duration_hours);

}  // namespace cpn::orders::detail
