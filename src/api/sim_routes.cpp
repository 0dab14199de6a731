// /v1/sim/faults: failures injected into the sim twin (see cpn/sim/twin.hpp
// for what each does).
#include <fmt/format.h>

#include "common.hpp"
#include "cpn/core/crypto.hpp"
#include "cpn/schema/schema.hpp"
#include "cpn/sim/twin.hpp"
#include "routes.hpp"

namespace cpn::api {
namespace {

// The schema, then what it cannot say: the target exists, and each type's
// own fields (a degraded link loses bandwidth, it does not gain any).
Result<Json> checked_fault(Services& s, const Json& doc) {
  if (auto v = schema::validate("sim-fault", doc, "fault"); !v) return fail(v.error());
  Json body = doc;
  std::string type = doc["type"], target = doc["target"];
  bool link = type == "link-degraded", surge = type == "load-surge";
  for (const char* field : {"bandwidth_mbps", "extra_latency_ms"})
    if (!link && doc.contains(field))
      return fail(Error::invalid_field(std::string("/") + field, "only a link-degraded fault takes " + std::string(field)));
  if (!surge && doc.contains("factor")) return fail(Error::invalid_field("/factor", "only a load-surge fault takes a factor"));
  if (type == "node-down" || type == "site-down") {
    const char* kind = type == "node-down" ? inventory::kNode : inventory::kSite;
    if (!s.engine.find(kind, target))
      return fail(Error::invalid_field("/target", fmt::format("there is no {} '{}'", kind, target)));
  } else if (link) {
    const engine::Object* l = s.engine.find(inventory::kLink, target);
    if (!l) return fail(Error::invalid_field("/target", fmt::format("there is no link '{}'", target)));
    if (!doc.contains("bandwidth_mbps") && !doc.contains("extra_latency_ms"))
      return fail(Error::invalid_field("/bandwidth_mbps", "a degraded link needs bandwidth_mbps, extra_latency_ms or both"));
    double capacity = l->body.value("bandwidth_mbps", 0.0);
    if (doc.contains("bandwidth_mbps") && doc["bandwidth_mbps"].get<double>() > capacity)
      return fail(Error::invalid_field("/bandwidth_mbps", fmt::format("link '{}' has {} Mbit/s: a degraded link cannot carry more",
                                                                      target, capacity)));
  } else {
    // A surge on an order lands on its deployment; a submitted deployment is named directly.
    const engine::Object* order = s.engine.find("order", target);
    std::string deployment = order ? order->body.value("deployment", "") : target;
    const engine::Object* d = s.engine.find(templates::kDeployment, deployment);
    if (!d)
      return fail(Error::invalid_field("/target", order ? fmt::format("order '{}' has no deployment yet", target)
                                                        : fmt::format("there is no order or deployment '{}'", target)));
    body["deployment"] = deployment;
    body["factor"] = doc.value("factor", 2.0);
  }
  return body;
}

}  // namespace

void add_sim_routes(http::Router& router, Services& s) {
  const std::vector<std::string> roles = {"operator"};
  http::Route inject{"POST", "/v1/sim/faults", roles,
                     [&s](Request& req) {
                       auto fault = checked_fault(s, req.document);
                       if (!fault) return error(fault.error(), req);
                       Json body = *fault;
                       body["id"] = "fault-" + random_hex(4);
                       body["created_by"] = req.principal->name;
                       body["created_at"] = s.engine.now();
                       auto e = s.engine.commit({{engine::Change::Op::put, sim::kFault, body["id"], body, "FaultInjected"}});
                       if (!e) return error(e.error(), req);
                       Response r = json(body, 201);
                       r.header("Location", "/v1/sim/faults/" + body["id"].get<std::string>());
                       return r;
                     },
                     "injectFault",
                     "Inject a fault into the sim twin: node or site down, link degraded, load surge on an order",
                     "sim", "sim-fault", 201, "Injected"};
  inject.creates = true;
  router.add(std::move(inject));
  router.add({"GET", "/v1/sim/faults", roles,
              [&s](Request&) {
                Json items = Json::array();
                for (const auto* f : s.engine.list(sim::kFault)) items.push_back(f->body);
                return json({{"items", items}});
              },
              "listFaults", "The faults active in the sim twin", "sim"});
  router.add({"DELETE", "/v1/sim/faults/{id}", roles,
              [&s](Request& req) {
                if (!s.engine.find(sim::kFault, req.param("id")))
                  return error(Error::not_found(fmt::format("fault '{}' not found", req.param("id"))), req);
                auto e = s.engine.commit({{engine::Change::Op::remove, sim::kFault, req.param("id"), nullptr, "FaultCleared"}});
                if (!e) return error(e.error(), req);
                Response r;
                r.status = 204;
                return r;
              },
              "clearFault", "Clear a fault: the node or site is up again in the twin", "sim", "", 204, "Cleared"});
}

}  // namespace cpn::api
