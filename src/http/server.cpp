#include "cpn/http/server.hpp"

#include <cstdio>
#include <list>
#include <set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "cpn/core/log.hpp"
#include "cpn/http/problem.hpp"
#include "wire.hpp"

namespace cpn::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

struct Server::Impl : std::enable_shared_from_this<Impl> {
  struct Session {
    beast::tcp_stream* stream = nullptr;
    bool busy = false;                  // between a request's header and its answer
    net::steady_timer* watch = nullptr; // set while an event stream waits
  };

  net::io_context& io;
  Dispatcher& dispatcher;
  Metrics& metrics;  // outlives the io_context, unlike the dispatcher
  engine::Engine& engine;
  Limits limits;
  std::function<std::string()> temp_file;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::list<Session> sessions;
  bool stopping = false;
  std::function<void()> on_done;

  Impl(net::io_context& io_, Dispatcher& d, engine::Engine& e, Limits l, std::function<std::string()> t)
      : io(io_), dispatcher(d), metrics(d.metrics()), engine(e), limits(l), temp_file(std::move(t)) {}

  void wake_watchers() {
    for (auto& s : sessions)
      if (s.watch) s.watch->cancel();
  }

  void session_ended() {
    if (stopping && sessions.empty() && on_done) {
      auto done = std::move(on_done);
      on_done = nullptr;
      done();
    }
  }

