// Apple's notifications: the parser, the bearer check, and the receiver and the
// applier on a real store (SQLite, and PostgreSQL when VPPD_TEST_DATABASE_URL is set).
#include <filesystem>

#include <gtest/gtest.h>

#include "service/service.h"
#include "store/store_testing.h"

namespace vppd::service {
namespace {

std::string Envelope(const std::string& type, const std::string& notification, const std::string& id = "n-1",
                     const std::string& uid = "2049025000431439") {
  return R"({"notification":)" + notification + R"(,"notificationId":")" + id + R"(","notificationType":")" + type +
         R"(","uId":")" + uid + R"("})";
}

TEST(ParseNotification, ReadsAnAssetCount) {
  auto n = ParseNotification(Envelope("ASSET_COUNT", R"({"adamId":"408709785","countDelta":-3,"pricingParam":"PLUS"})"));
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(n->type, "ASSET_COUNT");
  EXPECT_EQ(n->notification_id, "n-1");
  EXPECT_EQ(n->uid, "2049025000431439");
  EXPECT_EQ(n->adam_id, "408709785");
  EXPECT_EQ(n->pricing_param, "PLUS");
  EXPECT_EQ(n->count_delta, -3);
  EXPECT_EQ(n->body, R"({"adamId":"408709785","countDelta":-3,"pricingParam":"PLUS"})");
  // adamId and uId as numbers, pricingParam left out: STDQ.
  auto m = ParseNotification(
      R"({"notification":{"adamId":408709785,"countDelta":5},"notificationId":"x","notificationType":"ASSET_COUNT","uId":42})");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->adam_id, "408709785");
  EXPECT_EQ(m->uid, "42");
  EXPECT_EQ(m->pricing_param, "STDQ");
}

TEST(ParseNotification, ReadsEveryTypeVppdHandles) {
  for (const char* type : kNotificationTypes) {
    const std::string body = std::string(type) == "ASSET_COUNT" ? R"({"adamId":"1","countDelta":1})" : "{}";
    EXPECT_TRUE(ParseNotification(Envelope(type, body))) << type;
  }
}

TEST(ParseNotification, RefusesBadInputSayingWhat) {
  struct Case {
    std::string body;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"", "not valid JSON"},
      {"{", "not valid JSON"},
      {"\xff\xfe", "not valid JSON"},
      {"[]", "must be a JSON object"},
      {R"({"notificationType":"TEST_NOTIFICATION","uId":"1","notification":{}})", "'notificationId' is missing"},
      {R"({"notificationId":7,"notificationType":"TEST_NOTIFICATION","uId":"1","notification":{}})",
       "'notificationId' must be a string"},
      {R"({"notificationId":"","notificationType":"TEST_NOTIFICATION","uId":"1","notification":{}})",
       "1 to 256 characters"},
      {R"({"notificationId":")" + std::string(300, 'a') + R"(","notificationType":"TEST_NOTIFICATION","uId":"1",)"
       R"("notification":{}})",
       "1 to 256 characters"},
      {Envelope("SUBSCRIPTION_COUNT", "{}"), "'SUBSCRIPTION_COUNT' is not one vppd handles"},
      {Envelope("NO_SUCH_TYPE", "{}"), "is not one vppd handles"},
      {R"({"notificationId":"a","notificationType":"TEST_NOTIFICATION","notification":{}})", "'uId' is missing"},
      {R"({"notificationId":"a","notificationType":"TEST_NOTIFICATION","uId":"1"})", "'notification' is missing"},
      {Envelope("TEST_NOTIFICATION", "[]"), "'notification' must be an object"},
      {Envelope("ASSET_COUNT", R"({"countDelta":1})"), "'adamId' is missing"},
      {Envelope("ASSET_COUNT", R"({"adamId":"1"})"), "'countDelta' is missing"},
      {Envelope("ASSET_COUNT", R"({"adamId":"1","countDelta":"5"})"), "'countDelta' must be an integer"},
      {Envelope("ASSET_COUNT", R"({"adamId":"1","countDelta":1.5})"), "'countDelta' must be an integer"},
      {Envelope("ASSET_COUNT", R"({"adamId":"1","countDelta":2147483648})"), "out of range"},
      {Envelope("ASSET_COUNT", R"({"adamId":"1","countDelta":18446744073709551615})"), "out of range"},
      {Envelope("ASSET_COUNT", R"({"adamId":"1","countDelta":1,"pricingParam":"X"})"), "STDQ or PLUS"},
      {Envelope("TEST_NOTIFICATION", std::string(40, '[') + std::string(40, ']')), "not valid JSON"},
  };
  for (const auto& c : cases) {
    auto n = ParseNotification(c.body);
    ASSERT_FALSE(n) << c.body;
    EXPECT_EQ(n.error().code, Code::kInvalidArgument) << c.body;
    EXPECT_NE(n.error().message.find(c.says), std::string::npos) << c.body << " → " << n.error().message;
  }
}

