#include "cpn/http/problem.hpp"

namespace cpn::http {
namespace {

const char* slug(ErrorKind k) {
  switch (k) {
    case ErrorKind::bad_request: return "bad-request";
    case ErrorKind::unauthorized: return "unauthorized";
    case ErrorKind::forbidden: return "forbidden";
    case ErrorKind::not_found: return "not-found";
    case ErrorKind::method_not_allowed: return "method-not-allowed";
    case ErrorKind::conflict: return "conflict";
    case ErrorKind::precondition_failed: return "precondition-failed";
    case ErrorKind::payload_too_large: return "payload-too-large";
    case ErrorKind::unsupported_media_type: return "unsupported-media-type";
    case ErrorKind::unprocessable: return "validation";
    case ErrorKind::range_not_satisfiable: return "range-not-satisfiable";
    case ErrorKind::gone: return "gone";
    case ErrorKind::too_many_requests: return "too-many-requests";
    case ErrorKind::header_too_large: return "header-too-large";
    case ErrorKind::insufficient_storage: return "insufficient-storage";
    case ErrorKind::unavailable: return "unavailable";
    case ErrorKind::internal: return "internal";
  }
  return "internal";
}

const char* title(ErrorKind k) {
  switch (k) {
    case ErrorKind::bad_request: return "Malformed request";
    case ErrorKind::unauthorized: return "Authentication required";
    case ErrorKind::forbidden: return "Not allowed for this role";
    case ErrorKind::not_found: return "Not found";
    case ErrorKind::method_not_allowed: return "Method not allowed";
    case ErrorKind::conflict: return "Conflict";
    case ErrorKind::precondition_failed: return "Precondition failed";
    case ErrorKind::payload_too_large: return "Payload too large";
    case ErrorKind::unsupported_media_type: return "Unsupported media type";
    case ErrorKind::unprocessable: return "Validation failed";
    case ErrorKind::range_not_satisfiable: return "Range not satisfiable";
    case ErrorKind::gone: return "Gone";
    case ErrorKind::too_many_requests: return "Too many requests";
    case ErrorKind::header_too_large: return "Request header fields too large";
    case ErrorKind::insufficient_storage: return "Insufficient storage";
    case ErrorKind::unavailable: return "Service unavailable";
    case ErrorKind::internal: return "Internal error";
  }
  return "Internal error";
}

}  // namespace

int status_of(ErrorKind k) {
  switch (k) {
    case ErrorKind::bad_request: return 400;
    case ErrorKind::unauthorized: return 401;
    case ErrorKind::forbidden: return 403;
    case ErrorKind::not_found: return 404;
    case ErrorKind::method_not_allowed: return 405;
    case ErrorKind::conflict: return 409;
    case ErrorKind::precondition_failed: return 412;
    case ErrorKind::payload_too_large: return 413;
    case ErrorKind::unsupported_media_type: return 415;
    case ErrorKind::range_not_satisfiable: return 416;
    case ErrorKind::gone: return 410;
    case ErrorKind::too_many_requests: return 429;
    case ErrorKind::header_too_large: return 431;
    case ErrorKind::insufficient_storage: return 507;
    case ErrorKind::unprocessable: return 422;
    case ErrorKind::unavailable: return 503;
    case ErrorKind::internal: return 500;
  }
  return 500;
}

Response problem(const Error& error, const std::string& instance, const std::string& request_id) {
  Json errors = Json::array();
  for (const auto& e : error.errors) errors.push_back({{"pointer", e.pointer}, {"detail", e.message}});
  Json body = {{"type", std::string("urn:cpn:problem:") + slug(error.kind)},
               {"title", title(error.kind)},
               {"status", status_of(error.kind)},
               {"detail", error.message},
               {"instance", instance},
               {"request_id", request_id},
               {"errors", errors}};
  Response r;
  r.status = status_of(error.kind);
  r.content_type = "application/problem+json";
  r.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  return r;
}

}  // namespace cpn::http
