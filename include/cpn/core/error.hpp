// One error value for every expected failure (validation, not found,
// conflict, ...). The http module maps it to RFC 9457 problem+json in one
// place; everything below http only says what went wrong and where.
#pragma once

#include <string>
#include <vector>

#include <tl/expected.hpp>

namespace cpn {

enum class ErrorKind {
  bad_request,            // 400: malformed syntax
  unauthorized,           // 401
  forbidden,              // 403
  not_found,              // 404
  method_not_allowed,     // 405
  conflict,               // 409
  precondition_failed,    // 412: stale If-Match
  payload_too_large,      // 413
  unsupported_media_type, // 415
  unprocessable,          // 422: well-formed but invalid
  range_not_satisfiable,  // 416
  gone,                   // 410: events compacted away
  too_many_requests,      // 429: over a rate limit or quota (Retry-After)
  header_too_large,       // 431
  insufficient_storage,   // 507: the disk is full
  unavailable,            // 503
  internal,               // 500
};

// One offending field: a JSON pointer (RFC 6901) into the request body, or
// into the query string as "/query/<name>", and what is wrong with it.
struct FieldError {
  std::string pointer;
  std::string message;
  bool operator==(const FieldError&) const = default;
};

struct Error {
  ErrorKind kind = ErrorKind::internal;
  std::string message;
  std::vector<FieldError> errors;

  static Error bad_request(std::string msg, std::vector<FieldError> e = {}) {
    return {ErrorKind::bad_request, std::move(msg), std::move(e)};
  }
  static Error not_found(std::string msg) { return {ErrorKind::not_found, std::move(msg), {}}; }
  static Error conflict(std::string msg, std::vector<FieldError> e = {}) {
    return {ErrorKind::conflict, std::move(msg), std::move(e)};
  }
  static Error invalid(std::string msg, std::vector<FieldError> e) {
    return {ErrorKind::unprocessable, std::move(msg), std::move(e)};
  }
  // "<what> is invalid: N problems", one FieldError each.
  static Error invalid_document(const std::string& what, std::vector<FieldError> e);
  static Error invalid_field(std::string pointer, std::string msg) {
    std::string m = msg;
    return {ErrorKind::unprocessable, std::move(m), {{std::move(pointer), std::move(msg)}}};
  }
  static Error internal(std::string msg) { return {ErrorKind::internal, std::move(msg), {}}; }
};

template <typename T>
using Result = tl::expected<T, Error>;
using Status = tl::expected<void, Error>;

inline tl::unexpected<Error> fail(Error e) { return tl::unexpected<Error>(std::move(e)); }

// Escapes one reference token of a JSON pointer ("~" -> "~0", "/" -> "~1").
std::string pointer_token(std::string_view token);

}  // namespace cpn
