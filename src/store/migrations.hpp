// Numbered schema steps; PRAGMA user_version records how many have run.
// Append only: never edit a step that has shipped.
#pragma once

namespace cpn::store {

inline constexpr const char* kMigrations[] = {
    // 1: objects and the event log
    R"sql(
CREATE TABLE objects (
  kind    TEXT NOT NULL,
  id      TEXT NOT NULL,
  rv      INTEGER NOT NULL,
  created TEXT NOT NULL,
  updated TEXT NOT NULL,
  body    TEXT NOT NULL,
  PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE TABLE events (
  seq    INTEGER PRIMARY KEY AUTOINCREMENT,
  time   TEXT NOT NULL,
  type   TEXT NOT NULL,
  kind   TEXT NOT NULL,
  id     TEXT NOT NULL,
  object TEXT NOT NULL
);
)sql",
    // 2: stored answers for Idempotency-Key
    R"sql(
CREATE TABLE idempotency (
  principal    TEXT NOT NULL,
  key          TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  status       INTEGER NOT NULL,
  content_type TEXT NOT NULL,
  location     TEXT NOT NULL,
  body         TEXT NOT NULL,
  created      TEXT NOT NULL,
  PRIMARY KEY (principal, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency(created);
)sql",
    // 3: the audit log of every write: appended, read, expired by age; never changed
    R"sql(
CREATE TABLE audit (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  time       TEXT NOT NULL,
  principal  TEXT NOT NULL,
  name       TEXT NOT NULL,
  role       TEXT NOT NULL,
  tenant     TEXT NOT NULL,
  method     TEXT NOT NULL,
  route      TEXT NOT NULL,
  path       TEXT NOT NULL,
  status     INTEGER NOT NULL,
  request_id TEXT NOT NULL
);
CREATE INDEX audit_time ON audit(time);
CREATE TRIGGER audit_append_only BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
)sql",
    // 4: events of a change to an object carry what changed (a merge patch), not the
    // whole object; the log is also bounded by age, through an index on time
    R"sql(
ALTER TABLE events ADD COLUMN patch TEXT;
CREATE INDEX events_time ON events(time);
)sql",
    // 5: finished objects (archived) stay here only, out of cpnd's memory: listed in id
    // order, found by their deployment, and expired by age
    R"sql(
ALTER TABLE objects ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
CREATE INDEX objects_archived ON objects(archived, kind, id);
CREATE INDEX objects_archived_updated ON objects(archived, updated);
CREATE INDEX objects_archived_deployment ON objects(kind, json_extract(body, '$.deployment')) WHERE archived = 1;
CREATE INDEX objects_archived_state ON objects(kind, json_extract(body, '$.state')) WHERE archived = 1;
)sql",
};

}  // namespace cpn::store
