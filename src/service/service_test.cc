#include "service/service.h"

#include <filesystem>

#include <gtest/gtest.h>

namespace vppd::service {
namespace {

Principal Delegated(std::vector<std::string> scopes) {
  Principal p;
  p.tenant_id = "7d3e5f1a-9c2b-4e8d-a6f0-3b1c5d7e9f20";
  p.scopes = std::move(scopes);
  return p;
}

Principal AppOnly(std::vector<std::string> roles) {
  Principal p = Delegated({});
  p.app_only = true;
  p.roles = std::move(roles);
  return p;
}

TEST(Permissions, SeedProfileIsTheSeedTable) {
  const auto kSeed = PermissionProfile::kSeed;
  // The seed: delegated work/school with DeviceManagementServiceConfig.ReadWrite.All.
  EXPECT_TRUE(Authorize(Delegated({"DeviceManagementServiceConfig.ReadWrite.All"}), Operation::kSyncLicenses, kSeed));
  auto no_scope = Authorize(Delegated({"DeviceManagementServiceConfig.Read.All"}), Operation::kSyncLicenses, kSeed);
  ASSERT_FALSE(no_scope);
  EXPECT_EQ(no_scope.error().code, Code::kPermissionDenied);
  EXPECT_TRUE(no_scope.error().graph_code.empty());  // The Graph code is graph/errors.cc's business.
  EXPECT_NE(no_scope.error().message.find("DeviceManagementServiceConfig.ReadWrite.All"), std::string::npos);
  // Newer permissions are not part of the seed table.
  EXPECT_FALSE(Authorize(Delegated({"DeviceManagementApps.ReadWrite.All"}), Operation::kSyncLicenses, kSeed));
  // Reads accept the read-only scope.
  EXPECT_TRUE(Authorize(Delegated({"DeviceManagementServiceConfig.Read.All"}), Operation::kReadTokens, kSeed));
  // Personal accounts and application tokens: not supported.
  Principal msa = Delegated({"DeviceManagementServiceConfig.ReadWrite.All"});
  msa.personal_account = true;
  auto personal = Authorize(msa, Operation::kReadTokens, kSeed);
  ASSERT_FALSE(personal);
  EXPECT_NE(personal.error().message.find("Personal Microsoft accounts are not supported"), std::string::npos);
  auto app = Authorize(AppOnly({"DeviceManagementServiceConfig.ReadWrite.All"}), Operation::kSyncLicenses, kSeed);
  ASSERT_FALSE(app);
  EXPECT_NE(app.error().message.find("Application permissions are not supported"), std::string::npos);
}

TEST(Permissions, CurrentProfileAddsAppsAndApplicationPermissions) {
  const auto kCurrent = PermissionProfile::kCurrent;
  EXPECT_TRUE(Authorize(Delegated({"DeviceManagementApps.ReadWrite.All"}), Operation::kSyncLicenses, kCurrent));
  EXPECT_TRUE(Authorize(AppOnly({"DeviceManagementServiceConfig.ReadWrite.All"}), Operation::kCreateToken, kCurrent));
  EXPECT_TRUE(Authorize(AppOnly({"DeviceManagementApps.Read.All"}), Operation::kReadTokens, kCurrent));
  EXPECT_FALSE(Authorize(AppOnly({"DeviceManagementApps.Read.All"}), Operation::kDeleteToken, kCurrent));
  EXPECT_TRUE(
      Authorize(Delegated({"DeviceManagementConfiguration.Read.All"}), Operation::kGetLicensesForApp, kCurrent));
  EXPECT_TRUE(
      Authorize(Delegated({"DeviceManagementConfiguration.ReadWrite.All"}), Operation::kRevokeLicenses, kCurrent));
  EXPECT_FALSE(Authorize(Delegated({"DeviceManagementApps.ReadWrite.All"}), Operation::kRevokeLicenses, kCurrent));
  // Scopes in an app-only token's `scp` do not count as roles, and vice versa.
  Principal mixed = AppOnly({});
  mixed.scopes = {"DeviceManagementServiceConfig.ReadWrite.All"};
  EXPECT_FALSE(Authorize(mixed, Operation::kReadTokens, kCurrent));
}

TEST(Permissions, GetExpiringVppTokenCount) {
  // Its page: DeviceManagementServiceConfig.Read.All/ReadWrite.All and
  // DeviceManagementConfiguration.Read.All/ReadWrite.All, delegated and application.
  const auto op = Operation::kGetExpiringVppTokenCount;
  EXPECT_TRUE(Authorize(Delegated({"DeviceManagementServiceConfig.Read.All"}), op, PermissionProfile::kSeed));
  EXPECT_TRUE(Authorize(Delegated({"DeviceManagementServiceConfig.ReadWrite.All"}), op, PermissionProfile::kSeed));
  EXPECT_FALSE(Authorize(Delegated({"DeviceManagementApps.ReadWrite.All"}), op, PermissionProfile::kSeed));
  EXPECT_FALSE(Authorize(AppOnly({"DeviceManagementServiceConfig.Read.All"}), op, PermissionProfile::kSeed));
  for (const char* scope : {"DeviceManagementServiceConfig.Read.All", "DeviceManagementServiceConfig.ReadWrite.All",
                            "DeviceManagementConfiguration.Read.All", "DeviceManagementConfiguration.ReadWrite.All"}) {
    EXPECT_TRUE(Authorize(Delegated({scope}), op, PermissionProfile::kCurrent)) << scope;
    EXPECT_TRUE(Authorize(AppOnly({scope}), op, PermissionProfile::kCurrent)) << scope;
  }
  EXPECT_FALSE(Authorize(Delegated({"DeviceManagementApps.ReadWrite.All"}), op, PermissionProfile::kCurrent));
}

TEST(Permissions, ProfileNames) {
  EXPECT_EQ(*ParsePermissionProfile("seed"), PermissionProfile::kSeed);
  EXPECT_EQ(*ParsePermissionProfile("current"), PermissionProfile::kCurrent);
  EXPECT_FALSE(ParsePermissionProfile("Seed"));
}

}  // namespace
}  // namespace vppd::service

