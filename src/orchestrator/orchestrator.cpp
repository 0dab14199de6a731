// The reconciler. Each step is: look at the record, commit what it will do
// (the intent), call the driver, and let the next pass observe the result.
// Its own steps commit relaxed (not fsync'd: a power loss may undo the
// last of them, and they converge again, every driver call being
// idempotent and observed first); what a client asked for is durable.
#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include <fmt/format.h>

#include "cpn/core/history.hpp"
#include "cpn/core/log.hpp"
#include "cpn/orchestrator/orchestrator.hpp"
#include "cpn/orchestrator/status.hpp"
#include "cpn/template/instances.hpp"
#include "cpn/template/template.hpp"

namespace cpn::orchestrator {
namespace {

constexpr const char* kOrder = "order";  // orders sit above: found by their stored kind

std::string driver_of(const engine::Engine& e, const std::string& site) {
  const engine::Object* s = e.find("site", site);
  return s ? s->body.value("/controller/driver"_json_pointer, std::string("sim")) : "sim";
}

void note(Json& body, const std::string& state, const std::string& at, const std::string& reason = "") {
  body["state"] = state;
  Json entry = {{"state", state}, {"at", at}};
  if (!reason.empty()) entry["reason"] = reason;
  append_history(body, std::move(entry));
}

std::chrono::system_clock::time_point parse_time_or(const std::string& text, std::chrono::system_clock::time_point fallback) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &ms) != 7)
    return fallback;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::chrono::system_clock::from_time_t(timegm(&tm)) + std::chrono::milliseconds(ms);
}

}  // namespace

Orchestrator::Orchestrator(engine::Engine& engine, drivers::Registry& compute, drivers::NetworkDriver& network,
                           Settings settings)
    : engine_(engine),
      compute_(compute),
      network_(network),
      settings_(settings),
      queue_(engine.clock(), settings.backoff, settings.backoff_cap) {
  for (const auto* i : engine_.list(kInstance)) instances_by_deployment_[i->body.value("deployment", "")].insert(i->id);
  for (const auto* d : engine_.list(templates::kDeployment))
    if (!engine::Engine::finished(templates::kDeployment, d->body)) active_.insert(d->id);
  for (const auto* n : engine_.list("node"))
    if (n->body.value("/drain/state"_json_pointer, "") == "draining") draining_.insert(n->id);
  engine_.on_commit([this](const std::vector<engine::Event>& events) { noticed(events); });
}

void Orchestrator::sweep_orphans() {
  for (drivers::ComputeDriver* driver : compute_.all()) {
    auto found = std::make_shared<std::vector<std::string>>();
    auto removed = std::make_shared<std::vector<std::string>>();
    auto work = [driver, found, removed] {
      *found = driver->running_instances();
      *removed = driver->remove_orphans();
    };
    auto then = [this, driver, found, removed] {
      for (const auto& what : *removed) {
        ++orphans_stopped_;
        log::warning("{}: {} that no deployment wants; removed it", driver->name(), what);
      }
      std::set<std::string> still;
      for (const auto& id : *found) {
        const engine::Object* inst = engine_.find(kInstance, id);
        if ((inst && inst->body.value("state", "") != "stopped") || in_flight(id)) continue;
        still.insert(id);
        if (orphans_.insert(id).second) {
          ++orphans_stopped_;
          log::warning("instance '{}': a {} workload runs that no deployment wants; stopping it", id, driver->name());
        }
        Json body = inst ? inst->body : Json{{"id", id}, {"driver", driver->name()}};
        body["desired"] = "stopped";
        dispatch(*driver, engine::Object{kInstance, id, 0, "", "", body}, Call::Op::stop);
      }
      // Gone since the last sweep: forgotten (and what their stops left behind).
      for (auto it = orphans_.begin(); it != orphans_.end();) {
        bool mine = std::find(found->begin(), found->end(), *it) != found->end();
        if (!mine && !still.count(*it)) {
          if (!engine_.find(kInstance, *it) && !in_flight(*it)) calls_.erase(*it);
          it = orphans_.erase(it);
        } else {
          ++it;
        }
      }
    };
    if (offload_ && driver->blocking()) {
      offload_(std::move(work), std::move(then));
    } else {
      work();
      then();
    }
  }
  // The network: what every deployment not finished may hold, and what is being sent.
  std::set<std::string> wanted = net_queued_;
  for (const auto& id : active_)
    if (const engine::Object* d = engine_.find(templates::kDeployment, id))
      for (const auto& flow : flows_of(d->body)) wanted.insert(flow.id);
  if (network_lane()) {
    if (!net_sweep_queued_) send_network({NetworkCall::Op::sweep, {}, "", std::move(wanted)});
    return;
  }
  for (const auto& what : network_.remove_orphans(wanted)) {
    ++network_orphans_;
    log::warning("network driver {}: {} that no deployment wants; released it", network_.name(), what);
  }
}

