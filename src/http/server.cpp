#include "cpn/http/server.hpp"

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <list>
#include <type_traits>
#include <map>
#include <set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "cpn/core/log.hpp"
#include "cpn/http/problem.hpp"
#include "wire.hpp"

namespace cpn::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

struct Server::Impl : std::enable_shared_from_this<Impl> {
  struct Session {
    tcp::socket* socket = nullptr;      // the lowest layer, under TLS too
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
  std::shared_ptr<ssl::context> tls;  // set: HTTPS
  std::list<Session> sessions;
  std::map<net::ip::address, std::size_t> per_client;  // open connections by client address
  BodyBudget bodies;
  std::uint64_t accept_failures = 0;
  std::chrono::steady_clock::time_point accept_reported{};
  bool stopping = false;
  std::function<void()> on_done;
  Server::Offload offload;
  // Work on a worker (a prepared job, a sync) ends by cancelling the timer its session waits on.
  struct Wake {
    explicit Wake(net::io_context& io) : timer(io, net::steady_timer::time_point::max()) {}
    net::steady_timer timer;
    bool done = false;  // set when the completion ran before the wait began
  };
  Server::Offload file_offload;  // upload chunks and large parses (see set_file_offload)
  // Group commit (see set_sync_offload).
  Server::Offload sync_offload;
  struct SyncWaiter {
    std::uint64_t target;
    std::shared_ptr<Wake> wake;
    std::shared_ptr<Status> result;
  };
  std::vector<SyncWaiter> sync_waiters;
  std::uint64_t synced = 0;
  bool syncing = false;

  Impl(net::io_context& io_, Dispatcher& d, engine::Engine& e, Limits l, std::function<std::string()> t)
      : io(io_), dispatcher(d), metrics(d.metrics()), engine(e), limits(l), temp_file(std::move(t)) {
    bodies.set(limits.max_buffered_body_bytes, limits.max_body_bytes);
  }

  // Work on a worker, its completion posted back here: the session waits
  // on a timer that the completion cancels; other sessions go on meanwhile.
  std::shared_ptr<Wake> start_job(std::function<void()> job, std::function<void()> then = {},
                                  const Server::Offload& where = {}) {
    auto wake = std::make_shared<Wake>(io);
    const Server::Offload& offload = where ? where : this->offload;
    if (!offload) {
      job();
      if (then) then();
      wake->done = true;
      return wake;
    }
    offload(std::move(job), [wake, then = std::move(then)] {
      if (then) then();
      wake->done = true;
      wake->timer.cancel();
    });
    return wake;
  }
  static net::awaitable<void> wait_job(const std::shared_ptr<Wake>& wake) {
    if (wake && !wake->done) co_await wake->timer.async_wait(use_tuple);
  }
  // Once every commit made so far is on disk (at once when the store syncs its own).
  net::awaitable<Status> durable() {
    store::Store& store = engine.store();
    std::uint64_t target = store.written();
    if (!sync_offload || !store.sync_deferred() || synced >= target) co_return Status{};
    auto wake = std::make_shared<Wake>(io);
    auto result = std::make_shared<Status>();
    sync_waiters.push_back({target, wake, result});
    start_sync();
    co_await wait_job(wake);
    co_return *result;
  }
  void start_sync() {
    if (syncing || sync_waiters.empty()) return;
    syncing = true;
    auto got = std::make_shared<Result<std::uint64_t>>(0);
    sync_offload([&store = engine.store(), got] { *got = store.sync(); },
                 [self = shared_from_this(), got] {
                   self->syncing = false;
                   if (*got) self->synced = std::max(self->synced, **got);
                   else log::error("the database log could not be synced; writes waiting for it fail: {}", got->error().message);
                   auto& waiting = self->sync_waiters;
                   for (auto it = waiting.begin(); it != waiting.end();) {
                     if (*got && it->target > self->synced) {
                       ++it;
                       continue;
                     }
                     if (!*got) *it->result = fail(got->error());
                     it->wake->done = true;
                     it->wake->timer.cancel();
                     it = waiting.erase(it);
                   }
                   self->start_sync();  // those that committed while it ran
                 });
  }

  net::awaitable<void> run_prepared(Dispatcher::Preparation prepared, const Server::Offload& where = {}) {
    co_await wait_job(start_job(std::move(prepared.job), std::move(prepared.done), where));
  }

