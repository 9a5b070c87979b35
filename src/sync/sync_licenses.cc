// syncLicenses: bring one token's apps, license counts and assignments in line
// with Apple. The steps and their failure states follow issue #5 (README "Sync").
#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>

#include <spdlog/spdlog.h>

#include "sync/jobs.h"
#include "sync/sync_internal.h"

namespace vppd::sync {

SyncFailure FromAppleError(const apple::AppleError& e) {
  using K = apple::AppleErrorKind;
  switch (e.kind) {
    case K::kTokenExpired:
      return {"expired", e.Describe()};
    case K::kTokenRevoked:
    case K::kTokenInvalid:
      return {"invalid", e.Describe()};
    default:
      return {"", e.Describe()};
  }
}

namespace {

// Seconds since `start` on the monotonic clock, for the phase timings in the sync log line.
double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// The Graph app types an asset appears as: iosVppApp for iOS-family platforms,
// macOsVppApp for macOS; an asset on both gives both.
std::vector<std::string> AppPlatforms(const apple::Asset& asset) {
  bool ios = false, mac = false;
  for (const auto& p : asset.supported_platforms) {
    if (p == "macOS")
      mac = true;
    else
      ios = true;  // iOS, tvOS, watchOS, visionOS are iOS-family apps in Graph
  }
  if (!ios && !mac) ios = true;  // Apple gave no platforms: an iOS app is the common case
  std::vector<std::string> out;
  if (ios) out.push_back("iOS");
  if (mac) out.push_back("macOS");
  return out;
}

}  // namespace

std::string StoreCountry(const store::VppToken& token, const apple::ClientConfig& config) {
  return token.country_or_region && !token.country_or_region->empty() ? Lower(*token.country_or_region)
                                                                      : Lower(config.country_iso2a);
}

apple::AppleResult<Gathered> WalkAssetsOnly(JobContext& ctx, apple::Client& client, Timestamp now) {
  Gathered g;
  auto walk = client.WalkAssets({}, [&](const apple::AssetsPage& page) -> Status {
    if (ctx.stopping) return Fail(Error::Unavailable("shutting down"));
    for (const auto& a : page.items) {
      // Apps and books (mobileApps and managedEBooks); another product type Apple may add is not ours to show.
      if (a.product_type == "App" || a.product_type == "Book") g.app_asset_list.push_back(a);
    }
    return {};
  });
  if (!walk) return tl::unexpected(walk.error());
  if (walk->version_changed) {
    g.version_changed = true;
    return g;
  }
  g.assets_version = walk->version_id;
  std::vector<std::string> ids;
  for (const auto& a : g.app_asset_list) ids.push_back(a.adam_id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (auto& m : ctx.metadata.Find(ids, now, g.unnamed)) g.names.emplace(m.adam_id, std::move(m));
  return g;
}

void LookUpNames(JobContext& ctx, apple::Client& client, const store::VppToken& token, Gathered& g, Timestamp now) {
  if (g.unnamed.empty()) return;
  if (auto found = client.LookupMetadata(g.unnamed)) {
    ctx.metadata.Remember(*found, now);
    for (auto& m : *found) g.names.emplace(m.adam_id, std::move(m));
  } else {
    spdlog::warn("token {}: app metadata lookup failed, apps are listed by adamId: {}", token.id,
                 found.error().Describe());
  }
  g.unnamed.clear();
}

apple::AppleResult<Gathered> WalkAssets(JobContext& ctx, apple::Client& client, const store::VppToken& token,
                                        const std::string& country, Timestamp now) {
  auto g = WalkAssetsOnly(ctx, client, now);
  if (!g || g->version_changed) return g;
  LookUpNames(ctx, client, token, *g, now);
  BuildApps(token, country, now, *g);
  return g;
}

namespace {

// A book asset as a row of mobile_apps (product_type Book): one per (adamId,
// pricingParam), whatever platforms Apple lists (Graph has one iosVppEBook type),
// named and described by the lookup (kind ebook) when it knows the book.
store::MobileApp BuildBook(const store::VppToken& token, const std::string& country, Timestamp now,
                           const apple::Asset& a, const apple::AppMetadata* m) {
  store::MobileApp book;
  book.id = MobileAppId(token.id, a.adam_id, a.pricing_param, "book");
  book.token_id = token.id;
  book.platform = "iOS";
  book.adam_id = a.adam_id;
  book.pricing_param = a.pricing_param;
  book.product_type = "Book";
  book.display_name = m != nullptr && !m->name.empty() ? m->name : "Book " + a.adam_id;
  if (m != nullptr) {
    book.publisher = m->artist_name;
    if (!m->seller_name.empty()) book.seller = m->seller_name;
    book.genres = m->genres;
  }
  book.total_licenses = a.unlimited ? 2147483647 : a.total_count;
  book.used_licenses = a.assigned_count;
  book.device_assignable = false;  // Apple assigns books to users only, whatever the asset says
  book.revocable = a.revocable;
  book.app_store_url =
      "https://books.apple.com/" + (country.empty() ? std::string("us") : country) + "/book/id" + a.adam_id;
  book.token_organization_name = token.organization_name;
  book.token_apple_id = token.apple_id;
  book.token_display_name = token.display_name;
  book.token_account_type = token.account_type;
  book.created = now;
  book.last_modified = now;
  return book;
}

}  // namespace

void BuildApps(const store::VppToken& token, const std::string& country, Timestamp now, Gathered& g) {
  const auto& app_assets = g.app_asset_list;
  const auto& meta = g.names;
  std::set<std::pair<std::string, std::string>> distinct;
  for (const auto& a : app_assets) {
    const auto m = meta.find(a.adam_id);
    if (a.product_type == "Book") {
      g.apps.push_back(BuildBook(token, country, now, a, m != meta.end() ? &m->second : nullptr));
      continue;
    }
    distinct.emplace(a.adam_id, a.pricing_param);
    for (const auto& platform : AppPlatforms(a)) {
      store::MobileApp app;
      app.id = MobileAppId(token.id, a.adam_id, a.pricing_param, platform);
      app.token_id = token.id;
      app.platform = platform;
      app.adam_id = a.adam_id;
      app.pricing_param = a.pricing_param;
      app.product_type = a.product_type;
      app.display_name = m != meta.end() && !m->second.name.empty() ? m->second.name : "App " + a.adam_id;
      app.bundle_id = m != meta.end() ? m->second.bundle_id : "";
      app.total_licenses = a.unlimited ? 2147483647 : a.total_count;
      app.used_licenses = a.assigned_count;
      app.device_assignable = a.device_assignable;
      app.revocable = a.revocable;
      app.app_store_url =
          "https://apps.apple.com/" + (country.empty() ? std::string("us") : country) + "/app/id" + a.adam_id;
      app.token_organization_name = token.organization_name;
      app.token_apple_id = token.apple_id;
      app.token_display_name = token.display_name;
      app.token_account_type = token.account_type;
      app.created = now;
      app.last_modified = now;
      g.apps.push_back(std::move(app));
    }
  }
  g.app_assets = static_cast<std::int64_t>(distinct.size());
}

namespace {

// LookUpNames on a thread of its own while the assignments are walked: the
// lookup is another Apple service (contentMetadataLookup, no sToken), one
// request per 100 apps the cache does not know, one after the other (~17 for a
// location's first sync of 1,600 apps: ~8 ms against the simulator, more
// against Apple) that no longer wait in line before the walk. Joined by Wait or
// the destructor, whichever comes first; without a thread (none could be
// started) Wait does the lookup.
class NameLookup {
 public:
  NameLookup(JobContext& ctx, apple::Client& client, const store::VppToken& token, Gathered& g, Timestamp now)
      : ctx_(ctx), client_(client), token_(token), g_(g), now_(now) {
    if (g.unnamed.empty()) return;
    try {
      thread_ = std::thread([this] { LookUpNames(ctx_, client_, token_, g_, now_); });
    } catch (const std::system_error& e) {
      spdlog::warn("token {}: app names looked up after the walk (no thread: {})", token.id, e.what());
    }
  }
  ~NameLookup() {  // A walk that failed or restarts: no lookup left to start.
    if (thread_.joinable()) thread_.join();
  }
  NameLookup(const NameLookup&) = delete;
  NameLookup& operator=(const NameLookup&) = delete;

  void Wait() {
    if (thread_.joinable())
      thread_.join();
    else
      LookUpNames(ctx_, client_, token_, g_, now_);  // No-op once the names are in.
  }

 private:
  JobContext& ctx_;
  apple::Client& client_;
  const store::VppToken& token_;
  Gathered& g_;
  Timestamp now_;
  std::thread thread_;
};

// Hands assignment pages from the walk to a thread of its own that writes them to
// the job's staging area, so that Apple's transfers and the parsing (the walk
// thread) overlap with the store's work instead of taking turns.
//
// The store keeps what one StageAssignments call brings for an app as one sorted
// run of chunks, and merges an app's runs when the sync finishes. So the stager
// collects pages into calls of EngineOptions::stage_rows rows: when Apple's pages
// come grouped by asset (as apple-vpp-sim's do) an app is split only where a call
// ends (a few apps per million rows); when they do not (Apple documents no order),
// each app gets one run per call, not one per page (store_sync_bench --order
// shuffled: bench/README.md "sync"). A full call leaves its trailing app's rows
// to the next (StageFull), so grouped pages split no app at all.
//
// While the stager stages one call, up to another call's worth of pages may wait
// in its queue (the walk goes on reading Apple meanwhile); past that the walk
// blocks until the stager catches up. Memory: about two calls' rows.
class Stager {
 public:
  explicit Stager(JobContext& ctx)
      : ctx_(ctx),
        stage_rows_(std::clamp<std::size_t>(ctx.options.stage_rows, 1, store::kMaxStagedRowsPerCall)),
        thread_([this] { Run(); }) {}
  // On an early return the walk has already failed; the stager's own error, if
  // any, adds nothing to that one.
  ~Stager() { (void)Finish(); }
  Stager(const Stager&) = delete;
  Stager& operator=(const Stager&) = delete;

  // Queues one page's rows; blocks while the queue is full. Returns the writer's
  // error once it has failed (nothing more is queued then).
  Status Push(store::StagedAssignments rows) {
    std::unique_lock lock(mu_);
    const auto waiting = std::chrono::steady_clock::now();
    space_.wait(lock, [&] { return queued_ < stage_rows_ || !error_ || queue_.empty(); });
    walk_waited_s_ += SecondsSince(waiting);
    if (!error_) return error_;
    queued_ += rows.size();
    queue_.push_back(std::move(rows));
    if (queued_ >= wake_at_) ready_.notify_one();
    return {};
  }

  // Stages what is queued, stops the thread and returns the first store error.
  Status Finish() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    ready_.notify_one();
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mu_);
    return error_;
  }

  // After Finish: seconds the stager spent in StageAssignments, and seconds the
  // walk waited for room in the queue (for the sync's log line).
  double store_seconds() const { return store_s_; }
  double cpu_seconds() const { return cpu_s_; }
  double walk_waited_seconds() const { return walk_waited_s_; }

 private:
  void Run() {
    struct CpuClock {  // the thread's CPU time at the end, however Run returns
      double& out;
      ~CpuClock() {
        timespec t{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
        out = static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
      }
    } cpu{cpu_s_};
    store::StagedAssignments buffer;
    // A page may take it past stage_rows_; ~40 bytes an id. No reallocation after.
    buffer.Reserve(stage_rows_ + 1000, (stage_rows_ + 1000) * 40);
    for (;;) {
      std::deque<store::StagedAssignments> pages;
      bool last = false;
      {
        // Woken once half a call's rows are queued (or what completes the
        // call, or at the end), not at every page: a wake-up per page cost the
        // stager a futex wait and a context switch 1,000 times per 1,000,000
        // rows, and the walk a futex wake. Half, not all: the walk goes on
        // queueing while the stager wakes (with a full queue it waited for that,
        // ~1 ms a call on a busy machine).
        std::unique_lock lock(mu_);
        wake_at_ = std::min(stage_rows_ - buffer.size(), std::max<std::size_t>(1, stage_rows_ / 2));
        ready_.wait(lock, [&] { return queued_ >= wake_at_ || closed_; });
        pages.swap(queue_);
        queued_ = 0;
        last = closed_;
      }
      space_.notify_one();
      for (auto& page : pages) {
        buffer.Append(page);
        if (buffer.size() >= stage_rows_ && !StageFull(buffer)) return;
      }
      if (last) {
        Stage(buffer);
        return;
      }
    }
  }

  // Stages a full buffer but for its trailing app's rows, which open the next
  // call (unless they are half a call or more). Apple's pages come grouped by
  // asset in practice, so an app then lands in one call: one run, nothing for
  // FinishJob to merge (~0.5 ms an app, ~20 apps a 1,000,000-row sync, on the
  // sync's serial tail). False (error_ set) when the store failed.
  bool StageFull(store::StagedAssignments& buffer) {
    const auto& rows = buffer.rows();
    std::size_t cut = rows.size();
    while (cut > 0 && rows[cut - 1].app == rows.back().app) --cut;
    if (cut == 0 || rows.size() - cut >= stage_rows_ / 2) return Stage(buffer);
    carry_.Clear();
    buffer.MoveTailTo(cut, carry_);
    if (!Stage(buffer)) return false;
    buffer.Append(carry_);
    return true;
  }

  // Stages `buffer` (when not empty) and empties it; false (error_ set) when the
  // store failed.
  bool Stage(store::StagedAssignments& buffer) {
    if (buffer.empty()) return true;
    const auto staging = std::chrono::steady_clock::now();
    Status ok = ctx_.store.StageAssignments(ctx_.job, buffer);
    store_s_ += SecondsSince(staging);
    if (!ok) {
      std::lock_guard lock(mu_);
      error_ = ok;
      queue_.clear();
      queued_ = 0;
      space_.notify_all();
      return false;
    }
    ctx_.progress.assignments_staged += static_cast<std::int64_t>(buffer.size());
    buffer.Clear();
    return true;
  }

  JobContext& ctx_;
  const std::size_t stage_rows_;
  std::mutex mu_;
  std::condition_variable ready_;  // the writer waits for rows (or the close)
  std::condition_variable space_;  // the walk waits for room in the queue
  std::deque<store::StagedAssignments> queue_;
  std::size_t queued_ = 0;          // rows in queue_
  store::StagedAssignments carry_;  // StageFull's trailing app, between two calls
  std::size_t wake_at_ = 1;         // queued rows that make a call with the stager's buffer: Push wakes it then
  bool closed_ = false;
  Status error_;
  double store_s_ = 0;        // the stager thread's
  double cpu_s_ = 0;          // CPU time of the stager thread, set when it ends
  double walk_waited_s_ = 0;  // guarded by mu_
  std::thread thread_;        // last: started once the members above exist
};

// Streams the assignments walk (full when `since` is empty) into the job's staging
// area, page by page (through a Stager). A versionId change restarts nothing here:
// it is reported. When the store fails, `store_error` holds its error.
struct StagingTimes {
  double store_s = 0, cpu_s = 0, walk_waited_s = 0;  // see Stager
};

apple::AppleResult<apple::WalkResult> StageAssignmentsWalk(JobContext& ctx, apple::Client& client,
                                                           const std::string& since, Status& store_error,
                                                           StagingTimes& times) {
  auto aborted = [](const Error& cause) {
    apple::AppleError e;
    e.kind = apple::AppleErrorKind::kAborted;
    e.error_message = cause.message;
    e.cause = cause;
    return e;
  };
  if (auto ok = ctx.store.ClearStaged(ctx.job); !ok) {
    store_error = ok;
    return tl::unexpected(aborted(ok.error()));
  }
  apple::AssignmentFilter filter;
  filter.since_version_id = since;
  ctx.progress.pages_walked = 0;  // a restarted walk counts again from the start
  ctx.progress.pages_total = 0;
  ctx.progress.assignments_staged = 0;
  Stager stager(ctx);
  auto walk = client.WalkAssignments(filter, [&](const apple::AssignmentsPage& page) -> Status {
    if (ctx.stopping) return Fail(Error::Unavailable("shutting down"));
    if (ctx.lease_lost) return Fail(Error::FailedPrecondition("lease lost"));
    ++ctx.progress.pages_walked;
    ctx.progress.pages_total = page.total_pages;
    store::StagedAssignments rows;
    rows.Reserve(page.items.size(), page.items.size() * 40);
    for (const auto& a : page.items) rows.Add(a.adam_id, a.pricing_param, a.client_user_id, a.serial_number);
    return stager.Push(std::move(rows));
  });
  // Every page the walk delivered is staged before the snapshot is swapped in.
  Status staged = stager.Finish();
  times = {stager.store_seconds(), stager.cpu_seconds(), stager.walk_waited_seconds()};
  if (!staged) {
    store_error = staged;
    return tl::unexpected(aborted(staged.error()));
  }
  return walk;
}

}  // namespace

tl::expected<Prepared, SyncFailure> Prepare(JobContext& ctx, const std::string& kind) {
  const Timestamp now = ctx.clock.Now();
  const auto& job = ctx.job;
  auto loaded = ctx.store.GetToken(job.tenant_id, job.token_id);
  if (!loaded) return tl::unexpected(SyncFailure{"", "", loaded.error()});
  store::VppToken& token = *loaded;
  ctx.loaded_expiration = token.expiration;
  // Mark the entry active so readers see the work is running.
  (void)ctx.store.UpdateToken(job.tenant_id, job.token_id, [&](store::VppToken& t) -> Status {
    ActionEntry(t, kind, now, ctx.options.keep_action_results).action_state = "active";
    return {};
  });
  // 1. An expired token: no call to Apple.
  if (token.expiration <= now) {
    return tl::unexpected(SyncFailure{"expired", "the sToken expired at " + FormatIso8601(token.expiration) +
                                                     "; download a new one from Apple School/Business Manager "
                                                     "and renew the token"});
  }
  auto secret = ctx.store.GetTokenSecret(job.tenant_id, job.token_id);
  if (!secret) return tl::unexpected(SyncFailure{"", "", secret.error()});
  auto made = MakeClient(ctx, *secret);
  if (!made) return tl::unexpected(FromAppleError(made.error()));
  std::unique_ptr<apple::Client> client = std::move(*made);

  // 2. Client config: the location's identity and who manages it.
  auto fetched = client->GetClientConfig();
  if (!fetched) return tl::unexpected(FromAppleError(fetched.error()));
  apple::ClientConfig& config = *fetched;
  if (token.apple_uid && !token.apple_uid->empty() && *token.apple_uid != config.uid) {
    return tl::unexpected(SyncFailure{"invalid", "the sToken belongs to another location (Apple uId " + config.uid +
                                                     ") than this vppToken was created for (uId " + *token.apple_uid +
                                                     "); add it as a new vppToken instead of renewing this one"});
  }
  auto others = ctx.store.FindTokensByAppleUid(job.tenant_id, config.uid, job.token_id);
  if (!others) return tl::unexpected(SyncFailure{"", "", others.error()});
  for (const auto& other : *others) {
    const bool other_is_older =
        other.created < token.created || (other.created == token.created && other.id < token.id);
    if (other_is_older) {
      return tl::unexpected(SyncFailure{
          "duplicateLocationId", "vppToken " + other.id + " of this tenant already manages location '" +
                                     config.location_name + "' (Apple uId " + config.uid + "); remove one of the two"});
    }
  }
  const apple::MdmInfo ours = OurMdmInfo(ctx.options.installation_id, job.tenant_id);
  if (!config.mdm_info || config.mdm_info->id != ours.id) {
    if (config.mdm_info && !config.mdm_info->id.empty() && !token.claim_token_management_from_external_mdm) {
      return tl::unexpected(
          SyncFailure{"assignedToExternalMDM", "the location is managed by another MDM ('" + config.mdm_info->name +
                                                   "', id " + config.mdm_info->id +
                                                   "); set claimTokenManagementFromExternalMdm to take it over"});
    }
    auto set = client->SetClientConfig(ours);
    if (!set) return tl::unexpected(FromAppleError(set.error()));
    if (config.mdm_info) {
      spdlog::info("token {}: took over location '{}' from MDM '{}'", job.token_id, config.location_name,
                   config.mdm_info->name);
    }
  }
  EnsureNotificationRegistration(ctx, *client, token, config);
  return Prepared{std::move(token), std::move(client), std::move(config)};
}

// A failure from Prepare or a job: recorded on the token, or — for store trouble — the job handed back.
Status EndWith(JobContext& ctx, const std::string& kind, const SyncFailure& f) {
  if (f.store_error) {
    if (f.store_error->code == Code::kNotFound) return FinishWithoutSnapshot(ctx, nullptr, *f.store_error);
    return ReleaseOrAbandon(ctx, *f.store_error);
  }
  if (ctx.stopping) return ReleaseForRetry(ctx, Error::Unavailable("shutting down"));
  spdlog::warn("token {} (tenant {}): {} failed: {}", ctx.job.token_id, ctx.job.tenant_id, kind, f.reason);
  return FinishFailed(ctx, kind, f.state, f.reason);
}

Status RunSyncLicenses(JobContext& ctx) {
  const Timestamp now = ctx.clock.Now();
  const auto& job = ctx.job;
  const int keep = ctx.options.keep_action_results;
  auto prepared = Prepare(ctx, kSyncLicenses);
  if (!prepared) return EndWith(ctx, kSyncLicenses, prepared.error());
  auto& token = prepared->token;
  auto& client = prepared->client;
  auto& config = prepared->config;
  auto fail = [&](const SyncFailure& f) { return EndWith(ctx, kSyncLicenses, f); };

  const std::string country = StoreCountry(token, config);

  // 3. Assets, then assignments (delta when trusted), restarted when the data moves.
  const bool delta_allowed =
      token.apple_version_id && !token.apple_version_id->empty() &&
      now - token.last_full_walk <
          std::chrono::duration_cast<std::chrono::microseconds>(ctx.options.full_walk_interval).count();
  bool try_delta = delta_allowed;
  // Phase timings of the last attempt (seconds), logged with the result: they say
  // where a slow sync spent its time (bench/sync).
  const auto started = std::chrono::steady_clock::now();
  double assets_s = 0, assignments_s = 0, finish_s = 0;
  StagingTimes staging;
  // When this sync began reading Apple (the last attempt): its snapshot holds what
  // Apple had then, and later changes only if the walk happened to see them. It is
  // the token's last_sync: a notification received after it is not covered by this
  // snapshot (ApplyAssetCount), a licence granted after it is not missing from it
  // (the reconcile's plan), and the scheduler counts the next interval from it.
  Timestamp read_from = now;
  for (int attempt = 0;; ++attempt) {
    if (attempt > ctx.options.max_walk_restarts) {
      return fail({"", "Apple's data kept changing during the walk (versionId moved " + std::to_string(attempt) +
                           " times); the next sync will try again"});
    }
    if (ctx.stopping) return ReleaseForRetry(ctx, Error::Unavailable("shutting down"));
    auto phase = std::chrono::steady_clock::now();
    read_from = ctx.clock.Now();
    auto gathered = WalkAssetsOnly(ctx, *client, now);
    assets_s = SecondsSince(phase);
    if (gathered && gathered->version_changed) continue;  // versionId moved: walk again
    if (!gathered) {
      if (ctx.stopping) return ReleaseForRetry(ctx, Error::Unavailable("shutting down"));
      return fail(FromAppleError(gathered.error()));
    }
    NameLookup names(ctx, *client, token, *gathered, now);
    Status store_error;
    phase = std::chrono::steady_clock::now();
    auto walk = StageAssignmentsWalk(ctx, *client, try_delta ? *token.apple_version_id : "", store_error, staging);
    assignments_s = SecondsSince(phase);
    if (!walk) {
      if (!store_error) return ReleaseOrAbandon(ctx, store_error.error());
      if (walk.error().kind == apple::AppleErrorKind::kVersionIdInvalid && try_delta) {
        try_delta = false;  // Apple forgot our versionId: walk everything
        continue;
      }
      if (ctx.stopping) return ReleaseForRetry(ctx, Error::Unavailable("shutting down"));
      return fail(FromAppleError(walk.error()));
    }
    // A change between or during the walks: the counts and assignments would disagree.
    if (walk->version_changed || (!try_delta && walk->version_id != gathered->assets_version)) continue;

    names.Wait();
    BuildApps(token, country, now, *gathered);
    store::SyncSnapshot snapshot;
    snapshot.apps = std::move(gathered->apps);
    snapshot.assignments = try_delta ? store::SyncSnapshot::Assignments::kMergeStaged
                                     : store::SyncSnapshot::Assignments::kReplaceWithStaged;
    const bool full = !try_delta;
    const std::int64_t app_count = gathered->app_assets;
    const std::string version = walk->version_id;
    phase = std::chrono::steady_clock::now();
    auto done = ctx.store.FinishJob(job, snapshot, [&](store::VppToken& t) -> Status {
      if (!SameSToken(ctx, t)) {
        // Renewed while this sync ran: the snapshot is still Apple's truth for the
        // location, but the token's state is for the sync of the new sToken to say.
        ActionEntry(t, kSyncLicenses, ctx.clock.Now(), keep).action_state = "done";
        return {};
      }
      t.apple_uid = config.uid;
      t.apple_version_id = version;
      if (full) t.last_full_walk = now;
      t.location_name = config.location_name;
      if (!t.country_or_region || t.country_or_region->empty()) t.country_or_region = Lower(config.country_iso2a);
      t.last_app_count = static_cast<std::int32_t>(app_count);
      t.last_sync = read_from;
      t.state = "valid";
      t.last_sync_status = "completed";
      t.last_sync_error.clear();
      ActionEntry(t, kSyncLicenses, ctx.clock.Now(), keep).action_state = "done";
      return {};
    });
    finish_s = SecondsSince(phase);
    if (done) {
      spdlog::info(
          "token {} (tenant {}): synced {} apps, {} assignment rows {} (versionId {}) in {:.3f} s: assets {:.3f} s, "
          "assignments walk {:.3f} s (staging busy {:.3f} s, {:.3f} s of CPU; walk waited {:.3f} s for it), snapshot "
          "swap {:.3f} s",
          job.token_id, job.tenant_id, app_count, walk->items, full ? "walked in full" : "merged from a delta", version,
          SecondsSince(started), assets_s, assignments_s, staging.store_s, staging.cpu_s, staging.walk_waited_s,
          finish_s);
      return {};
    }
    if (done.error().code == Code::kFailedPrecondition && try_delta &&
        done.error().message.find("delta inconsistent") != std::string::npos) {
      spdlog::info("token {}: the delta does not add up to Apple's counts; walking everything", job.token_id);
      try_delta = false;
      continue;
    }
    if (done.error().code == Code::kNotFound) return {};  // token deleted during the sync: nothing to keep
    return ReleaseOrAbandon(ctx, done.error());
  }
}

}  // namespace vppd::sync
