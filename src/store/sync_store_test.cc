// The sync side of the SQLite store: apps, license assignments, the durable job
// queue (coalescing, claims, leases) and FinishJob's snapshots, including every
// failure path and tenant isolation of the new reads.
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "base/testing.h"
#include "store/migrations.h"
#include "store/raw_db_testing.h"
#include "store/store.h"
#include "store/store_testing.h"

namespace vppd::store {
namespace {

using namespace std::chrono_literals;
using Mode = SyncSnapshot::Assignments;

using testing::Backend;
using testing::Raw;
using testing::RawDb;

LicenseAssignment User(const std::string& adam, const std::string& user) { return {adam, "STDQ", user, ""}; }
LicenseAssignment Device(const std::string& adam, const std::string& serial) { return {adam, "STDQ", "", serial}; }

MobileApp App(const std::string& token_id, const std::string& adam, const std::string& platform, std::int64_t used) {
  MobileApp a;
  a.id = "app-" + token_id.substr(0, 8) + "-" + adam + "-" + platform;
  a.token_id = token_id;
  a.platform = platform;
  a.adam_id = adam;
  a.pricing_param = "STDQ";
  a.product_type = "App";
  a.display_name = "App " + adam;
  a.bundle_id = "com.example.app" + adam;
  a.total_licenses = 100;
  a.used_licenses = used;
  a.device_assignable = true;
  a.revocable = true;
  a.app_store_url = "https://apps.apple.com/us/app/id" + adam;
  a.token_display_name = "Token";
  return a;
}

Status NoChange(VppToken&) { return {}; }

// Every test runs on both stores (SQLite, and PostgreSQL when
// VPPD_TEST_DATABASE_URL is set), each on a fresh database.
class SyncStoreTest : public testing::StoreTest {
 protected:
  SyncStoreTest() : StoreTest("vppd-sync-store") {}

  VppToken Token(const std::string& tenant, const std::string& uid = "loc-1") {
    VppToken t;
    t.token = "sToken-" + uid;
    t.state = "valid";
    t.apple_uid = uid;
    Result<VppToken> created = store_->CreateToken(tenant, t);
    EXPECT_TRUE(created) << created.error().message;
    return created ? *created : VppToken{};
  }

  bool Enqueue(const std::string& tenant, const std::string& token_id, const std::string& kind = "syncLicenses",
               Timestamp not_before = 0) {
    EnqueueOptions o;
    o.kind = kind;
    o.not_before = not_before;
    Result<Store::Enqueued> e = store_->EnqueueJob(tenant, token_id, o, [](VppToken& t) -> Status {
      t.last_sync_status = "inProgress";
      return {};
    });
    EXPECT_TRUE(e) << e.error().message;
    return e && e->queued;
  }

  SyncJob Claim(const std::string& worker, std::chrono::milliseconds lease = 60s) {
    Result<std::optional<SyncJob>> job = store_->ClaimJob(worker, clock_.Now(), lease);
    EXPECT_TRUE(job) << job.error().message;
    EXPECT_TRUE(job && *job) << "nothing claimable";
    return job && *job ? **job : SyncJob{};
  }

  std::optional<SyncJob> TryClaim(const std::string& worker) {
    Result<std::optional<SyncJob>> job = store_->ClaimJob(worker, clock_.Now(), 60s);
    EXPECT_TRUE(job) << job.error().message;
    return job ? *job : std::nullopt;
  }

  // Enqueues, claims and finishes a full sync of `token` with `apps` and `rows`.
  Result<VppToken> FullSync(const std::string& tenant, const std::string& token_id, std::vector<MobileApp> apps,
                            const std::vector<LicenseAssignment>& rows, Mode mode = Mode::kReplaceWithStaged) {
    Enqueue(tenant, token_id);
    SyncJob job = Claim("w");
    EXPECT_EQ(job.token_id, token_id);
    EXPECT_TRUE(store_->StageAssignments(job, rows));
    SyncSnapshot snap;
    snap.apps = std::move(apps);
    snap.assignments = mode;
    return store_->FinishJob(job, snap, [](VppToken& t) -> Status {
      t.last_sync_status = "completed";
      return {};
    });
  }

  std::vector<LicenseAssignment> All(const std::string& tenant, const std::string& token_id) {
    std::vector<LicenseAssignment> all;
    EXPECT_TRUE(store_->ForEachAssignment(tenant, token_id, 1000, [&](const auto& batch) -> Status {
      all.insert(all.end(), batch.begin(), batch.end());
      return {};
    }));
    return all;
  }

  // Assignments staged by running walks (invisible to readers until FinishJob).
  // SQLite keeps them as chunks of an app's rows (its migration 8), PostgreSQL as rows.
  std::int64_t Staged() {
    return db_->raw().Int(std::string(pg() ? "SELECT count(*) FROM license_assignments"
                                           : "SELECT coalesce(sum(rows), 0) FROM assignment_chunks") +
                          " WHERE generation IN (SELECT generation FROM assignment_generations WHERE state = "
                          "'staging')");
  }
  // Every assignment stored, whatever its generation.
  std::int64_t RawRows() {
    return RawConn().Int(pg() ? "SELECT count(*) FROM license_assignments"
                              : "SELECT coalesce(sum(rows), 0) FROM assignment_chunks");
  }
  std::int64_t Generations(const std::string& state) {
    return RawConn().Int("SELECT count(*) FROM assignment_generations WHERE state = '" + state + "'");
  }
  // assignment_counts agrees with the rows of every set that is not garbage.
  bool CountsMatch() {
    Raw raw = RawConn();
    std::int64_t differ =
        raw.Int(std::string(pg() ? "SELECT count(*) FROM (SELECT generation, adam_id, pricing_param, count(*) AS n "
                                   "FROM license_assignments "
                                 : "SELECT count(*) FROM (SELECT generation, adam_id, pricing_param, sum(rows) AS n "
                                   "FROM assignment_chunks JOIN assignment_apps USING (app_key) ") +
                "WHERE generation IN (SELECT generation FROM assignment_generations WHERE state <> 'garbage') "
                "GROUP BY 1, 2, 3) r FULL OUTER JOIN (SELECT * FROM assignment_counts WHERE generation IN "
                "(SELECT generation FROM assignment_generations WHERE state <> 'garbage')) k "
                "USING (generation, adam_id, pricing_param) WHERE r.n " +
                std::string(pg() ? "IS DISTINCT FROM" : "IS NOT") + " k.rows");
    EXPECT_EQ(differ, 0) << "assignment_counts differs from the rows";
    if (!pg()) {
      // ...and from the chunks: how many there are, numbered 0..n-1 per set and app.
      std::int64_t chunks_differ = raw.Int(
          "SELECT count(*) FROM (SELECT generation, adam_id, pricing_param, count(*) AS n, max(chunk) AS top "
          "FROM assignment_chunks JOIN assignment_apps USING (app_key) "
          "WHERE generation IN (SELECT generation FROM assignment_generations WHERE state <> 'garbage') "
          "GROUP BY 1, 2, 3) r JOIN assignment_counts k USING (generation, adam_id, pricing_param) "
          "WHERE r.n <> k.chunks OR r.top <> k.chunks - 1");
      EXPECT_EQ(chunks_differ, 0) << "assignment_counts.chunks differs from the chunks";
      differ += chunks_differ;
    }
    return differ == 0;
  }
  // Waits (up to 10 s) until the collector has deleted every garbage set.
  bool WaitCollected() {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (Generations("garbage") == 0) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
  void Reopen() {
    store_.reset();
    Result<std::unique_ptr<Store>> opened = db_->Open(options_);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
  }

  bool pg() const { return db_->pg(); }
  // Raw SQL on the store's database (options_.path: some SQLite tests open another file).
  Raw RawConn() const {
    if (pg()) return db_->raw();
    return Raw(std::make_unique<testing::SqliteRaw>(options_.path));
  }
};
INSTANTIATE_TEST_SUITE_P(Store, SyncStoreTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

// Tests of SQLite's file: migrations of old files, the WAL.
class SqliteSyncFileTest : public SyncStoreTest {};
INSTANTIATE_TEST_SUITE_P(Store, SqliteSyncFileTest, ::testing::Values(Backend::kSqlite), testing::BackendName);

// --- schema -------------------------------------------------------------------------

TEST_P(SqliteSyncFileTest, MigratesAVersion1FileKeepingItsTokens) {
  store_.reset();
  std::string path = dir_.File("v1.db");
  {
    RawDb raw(path);
    raw.Exec(Migrations()[0].sql);
    raw.Exec("PRAGMA application_id=" + std::to_string(kApplicationId) + "; PRAGMA user_version=1;");
    raw.Exec(std::string("INSERT INTO tenants VALUES ('") + kTenantA + "', 'A', 1, 0)");
    raw.Exec(std::string("INSERT INTO vpp_tokens (tenant_id, id, account_type, expiration, last_sync, token_sealed, "
                         "last_modified, state, action_results, last_sync_status, automatically_update_apps, "
                         "data_sharing_consent, claim_from_external_mdm, role_scope_tag_ids, delivery_protocol, "
                         "last_app_count, created) VALUES ('") +
             kTenantA +
             "', 'old', 'business', 0, 0, 'not-even-sealed', 5, 'valid', '[]', 'none', 0, 0, 0, '[]', "
             "'default', 0, 5)");
  }
  options_.path = path;
  Result<std::unique_ptr<Store>> opened = Store::OpenSqlite(options_);
  ASSERT_TRUE(opened) << opened.error().message;
  store_ = std::move(*opened);
  EXPECT_EQ(RawDb(path).Int("PRAGMA user_version"), LatestSchemaVersion());
  Result<VppToken> old = store_->GetToken(kTenantA, "old");
  ASSERT_TRUE(old) << old.error().message;  // reads do not open the sealed column
  EXPECT_EQ(old->last_full_walk, 0);
  EXPECT_EQ(old->last_sync_error, "");
  // The migrated token got a token_key: a whole sync works on it.
  Result<VppToken> synced = FullSync(kTenantA, "old", {App("old", "1", "iOS", 1)}, {User("1", "u1")});
  ASSERT_TRUE(synced) << synced.error().message;
  EXPECT_EQ(All(kTenantA, "old").size(), 1u);
  // A new token gets the next key.
  VppToken fresh = Token(kTenantA);
  ASSERT_TRUE(FullSync(kTenantA, fresh.id, {App(fresh.id, "1", "iOS", 2)}, {User("1", "u1"), User("1", "u2")}));
  EXPECT_EQ(All(kTenantA, fresh.id).size(), 2u);
  EXPECT_EQ(All(kTenantA, "old").size(), 1u);
}

// --- the secret contract ---------------------------------------------------------------

TEST_P(SyncStoreTest, SecretIsOnlyReadThroughGetTokenSecretAndKeptUnlessRenewed) {
  VppToken t = Token(kTenantA);
  Raw raw = db_->raw();
  auto sealed = [&] { return raw.Int("SELECT length(token_sealed) FROM vpp_tokens"); };
  EXPECT_TRUE(store_->GetToken(kTenantA, t.id)->token.empty());
  EXPECT_TRUE(store_->ListTokens(kTenantA, {})->items[0].token.empty());

  // Enqueue and Finish without a new token keep the ciphertext byte for byte.
  std::int64_t before = sealed();
  ASSERT_TRUE(Enqueue(kTenantA, t.id));
  SyncJob job = Claim("w");
  Result<VppToken> done = store_->FinishJob(job, std::nullopt, NoChange);
  ASSERT_TRUE(done);
  EXPECT_TRUE(done->token.empty());
  EXPECT_EQ(sealed(), before);
  EXPECT_EQ(*store_->GetTokenSecret(kTenantA, t.id), "sToken-loc-1");

  // A renewal through EnqueueJob re-seals; so does one through FinishJob.
  EnqueueOptions o;
  Result<Store::Enqueued> e = store_->EnqueueJob(kTenantA, t.id, o, [](VppToken& x) -> Status {
    x.token = "renewed-by-enqueue";
    return {};
  });
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->token.token.empty());
  EXPECT_EQ(*store_->GetTokenSecret(kTenantA, t.id), "renewed-by-enqueue");
  job = Claim("w");
  ASSERT_TRUE(store_->FinishJob(job, std::nullopt, [](VppToken& x) -> Status {
    x.token = "renewed-by-finish";
    return {};
  }));
  EXPECT_EQ(*store_->GetTokenSecret(kTenantA, t.id), "renewed-by-finish");
  EXPECT_EQ(store_->GetTokenSecret(kTenantB, t.id).error().code, Code::kNotFound);
}

// --- jobs: enqueue ---------------------------------------------------------------------

TEST_P(SyncStoreTest, EnqueueCoalescesPerTokenAndKind) {
  VppToken t = Token(kTenantA);
  clock_.Advance(10s);
  EXPECT_TRUE(Enqueue(kTenantA, t.id));
  int calls = 0;
  clock_.Advance(10s);
  Result<Store::Enqueued> again = store_->EnqueueJob(kTenantA, t.id, {}, [&](VppToken&) -> Status {
    ++calls;
    return {};
  });
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->queued);
  EXPECT_EQ(calls, 0) << "a coalesced enqueue must not mutate the token";
  EXPECT_EQ(again->token.last_sync_status, "inProgress");
  EXPECT_EQ(again->token.last_modified, kT0 + 10 * kSecond) << "nothing written";
  EXPECT_EQ(*store_->CountJobs(), 1);

