// Rendering a deployment template into Kubernetes objects. Pure: the same
// template and sites always give the same manifests, so what
// GET /v1/deployments/{id}/manifests shows is exactly what the driver applies.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "cpn/core/crypto.hpp"
#include "cpn/drivers/kubernetes.hpp"
#include "cpn/template/instances.hpp"
#include "cpn/template/template.hpp"

namespace cpn::drivers::kubernetes {
namespace {

constexpr int kContainerPort = 8080;  // every workload serves /healthz and /metrics here (CPN_PORT)

// Label values: at most 63 of [-_.a-zA-Z0-9], alphanumeric at both ends.
std::string label_value(const std::string& text) {
  std::string out;
  for (char c : text) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ? c : '-';
  if (out.size() > 63) out = out.substr(0, 54) + "-" + sha256_hex(text).substr(0, 8);
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.back()))) out.pop_back();
  return out;
}

// Kubernetes quantities: whole cores as "6", fractions as millicores; GiB as Gi, or Mi when fractional.
std::string cpu_quantity(double cores) {
  if (std::abs(cores - std::round(cores)) < 1e-9) return fmt::format("{}", static_cast<long>(std::round(cores)));
  return fmt::format("{}m", static_cast<long>(std::ceil(cores * 1000 - 1e-6)));
}
std::string memory_quantity(double gib) {
  if (std::abs(gib - std::round(gib)) < 1e-9) return fmt::format("{}Gi", static_cast<long>(std::round(gib)));
  return fmt::format("{}Mi", static_cast<long>(std::ceil(gib * 1024 - 1e-6)));
}

std::string image_ref(const std::string& image, const Json& variant, const ClusterSettings& s) {
  std::string ref = s.image_registry.empty() ? image : s.image_registry + "/" + image;
  std::string digest = variant.value("digest", "");
  return digest.empty() ? ref : ref + "@" + digest;
}

// KubeEdge: edge nodes carry the edge role taint, and an edge node cut off
// from the cloud must keep its pods (edge autonomy), so they tolerate
// unreachable and not-ready without a time limit.
Json edge_tolerations() {
  return Json::array({{{"key", "node-role.kubernetes.io/edge"}, {"operator", "Exists"}, {"effect", "NoSchedule"}},
                      {{"key", "node.kubernetes.io/unreachable"}, {"operator", "Exists"}, {"effect", "NoExecute"}},
                      {{"key", "node.kubernetes.io/not-ready"}, {"operator", "Exists"}, {"effect", "NoExecute"}}});
}

struct Group {
  std::string site, arch, accelerator, platform, stack;
  std::string model;  // what its replicas load (name@version); "" for a component without a model
  Json variant = Json::object();
  std::vector<std::string> nodes, instances;
  double cpu = 0, memory = 0;
  int accelerators = 0;
};

Json container_of(const Json& comp, const Group& g, const ClusterSettings& s) {
  Json requests = {{"cpu", cpu_quantity(g.cpu)}, {"memory", memory_quantity(g.memory)}};
  Json limits = {{"memory", memory_quantity(g.memory)}};
  if (!g.accelerator.empty() && g.accelerators > 0) {
    // Extended resources are whole devices, requested and limited alike.
    std::string resource = extended_resource(g.accelerator, s);
    requests[resource] = fmt::format("{}", g.accelerators);
    limits[resource] = fmt::format("{}", g.accelerators);
  }
  auto field = [](const char* name, const char* path) {
    return Json{{"name", name}, {"valueFrom", {{"fieldRef", {{"fieldPath", path}}}}}};
  };
  Json env = Json::array({field("CPN_INSTANCE_ID", "metadata.name"), field("CPN_NODE", "spec.nodeName"),
                          {{"name", "CPN_MODEL_VERSION"}, {"value", g.model}},
                          {{"name", "CPN_PORT"}, {"value", std::to_string(kContainerPort)}}});
  Json probe = {{"httpGet", {{"path", "/healthz"}, {"port", "http"}}}, {"periodSeconds", 5}};
  Json c = {{"name", dns_label(comp["name"].get<std::string>())},
            {"image", image_ref(comp["image"], g.variant, s)},
            {"env", env},
            {"ports", Json::array({{{"name", "http"}, {"containerPort", kContainerPort}, {"protocol", "TCP"}}})},
            {"resources", {{"requests", requests}, {"limits", limits}}},
            {"readinessProbe", probe},
            {"livenessProbe", {{"httpGet", probe["httpGet"]}, {"periodSeconds", 10}, {"failureThreshold", 6}}}};
  if (g.variant.contains("command") && g.variant["command"].is_array() && !g.variant["command"].empty())
    c["command"] = g.variant["command"];
  return c;
}

