// revokeAppLicenses: the revokes Graph asked for on apps of a token
// (revokeAllLicenses, revokeUserLicense, revokeDeviceLicense, a managed device's
// revokeAppleVppLicenses), done at Apple one after the other, in the order asked.
//
// A pass (a claim of the token's job):
//  1. Reads the token's open revokes (store::AppRevoke, pending or active). None:
//     the job just ends.
//  2. Prepares the token as every job does (expired, another location or MDM:
//     every open revoke fails with the reason, e.g. expiredVppToken).
//  3. For each revoke, marked active first: who it disassociates
//     (RevokeTargetsOf), then /assets/disassociate for that asset in chunks of
//     the service configuration's limits, each event waited for (GET /status);
//     Apple's failures are counted per licence. The device and user licence
//     rows of what was disassociated become released (cause "revoked"), so that
//     the reconcile job counts the licence as free. The revoke ends done, or
//     failed (appleFailure) when any licence could not be revoked.
//  4. Reads the open revokes again (one asked for meanwhile), then finishes; the
//     engine queues a sync, which shows Apple's new counts and queues a reconcile.
// Apple busy or unreachable: the job is handed back (retried later), its revokes
// still open. A kill -9 loses nothing: an active revoke is done again on the next
// claim (Apple counts disassociating a licence it no longer holds as done).
//
// A licence an assignment still gives is granted again by the next reconcile: a
// revoke does not exclude anyone (Intune: remove the assignment first).
#include <algorithm>
#include <functional>
#include <set>

#include <spdlog/spdlog.h>

#include "sync/revoke_plan.h"
#include "sync/sync_internal.h"

namespace vppd::sync {
namespace {

// Apple could not be reached or refused the token: the pass stops.
struct Stop {
  apple::AppleError error;
};

// What Apple did with one revoke's disassociations.
struct Done {
  std::int64_t total = 0, failed = 0;
  std::string first_error;
  std::set<std::string> failed_serials, failed_users;
  bool all_failed = false;  // a call Apple refused outright
  std::string event_id;     // the last event
};

// Submits one disassociate and waits for its event; counts its failures.
std::optional<Stop> Disassociate(JobContext& ctx, apple::Client& client, const apple::ManageAssetsRequest& req,
                                 std::int64_t targets, Done& done) {
  done.total += targets;
  auto event = client.Disassociate(req);
  if (!event) {
    if (event.error().kind != apple::AppleErrorKind::kValidation) return Stop{event.error()};
    done.failed += targets;
    done.failed_serials.insert(req.serial_numbers.begin(), req.serial_numbers.end());
    done.failed_users.insert(req.client_user_ids.begin(), req.client_user_ids.end());
    if (done.first_error.empty()) done.first_error = event.error().Describe();
    return std::nullopt;
  }
  done.event_id = event->event_id;
  auto status = client.WaitForEvent(event->event_id, ctx.options.event_poll_interval, ctx.options.event_max_wait);
  if (!status) {
    if (status.error().kind != apple::AppleErrorKind::kValidation) return Stop{status.error()};
  }
  if (!status || status->Pending()) {
    // Not known to have ended: counted as failed, the rows left as they are.
    done.failed += targets;
    done.failed_serials.insert(req.serial_numbers.begin(), req.serial_numbers.end());
    done.failed_users.insert(req.client_user_ids.begin(), req.client_user_ids.end());
    if (done.first_error.empty()) {
      done.first_error = status ? "event " + event->event_id + " still pending" : status.error().Describe();
    }
    return std::nullopt;
  }
  const RevokeFailures failures = FailuresOf(*status, req.serial_numbers, req.client_user_ids);
  done.failed += std::min(failures.count, targets);
  done.failed_serials.insert(failures.serials.begin(), failures.serials.end());
  done.failed_users.insert(failures.client_user_ids.begin(), failures.client_user_ids.end());
  if (failures.count > 0 && done.first_error.empty()) done.first_error = failures.first_error;
  return std::nullopt;
}

// Calls `fn` with consecutive slices of `ids` of at most `size` (>= 1).
std::optional<Stop> InChunks(const std::vector<std::string>& ids, int size,
                             const std::function<std::optional<Stop>(std::vector<std::string>)>& fn) {
  const std::size_t step = static_cast<std::size_t>(std::max(1, size));
  for (std::size_t i = 0; i < ids.size(); i += step) {
    auto stop = fn(std::vector<std::string>(ids.begin() + static_cast<std::ptrdiff_t>(i),
                                            ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), i + step))));
    if (stop) return stop;
  }
  return std::nullopt;
}

