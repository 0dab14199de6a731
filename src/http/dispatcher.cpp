#include "cpn/http/dispatcher.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "cpn/core/crypto.hpp"
#include "cpn/core/log.hpp"
#include "cpn/http/problem.hpp"

namespace cpn::http {
namespace {

std::string media_type(const std::string& content_type) {
  std::string t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && t.back() == ' ') t.pop_back();
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  return t;
}

std::optional<Format> body_format(const std::string& type) {
  if (type == "application/json" || type == "application/merge-patch+json" || type.ends_with("+json"))
    return Format::json;
  if (type == "application/yaml" || type == "application/x-yaml" || type == "text/yaml") return Format::yaml;
  return std::nullopt;
}

bool allowed(const Route& route, const std::string& role) {
  return role == "admin" || std::find(route.roles.begin(), route.roles.end(), role) != route.roles.end();
}

}  // namespace

bool wants_yaml(const std::string& accept) {
  return accept.find("application/yaml") != std::string::npos || accept.find("application/x-yaml") != std::string::npos ||
         accept.find("text/yaml") != std::string::npos;
}

bool Dispatcher::streams_body(const std::string& method, const std::string& path) const {
  auto m = router_.match(method, path);
  return m.route && m.route->streams_body;
}

namespace {

// Request ids travel into logs and answers: keep them short and plain.
std::string clean_request_id(const std::string& given) {
  std::string out;
  for (char c : given.substr(0, 64))
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') out += c;
  return out;
}

// A path in a log line: control characters escaped, so a client cannot forge lines.
std::string loggable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f || c >= 0x80) out += fmt::format("%{:02X}", c);
    else out += static_cast<char>(c);
  }
  return out;
}

const char* method_label(const std::string& m) {
  for (const char* known : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
    if (m == known) return known;
  return "other";  // a label value per made-up method would grow /metrics forever
}

}  // namespace

std::optional<Response> Dispatcher::preflight(Request& req) {
  req.request_id = clean_request_id(req.request_id);
  if (req.request_id.empty()) req.request_id = random_hex(8);
  const Route* route = nullptr;
  Response r = dispatch_head(req, route);
  if (r.status == 0) return std::nullopt;
  answered_early(req, route, r);
  return r;
}

void Dispatcher::answered_early(Request& req, const Route* route, Response& r) {
  r.header("X-Request-Id", req.request_id);
  metrics_.observe(route ? route->path : "unmatched", method_label(req.method), r.status, 0);
  audit(req, route, r.status);
}

Dispatcher::Preparation Dispatcher::parse_ahead(Request& req) {
  if (req.body.size() < kParseAheadBytes || req.document_ready) return {};
  const Route* route = nullptr;
  try {
    if (dispatch_head(req, route).status != 0) return {};  // answered by handle()
  } catch (const std::exception&) {
    return {};
  }
  if (route->request_schema.empty() || route->request_schema == "binary") return {};
  auto format = body_format(media_type(req.header("content-type")).empty() ? "application/json"
                                                                           : media_type(req.header("content-type")));
  if (!format || (*format == Format::yaml && req.body.size() > max_yaml_bytes_)) return {};  // parse_body refuses it
  // The job owns the body meanwhile: it outlives the session should cpnd stop under it.
  auto body = std::make_shared<std::string>(std::move(req.body));
  auto parsed = std::make_shared<Result<Json>>(Json());
  return {[body, parsed, format = *format] {
            try {
              *parsed = parse_document(*body, format);
            } catch (const std::exception& e) {
              *parsed = fail(Error::bad_request(fmt::format("the body cannot be parsed: {}", e.what()), {{"", "unreadable"}}));
            }
          },
          [&req, body, parsed] {
            req.body = std::move(*body);
            if (*parsed) req.document = std::move(**parsed);
            else req.document_error = parsed->error();
            req.document_ready = true;
          },
          {}};
}