Json Orchestrator::site_condition(const std::string& site) const {
  const drivers::ComputeDriver* driver = compute_.find(driver_of(engine_, site));
  return driver ? driver->condition(site) : Json(nullptr);
}

std::vector<const engine::Object*> Orchestrator::instances_of(const std::string& deployment) const {
  std::vector<const engine::Object*> out;
  auto it = instances_by_deployment_.find(deployment);
  if (it == instances_by_deployment_.end()) return out;
  for (const auto& id : it->second)
    if (const engine::Object* o = engine_.find(kInstance, id)) out.push_back(o);
  return out;
}

Status Orchestrator::commit_state(const engine::Object& object, const std::string& state, const std::string& event,
                                  const Json& extra) {
  Json body = object.body;
  for (const auto& [k, v] : extra.items()) body[k] = v;
  note(body, state, engine_.now(), extra.value("reason", ""));
  auto e = engine_.commit_relaxed({{engine::Change::Op::put, object.kind, object.id, std::move(body), event}});
  if (!e) return fail(e.error());
  return {};
}

Status Orchestrator::set_order_state(const Json& deployment, const std::string& state,
                                     std::vector<engine::Change>& changes, const std::string& reason) {
  const engine::Object* order = engine_.find(kOrder, deployment.value("order", ""));
  if (!order || order->body.value("state", "") == state) return {};
  Json body = order->body;
  note(body, state, engine_.now(), reason);
  std::string event = "Order" + std::string(1, static_cast<char>(std::toupper(state[0]))) + state.substr(1);
  changes.push_back({engine::Change::Op::put, kOrder, order->id, std::move(body), event});
  return {};
}

void Orchestrator::noticed(const std::vector<engine::Event>& events) {
  bool any = false, all = false;
  for (const auto& e : events) {
    if (e.kind == kInstance && e.object.is_object()) {
      std::string dep = e.object.value("deployment", "");
      if (engine_.live(kInstance, e.id)) {  // stopped ones leave the working set
        instances_by_deployment_[dep].insert(e.id);
      } else if (auto it = instances_by_deployment_.find(dep); it != instances_by_deployment_.end()) {
        it->second.erase(e.id);
        if (it->second.empty()) instances_by_deployment_.erase(it);
      }
      continue;
    }
    if (e.kind == templates::kDeployment) {
      const engine::Object* d = engine_.live(templates::kDeployment, e.id);
      if (d && !engine::Engine::finished(templates::kDeployment, d->body)) active_.insert(e.id);
      else active_.erase(e.id);
      queue_.add(e.id);
      any = true;
    } else if (e.kind == kOrder && e.object.is_object() && e.object.contains("deployment")) {
      queue_.add(e.object.value("deployment", ""));
      any = true;
    } else if (e.kind == "node" || e.kind == "site" || e.kind == "link" || e.kind == "sim-fault") {
      if (e.kind == "node") {
        const engine::Object* n = engine_.find("node", e.id);
        if (n && n->body.value("/drain/state"_json_pointer, "") == "draining") draining_.insert(e.id);
        else draining_.erase(e.id);
        if (e.type == "NodeDrainProgress" || e.type == "NodeDrained") continue;  // only its own report
      }
      all = true;  // what instances run on changed: every active deployment looks
    }
  }
  if (all) {
    for (const auto& id : active_) queue_.add(id);
    any = true;
  }
  if (any && wake_) wake_();
}

void Orchestrator::resync() {
  drain_nodes();
  for (const auto& id : active_) queue_.resync(id);
}

Result<int> Orchestrator::step(const std::string& id) {
  const engine::Object* d = engine_.find(templates::kDeployment, id);
  if (!d) return 0;
  std::string state = d->body.value("state", "");
  if (engine::Engine::finished(templates::kDeployment, d->body)) return 0;
  return state == "pending"                                                      ? provision(*d)
         : state == "provisioning" || state == "running" || state == "adjusting" ? advance(*d)
                                                                                 : wind_down(*d);
}

int Orchestrator::work() {
  // Every key due now is taken first, so what a step makes due again waits for the next call.
  std::vector<std::string> keys;
  while (auto key = queue_.get()) keys.push_back(std::move(*key));
  int changes = 0;
  for (const auto& id : keys) {
    std::string failure;
    try {
      auto r = step(id);
      if (r) {
        changes += *r;
        // It moved: its backoff is over, and it is looked at again at once, not at the next resync.
        // (A step that only sent driver calls has not succeeded yet: their results say.)
        if (*r > 0) {
          queue_.forget(id);
          queue_.add(id);
        }
      } else {
        failure = r.error().message;
      }
    } catch (const std::exception& e) {
      failure = std::string("exception: ") + e.what();
    }
    if (!failure.empty()) {
      queue_.add_rate_limited(id);
      log::warning("deployment '{}': step failed (attempt {}, tried again after a backoff): {}", id,
                   queue_.failures(id), failure);
    }
    queue_.done(id);
  }
  return changes;
}

