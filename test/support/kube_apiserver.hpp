// A small Kubernetes API server for the kubernetes driver's tests: HTTPS on
// 127.0.0.1 with a fresh self-signed certificate (made by the openssl
// command), a bearer token, server-side apply, GET and foreground DELETE of
// Deployments and Services, and a Deployment controller that rolls out
// after a given number of reads. It records every request so tests assert
// exactly what cpnd sent.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cpn/core/document.hpp"

namespace cpn::test {

struct KubeRequest {
  std::string method, target, content_type, authorization, body;
};

class KubeApiServer {
 public:
  // Certificate, key and token file are written into dir.
  KubeApiServer(const std::string& dir, const std::string& token);
  ~KubeApiServer();
  KubeApiServer(const KubeApiServer&) = delete;
  KubeApiServer& operator=(const KubeApiServer&) = delete;

  std::string url() const;
  std::string ca_file() const { return dir_ + "/ca.pem"; }
  std::string token_file() const { return dir_ + "/token"; }

  std::vector<KubeRequest> requests();
  void clear_requests();
  // The stored object at a REST path (no query), if any.
  std::optional<Json> object(const std::string& path);
  std::vector<std::string> paths();

  // Reads of a Deployment before its replicas are available (default 1).
  void set_rollout_reads(int n);
  // Deployments whose rollout exceeds its progress deadline (names ending so).
  void fail_rollout(const std::string& name);
  // Every GET answers 503 (an API server in trouble) while set.
  void fail_reads(bool on);
  // Every DELETE answers 500 (a webhook that refuses) while set.
  void fail_deletes(bool on);
  // Every request is answered this late (a slow API server).
  void set_latency(std::chrono::milliseconds latency);
  // Requests are read and never answered (a hung or black-holed API server) while set.
  void hang(bool on);
  // Reads of a foreground-deleted object before it is gone (default 1).
  void set_delete_reads(int n);

  struct State;

 private:
  std::string dir_;
  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace cpn::test
