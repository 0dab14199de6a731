// Scaling a running deployment through the real daemon: out and in with
// exact capacity accounting, the order adjusting meanwhile, refusals that
// change nothing, and kill -9 at random points of scaling out and in
// converging to the asked-for instances with no double reservation.
#include <catch2/catch.hpp>

#include <random>
#include <set>
#include <thread>

#include "support/daemon.hpp"

using namespace cpn;

namespace {

test::DaemonOptions starting_in(const std::string& start_ms = "40") {
  return test::fast_demo({{"CPND_RECONCILE_MS", "20"}, {"CPND_SIM_START_DELAY_MS", start_ms}});
}

std::map<std::string, Json> node_allocations(client::HttpClient& c) {
  std::map<std::string, Json> out;
  Json nodes = c.get("/v1/nodes?limit=1000").json();
  for (const auto& n : nodes["items"]) out[n["id"]] = n.value("allocated", Json::object());
  return out;
}

double total(const std::map<std::string, Json>& alloc, const char* what) {
  double t = 0;
  for (const auto& [id, a] : alloc) t += a.value(what, 0.0);
  return t;
}

// Instances of a component: id -> state.
std::map<std::string, std::string> instance_states(client::HttpClient& c, const std::string& dep, const std::string& comp) {
  std::map<std::string, std::string> out;
  Json items = c.get("/v1/deployments/" + dep + "/instances").json()["items"];
  for (const auto& i : items)
    if (i["component"] == comp) out[i["id"]] = i["state"];
  return out;
}

struct Running {
  std::string order, deployment;
  Json requests;  // of one ingest instance
};

Running start_order(test::Daemon& d) {
  auto customer = d.as("customer");
  Json confirmed = test::confirm_video_order(customer);
  Running r{confirmed["id"], confirmed["deployment"], nullptr};
  REQUIRE(test::wait_state(customer, "/v1/deployments/" + r.deployment, "running") == "running");
  Json tmpl = customer.get("/v1/deployments/" + r.deployment + "/template").json();
  for (const auto& c : tmpl["spec"]["components"])
    if (c["name"] == "ingest") r.requests = c["placements"][0]["requests"];
  REQUIRE(r.requests.is_object());
  return r;
}

}  // namespace

TEST_CASE("a running deployment scales out and in, capacity is taken and given back exactly", "[api][scaling]") {
  test::Daemon d(starting_in("400"));  // instances take long enough to start that "adjusting" is seen
  auto op = d.as("operator");
  auto customer = d.as("customer");
  auto before_order = node_allocations(op);
  Running r = start_order(d);
  auto with_order = node_allocations(op);
  std::string path = "/v1/deployments/" + r.deployment;
  int n0 = static_cast<int>(instance_states(op, r.deployment, "ingest").size());
  double cpu0 = total(with_order, "cpu");

  auto out = op.post(path + "/scale", {{"component", "ingest"}, {"instances", n0 + 2}});
  REQUIRE(out.status == 202);
  CHECK(out.json()["state"] == "adjusting");
  CHECK(customer.get("/v1/orders/" + r.order).json()["state"] == "adjusting");
  // One change at a time.
  CHECK(op.post(path + "/scale", {{"component", "ingest"}, {"instances", n0}}).status == 409);
  REQUIRE(test::wait_state(op, path, "running") == "running");
  CHECK(customer.get("/v1/orders/" + r.order).json()["state"] == "running");
  auto scaled = instance_states(op, r.deployment, "ingest");
  CHECK(scaled.size() == static_cast<std::size_t>(n0 + 2));
  for (const auto& [id, state] : scaled) CHECK(state == "running");
  CHECK(total(node_allocations(op), "cpu") == Approx(cpu0 + 2 * r.requests["cpu"].get<double>()));
  // Spread: each new instance went to a node that had none of the component's.
  std::set<std::string> nodes;
  Json items = op.get(path + "/instances").json()["items"];
  for (const auto& i : items)
    if (i["component"] == "ingest") nodes.insert(i["node"].get<std::string>());
  CHECK(nodes.size() == static_cast<std::size_t>(n0 + 2));
  CHECK(op.get(path + "/metrics").json()["components"]["ingest"]["instances"]["running"] == n0 + 2);
  Json tmpl = op.get(path + "/template").json();
  int in_template = 0;
  for (const auto& c : tmpl["spec"]["components"])
    if (c["name"] == "ingest")
      for (const auto& p : c["placements"]) in_template += p["instances"].get<int>();
  CHECK(in_template == n0 + 2);
  // Asking for what it has changes nothing.
  CHECK(op.post(path + "/scale", {{"component", "ingest"}, {"instances", n0 + 2}}).status == 200);

  // In, below where it started, then back: the newest go first, and the
  // capacity returns to exactly what the order held.
  REQUIRE(op.post(path + "/scale", {{"component", "ingest"}, {"instances", 1}}).status == 202);
  REQUIRE(test::wait_state(op, path, "running") == "running");
  auto one = instance_states(op, r.deployment, "ingest");
  REQUIRE(one.size() == 1);
  CHECK(one.begin()->first == r.deployment + "-ingest-0");
  REQUIRE(op.post(path + "/scale", {{"component", "ingest"}, {"instances", n0}}).status == (n0 == 1 ? 200 : 202));
  REQUIRE(test::wait_state(op, path, "running") == "running");
  CHECK(node_allocations(op) == with_order);

  Json events = op.get("/v1/events?limit=1000").json();
  std::set<std::string> types;
  for (const auto& e : events["items"]) types.insert(e.value("type", ""));
  CHECK(types.count("DeploymentScaled") == 1);
  CHECK(types.count("InstanceRetired") == 1);
  CHECK(types.count("OrderAdjusting") == 1);

  REQUIRE(customer.post("/v1/orders/" + r.order + "/complete", Json::object()).status == 200);
  REQUIRE(test::wait_state(customer, "/v1/orders/" + r.order, "completed") == "completed");
  CHECK(node_allocations(op) == before_order);
}

