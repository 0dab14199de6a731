// Quotes. The price per hour is
//   (resource cost x (1 + markup), when resources are charged) + usage x unit price
// times the discounts that apply (per type, the highest threshold reached;
// duration thresholds in hours, volume thresholds in the mode's unit per
// month of 730 hours). The total for the duration is at least the minimum
// charge. Resources are charged when the offering has a markup, or when it
// has no unit price for the chosen mode (then at cost).
#include <cmath>

#include <fmt/format.h>

#include "cpn/catalog/quote.hpp"

namespace cpn::catalog {
namespace {

constexpr double kHoursPerMonth = 730;

double money(double v) { return std::round(v * 1e4) / 1e4; }

}  // namespace

Result<PriceModel> PriceModel::of(const Json& offering, const std::string& mode, Usage usage, double duration_hours) {
  const Json billing = offering.value("billing", Json::object());
  const Json modes = billing.value("modes", Json::array());
  PriceModel m;
  m.mode_ = mode.empty() && !modes.empty() ? modes[0].get<std::string>() : mode;
  if (std::find(modes.begin(), modes.end(), Json(m.mode_)) == modes.end())
    return fail(Error::invalid_field("/billing_mode", fmt::format("'{}' is not a billing mode of offering '{}' ({})",
                                                                  m.mode_, offering.value("name", ""), modes.dump())));
  m.currency_ = billing.value("currency", "CNY");
  const Json units = billing.value("unit_prices", Json::object());
  bool has_unit = units.contains(m.mode_);
  m.unit_price_ = units.value(m.mode_, 0.0);
  m.charges_resources_ = billing.contains("markup") || !has_unit;
  m.markup_ = billing.value("markup", 0.0);
  m.minimum_charge_ = billing.value("minimum_charge", 0.0);
  m.duration_hours_ = duration_hours;
  if (m.mode_ == "per_minute") {
    m.usage_quantity_ = 60;
    m.unit_ = "minute";
  } else if (m.mode_ == "per_traffic_gb") {
    m.usage_quantity_ = usage.traffic_gb_per_hour;
    m.unit_ = "GB";
  } else {
    m.usage_quantity_ = usage.requests_per_hour;
    m.unit_ = "request";
  }
  // Per discount type, the step with the highest threshold reached.
  std::map<std::string, Json> best;
  for (const auto& d : billing.value("discounts", Json::array())) {
    std::string type = d.value("type", "");
    double threshold = d.value("threshold", 0.0);
    double reached = type == "duration" ? duration_hours : m.usage_quantity_ * kHoursPerMonth;
    if (reached + 1e-9 < threshold) continue;
    if (!best.count(type) || best[type].value("threshold", 0.0) < threshold) best[type] = d;
  }
  for (const auto& [type, d] : best) {
    m.discount_factor_ *= 1 - d.value("percent", 0.0) / 100;
    m.discounts_.push_back(d);
  }
  return m;
}

double PriceModel::per_hour(double cost) const {
  double resources = charges_resources_ ? cost * (1 + markup_) : 0.0;
  return (resources + usage_quantity_ * unit_price_) * discount_factor_;
}

double PriceModel::max_cost_for(double ceiling) const {
  if (discount_factor_ <= 0) return 1e300;  // a 100% discount: anything fits
  double usage = usage_quantity_ * unit_price_;
  if (!charges_resources_) return usage * discount_factor_ <= ceiling + 1e-9 ? 1e300 : -1.0;
  return (ceiling / discount_factor_ - usage) / (1 + markup_);
}

Json PriceModel::quote(double compute, double network) const {
  Json breakdown = Json::array();
  double subtotal = 0;
  auto line = [&](const std::string& item, double amount, Json extra = Json::object()) {
    extra["item"] = item;
    extra["per_hour"] = money(amount);
    breakdown.push_back(extra);
    subtotal += amount;
  };
  if (charges_resources_) {
    line("compute", compute);
    line("network", network);
    if (markup_ > 0) line("markup", (compute + network) * markup_, {{"rate", markup_}});
  }
  if (unit_price_ > 0)
    line("usage", usage_quantity_ * unit_price_,
         {{"billing_mode", mode_}, {"unit", unit_}, {"quantity_per_hour", money(usage_quantity_)}, {"unit_price", unit_price_}});
  double before = subtotal;
  for (const auto& d : discounts_) {
    double amount = -before * d.value("percent", 0.0) / 100;
    before += amount;
    line("discount", amount,
         {{"type", d.value("type", "")}, {"percent", d.value("percent", 0.0)}, {"description", d.value("description", "")}});
  }
  double per_hour_value = subtotal;
  double total = per_hour_value * duration_hours_;
  Json out = {{"currency", currency_},
              {"billing_mode", mode_},
              {"per_hour", money(per_hour_value)},
              {"duration_hours", duration_hours_},
              {"total", money(std::max(total, minimum_charge_))},
              {"resource_cost_per_hour", money(compute + network)},
              {"breakdown", breakdown}};
  if (total < minimum_charge_) out["minimum_charge_applied"] = minimum_charge_;
  return out;
}

}  // namespace cpn::catalog
