// Internal to sync/: what each kind of job does. Each Run* function owns the job
// from claim to FinishJob (or hands it back) and returns what went wrong only for
// logging: every outcome a user should see is recorded on the token.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/store.h"
#include "sync/sync.h"

namespace vppd::sync {

inline constexpr char kSyncLicenses[] = "syncLicenses";
inline constexpr char kSyncLicenseCounts[] = "syncLicenseCounts";
inline constexpr char kRevokeLicenses[] = "revokeLicenses";
inline constexpr char kReconcile[] = "reconcile";  // its tokenActionResults entry: kReconcileAction
inline constexpr char kReconcileAction[] = "reconcileLicenses";
inline constexpr char kRevokeAppLicenses[] = "revokeAppLicenses";  // revokes by app, user or device

// How far a running job has got (its current attempt): the walk counts, the lease
// keeper stores the counts with the lease (store::SyncJob's progress fields).
struct JobProgress {
  std::atomic<std::int64_t> pages_walked{0};        // Apple assignment pages received
  std::atomic<std::int64_t> pages_total{0};         // Apple's totalPages of the walk; 0 = not known yet
  std::atomic<std::int64_t> assignments_staged{0};  // rows written to the staging set
};

// App names and bundle ids from Apple's metadata lookup, remembered across syncs
// and tokens for EngineOptions::metadata_ttl: it is catalogue data (the same for
// every tenant and location), changes rarely, and a location of 1,600 apps
// costs 16 lookups every sync without it. Ids the lookup did not return are
// asked again next time. Thread-safe.
class MetadataCache {
 public:
  MetadataCache(std::chrono::seconds ttl, std::size_t max_entries = 200'000);
  // The fresh entries of `ids`; the ids without one are appended to `missing`.
  std::vector<apple::AppMetadata> Find(const std::vector<std::string>& ids, Timestamp now,
                                       std::vector<std::string>& missing) const;
  void Remember(const std::vector<apple::AppMetadata>& found, Timestamp now);

 private:
  struct Entry {
    apple::AppMetadata metadata;
    Timestamp fetched = 0;
  };
  const Timestamp ttl_us_;
  const std::size_t max_entries_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // by adamId
};

struct JobContext {
  store::Store& store;
  const EngineOptions& options;
  const Clock& clock;
  store::SyncJob job;
  // Set by the lease keeper when a renewal failed: another worker owns the job now.
  std::atomic<bool>& lease_lost;
  // Set by Stop(): wrap up quickly (the walk stops at the next page and the job is handed back).
  const std::atomic<bool>& stopping;
  // Waits (retry backoff, Retry-After, event polls) that Stop() cuts short.
  const apple::SleepFunction& sleep;
  JobProgress& progress;
  MetadataCache& metadata;
  // The sToken's expiration when the job loaded the token. A renewal (a new sToken,
  // whose expDate differs) while the job runs makes the job's findings stale: its
  // final write then leaves the token's state alone and sets `superseded`, and the
  // engine queues a sync of the new sToken (the renewal's own request was coalesced
  // into this job).
  Timestamp loaded_expiration = 0;
  bool superseded = false;
};

// True when the token in the finishing transaction still holds the sToken the job
// started with; otherwise marks the job superseded.
bool SameSToken(JobContext& ctx, const store::VppToken& current);

Status RunSyncLicenses(JobContext& ctx);
Status RunSyncLicenseCounts(JobContext& ctx);
Status RunRevokeLicenses(JobContext& ctx);
Status RunReconcile(JobContext& ctx);          // reconcile.cc
Status RunRevokeAppLicenses(JobContext& ctx);  // revoke_app_licenses.cc

// The token's tokenActionResults entry for this job (the newest one of its kind
// that is not finished), created when missing; set to `state` at `now`, trimmed to
// `keep` entries.
store::TokenActionResult& ActionEntry(store::VppToken& token, const std::string& kind, Timestamp now, int keep);

}  // namespace vppd::sync
