// /v1/sim/faults: failures injected into the sim twin. The sim compute
// driver asks whether a node is up; a fault on the node or its site says no.
#include <fmt/format.h>

#include "common.hpp"
#include "cpn/core/crypto.hpp"
#include "cpn/schema/schema.hpp"
#include "routes.hpp"

namespace cpn::api {

void add_sim_routes(http::Router& router, Services& s) {
  const std::vector<std::string> roles = {"operator"};
  http::Route inject{"POST", "/v1/sim/faults", roles,
                     [&s](Request& req) {
                       if (auto v = schema::validate("sim-fault", req.document, "fault"); !v) return error(v.error(), req);
                       std::string type = req.document["type"], target = req.document["target"];
                       const char* kind = type == "node-down" ? inventory::kNode : inventory::kSite;
                       if (!s.engine.find(kind, target))
                         return error(Error::invalid_field("/target", fmt::format("there is no {} '{}'", kind, target)), req);
                       Json body = req.document;
                       body["id"] = "fault-" + random_hex(4);
                       body["created_by"] = req.principal->name;
                       auto e = s.engine.commit({{engine::Change::Op::put, kSimFault, body["id"], body, "FaultInjected"}});
                       if (!e) return error(e.error(), req);
                       Response r = json(body, 201);
                       r.header("Location", "/v1/sim/faults/" + body["id"].get<std::string>());
                       return r;
                     },
                     "injectFault", "Inject a fault into the sim twin (node or site down)", "sim", "sim-fault", 201,
                     "Injected"};
  inject.creates = true;
  router.add(std::move(inject));
  router.add({"GET", "/v1/sim/faults", roles,
              [&s](Request&) {
                Json items = Json::array();
                for (const auto* f : s.engine.list(kSimFault)) items.push_back(f->body);
                return json({{"items", items}});
              },
              "listFaults", "The faults active in the sim twin", "sim"});
  router.add({"DELETE", "/v1/sim/faults/{id}", roles,
              [&s](Request& req) {
                if (!s.engine.find(kSimFault, req.param("id")))
                  return error(Error::not_found(fmt::format("fault '{}' not found", req.param("id"))), req);
                auto e = s.engine.commit({{engine::Change::Op::remove, kSimFault, req.param("id"), nullptr, "FaultCleared"}});
                if (!e) return error(e.error(), req);
                Response r;
                r.status = 204;
                return r;
              },
              "clearFault", "Clear a fault: the node or site is up again in the twin", "sim", "", 204, "Cleared"});
}

}  // namespace cpn::api
