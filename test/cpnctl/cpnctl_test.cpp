#include <catch2/catch.hpp>

#include <cstdio>
#include <unistd.h>

#include "support/daemon.hpp"

using namespace cpn;

namespace {

struct Output {
  int status;
  std::string text;
};

Output cpnctl(const test::Daemon& d, const std::string& token, const std::string& args) {
  std::string cmd = "CPN_SERVER=" + d.url() + " CPN_TOKEN=" + token + " " CPNCTL_BINARY " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = ::pclose(p);
  return {WEXITSTATUS(status), out};
}

}  // namespace

TEST_CASE("cpnctl reads and changes the inventory through the API", "[cpnctl]") {
  test::Daemon d({.dev = true});
  std::string op = d.token("operator");
  auto nodes = cpnctl(d, op, "get nodes -l zone=a");
  REQUIRE(nodes.status == 0);
  Json list = Json::parse(nodes.text);
  REQUIRE_FALSE(list["items"].empty());
  for (const auto& n : list["items"]) CHECK(n["labels"]["zone"] == "a");

  auto cordon = cpnctl(d, op, "cordon sz-t4-1");
  REQUIRE(cordon.status == 0);
  CHECK(Json::parse(cordon.text)["state"] == "cordoned");
  CHECK(d.admin().get("/v1/nodes/sz-t4-1").json()["state"] == "cordoned");

  auto cap = cpnctl(d, op, "capacity edge-sz-1 --yaml");
  CHECK(cap.status == 0);

  auto yaml = cpnctl(d, op, "--yaml get sites center-gz");
  REQUIRE(yaml.status == 0);
  CHECK_THAT(yaml.text, Catch::Contains("tier: center"));

  auto denied = cpnctl(d, d.token("customer"), "get nodes");
  CHECK(denied.status == 1);
  CHECK_THAT(denied.text, Catch::Contains("403"));

  auto missing = cpnctl(d, op, "apply -f /nonexistent.yaml");
  CHECK(missing.status == 2);
}

TEST_CASE("cpnctl evaluates blueprints and moves offerings through their lifecycle", "[cpnctl]") {
  test::Daemon d({.dev = true});
  std::string op = d.token("operator");
  auto eval = cpnctl(d, op, "evaluate face-verification/1.0.0 -p streams=100 -p resolution=4k -p liveness=false");
  REQUIRE(eval.status == 0);
  Json e = Json::parse(eval.text);
  CHECK(e["parameters"]["streams"] == 100);
  CHECK(e["parameters"]["resolution"] == "4k");
  CHECK(e["parameters"]["liveness"] == false);
  CHECK(e["missing_required"] == Json{"location"});
  auto bad = cpnctl(d, op, "evaluate face-verification/1.0.0 -p streams=0");
  CHECK(bad.status == 1);
  CHECK_THAT(bad.text, Catch::Contains("/parameters/streams"));

  auto suspend = cpnctl(d, op, "lifecycle suspend offerings face-gate-standard");
  REQUIRE(suspend.status == 0);
  CHECK(Json::parse(suspend.text)["status"]["state"] == "suspended");
  auto refused = cpnctl(d, op, "lifecycle retire blueprints face-verification/1.0.0");
  CHECK(refused.status == 1);
  CHECK_THAT(refused.text, Catch::Contains("offering/face-gate-standard"));
}

TEST_CASE("cpnctl orders, confirms and cancels, operators run what-ifs", "[cpnctl][orders]") {
  // The reconciler is paused: the deployment stays pending, so the order can be cancelled.
  test::Daemon d({.env = {{"CPND_RECONCILE_MS", "0"}}, .dev = true});
  std::string customer = d.token("customer"), op = d.token("operator");
  auto ordered = cpnctl(d, customer, "order city-video-detection -p streams=32 -p location=cams-sz-futian --duration 48h");
  REQUIRE(ordered.status == 0);
  Json order = Json::parse(ordered.text);
  CHECK(order["state"] == "quoted");
  CHECK(order["parameters"]["streams"] == 32);  // typed, not "32"
  CHECK(order["duration_hours"] == 48);
  std::string id = order["id"];
  auto confirmed = cpnctl(d, customer, "confirm " + id + " s1");
  REQUIRE(confirmed.status == 0);
  std::string deployment = Json::parse(confirmed.text)["deployment"];
  auto dep = cpnctl(d, customer, "get deployments " + deployment);
  REQUIRE(dep.status == 0);
  CHECK(Json::parse(dep.text)["order"] == id);
  CHECK(Json::parse(cpnctl(d, customer, "get orders").text)["items"].size() == 1);
  CHECK(Json::parse(cpnctl(d, customer, "cancel " + id).text)["state"] == "cancelled");
  CHECK(cpnctl(d, customer, "confirm " + id + " s1").status == 1);  // 409: printed on stderr

  auto what_if = cpnctl(d, op, "solve face-gate-standard -p location=Dongguan -p streams=40");
  REQUIRE(what_if.status == 0);
  CHECK_FALSE(Json::parse(what_if.text)["solutions"].empty());
  CHECK(cpnctl(d, customer, "solve face-gate-standard -p location=Dongguan").status == 1);  // operators only
}

TEST_CASE("cpnctl scales a deployment, shows its manifests and metrics, and injects and clears faults", "[cpnctl]") {
  test::Daemon d({.env = {{"CPND_RECONCILE_MS", "20"}, {"CPND_SIM_START_DELAY_MS", "20"}}, .dev = true});
  std::string customer = d.token("customer"), op = d.token("operator");
  Json order = Json::parse(cpnctl(d, customer, "order city-video-detection -p streams=32 -p location=cams-sz-futian").text);
  std::string id = order["id"];
  std::string dep = Json::parse(cpnctl(d, customer, "confirm " + id + " s1").text)["deployment"];
  for (int i = 0; i < 300 && Json::parse(cpnctl(d, customer, "get deployments " + dep).text)["state"] != "running"; ++i)
    ::usleep(20000);

  auto scaled = cpnctl(d, op, "scale " + dep + " ingest 2");
  REQUIRE(scaled.status == 0);
  CHECK(Json::parse(scaled.text)["scaling"]["to"] == 2);
  CHECK(cpnctl(d, customer, "scale " + dep + " ingest 3").status == 1);  // operators only

  auto manifests = cpnctl(d, customer, "manifests " + dep + " --site edge-sz-1");
  REQUIRE(manifests.status == 0);
  Json list = Json::parse(manifests.text);
  CHECK(list["kind"] == "List");
  for (const auto& m : list["items"]) CHECK(m["metadata"]["annotations"]["cpn.io/site"] == "edge-sz-1");
  CHECK_THAT(cpnctl(d, customer, "--yaml manifests " + dep).text, Catch::Contains("kind: Deployment"));

  auto fault = cpnctl(d, op, "fault load-surge " + id + " --factor 4");
  REQUIRE(fault.status == 0);
  std::string fault_id = Json::parse(fault.text)["id"];
  CHECK(Json::parse(cpnctl(d, customer, "metrics " + dep).text)["surge"] == 4.0);
  CHECK(Json::parse(cpnctl(d, op, "get faults").text)["items"].size() == 1);
  CHECK(cpnctl(d, op, "fault link-degraded sz1-gz").status == 1);  // 422: needs bandwidth or latency
  REQUIRE(cpnctl(d, op, "clear " + fault_id).status == 0);
  CHECK(Json::parse(cpnctl(d, customer, "metrics " + dep).text)["surge"] == 1.0);
}
