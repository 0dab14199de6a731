#include "cpn/orchestrator/work_queue.hpp"

#include <algorithm>
#include <vector>

namespace cpn::orchestrator {

WorkQueue::WorkQueue(const Clock& clock, std::chrono::milliseconds base_delay, std::chrono::milliseconds max_delay)
    : clock_(clock), base_(base_delay), cap_(std::max(base_delay, max_delay)) {}

void WorkQueue::add(const std::string& key) {
  waiting_.erase(key);  // due now: an earlier time than any it waited for
  if (!dirty_.insert(key).second) return;
  if (processing_.count(key)) return;  // queued again by done()
  queue_.push_back(key);
}

void WorkQueue::resync(const std::string& key) {
  if (!waiting_.count(key)) add(key);
}

void WorkQueue::add_after(const std::string& key, std::chrono::milliseconds delay) {
  if (delay.count() <= 0) return add(key);
  if (dirty_.count(key)) return;  // already due: sooner than this
  TimePoint at = clock_.now() + delay;
  auto [it, inserted] = waiting_.emplace(key, at);
  if (!inserted) it->second = std::min(it->second, at);
}

void WorkQueue::add_rate_limited(const std::string& key) {
  // Marked due while its failing work ran (by that work's own commits): the backoff wins.
  if (processing_.count(key)) dirty_.erase(key);
  int n = failures_[key]++;
  ++retries_;
  auto delay = base_ * (std::int64_t{1} << std::min(n, 30));
  add_after(key, std::min(cap_, std::chrono::duration_cast<std::chrono::milliseconds>(delay)));
}

void WorkQueue::forget(const std::string& key) { failures_.erase(key); }

int WorkQueue::failures(const std::string& key) const {
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

void WorkQueue::promote_due() {
  TimePoint now = clock_.now();
  // Due in time order, so a key that waited longer is worked first.
  std::vector<std::pair<TimePoint, std::string>> due;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (it->second <= now) {
      due.emplace_back(it->second, it->first);
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  std::sort(due.begin(), due.end());
  for (const auto& [at, key] : due) add(key);
}

std::optional<std::string> WorkQueue::get() {
  promote_due();
  while (!queue_.empty()) {
    std::string key = std::move(queue_.front());
    queue_.pop_front();
    if (!dirty_.count(key)) continue;
    dirty_.erase(key);
    processing_.insert(key);
    return key;
  }
  return std::nullopt;
}

void WorkQueue::done(const std::string& key) {
  processing_.erase(key);
  if (dirty_.count(key)) queue_.push_back(key);
}

std::optional<WorkQueue::TimePoint> WorkQueue::next_due() const {
  std::optional<TimePoint> out;
  for (const auto& [key, at] : waiting_)
    if (!out || at < *out) out = at;
  return out;
}

}  // namespace cpn::orchestrator
