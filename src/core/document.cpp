#include "cpn/core/document.hpp"
#include "cpn/core/file.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace cpn {
namespace {

// YAML scalars are untyped text; plain (unquoted) ones are resolved by the
// YAML 1.2 core schema rules, quoted ones stay strings.
Json scalar_to_json(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (node.Tag() == "!") return s;  // quoted
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  // integers, then floats; anything left over is a string
  {
    std::size_t pos = 0;
    bool digits = s.find_first_not_of("+-0123456789") == std::string::npos;
    if (digits) {
      try {
        long long v = std::stoll(s, &pos);
        if (pos == s.size()) return v;
      } catch (...) {
      }
    }
  }
  if (s.find_first_not_of("+-0123456789.eE") == std::string::npos &&
      s.find_first_of("0123456789") != std::string::npos) {
    try {
      std::size_t pos = 0;
      double v = std::stod(s, &pos);
      if (pos == s.size() && std::isfinite(v)) return v;
    } catch (...) {
    }
  }
  if (s == ".inf" || s == ".nan") return s;
  return s;
}

Result<Json> yaml_to_json(const YAML::Node& node, const std::string& pointer) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return Json(nullptr);
    case YAML::NodeType::Scalar:
      return scalar_to_json(node);
    case YAML::NodeType::Sequence: {
      Json arr = Json::array();
      std::size_t i = 0;
      for (const auto& item : node) {
        auto v = yaml_to_json(item, pointer + "/" + std::to_string(i++));
        if (!v) return v;
        arr.push_back(std::move(*v));
      }
      return arr;
    }
    case YAML::NodeType::Map: {
      Json obj = Json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar())
          return fail(Error::bad_request("YAML mapping keys must be scalars", {{pointer, "non-scalar key"}}));
        std::string key = kv.first.Scalar();
        std::string child = pointer + "/" + pointer_token(key);
        if (obj.contains(key))
          return fail(Error::bad_request(fmt::format("duplicate key '{}'", key), {{child, "duplicate key"}}));
        auto v = yaml_to_json(kv.second, child);
        if (!v) return v;
        obj[key] = std::move(*v);
      }
      return obj;
    }
  }
  return Json(nullptr);
}

void emit(YAML::Emitter& out, const Json& v) {
  switch (v.type()) {
    case Json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [k, child] : v.items()) {
        out << YAML::Key << k << YAML::Value;
        emit(out, child);
      }
      out << YAML::EndMap;
      break;
    case Json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& child : v) emit(out, child);
      out << YAML::EndSeq;
      break;
    case Json::value_t::string: {
      // Quote strings that would otherwise read back as another type.
      const auto& s = v.get_ref<const std::string&>();
      Json back = scalar_to_json(YAML::Load(s.empty() ? "''" : s));
      if (s.empty() || !back.is_string() || back.get<std::string>() != s ||
          s.find_first_of(":#{}[],&*!|>'\"%@`\n") != std::string::npos || s.front() == ' ' ||
          s.back() == ' ' || s.front() == '-')
        out << YAML::DoubleQuoted << s;
      else
        out << s;
      break;
    }
    case Json::value_t::boolean:
      out << (v.get<bool>() ? "true" : "false");
      break;
    case Json::value_t::number_integer:
      out << v.get<long long>();
      break;
    case Json::value_t::number_unsigned:
      out << v.get<unsigned long long>();
      break;
    case Json::value_t::number_float:
      out << v.dump();
      break;
    default:
      out << YAML::Null;
  }
}

}  // namespace

namespace {

constexpr int kMaxDepth = 64;             // documents are configuration, not data dumps
constexpr std::size_t kMaxString = 8192;  // std::regex (valijson's patterns) recurses per character

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : -1;
    if (n < 0 || i + static_cast<std::size_t>(n) >= s.size() + (n == 0 ? 1 : 0)) return false;
    for (int k = 1; k <= n; ++k)
      if ((static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]) >> 6) != 0x2) return false;
    i += static_cast<std::size_t>(n) + 1;
  }
  return true;
}

// Depth and string length, checked once on the parsed document.
std::optional<FieldError> too_big(const Json& j, const std::string& pointer, int depth) {
  if (depth > kMaxDepth) return FieldError{pointer, fmt::format("nested deeper than {} levels", kMaxDepth)};
  if (j.is_string() && j.get_ref<const std::string&>().size() > kMaxString)
    return FieldError{pointer, fmt::format("string longer than {} bytes", kMaxString)};
  if (j.is_object())
    for (const auto& [k, v] : j.items()) {
      if (k.size() > kMaxString) return FieldError{pointer, "key too long"};
      if (auto e = too_big(v, pointer + "/" + pointer_token(k), depth + 1)) return e;
    }
  if (j.is_array())
    for (std::size_t i = 0; i < j.size(); ++i)
      if (auto e = too_big(j[i], pointer + "/" + std::to_string(i), depth + 1)) return e;
  return std::nullopt;
}

struct TooDeep {};

}  // namespace

namespace {

// The syntax alone; parse_document adds the size checks.
Result<Json> parse_unchecked(std::string_view text, Format format) {
  if (format == Format::json) {
    try {
      // The depth is bounded while parsing, before anything recurses on it.
      return Json::parse(text, [](int depth, Json::parse_event_t, Json&) {
        if (depth > kMaxDepth) throw TooDeep{};
        return true;
      });
    } catch (const TooDeep&) {
      return fail(Error::bad_request(fmt::format("document nested deeper than {} levels", kMaxDepth),
                                     {{"", "nested too deeply"}}));
    } catch (const Json::parse_error& e) {
      // nlohmann reports a byte offset; turn it into line and column.
      std::size_t line = 1, col = 1;
      for (std::size_t i = 0; i < e.byte && i < text.size(); ++i) {
        if (text[i] == '\n') {
          ++line;
          col = 1;
        } else {
          ++col;
        }
      }
      return fail(Error::bad_request(
          fmt::format("malformed JSON at line {}, column {}", line, col > 1 ? col - 1 : 1),
          {{"", fmt::format("syntax error at line {}, column {}", line, col > 1 ? col - 1 : 1)}}));
    }
  }
  if (!valid_utf8(text)) return fail(Error::bad_request("the document is not valid UTF-8", {{"", "not UTF-8"}}));
  try {
    YAML::Node root = YAML::Load(std::string(text));
    return yaml_to_json(root, "");
  } catch (const YAML::Exception& e) {
    return fail(Error::bad_request(
        fmt::format("malformed YAML at line {}, column {}: {}", e.mark.line + 1, e.mark.column + 1, e.msg),
        {{"", fmt::format("syntax error at line {}, column {}", e.mark.line + 1, e.mark.column + 1)}}));
  }
}

}  // namespace

Result<Json> parse_document(std::string_view text, Format format) {
  auto parsed = parse_unchecked(text, format);
  if (!parsed) return parsed;
  if (auto e = too_big(*parsed, "", 0)) return fail(Error::bad_request("document too large: " + e->message, {*e}));
  return parsed;
}

std::string to_yaml(const Json& doc) {
  YAML::Emitter out;
  emit(out, doc);
  return std::string(out.c_str()) + "\n";
}

std::string to_json(const Json& doc, bool pretty) { return pretty ? doc.dump(2) : doc.dump(); }

Result<Json> load_document_file(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return fail(text.error());
  bool json = path.size() > 5 && path.substr(path.size() - 5) == ".json";
  auto doc = parse_document(*text, json ? Format::json : Format::yaml);
  if (!doc) doc.error().message = path + ": " + doc.error().message;
  return doc;
}

}  // namespace cpn
