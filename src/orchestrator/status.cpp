#include "cpn/orchestrator/status.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "cpn/template/instances.hpp"

namespace cpn::orchestrator {
namespace {

int counter(const Json& body, const char* field, const std::string& component, int otherwise) {
  auto f = body.find(field);
  if (f == body.end() || !f->is_object()) return otherwise;
  auto c = f->find(component);
  return c != f->end() && c->is_number_integer() ? c->get<int>() : otherwise;
}

Json condition(const char* type, bool status, const std::string& reason, const std::string& message) {
  return {{"type", type}, {"status", status ? "True" : "False"}, {"reason", reason}, {"message", message}};
}

}  // namespace

int generation_of(const Json& body, const std::string& component) { return counter(body, "generations", component, 1); }

void bump_generation(Json& body, const std::string& component) {
  int next = generation_of(body, component) + 1;
  if (!body.contains("generations") || !body["generations"].is_object()) body["generations"] = Json::object();
  body["generations"][component] = next;
}

int observed_of(const Json& body, const std::string& component) {
  return counter(body, "observed_generations", component, 0);
}

bool in_effect(const std::string& deployment, const Json& body, const Json& component, const engine::Engine& engine) {
  for (const auto& r : body.value("retiring", Json::array()))
    if (r.value("component", "") == component.value("name", "")) return false;
  for (const auto& id : templates::instance_ids(deployment, component)) {
    const engine::Object* inst = engine.live("instance", id);
    if (!inst || inst->body.value("state", "") != "running") return false;
  }
  return true;
}

Json components_status(const std::string& deployment, const Json& body,
                       const std::vector<const engine::Object*>& instances, int max_attempts) {
  Json out = Json::array();
  const bool done = engine::Engine::finished("deployment", body);
  for (const auto& comp : body["template"]["spec"]["components"]) {
    std::string name = comp.value("name", "");
    auto wanted = templates::instance_ids(deployment, comp);
    std::map<std::string, int> by_state;
    int running = 0;
    std::string failure;
    for (const auto* i : instances) {
      if (i->body.value("component", "") != name) continue;
      std::string state = i->body.value("state", "");
      by_state[state]++;
      bool asked = std::find(wanted.begin(), wanted.end(), i->id) != wanted.end();
      if (asked && state == "running") ++running;
      if (state == "failed" && failure.empty())
        failure = fmt::format("{}: {} (attempt {} of {})", i->id, i->body.value("reason", "failed"),
                              i->body.value("attempts", 0), max_attempts);
    }
    int retiring = 0;
    for (const auto& r : body.value("retiring", Json::array())) retiring += r.value("component", "") == name;
    int desired = static_cast<int>(wanted.size());
    int generation = generation_of(body, name), observed = observed_of(body, name);
    Json conditions = Json::array();
    if (done)
      conditions.push_back(condition("Available", false, "Finished", fmt::format("the deployment is {}", body.value("state", ""))));
    else if (running == desired)
      conditions.push_back(condition("Available", true, "AllRunning", fmt::format("{} of {} running", running, desired)));
    else
      conditions.push_back(condition("Available", false, running ? "SomeRunning" : "NoneRunning",
                                     fmt::format("{} of {} running", running, desired)));
    if (!done && observed < generation) {
      conditions.push_back(condition("Progressing", true, "RollingOut",
                                     fmt::format("generation {} not yet in effect: {} of {} running, {} retiring",
                                                 generation, running, desired, retiring)));
    } else {
      conditions.push_back(condition("Progressing", false, done ? "Finished" : "InEffect",
                                     fmt::format("generation {} {}", observed, done ? "was the last" : "in effect")));
    }
    conditions.push_back(failure.empty() ? condition("Degraded", false, "NoFailures", "no instance failed")
                                         : condition("Degraded", true, "InstanceFailed", failure));
    out.push_back({{"name", name},
                   {"generation", generation},
                   {"observedGeneration", observed},
                   {"desired", desired},
                   {"instances", by_state},
                   {"retiring", retiring},
                   {"conditions", conditions}});
  }
  return out;
}

}  // namespace cpn::orchestrator
