// The kubernetes driver through the real daemon: a site whose controller is
// a cluster (a local HTTPS API server here) runs a submitted deployment as
// Deployments and Services; /manifests shows exactly what was applied; a
// kill -9 of cpnd leaves no duplicate; DELETE removes everything from the
// cluster; a rollout stuck past its deadline rolls the deployment back.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <thread>

#include "support/daemon.hpp"
#include "support/kube_apiserver.hpp"
#include "support/templates.hpp"

using namespace cpn;

namespace {

// Failed steps are retried twice, 20 ms apart; the demo's twin sites start instances in 2 s.
test::DaemonOptions retrying_on_cluster() {
  return test::fast_demo({{"CPND_RETRY_BACKOFF_MS", "20"}, {"CPND_MAX_ATTEMPTS", "2"}, {"CPND_SIM_START_DELAY_MS", "2000"}});
}

void add_accelerator_cluster(client::HttpClient& op, test::KubeApiServer& cluster) {
  Json controller = {{"driver", "kubernetes"}, {"endpoint", cluster.url()}, {"namespace", "vision"},
                     {"token_file", cluster.token_file()}, {"ca_file", cluster.ca_file()}};
  REQUIRE(op.post("/v1/sites", {{"id", "k8s-sz"}, {"tier", "edge"}, {"city", "Shenzhen"}, {"controller", controller}})
              .status == 201);
  REQUIRE(op.post("/v1/nodes", {{"id", "k8s-t4-1"}, {"site", "k8s-sz"}, {"arch", "x86_64"}, {"cpu", 32}, {"memory", 128},
                                {"accelerators", {{{"type", "gpu"}, {"model", "nvidia-t4"}, {"count", 4}}}}})
              .status == 201);
  REQUIRE(op.post("/v1/nodes", {{"id", "k8s-arm-1"}, {"site", "k8s-sz"}, {"arch", "aarch64"}, {"cpu", 64}, {"memory", 128},
                                {"accelerators", {{{"type", "npu"}, {"model", "ascend-310"}, {"count", 4}}}}})
              .status == 201);
}

Json accelerated_template(const std::string& name) {
  auto placement = [](const char* node, const char* arch, const char* acc, int n) {
    return Json{{"site", "k8s-sz"}, {"node", node}, {"arch", arch}, {"accelerator", acc}, {"instances", n},
                {"requests", {{"cpu", 4}, {"memory", 8}, {"accelerators", 1}}}};
  };
  return test::deployment_template(name, {{{"name", "detect"},
                                           {"tier", "edge"},
                                           {"image", "city-detect:3.1"},
                                           {"placements", {placement("k8s-t4-1", "x86_64", "nvidia-t4", 2),
                                                           placement("k8s-arm-1", "aarch64", "ascend-310", 1)}}}});
}

}  // namespace

