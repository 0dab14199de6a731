// Generic create/read/replace/patch/delete over the engine for one kind of
// object, with the conventions every endpoint shares: schema validation and
// semantic checks before anything is written, resourceVersion
// preconditions (If-Match), label selectors and pagination. Each module
// supplies its Rules; the HTTP layer stays a thin adapter.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cpn/core/labels.hpp"
#include "cpn/engine/engine.hpp"

namespace cpn::resource {

using engine::Engine;
using engine::Object;

struct Rules {
  std::string kind;    // stored kind: "node"
  std::string schema;  // schema name: "node"
  std::string title;   // for messages: "node"
  // Fields computed by cpnd that a client may send back (from a GET) but
  // never sets: dropped before validation.
  std::vector<std::string> read_only;
  // The document has a `metadata` of its own (name, version, title, labels:
  // blueprints, templates): cpnd's fields are merged into it rather than
  // replacing it.
  bool document_metadata = false;
  // Semantic checks and normalisation of a schema-valid body. existing is
  // the stored object on replace, null on create.
  std::function<std::vector<FieldError>(Json& body, const Object* existing, const Engine&)> admit;
  // The id of a (normalised) body.
  std::function<std::string(const Json& body)> id_of;
  // Objects that must go before this one can be deleted ("node/gz-1").
  std::function<std::vector<std::string>(const Object&, const Engine&)> dependents;
  // Computed fields added to the rendered object.
  std::function<void(Json& out, const Object&, const Engine&)> decorate;
};

struct Page {
  std::vector<Json> items;
  std::string continue_token;  // empty on the last page
};

// A page of a kind that archives (orders, deployments) holds at most this
// many items when no limit was asked for: its history is unbounded.
inline constexpr std::size_t kArchivedPageLimit = 1000;

struct ListOptions {
  std::string label_selector;
  std::size_t limit = 0;  // 0: everything (kArchivedPageLimit for kinds that archive)
  std::string continue_token;
  // Extra filter (for example node?site=...); null accepts all.
  std::function<bool(const Object&)> filter;
  // What the filter accepts is never finished (?state=running): the
  // history is not read.
  bool live_only = false;
};

class Collection {
 public:
  Collection(Engine& engine, Rules rules) : engine_(engine), rules_(std::move(rules)) {}

  const Rules& rules() const { return rules_; }

  Result<Json> get(const std::string& id) const;
  Result<Page> list(const ListOptions& options) const;

  // Validates and normalises a body without writing: the change to commit.
  Result<engine::Change> prepare(Json body, const std::optional<std::string>& path_id) const;

  Result<Json> create(Json body);
  Result<Json> replace(const std::string& id, Json body, std::optional<std::int64_t> if_match);
  Result<Json> patch(const std::string& id, const Json& merge_patch, std::optional<std::int64_t> if_match);
  Status remove(const std::string& id, std::optional<std::int64_t> if_match);

  // The object as clients see it: body, metadata and computed fields.
  Json render(const Object& object) const;
  Result<const Object*> find(const std::string& id) const;

  // Writes a stored body as is (after module-specific changes such as a
  // cordon), honouring If-Match; event_type names the domain verb.
  Result<Json> update(const std::string& id, std::optional<std::int64_t> if_match,
                      const std::function<Status(Json& body)>& mutate, const std::string& event_type);

 private:
  Status check_precondition(const Object& current, std::optional<std::int64_t> if_match) const;
  Engine& engine_;
  Rules rules_;
};

// If-Match: * — any version, as long as the object exists.
inline constexpr std::int64_t kAnyVersion = -1;

// Parses a resourceVersion given as "12" or an ETag "\"12\"" / W/"12".
std::optional<std::int64_t> parse_version(std::string_view text);
std::string etag(std::int64_t resource_version);
Labels labels_of(const Json& body);

}  // namespace cpn::resource
