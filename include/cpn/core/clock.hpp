// Time is injected (Clock&) so reconcilers, policies and billing can be
// tested by advancing time by hand.
#pragma once

#include <chrono>
#include <string>

namespace cpn {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point now() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override { return std::chrono::system_clock::now(); }
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::chrono::system_clock::time_point t = {}) : t_(t) {}
  std::chrono::system_clock::time_point now() const override { return t_; }
  void advance(std::chrono::milliseconds d) { t_ += d; }

 private:
  std::chrono::system_clock::time_point t_;
};

// RFC 3339 UTC with milliseconds: 2026-11-25T14:56:17.123Z
std::string format_time(std::chrono::system_clock::time_point t);

}  // namespace cpn
