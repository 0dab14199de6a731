#include <catch2/catch.hpp>
#include <set>

#include "support/daemon.hpp"

using namespace cpn;

TEST_CASE("operators build the inventory through /v1/sites, /v1/nodes and /v1/links", "[api][inventory]") {
  test::Daemon d;
  auto op = d.as("operator");
  REQUIRE(op.post("/v1/sites", {{"id", "c1"}, {"tier", "center"}, {"city", "Guangzhou"},
                                 {"prices", {{"cpu_core_hour", 0.04}, {"memory_gib_hour", 0.005}}}})
              .status == 201);
  REQUIRE(op.post("/v1/sites", {{"id", "e1"}, {"tier", "edge"}, {"city", "Shenzhen"}}).status == 201);
  auto node = op.post("/v1/nodes", {{"id", "e1-t4"}, {"site", "e1"}, {"arch", "x86_64"}, {"cpu", "32"},
                                    {"memory", "128Gi"}, {"storage", "1Ti"},
                                    {"accelerators", {{{"type", "gpu"}, {"model", "nvidia-t4"}, {"count", 2}}}}});
  REQUIRE(node.status == 201);
  Json n = node.json();
  CHECK(n["memory"] == 128.0);
  CHECK(n["storage"] == 1024.0);
  CHECK(n["allocatable"]["accelerators"] == 2);
  CHECK(n["allocated"]["cpu"] == 0.0);
  CHECK(n["capability"]["accelerator_tops_int8"] == 260.0);

  // cpnd owns allocations: a client cannot set them
  Json sneaky = n;
  sneaky["allocated"] = {{"cpu", 30}};
  REQUIRE(op.put("/v1/nodes/e1-t4", sneaky).status == 200);
  CHECK(op.get("/v1/nodes/e1-t4").json()["allocated"]["cpu"] == 0.0);

  auto link = op.post("/v1/links", {{"from", "e1"}, {"to", "c1"}, {"latency_ms", 6}, {"bandwidth_mbps", 20000}});
  REQUIRE(link.status == 201);
  CHECK(link.json()["id"] == "e1--c1");
  CHECK(op.post("/v1/links", {{"from", "e1"}, {"to", "e1"}, {"latency_ms", 1}, {"bandwidth_mbps", 1}}).json()["errors"][0]["pointer"] == "/to");

  auto cap = op.get("/v1/sites/e1/capacity");
  REQUIRE(cap.status == 200);
  CHECK(cap.json()["by_accelerator"]["nvidia-t4"]["accelerators"]["free"] == 2.0);
  CHECK(op.get("/v1/sites/zz/capacity").status == 404);

  // cordon, drain, uncordon; free capacity follows
  auto cordon = op.request("POST", "/v1/nodes/e1-t4/cordon");
  REQUIRE(cordon.status == 200);
  CHECK(cordon.json()["state"] == "cordoned");
  CHECK(op.get("/v1/sites/e1/capacity").json()["total"]["cpu"]["free"] == 0.0);
  CHECK(op.request("POST", "/v1/nodes/e1-t4/uncordon").json()["state"] == "ready");
  CHECK(op.request("POST", "/v1/nodes/e1-t4/drain").json()["state"] == "cordoned");
  auto events = d.admin().get("/v1/events?kind=node").json()["items"];
  std::vector<std::string> types;
  for (const auto& e : events) types.push_back(e["type"]);
  // (the drain of a node that runs nothing then reports itself drained, NodeDrained, when the reconciler passes)
  REQUIRE(types.size() >= 4);
  CHECK(std::vector<std::string>(types.begin(), types.begin() + 4) ==
        std::vector<std::string>{"Added", "NodeCordoned", "NodeUncordoned", "NodeDraining"});

  // a site in use cannot go; designers read but do not write
  CHECK(op.del("/v1/sites/e1").status == 409);
  auto designer = d.as("designer");
  CHECK(designer.get("/v1/nodes/e1-t4").status == 200);
  CHECK(designer.post("/v1/sites", {{"id", "x"}, {"tier", "edge"}, {"city", "x"}}).status == 403);
  CHECK(d.as("customer").get("/v1/nodes").status == 403);

  CHECK(op.del("/v1/links/e1--c1").status == 204);
  CHECK(op.del("/v1/nodes/e1-t4").status == 204);
  CHECK(op.del("/v1/sites/e1").status == 204);
}

TEST_CASE("the demo topology exports and re-imports unchanged, in YAML and JSON", "[api][inventory]") {
  test::Daemon d({.dev = true});
  auto op = d.as("operator");
  auto sites = op.get("/v1/sites").json()["items"];
  std::map<std::string, int> tiers;
  for (const auto& s : sites) tiers[s["tier"]]++;
  CHECK(tiers["center"] == 1);
  CHECK(tiers["edge"] >= 4);
  CHECK(tiers["end"] >= 1);
  std::set<std::string> models, archs;
  for (const auto& n : Json(op.get("/v1/nodes").json()["items"])) {
    archs.insert(n["arch"]);
    for (const auto& a : n["accelerators"]) models.insert(a["model"]);
  }
  CHECK(archs.count("x86_64"));
  CHECK(archs.count("aarch64"));
  for (const char* m : {"nvidia-t4", "nvidia-a10", "ascend-310"}) CHECK(models.count(m));

  std::string rv = d.anonymous().get("/readyz").json()["resourceVersion"];
  auto yaml = op.request("GET", "/v1/topology", "", {{"Accept", "application/yaml"}});
  REQUIRE(yaml.status == 200);
  auto r = op.request("POST", "/v1/topology", yaml.body, {{"Content-Type", "application/yaml"}});
  REQUIRE(r.status == 200);
  CHECK(r.json()["created"] == 0);
  CHECK(r.json()["updated"] == 0);
  auto json = op.get("/v1/topology");
  CHECK(op.post("/v1/topology", json.json()).json()["unchanged"] == r.json()["unchanged"]);
  CHECK(d.anonymous().get("/readyz").json()["resourceVersion"] == rv);

  auto invalid = op.request("POST", "/v1/topology", test::read_file(test::source_path("examples/topologies/invalid.yaml")),
                            {{"Content-Type", "application/yaml"}});
  CHECK(invalid.status == 422);
  CHECK(invalid.json()["errors"].size() == 5);
  CHECK(d.anonymous().get("/readyz").json()["resourceVersion"] == rv);
}
