#include "support/daemon.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace cpn::test {
namespace fs = std::filesystem;

std::string make_temp_dir(const std::string& prefix) {
  std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

std::string source_path(const std::string& relative) { return std::string(CPN_SOURCE_DIR) + "/" + relative; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

namespace {

pid_t spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
            const std::string& out_path, const std::string& err_path) {
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(out, 1);
    ::dup2(err, 2);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    // A clean environment: nothing of the test runner's CPND_* leaks in.
    for (const char* name : {"CPND_ADMIN_TOKEN", "CPND_CONFIG", "CPND_LISTEN", "CPND_DATA", "NOTIFY_SOCKET"})
      ::unsetenv(name);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> argv;
    std::string bin = CPND_BINARY;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

Daemon::Daemon(DaemonOptions options, std::string data_dir)
    : options_(std::move(options)), data_(data_dir.empty() ? make_temp_dir("cpnd-test") : std::move(data_dir)) {
  start();
}

Daemon::~Daemon() {
  if (pid_ > 0) kill9();
  if (std::getenv("CPN_TEST_KEEP")) return;  // to read a failed test's logs
  std::error_code ec;
  fs::remove_all(data_, ec);
}

void Daemon::start() {
  fs::remove(data_ + "/cpnd.addr");
  std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--data", data_};
  if (options_.dev) args.push_back("--dev");
  args.insert(args.end(), options_.args.begin(), options_.args.end());
  pid_ = spawn(args, options_.env, data_ + "/stdout.log", data_ + "/stderr.log");
  // Generous: an ASan build on a loaded 2-core machine starts in seconds; this only catches a hang.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(data_ + "/cpnd.addr")) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("cpnd exited at start: " + stderr_text());
    }
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("cpnd did not start: " + stderr_text());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  url_ = read_file(data_ + "/cpnd.addr");
  while (!url_.empty() && url_.back() == '\n') url_.pop_back();
  admin_token_ = options_.env.count("CPND_ADMIN_TOKEN") ? options_.env.at("CPND_ADMIN_TOKEN")
                                                        : read_file(data_ + "/admin.token");
  while (!admin_token_.empty() && admin_token_.back() == '\n') admin_token_.pop_back();
}

void Daemon::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

int Daemon::terminate(int sig) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, sig);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string Daemon::stderr_text() const { return read_file(data_ + "/stderr.log"); }
std::string Daemon::stdout_text() const { return read_file(data_ + "/stdout.log"); }

std::string Daemon::token(const std::string& role, const std::string& tenant) {
  std::string key = role + "/" + tenant;
  if (auto it = tokens_.find(key); it != tokens_.end()) return it->second;
  auto r = admin().post("/v1/tokens", {{"name", "test-" + role}, {"role", role}, {"tenant", tenant}});
  if (r.status != 201) throw std::runtime_error("cannot create token: " + r.body);
  return tokens_[key] = r.json()["secret"].get<std::string>();
}

client::HttpClient Daemon::as(const std::string& role, const std::string& tenant) {
  return client::HttpClient(url_, token(role, tenant), options_.ca_file);
}

RunResult run_cpnd(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  std::string dir = make_temp_dir("cpnd-run");
  pid_t pid = spawn(args, env, dir + "/out", dir + "/err");
  int status = 0;
  ::waitpid(pid, &status, 0);
  RunResult r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(dir + "/out"), read_file(dir + "/err")};
  fs::remove_all(dir);
  return r;
}

std::string wait_state(client::HttpClient& c, const std::string& path, const std::string& want) {
  std::string state;
  for (int i = 0; i < 750; ++i) {
    auto r = c.get(path);
    if (r.status == 200) state = r.json().value("state", "");
    if (state == want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return state;
}

DaemonOptions fast_demo(const std::map<std::string, std::string>& env) {
  DaemonOptions options{.env = {{"CPND_RECONCILE_MS", "30"}, {"CPND_SIM_START_DELAY_MS", "50"}}, .dev = true};
  for (const auto& [k, v] : env) options.env[k] = v;
  return options;
}

std::string create_deployment(client::HttpClient& c, const Json& body) {
  auto r = c.post("/v1/deployments", body);
  if (r.status != 201) throw std::runtime_error("POST /v1/deployments answered " + std::to_string(r.status) + ": " + r.body);
  return r.header("location");
}

std::vector<std::string> error_pointers(const client::Reply& r) {
  std::vector<std::string> out;
  Json j = Json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("errors") && j["errors"].is_array())
    for (const auto& e : j["errors"]) out.push_back(e.value("pointer", ""));
  return out;
}

Json confirm_video_order(client::HttpClient& customer, int streams) {
  Json order = customer
                   .post("/v1/orders", {{"offering", "city-video-detection"},
                                        {"parameters", {{"location", "cams-sz-futian"}, {"streams", streams}}}})
                   .json();
  auto r = customer.post("/v1/orders/" + order["id"].get<std::string>() + "/confirm", {{"solution", "s1"}});
  if (r.status != 200) throw std::runtime_error("confirm answered " + std::to_string(r.status) + ": " + r.body);
  return r.json();
}

}  // namespace cpn::test
