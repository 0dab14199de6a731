// The HTTP conventions every endpoint shares, checked through the real
// daemon: problem+json errors, preconditions, idempotency, pagination,
// selectors, YAML, limits.
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>

#include "support/daemon.hpp"
#include "support/raw.hpp"

using namespace cpn;

namespace {

const Json kSite = {{"id", "edge-test"}, {"tier", "edge"}, {"city", "Shenzhen"}, {"labels", {{"zone", "a"}}}};

std::string seq(test::Daemon& d) { return d.anonymous().get("/readyz").json()["resourceVersion"]; }

}  // namespace

TEST_CASE("errors are problem+json naming the field, and change nothing", "[api]") {
  test::Daemon d;
  auto op = d.as("operator");
  std::string before = seq(d);

  auto unknown_route = op.get("/v1/nowhere");
  CHECK(unknown_route.status == 404);
  CHECK(unknown_route.header("content-type") == "application/problem+json");
  Json p = unknown_route.json();
  CHECK(p["status"] == 404);
  CHECK(p.contains("title"));
  CHECK(p.contains("type"));
  CHECK(p["request_id"] == unknown_route.header("x-request-id"));

  auto not_allowed = op.request("PATCH", "/v1/topology");
  CHECK(not_allowed.status == 405);
  CHECK(not_allowed.header("allow") == "GET, POST");

  auto media = op.request("POST", "/v1/sites", "id: x", {{"Content-Type", "text/plain"}});
  CHECK(media.status == 415);

  auto malformed = op.request("POST", "/v1/sites", "{\"id\": \"x\",\n \"tier\": }");
  CHECK(malformed.status == 400);
  CHECK_THAT(malformed.json()["detail"].get<std::string>(), Catch::Contains("line 2"));

  Json bad = kSite;
  bad["colour"] = "blue";
  bad["tier"] = "cloud";
  bad.erase("city");
  auto invalid = op.post("/v1/sites", bad);
  CHECK(invalid.status == 422);
  std::set<std::string> ptrs;
  for (const auto& e : Json(invalid.json()["errors"])) ptrs.insert(e["pointer"].get<std::string>());
  CHECK(ptrs == std::set<std::string>{"/colour", "/tier", "/city"});

  auto no_site = op.post("/v1/nodes", {{"id", "n1"}, {"site", "nowhere"}, {"arch", "x86_64"}, {"cpu", 4}, {"memory", 8}});
  CHECK(no_site.status == 422);
  CHECK(no_site.json()["errors"][0]["pointer"] == "/site");

  auto bad_limit = op.get("/v1/nodes?limit=0");
  CHECK(bad_limit.status == 400);
  CHECK(bad_limit.json()["errors"][0]["pointer"] == "/query/limit");

  CHECK(seq(d) == before);
}

TEST_CASE("PUT, PATCH and DELETE honour If-Match, objects carry an ETag", "[api]") {
  test::Daemon d;
  auto op = d.as("operator");
  auto created = op.post("/v1/sites", kSite);
  REQUIRE(created.status == 201);
  CHECK(created.header("location") == "/v1/sites/edge-test");
  std::string rv = created.json()["metadata"]["resourceVersion"];
  CHECK(created.header("etag") == "\"" + rv + "\"");

  auto dup = op.post("/v1/sites", kSite);
  CHECK(dup.status == 409);

  Json changed = kSite;
  changed["city"] = "Dongguan";
  auto stale = op.put("/v1/sites/edge-test", changed, {{"If-Match", "\"999999\""}});
  CHECK(stale.status == 412);
  CHECK(op.get("/v1/sites/edge-test").json()["city"] == "Shenzhen");

  auto ok = op.put("/v1/sites/edge-test", changed, {{"If-Match", created.header("etag")}});
  REQUIRE(ok.status == 200);
  std::string etag2 = ok.header("etag");
  CHECK(etag2 != created.header("etag"));

  // what a GET returns can be PUT back as is
  auto got = op.get("/v1/sites/edge-test");
  CHECK(op.put("/v1/sites/edge-test", got.json(), {{"If-Match", got.header("etag")}}).status == 200);

  auto patch = op.request("PATCH", "/v1/sites/edge-test", R"({"labels": {"zone": "b"}})",
                          {{"Content-Type", "application/merge-patch+json"}, {"If-Match", created.header("etag")}});
  CHECK(patch.status == 412);
  patch = op.request("PATCH", "/v1/sites/edge-test", R"({"labels": {"zone": "b"}})",
                     {{"Content-Type", "application/merge-patch+json"}});
  REQUIRE(patch.status == 200);
  CHECK(patch.json()["labels"]["zone"] == "b");
  CHECK(patch.json()["city"] == "Dongguan");

  Json other = kSite;
  other["id"] = "other";
  auto mismatch = op.put("/v1/sites/edge-test", other);
  CHECK(mismatch.status == 422);
  CHECK(mismatch.json()["errors"][0]["pointer"] == "/id");

  CHECK(op.del("/v1/sites/edge-test", {{"If-Match", created.header("etag")}}).status == 412);
  CHECK(op.del("/v1/sites/edge-test", {{"If-Match", patch.header("etag")}}).status == 204);
  CHECK(op.get("/v1/sites/edge-test").status == 404);
}

