#include "cpn/core/document.hpp"
#include "cpn/core/file.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <cmath>
#include <cstdlib>
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
Json plain_scalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  // integers, then floats; anything left over is a string
  if (s.find_first_not_of("+-0123456789") == std::string::npos) {
    long long v = 0;
    const char* first = s.data() + (s[0] == '+' ? 1 : 0);
    auto [p, ec] = std::from_chars(first, s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size()) return v;
  }
  if (s.find_first_not_of("+-0123456789.eE") == std::string::npos && s.find_first_of("0123456789") != std::string::npos) {
    double v = 0;
    const char* first = s.data() + (s[0] == '+' ? 1 : 0);
    auto [p, ec] = std::from_chars(first, s.data() + s.size(), v);
    // Out of range: "1e400" reads as infinity (refused by the number check
    // below), "1e-400" as the nearest double (0), as JSON's parser reads them.
    if (ec == std::errc::result_out_of_range && p == s.data() + s.size()) return std::strtod(first, nullptr);
    if (ec == std::errc() && p == s.data() + s.size()) return v;
  }
  return s;
}

Json scalar_to_json(const YAML::Node& node) {
  if (node.Tag() == "!") return node.Scalar();  // quoted
  return plain_scalar(node.Scalar());
}

constexpr int kMaxDepth = 64;             // documents are configuration, not data dumps
constexpr std::size_t kMaxString = 8192;  // std::regex (valijson's patterns) recurses per character
constexpr double kMaxMagnitude = 1e15;    // any quantity cpnd keeps; exact as an integer in a double
constexpr std::size_t kMaxMembers = 1024; // an object's keys (lists of things are arrays)

// Well-formed UTF-8 as Unicode's table 3-7 defines it: no overlong forms,
// no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  auto in = [](unsigned char c, unsigned char lo, unsigned char hi) { return c >= lo && c <= hi; };
  while (i < s.size()) {
    unsigned char c = byte(i);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = in(c, 0xC2, 0xDF) ? 2 : in(c, 0xE0, 0xEF) ? 3 : in(c, 0xF0, 0xF4) ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // U+D800..U+DFFF are surrogates
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    if (!in(byte(i + 1), lo, hi)) return false;
    for (std::size_t k = 2; k < n; ++k)
      if (!in(byte(i + k), 0x80, 0xBF)) return false;
    i += n;
  }
  return true;
}

// What expanding a YAML document may produce: aliases repeat a node without
// repeating its text, so nodes and bytes are counted as they are produced,
// before a bomb of nested aliases can take the memory.
struct Budget {
  std::size_t nodes;
  std::size_t bytes;
};

struct ExpansionTooLarge {};

// Where the walk is: keys and indexes, made into a pointer only for an error
// (building one per node would cost its depth times its keys' length).
struct Step {
  std::string_view key;
  std::size_t index = 0;
  bool in_map = false;
};
std::string pointer_of(const std::vector<Step>& path) {
  std::string out;
  for (const auto& s : path) out += "/" + (s.in_map ? pointer_token(s.key) : std::to_string(s.index));
  return out;
}

