// The informer: LIST the cpnd-labelled Deployments of a namespace, then
// WATCH from the list's resourceVersion and apply each event to a cache,
// on a thread and io_context of its own, so the driver's observe reads
// memory instead of asking the cluster once per group per pass.
#include <random>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>

#include "cpn/core/clock.hpp"
#include "cpn/core/log.hpp"
#include "cpn/drivers/kubernetes.hpp"
#include "endpoint.hpp"

namespace cpn::drivers::kubernetes {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace {

using Stream = beast::ssl_stream<beast::tcp_stream>;

constexpr std::size_t kMaxEvent = 16 * 1024 * 1024;  // one event's line, at most

// An integer resourceVersion, or -1 (they are opaque, but etcd's are integers).
long version_of(const Json& object) {
  std::string rv = object.value("/metadata/resourceVersion"_json_pointer, "");
  if (rv.empty() || rv.size() > 18 || rv.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stol(rv);
}

std::string selector_query() {
  std::string out;
  for (char c : std::string(kManagedBy)) {
    if (c == '/') out += "%2F";
    else if (c == '=') out += "%3D";
    else out += c;
  }
  return out;
}

// Why a watch ended.
enum class Ended { done, gone, failed };

}  // namespace

struct Informer::Impl {
  ClusterSettings settings;
  std::chrono::milliseconds timeout;
  std::string collection;  // /apis/apps/v1/namespaces/<ns>/deployments

  mutable std::mutex mutex;  // guards what follows: the driver reads from its workers
  std::map<std::string, Json> store;  // by REST path
  bool synced = false;
  std::string state = "listing", reason, since;
  int failures = 0;
  long lists = 0, watches = 0, events = 0;

  std::string version;  // to watch from
  std::mt19937 random{std::random_device{}()};
  std::thread thread;
  net::io_context io;  // last: what is pending in it goes first

  void note(const std::string& now_state, const std::string& why = "") {
    std::lock_guard lock(mutex);
    if (now_state != state) since = format_time(std::chrono::system_clock::now());
    // Failures count until a watch runs again: a LIST that works while every WATCH fails still backs off.
    if (now_state == "failing") {
      ++failures;
      if (why != reason) log::warning("kubernetes {} {}: informer: {}", settings.endpoint, settings.ns, why);
    } else if (now_state == "watching") {
      failures = 0;
    }
    state = now_state;
    reason = why;
  }

  void apply(const std::string& type, const Json& object) {
    std::string path = ApiClient::path_of(object);
    std::lock_guard lock(mutex);
    ++events;
    if (type == "DELETED") {
      store.erase(path);
      return;
    }
    auto it = store.find(path);
    if (it != store.end() && version_of(object) >= 0 && version_of(object) < version_of(it->second)) return;
    store[path] = object;
  }

  // A TLS connection to the API server, within the timeout.
  net::awaitable<std::unique_ptr<Stream>> connect(ssl::context& tls, const Endpoint& e) {
    auto stream = std::make_unique<Stream>(io, tls);
    boost::system::error_code ec;
    net::ip::make_address(e.host, ec);
    if (ec) SSL_set_tlsext_host_name(stream->native_handle(), e.host.c_str());
    stream->set_verify_callback(ssl::host_name_verification(e.host));
    net::ip::tcp::resolver resolver(io);
    net::steady_timer deadline(io, timeout);  // resolving has no timer of its own
    deadline.async_wait([&resolver](boost::system::error_code ec) {
      if (!ec) resolver.cancel();
    });
    auto addresses = co_await resolver.async_resolve(e.host, e.port, net::use_awaitable);
    deadline.cancel();
    beast::get_lowest_layer(*stream).expires_after(timeout);
    co_await beast::get_lowest_layer(*stream).async_connect(addresses, net::use_awaitable);
    co_await stream->async_handshake(ssl::stream_base::client, net::use_awaitable);
    co_return stream;
  }

  Result<bhttp::request<bhttp::empty_body>> request_for(const Endpoint& e, const std::string& target) {
    auto token = read_token(settings.token_file);
    if (!token) return fail(token.error());
    bhttp::request<bhttp::empty_body> req{bhttp::verb::get, e.prefix + target, 11};
    req.set(bhttp::field::host, e.host);
    req.set(bhttp::field::user_agent, "cpnd");
    req.set(bhttp::field::accept, "application/json");
    if (!token->empty()) req.set(bhttp::field::authorization, "Bearer " + *token);
    return req;
  }

