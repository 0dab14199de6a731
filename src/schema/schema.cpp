#include "cpn/schema/schema.hpp"

#include <algorithm>
#include <memory>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "cpn/core/error.hpp"

namespace cpn::schema {
namespace {

struct Compiled {
  Json document;
  std::unique_ptr<valijson::Schema> schema;
};

std::map<std::string, Compiled>& compiled() {
  static std::map<std::string, Compiled> all = [] {
    std::map<std::string, Compiled> out;
    for (const auto& [path, text] : embedded_files()) {
      const std::string prefix = "schemas/", suffix = ".schema.json";
      if (path.rfind(prefix, 0) != 0 || path.size() <= suffix.size() ||
          path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      std::string name = path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
      Compiled c;
      c.document = Json::parse(text);
      c.schema = std::make_unique<valijson::Schema>();
      valijson::SchemaParser parser;
      valijson::adapters::NlohmannJsonAdapter adapter(c.document);
      parser.populateSchema(adapter, *c.schema);
      out.emplace(name, std::move(c));
    }
    return out;
  }();
  return all;
}

// valijson's context is ["<root>", "[sites]", "[0]", ...]; make a pointer.
std::string to_pointer(const std::vector<std::string>& context) {
  std::string out;
  for (const auto& part : context) {
    if (part == "<root>") continue;
    std::string token = part;
    if (token.size() >= 2 && token.front() == '[' && token.back() == ']') token = token.substr(1, token.size() - 2);
    out += "/" + pointer_token(token);
  }
  return out;
}

// Messages that name a property get the pointer of that property.
std::pair<std::string, std::string> refine(std::string pointer, const std::string& description) {
  auto quoted = [&](const std::string& marker) -> std::optional<std::string> {
    auto pos = description.find(marker);
    if (pos == std::string::npos) return std::nullopt;
    pos += marker.size();
    auto end = description.find('\'', pos);
    if (end == std::string::npos) return std::nullopt;
    return description.substr(pos, end - pos);
  };
  if (auto p = quoted("or 'additionalProperties' constraints: '"))
    return {pointer + "/" + pointer_token(*p), "unknown field"};
  if (auto p = quoted("Missing required property '")) return {pointer + "/" + pointer_token(*p), "required field is missing"};
  return {pointer, description};
}

// Wrapper messages that only repeat what the nested errors already say.
bool is_summary(const std::string& d) {
  return d.rfind("Failed to validate against schema associated with property name", 0) == 0 ||
         d.rfind("Failed to validate item #", 0) == 0 || d.rfind("Failed to validate against child schema", 0) == 0 ||
         d.rfind("Failed to validate against additional properties schema", 0) == 0 ||
         d.rfind("Failed to validate against any child schemas allowed by oneOf", 0) == 0 ||
         d.rfind("Failed to validate against any schemas allowed by anyOf", 0) == 0 ||
         d.rfind("Failed to validate against a conditional schema", 0) == 0 ||
         d.rfind("Failed to validate against all child schemas allowed by allOf", 0) == 0;
}

// valijson's wording, said in terms of the value the client sent.
std::string say(const Json& doc, const std::string& pointer, const std::string& message) {
  std::string value;
  try {
    const Json& v = doc.at(Json::json_pointer(pointer));
    value = v.is_string() ? "'" + v.get<std::string>() + "'" : v.dump();
    if (value.size() > 60) value = value.substr(0, 57) + "...";
  } catch (...) {
  }
  if (message.rfind("Value type not permitted", 0) == 0) return fmt::format("wrong type: {}", value);
  if (message.rfind("Failed to match regex", 0) == 0) return fmt::format("{} does not have the expected format", value);
  if (message.rfind("Failed to match against any enum values", 0) == 0)
    return fmt::format("{} is not one of the allowed values", value);
  for (const char* bound : {"Expected number greater than or equal to ", "Expected number greater than ",
                            "Expected number less than or equal to ", "Expected number less than "})
    if (message.rfind(bound, 0) == 0) {
      std::string limit = message.substr(std::string(bound).size());
      if (limit.find('.') != std::string::npos) {
        while (limit.back() == '0') limit.pop_back();
        if (limit.back() == '.') limit.pop_back();
      }
      std::string relation = std::string(bound).substr(std::string("Expected number ").size());
      return fmt::format("{} is out of range: must be {}{}", value, relation, limit);
    }
  return message;
}

}  // namespace

const Json& schema_document(const std::string& name) {
  auto it = compiled().find(name);
  if (it == compiled().end()) throw std::logic_error("no schema named " + name);
  return it->second.document;
}

std::vector<std::string> schema_names() {
  std::vector<std::string> out;
  for (const auto& [name, c] : compiled()) out.push_back(name);
  return out;
}

std::vector<FieldError> problems(const std::string& name, const Json& doc, const std::string& base) {
  auto it = compiled().find(name);
  if (it == compiled().end()) throw std::logic_error("no schema named " + name);
  valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter target(doc);
  if (validator.validate(*it->second.schema, target, &results)) return {};
  std::vector<FieldError> raw;
  valijson::ValidationResults::Error e;
  while (results.popError(e)) {
    if (is_summary(e.description)) continue;
    auto [pointer, message] = refine(to_pointer(e.context), e.description);
    raw.push_back({pointer, say(doc, pointer, message)});
  }
  // For oneOf alternatives (quantities: number or string), valijson reports
  // each failed branch; keep one message per pointer, the most telling.
  std::vector<FieldError> out;
  for (auto& fe : raw) {
    fe.pointer = base + fe.pointer;
    auto same = std::find_if(out.begin(), out.end(), [&](const FieldError& x) { return x.pointer == fe.pointer; });
    if (same == out.end())
      out.push_back(fe);
    else if (same->message.rfind("wrong type", 0) == 0)
      same->message = fe.message;
  }
  if (out.empty()) out.push_back({base.empty() ? "" : base, "document does not match its schema"});
  return out;
}

Status validate(const std::string& name, const Json& doc, const std::string& what) {
  auto errs = problems(name, doc);
  if (errs.empty()) return {};
  return fail(Error::invalid_document(what, std::move(errs)));
}

}  // namespace cpn::schema
