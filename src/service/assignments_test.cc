// service::AppAssignments on a real (SQLite) store: the reconcile trigger is
// called once per committed change and never for a refused one, the permission
// rows of the assignment operations, and what a refused change leaves (nothing).
#include <chrono>
#include <mutex>

#include <gtest/gtest.h>

#include "base/testing.h"
#include "service/service.h"

namespace vppd::service {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTenant = "7d3e5f1a-9c2b-4e8d-a6f0-3b1c5d7e9f20";
constexpr const char* kIosSettings = "#microsoft.graph.iosVppAppAssignmentSettings";

Principal Caller(std::vector<std::string> scopes = {"DeviceManagementApps.ReadWrite.All"}) {
  Principal p;
  p.tenant_id = kTenant;
  p.scopes = std::move(scopes);
  return p;
}

class RecordingTrigger final : public ReconcileTrigger {
 public:
  void TokenNeedsReconcile(const std::string& tenant_id, const std::string& token_id) override {
    std::lock_guard lock(mu);
    calls.push_back(tenant_id + "/" + token_id);
  }
  void TenantNeedsReconcile(const std::string& tenant_id) override {
    std::lock_guard lock(mu);
    calls.push_back(tenant_id);
  }
  std::mutex mu;
  std::vector<std::string> calls;
};

AssignmentChanges ToAllDevices(bool device_licensing = true) {
  AssignmentChanges c;
  c.intent = "required";
  c.target = AssignmentTarget{"#microsoft.graph.allDevicesAssignmentTarget", {}, {}, {}};
  AssignmentSettings s;
  s.type = kIosSettings;
  s.use_device_licensing = device_licensing;
  c.settings.emplace(s);
  return c;
}

class AppAssignmentsTest : public ::testing::Test {
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
    auto token = store_->CreateToken(kTenant, t);
    ASSERT_TRUE(token);
    token_id_ = token->id;
    // The token's apps, as a sync writes them.
    ASSERT_TRUE(store_->EnqueueJob(kTenant, token_id_, {}, [](store::VppToken&) -> Status { return {}; }));
    auto job = store_->ClaimJob("w", Clock::Real().Now(), 60s);
    ASSERT_TRUE(job && *job);
    store::SyncSnapshot snap;
    for (const char* platform : {"iOS", "macOS"}) {
      store::MobileApp a;
      a.id = std::string("app-") + platform;
      a.platform = platform;
      a.adam_id = "1";
      a.pricing_param = "STDQ";
      a.product_type = "App";
      a.device_assignable = true;
      snap.apps.push_back(a);
    }
    ASSERT_TRUE(store_->FinishJob(**job, snap, [](store::VppToken&) -> Status { return {}; }));
    service_.emplace(*store_, Options{}, &trigger_);
  }

  testing::TempDir dir_{"vppd-service-assignments"};
  std::unique_ptr<store::Store> store_;
  RecordingTrigger trigger_;
  std::optional<AppAssignments> service_;
  std::string token_id_;
};

