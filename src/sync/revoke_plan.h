// Internal to sync/: what the revokeAppLicenses job (revoke_app_licenses.cc)
// decides for one revoke, as pure functions of what it read, so every rule is
// unit-tested without Apple or a store.
//
//   RevokeTargets t = RevokeTargetsOf(revoke, held_at_sync, device_rows, user_rows, held_now);
//   // t.client_user_ids, t.serial_numbers → /assets/disassociate of the revoke's asset
//   RevokeFailures f = FailuresOf(event_status, serials_sent, client_user_ids_sent);
//   auto devices_now = ReleasedRows(device_rows, adam, pricing, t.serial_numbers, f.serials, event_id);
//   auto people_now = ReleasedRows(user_rows, adam, pricing, t.client_user_ids, f.client_user_ids, event_id);
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "apple/client.h"
#include "store/store.h"

namespace vppd::sync {

// store::AppRevoke::action_name values.
inline constexpr char kRevokeAllLicensesAction[] = "revokeAllLicenses";
inline constexpr char kRevokeUserLicenseAction[] = "revokeUserLicense";
inline constexpr char kRevokeDeviceLicenseAction[] = "revokeDeviceLicense";
inline constexpr char kRevokeAppleVppLicensesAction[] = "revokeAppleVppLicenses";

// Who one revoke disassociates at Apple, each once, sorted.
struct RevokeTargets {
  std::vector<std::string> client_user_ids;
  std::vector<std::string> serial_numbers;
};

// revokeUserLicense: the user's clientUserId (the directory user's id);
// revokeDeviceLicense, revokeAppleVppLicenses: the device's serial number, as
// recorded when asked; revokeAllLicenses: every holder of the asset the last sync
// saw (`held_at_sync`), every device and every person vppd granted it to since
// (`device_rows`, `user_rows` granted, pending or reclaimPending) and, with
// revoke_untracked, every holder Apple shows now (`held_now`). Rows and holdings
// of other assets are ignored.
RevokeTargets RevokeTargetsOf(const store::AppRevoke& revoke, const std::vector<store::LicenseAssignment>& held_at_sync,
                              const std::vector<store::DeviceLicense>& device_rows,
                              const std::vector<store::UserLicense>& user_rows,
                              const std::vector<store::LicenseAssignment>& held_now);

// What Apple's status of a disassociate says failed.
struct RevokeFailures {
  std::int64_t count = 0;                 // licences not revoked
  std::set<std::string> serials;          // the serial numbers among them
  std::set<std::string> client_user_ids;  // the clientUserIds among them
  std::string first_error;                // "Apple error N: message" of the first failure
};

// Each failure naming targets fails those; one naming none fails the event's
// every target (`serials` and `client_user_ids` sent) when nothing completed,
// else the difference Apple counts. "Not associated" (9619) is no failure: the
// licence is gone.
RevokeFailures FailuresOf(const apple::EventStatus& status, const std::vector<std::string>& serials,
                          const std::vector<std::string>& client_user_ids);

// The licence rows a disassociate of `disassociated` (serial numbers for device
// rows, clientUserIds for user rows; of the asset `adam_id`, `pricing_param`)
// leaves, for those not in `failed`: vppd's granted (or reclaimPending) rows
// become released with cause "revoked" and `event_id`, and a holder vppd has no
// row for (a licence it never granted) gets such a row, so that until a sync no
// longer shows the licence the reconcile counts it free and a second revoke finds
// it gone. A pending row (its associate still in flight) is left to its own
// event, and so is a failed one.
std::vector<store::DeviceLicense> ReleasedRows(const std::vector<store::DeviceLicense>& rows,
                                               const std::string& adam_id, const std::string& pricing_param,
                                               const std::vector<std::string>& disassociated,
                                               const std::set<std::string>& failed, const std::string& event_id);
std::vector<store::UserLicense> ReleasedRows(const std::vector<store::UserLicense>& rows, const std::string& adam_id,
                                             const std::string& pricing_param,
                                             const std::vector<std::string>& disassociated,
                                             const std::set<std::string>& failed, const std::string& event_id);

// vppTokenActionFailureReason of a token a job could not work on (SyncFailure's state).
std::string FailureReasonOf(const std::string& token_state);

}  // namespace vppd::sync