int Orchestrator::reconcile() {
  resync();
  return work();
}

// Where a run of new instances' ports starts in the range: at random, so
// two cpnds on one host (or a foreign process) rarely meet on one.
int Orchestrator::first_port_offset() const {
  return static_cast<int>(std::uniform_int_distribution<long>(0, settings_.port_count - 1)(rng_));
}

// Intent first: every instance the template asks for, as a record, and the
// deployment provisioning, in one commit.
Result<int> Orchestrator::provision(const engine::Object& d) {
  std::vector<engine::Change> changes;
  int port = first_port_offset();
  Json body = d.body;
  templates::assign_ids(body);
  for (const auto& comp : body["template"]["spec"]["components"]) {
    auto ids = templates::placement_ids(d.id, comp);
    for (std::size_t j = 0; j < ids.size(); ++j)
      for (const auto& iid : ids[j])
        changes.push_back({engine::Change::Op::put, kInstance, iid,
                           new_instance(iid, d.id, comp, comp["placements"][j], settings_.first_port + port++ % settings_.port_count),
                           "InstancePending"});
  }
  note(body, "provisioning", engine_.now());
  changes.push_back({engine::Change::Op::put, templates::kDeployment, d.id, body, "DeploymentProvisioning"});
  if (auto s = set_order_state(d.body, "provisioning", changes); !s) return fail(s.error());
  if (auto e = engine_.commit_relaxed(std::move(changes)); !e) return fail(e.error());
  return 1;
}

Json Orchestrator::new_instance(const std::string& id, const std::string& deployment, const Json& comp, const Json& p,
                                int port) const {
  Json inst = {{"id", id},
               {"deployment", deployment}, {"component", comp["name"]}, {"site", p["site"]},
               {"node", p["node"]}, {"arch", p["arch"]}, {"variant", p.value("variant", Json::object())},
               {"requests", p["requests"]}, {"model", templates::model_ref(comp)}, {"port", port},
               // When it was asked to load its model (created, or updated since): a Kubernetes group's latest replica.
               {"model_at", engine_.now()},
               {"driver", driver_of(engine_, p["site"])}, {"desired", "running"}, {"attempts", 0},
               {"history", Json::array()}};
  if (p.contains("accelerator")) inst["accelerator"] = p["accelerator"];
  note(inst, "pending", engine_.now());
  return inst;
}

void Orchestrator::note_state(Json& body, const std::string& state, const std::string& reason) const {
  note(body, state, engine_.now(), reason);
}

std::vector<drivers::PathReservation> Orchestrator::flows_of(const Json& d) {
  std::vector<drivers::PathReservation> out;
  const Json& net = d["template"]["spec"].value("network", Json::array());
  for (std::size_t k = 0; k < net.size(); ++k) {
    std::vector<std::string> sites = net[k]["path"].get<std::vector<std::string>>();
    if (sites.size() < 2 || net[k]["bandwidth_mbps"].get<double>() <= 0) continue;
    out.push_back({fmt::format("{}/{}", d["id"].get<std::string>(), k), std::move(sites), net[k]["bandwidth_mbps"]});
  }
  return out;
}

void Orchestrator::reserve_network(const Json& d) {
  for (auto& flow : flows_of(d)) {
    if (!network_lane()) {
      // A network driver that refuses is reported; the reservation is asked again next pass.
      if (auto r = network_.reserve(flow); !r)
        log::warning("deployment '{}': network reservation {}: {}", d["id"].get<std::string>(), flow.id, r.error().message);
      continue;
    }
    auto applied = net_applied_.find(flow.id);
    if (net_queued_.count(flow.id) ||
        (applied != net_applied_.end() && applied->second.sites == flow.sites && applied->second.mbps == flow.mbps))
      continue;
    send_network({NetworkCall::Op::reserve, std::move(flow), d["id"].get<std::string>(), {}});
  }
}

bool Orchestrator::release_network(const Json& d) {
  bool all = true;
  for (auto& flow : flows_of(d)) {
    if (!network_lane()) {
      if (auto r = network_.release(flow.id); !r)
        log::warning("deployment '{}': releasing network reservation {}: {}", d["id"].get<std::string>(), flow.id,
                     r.error().message);
      continue;
    }
    if (net_released_.count(flow.id)) continue;
    all = false;
    // One waiting (a reserve sent before the deployment wound down) lands first; the release follows.
    if (!net_queued_.count(flow.id)) send_network({NetworkCall::Op::release, std::move(flow), d["id"].get<std::string>(), {}});
  }
  return all;
}

