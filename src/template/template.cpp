// Building a template from a confirmed order, and checking a submitted one.
#include <set>

#include <fmt/format.h>

#include "cpn/catalog/quote.hpp"
#include "cpn/inventory/inventory.hpp"
#include "cpn/schema/schema.hpp"
#include "cpn/template/template.hpp"

namespace cpn::templates {
namespace {

Json value_of(const Json& figure) { return figure.is_object() && figure.contains("value") ? figure["value"] : figure; }

// The variant a node runs when the image is not in the registry: what its
// architecture and accelerator imply (the registry's answer is preferred).
Json implied_variant(const std::string& arch, const std::string& accelerator) {
  std::string platform = arch == "aarch64" ? "linux/arm64" : arch == "riscv64" ? "linux/riscv64" : "linux/amd64";
  std::string stack = accelerator.empty()                        ? "none"
                      : accelerator.rfind("nvidia-", 0) == 0     ? "cuda"
                      : accelerator.rfind("ascend-", 0) == 0     ? "cann"
                      : accelerator.rfind("xilinx-", 0) == 0     ? "xrt"
                                                                 : accelerator;
  return {{"platform", platform}, {"accelerator", stack}, {"source", "implied"}};
}

Json variant_for(const artifacts::Images& images, const std::string& image, const std::string& node,
                 const std::string& arch, const std::string& accelerator) {
  auto colon = image.rfind(':');
  if (colon != std::string::npos) {
    auto r = images.resolve(image.substr(0, colon), image.substr(colon + 1), node);
    if (r) {
      Json v = (*r)["variant"];
      Json out = {{"platform", v.value("platform", "")}, {"accelerator", v.value("accelerator", "none")}, {"source", "registry"}};
      if (v.contains("digest")) out["digest"] = v["digest"];
      if (v.contains("command")) out["command"] = v["command"];
      return out;
    }
  }
  return implied_variant(arch, accelerator);
}

}  // namespace

Json from_order(const Json& order, const Json& solution, const std::map<std::string, std::string>& models,
                const artifacts::Images& images, const std::string& deployment) {
  const Json& demand = order["demand"];
  Json components = Json::array();
  for (const auto& c : demand["components"]) {
    std::string name = c["name"];
    Json placements = Json::array();
    for (const auto& p : solution["placements"]) {
      if (p["component"] != name) continue;
      std::string arch = p["target"]["arch"], accelerator = p["target"].value("accelerator", "");
      Json out = {{"site", p["site"]},
                  {"node", p["node"]},
                  {"arch", arch},
                  {"variant", variant_for(images, p["image"], p["node"], arch, accelerator)},
                  {"instances", p["instances"]},
                  {"capacity", p.value("capacity", 0.0)},
                  {"latency_ms", p.value("latency_ms", 0.0)},
                  {"requests", p["requests"]}};
      if (!accelerator.empty()) out["accelerator"] = accelerator;
      placements.push_back(std::move(out));
    }
    if (placements.empty()) continue;  // nothing to run (training jobs, zero demand)
    Json comp = {{"name", name}, {"tier", c["tier"]}, {"image", c["image"]}, {"demand", value_of(c["demand"])},
                 {"placements", placements}};
    if (auto m = models.find(name); m != models.end() && !m->second.empty())
      comp["model"] = {{"name", m->second}, {"version", "latest"}};
    components.push_back(std::move(comp));
  }
  Json network = Json::array();
  for (const auto& n : solution["network"]) {
    Json out = n;
    out.erase("max_latency_ms");
    if (n.contains("max_latency_ms")) out["max_latency_ms"] = n["max_latency_ms"];
    network.push_back(std::move(out));
  }
  // Policies with their parameters evaluated: figures become values.
  Json policies = Json::array();
  for (auto p : demand.value("policies", Json::array())) {
    for (auto& [k, v] : p.items()) v = value_of(v);
    policies.push_back(std::move(p));
  }
  Json spec = {{"components", components}, {"network", network}, {"policies", policies},
               {"billing", solution["quote"]}, {"duration_hours", order["duration_hours"]}};
  spec["billing"]["offering"] = order["offering"];
  if (demand.contains("slo") && demand["slo"].contains("latency_ms"))
    spec["slo"] = {{"latency_ms", value_of(demand["slo"]["latency_ms"])}};
  return {{"apiVersion", "cpn/v1"},
          {"kind", "DeploymentTemplate"},
          {"metadata",
           {{"name", deployment},
            {"order", order["id"]},
            {"solution", solution["id"]},
            {"offering", order["offering"]},
            {"blueprint", order["blueprint"]},
            {"tenant", order["tenant"]}}},
          {"spec", spec}};
}

namespace {

// What a submitted template costs per hour at its sites' and links' prices
// (the cost model of DESIGN.md), quoted at cost: a submitter never sets its
// own price.
Json at_cost(const Json& doc, const engine::Engine& engine) {
  double compute = 0, network = 0;
  for (const auto& c : doc["spec"]["components"])
    for (const auto& p : c["placements"]) {
      const engine::Object* site = engine.find(inventory::kSite, p["site"]);
      const Json prices = site ? site->body.value("prices", Json::object()) : Json::object();
      const Json& r = p["requests"];
      double one = r.value("cpu", 0.0) * prices.value("cpu_core_hour", 0.0) +
                   r.value("memory", 0.0) * prices.value("memory_gib_hour", 0.0);
      int accelerators = r.value("accelerators", 0);
      if (accelerators > 0)
        one += accelerators * prices.value("accelerators", Json::object()).value(p.value("accelerator", ""), 0.0);
      compute += one * p["instances"].get<int>();
    }
  for (const auto& n : doc["spec"]["network"])
    for (const auto& l : n["links"]) {
      const engine::Object* link = engine.find(inventory::kLink, l.get<std::string>());
      if (link) network += n["bandwidth_mbps"].get<double>() * link->body.value("price_mbps_hour", 0.0);
    }
  const Json offering = {{"name", "(at cost)"}, {"billing", {{"modes", {"per_minute"}}, {"markup", 0.0}}}};
  double hours = doc["spec"].value("duration_hours", 1.0);
  auto model = catalog::PriceModel::of(offering, "", {}, hours);
  Json quote = model ? model->quote(compute, network) : Json::object();
  quote["source"] = "at-cost";
  return quote;
}

}  // namespace

Result<Json> parse(const Json& input, const engine::Engine& engine, const artifacts::Images& images,
                   const Limits& limits) {
  if (auto v = schema::validate("deployment-template", input, "deployment template"); !v) return fail(v.error());
  Json doc = input;
  std::vector<FieldError> errs;
  std::set<std::string> names;
  Json& comps = doc["spec"]["components"];
  long total = 0;
  for (std::size_t i = 0; i < comps.size(); ++i) {
    std::string base = fmt::format("/spec/components/{}", i);
    if (!names.insert(comps[i]["name"].get<std::string>()).second)
      errs.push_back({base + "/name", fmt::format("component '{}' appears twice", comps[i]["name"].get<std::string>())});
    for (std::size_t j = 0; j < comps[i]["placements"].size(); ++j) {
      Json& p = comps[i]["placements"][j];
      p.erase("instance_ids");  // cpnd names instances, never a submitter
      std::string pb = fmt::format("{}/placements/{}", base, j);
      int instances = p["instances"];
      total += instances;
      if (instances > limits.max_instances_per_placement)
        errs.push_back({pb + "/instances", fmt::format("at most {} instances per placement (deployments.max_instances_per_placement)",
                                                       limits.max_instances_per_placement)});
      // An instance that holds nothing would never be refused: every one takes some cpu and memory.
      if (p["requests"]["cpu"].get<double>() < limits.min_cpu)
        errs.push_back({pb + "/requests/cpu", fmt::format("each instance requests at least {} cpu", limits.min_cpu)});
      if (p["requests"]["memory"].get<double>() < limits.min_memory_gib)
        errs.push_back({pb + "/requests/memory", fmt::format("each instance requests at least {} GiB", limits.min_memory_gib)});
      const engine::Object* node = engine.find(inventory::kNode, p["node"]);
      if (!node) {
        errs.push_back({pb + "/node", fmt::format("node '{}' is not in the inventory", p["node"].get<std::string>())});
        continue;
      }
      if (node->body.value("site", "") != p["site"])
        errs.push_back({pb + "/site", fmt::format("node '{}' is at site '{}'", node->id, node->body.value("site", ""))});
      if (node->body.value("arch", "") != p["arch"])
        errs.push_back({pb + "/arch", fmt::format("node '{}' is {}", node->id, node->body.value("arch", ""))});
      int wants = p["requests"].value("accelerators", 0);
      std::string model = p.value("accelerator", "");
      if (wants > 0 && model.empty())
        errs.push_back({pb + "/accelerator", "instances that request accelerators name their model"});
      if (!model.empty()) {
        bool has = false;
        for (const auto& a : node->body.value("accelerators", Json::array())) has = has || a.value("model", "") == model;
        if (!has) errs.push_back({pb + "/accelerator", fmt::format("node '{}' has no {}", node->id, model)});
      }
      // What runs comes from the image registry, never from the submitter:
      // a variant (and its command) in the document is replaced.
      p["variant"] = variant_for(images, comps[i]["image"], node->id, p["arch"], model);
    }
  }
  if (total > limits.max_instances)
    errs.push_back({"/spec/components", fmt::format("{} instances; at most {} per deployment (deployments.max_instances)",
                                                    total, limits.max_instances)});
  Json& network = doc["spec"]["network"];
  if (network.is_null()) network = Json::array();
  for (std::size_t k = 0; k < network.size(); ++k) {
    Json& n = network[k];
    std::string base = fmt::format("/spec/network/{}", k);
    if (n["from"] != "location" && !names.count(n["from"])) errs.push_back({base + "/from", "neither 'location' nor a component"});
    if (!names.count(n["to"])) errs.push_back({base + "/to", "not a component of this template"});
    const Json& path = n["path"];
    if (path.front() != n["from_site"]) errs.push_back({base + "/path/0", "a route starts at from_site"});
    if (path.back() != n["to_site"]) errs.push_back({base + "/path", "a route ends at to_site"});
    for (std::size_t i = 0; i < path.size(); ++i)
      if (!engine.find(inventory::kSite, path[i]))
        errs.push_back({fmt::format("{}/path/{}", base, i), fmt::format("site '{}' is not in the inventory", path[i].get<std::string>())});
    // Each hop is a link between consecutive sites: named ones are checked, missing ones found.
    Json links = Json::array();
    bool given = n.contains("links");
    if (given && n["links"].size() + 1 != path.size() && path.size() > 1)
      errs.push_back({base + "/links", "one link per hop of the path"});
    for (std::size_t i = 0; i + 1 < path.size(); ++i) {
      std::string a = path[i], b = path[i + 1], found;
      if (given && i < n["links"].size()) {
        const engine::Object* l = engine.find(inventory::kLink, n["links"][i]);
        if (l && ((l->body.value("from", "") == a && l->body.value("to", "") == b) ||
                  (l->body.value("from", "") == b && l->body.value("to", "") == a)))
          found = l->id;
      } else {
        for (const auto* l : engine.list(inventory::kLink))
          if ((l->body.value("from", "") == a && l->body.value("to", "") == b) ||
              (l->body.value("from", "") == b && l->body.value("to", "") == a)) {
            found = l->id;
            break;
          }
      }
      if (found.empty())
        errs.push_back({fmt::format("{}/path/{}", base, i + 1), fmt::format("no link joins '{}' and '{}'", a, b)});
      links.push_back(found);
    }
    n["links"] = links;
  }
  if (!errs.empty()) return fail(Error::invalid_document("deployment template", std::move(errs)));
  doc["spec"]["billing"] = at_cost(doc, engine);
  return doc;
}

std::string instance_id(const std::string& deployment, const std::string& component, int k) {
  return fmt::format("{}-{}-{}", deployment, component, k);
}

std::string model_ref(const Json& component) {
  if (!component.contains("model") || !component["model"].is_object()) return "";
  return component["model"].value("name", "") + "@" + component["model"].value("version", "latest");
}

}  // namespace cpn::templates
