// Compute drivers on their own: the sim twin's model of starting, running
// and failing instances, and the process driver running the real detector
// workload (started once, found again by a restarted cpnd, restarted after
// a crash, stopped with SIGTERM).
#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <fcntl.h>
#include <sys/stat.h>
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

// Workloads run as nobody when the tests run as root (as CI does): the
// detector is copied where nobody can reach it.
drivers::ProcessSettings process_settings(const std::string& dir) {
  drivers::ProcessSettings s{dir + "/run", dir + "/logs", dir + "/work", std::chrono::milliseconds(2000)};
  if (::geteuid() == 0) s.user = "nobody";
  return s;
}

std::string reachable_detector(const std::string& dir) {
  ::chmod(dir.c_str(), 0755);
  std::string copy = dir + "/detector";
  std::ifstream in(DETECTOR_BINARY, std::ios::binary);
  std::ofstream(copy, std::ios::binary) << in.rdbuf();
  ::chmod(copy.c_str(), 0755);
  return copy;
}

std::string wait_file(const std::string& path) {
  for (int i = 0; i < 250; ++i) {
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    if (!text.empty()) return text;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return "";
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

  // With a stop delay (its graceful shutdown in the model) it is still there until that has passed.
  auto slow = drivers::make_sim_compute(clock, std::chrono::milliseconds(0), nullptr, std::chrono::milliseconds(500));
  REQUIRE(slow->start(instance));
  CHECK(slow->observe(instance).phase == Phase::running);
  REQUIRE(slow->stop(instance));
  clock.advance(std::chrono::milliseconds(300));
  REQUIRE(slow->stop(instance));  // asked again: the first ask counts
  CHECK(slow->observe(instance).phase == Phase::running);
  clock.advance(std::chrono::milliseconds(200));
  CHECK(slow->observe(instance).phase == Phase::absent);

  drivers::Registry registry;
  REQUIRE(registry.add(std::move(sim)));
  CHECK(registry.find("sim"));
  CHECK_FALSE(registry.add(drivers::make_sim_compute(clock, std::chrono::milliseconds(0), nullptr)));
  CHECK_FALSE(registry.find("kubernetes"));
}

TEST_CASE("the process driver runs the detector, finds it again after a restart, and stops it", "[drivers]") {
  std::string dir = test::make_temp_dir("cpn-process");
  auto made = drivers::make_process_compute(process_settings(dir));
  REQUIRE(made);
  auto driver = std::move(*made);
  std::string detector = reachable_detector(dir);
  Json instance;
  int port = 0;
  Phase phase = Phase::absent;
  // A free port can be taken by a test running beside this one before the
  // detector binds it: then it exits, and another port is tried.
  for (int attempt = 0; attempt < 3 && phase != Phase::running; ++attempt) {
    port = free_port();
    instance = {{"id", "dep-1-detect-0"}, {"model", "yolov5s-city@3"}, {"port", port},
                {"variant", {{"platform", "linux/amd64"}, {"command", {detector, "--fps", "30"}}}}};
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
  auto remade = drivers::make_process_compute(process_settings(dir));
  REQUIRE(remade);
  auto after_restart = std::move(*remade);
  CHECK(after_restart->observe(instance).phase == Phase::running);
  REQUIRE(after_restart->start(instance));
  CHECK(pid_of(dir, "dep-1-detect-0") == pid);

  // A crash of the workload is seen once as failed, then it can be started again.
  ::kill(pid, SIGKILL);
  auto crashed = wait_for(*after_restart, instance, Phase::failed);
  CHECK(crashed == Phase::failed);
  CHECK(after_restart->observe(instance).phase == Phase::absent);
  // A dying process holds its port a moment after it is seen gone (its other threads are still exiting):
  // the start is refused meanwhile, as it would be for a stranger on that port, and then accepted.
  auto again = after_restart->start(instance);
  for (int i = 0; i < 100 && !again; ++i) {
    CHECK_THAT(again.error().message, Catch::Contains("is in use by another process"));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    again = after_restart->start(instance);
  }
  REQUIRE(again);
  REQUIRE(wait_for(*after_restart, instance, Phase::running) == Phase::running);
  pid_t second = pid_of(dir, "dep-1-detect-0");
  CHECK(second != pid);
  CHECK_THAT(test::read_file(dir + "/logs/dep-1-detect-0.log"), Catch::Contains("listening on"));

  // stop asks (SIGTERM) and returns; observe says when it is gone.
  REQUIRE(after_restart->stop(instance));
  CHECK(wait_for(*after_restart, instance, Phase::absent) == Phase::absent);
  CHECK(::kill(second, 0) != 0);  // gone
  REQUIRE(after_restart->stop(instance));  // stopping a stopped one is fine

  Json no_command = instance;
  no_command["variant"].erase("command");
  auto refused = after_restart->start(no_command);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().errors.at(0).pointer == "/variant/command");
}

TEST_CASE("stopping a process that ignores SIGTERM never waits: SIGKILL after the grace, its children too",
          "[drivers]") {
  std::string dir = test::make_temp_dir("cpn-process-stubborn");
  ::chmod(dir.c_str(), 0755);
  auto settings = process_settings(dir);
  settings.grace = std::chrono::milliseconds(300);
  auto made = drivers::make_process_compute(settings);
  REQUIRE(made);
  auto& driver = **made;
  // The shell ignores SIGTERM and so does the sleep it starts (ignored signals survive exec).
  Json instance = {{"id", "dep-stubborn-x-0"}, {"port", 1},
                   {"variant", {{"command", {"/bin/sh", "-c", "trap '' TERM; sleep 60 & echo $! > child.txt; wait"}}}}};
  REQUIRE(driver.start(instance));
  pid_t pid = pid_of(dir, "dep-stubborn-x-0");
  REQUIRE(pid > 0);
  pid_t child = std::stoi(wait_file(dir + "/work/dep-stubborn-x-0/child.txt"));
  REQUIRE(driver.stop(instance));
  CHECK(::kill(pid, 0) == 0);  // stop came back without waiting for it
  CHECK(driver.observe(instance).phase == Phase::starting);  // alive (and never healthy)
  int calls = 1;
  while (driver.observe(instance).phase != Phase::absent && calls < 200) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    REQUIRE(driver.stop(instance));  // the orchestrator asks again each pass; after the grace it is SIGKILL
    ++calls;
  }
  CHECK(driver.observe(instance).phase == Phase::absent);
  CHECK(::kill(pid, 0) != 0);
  // Alive and not a zombie (an orphan's zombie waits for whatever reaps orphans here).
  auto running = [](pid_t p) {
    std::ifstream stat("/proc/" + std::to_string(p) + "/stat");
    std::string pid_field, comm, state;
    return (stat >> pid_field >> comm >> state) && state != "Z" && state != "X";
  };
  for (int i = 0; i < 100 && running(child); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK_FALSE(running(child));  // its process group went with it
  CHECK(calls > 5);              // it took the grace, not one call
}

TEST_CASE("a process workload gets an allowlisted environment, none of cpnd's descriptors, its own directory, "
          "limits and an unprivileged user", "[drivers][security]") {
  std::string dir = test::make_temp_dir("cpn-process-contained");
  ::chmod(dir.c_str(), 0755);
  ::setenv("CPND_ADMIN_TOKEN", "cpn_secret_never_passed", 1);
  ::setenv("UNLISTED_SECRET", "never-passed-either", 1);
  ::setenv("WORKLOAD_REGION", "south", 1);
  int held = ::open("/dev/null", O_RDONLY);  // a descriptor of cpnd's, not close-on-exec
  REQUIRE(::dup2(held, 100) == 100);
  auto settings = process_settings(dir);
  settings.pass_env = {"WORKLOAD_REGION"};
  settings.open_files = 512;
  settings.memory_factor = 2;  // 2 x 1 GiB requested
  auto made = drivers::make_process_compute(settings);
  REQUIRE(made);
  std::string id = "dep-sec-probe-0";
  Json instance = {{"id", id}, {"port", 1}, {"requests", {{"cpu", 1}, {"memory", 1}}},
                   {"variant", {{"command", {"sh", "-c",
                                             "env > env.txt; ls /proc/self/fd > fds.txt; id -u > uid.txt; "
                                             "pwd > pwd.txt; ulimit -v > as.txt; ulimit -n > nofile.txt; sleep 30"}}}}};
  REQUIRE((*made)->start(instance));
  std::string work = dir + "/work/" + id;
  CHECK(wait_file(work + "/nofile.txt") == "512\n");
  std::string env = wait_file(work + "/env.txt");
  CHECK_THAT(env, Catch::Contains("CPN_INSTANCE_ID=" + id));
  CHECK_THAT(env, Catch::Contains("WORKLOAD_REGION=south"));
  CHECK_THAT(env, Catch::Contains("PATH=/usr/local/bin:/usr/bin:/bin"));
  CHECK_THAT(env, !Catch::Contains("cpn_secret_never_passed"));
  CHECK_THAT(env, !Catch::Contains("UNLISTED_SECRET"));
  // 0, 1, 2 and the one ls reads /proc/self/fd through: nothing of ours.
  std::string fds = wait_file(work + "/fds.txt");
  CHECK_THAT(fds, !Catch::Contains("100"));
  CHECK(std::count(fds.begin(), fds.end(), '\n') <= 4);
  CHECK(wait_file(work + "/pwd.txt") == work + "\n");
  CHECK(wait_file(work + "/as.txt") == std::to_string(2 * 1024 * 1024) + "\n");  // KiB
  if (::geteuid() == 0) CHECK(wait_file(work + "/uid.txt") == "65534\n");
  REQUIRE((*made)->stop(instance));
  ::close(100);
  ::close(held);
  ::unsetenv("CPND_ADMIN_TOKEN");
  ::unsetenv("UNLISTED_SECRET");
}

TEST_CASE("the process driver refuses to run workloads as root unless told, and a user it cannot become",
          "[drivers][security]") {
  std::string dir = test::make_temp_dir("cpn-process-root");
  drivers::ProcessSettings settings{dir + "/run", dir + "/logs", dir + "/work", std::chrono::milliseconds(500)};
  settings.user = "no-such-user-here";
  auto unknown = drivers::make_process_compute(settings);
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().errors.at(0).pointer == "/process/user");
  settings.user.clear();
  auto made = drivers::make_process_compute(settings);
  REQUIRE(made);
  Json instance = {{"id", "dep-root-x-0"}, {"port", 1}, {"variant", {{"command", {"sleep", "30"}}}}};
  auto started = (*made)->start(instance);
  if (::geteuid() == 0) {
    REQUIRE_FALSE(started);
    CHECK(started.error().errors.at(0).pointer == "/process/user");
    settings.allow_root = true;
    auto told = drivers::make_process_compute(settings);
    REQUIRE(told);
    REQUIRE((*told)->start(instance));
    REQUIRE((*told)->stop(instance));
  } else {
    // Not root: it runs as this user, as asked.
    REQUIRE(started);
    REQUIRE((*made)->stop(instance));
  }
}