Workload workload_of(const std::string& dep, const Json& comp, const Group& g, const SiteInfo& site) {
  ClusterSettings s = settings_of(site.controller);
  std::string component = comp["name"];
  std::string service = service_name(dep, component, g.site);
  std::string name = deployment_name(dep, component, g.site, g.arch, g.accelerator,
                                     g.model == templates::model_ref(comp) ? "" : g.model);
  Json common = {{"app.kubernetes.io/name", label_value(component)},
                 {"app.kubernetes.io/instance", label_value(dep)},
                 {"app.kubernetes.io/managed-by", "cpnd"},
                 {"cpn.io/deployment", label_value(dep)},
                 {"cpn.io/component", label_value(component)},
                 {"cpn.io/site", label_value(g.site)}};
  Json selector = {{"cpn.io/deployment", common["cpn.io/deployment"]},
                   {"cpn.io/component", common["cpn.io/component"]},
                   {"cpn.io/site", common["cpn.io/site"]}};
  Json pod_selector = selector;
  pod_selector["cpn.io/workload"] = name;
  Json pod_labels = common;
  pod_labels["cpn.io/workload"] = name;
  // The deployment's id as it is (labels may have had to shorten it): what the orphan sweep reads.
  Json annotations = {{"cpn.io/deployment", dep}, {"cpn.io/site", g.site}, {"cpn.io/driver", site.controller.value("driver", "sim")}};

  Json node_selector = {{"kubernetes.io/arch", kube_arch(g.arch)}};
  if (!g.accelerator.empty()) node_selector[s.accelerator_label] = label_value(g.accelerator);
  // The solver chose these nodes and holds their capacity: the pods go there.
  Json pod_spec = {
      {"nodeSelector", node_selector},
      {"affinity",
       {{"nodeAffinity",
         {{"requiredDuringSchedulingIgnoredDuringExecution",
           {{"nodeSelectorTerms",
             Json::array({{{"matchExpressions",
                            Json::array({{{"key", "kubernetes.io/hostname"}, {"operator", "In"}, {"values", g.nodes}}})}}})}}}}}}},
      {"containers", Json::array({container_of(comp, g, s)})}};
  if (site.tier == "edge" || site.tier == "end") pod_spec["tolerations"] = edge_tolerations();
  int replicas = static_cast<int>(g.instances.size());
  if (g.nodes.size() > 1)
    pod_spec["topologySpreadConstraints"] =
        // A preference only: the solver's split over the nodes may be uneven, and the affinity holds them to it.
        Json::array({{{"maxSkew", 1}, {"topologyKey", "kubernetes.io/hostname"}, {"whenUnsatisfiable", "ScheduleAnyway"},
                      {"labelSelector", {{"matchLabels", pod_selector}}}}});

  Workload w;
  w.site = g.site;
  w.component = component;
  w.arch = g.arch;
  w.accelerator = g.accelerator;
  w.ns = s.ns;
  w.instances = g.instances;
  w.deployment = {
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata", {{"name", name}, {"namespace", s.ns}, {"labels", pod_labels}, {"annotations", annotations}}},
      {"spec",
       {{"replicas", replicas},
        {"selector", {{"matchLabels", pod_selector}}},
        {"progressDeadlineSeconds", s.progress_deadline_s},
        // The reservation holds exactly the replicas' capacity: replace in place, never surge.
        {"strategy", {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxSurge", 0}, {"maxUnavailable", 1}}}}},
        {"template", {{"metadata", {{"labels", pod_labels}}}, {"spec", pod_spec}}}}}};
  w.service = {{"apiVersion", "v1"},
               {"kind", "Service"},
               {"metadata", {{"name", service}, {"namespace", s.ns}, {"labels", common}, {"annotations", annotations}}},
               {"spec",
                {{"type", "ClusterIP"},
                 {"selector", selector},
                 {"ports", Json::array({{{"name", "http"}, {"port", 80}, {"targetPort", "http"}, {"protocol", "TCP"}}})}}}};
  return w;
}

}  // namespace

SiteLookup inventory_sites(const engine::Engine& engine) {
  return [&engine](const std::string& id) -> std::optional<SiteInfo> {
    const engine::Object* site = engine.find("site", id);
    if (!site) return std::nullopt;
    return SiteInfo{site->body.value("tier", ""), site->body.value("controller", Json{{"driver", "sim"}})};
  };
}

Mirror::Mirror(engine::Engine& engine) {
  for (const char* kind : {"deployment", "site", "instance"})
    for (const auto* o : engine.list(kind)) copy(kind, o->id, o);
  engine.on_commit([this, &engine](const std::vector<engine::Event>& events) {
    for (const auto& e : events)
      if (e.kind == "deployment" || e.kind == "site" || e.kind == "instance") copy(e.kind, e.id, engine.live(e.kind, e.id));
  });
}

void Mirror::copy(const std::string& kind, const std::string& id, const engine::Object* o) {
  std::lock_guard lock(mutex_);
  if (kind == "site") {
    if (o) sites_[id] = SiteInfo{o->body.value("tier", ""), o->body.value("controller", Json{{"driver", "sim"}})};
    else sites_.erase(id);
  } else if (kind == "instance") {
    if (o) {
      std::string dep = o->body.value("deployment", "");
      deployment_of_[id] = dep;
      models_[dep][id] = instance_model(o->body);
    } else if (auto it = deployment_of_.find(id); it != deployment_of_.end()) {
      auto models = models_.find(it->second);
      if (models != models_.end() && models->second.erase(id) && models->second.empty()) models_.erase(models);
      deployment_of_.erase(it);
    }
  } else if (o && o->body.contains("template")) {
    templates_[id] = o->body["template"];
  } else {
    templates_.erase(id);
  }
}

std::optional<Json> Mirror::template_of(const std::string& deployment) const {
  std::lock_guard lock(mutex_);
  auto it = templates_.find(deployment);
  if (it == templates_.end()) return std::nullopt;
  return it->second;
}

InstanceModel instance_model(const Json& instance) {
  return {instance.value("model", ""), instance.value("model_at", "")};
}

InstanceModels Mirror::models_of(const std::string& deployment) const {
  std::lock_guard lock(mutex_);
  auto it = models_.find(deployment);
  return it == models_.end() ? InstanceModels{} : it->second;
}

std::vector<Json> Mirror::kubernetes_controllers() const {
  std::lock_guard lock(mutex_);
  std::vector<Json> out;
  for (const auto& [id, info] : sites_)
    if (info.controller.value("driver", "") == "kubernetes") out.push_back(info.controller);
  return out;
}

std::optional<SiteInfo> Mirror::site(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = sites_.find(id);
  if (it == sites_.end()) return std::nullopt;
  return it->second;
}

ClusterSettings settings_of(const Json& controller) {
  ClusterSettings s;
  if (!controller.is_object()) return s;
  s.endpoint = controller.value("endpoint", "");
  s.ns = controller.value("namespace", s.ns);
  s.token_file = controller.value("token_file", "");
  s.ca_file = controller.value("ca_file", "");
  s.image_registry = controller.value("image_registry", "");
  while (!s.image_registry.empty() && s.image_registry.back() == '/') s.image_registry.pop_back();
  s.accelerator_label = controller.value("accelerator_label", s.accelerator_label);
  if (controller.contains("resources") && controller["resources"].is_object())
    for (const auto& [model, name] : controller["resources"].items())
      if (name.is_string()) s.resources[model] = name.get<std::string>();
  s.progress_deadline_s = controller.value("progress_deadline_seconds", s.progress_deadline_s);
  return s;
}

std::string kube_arch(const std::string& arch) {
  if (arch == "x86_64") return "amd64";
  if (arch == "aarch64") return "arm64";
  return arch;  // riscv64 is riscv64 in both
}

std::string extended_resource(const std::string& model, const ClusterSettings& settings) {
  if (auto it = settings.resources.find(model); it != settings.resources.end()) return it->second;
  auto starts = [&](const char* prefix) { return model.rfind(prefix, 0) == 0; };
  if (starts("nvidia-")) return "nvidia.com/gpu";  // the NVIDIA device plugin
  if (starts("ascend-")) {
    // Huawei's Ascend device plugin: huawei.com/Ascend910, huawei.com/Ascend310P, ...
    std::string chip = model.substr(7);
    for (auto& c : chip) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return "huawei.com/Ascend" + chip;
  }
  if (starts("amd-")) return "amd.com/gpu";
  if (starts("intel-")) return "gpu.intel.com/i915";
  if (starts("xilinx-")) return "xilinx.com/fpga";
  return "cpn.io/" + label_value(model);
}

std::string dns_label(const std::string& text) {
  std::string out;
  for (char c : text) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out += (std::isalnum(static_cast<unsigned char>(l)) ? l : '-');
  }
  if (out.empty() || !std::isalpha(static_cast<unsigned char>(out[0]))) out = "c-" + out;
  if (out.size() > 63) out = out.substr(0, 54) + "-" + sha256_hex(text).substr(0, 8);
  while (out.back() == '-') out.pop_back();
  return out;
}

