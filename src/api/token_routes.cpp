// /v1/tokens: admins create, list and revoke bearer tokens.
#include "common.hpp"
#include "routes.hpp"

namespace cpn::api {

void add_token_routes(http::Router& router, Services& s) {
  auto& tokens = s.tokens;
  const std::vector<std::string> admin = {"admin"};
  router.add(list_route("/v1/tokens", admin, tokens.collection(), "listTokens", "List tokens (never their secrets)",
                        "auth"));
  http::Route create{"POST", "/v1/tokens", admin,
                     [&tokens](Request& req) {
                       auto r = tokens.create(req.document);
                       std::string id = r ? (*r)["metadata"]["id"].get<std::string>() : "";
                       return created(r, req, "/v1/tokens/" + id);
                     },
                     "createToken", "Create a token; its secret is in this answer only", "auth", "token", 201,
                     "Created"};
  create.creates = true;
  create.not_replayed = {"secret"};  // only its hash is ever stored
  router.add(std::move(create));
  router.add({"GET", "/v1/tokens/{id}", admin,
              [&tokens](Request& req) { return answer(tokens.collection().get(req.param("id")), req); }, "getToken",
              "Read a token", "auth"});
  router.add({"DELETE", "/v1/tokens/{id}", admin,
              [&tokens](Request& req) { return answer(tokens.revoke(req.param("id")), req); }, "revokeToken",
              "Revoke a token; it stops working at once", "auth"});
}

}  // namespace cpn::api
