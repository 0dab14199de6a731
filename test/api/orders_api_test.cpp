// Ordering through the real daemon on the demo topology: a customer
// orders an offering, gets demand and priced solutions, confirms one (which
// holds its nodes and links), cancels (which gives them back); quotes
// expire; tenants do not see each other; operators run what-ifs.
#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "support/daemon.hpp"

using namespace cpn;

namespace {

Json video_order(Json parameters = Json::object()) {
  if (!parameters.contains("location")) parameters["location"] = "cams-sz-futian";
  return {{"offering", "city-video-detection"}, {"parameters", parameters}};
}

// What the solution's nodes and links have free, read through the API.
struct Held {
  std::map<std::string, Json> nodes;
  std::map<std::string, double> links;
};

Held held_by(client::HttpClient& op, const Json& solution) {
  Held h;
  for (const auto& p : solution["placements"]) {
    std::string node = p["node"];
    h.nodes[node] = op.get("/v1/nodes/" + node).json()["free"];
  }
  for (const auto& n : solution["network"])
    for (const auto& l : n["links"]) {
      std::string id = l;
      h.links[id] = op.get("/v1/links/" + id).json()["free_mbps"].get<double>();
    }
  return h;
}

}  // namespace

TEST_CASE("a customer's order comes back quoted with its demand and several priced solutions", "[api][orders]") {
  test::Daemon d({.dev = true});
  auto customer = d.as("customer", "city-a");
  auto r = customer.post("/v1/orders", video_order({{"streams", 64}}));
  REQUIRE(r.status == 201);
  Json order = r.json();
  CHECK(r.header("location") == "/v1/orders/" + order["id"].get<std::string>());
  CHECK(order["state"] == "quoted");
  CHECK(order["tenant"] == "city-a");
  CHECK(order["parameters"]["streams"] == 64);
  CHECK(order["parameters"]["resolution"] == "1080p");  // a default filled in
  // The demand: every derived value, each component's demand, bandwidth and latency budgets.
  CHECK(order["demand"]["derived"]["load"]["value"] == 64);
  CHECK(order["demand"]["components"].size() == 4);
  CHECK(order["demand"]["connections"][0]["bandwidth_mbps"]["value"] == 256);
  CHECK(order["demand"]["scheduled_separately"] == Json::array({"train"}));
  // Several different solutions, each complete.
  Json solutions = order["solutions"];
  REQUIRE(solutions.size() >= 2);
  // The operator sees the same solutions with their resource cost; the customer its price and its lines only.
  Json full = d.as("operator").get("/v1/orders/" + order["id"].get<std::string>()).json()["solutions"];
  REQUIRE(full.size() == solutions.size());
  std::set<std::string> labels;
  for (std::size_t i = 0; i < solutions.size(); ++i) {
    const Json& s = solutions[i];
    CHECK_FALSE(s["estimate"].contains("cost_per_hour"));
    CHECK_FALSE(s["quote"].contains("resource_cost_per_hour"));
    double lines = 0;
    for (const auto& line : s["quote"]["breakdown"]) {
      CHECK(line["item"] != "compute");
      CHECK(line["item"] != "markup");
      lines += line["per_hour"].get<double>();
    }
    CHECK(lines == Approx(s["quote"]["per_hour"].get<double>()).epsilon(1e-3));
    for (const auto& l : s["labels"]) labels.insert(l);
    CHECK_FALSE(s["placements"].empty());
    for (const auto& p : s["placements"])
      for (const char* field : {"component", "site", "node", "target", "image", "instances", "requests"}) CHECK(p.contains(field));
    for (const auto& n : s["network"]) {
      CHECK(n["path"].size() >= 1);
      CHECK(n["latency_ms"].get<double>() <= n.value("max_latency_ms", 1e9));
    }
    CHECK(s["estimate"]["latency_ms"].get<double>() <= 500);
    double cost = full[i]["estimate"]["cost_per_hour"];
    CHECK(cost > 0);
    // city-video-detection: resources plus a 35% markup, per minute, for the default 24 hours.
    CHECK(s["quote"]["currency"] == "CNY");
    CHECK(s["quote"]["billing_mode"] == "per_minute");
    CHECK(s["quote"]["per_hour"].get<double>() == Approx(cost * 1.35).epsilon(1e-3));
    CHECK(s["quote"]["total"].get<double>() == Approx(std::max(50.0, cost * 1.35 * 24)).epsilon(1e-3));
  }
  CHECK(labels.count("lowest-cost"));
  CHECK(labels.count("lowest-latency"));
  CHECK(labels.count("balanced"));
  CHECK(solutions[0]["placements"] != solutions[1]["placements"]);
  // The cheapest is labelled lowest-cost.
  double cheapest = 1e9;
  for (const auto& s : full) cheapest = std::min(cheapest, s["estimate"]["cost_per_hour"].get<double>());
  for (const auto& s : full)
    if (std::find(s["labels"].begin(), s["labels"].end(), "lowest-cost") != s["labels"].end())
      CHECK(s["estimate"]["cost_per_hour"].get<double>() == cheapest);

  SECTION("the order reads back the same, and an Idempotency-Key replays it") {
    auto again = customer.get("/v1/orders/" + order["id"].get<std::string>());
    REQUIRE(again.status == 200);
    CHECK(again.json()["solutions"] == order["solutions"]);
    auto first = customer.post("/v1/orders", video_order(), {{"Idempotency-Key", "order-1"}});
    auto second = customer.post("/v1/orders", video_order(), {{"Idempotency-Key", "order-1"}});
    CHECK(first.json()["id"] == second.json()["id"]);
    CHECK(customer.get("/v1/orders").json()["items"].size() == 2);
  }
}

