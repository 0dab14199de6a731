// Request and response bodies come as JSON or YAML (the same schema, the
// Content-Type decides). Internally every document is nlohmann::json.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cpn/core/error.hpp"

namespace cpn {

using Json = nlohmann::json;

enum class Format { json, yaml };

// Parses a JSON or YAML text; syntax errors are bad_request naming line and
// column. Duplicate keys in YAML mappings are rejected.
// Documents nested deeper than 64 levels or with strings over 8 KiB are
// refused (400), as are YAML that is not UTF-8, duplicate keys and YAML
// aliases that expand past twice the text; numbers beyond 1e15 or not
// finite, and objects of more than 1,024 members, are 422 with a pointer.
Result<Json> parse_document(std::string_view text, Format format);

std::string to_yaml(const Json& doc);
std::string to_json(const Json& doc, bool pretty = false);

// The RFC 7386 merge patch that turns `from` into `to`: changed members,
// removed ones as null, arrays and scalars whole. (A member whose new value
// is null reads as removed: merge patches cannot say null.)
Json merge_diff(const Json& from, const Json& to);

// Reads a YAML or JSON file (by extension) from disk.
Result<Json> load_document_file(const std::string& path);

}  // namespace cpn
