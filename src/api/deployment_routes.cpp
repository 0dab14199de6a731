// /v1/deployments: what confirmed orders and submitted templates carry
// out, and the templates themselves (JSON or YAML).
#include <algorithm>

#include "common.hpp"
#include "cpn/drivers/kubernetes.hpp"
#include "cpn/orchestrator/status.hpp"
#include "cpn/schema/schema.hpp"
#include "cpn/sim/twin.hpp"
#include "routes.hpp"

namespace cpn::api {
namespace {

// Every instance of a deployment in id order: those live and those stopped
// (archived, read back from the store).
std::vector<const engine::Object*> every_instance(Services& s, const std::string& deployment) {
  auto out = s.orchestrator.instances_of(deployment);
  for (const auto* o : s.engine.archived_of(orchestrator::kInstance, deployment)) out.push_back(o);
  std::sort(out.begin(), out.end(), [](const engine::Object* a, const engine::Object* b) { return a->id < b->id; });
  return out;
}

}  // namespace

void add_deployment_routes(http::Router& router, Services& s) {
  const std::vector<std::string> roles = {"customer", "operator"};
  auto& deployments = s.deployments;

  router.add(list_route(
      "/v1/deployments", roles, deployments.collection(), "listDeployments",
      "Deployments (customers see their tenant's only)", "deployments",
      [](const engine::Object& o, const Request& req) {
        auto state = req.query_value("state"), name = req.query_value("name"), tenant = req.query_value("tenant");
        return templates::Deployments::visible(o, *req.principal) && (!state || o.body.value("state", "") == *state) &&
               (!name || templates::Deployments::name_of(o) == *name) && (!tenant || o.body.value("tenant", "") == *tenant);
      },
      {{"state", "string", "Only deployments in this state (pending, cancelled, ...)."},
       {"name", "string", "Only deployments with this name (a name is unique among a tenant's unfinished deployments; finished ones keep theirs in the history)."},
       {"tenant", "string", "Only this tenant's deployments."}}));

  // Customers reach resources through offerings only (quote, confirm).
  http::Route create{"POST", "/v1/deployments", {"operator"},
                     [&deployments](Request& req) {
                       auto r = deployments.submit(req.document, *req.principal);
                       return created(r, req, r ? "/v1/deployments/" + (*r)["id"].get<std::string>() : "");
                     },
                     "createDeployment",
                     "Submit a DeploymentTemplate directly (operators): checked against the schema, the live "
                     "inventory and the deployment limits; its variants and commands come from the image registry, "
                     "its billing is computed at cost; its resources held",
                     "deployments", "deployment-template", 201, "Created (state pending)"};
  create.creates = true;
  router.add(std::move(create));

  router.add({"GET", "/v1/deployments/{id}", roles,
              [&s](Request& req) {
                auto d = s.deployments.find(req.param("id"), *req.principal);
                if (!d) return error(d.error(), req);
                // Progress: instances by state, per component and per site.
                Json out = s.deployments.collection().render(**d), components = Json::object(), sites = Json::object();
                auto instances = every_instance(s, (*d)->id);
                out["status"] = {{"components", orchestrator::components_status((*d)->id, (*d)->body, instances,
                                                                                s.orchestrator.max_attempts())}};
                for (const auto* i : instances) {
                  std::string state = i->body.value("state", "");
                  for (auto [group, key] : {std::pair{&components, i->body.value("component", "")},
                                            std::pair{&sites, i->body.value("site", "")}}) {
                    Json& g = (*group)[key];
                    if (!g.is_object()) g = Json::object();
                    g[state] = g.value(state, 0) + 1;
                    g["total"] = g.value("total", 0) + 1;
                  }
                }
                out["progress"] = {{"components", components}, {"sites", sites}};
                return json(out);
              },
              "getDeployment", "Read a deployment, with its status per component (generation, observedGeneration, instances by state, conditions) and its progress per component and site", "deployments"});
  router.add({"GET", "/v1/deployments/{id}/instances", roles,
              [&s](Request& req) {
                auto d = s.deployments.find(req.param("id"), *req.principal);
                if (!d) return error(d.error(), req);
                Json items = Json::array();
                for (const auto* i : every_instance(s, (*d)->id)) {
                  Json item = i->body;
                  item["metadata"] = {{"id", i->id}, {"resourceVersion", std::to_string(i->resource_version)}};
                  items.push_back(std::move(item));
                }
                return json({{"items", items}});
              },
              "listDeploymentInstances", "A deployment's instances: node, architecture, image variant, state", "deployments"});
  router.add({"GET", "/v1/deployments/{id}/template", roles,
              [&deployments](Request& req) {
                auto d = deployments.find(req.param("id"), *req.principal);
                if (!d) return error(d.error(), req);
                return json((*d)->body["template"]);
              },
              "getDeploymentTemplate", "The deployment's template (Accept: application/yaml for YAML)", "deployments"});
  router.add({"POST", "/v1/deployments/{id}/scale", {"operator"},
              [&s](Request& req) {
                auto d = s.deployments.find(req.param("id"), *req.principal);
                if (!d) return error(d.error(), req);
                if (auto v = schema::validate("scale-request", req.document, "scale request"); !v) return error(v.error(), req);
                std::string before = (*d)->body.value("state", "");
                auto r = s.orchestrator.scale(req.param("id"), req.document, *req.principal);
                if (!r) return error(r.error(), req);
                // 202 while the change is carried out; 200 when there was nothing to change.
                return json(s.deployments.collection().render(*s.engine.find(templates::kDeployment, req.param("id"))),
                            r->value("state", "") == before ? 200 : 202);
              },
              "scaleDeployment",
              "Scale a component of a running deployment to a number of instances (operators; the deployment and "
              "its order are adjusting until every new instance runs or every retired one is stopped)",
              "deployments", "scale-request", 202, "Accepted: adjusting"});
  router.add({"POST", "/v1/deployments/{id}/instances/{instance}/replace", {"operator"},
              [&s](Request& req) {
                auto d = s.deployments.find(req.param("id"), *req.principal);
                if (!d) return error(d.error(), req);
                if (auto v = schema::validate("replace-request", req.document, "replace request"); !v)
                  return error(v.error(), req);
                auto r = s.orchestrator.replace(req.param("id"), req.param("instance"), req.document, req.principal->name);
                if (!r) return error(r.error(), req);
                return json(s.deployments.collection().render(*s.engine.find(templates::kDeployment, req.param("id"))),
                            202);
              },
              "replaceInstance",
              "Replace one instance of a running deployment by a new one on another node of its kind (operators; the "
              "others keep running untouched; the deployment is adjusting until the new one runs and the old one stopped)",
              "deployments", "replace-request", 202, "Accepted: adjusting"});
  router.add({"POST", "/v1/deployments/{id}/instances/{instance}/update", {"operator"},
              [&s](Request& req) {
                auto d = s.deployments.find(req.param("id"), *req.principal);
                if (!d) return error(d.error(), req);
                if (auto v = schema::validate("update-request", req.document, "update request"); !v)
                  return error(v.error(), req);
                std::string before = (*d)->body.value("state", "");
                auto r = s.orchestrator.update(req.param("id"), req.param("instance"), req.document, req.principal->name);
                if (!r) return error(r.error(), req);
                return json(s.deployments.collection().render(*s.engine.find(templates::kDeployment, req.param("id"))),
                            r->value("state", "") == before ? 200 : 202);
              },
              "updateInstance",
              "Give one instance of a running deployment another model version, restarting it alone in place "
              "(operators; the others keep theirs; 200 when it has that version already)",
              "deployments", "update-request", 202, "Accepted: adjusting"});
  router.add({"GET", "/v1/deployments/{id}/metrics", roles,
              [&s](Request& req) {
                auto d = s.deployments.find(req.param("id"), *req.principal);
                if (!d) return error(d.error(), req);
                std::map<std::string, std::string> states;
                for (const auto* i : s.orchestrator.instances_of((*d)->id)) states[i->id] = i->body.value("state", "");
                std::map<std::string, double> held;
                for (const auto* l : s.engine.list(inventory::kLink)) held[l->id] = l->body.value("allocated_mbps", 0.0);
                sim::Conditions twin = sim::conditions_of(s.engine);
                double surge = twin.surge.count((*d)->id) ? twin.surge.at((*d)->id) : 1.0;
                Json out = sim::model_load((*d)->body["template"], states, surge, twin, held, (*d)->id);
                out["deployment"] = (*d)->id;
                out["at"] = s.engine.now();
                return json(out);
              },
              "getDeploymentMetrics",
              "The twin's reading of the deployment under its offered load (surges included): per component "
              "utilisation, latency, served and dropped work; per flow delivered bandwidth and latency (degraded links "
              "included); end-to-end latency against the SLO",
              "deployments"});
  http::Route manifests{
      "GET", "/v1/deployments/{id}/manifests", roles,
      [&s](Request& req) {
        auto d = s.deployments.find(req.param("id"), *req.principal);
        if (!d) return error(d.error(), req);
        drivers::kubernetes::InstanceModels models;
        for (const auto* i : every_instance(s, (*d)->id)) models[i->id] = drivers::kubernetes::instance_model(i->body);
        auto workloads = drivers::kubernetes::render((*d)->id, (*d)->body["template"],
                                                     drivers::kubernetes::inventory_sites(s.engine), models);
        if (!workloads) return error(workloads.error(), req);
        auto site = req.query_value("site"), driver = req.query_value("driver");
        Json items = Json::array();
        for (const auto& w : *workloads) {
          std::string runs_on = w.deployment["metadata"]["annotations"].value("cpn.io/driver", "");
          if ((site && *site != w.site) || (driver && *driver != runs_on)) continue;
          items.push_back(w.service);
          items.push_back(w.deployment);
        }
        // A List: `kubectl apply -f` takes it as it is.
        return json({{"apiVersion", "v1"}, {"kind", "List"}, {"metadata", Json::object()}, {"items", items}});
      },
      "getDeploymentManifests",
      "The Kubernetes objects of the deployment: per component and site a Service and an apps/v1 Deployment, as the "
      "kubernetes driver applies them (Accept: application/yaml for YAML)",
      "deployments"};
  manifests.query = {{"site", "string", "Only the objects of this site."},
                     {"driver", "string", "Only the objects of sites with this driver (kubernetes: what cpnd applies)."}};
  router.add(std::move(manifests));
  router.add({"DELETE", "/v1/deployments/{id}", roles,
              [&s](Request& req) {
                auto d = s.deployments.find(req.param("id"), *req.principal);
                if (!d) return error(d.error(), req);
                if ((*d)->body.value("source", "") == "template") {
                  // Started: torn down by the orchestrator, then removed (202).
                  auto started = s.orchestrator.tear_down(req.param("id"));
                  if (!started) return error(started.error(), req);
                  if (*started) {
                    Response out = json(s.deployments.collection().render(*s.engine.find(templates::kDeployment, req.param("id"))), 202);
                    return out;
                  }
                }
                auto r = s.deployments.remove(req.param("id"), *req.principal);
                if (!r) return error(r.error(), req);
                Response out;
                out.status = 204;
                return out;
              },
              "deleteDeployment", "Tear down a deployment submitted as a template; what it holds is given back",
              "deployments", "", 204, "Deleted"});
}

}  // namespace cpn::api
