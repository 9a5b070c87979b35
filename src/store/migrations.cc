#include "store/migrations.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace vppd::store {
namespace {

// Conventions of the schema:
// - STRICT tables: a value of the wrong type is an error, never silently coerced.
// - Times are INTEGER microseconds since the Unix epoch, UTC (vppd::Timestamp).
// - Booleans are INTEGER 0/1, enforced by CHECK.
// - Enum-typed Graph properties are TEXT holding the member name ("valid"), so the
//   file reads without a code table and new members need no migration.
// - Tenant data carries tenant_id as the first key column and references tenants
//   with ON DELETE CASCADE: removing a tenant removes everything it owns.
// - Text compares with BINARY collation (the default), i.e. case-sensitively, as
//   OData string comparison does.
constexpr Migration kMigrations[] = {
    {1, "tenants and vpp_tokens", R"sql(
CREATE TABLE tenants (
  id              TEXT    NOT NULL PRIMARY KEY,
  display_name    TEXT    NOT NULL,
  intune_licensed INTEGER NOT NULL CHECK (intune_licensed IN (0, 1)),
  created         INTEGER NOT NULL
) STRICT;

-- The key is (tenant_id, id): a token id is unique within its tenant. A global
-- UNIQUE(id) would let one tenant probe for another's ids through AlreadyExists.
CREATE TABLE vpp_tokens (
  tenant_id                 TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id                        TEXT    NOT NULL,
  organization_name         TEXT,
  account_type              TEXT    NOT NULL,
  apple_id                  TEXT,
  expiration                INTEGER NOT NULL,
  -- "never synced" is stored as 0001-01-01T00:00:00Z, as Graph renders it, so
  -- that filters and ordering on lastSyncDateTime agree with what clients see.
  last_sync                 INTEGER NOT NULL,
  -- The sToken sealed with the store's SecretBox (AES-256-GCM, base64), bound to
  -- tenant and id as associated data. Never plaintext.
  token_sealed              TEXT    NOT NULL,
  last_modified             INTEGER NOT NULL,
  state                     TEXT    NOT NULL,
  action_results            TEXT    NOT NULL,  -- JSON array of TokenActionResult
  last_sync_status          TEXT    NOT NULL,
  automatically_update_apps INTEGER NOT NULL CHECK (automatically_update_apps IN (0, 1)),
  country_or_region         TEXT,
  data_sharing_consent      INTEGER NOT NULL CHECK (data_sharing_consent IN (0, 1)),
  display_name              TEXT,
  location_name             TEXT,
  claim_from_external_mdm   INTEGER NOT NULL CHECK (claim_from_external_mdm IN (0, 1)),
  role_scope_tag_ids        TEXT    NOT NULL,  -- JSON array of strings
  delivery_protocol         TEXT    NOT NULL,
  last_app_count            INTEGER NOT NULL,
  apple_uid                 TEXT,
  apple_version_id          TEXT,
  created                   INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
) STRICT;

-- Duplicate-location detection looks tokens up by Apple's location uId.
CREATE INDEX vpp_tokens_by_apple_uid ON vpp_tokens (tenant_id, apple_uid);
)sql"},
};

}  // namespace

std::span<const Migration> Migrations() { return kMigrations; }

std::int64_t LatestSchemaVersion() { return kMigrations[std::size(kMigrations) - 1].version; }

Status CheckSchemaOwnership(sqlite::Connection& conn) {
  Result<std::int64_t> app_id = conn.QueryInt("PRAGMA application_id");
  if (!app_id) return Fail(app_id.error());
  Result<std::int64_t> version = conn.QueryInt("PRAGMA user_version");
  if (!version) return Fail(version.error());
  if (*app_id != 0 && *app_id != kApplicationId) {
    return Fail(Error::FailedPrecondition(
        fmt::format("the database file belongs to another application (application_id {:#x}); vppd will not "
                    "modify it",
                    *app_id)));
  }
  if (*app_id == 0) {
    // Not stamped by vppd yet: only an empty file may become a vppd database.
    Result<std::int64_t> objects = conn.QueryInt("SELECT count(*) FROM sqlite_schema");
    if (!objects) return Fail(objects.error());
    if (*objects != 0 || *version != 0) {
      return Fail(Error::FailedPrecondition(
          "the database file already holds tables that are not vppd's; vppd will not modify it"));
    }
  }
  if (*version > LatestSchemaVersion()) {
    return Fail(Error::FailedPrecondition(fmt::format(
        "the database schema is version {} but this vppd knows only up to version {}: it was written by a newer "
        "vppd; run that version (or restore a backup) instead of downgrading",
        *version, LatestSchemaVersion())));
  }
  return {};
}

Status Migrate(sqlite::Connection& writer) {
  // IMMEDIATE takes the write lock before reading the version, so two processes
  // opening a new file at once cannot both decide to run step 1.
  if (Status s = writer.Exec("BEGIN IMMEDIATE"); !s) return s;
  auto rollback = [&writer](Error e) -> Status {
    (void)writer.Exec("ROLLBACK");
    return Fail(std::move(e));
  };
  if (Status s = CheckSchemaOwnership(writer); !s) return rollback(s.error());
  Result<std::int64_t> version = writer.QueryInt("PRAGMA user_version");
  if (!version) return rollback(version.error());
  if (*version == LatestSchemaVersion()) {
    if (Status s = writer.Exec("COMMIT"); !s) return rollback(s.error());
    return {};
  }

  for (const Migration& step : kMigrations) {
    if (step.version <= *version) continue;
    if (Status s = writer.Exec(step.sql); !s) {
      Error e = s.error();
      e.message = fmt::format("schema migration {} ({}) failed: {}", step.version, step.description, e.message);
      return rollback(std::move(e));
    }
    spdlog::info("store: applied schema migration {} ({})", step.version, step.description);
  }
  // PRAGMA takes no parameters; both numbers are constants of this binary.
  std::string stamp =
      fmt::format("PRAGMA application_id={}; PRAGMA user_version={};", kApplicationId, LatestSchemaVersion());
  if (Status s = writer.Exec(stamp.c_str()); !s) return rollback(s.error());
  if (Status s = writer.Exec("COMMIT"); !s) return rollback(s.error());
  return {};
}

}  // namespace vppd::store
