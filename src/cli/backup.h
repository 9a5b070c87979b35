// `vppd backup DEST`: a consistent copy of the SQLite store while vppd serves.
//
// Uses SQLite's online backup API in one step: the copy is the database as one read
// transaction saw it (WAL lets the server go on writing meanwhile, and nothing it
// commits later is in the copy). The copy is written beside DEST, checked
// (PRAGMA quick_check), synced and renamed to DEST, mode 0600, so DEST is either
// absent or a whole database.
//
// The sTokens in it are sealed with the deployment's key (secret.key in the data
// dir, or --secrets-key-file), which is not copied: keep that file apart, once (it
// never changes). Restoring is copying DEST back as vppd.db of a stopped vppd, with
// the old vppd.db-wal and vppd.db-shm removed (packaging/README.md).
#pragma once

#include <cstdio>
#include <string>

#include "base/error.h"
#include "cli/config.h"

namespace vppd::cli {

// Copies <settings.data_dir>/vppd.db to `dest` and reports on `out` what was copied.
// FailedPrecondition for a PostgreSQL store (settings.database_url; pg_dump is the
// tool there) and when `dest` exists; NotFound when the data dir holds no vppd.db;
// Internal when SQLite fails or the copy fails its check (the message says which;
// nothing is left at `dest`).
Status Backup(const Settings& settings, const std::string& dest, std::FILE* out);

}  // namespace vppd::cli
