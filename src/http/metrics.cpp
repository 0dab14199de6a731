#include "cpn/http/metrics.hpp"

#include <fmt/format.h>

namespace cpn::http {

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

namespace {

template <typename H>
void add(H& h, double seconds) {
  if (h.buckets.empty()) h.buckets.assign(std::size(kLatencyBuckets), 0);
  for (std::size_t i = 0; i < std::size(kLatencyBuckets); ++i)
    if (seconds <= kLatencyBuckets[i]) h.buckets[i]++;
  h.count++;
  h.sum += seconds;
}

template <typename H>
std::string histogram(const std::string& name, const std::string& labels, const H& h) {
  std::string out;
  for (std::size_t i = 0; i < h.buckets.size(); ++i)
    out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, kLatencyBuckets[i], h.buckets[i]);
  out += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, h.count);
  out += fmt::format("{}_sum{{{}}} {}\n", name, labels, h.sum);
  out += fmt::format("{}_count{{{}}} {}\n", name, labels, h.count);
  return out;
}

// One family of a single sample: HELP, TYPE and its value.
template <typename V>
std::string scalar(const char* name, const char* type, const char* help, V value) {
  return fmt::format("# HELP {0} {1}\n# TYPE {0} {2}\n{0} {3}\n", name, help, type, value);
}

}  // namespace

void Metrics::observe(const std::string& route, const std::string& method, int status, double seconds) {
  requests_[{route, method, status}]++;
  add(latency_[{route, method}], seconds);
}

void Metrics::task_ran(const std::string& task, double seconds) { add(task_duration_[task], seconds); }

std::string Metrics::render() const {
  std::string out;
  out += "# HELP cpnd_http_requests_total HTTP requests answered, by route template, method and status.\n";
  out += "# TYPE cpnd_http_requests_total counter\n";
  for (const auto& [k, v] : requests_)
    out += fmt::format("cpnd_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}\n",
                       escape_label(std::get<0>(k)), std::get<1>(k), std::get<2>(k), v);
  out += "# HELP cpnd_http_request_duration_seconds Time from a request's header being read to its answer "
         "(its body and any wait included), by route template.\n";
  out += "# TYPE cpnd_http_request_duration_seconds histogram\n";
  for (const auto& [k, h] : latency_)
    out += histogram("cpnd_http_request_duration_seconds",
                     fmt::format("route=\"{}\",method=\"{}\"", escape_label(k.first), k.second), h);
  out += "# HELP cpnd_http_connections_total Connections accepted.\n# TYPE cpnd_http_connections_total counter\n";
  out += fmt::format("cpnd_http_connections_total {}\n", connections_total_);
  out += "# HELP cpnd_http_connections_open Connections open now.\n# TYPE cpnd_http_connections_open gauge\n";
  out += fmt::format("cpnd_http_connections_open {}\n", connections_open_);
  out += "# HELP cpnd_http_connections_rejected_total Connections refused over a connection limit, by limit.\n"
         "# TYPE cpnd_http_connections_rejected_total counter\n";
  for (const char* reason : {"total", "per_client"})
    out += fmt::format("cpnd_http_connections_rejected_total{{limit=\"{}\"}} {}\n", reason,
                       connections_rejected_.count(reason) ? connections_rejected_.at(reason) : 0);
  out += scalar("cpnd_http_accept_failures_total", "counter",
                "Failed accepts (out of descriptors or memory); accepting backs off.", accept_failures_);
  out += scalar("cpnd_http_body_budget_refusals_total", "counter",
                "Requests answered 503 because the bodies held in memory were at their budget.", body_budget_refusals_);
  out += "# HELP cpnd_task_duration_seconds Runs of cpnd's periodic tasks (reconcile: one pass), by task.\n"
         "# TYPE cpnd_task_duration_seconds histogram\n";
  for (const auto& [task, h] : task_duration_)
    out += histogram("cpnd_task_duration_seconds", fmt::format("task=\"{}\"", escape_label(task)), h);
  out += "# HELP cpnd_task_failures_total Runs of a periodic task that failed or threw (the task carries on).\n"
         "# TYPE cpnd_task_failures_total counter\n";
  for (const auto& [task, h] : task_duration_)
    out += fmt::format("cpnd_task_failures_total{{task=\"{}\"}} {}\n", escape_label(task),
                       task_failures_.count(task) ? task_failures_.at(task) : 0);
  out += scalar("cpnd_reconcile_queue_depth", "gauge",
                "Deployments queued for the reconciler, due or waiting out a backoff.", queue_depth_);
  out += scalar("cpnd_reconcile_retries_total", "counter",
                "Deployment steps that failed and were queued again with backoff.", queue_retries_);
  out += scalar("cpnd_orphans_stopped_total", "counter",
                "Workloads (processes, Kubernetes objects) found that no deployment wanted, stopped by the sweep.", orphans_stopped_);
  out += scalar("cpnd_network_calls_queued", "gauge",
                "Network driver calls (reserve, release, sweep) waiting or in flight; a blocking driver takes one at a time.",
                network_queue_);
  out += scalar("cpnd_network_orphans_released_total", "counter",
                "Bandwidth reservations and tc classes found that no deployment wanted, released by the sweep.",
                network_orphans_);
  out += scalar("cpnd_solves_in_flight", "gauge",
                "Requests being solved on the solver's workers (orders, requotes, what-ifs) or waiting for one.",
                prepared_);
  out += scalar("cpnd_solves_refused_total", "counter",
                "Requests answered 503 because solver.max_pending were already waiting.", prepared_refused_);
  return out;
}

}  // namespace cpn::http
