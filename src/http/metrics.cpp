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

void Metrics::observe(const std::string& route, const std::string& method, int status, double seconds) {
  requests_[{route, method, status}]++;
  auto& h = latency_[{route, method}];
  if (h.buckets.empty()) h.buckets.assign(std::size(kLatencyBuckets), 0);
  for (std::size_t i = 0; i < std::size(kLatencyBuckets); ++i)
    if (seconds <= kLatencyBuckets[i]) h.buckets[i]++;
  h.count++;
  h.sum += seconds;
}

std::string Metrics::render() const {
  std::string out;
  out += "# HELP cpnd_http_requests_total HTTP requests answered, by route template, method and status.\n";
  out += "# TYPE cpnd_http_requests_total counter\n";
  for (const auto& [k, v] : requests_)
    out += fmt::format("cpnd_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}\n",
                       escape_label(std::get<0>(k)), std::get<1>(k), std::get<2>(k), v);
  out += "# HELP cpnd_http_request_duration_seconds Time from a full request to its answer, by route template.\n";
  out += "# TYPE cpnd_http_request_duration_seconds histogram\n";
  for (const auto& [k, h] : latency_) {
    std::string labels = fmt::format("route=\"{}\",method=\"{}\"", escape_label(k.first), k.second);
    for (std::size_t i = 0; i < h.buckets.size(); ++i)
      out += fmt::format("cpnd_http_request_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", labels, kLatencyBuckets[i],
                         h.buckets[i]);
    out += fmt::format("cpnd_http_request_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n", labels, h.count);
    out += fmt::format("cpnd_http_request_duration_seconds_sum{{{}}} {}\n", labels, h.sum);
    out += fmt::format("cpnd_http_request_duration_seconds_count{{{}}} {}\n", labels, h.count);
  }
  out += "# HELP cpnd_http_connections_total Connections accepted.\n# TYPE cpnd_http_connections_total counter\n";
  out += fmt::format("cpnd_http_connections_total {}\n", connections_total_);
  out += "# HELP cpnd_http_connections_open Connections open now.\n# TYPE cpnd_http_connections_open gauge\n";
  out += fmt::format("cpnd_http_connections_open {}\n", connections_open_);
  out += "# HELP cpnd_http_connections_rejected_total Connections refused over a connection limit, by limit.\n"
         "# TYPE cpnd_http_connections_rejected_total counter\n";
  for (const char* reason : {"total", "per_client"})
    out += fmt::format("cpnd_http_connections_rejected_total{{limit=\"{}\"}} {}\n", reason,
                       connections_rejected_.count(reason) ? connections_rejected_.at(reason) : 0);
  out += "# HELP cpnd_http_accept_failures_total Failed accepts (out of descriptors or memory); accepting backs off.\n"
         "# TYPE cpnd_http_accept_failures_total counter\n";
  out += fmt::format("cpnd_http_accept_failures_total {}\n", accept_failures_);
  out += "# HELP cpnd_http_body_budget_refusals_total Requests answered 503 because the bodies held in memory were at their budget.\n"
         "# TYPE cpnd_http_body_budget_refusals_total counter\n";
  out += fmt::format("cpnd_http_body_budget_refusals_total {}\n", body_budget_refusals_);
  return out;
}

}  // namespace cpn::http
