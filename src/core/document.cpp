#include "cpn/core/document.hpp"

#include <cmath>
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

Result<Json> parse_document(std::string_view text, Format format) {
  if (format == Format::json) {
    try {
      return Json::parse(text);
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
  try {
    YAML::Node root = YAML::Load(std::string(text));
    return yaml_to_json(root, "");
  } catch (const YAML::Exception& e) {
    return fail(Error::bad_request(
        fmt::format("malformed YAML at line {}, column {}: {}", e.mark.line + 1, e.mark.column + 1, e.msg),
        {{"", fmt::format("syntax error at line {}, column {}", e.mark.line + 1, e.mark.column + 1)}}));
  }
}

std::string to_yaml(const Json& doc) {
  YAML::Emitter out;
  emit(out, doc);
  return std::string(out.c_str()) + "\n";
}

std::string to_json(const Json& doc, bool pretty) { return pretty ? doc.dump(2) : doc.dump(); }

Result<Json> load_document_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Error::not_found(fmt::format("cannot open '{}'", path)));
  std::stringstream ss;
  ss << in.rdbuf();
  bool json = path.size() > 5 && path.substr(path.size() - 5) == ".json";
  auto doc = parse_document(ss.str(), json ? Format::json : Format::yaml);
  if (!doc) doc.error().message = path + ": " + doc.error().message;
  return doc;
}

}  // namespace cpn
