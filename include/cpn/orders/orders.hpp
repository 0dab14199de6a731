// Orders: a customer's request for an offering with parameters, translated
// into resource demand and several priced solutions over the live
// inventory (the solver), then confirmed (its solution becomes a deployment
// template and a deployment that holds the resources), cancelled or left
// to expire. Lifecycle: quoted -> confirmed, cancelled, expired; an expired
// quote can be requoted. Provisioning the deployment belongs to the
// orchestrator.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <set>

#include "cpn/artifacts/artifacts.hpp"
#include "cpn/auth/tokens.hpp"
#include "cpn/catalog/catalog.hpp"
#include "cpn/inventory/inventory.hpp"
#include "cpn/solver/solver.hpp"

namespace cpn::orders {

inline constexpr const char* kOrder = "order";

struct Settings {
  std::chrono::seconds quote_ttl{15 * 60};
  double default_duration_hours = 24;
};

// The live inventory as the solver sees it: free capacity net of what
// deployments hold. Rebuilt after the inventory changed; a reservation
// taken or given back only updates the nodes and links it touched. A
// snapshot handed out is never changed after: solves on other threads read
// it while this one moves on.
class SnapshotCache {
 public:
  explicit SnapshotCache(engine::Engine& engine);
  Result<std::shared_ptr<const solver::Snapshot>> current();

 private:
  engine::Engine& engine_;
  std::shared_ptr<solver::Snapshot> snapshot_;
  bool stale_ = true;
  std::set<std::string> nodes_changed_, links_changed_;
};

// The solver's snapshot of an engine's sites, nodes and links.
Result<solver::Snapshot> snapshot_of(const engine::Engine& engine);

class Orders {
 public:
  Orders(engine::Engine& engine, catalog::Catalog& catalog, blueprint::Library& library,
         const artifacts::Images& images, Settings settings);

  resource::Collection& collection() { return orders_; }
  const Settings& settings() const { return settings_; }

  // POST /v1/orders {offering, parameters, duration?, billing_mode?}
  Result<Json> create(const Json& request, const auth::Principal& who);
  // POST /v1/solve: the same translation, nothing stored. The request names
  // an offering or a blueprint {name, version}.
  Result<Json> solve(const Json& request);

  // Solving in three steps, so that the long middle one runs on another
  // thread: begin_* checks the request and takes what the solver reads (an
  // immutable snapshot, the compiled blueprint, copies of the offering and
  // order); work() solves, touching nothing else; finish() checks what
  // changed meanwhile (the order confirmed or cancelled, the offering
  // withdrawn) and commits. create(), solve() and requote() are the three
  // run back to back.
  struct Pending;
  Result<std::shared_ptr<Pending>> begin_create(const Json& request, const auth::Principal& who);
  Result<std::shared_ptr<Pending>> begin_requote(const std::string& id, const auth::Principal& who);
  Result<std::shared_ptr<Pending>> begin_solve(const Json& request);
  static void work(Pending& pending);
  Result<Json> finish(Pending& pending);

  // Reading and acting on one order; a customer only reaches its tenant's.
  Result<const engine::Object*> find(const std::string& id, const auth::Principal& who) const;
  Result<Json> confirm(const std::string& id, const Json& request, const auth::Principal& who);
  Result<Json> cancel(const std::string& id, const auth::Principal& who);
  Result<Json> requote(const std::string& id, const auth::Principal& who);

  // Marks quotes past their expiry as expired; returns how many.
  Result<std::size_t> expire_due();

  // Whether a principal sees an order.
  static bool visible(const engine::Object& order, const auth::Principal& who);

 private:
  // Takes what solving an order needs; fills its demand, solutions and expiry from the result.
  Result<std::shared_ptr<Pending>> begin_quote(Json order, int kind);
  Result<Json> quoted(Pending& pending);
  Result<Json> finish_create(Pending& pending);
  Result<Json> finish_requote(Pending& pending);
  Result<Json> finish_solve(Pending& pending);

  engine::Engine& engine_;
  catalog::Catalog& catalog_;
  blueprint::Library& library_;
  const artifacts::Images& images_;
  Settings settings_;
  resource::Collection orders_;
  SnapshotCache snapshots_;
  // Quoted orders by expiry (kept from every commit), so the sweep each
  // second looks at what is due, not at every order ever placed.
  void track_quote(const std::string& id, const Json* order);
  std::set<std::pair<std::string, std::string>> quotes_by_expiry_;  // (expires_at, id)
  std::map<std::string, std::string> quote_expiry_;                 // id -> expires_at
};

}  // namespace cpn::orders
