// Durable state: every object is a JSON document keyed by (kind, id), every
// change appends to the event log in the same SQLite transaction. WAL mode
// with synchronous=FULL, so a write is on disk before it is acknowledged.
// One Store (one writing connection) per process; SQLite stays out of this
// header.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cpn/core/document.hpp"
#include "cpn/core/error.hpp"

namespace cpn::store {

struct StoredObject {
  std::string kind;
  std::string id;
  std::int64_t resource_version = 0;  // seq of the event that last wrote it
  std::string created;
  std::string updated;
  Json body;
};

struct Event {
  std::int64_t seq = 0;
  std::string time;
  std::string type;  // Added | Modified | Deleted | domain verbs (NodeCordoned, ...)
  std::string kind;
  std::string id;
  Json object;  // the object after the change (before it, for Deleted); as read
                // back from the log: Added only (bounded), null otherwise
  Json patch;   // as read back from the log: the RFC 7386 merge patch of a change to an existing object
};

// An event as clients read it (GET /v1/events, watches): seq, time, type,
// kind, id, and `object` (a new object) or `patch` (what changed). Token
// hashes never leave.
Json event_json(const Event& event);

struct Change {
  enum class Op { put, remove, note };  // note: an event without an object write
  Op op = Op::put;
  std::string kind;
  std::string id;
  Json body;               // put: the new document; note: the event payload
  std::string event_type;  // empty: Added/Modified/Deleted by op
};

// The stored answer to a creating POST with an Idempotency-Key.
struct IdempotencyRecord {
  std::string principal;  // token id, so keys never collide across clients
  std::string key;
  std::string request_hash;
  int status = 0;
  std::string content_type;
  std::string location;
  std::string body;
  std::string created;
};

// One write as the audit log keeps it: who, for which tenant, what, and
// how it ended.
struct AuditRecord {
  std::int64_t seq = 0;  // set by the store
  std::string time;
  std::string principal;  // token id
  std::string name;       // the token's name
  std::string role;
  std::string tenant;
  std::string method;
  std::string route;  // the route template
  std::string path;   // as requested (escaped for display by readers)
  int status = 0;
  std::string request_id;
};

struct AuditQuery {
  std::int64_t after = 0;  // records after this seq
  std::size_t limit = 100;
  std::string principal, tenant;  // empty: any
  std::string since;              // RFC 3339; empty: any time
};

// Cumulative database timings for /metrics.
struct Timings {
  std::uint64_t commits = 0;
  double commit_seconds = 0;
  std::vector<std::uint64_t> commit_buckets;  // counts per kTimingBuckets upper bound
  std::uint64_t reads = 0;
  double read_seconds = 0;
};
inline constexpr double kTimingBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};

class Store {
 public:
  // Opens (creating) the database and runs pending numbered migrations.
  static Result<std::unique_ptr<Store>> open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // The working set: every object not archived.
  std::vector<StoredObject> load_all();
  // One object, archived or not.
  std::optional<StoredObject> find(const std::string& kind, const std::string& id);
  // Archived objects of a kind in id order, after `after` (empty: from the start).
  std::vector<StoredObject> archived(const std::string& kind, const std::string& after, std::size_t limit);
  // Archived objects of a kind whose body's `deployment` is this one.
  std::vector<StoredObject> archived_of(const std::string& kind, const std::string& deployment, std::size_t limit);
  std::int64_t count_archived(const std::string& kind);
  // Archived objects of a kind by their state (kept as they are written: no body is read).
  std::vector<std::pair<std::string, std::int64_t>> count_archived_by_state(const std::string& kind);
  // Archived objects last written before `before`, oldest first: (kind, id).
  std::vector<std::pair<std::string, std::string>> archived_before(const std::string& before, std::size_t limit);
  // Marks stored objects archived (what load_all found finished).
  void archive(const std::vector<std::pair<std::string, std::string>>& objects);
  std::int64_t last_seq();
  int schema_version();

  // Applies changes and (optionally) stores an idempotency record, all in
  // one transaction; returns the events in commit order. Nothing is
  // written if anything fails. `durable`: fsync'd before it returns (what
  // a client is told was written); otherwise it survives a crash of cpnd
  // but not a power loss, until the next durable commit or checkpoint
  // fsyncs the log, which holds it before anything later.
  // `before`: each change's object as it was (null: new or unknown); the
  // log records, for a change to an existing object, only what changed.
  // `archived`: which puts write a finished object (kept here only).
  Result<std::vector<Event>> commit(const std::vector<Change>& changes, const std::string& time,
                                    const std::optional<IdempotencyRecord>& idem = std::nullopt, bool durable = true,
                                    const std::vector<const Json*>& before = {},
                                    const std::vector<bool>& archived = {});

  std::vector<Event> events_since(std::int64_t since, std::size_t limit);
  // Deletes all but the newest `keep` events, and those older than
  // `older_than` (a timestamp; empty: no age limit); returns how many went.
  std::int64_t compact_events(std::int64_t keep, const std::string& older_than = "");
  // The oldest sequence number still in the log (last_seq + 1 when empty).
  std::int64_t first_seq();
  std::optional<IdempotencyRecord> find_idempotency(const std::string& principal, const std::string& key);
  // Records (or completes) a stored answer outside of a change.
  void save_idempotency(const IdempotencyRecord& record);
  std::int64_t count_idempotency(const std::string& principal);

  // The audit log: its own table, appended to in its own transaction (a
  // write's record is durable before its answer leaves), never updated
  // (a trigger refuses), removed only by age.
  Status append_audit(const std::vector<AuditRecord>& records);  // in one transaction
  std::vector<AuditRecord> audit(const AuditQuery& query);
  std::int64_t expire_audit(const std::string& before);
  // Forgets idempotency records created before the given time.
  void expire_idempotency(const std::string& before);

  // Group commit. Once deferred, a durable commit is not fsync'd by
  // itself: its caller holds the answer until sync() has covered it, and
  // one fsync covers every commit made before it began, so many clients'
  // writes share one. written(): commits so far (any kind, any mode).
  // sync(): fdatasync of the log (any thread; the database's own
  // connection is untouched); answers the written() it covers.
  void defer_sync();
  bool sync_deferred() const;
  std::uint64_t written() const;
  Result<std::uint64_t> sync();
  struct SyncStats {
    std::uint64_t written = 0, synced = 0, syncs = 0;
    double seconds = 0;
  };
  SyncStats sync_stats() const;

  void checkpoint();  // WAL checkpoint (TRUNCATE), at shutdown
  const Timings& timings() const;
  // The last commit failed because the disk is full (507); cleared by the
  // next commit that succeeds, or by whoever sees space has come back.
  bool disk_full() const;
  void clear_disk_full();

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cpn::store
