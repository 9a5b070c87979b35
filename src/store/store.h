// Store: every durable fact vppd keeps, behind one interface.
//
// SQLite (embedded, default) and PostgreSQL (several instances on one database)
// implement it with the same semantics; callers do not know which. Every operation
// on tenant data takes the tenant id and scopes its SQL by it, so no caller can
// forget tenant isolation: an id of another tenant is simply NotFound.
//
// Thread-safety: a Store is shared by all request and sync threads; every method
// may be called concurrently. Each method is one transaction. The SQLite store
// has one writer connection (writes are serialised by a mutex, then SQLite's
// BEGIN IMMEDIATE) and a pool of reader connections; thanks to WAL, readers never
// wait for the writer and always see a committed snapshot. It also runs two
// threads of its own, stopped when it is destroyed: one deletes replaced
// assignment sets in small transactions (collect_garbage), one checkpoints the
// WAL on a connection of its own so that no caller's commit pays for that.
// The PostgreSQL store has a pool of connections (max_connections) shared by
// reads and writes; writes take row locks instead of one global lock, and a
// transaction that loses a race (serialization failure, deadlock) runs again,
// so a `mutate` callback may be called more than once, each time on freshly
// read data. Its collector thread works as SQLite's.
//
// Secrets: VppToken::token holds the plaintext sToken in memory only; the store
// seals it with the SecretBox it was opened with before it touches disk.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/base.h"
#include "store/query.h"

namespace vppd::store {

struct Tenant {
  std::string id;  // Entra tenant id (GUID text).
  std::string display_name;
  bool intune_licensed = false;  // The seed: Graph for Intune needs an active Intune license.
  Timestamp created = 0;
};

// One entry of vppToken.tokenActionResults. A revokeLicenses entry also carries the
// vppTokenRevokeLicensesActionResult fields (is_revoke_result).
struct TokenActionResult {
  std::string action_name;               // "syncLicenses", "revokeLicenses", ...
  std::string action_state = "pending";  // actionState member name.
  Timestamp start = 0;
  Timestamp last_updated = 0;
  bool is_revoke_result = false;
  std::string failure_reason = "none";  // vppTokenActionFailureReason member name.
  std::int32_t failed_licenses = 0;
  std::int32_t total_licenses = 0;
};

// A vppToken as stored. Enum-typed properties hold their Graph member names
// ("business", "valid", "inProgress", "default").
struct VppToken {
  std::string id;  // GUID, assigned by the store on create when empty.
  std::optional<std::string> organization_name;
  std::string account_type = "business";
  std::optional<std::string> apple_id;
  Timestamp expiration = 0;
  Timestamp last_sync = 0;  // 0 = never (the column holds kNeverSynced, store/query.h).
  // The plaintext sToken, only on the way in: CreateToken seals it, and UpdateToken
  // re-seals it when `mutate` sets it (a renewal). Reads leave it empty (the Graph
  // surface never shows it); GetTokenSecret opens it for the sync.
  std::string token;
  Timestamp last_modified = 0;
  std::string state = "unknown";
  std::vector<TokenActionResult> action_results;
  std::string last_sync_status = "none";
  bool automatically_update_apps = false;
  std::optional<std::string> country_or_region;
  bool data_sharing_consent_granted = false;
  std::optional<std::string> display_name;
  std::optional<std::string> location_name;
  bool claim_token_management_from_external_mdm = false;
  std::vector<std::string> role_scope_tag_ids;
  std::string delivery_protocol = "default";  // appleDeviceAppDeliveryProtocolType
  std::int32_t last_app_count = 0;
  // The entity's version, for its ETag: 1 when created, one more on every write
  // (every write changes lastModifiedDateTime, so every write is one Graph sees).
  // Set by the store; what `mutate` sets is ignored.
  std::int64_t row_version = 0;

  // Not on the Graph surface.
  std::optional<std::string> apple_uid;         // Apple's location uId, once synced.
  std::optional<std::string> apple_version_id;  // versionId of the last assignments walk (full or delta).
  Timestamp last_full_walk = 0;                 // When the last full assignments walk was applied.
  std::string last_sync_error;                  // Why the last sync failed (empty after a success).
  Timestamp created = 0;
};

// A VPP app as Graph shows it under /deviceAppManagement/mobileApps: one per Apple
// asset (adamId, pricingParam) and platform (an asset on iOS and macOS gives two).
// An app or a book of a token (product_type tells them apart: Graph shows apps as
// mobileApps and books as managedEBooks).
struct MobileApp {
  // Stable across syncs: sync::MobileAppId(token, adamId, pricingParam, platform), a
  // book's with "book" for the platform.
  std::string id;
  std::string token_id;
  std::string platform;  // "iOS" → #microsoft.graph.iosVppApp, "macOS" → #microsoft.graph.macOsVppApp
  std::string adam_id;
  std::string pricing_param;        // STDQ | PLUS
  std::string product_type;         // App | Book
  std::string display_name;         // From Apple's metadata lookup; "App <adamId>" ("Book <adamId>") when unknown.
  std::string bundle_id;            // From the metadata lookup; empty when unknown, and for books.
  std::string publisher;            // May be empty (books: the lookup's artistName).
  std::int64_t total_licenses = 0;  // Apple totalCount (unlimited: 2147483647).
  std::int64_t used_licenses = 0;   // Apple assignedCount.
  bool device_assignable = false;
  bool revocable = false;
  std::string app_store_url;  // https://apps.apple.com/{country}/app/id{adamId}
  // Copied from the token when the sync ran (Graph shows them on the app).
  std::optional<std::string> token_organization_name, token_apple_id, token_display_name;
  std::string token_account_type = "business";
  Timestamp created = 0, last_modified = 0;
  // Books only (from the metadata lookup; empty / nullopt for apps and when Apple gave none).
  std::vector<std::string> genres;
  std::optional<std::string> seller;
};

// --- the directory (users, groups, Entra devices, Intune managed devices) ---------
//
// The store's own names; graph/ maps Graph's properties onto them. Ids are GUID
// text, assigned by the store on create when empty.

struct User {
  std::string id;
  std::string user_principal_name;  // unique per tenant, case-insensitively
  std::optional<std::string> display_name, mail, given_name, surname, job_title;
  bool account_enabled = true;
  Timestamp created = 0, last_modified = 0;
};

struct Group {
  std::string id;
  std::string display_name;
  std::optional<std::string> description, mail_nickname;
  bool mail_enabled = false;
  bool security_enabled = true;
  std::vector<std::string> group_types;  // "Unified", "DynamicMembership"
  Timestamp created = 0, last_modified = 0;
};

// An Entra device object. `device_id` (unique per tenant) is the id a managed
// device's azure_ad_device_id names.
struct Device {
  std::string id;
  std::string device_id;
  std::optional<std::string> display_name, operating_system, operating_system_version;
  bool account_enabled = true;
  Timestamp created = 0, last_modified = 0;
};

// An Intune managed device. It is in a group when the group holds (directly or
// through nested groups) the Device whose device_id is its azure_ad_device_id.
struct ManagedDevice {
  std::string id;
  std::optional<std::string> serial_number, device_name, azure_ad_device_id, user_id, user_principal_name,
      operating_system, os_version, model;
  Timestamp created = 0, last_modified = 0;
};

enum class MemberKind { kUser, kDevice, kGroup };
std::string_view MemberKindName(MemberKind kind);  // "user", "device", "group"

// A direct member of a group, with its object (the one of `kind` is set).
struct GroupMember {
  std::string member_id;
  MemberKind kind = MemberKind::kUser;
  std::int64_t seq = 0;  // increases tenant-wide with every membership added
  Timestamp added = 0;
  std::optional<User> user;
  std::optional<Device> device;
  std::optional<Group> group;
};

// A managed device reached through a group (DeviceMembersOf), or by serial number.
struct GroupDevice {
  std::string managed_device_id, serial_number, device_name, user_id;
  std::int64_t seq = 0;  // its earliest membership seq in the groups asked about
};

// Rows of a bulk import (Store::Import*). Re-importing the same rows updates
// what the first import created instead of adding to it; the key of each kind is
// said by its function.
struct ImportedDevice {
  Device device;                         // keyed by device_id (required)
  std::optional<ManagedDevice> managed;  // keyed by serial_number (required when set); its
                                         // azure_ad_device_id is set to device.device_id
};
struct ImportedGroup {
  Group group;  // keyed by id when set, else by display_name
  // When set, the group's direct members become exactly these: each an object id
  // (user, device or group), a userPrincipalName or a device's device_id.
  std::optional<std::vector<std::string>> members;
};
struct ImportCounts {
  std::int64_t created = 0, updated = 0;
  std::int64_t members_added = 0, members_removed = 0;
};

// One license assignment at Apple: an asset given to a user (client_user_id) or a
// device (serial_number); exactly one of the two is non-empty.
struct LicenseAssignment {
  std::string adam_id;
  std::string pricing_param;
  std::string client_user_id;
  std::string serial_number;
  bool operator==(const LicenseAssignment&) const = default;
};

// Assignments to stage (Store::StageAssignments), kept compactly: every id in one
// string and a 16-byte record per row, the apps once each. A sync stages
// millions of rows; as LicenseAssignments each would cost an allocation (a
// client user id is longer than a short string) and a free on another thread.
class StagedAssignments {
 public:
  struct Row {
    std::uint32_t app;     // index into apps()
    std::uint32_t offset;  // of the id in the ids string
    std::uint32_t length;
    std::uint32_t kind;  // kUser (the id is a clientUserId), kDevice (a serialNumber), kInvalid
  };
  enum : std::uint32_t { kUser = 0, kDevice = 1, kInvalid = 2 };

