// A small Kubernetes API server for the kubernetes driver's tests: HTTPS on
// 127.0.0.1 with a fresh self-signed certificate (made by the openssl
// command), a bearer token, kept-alive connections, server-side apply, GET,
// LIST and WATCH (label selectors, resourceVersions, 410 Gone after a
// compaction) and foreground DELETE of Deployments and Services, and a
// Deployment controller that observes a new spec after a delay (the status
// of the spec before stays meanwhile, stale) and makes the replicas
// available after another. It records every request so tests assert
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

  // Requests for one object (apply, GET, DELETE), in order.
  std::vector<KubeRequest> requests();
  // LISTs and WATCHes of a collection, in order.
  std::vector<KubeRequest> collection_reads();
  void clear_requests();
  // TCP connections accepted so far.
  int connections();
  // The stored object at a REST path (no query), if any.
  std::optional<Json> object(const std::string& path);
  std::vector<std::string> paths();

  // From a Deployment's change to its controller observing it (default 20 ms),
  // and to its replicas being available (default 100 ms).
  void set_rollout(std::chrono::milliseconds observed, std::chrono::milliseconds available);
  // The controller does nothing while paused (statuses stay as they are).
  void pause_controller(bool on);
  // Deployments whose rollout exceeds its progress deadline (names ending so).
  void fail_rollout(const std::string& name);
  // Every GET, LIST and WATCH answers 503 (an API server in trouble) while set.
  void fail_reads(bool on);
  // LIST and WATCH answer 403 (an account allowed get but not list) while set.
  void forbid_lists(bool on);
  // Every open watch ends now (as the API server ends them after a timeout).
  void end_watches();
  // Forgets the events so far: a watch from an older resourceVersion gets 410 Gone.
  void compact();
  // Stores an object as another client would have (no request recorded).
  void put(const Json& object);
  // Every DELETE answers 500 (a webhook that refuses) while set.
  void fail_deletes(bool on);
  // Every request is answered this late (a slow API server).
  void set_latency(std::chrono::milliseconds latency);
  // Requests are read and never answered (a hung or black-holed API server) while set.
  void hang(bool on);
  // From a foreground DELETE of a Deployment to its removal (default 50 ms);
  // 0 removes it at once.
  void set_delete_delay(std::chrono::milliseconds delay);

  struct State;

 private:
  std::string dir_;
  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace cpn::test