TEST_CASE("bad orders get a problem naming each field, and nothing is stored", "[api][orders]") {
  test::Daemon d({.dev = true});
  auto customer = d.as("customer");
  struct Case {
    Json body;
    std::vector<std::string> pointers;
    int status;
  };
  std::vector<Case> cases = {
      {video_order({{"streams", 5000}}), {"/parameters/streams"}, 422},           // over the offering's maximum
      {video_order({{"model_size", "l"}}), {"/parameters/model_size"}, 422},      // not in the offering's enum
      {video_order({{"color", "red"}}), {"/parameters/color"}, 422},              // unknown
      {{{"offering", "city-video-detection"}, {"parameters", Json::object()}}, {"/parameters/location"}, 422},  // required
      {video_order({{"location", "Atlantis"}}), {"/parameters/location"}, 422},   // no such site or city
      {{{"offering", "nope"}, {"parameters", {{"location", "x"}}}}, {"/offering"}, 422},
      {{{"offering", "city-video-detection"}, {"bogus", 1}}, {"/bogus"}, 422},
      {{{"offering", "city-video-detection"}, {"parameters", {{"location", "cams-sz-futian"}}}, {"duration", "soon"}},
       {"/duration"}, 422},
      {{{"offering", "city-video-detection"}, {"parameters", {{"location", "cams-sz-futian"}}}, {"billing_mode", "per_request"}},
       {"/billing_mode"}, 422},
  };
  for (const auto& c : cases) {
    auto r = customer.post("/v1/orders", c.body);
    INFO(c.body.dump() << " -> " << r.body);
    CHECK(r.status == c.status);
    CHECK(r.header("content-type") == "application/problem+json");
    auto got = test::error_pointers(r);
    for (const auto& p : c.pointers) CHECK(std::count(got.begin(), got.end(), p) == 1);
  }
  CHECK(d.admin().get("/v1/orders").json()["items"].empty());
  CHECK(d.as("designer").post("/v1/orders", video_order()).status == 403);
}

