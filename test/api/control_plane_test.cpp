// The control plane never waits on its controllers, through the real
// daemon: a hung Kubernetes API server, a teardown that fails forever and a
// workload that ignores SIGTERM each delay only their own deployment, never
// the API and never another deployment.
#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/daemon.hpp"
#include "support/kube_apiserver.hpp"
#include "support/templates.hpp"

using namespace cpn;

namespace {

// Failed steps are retried twice, 20 ms apart.
test::DaemonOptions retrying(std::map<std::string, std::string> more = {}) {
  more.insert({{"CPND_RETRY_BACKOFF_MS", "20"}, {"CPND_MAX_ATTEMPTS", "2"}});
  return test::fast_demo(more);
}

void add_one_node_cluster(client::HttpClient& op, test::KubeApiServer& cluster) {
  Json controller = {{"driver", "kubernetes"}, {"endpoint", cluster.url()}, {"namespace", "vision"},
                     {"token_file", cluster.token_file()}, {"ca_file", cluster.ca_file()}};
  REQUIRE(op.post("/v1/sites", {{"id", "k8s-sz"}, {"tier", "edge"}, {"city", "Shenzhen"}, {"controller", controller}})
              .status == 201);
  REQUIRE(op.post("/v1/nodes", {{"id", "k8s-1"}, {"site", "k8s-sz"}, {"arch", "x86_64"}, {"cpu", 64}, {"memory", 256}})
              .status == 201);
}

// `groups` components of one instance each on the cluster: one Deployment each.
Json one_instance_groups(const std::string& name, int groups) {
  Json components = Json::array();
  for (int i = 0; i < groups; ++i)
    components.push_back({{"name", "c" + std::to_string(i)},
                          {"tier", "edge"},
                          {"image", "city-detect:3.1"},
                          {"placements",
                           {{{"site", "k8s-sz"}, {"node", "k8s-1"}, {"arch", "x86_64"}, {"instances", 1},
                             {"requests", {{"cpu", 1}, {"memory", 1}}}}}}});
  return test::deployment_template(name, components);
}

// The slowest answer (ms) of `ask` over `seconds`, asked every `every` ms; a non-2xx answer counts as forever.
template <typename Ask>
double slowest(double seconds, Ask ask, int every = 10) {
  double worst = 0;
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    auto start = std::chrono::steady_clock::now();
    int status = ask();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    worst = std::max(worst, status / 100 == 2 ? ms : 1e9);
    std::this_thread::sleep_for(std::chrono::milliseconds(every));
  }
  return worst;
}

