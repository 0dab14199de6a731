// The engine is the single writer: every state change is one store
// transaction (objects + events), then the in-memory model is updated and
// watchers are told. cpnd runs its io_context on one thread, so calls into
// the engine are already serialised: that thread is the engine's strand.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cpn/core/clock.hpp"
#include "cpn/store/store.hpp"

namespace cpn::engine {

struct Object {
  std::string kind;
  std::string id;
  std::int64_t resource_version = 0;
  std::string created;
  std::string updated;
  Json body;
};

using Change = store::Change;
using Event = store::Event;

class Engine {
 public:
  Engine(std::unique_ptr<store::Store> store, const Clock& clock);

  const Object* find(const std::string& kind, const std::string& id) const;
  // Objects of a kind in id order.
  std::vector<const Object*> list(const std::string& kind) const;
  std::size_t count(const std::string& kind) const;

  // Commits changes atomically; Added/Modified/Deleted are filled in from
  // what exists. Removing something absent is a no-op change (no event).
  Result<std::vector<Event>> commit(std::vector<Change> changes);
  // The same, not fsync'd: for the reconciler's own steps, which no client
  // was told of and which converge again after a power loss (every driver
  // call is idempotent and observed first). Survives a crash of cpnd.
  Result<std::vector<Event>> commit_relaxed(std::vector<Change> changes);

  std::vector<Event> events_since(std::int64_t since, std::size_t limit) { return store_->events_since(since, limit); }
  std::int64_t last_seq() const { return last_seq_; }

  // Called after every commit, on the engine's thread.
  using Listener = std::function<void(const std::vector<Event>&)>;
  void on_commit(Listener listener) { listeners_.push_back(std::move(listener)); }

  // The next commit also writes this record, in the same transaction: a
  // creating POST and its Idempotency-Key land together or not at all.
  void attach_idempotency(std::optional<store::IdempotencyRecord> record) { pending_idem_ = std::move(record); }

  store::Store& store() { return *store_; }
  const Clock& clock() const { return clock_; }
  std::string now() const { return format_time(clock_.now()); }

 private:
  std::unique_ptr<store::Store> store_;
  const Clock& clock_;
  std::map<std::string, std::map<std::string, Object>> objects_;
  std::int64_t last_seq_ = 0;
  std::vector<Listener> listeners_;
  std::optional<store::IdempotencyRecord> pending_idem_;
  Result<std::vector<Event>> commit(std::vector<Change> changes, bool durable);
};

}  // namespace cpn::engine
