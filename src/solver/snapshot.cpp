// Building the solver's snapshot (equivalence classes, adjacency) and the
// shortest-path routines over the link graph.
#include <algorithm>
#include <queue>

#include <fmt/format.h>

#include "cpn/solver/snapshot.hpp"

namespace cpn::solver {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

struct Label {
  double dist;
  double price;
  int site;
  bool operator>(const Label& o) const {
    return dist != o.dist ? dist > o.dist : price != o.price ? price > o.price : site > o.site;
  }
};

}  // namespace

void Snapshot::Builder::add_site(Site site) { sites_.push_back(std::move(site)); }
void Snapshot::Builder::add_node(const std::string& site_id, Node node) { nodes_.emplace_back(site_id, std::move(node)); }
void Snapshot::Builder::add_link(const std::string& from, const std::string& to, Link link) {
  links_.emplace_back(from, to, std::move(link));
}

Result<Snapshot> Snapshot::Builder::build() && {
  Snapshot s;
  std::sort(sites_.begin(), sites_.end(), [](const Site& a, const Site& b) { return a.id < b.id; });
  for (auto& site : sites_) {
    int index = static_cast<int>(s.sites_.size());
    if (!s.site_by_id_.emplace(site.id, index).second)
      return fail(Error::invalid_field("/sites", fmt::format("site '{}' appears twice", site.id)));
    s.sites_by_city_[lower(site.city)].push_back(index);
    s.sites_.push_back(std::move(site));
  }
  std::sort(nodes_.begin(), nodes_.end(), [](const auto& a, const auto& b) { return a.second.id < b.second.id; });
  std::map<std::tuple<int, std::string, std::vector<std::string>, bool>, int> class_of;
  s.site_classes_.resize(s.sites_.size());
  for (auto& [site_id, node] : nodes_) {
    auto site = s.site_index(site_id);
    if (!site) return fail(Error::invalid_field("/nodes", fmt::format("node '{}': unknown site '{}'", node.id, site_id)));
    node.site = *site;
    std::sort(node.accelerators.begin(), node.accelerators.end(),
              [](const AcceleratorPool& a, const AcceleratorPool& b) { return a.model < b.model; });
    std::vector<std::string> models;
    for (const auto& a : node.accelerators) models.push_back(a.model);
    auto key = std::make_tuple(node.site, node.arch, models, node.ready);
    auto [it, fresh] = class_of.emplace(key, static_cast<int>(s.classes_.size()));
    if (fresh) {
      s.classes_.push_back({node.site, node.arch, models, node.ready, {}});
      s.site_classes_[node.site].push_back(it->second);
    }
    node.node_class = it->second;
    s.node_by_id_[node.id] = static_cast<int>(s.nodes_.size());
    s.classes_[it->second].nodes.push_back(static_cast<int>(s.nodes_.size()));
    s.nodes_.push_back(std::move(node));
  }
  s.adjacency_.resize(s.sites_.size());
  for (auto& [from, to, link] : links_) {
    auto a = s.site_index(from), b = s.site_index(to);
    if (!a || !b) return fail(Error::invalid_field("/links", fmt::format("link '{}': unknown site", link.id)));
    link.a = *a;
    link.b = *b;
    int index = static_cast<int>(s.links_.size());
    s.link_by_id_[link.id] = index;
    s.adjacency_[*a].emplace_back(index, *b);
    s.adjacency_[*b].emplace_back(index, *a);
    s.links_.push_back(std::move(link));
  }
  return s;
}

std::optional<int> Snapshot::site_index(const std::string& id) const {
  auto it = site_by_id_.find(id);
  if (it == site_by_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<int> Snapshot::node_index(const std::string& id) const {
  auto it = node_by_id_.find(id);
  if (it == node_by_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<int> Snapshot::link_index(const std::string& id) const {
  auto it = link_by_id_.find(id);
  if (it == link_by_id_.end()) return std::nullopt;
  return it->second;
}

void Snapshot::set_node_free(int node, double cpu, double memory, std::vector<AcceleratorPool> accelerators) {
  Node& n = nodes_[node];
  n.cpu_free = cpu;
  n.memory_free = memory;
  std::sort(accelerators.begin(), accelerators.end(),
            [](const AcceleratorPool& a, const AcceleratorPool& b) { return a.model < b.model; });
  n.accelerators = std::move(accelerators);  // same models: the node's class does not change
}

std::vector<int> Snapshot::sites_in_city(const std::string& city) const {
  auto it = sites_by_city_.find(lower(city));
  return it == sites_by_city_.end() ? std::vector<int>{} : it->second;
}

Routes::Routes(const Snapshot& snapshot, int from, double min_free_mbps, double max_latency_ms,
               const std::vector<double>* used_mbps)
    : snapshot_(&snapshot),
      from_(from),
      dist_(snapshot.sites().size(), kUnreached),
      price_(snapshot.sites().size(), kUnreached),
      via_link_(snapshot.sites().size(), -1) {
  std::priority_queue<Label, std::vector<Label>, std::greater<>> queue;
  dist_[from] = 0;
  price_[from] = 0;
  queue.push({0, 0, from});
  const auto& links = snapshot.links();
  while (!queue.empty()) {
    Label top = queue.top();
    queue.pop();
    if (top.dist > dist_[top.site] || (top.dist == dist_[top.site] && top.price > price_[top.site])) continue;
    for (auto [link, next] : snapshot.adjacent(top.site)) {
      const Link& l = links[link];
      double free = l.free_mbps - (used_mbps ? (*used_mbps)[link] : 0.0);
      if (free + 1e-9 < min_free_mbps || free <= 0) continue;
      double d = top.dist + l.latency_ms, p = top.price + l.price_mbps_hour;
      if (d > max_latency_ms) continue;
      if (d < dist_[next] || (d == dist_[next] && p < price_[next])) {
        dist_[next] = d;
        price_[next] = p;
        via_link_[next] = link;
        queue.push({d, p, next});
      }
    }
  }
}

Path Routes::path_to(int site) const {
  Path p;
  if (!reaches(site)) return p;
  p.latency_ms = dist_[site];
  p.price_mbps_hour = price_[site];
  int at = site;
  p.sites.push_back(at);
  while (at != from_) {
    int link = via_link_[at];
    p.links.push_back(link);
    const Link& l = snapshot_->links()[link];
    at = l.a == at ? l.b : l.a;
    p.sites.push_back(at);
  }
  std::reverse(p.links.begin(), p.links.end());
  std::reverse(p.sites.begin(), p.sites.end());
  return p;
}

std::vector<double> distances_from(const Snapshot& snapshot, const std::vector<int>& sources, bool by_price,
                                   double limit) {
  std::vector<double> dist(snapshot.sites().size(), Routes::kUnreached);
  using Item = std::pair<double, int>;
  std::priority_queue<Item, std::vector<Item>, std::greater<>> queue;
  for (int s : sources) {
    dist[s] = 0;
    queue.push({0, s});
  }
  while (!queue.empty()) {
    auto [d, site] = queue.top();
    queue.pop();
    if (d > dist[site]) continue;
    for (auto [link, next] : snapshot.adjacent(site)) {
      const Link& l = snapshot.links()[link];
      if (l.free_mbps <= 0) continue;
      double nd = d + (by_price ? l.price_mbps_hour : l.latency_ms);
      if (nd > limit || nd >= dist[next]) continue;
      dist[next] = nd;
      queue.push({nd, next});
    }
  }
  return dist;
}

}  // namespace cpn::solver
