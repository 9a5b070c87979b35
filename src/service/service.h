// The service layer: what vppd does, independent of HTTP and JSON.
//
// Handlers in graph/ parse a request into a Principal and plain values, call one
// function here, and serialise what comes back. Everything here is unit-testable
// without sockets; it reaches the world only through store::Store and Clock.
//
//   service::VppTokens tokens(store, options);
//   Result<store::VppToken> t = tokens.Get(principal, id);   // NotFound, PermissionDenied
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/base.h"
#include "base/principal.h"
#include "store/store.h"

namespace vppd::service {

// The caller, as auth/ established it from a verified token (base/principal.h).
using Principal = vppd::Principal;

// Every operation that needs a permission: one row each in permissions.cc.
enum class Operation {
  kReadTokens,  // list, get, $count
  kCreateToken,
  kUpdateToken,
  kDeleteToken,
  kSyncLicenses,
  kRevokeLicenses,
  kSyncLicenseCounts,
  kGetLicensesForApp,
  kReadMobileApps,
  kGetExpiringVppTokenCount,  // depOnboardingSettings/getExpiringVppTokenCount
};

// seed: the seed page's table (delegated work/school only). current: the newest
// published tables (adds DeviceManagementApps.*, DeviceManagementConfiguration.*
// where listed, and application permissions). See permissions.cc.
enum class PermissionProfile { kSeed, kCurrent };

Result<PermissionProfile> ParsePermissionProfile(std::string_view name);

// PermissionDenied naming what is missing, or saying that
// the account type is not supported. Pure function.
Status Authorize(const Principal& caller, Operation op, PermissionProfile profile);

// Client-settable vppToken properties present in a create or PATCH body. An absent
// std::optional means "not sent"; an inner nullopt means "sent as null".
struct TokenChanges {
  std::optional<std::string> token;  // A new sToken: create, or renewal by PATCH.
  std::optional<std::string> account_type;
  std::optional<std::optional<std::string>> apple_id;
  std::optional<std::optional<std::string>> country_or_region;
  std::optional<std::optional<std::string>> display_name;
  std::optional<bool> automatically_update_apps;
  std::optional<bool> data_sharing_consent_granted;
  std::optional<bool> claim_token_management_from_external_mdm;
  std::optional<std::vector<std::string>> role_scope_tag_ids;
  std::optional<std::string> delivery_protocol;
};

struct Options {
  PermissionProfile profile = PermissionProfile::kSeed;
  const Clock* clock = nullptr;  // nullptr = Clock::Real()
  // Called after a job was queued (the sync engine's Wake), so it starts at once.
  std::function<void()> on_job_queued;
  int keep_action_results = 20;
  std::chrono::milliseconds licensed_ttl{1000};  // see Gate
};

// One element of getLicensesForApp: the app's licenses under one token.
struct LicenseSummary {
  std::string token_id;
  std::optional<std::string> apple_id;
  std::optional<std::string> organization_name;
  std::int64_t available = 0;
  std::int64_t used = 0;
};

// Admission of a caller: the permission for the operation, then a registered tenant
// with an active Intune license (PermissionDenied otherwise). A tenant found licensed
// is remembered for `licensed_ttl`, so a read costs no tenant lookup; removing a
// tenant or its license takes effect within that time. Thread-safe.
class Gate {
 public:
  Gate(store::Store& store, const Options& options);
  Status Admit(const Principal& caller, Operation op);

 private:
  store::Store& store_;
  PermissionProfile profile_;
  const Clock* clock_;
  Timestamp ttl_micros_;
  std::mutex mu_;
  std::unordered_map<std::string, Timestamp> licensed_until_;
};

// The vppToken resource. Thread-safe.
// Every method first authorises `caller` for its operation and checks that the
// caller's tenant is registered and has an active Intune license (PermissionDenied
// otherwise), then works only inside that tenant: ids of other tenants are NotFound.
class VppTokens {
 public:
  VppTokens(store::Store& store, Options options);

