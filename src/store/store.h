// Store: every durable fact vppd keeps, behind one interface.
//
// SQLite (embedded, default) and PostgreSQL (several instances on one database)
// implement it with the same semantics; callers do not know which. Every operation
// on tenant data takes the tenant id and scopes its SQL by it, so no caller can
// forget tenant isolation: an id of another tenant is simply NotFound.
//
// Thread-safety: a Store is shared by all request and sync threads; every method
// may be called concurrently. Each method is one transaction. The SQLite store
// has one writer connection (writes are serialised by a mutex, then SQLite's
// BEGIN IMMEDIATE) and a pool of reader connections; thanks to WAL, readers never
// wait for the writer and always see a committed snapshot. It also runs two
// threads of its own, stopped when it is destroyed: one deletes replaced
// assignment sets in small transactions (collect_garbage), one checkpoints the
// WAL on a connection of its own so that no caller's commit pays for that.
// The PostgreSQL store has a pool of connections (max_connections) shared by
// reads and writes; writes take row locks instead of one global lock, and a
// transaction that loses a race (serialization failure, deadlock) runs again,
// so a `mutate` callback may be called more than once, each time on freshly
// read data. Its collector thread works as SQLite's.
//
// Secrets: VppToken::token holds the plaintext sToken in memory only; the store
// seals it with the SecretBox it was opened with before it touches disk.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/base.h"
#include "store/query.h"

namespace vppd::store {

struct Tenant {
  std::string id;  // Entra tenant id (GUID text).
  std::string display_name;
  bool intune_licensed = false;  // The seed: Graph for Intune needs an active Intune license.
  Timestamp created = 0;
};

// One entry of vppToken.tokenActionResults. A revokeLicenses entry also carries the
// vppTokenRevokeLicensesActionResult fields (is_revoke_result).
struct TokenActionResult {
  std::string action_name;               // "syncLicenses", "revokeLicenses", ...
  std::string action_state = "pending";  // actionState member name.
  Timestamp start = 0;
  Timestamp last_updated = 0;
  bool is_revoke_result = false;
  std::string failure_reason = "none";  // vppTokenActionFailureReason member name.
  std::int32_t failed_licenses = 0;
  std::int32_t total_licenses = 0;
};

// A vppToken as stored. Enum-typed properties hold their Graph member names
// ("business", "valid", "inProgress", "default").
struct VppToken {
  std::string id;  // GUID, assigned by the store on create when empty.
  std::optional<std::string> organization_name;
  std::string account_type = "business";
  std::optional<std::string> apple_id;
  Timestamp expiration = 0;
  Timestamp last_sync = 0;  // 0 = never (the column holds kNeverSynced, store/query.h).
  // The plaintext sToken, only on the way in: CreateToken seals it, and UpdateToken
  // re-seals it when `mutate` sets it (a renewal). Reads leave it empty (the Graph
  // surface never shows it); GetTokenSecret opens it for the sync.
  std::string token;
  Timestamp last_modified = 0;
  std::string state = "unknown";
  std::vector<TokenActionResult> action_results;
  std::string last_sync_status = "none";
  bool automatically_update_apps = false;
  std::optional<std::string> country_or_region;
  bool data_sharing_consent_granted = false;
  std::optional<std::string> display_name;
  std::optional<std::string> location_name;
  bool claim_token_management_from_external_mdm = false;
  std::vector<std::string> role_scope_tag_ids;
  std::string delivery_protocol = "default";  // appleDeviceAppDeliveryProtocolType
  std::int32_t last_app_count = 0;
  // The entity's version, for its ETag: 1 when created, one more on every write
  // (every write changes lastModifiedDateTime, so every write is one Graph sees).
  // Set by the store; what `mutate` sets is ignored.
  std::int64_t row_version = 0;

