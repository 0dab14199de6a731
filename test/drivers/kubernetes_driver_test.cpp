// The kubernetes driver on its own: the manifests it renders from a
// template (architecture and accelerator selection, extended resources,
// KubeEdge tolerations, the solver's nodes, names Kubernetes accepts), its
// HTTPS client against a local API server that checks the token and whose
// certificate the client must verify over kept-alive connections, and the
// driver's lifecycle: apply, rollout status through the informer's watch
// (and by GET where cpnd may not list), a stuck rollout, foreground
// deletion, the orphan sweep.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <thread>

#include "cpn/drivers/kubernetes.hpp"
#include "support/daemon.hpp"
#include "support/kube_apiserver.hpp"
#include "support/templates.hpp"

using namespace cpn;
using namespace cpn::drivers::kubernetes;
using drivers::Phase;

namespace {

Json placement(const std::string& site, const std::string& node, const std::string& arch, const std::string& acc,
               int instances, double cpu, double memory, int accelerators, const std::string& platform,
               const std::string& stack) {
  Json p = {{"site", site},
            {"node", node},
            {"arch", arch},
            {"instances", instances},
            {"variant", {{"platform", platform}, {"accelerator", stack}}},
            {"requests", {{"cpu", cpu}, {"memory", memory}, {"accelerators", accelerators}}}};
  if (!acc.empty()) p["accelerator"] = acc;
  return p;
}

// detect at an edge site on a T4 node and an Ascend 310 node (two variants);
// analyze in the centre over two A100 nodes, three instances.
Json sample_template() {
  Json detect = {{"name", "detect"},
                 {"tier", "edge"},
                 {"image", "city-detect:3.1"},
                 {"model", {{"name", "yolov5s-city"}, {"version", "7"}}},
                 {"placements",
                  {placement("edge-sz", "sz-t4-1", "x86_64", "nvidia-t4", 2, 6, 16, 1, "linux/amd64", "cuda"),
                   placement("edge-sz", "sz-arm-1", "aarch64", "ascend-310", 1, 4, 8, 1, "linux/arm64", "cann")}}};
  detect["placements"][0]["variant"]["digest"] = "sha256:abc";
  detect["placements"][0]["variant"]["command"] = {"city-detect", "--device=cuda"};
  Json analyze = {{"name", "analyze"},
                  {"tier", "center"},
                  {"image", "event-analytics:2.0"},
                  {"placements",
                   {placement("center", "gz-gpu-1", "x86_64", "nvidia-a100", 2, 0.5, 1.5, 2, "linux/amd64", "cuda"),
                    placement("center", "gz-gpu-2", "x86_64", "nvidia-a100", 1, 0.5, 1.5, 2, "linux/amd64", "cuda")}}};
  return test::deployment_template("dep-1", {detect, analyze});
}

SiteLookup sites(Json edge_controller, Json center_controller) {
  return [=](const std::string& id) -> std::optional<SiteInfo> {
    if (id == "edge-sz") return SiteInfo{"edge", edge_controller};
    if (id == "center") return SiteInfo{"center", center_controller};
    return std::nullopt;
  };
}

const Json* find_kind(const std::vector<Workload>& ws, std::size_t i, const char* kind) {
  return kind == std::string("Service") ? &ws[i].service : &ws[i].deployment;
}

}  // namespace