  EXPECT_TRUE(Enqueue(kTenantA, t.id, "revokeLicenses"));  // another kind: its own job
  EXPECT_EQ(*store_->CountJobs(), 2);
  // Still coalesced while running.
  SyncJob running = Claim("w");
  EXPECT_FALSE(Enqueue(kTenantA, t.id, running.kind));
  EXPECT_EQ(*store_->CountJobs(), 2);
  // Finished: a new one may be queued.
  ASSERT_TRUE(store_->FinishJob(running, std::nullopt, NoChange));
  EXPECT_TRUE(Enqueue(kTenantA, t.id, running.kind));
}

TEST_P(SyncStoreTest, EnqueueFailuresWriteNothing) {
  VppToken t = Token(kTenantA);
  EXPECT_EQ(store_->EnqueueJob(kTenantA, "missing", {}, NoChange).error().code, Code::kNotFound);
  EXPECT_EQ(store_->EnqueueJob(kTenantB, t.id, {}, NoChange).error().code, Code::kNotFound);  // A's token from B
  Result<Store::Enqueued> refused = store_->EnqueueJob(kTenantA, t.id, {}, [](VppToken& x) -> Status {
    x.state = "invalid";
    return Fail(Error::FailedPrecondition("token expired"));
  });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "token expired");
  EXPECT_EQ(*store_->CountJobs(), 0);
  EXPECT_EQ(store_->GetToken(kTenantA, t.id)->state, "valid");
  EnqueueOptions bad;
  bad.kind = "";
  EXPECT_EQ(store_->EnqueueJob(kTenantA, t.id, bad, NoChange).error().code, Code::kInvalidArgument);
  bad.kind = "syncLicenses";
  bad.params = std::string(2 << 20, 'x');
  EXPECT_EQ(store_->EnqueueJob(kTenantA, t.id, bad, NoChange).error().code, Code::kInvalidArgument);
  EXPECT_EQ(*store_->CountJobs(), 0);
}

// --- jobs: claims and leases --------------------------------------------------------------

TEST_P(SyncStoreTest, ClaimTakesTheOldestDueJob) {
  VppToken a = Token(kTenantA, "a"), b = Token(kTenantB, "b"), c = Token(kTenantA, "c");
  EXPECT_FALSE(TryClaim("w"));                                   // empty queue
  Enqueue(kTenantA, c.id, "syncLicenses", kT0 + 100 * kSecond);  // oldest, but scheduled later
  clock_.Advance(1s);
  Enqueue(kTenantB, b.id);
  clock_.Advance(1s);
  Enqueue(kTenantA, a.id);

  SyncJob first = Claim("w1", 30s);
  EXPECT_EQ(first.token_id, b.id);
  EXPECT_EQ(first.tenant_id, kTenantB);
  EXPECT_EQ(first.kind, "syncLicenses");
  EXPECT_EQ(first.attempts, 1);
  EXPECT_EQ(first.lease_owner, "w1");
  EXPECT_EQ(first.lease_expires, clock_.Now() + 30 * kSecond);
  EXPECT_EQ(first.requested, kT0 + kSecond);
  EXPECT_EQ(Claim("w2").token_id, a.id);
  EXPECT_FALSE(TryClaim("w3")) << "c's job is not due yet";
  clock_.Set(kT0 + 100 * kSecond);
  EXPECT_EQ(Claim("w3").token_id, c.id);
  EXPECT_EQ(*store_->CountJobs(), 3);  // running jobs count too

  EXPECT_EQ(store_->ClaimJob("", clock_.Now(), 1s).error().code, Code::kInvalidArgument);
  EXPECT_EQ(store_->ClaimJob("w", clock_.Now(), 0ms).error().code, Code::kInvalidArgument);
}

TEST_P(SyncStoreTest, OneRunningJobPerToken) {
  VppToken t = Token(kTenantA), other = Token(kTenantA, "other");
  Enqueue(kTenantA, t.id, "syncLicenses");
  clock_.Advance(1s);
  Enqueue(kTenantA, t.id, "revokeLicenses");
  clock_.Advance(1s);
  Enqueue(kTenantA, other.id);
  SyncJob sync = Claim("w1", 10s);
  EXPECT_EQ(sync.kind, "syncLicenses");
  // The revoke job is older than other's, but its token is busy.
  EXPECT_EQ(Claim("w2").token_id, other.id);
  EXPECT_FALSE(TryClaim("w3"));
  ASSERT_TRUE(store_->FinishJob(sync, std::nullopt, NoChange));
  SyncJob revoke = Claim("w3");
  EXPECT_EQ(revoke.kind, "revokeLicenses");
  EXPECT_EQ(revoke.token_id, t.id);
}

TEST_P(SyncStoreTest, ExpiredLeaseIsReclaimedAndTheFirstWorkerIsFencedOff) {
  VppToken t = Token(kTenantA);
  Enqueue(kTenantA, t.id);
  SyncJob first = Claim("w1", 10s);
  ASSERT_TRUE(store_->StageAssignments(first, {User("1", "u1")}));
  ASSERT_TRUE(store_->RenewLease(first, clock_.Now() + 20 * kSecond));
  clock_.Advance(15s);
  EXPECT_FALSE(TryClaim("w2")) << "renewed: still live";
  clock_.Advance(10s);
  // The same worker name re-claiming is fenced by the attempt count as well.
  SyncJob second = Claim("w1", 10s);
  EXPECT_EQ(second.id, first.id);
  EXPECT_EQ(second.attempts, 2);
  EXPECT_EQ(Staged(), 0) << "a dead worker's staged rows are dropped on re-claim";
  ASSERT_TRUE(store_->StageAssignments(second, {User("1", "u2")}));

  auto precondition = [](const Status& s) { return !s && s.error().code == Code::kFailedPrecondition; };
  EXPECT_TRUE(precondition(store_->RenewLease(first, clock_.Now() + 100 * kSecond)));
  EXPECT_TRUE(precondition(store_->StageAssignments(first, {User("1", "stale")})));
  EXPECT_TRUE(precondition(store_->ClearStaged(first)));
  EXPECT_TRUE(precondition(store_->ReleaseJob(first, 0)));
  SyncSnapshot snap;
  snap.apps = {App(t.id, "1", "iOS", 1)};
  snap.assignments = Mode::kReplaceWithStaged;
  Result<VppToken> stale = store_->FinishJob(first, snap, [](VppToken& x) -> Status {
    x.last_sync_status = "completed";
    return {};
  });
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, Code::kFailedPrecondition);
  EXPECT_NE(stale.error().message.find(first.id), std::string::npos);

  // Nothing the stale worker did was written.
  EXPECT_EQ(Staged(), 1);
  EXPECT_EQ(*store_->CountApps(kTenantA, std::nullopt), 0);
  EXPECT_TRUE(All(kTenantA, t.id).empty());
  EXPECT_EQ(store_->GetToken(kTenantA, t.id)->last_sync_status, "inProgress");
  EXPECT_EQ(*store_->CountJobs(), 1);
  EXPECT_FALSE(TryClaim("w3")) << "the second lease is live";

  // The live worker's calls work.
  ASSERT_TRUE(store_->RenewLease(second, clock_.Now() + 100 * kSecond));
  Result<VppToken> done = store_->FinishJob(second, snap, NoChange);
  ASSERT_TRUE(done) << done.error().message;
  std::vector<LicenseAssignment> all = All(kTenantA, t.id);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].client_user_id, "u2");
  EXPECT_EQ(*store_->CountJobs(), 0);
  EXPECT_EQ(Staged(), 0);
  // The job is gone: every lease call on it now fails.
  EXPECT_TRUE(precondition(store_->RenewLease(second, 0)));
  EXPECT_TRUE(precondition(store_->StageAssignments(second, std::vector<LicenseAssignment>{})));
  EXPECT_EQ(store_->FinishJob(second, std::nullopt, NoChange).error().code, Code::kFailedPrecondition);
}

