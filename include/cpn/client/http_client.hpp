// A small blocking HTTP/1.1 client for cpnctl and the end-to-end tests:
// one keep-alive connection, Beast kept out of this header.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "cpn/core/document.hpp"

namespace cpn::client {

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;

  std::string header(const std::string& lower) const {
    auto it = headers.find(lower);
    return it == headers.end() ? std::string() : it->second;
  }
  Json json() const { return body.empty() ? Json() : Json::parse(body); }
};

class HttpClient {
 public:
  // base: "http://HOST:PORT" or "https://HOST:PORT"; over HTTPS the server's
  // certificate must chain to ca_file (the system's CAs when empty) and
  // name HOST.
  explicit HttpClient(std::string base, std::string token = "", std::string ca_file = "");
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;

  void set_token(std::string token);
  Reply request(const std::string& method, const std::string& target, const std::string& body = "",
                std::map<std::string, std::string> headers = {});
  Reply get(const std::string& target) { return request("GET", target); }
  Reply post(const std::string& target, const Json& body, std::map<std::string, std::string> headers = {});
  Reply put(const std::string& target, const Json& body, std::map<std::string, std::string> headers = {});
  // Uploads a file from disk without reading it into memory.
  Reply put_file(const std::string& target, const std::string& path, std::map<std::string, std::string> headers = {});
  Reply del(const std::string& target, std::map<std::string, std::string> headers = {}) {
    return request("DELETE", target, "", std::move(headers));
  }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cpn::client
