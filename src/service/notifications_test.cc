// Apple's notifications: the parser, the bearer check, and the receiver and the
// applier on a real store (SQLite, and PostgreSQL when VPPD_TEST_DATABASE_URL is set).
#include <filesystem>
#include <map>

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
  auto n =
      ParseNotification(Envelope("ASSET_COUNT", R"({"adamId":"408709785","countDelta":-3,"pricingParam":"PLUS"})"));
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
    const std::string t = type;
    const std::string body = t == "ASSET_COUNT"        ? R"({"adamId":"1","countDelta":1})"
                             : t == "ASSET_MANAGEMENT" ? R"({"eventId":"e","result":"SUCCESS","type":"ASSOCIATE"})"
                             : t == "USER_MANAGEMENT"  ? R"({"eventId":"e","result":"SUCCESS","type":"CREATE"})"
                             : t == "USER_ASSOCIATED"  ? R"({"associatedUsers":[]})"
                                                       : "{}";
    EXPECT_TRUE(ParseNotification(Envelope(type, body))) << type;
  }
}

TEST(ParseNotification, ReadsAnAssetManagementAsApplesDocsShowIt) {
  auto ok = ParseNotification(
      Envelope("ASSET_MANAGEMENT",
               R"({"assignments":[{"adamId":"361309726","pricingParam":"STDQ","serialNumber":"C02X1"},)"
               R"({"adamId":"361309726","pricingParam":"STDQ","serialNumber":"C02X2"}],)"
               R"("eventId":"bdf8a67c-4a3a-4bd0-a4d4-eb5b4bdc24e4","result":"SUCCESS","type":"ASSOCIATE"})"));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->event_id, "bdf8a67c-4a3a-4bd0-a4d4-eb5b4bdc24e4");
  EXPECT_EQ(ok->event_type, "ASSOCIATE");
  EXPECT_TRUE(ok->succeeded);
  EXPECT_EQ(ok->serial_numbers, (std::vector<std::string>{"C02X1", "C02X2"}));
  EXPECT_FALSE(ok->names_users);
  EXPECT_EQ(ok->error_number, 0);
  // A failure names its error (an ErrorResponse); assignments of users are told apart.
  auto failed = ParseNotification(
      Envelope("ASSET_MANAGEMENT",
               R"({"assignments":[{"adamId":"1","clientUserId":"u1"},{"adamId":"1","serialNumber":"S"}],)"
               R"("error":{"errorInfo":{"serialNumbers":["S"]},"errorMessage":"License not found","errorNumber":9610},)"
               R"("eventId":"e2","result":"FAILURE","type":"DISASSOCIATE"})"));
  ASSERT_TRUE(failed) << failed.error().message;
  EXPECT_FALSE(failed->succeeded);
  EXPECT_EQ(failed->serial_numbers, (std::vector<std::string>{"S"}));
  EXPECT_TRUE(failed->names_users);
  EXPECT_EQ(failed->client_user_ids, std::vector<std::string>{"u1"});
  EXPECT_EQ(failed->error_number, 9610);
  EXPECT_EQ(failed->error_message, "License not found");
}

