// Routes: method, path template ("/v1/nodes/{id}"), the roles allowed and
// the handler, plus what the OpenAPI document says of them. The route table
// is the single source for dispatch, authorisation and /openapi.json.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "cpn/http/message.hpp"

namespace cpn::http {

using Handler = std::function<Response(Request&)>;
// What a caller's role may see of an answer (customers: their price, not
// the operator's cost): applied to a JSON answer, or to each of its items.
using View = std::function<void(Json& object, const auth::Principal& who)>;
// The CPU-heavy part of a request (solving an order) taken off the thread
// that serves every other request: called there once the request is
// authenticated and its body parsed, it takes what the work needs (into
// Request::prepared) and returns the work, which runs on a worker and must
// touch nothing but what it took. The handler then runs as usual, finding
// Request::prepared filled. An empty function: nothing to do beforehand.
using Prepare = std::function<std::function<void()>(Request&)>;

struct QueryParam {
  std::string name;
  std::string type;  // string | integer | boolean
  std::string description;
};

struct Route {
  Route(std::string method_, std::string path_, std::vector<std::string> roles_, Handler handler_,
        std::string operation_id_, std::string summary_, std::string tag_, std::string request_schema_ = "",
        int success_status_ = 200, std::string response_description_ = "OK")
      : method(std::move(method_)),
        path(std::move(path_)),
        roles(std::move(roles_)),
        handler(std::move(handler_)),
        operation_id(std::move(operation_id_)),
        summary(std::move(summary_)),
        tag(std::move(tag_)),
        request_schema(std::move(request_schema_)),
        success_status(success_status_),
        response_description(std::move(response_description_)) {}

  std::string method;
  std::string path;            // template
  std::vector<std::string> roles;  // empty: public (no token needed); admin is always allowed
  Handler handler;
  // OpenAPI
  std::string operation_id;
  std::string summary;
  std::string tag;
  std::string request_schema;   // schema name of the body, "" for none, "binary" for raw uploads
  int success_status = 200;
  std::string response_description = "OK";
  std::vector<QueryParam> query;
  bool streams_body = false;    // the body is written to a temp file as it arrives
  bool creates = false;         // a creating POST: Idempotency-Key applies
  bool yaml = true;             // the answer can be YAML (Accept)
  std::vector<std::string> not_replayed;  // answer fields an Idempotency-Key replay leaves out
  View view;                    // the projection of the answer by role (empty: as it is)
  Prepare prepare;              // work to run off the engine thread before the handler,
  std::string prepare_task = "solve";  // timed as this task (cpnd_task_duration_seconds)
};

struct Match {
  const Route* route = nullptr;
  std::map<std::string, std::string> params;
  std::vector<std::string> allowed;  // methods on this path, for 405
};

class Router {
 public:
  void add(Route route);
  // A path that matches no template: route null and allowed empty (404);
  // a path that matches with another method: route null, allowed filled (405).
  Match match(const std::string& method, const std::string& path) const;
  const std::vector<Route>& routes() const { return routes_; }
  // Sets the view of every route whose path starts with prefix.
  void set_view(const std::string& prefix, const View& view);

 private:
  std::vector<Route> routes_;
  std::vector<std::vector<std::string>> segments_;  // each route's template, split once
};

std::vector<std::string> split_path(const std::string& path);

}  // namespace cpn::http