  // Appends a row. A row without an adamId, or without exactly one of
  // client_user_id and serial_number, is kept as kInvalid: StageAssignments
  // rejects the whole batch, naming it.
  void Add(std::string_view adam_id, std::string_view pricing_param, std::string_view client_user_id,
           std::string_view serial_number);
  void Add(const LicenseAssignment& row) { Add(row.adam_id, row.pricing_param, row.client_user_id, row.serial_number); }
  void Append(const StagedAssignments& other);
  // Moves rows [from, size()) to the end of `out`, in order and as they are
  // (kinds included), leaving this batch with the rows before `from`. Its
  // apps() may then name an app no row uses: staging skips those.
  void MoveTailTo(std::size_t from, StagedAssignments& out);
  void Clear();
  void Reserve(std::size_t rows, std::size_t id_bytes);

  std::size_t size() const { return rows_.size(); }
  std::size_t id_bytes() const { return ids_.size(); }  // of all ids together
  bool empty() const { return rows_.empty(); }
  const std::vector<Row>& rows() const { return rows_; }
  // (adamId, pricingParam) of each app, in the order first added.
  const std::vector<std::pair<std::string, std::string>>& apps() const { return apps_; }
  std::string_view id(const Row& row) const { return std::string_view(ids_).substr(row.offset, row.length); }
  LicenseAssignment At(std::size_t i) const;

 private:
  std::uint32_t AppIndex(std::string_view adam_id, std::string_view pricing_param);

  std::vector<Row> rows_;
  std::string ids_;
  std::vector<std::pair<std::string, std::string>> apps_;
  void GrowAppSlots();

