// detector: a small, real video-analysis workload for cpnd's process
// driver. It renders synthetic camera frames (objects moving in lanes over
// a noisy background), detects motion by frame differencing, groups the
// changed pixels into blobs (connected components on a 16-pixel cell grid,
// so an object's leading and trailing edges count once), paces itself at
// the requested frame rate, and serves Prometheus metrics (fps, frame
// latency, queue depth, objects seen) and a health check over HTTP.
//
//   detector [--port 0] [--fps 10] [--width 320] [--height 240] [--objects 3] [--drain-seconds 0]
//   env: CPN_INSTANCE_ID, CPN_MODEL_VERSION, CPN_PORT (when --port is not given)
// On start it prints "listening on PORT"; SIGTERM or SIGINT stop it (exit 0),
// after --drain-seconds of finishing its work (a workload slower to stop
// than its orchestrator's grace, which must then kill it).
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <deque>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

std::atomic<bool> stopping{false};
std::atomic<bool> terminated{false};  // SIGTERM or SIGINT came; stopping follows the drain

struct Frame {
  int width = 0, height = 0;
  std::vector<std::uint8_t> pixels;
};

// Objects of 16x16 pixels, each in its own lane, moving 4 pixels a frame
// and bouncing off the edges, on a background with a little sensor noise.
class Scene {
 public:
  Scene(int width, int height, int objects, std::uint64_t seed) : width_(width), height_(height), rng_(seed) {
    for (int i = 0; i < objects; ++i) {
      int lane = (i + 1) * height / (objects + 1) - 8;
      objects_.push_back({static_cast<int>(rng_() % static_cast<unsigned>(width - 16)), lane, i % 2 ? -4 : 4});
    }
  }
  Frame next() {
    Frame f{width_, height_, std::vector<std::uint8_t>(static_cast<std::size_t>(width_ * height_))};
    for (auto& p : f.pixels) p = static_cast<std::uint8_t>(60 + rng_() % 6);
    for (auto& o : objects_) {
      o.x += o.dx;
      if (o.x < 0 || o.x > width_ - 16) {
        o.dx = -o.dx;
        o.x += 2 * o.dx;
      }
      for (int y = o.y; y < o.y + 16; ++y)
        for (int x = o.x; x < o.x + 16; ++x) f.pixels[static_cast<std::size_t>(y * width_ + x)] = 200;
    }
    return f;
  }

 private:
  struct Object {
    int x, y, dx;
  };
  int width_, height_;
  std::mt19937_64 rng_;
  std::vector<Object> objects_;
};

// Moving blobs between two frames.
int count_blobs(const Frame& previous, const Frame& current) {
  constexpr int kCell = 16, kThreshold = 40;
  int cw = (current.width + kCell - 1) / kCell, ch = (current.height + kCell - 1) / kCell;
  std::vector<char> cells(static_cast<std::size_t>(cw * ch), 0);
  for (int y = 0; y < current.height; ++y)
    for (int x = 0; x < current.width; ++x) {
      auto i = static_cast<std::size_t>(y * current.width + x);
      if (std::abs(int(current.pixels[i]) - int(previous.pixels[i])) > kThreshold)
        cells[static_cast<std::size_t>((y / kCell) * cw + x / kCell)] = 1;
    }
  int blobs = 0;
  std::vector<int> stack;
  for (int start = 0; start < cw * ch; ++start) {
    if (cells[static_cast<std::size_t>(start)] != 1) continue;
    ++blobs;
    stack.push_back(start);
    cells[static_cast<std::size_t>(start)] = 2;
    while (!stack.empty()) {  // 8-connected flood fill
      int at = stack.back();
      stack.pop_back();
      int cx = at % cw, cy = at / cw;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          int nx = cx + dx, ny = cy + dy;
          if (nx < 0 || ny < 0 || nx >= cw || ny >= ch) continue;
          auto n = static_cast<std::size_t>(ny * cw + nx);
          if (cells[n] == 1) {
            cells[n] = 2;
            stack.push_back(static_cast<int>(n));
          }
        }
    }
  }
  return blobs;
}

struct Stats {
  std::mutex mu;
  std::uint64_t frames = 0, detections = 0;
  int last_objects = 0;
  double queue_depth = 0;
  std::vector<double> latency_buckets = std::vector<double>(8, 0);  // le 1,2,5,10,20,50,100 ms, +Inf
  double latency_sum = 0;
  std::deque<Clock::time_point> recent;  // frame times of the last 5 s
};
const double kBucketMs[] = {1, 2, 5, 10, 20, 50, 100};

