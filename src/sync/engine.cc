#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "base/log.h"
#include "base/metrics.h"
#include "sync/jobs.h"
#include "sync/sync.h"
#include "sync/sync_internal.h"

namespace vppd::sync {

Result<store::Store::Enqueued> RequestJob(store::Store& store, const std::string& tenant_id,
                                          const std::string& token_id, const std::string& kind,
                                          const std::string& params, Timestamp now, int keep_action_results,
                                          Timestamp not_before) {
  store::EnqueueOptions options;
  options.kind = kind;
  options.params = params;
  options.not_before = not_before;
  return store.EnqueueJob(tenant_id, token_id, options, [&](store::VppToken& t) -> Status {
    if (kind == kSyncLicenses) t.last_sync_status = "inProgress";
    auto& entry = ActionEntry(t, kind, now, keep_action_results);
    entry.action_state = "pending";
    entry.start = now;
    return {};
  });
}

Result<store::Store::Enqueued> RequestReconcile(store::Store& store, const std::string& tenant_id,
                                                const std::string& token_id, Timestamp now, bool force) {
  store::EnqueueOptions options;
  options.kind = kReconcile;
  options.params = force ? R"({"force":true})" : "";
  options.not_before = now;
  options.run_again = true;
  return store.EnqueueJob(tenant_id, token_id, options, [](store::VppToken&) -> Status { return {}; });
}

struct Engine::Impl {
  store::Store& store;
  EngineOptions options;
  const Clock& clock;
  MetadataCache metadata{options.metadata_ttl};  // after options

  std::mutex mu;
  std::condition_variable wake;
  bool started = false;
  std::atomic<bool> stopping{false};
  // Bumped (under mu) by Wake(): an idle worker's wait ends when it moves, so a
  // queued job starts at once instead of at the next poll (without it a sync
  // waited on average poll_interval / 2, ~0.5 s, measured by bench/sync).
  std::uint64_t wakeups = 0;
  std::vector<std::thread> threads;
  // Jobs running now, by job id, with their lease-lost flags and progress (the
  // keeper renews their leases and stores their progress).
  struct Running {
    store::SyncJob job;  // its progress fields: what the keeper last stored
    std::atomic<bool>* lease_lost;
    const JobProgress* progress;
    std::chrono::steady_clock::time_point renewed;
  };
  std::map<std::string, Running> running;

  // Apple clients wait through this: a shutdown wakes every waiting job at once.
  apple::SleepFunction sleep;

  Impl(store::Store& s, EngineOptions o)
      : store(s), options(std::move(o)), clock(options.clock ? *options.clock : Clock::Real()) {
    sleep = options.sleep ? options.sleep : apple::SleepFunction([this](std::chrono::milliseconds d) {
      std::unique_lock lock(mu);
      wake.wait_for(lock, d, [&] { return stopping.load(); });
    });
  }

  Timestamp LeaseMicros() const { return std::chrono::duration_cast<std::chrono::microseconds>(options.lease).count(); }