  // Not on the Graph surface.
  std::optional<std::string> apple_uid;         // Apple's location uId, once synced.
  std::optional<std::string> apple_version_id;  // versionId of the last assignments walk (full or delta).
  Timestamp last_full_walk = 0;                 // When the last full assignments walk was applied.
  std::string last_sync_error;                  // Why the last sync failed (empty after a success).
  Timestamp created = 0;
};

// A VPP app as Graph shows it under /deviceAppManagement/mobileApps: one per Apple
// asset (adamId, pricingParam) and platform (an asset on iOS and macOS gives two).
struct MobileApp {
  std::string id;  // Stable across syncs: sync::MobileAppId(token, adamId, pricingParam, platform).
  std::string token_id;
  std::string platform;  // "iOS" → #microsoft.graph.iosVppApp, "macOS" → #microsoft.graph.macOsVppApp
  std::string adam_id;
  std::string pricing_param;        // STDQ | PLUS
  std::string product_type;         // App (books are not mobileApps)
  std::string display_name;         // From Apple's metadata lookup; "App <adamId>" when unknown.
  std::string bundle_id;            // From the metadata lookup; empty when unknown.
  std::string publisher;            // May be empty.
  std::int64_t total_licenses = 0;  // Apple totalCount (unlimited: 2147483647).
  std::int64_t used_licenses = 0;   // Apple assignedCount.
  bool device_assignable = false;
  bool revocable = false;
  std::string app_store_url;  // https://apps.apple.com/{country}/app/id{adamId}
  // Copied from the token when the sync ran (Graph shows them on the app).
  std::optional<std::string> token_organization_name, token_apple_id, token_display_name;
  std::string token_account_type = "business";
  Timestamp created = 0, last_modified = 0;
};

// One license assignment at Apple: an asset given to a user (client_user_id) or a
// device (serial_number); exactly one of the two is non-empty.
struct LicenseAssignment {
  std::string adam_id;
  std::string pricing_param;
  std::string client_user_id;
  std::string serial_number;
  bool operator==(const LicenseAssignment&) const = default;
};

// Assignments to stage (Store::StageAssignments), kept compactly: every id in one
// string and a 16-byte record per row, the apps once each. A sync stages
// millions of rows; as LicenseAssignments each would cost an allocation (a
// client user id is longer than a short string) and a free on another thread.
class StagedAssignments {
 public:
  struct Row {
    std::uint32_t app;     // index into apps()
    std::uint32_t offset;  // of the id in the ids string
    std::uint32_t length;
    std::uint32_t kind;  // kUser (the id is a clientUserId), kDevice (a serialNumber), kInvalid
  };
  enum : std::uint32_t { kUser = 0, kDevice = 1, kInvalid = 2 };

  // Appends a row. A row without an adamId, or without exactly one of
  // client_user_id and serial_number, is kept as kInvalid: StageAssignments
  // rejects the whole batch, naming it.
  void Add(std::string_view adam_id, std::string_view pricing_param, std::string_view client_user_id,
           std::string_view serial_number);
  void Add(const LicenseAssignment& row) { Add(row.adam_id, row.pricing_param, row.client_user_id, row.serial_number); }
  void Append(const StagedAssignments& other);
  // Moves rows [from, size()) to the end of `out`, in order and as they are
  // (kinds included), leaving this batch with the rows before `from`. Its
  // apps() may then name an app no row uses: staging skips those.
  void MoveTailTo(std::size_t from, StagedAssignments& out);
  void Clear();
  void Reserve(std::size_t rows, std::size_t id_bytes);

  std::size_t size() const { return rows_.size(); }
  std::size_t id_bytes() const { return ids_.size(); }  // of all ids together
  bool empty() const { return rows_.empty(); }
  const std::vector<Row>& rows() const { return rows_; }
  // (adamId, pricingParam) of each app, in the order first added.
  const std::vector<std::pair<std::string, std::string>>& apps() const { return apps_; }
  std::string_view id(const Row& row) const { return std::string_view(ids_).substr(row.offset, row.length); }
  LicenseAssignment At(std::size_t i) const;

 private:
  std::uint32_t AppIndex(std::string_view adam_id, std::string_view pricing_param);

  std::vector<Row> rows_;
  std::string ids_;
  std::vector<std::pair<std::string, std::string>> apps_;
  void GrowAppSlots();