  net::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    for (;;) {
      auto [ec, socket] = co_await acceptor->async_accept(use_tuple);
      if (ec) {
        if (stopping || ec == net::error::operation_aborted) co_return;
        log::warning("accept failed: {}", ec.message());
        continue;
      }
      if (sessions.size() >= limits.max_connections) {
        // Over the limit: answer 503 at once instead of leaving it queued.
        net::co_spawn(io, reject(std::move(socket)), net::detached);
        continue;
      }
      net::co_spawn(io, session(std::move(socket)), [](std::exception_ptr p) {
        if (!p) return;
        try {
          std::rethrow_exception(p);
        } catch (const std::exception& e) {
          log::error("session ended by an exception: {}", e.what());
        }
      });
    }
  }

  net::awaitable<void> reject(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    stream.expires_after(std::chrono::seconds(5));
    metrics.connection_rejected();
    Response r = problem(Error{ErrorKind::unavailable, "too many connections; try again shortly", {}}, "", "");
    bhttp::response<bhttp::string_body> res{bhttp::status::service_unavailable, 11};
    res.set(bhttp::field::content_type, r.content_type);
    res.set(bhttp::field::retry_after, "1");
    res.keep_alive(false);
    res.body() = r.body;
    res.prepare_payload();
    co_await bhttp::async_write(stream, res, use_tuple);
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  net::awaitable<void> write_stream(beast::tcp_stream& stream, const Response& r, Session& me) {
    EventStream es = *r.stream;
    bhttp::response<bhttp::empty_body> res{bhttp::status::ok, 11};
    res.set(bhttp::field::server, "cpnd");
    res.set(bhttp::field::content_type, es.sse ? "text/event-stream" : "application/x-ndjson");
    res.set(bhttp::field::cache_control, "no-cache");
    for (const auto& [k, v] : r.headers) res.insert(k, v);
    res.chunked(true);
    res.keep_alive(false);
    bhttp::response_serializer<bhttp::empty_body> sr{res};
    stream.expires_after(limits.request_timeout);
    auto [hec, hn] = co_await bhttp::async_write_header(stream, sr, use_tuple);
    if (hec) co_return;
    net::steady_timer timer(io);
    while (!stopping) {
      auto events = engine.events_since(es.since, 256);
      std::string out;
      for (const auto& e : events) {
        es.since = e.seq;
        if (!es.kind.empty() && e.kind != es.kind) continue;
        Json j = {{"seq", e.seq}, {"time", e.time}, {"type", e.type}, {"kind", e.kind}, {"id", e.id}, {"object", e.object}};
        if (e.kind == "token" && j["object"].is_object()) j["object"].erase("sha256");
        out += es.sse ? fmt::format("id: {}\nevent: {}\ndata: {}\n\n", e.seq, e.type, j.dump()) : j.dump() + "\n";
      }
      if (events.empty()) {
        timer.expires_after(limits.heartbeat);
        me.watch = &timer;
        auto [ec] = co_await timer.async_wait(use_tuple);
        me.watch = nullptr;
        if (stopping) break;
        if (!ec) out = es.sse ? ": heartbeat\n\n" : "\n";  // keeps proxies from closing an idle stream
        else continue;  // woken by a commit
      }
      if (out.empty()) continue;
      stream.expires_after(limits.request_timeout);
      auto chunk = bhttp::make_chunk(net::buffer(out));
      auto [ec, n] = co_await net::async_write(stream, chunk, use_tuple);
      if (ec) co_return;
    }
    stream.expires_after(std::chrono::seconds(5));
    auto last = bhttp::make_chunk_last();
    co_await net::async_write(stream, last, use_tuple);
  }

  net::awaitable<void> session(tcp::socket socket) {
    auto self = shared_from_this();
    beast::tcp_stream stream(std::move(socket));
    sessions.push_back(Session{&stream});
    metrics.connection_opened();
    auto me = std::prev(sessions.end());
    struct Leave {
      Impl* impl;
      std::list<Session>::iterator it;
      ~Leave() {
        impl->metrics.connection_closed();
        impl->sessions.erase(it);
        impl->session_ended();
      }
    } leave{this, me};
    beast::flat_buffer buffer;
    struct TempFile {  // a streamed body's file goes, whatever happens to the request
      std::string path;
      void drop() {
        if (!path.empty()) std::remove(path.c_str());
        path.clear();
      }
      ~TempFile() { drop(); }
    } upload;
    for (;;) {
      upload.drop();
      me->busy = false;
      if (stopping) break;
      stream.expires_after(limits.idle_timeout);
      bhttp::request_parser<bhttp::empty_body> head;
      head.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
      // Beast checks Content-Length against the limit as the header ends, so
      // the header parser takes the larger limit; the route's own is below.
      head.body_limit(std::max<std::uint64_t>(limits.max_body_bytes, limits.max_file_bytes));
      auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, head, use_tuple);
      if (ec == bhttp::error::header_limit) {
        Response problem_answer = problem(Error{ErrorKind::bad_request, "request header fields too large", {}}, "", "");
        co_await write_simple(stream, problem_answer, false);
        break;
      }
      if (ec && ec.category() == bhttp::make_error_code(bhttp::error::bad_field).category() &&
          ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
        // Not HTTP we can read (a bad field, a stray newline): say so, then close.
        Response problem_answer =
            problem(Error{ErrorKind::bad_request, "malformed request: " + ec.message(), {}}, "", "");
        co_await write_simple(stream, problem_answer, false);
        break;
      }
      if (ec) break;  // closed, idle timeout, or cpnd stopping
      me->busy = true;
      Request req;
      req.method = std::string(head.get().method_string());
      req.target = std::string(head.get().target());
      copy_headers(head.get(), req);
      parse_target(req);
      req.request_id = req.header("x-request-id");
      bool keep_alive = head.get().keep_alive();
      stream.expires_after(limits.request_timeout);
      if (auto refused = dispatcher.preflight(req)) {
        // Not found, not allowed or not authenticated: answered before any
        // body is read. A request without a body keeps its connection; an
        // unread body is drained and the connection closed.
        bool has_body = head.chunked() || head.content_length().value_or(0) > 0;
        bool keep = keep_alive && !has_body && !stopping;
        co_await write_simple(stream, *refused, keep);
        if (keep) continue;
        co_await linger(stream);
        break;
      }

      bool streamed = dispatcher.streams_body(req.method, req.path);
      std::uint64_t body_limit = streamed ? limits.max_file_bytes : limits.max_body_bytes;
      bool too_large = head.content_length() && *head.content_length() > body_limit;
      if (!too_large && head.get()[bhttp::field::expect] == "100-continue") {
        bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, 11};
        co_await bhttp::async_write(stream, cont, use_tuple);
      }
      if (too_large) {
        // answered below without reading the body
      } else if (streamed) {
        bhttp::request_parser<HashingFileBody> parser(std::move(head));
        parser.body_limit(body_limit);  // chunked bodies are counted as they arrive
        req.body_file = temp_file();
        upload.path = req.body_file;
        beast::error_code fec;
        parser.get().body().file.open(req.body_file.c_str(), beast::file_mode::write, fec);
        if (fec) {
          Response problem_answer = problem(Error::internal("cannot open a temporary file"), req.path, "");
          co_await write_simple(stream, problem_answer, false);
          break;
        }
        auto [rec, rn] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
        auto& received = parser.get().body();
        received.file.close(fec);
        if (rec == bhttp::error::body_limit) too_large = true;
        else if (rec) break;
        req.body_sha256 = received.hash->hex();
        req.body_size = received.size;
      } else {
        bhttp::request_parser<bhttp::string_body> parser(std::move(head));
        parser.body_limit(body_limit);
        auto [rec, rn] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
        if (rec == bhttp::error::body_limit) too_large = true;
        else if (rec) break;
        else req.body = std::move(parser.get().body());
      }
      if (too_large) {
        // The rest of the body is unread: answer, then close.
        Response problem_answer = problem(Error{ErrorKind::payload_too_large, "the request body is over the limit", {}},
                                      req.path, req.request_id);
        co_await write_simple(stream, problem_answer, false);
        co_await linger(stream);
        break;
      }

      Response res = dispatcher.handle(req);
      upload.drop();
      if (stopping) keep_alive = false;
      if (res.stream) {
        co_await write_stream(stream, res, *me);
        break;
      }
      if (res.file) keep_alive = co_await write_file(stream, res, keep_alive, limits.request_timeout);
      else co_await write_simple(stream, res, keep_alive);
      if (!keep_alive) break;
    }
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }
};

