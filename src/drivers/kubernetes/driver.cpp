// The kubernetes compute driver. A cpnd instance is one replica of its
// group's Deployment: starting any of them applies the group's Service and
// Deployment (server-side apply, so applying again changes nothing);
// instance i runs when the rollout is current and more than i replicas are
// available (kubectl rollout status's reading); stopping deletes the group
// (foreground), and it is stopped once the cluster has removed it. An
// instance updated to another model version moves to a Deployment of that
// version beside its group (a canary's own), so no other pod rolls. What a
// Deployment says comes from an informer per cluster and namespace (a GET
// only until its first LIST is back, or where cpnd may not list), and
// requests share a few kept-alive connections per cluster.
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "cpn/core/log.hpp"
#include "cpn/drivers/kubernetes.hpp"
#include "cpn/template/template.hpp"

namespace cpn::drivers::kubernetes {
namespace {

// The model a Deployment's pods load, as its pod template says.
std::string model_of(const Json& d) {
  for (const auto& c : d.value("/spec/template/spec/containers"_json_pointer, Json::array()))
    for (const auto& e : c.value("env", Json::array()))
      if (e.value("name", "") == "CPN_MODEL_VERSION") return e.value("value", "");
  return "";
}

// A Deployment's status read the way `kubectl rollout status` reads it:
// nothing counts until the controller has seen the current spec; then a
// rollout past its progress deadline has failed, and replica i runs once
// more than i replicas are updated and available. A change of replicas
// alone (same_pods: the pod template is the one last seen rolled out)
// rolls no pod: the replicas the cluster keeps run on while it scales.
Observation rollout(const Json& d, std::size_t index, bool same_pods) {
  const Json& meta = d.value("metadata", Json::object());
  const Json& status = d.value("status", Json::object());
  std::string name = meta.value("name", "");
  if (meta.contains("deletionTimestamp")) return {Phase::starting, fmt::format("deployment '{}' is being deleted", name)};
  // A replica the cluster was never asked for (the group scaled out since): not there yet.
  if (static_cast<long>(index) >= d.value("/spec/replicas"_json_pointer, 1L)) return {Phase::absent, ""};
  long generation = meta.value("generation", 0L), observed = status.value("observedGeneration", 0L);
  if (observed < generation) {
    long kept = std::min({d.value("/spec/replicas"_json_pointer, 1L), status.value("updatedReplicas", 0L),
                          status.value("availableReplicas", 0L)});
    if (same_pods && static_cast<long>(index) < kept) return {Phase::running, "", model_of(d)};
    return {Phase::starting, fmt::format("waiting for deployment '{}' to be observed", name)};
  }
  std::string waiting;
  for (const auto& c : status.value("conditions", Json::array())) {
    std::string type = c.value("type", ""), reason = c.value("reason", ""), message = c.value("message", "");
    if (type == "Progressing" && reason == "ProgressDeadlineExceeded")
      return {Phase::failed, fmt::format("deployment '{}' exceeded its progress deadline: {}", name, message)};
    // Quota or admission refusals: Kubernetes keeps trying, and so it is still starting.
    if (type == "ReplicaFailure" && c.value("status", "") == "True") waiting = fmt::format(" ({}: {})", reason, message);
  }
  long replicas = d.value("/spec/replicas"_json_pointer, 1L);
  long updated = status.value("updatedReplicas", 0L), available = status.value("availableReplicas", 0L);
  auto i = static_cast<long>(index);
  if (updated > i && available > i) return {Phase::running, "", model_of(d)};
  return {Phase::starting, fmt::format("deployment '{}': {} of {} replicas updated, {} available{}", name, updated, replicas,
                                       available, waiting)};
}

class KubernetesCompute : public ComputeDriver {
 public:
  KubernetesCompute(std::function<std::optional<Json>(const std::string&)> template_of, SiteLookup sites,
                    std::chrono::milliseconds timeout, std::function<std::vector<Json>()> controllers,
                    std::function<InstanceModels(const std::string&)> models_of)
      : template_of_(std::move(template_of)),
        sites_(std::move(sites)),
        timeout_(timeout),
        controllers_(std::move(controllers)),
        models_of_(std::move(models_of)) {}

