#include "cpn/store/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>

#include <fmt/format.h>

#include "migrations.hpp"
#include "sqlite.hpp"

namespace cpn::store {

struct Store::Impl {
  sqlite3* db = nullptr;
  std::unique_ptr<sql::Statement> put, find, remove, event, find_idem, put_idem, since, expire_idem, last_seq, count_idem, put_audit;
  Timings timings;
  bool full = false;  // the last commit failed for a full disk
  bool durable = true;  // PRAGMA synchronous is FULL (else NORMAL)
  bool deferred = false;  // group commit: durable commits are NORMAL, and sync() makes them so
  std::atomic<std::uint64_t> written{0}, synced{0}, syncs{0};
  std::atomic<double> sync_seconds{0};
  std::string wal_path, dir_path;
  std::mutex sync_mu;  // sync() runs on workers
  int wal_fd = -1;
  ino_t wal_ino = 0;
  std::string sync_error;  // sticky: the first failed fdatasync
  void make_durable() {
    if (durable || deferred) return;
    sql::exec(db, "PRAGMA synchronous=FULL");
    durable = true;
  }

  ~Impl() {
    put.reset();
    find.reset();
    remove.reset();
    event.reset();
    find_idem.reset();
    put_idem.reset();
    since.reset();
    expire_idem.reset();
    last_seq.reset();
    count_idem.reset();
    put_audit.reset();
    if (db) sqlite3_close_v2(db);
    if (wal_fd >= 0) ::close(wal_fd);
  }

  void migrate() {
    sql::Statement v(db, "PRAGMA user_version");
    v.step();
    int current = static_cast<int>(v.int64(0));
    v.reset();
    constexpr int total = static_cast<int>(std::size(kMigrations));
    if (current > total)
      throw sql::DbError(fmt::format("database schema version {} is newer than this cpnd ({})", current, total));
    for (int i = current; i < total; ++i) {
      sql::Transaction tx(db);
      sql::exec(db, kMigrations[i]);
      sql::exec(db, fmt::format("PRAGMA user_version = {}", i + 1).c_str());
      tx.commit();
    }
  }