  // `token` is required and decoded (apple::DecodeSToken): organizationName and
  // expirationDateTime come from it; state is `expired` when already past, else
  // `valid`. InvalidArgument (target "token") for a missing or malformed sToken;
  // ResourceExhausted past the per-tenant limit.
  Result<store::VppToken> Create(const Principal& caller, TokenChanges changes);
  Result<store::VppToken> Get(const Principal& caller, const std::string& id);
  Result<store::Page<store::VppToken>> List(const Principal& caller, const store::ListQuery& query);
  Result<std::int64_t> Count(const Principal& caller, const std::optional<store::Expr>& filter);
  // Graph's getExpiringVppTokenCount: how many of the caller's tokens expire strictly
  // before `before` (already expired ones included).
  Result<std::int64_t> CountExpiringBefore(const Principal& caller, Timestamp before);
  // Applies the changes; a new `token` is a renewal, decoded like on create.
  // `if_version` (an If-Match ETag's row_version): Aborted, nothing written, when
  // the token is no longer at that version (Graph: 412). NotFound comes first.
  Result<store::VppToken> Update(const Principal& caller, const std::string& id, TokenChanges changes,
                                 std::optional<std::int64_t> if_version = std::nullopt);
  Status Delete(const Principal& caller, const std::string& id, std::optional<std::int64_t> if_version = std::nullopt);

  // The seed's action: queues a sync of the token (durable, coalesced: while one is
  // queued or running another request queues nothing) and returns the token as it
  // is now — lastSyncStatus inProgress. Never waits for Apple. NotFound.
  Result<store::VppToken> SyncLicenses(const Principal& caller, const std::string& id);
  // Queues the revocation of the token's licenses (then a resync). NotFound.
  Status RevokeLicenses(const Principal& caller, const std::string& id, bool notify_managed_devices,
                        std::optional<bool> revoke_untracked_licenses);
  // Queues a refresh of the license counts of every valid token of the tenant.
  Status SyncLicenseCounts(const Principal& caller);
  // Per token holding the app (by bundle id, or adamId when the bundle id is unknown).
  Result<std::vector<LicenseSummary>> GetLicensesForApp(const Principal& caller, const std::string& bundle_id);

  // The permission table every method checks with (for callers that check a
  // permission before they call, as graph/ does when it routes).
  PermissionProfile permission_profile() const { return options_.profile; }

 private:
  Timestamp Now() const { return clock_->Now(); }
  // Queues the sync that follows a create or a renewal; returns the token as it is then.
  Result<store::VppToken> QueueFirstSync(const Principal& caller, store::VppToken token);

  store::Store& store_;
  Gate gate_;
  Options options_;
  const Clock* clock_;
};

// The apps that syncs found, as Graph's mobileApps show them. Same admission rules
// as VppTokens (permission, tenant, license).
class MobileApps {
 public:
  MobileApps(store::Store& store, Options options);
  Result<store::Page<store::MobileApp>> List(const Principal& caller, const store::ListQuery& query);
  Result<std::int64_t> Count(const Principal& caller, const std::optional<store::Expr>& filter);
  Result<store::MobileApp> Get(const Principal& caller, const std::string& id);  // NotFound
  Result<store::Page<store::LicenseAssignment>> AssignedLicenses(const Principal& caller, const std::string& app_id,
                                                                 std::int64_t skip, std::int64_t limit);

 private:
  store::Store& store_;
  Options options_;
  Gate gate_;
};

// Tenant records, for the `vppd tenant` commands and dev mode.
class Tenants {
 public:
  explicit Tenants(store::Store& store) : store_(store) {}
  // Adds or replaces. InvalidArgument when `id` is not a GUID.
  Status Put(const std::string& id, const std::string& display_name, bool intune_licensed);
  Result<std::vector<store::Tenant>> List();
  Status SetLicense(const std::string& id, bool intune_licensed);  // NotFound
  Status Remove(const std::string& id);                            // NotFound

 private:
  store::Store& store_;
};

}  // namespace vppd::service

namespace vppd::service {

// Request-rate limits modelled on Intune's published Graph throttling: per tenant and
// per application within a tenant, separately for writes and for all requests, over
// a fixed window. State is in memory, per instance. Thread-safe.
struct ThrottleLimits {
  std::chrono::seconds window{20};
  int tenant_writes = 200;
  int app_writes = 100;  // per application per tenant
  int tenant_requests = 2000;
  int app_requests = 1000;  // per application per tenant
};

class Throttle {
 public:
  explicit Throttle(ThrottleLimits limits, const Clock* clock = nullptr);
  ~Throttle();
  // Counts one request. ResourceExhausted (with retry_after_seconds until the
  // window resets) when a limit is exceeded; a
  // refused request is not counted.
  Status Admit(const std::string& tenant_id, const std::string& app_id, bool is_write);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vppd::service
