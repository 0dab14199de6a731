// /openapi.json is generated from the route table and the JSON Schemas in
// schemas/, so it cannot drift from what the daemon serves.
#include <set>

#include "common.hpp"
#include "cpn/schema/schema.hpp"

namespace cpn::api {
namespace {

std::string pascal(const std::string& name) {
  std::string out;
  bool up = true;
  for (char c : name) {
    if (c == '-' || c == '_' || c == '.') {
      up = true;
      continue;
    }
    out += up ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    up = false;
  }
  return out;
}

// A draft-07 schema as an OpenAPI 3.1 component: its local definitions
// become components of their own ("Node.quantity" -> NodeQuantity).
void rewrite_refs(Json& j, const std::string& prefix) {
  if (j.is_object()) {
    if (auto r = j.find("$ref"); r != j.end() && r->is_string()) {
      std::string ref = r->get<std::string>();
      const std::string local = "#/definitions/";
      if (ref.rfind(local, 0) == 0) *r = "#/components/schemas/" + prefix + pascal(ref.substr(local.size()));
    }
    for (auto& [k, v] : j.items()) rewrite_refs(v, prefix);
  } else if (j.is_array()) {
    for (auto& v : j) rewrite_refs(v, prefix);
  }
}

Json components() {
  Json schemas = Json::object();
  for (const auto& name : schema::schema_names()) {
    if (name == "config") continue;  // cpnd.yaml's schema: no request or answer carries it
    Json s = schema::schema_document(name);
    std::string prefix = pascal(name);
    s.erase("$schema");
    if (s.contains("definitions")) {
      for (auto& [def, body] : s["definitions"].items()) {
        Json d = body;
        rewrite_refs(d, prefix);
        schemas[prefix + pascal(def)] = d;
      }
      s.erase("definitions");
    }
    rewrite_refs(s, prefix);
    schemas[prefix] = s;
  }
  schemas["Problem"] = {
      {"type", "object"},
      {"description", "RFC 9457 problem details; errors[] points at each offending field."},
      {"required", {"type", "title", "status"}},
      {"properties",
       {{"type", {{"type", "string"}}},
        {"title", {{"type", "string"}}},
        {"status", {{"type", "integer"}}},
        {"detail", {{"type", "string"}}},
        {"instance", {{"type", "string"}}},
        {"request_id", {{"type", "string"}}},
        {"errors",
         {{"type", "array"},
          {"items",
           {{"type", "object"},
            {"properties", {{"pointer", {{"type", "string"}}}, {"detail", {{"type", "string"}}}}}}}}}}}};
  schemas["Object"] = {{"type", "object"},
                       {"description", "An object with its metadata (id, resourceVersion, labels, timestamps)."}};
  schemas["List"] = {{"type", "object"},
                     {"required", {"items"}},
                     {"properties",
                      {{"items", {{"type", "array"}, {"items", {{"$ref", "#/components/schemas/Object"}}}}},
                       {"continue", {{"type", {"string", "null"}}, {"description", "Token for the next page."}}}}}};
  schemas["MergePatch"] = {{"type", "object"}, {"description", "RFC 7386 JSON merge patch."}};
  return schemas;
}

Json problem_response(const std::string& description) {
  return {{"description", description},
          {"content", {{"application/problem+json", {{"schema", {{"$ref", "#/components/schemas/Problem"}}}}}}}};
}

}  // namespace

Json openapi_document(const http::Router& router, const std::string& version) {
  Json paths = Json::object();
  std::set<std::string> tags;
  for (const auto& r : router.routes()) {
    Json op = {{"operationId", r.operation_id}, {"summary", r.summary}, {"tags", {r.tag}}};
    tags.insert(r.tag);
    Json params = Json::array();
    for (const auto& seg : http::split_path(r.path))
      if (seg.front() == '{')
        params.push_back({{"name", seg.substr(1, seg.size() - 2)},
                          {"in", "path"},
                          {"required", true},
                          {"schema", {{"type", "string"}}}});
    for (const auto& q : r.query)
      params.push_back({{"name", q.name}, {"in", "query"}, {"description", q.description},
                        {"schema", {{"type", q.type}}}});
    if (r.method == "PUT" || r.method == "PATCH" || r.method == "DELETE")
      params.push_back({{"name", "If-Match"}, {"in", "header"},
                        {"description", "Only change the object if it is still at this ETag (resourceVersion)."},
                        {"schema", {{"type", "string"}}}});
    if (r.creates)
      params.push_back({{"name", "Idempotency-Key"}, {"in", "header"},
                        {"description", "Repeat the request safely: the same key and body return the first answer."},
                        {"schema", {{"type", "string"}}}});
    if (!params.empty()) op["parameters"] = params;

    if (r.request_schema == "binary") {
      op["requestBody"] = {{"required", true},
                           {"content", {{"application/octet-stream", {{"schema", {{"type", "string"},
                                                                                  {"format", "binary"}}}}}}}};
    } else if (r.request_schema == "merge-patch") {
      Json ref = {{"schema", {{"$ref", "#/components/schemas/MergePatch"}}}};
      op["requestBody"] = {{"required", true},
                           {"content", {{"application/merge-patch+json", ref}, {"application/json", ref}}}};
    } else if (!r.request_schema.empty()) {
      Json ref = {{"schema", {{"$ref", "#/components/schemas/" + pascal(r.request_schema)}}}};
      op["requestBody"] = {{"required", true}, {"content", {{"application/json", ref}, {"application/yaml", ref}}}};
    }

    Json responses = Json::object();
    Json ok = {{"description", r.response_description}};
    if (r.success_status != 204) {
      if (r.path == "/metrics")
        ok["content"] = {{"text/plain", {{"schema", {{"type", "string"}}}}}};
      else if (r.operation_id == "getFile")
        ok["content"] = {{"application/octet-stream", {{"schema", {{"type", "string"}, {"format", "binary"}}}}}};
      else if (r.operation_id.rfind("list", 0) == 0 && r.operation_id != "listEvents")
        ok["content"] = {{"application/json", {{"schema", {{"$ref", "#/components/schemas/List"}}}}}};
      else
        ok["content"] = {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Object"}}}}}};
    }
    responses[std::to_string(r.success_status)] = ok;
    if (r.operation_id == "getFile") {
      responses["206"] = {{"description", "Part of the file (Range)"}};
      responses["304"] = {{"description", "Not modified (If-None-Match)"}};
      responses["416"] = problem_response("Range not satisfiable");
    }
    if (r.roles.empty()) {
      responses["4XX"] = problem_response("Client error");
      if (r.path == "/readyz") responses["503"] = problem_response("Not ready");
      op["security"] = Json::array();
    } else {
      responses["400"] = problem_response("Malformed request");
      responses["401"] = problem_response("No valid bearer token");
      responses["403"] = problem_response("The token's role may not do this");
      if (r.path.find('{') != std::string::npos) responses["404"] = problem_response("Not found");
      if (r.method != "GET") {
        responses["409"] = problem_response("Conflict with the current state");
        if (!r.request_schema.empty()) {
          responses["413"] = problem_response("Body over the limit");
          responses["415"] = problem_response("Unsupported Content-Type");
        }
        responses["422"] = problem_response("Validation failed; errors[] points at each field");
      }
      if (r.method == "PUT" || r.method == "PATCH" || r.method == "DELETE")
        responses["412"] = problem_response("If-Match is stale");
      op["security"] = Json::array({{{"bearer", Json::array()}}});
      Json roles = Json::array({"admin"});
      for (const auto& role : r.roles)
        if (role != "admin") roles.push_back(role);
      op["x-roles"] = roles;
    }
    op["responses"] = responses;
    std::string method = r.method;
    std::transform(method.begin(), method.end(), method.begin(), [](unsigned char c) { return std::tolower(c); });
    paths[r.path][method] = op;
  }
  static const std::map<std::string, std::string> tag_text = {
      {"system", "Health, metrics and this document"},
      {"auth", "Bearer tokens with a role and a tenant"},
      {"inventory", "Sites, nodes, links and the whole topology"},
      {"artifacts", "Multi-architecture images and stored files"},
      {"events", "The change log and its watch stream"},
      {"blueprints", "Service blueprints, their versions and component templates"},
      {"catalog", "Offerings: published blueprints with a service mode and billing"},
  };
  Json tag_list = Json::array();
  for (const auto& t : tags) tag_list.push_back({{"name", t}, {"description", tag_text.count(t) ? tag_text.at(t) : t}});
  return {{"openapi", "3.1.0"},
          {"info",
           {{"title", "cpnd"},
            {"version", version},
            {"summary", "Orchestration daemon of a compute power network"},
            {"description",
             "Inventory, artifacts, blueprints, orders and deployments of a compute power network. Every /v1 route "
             "needs `Authorization: Bearer TOKEN`; `x-roles` lists the roles allowed. Errors are RFC 9457 problem "
             "details."},
            {"license", {{"name", "Apache-2.0"}, {"identifier", "Apache-2.0"}}}}},
          {"servers", {{{"url", "/"}, {"description", "this cpnd"}}}},
          {"tags", tag_list},
          {"paths", paths},
          {"components",
           {{"schemas", components()},
            {"securitySchemes",
             {{"bearer", {{"type", "http"}, {"scheme", "bearer"}, {"description", "A token from /v1/tokens"}}}}}}}};
}

}  // namespace cpn::api
