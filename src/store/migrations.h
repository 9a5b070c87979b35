// Internal to store/: the SQLite schema as a list of forward-only migrations.
//
// The schema version lives in `PRAGMA user_version` (0 = empty file). Migrate runs
// every step the file has not seen, in order, inside one `BEGIN IMMEDIATE`
// transaction, so a crash or a concurrent opener never leaves a half-migrated file:
// either all pending steps and the new version commit, or none.
//
// To change the schema, append a step to kMigrations in migrations.cc. Never edit a
// step that has shipped: files in the field have already run it.
#pragma once

#include <cstdint>
#include <span>

#include "base/error.h"
#include "store/sqlite_db.h"

namespace vppd::store {

struct Migration {
  std::int64_t version;     // 1, 2, 3, ... without gaps.
  const char* description;  // For the log.
  const char* sql;          // One or more statements; fixed text, never values.
  // Work SQL cannot express (nullptr: none), run after `sql` in the same transaction.
  Status (*then)(sqlite::Connection& writer) = nullptr;
};

// Every step, oldest first.
std::span<const Migration> Migrations();
// The version a fully migrated file has.
std::int64_t LatestSchemaVersion();

// `PRAGMA application_id` of a vppd database ("VPPD" in ASCII), so that vppd refuses
// to migrate a SQLite file that belongs to something else.
inline constexpr std::int64_t kApplicationId = 0x56505044;

// Checks, reading only, that the file is empty or vppd's, at a version this binary
// knows. FailedPrecondition otherwise (see Migrate).
Status CheckSchemaOwnership(sqlite::Connection& conn);

// Brings the file to LatestSchemaVersion(). FailedPrecondition when the file's
// version is newer than this binary knows (a newer vppd wrote it; opening would
// misread it) or when it is some other application's SQLite file (another
// application_id, or tables without vppd's application_id); the error from
// SQLite otherwise, with nothing changed.
Status Migrate(sqlite::Connection& writer);

}  // namespace vppd::store
