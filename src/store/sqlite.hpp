// Thin RAII over the SQLite C API: prepared statements only, values bound,
// never SQL built from user input. Private to the store module.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include <sqlite3.h>

namespace cpn::store::sql {

struct DbError : std::runtime_error {
  explicit DbError(const std::string& what, int code_ = SQLITE_ERROR) : std::runtime_error(what), code(code_) {}
  int code;  // SQLite's extended result code
  bool disk_full() const { return (code & 0xff) == SQLITE_FULL; }
};

class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int idx, std::int64_t v);
  Statement& bind(int idx, std::string_view v);
  Statement& bind_null(int idx);
  bool step();  // true while a row is available
  void run();   // step to completion, then reset
  void reset();

  std::int64_t int64(int col) const;
  std::string text(int col) const;
  bool is_null(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const char* sql);

// Rolls back unless commit() was called.
class Transaction {
 public:
  explicit Transaction(sqlite3* db);
  ~Transaction();
  void commit();

 private:
  sqlite3* db_;
  bool done_ = false;
};

}  // namespace cpn::store::sql