TEST_P(SyncStoreTest, FindJobsShowsTheProgressTheWorkerStoresWithItsLease) {
  VppToken t = Token(kTenantA);
  VppToken other = Token(kTenantA, "loc-2");
  EXPECT_TRUE(store_->FindJobs(kTenantA, t.id)->empty());
  Enqueue(kTenantA, t.id);
  Enqueue(kTenantA, t.id, "syncLicenseCounts");
  Enqueue(kTenantA, other.id);
  Result<std::vector<SyncJob>> jobs = store_->FindJobs(kTenantA, t.id);
  ASSERT_TRUE(jobs) << jobs.error().message;
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].kind, "syncLicenses");
  EXPECT_EQ((*jobs)[1].kind, "syncLicenseCounts");
  EXPECT_TRUE((*jobs)[0].lease_owner.empty());
  EXPECT_EQ((*jobs)[0].pages_walked, 0);

  SyncJob job = Claim("w1", 10s);
  ASSERT_EQ(job.token_id, t.id);
  job.pages_walked = 7;
  job.pages_total = 40;
  job.assignments_staged = 1750;
  ASSERT_TRUE(store_->RenewLease(job, clock_.Now() + 10 * kSecond));
  jobs = store_->FindJobs(kTenantA, t.id);
  ASSERT_TRUE(jobs);
  const SyncJob& seen = (*jobs)[0];
  EXPECT_EQ(seen.id, job.id);
  EXPECT_EQ(seen.lease_owner, "w1");
  EXPECT_EQ(seen.attempts, 1);
  EXPECT_EQ(std::tie(seen.pages_walked, seen.pages_total, seen.assignments_staged),
            std::make_tuple(std::int64_t{7}, std::int64_t{40}, std::int64_t{1750}));
  // Another tenant, or a token that does not exist, has no jobs.
  EXPECT_TRUE(store_->FindJobs(kTenantB, t.id)->empty());
  EXPECT_TRUE(store_->FindJobs(kTenantA, "no-such-token")->empty());

  // A stale worker cannot publish progress; a new claim starts from 0.
  clock_.Advance(20s);
  SyncJob again = Claim("w2", 10s);
  EXPECT_EQ(again.id, job.id);
  EXPECT_EQ(again.pages_walked, 0);
  job.pages_walked = 99;
  EXPECT_EQ(store_->RenewLease(job, clock_.Now() + 10 * kSecond).error().code, Code::kFailedPrecondition);
  jobs = store_->FindJobs(kTenantA, t.id);
  EXPECT_EQ((*jobs)[0].pages_walked, 0);
  EXPECT_EQ((*jobs)[0].lease_owner, "w2");

  // Finished: gone from FindJobs.
  ASSERT_TRUE(store_->FinishJob(again, std::nullopt, NoChange));
  jobs = store_->FindJobs(kTenantA, t.id);
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].kind, "syncLicenseCounts");
}

TEST_P(SyncStoreTest, ReleaseHandsTheJobBackForLater) {
  VppToken t = Token(kTenantA);
  Enqueue(kTenantA, t.id);
  SyncJob job = Claim("w1");
  ASSERT_TRUE(store_->StageAssignments(job, {User("1", "u1"), Device("1", "S1")}));
  ASSERT_TRUE(store_->ReleaseJob(job, clock_.Now() + 30 * kSecond));
  EXPECT_EQ(Staged(), 0);
  EXPECT_EQ(*store_->CountJobs(), 1);
  EXPECT_FALSE(TryClaim("w2")) << "not before its new not_before";
  EXPECT_EQ(store_->ReleaseJob(job, 0).error().code, Code::kFailedPrecondition) << "released: no longer ours";
  clock_.Advance(30s);
  SyncJob again = Claim("w2");
  EXPECT_EQ(again.id, job.id);
  EXPECT_EQ(again.attempts, 2);
  EXPECT_EQ(again.not_before, kT0 + 30 * kSecond);
}

TEST_P(SyncStoreTest, ConcurrentClaimsNeverShareAJob) {
  constexpr int kTokens = 40;
  for (int i = 0; i < kTokens; ++i) Enqueue(kTenantA, Token(kTenantA, "loc" + std::to_string(i)).id);
  std::atomic<int> claimed{0}, failures{0};
  std::vector<std::thread> workers;
  std::mutex mu;
  std::set<std::string> seen;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&, w] {
      for (;;) {
        Result<std::optional<SyncJob>> job = store_->ClaimJob("w" + std::to_string(w), kT0, 60s);
        if (!job) {
          ++failures;
          return;
        }
        if (!*job) return;
        std::lock_guard lock(mu);
        if (!seen.insert((*job)->id).second) ++failures;
        ++claimed;
      }
    });
  }
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(claimed.load(), kTokens);
}

// --- snapshots ----------------------------------------------------------------------------

TEST_P(SyncStoreTest, ReplaceMakesTheStagedRowsTheWholeSet) {
  VppToken t = Token(kTenantA);
  Enqueue(kTenantA, t.id);
  SyncJob job = Claim("w");
  // Two pages, a duplicate across them, and a walk restart in between.
  ASSERT_TRUE(store_->StageAssignments(job, {User("9", "zz")}));
  ASSERT_TRUE(store_->ClearStaged(job));
  ASSERT_TRUE(store_->StageAssignments(job, {User("1", "u2"), Device("1", "S9"), User("2", "u1")}));
  ASSERT_TRUE(store_->StageAssignments(job, {User("1", "u2"), Device("1", "S1"), User("1", "u1")}));
  // PostgreSQL drops the duplicate as it is staged; SQLite stages each call's rows
  // of an app as one run and drops it when FinishJob merges the app's runs.
  EXPECT_EQ(Staged(), pg() ? 5 : 6);
  SyncSnapshot snap;
  snap.apps = {App(t.id, "1", "iOS", 4), App(t.id, "1", "macOS", 4), App(t.id, "2", "iOS", 1)};
  snap.assignments = Mode::kReplaceWithStaged;
  Result<VppToken> done = store_->FinishJob(job, snap, [&](VppToken& x) -> Status {
    x.last_sync_status = "completed";
    x.last_full_walk = clock_.Now();
    x.last_app_count = 3;
    return {};
  });
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(done->last_sync_status, "completed");
  EXPECT_EQ(done->last_full_walk, kT0);
  EXPECT_EQ(Staged(), 0);
  EXPECT_EQ(*store_->CountJobs(), 0);

  std::vector<LicenseAssignment> all = All(kTenantA, t.id);
  std::vector<LicenseAssignment> want = {User("1", "u1"), User("1", "u2"), Device("1", "S1"), Device("1", "S9"),
                                         User("2", "u1")};
  EXPECT_EQ(all, want) << "ordered by (adamId, pricingParam, serialNumber, clientUserId), duplicates dropped";

  // A second full sync replaces: rows absent from it are gone.
  Result<VppToken> second = FullSync(kTenantA, t.id, {App(t.id, "2", "iOS", 2)}, {User("2", "u1"), User("2", "u7")});
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(All(kTenantA, t.id), (std::vector<LicenseAssignment>{User("2", "u1"), User("2", "u7")}));
  EXPECT_EQ(*store_->CountApps(kTenantA, std::nullopt), 1) << "apps not in the snapshot are removed";
  EXPECT_TRUE(CountsMatch());
}

TEST_P(SyncStoreTest, AppsKeepCreatedAcrossSyncsAndLastModifiedUntilTheyChange) {
  VppToken t = Token(kTenantA);
  MobileApp app = App(t.id, "1", "iOS", 1);
  app.created = app.last_modified = 0;  // the store stamps
  ASSERT_TRUE(FullSync(kTenantA, t.id, {app}, {User("1", "u1")}));
  Result<MobileApp> got = store_->GetApp(kTenantA, app.id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->created, kT0);
  EXPECT_EQ(got->last_modified, kT0);
  EXPECT_EQ(got->token_id, t.id);
  EXPECT_EQ(got->display_name, "App 1");
  EXPECT_EQ(got->token_display_name, "Token");
  EXPECT_FALSE(got->token_apple_id.has_value());

  clock_.Advance(1h);
  app.created = app.last_modified = clock_.Now();  // as the sync sets them
  ASSERT_TRUE(FullSync(kTenantA, t.id, {app}, {User("1", "u1")}));
  got = store_->GetApp(kTenantA, app.id);
  EXPECT_EQ(got->created, kT0);
  EXPECT_EQ(got->last_modified, kT0) << "nothing changed";

  clock_.Advance(1h);
  app.used_licenses = 2;
  ASSERT_TRUE(FullSync(kTenantA, t.id, {app}, {User("1", "u1"), User("1", "u2")}));
  got = store_->GetApp(kTenantA, app.id);
  EXPECT_EQ(got->created, kT0);
  EXPECT_EQ(got->last_modified, kT0 + 2 * 3600 * kSecond);
  EXPECT_EQ(got->used_licenses, 2);
}

// Books are rows of mobile_apps too (product_type Book), with the lookup's genres and
// seller (migration 17); a query on product_type tells them from apps, and a change of
// genres is a change (lastModified moves).
TEST_P(SyncStoreTest, BooksKeepGenresAndSellerAndAreFoundByProductType) {
  VppToken t = Token(kTenantA);
  MobileApp book = App(t.id, "2", "iOS", 1);
  book.id = "book-" + t.id.substr(0, 8);
  book.product_type = "Book";
  book.bundle_id = "";
  book.device_assignable = false;
  book.genres = {"Books", "Poetry", "Quotes \"and\" commas,"};
  book.seller = "A Publisher";
  MobileApp app = App(t.id, "1", "iOS", 0);
  ASSERT_TRUE(FullSync(kTenantA, t.id, {app, book}, {User("2", "u1")}));
  Result<MobileApp> got = store_->GetApp(kTenantA, book.id);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->product_type, "Book");
  EXPECT_EQ(got->genres, book.genres);
  EXPECT_EQ(got->seller, "A Publisher");
  got = store_->GetApp(kTenantA, app.id);
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->genres.empty());
  EXPECT_FALSE(got->seller.has_value());

  auto of_type = [&](const std::string& type) {
    ListQuery q;
    q.filter = Expr::Apply(Op::kEq, {Expr::Of(Column::kAppProductType), Expr::Value(type)});
    Result<Page<MobileApp>> page = store_->ListApps(kTenantA, q);
    EXPECT_TRUE(page);
    std::vector<std::string> ids;
    for (const MobileApp& a : page->items) ids.push_back(a.id);
    return ids;
  };
  EXPECT_EQ(of_type("Book"), std::vector<std::string>{book.id});
  EXPECT_EQ(of_type("App"), std::vector<std::string>{app.id});

  clock_.Advance(1h);
  book.genres = {"Books"};
  book.created = book.last_modified = clock_.Now();
  ASSERT_TRUE(FullSync(kTenantA, t.id, {app, book}, {User("2", "u1")}));
  got = store_->GetApp(kTenantA, book.id);
  EXPECT_EQ(got->genres, std::vector<std::string>{"Books"});
  EXPECT_EQ(got->last_modified, clock_.Now());
}

