// What happens to every request between the socket and the handler, once:
// routing (404/405), authentication and roles (401/403), media types
// (415), body parsing (400), Idempotency-Key, the answer's format (JSON or
// YAML by Accept), ETag, metrics and the access log.
#pragma once

#include <optional>
#include <set>

#include "cpn/auth/tokens.hpp"
#include "cpn/engine/engine.hpp"
#include "cpn/http/metrics.hpp"
#include "cpn/http/router.hpp"

namespace cpn::http {

class Dispatcher {
 public:
  Dispatcher(Router& router, auth::Tokens& tokens, engine::Engine& engine, Metrics& metrics)
      : router_(router), tokens_(tokens), engine_(engine), metrics_(metrics) {}

  Response handle(Request& request);
  // Decided from the header alone, before any body is read: the answer
  // (404, 405, 401, 403) when the request cannot go on. Bodies of
  // unauthenticated clients are never read.
  std::optional<Response> preflight(Request& request);
  // Whether this request's body should be streamed to a file (decided from
  // the header alone, before the body is read).
  bool streams_body(const std::string& method, const std::string& path) const;
  Metrics& metrics() { return metrics_; }

 private:
  Response dispatch(Request& request, const Route*& matched);
  Response dispatch_head(Request& request, const Route*& matched);
  Response dispatch_body(Request& request, const Route& route);
  Response idempotent(Request& request, const Route& route);
  Router& router_;
  auth::Tokens& tokens_;
  engine::Engine& engine_;
  Metrics& metrics_;
  std::set<std::pair<std::string, std::string>> in_flight_;  // (principal, key)
};

// Serialises a JSON answer as YAML when the client asks for it.
bool wants_yaml(const std::string& accept);

}  // namespace cpn::http