TEST_CASE("a template renders one Deployment per component, site and variant, and a Service per component and site",
          "[drivers][kubernetes]") {
  Json center = {{"driver", "kubernetes"},
                 {"namespace", "vision"},
                 {"image_registry", "registry.gz.example/"},
                 {"resources", {{"nvidia-a100", "nvidia.com/mig-3g.40gb"}}},
                 {"accelerator_label", "nvidia.com/gpu.product"}};
  auto ws = render("dep-1", sample_template(), sites({{"driver", "kubernetes"}}, center));
  REQUIRE(ws);
  REQUIRE(ws->size() == 3);

  // detect on amd64 + T4: the cuda variant's image by digest, its command, one GPU, KubeEdge tolerations.
  const Json& t4 = (*ws)[0].deployment;
  CHECK(t4["metadata"]["name"] == "dep-1-detect-edge-sz-amd64-nvidia-t4");
  CHECK(t4["metadata"]["namespace"] == "default");
  CHECK(t4["spec"]["replicas"] == 2);
  CHECK((*ws)[0].instances == std::vector<std::string>{"dep-1-detect-0", "dep-1-detect-1"});
  const Json& pod = t4["spec"]["template"]["spec"];
  CHECK(pod["nodeSelector"] == Json{{"kubernetes.io/arch", "amd64"}, {"cpn.io/accelerator", "nvidia-t4"}});
  CHECK(pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
            ["matchExpressions"][0] == Json{{"key", "kubernetes.io/hostname"}, {"operator", "In"}, {"values", {"sz-t4-1"}}});
  CHECK_FALSE(pod.contains("topologySpreadConstraints"));  // both replicas on the one node the solver chose
  const Json& c = pod["containers"][0];
  CHECK(c["image"] == "city-detect:3.1@sha256:abc");
  CHECK(c["command"] == Json{"city-detect", "--device=cuda"});
  CHECK(c["resources"]["requests"] == Json{{"cpu", "6"}, {"memory", "16Gi"}, {"nvidia.com/gpu", "1"}});
  CHECK(c["resources"]["limits"] == Json{{"memory", "16Gi"}, {"nvidia.com/gpu", "1"}});
  CHECK(c["env"][2] == Json{{"name", "CPN_MODEL_VERSION"}, {"value", "yolov5s-city@7"}});
  CHECK(c["readinessProbe"]["httpGet"]["path"] == "/healthz");
  REQUIRE(pod["tolerations"].size() == 3);
  CHECK(pod["tolerations"][0] == Json{{"key", "node-role.kubernetes.io/edge"}, {"operator", "Exists"}, {"effect", "NoSchedule"}});
  CHECK(pod["tolerations"][1]["key"] == "node.kubernetes.io/unreachable");
  CHECK(t4["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0);

  // detect on arm64 + Ascend 310: the NPU's extended resource; the same Service fronts both variants.
  const Json& npu = (*ws)[1].deployment;
  CHECK(npu["metadata"]["name"] == "dep-1-detect-edge-sz-arm64-ascend-310");
  CHECK(npu["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/arch"] == "arm64");
  CHECK(npu["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["huawei.com/Ascend310"] == "1");
  CHECK((*ws)[0].service == (*ws)[1].service);
  const Json& svc = (*ws)[0].service;
  CHECK(svc["metadata"]["name"] == "dep-1-detect-edge-sz");
  CHECK(svc["spec"]["selector"] ==
        Json{{"cpn.io/deployment", "dep-1"}, {"cpn.io/component", "detect"}, {"cpn.io/site", "edge-sz"}});
  // Each Deployment selects its own pods only; the Service selects them all.
  CHECK(t4["spec"]["selector"]["matchLabels"]["cpn.io/workload"] == t4["metadata"]["name"]);
  CHECK(t4["spec"]["template"]["metadata"]["labels"]["cpn.io/workload"] == t4["metadata"]["name"]);

  // analyze in the centre: the site's namespace, registry, resource name and label; no tolerations;
  // three replicas over two nodes are spread; fractional requests as millicores and Mi.
  const Json& a100 = (*ws)[2].deployment;
  CHECK(a100["metadata"]["name"] == "dep-1-analyze-center-amd64-nvidia-a100");
  CHECK(a100["metadata"]["namespace"] == "vision");
  CHECK(a100["spec"]["replicas"] == 3);
  const Json& apod = a100["spec"]["template"]["spec"];
  CHECK_FALSE(apod.contains("tolerations"));
  CHECK(apod["nodeSelector"]["nvidia.com/gpu.product"] == "nvidia-a100");
  CHECK(apod["containers"][0]["image"] == "registry.gz.example/event-analytics:2.0");
  CHECK_FALSE(apod["containers"][0].contains("command"));
  CHECK(apod["containers"][0]["resources"]["requests"] ==
        Json{{"cpu", "500m"}, {"memory", "1536Mi"}, {"nvidia.com/mig-3g.40gb", "2"}});
  CHECK(apod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname");
  CHECK(apod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
            ["matchExpressions"][0]["values"] == Json{"gz-gpu-1", "gz-gpu-2"});
  CHECK(find_kind(*ws, 2, "Service")->at("metadata")["namespace"] == "vision");

  // A site the inventory does not have is an error, not a guess.
  auto none = render("dep-1", sample_template(), [](const std::string&) { return std::optional<SiteInfo>(); });
  CHECK_FALSE(none);
}

TEST_CASE("an instance on another model version than its component's renders in a Deployment of that version",
          "[drivers][kubernetes]") {
  auto lookup = sites({{"driver", "kubernetes"}}, {{"driver", "kubernetes"}});
  InstanceModels models = {{"dep-1-detect-1", {"yolov5s-city@8", "2026-12-04T10:00:00.000Z"}},
                           {"dep-1-detect-0", {"yolov5s-city@7", ""}},
                           {"dep-1-analyze-0", {"other@1", "2026-12-04T10:00:00.000Z"}}};
  auto ws = render("dep-1", sample_template(), lookup, models);
  REQUIRE(ws);
  REQUIRE(ws->size() == 4);
  // The group keeps its name, its other replica and its pod template but for nothing.
  auto plain = render("dep-1", sample_template(), lookup);
  REQUIRE(plain);
  CHECK((*ws)[0].deployment["metadata"]["name"] == "dep-1-detect-edge-sz-amd64-nvidia-t4");
  CHECK((*ws)[0].instances == std::vector<std::string>{"dep-1-detect-0"});
  CHECK((*ws)[0].deployment["spec"]["replicas"] == 1);
  CHECK((*ws)[0].deployment["spec"]["template"] == (*plain)[0].deployment["spec"]["template"]);
  // The canary: its own Deployment, its version in its environment, its own pods; the same Service.
  const Json& canary = (*ws)[1].deployment;
  CHECK(canary["metadata"]["name"] == "dep-1-detect-edge-sz-amd64-nvidia-t4-v8");
  CHECK((*ws)[1].instances == std::vector<std::string>{"dep-1-detect-1"});
  CHECK(canary["spec"]["replicas"] == 1);
  CHECK(canary["spec"]["template"]["spec"]["containers"][0]["env"][2] ==
        Json{{"name", "CPN_MODEL_VERSION"}, {"value", "yolov5s-city@8"}});
  CHECK(canary["spec"]["selector"]["matchLabels"]["cpn.io/workload"] == canary["metadata"]["name"]);
  CHECK((*ws)[1].service == (*ws)[0].service);
  // A component without a model has no versions to split by.
  CHECK((*ws)[3].deployment["metadata"]["name"] == "dep-1-analyze-center-amd64-nvidia-a100");
  CHECK((*ws)[3].deployment["spec"]["replicas"] == 3);
  // Back on the component's model, the latest to join is the group's last replica: the others keep theirs.
  models = {{"dep-1-detect-0", {"yolov5s-city@7", "2026-12-04T11:00:00.000Z"}}};
  ws = render("dep-1", sample_template(), lookup, models);
  REQUIRE(ws);
  CHECK((*ws)[0].instances == std::vector<std::string>{"dep-1-detect-1", "dep-1-detect-0"});

  // Over two nodes (analyze: gz-gpu-1 x2, gz-gpu-2 x1): the instance of gz-gpu-2 moving to another version
  // leaves its group's pod template as it was (both nodes, the spread), so no pod of it rolls; the
  // version's Deployment has the same pods but for the model it loads.
  Json tmpl = sample_template();
  tmpl["spec"]["components"][1]["model"] = {{"name", "events"}, {"version", "3"}};
  auto before = render("dep-1", tmpl, lookup);
  REQUIRE(before);
  models = {{"dep-1-analyze-2", {"events@4", "2026-12-04T12:00:00.000Z"}}};
  ws = render("dep-1", tmpl, lookup, models);
  REQUIRE(ws);
  REQUIRE(ws->size() == 4);
  const Json& group = (*ws)[2].deployment;
  CHECK(group["metadata"]["name"] == (*before)[2].deployment["metadata"]["name"]);
  CHECK(group["spec"]["replicas"] == 2);
  CHECK(group["spec"]["template"] == (*before)[2].deployment["spec"]["template"]);
  Json pods = (*ws)[3].deployment["spec"]["template"];
  CHECK((*ws)[3].instances == std::vector<std::string>{"dep-1-analyze-2"});
  CHECK(pods["spec"]["containers"][0]["env"][2]["value"] == "events@4");
  pods["spec"]["containers"][0]["env"][2]["value"] = "events@3";
  pods["metadata"]["labels"]["cpn.io/workload"] = group["metadata"]["name"];
  pods["spec"]["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]["cpn.io/workload"] = group["metadata"]["name"];
  CHECK(pods == group["spec"]["template"]);
}

TEST_CASE("names and extended resources are what Kubernetes accepts", "[drivers][kubernetes]") {
  CHECK(dns_label("Dep.1_x") == "dep-1-x");
  CHECK(dns_label("7eleven") == "c-7eleven");
  std::string longer(80, 'a');
  std::string label = dns_label(longer);
  CHECK(label.size() <= 63);
  CHECK(label != dns_label(longer + "b"));  // the hash keeps distinct names distinct
  // Model versions a label would make alike stay apart.
  std::set<std::string> names;
  for (const char* v : {"m@1.2", "m@1-2", "m@1_2", "m@V1-2", "m@1+2"}) names.insert(deployment_name("d", "c", "s", "x86_64", "", v));
  CHECK(names.size() == 5);
  CHECK(deployment_name("d", "c", "s", "x86_64", "", "m@2") == "d-c-s-amd64-v2");
  CHECK(kube_arch("x86_64") == "amd64");
  CHECK(kube_arch("aarch64") == "arm64");
  CHECK(kube_arch("riscv64") == "riscv64");
  ClusterSettings s;
  CHECK(extended_resource("nvidia-t4", s) == "nvidia.com/gpu");
  CHECK(extended_resource("ascend-910", s) == "huawei.com/Ascend910");
  CHECK(extended_resource("ascend-310p", s) == "huawei.com/Ascend310P");
  CHECK(extended_resource("xilinx-alveo-u50", s) == "xilinx.com/fpga");
  s.resources["xilinx-alveo-u50"] = "amd.com/xilinx_u50_gen3x16_xdma_base_5";
  CHECK(extended_resource("xilinx-alveo-u50", s) == "amd.com/xilinx_u50_gen3x16_xdma_base_5");
}

TEST_CASE("the API client speaks HTTPS with the bearer token and verifies the server against the CA file",
          "[drivers][kubernetes]") {
  std::string dir = test::make_temp_dir("kube-client");
  test::KubeApiServer server(dir, "s3cret-token");
  ClusterSettings s;
  s.endpoint = server.url();
  s.token_file = server.token_file();
  s.ca_file = server.ca_file();
  ApiClient api(s, std::chrono::milliseconds(3000));

  auto ws = render("dep-1", sample_template(), sites({{"driver", "kubernetes"}}, {{"driver", "kubernetes"}}));
  REQUIRE(ws);
  const Json& d = (*ws)[0].deployment;
  auto applied = api.apply(d);
  REQUIRE(applied);
  auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].method == "PATCH");
  CHECK(requests[0].target == "/apis/apps/v1/namespaces/default/deployments/dep-1-detect-edge-sz-amd64-nvidia-t4"
                              "?fieldManager=cpnd&force=true");
  CHECK(requests[0].content_type == "application/apply-patch+yaml");
  CHECK(requests[0].authorization == "Bearer s3cret-token");
  CHECK(Json::parse(requests[0].body) == d);
  // Applying the same object again changes nothing (server-side apply is idempotent).
  REQUIRE(api.apply(d));
  CHECK((*api.get(ApiClient::path_of(d)))->at("metadata")["generation"] == 1);
  REQUIRE(api.apply((*ws)[0].service));
  CHECK(server.requests().back().target == "/api/v1/namespaces/default/services/dep-1-detect-edge-sz"
                                           "?fieldManager=cpnd&force=true");
  // Four requests, one TLS connection: it is kept alive between them.
  CHECK(server.connections() == 1);
  CHECK(api.connections_opened() == 1);

  SECTION("GET of an absent object is nothing; DELETE asks for foreground propagation") {
    auto absent = api.get("/apis/apps/v1/namespaces/default/deployments/nope");
    REQUIRE(absent);
    CHECK_FALSE(absent->has_value());
    auto removing = api.remove(ApiClient::path_of(d));
    REQUIRE(removing);
    REQUIRE(removing->has_value());  // its dependents go first: the object says it is being deleted
    CHECK((*removing)->at("metadata").contains("deletionTimestamp"));
    CHECK(server.requests().back().method == "DELETE");
    CHECK(Json::parse(server.requests().back().body)["propagationPolicy"] == "Foreground");
    auto gone = api.remove("/apis/apps/v1/namespaces/default/deployments/nope");  // gone already: fine
    REQUIRE(gone);
    CHECK_FALSE(gone->has_value());
  }
  SECTION("a wrong token is refused, and the refusal says so") {
    test::write_file(dir + "/other-token", "wrong\n");
    ClusterSettings bad = s;
    bad.token_file = dir + "/other-token";
    auto r = ApiClient(bad, std::chrono::milliseconds(3000)).apply(d);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("HTTP 401"));
    CHECK(server.requests().back().authorization == "Bearer wrong");
  }
  SECTION("a server whose certificate the CA file does not vouch for is not talked to") {
    test::KubeApiServer other(test::make_temp_dir("kube-other"), "s3cret-token");
    ClusterSettings bad = s;
    bad.endpoint = other.url();  // s.ca_file is the first server's certificate
    auto r = ApiClient(bad, std::chrono::milliseconds(3000)).apply(d);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("TLS handshake"));
    CHECK(other.requests().empty());  // nothing, not even the token, reached it
  }
  SECTION("an endpoint that is not https, or a missing token file, is an error before any traffic") {
    ClusterSettings bad = s;
    bad.endpoint = "http://127.0.0.1:1";
    CHECK_THAT(ApiClient(bad, std::chrono::milliseconds(500)).apply(d).error().message, Catch::Contains("https://"));
    bad = s;
    bad.token_file = dir + "/missing";
    CHECK_THAT(ApiClient(bad, std::chrono::milliseconds(500)).apply(d).error().message, Catch::Contains("token file"));
  }
}

namespace {

// Polls until the condition holds (at most 10 s).
template <typename F>
bool eventually(F&& ok) {
  for (int i = 0; i < 1000; ++i) {
    if (ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return ok();
}

int gets_of(test::KubeApiServer& server, const std::string& path) {
  int n = 0;
  for (const auto& r : server.requests()) n += r.method == "GET" && r.target == path;
  return n;
}

const std::string kDetect = "/apis/apps/v1/namespaces/cpn/deployments/dep-1-detect-edge-sz-amd64-nvidia-t4";
const std::string kDetectService = "/api/v1/namespaces/cpn/services/dep-1-detect-edge-sz";

Json cluster_controller(test::KubeApiServer& server) {
  return {{"driver", "kubernetes"}, {"endpoint", server.url()}, {"namespace", "cpn"},
          {"token_file", server.token_file()}, {"ca_file", server.ca_file()}};
}

}  // namespace

TEST_CASE("the kubernetes driver applies, follows the rollout through its informer, reports a stuck one and deletes",
          "[drivers][kubernetes]") {
  std::string dir = test::make_temp_dir("kube-driver");
  test::KubeApiServer server(dir, "tok");
  Json controller = cluster_controller(server);
  Json tmpl = sample_template();
  auto driver = make_compute([&](const std::string& id) { return id == "dep-1" ? std::optional<Json>(tmpl) : std::nullopt; },
                             sites(controller, controller), std::chrono::milliseconds(3000));
  CHECK(driver->name() == "kubernetes");
  Json first = {{"id", "dep-1-detect-0"}, {"deployment", "dep-1"}, {"component", "detect"}, {"site", "edge-sz"}};
  Json second = first;
  second["id"] = "dep-1-detect-1";

  CHECK(driver->observe(first).phase == Phase::absent);  // starts the site's informer
  // It lists the namespace's Deployments labelled as cpnd's, then watches them.
  REQUIRE(eventually([&] { return driver->condition("edge-sz").value("/watch/state"_json_pointer, "") == "watching"; }));
  auto reads = server.collection_reads();
  REQUIRE(reads.size() >= 2);
  CHECK(reads[0].target == "/apis/apps/v1/namespaces/cpn/deployments?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dcpnd");
  CHECK_THAT(reads[1].target, Catch::Contains("watch=1") && Catch::Contains("resourceVersion="));
  CHECK(driver->condition("edge-sz")["status"] == true);

  server.pause_controller(true);
  server.clear_requests();
  REQUIRE(driver->start(first));
  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].target == kDetectService + "?fieldManager=cpnd&force=true");
  CHECK(requests[1].target == kDetect + "?fieldManager=cpnd&force=true");
  // Applied, not yet observed by the cluster's controller: starting, and the driver says what it waits for.
  auto seen = driver->observe(first);
  CHECK(seen.phase == Phase::starting);
  CHECK_THAT(seen.reason, Catch::Contains("to be observed"));
  // Observed, replicas not available yet: kubectl's words.
  server.set_rollout(std::chrono::milliseconds(0), std::chrono::hours(1));
  server.pause_controller(false);
  CHECK(eventually([&] { return driver->observe(first).reason.find("2 of 2 replicas updated, 0 available") != std::string::npos; }));
  server.set_rollout(std::chrono::milliseconds(0), std::chrono::milliseconds(0));
  CHECK(eventually([&] { return driver->observe(first).phase == Phase::running; }));
  CHECK(driver->observe(second).phase == Phase::running);
  // All of it came through the watch: not one GET of the Deployment.
  CHECK(gets_of(server, kDetect) == 0);
  // The second replica's start applies the same objects: nothing changes.
  REQUIRE(driver->start(second));
  CHECK(server.object(kDetect)->at("metadata")["generation"] == 1);
  CHECK(server.paths().size() == 2);
  // One connection for every request so far besides the informer's own (a LIST and a WATCH).
  CHECK(server.connections() <= 3);

  SECTION("a new spec is not running until the controller has observed it, whatever its stale status says") {
    server.pause_controller(true);
    tmpl["spec"]["components"][0]["image"] = "city-detect:3.2";
    REQUIRE(driver->start(first));
    CHECK(server.object(kDetect)->at("metadata")["generation"] == 2);
    CHECK(server.object(kDetect)->at("status")["availableReplicas"] == 2);  // the status of generation 1
    auto waiting = driver->observe(first);
    CHECK(waiting.phase == Phase::starting);
    CHECK_THAT(waiting.reason, Catch::Contains("to be observed"));
    server.pause_controller(false);
    CHECK(eventually([&] { return driver->observe(first).phase == Phase::running; }));
  }
  SECTION("stop deletes the group; it is stopped once the cluster has removed it") {
    server.set_delete_delay(std::chrono::milliseconds(300));
    server.clear_requests();
    REQUIRE(driver->stop(first));
    requests = server.requests();
    REQUIRE(requests.size() == 2);
    CHECK((requests[0].method == "DELETE" && requests[0].target == kDetect));
    CHECK((requests[1].method == "DELETE" && requests[1].target == kDetectService));
    CHECK(driver->observe(first).phase == Phase::starting);  // being deleted
    CHECK(eventually([&] { return driver->observe(first).phase == Phase::absent; }));
    CHECK(server.paths().empty());
    CHECK(gets_of(server, kDetect) == 0);
  }
  SECTION("a rollout past its progress deadline fails the instance with the reason; clearing it keeps the group") {
    server.fail_rollout("dep-1-detect-edge-sz-amd64-nvidia-t4");
    REQUIRE(eventually([&] { return driver->observe(first).phase == Phase::failed; }));
    CHECK_THAT(driver->observe(first).reason, Catch::Contains("exceeded its progress deadline"));
    // The orchestrator clears a failed instance it still wants running: Kubernetes replaces pods
    // itself, so nothing is deleted under the replicas that run.
    server.clear_requests();
    Json wanted = first;
    wanted["desired"] = "running";
    REQUIRE(driver->stop(wanted));
    CHECK(server.requests().empty());
    CHECK(server.paths().size() == 2);
  }
  SECTION("a watch that ends is watched again from where it was; a compacted history is listed again") {
    long watches = driver->condition("edge-sz")["watch"]["watches"];
    server.end_watches();
    REQUIRE(eventually([&] { return driver->condition("edge-sz")["watch"]["watches"].get<long>() > watches; }));
    CHECK(driver->condition("edge-sz")["watch"]["lists"] == 1);
    // A change made while no watch was open still arrives.
    server.compact();
    server.end_watches();
    Json other = server.object(kDetect).value();
    other["metadata"]["name"] = "dep-1-analyze-center-amd64-nvidia-a100";
    server.put(other);
    REQUIRE(eventually([&] { return driver->condition("edge-sz")["watch"]["lists"].get<long>() >= 2; }));
    Json analyze = {{"id", "dep-1-analyze-0"}, {"deployment", "dep-1"}, {"component", "analyze"}, {"site", "center"}};
    CHECK(eventually([&] { return driver->observe(analyze).phase == Phase::running; }));
    CHECK(gets_of(server, "/apis/apps/v1/namespaces/cpn/deployments/dep-1-analyze-center-amd64-nvidia-a100") == 0);
  }
  SECTION("an instance of a deployment the driver cannot find is failed, not guessed") {
    Json stray = first;
    stray["deployment"] = "dep-9";
    CHECK(driver->observe(stray).phase == Phase::failed);
    CHECK(driver->stop(stray));  // nothing rendered, nothing to stop
  }
}

TEST_CASE("where cpnd may not list, the driver reads each group: what the cluster last said holds, one read a group",
          "[drivers][kubernetes]") {
  test::KubeApiServer server(test::make_temp_dir("kube-nolist"), "tok");
  server.forbid_lists(true);
  Json controller = cluster_controller(server);
  Json tmpl = sample_template();
  auto driver = make_compute([&](const std::string& id) { return id == "dep-1" ? std::optional<Json>(tmpl) : std::nullopt; },
                             sites(controller, controller), std::chrono::milliseconds(3000));
  Json first = {{"id", "dep-1-detect-0"}, {"deployment", "dep-1"}, {"component", "detect"}, {"site", "edge-sz"}};
  Json second = first;
  second["id"] = "dep-1-detect-1";
  REQUIRE(driver->start(first));
  REQUIRE(eventually([&] { return driver->observe(first).phase == Phase::running; }));
  CHECK(gets_of(server, kDetect) >= 1);
  // The site says why its informer does not run.
  REQUIRE(eventually([&] { return driver->condition("edge-sz").value("/watch/state"_json_pointer, "") == "failing"; }));
  CHECK_THAT(driver->condition("edge-sz")["watch"].value("reason", ""), Catch::Contains("403"));

  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // past the driver's read cache
  server.fail_reads(true);
  server.clear_requests();
  CHECK(driver->observe(first).phase == Phase::running);  // last known
  CHECK(driver->observe(second).phase == Phase::running);
  CHECK(server.requests().size() == 1);
  // A group never read before: starting, with the reason, and again one request for both replicas.
  Json npu = first;
  npu["id"] = "dep-1-detect-2";
  tmpl["spec"]["components"][0]["placements"][1]["instances"] = 2;  // dep-1-detect-2 and -3 on the Ascend node
  Json npu2 = npu;
  npu2["id"] = "dep-1-detect-3";
  server.clear_requests();
  auto seen = driver->observe(npu);
  CHECK(seen.phase == Phase::starting);
  CHECK_THAT(seen.reason, Catch::Contains("503"));
  CHECK(driver->observe(npu2).phase == Phase::starting);
  CHECK(server.requests().size() == 1);
}

TEST_CASE("the orphan sweep removes the objects labelled as cpnd's that no deployment renders, and nothing else",
          "[drivers][kubernetes]") {
  test::KubeApiServer server(test::make_temp_dir("kube-orphans"), "tok");
  Json controller = cluster_controller(server);
  Json tmpl = sample_template();
  auto driver = make_compute([&](const std::string& id) { return id == "dep-1" ? std::optional<Json>(tmpl) : std::nullopt; },
                             sites(controller, controller), std::chrono::milliseconds(3000),
                             [&] { return std::vector<Json>{controller, controller}; });
  Json first = {{"id", "dep-1-detect-0"}, {"deployment", "dep-1"}, {"component", "detect"}, {"site", "edge-sz"}};
  REQUIRE(driver->start(first));
  auto ws = render("dep-1", tmpl, sites(controller, controller));
  REQUIRE(ws);
  CHECK((*ws)[0].deployment["metadata"]["annotations"]["cpn.io/deployment"] == "dep-1");
  // A deployment cpnd no longer has left its objects behind (a crash, an older database) ...
  Json orphan = (*ws)[0].deployment, orphan_service = (*ws)[0].service;
  for (Json* o : {&orphan, &orphan_service}) {
    (*o)["metadata"]["name"] = "dep-0-detect-edge-sz";
    (*o)["metadata"]["annotations"]["cpn.io/deployment"] = "dep-0";
    server.put(*o);
  }
  // ... dep-1 has a variant it no longer renders, and someone else's Deployment carries no label of cpnd's.
  Json retired = (*ws)[0].deployment;
  retired["metadata"]["name"] = "dep-1-detect-edge-sz-arm64-old";
  server.put(retired);
  Json theirs = {{"apiVersion", "apps/v1"}, {"kind", "Deployment"},
                 {"metadata", {{"name", "nginx"}, {"namespace", "cpn"}, {"labels", {{"app", "nginx"}}}}},
                 {"spec", {{"replicas", 1}}}};
  server.put(theirs);
  server.set_delete_delay(std::chrono::milliseconds(0));

  auto removed = driver->remove_orphans();
  std::sort(removed.begin(), removed.end());
  CHECK(removed == std::vector<std::string>{"Deployment cpn/dep-0-detect-edge-sz", "Deployment cpn/dep-1-detect-edge-sz-arm64-old",
                                            "Service cpn/dep-0-detect-edge-sz"});
  auto paths = server.paths();
  std::sort(paths.begin(), paths.end());
  CHECK(paths == std::vector<std::string>{"/api/v1/namespaces/cpn/services/dep-1-detect-edge-sz",
                                          "/apis/apps/v1/namespaces/cpn/deployments/dep-1-detect-edge-sz-amd64-nvidia-t4",
                                          "/apis/apps/v1/namespaces/cpn/deployments/nginx"});
  CHECK(driver->remove_orphans().empty());  // nothing more to do
  // Once dep-1 is gone too, its objects are orphans as well.
  auto gone = make_compute([](const std::string&) { return std::optional<Json>(); }, sites(controller, controller),
                           std::chrono::milliseconds(3000), [&] { return std::vector<Json>{controller}; });
  CHECK(gone->remove_orphans().size() == 2);
  CHECK(server.paths() == std::vector<std::string>{"/apis/apps/v1/namespaces/cpn/deployments/nginx"});
}
