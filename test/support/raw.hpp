// A bare TCP connection for what the HTTP client hides: streamed
// responses, half-sent bodies, idle and over-limit connections.
#pragma once

#include <string>

namespace cpn::test {

class RawConnection {
 public:
  // url: http://127.0.0.1:PORT; from: the local address to connect from
  // (another of 127.0.0.0/8 is another client).
  explicit RawConnection(const std::string& url, const std::string& from = "");
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  void send(const std::string& data);
  // Reads until `marker` has arrived (returns all read so far), the peer
  // closes, or the timeout passes.
  std::string read_until(const std::string& marker, int timeout_ms);
  // True once the peer has closed the connection (within timeout).
  bool closed_within(int timeout_ms);
  const std::string& received() const { return buffer_; }

 private:
  int fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
};

}  // namespace cpn::test
