// The blueprint library: versioned blueprints (draft -> published ->
// retired; a published version is immutable) and versioned component
// templates that blueprints compose, stored through the engine.
#pragma once

#include <map>
#include <memory>

#include <functional>

#include "cpn/blueprint/blueprint.hpp"
#include "cpn/resource/collection.hpp"

namespace cpn::blueprint {

class Library {
 public:
  // known_models lists the accelerator models profiles may target.
  Library(engine::Engine& engine, std::function<std::set<std::string>()> known_models);

  resource::Collection& blueprints() { return blueprints_; }
  resource::Collection& templates() { return templates_; }

  // A new version (draft); 409 if that version exists.
  Result<Json> create(const Json& doc);
  // Only a draft changes; a published or retired version is immutable.
  Result<Json> replace(const std::string& name, const std::string& version, const Json& doc,
                       std::optional<std::int64_t> if_match);
  // users as for retire: a version something still sells is not deleted.
  Status remove(const std::string& name, const std::string& version, std::optional<std::int64_t> if_match,
                const std::vector<std::string>& users);
  Result<Json> publish(const std::string& name, const std::string& version);
  // users: who still relies on the version ("offering/x"); refused if any.
  Result<Json> retire(const std::string& name, const std::string& version, const std::vector<std::string>& users);

  // Compiled once per stored resourceVersion and shared.
  Result<std::shared_ptr<const Blueprint>> compiled(const std::string& name, const std::string& version) const;
  Result<Json> evaluate(const std::string& name, const std::string& version, const Json& parameters) const;
  Result<Json> diff(const std::string& name, const std::string& from, const std::string& to) const;

  // Templates are immutable once stored; a version in use is not deleted.
  Result<Json> create_template(const Json& doc);
  Status remove_template(const std::string& name, const std::string& version);

  Context context() const;

 private:
  engine::Engine& engine_;
  std::function<std::set<std::string>()> known_models_;
  // Compiled versions by id, valid for the resourceVersion they were built
  // from: an order must not recompile (and rescan the inventory's models).
  mutable std::map<std::string, std::pair<std::int64_t, std::shared_ptr<const Blueprint>>> compiled_;
  resource::Collection blueprints_;
  resource::Collection templates_;
};

}  // namespace cpn::blueprint