TEST(ParseNotification, ReadsUserNotificationsAsApplesDocsShowThem) {
  auto managed = ParseNotification(Envelope(
      "USER_MANAGEMENT",
      R"({"error":{"errorMessage":"The Apple Account is already associated with another user.","errorNumber":9641},)"
      R"("eventId":"ev-1","result":"FAILURE","type":"CREATE","users":[{"clientUserId":"u-1"}]})"));
  ASSERT_TRUE(managed) << managed.error().message;
  EXPECT_EQ(managed->event_id, "ev-1");
  EXPECT_EQ(managed->event_type, "CREATE");
  EXPECT_FALSE(managed->succeeded);
  EXPECT_EQ(managed->error_number, 9641);
  ASSERT_EQ(managed->users.size(), 1u);
  EXPECT_EQ(managed->users[0].client_user_id, "u-1");
  auto associated = ParseNotification(Envelope("USER_ASSOCIATED",
                                               R"({"associatedUsers":[{"clientUserId":"u-2","email":"u2@example.org",)"
                                               R"("idHash":"h2","inviteCode":"c2","status":"Associated"}]})"));
  ASSERT_TRUE(associated) << associated.error().message;
  ASSERT_EQ(associated->users.size(), 1u);
  EXPECT_EQ(associated->users[0].client_user_id, "u-2");
  EXPECT_EQ(associated->users[0].email, "u2@example.org");
  EXPECT_EQ(associated->users[0].id_hash, "h2");
  EXPECT_EQ(associated->users[0].invite_code, "c2");
  EXPECT_EQ(associated->users[0].status, "Associated");
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
      {Envelope("TEST_NOTIFICATION", R"({"uId":20490e739})"), "a number out of range"},
      {R"({"notificationId":"a","notificationType":"TEST_NOTIFICATION","uId":-1e400,"notification":{}})",
       "a number out of range"},
      {R"({"notificationType":"TEST_NOTIFICATION","uId":"1","notification":{}})", "'notificationId' is missing"},
      {R"({"notificationId":7,"notificationType":"TEST_NOTIFICATION","uId":"1","notification":{}})",
       "'notificationId' must be a string"},
      {R"({"notificationId":"","notificationType":"TEST_NOTIFICATION","uId":"1","notification":{}})",
       "1 to 256 characters"},
      {R"({"notificationId":")" + std::string(300, 'a') +
           R"(","notificationType":"TEST_NOTIFICATION","uId":"1",)"
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
      {Envelope("ASSET_MANAGEMENT", R"({"result":"SUCCESS","type":"ASSOCIATE"})"), "'eventId' is missing"},
      {Envelope("ASSET_MANAGEMENT", R"({"eventId":"e","type":"ASSOCIATE"})"), "'result' must be SUCCESS or FAILURE"},
      {Envelope("ASSET_MANAGEMENT", R"({"eventId":"e","result":"DONE","type":"ASSOCIATE"})"),
       "'result' must be SUCCESS or FAILURE"},
      {Envelope("ASSET_MANAGEMENT", R"({"eventId":"e","result":"SUCCESS"})"), "'type' is missing"},
      {Envelope("ASSET_MANAGEMENT", R"({"eventId":"e","result":"SUCCESS","type":"ASSOCIATE","assignments":{}})"),
       "'assignments' must be an array"},
      {Envelope("ASSET_MANAGEMENT", R"({"eventId":"e","result":"SUCCESS","type":"ASSOCIATE","assignments":[1]})"),
       "an assignment must be an object"},
      {Envelope("ASSET_MANAGEMENT",
                R"({"eventId":"e","result":"SUCCESS","type":"ASSOCIATE","assignments":[{"serialNumber":7}]})"),
       "'serialNumber' must be a string"},
      {Envelope("ASSET_MANAGEMENT", R"({"eventId":"e","result":"FAILURE","type":"ASSOCIATE","error":"9610"})"),
       "'error' must be an object"},
      {Envelope("ASSET_MANAGEMENT",
                R"({"eventId":"e","result":"FAILURE","type":"ASSOCIATE","error":{"errorNumber":"9610"}})"),
       "'error.errorNumber' must be an integer"},
      {Envelope("USER_MANAGEMENT", R"({"result":"SUCCESS","type":"CREATE"})"), "USER_MANAGEMENT: 'eventId' is missing"},
      {Envelope("USER_MANAGEMENT", R"({"eventId":"e","result":"SUCCESS","type":"CREATE","users":{}})"),
       "'users' must be an array"},
      {Envelope("USER_MANAGEMENT", R"({"eventId":"e","result":"SUCCESS","type":"CREATE","users":[{"email":"a@b.c"}]})"),
       "'clientUserId' is missing"},
      {Envelope("USER_MANAGEMENT",
                R"({"eventId":"e","result":"SUCCESS","type":"CREATE","users":[{"clientUserId":"u","inviteCode":5}]})"),
       "USER_MANAGEMENT: 'inviteCode' must be a string"},
      {Envelope("USER_ASSOCIATED", "{}"), "USER_ASSOCIATED: 'associatedUsers' is missing"},
      {Envelope("USER_ASSOCIATED", R"({"associatedUsers":[7]})"), "a user must be an object"},
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
    options.on_job_queued = [this] { ++jobs_queued_; };
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
        Envelope("ASSET_COUNT", R"({"adamId":")" + adam + R"(","countDelta":)" + std::to_string(delta) + "}", id,
                 kUid));
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
  int jobs_queued_ = 0;

  // ASSET_MANAGEMENT of event `event`: `result` for `serials`.
  Result<Receipt> Managed(const std::string& id, const std::string& event, const std::vector<std::string>& serials,
                          bool success = true, int error = 9610, const std::string& type = "ASSOCIATE") {
    std::string assignments;
    for (const auto& serial : serials) {
      assignments += std::string(assignments.empty() ? "" : ",") +
                     R"({"adamId":"408709785","pricingParam":"STDQ","serialNumber":")" + serial + R"("})";
    }
    std::string body = R"({"assignments":[)" + assignments + "],";
    if (!success) {
      body += R"("error":{"errorMessage":"License not found","errorNumber":)" + std::to_string(error) + "},";
    }
    body += R"("eventId":")" + event + R"(","result":")" + (success ? "SUCCESS" : "FAILURE") + R"(","type":")" + type +
            R"("})";
    return receiver_->Receive(kKey, "Bearer the-bearer", Envelope("ASSET_MANAGEMENT", body, id, kUid));
  }
  // ASSET_MANAGEMENT of event `event` (of people's licences): `result` for `users`.
  Result<Receipt> ManagedUsers(const std::string& id, const std::string& event, const std::vector<std::string>& users,
                               bool success = true, int error = 9610, const std::string& type = "ASSOCIATE") {
    std::string assignments;
    for (const auto& user : users) {
      assignments += std::string(assignments.empty() ? "" : ",") +
                     R"({"adamId":"408709785","pricingParam":"STDQ","clientUserId":")" + user + R"("})";
    }
    std::string body = R"({"assignments":[)" + assignments + "],";
    if (!success) {
      body += R"("error":{"errorMessage":"License not found","errorNumber":)" + std::to_string(error) + "},";
    }
    body += R"("eventId":")" + event + R"(","result":")" + (success ? "SUCCESS" : "FAILURE") + R"(","type":")" + type +
            R"("})";
    return receiver_->Receive(kKey, "Bearer the-bearer", Envelope("ASSET_MANAGEMENT", body, id, kUid));
  }
  // An associate or disassociate of the app 408709785 vppd sent now, polled in 5 minutes.
  store::AppleEvent LicenceEvent(const std::string& event, const std::string& kind) {
    store::AppleEvent e;
    e.event_id = event;
    e.kind = kind;
    e.adam_id = "408709785";
    e.pricing_param = "STDQ";
    e.submitted = clock_.Now();
    e.next_poll = clock_.Now() + 300'000'000;
    return e;
  }
  void SubmitUsers(const std::string& event, const std::vector<std::string>& users,
                   const std::string& kind = "associate") {
    ASSERT_TRUE(store_->RecordUserLicenseEvent(kTenant, token_id_, LicenceEvent(event, kind), users, "assigned"));
  }
  std::map<std::string, store::UserLicense> UserLicences() {
    std::map<std::string, store::UserLicense> out;
    auto rows = store_->ListUserLicenses(kTenant, token_id_);
    EXPECT_TRUE(rows);
    for (auto& r : *rows) out[r.client_user_id] = r;
    return out;
  }
  void Submit(const std::string& event, const std::vector<std::string>& serials,
              const std::string& kind = "associate") {
    ASSERT_TRUE(store_->RecordAppleEvent(kTenant, token_id_, LicenceEvent(event, kind), serials, "assigned"));
  }
  std::map<std::string, store::DeviceLicense> Licences() {
    std::map<std::string, store::DeviceLicense> out;
    auto rows = store_->ListDeviceLicenses(kTenant, token_id_);
    EXPECT_TRUE(rows);
    for (auto& r : *rows) out[r.serial_number] = r;
    return out;
  }
  bool InFlight(const std::string& event) {
    auto events = store_->ListAppleEvents(kTenant, token_id_);
    EXPECT_TRUE(events);
    for (const auto& e : *events) {
      if (e.event_id == event) return true;
    }
    return false;
  }
  int ReconcileJobs() {
    auto jobs = store_->FindJobs(kTenant, token_id_);
    EXPECT_TRUE(jobs);
    int n = 0;
    for (const auto& j : *jobs) n += j.kind == "reconcile";
    return n;
  }
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
  ASSERT_TRUE(receiver_->Receive(kKey, "Bearer the-bearer",
                                 Envelope("USER_ASSOCIATED", R"({"associatedUsers":[]})", "u-1", kUid)));
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

