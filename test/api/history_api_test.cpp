// History through the real daemon: finished orders, deployments and their
// instances leave cpnd's memory (archived in the SQLite file) and stay
// readable through the same API, by id and in paged lists, across a
// restart, with each tenant's visibility; history.retention removes them.
#include <catch2/catch.hpp>

#include <thread>

#include "cpn/store/store.hpp"
#include "support/daemon.hpp"

using namespace cpn;

namespace {

Json small_video_order() {
  return {{"offering", "city-video-detection"}, {"parameters", {{"location", "cams-sz-futian"}, {"streams", 32}}}};
}

// Every id of a list, following `continue` a page of `limit` at a time.
std::vector<std::string> walk(client::HttpClient& c, const std::string& path, int limit) {
  std::vector<std::string> out;
  std::string next;
  for (int pages = 0; pages < 100; ++pages) {
    std::string url = path + "?limit=" + std::to_string(limit) + (next.empty() ? "" : "&continue=" + next);
    Json page = c.get(url).json();
    for (const auto& item : page["items"]) out.push_back(item["id"]);
    if (page["continue"].is_null()) break;
    next = page["continue"];
  }
  return out;
}

// What the SQLite file holds archived, read beside the running daemon.
std::vector<std::string> archived_in_file(const std::string& data, const std::string& kind) {
  auto store = store::Store::open(data + "/cpnd.db");
  if (!store) throw std::runtime_error(store.error().message);
  std::vector<std::string> out;
  for (const auto& o : (*store)->archived(kind, "", 1000)) out.push_back(o.id);
  return out;
}

}  // namespace

TEST_CASE("finished orders and deployments leave memory yet read the same through the API, until retention",
          "[api][history]") {
  test::Daemon d(test::fast_demo());
  auto customer = d.as("customer", "tenant-a");
  auto other = d.as("customer", "tenant-b");
  std::vector<std::string> orders;
  for (int i = 0; i < 3; ++i) orders.push_back(customer.post("/v1/orders", small_video_order()).json()["id"]);
  for (int i = 0; i < 2; ++i)
    REQUIRE(customer.post("/v1/orders/" + orders[i] + "/cancel", Json::object()).status == 200);
  Json confirmed = test::confirm_video_order(customer, 32);
  std::string done = confirmed["id"], dep = confirmed["deployment"];
  REQUIRE(test::wait_state(customer, "/v1/orders/" + done, "running") == "running");
  std::size_t placed = customer.get("/v1/deployments/" + dep + "/instances").json()["items"].size();
  REQUIRE(placed > 0);
  REQUIRE(customer.post("/v1/orders/" + done + "/complete", Json::object()).status == 200);
  REQUIRE(test::wait_state(customer, "/v1/orders/" + done, "completed") == "completed");

  std::vector<std::string> all = {orders[0], orders[1], orders[2], done};
  std::sort(all.begin(), all.end());
  auto check_readable = [&](client::HttpClient& customer, client::HttpClient& other) {
    // Archived in the file: the three finished orders, the deployment, its instances.
    auto in_file = archived_in_file(d.data(), "order");
    CHECK(in_file.size() == 3);
    CHECK(std::find(in_file.begin(), in_file.end(), orders[2]) == in_file.end());  // quoted: live
    CHECK(archived_in_file(d.data(), "deployment") == std::vector<std::string>{dep});
    CHECK(archived_in_file(d.data(), "instance").size() == placed);
    // By id, with their states and history.
    CHECK(customer.get("/v1/orders/" + orders[0]).json()["state"] == "cancelled");
    CHECK(customer.get("/v1/orders/" + orders[2]).json()["state"] == "quoted");
    Json order = customer.get("/v1/orders/" + done).json();
    CHECK(order["state"] == "completed");
    CHECK(order["history"].size() >= 5);
    Json deployment = customer.get("/v1/deployments/" + dep).json();
    CHECK(deployment["state"] == "completed");
    Json progress = deployment["progress"]["components"];
    int stopped = 0;
    for (const auto& [name, counts] : progress.items()) stopped += counts.value("stopped", 0);
    CHECK(stopped == static_cast<int>(placed));
    Json instances = customer.get("/v1/deployments/" + dep + "/instances").json()["items"];
    REQUIRE(instances.size() == placed);
    for (const auto& i : instances) CHECK(i["state"] == "stopped");
    // Lists: live and archived merged in id order, whole or a page at a time.
    std::vector<std::string> listed;
    Json whole = customer.get("/v1/orders").json();
    for (const auto& o : whole["items"]) listed.push_back(o["id"]);
    CHECK(listed == all);
    CHECK(walk(customer, "/v1/orders", 1) == all);
    CHECK(walk(customer, "/v1/orders", 3) == all);
    CHECK(customer.get("/v1/orders?state=cancelled").json()["items"].size() == 2);
    CHECK(customer.get("/v1/orders?state=quoted").json()["items"].size() == 1);  // live only: the history is not read
    CHECK(customer.get("/v1/deployments").json()["items"].size() == 1);
    // Still only the tenant's own.
    CHECK(other.get("/v1/orders/" + orders[0]).status == 404);
    CHECK(other.get("/v1/deployments/" + dep).status == 404);
    CHECK(other.get("/v1/orders").json()["items"].empty());
    // A finished order is still finished: nothing more can be done to it.
    CHECK(customer.post("/v1/orders/" + orders[0] + "/confirm", {{"solution", "s1"}}).status == 409);
    CHECK(customer.post("/v1/orders/" + done + "/complete", Json::object()).status == 409);
    // Gauges count the finished ones from the file.
    std::string metrics = d.admin().get("/metrics").body;
    CHECK_THAT(metrics, Catch::Contains("cpnd_orders{state=\"cancelled\"} 2\n") &&
                            Catch::Contains("cpnd_orders{state=\"completed\"} 1\n"));
  };
  check_readable(customer, other);
  d.restart();  // on another port: new clients
  auto customer_again = d.as("customer", "tenant-a"), other_again = d.as("customer", "tenant-b");
  check_readable(customer_again, other_again);

  // Restarted with a retention of 1 s: what finished more than that ago goes at start.
  REQUIRE(d.terminate() == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  test::Daemon later(test::fast_demo({{"CPND_HISTORY_RETENTION", "1s"}}), d.data());
  auto again = later.as("customer", "tenant-a");
  CHECK(again.get("/v1/orders/" + orders[0]).status == 404);
  CHECK(again.get("/v1/orders/" + done).status == 404);
  CHECK(again.get("/v1/deployments/" + dep).status == 404);
  CHECK(again.get("/v1/orders/" + orders[2]).json()["state"] == "quoted");  // live: kept
  CHECK(archived_in_file(d.data(), "instance").empty());
  CHECK_THAT(later.stderr_text(), Catch::Contains("finished objects older than 1s removed"));
}

TEST_CASE("history.retention is a checked setting", "[api][history]") {
  auto shown = test::run_cpnd({"--check-config", "--dev"}, {{"CPND_HISTORY_RETENTION", "12h"}});
  REQUIRE(shown.status == 0);
  CHECK(Json::parse(shown.out)["history"]["retention"] == "43200s");
  CHECK(Json::parse(test::run_cpnd({"--check-config", "--dev"}).out)["history"]["retention"] == "2592000s");
  auto bad = test::run_cpnd({"--check-config", "--dev"}, {{"CPND_HISTORY_RETENTION", "soon"}});
  CHECK(bad.status == 1);
  CHECK_THAT(bad.err, Catch::Contains("CPND_HISTORY_RETENTION"));
}
