// The kubernetes driver: a deployment's instances on a site whose controller
// is an existing cluster. Per component, site and image variant cpnd
// renders one apps/v1 Deployment, whose replicas are that group's
// instances, and per component and site one v1 Service; it applies them by
// server-side apply, and rollout status says which instances run.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cpn/core/document.hpp"
#include "cpn/core/error.hpp"
#include "cpn/drivers/compute.hpp"
#include "cpn/engine/engine.hpp"

namespace cpn::drivers::kubernetes {

// A site's `controller` settings, with the defaults a cluster without
// special labels needs.
struct ClusterSettings {
  std::string endpoint;   // https://host[:port] of the API server
  std::string ns = "default";
  std::string token_file;  // bearer token, read again before every request (tokens rotate)
  std::string ca_file;     // the cluster's CA; the system's CAs when empty
  std::string image_registry;                        // prefixed to image names ("" = as they are)
  std::string accelerator_label = "cpn.io/accelerator";  // node label naming the accelerator model
  std::map<std::string, std::string> resources;      // accelerator model -> extended resource name
  int progress_deadline_s = 600;                     // a rollout stuck longer fails the instance
};
ClusterSettings settings_of(const Json& controller);

// What the renderer needs of a site: its tier (edge and end sites get the
// KubeEdge tolerations) and its controller settings.
struct SiteInfo {
  std::string tier;
  Json controller = Json::object();
};
using SiteLookup = std::function<std::optional<SiteInfo>(const std::string& site)>;
// The inventory's sites (read when asked, so controller changes count at once).
SiteLookup inventory_sites(const engine::Engine& engine);

// What the driver reads of cpnd's state (deployments' templates, sites'
// tiers and controllers), copied on the engine's thread by every commit
// that changes it: the driver runs on worker threads, which never touch
// the engine. Must outlive the driver.
// What an instance loads (name@version), where that may differ from its
// component's (one instance updated alone), and since when (model_at: its
// creation or its latest update): a Deployment's replicas are its
// instances in that order, so one that joins takes the last replica and
// the others keep theirs.
struct InstanceModel {
  std::string model, since;
  bool operator==(const InstanceModel&) const = default;
};
using InstanceModels = std::map<std::string, InstanceModel>;  // by instance id
InstanceModel instance_model(const Json& instance);

class Mirror {
 public:
  explicit Mirror(engine::Engine& engine);
  std::optional<Json> template_of(const std::string& deployment) const;
  // The models its live instances load, by instance.
  InstanceModels models_of(const std::string& deployment) const;
  std::optional<SiteInfo> site(const std::string& id) const;
  // The controllers of the sites whose driver is kubernetes.
  std::vector<Json> kubernetes_controllers() const;
  SiteLookup sites() const {
    return [this](const std::string& id) { return site(id); };
  }

