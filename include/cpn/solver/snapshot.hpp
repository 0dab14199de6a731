// An immutable picture of the inventory for the solver: sites with prices,
// nodes with what is still free (net of what confirmed orders hold), and
// the link graph. Nodes that share site, architecture, accelerator models
// and state form one equivalence class: the solver judges a class once and
// only looks at single nodes for their free capacity.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cpn/core/error.hpp"

namespace cpn::solver {

struct Prices {
  double cpu_core_hour = 0;
  double memory_gib_hour = 0;
  std::map<std::string, double> accelerators;  // per device hour, by model
};

struct Site {
  std::string id, tier, city;
  Prices prices;
};

struct AcceleratorPool {
  std::string model;
  int free = 0;
};

struct Node {
  std::string id;
  int site = -1;
  std::string arch;
  bool ready = true;
  double cpu_free = 0, memory_free = 0;  // cores, GiB
  std::vector<AcceleratorPool> accelerators;
  int node_class = -1;
};

struct Link {
  std::string id;
  int a = -1, b = -1;  // sites; a link carries traffic both ways, sharing one capacity
  double latency_ms = 0;
  double free_mbps = 0;
  double price_mbps_hour = 0;
};

struct NodeClass {
  int site = -1;
  std::string arch;
  std::vector<std::string> models;  // accelerator models present, sorted
  bool ready = true;
  std::vector<int> nodes;           // node indexes, in id order
};

// One route between two sites: the links in order and what they add up to.
struct Path {
  std::vector<int> links;
  std::vector<int> sites;  // from .. to
  double latency_ms = 0;
  double price_mbps_hour = 0;
};

class Snapshot {
 public:
  class Builder {
   public:
    void add_site(Site site);
    // node.site is ignored: site_id names it.
    void add_node(const std::string& site_id, Node node);
    void add_link(const std::string& from, const std::string& to, Link link);
    // Checks the references; nodes and links of unknown sites are errors.
    Result<Snapshot> build() &&;

   private:
    std::vector<Site> sites_;
    std::vector<std::pair<std::string, Node>> nodes_;
    std::vector<std::tuple<std::string, std::string, Link>> links_;
  };

  const std::vector<Site>& sites() const { return sites_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<Link>& links() const { return links_; }
  const std::vector<NodeClass>& classes() const { return classes_; }
  // Classes of one site.
  const std::vector<int>& site_classes(int site) const { return site_classes_[site]; }
  // (link, neighbour site) pairs.
  const std::vector<std::pair<int, int>>& adjacent(int site) const { return adjacency_[site]; }

  std::optional<int> site_index(const std::string& id) const;
  std::optional<int> node_index(const std::string& id) const;
  std::optional<int> link_index(const std::string& id) const;

  // What is free changes with every confirmed or released order; the owner
  // of a snapshot updates it in place between solves rather than rebuilding
  // (a solve itself sees it immutable).
  void set_node_free(int node, double cpu, double memory, std::vector<AcceleratorPool> accelerators);
  void set_link_free(int link, double mbps) { links_[link].free_mbps = mbps; }
  // Sites of a city (case-insensitive), in id order.
  std::vector<int> sites_in_city(const std::string& city) const;

 private:
  std::vector<Site> sites_;
  std::vector<Node> nodes_;
  std::vector<Link> links_;
  std::vector<NodeClass> classes_;
  std::vector<std::vector<int>> site_classes_;
  std::vector<std::vector<std::pair<int, int>>> adjacency_;
  std::map<std::string, int> site_by_id_, node_by_id_, link_by_id_;
  std::map<std::string, std::vector<int>> sites_by_city_;  // lowercased city
};

// Lowest-latency routes from one site (Dijkstra), over links with at least
// min_free_mbps free (constrained shortest path first, as in MPLS-TE); ties
// go to the cheaper route. Routes longer than max_latency_ms are not kept.
class Routes {
 public:
  Routes(const Snapshot& snapshot, int from, double min_free_mbps, double max_latency_ms = 1e18,
         const std::vector<double>* used_mbps = nullptr);
  bool reaches(int site) const { return dist_[site] < kUnreached; }
  double latency_ms(int site) const { return dist_[site]; }
  double price_mbps_hour(int site) const { return price_[site]; }
  Path path_to(int site) const;

  static constexpr double kUnreached = 1e300;

 private:
  const Snapshot* snapshot_;
  int from_;
  std::vector<double> dist_, price_;
  std::vector<int> via_link_;
};

// Multi-source shortest distances (latency, or price per Mbps when by_price)
// from a set of sites, within limit: the latency filter's reach.
std::vector<double> distances_from(const Snapshot& snapshot, const std::vector<int>& sources, bool by_price,
                                   double limit = 1e18);

}  // namespace cpn::solver
