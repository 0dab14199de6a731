// /v1/sites, /v1/nodes, /v1/links, /v1/topology, capacity, cordon and drain.
#include "common.hpp"
#include "routes.hpp"

namespace cpn::api {

void add_inventory_routes(http::Router& router, Services& s) {
  const std::vector<std::string> read = {"operator", "designer"};
  const std::vector<std::string> write = {"operator"};
  auto& inv = s.inventory;

  add_collection_routes(router, inv.sites(), {"/v1/sites", "inventory", "site", "sites", "site", read, write},
                        [](const engine::Object& o, const Request& req) {
                          auto tier = req.query_value("tier");
                          return !tier || o.body.value("tier", "") == *tier;
                        },
                        {{"tier", "string", "Only sites of this tier (center, edge, end)."}});
  add_collection_routes(router, inv.nodes(), {"/v1/nodes", "inventory", "node", "nodes", "node", read, write},
                        [](const engine::Object& o, const Request& req) {
                          for (const char* f : {"site", "arch", "state"})
                            if (auto v = req.query_value(f); v && o.body.value(f, "") != *v) return false;
                          return true;
                        },
                        {{"site", "string", "Only nodes of this site."},
                         {"arch", "string", "Only nodes of this architecture."},
                         {"state", "string", "Only nodes in this state (ready, cordoned, down)."}});
  add_collection_routes(router, inv.links(), {"/v1/links", "inventory", "link", "links", "link", read, write},
                        [](const engine::Object& o, const Request& req) {
                          auto site = req.query_value("site");
                          return !site || o.body.value("from", "") == *site || o.body.value("to", "") == *site;
                        },
                        {{"site", "string", "Only links that start or end at this site."}});

  router.add({"GET", "/v1/sites/{id}/capacity", read,
              [&inv](Request& req) { return answer(inv.site_capacity(req.param("id")), req); }, "getSiteCapacity",
              "Total, allocated and free capacity of a site by resource, architecture and accelerator", "inventory"});

  struct StateAction {
    const char* verb;
    const char* state;
    const char* event;
    const char* summary;
  };
  for (StateAction a : {StateAction{"cordon", "cordoned", "NodeCordoned", "Cordon a node: no new placements on it"},
                        StateAction{"uncordon", "ready", "NodeUncordoned", "Make a cordoned or down node ready again"},
                        StateAction{"drain", "cordoned", "NodeDraining",
                                    "Drain a node: cordon it, then move each of its instances to another node of its "
                                    "kind (one at a time per deployment); the node's `drain` says how far it got"}}) {
    std::string verb = a.verb;
    router.add({"POST", "/v1/nodes/{id}/" + verb, {"operator"},
                [&inv, a](Request& req) {
                  auto m = if_match(req);
                  if (!m) return error(m.error(), req);
                  return answer(inv.set_node_state(req.param("id"), a.state, a.event, *m), req);
                },
                verb + "Node", a.summary, "inventory"});
  }

  http::Route get_topology{"GET", "/v1/topology", read,
                           [&inv](Request&) { return json(inv.export_topology()); }, "exportTopology",
                           "Export the whole inventory as a Topology document (JSON or YAML)", "inventory"};
  router.add(std::move(get_topology));
  http::Route import{"POST", "/v1/topology", write,
                     [&inv](Request& req) {
                       auto r = inv.import_topology(req.document);
                       if (!r) return error(r.error(), req);
                       return json(r->to_json());
                     },
                     "importTopology", "Import a Topology document, all or nothing (re-import upserts)", "inventory",
                     "topology"};
  router.add(std::move(import));
}

}  // namespace cpn::api
