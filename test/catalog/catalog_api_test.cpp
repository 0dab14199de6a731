// Design to catalogue through the real daemon: a designer composes a
// blueprint from a component template, tries it, publishes it; an
// operator prices and publishes an offering; customers see the catalogue.
#include <catch2/catch.hpp>
#include <set>

#include "support/daemon.hpp"

using namespace cpn;

namespace {

Json template_doc() {
  return {{"apiVersion", "cpn/v1"},
          {"kind", "ComponentTemplate"},
          {"metadata", {{"name", "plate-reader"}, {"version", "1.0.0"}}},
          {"spec",
           {{"tier", "edge"},
            {"image", "plate-reader:1.0"},
            {"demand", "streams"},
            {"profiles",
             {{{"target", {{"arch", "x86_64"}, {"accelerator", "nvidia-t4"}}},
               {"capacity", 32},
               {"requests", {{"cpu", 2}, {"memory", "4Gi"}, {"accelerators", 1}}},
               {"latency_ms", 12}},
              {{"target", {{"arch", "aarch64"}, {"accelerator", "ascend-310"}}},
               {"capacity", 20},
               {"requests", {{"cpu", 1}, {"memory", "2Gi"}, {"accelerators", 1}}},
               {"latency_ms", 15}}}}}}};
}

Json blueprint_doc(const std::string& version) {
  return {{"apiVersion", "cpn/v1"},
          {"kind", "Blueprint"},
          {"metadata", {{"name", "parking"}, {"version", version}, {"title", "Car park plate reading"}}},
          {"parameters",
           {{"streams", {{"type", "integer"}, {"minimum", 1}, {"maximum", 400}, {"default", 8}}},
            {"location", {{"type", "string"}}}}},
          {"components",
           {{{"name", "read"}, {"template", "plate-reader@1.0.0"}},
            {{"name", "ledger"},
             {"tier", "center"},
             {"image", "ledger:2"},
             {"demand", "streams / 10"},
             {"profiles",
              {{{"target", {{"arch", "x86_64"}}}, {"capacity", 5}, {"requests", {{"cpu", 1}, {"memory", 2}}},
                {"latency_ms", 4}}}}},
            {{"name", "retrain"},
             {"tier", "center"},
             {"image", "trainer:1"},
             {"training", true},
             {"demand", "1"},
             {"profiles",
              {{{"target", {{"arch", "x86_64"}, {"accelerator", "nvidia-a100"}}}, {"capacity", 1},
                {"requests", {{"cpu", 8}, {"memory", 64}, {"accelerators", 1}}}, {"latency_ms", 0}}}}}}},
          {"connections",
           {{{"from", "location"}, {"to", "read"}, {"bandwidth_mbps", "streams * 2"}, {"max_latency_ms", 5}},
            {{"from", "read"}, {"to", "ledger"}, {"bandwidth_mbps", 1}}}},
          {"slo", {{"latency_ms", 80}}},
          {"policies", {{{"name", "failover"}, {"type", "failover"}, {"component", "read"}, {"allow_cross_arch", true}}}}};
}

Json offering_doc() {
  return {{"name", "parking-basic"},
          {"blueprint", {{"name", "parking"}, {"version", "1.0.0"}}},
          {"service_mode",
           {{"parameters",
             {{"streams", {{"settable", true}, {"minimum", 1}, {"maximum", 64}, {"default", 4}}},
              {"location", {{"settable", true}}}}}}},
          {"billing", {{"modes", {"per_minute"}}, {"unit_prices", {{"per_minute", 0.02}}}, {"minimum_charge", 5}}}};
}

}  // namespace