TEST(BearerMatches, TheCurrentTokenOrThePreviousWithinItsGrace) {
  store::NotificationEndpoint e;
  e.auth_hash = Sha256Hex("current-secret");
  e.previous_auth_hash = Sha256Hex("old-secret");
  e.previous_valid_until = 1000;
  EXPECT_TRUE(BearerMatches("Bearer current-secret", e, 0));
  EXPECT_TRUE(BearerMatches("bearer current-secret", e, 0));  // the scheme is case-insensitive
  EXPECT_TRUE(BearerMatches("Bearer old-secret", e, 999));
  EXPECT_FALSE(BearerMatches("Bearer old-secret", e, 1000));  // its grace is over
  EXPECT_FALSE(BearerMatches("Bearer current-secre", e, 0));
  EXPECT_FALSE(BearerMatches("Bearer not-current-secret", e, 0));
  EXPECT_FALSE(BearerMatches("current-secret", e, 0));
  EXPECT_FALSE(BearerMatches("Basic current-secret", e, 0));
  EXPECT_FALSE(BearerMatches("Bearer ", e, 0));
  EXPECT_FALSE(BearerMatches("", e, 0));
  EXPECT_FALSE(BearerMatches("Bearer " + Sha256Hex("current-secret"), e, 0));  // the hash is not the token
  store::NotificationEndpoint none;  // no hashes at all: nothing matches, not even an empty hash
  EXPECT_FALSE(BearerMatches("Bearer x", none, 0));
}

// ---------------------------------------------------------------------------
// The receiver and the applier on a store.

using testing::Backend;

constexpr char kTenant[] = "7d3e5f1a-9c2b-4e8d-a6f0-3b1c5d7e9f20";
constexpr char kUid[] = "2049025000431439";
constexpr char kKey[] = "0123456789abcdef0123456789abcdef";

class NotificationsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    VPPD_SKIP_WITHOUT_POSTGRES(GetParam());
    dir_ = std::filesystem::temp_directory_path() / ("vppd-notify-test-" + NewGuid());
    std::filesystem::create_directories(dir_);
    db_ = std::make_unique<testing::TestDb>(GetParam(), dir_.string());
    store::SqliteOptions so;
    so.path = db_->path();
    so.secrets = std::make_shared<const SecretBox>(SecretBox::FromKey(std::string(32, 'k')));
    so.clock = &clock_;
    auto opened = db_->Open(so);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
    ASSERT_TRUE(store_->PutTenant({kTenant, "T", true, 0}));
    store::VppToken t;
    t.token = "c3Rva2Vu";
    t.expiration = clock_.Now() + 365LL * 86'400'000'000;
    t.state = "valid";
    auto token = store_->CreateToken(kTenant, t);
    ASSERT_TRUE(token) << token.error().message;
    token_id_ = token->id;
    // One app of 10 licences, 4 used, on iOS and macOS, put there by a finished sync.
    auto queued = store_->EnqueueJob(kTenant, token_id_, {}, [](store::VppToken&) -> Status { return {}; });
    ASSERT_TRUE(queued);
    auto job = store_->ClaimJob("w", clock_.Now(), std::chrono::seconds(30));
    ASSERT_TRUE(job && *job);
    store::SyncSnapshot snapshot;
    for (const char* platform : {"iOS", "macOS"}) {
      store::MobileApp app;
      app.id = NewGuid();
      app.token_id = token_id_;
      app.platform = platform;
      app.adam_id = "408709785";
      app.pricing_param = "STDQ";
      app.product_type = "App";
      app.display_name = "App";
      app.total_licenses = 10;
      app.used_licenses = 4;
      snapshot.apps.push_back(app);
    }
    auto done = store_->FinishJob(**job, snapshot, [&](store::VppToken& v) -> Status {
      v.last_sync = clock_.Now();
      return {};
    });
    ASSERT_TRUE(done) << done.error().message;
    clock_.Advance(std::chrono::seconds(1));
    store::NotificationEndpoint e;
    e.tenant_id = kTenant;
    e.token_id = token_id_;
    e.location_key = kKey;
    e.apple_uid = kUid;
    e.auth_hash = Sha256Hex("the-bearer");
    e.registration = "r";
    auto rotated = store_->RotateNotificationEndpoint(e);
    ASSERT_TRUE(rotated) << rotated.error().message;
    NotificationOptions options;
    options.clock = &clock_;
    options.on_recorded = [this] { ++recorded_; };
    receiver_ = std::make_unique<NotificationReceiver>(*store_, options);
    applier_ = std::make_unique<NotificationApplier>(*store_, options);
  }
  void TearDown() override {
    applier_.reset();
    receiver_.reset();
    store_.reset();
    db_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::int64_t Total() {
    auto apps = store_->ListApps(kTenant, {});
    EXPECT_TRUE(apps);
    std::int64_t total = -1;
    for (const auto& a : apps->items) {
      if (total != -1) {
        EXPECT_EQ(a.total_licenses, total);  // both platforms move together
      }
      total = a.total_licenses;
    }
    return total;
  }
  Result<Receipt> Count(const std::string& id, int delta, const std::string& adam = "408709785",
                        const std::string& bearer = "Bearer the-bearer") {
    return receiver_->Receive(
        kKey, bearer,
        Envelope("ASSET_COUNT", R"({"adamId":")" + adam + R"(","countDelta":)" + std::to_string(delta) + "}", id, kUid));
  }
  int Pending() {
    auto p = store_->PendingNotifications(1000);
    EXPECT_TRUE(p);
    return static_cast<int>(p->size());
  }

  FakeClock clock_{1'800'000'000'000'000};
  std::filesystem::path dir_;
  std::unique_ptr<testing::TestDb> db_;
  std::unique_ptr<store::Store> store_;
  std::string token_id_;
  std::unique_ptr<NotificationReceiver> receiver_;
  std::unique_ptr<NotificationApplier> applier_;
  int recorded_ = 0;
};

TEST_P(NotificationsTest, AnAssetCountMovesTheTotalOnceAfterTheAnswer) {
  auto r = Count("p-1", 5);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, Receipt::kRecorded);
  EXPECT_EQ(recorded_, 1);
  EXPECT_EQ(Total(), 10);  // recorded, not applied: the applier does that
  auto ran = applier_->RunOnce();
  ASSERT_TRUE(ran) << ran.error().message;
  EXPECT_EQ(*ran, 1);
  EXPECT_EQ(Total(), 15);
  // Apple's retry of the same notification: answered 2xx, applied never again.
  auto again = Count("p-1", 5);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, Receipt::kDuplicate);
  EXPECT_EQ(recorded_, 1);
  EXPECT_EQ(*applier_->RunOnce(), 0);
  EXPECT_EQ(Total(), 15);
  // A refund.
  ASSERT_TRUE(Count("r-1", -3));
  ASSERT_TRUE(applier_->RunOnce());
  EXPECT_EQ(Total(), 12);
}

