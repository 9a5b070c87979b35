// The service layer: what vppd does, independent of HTTP and JSON.
//
// Handlers in graph/ parse a request into a Principal and plain values, call one
// function here, and serialise what comes back. Everything here is unit-testable
// without sockets; it reaches the world only through store::Store and Clock.
//
//   service::VppTokens tokens(store, options);
//   Result<store::VppToken> t = tokens.Get(principal, id);   // NotFound, PermissionDenied
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/base.h"
#include "base/principal.h"
#include "store/store.h"

namespace vppd::service {

// The caller, as auth/ established it from a verified token (base/principal.h).
using Principal = vppd::Principal;

// Every operation that needs a permission: one row each in permissions.cc.
enum class Operation {
  kReadTokens,  // list, get, $count
  kCreateToken,
  kUpdateToken,
  kDeleteToken,
  kSyncLicenses,
  kRevokeLicenses,
  kSyncLicenseCounts,
  kGetLicensesForApp,
  kReadMobileApps,
  kGetExpiringVppTokenCount,  // depOnboardingSettings/getExpiringVppTokenCount
  // The directory (directory.cc): read is list, get, $count; write is create, update, delete.
  kReadUsers,
  kWriteUsers,
  kReadGroups,
  kWriteGroups,
  kReadGroupMembers,
  kWriteGroupMembers,
  kReadDevices,
  kWriteDevices,
  kReadManagedDevices,
  kWriteManagedDevices,
  kReadAppAssignments,      // mobileApps/{id}/assignments (list, get), $expand=assignments
  kWriteAppAssignments,     // mobileApps/{id}/assignments (create, PATCH, delete)
  kAssignApp,               // mobileApps/{id}/assign
  kReadAppInstallStatuses,  // mobileApps/{id}/deviceStatuses
  // managedEBooks (managed_ebooks.cc): list, get, $count, assignments, userStateSummary, deviceStates, installSummary
  kReadManagedEBooks,
  kWriteManagedEBookAssignments,  // managedEBooks/{id}/assignments (create, PATCH, delete)
  kAssignManagedEBook,            // managedEBooks/{id}/assign
  kRevokeAppLicenses,             // mobileApps/{id}/revokeAllLicenses, revokeUserLicense, revokeDeviceLicense
  kRevokeAppleVppLicenses,        // managedDevices/{id}/revokeAppleVppLicenses
};

// seed: the seed page's table (delegated work/school only). current: the newest
// published tables (adds DeviceManagementApps.*, DeviceManagementConfiguration.*
// where listed, and application permissions). See permissions.cc.
enum class PermissionProfile { kSeed, kCurrent };

Result<PermissionProfile> ParsePermissionProfile(std::string_view name);

// PermissionDenied naming what is missing, or saying that
// the account type is not supported. Pure function.
Status Authorize(const Principal& caller, Operation op, PermissionProfile profile);

// Client-settable vppToken properties present in a create or PATCH body. An absent
// std::optional means "not sent"; an inner nullopt means "sent as null".
struct TokenChanges {
  std::optional<std::string> token;  // A new sToken: create, or renewal by PATCH.
  std::optional<std::string> account_type;
  std::optional<std::optional<std::string>> apple_id;
  std::optional<std::optional<std::string>> country_or_region;
  std::optional<std::optional<std::string>> display_name;
  std::optional<bool> automatically_update_apps;
  std::optional<bool> data_sharing_consent_granted;
  std::optional<bool> claim_token_management_from_external_mdm;
  std::optional<std::vector<std::string>> role_scope_tag_ids;
  std::optional<std::string> delivery_protocol;
};

struct Options {
  PermissionProfile profile = PermissionProfile::kSeed;
  const Clock* clock = nullptr;  // nullptr = Clock::Real()
  // Called after a job was queued (the sync engine's Wake), so it starts at once.
  std::function<void()> on_job_queued;
  int keep_action_results = 20;
  std::chrono::milliseconds licensed_ttl{1000};  // see Gate
};

// One element of getLicensesForApp: the app's licenses under one token.
struct LicenseSummary {
  std::string token_id;
  std::optional<std::string> apple_id;
  std::optional<std::string> organization_name;
  std::int64_t available = 0;
  std::int64_t used = 0;
};

// Admission of a caller: the permission for the operation, then a registered tenant
// with an active Intune license (PermissionDenied otherwise). A tenant found licensed
// is remembered for `licensed_ttl`, so a read costs no tenant lookup; removing a
// tenant or its license takes effect within that time. Thread-safe.
class Gate {
 public:
  Gate(store::Store& store, const Options& options);
  Status Admit(const Principal& caller, Operation op);

 private:
  store::Store& store_;
  PermissionProfile profile_;
  const Clock* clock_;
  Timestamp ttl_micros_;
  std::mutex mu_;
  std::unordered_map<std::string, Timestamp> licensed_until_;
};

// The vppToken resource. Thread-safe.
// Every method first authorises `caller` for its operation and checks that the
// caller's tenant is registered and has an active Intune license (PermissionDenied
// otherwise), then works only inside that tenant: ids of other tenants are NotFound.
class VppTokens {
 public:
  VppTokens(store::Store& store, Options options);

