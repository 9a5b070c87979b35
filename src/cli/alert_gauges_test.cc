// CountAlerts on a real SQLite store: which tokens and apps it counts, and which not.
#include "cli/alert_gauges.h"

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "base/metrics.h"
#include "store/store.h"

namespace vppd::cli {
namespace {

constexpr char kTenant[] = "11111111-2222-4333-8444-555555555555";
constexpr char kOtherTenant[] = "99999999-8888-4777-8666-555555555555";
constexpr Timestamp kNow = 1'800'000'000LL * 1'000'000;
constexpr Timestamp kDay = 86'400LL * 1'000'000;

class AlertGaugesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (std::filesystem::temp_directory_path() / "vppd-alerts-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    store::SqliteOptions options;
    options.path = dir_ + "/vppd.db";
    options.secrets = std::make_shared<const SecretBox>(SecretBox::FromKey(std::string(32, 'k')));
    auto opened = store::Store::OpenSqlite(options);
    ASSERT_TRUE(opened.has_value()) << opened.error().message;
    store_ = std::move(*opened);
    for (const char* tenant : {kTenant, kOtherTenant}) {
      ASSERT_TRUE(store_->PutTenant({.id = tenant, .display_name = "t", .intune_licensed = true}).has_value());
    }
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A token expiring at `expiration` whose last sync had `status`.
  std::string Token(const std::string& tenant, Timestamp expiration, const std::string& status = "completed") {
    store::VppToken token;
    token.token = "stoken-" + std::to_string(++tokens_);
    token.expiration = expiration;
    token.state = "valid";
    token.last_sync_status = status;
    auto created = store_->CreateToken(tenant, token);
    EXPECT_TRUE(created.has_value()) << created.error().message;
    return created->id;
  }

  // Gives the token these apps, as a sync does.
  void Apps(const std::string& tenant, const std::string& token_id, std::vector<store::MobileApp> apps) {
    auto queued = store_->EnqueueJob(tenant, token_id, {}, [](store::VppToken&) -> Status { return {}; });
    ASSERT_TRUE(queued.has_value()) << queued.error().message;
    auto job = store_->ClaimJob("test", kNow, std::chrono::seconds(30));
    ASSERT_TRUE(job.has_value() && job->has_value());
    for (std::size_t i = 0; i < apps.size(); ++i) {
      apps[i].id = token_id + "-" + std::to_string(i);
      apps[i].token_id = token_id;
      if (apps[i].product_type.empty()) apps[i].product_type = "App";
      if (apps[i].pricing_param.empty()) apps[i].pricing_param = "STDQ";
      if (apps[i].platform.empty()) apps[i].platform = "iOS";
      apps[i].display_name = "App " + apps[i].adam_id;
    }
    store::SyncSnapshot snapshot{.apps = std::move(apps), .assignments = store::SyncSnapshot::Assignments::kKeep};
    auto done = store_->FinishJob(**job, snapshot, [](store::VppToken&) -> Status { return {}; });
    ASSERT_TRUE(done.has_value()) << done.error().message;
  }

  static store::MobileApp App(const std::string& adam_id, std::int64_t total, std::int64_t used,
                              const std::string& platform = "iOS") {
    store::MobileApp app;
    app.adam_id = adam_id;
    app.total_licenses = total;
    app.used_licenses = used;
    app.platform = platform;
    return app;
  }

  AlertCounts Count(AlertOptions options = {}) {
    auto counts = CountAlerts(*store_, kNow, options);
    EXPECT_TRUE(counts.has_value()) << counts.error().message;
    return counts.value_or(AlertCounts{});
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  int tokens_ = 0;
};

TEST_F(AlertGaugesTest, EmptyStoreCountsNothing) {
  AlertCounts c = Count();
  EXPECT_EQ(c.tokens_expiring_soon, 0);
  EXPECT_EQ(c.tokens_past_expiry, 0);
  EXPECT_EQ(c.tokens_last_sync_failed, 0);
  EXPECT_EQ(c.apps_over_usage_threshold, 0);
  EXPECT_EQ(c.apps_licenses_exhausted, 0);
}

// vppd_apps_* count apps: a book whose licences are all in use is not one.
TEST_F(AlertGaugesTest, BooksAreNotApps) {
  const std::string token = Token(kTenant, kNow + 365 * kDay);
  store::MobileApp book = App("9", 5, 5);
  book.product_type = "Book";
  Apps(kTenant, token, {App("1", 10, 10), book});
  AlertCounts c = Count();
  EXPECT_EQ(c.apps_licenses_exhausted, 1);
  EXPECT_EQ(c.apps_over_usage_threshold, 1);
}

TEST_F(AlertGaugesTest, TokensByExpiryAndLastSync) {
  Token(kTenant, kNow + 10 * kDay);              // soon
  Token(kOtherTenant, kNow + 30 * kDay);         // soon: the 30th day is within
  Token(kTenant, kNow + 30 * kDay + 1'000'000);  // not yet
  Token(kTenant, kNow + 365 * kDay, "failed");   // far off; its last sync failed
  Token(kTenant, kNow - kDay, "failed");         // past, failed
  Token(kOtherTenant, kNow);                     // past: expires this instant
  Token(kTenant, 0);                             // expiry unknown: neither
  AlertCounts c = Count();
  EXPECT_EQ(c.tokens_expiring_soon, 2);
  EXPECT_EQ(c.tokens_past_expiry, 2);
  EXPECT_EQ(c.tokens_last_sync_failed, 2);
  EXPECT_EQ(Count({.token_expiry_days = 400}).tokens_expiring_soon, 4);
}

TEST_F(AlertGaugesTest, AppsOverTheThresholdAndExhausted) {
  const std::string a = Token(kTenant, kNow + 365 * kDay);
  Apps(kTenant, a,
       {App("1", 100, 89),                 // under 90 %
        App("2", 100, 90),                 // at 90 %: over the threshold
        App("3", 10, 10),                  // exhausted (and over)
        App("4", 10, 12),                  // more used than bought (Apple allows it after a refund): exhausted
        App("5", 2147483647, 2147483647),  // unlimited: never
        App("6", 0, 0),                    // no licences: never
        App("7", 50, 49, "iOS"), App("7", 50, 49, "macOS")});  // one asset, two apps: once
  const std::string b = Token(kOtherTenant, kNow + 365 * kDay);
  Apps(kOtherTenant, b, {App("1", 5, 5)});  // Another tenant's same adamId: another asset.
  AlertCounts c = Count();
  EXPECT_EQ(c.apps_over_usage_threshold, 5);  // 2, 3, 4, 7, and the other tenant's 1
  EXPECT_EQ(c.apps_licenses_exhausted, 3);    // 3, 4, the other tenant's 1
  EXPECT_EQ(Count({.app_usage_percent = 100}).apps_over_usage_threshold, 3);
  EXPECT_EQ(Count({.app_usage_percent = 1}).apps_over_usage_threshold, 6);
}

TEST_F(AlertGaugesTest, GaugesShowTheCountsWithoutIds) {
  Token(kTenant, Clock::Real().Now() + 10 * kDay);  // The gauges count at the real time.
  RegisterAlertGauges(store_.get(), {.app_usage_percent = 85});
  const std::string text = metrics::Render();
  EXPECT_NE(text.find("# TYPE vppd_tokens_expiring_soon gauge\nvppd_tokens_expiring_soon 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("\nvppd_apps_usage_threshold_ratio 0.85\n"), std::string::npos) << text;
  for (const char* name : {"vppd_tokens_past_expiry 0\n", "vppd_tokens_last_sync_failed 0\n",
                           "vppd_apps_over_usage_threshold 0\n", "vppd_apps_licenses_exhausted 0\n"}) {
    EXPECT_NE(text.find(std::string("\n") + name), std::string::npos) << name;
  }
  EXPECT_EQ(text.find(kTenant), std::string::npos);  // Never a tenant (or any id) as a label.
}

}  // namespace
}  // namespace vppd::cli
