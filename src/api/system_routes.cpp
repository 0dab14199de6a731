// Health, metrics, the OpenAPI document and the event log.
#include <sys/statvfs.h>

#include <charconv>
#include <memory>
#include <optional>

#include "common.hpp"
#include "cpn/store/store.hpp"
#include "routes.hpp"
#include "views.hpp"

namespace cpn::api {
namespace {

std::string inventory_gauges(Services& s) {
  std::map<std::string, int> sites_by_tier;
  std::map<std::pair<std::string, std::string>, int> nodes;
  std::map<std::string, double> cpu_total, cpu_alloc;
  std::map<std::string, int> accel;
  for (const auto* o : s.engine.list(inventory::kSite)) sites_by_tier[o->body.value("tier", "")]++;
  for (const auto* o : s.engine.list(inventory::kNode)) {
    const Json& b = o->body;
    nodes[{b.value("arch", ""), b.value("state", "")}]++;
    cpu_total[b.value("arch", "")] += b.value("cpu", 0.0);
    cpu_alloc[b.value("arch", "")] += b.value("allocated", Json::object()).value("cpu", 0.0);
    for (const auto& a : b.value("accelerators", Json::array())) accel[a.value("model", "")] += a.value("count", 0);
  }
  std::string out;
  out += "# HELP cpnd_inventory_sites Sites in the inventory, by tier.\n# TYPE cpnd_inventory_sites gauge\n";
  for (const auto& [tier, n] : sites_by_tier)
    out += fmt::format("cpnd_inventory_sites{{tier=\"{}\"}} {}\n", http::escape_label(tier), n);
  out += "# HELP cpnd_inventory_nodes Nodes in the inventory, by architecture and state.\n"
         "# TYPE cpnd_inventory_nodes gauge\n";
  for (const auto& [k, n] : nodes)
    out += fmt::format("cpnd_inventory_nodes{{arch=\"{}\",state=\"{}\"}} {}\n", http::escape_label(k.first),
                       http::escape_label(k.second), n);
  out += "# HELP cpnd_inventory_links Links in the inventory.\n# TYPE cpnd_inventory_links gauge\n";
  out += fmt::format("cpnd_inventory_links {}\n", s.engine.count(inventory::kLink));
  out += "# HELP cpnd_inventory_cpu_cores CPU cores in the inventory, by architecture.\n"
         "# TYPE cpnd_inventory_cpu_cores gauge\n";
  for (const auto& [arch, v] : cpu_total)
    out += fmt::format("cpnd_inventory_cpu_cores{{arch=\"{}\"}} {}\n", http::escape_label(arch), v);
  out += "# HELP cpnd_inventory_cpu_cores_allocated CPU cores held by deployments, by architecture.\n"
         "# TYPE cpnd_inventory_cpu_cores_allocated gauge\n";
  for (const auto& [arch, v] : cpu_alloc)
    out += fmt::format("cpnd_inventory_cpu_cores_allocated{{arch=\"{}\"}} {}\n", http::escape_label(arch), v);
  out += "# HELP cpnd_inventory_accelerators Accelerator devices in the inventory, by model.\n"
         "# TYPE cpnd_inventory_accelerators gauge\n";
  for (const auto& [model, n] : accel)
    out += fmt::format("cpnd_inventory_accelerators{{model=\"{}\"}} {}\n", http::escape_label(model), n);
  return out;
}

std::string order_gauges(Services& s) {
  std::map<std::string, int> by_state;
  for (const char* state : {"quoted", "confirmed", "cancelled", "expired"}) by_state[state] = 0;
  for (const auto* o : s.engine.list(orders::kOrder)) by_state[o->body.value("state", "")]++;
  // Finished ones are in the store only (until history.retention removes
  // them), counted there as they are written: a scrape reads a few rows.
  auto archived = s.engine.store().count_archived_by_state(orders::kOrder);
  for (const auto& [state, n] : archived) by_state[state] += static_cast<int>(n);
  std::string out = "# HELP cpnd_orders Orders by state (finished ones while history.retention keeps them).\n# TYPE cpnd_orders gauge\n";
  for (const auto& [state, n] : by_state)
    out += fmt::format("cpnd_orders{{state=\"{}\"}} {}\n", http::escape_label(state), n);
  return out;
}

std::string store_metrics(Services& s) {
  const auto& t = s.engine.store().timings();
  std::string out;
  out += "# HELP cpnd_db_commit_duration_seconds Time to commit one write transaction (fsync included, unless left to the group commit).\n"
         "# TYPE cpnd_db_commit_duration_seconds histogram\n";
  for (std::size_t i = 0; i < std::size(store::kTimingBuckets); ++i)
    out += fmt::format("cpnd_db_commit_duration_seconds_bucket{{le=\"{}\"}} {}\n", store::kTimingBuckets[i],
                       t.commit_buckets.empty() ? 0 : t.commit_buckets[i]);
  out += fmt::format("cpnd_db_commit_duration_seconds_bucket{{le=\"+Inf\"}} {}\n", t.commits);
  out += fmt::format("cpnd_db_commit_duration_seconds_sum {}\n", t.commit_seconds);
  out += fmt::format("cpnd_db_commit_duration_seconds_count {}\n", t.commits);
  auto sync = s.engine.store().sync_stats();
  out += fmt::format(
      "# HELP cpnd_db_writes_total Transactions committed (changes, audit and idempotency records).\n"
      "# TYPE cpnd_db_writes_total counter\ncpnd_db_writes_total {}\n"
      "# HELP cpnd_db_writes_synced_total Of those, how many an fsync of the log has covered (group commit: a write's "
      "answer leaves once it is covered).\n"
      "# TYPE cpnd_db_writes_synced_total counter\ncpnd_db_writes_synced_total {}\n"
      "# HELP cpnd_db_syncs_total Group-commit fsyncs of the log (each covers every write made before it began).\n"
      "# TYPE cpnd_db_syncs_total counter\ncpnd_db_syncs_total {}\n"
      "# HELP cpnd_db_sync_seconds_total Time spent in those fsyncs (on their own thread).\n"
      "# TYPE cpnd_db_sync_seconds_total counter\ncpnd_db_sync_seconds_total {}\n",
      sync.written, sync.synced, sync.syncs, sync.seconds);
  out += "# HELP cpnd_db_read_duration_seconds Time spent reading the event log.\n"
         "# TYPE cpnd_db_read_duration_seconds summary\n";
  out += fmt::format("cpnd_db_read_duration_seconds_sum {}\n", t.read_seconds);
  out += fmt::format("cpnd_db_read_duration_seconds_count {}\n", t.reads);
  out += "# HELP cpnd_events_last_sequence Sequence number of the newest event.\n"
         "# TYPE cpnd_events_last_sequence gauge\n";
  out += fmt::format("cpnd_events_last_sequence {}\n", s.engine.last_seq());
  return out;
}

std::uint64_t free_bytes(const std::string& dir) {
  struct statvfs st {};
  if (dir.empty() || ::statvfs(dir.c_str(), &st) != 0) return ~0ull;
  return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

// A bearer token of a role that sees every tenant's business.
bool sees_business(Services& s, const Request& req) {
  std::string auth = req.header("authorization");
  if (auth.size() <= 7 || (auth.rfind("Bearer ", 0) != 0 && auth.rfind("bearer ", 0) != 0)) return false;
  auto who = s.tokens.authenticate(auth.substr(7));
  return who && (who->role == "admin" || who->role == "operator" || who->role == "agent");
}

}  // namespace

void add_system_routes(http::Router& router, Services& s) {
  http::Route livez{"GET", "/livez", {}, [](Request&) { return json({{"status", "ok"}}); }, "livez",
                    "Liveness: the process answers", "system"};
  router.add(std::move(livez));
  router.add({"GET", "/readyz", {},
              [&s](Request& req) {
                if (!s.ready())
                  return error(Error{ErrorKind::unavailable, "cpnd is starting or shutting down", {}}, req);
                // A full disk: writes answer 507 until space returns; ready again by itself then.
                std::uint64_t free = free_bytes(s.settings.data_dir);
                if (free < s.settings.min_free_bytes || (s.engine.store().disk_full() && free < 2 * s.settings.min_free_bytes))
                  return error(Error{ErrorKind::unavailable,
                                     fmt::format("the data directory's disk has {} bytes free; writes are refused (507) "
                                                 "until space returns",
                                                 free),
                                     {{"/disk", "full"}}},
                               req);
                s.engine.store().clear_disk_full();
                return json({{"status", "ready"},
                             {"resourceVersion", std::to_string(s.engine.last_seq())},
                             {"disk_free_bytes", free}});
              },
              "readyz", "Readiness: false while starting, once a shutdown has begun, and while the disk is full",
              "system"});
  http::Route metrics{"GET", "/metrics", {},
                      [&s](Request& req) {
                        Response r;
                        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                        r.body = s.metrics.render() + store_metrics(s);
                        // The business (inventory, orders by state) only to a token that sees every tenant.
                        if (s.settings.metrics_business_without_token || sees_business(s, req))
                          r.body += inventory_gauges(s) + order_gauges(s);
                        return r;
                      },
                      "metrics",
                      "Prometheus metrics: HTTP, store and event-log series to anyone; inventory and orders by state "
                      "only with an operator, agent or admin token (unless metrics.business_without_token)",
                      "system"};
  metrics.yaml = false;
  router.add(std::move(metrics));
  // Built once, on first use: the route table does not change after start, and
  // anyone may ask for it, so it must cost nothing to answer again.
  auto document = std::make_shared<std::optional<Json>>();
  http::Route openapi{"GET", "/openapi.json", {},
                      [&router, &s, document](Request&) {
                        if (!*document) *document = openapi_document(router, s.version);
                        return json(**document);
                      },
                      "openapi", "This API's OpenAPI 3 document", "system"};
  router.add(std::move(openapi));
}

void add_event_routes(http::Router& router, Services& s) {
  http::Route events{"GET", "/v1/events", {"operator"},
                     [&s](Request& req) {
                       std::int64_t since = 0;
                       std::size_t limit = 500;
                       if (auto v = req.query_value("since")) {
                         auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), since);
                         if (ec != std::errc() || p != v->data() + v->size() || since < 0)
                           return error(Error::bad_request("since must be a sequence number",
                                                            {{"/query/since", "not a non-negative integer"}}),
                                        req);
                       }
                       if (auto v = req.query_value("limit")) {
                         auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), limit);
                         if (ec != std::errc() || p != v->data() + v->size() || limit < 1 || limit > 5000)
                           return error(Error::bad_request("limit must be an integer from 1 to 5000",
                                                           {{"/query/limit", "not an integer from 1 to 5000"}}),
                                        req);
                       }
                       // Like a Kubernetes watch from a compacted resourceVersion: 410, start over.
                       std::int64_t first = s.engine.store().first_seq();
                       if (since + 1 < first)
                         return error(Error{ErrorKind::gone,
                                            fmt::format("events up to {} were compacted; read the objects, then "
                                                        "watch from their resourceVersion",
                                                        first - 1),
                                            {{"/query/since", fmt::format("older than {}", first - 1)}}},
                                      req);
                       std::string kind = req.query_value("kind").value_or("");
                       if (req.query_value("watch").value_or("") == "true") {
                         Response r;
                         r.stream = http::EventStream{since, req.header("accept").find("text/event-stream") !=
                                                                 std::string::npos,
                                                      kind, req.principal->token_id};
                         return r;
                       }
                       Json items = Json::array();
                       std::int64_t last = since;
                       for (const auto& e : s.engine.events_since(since, limit)) {
                         last = e.seq;
                         if (!kind.empty() && e.kind != kind) continue;
                         items.push_back(store::event_json(e));
                       }
                       return json({{"items", items}, {"last", last}});
                     },
                     "listEvents",
                     "Every committed change after `since`; with watch=true a stream (NDJSON, or server-sent events "
                     "on Accept: text/event-stream)",
                     "events"};
  events.query = {{"since", "integer", "Only events after this sequence number."},
                  {"limit", "integer", "At most this many events (1-5000; not for watch)."},
                  {"kind", "string", "Only events of this kind (site, node, link, image, file, token)."},
                  {"watch", "boolean", "Keep the connection open and stream events as they commit."}};
  router.add(std::move(events));
}

void register_routes(http::Router& router, Services& s) {
  add_system_routes(router, s);
  add_token_routes(router, s);
  add_audit_routes(router, s);
  add_inventory_routes(router, s);
  add_artifact_routes(router, s);
  add_blueprint_routes(router, s);
  add_catalog_routes(router, s);
  add_order_routes(router, s);
  add_deployment_routes(router, s);
  add_sim_routes(router, s);
  add_event_routes(router, s);
  router.set_view("/v1/orders", order_view);
  router.set_view("/v1/deployments", deployment_view);
  router.set_view("/v1/offerings", offering_view);
}

}  // namespace cpn::api
