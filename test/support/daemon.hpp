// Starts the real cpnd binary on an ephemeral port with a temporary data
// directory, and talks to it over HTTP, as users and the portal do.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "cpn/client/http_client.hpp"

namespace cpn::test {

std::string make_temp_dir(const std::string& prefix);
std::string source_path(const std::string& relative);  // a file of the source tree

struct DaemonOptions {
  std::vector<std::string> args;  // beyond --listen and --data
  std::map<std::string, std::string> env;
  bool dev = false;  // the demo topology
  std::string ca_file;  // HTTPS: the CA this daemon's clients verify it with
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions options = {}, std::string data_dir = "");
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  void start();
  void kill9();                 // SIGKILL and reap
  int terminate(int sig = 15);  // a signal, then the exit status
  void restart() {
    kill9();
    start();
  }

  const std::string& url() const { return url_; }
  const std::string& data() const { return data_; }
  const std::string& admin_token() const { return admin_token_; }
  pid_t pid() const { return pid_; }
  std::string stderr_text() const;  // what cpnd logged
  std::string stdout_text() const;

  client::HttpClient admin() const { return client::HttpClient(url_, admin_token_, options_.ca_file); }
  client::HttpClient anonymous() const { return client::HttpClient(url_, "", options_.ca_file); }
  // A token of a role (created through the API, cached).
  client::HttpClient as(const std::string& role, const std::string& tenant = "default");
  std::string token(const std::string& role, const std::string& tenant = "default");

 private:
  DaemonOptions options_;
  std::string data_;
  std::string url_;
  std::string admin_token_;
  pid_t pid_ = -1;
  std::map<std::string, std::string> tokens_;
};

// The demo topology with a fast control loop (reconcile every 30 ms, sim
// instances up in 50 ms); `env` adds to or overrides those settings.
DaemonOptions fast_demo(const std::map<std::string, std::string>& env = {});

// Runs cpnd with arguments and waits: exit status and what it printed.
struct RunResult {
  int status = -1;
  std::string out;
  std::string err;
};
RunResult run_cpnd(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {});

// Orders city video detection at cams-sz-futian (the demo catalogue) and
// confirms its cheapest solution; answers the confirmed order (throws when refused).
Json confirm_video_order(client::HttpClient& customer, int streams = 64);

// Polls GET path until its `state` is `want` (or 15 s pass); answers the last state seen.
std::string wait_state(client::HttpClient& c, const std::string& path, const std::string& want);

// POST /v1/deployments: the new deployment's path (throws unless 201).
std::string create_deployment(client::HttpClient& c, const Json& body);

// The JSON pointers a problem+json answer's `errors` name (none when it is not one).
std::vector<std::string> error_pointers(const client::Reply& r);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);

}  // namespace cpn::test