  // `token` is required and decoded (apple::DecodeSToken): organizationName and
  // expirationDateTime come from it; state is `expired` when already past, else
  // `valid`. InvalidArgument (target "token") for a missing or malformed sToken;
  // ResourceExhausted past the per-tenant limit.
  Result<store::VppToken> Create(const Principal& caller, TokenChanges changes);
  Result<store::VppToken> Get(const Principal& caller, const std::string& id);
  Result<store::Page<store::VppToken>> List(const Principal& caller, const store::ListQuery& query);
  Result<std::int64_t> Count(const Principal& caller, const std::optional<store::Expr>& filter);
  // Graph's getExpiringVppTokenCount: how many of the caller's tokens expire strictly
  // before `before` (already expired ones included).
  Result<std::int64_t> CountExpiringBefore(const Principal& caller, Timestamp before);
  // Applies the changes; a new `token` is a renewal, decoded like on create.
  // `if_version` (an If-Match ETag's row_version): Aborted, nothing written, when
  // the token is no longer at that version (Graph: 412). NotFound comes first.
  Result<store::VppToken> Update(const Principal& caller, const std::string& id, TokenChanges changes,
                                 std::optional<std::int64_t> if_version = std::nullopt);
  Status Delete(const Principal& caller, const std::string& id, std::optional<std::int64_t> if_version = std::nullopt);

  // The seed's action: queues a sync of the token (durable, coalesced: while one is
  // queued or running another request queues nothing) and returns the token as it
  // is now — lastSyncStatus inProgress. Never waits for Apple. NotFound.
  Result<store::VppToken> SyncLicenses(const Principal& caller, const std::string& id);
  // Queues the revocation of the token's licenses (then a resync). NotFound.
  Status RevokeLicenses(const Principal& caller, const std::string& id, bool notify_managed_devices,
                        std::optional<bool> revoke_untracked_licenses);
  // Queues a refresh of the license counts of every valid token of the tenant.
  Status SyncLicenseCounts(const Principal& caller);
  // Per token holding the app (by bundle id, or adamId when the bundle id is unknown).
  Result<std::vector<LicenseSummary>> GetLicensesForApp(const Principal& caller, const std::string& bundle_id);

  // The permission table every method checks with (for callers that check a
  // permission before they call, as graph/ does when it routes).
  PermissionProfile permission_profile() const { return options_.profile; }

 private:
  Timestamp Now() const { return clock_->Now(); }
  // Queues the sync that follows a create or a renewal; returns the token as it is then.
  Result<store::VppToken> QueueFirstSync(const Principal& caller, store::VppToken token);

  store::Store& store_;
  Gate gate_;
  Options options_;
  const Clock* clock_;
};

// The apps that syncs found, as Graph's mobileApps show them. Same admission rules
// as VppTokens (permission, tenant, license).
class MobileApps {
 public:
  MobileApps(store::Store& store, Options options);
  Result<store::Page<store::MobileApp>> List(const Principal& caller, const store::ListQuery& query);
  Result<std::int64_t> Count(const Principal& caller, const std::optional<store::Expr>& filter);
  Result<store::MobileApp> Get(const Principal& caller, const std::string& id);  // NotFound
  Result<store::Page<store::LicenseAssignment>> AssignedLicenses(const Principal& caller, const std::string& app_id,
                                                                 std::int64_t skip, std::int64_t limit);
  // The untracked-licences report: the app's licences Apple held at the last
  // sync that vppd did not grant, a page from `cursor` (store::Store::
  // ListUntrackedLicenses). NotFound as Get (a book's id too).
  Result<store::Store::UntrackedPage> UntrackedLicenses(const Principal& caller, const std::string& app_id,
                                                        std::int64_t cursor, std::int64_t limit);
  // How many each of `app_ids` (a page of apps) has; ids of no app are left out.
  Result<std::map<std::string, std::int64_t>> UntrackedCounts(const Principal& caller,
                                                              const std::vector<std::string>& app_ids);

