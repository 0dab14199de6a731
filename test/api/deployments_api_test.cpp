// Deployment templates through the real daemon: a confirmed order becomes
// a deployment with a self-contained template (JSON or YAML); a template
// can be submitted directly, is checked against its schema and the live
// inventory, holds its resources, and gives them back when deleted.
#include <catch2/catch.hpp>
#include <yaml-cpp/yaml.h>

#include "cpn/core/document.hpp"
#include "support/daemon.hpp"
#include "support/templates.hpp"

using namespace cpn;

namespace {


double node_cpu_free(test::Daemon& d, const std::string& node) {
  return d.admin().get("/v1/nodes/" + node).json()["free"]["cpu"].get<double>();
}

}  // namespace

TEST_CASE("a confirmed order becomes a deployment with a self-contained template", "[api][deployments]") {
  // The reconciler is paused: the deployment stays pending, so the order can be cancelled.
  test::Daemon d({.env = {{"CPND_RECONCILE_MS", "0"}}, .dev = true});
  auto customer = d.as("customer", "city-a");
  Json order = test::confirm_video_order(customer);
  std::string id = order["deployment"];
  auto dep = customer.get("/v1/deployments/" + id);
  REQUIRE(dep.status == 200);
  CHECK(dep.json()["state"] == "pending");
  CHECK(dep.json()["order"] == order["id"]);
  CHECK(dep.json()["tenant"] == "city-a");

  Json t = customer.get("/v1/deployments/" + id + "/template").json();
  CHECK(t["kind"] == "DeploymentTemplate");
  CHECK(t["metadata"]["order"] == order["id"]);
  CHECK(t["metadata"]["solution"] == "s1");
  Json solution = order["solutions"][0];
  // Every placement of the solution is there, with the variant for its node.
  std::size_t placements = 0;
  for (const auto& c : t["spec"]["components"]) {
    CHECK(c.contains("image"));
    if (c["name"] == "detect") CHECK(c["model"] == Json{{"name", "yolov5s-city"}, {"version", "latest"}});
    for (const auto& p : c["placements"]) {
      ++placements;
      CHECK(p["variant"]["platform"] == (p["arch"] == "aarch64" ? "linux/arm64" : "linux/amd64"));
      std::string model = p.value("accelerator", "");
      CHECK(p["variant"]["accelerator"] == (model.empty()                         ? "none"
                                            : model.rfind("nvidia-", 0) == 0      ? "cuda"
                                            : model.rfind("ascend-", 0) == 0      ? "cann"
                                                                                  : "xrt"));
    }
  }
  CHECK(placements == solution["placements"].size());
  CHECK(t["spec"]["network"].size() == solution["network"].size());
  for (const auto& n : t["spec"]["network"]) CHECK(n["links"].size() + 1 == n["path"].size());
  // Policies with their parameters evaluated: no expressions left.
  for (const auto& p : t["spec"]["policies"])
    for (const auto& [k, v] : p.items()) CHECK_FALSE((v.is_object() && v.contains("expression")));
  CHECK(t["spec"]["billing"]["per_hour"] == solution["quote"]["per_hour"]);
  CHECK(t["spec"]["duration_hours"] == order["duration_hours"]);
  CHECK(t["spec"]["slo"]["latency_ms"] == 500);

  // The same template in YAML.
  auto yaml = customer.request("GET", "/v1/deployments/" + id + "/template", "", {{"Accept", "application/yaml"}});
  REQUIRE(yaml.status == 200);
  CHECK(yaml.header("content-type").find("yaml") != std::string::npos);
  auto parsed = parse_document(yaml.body, Format::yaml);
  REQUIRE(parsed);
  CHECK(*parsed == t);

  CHECK(d.as("customer", "city-b").get("/v1/deployments/" + id).status == 404);
  CHECK(d.as("customer", "city-b").get("/v1/deployments").json()["items"].empty());
  CHECK(customer.del("/v1/deployments/" + id).status == 409);  // it belongs to the order

  SECTION("cancelling the order ends the deployment and gives its resources back") {
    std::string node = solution["placements"][0]["node"];
    double held = node_cpu_free(d, node);
    REQUIRE(customer.post("/v1/orders/" + order["id"].get<std::string>() + "/cancel", Json::object()).status == 200);
    CHECK(customer.get("/v1/deployments/" + id).json()["state"] == "cancelled");
    CHECK(node_cpu_free(d, node) > held);

    SECTION("and the generated template, submitted directly, is accepted and holds them again") {
      t["metadata"]["name"] = "replay";
      // Customers reach resources only through offerings: a template of theirs is refused, nothing held.
      auto refused = customer.post("/v1/deployments", t);
      CHECK(refused.status == 403);
      CHECK(node_cpu_free(d, node) > held);
      auto op = d.as("operator");
      auto r = op.post("/v1/deployments", t);
      REQUIRE(r.status == 201);
      const std::string location = r.header("location");
      CHECK(location == "/v1/deployments/" + r.json()["id"].get<std::string>());
      CHECK(r.json()["name"] == "replay");
      CHECK(r.json()["source"] == "template");
      CHECK(node_cpu_free(d, node) == Approx(held));
      REQUIRE(op.del(location).status == 204);
      CHECK(node_cpu_free(d, node) > held);
      CHECK(op.get(location).status == 404);
    }
  }
}

