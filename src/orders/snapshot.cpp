// The solver's view of the live inventory: what each node and link still
// has free after the reservations of confirmed orders (the engine-owned
// `allocated` fields), rebuilt only after an inventory change.
#include <algorithm>

#include "cpn/orders/orders.hpp"

namespace cpn::orders {

Result<solver::Snapshot> snapshot_of(const engine::Engine& engine) {
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
    const Json& body = o->body;
    const Json alloc = body.value("allocated", Json::object());
    const Json by_model = alloc.value("accelerators_by_model", Json::object());
    solver::Node node;
    node.id = o->id;
    node.arch = body.value("arch", "");
    node.ready = body.value("state", "ready") == "ready";
    node.cpu_free = std::max(0.0, body.value("cpu", 0.0) - alloc.value("cpu", 0.0));
    node.memory_free = std::max(0.0, body.value("memory", 0.0) - alloc.value("memory", 0.0));
    std::map<std::string, int> pools;
    const Json accelerators = body.value("accelerators", Json::array());
    for (const auto& a : accelerators) pools[a.value("model", "")] += a.value("count", 0);
    for (const auto& [model, count] : pools)
      node.accelerators.push_back({model, std::max(0, count - by_model.value(model, 0))});
    b.add_node(body.value("site", ""), std::move(node));
  }
  for (const auto* o : engine.list(inventory::kLink)) {
    const Json& body = o->body;
    solver::Link link;
    link.id = o->id;
    link.latency_ms = body.value("latency_ms", 0.0);
    link.free_mbps = std::max(0.0, body.value("bandwidth_mbps", 0.0) - body.value("allocated_mbps", 0.0));
    link.price_mbps_hour = body.value("price_mbps_hour", 0.0);
    b.add_link(body.value("from", ""), body.value("to", ""), std::move(link));
  }
  return std::move(b).build();
}

SnapshotCache::SnapshotCache(engine::Engine& engine) : engine_(engine) {
  engine_.on_commit([this](const std::vector<engine::Event>& events) {
    for (const auto& e : events)
      if (e.kind == inventory::kSite || e.kind == inventory::kNode || e.kind == inventory::kLink) stale_ = true;
  });
}

Result<std::shared_ptr<const solver::Snapshot>> SnapshotCache::current() {
  if (stale_ || !snapshot_) {
    auto s = snapshot_of(engine_);
    if (!s) return fail(s.error());
    snapshot_ = std::make_shared<const solver::Snapshot>(std::move(*s));
    stale_ = false;
  }
  return snapshot_;
}

}  // namespace cpn::orders
