#include "cpn/engine/engine.hpp"

#include <map>
#include <utility>

namespace cpn::engine {
namespace {

std::string state_of(const Json& body) {
  auto it = body.is_object() ? body.find("state") : body.end();
  return it != body.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

bool Engine::archives(const std::string& kind) {
  return kind == "order" || kind == "deployment" || kind == "instance";
}

bool Engine::finished(const std::string& kind, const Json& body) {
  std::string state = state_of(body);
  if (kind == "instance") return state == "stopped";
  if (kind == "order") return state == "completed" || state == "cancelled" || state == "expired" || state == "failed";
  if (kind == "deployment") return state == "completed" || state == "cancelled" || state == "failed";
  return false;
}

Engine::Engine(std::unique_ptr<store::Store> store, const Clock& clock) : store_(std::move(store)), clock_(clock) {
  // What a database from before archiving (or a crash between a write and
  // its archiving) holds finished is archived now.
  std::vector<std::pair<std::string, std::string>> finished_now;
  for (auto& o : store_->load_all()) {
    if (finished(o.kind, o.body)) {
      finished_now.emplace_back(o.kind, o.id);
      continue;
    }
    objects_[o.kind][o.id] = Object{o.kind, o.id, o.resource_version, o.created, o.updated, std::move(o.body)};
  }
  store_->archive(finished_now);
  last_seq_ = store_->last_seq();
}

const Object* Engine::live(const std::string& kind, const std::string& id) const {
  auto k = objects_.find(kind);
  if (k == objects_.end()) return nullptr;
  auto it = k->second.find(id);
  return it == k->second.end() ? nullptr : &it->second;
}

void Engine::ask_release() const {
  if (release_asked_ || !schedule_release_) return;
  release_asked_ = true;
  schedule_release_();
}

const Object* Engine::hold(store::StoredObject o) const {
  ask_release();
  // One already held stays as it is (commit keeps it current): a caller may hold a reference into it.
  auto [it, fresh] = reads_.try_emplace({o.kind, o.id});
  if (fresh)
    it->second = Object{o.kind, o.id, o.resource_version, std::move(o.created), std::move(o.updated), std::move(o.body)};
  return &it->second;
}

const Object* Engine::find(const std::string& kind, const std::string& id) const {
  if (const Object* o = live(kind, id)) return o;
  if (!archives(kind) || id.empty()) return nullptr;
  if (auto r = reads_.find({kind, id}); r != reads_.end()) return &r->second;
  auto stored = store_->find(kind, id);
  if (!stored) return nullptr;
  return hold(std::move(*stored));
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

std::vector<const Object*> Engine::archived(const std::string& kind, const std::string& after, std::size_t limit) const {
  std::vector<const Object*> out;
  if (!archives(kind)) return out;
  for (auto& o : store_->archived(kind, after, limit)) out.push_back(hold(std::move(o)));
  return out;
}

std::vector<const Object*> Engine::archived_of(const std::string& kind, const std::string& deployment) const {
  std::vector<const Object*> out;
  if (!archives(kind)) return out;
  // A deployment's instances number what its template allows (scale is bounded), not more.
  for (auto& o : store_->archived_of(kind, deployment, 100000)) out.push_back(hold(std::move(o)));
  return out;
}

void Engine::release_reads() const {
  release_asked_ = false;
  reads_.clear();
  retired_.clear();
  removed_reads_.clear();
}

Result<std::size_t> Engine::expire_archived(const std::string& before, std::size_t limit) {
  // Archived objects are not in memory and are removed as they are, never
  // read back: a batch costs its deletes, not the parsing of every body.
  std::vector<Change> changes;
  for (auto& [kind, id] : store_->archived_before(before, limit)) {
    Json summary = {{"id", id}};
    changes.push_back({Change::Op::remove, std::move(kind), std::move(id), std::move(summary), "Expired"});
  }
  if (changes.empty()) return std::size_t{0};
  auto events = store_->commit(changes, now(), std::nullopt, false);
  if (!events) return fail(events.error());
  for (const auto& c : changes)
    if (auto r = reads_.find({c.kind, c.id}); r != reads_.end()) removed_reads_.push_back(reads_.extract(r));
  last_seq_ = events->back().seq;
  for (auto& l : listeners_) l(*events);
  return changes.size();
}

Result<std::vector<Event>> Engine::commit(std::vector<Change> changes) { return commit(std::move(changes), true); }
Result<std::vector<Event>> Engine::commit_relaxed(std::vector<Change> changes) {
  return commit(std::move(changes), false);
}

Result<std::vector<Event>> Engine::commit(std::vector<Change> changes, bool durable) {
  std::vector<Change> effective;
  effective.reserve(changes.size());
  std::vector<const Json*> before;  // what each object was, for the log's patch
  std::vector<bool> archive;        // which puts write a finished object
  std::vector<std::string> created;  // when each object was created (empty: now)
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
    archive.push_back(c.op == Change::Op::put && finished(c.kind, c.body));
    created.push_back(existing ? existing->created : "");
    effective.push_back(std::move(c));
  }
  std::optional<store::IdempotencyRecord> record;
  if (!effective.empty()) record = std::exchange(pending_idem_, std::nullopt);
  if (effective.empty() && !record) return std::vector<Event>{};
  auto events = store_->commit(effective, now(), record, durable || record.has_value(), before, archive);
  if (!events) return events;
  // An object leaving the working set is taken out of its map, not
  // destroyed: a caller's pointer to it stays valid until release_reads().
  auto retire = [this](const std::string& kind, const std::string& id) {
    auto k = objects_.find(kind);
    if (k == objects_.end()) return;
    if (auto it = k->second.find(id); it != k->second.end()) {
      ask_release();
      retired_.push_back(k->second.extract(it));
    }
  };
  for (std::size_t i = 0; i < effective.size(); ++i) {
    auto& c = effective[i];
    const auto& ev = (*events)[i];
    if (c.op == Change::Op::put) {
      if (auto r = reads_.find({c.kind, c.id}); r != reads_.end()) {
        r->second.resource_version = ev.seq;
        r->second.updated = ev.time;
        r->second.body = c.body;
      }
      if (archive[i]) {
        if (Object* hot = const_cast<Object*>(live(c.kind, c.id))) {
          hot->resource_version = ev.seq;
          hot->updated = ev.time;
          hot->body = c.body;
        }
        retire(c.kind, c.id);
      } else {
        auto& slot = objects_[c.kind][c.id];
        if (slot.created.empty()) slot.created = created[i].empty() ? ev.time : created[i];
        slot.kind = c.kind;
        slot.id = c.id;
        slot.resource_version = ev.seq;
        slot.updated = ev.time;
        slot.body = c.body;
      }
    } else if (c.op == Change::Op::remove) {
      retire(c.kind, c.id);
      if (auto r = reads_.find({c.kind, c.id}); r != reads_.end()) removed_reads_.push_back(reads_.extract(r));
    }
    last_seq_ = ev.seq;
  }
  for (auto& l : listeners_) l(*events);
  return events;
}

}  // namespace cpn::engine
