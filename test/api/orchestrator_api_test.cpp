// Provisioning through the real daemon on the sim twin: a confirmed order
// runs, completes and gives everything back; a submitted template runs and
// is torn down by DELETE; a failing node rolls a deployment back; and kill -9
// at any point of provisioning or teardown converges after a restart.
#include <catch2/catch.hpp>

#include <filesystem>
#include <set>
#include <csignal>
#include <random>
#include <thread>

#include "support/daemon.hpp"
#include "support/templates.hpp"

using namespace cpn;

namespace {

// Twin instances start in 80 ms unless `extra` says otherwise.
test::DaemonOptions start_in_80ms(std::map<std::string, std::string> extra = {}) {
  extra.insert({"CPND_SIM_START_DELAY_MS", "80"});
  return test::fast_demo(extra);
}

Json get(client::HttpClient& c, const std::string& path) { return c.get(path).json(); }

std::map<std::string, Json> allocations(client::HttpClient& c) {
  std::map<std::string, Json> out;
  Json nodes = get(c, "/v1/nodes?limit=1000");
  for (const auto& n : nodes["items"]) out[n["id"]] = n["allocated"];
  Json links = get(c, "/v1/links?limit=1000");
  for (const auto& l : links["items"]) out["link/" + l["id"].get<std::string>()] = l["allocated_mbps"];
  return out;
}

// Where two allocation pictures differ, "node: before -> after".
std::vector<std::string> differences(const std::map<std::string, Json>& a, const std::map<std::string, Json>& b) {
  std::vector<std::string> out;
  for (const auto& [k, v] : a)
    if (!b.count(k) || b.at(k) != v) out.push_back(k + ": " + v.dump() + " -> " + (b.count(k) ? b.at(k).dump() : "gone"));
  return out;
}

// Exited (a zombie left to an init that does not reap counts as exited).
bool gone(int pid) {
  if (::kill(pid, 0) != 0) return true;
  std::string stat = test::read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}


}  // namespace

TEST_CASE("an order is provisioned to running on the sim twin, and completing it reclaims everything",
          "[api][orchestrator]") {
  test::Daemon d(start_in_80ms());
  auto customer = d.as("customer");
  auto admin = d.admin();
  auto before = allocations(admin);
  Json order = test::confirm_video_order(customer, 96);
  std::string id = order["id"], dep = order["deployment"];
  REQUIRE(test::wait_state(customer, "/v1/orders/" + id, "running") == "running");
  Json deployment = get(customer, "/v1/deployments/" + dep);
  CHECK(deployment["state"] == "running");
  Json instances = get(customer, "/v1/deployments/" + dep + "/instances")["items"];
  int placed = 0;
  for (const auto& p : order["solutions"][0]["placements"]) placed += p["instances"].get<int>();
  REQUIRE(instances.size() == static_cast<std::size_t>(placed));
  for (const auto& i : instances) {
    CHECK(i["state"] == "running");
    CHECK(i["driver"] == "sim");
    CHECK(i["variant"]["platform"].is_string());
    CHECK(deployment["progress"]["components"][i["component"].get<std::string>()]["running"].get<int>() >= 1);
  }
  CHECK(customer.post("/v1/orders/" + id + "/cancel", Json::object()).status == 409);  // running: complete it instead

  auto completing = customer.post("/v1/orders/" + id + "/complete", Json::object());
  REQUIRE(completing.status == 200);
  CHECK(completing.json()["state"] == "completing");
  REQUIRE(test::wait_state(customer, "/v1/orders/" + id, "completed") == "completed");
  Json stopped = get(customer, "/v1/deployments/" + dep + "/instances")["items"];
  for (const auto& i : stopped) CHECK(i["state"] == "stopped");
  CHECK(get(customer, "/v1/deployments/" + dep)["reservation_released"] == true);
  CHECK(differences(before, allocations(admin)).empty());  // capacity back to what it was
  std::vector<std::string> states;
  Json history = get(customer, "/v1/orders/" + id)["history"];
  for (const auto& h : history) states.push_back(h["state"]);
  CHECK(states == std::vector<std::string>{"quoted", "confirmed", "provisioning", "running", "completing", "completed"});
  CHECK(customer.post("/v1/orders/" + id + "/complete", Json::object()).status == 409);
}

