// The Filter stage. Each filter has a name and a reason; the first one to
// reject a node counts it, so an order that fits nowhere can say which
// constraint removed what ("34 nodes: 21 wrong tier, 6 no matching
// architecture, ..."). Class-level filters judge an equivalence class once;
// only the capacity filter looks at single nodes.
#include <algorithm>
#include <cmath>
#include <functional>

#include "stages.hpp"

namespace cpn::solver::detail {

int Overlay::fits(int node, const Profile& p) const {
  const Node& n = snapshot_->nodes()[node];
  auto it = nodes_.find(node);
  const Used* used = it == nodes_.end() ? nullptr : &it->second;
  double cpu = n.cpu_free - (used ? used->cpu : 0), memory = n.memory_free - (used ? used->memory : 0);
  double most = 1e9;
  if (p.cpu > 0) most = std::min(most, std::floor(cpu / p.cpu + 1e-9));
  if (p.memory > 0) most = std::min(most, std::floor(memory / p.memory + 1e-9));
  if (p.accelerators > 0) {
    int free = 0;
    for (const auto& a : n.accelerators)
      if (a.model == p.accelerator) free = a.free;
    if (used) {
      auto u = used->accelerators.find(p.accelerator);
      if (u != used->accelerators.end()) free -= u->second;
    }
    most = std::min(most, static_cast<double>(free / p.accelerators));
  }
  return static_cast<int>(std::max(0.0, most));
}

void Overlay::take(int node, const Profile& p, int instances) {
  Used& u = nodes_[node];
  u.cpu += p.cpu * instances;
  u.memory += p.memory * instances;
  if (p.accelerators > 0) u.accelerators[p.accelerator] += p.accelerators * instances;
}

namespace {

bool runs(const NodeClass& cls, const Profile& p) {
  if (cls.arch != p.arch) return false;
  return p.accelerator.empty() || std::binary_search(cls.models.begin(), cls.models.end(), p.accelerator);
}

// A filter that judges a whole equivalence class.
struct ClassFilter {
  const char* name;
  const char* reason;
  std::function<bool(const NodeClass&)> keep;
};

}  // namespace

Filtered filter_component(const Snapshot& s, const Demand& d, int c, const Connection* parent,
                          const std::vector<int>& upstream_sites, const Overlay& overlay) {
  const Component& comp = d.components[c];
  Filtered out;
  out.report.component = comp.name;

  // The latency reach: within the feeding hop's budget of an upstream site.
  if (parent) {
    double bound = parent->max_latency_ms.value_or(1e18);
    out.reach_latency = distances_from(s, upstream_sites, false, bound);
    out.reach_price = distances_from(s, upstream_sites, true);
  } else {
    out.reach_latency.assign(s.sites().size(), 0.0);
    out.reach_price.assign(s.sites().size(), 0.0);
  }

  // In the order they run: cheap checks on the class first; latency needs
  // the upstream's reach; capacity last, as it is the only per-node check.
  const std::vector<ClassFilter> filters = {
      {"node-state", "node is cordoned or down", [](const NodeClass& cls) { return cls.ready; }},
      {"tier", "site is not of the component's tier",
       [&](const NodeClass& cls) { return s.sites()[cls.site].tier == comp.tier; }},
      {"architecture", "no profile targets the node's architecture and accelerators",
       [&](const NodeClass& cls) {
         return std::any_of(comp.profiles.begin(), comp.profiles.end(), [&](const Profile& p) { return runs(cls, p); });
       }},
      {"latency", "site is beyond the connection's latency budget from the upstream sites",
       [&](const NodeClass& cls) { return out.reach_latency[cls.site] < Routes::kUnreached; }},
  };
  out.report.filters.reserve(filters.size() + 1);
  for (const auto& f : filters) out.report.filters.push_back({f.name, f.reason, 0});
  out.report.filters.push_back({"capacity", "not enough free cpu, memory or accelerators for one instance", 0});

  std::map<int, SiteCandidates> by_site;
  for (std::size_t k = 0; k < s.classes().size(); ++k) {
    const NodeClass& cls = s.classes()[k];
    out.report.nodes += cls.nodes.size();
    bool kept = true;
    for (std::size_t f = 0; f < filters.size() && kept; ++f)
      if (!filters[f].keep(cls)) {
        out.report.filters[f].removed += cls.nodes.size();
        kept = false;
      }
    if (!kept) continue;
    std::vector<int> profiles;
    for (std::size_t p = 0; p < comp.profiles.size(); ++p)
      if (runs(cls, comp.profiles[p])) profiles.push_back(static_cast<int>(p));
    std::size_t with_room = 0;
    for (int n : cls.nodes) {
      double best = 0;
      for (int p : profiles) best = std::max(best, overlay.fits(n, comp.profiles[p]) * comp.profiles[p].capacity);
      if (best > 0) {
        ++with_room;
        out.report.free_capacity += best;
      }
    }
    out.report.filters.back().removed += cls.nodes.size() - with_room;
    if (with_room == 0) continue;
    out.report.feasible_nodes += with_room;
    auto& site = by_site[cls.site];
    site.site = cls.site;
    site.classes.emplace_back(static_cast<int>(k), std::move(profiles));
  }
  for (auto& [id, site] : by_site) out.sites.push_back(std::move(site));
  out.report.feasible_sites = out.sites.size();
  return out;
}

}  // namespace cpn::solver::detail
