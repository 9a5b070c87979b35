// Store: every durable fact vppd keeps, behind one interface.
//
// SQLite (embedded, default) implements it here; PostgreSQL (several instances)
// implements the same interface later without changing callers. Every operation
// on tenant data takes the tenant id and scopes its SQL by it, so no caller can
// forget tenant isolation: an id of another tenant is simply NotFound.
//
// Thread-safety: a Store is shared by all request and sync threads; every method
// may be called concurrently. Each method is one transaction. The SQLite store
// has one writer connection (writes are serialised by a mutex, then SQLite's
// BEGIN IMMEDIATE) and a pool of reader connections; thanks to WAL, readers never
// wait for the writer and always see a committed snapshot.
//
// Secrets: VppToken::token holds the plaintext sToken in memory only; the store
// seals it with the SecretBox it was opened with before it touches disk.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
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
  Timestamp last_sync = 0;  // 0 = never (rendered as 0001-01-01T00:00:00Z).
  std::string token;        // Plaintext sToken (sealed at rest).
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

  // Not on the Graph surface.
  std::optional<std::string> apple_uid;         // Apple's location uId, once synced.
  std::optional<std::string> apple_version_id;  // versionId of the last full assignments walk.
  Timestamp created = 0;
};

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
  // crash) never loses it with either setting. true (synchronous=FULL) also
  // fsyncs the WAL at every commit, so committed writes survive power loss and OS
  // crashes too; false (NORMAL) fsyncs only at checkpoints and may lose the last
  // commits on power loss. vppd's writes are few (token edits, one per sync), so
  // the default pays one fsync per write for full durability.
  bool synchronous_full = true;
  // Time source for created/last_modified; nullptr means Clock::Real(). Must outlive the Store.
  const Clock* clock = nullptr;
  // The per-tenant token limit; tests lower it. Normally kMaxTokensPerTenant.
  std::int64_t max_tokens_per_tenant = kMaxTokensPerTenant;
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
  // Properties named in the query are Graph vppToken property names; an unknown
  // one is InvalidArgument (the caller validates first, so it is a bug), as are
  // `token` (encrypted), the collections, a literal of the wrong type, a filter
  // nested deeper than 100 levels, skip < 0 or limit outside 0..100000. Null
  // semantics and ordering are OData's (see store/filter_sql.h); enums order by
  // member name. Items are ordered by order_by, then id.
  virtual Result<Page<VppToken>> ListTokens(const std::string& tenant_id, const ListQuery& query) = 0;
  virtual Result<std::int64_t> CountTokens(const std::string& tenant_id, const std::optional<Expr>& filter) = 0;
  // Read-modify-write in one transaction: loads the token, calls `mutate`, and
  // stores the result (stamping last_modified) unless `mutate` fails, whose error
  // is returned with nothing written. NotFound when absent. `id` and `created`
  // keep their stored values whatever `mutate` does. `mutate` runs while the
  // store's write lock is held: it must be quick and must not call the Store.
  virtual Result<VppToken> UpdateToken(const std::string& tenant_id, const std::string& id,
                                       const std::function<Status(VppToken&)>& mutate) = 0;
  virtual Status DeleteToken(const std::string& tenant_id, const std::string& id) = 0;  // NotFound
};

}  // namespace vppd::store
