#include <catch2/catch.hpp>

#include <filesystem>
#include <set>

#include "cpn/blueprint/blueprint.hpp"
#include "cpn/inventory/measurement.hpp"
#include "support/daemon.hpp"
#include "support/engine_fixture.hpp"

using namespace cpn;
using Catch::Matchers::UnorderedEquals;

namespace {

blueprint::Context context(const std::map<std::string, Json>& templates = {}) {
  blueprint::Context ctx;
  for (const auto& [model, r] : inventory::Measurement::with_overrides(Json()).accelerators)
    ctx.accelerator_models.insert(model);
  ctx.find_template = [templates](const std::string& ref) -> const Json* {
    static std::map<std::string, Json> keep;
    auto it = templates.find(ref);
    if (it == templates.end()) return nullptr;
    keep[ref] = it->second;
    return &keep[ref];
  };
  return ctx;
}

Json small() {
  return Json::parse(R"({
    "apiVersion": "cpn/v1", "kind": "Blueprint",
    "metadata": {"name": "mini", "version": "1.0.0"},
    "parameters": {"streams": {"type": "integer", "minimum": 1, "maximum": 100, "default": 4},
                   "resolution": {"type": "string", "enum": ["720p", "4k"], "default": "720p"},
                   "budget_per_hour": {"type": "number"}},
    "derived": {"pixels": "resolution == '4k' ? 4 : 1", "load": "streams * pixels"},
    "components": [
      {"name": "detect", "tier": "edge", "image": "d:1", "demand": "load",
       "profiles": [{"target": {"arch": "x86_64", "accelerator": "nvidia-t4"}, "capacity": 24,
                     "requests": {"cpu": 2, "memory": "4Gi", "accelerators": 1}, "latency_ms": 18},
                    {"target": {"arch": "x86_64"}, "capacity": 2, "requests": {"cpu": 4, "memory": 4}, "latency_ms": 60}]},
      {"name": "analyze", "tier": "center", "image": "a:1", "demand": "load / 4",
       "profiles": [{"target": {"arch": "aarch64"}, "capacity": 10, "requests": {"cpu": "500m", "memory": 1}, "latency_ms": 5}]}],
    "connections": [{"from": "location", "to": "detect", "bandwidth_mbps": "streams * 4 * pixels", "max_latency_ms": 10},
                    {"from": "detect", "to": "analyze", "bandwidth_mbps": "load * 0.05"}],
    "slo": {"latency_ms": 100},
    "policies": [{"name": "scale", "type": "target-tracking", "component": "detect", "metric": "utilization", "target": 0.7},
                 {"name": "budget", "type": "budget", "max_per_hour": "budget_per_hour"}]
  })");
}

std::vector<std::string> pointers(const Error& e) { return test::pointers(e); }

}  // namespace

TEST_CASE("every blueprint in blueprints/ validates and evaluates with its defaults", "[blueprint]") {
  std::map<std::string, Json> templates;
  for (const auto& f : std::filesystem::directory_iterator(test::source_path("blueprints/templates"))) {
    auto doc = load_document_file(f.path().string());
    REQUIRE(doc);
    templates[blueprint::version_id((*doc)["metadata"]["name"], (*doc)["metadata"]["version"])] = (*doc)["spec"];
  }
  int count = 0;
  for (const auto& f : std::filesystem::directory_iterator(test::source_path("blueprints"))) {
    if (f.path().extension() != ".yaml") continue;
    INFO(f.path().string());
    auto doc = load_document_file(f.path().string());
    REQUIRE(doc);
    auto bp = blueprint::Blueprint::compile(*doc, context(templates));
    if (!bp)
      for (const auto& e : bp.error().errors) FAIL_CHECK(e.pointer << ": " << e.message);
    REQUIRE(bp);
    // the chain: end or edge in front, a centre component, a training one in the centre
    std::set<std::string> tiers;
    bool training = false;
    for (const auto& c : bp->components()) {
      tiers.insert(c.tier);
      if (c.training) training = c.tier == "center";
    }
    CHECK(tiers.count("edge"));
    CHECK(tiers.count("center"));
    CHECK(training);
    auto result = bp->evaluate(Json::object());
    REQUIRE(result);
    for (const auto& c : (*result)["components"]) CHECK(c["demand"]["value"].get<double>() > 0);
    ++count;
  }
  CHECK(count == 4);
}