  // AppIndex's hash table (open addressing, linear probing): app index + 1 per
  // slot, 0 for a free one; a power of two, at most half full. Appending a
  // page of rows over every app (Apple documents no order) looks up hundreds
  // of apps a page, so a lookup must cost no allocation (bench/README.md, sync).
  std::vector<std::uint32_t> app_slots_;
  std::uint32_t last_app_ = 0;  // rows come grouped by app: checked first
};

// One mobileAppAssignment: an app given to a target (a group, the exclusion of a
// group, all devices, all licensed users) with an install intent. The strings
// hold what Graph names them, as the contract between graph/, service/ and sync/
// has it; the store checks only that they are not empty.
struct AppAssignment {
  std::string id;  // GUID, assigned by the store on create when empty.
  std::string app_id;
  std::string intent;       // required | available | uninstall | availableWithoutEnrollment
  std::string target_type;  // "#microsoft.graph.groupAssignmentTarget", "...exclusionGroupAssignmentTarget",
                            // "...allDevicesAssignmentTarget", "...allLicensedUsersAssignmentTarget"
  std::optional<std::string> group_id;  // the group targets' group; nullopt for all devices / all users
  std::string settings_json = "{}";     // the settings object as Graph shows it ("{}" when none)
  bool use_device_licensing = false;    // the settings' useDeviceLicensing, kept apart for the reconcile job
  Timestamp created = 0, last_modified = 0;
  bool operator==(const AppAssignment&) const = default;
};

// A token the scheduler may sync (Store::TokensDueForSync).
struct DueToken {
  std::string tenant_id;
  std::string token_id;
  Timestamp last_sync = 0;
  bool operator==(const DueToken&) const = default;
};

// A durable unit of background work on one token.
struct SyncJob {
  std::string id;  // GUID
  std::string tenant_id;
  std::string token_id;
  std::string kind;          // "syncLicenses" | "syncLicenseCounts" | "revokeLicenses"
  std::string params;        // JSON text for the kind (revokeLicenses: its body); may be empty.
  Timestamp requested = 0;   // When accepted.
  Timestamp not_before = 0;  // Not claimed before this time (scheduled, or handed back).
  int attempts = 0;          // Claims so far, the current one included.
  std::string lease_owner;   // Worker holding it; empty = queued.
  Timestamp lease_expires = 0;
  // Progress of the current attempt, as its worker last stored it (RenewLease);
  // 0 when queued. Shown by `vppd sync --wait`; nothing else depends on it.
  std::int64_t pages_walked = 0;        // Apple assignment pages walked
  std::int64_t pages_total = 0;         // pages of the walk (Apple's totalPages); 0 = not known yet
  std::int64_t assignments_staged = 0;  // assignment rows written to the staging set
};

// --- device licences vppd hands out (the reconcile job) -------------------------

// One licence of an asset on a device that vppd granted, is granting, could not
// grant, or is taking back, per (token, adamId, pricingParam, serial number).
struct DeviceLicense {
  std::string adam_id;
  std::string pricing_param;
  std::string serial_number;
  // pending: associate submitted (event in flight); granted: Apple completed it;
  // failed: not granted (error_code: Apple's error number, or "9709" with
  // "not enough licences" when vppd held it back itself); reclaimPending:
  // disassociate submitted; released: Apple completed the disassociate (kept
  // until a sync no longer shows the licence, so counts stay right).
  std::string state;
  std::string error_code;
  std::string error_message;
  std::string event_id;  // the Apple event that last changed it (in flight when pending/reclaimPending)
  std::string cause;     // why: "assigned", "leftScope", "deviceDeleted", "uninstall", "unassigned", ...
  Timestamp updated = 0;
  bool operator==(const DeviceLicense&) const = default;
};

// A directory change the reconcile's device pass has yet to look at
// (Store::ListReconcileChanges): a serial number whose managed devices changed,
// or "" for a change too wide to list. `gen` tells this change from a later
// one of the same serial.
struct ReconcileChange {
  std::string serial_number, gen;
  bool operator==(const ReconcileChange&) const = default;
};

// A managed device with its place in the directory (Store::DevicesOfSerials):
// the groups holding the Entra device it is enrolled as, directly or nested.
struct SerialDevice {
  std::string serial_number, managed_device_id, user_id;
  std::vector<std::string> group_ids;  // sorted
};

// One asset's device licence rows of a token, counted (Store::TallyDeviceLicenses).
struct DeviceLicenseTally {
  std::string adam_id, pricing_param;
  std::int64_t granted = 0, pending = 0, failed = 0, reclaim_pending = 0;  // rows by state
  // pending or reclaimPending, or granted since the time asked about: licences
  // vppd holds or is getting that a sync before that time may not have counted.
  std::int64_t held_since = 0;
  std::int64_t reclaimed_by_directory = 0;  // reclaimPending or released, cause leftScope/userDeleted
  std::int64_t not_enough = 0;              // failed 9709 (waiting for a licence)
};

// A device licence as Graph's deviceStatuses shows it (per app).
struct DeviceLicenseState {
  std::string serial_number, state /* pending|granted|failed|reclaimPending */, error_code, error_message;
  Timestamp updated = 0;
};

// A revoke Graph asked for on an app: revokeAllLicenses, revokeUserLicense,
// revokeDeviceLicense, or a managed device's revokeAppleVppLicenses (one per app
// the device holds a licence of). It is the request the token's
// "revokeAppLicenses" job works through (pending, active) and, once ended (done,
// failed), the app's revokeLicenseActionResults entry. The strings hold Graph's
// member names (actionState, vppTokenActionFailureReason), as TokenActionResult's.
struct AppRevoke {
  std::string id;  // GUID, assigned by AddAppRevokes when empty
  std::string token_id;
  std::string app_id;
  std::string adam_id, pricing_param;
  std::string action_name;  // revokeAllLicenses | revokeUserLicense | revokeDeviceLicense | revokeAppleVppLicenses
  std::string user_id;      // revokeUserLicense: the directory user (its clientUserId at Apple)
  std::string managed_device_id;  // revokeDeviceLicense, revokeAppleVppLicenses
  std::string serial_number;      // the managed device's serial number when the revoke was asked
  bool notify_managed_devices = false;
  bool revoke_untracked = false;         // revokeAllLicenses: also what Apple holds that the last sync did not see
  std::string action_state = "pending";  // pending | active | done | failed
  std::string failure_reason = "none";
  std::int32_t total_licenses = 0;
  std::int32_t failed_licenses = 0;
  std::string error;  // why it failed, for logs and `vppd`; "" when it did not
  Timestamp start = 0, last_updated = 0;
  std::int64_t seq = 0;  // set by the store: the order revokes were asked in
  bool operator==(const AppRevoke&) const = default;
};

// An event Apple accepted and vppd has not seen finish: an associate or
// disassociate of one asset, or a users/create or users/retire.
struct AppleEvent {
  std::string event_id;
  std::string kind;           // "associate" | "disassociate" | "createUsers" | "retireUsers"
  std::string adam_id;        // "" for the user kinds
  std::string pricing_param;  // "" for the user kinds
  std::int64_t serials = 0;   // how many serial numbers (user kinds: clientUserIds) it names
  Timestamp submitted = 0;
  Timestamp next_poll = 0;  // not polled (GET /status) before this
  std::int64_t polls = 0;
};

// How an Apple event ended (from GET /status or an ASSET_MANAGEMENT notification).
struct AppleEventOutcome {
  struct Failure {
    std::string serial_number;
    std::string client_user_id;  // a user event's (or a user licence's) subject; "" for a device's
    int error_number = 0;
    std::string error_message;
  };
  // Serials that failed, with Apple's error; every other serial of the event
  // succeeded. Apple's "already assigned" (9616) on an associate and "not
  // associated" (9619) on a disassociate are successes: the licence is where it
  // should be.
  std::vector<Failure> failures;
  // The event failed as a whole without naming serials (every serial failed).
  std::optional<Failure> all_failed;
  // Gave up on it (pending too long): its serials are as if never submitted.
  bool abandoned = false;
  // Set when the outcome is about these serials only (an ASSET_MANAGEMENT
  // notification names at most 100 of an event's serials, and one event may
  // send several): only their rows move. Unset: the whole event (GET /status).
  // An event of people's licences is named by clientUserIds here.
  std::optional<std::vector<std::string>> only_serials;
  // A users/create's invitation codes as Apple told them (USER_MANAGEMENT), by
  // clientUserId: kept on the rows the outcome makes Registered.
  std::map<std::string, std::string> invite_codes;
};

// --- Apple users (users/create, the person's invitation, users/retire) ---------

// A user registered at Apple for a location (users/create), as vppd last knew it.
struct AppleUser {
  std::string client_user_id;
  std::string user_id;  // the directory user vppd registered it for; "" when not vppd's
  std::string email;
  // creating (users/create in flight) | Registered (invitation not accepted yet) | Associated |
  // retiring (users/retire in flight) | Retired | failed (create refused; error_* say why)
  std::string status;
  std::string invite_code;                // while Registered
  std::string invite_url;                 // service config urls.invitationEmail with the code put in
  std::string id_hash;                    // once Associated
  std::string event_id;                   // the create/retire event in flight
  std::string error_code, error_message;  // the last refusal (e.g. the Apple Account already associated)
  Timestamp updated = 0;
  bool operator==(const AppleUser&) const = default;
};

// One row of UpdateAppleUsers: what was read (nothing: no row), what to write.
struct AppleUserUpdate {
  std::optional<AppleUser> before;
  AppleUser after;
};

// --- user licences vppd hands out (the reconcile job) ---------------------------

// One licence of an asset held by a person: an Apple assignment to a clientUserId
// (vppd registers a directory user at Apple under clientUserId = the user's id).
// Per (token, adamId, pricingParam, clientUserId); the states, errors, causes and
// events are DeviceLicense's.
struct UserLicense {
  std::string adam_id;
  std::string pricing_param;
  std::string client_user_id;
  std::string state;  // pending | granted | failed | reclaimPending | released
  std::string error_code;
  std::string error_message;
  std::string event_id;
  std::string cause;  // "assigned", "leftScope", "userDeleted", "uninstall", "unassigned", ...
  Timestamp updated = 0;
  bool operator==(const UserLicense&) const = default;
};

// A user licence as Graph's userStatuses shows it (per app).
struct UserLicenseState {
  std::string client_user_id, state /* pending|granted|failed|reclaimPending */, error_code, error_message;
  Timestamp updated = 0;
};

// A directory user reached through a group (UserMembersOf), or every user (AllUsers).
struct GroupUser {
  std::string user_id, user_principal_name, display_name, mail;  // mail: "" when none
  std::int64_t seq = 0;  // its earliest membership seq in the groups asked about (AllUsers: 0)
};

// What a finished sync writes, in the same transaction as the token's new state.
struct SyncSnapshot {
  std::vector<MobileApp> apps;  // The complete set of the token's apps (replaces the previous set).
  enum class Assignments {
    kKeep,               // Assignments untouched (syncLicenseCounts).
    kReplaceWithStaged,  // The token's assignments become exactly the staged rows (a full walk).
    // Staged rows are added to the existing set, duplicates ignored (a sinceVersionId
    // delta). Then for every app the number of stored assignments of its (adamId,
    // pricingParam) must equal its used_licenses; otherwise FinishJob fails with
    // FailedPrecondition whose message contains "delta inconsistent" and writes
    // nothing (the sync then walks everything).
    kMergeStaged,
  } assignments = Assignments::kKeep;
};

// Where Apple sends a token's notifications (client/config notificationUrl), and
// the hash of the bearer Apple sends with them (notificationAuthToken).
struct NotificationEndpoint {
  std::string tenant_id;
  std::string token_id;
  std::string location_key;  // the notificationUrl's last segment: random, names no tenant or token
  std::string apple_uid;     // the location's uId when registered: a notification's uId must be it
  std::string auth_hash;     // SHA-256 (hex) of the notificationAuthToken registered last
  // The hash before the last rotation, accepted until previous_valid_until
  // (Apple may still be retrying a delivery made with it); "" when none.
  std::string previous_auth_hash;
  Timestamp previous_valid_until = 0;
  Timestamp stoken_expiration = 0;  // the sToken it was registered for (a renewal rotates)
  std::string registration;         // URL base and types registered (a change registers again)
  Timestamp rotated = 0;
};

// A notification from Apple, recorded once it was accepted.
struct AppleNotification {
  std::string tenant_id;
  std::string token_id;
  std::string notification_id;  // Apple's; unique per token
  std::string type;             // ASSET_COUNT, ASSET_MANAGEMENT, USER_MANAGEMENT, USER_ASSOCIATED, TEST_NOTIFICATION
  std::string body;             // the envelope as received (JSON; the applier parses it again)
  Timestamp received = 0;
  // pending (queued for an applier), applied, covered (a sync that began reading
  // Apple after it arrived holds its change), resync (inconsistent: a sync was queued
  // instead), recorded (kept, nothing to apply yet).
  std::string state = "pending";
  Timestamp handled = 0;  // 0 while pending
};

// What ApplyAssetCount did.
enum class CountChange {
  kApplied,         // the app's total moved by the delta (unlimited apps: unchanged)
  kCovered,         // a sync that finished after the notification arrived holds the change: nothing moved
  kInconsistent,    // unknown asset, or a total below zero or below the licences used: nothing moved
  kDeferred,        // a sync of the token runs now: nothing written, try again after it
  kAlreadyHandled,  // not pending any more (another applier, another instance)
};

struct EnqueueOptions {
  std::string kind = "syncLicenses";
  std::string params;
  Timestamp not_before = 0;
  // A change the job must see (reconcile): when a job of this kind is already
  // queued it runs no later than not_before (its not_before is lowered); when one
  // is running, it runs once more after it finishes (FinishJob queues it again
  // instead of deleting it, ReleaseJob makes it due at once). Without it a queued
  // or running job simply absorbs the request.
  bool run_again = false;
};

// Most rows one StageAssignments call may carry (see StageAssignments).
inline constexpr std::size_t kMaxStagedRowsPerCall = 100000;

// Most tokens one tenant may hold, as Intune.
inline constexpr std::int64_t kMaxTokensPerTenant = 3000;

struct SqliteOptions {
  std::string path;  // The database file; its directory must exist.
  std::shared_ptr<const SecretBox> secrets;
  // How long a call waits for a connection or SQLite's write lock before it fails
  // with Unavailable, in milliseconds.
  int busy_timeout_ms = 5000;
  // Longest the statements of one call may run before SQLite interrupts them and the
  // call fails with DeadlineExceeded, in milliseconds (checked every ~1000 VM steps).
  int statement_timeout_ms = 10000;
  // Connections for reads, besides the one writer. WAL lets them read while the
  // writer commits.
  int reader_connections = 4;
  // Durability. WAL journaling means a committed transaction is in the WAL file
  // (written with write(2)) before the commit returns, so a killed process (kill -9,
  // crash) never loses it with either setting, and the file is never corrupted.
  // false (synchronous=NORMAL, the default) fsyncs only at checkpoints, so an OS
  // crash or power loss may lose the last commits (never consistency). true (FULL)
  // also fsyncs the WAL at every commit so those survive too, at the cost of an
  // fsync per commit (milliseconds on common disks, which would break the
  // syncLicenses p99 <= 10 ms target: bench/README.md), hence it is opt-in for
  // deployments that need power-loss durability.
  bool synchronous_full = false;
  // Time source for created/last_modified; nullptr means Clock::Real(). Must outlive the Store.
  const Clock* clock = nullptr;
  // The per-tenant token limit; tests lower it. Normally kMaxTokensPerTenant.
  std::int64_t max_tokens_per_tenant = kMaxTokensPerTenant;
  // A sync writes its assignments once, as a new set the token is then pointed at;
  // the replaced set (and one a walk abandoned: restart, hand-back, dead worker,
  // deleted token) is deleted afterwards by a background thread of the store, a
  // few thousand rows per short write transaction, and at open whatever a crash
  // left. false leaves that garbage in the file (tests that look at it); readers
  // never see it either way.
  bool collect_garbage = true;
};

// A PostgreSQL database shared by one or more vppd instances (see pg_store.cc).
struct PostgresOptions {
  // libpq's connection URL (postgresql://user@host:port/db?...) or key=value string.
  // Tables live in the connection's current schema (search_path).
  std::string url;
  std::shared_ptr<const SecretBox> secrets;
  // Most connections this instance opens at once (requests and syncs share them).
  int max_connections = 8;
  // How long a call waits for a free connection, or for a row lock another
  // transaction holds, before it fails with Unavailable, in milliseconds.
  int pool_wait_ms = 5000;
  // How long opening a connection may take before it fails with Unavailable
  // (libpq counts whole seconds, at least 2).
  int connect_timeout_ms = 5000;
  // Longest one statement may run before the server cancels it and the call
  // fails with DeadlineExceeded, in milliseconds.
  int statement_timeout_ms = 10000;
  // As SqliteOptions.
  const Clock* clock = nullptr;
  std::int64_t max_tokens_per_tenant = kMaxTokensPerTenant;
  bool collect_garbage = true;
};

// Errors every method may return besides those listed: Unavailable when the store
// stays busy past busy_timeout_ms or the disk fails (retry later), DeadlineExceeded
// when a statement runs past statement_timeout_ms, Internal on a corrupt file or a
// sealed token that does not open (tampered with, or another key).
class Store {
 public:
  // Opens (creating if needed) and migrates. Fails with FailedPrecondition when the
  // schema on disk is newer than this binary knows, or the file is another
  // application's SQLite database; InvalidArgument when `secrets` is null;
  // Unavailable when the file cannot be opened.
  static Result<std::unique_ptr<Store>> OpenSqlite(const SqliteOptions& options);
  // Connects and migrates (once, under an advisory lock, however many instances
  // start together). FailedPrecondition when the schema is newer than this binary
  // knows or holds another application's tables; InvalidArgument for bad options;
  // Unavailable when the server cannot be reached. Several Stores (processes) may
  // share one database: jobs are claimed with row locks and leases, so each runs
  // once and a token has one running job at a time across all of them.
  static Result<std::unique_ptr<Store>> OpenPostgres(const PostgresOptions& options);
  virtual ~Store() = default;

