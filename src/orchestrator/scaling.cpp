// Scaling a running deployment's component to a number of instances, and
// replacing one instance. Like everything the orchestrator does, the
// intent is one commit: scaling out appends placements to the template
// (with fresh instance ids), takes their capacity and creates the new
// instance records; scaling in takes chosen instances out of the template
// and lists them as retiring; a replacement does both for one instance.
// The reconciler then starts the new ones, or drains the retiring ones and
// gives back each one's capacity in the commit that removes it. Instances
// not named are never touched. A crash anywhere resumes from the records.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "cpn/core/log.hpp"
#include "cpn/inventory/inventory.hpp"
#include "cpn/orchestrator/orchestrator.hpp"
#include "cpn/orchestrator/status.hpp"
#include "cpn/sim/twin.hpp"
#include "cpn/template/instances.hpp"
#include "cpn/template/template.hpp"

namespace cpn::orchestrator {
namespace {

// A template-shaped document of some placements, for reservation_of.
Json placements_doc(const Json& placements) {
  return {{"spec", {{"components", Json::array({{{"placements", placements}}})}}}};
}

int total_instances(const Json& comp) {
  int n = 0;
  for (const auto& p : comp["placements"]) n += p["instances"].get<int>();
  return n;
}

// How many more instances of these requests fit on a node, given what is held.
int fits(const Json& node, const Json& req, const std::string& accelerator) {
  const Json alloc = node.value("allocated", Json::object());
  double cpu = node.value("cpu", 0.0) - alloc.value("cpu", 0.0);
  double memory = node.value("memory", 0.0) - alloc.value("memory", 0.0);
  double want_cpu = req.value("cpu", 0.0), want_memory = req.value("memory", 0.0);
  int want_acc = req.value("accelerators", 0);
  long n = 1L << 20;
  if (want_cpu > 0) n = std::min(n, static_cast<long>(std::floor(cpu / want_cpu + 1e-9)));
  if (want_memory > 0) n = std::min(n, static_cast<long>(std::floor(memory / want_memory + 1e-9)));
  if (want_acc > 0) {
    int have = 0;
    for (const auto& a : node.value("accelerators", Json::array()))
      if (a.value("model", "") == accelerator) have += a.value("count", 0);
    have -= alloc.value("/accelerators_by_model"_json_pointer / accelerator, 0);
    n = std::min(n, static_cast<long>(std::max(0, have) / want_acc));
  }
  return static_cast<int>(std::max(0L, n));
}

}  // namespace

// What the deployment holds: its template's placements and links, and the
// retiring instances that have not given theirs back yet.
Json Orchestrator::held_by(const Json& tmpl, const Json& retiring) {
  Json doc = tmpl;
  Json extra = Json::array();
  for (const auto& r : retiring) extra.push_back(r["placement"]);
  if (!extra.empty()) doc["spec"]["components"].push_back({{"name", "retiring"}, {"placements", extra}});
  return templates::reservation_of(doc);
}

// Which instances a scale-in retires, in this order: those not running
// (failed, pending, starting), then those on a node that is cordoned, down
// or faulted in the twin, then the newest (highest ordinal). The others
// keep running untouched.
std::vector<std::string> Orchestrator::to_retire(const std::string& deployment, const Json& comp, int count) const {
  const sim::Conditions twin = sim::conditions_of(engine_);
  struct Ranked {
    int rank;
    long ordinal;
    std::string id;
  };
  std::vector<Ranked> ranked;
  for (const auto& iid : templates::instance_ids(deployment, comp)) {
    const engine::Object* inst = engine_.find(kInstance, iid);
    int rank = 2;
    if (!inst || inst->body.value("state", "") != "running") {
      rank = 0;
    } else {
      const engine::Object* node = engine_.find(inventory::kNode, inst->body.value("node", ""));
      if (!node || node->body.value("state", "ready") != "ready" || !twin.node_up(engine_, node->id)) rank = 1;
    }
    auto dash = iid.rfind('-');
    long ordinal = dash == std::string::npos ? 0 : std::strtol(iid.c_str() + dash + 1, nullptr, 10);
    ranked.push_back({rank, ordinal, iid});
  }
  std::sort(ranked.begin(), ranked.end(), [](const Ranked& a, const Ranked& b) {
    return a.rank != b.rank ? a.rank < b.rank : a.ordinal > b.ordinal;
  });
  std::vector<std::string> out;
  for (int i = 0; i < count && i < static_cast<int>(ranked.size()); ++i) out.push_back(ranked[i].id);
  return out;
}

// Takes these instances out of the template and lists them as retiring.
void Orchestrator::retire_ids(Json& body, Json& comp, const std::vector<std::string>& ids, const std::string& reason) {
  Json retiring = body.value("retiring", Json::array());
  for (const auto& iid : ids)
    if (auto one = templates::take_out(comp, iid))
      retiring.push_back({{"instance", iid}, {"component", comp["name"]}, {"placement", *one}, {"reason", reason}});
  body["retiring"] = retiring;
}

// The replacement of an instance gave up: it retires, and the instance it
// was to replace, still running, goes back into the template.
Result<bool> Orchestrator::revert_replacement(const engine::Object& d, const std::string& failed_instance,
                                              const std::string& reason) {
  Json body = d.body;
  Json& components = body["template"]["spec"]["components"];
  std::string component = body["scaling"].value("component", "");
  auto comp = std::find_if(components.begin(), components.end(), [&](const Json& c) { return c["name"] == component; });
  if (comp == components.end()) return false;
  Json retiring = Json::array();
  std::string kept;
  for (const auto& r : body.value("retiring", Json::array())) {
    if (r.value("after", "") == failed_instance) {
      kept = r["instance"];
      (*comp)["placements"].push_back(r["placement"]);
    } else {
      retiring.push_back(r);
    }
  }
  body["retiring"] = retiring;
  retire_ids(body, *comp, {failed_instance}, "replacement failed");
  body["reservation"] = held_by(body["template"], body["retiring"]);
  body["scaling"]["reverted"] = true;
  body["scaling"]["reason"] = reason;
  bump_generation(body, component);  // a change undone is a change, as a Kubernetes rollback is
  std::string why = fmt::format("replacing '{}' failed ({}): '{}' keeps running", body["scaling"].value("replaces", ""),
                                reason, kept.empty() ? "nothing" : kept);
  note_state(body, "adjusting", why);
  auto e = engine_.commit_relaxed({{engine::Change::Op::put, templates::kDeployment, d.id, body, "DeploymentReplaceReverted"}});
  if (!e) return fail(e.error());
  log::warning("deployment '{}': {}", d.id, why);
  return true;
}

// A new instance of a scale-out gave up: the scaling is undone (its new
// instances retire), and the service that ran before it keeps running.
Result<bool> Orchestrator::revert_scale_out(const engine::Object& d, const std::string& failed_instance,
                                            const std::string& reason) {
  const Json scaling = d.body.value("scaling", Json::object());
  if (d.body.value("state", "") != "adjusting" || scaling.value("reverted", false)) return false;
  if (scaling.contains("replaces")) {
    Json added = scaling.value("added", Json::array());
    if (std::find(added.begin(), added.end(), Json(failed_instance)) == added.end()) return false;
    return revert_replacement(d, failed_instance, reason);
  }
  int from = scaling.value("from", 0), to = scaling.value("to", 0);
  std::string component = scaling.value("component", "");
  Json body = d.body;
  Json& components = body["template"]["spec"]["components"];
  auto comp = std::find_if(components.begin(), components.end(), [&](const Json& c) { return c["name"] == component; });
  if (comp == components.end()) return false;
  std::vector<std::string> added;
  if (scaling.contains("added")) {
    added = scaling["added"].get<std::vector<std::string>>();
  } else {  // recorded before ids were kept: the new ones were the last positions
    auto ids = templates::instance_ids(d.id, *comp);
    for (int k = from; k < to && k < static_cast<int>(ids.size()); ++k) added.push_back(ids[k]);
  }
  if (std::find(added.begin(), added.end(), failed_instance) == added.end()) return false;
  templates::assign_ids(body);
  retire_ids(body, *comp, added, "scale-out reverted");
  body["reservation"] = held_by(body["template"], body["retiring"]);
  body["scaling"]["reverted"] = true;
  body["scaling"]["reason"] = reason;
  bump_generation(body, component);  // a change undone is a change, as a Kubernetes rollback is
  std::string why = fmt::format("scaling {} to {} failed ({}): back to {}", component, to, reason, from);
  note_state(body, "adjusting", why);
  auto e = engine_.commit_relaxed({{engine::Change::Op::put, templates::kDeployment, d.id, body, "DeploymentScaleReverted"}});
  if (!e) return fail(e.error());
  log::warning("deployment '{}': {}", d.id, why);
  return true;
}

// Nodes of a component's own kinds (site, architecture, accelerator) with
// room for more of its instances, each with the placement whose shape new
// instances take there. Nodes not ready, down in the twin or excluded are
// left out.
std::vector<Orchestrator::Candidate> Orchestrator::candidates(const Json& comp, const std::vector<const Json*>& like,
                                                              const std::set<std::string>& exclude) const {
  const sim::Conditions twin = sim::conditions_of(engine_);
  std::vector<Candidate> out;
  for (const Json* p : like)
    for (const auto* n : engine_.list(inventory::kNode)) {
      const Json& nb = n->body;
      if (exclude.count(n->id) || nb.value("site", "") != (*p)["site"] || nb.value("arch", "") != (*p)["arch"] ||
          nb.value("state", "ready") != "ready" || !twin.node_up(engine_, n->id))
        continue;
      if (std::any_of(out.begin(), out.end(), [&](const Candidate& c) { return c.node == n->id; })) continue;
      int room = fits(nb, (*p)["requests"], p->value("accelerator", ""));
      if (room <= 0) continue;
      int already = 0;
      for (const auto& q : comp["placements"])
        if (q["node"] == n->id) already += q["instances"].get<int>();
      out.push_back({n->id, p, room, 0, already});
    }
  return out;
}

// Gives n more instances to candidates: each to the node with the fewest
// of the component's instances, then the most room, so they spread.
// Answers how many found a place.
int Orchestrator::spread(std::vector<Candidate>& candidates, int n) {
  for (int i = 0; i < n; ++i) {
    auto best = candidates.end();
    for (auto c = candidates.begin(); c != candidates.end(); ++c) {
      if (c->room - c->given <= 0) continue;
      if (best == candidates.end() || c->already + c->given < best->already + best->given ||
          (c->already + c->given == best->already + best->given && c->room - c->given > best->room - best->given))
        best = c;
    }
    if (best == candidates.end()) return i;
    ++best->given;
  }
  return n;
}

// The placements the candidates were given, each with fresh instance ids, added
// to the component; their reservation and instance records join changes.
Result<std::vector<std::string>> Orchestrator::add_instances(Json& body, Json& comp, const std::vector<Candidate>& given,
                                                             std::vector<engine::Change>& changes) {
  Json added = Json::array();
  for (const auto& c : given) {
    if (c.given == 0) continue;
    Json p = *c.like;
    int per = std::max(1, p["instances"].get<int>());
    p["node"] = c.node;
    p["instances"] = c.given;
    if (p.contains("capacity")) p["capacity"] = p["capacity"].get<double>() / per * c.given;
    Json ids = Json::array();
    for (int i = 0; i < c.given; ++i) ids.push_back(templates::next_id(body, comp["name"]));
    p["instance_ids"] = ids;
    added.push_back(p);
  }
  auto take = templates::reserve(templates::reservation_of(placements_doc(added)), +1, engine_, "/instances");
  if (!take) return fail(take.error());
  changes.insert(changes.end(), take->begin(), take->end());
  std::vector<std::string> out;
  int port = first_port_offset();
  std::string id = body["id"];
  for (const auto& p : added) {
    comp["placements"].push_back(p);
    for (const auto& iid : p["instance_ids"]) {
      out.push_back(iid);
      changes.push_back({engine::Change::Op::put, kInstance, iid,
                         new_instance(iid, id, comp, p, settings_.first_port + port++ % settings_.port_count),
                         "InstancePending"});
    }
  }
  return out;
}

Result<Json> Orchestrator::scale(const std::string& id, const Json& request, const auth::Principal& who) {
  const engine::Object* d = engine_.find(templates::kDeployment, id);
  if (!d) return fail(Error::not_found(fmt::format("deployment '{}' not found", id)));
  std::string state = d->body.value("state", "");
  if (state != "running")
    return fail(Error::conflict(fmt::format("deployment '{}' is {}: only a running deployment scales (one change at a time)", id, state)));
  std::string component = request["component"];
  int want = request["instances"];
  Json body = d->body;
  templates::assign_ids(body);
  Json& components = body["template"]["spec"]["components"];
  auto comp = std::find_if(components.begin(), components.end(), [&](const Json& c) { return c["name"] == component; });
  if (comp == components.end())
    return fail(Error::invalid_field("/component", fmt::format("deployment '{}' has no component '{}'", id, component)));
  int have = total_instances(*comp);
  if (want == have) return d->body;

  std::vector<engine::Change> changes;
  Json scaling = {{"component", component}, {"from", have}, {"to", want}, {"at", engine_.now()}, {"by", who.name}};
  if (want > have) {
    // Out: on the component's own kinds of node, spread.
    std::vector<const Json*> like;
    for (const auto& p : (*comp)["placements"]) like.push_back(&p);
    auto found = candidates(*comp, like, {});
    if (int placed = spread(found, want - have); placed < want - have)
      return fail(Error::conflict(
          fmt::format("component '{}' has room for {} more instances at its sites, not {}", component, placed, want - have),
          {{"/instances", "not enough free capacity at the component's sites"}}));
    auto added = add_instances(body, *comp, found, changes);
    if (!added) return fail(added.error());
    scaling["added"] = *added;
  } else {
    auto chosen = to_retire(id, *comp, have - want);
    retire_ids(body, *comp, chosen, fmt::format("scaled in to {}", want));
    scaling["retired"] = chosen;
  }
  body["reservation"] = held_by(body["template"], body.value("retiring", Json::array()));
  body["scaling"] = scaling;
  bump_generation(body, component);
  note_state(body, "adjusting", fmt::format("{} from {} to {} instances", component, have, want));
  changes.push_back({engine::Change::Op::put, templates::kDeployment, id, body, "DeploymentScaled"});
  if (auto s = set_order_state(d->body, "adjusting", changes, fmt::format("{} from {} to {} instances", component, have, want));
      !s)
    return fail(s.error());
  if (auto e = engine_.commit(std::move(changes)); !e) return fail(e.error());
  return engine_.find(templates::kDeployment, id)->body;
}

Result<Json> Orchestrator::replace(const std::string& id, const std::string& instance, const Json& request,
                                   const std::string& by, const AlsoCommit& also) {
  const engine::Object* d = engine_.find(templates::kDeployment, id);
  if (!d) return fail(Error::not_found(fmt::format("deployment '{}' not found", id)));
  std::string state = d->body.value("state", "");
  if (state != "running")
    return fail(Error::conflict(
        fmt::format("deployment '{}' is {}: only a running deployment changes an instance (one change at a time)", id, state)));
  Json body = d->body;
  templates::assign_ids(body);
  Json* comp = nullptr;
  const Json* like = nullptr;
  for (auto& c : body["template"]["spec"]["components"])
    for (const auto& p : c["placements"])
      for (const auto& iid : p["instance_ids"])
        if (iid == instance) comp = &c, like = &p;
  if (!comp)
    return fail(Error::not_found(fmt::format("deployment '{}' has no instance '{}' in its template", id, instance)));
  // A driver that runs a group of instances as one workload (a Kubernetes
  // Deployment's replicas) cannot swap one of them alone.
  const engine::Object* old = engine_.find(kInstance, instance);
  if (drivers::ComputeDriver* driver = compute_.find(old ? old->body.value("driver", "sim") : "sim"); driver && !driver->replaces_one())
    return fail(Error::conflict(fmt::format("the {} driver runs instances in groups: one cannot be replaced alone yet",
                                            driver->name())));
  std::string from = (*like)["node"];
  std::string node = request.value("node", "");
  bool move = request.value("move", false) || !node.empty();
  std::set<std::string> exclude;
  if (move) exclude.insert(from);
  auto found = candidates(*comp, {like}, exclude);
  if (!node.empty()) {
    if (node == from) return fail(Error::invalid_field("/node", fmt::format("instance '{}' is on '{}' already", instance, node)));
    std::erase_if(found, [&](const Candidate& c) { return c.node != node; });
    if (found.empty())
      return fail(Error::invalid_field(
          "/node", fmt::format("node '{}' cannot take instance '{}': it must be ready, at site '{}', {}{}, with room for "
                               "its requests",
                               node, instance, (*like)["site"].get<std::string>(), (*like)["arch"].get<std::string>(),
                               like->contains("accelerator") ? " with " + (*like)["accelerator"].get<std::string>() : "")));
  }
  // Another node first (what a replacement is usually for), its own node when it is the only one with room.
  if (!move && found.size() > 1) std::erase_if(found, [&](const Candidate& c) { return c.node == from; });
  if (spread(found, 1) < 1)
    return fail(Error::conflict(fmt::format("no node at site '{}' of the instance's kind has room for a replacement of '{}'",
                                            (*like)["site"].get<std::string>(), instance),
                                {{move ? "/node" : "", "no room for the replacement"}}));
  std::vector<engine::Change> changes;
  Json shape = *like;  // like points into the component, which changes below
  for (auto& c : found) c.like = &shape;
  std::string reason = request.value("reason", std::string(move ? "moved" : "replaced"));
  // Make before break: the old one leaves the template now but keeps
  // running (and holding its capacity) until its replacement runs.
  retire_ids(body, *comp, {instance}, reason);
  auto added = add_instances(body, *comp, found, changes);
  if (!added) return fail(added.error());
  body["retiring"].back()["after"] = added->front();
  std::string to;
  for (const auto& c : found)
    if (c.given) to = c.node;
  body["reservation"] = held_by(body["template"], body["retiring"]);
  bump_generation(body, (*comp)["name"].get<std::string>());
  body["scaling"] = {{"component", (*comp)["name"]}, {"replaces", instance}, {"added", *added}, {"from_node", from},
                     {"to_node", to}, {"reason", reason}, {"at", engine_.now()}, {"by", by}};
  std::string why = fmt::format("{} '{}' by '{}' on '{}'", move ? "moving" : "replacing", instance, added->front(), to);
  note_state(body, "adjusting", why);
  changes.push_back({engine::Change::Op::put, templates::kDeployment, id, body, "DeploymentInstanceReplaced"});
  if (also) also(added->front(), to, changes);
  if (auto s = set_order_state(d->body, "adjusting", changes, why); !s) return fail(s.error());
  if (auto e = engine_.commit(std::move(changes)); !e) return fail(e.error());
  log::info("deployment '{}': {} ({})", id, why, reason);
  return engine_.find(templates::kDeployment, id)->body;
}

// Drains the retiring instances; each one that has stopped is removed and
// its capacity given back in one commit.
Result<int> Orchestrator::retire(const engine::Object& d) {
  int n = 0;
  const Json retiring = d.body.value("retiring", Json::array());
  for (const auto& r : retiring) {
    std::string iid = r["instance"];
    const engine::Object* inst = engine_.find(kInstance, iid);
    if (r.contains("after")) {
      // Replaced: it keeps running until its replacement does (then it drains, in this same pass).
      const engine::Object* by = engine_.find(kInstance, r["after"].get<std::string>());
      if (by && by->body.value("state", "") != "running") continue;
      Json body = engine_.find(templates::kDeployment, d.id)->body;
      for (auto& x : body["retiring"])
        if (x["instance"] == iid) x.erase("after");
      if (auto e = engine_.commit_relaxed({{engine::Change::Op::put, templates::kDeployment, d.id, body, "DeploymentReplacementRunning"}}); !e)
        return fail(e.error());
      ++n;
    }
    if (inst && inst->body.value("state", "") != "stopped") {
      auto step = step_down(*inst);
      if (!step) return fail(step.error());
      n += *step;
      inst = engine_.find(kInstance, iid);
      if (inst->body.value("state", "") != "stopped") continue;
    }
    const engine::Object* fresh = engine_.find(templates::kDeployment, d.id);
    Json body = fresh->body;
    Json left = Json::array();
    for (const auto& x : body["retiring"])
      if (x["instance"] != iid) left.push_back(x);
    auto give = templates::reserve(templates::reservation_of(placements_doc(Json::array({r["placement"]}))), -1, engine_);
    if (!give) return fail(give.error());
    std::vector<engine::Change> changes = std::move(*give);
    body["retiring"] = left;
    body["reservation"] = held_by(body["template"], left);
    if (inst) changes.push_back({engine::Change::Op::remove, kInstance, iid, nullptr, "InstanceRetired"});
    changes.push_back({engine::Change::Op::put, templates::kDeployment, d.id, body, "DeploymentInstanceRetired"});
    if (auto e = engine_.commit_relaxed(std::move(changes)); !e) return fail(e.error());
    ++n;
  }
  return n;
}

}  // namespace cpn::orchestrator