TEST_CASE("evaluating a blueprint shows each figure with its expression", "[blueprint]") {
  auto bp = blueprint::Blueprint::compile(small(), context());
  REQUIRE(bp);
  auto r = bp->evaluate({{"streams", 12}, {"resolution", "4k"}});
  REQUIRE(r);
  CHECK((*r)["derived"]["load"] == Json({{"value", 48}, {"expression", "streams * pixels"}}));
  CHECK((*r)["components"][0]["demand"]["value"] == 48);
  CHECK((*r)["components"][0]["profiles"][0]["instances"] == 2);   // 48 / 24
  CHECK((*r)["components"][0]["profiles"][1]["instances"] == 24);  // 48 / 2
  CHECK((*r)["components"][1]["profiles"][0]["requests"]["cpu"] == 0.5);
  CHECK((*r)["connections"][0]["bandwidth_mbps"]["value"] == 192);
  CHECK((*r)["connections"][0]["max_latency_ms"]["value"] == 10);
  CHECK((*r)["slo"]["latency_ms"]["value"] == 100);
  CHECK((*r)["policies"][1]["max_per_hour"].is_null());  // no budget given
  auto budget = bp->evaluate({{"budget_per_hour", 30}});
  CHECK((*budget)["policies"][1]["max_per_hour"]["value"] == 30);
}

TEST_CASE("order parameters are checked against their declarations", "[blueprint]") {
  Json doc = small();
  doc["parameters"]["location"] = {{"type", "string"}, {"required", true}};
  auto bp = blueprint::Blueprint::compile(doc, context());
  REQUIRE(bp);
  // an order must give what the blueprint requires; a trial lists it
  auto order = bp->bind(Json::object(), "/parameters");
  REQUIRE_FALSE(order);
  CHECK(pointers(order.error()) == std::vector<std::string>{"/parameters/location"});
  CHECK(bp->bind(Json::object(), "/parameters", blueprint::Blueprint::Mode::trial));
  auto trial = bp->evaluate(Json::object());
  REQUIRE(trial);
  CHECK((*trial)["missing_required"] == Json{"location"});
  CHECK((*bp->evaluate({{"location", "cams-sz-nanshan"}}))["missing_required"].empty());

  auto r = bp->evaluate({{"streams", 0}, {"resolution", "8k"}, {"colour", "red"}});
  REQUIRE_FALSE(r);
  CHECK_THAT(pointers(r.error()), UnorderedEquals(std::vector<std::string>{"/parameters/streams", "/parameters/resolution",
                                                                           "/parameters/colour"}));
  auto wrong_type = bp->evaluate({{"streams", "many"}});
  REQUIRE_FALSE(wrong_type);
  CHECK(pointers(wrong_type.error()) == std::vector<std::string>{"/parameters/streams"});
  CHECK_FALSE(bp->evaluate({{"streams", 2.5}}));
}

TEST_CASE("a bad blueprint reports every problem with its pointer", "[blueprint]") {
  Json doc = small();
  doc["components"][1]["name"] = "detect";                                         // duplicate
  doc["components"][0]["profiles"][0]["target"]["accelerator"] = "nvidia-x9000";   // unknown model
  doc["components"][0]["demand"] = "load * fsp";                                   // unknown name
  doc["components"][1]["profiles"] = Json::array();                                // no profile
  doc["connections"][1]["to"] = "nowhere";                                         // unknown component
  doc["connections"][0]["max_latency_ms"] = "streams >";                           // syntax error
  doc["policies"][0]["component"] = "ghost";                                       // unknown component
  doc["policies"].push_back({{"name", "bw"}, {"type", "bandwidth"}, {"connection", 7}});  // no such connection
  doc["derived"]["a"] = "b + 1";
  doc["derived"]["b"] = "a * 2";                                                   // cycle
  doc["parameters"]["streams"]["default"] = 500;                                   // above maximum
  auto r = blueprint::Blueprint::compile(doc, context());
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == ErrorKind::unprocessable);
  CHECK_THAT(pointers(r.error()),
             UnorderedEquals(std::vector<std::string>{
                 "/components/1/name", "/components/0/profiles/0/target/accelerator", "/components/0/demand",
                 "/components/1/profiles", "/connections/1/to", "/connections/0/max_latency_ms",
                 "/policies/0/component", "/policies/2/connection", "/derived/b", "/parameters/streams/default"}));
  for (const auto& e : r.error().errors)
    if (e.pointer == "/connections/0/max_latency_ms") CHECK_THAT(e.message, Catch::Contains("line 1, column 10"));
}

