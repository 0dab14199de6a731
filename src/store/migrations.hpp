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
};

}  // namespace cpn::store
