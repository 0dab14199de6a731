#include "cpn/daemon/dev.hpp"

#include <fmt/format.h>

#include "cpn/schema/schema.hpp"

namespace cpn::daemon {
namespace {

std::vector<std::pair<std::string, Json>> documents(const std::string& prefix) {
  std::vector<std::pair<std::string, Json>> out;
  for (const auto& [path, text] : schema::embedded_files()) {
    if (path.rfind(prefix, 0) != 0 || path.find('/', prefix.size()) != std::string::npos) continue;
    auto doc = parse_document(text, Format::yaml);
    if (doc) out.emplace_back(path, std::move(*doc));
  }
  return out;
}

Status with_file(const std::string& path, const Error& e) {
  Error out = e;
  out.message = fmt::format("{}: {}", path, e.message);
  return fail(out);
}

}  // namespace

Result<DevCatalogue> load_dev_catalogue(blueprint::Library& library, catalog::Catalog& catalog) {
  DevCatalogue n;
  for (auto& [path, doc] : documents("blueprints/templates/")) {
    if (library.templates().find(blueprint::version_id(doc["metadata"]["name"], doc["metadata"]["version"]))) continue;
    if (auto r = library.create_template(doc); !r) return fail(with_file(path, r.error()).error());
    n.templates++;
  }
  for (auto& [path, doc] : documents("blueprints/")) {
    std::string name = doc["metadata"]["name"], version = doc["metadata"]["version"];
    if (!library.blueprints().find(blueprint::version_id(name, version))) {
      if (auto r = library.create(doc); !r) return fail(with_file(path, r.error()).error());
      n.blueprints++;
    }
    if (auto r = library.publish(name, version); !r) return fail(with_file(path, r.error()).error());
  }
  for (auto& [path, doc] : documents("examples/offerings/")) {
    std::string name = doc["name"];
    if (!catalog.offerings().find(name)) {
      if (auto r = catalog.offerings().create(doc); !r) return fail(with_file(path, r.error()).error());
      if (auto r = catalog.transition(name, "publish"); !r) return fail(with_file(path, r.error()).error());
      n.offerings++;
    }
  }
  return n;
}

}  // namespace cpn::daemon
