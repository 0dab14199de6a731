// /v1/deployments: what confirmed orders and submitted templates carry
// out, and the templates themselves (JSON or YAML).
#include "common.hpp"
#include "routes.hpp"

namespace cpn::api {

void add_deployment_routes(http::Router& router, Services& s) {
  const std::vector<std::string> roles = {"customer", "operator"};
  auto& deployments = s.deployments;

  router.add(list_route(
      "/v1/deployments", roles, deployments.collection(), "listDeployments",
      "Deployments (customers see their tenant's only)", "deployments",
      [](const engine::Object& o, const Request& req) {
        auto state = req.query_value("state");
        return templates::Deployments::visible(o, *req.principal) && (!state || o.body.value("state", "") == *state);
      },
      {{"state", "string", "Only deployments in this state (pending, cancelled, ...)."}}));

  http::Route create{"POST", "/v1/deployments", roles,
                     [&deployments](Request& req) {
                       auto r = deployments.submit(req.document, *req.principal);
                       return created(r, req, r ? "/v1/deployments/" + (*r)["id"].get<std::string>() : "");
                     },
                     "createDeployment",
                     "Submit a DeploymentTemplate directly: checked against the schema and the live inventory, its "
                     "resources held",
                     "deployments", "deployment-template", 201, "Created (state pending)"};
  create.creates = true;
  router.add(std::move(create));

  router.add({"GET", "/v1/deployments/{id}", roles,
              [&deployments](Request& req) {
                auto d = deployments.find(req.param("id"), *req.principal);
                if (!d) return error(d.error(), req);
                return json(deployments.collection().render(**d));
              },
              "getDeployment", "Read a deployment", "deployments"});
  router.add({"GET", "/v1/deployments/{id}/template", roles,
              [&deployments](Request& req) {
                auto d = deployments.find(req.param("id"), *req.principal);
                if (!d) return error(d.error(), req);
                return json((*d)->body["template"]);
              },
              "getDeploymentTemplate", "The deployment's template (Accept: application/yaml for YAML)", "deployments"});
  router.add({"DELETE", "/v1/deployments/{id}", roles,
              [&deployments](Request& req) {
                auto r = deployments.remove(req.param("id"), *req.principal);
                if (!r) return error(r.error(), req);
                Response out;
                out.status = 204;
                return out;
              },
              "deleteDeployment", "Tear down a deployment submitted as a template; what it holds is given back",
              "deployments", "", 204, "Deleted"});
}

}  // namespace cpn::api