namespace vppd::service {
namespace {

TEST(Throttle, LimitsWritesAndRequestsPerTenantAndApp) {
  FakeClock clock(1'000'000'000);
  ThrottleLimits limits;
  limits.tenant_writes = 3;
  limits.app_writes = 2;
  limits.tenant_requests = 5;
  limits.app_requests = 4;
  Throttle t(limits, &clock);
  EXPECT_TRUE(t.Admit("T", "A", true));
  EXPECT_TRUE(t.Admit("T", "A", true));
  auto refused = t.Admit("T", "A", true);  // app writes 2/2
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kResourceExhausted);
  EXPECT_TRUE(refused.error().graph_code.empty());  // The Graph code is graph/errors.cc's business.
  EXPECT_EQ(refused.error().retry_after_seconds, 20);
  EXPECT_TRUE(t.Admit("T", "B", true));   // another app: tenant writes 3/3
  EXPECT_FALSE(t.Admit("T", "C", true));  // tenant writes exhausted
  EXPECT_TRUE(t.Admit("T", "A", false));  // reads still go: app requests 3/4 (refusals not counted)
  EXPECT_TRUE(t.Admit("T", "A", false));  // tenant requests 5/5
  EXPECT_FALSE(t.Admit("T", "B", false));
  EXPECT_TRUE(t.Admit("U", "A", true));  // other tenants are not affected
  clock.Advance(std::chrono::seconds(15));
  auto later = t.Admit("T", "B", false);
  ASSERT_FALSE(later);
  EXPECT_EQ(later.error().retry_after_seconds, 5);
  clock.Advance(std::chrono::seconds(5));  // window over
  EXPECT_TRUE(t.Admit("T", "A", true));
}

}  // namespace
}  // namespace vppd::service

