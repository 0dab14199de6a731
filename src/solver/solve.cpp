// The pipeline end to end: resolve the location, plan (filter, options,
// Pareto search), let each strategy pick from the front, then assemble the
// pick against shared node and link capacity, re-routing a connection over
// the residual network when an earlier one took the bandwidth.
#include <algorithm>
#include <cmath>
#include <variant>

#include <fmt/format.h>

#include "stages.hpp"

namespace cpn::solver {

std::vector<Strategy> default_strategies() {
  // Lowest cost breaks ties on latency and the reverse; balanced weighs the
  // two equally, each relative to the best the front offers.
  return {{"lowest-cost", 1, 1e-6}, {"lowest-latency", 1e-6, 1}, {"balanced", 1, 1}};
}

namespace {

using namespace detail;

struct Conflict {
  std::string constraint;
};

struct Assembler {
  const Snapshot& s;
  const Demand& d;
  const Graph& g;
  const Plan& plan;
  const std::vector<int>& sources;
  RouteCache& routes;

  std::variant<Solution, Conflict> assemble(const Choice& choice) const {
    Overlay overlay(s);
    std::vector<double> link_used(s.links().size(), 0.0);
    Solution sol;
    const int n = static_cast<int>(d.components.size());
    sol.component_capacity.assign(n, 0.0);
    std::vector<std::vector<std::pair<int, double>>> sites(n);
    std::vector<double> processing(n, 0.0);
    for (int c : g.order) {
      const Option* opt = &plan.options[c][choice.option[c]];
      if (opt->sites.empty()) continue;
      auto packing = fit(c, *opt, overlay);
      if (!packing) {
        // Another component took the room (they share a site's nodes): the
        // cheapest other option of this component that fits and is within
        // reach of its upstream instead.
        auto repaired = repair(c, overlay, sites);
        if (!repaired) return Conflict{"capacity"};
        opt = &plan.options[c][repaired->first];
        packing = std::move(repaired->second);
      }
      sites[c] = opt->sites;
      for (const auto& p : packing->placements) overlay.take(p.node, d.components[c].profiles[p.profile], p.instances);
      sol.placements.insert(sol.placements.end(), packing->placements.begin(), packing->placements.end());
      sol.compute_cost += packing->cost;
      sol.component_capacity[c] = packing->capacity;
      processing[c] = packing->processing_ms;
    }
    std::vector<std::pair<int, double>> at_location;
    for (int site : sources) at_location.emplace_back(site, 1.0 / static_cast<double>(sources.size()));
    sol.connection_latency_ms.assign(d.connections.size(), 0.0);
    for (std::size_t k = 0; k < d.connections.size(); ++k) {
      const Connection& conn = d.connections[k];
      const auto& from = conn.from == kLocation ? at_location : sites[conn.from];
      for (auto [i, si] : from)
        for (auto [j, sj] : sites[conn.to]) {
          Flow flow{static_cast<int>(k), i, j, conn.bandwidth_mbps * si * sj, {}};
          if (i == j) {
            flow.path.sites = {i};
          } else {
            double limit = conn.max_latency_ms ? *conn.max_latency_ms + kEps : 1e18;
            flow.path = routes.from(i, flow.mbps, limit).path_to(j);
            bool room = std::all_of(flow.path.links.begin(), flow.path.links.end(), [&](int l) {
              return s.links()[l].free_mbps - link_used[l] + 1e-6 >= flow.mbps;
            });
            if (!room) flow.path = Routes(s, i, flow.mbps, limit, &link_used).path_to(j);
            if (flow.path.sites.empty()) return Conflict{"network-path"};
            for (int l : flow.path.links) link_used[l] += flow.mbps;
          }
          sol.network_cost += flow.mbps * flow.path.price_mbps_hour;
          sol.connection_latency_ms[k] = std::max(sol.connection_latency_ms[k], flow.path.latency_ms);
          sol.flows.push_back(std::move(flow));
        }
      if (conn.max_latency_ms && sol.connection_latency_ms[k] > *conn.max_latency_ms + kEps)
        return Conflict{"connection-latency"};
    }
    // End to end: along synchronous hops from the location, network plus processing.
    std::vector<double> arrival(n, 0.0);
    std::vector<bool> critical(n, false);
    for (int c : g.order) {
      int pc = g.parent_connection[c];
      if (pc < 0 || d.connections[pc].async) continue;
      int from = d.connections[pc].from;
      if (from != kLocation && !critical[from]) continue;
      critical[c] = true;
      arrival[c] = (from == kLocation ? 0.0 : arrival[from]) + sol.connection_latency_ms[pc] + processing[c];
      sol.latency_ms = std::max(sol.latency_ms, arrival[c]);
    }
    if (d.slo_latency_ms && sol.latency_ms > *d.slo_latency_ms + kEps) return Conflict{"slo"};
    double used = 0;
    int counted = 0;
    for (int c = 0; c < n; ++c)
      if (sol.component_capacity[c] > 0) {
        used += std::min(1.0, d.components[c].demand / sol.component_capacity[c]);
        ++counted;
      }
    sol.utilization = counted ? used / counted : 0.0;
    std::sort(sol.placements.begin(), sol.placements.end(), [](const Placement& a, const Placement& b) {
      return std::tie(a.component, a.node, a.profile) < std::tie(b.component, b.node, b.profile);
    });
    return sol;
  }

