// The solver on small hand-made networks, one behaviour per case.
#include <catch2/catch.hpp>

#include "solver/solution_check.hpp"

using namespace cpn;

namespace {

// cams --2ms-- edge-a --10ms-- centre ; cams --30ms-- edge-far ; edge-a --3ms-- edge-b
struct Net {
  solver::Snapshot::Builder b;
  Net() {
    solver::Prices edge{0.05, 0.005, {{"nvidia-t4", 1.2}, {"ascend-310", 0.8}}};
    solver::Prices cheap_edge{0.02, 0.002, {{"nvidia-t4", 0.6}, {"ascend-310", 0.4}}};
    b.add_site({"cams", "end", "Shenzhen", {}});
    b.add_site({"edge-a", "edge", "Shenzhen", edge});
    b.add_site({"edge-b", "edge", "Shenzhen", edge});
    b.add_site({"edge-far", "edge", "Zhuhai", cheap_edge});
    b.add_site({"centre", "center", "Guangzhou", {0.03, 0.004, {}}});
    link("cams", "edge-a", 2, 1000, 0.001);
    link("cams", "edge-far", 30, 1000, 0.001);
    link("edge-a", "edge-b", 3, 10000, 0.0005);
    link("edge-a", "centre", 10, 10000, 0.0005);
  }
  void link(const std::string& a, const std::string& z, double ms, double mbps, double price) {
    b.add_link(a, z, {a + "--" + z, -1, -1, ms, mbps, price});
  }
  void node(const std::string& site, const std::string& id, const std::string& arch, double cpu, double mem,
            const std::string& model = "", int count = 0, bool ready = true) {
    solver::Node n;
    n.id = id;
    n.arch = arch;
    n.cpu_free = cpu;
    n.memory_free = mem;
    n.ready = ready;
    if (count) n.accelerators.push_back({model, count});
    b.add_node(site, std::move(n));
  }
  solver::Snapshot build() { return *std::move(b).build(); }
};

solver::Component detector(double demand) {
  return {"detect", "edge", "detect:1", demand, 1, 2,
          {{"x86_64", "nvidia-t4", 24, 2, 4, 1, 18}, {"aarch64", "ascend-310", 16, 1, 2, 1, 22}, {"x86_64", "", 2, 4, 4, 0, 65}}};
}

solver::Demand one_hop(solver::Component c, double mbps, std::optional<double> max_ms, std::string location = "cams") {
  solver::Demand d;
  d.location = std::move(location);
  d.components = {std::move(c)};
  d.connections = {{solver::kLocation, 0, mbps, max_ms, false}};
  return d;
}

std::map<std::string, int> instances_by_node(const solver::Snapshot& s, const solver::Solution& sol) {
  std::map<std::string, int> out;
  for (const auto& p : sol.placements) out[s.nodes()[p.node].id] += p.instances;
  return out;
}

const solver::Solution& labelled(const solver::Answer& a, const std::string& label) {
  for (const auto& s : a.solutions)
    if (std::find(s.labels.begin(), s.labels.end(), label) != s.labels.end()) return s;
  FAIL("no solution labelled " << label);
  return a.solutions.front();
}

}  // namespace

TEST_CASE("an order that exceeds every site's capacity explains which constraint failed", "[solver]") {
  Net n;
  n.node("edge-a", "a-t4", "x86_64", 16, 64, "nvidia-t4", 2);
  n.node("edge-a", "a-down", "x86_64", 64, 256, "nvidia-t4", 4, false);
  n.node("centre", "c-1", "x86_64", 64, 256);
  n.node("edge-far", "far-arm", "aarch64", 32, 64, "ascend-310", 4);
  auto s = n.build();
  auto answer = solver::solve(s, one_hop(detector(500), 100, 10));
  REQUIRE(answer);
  CHECK(answer->solutions.empty());
  const auto& why = answer->explanation;
  REQUIRE(why.blocking_component == "detect");
  const auto& report = why.components.at(0);
  std::map<std::string, std::size_t> removed;
  for (const auto& f : report.filters) removed[f.filter] = f.removed;
  CHECK(removed["node-state"] == 1);  // a-down
  CHECK(removed["tier"] == 1);        // the centre node
  CHECK(removed["latency"] == 1);     // edge-far is 30 ms away, the hop allows 10
  CHECK(report.feasible_nodes == 1);
  CHECK(report.free_capacity == Approx(48));  // two T4 instances of 24
  CHECK(report.serving_sites == 0);
}

