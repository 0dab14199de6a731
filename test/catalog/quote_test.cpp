// Quotes by an offering's billing terms, worked by hand.
#include <catch2/catch.hpp>

#include "cpn/catalog/quote.hpp"

using namespace cpn;

namespace {

Json offering(Json billing) { return {{"name", "o"}, {"billing", std::move(billing)}}; }

double line(const Json& quote, const std::string& item) {
  double total = 0;
  for (const auto& l : quote["breakdown"])
    if (l["item"] == item) total += l["per_hour"].get<double>();
  return total;
}

}  // namespace

TEST_CASE("a markup offering charges the resource cost plus its margin", "[quote]") {
  auto m = catalog::PriceModel::of(offering({{"modes", {"per_minute"}}, {"markup", 0.35}}), "", {}, 10);
  REQUIRE(m);
  CHECK(m->mode() == "per_minute");
  Json q = m->quote(4, 1);
  CHECK(q["per_hour"] == Approx(6.75));  // (4 + 1) x 1.35
  CHECK(line(q, "compute") == Approx(4));
  CHECK(line(q, "network") == Approx(1));
  CHECK(line(q, "markup") == Approx(1.75));
  CHECK(q["total"] == Approx(67.5));
  CHECK(m->per_hour(5) == Approx(6.75));
  CHECK(m->max_cost_for(6.75) == Approx(5));
}

TEST_CASE("unit prices charge usage per billing mode, resources included", "[quote]") {
  Json billing = {{"modes", {"per_request", "per_minute", "per_traffic_gb"}},
                  {"unit_prices", {{"per_request", 0.002}, {"per_minute", 0.05}, {"per_traffic_gb", 0.08}}}};
  catalog::Usage usage{24000, 115.2};
  struct Case {
    std::string mode;
    double per_hour;
  };
  for (const auto& c : std::vector<Case>{{"per_request", 48}, {"per_minute", 3}, {"per_traffic_gb", 9.216}}) {
    auto m = catalog::PriceModel::of(offering(billing), c.mode, usage, 2);
    REQUIRE(m);
    Json q = m->quote(3.78, 0.2);
    INFO(c.mode);
    CHECK(q["per_hour"] == Approx(c.per_hour));
    CHECK(line(q, "compute") == 0);  // the unit price covers it
    CHECK(q["resource_cost_per_hour"] == Approx(3.98));
    // The price does not depend on the placement: any resource cost fits a ceiling above it.
    CHECK(m->max_cost_for(c.per_hour + 0.01) > 1e100);
    CHECK(m->max_cost_for(c.per_hour - 0.01) < 0);
  }
  auto unknown = catalog::PriceModel::of(offering(billing), "per_second", usage, 2);
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().errors.at(0).pointer == "/billing_mode");
}

TEST_CASE("discounts take the highest step reached per type, and the minimum charge holds", "[quote]") {
  Json billing = {{"modes", {"per_request"}},
                  {"unit_prices", {{"per_request", 0.002}}},
                  {"minimum_charge", 100},
                  {"discounts",
                   {{{"type", "volume"}, {"threshold", 1000000}, {"percent", 15}},
                    {{"type", "volume"}, {"threshold", 10000000}, {"percent", 25}},
                    {{"type", "duration"}, {"threshold", 720}, {"percent", 10}}}}};
  struct Case {
    double requests_per_hour, hours, per_hour, total;
  };
  // 24,000/h is 17.5 million a month: the 25% step; a month or more adds 10%.
  for (const auto& c : std::vector<Case>{{24000, 24, 36, 864},
                                         {24000, 720, 32.4, 23328},
                                         {1000, 24, 2, 100},  // 730,000 a month: no step; 48 < minimum 100
                                         {1500, 1, 2.55, 100}}) {
    auto m = catalog::PriceModel::of(offering(billing), "", {c.requests_per_hour, 0}, c.hours);
    REQUIRE(m);
    Json q = m->quote(1, 0);
    INFO(c.requests_per_hour << "/h for " << c.hours << " h");
    CHECK(q["per_hour"] == Approx(c.per_hour));
    CHECK(q["total"] == Approx(c.total));
    CHECK(q.contains("minimum_charge_applied") == (c.per_hour * c.hours < 100));
  }
}
