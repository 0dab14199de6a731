// /v1/offerings: operators price and publish; customers see the catalogue.
#include "common.hpp"
#include "routes.hpp"

namespace cpn::api {
namespace {

bool customer(const Request& req) { return req.principal && req.principal->role == "customer"; }

bool visible(const engine::Object& o, const Request& req) {
  return !customer(req) || o.body.value("/status/state"_json_pointer, "") == "published";
}

}  // namespace

void add_catalog_routes(http::Router& router, Services& s) {
  const std::vector<std::string> read = {"operator", "designer", "customer"};
  const std::vector<std::string> write = {"operator"};
  auto& cat = s.catalog;

  router.add(list_route(
      "/v1/offerings", read, cat.offerings(), "listOfferings", "The catalogue (customers see published offerings only)",
      "catalog",
      [](const engine::Object& obj, const Request& req) {
        auto state = req.query_value("state");
        return visible(obj, req) && (!state || obj.body.value("/status/state"_json_pointer, "") == *state);
      },
      {{"state", "string", "Only offerings in this state (draft, published, suspended, retired)."}}));

  http::Route create{"POST", "/v1/offerings", write,
                     [&cat](Request& req) {
                       auto r = cat.offerings().create(req.document);
                       return created(r, req, r ? "/v1/offerings/" + (*r)["name"].get<std::string>() : "");
                     },
                     "createOffering", "Create an offering (a draft) on a blueprint version", "catalog", "offering",
                     201, "Created"};
  create.creates = true;
  router.add(std::move(create));

  router.add({"GET", "/v1/offerings/{id}", read,
              [&cat](Request& req) {
                auto o = cat.offerings().find(req.param("id"));
                if (!o || !visible(**o, req))
                  return error(Error::not_found("offering '" + req.param("id") + "' not found"), req);
                return json(cat.offerings().render(**o));
              },
              "getOffering", "Read an offering", "catalog"});
  router.add({"PUT", "/v1/offerings/{id}", write,
              [&cat](Request& req) {
                auto m = if_match(req);
                if (!m) return error(m.error(), req);
                return answer(cat.replace(req.param("id"), req.document, *m), req);
              },
              "replaceOffering", "Change a draft offering", "catalog", "offering"});
  for (const char* action : {"publish", "suspend", "retire"}) {
    std::string a = action;
    std::string summary = a == "publish"   ? "Publish an offering: customers see it and may order"
                          : a == "suspend" ? "Suspend an offering: no new orders, running ones go on"
                                           : "Retire an offering for good";
    router.add({"POST", "/v1/offerings/{id}/" + a, write,
                [&cat, a](Request& req) { return answer(cat.transition(req.param("id"), a), req); },
                a + "Offering", summary, "catalog"});
  }
}

}  // namespace cpn::api
