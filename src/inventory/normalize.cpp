// Semantic checks and canonical form of inventory documents: quantities
// become numbers (cores, GiB), defaults are filled in, so what is stored
// and exported is stable and an import of an export is a no-op.
#include <fmt/format.h>

#include "cpn/core/quantity.hpp"
#include "cpn/inventory/inventory.hpp"

namespace cpn::inventory {
namespace {

void quantity(Json& obj, const char* field, QuantityUnit unit, const std::string& base, std::vector<FieldError>& errs,
              bool required) {
  auto it = obj.find(field);
  if (it == obj.end()) {
    if (required) errs.push_back({base + "/" + field, "required field is missing"});
    return;
  }
  auto v = parse_quantity(*it, unit);
  if (!v) {
    errs.push_back({base + "/" + field, fmt::format("'{}' is not a non-negative quantity (like 64, 500m, 16Gi)",
                                                    it->is_string() ? it->get<std::string>() : it->dump())});
    return;
  }
  *it = *v;
}

}  // namespace

std::string link_id(const Json& link) {
  if (link.contains("id")) return link["id"].get<std::string>();
  return link.value("from", "") + "--" + link.value("to", "");
}

std::vector<FieldError> normalize_site(Json& site, const std::string&) {
  std::vector<FieldError> errs;
  if (!site.contains("labels")) site["labels"] = Json::object();
  if (!site.contains("controller")) site["controller"] = {{"driver", "sim"}};
  if (!site.contains("prices")) site["prices"] = Json::object();
  auto& prices = site["prices"];
  if (!prices.is_object()) return errs;  // the schema has said what is wrong
  for (const char* f : {"cpu_core_hour", "memory_gib_hour"})
    if (!prices.contains(f)) prices[f] = 0.0;
  if (!prices.contains("accelerators")) prices["accelerators"] = Json::object();
  return errs;
}

std::vector<FieldError> normalize_node(Json& node, const std::string& base) {
  std::vector<FieldError> errs;
  quantity(node, "cpu", QuantityUnit::cores, base, errs, true);
  quantity(node, "memory", QuantityUnit::gib, base, errs, true);
  quantity(node, "storage", QuantityUnit::gib, base, errs, false);
  if (!node.contains("storage")) node["storage"] = 0.0;
  if (!node.contains("accelerators")) node["accelerators"] = Json::array();
  if (!node["accelerators"].is_array()) return errs;  // the schema has said what is wrong
  std::size_t i = 0;
  for (auto& a : node["accelerators"]) {
    if (!a.is_object()) continue;
    std::string ab = fmt::format("{}/accelerators/{}", base, i++);
    quantity(a, "memory", QuantityUnit::gib, ab, errs, false);
  }
  if (!node.contains("labels")) node["labels"] = Json::object();
  if (!node.contains("state")) node["state"] = "ready";
  return errs;
}

std::vector<FieldError> normalize_link(Json& link, const std::string& base) {
  std::vector<FieldError> errs;
  if (link.value("from", "") == link.value("to", ""))
    errs.push_back({base + "/to", "a link must join two different sites"});
  if (!link.contains("id")) link["id"] = link_id(link);
  if (!link.contains("price_mbps_hour")) link["price_mbps_hour"] = 0.0;
  if (!link.contains("labels")) link["labels"] = Json::object();
  return errs;
}

}  // namespace cpn::inventory
