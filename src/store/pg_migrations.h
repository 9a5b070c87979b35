// Internal to store/: the PostgreSQL schema as a list of forward-only migrations.
//
// The version lives in the one-row table vppd_schema (with the application name,
// so vppd never touches another application's tables). Migrate runs every step
// the database has not seen, in order, inside one transaction (PostgreSQL's DDL
// is transactional) that first takes an advisory lock, so two instances starting
// together migrate once: the second waits, then finds the schema current.
//
// To change the schema, append a step to kPgMigrations in pg_migrations.cc.
// Never edit a step that has shipped.
#pragma once

#include <cstdint>
#include <span>

#include "base/error.h"
#include "store/migrations.h"
#include "store/pg_db.h"

namespace vppd::store {

// Every step, oldest first (Migration as for SQLite: version, description, sql).
std::span<const Migration> PgMigrations();
std::int64_t LatestPgSchemaVersion();

// Brings the current schema (search_path) to LatestPgSchemaVersion().
// FailedPrecondition when its version is newer than this binary knows, or it
// holds tables that are not vppd's; the server's error otherwise, nothing changed.
Status MigratePg(pg::Connection& conn);

}  // namespace vppd::store
