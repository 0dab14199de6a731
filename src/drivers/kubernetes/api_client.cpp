// The Kubernetes REST API over HTTPS. Each request is one connection on a
// private io_context with a deadline, so a cluster that does not answer
// costs the reconciler at most the timeout, never a hang.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>

#include "cpn/core/file.hpp"
#include "cpn/drivers/kubernetes.hpp"

namespace cpn::drivers::kubernetes {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace {

struct Endpoint {
  std::string host, port, prefix;
};

Result<Endpoint> parse_endpoint(const std::string& url) {
  const std::string scheme = "https://";
  if (url.rfind(scheme, 0) != 0)
    return fail(Error::invalid_field("/controller/endpoint",
                                     fmt::format("'{}' is not an https:// URL of a Kubernetes API server", url)));
  std::string rest = url.substr(scheme.size());
  Endpoint e;
  auto slash = rest.find('/');
  if (slash != std::string::npos) {
    e.prefix = rest.substr(slash);
    rest = rest.substr(0, slash);
  }
  while (!e.prefix.empty() && e.prefix.back() == '/') e.prefix.pop_back();
  e.port = "443";
  if (!rest.empty() && rest[0] == '[') {  // [IPv6]:port
    auto close = rest.find(']');
    if (close == std::string::npos) return fail(Error::invalid_field("/controller/endpoint", fmt::format("'{}': no ']'", url)));
    e.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') e.port = rest.substr(close + 2);
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    e.host = rest.substr(0, colon);
    e.port = rest.substr(colon + 1);
  } else {
    e.host = rest;
  }
  if (e.host.empty()) return fail(Error::invalid_field("/controller/endpoint", fmt::format("'{}' names no host", url)));
  return e;
}

Result<std::string> read_token(const std::string& file) {
  if (file.empty()) return std::string();
  auto text = read_text_file(file);
  if (!text) return fail(Error::internal(fmt::format("cannot read the token file '{}'", file)));
  std::string token = std::move(*text);
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  return token;
}

// The Status message of a refusal, or the body itself.
std::string message_of(const Reply& r) {
  Json j = r.json();
  if (j.is_object() && j.contains("message")) return j["message"].get<std::string>();
  return r.body.substr(0, 300);
}

}  // namespace

Json Reply::json() const {
  Json j = Json::parse(body, nullptr, false);
  return j.is_discarded() ? Json() : j;
}

struct ApiClient::Impl {
  ClusterSettings settings;
  std::chrono::milliseconds timeout;
};

ApiClient::ApiClient(ClusterSettings settings, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(Impl{std::move(settings), timeout})) {}
ApiClient::~ApiClient() = default;

Result<Reply> ApiClient::request(const std::string& method, const std::string& target, const std::string& body,
                                 const std::string& content_type) {
  auto endpoint = parse_endpoint(impl_->settings.endpoint);
  if (!endpoint) return fail(endpoint.error());
  auto token = read_token(impl_->settings.token_file);
  if (!token) return fail(token.error());

  ssl::context tls(ssl::context::tls_client);
  boost::system::error_code ec;
  if (impl_->settings.ca_file.empty())
    tls.set_default_verify_paths(ec);
  else
    tls.load_verify_file(impl_->settings.ca_file, ec);
  if (ec)
    return fail(Error::internal(fmt::format("cannot load the CA file '{}': {}", impl_->settings.ca_file, ec.message())));
  tls.set_verify_mode(ssl::verify_peer);

  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), endpoint->prefix + target, 11};
  req.set(bhttp::field::host, endpoint->host);
  req.set(bhttp::field::user_agent, "cpnd");
  req.set(bhttp::field::accept, "application/json");
  if (!token->empty()) req.set(bhttp::field::authorization, "Bearer " + *token);
  if (!content_type.empty()) req.set(bhttp::field::content_type, content_type);
  req.body() = body;
  req.prepare_payload();

  net::io_context io;
  beast::ssl_stream<beast::tcp_stream> stream(io, tls);
  // SNI for names; the certificate must match the name or the address.
  net::ip::make_address(endpoint->host, ec);
  if (ec) SSL_set_tlsext_host_name(stream.native_handle(), endpoint->host.c_str());
  stream.set_verify_callback(ssl::host_name_verification(endpoint->host));

  Reply reply;
  std::string failed;
  auto exchange = [&]() -> net::awaitable<void> {
    std::string step = "resolving";
    try {
      net::ip::tcp::resolver resolver(io);
      auto addresses = co_await resolver.async_resolve(endpoint->host, endpoint->port, net::use_awaitable);
      step = "connecting";
      beast::get_lowest_layer(stream).expires_after(impl_->timeout);
      co_await beast::get_lowest_layer(stream).async_connect(addresses, net::use_awaitable);
      step = "TLS handshake";
      co_await stream.async_handshake(ssl::stream_base::client, net::use_awaitable);
      step = "sending";
      co_await bhttp::async_write(stream, req, net::use_awaitable);
      step = "reading the answer";
      beast::flat_buffer buffer;
      bhttp::response_parser<bhttp::string_body> parser;
      parser.body_limit(64 * 1024 * 1024);
      co_await bhttp::async_read(stream, buffer, parser, net::use_awaitable);
      reply.status = static_cast<int>(parser.get().result_int());
      reply.body = std::move(parser.get().body());
      beast::get_lowest_layer(stream).expires_after(std::chrono::milliseconds(200));
      boost::system::error_code ignored;
      co_await stream.async_shutdown(net::redirect_error(net::use_awaitable, ignored));
    } catch (const boost::system::system_error& e) {
      if (reply.status == 0) failed = step + ": " + e.code().message();
    }
  };
  bool done = false;
  net::co_spawn(io, exchange(), [&](std::exception_ptr) { done = true; });
  // One deadline for all of it, name resolution included (which has no timer of its own).
  io.run_for(impl_->timeout + std::chrono::milliseconds(250));
  if (!done) {
    failed = fmt::format("no answer within {} ms", impl_->timeout.count());
    boost::system::error_code ignored;
    beast::get_lowest_layer(stream).socket().close(ignored);  // what is pending ends with the io_context
  }
  if (!failed.empty())  // the cluster is out of reach (not an answer of its): unavailable
    return fail(Error{ErrorKind::unavailable,
                      fmt::format("Kubernetes API {} {}: {}", method, impl_->settings.endpoint, failed), {}});
  return reply;
}

