// /v1/tokens: admins create, list and revoke bearer tokens; /v1/audit:
// admins read who wrote what.
#include <charconv>

#include "common.hpp"
#include "cpn/core/log.hpp"
#include "cpn/store/store.hpp"
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

namespace {

// YYYY-MM-DDTHH:MM:SS, then a fraction and zone as format_time writes them.
bool rfc3339(std::string_view t) {
  const char* shape = "dddd-dd-ddTdd:dd:dd";
  if (t.size() < 20 || t.size() > 40) return false;
  for (std::size_t i = 0; i < 19; ++i)
    if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(t[i])) : t[i] != shape[i]) return false;
  return true;
}

Json audit_json(const store::AuditRecord& r) {
  return {{"seq", r.seq},           {"time", r.time},       {"principal", r.principal},
          {"name", r.name},         {"role", r.role},       {"tenant", r.tenant},
          {"method", r.method},     {"route", r.route},     {"path", log::escape(r.path)},
          {"status", r.status},     {"request_id", r.request_id}};
}

}  // namespace

void add_audit_routes(http::Router& router, Services& s) {
  http::Route audit{
      "GET", "/v1/audit", {"admin"},
      [&s](Request& req) {
        // limit and continue read as on every list; continue is the last seq of the page before.
        auto page = list_options(req);
        if (!page) return error(page.error(), req);
        store::AuditQuery q;
        q.limit = page->limit > 0 ? page->limit : 100;
        if (!page->continue_token.empty()) {
          const std::string& c = page->continue_token;
          auto [p, ec] = std::from_chars(c.data(), c.data() + c.size(), q.after);
          if (ec != std::errc() || p != c.data() + c.size() || q.after < 0)
            return error(Error::bad_request("continue must come from an earlier page", {{"/query/continue", "not a token"}}),
                         req);
        }
        q.principal = req.query_value("principal").value_or("");
        q.tenant = req.query_value("tenant").value_or("");
        q.since = req.query_value("since").value_or("");
        if (!q.since.empty() && !rfc3339(q.since))
          return error(Error::bad_request("since must be an RFC 3339 time", {{"/query/since", "not a time"}}), req);
        Json items = Json::array();
        auto records = s.engine.store().audit(q);
        for (const auto& r : records) items.push_back(audit_json(r));
        Json out = {{"items", items}};
        if (records.size() == q.limit) out["continue"] = std::to_string(records.back().seq);
        return json(out);
      },
      "listAudit",
      "The audit log (admins): every write of a known principal, refused ones included: time, principal, tenant, "
      "route, outcome and request id, oldest first",
      "auth"};
  audit.query = {{"limit", "integer", "At most this many records (1-1000, default 100)."},
                 {"continue", "string", "The `continue` of the previous page."},
                 {"principal", "string", "Only this token id's writes."},
                 {"tenant", "string", "Only writes by this tenant's tokens."},
                 {"since", "string", "Only writes at or after this time (RFC 3339)."}};
  router.add(std::move(audit));
}

}  // namespace cpn::api
