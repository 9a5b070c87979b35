// The sync engine: durable background work on vppTokens against Apple.
//
// Jobs are rows in the store (store::SyncJob), queued by the service in the same
// transaction that sets `lastSyncStatus=inProgress`. Workers claim them with a
// lease that a keeper thread renews while they run; a job whose worker (or whole
// process) died is claimed again when its lease expires, so every accepted sync
// completes even across `kill -9`. One job per token runs at a time.
//
//   sync::Engine engine(store, options);
//   engine.Start();          // worker threads, lease keeper, daily scheduler
//   ...                      // service::VppTokens enqueues; engine.Wake() shortens the wait
//   engine.Stop();           // lets running jobs finish (or hands them back), joins
//
// The sync of one token (RunSyncLicenses in sync_licenses.cc) follows issue #5:
// expiry check, client config and ownership (mdmInfo), duplicate locations, full or
// incremental walks with restart on a versionId change, and one transaction that
// swaps in the new snapshot.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apple/client.h"
#include "base/base.h"
#include "store/store.h"

namespace vppd::sync {

// Makes the Apple client of one location (tests inject faults through the simulator,
// or a different factory).
using ClientFactory = std::function<apple::AppleResult<std::unique_ptr<apple::Client>>(apple::ClientOptions)>;

// What the reconcile job does besides Apple's limits (EngineOptions::reconcile).
struct ReconcileOptions {
  bool reclaim = true;  // assign.reclaim: always (true) | never (false)
  // assign.max_reclaim_fraction: reclaims caused by directory changes in one pass,
  // per app, at most this share of the licences vppd granted for it (at least
  // kReclaimFloor); beyond needs a forced run.
  double max_reclaim_fraction = 0.2;
};
inline constexpr std::int64_t kReclaimFloor = 10;

struct EngineOptions {
  int workers = 2;
  std::chrono::milliseconds lease{30'000};         // renewed every lease/3 while a job runs
  std::chrono::milliseconds poll_interval{1'000};  // idle workers look for jobs this often (other instances may queue)
  // A running job's progress (pages walked, rows staged) is stored at most this
  // often, and only when it moved (with a lease renewal: one small write).
  std::chrono::milliseconds progress_interval{1'000};
  std::string apple_url = "https://vpp.itunes.apple.com/mdm/v2";
  // Identifies this installation at Apple (mdmInfo.id is derived from it and the tenant).
  std::string installation_id;
  std::chrono::hours full_walk_interval{24 * 7};    // a full assignments walk at least this often
  std::chrono::seconds auto_sync_interval{86'400};  // every valid token synced this often; 0 disables
  int max_walk_restarts = 3;                        // versionId changed mid-walk this many times → the sync fails
  // A walk's assignments are staged this many at a time (at most 100,000): the
  // store keeps what one call brings for an app as one sorted run, and merges an
  // app's runs when the sync finishes, so larger calls mean fewer runs (and less
  // to merge when Apple's pages are not grouped by asset) at the cost of memory
  // (~50 bytes a row, twice: one call staging, the next queued) and of the last
  // call's wait after the walk's last page.
  std::size_t stage_rows = 50'000;
  int keep_action_results = 20;  // tokenActionResults entries kept per token
  // App names and bundle ids from Apple's lookup are reused this long (all
  // tokens); 0 looks them up at every sync.
  std::chrono::seconds metadata_ttl{86'400};
  // Event polling for revokeLicenses (Apple asks for ≥ 30 s between polls).
  std::chrono::milliseconds event_poll_interval{30'000};
  std::chrono::milliseconds event_max_wait{600'000};
  // A token whose notification endpoint is registered hears how its events end
  // from Apple's ASSET_MANAGEMENT notifications: the reconcile job polls an
  // event's /status only when none said so within this time of its submission
  // (Apple: fall back to /status after 5 minutes).
  std::chrono::milliseconds event_notification_wait{300'000};
  ReconcileOptions reconcile;
  // A syncLicenses (incremental: assets and the assignments changed since the
  // last versionId) of every valid token this often, so that what a lost
  // notification would have said shows within it; 0 (here) disables, vppd serve
  // sets sync.incremental_interval_seconds (hourly). The daily auto_sync_interval stays.
  std::chrono::seconds incremental_interval{0};
  // Apple's notifications (issue 16): vppd's public base URL ("https://vppd.example.com");
  // each location registers <notification_url>/apple/notifications/<key>. Empty: none registered.
  std::string notification_url;
  std::vector<std::string> notification_types = {"ASSET_COUNT", "ASSET_MANAGEMENT", "USER_MANAGEMENT",
                                                 "USER_ASSOCIATED"};
  const Clock* clock = nullptr;  // nullptr = Clock::Real()
  ClientFactory client_factory;  // empty = apple::Client::Create
  apple::RetryPolicy retry;      // for every Apple client the engine makes
  // How jobs wait (retries, event polls). Empty: a wait that Stop() interrupts.
  apple::SleepFunction sleep;
};

// Queues a job of `kind` for a token, coalesced (store::Store::EnqueueJob): when a
// job was queued, the token shows it at once — a pending tokenActionResults entry,
// and for syncLicenses lastSyncStatus=inProgress. The service calls this for the
// Graph actions; the engine for the daily syncs and the resync after a revoke.
Result<store::Store::Enqueued> RequestJob(store::Store& store, const std::string& tenant_id,
                                          const std::string& token_id, const std::string& kind,
                                          const std::string& params, Timestamp now, int keep_action_results = 20,
                                          Timestamp not_before = 0);

// What an app's including assignments with device licensing target.
struct DeviceTargets {
  std::vector<std::string> include_groups, exclude_groups;
  bool all_devices = false;  // allDevicesAssignmentTarget
  bool all_users = false;    // allLicensedUsersAssignmentTarget: the managed devices that have a user
};

// The managed devices (with a serial number) `targets` reach: the members of the
// included groups (nested), every managed device (all_devices) or every one with a
// user (all_users), minus the devices whose serial an excluded group holds; each once,
// earliest membership first, then by id. The reconcile job serves them in this order,
// and deviceStatuses lists them so. `all`, when given, caches AllManagedDevices across
// calls (one read per pass).
Result<std::vector<store::GroupDevice>> DevicesReached(store::Store& store, const std::string& tenant_id,
                                                       const DeviceTargets& targets,
                                                       std::optional<std::vector<store::GroupDevice>>* all = nullptr);

// What an app's including assignments without device licensing (user licensing)
// target: people.
struct UserTargets {
  std::vector<std::string> include_groups, exclude_groups;
  bool all_users = false;  // allLicensedUsersAssignmentTarget (allDevicesAssignmentTarget reaches no one)
};

// The directory users `targets` reach: the members of the included groups
// (nested), or every user (all_users), minus the members of the excluded groups;
// each once, earliest membership first, then by id. The reconcile job serves them
// in this order (reconcile_users.cc), and userStatuses lists them so.
Result<std::vector<store::GroupUser>> UsersReached(store::Store& store, const std::string& tenant_id,
                                                   const UserTargets& targets);

// Queues a reconcile of the token's device licences (sync/reconcile.cc): coalesced
// with one already queued (which then runs no later than now), and when one is
// running it runs once more afterwards, so a change committed before this call is
// always seen. `force` lifts the reclaim safety cap for that run. Writes nothing on
// the token (its reconcileLicenses entry is written when the job ends). NotFound.
Result<store::Store::Enqueued> RequestReconcile(store::Store& store, const std::string& tenant_id,
                                                const std::string& token_id, Timestamp now, bool force = false);

// Queues the token's revokeAppLicenses job (revoke_app_licenses.cc), which works
// through the token's open store::AppRevoke rows: coalesced with one already
// queued, and one running runs once more afterwards, so a revoke recorded before
// this call is always seen. Its tokenActionResults entry shows it pending. NotFound.
Result<store::Store::Enqueued> RequestAppRevokes(store::Store& store, const std::string& tenant_id,
                                                 const std::string& token_id, Timestamp now,
                                                 int keep_action_results = 20);

// How an Apple event ended, from its status: GET /status (the reconcile job's
// poll), or an ASSET_MANAGEMENT notification read as one. Each failure naming
// serials fails those serials with its error; a failure naming none fails the
// whole event when nothing completed. Pure.
store::AppleEventOutcome EventOutcome(const apple::EventStatus& status);

// What a location's notification registration depends on (the URL base and the
// types): an endpoint registered with another value is registered again.
std::string NotificationRegistration(const EngineOptions& options);
// The notificationUrl of the endpoint whose key is `location_key`.
std::string NotificationUrl(const std::string& base_url, const std::string& location_key);
// At startup: queues a syncLicenses of every valid token whose endpoint is
// missing or was registered with another URL or other types (the sync
// registers it). Does nothing without options.notification_url. Returns how many.
Result<int> QueueNotificationRegistrations(store::Store& store, const EngineOptions& options);

// mdmInfo this installation writes for a tenant's locations.
apple::MdmInfo OurMdmInfo(const std::string& installation_id, const std::string& tenant_id);

// Thread-safety: Start() runs `workers` worker threads, a lease keeper and the
// daily scheduler, all owned by the Engine and joined by Stop(). Wake() may be
// called from any thread at any time, concurrently with anything (the service calls
// it from HTTP handler threads): it takes the engine's mutex for an increment and
// never waits for I/O. RunOne() and ScheduleDueSyncs() may be called from any
// thread, also while the workers run: the store's claim gives each job to one
// worker at a time, across threads and processes alike. Start() and Stop() are for
// the owner's thread; both are idempotent, and an Engine that was stopped does not
// start again. Stop() blocks (up to `grace`, then until running jobs hand
// themselves back at their next page); never call it from a job, which runs on one
// of the threads it joins. The destructor calls Stop(). The store, and the clock,
// client factory and sleep function of the options, must outlive the Engine and be
// thread-safe: jobs on different workers call them at once.
class Engine {
 public:
  Engine(store::Store& store, EngineOptions options);
  ~Engine();  // Stop()s

  void Start();
  // Stops claiming; waits for running jobs to finish (up to `grace`), hands back
  // the rest (their leases are released so another instance or the next start
  // takes them at once), joins the threads. Idempotent.
  void Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(10'000));
  // A job was queued: wake an idle worker now instead of at its next poll.
  void Wake();
  // Claims and runs one job on the calling thread; false when none was claimable.
  // For tests and `vppd sync --wait`.
  Result<bool> RunOne(const std::string& worker = "inline");
  // Queues the daily syncs that are due (the scheduler thread calls this).
  Status ScheduleDueSyncs();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vppd::sync