  // A streamed body: read here a chunk at a time, each written and hashed
  // on a worker while the next one is read. Answers the read's error; the
  // sink's says whether the disk took it all.
  template <class Stream>
  net::awaitable<beast::error_code> read_streamed(Stream& stream, beast::flat_buffer& buffer,
                                                  bhttp::request_parser<bhttp::buffer_body>& parser,
                                                  const std::shared_ptr<UploadSink>& sink) {
    std::shared_ptr<Wake> writing;  // the other chunk's write, in flight
    beast::error_code error;
    for (int k = 0; !parser.is_done(); k ^= 1) {
      auto& body = parser.get().body();
      body.data = sink->chunks[k].data();
      body.size = sink->chunks[k].size();
      auto [ec, n] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
      if (ec == bhttp::error::need_buffer) ec = {};
      std::size_t got = sink->chunks[k].size() - parser.get().body().size;
      co_await wait_job(writing);  // chunk k^1 is written: k may be handed over
      writing.reset();
      if (sink->error) break;  // the disk refused: answered (and closed) without reading the rest
      if (got > 0) writing = start_job([sink, k, got] { sink->write(k, got); }, {}, file_offload);
      if (ec) {
        error = ec;
        break;
      }
    }
    co_await wait_job(writing);
    co_return error;
  }

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

  // Out of descriptors (or memory), accept fails at once and again: back
  // off instead of spinning, and say so once per interval, with a count.
  net::awaitable<void> accept_failed(const beast::error_code& ec, std::chrono::milliseconds& backoff) {
    metrics.accept_failed();
    ++accept_failures;
    auto now = std::chrono::steady_clock::now();
    if (now - accept_reported >= std::chrono::seconds(10)) {
      log::warning("accept failed: {} ({} failures in the last interval); backing off up to 1s", ec.message(),
                   accept_failures);
      accept_failures = 0;
      accept_reported = now;
    }
    backoff = std::min<std::chrono::milliseconds>(std::max<std::chrono::milliseconds>(backoff * 2, std::chrono::milliseconds(5)),
                                                  std::chrono::seconds(1));
    net::steady_timer pause(io);
    pause.expires_after(backoff);
    co_await pause.async_wait(use_tuple);
  }

  net::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    std::chrono::milliseconds backoff{0};
    for (;;) {
      auto [ec, socket] = co_await acceptor->async_accept(use_tuple);
      if (ec) {
        if (stopping || ec == net::error::operation_aborted) co_return;
        co_await accept_failed(ec, backoff);
        continue;
      }
      backoff = std::chrono::milliseconds(0);
      // Workloads cpnd starts must never inherit a client's connection.
      ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
      beast::error_code rec;
      auto remote = socket.remote_endpoint(rec);
      if (rec) continue;  // gone already
      net::ip::address client = client_of(remote.address());
      if (sessions.size() >= limits.max_connections) {
        refuse(socket, "total", "too many connections; try again shortly");
        continue;
      }
      if (per_client[client] >= limits.max_connections_per_client) {
        refuse(socket, "per_client", "too many connections from this address; try again shortly");
        continue;
      }
      net::co_spawn(io, session(std::move(socket), client), [](std::exception_ptr p) {
        if (!p) return;
        try {
          std::rethrow_exception(p);
        } catch (const std::exception& e) {
          log::error("session ended by an exception: {}", e.what());
        }
      });
    }
  }

  // Whom a connection counts against: an IPv4 address (also when mapped
  // into IPv6), or an IPv6 /64 (what one host or site is usually given).
  static net::ip::address client_of(const net::ip::address& a) {
    if (!a.is_v6()) return a;
    auto v6 = a.to_v6();
    if (v6.is_v4_mapped()) return net::ip::make_address_v4(net::ip::v4_mapped, v6);
    auto bytes = v6.to_bytes();
    std::fill(bytes.begin() + 8, bytes.end(), 0);
    return net::ip::address_v6(bytes);
  }