TEST_P(SyncStoreTest, MergeAddsStagedRowsAndChecksTheCounts) {
  VppToken t = Token(kTenantA);
  ASSERT_TRUE(FullSync(kTenantA, t.id, {App(t.id, "1", "iOS", 2), App(t.id, "2", "iOS", 0)},
                       {User("1", "u1"), User("1", "u2")}));

  // A consistent delta: one new row, one already known (ignored).
  Result<VppToken> merged = FullSync(kTenantA, t.id, {App(t.id, "1", "iOS", 3), App(t.id, "2", "iOS", 0)},
                                     {User("1", "u2"), Device("1", "S1")}, Mode::kMergeStaged);
  ASSERT_TRUE(merged) << merged.error().message;
  EXPECT_TRUE(CountsMatch()) << "the ignored duplicate is not counted";
  EXPECT_EQ(All(kTenantA, t.id).size(), 3u);

  // An inconsistent one: Apple counts 5 for app 1, the merge leaves 4; app 2: 1 vs 0.
  clock_.Advance(1h);
  Enqueue(kTenantA, t.id);
  SyncJob job = Claim("w");
  ASSERT_TRUE(store_->StageAssignments(job, {User("1", "u9")}));
  SyncSnapshot snap;
  snap.apps = {App(t.id, "1", "iOS", 5), App(t.id, "1", "macOS", 5), App(t.id, "2", "iOS", 1),
               App(t.id, "3", "iOS", 0)};
  snap.assignments = Mode::kMergeStaged;
  bool mutated = false;
  Result<VppToken> bad = store_->FinishJob(job, snap, [&](VppToken& x) -> Status {
    mutated = true;
    x.last_sync_status = "completed";
    return {};
  });
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kFailedPrecondition);
  EXPECT_NE(bad.error().message.find("delta inconsistent"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("2 app(s)"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(mutated) << "the count check runs before the token is touched";
  // Nothing written: rows, apps, token, and the job with its staging remain for a retry.
  EXPECT_EQ(All(kTenantA, t.id).size(), 3u);
  EXPECT_EQ(store_->GetApp(kTenantA, App(t.id, "1", "iOS", 0).id)->used_licenses, 3);
  EXPECT_EQ(store_->GetApp(kTenantA, App(t.id, "3", "iOS", 0).id).error().code, Code::kNotFound);
  EXPECT_EQ(store_->GetToken(kTenantA, t.id)->last_sync_status, "inProgress");
  EXPECT_EQ(*store_->CountJobs(), 1);
  EXPECT_EQ(Staged(), 1);
  // The caller falls back to a full walk on the same job.
  ASSERT_TRUE(store_->ClearStaged(job));
  ASSERT_TRUE(store_->StageAssignments(job, {User("1", "u1"), User("2", "u1")}));
  snap.apps = {App(t.id, "1", "iOS", 1), App(t.id, "2", "iOS", 1)};
  snap.assignments = Mode::kReplaceWithStaged;
  ASSERT_TRUE(store_->FinishJob(job, snap, NoChange));
  EXPECT_EQ(All(kTenantA, t.id).size(), 2u);
}

TEST_P(SyncStoreTest, KeepLeavesAssignmentsAndReplacesApps) {
  VppToken t = Token(kTenantA);
  ASSERT_TRUE(FullSync(kTenantA, t.id, {App(t.id, "1", "iOS", 1)}, {User("1", "u1")}));
  Result<VppToken> counts = FullSync(kTenantA, t.id, {App(t.id, "1", "iOS", 7)}, {User("1", "ignored")}, Mode::kKeep);
  ASSERT_TRUE(counts) << counts.error().message;
  EXPECT_EQ(All(kTenantA, t.id), (std::vector<LicenseAssignment>{User("1", "u1")}));
  EXPECT_EQ(store_->GetApp(kTenantA, App(t.id, "1", "iOS", 0).id)->used_licenses, 7);
  EXPECT_EQ(Staged(), 0) << "the job's staging goes with it";
}

TEST_P(SyncStoreTest, StageValidatesRows) {
  VppToken t = Token(kTenantA);
  Enqueue(kTenantA, t.id);
  SyncJob job = Claim("w");
  EXPECT_EQ(store_->StageAssignments(job, {{"1", "STDQ", "u", "S"}}).error().code, Code::kInvalidArgument);
  EXPECT_EQ(store_->StageAssignments(job, {{"1", "STDQ", "", ""}}).error().code, Code::kInvalidArgument);
  EXPECT_EQ(store_->StageAssignments(job, {{"", "STDQ", "u", ""}}).error().code, Code::kInvalidArgument);
  EXPECT_EQ(store_->StageAssignments(job, std::vector<LicenseAssignment>(100001, User("1", "u"))).error().code,
            Code::kInvalidArgument);
  EXPECT_EQ(Staged(), 0);
}

TEST_P(SyncStoreTest, TokenDeletedDuringAJob) {
  VppToken t = Token(kTenantA), kept = Token(kTenantA, "kept");
  ASSERT_TRUE(FullSync(kTenantA, kept.id, {App(kept.id, "1", "iOS", 1)}, {User("1", "u1")}));
  ASSERT_TRUE(FullSync(kTenantA, t.id, {App(t.id, "1", "iOS", 1)}, {User("1", "u1")}));
  Enqueue(kTenantA, t.id);
  SyncJob job = Claim("w");
  ASSERT_TRUE(store_->StageAssignments(job, {User("1", "u1"), User("1", "u2")}));
  ASSERT_TRUE(store_->DeleteToken(kTenantA, t.id));

  SyncSnapshot snap;
  snap.apps = {App(t.id, "1", "iOS", 2)};
  snap.assignments = Mode::kReplaceWithStaged;
  Result<VppToken> done = store_->FinishJob(job, snap, NoChange);
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().code, Code::kNotFound);
  Raw raw = db_->raw();
  EXPECT_EQ(raw.Int("SELECT count(*) FROM sync_jobs"), 0);
  EXPECT_EQ(Staged(), 0);
  EXPECT_EQ(raw.Int("SELECT count(*) FROM mobile_apps WHERE token_id = '" + t.id + "'"), 0);
  ASSERT_TRUE(WaitCollected());
  EXPECT_EQ(RawRows(), 1) << "only the other token's row";
  EXPECT_EQ(Generations("current"), 1);
  EXPECT_EQ(All(kTenantA, kept.id).size(), 1u);
  EXPECT_EQ(store_->ForEachAssignment(kTenantA, t.id, 10, [](const auto&) -> Status { return {}; }).error().code,
            Code::kNotFound);
}

TEST_P(SyncStoreTest, RemoveTenantCascadesToEverySyncTable) {
  VppToken a = Token(kTenantA), b = Token(kTenantB);
  ASSERT_TRUE(FullSync(kTenantA, a.id, {App(a.id, "1", "iOS", 1)}, {User("1", "u1")}));
  ASSERT_TRUE(FullSync(kTenantB, b.id, {App(b.id, "1", "iOS", 1)}, {User("1", "u1")}));
  Enqueue(kTenantA, a.id);
  ASSERT_TRUE(store_->StageAssignments(Claim("w"), {User("1", "u5")}));
  ASSERT_TRUE(store_->RemoveTenant(kTenantA));
  Raw raw = db_->raw();
  EXPECT_EQ(raw.Int("SELECT count(*) FROM sync_jobs"), 0);
  EXPECT_EQ(Staged(), 0);
  EXPECT_EQ(raw.Int("SELECT count(*) FROM mobile_apps"), 1);
  ASSERT_TRUE(WaitCollected());
  EXPECT_EQ(RawRows(), 1) << "only tenant B's row";
  EXPECT_EQ(raw.Int("SELECT count(*) FROM assignment_generations"), 1);
  EXPECT_EQ(All(kTenantB, b.id).size(), 1u);
}

// --- generations and the collector ---------------------------------------------------------

TEST_P(SyncStoreTest, AFullSyncRepointsAndTheReplacedSetIsCollected) {
  VppToken t = Token(kTenantA), other = Token(kTenantA, "other");
  ASSERT_TRUE(FullSync(kTenantA, other.id, {App(other.id, "1", "iOS", 1)}, {User("1", "o1")}));
  std::vector<LicenseAssignment> first;
  for (int i = 0; i < 12000; ++i) first.push_back(User("1", fmt::format("u{:05}", i)));  // > 2 collector batches
  ASSERT_TRUE(FullSync(kTenantA, t.id, {App(t.id, "1", "iOS", 12000)}, first));
  ASSERT_TRUE(WaitCollected());
  EXPECT_EQ(RawRows(), 12001);
  EXPECT_EQ(Generations("current"), 2);

  ASSERT_TRUE(FullSync(kTenantA, t.id, {App(t.id, "1", "iOS", 2)}, {User("1", "new1"), User("1", "new2")}));
  EXPECT_EQ(All(kTenantA, t.id), (std::vector<LicenseAssignment>{User("1", "new1"), User("1", "new2")}));
  ASSERT_TRUE(WaitCollected()) << "the 12,000 replaced rows are deleted in the background";
  EXPECT_EQ(RawRows(), 3) << "two of the token, one of the other";
  EXPECT_EQ(Generations("current"), 2);
  EXPECT_EQ(All(kTenantA, other.id), (std::vector<LicenseAssignment>{User("1", "o1")}));

  // A full sync of nothing leaves the token without a set at all.
  ASSERT_TRUE(FullSync(kTenantA, t.id, {}, {}));
  EXPECT_TRUE(All(kTenantA, t.id).empty());
  EXPECT_EQ(store_->ListAppAssignments(kTenantA, App(t.id, "1", "iOS", 0).id, 0, 10).error().code, Code::kNotFound);
  ASSERT_TRUE(WaitCollected());
  EXPECT_EQ(RawRows(), 1);
  // And a merge into no set adopts the staged one.
  Result<VppToken> merged = FullSync(kTenantA, t.id, {App(t.id, "1", "iOS", 1)}, {User("1", "m1")}, Mode::kMergeStaged);
  ASSERT_TRUE(merged) << merged.error().message;
  EXPECT_EQ(All(kTenantA, t.id), (std::vector<LicenseAssignment>{User("1", "m1")}));
}

TEST_P(SyncStoreTest, AbandonedStagingIsCollected) {
  VppToken t = Token(kTenantA);
  ASSERT_TRUE(FullSync(kTenantA, t.id, {App(t.id, "1", "iOS", 1)}, {User("1", "kept")}));
  ASSERT_TRUE(WaitCollected());
  // A walk restart, then a hand-back.
  Enqueue(kTenantA, t.id);
  SyncJob job = Claim("w1", 10s);
  ASSERT_TRUE(store_->StageAssignments(job, {User("1", "a"), User("1", "b")}));
  ASSERT_TRUE(store_->ClearStaged(job));
  ASSERT_TRUE(store_->StageAssignments(job, {User("1", "c")}));
  EXPECT_EQ(Staged(), 1) << "the restart started a new set";
  ASSERT_TRUE(store_->ReleaseJob(job, 0));
  EXPECT_EQ(Staged(), 0);
  ASSERT_TRUE(WaitCollected());
  EXPECT_EQ(RawRows(), 1);
  // A worker dies while staging; its job is re-claimed after the lease.
  SyncJob dying = Claim("w1", 10s);
  ASSERT_TRUE(store_->StageAssignments(dying, {User("1", "d1"), User("1", "d2")}));
  clock_.Advance(11s);
  SyncJob again = Claim("w2", 10s);
  EXPECT_EQ(again.id, dying.id);
  EXPECT_EQ(Staged(), 0);
  ASSERT_TRUE(WaitCollected());
  EXPECT_EQ(RawRows(), 1);
  // A job ending without a snapshot drops its set too.
  ASSERT_TRUE(store_->StageAssignments(again, {User("1", "e")}));
  ASSERT_TRUE(store_->FinishJob(again, std::nullopt, NoChange));
  ASSERT_TRUE(WaitCollected());
  EXPECT_EQ(RawRows(), 1);
  EXPECT_EQ(All(kTenantA, t.id), (std::vector<LicenseAssignment>{User("1", "kept")}));
}

TEST_P(SyncStoreTest, ACrashedStagingRunIsCollectedAfterReopen) {
  VppToken t = Token(kTenantA);
  ASSERT_TRUE(FullSync(kTenantA, t.id, {App(t.id, "1", "iOS", 1)}, {User("1", "kept")}));
  Enqueue(kTenantA, t.id);
  SyncJob job = Claim("w", 10s);
  ASSERT_TRUE(store_->StageAssignments(job, {User("1", "s1"), User("1", "s2")}));
  // The process dies (the store closes without FinishJob), and what only a bug or
  // a foreign hand could leave is there too: rows of an unknown generation, and a
  // staging set whose job row is gone.
  store_.reset();
  {
    Raw raw = db_->raw();
    // SQLite keeps an app's rows as chunks under an interned app number (its
    // migrations 6 and 8; the blob: format 1, then 'u', length and text per
    // client user id); PostgreSQL keeps rows with the ids.
    raw.Exec(pg() ? "INSERT INTO license_assignments VALUES (900, '1', 'STDQ', '', 'orphan1'), "
                    "(900, '1', 'STDQ', '', 'orphan2')"
                  : "INSERT INTO assignment_chunks VALUES (900, 1, 0, 2, X'0175076F727068616E3175076F727068616E32')");
    raw.Exec(
        "INSERT INTO assignment_generations (generation, token_key, job_key, state) VALUES (901, 1, 12345, "
        "'staging')");
    raw.Exec(pg() ? "INSERT INTO license_assignments VALUES (901, '1', 'STDQ', '', 'lost')"
                  : "INSERT INTO assignment_chunks VALUES (901, 1, 0, 1, X'0175046C6F7374')");
  }
  Reopen();
  ASSERT_TRUE(WaitCollected());
  EXPECT_EQ(RawRows(), 3) << "the current row and the live job's two staged rows";
  EXPECT_EQ(Staged(), 2) << "the job may still be running elsewhere until its lease ends";
  EXPECT_EQ(All(kTenantA, t.id), (std::vector<LicenseAssignment>{User("1", "kept")}));
  clock_.Advance(11s);
  SyncJob again = Claim("w2");
  EXPECT_EQ(again.id, job.id);
  ASSERT_TRUE(WaitCollected());
  EXPECT_EQ(RawRows(), 1);
  EXPECT_EQ(Staged(), 0);
  // A new generation never reuses a number the collector has seen.
  ASSERT_TRUE(store_->StageAssignments(again, {User("1", "n")}));
  EXPECT_GT(db_->raw().Int("SELECT max(generation) FROM assignment_generations"), 901);
}

TEST_P(SyncStoreTest, ReadersSeeOnlyTheCurrentSet) {
  options_.collect_garbage = false;  // the garbage stays, so reads must skip it
  Reopen();
  VppToken t = Token(kTenantA);
  MobileApp app = App(t.id, "1", "iOS", 2);
  ASSERT_TRUE(FullSync(kTenantA, t.id, {app}, {User("1", "old1"), User("1", "old2"), User("1", "old3")}));
  ASSERT_TRUE(FullSync(kTenantA, t.id, {app}, {User("1", "cur1"), User("1", "cur2")}));
  Enqueue(kTenantA, t.id);
  SyncJob job = Claim("w");
  ASSERT_TRUE(store_->StageAssignments(job, {User("1", "staged1"), User("1", "staged2"), User("1", "staged3")}));
  EXPECT_EQ(RawRows(), 8) << "old (garbage) + current + staged are all in the table";
  EXPECT_EQ(Generations("garbage"), 1);

  const std::vector<LicenseAssignment> current = {User("1", "cur1"), User("1", "cur2")};
  EXPECT_EQ(All(kTenantA, t.id), current);
  Result<Page<LicenseAssignment>> page = store_->ListAppAssignments(kTenantA, app.id, 0, 100);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->items, current);
  // The merge's count check counts the current set plus the delta only, 2 + 3 = 5:
  // neither the 3 garbage rows nor anything else.
  SyncSnapshot snap;
  snap.apps = {App(t.id, "1", "iOS", 4)};
  snap.assignments = Mode::kMergeStaged;
  Result<VppToken> bad = store_->FinishJob(job, snap, NoChange);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("5 stored, Apple counts 4"), std::string::npos) << bad.error().message;
  snap.apps = {App(t.id, "1", "iOS", 5)};
  ASSERT_TRUE(store_->FinishJob(job, snap, NoChange));
  EXPECT_EQ(All(kTenantA, t.id).size(), 5u);
  EXPECT_TRUE(CountsMatch());
  EXPECT_EQ(Generations("garbage"), 2) << "the merged delta's own set is garbage now";
  EXPECT_EQ(Generations("staging"), 0);
}