void wait_gone(client::HttpClient& c, const std::string& path) {
  for (int i = 0; i < 1000 && c.get(path).status != 404; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

// A site "lab" of local processes with one node, and an image "NAME:1"
// whose command (from the registry) is the detector with these arguments.
void add_process_site(test::Daemon& d, client::HttpClient& op, const std::string& image,
                      const std::vector<std::string>& detector_args) {
  REQUIRE(op.post("/v1/sites", {{"id", "lab"}, {"tier", "edge"}, {"city", "Shenzhen"}, {"controller", {{"driver", "process"}}}})
              .status == 201);
  REQUIRE(op.post("/v1/nodes", {{"id", "lab-1"}, {"site", "lab"}, {"arch", "x86_64"}, {"cpu", 8}, {"memory", 16}}).status == 201);
  Json command = Json::array({DETECTOR_BINARY});
  for (const auto& a : detector_args) command.push_back(a);
  Json variant = {{"platform", "linux/amd64"}, {"digest", "sha256:" + std::string(64, 'a')}, {"size", 1}, {"command", command}};
  REQUIRE(d.as("designer").post("/v1/images", {{"name", image}, {"version", "1"}, {"variants", {variant}}}).status == 201);
}

// Two instances of IMAGE:1 on the lab site.
Json lab_template(const std::string& name, const std::string& image) {
  return test::deployment_template(name, {{{"name", "detect"},
                                           {"tier", "edge"},
                                           {"image", image + ":1"},
                                           {"placements",
                                            {{{"site", "lab"}, {"node", "lab-1"}, {"arch", "x86_64"}, {"instances", 2},
                                              {"requests", {{"cpu", 1}, {"memory", 1}}}}}}}});
}

// Workloads outlive cpnd by design: whatever a test does, these do not outlive it.
struct Reap {
  std::vector<pid_t> pids;
  ~Reap() {
    for (pid_t p : pids) ::kill(p, SIGKILL);
  }
};

// The pids of a deployment's process instances, from their pid files.
std::vector<pid_t> pids_of(test::Daemon& d, client::HttpClient& op, const std::string& deployment) {
  std::vector<pid_t> out;
  Json instances = op.get(deployment + "/instances").json()["items"];  // held: a loop over a temporary's member dangles
  for (const auto& i : instances)
    out.push_back(std::stoi(test::read_file(d.data() + "/run/" + i["id"].get<std::string>() + ".pid")));
  return out;
}

// Alive and not a zombie (orphans of a killed cpnd wait for whatever reaps orphans here).
bool alive(pid_t p) {
  std::ifstream stat("/proc/" + std::to_string(p) + "/stat");
  std::string pid_field, comm, state;
  return (stat >> pid_field >> comm >> state) && state != "Z" && state != "X";
}

}  // namespace

TEST_CASE("a hung Kubernetes API server holds neither the API nor a sim deployment beside it", "[api][control-plane]") {
  test::KubeApiServer cluster(test::make_temp_dir("kube-hung"), "cluster-token");
  // Each call to the cluster waits out its 1.5 s deadline.
  test::Daemon d(retrying({{"CPND_KUBE_TIMEOUT_MS", "1500"}, {"CPND_PROCESS_ALLOW_ROOT", "true"}}));
  auto op = d.as("operator");
  add_one_node_cluster(op, cluster);
  // A site of local processes beside it: its calls share the workers with the hung cluster's.
  add_process_site(d, op, "detector", {"--fps", "5"});
  cluster.hang(true);
  std::string stuck = test::create_deployment(op, one_instance_groups("stuck", 20));
  // Twenty groups provisioning on the hung cluster (each call a 1.5 s timeout; inline, a pass would take 30 s).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(op.get(stuck).json()["state"] == "provisioning");

  auto customer = d.as("customer");
  auto anonymous = d.anonymous();
  double livez = 0, orders = 0;
  std::string sim;
  std::thread beside([&] {
    auto op2 = d.as("operator");
    sim = test::create_deployment(op2, test::deployment_template("plates", {test::plate_reader()}));
  });
  livez = slowest(2.0, [&] { return anonymous.get("/livez").status; });
  orders = slowest(2.0, [&] {
    return customer.post("/v1/orders", {{"offering", "city-video-detection"},
                                        {"parameters", {{"streams", 8}, {"location", "cams-sz-futian"}}}})
        .status;
  }, 150);  // within a customer's rate limit
  beside.join();
  INFO("slowest /livez " << livez << " ms, slowest POST /v1/orders " << orders << " ms");
  CHECK(livez < 750);   // half a cluster deadline: never behind one
  CHECK(orders < 750);
  CHECK(test::wait_state(op, sim, "running") == "running");
  CHECK(op.get(stuck).json()["state"] != "running");
  // A process deployment started now runs too: the hung site holds at most half the workers.
  std::string local = test::create_deployment(op, lab_template("local", "detector"));
  CHECK(test::wait_state(op, local, "running") == "running");
  REQUIRE(op.del(local).status == 202);
  wait_gone(op, local);
  // The site says why: its API server is out of reach (calls to it fail fast meanwhile, with a backoff).
  Json site = op.get("/v1/sites/k8s-sz").json();
  REQUIRE(site["conditions"].size() == 1);
  CHECK(site["conditions"][0]["type"] == "ControllerReachable");
  CHECK(site["conditions"][0]["status"] == false);
  CHECK_THAT(site["conditions"][0].value("reason", ""), Catch::Contains("Kubernetes API") && Catch::Contains("timeout"));
  // It answers again: the site is reachable again and the deployment goes on.
  cluster.hang(false);
  for (int i = 0; i < 300 && !op.get("/v1/sites/k8s-sz").json()["conditions"][0]["status"].get<bool>(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(op.get("/v1/sites/k8s-sz").json()["conditions"][0]["status"] == true);
  // A site read back and written again keeps its conditions out of its spec.
  Json put = op.get("/v1/sites/k8s-sz").json();
  CHECK(op.request("PUT", "/v1/sites/k8s-sz", put.dump(), {{"Content-Type", "application/json"}}).status == 200);
}

TEST_CASE("a deployment whose teardown fails forever does not stop another from completing", "[api][control-plane]") {
  test::KubeApiServer cluster(test::make_temp_dir("kube-undeletable"), "cluster-token");
  test::Daemon d(retrying());
  auto op = d.as("operator");
  add_one_node_cluster(op, cluster);
  // Teardowns that will fail forever...
  cluster.fail_deletes(true);
  std::vector<std::string> stuck;
  for (int i = 0; i < 3; ++i) {
    stuck.push_back(test::create_deployment(op, one_instance_groups("undeletable-" + std::to_string(i), 1)));
    REQUIRE(test::wait_state(op, stuck.back(), "running") == "running");
  }
  // ...and beside them a small sim deployment whose id comes after one of theirs (ids are random:
  // a pass in id order would reach a failing one first).
  auto small = [](int i) {
    return test::deployment_template("beside-" + std::to_string(i),
                                     {{{"name", "detect"},
                                       {"tier", "edge"},
                                       {"image", "city-detect:3.1"},
                                       {"placements",
                                        {{{"site", "edge-sz-1"}, {"node", "sz-t4-1"}, {"arch", "x86_64"}, {"instances", 1},
                                          {"requests", {{"cpu", 0.1}, {"memory", 0.1}}}}}}}});
  };
  std::string first_stuck = *std::min_element(stuck.begin(), stuck.end()), beside;
  for (int i = 0; i < 40 && beside <= first_stuck; ++i) beside = test::create_deployment(op, small(i));
  REQUIRE(beside > first_stuck);
  REQUIRE(test::wait_state(op, beside, "running") == "running");
  for (const auto& s : stuck) REQUIRE(op.del(s).status == 202);

  REQUIRE(op.del(beside).status == 202);
  wait_gone(op, beside);
  CHECK(op.get(beside).status == 404);  // torn down and removed
  for (const auto& s : stuck) CHECK(op.get(s).json()["state"] == "completing");  // still trying, with backoff
  // Their failing steps are counted as they back off.
  std::string metrics;
  for (int i = 0; i < 300; ++i) {
    metrics = d.admin().get("/metrics").body;
    if (metrics.find("cpnd_reconcile_retries_total 0\n") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK_THAT(metrics, Catch::Contains("cpnd_reconcile_retries_total") &&
                          !Catch::Contains("cpnd_reconcile_retries_total 0\n"));

  // Each waits out its own exponential backoff (20 ms doubling here): a handful of tries in two
  // seconds, not one every 30 ms pass (which would be about 65 each).
  auto deletes = [&] {
    int n = 0;
    for (const auto& r : cluster.requests()) n += r.method == "DELETE";
    return n;
  };
  int before = deletes();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  INFO("DELETEs in 2 s for 3 stuck deployments: " << deletes() - before);
  CHECK(deletes() - before < 3 * 20);
  // The cluster accepts deletes again: the stuck ones finish too, on their next try.
  cluster.fail_deletes(false);
  for (const auto& s : stuck) {
    wait_gone(op, s);
    CHECK(op.get(s).status == 404);
  }
  CHECK(cluster.paths().empty());
}

TEST_CASE("a workload that ignores SIGTERM is killed after the grace and never holds the API", "[api][control-plane]") {
  std::string dir = test::make_temp_dir("cpnd-grace");
  test::write_file(dir + "/cpnd.yaml", "process: {grace_ms: 1500}\n");
  auto options = retrying({{"CPND_PROCESS_ALLOW_ROOT", "true"}});
  options.args = {"--config", dir + "/cpnd.yaml"};
  test::Daemon d(options);
  auto op = d.as("operator");
  // It drains for a minute after SIGTERM: far past the grace.
  add_process_site(d, op, "slow-stop", {"--fps", "5", "--drain-seconds", "60"});
  std::string dep = test::create_deployment(op, lab_template("slow", "slow-stop"));
  REQUIRE(test::wait_state(op, dep, "running") == "running");
  Reap reap{pids_of(d, op, dep)};
  const std::vector<pid_t>& pids = reap.pids;
  REQUIRE(pids.size() == 2);

  REQUIRE(op.del(dep).status == 202);
  auto anonymous = d.anonymous();
  double livez = slowest(1.0, [&] { return anonymous.get("/livez").status; });
  INFO("slowest /livez while the workloads drain: " << livez << " ms");
  CHECK(livez < 750);  // half the grace: the API never waits for it
  for (pid_t p : pids) CHECK(::kill(p, 0) == 0);  // draining still, inside its grace
  wait_gone(op, dep);
  CHECK(op.get(dep).status == 404);
  for (pid_t p : pids) CHECK(::kill(p, 0) != 0);  // killed: cpnd's own children, reaped
}

TEST_CASE("workloads no deployment wants are stopped by the orphan sweep", "[api][control-plane]") {
  test::Daemon d(retrying({{"CPND_PROCESS_ALLOW_ROOT", "true"}}));
  auto op = d.as("operator");
  add_process_site(d, op, "detector", {"--fps", "5"});
  std::string dep = test::create_deployment(op, lab_template("lab", "detector"));
  REQUIRE(test::wait_state(op, dep, "running") == "running");
  Reap reap{pids_of(d, op, dep)};
  const std::vector<pid_t>& pids = reap.pids;
  REQUIRE(pids.size() == 2);

  // cpnd dies and comes back on an older database (here: none), which knows nothing of them.
  d.kill9();
  for (const char* f : {"/cpnd.db", "/cpnd.db-wal", "/cpnd.db-shm"}) std::filesystem::remove(d.data() + f);
  d.start();
  auto admin = d.admin();
  for (int i = 0; i < 500 && (alive(pids[0]) || alive(pids[1])); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  for (pid_t p : pids) CHECK_FALSE(alive(p));  // stopped (SIGTERM: the detector exits at once)
  std::string metrics;
  for (int i = 0; i < 100 && metrics.find("cpnd_orphans_stopped_total 2") == std::string::npos; ++i) {
    metrics = admin.get("/metrics").body;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK_THAT(metrics, Catch::Contains("cpnd_orphans_stopped_total 2"));
}

TEST_CASE("updating one process instance restarts it alone, with the new model in its environment", "[api][control-plane]") {
  test::Daemon d(retrying({{"CPND_PROCESS_ALLOW_ROOT", "true"}}));
  auto op = d.as("operator");
  add_process_site(d, op, "detector", {"--fps", "5"});
  Json tmpl = lab_template("canary", "detector");
  tmpl["spec"]["components"][0]["model"] = {{"name", "det"}, {"version", "1"}};
  std::string dep = test::create_deployment(op, tmpl);
  REQUIRE(test::wait_state(op, dep, "running") == "running");
  Reap reap{pids_of(d, op, dep)};
  Json instances = op.get(dep + "/instances").json()["items"];
  REQUIRE(instances.size() == 2);
  std::string canary = instances[0]["id"], other = instances[1]["id"];
  auto pid_of = [&](const std::string& id) { return std::stoi(test::read_file(d.data() + "/run/" + id + ".pid")); };
  pid_t canary_pid = pid_of(canary), other_pid = pid_of(other);

  REQUIRE(op.post(dep + "/instances/" + canary + "/update", {{"version", "2"}}).status == 202);
  REQUIRE(test::wait_state(op, dep, "running") == "running");
  pid_t fresh = pid_of(canary);
  reap.pids.push_back(fresh);
  CHECK(fresh != canary_pid);
  CHECK_FALSE(alive(canary_pid));
  CHECK(pid_of(other) == other_pid);  // never restarted
  CHECK(alive(other_pid));
  std::string env = test::read_file("/proc/" + std::to_string(fresh) + "/environ");
  CHECK(env.find(std::string("CPN_MODEL_VERSION=det@2") + '\0') != std::string::npos);
  Json now = op.get(dep + "/instances").json()["items"];
  for (const auto& i : now)
    CHECK(i["running_model"] == (i["id"] == canary ? "det@2" : "det@1"));
}
