// The Kubernetes REST API over HTTPS. Requests go over a few kept-alive
// connections per cluster (a TLS handshake costs more than most answers),
// each on a private io_context with a deadline, so a cluster that does not
// answer costs its caller at most the timeout, never a hang.
#include <filesystem>
#include <mutex>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>

#include "cpn/core/file.hpp"
#include "cpn/drivers/kubernetes.hpp"
#include "endpoint.hpp"

namespace cpn::drivers::kubernetes {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

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

namespace {

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

// One kept-alive TLS connection, used by one request at a time. It has
// its own io_context, so a request runs it for at most its deadline and a
// connection that missed one is thrown away with whatever it had pending.
struct Connection {
  explicit Connection(ssl::context& tls) : stream(io, tls) {}
  net::io_context io;
  beast::ssl_stream<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  bool open = false;
  std::chrono::steady_clock::time_point idle_since{};
};

struct ApiClient::Impl {
  ClusterSettings settings;
  std::chrono::milliseconds timeout;
  std::mutex mutex;  // guards what follows: requests come from several workers at once
  std::shared_ptr<ssl::context> tls;
  std::filesystem::file_time_type ca_written{};  // a CA file written again (rotated) counts at once
  std::vector<std::unique_ptr<Connection>> idle;
  std::uint64_t opened = 0;

  // The TLS context for the CA file as it is now; the pool is emptied when the file changed.
  Result<std::shared_ptr<ssl::context>> context() {
    std::error_code fec;
    auto written = settings.ca_file.empty() ? std::filesystem::file_time_type{}
                                            : std::filesystem::last_write_time(settings.ca_file, fec);
    std::lock_guard lock(mutex);
    if (tls && written == ca_written) return tls;
    auto fresh = std::make_shared<ssl::context>(ssl::context::tls_client);
    boost::system::error_code ec;
    if (settings.ca_file.empty())
      fresh->set_default_verify_paths(ec);
    else
      fresh->load_verify_file(settings.ca_file, ec);
    if (ec) return fail(Error::internal(fmt::format("cannot load the CA file '{}': {}", settings.ca_file, ec.message())));
    fresh->set_verify_mode(ssl::verify_peer);
    idle.clear();
    tls = fresh;
    ca_written = written;
    return tls;
  }

