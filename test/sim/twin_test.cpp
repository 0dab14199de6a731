// The twin's load model on a hand-made deployment: utilisation and M/M/1
// latency per component, what a saturated component passes on, flows
// through a degraded link shared in proportion, and end-to-end latency
// against the SLO. Every figure is worked out by hand in the comments.
#include <catch2/catch.hpp>

#include "cpn/sim/twin.hpp"

using namespace cpn;

namespace {

// location -L1-> ingest (1 instance, 200 units, 2 ms) -L2-> detect (2 nodes, 40 units and 2 ms... see below)
Json chain() {
  Json placement_ingest = {{"site", "e"}, {"node", "n1"}, {"arch", "x86_64"}, {"instances", 1}, {"capacity", 200},
                           {"latency_ms", 2}, {"requests", {{"cpu", 1}, {"memory", 1}}}};
  Json detect_a = {{"site", "e"}, {"node", "n2"}, {"arch", "x86_64"}, {"instances", 1}, {"capacity", 40},
                   {"latency_ms", 10}, {"requests", {{"cpu", 1}, {"memory", 1}}}};
  Json detect_b = detect_a;
  detect_b["node"] = "n3";
  return {{"spec",
           {{"components",
             {{{"name", "ingest"}, {"demand", 100}, {"placements", {placement_ingest}}},
              {{"name", "detect"}, {"demand", 60}, {"placements", {detect_a, detect_b}}}}},
            {"network",
             {{{"from", "location"}, {"to", "ingest"}, {"path", {"cam", "e"}}, {"links", {"L1"}}, {"bandwidth_mbps", 100},
               {"latency_ms", 1}},
              {{"from", "ingest"}, {"to", "detect"}, {"path", {"e", "c"}}, {"links", {"L2"}}, {"bandwidth_mbps", 50},
               {"latency_ms", 5}}}},
            {"slo", {{"latency_ms", 100}}}}}};
}

std::map<std::string, std::string> all_running() {
  return {{"d-ingest-0", "running"}, {"d-detect-0", "running"}, {"d-detect-1", "running"}};
}

}  // namespace

TEST_CASE("the load model turns offered load and running capacity into utilisation and latency", "[sim]") {
  sim::Conditions none;
  Json m = sim::model_load(chain(), all_running(), 1.0, none, {}, "d");
  // ingest: 100 of 200 -> 0.5; 2 ms / (1 - 0.5) = 4 ms.
  CHECK(m["components"]["ingest"]["utilization"] == 0.5);
  CHECK(m["components"]["ingest"]["latency_ms"] == 4);
  // detect: 60 of 80 -> 0.75; 10 ms / 0.25 = 40 ms.
  CHECK(m["components"]["detect"]["utilization"] == 0.75);
  CHECK(m["components"]["detect"]["latency_ms"] == 40);
  CHECK(m["components"]["detect"]["saturated"] == false);
  // 1 + 4 + 5 + 40 = 50 ms, within 100.
  CHECK(m["end_to_end"]["latency_ms"] == 50);
  CHECK(m["end_to_end"]["slo_met"] == true);
  CHECK(m["network"][1]["delivered_mbps"] == 50);
  CHECK(m["network"][1]["congested"] == false);

  SECTION("an instance down halves detect's capacity: saturated, work dropped, the SLO missed") {
    auto states = all_running();
    states["d-detect-1"] = "failed";
    Json down = sim::model_load(chain(), states, 1.0, none, {}, "d");
    const Json& d = down["components"]["detect"];
    CHECK(d["capacity"] == 40);
    CHECK(d["utilization"] == 1.5);
    CHECK(d["served"] == 40);
    CHECK(d["dropped"] == 20);
    CHECK(d["saturated"] == true);
    CHECK(d["instances"] == Json{{"running", 1}, {"total", 2}});
    CHECK(d["latency_ms"] == 200);  // 10 / (1 - 0.95): the cap
    CHECK(down["end_to_end"]["slo_met"] == false);
  }
  SECTION("a surge of 3 saturates ingest, which passes on only what it served") {
    Json surged = sim::model_load(chain(), all_running(), 3.0, none, {}, "d");
    CHECK(surged["surge"] == 3.0);
    CHECK(surged["components"]["ingest"]["offered"] == 300);
    CHECK(surged["components"]["ingest"]["served"] == 200);
    // Two thirds of the surged load reach detect: 60 * 3 * (200 / 300) = 120.
    CHECK(surged["components"]["detect"]["offered"] == 120);
    CHECK(surged["network"][0]["offered_mbps"] == 300);
    CHECK(surged["network"][0]["delivered_mbps"] == 100);  // the reservation is the ceiling
    CHECK(surged["network"][0]["congested"] == true);
    CHECK(surged["network"][1]["offered_mbps"] == 100);  // 50 * 3 * 2/3
  }
  SECTION("a degraded link is shared in proportion to what each deployment holds on it, and adds its latency") {
    sim::Conditions twin;
    twin.links["L2"] = {20.0, 30.0, "fault-1"};
    // L2 holds 100 Mbit/s in all (this deployment's 50 among them): 50 * 20/100 = 10 get through.
    Json degraded = sim::model_load(chain(), all_running(), 1.0, twin, {{"L2", 100.0}}, "d");
    const Json& flow = degraded["network"][1];
    CHECK(flow["delivered_mbps"] == 10);
    CHECK(flow["congested"] == true);
    CHECK(flow["latency_ms"] == 35);
    CHECK(flow["degraded_by"] == "fault-1");
    CHECK(degraded["end_to_end"]["latency_ms"] == 80);  // 1 + 4 + 35 + 40
  }
  SECTION("nothing running: no capacity, everything dropped, no latency") {
    Json idle = sim::model_load(chain(), {}, 1.0, none, {}, "d");
    CHECK(idle["components"]["ingest"]["utilization"].is_null());
    CHECK(idle["components"]["ingest"]["dropped"] == 100);
    CHECK(idle["end_to_end"]["latency_ms"].is_null());
    CHECK(idle["end_to_end"]["slo_met"] == false);
  }
}
