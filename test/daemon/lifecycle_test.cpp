// The daemon as systemd and operators see it: crash safety, graceful stop,
// reload, configuration precedence, sd_notify and logs.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <set>
#include <filesystem>
#include <atomic>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "support/daemon.hpp"
#include "support/raw.hpp"

using namespace cpn;

TEST_CASE("kill -9 loses no acknowledged write", "[daemon]") {
  test::Daemon d;
  auto op = d.as("operator");
  std::vector<std::string> acked;
  for (int i = 0; i < 40; ++i) {
    std::string id = "site-" + std::to_string(i);
    auto r = op.post("/v1/sites", {{"id", id}, {"tier", "edge"}, {"city", "Shenzhen"}});
    if (r.status == 201) acked.push_back(id);
  }
  REQUIRE(acked.size() == 40);
  d.kill9();  // right after the last acknowledgement
  d.start();
  auto op2 = d.admin();
  auto list = op2.get("/v1/sites?limit=1000").json()["items"];
  std::set<std::string> ids;
  for (const auto& s : list) ids.insert(s["id"].get<std::string>());
  for (const auto& id : acked) CHECK(ids.count(id) == 1);
  auto events = op2.get("/v1/events?kind=site&limit=1000").json()["items"];
  CHECK(events.size() == 40);
}

namespace {

double metric(client::HttpClient& c, const std::string& name) {
  std::string text = c.get("/metrics").body;
  auto at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
}

}  // namespace

TEST_CASE("a write is answered once an fsync of the log covers it, and concurrent writes share fsyncs", "[daemon]") {
  test::Daemon d;
  auto op = d.as("operator");
  auto admin = d.admin();
  // One at a time: each answer leaves only after a sync that covered it (nothing else writes in a bare cpnd).
  for (int i = 0; i < 10; ++i) {
    REQUIRE(op.post("/v1/sites", {{"id", "one-" + std::to_string(i)}, {"tier", "edge"}, {"city", "Shenzhen"}}).status == 201);
    double written = metric(admin, "cpnd_db_writes_total"), synced = metric(admin, "cpnd_db_writes_synced_total");
    REQUIRE(written > 0);
    CHECK(synced == written);
  }
  // Refused writes are audited, and so answered after a sync too.
  REQUIRE(op.post("/v1/sites", {{"id", "one-0"}, {"tier", "edge"}, {"city", "Shenzhen"}}).status == 409);
  CHECK(metric(admin, "cpnd_db_writes_synced_total") == metric(admin, "cpnd_db_writes_total"));
  // Eight clients at once.
  double syncs_before = metric(admin, "cpnd_db_syncs_total");
  std::atomic<int> acked{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t)
    clients.emplace_back([&, t] {
      auto c = d.as("operator");
      for (int i = 0; i < 20; ++i)
        if (c.post("/v1/sites", {{"id", fmt::format("many-{}-{}", t, i)}, {"tier", "edge"}, {"city", "Shenzhen"}}).status == 201)
          ++acked;
    });
  for (auto& c : clients) c.join();
  REQUIRE(acked == 160);
  double syncs = metric(admin, "cpnd_db_syncs_total") - syncs_before;
  INFO(syncs << " fsyncs for 160 writes from 8 clients (and their audit records)");
  CHECK(syncs >= 1);
  CHECK(metric(admin, "cpnd_db_writes_synced_total") == metric(admin, "cpnd_db_writes_total"));
  d.kill9();
  d.start();
  CHECK(d.admin().get("/v1/sites?limit=1000").json()["items"].size() == 170);
}

