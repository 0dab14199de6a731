// The process driver: instances are real local processes (like Nomad's
// raw_exec). Each runs in its own session, so it outlives a crash of cpnd;
// its pid file lets the next cpnd find it again (checked against the
// instance id in its environment, so a reused pid is never mistaken for it).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "cpn/core/file.hpp"
#include "cpn/drivers/compute.hpp"

extern char** environ;

namespace cpn::drivers {
namespace {

namespace fs = std::filesystem;

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

// A process this driver did not start (a cpnd before a restart did): alive,
// and this instance (its environment says so, so a reused pid never counts).
bool adopted_instance(pid_t pid, const std::string& id) {
  if (::kill(pid, 0) != 0) return false;
  std::ifstream env(fmt::format("/proc/{}/environ", pid), std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(env)), {});
  std::string want = "CPN_INSTANCE_ID=" + id;
  std::istringstream vars(text);
  for (std::string var; std::getline(vars, var, '\0');)
    if (var == want) return true;
  return false;
}

class ProcessCompute : public ComputeDriver {
 public:
  ProcessCompute(std::string run_dir, std::string log_dir, std::chrono::milliseconds grace)
      : run_dir_(std::move(run_dir)), log_dir_(std::move(log_dir)), grace_(grace) {
    fs::create_directories(run_dir_);
    fs::create_directories(log_dir_);
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
    std::vector<std::string> argv;
    for (const auto& a : command) argv.push_back(a.get<std::string>());
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e)
      if (std::string(*e).rfind("CPN_", 0) != 0) env.emplace_back(*e);
    env.push_back("CPN_INSTANCE_ID=" + id);
    env.push_back("CPN_MODEL_VERSION=" + instance.value("model", ""));
    env.push_back("CPN_PORT=" + std::to_string(instance.value("port", 0)));
    std::string log = (fs::path(log_dir_) / (id + ".log")).string();

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);  // its own session: it outlives cpnd
    std::vector<char*> args, envp;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return fail(Error::internal(fmt::format("instance '{}': cannot run {}: {}", id, argv[0], std::strerror(rc))));
    children_[id] = pid;
    // The pid file appears whole (written aside, then renamed).
    return write_file_atomically(pid_file(id).string(), std::to_string(pid) + "\n");
  }

  Status stop(const Json& instance) override {
    std::string id = instance.value("id", "");
    pid_t pid = running_pid(id);
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      auto deadline = std::chrono::steady_clock::now() + grace_;
      while (alive(id, pid) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (alive(id, pid)) {
        ::kill(pid, SIGKILL);
        while (alive(id, pid)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    std::error_code ec;
    fs::remove(pid_file(id), ec);
    return {};
  }

  Observation observe(const Json& instance) override {
    std::string id = instance.value("id", "");
    std::ifstream in(pid_file(id));
    pid_t pid = 0;
    if (!(in >> pid)) return {Phase::absent, ""};
    if (!alive(id, pid)) {
      std::error_code ec;
      fs::remove(pid_file(id), ec);  // reported once as failed, then absent
      return {Phase::failed, fmt::format("the process exited; see {}", (fs::path(log_dir_) / (id + ".log")).string())};
    }
    if (!healthy(instance.value("port", 0), 500)) return {Phase::starting, "waiting for GET /healthz"};
    return {Phase::running, ""};
  }

 private:
  fs::path pid_file(const std::string& id) const { return fs::path(run_dir_) / (id + ".pid"); }
  pid_t running_pid(const std::string& id) const {
    std::ifstream in(pid_file(id));
    pid_t pid = 0;
    return (in >> pid) && alive(id, pid) ? pid : 0;
  }
  // Our own children are reaped here (no zombies); others are checked by environment.
  bool alive(const std::string& id, pid_t pid) const {
    auto it = children_.find(id);
    if (it != children_.end() && it->second == pid) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == 0) return true;
      children_.erase(it);
      return false;
    }
    return adopted_instance(pid, id);
  }
  mutable std::map<std::string, pid_t> children_;
  std::string run_dir_, log_dir_;
  std::chrono::milliseconds grace_;
};

}  // namespace

std::unique_ptr<ComputeDriver> make_process_compute(std::string run_dir, std::string log_dir,
                                                    std::chrono::milliseconds grace) {
  return std::make_unique<ProcessCompute>(std::move(run_dir), std::move(log_dir), grace);
}

}  // namespace cpn::drivers
