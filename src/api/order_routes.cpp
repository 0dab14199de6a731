// /v1/orders and /v1/solve: customers order and confirm, operators see
// every tenant's orders and run what-ifs.
#include "cpn/orders/orders.hpp"
#include "cpn/schema/schema.hpp"
#include "common.hpp"
#include "routes.hpp"

namespace cpn::api {
namespace {

// A validated body, or the problem naming each bad field.
std::optional<Response> check(const char* schema, const Request& req, const char* what) {
  if (auto v = schema::validate(schema, req.document, what); !v) return error(v.error(), req);
  return std::nullopt;
}

// A customer's tenant at its quota: 403 naming the setting, as a
// Kubernetes ResourceQuota refuses; operators act for every tenant.
std::optional<Response> over_quota(Services& s, const Request& req, const char* kind, int limit, const char* setting) {
  const auto& who = *req.principal;
  if (who.role != "customer") return std::nullopt;
  int open = 0;
  for (const auto* o : s.engine.list(kind))
    if (o->body.value("tenant", "") == who.tenant && !engine::Engine::finished(kind, o->body)) ++open;
  if (open < limit) return std::nullopt;
  return error(Error{ErrorKind::forbidden,
                     fmt::format("tenant '{}' holds {} unfinished {}s, its quota ({}); complete or cancel some first",
                                 who.tenant, open, kind, setting),
                     {{"", fmt::format("over the quota {} = {}", setting, limit)}}},
               req);
}

// The solving part of a request, for Route::prepare: the pending solve
// taken here, its work for a solver worker.
std::function<void()> solving(Request& req, Result<std::shared_ptr<orders::Orders::Pending>> pending) {
  if (!pending) return {};  // the handler answers the same error
  req.prepared = *pending;
  return [p = *pending] { orders::Orders::work(*p); };
}

// The prepared solve, when there is one.
std::shared_ptr<orders::Orders::Pending> prepared(const Request& req) {
  return std::static_pointer_cast<orders::Orders::Pending>(req.prepared);
}

}  // namespace

void add_order_routes(http::Router& router, Services& s) {
  const std::vector<std::string> roles = {"customer", "operator"};
  auto& orders = s.orders;

  router.add(list_route(
      "/v1/orders", roles, orders.collection(), "listOrders", "Orders (customers see their tenant's only)", "orders",
      [](const engine::Object& o, const Request& req) {
        auto state = req.query_value("state");
        return orders::Orders::visible(o, *req.principal) && (!state || o.body.value("state", "") == *state);
      },
      {{"state", "string", "Only orders in this state (quoted, confirmed, cancelled, expired)."}}));

  http::Route create{"POST", "/v1/orders", roles,
                     [&orders, &s](Request& req) {
                       if (auto bad = check("order-request", req, "order")) return *bad;
                       if (auto over = over_quota(s, req, orders::kOrder, s.settings.quotas.max_open_orders,
                                                  "limits.tenant.max_open_orders"))
                         return *over;
                       auto p = prepared(req);
                       auto r = p ? orders.finish(*p) : orders.create(req.document, *req.principal);
                       return created(r, req, r ? "/v1/orders/" + (*r)["id"].get<std::string>() : "");
                     },
                     "createOrder", "Order an offering: the answer holds the demand and priced solutions", "orders",
                     "order-request", 201, "Created (state quoted)"};
  create.creates = true;
  // The checks run again in the handler: what changed while the solver ran counts.
  create.prepare = [&orders, &s](Request& req) -> std::function<void()> {
    if (check("order-request", req, "order") ||
        over_quota(s, req, orders::kOrder, s.settings.quotas.max_open_orders, "limits.tenant.max_open_orders"))
      return {};
    return solving(req, orders.begin_create(req.document, *req.principal));
  };
  router.add(std::move(create));

  router.add({"GET", "/v1/orders/{id}", roles,
              [&orders](Request& req) {
                auto o = orders.find(req.param("id"), *req.principal);
                if (!o) return error(o.error(), req);
                return json(orders.collection().render(**o));
              },
              "getOrder", "Read an order", "orders"});

  router.add({"POST", "/v1/orders/{id}/confirm", roles,
              [&orders, &s](Request& req) {
                if (auto bad = check("order-confirm", req, "confirmation")) return *bad;
                if (auto over = over_quota(s, req, templates::kDeployment, s.settings.quotas.max_active_deployments,
                                           "limits.tenant.max_active_deployments"))
                  return *over;
                auto r = orders.confirm(req.param("id"), req.document, *req.principal);
                if (r) return json(*r);
                Response out = error(r.error(), req);
                // An expired quote points at the way forward (RFC 8288 link and a problem member).
                const engine::Object* o = s.engine.find(orders::kOrder, req.param("id"));
                if (o && o->body.value("state", "") == "expired" && orders::Orders::visible(*o, *req.principal)) {
                  std::string requote = "/v1/orders/" + req.param("id") + "/requote";
                  Json body = Json::parse(out.body);
                  body["requote"] = requote;
                  out.body = body.dump();
                  out.header("Link", "<" + requote + ">; rel=\"requote\"");
                }
                return out;
              },
              "confirmOrder", "Confirm one solution: the order holds its resources", "orders", "order-confirm"});
  router.add({"POST", "/v1/orders/{id}/cancel", roles,
              [&orders](Request& req) { return answer(orders.cancel(req.param("id"), *req.principal), req); },
              "cancelOrder", "Cancel an order; a confirmed one gives its resources back", "orders"});
  router.add({"POST", "/v1/orders/{id}/complete", roles,
              [&s](Request& req) {
                auto r = s.orchestrator.complete_order(req.param("id"), *req.principal);
                if (!r) return error(r.error(), req);
                return json(s.orders.collection().render(*s.engine.find(orders::kOrder, req.param("id"))));
              },
              "completeOrder", "End the service: drain and stop every instance, give back compute and bandwidth",
              "orders"});
  http::Route requote{"POST", "/v1/orders/{id}/requote", roles,
                      [&orders](Request& req) {
                        auto p = prepared(req);
                        return answer(p ? orders.finish(*p) : orders.requote(req.param("id"), *req.principal), req);
                      },
                      "requoteOrder", "Solve a quoted or expired order again on today's inventory, with a fresh expiry",
                      "orders"};
  requote.prepare = [&orders](Request& req) -> std::function<void()> {
    return solving(req, orders.begin_requote(req.param("id"), *req.principal));
  };
  router.add(std::move(requote));

  http::Route what_if{"POST", "/v1/solve", {"operator"},
                      [&orders](Request& req) {
                        if (auto bad = check("solve-request", req, "what-if")) return *bad;
                        auto p = prepared(req);
                        return answer(p ? orders.finish(*p) : orders.solve(req.document), req);
                      },
                      "solve", "What-if: translate parameters into demand and priced solutions, storing nothing",
                      "orders", "solve-request"};
  what_if.prepare = [&orders](Request& req) -> std::function<void()> {
    if (check("solve-request", req, "what-if")) return {};
    return solving(req, orders.begin_solve(req.document));
  };
  router.add(std::move(what_if));
}

}  // namespace cpn::api
