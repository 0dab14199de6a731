// Writing the lowest-cost placement problem for CBC (see the header).
#include "integer_program.hpp"

#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

namespace cpn::bench {
namespace {

bool runs(const solver::Node& n, const solver::Profile& p) {
  if (n.arch != p.arch) return false;
  if (p.accelerator.empty()) return true;
  for (const auto& a : n.accelerators)
    if (a.model == p.accelerator) return true;
  return false;
}

int fits(const solver::Node& n, const solver::Profile& p) {
  double most = 1e6;
  if (p.cpu > 0) most = std::min(most, std::floor(n.cpu_free / p.cpu + 1e-9));
  if (p.memory > 0) most = std::min(most, std::floor(n.memory_free / p.memory + 1e-9));
  if (p.accelerators > 0) {
    int free = 0;
    for (const auto& a : n.accelerators)
      if (a.model == p.accelerator) free = a.free;
    most = std::min(most, static_cast<double>(free / p.accelerators));
  }
  return static_cast<int>(std::max(0.0, most));
}

// A linear expression, written a few terms per line.
struct Expr {
  std::vector<std::pair<double, std::string>> terms;
  void add(double coef, std::string var) {
    if (coef != 0) terms.emplace_back(coef, std::move(var));
  }
  std::string text() const {
    std::string out;
    for (std::size_t i = 0; i < terms.size(); ++i) {
      out += fmt::format(" {} {:.10g} {}", terms[i].first < 0 ? "-" : "+", std::fabs(terms[i].first), terms[i].second);
      if (i % 8 == 7) out += "\n  ";
    }
    return out.empty() ? " 0 dummy" : out;
  }
};

}  // namespace

IntegerProgram lowest_cost_program(const solver::Snapshot& s, const solver::Demand& d) {
  IntegerProgram ip;
  const int nc = static_cast<int>(d.components.size());
  auto source = s.site_index(d.location);
  if (!source) {
    ip.empty = true;
    return ip;
  }
  std::vector<bool> active(nc);
  for (int c = 0; c < nc; ++c) active[c] = d.components[c].demand > 1e-9 || d.components[c].min_instances > 0;

  // Parent connection per component and a parents-first order.
  std::vector<int> parent(nc, -1);
  for (std::size_t k = 0; k < d.connections.size(); ++k)
    if (parent[d.connections[k].to] < 0) parent[d.connections[k].to] = static_cast<int>(k);
  std::vector<int> order;
  std::vector<bool> placed(nc, false);
  for (int round = 0; round < nc; ++round)
    for (int c = 0; c < nc; ++c) {
      if (placed[c]) continue;
      int p = parent[c];
      if (p < 0 || d.connections[p].from == solver::kLocation || placed[d.connections[p].from]) {
        order.push_back(c);
        placed[c] = true;
      }
    }

  // Candidate sites: the tier, a node with room for one instance, and within
  // reach of some upstream candidate (an exact reduction: nothing beyond it
  // can be part of a feasible placement).
  std::vector<std::vector<int>> sites(nc);
  std::vector<std::vector<int>> nodes(nc);
  for (int c : order) {
    if (!active[c]) continue;
    const auto& comp = d.components[c];
    std::vector<int> upstream;
    double bound = 1e18;
    if (parent[c] >= 0) {
      const auto& conn = d.connections[parent[c]];
      upstream = conn.from == solver::kLocation ? std::vector<int>{*source} : sites[conn.from];
      if (conn.max_latency_ms) bound = *conn.max_latency_ms;
    }
    std::vector<double> reach = parent[c] >= 0 ? solver::distances_from(s, upstream, false, bound)
                                               : std::vector<double>(s.sites().size(), 0.0);
    std::set<int> ok;
    for (std::size_t n = 0; n < s.nodes().size(); ++n) {
      const auto& node = s.nodes()[n];
      if (!node.ready || s.sites()[node.site].tier != comp.tier || reach[node.site] >= solver::Routes::kUnreached) continue;
      bool any = false;
      for (const auto& p : comp.profiles) any = any || (runs(node, p) && fits(node, p) > 0);
      if (!any) continue;
      ok.insert(node.site);
      nodes[c].push_back(static_cast<int>(n));
    }
    sites[c].assign(ok.begin(), ok.end());
    if (sites[c].empty()) {
      ip.empty = true;
      return ip;
    }
  }

  Expr objective;
  std::vector<std::string> rows;
  std::set<std::string> general, binary;
  std::vector<std::string> bounds;
  auto row = [&](const Expr& e, const std::string& sense, double rhs) {
    rows.push_back(fmt::format(" r{}:{} {} {:.10g}", rows.size(), e.text(), sense, rhs));
  };
  auto y = [](int c, int site) { return fmt::format("y_{}_{}", c, site); };

  std::map<int, Expr> node_cpu, node_mem;
  std::map<std::pair<int, std::string>, Expr> node_acc;
  std::map<int, Expr> link_load;
  std::map<int, Expr> hop_latency;  // per connection, its latency term

  for (int c : order) {
    if (!active[c]) continue;
    const auto& comp = d.components[c];
    Expr one;
    for (int site : sites[c]) {
      one.add(1, y(c, site));
      binary.insert(y(c, site));
    }
    row(one, "=", 1);
    Expr cover, count;
    std::map<int, Expr> per_profile;  // for w
    std::map<int, double> per_profile_max;
    Expr spread_nodes;
    for (int n : nodes[c]) {
      const auto& node = s.nodes()[n];
      Expr on_node;
      for (std::size_t p = 0; p < comp.profiles.size(); ++p) {
        const auto& prof = comp.profiles[p];
        int u = runs(node, prof) ? fits(node, prof) : 0;
        if (u <= 0) continue;
        std::string x = fmt::format("x_{}_{}_{}", c, n, p);
        general.insert(x);
        bounds.push_back(fmt::format(" 0 <= {} <= {}", x, u));
        Expr link_y;
        link_y.add(1, x);
        link_y.add(-u, y(c, node.site));
        row(link_y, "<=", 0);
        objective.add(solver::instance_cost(prof, s.sites()[node.site].prices), x);
        cover.add(prof.capacity, x);
        count.add(1, x);
        on_node.add(1, x);
        node_cpu[n].add(prof.cpu, x);
        node_mem[n].add(prof.memory, x);
        if (prof.accelerators > 0) node_acc[{n, prof.accelerator}].add(prof.accelerators, x);
        per_profile[static_cast<int>(p)].add(1, x);
        per_profile_max[static_cast<int>(p)] += u;
      }
      if (comp.spread_min_nodes >= 2 && !on_node.terms.empty()) {
        std::string un = fmt::format("u_{}_{}", c, n);
        binary.insert(un);
        Expr e;
        e.add(1, un);
        for (const auto& [coef, var] : on_node.terms) e.add(-coef, var);
        row(e, "<=", 0);
        spread_nodes.add(1, un);
      }
    }
    if (comp.demand > 1e-9) row(cover, ">=", comp.demand);
    if (comp.min_instances > 0) row(count, ">=", comp.min_instances);
    if (comp.spread_min_nodes >= 2) {
      std::string t = fmt::format("t_{}", c);
      binary.insert(t);
      Expr big = count;
      big.add(-1e5, t);
      row(big, "<=", 1);
      Expr spread = spread_nodes;
      spread.add(-2, t);
      row(spread, ">=", 0);
    }
    // Processing latency: the slowest profile used.
    std::string pc = fmt::format("P_{}", c);
    bounds.push_back(fmt::format(" 0 <= {} <= 1e6", pc));
    for (auto& [p, e] : per_profile) {
      std::string w = fmt::format("w_{}_{}", c, p);
      binary.insert(w);
      Expr use = e;
      use.add(-per_profile_max[p], w);
      row(use, "<=", 0);
      Expr lat;
      lat.add(1, pc);
      lat.add(-comp.profiles[p].latency_ms, w);
      row(lat, ">=", 0);
    }
  }

  // Connections: routes, costs, link loads, hop budgets.
  std::map<std::pair<int, double>, std::unique_ptr<solver::Routes>> routes;
  auto route = [&](int from, double mbps) -> const solver::Routes& {
    auto& r = routes[{from, mbps}];
    if (!r) r = std::make_unique<solver::Routes>(s, from, mbps);
    return *r;
  };
  for (std::size_t k = 0; k < d.connections.size(); ++k) {
    const auto& conn = d.connections[k];
    if (!active[conn.to]) continue;
    if (conn.from != solver::kLocation && !active[conn.from]) continue;
    double bound = conn.max_latency_ms.value_or(1e18);
    std::vector<int> from = conn.from == solver::kLocation ? std::vector<int>{*source} : sites[conn.from];
    for (int i : from)
      for (int j : sites[conn.to]) {
        bool located = conn.from == solver::kLocation;
        if (i == j) continue;  // same site: free and instant
        const auto& r = route(i, conn.bandwidth_mbps);
        std::string var = located ? y(conn.to, j) : fmt::format("z_{}_{}_{}", k, i, j);
        if (!r.reaches(j) || r.latency_ms(j) > bound + 1e-9) {
          Expr never;
          if (!located) never.add(1, y(conn.from, i));
          never.add(1, y(conn.to, j));
          row(never, "<=", located ? 0 : 1);
          continue;
        }
        if (!located) {
          Expr both;
          both.add(1, var);
          both.add(-1, y(conn.from, i));
          both.add(-1, y(conn.to, j));
          row(both, ">=", -1);
          bounds.push_back(fmt::format(" 0 <= {} <= 1", var));
        }
        objective.add(conn.bandwidth_mbps * r.price_mbps_hour(j), var);
        for (int l : r.path_to(j).links) link_load[l].add(conn.bandwidth_mbps, var);
        hop_latency[static_cast<int>(k)].add(r.latency_ms(j), var);
      }
  }
  for (auto& [n, e] : node_cpu) row(e, "<=", s.nodes()[n].cpu_free);
  for (auto& [n, e] : node_mem) row(e, "<=", s.nodes()[n].memory_free);
  for (auto& [key, e] : node_acc) {
    int free = 0;
    for (const auto& a : s.nodes()[key.first].accelerators)
      if (a.model == key.second) free = a.free;
    row(e, "<=", free);
  }
  for (auto& [l, e] : link_load) row(e, "<=", s.links()[l].free_mbps);

  // End to end, along every path of synchronous hops from the location.
  if (d.slo_latency_ms) {
    std::function<void(int, Expr)> walk = [&](int c, Expr path) {
      for (const auto& [coef, var] : hop_latency[parent[c]].terms) path.add(coef, var);
      path.add(1, fmt::format("P_{}", c));
      bool leaf = true;
      for (int ch = 0; ch < nc; ++ch)
        if (active[ch] && parent[ch] >= 0 && d.connections[parent[ch]].from == c && !d.connections[parent[ch]].async) {
          leaf = false;
          walk(ch, path);
        }
      if (leaf) row(path, "<=", *d.slo_latency_ms);
    };
    for (int c = 0; c < nc; ++c)
      if (active[c] && parent[c] >= 0 && d.connections[parent[c]].from == solver::kLocation &&
          !d.connections[parent[c]].async)
        walk(c, {});
  }

  std::ostringstream lp;
  lp << "Minimize\n obj:" << objective.text() << "\nSubject To\n";
  for (const auto& r : rows) lp << r << "\n";
  lp << " dummy_zero: dummy = 0\nBounds\n";
  for (const auto& b : bounds) lp << b << "\n";
  lp << "General\n";
  for (const auto& g : general) lp << " " << g << "\n";
  lp << "Binary\n";
  for (const auto& b : binary) lp << " " << b << "\n";
  lp << "End\n";
  ip.lp = lp.str();
  ip.constraints = static_cast<int>(rows.size());
  ip.variables = static_cast<int>(general.size() + binary.size());
  return ip;
}

}  // namespace cpn::bench
