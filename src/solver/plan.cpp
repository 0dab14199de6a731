// Score and Select: placement options per component (one per site and
// processing-latency level, ranked by estimated cost and latency), then an
// exact search over the component tree that keeps, for every option, the
// Pareto front of (cost, end-to-end latency) of everything below it. Every
// strategy's best lies on the root's front, so one search serves them all.
#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <set>

#include "stages.hpp"

namespace cpn::solver::detail {
namespace {

constexpr std::size_t kFrontLimit = 24;

struct Label {
  double cost = 0, latency = 0;
  std::vector<std::tuple<int, int, int>> picks;  // child component, its option, label index
};

// Keeps the labels no other label beats on both cost and latency; a long
// front is thinned evenly (its ends always stay).
std::vector<Label> pareto(std::vector<Label> labels) {
  std::sort(labels.begin(), labels.end(), [](const Label& a, const Label& b) {
    return a.cost != b.cost ? a.cost < b.cost : a.latency < b.latency;
  });
  std::vector<Label> out;
  for (auto& l : labels)
    if (out.empty() || l.latency < out.back().latency - kEps) out.push_back(std::move(l));
  if (out.size() > kFrontLimit) {
    std::vector<Label> thin;
    for (std::size_t i = 0; i < kFrontLimit; ++i) thin.push_back(std::move(out[i * (out.size() - 1) / (kFrontLimit - 1)]));
    out = std::move(thin);
  }
  return out;
}

}  // namespace

const Routes& RouteCache::from(int site, double mbps, double max_latency_ms) {
  auto& slot = cache_[{site, mbps, max_latency_ms}];
  if (!slot) slot = std::make_unique<Routes>(*snapshot_, site, mbps, max_latency_ms);
  return *slot;
}

Hop hop_between(const Snapshot&, RouteCache& routes, const Connection& conn,
                const std::vector<std::pair<int, double>>& from, const std::vector<std::pair<int, double>>& to) {
  Hop hop;
  hop.feasible = true;
  for (auto [i, si] : from)
    for (auto [j, sj] : to) {
      if (i == j) continue;  // same site: no link crossed
      double mbps = conn.bandwidth_mbps * si * sj;
      // A route over the hop's budget is no use: the search stops there.
      const Routes& r = routes.from(i, mbps, conn.max_latency_ms ? *conn.max_latency_ms + kEps : 1e18);
      if (!r.reaches(j)) return Hop{};
      hop.latency_ms = std::max(hop.latency_ms, r.latency_ms(j));
      hop.cost += mbps * r.price_mbps_hour(j);
    }
  return hop;
}

Graph component_graph(const Demand& d) {
  const int n = static_cast<int>(d.components.size());
  Graph g;
  g.parent_connection.assign(n, -1);
  g.children.assign(n + 1, {});
  for (std::size_t k = 0; k < d.connections.size(); ++k) {
    const auto& conn = d.connections[k];
    if (g.parent_connection[conn.to] < 0 && conn.from != conn.to) g.parent_connection[conn.to] = static_cast<int>(k);
  }
  // Breadth first from the location; what it does not reach hangs off the root.
  std::vector<bool> seen(n, false);
  std::deque<int> queue;
  for (int c = 0; c < n; ++c)
    if (g.parent_connection[c] >= 0 && d.connections[g.parent_connection[c]].from == kLocation) {
      g.children[0].push_back(c);
      queue.push_back(c);
      seen[c] = true;
    }
  auto drain = [&] {
    while (!queue.empty()) {
      int c = queue.front();
      queue.pop_front();
      g.order.push_back(c);
      for (int ch = 0; ch < n; ++ch)
        if (!seen[ch] && g.parent_connection[ch] >= 0 && d.connections[g.parent_connection[ch]].from == c) {
          g.children[c + 1].push_back(ch);
          seen[ch] = true;
          queue.push_back(ch);
        }
    }
  };
  drain();
  for (int c = 0; c < n; ++c)
    if (!seen[c]) {  // no connection from the location's side (or a cycle): a root of its own
      g.parent_connection[c] = -1;
      g.children[0].push_back(c);
      seen[c] = true;
      queue.push_back(c);
      drain();
    }
  return g;
}

namespace {

std::vector<Option> single_site_options(const Snapshot& s, const Demand& d, int c, const Filtered& f,
                                        const Overlay& overlay, double inbound_mbps, std::size_t keep,
                                        std::size_t& spread_sites, std::size_t& serving_sites) {
  const Component& comp = d.components[c];
  std::vector<Option> all;
  for (const auto& site : f.sites) {
    std::set<double> caps;
    for (const auto& [cls, profiles] : site.classes)
      for (int p : profiles) caps.insert(comp.profiles[p].latency_ms);
    std::optional<Packing> previous;
    // From the slowest level (all profiles, cheapest) to the fastest. A
    // faster level may fit where a slower did not: fewer, larger instances
    // spread more easily.
    for (auto it = caps.rbegin(); it != caps.rend(); ++it) {
      auto packing = pack(s, comp, c, site, comp.demand, *it, overlay, false, comp.spread_min_nodes);
      if (!packing) continue;
      if (previous && (packing->processing_ms >= previous->processing_ms - kEps)) continue;
      previous = packing;
      all.push_back({{{site.site, 1.0}}, std::move(*packing), *it});
    }
    if (!previous && comp.spread_min_nodes > 1 &&
        pack(s, comp, c, site, comp.demand, 1e18, overlay, false, 1))
      ++spread_sites;  // it would fit on fewer nodes than the blueprint's spread asks
  }
  std::set<int> serving;
  for (const auto& o : all) serving.insert(o.sites[0].first);
  serving_sites = serving.size();
  auto est_cost = [&](const Option& o) { return o.packing.cost + inbound_mbps * f.reach_price[o.sites[0].first]; };
  auto est_latency = [&](const Option& o) { return f.reach_latency[o.sites[0].first] + o.packing.processing_ms; };
  std::vector<std::size_t> by_cost(all.size()), by_latency(all.size());
  for (std::size_t i = 0; i < all.size(); ++i) by_cost[i] = by_latency[i] = i;
  std::stable_sort(by_cost.begin(), by_cost.end(), [&](auto a, auto b) { return est_cost(all[a]) < est_cost(all[b]); });
  std::stable_sort(by_latency.begin(), by_latency.end(),
                   [&](auto a, auto b) { return est_latency(all[a]) < est_latency(all[b]); });
  std::set<std::size_t> chosen;
  for (std::size_t i = 0; i < std::min(keep, all.size()); ++i) {
    chosen.insert(by_cost[i]);
    chosen.insert(by_latency[i]);
  }
  std::vector<Option> out;
  for (auto i : chosen) out.push_back(std::move(all[i]));
  return out;
}

// No single site can serve the component: share it over several, taking
// sites in order of estimated cost per work unit, or of latency.
std::vector<Option> spill_options(const Snapshot& s, const Demand& d, int c, const Filtered& f, const Overlay& overlay,
                                  double inbound_mbps) {
  const Component& comp = d.components[c];
  struct Offer {
    std::size_t site;
    double unit_cost, latency;
  };
  std::vector<Offer> offers;
  for (std::size_t i = 0; i < f.sites.size(); ++i) {
    auto p = pack(s, comp, c, f.sites[i], comp.demand, 1e18, overlay, true, 1);
    if (!p || p->capacity <= 0) continue;
    int site = f.sites[i].site;
    offers.push_back({i, p->cost / p->capacity + inbound_mbps * f.reach_price[site] / std::max(comp.demand, kEps),
                      f.reach_latency[site] + p->processing_ms});
  }
  std::vector<Option> out;
  for (bool by_latency : {false, true}) {
    auto sorted = offers;
    std::stable_sort(sorted.begin(), sorted.end(), [&](const Offer& a, const Offer& b) {
      return by_latency ? a.latency < b.latency : a.unit_cost < b.unit_cost;
    });
    Option option;
    option.latency_cap = 1e18;
    double rem = comp.demand;
    for (const auto& offer : sorted) {
      if (rem <= kEps) break;
      auto p = pack(s, comp, c, f.sites[offer.site], rem, 1e18, overlay, true, 1);
      if (!p) continue;
      rem -= p->capacity;
      option.sites.emplace_back(f.sites[offer.site].site, p->capacity);
      option.packing.placements.insert(option.packing.placements.end(), p->placements.begin(), p->placements.end());
      option.packing.cost += p->cost;
      option.packing.capacity += p->capacity;
      option.packing.instances += p->instances;
      option.packing.processing_ms = std::max(option.packing.processing_ms, p->processing_ms);
    }
    // One site is not a spill (and would dodge the spread rule).
    if (rem > kEps || option.packing.instances < comp.min_instances || option.sites.size() < 2) continue;
    for (auto& [site, share] : option.sites) share /= option.packing.capacity;
    bool same = std::any_of(out.begin(), out.end(), [&](const Option& o) { return o.sites == option.sites; });
    if (!same) out.push_back(std::move(option));
  }
  return out;
}

}  // namespace

Plan make_plan(const Snapshot& s, const Demand& d, const std::vector<int>& sources, const Graph& g,
               const Overlay& overlay, const Options& options, bool enforce_slo, RouteCache& routes) {
  const int n = static_cast<int>(d.components.size());
  Plan plan;
  plan.filtered.resize(n);
  plan.options.resize(n);
  std::vector<std::vector<int>> feasible_sites(n);
  for (int c : g.order) {
    int pc = g.parent_connection[c];
    std::vector<int> upstream;
    if (pc >= 0) {
      int from = d.connections[pc].from;
      upstream = from == kLocation ? sources : feasible_sites[from];
    }
    plan.filtered[c] = filter_component(s, d, c, pc >= 0 ? &d.connections[pc] : nullptr, upstream, overlay);
    for (const auto& site : plan.filtered[c].sites) feasible_sites[c].push_back(site.site);
    const Component& comp = d.components[c];
    if (comp.demand <= kEps && comp.min_instances <= 0) {
      plan.options[c].push_back({});  // nothing to place
      continue;
    }
    double inbound = pc >= 0 ? d.connections[pc].bandwidth_mbps : 0.0;
    auto& report = plan.filtered[c].report;
    plan.options[c] = single_site_options(s, d, c, plan.filtered[c], overlay, inbound, options.sites_per_component,
                                          report.spread_sites, report.serving_sites);
    if (plan.options[c].empty()) plan.options[c] = spill_options(s, d, c, plan.filtered[c], overlay, inbound);
  }

  // On the end-to-end path: reached from the location by synchronous hops only.
  std::vector<bool> critical(n, false);
  for (int c : g.order) {
    int pc = g.parent_connection[c];
    if (pc < 0 || d.connections[pc].async) continue;
    int from = d.connections[pc].from;
    critical[c] = from == kLocation || critical[from];
  }
  const double slo = enforce_slo && d.slo_latency_ms ? *d.slo_latency_ms : 1e18;

  std::vector<std::vector<std::vector<Label>>> fronts(n);
  // Combines the children of one option (or of the location) into its front.
  auto combine = [&](int parent, const std::vector<std::pair<int, double>>& sites, double own_cost,
                     double processing) -> std::vector<Label> {
    std::vector<Label> partial = {Label{own_cost, 0, {}}};
    for (int ch : g.children[parent + 1]) {
      int k = g.parent_connection[ch];
      std::vector<Label> edge;
      for (std::size_t o = 0; o < plan.options[ch].size(); ++o) {
        if (fronts[ch][o].empty()) continue;
        Hop hop;
        if (k < 0) {
          hop.feasible = true;
        } else {
          const Connection& conn = d.connections[k];
          hop = hop_between(s, routes, conn, sites, plan.options[ch][o].sites);
          if (!hop.feasible) {
            ++plan.hop_unreachable;
            continue;
          }
          if (conn.max_latency_ms && hop.latency_ms > *conn.max_latency_ms + kEps) {
            ++plan.hop_latency_rejected;
            continue;
          }
        }
        bool counts = k >= 0 && !d.connections[k].async;
        for (std::size_t li = 0; li < fronts[ch][o].size(); ++li) {
          const Label& l = fronts[ch][o][li];
          edge.push_back({hop.cost + l.cost, counts ? hop.latency_ms + l.latency : 0.0,
                          {{ch, static_cast<int>(o), static_cast<int>(li)}}});
        }
      }
      edge = pareto(std::move(edge));
      if (edge.empty()) return {};
      std::vector<Label> next;
      for (const auto& a : partial)
        for (const auto& b : edge) {
          Label l{a.cost + b.cost, std::max(a.latency, b.latency), a.picks};
          l.picks.insert(l.picks.end(), b.picks.begin(), b.picks.end());
          next.push_back(std::move(l));
        }
      partial = pareto(std::move(next));
    }
    std::vector<Label> out;
    for (auto& l : partial) {
      l.latency += processing;
      bool on_path = parent == kLocation || critical[parent];
      if (on_path && l.latency > slo + kEps) {
        ++plan.slo_rejected;
        continue;
      }
      out.push_back(std::move(l));
    }
    return pareto(std::move(out));
  };

  for (auto it = g.order.rbegin(); it != g.order.rend(); ++it) {
    int c = *it;
    fronts[c].resize(plan.options[c].size());
    for (std::size_t o = 0; o < plan.options[c].size(); ++o) {
      const Option& opt = plan.options[c][o];
      fronts[c][o] = combine(c, opt.sites, opt.packing.cost, opt.packing.processing_ms);
    }
  }
  std::vector<std::pair<int, double>> from_location;
  for (int site : sources) from_location.emplace_back(site, 1.0 / static_cast<double>(sources.size()));
  std::vector<Label> root = combine(kLocation, from_location, 0, 0);

  // Unfold each root label into one option per component.
  for (const auto& label : root) {
    Choice choice{label.cost, label.latency, std::vector<int>(n, -1)};
    std::vector<const Label*> stack = {&label};
    while (!stack.empty()) {
      const Label* l = stack.back();
      stack.pop_back();
      for (auto [ch, o, li] : l->picks) {
        choice.option[ch] = o;
        stack.push_back(&fronts[ch][o][li]);
      }
    }
    plan.front.push_back(std::move(choice));
  }
  return plan;
}

}  // namespace cpn::solver::detail
