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
    // 6: archived objects counted by kind and state as they are written, in the same
    // transaction (a GROUP BY over the history reads every body: 240 ms at 15,000
    // orders, on the engine's thread at every scrape of /metrics); the index that
    // GROUP BY was meant to use goes
    R"sql(
CREATE TABLE archived_counts (
  kind  TEXT NOT NULL,
  state TEXT NOT NULL,
  n     INTEGER NOT NULL,
  PRIMARY KEY (kind, state)
) WITHOUT ROWID;
INSERT INTO archived_counts(kind, state, n)
  SELECT kind, CAST(ifnull(json_extract(body, '$.state'), '') AS TEXT), COUNT(*) FROM objects WHERE archived = 1
  GROUP BY kind, ifnull(json_extract(body, '$.state'), '')
  ON CONFLICT(kind, state) DO UPDATE SET n = n + excluded.n;
DROP INDEX IF EXISTS objects_archived_state;
CREATE TRIGGER archived_counts_insert AFTER INSERT ON objects WHEN NEW.archived = 1
BEGIN
  INSERT INTO archived_counts(kind, state, n) VALUES (NEW.kind, ifnull(json_extract(NEW.body, '$.state'), ''), 1)
    ON CONFLICT(kind, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER archived_counts_delete AFTER DELETE ON objects WHEN OLD.archived = 1
BEGIN
  UPDATE archived_counts SET n = n - 1 WHERE kind = OLD.kind AND state = ifnull(json_extract(OLD.body, '$.state'), '');
END;
CREATE TRIGGER archived_counts_update AFTER UPDATE OF archived, body ON objects WHEN OLD.archived = 1 OR NEW.archived = 1
BEGIN
  UPDATE archived_counts SET n = n - 1
    WHERE OLD.archived = 1 AND kind = OLD.kind AND state = ifnull(json_extract(OLD.body, '$.state'), '');
  INSERT INTO archived_counts(kind, state, n)
    SELECT NEW.kind, ifnull(json_extract(NEW.body, '$.state'), ''), 1 WHERE NEW.archived = 1
    ON CONFLICT(kind, state) DO UPDATE SET n = n + 1;
END;
)sql",
};

}  // namespace cpn::store
