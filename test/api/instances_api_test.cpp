// Stable instances through the real daemon: every instance has an id that
// is never reused, one instance can be replaced or moved while the others
// keep running untouched, scale-in retires by a stated rule, and draining
// a node moves its instances elsewhere and says how far it got.
#include <catch2/catch.hpp>

#include <set>
#include <thread>

#include "support/daemon.hpp"
#include "support/templates.hpp"

using namespace cpn;

namespace {

// Instances take 150 ms to start: long enough to see one starting.
test::DaemonOptions slow_start() { return test::fast_demo({{"CPND_RECONCILE_MS", "20"}, {"CPND_SIM_START_DELAY_MS", "150"}}); }

// Instances of a component: id -> record.
std::map<std::string, Json> instances_of(client::HttpClient& c, const std::string& dep, const std::string& comp) {
  std::map<std::string, Json> out;
  Json items = c.get("/v1/deployments/" + dep + "/instances").json()["items"];
  for (const auto& i : items)
    if (i["component"] == comp) out[i["id"]] = i;
  return out;
}

std::vector<std::string> template_ids(client::HttpClient& c, const std::string& dep, const std::string& comp) {
  std::vector<std::string> out;
  Json tmpl = c.get("/v1/deployments/" + dep + "/template").json();
  for (const auto& k : tmpl["spec"]["components"])
    if (k["name"] == comp)
      for (const auto& p : k["placements"])
        for (const auto& id : p["instance_ids"]) out.push_back(id);
  return out;
}

double allocated_cpu(client::HttpClient& c) {
  double t = 0;
  Json nodes = c.get("/v1/nodes?limit=1000").json();
  for (const auto& n : nodes["items"]) t += n["allocated"].value("cpu", 0.0);
  return t;
}

// What shows that an instance was left alone: where it runs, its port, its
// starts and every state it went through.
Json untouched(const Json& instance) {
  return {{"node", instance["node"]}, {"port", instance["port"]}, {"attempts", instance["attempts"]},
          {"history", instance["history"]}, {"state", instance["state"]}};
}

// Waits until the deployment runs again and only these instances are left.
void settle(client::HttpClient& op, const std::string& dep, const std::string& comp, std::size_t count) {
  REQUIRE(test::wait_state(op, "/v1/deployments/" + dep, "running") == "running");
  for (int i = 0; i < 300 && instances_of(op, dep, comp).size() != count; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(instances_of(op, dep, comp).size() == count);
}

struct Scaled {
  std::string order, deployment, path;
};

// A confirmed video order whose ingest component runs four instances.
Scaled four_ingest(test::Daemon& d) {
  auto customer = d.as("customer");
  auto op = d.as("operator");
  Json confirmed = test::confirm_video_order(customer);
  Scaled s{confirmed["id"], confirmed["deployment"], "/v1/deployments/" + confirmed["deployment"].get<std::string>()};
  REQUIRE(test::wait_state(op, s.path, "running") == "running");
  bool has_four = instances_of(op, s.deployment, "ingest").size() == 4;
  auto scaled = op.post(s.path + "/scale", {{"component", "ingest"}, {"instances", 4}});
  REQUIRE(scaled.status == (has_four ? 200 : 202));
  settle(op, s.deployment, "ingest", 4);
  for (const auto& [id, i] : instances_of(op, s.deployment, "ingest")) REQUIRE(i["state"] == "running");
  return s;
}

}  // namespace

TEST_CASE("replacing one of four instances leaves the other three running untouched, and ids are never reused",
          "[api][instances]") {
  test::Daemon d(slow_start());
  auto op = d.as("operator");
  Scaled s = four_ingest(d);
  auto before = instances_of(op, s.deployment, "ingest");
  std::set<std::string> seen;
  for (const auto& [id, i] : before) seen.insert(id);
  CHECK(template_ids(op, s.deployment, "ingest").size() == 4);
  double cpu = allocated_cpu(op);

  std::string victim = std::next(before.begin())->first;
  auto r = op.post(s.path + "/instances/" + victim + "/replace", {{"reason", "suspected memory leak"}});
  REQUIRE(r.status == 202);
  Json dep = r.json();
  CHECK(dep["state"] == "adjusting");
  CHECK(dep["scaling"]["replaces"] == victim);
  std::string fresh = dep["scaling"]["added"][0];
  CHECK_FALSE(seen.count(fresh));
  CHECK(dep["scaling"]["to_node"] != before[victim]["node"]);  // another node had room
  // One change at a time.
  CHECK(op.post(s.path + "/instances/" + std::prev(before.end())->first + "/replace", Json::object()).status == 409);

  settle(op, s.deployment, "ingest", 4);
  auto after = instances_of(op, s.deployment, "ingest");
  CHECK_FALSE(after.count(victim));
  REQUIRE(after.count(fresh));
  CHECK(after[fresh]["state"] == "running");
  for (const auto& [id, i] : before) {
    if (id == victim) continue;
    INFO(id);
    REQUIRE(after.count(id));
    CHECK(untouched(after[id]) == untouched(i));
  }
  auto ids = template_ids(op, s.deployment, "ingest");
  CHECK(std::set<std::string>(ids.begin(), ids.end()) ==
        std::set<std::string>{std::next(before.begin(), 0)->first, std::next(before.begin(), 2)->first,
                              std::next(before.begin(), 3)->first, fresh});
  CHECK(allocated_cpu(op) == Approx(cpu));  // the old one's capacity given back, the new one's taken
  Json history = op.get(s.path).json()["history"];
  CHECK(history.back()["state"] == "running");

  // In then out again: the newest goes, and the next id is one never used.
  seen.insert(fresh);
  REQUIRE(op.post(s.path + "/scale", {{"component", "ingest"}, {"instances", 3}}).status == 202);
  settle(op, s.deployment, "ingest", 3);
  CHECK_FALSE(instances_of(op, s.deployment, "ingest").count(fresh));
  auto out = op.post(s.path + "/scale", {{"component", "ingest"}, {"instances", 4}});
  REQUIRE(out.status == 202);
  std::string next = out.json()["scaling"]["added"][0];
  CHECK_FALSE(seen.count(next));
  settle(op, s.deployment, "ingest", 4);
  CHECK(allocated_cpu(op) == Approx(cpu));
}

TEST_CASE("replace requests that cannot be carried out are refused and change nothing", "[api][instances]") {
  test::Daemon d(slow_start());
  auto op = d.as("operator");
  Scaled s = four_ingest(d);
  auto before = instances_of(op, s.deployment, "ingest");
  std::string one = before.begin()->first;
  std::string path = s.path + "/instances/" + one + "/replace";
  double cpu = allocated_cpu(op);
  auto pointer = [&](const std::string& p, const Json& body, int status) {
    auto res = op.post(p, body);
    CHECK(res.status == status);
    CHECK(res.header("content-type") == "application/problem+json");
    return res.json()["errors"].empty() ? std::string() : res.json()["errors"][0].value("pointer", "");
  };
  CHECK(pointer(path, {{"node", "no-such-node"}}, 422) == "/node");
  CHECK(pointer(path, {{"node", before[one]["node"]}}, 422) == "/node");  // where it is already
  CHECK(pointer(path, {{"colour", "red"}}, 422) == "/colour");
  CHECK(pointer(path, {{"move", "yes"}}, 422) == "/move");
  CHECK(op.post(s.path + "/instances/" + s.deployment + "-ingest-99/replace", Json::object()).status == 404);
  CHECK(op.post("/v1/deployments/dep-nope/instances/x/replace", Json::object()).status == 404);
  CHECK(d.as("customer").post(path, Json::object()).status == 403);
  CHECK(op.get(s.path).json()["state"] == "running");
  CHECK(allocated_cpu(op) == Approx(cpu));
  auto now = instances_of(op, s.deployment, "ingest");
  for (const auto& [id, i] : before) CHECK(untouched(now[id]) == untouched(i));
}

TEST_CASE("scale-in retires the instance on a cordoned node before the newest", "[api][instances]") {
  test::Daemon d(slow_start());
  auto op = d.as("operator");
  Scaled s = four_ingest(d);
  auto before = instances_of(op, s.deployment, "ingest");
  // The oldest ingest instance alone on its node (spread: each has its own).
  std::map<std::string, int> per_node;
  for (const auto& [id, i] : before) ++per_node[i["node"]];
  std::string oldest;
  for (const auto& [id, i] : before)
    if (oldest.empty() && per_node[i["node"]] == 1) oldest = id;
  REQUIRE_FALSE(oldest.empty());
  REQUIRE(op.post("/v1/nodes/" + before[oldest]["node"].get<std::string>() + "/cordon", Json::object()).status == 200);
  auto in = op.post(s.path + "/scale", {{"component", "ingest"}, {"instances", 3}});
  REQUIRE(in.status == 202);
  CHECK(in.json()["scaling"]["retired"] == Json::array({oldest}));
  settle(op, s.deployment, "ingest", 3);
  auto after = instances_of(op, s.deployment, "ingest");
  CHECK_FALSE(after.count(oldest));
  for (const auto& [id, i] : after) CHECK(untouched(i) == untouched(before[id]));
}

TEST_CASE("draining a node moves its instances to other nodes and reports how far it got", "[api][instances]") {
  test::Daemon d(slow_start());
  auto op = d.as("operator");
  Scaled s = four_ingest(d);
  auto before = instances_of(op, s.deployment, "ingest");
  // A node that runs only ingest instances (which have room elsewhere at their site).
  Json all = op.get(s.path + "/instances").json()["items"];
  std::map<std::string, std::set<std::string>> components_on;
  for (const auto& i : all) components_on[i["node"]].insert(i["component"].get<std::string>());
  std::string node, busy;
  for (const auto& [n, comps] : components_on) {
    if (comps == std::set<std::string>{"ingest"}) node = n;
    if (comps.count("detect")) busy = n;
  }
  REQUIRE_FALSE(node.empty());
  std::set<std::string> on_node;
  for (const auto& i : all)
    if (i["node"] == node) on_node.insert(i["id"].get<std::string>());
  double cpu = allocated_cpu(op);

  auto r = op.post("/v1/nodes/" + node + "/drain", Json::object());
  REQUIRE(r.status == 200);
  CHECK(r.json()["state"] == "cordoned");
  CHECK(r.json()["drain"]["state"] == "draining");
  Json drained;
  for (int i = 0; i < 500; ++i) {
    drained = op.get("/v1/nodes/" + node).json();
    if (drained["drain"]["state"] == "drained") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  INFO(drained.dump());
  REQUIRE(drained["drain"]["state"] == "drained");
  CHECK(drained["drain"]["left"] == 0);
  CHECK(drained["drain"]["moved"].size() == on_node.size());
  CHECK(drained["allocated"].value("cpu", 0.0) == Approx(0));
  REQUIRE(test::wait_state(op, s.path, "running") == "running");
  Json now = op.get(s.path + "/instances").json()["items"];
  for (const auto& i : now) {
    CHECK(i["node"] != node);
    CHECK_FALSE(on_node.count(i["id"].get<std::string>()));
  }
  // The ingest instances elsewhere were never touched.
  auto after = instances_of(op, s.deployment, "ingest");
  for (const auto& [id, i] : before)
    if (!on_node.count(id)) CHECK(untouched(after[id]) == untouched(i));
  CHECK(after.size() == 4);
  CHECK(allocated_cpu(op) == Approx(cpu));
  // A drain's progress is cpnd's: a client write keeps it; ready again ends it.
  Json body = op.get("/v1/nodes/" + node).json();
  body["drain"] = {{"state", "draining"}};
  body.erase("metadata");
  auto put = op.put("/v1/nodes/" + node, body);
  CHECK(put.status == 200);
  CHECK(op.get("/v1/nodes/" + node).json()["drain"]["state"] == "drained");
  REQUIRE(op.post("/v1/nodes/" + node + "/uncordon", Json::object()).status == 200);
  CHECK_FALSE(op.get("/v1/nodes/" + node).json().contains("drain"));

  // The detector's node: no other node of its kind at the site has room, so
  // the drain waits on it, saying why, and the detector keeps running.
  REQUIRE_FALSE(busy.empty());
  REQUIRE(op.post("/v1/nodes/" + busy + "/drain", Json::object()).status == 200);
  Json waiting;
  for (int i = 0; i < 300; ++i) {
    waiting = op.get("/v1/nodes/" + busy).json()["drain"];
    if (!waiting["waiting"].empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  INFO(waiting.dump());
  CHECK(waiting["state"] == "draining");
  CHECK(waiting["left"].get<int>() >= 1);
  REQUIRE_FALSE(waiting["waiting"].empty());
  std::string why;
  for (const auto& w : waiting["waiting"])
    if (w["instance"].get<std::string>().find("-detect-") != std::string::npos) why = w["reason"];
  CHECK(why.find("has room") != std::string::npos);
  REQUIRE(test::wait_state(op, s.path, "running") == "running");  // what could move, moved
  Json detect = op.get(s.path + "/instances").json()["items"];
  for (const auto& i : detect)
    if (i["component"] == "detect") CHECK(i["state"] == "running");
  REQUIRE(op.post("/v1/nodes/" + busy + "/uncordon", Json::object()).status == 200);
  CHECK_FALSE(op.get("/v1/nodes/" + busy).json().contains("drain"));
}

TEST_CASE("one instance gets another model version while the others keep theirs", "[api][instances]") {
  test::Daemon d(slow_start());
  auto op = d.as("operator");
  Json read = test::plate_reader();
  read["model"] = {{"name", "plates"}, {"version", "1"}};
  auto created = op.post("/v1/deployments", test::deployment_template("canary", {read}));
  REQUIRE(created.status == 201);
  std::string path = created.header("location");
  std::string dep = path.substr(path.rfind('/') + 1);
  REQUIRE(test::wait_state(op, path, "running") == "running");
  auto before = instances_of(op, dep, "read");
  REQUIRE(before.size() == 2);
  std::string canary = before.begin()->first, other = std::next(before.begin())->first;
  CHECK(before[canary]["running_model"] == "plates@1");

  auto r = op.post(path + "/instances/" + canary + "/update", {{"version", "2"}, {"reason", "canary of plates 2"}});
  REQUIRE(r.status == 202);
  CHECK(r.json()["state"] == "adjusting");
  CHECK(r.json()["scaling"]["to_model"] == "plates@2");
  CHECK(op.get(path + "/instances").json()["items"].size() == 2);
  REQUIRE(test::wait_state(op, path, "running") == "running");
  auto after = instances_of(op, dep, "read");
  CHECK(after[canary]["model"] == "plates@2");
  CHECK(after[canary]["running_model"] == "plates@2");
  CHECK(after[canary]["previous_model"] == "plates@1");
  CHECK(after[canary]["node"] == before[canary]["node"]);
  CHECK(after[canary]["port"] == before[canary]["port"]);
  CHECK(after[canary]["state"] == "running");
  CHECK(untouched(after[other]) == untouched(before[other]));
  CHECK(after[other]["running_model"] == "plates@1");
  // Asked again: nothing to do. Bad asks change nothing.
  CHECK(op.post(path + "/instances/" + canary + "/update", {{"version", "2"}}).status == 200);
  CHECK(op.post(path + "/instances/" + canary + "/update", {{"version", "../x"}}).status == 422);
  CHECK(op.post(path + "/instances/" + canary + "/update", Json::object()).status == 422);
  CHECK(op.post(path + "/instances/" + dep + "-read-9/update", {{"version", "3"}}).status == 404);
  CHECK(untouched(instances_of(op, dep, "read")[other]) == untouched(before[other]));
}

TEST_CASE("a replacement that cannot start is undone and the instance it was to replace never stopped",
          "[api][instances]") {
  test::Daemon d({.env = {{"CPND_RECONCILE_MS", "20"}, {"CPND_SIM_START_DELAY_MS", "300"}, {"CPND_MAX_ATTEMPTS", "2"},
                          {"CPND_RETRY_BACKOFF_MS", "20"}},
                  .dev = true});
  auto op = d.as("operator");
  Scaled s = four_ingest(d);
  auto before = instances_of(op, s.deployment, "ingest");
  std::string victim = before.begin()->first;
  double cpu = allocated_cpu(op);
  // A node of the site that runs nothing (the fault below must hit only the replacement).
  std::string spare = "spare-1";
  REQUIRE(op.post("/v1/nodes", {{"id", spare}, {"site", before[victim]["site"]}, {"arch", before[victim]["arch"]},
                                {"cpu", 32}, {"memory", 128}})
              .status == 201);
  auto r = op.post(s.path + "/instances/" + victim + "/replace", {{"node", spare}});
  REQUIRE(r.status == 202);
  std::string fresh = r.json()["scaling"]["added"][0];
  // Its node fails before the replacement has started: it gives up.
  REQUIRE(op.post("/v1/sim/faults", {{"type", "node-down"}, {"target", r.json()["scaling"]["to_node"]}}).status == 201);
  Json dep;
  for (int i = 0; i < 500; ++i) {
    dep = op.get(s.path).json();
    if (dep["state"] == "running" && dep["scaling"].value("reverted", false)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  INFO(dep.dump());
  REQUIRE(dep["state"] == "running");
  CHECK(dep["scaling"]["reverted"] == true);
  settle(op, s.deployment, "ingest", 4);
  auto after = instances_of(op, s.deployment, "ingest");
  CHECK_FALSE(after.count(fresh));
  for (const auto& [id, i] : before) {
    INFO(id);
    REQUIRE(after.count(id));
    CHECK(untouched(after[id]) == untouched(i));  // the victim too: it ran throughout
  }
  auto ids = template_ids(op, s.deployment, "ingest");
  CHECK(std::set<std::string>(ids.begin(), ids.end()).count(victim) == 1);
  CHECK(allocated_cpu(op) == Approx(cpu));
}
