// The process driver: instances are real local processes (like Nomad's
// raw_exec). Each runs in its own session, so it outlives a crash of cpnd;
// its pid file lets the next cpnd find it again (checked against the
// instance id in its environment, so a reused pid is never mistaken for it).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <mutex>
#include <optional>

#include <fmt/format.h>

#include "cpn/core/file.hpp"
#include "cpn/drivers/compute.hpp"

namespace cpn::drivers {
namespace {

namespace fs = std::filesystem;

// Where a workload's programs are looked up: the system's, never cpnd's PATH.
constexpr const char* kWorkloadPath = "/usr/local/bin:/usr/bin:/bin";

// GET /healthz answers 200 within the timeout.
bool healthy(int port, int timeout_ms) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  pollfd p{fd, POLLOUT, 0};
  if ((rc == 0 || errno == EINPROGRESS) && ::poll(&p, 1, timeout_ms) == 1) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    const char req[] = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (err == 0 && ::send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof req - 1)) {
      p = {fd, POLLIN, 0};
      char buf[64] = {};
      if (::poll(&p, 1, timeout_ms) == 1 && ::recv(fd, buf, sizeof buf - 1, 0) > 12)
        ok = std::string(buf).find(" 200 ") != std::string::npos;
    }
  }
  ::close(fd);
  return ok;
}

// No socket listens on the port (any address, IPv4 or IPv6), as the
// kernel's tables say: another process answering there would pass the
// workload's health check for it. (Connections of an earlier workload
// closing on it do not count: the new one binds over them.)
bool port_free(int port) {
  if (port <= 0) return true;  // the workload picks its own
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      // "  sl  local_address rem_address   st ...": local is ADDR:PORT in hex, st 0A is LISTEN.
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      if (!(fields >> slot >> local >> remote >> state) || state != "0A") continue;
      auto colon = local.rfind(':');
      if (colon != std::string::npos && std::stoi(local.substr(colon + 1), nullptr, 16) == port) return false;
    }
  }
  return true;
}

// A process this driver did not start (a cpnd before a restart did): alive,
// and this instance (its environment says so, so a reused pid never counts).
// A variable of a process's environment as it was started (nothing when unreadable or unset).
std::optional<std::string> environment_value(pid_t pid, const std::string& name) {
  std::ifstream env(fmt::format("/proc/{}/environ", pid), std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(env)), {});
  std::istringstream vars(text);
  std::string prefix = name + "=";
  for (std::string var; std::getline(vars, var, '\0');)
    if (var.rfind(prefix, 0) == 0) return var.substr(prefix.size());
  return std::nullopt;
}

bool adopted_instance(pid_t pid, const std::string& id) {
  if (::kill(pid, 0) != 0) return false;
  return environment_value(pid, "CPN_INSTANCE_ID") == id;
}

