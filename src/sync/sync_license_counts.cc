// syncLicenseCounts: refresh the license counts of a token's apps from Apple's
// assets (one walk of /assets; assignments are left as the last sync saw them).
#include <spdlog/spdlog.h>

#include "sync/sync_internal.h"

namespace vppd::sync {

Status RunSyncLicenseCounts(JobContext& ctx) {
  auto prepared = Prepare(ctx, kSyncLicenseCounts);
  if (!prepared) return EndWith(ctx, kSyncLicenseCounts, prepared.error());
  const Timestamp now = ctx.clock.Now();
  const std::string country = StoreCountry(prepared->token, prepared->config);
  for (int attempt = 0;; ++attempt) {
    if (attempt > ctx.options.max_walk_restarts) {
      return EndWith(ctx, kSyncLicenseCounts,
                     {"", "Apple's data kept changing during the assets walk; the next refresh will try again", {}});
    }
    auto gathered = WalkAssets(ctx, *prepared->client, prepared->token, country, now);
    if (gathered && gathered->version_changed) continue;
    if (!gathered) return EndWith(ctx, kSyncLicenseCounts, FromAppleError(gathered.error()));
    store::SyncSnapshot snapshot;
    snapshot.apps = std::move(gathered->apps);
    snapshot.assignments = store::SyncSnapshot::Assignments::kKeep;
    const std::int64_t app_count = gathered->app_assets;
    auto done = ctx.store.FinishJob(ctx.job, snapshot, [&](store::VppToken& t) -> Status {
      t.last_app_count = static_cast<std::int32_t>(app_count);
      t.location_name = prepared->config.location_name;
      ActionEntry(t, kSyncLicenseCounts, ctx.clock.Now(), ctx.options.keep_action_results).action_state = "done";
      return {};
    });
    if (!done && done.error().code != Code::kNotFound) return ReleaseOrAbandon(ctx, done.error());
    spdlog::info("token {} (tenant {}): license counts of {} apps refreshed", ctx.job.token_id, ctx.job.tenant_id,
                 app_count);
    return {};
  }
}

}  // namespace vppd::sync