// An event told in two notifications (Apple: at most 100 devices of one app
// each, one outcome each): each settles its serials, the last ends the event and
// the reconcile job goes on at once, without a /status poll.
TEST_P(NotificationsTest, AnAssetManagementSettlesItsSerialsAndTheLastPartEndsTheEvent) {
  Submit("ev", {"S1", "S2", "S3"});
  ASSERT_TRUE(Managed("m-1", "ev", {"S1", "S2"}));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  auto rows = Licences();
  EXPECT_EQ(rows["S1"].state, "granted");
  EXPECT_EQ(rows["S2"].state, "granted");
  EXPECT_EQ(rows["S3"].state, "pending");
  EXPECT_TRUE(InFlight("ev")) << "S3 is not told yet";
  EXPECT_EQ(ReconcileJobs(), 0);
  EXPECT_EQ(jobs_queued_, 0);

  ASSERT_TRUE(Managed("m-2", "ev", {"S3"}, /*success=*/false, 9610));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  rows = Licences();
  EXPECT_EQ(rows["S3"].state, "failed");
  EXPECT_EQ(rows["S3"].error_code, "9610");
  EXPECT_EQ(rows["S3"].error_message, "License not found");
  EXPECT_EQ(rows["S1"].state, "granted");
  EXPECT_FALSE(InFlight("ev"));
  EXPECT_EQ(ReconcileJobs(), 1) << "the job waiting on the event goes on now";
  EXPECT_EQ(jobs_queued_, 1);
  EXPECT_EQ(Pending(), 0);

  // The same news again under another id (Apple's duplicates keep their id and
  // are refused by the receiver; this is a second delivery of the same result):
  // the event is no longer in flight, so it changes nothing and queues nothing.
  ASSERT_TRUE(Managed("m-3", "ev", {"S3"}, /*success=*/true));
  EXPECT_EQ(*applier_->RunOnce(), 0) << "kept pending a while: the event may not be recorded yet";
  EXPECT_EQ(Pending(), 1);
  clock_.Advance(std::chrono::seconds(31));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  EXPECT_EQ(Pending(), 0);
  EXPECT_EQ(Licences()["S3"].state, "failed") << "completed once";
  EXPECT_EQ(jobs_queued_, 1);
}

