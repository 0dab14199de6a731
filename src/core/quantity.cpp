#include "cpn/core/quantity.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>

namespace cpn {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
// Above any node or link there is (a billion cores or GiB), and far from
// where sums and prices of such figures stop being exact.
constexpr double kMaxQuantity = 1e9;
constexpr double kMaxDurationSeconds = 10.0 * 366 * 86400;  // ten years

std::optional<double> bounded(double v, double max) {
  if (!std::isfinite(v) || v < 0 || v > max) return std::nullopt;
  return v;
}

// Multiplier from a suffix to the base unit (bytes for memory, cores for cpu).
std::optional<double> suffix_factor(std::string_view suffix) {
  if (suffix.empty()) return 1.0;
  if (suffix == "m") return 1e-3;
  if (suffix == "k") return 1e3;
  if (suffix == "M") return 1e6;
  if (suffix == "G") return 1e9;
  if (suffix == "T") return 1e12;
  if (suffix == "P") return 1e15;
  if (suffix == "Ki") return 1024.0;
  if (suffix == "Mi") return 1024.0 * 1024.0;
  if (suffix == "Gi") return kGiB;
  if (suffix == "Ti") return kGiB * 1024.0;
  if (suffix == "Pi") return kGiB * 1024.0 * 1024.0;
  return std::nullopt;
}

}  // namespace

std::optional<double> parse_quantity(std::string_view text, QuantityUnit unit) {
  std::size_t end = 0;
  while (end < text.size() && (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.')) ++end;
  if (end == 0) return std::nullopt;
  std::string number(text.substr(0, end));
  if (number.front() == '.' || number.back() == '.' || std::count(number.begin(), number.end(), '.') > 1)
    return std::nullopt;
  double value = 0;
  auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || ptr != number.data() + number.size()) return std::nullopt;
  std::string_view suffix = text.substr(end);
  auto factor = suffix_factor(suffix);
  if (!factor) return std::nullopt;
  if (unit == QuantityUnit::cores) return bounded(value * *factor, kMaxQuantity);
  // Memory: a plain number is already GiB; a suffixed one is bytes.
  if (suffix.empty()) return bounded(value, kMaxQuantity);
  return bounded(value * *factor / kGiB, kMaxQuantity);
}

std::optional<double> parse_quantity(const Json& value, QuantityUnit unit) {
  if (value.is_number()) {
    return bounded(value.get<double>(), kMaxQuantity);
  }
  if (value.is_string()) return parse_quantity(std::string_view(value.get_ref<const std::string&>()), unit);
  return std::nullopt;
}

std::optional<double> parse_duration_seconds(std::string_view text) {
  if (text.empty()) return std::nullopt;
  double total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    if (i == start || i == text.size()) return std::nullopt;  // a number needs a unit after it
    double value = 0;
    auto [ptr, ec] = std::from_chars(text.data() + start, text.data() + i, value);
    if (ec != std::errc() || ptr != text.data() + i) return std::nullopt;
    double unit = 0;
    switch (text[i]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      default: return std::nullopt;
    }
    ++i;
    total += value * unit;
    if (!std::isfinite(total) || total > kMaxDurationSeconds) return std::nullopt;
  }
  return total;
}

}  // namespace cpn