TEST_CASE("on a kubernetes site a deployment runs as Deployments and Services applied to the cluster",
          "[api][kubernetes]") {
  test::KubeApiServer cluster(test::make_temp_dir("kube-e2e"), "cluster-token");
  test::Daemon d(retrying_on_cluster());
  auto op = d.as("operator");
  add_accelerator_cluster(op, cluster);
  Json before = op.get("/v1/nodes/k8s-t4-1").json()["allocated"];

  auto created = op.post("/v1/deployments", accelerated_template("cam-detect"));
  REQUIRE(created.status == 201);
  const std::string id = created.json()["id"], path = "/v1/deployments/" + id;
  REQUIRE(test::wait_state(op, path, "running") == "running");
  Json instances = op.get(path + "/instances").json()["items"];
  REQUIRE(instances.size() == 3);
  for (const auto& i : instances) CHECK(i["driver"] == "kubernetes");

  // What /manifests shows is exactly what the cluster holds: two Deployments (one per variant) and one Service.
  Json list = op.get(path + "/manifests?driver=kubernetes").json();
  CHECK(list["kind"] == "List");
  REQUIRE(list["items"].size() == 4);  // the Service once per variant, as applied
  std::set<std::string> applied;
  for (const auto& m : list["items"]) {
    std::string path = m["kind"] == "Deployment"
                           ? "/apis/apps/v1/namespaces/vision/deployments/" + m["metadata"]["name"].get<std::string>()
                           : "/api/v1/namespaces/vision/services/" + m["metadata"]["name"].get<std::string>();
    auto stored = cluster.object(path);
    REQUIRE(stored);
    CHECK(stored->at("spec") == m["spec"]);
    applied.insert(path);
  }
  CHECK(applied.size() == 3);
  CHECK(cluster.paths().size() == 3);
  for (const auto& r : cluster.requests()) CHECK(r.authorization == "Bearer cluster-token");
  auto yaml = op.request("GET", path + "/manifests", "", {{"Accept", "application/yaml"}});
  CHECK(yaml.header("content-type").rfind("application/yaml", 0) == 0);
  CHECK_THAT(yaml.body, Catch::Contains("kind: List") && Catch::Contains("nvidia.com/gpu"));
  CHECK(op.get(path + "/manifests?site=elsewhere").json()["items"].empty());

  // What cpnd reads of the Deployments comes from its informer (a LIST, then a WATCH), not a GET a pass.
  Json site = op.get("/v1/sites/k8s-sz").json();
  REQUIRE(site["conditions"].size() == 1);
  CHECK(site["conditions"][0]["status"] == true);
  CHECK(site["conditions"][0].value("/watch/state"_json_pointer, "") == "watching");
  auto deployment_gets = [&] {
    int n = 0;
    for (const auto& r : cluster.requests()) n += r.method == "GET" && r.target.find("/deployments/") != std::string::npos;
    return n;
  };
  int gets = deployment_gets();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // ten passes
  CHECK(deployment_gets() == gets);

  // A deployment this cpnd does not know left a Deployment labelled as cpnd's behind: the sweep removes it.
  Json orphan = cluster.object(cluster.paths()[0]).value();
  if (orphan["kind"] != "Deployment") orphan = cluster.object(cluster.paths()[1]).value();
  orphan["metadata"]["name"] = "dep-gone-detect";
  orphan["metadata"]["annotations"]["cpn.io/deployment"] = "dep-gone";
  cluster.put(orphan);
  const std::string orphan_path = "/apis/apps/v1/namespaces/vision/deployments/dep-gone-detect";
  REQUIRE(cluster.object(orphan_path));

  // cpnd dies and comes back: the objects are applied again, not duplicated, and nothing changes.
  Json generations = Json::object();
  for (const auto& p : cluster.paths())
    if (p != orphan_path) generations[p] = cluster.object(p)->at("metadata")["generation"];
  d.kill9();
  d.start();
  op = d.as("operator");
  for (int i = 0; i < 500 && cluster.object(orphan_path); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK_FALSE(cluster.object(orphan_path));
  // The object goes when the DELETE arrives; cpnd counts it when the answer comes back.
  auto orphans_counted = [&] {
    return d.admin().get("/metrics").body.find("cpnd_orphans_stopped_total 1") != std::string::npos;
  };
  for (int i = 0; i < 200 && !orphans_counted(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(orphans_counted());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(op.get(path).json()["state"] == "running");
  CHECK(cluster.paths().size() == 3);
  for (const auto& p : cluster.paths()) CHECK(cluster.object(p)->at("metadata")["generation"] == generations[p]);

  // Scaling out raises the replicas of the groups that gain instances; scaling in below a variant's
  // share deletes that variant's Deployment, and the Service stays for the rest.
  const std::string t4 = "/apis/apps/v1/namespaces/vision/deployments/" + id + "-detect-k8s-sz-amd64-nvidia-t4";
  const std::string npu = "/apis/apps/v1/namespaces/vision/deployments/" + id + "-detect-k8s-sz-arm64-ascend-310";
  REQUIRE(op.post(path + "/scale", {{"component", "detect"}, {"instances", 5}}).status == 202);
  REQUIRE(test::wait_state(op, path, "running") == "running");
  REQUIRE(cluster.object(t4));
  REQUIRE(cluster.object(npu));
  CHECK(cluster.object(t4)->at("spec")["replicas"].get<int>() + cluster.object(npu)->at("spec")["replicas"].get<int>() == 5);
  REQUIRE(op.post(path + "/scale", {{"component", "detect"}, {"instances", 2}}).status == 202);
  REQUIRE(test::wait_state(op, path, "running") == "running");
  REQUIRE(cluster.object(t4));
  CHECK(cluster.object(t4)->at("spec")["replicas"] == 2);
  CHECK_FALSE(cluster.object(npu));
  CHECK(cluster.object("/api/v1/namespaces/vision/services/" + id + "-detect-k8s-sz"));
  CHECK(op.get(path + "/instances").json()["items"].size() == 2);

  // DELETE: foreground deletion in the cluster, then the deployment is gone and its capacity is back.
  REQUIRE(op.del(path).status == 202);
  for (int i = 0; i < 500 && op.get(path).status != 404; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(op.get(path).status == 404);
  CHECK(cluster.paths().empty());
  int deletes = 0;
  for (const auto& r : cluster.requests()) deletes += r.method == "DELETE";
  CHECK(deletes >= 2);
  CHECK(op.get("/v1/nodes/k8s-t4-1").json()["allocated"] == before);
}

TEST_CASE("a rollout stuck past its progress deadline rolls the deployment back and cleans the cluster",
          "[api][kubernetes]") {
  test::KubeApiServer cluster(test::make_temp_dir("kube-stuck"), "cluster-token");
  cluster.fail_rollout("-detect-k8s-sz-arm64-ascend-310");
  test::Daemon d(retrying_on_cluster());
  auto op = d.as("operator");
  add_accelerator_cluster(op, cluster);
  auto created = op.post("/v1/deployments", accelerated_template("stuck"));
  REQUIRE(created.status == 201);
  const std::string path = created.header("location");
  REQUIRE(test::wait_state(op, path, "failed") == "failed");
  Json dep = op.get(path).json();
  CHECK_THAT(dep.value("reason", ""), Catch::Contains("exceeded its progress deadline"));
  for (int i = 0; i < 100 && !cluster.paths().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(cluster.paths().empty());
  CHECK(op.get("/v1/nodes/k8s-arm-1").json()["allocated"].value("cpu", 0.0) == 0.0);
}

TEST_CASE("a kubernetes controller without an endpoint is refused with its pointer", "[api][kubernetes]") {
  test::Daemon d({.dev = true});
  auto op = d.as("operator");
  auto r = op.post("/v1/sites", {{"id", "k8s-x"}, {"tier", "edge"}, {"city", "Shenzhen"}, {"controller", {{"driver", "kubernetes"}}}});
  CHECK(r.status == 422);
  CHECK_THAT(r.body, Catch::Contains("/controller"));
  CHECK(op.get("/v1/sites/k8s-x").status == 404);
  r = op.post("/v1/sites", {{"id", "k8s-x"}, {"tier", "edge"}, {"city", "Shenzhen"},
                            {"controller", {{"driver", "kubernetes"}, {"endpoint", "http://10.0.0.1:6443"}}}});
  CHECK(r.status == 422);
  CHECK_THAT(r.body, Catch::Contains("/controller/endpoint"));
}

namespace {

// Three instances of one group, loading det@1.
Json model_template() {
  Json tmpl = accelerated_template("canary");
  Json& comp = tmpl["spec"]["components"][0];
  comp["model"] = {{"name", "det"}, {"version", "1"}};
  comp["placements"] = Json::array({comp["placements"][0]});
  comp["placements"][0]["instances"] = 3;
  return tmpl;
}

std::map<std::string, Json> instances_by_id(client::HttpClient& op, const std::string& path) {
  std::map<std::string, Json> out;
  Json items = op.get(path + "/instances").json()["items"];
  for (const auto& i : items) out[i["id"]] = i;
  return out;
}

std::string env_of(const Json& deployment, const std::string& name) {
  for (const auto& e : deployment["spec"]["template"]["spec"]["containers"][0]["env"])
    if (e["name"] == name) return e.value("value", "");
  return "";
}

}  // namespace

TEST_CASE("on kubernetes one instance updated to another model runs in a Deployment of its version, and no other pod rolls",
          "[api][kubernetes]") {
  test::KubeApiServer cluster(test::make_temp_dir("kube-canary"), "cluster-token");
  test::Daemon d(retrying_on_cluster());
  auto op = d.as("operator");
  add_accelerator_cluster(op, cluster);
  const std::string path = test::create_deployment(op, model_template());
  const std::string id = path.substr(path.rfind('/') + 1);
  REQUIRE(test::wait_state(op, path, "running") == "running");
  const std::string ns = "/apis/apps/v1/namespaces/vision/deployments/";
  const std::string group = ns + id + "-detect-k8s-sz-amd64-nvidia-t4", canary_group = group + "-v2";
  REQUIRE(cluster.object(group));
  Json pods_before = cluster.object(group)->at("spec")["template"];
  CHECK(env_of(*cluster.object(group), "CPN_MODEL_VERSION") == "det@1");
  auto before = instances_by_id(op, path);
  REQUIRE(before.size() == 3);
  for (const auto& [iid, i] : before) CHECK(i["running_model"] == "det@1");  // read from the Deployment
  const std::string canary = before.begin()->first;

  auto r = op.post(path + "/instances/" + canary + "/update", {{"version", "2"}});
  REQUIRE(r.status == 202);
  REQUIRE(test::wait_state(op, path, "running") == "running");
  auto after = instances_by_id(op, path);
  CHECK(after[canary]["running_model"] == "det@2");
  CHECK(after[canary]["state"] == "running");
  for (const auto& [iid, i] : before) {
    if (iid == canary) continue;
    // The others' records never moved: no restart, not even a "starting" while their group scaled down.
    CHECK(after[iid]["history"] == i["history"]);
    CHECK(after[iid]["state"] == "running");
    CHECK(after[iid]["running_model"] == "det@1");
  }
  // The group lost a replica and kept its pod template (Kubernetes rolls no pod for that); the canary has its own.
  REQUIRE(cluster.object(group));
  CHECK(cluster.object(group)->at("spec")["replicas"] == 2);
  CHECK(cluster.object(group)->at("spec")["template"] == pods_before);
  REQUIRE(cluster.object(canary_group));
  CHECK(cluster.object(canary_group)->at("spec")["replicas"] == 1);
  CHECK(env_of(*cluster.object(canary_group), "CPN_MODEL_VERSION") == "det@2");
  // /manifests still shows exactly what the cluster holds.
  int deployments = 0;
  Json manifests = op.get(path + "/manifests?driver=kubernetes").json()["items"];
  for (const auto& m : manifests) {
    if (m["kind"] != "Deployment") continue;
    ++deployments;
    auto stored = cluster.object(ns + m["metadata"]["name"].get<std::string>());
    REQUIRE(stored);
    CHECK(stored->at("spec") == m["spec"]);
  }
  CHECK(deployments == 2);
  // A replacement would change the group's pod template (its nodes): refused, nothing changes.
  auto other = std::next(before.begin())->first;
  CHECK(op.post(path + "/instances/" + other + "/replace", Json::object()).status == 409);

  // Back to det@1: the canary's Deployment goes, the group has its three replicas again, same pods.
  REQUIRE(op.post(path + "/instances/" + canary + "/update", {{"version", "1"}}).status == 202);
  REQUIRE(test::wait_state(op, path, "running") == "running");
  for (int i = 0; i < 200 && cluster.object(canary_group); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK_FALSE(cluster.object(canary_group));
  CHECK(cluster.object(group)->at("spec")["replicas"] == 3);
  CHECK(cluster.object(group)->at("spec")["template"] == pods_before);
  CHECK(instances_by_id(op, path)[canary]["running_model"] == "det@1");
  // Scaling out now: the new instance is the group's last replica (it joined last), so none of the
  // three is taken for it or restarted.
  auto settled = instances_by_id(op, path);
  REQUIRE(op.post(path + "/scale", {{"component", "detect"}, {"instances", 4}}).status == 202);
  REQUIRE(test::wait_state(op, path, "running") == "running");
  CHECK(cluster.object(group)->at("spec")["replicas"] == 4);
  auto scaled = instances_by_id(op, path);
  REQUIRE(scaled.size() == 4);
  for (const auto& [iid, i] : settled) CHECK(scaled[iid]["history"] == i["history"]);
  // The orphan sweep finds nothing of cpnd's unwanted; DELETE removes it all.
  REQUIRE(op.del(path).status == 202);
  for (int i = 0; i < 500 && op.get(path).status != 404; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(cluster.paths().empty());
}
