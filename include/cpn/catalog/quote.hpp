// Pricing a solution by an offering's billing terms: the resource cost with
// the markup, usage charges per billing mode (per minute, per traffic GB,
// per request), volume and duration discounts, and the minimum charge.
#pragma once

#include <optional>
#include <string>

#include "cpn/core/document.hpp"
#include "cpn/core/error.hpp"

namespace cpn::catalog {

// What the order will use per hour, from the demand model.
struct Usage {
  double requests_per_hour = 0;
  double traffic_gb_per_hour = 0;
};

class PriceModel {
 public:
  // mode empty: the offering's first billing mode. An unknown mode is an
  // error at /billing_mode.
  static Result<PriceModel> of(const Json& offering, const std::string& mode, Usage usage, double duration_hours);

  const std::string& mode() const { return mode_; }
  double per_hour(double resource_cost_per_hour) const;
  // The highest resource cost per hour whose price stays within ceiling:
  // +inf when the price does not depend on resources and fits, negative
  // when nothing can fit.
  double max_cost_for(double ceiling_per_hour) const;
  // currency, billing_mode, per_hour, duration_hours, total, breakdown[].
  Json quote(double compute_per_hour, double network_per_hour) const;

 private:
  std::string mode_, currency_ = "CNY";
  bool charges_resources_ = true;
  double markup_ = 0;
  double usage_quantity_ = 0;  // per hour, in the mode's unit
  double unit_price_ = 0;
  std::string unit_;
  double minimum_charge_ = 0;
  double duration_hours_ = 1;
  double discount_factor_ = 1;
  Json discounts_ = Json::array();  // applied steps
};

}  // namespace cpn::catalog
