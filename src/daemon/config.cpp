#include "cpn/daemon/config.hpp"
#include "cpn/core/quantity.hpp"

#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "cpn/schema/schema.hpp"

extern char** environ;

namespace cpn::daemon {
namespace {

Status check_listen(const std::string& listen, const std::string& pointer) {
  auto colon = listen.rfind(':');
  unsigned port = 0;
  if (colon != std::string::npos) {
    auto [p, ec] = std::from_chars(listen.data() + colon + 1, listen.data() + listen.size(), port);
    if (ec == std::errc() && p == listen.data() + listen.size() && port <= 65535 && colon > 0) return {};
  }
  return fail(Error::invalid_field(pointer, fmt::format("'{}' is not HOST:PORT", listen)));
}

void apply_file(Config& c, const Json& j) {
  if (j.contains("listen")) c.listen = j["listen"];
  if (j.contains("data")) c.data = j["data"];
  if (j.contains("dev")) c.dev = j["dev"];
  if (j.contains("log_level")) c.log_level = j["log_level"];
  if (j.contains("topology")) c.topology = j["topology"];
  if (auto h = j.find("http"); h != j.end()) {
    if (h->contains("max_body_bytes")) c.limits.max_body_bytes = (*h)["max_body_bytes"];
    if (h->contains("max_header_bytes")) c.limits.max_header_bytes = (*h)["max_header_bytes"];
    if (h->contains("max_connections")) c.limits.max_connections = (*h)["max_connections"];
    if (h->contains("idle_timeout_s"))
      c.limits.idle_timeout = std::chrono::milliseconds(std::llround((*h)["idle_timeout_s"].get<double>() * 1000));
    if (h->contains("request_timeout_s"))
      c.limits.request_timeout =
          std::chrono::milliseconds(std::llround((*h)["request_timeout_s"].get<double>() * 1000));
    if (h->contains("header_timeout_s"))
      c.limits.header_timeout = std::chrono::milliseconds(std::llround((*h)["header_timeout_s"].get<double>() * 1000));
    if (h->contains("max_connections_per_client")) c.limits.max_connections_per_client = (*h)["max_connections_per_client"];
    if (h->contains("max_buffered_body_bytes")) c.limits.max_buffered_body_bytes = (*h)["max_buffered_body_bytes"];
    if (h->contains("max_yaml_bytes")) c.limits.max_yaml_bytes = (*h)["max_yaml_bytes"];
  }
  if (auto d = j.find("deployments"); d != j.end()) {
    c.deployment_limits.max_instances = d->value("max_instances", c.deployment_limits.max_instances);
    c.deployment_limits.max_instances_per_placement =
        d->value("max_instances_per_placement", c.deployment_limits.max_instances_per_placement);
  }
  if (auto p = j.find("process"); p != j.end()) {
    c.process.user = p->value("user", c.process.user);
    c.process.allow_root = p->value("allow_root", c.process.allow_root);
    c.process.env = p->value("env", c.process.env);
    c.process.open_files = p->value("open_files", c.process.open_files);
    c.process.memory_factor = p->value("memory_factor", c.process.memory_factor);
    c.process.grace_ms = p->value("grace_ms", c.process.grace_ms);
    if (p->contains("ports")) {
      std::string range = (*p)["ports"];
      c.process.port_min = std::stoi(range.substr(0, range.find('-')));
      c.process.port_max = std::stoi(range.substr(range.find('-') + 1));
    }
  }
  if (auto o = j.find("orchestrator"); o != j.end()) {
    c.orchestration.reconcile_ms = o->value("reconcile_ms", c.orchestration.reconcile_ms);
    c.orchestration.max_attempts = o->value("max_attempts", c.orchestration.max_attempts);
    c.orchestration.retry_backoff_ms = o->value("retry_backoff_ms", c.orchestration.retry_backoff_ms);
    c.orchestration.retry_backoff_cap_ms = o->value("retry_backoff_cap_ms", c.orchestration.retry_backoff_cap_ms);
    c.orchestration.driver_threads = o->value("driver_threads", c.orchestration.driver_threads);
    c.orchestration.orphan_sweep_s = o->value("orphan_sweep_s", c.orchestration.orphan_sweep_s);
  }
  if (auto v = j.find("solver"); v != j.end()) {
    c.solver.threads = v->value("threads", c.solver.threads);
    c.solver.max_pending = v->value("max_pending", c.solver.max_pending);
  }
  if (auto t = j.find("sim"); t != j.end()) {
    c.sim_start_delay_ms = t->value("start_delay_ms", c.sim_start_delay_ms);
    c.sim_stop_delay_ms = t->value("stop_delay_ms", c.sim_stop_delay_ms);
  }
  if (auto k = j.find("kubernetes"); k != j.end()) c.kube_timeout_ms = k->value("timeout_ms", c.kube_timeout_ms);
  if (auto l = j.find("limits"); l != j.end()) {
    if (auto rates = l->find("rate"); rates != l->end())
      for (auto it = rates->begin(); it != rates->end(); ++it)
        c.rates.by_role[it.key()] = {(*it)["requests_per_second"].get<double>(), (*it)["burst"].get<double>()};
    const Json t = l->value("tenant", Json::object());
    c.quotas.max_open_orders = t.value("max_open_orders", c.quotas.max_open_orders);
    c.quotas.max_active_deployments = t.value("max_active_deployments", c.quotas.max_active_deployments);
    c.quotas.max_idempotency_keys = t.value("max_idempotency_keys", c.quotas.max_idempotency_keys);
  }
  if (auto m = j.find("metrics"); m != j.end())
    c.metrics_business_without_token = m->value("business_without_token", c.metrics_business_without_token);
  if (auto t = j.find("tls"); t != j.end()) {
    c.tls_cert = (*t)["cert_file"];
    c.tls_key = (*t)["key_file"];
  }
  if (auto a = j.find("audit"); a != j.end()) c.audit_retain_days = a->value("retain_days", c.audit_retain_days);
  if (auto f = j.find("files"); f != j.end() && f->contains("max_bytes")) c.limits.max_file_bytes = (*f)["max_bytes"];
  if (auto e = j.find("events"); e != j.end()) {
    if (e->contains("retain")) c.events_retained = (*e)["retain"];
    if (e->contains("max_age"))  // the schema has checked the pattern
      c.events_max_age = std::chrono::seconds(std::llround(parse_duration_seconds((*e)["max_age"].get<std::string>()).value_or(604800)));
  }
  if (auto h = j.find("history"); h != j.end() && h->contains("retention"))
    c.history_retention = std::chrono::seconds(std::llround(parse_duration_seconds((*h)["retention"].get<std::string>()).value_or(2592000)));
  if (auto n = j.find("network"); n != j.end()) {
    c.network_driver = n->value("driver", c.network_driver);
    c.network_prefix = n->value("namespace_prefix", c.network_prefix);
  }
  if (auto o = j.find("orders"); o != j.end()) {
    // The schema has checked the pattern; parse_duration_seconds accepts it.
    if (o->contains("quote_ttl"))
      c.quote_ttl = std::chrono::seconds(std::llround(parse_duration_seconds((*o)["quote_ttl"].get<std::string>()).value_or(900)));
    if (o->contains("default_duration"))
      c.order_duration_hours = parse_duration_seconds((*o)["default_duration"].get<std::string>()).value_or(86400) / 3600;
  }
}

template <typename T>
Status env_number(const std::map<std::string, std::string>& env, const char* name, T& out, T min,
                  T max = std::numeric_limits<T>::max()) {
  auto it = env.find(name);
  if (it == env.end()) return {};
  T v{};
  auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (ec != std::errc() || p != it->second.data() + it->second.size() || v < min || v > max)
    return fail(Error::invalid_field(std::string("/env/") + name,
                                     max == std::numeric_limits<T>::max()
                                         ? fmt::format("'{}' is not a number of at least {}", it->second, min)
                                         : fmt::format("'{}' is not a number from {} to {}", it->second, min, max)));
  out = v;
  return {};
}

}  // namespace

std::string Config::host() const { return listen.substr(0, listen.rfind(':')); }
unsigned short Config::port() const { return static_cast<unsigned short>(std::stoi(listen.substr(listen.rfind(':') + 1))); }

Json Config::to_json() const {
  return {{"listen", listen},
          {"data", data},
          {"dev", dev},
          {"log_level", log_level},
          {"topology", topology},
          {"http",
           {{"max_body_bytes", limits.max_body_bytes},
            {"max_header_bytes", limits.max_header_bytes},
            {"max_connections", limits.max_connections},
            {"idle_timeout_s", limits.idle_timeout.count() / 1000.0},
            {"header_timeout_s", limits.header_timeout.count() / 1000.0},
            {"max_connections_per_client", limits.max_connections_per_client},
            {"max_buffered_body_bytes", limits.max_buffered_body_bytes},
            {"max_yaml_bytes", limits.max_yaml_bytes},
            {"request_timeout_s", limits.request_timeout.count() / 1000.0}}},
          {"files", {{"max_bytes", limits.max_file_bytes}}},
          {"events", {{"retain", events_retained}, {"max_age", fmt::format("{}s", events_max_age.count())}}},
          {"history", {{"retention", fmt::format("{}s", history_retention.count())}}},
          {"orders", {{"quote_ttl", fmt::format("{}s", quote_ttl.count())},
                      {"default_duration", fmt::format("{}h", order_duration_hours)}}},
          {"network", {{"driver", network_driver}, {"namespace_prefix", network_prefix}}},
          {"deployments", {{"max_instances", deployment_limits.max_instances},
                           {"max_instances_per_placement", deployment_limits.max_instances_per_placement}}},
          {"process", {{"user", process.user}, {"allow_root", process.allow_root}, {"env", process.env},
                       {"open_files", process.open_files}, {"memory_factor", process.memory_factor},
                       {"ports", fmt::format("{}-{}", process.port_min, process.port_max)},
                       {"grace_ms", process.grace_ms}}},
          {"orchestrator", {{"reconcile_ms", orchestration.reconcile_ms}, {"max_attempts", orchestration.max_attempts},
                            {"retry_backoff_ms", orchestration.retry_backoff_ms},
                            {"retry_backoff_cap_ms", orchestration.retry_backoff_cap_ms},
                            {"driver_threads", orchestration.driver_threads},
                            {"orphan_sweep_s", orchestration.orphan_sweep_s}}},
          {"solver", {{"threads", solver.threads}, {"max_pending", solver.max_pending}}},
          {"sim", {{"start_delay_ms", sim_start_delay_ms}, {"stop_delay_ms", sim_stop_delay_ms}}},
          {"kubernetes", {{"timeout_ms", kube_timeout_ms}}},
          {"limits", {{"rate", rates_json()}, {"tenant", {{"max_open_orders", quotas.max_open_orders},
                                                         {"max_active_deployments", quotas.max_active_deployments},
                                                         {"max_idempotency_keys", quotas.max_idempotency_keys}}}}},
          {"metrics", {{"business_without_token", metrics_business_without_token}}},
          {"tls", tls_cert.empty() ? Json(nullptr) : Json{{"cert_file", tls_cert}, {"key_file", tls_key}}},
          {"audit", {{"retain_days", audit_retain_days}}}};
}

Json Config::rates_json() const {
  Json out = Json::object();
  for (const auto& [role, r] : rates.by_role) out[role] = {{"requests_per_second", r.per_second}, {"burst", r.burst}};
  return out;
}

std::map<std::string, std::string> environment() {
  std::map<std::string, std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos && kv.rfind("CPND_", 0) == 0) out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return out;
}

