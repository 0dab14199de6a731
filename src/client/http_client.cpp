#include "cpn/client/http_client.hpp"

#include <stdexcept>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace cpn::client {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace ssl = boost::asio::ssl;

struct HttpClient::Impl {
  std::string host, port, token;
  bool https = false;
  std::string ca_file;  // https: the CA that signed the server's certificate (else the system's)
  net::io_context io;
  std::unique_ptr<beast::tcp_stream> stream;
  std::unique_ptr<ssl::context> tls;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_stream;
  beast::flat_buffer buffer;

  void connect() {
    net::ip::tcp::resolver resolver(io);
    buffer.clear();
    if (!https) {
      stream = std::make_unique<beast::tcp_stream>(io);
      stream->connect(resolver.resolve(host, port));
      return;
    }
    if (!tls) {
      tls = std::make_unique<ssl::context>(ssl::context::tls_client);
      if (ca_file.empty()) tls->set_default_verify_paths();
      else tls->load_verify_file(ca_file);
      tls->set_verify_mode(ssl::verify_peer);
    }
    tls_stream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(io, *tls);
    // The server is verified: its certificate chains to the CA and names this host (or address).
    beast::error_code ec;
    net::ip::make_address(host, ec);
    if (ec) SSL_set_tlsext_host_name(tls_stream->native_handle(), host.c_str());
    tls_stream->set_verify_callback(ssl::host_name_verification(host));
    tls_stream->next_layer().connect(resolver.resolve(host, port));
    tls_stream->handshake(ssl::stream_base::client);
  }
  bool connected() const { return https ? tls_stream != nullptr : stream != nullptr; }
  void drop() {
    stream.reset();
    tls_stream.reset();
  }

  template <class Body>
  Reply exchange(bhttp::request<Body>& req) {
    for (int attempt = 0;; ++attempt) {
      try {
        if (!connected()) connect();
        if (https) return exchange_on(*tls_stream, req);
        return exchange_on(*stream, req);
      } catch (const boost::system::system_error& e) {
        // A keep-alive connection the server closed: retry once on a new one.
        // A certificate that does not verify is not retried.
        drop();
        if (attempt > 0 || e.code().category() == net::error::get_ssl_category()) throw;
      }
    }
  }

  template <class Stream, class Body>
  Reply exchange_on(Stream& s, bhttp::request<Body>& req) {
    beast::error_code wec;
    bhttp::write(s, req, wec);
    // A server may answer (413, 401) before taking the whole body and
    // stop reading: the answer is still there to read.
    if (wec && wec != net::error::broken_pipe && wec != net::error::connection_reset)
      throw boost::system::system_error(wec);
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(4ull * 1024 * 1024 * 1024);
    parser.header_limit(1024 * 1024);
    bhttp::read(s, buffer, parser);
    auto& res = parser.get();
    Reply r;
    r.status = static_cast<int>(res.result_int());
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(f.value());
    }
    r.body = std::move(res.body());
    if (!res.keep_alive()) drop();
    return r;
  }
};

HttpClient::HttpClient(std::string base, std::string token, std::string ca_file) : impl_(std::make_unique<Impl>()) {
  impl_->https = base.rfind("https://", 0) == 0;
  if (!impl_->https && base.rfind("http://", 0) != 0)
    throw std::invalid_argument("a server is http://HOST:PORT or https://HOST:PORT: " + base);
  std::string rest = base.substr(impl_->https ? 8 : 7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  auto colon = rest.rfind(':');
  impl_->host = colon == std::string::npos ? rest : rest.substr(0, colon);
  impl_->port = colon == std::string::npos ? (impl_->https ? "443" : "80") : rest.substr(colon + 1);
  if (impl_->host.size() > 2 && impl_->host.front() == '[') impl_->host = impl_->host.substr(1, impl_->host.size() - 2);
  impl_->ca_file = std::move(ca_file);
  impl_->token = std::move(token);
}
HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

void HttpClient::set_token(std::string token) { impl_->token = std::move(token); }

Reply HttpClient::request(const std::string& method, const std::string& target, const std::string& body,
                          std::map<std::string, std::string> headers) {
  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
  req.set(bhttp::field::host, impl_->host);
  if (!impl_->token.empty()) req.set(bhttp::field::authorization, "Bearer " + impl_->token);
  if (!body.empty() && !headers.count("Content-Type")) req.set(bhttp::field::content_type, "application/json");
  for (const auto& [k, v] : headers) {
    if (k == "Authorization" && v.empty()) {
      req.erase(bhttp::field::authorization);
      continue;
    }
    req.set(k, v);
  }
  req.body() = body;
  req.prepare_payload();
  return impl_->exchange(req);
}

Reply HttpClient::post(const std::string& target, const Json& body, std::map<std::string, std::string> headers) {
  return request("POST", target, body.dump(), std::move(headers));
}

Reply HttpClient::put(const std::string& target, const Json& body, std::map<std::string, std::string> headers) {
  return request("PUT", target, body.dump(), std::move(headers));
}

Reply HttpClient::put_file(const std::string& target, const std::string& path,
                           std::map<std::string, std::string> headers) {
  bhttp::request<bhttp::file_body> req{bhttp::verb::put, target, 11};
  req.set(bhttp::field::host, impl_->host);
  if (!impl_->token.empty()) req.set(bhttp::field::authorization, "Bearer " + impl_->token);
  req.set(bhttp::field::content_type, "application/octet-stream");
  for (const auto& [k, v] : headers) req.set(k, v);
  beast::error_code ec;
  req.body().open(path.c_str(), beast::file_mode::scan, ec);
  if (ec) throw std::runtime_error("cannot open " + path + ": " + ec.message());
  req.prepare_payload();
  return impl_->exchange(req);
}

}  // namespace cpn::client