TEST_CASE("confirming holds the solution's nodes and links, cancelling gives them back", "[api][orders]") {
  // The reconciler is paused: the deployment stays pending, so the order can be cancelled.
  test::Daemon d({.env = {{"CPND_RECONCILE_MS", "0"}}, .dev = true});
  auto customer = d.as("customer");
  auto op = d.as("operator");
  Json order = customer.post("/v1/orders", video_order({{"streams", 120}})).json();
  std::string id = order["id"];
  Json solution = order["solutions"][0];
  Held before = held_by(op, solution);

  CHECK(test::error_pointers(customer.post("/v1/orders/" + id + "/confirm", {{"solution", "s99"}})) == std::vector<std::string>{"/solution"});
  auto confirmed = customer.post("/v1/orders/" + id + "/confirm", {{"solution", solution["id"]}});
  REQUIRE(confirmed.status == 200);
  CHECK(confirmed.json()["state"] == "confirmed");
  CHECK(confirmed.json()["confirmed"]["solution"] == solution["id"]);

  // Every node now has exactly the solution's requests less free.
  std::map<std::string, double> cpu;
  for (const auto& p : solution["placements"]) cpu[p["node"]] += p["requests"]["cpu"].get<double>() * p["instances"].get<int>();
  Held during = held_by(op, solution);
  for (const auto& [node, used] : cpu) CHECK(during.nodes[node]["cpu"].get<double>() == Approx(before.nodes[node]["cpu"].get<double>() - used));
  std::map<std::string, double> mbps;
  for (const auto& n : solution["network"])
    for (const auto& l : n["links"]) mbps[l] += n["bandwidth_mbps"].get<double>();
  for (const auto& [link, used] : mbps) CHECK(during.links[link] == Approx(before.links[link] - used));

  CHECK(customer.post("/v1/orders/" + id + "/confirm", {{"solution", solution["id"]}}).status == 409);
  // What an order holds cannot be deleted from under it.
  std::string held_node = solution["placements"][0]["node"];
  auto refused = d.admin().del("/v1/nodes/" + held_node);
  CHECK(refused.status == 409);
  std::string deployment = confirmed.json()["deployment"];
  CHECK(refused.json()["detail"].get<std::string>().find("deployment/" + deployment) != std::string::npos);

  // A new order is solved on what is left: it never counts the held resources as free.
  Json next = customer.post("/v1/orders", video_order({{"streams", 120}})).json();
  for (const auto& s : next["solutions"])
    for (const auto& p : s["placements"]) {
      std::string node = p["node"];
      CHECK(p["requests"]["cpu"].get<double>() * p["instances"].get<int>() <= during.nodes[node]["cpu"].get<double>() + 1e-9);
    }

  auto cancelled = customer.post("/v1/orders/" + id + "/cancel", Json::object());
  REQUIRE(cancelled.status == 200);
  CHECK(cancelled.json()["state"] == "cancelled");
  Held after = held_by(op, solution);
  for (const auto& [node, free] : before.nodes) CHECK(after.nodes[node] == free);
  for (const auto& [link, free] : before.links) CHECK(after.links[link] == Approx(free));
  CHECK(customer.post("/v1/orders/" + id + "/cancel", Json::object()).status == 409);
  // The solver sees it all free again: the same order gets the same answer as the first time.
  Json again = customer.post("/v1/orders", video_order({{"streams", 120}})).json();
  CHECK(again["solutions"][0]["placements"] == solution["placements"]);
  CHECK(again["solutions"][0]["network"] == solution["network"]);

  // Every transition is an event.
  std::vector<std::string> types;
  Json events = op.get("/v1/events?since=0&limit=1000").json();
  for (const auto& e : events["items"])
    if (e["kind"] == "order" && e["id"] == id) types.push_back(e["type"]);
  CHECK(types == std::vector<std::string>{"OrderQuoted", "OrderConfirmed", "OrderCancelled"});
}