 private:
  store::Store& store_;
  Options options_;
  Gate gate_;
};

// What a change that may move licences tells the reconcile job (sync/): a token's
// assignments, or a tenant's directory, changed after a committed write. Called
// on the writer's thread; must be quick and must not fail the write.
class ReconcileTrigger {
 public:
  virtual ~ReconcileTrigger() = default;
  virtual void TokenNeedsReconcile(const std::string& tenant_id, const std::string& token_id) = 0;
  virtual void TenantNeedsReconcile(const std::string& tenant_id) = 0;
};

// mobile_apps rows are apps (Graph's mobileApps) or books (Graph's managedEBooks):
// store::MobileApp::product_type.
inline constexpr std::string_view kProductApp = "App";
inline constexpr std::string_view kProductBook = "Book";
// `filter` narrowed to the rows of `product_type` (kProductApp or kProductBook).
store::Expr OfProductType(std::string_view product_type, const std::optional<store::Expr>& filter);

// Client-settable directory properties of a create or PATCH body (absent: not
// sent; an inner nullopt: sent as null), in the store's terms.
struct UserChanges {
  std::optional<std::string> user_principal_name, display_name;
  std::optional<std::optional<std::string>> mail, given_name, surname, job_title;
  std::optional<bool> account_enabled;
};
struct GroupChanges {
  std::optional<std::string> display_name;
  std::optional<std::optional<std::string>> description, mail_nickname;
  std::optional<bool> mail_enabled, security_enabled;
  std::optional<std::vector<std::string>> group_types;
};
struct DeviceChanges {
  std::optional<std::string> device_id;
  std::optional<std::optional<std::string>> display_name, operating_system, operating_system_version;
  std::optional<bool> account_enabled;
};
struct ManagedDeviceChanges {
  std::optional<std::optional<std::string>> serial_number, device_name, azure_ad_device_id, user_id,
      user_principal_name, operating_system, os_version, model;
};

// Longest values the directory takes, in characters (Unicode code points), as
// Entra documents them where it does; InvalidArgument naming the property past them.
inline constexpr std::size_t kMaxDisplayName = 256;
inline constexpr std::size_t kMaxUserPrincipalName = 113;
inline constexpr std::size_t kMaxMail = 254;
inline constexpr std::size_t kMaxPersonName = 64;  // givenName, surname
inline constexpr std::size_t kMaxJobTitle = 128;
inline constexpr std::size_t kMaxGroupDescription = 1024;
inline constexpr std::size_t kMaxMailNickname = 64;
inline constexpr std::size_t kMaxDeviceText = 256;  // operatingSystem, model, ...

// The minimal directory: users, groups and their members, Entra devices and Intune
// managed devices. Same admission rules as VppTokens (permission, tenant, licence);
// ids of another tenant are NotFound. Thread-safe.
//
// Errors: InvalidArgument (target: the property) for a missing required property,
// one too long or malformed, a userPrincipalName or deviceId another object has,
// and a member added twice ("One or more added object references already exist
// ..."); NotFound naming the id for an unknown object, group or member.
// After each committed change to membership, devices or managed devices it calls
// `reconcile` (may be null) with TenantNeedsReconcile.
class Directory {
 public:
  Directory(store::Store& store, Options options, ReconcileTrigger* reconcile = nullptr);

  // Create needs userPrincipalName and displayName.
  Result<store::User> CreateUser(const Principal& caller, const UserChanges& changes);
  Result<store::User> GetUser(const Principal& caller, const std::string& id);
  Result<store::Page<store::User>> ListUsers(const Principal& caller, const store::ListQuery& query);
  Result<std::int64_t> CountUsers(const Principal& caller, const std::optional<store::Expr>& filter);
  Result<store::User> UpdateUser(const Principal& caller, const std::string& id, const UserChanges& changes);
  Status DeleteUser(const Principal& caller, const std::string& id);

  // Create needs displayName, mailNickname, mailEnabled and securityEnabled (as Graph).
  Result<store::Group> CreateGroup(const Principal& caller, const GroupChanges& changes);
  Result<store::Group> GetGroup(const Principal& caller, const std::string& id);
  Result<store::Page<store::Group>> ListGroups(const Principal& caller, const store::ListQuery& query);
  Result<std::int64_t> CountGroups(const Principal& caller, const std::optional<store::Expr>& filter);
  Result<store::Group> UpdateGroup(const Principal& caller, const std::string& id, const GroupChanges& changes);
  Status DeleteGroup(const Principal& caller, const std::string& id);
  Result<store::GroupMember> AddMember(const Principal& caller, const std::string& group_id,
                                       const std::string& member_id);
  Status RemoveMember(const Principal& caller, const std::string& group_id, const std::string& member_id);
  Result<store::Page<store::GroupMember>> ListMembers(const Principal& caller, const std::string& group_id,
                                                      std::int64_t skip, std::int64_t limit);
  Result<std::int64_t> CountMembers(const Principal& caller, const std::string& group_id);

  // Create needs deviceId (a GUID, kept lower-case) and displayName.
  Result<store::Device> CreateDevice(const Principal& caller, const DeviceChanges& changes);
  Result<store::Device> GetDevice(const Principal& caller, const std::string& id);
  Result<store::Page<store::Device>> ListDevices(const Principal& caller, const store::ListQuery& query);
  Result<std::int64_t> CountDevices(const Principal& caller, const std::optional<store::Expr>& filter);
  Result<store::Device> UpdateDevice(const Principal& caller, const std::string& id, const DeviceChanges& changes);
  Status DeleteDevice(const Principal& caller, const std::string& id);

  // azureADDeviceId and userId, when set, must be GUIDs (kept lower-case).
  Result<store::ManagedDevice> CreateManagedDevice(const Principal& caller, const ManagedDeviceChanges& changes);
  Result<store::ManagedDevice> GetManagedDevice(const Principal& caller, const std::string& id);
  Result<store::Page<store::ManagedDevice>> ListManagedDevices(const Principal& caller, const store::ListQuery& query);
  Result<std::int64_t> CountManagedDevices(const Principal& caller, const std::optional<store::Expr>& filter);
  Result<store::ManagedDevice> UpdateManagedDevice(const Principal& caller, const std::string& id,
                                                   const ManagedDeviceChanges& changes);
  Status DeleteManagedDevice(const Principal& caller, const std::string& id);

