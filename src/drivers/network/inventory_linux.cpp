// The linux network driver fed from the inventory. Its calls run on a
// worker (one at a time) and must not read the engine: the engine's
// commits hand it the sites and links that appear, which it configures
// before its next call, those alone.
#include <mutex>

#include <fmt/format.h>

#include "cpn/drivers/network.hpp"
#include "cpn/inventory/inventory.hpp"

namespace cpn::drivers {
namespace {

class InventoryLinuxNetwork : public NetworkDriver {
 public:
  InventoryLinuxNetwork(engine::Engine& engine, std::string prefix) : engine_(engine), net_(std::move(prefix), {}, {}) {
    // On the engine's thread: the object is read there, and handed over.
    engine.on_commit([this](const std::vector<engine::Event>& events) {
      for (const auto& e : events) {
        // Reservations change no site or link of the host.
        if (e.kind == inventory::kLink && (e.type == "LinkReserved" || e.type == "LinkReleased")) continue;
        if (e.kind != inventory::kSite && e.kind != inventory::kLink) continue;
        const engine::Object* o = engine_.find(e.kind, e.id);
        if (!o) continue;  // removed: what is configured stays (addresses derive from indexes)
        std::lock_guard lock(incoming_mu_);
        if (e.kind == inventory::kSite) incoming_sites_.push_back(o->id);
        else incoming_links_.push_back({o->id, o->body.value("from", ""), o->body.value("to", "")});
      }
    });
  }

  // At start, on the main thread, before any worker runs.
  Status start(std::string state_file) {
    if (auto s = net_.persist_to(std::move(state_file)); !s) return s;
    std::vector<std::string> sites;
    for (const auto* s : engine_.list(inventory::kSite)) sites.push_back(s->id);
    std::vector<SiteLink> links;
    for (const auto* l : engine_.list(inventory::kLink))
      links.push_back({l->id, l->body.value("from", ""), l->body.value("to", "")});
    net_.extend(sites, links);
    return net_.setup();
  }

  std::string name() const override { return "linux"; }
  bool blocking() const override { return true; }
  Status reserve(const PathReservation& r) override {
    std::lock_guard lock(mu_);
    if (auto s = catch_up(); !s) return s;
    return net_.reserve(r);
  }
  Status release(const std::string& id) override {
    std::lock_guard lock(mu_);
    return net_.release(id);
  }
  std::map<std::string, PathReservation> reservations() const override {
    std::lock_guard lock(mu_);
    return net_.reservations();
  }
  std::vector<std::string> remove_orphans(const std::set<std::string>& wanted) override {
    std::lock_guard lock(mu_);
    (void)catch_up();  // a link not configured yet has no class to look at
    return net_.remove_orphans(wanted);
  }

 private:
  // Sites and links that appeared since the last call join and are configured.
  Status catch_up() {
    std::vector<std::string> sites;
    std::vector<SiteLink> links;
    {
      std::lock_guard lock(incoming_mu_);
      sites.swap(incoming_sites_);
      links.swap(incoming_links_);
    }
    if (!sites.empty() || !links.empty()) net_.extend(sites, links);
    return net_.setup();  // also what an earlier call failed to configure
  }

  const engine::Engine& engine_;
  mutable std::mutex mu_;  // the driver's calls (the orchestrator sends one at a time)
  LinuxNetwork net_;
  std::mutex incoming_mu_;
  std::vector<std::string> incoming_sites_;
  std::vector<SiteLink> incoming_links_;
};

}  // namespace

Result<std::unique_ptr<NetworkDriver>> make_linux_network(engine::Engine& engine, std::string prefix,
                                                          std::string state_file) {
  auto net = std::make_unique<InventoryLinuxNetwork>(engine, std::move(prefix));
  if (auto s = net->start(std::move(state_file)); !s)
    return fail(Error::internal(fmt::format("the linux network driver cannot configure this host: {}", s.error().message)));
  return std::unique_ptr<NetworkDriver>(std::move(net));
}

}  // namespace cpn::drivers