TEST_CASE("a quote confirmed after its resources were taken is refused with the reason", "[api][orders]") {
  test::Daemon d({.dev = true});
  auto customer = d.as("customer");
  // Two quotes for the same big order: the first confirmed leaves too little for the second.
  Json a = customer.post("/v1/orders", video_order({{"streams", 250}})).json();
  Json b = customer.post("/v1/orders", video_order({{"streams", 250}})).json();
  REQUIRE(a["solutions"].size() >= 1);
  REQUIRE(customer.post("/v1/orders/" + a["id"].get<std::string>() + "/confirm", {{"solution", "s1"}}).status == 200);
  auto late = customer.post("/v1/orders/" + b["id"].get<std::string>() + "/confirm", {{"solution", "s1"}});
  REQUIRE(late.status == 409);
  CHECK(test::error_pointers(late).at(0) == "/solution");
  CHECK(customer.get("/v1/orders/" + b["id"].get<std::string>()).json()["state"] == "quoted");
  // A requote solves it again on what is left.
  auto requoted = customer.post("/v1/orders/" + b["id"].get<std::string>() + "/requote", Json::object());
  REQUIRE(requoted.status == 200);
  Json fresh = requoted.json();
  if (!fresh["solutions"].empty())
    CHECK(customer.post("/v1/orders/" + b["id"].get<std::string>() + "/confirm", {{"solution", "s1"}}).status == 200);
  else
    CHECK(fresh.contains("infeasible"));
}

TEST_CASE("quotes expire, confirming an expired quote points at requote", "[api][orders]") {
  test::Daemon d({.env = {{"CPND_QUOTE_TTL", "1s"}}, .dev = true});
  auto customer = d.as("customer");
  Json order = customer.post("/v1/orders", video_order()).json();
  std::string id = order["id"];
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  CHECK(customer.get("/v1/orders/" + id).json()["state"] == "expired");  // the sweep marked it
  auto late = customer.post("/v1/orders/" + id + "/confirm", {{"solution", "s1"}});
  REQUIRE(late.status == 409);
  CHECK(late.json()["requote"] == "/v1/orders/" + id + "/requote");
  CHECK(late.header("link") == "</v1/orders/" + id + "/requote>; rel=\"requote\"");
  auto requoted = customer.post("/v1/orders/" + id + "/requote", Json::object());
  REQUIRE(requoted.status == 200);
  CHECK(requoted.json()["state"] == "quoted");
  CHECK(requoted.json()["expires_at"] > order["expires_at"]);
  CHECK(customer.post("/v1/orders/" + id + "/confirm", {{"solution", "s1"}}).status == 200);
  Json history = customer.get("/v1/orders/" + id).json()["history"];
  std::vector<std::string> states;
  for (const auto& h : history) states.push_back(h["state"]);
  // The reconciler takes the confirmed order up at once (provisioning may already follow).
  REQUIRE(states.size() >= 4);
  CHECK(std::vector<std::string>(states.begin(), states.begin() + 4) ==
        std::vector<std::string>{"quoted", "expired", "quoted", "confirmed"});
}

TEST_CASE("a customer sees only its tenant's orders, operators see all", "[api][orders]") {
  test::Daemon d({.dev = true});
  auto alice = d.as("customer", "tenant-a");
  auto bob = d.as("customer", "tenant-b");
  std::string mine = alice.post("/v1/orders", video_order()).json()["id"];
  std::string theirs = bob.post("/v1/orders", video_order()).json()["id"];
  CHECK(alice.get("/v1/orders/" + theirs).status == 404);
  CHECK(alice.post("/v1/orders/" + theirs + "/confirm", {{"solution", "s1"}}).status == 404);
  CHECK(alice.post("/v1/orders/" + theirs + "/cancel", Json::object()).status == 404);
  CHECK(alice.post("/v1/orders/" + theirs + "/requote", Json::object()).status == 404);
  Json listed = alice.get("/v1/orders").json()["items"];
  REQUIRE(listed.size() == 1);
  CHECK(listed[0]["id"] == mine);
  CHECK(d.as("operator").get("/v1/orders").json()["items"].size() == 2);
  CHECK(bob.get("/v1/orders/" + theirs).json()["state"] == "quoted");
}