void Orchestrator::send_network(NetworkCall call) {
  if (call.op == NetworkCall::Op::sweep) net_sweep_queued_ = true;
  else net_queued_.insert(call.flow.id);
  net_waiting_.push_back(std::move(call));
  next_network_call();
}

void Orchestrator::next_network_call() {
  if (net_busy_ || net_waiting_.empty()) return;
  net_busy_ = true;
  auto call = std::make_shared<NetworkCall>(std::move(net_waiting_.front()));
  net_waiting_.pop_front();
  auto status = std::make_shared<Status>();
  auto removed = std::make_shared<std::vector<std::string>>();
  auto work = [this, call, status, removed] {
    // On a worker: the driver alone, never the engine.
    try {
      if (call->op == NetworkCall::Op::reserve) *status = network_.reserve(call->flow);
      else if (call->op == NetworkCall::Op::release) *status = network_.release(call->flow.id);
      else *removed = network_.remove_orphans(call->wanted);
    } catch (const std::exception& e) {
      *status = fail(Error::internal(fmt::format("the {} network driver failed: {}", network_.name(), e.what())));
    }
  };
  auto then = [this, call, status, removed] {
    net_busy_ = false;
    const std::string& id = call->flow.id;
    switch (call->op) {
      case NetworkCall::Op::reserve:
        net_queued_.erase(id);
        if (*status) {
          net_applied_[id] = call->flow;
        } else {
          net_applied_.erase(id);
          // Asked again after a backoff, not at once (a failing tc would spin); a wind-down
          // waiting behind this reserve sends its release then.
          log::warning("deployment '{}': network reservation {}: {}", call->deployment, id, status->error().message);
          queue_.add_after(call->deployment, settings_.backoff);
        }
        break;
      case NetworkCall::Op::release:
        net_queued_.erase(id);
        net_applied_.erase(id);
        if (!*status)
          log::warning("deployment '{}': releasing network reservation {}: {} (the orphan sweep asks again)",
                       call->deployment, id, status->error().message);
        net_released_.insert(id);
        break;
      case NetworkCall::Op::sweep:
        net_sweep_queued_ = false;
        if (!*status) log::warning("network orphan sweep: {}", status->error().message);
        // What it released is no longer applied: should the same flow be wanted again, it is reserved again.
        for (auto it = net_applied_.begin(); it != net_applied_.end();)
          it = call->wanted.count(it->first) ? std::next(it) : net_applied_.erase(it);
        for (const auto& what : *removed) {
          ++network_orphans_;
          log::warning("network driver {}: {} that no deployment wants; released it", network_.name(), what);
        }
        break;
    }
    if (call->op == NetworkCall::Op::release || (call->op == NetworkCall::Op::reserve && *status)) {
      queue_.add(call->deployment);
      if (wake_) wake_();
    }
    next_network_call();
  };
  offload_(std::move(work), std::move(then));
}

