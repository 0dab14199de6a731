// From parameters to priced solutions, and when nothing fits, what would:
// the solver is fast enough to simply try the order again with one
// parameter changed (more budget, a looser latency target, another
// location, fewer streams) and report the changes that work.
#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>

#include "translate.hpp"

namespace cpn::orders::detail {
namespace {

double value_of(const Json& figure) {
  if (figure.is_object()) return figure.value("value", 0.0);
  return figure.is_number() ? figure.get<double>() : 0.0;
}

}  // namespace

solver::Demand demand_of(const blueprint::Blueprint& bp, const Json& evaluation, const Json& parameters) {
  solver::Demand d;
  std::map<std::string, int> index;
  const auto& comps = bp.components();
  const Json& evaluated = evaluation["components"];
  for (std::size_t i = 0; i < comps.size(); ++i) {
    const auto& c = comps[i];
    if (c.training) continue;
    solver::Component out{c.name, c.tier, c.image, value_of(evaluated[i]["demand"]), c.min_instances, c.spread_min_nodes, {}};
    for (const auto& p : c.profiles)
      out.profiles.push_back({p.arch, p.accelerator, p.capacity, p.cpu, p.memory, p.accelerators, p.latency_ms});
    index[c.name] = static_cast<int>(d.components.size());
    d.components.push_back(std::move(out));
  }
  const auto& conns = bp.connections();
  for (std::size_t k = 0; k < conns.size(); ++k) {
    const auto& c = conns[k];
    bool from_location = c.from == "location";
    if ((!from_location && !index.count(c.from)) || !index.count(c.to)) continue;  // touches training
    const Json& e = evaluation["connections"][k];
    solver::Connection out;
    out.from = from_location ? solver::kLocation : index[c.from];
    out.to = index[c.to];
    out.bandwidth_mbps = value_of(e["bandwidth_mbps"]);
    if (!e["max_latency_ms"].is_null()) out.max_latency_ms = value_of(e["max_latency_ms"]);
    out.async = c.async;
    out.index = static_cast<int>(k);
    d.connections.push_back(out);
  }
  if (evaluation.contains("slo") && evaluation["slo"].contains("latency_ms"))
    d.slo_latency_ms = value_of(evaluation["slo"]["latency_ms"]);
  d.location = parameters.value("location", "");
  return d;
}

catalog::Usage usage_of(const Json& evaluation) {
  catalog::Usage u;
  for (const auto& c : evaluation["connections"])
    if (c.value("from", "") == "location") u.traffic_gb_per_hour += value_of(c["bandwidth_mbps"]) * 3600 / 8 / 1000;
  const Json metering = evaluation.value("metering", Json::object());
  if (metering.contains("requests_per_second")) {
    u.requests_per_hour = value_of(metering["requests_per_second"]) * 3600;
  } else {  // without metering, a request is a work unit of the components the location feeds
    std::set<std::string> first;
    for (const auto& c : evaluation["connections"])
      if (c.value("from", "") == "location") first.insert(c.value("to", ""));
    for (const auto& c : evaluation["components"])
      if (first.count(c.value("name", ""))) u.requests_per_hour += value_of(c["demand"]) * 3600;
  }
  return u;
}

namespace {

struct Attempt {
  solver::Demand demand;
  catalog::PriceModel price;
  solver::Answer answer;
};

Result<Attempt> attempt(const solver::Snapshot& s, const blueprint::Blueprint& bp, const Json& offering,
                        const Json& parameters, const std::string& mode, double hours, Json* evaluation_out) {
  auto evaluation = bp.evaluate(parameters);
  if (!evaluation) return fail(evaluation.error());
  auto price = catalog::PriceModel::of(offering, mode, usage_of(*evaluation), hours);
  if (!price) return fail(price.error());
  solver::Demand d = demand_of(bp, *evaluation, parameters);
  if (parameters.contains("budget_per_hour") && parameters["budget_per_hour"].is_number())
    d.max_cost_per_hour = price->max_cost_for(parameters["budget_per_hour"].get<double>());
  auto answer = solver::solve(s, d);
  if (!answer) return fail(answer.error());
  if (evaluation_out) *evaluation_out = std::move(*evaluation);
  return Attempt{std::move(d), std::move(*price), std::move(*answer)};
}

bool fits(const solver::Snapshot& s, const blueprint::Blueprint& bp, const Json& offering, const Json& parameters,
          const std::string& mode, double hours) {
  auto a = attempt(s, bp, offering, parameters, mode, hours, nullptr);
  return a && !a->answer.solutions.empty();
}

// Changes of one parameter that make the order fit.
Json suggestions(const solver::Snapshot& s, const blueprint::Blueprint& bp, const Json& offering,
                 const Json& parameters, const std::string& mode, double hours, const Attempt& failed) {
  Json out = Json::array();
  const Json decls = bp.document().value("parameters", Json::object());
  const Json rules = offering.value("/service_mode/parameters"_json_pointer, Json::object());
  auto ceiling = [&](const std::string& name) {
    double most = 1e18;
    if (decls.contains(name) && decls[name].contains("maximum")) most = decls[name]["maximum"].get<double>();
    if (rules.contains(name) && rules[name].contains("maximum")) most = std::min(most, rules[name]["maximum"].get<double>());
    return most;
  };
  const auto& why = failed.answer.explanation;
  if (why.cheapest_cost_per_hour) {
    double needed = failed.price.per_hour(*why.cheapest_cost_per_hour);
    double ceiling_given = parameters.value("budget_per_hour", 0.0);
    out.push_back({{"parameter", "budget_per_hour"},
                   {"value", std::ceil(needed * 100) / 100},
                   {"detail", fmt::format("the cheapest solution costs {:.2f} per hour, {:.2f} over the ceiling of {:.2f}",
                                          needed, needed - ceiling_given, ceiling_given)}});
  }
  if (decls.contains("max_latency_ms") && parameters.contains("max_latency_ms")) {
    double now = parameters["max_latency_ms"].get<double>();
    for (double factor : {1.25, 1.5, 2.0, 3.0, 5.0, 10.0}) {
      double v = std::round(now * factor);
      if (v > ceiling("max_latency_ms")) break;
      Json p = parameters;
      p["max_latency_ms"] = v;
      if (fits(s, bp, offering, p, mode, hours)) {
        out.push_back({{"parameter", "max_latency_ms"}, {"value", v},
                       {"detail", fmt::format("a latency target of {} ms fits", v)}});
        break;
      }
    }
  }
  if (parameters.contains("location")) {
    // The nearest other cities first (by network latency from where the
    // cameras are); a dozen tries at most, so a large network stays fast.
    auto lower = [](std::string v) {
      std::transform(v.begin(), v.end(), v.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      return v;
    };
    std::string here = parameters.value("location", "");
    std::vector<int> from;
    if (auto site = s.site_index(here)) {
      from = {*site};
      here = s.sites()[*site].city;  // its own city is no news
    } else {
      from = s.sites_in_city(here);
    }
    std::vector<double> dist = solver::distances_from(s, from, false);
    std::map<std::string, double> cities;
    for (std::size_t i = 0; i < s.sites().size(); ++i) {
      const auto& city = s.sites()[i].city;
      if (city.empty() || lower(city) == lower(here) || dist[i] >= solver::Routes::kUnreached) continue;
      auto [it, fresh] = cities.emplace(city, dist[i]);
      if (!fresh) it->second = std::min(it->second, dist[i]);
    }
    std::vector<std::pair<double, std::string>> nearest;
    for (const auto& [city, d] : cities) nearest.emplace_back(d, city);
    std::sort(nearest.begin(), nearest.end());
    Json fitting = Json::array();
    for (std::size_t i = 0; i < std::min<std::size_t>(nearest.size(), 12) && fitting.size() < 5; ++i) {
      Json p = parameters;
      p["location"] = nearest[i].second;
      if (fits(s, bp, offering, p, mode, hours)) fitting.push_back(nearest[i].second);
    }
    if (!fitting.empty())
      out.push_back({{"parameter", "location"}, {"values", fitting},
                     {"detail", fmt::format("the order fits as it is in {}", fitting.dump())}});
  }
  if (decls.contains("streams") && parameters.contains("streams") && parameters["streams"].is_number()) {
    long lo = static_cast<long>(decls["streams"].value("minimum", 1.0)), hi = parameters["streams"].get<long>() - 1;
    long best = -1;
    while (lo <= hi) {  // the most streams that fit
      long mid = (lo + hi) / 2;
      Json p = parameters;
      p["streams"] = mid;
      if (fits(s, bp, offering, p, mode, hours)) {
        best = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (best > 0)
      out.push_back({{"parameter", "streams"}, {"value", best},
                     {"detail", fmt::format("at most {} streams fit with the other parameters as they are", best)}});
  }
  return out;
}

}  // namespace

Result<Translated> translate(const solver::Snapshot& s, const blueprint::Blueprint& bp, const Json& offering_in,
                             const Json& parameters, const std::string& billing_mode, double duration_hours) {
  // Without an offering (an operator's what-if on a blueprint) it is priced at cost.
  const Json offering = offering_in.is_null()
                            ? Json{{"name", "(at cost)"}, {"billing", {{"modes", {"per_minute"}}, {"markup", 0.0}}}}
                            : offering_in;
  Json evaluation;
  auto a = attempt(s, bp, offering, parameters, billing_mode, duration_hours, &evaluation);
  if (!a) return fail(a.error());
  Translated out;
  out.demand = std::move(evaluation);
  Json training = Json::array();
  for (const auto& c : bp.components())
    if (c.training) training.push_back(c.name);
  out.demand["scheduled_separately"] = training;  // training jobs, not placed with the service
  out.solutions = Json::array();
  for (std::size_t i = 0; i < a->answer.solutions.size(); ++i) {
    const auto& sol = a->answer.solutions[i];
    Json j = solver::solution_json(s, a->demand, sol, fmt::format("s{}", i + 1));
    j["quote"] = a->price.quote(sol.compute_cost, sol.network_cost);
    out.solutions.push_back(std::move(j));
  }
  if (a->answer.solutions.empty()) {
    out.infeasible = solver::explanation_json(s, a->demand, a->answer);
    if (a->answer.explanation.cheapest_cost_per_hour)
      out.infeasible["cheapest_per_hour"] = a->price.per_hour(*a->answer.explanation.cheapest_cost_per_hour);
    out.infeasible["suggestions"] = suggestions(s, bp, offering, parameters, billing_mode, duration_hours, *a);
  }
  return out;
}

}  // namespace cpn::orders::detail