TEST_CASE("connections form a tree from the location: no joins, no cycles", "[blueprint]") {
  Json join = small();
  join["connections"].push_back({{"from", "location"}, {"to", "analyze"}, {"bandwidth_mbps", 1}});
  auto r = blueprint::Blueprint::compile(join, context());
  REQUIRE_FALSE(r);
  CHECK(pointers(r.error()) == std::vector<std::string>{"/connections/2/to"});
  CHECK_THAT(r.error().errors[0].message, Catch::Contains("already fed by connection 1"));

  Json cycle = small();
  cycle["connections"][0]["from"] = "analyze";  // detect <- analyze <- detect
  auto c = blueprint::Blueprint::compile(cycle, context());
  REQUIRE_FALSE(c);
  CHECK_THAT(c.error().errors[0].message, Catch::Contains("cycle"));
}

TEST_CASE("a demand model giving a negative bandwidth or demand is an error, not a refund", "[blueprint]") {
  Json doc = small();
  doc["connections"][0]["bandwidth_mbps"] = "streams * 4 - 100";
  auto bp = blueprint::Blueprint::compile(doc, context());
  REQUIRE(bp);
  CHECK(bp->evaluate({{"streams", 50}}));
  auto negative = bp->evaluate({{"streams", 4}});
  REQUIRE_FALSE(negative);
  CHECK_THAT(negative.error().message, Catch::Contains("-84 Mbps"));
  doc["components"][1]["demand"] = "load - 10";
  auto bp2 = blueprint::Blueprint::compile(doc, context());
  REQUIRE(bp2);
  auto demand = bp2->evaluate({{"streams", 8}});
  REQUIRE_FALSE(demand);
  CHECK_THAT(demand.error().message, Catch::Contains("cannot be negative"));
}

TEST_CASE("a component template is expanded and overridden field by field", "[blueprint]") {
  Json spec = {{"tier", "edge"},
               {"image", "yolo:1"},
               {"demand", "load"},
               {"profiles", {{{"target", {{"arch", "x86_64"}}}, {"capacity", 5}, {"requests", {{"cpu", 2}, {"memory", 2}}},
                              {"latency_ms", 30}}}}};
  Json doc = small();
  doc["components"][0] = {{"name", "detect"}, {"template", "yolo@1.0.0"}, {"image", "yolo:2"}, {"demand", "load * 2"}};
  auto bp = blueprint::Blueprint::compile(doc, context({{"yolo@1.0.0", spec}}));
  REQUIRE(bp);
  const auto& c = bp->components()[0];
  CHECK(c.image == "yolo:2");
  CHECK(c.tier == "edge");
  CHECK(c.demand.text() == "load * 2");
  CHECK(c.profiles.size() == 1);
  doc["components"][0]["template"] = "yolo@9.9.9";
  auto missing = blueprint::Blueprint::compile(doc, context({{"yolo@1.0.0", spec}}));
  REQUIRE_FALSE(missing);
  CHECK(pointers(missing.error()) == std::vector<std::string>{"/components/0/template"});
}

TEST_CASE("the diff of two versions is a JSON Patch", "[blueprint]") {
  Json a = small(), b = small();
  b["metadata"]["version"] = "1.1.0";
  b["derived"]["load"] = "streams * pixels * 2";
  b["components"][0]["profiles"].erase(1);
  b["parameters"].erase("budget_per_hour");
  auto ops = blueprint::diff(a, b);
  std::set<std::string> paths;
  for (const auto& op : ops) paths.insert(op["op"].get<std::string>() + " " + op["path"].get<std::string>());
  CHECK(paths == std::set<std::string>{"replace /metadata/version", "replace /derived/load",
                                       "replace /components/0/profiles", "remove /parameters/budget_per_hour"});
}