// User licences (events of clientUserIds) are settled as devices' are: the people
// a notification names move, and the last part ends the event and queues the job.
TEST_P(NotificationsTest, AnAssetManagementSettlesThePeopleItNamesAndTheLastPartEndsTheEvent) {
  SubmitUsers("uev", {"u1", "u2", "u3"});
  ASSERT_TRUE(ManagedUsers("m-1", "uev", {"u1", "u2"}));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  auto rows = UserLicences();
  EXPECT_EQ(rows["u1"].state, "granted");
  EXPECT_EQ(rows["u2"].state, "granted");
  EXPECT_EQ(rows["u3"].state, "pending");
  EXPECT_TRUE(InFlight("uev")) << "u3 is not told yet";
  EXPECT_EQ(ReconcileJobs(), 0);

  ASSERT_TRUE(ManagedUsers("m-2", "uev", {"u3"}, /*success=*/false, 9610));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  rows = UserLicences();
  EXPECT_EQ(rows["u3"].state, "failed");
  EXPECT_EQ(rows["u3"].error_code, "9610");
  EXPECT_EQ(rows["u3"].error_message, "License not found");
  EXPECT_EQ(rows["u1"].state, "granted");
  EXPECT_FALSE(InFlight("uev"));
  EXPECT_EQ(ReconcileJobs(), 1) << "the job waiting on the event goes on now, not at its /status poll";
  EXPECT_EQ(jobs_queued_, 1);
  EXPECT_TRUE(Licences().empty()) << "no device licence row was touched";

  // A disassociate: released, or still held with its error; 9619 (not associated) is where it should be.
  SubmitUsers("ud", {"u1", "u2", "u4"}, "disassociate");
  ASSERT_TRUE(ManagedUsers("m-3", "ud", {"u1"}, true, 0, "DISASSOCIATE"));
  ASSERT_TRUE(ManagedUsers("m-4", "ud", {"u2"}, false, 9627, "DISASSOCIATE"));
  ASSERT_TRUE(ManagedUsers("m-5", "ud", {"u4"}, false, 9619, "DISASSOCIATE"));
  EXPECT_EQ(*applier_->RunOnce(), 3);
  rows = UserLicences();
  EXPECT_EQ(rows["u1"].state, "released");
  EXPECT_EQ(rows["u2"].state, "granted");
  EXPECT_EQ(rows["u2"].error_code, "9627");
  EXPECT_EQ(rows["u4"].state, "released");
  EXPECT_FALSE(InFlight("ud"));
  EXPECT_EQ(Pending(), 0);
}

