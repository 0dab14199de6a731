// Bearer tokens: each carries a role and a tenant. Only the SHA-256 of a
// secret is stored; the secret is shown once, when it is made.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>

#include "cpn/resource/collection.hpp"

namespace cpn::auth {

inline constexpr const char* kToken = "token";
inline constexpr const char* kRoles[] = {"admin", "operator", "designer", "customer", "agent"};

struct Principal {
  std::string token_id;
  std::string name;
  std::string role;
  std::string tenant;
};

// Customers reach only their own tenant's objects (orders, deployments);
// other roles reach every tenant's.
inline bool sees_tenant(const Principal& who, const std::string& tenant) {
  return who.role != "customer" || tenant == who.tenant;
}

class Tokens {
 public:
  explicit Tokens(engine::Engine& engine);

  // Makes sure an admin token exists: CPND_ADMIN_TOKEN (given here as
  // env_secret) wins, else DATA/admin.token, else a new one is generated,
  // written to DATA/admin.token (mode 0600) and returned so it can be
  // printed once.
  Result<std::optional<std::string>> bootstrap_admin(const std::string& data_dir,
                                                     const std::optional<std::string>& env_secret);

  std::optional<Principal> authenticate(std::string_view secret) const;
  // The token exists and is neither revoked nor expired.
  bool active(const std::string& token_id) const;

  // Returns the token object with its `secret` (shown this once).
  Result<Json> create(const Json& body);
  Result<Json> revoke(const std::string& id);
  resource::Collection& collection() { return tokens_; }

 private:
  void reindex();
  engine::Engine& engine_;
  resource::Collection tokens_;
  std::unordered_map<std::string, std::string> by_hash_;  // sha256 -> token id
};

}  // namespace cpn::auth