TEST_P(SyncStoreTest, ReadersNeverSeeHalfASnapshotWhileSyncsAndTheCollectorRun) {
  VppToken t = Token(kTenantA);
  MobileApp app = App(t.id, "1", "iOS", 0);
  // Sets alternate between 3,000 and 7,000 rows; a reader must see one or the other.
  auto rows = [](int n, int round) {
    std::vector<LicenseAssignment> out;
    for (int i = 0; i < n; ++i) out.push_back(User("1", fmt::format("r{}-{:05}", round, i)));
    return out;
  };
  ASSERT_TRUE(FullSync(kTenantA, t.id, {app}, rows(3000, 0)));
  std::atomic<bool> done{false};
  std::atomic<int> bad{0}, reads{0};
  std::thread reader([&] {
    while (!done) {
      Result<Page<LicenseAssignment>> page = store_->ListAppAssignments(kTenantA, app.id, 0, 100000);
      if (!page || (page->items.size() != 3000 && page->items.size() != 7000)) ++bad;
      if (page && !page->items.empty()) {
        // One set: every row from the same round.
        std::string round = page->items.front().client_user_id.substr(0, page->items.front().client_user_id.find('-'));
        for (const LicenseAssignment& a : page->items) {
          if (a.client_user_id.rfind(round + "-", 0) != 0) {
            ++bad;
            break;
          }
        }
      }
      ++reads;
    }
  });
  for (int round = 1; round <= 6; ++round) {
    ASSERT_TRUE(FullSync(kTenantA, t.id, {app}, rows(round % 2 == 1 ? 7000 : 3000, round)));
  }
  ASSERT_TRUE(WaitCollected());
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(RawRows(), 3000);
}

TEST_P(SqliteSyncFileTest, MigratesAVersion2FileKeepingAssignments) {
  store_.reset();
  std::string path = dir_.File("v2.db");
  {
    RawDb raw(path);
    raw.Exec(Migrations()[0].sql);
    raw.Exec(Migrations()[1].sql);
    raw.Exec("PRAGMA application_id=" + std::to_string(kApplicationId) + "; PRAGMA user_version=2;");
    raw.Exec(std::string("INSERT INTO tenants VALUES ('") + kTenantA + "', 'A', 1, 0)");
    for (const char* id : {"t1", "t2", "t3"}) {
      raw.Exec(std::string("INSERT INTO vpp_tokens (tenant_id, id, account_type, expiration, last_sync, "
                           "token_sealed, last_modified, state, action_results, last_sync_status, "
                           "automatically_update_apps, data_sharing_consent, claim_from_external_mdm, "
                           "role_scope_tag_ids, delivery_protocol, last_app_count, created, token_key) VALUES ('") +
               kTenantA + "', '" + id + "', 'business', 0, 0, 'x', 5, 'valid', '[]', 'none', 0, 0, 0, '[]', " +
               "'default', 0, 5, (SELECT coalesce(max(token_key), 0) + 1 FROM vpp_tokens))");
    }
    raw.Exec(
        "INSERT INTO license_assignments VALUES (1, '1', 'STDQ', '', 'a'), (1, '1', 'STDQ', 'S1', ''), "
        "(2, '2', 'STDQ', '', 'b'), (77, '1', 'STDQ', '', 'tokenless')");
    raw.Exec("INSERT INTO sync_staging VALUES (5, 1, '1', 'STDQ', '', 'staged')");
  }
  options_.path = path;
  Reopen();
  EXPECT_EQ(RawDb(path).Int("PRAGMA user_version"), LatestSchemaVersion());
  EXPECT_EQ(All(kTenantA, "t1"), (std::vector<LicenseAssignment>{{"1", "STDQ", "a", ""}, {"1", "STDQ", "", "S1"}}));
  EXPECT_EQ(All(kTenantA, "t2"), (std::vector<LicenseAssignment>{{"2", "STDQ", "b", ""}}));
  EXPECT_TRUE(All(kTenantA, "t3").empty());
  EXPECT_EQ(RawRows(), 3) << "the rows of no token are not carried over";
  EXPECT_EQ(RawDb(path).Int("SELECT count(*) FROM sqlite_schema WHERE name = 'sync_staging'"), 0);
  // And syncs work on the migrated tokens.
  EXPECT_TRUE(CountsMatch()) << "counts of the migrated sets";
  // A delta onto a migrated set is checked against the migrated counts.
  Result<VppToken> merged =
      FullSync(kTenantA, "t2", {App("t2", "2", "iOS", 2)}, {User("2", "c"), User("2", "b")}, Mode::kMergeStaged);
  ASSERT_TRUE(merged) << merged.error().message;
  ASSERT_TRUE(FullSync(kTenantA, "t1", {}, {User("1", "z")}));
  EXPECT_EQ(All(kTenantA, "t1"), (std::vector<LicenseAssignment>{User("1", "z")}));
  ASSERT_TRUE(WaitCollected());
  EXPECT_EQ(RawRows(), 3);
  EXPECT_EQ(RawDb(path).Int("SELECT count(*) FROM assignment_counts WHERE generation NOT IN "
                            "(SELECT generation FROM assignment_generations)"),
            0)
      << "the collected sets' counts went with them";
  EXPECT_TRUE(CountsMatch());
}

