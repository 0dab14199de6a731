#include "support/kube_apiserver.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace cpn::test {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

struct KubeApiServer::State {
  std::mutex mutex;
  std::string token;
  std::vector<KubeRequest> requests;
  std::map<std::string, Json> objects;
  std::map<std::string, int> reads;  // per path, since its last change
  std::set<std::string> failing;
  int rollout_reads = 1, delete_reads = 1;
  bool reads_fail = false, deletes_fail = false, hung = false;
  std::chrono::milliseconds latency{0};
  int uid = 0;
  net::io_context io;
  ssl::context tls{ssl::context::tls_server};
  net::ip::tcp::acceptor acceptor{io};

  static Json status(int code, const std::string& reason, const std::string& message) {
    return {{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
            {"message", message}, {"reason", reason}, {"code", code}};
  }

  // The Deployment controller: observed at once, available after rollout_reads reads.
  void roll(const std::string& path, Json& d) {
    if (d["kind"] != "Deployment") return;
    long replicas = d["spec"].value("replicas", 1L);
    Json& st = d["status"];
    st["observedGeneration"] = d["metadata"]["generation"];
    st["replicas"] = replicas;
    std::string name = d["metadata"]["name"];
    if (std::any_of(failing.begin(), failing.end(), [&](const std::string& end) {
          return name.size() >= end.size() && name.compare(name.size() - end.size(), end.size(), end) == 0;
        })) {
      st["updatedReplicas"] = replicas;
      st["availableReplicas"] = 0;
      st["conditions"] = Json::array({{{"type", "Progressing"}, {"status", "False"}, {"reason", "ProgressDeadlineExceeded"},
                                       {"message", "ReplicaSet has timed out progressing."}}});
      return;
    }
    bool done = reads[path] >= rollout_reads;
    st["updatedReplicas"] = replicas;
    st["availableReplicas"] = done ? replicas : 0;
    st["conditions"] = Json::array({{{"type", "Progressing"}, {"status", "True"},
                                     {"reason", done ? "NewReplicaSetAvailable" : "ReplicaSetUpdated"}}});
  }

  std::pair<int, Json> handle(const KubeRequest& r) {
    std::lock_guard lock(mutex);
    requests.push_back(r);
    if (r.authorization != "Bearer " + token) return {401, status(401, "Unauthorized", "Unauthorized")};
    std::string path = r.target.substr(0, r.target.find('?'));
    bool known = path.rfind("/apis/apps/v1/namespaces/", 0) == 0 || path.rfind("/api/v1/namespaces/", 0) == 0;
    if (!known) return {404, status(404, "NotFound", "the server could not find the requested resource")};
    auto it = objects.find(path);
    if (r.method == "PATCH") {
      if (r.content_type != "application/apply-patch+yaml" || r.target.find("fieldManager=") == std::string::npos)
        return {415, status(415, "UnsupportedMediaType", "apply needs application/apply-patch+yaml and a fieldManager")};
      Json applied = Json::parse(r.body, nullptr, false);
      if (applied.is_discarded()) return {400, status(400, "BadRequest", "the body is not YAML")};
      bool created = it == objects.end();
      Json stored = created ? Json{{"metadata", {{"generation", 0}, {"uid", "uid-" + std::to_string(++uid)}}}} : it->second;
      bool changed = created || stored["spec"] != applied["spec"];
      Json meta = applied["metadata"];
      meta["generation"] = stored["metadata"]["generation"].get<long>() + (changed ? 1 : 0);
      meta["uid"] = stored["metadata"]["uid"];
      // Applying to an object being deleted does not stop its deletion.
      for (const char* kept : {"deletionTimestamp", "finalizers"})
        if (stored["metadata"].contains(kept)) meta[kept] = stored["metadata"][kept];
      applied["metadata"] = meta;
      if (stored.contains("status")) applied["status"] = stored["status"];
      if (changed) reads[path] = 0;
      objects[path] = applied;
      return {created ? 201 : 200, applied};
    }
    if (r.method == "GET" && reads_fail) return {503, status(503, "ServiceUnavailable", "etcd is unhappy")};
    if (it == objects.end()) return {404, status(404, "NotFound", "not found: " + path)};
    if (r.method == "GET") {
      Json& o = it->second;
      if (o["metadata"].contains("deletionTimestamp")) {
        if (++reads[path] > delete_reads) {
          objects.erase(it);
          return {404, status(404, "NotFound", "not found: " + path)};
        }
        return {200, o};
      }
      ++reads[path];
      roll(path, o);
      return {200, o};
    }
    if (r.method == "DELETE" && deletes_fail)
      return {500, status(500, "InternalError", "admission webhook \"finalizer-guard\" denied the request")};
    if (r.method == "DELETE") {
      Json options = Json::parse(r.body, nullptr, false);
      bool foreground = !options.is_discarded() && options.value("propagationPolicy", "") == "Foreground";
      // Only a Deployment has dependents (its ReplicaSets and pods) to wait for.
      if (!foreground || delete_reads == 0 || it->second.value("kind", "") != "Deployment") {
        Json gone = it->second;
        objects.erase(it);
        return {200, gone};
      }
      if (!it->second["metadata"].contains("deletionTimestamp")) {
        it->second["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
        it->second["metadata"]["finalizers"] = Json::array({"foregroundDeletion"});
        reads[path] = 0;
      }
      return {200, it->second};
    }
    return {405, status(405, "MethodNotAllowed", r.method)};
  }

  net::awaitable<void> serve(net::ip::tcp::socket socket) {
    beast::ssl_stream<net::ip::tcp::socket> stream(std::move(socket), tls);
    try {
      co_await stream.async_handshake(ssl::stream_base::server, net::use_awaitable);
      beast::flat_buffer buffer;
      for (;;) {
        bhttp::request<bhttp::string_body> req;
        co_await bhttp::async_read(stream, buffer, req, net::use_awaitable);
        KubeRequest r{std::string(req.method_string()), std::string(req.target()),
                      std::string(req[bhttp::field::content_type]), std::string(req[bhttp::field::authorization]),
                      req.body()};
        // A hung API server holds every request unanswered; a slow one answers late.
        auto [held, delay] = [&] {
          std::lock_guard lock(mutex);
          return std::pair{hung, latency};
        }();
        if (held || delay.count() > 0) {
          net::steady_timer wait(io, held ? std::chrono::milliseconds(std::chrono::hours(1)) : delay);
          co_await wait.async_wait(net::use_awaitable);
        }
        auto [code, body] = handle(r);
        bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(code), 11};
        res.set(bhttp::field::content_type, "application/json");
        res.body() = body.dump();
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        co_await bhttp::async_write(stream, res, net::use_awaitable);
        if (!req.keep_alive()) break;
      }
    } catch (const boost::system::system_error&) {
      // the client went away, or refused our certificate: both are its business
    }
  }

  net::awaitable<void> accept() {
    for (;;) {
      auto socket = co_await acceptor.async_accept(net::use_awaitable);
      net::co_spawn(io, serve(std::move(socket)), net::detached);
    }
  }
};

KubeApiServer::KubeApiServer(const std::string& dir, const std::string& token)
    : dir_(dir), state_(std::make_shared<State>()) {
  std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1"
                    " -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout '" +
                    dir + "/key.pem' -out '" + dir + "/ca.pem' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl could not make a certificate in " + dir);
  std::ofstream(token_file()) << token << "\n";
  state_->token = token;
  state_->tls.use_certificate_chain_file(ca_file());
  state_->tls.use_private_key_file(dir + "/key.pem", ssl::context::pem);
  net::ip::tcp::endpoint at(net::ip::make_address("127.0.0.1"), 0);
  state_->acceptor.open(at.protocol());
  state_->acceptor.bind(at);
  state_->acceptor.listen();
  net::co_spawn(state_->io, state_->accept(), net::detached);
  thread_ = std::thread([s = state_] {
    try {
      s->io.run();
    } catch (...) {
    }
  });
}

