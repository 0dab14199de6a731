// Properties of the solver over random networks and random demands: every
// solution respects node and link capacity and every latency budget, the
// lowest-cost solution is never dearer than another, the budget is a hard
// ceiling, and the same snapshot always gives the same answer.
#include <catch2/catch.hpp>
#include <random>

#include "solver/solution_check.hpp"
#include "support/synthetic_network.hpp"

using namespace cpn;

namespace {

// A chain location -> ingest (edge) -> detect (edge) -> analyze (centre),
// plus an asynchronous archive, with random sizes and budgets.
solver::Demand random_demand(std::mt19937_64& rng, const std::vector<std::string>& end_sites) {
  auto uniform = [&](double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); };
  double streams = std::round(uniform(4, 400));
  solver::Demand d;
  d.location = end_sites[std::uniform_int_distribution<std::size_t>(0, end_sites.size() - 1)(rng)];
  d.components = {
      {"ingest", "edge", "ingest:1", streams, 1, 2,
       {{"x86_64", "", 40, 2, 4, 0, 2}, {"aarch64", "", 30, 2, 4, 0, 3}}},
      {"detect", "edge", "detect:1", streams * uniform(0.5, 4), 1, 2,
       {{"x86_64", "nvidia-t4", 24, 2, 4, 1, 18},
        {"x86_64", "nvidia-a10", 60, 4, 8, 1, 9},
        {"aarch64", "ascend-310", 16, 1, 2, 1, 22},
        {"x86_64", "", 2, 4, 4, 0, 65}}},
      {"analyze", "center", "analyze:1", streams * uniform(0.05, 0.5), 1, 1,
       {{"x86_64", "", 150, 8, 32, 0, 30}, {"x86_64", "nvidia-a10", 2000, 8, 64, 1, 8}}},
      {"archive", "center", "archive:1", uniform(0, 3), 0, 2, {{"aarch64", "", 5, 4, 16, 0, 0}}},
  };
  double budget = uniform(40, 200);  // some too tight on purpose: they must explain themselves
  d.connections = {{solver::kLocation, 0, streams * 4, budget / 8, false},
                   {0, 1, streams * 4, budget / 8, false},
                   {1, 2, std::max(1.0, streams * 0.2), budget / 3, false},
                   {2, 3, 2, std::nullopt, true}};
  d.slo_latency_ms = budget;
  return d;
}

}  // namespace

TEST_CASE("solutions never exceed free node or link capacity nor break a latency budget", "[solver]") {
  auto seed = GENERATE(range(1, 13));
  auto net = test::synthetic_network({GENERATE(150, 1200), static_cast<std::uint64_t>(seed), 0.4});
  std::mt19937_64 rng(static_cast<std::uint64_t>(seed) * 977);
  int with_solutions = 0;
  for (int i = 0; i < 6; ++i) {
    solver::Demand d = random_demand(rng, net.end_sites);
    auto answer = solver::solve(net.snapshot, d);
    REQUIRE(answer);
    if (!answer->solutions.empty()) ++with_solutions;
    const solver::Solution* cheapest = nullptr;
    for (const auto& sol : answer->solutions) {
      INFO("seed " << seed << " order " << i << " labels " << Json(sol.labels).dump());
      CHECK(test::violations(net.snapshot, d, sol) == std::vector<std::string>{});
      if (std::find(sol.labels.begin(), sol.labels.end(), "lowest-cost") != sol.labels.end()) cheapest = &sol;
    }
    if (!answer->solutions.empty()) {
      REQUIRE(cheapest);
      for (const auto& sol : answer->solutions) CHECK(cheapest->cost_per_hour() <= sol.cost_per_hour() + 1e-9);
      // Duplicates are merged: no two solutions place and route the same way.
      for (std::size_t a = 0; a < answer->solutions.size(); ++a)
        for (std::size_t b = a + 1; b < answer->solutions.size(); ++b) {
          Json ja = solver::solution_json(net.snapshot, d, answer->solutions[a], "s");
          Json jb = solver::solution_json(net.snapshot, d, answer->solutions[b], "s");
          bool same = ja["placements"] == jb["placements"] && ja["network"] == jb["network"];
          CHECK_FALSE(same);
        }
    } else {
      // Nothing fits: the answer says why.
      const auto& why = answer->explanation;
      bool explained = why.blocking_component.has_value() || why.latency_needed_ms.has_value() ||
                       std::any_of(why.combinations.begin(), why.combinations.end(), [](const auto& f) { return f.removed > 0; });
      CHECK(explained);
    }
  }
  INFO("seed " << seed << ", " << net.snapshot.nodes().size() << " nodes");
  CHECK(with_solutions > 0);  // the instances are not all hopeless
}

TEST_CASE("the budget is a ceiling: solutions over it are not offered, and the cheapest is named", "[solver]") {
  auto seed = GENERATE(range(1, 7));
  auto net = test::synthetic_network({600, static_cast<std::uint64_t>(seed), 0.3});
  std::mt19937_64 rng(static_cast<std::uint64_t>(seed) * 31);
  for (int i = 0; i < 5; ++i) {
    solver::Demand d = random_demand(rng, net.end_sites);
    auto free = solver::solve(net.snapshot, d);
    REQUIRE(free);
    if (free->solutions.empty()) continue;
    double cheapest = 1e300, dearest = 0;
    for (const auto& s : free->solutions) {
      cheapest = std::min(cheapest, s.cost_per_hour());
      dearest = std::max(dearest, s.cost_per_hour());
    }
    d.max_cost_per_hour = (cheapest + dearest) / 2;
    auto capped = solver::solve(net.snapshot, d);
    REQUIRE(capped);
    REQUIRE_FALSE(capped->solutions.empty());
    for (const auto& s : capped->solutions) CHECK(s.cost_per_hour() <= *d.max_cost_per_hour + 1e-9);
    d.max_cost_per_hour = cheapest * 0.9;
    auto none = solver::solve(net.snapshot, d);
    REQUIRE(none);
    CHECK(none->solutions.empty());
    REQUIRE(none->explanation.cheapest_cost_per_hour);
    CHECK(*none->explanation.cheapest_cost_per_hour == Approx(cheapest).epsilon(0.02));
  }
}

TEST_CASE("the same snapshot and demand always give the same answer", "[solver]") {
  auto seed = GENERATE(range(1, 6));
  auto first = test::synthetic_network({800, static_cast<std::uint64_t>(seed), 0.3});
  auto second = test::synthetic_network({800, static_cast<std::uint64_t>(seed), 0.3});  // rebuilt from scratch
  std::mt19937_64 rng(static_cast<std::uint64_t>(seed));
  for (int i = 0; i < 4; ++i) {
    solver::Demand d = random_demand(rng, first.end_sites);
    auto a = solver::solve(first.snapshot, d), b = solver::solve(second.snapshot, d), c = solver::solve(first.snapshot, d);
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(c);
    REQUIRE(a->solutions.size() == b->solutions.size());
    REQUIRE(a->solutions.size() == c->solutions.size());
    for (std::size_t k = 0; k < a->solutions.size(); ++k) {
      Json ja = solver::solution_json(first.snapshot, d, a->solutions[k], "s");
      CHECK(ja == solver::solution_json(second.snapshot, d, b->solutions[k], "s"));
      CHECK(ja == solver::solution_json(first.snapshot, d, c->solutions[k], "s"));
    }
    CHECK(solver::explanation_json(first.snapshot, d, *a) == solver::explanation_json(second.snapshot, d, *b));
  }
}