  std::shared_ptr<ssl::context> context() {
    auto tls = std::make_shared<ssl::context>(ssl::context::tls_client);
    boost::system::error_code ec;
    if (settings.ca_file.empty())
      tls->set_default_verify_paths(ec);
    else
      tls->load_verify_file(settings.ca_file, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot load the CA file '{}': {}", settings.ca_file, ec.message()));
    tls->set_verify_mode(ssl::verify_peer);
    return tls;
  }

  // LIST: the cache becomes what the cluster holds; the version to watch from.
  net::awaitable<void> list(ssl::context& tls, const Endpoint& e) {
    auto req = request_for(e, collection + "?labelSelector=" + selector_query());
    if (!req) throw std::runtime_error(req.error().message);
    auto stream = co_await connect(tls, e);
    beast::get_lowest_layer(*stream).expires_after(timeout);
    co_await bhttp::async_write(*stream, *req, net::use_awaitable);
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(256 * 1024 * 1024);
    co_await bhttp::async_read(*stream, buffer, parser, net::use_awaitable);
    Json body = Json::parse(parser.get().body(), nullptr, false);
    if (parser.get().result_int() != 200)
      throw std::runtime_error(fmt::format("LIST {}: HTTP {}: {}", collection, parser.get().result_int(),
                                           body.is_object() ? body.value("message", "") : parser.get().body().substr(0, 200)));
    if (!body.is_object() || !body.contains("items") || !body["items"].is_array())
      throw std::runtime_error(fmt::format("LIST {}: the answer is not a list", collection));
    std::map<std::string, Json> fresh;
    for (const auto& item : body["items"])
      if (item.is_object() && item.value("kind", "Deployment") == "Deployment") {
        Json d = item;
        d["kind"] = "Deployment";  // items of a list leave their kind out
        d["apiVersion"] = "apps/v1";
        std::string path = ApiClient::path_of(d);  // before d moves (Json's operator= takes its operand by value)
        fresh[path] = std::move(d);
      }
    version = body.value("/metadata/resourceVersion"_json_pointer, "");
    std::lock_guard lock(mutex);
    store = std::move(fresh);
    synced = true;
    ++lists;
  }

  // WATCH from version until the server ends it (done), says the version
  // is gone (gone) or the connection fails or goes quiet (failed).
  net::awaitable<Ended> watch(ssl::context& tls, const Endpoint& e, std::string& why) {
    // As client-go: a random timeout of 5 to 10 minutes, bookmarks to keep the version fresh.
    int timeout_s = std::uniform_int_distribution<int>(300, 599)(random);
    auto req = request_for(e, fmt::format("{}?labelSelector={}&watch=1&allowWatchBookmarks=true&resourceVersion={}"
                                          "&timeoutSeconds={}", collection, selector_query(), version, timeout_s));
    if (!req) {
      why = req.error().message;
      co_return Ended::failed;
    }
    auto stream = co_await connect(tls, e);
    auto& tcp = beast::get_lowest_layer(*stream);
    tcp.expires_after(timeout);
    co_await bhttp::async_write(*stream, *req, net::use_awaitable);
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(boost::none);
    co_await bhttp::async_read_header(*stream, buffer, parser, net::use_awaitable);
    if (parser.get().result_int() != 200) {
      int status = parser.get().result_int();
      if (status == 410) co_return Ended::gone;
      why = fmt::format("WATCH {}: HTTP {}", collection, status);
      co_return Ended::failed;
    }
    {
      std::lock_guard lock(mutex);
      ++watches;
    }
    note("watching");
    std::string pending;
    while (!parser.is_done()) {
      tcp.expires_after(std::chrono::seconds(timeout_s + 60));  // a watch that goes quiet past its end is dead
      co_await bhttp::async_read_some(*stream, buffer, parser, net::use_awaitable);
      pending += parser.get().body();
      parser.get().body().clear();
      for (std::size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
        Json event = Json::parse(pending.substr(0, nl), nullptr, false);
        pending.erase(0, nl + 1);
        if (!event.is_object() || !event.contains("object") || !event["object"].is_object()) {
          why = fmt::format("WATCH {}: an event that is not JSON", collection);
          co_return Ended::failed;
        }
        std::string type = event.value("type", "");
        const Json& object = event["object"];
        if (type == "ERROR") {
          if (object.value("code", 0) == 410) co_return Ended::gone;
          why = fmt::format("WATCH {}: {}", collection, object.value("message", "error"));
          co_return Ended::failed;
        }
        std::string rv = object.value("/metadata/resourceVersion"_json_pointer, "");
        if (!rv.empty()) version = rv;
        if (type == "ADDED" || type == "MODIFIED" || type == "DELETED") {
          Json d = object;
          d["kind"] = "Deployment";
          apply(type, d);
        }
      }
      if (pending.size() > kMaxEvent) {
        why = fmt::format("WATCH {}: an event over {} bytes", collection, kMaxEvent);
        co_return Ended::failed;
      }
    }
    co_return Ended::done;
  }

  net::awaitable<void> sleep(std::chrono::milliseconds d) {
    net::steady_timer t(io, d);
    co_await t.async_wait(net::use_awaitable);
  }
  std::chrono::milliseconds backoff() const {
    int n = 0;
    {
      std::lock_guard lock(mutex);
      n = failures;
    }
    return std::min<std::chrono::milliseconds>(std::chrono::seconds(30),
                                               std::chrono::milliseconds(1000) * (1 << std::min(std::max(n - 1, 0), 5)));
  }

  net::awaitable<void> run() {
    bool listed = false;
    for (;;) {
      std::string why;
      try {
        auto endpoint = parse_endpoint(settings.endpoint);
        if (!endpoint) throw std::runtime_error(endpoint.error().message);
        auto tls = context();  // the CA file as it is now, every time round
        if (!listed) {
          note("listing");
          co_await list(*tls, *endpoint);
          listed = true;
        }
        auto began = std::chrono::steady_clock::now();
        Ended ended = co_await watch(*tls, *endpoint, why);
        // A server that ends every watch at once is not asked again in a tight loop.
        if (std::chrono::steady_clock::now() - began < std::chrono::milliseconds(200))
          co_await sleep(std::chrono::milliseconds(200));
        if (ended == Ended::done) continue;
        if (ended == Ended::gone) {
          listed = false;
          continue;
        }
      } catch (const std::exception& e) {
        why = e.what();
      }
      note("failing", why);
      co_await sleep(backoff());
    }
  }
};

Informer::Informer(ClusterSettings settings, std::chrono::milliseconds timeout) : impl_(std::make_shared<Impl>()) {
  impl_->settings = std::move(settings);
  impl_->timeout = timeout;
  impl_->collection = fmt::format("/apis/apps/v1/namespaces/{}/deployments", impl_->settings.ns);
  impl_->since = format_time(std::chrono::system_clock::now());
  net::co_spawn(impl_->io, impl_->run(), [](std::exception_ptr) {});
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

Informer::~Informer() {
  impl_->io.stop();
  impl_->thread.join();
}

std::optional<std::optional<Json>> Informer::get(const std::string& path) const {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->synced) return std::nullopt;
  auto it = impl_->store.find(path);
  if (it == impl_->store.end()) return std::optional<Json>();
  return std::optional<Json>(it->second);
}

void Informer::assume(const std::string& path, std::optional<Json> object) {
  std::lock_guard lock(impl_->mutex);
  if (!object) {
    impl_->store.erase(path);
    return;
  }
  auto it = impl_->store.find(path);
  if (it != impl_->store.end() && version_of(*object) >= 0 && version_of(*object) < version_of(it->second)) return;
  impl_->store[path] = std::move(*object);
}

bool Informer::current() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->synced && impl_->state != "failing";
}

Json Informer::condition() const {
  std::lock_guard lock(impl_->mutex);
  Json out = {{"state", impl_->state},   {"since", impl_->since},   {"lists", impl_->lists},
              {"watches", impl_->watches}, {"events", impl_->events}, {"objects", impl_->store.size()}};
  if (!impl_->reason.empty()) out["reason"] = impl_->reason;
  if (impl_->failures > 0) out["failures"] = impl_->failures;
  return out;
}

}  // namespace cpn::drivers::kubernetes
