// Quantities accept plain numbers (cores, GiB, Mbps) and Kubernetes-style
// strings ("500m", "4Gi", "1.5T"). Internally cpu is cores and memory or
// storage is GiB, both as doubles.
#pragma once

#include <optional>
#include <string_view>

#include "cpn/core/document.hpp"

namespace cpn {

enum class QuantityUnit { cores, gib };

// Parses "64", "500m", "4Gi", "512Mi", "4G" or a JSON number. Returns
// nullopt for anything malformed, negative or above a billion (cores, GiB).
std::optional<double> parse_quantity(const Json& value, QuantityUnit unit);
std::optional<double> parse_quantity(std::string_view text, QuantityUnit unit);

// Parses a duration such as "90s", "15m", "12h", "30d" or "1h30m" into
// seconds. Nullopt for anything malformed, negative, without a unit or
// longer than ten years.
std::optional<double> parse_duration_seconds(std::string_view text);

}  // namespace cpn
