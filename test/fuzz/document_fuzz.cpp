// libFuzzer target for request bodies: parse_document as JSON (built as
// document_json_fuzz) or YAML (document_yaml_fuzz, -DCPN_FUZZ_YAML), then
// what cpnd does with what parsed: answer it as YAML and JSON. Neither may
// crash or throw; with CPN_FUZZ_STRICT=1 each must also read back as the
// same document.
#include "fuzz_support.hpp"

#ifdef CPN_FUZZ_YAML
constexpr cpn::Format kFormat = cpn::Format::yaml;
#else
constexpr cpn::Format kFormat = cpn::Format::json;
#endif

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto doc = cpn::parse_document(cpn::fuzz::text(data, size), kFormat);
  if (!doc) {
    (void)doc.error().message.size();
    return 0;
  }
  std::string yaml = cpn::to_yaml(*doc);
  std::string json = cpn::to_json(*doc);
  std::string pretty = cpn::to_json(*doc, true);
  if (cpn::fuzz::strict()) {
    auto from_yaml = cpn::parse_document(yaml, cpn::Format::yaml);
    cpn::fuzz::expect(from_yaml.has_value(), "to_yaml's output parses as YAML");
    cpn::fuzz::expect(*from_yaml == *doc, "to_yaml's output reads back as the same document");
    auto from_json = cpn::parse_document(json, cpn::Format::json);
    cpn::fuzz::expect(from_json.has_value(), "to_json's output parses as JSON");
    cpn::fuzz::expect(*from_json == *doc, "to_json's output reads back as the same document");
  }
  return 0;
}