TEST_CASE("scale requests that cannot be carried out are refused and change nothing", "[api][scaling]") {
  test::Daemon d(starting_in());
  auto op = d.as("operator");
  Running r = start_order(d);
  std::string path = "/v1/deployments/" + r.deployment;
  auto before = node_allocations(op);
  auto pointer = [&](const Json& body, int status) {
    auto res = op.post(path + "/scale", body);
    CHECK(res.status == status);
    return res.json()["errors"].empty() ? std::string() : res.json()["errors"][0].value("pointer", "");
  };
  CHECK(pointer({{"component", "nope"}, {"instances", 2}}, 422) == "/component");
  CHECK(pointer({{"component", "ingest"}, {"instances", 0}}, 422) == "/instances");
  CHECK(pointer({{"component", "ingest"}}, 422) == "/instances");
  CHECK(pointer({{"component", "ingest"}, {"instances", 9000}}, 409) == "/instances");  // no room at its sites
  CHECK(d.as("customer").post(path + "/scale", {{"component", "ingest"}, {"instances", 2}}).status == 403);
  CHECK(op.post("/v1/deployments/dep-nope/scale", {{"component", "ingest"}, {"instances", 2}}).status == 404);
  CHECK(node_allocations(op) == before);
  CHECK(op.get(path).json()["state"] == "running");
}

TEST_CASE("kill -9 at any point of scaling out or in converges after a restart", "[api][scaling]") {
  test::Daemon d(starting_in("120"));
  auto op = d.as("operator");
  Running r = start_order(d);
  std::string path = "/v1/deployments/" + r.deployment;
  auto with_order = node_allocations(op);
  int n0 = static_cast<int>(instance_states(op, r.deployment, "ingest").size());
  double cpu0 = total(with_order, "cpu");
  std::mt19937 rng(7);
  for (int round = 0; round < 4; ++round) {
    int target = round % 2 == 0 ? n0 + 2 : n0;
    REQUIRE(op.post(path + "/scale", {{"component", "ingest"}, {"instances", target}}).status == 202);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 200)(rng)));
    d.kill9();
    d.start();
    op = d.as("operator");
    INFO("round " << round << ", target " << target);
    REQUIRE(test::wait_state(op, path, "running") == "running");
    // The twin lost its instances with cpnd: they start again.
    auto all_running = [&] {
      for (const auto& [id, state] : instance_states(op, r.deployment, "ingest"))
        if (state != "running") return false;
      return true;
    };
    for (int i = 0; i < 200 && !all_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto now = instance_states(op, r.deployment, "ingest");
    CHECK(now.size() == static_cast<std::size_t>(target));
    for (const auto& [id, state] : now) CHECK(state == "running");
    CHECK(total(node_allocations(op), "cpu") == Approx(cpu0 + (target - n0) * r.requests["cpu"].get<double>()));
  }
  CHECK(node_allocations(op) == with_order);
}

