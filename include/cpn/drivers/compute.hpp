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
#include <vector>

#include "cpn/core/clock.hpp"
#include "cpn/core/document.hpp"
#include "cpn/core/error.hpp"

namespace cpn::drivers {

// What the controller says about an instance.
enum class Phase { absent, starting, running, failed };
struct Observation {
  Observation(Phase p = Phase::absent, std::string r = "", std::string m = "")
      : phase(p), reason(std::move(r)), model(std::move(m)) {}
  Phase phase = Phase::absent;
  std::string reason;  // for failed (and starting: what it waits for)
  std::string model;   // the model (name@version) the workload runs, as it says; "" when the driver cannot tell
};
std::string to_string(Phase phase);

// An instance as the orchestrator hands it over: id, deployment,
// component, site, node, arch, accelerator, variant {platform,
// accelerator, command?}, requests, model, port.
class ComputeDriver {
 public:
  virtual ~ComputeDriver() = default;
  virtual std::string name() const = 0;
  // A driver whose calls may wait (on a cluster, a process, the disk) is
  // called on a worker thread, never on the engine's: it must be safe to
  // call from several threads at once (for different instances) and must
  // not read the engine. One that answers from memory at once (the sim
  // twin, which reads the engine) says false and is called inline.
  virtual bool blocking() const { return true; }
  // Starts the instance unless it runs already (then nothing happens).
  virtual Status start(const Json& instance) = 0;
  // Stops it, or asks it to and returns at once (observe says running or
  // starting until it is gone); an instance that is not there is stopped.
  // Updating one instance (another model version) is a stop, then a start
  // of the same id with the new record: only that workload restarts.
  virtual Status stop(const Json& instance) = 0;
  virtual Observation observe(const Json& instance) = 0;
  // Whether one instance can be updated alone (stopped and started again
  // with another model while the others run untouched).
  virtual bool updates_one() const { return true; }
  // Whether starting an instance with its new record is the whole update
  // (the driver moves it from the workload of its old model to one of its
  // new, as Kubernetes Deployments per version): then no stop comes first.
  virtual bool updates_by_start() const { return false; }
  // Whether one instance can be replaced or moved alone (a new instance on
  // another node, then the old one stopped): a driver that runs instances
  // in groups with one pod template (Kubernetes Deployments) cannot.
  virtual bool replaces_one() const { return true; }
  // How the driver finds a site's controller now (GET /v1/sites/{id}
  // shows it), or null when it has nothing to say. Any thread.
  virtual Json condition(const std::string& /*site*/) const { return nullptr; }
  // The ids of the instances whose workloads it finds running on its own
  // (not asked about one by one): what an orphan sweep compares with the
  // instances cpnd wants. Drivers that cannot tell answer none. Blocking.
  virtual std::vector<std::string> running_instances() const { return {}; }
  // Removes what it finds of its own that no deployment wants and that is
  // not an instance (a Kubernetes driver's objects of a deployment that is
  // gone), and answers what it removed. Blocking.
  virtual std::vector<std::string> remove_orphans() { return {}; }
};

// Drivers by name, filled by register_builtin_drivers; a name is registered once.
class Registry {
 public:
  Status add(std::unique_ptr<ComputeDriver> driver);
  ComputeDriver* find(const std::string& name) const;
  std::vector<ComputeDriver*> all() const;

 private:
  std::map<std::string, std::unique_ptr<ComputeDriver>> drivers_;
};

// The digital twin: an instance starts after start_delay and then runs in
// the model, and takes stop_delay to stop; it fails while its node is not up (node_up answers from the
// inventory, where operators and fault injection mark nodes down).
std::unique_ptr<ComputeDriver> make_sim_compute(const Clock& clock, std::chrono::milliseconds start_delay,
                                                std::function<bool(const std::string& node)> node_up,
                                                std::chrono::milliseconds stop_delay = std::chrono::milliseconds(0));

// The chaos driver: instances as in the twin (in memory, running start_ms
// after their start), behind a controller that misbehaves as its site's
// `controller` says: every call waits block_ms (a slow or hung cluster),
// the fail_call-th call of the site and every fail_every-th fail, and with
// garbage every call throws, as a driver does on an answer it cannot read.
// Blocking: called on workers. controller_of answers a site's controller
// from a copy (any thread).
std::unique_ptr<ComputeDriver> make_chaos_compute(const Clock& clock,
                                                  std::function<Json(const std::string& site)> controller_of);

// How the process driver runs workloads (config `process`).
struct ProcessSettings {
  std::string run_dir, log_dir, work_dir;  // pid files; <id>.log; <id>/ each workload's own directory
  std::chrono::milliseconds grace{5000};   // from SIGTERM to SIGKILL
  std::string user;                        // run as this user (cpnd root, or that user); empty: cpnd's
  bool allow_root = false;                 // cpnd root and no user: run as root only when told so
  std::vector<std::string> pass_env;       // names of cpnd's variables a workload gets
  int open_files = 4096;                   // RLIMIT_NOFILE
  // RLIMIT_AS: requests.memory times this, at least 512 MiB; 0 (the
  // default): none, as runtimes that reserve address space (CUDA, Go, the
  // JVM, AddressSanitizer) fail under it. Memory is for cgroups to bound.
  double memory_factor = 0;
};

// Real local processes: the variant's command (from the image registry)
// for this host. A workload gets an allowlisted environment (PATH, HOME,
// LANG, LC_ALL, TZ, the pass_env names, and CPN_INSTANCE_ID,
// CPN_MODEL_VERSION and CPN_PORT), no descriptor of cpnd's, its own work
// directory, resource limits, and runs as the configured user. Its output
// goes to log_dir/<id>.log, its pid to run_dir/<id>.pid (so a restarted
// cpnd finds it again instead of starting a second one). Running means the
// process is alive and GET /healthz on its port answers 200; stop sends
// SIGTERM, then SIGKILL after grace, never waiting, and fails when the
// process outlives SIGKILL by a second. Fails for a user that does not exist
// or that cpnd cannot become.
Result<std::unique_ptr<ComputeDriver>> make_process_compute(ProcessSettings settings);

}  // namespace cpn::drivers
