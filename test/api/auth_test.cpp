#include <sys/stat.h>

#include <set>

#include <catch2/catch.hpp>

#include "support/daemon.hpp"
#include "support/raw.hpp"

using namespace cpn;

namespace {

std::string fill_params(std::string path) {
  std::string out;
  bool in = false;
  for (char c : path) {
    if (c == '{') {
      in = true;
      out += "x";
    } else if (c == '}') {
      in = false;
    } else if (!in) {
      out += c;
    }
  }
  return out;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

TEST_CASE("every route in the OpenAPI document enforces its roles", "[api][auth]") {
  test::Daemon d;
  auto doc = d.anonymous().get("/openapi.json");
  REQUIRE(doc.status == 200);
  Json api = doc.json();
  REQUIRE(api["paths"].size() > 20);
  const std::vector<std::string> roles = {"admin", "operator", "designer", "customer", "agent"};
  std::map<std::string, std::string> tokens;
  for (const auto& r : roles) tokens[r] = r == "admin" ? d.admin_token() : d.token(r);
  int checked = 0;
  for (const auto& [path, ops] : api["paths"].items()) {
    for (const auto& [method, op] : ops.items()) {
      std::string target = fill_params(path);
      std::string m = upper(method);
      bool is_public = op["security"].empty();
      INFO(m << " " << target);
      auto anon = d.anonymous().request(m, target);
      if (is_public) {
        CHECK(anon.status != 401);
        continue;
      }
      CHECK(anon.status == 401);
      CHECK(anon.header("content-type") == "application/problem+json");
      CHECK(anon.header("www-authenticate").find("Bearer") == 0);
      auto bad = client::HttpClient(d.url(), "cpn_not-a-token").request(m, target);
      CHECK(bad.status == 401);
      std::set<std::string> allowed;
      for (const auto& r : op["x-roles"]) allowed.insert(r.get<std::string>());
      CHECK(allowed.count("admin") == 1);
      for (const auto& role : roles) {
        INFO("role " << role);
        auto r = client::HttpClient(d.url(), tokens[role]).request(m, target);
        if (allowed.count(role)) {
          CHECK(r.status != 401);
          CHECK(r.status != 403);
        } else {
          CHECK(r.status == 403);
        }
      }
      ++checked;
    }
  }
  CHECK(checked > 20);
}

TEST_CASE("tokens are created, listed without secrets and revoked by admins", "[api][auth]") {
  test::Daemon d;
  auto admin = d.admin();
  auto created = admin.post("/v1/tokens", {{"name", "portal"}, {"role", "operator"}, {"tenant", "acme"}});
  REQUIRE(created.status == 201);
  Json tok = created.json();
  std::string secret = tok["secret"];
  std::string id = tok["metadata"]["id"];
  CHECK(tok["role"] == "operator");
  CHECK(tok["tenant"] == "acme");
  CHECK_FALSE(tok.contains("sha256"));
  CHECK(created.header("location") == "/v1/tokens/" + id);

  client::HttpClient op(d.url(), secret);
  CHECK(op.get("/v1/nodes").status == 200);
  CHECK(op.get("/v1/tokens").status == 403);

  auto list = admin.get("/v1/tokens");
  REQUIRE(list.status == 200);
  for (const auto& t : Json(list.json()["items"])) {
    CHECK_FALSE(t.contains("sha256"));
    CHECK_FALSE(t.contains("secret"));
  }
  // the database holds only hashes
  CHECK(test::read_file(d.data() + "/cpnd.db").find(secret) == std::string::npos);

  auto bad = admin.post("/v1/tokens", {{"name", "x"}, {"role", "root"}});
  CHECK(bad.status == 422);
  CHECK(bad.json()["errors"][0]["pointer"] == "/role");

  CHECK(admin.del("/v1/tokens/" + id).status == 200);
  CHECK(op.get("/v1/nodes").status == 401);
  CHECK(admin.del("/v1/tokens/admin").status == 409);
}

TEST_CASE("the admin token comes from CPND_ADMIN_TOKEN, else is generated once with mode 0600", "[api][auth]") {
  SECTION("environment") {
    test::Daemon d({.env = {{"CPND_ADMIN_TOKEN", "cpn_from_env_0123456789"}}});
    CHECK(client::HttpClient(d.url(), "cpn_from_env_0123456789").get("/v1/tokens").status == 200);
  }
  SECTION("generated") {
    test::Daemon d;
    struct stat st {};
    REQUIRE(::stat((d.data() + "/admin.token").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(d.stdout_text().find(d.admin_token()) != std::string::npos);
    CHECK(d.stderr_text().find(d.admin_token()) == std::string::npos);  // never in the log
    d.restart();
    // printed once: the second start does not print it again
    auto out = d.stdout_text();
    CHECK(out.find(d.admin_token()) == out.rfind(d.admin_token()));
    CHECK(d.admin().get("/v1/tokens").status == 200);
  }
}

TEST_CASE("a refused request without a body keeps its keep-alive connection", "[api][auth]") {
  test::Daemon d;
  test::RawConnection c(d.url());
  c.send("GET /v1/nodes HTTP/1.1\r\nHost: x\r\n\r\nGET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string both = c.read_until("\"ok\"", 3000);
  CHECK_THAT(both, Catch::StartsWith("HTTP/1.1 401"));
  CHECK_THAT(both, Catch::Contains("HTTP/1.1 200"));
}