  std::string name() const override { return "kubernetes"; }

  // {type: ControllerReachable, status, since, reason?, failures?,
  // retry_in_ms?, watch?}: what the last request to the site's API server
  // found, and how its informer stands.
  Json condition(const std::string& site) const override {
    std::string key = informer_key(cluster_of(site));
    std::lock_guard lock(mutex_);
    auto informer = informers_.find(key);
    Json watch = informer == informers_.end() ? Json(nullptr) : informer->second->condition();
    auto it = health_.find(site);
    if (it == health_.end()) {
      if (watch.is_null()) return nullptr;
      Json out = {{"type", "ControllerReachable"}, {"status", watch["state"] != "failing"}, {"since", watch["since"]}};
      if (watch.contains("reason")) out["reason"] = watch["reason"];
      out["watch"] = watch;
      return out;
    }
    const Health& h = it->second;
    Json out = {{"type", "ControllerReachable"}, {"status", h.failures == 0}, {"since", h.since}};
    if (h.failures > 0) {
      out["reason"] = h.reason;
      out["failures"] = h.failures;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(h.retry_at - std::chrono::steady_clock::now());
      out["retry_in_ms"] = std::max<long>(0, static_cast<long>(left.count()));
    }
    if (!watch.is_null()) out["watch"] = watch;
    return out;
  }

  // Deployments and Services labelled as cpnd's, in the namespaces of the
  // inventory's kubernetes sites, whose deployment is gone or no longer
  // renders them. A namespace is cpnd's own: another cpnd there would see
  // this one's objects as orphans.
  std::vector<std::string> remove_orphans() override {
    std::vector<std::string> removed;
    if (!controllers_) return removed;
    std::set<std::string> swept;
    for (const Json& controller : controllers_()) {
      ClusterSettings c = settings_of(controller);
      if (c.endpoint.empty() || !swept.insert(informer_key(c)).second) continue;
      auto api = client_of(c);
      for (const char* kind : {"Deployment", "Service"}) {
        std::string collection = kind == std::string("Deployment")
                                     ? fmt::format("/apis/apps/v1/namespaces/{}/deployments", c.ns)
                                     : fmt::format("/api/v1/namespaces/{}/services", c.ns);
        auto r = api->request("GET", collection + "?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dcpnd");
        Json list = r ? r->json() : Json();
        if (!r || r->status != 200 || !list.contains("items") || !list["items"].is_array()) {
          log::warning("orphan sweep: cannot list {} {}: {}", c.endpoint, collection,
                       r ? fmt::format("HTTP {}", r->status) : r.error().message);
          continue;
        }
        for (Json item : list["items"]) {
          if (!item.is_object()) continue;
          item["kind"] = kind;
          const Json& meta = item.value("metadata", Json::object());
          if (meta.contains("deletionTimestamp") || wanted(item, c.ns)) continue;
          std::string path = ApiClient::path_of(item);
          if (auto gone = api->remove(path); !gone) {
            log::warning("orphan sweep: cannot delete {}: {}", path, gone.error().message);
            continue;
          }
          forget_deleted(path);
          if (auto* informer = find_informer(c)) informer->assume(path, std::nullopt);
          removed.push_back(fmt::format("{} {}/{}", kind, c.ns, meta.value("name", "")));
        }
      }
    }
    return removed;
  }

  Status start(const Json& instance) override {
    auto found = locate(instance);
    if (!found) return fail(found.error());
    const std::string& site = found->first.site;
    if (auto open = admit(site); !open) return open;
    ClusterSettings cluster = cluster_of(site);
    auto api = client_of(cluster);
    // Updated to another model: the group it left loses its replica first
    // (or goes, when it was the last), so no pod of it is left over.
    if (auto s = leave_group(instance, cluster); !s) return s;
    Json applied;
    for (const Json* object : {&found->first.service, &found->first.deployment}) {
      auto r = noted(site, api->apply(*object));
      if (!r) return fail(r.error());
      applied = *r;
    }
    std::string path = ApiClient::path_of(found->first.deployment);
    forget(path);
    if (applied.is_object()) informer_of(cluster).assume(path, applied);
    return {};
  }

