#include "cpn/catalog/catalog.hpp"

#include <fmt/format.h>

namespace cpn::catalog {
namespace {

std::string state_of(const Json& body) { return body.value("/status/state"_json_pointer, "draft"); }

// The service mode must stay inside what the blueprint declares.
std::vector<FieldError> check_service_mode(const Json& body, const Json& declared) {
  std::vector<FieldError> errs;
  const Json mode = body.value("/service_mode/parameters"_json_pointer, Json::object());
  for (const auto& [name, rule] : mode.items()) {
    std::string base = "/service_mode/parameters/" + pointer_token(name);
    if (!declared.contains(name)) {
      errs.push_back({base, fmt::format("the blueprint has no parameter '{}'", name)});
      continue;
    }
    const Json& decl = declared[name];
    for (const char* bound : {"minimum", "maximum"}) {
      if (!rule.contains(bound)) continue;
      double v = rule[bound].get<double>();
      if ((decl.contains("minimum") && v < decl["minimum"].get<double>()) ||
          (decl.contains("maximum") && v > decl["maximum"].get<double>()))
        errs.push_back({base + "/" + bound, fmt::format("{} is outside the blueprint's range", v)});
    }
    if (rule.contains("minimum") && rule.contains("maximum") && rule["minimum"] > rule["maximum"])
      errs.push_back({base + "/minimum", "minimum is above maximum"});
    if (rule.contains("enum") && decl.contains("enum"))
      for (std::size_t i = 0; i < rule["enum"].size(); ++i)
        if (std::find(decl["enum"].begin(), decl["enum"].end(), rule["enum"][i]) == decl["enum"].end())
          errs.push_back({fmt::format("{}/enum/{}", base, i), "not a value the blueprint allows"});
    if (rule.contains("default")) {
      const Json& d = rule["default"];
      if (rule.contains("enum") && std::find(rule["enum"].begin(), rule["enum"].end(), d) == rule["enum"].end())
        errs.push_back({base + "/default", "the default is not one of the offered values"});
      if (d.is_number() && ((rule.contains("minimum") && d < rule["minimum"]) || (rule.contains("maximum") && d > rule["maximum"])))
        errs.push_back({base + "/default", "the default is outside the offered range"});
    }
  }
  return errs;
}

}  // namespace

Catalog::Catalog(engine::Engine& engine, blueprint::Library& library)
    : engine_(engine),
      library_(library),
      offerings_(engine, [this] {
        resource::Rules r;
        r.kind = kOffering;
        r.schema = "offering";
        r.title = "offering";
        r.read_only = {"status"};
        r.admit = [](Json& body, const engine::Object* existing, const engine::Engine& e) {
          std::vector<FieldError> errs;
          std::string bp = body["blueprint"].value("name", ""), ver = body["blueprint"].value("version", "");
          const engine::Object* version = e.find(blueprint::kBlueprint, blueprint::version_id(bp, ver));
          if (!version) {
            errs.push_back({"/blueprint", fmt::format("no blueprint '{}' version {}", bp, ver)});
          } else {
            auto more = check_service_mode(body, version->body.value("parameters", Json::object()));
            errs.insert(errs.end(), more.begin(), more.end());
          }
          if (!body["billing"].contains("currency")) body["billing"]["currency"] = "CNY";
          if (!body.contains("labels")) body["labels"] = Json::object();
          body["status"] = existing ? existing->body["status"] : Json{{"state", "draft"}};
          return errs;
        };
        r.id_of = [](const Json& b) { return b["name"].get<std::string>(); };
        return r;
      }()) {}

Result<Json> Catalog::replace(const std::string& name, const Json& doc, std::optional<std::int64_t> if_match) {
  auto current = offerings_.find(name);
  if (!current) return fail(current.error());
  if (state_of((*current)->body) != "draft")
    return fail(Error::conflict(fmt::format("offering '{}' is {}: its terms are fixed; create a new offering",
                                            name, state_of((*current)->body))));
  return offerings_.replace(name, doc, if_match);
}

Result<Json> Catalog::transition(const std::string& name, const std::string& action) {
  static const std::map<std::string, std::pair<std::vector<std::string>, std::string>> rules = {
      {"publish", {{"draft", "suspended"}, "published"}},
      {"suspend", {{"published"}, "suspended"}},
      {"retire", {{"draft", "published", "suspended"}, "retired"}},
  };
  auto rule = rules.find(action);
  if (rule == rules.end()) return fail(Error::not_found(fmt::format("no action '{}'", action)));
  std::string event = "Offering" + std::string(1, static_cast<char>(std::toupper(action[0]))) + action.substr(1) +
                      (action.back() == 'e' ? "d" : "ed");
  return offerings_.update(
      name, std::nullopt,
      [&](Json& body) -> Status {
        std::string from = state_of(body);
        const auto& allowed = rule->second.first;
        if (std::find(allowed.begin(), allowed.end(), from) == allowed.end())
          return fail(Error::conflict(fmt::format("cannot {} offering '{}': it is {}", action, name, from)));
        if (action == "publish") {
          std::string id = blueprint::version_id(body["blueprint"]["name"], body["blueprint"]["version"]);
          const engine::Object* bp = engine_.find(blueprint::kBlueprint, id);
          if (!bp || bp->body.value("/status/state"_json_pointer, "draft") != "published")
            return fail(Error::conflict(
                fmt::format("cannot publish offering '{}': blueprint {} is not published", name, id),
                {{"/blueprint", "the blueprint version must be published first"}}));
        }
        body["status"] = {{"state", rule->second.second}};
        return {};
      },
      event);
}

std::vector<std::string> Catalog::users_of(const std::string& blueprint, const std::string& version) const {
  std::vector<std::string> out;
  for (const engine::Object* o : engine_.list(kOffering))
    if (o->body["blueprint"].value("name", "") == blueprint && o->body["blueprint"].value("version", "") == version &&
        state_of(o->body) != "retired")
      out.push_back("offering/" + o->id);
  return out;
}

Result<Json> Catalog::order_parameters(const std::string& offering, const Json& parameters) const {
  auto o = offerings_.find(offering);
  if (!o) return fail(o.error());
  const Json& body = (*o)->body;
  if (state_of(body) != "published")
    return fail(Error::conflict(fmt::format("offering '{}' is {}: it takes no new orders", offering, state_of(body))));
  if (!parameters.is_object()) return fail(Error::invalid_field("/parameters", "parameters must be an object"));
  const Json mode = body.value("/service_mode/parameters"_json_pointer, Json::object());
  std::vector<FieldError> errs;
  Json out = Json::object();
  for (const auto& [name, v] : parameters.items()) {
    std::string ptr = "/parameters/" + pointer_token(name);
    if (!mode.contains(name) || !mode[name].value("settable", true)) {
      errs.push_back({ptr, "this offering does not let customers set it"});
      continue;
    }
    const Json& rule = mode[name];
    if (rule.contains("enum") && std::find(rule["enum"].begin(), rule["enum"].end(), v) == rule["enum"].end())
      errs.push_back({ptr, fmt::format("{} is not one of {}", v.dump(), rule["enum"].dump())});
    else if (v.is_number() && rule.contains("minimum") && v < rule["minimum"])
      errs.push_back({ptr, fmt::format("{} is below this offering's minimum {}", v.dump(), rule["minimum"].dump())});
    else if (v.is_number() && rule.contains("maximum") && v > rule["maximum"])
      errs.push_back({ptr, fmt::format("{} is above this offering's maximum {}", v.dump(), rule["maximum"].dump())});
    out[name] = v;
  }
  for (const auto& [name, rule] : mode.items())
    if (!out.contains(name) && rule.contains("default")) out[name] = rule["default"];
  if (!errs.empty()) return fail(Error::invalid_document("parameters", std::move(errs)));
  // The blueprint's own declarations (types, ranges, required) apply too.
  auto bp = library_.compiled(body["blueprint"]["name"], body["blueprint"]["version"]);
  if (!bp) return fail(bp.error());
  auto bound = (*bp)->bind(out, "/parameters");
  if (!bound) return fail(bound.error());
  return out;
}

}  // namespace cpn::catalog
