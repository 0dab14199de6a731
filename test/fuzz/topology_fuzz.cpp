// libFuzzer target for topology import (PUT /v1/topology): the body as
// YAML, imported all-or-nothing into one engine that starts with the demo
// topology, then exported. An import that succeeds writes; every
// kResetEvery successful imports the engine starts over, so memory stays
// bounded. No input may crash or throw.
#include "fuzz_support.hpp"
#include "fuzz_world.hpp"

namespace {
constexpr int kResetEvery = 200;
int written = 0;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& world = cpn::fuzz::World::get();
  auto doc = cpn::parse_document(cpn::fuzz::text(data, size), cpn::Format::yaml);
  if (!doc) return 0;
  auto summary = world.inventory().import_topology(*doc);
  if (!summary) return 0;
  (void)summary->to_json();
  (void)cpn::to_yaml(world.inventory().export_topology());
  if (summary->created + summary->updated > 0 && ++written >= kResetEvery) {
    written = 0;
    world.reset();
  }
  return 0;
}