Dispatcher::Preparation Dispatcher::prepare(Request& req) {
  const Route* route = nullptr;
  try {
    // Whatever goes wrong here is answered by handle(), the usual way.
    if (dispatch_head(req, route).status != 0 || !route->prepare) return {};
    if (parse_body(req, *route).status != 0) return {};
    std::string key = req.header("idempotency-key");
    if (route->creates && !key.empty() &&
        engine_.store().find_idempotency(req.principal ? req.principal->token_id : "-", key))
      return {};  // a replay: nothing to work out
    // One token holds at most a quarter of the places, so one client cannot keep the others out.
    std::string token = req.principal ? req.principal->token_id : "-";
    int per_token = std::max(1, max_prepared_ / 4);
    bool full = prepared_ >= max_prepared_;
    if (full || prepared_by_token_[token] >= per_token) {
      ++prepared_refused_;
      metrics_.set_prepared(prepared_, prepared_refused_);
      Response r = problem(Error{ErrorKind::unavailable,
                                 full ? fmt::format("{} requests are being solved, as many as may wait (solver.max_pending); "
                                                    "try again shortly",
                                                    prepared_)
                                      : fmt::format("this token has {} requests being solved, its share of "
                                                    "solver.max_pending; try again shortly",
                                                    prepared_by_token_[token]),
                                 {}},
                           req.path, req.request_id);
      r.header("Retry-After", "1");
      answered_early(req, route, r);
      return {{}, {}, std::move(r)};
    }
    auto job = route->prepare(req);
    if (!job) return {};
    ++prepared_;
    ++prepared_by_token_[token];
    metrics_.set_prepared(prepared_, prepared_refused_);
    auto seconds = std::make_shared<double>(0);
    return {[job = std::move(job), seconds] {
              auto t0 = std::chrono::steady_clock::now();
              try {
                job();
              } catch (const std::exception& e) {
                log::error("prepared work failed: {}", e.what());  // the handler works it out again
              } catch (...) {
                log::error("prepared work failed");
              }
              *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            },
            [this, seconds, token, task = route->prepare_task] {
              --prepared_;
              if (--prepared_by_token_[token] <= 0) prepared_by_token_.erase(token);
              metrics_.set_prepared(prepared_, prepared_refused_);
              metrics_.task_ran(task, *seconds);
            },
            std::nullopt};
  } catch (const std::exception& e) {
    log::error("request {} preparing: {}", req.request_id, e.what());
    req.prepared.reset();
    return {};
  }
}

