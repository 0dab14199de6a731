// The wire side of a session, apart from its loop: reading a request's
// target and headers, writing answers (whole, from a file, or refusing and
// draining a body). Private to the http module.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/buffer_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/file.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>

#include "cpn/core/crypto.hpp"
#include "cpn/http/message.hpp"

namespace cpn::http {

// co_await ... (use_tuple): errors come back as values, never as exceptions.
inline constexpr auto use_tuple = boost::asio::as_tuple(boost::asio::use_awaitable);

// A streamed request body's file: chunks are written and hashed (SHA-256)
// on a worker, one at a time, while the session reads the next one, so
// neither the disk (writeback throttling) nor the hash holds the thread
// that serves every other request, and a large upload is never read back.
// Shared with the worker's job, which may outlive the session.
struct UploadSink {
  static constexpr std::size_t kChunkBytes = 256 * 1024;
  // Writeback is started (not waited for) every this many bytes, so the
  // fsync before the upload is acknowledged finds little left to write.
  static constexpr std::uint64_t kWritebackBytes = 8u << 20;
  int fd = -1;
  Sha256 hash;
  std::uint64_t size = 0, flushing = 0;
  int error = 0;  // errno of the first failed write; later chunks are dropped
  std::vector<char> chunks[2] = {std::vector<char>(kChunkBytes), std::vector<char>(kChunkBytes)};

  explicit UploadSink(const std::string& path) : fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) {}
  ~UploadSink() {
    if (fd >= 0) ::close(fd);
  }
  UploadSink(const UploadSink&) = delete;
  UploadSink& operator=(const UploadSink&) = delete;
  // On a worker: n bytes of chunk k.
  void write(int k, std::size_t n) {
    if (error) return;
    const char* p = chunks[k].data();
    hash.update(p, n);
    for (std::size_t done = 0; done < n;) {
      ssize_t w = ::write(fd, p + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        error = w < 0 ? errno : EIO;
        return;
      }
      done += static_cast<std::size_t>(w);
    }
    size += n;
    if (size - flushing >= kWritebackBytes) {
      ::sync_file_range(fd, static_cast<off64_t>(flushing), static_cast<off64_t>(size - flushing), SYNC_FILE_RANGE_WRITE);
      flushing = size;
    }
  }
};

// The memory that request bodies may hold at once, over every connection,
// and a share of it per client address: a body is charged as its bytes
// arrive and given back once its answer is written, so neither many slow
// bodies nor one client's can take the host's memory or the others' turn.
struct BodyBudget {
  std::uint64_t limit = 0;
  std::uint64_t per_client = 0;  // a quarter of the limit, but never less than one whole body
  std::uint64_t used = 0;
  std::map<std::string, std::uint64_t> by_client;
  void set(std::uint64_t total, std::uint64_t largest_body) {
    limit = total;
    per_client = std::max(total / 4, std::min(largest_body, total));
  }
  std::uint64_t client_limit() const { return std::max<std::uint64_t>(per_client, 1); }
  bool charge(const std::string& client, std::uint64_t n) {
    std::uint64_t& mine = by_client[client];
    if (n > limit - std::min(used, limit) || n > client_limit() - std::min(mine, client_limit())) {
      if (mine == 0) by_client.erase(client);
      return false;
    }
    used += n;
    mine += n;
    return true;
  }
  void release(const std::string& client, std::uint64_t n) {
    if (n == 0) return;
    used -= n;
    auto it = by_client.find(client);
    if (it != by_client.end() && (it->second -= n) == 0) by_client.erase(it);
  }
};

// What one request holds of the budget, until it is dropped.
class BodyCharge {
 public:
  BodyCharge() = default;
  BodyCharge(BodyBudget* budget, std::string client, std::uint64_t n) : budget_(budget), client_(std::move(client)), n_(n) {}
  BodyCharge(BodyCharge&& o) noexcept : budget_(o.budget_), client_(std::move(o.client_)), n_(std::exchange(o.n_, 0)) {}
  BodyCharge& operator=(BodyCharge&& o) noexcept {
    if (this != &o) {
      reset();
      budget_ = o.budget_;
      client_ = std::move(o.client_);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~BodyCharge() { reset(); }
  void reset() {
    if (budget_) budget_->release(client_, n_);
    n_ = 0;
  }

 private:
  BodyBudget* budget_ = nullptr;
  std::string client_;
  std::uint64_t n_ = 0;
};

// A string body charged against a BodyBudget as it arrives; over it,
// reading fails with boost::asio::error::no_buffer_space.
struct BudgetedStringBody {
  struct value_type {
    std::string text;
    BodyBudget* budget = nullptr;
    std::string client;
    std::uint64_t charged = 0;
    value_type() = default;
    value_type(const value_type&) = delete;
    value_type& operator=(const value_type&) = delete;
    ~value_type() {
      if (budget) budget->release(client, charged);
    }
    // Refused: what it held is given back at once, not after the connection lingers.
    void drop() {
      if (budget) budget->release(client, charged);
      charged = 0;
      std::string().swap(text);
    }
    // The charge passes to the request, to be held until its answer is written.
    BodyCharge take_charge() { return BodyCharge(budget, client, std::exchange(charged, 0)); }
  };
  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(boost::beast::http::header<isRequest, Fields>&, value_type& body) : body_(body) {}
    void init(const boost::optional<std::uint64_t>&, boost::beast::error_code& ec) { ec = {}; }
    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec) {
      std::size_t n = boost::beast::buffer_bytes(buffers);
      if (body_.budget && !body_.budget->charge(body_.client, n)) {
        ec = boost::asio::error::no_buffer_space;
        return 0;
      }
      body_.charged += n;
      for (auto b : boost::beast::buffers_range_ref(buffers)) body_.text.append(static_cast<const char*>(b.data()), b.size());
      ec = {};
      return n;
    }
    void finish(boost::beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

// Path (decoded segment by segment) and query of req.target.
void parse_target(Request& req);
// Header names lowercased; repeated fields joined with ", ".
void copy_headers(const boost::beast::http::fields& fields, Request& req);

// The two kinds of connection a session runs over (instantiated in wire.cpp).
using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;
inline boost::beast::tcp_stream& lowest(boost::beast::tcp_stream& s) { return s; }
inline boost::beast::tcp_stream& lowest(TlsStream& s) { return s.next_layer(); }

// Callers pass a named Response: GCC 12 destroys temporaries inside a
// co_await expression twice.
template <class Stream>
boost::asio::awaitable<void> write_simple(Stream& stream, const Response& r, bool keep_alive);
// After refusing a body we did not read: drain it for a moment, then close.
template <class Stream>
boost::asio::awaitable<void> linger(Stream& stream);
// A file (or part of it) as the body; false when it was cut short.
template <class Stream>
boost::asio::awaitable<bool> write_file(Stream& stream, const Response& r, bool keep_alive,
                                        std::chrono::milliseconds timeout);

}  // namespace cpn::http
