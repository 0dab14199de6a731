// The chaos driver: the twin's instances (kept in memory, running once
// started) behind a controller that misbehaves as its site says, so that
// operators rehearse, and tests prove, what a slow, failing or unreadable
// controller does to cpnd: only the deployments on that site may wait.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "cpn/drivers/compute.hpp"

namespace cpn::drivers {
namespace {

struct Faults {
  std::chrono::milliseconds block{0}, start{0};
  long long fail_call = 0, fail_every = 0;
  bool garbage = false;
};

Faults faults_of(const Json& controller) {
  Faults f;
  if (!controller.is_object()) return f;
  // The schema bounds them; a copy from an older record is clamped the same way.
  auto ms = [&](const char* key) {
    return std::chrono::milliseconds(std::clamp<long long>(controller.value(key, 0LL), 0, 60000));
  };
  f.block = ms("block_ms");
  f.start = ms("start_ms");
  f.fail_call = std::max<long long>(0, controller.value("fail_call", 0LL));
  f.fail_every = std::max<long long>(0, controller.value("fail_every", 0LL));
  f.garbage = controller.value("garbage", false);
  return f;
}

class ChaosCompute : public ComputeDriver {
 public:
  ChaosCompute(const Clock& clock, std::function<Json(const std::string& site)> controller_of)
      : clock_(clock), controller_of_(std::move(controller_of)) {}

  std::string name() const override { return "chaos"; }
  bool blocking() const override { return true; }  // it sleeps as told: on a worker

  Status start(const Json& inst) override {
    if (auto s = misbehave(inst, "start"); !s) return s;
    std::lock_guard lock(mu_);
    instances_.emplace(inst.value("id", ""), Running{clock_.now(), inst.value("model", "")});
    return {};
  }
  Status stop(const Json& inst) override {
    if (auto s = misbehave(inst, "stop"); !s) return s;
    std::lock_guard lock(mu_);
    instances_.erase(inst.value("id", ""));
    return {};
  }
  Observation observe(const Json& inst) override {
    auto faults = faults_of(controller_of_(inst.value("site", "")));
    if (auto s = misbehave(inst, "observe"); !s) return {Phase::failed, s.error().message};
    std::lock_guard lock(mu_);
    auto it = instances_.find(inst.value("id", ""));
    if (it == instances_.end()) return {Phase::absent};
    if (clock_.now() < it->second.since + faults.start) return {Phase::starting, "the chaos controller is starting it"};
    return {Phase::running, "", it->second.model};
  }
  std::vector<std::string> running_instances() const override {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& [id, r] : instances_) out.push_back(id);
    return out;
  }
  // What it is told to do, so GET /v1/sites/{id} says why its deployments wait or fail.
  Json condition(const std::string& site) const override {
    Faults f = faults_of(controller_of_(site));
    std::string what;
    auto add = [&](const std::string& part) { what += (what.empty() ? "" : ", ") + part; };
    if (f.block.count() > 0) add(fmt::format("every call waits {} ms", f.block.count()));
    if (f.fail_call > 0) add(fmt::format("call {} fails", f.fail_call));
    if (f.fail_every > 0) add(fmt::format("every {}th call fails", f.fail_every));
    if (f.garbage) add("every answer is unreadable");
    if (what.empty()) return nullptr;
    std::lock_guard lock(mu_);
    auto it = calls_.find(site);
    return Json{{"type", "FaultsInjected"}, {"status", true}, {"reason", what},
                {"calls", it == calls_.end() ? 0 : it->second}};
  }

 private:
  struct Running {
    std::chrono::system_clock::time_point since;
    std::string model;
  };

  // What the site's controller is told to do to this call: wait, fail, or answer garbage.
  Status misbehave(const Json& inst, const char* call) {
    std::string site = inst.value("site", "");
    Faults f = faults_of(controller_of_(site));
    long long n = 0;
    {
      std::lock_guard lock(mu_);
      n = ++calls_[site];
    }
    if (f.block.count() > 0) std::this_thread::sleep_for(f.block);
    // What a driver does with an answer it cannot read: it throws, as a JSON parser would.
    if (f.garbage) throw std::runtime_error(fmt::format("unreadable answer from site '{}' to {}: '<html>502 Bad Gateway'", site, call));
    if ((f.fail_call > 0 && n == f.fail_call) || (f.fail_every > 0 && n % f.fail_every == 0))
      return fail(Error{ErrorKind::unavailable, fmt::format("injected failure: call {} to site '{}' ({})", n, site, call), {}});
    return {};
  }

  const Clock& clock_;
  std::function<Json(const std::string&)> controller_of_;
  mutable std::mutex mu_;
  std::map<std::string, Running> instances_;
  std::map<std::string, long long> calls_;  // by site, since cpnd started
};

}  // namespace

std::unique_ptr<ComputeDriver> make_chaos_compute(const Clock& clock, std::function<Json(const std::string&)> controller_of) {
  return std::make_unique<ChaosCompute>(clock, std::move(controller_of));
}

}  // namespace cpn::drivers
