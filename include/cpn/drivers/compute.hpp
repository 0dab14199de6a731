// Compute drivers run a deployment's instances on one kind of controller
// (each site names its driver). The orchestrator records what it intends,
// then calls the driver, then observes: every call is idempotent, so after
// a crash it calls again and converges.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "cpn/core/clock.hpp"
#include "cpn/core/document.hpp"
#include "cpn/core/error.hpp"

namespace cpn::drivers {

// What the controller says about an instance.
enum class Phase { absent, starting, running, failed };
struct Observation {
  Phase phase = Phase::absent;
  std::string reason;  // for failed (and starting: what it waits for)
};
std::string to_string(Phase phase);

// An instance as the orchestrator hands it over: id, deployment,
// component, site, node, arch, accelerator, variant {platform,
// accelerator, command?}, requests, model, port.
class ComputeDriver {
 public:
  virtual ~ComputeDriver() = default;
  virtual std::string name() const = 0;
  // Starts the instance unless it runs already (then nothing happens).
  virtual Status start(const Json& instance) = 0;
  // Stops it; an instance that is not there is stopped.
  virtual Status stop(const Json& instance) = 0;
  virtual Observation observe(const Json& instance) = 0;
};

// Drivers by name, filled by register_builtin_drivers; a name is registered once.
class Registry {
 public:
  Status add(std::unique_ptr<ComputeDriver> driver);
  ComputeDriver* find(const std::string& name) const;

 private:
  std::map<std::string, std::unique_ptr<ComputeDriver>> drivers_;
};

// The digital twin: an instance starts after start_delay and then runs in
// the model; it fails while its node is not up (node_up answers from the
// inventory, where operators and fault injection mark nodes down).
std::unique_ptr<ComputeDriver> make_sim_compute(const Clock& clock, std::chrono::milliseconds start_delay,
                                                std::function<bool(const std::string& node)> node_up);

// Real local processes: the variant's command for this host, with
// CPN_INSTANCE_ID, CPN_MODEL_VERSION and CPN_PORT in the environment, its
// output in log_dir/<id>.log, its pid in run_dir/<id>.pid (so a restarted
// cpnd finds it again instead of starting a second one). Running means the
// process is alive and GET /healthz on its port answers 200; stop sends
// SIGTERM, then SIGKILL after grace.
std::unique_ptr<ComputeDriver> make_process_compute(std::string run_dir, std::string log_dir,
                                                    std::chrono::milliseconds grace);

}  // namespace cpn::drivers