  Status stop(const Json& instance) override {
    // After a failure (still desired running) there is nothing to clear:
    // the Deployment's controller replaces failed pods itself, and its
    // siblings keep running.
    if (instance.value("desired", "stopped") == "running") return {};
    auto found = locate(instance);
    if (!found) return stop_retired(instance);
    const std::string& site = found->first.site;
    if (auto open = admit(site); !open) return open;
    ClusterSettings cluster = cluster_of(site);
    if (auto s = remove(site, cluster, ApiClient::path_of(found->first.deployment)); !s) return s;
    // Stopped in the middle of an update: the group of its old model may still hold its pod.
    if (auto s = leave_group(instance, cluster); !s) return s;
    return remove(site, cluster, ApiClient::path_of(found->first.service));
  }

  // An instance updated to another model moves to its version's Deployment
  // (so it updates alone); replacing one would change its group's pod
  // template and roll them all.
  bool replaces_one() const override { return false; }
  bool updates_by_start() const override { return true; }

  Observation observe(const Json& instance) override {
    auto found = locate(instance);
    if (!found) {
      auto retired = retired_group(instance);
      if (!retired) return {Phase::failed, found.error().message};
      // Scaled in: gone once the group is deleted or has scaled down.
      auto seen = fetch(instance.value("site", ""), retired->path);
      if (!seen) return {Phase::starting, seen.error().message};
      if (!*seen) return {Phase::absent, ""};
      const Json& d = **seen;
      if (d["metadata"].contains("deletionTimestamp")) return {Phase::starting, "being deleted"};
      long want = d.value("/spec/replicas"_json_pointer, 0L), have = d.value("/status/replicas"_json_pointer, 0L);
      if (d.value("/status/observedGeneration"_json_pointer, 0L) >= d.value("/metadata/generation"_json_pointer, 0L) &&
          have <= want)
        return {Phase::absent, ""};
      return {Phase::starting, fmt::format("scaling down: {} replicas, {} wanted", have, want)};
    }
    std::string path = ApiClient::path_of(found->first.deployment);
    auto seen = fetch(found->first.site, path);
    if (!seen) return {Phase::starting, seen.error().message};
    return read(path, *seen, found->second);
  }

 private:
  struct Seen {
    std::chrono::steady_clock::time_point at;
    std::optional<Json> object;
    std::string error;  // the read failed (and nothing was ever read)
  };

  // A site whose API server was out of reach is not tried again before its
  // backoff (1 s, doubled per failure, up to a minute) is over: calls fail
  // at once meanwhile, instead of each holding a worker for a timeout.
  struct Health {
    int failures = 0;
    std::string reason, since;
    std::chrono::steady_clock::time_point retry_at{};
  };
  Status admit(const std::string& site) const {
    std::lock_guard lock(mutex_);
    auto it = health_.find(site);
    if (it == health_.end() || it->second.failures == 0 || std::chrono::steady_clock::now() >= it->second.retry_at)
      return {};
    return fail(Error{ErrorKind::unavailable,
                      fmt::format("site '{}': its Kubernetes API server is out of reach ({} failures; tried again "
                                  "after a backoff): {}", site, it->second.failures, it->second.reason),
                      {}});
  }
  template <typename R>
  R noted(const std::string& site, R result) {
    bool unreachable = !result && result.error().kind == ErrorKind::unavailable;
    std::lock_guard lock(mutex_);
    Health& h = health_[site];
    if (!unreachable) {
      if (h.failures > 0 || h.since.empty()) h = Health{0, "", format_time(std::chrono::system_clock::now())};
      return result;
    }
    auto now = std::chrono::steady_clock::now();
    h.reason = result.error().message;
    if (h.failures > 0 && now < h.retry_at) return result;  // one of the calls already under way when it failed
    if (h.failures == 0) h.since = format_time(std::chrono::system_clock::now());
    ++h.failures;
    auto backoff = std::min<std::chrono::milliseconds>(std::chrono::minutes(1),
                                                       std::chrono::milliseconds(1000) * (1 << std::min(h.failures - 1, 6)));
    h.retry_at = now + backoff;
    return result;
  }