  // Over a limit: a 503 written at once if the socket takes it, then closed.
  // Nothing waits on the client, so refusing costs no descriptor for long.
  void refuse(tcp::socket& socket, const char* limit, const std::string& why) {
    metrics.connection_rejected(limit);
    Response r = problem(Error{ErrorKind::unavailable, why, {}}, "", "");
    std::string answer = fmt::format(
        "HTTP/1.1 503 Service Unavailable\r\nServer: cpnd\r\nContent-Type: {}\r\nRetry-After: 1\r\n"
        "Connection: close\r\nContent-Length: {}\r\n\r\n{}",
        r.content_type, r.body.size(), r.body);
    beast::error_code ec;
    socket.non_blocking(true, ec);
    if (!tls) socket.write_some(net::buffer(answer), ec);  // a TLS client could not read it
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  // A refusal before the body was read: answered, then what the client
  // still sends is drained for a moment before the connection closes.
  template <class Stream>
  net::awaitable<void> answer_and_close(Stream& stream, const Response& answer) {
    co_await write_simple(stream, answer, false);
    co_await linger(stream);
  }

  // A body that is not HTTP (a chunk size that overflows, a bad chunk):
  // 400 before closing. False for a connection that simply ended.
  template <class Stream>
  net::awaitable<bool> refuse_body(Stream& stream, const beast::error_code& ec, const Request& req) {
    if (ec.category() != bhttp::make_error_code(bhttp::error::bad_chunk).category() || ec == bhttp::error::end_of_stream ||
        ec == bhttp::error::partial_message)
      co_return false;
    Response problem_answer =
        problem(Error::bad_request("malformed request body: " + ec.message(), {{"", "malformed body"}}), req.path,
                req.request_id);
    co_await write_simple(stream, problem_answer, false);
    co_return true;
  }

  template <class Stream>
  net::awaitable<void> write_stream(Stream& stream, const Response& r, Session& me) {
    EventStream es = *r.stream;
    bhttp::response<bhttp::empty_body> res{bhttp::status::ok, 11};
    res.set(bhttp::field::server, "cpnd");
    res.set(bhttp::field::content_type, es.sse ? "text/event-stream" : "application/x-ndjson");
    res.set(bhttp::field::cache_control, "no-cache");
    for (const auto& [k, v] : r.headers) res.insert(k, v);
    res.chunked(true);
    res.keep_alive(false);
    bhttp::response_serializer<bhttp::empty_body> sr{res};
    lowest(stream).expires_after(limits.request_timeout);
    auto [hec, hn] = co_await bhttp::async_write_header(stream, sr, use_tuple);
    if (hec) co_return;
    net::steady_timer timer(io);
    while (!stopping) {
      // Woken by every commit, a revocation's among them: a revoked or
      // expired token's stream ends here.
      if (!es.token_id.empty() && !dispatcher.token_active(es.token_id)) break;
      auto events = engine.events_since(es.since, 256);
      std::string out;
      for (const auto& e : events) {
        es.since = e.seq;
        if (!es.kind.empty() && e.kind != es.kind) continue;
        Json j = store::event_json(e);
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
      lowest(stream).expires_after(limits.request_timeout);
      auto chunk = bhttp::make_chunk(net::buffer(out));
      auto [ec, n] = co_await net::async_write(stream, chunk, use_tuple);
      if (ec) co_return;
    }
    lowest(stream).expires_after(std::chrono::seconds(5));
    auto last = bhttp::make_chunk_last();
    co_await net::async_write(stream, last, use_tuple);
  }

  // Plain HTTP, or HTTPS when a certificate is configured (the context of
  // the moment: a SIGHUP reload serves new connections, open ones keep theirs).
  net::awaitable<void> session(tcp::socket socket, net::ip::address client) {
    auto self = shared_from_this();
    if (auto context = tls) {
      TlsStream stream(std::move(socket), *context);
      co_await serve(stream, client);
    } else {
      beast::tcp_stream stream(std::move(socket));
      co_await serve(stream, client);
    }
  }

  template <class Stream>
  net::awaitable<void> serve(Stream& stream, net::ip::address client) {
    sessions.push_back(Session{&lowest(stream).socket()});
    ++per_client[client];
    metrics.connection_opened();
    auto me = std::prev(sessions.end());
    struct Leave {
      Impl* impl;
      std::list<Session>::iterator it;
      net::ip::address client;
      ~Leave() {
        impl->metrics.connection_closed();
        impl->sessions.erase(it);
        if (--impl->per_client[client] == 0) impl->per_client.erase(client);
        impl->session_ended();
      }
    } leave{this, me, client};
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      lowest(stream).expires_after(limits.header_timeout);  // the handshake is part of the header phase
      auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple);
      if (hec) co_return;
    }
    // Bounded: a chunk extension or trailer that never ends cannot grow it.
    beast::flat_buffer buffer(limits.max_header_bytes + 64 * 1024);
    struct TempFile {  // a streamed body's file goes, whatever happens to the request
      std::string path;
      void drop() {
        if (!path.empty()) std::remove(path.c_str());
        path.clear();
      }
      ~TempFile() { drop(); }
    } upload;
    const std::string client_key = client.to_string();
    for (;;) {
      upload.drop();
      BodyCharge held;  // this request's body, given back once its answer is written
      me->busy = false;
      if (stopping) break;
      // The idle timeout covers the wait for a request's first byte; from
      // there the header has its own, shorter deadline, so a client that
      // sends it a byte at a time (slowloris) holds its connection briefly.
      lowest(stream).expires_after(limits.idle_timeout);
      if (buffer.size() == 0) {
        auto [rec, rn] = co_await stream.async_read_some(buffer.prepare(4096), use_tuple);
        if (rec) break;  // closed, idle, or cpnd stopping
        buffer.commit(rn);
      }
      me->busy = true;
      lowest(stream).expires_after(limits.header_timeout);
      bhttp::request_parser<bhttp::empty_body> head;
      head.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
      // Beast checks Content-Length against the limit as the header ends, so
      // the header parser takes the larger limit; the route's own is below.
      head.body_limit(std::max<std::uint64_t>(limits.max_body_bytes, limits.max_file_bytes));
      auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, head, use_tuple);
      if (ec == bhttp::error::header_limit) {
        Response problem_answer = problem(
            Error{ErrorKind::header_too_large, fmt::format("request header fields over {} bytes", limits.max_header_bytes), {}},
            "", "");
        co_await write_simple(stream, problem_answer, false);
        break;
      }
      if (ec == bhttp::error::body_limit) {  // a Content-Length over every limit
        Response problem_answer = problem(Error{ErrorKind::payload_too_large, "the request body is over the limit", {}}, "", "");
        co_await answer_and_close(stream, problem_answer);
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
      if (ec) break;  // closed, header timeout, or cpnd stopping
      // RFC 9112 §6.3: a request whose Transfer-Encoding does not end in
      // chunked has no length we can trust (and one with Content-Length as
      // well may be read two ways): 400, and the connection closes, so its
      // bytes are never read as the next request.
      if (head.get().count(bhttp::field::transfer_encoding) > 0 &&
          (!head.chunked() || head.get().count(bhttp::field::content_length) > 0)) {
        Response problem_answer = problem(
            Error::bad_request("Transfer-Encoding must end in chunked, without Content-Length",
                               {{"/header/Transfer-Encoding", "not chunked, or sent with Content-Length"}}),
            "", "");
        co_await answer_and_close(stream, problem_answer);
        break;
      }
      Request req;
      req.received = std::chrono::steady_clock::now();
      req.method = std::string(head.get().method_string());
      req.target = std::string(head.get().target());
      copy_headers(head.get(), req);
      parse_target(req);
      req.request_id = req.header("x-request-id");
      bool keep_alive = head.get().keep_alive();
      lowest(stream).expires_after(limits.request_timeout);
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
        bhttp::request_parser<bhttp::buffer_body> parser(std::move(head));
        parser.body_limit(body_limit);  // chunked bodies are counted as they arrive
        req.body_file = temp_file();
        upload.path = req.body_file;
        auto sink = std::make_shared<UploadSink>(req.body_file);
        if (sink->fd < 0) {
          Response problem_answer = problem(Error::internal("cannot open a temporary file"), req.path, "");
          co_await write_simple(stream, problem_answer, false);
          break;
        }
        auto rec = co_await read_streamed(stream, buffer, parser, sink);
        if (rec == bhttp::error::body_limit) {
          too_large = true;
        } else if (sink->error == ENOSPC || sink->error == EFBIG || sink->error == EDQUOT) {
          Response problem_answer = problem(
              Error{ErrorKind::insufficient_storage, "the disk is full; the upload was not kept", {}}, req.path,
              req.request_id);
          co_await answer_and_close(stream, problem_answer);
          break;
        } else if (rec) {
          if (co_await refuse_body(stream, rec, req)) co_await linger(stream);
          break;
        } else if (sink->error) {
          Response problem_answer = problem(
              Error::internal(fmt::format("the upload could not be written: {}", std::strerror(sink->error))), req.path,
              req.request_id);
          co_await answer_and_close(stream, problem_answer);
          break;
        }
        req.body_sha256 = sink->hash.hex();
        req.body_size = sink->size;
      } else {
        bhttp::request_parser<BudgetedStringBody> parser(std::move(head));
        parser.body_limit(body_limit);
        parser.get().body().budget = &bodies;
        parser.get().body().client = client_key;
        auto [rec, rn] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
        if (rec) parser.get().body().drop();
        if (rec == bhttp::error::body_limit) {
          too_large = true;
        } else if (rec == net::error::no_buffer_space) {
          metrics.body_budget_refused();
          Response problem_answer = problem(
              Error{ErrorKind::unavailable, "cpnd holds as many request bodies as it may; try again shortly", {}},
              req.path, req.request_id);
          problem_answer.header("Retry-After", "1");
          co_await answer_and_close(stream, problem_answer);
          break;
        } else if (rec) {
          if (co_await refuse_body(stream, rec, req)) co_await linger(stream);
          break;
        } else {
          req.body = std::move(parser.get().body().text);
          held = parser.get().body().take_charge();
        }
      }
      if (too_large) {
        // The rest of the body is unread: answer, then close.
        Response problem_answer = problem(Error{ErrorKind::payload_too_large, "the request body is over the limit", {}},
                                      req.path, req.request_id);
        co_await answer_and_close(stream, problem_answer);
        break;
      }

      Response res;
      if (auto parse = dispatcher.parse_ahead(req); parse.job) co_await run_prepared(std::move(parse), file_offload);
      if (auto prepared = dispatcher.prepare(req); prepared.refused) {
        res = std::move(*prepared.refused);
      } else {
        if (prepared.job) co_await run_prepared(std::move(prepared));
        res = dispatcher.handle(req);
      }
      // A write is acknowledged once it is on disk (shared with every write made meanwhile).
      if (req.method != "GET" && req.method != "HEAD") {
        if (auto synced_ok = co_await durable(); !synced_ok) {
          res = problem(Error{ErrorKind::unavailable,
                              "the write could not be made durable (" + synced_ok.error().message +
                                  "); it may be lost if the host loses power: read it back before relying on it",
                              {}},
                        req.path, req.request_id);
          keep_alive = false;
        }
      }
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
    lowest(stream).socket().shutdown(tcp::socket::shutdown_send, ec);
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

Status Server::set_tls(const std::string& cert_file, const std::string& key_file) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  beast::error_code ec;
  // TLS 1.2 and later only, as Mozilla's intermediate profile.
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                           ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                       ec);
  if (!ec) context->use_certificate_chain_file(cert_file, ec);
  if (ec) return fail(Error::invalid_field("/tls/cert_file", fmt::format("'{}': {}", cert_file, ec.message())));
  context->use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) return fail(Error::invalid_field("/tls/key_file", fmt::format("'{}': {}", key_file, ec.message())));
  if (SSL_CTX_check_private_key(context->native_handle()) != 1)
    return fail(Error::invalid_field("/tls/key_file", fmt::format("'{}' is not the key of '{}'", key_file, cert_file)));
  impl_->tls = std::move(context);
  return {};
}