 private:
  void DirectoryChanged(const Principal& caller);

  store::Store& store_;
  Options options_;
  Gate gate_;
  ReconcileTrigger* reconcile_;
};

// A mobileAppAssignment's target as a request gives it. `type` is the @odata.type
// as sent ("#microsoft.graph.groupAssignmentTarget"; the '#' is optional).
struct AssignmentTarget {
  std::string type;
  std::optional<std::string> group_id;     // groupId (group and exclusion-group targets)
  std::optional<std::string> filter_id;    // deviceAndAppManagementAssignmentFilterId
  std::optional<std::string> filter_type;  // deviceAndAppManagementAssignmentFilterType
};

// A mobileAppAssignment's settings as a request gives them: `type` as for the
// target; an absent or null property is nullopt (Graph: null = the default).
struct AssignmentSettings {
  std::string type;  // "#microsoft.graph.iosVppAppAssignmentSettings" | "...macOsVppAppAssignmentSettings"
  std::optional<bool> use_device_licensing;
  std::optional<std::string> vpn_configuration_id;  // iOS only
  std::optional<bool> uninstall_on_device_removal;
  std::optional<bool> is_removable;  // iOS only
  std::optional<bool> prevent_managed_app_backup;
  std::optional<bool> prevent_auto_app_update;
};

// The client-settable properties of a mobileAppAssignment in a create, PATCH or
// assign body; an absent optional means "not sent".
struct AssignmentChanges {
  std::optional<std::string> intent;  // installIntent member name
  std::optional<AssignmentTarget> target;
  std::optional<std::optional<AssignmentSettings>> settings;  // inner nullopt: sent as null
};

// Where one device stands with an app's licence (a row of deviceStatuses).
struct DeviceInstallStatus {
  std::string managed_device_id, device_name, serial_number, user_id, user_principal_name;
  // resultantAppState member: "pendingInstall", "installed" (the licence is
  // granted: vppd does not install apps), "failed", "notInstalled", "unknown".
  std::string install_state = "unknown";
  std::int32_t error_code = 0;  // Apple's error number, or 0
  std::string error_message;    // why it failed ("not enough licences", Apple's message)
  Timestamp updated = 0;        // when the state was last recorded; 0 = never
};

// Where one person stands with an app's user licence (a row of userStatuses,
// Graph's userAppInstallStatus: the licence counted as one device).
struct UserInstallStatus {
  std::string user_id, user_name, user_principal_name;
  // "installed" (the licence is granted), "pendingInstall" (Apple's user is not
  // Associated yet, or the associate is in flight), "failed", "unknown".
  std::string install_state = "unknown";
};

// A directory user as the user licences held for them show them (assignedLicenses).
struct UserLicenseHolder {
  std::optional<std::string> user_principal_name, user_name, email;  // nullopt: not a directory user
};

// Where a person stands with Apple, per location (vppd's GET /users/{id}/vppUserStatus).
struct VppUserStatus {
  store::User user;
  struct Location {
    std::string token_id;
    store::AppleUser apple_user;
    std::vector<store::UserLicense> licenses;  // released ones left out
  };
  std::vector<Location> locations;  // ordered by token id; empty: never registered at Apple
};

// A device licence of an app as assignedLicenses shows it: the serial number
// Apple holds, with the managed device that has it when the directory knows one.
struct DeviceLicenseHolder {
  std::string serial_number;
  std::optional<std::string> managed_device_id, device_name, user_id, user_principal_name;
};

// The assignments of VPP apps (mobileAppAssignment) and where their licences
// stand. Same admission rules as VppTokens. Every committed change calls the
// trigger (when given) for the app's token. Validation (InvalidArgument naming
// the property, as target, unless said otherwise):
//   - intent: required on create, one of required, available, uninstall,
//     availableWithoutEnrollment;
//   - target: required on create; @odata.type one of groupAssignmentTarget,
//     exclusionGroupAssignmentTarget, allDevicesAssignmentTarget,
//     allLicensedUsersAssignmentTarget; the group targets need groupId, of a group
//     that exists (NotFound naming it), and the others take none; assignment
//     filters are not supported (a filter id, or a filter type other than none);
//     an app has at most one assignment per target (the same group, all devices,
//     all licensed users);
//   - settings: optional (null: none); iosVppAppAssignmentSettings for an
//     iosVppApp, macOsVppAppAssignmentSettings for a macOsVppApp, whose
//     properties only (macOS has no vpnConfigurationId or isRemovable);
//     useDeviceLicensing only for an app Apple lets be assigned to devices;
//   - the app: NotFound when the tenant has no such mobileApp.
// A failure writes nothing.
class AppAssignments {
 public:
  AppAssignments(store::Store& store, Options options, ReconcileTrigger* trigger);

