#include "cpn/core/error.hpp"

#include <fmt/format.h>

namespace cpn {

Error Error::invalid_document(const std::string& what, std::vector<FieldError> e) {
  std::string msg = fmt::format("{} is invalid: {} problem{}", what, e.size(), e.size() == 1 ? "" : "s");
  return {ErrorKind::unprocessable, std::move(msg), std::move(e)};
}

std::string pointer_token(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (char c : token) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

}  // namespace cpn
