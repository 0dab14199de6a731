#include "support/kube_apiserver.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <future>
#include <fstream>
#include <stdexcept>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/write.hpp>
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

namespace {

std::string url_decode(const std::string& in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      out += static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += in[i] == '+' ? ' ' : in[i];
    }
  }
  return out;
}

std::map<std::string, std::string> query_of(const std::string& target) {
  std::map<std::string, std::string> q;
  auto at = target.find('?');
  if (at == std::string::npos) return q;
  std::string rest = target.substr(at + 1);
  for (std::size_t i = 0; i <= rest.size();) {
    auto amp = rest.find('&', i);
    if (amp == std::string::npos) amp = rest.size();
    std::string pair = rest.substr(i, amp - i);
    auto eq = pair.find('=');
    if (!pair.empty()) q[url_decode(pair.substr(0, eq))] = eq == std::string::npos ? "" : url_decode(pair.substr(eq + 1));
    i = amp + 1;
  }
  return q;
}

// Equality selectors only ("a=b,c=d"), which is all cpnd sends.
bool selected(const Json& object, const std::string& selector) {
  const Json& labels = object.value("/metadata/labels"_json_pointer, Json::object());
  for (std::size_t i = 0; i < selector.size();) {
    auto comma = selector.find(',', i);
    if (comma == std::string::npos) comma = selector.size();
    std::string term = selector.substr(i, comma - i);
    auto eq = term.find('=');
    std::string key = term.substr(0, eq), value = eq == std::string::npos ? "" : term.substr(eq + 1);
    if (!labels.contains(key) || labels[key] != value) return false;
    i = comma + 1;
  }
  return true;
}

}  // namespace

struct KubeApiServer::State {
  using Clock = std::chrono::steady_clock;
  struct Event {
    long rv;
    std::string collection, type;  // collection: the path without the object's name
    Json object;
  };
  struct Watcher {
    std::string collection, selector;
    std::deque<std::string> lines;
    bool ended = false;
    std::unique_ptr<net::steady_timer> wake;
  };

  std::mutex mutex;
  std::string token;
  std::vector<KubeRequest> requests, collection_requests;
  std::map<std::string, Json> objects;
  std::map<std::string, Clock::time_point> changed;  // per Deployment: its spec (or its deletion) changed then
  std::map<std::string, Json> rolled_out;  // per Deployment: the pod template whose rollout last completed
  std::set<std::string> failing;
  std::chrono::milliseconds observe_after{20}, ready_after{100}, delete_after{50}, latency{0};
  bool reads_fail = false, deletes_fail = false, hung = false, paused = false, lists_forbidden = false;
  int uid = 0, accepted = 0;
  long rv = 0, oldest = 0;  // events after `oldest` are kept
  std::vector<Event> events;
  net::io_context io;
  // After io, so destroyed before it: a Watcher's timer must not outlive its io_context.
  std::vector<std::shared_ptr<Watcher>> watchers;
  ssl::context tls{ssl::context::tls_server};
  net::ip::tcp::acceptor acceptor{io};
  net::steady_timer tick{io};

