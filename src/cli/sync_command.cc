#include "cli/sync_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include "base/terminal_text.h"
#include "cli/runtime.h"
#include "store/store.h"
#include "sync/sync.h"

namespace vppd::cli {
namespace {

constexpr char kSyncLicenses[] = "syncLicenses";
// Apple's "unlimited" (an asset without a licence count), as Graph's totalLicenseCount
// shows it: Int32's maximum. Never added to a total.
constexpr std::int64_t kUnlimitedLicenses = 2'147'483'647;
// With --wait: how long a queued job may wait for a worker before we say again
// that none has claimed it.
constexpr auto kUnclaimedReminder = std::chrono::seconds(5);

// Prints the error and returns the exit status.
int Exit(const std::string& message, int status = 1) {
  std::fprintf(stderr, "vppd sync: %s\n", TerminalSafe(message).c_str());
  return status;
}

std::string Elapsed(std::chrono::steady_clock::time_point since) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count());
  return buf;
}

// One progress report: "running (attempt 1): 12/40 pages, 3000 assignments staged".
std::string Describe(const std::optional<store::SyncJob>& job) {
  if (!job) return "finishing";
  if (job->lease_owner.empty()) return job->attempts == 0 ? "queued" : "queued again (handed back)";
  std::string out = "running";
  if (job->attempts > 1) out += " (attempt " + std::to_string(job->attempts) + ")";
  out += ": " + std::to_string(job->pages_walked);
  if (job->pages_total > 0) out += "/" + std::to_string(job->pages_total);
  out += " pages, " + std::to_string(job->assignments_staged) + " assignments staged";
  return out;
}

// `[########------------]  12/40 pages  3000 assignments  running  4.2 s`, redrawn in place.
void DrawBar(const std::optional<store::SyncJob>& job, std::chrono::steady_clock::time_point since) {
  constexpr int kWidth = 30;
  const std::int64_t done = job ? job->pages_walked : 0;
  const std::int64_t total = job ? job->pages_total : 0;
  const int filled = total > 0 ? static_cast<int>(kWidth * std::min(done, total) / total) : 0;
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.append(static_cast<std::size_t>(kWidth - filled), '-');
  std::printf("\r\033[K[%s] %s  %s", bar.c_str(), Describe(job).c_str(), Elapsed(since).c_str());
  std::fflush(stdout);
}

// What the token holds after a successful sync: apps, licenses in use (an app on two
// platforms is one set of licenses) and assignment rows.
Status PrintResult(store::Store& store, const std::string& tenant, const store::VppToken& token,
                   std::chrono::steady_clock::time_point since) {
  store::ListQuery query;
  // The token's apps (books, the mobile_apps rows of product type Book, are not apps).
  query.filter = store::Expr::Apply(
      store::Op::kAnd,
      {store::Expr::Apply(store::Op::kEq, {store::Expr::Of(store::Column::kAppTokenId), store::Expr::Value(token.id)}),
       store::Expr::Apply(store::Op::kEq,
                          {store::Expr::Of(store::Column::kAppProductType), store::Expr::Value(std::string("App"))})});
  query.limit = 1000;
  std::set<std::pair<std::string, std::string>> seen;
  std::int64_t used = 0, total = 0, unlimited_apps = 0, unlimited_used = 0;
  for (;;) {
    auto page = store.ListApps(tenant, query);
    if (!page) return Fail(page.error());
    for (const auto& app : page->items) {
      if (!seen.insert({app.adam_id, app.pricing_param}).second) continue;
      if (app.total_licenses >= kUnlimitedLicenses) {
        ++unlimited_apps;
        unlimited_used += app.used_licenses;
        continue;
      }
      used += app.used_licenses;
      total += app.total_licenses;
    }
    if (!page->has_more) break;
    query.skip += query.limit;
  }
  // A walk fails when another sync replaces the set it reads (FailedPrecondition):
  // count the new set then.
  std::int64_t assignments = 0;
  Status counted;
  for (int attempt = 0; attempt < 3; ++attempt) {
    assignments = 0;
    counted = store.ForEachAssignment(tenant, token.id, 10'000,
                                      [&](const std::vector<store::LicenseAssignment>& batch) -> Status {
                                        assignments += static_cast<std::int64_t>(batch.size());
                                        return {};
                                      });
    if (counted || counted.error().code != Code::kFailedPrecondition) break;
  }
  if (!counted) return counted;
  // "2223 of 4060 licenses used, and 17 of unlimited on 2 apps": unlimited apps
  // have no count to add up.
  std::string unlimited;
  if (unlimited_apps > 0) {
    unlimited = ", and " + std::to_string(unlimited_used) + " of unlimited on " + std::to_string(unlimited_apps) +
                (unlimited_apps == 1 ? " app" : " apps");
  }
  std::printf("synced token %s (%s) in %s: %d apps, %lld of %lld licenses used%s, %lld assignments\n",
              TerminalSafe(token.id).c_str(), TerminalSafe(token.location_name.value_or("?")).c_str(),
              Elapsed(since).c_str(), token.last_app_count, static_cast<long long>(used), static_cast<long long>(total),
              unlimited.c_str(), static_cast<long long>(assignments));
  return {};
}

}  // namespace

