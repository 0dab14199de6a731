#include "cpn/resource/collection.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "cpn/schema/schema.hpp"

namespace cpn::resource {
namespace {

// Opaque continue tokens: the hex of the last id served.
std::string encode_token(const std::string& id) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : id) {
    out += d[c >> 4];
    out += d[c & 0xf];
  }
  return out;
}

std::optional<std::string> decode_token(const std::string& token) {
  if (token.size() % 2) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < token.size(); i += 2) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(token.data() + i, token.data() + i + 2, v, 16);
    if (ec != std::errc() || p != token.data() + i + 2) return std::nullopt;
    out += static_cast<char>(v);
  }
  return out;
}

}  // namespace

std::optional<std::int64_t> parse_version(std::string_view text) {
  if (text.rfind("W/", 0) == 0) text.remove_prefix(2);
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') text = text.substr(1, text.size() - 2);
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v < 0) return std::nullopt;
  return v;
}

std::string etag(std::int64_t resource_version) { return fmt::format("\"{}\"", resource_version); }

Labels labels_of(const Json& body) {
  Labels out;
  const Json* holder = &body;
  if (!body.contains("labels") && body.contains("metadata") && body["metadata"].is_object()) holder = &body["metadata"];
  if (auto it = holder->find("labels"); it != holder->end() && it->is_object())
    for (const auto& [k, v] : it->items())
      if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

Result<const Object*> Collection::find(const std::string& id) const {
  const Object* o = engine_.find(rules_.kind, id);
  if (!o) return fail(Error::not_found(fmt::format("{} '{}' not found", rules_.title, id)));
  return o;
}

// The metadata fields cpnd owns; a client may send them back, never set them.
constexpr const char* kServerMetadata[] = {"id", "resourceVersion", "createdAt", "updatedAt"};

Json Collection::render(const Object& object) const {
  Json out = object.body;
  Json ours = {{"id", object.id},
               {"resourceVersion", std::to_string(object.resource_version)},
               {"createdAt", object.created},
               {"updatedAt", object.updated}};
  if (rules_.document_metadata && out.contains("metadata") && out["metadata"].is_object()) {
    out["metadata"].update(ours);
    if (!out["metadata"].contains("labels")) out["metadata"]["labels"] = Json::object();
  } else {
    ours["labels"] = out.contains("labels") ? out["labels"] : Json::object();
    out["metadata"] = ours;
  }
  if (rules_.decorate) rules_.decorate(out, object, engine_);
  return out;
}

Result<Json> Collection::get(const std::string& id) const {
  auto o = find(id);
  if (!o) return fail(o.error());
  return render(**o);
}

Result<Page> Collection::list(const ListOptions& options) const {
  auto selector = LabelSelector::parse(options.label_selector);
  if (!selector) return fail(selector.error());
  std::string after;
  if (!options.continue_token.empty()) {
    auto t = decode_token(options.continue_token);
    if (!t)
      return fail(Error::bad_request("continue: not a token from an earlier page",
                                     {{"/query/continue", "not a token from an earlier page"}}));
    after = *t;
  }
  // Live objects (memory) and archived ones (the store), merged in id order.
  // Reading the archive is bounded per page: past the budget the page ends
  // short, with a continue token, as a Kubernetes list may.
  const bool archives = Engine::archives(rules_.kind) && !options.live_only;
  const std::size_t limit = options.limit ? options.limit : archives ? kArchivedPageLimit : 0;
  const std::size_t budget = std::max<std::size_t>(2 * limit, 512);
  std::vector<const Object*> live = engine_.list(rules_.kind);
  auto hot = std::upper_bound(live.begin(), live.end(), after,
                              [](const std::string& id, const Object* o) { return id < o->id; });
  std::vector<const Object*> batch;
  std::size_t next = 0, scanned = 0;
  std::string cursor = after;
  bool archive_done = !archives, cut = false;
  auto peek_archived = [&]() -> const Object* {
    if (next < batch.size()) return batch[next];
    if (archive_done) return nullptr;
    if (scanned >= budget) {
      cut = true;
      return nullptr;
    }
    constexpr std::size_t kBatch = 256;
    batch = engine_.archived(rules_.kind, cursor, kBatch);
    next = 0;
    scanned += batch.size();
    if (batch.size() < kBatch) archive_done = true;
    if (batch.empty()) return nullptr;
    cursor = batch.back()->id;
    return batch.front();
  };
  Page page;
  std::string last_seen;
  for (;;) {
    const Object* cold = peek_archived();
    if (cut) {
      if (!last_seen.empty()) page.continue_token = encode_token(last_seen);
      break;
    }
    const Object* warm = hot != live.end() ? *hot : nullptr;
    if (!cold && !warm) break;
    const Object* o = nullptr;
    if (cold && (!warm || cold->id < warm->id)) {
      o = cold;
      ++next;
    } else {
      o = warm;
      ++hot;
    }
    if (options.filter && !options.filter(*o)) {
      last_seen = o->id;
      continue;
    }
    if (!selector->matches(labels_of(o->body))) {
      last_seen = o->id;
      continue;
    }
    if (limit && page.items.size() == limit) {
      page.continue_token = encode_token(page.items.back()["metadata"]["id"].get<std::string>());
      break;
    }
    last_seen = o->id;
    page.items.push_back(render(*o));
  }
  return page;
}

Result<engine::Change> Collection::prepare(Json body, const std::optional<std::string>& path_id) const {
  if (!body.is_object()) return fail(Error::invalid_field("", fmt::format("a {} must be an object", rules_.title)));
  // What clients read back carries metadata and computed fields; accept it
  // as a write body, like Kubernetes does, but never take those values.
  if (auto m = body.find("metadata"); !rules_.document_metadata && m != body.end() && m->is_object() &&
                                      !body.contains("labels") && m->contains("labels"))
    body["labels"] = (*m)["labels"];
  for (const auto& f : rules_.read_only) body.erase(f);
  if (auto m = body.find("metadata"); rules_.document_metadata && m != body.end() && m->is_object())
    for (const char* f : kServerMetadata) m->erase(f);
  auto problems = schema::problems(rules_.schema, body);
  if (!rules_.document_metadata) body.erase("metadata");
  if (problems.empty() && rules_.admit) {
    const Object* existing = path_id ? engine_.find(rules_.kind, *path_id) : nullptr;
    problems = rules_.admit(body, existing, engine_);
  }
  if (!problems.empty())
    return fail(Error::invalid_document(rules_.title, std::move(problems)));
  std::string id = rules_.id_of(body);
  if (path_id && id != *path_id)
    return fail(Error::invalid_field("/id", fmt::format("id '{}' does not match the path ('{}')", id, *path_id)));
  return engine::Change{engine::Change::Op::put, rules_.kind, id, std::move(body), ""};
}

Status Collection::check_precondition(const Object& current, std::optional<std::int64_t> if_match) const {
  if (if_match && *if_match != kAnyVersion && *if_match != current.resource_version)
    return fail(Error{ErrorKind::precondition_failed,
                      fmt::format("{} '{}' is at resourceVersion {}, not {}", rules_.title, current.id,
                                  current.resource_version, *if_match),
                      {}});
  return {};
}

Result<Json> Collection::create(Json body) {
  auto change = prepare(std::move(body), std::nullopt);
  if (!change) return fail(change.error());
  if (engine_.find(rules_.kind, change->id))
    return fail(Error::conflict(fmt::format("{} '{}' already exists", rules_.title, change->id),
                                {{"/id", "already exists"}}));
  std::string id = change->id;
  auto ev = engine_.commit({std::move(*change)});
  if (!ev) return fail(ev.error());
  return render(*engine_.find(rules_.kind, id));
}

Result<Json> Collection::replace(const std::string& id, Json body, std::optional<std::int64_t> if_match) {
  auto current = find(id);
  if (!current) return fail(current.error());
  // metadata.resourceVersion in the body is a precondition too.
  if (auto m = body.find("metadata"); !if_match && m != body.end() && m->is_object() && m->contains("resourceVersion")) {
    const Json& rv = (*m)["resourceVersion"];
    if_match = rv.is_string() ? parse_version(rv.get<std::string>()) : std::nullopt;
    if (!if_match)
      return fail(Error::bad_request("metadata.resourceVersion must be a version from an earlier answer",
                                     {{"/metadata/resourceVersion", "not a resourceVersion"}}));
  }
  if (auto s = check_precondition(**current, if_match); !s) return fail(s.error());
  auto change = prepare(std::move(body), id);
  if (!change) return fail(change.error());
  if (change->body == (*current)->body) return render(**current);  // nothing changed: no event
  auto ev = engine_.commit({std::move(*change)});
  if (!ev) return fail(ev.error());
  return render(*engine_.find(rules_.kind, id));
}

Result<Json> Collection::patch(const std::string& id, const Json& merge_patch, std::optional<std::int64_t> if_match) {
  auto current = find(id);
  if (!current) return fail(current.error());
  if (!merge_patch.is_object()) return fail(Error::invalid_field("", "a merge patch must be an object"));
  if (auto s = check_precondition(**current, if_match); !s) return fail(s.error());
  Json body = (*current)->body;
  body.merge_patch(merge_patch);  // RFC 7386
  return replace(id, std::move(body), std::nullopt);
}

Status Collection::remove(const std::string& id, std::optional<std::int64_t> if_match) {
  auto current = find(id);
  if (!current) return fail(current.error());
  if (auto s = check_precondition(**current, if_match); !s) return s;
  if (rules_.dependents) {
    auto deps = rules_.dependents(**current, engine_);
    if (!deps.empty()) {
      std::string list;
      for (const auto& d : deps) list += (list.empty() ? "" : ", ") + d;
      return fail(Error::conflict(fmt::format("{} '{}' is still used by {}", rules_.title, id, list)));
    }
  }
  auto ev = engine_.commit({{engine::Change::Op::remove, rules_.kind, id, nullptr, ""}});
  if (!ev) return fail(ev.error());
  return {};
}

Result<Json> Collection::update(const std::string& id, std::optional<std::int64_t> if_match,
                                const std::function<Status(Json& body)>& mutate, const std::string& event_type) {
  auto current = find(id);
  if (!current) return fail(current.error());
  if (auto s = check_precondition(**current, if_match); !s) return fail(s.error());
  Json body = (*current)->body;
  if (auto s = mutate(body); !s) return fail(s.error());
  if (body == (*current)->body) return render(**current);
  auto ev = engine_.commit({{engine::Change::Op::put, rules_.kind, id, std::move(body), event_type}});
  if (!ev) return fail(ev.error());
  return render(*engine_.find(rules_.kind, id));
}

}  // namespace cpn::resource