std::string metrics(Stats& s, const std::string& instance, const std::string& model, double target_fps) {
  std::lock_guard lock(s.mu);
  auto now = Clock::now();
  while (!s.recent.empty() && now - s.recent.front() > std::chrono::seconds(5)) s.recent.pop_front();
  double window = s.recent.size() > 1 ? std::chrono::duration<double>(s.recent.back() - s.recent.front()).count() : 0;
  double fps = window > 0 ? (static_cast<double>(s.recent.size()) - 1) / window : 0;
  std::string out;
  out += "# HELP detector_info The instance and model this detector runs.\n# TYPE detector_info gauge\n";
  out += fmt::format("detector_info{{instance=\"{}\",model=\"{}\"}} 1\n", instance, model);
  out += "# HELP detector_frames_total Frames analysed.\n# TYPE detector_frames_total counter\n";
  out += fmt::format("detector_frames_total {}\n", s.frames);
  out += "# HELP detector_detections_total Moving objects detected, summed over frames.\n# TYPE detector_detections_total counter\n";
  out += fmt::format("detector_detections_total {}\n", s.detections);
  out += "# HELP detector_objects Moving objects in the last frame.\n# TYPE detector_objects gauge\n";
  out += fmt::format("detector_objects {}\n", s.last_objects);
  out += "# HELP detector_fps Frames analysed per second over the last 5 seconds.\n# TYPE detector_fps gauge\n";
  out += fmt::format("detector_fps {:.3f}\n", fps);
  out += "# HELP detector_target_fps The requested frame rate.\n# TYPE detector_target_fps gauge\n";
  out += fmt::format("detector_target_fps {}\n", target_fps);
  out += "# HELP detector_queue_depth Frames due but not yet analysed.\n# TYPE detector_queue_depth gauge\n";
  out += fmt::format("detector_queue_depth {}\n", s.queue_depth);
  out += "# HELP detector_frame_latency_seconds Time to analyse one frame.\n# TYPE detector_frame_latency_seconds histogram\n";
  double cumulative = 0;
  for (std::size_t i = 0; i < 7; ++i) {
    cumulative += s.latency_buckets[i];
    out += fmt::format("detector_frame_latency_seconds_bucket{{le=\"{}\"}} {}\n", kBucketMs[i] / 1000, cumulative);
  }
  out += fmt::format("detector_frame_latency_seconds_bucket{{le=\"+Inf\"}} {}\n", s.frames);
  out += fmt::format("detector_frame_latency_seconds_sum {}\n", s.latency_sum);
  out += fmt::format("detector_frame_latency_seconds_count {}\n", s.frames);
  return out;
}

void analyse(Stats& stats, int width, int height, int objects, double fps) {
  Scene scene(width, height, objects, 42);
  Frame previous = scene.next();
  auto interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / fps));
  auto due = Clock::now();
  while (!stopping) {
    due += interval;
    auto start = Clock::now();
    Frame current = scene.next();
    int blobs = count_blobs(previous, current);
    previous = std::move(current);
    auto end = Clock::now();
    double ms = std::chrono::duration<double, std::milli>(end - start).count();
    {
      std::lock_guard lock(stats.mu);
      ++stats.frames;
      stats.detections += static_cast<std::uint64_t>(blobs);
      stats.last_objects = blobs;
      stats.latency_sum += ms / 1000;
      std::size_t b = 0;
      while (b < 7 && ms > kBucketMs[b]) ++b;
      stats.latency_buckets[b] += 1;
      stats.recent.push_back(end);
      stats.queue_depth = end > due ? std::floor(std::chrono::duration<double>(end - due) / interval) : 0;
    }
    std::this_thread::sleep_until(due);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"detector: motion detection on synthetic camera frames, with Prometheus metrics"};
  int port = -1, width = 320, height = 240, objects = 3;
  double fps = 10, drain_seconds = 0;
  app.add_option("--port", port, "HTTP port (0: any; default CPN_PORT or 0)");
  app.add_option("--fps", fps, "frames to analyse per second")->check(CLI::Range(0.1, 1000.0));
  app.add_option("--width", width, "frame width")->check(CLI::Range(64, 4096));
  app.add_option("--height", height, "frame height")->check(CLI::Range(64, 4096));
  app.add_option("--objects", objects, "moving objects in the scene")->check(CLI::Range(0, 16));
  app.add_option("--drain-seconds", drain_seconds, "after SIGTERM, go on this long before stopping")
      ->check(CLI::Range(0.0, 3600.0));
  CLI11_PARSE(app, argc, argv);
  if (port < 0) port = std::getenv("CPN_PORT") ? std::atoi(std::getenv("CPN_PORT")) : 0;
  std::string instance = std::getenv("CPN_INSTANCE_ID") ? std::getenv("CPN_INSTANCE_ID") : "local";
  std::string model = std::getenv("CPN_MODEL_VERSION") ? std::getenv("CPN_MODEL_VERSION") : "builtin";
  if (objects * 32 > height) objects = height / 32;  // one lane each

  std::signal(SIGTERM, [](int) { terminated = true; });
  std::signal(SIGINT, [](int) { terminated = true; });

  net::io_context io;
  net::ip::tcp::acceptor acceptor(io, {net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  std::cout << "listening on " << acceptor.local_endpoint().port() << std::endl;

  Stats stats;
  std::thread worker([&] { analyse(stats, width, height, objects, fps); });
  // One request per connection, answered in turn: a scraper and a health check need no more.
  acceptor.non_blocking(true);
  std::optional<std::chrono::steady_clock::time_point> draining_since;
  while (!stopping) {
    if (terminated) {
      if (!draining_since) draining_since = std::chrono::steady_clock::now();
      if (std::chrono::steady_clock::now() - *draining_since >= std::chrono::duration<double>(drain_seconds)) {
        stopping = true;
        break;
      }
    }
    boost::system::error_code ec;
    net::ip::tcp::socket socket(io);
    acceptor.accept(socket, ec);
    if (ec == net::error::would_block || ec == net::error::try_again) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (ec) continue;
    socket.non_blocking(false);
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::read(socket, buffer, req, ec);
    if (ec) continue;
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(false);
    std::string target(req.target());
    if (target == "/metrics") {
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/plain; version=0.0.4");
      res.body() = metrics(stats, instance, model, fps);
    } else if (target == "/healthz" || target == "/livez") {
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/plain");
      res.body() = "ok\n";
    } else {
      res.result(http::status::not_found);
      res.body() = "not found\n";
    }
    res.prepare_payload();
    http::write(socket, res, ec);
  }
  worker.join();
  return 0;
}
