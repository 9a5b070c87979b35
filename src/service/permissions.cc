// The permission table: one row per operation, for each profile.
//
// Sources (spec/graph-vpptoken.md §1.3): the seed page's table for syncLicenses
// (delegated work or school account with DeviceManagementServiceConfig.ReadWrite.All;
// personal accounts and application tokens not supported), the same era's pages for
// the rest; and the newest published tables for the `current` profile.
#include <algorithm>
#include <array>
#include <span>

#include "service/service.h"

namespace vppd::service {
namespace {

constexpr std::string_view kServiceConfigRead = "DeviceManagementServiceConfig.Read.All";
constexpr std::string_view kServiceConfigWrite = "DeviceManagementServiceConfig.ReadWrite.All";
constexpr std::string_view kAppsRead = "DeviceManagementApps.Read.All";
constexpr std::string_view kAppsWrite = "DeviceManagementApps.ReadWrite.All";
constexpr std::string_view kConfigurationRead = "DeviceManagementConfiguration.Read.All";
constexpr std::string_view kConfigurationWrite = "DeviceManagementConfiguration.ReadWrite.All";
constexpr std::string_view kDirectoryRead = "Directory.Read.All";
constexpr std::string_view kDirectoryWrite = "Directory.ReadWrite.All";
constexpr std::string_view kUserRead = "User.Read.All";
constexpr std::string_view kUserWrite = "User.ReadWrite.All";
constexpr std::string_view kGroupRead = "Group.Read.All";
constexpr std::string_view kGroupWrite = "Group.ReadWrite.All";
constexpr std::string_view kGroupMemberRead = "GroupMember.Read.All";
constexpr std::string_view kGroupMemberWrite = "GroupMember.ReadWrite.All";
constexpr std::string_view kDeviceRead = "Device.Read.All";
constexpr std::string_view kDeviceWrite = "Device.ReadWrite.All";
constexpr std::string_view kManagedDevicesRead = "DeviceManagementManagedDevices.Read.All";
constexpr std::string_view kManagedDevicesWrite = "DeviceManagementManagedDevices.ReadWrite.All";
constexpr std::string_view kManagedDevicesPrivileged = "DeviceManagementManagedDevices.PrivilegedOperations.All";

struct Row {
  Operation op;
  bool application_supported;
  std::span<const std::string_view> permissions;  // Any one suffices; least privileged first.
};

// --- the directory, the same in both profiles (Graph's pages for users, groups,
// group members, devices and managedDevices; the seed page says nothing of them) ---
constexpr std::array kUsersRead = {kUserRead, kUserWrite, kDirectoryRead, kDirectoryWrite};
constexpr std::array kUsersWrite = {kUserWrite, kDirectoryWrite};
constexpr std::array kGroupsRead = {kGroupRead, kGroupWrite, kDirectoryRead, kDirectoryWrite};
constexpr std::array kGroupsWrite = {kGroupWrite, kDirectoryWrite};
constexpr std::array kMembersRead = {kGroupMemberRead, kGroupRead,     kGroupMemberWrite,
                                     kGroupWrite,      kDirectoryRead, kDirectoryWrite};
constexpr std::array kMembersWrite = {kGroupMemberWrite, kGroupWrite, kDirectoryWrite};
constexpr std::array kDevicesRead = {kDeviceRead, kDeviceWrite, kDirectoryRead, kDirectoryWrite};
constexpr std::array kDevicesWrite = {kDeviceWrite, kDirectoryWrite};
constexpr std::array kManagedRead = {kManagedDevicesRead, kManagedDevicesWrite};
constexpr std::array kManagedWrite = {kManagedDevicesWrite};
// --- managedEBooks, the same in both profiles (spec/graph-assignments.md §6: AppsR,
// AppsRW; delegated and application) ---
constexpr std::array kEBooksRead = {kAppsRead, kAppsWrite};
constexpr std::array kEBooksWrite = {kAppsWrite};
constexpr std::array<Row, 3> kEBookTable = {{
    {Operation::kReadManagedEBooks, true, kEBooksRead},
    {Operation::kWriteManagedEBookAssignments, true, kEBooksWrite},
    {Operation::kAssignManagedEBook, true, kEBooksWrite},
}};

// managedDevice's revokeAppleVppLicenses page: the privileged operations permission only.
constexpr std::array kManagedPrivileged = {kManagedDevicesPrivileged};
constexpr std::array<Row, 11> kDirectoryTable = {{
    {Operation::kReadUsers, true, kUsersRead},
    {Operation::kWriteUsers, true, kUsersWrite},
    {Operation::kReadGroups, true, kGroupsRead},
    {Operation::kWriteGroups, true, kGroupsWrite},
    {Operation::kReadGroupMembers, true, kMembersRead},
    {Operation::kWriteGroupMembers, true, kMembersWrite},
    {Operation::kReadDevices, true, kDevicesRead},
    {Operation::kWriteDevices, true, kDevicesWrite},
    {Operation::kReadManagedDevices, true, kManagedRead},
    {Operation::kWriteManagedDevices, true, kManagedWrite},
    {Operation::kRevokeAppleVppLicenses, true, kManagedPrivileged},
}};

// --- seed profile -----------------------------------------------------------
constexpr std::array kSeedRead = {kServiceConfigRead, kServiceConfigWrite};
constexpr std::array kSeedWrite = {kServiceConfigWrite};
constexpr std::array kSeedApps = {kAppsRead, kAppsWrite};
constexpr std::array kSeedAppsWrite = {kAppsWrite};
constexpr std::array<Row, 15> kSeedTable = {{
    {Operation::kReadTokens, false, kSeedRead},
    {Operation::kCreateToken, false, kSeedWrite},
    {Operation::kUpdateToken, false, kSeedWrite},
    {Operation::kDeleteToken, false, kSeedWrite},
    {Operation::kSyncLicenses, false, kSeedWrite},
    {Operation::kRevokeLicenses, false, kSeedWrite},
    {Operation::kSyncLicenseCounts, false, kSeedWrite},
    {Operation::kGetLicensesForApp, false, kSeedRead},
    {Operation::kReadMobileApps, false, kSeedApps},
    {Operation::kGetExpiringVppTokenCount, false, kSeedRead},
    // The mobileAppAssignment pages of the same era (spec/graph-assignments.md §1, §3):
    // delegated only.
    {Operation::kReadAppAssignments, false, kSeedApps},
    {Operation::kWriteAppAssignments, false, kSeedAppsWrite},
    {Operation::kAssignApp, false, kSeedAppsWrite},
    {Operation::kReadAppInstallStatuses, false, kSeedApps},
    // revokeAllLicenses (its page of the same era): delegated DeviceManagementApps.ReadWrite.All.
    {Operation::kRevokeAppLicenses, false, kSeedAppsWrite},
}};

// --- current profile --------------------------------------------------------
constexpr std::array kCurrentRead = {kAppsRead, kAppsWrite, kServiceConfigRead, kServiceConfigWrite};
constexpr std::array kCurrentWrite = {kAppsWrite, kServiceConfigWrite};
constexpr std::array kCurrentLicensesForApp = {kServiceConfigRead, kServiceConfigWrite, kConfigurationRead,
                                               kConfigurationWrite};
constexpr std::array kCurrentRevoke = {kServiceConfigWrite, kConfigurationWrite};
// The 2024 apps page for assign: DeviceManagementConfiguration.ReadWrite.All, then AppsRW.
constexpr std::array kCurrentAssign = {kConfigurationWrite, kAppsWrite};
// The 2024 pages of revokeUserLicense and revokeDeviceLicense: Configuration, then Apps, application too.
constexpr std::array kCurrentAppRevoke = {kConfigurationWrite, kAppsWrite};
constexpr std::array<Row, 15> kCurrentTable = {{
    {Operation::kReadTokens, true, kCurrentRead},
    {Operation::kCreateToken, true, kCurrentWrite},
    {Operation::kUpdateToken, true, kCurrentWrite},
    {Operation::kDeleteToken, true, kCurrentWrite},
    {Operation::kSyncLicenses, true, kCurrentWrite},
    {Operation::kRevokeLicenses, true, kCurrentRevoke},
    {Operation::kSyncLicenseCounts, true, kCurrentRevoke},
    {Operation::kGetLicensesForApp, true, kCurrentLicensesForApp},
    {Operation::kReadMobileApps, true, kSeedApps},
    // getExpiringVppTokenCount's page: the same four as getLicensesForApp, application too.
    {Operation::kGetExpiringVppTokenCount, true, kCurrentLicensesForApp},
    {Operation::kReadAppAssignments, true, kSeedApps},
    {Operation::kWriteAppAssignments, true, kSeedAppsWrite},
    {Operation::kAssignApp, true, kCurrentAssign},
    {Operation::kReadAppInstallStatuses, true, kSeedApps},
    {Operation::kRevokeAppLicenses, true, kCurrentAppRevoke},
}};

const Row& Lookup(Operation op, PermissionProfile profile) {
  const auto& table = profile == PermissionProfile::kSeed ? kSeedTable : kCurrentTable;
  const auto is_op = [op](const Row& r) { return r.op == op; };
  if (auto it = std::find_if(table.begin(), table.end(), is_op); it != table.end()) return *it;
  if (auto it = std::find_if(kEBookTable.begin(), kEBookTable.end(), is_op); it != kEBookTable.end()) return *it;
  return *std::find_if(kDirectoryTable.begin(), kDirectoryTable.end(), is_op);
}

std::string JoinNames(std::span<const std::string_view> names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

Error Forbidden(std::string message) { return Error::PermissionDenied(std::move(message)); }

}  // namespace

Result<PermissionProfile> ParsePermissionProfile(std::string_view name) {
  if (name == "seed") return PermissionProfile::kSeed;
  if (name == "current") return PermissionProfile::kCurrent;
  return Fail(
      Error::InvalidArgument("permission profile must be 'seed' or 'current', not '" + std::string(name) + "'"));
}

Status Authorize(const Principal& caller, Operation op, PermissionProfile profile) {
  const Row& row = Lookup(op, profile);
  if (caller.personal_account) {
    return Fail(Forbidden("Personal Microsoft accounts are not supported for this operation."));
  }
  if (caller.app_only && !row.application_supported) {
    return Fail(
        Forbidden("Application permissions are not supported for this operation; call it with a delegated "
                  "(work or school account) token."));
  }
  const auto& granted = caller.app_only ? caller.roles : caller.scopes;
  for (const auto& needed : row.permissions) {
    if (std::find(granted.begin(), granted.end(), needed) != granted.end()) return {};
  }
  return Fail(Forbidden(std::string(caller.app_only ? "Application" : "The caller") +
                        " is not authorized to perform this operation. It must have one of the following " +
                        (caller.app_only ? "application permissions (roles)" : "scopes") + ": " +
                        JoinNames(row.permissions) + "."));
}

}  // namespace vppd::service
