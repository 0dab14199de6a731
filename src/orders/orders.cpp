// The order lifecycle. Every transition is one engine commit: the order,
// and on confirm or cancel the node and link reservations it takes or
// gives back, land together or not at all.
#include <cmath>

#include <fmt/format.h>

#include "cpn/core/crypto.hpp"
#include "cpn/core/history.hpp"
#include "cpn/core/quantity.hpp"
#include "cpn/orders/orders.hpp"
#include "cpn/template/deployments.hpp"
#include "translate.hpp"

namespace cpn::orders {
namespace {

resource::Rules order_rules() {
  resource::Rules r;
  r.kind = kOrder;
  r.schema = "order-request";
  r.title = "order";
  r.id_of = [](const Json& b) { return b["id"].get<std::string>(); };
  return r;
}

std::string state_of(const Json& order) { return order.value("state", ""); }

Result<double> duration_hours(const Json& request, double fallback) {
  if (!request.contains("duration")) return fallback;
  const Json& v = request["duration"];
  std::optional<double> hours;
  if (v.is_number() && v.get<double>() > 0) hours = v.get<double>();
  if (v.is_string())
    if (auto secs = parse_duration_seconds(v.get<std::string>()); secs && *secs > 0) hours = *secs / 3600;
  if (!hours) return fail(Error::invalid_field("/duration", fmt::format("{} is not a duration (hours, or \"12h\", \"30d\")", v.dump())));
  if (*hours > 24 * 366 * 10) return fail(Error::invalid_field("/duration", "longer than ten years"));
  return *hours;
}

void record(Json& order, const std::string& state, const std::string& at, const std::string& reason = "") {
  order["state"] = state;
  Json entry = {{"state", state}, {"at", at}};
  if (!reason.empty()) entry["reason"] = reason;
  append_history(order, std::move(entry));
}

}  // namespace

Orders::Orders(engine::Engine& engine, catalog::Catalog& catalog, blueprint::Library& library,
               const artifacts::Images& images, Settings settings)
    : engine_(engine),
      catalog_(catalog),
      library_(library),
      images_(images),
      settings_(settings),
      orders_(engine, order_rules()),
      snapshots_(engine) {
  for (const auto* o : engine_.list(kOrder)) track_quote(o->id, &o->body);
  engine_.on_commit([this](const std::vector<engine::Event>& events) {
    for (const auto& e : events)
      if (e.kind == kOrder) {
        const engine::Object* o = engine_.live(kOrder, e.id);  // finished ones hold no quote
        track_quote(e.id, o ? &o->body : nullptr);
      }
  });
}

void Orders::track_quote(const std::string& id, const Json* order) {
  if (auto it = quote_expiry_.find(id); it != quote_expiry_.end()) {
    quotes_by_expiry_.erase({it->second, id});
    quote_expiry_.erase(it);
  }
  if (!order || state_of(*order) != "quoted") return;
  std::string at = order->value("expires_at", "");
  quote_expiry_[id] = at;
  quotes_by_expiry_.insert({at, id});
}

bool Orders::visible(const engine::Object& order, const auth::Principal& who) {
  return auth::sees_tenant(who, order.body.value("tenant", ""));
}

// What one solve needs, taken on the engine thread; work() reads nothing else.
struct Orders::Pending {
  enum Kind { create, requote, solve } kind = create;
  Json order;       // the order to store (create, requote) or the what-if's answer so far (solve)
  Json offering;    // its body, or null: priced at cost
  Json blueprint;   // {name, version}
  std::int64_t offering_version = 0;  // its resourceVersion: terms that change meanwhile void the quote
  bool customer = false;
  std::shared_ptr<const blueprint::Blueprint> compiled;
  std::shared_ptr<const solver::Snapshot> snapshot;
  Json parameters;
  std::string billing_mode;
  double hours = 0;
  std::optional<Result<detail::Translated>> result;
};

void Orders::work(Pending& p) {
  try {
    p.result = detail::translate(*p.snapshot, *p.compiled, p.offering, p.parameters, p.billing_mode, p.hours);
  } catch (const std::exception& e) {
    p.result = fail(Error::internal(std::string("solving failed: ") + e.what()));
  } catch (...) {
    p.result = fail(Error::internal("solving failed"));
  }
}

Result<std::shared_ptr<Orders::Pending>> Orders::begin_quote(Json order, int kind) {
  const engine::Object* offering = engine_.find(catalog::kOffering, order["offering"].get<std::string>());
  if (!offering) return fail(Error::conflict(fmt::format("offering '{}' is gone", order["offering"].get<std::string>())));
  auto p = std::make_shared<Pending>();
  p->kind = static_cast<Pending::Kind>(kind);
  p->blueprint = offering->body["blueprint"];
  auto bp = library_.compiled(p->blueprint["name"], p->blueprint["version"]);
  if (!bp) return fail(bp.error());
  auto snapshot = snapshots_.current();
  if (!snapshot) return fail(snapshot.error());
  p->compiled = *bp;
  p->snapshot = *snapshot;
  p->offering = offering->body;
  p->offering_version = offering->resource_version;
  p->parameters = order["parameters"];
  p->billing_mode = order.value("billing_mode", "");
  p->hours = order["duration_hours"].get<double>();
  p->order = std::move(order);
  return p;
}

// The solved quote written into the order (the one in p, or a fresher copy of it).
Result<Json> Orders::quoted(Pending& p) {
  if (!p.result) work(p);
  if (!*p.result) return fail(p.result->error());
  detail::Translated& t = **p.result;
  Json order = p.order;
  order["blueprint"] = p.blueprint;
  order["parameters"] = t.demand["parameters"];
  order["demand"] = t.demand;
  order["demand"].erase("parameters");
  order["solutions"] = t.solutions;
  if (t.infeasible.is_null()) order.erase("infeasible");
  else order["infeasible"] = t.infeasible;
  if (order.value("billing_mode", "").empty() && !order["solutions"].empty())
    order["billing_mode"] = order["solutions"][0]["quote"]["billing_mode"];
  auto now = engine_.clock().now();
  order["quoted_at"] = format_time(now);
  order["expires_at"] = format_time(now + settings_.quote_ttl);
  return order;
}

Result<Json> Orders::finish(Pending& p) {
  switch (p.kind) {
    case Pending::create: return finish_create(p);
    case Pending::requote: return finish_requote(p);
    case Pending::solve: return finish_solve(p);
  }
  return fail(Error::internal("unknown solve"));
}

Result<Json> Orders::create(const Json& request, const auth::Principal& who) {
  auto p = begin_create(request, who);
  if (!p) return fail(p.error());
  work(**p);
  return finish(**p);
}

Result<std::shared_ptr<Orders::Pending>> Orders::begin_create(const Json& request, const auth::Principal& who) {
  std::string name = request.value("offering", "");
  const engine::Object* offering = engine_.find(catalog::kOffering, name);
  std::string state = offering ? offering->body.value("/status/state"_json_pointer, "") : "";
  if (!offering || (who.role == "customer" && state != "published"))
    return fail(Error::invalid_field("/offering", fmt::format("there is no offering '{}' to order", name)));
  auto hours = duration_hours(request, settings_.default_duration_hours);
  if (!hours) return fail(hours.error());
  auto params = catalog_.order_parameters(name, request.value("parameters", Json::object()));
  if (!params) return fail(params.error());
  Json order = {{"id", "ord-" + random_hex(6)},
                {"tenant", who.tenant},
                {"owner", who.name},
                {"offering", name},
                {"parameters", *params},
                {"duration_hours", *hours},
                {"billing_mode", request.value("billing_mode", "")},
                {"history", Json::array()}};
  auto p = begin_quote(std::move(order), Pending::create);
  if (p) (*p)->customer = who.role == "customer";
  return p;
}

Result<Json> Orders::finish_create(Pending& p) {
  // The offering may have been withdrawn or repointed while the solver ran.
  std::string name = p.order["offering"];
  const engine::Object* offering = engine_.find(catalog::kOffering, name);
  if (!offering || (p.customer && offering->body.value("/status/state"_json_pointer, "") != "published") ||
      offering->resource_version != p.offering_version)
    return fail(Error::conflict(fmt::format("offering '{}' changed while the order was being solved; order again", name)));
  auto order = quoted(p);
  if (!order) return fail(order.error());
  record(*order, "quoted", order->value("quoted_at", ""));
  std::string id = (*order)["id"];
  auto events = engine_.commit({{engine::Change::Op::put, kOrder, id, *order, "OrderQuoted"}});
  if (!events) return fail(events.error());
  return orders_.get(id);
}

Result<Json> Orders::solve(const Json& request) {
  auto p = begin_solve(request);
  if (!p) return fail(p.error());
  work(**p);
  return finish(**p);
}

Result<std::shared_ptr<Orders::Pending>> Orders::begin_solve(const Json& request) {
  auto p = std::make_shared<Pending>();
  p->kind = Pending::solve;
  std::string name, version;
  p->parameters = request.value("parameters", Json::object());
  if (request.contains("offering")) {
    const engine::Object* o = engine_.find(catalog::kOffering, request.value("offering", ""));
    if (!o) return fail(Error::invalid_field("/offering", fmt::format("there is no offering '{}'", request.value("offering", ""))));
    p->offering = o->body;
    name = o->body["blueprint"]["name"];
    version = o->body["blueprint"]["version"];
  } else if (request.contains("blueprint")) {
    name = request["blueprint"].value("name", "");
    version = request["blueprint"].value("version", "");
  } else {
    return fail(Error::invalid_field("/offering", "name an offering or a blueprint {name, version}"));
  }
  auto bp = library_.compiled(name, version);
  if (!bp) return fail(Error::invalid_field("/blueprint", bp.error().message));
  // An operator's what-if binds like an order (required parameters included).
  auto bound = (*bp)->bind(p->parameters, "/parameters");
  if (!bound) return fail(bound.error());
  auto hours = duration_hours(request, settings_.default_duration_hours);
  if (!hours) return fail(hours.error());
  auto snapshot = snapshots_.current();
  if (!snapshot) return fail(snapshot.error());
  p->compiled = *bp;
  p->snapshot = *snapshot;
  p->blueprint = {{"name", name}, {"version", version}};
  p->billing_mode = request.value("billing_mode", "");
  p->hours = *hours;
  return p;
}

Result<Json> Orders::finish_solve(Pending& p) {
  if (!p.result) work(p);
  if (!*p.result) return fail(p.result->error());
  const detail::Translated& t = **p.result;
  Json out = {{"blueprint", p.blueprint},
              {"parameters", t.demand["parameters"]},
              {"duration_hours", p.hours},
              {"demand", t.demand},
              {"solutions", t.solutions}};
  out["demand"].erase("parameters");
  if (!p.offering.is_null()) out["offering"] = p.offering["name"];
  if (!t.infeasible.is_null()) out["infeasible"] = t.infeasible;
  return out;
}

Result<const engine::Object*> Orders::find(const std::string& id, const auth::Principal& who) const {
  const engine::Object* o = engine_.find(kOrder, id);
  if (!o || !visible(*o, who)) return fail(Error::not_found(fmt::format("order '{}' not found", id)));
  return o;
}

Result<Json> Orders::confirm(const std::string& id, const Json& request, const auth::Principal& who) {
  auto o = find(id, who);
  if (!o) return fail(o.error());
  Json order = (*o)->body;
  std::string state = state_of(order);
  auto now = engine_.clock().now();
  if (state == "quoted" && format_time(now) > order.value("expires_at", "")) {
    record(order, "expired", format_time(now), "the quote expired before it was confirmed");
    auto e = engine_.commit({{engine::Change::Op::put, kOrder, id, order, "OrderExpired"}});
    if (!e) return fail(e.error());
    state = "expired";
  }
  if (state == "expired")
    return fail(Error::conflict(
        fmt::format("the quote of order '{}' expired at {}: POST /v1/orders/{}/requote for a new one", id,
                    order.value("expires_at", ""), id),
        {{"/solution", fmt::format("expired quote; requote at /v1/orders/{}/requote", id)}}));
  if (state != "quoted")
    return fail(Error::conflict(fmt::format("order '{}' is {}: only a quoted order can be confirmed", id, state)));
  std::string chosen = request.value("solution", "");
  const Json* solution = nullptr;
  for (const auto& s : order["solutions"])
    if (s.value("id", "") == chosen) solution = &s;
  if (!solution) {
    std::vector<std::string> ids;
    for (const auto& s : order["solutions"]) ids.push_back(s.value("id", ""));
    return fail(Error::invalid_field("/solution", fmt::format("'{}' is not a solution of this order ({})", chosen,
                                                              ids.empty() ? "it has none" : Json(ids).dump())));
  }
  // The confirmed solution becomes a deployment template; the deployment
  // holds its resources from the same commit on.
  auto bpref = order["blueprint"];
  auto bp = library_.compiled(bpref["name"], bpref["version"]);
  if (!bp) return fail(bp.error());
  std::map<std::string, std::string> models;
  for (const auto& c : (*bp)->components()) models[c.name] = c.model;
  std::string deployment = "dep-" + id.substr(id.find('-') + 1);
  Json doc = templates::from_order(order, *solution, models, images_, deployment);
  Json body = templates::Deployments::body_for(deployment, doc, who, "order", engine_);
  body["tenant"] = order["tenant"];
  auto changes = templates::reserve(body["reservation"], +1, engine_, "/solution");
  if (!changes) return fail(Error::conflict("solution " + chosen + " no longer fits the inventory: requote the order",
                                            changes.error().errors));
  order["confirmed"] = {{"solution", chosen}, {"at", format_time(now)}, {"by", who.name}};
  order["deployment"] = deployment;
  record(order, "confirmed", format_time(now));
  changes->insert(changes->begin(), {engine::Change::Op::put, templates::kDeployment, deployment, body, "DeploymentCreated"});
  changes->insert(changes->begin(), {engine::Change::Op::put, kOrder, id, order, "OrderConfirmed"});
  auto e = engine_.commit(std::move(*changes));
  if (!e) return fail(e.error());
  return orders_.get(id);
}

Result<Json> Orders::cancel(const std::string& id, const auth::Principal& who) {
  auto o = find(id, who);
  if (!o) return fail(o.error());
  Json order = (*o)->body;
  std::string state = state_of(order);
  std::vector<engine::Change> changes;
  if (state == "confirmed") {
    // Its deployment has not started (the orchestrator takes it from
    // pending): it ends here and gives back what it holds.
    const engine::Object* dep = engine_.find(templates::kDeployment, order.value("deployment", ""));
    if (dep && dep->body.value("state", "") != "pending")
      return fail(Error::conflict(fmt::format("order '{}': provisioning has started: POST /v1/orders/{}/complete ends it", id, id)));
    if (dep && !dep->body.value("reservation_released", false)) {
      auto release = templates::reserve(dep->body["reservation"], -1, engine_);
      if (!release) return fail(release.error());
      changes = std::move(*release);
      Json body = dep->body;
      body["reservation_released"] = true;
      body["state"] = "cancelled";
      append_history(body, {{"state", "cancelled"}, {"at", engine_.now()}, {"reason", "order cancelled"}});
      changes.insert(changes.begin(), {engine::Change::Op::put, templates::kDeployment, dep->id, body, "DeploymentCancelled"});
    }
  } else if (state != "quoted" && state != "expired") {
    return fail(Error::conflict(fmt::format("order '{}' is {}: it cannot be cancelled", id, state)));
  }
  record(order, "cancelled", engine_.now(), "cancelled by " + who.name);
  changes.insert(changes.begin(), {engine::Change::Op::put, kOrder, id, order, "OrderCancelled"});
  auto e = engine_.commit(std::move(changes));
  if (!e) return fail(e.error());
  return orders_.get(id);
}

Result<Json> Orders::requote(const std::string& id, const auth::Principal& who) {
  auto p = begin_requote(id, who);
  if (!p) return fail(p.error());
  work(**p);
  return finish(**p);
}

namespace {
std::optional<Error> not_requotable(const Json& order, const std::string& id, const engine::Engine& engine) {
  std::string state = state_of(order);
  if (state != "quoted" && state != "expired")
    return Error::conflict(fmt::format("order '{}' is {}: only a quoted or expired order is requoted", id, state));
  const engine::Object* offering = engine.find(catalog::kOffering, order.value("offering", ""));
  if (!offering || offering->body.value("/status/state"_json_pointer, "") != "published")
    return Error::conflict(fmt::format("offering '{}' takes no new orders", order.value("offering", "")));
  return std::nullopt;
}
}  // namespace

Result<std::shared_ptr<Orders::Pending>> Orders::begin_requote(const std::string& id, const auth::Principal& who) {
  auto o = find(id, who);
  if (!o) return fail(o.error());
  if (auto bad = not_requotable((*o)->body, id, engine_)) return fail(*bad);
  return begin_quote((*o)->body, Pending::requote);
}

Result<Json> Orders::finish_requote(Pending& p) {
  // Confirmed, cancelled or withdrawn while the solver ran: the new quote is not wanted.
  std::string id = p.order["id"];
  const engine::Object* o = engine_.find(kOrder, id);
  if (!o) return fail(Error::not_found(fmt::format("order '{}' not found", id)));
  if (auto bad = not_requotable(o->body, id, engine_)) return fail(*bad);
  const engine::Object* offering = engine_.find(catalog::kOffering, o->body.value("offering", ""));
  if (offering->resource_version != p.offering_version)
    return fail(Error::conflict(fmt::format("offering '{}' changed while the order was being solved; requote again",
                                            o->body.value("offering", ""))));
  p.order = o->body;
  auto order = quoted(p);
  if (!order) return fail(order.error());
  record(*order, "quoted", order->value("quoted_at", ""), "requoted");
  auto e = engine_.commit({{engine::Change::Op::put, kOrder, id, *order, "OrderRequoted"}});
  if (!e) return fail(e.error());
  return orders_.get(id);
}

Result<std::size_t> Orders::expire_due() {
  std::string now = engine_.now();
  std::vector<engine::Change> changes;
  for (const auto& [at, id] : quotes_by_expiry_) {
    if (!(now > at)) break;  // in expiry order: the rest are not due
    const engine::Object* o = engine_.find(kOrder, id);
    if (o && state_of(o->body) == "quoted") {
      Json order = o->body;
      record(order, "expired", now, "the quote expired before it was confirmed");
      changes.push_back({engine::Change::Op::put, kOrder, o->id, std::move(order), "OrderExpired"});
    }
  }
  std::size_t n = changes.size();
  if (n)
    if (auto e = engine_.commit(std::move(changes)); !e) return fail(e.error());
  return n;
}

}  // namespace cpn::orders
