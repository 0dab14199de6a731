// Helpers shared by the route files: turning results into answers and
// reading the conventions (If-Match, list options) off a request.
#pragma once

#include <fmt/format.h>

#include "cpn/api/api.hpp"
#include "cpn/http/problem.hpp"
#include "cpn/resource/collection.hpp"

namespace cpn::api {

using http::Request;
using http::Response;
using http::Route;

inline Response json(Json body, int status = 200) {
  Response r;
  r.status = status;
  r.json = std::move(body);
  return r;
}

inline Response error(const Error& e, const Request& req) { return http::problem(e, req.path, req.request_id); }

inline Response answer(const Result<Json>& result, const Request& req, int status = 200) {
  if (!result) return error(result.error(), req);
  return json(*result, status);
}

inline Response created(const Result<Json>& result, const Request& req, const std::string& location) {
  if (!result) return error(result.error(), req);
  Response r = json(*result, 201);
  r.header("Location", location);
  return r;
}

// If-Match: absent, "*" (any existing version), or one resourceVersion / ETag. A malformed
// value is an error rather than silently ignored.
inline Result<std::optional<std::int64_t>> if_match(const Request& req) {
  std::string v = req.header("if-match");
  if (v.empty()) return std::optional<std::int64_t>{};
  if (v == "*") return std::optional<std::int64_t>{resource::kAnyVersion};
  auto parsed = resource::parse_version(v);
  if (!parsed)
    return fail(Error::bad_request("If-Match must be an ETag from an earlier answer",
                                   {{"/header/If-Match", fmt::format("'{}' is not an ETag", v)}}));
  return std::optional<std::int64_t>{*parsed};
}

Result<resource::ListOptions> list_options(const Request& req);

inline std::vector<http::QueryParam> list_query() {
  return {{"limit", "integer", "At most this many items (1-1000); the answer's `continue` fetches the next page."},
          {"continue", "string", "The `continue` token of the previous page."},
          {"labelSelector", "string", "Kubernetes-style selector: `zone=a,arch in (x86_64,aarch64),!gpu`."}};
}

Response list_answer(const Result<resource::Page>& page, const Request& req);

// What a list keeps beyond the shared options (a query parameter, a role's view).
using ListFilter = std::function<bool(const engine::Object&, const Request&)>;

// GET of a collection with the shared options (limit, continue,
// labelSelector) and a filter of its own, described by extra_query.
Route list_route(std::string path, std::vector<std::string> roles, const resource::Collection& collection,
                 std::string operation_id, std::string summary, std::string tag, ListFilter filter = nullptr,
                 std::vector<http::QueryParam> extra_query = {});

// The six standard routes of a collection (list, create, get, replace,
// patch, delete) under base ("/v1/nodes") with parameter "{id}".
struct CollectionRoutes {
  std::string base;
  std::string tag;
  std::string noun;    // "node"
  std::string plural;  // "nodes"
  std::string schema;
  std::vector<std::string> read_roles;
  std::vector<std::string> write_roles;
};
void add_collection_routes(http::Router& router, resource::Collection& collection, const CollectionRoutes& spec,
                           ListFilter filter = nullptr,
                           std::vector<http::QueryParam> extra_query = {});

}  // namespace cpn::api