  Result<std::vector<store::AppAssignment>> List(const Principal& caller, const std::string& app_id);
  Result<store::AppAssignment> Get(const Principal& caller, const std::string& app_id, const std::string& id);
  // The assignments of a page of apps (for $expand=assignments and isAssigned),
  // ordered by (app_id, id); unknown ids have none.
  Result<std::vector<store::AppAssignment>> OfApps(const Principal& caller, const std::vector<std::string>& app_ids);
  Result<store::AppAssignment> Create(const Principal& caller, const std::string& app_id, AssignmentChanges changes);
  // The sent properties replace the stored ones (settings as a whole); the
  // result is validated as a whole.
  Result<store::AppAssignment> Update(const Principal& caller, const std::string& app_id, const std::string& id,
                                      AssignmentChanges changes);
  Status Delete(const Principal& caller, const std::string& app_id, const std::string& id);
  // Graph's assign action: the app's assignments become exactly these, each
  // validated as a create (InvalidArgument's target says which: "mobileAppAssignments[2].intent").
  Status Assign(const Principal& caller, const std::string& app_id, std::vector<AssignmentChanges> assignments);

  // deviceStatuses: every device the app's device-licensing assignments reach
  // (required/available includes minus exclusions; all devices), in the reconcile
  // job's order, with where its licence stands: the job's record, else Apple's at
  // the last sync (a licence held: installed), else unknown. NotFound for the app.
  Result<std::vector<DeviceInstallStatus>> DeviceStatuses(const Principal& caller, const std::string& app_id);
  // For each serial (in order; "" for a user licence), the managed device the
  // directory says holds it (the first by id when a serial was enrolled twice).
  Result<std::vector<DeviceLicenseHolder>> LicenseHolders(const Principal& caller,
                                                          const std::vector<std::string>& serials);

  // User licences (user_licenses.cc).
  // userStatuses: every person the app's user-licensing assignments reach
  // (required/available without device licensing, minus exclusions; all users),
  // in the reconcile job's order, with where their licence stands. NotFound for the app.
  Result<std::vector<UserInstallStatus>> UserStatuses(const Principal& caller, const std::string& app_id);
  // For each clientUserId (in order; "" for a device licence), the directory user it is.
  Result<std::vector<UserLicenseHolder>> UserLicenseHolders(const Principal& caller,
                                                            const std::vector<std::string>& client_user_ids);
  // A person's Apple users and licences per location. NotFound (Graph's
  // Request_ResourceNotFound) for an unknown user.
  Result<VppUserStatus> UserVppStatus(const Principal& caller, const std::string& user_id);

 private:
  Result<store::AppAssignment> Build(const std::string& tenant_id, const store::MobileApp& app,
                                     const store::AppAssignment& base, const AssignmentChanges& changes,
                                     const std::string& where);
  Result<store::MobileApp> FindApp(const std::string& tenant_id, const std::string& app_id);
  void Changed(const std::string& tenant_id, const store::MobileApp& app);

  store::Store& store_;
  Options options_;
  Gate gate_;
  ReconcileTrigger* trigger_;
};

// The client-settable properties of a managedEBookAssignment (iosVppEBookAssignment)
// in a create, PATCH or assign body; an absent optional means "not sent".
struct EBookAssignmentChanges {
  std::optional<std::string> install_intent;  // installIntent member name
  std::optional<AssignmentTarget> target;
  // A `settings.useDeviceLicensing` the request sent. managedEBookAssignment has no
  // settings; a request that asks for device licensing is told precisely why not.
  std::optional<bool> use_device_licensing;
};

// One user's licence of a book (userInstallStateSummary): a user licence Apple held
// for the book at the last sync, under the user's clientUserId (their object id). A
// user licence whose clientUserId is no directory user (another MDM's) is shown as
// is, with user_name the clientUserId.
struct EBookUserState {
  std::string user_id;    // the clientUserId
  std::string user_name;  // the directory user's userPrincipalName, else the clientUserId
  // A user's licence reaches every device enrolled to them: installed on each
  // managed device whose user is them (vppd delivers no content).
  std::int64_t installed_devices = 0, failed_devices = 0, not_installed_devices = 0;
};

// One device of a user holding a licence of a book (deviceInstallState).
struct EBookDeviceState {
  std::string managed_device_id, device_name, os_version, os_description, user_name, user_id;
  std::string install_state = "installed";  // installState member
  Timestamp last_sync = 0;                  // when vppd last saw the book change at Apple
};

// The books that syncs found (Apple's Book assets), as Graph's managedEBooks
// (iosVppEBook) show them, and their assignments (iosVppEBookAssignment), kept in
// the same table as apps' (store::AppAssignment with use_device_licensing false)
// so that the reconcile job's user licensing serves them. Same admission rules as
// VppTokens. Validation (InvalidArgument naming the property, as target):
//   - installIntent: required on create, one of required, available, uninstall,
//     availableWithoutEnrollment (the four Graph documents);
//   - target: required on create; groupAssignmentTarget,
//     exclusionGroupAssignmentTarget or allLicensedUsersAssignmentTarget. Apple
//     licenses books to users only, so allDevicesAssignmentTarget (devices) and
//     a useDeviceLicensing of true are refused with a message that says so; group
//     targets need an existing group (NotFound naming it); assignment filters are
//     not supported; one assignment per target;
//   - the book: NotFound when the tenant has no such managedEBook (an app's id
//     included).
// A failure writes nothing. Every committed change calls the trigger for the
// book's token. Thread-safe.
class ManagedEBooks {
 public:
  ManagedEBooks(store::Store& store, Options options, ReconcileTrigger* trigger);

