// The wire side of a session, apart from its loop: reading a request's
// target and headers, writing answers (whole, from a file, or refusing and
// draining a body). Private to the http module.
#pragma once

#include <chrono>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/fields.hpp>

#include "cpn/http/message.hpp"

namespace cpn::http {

// Path (decoded segment by segment) and query of req.target.
void parse_target(Request& req);
// Header names lowercased; repeated fields joined with ", ".
void copy_headers(const boost::beast::http::fields& fields, Request& req);

// Callers pass a named Response: GCC 12 destroys temporaries inside a
// co_await expression twice.
boost::asio::awaitable<void> write_simple(boost::beast::tcp_stream& stream, const Response& r, bool keep_alive);
// After refusing a body we did not read: drain it for a moment, then close.
boost::asio::awaitable<void> linger(boost::beast::tcp_stream& stream);
// A file (or part of it) as the body; false when it was cut short.
boost::asio::awaitable<bool> write_file(boost::beast::tcp_stream& stream, const Response& r, bool keep_alive,
                                        std::chrono::milliseconds timeout);

}  // namespace cpn::http