std::string service_name(const std::string& deployment, const std::string& component, const std::string& site) {
  return dns_label(fmt::format("{}-{}-{}", deployment, component, site));
}

// The variant is always in the name, so a group keeps its name when
// scaling adds or removes another variant beside it; so is a model version
// other than the component's, so the instances updated to it run as a
// Deployment of their own and the others' pods are never rolled.
std::string deployment_name(const std::string& deployment, const std::string& component, const std::string& site,
                            const std::string& arch, const std::string& accelerator, const std::string& other_model) {
  std::string version = other_model.substr(other_model.find('@') + 1), suffix;
  if (!other_model.empty()) {
    // Versions that a DNS label would make alike (1.2, 1_2, V1-2) stay apart.
    std::string label = dns_label("v" + version);
    suffix = "-" + (label == "v" + version ? label : label + "-" + sha256_hex(version).substr(0, 6));
  }
  return dns_label(fmt::format("{}-{}-{}-{}{}{}", deployment, component, site, kube_arch(arch),
                               accelerator.empty() ? "" : "-" + accelerator, suffix));
}

Result<std::vector<Workload>> render(const std::string& deployment_id, const Json& tmpl, const SiteLookup& sites,
                                     const InstanceModels& models) {
  std::vector<Workload> out;
  for (const auto& comp : tmpl["spec"]["components"]) {
    std::string component = comp["name"], model = templates::model_ref(comp);
    // One pod shape per site and variant, whatever model each instance
    // loads: the largest request of its placements, on all their nodes. So
    // an instance that moves to another model's group changes no group's
    // pod template (which would roll every pod of it), only replicas.
    std::vector<Group> shapes;
    auto ids = templates::placement_ids(deployment_id, comp);
    auto same_variant = [](const Group& a, const Group& b) {
      // The Deployment's name carries site, architecture and accelerator: so does the shape.
      return a.site == b.site && a.arch == b.arch && a.accelerator == b.accelerator;
    };
    std::vector<std::size_t> shape_of;  // by placement
    for (std::size_t j = 0; j < ids.size(); ++j) {
      const Json& p = comp["placements"][j];
      Json variant = p.value("variant", Json::object());
      Group key;
      key.site = p["site"];
      key.arch = p["arch"];
      key.accelerator = p.value("accelerator", "");
      key.platform = variant.value("platform", "");
      key.stack = variant.value("accelerator", "");
      auto g = std::find_if(shapes.begin(), shapes.end(), [&](const Group& x) { return same_variant(x, key); });
      if (g == shapes.end()) {
        key.variant = variant;
        shapes.push_back(key);
        g = shapes.end() - 1;
      }
      const Json& req = p["requests"];
      g->cpu = std::max(g->cpu, req.value("cpu", 0.0));
      g->memory = std::max(g->memory, req.value("memory", 0.0));
      g->accelerators = std::max(g->accelerators, req.value("accelerators", 0));
      if (std::find(g->nodes.begin(), g->nodes.end(), p["node"].get<std::string>()) == g->nodes.end())
        g->nodes.push_back(p["node"]);
      shape_of.push_back(static_cast<std::size_t>(g - shapes.begin()));
    }
    // A group per shape and model, its replicas the instances loading that model.
    std::vector<Group> groups;
    for (std::size_t j = 0; j < ids.size(); ++j)
      for (const auto& id : ids[j]) {
        auto other = models.find(id);
        std::string loads = other == models.end() || model.empty() ? model : other->second.model;
        const Group& shape = shapes[shape_of[j]];
        auto g = std::find_if(groups.begin(), groups.end(),
                              [&](const Group& x) { return same_variant(x, shape) && x.model == loads; });
        if (g == groups.end()) {
          groups.push_back(shape);
          groups.back().model = loads;
          g = groups.end() - 1;
        }
        g->instances.push_back(id);
      }
    for (auto& g : groups) {
      // Who joined the group last (created, or updated to its model, latest) is its last replica.
      auto since = [&](const std::string& id) {
        auto it = models.find(id);
        return it == models.end() ? std::string() : it->second.since;
      };
      std::stable_sort(g.instances.begin(), g.instances.end(),
                       [&](const std::string& a, const std::string& b) { return since(a) < since(b); });
      auto site = sites(g.site);
      if (!site) return fail(Error::invalid_field("/spec/components", fmt::format("site '{}' is not in the inventory", g.site)));
      out.push_back(workload_of(deployment_id, comp, g, *site));
    }
  }
  return out;
}

}  // namespace cpn::drivers::kubernetes
