// Deployments: a template to carry out and what it holds. One comes from
// each confirmed order, or from a template submitted directly. A
// deployment starts `pending` with its reservation taken in the same
// commit; the orchestrator drives it from there.
#pragma once

#include "cpn/auth/tokens.hpp"
#include "cpn/resource/collection.hpp"
#include "cpn/template/template.hpp"

namespace cpn::templates {

class Deployments {
 public:
  Deployments(engine::Engine& engine, const artifacts::Images& images, Limits limits);
  resource::Collection& collection() { return deployments_; }

  // The body of a new deployment `id` of a template (reservation included).
  static Json body_for(const std::string& id, const Json& doc, const auth::Principal& who, const std::string& source,
                       const engine::Engine& engine);

  // POST /v1/deployments: 422 for a bad document, 409 when its name is
  // taken in the submitter's tenant or its resources are no longer free.
  // Names are scoped per tenant, as Kubernetes scopes them per namespace;
  // the deployment's id (dep-<16 hex>) is cpnd's, so no tenant learns
  // another's names from a conflict.
  Result<Json> submit(const Json& doc, const auth::Principal& who);
  // The deployment of `tenant` named `name` (finished ones too, until removed), if any.
  const engine::Object* named(const std::string& tenant, const std::string& name) const;
  static std::string name_of(const engine::Object& deployment);
  // DELETE /v1/deployments/{id} of a submitted template: gives back what it holds.
  Status remove(const std::string& id, const auth::Principal& who);

  Result<const engine::Object*> find(const std::string& id, const auth::Principal& who) const;
  static bool visible(const engine::Object& deployment, const auth::Principal& who);

 private:
  engine::Engine& engine_;
  const artifacts::Images& images_;
  Limits limits_;
  resource::Collection deployments_;
};

}  // namespace cpn::templates
