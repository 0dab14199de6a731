#include "cpn/inventory/inventory.hpp"

#include <algorithm>
#include <memory>
#include <set>

#include <fmt/format.h>

#include "cpn/schema/schema.hpp"

namespace cpn::inventory {
namespace {

using engine::Engine;
using engine::Object;

Json zero_allocation() { return {{"cpu", 0.0}, {"memory", 0.0}, {"storage", 0.0}, {"accelerators", 0}}; }

int accelerator_count(const Json& node) {
  int n = 0;
  for (const auto& a : node.value("accelerators", Json::array())) n += a.value("count", 0);
  return n;
}

resource::Rules site_rules(const std::function<Json(const std::string&)>* condition) {
  resource::Rules r;
  r.kind = kSite;
  r.read_only = {"conditions"};
  // What the site's driver finds of its controller (a Kubernetes API server out of reach), as conditions.
  r.decorate = [condition](Json& out, const Object& o, const Engine&) {
    if (!*condition) return;
    if (Json c = (*condition)(o.id); !c.is_null()) out["conditions"] = Json::array({c});
  };
  r.schema = "site";
  r.title = "site";
  r.admit = [](Json& body, const Object*, const Engine&) { return normalize_site(body, ""); };
  r.id_of = [](const Json& b) { return b["id"].get<std::string>(); };
  r.dependents = [](const Object& site, const Engine& e) {
    std::vector<std::string> out;
    for (const Object* n : e.list(kNode))
      if (n->body.value("site", "") == site.id) out.push_back("node/" + n->id);
    for (const Object* l : e.list(kLink))
      if (l->body.value("from", "") == site.id || l->body.value("to", "") == site.id) out.push_back("link/" + l->id);
    return out;
  };
  return r;
}

// Deployments whose reservation (taken when created, until released) holds
// this node or link ("nodes" or "links"): it cannot go while they do.
// Deployments sit above the inventory, so they are found by their stored
// kind, not through their module.
std::vector<std::string> holders(const Object& o, const Engine& e, const char* what) {
  std::vector<std::string> out;
  for (const Object* d : e.list("deployment"))
    if (!d->body.value("reservation_released", false) &&
        d->body.value("/reservation"_json_pointer, Json::object()).value(what, Json::object()).contains(o.id))
      out.push_back("deployment/" + d->id);
  return out;
}

resource::Rules node_rules() {
  resource::Rules r;
  r.kind = kNode;
  r.dependents = [](const Object& o, const Engine& e) { return holders(o, e, "nodes"); };
  r.schema = "node";
  r.title = "node";
  r.read_only = {"allocated", "allocatable", "free", "capability", "drain"};
  r.admit = [](Json& body, const Object* existing, const Engine& e) {
    auto errs = normalize_node(body, "");
    if (!e.find(kSite, body.value("site", "")))
      errs.push_back({"/site", fmt::format("unknown site '{}'", body.value("site", ""))});
    // Allocations belong to cpnd: a write never changes them.
    body["allocated"] = existing && existing->body.contains("allocated") ? existing->body["allocated"] : zero_allocation();
    // So is a drain's progress (POST /v1/nodes/{id}/drain starts one; the orchestrator reports on it).
    if (existing && existing->body.contains("drain") && body.value("state", "ready") != "ready") body["drain"] = existing->body["drain"];
    return errs;
  };
  r.id_of = [](const Json& b) { return b["id"].get<std::string>(); };
  // The ratings change only with the topology's measurement: build them once per version.
  auto ratings = std::make_shared<std::pair<std::int64_t, Measurement>>(-1, Measurement{});
  r.decorate = [ratings](Json& out, const Object& o, const Engine& e) {
    const Json& b = o.body;
    Json allocatable = {{"cpu", b.value("cpu", 0.0)},
                        {"memory", b.value("memory", 0.0)},
                        {"storage", b.value("storage", 0.0)},
                        {"accelerators", accelerator_count(b)}};
    Json alloc = b.value("allocated", zero_allocation());
    Json free = Json::object();
    for (const auto& [k, v] : allocatable.items()) free[k] = v.get<double>() - alloc.value(k, 0.0);
    if (b.value("state", "ready") != "ready")
      for (auto& [k, v] : free.items()) v = 0.0;
    out["allocatable"] = allocatable;
    out["free"] = free;
    const Object* m = e.find(kMeasurement, "overrides");
    std::int64_t version = m ? m->resource_version : 0;
    if (ratings->first != version) *ratings = {version, Measurement::with_overrides(m ? m->body : Json())};
    out["capability"] = node_capability(b, ratings->second);
  };
  return r;
}

resource::Rules link_rules() {
  resource::Rules r;
  r.kind = kLink;
  r.dependents = [](const Object& o, const Engine& e) { return holders(o, e, "links"); };
  r.schema = "link";
  r.title = "link";
  r.read_only = {"allocated_mbps", "free_mbps"};
  r.admit = [](Json& body, const Object* existing, const Engine& e) {
    auto errs = normalize_link(body, "");
    for (const char* end : {"from", "to"})
      if (!e.find(kSite, body.value(end, "")))
        errs.push_back({std::string("/") + end, fmt::format("unknown site '{}'", body.value(end, ""))});
    body["allocated_mbps"] = existing ? existing->body.value("allocated_mbps", 0.0) : 0.0;
    return errs;
  };
  r.id_of = [](const Json& b) { return link_id(b); };
  r.decorate = [](Json& out, const Object& o, const Engine&) {
    out["free_mbps"] = o.body.value("bandwidth_mbps", 0.0) - o.body.value("allocated_mbps", 0.0);
  };
  return r;
}

}  // namespace

Json ImportSummary::to_json() const {
  return {{"created", created}, {"updated", updated}, {"unchanged", unchanged},
          {"resourceVersion", std::to_string(resource_version)}};
}

Inventory::Inventory(Engine& engine)
    : engine_(engine), sites_(engine, site_rules(&site_condition_)), nodes_(engine, node_rules()), links_(engine, link_rules()) {}

Measurement Inventory::measurement() const {
  const Object* m = engine_.find(kMeasurement, "overrides");
  return Measurement::with_overrides(m ? m->body : Json());
}

Result<ImportSummary> Inventory::import_topology(const Json& doc) {
  // Every problem is reported at once: the schema's, then the cross-object
  // checks, which read the document defensively since it may be malformed.
  auto errs = schema::problems("topology", doc);
  if (!doc.is_object()) return fail(Error::invalid_document("topology", std::move(errs)));
  auto str = [](const Json& o, const char* f) {
    return o.is_object() && o.contains(f) && o[f].is_string() ? o[f].get<std::string>() : std::string();
  };
  auto list = [](const Json& o, const char* f) {
    return o.is_object() && o.contains(f) && o[f].is_array() ? o[f] : Json::array();
  };
  std::vector<engine::Change> changes;
  std::set<std::string> site_ids, node_ids, link_ids, doc_sites;
  for (const Object* s : engine_.list(kSite)) site_ids.insert(s->id);
  auto stage = [&](const std::string& kind, const std::string& id, Json body) {
    changes.push_back({engine::Change::Op::put, kind, id, std::move(body), ""});
  };

  const Json sites = list(doc, "sites");
  for (std::size_t i = 0; i < sites.size(); ++i) {
    std::string base = fmt::format("/sites/{}", i);
    Json site = sites[i];
    std::string sid = str(site, "id");
    if (!site.is_object() || sid.empty()) continue;
    if (!doc_sites.insert(sid).second) errs.push_back({base + "/id", fmt::format("duplicate site id '{}'", sid)});
    site_ids.insert(sid);
    Json nodes = list(site, "nodes");
    site.erase("nodes");
    auto se = normalize_site(site, base);
    errs.insert(errs.end(), se.begin(), se.end());
    stage(kSite, sid, std::move(site));
    for (std::size_t j = 0; j < nodes.size(); ++j) {
      std::string nb = fmt::format("{}/nodes/{}", base, j);
      Json node = nodes[j];
      std::string nid = str(node, "id");
      if (!node.is_object() || nid.empty()) continue;
      if (!node_ids.insert(nid).second) errs.push_back({nb + "/id", fmt::format("duplicate node id '{}'", nid)});
      node["site"] = sid;
      bool had_state = node.contains("state");
      auto ne = normalize_node(node, nb);
      errs.insert(errs.end(), ne.begin(), ne.end());
      const Object* existing = engine_.find(kNode, nid);
      if (existing && existing->body.value("site", "") != sid)
        errs.push_back({nb + "/id", fmt::format("node '{}' already belongs to site '{}'", nid,
                                                existing->body.value("site", ""))});
      // A topology that does not say a node's state keeps what operators set.
      if (!had_state && existing) node["state"] = existing->body.value("state", "ready");
      node["allocated"] = existing ? existing->body.value("allocated", zero_allocation()) : zero_allocation();
      node.erase("drain");  // the orchestrator's report, never a document's
      if (existing && existing->body.contains("drain") && node.value("state", "ready") != "ready")
        node["drain"] = existing->body["drain"];
      stage(kNode, nid, std::move(node));
    }
  }
  const Json links = list(doc, "links");
  for (std::size_t i = 0; i < links.size(); ++i) {
    std::string base = fmt::format("/links/{}", i);
    Json link = links[i];
    if (!link.is_object() || str(link, "from").empty() || str(link, "to").empty()) continue;
    auto le = normalize_link(link, base);
    errs.insert(errs.end(), le.begin(), le.end());
    for (const char* end : {"from", "to"}) {
      std::string s = str(link, end);
      if (!site_ids.count(s)) errs.push_back({base + "/" + end, fmt::format("unknown site '{}'", s)});
    }
    std::string lid = str(link, "id");
    if (!link_ids.insert(lid).second) errs.push_back({base + "/id", fmt::format("duplicate link id '{}'", lid)});
    const Object* existing = engine_.find(kLink, lid);
    link["allocated_mbps"] = existing ? existing->body.value("allocated_mbps", 0.0) : 0.0;
    stage(kLink, lid, std::move(link));
  }
  if (doc.contains("measurement")) stage(kMeasurement, "overrides", doc["measurement"]);
  if (!errs.empty()) {
    // The schema and the quantity parser may both flag one field.
    std::vector<FieldError> unique;
    for (auto& e : errs)
      if (std::none_of(unique.begin(), unique.end(), [&](const FieldError& u) { return u.pointer == e.pointer; }))
        unique.push_back(std::move(e));
    return fail(Error::invalid_document("topology", std::move(unique)));
  }

  ImportSummary summary;
  std::vector<engine::Change> effective;
  for (auto& c : changes) {
    const Object* existing = engine_.find(c.kind, c.id);
    if (existing && existing->body == c.body) {
      summary.unchanged++;
      continue;
    }
    (existing ? summary.updated : summary.created)++;
    effective.push_back(std::move(c));
  }
  if (!effective.empty()) {
    auto ev = engine_.commit(std::move(effective));
    if (!ev) return fail(ev.error());
  }
  summary.resource_version = engine_.last_seq();
  return summary;
}

Json Inventory::export_topology() const {
  Json doc = {{"apiVersion", "cpn/v1"}, {"kind", "Topology"}};
  if (const Object* m = engine_.find(kMeasurement, "overrides")) doc["measurement"] = m->body;
  Json sites = Json::array();
  for (const Object* s : engine_.list(kSite)) {
    Json site = s->body;
    Json nodes = Json::array();
    for (const Object* n : engine_.list(kNode)) {
      if (n->body.value("site", "") != s->id) continue;
      Json node = n->body;
      node.erase("site");
      node.erase("allocated");
      node.erase("drain");
      nodes.push_back(std::move(node));
    }
    site["nodes"] = std::move(nodes);
    sites.push_back(std::move(site));
  }
  doc["sites"] = std::move(sites);
  Json links = Json::array();
  for (const Object* l : engine_.list(kLink)) {
    Json link = l->body;
    link.erase("allocated_mbps");
    links.push_back(std::move(link));
  }
  doc["links"] = std::move(links);
  return doc;
}

Result<Json> Inventory::site_capacity(const std::string& site_id) const {
  const Object* site = engine_.find(kSite, site_id);
  if (!site) return fail(Error::not_found(fmt::format("site '{}' not found", site_id)));
  Measurement m = measurement();
  struct Tally {
    double total = 0, allocated = 0, free = 0;
    Json to_json() const { return {{"total", total}, {"allocated", allocated}, {"free", free}}; }
  };
  struct Group {
    int nodes = 0;
    Tally cpu, memory, storage, accelerators, core_equivalents, tops;
  };
  auto add = [](Tally& t, double total, double allocated, bool usable) {
    t.total += total;
    t.allocated += allocated;
    if (usable) t.free += std::max(0.0, total - allocated);
  };
  Group all;
  std::map<std::string, Group> by_arch;
  std::map<std::string, Group> by_model;
  std::map<std::string, int> states;
  for (const Object* n : engine_.list(kNode)) {
    const Json& b = n->body;
    if (b.value("site", "") != site_id) continue;
    bool usable = b.value("state", "ready") == "ready";
    states[b.value("state", "ready")]++;
    Json alloc = b.value("allocated", zero_allocation());
    double factor = m.core_factor(b.value("arch", ""));
    double cpu = b.value("cpu", 0.0), acpu = alloc.value("cpu", 0.0);
    int accs = accelerator_count(b);
    double alloc_accs = alloc.value("accelerators", 0.0);
    Json cap = node_capability(b, m);
    double tops = cap["accelerator_tops_int8"].get<double>();
    // Allocated TOPS: the allocated share of the node's accelerators.
    double alloc_tops = accs ? tops * alloc_accs / accs : 0;
    for (Group* g : {&all, &by_arch[b.value("arch", "")]}) {
      g->nodes++;
      add(g->cpu, cpu, acpu, usable);
      add(g->memory, b.value("memory", 0.0), alloc.value("memory", 0.0), usable);
      add(g->storage, b.value("storage", 0.0), alloc.value("storage", 0.0), usable);
      add(g->accelerators, accs, alloc_accs, usable);
      add(g->core_equivalents, cpu * factor, acpu * factor, usable);
      add(g->tops, tops, alloc_tops, usable);
    }
    for (const auto& a : b.value("accelerators", Json::array())) {
      Group& g = by_model[a.value("model", "")];
      g.nodes++;
      int count = a.value("count", 0);
      double share = accs ? alloc_accs * count / accs : 0;
      auto r = m.rating(a.value("model", ""));
      double per = a.contains("tops_int8") ? a["tops_int8"].get<double>() : (r ? r->tops_int8 : 0);
      add(g.accelerators, count, share, usable);
      add(g.tops, per * count, per * share, usable);
      g.memory.total += a.value("memory", 0.0) * count;
    }
  }
  auto group_json = [](const Group& g, bool with_compute) {
    Json j = {{"nodes", g.nodes}, {"accelerators", g.accelerators.to_json()}, {"tops_int8", g.tops.to_json()}};
    if (with_compute) {
      j["cpu"] = g.cpu.to_json();
      j["memory_gib"] = g.memory.to_json();
      j["storage_gib"] = g.storage.to_json();
      j["cpu_core_equivalents"] = g.core_equivalents.to_json();
    }
    return j;
  };
  Json arch = Json::object(), model = Json::object();
  for (const auto& [k, g] : by_arch) arch[k] = group_json(g, true);
  for (const auto& [k, g] : by_model) model[k] = group_json(g, false);
  return Json{{"site", site_id},
              {"tier", site->body.value("tier", "")},
              {"nodes_by_state", states},
              {"total", group_json(all, true)},
              {"by_arch", arch},
              {"by_accelerator", model}};
}

Result<Json> Inventory::set_node_state(const std::string& id, const std::string& state, const std::string& event_type,
                                       std::optional<std::int64_t> if_match) {
  return nodes_.update(
      id, if_match,
      [&](Json& body) -> Status {
        body["state"] = state;
        // A drain cordons, then the orchestrator moves the node's instances
        // and reports in `drain`; making the node ready again ends it.
        if (event_type == "NodeDraining")
          body["drain"] = {{"state", "draining"}, {"started_at", engine_.now()}, {"left", nullptr}, {"moved", Json::array()},
                           {"waiting", Json::array()}};
        else if (state == "ready")
          body.erase("drain");
        return {};
      },
      event_type);
}

}  // namespace cpn::inventory
