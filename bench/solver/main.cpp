// bench/solver: how fast and how good the solver is.
//
// For each network size it generates a reproducible network (seeded) and a
// set of orders on the real blueprints (video detection and face
// verification, random streams, resolutions and camera sites), times the
// full translation of each order (blueprint evaluation, demand, solve,
// quotes) and prints the median and p99. For sizes up to --cbc-max-nodes it
// also writes each order's lowest-cost placement problem as an integer
// program, solves it with CBC (coinor-cbc) and prints cpnd's lowest-cost
// cost_per_hour over CBC's optimum, and CBC's time over cpnd's.
//
//   build/bench/solver_bench [--sizes 100,1000,10000] [--orders 20] [--cbc-max-nodes 2000] [--cbc-seconds 60]
//
// Columns: orders (that fit / all), median and p99 ms of the full translation,
// p99 of the orders that fit (one that fits nowhere also searches what would
// fit), p99 of the solver alone, solutions per order; then CBC: instances
// solved to optimality / compared, cpnd cost over the optimum (max, median,
// min), and CBC time over cpnd time (median).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "../../src/orders/translate.hpp"
#include "../../test/support/synthetic_network.hpp"
#include "cpn/core/document.hpp"
#include "cpn/schema/schema.hpp"
#include "integer_program.hpp"

namespace {

using namespace cpn;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double rank = std::ceil(q * static_cast<double>(v.size()));
  std::size_t i = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
  return v[std::min(i, v.size() - 1)];
}

struct Blueprints {
  std::map<std::string, Json> templates;
  std::vector<blueprint::Blueprint> compiled;
};

Blueprints load_blueprints() {
  Blueprints b;
  for (const auto& [path, text] : schema::embedded_files()) {
    if (path.rfind("blueprints/templates/", 0) != 0) continue;
    auto doc = parse_document(text, Format::yaml);
    b.templates[blueprint::version_id((*doc)["metadata"]["name"], (*doc)["metadata"]["version"])] = (*doc)["spec"];
  }
  blueprint::Context ctx;
  ctx.accelerator_models = {"nvidia-t4", "nvidia-a10", "nvidia-a100", "ascend-310", "ascend-910", "xilinx-alveo-u50"};
  ctx.find_template = [&b](const std::string& ref) -> const Json* {
    auto it = b.templates.find(ref);
    return it == b.templates.end() ? nullptr : &it->second;
  };
  for (const char* name : {"blueprints/video-detection.yaml", "blueprints/face-verification.yaml"}) {
    auto doc = parse_document(schema::embedded_files().at(name), Format::yaml);
    auto bp = blueprint::Blueprint::compile(*doc, ctx);
    if (!bp) throw std::runtime_error(bp.error().message);
    b.compiled.push_back(std::move(*bp));
  }
  return b;
}

// The network as a Topology document, so that cpnd itself can load it
// (what is held in the snapshot is simply left out).
Json topology_of(const solver::Snapshot& s) {
  Json sites = Json::array();
  std::vector<Json> nodes(s.sites().size(), Json::array());
  for (const auto& n : s.nodes()) {
    Json node = {{"id", n.id}, {"arch", n.arch}, {"cpu", n.cpu_free}, {"memory", n.memory_free},
                 {"state", n.ready ? "ready" : "cordoned"}};
    for (const auto& a : n.accelerators)
      if (a.free > 0)
        node["accelerators"].push_back({{"type", a.model.rfind("xilinx", 0) == 0 ? "fpga" : a.model.rfind("ascend", 0) == 0 ? "npu" : "gpu"},
                                        {"model", a.model}, {"count", a.free}});
    nodes[n.site].push_back(node);
  }
  for (std::size_t i = 0; i < s.sites().size(); ++i) {
    const auto& site = s.sites()[i];
    Json prices = {{"cpu_core_hour", site.prices.cpu_core_hour}, {"memory_gib_hour", site.prices.memory_gib_hour},
                   {"accelerators", site.prices.accelerators}};
    sites.push_back({{"id", site.id}, {"tier", site.tier}, {"city", site.city}, {"prices", prices}, {"nodes", nodes[i]}});
  }
  Json links = Json::array();
  for (const auto& l : s.links())
    links.push_back({{"from", s.sites()[l.a].id}, {"to", s.sites()[l.b].id}, {"latency_ms", l.latency_ms},
                     {"bandwidth_mbps", l.free_mbps}, {"price_mbps_hour", l.price_mbps_hour}});
  return {{"apiVersion", "cpn/v1"}, {"kind", "Topology"}, {"sites", sites}, {"links", links}};
}