Server::Server(net::io_context& io, Dispatcher& dispatcher, engine::Engine& engine, Limits limits,
               std::function<std::string()> temp_file)
    : impl_(std::make_shared<Impl>(io, dispatcher, engine, limits, std::move(temp_file))) {
  std::weak_ptr<Impl> weak = impl_;
  engine.on_commit([weak](const std::vector<engine::Event>&) {
    if (auto impl = weak.lock()) impl->wake_watchers();
  });
}

Server::~Server() {
  // Sessions cut short at exit end after main's objects are gone: they must
  // not call back into them.
  impl_->on_done = nullptr;
  impl_->stopping = true;
}

void Server::set_limits(Limits limits) { impl_->limits = limits; }

std::size_t Server::open_sessions() const { return impl_->sessions.size(); }

Result<unsigned short> Server::listen(const std::string& host, unsigned short port) {
  beast::error_code ec;
  auto address = net::ip::make_address(host, ec);
  if (ec) return fail(Error::invalid_field("/listen", fmt::format("'{}' is not an IP address", host)));
  auto acceptor = std::make_unique<tcp::acceptor>(impl_->io);
  tcp::endpoint ep{address, port};
  acceptor->open(ep.protocol(), ec);
  if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(ep, ec);
  if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail(Error::internal(fmt::format("cannot listen on {}:{}: {}", host, port, ec.message())));
  unsigned short bound = acceptor->local_endpoint().port();
  impl_->acceptor = std::move(acceptor);
  net::co_spawn(impl_->io, impl_->accept_loop(), net::detached);
  return bound;
}

void Server::shutdown(std::function<void()> done) {
  auto& impl = *impl_;
  impl.stopping = true;
  impl.on_done = std::move(done);
  beast::error_code ec;
  if (impl.acceptor) impl.acceptor->close(ec);
  for (auto& s : impl.sessions) {
    if (s.watch) s.watch->cancel();
    else if (!s.busy) s.stream->socket().cancel(ec);  // idle keep-alive: stop waiting for a request
  }
  impl.session_ended();
}

}  // namespace cpn::http
