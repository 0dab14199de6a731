// The one place where an Error becomes an HTTP answer: RFC 9457
// application/problem+json with errors[] holding a JSON pointer per field.
#pragma once

#include "cpn/core/error.hpp"
#include "cpn/http/message.hpp"

namespace cpn::http {

int status_of(ErrorKind kind);
Response problem(const Error& error, const std::string& instance, const std::string& request_id);

}  // namespace cpn::http