// The resolved path of a command's program, looked up as execvp would,
// but before fork (the child may only make async-signal-safe calls).
std::string resolve_program(const std::string& program, const std::string& path) {
  if (program.find('/') != std::string::npos) return program.front() == '/' ? program : "";  // relative to what? refused
  std::stringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// A workload leads its own session and process group (setsid): the signal
// goes to the group, so what it started stops with it.
void signal_group(pid_t pid, int sig) {
  if (::kill(-pid, sig) != 0) ::kill(pid, sig);
}

// What the child reports through its pipe when it cannot exec.
struct SpawnFailure {
  int stage;  // index into kStages
  int error;
};
constexpr const char* kStages[] = {"open /dev/null", "open its log", "enter its work directory", "set its limits",
                                   "drop its groups", "set its group", "set its user", "run its program"};

class ProcessCompute : public ComputeDriver {
 public:
  explicit ProcessCompute(ProcessSettings settings) : settings_(std::move(settings)) {
    fs::create_directories(settings_.run_dir);
    fs::create_directories(settings_.log_dir);
    fs::create_directories(settings_.work_dir);
    // Traversable by the workloads' user, listable by none but cpnd.
    ::chmod(settings_.work_dir.c_str(), 0711);
  }
  std::string name() const override { return "process"; }

  Status start(const Json& instance) override {
    std::string id = instance.value("id", "");
    if (id.empty() || id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != std::string::npos)
      return fail(Error::invalid_field("/id", fmt::format("'{}' is not an instance id (letters, digits, . _ -)", id)));
    if (running_pid(id) > 0) return {};
    const Json command = instance.value("/variant/command"_json_pointer, Json::array());
    if (!command.is_array() || command.empty())
      return fail(Error::invalid_field("/variant/command", fmt::format("instance '{}': its image variant has no command", id)));
    if (settings_.user.empty() && ::geteuid() == 0 && !settings_.allow_root)
      return fail(Error::invalid_field(
          "/process/user", fmt::format("instance '{}': cpnd runs as root and would run it as root; set process.user "
                                       "(an unprivileged user) or, knowingly, process.allow_root", id)));
    // Its port must be its own: another process answering there would pass its health check for it.
    if (int port = instance.value("port", 0); !port_free(port))
      return fail(Error::conflict(fmt::format("instance '{}': port {} is in use by another process", id, port)));
    std::vector<std::string> argv;
    for (const auto& a : command) argv.push_back(a.get<std::string>());
    std::string program = resolve_program(argv[0], kWorkloadPath);
    if (program.empty())
      return fail(Error::invalid_field("/variant/command/0",
                                       fmt::format("instance '{}': '{}' is neither an absolute path nor a program on {}", id,
                                                   argv[0], kWorkloadPath)));
    // What the workload may know: what cpnd sets, and the names the
    // operator listed; never the rest of cpnd's environment (its admin token).
    std::string work = (fs::path(settings_.work_dir) / id).string();
    std::vector<std::string> env = {std::string("PATH=") + kWorkloadPath, "HOME=" + work};
    for (const char* name : {"LANG", "LC_ALL", "TZ"})
      if (const char* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
    for (const auto& name : settings_.pass_env)
      if (const char* v = std::getenv(name.c_str()); v && name.rfind("CPN", 0) != 0) env.push_back(name + "=" + v);
    env.push_back("CPN_INSTANCE_ID=" + id);
    env.push_back("CPN_MODEL_VERSION=" + instance.value("model", ""));
    env.push_back("CPN_PORT=" + std::to_string(instance.value("port", 0)));
    std::string log = (fs::path(settings_.log_dir) / (id + ".log")).string();

    // Its own work directory, owned by the user it runs as.
    std::error_code ec;
    fs::create_directories(work, ec);
    if (ec) return fail(Error::internal(fmt::format("instance '{}': cannot create {}: {}", id, work, ec.message())));
    ::chmod(work.c_str(), 0750);  // before chown: without CAP_FOWNER it could not be done after
    if (user_) (void)::chown(work.c_str(), user_->uid, user_->gid);

    // Everything the child needs is made before fork: after it, only
    // async-signal-safe calls.
    std::vector<char*> args, envp;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    double gib = instance.value("/requests/memory"_json_pointer, Json(0.0)).is_number()
                     ? instance.value("/requests/memory"_json_pointer, Json(0.0)).get<double>()
                     : 0.0;
    // CUDA and CANN reserve far more address space than they use: no limit with accelerators (nor with factor 0).
    bool accelerated = instance.value("/requests/accelerators"_json_pointer, Json(0)).is_number() &&
                       instance.value("/requests/accelerators"_json_pointer, Json(0)).get<double>() > 0;
    rlim_t address_space = accelerated || settings_.memory_factor <= 0
                               ? RLIM_INFINITY
                               : static_cast<rlim_t>(std::max(512.0 * 1024 * 1024, gib * settings_.memory_factor * 1073741824.0));
    rlimit files{}, memory{};
    ::getrlimit(RLIMIT_NOFILE, &files);  // never above what cpnd itself may have
    files.rlim_cur = files.rlim_max = std::min<rlim_t>(files.rlim_max, static_cast<rlim_t>(settings_.open_files));
    ::getrlimit(RLIMIT_AS, &memory);
    memory.rlim_cur = memory.rlim_max = std::min<rlim_t>(memory.rlim_max, address_space);
    const int max_fd = static_cast<int>(std::min<long>(::sysconf(_SC_OPEN_MAX), 1 << 20));
    rlimit no_core{0, 0};
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0)
      return fail(Error::internal(fmt::format("instance '{}': pipe: {}", id, std::strerror(errno))));
    const bool drop = user_.has_value();
    const uid_t uid = drop ? user_->uid : 0;
    const gid_t gid = drop ? user_->gid : 0;
    // No signal is handled between fork and exec: cpnd's handlers would run in the child.
    sigset_t all, before;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, &before);
    pid_t pid = ::fork();
    if (pid != 0) ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    if (pid < 0) {
      int e = errno;
      ::close(report[0]);
      ::close(report[1]);
      return fail(Error::internal(fmt::format("instance '{}': fork: {}", id, std::strerror(e))));
    }
    if (pid == 0) {
      auto die = [&](int stage) {
        SpawnFailure f{stage, errno};
        (void)!::write(report[1], &f, sizeof f);
        ::_exit(127);
      };
      struct sigaction plain {};
      plain.sa_handler = SIG_DFL;
      for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &plain, nullptr);
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::setsid();  // its own session: it outlives cpnd
      int null = ::open("/dev/null", O_RDONLY);
      if (null < 0 || ::dup2(null, 0) < 0) die(0);
      int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640);
      if (out < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) die(1);
      if (::setrlimit(RLIMIT_NOFILE, &files) != 0 || ::setrlimit(RLIMIT_AS, &memory) != 0 ||
          ::setrlimit(RLIMIT_CORE, &no_core) != 0)
        die(3);
      if (drop) {
        if (::setgroups(1, &gid) != 0) die(4);
        if (::setgid(gid) != 0) die(5);
        if (::setuid(uid) != 0) die(6);
      }
      // Entered as the user: a root without CAP_DAC_OVERRIDE (the systemd unit) cannot.
      if (::chdir(work.c_str()) != 0) die(2);
      // No descriptor of cpnd's survives (its listening socket, its
      // clients, its database): the report pipe goes to 3, the rest close.
      if (report[1] != 3 && ::dup3(report[1], 3, O_CLOEXEC) < 0) die(7);
      if (::close_range(4, ~0U, 0) != 0)
        for (int fd = 4; fd < max_fd; ++fd) ::close(fd);  // kernels before 5.9
      report[1] = 3;
      ::execve(program.c_str(), args.data(), envp.data());
      die(7);
    }
    ::close(report[1]);
    SpawnFailure failure{};
    ssize_t got;
    do got = ::read(report[0], &failure, sizeof failure);
    while (got < 0 && errno == EINTR);
    ::close(report[0]);
    if (got == static_cast<ssize_t>(sizeof failure)) {
      ::waitpid(pid, nullptr, 0);
      return fail(Error::internal(fmt::format("instance '{}': cannot {} ({}): {}", id, kStages[failure.stage], program,
                                              std::strerror(failure.error))));
    }
    {
      std::lock_guard lock(mutex_);
      children_[id] = pid;
      stopping_.erase(id);
    }
    // The pid file appears whole (written aside, then renamed).
    return write_file_atomically(pid_file(id).string(), std::to_string(pid) + "\n");
  }

  // Resolves the configured user once: a name that does not exist, or one
  // cpnd cannot become, stops cpnd at start instead of failing every instance.
  Status resolve_user() {
    if (settings_.user.empty()) return {};
    std::vector<char> buf(16384);
    passwd pw{}, *found = nullptr;
    if (::getpwnam_r(settings_.user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found)
      return fail(Error::invalid_field("/process/user", fmt::format("no user '{}' on this host", settings_.user)));
    if (found->pw_uid == 0 && !settings_.allow_root)
      return fail(Error::invalid_field("/process/user", "process.user is root; set process.allow_root to mean it"));
    if (::geteuid() != 0 && ::geteuid() != found->pw_uid)
      return fail(Error::invalid_field("/process/user", fmt::format("cpnd runs as uid {} and cannot run workloads as '{}'; "
                                                                    "run cpnd as root or leave process.user unset",
                                                                    ::geteuid(), settings_.user)));
    if (::geteuid() != 0) return {};  // already that user: nothing to drop
    user_ = User{found->pw_uid, found->pw_gid};
    return {};
  }

  // Never waits: SIGTERM on the first call, SIGKILL on the first call
  // after the grace, and a failure when even that has not ended it a
  // second later. The orchestrator looks again (observe) until it is gone.
  Status stop(const Json& instance) override {
    std::string id = instance.value("id", "");
    pid_t pid = running_pid(id);
    auto now = std::chrono::steady_clock::now();
    if (pid > 0) {
      std::lock_guard lock(mutex_);
      auto [it, first] = stopping_.try_emplace(id, now);
      if (first) {
        signal_group(pid, SIGTERM);
      } else if (now - it->second >= settings_.grace + std::chrono::seconds(1)) {
        signal_group(pid, SIGKILL);
        return fail(Error::internal(fmt::format("instance '{}': pid {} is still there after SIGKILL", id, pid)));
      } else if (now - it->second >= settings_.grace) {
        signal_group(pid, SIGKILL);
      }
      return {};
    }
    {
      std::lock_guard lock(mutex_);
      stopping_.erase(id);
    }
    std::error_code ec;
    fs::remove(pid_file(id), ec);
    return {};
  }

  // Every pid file whose process is alive and is that instance.
  std::vector<std::string> running_instances() const override {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(settings_.run_dir, ec)) {
      if (f.path().extension() != ".pid") continue;
      std::string id = f.path().stem().string();
      if (running_pid(id) > 0) out.push_back(id);
    }
    return out;
  }

  Observation observe(const Json& instance) override {
    std::string id = instance.value("id", "");
    std::ifstream in(pid_file(id));
    pid_t pid = 0;
    if (!(in >> pid)) return {Phase::absent, ""};
    if (!alive(id, pid)) {
      std::error_code ec;
      fs::remove(pid_file(id), ec);  // reported once as failed, then absent
      std::lock_guard lock(mutex_);
      if (stopping_.erase(id)) return {Phase::absent, ""};  // it was asked to stop, and did
      return {Phase::failed, fmt::format("the process exited; see {}", (fs::path(settings_.log_dir) / (id + ".log")).string())};
    }
    // The model it runs is the one it was started with, in its own environment.
    std::string model = environment_value(pid, "CPN_MODEL_VERSION").value_or("");
    if (!healthy(instance.value("port", 0), 500)) return {Phase::starting, "waiting for GET /healthz", model};
    return {Phase::running, "", model};
  }

 private:
  fs::path pid_file(const std::string& id) const { return fs::path(settings_.run_dir) / (id + ".pid"); }
  pid_t running_pid(const std::string& id) const {
    std::ifstream in(pid_file(id));
    pid_t pid = 0;
    return (in >> pid) && alive(id, pid) ? pid : 0;
  }
  // Our own children are reaped here (no zombies); others are checked by environment.
  bool alive(const std::string& id, pid_t pid) const {
    std::lock_guard lock(mutex_);
    auto it = children_.find(id);
    if (it != children_.end() && it->second == pid) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == 0) return true;
      children_.erase(it);
      return false;
    }
    return adopted_instance(pid, id);
  }
  struct User {
    uid_t uid;
    gid_t gid;
  };
  // Calls come from several workers at once (for different instances).
  mutable std::mutex mutex_;
  mutable std::map<std::string, pid_t> children_;
  std::map<std::string, std::chrono::steady_clock::time_point> stopping_;  // when SIGTERM went
  ProcessSettings settings_;
  std::optional<User> user_;
};

}  // namespace

Result<std::unique_ptr<ComputeDriver>> make_process_compute(ProcessSettings settings) {
  auto driver = std::make_unique<ProcessCompute>(std::move(settings));
  if (auto s = driver->resolve_user(); !s) return fail(s.error());
  return std::unique_ptr<ComputeDriver>(std::move(driver));
}

}  // namespace cpn::drivers
