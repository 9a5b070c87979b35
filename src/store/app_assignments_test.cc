// App assignments (mobileAppAssignment) in the store, on SQLite and PostgreSQL:
// create, read, update, delete, the assign action's replacement, the reads the
// reconcile job and Graph's lists make, tenant isolation, every failure writing
// nothing, and an assignment's life with its app across syncs.
#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "base/testing.h"
#include "store/store.h"
#include "store/store_testing.h"

namespace vppd::store {
namespace {

using namespace std::chrono_literals;
using testing::Backend;

constexpr const char* kGroup = "33333333-3333-3333-3333-333333333333";
constexpr const char* kGroupType = "#microsoft.graph.groupAssignmentTarget";
constexpr const char* kAllDevices = "#microsoft.graph.allDevicesAssignmentTarget";

MobileApp App(const std::string& token_id, const std::string& adam, std::int64_t used = 0) {
  MobileApp a;
  a.id = "app-" + token_id.substr(0, 8) + "-" + adam;
  a.token_id = token_id;
  a.platform = "iOS";
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
  return a;
}

AppAssignment ToGroup(const std::string& app_id, const std::string& intent = "required", bool device = true) {
  AppAssignment a;
  a.app_id = app_id;
  a.intent = intent;
  a.target_type = kGroupType;
  a.group_id = kGroup;
  a.settings_json = fmt::format(R"({{"@odata.type":"#microsoft.graph.iosVppAppAssignmentSettings",)"
                                R"("useDeviceLicensing":{}}})",
                                device ? "true" : "false");
  a.use_device_licensing = device;
  return a;
}

AppAssignment ToAllDevices(const std::string& app_id) {
  AppAssignment a;
  a.app_id = app_id;
  a.intent = "available";
  a.target_type = kAllDevices;
  return a;
}

class AppAssignmentsStoreTest : public testing::StoreTest {
 protected:
  AppAssignmentsStoreTest() : StoreTest("vppd-app-assignments") {}

  void SetUp() override {
    StoreTest::SetUp();
    if (SetUpStopped()) return;
    token_ = Token(kTenantA, "loc-1");
    ASSERT_TRUE(Sync(kTenantA, token_, {App(token_, "1"), App(token_, "2")}));
    app1_ = App(token_, "1").id;
    app2_ = App(token_, "2").id;
  }

  // A sync of `token` that finds `apps` (assignments at Apple untouched).
  bool Sync(const std::string& tenant, const std::string& token_id, std::vector<MobileApp> apps) {
    EnqueueOptions o;
    Result<Store::Enqueued> e = store_->EnqueueJob(tenant, token_id, o, [](VppToken&) -> Status { return {}; });
    EXPECT_TRUE(e) << e.error().message;
    Result<std::optional<SyncJob>> job = store_->ClaimJob("w", clock_.Now(), 60s);
    EXPECT_TRUE(job && *job);
    if (!job || !*job) return false;
    SyncSnapshot snap;
    snap.apps = std::move(apps);
    Result<VppToken> done = store_->FinishJob(**job, snap, [](VppToken&) -> Status { return {}; });
    EXPECT_TRUE(done) << done.error().message;
    return done.has_value();
  }

  std::vector<AppAssignment> Of(const std::string& app_id, const std::string& tenant = kTenantA) {
    Result<std::vector<AppAssignment>> list = store_->ListAssignmentsOfApp(tenant, app_id);
    EXPECT_TRUE(list) << list.error().message;
    return list ? *list : std::vector<AppAssignment>{};
  }

  AppAssignment Create(AppAssignment a, const std::string& tenant = kTenantA) {
    Result<AppAssignment> created = store_->CreateAppAssignment(tenant, std::move(a));
    EXPECT_TRUE(created) << created.error().message;
    return created ? *created : AppAssignment{};
  }

  std::int64_t Rows() { return db_->raw().Int("SELECT count(*) FROM app_assignments"); }