  // What was cached of a path is stale (it was just applied or deleted); a
  // read already under way when this came must not store its older answer.
  void forget(const std::string& path) {
    std::lock_guard lock(mutex_);
    seen_.erase(path);
    ++generation_[path];
  }

  // A deleted object: what was cached of it, and the pod template it last rolled out.
  void forget_deleted(const std::string& path) {
    forget(path);
    std::lock_guard lock(mutex_);
    rolled_out_.erase(path);
  }

  // GET through a short cache: one read serves every replica of a group in
  // a pass, and so does one failure (timed from when it ended), so an
  // unreachable cluster costs one timeout per group, not one per replica.
  // When the cluster is out of reach, what it last said still holds.
  Result<std::optional<Json>> fetch(const std::string& site, const std::string& path) {
    ClusterSettings cluster = cluster_of(site);
    Informer& informer = informer_of(cluster);
    auto known = informer.get(path);  // what the informer last saw, once it has listed
    if (known && informer.current()) return *known;
    // Not listed yet (or not allowed to), or its watch is down: read it, and
    // when that fails too, what the informer last saw holds.
    std::uint64_t generation = 0;
    {
      std::lock_guard lock(mutex_);
      auto cached = seen_.find(path);
      if (cached != seen_.end() && std::chrono::steady_clock::now() - cached->second.at <= std::chrono::milliseconds(250)) {
        if (!cached->second.error.empty()) {
          if (known) return *known;
          return fail(Error::internal(cached->second.error));
        }
        return cached->second.object;
      }
      generation = generation_[path];
    }
    if (auto open = admit(site); !open) {
      if (known) return *known;
      return fail(open.error());
    }
    auto got = noted(site, client_of(cluster)->get(path));  // not under the lock: others go on
    if (!got && known) return *known;
    std::lock_guard lock(mutex_);
    if (generation_[path] != generation) {  // forgotten meanwhile: answer this once, keep nothing
      if (!got) return fail(got.error());
      return *got;
    }
    auto now = std::chrono::steady_clock::now();
    auto cached = seen_.find(path);
    if (got)
      cached = seen_.insert_or_assign(path, Seen{now, *got, ""}).first;
    else if (cached == seen_.end() || !cached->second.error.empty())
      cached = seen_.insert_or_assign(path, Seen{now, std::nullopt, got.error().message}).first;
    else
      cached->second.at = now;  // keep what it last said
    if (!cached->second.error.empty()) return fail(Error::internal(cached->second.error));
    return cached->second.object;
  }

  // An instance scaling in took out of the template: its group's objects.
  struct Retired {
    std::string path, service_path;
    std::optional<Workload> still;  // the group, when replicas of it remain
    bool service_in_use = false;    // another variant of the component at the site remains
  };
  std::optional<Retired> retired_group(const Json& instance) const {
    std::string dep = instance.value("deployment", "");
    auto tmpl = template_of_(dep);
    if (!tmpl) return std::nullopt;
    auto workloads = render(dep, *tmpl, sites_, models(dep));
    if (!workloads) return std::nullopt;
    std::string site = instance.value("site", ""), component = instance.value("component", "");
    std::string ns = cluster_of(site).ns;
    Retired r;
    std::string name = group_name(*tmpl, instance, instance.value("model", ""));
    r.path = fmt::format("/apis/apps/v1/namespaces/{}/deployments/{}", ns, name);
    r.service_path = fmt::format("/api/v1/namespaces/{}/services/{}", ns, service_name(dep, component, site));
    for (auto& w : *workloads) {
      if (w.deployment["metadata"]["name"] == name) r.still = w;
      if (w.component == component && w.site == site) r.service_in_use = true;
    }
    return r;
  }

