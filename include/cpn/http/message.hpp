// Requests and responses as handlers see them: no sockets, no Beast.
// Handlers are plain functions from a Request to a Response.
#pragma once

#include <chrono>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cpn/auth/tokens.hpp"
#include "cpn/core/document.hpp"

namespace cpn::http {

struct Request {
  std::string method;
  std::string target;  // as sent
  std::string path;    // decoded, without the query
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // names lowercased
  std::map<std::string, std::string> params;   // from the route template
  std::string body;
  Json document;          // the body parsed (JSON or YAML), when the route takes one
  std::string body_file;  // streamed uploads: the temp file holding the body,
  std::string body_sha256;  // hashed as it arrived,
  std::uint64_t body_size = 0;  // and its length
  std::string request_id;
  std::optional<auth::Principal> principal;
  bool rate_counted = false;  // taken from its token's bucket once, at preflight
  // When its header had been read: durations count from here, so time spent
  // reading its body or waiting behind other work shows.
  std::chrono::steady_clock::time_point received{};
  bool document_ready = false;  // document already parsed (by a route's prepare step)
  std::optional<Error> document_error;  // parsed ahead on a worker, and refused
  // What a route's prepare step worked out on another thread, for its handler.
  std::shared_ptr<void> prepared;

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
  std::string param(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  }
  std::optional<std::string> query_value(const std::string& name) const {
    auto it = query.find(name);
    if (it == query.end()) return std::nullopt;
    return it->second;
  }
};

// Server-sent or NDJSON stream of events from a sequence number on.
struct EventStream {
  std::int64_t since = 0;
  bool sse = false;
  std::string kind;  // only events of this kind; empty: all
  std::string token_id;  // the stream ends when this token is revoked or expires
};

// Part of a file sent as the body (GET /v1/files/{name}, with Range).
struct FileBody {
  std::string path;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

struct Response {
  int status = 200;
  std::optional<Json> json;  // serialised as JSON or YAML by the Accept header
  std::string content_type;
  std::string body;          // used as is when json is empty
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<FileBody> file;
  std::optional<EventStream> stream;

  Response& header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
};

}  // namespace cpn::http
