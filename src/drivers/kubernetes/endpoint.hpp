// What the API client and the informer share: where a cluster's API server
// is, and the bearer token to show it.
#pragma once

#include <string>

#include "cpn/core/error.hpp"

namespace cpn::drivers::kubernetes {

struct Endpoint {
  std::string host, port, prefix;  // prefix: a path the API server sits under ("" or "/k8s")
};
// An https:// URL: host (a name, an address or [IPv6]), port (443) and prefix.
Result<Endpoint> parse_endpoint(const std::string& url);
// The token file's first line ("" for no file): read for every request, as tokens rotate.
Result<std::string> read_token(const std::string& file);

}  // namespace cpn::drivers::kubernetes
