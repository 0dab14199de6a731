// The service catalogue: offerings are a published blueprint version plus
// a service mode (which parameters a customer sets, in which ranges, with
// which defaults) and billing (per minute, per traffic GB, per request;
// unit prices or a markup over resource cost; minimum charge; volume and
// duration discounts). Lifecycle: draft -> published -> suspended ->
// retired; customers see published offerings only.
#pragma once

#include "cpn/blueprint/library.hpp"

namespace cpn::catalog {

inline constexpr const char* kOffering = "offering";

class Catalog {
 public:
  Catalog(engine::Engine& engine, blueprint::Library& library);
  resource::Collection& offerings() { return offerings_; }

  // Only a draft changes; afterwards the terms customers saw stay fixed.
  Result<Json> replace(const std::string& name, const Json& doc, std::optional<std::int64_t> if_match);
  // publish: draft or suspended -> published (its blueprint version must be
  // published); suspend: published -> suspended (no new orders, running
  // ones go on); retire: any -> retired.
  Result<Json> transition(const std::string& name, const std::string& action);
  // Offerings that still rely on a blueprint version (not retired).
  std::vector<std::string> users_of(const std::string& blueprint, const std::string& version) const;

  // The parameters of an order checked against the service mode and the
  // blueprint: defaults filled in, pointers under /parameters.
  Result<Json> order_parameters(const std::string& offering, const Json& parameters) const;

 private:
  engine::Engine& engine_;
  blueprint::Library& library_;
  resource::Collection offerings_;
};

}  // namespace cpn::catalog
