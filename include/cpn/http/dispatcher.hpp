// What happens to every request between the socket and the handler, once:
// routing (404/405), authentication and roles (401/403), rate limits per
// token (429), media types
// (415), body parsing (400), Idempotency-Key, the answer's format (JSON or
// YAML by Accept), ETag, metrics and the access log.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>

#include "cpn/auth/limits.hpp"
#include "cpn/auth/tokens.hpp"
#include "cpn/engine/engine.hpp"
#include "cpn/http/metrics.hpp"
#include "cpn/http/router.hpp"
#include "cpn/store/store.hpp"

namespace cpn::http {

class Dispatcher {
 public:
  Dispatcher(Router& router, auth::Tokens& tokens, engine::Engine& engine, Metrics& metrics,
             auth::RateLimits rates = {})
      : router_(router), tokens_(tokens), engine_(engine), metrics_(metrics), limiter_(std::move(rates)) {}
  void set_rate_limits(auth::RateLimits rates) { limiter_.set_limits(std::move(rates)); }
  void set_max_idempotency_keys(int n) { max_idempotency_keys_ = n; }
  void set_max_yaml_bytes(std::size_t n) { max_yaml_bytes_ = n; }
  // Writes the audit records of refused writes still batched (a timer calls it every second).
  void flush_audit();
  std::uint64_t audit_dropped() const { return audit_dropped_; }
  // Whether an open stream's token still stands (not revoked, not expired).
  bool token_active(const std::string& token_id) const { return tokens_.active(token_id); }

  Response handle(Request& request);
  // Decided from the header alone, before any body is read: the answer
  // (404, 405, 401, 403) when the request cannot go on. Bodies of
  // unauthenticated clients are never read.
  std::optional<Response> preflight(Request& request);
  // Whether this request's body should be streamed to a file (decided from
  // the header alone, before the body is read).
  bool streams_body(const std::string& method, const std::string& path) const;

  // A route's work to run off this thread before handle() (see Route::prepare):
  // job runs on a worker, then done back on this thread, then handle(). Neither
  // set: handle() at once. refused: the answer instead (too much work waiting).
  struct Preparation {
    std::function<void()> job, done;
    std::optional<Response> refused;
  };
  Preparation prepare(Request& request);
  // A large body is parsed on a worker before prepare() and handle(): a
  // few megabytes of JSON take tens of milliseconds that every other
  // request would wait behind. The body is the job's until done puts it
  // back. Small bodies and refused requests: nothing to do.
  static constexpr std::size_t kParseAheadBytes = 64 * 1024;
  Preparation parse_ahead(Request& request);
  // At most this many prepared jobs wait or run at once (solver.max_pending),
  // a quarter of them (at least one) for one token.
  void set_max_prepared(int n) { max_prepared_ = n; }
  int prepared_in_flight() const { return prepared_; }
  Metrics& metrics() { return metrics_; }

 private:
  Response dispatch(Request& request, const Route*& matched);
  Response dispatch_head(Request& request, const Route*& matched);
  Response dispatch_body(Request& request, const Route& route);
  // Parses the body into request.document; status 0 when it went well.
  Response parse_body(Request& request, const Route& route);
  // Headers, metrics and audit of an answer given before the handler ran.
  void answered_early(Request& request, const Route* route, Response& answer);
  Response idempotent(Request& request, const Route& route);
  void audit(const Request& request, const Route* route, int status);
  Router& router_;
  auth::Tokens& tokens_;
  engine::Engine& engine_;
  Metrics& metrics_;
  auth::RateLimiter limiter_;
  int max_idempotency_keys_ = 10000;  // per tenant, over its tokens
  std::size_t max_yaml_bytes_ = 1 << 20;
  static constexpr std::size_t kMaxPendingAudit = 10000;
  std::vector<store::AuditRecord> pending_audit_;
  std::uint64_t audit_dropped_ = 0;
  std::set<std::pair<std::string, std::string>> in_flight_;  // (principal, key)
  int max_prepared_ = 64;
  int prepared_ = 0;
  std::map<std::string, int> prepared_by_token_;
  std::uint64_t prepared_refused_ = 0;
};

// Serialises a JSON answer as YAML when the client asks for it.
bool wants_yaml(const std::string& accept);

}  // namespace cpn::http
