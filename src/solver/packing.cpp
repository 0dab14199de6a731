// Packing one component's demand onto one site's nodes. All nodes of a site
// share its prices, so the cost depends only on how many instances of each
// profile are used: the bulk goes to the profile that is cheapest per work
// unit, and the remainder to the cheapest exact cover (a small bounded
// knapsack), which is where greedy packings lose money. Nodes only decide
// whether it fits: spread over distinct nodes first, then filled in order.
#include <algorithm>
#include <cmath>
#include <set>

#include "stages.hpp"

namespace cpn::solver {

double instance_cost(const Profile& p, const Prices& prices) {
  double cost = p.cpu * prices.cpu_core_hour + p.memory * prices.memory_gib_hour;
  if (p.accelerators > 0) {
    auto it = prices.accelerators.find(p.accelerator);
    if (it != prices.accelerators.end()) cost += p.accelerators * it->second;
  }
  return cost;
}

}  // namespace cpn::solver

namespace cpn::solver::detail {
namespace {

class Packer {
 public:
  Packer(const Snapshot& s, const Component& comp, int c, const SiteCandidates& site, double latency_cap,
         const Overlay& overlay, int spread_nodes)
      : comp_(comp), c_(c), local_(overlay), spread_(spread_nodes) {
    const Prices& prices = s.sites()[site.site].prices;
    std::map<int, std::vector<int>> nodes;
    for (const auto& [cls, profiles] : site.classes)
      for (int p : profiles)
        if (comp.profiles[p].latency_ms <= latency_cap + kEps)
          for (int n : s.classes()[cls].nodes) nodes[p].push_back(n);
    for (auto& [p, list] : nodes) {
      std::sort(list.begin(), list.end());
      profiles_.push_back({p, instance_cost(comp.profiles[p], prices), std::move(list)});
    }
    // Cheapest per work unit first; ties: faster, then declaration order.
    std::sort(profiles_.begin(), profiles_.end(), [&](const Candidate& a, const Candidate& b) {
      double ua = a.cost / comp.profiles[a.profile].capacity, ub = b.cost / comp.profiles[b.profile].capacity;
      if (std::fabs(ua - ub) > kEps) return ua < ub;
      if (comp.profiles[a.profile].latency_ms != comp.profiles[b.profile].latency_ms)
        return comp.profiles[a.profile].latency_ms < comp.profiles[b.profile].latency_ms;
      return a.profile < b.profile;
    });
  }

  bool empty() const { return profiles_.empty(); }

  // Covers demand; false when the site runs out first (what fits stays placed).
  bool cover(double demand) {
    double rem = demand;
    while (rem > kEps) {
      std::vector<int> avail = availability(rem);
      int best = -1;
      for (std::size_t i = 0; i < profiles_.size() && best < 0; ++i)
        if (avail[i] > 0) best = static_cast<int>(i);
      if (best < 0) return false;
      double cap = capacity(best);
      int bulk = std::min(avail[best], static_cast<int>(std::floor(rem / cap + kEps)));
      double reachable = 0;
      for (std::size_t i = 0; i < profiles_.size(); ++i) reachable += avail[i] * capacity(static_cast<int>(i));
      if (reachable + kEps < rem) {  // the site cannot cover it: take all of the cheapest and go on
        double before = rem;
        rem -= place(best, avail[best]) * cap;
        if (rem >= before - kEps) return false;
        continue;
      }
      // Give back up to two bulk instances if a mixed remainder is cheaper.
      double best_total = 1e300;
      int best_j = -1;
      std::vector<int> best_counts;
      for (int j = 0; j <= std::min(2, bulk); ++j) {
        std::vector<int> counts(profiles_.size(), 0);
        std::vector<int> room = avail;
        room[best] -= bulk - j;
        double tail = cheapest_cover(rem - (bulk - j) * cap, room, counts);
        double total = (bulk - j) * profiles_[best].cost + tail;
        if (tail < 1e299 && total < best_total - kEps) {
          best_total = total;
          best_j = j;
          best_counts = counts;
        }
      }
      double before = rem;
      if (best_j < 0) {  // cannot cover it all here: place what the cheapest profile can
        int n = bulk > 0 ? bulk : std::min(avail[best], static_cast<int>(std::ceil(rem / cap - kEps)));
        rem -= place(best, n) * cap;
      } else {
        rem -= place(best, bulk - best_j) * cap;
        for (std::size_t i = 0; i < best_counts.size(); ++i)
          if (best_counts[i] > 0) rem -= place(static_cast<int>(i), best_counts[i]) * capacity(static_cast<int>(i));
      }
      if (rem >= before - kEps) return false;  // nothing more fits
    }
    return true;
  }

  // Adds the cheapest instances until there are at least n.
  bool at_least(int n) {
    while (instances_ < n) {
      int best = -1;
      for (std::size_t i = 0; i < profiles_.size(); ++i)
        if (can_place(static_cast<int>(i)) && (best < 0 || profiles_[i].cost < profiles_[best].cost - kEps))
          best = static_cast<int>(i);
      if (best < 0 || place(best, 1) == 0) return false;
    }
    return true;
  }

  bool spread_ok() const {
    return instances_ < 2 || static_cast<int>(used_nodes_.size()) >= std::min(spread_, instances_);
  }