// A failure naming nobody fails every person of the event; an associate Apple
// answers "already assigned" (9616) for is granted.
TEST_P(NotificationsTest, AFailureNamingNobodyFailsEveryPersonOfTheEvent) {
  SubmitUsers("all", {"u1", "u2"});
  ASSERT_TRUE(ManagedUsers("m-1", "all", {}, /*success=*/false, 9644));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  auto rows = UserLicences();
  EXPECT_EQ(rows["u1"].state, "failed");
  EXPECT_EQ(rows["u2"].error_code, "9644");
  EXPECT_FALSE(InFlight("all"));

  SubmitUsers("again", {"u1"});
  ASSERT_TRUE(ManagedUsers("m-2", "again", {"u1"}, /*success=*/false, 9616));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  EXPECT_EQ(UserLicences()["u1"].state, "granted");
  EXPECT_FALSE(InFlight("again"));
}

// Apple may tell before the job has recorded the event it accepted a moment ago.
TEST_P(NotificationsTest, AnEventRecordedAfterItsNotificationIsStillSettledByIt) {
  ASSERT_TRUE(Managed("m-1", "late", {"S1"}));
  EXPECT_EQ(*applier_->RunOnce(), 0);
  EXPECT_EQ(Pending(), 1);
  clock_.Advance(std::chrono::seconds(1));
  Submit("late", {"S1"});
  EXPECT_EQ(*applier_->RunOnce(), 1);
  EXPECT_EQ(Licences()["S1"].state, "granted");
  EXPECT_FALSE(InFlight("late"));
  EXPECT_EQ(jobs_queued_, 1);
}

TEST_P(NotificationsTest, AFailureNamingNoSerialFailsTheWholeEventAndADisassociateKeepsItsLicence) {
  Submit("all", {"S1", "S2"});
  ASSERT_TRUE(Managed("m-1", "all", {}, /*success=*/false, 9644));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  auto rows = Licences();
  EXPECT_EQ(rows["S1"].state, "failed");
  EXPECT_EQ(rows["S2"].error_code, "9644");
  EXPECT_FALSE(InFlight("all"));

  // A disassociate: released, or still held with its error; 9619 (not associated) is where it should be.
  Submit("d", {"S1", "S2", "S3"}, "disassociate");
  ASSERT_TRUE(Managed("m-2", "d", {"S1"}, true, 0, "DISASSOCIATE"));
  ASSERT_TRUE(Managed("m-3", "d", {"S2"}, false, 9627, "DISASSOCIATE"));
  ASSERT_TRUE(Managed("m-4", "d", {"S3"}, false, 9619, "DISASSOCIATE"));
  EXPECT_EQ(*applier_->RunOnce(), 3);
  rows = Licences();
  EXPECT_EQ(rows["S1"].state, "released");
  EXPECT_EQ(rows["S2"].state, "granted");
  EXPECT_EQ(rows["S2"].error_code, "9627");
  EXPECT_EQ(rows["S3"].state, "released");
  EXPECT_FALSE(InFlight("d"));
}

