// Internal to store/: what the SQLite and PostgreSQL stores share: the columns of
// vpp_tokens and mobile_apps in the order both bind and read them (and the row
// readers and parameter writers themselves, templates over each store's row and
// statement API), the JSON list columns, limits, the errors whose wording callers
// and tests rely on, and the logic both run alike (a token's read-modify-write, a
// snapshot's app merge, the order and chunks of staged rows, the keyset walk,
// argument checks). One definition, so the two stores cannot drift apart; what
// stays in each store is its SQL, its connection API and its locking.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/base.h"
#include "store/filter_sql.h"
#include "store/store.h"

namespace vppd::store {

constexpr std::int64_t kMaxPageSize = 100000;
// A job's params are a request body (revokeLicenses); Graph bodies are far smaller.
constexpr std::size_t kMaxJobParamsBytes = 1 << 20;
constexpr std::size_t kMaxIdLength = 256;

// VppToken::last_sync (0 = never) and the last_sync column (kNeverSynced = never).
inline Timestamp LastSyncToDisk(Timestamp t) { return t == 0 ? kNeverSynced : t; }
inline Timestamp LastSyncFromDisk(Timestamp t) { return t == kNeverSynced ? 0 : t; }

// The associated data a token's ciphertext is bound to: a sealed value copied to
// another row (or tenant) fails to open instead of yielding someone else's token.
std::string TokenAssociatedData(const std::string& tenant_id, const std::string& id);

// --- the columns of vpp_tokens, in the order every statement binds/reads them ---

// Parameters ?1 = tenant_id, ?2 = id, then ?3... = these, in order.
inline constexpr const char* kTokenDataColumns[] = {
    "organization_name",
    "account_type",
    "apple_id",
    "expiration",
    "last_sync",
    "token_sealed",
    "last_modified",
    "state",
    "action_results",
    "last_sync_status",
    "automatically_update_apps",
    "country_or_region",
    "data_sharing_consent",
    "display_name",
    "location_name",
    "claim_from_external_mdm",
    "role_scope_tag_ids",
    "delivery_protocol",
    "last_app_count",
    "apple_uid",
    "apple_version_id",
    "created",
    "last_full_walk",
    "last_sync_error",
    "row_version",
};
enum TokenCol : int {  // result-column indexes of TokenSelectList(): id, then the data columns but token_sealed
  kId,
  kOrganizationName,
  kAccountType,
  kAppleId,
  kExpiration,
  kLastSync,
  kLastModified,
  kState,
  kActionResults,
  kLastSyncStatus,
  kAutoUpdate,
  kCountry,
  kConsent,
  kDisplayName,
  kLocationName,
  kClaim,
  kRoleScopeTags,
  kDeliveryProtocol,
  kLastAppCount,
  kAppleUid,
  kAppleVersionId,
  kCreated,
  kLastFullWalk,
  kLastSyncError,
  kRowVersion,
  kTokenColCount
};
// Every data column is selected except token_sealed, which only GetTokenSecret reads.
static_assert(std::size(kTokenDataColumns) == kTokenColCount);

// Reads never select token_sealed: a Graph read needs no AES-GCM open, and the
// secret never enters memory where it is not needed.
const std::string& TokenSelectList();

// SQL text both stores build alike but for how a parameter is written: `mark`
// is '$' (PostgreSQL: $1) or '?' (SQLite: ?1).

// The column and the value list of a token INSERT: "tenant_id, id, <kTokenDataColumns>"
// and "$1, $2, ...".
std::pair<std::string, std::string> TokenInsertLists(char mark);
// UPDATE of every data column of the token $2 of tenant $1. A NULL token_sealed
// parameter keeps the stored ciphertext (no renewal).
std::string BuildTokenUpdateSql(char mark);

// --- JSON list columns ----------------------------------------------------------

std::string ActionResultsToJson(const std::vector<TokenActionResult>& results);
// Internal (naming the row, never values) when the text is not of the expected shape.
Result<std::vector<TokenActionResult>> ActionResultsFromJson(const std::string& text, const std::string& id);
std::string StringsToJson(const std::vector<std::string>& strings);
Result<std::vector<std::string>> StringsFromJson(const std::string& text, const std::string& id);

Error TokenNotFound(const std::string& id);
// A conditional write's check: Aborted when `if_version` is set and is
// not `stored` (the token's row_version, read under the write's row lock).
Status CheckTokenVersion(const std::string& id, std::int64_t stored, std::optional<std::int64_t> if_version);
Error TenantNotFound(const std::string& id);
Error AppNotFound(const std::string& id);

// --- rows, whatever the database API ------------------------------------------------
//
// The readers below take a store's view of one result row: `Text(col)`,
// `OptText(col)`, `Int(col)` and `Bool(col)`. The writers hand a statement's
// parameters, in order, to `add`, as std::string_view, const
// std::optional<std::string>& (nullopt: NULL), std::int64_t or bool. Each store
// adapts them to its own API; the order of the columns lives here only.

// A row of "id, display_name, intune_licensed, created" from tenants.
template <class Row>
Tenant ReadTenantRow(const Row& row) {
  return Tenant{row.Text(0), row.Text(1), row.Bool(2), row.Int(3)};
}

// A row of TokenSelectList(). `token` stays empty: see VppToken::token.
template <class Row>
Result<VppToken> ReadTokenRow(const Row& row) {
  VppToken t;
  t.id = row.Text(kId);
  t.organization_name = row.OptText(kOrganizationName);
  t.account_type = row.Text(kAccountType);
  t.apple_id = row.OptText(kAppleId);
  t.expiration = row.Int(kExpiration);
  t.last_sync = LastSyncFromDisk(row.Int(kLastSync));
  t.last_modified = row.Int(kLastModified);
  t.state = row.Text(kState);
  Result<std::vector<TokenActionResult>> results = ActionResultsFromJson(row.Text(kActionResults), t.id);
  if (!results) return Fail(results.error());
  t.action_results = std::move(*results);
  t.last_sync_status = row.Text(kLastSyncStatus);
  t.automatically_update_apps = row.Bool(kAutoUpdate);
  t.country_or_region = row.OptText(kCountry);
  t.data_sharing_consent_granted = row.Bool(kConsent);
  t.display_name = row.OptText(kDisplayName);
  t.location_name = row.OptText(kLocationName);
  t.claim_token_management_from_external_mdm = row.Bool(kClaim);
  Result<std::vector<std::string>> tags = StringsFromJson(row.Text(kRoleScopeTags), t.id);
  if (!tags) return Fail(tags.error());
  t.role_scope_tag_ids = std::move(*tags);
  t.delivery_protocol = row.Text(kDeliveryProtocol);
  t.last_app_count = static_cast<std::int32_t>(row.Int(kLastAppCount));
  t.apple_uid = row.OptText(kAppleUid);
  t.apple_version_id = row.OptText(kAppleVersionId);
  t.created = row.Int(kCreated);
  t.last_full_walk = row.Int(kLastFullWalk);
  t.last_sync_error = row.Text(kLastSyncError);
  t.row_version = row.Int(kRowVersion);
  return t;
}

// The parameters of the token INSERT and UPDATE: tenant_id, id, then
// kTokenDataColumns in order. `sealed` nullopt is NULL, which the UPDATE reads
// as "keep the stored ciphertext".
template <class Add>
void AddTokenParams(const std::string& tenant_id, const VppToken& t, const std::optional<std::string>& sealed,
                    Add&& add) {
  add(std::string_view(tenant_id));
  add(std::string_view(t.id));
  add(t.organization_name);
  add(std::string_view(t.account_type));
  add(t.apple_id);
  add(std::int64_t{t.expiration});
  add(std::int64_t{LastSyncToDisk(t.last_sync)});
  add(sealed);
  add(std::int64_t{t.last_modified});
  add(std::string_view(t.state));
  add(std::string_view(ActionResultsToJson(t.action_results)));
  add(std::string_view(t.last_sync_status));
  add(t.automatically_update_apps);
  add(t.country_or_region);
  add(t.data_sharing_consent_granted);
  add(t.display_name);
  add(t.location_name);
  add(t.claim_token_management_from_external_mdm);
  add(std::string_view(StringsToJson(t.role_scope_tag_ids)));
  add(std::string_view(t.delivery_protocol));
  add(std::int64_t{t.last_app_count});
  add(t.apple_uid);
  add(t.apple_version_id);
  add(std::int64_t{t.created});
  add(std::int64_t{t.last_full_walk});
  add(std::string_view(t.last_sync_error));
  add(std::int64_t{t.row_version});
}

// --- mobile_apps -----------------------------------------------------------------

// The columns of mobile_apps after tenant_id, in the order every statement binds
// (?2...) and reads (0...) them.
inline constexpr const char* kAppColumns[] = {
    "id",
    "token_id",
    "platform",
    "adam_id",
    "pricing_param",
    "product_type",
    "display_name",
    "bundle_id",
    "publisher",
    "total_licenses",
    "used_licenses",
    "device_assignable",
    "revocable",
    "app_store_url",
    "token_organization_name",
    "token_apple_id",
    "token_display_name",
    "token_account_type",
    "created",
    "last_modified",
    "genres",
    "seller",
};

const std::string& AppSelectList();
// A book's genres as mobile_apps.genres holds them (a JSON array of strings), and back;
// text that is not such an array reads as none.
std::string GenresJson(const std::vector<std::string>& genres);
std::vector<std::string> ParseGenres(const std::string& json);
// INSERT of an app, or UPDATE of every column of its stored row when the
// tenant has an app with its id (the row stays: its app assignments, which
// reference it, stay with it): $1 tenant_id, then kAppColumns.
std::string BuildAppUpsertSql(char mark);

// A row of AppSelectList().
template <class Row>
MobileApp ReadAppRow(const Row& row) {
  MobileApp a;
  int n = 0;
  a.id = row.Text(n++);
  a.token_id = row.Text(n++);
  a.platform = row.Text(n++);
  a.adam_id = row.Text(n++);
  a.pricing_param = row.Text(n++);
  a.product_type = row.Text(n++);
  a.display_name = row.Text(n++);
  a.bundle_id = row.Text(n++);
  a.publisher = row.Text(n++);
  a.total_licenses = row.Int(n++);
  a.used_licenses = row.Int(n++);
  a.device_assignable = row.Bool(n++);
  a.revocable = row.Bool(n++);
  a.app_store_url = row.Text(n++);
  a.token_organization_name = row.OptText(n++);
  a.token_apple_id = row.OptText(n++);
  a.token_display_name = row.OptText(n++);
  a.token_account_type = row.Text(n++);
  a.created = row.Int(n++);
  a.last_modified = row.Int(n++);
  a.genres = ParseGenres(row.Text(n++));
  a.seller = row.OptText(n++);
  return a;
}

// The parameters of the app INSERT: tenant_id, then kAppColumns in order.
template <class Add>
void AddAppParams(const std::string& tenant_id, const MobileApp& a, Add&& add) {
  add(std::string_view(tenant_id));
  add(std::string_view(a.id));
  add(std::string_view(a.token_id));
  add(std::string_view(a.platform));
  add(std::string_view(a.adam_id));
  add(std::string_view(a.pricing_param));
  add(std::string_view(a.product_type));
  add(std::string_view(a.display_name));
  add(std::string_view(a.bundle_id));
  add(std::string_view(a.publisher));
  add(std::int64_t{a.total_licenses});
  add(std::int64_t{a.used_licenses});
  add(a.device_assignable);
  add(a.revocable);
  add(std::string_view(a.app_store_url));
  add(a.token_organization_name);
  add(a.token_apple_id);
  add(a.token_display_name);
  add(std::string_view(a.token_account_type));
  add(std::int64_t{a.created});
  add(std::int64_t{a.last_modified});
  add(std::string_view(GenresJson(a.genres)));  // copied by the caller (ExecWithParams)
  add(a.seller);
}

// FinishJob's apps: what to write so that the token's apps become
// `snapshot_apps`, given its apps before the sync (`existing`). A token's
// snapshot holds only its own apps. The same app across syncs keeps its
// createdDateTime, and its lastModifiedDateTime moves (to `now`) only when
// something Graph shows changed; a new app without times gets `now`. An app
// that did not change is not written again: a sync that changed a few counts
// rewrites a few rows, not thousands.
struct AppChanges {
  std::vector<MobileApp> written;        // new or changed, to upsert (BuildAppUpsertSql)
  std::vector<std::string> removed_ids;  // apps gone, to delete (their assignments go with them)
};
AppChanges DiffSnapshotApps(std::vector<MobileApp> existing, const std::vector<MobileApp>& snapshot_apps,
                            const std::string& token_id, Timestamp now);

// `tenant_id = <param> [AND <filter>]`: the WHERE of a tenant's list or count.
template <class Columns>
Result<std::string> TenantWhere(const std::string& tenant_id, const std::optional<Expr>& filter, const Columns& columns,
                                SqlBuilder& builder) {
  std::string where = "tenant_id = " + builder.Param(tenant_id);
  if (filter) {
    Result<std::string> compiled = CompileFilter(*filter, columns, builder);
    if (!compiled) return Fail(compiled.error());
    where += " AND " + *compiled;
  }
  return where;
}

// The SELECT of one page of `table`: `query.limit` rows from `query.skip`, one
// more read to tell has_more. The limit and the offset become `builder`'s next
// parameters.
std::string PageSql(const std::string& select_list, const char* table, const std::string& where,
                    const std::string& order, const ListQuery& query, SqlBuilder& builder);

// Adds one more row to a page of at most `limit` items, which was read with one
// row more than that: false (and has_more set) when the page is already full.
template <class T>
bool RoomOnPage(Page<T>& page, std::int64_t limit) {
  if (static_cast<std::int64_t>(page.items.size()) < limit) return true;
  page.has_more = true;
  return false;
}

// ForEachAssignment's error when a sync replaced the set the walk began with.
Error SetReplacedDuringWalk(const std::string& token_id);

// --- sync_jobs -------------------------------------------------------------------

// Column 0 is the job's integer key; ReadJobRow reads the rest.
constexpr const char* kJobSelectList =
    "key, id, tenant_id, token_id, kind, params, requested, not_before, attempts, lease_owner, lease_expires, "
    "pages_walked, pages_total, assignments_staged";

template <class Row>
SyncJob ReadJobRow(const Row& row) {
  SyncJob j;
  j.id = row.Text(1);
  j.tenant_id = row.Text(2);
  j.token_id = row.Text(3);
  j.kind = row.Text(4);
  j.params = row.Text(5);
  j.requested = row.Int(6);
  j.not_before = row.Int(7);
  j.attempts = static_cast<int>(row.Int(8));
  j.lease_owner = row.Text(9);
  j.lease_expires = row.Int(10);
  j.pages_walked = row.Int(11);
  j.pages_total = row.Int(12);
  j.assignments_staged = row.Int(13);
  return j;
}

// ClaimJob's change to the job it picked: leased to `worker` until `expires`,
// one more attempt, no progress yet. True when it takes over the lease of a
// worker that died (whose staged rows are then garbage).
bool StampClaim(SyncJob& job, const std::string& worker, Timestamp expires);

// Whether a sync changed anything Graph shows of the app (its times aside).
bool SameAppData(const MobileApp& a, const MobileApp& b);

Error LeaseLost(const SyncJob& job, std::string_view why);

// Most rows one StageAssignments call or one ForEachAssignment batch may carry: a
// page of Apple's is 1,000; this bounds a transaction's size and memory.
constexpr std::size_t kMaxBatchRows = kMaxStagedRowsPerCall;

// --- tokens -----------------------------------------------------------------------

// CreateToken's work before its transaction: a new id when `token` has none (its
// length checked), both times stamped, and the sToken sealed (pure CPU, so before
// any lock). Returns the ciphertext.
Result<std::string> PrepareNewToken(const std::string& tenant_id, VppToken& token, const Clock& clock,
                                    const SecretBox& secrets);
// CreateToken's checks in its transaction: `exists`, a token of that id in the
// tenant (AlreadyExists); `count`, the tenant's tokens (ResourceExhausted at
// `max_tokens`).
Status CheckTokenRoom(const std::string& id, bool exists, std::int64_t count, std::int64_t max_tokens);

// A token after the read-modify-write of UpdateToken, EnqueueJob and FinishJob,
// and the ciphertext to store: nullopt keeps the stored one (never opened).
struct MutatedToken {
  VppToken token;
  std::optional<std::string> sealed;
};
// Applies `mutate` (may be empty) to a copy of `stored`, keeps its id and
// created time, stamps last_modified, and re-seals only when `mutate` set a new
// plaintext (which is then cleared from the token). `mutate`'s error as is.
Result<MutatedToken> MutateStoredToken(const std::string& tenant_id, const VppToken& stored,
                                       const std::function<Status(VppToken&)>& mutate, const Clock& clock,
                                       const SecretBox& secrets);
// GetTokenSecret's open of `sealed`. Internal, naming the row, never the value,
// when it does not open (tampered with, or sealed under another key).
Result<std::string> OpenTokenSecret(const std::string& tenant_id, const std::string& id, const std::string& sealed,
                                    const SecretBox& secrets);

// --- argument checks, the same words in both stores ---------------------------------

// The vppd_settings row that holds Store::InstallationId.
inline constexpr const char* kInstallationIdSetting = "installation_id";
// InvalidArgument unless `proposed` is a GUID (Store::InstallationId's argument).
Status CheckProposedInstallationId(const std::string& proposed);
// The stored value, checked: Internal when it is not a GUID (written by hand).
Result<std::string> CheckedStoredInstallationId(std::string stored);
// InvalidArgument unless 1..kMaxIdLength characters.
Status CheckTenantId(const std::string& id);
// EnqueueJob's: a kind of 1..kMaxIdLength characters, params of at most kMaxJobParamsBytes.
Status CheckEnqueueOptions(const EnqueueOptions& options);
// ClaimJob's: a worker name of 1..kMaxIdLength characters, a positive lease.
Status CheckClaim(const std::string& worker, std::chrono::milliseconds lease);
// ForEachAssignment's: a batch of 1..kMaxBatchRows rows.
Status CheckBatchSize(std::size_t batch);

// Open's checks of what both stores' options have: InvalidArgument for no
// SecretBox, an empty `location` (`what`: "database path", "PostgreSQL URL"), a
// timeout <= 0, or `connections` outside 1..`max_connections`.
Status CheckOpenOptions(const SecretBox* secrets, std::string_view location, std::string_view what,
                        std::initializer_list<int> timeouts_ms, std::string_view connections_name, int connections,
                        int max_connections);
// InvalidArgument for a negative skip or a limit outside 0..kMaxPageSize.
Status CheckPaging(std::int64_t skip, std::int64_t limit);
// StageAssignments' checks: at most kMaxBatchRows rows, each with an adamId and
// exactly one of clientUserId and serialNumber. InvalidArgument otherwise.
Status CheckStagedRows(const StagedAssignments& rows);
// The rows of `rows` in (adam_id, pricing_param, serial_number, client_user_id)
// order (chunks::StagingOrder), duplicates kept, as indices; `rows` must have
// passed CheckStagedRows.
std::vector<std::uint32_t> SortedRows(const StagedAssignments& rows);
// The delta check after a merge: every app's (adamId, pricingParam) must have as
// many stored assignments (`stored`, per asset) as Apple counts (used_licenses).
// FailedPrecondition "delta inconsistent: ..." naming the first few differences.
Status CheckDeltaCounts(const std::map<std::pair<std::string, std::string>, std::int64_t>& stored,
                        const std::vector<MobileApp>& apps);

}  // namespace vppd::store
