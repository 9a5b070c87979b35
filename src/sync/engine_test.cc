// Engine tests through a real SQLite store and a fake Apple client: that Wake()
// starts a queued job at once, and that the staging writer thread (Stager in
// sync_licenses.cc) stages every page of a walk and survives a store failure in
// the middle of one, and that a running job's progress reaches the store.
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "base/testing.h"
#include "sync/sync.h"

namespace vppd::sync {
namespace {

constexpr const char* kTenant = "11111111-1111-1111-1111-111111111111";
constexpr const char* kInstallation = "test-installation";

// Each test's database lives in a directory of its own.
class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("vppd-engine") {}
};

// Apple for one location: `pages` pages of 1,000 assignments over 10 apps; `on_page`
// runs before each assignments page is delivered (tests break the store there).
class FakeApple final : public apple::Client {
 public:
  int pages = 25;
  std::function<void(int)> on_page;

  apple::AppleResult<apple::ServiceConfig> GetServiceConfig() override { return apple::ServiceConfig{}; }
  apple::AppleResult<apple::ClientConfig> GetClientConfig() override {
    apple::ClientConfig c;
    c.uid = "loc-1";
    c.country_iso2a = "US";
    c.location_name = "Fake";
    c.mdm_info = OurMdmInfo(kInstallation, kTenant);
    return c;
  }
  apple::AppleResult<apple::ClientConfig> SetClientConfig(const apple::MdmInfo&) override { return GetClientConfig(); }
  apple::AppleResult<apple::WalkResult> WalkAssets(const apple::AssetFilter&,
                                                   const apple::PageCallback<apple::Asset>& cb) override {
    apple::AssetsPage page;
    page.total_pages = 1;
    page.version_id = "v1";
    for (int i = 0; i < 10; ++i) {
      apple::Asset a;
      a.adam_id = std::to_string(100 + i);
      a.pricing_param = "STDQ";
      a.product_type = "App";
      a.assigned_count = pages * 100;
      a.total_count = pages * 100;
      page.items.push_back(a);
    }
    if (auto s = cb(page); !s) return tl::unexpected(Aborted(s.error()));
    apple::WalkResult r;
    r.version_id = "v1";
    r.total_pages = 1;
    return r;
  }
  apple::AppleResult<apple::WalkResult> WalkAssignments(const apple::AssignmentFilter&,
                                                        const apple::PageCallback<apple::AssignmentRef>& cb) override {
    apple::WalkResult r;
    r.version_id = "v1";
    r.total_pages = pages;
    for (int p = 0; p < pages; ++p) {
      if (on_page) on_page(p);
      apple::AssignmentsPage page;
      page.index = p;
      page.total_pages = pages;
      page.version_id = "v1";
      std::vector<apple::Assignment> owned(1000);  // What the page's views view.
      for (int i = 0; i < 1000; ++i) {
        apple::Assignment& a = owned[i];
        a.adam_id = std::to_string(100 + i % 10);
        a.pricing_param = "STDQ";
        a.serial_number = "S" + std::to_string(p * 1000 + i);
        page.items.push_back({a.adam_id, a.pricing_param, a.client_user_id, a.serial_number});
      }
      if (auto s = cb(page); !s) return tl::unexpected(Aborted(s.error()));
      ++r.pages_delivered;
      r.items += 1000;
    }
    return r;
  }
  apple::AppleResult<apple::WalkResult> WalkUsers(const apple::UserFilter&,
                                                  const apple::PageCallback<apple::User>&) override {
    return apple::WalkResult{};
  }
  apple::AppleResult<apple::EventResponse> Associate(const apple::ManageAssetsRequest&) override {
    return Unsupported();
  }
  apple::AppleResult<apple::EventResponse> Disassociate(const apple::ManageAssetsRequest&) override {
    return Unsupported();
  }
  apple::AppleResult<apple::EventResponse> Revoke(const std::vector<std::string>&,
                                                  const std::vector<std::string>&) override {
    return Unsupported();
  }
  apple::AppleResult<apple::EventResponse> CreateUsers(const std::vector<apple::ManagedUser>&) override {
    return Unsupported();
  }
  apple::AppleResult<apple::EventResponse> UpdateUsers(const std::vector<apple::ManagedUser>&) override {
    return Unsupported();
  }
  apple::AppleResult<apple::EventResponse> RetireUsers(const std::vector<std::string>&) override {
    return Unsupported();
  }
  apple::AppleResult<apple::EventStatus> GetEventStatus(const std::string&) override { return Unsupported(); }
  apple::AppleResult<apple::EventStatus> WaitForEvent(const std::string&, std::chrono::milliseconds,
                                                      std::chrono::milliseconds) override {
    return Unsupported();
  }
  // Knows every app but 108 and 109; records what it was asked.
  apple::AppleResult<std::vector<apple::AppMetadata>> LookupMetadata(const std::vector<std::string>& ids) override {
    std::vector<apple::AppMetadata> found;
    for (const std::string& id : ids) {
      if (lookups != nullptr) lookups->push_back(id);
      if (id == "108" || id == "109") continue;
      found.push_back({id, "com.example.app" + id, "App named " + id, "iosSoftware", "1.0", {}, {}, {}, {}});
    }
    return found;
  }
  std::vector<std::string>* lookups = nullptr;