Result<Config> load_config(const Flags& flags, const std::map<std::string, std::string>& env) {
  Config c;
  std::optional<std::string> file = flags.config;
  if (!file)
    if (auto it = env.find("CPND_CONFIG"); it != env.end() && !it->second.empty()) file = it->second;
  if (file) {
    auto doc = load_document_file(*file);
    if (!doc) return fail(doc.error());
    if (doc->is_null()) *doc = Json::object();
    if (auto s = schema::validate("config", *doc, "config file '" + *file + "'"); !s) return fail(s.error());
    if (doc->contains("listen"))
      if (auto s = check_listen((*doc)["listen"], "/listen"); !s) return fail(s.error());
    apply_file(c, *doc);
  }
  auto str = [&](const char* name, std::string& out) {
    if (auto it = env.find(name); it != env.end()) out = it->second;
  };
  str("CPND_LISTEN", c.listen);
  str("CPND_DATA", c.data);
  str("CPND_LOG_LEVEL", c.log_level);
  str("CPND_TOPOLOGY", c.topology);
  if (auto it = env.find("CPND_DEV"); it != env.end()) c.dev = it->second == "1" || it->second == "true";
  std::size_t body = c.limits.max_body_bytes, header = c.limits.max_header_bytes, conns = c.limits.max_connections;
  std::uint64_t files = c.limits.max_file_bytes;
  std::int64_t idle_s = c.limits.idle_timeout.count() / 1000;
  if (auto s = env_number(env, "CPND_MAX_BODY_BYTES", body, std::size_t{1024}); !s) return fail(s.error());
  if (auto s = env_number(env, "CPND_MAX_HEADER_BYTES", header, std::size_t{1024}); !s) return fail(s.error());
  if (auto s = env_number(env, "CPND_MAX_CONNECTIONS", conns, std::size_t{1}); !s) return fail(s.error());
  if (auto s = env_number(env, "CPND_FILES_MAX_BYTES", files, std::uint64_t{1}); !s) return fail(s.error());
  if (auto s = env_number(env, "CPND_IDLE_TIMEOUT_S", idle_s, std::int64_t{1}); !s) return fail(s.error());
  std::size_t per_client = c.limits.max_connections_per_client;
  std::uint64_t buffered = c.limits.max_buffered_body_bytes;
  std::int64_t header_ms = c.limits.header_timeout.count();
  if (auto s = env_number(env, "CPND_MAX_CONNECTIONS_PER_CLIENT", per_client, std::size_t{1}); !s) return fail(s.error());
  if (auto s = env_number(env, "CPND_MAX_BUFFERED_BODY_BYTES", buffered, std::uint64_t{1024}); !s) return fail(s.error());
  if (auto s = env_number(env, "CPND_HEADER_TIMEOUT_MS", header_ms, std::int64_t{1}); !s) return fail(s.error());
  c.limits.max_connections_per_client = per_client;
  c.limits.max_buffered_body_bytes = buffered;
  c.limits.header_timeout = std::chrono::milliseconds(header_ms);
  c.limits.max_body_bytes = body;
  c.limits.max_header_bytes = header;
  c.limits.max_connections = conns;
  c.limits.max_file_bytes = files;
  if (env.count("CPND_IDLE_TIMEOUT_S")) c.limits.idle_timeout = std::chrono::seconds(idle_s);
  if (auto it = env.find("CPND_QUOTE_TTL"); it != env.end()) {
    auto secs = parse_duration_seconds(it->second);
    if (!secs || *secs < 1)
      return fail(Error::invalid_field("/env/CPND_QUOTE_TTL", fmt::format("'{}' is not a duration such as 15m", it->second)));
    c.quote_ttl = std::chrono::seconds(std::llround(*secs));
  }

  if (auto it = env.find("CPND_HISTORY_RETENTION"); it != env.end()) {
    auto secs = parse_duration_seconds(it->second);
    if (!secs)
      return fail(Error::invalid_field("/env/CPND_HISTORY_RETENTION",
                                       fmt::format("'{}' is not a duration such as 30d (0s keeps everything)", it->second)));
    c.history_retention = std::chrono::seconds(std::llround(*secs));
  }

  // The reconciler and the drivers' timings (the schema's bounds).
  auto& o = c.orchestration;
  if (auto s = env_number(env, "CPND_RECONCILE_MS", o.reconcile_ms, std::int64_t{0}, std::int64_t{3600000}); !s) return fail(s.error());
  if (auto s = env_number(env, "CPND_MAX_ATTEMPTS", o.max_attempts, 1, 1000); !s) return fail(s.error());
  if (auto s = env_number(env, "CPND_RETRY_BACKOFF_MS", o.retry_backoff_ms, std::int64_t{1}, std::int64_t{3600000}); !s)
    return fail(s.error());
  if (auto s = env_number(env, "CPND_SIM_START_DELAY_MS", c.sim_start_delay_ms, std::int64_t{0}, std::int64_t{3600000}); !s)
    return fail(s.error());
  if (auto s = env_number(env, "CPND_SIM_STOP_DELAY_MS", c.sim_stop_delay_ms, std::int64_t{0}, std::int64_t{3600000}); !s)
    return fail(s.error());
  if (auto s = env_number(env, "CPND_SOLVER_THREADS", c.solver.threads, 1, 64); !s) return fail(s.error());
  if (auto s = env_number(env, "CPND_SOLVER_MAX_PENDING", c.solver.max_pending, 1, 100000); !s) return fail(s.error());
  if (auto s = env_number(env, "CPND_KUBE_TIMEOUT_MS", c.kube_timeout_ms, std::int64_t{100}, std::int64_t{600000}); !s)
    return fail(s.error());
  if (o.retry_backoff_cap_ms < o.retry_backoff_ms)
    return fail(Error::invalid_field("/orchestrator/retry_backoff_cap_ms",
                                     fmt::format("{} is shorter than retry_backoff_ms ({})", o.retry_backoff_cap_ms,
                                                 o.retry_backoff_ms)));

  str("CPND_TLS_CERT", c.tls_cert);
  str("CPND_TLS_KEY", c.tls_key);
  if (c.tls_cert.empty() != c.tls_key.empty())
    return fail(Error::invalid_field(c.tls_cert.empty() ? "/tls/cert_file" : "/tls/key_file",
                                     "HTTPS needs both a certificate and its key"));
  str("CPND_PROCESS_USER", c.process.user);
  if (auto it = env.find("CPND_PROCESS_ALLOW_ROOT"); it != env.end())
    c.process.allow_root = it->second == "1" || it->second == "true";
  for (const auto& name : c.process.env)
    if (name.rfind("CPN", 0) == 0)
      return fail(Error::invalid_field("/process/env", fmt::format("'{}': cpnd's own variables never reach workloads", name)));
  if (c.process.port_max - c.process.port_min < 255)
    return fail(Error::invalid_field("/process/ports", "the range holds fewer than 256 ports"));

  str("CPND_NETWORK_DRIVER", c.network_driver);
  if (c.network_driver != "sim" && c.network_driver != "linux")
    return fail(Error::invalid_field("/network/driver", fmt::format("'{}' is not sim or linux", c.network_driver)));

  if (flags.listen) c.listen = *flags.listen;
  if (flags.data) c.data = *flags.data;
  if (flags.log_level) c.log_level = *flags.log_level;
  if (flags.topology) c.topology = *flags.topology;
  if (flags.dev) c.dev = true;

  if (auto s = check_listen(c.listen, "/listen"); !s) return fail(s.error());
  if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "notice" && c.log_level != "warning" &&
      c.log_level != "error")
    return fail(Error::invalid_field("/log_level", fmt::format("'{}' is not debug, info, notice, warning or error",
                                                               c.log_level)));
  if (c.process.port_min < 1024 || c.process.port_max > 65535 || c.process.port_min > c.process.port_max)
    return fail(Error::invalid_field("/process/ports", fmt::format("{}-{} is not a range of unprivileged ports, low to high",
                                                                   c.process.port_min, c.process.port_max)));
  if (c.data.empty() && !c.dev)
    return fail(Error::invalid_field("/data", "a data directory is required (--data, CPND_DATA or data:) unless --dev"));
  return c;
}

}  // namespace cpn::daemon
