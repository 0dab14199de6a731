// cpnctl: a command-line client for cpnd's REST API (like kubectl or the
// nomad CLI). Server and token come from flags or CPN_SERVER / CPN_TOKEN.
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>

#include "cpn/client/http_client.hpp"

using namespace cpn;

namespace {

const std::map<std::string, std::string> kCollections = {
    {"sites", "/v1/sites"},   {"nodes", "/v1/nodes"},   {"links", "/v1/links"},
    {"images", "/v1/images"}, {"files", "/v1/files"},   {"tokens", "/v1/tokens"},
    {"events", "/v1/events"}, {"topology", "/v1/topology"}, {"blueprints", "/v1/blueprints"},
    {"offerings", "/v1/offerings"}, {"component-templates", "/v1/component-templates"},
    {"orders", "/v1/orders"}, {"deployments", "/v1/deployments"}, {"faults", "/v1/sim/faults"},
};

// -p NAME=VALUE pairs: numbers and true/false stay typed, anything else is a string.
Json typed_parameters(const std::vector<std::string>& params) {
  Json p = Json::object();
  for (const auto& kv : params) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) throw std::runtime_error("--param takes NAME=VALUE, not '" + kv + "'");
    std::string v = kv.substr(eq + 1);
    Json typed = Json::parse(v, nullptr, false);
    p[kv.substr(0, eq)] = typed.is_discarded() || typed.is_object() || typed.is_array() ? Json(v) : typed;
  }
  return p;
}

