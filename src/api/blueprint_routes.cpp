// /v1/blueprints (versions, evaluate, diff) and /v1/component-templates.
#include "common.hpp"
#include "cpn/schema/schema.hpp"
#include "routes.hpp"

namespace cpn::api {
namespace {

Response no_content(const Status& s, const Request& req) {
  if (!s) return error(s.error(), req);
  Response r;
  r.status = 204;
  return r;
}

}  // namespace

void add_blueprint_routes(http::Router& router, Services& s) {
  const std::vector<std::string> read = {"designer", "operator"};
  const std::vector<std::string> write = {"designer"};
  auto& lib = s.library;
  auto& catalog = s.catalog;
  auto version_path = [](const Json& j) {
    return "/v1/blueprints/" + j["metadata"]["name"].get<std::string>() + "/versions/" +
           j["metadata"]["version"].get<std::string>();
  };

  router.add(list_route(
      "/v1/blueprints", read, lib.blueprints(), "listBlueprints", "List blueprint versions", "blueprints",
      [](const engine::Object& b, const Request& req) {
        auto name = req.query_value("name");
        return !name || b.body.value("/metadata/name"_json_pointer, "") == *name;
      },
      {{"name", "string", "Only the versions of this blueprint."}}));

  http::Route create{"POST", "/v1/blueprints", write,
                     [&lib, version_path](Request& req) {
                       auto r = lib.create(req.document);
                       return created(r, req, r ? version_path(*r) : "");
                     },
                     "createBlueprint", "Store a new blueprint version (a draft)", "blueprints", "blueprint", 201,
                     "Created"};
  create.creates = true;
  router.add(std::move(create));

  const std::string item = "/v1/blueprints/{name}/versions/{version}";
  auto id = [](const Request& req) { return blueprint::version_id(req.param("name"), req.param("version")); };
  router.add({"GET", item, read, [&lib, id](Request& req) { return answer(lib.blueprints().get(id(req)), req); },
              "getBlueprint", "Read a blueprint version (JSON or YAML)", "blueprints"});
  router.add({"PUT", item, write,
              [&lib](Request& req) {
                auto m = if_match(req);
                if (!m) return error(m.error(), req);
                return answer(lib.replace(req.param("name"), req.param("version"), req.document, *m), req);
              },
              "replaceBlueprint", "Change a draft blueprint version (published versions are immutable)",
              "blueprints", "blueprint"});
  router.add({"DELETE", item, write,
              [&lib, &catalog](Request& req) {
                auto m = if_match(req);
                if (!m) return error(m.error(), req);
                auto users = catalog.users_of(req.param("name"), req.param("version"));
                return no_content(lib.remove(req.param("name"), req.param("version"), *m, users), req);
              },
              "deleteBlueprint", "Delete a draft or retired blueprint version", "blueprints", "", 204, "Deleted"});
  router.add({"POST", item + "/publish", {"designer", "operator"},
              [&lib](Request& req) { return answer(lib.publish(req.param("name"), req.param("version")), req); },
              "publishBlueprint", "Publish a blueprint version: from now on it is immutable", "blueprints"});
  router.add({"POST", item + "/retire", {"designer", "operator"},
              [&lib, &catalog](Request& req) {
                auto users = catalog.users_of(req.param("name"), req.param("version"));
                return answer(lib.retire(req.param("name"), req.param("version"), users), req);
              },
              "retireBlueprint", "Retire a blueprint version; refused while offerings use it", "blueprints"});
  router.add({"POST", item + "/evaluate", read,
              [&lib](Request& req) {
                if (auto v = schema::validate("evaluate", req.document, "evaluate request"); !v)
                  return error(v.error(), req);
                Json params = req.document.value("parameters", Json::object());
                return answer(lib.evaluate(req.param("name"), req.param("version"), params), req);
              },
              "evaluateBlueprint",
              "Try it: every derived value and each component's demand, bandwidth and latency budget for parameters",
              "blueprints", "evaluate"});
  http::Route diff{"GET", "/v1/blueprints/{name}/diff", read,
                   [&lib](Request& req) {
                     auto from = req.query_value("from"), to = req.query_value("to");
                     if (!from || !to)
                       return error(Error::bad_request("diff needs ?from=VERSION&to=VERSION",
                                                       {{!from ? "/query/from" : "/query/to", "required"}}),
                                    req);
                     return answer(lib.diff(req.param("name"), *from, *to), req);
                   },
                   "diffBlueprint", "The changes between two versions of a blueprint, as JSON Patch", "blueprints"};
  diff.query = {{"from", "string", "The older version."}, {"to", "string", "The newer version."}};
  router.add(std::move(diff));

  // Component templates: immutable versions.
  router.add(list_route("/v1/component-templates", read, lib.templates(), "listComponentTemplates",
                        "List component templates", "blueprints"));
  http::Route tcreate{"POST", "/v1/component-templates", write,
                      [&lib](Request& req) {
                        auto r = lib.create_template(req.document);
                        std::string loc = r ? "/v1/component-templates/" + (*r)["metadata"]["name"].get<std::string>() +
                                                  "/versions/" + (*r)["metadata"]["version"].get<std::string>()
                                            : "";
                        return created(r, req, loc);
                      },
                      "createComponentTemplate", "Store a component template version (immutable)", "blueprints",
                      "component-template", 201, "Created"};
  tcreate.creates = true;
  router.add(std::move(tcreate));
  router.add({"GET", "/v1/component-templates/{name}/versions/{version}", read,
              [&lib](Request& req) {
                return answer(lib.templates().get(blueprint::version_id(req.param("name"), req.param("version"))), req);
              },
              "getComponentTemplate", "Read a component template version", "blueprints"});
  router.add({"DELETE", "/v1/component-templates/{name}/versions/{version}", write,
              [&lib](Request& req) {
                return no_content(lib.remove_template(req.param("name"), req.param("version")), req);
              },
              "deleteComponentTemplate", "Delete a component template version no blueprint uses", "blueprints", "",
              204, "Deleted"});
}

}  // namespace cpn::api
