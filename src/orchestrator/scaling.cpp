// Scaling a running deployment's component to a number of instances. Like
// everything the orchestrator does, the intent is one commit: scaling out
// appends placements to the template, takes their capacity and creates the
// new instance records; scaling in takes the newest instances out of the
// template and lists them as retiring. The reconciler then starts the new
// ones, or drains the retiring ones and gives back each one's capacity in
// the commit that removes it. A crash anywhere resumes from the records.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "cpn/core/log.hpp"
#include "cpn/inventory/inventory.hpp"
#include "cpn/orchestrator/orchestrator.hpp"
#include "cpn/sim/twin.hpp"
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

// In: the newest instances go first (the last placements), so the
// numbering of those that stay does not move. They are listed as retiring.
void Orchestrator::retire_newest(Json& body, Json& comp, const std::string& id, int want) {
  std::string component = comp["name"];
  Json& placements = comp["placements"];
  Json retiring = body.value("retiring", Json::array());
  for (int k = total_instances(comp) - 1; k >= want; --k) {
    Json& last = placements.back();
    Json one = last;
    one["instances"] = 1;
    if (one.contains("capacity")) one["capacity"] = last["capacity"].get<double>() / last["instances"].get<int>();
    retiring.push_back({{"instance", templates::instance_id(id, component, k)}, {"placement", one}});
    if (last["instances"].get<int>() == 1) {
      placements.erase(placements.size() - 1);
    } else {
      if (last.contains("capacity")) last["capacity"] = last["capacity"].get<double>() - one["capacity"].get<double>();
      last["instances"] = last["instances"].get<int>() - 1;
    }
  }
  body["retiring"] = retiring;
}

// A new instance of a scale-out gave up: the scaling is undone (its new
// instances retire), and the service that ran before it keeps running.
Result<bool> Orchestrator::revert_scale_out(const engine::Object& d, const std::string& failed_instance,
                                            const std::string& reason) {
  const Json scaling = d.body.value("scaling", Json::object());
  if (d.body.value("state", "") != "adjusting" || scaling.value("reverted", false)) return false;
  int from = scaling.value("from", 0), to = scaling.value("to", 0);
  std::string component = scaling.value("component", "");
  bool is_new = false;
  for (int k = from; k < to; ++k) is_new = is_new || templates::instance_id(d.id, component, k) == failed_instance;
  if (!is_new) return false;
  Json body = d.body;
  Json& components = body["template"]["spec"]["components"];
  auto comp = std::find_if(components.begin(), components.end(), [&](const Json& c) { return c["name"] == component; });
  if (comp == components.end()) return false;
  retire_newest(body, *comp, d.id, from);
  body["reservation"] = held_by(body["template"], body["retiring"]);
  body["scaling"]["reverted"] = true;
  body["scaling"]["reason"] = reason;
  std::string why = fmt::format("scaling {} to {} failed ({}): back to {}", component, to, reason, from);
  note_state(body, "adjusting", why);
  auto e = engine_.commit_relaxed({{engine::Change::Op::put, templates::kDeployment, d.id, body, "DeploymentScaleReverted"}});
  if (!e) return fail(e.error());
  log::warning("deployment '{}': {}", d.id, why);
  return true;
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
  Json& components = body["template"]["spec"]["components"];
  auto comp = std::find_if(components.begin(), components.end(), [&](const Json& c) { return c["name"] == component; });
  if (comp == components.end())
    return fail(Error::invalid_field("/component", fmt::format("deployment '{}' has no component '{}'", id, component)));
  int have = total_instances(*comp);
  if (want == have) return d->body;

  std::vector<engine::Change> changes;
  Json scaling = {{"component", component}, {"from", have}, {"to", want}, {"at", engine_.now()}, {"by", who.name}};
  if (want > have) {
    // Out: the component's own kinds of node (site, architecture,
    // accelerator, variant); each new instance goes to the node with the
    // fewest of the component's instances, then the most room, so they
    // spread; nodes not ready, or down in the twin, are skipped.
    const sim::Conditions twin = sim::conditions_of(engine_);
    struct Candidate {
      std::string node;
      const Json* like;  // the placement whose shape a new instance takes
      int room;
      int given = 0;
      int already = 0;  // the component's instances on it now
    };
    std::vector<Candidate> candidates;
    for (const auto& p : (*comp)["placements"])
      for (const auto* n : engine_.list(inventory::kNode)) {
        const Json& nb = n->body;
        if (nb.value("site", "") != p["site"] || nb.value("arch", "") != p["arch"] || nb.value("state", "ready") != "ready" ||
            !twin.node_up(engine_, n->id))
          continue;
        std::string acc = p.value("accelerator", "");
        if (std::any_of(candidates.begin(), candidates.end(), [&](const Candidate& c) { return c.node == n->id; })) continue;
        int room = fits(nb, p["requests"], acc);
        if (room <= 0) continue;
        int already = 0;
        for (const auto& q : (*comp)["placements"])
          if (q["node"] == n->id) already += q["instances"].get<int>();
        candidates.push_back({n->id, &p, room, 0, already});
      }
    for (int i = have; i < want; ++i) {
      auto best = candidates.end();
      for (auto c = candidates.begin(); c != candidates.end(); ++c) {
        if (c->room - c->given <= 0) continue;
        if (best == candidates.end() || c->already + c->given < best->already + best->given ||
            (c->already + c->given == best->already + best->given && c->room - c->given > best->room - best->given))
          best = c;
      }
      if (best == candidates.end())
        return fail(Error::conflict(
            fmt::format("component '{}' has room for {} more instances at its sites, not {}", component, i - have, want - have),
            {{"/instances", "not enough free capacity at the component's sites"}}));
      ++best->given;
    }
    Json added = Json::array();
    for (const auto& c : candidates) {
      if (c.given == 0) continue;
      Json p = *c.like;
      int per = std::max(1, p["instances"].get<int>());
      p["node"] = c.node;
      p["instances"] = c.given;
      if (p.contains("capacity")) p["capacity"] = p["capacity"].get<double>() / per * c.given;
      added.push_back(p);
    }
    auto take = templates::reserve(templates::reservation_of(placements_doc(added)), +1, engine_, "/instances");
    if (!take) return fail(take.error());
    changes = std::move(*take);
    int k = have;
    int port = first_port_offset();
    for (const auto& p : added) {
      (*comp)["placements"].push_back(p);
      for (int i = 0; i < p["instances"].get<int>(); ++i)
        changes.push_back({engine::Change::Op::put, kInstance, templates::instance_id(id, component, k++),
                           new_instance(d->id, *comp, p, k - 1, settings_.first_port + port++ % settings_.port_count), "InstancePending"});
    }
  } else {
    retire_newest(body, *comp, id, want);
  }
  body["reservation"] = held_by(body["template"], body.value("retiring", Json::array()));
  body["scaling"] = scaling;
  note_state(body, "adjusting", fmt::format("{} from {} to {} instances", component, have, want));
  changes.push_back({engine::Change::Op::put, templates::kDeployment, id, body, "DeploymentScaled"});
  if (auto s = set_order_state(d->body, "adjusting", changes, fmt::format("{} from {} to {} instances", component, have, want));
      !s)
    return fail(s.error());
  if (auto e = engine_.commit(std::move(changes)); !e) return fail(e.error());
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
