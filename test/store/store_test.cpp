#include <catch2/catch.hpp>

#include <filesystem>

#include "cpn/engine/engine.hpp"
#include "support/daemon.hpp"

using namespace cpn;

TEST_CASE("committed objects and events survive reopening the database", "[store]") {
  std::string dir = test::make_temp_dir("cpn-store");
  std::string path = dir + "/cpnd.db";
  ManualClock clock;
  {
    auto store = store::Store::open(path);
    REQUIRE(store);
    CHECK((*store)->schema_version() == 6);
    engine::Engine engine(std::move(*store), clock);
    auto ev = engine.commit({{store::Change::Op::put, "site", "s1", {{"id", "s1"}}, ""},
                             {store::Change::Op::put, "site", "s2", {{"id", "s2"}}, ""}});
    REQUIRE(ev);
    REQUIRE(ev->size() == 2);
    CHECK((*ev)[0].type == "Added");
    CHECK((*ev)[1].seq == (*ev)[0].seq + 1);
    auto del = engine.commit({{store::Change::Op::remove, "site", "s1", nullptr, ""}});
    REQUIRE(del);
    CHECK((*del)[0].type == "Deleted");
    CHECK((*del)[0].object == Json{{"id", "s1"}});
  }
  auto store = store::Store::open(path);
  REQUIRE(store);
  engine::Engine engine(std::move(*store), clock);
  CHECK(engine.find("site", "s1") == nullptr);
  REQUIRE(engine.find("site", "s2"));
  CHECK(engine.find("site", "s2")->resource_version == 2);
  CHECK(engine.last_seq() == 3);
  auto events = engine.events_since(1, 10);
  REQUIRE(events.size() == 2);
  CHECK(events[0].id == "s2");
  std::filesystem::remove_all(dir);
}

TEST_CASE("removing an object that is not there writes no event", "[store]") {
  std::string dir = test::make_temp_dir("cpn-store");
  ManualClock clock;
  auto store = store::Store::open(dir + "/cpnd.db");
  REQUIRE(store);
  engine::Engine engine(std::move(*store), clock);
  auto ev = engine.commit({{store::Change::Op::remove, "site", "ghost", nullptr, ""}});
  REQUIRE(ev);
  CHECK(ev->empty());
  CHECK(engine.last_seq() == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("an idempotency record lands in the same transaction as the change", "[store]") {
  std::string dir = test::make_temp_dir("cpn-store");
  ManualClock clock;
  auto store = store::Store::open(dir + "/cpnd.db");
  REQUIRE(store);
  engine::Engine engine(std::move(*store), clock);
  engine.attach_idempotency(store::IdempotencyRecord{"tok", "k1", "h", 0, "", "", "POST /v1/sites", "t"});
  REQUIRE(engine.commit({{store::Change::Op::put, "site", "s1", {{"id", "s1"}}, ""}}));
  auto rec = engine.store().find_idempotency("tok", "k1");
  REQUIRE(rec);
  CHECK(rec->request_hash == "h");
  // consumed: the next commit does not write it again
  REQUIRE(engine.commit({{store::Change::Op::put, "site", "s2", {{"id", "s2"}}, ""}}));
  CHECK_FALSE(engine.store().find_idempotency("tok", "k2"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a database from a newer cpnd is refused", "[store]") {
  std::string dir = test::make_temp_dir("cpn-store");
  {
    auto store = store::Store::open(dir + "/cpnd.db");
    REQUIRE(store);
  }
  // bump user_version behind cpnd's back
  {
    auto s = store::Store::open(dir + "/cpnd.db");
    REQUIRE(s);
  }
  std::string cmd = "sqlite3 " + dir + "/cpnd.db 'PRAGMA user_version=99' 2>/dev/null";
  if (std::system(cmd.c_str()) == 0) {
    auto store = store::Store::open(dir + "/cpnd.db");
    REQUIRE_FALSE(store);
    CHECK_THAT(store.error().message, Catch::Contains("newer"));
  } else {
    WARN("sqlite3 CLI missing: newer-schema refusal not exercised");
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("the log keeps what changed, not the whole object, and is bounded by count and age", "[store]") {
  std::string dir = test::make_temp_dir("cpn-store");
  ManualClock clock;
  auto store = store::Store::open(dir + "/cpnd.db");
  REQUIRE(store);
  engine::Engine engine(std::move(*store), clock);
  Json big = {{"id", "s1"}, {"city", "Zhuhai"}, {"notes", std::string(10000, 'x')}, {"labels", {{"a", "1"}, {"b", "2"}}}};
  REQUIRE(engine.commit({{store::Change::Op::put, "site", "s1", big, ""}}));
  Json changed = big;
  changed["city"] = "Zhongshan";
  changed["labels"].erase("b");
  // Written twice in one commit: each patch is against what came before it.
  Json again = changed;
  again["labels"]["c"] = "3";
  REQUIRE(engine.commit({{store::Change::Op::put, "site", "s1", changed, ""}, {store::Change::Op::put, "site", "s1", again, ""}}));
  REQUIRE(engine.commit({{store::Change::Op::remove, "site", "s1", nullptr, ""}}));
  auto events = engine.events_since(0, 10);
  REQUIRE(events.size() == 4);
  CHECK(events[0].object == big);
  CHECK(events[0].patch.is_null());
  CHECK(events[1].object.is_null());
  CHECK(events[1].patch == Json{{"city", "Zhongshan"}, {"labels", {{"b", nullptr}}}});
  CHECK(events[2].patch == Json{{"labels", {{"c", "3"}}}});
  CHECK(events[3].type == "Deleted");
  CHECK(events[3].object.is_null());
  Json patched = big;
  patched.merge_patch(events[1].patch);
  CHECK(patched == changed);
  // An object over 64 KiB is summarised.
  REQUIRE(engine.commit({{store::Change::Op::put, "site", "s2", {{"id", "s2"}, {"notes", std::string(70000, 'y')}}, ""}}));
  CHECK(engine.events_since(4, 1)[0].object == Json{{"id", "s2"}, {"truncated", true}, {"bytes", 70022}});

  // By age: everything older than the cut goes, the newest event always stays.
  clock.advance(std::chrono::hours(48));
  for (int i = 0; i < 3; ++i) REQUIRE(engine.commit({{store::Change::Op::put, "site", "s" + std::to_string(10 + i), {{"id", "x"}}, ""}}));
  CHECK(engine.store().compact_events(1000, format_time(clock.now() - std::chrono::hours(24))) == 5);
  CHECK(engine.store().first_seq() == 6);
  clock.advance(std::chrono::hours(48));
  CHECK(engine.store().compact_events(1000, format_time(clock.now() - std::chrono::hours(24))) == 2);
  CHECK(engine.store().last_seq() == 8);
  // By count.
  for (int i = 0; i < 5; ++i) REQUIRE(engine.commit({{store::Change::Op::put, "site", "t" + std::to_string(i), {{"id", "t"}}, ""}}));
  CHECK(engine.store().compact_events(2) == 4);
  CHECK(engine.store().first_seq() == 12);
  std::filesystem::remove_all(dir);
}
