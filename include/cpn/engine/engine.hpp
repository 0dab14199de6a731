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

// What is finished (completed, cancelled, expired and failed orders and
// deployments; stopped instances) leaves memory when it is written: it is
// archived, kept in the store only. Memory holds the working set, so what
// a pass or a list costs follows what is live, not the history. Archived
// objects are still found by id (read from the store and held until
// release_reads(), which runs once the current handler is done) and listed
// in pages.
class Engine {
 public:
  Engine(std::unique_ptr<store::Store> store, const Clock& clock);

  // Whether an object of this kind, with this body, is finished.
  static bool finished(const std::string& kind, const Json& body);
  static bool archives(const std::string& kind);

  // Live or archived. An archived object's pointer stays valid until
  // release_reads().
  const Object* find(const std::string& kind, const std::string& id) const;
  // The working set only.
  const Object* live(const std::string& kind, const std::string& id) const;
  // Live objects of a kind in id order.
  std::vector<const Object*> list(const std::string& kind) const;
  std::size_t count(const std::string& kind) const;
  // Archived objects of a kind in id order after `after`, at most `limit`.
  std::vector<const Object*> archived(const std::string& kind, const std::string& after, std::size_t limit) const;
  // Archived objects of a kind that belong to a deployment (its instances).
  std::vector<const Object*> archived_of(const std::string& kind, const std::string& deployment) const;
  std::int64_t count_archived(const std::string& kind) const { return store_->count_archived(kind); }
  // Forgets the archived objects read since the last call.
  void release_reads() const;
  // Called when an archived object is read (or one leaves memory) and no
  // release is pending: cpnd posts release_reads() to run after the
  // current handler. Without it, what was read stays until release_reads().
  void on_read(std::function<void()> schedule_release) { schedule_release_ = std::move(schedule_release); }
  // Removes up to `limit` archived objects last written before `before`
  // (retention); returns how many went.
  Result<std::size_t> expire_archived(const std::string& before, std::size_t limit);

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
  std::map<std::string, std::map<std::string, Object>> objects_;  // the working set
  mutable std::map<std::pair<std::string, std::string>, Object> reads_;  // archived, read since the last release
  mutable std::vector<std::map<std::string, Object>::node_type> retired_;  // left the working set since then
  mutable std::vector<decltype(reads_)::node_type> removed_reads_;      // read, then removed
  std::function<void()> schedule_release_;
  const Object* hold(store::StoredObject o) const;
  mutable bool release_asked_ = false;
  void ask_release() const;
  std::int64_t last_seq_ = 0;
  std::vector<Listener> listeners_;
  std::optional<store::IdempotencyRecord> pending_idem_;
  Result<std::vector<Event>> commit(std::vector<Change> changes, bool durable);
};

}  // namespace cpn::engine