  // An idle connection (the most recent) or a new one; idle ones older than kIdle are closed.
  std::unique_ptr<Connection> take(const std::shared_ptr<ssl::context>& ctx) {
    std::lock_guard lock(mutex);
    auto now = std::chrono::steady_clock::now();
    std::erase_if(idle, [&](const auto& c) { return now - c->idle_since > kIdle; });
    if (!idle.empty() && ctx == tls) {
      auto c = std::move(idle.back());
      idle.pop_back();
      return c;
    }
    ++opened;
    return std::make_unique<Connection>(*ctx);
  }
  void give_back(std::unique_ptr<Connection> c, const std::shared_ptr<ssl::context>& ctx) {
    std::lock_guard lock(mutex);
    if (ctx != tls || idle.size() >= kPool) return;
    c->idle_since = std::chrono::steady_clock::now();
    idle.push_back(std::move(c));
  }
  static constexpr std::size_t kPool = 4;  // idle connections kept per cluster
  static constexpr auto kIdle = std::chrono::seconds(60);
};

ApiClient::ApiClient(ClusterSettings settings, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->settings = std::move(settings);
  impl_->timeout = timeout;
}
ApiClient::~ApiClient() = default;

std::uint64_t ApiClient::connections_opened() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->opened;
}

Result<Reply> ApiClient::request(const std::string& method, const std::string& target, const std::string& body,
                                 const std::string& content_type) {
  auto endpoint = parse_endpoint(impl_->settings.endpoint);
  if (!endpoint) return fail(endpoint.error());
  auto token = read_token(impl_->settings.token_file);
  if (!token) return fail(token.error());
  auto tls = impl_->context();
  if (!tls) return fail(tls.error());

  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), endpoint->prefix + target, 11};
  req.set(bhttp::field::host, endpoint->host);
  req.set(bhttp::field::user_agent, "cpnd");
  req.set(bhttp::field::accept, "application/json");
  if (!token->empty()) req.set(bhttp::field::authorization, "Bearer " + *token);
  if (!content_type.empty()) req.set(bhttp::field::content_type, content_type);
  req.keep_alive(true);
  req.body() = body;
  req.prepare_payload();

  // A kept-alive connection the server has closed meanwhile fails before
  // any answer: the request goes once more on a new one (every request
  // cpnd makes is idempotent: apply, GET, DELETE).
  for (int attempt = 0;; ++attempt) {
    auto conn = impl_->take(*tls);
    bool reused = conn->open;
    Reply reply;
    std::string failed;
    bool keep = false;
    auto exchange = [&]() -> net::awaitable<void> {
      std::string step = "resolving";
      auto& tcp = beast::get_lowest_layer(conn->stream);
      try {
        if (!conn->open) {
          // SNI for names; the certificate must match the name or the address.
          boost::system::error_code ec;
          net::ip::make_address(endpoint->host, ec);
          if (ec) SSL_set_tlsext_host_name(conn->stream.native_handle(), endpoint->host.c_str());
          conn->stream.set_verify_callback(ssl::host_name_verification(endpoint->host));
          net::ip::tcp::resolver resolver(conn->io);
          auto addresses = co_await resolver.async_resolve(endpoint->host, endpoint->port, net::use_awaitable);
          step = "connecting";
          tcp.expires_after(impl_->timeout);
          co_await tcp.async_connect(addresses, net::use_awaitable);
          step = "TLS handshake";
          co_await conn->stream.async_handshake(ssl::stream_base::client, net::use_awaitable);
          conn->open = true;
        }
        tcp.expires_after(impl_->timeout);
        step = "sending";
        co_await bhttp::async_write(conn->stream, req, net::use_awaitable);
        step = "reading the answer";
        bhttp::response_parser<bhttp::string_body> parser;
        parser.body_limit(64 * 1024 * 1024);
        co_await bhttp::async_read(conn->stream, conn->buffer, parser, net::use_awaitable);
        reply.status = static_cast<int>(parser.get().result_int());
        reply.body = std::move(parser.get().body());
        keep = parser.get().keep_alive();
        tcp.expires_never();
      } catch (const boost::system::system_error& e) {
        if (reply.status == 0) failed = step + ": " + e.code().message();
      }
    };
    bool done = false;
    net::co_spawn(conn->io, exchange(), [&](std::exception_ptr) {
      done = true;
      conn->io.stop();  // run_for returns now, whatever timers remain
    });
    // One deadline for all of it, name resolution included (which has no timer of its own).
    conn->io.run_for(impl_->timeout + std::chrono::milliseconds(250));
    if (!done) failed = fmt::format("no answer within {} ms", impl_->timeout.count());
    if (failed.empty()) {
      if (keep) {
        conn->io.restart();
        impl_->give_back(std::move(conn), *tls);
      }
      return reply;
    }
    // What is pending ends with the connection and its io_context.
    boost::system::error_code ignored;
    beast::get_lowest_layer(conn->stream).socket().close(ignored);
    if (reused && done && attempt == 0) continue;
    // The cluster is out of reach (not an answer of its): unavailable.
    return fail(Error{ErrorKind::unavailable,
                      fmt::format("Kubernetes API {} {}: {}", method, impl_->settings.endpoint, failed), {}});
  }
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

Result<std::optional<Json>> ApiClient::remove(const std::string& path) {
  auto r = request("DELETE", path, R"({"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Foreground"})",
                   "application/json");
  if (!r) return fail(r.error());
  if (r->status != 200 && r->status != 202 && r->status != 404)
    return fail(Error::internal(fmt::format("DELETE {}: HTTP {}: {}", path, r->status, message_of(*r))));
  Json object = r->status == 404 ? Json() : r->json();
  // Deleted at once, the server answers a Status instead of the object.
  if (!object.is_object() || object.value("kind", "Status") == "Status") return std::optional<Json>();
  return std::optional<Json>(std::move(object));
}

}  // namespace cpn::drivers::kubernetes