TEST_F(AppAssignmentsTest, EveryCommittedChangeTriggersItsTokensReconcileAndNoRefusedOneDoes) {
  const std::string expected = std::string(kTenant) + "/" + token_id_;
  auto created = service_->Create(Caller(), "app-iOS", ToAllDevices());
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_TRUE(created->use_device_licensing);
  EXPECT_EQ(trigger_.calls, std::vector<std::string>{expected});

  AssignmentChanges patch;
  patch.intent = "uninstall";
  ASSERT_TRUE(service_->Update(Caller(), "app-iOS", created->id, patch));
  ASSERT_TRUE(service_->Assign(Caller(), "app-iOS", {ToAllDevices()}));
  auto listed = service_->List(Caller(), "app-iOS");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  ASSERT_TRUE(service_->Delete(Caller(), "app-iOS", listed->front().id));
  EXPECT_EQ(trigger_.calls.size(), 4u);

  // Refused: wrong settings type, a bad intent, a second assignment to all devices,
  // an unknown app, a read-only caller. Nothing written, nothing triggered.
  AssignmentChanges mac_settings = ToAllDevices();
  (*mac_settings.settings)->type = "#microsoft.graph.macOsVppAppAssignmentSettings";
  EXPECT_EQ(service_->Create(Caller(), "app-iOS", mac_settings).error().code, Code::kInvalidArgument);
  AssignmentChanges bad_intent = ToAllDevices();
  bad_intent.intent = "install";
  auto refused = service_->Assign(Caller(), "app-iOS", {ToAllDevices(), bad_intent});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().target, "mobileAppAssignments[1].intent");
  EXPECT_EQ(service_->Assign(Caller(), "app-iOS", {ToAllDevices(), ToAllDevices()}).error().code,
            Code::kInvalidArgument);
  EXPECT_EQ(service_->Create(Caller(), "no-such-app", ToAllDevices()).error().code, Code::kNotFound);
  EXPECT_EQ(service_->Create(Caller({"DeviceManagementApps.Read.All"}), "app-iOS", ToAllDevices()).error().code,
            Code::kPermissionDenied);
  EXPECT_TRUE(service_->List(Caller(), "app-iOS")->empty());
  EXPECT_EQ(trigger_.calls.size(), 4u);
}

TEST_F(AppAssignmentsTest, GroupTargetsNeedAGroupThatExists) {
  AssignmentChanges c = ToAllDevices();
  c.target = AssignmentTarget{"microsoft.graph.groupAssignmentTarget", {}, {}, {}};
  auto no_group = service_->Create(Caller(), "app-iOS", c);
  ASSERT_FALSE(no_group);
  EXPECT_EQ(no_group.error().target, "target.groupId");
  c.target->group_id = "00000000-0000-0000-0000-000000000001";
  auto unknown = service_->Create(Caller(), "app-iOS", c);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Code::kNotFound);
  EXPECT_EQ(unknown.error().target, "00000000-0000-0000-0000-000000000001");
  EXPECT_TRUE(trigger_.calls.empty());
}

TEST_F(AppAssignmentsTest, WorksWithoutATrigger) {
  AppAssignments quiet(*store_, Options{}, nullptr);
  EXPECT_TRUE(quiet.Create(
      Caller(), "app-macOS",
      AssignmentChanges{"available", AssignmentTarget{"#microsoft.graph.allLicensedUsersAssignmentTarget", {}, {}, {}},
                        std::nullopt}));
}

TEST(AssignmentPermissions, AppsScopesDelegatedInTheSeedProfileApplicationTooInCurrent) {
  const auto kSeed = PermissionProfile::kSeed, kCurrent = PermissionProfile::kCurrent;
  Principal read = Caller({"DeviceManagementApps.Read.All"}), write = Caller();
  for (Operation op : {Operation::kReadAppAssignments, Operation::kReadAppInstallStatuses}) {
    EXPECT_TRUE(Authorize(read, op, kSeed));
    EXPECT_TRUE(Authorize(write, op, kSeed));
  }
  for (Operation op : {Operation::kWriteAppAssignments, Operation::kAssignApp}) {
    EXPECT_FALSE(Authorize(read, op, kSeed));
    EXPECT_TRUE(Authorize(write, op, kSeed));
    EXPECT_TRUE(Authorize(write, op, kCurrent));
  }
  Principal app = Caller({});
  app.app_only = true;
  app.roles = {"DeviceManagementApps.ReadWrite.All"};
  EXPECT_FALSE(Authorize(app, Operation::kAssignApp, kSeed));
  EXPECT_TRUE(Authorize(app, Operation::kAssignApp, kCurrent));
  // The 2024 apps page also names DeviceManagementConfiguration.ReadWrite.All for assign.
  EXPECT_TRUE(Authorize(Caller({"DeviceManagementConfiguration.ReadWrite.All"}), Operation::kAssignApp, kCurrent));
  EXPECT_FALSE(
      Authorize(Caller({"DeviceManagementConfiguration.ReadWrite.All"}), Operation::kWriteAppAssignments, kCurrent));
}

}  // namespace
}  // namespace vppd::service
