// libFuzzer target for deployment templates as POST /v1/deployments takes
// them: the body as YAML, checked by templates::parse (default limits)
// against the demo topology and its image registry, then its reservation
// worked out and tried (the changes are not committed, so every input sees
// the same inventory). No input may crash or throw.
#include "cpn/template/template.hpp"
#include "fuzz_support.hpp"
#include "fuzz_world.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& world = cpn::fuzz::World::get();
  auto doc = cpn::parse_document(cpn::fuzz::text(data, size), cpn::Format::yaml);
  if (!doc) return 0;
  static const cpn::templates::Limits limits;
  auto parsed = cpn::templates::parse(*doc, world.engine(), world.images(), limits);
  if (!parsed) return 0;
  cpn::Json reservation = cpn::templates::reservation_of(*parsed);
  (void)cpn::templates::reserve(reservation, +1, world.engine());
  (void)cpn::to_yaml(*parsed);
  return 0;
}