// Every write of a known principal, in its own table. A write that changed
// something is recorded before its answer leaves (one more commit); refused
// ones (403, 404, 422, ...) are batched, so a flood of them costs no fsync
// each, and one refused for its rate (429) is only counted in /metrics.
// Reads and callers without a token are in the access log only.
void Dispatcher::audit(const Request& req, const Route* route, int status) {
  if (!req.principal || req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS" || status == 429) return;
  const auth::Principal& who = *req.principal;
  store::AuditRecord record{0, engine_.now(), who.token_id, who.name, who.role, who.tenant, method_label(req.method),
                            route ? route->path : "unmatched", req.path, status, req.request_id};
  if (status >= 400) {
    if (pending_audit_.size() >= kMaxPendingAudit) {
      ++audit_dropped_;
      return;
    }
    pending_audit_.push_back(std::move(record));
    return;
  }
  pending_audit_.push_back(std::move(record));
  flush_audit();
}

void Dispatcher::flush_audit() {
  if (pending_audit_.empty()) return;
  auto written = engine_.store().append_audit(pending_audit_);
  if (!written) {
    log::error("{} audit records not written: {}", pending_audit_.size(), written.error().message);
    if (pending_audit_.size() < kMaxPendingAudit) return;  // kept for the next try
    audit_dropped_ += pending_audit_.size();
  }
  pending_audit_.clear();
}

Response Dispatcher::handle(Request& req) {
  auto start = req.received == std::chrono::steady_clock::time_point{} ? std::chrono::steady_clock::now() : req.received;
  req.request_id = clean_request_id(req.request_id);
  if (req.request_id.empty()) req.request_id = random_hex(8);
  const Route* route = nullptr;
  Response res;
  try {
    res = dispatch(req, route);
  } catch (const std::exception& e) {
    log::error("request {} {} {}: {}", req.request_id, method_label(req.method), loggable(req.path), e.what());
    res = problem(Error::internal("internal error; the log has the details under this request id"), req.path,
                  req.request_id);
  }
  if (res.json && route && route->view && req.principal && res.status < 300) {
    Json& j = *res.json;
    if (j.is_object() && j.contains("items") && j["items"].is_array())
      for (auto& item : j["items"]) route->view(item, *req.principal);
    else
      route->view(j, *req.principal);
  }
  if (res.json) {
    bool yaml = route && route->yaml && wants_yaml(req.header("accept"));
    res.body = yaml ? to_yaml(*res.json) : res.json->dump(-1, ' ', false, Json::error_handler_t::replace);
    if (res.content_type.empty()) res.content_type = yaml ? "application/yaml" : "application/json";
    const Json& j = *res.json;
    if (j.is_object() && j.contains("metadata") && j["metadata"].contains("resourceVersion"))
      res.header("ETag", "\"" + j["metadata"]["resourceVersion"].get<std::string>() + "\"");
  }
  res.header("X-Request-Id", req.request_id);
  audit(req, route, res.status);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string route_name = route ? route->path : "unmatched";
  metrics_.observe(route_name, method_label(req.method), res.status, seconds);
  auto level = res.status >= 500 ? log::Level::error : log::Level::info;
  if (log::enabled(level))
    log::write(level, fmt::format("request_id={} principal={} {} {} route={} status={} duration_ms={:.3f}",
                                  req.request_id, req.principal ? req.principal->token_id : "-",
                                  method_label(req.method), loggable(req.path),
                                  route_name, res.status, seconds * 1000));
  return res;
}

Response Dispatcher::dispatch(Request& req, const Route*& matched) {
  Response head = dispatch_head(req, matched);
  if (head.status != 0) return head;
  const Route& route = *matched;
  return dispatch_body(req, route);
}

// Routing and authentication. status 0: go on.
Response Dispatcher::dispatch_head(Request& req, const Route*& matched) {
  auto m = router_.match(req.method, req.path);
  if (!m.route) {
    if (m.allowed.empty()) return problem(Error::not_found("no such resource: " + req.path), req.path, req.request_id);
    std::string allow;
    for (const auto& a : m.allowed) allow += (allow.empty() ? "" : ", ") + a;
    auto r = problem(Error{ErrorKind::method_not_allowed, req.method + " is not allowed here; allowed: " + allow, {}},
                     req.path, req.request_id);
    r.header("Allow", allow);
    return r;
  }
  const Route& route = *m.route;
  matched = &route;
  req.params = std::move(m.params);
  for (auto& [k, v] : req.params)  // an encoded '/' inside a segment (see parse_target)
    std::replace(v.begin(), v.end(), '\x1f', '/');

  if (!route.roles.empty()) {
    std::string auth = req.header("authorization");
    std::optional<auth::Principal> who;
    if (auth.size() > 7 && (auth.rfind("Bearer ", 0) == 0 || auth.rfind("bearer ", 0) == 0))
      who = tokens_.authenticate(auth.substr(7));
    if (!who) {
      auto r = problem(Error{ErrorKind::unauthorized,
                             auth.empty() ? "this route needs 'Authorization: Bearer TOKEN'" : "the token is not valid",
                             {}},
                       req.path, req.request_id);
      r.header("WWW-Authenticate", "Bearer realm=\"cpnd\"");
      return r;
    }
    req.principal = who;
    if (!allowed(route, who->role))
      return problem(Error{ErrorKind::forbidden, "role '" + who->role + "' may not " + req.method + " " + route.path, {}},
                     req.path, req.request_id);
    if (!req.rate_counted) {
      req.rate_counted = true;
      if (auto wait = limiter_.take(who->token_id, who->role, auth::RateLimiter::Clock::now())) {
        auto r = problem(Error{ErrorKind::too_many_requests,
                               fmt::format("this token is over its rate ({} requests); try again in {:.1f}s",
                                           who->role, *wait),
                               {{"/header/Authorization", "rate limit of this token"}}},
                         req.path, req.request_id);
        r.header("Retry-After", std::to_string(static_cast<long>(std::ceil(*wait))));
        return r;
      }
    }
  }
  Response go_on;
  go_on.status = 0;
  return go_on;
}

Response Dispatcher::dispatch_body(Request& req, const Route& route) {
  if (Response parsed = parse_body(req, route); parsed.status != 0) return parsed;
  if (route.creates && !req.header("idempotency-key").empty()) return idempotent(req, route);
  Response r = route.handler(req);
  if (r.status >= 400 && r.content_type.empty() && !r.json) r.content_type = "application/problem+json";
  return r;
}

Response Dispatcher::parse_body(Request& req, const Route& route) {
  Response ok;
  ok.status = 0;
  if (req.document_error) return problem(*req.document_error, req.path, req.request_id);
  if (req.document_ready) return ok;
  if (!route.request_schema.empty() && route.request_schema != "binary") {
    std::string type = media_type(req.header("content-type"));
    if (req.body.empty() && type.empty())
      return problem(Error::bad_request("this request needs a body", {{"", "missing body"}}), req.path,
                     req.request_id);
    auto format = body_format(type.empty() ? "application/json" : type);
    if (!format)
      return problem(Error{ErrorKind::unsupported_media_type,
                           "Content-Type '" + type + "' is not accepted; send application/json or application/yaml",
                           {{"/header/Content-Type", "unsupported media type"}}},
                     req.path, req.request_id);
    // yaml-cpp takes some 70 times a document's size in memory and time on the one thread:
    // large documents come as JSON.
    if (*format == Format::yaml && req.body.size() > max_yaml_bytes_)
      return problem(Error{ErrorKind::payload_too_large,
                           fmt::format("a YAML body may have {} bytes (http.max_yaml_bytes); send a larger one as JSON",
                                       max_yaml_bytes_),
                           {{"/header/Content-Type", "YAML over its size limit"}}},
                     req.path, req.request_id);
    auto doc = parse_document(req.body, *format);
    if (!doc) return problem(doc.error(), req.path, req.request_id);
    req.document = std::move(*doc);
  }
  req.document_ready = true;
  return ok;
}

// Idempotency-Key (as in the IETF draft and Stripe): the same key and body
// get the stored answer; another body under the same key is 422; a request
// still being handled is 409.
Response Dispatcher::idempotent(Request& req, const Route& route) {
  std::string principal = req.principal ? req.principal->token_id : "-";
  std::string key = req.header("idempotency-key");
  std::string hash = sha256_hex(req.method + " " + req.path + "\n" + req.body);
  if (auto rec = engine_.store().find_idempotency(principal, key)) {
    if (rec->request_hash != hash)
      return problem(Error::invalid_field("/header/Idempotency-Key",
                                          "this key was used for another request; use a new key"),
                     req.path, req.request_id);
    if (rec->status == 0)
      return problem(Error::conflict("the request with this key was committed but its answer was lost when cpnd "
                                     "stopped; read the object instead: " + rec->body),
                     req.path, req.request_id);
    Response r;
    r.status = rec->status;
    if (rec->content_type == "application/json") {
      r.json = Json::parse(rec->body, nullptr, false);  // served like a fresh answer: Accept, ETag
      if (r.json->is_discarded()) r.json.reset();
    }
    if (!r.json) {
      r.content_type = rec->content_type;
      r.body = rec->body;
    }
    if (!rec->location.empty()) r.header("Location", rec->location);
    r.header("Idempotent-Replayed", "true");
    return r;
  }
  // A tenant's stored answers are bounded (each holds a whole answer for a day).
  if (req.principal && req.principal->role == "customer") {  // operators and agents act for every tenant
    std::int64_t held = 0;
    for (const auto* t : engine_.list(auth::kToken))
      if (t->body.value("tenant", "") == req.principal->tenant) held += engine_.store().count_idempotency(t->id);
    if (held >= max_idempotency_keys_)
      return problem(Error{ErrorKind::forbidden,
                           fmt::format("tenant '{}' holds {} Idempotency-Key answers, its quota "
                                       "(limits.tenant.max_idempotency_keys); they expire after 24 hours",
                                       req.principal->tenant, held),
                           {{"/header/Idempotency-Key", "over the tenant's quota"}}},
                     req.path, req.request_id);
  }
  // Handlers answer synchronously today, so this is for the asynchronous
  // ones to come (provisioning): a key still being handled is a 409.
  if (!in_flight_.insert({principal, key}).second)
    return problem(Error::conflict("a request with this Idempotency-Key is still being handled"), req.path,
                   req.request_id);
  struct Release {
    std::set<std::pair<std::string, std::string>>& set;
    std::pair<std::string, std::string> k;
    ~Release() { set.erase(k); }
  } release{in_flight_, {principal, key}};
  // Written with the handler's first commit; completed below with the answer.
  engine_.attach_idempotency(store::IdempotencyRecord{principal, key, hash, 0, "", "", req.method + " " + req.path,
                                                      engine_.now()});
  struct Detach {  // never left for someone else's commit, even if the handler throws
    engine::Engine& e;
    ~Detach() { e.attach_idempotency(std::nullopt); }
  } detach{engine_};
  Response r = route.handler(req);
  engine_.attach_idempotency(std::nullopt);
  if (r.status < 300) {
    Json stored = r.json ? *r.json : Json();
    for (const auto& field : route.not_replayed) stored.erase(field);  // secrets are shown once, never stored
    std::string body = r.json ? stored.dump(-1, ' ', false, Json::error_handler_t::replace) : r.body;
    std::string location;
    for (const auto& [k, v] : r.headers)
      if (k == "Location") location = v;
    try {
      engine_.store().save_idempotency({principal, key, hash, r.status,
                                        r.json ? std::string("application/json") : r.content_type, location, body,
                                        engine_.now()});
    } catch (const std::exception& e) {
      // The change itself committed: answer it; a replay will say the answer was lost.
      log::error("request_id={} storing the Idempotency-Key answer failed: {}", req.request_id, e.what());
    }
  }
  return r;
}

}  // namespace cpn::http
