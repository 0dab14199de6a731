#include <catch2/catch.hpp>

#include "cpn/core/document.hpp"
#include "cpn/expr/expr.hpp"
#include "support/daemon.hpp"

using namespace cpn;
using expr::Value;

namespace {

Value to_value(const Json& j) {
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number()) return j.get<double>();
  return j.get<std::string>();
}

}  // namespace

TEST_CASE("expressions from test/data/expr/cases.yaml", "[expr]") {
  auto cases = load_document_file(test::source_path("test/data/expr/cases.yaml"));
  REQUIRE(cases);
  REQUIRE(cases->size() > 30);
  for (const auto& c : *cases) {
    DYNAMIC_SECTION(c["name"].get<std::string>()) {
      std::map<std::string, Value> values;
      std::map<std::string, expr::Type> types;
      const Json given = c.value("values", Json::object());
      for (const auto& [k, v] : given.items()) {
        values[k] = to_value(v);
        types[k] = expr::type_of(values[k]);
      }
      std::string error;
      std::optional<Value> result;
      auto e = expr::Expression::parse(c["expr"].get<std::string>());
      if (!e) {
        error = e.error().message;
      } else if (auto t = e->check(types); !t) {
        error = t.error().message;
      } else if (auto v = e->evaluate(values); !v) {
        error = v.error().message;
      } else {
        result = *v;
        CHECK(expr::type_of(*v) == *t);  // the checker predicts the type
      }
      INFO("expr: " << c["expr"].get<std::string>() << "  error: " << error);
      if (c.contains("error")) {
        CHECK_THAT(error, Catch::Contains(c["error"].get<std::string>()));
      } else {
        REQUIRE(result);
        Value want = to_value(c["result"]);
        if (std::holds_alternative<double>(want))
          CHECK(std::get<double>(*result) == Approx(std::get<double>(want)));
        else
          CHECK(*result == want);
      }
    }
  }
}

TEST_CASE("an expression is parsed once and evaluated many times", "[expr]") {
  auto e = expr::Expression::parse("streams * fps / 15 * (resolution == '4k' ? 4 : 1)");
  REQUIRE(e);
  CHECK(e->names() == std::set<std::string>{"streams", "fps", "resolution"});
  for (int s = 1; s <= 100; ++s) {
    auto v = e->evaluate({{"streams", double(s)}, {"fps", 30.0}, {"resolution", std::string("4k")}});
    REQUIRE(v);
    CHECK(std::get<double>(*v) == Approx(s * 8));
  }
}

TEST_CASE("derived values may use each other, in any order, but not in a cycle", "[expr]") {
  std::map<std::string, expr::Type> params = {{"streams", expr::Type::number}, {"resolution", expr::Type::string}};
  auto set = expr::DerivedSet::compile(
      params, {{"load", "streams * pixels"}, {"pixels", "resolution == '4k' ? 4 : 1"}, {"instances", "ceil(load / 24)"}});
  REQUIRE(set);
  CHECK(set->scope().at("load") == expr::Type::number);
  auto values = set->evaluate({{"streams", 30.0}, {"resolution", std::string("4k")}});
  REQUIRE(values);
  CHECK(std::get<double>(values->at("load")) == 120);
  CHECK(std::get<double>(values->at("instances")) == 5);

  auto cycle = expr::DerivedSet::compile(params, {{"a", "b + 1"}, {"b", "c * 2"}, {"c", "a - streams"}, {"ok", "1"}});
  REQUIRE_FALSE(cycle);
  REQUIRE(cycle.error().size() == 1);
  CHECK_THAT(cycle.error()[0].message, Catch::Contains("cycle: a -> b -> c -> a"));

  auto self = expr::DerivedSet::compile(params, {{"x", "x + 1"}});
  REQUIRE_FALSE(self);
  CHECK_THAT(self.error()[0].message, Catch::Contains("x -> x"));

  auto bad = expr::DerivedSet::compile(params, {{"a", "streams +"}, {"b", "nope * 2"}, {"streams", "1"}});
  REQUIRE_FALSE(bad);
  std::map<std::string, std::string> by_name;
  for (const auto& p : bad.error()) by_name[p.name] = p.message;
  CHECK_THAT(by_name["a"], Catch::Contains("line 1, column 10"));
  CHECK_THAT(by_name["b"], Catch::Contains("unknown name 'nope'"));
  CHECK_THAT(by_name["streams"], Catch::Contains("already a parameter"));
}

TEST_CASE("hostile input is refused, not run", "[expr]") {
  CHECK_FALSE(expr::Expression::parse(std::string(5000, '1')));
  CHECK_FALSE(expr::Expression::parse(std::string(200, '(') + "1" + std::string(200, ')')));
  CHECK_FALSE(expr::Expression::parse(std::string(200, '-') + "1"));
  CHECK_FALSE(expr::Expression::parse("1e999"));
  auto big = expr::Expression::parse("pow(10, 300) * pow(10, 300)");
  REQUIRE(big);
  CHECK_FALSE(big->evaluate({}));
}