  // --- tenants -------------------------------------------------------------
  // Inserts the tenant, or updates display_name and intune_licensed of an existing
  // one (its objects and `created` are kept). created = now when 0 on insert.
  virtual Status PutTenant(const Tenant& tenant) = 0;
  virtual Result<Tenant> GetTenant(const std::string& tenant_id) = 0;  // NotFound
  virtual Result<std::vector<Tenant>> ListTenants() = 0;               // ordered by id
  // Removes the tenant and every object of it. NotFound when absent.
  virtual Status RemoveTenant(const std::string& tenant_id) = 0;

  // --- vppTokens (tenant-scoped) --------------------------------------------
  // Assigns id (when empty), created and last_modified. ResourceExhausted past
  // the tenant's token limit; NotFound when the tenant does not exist;
  // AlreadyExists when the tenant already has a token with the given id.
  virtual Result<VppToken> CreateToken(const std::string& tenant_id, VppToken token) = 0;
  virtual Result<VppToken> GetToken(const std::string& tenant_id, const std::string& id) = 0;  // NotFound
  // The query names columns of vpp_tokens (store/query.h); a column of another
  // table is InvalidArgument (the caller validates first, so it is a bug), as are
  // a literal of the wrong type, a filter nested deeper than 100 levels, skip < 0
  // or limit outside 0..100000. Null semantics and ordering are OData's (see
  // store/filter_sql.h); enums order by member name. Items are ordered by
  // order_by, then id.
  virtual Result<Page<VppToken>> ListTokens(const std::string& tenant_id, const ListQuery& query) = 0;
  virtual Result<std::int64_t> CountTokens(const std::string& tenant_id, const std::optional<Expr>& filter) = 0;
  // Read-modify-write in one transaction: loads the token, calls `mutate`, and
  // stores the result (stamping last_modified) unless `mutate` fails, whose error
  // is returned with nothing written. NotFound when absent. `id` and `created`
  // keep their stored values whatever `mutate` does. `mutate` runs while the
  // store's write lock is held: it must be quick and must not call the Store.
  // With `if_version` (the version of an If-Match ETag): a conditional write,
  // Aborted with nothing written unless the stored row_version is
  // `if_version`, checked in the write's own transaction, under its row lock
  // (no other write can come in between). NotFound comes first.
  virtual Result<VppToken> UpdateToken(const std::string& tenant_id, const std::string& id,
                                       const std::function<Status(VppToken&)>& mutate,
                                       std::optional<std::int64_t> if_version) = 0;
  Result<VppToken> UpdateToken(const std::string& tenant_id, const std::string& id,
                               const std::function<Status(VppToken&)>& mutate) {
    return UpdateToken(tenant_id, id, mutate, std::nullopt);
  }
  // NotFound; with `if_version`, Aborted as UpdateToken's.
  virtual Status DeleteToken(const std::string& tenant_id, const std::string& id,
                             std::optional<std::int64_t> if_version) = 0;
  Status DeleteToken(const std::string& tenant_id, const std::string& id) {
    return DeleteToken(tenant_id, id, std::nullopt);
  }
  // Also removes the token's apps, assignments, jobs and staged rows. The
  // assignments vanish from every read at once; their rows are deleted afterwards
  // by the store's background collector (see SqliteOptions::collect_garbage), so
  // the call is O(apps + jobs), not O(assignments).