TEST_CASE("a submitted template runs, and DELETE tears it down and removes it", "[api][orchestrator]") {
  test::Daemon d(start_in_80ms());
  auto op = d.as("operator");
  auto before = allocations(op);
  Json t = test::deployment_template("plates", {test::plate_reader()});
  auto created = op.post("/v1/deployments", t);
  REQUIRE(created.status == 201);
  const std::string path = created.header("location");
  REQUIRE(test::wait_state(op, path, "running") == "running");
  auto deleted = op.del(path);
  CHECK(deleted.status == 202);
  for (int i = 0; i < 500 && op.get(path).status != 404; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(op.get(path).status == 404);
  CHECK(differences(before, allocations(op)).empty());
}

TEST_CASE("a node that goes down during provisioning rolls the deployment back, the order fails with the reason",
          "[api][orchestrator]") {
  test::Daemon d(start_in_80ms({{"CPND_SIM_START_DELAY_MS", "400"}, {"CPND_MAX_ATTEMPTS", "2"}, {"CPND_RETRY_BACKOFF_MS", "50"}}));
  auto customer = d.as("customer");
  auto op = d.as("operator");
  auto before = allocations(op);
  Json order = test::confirm_video_order(customer, 64);
  std::string node = order["solutions"][0]["placements"][0]["node"];
  REQUIRE(op.request("PATCH", "/v1/nodes/" + node, R"({"state": "down"})", {{"Content-Type", "application/merge-patch+json"}}).status == 200);
  REQUIRE(test::wait_state(customer, "/v1/orders/" + order["id"].get<std::string>(), "failed") == "failed");
  Json failed = get(customer, "/v1/orders/" + order["id"].get<std::string>());
  CHECK_THAT(failed["history"].back()["reason"].get<std::string>(), Catch::Contains("is down"));
  CHECK(get(customer, "/v1/deployments/" + order["deployment"].get<std::string>())["state"] == "failed");
  Json rolled_back = get(customer, "/v1/deployments/" + order["deployment"].get<std::string>() + "/instances")["items"];
  for (const auto& i : rolled_back) CHECK(i["state"] == "stopped");
  CHECK(differences(before, allocations(op)).empty());
}

TEST_CASE("kill -9 at any point of provisioning or teardown converges after a restart", "[api][orchestrator]") {
  // Twin instances take 600 ms to run and 300 ms to stop: every kill below (within 250 ms of the
  // confirm, within 30 ms of the complete) lands in provisioning or in teardown.
  test::Daemon d(start_in_80ms({{"CPND_SIM_START_DELAY_MS", "600"}, {"CPND_SIM_STOP_DELAY_MS", "300"}}));
  auto customer = d.as("customer");
  auto admin = d.admin();
  // An order that stays: a double release of the other one would eat into its reservation.
  Json keep = test::confirm_video_order(customer, 64);
  REQUIRE(test::wait_state(customer, "/v1/orders/" + keep["id"].get<std::string>(), "running") == "running");
  auto held = allocations(admin);
  std::mt19937 rng(11);
  for (int round = 0; round < 6; ++round) {
    INFO("round " << round);
    Json order = test::confirm_video_order(customer, 32 + 16 * round);
    std::string id = order["id"], dep = order["deployment"];
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 250)(rng)));
    std::string at_kill = get(customer, "/v1/orders/" + id)["state"];
    d.kill9();  // somewhere in provisioning
    CHECK((at_kill == "confirmed" || at_kill == "provisioning"));  // the crash landed where it was meant to
    d.start();
    customer = d.as("customer");
    admin = d.admin();
    REQUIRE(test::wait_state(customer, "/v1/orders/" + id, "running") == "running");
    REQUIRE(customer.post("/v1/orders/" + id + "/complete", Json::object()).status == 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 30)(rng)));
    at_kill = get(customer, "/v1/orders/" + id)["state"];
    d.kill9();  // somewhere in teardown
    CHECK(at_kill == "completing");
    d.start();
    customer = d.as("customer");
    admin = d.admin();
    REQUIRE(test::wait_state(customer, "/v1/orders/" + id, "completed") == "completed");
    Json instances = get(customer, "/v1/deployments/" + dep + "/instances")["items"];
    int placed = 0;
    for (const auto& p : order["solutions"][0]["placements"]) placed += p["instances"].get<int>();
    CHECK(instances.size() == static_cast<std::size_t>(placed));  // no duplicate, none lost
    for (const auto& i : instances) CHECK(i["state"] == "stopped");
    auto diff = differences(held, allocations(admin));
    CHECK(diff == std::vector<std::string>{});  // exactly the kept order's reservation: no double reservation or release
  }
  CHECK(get(customer, "/v1/orders/" + keep["id"].get<std::string>())["state"] == "running");
}