  Packing result() const {
    Packing out;
    for (const auto& [key, count] : counts_) {
      const Profile& p = comp_.profiles[key.second];
      out.placements.push_back({c_, key.first, key.second, count});
      out.instances += count;
      out.capacity += count * p.capacity;
      out.processing_ms = std::max(out.processing_ms, p.latency_ms);
    }
    out.cost = cost_;
    return out;
  }

 private:
  struct Candidate {
    int profile;
    double cost;
    std::vector<int> nodes;
  };

  double capacity(int i) const { return comp_.profiles[profiles_[i].profile].capacity; }

  bool can_place(int i) const {
    const Profile& p = comp_.profiles[profiles_[i].profile];
    return std::any_of(profiles_[i].nodes.begin(), profiles_[i].nodes.end(), [&](int n) { return local_.fits(n, p) > 0; });
  }

  // Instances of each profile that fit on their own, up to what rem needs
  // (plus slack for the remainder search).
  std::vector<int> availability(double rem) const {
    std::vector<int> out(profiles_.size(), 0);
    for (std::size_t i = 0; i < profiles_.size(); ++i) {
      const Profile& p = comp_.profiles[profiles_[i].profile];
      long want = static_cast<long>(std::ceil(rem / p.capacity - kEps)) + 2;
      long have = 0;
      for (int n : profiles_[i].nodes) {
        have += local_.fits(n, p);
        if (have >= want) break;
      }
      out[i] = static_cast<int>(std::min(have, want));
    }
    return out;
  }

  // Cheapest counts covering rem within room: a small bounded knapsack,
  // branch and bound. Profiles are in unit-cost order, so what is left
  // costs at least left x the current profile's unit cost.
  double cheapest_cover(double rem, const std::vector<int>& room, std::vector<int>& counts) const {
    if (rem <= kEps) return 0;
    Search search{room, std::vector<int>(profiles_.size(), 0), counts, 1e300, 5000};
    branch(search, 0, rem, 0);
    return search.best;
  }

  struct Search {
    const std::vector<int>& room;
    std::vector<int> current;
    std::vector<int>& counts;
    double best;
    long budget;
  };

  void branch(Search& s, std::size_t i, double left, double cost) const {
    if (left <= kEps) {
      if (cost < s.best - kEps) {
        s.best = cost;
        s.counts = s.current;
      }
      return;
    }
    if (i == profiles_.size() || --s.budget < 0) return;
    double unit = profiles_[i].cost / capacity(static_cast<int>(i));
    if (cost + left * unit >= s.best - kEps) return;
    int most = std::min(s.room[i], static_cast<int>(std::ceil(left / capacity(static_cast<int>(i)) - kEps)));
    for (int k = most; k >= 0; --k) {
      s.current[i] = k;
      branch(s, i + 1, left - k * capacity(static_cast<int>(i)), cost + k * profiles_[i].cost);
    }
    s.current[i] = 0;
  }

  // Places up to n instances: first one each on distinct unused nodes
  // (spread), then fills nodes in order. Returns how many were placed.
  int place(int i, int n) {
    const Profile& p = comp_.profiles[profiles_[i].profile];
    int placed = 0;
    for (int node : profiles_[i].nodes) {
      if (placed == n || static_cast<int>(used_nodes_.size()) >= spread_) break;
      if (used_nodes_.count(node) || local_.fits(node, p) < 1) continue;
      put(i, node, 1);
      ++placed;
    }
    for (int node : profiles_[i].nodes) {
      if (placed == n) break;
      int k = std::min(local_.fits(node, p), n - placed);
      if (k <= 0) continue;
      put(i, node, k);
      placed += k;
    }
    return placed;
  }

  void put(int i, int node, int k) {
    const Profile& p = comp_.profiles[profiles_[i].profile];
    local_.take(node, p, k);
    counts_[{node, profiles_[i].profile}] += k;
    used_nodes_.insert(node);
    instances_ += k;
    cost_ += k * profiles_[i].cost;
  }

  const Component& comp_;
  int c_;
  Overlay local_;
  int spread_;
  std::vector<Candidate> profiles_;
  std::map<std::pair<int, int>, int> counts_;
  std::set<int> used_nodes_;
  int instances_ = 0;
  double cost_ = 0;
};

}  // namespace

std::optional<Packing> pack(const Snapshot& s, const Component& comp, int c, const SiteCandidates& site,
                            double demand, double latency_cap, const Overlay& overlay, bool partial,
                            int spread_nodes) {
  // Far more instances than any site holds: not worth counting (and the
  // counts below are ints).
  double smallest = 1e300;
  for (const auto& p : comp.profiles) smallest = std::min(smallest, p.capacity);
  if (!(demand / smallest < 1e7)) return std::nullopt;
  Packer packer(s, comp, c, site, latency_cap, overlay, spread_nodes);
  if (packer.empty()) return std::nullopt;
  bool covered = packer.cover(demand);
  if (!covered && !partial) return std::nullopt;
  if (!partial && !packer.at_least(comp.min_instances)) return std::nullopt;
  if (!partial && !packer.spread_ok()) return std::nullopt;
  Packing out = packer.result();
  if (out.instances == 0) return std::nullopt;
  return out;
}

}  // namespace cpn::solver::detail
