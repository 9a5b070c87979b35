// For the store's own tests only: a raw SQLite handle on the store's file, to see
// (and tamper with) what the Store API hides on purpose.
#pragma once

#include <cstdint>
#include <string>

#include <gtest/gtest.h>
#include <sqlite3.h>

namespace vppd::testing {

class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void Exec(const std::string& sql) {
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
  }
  // The first column of the first row as text; empty when no row or NULL.
  std::string Text(const std::string& sql) {
    std::string out;
    Query(sql, [&](sqlite3_stmt* stmt) {
      if (sqlite3_column_text(stmt, 0) != nullptr) out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    });
    return out;
  }
  // The first column of the first row as an integer; -1 when no row.
  std::int64_t Int(const std::string& sql) {
    std::int64_t out = -1;
    Query(sql, [&](sqlite3_stmt* stmt) { out = sqlite3_column_int64(stmt, 0); });
    return out;
  }
  // How SQLite would run `sql` (EXPLAIN QUERY PLAN's steps, one per line).
  std::string Plan(const std::string& sql) {
    std::string plan;
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db_);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      plan += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3));
      plan += '\n';
    }
    sqlite3_finalize(stmt);
    return plan;
  }

 private:
  template <class OnRow>
  void Query(const std::string& sql, OnRow&& on_row) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db_);
    if (sqlite3_step(stmt) == SQLITE_ROW) on_row(stmt);
    sqlite3_finalize(stmt);
  }

  sqlite3* db_ = nullptr;
};

}  // namespace vppd::testing