TEST_CASE("on a site with the process driver, instances are real detector processes that survive a crash of cpnd",
          "[api][orchestrator]") {
  // As root (CI), workloads run as root only because this test says so.
  test::Daemon d(start_in_80ms({{"CPND_SIM_START_DELAY_MS", "0"}, {"CPND_PROCESS_ALLOW_ROOT", "true"}}));
  auto op = d.as("operator");
  REQUIRE(op.post("/v1/sites", {{"id", "lab"}, {"tier", "edge"}, {"city", "Shenzhen"}, {"controller", {{"driver", "process"}}}})
              .status == 201);
  // What runs is the registry's command; the template's own is ignored.
  Json image = {{"name", "detector"},
                {"version", "1"},
                {"variants",
                 {{{"platform", "linux/amd64"}, {"digest", "sha256:" + std::string(64, 'a')}, {"size", 1},
                   {"command", {DETECTOR_BINARY, "--fps", "20"}}}}}};
  REQUIRE(d.as("designer").post("/v1/images", image).status == 201);
  std::string planted = d.data() + "/planted";
  REQUIRE(op.post("/v1/nodes", {{"id", "lab-1"}, {"site", "lab"}, {"arch", "x86_64"}, {"cpu", 8}, {"memory", 16}}).status == 201);
  Json t = test::deployment_template(
      "lab-detect",
      {{{"name", "detect"},
        {"tier", "edge"},
        {"image", "detector:1"},
        {"model", {{"name", "motion"}, {"version", "1"}}},
        {"placements",
         {{{"site", "lab"}, {"node", "lab-1"}, {"arch", "x86_64"}, {"instances", 2},
           {"variant", {{"platform", "linux/amd64"}, {"accelerator", "none"}, {"command", {"/bin/sh", "-c", "touch " + planted}}}},
           {"requests", {{"cpu", 1}, {"memory", 1}}}}}}}});
  auto created = op.post("/v1/deployments", t);
  REQUIRE(created.status == 201);
  const std::string path = created.header("location");
  REQUIRE(test::wait_state(op, path, "running") == "running");
  Json instances = get(op, path + "/instances")["items"];
  REQUIRE(instances.size() == 2);
  std::map<std::string, std::string> pids;
  for (const auto& i : instances) {
    CHECK(i["driver"] == "process");
    std::string id = i["id"];
    // The workload answers on its port with its identity from the environment.
    std::string metrics = client::HttpClient("http://127.0.0.1:" + std::to_string(i["port"].get<int>())).get("/metrics").body;
    CHECK_THAT(metrics, Catch::Contains("instance=\"" + id + "\",model=\"motion@1\""));
    pids[id] = test::read_file(d.data() + "/run/" + id + ".pid");
    CHECK_THAT(test::read_file(d.data() + "/logs/" + id + ".log"), Catch::Contains("listening on"));
    CHECK(i["variant"]["command"][0] == DETECTOR_BINARY);
  }
  CHECK_FALSE(std::filesystem::exists(planted));
  // No descriptor of cpnd's reached a workload: none of its sockets (the listening one among them).
  auto sockets_of = [](pid_t pid) {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& fd : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
      auto target = std::filesystem::read_symlink(fd.path(), ec);
      if (!ec && target.string().rfind("socket:", 0) == 0) out.insert(target.string());
    }
    return out;
  };
  auto cpnd_sockets = sockets_of(d.pid());
  REQUIRE_FALSE(cpnd_sockets.empty());
  for (const auto& [id, pid] : pids)
    for (const auto& s : sockets_of(std::stoi(pid))) CHECK_FALSE(cpnd_sockets.count(s));
  // cpnd dies; its instances do not, and the restarted cpnd adopts them instead of starting others.
  d.kill9();
  d.start();
  op = d.as("operator");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(get(op, path)["state"] == "running");
  for (const auto& [id, pid] : pids) CHECK(test::read_file(d.data() + "/run/" + id + ".pid") == pid);

  REQUIRE(op.del(path).status == 202);
  for (int i = 0; i < 500 && op.get(path).status != 404; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(op.get(path).status == 404);
  for (const auto& [id, pid] : pids) CHECK(gone(std::stoi(pid)));  // stopped: no orphan
}

TEST_CASE("operators rehearse with faults in the sim twin: a site going down rolls its deployments back",
          "[api][orchestrator]") {
  test::Daemon d(start_in_80ms({{"CPND_SIM_START_DELAY_MS", "300"}, {"CPND_MAX_ATTEMPTS", "2"}, {"CPND_RETRY_BACKOFF_MS", "50"}}));
  auto customer = d.as("customer");
  auto op = d.as("operator");
  auto before = allocations(op);
  CHECK(op.post("/v1/sim/faults", {{"type", "meteor"}, {"target", "edge-sz-1"}}).json()["errors"][0]["pointer"] == "/type");
  CHECK(op.post("/v1/sim/faults", {{"type", "site-down"}, {"target", "atlantis"}}).json()["errors"][0]["pointer"] == "/target");
  CHECK(customer.post("/v1/sim/faults", {{"type", "site-down"}, {"target", "edge-sz-1"}}).status == 403);

  Json order = test::confirm_video_order(customer, 64);
  std::string site = order["solutions"][0]["placements"][0]["site"];
  auto fault = op.post("/v1/sim/faults", {{"type", "site-down"}, {"target", site}, {"description", "power cut"}});
  REQUIRE(fault.status == 201);
  CHECK(get(op, "/v1/sim/faults")["items"].size() == 1);
  REQUIRE(test::wait_state(customer, "/v1/orders/" + order["id"].get<std::string>(), "failed") == "failed");
  Json history = get(customer, "/v1/orders/" + order["id"].get<std::string>())["history"];
  CHECK_THAT(history.back()["reason"].get<std::string>(), Catch::Contains("is down"));
  CHECK(differences(before, allocations(op)).empty());

  // Cleared: the site is up in the twin again, and a new order runs there.
  REQUIRE(op.del("/v1/sim/faults/" + fault.json()["id"].get<std::string>()).status == 204);
  CHECK(get(op, "/v1/sim/faults")["items"].empty());
  Json again = test::confirm_video_order(customer, 64);
  CHECK(test::wait_state(customer, "/v1/orders/" + again["id"].get<std::string>(), "running") == "running");
}
