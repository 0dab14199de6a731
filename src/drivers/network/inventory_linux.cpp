// The linux network driver fed from the inventory: when sites or links
// have changed since it last looked, it configures the new ones before the
// next reservation (reserve runs every reconcile pass, so only then).
#include <fmt/format.h>

#include "cpn/drivers/network.hpp"
#include "cpn/inventory/inventory.hpp"

namespace cpn::drivers {
namespace {

class InventoryLinuxNetwork : public NetworkDriver {
 public:
  InventoryLinuxNetwork(engine::Engine& engine, std::string prefix) : engine_(engine), net_(std::move(prefix), {}, {}) {
    engine.on_commit([this](const std::vector<engine::Event>& events) {
      for (const auto& e : events)  // reservations change no site or link of the host
        changed_ = changed_ || e.kind == inventory::kSite ||
                   (e.kind == inventory::kLink && e.type != "LinkReserved" && e.type != "LinkReleased");
    });
  }

  Status start(std::string state_file) {
    if (auto s = net_.persist_to(std::move(state_file)); !s) return s;
    sync();
    return net_.setup();
  }

  std::string name() const override { return "linux"; }
  Status reserve(const PathReservation& r) override {
    if (changed_ && sync())
      if (auto s = net_.setup(); !s) return s;
    return net_.reserve(r);
  }
  Status release(const std::string& id) override { return net_.release(id); }
  std::map<std::string, PathReservation> reservations() const override { return net_.reservations(); }

 private:
  // True when the inventory has sites or links the host does not have yet.
  bool sync() {
    changed_ = false;
    std::vector<std::string> sites;
    for (const auto* s : engine_.list(inventory::kSite)) sites.push_back(s->id);
    std::vector<SiteLink> links;
    for (const auto* l : engine_.list(inventory::kLink))
      links.push_back({l->id, l->body.value("from", ""), l->body.value("to", "")});
    return net_.extend(sites, links);
  }

  const engine::Engine& engine_;
  LinuxNetwork net_;
  bool changed_ = true;
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
