// Every timer of cpnd is a PeriodicTask: its body runs on the engine's
// thread every interval (measured from the end of the last run), and no
// failure of it, returned or thrown, ends cpnd or the task. Failures are
// counted (/metrics: cpnd_task_failures_total) and logged at most once a
// minute per task, with how many there were since the last line.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "cpn/core/error.hpp"

namespace boost::asio {
class io_context;
}

namespace cpn::http {
class Metrics;
}

namespace cpn::daemon {

class PeriodicTask {
 public:
  using Body = std::function<Status()>;
  PeriodicTask(boost::asio::io_context& io, std::string name, std::chrono::milliseconds interval, Body body,
               http::Metrics& metrics);
  ~PeriodicTask();
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  // Runs the body now, then every interval; interval 0: never (paused).
  void start();
  // Runs `on_wake` (by default the body) as soon as the thread is free,
  // coalesced: one run for any number of calls before it; the periodic
  // runs go on as they were. Nothing while paused or cancelled.
  void set_wake_body(Body on_wake);
  void wake();
  void cancel();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace cpn::daemon
