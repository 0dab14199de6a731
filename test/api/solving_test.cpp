// Solving runs on the solver's workers, never on the thread that answers
// the API: while an order that fits nowhere is solved on a 10,000-node
// network, cpnd answers other requests; more than solver.max_pending at
// once are refused before any work; and a requote overtaken by a cancel
// while it was being solved is refused, leaving the order cancelled.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <thread>

#include "support/daemon.hpp"

using namespace cpn;

namespace {

struct Big {
  std::string topology;
  std::vector<std::string> ends;  // camera sites
};

// Large enough that a solve takes long enough to be seen in flight; under
// AddressSanitizer, which runs the solver ~10x slower, a fifth of it is.
#if defined(__SANITIZE_ADDRESS__)
constexpr const char* kNodes = "2000";
#else
constexpr const char* kNodes = "10000";
#endif

Big big_network() {
  Big b{test::make_temp_dir("cpn-big-") + "/topology.json", {}};
  std::string cmd = std::string(SOLVER_BENCH_BINARY) + " --sizes " + kNodes + " --emit-topology " + b.topology + " > /dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  Json doc = Json::parse(test::read_file(b.topology));
  for (const auto& s : doc["sites"])
    if (s["tier"] == "end") b.ends.push_back(s["id"]);
  REQUIRE(b.ends.size() >= 4);
  return b;
}

// An order no site can carry: the solver searches everything, then its suggestions.
Json fits_nowhere(const std::string& location) {
  return {{"offering", "city-video-detection"},
          {"parameters", {{"location", location}, {"streams", 2000}, {"resolution", "4k"}, {"fps", 25},
                          {"model_size", "m"}, {"max_latency_ms", 200}}}};
}

test::DaemonOptions on(const Big& b, std::map<std::string, std::string> env) {
  env["CPND_SOLVER_THREADS"] = "1";
  return {.args = {"--topology", b.topology}, .env = env, .dev = true};
}

// Polls /metrics until a solve is in flight: seeing it at all means the
// API answered while the solver worked.
bool solve_in_flight(client::HttpClient& admin) {
  for (int i = 0; i < 1000; ++i) {
    if (admin.get("/metrics").body.find("\ncpnd_solves_in_flight 1\n") != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

std::size_t orders_stored(client::HttpClient& c) { return c.get("/v1/orders?limit=1000").json()["items"].size(); }

}  // namespace

TEST_CASE("orders are solved off the API's thread, and past solver.max_pending they are refused before any work",
          "[api][solving]") {
  Big b = big_network();
  test::Daemon d(on(b, {{"CPND_SOLVER_MAX_PENDING", "1"}}));
  auto admin = d.admin();
  auto customer = d.as("customer");
  client::HttpClient slow(d.url(), d.token("customer"));
  client::Reply first;
  std::thread t([&] { first = slow.post("/v1/orders", fits_nowhere(b.ends[0])); });
  bool seen = solve_in_flight(admin);
  // The one place is taken: the next order is refused at once, nothing stored.
  auto refused = customer.post("/v1/orders", fits_nowhere(b.ends[1]));
  t.join();
  REQUIRE(seen);
  CHECK(refused.status == 503);
  CHECK(refused.header("content-type") == "application/problem+json");
  CHECK(refused.header("retry-after") == "1");
  CHECK(refused.json()["detail"].get<std::string>().find("solver.max_pending") != std::string::npos);
  REQUIRE(first.status == 201);
  CHECK(first.json()["solutions"].empty());
  CHECK(first.json().contains("infeasible"));
  CHECK(orders_stored(customer) == 1);
  std::string metrics = admin.get("/metrics").body;
  CHECK(metrics.find("\ncpnd_solves_refused_total 1\n") != std::string::npos);
  CHECK(metrics.find("\ncpnd_task_duration_seconds_count{task=\"solve\"} 1\n") != std::string::npos);
  // Room again: the same order is taken.
  CHECK(customer.post("/v1/orders", fits_nowhere(b.ends[1])).status == 201);
}

TEST_CASE("a requote overtaken by a cancel while it was solved is refused and the order stays cancelled",
          "[api][solving]") {
  Big b = big_network();
  test::Daemon d(on(b, {}));
  auto admin = d.admin();
  auto customer = d.as("customer");
  auto order = customer.post("/v1/orders", fits_nowhere(b.ends[2]));
  REQUIRE(order.status == 201);
  std::string path = "/v1/orders/" + order.json()["id"].get<std::string>();
  client::HttpClient slow(d.url(), d.token("customer"));
  client::Reply requote;
  std::thread t([&] { requote = slow.post(path + "/requote", Json::object()); });
  bool seen = solve_in_flight(admin);
  auto cancel = customer.post(path + "/cancel", Json::object());
  t.join();
  REQUIRE(seen);
  REQUIRE(cancel.status == 200);
  CHECK(requote.status == 409);
  CHECK(requote.json()["detail"].get<std::string>().find("is cancelled") != std::string::npos);
  Json now = customer.get(path).json();
  CHECK(now["state"] == "cancelled");
  CHECK(now["history"].back()["state"] == "cancelled");
  CHECK(now["quoted_at"] == order.json()["quoted_at"]);
}