  // The query names mobile_apps columns, as MobileApps::List.
  Result<store::Page<store::MobileApp>> List(const Principal& caller, const store::ListQuery& query);
  Result<std::int64_t> Count(const Principal& caller, const std::optional<store::Expr>& filter);
  Result<store::MobileApp> Get(const Principal& caller, const std::string& id);  // NotFound

  Result<std::vector<store::AppAssignment>> ListAssignments(const Principal& caller, const std::string& book_id);
  // The assignments of a page of books ($expand=assignments), ordered by (app_id, id).
  Result<std::vector<store::AppAssignment>> AssignmentsOf(const Principal& caller,
                                                          const std::vector<std::string>& book_ids);
  Result<store::AppAssignment> GetAssignment(const Principal& caller, const std::string& book_id,
                                             const std::string& id);
  Result<store::AppAssignment> CreateAssignment(const Principal& caller, const std::string& book_id,
                                                const EBookAssignmentChanges& changes);
  // The sent properties replace the stored ones; the result is validated as a whole.
  Result<store::AppAssignment> UpdateAssignment(const Principal& caller, const std::string& book_id,
                                                const std::string& id, const EBookAssignmentChanges& changes);
  Status DeleteAssignment(const Principal& caller, const std::string& book_id, const std::string& id);
  // Graph's assign action: the book's assignments become exactly these, each
  // validated as a create (the target names which: "managedEBookAssignments[1].target").
  Status Assign(const Principal& caller, const std::string& book_id, const std::vector<EBookAssignmentChanges>& list);

  // userStateSummary: one row per user licence of the book at Apple, ordered by clientUserId.
  Result<std::vector<EBookUserState>> UserStates(const Principal& caller, const std::string& book_id);
  // deviceStates: the managed devices of those users (all users, or only `user_id`'s:
  // userStateSummary/{id}/deviceStates), ordered by user then device id.
  Result<std::vector<EBookDeviceState>> DeviceStates(const Principal& caller, const std::string& book_id,
                                                     const std::optional<std::string>& user_id = std::nullopt);
  // The untracked-licences report of a book, as MobileApps::UntrackedLicenses
  // and ::UntrackedCounts for apps. NotFound as Get.
  Result<store::Store::UntrackedPage> UntrackedLicenses(const Principal& caller, const std::string& book_id,
                                                        std::int64_t cursor, std::int64_t limit);
  Result<std::map<std::string, std::int64_t>> UntrackedCounts(const Principal& caller,
                                                              const std::vector<std::string>& book_ids);

 private:
  Result<store::MobileApp> FindBook(const std::string& tenant_id, const std::string& id);
  Result<store::AppAssignment> Build(const std::string& tenant_id, const store::MobileApp& book,
                                     const store::AppAssignment& base, const EBookAssignmentChanges& changes,
                                     const std::string& where);
  void Changed(const std::string& tenant_id, const store::MobileApp& book);

  store::Store& store_;
  Options options_;
  Gate gate_;
  ReconcileTrigger* trigger_;
};

// Revoking VPP licences by app, person or device (issue 17; revoke.cc): Graph's
// revokeAllLicenses, revokeUserLicense and revokeDeviceLicense on an iosVppApp or
// macOsVppApp, and a managed device's revokeAppleVppLicenses. Each call checks
// everything first and then records its revokes (store::AppRevoke) in one write
// and queues the token's revokeAppLicenses job (sync/), or writes nothing: the
// job disassociates the licences at Apple and records the outcome on the app
// (revokeLicenseActionResults). Same admission rules as VppTokens. Failures:
//   - NotFound: the app (or a book, which is no mobileApp), the user (target
//     "userId") or the managed device (target "managedDeviceId") does not exist;
//   - InvalidArgument: the app is not one Apple lets vppd revoke (not revocable),
//     the user holds no licence of the app (as the last sync saw Apple) or the
//     device none (the last sync, or vppd's own grants since), the managed device
//     has no serial number; revokeAppleVppLicenses: it holds no licence at all.
// A revoke of a licence an assignment still gives (required/available with the
// licence type revoked) does not stick: the next reconcile grants it again, as in
// Intune, where removing the assignment is the prerequisite of a revoke.
class LicenseRevokes {
 public:
  LicenseRevokes(store::Store& store, Options options);