TEST_CASE("a creating POST with an Idempotency-Key is done once", "[api]") {
  test::Daemon d;
  auto admin = d.admin();
  Json body = {{"name", "ci"}, {"role", "agent"}};
  auto first = admin.post("/v1/tokens", body, {{"Idempotency-Key", "k-1"}});
  REQUIRE(first.status == 201);
  auto again = admin.post("/v1/tokens", body, {{"Idempotency-Key", "k-1"}});
  CHECK(again.status == 201);
  CHECK(again.json()["metadata"]["id"] == first.json()["metadata"]["id"]);  // the stored answer: no second token
  CHECK_FALSE(again.json().contains("secret"));  // shown once; the store keeps no secret
  CHECK(again.header("idempotent-replayed") == "true");
  auto as_yaml = admin.post("/v1/tokens", body, {{"Idempotency-Key", "k-1"}, {"Accept", "application/yaml"}});
  CHECK(as_yaml.header("content-type") == "application/yaml");
  CHECK(as_yaml.header("etag") == again.header("etag"));
  CHECK_FALSE(again.header("etag").empty());
  CHECK(test::read_file(d.data() + "/cpnd.db").find(first.json()["secret"].get<std::string>()) == std::string::npos);
  CHECK(admin.get("/v1/tokens").json()["items"].size() == 2);  // admin + ci

  Json other = {{"name", "other"}, {"role", "agent"}};
  auto conflict = admin.post("/v1/tokens", other, {{"Idempotency-Key", "k-1"}});
  CHECK(conflict.status == 422);
  CHECK(conflict.json()["errors"][0]["pointer"] == "/header/Idempotency-Key");

  // survives a restart
  d.restart();
  auto after = d.admin().post("/v1/tokens", body, {{"Idempotency-Key", "k-1"}});
  CHECK(after.status == 201);
  CHECK(after.body == again.body);

  // a failed request stores nothing: the key can be used again once fixed
  auto op = d.as("operator");
  Json bad = kSite;
  bad["tier"] = "moon";
  CHECK(op.post("/v1/sites", bad, {{"Idempotency-Key", "k-2"}}).status == 422);
  CHECK(op.post("/v1/sites", kSite, {{"Idempotency-Key", "k-2"}}).status == 201);
}

TEST_CASE("lists paginate with limit and continue, and filter by label selector", "[api]") {
  test::Daemon d({.dev = true});
  auto op = d.as("operator");
  auto all = op.get("/v1/nodes");
  REQUIRE(all.status == 200);
  std::size_t total = all.json()["items"].size();
  REQUIRE(total > 20);
  CHECK(all.json()["continue"].is_null());

  std::vector<std::string> seen;
  std::string cont;
  int pages = 0;
  do {
    auto page = op.get("/v1/nodes?limit=7" + (cont.empty() ? "" : "&continue=" + cont));
    REQUIRE(page.status == 200);
    for (const auto& n : Json(page.json()["items"])) seen.push_back(n["id"]);
    cont = page.json()["continue"].is_null() ? "" : page.json()["continue"].get<std::string>();
    ++pages;
  } while (!cont.empty() && pages < 100);
  CHECK(seen.size() == total);
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());

  auto zone_a = op.get("/v1/nodes?labelSelector=zone%3Da");
  REQUIRE(zone_a.status == 200);
  REQUIRE_FALSE(zone_a.json()["items"].empty());
  for (const auto& n : Json(zone_a.json()["items"])) CHECK(n["labels"]["zone"] == "a");
  auto not_a = op.get("/v1/nodes?labelSelector=zone!%3Da");
  CHECK(zone_a.json()["items"].size() + not_a.json()["items"].size() == total);

  auto arm = op.get("/v1/nodes?arch=aarch64");
  for (const auto& n : Json(arm.json()["items"])) CHECK(n["arch"] == "aarch64");
  CHECK(op.get("/v1/nodes?labelSelector=zone%20in%20a").status == 400);
  CHECK(op.get("/v1/nodes?continue=zz").status == 400);
}

TEST_CASE("bodies may be YAML and answers are YAML on request", "[api]") {
  test::Daemon d;
  auto op = d.as("operator");
  auto created = op.request("POST", "/v1/sites", "id: edge-yaml\ntier: edge\ncity: Foshan\nlabels: {zone: b}\n",
                            {{"Content-Type", "application/yaml"}});
  REQUIRE(created.status == 201);
  auto yaml = op.request("GET", "/v1/sites/edge-yaml", "", {{"Accept", "application/yaml"}});
  CHECK(yaml.header("content-type") == "application/yaml");
  auto parsed = parse_document(yaml.body, Format::yaml);
  REQUIRE(parsed);
  CHECK((*parsed)["city"] == "Foshan");
  CHECK(*parsed == op.get("/v1/sites/edge-yaml").json());
  auto bad = op.request("POST", "/v1/sites", "id: [unclosed\n", {{"Content-Type", "application/yaml"}});
  CHECK(bad.status == 400);
}

