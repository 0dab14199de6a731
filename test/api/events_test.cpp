#include <catch2/catch.hpp>
#include <set>

#include "support/daemon.hpp"
#include "support/raw.hpp"

using namespace cpn;

TEST_CASE("the event log lists every change after a sequence number", "[api][events]") {
  test::Daemon d;
  auto op = d.as("operator");
  std::int64_t start = std::stoll(d.anonymous().get("/readyz").json()["resourceVersion"].get<std::string>());
  REQUIRE(op.post("/v1/sites", {{"id", "s1"}, {"tier", "edge"}, {"city", "Zhuhai"}}).status == 201);
  REQUIRE(op.request("PATCH", "/v1/sites/s1", R"({"city":"Zhongshan"})").status == 200);
  REQUIRE(op.del("/v1/sites/s1").status == 204);
  auto r = op.get("/v1/events?since=" + std::to_string(start));
  REQUIRE(r.status == 200);
  auto items = r.json()["items"];
  REQUIRE(items.size() == 3);
  CHECK(items[0]["type"] == "Added");
  CHECK(items[1]["type"] == "Modified");
  CHECK(items[1]["patch"] == Json{{"city", "Zhongshan"}});  // what changed, not the whole site
  CHECK_FALSE(items[1].contains("object"));
  CHECK(items[0]["object"]["city"] == "Zhuhai");
  CHECK(items[2]["type"] == "Deleted");
  CHECK(items[2]["seq"].get<std::int64_t>() == start + 3);
  CHECK(op.get("/v1/events?since=-1").status == 400);
  // token events never carry the hash
  for (const auto& e : Json(d.admin().get("/v1/events?kind=token").json()["items"]))
    for (const char* part : {"object", "patch"}) CHECK_FALSE(e.value(part, Json::object()).contains("sha256"));
}

TEST_CASE("a watch streams each change as it commits, as NDJSON or server-sent events", "[api][events]") {
  test::Daemon d;
  auto op = d.as("operator");
  std::string token = d.token("operator");
  std::string since = d.anonymous().get("/readyz").json()["resourceVersion"];

  test::RawConnection ndjson(d.url());
  ndjson.send("GET /v1/events?watch=true&kind=site&since=" + since + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
              token + "\r\n\r\n");
  CHECK_THAT(ndjson.read_until("\r\n\r\n", 3000), Catch::Contains("application/x-ndjson"));
  test::RawConnection sse(d.url());
  sse.send("GET /v1/events?watch=true&since=" + since + " HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
           "Authorization: Bearer " + token + "\r\n\r\n");
  CHECK_THAT(sse.read_until("\r\n\r\n", 3000), Catch::Contains("text/event-stream"));

  REQUIRE(op.post("/v1/sites", {{"id", "watched-1"}, {"tier", "edge"}, {"city", "Zhuhai"}}).status == 201);
  CHECK_THAT(ndjson.read_until("watched-1", 3000), Catch::Contains("\"type\":\"Added\""));
  CHECK_THAT(sse.read_until("watched-1", 3000), Catch::Contains("event: Added"));
  REQUIRE(op.post("/v1/sites", {{"id", "watched-2"}, {"tier", "edge"}, {"city", "Zhuhai"}}).status == 201);
  CHECK_THAT(ndjson.read_until("watched-2", 3000), Catch::Contains("watched-2"));

  // a watch from an older sequence number replays what it missed first
  test::RawConnection late(d.url());
  late.send("GET /v1/events?watch=true&kind=site&since=" + since + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
            token + "\r\n\r\n");
  std::string got = late.read_until("watched-2", 3000);
  CHECK(got.find("watched-1") < got.find("watched-2"));
  CHECK(got.find("\"kind\":\"token\"") == std::string::npos);
}