  std::optional<std::pair<std::size_t, Packing>> repair(int c, const Overlay& overlay,
                                                        const std::vector<std::vector<std::pair<int, double>>>& sites) const {
    std::vector<std::size_t> order(plan.options[c].size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) {
      return plan.options[c][a].packing.cost < plan.options[c][b].packing.cost;
    });
    int pc = g.parent_connection[c];
    std::vector<std::pair<int, double>> at_location;
    for (int site : sources) at_location.emplace_back(site, 1.0 / static_cast<double>(sources.size()));
    for (auto o : order) {
      const Option& opt = plan.options[c][o];
      if (opt.sites.empty()) continue;
      if (pc >= 0) {
        const Connection& conn = d.connections[pc];
        const auto& from = conn.from == kLocation ? at_location : sites[conn.from];
        Hop hop = hop_between(s, routes, conn, from, opt.sites);
        if (!hop.feasible || (conn.max_latency_ms && hop.latency_ms > *conn.max_latency_ms + kEps)) continue;
      }
      if (auto p = fit(c, opt, overlay)) return std::make_pair(o, std::move(*p));
    }
    return std::nullopt;
  }

  // The option's packing if it still fits beside what is placed, else a new
  // packing on the same sites at the same latency level.
  std::optional<Packing> fit(int c, const Option& opt, const Overlay& overlay) const {
    const Component& comp = d.components[c];
    Overlay trial = overlay;
    bool fits = true;
    for (const auto& p : opt.packing.placements) {
      if (trial.fits(p.node, comp.profiles[p.profile]) < p.instances) {
        fits = false;
        break;
      }
      trial.take(p.node, comp.profiles[p.profile], p.instances);
    }
    if (fits) return opt.packing;
    Packing total;
    Overlay running = overlay;
    for (auto [site, share] : opt.sites) {
      auto candidates = std::find_if(plan.filtered[c].sites.begin(), plan.filtered[c].sites.end(),
                                     [&](const SiteCandidates& sc) { return sc.site == site; });
      if (candidates == plan.filtered[c].sites.end()) return std::nullopt;
      bool single = opt.sites.size() == 1;
      auto p = pack(s, comp, c, *candidates, comp.demand * share, opt.latency_cap, running, !single,
                    single ? comp.spread_min_nodes : 1);
      if (!p || p->capacity + kEps < comp.demand * share) return std::nullopt;
      for (const auto& pl : p->placements) running.take(pl.node, comp.profiles[pl.profile], pl.instances);
      total.placements.insert(total.placements.end(), p->placements.begin(), p->placements.end());
      total.cost += p->cost;
      total.capacity += p->capacity;
      total.instances += p->instances;
      total.processing_ms = std::max(total.processing_ms, p->processing_ms);
    }
    return total;
  }
};

bool same_solution(const Solution& a, const Solution& b) {
  if (a.placements.size() != b.placements.size() || a.flows.size() != b.flows.size()) return false;
  for (std::size_t i = 0; i < a.placements.size(); ++i) {
    const auto &x = a.placements[i], &y = b.placements[i];
    if (x.component != y.component || x.node != y.node || x.profile != y.profile || x.instances != y.instances)
      return false;
  }
  for (std::size_t i = 0; i < a.flows.size(); ++i)
    if (a.flows[i].path.links != b.flows[i].path.links || a.flows[i].to_site != b.flows[i].to_site) return false;
  return true;
}

// Order in which a strategy prefers the front's placements.
std::vector<std::size_t> ranking(const std::vector<Choice>& front, const Strategy& strategy) {
  double min_cost = 1e300, min_latency = 1e300;
  for (const auto& c : front) {
    min_cost = std::min(min_cost, c.cost);
    min_latency = std::min(min_latency, c.latency_ms);
  }
  min_cost = std::max(min_cost, 1e-6);
  min_latency = std::max(min_latency, 1e-3);
  auto score = [&](const Choice& c) {
    return strategy.cost_weight * c.cost / min_cost + strategy.latency_weight * c.latency_ms / min_latency;
  };
  std::vector<std::size_t> order(front.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return score(front[a]) < score(front[b]) - 1e-12; });
  return order;
}

}  // namespace