TEST_CASE("the body, header and connection limits are enforced at the session", "[api]") {
  test::Daemon d({.env = {{"CPND_MAX_BODY_BYTES", "4096"}, {"CPND_MAX_CONNECTIONS", "3"},
                          {"CPND_IDLE_TIMEOUT_S", "1"}}});
  auto op = d.as("operator");
  Json big = kSite;
  big["labels"]["note"] = std::string(8000, 'x');
  auto r = op.post("/v1/sites", big);
  CHECK(r.status == 413);
  CHECK(r.header("content-type") == "application/problem+json");

  auto huge_header = op.request("GET", "/v1/sites", "", {{"X-Padding", std::string(20000, 'h')}});
  CHECK(huge_header.status == 431);

  {
    // idle keep-alive connections are closed after the idle timeout
    test::RawConnection idle(d.url());
    REQUIRE(idle.connected());
    CHECK(idle.closed_within(4000));
  }
  {
    test::RawConnection a(d.url()), b(d.url()), c(d.url());
    a.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    a.read_until("ok", 2000);
    b.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    b.read_until("ok", 2000);
    c.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    c.read_until("ok", 2000);
    test::RawConnection over(d.url());
    CHECK_THAT(over.read_until("\r\n\r\n", 2000), Catch::StartsWith("HTTP/1.1 503"));
  }
}

TEST_CASE("hostile requests get a 4xx and leave nothing behind", "[api]") {
  test::Daemon d;
  auto op = d.as("operator");
  auto designer = d.as("designer");
  std::string before = seq(d);

  // bytes that are not UTF-8, in the path and the request id
  auto bad_path = op.request("GET", "/v1/sites/%FF%FE");
  CHECK(bad_path.status == 404);
  CHECK(bad_path.header("content-type") == "application/problem+json");
  auto bad_id = op.request("GET", "/v1/nowhere", "", {{"X-Request-Id", "abc\xff<3>forged"}});
  CHECK(bad_id.status == 404);
  CHECK(bad_id.header("x-request-id") == "abc3forged");
  {
    // a newline inside a header is not HTTP: 400, and no forged log line
    test::RawConnection raw(d.url());
    raw.send("GET /livez HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\n<3>forged\r\n\r\n");
    CHECK_THAT(raw.read_until("\r\n\r\n", 2000), Catch::StartsWith("HTTP/1.1 400"));
    test::RawConnection path(d.url());
    path.send("GET /v1/x%0A%3C3%3Eforged HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_THAT(path.read_until("\r\n\r\n", 2000), Catch::StartsWith("HTTP/1.1 404"));
    CHECK(d.stderr_text().find("\n<3>forged") == std::string::npos);
  }
  CHECK(op.request("POST", "/v1/sites", "id: \xff\xfe\ntier: edge\ncity: x\n", {{"Content-Type", "application/yaml"}})
            .status == 400);

  // nesting and string size are bounded before anything recurses on them
  std::string deep = R"({"id":"x","tier":"edge","city":"x","labels":)" + std::string(100000, '[') + "]";
  CHECK(op.request("POST", "/v1/sites", deep).status == 400);
  auto long_id = op.post("/v1/sites", {{"id", std::string(500000, 'a')}, {"tier", "edge"}, {"city", "x"}});
  CHECK(long_id.status == 400);
  CHECK(long_id.json()["errors"][0]["pointer"] == "/id");

  // a made-up method gets 405 and does not grow /metrics
  test::RawConnection odd(d.url());
  odd.send("FROB /v1/sites HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_THAT(odd.read_until("\r\n\r\n", 2000), Catch::StartsWith("HTTP/1.1 405"));
  CHECK(d.anonymous().get("/metrics").body.find("FROB") == std::string::npos);

  // preconditions: * needs the object to exist; a bad resourceVersion in a body is refused
  CHECK(designer.request("PUT", "/v1/files/new.bin", "data",
                                 {{"If-Match", "*"}, {"Content-Type", "application/octet-stream"}})
            .status == 412);
  REQUIRE(op.post("/v1/sites", kSite).status == 201);
  Json with_rv = kSite;
  with_rv["metadata"] = {{"resourceVersion", "not-a-version"}};
  auto rv = op.put("/v1/sites/edge-test", with_rv);
  CHECK(rv.status == 400);
  CHECK(rv.json()["errors"][0]["pointer"] == "/metadata/resourceVersion");
  CHECK(std::stoll(seq(d)) == std::stoll(before) + 1);  // only the one site
}

TEST_CASE("an unauthenticated upload is refused before its body is read", "[api]") {
  test::Daemon d;
  test::RawConnection c(d.url());
  c.send("PUT /v1/files/junk.bin HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
         "Content-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n");
  std::string answer = c.read_until("\r\n\r\n", 3000);
  CHECK_THAT(answer, Catch::StartsWith("HTTP/1.1 401"));
  CHECK(answer.find("100 Continue") == std::string::npos);
  std::size_t temp_files = 0;
  for ([[maybe_unused]] const auto& f : std::filesystem::directory_iterator(d.data() + "/blobs/tmp")) ++temp_files;
  CHECK(temp_files == 0);
}
