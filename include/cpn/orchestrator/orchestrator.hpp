// The orchestrator: a reconciler that drives each deployment's observed
// state towards its desired state through the compute and network drivers.
// Desired state is data (the template, instance records with `desired`);
// every pass records what it intends before it calls a driver, and every
// driver call is idempotent, so a crash of cpnd at any point resumes on the
// next pass and converges: no orphaned instance, no double reservation.
//
// Deployment: pending -> provisioning -> running -> completing -> completed;
// running <-> adjusting while a component scales; failing -> failed (rolled back). Instance: pending -> starting -> running
// -> draining -> stopped; failed (retried with backoff). The order follows
// its deployment: provisioning, running, completing, completed or failed.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "cpn/auth/tokens.hpp"
#include "cpn/drivers/compute.hpp"
#include "cpn/drivers/network.hpp"
#include "cpn/engine/engine.hpp"
#include "cpn/orchestrator/work_queue.hpp"

namespace cpn::orchestrator {

inline constexpr const char* kInstance = "instance";

struct Settings {
  int max_attempts = 5;                       // starts of one instance before the deployment fails
  std::chrono::milliseconds backoff{1000};    // doubled per attempt,
  std::chrono::milliseconds backoff_cap{30000};  // up to this
  int first_port = 20000;                     // instances get ports from here (process driver),
  int port_count = 10000;                     // round the range (process.ports)
  // A blocking driver is asked about an instance at most this often (its
  // answers wake the deployment, which must not ask again at once).
  std::chrono::milliseconds observe_interval{500};
  int calls_per_site = 4;  // blocking calls of one site at once (half the workers)
};

class Orchestrator {
 public:
  Orchestrator(engine::Engine& engine, drivers::Registry& compute, drivers::NetworkDriver& network, Settings settings);

  // Deployments are worked through a WorkQueue keyed by deployment id.
  // resync(): every deployment that is not finished is due (unless it
  // waits out a backoff), as the periodic pass does. work(): steps each
  // due deployment once, each alone: one whose step fails or throws is
  // queued again after its own backoff and the others go on; one that
  // changed something is due again at once. Answers the transitions made.
  void resync();
  int work();
  // resync() then work(): one pass (0: everything is where it should be).
  int reconcile();
  // Commits that concern a deployment (its own, its order's, a scale, a
  // node or fault of the inventory) make it due and call `wake`, which
  // the daemon answers by running work() soon.
  void on_due(std::function<void()> wake) { wake_ = std::move(wake); }
  // Where blocking drivers' calls run: `work` on a worker thread, then
  // `then` back on the engine's thread. Unset, they run inline.
  using Offload = std::function<void(std::function<void()> work, std::function<void()> then)>;
  void set_offload(Offload offload) { offload_ = std::move(offload); }
  const WorkQueue& queue() const { return queue_; }

  // POST /v1/orders/{id}/complete: drain and stop every instance, release
  // compute and bandwidth, close the order.
  Result<Json> complete_order(const std::string& order_id, const auth::Principal& who);
  // DELETE /v1/deployments/{id} of a running template deployment: torn
  // down, then removed. True when that is under way (202), false when it
  // had not started (the caller removes it at once).
  Result<bool> tear_down(const std::string& deployment_id);

  // POST /v1/deployments/{id}/scale {component, instances}: a running
  // deployment's component to this many instances (adjusting until done).
  Result<Json> scale(const std::string& deployment_id, const Json& request, const auth::Principal& who);
  // POST /v1/deployments/{id}/instances/{instance}/replace {node?, move?, reason?}:
  // a new instance (fresh id) on another node of the same kind at the site
  // (the named one; with move, never its own); once it runs the old one
  // drains and retires (make before break); if it gives up, it retires and
  // the old one stays. Every other instance keeps running untouched.
  // `also` adds changes to the replacement's own commit (a drain's report), given the new id and node.
  using AlsoCommit = std::function<void(const std::string& new_id, const std::string& node, std::vector<engine::Change>&)>;
  Result<Json> replace(const std::string& deployment_id, const std::string& instance, const Json& request,
                       const std::string& by, const AlsoCommit& also = {});
  // POST /v1/deployments/{id}/instances/{instance}/update {version, reason?}:
  // that instance alone runs another version of its component's model
  // (restarted in place: same id, node and port) while the others keep
  // theirs, as a canary does. Its record says what it should run (`model`)
  // and what its driver says it runs (`running_model`).
  Result<Json> update(const std::string& deployment_id, const std::string& instance, const Json& request,
                      const std::string& by);

  // Moves the instances off every node being drained (POST /v1/nodes/{id}/drain)
  // and reports in the node's `drain`; resync() calls it.
  void drain_nodes();

  // Workloads the drivers run that no instance wants (none recorded, or
  // stopped: cpnd restored from an older backup, a stop that failed) are
  // stopped, logged and counted; asked again each sweep until gone.
  // Bandwidth reservations no deployment wants, and what the network
  // driver finds of its own on the host that none accounts for, are
  // released, logged and counted (network_orphans()).
  void sweep_orphans();
  std::uint64_t orphans_stopped() const { return orphans_stopped_; }
  std::uint64_t network_orphans() const { return network_orphans_; }
  // Network driver calls waiting or in flight (a blocking driver's, sent one at a time).
  std::size_t network_queue() const { return net_queued_.size() + (net_sweep_queued_ ? 1 : 0); }

