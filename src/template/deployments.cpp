// Deployment records: submission, reading, removal.
#include <fmt/format.h>

#include "cpn/core/crypto.hpp"

#include "cpn/template/deployments.hpp"

namespace cpn::templates {
namespace {

resource::Rules deployment_rules() {
  resource::Rules r;
  r.kind = kDeployment;
  r.schema = "deployment-template";
  r.title = "deployment";
  r.id_of = [](const Json& b) { return b["id"].get<std::string>(); };
  return r;
}

}  // namespace

Deployments::Deployments(engine::Engine& engine, const artifacts::Images& images, Limits limits)
    : engine_(engine), images_(images), limits_(limits), deployments_(engine, deployment_rules()) {}

bool Deployments::visible(const engine::Object& d, const auth::Principal& who) {
  return auth::sees_tenant(who, d.body.value("tenant", ""));
}

Json Deployments::body_for(const std::string& id, const Json& doc, const auth::Principal& who,
                           const std::string& source, const engine::Engine& engine) {
  Json body = {{"id", id},
               {"name", doc["metadata"]["name"]},
               {"tenant", doc["metadata"].value("tenant", who.tenant)},
               {"owner", who.name},
               {"source", source},
               {"state", "pending"},
               {"template", doc},
               {"reservation", reservation_of(doc)},
               {"history", {{{"state", "pending"}, {"at", engine.now()}}}}};
  if (doc["metadata"].contains("order")) body["order"] = doc["metadata"]["order"];
  return body;
}

Result<Json> Deployments::submit(const Json& input, const auth::Principal& who) {
  auto doc = parse(input, engine_, images_, limits_);
  if (!doc) return fail(doc.error());
  (*doc)["metadata"]["tenant"] = who.tenant;  // a submitter deploys for its own tenant
  (*doc)["metadata"].erase("order");
  std::string name = (*doc)["metadata"]["name"];
  if (const auto* taken = named(who.tenant, name))
    return fail(Error::conflict(fmt::format("tenant '{}' has a deployment named '{}' ({})", who.tenant, name, taken->id),
                                {{"/metadata/name", "taken in this tenant"}}));
  // 16 hex digits: never the id of an order's deployment (dep-<12 hex>).
  std::string id;
  do id = "dep-" + random_hex(8);
  while (engine_.find(kDeployment, id));
  Json body = body_for(id, *doc, who, "template", engine_);
  auto changes = reserve(body["reservation"], +1, engine_, "/spec");
  if (!changes) return fail(changes.error());
  changes->insert(changes->begin(), {engine::Change::Op::put, kDeployment, id, body, "DeploymentCreated"});
  if (auto e = engine_.commit(std::move(*changes)); !e) return fail(e.error());
  return deployments_.get(id);
}

Status Deployments::remove(const std::string& id, const auth::Principal& who) {
  auto d = find(id, who);
  if (!d) return fail(d.error());
  const Json& body = (*d)->body;
  if (body.value("source", "") == "order")
    return fail(Error::conflict(fmt::format("deployment '{}' carries out order '{}': cancel or complete the order", id,
                                            body.value("order", ""))));
  std::vector<engine::Change> changes;
  if (!body.value("reservation_released", false)) {
    auto release = reserve(body["reservation"], -1, engine_);
    if (!release) return fail(release.error());
    changes = std::move(*release);
  }
  changes.insert(changes.begin(), {engine::Change::Op::remove, kDeployment, id, nullptr, "DeploymentDeleted"});
  if (auto e = engine_.commit(std::move(changes)); !e) return fail(e.error());
  return {};
}

std::string Deployments::name_of(const engine::Object& d) {
  // Deployments from before names were per tenant have none: their id was their name.
  return d.body.value("name", d.id);
}

const engine::Object* Deployments::named(const std::string& tenant, const std::string& name) const {
  for (const auto* d : engine_.list(kDeployment))
    if (d->body.value("tenant", "") == tenant && name_of(*d) == name) return d;
  return nullptr;
}

Result<const engine::Object*> Deployments::find(const std::string& id, const auth::Principal& who) const {
  const engine::Object* o = engine_.find(kDeployment, id);
  if (!o || !visible(*o, who)) return fail(Error::not_found(fmt::format("deployment '{}' not found", id)));
  return o;
}

}  // namespace cpn::templates