TEST_CASE("SIGTERM refuses new connections, finishes the request in flight and exits 0", "[daemon]") {
  test::Daemon d;
  std::string token = d.token("designer");
  std::string body(100000, 'q');
  test::RawConnection upload(d.url());
  upload.send("PUT /v1/files/in-flight.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
              "\r\nContent-Type: application/octet-stream\r\nContent-Length: " + std::to_string(body.size()) +
              "\r\n\r\n" + body.substr(0, 50000));
  test::RawConnection idle(d.url());  // an idle keep-alive connection
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  pid_t pid = d.pid();
  ::kill(pid, SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(idle.closed_within(2000));
  test::RawConnection refused(d.url());
  CHECK_FALSE(refused.connected());
  upload.send(body.substr(50000));
  std::string answer = upload.read_until("\r\n\r\n", 5000);
  CHECK_THAT(answer, Catch::StartsWith("HTTP/1.1 201"));
  CHECK_THAT(answer, Catch::Contains("Connection: close"));
  CHECK(d.terminate(SIGTERM) == 0);
  CHECK_THAT(d.stderr_text(), Catch::Contains("shutting down"));
  // what was in flight was committed
  d.start();
  CHECK(d.as("designer").get("/v1/files/in-flight.bin").body == body);
}

TEST_CASE("configuration precedence is defaults < file < environment < flags", "[daemon]") {
  std::string dir = test::make_temp_dir("cpnd-config");
  test::write_file(dir + "/cpnd.yaml",
                   "listen: 127.0.0.1:7001\ndata: /var/lib/x\nlog_level: debug\nhttp: {max_body_bytes: 5000}\n");
  auto r = test::run_cpnd({"--config", dir + "/cpnd.yaml", "--check-config", "--listen", "127.0.0.1:7003"},
                          {{"CPND_LISTEN", "127.0.0.1:7002"}, {"CPND_LOG_LEVEL", "warning"}});
  REQUIRE(r.status == 0);
  Json cfg = Json::parse(r.out);
  CHECK(cfg["listen"] == "127.0.0.1:7003");      // flag
  CHECK(cfg["log_level"] == "warning");          // environment over file
  CHECK(cfg["data"] == "/var/lib/x");            // file
  CHECK(cfg["http"]["max_body_bytes"] == 5000);  // file over default
  CHECK(cfg["http"]["max_header_bytes"] == 16384);

  test::write_file(dir + "/bad.yaml", "listen: 1\nhttp: {max_body_bytes: -3, colour: red}\n");
  auto bad = test::run_cpnd({"--config", dir + "/bad.yaml", "--check-config"});
  CHECK(bad.status == 1);
  CHECK_THAT(bad.err, Catch::Contains("/http/max_body_bytes") && Catch::Contains("/http/colour"));
  auto no_data = test::run_cpnd({"--check-config"});
  CHECK(no_data.status == 1);
  CHECK_THAT(no_data.err, Catch::Contains("/data"));
  auto bad_env = test::run_cpnd({"--check-config", "--dev"}, {{"CPND_MAX_CONNECTIONS", "lots"}});
  CHECK(bad_env.status == 1);
  CHECK_THAT(bad_env.err, Catch::Contains("CPND_MAX_CONNECTIONS"));

  // The network driver: file, then environment; anything but sim or linux is refused with its field.
  test::write_file(dir + "/net.yaml", "data: /var/lib/x\nnetwork: {driver: linux, namespace_prefix: lab-}\n");
  auto net = test::run_cpnd({"--config", dir + "/net.yaml", "--check-config"});
  REQUIRE(net.status == 0);
  CHECK(Json::parse(net.out)["network"] == Json{{"driver", "linux"}, {"namespace_prefix", "lab-"}});
  auto net_env = test::run_cpnd({"--config", dir + "/net.yaml", "--check-config"}, {{"CPND_NETWORK_DRIVER", "sim"}});
  CHECK(Json::parse(net_env.out)["network"]["driver"] == "sim");
  auto bad_net = test::run_cpnd({"--check-config", "--dev"}, {{"CPND_NETWORK_DRIVER", "sdn"}});
  CHECK(bad_net.status == 1);
  CHECK_THAT(bad_net.err, Catch::Contains("/network/driver"));
}

TEST_CASE("the reconciler's and the drivers' timings are settings like any other: file, environment, refused when bad",
          "[daemon]") {
  std::string dir = test::make_temp_dir("cpnd-timings");
  test::write_file(dir + "/cpnd.yaml",
                   "data: /var/lib/x\norchestrator: {reconcile_ms: 250, max_attempts: 3, retry_backoff_cap_ms: 9000}\n"
                   "sim: {start_delay_ms: 40}\nkubernetes: {timeout_ms: 800}\nprocess: {grace_ms: 1500}\n");
  auto r = test::run_cpnd({"--config", dir + "/cpnd.yaml", "--check-config"},
                          {{"CPND_MAX_ATTEMPTS", "7"}, {"CPND_RETRY_BACKOFF_MS", "300"}});
  REQUIRE(r.status == 0);
  Json cfg = Json::parse(r.out);
  CHECK(cfg["orchestrator"] == Json{{"reconcile_ms", 250}, {"max_attempts", 7}, {"retry_backoff_ms", 300},
                                    {"retry_backoff_cap_ms", 9000}, {"driver_threads", 8}, {"orphan_sweep_s", 60}});
  CHECK(cfg["sim"] == Json{{"start_delay_ms", 40}, {"stop_delay_ms", 0}});
  CHECK(cfg["kubernetes"]["timeout_ms"] == 800);
  CHECK(cfg["process"]["grace_ms"] == 1500);
  auto defaults = Json::parse(test::run_cpnd({"--check-config", "--dev"}).out);
  CHECK(defaults["orchestrator"]["reconcile_ms"] == 500);
  CHECK(defaults["sim"]["start_delay_ms"] == 2000);

  // Not a number, out of range, or inconsistent: cpnd does not start, and says which.
  for (auto [name, value] : std::vector<std::pair<std::string, std::string>>{{"CPND_RECONCILE_MS", "abc"},
                                                                             {"CPND_RECONCILE_MS", "-1"},
                                                                             {"CPND_MAX_ATTEMPTS", "0"},
                                                                             {"CPND_RETRY_BACKOFF_MS", "5s"},
                                                                             {"CPND_SIM_START_DELAY_MS", "99999999999"},
                                                                             {"CPND_KUBE_TIMEOUT_MS", "10"}}) {
    auto bad = test::run_cpnd({"--check-config", "--dev"}, {{name, value}});
    INFO(name << "=" << value);
    CHECK(bad.status == 1);
    CHECK_THAT(bad.err, Catch::Contains(name));
  }
  test::write_file(dir + "/bad.yaml", "data: /x\norchestrator: {retry_backoff_ms: 5000, retry_backoff_cap_ms: 100}\n");
  auto bad = test::run_cpnd({"--config", dir + "/bad.yaml", "--check-config"});
  CHECK(bad.status == 1);
  CHECK_THAT(bad.err, Catch::Contains("/orchestrator/retry_backoff_cap_ms"));
}

TEST_CASE("SIGHUP reloads the configuration and keeps the old one when the new is invalid", "[daemon]") {
  std::string dir = test::make_temp_dir("cpnd-hup");
  std::string cfg = dir + "/cpnd.yaml";
  test::write_file(cfg, "http: {max_body_bytes: 100000}\n");
  test::Daemon d({.args = {"--config", cfg}});
  auto op = d.as("operator");
  Json site = {{"id", "s1"}, {"tier", "edge"}, {"city", "Shenzhen"}, {"labels", {{"note", std::string(3000, 'n')}}}};
  CHECK(op.post("/v1/sites", site).status == 201);

  test::write_file(cfg, "http: {max_body_bytes: 2048}\n");
  ::kill(d.pid(), SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  site["id"] = "s2";
  CHECK(op.post("/v1/sites", site).status == 413);

  test::write_file(cfg, "http: {max_body_bytes: 'lots'}\n");
  ::kill(d.pid(), SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK_THAT(d.stderr_text(), Catch::Contains("keeping the old one"));
  CHECK(op.post("/v1/sites", site).status == 413);  // still the 2048 limit
  CHECK(d.anonymous().get("/livez").status == 200);
}

TEST_CASE("cpnd tells systemd READY, WATCHDOG and STOPPING", "[daemon]") {
  std::string dir = test::make_temp_dir("cpnd-notify");
  std::string sock_path = dir + "/notify.sock";
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock_path.c_str());
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  timeval tv{0, 200000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string messages;
  auto drain = [&] {  // for half a second: the watchdog keeps talking
    char buf[512];
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    while (std::chrono::steady_clock::now() < until)
      if (ssize_t n = ::recv(fd, buf, sizeof buf, 0); n > 0) messages += std::string(buf, static_cast<size_t>(n)) + "\n";
  };
  {
    test::Daemon d({.env = {{"NOTIFY_SOCKET", sock_path}, {"WATCHDOG_USEC", "200000"}}});
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    drain();
    CHECK_THAT(messages, Catch::Contains("READY=1"));
    CHECK_THAT(messages, Catch::Contains("WATCHDOG=1"));
    CHECK(d.terminate(SIGTERM) == 0);
    drain();
    CHECK_THAT(messages, Catch::Contains("STOPPING=1"));
  }
  ::close(fd);
}

TEST_CASE("logs carry a journald priority and the request id, never a secret", "[daemon]") {
  test::Daemon d;
  auto r = d.admin().request("GET", "/v1/sites", "", {{"X-Request-Id", "trace-42"}});
  CHECK(r.header("x-request-id") == "trace-42");
  std::string secret = d.admin().post("/v1/tokens", {{"name", "x"}, {"role", "agent"}}).json()["secret"];
  auto log = d.stderr_text();
  CHECK_THAT(log, Catch::Contains("<6>request_id=trace-42"));
  CHECK_THAT(log, Catch::Contains("<5>cpnd"));
  CHECK(log.find(d.admin_token()) == std::string::npos);
  CHECK(log.find(secret) == std::string::npos);
}

TEST_CASE("the event log keeps its newest events, a watch from before them gets 410", "[daemon]") {
  std::string dir = test::make_temp_dir("cpnd-retain");
  test::write_file(dir + "/cpnd.yaml", "events: {retain: 100}\n");
  test::Daemon d({.args = {"--config", dir + "/cpnd.yaml"}});
  auto op = d.as("operator");
  for (int i = 0; i < 150; ++i)
    REQUIRE(op.post("/v1/sites", {{"id", "s" + std::to_string(i)}, {"tier", "edge"}, {"city", "Foshan"}}).status == 201);
  d.restart();  // compaction runs at start, then hourly
  auto admin = d.admin();
  std::int64_t last = std::stoll(d.anonymous().get("/readyz").json()["resourceVersion"].get<std::string>());
  auto old = admin.get("/v1/events?since=0");
  CHECK(old.status == 410);
  CHECK(old.json()["errors"][0]["pointer"] == "/query/since");
  auto recent = admin.get("/v1/events?since=" + std::to_string(last - 50));
  REQUIRE(recent.status == 200);
  CHECK(recent.json()["items"].size() == 50);
  CHECK(admin.get("/v1/sites?limit=1000").json()["items"].size() == 150);  // objects are never compacted
  CHECK_THAT(d.stderr_text(), Catch::Contains("event log compacted"));
}

TEST_CASE("blobs that no file names are removed at start", "[daemon]") {
  test::Daemon d;
  auto des = d.as("designer");
  std::string path = d.data() + "/kept.bin";
  test::write_file(path, "kept content");
  REQUIRE(des.put_file("/v1/files/kept.bin", path).status == 201);
  std::string digest = des.get("/v1/files").json()["items"][0]["sha256"];
  std::string orphan_dir = d.data() + "/blobs/sha256/ee";
  std::filesystem::create_directories(orphan_dir);
  std::string orphan = orphan_dir + "/" + std::string(64, 'e');
  test::write_file(orphan, "left by a crash");
  d.restart();
  CHECK_FALSE(std::filesystem::exists(orphan));
  CHECK(std::filesystem::exists(d.data() + "/blobs/sha256/" + digest.substr(0, 2) + "/" + digest));
  CHECK(d.as("designer").get("/v1/files/kept.bin").body == "kept content");
}

TEST_CASE("kill -9 in the middle of concurrent writes and an import keeps every acknowledged write, and imports whole",
          "[daemon]") {
  test::Daemon d;
  std::string token = d.token("operator");
  std::string url = d.url();
  // A topology of 60 sites: an import is all there after a crash, or not at all.
  Json topo = {{"apiVersion", "cpn/v1"}, {"kind", "Topology"}, {"sites", Json::array()}};
  for (int i = 0; i < 60; ++i)
    topo["sites"].push_back({{"id", "imp-" + std::to_string(i)}, {"tier", "edge"}, {"city", "Zhuhai"}});
  std::mutex m;
  std::vector<std::string> acked;
  std::atomic<bool> stop{false};
  auto writer = [&](int w) {
    client::HttpClient c(url, token);
    for (int i = 0; !stop; ++i) {
      std::string id = "w" + std::to_string(w) + "-" + std::to_string(i);
      try {
        auto r = c.post("/v1/sites", {{"id", id}, {"tier", "edge"}, {"city", "Shenzhen"}});
        if (r.status == 201) {
          std::lock_guard lock(m);
          acked.push_back(id);
        }
      } catch (...) {
        return;  // cpnd is gone
      }
    }
  };
  std::vector<std::thread> writers;
  for (int w = 0; w < 3; ++w) writers.emplace_back(writer, w);
  std::thread importer([&] {
    client::HttpClient c(url, token);
    try {
      // Each import moves all 60 sites to the other city: one transaction.
      for (int i = 0; !stop; ++i) {
        for (auto& s : topo["sites"]) s["city"] = i % 2 ? "Zhongshan" : "Zhuhai";
        c.post("/v1/topology", topo);
      }
    } catch (...) {
    }
  });
  // Kill once enough writes are acknowledged (a fixed wait got only 20 in the ASan build under load).
  auto acked_count = [&] {
    std::lock_guard lock(m);
    return acked.size();
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (int i = 0; i < 3000 && acked_count() < 30; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  d.kill9();
  stop = true;
  for (auto& t : writers) t.join();
  importer.join();
  REQUIRE(acked.size() >= 30);

  d.start();
  std::set<std::string> present;
  int imported = 0;
  std::set<std::string> import_cities;
  std::string cont;
  do {  // every page
    auto page = d.admin().get("/v1/sites?limit=1000" + (cont.empty() ? "" : "&continue=" + cont)).json();
    for (const auto& s : page["items"]) {
      std::string id = s["id"];
      present.insert(id);
      if (id.rfind("imp-", 0) == 0) {
        ++imported;
        import_cities.insert(s["city"].get<std::string>());
      }
    }
    cont = page["continue"].is_null() ? "" : page["continue"].get<std::string>();
  } while (!cont.empty());
  for (const auto& id : acked) CHECK(present.count(id) == 1);
  CHECK((imported == 0 || imported == 60));
  CHECK(import_cities.size() <= 1);  // never half of one import and half of the next
  // every object has the event that wrote it
  std::set<std::string> written;
  for (std::int64_t since = 0;;) {
    auto page = d.admin().get("/v1/events?kind=site&limit=5000&since=" + std::to_string(since)).json();
    for (const auto& e : page["items"]) written.insert(e["id"].get<std::string>());
    if (page["last"].get<std::int64_t>() == since) break;
    since = page["last"].get<std::int64_t>();
  }
  for (const auto& id : present) CHECK(written.count(id) == 1);
}