Result<int> Orchestrator::advance(const engine::Object& d) {
  // The ordered duration elapsed: the service completes on its own.
  const engine::Object* order = engine_.find(kOrder, d.body.value("order", ""));
  if (order && order->body.contains("confirmed")) {
    auto since = parse_time_or(order->body["confirmed"].value("at", ""), engine_.clock().now());
    auto hours = std::chrono::duration<double, std::ratio<3600>>(order->body.value("duration_hours", 1e9));
    if (engine_.clock().now() >= since + std::chrono::duration_cast<std::chrono::milliseconds>(hours)) {
      std::vector<engine::Change> changes;
      Json body = d.body;
      note(body, "completing", engine_.now(), "the ordered duration elapsed");
      changes.push_back({engine::Change::Op::put, templates::kDeployment, d.id, body, "DeploymentCompleting"});
      if (auto s = set_order_state(d.body, "completing", changes); !s) return fail(s.error());
      if (auto e = engine_.commit_relaxed(std::move(changes)); !e) return fail(e.error());
      return 1;
    }
  }
  reserve_network(d.body);
  auto retired = retire(d);
  if (!retired) return fail(retired.error());
  int n = *retired;
  std::size_t running = 0;
  std::string gave_up;
  std::set<std::string> retiring;
  for (const auto& r : engine_.find(templates::kDeployment, d.id)->body.value("retiring", Json::array()))
    retiring.insert(r["instance"].get<std::string>());
  std::vector<std::string> ids;
  for (const auto* inst : instances_of(d.id))
    if (!retiring.count(inst->id)) ids.push_back(inst->id);
  for (const auto& id : ids) {
    const engine::Object* inst = engine_.find(kInstance, id);
    auto r = step_up(*inst);
    if (!r) return fail(r.error());
    n += *r;
    inst = engine_.find(kInstance, id);
    if (inst->body.value("state", "") == "running") ++running;
    if (inst->body.value("state", "") == "failed" && inst->body.value("attempts", 0) >= settings_.max_attempts) {
      gave_up = fmt::format("instance '{}': {}", id, inst->body.value("reason", "failed"));
      // One of a scale-out's new instances: the scaling is undone, not the deployment.
      auto reverted = revert_scale_out(*engine_.find(templates::kDeployment, d.id), id, inst->body.value("reason", "failed"));
      if (!reverted) return fail(reverted.error());
      if (*reverted) return n + 1;
    }
  }
  const engine::Object* fresh = engine_.find(templates::kDeployment, d.id);
  std::vector<engine::Change> changes;
  Json body = fresh->body;
  // Each component whose template is now fully in effect: its generation is observed.
  bool observed = false;
  for (const auto& comp : body["template"]["spec"]["components"]) {
    std::string name = comp.value("name", "");
    if (observed_of(body, name) == generation_of(body, name) || !in_effect(d.id, body, comp, engine_)) continue;
    body["observed_generations"][name] = generation_of(body, name);
    observed = true;
  }
  if (!gave_up.empty()) {
    // Roll back: everything this deployment started is stopped and released.
    note(body, "failing", engine_.now(), gave_up);
    body["reason"] = gave_up;
    changes.push_back({engine::Change::Op::put, templates::kDeployment, d.id, body, "DeploymentFailing"});
  } else if (running == ids.size() && retiring.empty() && body.value("state", "") != "running") {
    note(body, "running", engine_.now());
    changes.push_back({engine::Change::Op::put, templates::kDeployment, d.id, body, "DeploymentRunning"});
    if (auto s = set_order_state(body, "running", changes); !s) return fail(s.error());
  } else if (observed) {
    changes.push_back({engine::Change::Op::put, templates::kDeployment, d.id, body, "DeploymentGenerationObserved"});
  }
  if (changes.empty()) return n;
  if (auto e = engine_.commit_relaxed(std::move(changes)); !e) return fail(e.error());
  return n + 1;
}

// When a failed instance may start again: the backoff doubles per attempt, up to the cap.
std::string Orchestrator::retry_at(int attempts) const {
  auto wait = std::min(settings_.backoff_cap, settings_.backoff * (1 << std::min(attempts, 10)));
  return format_time(engine_.clock().now() + wait);
}

// One driver call of an instance at a time. A blocking driver's call runs
// on a worker (offload_) and its result comes back here, to be acted on by
// the next step of the deployment, which it makes due; the sim twin's calls
// run inline. Either way the step only ever acts on a finished call.
// A site may hold at most this many workers at once: a slow or hung
// cluster delays its own deployments, never every other site's calls.
// Of those, looks at instances already running (health checks) hold at
// most half: on a slow controller they would otherwise keep every slot
// and no new instance would ever start.
bool Orchestrator::site_has_room(const drivers::ComputeDriver& driver, const std::string& site, bool health) const {
  if (!offload_ || !driver.blocking()) return true;
  auto it = busy_by_site_.find(site);
  if (it != busy_by_site_.end() && it->second >= settings_.calls_per_site) return false;
  auto h = health_by_site_.find(site);
  return !health || h == health_by_site_.end() || h->second < std::max(1, settings_.calls_per_site / 2);
}

