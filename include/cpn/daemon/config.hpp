// The daemon's settings. Precedence: built-in defaults < YAML config file
// < CPND_* environment < command-line flags, as in most daemons of the
// field. Everything is validated before anything is applied.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "cpn/core/document.hpp"
#include "cpn/http/server.hpp"
#include "cpn/auth/limits.hpp"
#include "cpn/template/template.hpp"

namespace cpn::daemon {

struct Config {
  std::string listen = "127.0.0.1:8080";
  std::string data;  // required unless dev
  bool dev = false;
  std::string log_level = "info";
  std::string topology;  // imported at start when set
  std::int64_t events_retained = 1'000'000;  // the event log keeps the newest this many,
  std::chrono::seconds events_max_age{7 * 24 * 3600};  // none older than this
  std::chrono::seconds history_retention{30 * 24 * 3600};  // finished objects go after this (0: kept)
  http::Limits limits;
  std::chrono::seconds quote_ttl{15 * 60};  // how long an order's quote can be confirmed
  double order_duration_hours = 24;        // when an order does not say
  std::string network_driver = "sim";      // sim | linux
  std::string network_prefix = "cpn-";     // linux: namespace of site S is <prefix>S
  templates::Limits deployment_limits;     // what a submitted template may hold
  struct Process {                         // the process driver's workloads
    std::string user;                      // run as; empty: cpnd's own user
    bool allow_root = false;               // as root when cpnd is root and no user is set
    std::vector<std::string> env;          // names of cpnd's variables passed on
    int open_files = 4096;
    double memory_factor = 0;              // RLIMIT_AS per requested GiB; 0: none
    int port_min = 20000, port_max = 29999;
    std::int64_t grace_ms = 5000;          // SIGTERM to SIGKILL
  } process;
  struct Orchestration {                   // the reconciler
    std::int64_t reconcile_ms = 500;       // periodic resync; 0 pauses it
    int max_attempts = 5;                  // starts of one instance
    std::int64_t retry_backoff_ms = 1000, retry_backoff_cap_ms = 30000;
    int driver_threads = 8;                // workers for blocking driver calls
    std::int64_t orphan_sweep_s = 60;      // how often workloads nothing wants are looked for
  } orchestration;
  struct Solver {                          // orders, requotes and what-ifs are solved off the API's thread
    int threads = 2;                       // workers
    int max_pending = 64;                  // solving or waiting at once; more: 503
  } solver;
  std::int64_t sim_start_delay_ms = 2000;  // twin instances: start to running
  std::int64_t sim_stop_delay_ms = 0;      // twin instances: stop to gone
  std::int64_t kube_timeout_ms = 5000;     // one request to a cluster
  auth::RateLimits rates;                 // per token, by role
  auth::Quotas quotas;                    // per tenant
  bool metrics_business_without_token = false;
  std::string tls_cert, tls_key;           // both set: HTTPS
  int audit_retain_days = 90;

  std::string host() const;
  unsigned short port() const;
  Json to_json() const;
  Json rates_json() const;
};

// What the command line set (unset fields leave lower layers alone).
struct Flags {
  std::optional<std::string> listen, data, config, log_level, topology;
  bool dev = false;
};

// Builds the effective configuration: file (flags.config, else
// env CPND_CONFIG), then environment, then flags.
Result<Config> load_config(const Flags& flags, const std::map<std::string, std::string>& env);

std::map<std::string, std::string> environment();

}  // namespace cpn::daemon
