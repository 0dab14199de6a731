#include <catch2/catch.hpp>

#include "cpn/core/history.hpp"

using namespace cpn;

TEST_CASE("an object's history keeps when it began and its newest states, no more", "[core]") {
  Json body = Json::object();
  for (int i = 0; i < 200; ++i) append_history(body, {{"state", i % 2 ? "failed" : "starting"}, {"n", i}});
  REQUIRE(body["history"].size() == kHistoryKept);
  CHECK(body["history"][0]["n"] == 0);                    // the first
  CHECK(body["history"][1]["n"] == 200 - kHistoryKept + 1);  // then the newest, in order
  CHECK(body["history"].back()["n"] == 199);
  Json short_one = Json::object();
  append_history(short_one, {{"state", "pending"}});
  append_history(short_one, {{"state", "running"}});
  CHECK(short_one["history"].size() == 2);
}