int print(const client::Reply& r, bool yaml) {
  bool ok = r.status < 400;
  std::ostream& out = ok ? std::cout : std::cerr;
  std::string type = r.header("content-type");
  if (type.find("json") != std::string::npos && !r.body.empty()) {
    Json j = r.json();
    out << (yaml ? to_yaml(j) : j.dump(2) + "\n");
  } else {
    out << r.body;
    if (!r.body.empty() && r.body.back() != '\n') out << "\n";
  }
  return ok ? 0 : 1;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cpnctl: talk to a cpnd"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags (--yaml, --server) also after the subcommand
  std::string server = std::getenv("CPN_SERVER") ? std::getenv("CPN_SERVER") : "http://127.0.0.1:8080";
  std::string token = std::getenv("CPN_TOKEN") ? std::getenv("CPN_TOKEN") : "";
  std::string token_file;
  std::string ca_file = std::getenv("CPN_CA_FILE") ? std::getenv("CPN_CA_FILE") : "";
  bool yaml = false;
  app.add_option("--server", server, "cpnd URL, http:// or https:// (CPN_SERVER)");
  app.add_option("--ca-file", ca_file, "https: the CA certificate (PEM) the server's must chain to; default the system's (CPN_CA_FILE)");
  app.add_option("--token", token, "bearer token (CPN_TOKEN)");
  app.add_option("--token-file", token_file, "read the bearer token from a file (e.g. DATA/admin.token)");
  app.add_flag("-y,--yaml", yaml, "print YAML");

  std::string what, id, selector, file, name, role, tenant = "default", sha;
  auto* get = app.add_subcommand("get", "list a collection or read one object (sites, nodes, links, images, files, "
                                        "tokens, events, topology)");
  get->add_option("what", what)->required();
  get->add_option("id", id, "object id (images: NAME/VERSION)");
  get->add_option("-l,--selector", selector, "label selector");
  auto* apply = app.add_subcommand("apply", "create or update from a YAML/JSON file (a Topology, or one object)");
  apply->add_option("-f,--file", file)->required();
  apply->add_option("what", what, "collection for a single object (sites, nodes, links, images); default topology");
  auto* del = app.add_subcommand("delete", "delete an object");
  del->add_option("what", what)->required();
  del->add_option("id", id)->required();
  std::string node;
  auto* cordon = app.add_subcommand("cordon", "stop new placements on a node");
  cordon->add_option("node", node)->required();
  auto* uncordon = app.add_subcommand("uncordon", "make a node ready again");
  uncordon->add_option("node", node)->required();
  auto* drain = app.add_subcommand("drain", "cordon a node and move its workloads");
  drain->add_option("node", node)->required();
  auto* capacity = app.add_subcommand("capacity", "a site's total, allocated and free capacity");
  capacity->add_option("site", id)->required();
  auto* upload = app.add_subcommand("upload", "upload a file (streamed)");
  upload->add_option("path", file)->required();
  upload->add_option("--name", name, "name to store it under (default: the file's name)");
  upload->add_option("--sha256", sha, "expected sha256");
  auto* resolve = app.add_subcommand("resolve", "which variant of an image runs on a node");
  resolve->add_option("image", id, "NAME/VERSION")->required();
  resolve->add_option("node", node)->required();
  auto* mktoken = app.add_subcommand("token", "create a token");
  mktoken->add_option("--name", name)->required();
  mktoken->add_option("--role", role)->required();
  mktoken->add_option("--tenant", tenant);
  auto* health = app.add_subcommand("health", "livez and readyz");
  std::vector<std::string> params;
  auto* evaluate = app.add_subcommand("evaluate", "what an order of a blueprint would need (demand, bandwidth, latency)");
  evaluate->add_option("blueprint", id, "NAME/VERSION")->required();
  evaluate->add_option("-p,--param", params, "parameter NAME=VALUE (numbers and true/false are typed)");
  std::string action;
  auto* lifecycle = app.add_subcommand("lifecycle", "publish, suspend or retire an offering or a blueprint version");
  lifecycle->add_option("action", action, "publish | suspend | retire")->required();
  lifecycle->add_option("what", what, "offerings | blueprints")->required();
  lifecycle->add_option("id", id, "offering name, or blueprint NAME/VERSION")->required();
  std::string duration, billing_mode, solution;
  auto* order = app.add_subcommand("order", "order an offering: the answer holds the demand and priced solutions");
  order->add_option("offering", id)->required();
  order->add_option("-p,--param", params, "parameter NAME=VALUE");
  order->add_option("--duration", duration, "how long, e.g. 24h or 30d");
  order->add_option("--billing-mode", billing_mode, "per_minute | per_traffic_gb | per_request");
  auto* solve = app.add_subcommand("solve", "what-if: an order's solutions without storing anything (operators)");
  solve->add_option("offering", id)->required();
  solve->add_option("-p,--param", params, "parameter NAME=VALUE");
  solve->add_option("--duration", duration, "how long, e.g. 24h or 30d");
  auto* confirm = app.add_subcommand("confirm", "confirm one of an order's solutions");
  confirm->add_option("order", id)->required();
  confirm->add_option("solution", solution, "s1, s2, ...")->required();
  auto* cancel = app.add_subcommand("cancel", "cancel an order (a confirmed one gives its resources back)");
  cancel->add_option("order", id)->required();
  auto* complete = app.add_subcommand("complete", "end a confirmed or running order: stop everything, give it back");
  complete->add_option("order", id)->required();
  auto* requote = app.add_subcommand("requote", "solve a quoted or expired order again");
  requote->add_option("order", id)->required();
  std::string component;
  int instances = 0;
  auto* scale = app.add_subcommand("scale", "scale a component of a running deployment to N instances (operators)");
  scale->add_option("deployment", id)->required();
  scale->add_option("component", component)->required();
  scale->add_option("instances", instances)->required();
  std::string instance, to_node, version;
  auto* replace = app.add_subcommand("replace", "replace one instance by a new one on another node (operators)");
  replace->add_option("deployment", id)->required();
  replace->add_option("instance", instance)->required();
  replace->add_option("--node", to_node, "the node the new instance goes to (a move)");
  auto* update = app.add_subcommand("update", "give one instance another model version, restarted alone (operators)");
  update->add_option("deployment", id)->required();
  update->add_option("instance", instance)->required();
  update->add_option("version", version)->required();
  auto* manifests = app.add_subcommand("manifests", "a deployment's Kubernetes objects (a List for kubectl apply -f)");
  manifests->add_option("deployment", id)->required();
  manifests->add_option("--site", selector, "only this site's objects");
  auto* metrics = app.add_subcommand("metrics", "the twin's reading of a deployment: utilisation, latency, flows, SLO");
  metrics->add_option("deployment", id)->required();
  std::string fault_type, target;
  double factor = 0, bandwidth = -1, extra_latency = -1;
  auto* fault = app.add_subcommand("fault", "inject a fault into the sim twin (operators)");
  fault->add_option("type", fault_type, "node-down, site-down, link-degraded, load-surge")->required();
  fault->add_option("target", target, "node, site, link, or order/deployment")->required();
  fault->add_option("--factor", factor, "load-surge: offered load multiplier");
  fault->add_option("--bandwidth-mbps", bandwidth, "link-degraded: the link's capacity meanwhile");
  fault->add_option("--extra-latency-ms", extra_latency, "link-degraded: latency added");
  auto* clear = app.add_subcommand("clear", "clear a fault of the sim twin");
  clear->add_option("fault", id)->required();
  CLI11_PARSE(app, argc, argv);

  try {
    if (!token_file.empty()) {
      token = read_file(token_file);
      while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
    }
    client::HttpClient http(server, token, ca_file);
    std::map<std::string, std::string> accept;
    if (yaml) accept["Accept"] = "application/yaml";
    auto path_of = [&](const std::string& w) {
      auto it = kCollections.find(w);
      if (it == kCollections.end()) throw std::runtime_error("unknown collection '" + w + "'");
      return it->second;
    };
    if (*get) {
      std::string target = path_of(what);
      if (!id.empty()) target += "/" + id;
      if (!selector.empty()) target += "?labelSelector=" + selector;
      return print(http.request("GET", target, "", accept), false);
    }
    if (*apply) {
      std::string text = read_file(file);
      bool is_json = file.size() > 5 && file.substr(file.size() - 5) == ".json";
      std::map<std::string, std::string> h = {{"Content-Type", is_json ? "application/json" : "application/yaml"}};
      std::string target = what.empty() ? "/v1/topology" : path_of(what);
      return print(http.request("POST", target, text, h), yaml);
    }
    if (*del) return print(http.del(path_of(what) + "/" + id), yaml);
    if (*cordon) return print(http.request("POST", "/v1/nodes/" + node + "/cordon"), yaml);
    if (*uncordon) return print(http.request("POST", "/v1/nodes/" + node + "/uncordon"), yaml);
    if (*drain) return print(http.request("POST", "/v1/nodes/" + node + "/drain"), yaml);
    if (*capacity) return print(http.request("GET", "/v1/sites/" + id + "/capacity", "", accept), false);
    if (*upload) {
      if (name.empty()) name = file.substr(file.find_last_of('/') + 1);
      std::map<std::string, std::string> h;
      if (!sha.empty()) h["X-Content-SHA256"] = sha;
      return print(http.put_file("/v1/files/" + name, file, h), yaml);
    }
    if (*resolve) return print(http.get("/v1/images/" + id + "/resolve?node=" + node), yaml);
    if (*mktoken)
      return print(http.post("/v1/tokens", {{"name", name}, {"role", role}, {"tenant", tenant}}), yaml);
    if (*evaluate) {
      Json p = typed_parameters(params);
      auto slash = id.find('/');
      if (slash == std::string::npos) throw std::runtime_error("evaluate takes NAME/VERSION");
      return print(http.post("/v1/blueprints/" + id.substr(0, slash) + "/versions/" + id.substr(slash + 1) + "/evaluate",
                             {{"parameters", p}}, accept),
                   false);
    }
    if (*order || *solve) {
      Json body = {{"offering", id}, {"parameters", typed_parameters(params)}};
      if (!duration.empty()) body["duration"] = duration;
      if (!billing_mode.empty()) body["billing_mode"] = billing_mode;
      return print(http.post(*order ? "/v1/orders" : "/v1/solve", body, accept), false);
    }
    if (*confirm) return print(http.post("/v1/orders/" + id + "/confirm", {{"solution", solution}}), yaml);
    if (*cancel) return print(http.request("POST", "/v1/orders/" + id + "/cancel"), yaml);
    if (*requote) return print(http.request("POST", "/v1/orders/" + id + "/requote"), yaml);
    if (*complete) return print(http.request("POST", "/v1/orders/" + id + "/complete"), yaml);
    if (*scale)
      return print(http.post("/v1/deployments/" + id + "/scale", {{"component", component}, {"instances", instances}}), yaml);
    if (*replace) {
      Json body = Json::object();
      if (!to_node.empty()) body["node"] = to_node;
      return print(http.post("/v1/deployments/" + id + "/instances/" + instance + "/replace", body), yaml);
    }
    if (*update)
      return print(http.post("/v1/deployments/" + id + "/instances/" + instance + "/update", {{"version", version}}), yaml);
    if (*manifests)
      return print(http.request("GET", "/v1/deployments/" + id + "/manifests" + (selector.empty() ? "" : "?site=" + selector),
                                "", accept),
                   false);
    if (*metrics) return print(http.request("GET", "/v1/deployments/" + id + "/metrics", "", accept), false);
    if (*fault) {
      Json body = {{"type", fault_type}, {"target", target}};
      if (factor > 0) body["factor"] = factor;
      if (bandwidth >= 0) body["bandwidth_mbps"] = bandwidth;
      if (extra_latency >= 0) body["extra_latency_ms"] = extra_latency;
      return print(http.post("/v1/sim/faults", body), yaml);
    }
    if (*clear) return print(http.del("/v1/sim/faults/" + id), yaml);
    if (*lifecycle) {
      std::string target;
      if (what == "offerings") {
        target = "/v1/offerings/" + id + "/" + action;
      } else if (what == "blueprints") {
        auto slash = id.find('/');
        if (slash == std::string::npos) throw std::runtime_error("a blueprint is NAME/VERSION");
        target = "/v1/blueprints/" + id.substr(0, slash) + "/versions/" + id.substr(slash + 1) + "/" + action;
      } else {
        throw std::runtime_error("lifecycle applies to offerings or blueprints, not '" + what + "'");
      }
      return print(http.request("POST", target), yaml);
    }
    if (*health) {
      int rc = print(http.get("/livez"), false);
      return print(http.get("/readyz"), false) | rc;
    }
  } catch (const std::exception& e) {
    std::cerr << "cpnctl: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
