#include <gtest/gtest.h>

#include "service/service.h"

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
  EXPECT_TRUE(Authorize(Delegated({"DeviceManagementConfiguration.Read.All"}), Operation::kGetLicensesForApp, kCurrent));
  EXPECT_TRUE(Authorize(Delegated({"DeviceManagementConfiguration.ReadWrite.All"}), Operation::kRevokeLicenses, kCurrent));
  EXPECT_FALSE(Authorize(Delegated({"DeviceManagementApps.ReadWrite.All"}), Operation::kRevokeLicenses, kCurrent));
  // Scopes in an app-only token's `scp` do not count as roles, and vice versa.
  Principal mixed = AppOnly({});
  mixed.scopes = {"DeviceManagementServiceConfig.ReadWrite.All"};
  EXPECT_FALSE(Authorize(mixed, Operation::kReadTokens, kCurrent));
}

TEST(Permissions, ProfileNames) {
  EXPECT_EQ(*ParsePermissionProfile("seed"), PermissionProfile::kSeed);
  EXPECT_EQ(*ParsePermissionProfile("current"), PermissionProfile::kCurrent);
  EXPECT_FALSE(ParsePermissionProfile("Seed"));
}

}  // namespace
}  // namespace vppd::service