TEST_CASE("a submitted template is checked against its schema and the live inventory", "[api][deployments]") {
  test::Daemon d({.dev = true});
  auto op = d.as("operator");
  auto tmpl = [] {
    return test::deployment_template(
        "plates", {test::plate_reader()},
        {{{"from", "location"}, {"to", "read"}, {"from_site", "cams-sz-futian"}, {"to_site", "edge-sz-1"},
          {"path", {"cams-sz-futian", "edge-sz-1"}}, {"bandwidth_mbps", 100}}});
  };
  struct Case {
    std::string what;
    std::function<void(Json&)> change;
    std::string pointer;
    int status;
  };
  std::vector<Case> cases = {
      {"no instances", [](Json& t) { t["spec"]["components"][0]["placements"][0]["instances"] = 0; },
       "/spec/components/0/placements/0/instances", 422},
      {"unknown field", [](Json& t) { t["spec"]["colour"] = "red"; }, "/spec/colour", 422},
      {"unknown node", [](Json& t) { t["spec"]["components"][0]["placements"][0]["node"] = "ghost"; },
       "/spec/components/0/placements/0/node", 422},
      {"node at another site", [](Json& t) { t["spec"]["components"][0]["placements"][0]["site"] = "edge-dg-1"; },
       "/spec/components/0/placements/0/site", 422},
      {"wrong architecture", [](Json& t) { t["spec"]["components"][0]["placements"][0]["arch"] = "aarch64"; },
       "/spec/components/0/placements/0/arch", 422},
      {"accelerator the node lacks", [](Json& t) { t["spec"]["components"][0]["placements"][0]["accelerator"] = "ascend-310"; },
       "/spec/components/0/placements/0/accelerator", 422},
      {"network to no component", [](Json& t) { t["spec"]["network"][0]["to"] = "detect"; }, "/spec/network/0/to", 422},
      {"a hop without a link", [](Json& t) { t["spec"]["network"][0]["path"] = {"cams-sz-futian", "center-gz"}; t["spec"]["network"][0]["to_site"] = "center-gz"; },
       "/spec/network/0/path/1", 422},
      {"more than the node has free", [](Json& t) { t["spec"]["components"][0]["placements"][0]["instances"] = 40; },
       "/spec", 409},
      {"more than the link has free", [](Json& t) { t["spec"]["network"][0]["bandwidth_mbps"] = 1e6; }, "/spec", 409},
      {"more instances than a placement may have",
       [](Json& t) { t["spec"]["components"][0]["placements"][0]["instances"] = 65; },
       "/spec/components/0/placements/0/instances", 422},
      {"instances that hold nothing", [](Json& t) { t["spec"]["components"][0]["placements"][0]["requests"]["cpu"] = 0; },
       "/spec/components/0/placements/0/requests/cpu", 422},
      {"more instances than a deployment may have",
       [](Json& t) {
         Json p = t["spec"]["components"][0]["placements"][0];
         p["instances"] = 60;
         t["spec"]["components"][0]["placements"] = Json::array({p, p, p, p, p});
       },
       "/spec/components", 422},
      {"a count that would wrap", [](Json& t) { t["spec"]["components"][0]["placements"][0]["instances"] = 4294967295ll; },
       "/spec/components/0/placements/0/instances", 422},
      {"a number no quantity can be", [](Json& t) { t["spec"]["components"][0]["placements"][0]["requests"]["cpu"] = 1e300; },
       "/spec/components/0/placements/0/requests/cpu", 422},
  };
  Json before = op.get("/v1/nodes/sz-t4-1").json()["allocated"];
  for (const auto& c : cases) {
    Json t = tmpl();
    c.change(t);
    auto r = op.post("/v1/deployments", t);
    INFO(c.what << ": " << r.body);
    CHECK(r.status == c.status);
    auto got = test::error_pointers(r);
    CHECK(std::count(got.begin(), got.end(), c.pointer) >= 1);
  }
  CHECK(op.get("/v1/deployments").json()["items"].empty());
  CHECK(op.get("/v1/nodes/sz-t4-1").json()["allocated"] == before);

  // Its own price and its own command are not taken: billing at cost from the inventory's prices,
  // the variant from the image registry (here: none, so the one its node implies, with no command).
  Json planted = tmpl();
  planted["spec"]["billing"] = {{"per_hour", 0}, {"total", 0}};
  planted["spec"]["components"][0]["placements"][0]["variant"] = {{"platform", "linux/amd64"},
                                                                  {"command", {"/bin/sh", "-c", "id"}}};
  auto ok = op.post("/v1/deployments", planted);
  REQUIRE(ok.status == 201);
  Json dep = ok.json();
  CHECK(dep["template"]["spec"]["billing"]["source"] == "at-cost");
  CHECK(dep["template"]["spec"]["billing"]["per_hour"].get<double>() > 0);
  CHECK_FALSE(dep["template"]["spec"]["components"][0]["placements"][0]["variant"].contains("command"));
  CHECK(dep["template"]["spec"]["network"][0]["links"] == Json::array({"cams-sz-futian--edge-sz-1"}));  // found from the path
  CHECK(op.get("/v1/nodes/sz-t4-1").json()["allocated"]["accelerators"] == before.value("accelerators", 0) + 2);
  CHECK(op.post("/v1/deployments", tmpl()).status == 409);  // the name is taken
}
