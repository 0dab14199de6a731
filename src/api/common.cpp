#include "common.hpp"

#include <charconv>

namespace cpn::api {

Result<resource::ListOptions> list_options(const Request& req) {
  resource::ListOptions o;
  if (auto l = req.query_value("limit")) {
    std::size_t v = 0;
    auto [p, ec] = std::from_chars(l->data(), l->data() + l->size(), v);
    if (ec != std::errc() || p != l->data() + l->size() || v < 1 || v > 1000)
      return fail(Error::bad_request("limit must be an integer from 1 to 1000",
                                     {{"/query/limit", fmt::format("'{}' is not an integer from 1 to 1000", *l)}}));
    o.limit = v;
  }
  if (auto c = req.query_value("continue")) o.continue_token = *c;
  if (auto s = req.query_value("labelSelector")) o.label_selector = *s;
  return o;
}

Response list_answer(const Result<resource::Page>& page, const Request& req) {
  if (!page) return error(page.error(), req);
  Json out = {{"items", page->items}};
  out["continue"] = page->continue_token.empty() ? Json(nullptr) : Json(page->continue_token);
  return json(std::move(out));
}

Route list_route(std::string path, std::vector<std::string> roles, const resource::Collection& collection,
                 std::string operation_id, std::string summary, std::string tag, ListFilter filter,
                 std::vector<http::QueryParam> extra_query) {
  Route list{"GET", std::move(path), std::move(roles),
             [&collection, filter](Request& req) {
               auto o = list_options(req);
               if (!o) return error(o.error(), req);
               if (filter) o->filter = [&req, filter](const engine::Object& obj) { return filter(obj, req); };
               // ?state= naming a state that is never finished: nothing in the history matches.
               if (auto state = req.query_value("state"); state && filter)
                 o->live_only = !engine::Engine::finished(collection.rules().kind, Json{{"state", *state}});
               return list_answer(collection.list(*o), req);
             },
             std::move(operation_id), std::move(summary), std::move(tag)};
  list.query = list_query();
  list.query.insert(list.query.end(), extra_query.begin(), extra_query.end());
  return list;
}

void add_collection_routes(http::Router& router, resource::Collection& c, const CollectionRoutes& spec,
                           ListFilter filter, std::vector<http::QueryParam> extra_query) {
  std::string item = spec.base + "/{id}";
  auto cap = [](std::string s) {
    if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
    return s;
  };
  router.add(list_route(spec.base, spec.read_roles, c, "list" + cap(spec.plural), "List " + spec.plural, spec.tag,
                        filter, std::move(extra_query)));

  Route create{"POST", spec.base, spec.write_roles,
               [&c, base = spec.base](Request& req) {
                 auto r = c.create(req.document);
                 std::string id = r ? (*r)["metadata"]["id"].get<std::string>() : "";
                 return created(r, req, base + "/" + id);
               },
               "create" + cap(spec.noun), "Create a " + spec.noun, spec.tag, spec.schema, 201, "Created"};
  create.creates = true;
  router.add(std::move(create));

  router.add({"GET", item, spec.read_roles, [&c](Request& req) { return answer(c.get(req.param("id")), req); },
              "get" + cap(spec.noun), "Read a " + spec.noun, spec.tag});

  router.add({"PUT", item, spec.write_roles,
              [&c](Request& req) {
                auto m = if_match(req);
                if (!m) return error(m.error(), req);
                return answer(c.replace(req.param("id"), req.document, *m), req);
              },
              "replace" + cap(spec.noun), "Replace a " + spec.noun + " (If-Match honoured)", spec.tag, spec.schema});

  router.add({"PATCH", item, spec.write_roles,
              [&c](Request& req) {
                auto m = if_match(req);
                if (!m) return error(m.error(), req);
                return answer(c.patch(req.param("id"), req.document, *m), req);
              },
              "patch" + cap(spec.noun), "Change fields of a " + spec.noun + " (JSON merge patch, If-Match honoured)",
              spec.tag, "merge-patch"});

  router.add({"DELETE", item, spec.write_roles,
              [&c](Request& req) {
                auto m = if_match(req);
                if (!m) return error(m.error(), req);
                auto s = c.remove(req.param("id"), *m);
                if (!s) return error(s.error(), req);
                Response r;
                r.status = 204;
                return r;
              },
              "delete" + cap(spec.noun), "Delete a " + spec.noun + " (If-Match honoured)", spec.tag, "", 204,
              "Deleted"});
}

}  // namespace cpn::api
