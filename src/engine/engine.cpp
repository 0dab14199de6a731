#include "cpn/engine/engine.hpp"

#include <map>
#include <utility>

namespace cpn::engine {

Engine::Engine(std::unique_ptr<store::Store> store, const Clock& clock) : store_(std::move(store)), clock_(clock) {
  for (auto& o : store_->load_all())
    objects_[o.kind][o.id] = Object{o.kind, o.id, o.resource_version, o.created, o.updated, std::move(o.body)};
  last_seq_ = store_->last_seq();
}

const Object* Engine::find(const std::string& kind, const std::string& id) const {
  auto k = objects_.find(kind);
  if (k == objects_.end()) return nullptr;
  auto it = k->second.find(id);
  return it == k->second.end() ? nullptr : &it->second;
}

std::vector<const Object*> Engine::list(const std::string& kind) const {
  std::vector<const Object*> out;
  auto k = objects_.find(kind);
  if (k == objects_.end()) return out;
  out.reserve(k->second.size());
  for (const auto& [id, o] : k->second) out.push_back(&o);
  return out;
}

std::size_t Engine::count(const std::string& kind) const {
  auto k = objects_.find(kind);
  return k == objects_.end() ? 0 : k->second.size();
}

Result<std::vector<Event>> Engine::commit(std::vector<Change> changes) { return commit(std::move(changes), true); }
Result<std::vector<Event>> Engine::commit_relaxed(std::vector<Change> changes) {
  return commit(std::move(changes), false);
}

Result<std::vector<Event>> Engine::commit(std::vector<Change> changes, bool durable) {
  std::vector<Change> effective;
  effective.reserve(changes.size());
  std::vector<const Json*> before;  // what each object was, for the log's patch
  std::map<std::pair<std::string, std::string>, std::size_t> earlier;  // an object written twice in one commit
  for (auto& c : changes) {
    const Object* existing = find(c.kind, c.id);
    const Json* was = existing ? &existing->body : nullptr;
    if (auto e = earlier.find({c.kind, c.id}); e != earlier.end())
      was = effective[e->second].op == Change::Op::put ? &effective[e->second].body : nullptr;
    if (c.op == Change::Op::remove) {
      if (!existing) continue;
      if (c.body.is_null()) c.body = existing->body;  // the event carries what was deleted
      if (c.event_type.empty()) c.event_type = "Deleted";
    } else if (c.op == Change::Op::put && c.event_type.empty()) {
      c.event_type = existing ? "Modified" : "Added";
    }
    if (c.op != Change::Op::note) earlier[{c.kind, c.id}] = effective.size();
    before.push_back(was);
    effective.push_back(std::move(c));
  }
  std::optional<store::IdempotencyRecord> record;
  if (!effective.empty()) record = std::exchange(pending_idem_, std::nullopt);
  if (effective.empty() && !record) return std::vector<Event>{};
  auto events = store_->commit(effective, now(), record, durable || record.has_value(), before);
  if (!events) return events;
  for (std::size_t i = 0; i < effective.size(); ++i) {
    const auto& c = effective[i];
    const auto& ev = (*events)[i];
    if (c.op == Change::Op::put) {
      auto& slot = objects_[c.kind][c.id];
      if (slot.created.empty()) slot.created = ev.time;
      slot.kind = c.kind;
      slot.id = c.id;
      slot.resource_version = ev.seq;
      slot.updated = ev.time;
      slot.body = c.body;
    } else if (c.op == Change::Op::remove) {
      objects_[c.kind].erase(c.id);
    }
    last_seq_ = ev.seq;
  }
  for (auto& l : listeners_) l(*events);
  return events;
}

}  // namespace cpn::engine