namespace vppd::service {
namespace {

TEST(Gate, RemembersLicensedTenantsForTheTtlOnly) {
  const auto dir = std::filesystem::temp_directory_path() / ("vppd-gate-test-" + NewGuid());
  std::filesystem::create_directories(dir);
  FakeClock clock(1'000'000'000'000);
  store::SqliteOptions so;
  so.path = (dir / "vppd.db").string();
  so.secrets = std::make_shared<const SecretBox>(SecretBox::FromKey(std::string(32, 'k')));
  auto store = store::Store::OpenSqlite(so);
  ASSERT_TRUE(store) << store.error().message;
  Tenants tenants(**store);
  const std::string tid = "7d3e5f1a-9c2b-4e8d-a6f0-3b1c5d7e9f20";
  Options options;
  options.clock = &clock;
  Gate gate(**store, options);
  const Principal caller = Delegated({"DeviceManagementServiceConfig.ReadWrite.All"});

  auto unknown = gate.Admit(caller, Operation::kReadTokens);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("not registered"), std::string::npos);
  ASSERT_TRUE(tenants.Put(tid, "T", false));
  auto unlicensed = gate.Admit(caller, Operation::kReadTokens);
  ASSERT_FALSE(unlicensed);  // refusals are never remembered
  EXPECT_NE(unlicensed.error().message.find("Intune license"), std::string::npos);
  ASSERT_TRUE(tenants.SetLicense(tid, true));
  EXPECT_TRUE(gate.Admit(caller, Operation::kReadTokens));
  ASSERT_TRUE(tenants.SetLicense(tid, false));
  EXPECT_TRUE(gate.Admit(caller, Operation::kReadTokens));  // remembered for the TTL
  // Permissions are checked every time, whatever the cache says.
  EXPECT_FALSE(gate.Admit(Delegated({}), Operation::kReadTokens));
  clock.Advance(std::chrono::milliseconds(1001));
  EXPECT_FALSE(gate.Admit(caller, Operation::kReadTokens));  // the license change has taken effect
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vppd::service

namespace vppd::service {
namespace {

TEST(VppTokens, CountExpiringBeforeCountsTheCallersTokensThatExpireStrictlyBefore) {
  const auto dir = std::filesystem::temp_directory_path() / ("vppd-expiring-test-" + NewGuid());
  std::filesystem::create_directories(dir);
  FakeClock clock(*ParseIso8601("2026-12-01T00:00:00Z"));
  store::SqliteOptions so;
  so.path = (dir / "vppd.db").string();
  so.secrets = std::make_shared<const SecretBox>(SecretBox::FromKey(std::string(32, 'k')));
  auto store = store::Store::OpenSqlite(so);
  ASSERT_TRUE(store) << store.error().message;
  Tenants tenants(**store);
  const Principal caller = Delegated({"DeviceManagementServiceConfig.ReadWrite.All"});
  Principal other = caller;
  other.tenant_id = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d";
  ASSERT_TRUE(tenants.Put(caller.tenant_id, "T", true));
  ASSERT_TRUE(tenants.Put(other.tenant_id, "U", true));
  Options options;
  options.clock = &clock;
  VppTokens tokens(**store, options);
  auto add = [&](const Principal& who, const std::string& location, const std::string& exp) {
    TokenChanges c;
    c.token = Base64Encode(R"({"token":")" + location + R"(","expDate":")" + exp + R"(","orgName":"Org"})");
    auto t = tokens.Create(who, std::move(c));
    ASSERT_TRUE(t) << t.error().message;
  };
  add(caller, "a", "2026-03-01T00:00:00+0000");  // already expired
  add(caller, "b", "2027-06-30T12:00:00+0000");
  add(caller, "c", "2030-11-08T22:33:22+0000");
  add(other, "d", "2026-06-01T00:00:00+0000");  // another tenant's: never counted

  auto count = [&](const Principal& who, const char* before) -> std::int64_t {
    auto n = tokens.CountExpiringBefore(who, *ParseIso8601(before));
    EXPECT_TRUE(n) << n.error().message;
    return n ? *n : -1;
  };
  EXPECT_EQ(count(caller, "2020-01-01T00:00:00Z"), 0);
  EXPECT_EQ(count(caller, "2026-03-01T00:00:00Z"), 0);  // strictly before
  EXPECT_EQ(count(caller, "2026-03-01T00:00:00.000001Z"), 1);
  EXPECT_EQ(count(caller, "2028-01-01T00:00:00Z"), 2);
  EXPECT_EQ(count(caller, "2031-01-01T00:00:00Z"), 3);
  EXPECT_EQ(count(other, "2031-01-01T00:00:00Z"), 1);
  // The permission and the tenant's license are checked.
  auto refused = tokens.CountExpiringBefore(Delegated({"DeviceManagementApps.ReadWrite.All"}), 0);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kPermissionDenied);
  ASSERT_TRUE(tenants.SetLicense(caller.tenant_id, false));
  clock.Advance(std::chrono::seconds(2));  // past the Gate's memory of the license
  EXPECT_FALSE(tokens.CountExpiringBefore(caller, 0));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vppd::service

namespace vppd::service {
namespace {

// Counts the reconcile hook's calls.
struct CountingTrigger final : ReconcileTrigger {
  void TokenNeedsReconcile(const std::string&, const std::string&) override { ++token_calls; }
  void TenantNeedsReconcile(const std::string& tenant) override { tenants.push_back(tenant); }
  int token_calls = 0;
  std::vector<std::string> tenants;
};

TEST(Directory, ChecksValuesMapsErrorsAndTriggersReconcileAfterDeviceAndMembershipChanges) {
  const auto dir = std::filesystem::temp_directory_path() / ("vppd-directory-test-" + NewGuid());
  std::filesystem::create_directories(dir);
  store::SqliteOptions so;
  so.path = (dir / "vppd.db").string();
  so.secrets = std::make_shared<const SecretBox>(SecretBox::FromKey(std::string(32, 'k')));
  auto store = store::Store::OpenSqlite(so);
  ASSERT_TRUE(store) << store.error().message;
  const Principal caller = Delegated({"User.ReadWrite.All", "Group.ReadWrite.All", "Device.ReadWrite.All",
                                      "DeviceManagementManagedDevices.ReadWrite.All"});
  ASSERT_TRUE(Tenants(**store).Put(caller.tenant_id, "T", true));
  CountingTrigger trigger;
  Directory directory(**store, Options{}, &trigger);

  // Users: required, limits, the UPN's uniqueness in Graph's words; no reconcile.
  UserChanges user;
  user.user_principal_name = "ana@x.com";
  auto missing = directory.CreateUser(caller, user);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().target, "displayName");
  user.display_name = std::string(257, 'a');
  EXPECT_EQ(directory.CreateUser(caller, user).error().target, "displayName");
  user.display_name = std::string(256, 'a');
  auto ana = directory.CreateUser(caller, user);
  ASSERT_TRUE(ana) << ana.error().message;
  user.user_principal_name = "ANA@x.com";
  auto dup = directory.CreateUser(caller, user);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, Code::kInvalidArgument);
  EXPECT_EQ(dup.error().target, "userPrincipalName");
  EXPECT_TRUE(trigger.tenants.empty());