// What Apple holds of the asset now, for revokeUntrackedLicenses.
apple::AppleResult<std::vector<store::LicenseAssignment>> HeldNow(apple::Client& client, const store::AppRevoke& r) {
  std::vector<store::LicenseAssignment> out;
  apple::AssignmentFilter filter;
  filter.adam_id = r.adam_id;
  filter.pricing_param = r.pricing_param;
  auto walk = client.WalkAssignments(filter, [&](const apple::AssignmentsPage& page) -> Status {
    for (const auto& a : page.items) {
      if (a.adam_id != r.adam_id || a.pricing_param != r.pricing_param) continue;
      out.push_back({std::string(a.adam_id), std::string(a.pricing_param), std::string(a.client_user_id),
                     std::string(a.serial_number)});
    }
    return {};
  });
  if (!walk) return tl::unexpected(walk.error());
  return out;
}

// Step 3 for one revoke.
std::optional<Stop> RunOne(JobContext& ctx, apple::Client& client, const apple::ServiceConfig::Limits& limits,
                           store::AppRevoke& r) {
  const std::string& tenant = ctx.job.tenant_id;
  std::vector<store::LicenseAssignment> at_sync;
  if (r.action_name == kRevokeAllLicensesAction) {
    Status walked;
    for (int attempt = 0; attempt < 3; ++attempt) {
      at_sync.clear();
      walked = ctx.store.ForEachAssignment(tenant, r.token_id, 10'000,
                                           [&](const std::vector<store::LicenseAssignment>& batch) -> Status {
                                             for (const auto& a : batch) {
                                               if (a.adam_id == r.adam_id && a.pricing_param == r.pricing_param)
                                                 at_sync.push_back(a);
                                             }
                                             return {};
                                           });
      if (walked || walked.error().code != Code::kFailedPrecondition) break;
    }
    if (!walked && walked.error().code != Code::kNotFound) {
      r.action_state = "failed";
      r.failure_reason = "internalError";
      r.error = walked.error().message;
      return std::nullopt;
    }
  }
  std::vector<store::LicenseAssignment> now;
  if (r.action_name == kRevokeAllLicensesAction && r.revoke_untracked) {
    auto held = HeldNow(client, r);
    if (!held) {
      if (held.error().kind != apple::AppleErrorKind::kValidation) return Stop{held.error()};
      r.action_state = "failed";
      r.failure_reason = "appleFailure";
      r.error = held.error().Describe();
      return std::nullopt;
    }
    now = std::move(*held);
  }
  // vppd's own rows of the asset: what it granted (or is granting) since the last sync.
  auto rows = ctx.store.ListDeviceLicenses(tenant, r.token_id);
  auto user_rows = rows ? ctx.store.ListUserLicenses(tenant, r.token_id) : Result<std::vector<store::UserLicense>>{};
  if (!rows || !user_rows) {
    r.action_state = "failed";
    r.failure_reason = "internalError";
    r.error = !rows ? rows.error().message : user_rows.error().message;
    return std::nullopt;
  }
  auto other_asset = [&](const auto& row) { return row.adam_id != r.adam_id || row.pricing_param != r.pricing_param; };
  std::erase_if(*rows, other_asset);
  std::erase_if(*user_rows, other_asset);
  const RevokeTargets targets = RevokeTargetsOf(r, at_sync, *rows, *user_rows, now);

  Done done;
  std::string users_event;  // the last event of the clientUserIds (done.event_id: of the serials after them)
  auto send = [&](std::vector<std::string> ids, bool users) -> std::optional<Stop> {
    apple::ManageAssetsRequest req;
    req.assets = {{r.adam_id, r.pricing_param}};
    const auto n = static_cast<std::int64_t>(ids.size());
    (users ? req.client_user_ids : req.serial_numbers) = std::move(ids);
    auto stop = Disassociate(ctx, client, req, n, done);
    if (users) users_event = done.event_id;
    return stop;
  };
  if (auto stop = InChunks(targets.client_user_ids, limits.max_client_user_ids,
                           [&](std::vector<std::string> ids) { return send(std::move(ids), true); })) {
    return stop;
  }
  if (auto stop = InChunks(targets.serial_numbers, limits.max_serial_numbers,
                           [&](std::vector<std::string> ids) { return send(std::move(ids), false); })) {
    return stop;
  }
  // What was taken back is free now (vppd's grants and the licences it never granted).
  const auto released =
      ReleasedRows(*rows, r.adam_id, r.pricing_param, targets.serial_numbers, done.failed_serials, done.event_id);
  if (!released.empty()) {
    (void)ctx.store.PutDeviceLicenses(tenant, r.token_id, released, {});
    // A device still assigned gets its licence back from the next reconcile pass.
    std::vector<std::string> serials;
    for (const store::DeviceLicense& row : released) serials.push_back(row.serial_number);
    (void)ctx.store.NoteReconcileChanges(tenant, r.token_id, serials);
  }
  const auto released_users =
      ReleasedRows(*user_rows, r.adam_id, r.pricing_param, targets.client_user_ids, done.failed_users, users_event);
  if (!released_users.empty()) (void)ctx.store.PutUserLicenses(tenant, r.token_id, released_users, {});

  r.total_licenses = static_cast<std::int32_t>(done.total);
  r.failed_licenses = static_cast<std::int32_t>(done.failed);
  r.action_state = done.failed > 0 ? "failed" : "done";
  r.failure_reason = done.failed > 0 ? "appleFailure" : "none";
  r.error = done.first_error;
  spdlog::info("token {} (tenant {}): {} of app {}: {} of {} licences revoked", ctx.job.token_id, tenant, r.action_name,
               r.app_id, done.total - done.failed, done.total);
  return std::nullopt;
}

