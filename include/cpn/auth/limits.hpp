// Rate limits per token and quotas per tenant: what keeps one client from
// taking the daemon, or the inventory, from the others. Over a limit is a
// 429 with Retry-After; the numbers are configured (`limits:`), with
// defaults a real operator would start from.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>

namespace cpn::auth {

struct Rate {
  double per_second = 0;
  double burst = 0;
};

// By role; a role without an entry (admin) is not limited.
struct RateLimits {
  std::map<std::string, Rate> by_role = {
      {"customer", {20, 40}}, {"designer", {20, 40}}, {"operator", {200, 400}}, {"agent", {500, 1000}}};
};

struct Quotas {
  int max_open_orders = 100;         // per tenant, orders not yet finished
  int max_active_deployments = 20;   // per tenant, deployments not yet finished
  int max_idempotency_keys = 10000;  // per tenant, kept 24 hours
};

// Token buckets keyed by token id (as Envoy's local rate limit and
// Kubernetes' API priority and fairness do per flow). Buckets of tokens
// idle long enough to be full again are forgotten, so the map stays small.
class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RateLimiter(RateLimits limits) : limits_(std::move(limits)) {}
  void set_limits(RateLimits limits) { limits_ = std::move(limits); }

  // Takes one request from the token's bucket: nullopt when it may go on,
  // else the seconds until it may (for Retry-After).
  std::optional<double> take(const std::string& token_id, const std::string& role, Clock::time_point now);

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point at;
    Rate rate;
  };
  RateLimits limits_;
  std::unordered_map<std::string, Bucket> buckets_;
  Clock::time_point swept_{};
};

}  // namespace cpn::auth