std::string ApiClient::path_of(const Json& object) {
  const Json& m = object["metadata"];
  std::string ns = m.value("namespace", "default"), name = m.value("name", "");
  if (object.value("kind", "") == "Deployment") return fmt::format("/apis/apps/v1/namespaces/{}/deployments/{}", ns, name);
  return fmt::format("/api/v1/namespaces/{}/services/{}", ns, name);
}

Result<Json> ApiClient::apply(const Json& object) {
  auto r = request("PATCH", path_of(object) + "?fieldManager=cpnd&force=true", object.dump(),
                   "application/apply-patch+yaml");
  if (!r) return fail(r.error());
  if (r->status != 200 && r->status != 201)
    return fail(Error::internal(fmt::format("applying {} '{}': HTTP {}: {}", object.value("kind", ""),
                                               object["metadata"].value("name", ""), r->status, message_of(*r))));
  return r->json();
}

Result<std::optional<Json>> ApiClient::get(const std::string& path) {
  auto r = request("GET", path);
  if (!r) return fail(r.error());
  if (r->status == 404) return std::optional<Json>();
  if (r->status != 200) return fail(Error::internal(fmt::format("GET {}: HTTP {}: {}", path, r->status, message_of(*r))));
  return std::optional<Json>(r->json());
}

Status ApiClient::remove(const std::string& path) {
  auto r = request("DELETE", path, R"({"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Foreground"})",
                   "application/json");
  if (!r) return fail(r.error());
  if (r->status != 200 && r->status != 202 && r->status != 404)
    return fail(Error::internal(fmt::format("DELETE {}: HTTP {}: {}", path, r->status, message_of(*r))));
  return {};
}

}  // namespace cpn::drivers::kubernetes