  // Every licence of the app: the holders the last sync saw; with
  // `revoke_untracked` also those Apple holds now that it did not see.
  // `platform` ("iOS", "macOS"; "" for either): the type the path casts the app to.
  Status RevokeAll(const Principal& caller, const std::string& app_id, const std::string& platform,
                   bool notify_managed_devices, bool revoke_untracked);
  // The user's licence of the app (at Apple: clientUserId = the user's id).
  Status RevokeUser(const Principal& caller, const std::string& app_id, const std::string& platform,
                    const std::string& user_id, bool notify_managed_devices);
  // The managed device's licence of the app (at Apple: its serial number).
  Status RevokeDevice(const Principal& caller, const std::string& app_id, const std::string& platform,
                      const std::string& managed_device_id, bool notify_managed_devices);
  // Every VPP licence of the managed device, on every token: one revoke per app.
  Status RevokeManagedDevice(const Principal& caller, const std::string& managed_device_id);
  // The revokes of each of `app_ids`, ordered by (app id, when asked): their
  // revokeLicenseActionResults. Admitted as reading mobileApps.
  Result<std::vector<store::AppRevoke>> ResultsOf(const Principal& caller, const std::vector<std::string>& app_ids);
  // A managed device's revokeAppleVppLicenses as Graph's deviceActionResults show
  // them: one per request (its revokes of every app together), oldest first.
  // Admitted as reading managed devices.
  struct DeviceRevokeResult {
    std::string action_state;  // pending | active (some app's revoke not ended) | failed (some failed) | done
    Timestamp start = 0, last_updated = 0;
    std::int32_t total_licenses = 0, failed_licenses = 0;
  };
  Result<std::vector<DeviceRevokeResult>> DeviceResults(const Principal& caller, const std::string& managed_device_id);

 private:
  Result<store::MobileApp> RevocableApp(const std::string& tenant_id, const std::string& app_id,
                                        const std::string& platform);
  Status Record(const std::string& tenant_id, std::vector<store::AppRevoke> revokes);

  store::Store& store_;
  Options options_;
  Gate gate_;
  Gate read_gate_;
  const Clock* clock_;
};

// The ReconcileTrigger of a running vppd: sync::RequestReconcile per token, then
// Options::on_job_queued (the engine's Wake).
class QueueingReconcileTrigger final : public ReconcileTrigger {
 public:
  QueueingReconcileTrigger(store::Store& store, Options options);
  void TokenNeedsReconcile(const std::string& tenant_id, const std::string& token_id) override;
  void TenantNeedsReconcile(const std::string& tenant_id) override;

 private:
  store::Store& store_;
  Options options_;
  const Clock* clock_;
};

// Tenant records, for the `vppd tenant` commands and dev mode.
class Tenants {
 public:
  explicit Tenants(store::Store& store) : store_(store) {}
  // Adds or replaces. InvalidArgument when `id` is not a GUID.
  Status Put(const std::string& id, const std::string& display_name, bool intune_licensed);
  Result<std::vector<store::Tenant>> List();
  Status SetLicense(const std::string& id, bool intune_licensed);  // NotFound
  Status Remove(const std::string& id);                            // NotFound

 private:
  store::Store& store_;
};

}  // namespace vppd::service