  // The Deployment an instance updated from previous_model ran in, applied
  // with the replicas it has left, or deleted when it has none.
  Status leave_group(const Json& instance, const ClusterSettings& cluster) {
    std::string from = instance.value("previous_model", "");
    if (from.empty() || from == instance.value("model", "")) return {};
    std::string dep = instance.value("deployment", ""), site = instance.value("site", "");
    auto tmpl = template_of_(dep);
    if (!tmpl) return {};
    auto workloads = render(dep, *tmpl, sites_, models(dep));
    if (!workloads) return fail(workloads.error());
    std::string left = group_name(*tmpl, instance, from);
    std::string path = fmt::format("/apis/apps/v1/namespaces/{}/deployments/{}", cluster.ns, left);
    for (const auto& w : *workloads)
      if (w.deployment["metadata"]["name"] == left) {
        auto r = noted(site, client_of(cluster)->apply(w.deployment));
        if (!r) return fail(r.error());
        forget(path);
        if (r->is_object()) informer_of(cluster).assume(path, *r);
        return {};
      }
    return remove(site, cluster, path);
  }

  Status stop_retired(const Json& instance) {
    auto retired = retired_group(instance);
    if (!retired) return {};  // nothing of it was ever rendered: nothing to stop
    std::string site = instance.value("site", "");
    if (auto open = admit(site); !open) return open;
    ClusterSettings cluster = cluster_of(site);
    forget(retired->path);
    if (retired->still) {  // fewer replicas of the group
      auto r = noted(site, client_of(cluster)->apply(retired->still->deployment));
      if (!r) return fail(r.error());
      if (r->is_object()) informer_of(cluster).assume(retired->path, *r);
      return {};
    }
    if (auto s = remove(site, cluster, retired->path); !s) return s;
    return retired->service_in_use ? Status{} : remove(site, cluster, retired->service_path);
  }

  Observation read(const std::string& path, const std::optional<Json>& object, std::size_t index) {
    if (!object) return {Phase::absent, ""};
    const Json& d = *object;
    std::size_t pods = std::hash<std::string>{}(d.value("/spec/template"_json_pointer, Json()).dump());
    // Rolled out: observed, and every replica it asks for updated and available.
    long replicas = d.value("/spec/replicas"_json_pointer, 1L);
    bool current = d.value("/status/observedGeneration"_json_pointer, 0L) >= d.value("/metadata/generation"_json_pointer, 0L) &&
                   d.value("/status/updatedReplicas"_json_pointer, 0L) >= replicas &&
                   d.value("/status/availableReplicas"_json_pointer, 0L) >= replicas;
    bool same_pods = false;
    {
      std::lock_guard lock(mutex_);
      if (current) rolled_out_[path] = pods;
      auto it = rolled_out_.find(path);
      same_pods = it != rolled_out_.end() && it->second == pods;
    }
    return rollout(d, index, same_pods);
  }

  // DELETE (foreground); what it answers (the object being deleted, or gone) is what the informer holds meanwhile.
  Status remove(const std::string& site, const ClusterSettings& cluster, const std::string& path) {
    forget_deleted(path);
    auto r = noted(site, client_of(cluster)->remove(path));
    if (!r) return fail(r.error());
    if (path.find("/deployments/") != std::string::npos) informer_of(cluster).assume(path, *r);
    return {};
  }

  // Whether a deployment of cpnd's renders this object (kind set) in this namespace.
  bool wanted(const Json& object, const std::string& ns) const {
    const Json& meta = object["metadata"];
    std::string dep = meta.value("/annotations/cpn.io~1deployment"_json_pointer,
                                 meta.value("/labels/app.kubernetes.io~1instance"_json_pointer, ""));
    auto tmpl = template_of_(dep);
    if (!tmpl) return false;
    auto workloads = render(dep, *tmpl, sites_, models(dep));
    if (!workloads) return true;  // cannot tell: leave it
    std::string name = meta.value("name", "");
    bool deployment = object.value("kind", "") == "Deployment";
    for (const auto& w : *workloads)
      if (w.ns == ns && (deployment ? w.deployment : w.service)["metadata"]["name"] == name) return true;
    return false;
  }