TEST_CASE("a designer composes, tries and publishes a blueprint, an operator sells it", "[api][catalog]") {
  test::Daemon d;
  auto designer = d.as("designer");
  auto op = d.as("operator");
  auto customer = d.as("customer", "acme");

  REQUIRE(designer.post("/v1/component-templates", template_doc()).status == 201);
  auto created = designer.post("/v1/blueprints", blueprint_doc("1.0.0"));
  REQUIRE(created.status == 201);
  CHECK(created.header("location") == "/v1/blueprints/parking/versions/1.0.0");
  CHECK(created.json()["status"]["state"] == "draft");
  CHECK(created.json()["metadata"]["title"] == "Car park plate reading");
  CHECK(designer.post("/v1/blueprints", blueprint_doc("1.0.0")).status == 409);

  // try it
  auto tried = designer.post("/v1/blueprints/parking/versions/1.0.0/evaluate", {{"parameters", {{"streams", 100}}}});
  REQUIRE(tried.status == 200);
  Json t = tried.json();
  CHECK(t["components"][0]["demand"] == Json({{"value", 100}, {"expression", "streams"}}));
  CHECK(t["components"][0]["profiles"][0]["instances"] == 4);  // ceil(100 / 32), from the template
  CHECK(t["connections"][0]["bandwidth_mbps"]["value"] == 200);
  auto bad_try = designer.post("/v1/blueprints/parking/versions/1.0.0/evaluate", {{"parameters", {{"streams", 9999}}}});
  CHECK(bad_try.status == 422);
  CHECK(bad_try.json()["errors"][0]["pointer"] == "/parameters/streams");

  // YAML read, then PUT back while still a draft
  auto yaml = designer.request("GET", "/v1/blueprints/parking/versions/1.0.0", "", {{"Accept", "application/yaml"}});
  REQUIRE(yaml.status == 200);
  Json edited = designer.get("/v1/blueprints/parking/versions/1.0.0").json();
  edited["slo"]["latency_ms"] = 60;
  REQUIRE(designer.put("/v1/blueprints/parking/versions/1.0.0", edited).status == 200);

  // a template in use cannot go
  CHECK(designer.del("/v1/component-templates/plate-reader/versions/1.0.0").status == 409);

  // an offering on a draft blueprint cannot be published
  REQUIRE(op.post("/v1/offerings", offering_doc()).status == 201);
  auto early = op.request("POST", "/v1/offerings/parking-basic/publish");
  CHECK(early.status == 409);
  CHECK(customer.get("/v1/offerings/parking-basic").status == 404);  // drafts are not in the catalogue

  REQUIRE(designer.request("POST", "/v1/blueprints/parking/versions/1.0.0/publish").status == 200);
  auto frozen = designer.put("/v1/blueprints/parking/versions/1.0.0", edited);
  CHECK(frozen.status == 409);

  // a second version and the diff between them
  Json v2 = blueprint_doc("1.1.0");
  v2["components"][1]["demand"] = "streams / 5";
  REQUIRE(designer.post("/v1/blueprints", v2).status == 201);
  auto diff = designer.get("/v1/blueprints/parking/diff?from=1.0.0&to=1.1.0");
  REQUIRE(diff.status == 200);
  std::set<std::string> paths;
  for (const auto& c : Json(diff.json()["changes"])) paths.insert(c["path"].get<std::string>());
  CHECK(paths.count("/components/1/demand"));
  CHECK(paths.count("/metadata/version"));
  CHECK(designer.get("/v1/blueprints?name=parking").json()["items"].size() == 2);

  // publish, suspend, publish again, retire; customers follow
  REQUIRE(op.request("POST", "/v1/offerings/parking-basic/publish").status == 200);
  auto listed = customer.get("/v1/offerings");
  REQUIRE(listed.status == 200);
  CHECK(listed.json()["items"].size() == 1);
  CHECK(customer.get("/v1/offerings/parking-basic").json()["billing"]["currency"] == "CNY");
  CHECK(op.put("/v1/offerings/parking-basic", offering_doc()).status == 409);  // terms are fixed once published

  // retiring the blueprint version it sells is refused, naming the offering
  auto retire = designer.request("POST", "/v1/blueprints/parking/versions/1.0.0/retire");
  CHECK(retire.status == 409);
  CHECK_THAT(retire.json()["detail"].get<std::string>(), Catch::Contains("offering/parking-basic"));

  REQUIRE(op.request("POST", "/v1/offerings/parking-basic/suspend").json()["status"]["state"] == "suspended");
  CHECK(customer.get("/v1/offerings").json()["items"].empty());
  CHECK(op.request("POST", "/v1/offerings/parking-basic/suspend").status == 409);
  REQUIRE(op.request("POST", "/v1/offerings/parking-basic/publish").status == 200);
  REQUIRE(op.request("POST", "/v1/offerings/parking-basic/retire").status == 200);
  CHECK(op.request("POST", "/v1/offerings/parking-basic/publish").status == 409);
  CHECK(designer.request("POST", "/v1/blueprints/parking/versions/1.0.0/retire").status == 200);

  // roles: designers write blueprints, operators price, customers read the catalogue
  CHECK(op.post("/v1/blueprints", blueprint_doc("2.0.0")).status == 403);
  CHECK(designer.post("/v1/offerings", offering_doc()).status == 403);
  CHECK(customer.get("/v1/blueprints").status == 403);
}