Result<Json> yaml_to_json(const YAML::Node& node, std::vector<Step>& path, Budget& budget) {
  if (path.size() > static_cast<std::size_t>(kMaxDepth))
    return fail(Error::bad_request(fmt::format("document nested deeper than {} levels", kMaxDepth),
                                   {{pointer_of(path), "nested too deeply"}}));
  if (budget.nodes == 0) throw ExpansionTooLarge{};
  --budget.nodes;
  auto charge = [&](const std::string& text) {
    if (text.size() > budget.bytes) throw ExpansionTooLarge{};
    budget.bytes -= text.size();
  };
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return Json(nullptr);
    case YAML::NodeType::Scalar:
      charge(node.Scalar());
      // Escapes ("\N", "\_") and yaml-cpp's own encoding guesses can make bytes that are not UTF-8.
      if (!valid_utf8(node.Scalar()))
        return fail(Error::bad_request("a string is not valid UTF-8", {{pointer_of(path), "not UTF-8"}}));
      return scalar_to_json(node);
    case YAML::NodeType::Sequence: {
      Json arr = Json::array();
      path.push_back({});
      for (const auto& item : node) {
        auto v = yaml_to_json(item, path, budget);
        if (!v) return v;
        arr.push_back(std::move(*v));
        ++path.back().index;
      }
      path.pop_back();
      return arr;
    }
    case YAML::NodeType::Map: {
      Json obj = Json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar())
          return fail(Error::bad_request("YAML mapping keys must be scalars", {{pointer_of(path), "non-scalar key"}}));
        const std::string& key = kv.first.Scalar();
        charge(key);  // an aliased mapping repeats its keys as well as its values
        if (key.size() > kMaxString)
          return fail(Error::bad_request("document too large: key too long", {{pointer_of(path), "key too long"}}));
        if (!valid_utf8(key))
          return fail(Error::bad_request("a key is not valid UTF-8", {{pointer_of(path), "key not UTF-8"}}));
        path.push_back({key, 0, true});
        if (obj.contains(key))
          return fail(Error::bad_request(fmt::format("duplicate key '{}'", key), {{pointer_of(path), "duplicate key"}}));
        auto v = yaml_to_json(kv.second, path, budget);
        if (!v) return v;
        obj[key] = std::move(*v);
        path.pop_back();
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
      Json back = plain_scalar(s);
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

// Sizes and numbers, checked once on the parsed document: strings and keys
// bounded; numbers finite and within what any quantity of cpnd can be.
std::optional<Error> out_of_bounds(const Json& j, const std::string& pointer, int depth) {
  if (depth > kMaxDepth)
    return Error::bad_request(fmt::format("document too large: nested deeper than {} levels", kMaxDepth),
                              {{pointer, "nested too deeply"}});
  if (j.is_string() && j.get_ref<const std::string&>().size() > kMaxString)
    return Error::bad_request(fmt::format("document too large: string longer than {} bytes", kMaxString),
                              {{pointer, fmt::format("string longer than {} bytes", kMaxString)}});
  if (j.is_number()) {
    double v = j.get<double>();
    if (!std::isfinite(v) || std::fabs(v) > kMaxMagnitude)
      return Error::invalid_field(pointer, fmt::format("number out of range (finite, at most {:g} in magnitude)", kMaxMagnitude));
  }
  if (j.is_object() && j.size() > kMaxMembers)  // before a schema's pattern is matched against each key
    return Error::invalid_field(pointer, fmt::format("more than {} members", kMaxMembers));
  if (j.is_object())
    for (const auto& [k, v] : j.items()) {
      if (k.size() > kMaxString) return Error::bad_request("document too large: key too long", {{pointer, "key too long"}});
      if (auto e = out_of_bounds(v, pointer + "/" + pointer_token(k), depth + 1)) return e;
    }
  if (j.is_array())
    for (std::size_t i = 0; i < j.size(); ++i)
      if (auto e = out_of_bounds(j[i], pointer + "/" + std::to_string(i), depth + 1)) return e;
  return std::nullopt;
}

// JSON through nlohmann's SAX interface, into its DOM builder, with what the
// DOM parser does not check: duplicate keys (refused, as in YAML) and depth,
// both before anything is built from them, each with its pointer.
class CheckedJson {
 public:
  explicit CheckedJson(Json& root) : dom_(root, false) {}
  std::optional<Error> error;
  std::size_t error_at = 0;  // byte offset of a syntax error

  bool null() { return value() && dom_.null(); }
  bool boolean(bool v) { return value() && dom_.boolean(v); }
  bool number_integer(Json::number_integer_t v) { return value() && dom_.number_integer(v); }
  bool number_unsigned(Json::number_unsigned_t v) { return value() && dom_.number_unsigned(v); }
  bool number_float(Json::number_float_t v, const Json::string_t& s) { return value() && dom_.number_float(v, s); }
  bool string(Json::string_t& v) { return value() && dom_.string(v); }
  bool binary(Json::binary_t& v) { return value() && dom_.binary(v); }
  bool start_object(std::size_t n) { return open(true) && dom_.start_object(n); }
  bool start_array(std::size_t n) { return open(false) && dom_.start_array(n); }
  bool end_object() { return close() && dom_.end_object(); }
  bool end_array() { return close() && dom_.end_array(); }
  bool key(Json::string_t& k) {
    Frame& f = frames_.back();
    f.key = k;
    if (!f.keys.insert(k).second) {
      error = Error::bad_request(fmt::format("duplicate key '{}'", k), {{pointer(), "duplicate key"}});
      return false;
    }
    return dom_.key(k);
  }
  bool parse_error(std::size_t position, const std::string& last_token, const nlohmann::detail::exception&) {
    error_at = position;
    // A number too large for a double ("1e400") is a value out of range, not a syntax error.
    if (!last_token.empty() && last_token.find_first_not_of("+-0123456789.eE") == std::string::npos &&
        std::isinf(std::strtod(last_token.c_str(), nullptr)))
      error = Error::invalid_field(pointer(true), fmt::format("number out of range (finite, at most {:g} in magnitude)",
                                                              kMaxMagnitude));
    return false;
  }

 private:
  struct Frame {
    bool object = false;
    std::set<std::string> keys;
    std::string key;
    std::size_t index = 0;
  };
  // A value (scalar or container) begins: it is the next item of an array.
  bool value() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
    return true;
  }
  bool open(bool object) {
    value();
    if (frames_.size() >= static_cast<std::size_t>(kMaxDepth)) {
      error = Error::bad_request(fmt::format("document nested deeper than {} levels", kMaxDepth),
                                 {{pointer(), "nested too deeply"}});
      return false;
    }
    frames_.push_back(Frame{object, {}, {}, 0});
    return true;
  }
  bool close() {
    frames_.pop_back();
    return true;
  }
  // Of the value being read; next: of the one about to begin (an array's next item).
  std::string pointer(bool next = false) const {
    std::string out;
    for (std::size_t i = 0; i < frames_.size(); ++i) {
      const Frame& f = frames_[i];
      bool last = i + 1 == frames_.size();
      out += "/" + (f.object ? pointer_token(f.key) : std::to_string(f.index - (next && last ? 0 : 1)));
    }
    return out;
  }
  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  std::vector<Frame> frames_;
};

