// The chaos driver through the real daemon: a controller that is slow,
// fails a call, or answers garbage delays or fails only the deployments on
// its site; the API and a deployment beside it never notice.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <thread>

#include "support/daemon.hpp"
#include "support/templates.hpp"

using namespace cpn;

namespace {

// Failed steps are retried twice, 20 ms apart.
test::DaemonOptions retrying_twice() { return test::fast_demo({{"CPND_RETRY_BACKOFF_MS", "20"}, {"CPND_MAX_ATTEMPTS", "2"}}); }

void add_chaos_site(client::HttpClient& op, const Json& faults) {
  Json controller = {{"driver", "chaos"}};
  controller.update(faults);
  REQUIRE(op.post("/v1/sites", {{"id", "chaos-sz"}, {"tier", "edge"}, {"city", "Shenzhen"}, {"controller", controller}})
              .status == 201);
  REQUIRE(op.post("/v1/nodes", {{"id", "chaos-1"}, {"site", "chaos-sz"}, {"arch", "x86_64"}, {"cpu", 64}, {"memory", 256}})
              .status == 201);
}

void set_faults(client::HttpClient& op, const Json& faults) {
  Json site = op.get("/v1/sites/chaos-sz").json();
  site.erase("conditions");
  site["controller"] = Json{{"driver", "chaos"}};
  site["controller"].update(faults);
  REQUIRE(op.request("PUT", "/v1/sites/chaos-sz", site.dump(), {{"Content-Type", "application/json"}}).status == 200);
}

// `groups` components of one instance each on the chaos site.
Json chaos_template(const std::string& name, int groups) {
  Json components = Json::array();
  for (int i = 0; i < groups; ++i)
    components.push_back({{"name", "c" + std::to_string(i)},
                          {"tier", "edge"},
                          {"image", "city-detect:3.1"},
                          {"placements",
                           {{{"site", "chaos-sz"}, {"node", "chaos-1"}, {"arch", "x86_64"}, {"instances", 1},
                             {"requests", {{"cpu", 1}, {"memory", 1}}}}}}});
  return test::deployment_template(name, components);
}

// The slowest answer (ms) of GET path over `seconds`; a non-200 counts as forever.
double slowest_get(client::HttpClient& c, const std::string& path, double seconds) {
  double worst = 0;
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    auto start = std::chrono::steady_clock::now();
    int status = c.get(path).status;
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    worst = std::max(worst, status == 200 ? ms : 1e9);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return worst;
}

}  // namespace

TEST_CASE("a controller that takes a second per call holds neither the API nor a deployment beside it",
          "[api][control-plane][chaos]") {
  test::Daemon d(retrying_twice());
  auto op = d.as("operator");
  add_chaos_site(op, {{"block_ms", 1000}});
  std::string slow = test::create_deployment(op, chaos_template("slow", 8));
  std::string sim = test::create_deployment(op, test::deployment_template("plates", {test::plate_reader()}));
  auto anonymous = d.anonymous();
  double livez = slowest_get(anonymous, "/livez", 1.5), list = slowest_get(op, "/v1/deployments", 1.0);
  INFO("slowest /livez " << livez << " ms, slowest GET /v1/deployments " << list << " ms");
  CHECK(livez < 500);  // half a call: never behind one
  CHECK(list < 500);
  CHECK(test::wait_state(op, sim, "running") == "running");
  // The site says what it is told to do, and the slow deployment gets there in the end.
  Json site = op.get("/v1/sites/chaos-sz").json();
  REQUIRE(site["conditions"].size() == 1);
  CHECK(site["conditions"][0]["type"] == "FaultsInjected");
  CHECK_THAT(site["conditions"][0].value("reason", ""), Catch::Contains("every call waits 1000 ms"));
  CHECK(site["conditions"][0]["calls"].get<int>() > 0);
  std::string state;
  for (int i = 0; i < 3 && state != "running"; ++i) state = test::wait_state(op, slow, "running");
  INFO(op.get(slow + "/instances").body);
  CHECK(state == "running");
}

TEST_CASE("a controller call that fails is retried and the instance runs", "[api][control-plane][chaos]") {
  test::Daemon d(retrying_twice());
  auto op = d.as("operator");
  add_chaos_site(op, {{"fail_call", 1}});
  std::string dep = test::create_deployment(op, chaos_template("retried", 1));
  REQUIRE(test::wait_state(op, dep, "running") == "running");
  Json instances = op.get(dep + "/instances").json()["items"];
  REQUIRE(instances.size() == 1);
  CHECK(instances[0]["state"] == "running");
  CHECK_THAT(instances[0]["history"].dump(), Catch::Contains("injected failure: call 1"));
}

TEST_CASE("a controller that answers garbage fails its deployments, never cpnd, which recovers when it answers again",
          "[api][control-plane][chaos]") {
  test::Daemon d(retrying_twice());
  auto op = d.as("operator");
  add_chaos_site(op, {{"garbage", true}});
  std::string bad = test::create_deployment(op, chaos_template("garbled", 2));
  // Every start throws: after max_attempts the deployment rolls back, and its stops throw too.
  std::string state;
  for (int i = 0; i < 750 && state != "failing" && state != "failed"; ++i) {
    state = op.get(bad).json().value("state", "");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE((state == "failing" || state == "failed"));
  CHECK_THAT(op.get(bad).json().value("reason", ""), Catch::Contains("unreadable answer"));
  CHECK(d.anonymous().get("/livez").status == 200);
  std::string sim = test::create_deployment(op, test::deployment_template("plates", {test::plate_reader()}));
  CHECK(test::wait_state(op, sim, "running") == "running");
  // It answers again: the rollback finishes, and a new deployment there runs.
  set_faults(op, Json::object());
  CHECK(test::wait_state(op, bad, "failed") == "failed");
  std::string good = test::create_deployment(op, chaos_template("good", 2));
  CHECK(test::wait_state(op, good, "running") == "running");
  CHECK(op.get("/v1/sites/chaos-sz").json().count("conditions") == 0);
}
