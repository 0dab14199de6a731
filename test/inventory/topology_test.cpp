#include <catch2/catch.hpp>

#include "cpn/inventory/inventory.hpp"
#include "support/engine_fixture.hpp"

using namespace cpn;
using Catch::Matchers::UnorderedEquals;

namespace {

Json small_topology() {
  return Json::parse(R"({
    "apiVersion": "cpn/v1", "kind": "Topology",
    "sites": [
      {"id": "c1", "tier": "center", "city": "Guangzhou",
       "prices": {"cpu_core_hour": 0.04, "memory_gib_hour": 0.005, "accelerators": {"nvidia-a100": 9.5}},
       "nodes": [
         {"id": "c1-gpu", "arch": "x86_64", "cpu": 64, "memory": "512Gi",
          "accelerators": [{"type": "gpu", "model": "nvidia-a100", "count": 8, "memory": "80Gi"}]},
         {"id": "c1-arm", "arch": "aarch64", "cpu": "96", "memory": 256, "labels": {"vendor": "kunpeng-920"}}]},
      {"id": "e1", "tier": "edge", "city": "Shenzhen",
       "nodes": [{"id": "e1-npu", "arch": "aarch64", "cpu": 32, "memory": "64Gi",
                  "accelerators": [{"type": "npu", "model": "ascend-310", "count": 4}]}]}],
    "links": [{"from": "e1", "to": "c1", "latency_ms": 8, "bandwidth_mbps": 10000, "price_mbps_hour": 0.001}]
  })");
}

}  // namespace

TEST_CASE("a topology import creates sites, nodes and links in canonical form", "[inventory]") {
  test::EngineFixture f;
  inventory::Inventory inv(f.engine);
  auto r = inv.import_topology(small_topology());
  REQUIRE(r);
  CHECK(r->created == 6);  // 2 sites, 3 nodes, 1 link
  auto node = inv.nodes().get("c1-gpu");
  REQUIRE(node);
  CHECK((*node)["memory"] == 512.0);
  CHECK((*node)["site"] == "c1");
  CHECK((*node)["state"] == "ready");
  CHECK((*node)["accelerators"][0]["memory"] == 80.0);
  CHECK((*node)["capability"]["accelerator_tops_int8"] == Approx(8 * 624));
  auto arm = inv.nodes().get("c1-arm");
  REQUIRE(arm);
  CHECK((*arm)["capability"]["cpu_core_equivalents"] == Approx(96 * 0.8));
  auto link = inv.links().get("e1--c1");
  REQUIRE(link);
  CHECK((*link)["free_mbps"] == 10000.0);
}

TEST_CASE("an import of the export changes nothing", "[inventory]") {
  test::EngineFixture f;
  inventory::Inventory inv(f.engine);
  REQUIRE(inv.import_topology(small_topology()));
  auto seq = f.engine.last_seq();
  auto again = inv.import_topology(inv.export_topology());
  REQUIRE(again);
  CHECK(again->created == 0);
  CHECK(again->updated == 0);
  CHECK(again->unchanged == 6);
  CHECK(f.engine.last_seq() == seq);
  CHECK(inv.export_topology() == inv.export_topology());
}

TEST_CASE("re-import upserts and keeps an operator's cordon", "[inventory]") {
  test::EngineFixture f;
  inventory::Inventory inv(f.engine);
  REQUIRE(inv.import_topology(small_topology()));
  REQUIRE(inv.set_node_state("e1-npu", "cordoned", "NodeCordoned", std::nullopt));
  Json doc = small_topology();
  doc["sites"][1]["nodes"][0]["cpu"] = 48;
  auto r = inv.import_topology(doc);
  REQUIRE(r);
  CHECK(r->updated == 1);
  auto node = inv.nodes().get("e1-npu");
  CHECK((*node)["cpu"] == 48.0);
  CHECK((*node)["state"] == "cordoned");
}

