// What each role sees of orders and deployments. Operators see everything;
// a customer sees its price and the lines that make it up, never the
// operator's resource cost or markup (the way a cloud bill shows list
// prices, not the provider's costs).
#include "views.hpp"

namespace cpn::api {
namespace {

// A quote as a customer sees it: compute, network and markup become one
// "service" line; resource cost is dropped.
void customer_quote(Json& quote) {
  if (!quote.is_object()) return;
  quote.erase("resource_cost_per_hour");
  if (!quote.contains("breakdown") || !quote["breakdown"].is_array()) return;
  Json lines = Json::array();
  double service = 0;
  bool any = false;
  for (const auto& line : quote["breakdown"]) {
    std::string item = line.value("item", "");
    if (item == "compute" || item == "network" || item == "markup") {
      service += line.value("per_hour", 0.0);
      any = true;
    } else {
      lines.push_back(line);
    }
  }
  if (any) lines.insert(lines.begin(), Json{{"item", "service"}, {"per_hour", std::round(service * 100) / 100}});
  quote["breakdown"] = std::move(lines);
}

void customer_solution(Json& solution) {
  if (!solution.is_object()) return;
  if (solution.contains("estimate") && solution["estimate"].is_object())
    for (const char* k : {"cost_per_hour", "compute_cost_per_hour", "network_cost_per_hour"}) solution["estimate"].erase(k);
  if (solution.contains("quote")) customer_quote(solution["quote"]);
}

}  // namespace

void order_view(Json& order, const auth::Principal& who) {
  if (who.role != "customer" || !order.is_object()) return;
  if (order.contains("solutions") && order["solutions"].is_array())
    for (auto& s : order["solutions"]) customer_solution(s);
  if (order.contains("solution")) customer_solution(order["solution"]);
  if (order.contains("infeasible") && order["infeasible"].is_object()) order["infeasible"].erase("cheapest_cost_per_hour");
}

void deployment_view(Json& deployment, const auth::Principal& who) {
  if (who.role != "customer" || !deployment.is_object()) return;
  // GET .../template answers the template itself; the others hold it.
  Json* doc = deployment.contains("template") ? &deployment["template"] : &deployment;
  if (doc->is_object() && doc->contains("spec") && (*doc)["spec"].contains("billing"))
    customer_quote((*doc)["spec"]["billing"]);
}

void offering_view(Json& offering, const auth::Principal& who) {
  if (who.role != "customer" || !offering.is_object() || !offering.contains("billing")) return;
  if (offering["billing"].is_object()) offering["billing"].erase("markup");  // with the price, it gives the cost away
}

}  // namespace cpn::api
