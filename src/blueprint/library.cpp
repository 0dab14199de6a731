#include "cpn/blueprint/library.hpp"

#include <fmt/format.h>

#include "cpn/schema/schema.hpp"

namespace cpn::blueprint {
namespace {

std::string doc_id(const Json& doc) {
  return version_id(doc.value("/metadata/name"_json_pointer, ""), doc.value("/metadata/version"_json_pointer, ""));
}

std::string state_of(const engine::Object& o) { return o.body.value("/status/state"_json_pointer, "draft"); }

}  // namespace

Library::Library(engine::Engine& engine, std::function<std::set<std::string>()> known_models)
    : engine_(engine),
      known_models_(std::move(known_models)),
      blueprints_(engine, [this] {
        resource::Rules r;
        r.kind = kBlueprint;
        r.schema = "blueprint";
        r.title = "blueprint";
        r.read_only = {"status"};
        r.document_metadata = true;
        r.admit = [this](Json& body, const engine::Object* existing, const engine::Engine&) {
          auto bp = Blueprint::compile(body, context());
          if (!bp) return bp.error().errors;
          body["status"] = existing ? existing->body["status"] : Json{{"state", "draft"}};
          return std::vector<FieldError>{};
        };
        r.id_of = doc_id;
        return r;
      }()),
      templates_(engine, [] {
        resource::Rules r;
        r.kind = kComponentTemplate;
        r.schema = "component-template";
        r.title = "component template";
        r.document_metadata = true;
        r.id_of = doc_id;
        return r;
      }()) {}

Context Library::context() const {
  Context ctx;
  ctx.accelerator_models = known_models_();
  ctx.find_template = [this](const std::string& ref) -> const Json* {
    const engine::Object* t = engine_.find(kComponentTemplate, ref);
    return t ? &t->body.at("spec") : nullptr;
  };
  return ctx;
}

Result<Json> Library::create(const Json& doc) { return blueprints_.create(doc); }

Result<Json> Library::replace(const std::string& name, const std::string& version, const Json& doc,
                              std::optional<std::int64_t> if_match) {
  auto current = blueprints_.find(version_id(name, version));
  if (!current) return fail(current.error());
  if (state_of(**current) != "draft")
    return fail(Error::conflict(fmt::format("blueprint '{}' version {} is {}: published versions are immutable; "
                                            "store a new version instead",
                                            name, version, state_of(**current))));
  return blueprints_.replace(version_id(name, version), doc, if_match);
}

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

}  // namespace

Status Library::remove(const std::string& name, const std::string& version, std::optional<std::int64_t> if_match,
                       const std::vector<std::string>& users) {
  auto current = blueprints_.find(version_id(name, version));
  if (!current) return fail(current.error());
  if (!users.empty())
    return fail(Error::conflict(fmt::format("blueprint '{}' version {} is in use by {}", name, version, join(users))));
  if (state_of(**current) == "published")
    return fail(Error::conflict(fmt::format("blueprint '{}' version {} is published: retire it instead", name, version)));
  return blueprints_.remove(version_id(name, version), if_match);
}

Result<Json> Library::publish(const std::string& name, const std::string& version) {
  return blueprints_.update(
      version_id(name, version), std::nullopt,
      [&](Json& body) -> Status {
        std::string state = body.value("/status/state"_json_pointer, "draft");
        if (state == "retired")
          return fail(Error::conflict(fmt::format("blueprint '{}' version {} is retired", name, version)));
        body["status"] = {{"state", "published"}};
        return {};
      },
      "BlueprintPublished");
}

Result<Json> Library::retire(const std::string& name, const std::string& version,
                             const std::vector<std::string>& users) {
  if (!users.empty())
    return fail(Error::conflict(fmt::format("blueprint '{}' version {} is in use by {}", name, version, join(users))));
  return blueprints_.update(
      version_id(name, version), std::nullopt,
      [&](Json& body) -> Status {
        body["status"] = {{"state", "retired"}};
        return {};
      },
      "BlueprintRetired");
}

Result<std::shared_ptr<const Blueprint>> Library::compiled(const std::string& name, const std::string& version) const {
  auto o = blueprints_.find(version_id(name, version));
  if (!o) return fail(o.error());
  auto& slot = compiled_[(*o)->id];
  if (slot.second && slot.first == (*o)->resource_version) return slot.second;
  Json doc = (*o)->body;
  doc.erase("status");
  auto bp = Blueprint::compile(doc, context());
  if (!bp) return fail(bp.error());
  slot = {(*o)->resource_version, std::make_shared<const Blueprint>(std::move(*bp))};
  return slot.second;
}

Result<Json> Library::evaluate(const std::string& name, const std::string& version, const Json& parameters) const {
  auto bp = compiled(name, version);
  if (!bp) return fail(bp.error());
  return (*bp)->evaluate(parameters);
}

Result<Json> Library::diff(const std::string& name, const std::string& from, const std::string& to) const {
  auto a = blueprints_.find(version_id(name, from));
  if (!a) return fail(Error{ErrorKind::not_found, a.error().message, {{"/query/from", "no such version"}}});
  auto b = blueprints_.find(version_id(name, to));
  if (!b) return fail(Error{ErrorKind::not_found, b.error().message, {{"/query/to", "no such version"}}});
  Json before = (*a)->body, after = (*b)->body;  // the documents, not their lifecycle state
  before.erase("status");
  after.erase("status");
  return Json{{"name", name}, {"from", from}, {"to", to}, {"changes", blueprint::diff(before, after)}};
}

Result<Json> Library::create_template(const Json& doc) { return templates_.create(doc); }

Status Library::remove_template(const std::string& name, const std::string& version) {
  std::string ref = version_id(name, version);
  std::vector<std::string> users;
  for (const engine::Object* b : engine_.list(kBlueprint))
    for (const auto& c : b->body.value("components", Json::array()))
      if (c.value("template", "") == ref) users.push_back("blueprint/" + b->id);
  if (!users.empty()) return fail(Error::conflict(fmt::format("component template '{}' is used by {}", ref, join(users))));
  return templates_.remove(ref, std::nullopt);
}

}  // namespace cpn::blueprint