 private:
  void copy(const std::string& kind, const std::string& id, const engine::Object* object);
  mutable std::mutex mutex_;
  std::map<std::string, Json> templates_;
  std::map<std::string, InstanceModels> models_;  // by deployment
  std::map<std::string, std::string> deployment_of_;  // by instance
  std::map<std::string, SiteInfo> sites_;
};

// One Deployment and the Service in front of its component at its site.
struct Workload {
  std::string site, component, arch, accelerator;
  std::string ns;
  std::vector<std::string> instances;  // the cpnd instances that are its replicas, in order
  Json deployment;
  Json service;
};

// The workloads of a deployment template (every placement, whatever its
// site's driver), in template order. An instance whose model differs from
// its component's runs in a Deployment of its version's (name suffixed
// -v<version>) beside the group's.
Result<std::vector<Workload>> render(const std::string& deployment_id, const Json& tmpl, const SiteLookup& sites,
                                     const InstanceModels& models = {});

// Object names: a Service per component and site, a Deployment per
// component, site and variant (architecture and accelerator), and model
// version where it is not the component's (other_model: name@version).
std::string service_name(const std::string& deployment, const std::string& component, const std::string& site);
std::string deployment_name(const std::string& deployment, const std::string& component, const std::string& site,
                            const std::string& arch, const std::string& accelerator,
                            const std::string& other_model = "");
// kubernetes.io/arch of a cpnd architecture (x86_64 -> amd64, ...).
std::string kube_arch(const std::string& arch);
// The extended resource that schedules an accelerator model: the site's
// own mapping first, then nvidia.com/gpu, huawei.com/Ascend910, ...
std::string extended_resource(const std::string& model, const ClusterSettings& settings);
// A DNS-1035 label (Service names): lower case, [-a-z0-9], a letter
// first, at most 63 characters (longer ones keep a hash of the whole).
std::string dns_label(const std::string& text);

// The Kubernetes REST API over HTTPS: bearer token from the token file
// (read for every request: tokens rotate), the server verified against the
// CA file and its name or address, over up to four kept-alive connections.
// Safe to call from several threads at once.
struct Reply {
  int status = 0;
  std::string body;
  Json json() const;  // the body, or null when it is not JSON
};
class ApiClient {
 public:
  ApiClient(ClusterSettings settings, std::chrono::milliseconds timeout);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;
  // A transport or TLS failure is an error; any HTTP answer is a Reply.
  Result<Reply> request(const std::string& method, const std::string& target, const std::string& body = "",
                        const std::string& content_type = "");
  // Server-side apply of one object (PATCH, application/apply-patch+yaml,
  // fieldManager=cpnd, force=true): created or updated, never duplicated.
  Result<Json> apply(const Json& object);
  // GET; nullopt when it does not exist.
  Result<std::optional<Json>> get(const std::string& path);
  // DELETE with foreground propagation; one that does not exist is deleted.
  // Answers the object while its deletion goes on, nothing once it is gone.
  Result<std::optional<Json>> remove(const std::string& path);

  // REST path of an apps/v1 Deployment or v1 Service.
  static std::string path_of(const Json& object);
  // TLS connections opened so far (requests share a few kept alive).
  std::uint64_t connections_opened() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A list+watch cache of the cpnd-labelled Deployments in one namespace of
// one cluster, as client-go's informer: LIST, then WATCH from the list's
// resourceVersion, watching again whenever a watch ends and listing again
// when the server says that version is gone (410); out of reach, it tries
// again after a backoff (1 s, doubled up to 30 s) and keeps what it last
// saw. It has its own thread and connection and never blocks a caller.
class Informer {
 public:
  Informer(ClusterSettings settings, std::chrono::milliseconds timeout);
  ~Informer();
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;
  // The Deployment at a REST path as last seen (nullopt inside: there is
  // none), or nullopt before the first LIST came back: read it directly.
  std::optional<std::optional<Json>> get(const std::string& path) const;
  // What a write of cpnd's just answered (the object, or none after a
  // deletion): newer than what the watch has said so far, so it holds
  // until the watch says more. An event older than it (by an integer
  // resourceVersion, as etcd's are) does not undo it.
  void assume(const std::string& path, std::optional<Json> object);
  // Whether what it holds is current: listed, and neither its LIST nor
  // its WATCH failing since (not just what it last saw).
  bool current() const;
  // {state: listing|watching|failing, since, reason?, failures?, lists,
  // watches, events, objects}: what GET /v1/sites/{id} shows.
  Json condition() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// The label every object cpnd applies carries, and the selector of the
// informer and the orphan sweep.
inline constexpr const char* kManagedBy = "app.kubernetes.io/managed-by=cpnd";

// The driver. template_of answers a deployment's template; sites answers a
// site's tier and controller.
// controllers answers every kubernetes controller of the inventory's sites
// (where the orphan sweep looks); none when omitted. models_of answers the
// models a deployment's instances load (all on their component's when
// omitted).
std::unique_ptr<ComputeDriver> make_compute(std::function<std::optional<Json>(const std::string& deployment)> template_of,
                                            SiteLookup sites, std::chrono::milliseconds timeout,
                                            std::function<std::vector<Json>()> controllers = {},
                                            std::function<InstanceModels(const std::string& deployment)> models_of = {});

}  // namespace cpn::drivers::kubernetes