  // What the driver of a site finds of its controller (null: nothing to say).
  Json site_condition(const std::string& site) const;

  // Instances of a deployment, in id order.
  std::vector<const engine::Object*> instances_of(const std::string& deployment) const;
  int max_attempts() const { return settings_.max_attempts; }

 private:
  // The driver call of an instance: in flight, or finished and not acted on yet.
  struct Call {
    enum class Op { observe, start, stop } op = Op::observe;
    bool in_flight = false, finished = false;
    bool draining = false;                      // made for a stop that is meant (desired: stopped)
    std::chrono::steady_clock::time_point observed{};  // when the last observe was sent
    Status status;                              // of a start or stop
    std::optional<drivers::Observation> seen;   // of an observe, or the look after a stop
  };
  // False (nothing sent) when the instance's site has no room for another call.
  bool dispatch(drivers::ComputeDriver& driver, const engine::Object& instance, Call::Op op);
  bool site_has_room(const drivers::ComputeDriver& driver, const std::string& site, bool health = false) const;
  std::optional<Call> take_call(const std::string& instance_id);
  bool in_flight(const std::string& instance_id) const;
  Result<int> step(const std::string& deployment_id);
  int first_port_offset() const;
  void noticed(const std::vector<engine::Event>& events);
  Result<int> provision(const engine::Object& deployment);
  Result<int> advance(const engine::Object& deployment);
  Result<int> wind_down(const engine::Object& deployment);
  Result<int> retire(const engine::Object& deployment);
  Result<bool> revert_scale_out(const engine::Object& deployment, const std::string& failed_instance,
                                const std::string& reason);
  Result<bool> revert_replacement(const engine::Object& deployment, const std::string& failed_instance,
                                  const std::string& reason);
  // Placing new instances of a component (scaling.cpp).
  struct Candidate {
    std::string node;
    const Json* like;  // the placement whose shape a new instance takes
    int room;
    int given = 0;
    int already = 0;  // the component's instances on it now
  };
  std::vector<Candidate> candidates(const Json& component, const std::vector<const Json*>& like,
                                    const std::set<std::string>& exclude) const;
  static int spread(std::vector<Candidate>& candidates, int n);
  Result<std::vector<std::string>> add_instances(Json& body, Json& component, const std::vector<Candidate>& given,
                                                 std::vector<engine::Change>& changes);
  std::vector<std::string> to_retire(const std::string& deployment, const Json& component, int count) const;
  static void retire_ids(Json& body, Json& component, const std::vector<std::string>& ids, const std::string& reason);
  Result<int> step_up(const engine::Object& instance);
  Result<int> restart(drivers::ComputeDriver& driver, const engine::Object& instance);
  Result<int> step_down(const engine::Object& instance);
  Status commit_state(const engine::Object& object, const std::string& state, const std::string& event,
                      const Json& extra = Json::object());
  Status set_order_state(const Json& deployment, const std::string& state, std::vector<engine::Change>& changes,
                         const std::string& reason = "");
  std::string retry_at(int attempts) const;
  void note_state(Json& body, const std::string& state, const std::string& reason = "") const;
  Json new_instance(const std::string& id, const std::string& deployment, const Json& component, const Json& placement,
                    int port) const;
  static Json held_by(const Json& tmpl, const Json& retiring);
  // A deployment's flows as reservations (those with a route and a rate).
  static std::vector<drivers::PathReservation> flows_of(const Json& deployment);
  void reserve_network(const Json& deployment);
  // True once every flow of the deployment is released (or its release
  // failed and was reported: the sweep asks again).
  bool release_network(const Json& deployment);
  // A blocking network driver's calls: in order, one at a time, on a
  // worker; each result comes back here and wakes its deployment.
  struct NetworkCall {
    enum class Op { reserve, release, sweep } op = Op::reserve;
    drivers::PathReservation flow;
    std::string deployment;
    std::set<std::string> wanted;  // sweep
  };
  bool network_lane() const { return offload_ && network_.blocking(); }
  void send_network(NetworkCall call);
  void next_network_call();

  engine::Engine& engine_;
  drivers::Registry& compute_;
  drivers::NetworkDriver& network_;
  Settings settings_;
  WorkQueue queue_;
  std::function<void()> wake_;
  Offload offload_;
  std::map<std::string, Call> calls_;  // by instance id; engine thread only
  // Instance ids by deployment, kept from every commit: a step looks at its
  // own deployment's instances, never at every instance ever recorded.
  std::map<std::string, std::set<std::string>> instances_by_deployment_;
  std::set<std::string> active_;  // deployments not finished: what a resync looks at
  std::set<std::string> draining_;  // nodes being drained
  std::map<std::string, int> busy_by_site_;  // blocking calls in flight, by site
  std::map<std::string, int> health_by_site_;  // of those, observes of running instances
  std::set<std::string> orphans_;  // being stopped by the sweep
  std::uint64_t orphans_stopped_ = 0;
  // The network lane (engine thread only).
  std::deque<NetworkCall> net_waiting_;
  bool net_busy_ = false, net_sweep_queued_ = false;
  std::set<std::string> net_queued_;  // flow ids waiting or in flight
  std::map<std::string, drivers::PathReservation> net_applied_;  // as the driver last confirmed
  std::set<std::string> net_released_;  // releases that landed, until their deployment finishes
  std::uint64_t network_orphans_ = 0;
  mutable std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace cpn::orchestrator