  // Connections are shared per API server and credentials; informers per namespace too.
  static std::string client_key(const ClusterSettings& c) { return c.endpoint + "\n" + c.ca_file + "\n" + c.token_file; }
  static std::string informer_key(const ClusterSettings& c) { return client_key(c) + "\n" + c.ns; }
  std::shared_ptr<ApiClient> client_of(const ClusterSettings& c) {
    std::lock_guard lock(mutex_);
    auto& slot = clients_[client_key(c)];
    if (!slot) slot = std::make_shared<ApiClient>(c, timeout_);
    return slot;
  }
  // Started on first use, it lives as long as the driver.
  Informer& informer_of(const ClusterSettings& c) {
    std::lock_guard lock(mutex_);
    auto& slot = informers_[informer_key(c)];
    if (!slot) slot = std::make_unique<Informer>(c, timeout_);
    return *slot;
  }
  Informer* find_informer(const ClusterSettings& c) {
    std::lock_guard lock(mutex_);
    auto it = informers_.find(informer_key(c));
    return it == informers_.end() ? nullptr : it->second.get();
  }

  ClusterSettings cluster_of(const std::string& site) const {
    auto info = sites_(site);
    return settings_of(info ? info->controller : Json::object());
  }

  InstanceModels models(const std::string& deployment) const {
    return models_of_ ? models_of_(deployment) : InstanceModels{};
  }

  // The name of the Deployment that runs an instance of this template when it loads `model`.
  static std::string group_name(const Json& tmpl, const Json& instance, const std::string& model) {
    std::string component = instance.value("component", ""), own;
    for (const auto& c : tmpl["spec"]["components"])
      if (c.value("name", "") == component) own = templates::model_ref(c);
    return deployment_name(instance.value("deployment", ""), component, instance.value("site", ""),
                           instance.value("arch", ""), instance.value("accelerator", ""),
                           own.empty() || model == own ? "" : model);
  }

  // The instance's workload and its replica index.
  Result<std::pair<Workload, std::size_t>> locate(const Json& instance) const {
    std::string dep = instance.value("deployment", ""), id = instance.value("id", "");
    auto tmpl = template_of_(dep);
    if (!tmpl) return fail(Error::not_found(fmt::format("deployment '{}' has no template", dep)));
    auto workloads = render(dep, *tmpl, sites_, models(dep));
    if (!workloads) return fail(workloads.error());
    for (auto& w : *workloads)
      for (std::size_t i = 0; i < w.instances.size(); ++i)
        if (w.instances[i] == id) return std::make_pair(std::move(w), i);
    return fail(Error::not_found(fmt::format("instance '{}' is not in the template of '{}'", id, dep)));
  }

  std::function<std::optional<Json>(const std::string&)> template_of_;
  SiteLookup sites_;
  std::chrono::milliseconds timeout_;
  std::function<std::vector<Json>()> controllers_;
  std::function<InstanceModels(const std::string&)> models_of_;
  mutable std::mutex mutex_;  // guards the maps: calls come from several workers at once
  std::map<std::string, std::shared_ptr<ApiClient>> clients_;
  std::map<std::string, std::unique_ptr<Informer>> informers_;
  std::map<std::string, Seen> seen_;
  std::map<std::string, std::uint64_t> generation_;  // by path: bumped by forget()
  std::map<std::string, Health> health_;  // by site
  std::map<std::string, std::size_t> rolled_out_;  // by path: the hash of the pod template last seen rolled out
};

}  // namespace

std::unique_ptr<ComputeDriver> make_compute(std::function<std::optional<Json>(const std::string& deployment)> template_of,
                                            SiteLookup sites, std::chrono::milliseconds timeout,
                                            std::function<std::vector<Json>()> controllers,
                                            std::function<InstanceModels(const std::string& deployment)> models_of) {
  return std::make_unique<KubernetesCompute>(std::move(template_of), std::move(sites), timeout, std::move(controllers),
                                             std::move(models_of));
}

}  // namespace cpn::drivers::kubernetes
