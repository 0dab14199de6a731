// Compute drivers on their own: the sim twin's model of starting, running
// and failing instances, and the process driver running the real detector
// workload (started once, found again by a restarted cpnd, restarted after
// a crash, stopped with SIGTERM).
#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include "cpn/client/http_client.hpp"
#include "cpn/drivers/compute.hpp"
#include "support/daemon.hpp"

using namespace cpn;
using drivers::Phase;

namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

Phase wait_for(drivers::ComputeDriver& d, const Json& instance, Phase want, int ms = 5000) {
  Phase now = d.observe(instance).phase;
  for (int i = 0; i < ms / 20 && now != want; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    now = d.observe(instance).phase;
  }
  return now;
}

pid_t pid_of(const std::string& dir, const std::string& id) {
  std::ifstream in(dir + "/run/" + id + ".pid");
  pid_t pid = 0;
  in >> pid;
  return pid;
}

}  // namespace

TEST_CASE("the sim twin starts instances after a modelled delay and fails them with their node", "[drivers]") {
  ManualClock clock;
  bool up = true;
  auto sim = drivers::make_sim_compute(clock, std::chrono::milliseconds(1500), [&](const std::string&) { return up; });
  Json instance = {{"id", "dep-1-detect-0"}, {"node", "sz-t4-1"}};
  CHECK(sim->observe(instance).phase == Phase::absent);
  REQUIRE(sim->start(instance));
  CHECK(sim->observe(instance).phase == Phase::starting);
  clock.advance(std::chrono::milliseconds(1000));
  REQUIRE(sim->start(instance));  // again: keeps its start
  clock.advance(std::chrono::milliseconds(600));
  CHECK(sim->observe(instance).phase == Phase::running);
  up = false;
  auto failed = sim->observe(instance);
  CHECK(failed.phase == Phase::failed);
  CHECK_THAT(failed.reason, Catch::Contains("sz-t4-1"));
  REQUIRE(sim->stop(instance));
  REQUIRE(sim->stop(instance));
  CHECK(sim->observe(instance).phase == Phase::absent);

  drivers::Registry registry;
  REQUIRE(registry.add(std::move(sim)));
  CHECK(registry.find("sim"));
  CHECK_FALSE(registry.add(drivers::make_sim_compute(clock, std::chrono::milliseconds(0), nullptr)));
  CHECK_FALSE(registry.find("kubernetes"));
}

TEST_CASE("the process driver runs the detector, finds it again after a restart, and stops it", "[drivers]") {
  std::string dir = test::make_temp_dir("cpn-process");
  auto driver = drivers::make_process_compute(dir + "/run", dir + "/logs", std::chrono::milliseconds(2000));
  Json instance;
  int port = 0;
  Phase phase = Phase::absent;
  // A free port can be taken by a test running beside this one before the
  // detector binds it: then it exits, and another port is tried.
  for (int attempt = 0; attempt < 3 && phase != Phase::running; ++attempt) {
    port = free_port();
    instance = {{"id", "dep-1-detect-0"}, {"model", "yolov5s-city@3"}, {"port", port},
                {"variant", {{"platform", "linux/amd64"}, {"command", {DETECTOR_BINARY, "--fps", "30"}}}}};
    REQUIRE(driver->stop(instance));
    CHECK(driver->observe(instance).phase == Phase::absent);
    REQUIRE(driver->start(instance));
    phase = wait_for(*driver, instance, Phase::running);
  }
  REQUIRE(phase == Phase::running);
  pid_t pid = pid_of(dir, "dep-1-detect-0");
  REQUIRE(pid > 0);
  std::string metrics = client::HttpClient("http://127.0.0.1:" + std::to_string(port)).get("/metrics").body;
  CHECK_THAT(metrics, Catch::Contains("detector_info{instance=\"dep-1-detect-0\",model=\"yolov5s-city@3\"} 1"));
  REQUIRE(driver->start(instance));  // running: nothing new
  CHECK(pid_of(dir, "dep-1-detect-0") == pid);

  // A restarted cpnd (a new driver on the same directory) finds the process: no second one.
  auto after_restart = drivers::make_process_compute(dir + "/run", dir + "/logs", std::chrono::milliseconds(2000));
  CHECK(after_restart->observe(instance).phase == Phase::running);
  REQUIRE(after_restart->start(instance));
  CHECK(pid_of(dir, "dep-1-detect-0") == pid);

  // A crash of the workload is seen once as failed, then it can be started again.
  ::kill(pid, SIGKILL);
  auto crashed = wait_for(*after_restart, instance, Phase::failed);
  CHECK(crashed == Phase::failed);
  CHECK(after_restart->observe(instance).phase == Phase::absent);
  REQUIRE(after_restart->start(instance));
  REQUIRE(wait_for(*after_restart, instance, Phase::running) == Phase::running);
  pid_t second = pid_of(dir, "dep-1-detect-0");
  CHECK(second != pid);
  CHECK_THAT(test::read_file(dir + "/logs/dep-1-detect-0.log"), Catch::Contains("listening on"));

  REQUIRE(after_restart->stop(instance));
  CHECK(::kill(second, 0) != 0);  // gone
  CHECK(after_restart->observe(instance).phase == Phase::absent);
  REQUIRE(after_restart->stop(instance));  // stopping a stopped one is fine

  Json no_command = instance;
  no_command["variant"].erase("command");
  auto refused = after_restart->start(no_command);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().errors.at(0).pointer == "/variant/command");
}
