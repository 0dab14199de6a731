#include "cpn/template/instances.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "cpn/template/template.hpp"

namespace cpn::templates {
namespace {

// The ordinal at the end of an id (-1 when there is none).
long ordinal_of(const std::string& id) {
  auto dash = id.rfind('-');
  if (dash == std::string::npos) return -1;
  long v = -1;
  auto [p, ec] = std::from_chars(id.data() + dash + 1, id.data() + id.size(), v);
  return ec == std::errc() && p == id.data() + id.size() ? v : -1;
}

}  // namespace

std::vector<std::vector<std::string>> placement_ids(const std::string& deployment, const Json& component) {
  std::vector<std::vector<std::string>> out;
  std::string name = component.value("name", "");
  int k = 0;
  for (const auto& p : component.value("placements", Json::array())) {
    int n = p.value("instances", 0);
    std::vector<std::string> ids;
    const Json* given = p.contains("instance_ids") && p["instance_ids"].is_array() ? &p["instance_ids"] : nullptr;
    if (given && static_cast<int>(given->size()) == n) {
      for (const auto& id : *given) ids.push_back(id.get<std::string>());
    } else {
      for (int i = 0; i < n; ++i) ids.push_back(instance_id(deployment, name, k + i));
    }
    k += n;
    out.push_back(std::move(ids));
  }
  return out;
}

std::vector<std::string> instance_ids(const std::string& deployment, const Json& component) {
  std::vector<std::string> out;
  for (auto& ids : placement_ids(deployment, component)) out.insert(out.end(), ids.begin(), ids.end());
  return out;
}

void assign_ids(Json& body) {
  std::string id = body.value("id", "");
  Json& counters = body["next_ordinal"];
  if (!counters.is_object()) counters = Json::object();
  for (auto& comp : body["template"]["spec"]["components"]) {
    std::string name = comp.value("name", "");
    auto ids = placement_ids(id, comp);
    long next = counters.value(name, 0L);
    for (std::size_t j = 0; j < ids.size(); ++j) {
      comp["placements"][j]["instance_ids"] = ids[j];
      for (const auto& one : ids[j]) next = std::max(next, ordinal_of(one) + 1);
    }
    // Retiring instances still hold their ids.
    for (const auto& r : body.value("retiring", Json::array()))
      if (r.value("component", name) == name) next = std::max(next, ordinal_of(r.value("instance", "")) + 1);
    counters[name] = next;
  }
}

std::string next_id(Json& body, const std::string& component) {
  Json& counters = body["next_ordinal"];
  if (!counters.is_object()) counters = Json::object();
  long k = counters.value(component, 0L);
  counters[component] = k + 1;
  return instance_id(body.value("id", ""), component, static_cast<int>(k));
}

std::optional<Json> take_out(Json& comp, const std::string& instance) {
  Json& placements = comp["placements"];
  for (std::size_t j = 0; j < placements.size(); ++j) {
    Json& p = placements[j];
    Json ids = p.value("instance_ids", Json::array());
    auto it = std::find(ids.begin(), ids.end(), Json(instance));
    if (it == ids.end()) continue;
    int n = p["instances"].get<int>();
    Json one = p;
    one["instances"] = 1;
    one["instance_ids"] = Json::array({instance});
    if (p.contains("capacity")) one["capacity"] = p["capacity"].get<double>() / std::max(1, n);
    if (n <= 1) {
      placements.erase(j);
    } else {
      ids.erase(it);
      p["instance_ids"] = ids;
      p["instances"] = n - 1;
      if (p.contains("capacity")) p["capacity"] = p["capacity"].get<double>() - one["capacity"].get<double>();
    }
    return one;
  }
  return std::nullopt;
}

}  // namespace cpn::templates
