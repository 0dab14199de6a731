#include "cpn/daemon/periodic.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "cpn/core/log.hpp"
#include "cpn/http/metrics.hpp"

namespace cpn::daemon {

struct PeriodicTask::Impl : std::enable_shared_from_this<Impl> {
  Impl(boost::asio::io_context& io, std::string name, std::chrono::milliseconds interval, Body body, http::Metrics& metrics)
      : io(io), timer(io), name(std::move(name)), interval(interval), body(std::move(body)), metrics(metrics) {}

  boost::asio::io_context& io;
  boost::asio::steady_timer timer;
  std::string name;
  std::chrono::milliseconds interval;
  Body body, on_wake;
  http::Metrics& metrics;
  bool cancelled = false, started = false, wake_posted = false;
  std::uint64_t generation = 0;  // of the pending wait: a handler already queued when cancel() came is stale
  int unlogged_failures = 0;
  std::chrono::steady_clock::time_point last_logged{};

  void failed(const std::string& why) {
    metrics.task_failed(name);
    auto now = std::chrono::steady_clock::now();
    if (last_logged != std::chrono::steady_clock::time_point{} && now - last_logged < std::chrono::minutes(1)) {
      ++unlogged_failures;
      return;
    }
    if (unlogged_failures > 0)
      log::error("{}: {} (and {} more failures in the last minute)", name, why, unlogged_failures);
    else
      log::error("{}: {}", name, why);
    unlogged_failures = 0;
    last_logged = now;
  }

  // The one exception boundary of every timer.
  void guarded(const Body& b) {
    auto start = std::chrono::steady_clock::now();
    try {
      if (auto s = b(); !s) failed(s.error().message);
    } catch (const std::exception& e) {
      failed(std::string("exception: ") + e.what());
    } catch (...) {
      failed("unknown exception");
    }
    metrics.task_ran(name, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  void run() {
    if (cancelled) return;
    guarded(body);
    schedule();
  }

  void schedule() {
    if (cancelled || interval.count() <= 0) return;
    timer.expires_after(interval);
    timer.async_wait([self = shared_from_this(), g = ++generation](boost::system::error_code e) {
      if (!e && g == self->generation) self->run();
    });
  }
};

PeriodicTask::PeriodicTask(boost::asio::io_context& io, std::string name, std::chrono::milliseconds interval, Body body,
                           http::Metrics& metrics)
    : impl_(std::make_shared<Impl>(io, std::move(name), interval, std::move(body), metrics)) {}

PeriodicTask::~PeriodicTask() { cancel(); }

void PeriodicTask::start() {
  if (impl_->interval.count() <= 0) return;
  impl_->started = true;
  impl_->run();
}

void PeriodicTask::wake() {
  if (!impl_->started || impl_->cancelled || impl_->wake_posted) return;
  impl_->wake_posted = true;
  boost::asio::post(impl_->io, [self = impl_] {
    self->wake_posted = false;
    if (self->cancelled) return;
    if (self->on_wake) {
      self->guarded(self->on_wake);
      return;
    }
    ++self->generation;  // the pending run is replaced by this one
    self->timer.cancel();
    self->run();
  });
}

void PeriodicTask::set_wake_body(Body on_wake) { impl_->on_wake = std::move(on_wake); }

void PeriodicTask::cancel() {
  impl_->cancelled = true;
  ++impl_->generation;
  impl_->timer.cancel();
}

}  // namespace cpn::daemon