TEST_P(NotificationsTest, AnEventPolledFirstOrNotVppdsIsRecordedWithoutChangingAnything) {
  Submit("polled", {"S1"});
  store::AppleEventOutcome outcome;
  outcome.failures = {{"S1", "", 9610, "License not found"}};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenant, token_id_, "polled", outcome));  // the poll got there first
  ASSERT_TRUE(Managed("m-1", "polled", {"S1"}));
  ASSERT_TRUE(Managed("m-2", "revoke-1", {"S9"}, true, 0, "REVOKE"));  // a revoke: not the reconcile job's
  EXPECT_EQ(*applier_->RunOnce(), 1) << "the revoke is recorded at once";
  clock_.Advance(std::chrono::seconds(31));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  EXPECT_EQ(Pending(), 0);
  auto rows = Licences();
  EXPECT_EQ(rows["S1"].state, "failed");
  EXPECT_FALSE(rows.contains("S9"));
  EXPECT_EQ(jobs_queued_, 0);
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

// --- users (USER_ASSOCIATED, USER_MANAGEMENT) ------------------------------------------

store::AppleUser AppleUser(const std::string& id, const std::string& status) {
  store::AppleUser u;
  u.client_user_id = id;
  u.user_id = id;
  u.email = id + "@example.org";
  u.status = status;
  if (status == "Registered") {
    u.invite_code = "code-" + id;
    u.invite_url = "https://example/?inviteCode=code-" + id;
  }
  return u;
}

std::map<std::string, store::AppleUser> AppleUsers(store::Store& store, const std::string& token) {
  std::map<std::string, store::AppleUser> out;
  auto rows = store.ListAppleUsers(kTenant, token);
  EXPECT_TRUE(rows) << rows.error().message;
  if (rows) {
    for (auto& r : *rows) out[r.client_user_id] = r;
  }
  return out;
}

TEST_P(NotificationsTest, AUserAssociatedMakesVppdsUsersAssociatedAndQueuesTheReconcile) {
  ASSERT_TRUE(store_->PutAppleUsers(
      kTenant, token_id_,
      {AppleUser("ann", "Registered"), AppleUser("bob", "Registered"), AppleUser("cy", "retiring")}));
  ASSERT_TRUE(receiver_->Receive(
      kKey, "Bearer the-bearer",
      Envelope("USER_ASSOCIATED",
               R"({"associatedUsers":[{"clientUserId":"ann","email":"ann@example.org","idHash":"hash-ann",)"
               R"("inviteCode":"code-ann","status":"Associated"},{"clientUserId":"cy","idHash":"hash-cy"},)"
               R"({"clientUserId":"other-mdm","idHash":"hash-x"}]})",
               "ua-1", kUid)));
  EXPECT_EQ(ReconcileJobs(), 0) << "the receiver only records";
  EXPECT_EQ(*applier_->RunOnce(), 1);
  auto users = AppleUsers(*store_, token_id_);
  ASSERT_EQ(users.size(), 3u) << "another MDM's user is not vppd's to keep";
  EXPECT_EQ(users["ann"].status, "Associated");
  EXPECT_EQ(users["ann"].id_hash, "hash-ann");
  EXPECT_EQ(users["ann"].invite_code, "");
  EXPECT_EQ(users["ann"].invite_url, "");
  EXPECT_EQ(users["bob"].status, "Registered") << "not named";
  EXPECT_EQ(users["cy"].status, "retiring") << "a user being retired stays so";
  EXPECT_EQ(ReconcileJobs(), 1);
  EXPECT_EQ(jobs_queued_, 1);
  EXPECT_EQ(Pending(), 0);

  // Nothing of vppd's in it: recorded, no job.
  ASSERT_TRUE(receiver_->Receive(
      kKey, "Bearer the-bearer",
      Envelope("USER_ASSOCIATED", R"({"associatedUsers":[{"clientUserId":"other-mdm-2","idHash":"h"}]})", "ua-2",
               kUid)));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  EXPECT_EQ(jobs_queued_, 1);
}