  std::string token_, app1_, app2_;
};
INSTANTIATE_TEST_SUITE_P(Store, AppAssignmentsStoreTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

TEST_P(AppAssignmentsStoreTest, CreateGetListUpdateDelete) {
  AppAssignment made = Create(ToGroup(app1_));
  EXPECT_TRUE(IsGuid(made.id)) << made.id;
  EXPECT_EQ(made.created, kT0);
  EXPECT_EQ(made.last_modified, kT0);

  Result<AppAssignment> got = store_->GetAppAssignment(kTenantA, app1_, made.id);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, made);
  EXPECT_EQ(got->group_id, std::optional<std::string>(kGroup));
  EXPECT_TRUE(got->use_device_licensing);
  EXPECT_EQ(got->settings_json, ToGroup(app1_).settings_json);

  AppAssignment all = Create(ToAllDevices(app1_));
  EXPECT_EQ(all.group_id, std::nullopt);
  EXPECT_EQ(all.settings_json, "{}");
  std::vector<AppAssignment> listed = Of(app1_);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_LT(listed[0].id, listed[1].id);  // ordered by id
  EXPECT_TRUE(Of(app2_).empty());

  clock_.Set(kT0 + kSecond);
  Result<AppAssignment> updated = store_->UpdateAppAssignment(kTenantA, app1_, made.id, [](AppAssignment& a) -> Status {
    a.intent = "uninstall";
    a.id = "ignored";
    a.app_id = "ignored";
    a.created = 1;
    a.use_device_licensing = false;
    a.settings_json = R"({"@odata.type":"#microsoft.graph.iosVppAppAssignmentSettings"})";
    return {};
  });
  ASSERT_TRUE(updated) << updated.error().message;
  EXPECT_EQ(updated->id, made.id);
  EXPECT_EQ(updated->app_id, app1_);
  EXPECT_EQ(updated->created, kT0);
  EXPECT_EQ(updated->last_modified, kT0 + kSecond);
  EXPECT_EQ(updated->intent, "uninstall");
  EXPECT_EQ(*store_->GetAppAssignment(kTenantA, app1_, made.id), *updated);

  ASSERT_TRUE(store_->DeleteAppAssignment(kTenantA, app1_, made.id));
  EXPECT_EQ(store_->GetAppAssignment(kTenantA, app1_, made.id).error().code, Code::kNotFound);
  EXPECT_EQ(store_->DeleteAppAssignment(kTenantA, app1_, made.id).error().code, Code::kNotFound);
  EXPECT_EQ(Of(app1_), std::vector<AppAssignment>{all});
}

TEST_P(AppAssignmentsStoreTest, FailuresWriteNothing) {
  AppAssignment made = Create(ToGroup(app1_));
  ASSERT_EQ(Rows(), 1);

  Result<AppAssignment> unknown_app = store_->CreateAppAssignment(kTenantA, ToGroup("no-such-app"));
  ASSERT_FALSE(unknown_app);
  EXPECT_EQ(unknown_app.error().code, Code::kNotFound);
  EXPECT_NE(unknown_app.error().message.find("no-such-app"), std::string::npos) << unknown_app.error().message;

  AppAssignment again = ToGroup(app2_);
  again.id = made.id;  // ids are unique in the tenant, not only in the app
  EXPECT_EQ(store_->CreateAppAssignment(kTenantA, again).error().code, Code::kAlreadyExists);

  AppAssignment no_intent = ToGroup(app1_);
  no_intent.intent.clear();
  EXPECT_EQ(store_->CreateAppAssignment(kTenantA, no_intent).error().code, Code::kInvalidArgument);
  AppAssignment no_target = ToGroup(app1_);
  no_target.target_type.clear();
  EXPECT_EQ(store_->CreateAppAssignment(kTenantA, no_target).error().code, Code::kInvalidArgument);

  // mutate's error is returned, and a mutation that empties the intent is refused.
  EXPECT_EQ(store_
                ->UpdateAppAssignment(kTenantA, app1_, made.id,
                                      [](AppAssignment& a) -> Status {
                                        a.intent = "available";
                                        return Fail(Error::InvalidArgument("no"));
                                      })
                .error()
                .message,
            "no");
  EXPECT_EQ(store_
                ->UpdateAppAssignment(kTenantA, app1_, made.id,
                                      [](AppAssignment& a) -> Status {
                                        a.intent.clear();
                                        return {};
                                      })
                .error()
                .code,
            Code::kInvalidArgument);
  // An assignment of another app is not found through this one.
  EXPECT_EQ(store_->GetAppAssignment(kTenantA, app2_, made.id).error().code, Code::kNotFound);
  EXPECT_EQ(
      store_->UpdateAppAssignment(kTenantA, app2_, made.id, [](AppAssignment&) -> Status { return {}; }).error().code,
      Code::kNotFound);
  EXPECT_EQ(store_->DeleteAppAssignment(kTenantA, app2_, made.id).error().code, Code::kNotFound);
  EXPECT_EQ(store_->ListAssignmentsOfApp(kTenantA, "no-such-app").error().code, Code::kNotFound);
  EXPECT_EQ(store_->IsAppAssigned(kTenantA, "no-such-app").error().code, Code::kNotFound);

  EXPECT_EQ(Rows(), 1);
  EXPECT_EQ(Of(app1_), std::vector<AppAssignment>{made});
}

TEST_P(AppAssignmentsStoreTest, TenantsAreIsolated) {
  AppAssignment made = Create(ToGroup(app1_));
  // Tenant B knows neither the app nor the assignment.
  EXPECT_EQ(store_->CreateAppAssignment(kTenantB, ToGroup(app1_)).error().code, Code::kNotFound);
  EXPECT_EQ(store_->GetAppAssignment(kTenantB, app1_, made.id).error().code, Code::kNotFound);
  EXPECT_EQ(store_->ListAssignmentsOfApp(kTenantB, app1_).error().code, Code::kNotFound);
  EXPECT_EQ(store_->DeleteAppAssignment(kTenantB, app1_, made.id).error().code, Code::kNotFound);
  EXPECT_EQ(store_->ReplaceAppAssignments(kTenantB, app1_, {}).error().code, Code::kNotFound);
  EXPECT_TRUE(store_->ListAssignmentsOfApps(kTenantB, {app1_})->empty());
  EXPECT_TRUE(store_->ListAssignmentsOfToken(kTenantB, token_)->empty());
  EXPECT_EQ(Of(app1_).size(), 1u);
}

TEST_P(AppAssignmentsStoreTest, ReplaceMakesTheGivenSetTheAppsWholeSet) {
  AppAssignment old = Create(ToGroup(app1_));
  AppAssignment other_app = Create(ToGroup(app2_));
  clock_.Set(kT0 + kSecond);
  Result<std::vector<AppAssignment>> replaced =
      store_->ReplaceAppAssignments(kTenantA, app1_, {ToAllDevices("ignored"), ToGroup("ignored", "available")});
  ASSERT_TRUE(replaced) << replaced.error().message;
  ASSERT_EQ(replaced->size(), 2u);
  for (const AppAssignment& a : *replaced) {
    EXPECT_EQ(a.app_id, app1_);
    EXPECT_TRUE(IsGuid(a.id));
    EXPECT_NE(a.id, old.id);
    EXPECT_EQ(a.created, kT0 + kSecond);
  }
  EXPECT_EQ(Of(app1_), *replaced);
  EXPECT_EQ(Of(app2_), std::vector<AppAssignment>{other_app});

  // An empty set removes them all.
  ASSERT_TRUE(store_->ReplaceAppAssignments(kTenantA, app1_, {}));
  EXPECT_TRUE(Of(app1_).empty());
  EXPECT_FALSE(*store_->IsAppAssigned(kTenantA, app1_));
  EXPECT_TRUE(*store_->IsAppAssigned(kTenantA, app2_));
}

TEST_P(AppAssignmentsStoreTest, AFailedReplaceLeavesTheOldSet) {
  AppAssignment old = Create(ToGroup(app1_));
  AppAssignment other_app = Create(ToGroup(app2_));
  // An id of another app's assignment: the deletes and inserts before it are undone.
  AppAssignment taken = ToGroup(app1_);
  taken.id = other_app.id;
  Result<std::vector<AppAssignment>> r = store_->ReplaceAppAssignments(kTenantA, app1_, {ToAllDevices(app1_), taken});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kAlreadyExists);
  // The same id twice in the set.
  AppAssignment first = ToGroup(app1_), second = ToAllDevices(app1_);
  first.id = second.id = "44444444-4444-4444-4444-444444444444";
  EXPECT_EQ(store_->ReplaceAppAssignments(kTenantA, app1_, {first, second}).error().code, Code::kAlreadyExists);
  // One invalid member: nothing is tried.
  AppAssignment bad = ToGroup(app1_);
  bad.intent.clear();
  EXPECT_EQ(store_->ReplaceAppAssignments(kTenantA, app1_, {ToAllDevices(app1_), bad}).error().code,
            Code::kInvalidArgument);
  EXPECT_EQ(store_->ReplaceAppAssignments(kTenantA, "no-such-app", {ToAllDevices(app1_)}).error().code,
            Code::kNotFound);
  EXPECT_EQ(Of(app1_), std::vector<AppAssignment>{old});
  EXPECT_EQ(Of(app2_), std::vector<AppAssignment>{other_app});
  EXPECT_EQ(Rows(), 2);
}

TEST_P(AppAssignmentsStoreTest, ListsOfAppsAndOfAToken) {
  std::string other_token = Token(kTenantA, "loc-2");
  ASSERT_TRUE(Sync(kTenantA, other_token, {App(other_token, "1")}));
  const std::string other_app = App(other_token, "1").id;
  AppAssignment a1 = Create(ToGroup(app1_)), a2 = Create(ToAllDevices(app1_)), b = Create(ToGroup(app2_));
  AppAssignment elsewhere = Create(ToGroup(other_app));

  auto by_app_then_id = [](std::vector<AppAssignment> v) {
    std::sort(v.begin(), v.end(), [](const AppAssignment& x, const AppAssignment& y) {
      return std::tie(x.app_id, x.id) < std::tie(y.app_id, y.id);
    });
    return v;
  };
  Result<std::vector<AppAssignment>> of_token = store_->ListAssignmentsOfToken(kTenantA, token_);
  ASSERT_TRUE(of_token) << of_token.error().message;
  EXPECT_EQ(*of_token, by_app_then_id({a1, a2, b}));
  EXPECT_EQ(*store_->ListAssignmentsOfToken(kTenantA, other_token), std::vector<AppAssignment>{elsewhere});
  EXPECT_TRUE(store_->ListAssignmentsOfToken(kTenantA, "no-such-token")->empty());

  // Any ids, unknown ones and more than one statement's worth among them.
  std::vector<std::string> ids;
  for (int i = 0; i < 1200; ++i) ids.push_back(fmt::format("unknown-{:04}", i));
  ids.insert(ids.begin() + 700, app2_);
  ids.push_back(other_app);
  ids.insert(ids.begin() + 3, app1_);
  Result<std::vector<AppAssignment>> of_apps = store_->ListAssignmentsOfApps(kTenantA, ids);
  ASSERT_TRUE(of_apps) << of_apps.error().message;
  EXPECT_EQ(*of_apps, by_app_then_id({a1, a2, b, elsewhere}));
  EXPECT_TRUE(store_->ListAssignmentsOfApps(kTenantA, {})->empty());
  EXPECT_EQ(*store_->ListAssignmentsOfApps(kTenantA, {app2_}), std::vector<AppAssignment>{b});
}

TEST_P(AppAssignmentsStoreTest, AssignmentsLiveAndDieWithTheirApp) {
  AppAssignment a1 = Create(ToGroup(app1_));
  AppAssignment a2 = Create(ToGroup(app2_));
  // A sync that changes app 1 (its counts) keeps its assignments: the row is
  // updated in place, not deleted and inserted again.
  clock_.Set(kT0 + kSecond);
  ASSERT_TRUE(Sync(kTenantA, token_, {App(token_, "1", 7), App(token_, "2")}));
  EXPECT_EQ(store_->GetApp(kTenantA, app1_)->used_licenses, 7);
  EXPECT_EQ(store_->GetApp(kTenantA, app1_)->created, kT0);
  EXPECT_EQ(Of(app1_), std::vector<AppAssignment>{a1});
  // A sync that no longer finds app 2 takes its assignments along.
  ASSERT_TRUE(Sync(kTenantA, token_, {App(token_, "1", 7)}));
  EXPECT_EQ(store_->ListAssignmentsOfApp(kTenantA, app2_).error().code, Code::kNotFound);
  EXPECT_EQ(Rows(), 1);
  // So does deleting the token, and removing a tenant.
  ASSERT_TRUE(store_->DeleteToken(kTenantA, token_));
  EXPECT_EQ(Rows(), 0);
  std::string t = Token(kTenantB, "loc-b");
  ASSERT_TRUE(Sync(kTenantB, t, {App(t, "9")}));
  Create(ToGroup(App(t, "9").id), kTenantB);
  EXPECT_EQ(Rows(), 1);
  ASSERT_TRUE(store_->RemoveTenant(kTenantB));
  EXPECT_EQ(Rows(), 0);
}

TEST_P(AppAssignmentsStoreTest, AssignmentsSurviveReopening) {
  AppAssignment made = Create(ToGroup(app1_));
  store_.reset();
  Result<std::unique_ptr<Store>> opened = db_->Open(options_);
  ASSERT_TRUE(opened) << opened.error().message;
  store_ = std::move(*opened);
  EXPECT_EQ(Of(app1_), std::vector<AppAssignment>{made});
}

}  // namespace
}  // namespace vppd::store