  static Json status(int code, const std::string& reason, const std::string& message) {
    return {{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
            {"message", message}, {"reason", reason}, {"code", code}};
  }
  static std::string collection_of(const std::string& path) { return path.substr(0, path.rfind('/')); }

  // A change: a new resourceVersion, and an event for the watches (under the lock).
  void changed_object(const std::string& path, const std::string& type, Json& object) {
    object["metadata"]["resourceVersion"] = std::to_string(++rv);
    events.push_back({rv, collection_of(path), type, object});
    std::string line = Json{{"type", type}, {"object", object}}.dump() + "\n";
    for (auto& w : watchers)
      if (!w->ended && w->collection == collection_of(path) && selected(object, w->selector)) {
        w->lines.push_back(line);
        w->wake->cancel();
      }
  }

  // The Deployment controller, every 10 ms: a spec is observed observe_after
  // its change (until then the status of the spec before stays, stale) and
  // its replicas are available ready_after it (those it kept at once, when
  // only the replicas changed); a foreground deletion ends delete_after it.
  void control() {
    std::lock_guard lock(mutex);
    if (paused) return;
    auto now = Clock::now();
    for (auto it = objects.begin(); it != objects.end();) {
      const std::string path = it->first;
      Json& d = it->second;
      if (d.value("kind", "") != "Deployment") {
        ++it;
        continue;
      }
      auto since = now - changed[path];
      if (d["metadata"].contains("deletionTimestamp")) {
        if (since >= delete_after) {
          Json gone = d;
          it = objects.erase(it);
          changed.erase(path);
          rolled_out.erase(path);
          changed_object(path, "DELETED", gone);
        } else {
          ++it;
        }
        continue;
      }
      Json st = d.value("status", Json::object());
      if (since >= observe_after) {
        long replicas = d["spec"].value("replicas", 1L);
        std::string name = d["metadata"]["name"];
        bool stuck = std::any_of(failing.begin(), failing.end(), [&](const std::string& end) {
          return name.size() >= end.size() && name.compare(name.size() - end.size(), end.size(), end) == 0;
        });
        bool done = !stuck && since >= ready_after;
        // A change of replicas alone rolls no pod: those kept stay available while new ones start.
        bool same_pods = rolled_out.count(path) && rolled_out[path] == d["spec"]["template"];
        long kept = same_pods ? std::min(replicas, st.value("availableReplicas", 0L)) : 0;
        st["observedGeneration"] = d["metadata"]["generation"];
        st["replicas"] = replicas;
        st["updatedReplicas"] = replicas;
        st["availableReplicas"] = done ? replicas : kept;
        if (done) rolled_out[path] = d["spec"]["template"];
        st["conditions"] =
            stuck ? Json::array({{{"type", "Progressing"}, {"status", "False"}, {"reason", "ProgressDeadlineExceeded"},
                                  {"message", "ReplicaSet has timed out progressing."}}})
                  : Json::array({{{"type", "Progressing"}, {"status", "True"},
                                  {"reason", done ? "NewReplicaSetAvailable" : "ReplicaSetUpdated"}}});
      }
      if (st != d.value("status", Json::object())) {
        d["status"] = st;
        changed_object(path, "MODIFIED", d);
      }
      ++it;
    }
  }
  net::awaitable<void> controller() {
    for (;;) {
      tick.expires_after(std::chrono::milliseconds(10));
      co_await tick.async_wait(net::use_awaitable);
      control();
    }
  }

  // LIST of a collection: the selected objects and the resourceVersion to watch from.
  Json list(const std::string& collection, const std::string& selector) {
    Json items = Json::array();
    for (const auto& [p, o] : objects)
      if (collection_of(p) == collection && selected(o, selector)) items.push_back(o);
    std::string kind = collection.find("/deployments") != std::string::npos ? "DeploymentList" : "ServiceList";
    return {{"kind", kind}, {"metadata", {{"resourceVersion", std::to_string(rv)}}}, {"items", items}};
  }

  std::pair<int, Json> handle(const KubeRequest& r) {
    std::lock_guard lock(mutex);
    std::string path = r.target.substr(0, r.target.find('?'));
    bool collection = path.size() > 12 && (path.ends_with("/deployments") || path.ends_with("/services"));
    (collection ? collection_requests : requests).push_back(r);
    if (r.authorization != "Bearer " + token) return {401, status(401, "Unauthorized", "Unauthorized")};
    bool known = path.rfind("/apis/apps/v1/namespaces/", 0) == 0 || path.rfind("/api/v1/namespaces/", 0) == 0;
    if (!known) return {404, status(404, "NotFound", "the server could not find the requested resource")};
    if (collection) {
      if (r.method != "GET") return {405, status(405, "MethodNotAllowed", r.method)};
      if (reads_fail) return {503, status(503, "ServiceUnavailable", "etcd is unhappy")};
      if (lists_forbidden)
        return {403, status(403, "Forbidden", "deployments is forbidden: User \"cpnd\" cannot list resource")};
      return {200, list(path, query_of(r.target)["labelSelector"])};
    }
    auto it = objects.find(path);
    if (r.method == "PATCH") {
      if (r.content_type != "application/apply-patch+yaml" || r.target.find("fieldManager=") == std::string::npos)
        return {415, status(415, "UnsupportedMediaType", "apply needs application/apply-patch+yaml and a fieldManager")};
      Json applied = Json::parse(r.body, nullptr, false);
      if (applied.is_discarded()) return {400, status(400, "BadRequest", "the body is not YAML")};
      bool created = it == objects.end();
      Json stored = created ? Json{{"metadata", {{"generation", 0}, {"uid", "uid-" + std::to_string(++uid)}}}} : it->second;
      bool changed_spec = created || stored["spec"] != applied["spec"];
      Json meta = applied["metadata"];
      meta["generation"] = stored["metadata"]["generation"].get<long>() + (changed_spec ? 1 : 0);
      meta["uid"] = stored["metadata"]["uid"];
      if (stored["metadata"].contains("resourceVersion")) meta["resourceVersion"] = stored["metadata"]["resourceVersion"];
      // Applying to an object being deleted does not stop its deletion.
      for (const char* kept : {"deletionTimestamp", "finalizers"})
        if (stored["metadata"].contains(kept)) meta[kept] = stored["metadata"][kept];
      applied["metadata"] = meta;
      if (stored.contains("status")) applied["status"] = stored["status"];
      if (changed_spec) changed[path] = Clock::now();
      if (applied != stored) changed_object(path, created ? "ADDED" : "MODIFIED", applied);
      objects[path] = applied;
      return {created ? 201 : 200, applied};
    }
    if (r.method == "GET" && reads_fail) return {503, status(503, "ServiceUnavailable", "etcd is unhappy")};
    if (it == objects.end()) return {404, status(404, "NotFound", "not found: " + path)};
    if (r.method == "GET") return {200, it->second};
    if (r.method == "DELETE" && deletes_fail)
      return {500, status(500, "InternalError", "admission webhook \"finalizer-guard\" denied the request")};
    if (r.method == "DELETE") {
      Json options = Json::parse(r.body, nullptr, false);
      bool foreground = !options.is_discarded() && options.value("propagationPolicy", "") == "Foreground";
      // Only a Deployment has dependents (its ReplicaSets and pods) to wait for.
      if (!foreground || delete_after.count() == 0 || it->second.value("kind", "") != "Deployment") {
        Json gone = it->second;
        objects.erase(it);
        changed.erase(path);
        rolled_out.erase(path);
        changed_object(path, "DELETED", gone);
        return {200, gone};
      }
      if (!it->second["metadata"].contains("deletionTimestamp")) {
        it->second["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
        it->second["metadata"]["finalizers"] = Json::array({"foregroundDeletion"});
        changed[path] = Clock::now();
        changed_object(path, "MODIFIED", it->second);
      }
      return {200, it->second};
    }
    return {405, status(405, "MethodNotAllowed", r.method)};
  }

  template <typename Stream>
  net::awaitable<void> write_raw(Stream& stream, const std::string& data) {
    co_await net::async_write(stream, net::buffer(data), net::use_awaitable);
  }
  static std::string chunk(const std::string& data) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    return size + data + "\r\n";
  }

  // A WATCH: the events after its resourceVersion, then each one as it
  // comes, as chunks of one JSON line each, until timeoutSeconds or
  // end_watches(); 410 Gone (as an ERROR event) from a compacted version.
  template <typename Stream>
  net::awaitable<void> watch(Stream& stream, const KubeRequest& r) {
    auto q = query_of(r.target);
    auto w = std::make_shared<Watcher>();
    w->collection = r.target.substr(0, r.target.find('?'));
    w->selector = q["labelSelector"];
    w->wake = std::make_unique<net::steady_timer>(io);
    long from = q.count("resourceVersion") && !q["resourceVersion"].empty() ? std::stol(q["resourceVersion"]) : 0;
    int timeout_s = q.count("timeoutSeconds") ? std::stoi(q["timeoutSeconds"]) : 1800;
    {
      std::lock_guard lock(mutex);
      if (from < oldest) {
        w->lines.push_back(
            Json{{"type", "ERROR"}, {"object", status(410, "Expired", "too old resource version")}}.dump() + "\n");
        w->ended = true;
      } else {
        for (const auto& e : events)
          if (e.rv > from && e.collection == w->collection && selected(e.object, w->selector))
            w->lines.push_back(Json{{"type", e.type}, {"object", e.object}}.dump() + "\n");
        watchers.push_back(w);
      }
    }
    try {
      co_await stream_events(stream, w, timeout_s);
    } catch (...) {
      std::lock_guard lock(mutex);
      std::erase(watchers, w);
      throw;
    }
  }
  template <typename Stream>
  net::awaitable<void> stream_events(Stream& stream, std::shared_ptr<Watcher> w, int timeout_s) {
    co_await write_raw(stream, std::string("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                           "Transfer-Encoding: chunked\r\n\r\n"));
    auto until = Clock::now() + std::chrono::seconds(timeout_s);
    for (;;) {
      std::string out;
      bool ended = false;
      {
        std::lock_guard lock(mutex);
        while (!w->lines.empty()) {
          out += chunk(w->lines.front());
          w->lines.pop_front();
        }
        ended = w->ended || Clock::now() >= until;
      }
      if (!out.empty()) co_await write_raw(stream, out);
      if (ended) break;
      w->wake->expires_at(std::min(until, Clock::now() + std::chrono::seconds(1)));
      boost::system::error_code ec;
      co_await w->wake->async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    {
      std::lock_guard lock(mutex);
      std::erase(watchers, w);
    }
    co_await write_raw(stream, std::string("0\r\n\r\n"));
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
        auto q = query_of(r.target);
        bool watching = q.count("watch") && (q["watch"] == "1" || q["watch"] == "true");
        auto [code, body] = handle(r);
        if (watching && code == 200) {
          co_await watch(stream, r);
          continue;
        }
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
      {
        std::lock_guard lock(mutex);
        ++accepted;
      }
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
  net::co_spawn(state_->io, state_->controller(), net::detached);
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
  state_->collection_requests.clear();
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

std::vector<KubeRequest> KubeApiServer::collection_reads() {
  std::lock_guard lock(state_->mutex);
  return state_->collection_requests;
}

int KubeApiServer::connections() {
  std::lock_guard lock(state_->mutex);
  return state_->accepted;
}

void KubeApiServer::set_rollout(std::chrono::milliseconds observed, std::chrono::milliseconds available) {
  std::lock_guard lock(state_->mutex);
  state_->observe_after = observed;
  state_->ready_after = available;
}

void KubeApiServer::pause_controller(bool on) {
  std::lock_guard lock(state_->mutex);
  state_->paused = on;
}

void KubeApiServer::fail_rollout(const std::string& name) {
  std::lock_guard lock(state_->mutex);
  state_->failing.insert(name);
}

void KubeApiServer::fail_reads(bool on) {
  std::lock_guard lock(state_->mutex);
  state_->reads_fail = on;
}

void KubeApiServer::forbid_lists(bool on) {
  std::lock_guard lock(state_->mutex);
  state_->lists_forbidden = on;
}

void KubeApiServer::end_watches() {
  net::post(state_->io, [s = state_] {
    std::lock_guard lock(s->mutex);
    for (auto& w : s->watchers) {
      w->ended = true;
      w->wake->cancel();
    }
  });
}

void KubeApiServer::compact() {
  std::lock_guard lock(state_->mutex);
  state_->events.clear();
  state_->oldest = state_->rv + 1;
}

void KubeApiServer::put(const Json& object) {
  std::promise<void> stored;
  net::post(state_->io, [s = state_, object, &stored] {
    std::lock_guard lock(s->mutex);
    Json o = object;
    const Json& m = o["metadata"];
    std::string ns = m.value("namespace", "default"), name = m.value("name", "");
    std::string path = o.value("kind", "") == "Deployment" ? "/apis/apps/v1/namespaces/" + ns + "/deployments/" + name
                                                           : "/api/v1/namespaces/" + ns + "/services/" + name;
    o["metadata"]["generation"] = 1;
    o["metadata"]["uid"] = "uid-" + std::to_string(++s->uid);
    bool created = !s->objects.count(path);
    s->changed[path] = State::Clock::now();
    s->changed_object(path, created ? "ADDED" : "MODIFIED", o);
    s->objects[path] = o;
    stored.set_value();
  });
  stored.get_future().wait();
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

void KubeApiServer::set_delete_delay(std::chrono::milliseconds delay) {
  std::lock_guard lock(state_->mutex);
  state_->delete_after = delay;
}

}  // namespace cpn::test