KubeApiServer::~KubeApiServer() {
  state_->io.stop();
  thread_.join();
}

std::string KubeApiServer::url() const {
  return "https://127.0.0.1:" + std::to_string(state_->acceptor.local_endpoint().port());
}

std::vector<KubeRequest> KubeApiServer::requests() {
  std::lock_guard lock(state_->mutex);
  return state_->requests;
}

void KubeApiServer::clear_requests() {
  std::lock_guard lock(state_->mutex);
  state_->requests.clear();
}

std::optional<Json> KubeApiServer::object(const std::string& path) {
  std::lock_guard lock(state_->mutex);
  auto it = state_->objects.find(path);
  if (it == state_->objects.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> KubeApiServer::paths() {
  std::lock_guard lock(state_->mutex);
  std::vector<std::string> out;
  for (const auto& [p, o] : state_->objects) out.push_back(p);
  return out;
}

void KubeApiServer::set_rollout_reads(int n) {
  std::lock_guard lock(state_->mutex);
  state_->rollout_reads = n;
}

void KubeApiServer::fail_rollout(const std::string& name) {
  std::lock_guard lock(state_->mutex);
  state_->failing.insert(name);
}

void KubeApiServer::fail_reads(bool on) {
  std::lock_guard lock(state_->mutex);
  state_->reads_fail = on;
}

void KubeApiServer::fail_deletes(bool on) {
  std::lock_guard lock(state_->mutex);
  state_->deletes_fail = on;
}

void KubeApiServer::set_latency(std::chrono::milliseconds latency) {
  std::lock_guard lock(state_->mutex);
  state_->latency = latency;
}

void KubeApiServer::hang(bool on) {
  std::lock_guard lock(state_->mutex);
  state_->hung = on;
}

void KubeApiServer::set_delete_reads(int n) {
  std::lock_guard lock(state_->mutex);
  state_->delete_reads = n;
}

}  // namespace cpn::test
