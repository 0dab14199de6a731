// The detector workload on its own: it analyses frames at the requested
// rate, finds the moving objects, serves its metrics and health, takes its
// identity from the environment the process driver sets, and stops on SIGTERM.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <regex>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "cpn/client/http_client.hpp"

using namespace cpn;

namespace {

struct Detector {
  pid_t pid = -1;
  int port = 0;
  Detector(const std::vector<std::string>& args, const std::vector<std::string>& env) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    pid = ::fork();
    if (pid == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> argv = {const_cast<char*>(DETECTOR_BINARY)};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(DETECTOR_BINARY, argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    FILE* f = ::fdopen(out[0], "r");
    char line[128] = {};
    REQUIRE(std::fgets(line, sizeof line, f));
    REQUIRE(std::sscanf(line, "listening on %d", &port) == 1);
    std::fclose(f);
  }
  ~Detector() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  int stop() {
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

double metric_in(const std::string& text, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex("(^|\n)" + name + " ([0-9.e+-]+)"))) return -1;
  return std::stod(m[2]);
}

}  // namespace

TEST_CASE("the detector finds the moving objects, serves its metrics and stops on SIGTERM", "[workloads]") {
  Detector d({"--fps", "50", "--objects", "3"}, {"CPN_INSTANCE_ID=dep-1-detect-0", "CPN_MODEL_VERSION=yolov5s-city@3"});
  client::HttpClient http("http://127.0.0.1:" + std::to_string(d.port));
  std::string text;
  for (int i = 0; i < 100 && metric_in(text, "detector_frames_total") < 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    text = http.get("/metrics").body;
  }
  double frames = metric_in(text, "detector_frames_total");
  REQUIRE(frames >= 10);
  CHECK(metric_in(text, "detector_objects") == 3);
  CHECK(metric_in(text, "detector_detections_total") == 3 * frames);  // every frame sees all three
  CHECK(metric_in(text, "detector_target_fps") == 50);
  CHECK(metric_in(text, "detector_fps") > 0);
  CHECK(metric_in(text, "detector_frame_latency_seconds_count") == frames);
  CHECK_THAT(text, Catch::Contains("detector_info{instance=\"dep-1-detect-0\",model=\"yolov5s-city@3\"} 1"));
  CHECK(http.get("/healthz").status == 200);
  CHECK(http.get("/nowhere").status == 404);
  CHECK(d.stop() == 0);
}

TEST_CASE("an empty scene has nothing moving", "[workloads]") {
  Detector d({"--fps", "100", "--objects", "0"}, {});
  client::HttpClient http("http://127.0.0.1:" + std::to_string(d.port));
  std::string text;
  for (int i = 0; i < 100 && metric_in(text, "detector_frames_total") < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    text = http.get("/metrics").body;
  }
  REQUIRE(metric_in(text, "detector_frames_total") >= 5);
  CHECK(metric_in(text, "detector_detections_total") == 0);  // sensor noise is not motion
  CHECK(d.stop() == 0);
}