TEST_CASE("an order that fits nowhere says why and what would make it fit", "[api][orders]") {
  test::Daemon d({.dev = true});
  auto customer = d.as("customer");
  auto suggestion = [](const Json& order, const std::string& parameter) {
    for (const auto& s : order["infeasible"]["suggestions"])
      if (s["parameter"] == parameter) return s;
    return Json();
  };
  SECTION("over the budget: the cheapest solution's price") {
    Json order = customer.post("/v1/orders", video_order({{"budget_per_hour", 1}})).json();
    CHECK(order["solutions"].empty());
    Json s = suggestion(order, "budget_per_hour");
    REQUIRE(s.is_object());
    CHECK(s["value"].get<double>() > 1);
    // Ordering with the suggested budget fits.
    Json retry = customer.post("/v1/orders", video_order({{"budget_per_hour", s["value"]}})).json();
    CHECK_FALSE(retry["solutions"].empty());
  }
  SECTION("more than any edge can serve: the filter counts and the most streams that fit") {
    Json order = customer.post("/v1/orders", video_order({{"streams", 2000}, {"resolution", "4k"}})).json();
    CHECK(order["solutions"].empty());
    CHECK(order["infeasible"]["blocking_component"] == "detect");
    Json detect;
    for (const auto& c : order["infeasible"]["components"])
      if (c["component"] == "detect") detect = c;
    CHECK(detect["free_capacity"].get<double>() < detect["demand"].get<double>());
    CHECK(detect["filters"][1]["filter"] == "tier");
    CHECK(detect["filters"][1]["removed"].get<int>() > 0);
    Json s = suggestion(order, "streams");
    REQUIRE(s.is_object());
    CHECK_FALSE(customer.post("/v1/orders", video_order({{"streams", s["value"]}, {"resolution", "4k"}})).json()["solutions"].empty());
  }
}

TEST_CASE("operators run what-ifs with /v1/solve, nothing is stored", "[api][orders]") {
  test::Daemon d({.dev = true});
  auto op = d.as("operator");
  auto r = op.post("/v1/solve", {{"offering", "face-gate-standard"}, {"parameters", {{"location", "Shenzhen"}, {"streams", 40}}}});
  REQUIRE(r.status == 200);
  CHECK_FALSE(r.json()["solutions"].empty());
  CHECK(r.json()["solutions"][0]["quote"]["billing_mode"] == "per_request");
  auto by_blueprint = op.post("/v1/solve", {{"blueprint", {{"name", "industrial-inspection"}, {"version", "1.0.0"}}},
                                            {"parameters", {{"location", "cams-dg-songshanhu"}}}});
  INFO(by_blueprint.body);
  REQUIRE(by_blueprint.status == 200);
  CHECK(op.get("/v1/orders").json()["items"].empty());
  CHECK(d.as("customer").post("/v1/solve", {{"offering", "face-gate-standard"}}).status == 403);
  CHECK(test::error_pointers(op.post("/v1/solve", {{"parameters", Json::object()}})) == std::vector<std::string>{"/offering"});
}

TEST_CASE("a confirmed order and its reservations survive kill -9", "[api][orders]") {
  test::Daemon d({.dev = true});
  auto customer = d.as("customer");
  Json order = customer.post("/v1/orders", video_order()).json();
  std::string id = order["id"];
  REQUIRE(customer.post("/v1/orders/" + id + "/confirm", {{"solution", "s1"}}).status == 200);
  std::string node = order["solutions"][0]["placements"][0]["node"];
  Json allocated = d.admin().get("/v1/nodes/" + node).json()["allocated"];
  d.kill9();
  d.start();
  std::string state = d.admin().get("/v1/orders/" + id).json()["state"];
  CHECK((state == "confirmed" || state == "provisioning" || state == "running"));  // the orchestrator may have moved it on
  CHECK(d.admin().get("/v1/nodes/" + node).json()["allocated"] == allocated);
}
