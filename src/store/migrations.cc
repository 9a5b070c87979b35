#include "store/migrations.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "store/assignment_chunks.h"

namespace vppd::store {
namespace {

// Migration 8's move of license_assignments' rows into assignment_chunks. The
// primary key hands each set's app's rows over sorted and distinct, so each
// becomes one run, written a chunk at a time (bounded memory).
Status ChunkAssignmentRows(sqlite::Connection& c) {
  Result<sqlite::Stmt> rows = c.Prepare(
      "SELECT generation, app_key, serial_number, client_user_id FROM license_assignments "
      "ORDER BY generation, app_key, serial_number, client_user_id");
  if (!rows) return Fail(rows.error());
  Result<sqlite::Stmt> insert =
      c.Prepare("INSERT INTO assignment_chunks (generation, app_key, chunk, rows, data) VALUES (?1, ?2, ?3, ?4, ?5)");
  if (!insert) return Fail(insert.error());
  Result<sqlite::Stmt> count = c.Prepare(
      "UPDATE assignment_counts SET chunks = ?3 WHERE generation = ?1 AND (adam_id, pricing_param) = "
      "(SELECT adam_id, pricing_param FROM assignment_apps WHERE app_key = ?2)");
  if (!count) return Fail(count.error());
  std::int64_t generation = -1, app_key = -1, chunk = 0;
  std::vector<LicenseAssignment> pending;
  auto flush = [&](bool app_done) -> Status {
    if (!pending.empty()) {
      std::vector<const LicenseAssignment*> run;
      for (const auto& r : pending) run.push_back(&r);
      for (const chunks::Chunk& piece : chunks::EncodeRun(run)) {
        if (Status s = insert->Bind(1, generation); !s) return s;
        if (Status s = insert->Bind(2, app_key); !s) return s;
        if (Status s = insert->Bind(3, chunk++); !s) return s;
        if (Status s = insert->Bind(4, piece.rows); !s) return s;
        if (Status s = insert->BindBlobStatic(5, piece.data); !s) return s;
        if (Status s = insert->Run(); !s) return s;
        insert->Reset();
      }
      pending.clear();
    }
    if (app_done && app_key >= 0) {
      if (Status s = count->Bind(1, generation); !s) return s;
      if (Status s = count->Bind(2, app_key); !s) return s;
      if (Status s = count->Bind(3, chunk); !s) return s;
      if (Status s = count->Run(); !s) return s;
      count->Reset();
    }
    return {};
  };
  for (;;) {
    Result<bool> row = rows->Step();
    if (!row) return Fail(row.error());
    if (!*row) break;
    if (rows->Int(0) != generation || rows->Int(1) != app_key) {
      if (Status s = flush(true); !s) return s;
      generation = rows->Int(0);
      app_key = rows->Int(1);
      chunk = 0;
    }
    pending.push_back({"", "", rows->Text(3), rows->Text(2)});
    if (pending.size() == chunks::kChunkRows) {
      if (Status s = flush(false); !s) return s;
    }
  }
  if (Status s = flush(true); !s) return s;
  return c.Exec("DROP TABLE license_assignments");
}

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
    {2, "sync: token sync columns, apps, license assignments, jobs, staging", R"sql(
ALTER TABLE vpp_tokens ADD COLUMN last_full_walk  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vpp_tokens ADD COLUMN last_sync_error TEXT    NOT NULL DEFAULT '';
-- A small integer for each token, so that each of the up to millions of assignment
-- rows carries 1-3 bytes instead of two 36-byte GUIDs. Assigned by the store on
-- create (max + 1); UNIQUE makes it a valid foreign-key parent.
ALTER TABLE vpp_tokens ADD COLUMN token_key INTEGER;
UPDATE vpp_tokens SET token_key = rowid;
CREATE UNIQUE INDEX vpp_tokens_by_key ON vpp_tokens (token_key);

-- One row per Graph mobileApp (iosVppApp / macOsVppApp) of a token. The primary key
-- lists a tenant's apps in id order; the other indexes serve the per-token
-- replacement (and the cascade), getLicensesForApp by bundle id, and its adamId
-- fallback.
CREATE TABLE mobile_apps (
  tenant_id               TEXT    NOT NULL,
  id                      TEXT    NOT NULL,
  token_id                TEXT    NOT NULL,
  platform                TEXT    NOT NULL,  -- 'iOS' | 'macOS'
  adam_id                 TEXT    NOT NULL,
  pricing_param           TEXT    NOT NULL,
  product_type            TEXT    NOT NULL,
  display_name            TEXT    NOT NULL,
  bundle_id               TEXT    NOT NULL,
  publisher               TEXT    NOT NULL,
  total_licenses          INTEGER NOT NULL,
  used_licenses           INTEGER NOT NULL,
  device_assignable       INTEGER NOT NULL CHECK (device_assignable IN (0, 1)),
  revocable               INTEGER NOT NULL CHECK (revocable IN (0, 1)),
  app_store_url           TEXT    NOT NULL,
  token_organization_name TEXT,
  token_apple_id          TEXT,
  token_display_name      TEXT,
  token_account_type      TEXT    NOT NULL,
  created                 INTEGER NOT NULL,
  last_modified           INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, token_id) REFERENCES vpp_tokens (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX mobile_apps_by_token ON mobile_apps (tenant_id, token_id, adam_id, pricing_param);
CREATE INDEX mobile_apps_by_bundle_id ON mobile_apps (tenant_id, bundle_id);
CREATE INDEX mobile_apps_by_adam_id ON mobile_apps (tenant_id, adam_id);

-- Every license assignment at Apple of a token: the largest table by far (a full
-- sync writes up to 1,000,000 rows). WITHOUT ROWID, the primary key is the table:
-- one B-tree, no separate unique index, no rowid. It is unique per assignment,
-- groups a token's rows together (the replacement deletes a key range), and
-- within an app orders by (serial_number, client_user_id) as the per-app listing
-- pages. The tenant is reached through token_key, so it is not repeated per row.
-- Exactly one of client_user_id and serial_number is non-empty; '' (not NULL)
-- marks the other, since primary-key columns of WITHOUT ROWID tables are NOT NULL.
-- No foreign key, on purpose: SQLite's FK bookkeeping makes deleting a token's
-- million rows several times slower (bench/README.md) and checks the parent on
-- every insert; the store deletes these rows itself wherever a token goes
-- (DeleteToken, RemoveTenant).
CREATE TABLE license_assignments (
  token_key      INTEGER NOT NULL,
  adam_id        TEXT    NOT NULL,
  pricing_param  TEXT    NOT NULL,
  serial_number  TEXT    NOT NULL,
  client_user_id TEXT    NOT NULL,
  PRIMARY KEY (token_key, adam_id, pricing_param, serial_number, client_user_id)
) STRICT, WITHOUT ROWID;

-- Durable background work. Finished jobs are deleted, so every row is queued or
-- running; hence the full (not partial) unique index is exactly the coalescing
-- rule: at most one job per (token, kind). `key` is the compact handle staging
-- rows carry.
CREATE TABLE sync_jobs (
  key           INTEGER PRIMARY KEY,
  id            TEXT    NOT NULL UNIQUE,
  tenant_id     TEXT    NOT NULL,
  token_id      TEXT    NOT NULL,
  kind          TEXT    NOT NULL,
  params        TEXT    NOT NULL,
  requested     INTEGER NOT NULL,
  not_before    INTEGER NOT NULL,
  attempts      INTEGER NOT NULL,
  lease_owner   TEXT    NOT NULL,  -- '' = queued
  lease_expires INTEGER NOT NULL,
  FOREIGN KEY (tenant_id, token_id) REFERENCES vpp_tokens (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE UNIQUE INDEX sync_jobs_one_per_token_and_kind ON sync_jobs (tenant_id, token_id, kind);
CREATE INDEX sync_jobs_by_requested ON sync_jobs (requested, key);

-- Assignment pages of a running walk, appended page by page. Keyed by (job, seq)
-- with seq increasing, so appends go to the end of the B-tree (sequential pages,
-- a small WAL per page) instead of scattering into a sorted index; FinishJob sorts
-- once when it copies them into license_assignments. No foreign key, for the same
-- reason as license_assignments and because it would also forbid SQLite's
-- truncate optimisation of `DELETE FROM sync_staging`; the store deletes a job's
-- rows with the job (FinishJob, ReleaseJob, DeleteToken, RemoveTenant).
CREATE TABLE sync_staging (
  job_key        INTEGER NOT NULL,
  seq            INTEGER NOT NULL,
  adam_id        TEXT    NOT NULL,
  pricing_param  TEXT    NOT NULL,
  serial_number  TEXT    NOT NULL,
  client_user_id TEXT    NOT NULL,
  PRIMARY KEY (job_key, seq)
) STRICT, WITHOUT ROWID;
)sql"},
    {3, "assignments written once: generations instead of staging", R"sql(
-- A sync used to write every assignment twice: into sync_staging during the walk,
-- then sorted into license_assignments by FinishJob (seconds for 1,000,000
-- rows, under the write lock). Now rows are written once, straight into
-- license_assignments, under a fresh *generation*: an integer allocated for each
-- staging run (a job's walk; a restart gets a new one). The token row points at
-- its current generation, readers read only that one, and a full sync's FinishJob
-- merely repoints the token (O(1)). Generations that nothing points at any more
-- are garbage, deleted afterwards in small transactions by the store's collector
-- (see sqlite_store.cc, the collector) so no write holds the lock for long.
--
-- The registry of every generation that may still have rows:
--   staging  rows of job `job_key`'s walk in progress; invisible to readers.
--   current  the token's assignments (vpp_tokens.assignments_generation).
--   garbage  replaced or abandoned; being deleted. Never becomes anything else,
--            so the collector never races a reader or a writer for it.
-- AUTOINCREMENT: a number is never reused, so a new generation can never meet
-- rows a collector has not reached yet; and a new set's rows sort after every
-- older set's in license_assignments, away from the pages readers use.
CREATE TABLE assignment_generations (
  generation INTEGER PRIMARY KEY AUTOINCREMENT,
  token_key  INTEGER NOT NULL,
  job_key    INTEGER,  -- set while staging, NULL otherwise
  state      TEXT    NOT NULL CHECK (state IN ('staging', 'current', 'garbage')),
  CHECK ((state = 'staging') = (job_key IS NOT NULL))
) STRICT;
-- A job stages into at most one generation at a time.
CREATE UNIQUE INDEX assignment_generations_staging ON assignment_generations (job_key) WHERE state = 'staging';
-- What the collector looks for.
CREATE INDEX assignment_generations_garbage ON assignment_generations (generation) WHERE state = 'garbage';
-- DeleteToken and RemoveTenant retire all of a token's generations.
CREATE INDEX assignment_generations_by_token ON assignment_generations (token_key);

-- NULL: the token has no assignments (never synced, or an empty location).
ALTER TABLE vpp_tokens ADD COLUMN assignments_generation INTEGER;

-- Existing assignment sets become their tokens' current generations. Rows of a
-- token_key no token has (there should be none) are left behind.
INSERT INTO assignment_generations (token_key, job_key, state)
  SELECT token_key, NULL, 'current' FROM vpp_tokens
  WHERE token_key IS NOT NULL AND EXISTS (SELECT 1 FROM license_assignments a WHERE a.token_key = vpp_tokens.token_key)
  ORDER BY token_key;
UPDATE vpp_tokens SET assignments_generation =
  (SELECT generation FROM assignment_generations g WHERE g.token_key = vpp_tokens.token_key);

-- WITHOUT ROWID as before (see migration 2): the primary key is the table. Its
-- first column is now the generation, so a set is one contiguous key range that
-- readers seek into and the collector deletes from the front. Within a set the
-- order is unchanged: an app's rows by (serial_number, client_user_id).
-- No foreign key, as before: the store keeps the registry right itself.
CREATE TABLE license_assignments_v3 (
  generation     INTEGER NOT NULL,
  adam_id        TEXT    NOT NULL,
  pricing_param  TEXT    NOT NULL,
  serial_number  TEXT    NOT NULL,
  client_user_id TEXT    NOT NULL,
  PRIMARY KEY (generation, adam_id, pricing_param, serial_number, client_user_id)
) STRICT, WITHOUT ROWID;
INSERT INTO license_assignments_v3 (generation, adam_id, pricing_param, serial_number, client_user_id)
  SELECT g.generation, a.adam_id, a.pricing_param, a.serial_number, a.client_user_id
  FROM license_assignments a JOIN assignment_generations g ON g.token_key = a.token_key
  ORDER BY 1, 2, 3, 4, 5;
DROP TABLE license_assignments;
ALTER TABLE license_assignments_v3 RENAME TO license_assignments;

-- Staged rows of a walk in progress are dropped: its job restarts the walk (an
-- upgrade restarts the process, so no walk survives it anyway).
DROP TABLE sync_staging;
)sql"},
    {4, "assignment counts per set and app", R"sql(
-- How many rows each assignment set holds per asset, kept by the store as it
-- writes rows (staging, a delta's merge), so that a delta's check "does every
-- app's count equal Apple's?" reads ~2,000 small rows instead of counting the
-- set's 1,000,000 (under the write lock). A count that drifted would
-- only make a delta look inconsistent, which a full walk (a fresh set, fresh
-- counts) repairs. Rows of a set go with its registry row.
CREATE TABLE assignment_counts (
  generation    INTEGER NOT NULL,
  adam_id       TEXT    NOT NULL,
  pricing_param TEXT    NOT NULL,
  rows          INTEGER NOT NULL,
  PRIMARY KEY (generation, adam_id, pricing_param)
) STRICT, WITHOUT ROWID;
INSERT INTO assignment_counts (generation, adam_id, pricing_param, rows)
  SELECT generation, adam_id, pricing_param, count(*) FROM license_assignments
  GROUP BY generation, adam_id, pricing_param;
)sql"},
    {5, "sync job progress", R"sql(
-- How far a running job has got, written by its worker with the lease renewals
-- (not per row): `vppd sync --wait` shows it from any process. A claim starts
-- them again at 0 (a taken-over job walks again from the start).
ALTER TABLE sync_jobs ADD COLUMN pages_walked       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_jobs ADD COLUMN pages_total        INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_jobs ADD COLUMN assignments_staged INTEGER NOT NULL DEFAULT 0;
)sql"},
    {6, "assignments keyed by an interned app number", R"sql(
-- Staging cost most of its time in B-tree work (bench/README.md, sync):
-- Apple's pages come grouped by asset but in no adamId order, so each asset's
-- rows went to another place inside the new set, every insert a descent from
-- the root. Rows now carry an integer app_key, handed out in the order assets
-- are first seen: a walk in Apple's order then only ever appends at the end of
-- its set (the cursor stays on the last leaf), and keys are ~14 bytes shorter.
-- Within an app the order is unchanged: (serial_number, client_user_id).
-- An (adamId, pricingParam) pair keeps its key forever (keys are never reused,
-- so rows of any set always resolve); the table holds one small row per asset
-- ever seen, and no tenant data (adamIds are Apple's public catalogue ids).
CREATE TABLE assignment_apps (
  app_key       INTEGER PRIMARY KEY,
  adam_id       TEXT    NOT NULL,
  pricing_param TEXT    NOT NULL,
  UNIQUE (adam_id, pricing_param)
) STRICT;
INSERT INTO assignment_apps (adam_id, pricing_param)
  SELECT DISTINCT adam_id, pricing_param FROM license_assignments ORDER BY 1, 2;
CREATE TABLE license_assignments_v6 (
  generation     INTEGER NOT NULL,
  app_key        INTEGER NOT NULL,
  serial_number  TEXT    NOT NULL,
  client_user_id TEXT    NOT NULL,
  PRIMARY KEY (generation, app_key, serial_number, client_user_id)
) STRICT, WITHOUT ROWID;
INSERT INTO license_assignments_v6 (generation, app_key, serial_number, client_user_id)
  SELECT a.generation, p.app_key, a.serial_number, a.client_user_id
  FROM license_assignments a JOIN assignment_apps p USING (adam_id, pricing_param)
  ORDER BY 1, 2, 3, 4;
DROP TABLE license_assignments;
ALTER TABLE license_assignments_v6 RENAME TO license_assignments;
)sql"},
    {7, "installation settings", R"sql(
-- Facts about the installation rather than a tenant: today only its id at Apple
-- (Store::InstallationId), which used to be a file in each instance's data dir.
-- One row per name; a value is written once and never changed.
CREATE TABLE vppd_settings (
  name  TEXT NOT NULL PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
)sql"},
    {8, "assignments kept as chunks of an app's assignments", R"sql(
-- One row per assignment made staging the largest part of a sync
-- (bench/README.md, sync). An app's assignments in a set are now a
-- few chunks: blobs of up to 512 assignments each in the binary form of
-- store/assignment_chunks.h, in (serial_number, client_user_id) order within a
-- run (what one staging call brought for the app). A rowid table: the blobs
-- (~10 KB) would make a WITHOUT ROWID B-tree's interior pages useless; `data`
-- is the last column, so reading `rows` never touches a blob's overflow pages.
CREATE TABLE assignment_chunks (
  generation INTEGER NOT NULL,
  app_key    INTEGER NOT NULL,
  chunk      INTEGER NOT NULL,
  rows       INTEGER NOT NULL,
  data       BLOB    NOT NULL,
  PRIMARY KEY (generation, app_key, chunk)
) STRICT;
-- Per set and app: how many runs its chunks form (1: they are one sorted run) and
-- how many chunks there are (the next chunk number). `rows` stays the sum of the
-- chunks' rows.
ALTER TABLE assignment_counts ADD COLUMN runs   INTEGER NOT NULL DEFAULT 1;
ALTER TABLE assignment_counts ADD COLUMN chunks INTEGER NOT NULL DEFAULT 0;
-- Then ChunkAssignmentRows moves the rows of license_assignments into chunks
-- and drops that table.
)sql",
     ChunkAssignmentRows},
    {9, "vppToken row versions", R"sql(
-- The version of a token's row, for its ETag (VppToken::row_version): every
-- write of the row adds one. Rows written before start at 1.
ALTER TABLE vpp_tokens ADD COLUMN row_version INTEGER NOT NULL DEFAULT 1;
)sql"},
    {10, "the directory: users, groups, members, devices, managed devices", R"sql(
-- A minimal Entra directory and Intune's managed devices, tenant-scoped: what
-- app assignments target. Ids are GUID text; times microseconds as elsewhere.
-- A userPrincipalName is unique per tenant, case-insensitively.
CREATE TABLE users (
  tenant_id           TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id                  TEXT    NOT NULL,
  user_principal_name TEXT    NOT NULL,
  display_name        TEXT,
  mail                TEXT,
  given_name          TEXT,
  surname             TEXT,
  job_title           TEXT,
  account_enabled     INTEGER NOT NULL CHECK (account_enabled IN (0, 1)),
  created             INTEGER NOT NULL,
  last_modified       INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE UNIQUE INDEX users_by_upn ON users (tenant_id, lower(user_principal_name));

CREATE TABLE groups (
  tenant_id        TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id               TEXT    NOT NULL,
  display_name     TEXT    NOT NULL,
  description      TEXT,
  mail_nickname    TEXT,
  mail_enabled     INTEGER NOT NULL CHECK (mail_enabled IN (0, 1)),
  security_enabled INTEGER NOT NULL CHECK (security_enabled IN (0, 1)),
  group_types      TEXT    NOT NULL,  -- JSON array of strings
  created          INTEGER NOT NULL,
  last_modified    INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX groups_by_name ON groups (tenant_id, display_name);

-- member_kind says which table member_id is in ('user', 'device', 'group').
-- seq increases tenant-wide with every membership added: the order of
-- "earliest membership first". Deleting a group, user or device deletes its rows
-- (the store does; member_id has no foreign key, being one of three tables').
CREATE TABLE group_members (
  tenant_id   TEXT    NOT NULL,
  group_id    TEXT    NOT NULL,
  member_id   TEXT    NOT NULL,
  member_kind TEXT    NOT NULL CHECK (member_kind IN ('user', 'device', 'group')),
  seq         INTEGER NOT NULL,
  added       INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, group_id, member_id),
  FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX group_members_by_member ON group_members (tenant_id, member_id);
CREATE INDEX group_members_by_seq ON group_members (tenant_id, seq);

-- Entra devices; device_id is the id a managed device's azure_ad_device_id names.
CREATE TABLE devices (
  tenant_id                TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id                       TEXT    NOT NULL,
  device_id                TEXT    NOT NULL,
  display_name             TEXT,
  operating_system         TEXT,
  operating_system_version TEXT,
  account_enabled          INTEGER NOT NULL CHECK (account_enabled IN (0, 1)),
  created                  INTEGER NOT NULL,
  last_modified            INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE UNIQUE INDEX devices_by_device_id ON devices (tenant_id, device_id);

CREATE TABLE managed_devices (
  tenant_id           TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id                  TEXT    NOT NULL,
  serial_number       TEXT,
  device_name         TEXT,
  azure_ad_device_id  TEXT,
  user_id             TEXT,
  user_principal_name TEXT,
  operating_system    TEXT,
  os_version          TEXT,
  model               TEXT,
  created             INTEGER NOT NULL,
  last_modified       INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX managed_devices_by_aad_id ON managed_devices (tenant_id, azure_ad_device_id);
CREATE INDEX managed_devices_by_serial ON managed_devices (tenant_id, serial_number);
)sql"},
    {11, "app assignments", R"sql(
-- One row per mobileAppAssignment (store::AppAssignment): an app given to a
-- target with an intent. It belongs to its app and goes with it (a sync that no
-- longer finds the app, its token deleted, the tenant removed). group_id is NULL
-- for the all-devices and all-users targets; settings is the settings object as
-- Graph shows it, JSON; use_device_licensing is its useDeviceLicensing, kept as
-- a column for the reconcile job. The key is (tenant_id, id), as every id here.
CREATE TABLE app_assignments (
  tenant_id            TEXT    NOT NULL,
  id                   TEXT    NOT NULL,
  app_id               TEXT    NOT NULL,
  intent               TEXT    NOT NULL,
  target_type          TEXT    NOT NULL,
  group_id             TEXT,
  settings             TEXT    NOT NULL,
  use_device_licensing INTEGER NOT NULL CHECK (use_device_licensing IN (0, 1)),
  created              INTEGER NOT NULL,
  last_modified        INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, app_id) REFERENCES mobile_apps (tenant_id, id) ON DELETE CASCADE
) STRICT;
-- An app's assignments (and the cascade from mobile_apps); the apps a group's
-- change concerns.
CREATE INDEX app_assignments_by_app ON app_assignments (tenant_id, app_id, id);
CREATE INDEX app_assignments_by_group ON app_assignments (tenant_id, group_id);
)sql"},
    {12, "device licences vppd hands out, Apple events in flight, jobs that run again", R"sql(
-- A job asked for again while it runs (EnqueueOptions::run_again) is queued
-- once more when it finishes instead of being deleted.
ALTER TABLE sync_jobs ADD COLUMN rerun INTEGER NOT NULL DEFAULT 0 CHECK (rerun IN (0, 1));

-- The licences the reconcile job granted, is granting, could not grant or is
-- taking back, per token, asset and device (store::DeviceLicense). Apple's own
-- view stays in the assignment sets of the last sync; this is what vppd did.
CREATE TABLE device_licenses (
  tenant_id     TEXT    NOT NULL,
  token_id      TEXT    NOT NULL,
  adam_id       TEXT    NOT NULL,
  pricing_param TEXT    NOT NULL,
  serial_number TEXT    NOT NULL,
  state         TEXT    NOT NULL,  -- pending | granted | failed | reclaimPending | released
  error_code    TEXT    NOT NULL,
  error_message TEXT    NOT NULL,
  event_id      TEXT    NOT NULL,  -- the event that last changed it ('' = none)
  cause         TEXT    NOT NULL,
  updated       INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, token_id, adam_id, pricing_param, serial_number),
  FOREIGN KEY (tenant_id, token_id) REFERENCES vpp_tokens (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX device_licenses_by_event ON device_licenses (tenant_id, token_id, event_id);

-- Associate/disassociate events Apple accepted that have not been seen to end.
CREATE TABLE apple_events (
  tenant_id     TEXT    NOT NULL,
  token_id      TEXT    NOT NULL,
  event_id      TEXT    NOT NULL,
  kind          TEXT    NOT NULL,  -- associate | disassociate
  adam_id       TEXT    NOT NULL,
  pricing_param TEXT    NOT NULL,
  serials       INTEGER NOT NULL,
  submitted     INTEGER NOT NULL,
  next_poll     INTEGER NOT NULL,
  polls         INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, token_id, event_id),
  FOREIGN KEY (tenant_id, token_id) REFERENCES vpp_tokens (tenant_id, id) ON DELETE CASCADE
) STRICT;

-- The last reconciliation's report per token (JSON), for `vppd tokens list`.
CREATE TABLE reconcile_reports (
  tenant_id TEXT    NOT NULL,
  token_id  TEXT    NOT NULL,
  report    TEXT    NOT NULL,
  updated   INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, token_id),
  FOREIGN KEY (tenant_id, token_id) REFERENCES vpp_tokens (tenant_id, id) ON DELETE CASCADE
) STRICT;
)sql"},
    {13, "Apple's notifications: endpoints and received notifications", R"sql(
-- Where Apple sends a token's notifications (issue 16): client/config's
-- notificationUrl ends in /apple/notifications/{location_key}, a random key that
-- names no tenant or token. Only a SHA-256 (hex) of the notificationAuthToken is
-- kept; the one before a rotation is still accepted until previous_valid_until
-- (Apple may be retrying a delivery made with it). `registration` is the URL base
-- and types it was registered with: a change of either registers again.
CREATE TABLE notification_endpoints (
  tenant_id            TEXT    NOT NULL,
  token_id             TEXT    NOT NULL,
  location_key         TEXT    NOT NULL UNIQUE,
  apple_uid            TEXT    NOT NULL,
  auth_hash            TEXT    NOT NULL,
  previous_auth_hash   TEXT    NOT NULL,  -- '' when none
  previous_valid_until INTEGER NOT NULL,
  stoken_expiration    INTEGER NOT NULL,  -- the sToken it was registered for: a renewal rotates
  registration         TEXT    NOT NULL,
  rotated              INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, token_id),
  FOREIGN KEY (tenant_id, token_id) REFERENCES vpp_tokens (tenant_id, id) ON DELETE CASCADE
) STRICT;

-- Every notification accepted (answered 2xx), once per (token, notificationId):
-- the primary key is the de-duplication across restarts and instances, and the
-- rows in state 'pending' are the queue the appliers work through after the
-- answer. Rows are deleted `retention` after they were received.
CREATE TABLE apple_notifications (
  tenant_id       TEXT    NOT NULL,
  token_id        TEXT    NOT NULL,
  notification_id TEXT    NOT NULL,
  type            TEXT    NOT NULL,
  body            TEXT    NOT NULL,  -- the envelope as received (JSON)
  received        INTEGER NOT NULL,
  state           TEXT    NOT NULL,  -- pending | applied | covered | resync | recorded
  handled         INTEGER NOT NULL,  -- 0 while pending
  PRIMARY KEY (tenant_id, token_id, notification_id),
  FOREIGN KEY (tenant_id, token_id) REFERENCES vpp_tokens (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX apple_notifications_pending ON apple_notifications (received) WHERE state = 'pending';
CREATE INDEX apple_notifications_by_received ON apple_notifications (received);
)sql"},
    {14, "directory tables clustered by key", R"sql(
-- The directory's big tables become WITHOUT ROWID: each row lives in its
-- primary key's B-tree, so a group's memberships, or a tenant's devices, are
-- read in key order from neighbouring pages instead of one random table page
-- per row (the reconcile job reads a 100,000-device group in every pass).
-- Rebuilt in place: new table, copy, drop, rename, indexes again.
CREATE TABLE users_new (
  tenant_id           TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id                  TEXT    NOT NULL,
  user_principal_name TEXT    NOT NULL,
  display_name        TEXT,
  mail                TEXT,
  given_name          TEXT,
  surname             TEXT,
  job_title           TEXT,
  account_enabled     INTEGER NOT NULL CHECK (account_enabled IN (0, 1)),
  created             INTEGER NOT NULL,
  last_modified       INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
) STRICT, WITHOUT ROWID;
INSERT INTO users_new SELECT tenant_id, id, user_principal_name, display_name, mail, given_name, surname, job_title,
  account_enabled, created, last_modified FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE UNIQUE INDEX users_by_upn ON users (tenant_id, lower(user_principal_name));

CREATE TABLE group_members_new (
  tenant_id   TEXT    NOT NULL,
  group_id    TEXT    NOT NULL,
  member_id   TEXT    NOT NULL,
  member_kind TEXT    NOT NULL CHECK (member_kind IN ('user', 'device', 'group')),
  seq         INTEGER NOT NULL,
  added       INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, group_id, member_id),
  FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
INSERT INTO group_members_new SELECT tenant_id, group_id, member_id, member_kind, seq, added FROM group_members;
DROP TABLE group_members;
ALTER TABLE group_members_new RENAME TO group_members;
CREATE INDEX group_members_by_member ON group_members (tenant_id, member_id);
CREATE INDEX group_members_by_seq ON group_members (tenant_id, seq);

CREATE TABLE devices_new (
  tenant_id                TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id                       TEXT    NOT NULL,
  device_id                TEXT    NOT NULL,
  display_name             TEXT,
  operating_system         TEXT,
  operating_system_version TEXT,
  account_enabled          INTEGER NOT NULL CHECK (account_enabled IN (0, 1)),
  created                  INTEGER NOT NULL,
  last_modified            INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
) STRICT, WITHOUT ROWID;
INSERT INTO devices_new SELECT tenant_id, id, device_id, display_name, operating_system, operating_system_version,
  account_enabled, created, last_modified FROM devices;
DROP TABLE devices;
ALTER TABLE devices_new RENAME TO devices;
CREATE UNIQUE INDEX devices_by_device_id ON devices (tenant_id, device_id);

CREATE TABLE managed_devices_new (
  tenant_id           TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id                  TEXT    NOT NULL,
  serial_number       TEXT,
  device_name         TEXT,
  azure_ad_device_id  TEXT,
  user_id             TEXT,
  user_principal_name TEXT,
  operating_system    TEXT,
  os_version          TEXT,
  model               TEXT,
  created             INTEGER NOT NULL,
  last_modified       INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
) STRICT, WITHOUT ROWID;
INSERT INTO managed_devices_new SELECT tenant_id, id, serial_number, device_name, azure_ad_device_id, user_id,
  user_principal_name, operating_system, os_version, model, created, last_modified FROM managed_devices;
DROP TABLE managed_devices;
ALTER TABLE managed_devices_new RENAME TO managed_devices;
CREATE INDEX managed_devices_by_aad_id ON managed_devices (tenant_id, azure_ad_device_id);
CREATE INDEX managed_devices_by_serial ON managed_devices (tenant_id, serial_number);
)sql"},
    {15, "Apple users vppd registers per location", R"sql(
-- The users vppd registered at Apple for a location (users/create), as it last
-- knew them (store::AppleUser): one per (token, clientUserId). user_id is the
-- directory user it was registered for ('' when not vppd's); the user events in
-- flight are apple_events rows of kind createUsers / retireUsers whose event_id
-- the rows carry.
CREATE TABLE apple_users (
  tenant_id      TEXT    NOT NULL,
  token_id       TEXT    NOT NULL,
  client_user_id TEXT    NOT NULL,
  user_id        TEXT    NOT NULL,
  email          TEXT    NOT NULL,
  status         TEXT    NOT NULL,  -- creating | Registered | Associated | retiring | Retired | failed
  invite_code    TEXT    NOT NULL,
  invite_url     TEXT    NOT NULL,
  id_hash        TEXT    NOT NULL,
  event_id       TEXT    NOT NULL,  -- the create/retire event in flight ('' = none)
  error_code     TEXT    NOT NULL,
  error_message  TEXT    NOT NULL,
  updated        INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, token_id, client_user_id),
  FOREIGN KEY (tenant_id, token_id) REFERENCES vpp_tokens (tenant_id, id) ON DELETE CASCADE
) STRICT;
-- A directory user's Apple users across locations (AppleUsersOfUser).
CREATE INDEX apple_users_by_user ON apple_users (tenant_id, user_id);

-- The versionId of a token's last GET /users walk: the next walk asks
-- sinceVersionId for what changed since.
CREATE TABLE apple_users_versions (
  tenant_id  TEXT    NOT NULL,
  token_id   TEXT    NOT NULL,
  version_id TEXT    NOT NULL,
  updated    INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, token_id),
  FOREIGN KEY (tenant_id, token_id) REFERENCES vpp_tokens (tenant_id, id) ON DELETE CASCADE
) STRICT;
)sql"},
    {16, "user licences vppd hands out", R"sql(
-- The licences the reconcile job granted, is granting, could not grant or is
-- taking back, per token, asset and person (store::UserLicense): migration 12's
-- device_licenses with a clientUserId (the directory user's id) for the serial.
-- Their Apple events are apple_events rows, as the devices' are.
CREATE TABLE user_licenses (
  tenant_id      TEXT    NOT NULL,
  token_id       TEXT    NOT NULL,
  adam_id        TEXT    NOT NULL,
  pricing_param  TEXT    NOT NULL,
  client_user_id TEXT    NOT NULL,
  state          TEXT    NOT NULL,  -- pending | granted | failed | reclaimPending | released
  error_code     TEXT    NOT NULL,
  error_message  TEXT    NOT NULL,
  event_id       TEXT    NOT NULL,  -- the event that last changed it ('' = none)
  cause          TEXT    NOT NULL,
  updated        INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, token_id, adam_id, pricing_param, client_user_id),
  FOREIGN KEY (tenant_id, token_id) REFERENCES vpp_tokens (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX user_licenses_by_event ON user_licenses (tenant_id, token_id, event_id);
)sql"},
    {17, "managed eBooks: what Apple's lookup says of a book", R"sql(
-- Books are rows of mobile_apps too (product_type 'Book'); Graph's iosVppEBook shows
-- these two of Apple's lookup besides the columns apps have. genres: a JSON array of
-- strings ('[]' when Apple gave none); seller: NULL when Apple gave none.
ALTER TABLE mobile_apps ADD COLUMN genres TEXT NOT NULL DEFAULT '[]';
ALTER TABLE mobile_apps ADD COLUMN seller TEXT;
CREATE INDEX mobile_apps_by_product_type ON mobile_apps (tenant_id, product_type, id);
)sql"},
    {18, "licence revokes by app, user or device", R"sql(
-- What Graph asked to revoke on an app (revokeAllLicenses, revokeUserLicense,
-- revokeDeviceLicense; a managed device's revokeAppleVppLicenses gives one row per
-- app it holds a licence of). A row is both the request, which the token's
-- revokeAppLicenses job works through (pending, active), and the app's
-- revokeLicenseActionResults entry once it ended (done, failed).
CREATE TABLE app_revokes (
  tenant_id         TEXT    NOT NULL,
  token_id          TEXT    NOT NULL,
  id                TEXT    NOT NULL,
  app_id            TEXT    NOT NULL,
  adam_id           TEXT    NOT NULL,
  pricing_param     TEXT    NOT NULL,
  action_name       TEXT    NOT NULL,
  user_id           TEXT    NOT NULL,  -- '' when not about a user
  managed_device_id TEXT    NOT NULL,  -- '' when not about a device
  serial_number     TEXT    NOT NULL,  -- the device's serial when it was asked
  notify            INTEGER NOT NULL,
  untracked         INTEGER NOT NULL,
  action_state      TEXT    NOT NULL,  -- pending | active | done | failed
  failure_reason    TEXT    NOT NULL,
  total_licenses    INTEGER NOT NULL,
  failed_licenses   INTEGER NOT NULL,
  error             TEXT    NOT NULL,
  start             INTEGER NOT NULL,
  last_updated      INTEGER NOT NULL,
  seq               INTEGER NOT NULL,  -- the order asked, per tenant
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, token_id) REFERENCES vpp_tokens (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX app_revokes_by_app ON app_revokes (tenant_id, app_id, seq);
CREATE INDEX app_revokes_open ON app_revokes (tenant_id, token_id, seq) WHERE action_state IN ('pending', 'active');
)sql"},
    {19, "directory changes the reconcile has yet to look at", R"sql(
-- Directory changes the reconcile's device pass has not looked at yet, per token
-- (sync/reconcile.cc): the serial numbers whose managed devices changed or
-- moved in or out of a group. serial_number '' stands for "everything" (a
-- change too wide to list: a group deleted, a nested group, a large import).
-- gen is rewritten by every new change of the serial, so a pass deletes only
-- what it read: a change made while it ran stays for the next pass.
CREATE TABLE reconcile_changes (
  tenant_id     TEXT NOT NULL,
  token_id      TEXT NOT NULL,
  serial_number TEXT NOT NULL,
  gen           TEXT NOT NULL,
  PRIMARY KEY (tenant_id, token_id, serial_number),
  FOREIGN KEY (tenant_id, token_id) REFERENCES vpp_tokens (tenant_id, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX device_licenses_by_serial ON device_licenses (tenant_id, token_id, serial_number);
)sql"},
    {20, "a token's device licence tally, kept while its rows stay as counted", R"sql(
-- Per token: gen moves with every transaction that writes device_licenses
-- (store/licenses_sql.h); `tally` is Store::TallyDeviceLicenses's answer as
-- counted at cached_gen for cached_since, reused while gen has not moved (a
-- pass over a few changed devices then reads no other licence row).
CREATE TABLE device_license_tallies (
  tenant_id    TEXT    NOT NULL,
  token_id     TEXT    NOT NULL,
  gen          INTEGER NOT NULL,
  cached_gen   INTEGER NOT NULL,  -- -1: nothing cached
  cached_since INTEGER NOT NULL,
  tally        TEXT    NOT NULL,
  PRIMARY KEY (tenant_id, token_id),
  FOREIGN KEY (tenant_id, token_id) REFERENCES vpp_tokens (tenant_id, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
)sql"},
    {21, "the groups holding a member, read from the index alone", R"sql(
-- A walk up from members to the groups holding them (DevicesOfSerials) asks
-- for member_kind too: with it in this index, the walk reads the index alone.
DROP INDEX group_members_by_member;
CREATE INDEX group_members_by_member ON group_members (tenant_id, member_id, member_kind);
)sql"},
    {22, "the planner's picture of the directory tables", R"sql(
-- SQLite's planner, without statistics, takes `tenant_id = ?` on a WITHOUT
-- ROWID table's primary key for a selective search, and prefers it to a
-- secondary index that does not cover the columns a query reads (a lookup of
-- one managed device by its Entra device id would scan every managed device of
-- the tenant; bench/README.md "assign"). These rows state the shape the tables are built for instead of a sample of
-- what they hold today: a tenant is most of a table, an id names one row, a
-- group holds many members and a member sits in a few groups. A migration that
-- rebuilds one of these tables drops its rows here and must state them again.
ANALYZE sqlite_schema;
DELETE FROM sqlite_stat1 WHERE tbl IN ('users', 'group_members', 'devices', 'managed_devices');
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
  ('users', 'users', '1000000 1000000 1'),
  ('users', 'users_by_upn', '1000000 1000000 1'),
  ('group_members', 'group_members', '1000000 1000000 1000 1'),
  ('group_members', 'group_members_by_member', '1000000 1000000 2 2'),
  ('group_members', 'group_members_by_seq', '1000000 1000000 1'),
  ('devices', 'devices', '1000000 1000000 1'),
  ('devices', 'devices_by_device_id', '1000000 1000000 1'),
  ('managed_devices', 'managed_devices', '1000000 1000000 1'),
  ('managed_devices', 'managed_devices_by_aad_id', '1000000 1000000 1'),
  ('managed_devices', 'managed_devices_by_serial', '1000000 1000000 1');
-- Read again now, by this connection; later ones read them when they open.
ANALYZE sqlite_schema;
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
    Status s = writer.Exec(step.sql);
    if (s && step.then != nullptr) s = step.then(writer);
    if (!s) {
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
