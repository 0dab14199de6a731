// The wire side of a session, apart from its loop: reading a request's
// target and headers, writing answers (whole, from a file, or refusing and
// draining a body). Private to the http module.
#pragma once

#include <chrono>
#include <memory>

#include <boost/asio/awaitable.hpp>
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

// A request body written to a file and hashed (SHA-256) as it arrives, so
// a large upload is never read back on the one io thread.
struct HashingFileBody {
  struct value_type {
    boost::beast::file file;
    std::unique_ptr<Sha256> hash = std::make_unique<Sha256>();
    std::uint64_t size = 0;
  };
  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(boost::beast::http::header<isRequest, Fields>&, value_type& body) : body_(body) {}
    void init(const boost::optional<std::uint64_t>&, boost::beast::error_code& ec) { ec = {}; }
    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec) {
      std::size_t n = 0;
      for (auto b : boost::beast::buffers_range_ref(buffers)) {
        std::size_t written = body_.file.write(b.data(), b.size(), ec);
        body_.hash->update(b.data(), written);
        n += written;
        if (ec) break;
      }
      body_.size += n;
      return n;
    }
    void finish(boost::beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

// The memory that request bodies may hold at once, over every connection:
// a body is charged as it arrives (its whole Content-Length at once) and
// given back when it is dropped, so many slow large bodies cannot take the
// host's memory.
struct BodyBudget {
  std::uint64_t limit = 0;
  std::uint64_t used = 0;
  bool charge(std::uint64_t n) {
    if (n > limit - std::min(used, limit)) return false;
    used += n;
    return true;
  }
};

// A string body charged against a BodyBudget; over it, reading fails with
// boost::asio::error::no_buffer_space.
struct BudgetedStringBody {
  struct value_type {
    std::string text;
    BodyBudget* budget = nullptr;
    std::uint64_t charged = 0;
    value_type() = default;
    value_type(const value_type&) = delete;
    value_type& operator=(const value_type&) = delete;
    ~value_type() {
      if (budget) budget->used -= charged;
    }
  };
  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(boost::beast::http::header<isRequest, Fields>&, value_type& body) : body_(body) {}
    void init(const boost::optional<std::uint64_t>& length, boost::beast::error_code& ec) {
      ec = {};
      if (length && *length > 0) {
        if (!take(*length)) {
          ec = boost::asio::error::no_buffer_space;
          return;
        }
        prepaid_ = true;
        body_.text.reserve(static_cast<std::size_t>(*length));
      }
    }
    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec) {
      std::size_t n = boost::beast::buffer_bytes(buffers);
      if (!prepaid_ && !take(n)) {
        ec = boost::asio::error::no_buffer_space;
        return 0;
      }
      for (auto b : boost::beast::buffers_range_ref(buffers)) body_.text.append(static_cast<const char*>(b.data()), b.size());
      ec = {};
      return n;
    }
    void finish(boost::beast::error_code& ec) { ec = {}; }

   private:
    bool take(std::uint64_t n) {
      if (!body_.budget) return true;
      if (!body_.budget->charge(n)) return false;
      body_.charged += n;
      return true;
    }
    value_type& body_;
    bool prepaid_ = false;
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