 private:
  static apple::AppleError Aborted(const Error& cause) {
    apple::AppleError e;
    e.kind = apple::AppleErrorKind::kAborted;
    e.error_message = cause.message;
    e.cause = cause;
    return e;
  }
  static tl::unexpected<apple::AppleError> Unsupported() {
    apple::AppleError e;
    e.kind = apple::AppleErrorKind::kInvalidArgument;
    e.error_message = "not faked";
    return tl::unexpected(e);
  }
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store::SqliteOptions o;
    o.path = dir_.File("vppd.db");
    o.secrets = std::make_shared<SecretBox>(SecretBox::FromKey(std::string(32, 'k')));
    auto opened = store::Store::OpenSqlite(o);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
    ASSERT_TRUE(store_->PutTenant({kTenant, "T", true, 0}));
    store::VppToken t;
    t.token = "sToken";
    t.state = "valid";
    t.expiration = Clock::Real().Now() + 86'400'000'000LL;
    auto created = store_->CreateToken(kTenant, t);
    ASSERT_TRUE(created) << created.error().message;
    token_id_ = created->id;

    options_.installation_id = kInstallation;
    options_.auto_sync_interval = std::chrono::seconds(0);
    options_.client_factory = [this](apple::ClientOptions) -> apple::AppleResult<std::unique_ptr<apple::Client>> {
      auto fake = std::make_unique<FakeApple>();
      fake->pages = pages_;
      fake->on_page = on_page_;
      fake->lookups = &lookups_;
      return std::unique_ptr<apple::Client>(std::move(fake));
    };
  }

  void Queue(const std::string& kind = "syncLicenses") {
    auto queued = RequestJob(*store_, kTenant, token_id_, kind, "", Clock::Real().Now());
    ASSERT_TRUE(queued) << queued.error().message;
  }

  std::int64_t Assignments() {
    std::int64_t n = 0;
    auto ok = store_->ForEachAssignment(kTenant, token_id_, 10'000,
                                        [&](const std::vector<store::LicenseAssignment>& b) -> Status {
                                          n += static_cast<std::int64_t>(b.size());
                                          return {};
                                        });
    EXPECT_TRUE(ok) << ok.error().message;
    return n;
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::string token_id_;
  EngineOptions options_;
  int pages_ = 25;
  std::function<void(int)> on_page_;
  std::vector<std::string> lookups_;  // every id the fake's metadata lookup was asked, in order
};

// A clock the test moves while the engine's threads read it; counts the reads.
// With auto syncs off, only a worker looking for a job reads it (to claim with).
class SharedFakeClock final : public Clock {
 public:
  explicit SharedFakeClock(Timestamp start) : now_(start) {}
  Timestamp Now() const override {
    ++reads_;
    return now_.load();
  }
  void Set(Timestamp t) { now_ = t; }
  int reads() const { return reads_.load(); }

