#include "cpn/auth/limits.hpp"

#include <algorithm>
#include <cmath>

namespace cpn::auth {

std::optional<double> RateLimiter::take(const std::string& token_id, const std::string& role, Clock::time_point now) {
  auto rate = limits_.by_role.find(role);
  if (rate == limits_.by_role.end() || rate->second.per_second <= 0) return std::nullopt;
  const Rate& r = rate->second;
  if (now - swept_ > std::chrono::minutes(1)) {
    // A bucket that has refilled is the same as no bucket.
    std::erase_if(buckets_, [&](const auto& kv) {
      auto idle = std::chrono::duration<double>(now - kv.second.at).count();
      return kv.second.tokens + idle * kv.second.rate.per_second >= kv.second.rate.burst;
    });
    swept_ = now;
  }
  auto [it, fresh] = buckets_.try_emplace(token_id, Bucket{r.burst, now, r});
  Bucket& b = it->second;
  b.rate = r;
  if (!fresh) {
    double elapsed = std::chrono::duration<double>(now - b.at).count();
    b.tokens = std::min(r.burst, b.tokens + elapsed * r.per_second);
    b.at = now;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return std::nullopt;
  }
  return (1 - b.tokens) / r.per_second;
}

}  // namespace cpn::auth