  // A device's deviceId is a GUID, kept lower-case; creating one triggers a reconcile.
  DeviceChanges device;
  device.device_id = "not-a-guid";
  device.display_name = std::optional<std::string>("ipad");
  EXPECT_EQ(directory.CreateDevice(caller, device).error().target, "deviceId");
  device.device_id = "A1B2C3D4-0000-4000-8000-00000000000A";
  auto ipad = directory.CreateDevice(caller, device);
  ASSERT_TRUE(ipad) << ipad.error().message;
  EXPECT_EQ(ipad->device_id, "a1b2c3d4-0000-4000-8000-00000000000a");
  EXPECT_EQ(trigger.tenants.size(), 1u);

  // Members: twice is Graph's 400, unknown ids are 404s naming them; each change triggers.
  GroupChanges group;
  group.display_name = "iPads";
  group.mail_nickname = std::optional<std::string>("ipads");
  group.mail_enabled = false;
  auto no_security = directory.CreateGroup(caller, group);
  ASSERT_FALSE(no_security);
  EXPECT_EQ(no_security.error().target, "securityEnabled");
  group.security_enabled = true;
  auto ipads = directory.CreateGroup(caller, group);
  ASSERT_TRUE(ipads) << ipads.error().message;
  Principal members_writer = Delegated({"GroupMember.ReadWrite.All"});
  ASSERT_TRUE(directory.AddMember(members_writer, ipads->id, ipad->id));
  EXPECT_EQ(trigger.tenants.size(), 2u);
  auto twice = directory.AddMember(members_writer, ipads->id, ipad->id);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, Code::kInvalidArgument);
  EXPECT_EQ(twice.error().message,
            "One or more added object references already exist for the following modified properties: 'members'.");
  auto unknown = directory.AddMember(members_writer, ipads->id, "b0b0b0b0-0000-4000-8000-000000000000");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Code::kNotFound);
  EXPECT_NE(unknown.error().message.find("b0b0b0b0-0000-4000-8000-000000000000"), std::string::npos);
  EXPECT_EQ(trigger.tenants.size(), 2u);  // failures trigger nothing
  ASSERT_TRUE(directory.RemoveMember(members_writer, ipads->id, ipad->id));
  EXPECT_EQ(trigger.tenants.size(), 3u);
  EXPECT_EQ(directory.RemoveMember(members_writer, ipads->id, ipad->id).error().code, Code::kNotFound);
  // Without the permission, nothing happens.
  EXPECT_EQ(directory.AddMember(Delegated({"Group.Read.All"}), ipads->id, ipad->id).error().code,
            Code::kPermissionDenied);

  ManagedDeviceChanges managed;
  managed.serial_number = std::optional<std::string>("SER1");
  managed.azure_ad_device_id = std::optional<std::string>("nope");
  EXPECT_EQ(directory.CreateManagedDevice(caller, managed).error().target, "azureADDeviceId");
  managed.azure_ad_device_id = std::optional<std::string>(ipad->device_id);
  ASSERT_TRUE(directory.CreateManagedDevice(caller, managed));
  EXPECT_EQ(trigger.tenants.size(), 4u);
  EXPECT_EQ(trigger.tenants.back(), caller.tenant_id);
  EXPECT_EQ(trigger.token_calls, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vppd::service
