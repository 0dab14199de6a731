// A deployment's components as Kubernetes objects are: a desired spec with
// a `generation` that goes up with every change asked of it (a scale, a
// replacement, an update, a change undone), and a status saying which
// generation is fully in effect (`observedGeneration`: every instance it
// asks for runs as asked, none retiring or updating), its instances by
// state and conditions with reasons (Available, Progressing, Degraded).
#pragma once

#include <string>
#include <vector>

#include "cpn/engine/engine.hpp"

namespace cpn::orchestrator {

// Spec: generations live in the deployment as `generations` {component: n};
// a component without one is at generation 1.
int generation_of(const Json& deployment_body, const std::string& component);
void bump_generation(Json& deployment_body, const std::string& component);
// Status: `observed_generations` {component: n}, written by the reconciler.
int observed_of(const Json& deployment_body, const std::string& component);

// Whether a component's template is fully in effect: each instance it
// lists is running, with the model it was asked for, and none of the
// component's instances is still retiring.
bool in_effect(const std::string& deployment, const Json& deployment_body, const Json& component,
               const engine::Engine& engine);

// The status of every component as GET /v1/deployments/{id} shows it.
// `instances`: the deployment's instances (live and stopped).
Json components_status(const std::string& deployment, const Json& deployment_body,
                       const std::vector<const engine::Object*>& instances, int max_attempts);

}  // namespace cpn::orchestrator