struct CbcResult {
  bool optimal = false;
  double objective = 0, seconds = 0;
  std::string status;
};

CbcResult run_cbc(const std::string& lp, int seconds, const std::filesystem::path& dir, int index) {
  auto model = dir / fmt::format("order-{}.lp", index);
  auto solution = dir / fmt::format("order-{}.sol", index);
  std::ofstream(model) << lp;
  std::string cmd = fmt::format("cbc {} sec {} solve solu {} 2>&1", model.string(), seconds, solution.string());
  auto start = Clock::now();
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (pipe && fgets(buf, sizeof buf, pipe)) out += buf;
  if (pipe) pclose(pipe);
  CbcResult r;
  r.seconds = ms_since(start) / 1000;
  // CBC's own wall clock, without process start and parsing.
  if (auto at = out.find("(Wallclock seconds):"); at != std::string::npos)
    r.seconds = std::stod(out.substr(at + 20));
  std::ifstream sol(solution);
  std::getline(sol, r.status);
  r.optimal = r.status.rfind("Optimal", 0) == 0;
  if (auto at = r.status.find("objective value"); at != std::string::npos) r.objective = std::stod(r.status.substr(at + 15));
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cpnd solver benchmark: translation time per network size, lowest-cost quality against CBC"};
  std::vector<int> sizes = {100, 500, 1000, 5000, 10000, 50000};
  int orders = 20, cbc_max = 2000, cbc_seconds = 60;
  std::uint64_t seed = 7;
  bool verbose = false;
  double check_quality = -1;
  std::string emit_topology;
  app.add_option("--emit-topology", emit_topology,
                 "write the network of the first size as a Topology document (JSON) to this file and exit");
  app.add_flag("--verbose", verbose, "one line per order on stderr");
  app.add_option("--check-quality", check_quality,
                 "exit 1 when a lowest-cost answer is more than this fraction over CBC's optimum (77 without cbc)");
  app.add_option("--sizes", sizes, "network sizes in nodes")->delimiter(',');
  app.add_option("--orders", orders, "orders per size");
  app.add_option("--cbc-max-nodes", cbc_max, "compare with CBC up to this size (0: never)");
  app.add_option("--cbc-seconds", cbc_seconds, "CBC time limit per instance");
  app.add_option("--seed", seed, "seed of the networks and orders");
  CLI11_PARSE(app, argc, argv);

  if (!emit_topology.empty()) {
    auto net = test::synthetic_network({sizes.at(0), seed + static_cast<std::uint64_t>(sizes.at(0)), 0.3});
    std::ofstream(emit_topology) << topology_of(net.snapshot).dump();
    std::cout << fmt::format("{}: {} sites, {} nodes, {} links; end sites such as {}\n", emit_topology, net.sites,
                             net.snapshot.nodes().size(), net.links, net.end_sites.front());
    return 0;
  }
  Blueprints blueprints = load_blueprints();
  bool have_cbc = std::system("command -v cbc >/dev/null 2>&1") == 0;
  if (!have_cbc) std::cout << "cbc not found (apt-get install coinor-cbc): quality columns are skipped\n";
  if (!have_cbc && check_quality >= 0) return 77;
  int off_target = 0, optimal_total = 0;
  auto dir = std::filesystem::temp_directory_path() / fmt::format("cpnd-solver-bench-{}", getpid());
  std::filesystem::create_directories(dir);
  bool keep_models = false;  // kept when an instance is off the target, to look at

  fmt::print("{:>7} {:>6} {:>6} {:>7} {:>9} {:>9} {:>9} {:>9} {:>6} | {:>8} {:>9} {:>9} {:>9} {:>11}\n", "nodes", "sites",
             "links", "orders", "median ms", "p99 ms", "p99 fits", "solve p99", "sols", "cbc opt", "ratio max",
             "ratio med", "ratio min", "cbc/cpnd t");
  for (int size : sizes) {
    auto net = test::synthetic_network({size, seed + static_cast<std::uint64_t>(size), 0.3});
    std::mt19937_64 rng(seed * 31 + static_cast<std::uint64_t>(size));
    std::vector<double> times, solve_times, ratios, time_ratios, feasible_times;
    int infeasible = 0;
    int solved_optimal = 0, compared = 0, solution_count = 0;
    for (int i = 0; i < orders; ++i) {
      const auto& bp = blueprints.compiled[i % 2];
      Json params = {{"location", net.end_sites[std::uniform_int_distribution<std::size_t>(0, net.end_sites.size() - 1)(rng)]}};
      const char* res[] = {"720p", "1080p", "4k"};
      if (i % 2 == 0) {
        params["streams"] = std::uniform_int_distribution<int>(8, 300)(rng);
        params["resolution"] = res[std::uniform_int_distribution<int>(0, 2)(rng)];
      } else {
        params["streams"] = std::uniform_int_distribution<int>(4, 80)(rng);
        params["resolution"] = res[std::uniform_int_distribution<int>(0, 1)(rng)];
      }
      auto start = Clock::now();
      auto t = orders::detail::translate(net.snapshot, bp, Json(), params, "", 24);
      times.push_back(ms_since(start));
      if (!t) {
        std::cerr << "order failed: " << t.error().message << "\n";
        continue;
      }
      solution_count += static_cast<int>(t->solutions.size());
      // An order that fits nowhere also searches what would fit (a few more solves).
      if (t->solutions.empty()) ++infeasible;
      else feasible_times.push_back(times.back());
      // The solver alone, and its lowest-cost answer for the comparison.
      auto evaluation = bp.evaluate(params);
      solver::Demand demand = orders::detail::demand_of(bp, *evaluation, params);
      start = Clock::now();
      auto answer = solver::solve(net.snapshot, demand);
      double cpnd_ms = ms_since(start);
      solve_times.push_back(cpnd_ms);
      if (verbose)
        std::cerr << fmt::format("size {} order {}: solve {:.2f} ms, translate {:.2f} ms, {} solutions, {}\n", size, i, cpnd_ms,
                                 times.back(), answer ? answer->solutions.size() : 0, params.dump());
      if (!have_cbc || size > cbc_max || !answer || answer->solutions.empty()) continue;
      const solver::Solution* cheapest = nullptr;
      for (const auto& sol : answer->solutions)
        if (std::find(sol.labels.begin(), sol.labels.end(), "lowest-cost") != sol.labels.end()) cheapest = &sol;
      auto ip = bench::lowest_cost_program(net.snapshot, demand);
      if (ip.empty || !cheapest) continue;
      ++compared;
      auto cbc = run_cbc(ip.lp, cbc_seconds, dir, size * 1000 + i);
      if (!cbc.optimal) {
        std::cerr << fmt::format("size {} order {}: CBC {}\n", size, i, cbc.status);
        continue;
      }
      ++solved_optimal;
      ++optimal_total;
      double ratio = cbc.objective > 0 ? cheapest->cost_per_hour() / cbc.objective : 1.0;
      ratios.push_back(ratio);
      time_ratios.push_back(cbc.seconds * 1000 / std::max(cpnd_ms, 1e-3));
      if (check_quality >= 0 && ratio > 1 + check_quality) ++off_target;
      if (ratio > 1.02) {
        keep_models = true;
        std::cerr << fmt::format("size {} order {}: cpnd {:.4f} vs CBC {:.4f} ({}), model in {}\n", size, i,
                                 cheapest->cost_per_hour(), cbc.objective, params.dump(), (dir / fmt::format("order-{}.lp", size * 1000 + i)).string());
      }
    }
    auto show = [&](const std::vector<double>& v, double q) { return v.empty() ? std::string("-") : fmt::format("{:.4f}", percentile(v, q)); };
    fmt::print("{:>7} {:>6} {:>6} {:>7} {:>9.2f} {:>9.2f} {:>9.2f} {:>9.2f} {:>6.1f} | {:>8} {:>9} {:>9} {:>9} {:>11}\n", size,
               net.sites, net.links, fmt::format("{}/{}", orders - infeasible, orders), percentile(times, 0.5),
               percentile(times, 0.99), percentile(feasible_times, 0.99), percentile(solve_times, 0.99),
               static_cast<double>(solution_count) / orders,
               have_cbc && size <= cbc_max ? fmt::format("{}/{}", solved_optimal, compared) : std::string("-"),
               show(ratios, 1.0), show(ratios, 0.5), show(ratios, 0.0),
               time_ratios.empty() ? std::string("-") : fmt::format("{:.0f}x", percentile(time_ratios, 0.5)));
    std::fflush(stdout);
  }
  if (!keep_models) std::filesystem::remove_all(dir);
  if (check_quality >= 0) {
    fmt::print("{} of {} instances solved to optimality by CBC are more than {:.1f}% over its optimum\n", off_target,
               optimal_total, check_quality * 100);
    if (off_target > 0 || optimal_total == 0) return 1;
  }
  return 0;
}
