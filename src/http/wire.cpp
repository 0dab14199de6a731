#include "wire.hpp"

#include <cstdio>
#include <memory>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "cpn/http/problem.hpp"

namespace cpn::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

std::string decode_percent(std::string_view s, bool plus_is_space) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

void parse_target(Request& req) {
  std::string_view t = req.target;
  auto q = t.find('?');
  std::string_view path = t.substr(0, q);
  // Decode each segment separately so an encoded '/' stays inside its segment.
  std::string decoded;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto slash = path.find('/', start);
    std::string_view seg = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    std::string d = decode_percent(seg, false);
    for (auto& c : d)
      if (c == '/') c = '\x1f';  // kept out of splitting; restored by the router's params below
    decoded += d;
    if (slash == std::string_view::npos) break;
    decoded += '/';
    start = slash + 1;
  }
  req.path = decoded;
  if (q != std::string_view::npos) {
    std::string_view qs = t.substr(q + 1);
    std::size_t pos = 0;
    while (pos <= qs.size()) {
      auto amp = qs.find('&', pos);
      std::string_view kv = qs.substr(pos, amp == std::string_view::npos ? std::string_view::npos : amp - pos);
      if (!kv.empty()) {
        auto eq = kv.find('=');
        req.query[decode_percent(kv.substr(0, eq), true)] =
            eq == std::string_view::npos ? std::string() : decode_percent(kv.substr(eq + 1), true);
      }
      if (amp == std::string_view::npos) break;
      pos = amp + 1;
    }
  }
}

void copy_headers(const bhttp::fields& h, Request& req) {
  for (const auto& f : h) {
    std::string name(f.name_string());
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    auto& slot = req.headers[name];
    slot = slot.empty() ? std::string(f.value()) : slot + ", " + std::string(f.value());
  }
}

// Writes a simple answer (used for errors found before dispatch). Callers
// pass a named Response: GCC 12 destroys temporaries inside a co_await
// expression twice.
template <class Stream>
net::awaitable<void> write_simple(Stream& stream, const Response& r, bool keep_alive) {
  bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), 11};
  res.set(bhttp::field::server, "cpnd");
  if (!r.content_type.empty()) res.set(bhttp::field::content_type, r.content_type);
  for (const auto& [k, v] : r.headers) res.insert(k, v);
  res.keep_alive(keep_alive);
  res.body() = r.body;
  res.prepare_payload();
  co_await bhttp::async_write(stream, res, use_tuple);
}

// After refusing a body we did not read, keep reading (and dropping) it
// for a moment before closing, as nginx's lingering_close does: closing
// with unread data sends a reset that can destroy our answer in transit.
template <class Stream>
net::awaitable<void> linger(Stream& stream) {
  beast::error_code ec;
  lowest(stream).socket().shutdown(tcp::socket::shutdown_send, ec);
  lowest(stream).expires_after(std::chrono::seconds(2));
  std::vector<char> sink(64 * 1024);
  for (;;) {
    auto [rec, n] = co_await stream.async_read_some(net::buffer(sink), use_tuple);
    if (rec) break;
  }
}

// False when the answer was cut short: the connection must close.
template <class Stream>
net::awaitable<bool> write_file(Stream& stream, const Response& r, bool keep_alive, std::chrono::milliseconds timeout) {
  const FileBody& f = *r.file;
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(f.path.c_str(), "rb"), &std::fclose);
  if (!file || std::fseek(file.get(), static_cast<long>(f.offset), SEEK_SET) != 0) {
    Response problem_answer = problem(Error::internal("blob missing on disk"), "", "");
    co_await write_simple(stream, problem_answer, false);
    co_return false;
  }
  bhttp::response<bhttp::buffer_body> res{static_cast<bhttp::status>(r.status), 11};
  res.set(bhttp::field::server, "cpnd");
  res.set(bhttp::field::content_type, r.content_type);
  for (const auto& [k, v] : r.headers) res.insert(k, v);
  res.keep_alive(keep_alive);
  res.content_length(f.length);
  res.body().data = nullptr;
  res.body().more = true;
  bhttp::response_serializer<bhttp::buffer_body> sr{res};
  auto [hec, hn] = co_await bhttp::async_write_header(stream, sr, use_tuple);
  if (hec) co_return false;
  std::vector<char> buf(64 * 1024);
  std::uint64_t left = f.length;
  while (left > 0) {
    std::size_t n = std::fread(buf.data(), 1, std::min<std::uint64_t>(left, buf.size()), file.get());
    if (n == 0) co_return false;  // file shrank: cut the connection, the length was promised
    left -= n;
    res.body().data = buf.data();
    res.body().size = n;
    res.body().more = left > 0;
    lowest(stream).expires_after(timeout);
    auto [ec, w] = co_await bhttp::async_write(stream, sr, use_tuple);
    if (ec == bhttp::error::need_buffer) continue;
    if (ec) co_return false;
  }
  if (!sr.is_done()) {
    res.body().data = nullptr;
    res.body().more = false;
    auto [ec, w] = co_await bhttp::async_write(stream, sr, use_tuple);
    if (ec && ec != bhttp::error::need_buffer) co_return false;
  }
  co_return keep_alive;
}

template net::awaitable<void> write_simple(beast::tcp_stream&, const Response&, bool);
template net::awaitable<void> write_simple(TlsStream&, const Response&, bool);
template net::awaitable<void> linger(beast::tcp_stream&);
template net::awaitable<void> linger(TlsStream&);
template net::awaitable<bool> write_file(beast::tcp_stream&, const Response&, bool, std::chrono::milliseconds);
template net::awaitable<bool> write_file(TlsStream&, const Response&, bool, std::chrono::milliseconds);

}  // namespace cpn::http