bool Orchestrator::dispatch(drivers::ComputeDriver& driver, const engine::Object& inst, Call::Op op) {
  std::string site = inst.body.value("site", "");
  bool health = op == Call::Op::observe && inst.body.value("state", "") == "running";
  if (!site_has_room(driver, site, health)) return false;
  struct Outcome {
    Status status;
    std::optional<drivers::Observation> seen;
  };
  auto outcome = std::make_shared<Outcome>();
  // The record is copied only for a worker: an inline driver reads it where it is.
  auto call = [&driver, op, outcome](const Json& body) {
    try {
      if (op == Call::Op::start) {
        outcome->status = driver.start(body);
      } else if (op == Call::Op::stop) {
        outcome->status = driver.stop(body);
        if (outcome->status) outcome->seen = driver.observe(body);
      } else {
        outcome->seen = driver.observe(body);
      }
    } catch (const std::exception& e) {  // a driver's bug is this call's failure, not cpnd's end
      outcome->status = fail(Error::internal(fmt::format("driver '{}': {}", driver.name(), e.what())));
      // An observe that throws fails the instance: retried with backoff, counted against max_attempts.
      if (op == Call::Op::observe) outcome->seen = drivers::Observation{drivers::Phase::failed, outcome->status.error().message};
    }
  };
  auto land = [this, id = inst.id, op, outcome, draining = inst.body.value("desired", "") == "stopped"] {
    Call& c = calls_[id];
    c.in_flight = false;
    c.op = op;
    c.draining = draining;
    c.status = outcome->status;
    c.seen = outcome->seen;
    c.finished = true;
  };
  calls_[inst.id].in_flight = true;
  if (!offload_ || !driver.blocking()) {
    call(inst.body);
    land();
    return true;
  }
  auto work = [call, body = inst.body] { call(body); };
  ++busy_by_site_[site];
  if (health) ++health_by_site_[site];
  offload_(std::move(work), [this, land = std::move(land), outcome, op, id = inst.id, site, health,
                              deployment = inst.body.value("deployment", "")] {
    if (auto b = busy_by_site_.find(site); b != busy_by_site_.end() && --b->second <= 0) busy_by_site_.erase(b);
    if (auto h = health_by_site_.find(site); health && h != health_by_site_.end() && --h->second <= 0)
      health_by_site_.erase(h);
    land();
    // An observation that says what the record says changes nothing: the next resync takes it.
    // Others make the deployment due, unless it waits out a backoff (then they wait with it).
    if (const engine::Object* now = engine_.find(kInstance, id);
        now && op == Call::Op::observe && outcome->seen && outcome->status &&
        ((outcome->seen->phase == drivers::Phase::running && now->body.value("state", "") == "running") ||
         (outcome->seen->phase == drivers::Phase::starting && now->body.value("state", "") == "starting")))
      return;
    queue_.resync(deployment);
    if (wake_) wake_();
  });
  return true;
}

// The finished call of an instance, taken (nothing while one is in flight or none finished).
std::optional<Orchestrator::Call> Orchestrator::take_call(const std::string& id) {
  auto it = calls_.find(id);
  if (it == calls_.end() || it->second.in_flight || !it->second.finished) return std::nullopt;
  Call c = it->second;
  it->second.finished = false;
  return c;
}

bool Orchestrator::in_flight(const std::string& id) const {
  auto it = calls_.find(id);
  return it != calls_.end() && it->second.in_flight;
}

Result<int> Orchestrator::step_up(const engine::Object& inst) {
  drivers::ComputeDriver* driver = compute_.find(inst.body.value("driver", "sim"));
  std::string state = inst.body.value("state", "");
  if (!driver) {
    if (state == "failed" && inst.body.value("attempts", 0) >= settings_.max_attempts) return 0;
    auto s = commit_state(inst, "failed", "InstanceFailed",
                          {{"reason", fmt::format("no compute driver '{}' on this cpnd", inst.body.value("driver", ""))},
                           {"attempts", settings_.max_attempts}});
    if (!s) return fail(s.error());
    return 1;
  }
  if (in_flight(inst.id)) return 0;
  if (state == "updating") return restart(*driver, inst);
  auto call = take_call(inst.id);
  if (call && call->op == Call::Op::start) {
    if (!call->status) {
      if (auto s = commit_state(inst, "failed", "InstanceFailed",
                                {{"reason", call->status.error().message},
                                 {"retry_at", retry_at(inst.body.value("attempts", 1) - 1)}});
          !s)
        return fail(s.error());
      return 1;
    }
    call.reset();  // started: what it is now is the next observation's to say
  }
  if (!call || !call->seen) {
    Call& c = calls_[inst.id];
    auto now = std::chrono::steady_clock::now();
    if (offload_ && driver->blocking() && now - c.observed < settings_.observe_interval) return 0;
    if (!dispatch(*driver, inst, Call::Op::observe)) return 0;  // its site's workers are all busy: next pass
    calls_[inst.id].observed = now;
    call = take_call(inst.id);  // there already when the driver runs inline
    if (!call || !call->seen) return 0;
  }
  const drivers::Observation seen = *call->seen;
  switch (seen.phase) {
    case drivers::Phase::running: {
      // What the workload says it runs is kept beside what it should run.
      bool model_known = !seen.model.empty() && inst.body.value("running_model", "") != seen.model;
      if (state == "running" && !model_known) return 0;
      Json extra = {{"attempts", 0}};
      if (!seen.model.empty()) extra["running_model"] = seen.model;
      if (state == "running") {
        Json body = inst.body;
        body["running_model"] = seen.model;
        auto e = engine_.commit_relaxed({{engine::Change::Op::put, kInstance, inst.id, std::move(body), "InstanceObserved"}});
        if (!e) return fail(e.error());
        return 1;
      }
      if (auto s = commit_state(inst, "running", "InstanceRunning", extra); !s) return fail(s.error());
      return 1;
    }
    case drivers::Phase::starting:
      if (state == "starting") return 0;
      if (auto s = commit_state(inst, "starting", "InstanceStarting"); !s) return fail(s.error());
      return 1;
    case drivers::Phase::failed: {
      // Still failed after the backoff (a driver whose controller retries on
      // its own, like Kubernetes): another attempt, below, counts it.
      if (state == "failed") break;
      auto s = commit_state(inst, "failed", "InstanceFailed",
                            {{"reason", seen.reason}, {"retry_at", retry_at(inst.body.value("attempts", 0))}});
      if (!s) return fail(s.error());
      dispatch(*driver, *engine_.find(kInstance, inst.id), Call::Op::stop);  // clear what is left of it
      take_call(inst.id);
      return 1;
    }
    case drivers::Phase::absent: break;
  }
  int attempts = inst.body.value("attempts", 0);
  if (state == "failed") {
    if (attempts >= settings_.max_attempts) return 0;
    if (engine_.now() < inst.body.value("retry_at", "")) return 0;
  }
  // Intent, then the call: a crash between the two starts it again next pass.
  // A retry gets another port: what failed may have been another process holding this one.
  if (!site_has_room(*driver, inst.body.value("site", ""))) return 0;  // no attempt counted while it cannot be made
  Json intent = {{"attempts", attempts + 1}, {"started_model", inst.body.value("model", "")}};
  if (state == "failed") intent["port"] = settings_.first_port + first_port_offset();
  if (auto s = commit_state(inst, "starting", "InstanceStarting", intent); !s) return fail(s.error());
  dispatch(*driver, *engine_.find(kInstance, inst.id), Call::Op::start);
  if (auto done = take_call(inst.id); done && !done->status) {
    const engine::Object* now = engine_.find(kInstance, inst.id);
    if (auto s = commit_state(*now, "failed", "InstanceFailed",
                              {{"reason", done->status.error().message}, {"retry_at", retry_at(attempts)}});
        !s)
      return fail(s.error());
  }
  return 1;
}

