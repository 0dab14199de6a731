// Prometheus text exposition of request counts and latency histograms by
// route template, plus gauges and database timings supplied by the caller.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace cpn::http {

class Metrics {
 public:
  void observe(const std::string& route, const std::string& method, int status, double seconds);
  void connection_opened() { ++connections_total_; ++connections_open_; }
  void connection_closed() { --connections_open_; }
  void connection_rejected(const char* reason) { ++connections_rejected_[reason]; }
  void accept_failed() { ++accept_failures_; }
  void body_budget_refused() { ++body_budget_refusals_; }
  std::int64_t open_connections() const { return connections_open_; }
  // Periodic tasks (the reconciler, expiry, ...): each run's duration, and failures.
  void task_ran(const std::string& task, double seconds);
  void task_failed(const std::string& task) { ++task_failures_[task]; }
  std::uint64_t task_failures(const std::string& task) const {
    auto it = task_failures_.find(task);
    return it == task_failures_.end() ? 0 : it->second;
  }
  // The reconciler's work queue: keys due or waiting, and steps that failed (requeued with backoff).
  void set_work_queue(std::size_t depth, std::uint64_t retries) { queue_depth_ = depth; queue_retries_ = retries; }
  void set_orphans_stopped(std::uint64_t n) { orphans_stopped_ = n; }
  // The network driver: calls waiting or in flight, and reservations or tc classes the sweep released.
  void set_network(std::size_t queued, std::uint64_t orphans) { network_queue_ = queued; network_orphans_ = orphans; }
  // Requests whose solving runs on the solver's workers, and those refused for want of room.
  void set_prepared(int in_flight, std::uint64_t refused) { prepared_ = in_flight; prepared_refused_ = refused; }
  // The HTTP families; the caller appends its own.
  std::string render() const;

 private:
  struct Histogram {
    std::vector<std::uint64_t> buckets;
    std::uint64_t count = 0;
    double sum = 0;
  };
  std::map<std::tuple<std::string, std::string, int>, std::uint64_t> requests_;
  std::map<std::pair<std::string, std::string>, Histogram> latency_;
  std::uint64_t connections_total_ = 0;
  std::int64_t connections_open_ = 0;
  std::map<std::string, std::uint64_t> connections_rejected_;  // by reason
  std::uint64_t accept_failures_ = 0;
  std::uint64_t body_budget_refusals_ = 0;
  std::map<std::string, Histogram> task_duration_;
  std::map<std::string, std::uint64_t> task_failures_;
  std::size_t queue_depth_ = 0;
  std::uint64_t queue_retries_ = 0;
  std::uint64_t orphans_stopped_ = 0;
  std::size_t network_queue_ = 0;
  std::uint64_t network_orphans_ = 0;
  int prepared_ = 0;
  std::uint64_t prepared_refused_ = 0;
};

inline constexpr double kLatencyBuckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                             0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};

// Label values escaped for the exposition format.
std::string escape_label(const std::string& v);

}  // namespace cpn::http