Result<Answer> solve(const Snapshot& s, const Demand& d, const Options& options) {
  Answer answer;
  if (d.location.empty()) return fail(Error::invalid_field("/parameters/location", "a location (a site or a city) is needed"));
  if (auto site = s.site_index(d.location)) answer.sources = {*site};
  else {
    // A city: its end sites (the cameras), or all its sites when it has none.
    auto city = s.sites_in_city(d.location);
    for (int i : city)
      if (s.sites()[i].tier == "end") answer.sources.push_back(i);
    if (answer.sources.empty()) answer.sources = city;
  }
  if (answer.sources.empty())
    return fail(Error::invalid_field("/parameters/location",
                                     fmt::format("'{}' is neither a site nor a city of the inventory", d.location)));

  const Graph g = component_graph(d);
  Overlay none(s);
  RouteCache routes(s);
  Plan plan = make_plan(s, d, answer.sources, g, none, options, true, routes);
  Explanation& why = answer.explanation;

  std::vector<Choice> affordable;
  for (const auto& c : plan.front)
    if (!d.max_cost_per_hour || c.cost <= *d.max_cost_per_hour + kEps) affordable.push_back(c);
  std::size_t over_budget = plan.front.size() - affordable.size();

  std::map<std::string, std::size_t> conflicts;
  Assembler assembler{s, d, g, plan, answer.sources, routes};
  for (const auto& strategy : options.strategies) {
    auto order = ranking(affordable, strategy);
    for (std::size_t attempt = 0; attempt < std::min<std::size_t>(order.size(), 8); ++attempt) {
      auto result = assembler.assemble(affordable[order[attempt]]);
      if (auto* conflict = std::get_if<Conflict>(&result)) {
        ++conflicts[conflict->constraint];
        continue;
      }
      Solution sol = std::move(std::get<Solution>(result));
      if (d.max_cost_per_hour && sol.cost_per_hour() > *d.max_cost_per_hour + kEps) {
        ++conflicts["budget"];
        continue;
      }
      auto same = std::find_if(answer.solutions.begin(), answer.solutions.end(),
                               [&](const Solution& x) { return same_solution(x, sol); });
      if (same != answer.solutions.end()) same->labels.push_back(strategy.label);
      else {
        sol.labels = {strategy.label};
        answer.solutions.push_back(std::move(sol));
      }
      break;
    }
  }

  for (const auto& f : plan.filtered) why.components.push_back(f.report);
  why.combinations = {
      {"connection-latency", "a hop's network path is over its connection's max_latency_ms",
       plan.hop_latency_rejected + conflicts["connection-latency"]},
      {"network-path", "no route between the sites with enough free bandwidth", plan.hop_unreachable},
      {"slo", "network and processing latency along the chain is over the end-to-end target",
       plan.slo_rejected + conflicts["slo"]},
      {"budget", "the resource cost is over the customer's ceiling", over_budget + conflicts["budget"]},
      {"shared-capacity", "components or flows competing for the same nodes or links",
       conflicts["capacity"] + conflicts["network-path"]},
  };
  for (int c : g.order)
    if (plan.options[c].empty()) {
      why.blocking_component = d.components[c].name;
      break;
    }
  if (answer.solutions.empty()) {
    if (!plan.front.empty() && affordable.empty()) why.cheapest_cost_per_hour = plan.front.front().cost;
    if (plan.front.empty() && !why.blocking_component && d.slo_latency_ms) {
      Plan relaxed = make_plan(s, d, answer.sources, g, none, options, false, routes);
      for (const auto& c : relaxed.front)
        why.latency_needed_ms = std::min(why.latency_needed_ms.value_or(1e300), c.latency_ms);
    }
  }
  return answer;
}

}  // namespace cpn::solver