namespace cpn::orchestrator {

Result<Json> Orchestrator::update(const std::string& id, const std::string& instance, const Json& request,
                                  const std::string& by) {
  const engine::Object* d = engine_.find(templates::kDeployment, id);
  if (!d) return fail(Error::not_found(fmt::format("deployment '{}' not found", id)));
  std::string state = d->body.value("state", "");
  if (state != "running")
    return fail(Error::conflict(
        fmt::format("deployment '{}' is {}: only a running deployment changes an instance (one change at a time)", id, state)));
  const engine::Object* inst = engine_.find(kInstance, instance);
  bool in_template = false;
  for (const auto& c : d->body["template"]["spec"]["components"])
    for (const auto& iid : templates::instance_ids(id, c)) in_template = in_template || iid == instance;
  if (!inst || !in_template)
    return fail(Error::not_found(fmt::format("deployment '{}' has no instance '{}' in its template", id, instance)));
  const Json* comp = nullptr;
  for (const auto& c : d->body["template"]["spec"]["components"])
    if (c["name"] == inst->body["component"]) comp = &c;
  std::string model = comp ? comp->value("/model/name"_json_pointer, "") : "";
  if (model.empty())
    return fail(Error::invalid_field("/version", fmt::format("component '{}' loads no model",
                                                             inst->body.value("component", ""))));
  drivers::ComputeDriver* driver = compute_.find(inst->body.value("driver", "sim"));
  if (driver && !driver->updates_one())
    return fail(Error::conflict(fmt::format("the {} driver runs instances in groups: one cannot be updated alone yet",
                                            driver->name())));
  std::string want = model + "@" + request["version"].get<std::string>();
  if (inst->body.value("model", "") == want) return d->body;
  std::string from = inst->body.value("model", "");
  std::string reason = request.value("reason", fmt::format("model {} -> {}", from, want));
  Json ib = inst->body;
  ib["model"] = want;
  ib["previous_model"] = from;
  ib["model_at"] = engine_.now();
  note_state(ib, "updating", reason);
  Json body = d->body;
  bump_generation(body, inst->body.value("component", ""));
  body["scaling"] = {{"component", inst->body["component"]}, {"updates", instance}, {"from_model", from},
                     {"to_model", want}, {"reason", reason}, {"at", engine_.now()}, {"by", by}};
  std::string why = fmt::format("updating '{}' to {}", instance, want);
  note_state(body, "adjusting", why);
  std::vector<engine::Change> changes = {{engine::Change::Op::put, kInstance, instance, std::move(ib), "InstanceUpdating"},
                                         {engine::Change::Op::put, templates::kDeployment, id, body, "DeploymentInstanceUpdated"}};
  if (auto s = set_order_state(d->body, "adjusting", changes, why); !s) return fail(s.error());
  if (auto e = engine_.commit(std::move(changes)); !e) return fail(e.error());
  log::info("deployment '{}': {}", id, why);
  return engine_.find(templates::kDeployment, id)->body;
}

// Each draining node: every instance on it that still runs is moved, one
// change per deployment at a time (a deployment busy with another change
// waits), through the same path as a replacement. The node's `drain` says
// what moved, what waits and why, and how many are left; it is drained
// when nothing of a deployment runs on it any more.
void Orchestrator::drain_nodes() {
  for (auto it = draining_.begin(); it != draining_.end();) {
    std::string node_id = *it++;
    const engine::Object* node = engine_.find(inventory::kNode, node_id);
    if (!node || node->body.value("/drain/state"_json_pointer, "") != "draining" ||
        node->body.value("state", "ready") == "ready")  // made ready again: the drain is over
      continue;
    Json drain = node->body["drain"];
    Json waiting = Json::array();
    int left = 0;
    for (const auto& dep : std::vector<std::string>(active_.begin(), active_.end())) {
      for (const auto* inst : instances_of(dep)) {
        if (inst->body.value("node", "") != node_id || inst->body.value("state", "") == "stopped") continue;
        ++left;
        const engine::Object* d = engine_.find(templates::kDeployment, dep);
        bool retiring = false;
        for (const auto& r : d->body.value("retiring", Json::array())) retiring = retiring || r["instance"] == inst->id;
        if (retiring || inst->body.value("desired", "") == "stopped") continue;  // on its way out
        if (d->body.value("state", "") != "running") {
          waiting.push_back({{"instance", inst->id}, {"reason", fmt::format("deployment '{}' is {}", dep, d->body.value("state", ""))}});
          continue;
        }
        // The drain's report of the move lands in the move's own commit.
        auto record = [&](const std::string& by, const std::string& to, std::vector<engine::Change>& changes) {
          Json nb = engine_.find(inventory::kNode, node_id)->body;
          nb["drain"]["moved"].push_back({{"instance", inst->id}, {"by", by}, {"to", to}, {"at", engine_.now()}});
          changes.push_back({engine::Change::Op::put, inventory::kNode, node_id, std::move(nb), "NodeDrainProgress"});
        };
        auto moved = replace(dep, inst->id, {{"move", true}, {"reason", fmt::format("node '{}' is drained", node_id)}},
                             "drain", record);
        if (!moved) waiting.push_back({{"instance", inst->id}, {"reason", moved.error().message}});
      }
    }
    node = engine_.find(inventory::kNode, node_id);
    if (!node) continue;
    drain = node->body["drain"];  // with the moves just recorded
    drain["left"] = left;
    drain["waiting"] = waiting;
    if (left == 0) {
      drain["state"] = "drained";
      drain["finished_at"] = engine_.now();
    }
    if (node->body.value("drain", Json()) == drain) continue;
    Json body = node->body;
    body["drain"] = drain;
    auto e = engine_.commit_relaxed(
        {{engine::Change::Op::put, inventory::kNode, node_id, body, left == 0 ? "NodeDrained" : "NodeDrainProgress"}});
    if (!e) log::warning("node '{}': recording the drain's progress: {}", node_id, e.error().message);
    else if (left == 0) log::info("node '{}': drained ({} instances moved)", node_id, drain["moved"].size());
  }
}

}  // namespace cpn::orchestrator
