#include <catch2/catch.hpp>

#include "cpn/core/document.hpp"
#include "cpn/core/labels.hpp"
#include "cpn/core/quantity.hpp"

using namespace cpn;

TEST_CASE("quantities accept plain numbers and Kubernetes suffixes", "[core]") {
  struct Case {
    const char* text;
    QuantityUnit unit;
    double expected;
  };
  auto c = GENERATE(Case{"64", QuantityUnit::cores, 64}, Case{"500m", QuantityUnit::cores, 0.5},
                    Case{"1.5", QuantityUnit::cores, 1.5}, Case{"4Gi", QuantityUnit::gib, 4},
                    Case{"512Mi", QuantityUnit::gib, 0.5}, Case{"1Ti", QuantityUnit::gib, 1024},
                    Case{"16", QuantityUnit::gib, 16}, Case{"2k", QuantityUnit::cores, 2000});
  INFO(c.text);
  auto v = parse_quantity(std::string_view(c.text), c.unit);
  REQUIRE(v);
  CHECK(*v == Approx(c.expected));
}

TEST_CASE("durations read as in Go and Kubernetes: 90s, 15m, 12h, 30d, 1h30m", "[core]") {
  struct Case {
    const char* text;
    double seconds;
  };
  for (auto c : {Case{"90s", 90}, Case{"15m", 900}, Case{"12h", 43200}, Case{"30d", 2592000}, Case{"1h30m", 5400},
                 Case{"0.5h", 1800}}) {
    INFO(c.text);
    REQUIRE(parse_duration_seconds(c.text));
    CHECK(*parse_duration_seconds(c.text) == Approx(c.seconds));
  }
  for (const char* bad : {"", "15", "m", "-5m", "5 m", "5w", "1h30", "h1"}) {
    INFO(bad);
    CHECK_FALSE(parse_duration_seconds(bad));
  }
}

TEST_CASE("malformed or negative quantities are refused", "[core]") {
  for (const char* bad : {"", "12 GB", "-4", "4Gb", "1..5", ".5", "Gi", "4 Gi"})
    CHECK_FALSE(parse_quantity(std::string_view(bad), QuantityUnit::gib));
  CHECK_FALSE(parse_quantity(Json(-1), QuantityUnit::cores));
  CHECK_FALSE(parse_quantity(Json(true), QuantityUnit::cores));
  CHECK(parse_quantity(Json(2.5), QuantityUnit::cores) == 2.5);
}

TEST_CASE("label selectors match like Kubernetes'", "[core]") {
  Labels l = {{"zone", "a"}, {"arch", "x86_64"}, {"gpu", "t4"}};
  auto m = [&](const char* s) {
    auto sel = LabelSelector::parse(s);
    REQUIRE(sel);
    return sel->matches(l);
  };
  CHECK(m(""));
  CHECK(m("zone=a"));
  CHECK(m("zone==a"));
  CHECK_FALSE(m("zone=b"));
  CHECK(m("zone!=b"));
  CHECK(m("arch in (x86_64, aarch64)"));
  CHECK_FALSE(m("arch notin (x86_64)"));
  CHECK(m("gpu"));
  CHECK_FALSE(m("!gpu"));
  CHECK(m("!fpga,zone=a,gpu in (t4)"));
  CHECK_FALSE(m("zone=a,fpga"));
}

TEST_CASE("a malformed label selector names the query parameter", "[core]") {
  for (const char* bad : {"zone in x86", "=a", "zone,,arch", "arch in ()"}) {
    auto sel = LabelSelector::parse(bad);
    INFO(bad);
    REQUIRE_FALSE(sel);
    REQUIRE(sel.error().errors.size() == 1);
    CHECK(sel.error().errors[0].pointer == "/query/labelSelector");
  }
}

TEST_CASE("YAML documents become the same JSON as their JSON form", "[core]") {
  auto y = parse_document(R"(
a: 1
b: 2.5
c: "1"
d: yes-no
e: true
f: null
g: [1, two, "3"]
h: {x: 500m, y: 4Gi}
)",
                          Format::yaml);
  REQUIRE(y);
  Json expected = {{"a", 1},    {"b", 2.5},        {"c", "1"},
                   {"d", "yes-no"}, {"e", true}, {"f", nullptr},
                   {"g", {1, "two", "3"}}, {"h", {{"x", "500m"}, {"y", "4Gi"}}}};
  CHECK(*y == expected);
  // and back: YAML output parses to the same document
  auto again = parse_document(to_yaml(expected), Format::yaml);
  REQUIRE(again);
  CHECK(*again == expected);
}

TEST_CASE("syntax errors name the line and column", "[core]") {
  auto j = parse_document("{\n  \"a\": 1,\n  \"b\": ]\n}", Format::json);
  REQUIRE_FALSE(j);
  CHECK(j.error().kind == ErrorKind::bad_request);
  CHECK_THAT(j.error().message, Catch::Contains("line 3"));
  auto y = parse_document("a: 1\nb: [1, 2\nc: 3\n", Format::yaml);
  REQUIRE_FALSE(y);
  CHECK_THAT(y.error().message, Catch::Contains("line"));
  auto dup = parse_document("a: 1\na: 2\n", Format::yaml);
  REQUIRE_FALSE(dup);
  CHECK(dup.error().errors.at(0).pointer == "/a");
}