// Ends every open revoke as failed with `reason` (the token cannot be worked on).
void FailOpen(JobContext& ctx, const std::string& reason, const std::string& why) {
  auto open = ctx.store.OpenAppRevokes(ctx.job.tenant_id, ctx.job.token_id);
  if (!open) return;
  for (store::AppRevoke& r : *open) {
    r.action_state = "failed";
    r.failure_reason = reason;
    r.error = why;
    (void)ctx.store.UpdateAppRevoke(ctx.job.tenant_id, r);
  }
}

}  // namespace

Status RunRevokeAppLicenses(JobContext& ctx) {
  const auto& job = ctx.job;
  auto open = ctx.store.OpenAppRevokes(job.tenant_id, job.token_id);
  if (!open) return ReleaseOrAbandon(ctx, open.error());
  if (open->empty()) {
    auto done = ctx.store.FinishJob(job, std::nullopt, [](store::VppToken&) -> Status { return {}; });
    if (!done && done.error().code != Code::kNotFound) return ReleaseOrAbandon(ctx, done.error());
    return {};
  }
  auto prepared = Prepare(ctx, kRevokeAppLicenses);
  if (!prepared) {
    if (!prepared.error().store_error) {
      FailOpen(ctx, FailureReasonOf(prepared.error().state), prepared.error().reason);
    }
    return EndWith(ctx, kRevokeAppLicenses, prepared.error());
  }
  apple::Client& client = *prepared->client;
  auto service = client.GetServiceConfig();
  std::optional<Stop> stopped;
  if (!service) stopped = Stop{service.error()};

  std::int64_t revokes = 0, failed = 0;
  for (int round = 0; !stopped && !open->empty() && round < 100 && !ctx.stopping; ++round) {
    for (store::AppRevoke& r : *open) {
      if (ctx.stopping || ctx.lease_lost) break;
      if (r.action_state != "active") {
        r.action_state = "active";
        if (auto ok = ctx.store.UpdateAppRevoke(job.tenant_id, r); !ok) {
          if (ok.error().code == Code::kNotFound) continue;  // its token is gone
          return ReleaseOrAbandon(ctx, ok.error());
        }
      }
      stopped = RunOne(ctx, client, service->limits, r);
      if (stopped) break;
      ++revokes;
      if (r.action_state == "failed") ++failed;
      if (auto ok = ctx.store.UpdateAppRevoke(job.tenant_id, r); !ok && ok.error().code != Code::kNotFound) {
        return ReleaseOrAbandon(ctx, ok.error());
      }
    }
    if (stopped || ctx.stopping) break;
    open = ctx.store.OpenAppRevokes(job.tenant_id, job.token_id);
    if (!open) return ReleaseOrAbandon(ctx, open.error());
  }
  if (ctx.stopping) return ReleaseForRetry(ctx, Error::Unavailable("shutting down"));
  if (stopped) {
    SyncFailure failure = FromAppleError(stopped->error);
    if (!failure.state.empty()) {
      FailOpen(ctx, FailureReasonOf(failure.state), failure.reason);
      return EndWith(ctx, kRevokeAppLicenses, failure);
    }
    // Apple busy or unreachable: the open revokes wait for the next claim.
    const Timestamp wait = std::max<Timestamp>(stopped->error.retry_after.count() * 1'000'000, 30'000'000);
    spdlog::warn("token {} (tenant {}): revokes stopped: {}; again in {} s", job.token_id, job.tenant_id,
                 stopped->error.Describe(), wait / 1'000'000);
    if (auto ok = ctx.store.ReleaseJob(job, ctx.clock.Now() + wait); !ok) return ReleaseOrAbandon(ctx, ok.error());
    return Fail(Error::Unavailable(stopped->error.Describe()));
  }
  auto done = ctx.store.FinishJob(job, std::nullopt, [&](store::VppToken& t) -> Status {
    auto& entry = ActionEntry(t, kRevokeAppLicenses, ctx.clock.Now(), ctx.options.keep_action_results);
    entry.action_state = failed > 0 ? "failed" : "done";
    return {};
  });
  if (!done) {
    if (done.error().code == Code::kNotFound) return {};
    return ReleaseOrAbandon(ctx, done.error());
  }
  spdlog::info("token {} (tenant {}): {} revokes done, {} of them failed", job.token_id, job.tenant_id, revokes,
               failed);
  // Apple's counts changed: a sync shows them, and queues the reconcile that
  // grants again what an assignment still gives.
  if (revokes > 0) {
    if (auto again = RequestJob(ctx.store, job.tenant_id, job.token_id, kSyncLicenses, "", ctx.clock.Now(),
                                ctx.options.keep_action_results);
        !again && again.error().code != Code::kNotFound) {
      spdlog::warn("token {}: could not queue the resync after revokes: {}", job.token_id, again.error().message);
    }
  }
  return {};
}

Result<store::Store::Enqueued> RequestAppRevokes(store::Store& store, const std::string& tenant_id,
                                                 const std::string& token_id, Timestamp now, int keep_action_results) {
  store::EnqueueOptions options;
  options.kind = kRevokeAppLicenses;
  options.not_before = now;
  options.run_again = true;
  return store.EnqueueJob(tenant_id, token_id, options, [&](store::VppToken& t) -> Status {
    auto& entry = ActionEntry(t, kRevokeAppLicenses, now, keep_action_results);
    entry.action_state = "pending";
    entry.start = now;
    return {};
  });
}

}  // namespace vppd::sync