// An instance being updated: stopped (its desired state stays running),
// then, once its driver says it is gone, started again under the same id
// with its record's new model. Nothing else of the deployment moves. A
// driver whose start moves the instance over (updates_by_start) is only
// asked to start it.
Result<int> Orchestrator::restart(drivers::ComputeDriver& driver, const engine::Object& inst) {
  auto call = take_call(inst.id);
  if (!driver.updates_by_start()) {
    if (!call || call->op != Call::Op::stop) {
      if (!dispatch(driver, inst, Call::Op::stop)) return 0;  // no room at its site: next pass
      call = take_call(inst.id);
      if (!call) return 0;  // on a worker: its result makes the deployment due
    }
    if (!call->status) {
      auto s = commit_state(inst, "updating", "InstanceUpdating", {{"reason", call->status.error().message}});
      if (!s) return fail(s.error());
      return fail(call->status.error());  // the step backs off and asks again
    }
    if (auto phase = call->seen ? call->seen->phase : drivers::Phase::absent;
        phase == drivers::Phase::running || phase == drivers::Phase::starting)
      return 0;  // still going (a process's grace)
  } else if (!site_has_room(driver, inst.body.value("site", ""))) {
    return 0;
  }
  // Gone: the start, intent first, as any start.
  if (auto s = commit_state(inst, "starting", "InstanceStarting",
                            {{"attempts", 1}, {"started_model", inst.body.value("model", "")}, {"reason", "updated"}});
      !s)
    return fail(s.error());
  dispatch(driver, *engine_.find(kInstance, inst.id), Call::Op::start);
  if (auto done = take_call(inst.id); done && !done->status) {
    const engine::Object* now = engine_.find(kInstance, inst.id);
    if (auto s = commit_state(*now, "failed", "InstanceFailed", {{"reason", done->status.error().message}, {"retry_at", retry_at(1)}});
        !s)
      return fail(s.error());
  }
  return 1;
}

Result<int> Orchestrator::step_down(const engine::Object& inst) {
  std::string state = inst.body.value("state", "");
  if (state == "stopped") return 0;
  if (in_flight(inst.id)) return 0;
  int n = 0;
  if (state != "draining") {
    if (auto s = commit_state(inst, "draining", "InstanceDraining", {{"desired", "stopped"}}); !s) return fail(s.error());
    ++n;
  }
  const engine::Object* now = engine_.find(kInstance, inst.id);
  if (drivers::ComputeDriver* driver = compute_.find(now->body.value("driver", "sim"))) {
    auto call = take_call(inst.id);
    // Only a stop made for this (not the clean-up after a failure) and the look after it say it is gone.
    if (!call || call->op != Call::Op::stop || !call->draining) {
      dispatch(*driver, *now, Call::Op::stop);
      call = take_call(inst.id);
      if (!call) return n;
    }
    if (!call->status) return fail(call->status.error());
    // Still going (a cluster may take a while to remove it, a process its grace): look again next pass.
    if (auto phase = call->seen ? call->seen->phase : drivers::Phase::absent;
        phase == drivers::Phase::running || phase == drivers::Phase::starting)
      return n;
  }
  if (auto s = commit_state(*now, "stopped", "InstanceStopped"); !s) return fail(s.error());
  calls_.erase(inst.id);
  return n + 1;
}