  // AppIndex's hash table (open addressing, linear probing): app index + 1 per
  // slot, 0 for a free one; a power of two, at most half full. Appending a
  // page of rows over every app (Apple documents no order) looks up hundreds
  // of apps a page, so a lookup must cost no allocation (bench/README.md, sync).
  std::vector<std::uint32_t> app_slots_;
  std::uint32_t last_app_ = 0;  // rows come grouped by app: checked first
};

// A durable unit of background work on one token.
struct SyncJob {
  std::string id;  // GUID
  std::string tenant_id;
  std::string token_id;
  std::string kind;          // "syncLicenses" | "syncLicenseCounts" | "revokeLicenses"
  std::string params;        // JSON text for the kind (revokeLicenses: its body); may be empty.
  Timestamp requested = 0;   // When accepted.
  Timestamp not_before = 0;  // Not claimed before this time (scheduled, or handed back).
  int attempts = 0;          // Claims so far, the current one included.
  std::string lease_owner;   // Worker holding it; empty = queued.
  Timestamp lease_expires = 0;
  // Progress of the current attempt, as its worker last stored it (RenewLease);
  // 0 when queued. Shown by `vppd sync --wait`; nothing else depends on it.
  std::int64_t pages_walked = 0;        // Apple assignment pages walked
  std::int64_t pages_total = 0;         // pages of the walk (Apple's totalPages); 0 = not known yet
  std::int64_t assignments_staged = 0;  // assignment rows written to the staging set
};

// What a finished sync writes, in the same transaction as the token's new state.
struct SyncSnapshot {
  std::vector<MobileApp> apps;  // The complete set of the token's apps (replaces the previous set).
  enum class Assignments {
    kKeep,               // Assignments untouched (syncLicenseCounts).
    kReplaceWithStaged,  // The token's assignments become exactly the staged rows (a full walk).
    // Staged rows are added to the existing set, duplicates ignored (a sinceVersionId
    // delta). Then for every app the number of stored assignments of its (adamId,
    // pricingParam) must equal its used_licenses; otherwise FinishJob fails with
    // FailedPrecondition whose message contains "delta inconsistent" and writes
    // nothing (the sync then walks everything).
    kMergeStaged,
  } assignments = Assignments::kKeep;
};

struct EnqueueOptions {
  std::string kind = "syncLicenses";
  std::string params;
  Timestamp not_before = 0;
};

// Most rows one StageAssignments call may carry (see StageAssignments).
inline constexpr std::size_t kMaxStagedRowsPerCall = 100000;

// Most tokens one tenant may hold, as Intune.
inline constexpr std::int64_t kMaxTokensPerTenant = 3000;

struct SqliteOptions {
  std::string path;  // The database file; its directory must exist.
  std::shared_ptr<const SecretBox> secrets;
  // How long a call waits for a connection or SQLite's write lock before it fails
  // with Unavailable, in milliseconds.
  int busy_timeout_ms = 5000;
  // Longest the statements of one call may run before SQLite interrupts them and the
  // call fails with DeadlineExceeded, in milliseconds (checked every ~1000 VM steps).
  int statement_timeout_ms = 10000;
  // Connections for reads, besides the one writer. WAL lets them read while the
  // writer commits.
  int reader_connections = 4;
  // Durability. WAL journaling means a committed transaction is in the WAL file
  // (written with write(2)) before the commit returns, so a killed process (kill -9,
  // crash) never loses it with either setting, and the file is never corrupted.
  // false (synchronous=NORMAL, the default) fsyncs only at checkpoints, so an OS
  // crash or power loss may lose the last commits (never consistency). true (FULL)
  // also fsyncs the WAL at every commit so those survive too, at the cost of an
  // fsync per commit (milliseconds on common disks, which would break the
  // syncLicenses p99 <= 10 ms target: bench/README.md), hence it is opt-in for
  // deployments that need power-loss durability.
  bool synchronous_full = false;
  // Time source for created/last_modified; nullptr means Clock::Real(). Must outlive the Store.
  const Clock* clock = nullptr;
  // The per-tenant token limit; tests lower it. Normally kMaxTokensPerTenant.
  std::int64_t max_tokens_per_tenant = kMaxTokensPerTenant;
  // A sync writes its assignments once, as a new set the token is then pointed at;
  // the replaced set (and one a walk abandoned: restart, hand-back, dead worker,
  // deleted token) is deleted afterwards by a background thread of the store, a
  // few thousand rows per short write transaction, and at open whatever a crash
  // left. false leaves that garbage in the file (tests that look at it); readers
  // never see it either way.
  bool collect_garbage = true;
};

// A PostgreSQL database shared by one or more vppd instances (see pg_store.cc).
struct PostgresOptions {
  // libpq's connection URL (postgresql://user@host:port/db?...) or key=value string.
  // Tables live in the connection's current schema (search_path).
  std::string url;
  std::shared_ptr<const SecretBox> secrets;
  // Most connections this instance opens at once (requests and syncs share them).
  int max_connections = 8;
  // How long a call waits for a free connection, or for a row lock another
  // transaction holds, before it fails with Unavailable, in milliseconds.
  int pool_wait_ms = 5000;
  // How long opening a connection may take before it fails with Unavailable
  // (libpq counts whole seconds, at least 2).
  int connect_timeout_ms = 5000;
  // Longest one statement may run before the server cancels it and the call
  // fails with DeadlineExceeded, in milliseconds.
  int statement_timeout_ms = 10000;
  // As SqliteOptions.
  const Clock* clock = nullptr;
  std::int64_t max_tokens_per_tenant = kMaxTokensPerTenant;
  bool collect_garbage = true;
};

// Errors every method may return besides those listed: Unavailable when the store
// stays busy past busy_timeout_ms or the disk fails (retry later), DeadlineExceeded
// when a statement runs past statement_timeout_ms, Internal on a corrupt file or a
// sealed token that does not open (tampered with, or another key).
class Store {
 public:
  // Opens (creating if needed) and migrates. Fails with FailedPrecondition when the
  // schema on disk is newer than this binary knows, or the file is another
  // application's SQLite database; InvalidArgument when `secrets` is null;
  // Unavailable when the file cannot be opened.
  static Result<std::unique_ptr<Store>> OpenSqlite(const SqliteOptions& options);
  // Connects and migrates (once, under an advisory lock, however many instances
  // start together). FailedPrecondition when the schema is newer than this binary
  // knows or holds another application's tables; InvalidArgument for bad options;
  // Unavailable when the server cannot be reached. Several Stores (processes) may
  // share one database: jobs are claimed with row locks and leases, so each runs
  // once and a token has one running job at a time across all of them.
  static Result<std::unique_ptr<Store>> OpenPostgres(const PostgresOptions& options);
  virtual ~Store() = default;