TEST_P(NotificationsTest, RefusalsChangeNothing) {
  auto wrong = Count("w-1", 5, "408709785", "Bearer not-the-bearer");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, Code::kUnauthenticated);
  auto missing = Count("w-2", 5, "408709785", "");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kUnauthenticated);
  auto unknown_key = receiver_->Receive("ffffffffffffffffffffffffffffffff", "Bearer the-bearer",
                                        Envelope("TEST_NOTIFICATION", "{}", "t-1", kUid));
  ASSERT_FALSE(unknown_key);
  EXPECT_EQ(unknown_key.error().code, Code::kUnauthenticated);
  EXPECT_EQ(unknown_key.error().message, wrong.error().message);  // an unknown key reads like a wrong bearer
  auto other_location =
      receiver_->Receive(kKey, "Bearer the-bearer", Envelope("TEST_NOTIFICATION", "{}", "t-2", "9999999999"));
  ASSERT_FALSE(other_location);
  EXPECT_EQ(other_location.error().code, Code::kPermissionDenied);
  auto garbage = receiver_->Receive(kKey, "Bearer the-bearer", "{not json");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().code, Code::kInvalidArgument);
  auto big = receiver_->Receive(kKey, "Bearer the-bearer", std::string(kMaxNotificationBytes + 1, ' '));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, Code::kPayloadTooLarge);
  EXPECT_EQ(Pending(), 0);
  EXPECT_EQ(recorded_, 0);
  EXPECT_EQ(Total(), 10);
  // A refused id was not recorded: the same id with the right bearer is new.
  auto right = Count("w-1", 1);
  ASSERT_TRUE(right);
  EXPECT_EQ(*right, Receipt::kRecorded);
}

TEST_P(NotificationsTest, AnInconsistentCountQueuesASyncInsteadOfMovingIt) {
  ASSERT_TRUE(Count("i-1", -7));              // 10 - 7 = 3 < 4 used
  ASSERT_TRUE(Count("i-2", 5, "999999999"));  // no such asset
  ASSERT_TRUE(applier_->RunOnce());
  EXPECT_EQ(Total(), 10);
  EXPECT_EQ(Pending(), 0);
  auto jobs = store_->FindJobs(kTenant, token_id_);
  ASSERT_TRUE(jobs);
  ASSERT_EQ(jobs->size(), 1u);  // coalesced: one sync for both
  EXPECT_EQ((*jobs)[0].kind, "syncLicenses");
}