int RunSyncCommand(const SyncCommand& cmd, const Settings& settings) {
  auto opened = OpenExistingStore(settings);
  if (!opened) return Exit(opened.error().message);
  store::Store& store = **opened;
  auto tenant = FindTokenTenant(store, cmd.token_id, cmd.tenant_id);
  if (!tenant) return Exit(tenant.error().message);

  // Exactly what POST …/syncLicenses does (coalesced with a sync already queued).
  const Timestamp now = Clock::Real().Now();
  auto queued = sync::RequestJob(store, *tenant, cmd.token_id, kSyncLicenses, "", now);
  if (!queued) return Exit(queued.error().message);
  std::printf("%s syncLicenses of token %s (tenant %s)\n",
              queued->queued ? "queued" : "joined the already queued or running", TerminalSafe(cmd.token_id).c_str(),
              TerminalSafe(*tenant).c_str());
  std::fflush(stdout);
  if (!cmd.wait) return 0;

  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(cmd.timeout_seconds));
  auto last_line = started - std::chrono::hours(1);
  std::string last_text;
  // Since when the job has waited for a worker (none running on this store, or all
  // busy), and when we last said so.
  bool unclaimed = false, told = false;
  std::chrono::steady_clock::time_point unclaimed_since{}, told_at{};
  for (;;) {
    auto jobs = store.FindJobs(*tenant, cmd.token_id);
    if (!jobs) return Exit(jobs.error().message);
    std::optional<store::SyncJob> job;
    for (auto& j : *jobs) {
      if (j.kind == kSyncLicenses) job = std::move(j);
    }
    if (!job) {
      // The job is gone: its outcome is on the token. (inProgress without a job is
      // the moment between a finished sync and the resync it asked for.)
      auto token = store.GetToken(*tenant, cmd.token_id);
      if (!token) {
        if (tty) std::printf("\n");
        if (token.error().code == Code::kNotFound)
          return Exit("token " + cmd.token_id + " was deleted during the sync");
        return Exit(token.error().message);
      }
      if (token->last_sync_status != "inProgress") {
        if (tty) std::printf("\r\033[K");
        if (token->last_sync_status == "completed") {
          if (Status s = PrintResult(store, *tenant, *token, started); !s) return Exit(s.error().message);
          return 0;
        }
        return Exit(
            "syncLicenses of token " + cmd.token_id + " " + token->last_sync_status + " (state " + token->state +
            "): " + (token->last_sync_error.empty() ? std::string("no reason recorded") : token->last_sync_error));
      }
    }
    const auto t = std::chrono::steady_clock::now();
    if (job && job->lease_owner.empty()) {
      if (!unclaimed) unclaimed_since = t;
      unclaimed = true;
      // At once, then after every few seconds without a worker: a `vppd sync --wait`
      // without a server would otherwise wait its whole --timeout in silence.
      if (!told || t - told_at >= kUnclaimedReminder) {
        if (tty) std::printf("\r\033[K");
        const char* where = settings.database_url.empty() ? "data dir" : "database";
        if (!told) {
          std::fprintf(stderr,
                       "vppd sync: no worker has claimed the job yet (a vppd serve on this %s does within "
                       "a second or two)\n",
                       where);
        } else {
          std::fprintf(stderr,
                       "vppd sync: no worker has claimed the job after %s: is a vppd serve running on this %s?\n",
                       Elapsed(unclaimed_since).c_str(), where);
        }
        std::fflush(stderr);
        told = true;
        told_at = t;
      }
    } else {
      unclaimed = told = false;
    }
    if (tty) {
      DrawBar(job, started);
    } else {
      const std::string text = Describe(job);
      if (text != last_text || t - last_line >= std::chrono::seconds(5)) {
        std::printf("%s: %s\n", Elapsed(started).c_str(), text.c_str());
        std::fflush(stdout);
        last_text = text;
        last_line = t;
      }
    }
    if (t >= deadline) {
      if (tty) std::printf("\n");
      std::string hint = job && job->lease_owner.empty()
                             ? "; the job is still queued: is a vppd serve running on this data dir?"
                             : "; the job goes on in the background";
      return Exit("timed out after " + Elapsed(started) + " waiting for syncLicenses of token " + cmd.token_id + " (" +
                      Describe(job) + ")" + hint,
                  3);
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(cmd.poll_seconds));
  }
}

}  // namespace vppd::cli