  // --- tenants -------------------------------------------------------------
  // Inserts the tenant, or updates display_name and intune_licensed of an existing
  // one (its objects and `created` are kept). created = now when 0 on insert.
  virtual Status PutTenant(const Tenant& tenant) = 0;
  virtual Result<Tenant> GetTenant(const std::string& tenant_id) = 0;  // NotFound
  virtual Result<std::vector<Tenant>> ListTenants() = 0;               // ordered by id
  // Removes the tenant and every object of it. NotFound when absent.
  virtual Status RemoveTenant(const std::string& tenant_id) = 0;

  // --- vppTokens (tenant-scoped) --------------------------------------------
  // Assigns id (when empty), created and last_modified. ResourceExhausted past
  // the tenant's token limit; NotFound when the tenant does not exist;
  // AlreadyExists when the tenant already has a token with the given id.
  virtual Result<VppToken> CreateToken(const std::string& tenant_id, VppToken token) = 0;
  virtual Result<VppToken> GetToken(const std::string& tenant_id, const std::string& id) = 0;  // NotFound
  // The query names columns of vpp_tokens (store/query.h); a column of another
  // table is InvalidArgument (the caller validates first, so it is a bug), as are
  // a literal of the wrong type, a filter nested deeper than 100 levels, skip < 0
  // or limit outside 0..100000. Null semantics and ordering are OData's (see
  // store/filter_sql.h); enums order by member name. Items are ordered by
  // order_by, then id.
  virtual Result<Page<VppToken>> ListTokens(const std::string& tenant_id, const ListQuery& query) = 0;
  virtual Result<std::int64_t> CountTokens(const std::string& tenant_id, const std::optional<Expr>& filter) = 0;
  // Read-modify-write in one transaction: loads the token, calls `mutate`, and
  // stores the result (stamping last_modified) unless `mutate` fails, whose error
  // is returned with nothing written. NotFound when absent. `id` and `created`
  // keep their stored values whatever `mutate` does. `mutate` runs while the
  // store's write lock is held: it must be quick and must not call the Store.
  // With `if_version` (the version of an If-Match ETag): a conditional write,
  // Aborted with nothing written unless the stored row_version is
  // `if_version`, checked in the write's own transaction, under its row lock
  // (no other write can come in between). NotFound comes first.
  virtual Result<VppToken> UpdateToken(const std::string& tenant_id, const std::string& id,
                                       const std::function<Status(VppToken&)>& mutate,
                                       std::optional<std::int64_t> if_version) = 0;
  Result<VppToken> UpdateToken(const std::string& tenant_id, const std::string& id,
                               const std::function<Status(VppToken&)>& mutate) {
    return UpdateToken(tenant_id, id, mutate, std::nullopt);
  }
  // NotFound; with `if_version`, Aborted as UpdateToken's.
  virtual Status DeleteToken(const std::string& tenant_id, const std::string& id,
                             std::optional<std::int64_t> if_version) = 0;
  Status DeleteToken(const std::string& tenant_id, const std::string& id) {
    return DeleteToken(tenant_id, id, std::nullopt);
  }
  // Also removes the token's apps, assignments, jobs and staged rows. The
  // assignments vanish from every read at once; their rows are deleted afterwards
  // by the store's background collector (see SqliteOptions::collect_garbage), so
  // the call is O(apps + jobs), not O(assignments).