TEST_CASE("a bad blueprint or offering is refused with pointers and nothing is stored", "[api][catalog]") {
  test::Daemon d;
  auto designer = d.as("designer");
  auto op = d.as("operator");
  Json bad = blueprint_doc("1.0.0");
  bad["components"][0]["template"] = "no-such@1.0.0";
  bad["connections"][1]["from"] = "ghost";
  bad["colour"] = "red";
  auto r = designer.post("/v1/blueprints", bad);
  CHECK(r.status == 422);
  std::set<std::string> ptrs;
  for (const auto& e : Json(r.json()["errors"])) ptrs.insert(e["pointer"].get<std::string>());
  CHECK(ptrs.count("/colour"));
  CHECK(designer.get("/v1/blueprints").json()["items"].empty());

  Json good = blueprint_doc("1.0.0");
  good["components"][0] = {{"name", "read"}, {"tier", "edge"}, {"image", "x:1"}, {"demand", "streams"},
                           {"profiles", {{{"target", {{"arch", "x86_64"}}}, {"capacity", 4},
                                          {"requests", {{"cpu", 1}, {"memory", 1}}}, {"latency_ms", 20}}}}};
  REQUIRE(designer.post("/v1/blueprints", good).status == 201);
  Json offering = offering_doc();
  offering["service_mode"]["parameters"]["streams"]["maximum"] = 100000;  // beyond the blueprint's 400
  offering["service_mode"]["parameters"]["colour"] = {{"settable", true}};
  offering["billing"]["modes"] = {"per_hour"};
  auto o = op.post("/v1/offerings", offering);
  CHECK(o.status == 422);
  ptrs.clear();
  for (const auto& e : Json(o.json()["errors"])) ptrs.insert(e["pointer"].get<std::string>());
  CHECK(ptrs.count("/billing/modes/0"));
  offering["billing"]["modes"] = {"per_minute"};
  o = op.post("/v1/offerings", offering);
  CHECK(o.status == 422);
  ptrs.clear();
  for (const auto& e : Json(o.json()["errors"])) ptrs.insert(e["pointer"].get<std::string>());
  CHECK(ptrs == std::set<std::string>{"/service_mode/parameters/streams/maximum", "/service_mode/parameters/colour"});
  CHECK(op.get("/v1/offerings").json()["items"].empty());
}

TEST_CASE("cpnd --dev publishes the four blueprints and the example offerings", "[api][catalog]") {
  test::Daemon d({.dev = true});
  auto items = d.as("operator").get("/v1/blueprints").json()["items"];
  std::set<std::string> names;
  for (const auto& b : items) {
    names.insert(b["metadata"]["name"].get<std::string>());
    CHECK(b["status"]["state"] == "published");
  }
  CHECK(names == std::set<std::string>{"face-verification", "video-detection", "industrial-inspection",
                                       "vehicle-network"});
  auto catalogue = d.as("customer").get("/v1/offerings").json()["items"];
  CHECK(catalogue.size() >= 2);
  for (const auto& b : items) {
    std::string path = "/v1/blueprints/" + b["metadata"]["name"].get<std::string>() + "/versions/" +
                       b["metadata"]["version"].get<std::string>() + "/evaluate";
    CHECK(d.as("operator").post(path, {{"parameters", Json::object()}}).status == 200);
  }
}