// Drain and stop every instance; when all are stopped, give back the
// reservation, close the deployment and its order, all in one commit.
Result<int> Orchestrator::wind_down(const engine::Object& d) {
  int n = 0;
  bool all_stopped = true;
  std::vector<std::string> ids;
  for (const auto* inst : instances_of(d.id)) ids.push_back(inst->id);
  for (const auto& id : ids) {
    auto r = step_down(*engine_.find(kInstance, id));
    if (!r) return fail(r.error());
    n += *r;
    all_stopped = all_stopped && engine_.find(kInstance, id)->body.value("state", "") == "stopped";
  }
  if (!all_stopped) return n;
  // Off the engine's thread with a blocking driver: done when it says so.
  if (!release_network(d.body)) return n;
  const engine::Object* fresh = engine_.find(templates::kDeployment, d.id);
  Json body = fresh->body;
  bool failing = body.value("state", "") == "failing";
  std::vector<engine::Change> changes;
  if (!body.value("reservation_released", false)) {
    auto release = templates::reserve(body["reservation"], -1, engine_);
    if (!release) return fail(release.error());
    changes = std::move(*release);
    body["reservation_released"] = true;
  }
  if (body.value("delete_when_done", false)) {
    changes.push_back({engine::Change::Op::remove, templates::kDeployment, d.id, nullptr, "DeploymentDeleted"});
    for (const auto& id : ids) changes.push_back({engine::Change::Op::remove, kInstance, id, nullptr, "InstanceDeleted"});
    // Those stopped in an earlier pass are archived already.
    for (const auto* inst : engine_.archived_of(kInstance, d.id))
      if (std::find(ids.begin(), ids.end(), inst->id) == ids.end())
        changes.push_back({engine::Change::Op::remove, kInstance, inst->id, nullptr, "InstanceDeleted"});
  } else {
    note(body, failing ? "failed" : "completed", engine_.now(), failing ? body.value("reason", "") : "");
    changes.push_back({engine::Change::Op::put, templates::kDeployment, d.id, body,
                       failing ? "DeploymentFailed" : "DeploymentCompleted"});
  }
  if (auto s = set_order_state(body, failing ? "failed" : "completed", changes, failing ? body.value("reason", "") : "");
      !s)
    return fail(s.error());
  if (auto e = engine_.commit_relaxed(std::move(changes)); !e) return fail(e.error());
  for (const auto& flow : flows_of(body)) net_released_.erase(flow.id);
  return n + 1;
}

Result<Json> Orchestrator::complete_order(const std::string& order_id, const auth::Principal& who) {
  const engine::Object* order = engine_.find(kOrder, order_id);
  if (!order || !auth::sees_tenant(who, order->body.value("tenant", "")))
    return fail(Error::not_found(fmt::format("order '{}' not found", order_id)));
  std::string state = order->body.value("state", "");
  if (state != "confirmed" && state != "provisioning" && state != "running" && state != "adjusting")
    return fail(Error::conflict(fmt::format("order '{}' is {}: only a confirmed, provisioning, running or adjusting order completes",
                                            order_id, state)));
  const engine::Object* d = engine_.find(templates::kDeployment, order->body.value("deployment", ""));
  if (!d) return fail(Error::conflict(fmt::format("order '{}' has no deployment", order_id)));
  std::vector<engine::Change> changes;
  Json body = d->body;
  note(body, "completing", engine_.now(), "completed by " + who.name);
  changes.push_back({engine::Change::Op::put, templates::kDeployment, d->id, body, "DeploymentCompleting"});
  if (auto s = set_order_state(d->body, "completing", changes, "completed by " + who.name); !s) return fail(s.error());
  if (auto e = engine_.commit(std::move(changes)); !e) return fail(e.error());
  return engine_.find(kOrder, order_id)->body;
}

Result<bool> Orchestrator::tear_down(const std::string& id) {
  const engine::Object* d = engine_.find(templates::kDeployment, id);
  if (!d) return fail(Error::not_found(fmt::format("deployment '{}' not found", id)));
  std::string state = d->body.value("state", "");
  if (state == "pending") return false;
  if (state == "completing" || state == "failing") return true;
  Json body = d->body;
  body["delete_when_done"] = true;
  note(body, "completing", engine_.now(), "deleted");
  auto e = engine_.commit({{engine::Change::Op::put, templates::kDeployment, id, body, "DeploymentCompleting"}});
  if (!e) return fail(e.error());
  return true;
}

}  // namespace cpn::orchestrator