  // --- apps and licenses (tenant-scoped) ------------------------------------
  // The query names columns of mobile_apps (store/query.h), the platform among
  // them; otherwise as ListTokens.
  virtual Result<Page<MobileApp>> ListApps(const std::string& tenant_id, const ListQuery& query) = 0;
  virtual Result<std::int64_t> CountApps(const std::string& tenant_id, const std::optional<Expr>& filter) = 0;
  virtual Result<MobileApp> GetApp(const std::string& tenant_id, const std::string& app_id) = 0;  // NotFound
  // The assignments of the app's (token, adamId, pricingParam), ordered by
  // (serial_number, client_user_id), `limit` rows from `skip` (limit+1 fetched for has_more).
  virtual Result<Page<LicenseAssignment>> ListAppAssignments(const std::string& tenant_id, const std::string& app_id,
                                                             std::int64_t skip, std::int64_t limit) = 0;
  // Every assignment of a token, in batches of at most `batch` rows (memory bounded),
  // in no promised order. The walk reads the set the token had when it began;
  // FailedPrecondition when a sync replaces that set before the walk ends (walk
  // again), and the walk just ends when the token is deleted meanwhile. NotFound
  // when the token does not exist.
  virtual Status ForEachAssignment(const std::string& tenant_id, const std::string& token_id, std::size_t batch,
                                   const std::function<Status(const std::vector<LicenseAssignment>&)>& on_batch) = 0;
  // The tenant's apps whose bundle id is `bundle_id` (or, when none has it, whose
  // adamId is `bundle_id`), across tokens, ordered by token id.
  virtual Result<std::vector<MobileApp>> FindAppsByBundleId(const std::string& tenant_id,
                                                            const std::string& bundle_id) = 0;
  // The tenant's tokens other than `except_token_id` whose apple_uid is `uid`.
  virtual Result<std::vector<VppToken>> FindTokensByAppleUid(const std::string& tenant_id, const std::string& uid,
                                                             const std::string& except_token_id) = 0;
  // The plaintext sToken of a token (the sync needs it; nothing else does). NotFound.
  virtual Result<std::string> GetTokenSecret(const std::string& tenant_id, const std::string& id) = 0;

