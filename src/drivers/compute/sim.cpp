// The digital twin's compute driver, and the driver registry.
#include <fmt/format.h>

#include "cpn/drivers/compute.hpp"

namespace cpn::drivers {

std::string to_string(Phase phase) {
  switch (phase) {
    case Phase::absent: return "absent";
    case Phase::starting: return "starting";
    case Phase::running: return "running";
    case Phase::failed: return "failed";
  }
  return "absent";
}

Status Registry::add(std::unique_ptr<ComputeDriver> driver) {
  std::string name = driver->name();
  if (!drivers_.emplace(name, std::move(driver)).second)
    return fail(Error::conflict(fmt::format("a compute driver named '{}' is registered already", name)));
  return {};
}

std::vector<ComputeDriver*> Registry::all() const {
  std::vector<ComputeDriver*> out;
  for (const auto& [name, d] : drivers_) out.push_back(d.get());
  return out;
}

ComputeDriver* Registry::find(const std::string& name) const {
  auto it = drivers_.find(name);
  return it == drivers_.end() ? nullptr : it->second.get();
}

namespace {

// Instances live in the model only: after a restart of cpnd they are gone,
// as containers are after a node reboot, and the orchestrator starts them again.
class SimCompute : public ComputeDriver {
 public:
  SimCompute(const Clock& clock, std::chrono::milliseconds delay, std::function<bool(const std::string&)> node_up,
             std::chrono::milliseconds stop_delay)
      : clock_(clock), delay_(delay), stop_delay_(stop_delay), node_up_(std::move(node_up)) {}
  std::string name() const override { return "sim"; }
  bool blocking() const override { return false; }
  Status start(const Json& instance) override {
    std::string id = instance.value("id", "");
    if (started_.emplace(id, clock_.now()).second) models_[id] = instance.value("model", "");  // a running one keeps its start
    return {};
  }
  // With a stop delay, an instance takes that long to go (its graceful shutdown, in the model).
  Status stop(const Json& instance) override {
    std::string id = instance.value("id", "");
    if (stop_delay_.count() <= 0 || !started_.count(id)) {
      started_.erase(id);
      models_.erase(id);
      return {};
    }
    stopping_.try_emplace(id, clock_.now());  // asked again: keeps its first ask
    return {};
  }
  Observation observe(const Json& instance) override {
    std::string id = instance.value("id", "");
    if (auto s = stopping_.find(id); s != stopping_.end()) {
      if (clock_.now() < s->second + stop_delay_) return {Phase::running, "stopping in the model"};
      stopping_.erase(s);
      started_.erase(id);
      models_.erase(id);
    }
    auto it = started_.find(id);
    if (it == started_.end()) return {Phase::absent, ""};
    std::string node = instance.value("node", "");
    if (node_up_ && !node_up_(node)) return {Phase::failed, fmt::format("node '{}' is down", node)};
    if (clock_.now() < it->second + delay_) return {Phase::starting, "starting in the model", models_[id]};
    return {Phase::running, "", models_[id]};
  }

 private:
  const Clock& clock_;
  std::chrono::milliseconds delay_, stop_delay_;
  std::function<bool(const std::string&)> node_up_;
  std::map<std::string, std::chrono::system_clock::time_point> started_, stopping_;
  std::map<std::string, std::string> models_;  // what each was started with
};

}  // namespace

std::unique_ptr<ComputeDriver> make_sim_compute(const Clock& clock, std::chrono::milliseconds start_delay,
                                                std::function<bool(const std::string& node)> node_up,
                                                std::chrono::milliseconds stop_delay) {
  return std::make_unique<SimCompute>(clock, start_delay, std::move(node_up), stop_delay);
}

}  // namespace cpn::drivers
