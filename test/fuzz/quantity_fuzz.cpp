// libFuzzer target for quantities ("500m", "4Gi", numbers) and durations
// ("1h30m"): as text, and as whatever JSON value a document holds there.
// No input may crash; with CPN_FUZZ_STRICT=1 an answer must also be finite
// and not negative, as the header promises.
#include <cmath>

#include "cpn/core/quantity.hpp"
#include "fuzz_support.hpp"

namespace {

void check(std::optional<double> v, const char* what) {
  if (v) cpn::fuzz::expect(std::isfinite(*v) && *v >= 0, what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view s = cpn::fuzz::text(data, size);
  check(cpn::parse_quantity(s, cpn::QuantityUnit::cores), "parse_quantity(text, cores) is finite and >= 0");
  check(cpn::parse_quantity(s, cpn::QuantityUnit::gib), "parse_quantity(text, gib) is finite and >= 0");
  check(cpn::parse_duration_seconds(s), "parse_duration_seconds is finite and >= 0");
  // The value as a document field holds it: `cpu: <input>` in YAML.
  auto doc = cpn::parse_document(std::string("v: ") + std::string(s), cpn::Format::yaml);
  if (doc && doc->is_object() && doc->contains("v")) {
    check(cpn::parse_quantity((*doc)["v"], cpn::QuantityUnit::cores), "parse_quantity(json, cores) is finite and >= 0");
    check(cpn::parse_quantity((*doc)["v"], cpn::QuantityUnit::gib), "parse_quantity(json, gib) is finite and >= 0");
  }
  return 0;
}