  // --- sync jobs: durable, coalesced -----------------------------------------
  struct Enqueued {
    VppToken token;
    bool queued = false;  // false: a job of this kind was already queued or running (coalesced)
  };
  // One transaction: loads the token (NotFound); unless a job of options.kind is
  // already queued or running for it, inserts one and applies `mutate` to the token
  // (e.g. lastSyncStatus=inProgress and a pending tokenActionResults entry), stamping
  // last_modified. If mutate fails nothing is written.
  virtual Result<Enqueued> EnqueueJob(const std::string& tenant_id, const std::string& token_id,
                                      const EnqueueOptions& options,
                                      const std::function<Status(VppToken&)>& mutate) = 0;
  // Across tenants: claims the oldest job (by requested) with not_before <= now that
  // is queued, or running under an expired lease (its worker died), skipping tokens
  // that have another job running under a live lease (one job per token at a time).
  // Sets lease_owner = worker, lease_expires = now + lease, attempts += 1, and the
  // progress fields to 0. nullopt when nothing is claimable.
  virtual Result<std::optional<SyncJob>> ClaimJob(const std::string& worker, Timestamp now,
                                                  std::chrono::milliseconds lease) = 0;
  // Extends the lease and stores the job's progress fields (pages_walked,
  // pages_total, assignments_staged). FailedPrecondition when the job is gone or another worker
  // owns it.
  virtual Status RenewLease(const SyncJob& job, Timestamp lease_expires) = 0;
  // Hands a job back unfinished (shutdown, a store hiccup): lease cleared, not_before
  // set, staged rows dropped. FailedPrecondition when the lease is no longer ours.
  virtual Status ReleaseJob(const SyncJob& job, Timestamp not_before) = 0;
  // Jobs queued or running, all tenants (metrics, tests).
  virtual Result<std::int64_t> CountJobs() = 0;
  // The token's jobs queued or running (at most one per kind), oldest first, with
  // their stored progress; empty when none (a finished job is deleted: its outcome
  // is on the token). A token that does not exist has none.
  virtual Result<std::vector<SyncJob>> FindJobs(const std::string& tenant_id, const std::string& token_id) = 0;

  // --- snapshots ---------------------------------------------------------------
  // Appends rows to the job's staging area in short transactions of its own (the
  // sync stages page by page, so memory stays bounded). Rows are written where
  // they will stay: FinishJob does not copy them again. Duplicates (within the
  // call or of rows this walk staged before) are gone by the time FinishJob
  // applies the set. Readers never see staged rows.
  // InvalidArgument for more than kMaxStagedRowsPerCall rows or a row without an adamId or
  // without exactly one of clientUserId and serialNumber (nothing written);
  // FailedPrecondition when the job's lease is no longer the caller's.
  // Cost: SQLite keeps what one call brings for an app as one sorted run of
  // chunks (store/assignment_chunks.h); an app staged in several
  // calls costs FinishJob a merge of its runs, so callers should hand over whole
  // apps where they can (the sync does). PostgreSQL writes a row per assignment.
  virtual Status StageAssignments(const SyncJob& job, const StagedAssignments& rows) = 0;
  // The same for rows as structs (tests, tools): converted, then staged.
  Status StageAssignments(const SyncJob& job, const std::vector<LicenseAssignment>& rows);
  // Drops the job's staged rows (a walk restarts). O(1): they are collected later.
  virtual Status ClearStaged(const SyncJob& job) = 0;
  // Finishes the job in ONE transaction: checks the lease is still ours
  // (FailedPrecondition otherwise, nothing written); applies `snapshot` when given;
  // applies `mutate` to the token and stamps last_modified; deletes the job and its
  // staged rows. When the token was deleted meanwhile: deletes the job and staging
  // and returns NotFound. Readers see the previous snapshot or the new one.
  // Cost: kReplaceWithStaged repoints the token at the staged set, O(1) whatever
  // its size (the replaced set is collected in the background), after merging
  // the runs of apps staged in several calls (SQLite; in transactions of their
  // own, before the swap); kMergeStaged adds the staged rows to the token's set
  // (SQLite: moves the delta's chunks, O(delta); PostgreSQL: copies rows) and
  // checks the counts per app; both also write the token's apps that changed.
  virtual Result<VppToken> FinishJob(const SyncJob& job, const std::optional<SyncSnapshot>& snapshot,
                                     const std::function<Status(VppToken&)>& mutate) = 0;
  // (tenant id, token id) of tokens with state 'valid', whose last_sync is before
  // `before` and that have no job, oldest last_sync first, at most `limit`.
  virtual Result<std::vector<std::pair<std::string, std::string>>> TokensDueForSync(Timestamp before, int limit) = 0;

  // --- this installation -------------------------------------------------------
  // vppd's identity at Apple (the sync derives the mdmInfo it writes to locations
  // from it), kept in the store so that every instance on one database is the same
  // owner at Apple. Returns the stored id; when none is stored yet, stores `proposed`
  // first and returns it. Atomic: instances starting together on one database all
  // get the one id stored first. InvalidArgument when `proposed` is not a GUID.
  virtual Result<std::string> InstallationId(const std::string& proposed) = 0;
};

}  // namespace vppd::store
