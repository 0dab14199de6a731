// The HTTP listener and its sessions (Boost.Beast coroutines). Limits on
// header size, body size, idle time and connection count are set here,
// once, for every route. Handlers never see a socket: the session hands a
// Request to the Dispatcher and writes back the Response.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "cpn/engine/engine.hpp"
#include "cpn/http/dispatcher.hpp"

namespace cpn::http {

struct Limits {
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 8 * 1024 * 1024;
  std::size_t max_yaml_bytes = 1024 * 1024;             // of those, in YAML (the dispatcher's)
  std::uint64_t max_file_bytes = 2ull * 1024 * 1024 * 1024;
  std::chrono::milliseconds idle_timeout{60'000};       // waiting for a request's first byte
  std::chrono::milliseconds header_timeout{10'000};     // from the first byte to the header's end
  std::chrono::milliseconds request_timeout{300'000};  // reading a body, writing an answer
  std::size_t max_connections = 1024;
  std::size_t max_connections_per_client = 128;         // from one address
  std::uint64_t max_buffered_body_bytes = 64ull * 1024 * 1024;  // bodies in memory, all connections
  std::chrono::milliseconds heartbeat{15'000};         // for event streams
};

class Server {
 public:
  // temp_file names a fresh path for a streamed upload body.
  Server(boost::asio::io_context& io, Dispatcher& dispatcher, engine::Engine& engine, Limits limits,
         std::function<std::string()> temp_file);
  ~Server();

  // Binds and starts accepting; returns the bound port (useful with port 0).
  Result<unsigned short> listen(const std::string& host, unsigned short port);
  void set_limits(Limits limits);
  // Where prepared work (Dispatcher::prepare) runs: work on a worker, then
  // `then` back on the io_context. Unset: inline, on the io thread.
  using Offload = std::function<void(std::function<void()> work, std::function<void()> then)>;
  void set_offload(Offload offload);
  // Group commit: with the store's sync deferred, the answer to a write
  // (any method but GET and HEAD) leaves once store.sync() has covered
  // every commit made before it; syncs run one at a time through this
  // offload (a thread of their own: never behind a solve), and one covers
  // every write made before it began.
  void set_sync_offload(Offload offload);
  // Where upload chunks are written and hashed and large bodies parsed:
  // workers of their own, so neither waits behind a long solve. Unset: the
  // prepared work's offload.
  void set_file_offload(Offload offload);
  // Serve HTTPS with this PEM chain and key (from then on, new connections;
  // called again on SIGHUP to reload). A file that does not load, or a key
  // that is not the certificate's, is an error naming /tls/...; the context
  // in use is kept then.
  Status set_tls(const std::string& cert_file, const std::string& key_file);
  bool tls() const;

  // Graceful stop: no new connections, idle keep-alive connections and
  // event streams closed, in-flight requests finish and are answered with
  // "Connection: close". done runs once every session has ended.
  void shutdown(std::function<void()> done);
  std::size_t open_sessions() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace cpn::http