  Status Run(const store::SyncJob& job) {
    // Every line the job logs (Apple retries included) names the job and its token.
    log::ContextScope log_scope(
        {.component = "sync", .tenant_id = job.tenant_id, .job_id = job.id, .token_id = job.token_id});
    std::atomic<bool> lease_lost{false};
    JobProgress progress;
    {
      std::lock_guard lock(mu);
      running.emplace(job.id, Running{job, &lease_lost, &progress, std::chrono::steady_clock::now()});
    }
    JobContext ctx{store, options, clock, job, lease_lost, stopping, sleep, progress, metadata};
    const auto started = std::chrono::steady_clock::now();
    // Claim and end lines bracket every run: with several instances on one store
    // they show which worker ran what, and that no token ran twice at once.
    spdlog::info("job {} (token {}, {}): claimed by {}, attempt {}", job.id, job.token_id, job.kind, job.lease_owner,
                 job.attempts);
    Status result;
    if (job.kind == kSyncLicenses) {
      result = RunSyncLicenses(ctx);
    } else if (job.kind == kSyncLicenseCounts) {
      result = RunSyncLicenseCounts(ctx);
    } else if (job.kind == kRevokeLicenses) {
      result = RunRevokeLicenses(ctx);
      if (result) {
        // Revoking changed Apple's data: resync so Graph shows it.
        if (auto again = RequestJob(store, job.tenant_id, job.token_id, kSyncLicenses, "", clock.Now(),
                                    options.keep_action_results);
            !again && again.error().code != Code::kNotFound) {
          spdlog::warn("token {}: could not queue the resync after revokeLicenses: {}", job.token_id,
                       again.error().message);
        }
      }
    } else if (job.kind == kReconcile) {
      result = RunReconcile(ctx);
    } else if (job.kind == kRevokeAppLicenses) {
      result = RunRevokeAppLicenses(ctx);
    } else {
      result = FinishFailed(ctx, job.kind, "", "unknown job kind '" + job.kind + "'");
    }
    if (result && (job.kind == kSyncLicenses || job.kind == kSyncLicenseCounts)) {
      // New counts (licences bought or freed) may serve devices that waited: a
      // reconcile, when the token has assignments or Apple events to follow.
      auto assignments = store.ListAssignmentsOfToken(job.tenant_id, job.token_id);
      auto events = store.ListAppleEvents(job.tenant_id, job.token_id);
      if ((assignments && !assignments->empty()) || (events && !events->empty())) {
        if (auto queued = RequestReconcile(store, job.tenant_id, job.token_id, clock.Now()); queued) {
          {
            std::lock_guard lock(mu);
            ++wakeups;
          }
          wake.notify_all();
        } else if (queued.error().code != Code::kNotFound) {
          spdlog::warn("token {}: could not queue the reconcile after {}: {}", job.token_id, job.kind,
                       queued.error().message);
        }
      }
    }
    if (ctx.superseded && job.kind == kSyncLicenses) {
      // The token got a new sToken while this job ran; its own sync request was
      // coalesced into this job, so queue the sync it asked for now.
      if (auto again = RequestJob(store, job.tenant_id, job.token_id, kSyncLicenses, "", clock.Now(),
                                  options.keep_action_results);
          !again && again.error().code != Code::kNotFound) {
        spdlog::warn("token {}: could not queue the sync of its renewed sToken: {}", job.token_id,
                     again.error().message);
      }
    }
    {
      std::lock_guard lock(mu);
      running.erase(job.id);
    }
    // What the job ended as, for GET /metrics (the token records the details).
    const std::string outcome = result ? "completed" : lease_lost ? "lease_lost" : stopping ? "handed_back" : "failed";
    const std::string kind = job.kind == kSyncLicenses || job.kind == kSyncLicenseCounts ||
                                     job.kind == kRevokeLicenses || job.kind == kReconcile ||
                                     job.kind == kRevokeAppLicenses
                                 ? job.kind
                                 : "other";
    spdlog::info(
        "job {} (token {}, {}): {} after {} ms", job.id, job.token_id, job.kind, outcome,
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
    metrics::Counter("vppd_sync_jobs_total", "Sync jobs run, by kind and outcome",
                     {{"kind", kind}, {"outcome", outcome}})
        .Inc();
    metrics::Histogram("vppd_sync_duration_seconds", "Time a sync job ran, by kind", {{"kind", kind}})
        .Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    return result;
  }

  Result<bool> RunOne(const std::string& worker) {
    auto claimed = store.ClaimJob(worker, clock.Now(), options.lease);
    if (!claimed) return Fail(claimed.error());
    if (!*claimed) return false;
    (void)Run(**claimed);  // outcomes are recorded on the token and logged
    return true;
  }

  void WorkerLoop(int n) {
    const std::string worker =
        options.installation_id.substr(0, 8) + "/" + std::to_string(::getpid()) + "/w" + std::to_string(n);
    while (!stopping) {
      std::uint64_t seen = 0;  // read before looking for work, so a Wake() during the look is not lost
      {
        std::lock_guard lock(mu);
        seen = wakeups;
      }
      auto ran = RunOne(worker);
      if (!ran) spdlog::warn("sync worker {}: {}", worker, ran.error().message);
      if (ran && *ran) continue;  // there may be more
      std::unique_lock lock(mu);
      wake.wait_for(lock, options.poll_interval, [&] { return stopping.load() || wakeups != seen; });
    }
  }

  // Renews the leases of running jobs every lease/3, and stores a job's progress
  // with an early renewal when it moved (at most every progress_interval). A job
  // whose renewal fails has been taken by another worker (its lease expired, e.g.
  // a long stall), so it is told to stop writing.
  void KeeperLoop() {
    const auto renew_every = std::chrono::duration_cast<std::chrono::steady_clock::duration>(options.lease / 3);
    const auto tick = std::min<std::chrono::milliseconds>(options.lease / 3, options.progress_interval);
    while (!stopping) {
      {
        std::unique_lock lock(mu);
        wake.wait_for(lock, tick, [&] { return stopping.load(); });
      }
      const auto now = std::chrono::steady_clock::now();
      std::vector<store::SyncJob> due;
      {
        std::lock_guard lock(mu);
        for (auto& [id, r] : running) {
          const std::int64_t pages = r.progress->pages_walked.load();
          const std::int64_t total = r.progress->pages_total.load();
          const std::int64_t staged = r.progress->assignments_staged.load();
          const bool moved =
              pages != r.job.pages_walked || total != r.job.pages_total || staged != r.job.assignments_staged;
          if (!moved && now - r.renewed < renew_every) continue;
          store::SyncJob job = r.job;
          job.pages_walked = pages;
          job.pages_total = total;
          job.assignments_staged = staged;
          due.push_back(std::move(job));
        }
      }
      for (const auto& job : due) {
        log::ContextScope log_scope(
            {.component = "sync", .tenant_id = job.tenant_id, .job_id = job.id, .token_id = job.token_id});
        if (auto ok = store.RenewLease(job, clock.Now() + LeaseMicros()); !ok) {
          if (ok.error().code == Code::kFailedPrecondition) {
            std::lock_guard lock(mu);
            if (auto it = running.find(job.id); it != running.end()) *it->second.lease_lost = true;
          }
          // A job whose row is gone ended between the look at `running` and the
          // renewal (its row goes as it finishes), or its token was deleted: the
          // usual end of a job, not a lease another worker took.
          auto rows = store.FindJobs(job.tenant_id, job.token_id);
          const bool gone =
              rows && std::none_of(rows->begin(), rows->end(), [&](const store::SyncJob& j) { return j.id == job.id; });
          if (gone) {
            spdlog::info("job {} (token {}): ended (or its token was deleted) as its lease was renewed", job.id,
                         job.token_id);
          } else {
            spdlog::warn("job {} (token {}): lease renewal failed: {}", job.id, job.token_id, ok.error().message);
          }
          continue;
        }
        std::lock_guard lock(mu);
        if (auto it = running.find(job.id); it != running.end()) {
          it->second.renewed = now;
          it->second.job.pages_walked = job.pages_walked;
          it->second.job.pages_total = job.pages_total;
          it->second.job.assignments_staged = job.assignments_staged;
        }
      }
    }
  }

  // The interval of the scheduled syncs: the incremental one (hourly) when it is
  // shorter than the daily one, or the only one set; 0 when both are off. Every
  // scheduled sync is a syncLicenses, incremental unless a full walk is due.
  std::chrono::seconds SyncInterval() const {
    const auto daily = options.auto_sync_interval, incremental = options.incremental_interval;
    if (incremental.count() <= 0) return daily.count() > 0 ? daily : std::chrono::seconds(0);
    if (daily.count() <= 0) return incremental;
    return std::min(daily, incremental);
  }

  // How often the scheduler looks for due tokens: every minute, and four times
  // per interval for a short one (tests, benchmarks).
  std::chrono::milliseconds SchedulerPeriod() const {
    return std::clamp<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(SyncInterval()) / 4, std::chrono::milliseconds(100),
        std::chrono::milliseconds(60'000));
  }

  void SchedulerLoop() {
    const std::chrono::milliseconds period = SchedulerPeriod();
    while (!stopping) {
      if (auto ok = ScheduleDue(); !ok) spdlog::warn("sync scheduler: {}", ok.error().message);
      std::unique_lock lock(mu);
      wake.wait_for(lock, period, [&] { return stopping.load(); });
    }
  }

  Status ScheduleDue() {
    if (SyncInterval().count() <= 0) return {};
    const Timestamp now = clock.Now();
    const Timestamp interval = std::chrono::duration_cast<std::chrono::microseconds>(SyncInterval()).count();
    // Spread over a tenth of the interval (at most an hour) so that tokens synced
    // together do not all hit Apple at once: each token is due at its own offset
    // within the spread. A token is taken up the spread (and the scheduler's
    // period) before its interval is over, so that its sync starts within the
    // interval: freshness without notifications is bounded by it. The job is
    // queued when the token is due, not before: a token shows inProgress only
    // while its sync is about to run or running, and a syncLicenses asked for
    // meanwhile is not held back to a later start.
    const Timestamp spread = std::min<Timestamp>(interval / 10, 3'600'000'000LL);
    const Timestamp lead = spread + std::chrono::duration_cast<std::chrono::microseconds>(SchedulerPeriod()).count();
    const Timestamp earliest = std::max(interval - lead, interval / 2);
    auto due = store.TokensDueForSync(now - earliest, 100);
    if (!due) return Fail(due.error());
    for (const store::DueToken& d : *due) {
      const Timestamp offset =
          spread > 0 ? static_cast<Timestamp>(std::stoull(Sha256Hex(d.token_id).substr(0, 12), nullptr, 16) %
                                              static_cast<unsigned long long>(spread))
                     : 0;
      // A token never synced (its first sync failed) is due at once.
      if (d.last_sync != 0 && d.last_sync + earliest + offset > now) continue;
      auto queued =
          RequestJob(store, d.tenant_id, d.token_id, kSyncLicenses, "", now, options.keep_action_results, now);
      if (!queued && queued.error().code != Code::kNotFound) return Fail(queued.error());
    }
    return {};
  }
};

Engine::Engine(store::Store& store, EngineOptions options) : impl_(std::make_unique<Impl>(store, std::move(options))) {
  if (impl_->options.installation_id.empty()) impl_->options.installation_id = NewGuid();
}

Engine::~Engine() { Stop(); }

void Engine::Start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->started) return;
  impl_->started = true;
  for (int i = 0; i < impl_->options.workers; ++i) impl_->threads.emplace_back([this, i] { impl_->WorkerLoop(i); });
  impl_->threads.emplace_back([this] { impl_->KeeperLoop(); });
  impl_->threads.emplace_back([this] { impl_->SchedulerLoop(); });
}

void Engine::Stop(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->started || impl_->stopping) return;
  }
  // Give running jobs the grace period to finish before telling them to wrap up.
  const auto deadline = std::chrono::steady_clock::now() + grace;
  for (;;) {
    {
      std::lock_guard lock(impl_->mu);
      if (impl_->running.empty() || std::chrono::steady_clock::now() >= deadline) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  impl_->stopping = true;  // running jobs hand themselves back at their next page
  impl_->wake.notify_all();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

void Engine::Wake() {
  {
    std::lock_guard lock(impl_->mu);
    ++impl_->wakeups;
  }
  // notify_all: the keeper, the scheduler and waiting jobs share the condition
  // variable; their predicates send them back to sleep.
  impl_->wake.notify_all();
}

Result<bool> Engine::RunOne(const std::string& worker) { return impl_->RunOne(worker); }

Status Engine::ScheduleDueSyncs() { return impl_->ScheduleDue(); }

}  // namespace vppd::sync