TEST_P(NotificationsTest, ACountWaitsForARunningSyncAndIsCoveredByIt) {
  ASSERT_TRUE(Count("d-1", 5));
  auto queued = store_->EnqueueJob(kTenant, token_id_, {}, [](store::VppToken&) -> Status { return {}; });
  ASSERT_TRUE(queued);
  auto job = store_->ClaimJob("w", clock_.Now(), std::chrono::seconds(30));
  ASSERT_TRUE(job && *job);
  EXPECT_EQ(*applier_->RunOnce(), 0);  // deferred while the sync runs
  EXPECT_EQ(Pending(), 1);
  EXPECT_EQ(Total(), 10);
  clock_.Advance(std::chrono::seconds(1));
  // The sync ends after the notification arrived: its counts (Apple's, 15) hold the purchase.
  store::SyncSnapshot snapshot;
  auto apps = store_->ListApps(kTenant, {});
  ASSERT_TRUE(apps);
  snapshot.apps = apps->items;
  for (auto& a : snapshot.apps) a.total_licenses = 15;
  ASSERT_TRUE(store_->FinishJob(**job, snapshot, [&](store::VppToken& v) -> Status {
    v.last_sync = clock_.Now();
    return {};
  }));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  EXPECT_EQ(Total(), 15);  // not 20
}

TEST_P(NotificationsTest, OtherTypesAreRecordedAndKeptUntilTheRetention) {
  ASSERT_TRUE(receiver_->Receive(kKey, "Bearer the-bearer", Envelope("TEST_NOTIFICATION", "{}", "t-1", kUid)));
  ASSERT_TRUE(receiver_->Receive(
      kKey, "Bearer the-bearer",
      Envelope("ASSET_MANAGEMENT", R"({"assignments":[],"eventId":"e","result":"SUCCESS","type":"ASSOCIATE"})", "m-1",
               kUid)));
  ASSERT_TRUE(receiver_->Receive(kKey, "Bearer the-bearer", Envelope("USER_ASSOCIATED", "{}", "u-1", kUid)));
  EXPECT_EQ(*applier_->RunOnce(), 3);
  EXPECT_EQ(Pending(), 0);
  EXPECT_EQ(Total(), 10);
  // Within the retention a retry is still a duplicate...
  clock_.Advance(std::chrono::hours(24 * 7 - 1));
  auto dup = receiver_->Receive(kKey, "Bearer the-bearer", Envelope("TEST_NOTIFICATION", "{}", "t-1", kUid));
  ASSERT_TRUE(dup);
  EXPECT_EQ(*dup, Receipt::kDuplicate);
  // ...after it the rows are gone.
  clock_.Advance(std::chrono::hours(2));
  auto gone = store_->DeleteNotificationsBefore(clock_.Now() - 7LL * 24 * 3600 * 1'000'000);
  ASSERT_TRUE(gone);
  EXPECT_EQ(*gone, 3);
}

TEST_P(NotificationsTest, ARotationKeepsTheKeyAndHonoursTheOldBearerForItsGrace) {
  store::NotificationEndpoint next;
  next.tenant_id = kTenant;
  next.token_id = token_id_;
  next.location_key = "another-key-that-is-not-used";
  next.apple_uid = kUid;
  next.auth_hash = Sha256Hex("the-new-bearer");
  next.previous_valid_until = clock_.Now() + 600'000'000;
  next.registration = "r2";
  auto rotated = store_->RotateNotificationEndpoint(next);
  ASSERT_TRUE(rotated) << rotated.error().message;
  EXPECT_EQ(rotated->location_key, kKey);
  EXPECT_EQ(rotated->previous_auth_hash, Sha256Hex("the-bearer"));
  ASSERT_TRUE(Count("o-1", 1, "408709785", "Bearer the-bearer"));
  ASSERT_TRUE(Count("o-2", 1, "408709785", "Bearer the-new-bearer"));
  clock_.Advance(std::chrono::minutes(11));
  auto late = Count("o-3", 1, "408709785", "Bearer the-bearer");
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, Code::kUnauthenticated);
  // Tokens whose registration is another's are due for registering again.
  auto due = store_->TokensToRegister("r2", 10);
  ASSERT_TRUE(due);
  EXPECT_TRUE(due->empty());
  due = store_->TokensToRegister("r3", 10);
  ASSERT_TRUE(due);
  EXPECT_EQ(due->size(), 1u);
  // Deleting the token takes its endpoint and notifications with it.
  ASSERT_TRUE(store_->DeleteToken(kTenant, token_id_));
  auto after = store_->FindNotificationEndpoint(kKey);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, Code::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Backends, NotificationsTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

}  // namespace
}  // namespace vppd::service