  // --- apps and licenses (tenant-scoped) ------------------------------------
  // The query names columns of mobile_apps (store/query.h), the platform among
  // them; otherwise as ListTokens.
  virtual Result<Page<MobileApp>> ListApps(const std::string& tenant_id, const ListQuery& query) = 0;
  virtual Result<std::int64_t> CountApps(const std::string& tenant_id, const std::optional<Expr>& filter) = 0;
  virtual Result<MobileApp> GetApp(const std::string& tenant_id, const std::string& app_id) = 0;  // NotFound
  // The assignments of the app's (token, adamId, pricingParam), ordered by
  // (serial_number, client_user_id), `limit` rows from `skip` (limit+1 fetched for has_more).
  virtual Result<Page<LicenseAssignment>> ListAppAssignments(const std::string& tenant_id, const std::string& app_id,
                                                             std::int64_t skip, std::int64_t limit) = 0;
  // Every assignment of a token, in batches of at most `batch` rows (memory bounded),
  // in no promised order. The walk reads the set the token had when it began;
  // FailedPrecondition when a sync replaces that set before the walk ends (walk
  // again), and the walk just ends when the token is deleted meanwhile. NotFound
  // when the token does not exist.
  virtual Status ForEachAssignment(const std::string& tenant_id, const std::string& token_id, std::size_t batch,
                                   const std::function<Status(const std::vector<LicenseAssignment>&)>& on_batch) = 0;
  // The tenant's apps whose bundle id is `bundle_id` (or, when none has it, whose
  // adamId is `bundle_id`), across tokens, ordered by token id.
  virtual Result<std::vector<MobileApp>> FindAppsByBundleId(const std::string& tenant_id,
                                                            const std::string& bundle_id) = 0;
  // The tenant's tokens other than `except_token_id` whose apple_uid is `uid`.
  virtual Result<std::vector<VppToken>> FindTokensByAppleUid(const std::string& tenant_id, const std::string& uid,
                                                             const std::string& except_token_id) = 0;
  // The plaintext sToken of a token (the sync needs it; nothing else does). NotFound.
  virtual Result<std::string> GetTokenSecret(const std::string& tenant_id, const std::string& id) = 0;

  // --- app assignments (mobileAppAssignment; tenant-scoped) ---------------------
  // An app's assignments go with it: deleting the app (a sync that no longer finds
  // it, its token deleted, the tenant removed) deletes them. Lists are ordered by
  // (app_id, id).
  //
  // Inserts the assignment of assignment.app_id, assigning id (when empty),
  // created and last_modified. NotFound when the app does not exist;
  // AlreadyExists when the tenant has an assignment with that id; InvalidArgument
  // when app_id, intent or target_type is empty.
  virtual Result<AppAssignment> CreateAppAssignment(const std::string& tenant_id, AppAssignment assignment) = 0;
  // NotFound when the app, or an assignment `id` of that app, does not exist.
  virtual Result<AppAssignment> GetAppAssignment(const std::string& tenant_id, const std::string& app_id,
                                                 const std::string& id) = 0;
  // The app's assignments; NotFound when the app does not exist.
  virtual Result<std::vector<AppAssignment>> ListAssignmentsOfApp(const std::string& tenant_id,
                                                                  const std::string& app_id) = 0;
  // The assignments of any of `app_ids` (a page of apps, for $expand and
  // isAssigned), one read; ids of no app have none.
  virtual Result<std::vector<AppAssignment>> ListAssignmentsOfApps(const std::string& tenant_id,
                                                                   const std::vector<std::string>& app_ids) = 0;
  // Every assignment of every app of the token: what the reconcile job reads. A
  // token that does not exist has none.
  virtual Result<std::vector<AppAssignment>> ListAssignmentsOfToken(const std::string& tenant_id,
                                                                    const std::string& token_id) = 0;
  // Whether the app has any assignment (Graph's isAssigned). NotFound when the
  // app does not exist.
  virtual Result<bool> IsAppAssigned(const std::string& tenant_id, const std::string& app_id) = 0;
  // Read-modify-write in one transaction, as UpdateToken: `mutate` sees the stored
  // assignment; id, app_id and created keep their stored values, last_modified is
  // stamped. NotFound as GetAppAssignment; `mutate`'s error is returned with
  // nothing written; InvalidArgument as CreateAppAssignment.
  virtual Result<AppAssignment> UpdateAppAssignment(const std::string& tenant_id, const std::string& app_id,
                                                    const std::string& id,
                                                    const std::function<Status(AppAssignment&)>& mutate) = 0;
  // NotFound as GetAppAssignment.
  virtual Status DeleteAppAssignment(const std::string& tenant_id, const std::string& app_id,
                                     const std::string& id) = 0;
  // Graph's assign action: the app's assignments become exactly `assignments`
  // (their app_id is set to `app_id`; ids, created and last_modified as
  // CreateAppAssignment's), in one transaction: on any failure (NotFound for the
  // app, AlreadyExists for an id given twice or held by another app,
  // InvalidArgument) nothing is written. Returns them as stored.
  virtual Result<std::vector<AppAssignment>> ReplaceAppAssignments(const std::string& tenant_id,
                                                                   const std::string& app_id,
                                                                   std::vector<AppAssignment> assignments) = 0;

  // --- sync jobs: durable, coalesced -----------------------------------------
  struct Enqueued {
    VppToken token;
    bool queued = false;  // false: a job of this kind was already queued or running (coalesced)
  };
  // One transaction: loads the token (NotFound); unless a job of options.kind is
  // already queued or running for it, inserts one and applies `mutate` to the token
  // (e.g. lastSyncStatus=inProgress and a pending tokenActionResults entry), stamping
  // last_modified. If mutate fails nothing is written.
  virtual Result<Enqueued> EnqueueJob(const std::string& tenant_id, const std::string& token_id,
                                      const EnqueueOptions& options,
                                      const std::function<Status(VppToken&)>& mutate) = 0;
  // Across tenants: claims the oldest job (by requested) with not_before <= now that
  // is queued, or running under an expired lease (its worker died), skipping tokens
  // that have another job running under a live lease (one job per token at a time).
  // Sets lease_owner = worker, lease_expires = now + lease, attempts += 1, and the
  // progress fields to 0. nullopt when nothing is claimable.
  virtual Result<std::optional<SyncJob>> ClaimJob(const std::string& worker, Timestamp now,
                                                  std::chrono::milliseconds lease) = 0;
  // Extends the lease and stores the job's progress fields (pages_walked,
  // pages_total, assignments_staged). FailedPrecondition when the job is gone or another worker
  // owns it.
  virtual Status RenewLease(const SyncJob& job, Timestamp lease_expires) = 0;
  // Hands a job back unfinished (shutdown, a store hiccup): lease cleared, not_before
  // set, staged rows dropped. FailedPrecondition when the lease is no longer ours.
  virtual Status ReleaseJob(const SyncJob& job, Timestamp not_before) = 0;
  // Jobs queued or running, all tenants (metrics, tests).
  virtual Result<std::int64_t> CountJobs() = 0;
  // The token's jobs queued or running (at most one per kind), oldest first, with
  // their stored progress; empty when none (a finished job is deleted: its outcome
  // is on the token). A token that does not exist has none.
  virtual Result<std::vector<SyncJob>> FindJobs(const std::string& tenant_id, const std::string& token_id) = 0;