Error syntax_error(std::string_view text, std::size_t byte) {
  // nlohmann reports a byte offset; turn it into line and column.
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  col = col > 1 ? col - 1 : 1;
  return Error::bad_request(fmt::format("malformed JSON at line {}, column {}", line, col),
                            {{"", fmt::format("syntax error at line {}, column {}", line, col)}});
}

// The syntax alone; parse_document adds the size checks.
Result<Json> parse_unchecked(std::string_view text, Format format) {
  if (format == Format::json) {
    Json root;
    CheckedJson sax(root);
    bool ok = Json::sax_parse(text, &sax, Json::input_format_t::json, true);
    if (sax.error) return fail(*sax.error);
    if (!ok) return fail(syntax_error(text, sax.error_at));
    return root;
  }
  if (!valid_utf8(text)) return fail(Error::bad_request("the document is not valid UTF-8", {{"", "not UTF-8"}}));
  // YAML's printable set: a NUL would also make yaml-cpp guess UTF-16 or UTF-32.
  for (unsigned char c : text)
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
      return fail(Error::bad_request("the document holds a control character YAML does not allow", {{"", "control character"}}));
  try {
    YAML::Node root = YAML::Load(std::string(text));
    // Without aliases a document has fewer nodes than bytes; aliases may add
    // as much again, no more.
    // (with a floor, so a small document that reuses an anchor a lot is fine).
    Budget budget{std::max<std::size_t>(2 * text.size(), 200'000), std::max<std::size_t>(2 * text.size(), 4 << 20)};
    std::vector<Step> path;
    return yaml_to_json(root, path, budget);
  } catch (const ExpansionTooLarge&) {
    return fail(Error{ErrorKind::payload_too_large,
                      "the document's aliases expand to more than twice its size; write it out instead",
                      {{"", "alias expansion over the limit"}}});
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
  if (auto e = out_of_bounds(*parsed, "", 0)) return fail(*e);
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

Json merge_diff(const Json& from, const Json& to) {
  if (!from.is_object() || !to.is_object()) return to;
  Json patch = Json::object();
  for (const auto& [key, value] : to.items()) {
    auto old = from.find(key);
    if (old == from.end()) patch[key] = value;
    else if (*old != value) patch[key] = old->is_object() && value.is_object() ? merge_diff(*old, value) : value;
  }
  for (const auto& [key, value] : from.items())
    if (!to.contains(key)) patch[key] = nullptr;
  return patch;
}

}  // namespace cpn