// The writer does not checkpoint (its commits would pay for it); the store's
// checkpointer thread must, or the WAL would grow without bound.
// A chunk that does not decode (a damaged file, a foreign hand) is an Internal
// error naming the set and app, never a crash or a wrong list.
TEST_P(SqliteSyncFileTest, ACorruptChunkIsAnInternalError) {
  VppToken t = Token(kTenantA);
  MobileApp app = App(t.id, "1", "iOS", 2);
  ASSERT_TRUE(FullSync(kTenantA, t.id, {app}, {User("1", "a"), Device("1", "S1")}));
  for (const char* data :
       {"X'02'", "X'01'", "X'017501'", "X'0175016161'", "X'016701'", "X'017a0161'", "X'0164FFFFFFFFFF01'"}) {
    RawConn().Exec(std::string("UPDATE assignment_chunks SET data = ") + data);
    Result<Page<LicenseAssignment>> page = store_->ListAppAssignments(kTenantA, app.id, 0, 10);
    ASSERT_FALSE(page) << data;
    EXPECT_EQ(page.error().code, Code::kInternal) << data;
    EXPECT_NE(page.error().message.find("assignment chunk"), std::string::npos) << page.error().message;
    Status walked = store_->ForEachAssignment(kTenantA, t.id, 10, [](const auto&) -> Status { return {}; });
    ASSERT_FALSE(walked) << data;
    EXPECT_EQ(walked.error().code, Code::kInternal) << data;
  }
}

TEST_P(SqliteSyncFileTest, TheWalStaysBoundedWithoutTheWriterCheckpointing) {
  VppToken t = Token(kTenantA);
  Enqueue(kTenantA, t.id);
  SyncJob job = Claim("w", 600s);
  std::vector<LicenseAssignment> page;
  for (int p = 0; p < 600; ++p) {
    page.clear();
    for (int i = 0; i < 1000; ++i) {
      page.push_back(User(std::to_string(p / 10), fmt::format("user-{:04}-{:04}-of-the-wal-test", p, i)));
    }
    ASSERT_TRUE(store_->StageAssignments(job, page));
  }
  SyncSnapshot snap;
  snap.assignments = Mode::kReplaceWithStaged;
  ASSERT_TRUE(store_->FinishJob(job, snap, NoChange));
  // 600,000 rows are ~19 MB of table (SQLite: chunks of ~32 bytes a row) and
  // more than that of WAL frames. Checkpoints let the WAL
  // restart from its beginning: at ~1,000 pages (4 MB) in the background, at
  // 4,000 (16 MB) at the latest by the writer itself.
  std::this_thread::sleep_for(200ms);  // the last checkpoint may still run
  std::uintmax_t wal = std::filesystem::file_size(options_.path + "-wal");
  std::uintmax_t db = std::filesystem::file_size(options_.path);
  std::printf("[ measure  ] database %.1f MB, WAL %.1f MB\n", static_cast<double>(db) / 1e6,
              static_cast<double>(wal) / 1e6);
  EXPECT_GT(db, 12u << 20) << "the rows reached the database file: something checkpointed";
  EXPECT_LT(wal, 24u << 20) << "the WAL grew with every commit: nothing checkpoints";
}

// --- reads ------------------------------------------------------------------------------

TEST_P(SyncStoreTest, ListAppsFiltersOrdersAndPages) {
  VppToken t = Token(kTenantA);
  std::vector<MobileApp> apps = {App(t.id, "1", "iOS", 5), App(t.id, "1", "macOS", 5), App(t.id, "2", "iOS", 0),
                                 App(t.id, "3", "macOS", 9)};
  apps[2].token_organization_name = "Contoso";
  ASSERT_TRUE(FullSync(kTenantA, t.id, apps, {}, Mode::kKeep));
  auto ids = [&](std::optional<Expr> filter, std::vector<OrderKey> order = {}) {
    ListQuery q;
    q.filter = std::move(filter);
    q.order_by = std::move(order);
    Result<Page<MobileApp>> page = store_->ListApps(kTenantA, q);
    if (!page) return "error:" + std::string(CodeName(page.error().code));
    std::string out;
    for (const MobileApp& a : page->items) out += (out.empty() ? "" : ",") + a.adam_id + a.platform;
    return out;
  };
  auto eq = [](Column c, Literal v) { return Expr::Apply(Op::kEq, {Expr::Of(c), Expr::Value(std::move(v))}); };
  auto platform = [&](const std::string& p) { return eq(Column::kAppPlatform, p); };
  std::vector<OrderKey> by_adam = {{Column::kAppUsedLicenses, true}, {Column::kAppDisplayName, false}};
  EXPECT_EQ(ids(std::nullopt, by_adam), "3macOS,1iOS,1macOS,2iOS");
  EXPECT_EQ(ids(platform("iOS"), by_adam), "1iOS,2iOS");
  EXPECT_EQ(ids(platform("macOS"), by_adam), "3macOS,1macOS");
  EXPECT_EQ(ids(Expr::Apply(Op::kNot, {platform("iOS")}), by_adam), "3macOS,1macOS");
  EXPECT_EQ(ids(eq(Column::kAppBundleId, std::string("com.example.app2"))), "2iOS");
  EXPECT_EQ(ids(eq(Column::kAppTokenOrganizationName, std::string("Contoso"))), "2iOS");
  EXPECT_EQ(ids(Expr::Apply(Op::kGt, {Expr::Of(Column::kAppUsedLicenses), Expr::Value(std::int64_t{4})}), by_adam),
            "3macOS,1iOS,1macOS");
  EXPECT_EQ(ids(eq(Column::kAppTokenId, t.id), {{Column::kAppCreated, false}}).size(), 23u);
  EXPECT_EQ(ids(eq(Column::kTokenState, std::string("valid"))), "error:InvalidArgument");  // a vpp_tokens column
  EXPECT_EQ(ids(std::nullopt, {{Column::kTokenLastAppCount, false}}), "error:InvalidArgument");
  EXPECT_EQ(*store_->CountApps(kTenantA, platform("macOS")), 2);
  EXPECT_EQ(store_->CountApps(kTenantA, eq(Column::kTokenAutomaticallyUpdateApps, true)).error().code,
            Code::kInvalidArgument);

  ListQuery q;
  q.order_by = by_adam;
  q.limit = 3;
  Result<Page<MobileApp>> page = store_->ListApps(kTenantA, q);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->items.size(), 3u);
  EXPECT_TRUE(page->has_more);
  q.skip = 3;
  page = store_->ListApps(kTenantA, q);
  EXPECT_EQ(page->items.size(), 1u);
  EXPECT_FALSE(page->has_more);
  q.skip = -1;
  EXPECT_EQ(store_->ListApps(kTenantA, q).error().code, Code::kInvalidArgument);
}

TEST_P(SyncStoreTest, ListAppAssignmentsPagesOneApp) {
  VppToken t = Token(kTenantA);
  MobileApp app1 = App(t.id, "1", "iOS", 4);
  ASSERT_TRUE(FullSync(kTenantA, t.id, {app1, App(t.id, "2", "iOS", 1)},
                       {User("1", "u2"), Device("1", "S2"), User("1", "u1"), Device("1", "S1"), User("2", "x")}));
  Result<Page<LicenseAssignment>> page = store_->ListAppAssignments(kTenantA, app1.id, 0, 3);
  ASSERT_TRUE(page) << page.error().message;
  // Ordered by (serial_number, client_user_id): user licenses ('' serial) first.
  EXPECT_EQ(page->items, (std::vector<LicenseAssignment>{User("1", "u1"), User("1", "u2"), Device("1", "S1")}));
  EXPECT_TRUE(page->has_more);
  page = store_->ListAppAssignments(kTenantA, app1.id, 3, 3);
  EXPECT_EQ(page->items, (std::vector<LicenseAssignment>{Device("1", "S2")}));
  EXPECT_FALSE(page->has_more);
  EXPECT_EQ(store_->ListAppAssignments(kTenantA, "nope", 0, 3).error().code, Code::kNotFound);
  EXPECT_EQ(store_->ListAppAssignments(kTenantA, app1.id, -1, 3).error().code, Code::kInvalidArgument);
  EXPECT_EQ(store_->ListAppAssignments(kTenantA, app1.id, 0, 100001).error().code, Code::kInvalidArgument);
}

// An app's assignments read the same however they were stored: one run of
// several chunks (SQLite, 512 a chunk), several overlapping runs (staged in
// several calls), and further runs appended by a delta.
TEST_P(SyncStoreTest, AnAppListsTheSameWhateverRunsItsAssignmentsCameIn) {
  VppToken t = Token(kTenantA);
  std::vector<LicenseAssignment> rows;
  for (int i = 0; i < 1300; ++i) {
    if (i % 3 == 0) rows.push_back(User("1", NewGuid()));                             // packed as 16 bytes
    if (i % 3 == 1) rows.push_back(User("1", fmt::format("User-{:04}\xc3\xa9", i)));  // kept as text
    if (i % 3 == 2) rows.push_back(Device("1", fmt::format("C02X{:06}", i)));
  }
  rows.push_back(User("1", std::string(200, 'x')));  // a length of two varint bytes
  auto expected = [](std::vector<LicenseAssignment> v) {
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
      return std::tie(a.serial_number, a.client_user_id) < std::tie(b.serial_number, b.client_user_id);
    });
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  };
  auto listed = [&](const MobileApp& app, std::int64_t skip, std::int64_t limit) {
    Result<Page<LicenseAssignment>> page = store_->ListAppAssignments(kTenantA, app.id, skip, limit);
    EXPECT_TRUE(page) << page.error().message;
    return page ? page->items : std::vector<LicenseAssignment>{};
  };
  auto check = [&](const MobileApp& app, const std::vector<LicenseAssignment>& want) {
    const auto n = static_cast<std::int64_t>(want.size());
    for (auto [skip, limit] : std::vector<std::pair<std::int64_t, std::int64_t>>{
             {0, n + 5}, {0, 100}, {500, 30}, {511, 2}, {512, 512}, {1000, 400}, {n - 1, 10}, {n, 10}}) {
      std::vector<LicenseAssignment> slice(want.begin() + std::min(skip, n), want.begin() + std::min(skip + limit, n));
      EXPECT_EQ(listed(app, skip, limit), slice) << "skip " << skip << " limit " << limit;
    }
    EXPECT_EQ(All(kTenantA, t.id).size(), want.size());
    EXPECT_TRUE(CountsMatch());
  };

  // One call: one run.
  MobileApp app = App(t.id, "1", "iOS", static_cast<std::int64_t>(rows.size()));
  ASSERT_TRUE(FullSync(kTenantA, t.id, {app}, rows));
  check(app, expected(rows));

  // Three overlapping calls (every row of the middle one is in another too).
  Enqueue(kTenantA, t.id);
  SyncJob job = Claim("w");
  const std::vector<LicenseAssignment> a(rows.begin(), rows.begin() + 700), b(rows.begin() + 600, rows.end()),
      c(rows.begin() + 650, rows.begin() + 800);
  ASSERT_TRUE(store_->StageAssignments(job, b));
  ASSERT_TRUE(store_->StageAssignments(job, c));
  ASSERT_TRUE(store_->StageAssignments(job, a));
  SyncSnapshot snap;
  snap.apps = {app};
  snap.assignments = Mode::kReplaceWithStaged;
  ASSERT_TRUE(store_->FinishJob(job, snap, NoChange));
  check(app, expected(rows));

  // A delta of new rows, one of them already stored (a license taken back and
  // given again since the last walk): the set gains the new ones only.
  std::vector<LicenseAssignment> delta = {User("1", NewGuid()), Device("1", "A-NEW-1"), rows[7]};
  std::vector<LicenseAssignment> all = rows;
  all.insert(all.end(), delta.begin(), delta.begin() + 2);
  app.used_licenses = static_cast<std::int64_t>(all.size());
  Result<VppToken> merged = FullSync(kTenantA, t.id, {app}, delta, Mode::kMergeStaged);
  ASSERT_TRUE(merged) << merged.error().message;
  check(app, expected(all));

  // Deltas that add no duplicate stay runs of their own until there are too many.
  for (int k = 0; k < 6; ++k) {
    std::vector<LicenseAssignment> more = {Device("1", fmt::format("B-{}", k)), User("1", NewGuid())};
    all.insert(all.end(), more.begin(), more.end());
    app.used_licenses = static_cast<std::int64_t>(all.size());
    merged = FullSync(kTenantA, t.id, {app}, more, Mode::kMergeStaged);
    ASSERT_TRUE(merged) << merged.error().message;
    check(app, expected(all));
  }
}