  // --- snapshots ---------------------------------------------------------------
  // Appends rows to the job's staging area in short transactions of its own (the
  // sync stages page by page, so memory stays bounded). Rows are written where
  // they will stay: FinishJob does not copy them again. Duplicates (within the
  // call or of rows this walk staged before) are gone by the time FinishJob
  // applies the set. Readers never see staged rows.
  // InvalidArgument for more than kMaxStagedRowsPerCall rows or a row without an adamId or
  // without exactly one of clientUserId and serialNumber (nothing written);
  // FailedPrecondition when the job's lease is no longer the caller's.
  // Cost: SQLite keeps what one call brings for an app as one sorted run of
  // chunks (store/assignment_chunks.h); an app staged in several
  // calls costs FinishJob a merge of its runs, so callers should hand over whole
  // apps where they can (the sync does). PostgreSQL writes a row per assignment.
  virtual Status StageAssignments(const SyncJob& job, const StagedAssignments& rows) = 0;
  // The same for rows as structs (tests, tools): converted, then staged.
  Status StageAssignments(const SyncJob& job, const std::vector<LicenseAssignment>& rows);
  // Drops the job's staged rows (a walk restarts). O(1): they are collected later.
  virtual Status ClearStaged(const SyncJob& job) = 0;
  // Finishes the job in ONE transaction: checks the lease is still ours
  // (FailedPrecondition otherwise, nothing written); applies `snapshot` when given;
  // applies `mutate` to the token and stamps last_modified; deletes the job and its
  // staged rows. When the token was deleted meanwhile: deletes the job and staging
  // and returns NotFound. Readers see the previous snapshot or the new one.
  // Cost: kReplaceWithStaged repoints the token at the staged set, O(1) whatever
  // its size (the replaced set is collected in the background), after merging
  // the runs of apps staged in several calls (SQLite; in transactions of their
  // own, before the swap); kMergeStaged adds the staged rows to the token's set
  // (SQLite: moves the delta's chunks, O(delta); PostgreSQL: copies rows) and
  // checks the counts per app; both also write the token's apps that changed.
  virtual Result<VppToken> FinishJob(const SyncJob& job, const std::optional<SyncSnapshot>& snapshot,
                                     const std::function<Status(VppToken&)>& mutate) = 0;
  // Tokens with state 'valid', last_sync before `before`, and no sync job (syncLicenses or syncLicenseCounts)
  // queued or running: a reconcile's job does not hold the sync back. Oldest last_sync first, at most `limit`.
  virtual Result<std::vector<DueToken>> TokensDueForSync(Timestamp before, int limit) = 0;

  // --- the directory (tenant-scoped) ----------------------------------------------
  // Create: assigns id (when empty), created and last_modified; NotFound when the
  // tenant does not exist; AlreadyExists for an id already taken, a
  // userPrincipalName taken (case-insensitively) or a device_id taken.
  // Get/Update/Delete: NotFound (naming the id) when absent in this tenant.
  // Update is UpdateToken's read-modify-write: `mutate` runs under the write lock,
  // id and created keep their stored values, last_modified is stamped; the same
  // uniqueness as Create. Delete also removes the object's memberships (a group:
  // its members' rows and its rows in other groups).
  // List/Count: the query names columns of its table (store/query.h), otherwise
  // as ListTokens.
  virtual Result<User> CreateUser(const std::string& tenant_id, User user) = 0;
  virtual Result<User> GetUser(const std::string& tenant_id, const std::string& id) = 0;
  virtual Result<Page<User>> ListUsers(const std::string& tenant_id, const ListQuery& query) = 0;
  virtual Result<std::int64_t> CountUsers(const std::string& tenant_id, const std::optional<Expr>& filter) = 0;
  virtual Result<User> UpdateUser(const std::string& tenant_id, const std::string& id,
                                  const std::function<Status(User&)>& mutate) = 0;
  virtual Status DeleteUser(const std::string& tenant_id, const std::string& id) = 0;

  virtual Result<Group> CreateGroup(const std::string& tenant_id, Group group) = 0;
  virtual Result<Group> GetGroup(const std::string& tenant_id, const std::string& id) = 0;
  virtual Result<Page<Group>> ListGroups(const std::string& tenant_id, const ListQuery& query) = 0;
  virtual Result<std::int64_t> CountGroups(const std::string& tenant_id, const std::optional<Expr>& filter) = 0;
  virtual Result<Group> UpdateGroup(const std::string& tenant_id, const std::string& id,
                                    const std::function<Status(Group&)>& mutate) = 0;
  virtual Status DeleteGroup(const std::string& tenant_id, const std::string& id) = 0;
  virtual Result<bool> GroupExists(const std::string& tenant_id, const std::string& group_id) = 0;

  virtual Result<Device> CreateDevice(const std::string& tenant_id, Device device) = 0;
  virtual Result<Device> GetDevice(const std::string& tenant_id, const std::string& id) = 0;
  virtual Result<Page<Device>> ListDevices(const std::string& tenant_id, const ListQuery& query) = 0;
  virtual Result<std::int64_t> CountDevices(const std::string& tenant_id, const std::optional<Expr>& filter) = 0;
  virtual Result<Device> UpdateDevice(const std::string& tenant_id, const std::string& id,
                                      const std::function<Status(Device&)>& mutate) = 0;
  virtual Status DeleteDevice(const std::string& tenant_id, const std::string& id) = 0;

  virtual Result<ManagedDevice> CreateManagedDevice(const std::string& tenant_id, ManagedDevice device) = 0;
  virtual Result<ManagedDevice> GetManagedDevice(const std::string& tenant_id, const std::string& id) = 0;
  virtual Result<Page<ManagedDevice>> ListManagedDevices(const std::string& tenant_id, const ListQuery& query) = 0;
  virtual Result<std::int64_t> CountManagedDevices(const std::string& tenant_id, const std::optional<Expr>& filter) = 0;
  virtual Result<ManagedDevice> UpdateManagedDevice(const std::string& tenant_id, const std::string& id,
                                                    const std::function<Status(ManagedDevice&)>& mutate) = 0;
  virtual Status DeleteManagedDevice(const std::string& tenant_id, const std::string& id) = 0;

  // Adds the object `member_id` (a user, device or group of the tenant, looked up
  // in that order) to the group. NotFound naming the group, or the member, when
  // absent; AlreadyExists when it is a member already; InvalidArgument for the
  // group itself. Cycles through other groups are allowed.
  virtual Result<GroupMember> AddGroupMember(const std::string& tenant_id, const std::string& group_id,
                                             const std::string& member_id) = 0;
  // NotFound naming the group, or the member when it is not a direct member.
  virtual Status RemoveGroupMember(const std::string& tenant_id, const std::string& group_id,
                                   const std::string& member_id) = 0;
  // The group's direct members, earliest membership first (seq), `limit` from
  // `skip`, each with its object. NotFound naming the group.
  virtual Result<Page<GroupMember>> ListGroupMembers(const std::string& tenant_id, const std::string& group_id,
                                                     std::int64_t skip, std::int64_t limit) = 0;
  virtual Result<std::int64_t> CountGroupMembers(const std::string& tenant_id, const std::string& group_id) = 0;

  // Managed devices with a serial number that are members of any of `group_ids`,
  // directly or through nested groups (cycles allowed), each once, ordered by
  // (seq, managed_device_id). Unknown groups contribute none.
  virtual Result<std::vector<GroupDevice>> DeviceMembersOf(const std::string& tenant_id,
                                                           const std::vector<std::string>& group_ids) = 0;
  // Every managed device with a serial number (seq = 0), ordered by id.
  virtual Result<std::vector<GroupDevice>> AllManagedDevices(const std::string& tenant_id) = 0;
  // The managed devices whose serial number is one of `serials`, ordered by
  // (serial_number, id) (a serial re-enrolled may have several).
  virtual Result<std::vector<GroupDevice>> ManagedDevicesBySerial(const std::string& tenant_id,
                                                                  const std::vector<std::string>& serials) = 0;

  // Bulk import, each call ONE transaction (all rows or none), in time linear in
  // the rows (SQLite: prepared statements reused; PostgreSQL: a few statements
  // per chunk of rows, by unnest). Re-importing updates instead of duplicating:
  // users are keyed by userPrincipalName (case-insensitively), devices by
  // device_id and managed devices by serial_number, groups by id when given, else
  // by display_name. InvalidArgument naming the row (0-based index in `rows`,
  // as target) when rows repeat a key or a group's member cannot be resolved;
  // NotFound when the tenant does not exist. Times are stamped by the store.
  virtual Result<ImportCounts> ImportUsers(const std::string& tenant_id, const std::vector<User>& rows) = 0;
  virtual Result<ImportCounts> ImportDevices(const std::string& tenant_id, const std::vector<ImportedDevice>& rows) = 0;
  virtual Result<ImportCounts> ImportGroups(const std::string& tenant_id, const std::vector<ImportedGroup>& rows) = 0;