  void prepare() {
    put = std::make_unique<sql::Statement>(
        db, "INSERT INTO objects(kind,id,rv,created,updated,body,archived) VALUES(?1,?2,?3,?4,?4,?5,?6) "
            "ON CONFLICT(kind,id) DO UPDATE SET rv=excluded.rv, updated=excluded.updated, body=excluded.body, "
            "archived=excluded.archived");
    remove = std::make_unique<sql::Statement>(db, "DELETE FROM objects WHERE kind=?1 AND id=?2");
    find = std::make_unique<sql::Statement>(
        db, "SELECT kind,id,rv,created,updated,body FROM objects WHERE kind=?1 AND id=?2");
    event = std::make_unique<sql::Statement>(
        db, "INSERT INTO events(time,type,kind,id,object,patch) VALUES(?1,?2,?3,?4,?5,?6) RETURNING seq");
    find_idem = std::make_unique<sql::Statement>(
        db, "SELECT request_hash,status,content_type,location,body,created FROM idempotency "
            "WHERE principal=?1 AND key=?2");
    put_idem = std::make_unique<sql::Statement>(
        db, "INSERT OR REPLACE INTO idempotency(principal,key,request_hash,status,content_type,location,body,created) "
            "VALUES(?1,?2,?3,?4,?5,?6,?7,?8)");
    since = std::make_unique<sql::Statement>(
        db, "SELECT seq,time,type,kind,id,object,patch FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    expire_idem = std::make_unique<sql::Statement>(db, "DELETE FROM idempotency WHERE created < ?1");
    last_seq = std::make_unique<sql::Statement>(db, "SELECT COALESCE(MAX(seq),0) FROM events");
    count_idem = std::make_unique<sql::Statement>(db, "SELECT COUNT(*) FROM idempotency WHERE principal=?1");
    put_audit = std::make_unique<sql::Statement>(
        db, "INSERT INTO audit(time,principal,name,role,tenant,method,route,path,status,request_id) "
            "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)");
  }

  void bind_idempotency(const IdempotencyRecord& r) {
    put_idem->bind(1, r.principal)
        .bind(2, r.key)
        .bind(3, r.request_hash)
        .bind(4, static_cast<std::int64_t>(r.status))
        .bind(5, r.content_type)
        .bind(6, r.location)
        .bind(7, r.body)
        .bind(8, r.created)
        .run();
  }

  void observe_read(std::chrono::steady_clock::time_point start) {
    timings.reads++;
    timings.read_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  void observe_commit(double seconds) {
    timings.commits++;
    timings.commit_seconds += seconds;
    if (timings.commit_buckets.empty()) timings.commit_buckets.assign(std::size(kTimingBuckets), 0);
    for (std::size_t i = 0; i < std::size(kTimingBuckets); ++i)
      if (seconds <= kTimingBuckets[i]) timings.commit_buckets[i]++;
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->wal_path = path + "-wal";
  impl->dir_path = std::filesystem::path(path).parent_path().string();
  if (impl->dir_path.empty()) impl->dir_path = ".";
  if (sqlite3_open_v2(path.c_str(), &impl->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK)
    return fail(Error::internal(fmt::format("cannot open database '{}': {}", path,
                                            impl->db ? sqlite3_errmsg(impl->db) : "out of memory")));
  try {
    sqlite3_busy_timeout(impl->db, 5000);
    sql::exec(impl->db, "PRAGMA journal_mode=WAL");
    // FULL: the WAL is synced at every commit, so an acknowledged write
    // survives a crash or power loss, not only a process kill.
    sql::exec(impl->db, "PRAGMA synchronous=FULL");
    sql::exec(impl->db, "PRAGMA foreign_keys=ON");
    impl->migrate();
    impl->prepare();
  } catch (const sql::DbError& e) {
    return fail(Error::internal(fmt::format("database '{}': {}", path, e.what())));
  }
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

namespace {

constexpr const char* kColumns = "SELECT kind,id,rv,created,updated,body FROM objects ";

std::vector<StoredObject> rows(sql::Statement& q) {
  std::vector<StoredObject> out;
  while (q.step())
    out.push_back({q.text(0), q.text(1), q.int64(2), q.text(3), q.text(4), Json::parse(q.text(5))});
  return out;
}

}  // namespace

std::vector<StoredObject> Store::load_all() {
  sql::Statement q(impl_->db, std::string(kColumns) + "WHERE archived = 0 ORDER BY kind,id");
  return rows(q);
}

std::optional<StoredObject> Store::find(const std::string& kind, const std::string& id) {
  auto start = std::chrono::steady_clock::now();
  auto& q = *impl_->find;
  q.bind(1, kind).bind(2, id);
  struct Reset {
    sql::Statement& q;
    ~Reset() { q.reset(); }
  } reset{q};  // also when a row does not parse: the shared statement stays usable
  auto found = rows(q);
  impl_->observe_read(start);
  if (found.empty()) return std::nullopt;
  return std::move(found.front());
}

std::vector<StoredObject> Store::archived(const std::string& kind, const std::string& after, std::size_t limit) {
  auto start = std::chrono::steady_clock::now();
  sql::Statement q(impl_->db, std::string(kColumns) + "WHERE archived = 1 AND kind = ?1 AND id > ?2 ORDER BY id LIMIT ?3");
  q.bind(1, kind).bind(2, after).bind(3, static_cast<std::int64_t>(limit));
  auto out = rows(q);
  impl_->observe_read(start);
  return out;
}

std::vector<StoredObject> Store::archived_of(const std::string& kind, const std::string& deployment,
                                             std::size_t limit) {
  auto start = std::chrono::steady_clock::now();
  // The expression as the partial index has it, so that SQLite uses the index.
  sql::Statement q(impl_->db, std::string(kColumns) +
                                  "WHERE kind = ?1 AND json_extract(body, '$.deployment') = ?2 AND archived = 1 "
                                  "ORDER BY id LIMIT ?3");
  q.bind(1, kind).bind(2, deployment).bind(3, static_cast<std::int64_t>(limit));
  auto out = rows(q);
  impl_->observe_read(start);
  return out;
}

std::int64_t Store::count_archived(const std::string& kind) {
  sql::Statement q(impl_->db, "SELECT COUNT(*) FROM objects WHERE archived = 1 AND kind = ?1");
  q.bind(1, kind);
  q.step();
  return q.int64(0);
}

std::vector<std::pair<std::string, std::int64_t>> Store::count_archived_by_state(const std::string& kind) {
  // Kept by triggers as objects are archived, changed and removed: no body is read.
  sql::Statement q(impl_->db, "SELECT state, n FROM archived_counts WHERE kind = ?1 AND n > 0 ORDER BY state");
  q.bind(1, kind);
  std::vector<std::pair<std::string, std::int64_t>> out;
  while (q.step()) out.emplace_back(q.text(0), q.int64(1));
  return out;
}

std::vector<std::pair<std::string, std::string>> Store::archived_before(const std::string& before, std::size_t limit) {
  sql::Statement q(impl_->db,
                   "SELECT kind,id FROM objects WHERE archived = 1 AND updated < ?1 ORDER BY updated LIMIT ?2");
  q.bind(1, before).bind(2, static_cast<std::int64_t>(limit));
  std::vector<std::pair<std::string, std::string>> out;
  while (q.step()) out.emplace_back(q.text(0), q.text(1));
  return out;
}

void Store::archive(const std::vector<std::pair<std::string, std::string>>& objects) {
  if (objects.empty()) return;
  impl_->make_durable();
  sql::Transaction tx(impl_->db);
  sql::Statement q(impl_->db, "UPDATE objects SET archived = 1 WHERE kind = ?1 AND id = ?2");
  for (const auto& [kind, id] : objects) q.bind(1, kind).bind(2, id).run();
  tx.commit();
  ++impl_->written;
}

std::int64_t Store::last_seq() {
  impl_->last_seq->step();
  auto v = impl_->last_seq->int64(0);
  impl_->last_seq->reset();
  return v;
}

int Store::schema_version() {
  sql::Statement v(impl_->db, "PRAGMA user_version");
  v.step();
  return static_cast<int>(v.int64(0));
}

namespace {

// What the log keeps of one change: the object when it is new, what changed
// when it was there before, nothing more when it goes; each bounded, as a
// summary when over kMaxEventBytes.
constexpr std::size_t kMaxEventBytes = 64 * 1024;

std::string bounded(const Json& doc, const std::string& id) {
  std::string text = doc.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() <= kMaxEventBytes) return text;
  return Json{{"id", id}, {"truncated", true}, {"bytes", text.size()}}.dump();
}

}  // namespace

Json event_json(const Event& e) {
  Json j = {{"seq", e.seq}, {"time", e.time}, {"type", e.type}, {"kind", e.kind}, {"id", e.id}};
  if (!e.object.is_null()) j["object"] = e.object;
  if (!e.patch.is_null()) j["patch"] = e.patch;
  for (const char* part : {"object", "patch"})
    if (e.kind == "token" && j.contains(part) && j[part].is_object()) j[part].erase("sha256");
  return j;
}

Result<std::vector<Event>> Store::commit(const std::vector<Change>& changes, const std::string& time,
                                         const std::optional<IdempotencyRecord>& idem, bool durable,
                                         const std::vector<const Json*>& before,
                                         const std::vector<bool>& archived) {
  auto start = std::chrono::steady_clock::now();
  std::vector<Event> events;
  try {
    // WAL: NORMAL commits are not synced; the log is sequential, so the next FULL one syncs them too.
    if (durable) {
      impl_->make_durable();
    } else if (impl_->durable) {
      sql::exec(impl_->db, "PRAGMA synchronous=NORMAL");
      impl_->durable = false;
    }
    sql::Transaction tx(impl_->db);
    for (std::size_t i = 0; i < changes.size(); ++i) {
      const Change& c = changes[i];
      std::string type = c.event_type;
      if (type.empty()) type = c.op == Change::Op::remove ? "Deleted" : "Modified";
      auto& ev = *impl_->event;
      // Bodies are valid UTF-8 by the time they get here; replace, never throw, if one is not.
      std::string body = c.body.dump(-1, ' ', false, Json::error_handler_t::replace);
      const Json* was = i < before.size() ? before[i] : nullptr;
      ev.bind(1, time).bind(2, type).bind(3, c.kind).bind(4, c.id);
      if (c.op == Change::Op::put && was) {
        ev.bind(5, std::string("null")).bind(6, bounded(merge_diff(*was, c.body), c.id));
      } else if (c.op == Change::Op::put || c.op == Change::Op::note) {
        ev.bind(5, body.size() <= kMaxEventBytes ? body : bounded(c.body, c.id)).bind_null(6);
      } else {
        ev.bind(5, std::string("null")).bind_null(6);
      }
      ev.step();
      std::int64_t seq = ev.int64(0);
      ev.reset();
      if (c.op == Change::Op::put) {
        std::int64_t finished = i < archived.size() && archived[i] ? 1 : 0;
        impl_->put->bind(1, c.kind).bind(2, c.id).bind(3, seq).bind(4, time).bind(5, body).bind(6, finished).run();
      } else if (c.op == Change::Op::remove) {
        impl_->remove->bind(1, c.kind).bind(2, c.id).run();
      }
      events.push_back({seq, time, type, c.kind, c.id, c.body, nullptr});
    }
    if (idem) impl_->bind_idempotency(*idem);
    tx.commit();
    ++impl_->written;
  } catch (const sql::DbError& e) {
    if (e.disk_full()) {
      // Nothing was written (the transaction rolled back); the next commit that fits clears it.
      impl_->full = true;
      return fail(Error{ErrorKind::insufficient_storage, "the disk is full: nothing was written; free space and retry", {}});
    }
    return fail(Error::internal(fmt::format("commit failed: {}", e.what())));
  }
  impl_->full = false;
  impl_->observe_commit(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return events;
}

std::vector<Event> Store::events_since(std::int64_t since, std::size_t limit) {
  auto start = std::chrono::steady_clock::now();
  auto& q = *impl_->since;
  q.bind(1, since).bind(2, static_cast<std::int64_t>(limit));
  std::vector<Event> out;
  while (q.step())
    out.push_back({q.int64(0), q.text(1), q.text(2), q.text(3), q.text(4), Json::parse(q.text(5)),
                   q.is_null(6) ? Json() : Json::parse(q.text(6))});
  q.reset();
  impl_->timings.reads++;
  impl_->timings.read_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

std::optional<IdempotencyRecord> Store::find_idempotency(const std::string& principal, const std::string& key) {
  auto& q = *impl_->find_idem;
  q.bind(1, principal).bind(2, key);
  std::optional<IdempotencyRecord> out;
  if (q.step())
    out = IdempotencyRecord{principal, key, q.text(0), static_cast<int>(q.int64(1)), q.text(2), q.text(3), q.text(4),
                            q.text(5)};
  q.reset();
  return out;
}

void Store::save_idempotency(const IdempotencyRecord& record) {
  impl_->make_durable();  // an answer a client will be given again
  impl_->bind_idempotency(record);
  ++impl_->written;
}

Status Store::append_audit(const std::vector<AuditRecord>& records) {
  try {
    impl_->make_durable();  // written before the answer it records leaves
    sql::Transaction tx(impl_->db);
    for (const auto& r : records)
      impl_->put_audit->bind(1, r.time)
          .bind(2, r.principal)
          .bind(3, r.name)
          .bind(4, r.role)
          .bind(5, r.tenant)
          .bind(6, r.method)
          .bind(7, r.route)
          .bind(8, r.path)
          .bind(9, static_cast<std::int64_t>(r.status))
          .bind(10, r.request_id)
          .run();
    tx.commit();
    ++impl_->written;
  } catch (const sql::DbError& e) {
    impl_->full = impl_->full || e.disk_full();
    return fail(Error{e.disk_full() ? ErrorKind::insufficient_storage : ErrorKind::internal,
                      fmt::format("audit record not written: {}", e.what()), {}});
  }
  return {};
}

std::vector<AuditRecord> Store::audit(const AuditQuery& query) {
  // Filters are bound, never spliced in: "?N = ''" makes an empty filter match all.
  sql::Statement q(impl_->db,
                   "SELECT seq,time,principal,name,role,tenant,method,route,path,status,request_id FROM audit "
                   "WHERE seq > ?1 AND (?2 = '' OR principal = ?2) AND (?3 = '' OR tenant = ?3) AND (?4 = '' OR time >= ?4) "
                   "ORDER BY seq LIMIT ?5");
  q.bind(1, query.after).bind(2, query.principal).bind(3, query.tenant).bind(4, query.since);
  q.bind(5, static_cast<std::int64_t>(query.limit));
  std::vector<AuditRecord> out;
  while (q.step())
    out.push_back({q.int64(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6), q.text(7), q.text(8),
                   static_cast<int>(q.int64(9)), q.text(10)});
  return out;
}

std::int64_t Store::expire_audit(const std::string& before) {
  sql::Statement del(impl_->db, "DELETE FROM audit WHERE time < ?1");
  del.bind(1, before).run();
  return sqlite3_changes(impl_->db);
}

std::int64_t Store::count_idempotency(const std::string& principal) {
  auto& q = *impl_->count_idem;
  q.bind(1, principal);
  q.step();
  std::int64_t n = q.int64(0);
  q.reset();
  return n;
}

void Store::expire_idempotency(const std::string& before) { impl_->expire_idem->bind(1, before).run(); }

std::int64_t Store::compact_events(std::int64_t keep, const std::string& older_than) {
  std::int64_t gone = 0;
  if (std::int64_t last = last_seq(); last - keep > 0) {
    sql::Statement del(impl_->db, "DELETE FROM events WHERE seq <= ?1");
    del.bind(1, last - keep).run();
    gone += sqlite3_changes(impl_->db);
  }
  if (!older_than.empty()) {
    // The newest event always stays: it carries the log's position (resourceVersion) across restarts.
    sql::Statement del(impl_->db, "DELETE FROM events WHERE time < ?1 AND seq < (SELECT MAX(seq) FROM events)");
    del.bind(1, older_than).run();
    gone += sqlite3_changes(impl_->db);
  }
  return gone;
}

std::int64_t Store::first_seq() {
  sql::Statement q(impl_->db, "SELECT MIN(seq) FROM events");
  q.step();
  return q.is_null(0) ? last_seq() + 1 : q.int64(0);
}

void Store::defer_sync() {
  if (impl_->deferred) return;
  sql::exec(impl_->db, "PRAGMA synchronous=NORMAL");
  impl_->durable = false;
  impl_->deferred = true;
}

bool Store::sync_deferred() const { return impl_->deferred; }

std::uint64_t Store::written() const { return impl_->written.load(); }

Result<std::uint64_t> Store::sync() {
  std::lock_guard lock(impl_->sync_mu);
  // Once an fdatasync has failed, the kernel may have dropped the pages it could not write and
  // report the next one clean: nothing written since can be called durable until cpnd restarts
  // and SQLite recovers the log from what is on disk.
  if (!impl_->sync_error.empty()) return fail(Error::internal(impl_->sync_error));
  // Everything written before this point is in the log file (SQLite wrote it before its commit returned).
  std::uint64_t covered = impl_->written.load();
  // The log's inode, opened once (again if it was ever replaced): fdatasync on any
  // descriptor of a file writes out that file's data, whoever wrote it.
  struct stat st {};
  if (::stat(impl_->wal_path.c_str(), &st) != 0) {
    if (errno == ENOENT) {  // no log: every commit is in the database file, synced by its checkpoint
      if (covered > impl_->synced) impl_->synced = covered;
      return covered;
    }
    return fail(Error::internal(fmt::format("cannot stat '{}': {}", impl_->wal_path, std::strerror(errno))));
  }
  if (impl_->wal_fd < 0 || st.st_ino != impl_->wal_ino) {
    if (impl_->wal_fd >= 0) ::close(impl_->wal_fd);
    impl_->wal_fd = ::open(impl_->wal_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (impl_->wal_fd < 0)
      return fail(Error::internal(fmt::format("cannot open '{}': {}", impl_->wal_path, std::strerror(errno))));
    impl_->wal_ino = st.st_ino;
    // A log that is new has a name in the directory that must reach the disk too.
    if (int dir = ::open(impl_->dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
      ::fsync(dir);
      ::close(dir);
    }
  }
  auto start = std::chrono::steady_clock::now();
  if (::fdatasync(impl_->wal_fd) != 0) {
    impl_->sync_error = fmt::format("fdatasync of '{}' failed: {}; restart cpnd", impl_->wal_path, std::strerror(errno));
    return fail(Error::internal(impl_->sync_error));
  }
  impl_->sync_seconds = impl_->sync_seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ++impl_->syncs;
  if (covered > impl_->synced) impl_->synced = covered;
  return covered;
}

Store::SyncStats Store::sync_stats() const {
  return {impl_->written.load(), impl_->synced.load(), impl_->syncs.load(), impl_->sync_seconds.load()};
}

void Store::checkpoint() { sqlite3_wal_checkpoint_v2(impl_->db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr); }

const Timings& Store::timings() const { return impl_->timings; }

bool Store::disk_full() const { return impl_->full; }
void Store::clear_disk_full() { impl_->full = false; }

}  // namespace cpn::store
