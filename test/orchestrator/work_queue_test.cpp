// The reconciler's work queue on a manual clock: a key is queued once, never
// worked twice at a time, and a failing one waits out its own backoff.
#include <catch2/catch.hpp>

#include "cpn/orchestrator/work_queue.hpp"

using namespace cpn;
using orchestrator::WorkQueue;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> drain(WorkQueue& q) {
  std::vector<std::string> out;
  while (auto k = q.get()) out.push_back(*k);
  return out;
}

}  // namespace

TEST_CASE("a key added many times is queued once, in the order first added", "[orchestrator][queue]") {
  ManualClock clock;
  WorkQueue q(clock, 100ms, 10s);
  for (const char* k : {"b", "a", "b", "c", "a"}) q.add(k);
  CHECK(q.depth() == 3);
  CHECK(drain(q) == std::vector<std::string>{"b", "a", "c"});
  CHECK_FALSE(q.get());
}

TEST_CASE("a key being worked is not handed out again, and one added meanwhile comes back after done", "[orchestrator][queue]") {
  ManualClock clock;
  WorkQueue q(clock, 100ms, 10s);
  q.add("d1");
  REQUIRE(q.get() == std::optional<std::string>("d1"));
  q.add("d1");  // a commit about it while it is worked
  q.add("d2");
  CHECK(drain(q) == std::vector<std::string>{"d2"});  // not d1: one worker per key
  q.done("d2");
  q.done("d1");
  CHECK(drain(q) == std::vector<std::string>{"d1"});
  q.done("d1");
  CHECK_FALSE(q.get());  // done without being added again: gone
  CHECK(q.depth() == 0);
}

TEST_CASE("a failing key backs off exponentially up to the cap, alone, and forget resets it", "[orchestrator][queue]") {
  ManualClock clock;
  WorkQueue q(clock, 100ms, 1s);
  std::vector<std::chrono::milliseconds> waits;
  for (int attempt = 0; attempt < 6; ++attempt) {
    q.add_rate_limited("bad");
    q.add("good");
    CHECK(drain(q) == std::vector<std::string>{"good"});  // the other key is never held up
    q.done("good");
    auto due = q.next_due();
    REQUIRE(due);
    waits.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(*due - clock.now()));
    clock.advance(waits.back() - 1ms);
    CHECK_FALSE(q.get());  // not a moment early
    clock.advance(1ms);
    REQUIRE(q.get() == std::optional<std::string>("bad"));
    q.done("bad");
  }
  CHECK(waits == std::vector<std::chrono::milliseconds>{100ms, 200ms, 400ms, 800ms, 1s, 1s});
  CHECK(q.failures("bad") == 6);
  CHECK(q.retries() == 6);
  q.forget("bad");
  q.add_rate_limited("bad");
  CHECK(*q.next_due() - clock.now() == 100ms);
}

TEST_CASE("a resync leaves a backing-off key waiting, a change wakes it at once", "[orchestrator][queue]") {
  ManualClock clock;
  WorkQueue q(clock, 1s, 30s);
  q.add_rate_limited("bad");
  q.resync("bad");
  q.resync("other");
  CHECK(drain(q) == std::vector<std::string>{"other"});
  q.done("other");
  q.add("bad");  // its deployment changed: worth a try now
  CHECK(drain(q) == std::vector<std::string>{"bad"});
  CHECK_FALSE(q.next_due());
}

TEST_CASE("waiting keys fall due in the order of their times", "[orchestrator][queue]") {
  ManualClock clock;
  WorkQueue q(clock, 1s, 30s);
  q.add_after("late", 300ms);
  q.add_after("early", 100ms);
  q.add_after("late", 200ms);  // the earliest of two wins
  clock.advance(250ms);
  CHECK(drain(q) == std::vector<std::string>{"early", "late"});
  q.add_after("now", 0ms);
  CHECK(drain(q) == std::vector<std::string>{"now"});
}