// A walk reads the set it began with: a sync replacing it meanwhile fails the
// walk rather than mixing two sets (or missing rows the collector deleted).
TEST_P(SyncStoreTest, AWalkOfASetReplacedMeanwhileFails) {
  VppToken t = Token(kTenantA);
  ASSERT_TRUE(FullSync(kTenantA, t.id, {}, {User("1", "a"), User("2", "b"), User("3", "c")}));
  int batches = 0;
  Status walked = store_->ForEachAssignment(kTenantA, t.id, 1, [&](const auto&) -> Status {
    if (++batches == 1) {
      EXPECT_TRUE(FullSync(kTenantA, t.id, {}, {User("1", "new")}));
    }
    return {};
  });
  ASSERT_FALSE(walked);
  EXPECT_EQ(walked.error().code, Code::kFailedPrecondition) << walked.error().message;
  EXPECT_EQ(batches, 1);
  EXPECT_EQ(All(kTenantA, t.id), (std::vector<LicenseAssignment>{User("1", "new")})) << "a new walk reads the new set";
}

TEST_P(SyncStoreTest, ForEachAssignmentWalksInBoundedBatches) {
  VppToken t = Token(kTenantA);
  std::vector<LicenseAssignment> rows;
  for (int i = 0; i < 2500; ++i) rows.push_back(User(std::to_string(1 + i % 3), fmt::format("user-{:05}", i)));
  ASSERT_TRUE(FullSync(kTenantA, t.id, {}, rows));
  std::vector<std::size_t> sizes;
  std::vector<LicenseAssignment> all;
  ASSERT_TRUE(store_->ForEachAssignment(kTenantA, t.id, 1000, [&](const auto& batch) -> Status {
    sizes.push_back(batch.size());
    all.insert(all.end(), batch.begin(), batch.end());
    return {};
  }));
  EXPECT_EQ(sizes, (std::vector<std::size_t>{1000, 1000, 500}));
  EXPECT_TRUE(CountsMatch());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return std::tie(a.adam_id, a.pricing_param, a.serial_number, a.client_user_id) <
           std::tie(b.adam_id, b.pricing_param, b.serial_number, b.client_user_id);
  });
  EXPECT_EQ(all, rows) << "every row once, in key order";

  // Exactly a multiple of the batch: one empty probe ends it, no empty callback.
  sizes.clear();
  ASSERT_TRUE(store_->ForEachAssignment(kTenantA, t.id, 500, [&](const auto& batch) -> Status {
    sizes.push_back(batch.size());
    return {};
  }));
  EXPECT_EQ(sizes.size(), 5u);

  int calls = 0;
  Status stopped = store_->ForEachAssignment(kTenantA, t.id, 100, [&](const auto&) -> Status {
    ++calls;
    return Fail(Error::Unavailable("consumer gave up"));
  });
  ASSERT_FALSE(stopped);
  EXPECT_EQ(stopped.error().message, "consumer gave up");
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(store_->ForEachAssignment(kTenantA, t.id, 0, [](const auto&) -> Status { return {}; }).error().code,
            Code::kInvalidArgument);
  VppToken empty = Token(kTenantA, "empty");
  calls = 0;
  ASSERT_TRUE(store_->ForEachAssignment(kTenantA, empty.id, 10, [&](const auto&) -> Status {
    ++calls;
    return {};
  }));
  EXPECT_EQ(calls, 0);
}

TEST_P(SyncStoreTest, FindAppsByBundleIdFallsBackToAdamId) {
  VppToken t1 = Token(kTenantA, "l1"), t2 = Token(kTenantA, "l2");
  MobileApp unnamed = App(t2.id, "555", "iOS", 0);
  unnamed.bundle_id = "";
  ASSERT_TRUE(FullSync(kTenantA, t1.id, {App(t1.id, "1", "iOS", 0), App(t1.id, "1", "macOS", 0)}, {}, Mode::kKeep));
  ASSERT_TRUE(FullSync(kTenantA, t2.id, {App(t2.id, "1", "iOS", 0), unnamed}, {}, Mode::kKeep));
  Result<std::vector<MobileApp>> found = store_->FindAppsByBundleId(kTenantA, "com.example.app1");
  ASSERT_TRUE(found);
  ASSERT_EQ(found->size(), 3u);
  std::string lower = std::min(t1.id, t2.id);
  EXPECT_EQ((*found)[0].token_id, lower) << "ordered by token id";
  EXPECT_TRUE(std::is_sorted(found->begin(), found->end(),
                             [](const MobileApp& a, const MobileApp& b) { return a.token_id < b.token_id; }));
  found = store_->FindAppsByBundleId(kTenantA, "555");
  ASSERT_TRUE(found);
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].id, unnamed.id);
  EXPECT_TRUE(store_->FindAppsByBundleId(kTenantA, "com.none")->empty());
  EXPECT_TRUE(store_->FindAppsByBundleId(kTenantA, "")->empty()) << "'' is 'unknown', not a bundle id";
}

TEST_P(SyncStoreTest, FindTokensByAppleUid) {
  VppToken first = Token(kTenantA, "same"), second = Token(kTenantA, "same");
  Token(kTenantA, "different");
  Token(kTenantB, "same");
  Result<std::vector<VppToken>> others = store_->FindTokensByAppleUid(kTenantA, "same", second.id);
  ASSERT_TRUE(others);
  ASSERT_EQ(others->size(), 1u);
  EXPECT_EQ((*others)[0].id, first.id);
  EXPECT_TRUE((*others)[0].token.empty());
  EXPECT_EQ(store_->FindTokensByAppleUid(kTenantA, "same", "")->size(), 2u);
  EXPECT_TRUE(store_->FindTokensByAppleUid(kTenantA, "nowhere", "")->empty());
}

// The row version (ETags): 1 on create, one more per write of the row, whichever
// path writes it (UpdateToken, EnqueueJob, FinishJob); reads and failed writes
// leave it; what a mutate sets is ignored.
TEST_P(SyncStoreTest, EveryWriteOfATokenAddsOneToItsRowVersion) {
  VppToken t = Token(kTenantA);
  EXPECT_EQ(t.row_version, 1);
  EXPECT_EQ(store_->GetToken(kTenantA, t.id)->row_version, 1);
  Result<VppToken> updated = store_->UpdateToken(kTenantA, t.id, [](VppToken& x) -> Status {
    x.display_name = "renamed";
    x.row_version = 100;  // ignored
    return {};
  });
  ASSERT_TRUE(updated) << updated.error().message;
  EXPECT_EQ(updated->row_version, 2);
  EXPECT_EQ(store_->GetToken(kTenantA, t.id)->row_version, 2);
  EXPECT_EQ(store_->ListTokens(kTenantA, {})->items[0].row_version, 2);
  EXPECT_EQ(store_->UpdateToken(kTenantA, t.id, [](VppToken&) -> Status { return Fail(Error::InvalidArgument("no")); })
                .error()
                .code,
            Code::kInvalidArgument);
  EXPECT_EQ(store_->GetToken(kTenantA, t.id)->row_version, 2) << "a failed write changes nothing";
  ASSERT_TRUE(Enqueue(kTenantA, t.id));
  EXPECT_EQ(store_->GetToken(kTenantA, t.id)->row_version, 3);
  SyncJob job = Claim("w");
  Result<VppToken> finished = store_->FinishJob(job, std::nullopt, [](VppToken& x) -> Status {
    x.last_sync_status = "completed";
    return {};
  });
  ASSERT_TRUE(finished) << finished.error().message;
  EXPECT_EQ(finished->row_version, 4);
  EXPECT_EQ(store_->GetToken(kTenantA, t.id)->row_version, 4);
  // Versions are per token.
  EXPECT_EQ(Token(kTenantA, "other").row_version, 1);
}

// If-Match: UpdateToken and DeleteToken given a version write only when the
// token is still at it; otherwise FailedPrecondition and nothing written (the
// mutate is not even called). NotFound before the version.
TEST_P(SyncStoreTest, ConditionalWritesFailOnAStaleVersion) {
  VppToken t = Token(kTenantA);
  auto rename = [](const std::string& name) {
    return [name](VppToken& x) -> Status {
      x.display_name = name;
      return {};
    };
  };
  Result<VppToken> v2 = store_->UpdateToken(kTenantA, t.id, rename("second"), 1);
  ASSERT_TRUE(v2) << v2.error().message;
  EXPECT_EQ(v2->row_version, 2);
  bool called = false;
  Result<VppToken> stale = store_->UpdateToken(
      kTenantA, t.id,
      [&](VppToken& x) -> Status {
        called = true;
        x.display_name = "lost";
        return {};
      },
      1);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, Code::kAborted);
  EXPECT_NE(stale.error().message.find("was changed since version 1"), std::string::npos) << stale.error().message;
  EXPECT_FALSE(called);
  EXPECT_EQ(store_->UpdateToken(kTenantA, t.id, rename("future"), 3).error().code, Code::kAborted);
  Result<VppToken> now = store_->GetToken(kTenantA, t.id);
  EXPECT_EQ(now->display_name, "second");
  EXPECT_EQ(now->row_version, 2);
  EXPECT_EQ(store_->UpdateToken(kTenantA, "absent", rename("x"), 1).error().code, Code::kNotFound);
  EXPECT_EQ(store_->UpdateToken(kTenantB, t.id, rename("x"), 2).error().code, Code::kNotFound) << "tenant-scoped";

  Status stale_delete = store_->DeleteToken(kTenantA, t.id, 1);
  ASSERT_FALSE(stale_delete);
  EXPECT_EQ(stale_delete.error().code, Code::kAborted);
  EXPECT_TRUE(store_->GetToken(kTenantA, t.id)) << "a stale delete deletes nothing";
  EXPECT_EQ(store_->DeleteToken(kTenantA, "absent", 1).error().code, Code::kNotFound);
  EXPECT_EQ(store_->DeleteToken(kTenantB, t.id, 2).error().code, Code::kNotFound);
  ASSERT_TRUE(store_->DeleteToken(kTenantA, t.id, 2));
  EXPECT_EQ(store_->GetToken(kTenantA, t.id).error().code, Code::kNotFound);
  EXPECT_EQ(store_->DeleteToken(kTenantA, t.id, 2).error().code, Code::kNotFound);
}

