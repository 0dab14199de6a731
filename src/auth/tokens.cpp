#include "cpn/auth/tokens.hpp"

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "cpn/core/crypto.hpp"
#include "cpn/schema/schema.hpp"

namespace cpn::auth {
namespace {

resource::Rules token_rules() {
  resource::Rules r;
  r.kind = kToken;
  r.schema = "token";
  r.title = "token";
  r.id_of = [](const Json& b) { return b["id"].get<std::string>(); };
  r.decorate = [](Json& out, const engine::Object&, const engine::Engine&) { out.erase("sha256"); };
  return r;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

Tokens::Tokens(engine::Engine& engine) : engine_(engine), tokens_(engine, token_rules()) {
  reindex();
  engine_.on_commit([this](const std::vector<engine::Event>& events) {
    for (const auto& e : events)
      if (e.kind == kToken) return reindex();
  });
}

void Tokens::reindex() {
  by_hash_.clear();
  for (const engine::Object* t : engine_.list(kToken))
    if (!t->body.contains("revoked")) by_hash_[t->body.value("sha256", "")] = t->id;
}

std::optional<Principal> Tokens::authenticate(std::string_view secret) const {
  if (secret.empty()) return std::nullopt;
  auto it = by_hash_.find(sha256_hex(secret));
  if (it == by_hash_.end()) return std::nullopt;
  const engine::Object* t = engine_.find(kToken, it->second);
  if (!t) return std::nullopt;
  if (t->body.contains("expires") && t->body["expires"].get<std::string>() < engine_.now()) return std::nullopt;
  return Principal{t->id, t->body.value("name", ""), t->body.value("role", ""), t->body.value("tenant", "")};
}

bool Tokens::active(const std::string& token_id) const {
  const engine::Object* t = engine_.find(kToken, token_id);
  if (!t || t->body.contains("revoked")) return false;
  return !(t->body.contains("expires") && t->body["expires"].get<std::string>() < engine_.now());
}

Result<std::optional<std::string>> Tokens::bootstrap_admin(const std::string& data_dir,
                                                           const std::optional<std::string>& env_secret) {
  std::string path = data_dir + "/admin.token";
  std::optional<std::string> generated;
  std::string secret;
  if (env_secret && !env_secret->empty()) {
    secret = *env_secret;
  } else if (std::ifstream in(path); in) {
    std::stringstream ss;
    ss << in.rdbuf();
    secret = trim(ss.str());
  }
  if (secret.empty()) {
    secret = "cpn_" + random_hex(24);
    generated = secret;
    std::string tmp = path + ".tmp";
    {
      mode_t old = ::umask(077);
      std::ofstream out(tmp, std::ios::trunc);
      ::umask(old);
      if (!out) return fail(Error::internal(fmt::format("cannot write '{}'", tmp)));
      out << secret << "\n";
    }
    ::chmod(tmp.c_str(), 0600);
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      return fail(Error::internal(fmt::format("cannot write '{}'", path)));
  }
  Json body = {{"id", "admin"}, {"name", "bootstrap admin"}, {"role", "admin"}, {"tenant", "system"},
               {"sha256", sha256_hex(secret)}};
  const engine::Object* existing = engine_.find(kToken, "admin");
  if (!existing || existing->body != body) {
    auto ev = engine_.commit({{engine::Change::Op::put, kToken, "admin", body, ""}});
    if (!ev) return fail(ev.error());
  }
  return generated;
}

Result<Json> Tokens::create(const Json& body) {
  if (auto s = schema::validate("token", body, "token"); !s) return fail(s.error());
  std::string id = "tok-" + random_hex(6);
  std::string secret = "cpn_" + random_hex(24);
  Json stored = {{"id", id},
                 {"name", body["name"]},
                 {"role", body["role"]},
                 {"tenant", body.value("tenant", "default")},
                 {"sha256", sha256_hex(secret)}};
  if (body.contains("expires_in_hours"))
    stored["expires"] =
        format_time(engine_.clock().now() + std::chrono::hours(body["expires_in_hours"].get<int>()));
  auto ev = engine_.commit({{engine::Change::Op::put, kToken, id, stored, ""}});
  if (!ev) return fail(ev.error());
  Json out = tokens_.render(*engine_.find(kToken, id));
  out["secret"] = secret;
  return out;
}

Result<Json> Tokens::revoke(const std::string& id) {
  if (id == "admin")
    return fail(Error::conflict("the bootstrap admin token cannot be revoked; rotate it with CPND_ADMIN_TOKEN or by "
                                "deleting DATA/admin.token and restarting"));
  return tokens_.update(
      id, std::nullopt,
      [&](Json& b) -> Status {
        if (!b.contains("revoked")) b["revoked"] = engine_.now();
        return {};
      },
      "TokenRevoked");
}

}  // namespace cpn::auth