namespace vppd::service {

// Request-rate limits modelled on Intune's published Graph throttling: per tenant and
// per application within a tenant, separately for writes and for all requests, over
// a fixed window. State is in memory, per instance. Thread-safe.
struct ThrottleLimits {
  std::chrono::seconds window{20};
  int tenant_writes = 200;
  int app_writes = 100;  // per application per tenant
  int tenant_requests = 2000;
  int app_requests = 1000;  // per application per tenant
};

class Throttle {
 public:
  explicit Throttle(ThrottleLimits limits, const Clock* clock = nullptr);
  ~Throttle();
  // Counts one request. ResourceExhausted (with retry_after_seconds until the
  // window resets) when a limit is exceeded; a
  // refused request is not counted.
  Status Admit(const std::string& tenant_id, const std::string& app_id, bool is_write);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vppd::service

namespace vppd::service {

// ---------------------------------------------------------------------------
// Apple's notifications (issue 16; notifications.cc).
//
// Apple POSTs {"notification": {...}, "notificationId", "notificationType", "uId"}
// with `Authorization: Bearer <notificationAuthToken>` to the notificationUrl the
// sync registered for the location (sync::EnsureNotificationRegistration). The
// receiver checks and records; an applier thread does the work after the answer.
//
//   NotificationReceiver receiver(store, options);
//   Result<Receipt> r = receiver.Receive(location_key, authorization_header, body);
//   // 2xx only on success: the notification is in the store (or was already).

// The notification types vppd subscribes to and handles (TEST_NOTIFICATION is sent whatever one subscribes to).
inline constexpr const char* kNotificationTypes[] = {"ASSET_COUNT", "ASSET_MANAGEMENT", "USER_MANAGEMENT",
                                                     "USER_ASSOCIATED", "TEST_NOTIFICATION"};

// Apple's envelope, checked.
struct ParsedNotification {
  std::string notification_id;
  std::string type;  // one of kNotificationTypes
  std::string uid;   // the location's uId
  std::string body;  // the `notification` member, compact JSON
  // ASSET_COUNT only.
  std::string adam_id;
  std::string pricing_param;  // STDQ when Apple leaves it out
  std::int64_t count_delta = 0;
  // ASSET_MANAGEMENT only: how (part of) an event ended.
  std::string event_id;
  std::string event_type;                    // ASSOCIATE | DISASSOCIATE | REVOKE, as Apple sent it
  bool succeeded = false;                    // result SUCCESS; FAILURE: every assignment it names failed
  std::vector<std::string> serial_numbers;   // the assignments' serialNumbers, in order
  bool names_users = false;                  // some assignment names a clientUserId
  std::vector<std::string> client_user_ids;  // the assignments' clientUserIds, in order
  int error_number = 0;                      // a FAILURE's error (0 when Apple sent none)
  std::string error_message;
  // USER_MANAGEMENT (event_id, event_type CREATE | UPDATE | RETIRE, succeeded and
  // error_* as above) names its users; USER_ASSOCIATED its associatedUsers.
  struct User {
    std::string client_user_id, email, id_hash, invite_code, status;
  };
  std::vector<User> users;
};

// Most bytes of a notification's body: Apple sends at most 100 elements (an
// ASSET_MANAGEMENT of 100 assignments is ~15 KB).
inline constexpr std::size_t kMaxNotificationBytes = 256 * 1024;

// Parses Apple's envelope. InvalidArgument, saying what is wrong, for a body that
// is not a JSON object (or nested deeper than 16), a member missing or of the wrong
// type (notificationId, notificationType and uId: non-empty strings of at most 256
// characters; uId may be a number; notification: an object), a type not in
// kNotificationTypes, an ASSET_COUNT without adamId (string or integer) or
// countDelta (an integer within ±2,147,483,647), or an ASSET_MANAGEMENT without
// eventId, with a result other than SUCCESS or FAILURE, without type, or whose
// assignments (an array of at most 1,000 objects; serialNumber and clientUserId
// strings) or error (an object; errorNumber an integer, errorMessage a string)
// are malformed; a USER_MANAGEMENT as an ASSET_MANAGEMENT but with `users`
// instead of assignments; a USER_ASSOCIATED without associatedUsers. Users: an
// array of at most 1,000 objects, each with a clientUserId and optional email,
// idHash, inviteCode and status strings. Pure; never throws.
Result<ParsedNotification> ParseNotification(std::string_view body);

// True when `authorization` is "Bearer <token>" and SHA-256(token) is the
// endpoint's auth_hash, or its previous_auth_hash before previous_valid_until.
// Hashes before it compares, and compares in constant time.
bool BearerMatches(std::string_view authorization, const store::NotificationEndpoint& endpoint, Timestamp now);

struct NotificationOptions {
  const Clock* clock = nullptr;  // nullptr = Clock::Real()
  std::size_t max_body_bytes = kMaxNotificationBytes;
  // Recorded notifications are kept this long (the de-duplication window; Apple
  // retries for up to 5 minutes), then deleted.
  std::chrono::hours retention{24 * 7};
  std::function<void()> on_recorded;    // wakes the applier
  std::function<void()> on_job_queued;  // the applier queued a job (wakes the sync engine)
  int keep_action_results = 20;
  // An ASSET_MANAGEMENT about an event not in flight is kept pending this long
  // before it is ended as recorded: Apple may tell of an event before the
  // reconcile job has recorded it (Apple accepted the request moments before).
  std::chrono::seconds unknown_event_grace{30};
};

enum class Receipt {
  kRecorded,   // new: queued for the applier
  kDuplicate,  // its notificationId was recorded before: nothing done again
};

// Thread-safe.
class NotificationReceiver {
 public:
  NotificationReceiver(store::Store& store, NotificationOptions options);
  // PayloadTooLarge over max_body_bytes; Unauthenticated for a location key
  // that names no endpoint or a bearer that does not match (the same answer for
  // both); InvalidArgument as ParseNotification; PermissionDenied for a uId
  // that is not the location's; Unavailable when the store fails (Apple retries).
  // Logs each refusal with its reason, never the bearer or the body.
  Result<Receipt> Receive(const std::string& location_key, std::string_view authorization, std::string_view body);

 private:
  store::Store& store_;
  NotificationOptions options_;
  const Clock* clock_;
};

// Works through the recorded notifications (store state 'pending'), on a thread
// of its own, woken by Wake() and every second (another instance may have
// recorded some): ASSET_COUNT moves the app's counts (store::ApplyAssetCount; an
// inconsistent one queues a syncLicenses), TEST_NOTIFICATION is done,
// ASSET_MANAGEMENT settles the serials it names of the reconcile job's Apple
// event (store::CompleteAppleEvent with sync::EventOutcome, as a /status poll
// would: 'applied') and, once the event has ended, queues the token's reconcile;
// one about an event not in flight (the poll got there first, or not vppd's) is
// 'recorded', after unknown_event_grace for an ASSOCIATE or DISASSOCIATE; USER_*
// are kept as recorded. Deletes notifications older than the retention.
// Thread-safe; Stop() joins, the destructor calls it.
class NotificationApplier {
 public:
  NotificationApplier(store::Store& store, NotificationOptions options);
  ~NotificationApplier();
  void Start();
  void Stop();
  void Wake();
  // One round on the calling thread: how many notifications it ended.
  Result<int> RunOnce();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vppd::service
