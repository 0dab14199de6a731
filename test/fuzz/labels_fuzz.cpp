// libFuzzer target for label selectors (?labelSelector= on every list):
// parse, then match against a few label sets. No input may crash or throw.
#include "cpn/core/labels.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto selector = cpn::LabelSelector::parse(cpn::fuzz::text(data, size));
  if (!selector) return 0;
  static const cpn::Labels sets[] = {
      {},
      {{"zone", "a"}, {"tier", "edge"}, {"arch", "x86_64"}, {"gpu", ""}},
      {{"region", "prd"}, {"carrier", "china-telecom"}, {"role", "training"}, {"fpga", "true"}},
  };
  for (const auto& labels : sets) (void)selector->matches(labels);
  (void)selector->empty();
  return 0;
}
