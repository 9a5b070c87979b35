// revokeLicenses: take back the token's licenses at Apple, then resync.
//
// Which assignments are revoked:
//  - tracked (always): the assignments vppd recorded at the token's last sync. They
//    are revoked precisely with /assets/disassociate, asset by asset, so a license
//    vppd does not know about is left alone.
//  - untracked (when revokeUntrackedLicenses is true): every assignment Apple holds
//    now for the location, found by a fresh walk; the users and devices holding them
//    are stripped with /assets/revoke (Apple's call removes all revocable assets of
//    a user or device).
// Assets that are not revocable (books) are skipped: Apple refuses them (9706).
// notifyManagedDevices has no counterpart in Apple's v2 API (Apple sends no
// notification for device assignments); it is accepted and recorded only.
#include <functional>
#include <map>
#include <set>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "sync/sync_internal.h"

namespace vppd::sync {
namespace {

struct Tally {
  std::int64_t total = 0;
  std::int64_t failed = 0;
  std::string first_error;
};

// Submits one event and waits for it; counts what Apple reports as failed. A call
// Apple refuses outright counts all of its targets as failed.
void Submit(JobContext& ctx, apple::Client& client, std::int64_t targets,
            const std::function<apple::AppleResult<apple::EventResponse>()>& call, Tally& tally) {
  tally.total += targets;
  auto event = call();
  if (!event) {
    tally.failed += targets;
    if (tally.first_error.empty()) tally.first_error = event.error().Describe();
    return;
  }
  auto status = client.WaitForEvent(event->event_id, ctx.options.event_poll_interval, ctx.options.event_max_wait);
  if (!status || status->Pending()) {
    tally.failed += targets;
    if (tally.first_error.empty()) {
      tally.first_error = status ? "event " + event->event_id + " still pending" : status.error().Describe();
    }
    return;
  }
  const std::int64_t failed = std::max<std::int64_t>(0, status->num_requested - status->num_completed);
  tally.failed += std::min(failed, targets);
  if (failed > 0 && tally.first_error.empty() && !status->failures.empty()) {
    tally.first_error =
        "Apple error " + std::to_string(status->failures[0].error_number) + ": " + status->failures[0].error_message;
  }
}

// Calls `fn` with consecutive slices of `ids` of at most `size` (≥ 1) elements: Apple
// caps how many users or devices one call may name.
void ForEachBatch(const std::vector<std::string>& ids, int size,
                  const std::function<void(std::vector<std::string>)>& fn) {
  const std::size_t step = static_cast<std::size_t>(std::max(1, size));
  for (std::size_t i = 0; i < ids.size(); i += step) {
    fn(std::vector<std::string>(ids.begin() + i, ids.begin() + std::min(ids.size(), i + step)));
  }
}

}  // namespace

Status RunRevokeLicenses(JobContext& ctx) {
  auto prepared = Prepare(ctx, kRevokeLicenses);
  if (!prepared) return EndWith(ctx, kRevokeLicenses, prepared.error());
  apple::Client& client = *prepared->client;

  bool untracked = false;
  {
    boost::system::error_code ec;
    auto params = boost::json::parse(ctx.job.params, ec);
    if (!ec && params.is_object()) {
      if (const auto* v = params.get_object().if_contains("revokeUntrackedLicenses"); v && v->is_bool()) {
        untracked = v->get_bool();
      }
    }
  }
  auto service_config = client.GetServiceConfig();
  if (!service_config) return EndWith(ctx, kRevokeLicenses, FromAppleError(service_config.error()));
  const auto& limits = service_config->limits;

  // Which assets are revocable, from a walk of the assets.
  std::set<std::pair<std::string, std::string>> revocable;
  auto assets = client.WalkAssets({}, [&](const apple::AssetsPage& page) -> Status {
    for (const auto& a : page.items) {
      if (a.revocable) revocable.emplace(a.adam_id, a.pricing_param);
    }
    return {};
  });
  if (!assets) return EndWith(ctx, kRevokeLicenses, FromAppleError(assets.error()));

  Tally tally;
  // Tracked: disassociate per asset, in batches within Apple's limits.
  std::map<std::pair<std::string, std::string>, std::pair<std::vector<std::string>, std::vector<std::string>>> by_asset;
  auto each = ctx.store.ForEachAssignment(ctx.job.tenant_id, ctx.job.token_id, 10'000,
                                          [&](const std::vector<store::LicenseAssignment>& rows) -> Status {
                                            for (const auto& r : rows) {
                                              if (!revocable.contains({r.adam_id, r.pricing_param})) continue;
                                              auto& targets = by_asset[{r.adam_id, r.pricing_param}];
                                              if (!r.client_user_id.empty())
                                                targets.first.push_back(r.client_user_id);
                                              else
                                                targets.second.push_back(r.serial_number);
                                            }
                                            return {};
                                          });
  if (!each) return EndWith(ctx, kRevokeLicenses, {"", "", each.error()});
  for (const auto& [asset, targets] : by_asset) {
    const auto& [users, serials] = targets;
    auto disassociate = [&](std::vector<std::string> ids, bool are_users) {
      apple::ManageAssetsRequest req;
      req.assets = {{asset.first, asset.second}};
      const auto n = static_cast<std::int64_t>(ids.size());
      (are_users ? req.client_user_ids : req.serial_numbers) = std::move(ids);
      Submit(
          ctx, client, n, [&] { return client.Disassociate(req); }, tally);
    };
    ForEachBatch(users, limits.max_client_user_ids, [&](std::vector<std::string> ids) { disassociate(ids, true); });
    ForEachBatch(serials, limits.max_serial_numbers, [&](std::vector<std::string> ids) { disassociate(ids, false); });
  }

  // Untracked: whatever Apple still holds, by user and device.
  if (untracked) {
    std::set<std::string> users, serials;
    std::int64_t holdings = 0;
    auto walk = client.WalkAssignments({}, [&](const apple::AssignmentsPage& page) -> Status {
      for (const auto& a : page.items) {
        if (!revocable.contains({std::string(a.adam_id), std::string(a.pricing_param)})) continue;
        ++holdings;
        if (!a.client_user_id.empty())
          users.emplace(a.client_user_id);
        else
          serials.emplace(a.serial_number);
      }
      return {};
    });
    if (!walk) return EndWith(ctx, kRevokeLicenses, FromAppleError(walk.error()));
    Tally untracked_tally;
    ForEachBatch({users.begin(), users.end()}, limits.max_revoke_client_user_ids, [&](std::vector<std::string> ids) {
      Submit(
          ctx, client, static_cast<std::int64_t>(ids.size()), [&] { return client.Revoke(ids, {}); }, untracked_tally);
    });
    ForEachBatch({serials.begin(), serials.end()}, limits.max_revoke_serial_numbers, [&](std::vector<std::string> ids) {
      Submit(
          ctx, client, static_cast<std::int64_t>(ids.size()), [&] { return client.Revoke({}, ids); }, untracked_tally);
    });
    // Counted in licenses, like the tracked part: the holdings found, and as failed the
    // share of targets (users/devices) Apple could not strip.
    tally.total += holdings;
    if (untracked_tally.total > 0) tally.failed += holdings * untracked_tally.failed / untracked_tally.total;
    if (tally.first_error.empty()) tally.first_error = untracked_tally.first_error;
  }

  auto done = ctx.store.FinishJob(ctx.job, std::nullopt, [&](store::VppToken& t) -> Status {
    auto& entry = ActionEntry(t, kRevokeLicenses, ctx.clock.Now(), ctx.options.keep_action_results);
    entry.is_revoke_result = true;
    entry.total_licenses = static_cast<std::int32_t>(tally.total);
    entry.failed_licenses = static_cast<std::int32_t>(tally.failed);
    entry.failure_reason = tally.failed > 0 ? "appleFailure" : "none";
    entry.action_state = tally.failed > 0 ? "failed" : "done";
    t.last_sync_error = tally.failed > 0 ? "revokeLicenses: " + tally.first_error : "";
    return {};
  });
  if (!done) {
    if (done.error().code == Code::kNotFound) return {};
    return ReleaseOrAbandon(ctx, done.error());
  }
  spdlog::info("token {} (tenant {}): revoked {} of {} licenses{}", ctx.job.token_id, ctx.job.tenant_id,
               tally.total - tally.failed, tally.total, untracked ? " (untracked included)" : "");
  return {};
}

}  // namespace vppd::sync