  // --- device licences (reconcile) ----------------------------------------------
  // Every device licence row of the token (released ones included), ordered by
  // (adam_id, pricing_param, serial_number). A token that does not exist has none.
  virtual Result<std::vector<DeviceLicense>> ListDeviceLicenses(const std::string& tenant_id,
                                                                const std::string& token_id) = 0;
  // Upserts these rows of the token and deletes the serials in `remove` (by
  // adamId, pricingParam, serial), in one transaction. NotFound when the token is gone.
  virtual Status PutDeviceLicenses(const std::string& tenant_id, const std::string& token_id,
                                   const std::vector<DeviceLicense>& rows,
                                   const std::vector<DeviceLicense>& remove) = 0;
  // An event Apple accepted: records it and, in the same transaction, sets its
  // serials' rows (upserted) to pending (associate) or reclaimPending
  // (disassociate) with its event id and `cause`. For the user kinds
  // (createUsers, retireUsers) `serials` are clientUserIds whose Apple user
  // rows (written before the request: PutAppleUsers) become creating or
  // retiring with its event id; `cause` is not used. NotFound when the token is
  // gone; InvalidArgument for another kind or an empty id.
  virtual Status RecordAppleEvent(const std::string& tenant_id, const std::string& token_id, const AppleEvent& event,
                                  const std::vector<std::string>& serials, const std::string& cause) = 0;
  // The token's events in flight, ordered by (next_poll, event_id).
  virtual Result<std::vector<AppleEvent>> ListAppleEvents(const std::string& tenant_id,
                                                          const std::string& token_id) = 0;
  // A poll found it still pending: the next poll not before `next_poll`. NotFound.
  virtual Status DeferAppleEvent(const std::string& tenant_id, const std::string& token_id, const std::string& event_id,
                                 Timestamp next_poll) = 0;
  // The event ended (polled, or a notification said so: issue 16 calls this):
  // its serials' rows move on — associate: granted, or failed with the error;
  // disassociate: released, or back to granted with the error (the reclaim is
  // tried again) — and the event is forgotten, in one transaction. With
  // outcome.only_serials only those serials' rows move, and the event is
  // forgotten once none of its rows is left in flight. A user event's rows move
  // by client_user_id: createUsers → Registered (Apple's 9716, the clientUserId
  // exists already, counts as done), or failed with the error; retireUsers →
  // Retired (9618/9620, already retired or deleted, count as done), or back to
  // retiring without an event (sent again) with the error; abandoned → creating
  // or retiring without an event (sent again). NotFound when the event
  // is not in flight (already completed, or unknown).
  virtual Status CompleteAppleEvent(const std::string& tenant_id, const std::string& token_id,
                                    const std::string& event_id, const AppleEventOutcome& outcome) = 0;
  // The device licences of an app (its token, adamId and pricingParam), released
  // ones left out, ordered by serial number. NotFound when the app does not exist.
  virtual Result<std::vector<DeviceLicenseState>> DeviceLicenseStates(const std::string& tenant_id,
                                                                      const std::string& app_id) = 0;
  // The last reconciliation's report of a token (JSON text, see sync/reconcile.cc),
  // and when it was written; an empty text when the token was never reconciled.
  virtual Status PutReconcileReport(const std::string& tenant_id, const std::string& token_id,
                                    const std::string& report_json) = 0;
  virtual Result<std::pair<std::string, Timestamp>> GetReconcileReport(const std::string& tenant_id,
                                                                       const std::string& token_id) = 0;
  // --- directory changes for the reconcile (reconcile_changes_sql.cc) -----------------
  // Every write to the directory notes, for each token of the tenant, the serial
  // numbers whose managed devices it may have moved in or out of an assignment's
  // reach (membership of an Entra device, a device's deviceId, a managed device's
  // serial, azureADDeviceId or user), or "everything" when it cannot list them
  // (a group deleted, a nested group's membership, a large import). These read
  // and forget them. At most `limit` changes, ordered by serial ("" first); more
  // than `limit` pending reads as limit + 1 of them.
  virtual Result<std::vector<ReconcileChange>> ListReconcileChanges(const std::string& tenant_id,
                                                                    const std::string& token_id, std::size_t limit) = 0;
  // Notes serial numbers the token's next pass must decide again although the
  // directory did not change (a licence taken back outside the reconcile).
  virtual Status NoteReconcileChanges(const std::string& tenant_id, const std::string& token_id,
                                      const std::vector<std::string>& serials) = 0;
  // Forgets these changes, each only if no later change of its serial replaced it.
  virtual Status ClearReconcileChanges(const std::string& tenant_id, const std::string& token_id,
                                       const std::vector<ReconcileChange>& changes) = 0;
  // The managed devices with one of these serial numbers, with their groups.
  virtual Result<std::vector<SerialDevice>> DevicesOfSerials(const std::string& tenant_id,
                                                             const std::vector<std::string>& serials) = 0;
  // The token's device licence rows of these serial numbers (any asset, released
  // ones included), ordered as ListDeviceLicenses.
  virtual Result<std::vector<DeviceLicense>> DeviceLicensesOfSerials(const std::string& tenant_id,
                                                                     const std::string& token_id,
                                                                     const std::vector<std::string>& serials) = 0;
  // Per asset, the token's device licence rows counted (DeviceLicenseTally;
  // held_since counts rows granted after `since`). The store keeps the answer
  // and gives it again, without reading the rows, until one of the token's
  // device licence rows is written or `since` differs.
  virtual Result<std::vector<DeviceLicenseTally>> TallyDeviceLicenses(const std::string& tenant_id,
                                                                      const std::string& token_id, Timestamp since) = 0;
  // --- Apple users (apple_users_sql.cc) -----------------------------------------------
  // Every Apple user row of the token, ordered by client_user_id. A token that
  // does not exist has none.
  virtual Result<std::vector<AppleUser>> ListAppleUsers(const std::string& tenant_id, const std::string& token_id) = 0;
  // The token's rows of these clientUserIds (the ones it has), ordered by client_user_id.
  virtual Result<std::vector<AppleUser>> AppleUsersNamed(const std::string& tenant_id, const std::string& token_id,
                                                         const std::vector<std::string>& client_user_ids) = 0;
  // Upserts these rows (by client_user_id) in one transaction, whatever is
  // stored: for copies (migrate-store) and set-ups. `updated` 0 is stamped with
  // the store's clock. NotFound when the token is gone; InvalidArgument (nothing
  // written) for a row without client_user_id or status.
  virtual Status PutAppleUsers(const std::string& tenant_id, const std::string& token_id,
                               const std::vector<AppleUser>& rows) = 0;
  // Writes each `after` only if the stored row is still exactly `before` (no row
  // stored when `before` is empty), in one transaction: the reconcile and
  // Apple's notifications both move these rows, each from what it read, and
  // neither may undo the other's newer word (an acceptance overwritten by a
  // stale Registered). Returns the clientUserIds left alone because their row
  // changed since: the caller reads again. `updated` 0 is stamped with the
  // store's clock. NotFound when the token is gone; InvalidArgument (nothing
  // written) for an `after` without client_user_id or status, or whose
  // client_user_id differs from `before`'s.
  virtual Result<std::vector<std::string>> UpdateAppleUsers(const std::string& tenant_id, const std::string& token_id,
                                                            const std::vector<AppleUserUpdate>& updates) = 0;
  // Every location's Apple user registered for a directory user: (token_id,
  // AppleUser), ordered by (token_id, client_user_id).
  virtual Result<std::vector<std::pair<std::string, AppleUser>>> AppleUsersOfUser(const std::string& tenant_id,
                                                                                  const std::string& user_id) = 0;
  // The versionId of the token's last GET /users walk (for sinceVersionId); ""
  // when none. Put: NotFound when the token is gone.
  virtual Result<std::string> GetAppleUsersVersion(const std::string& tenant_id, const std::string& token_id) = 0;
  virtual Status PutAppleUsersVersion(const std::string& tenant_id, const std::string& token_id,
                                      const std::string& version_id) = 0;

