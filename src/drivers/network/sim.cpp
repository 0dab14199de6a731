// The digital twin's network driver: reservations as accounting. The
// inventory's link allocations are taken when a deployment is created, so
// the twin only remembers what was asked, idempotently.
#include "cpn/drivers/network.hpp"

namespace cpn::drivers {

namespace {

class SimNetwork : public NetworkDriver {
 public:
  std::string name() const override { return "sim"; }
  Status reserve(const PathReservation& r) override {
    if (r.sites.size() < 2) return fail(Error::invalid_field("/sites", "a route has at least two sites"));
    reserved_[r.id] = r;
    return {};
  }
  Status release(const std::string& id) override {
    reserved_.erase(id);
    return {};
  }
  std::map<std::string, PathReservation> reservations() const override { return reserved_; }

 private:
  std::map<std::string, PathReservation> reserved_;
};

}  // namespace

std::vector<std::string> NetworkDriver::remove_orphans(const std::set<std::string>& wanted) {
  std::vector<std::string> removed;
  for (const auto& [id, r] : reservations())
    if (!wanted.count(id) && release(id)) removed.push_back("reservation " + id);
  return removed;
}

std::unique_ptr<NetworkDriver> make_sim_network() { return std::make_unique<SimNetwork>(); }

}  // namespace cpn::drivers
