// Internal to sync/: the pieces every job kind shares.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "apple/client.h"
#include "store/store.h"
#include "sync/jobs.h"

namespace vppd::sync {

// A stable GUID-shaped id for the app of (token, adamId, pricingParam, platform), so
// an app keeps its id across syncs (and Graph clients can keep links to it).
std::string MobileAppId(const std::string& token_id, const std::string& adam_id, const std::string& pricing_param,
                        const std::string& platform);

// The Apple client for the job's location, configured from the engine options.
apple::AppleResult<std::unique_ptr<apple::Client>> MakeClient(const JobContext& ctx, const std::string& stoken);

// Ends the job as failed: the token's state becomes `state` (when not empty),
// lastSyncStatus `failed`, the job kind's action entry `failed`, and `reason` is kept
// in last_sync_error. The job is deleted. Returns an error carrying the reason.
Status FinishFailed(JobContext& ctx, const std::string& kind, const std::string& state, const std::string& reason);

// The token is gone (NotFound) or unreadable: finish the job without touching the token.
Status FinishWithoutSnapshot(JobContext& ctx, const store::VppToken* token, const Error& why);

// Hands the job back to the queue to be retried shortly (shutdown, store trouble).
Status ReleaseForRetry(JobContext& ctx, const Error& why);

// After a store error mid-job: if the lease was lost another worker owns the job and
// this one just stops; otherwise hand it back.
Status ReleaseOrAbandon(JobContext& ctx, const Error& why);

// Why a sync ended without a new snapshot: the token's new state (empty = unchanged)
// and the reason kept on the token and logged.
struct SyncFailure {
  std::string state;
  std::string reason;
  std::optional<Error> store_error = std::nullopt;  // the store failed (or the token is gone): not the token's fault
};

// A token ready for work at Apple: not expired, location identified, ownership ours.
struct Prepared {
  store::VppToken token;
  std::unique_ptr<apple::Client> client;
  apple::ClientConfig config;
};

// What the walks gathered.
struct Gathered {
  std::vector<store::MobileApp> apps;
  std::int64_t app_assets = 0;  // lastAppCount: App assets (an app on two platforms counts once; books never)
  std::string assets_version;
  bool version_changed = false;  // versionId moved during the walk: walk again
  // Between WalkAssetsOnly and BuildApps: the App and Book assets, and the names and
  // bundle ids known for them (from the cache, then the lookup).
  std::vector<apple::Asset> app_asset_list;
  std::map<std::string, apple::AppMetadata> names;
  std::vector<std::string> unnamed;  // adamIds the cache did not know
};

SyncFailure FromAppleError(const apple::AppleError& e);

// Registers the location's notification endpoint at Apple (client/config) when
// options.notification_url is set and Apple does not hold this endpoint's URL,
// a bearer whose hash is the stored one and the wanted types — or the token was
// renewed (a new sToken rotates the bearer). Only for a location vppd owns (Prepare
// calls it once ownership is ours). A failure is logged, not the sync's: the next
// sync tries again. (notification_registration.cc)
void EnsureNotificationRegistration(JobContext& ctx, apple::Client& client, const store::VppToken& token,
                                    const apple::ClientConfig& config);

// True when Apple tells the job's token of notifications of `type` (e.g.
// ASSET_MANAGEMENT: how its events end; USER_ASSOCIATED: an invitation
// accepted): its endpoint is registered as these options say, so a wait for
// them needs no polling. (notification_registration.cc)
bool NotifiedOf(JobContext& ctx, const char* type);

// Steps 1–2 of every job kind: the token is loaded (its action entry set active), not
// expired, its location identified (uId unchanged, not a duplicate of an older
// token's) and managed by us (mdmInfo written when absent, or taken over when the
// token allows it).
tl::expected<Prepared, SyncFailure> Prepare(JobContext& ctx, const std::string& kind);

// Ends the job after a failure: recorded on the token (state, lastSyncStatus,
// action entry, reason), or — for store trouble — handed back or dropped.
Status EndWith(JobContext& ctx, const std::string& kind, const SyncFailure& failure);

// Walks every asset of the location and builds the token's apps (App assets on
// each platform), with names and bundle ids from the metadata lookup (through
// ctx.metadata): WalkAssetsOnly, LookUpNames and BuildApps in a row.
apple::AppleResult<Gathered> WalkAssets(JobContext& ctx, apple::Client& client, const store::VppToken& token,
                                        const std::string& country, Timestamp now);

// The parts, for a sync that looks names up while it walks the assignments (the
// lookup is another Apple service than the location's API, so it does not
// count against the location's 5 page requests in flight).
// The walk, and the names the cache knows.
apple::AppleResult<Gathered> WalkAssetsOnly(JobContext& ctx, apple::Client& client, Timestamp now);
// Asks Apple for the names the cache did not know (remembered there); a failed
// lookup is not a failed sync: those apps are listed by adamId.
void LookUpNames(JobContext& ctx, apple::Client& client, const store::VppToken& token, Gathered& g, Timestamp now);
void BuildApps(const store::VppToken& token, const std::string& country, Timestamp now, Gathered& g);

// What ReconcileAppleUsers leaves (apple_users.cc).
struct AppleUsersPass {
  std::map<std::string, store::AppleUser> by_client_user_id;  // as they stand after the pass
  std::int64_t created = 0, retired = 0, waiting = 0 /*Registered*/, failed = 0;
  bool events_in_flight = false;  // the job must come back (as device events do)
};
// Registers an Apple user for each of `wanted_user_ids` (directory user ids) that has none (users/create in
// chunks of maxUsers), retires those vppd registered whose directory user no longer exists (unless
// options.reclaim is never), settles user events (GET /status, or USER_MANAGEMENT notifications), and
// refreshes statuses from GET /users (sinceVersionId). Apple calls only when something is to be done.
//
// clientUserId = the directory user's id, email = its mail, else its userPrincipalName. A user Apple
// refused (status failed, error_* say why, e.g. 9641) is not sent again until its email changes. A
// retired user wanted again is registered again. The users are written before each request and the
// event recorded once Apple accepted it; rows left without an event (a crash, Apple unreachable) are
// sent again by the next pass, and events_in_flight is then true. Errors: the store's, and Apple's
// (AppleError::ToError) other than a request Apple refused outright (those users fail).
Result<AppleUsersPass> ReconcileAppleUsers(JobContext& ctx, apple::Client& client, const store::VppToken& token,
                                           const std::set<std::string>& wanted_user_ids);

// Lower-cased country for store URLs: the admin's countryOrRegion, else Apple's.
std::string StoreCountry(const store::VppToken& token, const apple::ClientConfig& config);

// The reconcile job's shared steps (reconcile.cc), for its devices' and people's parts.
//
// The token's apps and books, by id.
Result<std::map<std::string, store::MobileApp>> TokenApps(JobContext& ctx, const std::string& token_id);
// Sends one asset's licences to Apple (associate or disassociate), keyed by the
// Row's key (store::DeviceLicense: serial numbers; store::UserLicense:
// clientUserIds), in chunks of `max_per_request`. Each event Apple accepts is
// recorded at once with its keys and `cause` (first polled `first_poll` later); a
// chunk Apple refuses outright (a validation error) is recorded per key as failed
// (an associate) or still granted (a disassociate), with Apple's error. Apple's
// first other error ends the sends and is returned.
template <class Row>
std::optional<apple::AppleError> SendLicences(JobContext& ctx, apple::Client& client, int max_per_request,
                                              const std::pair<std::string, std::string>& asset,
                                              const std::vector<std::string>& keys, bool associate,
                                              const std::string& cause, Timestamp first_poll);

}  // namespace vppd::sync