  // --- user licences (reconcile; user_licenses_sql.cc) -----------------------------
  // Every user licence row of the token (released ones included), ordered by
  // (adam_id, pricing_param, client_user_id). A token that does not exist has none.
  virtual Result<std::vector<UserLicense>> ListUserLicenses(const std::string& tenant_id,
                                                            const std::string& token_id) = 0;
  // Upserts these rows of the token and deletes those in `remove` (by adamId,
  // pricingParam, clientUserId), in one transaction. NotFound when the token is gone.
  virtual Status PutUserLicenses(const std::string& tenant_id, const std::string& token_id,
                                 const std::vector<UserLicense>& rows, const std::vector<UserLicense>& remove) = 0;
  // An associate or disassociate of clientUserIds Apple accepted: RecordAppleEvent
  // for users. The event is recorded (apple_events, its `serials` counting the
  // users) and its users' rows are set to pending / reclaimPending with its id and
  // `cause`, in one transaction. CompleteAppleEvent settles them as it settles
  // serials (failures name client_user_id). NotFound when the token is gone.
  virtual Status RecordUserLicenseEvent(const std::string& tenant_id, const std::string& token_id,
                                        const AppleEvent& event, const std::vector<std::string>& client_user_ids,
                                        const std::string& cause) = 0;
  // The user licences of an app (its token, adamId and pricingParam), released
  // ones left out, ordered by client user id. NotFound when the app does not exist.
  virtual Result<std::vector<UserLicenseState>> UserLicenseStates(const std::string& tenant_id,
                                                                  const std::string& app_id) = 0;
  // Users that are members of any of `group_ids`, directly or through nested
  // groups (cycles allowed), each once, ordered by (seq, user id): earliest
  // membership first, as DeviceMembersOf. Unknown groups contribute none.
  virtual Result<std::vector<GroupUser>> UserMembersOf(const std::string& tenant_id,
                                                       const std::vector<std::string>& group_ids) = 0;
  // Every user of the tenant (seq = 0), ordered by id (allLicensedUsersAssignmentTarget).
  virtual Result<std::vector<GroupUser>> AllUsers(const std::string& tenant_id) = 0;

  // --- untracked licences: Apple's holders vppd did not grant (untracked_sql.cc) ------
  // An app's (or book's) licences Apple held at the last sync (its assignments)
  // whose serial number has no device licence row of the app, or whose
  // clientUserId no user licence row, in a state other than failed: another
  // MDM's, or handed out before vppd. The reconcile leaves them alone.
  struct UntrackedPage {
    std::vector<LicenseAssignment> items;  // in Graph's order (serial_number, client_user_id)
    std::optional<std::int64_t> next;      // the cursor of the next page; nullopt: this was the last
  };
  // Most of Apple's holders one ListUntrackedLicenses call reads: a page that
  // reaches it ends there, maybe short or empty, with `next` set.
  static constexpr std::int64_t kUntrackedScanRows = 100'000;
  // A page of them: at most `limit` (1..100000) found from `cursor` (0 first,
  // then the page's `next`: a position in the app's assignments), in one read
  // transaction. NotFound when the app does not exist; InvalidArgument for a
  // negative cursor or a limit out of range.
  virtual Result<UntrackedPage> ListUntrackedLicenses(const std::string& tenant_id, const std::string& app_id,
                                                      std::int64_t cursor, std::int64_t limit) = 0;
  // How many each of `app_ids` has, in one read transaction; ids of no app are
  // left out. An app vppd granted nothing of costs one read of its count; the
  // others a read of all their holders.
  virtual Result<std::map<std::string, std::int64_t>> CountUntrackedLicenses(
      const std::string& tenant_id, const std::vector<std::string>& app_ids) = 0;

  // --- licence revokes by app, user or device (revoke_sql.cc) ----------------------
  // Records `revokes` in one transaction (all or none), each with its id (a new
  // GUID when empty), start and last_updated stamped now, and a seq after every
  // earlier one; returns them as stored. NotFound (naming it) when a token is
  // gone. Then drops each app's ended revokes beyond its newest `keep` (> 0).
  virtual Result<std::vector<AppRevoke>> AddAppRevokes(const std::string& tenant_id, std::vector<AppRevoke> revokes,
                                                       int keep) = 0;
  // The token's revokes not ended (pending or active), in the order asked.
  virtual Result<std::vector<AppRevoke>> OpenAppRevokes(const std::string& tenant_id, const std::string& token_id) = 0;
  // Stores the outcome fields of revoke `revoke.id` (action_state,
  // failure_reason, total/failed licences, error), stamping last_updated.
  // NotFound when it is gone (its token deleted).
  virtual Status UpdateAppRevoke(const std::string& tenant_id, const AppRevoke& revoke) = 0;
  // The revokeAppleVppLicenses revokes of the managed device (one per app it
  // held; those asked together share `start`), ordered by seq.
  virtual Result<std::vector<AppRevoke>> AppRevokesOfDevice(const std::string& tenant_id,
                                                            const std::string& managed_device_id) = 0;
  // The revokes of each of `app_ids` (unknown ids have none), ordered by
  // (app_id, seq): the apps' revokeLicenseActionResults.
  virtual Result<std::vector<AppRevoke>> AppRevokesOf(const std::string& tenant_id,
                                                      const std::vector<std::string>& app_ids) = 0;
  // Every revoke of the token (open and ended), ordered by seq: what `vppd
  // migrate-store` copies.
  virtual Result<std::vector<AppRevoke>> ListAppRevokes(const std::string& tenant_id, const std::string& token_id) = 0;

  // --- Apple's notifications (notifications_sql.cc) ---------------------------------
  // The token's endpoint; nullopt when none was made.
  virtual Result<std::optional<NotificationEndpoint>> GetNotificationEndpoint(const std::string& tenant_id,
                                                                              const std::string& token_id) = 0;
  // Across tenants, by the key of its URL. NotFound.
  virtual Result<NotificationEndpoint> FindNotificationEndpoint(const std::string& location_key) = 0;
  // Creates the token's endpoint from `next`, or rotates the existing one: its
  // location_key stays, its auth_hash becomes previous_auth_hash (valid until
  // next.previous_valid_until), and auth_hash, apple_uid, stoken_expiration,
  // registration and rotated are next's. Returns the endpoint as stored.
  // NotFound when the token does not exist; InvalidArgument for an empty key or hash.
  virtual Result<NotificationEndpoint> RotateNotificationEndpoint(const NotificationEndpoint& next) = 0;
  // (tenant id, token id) of valid tokens without an endpoint or whose endpoint's
  // registration is not `registration`, at most `limit`.
  virtual Result<std::vector<std::pair<std::string, std::string>>> TokensToRegister(const std::string& registration,
                                                                                    int limit) = 0;
  // Records a notification (state pending unless n.state says otherwise). false,
  // nothing written, when (tenant, token, notification id) was recorded before:
  // a duplicate. NotFound when the token does not exist.
  virtual Result<bool> RecordNotification(const AppleNotification& n) = 0;
  // Pending notifications of every tenant, oldest first, at most `limit`.
  virtual Result<std::vector<AppleNotification>> PendingNotifications(int limit) = 0;
  // Ends a pending notification as `state`; false when it was no longer pending.
  virtual Result<bool> FinishNotification(const AppleNotification& n, const std::string& state, Timestamp now) = 0;
  // ASSET_COUNT, in one transaction: unless a syncLicenses/syncLicenseCounts of
  // the token runs now (kDeferred) or the notification is no longer pending,
  // moves total_licenses of the token's apps of (adam_id, pricing_param) by
  // `delta` and ends the notification as applied — or, when the last sync began
  // reading Apple (token last_sync) after n.received, as covered; when no app has that
  // asset or the total would go below zero or below used_licenses, as resync,
  // nothing moved (the caller queues a sync).
  virtual Result<CountChange> ApplyAssetCount(const AppleNotification& n, const std::string& adam_id,
                                              const std::string& pricing_param, std::int64_t delta, Timestamp now) = 0;
  // Deletes notifications received before `before` that are not pending; returns how many.
  virtual Result<std::int64_t> DeleteNotificationsBefore(Timestamp before) = 0;
  // The newest last_modified of any app (a sync or a count change wrote it); 0 when there is none.
  virtual Result<Timestamp> NewestAppChange() = 0;

  // --- this installation -------------------------------------------------------
  // vppd's identity at Apple (the sync derives the mdmInfo it writes to locations
  // from it), kept in the store so that every instance on one database is the same
  // owner at Apple. Returns the stored id; when none is stored yet, stores `proposed`
  // first and returns it. Atomic: instances starting together on one database all
  // get the one id stored first. InvalidArgument when `proposed` is not a GUID.
  virtual Result<std::string> InstallationId(const std::string& proposed) = 0;
};

}  // namespace vppd::store