// Writers that all read version v and then write "if still v" at once: exactly
// one wins, whichever instance or connection it runs on (PostgreSQL: one
// connection each); the check is made under the row lock, so no write comes in
// between. A mutate that sleeps widens the window a check outside the
// transaction would lose in.
TEST_P(SyncStoreTest, ConcurrentConditionalWritersOneWins) {
  constexpr int kWriters = 6;
  for (int round = 0; round < 3; ++round) {
    VppToken t = Token(kTenantA, "race" + std::to_string(round));
    const std::int64_t v = store_->GetToken(kTenantA, t.id)->row_version;
    std::atomic<int> ready{0}, won{0}, stale{0}, other{0};
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w] {
        ++ready;
        while (ready.load() < kWriters) std::this_thread::yield();
        Status s;
        if (round == 2 && w % 2 == 1) {
          s = store_->DeleteToken(kTenantA, t.id, v);  // deletes race the updates too
        } else {
          Result<VppToken> r = store_->UpdateToken(
              kTenantA, t.id,
              [&](VppToken& x) -> Status {
                std::this_thread::sleep_for(2ms);
                x.display_name = "writer" + std::to_string(w);
                return {};
              },
              v);
          if (!r) s = Fail(r.error());
        }
        if (s) {
          ++won;
        } else if (s.error().code == Code::kAborted || s.error().code == Code::kNotFound) {
          ++stale;  // NotFound: a delete won
        } else {
          ++other;
          ADD_FAILURE() << s.error().message;
        }
      });
    }
    for (std::thread& th : writers) th.join();
    EXPECT_EQ(won.load(), 1) << "round " << round;
    EXPECT_EQ(stale.load(), kWriters - 1) << "round " << round;
    EXPECT_EQ(other.load(), 0);
    Result<VppToken> after = store_->GetToken(kTenantA, t.id);
    if (after) {
      EXPECT_EQ(after->row_version, v + 1) << "one write, not several";
    } else {
      EXPECT_EQ(after.error().code, Code::kNotFound);
      EXPECT_EQ(round, 2);
    }
  }
}

TEST_P(SyncStoreTest, TokensDueForSync) {
  VppToken never = Token(kTenantA, "never");
  VppToken old = Token(kTenantB, "old");
  VppToken recent = Token(kTenantA, "recent");
  VppToken expired = Token(kTenantA, "expired");
  VppToken busy = Token(kTenantA, "busy");
  VppToken reconciling = Token(kTenantA, "reconciling");
  auto set = [&](const VppToken& t, const std::string& tenant, Timestamp last_sync, const std::string& state) {
    ASSERT_TRUE(store_->UpdateToken(tenant, t.id, [&](VppToken& x) -> Status {
      x.last_sync = last_sync;
      x.state = state;
      return {};
    }));
  };
  set(old, kTenantB, kT0 - 48 * 3600 * kSecond, "valid");
  set(recent, kTenantA, kT0 - 60 * kSecond, "valid");
  set(expired, kTenantA, 0, "expired");
  set(busy, kTenantA, 0, "valid");
  set(reconciling, kTenantA, kT0 - 24 * 3600 * kSecond, "valid");
  Enqueue(kTenantA, busy.id, "syncLicenses");
  // Jobs of other kinds do not hold the sync back (a reconcile waiting for Apple's
  // events stays queued for minutes, and comes again with every directory change).
  Enqueue(kTenantA, reconciling.id, "reconcile");
  Enqueue(kTenantA, reconciling.id, "revokeLicenses");
  Result<std::vector<DueToken>> due = store_->TokensDueForSync(kT0 - 3600 * kSecond, 10);
  ASSERT_TRUE(due);
  EXPECT_EQ(*due, (std::vector<DueToken>{{kTenantA, never.id, 0},
                                         {kTenantB, old.id, kT0 - 48 * 3600 * kSecond},
                                         {kTenantA, reconciling.id, kT0 - 24 * 3600 * kSecond}}))
      << "never synced first, then the oldest, each with its last sync; not the one with a sync queued";
  EXPECT_EQ(store_->TokensDueForSync(kT0, 1)->size(), 1u);
  EXPECT_EQ(store_->TokensDueForSync(kT0, 10)->size(), 4u);
  EXPECT_EQ(store_->TokensDueForSync(kT0, -1).error().code, Code::kInvalidArgument);
}

TEST_P(SyncStoreTest, NewReadsAreTenantScoped) {
  VppToken a = Token(kTenantA);
  MobileApp app = App(a.id, "1", "iOS", 1);
  ASSERT_TRUE(FullSync(kTenantA, a.id, {app}, {User("1", "u1")}));
  EXPECT_TRUE(store_->ListApps(kTenantB, {})->items.empty());
  EXPECT_EQ(*store_->CountApps(kTenantB, std::nullopt), 0);
  EXPECT_EQ(store_->GetApp(kTenantB, app.id).error().code, Code::kNotFound);
  EXPECT_EQ(store_->ListAppAssignments(kTenantB, app.id, 0, 10).error().code, Code::kNotFound);
  EXPECT_EQ(store_->ForEachAssignment(kTenantB, a.id, 10, [](const auto&) -> Status { return {}; }).error().code,
            Code::kNotFound);
  EXPECT_TRUE(store_->FindAppsByBundleId(kTenantB, app.bundle_id)->empty());
  EXPECT_TRUE(store_->FindAppsByBundleId(kTenantB, "1")->empty());
  EXPECT_TRUE(store_->FindTokensByAppleUid(kTenantB, "loc-1", "")->empty());
  EXPECT_EQ(store_->GetTokenSecret(kTenantB, a.id).error().code, Code::kNotFound);
  // And A sees its own.
  EXPECT_EQ(store_->GetApp(kTenantA, app.id)->id, app.id);
  EXPECT_EQ(store_->ListAppAssignments(kTenantA, app.id, 0, 10)->items.size(), 1u);
}

// A timing of the critical path, at a tenth of the bench's size so the unit suite
// stays quick (store_sync_bench runs the full 1,000,000).
TEST_P(SyncStoreTest, MeasureStageAndFinish100k) {
  VppToken t = Token(kTenantA);
  Enqueue(kTenantA, t.id);
  SyncJob job = Claim("w", 600s);
  auto start = std::chrono::steady_clock::now();
  std::vector<LicenseAssignment> page;
  for (int p = 0; p < 100; ++p) {
    page.clear();
    for (int i = 0; i < 1000; ++i)
      page.push_back(User(std::to_string(100 + (p * 7 + i) % 50), fmt::format("u{}-{}", p, i)));
    ASSERT_TRUE(store_->StageAssignments(job, page));
  }
  auto staged = std::chrono::steady_clock::now();
  SyncSnapshot snap;
  snap.assignments = Mode::kReplaceWithStaged;
  ASSERT_TRUE(store_->FinishJob(job, snap, NoChange));
  auto finished = std::chrono::steady_clock::now();
  EXPECT_EQ(RawRows(), 100000);
  EXPECT_EQ(Staged(), 0);
  std::printf("[ measure  ] 100 x StageAssignments(1000): %.0f ms; FinishJob(100,000 rows): %.0f ms\n",
              std::chrono::duration<double, std::milli>(staged - start).count(),
              std::chrono::duration<double, std::milli>(finished - staged).count());
}

// --- this installation ------------------------------------------------------------

TEST_P(SyncStoreTest, InstallationIdIsTheFirstProposalStoredForever) {
  const std::string first = NewGuid(), second = NewGuid();
  Result<std::string> id = store_->InstallationId(first);
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, first);
  id = store_->InstallationId(second);
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, first);  // a later proposal changes nothing
  Reopen();
  id = store_->InstallationId(NewGuid());
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, first);
  EXPECT_EQ(RawConn().Int("SELECT count(*) FROM vppd_settings"), 1);
  EXPECT_EQ(RawConn().Text("SELECT value FROM vppd_settings WHERE name = 'installation_id'"), first);
}

TEST_P(SyncStoreTest, InstallationIdRejectsANonGuidAndStoresNothing) {
  for (const std::string bad : {"", "installation", "0123456789abcdef0123456789abcdef0123",
                                "01234567-89ab-cdef-0123-456789abcdeg", "01234567-89ab-cdef-0123-456789abcdef\n"}) {
    Result<std::string> id = store_->InstallationId(bad);
    ASSERT_FALSE(id) << bad;
    EXPECT_EQ(id.error().code, Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(RawConn().Int("SELECT count(*) FROM vppd_settings"), 0);
  // A bad proposal is refused even when an id is stored: the caller has a bug.
  const std::string good = NewGuid();
  ASSERT_TRUE(store_->InstallationId(good));
  Result<std::string> id = store_->InstallationId("nope");
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().code, Code::kInvalidArgument);
  EXPECT_EQ(*store_->InstallationId(NewGuid()), good);
}

TEST_P(SyncStoreTest, InstallationIdStoredByHandThatIsNoGuidIsAnError) {
  RawConn().Exec("INSERT INTO vppd_settings (name, value) VALUES ('installation_id', 'edited by hand')");
  Result<std::string> id = store_->InstallationId(NewGuid());
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().code, Code::kInternal);
}

// Instances starting together on one database (one Store each, as processes have)
// must all come out with the same id, or they would take locations from each other.
TEST_P(SyncStoreTest, StoresRacingForTheInstallationIdAgree) {
  constexpr int kStores = 6;
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < kStores; ++i) {
    Result<std::unique_ptr<Store>> opened = db_->Open(options_);
    ASSERT_TRUE(opened) << opened.error().message;
    stores.push_back(std::move(*opened));
  }
  std::vector<std::string> proposed(kStores), got(kStores);
  for (auto& p : proposed) p = NewGuid();
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kStores; ++i) {
    threads.emplace_back([&, i] {
      ++ready;
      while (ready.load() < kStores) std::this_thread::yield();  // all at once
      const auto n = static_cast<std::size_t>(i);
      Result<std::string> id = stores[n]->InstallationId(proposed[n]);
      got[n] = id ? *id : "error: " + id.error().message;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_NE(std::find(proposed.begin(), proposed.end(), got[0]), proposed.end()) << got[0];
  for (int i = 1; i < kStores; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], got[0]);
  EXPECT_EQ(RawConn().Int("SELECT count(*) FROM vppd_settings"), 1);
}

}  // namespace
}  // namespace vppd::store