TEST_CASE("a bad topology reports every problem with its pointer and writes nothing", "[inventory]") {
  test::EngineFixture f;
  inventory::Inventory inv(f.engine);
  Json doc = small_topology();
  doc["sites"][0]["nodes"][0]["gpus"] = 2;                          // unknown field
  doc["sites"][0]["nodes"][1]["cpu"] = -4;                          // negative
  doc["sites"][1]["nodes"][0]["memory"] = "12 GB";                  // malformed
  doc["sites"][1]["nodes"].push_back(doc["sites"][0]["nodes"][0]);  // duplicate id c1-gpu
  doc["sites"][1]["nodes"][1].erase("gpus");
  doc["links"].push_back({{"from", "e1"}, {"to", "nowhere"}, {"latency_ms", 1}, {"bandwidth_mbps", 10}});
  doc["sites"].push_back({{"id", "e1"}, {"tier", "edge"}, {"city", "Shenzhen"}});  // duplicate site
  doc["sites"][0]["tier"] = "cloud";                                               // not an enum value
  auto r = inv.import_topology(doc);
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == ErrorKind::unprocessable);
  CHECK_THAT(test::pointers(r.error()),
             UnorderedEquals(std::vector<std::string>{"/sites/0/nodes/0/gpus", "/sites/0/nodes/1/cpu",
                                                      "/sites/1/nodes/0/memory", "/sites/1/nodes/1/id", "/links/1/to",
                                                      "/sites/2/id", "/sites/0/tier"}));
  CHECK(f.engine.last_seq() == 0);
  CHECK(f.engine.count(inventory::kSite) == 0);
}

TEST_CASE("site capacity sums nodes by architecture and accelerator, free only on ready nodes", "[inventory]") {
  test::EngineFixture f;
  inventory::Inventory inv(f.engine);
  REQUIRE(inv.import_topology(small_topology()));
  auto cap = inv.site_capacity("c1");
  REQUIRE(cap);
  CHECK((*cap)["total"]["cpu"]["total"] == 160.0);
  CHECK((*cap)["by_arch"]["aarch64"]["cpu"]["total"] == 96.0);
  CHECK((*cap)["by_arch"]["x86_64"]["memory_gib"]["free"] == 512.0);
  CHECK((*cap)["by_accelerator"]["nvidia-a100"]["accelerators"]["total"] == 8.0);
  CHECK((*cap)["total"]["cpu_core_equivalents"]["total"] == Approx(64 + 96 * 0.8));
  REQUIRE(inv.set_node_state("c1-arm", "cordoned", "NodeCordoned", std::nullopt));
  cap = inv.site_capacity("c1");
  CHECK((*cap)["total"]["cpu"]["free"] == 64.0);
  CHECK((*cap)["nodes_by_state"]["cordoned"] == 1);
  CHECK_FALSE(inv.site_capacity("nowhere"));
}

TEST_CASE("a topology's measurement overrides the built-in ratings", "[inventory]") {
  test::EngineFixture f;
  inventory::Inventory inv(f.engine);
  Json doc = small_topology();
  doc["measurement"] = {{"cpu_core_equivalents", {{"aarch64", 0.5}}},
                        {"accelerators", {{"ascend-310", {{"tops_int8", 16}}}}}};
  REQUIRE(inv.import_topology(doc));
  auto npu = inv.nodes().get("e1-npu");
  CHECK((*npu)["capability"]["accelerator_tops_int8"] == 64.0);
  CHECK((*npu)["capability"]["cpu_core_equivalents"] == 16.0);
}

TEST_CASE("a site with nodes or links cannot be deleted", "[inventory]") {
  test::EngineFixture f;
  inventory::Inventory inv(f.engine);
  REQUIRE(inv.import_topology(small_topology()));
  auto r = inv.sites().remove("e1", std::nullopt);
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == ErrorKind::conflict);
  CHECK_THAT(r.error().message, Catch::Contains("node/e1-npu") && Catch::Contains("link/e1--c1"));
}
