// Internal to store/: what the SQLite and PostgreSQL stores share: the columns of
// vpp_tokens and mobile_apps in the order both bind and read them, the JSON list
// columns, limits, and the errors whose wording callers and tests rely on. One
// definition, so the two stores cannot drift apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/base.h"
#include "store/store.h"

namespace vppd::store {

// 0001-01-01T00:00:00Z in microseconds: how Graph renders "never synced". The
// store keeps lastSyncDateTime in this form on disk (VppToken::last_sync uses 0),
// so filters and $orderby on it agree with what clients see.
constexpr Timestamp kGraphMinTime = -62135596800LL * 1000000;

constexpr std::int64_t kMaxPageSize = 100000;
// A job's params are a request body (revokeLicenses); Graph bodies are far smaller.
constexpr std::size_t kMaxJobParamsBytes = 1 << 20;
constexpr std::size_t kMaxIdLength = 256;

inline Timestamp LastSyncToDisk(Timestamp t) { return t == 0 ? kGraphMinTime : t; }
inline Timestamp LastSyncFromDisk(Timestamp t) { return t == kGraphMinTime ? 0 : t; }

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
  kTokenColCount
};
// Every data column is selected except token_sealed, which only GetTokenSecret reads.
static_assert(std::size(kTokenDataColumns) == kTokenColCount);

// Reads never select token_sealed: a Graph read needs no AES-GCM open, and the
// secret never enters memory where it is not needed.
const std::string& TokenSelectList();

// --- JSON list columns ----------------------------------------------------------

std::string ActionResultsToJson(const std::vector<TokenActionResult>& results);
// Internal (naming the row, never values) when the text is not of the expected shape.
Result<std::vector<TokenActionResult>> ActionResultsFromJson(const std::string& text, const std::string& id);
std::string StringsToJson(const std::vector<std::string>& strings);
Result<std::vector<std::string>> StringsFromJson(const std::string& text, const std::string& id);

Error TokenNotFound(const std::string& id);
Error TenantNotFound(const std::string& id);
Error AppNotFound(const std::string& id);

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
};

const std::string& AppSelectList();

// Whether a sync changed anything Graph shows of the app (its times aside).
bool SameAppData(const MobileApp& a, const MobileApp& b);

Error LeaseLost(const SyncJob& job, std::string_view why);

// Most rows one StageAssignments call or one ForEachAssignment batch may carry: a
// page of Apple's is 1,000; this bounds a transaction's size and memory.
constexpr std::size_t kMaxBatchRows = 100000;

// InvalidArgument for a negative skip or a limit outside 0..kMaxPageSize.
Status CheckPaging(std::int64_t skip, std::int64_t limit);
// StageAssignments' checks: at most kMaxBatchRows rows, each with an adamId and
// exactly one of clientUserId and serialNumber. InvalidArgument otherwise.
Status CheckStagedRows(const std::vector<LicenseAssignment>& rows);
// The delta check after a merge: every app's (adamId, pricingParam) must have as
// many stored assignments (`stored`, per asset) as Apple counts (used_licenses).
// FailedPrecondition "delta inconsistent: ..." naming the first few differences.
Status CheckDeltaCounts(const std::map<std::pair<std::string, std::string>, std::int64_t>& stored,
                        const std::vector<MobileApp>& apps);

}  // namespace vppd::store