TEST_CASE("a scale-out whose new instance cannot start is undone, the running service is untouched", "[api][scaling]") {
  test::Daemon d({.env = {{"CPND_RECONCILE_MS", "20"}, {"CPND_SIM_START_DELAY_MS", "300"}, {"CPND_MAX_ATTEMPTS", "2"},
                          {"CPND_RETRY_BACKOFF_MS", "20"}},
                  .dev = true});
  auto op = d.as("operator");
  auto customer = d.as("customer");
  Running r = start_order(d);
  std::string path = "/v1/deployments/" + r.deployment;
  auto with_order = node_allocations(op);
  REQUIRE(op.post(path + "/scale", {{"component", "ingest"}, {"instances", 2}}).status == 202);
  // The new instance's node fails before the instance has started.
  std::string node;
  Json items = op.get(path + "/instances").json()["items"];
  for (const auto& i : items)
    if (i["id"] == r.deployment + "-ingest-1") node = i["node"];
  REQUIRE_FALSE(node.empty());
  REQUIRE(op.post("/v1/sim/faults", {{"type", "node-down"}, {"target", node}}).status == 201);

  for (int i = 0; i < 500; ++i) {
    Json dep = op.get(path).json();
    if (dep["state"] == "running" && dep["scaling"].value("reverted", false)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Json dep = op.get(path).json();
  CHECK(dep["state"] == "running");
  CHECK(dep["scaling"]["reverted"] == true);
  CHECK_THAT(dep["history"][dep["history"].size() - 2].value("reason", ""), Catch::Contains("back to 1"));
  CHECK(customer.get("/v1/orders/" + r.order).json()["state"] == "running");
  auto left = instance_states(op, r.deployment, "ingest");
  REQUIRE(left.size() == 1);
  CHECK(left.begin()->second == "running");
  CHECK(node_allocations(op) == with_order);
}

TEST_CASE("each component shows its generation, the one in effect, and conditions as it scales", "[api][scaling]") {
  test::Daemon d(starting_in("400"));
  auto op = d.as("operator");
  Running r = start_order(d);
  std::string path = "/v1/deployments/" + r.deployment;
  auto status_of = [&](const std::string& name) {
    Json components = op.get(path).json()["status"]["components"];
    for (const auto& c : components)
      if (c["name"] == name) return c;
    return Json();
  };
  auto condition = [](const Json& comp, const std::string& type) {
    for (const auto& c : comp["conditions"])
      if (c["type"] == type) return c;
    return Json();
  };
  // Running as created: generation 1 in effect, every instance running.
  Json ingest = status_of("ingest");
  REQUIRE(ingest.is_object());
  int n0 = static_cast<int>(instance_states(op, r.deployment, "ingest").size());
  CHECK(ingest["generation"] == 1);
  CHECK(ingest["observedGeneration"] == 1);
  CHECK(ingest["desired"] == n0);
  CHECK(ingest["instances"]["running"] == n0);
  CHECK(condition(ingest, "Available")["status"] == "True");
  CHECK(condition(ingest, "Progressing")["status"] == "False");
  CHECK(condition(ingest, "Degraded")["status"] == "False");

  // Scaled out: generation 2 asked, 1 still in effect, rolling out; the other components untouched.
  std::map<std::string, int> others;
  Json before = op.get(path).json();
  for (const auto& c : before["status"]["components"])
    if (c["name"] != "ingest") others[c["name"]] = c["generation"];
  REQUIRE(op.post(path + "/scale", {{"component", "ingest"}, {"instances", n0 + 1}}).status == 202);
  ingest = status_of("ingest");
  CHECK(ingest["generation"] == 2);
  CHECK(ingest["observedGeneration"] == 1);
  CHECK(ingest["desired"] == n0 + 1);
  CHECK(condition(ingest, "Progressing")["status"] == "True");
  CHECK(condition(ingest, "Progressing")["reason"] == "RollingOut");
  CHECK(condition(ingest, "Available")["status"] == "False");  // the new one is starting
  REQUIRE(test::wait_state(op, path, "running") == "running");
  ingest = status_of("ingest");
  CHECK(ingest["generation"] == 2);
  CHECK(ingest["observedGeneration"] == 2);
  CHECK(ingest["instances"]["running"] == n0 + 1);
  CHECK(condition(ingest, "Progressing")["reason"] == "InEffect");
  CHECK(condition(ingest, "Available")["status"] == "True");
  Json after = op.get(path).json();
  for (const auto& c : after["status"]["components"])
    if (c["name"] != "ingest") {
      CHECK(c["generation"] == others[c["name"]]);
      CHECK(c["observedGeneration"] == c["generation"]);
    }

  // Scaled in: generation 3, in effect once the retired one has stopped and gone.
  REQUIRE(op.post(path + "/scale", {{"component", "ingest"}, {"instances", n0}}).status == 202);
  CHECK(status_of("ingest")["generation"] == 3);
  REQUIRE(test::wait_state(op, path, "running") == "running");
  ingest = status_of("ingest");
  CHECK(ingest["observedGeneration"] == 3);
  CHECK(ingest["retiring"] == 0);
  CHECK(ingest["desired"] == n0);
}
