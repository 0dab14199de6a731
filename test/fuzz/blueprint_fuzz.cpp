// libFuzzer target for blueprints as POST /v1/blueprints takes them: the
// body as YAML, checked against the blueprint schema, and what passes
// compiled against the embedded component templates and the known
// accelerator models (the collection calls compile only for a document the
// schema accepts); what compiles is evaluated for no parameters (a trial,
// as .../evaluate does) and answered as YAML. No input may crash or throw.
// With CPN_FUZZ_STRICT=1 every document is compiled, valid or not, as
// Blueprint::compile promises to report (not throw) whatever is wrong.
#include "cpn/blueprint/blueprint.hpp"
#include "cpn/inventory/measurement.hpp"
#include "cpn/schema/schema.hpp"
#include "fuzz_support.hpp"

namespace {

const cpn::blueprint::Context& context() {
  static const auto* templates = [] {
    auto* out = new std::map<std::string, cpn::Json>;
    for (const auto& [path, text] : cpn::schema::embedded_files()) {
      if (path.rfind("blueprints/templates/", 0) != 0) continue;
      auto doc = cpn::parse_document(text, cpn::Format::yaml);
      if (!doc) continue;
      (*out)[cpn::blueprint::version_id(doc->value("/metadata/name"_json_pointer, ""),
                                        doc->value("/metadata/version"_json_pointer, ""))] = (*doc)["spec"];
    }
    return out;
  }();
  static const cpn::blueprint::Context ctx = [] {
    cpn::blueprint::Context c;
    for (const auto& [model, rating] : cpn::inventory::Measurement::with_overrides(cpn::Json::object()).accelerators)
      c.accelerator_models.insert(model);
    c.find_template = [](const std::string& ref) -> const cpn::Json* {
      auto it = templates->find(ref);
      return it == templates->end() ? nullptr : &it->second;
    };
    return c;
  }();
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto doc = cpn::parse_document(cpn::fuzz::text(data, size), cpn::Format::yaml);
  if (!doc) return 0;
  if (!cpn::fuzz::strict() && !cpn::schema::problems("blueprint", *doc).empty()) return 0;
  auto bp = cpn::blueprint::Blueprint::compile(*doc, context());
  if (!bp) return 0;
  (void)cpn::to_yaml(bp->expanded());
  auto evaluated = bp->evaluate(cpn::Json::object());
  if (evaluated) (void)cpn::to_yaml(*evaluated);
  return 0;
}
