// The solver's view of the live inventory: what each node and link still
// has free after the reservations of confirmed orders (the engine-owned
// `allocated` fields), rebuilt only after an inventory change.
#include <algorithm>
#include <atomic>

#include "cpn/orders/orders.hpp"
#include "cpn/sim/twin.hpp"

namespace cpn::orders {

namespace {

// What a node has free: its capacity less what deployments hold.
void free_of(const Json& body, solver::Node& node) {
  const Json alloc = body.value("allocated", Json::object());
  const Json by_model = alloc.value("accelerators_by_model", Json::object());
  node.cpu_free = std::max(0.0, body.value("cpu", 0.0) - alloc.value("cpu", 0.0));
  node.memory_free = std::max(0.0, body.value("memory", 0.0) - alloc.value("memory", 0.0));
  std::map<std::string, int> pools;
  const Json accelerators = body.value("accelerators", Json::array());
  for (const auto& a : accelerators) pools[a.value("model", "")] += a.value("count", 0);
  node.accelerators.clear();
  for (const auto& [model, count] : pools) node.accelerators.push_back({model, std::max(0, count - by_model.value(model, 0))});
}

// What a link has free: its capacity (less, while the twin degrades it) less what deployments hold.
double link_free(const Json& body, const sim::Conditions& twin, const std::string& id) {
  double capacity = body.value("bandwidth_mbps", 0.0);
  if (auto c = twin.links.find(id); c != twin.links.end() && c->second.bandwidth_mbps)
    capacity = std::min(capacity, *c->second.bandwidth_mbps);
  return std::max(0.0, capacity - body.value("allocated_mbps", 0.0));
}

}  // namespace

Result<solver::Snapshot> snapshot_of(const engine::Engine& engine) {
  // The twin's faults count: nothing is planned on what is down, and a
  // degraded link offers only what is left of its reduced capacity.
  const sim::Conditions twin = sim::conditions_of(engine);
  solver::Snapshot::Builder b;
  for (const auto* o : engine.list(inventory::kSite)) {
    const Json& body = o->body;
    const Json prices = body.value("prices", Json::object());
    solver::Site site{o->id, body.value("tier", ""), body.value("city", ""), {}};
    site.prices.cpu_core_hour = prices.value("cpu_core_hour", 0.0);
    site.prices.memory_gib_hour = prices.value("memory_gib_hour", 0.0);
    const Json accelerator_prices = prices.value("accelerators", Json::object());
    for (const auto& [model, price] : accelerator_prices.items())
      if (price.is_number()) site.prices.accelerators[model] = price.get<double>();
    b.add_site(std::move(site));
  }
  for (const auto* o : engine.list(inventory::kNode)) {
    solver::Node node;
    node.id = o->id;
    node.arch = o->body.value("arch", "");
    node.ready = o->body.value("state", "ready") == "ready" && !twin.faulted(o->id, o->body.value("site", ""));
    free_of(o->body, node);
    b.add_node(o->body.value("site", ""), std::move(node));
  }
  for (const auto* o : engine.list(inventory::kLink)) {
    solver::Link link;
    link.id = o->id;
    link.latency_ms = o->body.value("latency_ms", 0.0);
    link.free_mbps = link_free(o->body, twin, o->id);
    if (auto c = twin.links.find(o->id); c != twin.links.end()) link.latency_ms += c->second.extra_latency_ms;
    link.price_mbps_hour = o->body.value("price_mbps_hour", 0.0);
    b.add_link(o->body.value("from", ""), o->body.value("to", ""), std::move(link));
  }
  return std::move(b).build();
}

SnapshotCache::SnapshotCache(engine::Engine& engine) : engine_(engine) {
  engine_.on_commit([this](const std::vector<engine::Event>& events) {
    for (const auto& e : events) {
      // Reservations change only what is free: patched in place. Anything
      // else about sites, nodes and links rebuilds the snapshot.
      if (e.kind == inventory::kNode && (e.type == "NodeReserved" || e.type == "NodeReleased"))
        nodes_changed_.insert(e.id);
      else if (e.kind == inventory::kNode && (e.type == "NodeDrainProgress" || e.type == "NodeDrained"))
        continue;  // a drain's report: nothing the solver reads
      else if (e.kind == inventory::kLink && (e.type == "LinkReserved" || e.type == "LinkReleased"))
        links_changed_.insert(e.id);
      else if (e.kind == inventory::kSite || e.kind == inventory::kNode || e.kind == inventory::kLink || e.kind == sim::kFault)
        stale_ = true;
    }
  });
}

Result<std::shared_ptr<const solver::Snapshot>> SnapshotCache::current() {
  if (stale_ || !snapshot_) {
    auto s = snapshot_of(engine_);
    if (!s) return fail(s.error());
    snapshot_ = std::make_shared<solver::Snapshot>(std::move(*s));
    stale_ = false;
  } else if (!nodes_changed_.empty() || !links_changed_.empty()) {
    // Solves on other threads may still read the snapshot they were given:
    // patch a copy then (copy on write), the one in hand when nobody else has it.
    if (snapshot_.use_count() > 1) snapshot_ = std::make_shared<solver::Snapshot>(*snapshot_);
    std::atomic_thread_fence(std::memory_order_acquire);  // the last reader's release of its copy happened before
    for (const auto& id : nodes_changed_) {
      const engine::Object* o = engine_.find(inventory::kNode, id);
      auto index = snapshot_->node_index(id);
      if (!o || !index) continue;
      solver::Node fresh;
      free_of(o->body, fresh);
      snapshot_->set_node_free(*index, fresh.cpu_free, fresh.memory_free, std::move(fresh.accelerators));
    }
    const sim::Conditions twin = links_changed_.empty() ? sim::Conditions{} : sim::conditions_of(engine_);
    for (const auto& id : links_changed_) {
      const engine::Object* o = engine_.find(inventory::kLink, id);
      auto index = snapshot_->link_index(id);
      if (o && index) snapshot_->set_link_free(*index, link_free(o->body, twin, id));
    }
  }
  nodes_changed_.clear();
  links_changed_.clear();
  return std::shared_ptr<const solver::Snapshot>(snapshot_);
}

}  // namespace cpn::orders