bool Server::tls() const { return impl_->tls != nullptr; }

void Server::set_limits(Limits limits) {
  impl_->limits = limits;
  impl_->bodies.set(limits.max_buffered_body_bytes, limits.max_body_bytes);
}

void Server::set_offload(Offload offload) { impl_->offload = std::move(offload); }
void Server::set_sync_offload(Offload offload) { impl_->sync_offload = std::move(offload); }
void Server::set_file_offload(Offload offload) { impl_->file_offload = std::move(offload); }

std::size_t Server::open_sessions() const { return impl_->sessions.size(); }

Result<unsigned short> Server::listen(const std::string& host, unsigned short port) {
  beast::error_code ec;
  auto address = net::ip::make_address(host, ec);
  if (ec) return fail(Error::invalid_field("/listen", fmt::format("'{}' is not an IP address", host)));
  auto acceptor = std::make_unique<tcp::acceptor>(impl_->io);
  tcp::endpoint ep{address, port};
  acceptor->open(ep.protocol(), ec);
  if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
  // Never inherited by a workload: a child holding it would keep the port
  // taken after a crash, and could accept cpnd's clients.
  if (!ec) ::fcntl(acceptor->native_handle(), F_SETFD, FD_CLOEXEC);
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
    else if (!s.busy) s.socket->cancel(ec);  // idle keep-alive: stop waiting for a request
  }
  impl.session_ended();
}

}  // namespace cpn::http