TEST_CASE("a component mixes architectures across nodes when one kind is not enough", "[solver]") {
  Net n;
  n.node("edge-a", "a-t4", "x86_64", 16, 64, "nvidia-t4", 2);
  n.node("edge-a", "a-arm", "aarch64", 16, 32, "ascend-310", 4);
  auto s = n.build();
  solver::Demand d = one_hop(detector(100), 50, 10);  // 2 T4 serve 48; the rest needs Ascend
  auto answer = solver::solve(s, d);
  REQUIRE(answer);
  REQUIRE_FALSE(answer->solutions.empty());
  const auto& cheapest = labelled(*answer, "lowest-cost");
  CHECK(test::violations(s, d, cheapest).empty());
  std::set<std::string> archs;
  for (const auto& p : cheapest.placements) archs.insert(d.components[0].profiles[p.profile].arch);
  CHECK(archs == std::set<std::string>{"aarch64", "x86_64"});
}

TEST_CASE("two or more instances are spread over at least two nodes", "[solver]") {
  Net n;
  n.node("edge-a", "a-big", "x86_64", 64, 256, "nvidia-t4", 8);
  n.node("edge-a", "a-small", "x86_64", 8, 32, "nvidia-t4", 1);
  auto s = n.build();
  solver::Demand d = one_hop(detector(40), 50, 10);  // two T4 instances
  auto answer = solver::solve(s, d);
  REQUIRE(answer);
  REQUIRE_FALSE(answer->solutions.empty());
  CHECK(instances_by_node(s, answer->solutions[0]) == std::map<std::string, int>{{"a-big", 1}, {"a-small", 1}});

  SECTION("a blueprint may ask for one node") {
    d.components[0].spread_min_nodes = 1;
    auto packed = solver::solve(s, d);
    REQUIRE(packed);
    CHECK(instances_by_node(s, packed->solutions[0]) == std::map<std::string, int>{{"a-big", 2}});
  }
  SECTION("a site with one node cannot host a spread component") {
    Net m;
    m.node("edge-a", "a-big", "x86_64", 64, 256, "nvidia-t4", 8);
    auto single = m.build();
    auto none = solver::solve(single, d);
    REQUIRE(none);
    CHECK(none->solutions.empty());
  }
}

TEST_CASE("a component larger than any site is shared over sites, bandwidth split by share", "[solver]") {
  Net n;
  n.node("edge-a", "a-t4", "x86_64", 16, 64, "nvidia-t4", 2);  // 48 units
  n.node("edge-a", "a-t4b", "x86_64", 16, 64, "nvidia-t4", 1);  // 24
  n.node("edge-b", "b-t4", "x86_64", 16, 64, "nvidia-t4", 2);  // 48
  n.node("edge-b", "b-t4b", "x86_64", 16, 64, "nvidia-t4", 1);  // 24
  auto s = n.build();
  solver::Component c = detector(120);
  c.profiles.resize(1);  // T4 only
  solver::Demand d = one_hop(c, 300, 10);
  auto answer = solver::solve(s, d);
  REQUIRE(answer);
  REQUIRE_FALSE(answer->solutions.empty());
  const auto& sol = answer->solutions[0];
  CHECK(test::violations(s, d, sol).empty());
  std::map<std::string, double> mbps;
  for (const auto& f : sol.flows) mbps[s.sites()[f.to_site].id] += f.mbps;
  REQUIRE(mbps.size() == 2);
  double a = sol.component_capacity[0];
  double at_a = 0;
  for (const auto& p : sol.placements)
    if (s.sites()[s.nodes()[p.node].site].id == "edge-a") at_a += d.components[0].profiles[p.profile].capacity * p.instances;
  CHECK(mbps["edge-a"] == Approx(300 * at_a / a));
  CHECK(mbps["edge-a"] + mbps["edge-b"] == Approx(300));
}

