// Network drivers carry out a deployment's bandwidth reservations: the
// rate reserved along a chosen route, with the traffic routed over it. The
// orchestrator calls them; every call is idempotent, so after a crash it
// simply calls again.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cpn/core/error.hpp"
#include "cpn/engine/engine.hpp"

namespace cpn::drivers {

struct PathReservation {
  std::string id;                  // unique per deployment flow, e.g. "dep-1/2/edge-sz-1"
  std::vector<std::string> sites;  // the route, first site to last
  double mbps = 0;
};

struct SiteLink {
  std::string id, from, to;
};

class NetworkDriver {
 public:
  virtual ~NetworkDriver() = default;
  virtual std::string name() const = 0;
  // Reserves mbps along the route and routes the traffic between its ends
  // over it. Reserving an id again with the same route and rate changes
  // nothing; with another rate or route it is changed in place.
  virtual Status reserve(const PathReservation& r) = 0;
  // Gives a reservation back; an unknown id is not an error.
  virtual Status release(const std::string& id) = 0;
  // What is reserved now, by id.
  virtual std::map<std::string, PathReservation> reservations() const = 0;
  // A driver whose calls may wait (commands run on this host) is called on
  // a worker, one call at a time, never on the engine's thread, and must not
  // read the engine there. The twin's accounting answers at once: inline.
  virtual bool blocking() const { return false; }
  // The orphan sweep: releases every reservation whose id is not in
  // `wanted` (a failed release, a restored backup), and whatever else of
  // its own it finds configured that no reservation accounts for; answers
  // what it removed.
  virtual std::vector<std::string> remove_orphans(const std::set<std::string>& wanted);
};

// The digital twin's network: reservations are kept as accounting only (the
// inventory's link allocations are taken by the deployment itself).
std::unique_ptr<NetworkDriver> make_sim_network();

// Real configuration on this host: a network namespace per site (prefix +
// site id), a veth pair per link, `ip route` along each reservation's path
// and a `tc` HTB class per reservation on every hop's egress. Needs root
// (CAP_NET_ADMIN). setup() creates the namespaces and links (idempotent);
// teardown() removes them. Sites and links keep the index they were first
// given (addresses and device names derive from it), so adding a site
// moves nothing that is configured.
class LinuxNetwork : public NetworkDriver {
 public:
  LinuxNetwork(std::string prefix, std::vector<std::string> sites, std::vector<SiteLink> links);
  ~LinuxNetwork() override;
  // Keeps what it configured (indexes, tc classes, reservations) in this
  // file, written before each change is reported done, so a restarted cpnd
  // changes and releases what an earlier one reserved. Loads it if present.
  Status persist_to(std::string state_file);
  // Sites and links not yet known join (setup() then configures them,
  // and only them); true when there were any.
  bool extend(const std::vector<std::string>& sites, const std::vector<SiteLink>& links);
  Status setup();
  void teardown();
  // Commands run so far (ip, tc): what a change costs the host.
  std::uint64_t commands_run() const { return commands_; }
  // The address of a site inside its namespace (for traffic between sites).
  std::string address_of(const std::string& site) const;
  std::string namespace_of(const std::string& site) const { return prefix_ + site; }

  std::string name() const override { return "linux"; }
  Status reserve(const PathReservation& r) override;
  Status release(const std::string& id) override;
  std::map<std::string, PathReservation> reservations() const override { return reserved_; }
  bool blocking() const override { return true; }
  // Beyond the reservations not wanted: HTB classes on its links' devices
  // (other than the default) that no reservation of its own holds.
  std::vector<std::string> remove_orphans(const std::set<std::string>& wanted) override;

 private:
  struct Hop {
    std::string ns, dev;  // the egress device toward the next site
  };
  Result<std::vector<Hop>> hops(const std::vector<std::string>& sites) const;
  Status route(const PathReservation& r);
  const SiteLink* link_between(const std::string& a, const std::string& b) const;
  Status save() const;
  Status run(const std::vector<std::string>& argv, bool tolerate_failure = false, std::string* out = nullptr);
  Status setup_site(const std::string& site);
  Status setup_link(const SiteLink& link);
  std::string prefix_;
  std::string state_file_;
  std::map<std::string, int> site_index_, link_index_;
  std::vector<std::string> sites_;
  std::vector<SiteLink> links_;
  std::map<std::string, PathReservation> reserved_;
  std::map<std::string, int> class_of_;  // reservation id -> tc class minor (and filter prio)
  std::set<std::string> pending_;        // recorded, not yet known to be configured
  std::set<std::string> unset_sites_, unset_links_;  // known, not configured by this run yet
  int next_class_ = 10;
  std::uint64_t commands_ = 0;
};

// The linux driver as cpnd runs it: the inventory's sites and links are
// configured at start (an error here, such as no CAP_NET_ADMIN, stops cpnd
// with its reason); sites and links added later are configured before the
// next call, those alone. Its state is kept in state_file so a restarted
// cpnd releases what an earlier one reserved. Called on a worker: it
// learns of the inventory's changes from the engine's commits.
Result<std::unique_ptr<NetworkDriver>> make_linux_network(engine::Engine& engine, std::string prefix,
                                                          std::string state_file);

}  // namespace cpn::drivers
