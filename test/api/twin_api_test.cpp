// Rehearsals on the sim twin through the real daemon: a load surge on an
// order and a degraded link show in the deployment's metrics, the solver
// plans new orders around what is degraded or down, bad faults are refused
// with their pointer, and clearing the faults gives the same reading back.
#include <catch2/catch.hpp>

#include <set>
#include <thread>

#include "support/daemon.hpp"

using namespace cpn;

namespace {

Json order_request() {
  return {{"offering", "city-video-detection"}, {"parameters", {{"location", "cams-sz-futian"}, {"streams", 64}}}};
}

Json metrics_without_time(client::HttpClient& c, const std::string& deployment) {
  Json m = c.get("/v1/deployments/" + deployment + "/metrics").json();
  m.erase("at");
  return m;
}

std::set<std::string> links_used(const Json& order) {
  std::set<std::string> out;
  for (const auto& s : order["solutions"])
    for (const auto& f : s["network"])
      for (const auto& l : f.value("links", Json::array())) out.insert(l.get<std::string>());
  return out;
}

}  // namespace

TEST_CASE("a load surge and a degraded link show in the deployment's metrics, and clearing them restores it",
          "[api][sim]") {
  test::Daemon d(test::fast_demo());
  auto customer = d.as("customer");
  auto op = d.as("operator");
  Json order = customer.post("/v1/orders", order_request()).json();
  std::string id = order["id"];
  Json confirmed = customer.post("/v1/orders/" + id + "/confirm", {{"solution", "s1"}}).json();
  std::string dep = confirmed["deployment"];
  REQUIRE(test::wait_state(customer, "/v1/deployments/" + dep, "running") == "running");

  Json base = metrics_without_time(customer, dep);
  CHECK(base["source"] == "sim");
  CHECK(base["surge"] == 1.0);
  CHECK(base["end_to_end"]["slo_met"] == true);
  for (const auto& [name, c] : base["components"].items()) {
    CHECK(c["saturated"] == false);
    CHECK(c["instances"]["running"] == c["instances"]["total"]);
  }
  for (const auto& f : base["network"]) CHECK(f["delivered_mbps"] == f["reserved_mbps"]);

  SECTION("a surge of 3 on the order triples the load offered at the entry and saturates what cannot keep up") {
    auto fault = op.post("/v1/sim/faults", {{"type", "load-surge"}, {"target", id}, {"factor", 3}});
    REQUIRE(fault.status == 201);
    CHECK(fault.json()["deployment"] == dep);
    Json m = metrics_without_time(customer, dep);
    CHECK(m["surge"] == 3.0);
    CHECK(m["surged_by"] == fault.json()["id"]);
    std::string entry = m["network"][0]["to"];  // fed from the location
    CHECK(m["components"][entry]["offered"].get<double>() == Approx(3 * base["components"][entry]["offered"].get<double>()));
    bool saturated = false;
    for (const auto& [name, c] : m["components"].items()) saturated = saturated || c["saturated"].get<bool>();
    CHECK(saturated);  // the order was sized for its load, not three times it
    CHECK(m["end_to_end"]["latency_ms"].get<double>() > base["end_to_end"]["latency_ms"].get<double>());
    REQUIRE(op.del("/v1/sim/faults/" + fault.json()["id"].get<std::string>()).status == 204);
    CHECK(metrics_without_time(customer, dep) == base);
  }

  SECTION("a degraded link on the deployment's path lets less through, later, and new orders are planned around it") {
    // The first flow that crosses a link.
    Json flow;
    for (const auto& f : base["network"])
      if (!f["links"].empty()) {
        flow = f;
        break;
      }
    REQUIRE(flow.is_object());
    std::string link = flow["links"][0];
    double reserved = flow["reserved_mbps"];
    double held = op.get("/v1/links/" + link).json()["allocated_mbps"];
    auto fault = op.post("/v1/sim/faults",
                         {{"type", "link-degraded"}, {"target", link}, {"bandwidth_mbps", held / 4}, {"extra_latency_ms", 30}});
    REQUIRE(fault.status == 201);
    Json m = metrics_without_time(customer, dep);
    Json degraded;
    for (const auto& f : m["network"])
      if (f["from"] == flow["from"] && f["to"] == flow["to"] && f["path"] == flow["path"]) degraded = f;
    CHECK(degraded["delivered_mbps"].get<double>() == Approx(reserved / 4).epsilon(0.01));
    CHECK(degraded["latency_ms"].get<double>() == Approx(flow["latency_ms"].get<double>() + 30));
    CHECK(degraded["degraded_by"] == fault.json()["id"]);
    CHECK(degraded["congested"] == true);
    CHECK(m["end_to_end"]["latency_ms"].get<double>() == Approx(base["end_to_end"]["latency_ms"].get<double>() + 30));

    // The solver sees the link as full: no new solution routes over it.
    Json again = customer.post("/v1/orders", order_request()).json();
    CHECK(links_used(again).count(link) == 0);
    REQUIRE(op.del("/v1/sim/faults/" + fault.json()["id"].get<std::string>()).status == 204);
    CHECK(metrics_without_time(customer, dep) == base);
    CHECK(links_used(customer.post("/v1/orders", order_request()).json()).count(link) == 1);  // back in use
  }

  SECTION("a node down in the twin is not planned on") {
    std::string node = confirmed["solutions"][0]["placements"][0]["node"];
    Json before = customer.post("/v1/orders", order_request()).json();
    bool used = false;
    for (const auto& s : before["solutions"])
      for (const auto& p : s["placements"]) used = used || p["node"] == node;
    REQUIRE(used);
    REQUIRE(op.post("/v1/sim/faults", {{"type", "node-down"}, {"target", node}}).status == 201);
    Json after = customer.post("/v1/orders", order_request()).json();
    for (const auto& s : after["solutions"])
      for (const auto& p : s["placements"]) CHECK(p["node"] != node);
  }
}

TEST_CASE("faults that make no sense are refused with the field that is wrong, and nothing is stored", "[api][sim]") {
  test::Daemon d({.dev = true});
  auto op = d.as("operator");
  auto pointer = [&](const Json& body) {
    auto r = op.post("/v1/sim/faults", body);
    CHECK(r.status == 422);
    return r.json()["errors"][0].value("pointer", "");
  };
  CHECK(pointer({{"type", "load-surge"}, {"target", "ord-nope"}}) == "/target");
  CHECK(pointer({{"type", "load-surge"}, {"target", "dep-nope"}, {"factor", 0}}) == "/factor");
  CHECK(pointer({{"type", "link-degraded"}, {"target", "sz1-gz"}}) == "/bandwidth_mbps");
  CHECK(pointer({{"type", "link-degraded"}, {"target", "sz1-gz"}, {"bandwidth_mbps", 1e9}}) == "/bandwidth_mbps");
  CHECK(pointer({{"type", "link-degraded"}, {"target", "sz1-gz"}, {"extra_latency_ms", -1}}) == "/extra_latency_ms");
  CHECK(pointer({{"type", "link-degraded"}, {"target", "nowhere"}, {"extra_latency_ms", 5}}) == "/target");
  CHECK(pointer({{"type", "node-down"}, {"target", "sz-t4-1"}, {"factor", 2}}) == "/factor");
  CHECK(pointer({{"type", "site-down"}, {"target", "edge-sz-1"}, {"bandwidth_mbps", 2}}) == "/bandwidth_mbps");
  CHECK(op.get("/v1/sim/faults").json()["items"].empty());
}