 private:
  std::atomic<Timestamp> now_;
  mutable std::atomic<int> reads_{0};
};

// The job becomes claimable only after every worker has looked and gone to wait
// for its 60 s poll, so nothing but Wake() can start it within the 5 s: without
// Wake() (or with a Wake() that does nothing) this test fails, however loaded the
// machine is.
TEST_F(EngineTest, WakeStartsAQueuedJobWithoutWaitingForThePoll) {
  const Timestamp t0 = Clock::Real().Now();
  constexpr Timestamp kHour = 3'600'000'000LL;
  SharedFakeClock clock(t0);
  options_.clock = &clock;
  options_.workers = 2;
  options_.poll_interval = std::chrono::milliseconds(60'000);
  // Fails at once: the job is finished (deleted) as soon as a worker runs it. Not
  // claimable before t0 + 1 h.
  auto queued = RequestJob(*store_, kTenant, token_id_, "noSuchKind", "", t0, 20, t0 + kHour);
  ASSERT_TRUE(queued) << queued.error().message;
  Engine engine(*store_, options_);
  engine.Start();
  // Each worker reads the clock once to look for a job (at t0: nothing claimable),
  // then waits. However long the threads take to get there, the test waits for it.
  const auto started = std::chrono::steady_clock::now();
  while (clock.reads() < options_.workers) {
    ASSERT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(60)) << "the workers never looked";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  clock.Set(t0 + 2 * kHour);  // the job is due now, but every worker has looked already
  engine.Wake();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::int64_t jobs = 1;
  while (std::chrono::steady_clock::now() < deadline) {
    auto n = store_->CountJobs();
    ASSERT_TRUE(n);
    if ((jobs = *n) == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(jobs, 0) << "the job waited for the 60 s poll";
  EXPECT_GE(clock.reads(), options_.workers + 1) << "no worker looked again";
  engine.Stop(std::chrono::milliseconds(0));
}

TEST_F(EngineTest, EveryPageOfAFullWalkIsStaged) {
  Engine engine(*store_, options_);
  Queue();
  auto ran = engine.RunOne();
  ASSERT_TRUE(ran) << ran.error().message;
  ASSERT_TRUE(*ran);
  auto token = store_->GetToken(kTenant, token_id_);
  ASSERT_TRUE(token);
  EXPECT_EQ(token->last_sync_status, "completed") << token->last_sync_error;
  EXPECT_EQ(Assignments(), 25'000);
}

// App names come from Apple's lookup once per metadata_ttl, for every token;
// an id the lookup did not answer is asked again at the next sync.
TEST_F(EngineTest, AppMetadataIsLookedUpOncePerTtl) {
  pages_ = 1;
  // The ids one sync by `engine` asked the lookup for.
  auto asked_by_a_sync = [&](Engine& engine) {
    lookups_.clear();
    Queue();
    auto ran = engine.RunOne();
    EXPECT_TRUE(ran && *ran);
    return lookups_;
  };
  auto name_of_app_103 = [&]() -> std::string {
    auto apps = store_->FindAppsByBundleId(kTenant, "com.example.app103");
    return apps && apps->size() == 1 ? apps->front().display_name : "(not found)";
  };
  const std::vector<std::string> all = {"100", "101", "102", "103", "104", "105", "106", "107", "108", "109"};
  const std::vector<std::string> unanswered = {"108", "109"};

  // The engine keeps the cache: its first sync asks for every app; later ones
  // only for the two ids Apple did not answer. Names from the cache are stored
  // as those from the lookup.
  Engine engine(*store_, options_);
  EXPECT_EQ(asked_by_a_sync(engine), all);
  EXPECT_EQ(name_of_app_103(), "App named 103");
  EXPECT_EQ(asked_by_a_sync(engine), unanswered);
  EXPECT_EQ(asked_by_a_sync(engine), unanswered);
  EXPECT_EQ(name_of_app_103(), "App named 103");

  // Another engine (a restart) starts empty.
  Engine restarted(*store_, options_);
  EXPECT_EQ(asked_by_a_sync(restarted), all);

  // metadata_ttl 0: every sync looks every app up.
  options_.metadata_ttl = std::chrono::seconds(0);
  Engine uncached(*store_, options_);
  EXPECT_EQ(asked_by_a_sync(uncached), all);
  EXPECT_EQ(asked_by_a_sync(uncached), all);
}

TEST_F(EngineTest, AStoreFailureWhileStagingEndsTheWalkWithoutASnapshot) {
  // The job's lease is taken away mid-walk (as when another worker took it over):
  // the staging thread's next write fails, the walk stops, nothing is swapped in,
  // and the engine neither hangs nor crashes.
  std::atomic<int> pages_fetched{0};
  on_page_ = [&](int p) {
    pages_fetched = p + 1;
    if (p == 5) {
      auto claimed = store_->ClaimJob("thief", Clock::Real().Now() + 3'600'000'000LL, std::chrono::hours(1));
      ASSERT_TRUE(claimed && *claimed) << "the job could be re-claimed after its lease";
    }
  };
  pages_ = 200;
  Engine engine(*store_, options_);
  Queue();
  auto ran = engine.RunOne();
  ASSERT_TRUE(ran) << ran.error().message;
  EXPECT_LT(pages_fetched.load(), 200) << "the walk went on after the store failed";
  EXPECT_EQ(Assignments(), 0) << "no snapshot from a walk whose staging failed";
  auto token = store_->GetToken(kTenant, token_id_);
  ASSERT_TRUE(token);
  EXPECT_EQ(token->last_sync_status, "inProgress") << "the job belongs to the other worker now";
}

TEST_F(EngineTest, ARunningJobPublishesItsProgressThroughTheStore) {
  // The walk stops before page 10 until the test has seen pages 0-9 in the store,
  // stored by the lease keeper (what `vppd sync --wait` shows from another process).
  std::atomic<bool> release{false};
  on_page_ = [&](int p) {
    if (p != 10) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!release && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  options_.progress_interval = std::chrono::milliseconds(50);
  options_.lease = std::chrono::milliseconds(6'000);
  // Staged 2,500 rows at a time, page by page: at pages 2, 5 and 8, each call
  // but for its trailing app's rows, which open the next one (the fake's apps
  // take turns row by row: one row): 2,999, then 3,000 twice; page 9's rows
  // and the carried one wait for more.
  options_.stage_rows = 2'500;
  constexpr std::int64_t kStagedOfTenPages = 8'999;
  Engine engine(*store_, options_);
  Queue();
  engine.Start();
  store::SyncJob seen;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    auto jobs = store_->FindJobs(kTenant, token_id_);
    ASSERT_TRUE(jobs) << jobs.error().message;
    if (!jobs->empty()) seen = jobs->front();
    if (seen.pages_walked == 10 && seen.assignments_staged == kStagedOfTenPages) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  release = true;
  EXPECT_EQ(seen.kind, "syncLicenses");
  EXPECT_FALSE(seen.lease_owner.empty());
  EXPECT_EQ(seen.pages_walked, 10);
  EXPECT_EQ(seen.pages_total, 25);
  EXPECT_EQ(seen.assignments_staged, kStagedOfTenPages);
  // Then it finishes: the job row is gone and the token has the whole walk.
  const auto done_by = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < done_by && !store_->FindJobs(kTenant, token_id_)->empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  engine.Stop();
  EXPECT_TRUE(store_->FindJobs(kTenant, token_id_)->empty());
  EXPECT_EQ(store_->GetToken(kTenant, token_id_)->last_sync_status, "completed");
  EXPECT_EQ(Assignments(), 25'000);
}

}  // namespace
}  // namespace vppd::sync