TEST_CASE("strategies weigh cost against latency and merge when they agree", "[solver]") {
  Net n;
  n.node("edge-a", "a-t4", "x86_64", 32, 128, "nvidia-t4", 4);
  n.node("edge-a", "a-t4-2", "x86_64", 32, 128, "nvidia-t4", 4);
  n.node("edge-a", "a-cpu", "x86_64", 64, 256);
  n.node("edge-a", "a-cpu-2", "x86_64", 64, 256);
  auto s = n.build();
  solver::Component c = detector(4);
  c.profiles = {{"x86_64", "nvidia-t4", 24, 2, 4, 1, 18}, {"x86_64", "", 2, 4, 4, 0, 65}};
  solver::Demand d = one_hop(c, 10, 10);
  d.slo_latency_ms = 200;
  auto answer = solver::solve(s, d);
  REQUIRE(answer);
  const auto& cheap = labelled(*answer, "lowest-cost");
  const auto& fast = labelled(*answer, "lowest-latency");
  // Two CPU instances (2 x 0.22/h) beat one T4 (1.32/h); the T4 answers in 18 ms instead of 65.
  CHECK(cheap.cost_per_hour() < fast.cost_per_hour());
  CHECK(fast.latency_ms < cheap.latency_ms);
  CHECK(fast.latency_ms == Approx(2 + 18));
  CHECK(answer->solutions.size() <= 3);

  SECTION("an end-to-end target rules out the slow profile") {
    d.slo_latency_ms = 40;
    auto strict = solver::solve(s, d);
    REQUIRE(strict);
    REQUIRE(strict->solutions.size() == 1);  // every strategy picks the T4: merged into one
    CHECK(strict->solutions[0].labels.size() == 3);
    CHECK(strict->solutions[0].latency_ms <= 40);
  }
  SECTION("a target nothing reaches says what latency would fit") {
    d.slo_latency_ms = 10;
    auto none = solver::solve(s, d);
    REQUIRE(none);
    CHECK(none->solutions.empty());
    REQUIRE(none->explanation.latency_needed_ms);
    CHECK(*none->explanation.latency_needed_ms == Approx(20));
  }
}

TEST_CASE("components on one site share its nodes", "[solver]") {
  Net n;
  n.node("edge-a", "a-1", "x86_64", 12, 64);
  n.node("edge-a", "a-2", "x86_64", 12, 64);
  n.node("edge-b", "b-1", "x86_64", 12, 64);
  n.node("edge-b", "b-2", "x86_64", 12, 64);
  auto s = n.build();
  solver::Demand d;
  d.location = "cams";
  solver::Component ingest{"ingest", "edge", "i:1", 40, 1, 2, {{"x86_64", "", 10, 4, 4, 0, 2}}};
  solver::Component detect{"detect", "edge", "d:1", 30, 1, 2, {{"x86_64", "", 10, 4, 4, 0, 20}}};
  d.components = {ingest, detect};
  d.connections = {{solver::kLocation, 0, 100, 10, false}, {0, 1, 100, 10, false}};
  auto answer = solver::solve(s, d);
  REQUIRE(answer);
  REQUIRE_FALSE(answer->solutions.empty());
  for (const auto& sol : answer->solutions) CHECK(test::violations(s, d, sol).empty());
}

TEST_CASE("a location is a site or a city, anything else is a field error", "[solver]") {
  Net n;
  n.node("edge-a", "a-t4", "x86_64", 16, 64, "nvidia-t4", 2);
  auto s = n.build();
  auto by_city = solver::solve(s, one_hop(detector(10), 10, 10, "shenzhen"));
  REQUIRE(by_city);
  REQUIRE(by_city->sources.size() == 1);  // the city's end site, not its edges
  CHECK(s.sites()[by_city->sources[0]].id == "cams");
  auto unknown = solver::solve(s, one_hop(detector(10), 10, 10, "Atlantis"));
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().errors.at(0).pointer == "/parameters/location");
}