TEST_P(NotificationsTest, AUserManagementSettlesTheUsersItNamesAndTheLastPartEndsTheEvent) {
  ASSERT_TRUE(store_->PutAppleUsers(kTenant, token_id_, {AppleUser("ann", "creating"), AppleUser("bob", "creating")}));
  store::AppleEvent e;
  e.event_id = "ue-1";
  e.kind = "createUsers";
  e.submitted = clock_.Now();
  e.next_poll = clock_.Now() + 300'000'000;
  ASSERT_TRUE(store_->RecordAppleEvent(kTenant, token_id_, e, {"ann", "bob"}, ""));

  ASSERT_TRUE(receiver_->Receive(
      kKey, "Bearer the-bearer",
      Envelope("USER_MANAGEMENT",
               R"({"eventId":"ue-1","result":"SUCCESS","type":"CREATE","users":[{"clientUserId":"ann",)"
               R"("email":"ann@example.org","inviteCode":"code-from-apple","status":"Registered"}]})",
               "um-1", kUid)));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  auto users = AppleUsers(*store_, token_id_);
  EXPECT_EQ(users["ann"].status, "Registered");
  EXPECT_EQ(users["ann"].invite_code, "code-from-apple") << "no /users walk needed for it";
  EXPECT_EQ(users["ann"].event_id, "");
  EXPECT_EQ(users["bob"].status, "creating");
  EXPECT_TRUE(InFlight("ue-1")) << "bob's part is still to come";
  EXPECT_EQ(ReconcileJobs(), 0);

  ASSERT_TRUE(receiver_->Receive(
      kKey, "Bearer the-bearer",
      Envelope("USER_MANAGEMENT",
               R"({"error":{"errorMessage":"The Apple Account is already associated with another user.",)"
               R"("errorNumber":9641},"eventId":"ue-1","result":"FAILURE","type":"CREATE",)"
               R"("users":[{"clientUserId":"bob"}]})",
               "um-2", kUid)));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  users = AppleUsers(*store_, token_id_);
  EXPECT_EQ(users["bob"].status, "failed");
  EXPECT_EQ(users["bob"].error_code, "9641");
  EXPECT_EQ(users["bob"].error_message, "The Apple Account is already associated with another user.");
  EXPECT_FALSE(InFlight("ue-1"));
  EXPECT_EQ(ReconcileJobs(), 1) << "the event ended: the reconcile goes on";
}

TEST_P(NotificationsTest, AUserManagementRetireEndsRetiredAndOneNotInFlightWaitsThenIsRecorded) {
  ASSERT_TRUE(store_->PutAppleUsers(kTenant, token_id_, {AppleUser("ann", "retiring")}));
  store::AppleEvent e;
  e.event_id = "ur-1";
  e.kind = "retireUsers";
  e.submitted = clock_.Now();
  e.next_poll = clock_.Now() + 300'000'000;
  ASSERT_TRUE(store_->RecordAppleEvent(kTenant, token_id_, e, {"ann"}, ""));
  ASSERT_TRUE(receiver_->Receive(
      kKey, "Bearer the-bearer",
      Envelope("USER_MANAGEMENT",
               R"({"eventId":"ur-1","result":"SUCCESS","type":"RETIRE","users":[{"clientUserId":"ann",)"
               R"("status":"Retired"}]})",
               "um-3", kUid)));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  EXPECT_EQ(AppleUsers(*store_, token_id_)["ann"].status, "Retired");
  EXPECT_FALSE(InFlight("ur-1"));

  // An event vppd has not recorded (yet): kept pending for the grace, then recorded.
  ASSERT_TRUE(receiver_->Receive(
      kKey, "Bearer the-bearer",
      Envelope("USER_MANAGEMENT",
               R"({"eventId":"ur-2","result":"SUCCESS","type":"RETIRE","users":[{"clientUserId":"ann"}]})", "um-4",
               kUid)));
  EXPECT_EQ(*applier_->RunOnce(), 0);
  EXPECT_EQ(Pending(), 1);
  clock_.Advance(std::chrono::seconds(31));
  EXPECT_EQ(*applier_->RunOnce(), 1);
  EXPECT_EQ(Pending(), 0);
  // users/update is not tracked: recorded.
  ASSERT_TRUE(receiver_->Receive(
      kKey, "Bearer the-bearer",
      Envelope("USER_MANAGEMENT", R"({"eventId":"uu-1","result":"SUCCESS","type":"UPDATE","users":[]})", "um-5",
               kUid)));
  EXPECT_EQ(*applier_->RunOnce(), 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, NotificationsTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

}  // namespace
}  // namespace vppd::service
