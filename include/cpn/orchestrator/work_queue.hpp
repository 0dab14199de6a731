// A work queue of keys (deployment ids), after client-go's workqueue: a key
// is queued once however often it is added; a key being worked is never
// handed out again until done(), and one added meanwhile is queued again
// then; a key whose work failed comes back after a per-key exponential
// backoff, reset by forget() when its work succeeds. So one failing key
// waits out its own backoff and never delays another.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "cpn/core/clock.hpp"

namespace cpn::orchestrator {

class WorkQueue {
 public:
  using TimePoint = std::chrono::system_clock::time_point;
  WorkQueue(const Clock& clock, std::chrono::milliseconds base_delay, std::chrono::milliseconds max_delay);

  // Due now, even if it waits out a backoff (something changed: try again).
  void add(const std::string& key);
  // The periodic resync: due now unless it waits out a backoff.
  void resync(const std::string& key);
  // Queued once `delay` has passed (the earliest of several wins).
  void add_after(const std::string& key, std::chrono::milliseconds delay);
  // After this key's backoff: base × 2^(failures so far), up to the cap;
  // called while the key is worked, it also drops what made it due meanwhile.
  void add_rate_limited(const std::string& key);
  void forget(const std::string& key);
  int failures(const std::string& key) const;

  // The next key due, now marked as being worked; nothing when none is.
  std::optional<std::string> get();
  void done(const std::string& key);

  // When the earliest waiting key falls due (nothing when none waits).
  std::optional<TimePoint> next_due() const;
  // Keys due, being worked or waiting.
  std::size_t depth() const { return queue_.size() + waiting_.size() + processing_.size(); }
  std::uint64_t retries() const { return retries_; }

 private:
  void promote_due();

  const Clock& clock_;
  std::chrono::milliseconds base_, cap_;
  std::deque<std::string> queue_;           // due, in order
  std::set<std::string> dirty_;             // needs work (queued, or added while being worked)
  std::set<std::string> processing_;        // being worked
  std::map<std::string, TimePoint> waiting_;  // key -> when it falls due
  std::map<std::string, int> failures_;
  std::uint64_t retries_ = 0;
};

}  // namespace cpn::orchestrator
