// The simulator's data model: locations with their assets, users, license
// assignments, versions and asynchronous events.
//
// A Location is one Apple "location" (a content library) as Apple's Apps and
// Books for Organizations API v2 exposes it. The model is compact because a
// benchmark location holds a million assignments: an assignment is 16 bytes
// (asset index, subject index, version stamp, kind); serial numbers and users are
// interned once; per-asset counts are maintained on every change.
//
// Versioning (spec §4): every write to a location bumps a counter and mints a
// new GUID-shaped `versionId`. Records (assignments, users) carry the counter of
// their last change, so `sinceVersionId=V` returns records stamped after V. Only
// the last `history_limit` versionIds are remembered; an older or unknown id does
// not resolve (the API answers 9721 and the client must walk everything again).
// Removed assignments are not reported by deltas (Apple documents deltas as
// "records with modifications"; clients are told to re-sync fully now and then).
//
// Thread-safety: none inside, except Select()'s view cache. The Simulator guards
// every Location with its shared_mutex: const methods under a shared lock,
// the rest under an exclusive one.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/base.h"

namespace vppd::sim {

// The totalCount Apple reports for unlimited (free) assets (INT32_MAX).
inline constexpr std::int64_t kUnlimitedCount = 2147483647;

// The limits object of GET /service/config, with Apple's example values
// (spec §3.1). Validation of manage requests uses these same numbers.
struct Limits {
  int max_assets = 25;
  int max_client_user_ids = 1000;
  int max_serial_numbers = 1000;
  int max_revoke_client_user_ids = 100;
  int max_revoke_serial_numbers = 100;
  int max_users = 100;
  int max_subscriptions = 25;
  int max_subscription_client_user_ids = 1000;
  int max_notification_length = 512;
  int max_mdm_name_length = 100;
  int max_mdm_metadata_length = 255;
  int max_mdm_id_length = 100;
  int max_request_per_second = 15;
};

enum class ProductType : std::uint8_t { kApp, kBook };
const char* ProductTypeName(ProductType t);  // "App" | "Book"

// Bits of an asset's supportedPlatforms, in the order Apple lists them.
enum PlatformBit : std::uint8_t {
  kIOS = 1,
  kMacOS = 2,
  kTvOS = 4,
  kWatchOS = 8,
  kVisionOS = 16,
};
// "iOS" for kIOS, ...; nullptr for an unknown bit.
const char* PlatformName(std::uint8_t bit);
// The bit for "iOS", ...; 0 when unknown.
std::uint8_t PlatformFromName(std::string_view name);

struct Asset {
  std::string adam_id;        // Numeric string, e.g. "408709785".
  std::string pricing_param;  // "STDQ" | "PLUS".
  ProductType product_type = ProductType::kApp;
  bool device_assignable = true;
  bool revocable = true;
  bool unlimited = false;           // Free asset: no count limit.
  std::uint8_t platforms = kIOS;    // PlatformBit set.
  std::int64_t total_count = 0;     // Purchased licenses (ignored when unlimited).
  std::int64_t retired_count = 0;   // Licenses retired (not available, not assigned).
  std::int64_t assigned_count = 0;  // Maintained by Location::Assign/Unassign.
  // Content metadata for the lookup endpoint.
  std::string name;
  std::string bundle_id;
  std::string version = "1.0";
  // `{"adamId":"…","pricingParam":"…"` ready to start an assignment object;
  // set by Location::AddAsset (adamId and pricingParam never change).
  std::string json_prefix;

  // Reported totalCount: kUnlimitedCount for unlimited assets.
  std::int64_t ReportedTotal() const { return unlimited ? kUnlimitedCount : total_count; }
  std::int64_t AvailableCount() const { return ReportedTotal() - assigned_count; }
};

enum class UserStatus : std::uint8_t { kRegistered, kAssociated, kRetired };
const char* UserStatusName(UserStatus s);  // "Registered" | "Associated" | "Retired"

struct User {
  std::string client_user_id;
  std::string email;             // May be empty.
  std::string managed_apple_id;  // May be empty.
  std::string invite_code;       // Set while Registered.
  std::string id_hash;           // Set once Associated.
  UserStatus status = UserStatus::kRegistered;
  std::uint32_t version = 0;  // Version counter of the last change.
};

enum class SubjectKind : std::uint8_t { kUser = 0, kDevice = 1 };

// One license assignment: 16 bytes.
struct Assignment {
  std::uint32_t asset = 0;    // Index into Location::assets.
  std::uint32_t subject = 0;  // Index into users (kUser) or serials (kDevice).
  std::uint32_t version = 0;  // Version counter of the last change.
  SubjectKind kind = SubjectKind::kUser;
};

enum class TokenState : std::uint8_t { kActive, kExpired, kRevoked, kInvalid };
const char* TokenStateName(TokenState s);  // "active" | "expired" | "revoked" | "invalid"
std::optional<TokenState> TokenStateFromName(std::string_view name);

// One downloadable sToken of a location. Several tokens may name one location.
struct Token {
  std::string stoken;  // The whole base64 text, as sent in Authorization.
  std::string inner;   // The decoded `token` field.
  Timestamp expiration = 0;
  TokenState state = TokenState::kActive;
};

struct MdmInfo {
  std::string id;
  std::string name;
  std::string metadata;
};

enum class EventType : std::uint8_t { kAssociate, kDisassociate, kRevoke, kCreate, kUpdate, kRetire };
const char* EventTypeName(EventType t);  // "ASSOCIATE", ...
enum class EventStatus : std::uint8_t { kPending, kComplete, kFailed };
const char* EventStatusName(EventStatus s);  // "PENDING" | "COMPLETE" | "FAILED"

struct UserSpec {
  std::string client_user_id;
  std::optional<std::string> email;
  std::optional<std::string> managed_apple_id;
};

// A failure that a fault rule (kind event_failure) forces on chosen subjects of
// an event: they fail with `error_number` and keep their state; the rest of the
// event proceeds.
struct ForcedFailure {
  int error_number = 0;
  std::vector<std::string> serial_numbers;  // Both lists empty: every subject.
  std::vector<std::string> client_user_ids;
  bool Covers(std::string_view client_user_id, std::string_view serial_number) const;
};

// What a resolved event did to one subject (and asset), in request order: the
// material of the ASSET_MANAGEMENT and USER_MANAGEMENT notifications.
struct EventOutcome {
  static constexpr std::uint32_t kNoAsset = UINT32_MAX;
  std::uint32_t asset = kNoAsset;  // Asset index; kNoAsset for user events and failed revokes.
  std::string client_user_id;      // One of these two is set.
  std::string serial_number;
  int error_number = 0;  // 0: done.
};

// An asynchronous request (associate, disassociate, revoke, users/*). Its effect
// is applied when it resolves, not when it is accepted.
struct Event {
  std::string id;
  EventType type = EventType::kAssociate;
  EventStatus status = EventStatus::kPending;
  Timestamp due = 0;                  // Resolves at or after this time.
  std::vector<std::uint32_t> assets;  // Asset indexes (associate/disassociate).
  std::vector<std::string> client_user_ids;
  std::vector<std::string> serial_numbers;
  std::vector<UserSpec> users;  // users/create|update|retire.
  std::int64_t num_requested = 0;
  std::int64_t num_completed = 0;
  std::string failures_json = "[]";            // JSON array of ErrorResponse, once resolved.
  std::vector<ForcedFailure> forced_failures;  // From event_failure fault rules.
  bool held = false;                           // hold_event: only ResolveEvent/ResolveAll resolve it.
  std::vector<EventOutcome> outcomes;          // Filled on resolution; the owner may clear it.
};

struct AssignmentFilter {
  std::optional<std::string> adam_id;
  std::optional<std::string> pricing_param;
  std::optional<std::string> client_user_id;
  std::optional<std::string> serial_number;
  std::optional<std::uint32_t> since_version;  // Resolved counter of sinceVersionId.
  bool exclude_inactive_users = false;         // Drop user assignments of non-Associated users.
  bool Empty() const {
    return !adam_id && !pricing_param && !client_user_id && !serial_number && !since_version && !exclude_inactive_users;
  }
};

// The slice of a result set that one page covers.
struct PageWindow {
  std::int64_t total_pages = 1;  // At least 1: an empty result is one empty page 0.
  std::size_t begin = 0;         // First item index of the page.
  std::size_t end = 0;           // One past the last.
  bool has_next = false;
};

// Page `index` of `item_count` items in pages of `page_size` (> 0). nullopt when
// index < 0 or index >= total_pages (Apple's 9650).
std::optional<PageWindow> ComputePage(std::size_t item_count, std::size_t page_size, std::int64_t index);

class Location {
 public:
  Location(std::string uid, std::uint64_t seed, std::size_t history_limit);
  Location(const Location&) = delete;
  Location& operator=(const Location&) = delete;

  // --- identity and client config (plain data, written by loaders and handlers)
  std::string uid;  // Apple's uId (numeric string).
  std::string name;
  std::string org_name;
  std::string country = "US";
  std::string default_platform = "volumestore";
  std::string website_url = "https://business.apple.com";
  std::optional<MdmInfo> mdm_info;
  std::string notification_url;
  std::string notification_auth_token;
  std::vector<std::string> notification_types;
  std::vector<Token> tokens;
  std::uint64_t seed;  // Derives versionIds, eventIds and invite codes.

  // --- assets
  const std::vector<Asset>& assets() const { return assets_; }
  // Adds an asset; fails with AlreadyExists for a duplicate (adamId, pricingParam).
  Result<std::uint32_t> AddAsset(Asset asset);
  // The asset with `adam_id` and `pricing_param`; with no pricing_param, the
  // STDQ one if present, else the first. nullopt when absent.
  std::optional<std::uint32_t> FindAsset(std::string_view adam_id,
                                         std::optional<std::string_view> pricing_param = std::nullopt) const;
  // Purchase (delta > 0) or refund (delta < 0) licenses. Fails with
  // FailedPrecondition when a refund would leave fewer licenses than assigned, or
  // for unlimited assets. Bumps the version.
  Status ChangeTotal(std::uint32_t asset, std::int64_t delta);
  // Sets the purchased count without a version change (loaders only).
  void SetTotal(std::uint32_t asset, std::int64_t total) { assets_.at(asset).total_count = total; }

  // --- users and devices
  const std::vector<User>& users() const { return users_; }
  std::optional<std::uint32_t> FindUser(std::string_view client_user_id) const;
  // Adds (or, for a known id, replaces) a user, stamped with the next version.
  std::uint32_t PutUser(User user);
  User& MutableUser(std::uint32_t index) { return users_[index]; }
  const std::vector<std::string>& serials() const { return serials_; }
  std::uint32_t InternSerial(std::string_view serial);
  std::optional<std::uint32_t> FindSerial(std::string_view serial) const;

  // --- assignments. Changes are stamped with the *next* version; the caller
  // bumps the version once after a batch of changes (one write = one version).
  const std::vector<Assignment>& assignments() const { return assignments_; }
  // Pre-sizes the assignment store (loaders that know the count).
  void ReserveAssignments(std::size_t n) {
    assignments_.reserve(n);
    assignment_pos_.reserve(n);
  }
  // False when the pair is already assigned (nothing changes).
  bool Assign(std::uint32_t asset, SubjectKind kind, std::uint32_t subject);
  // False when the pair is not assigned.
  bool Unassign(std::uint32_t asset, SubjectKind kind, std::uint32_t subject);
  bool IsAssigned(std::uint32_t asset, SubjectKind kind, std::uint32_t subject) const;
  // Re-stamps one assignment (an out-of-band touch used by the "bump versionId"
  // fault so that a delta sees a change). No-op without assignments.
  void TouchOneAssignment();
  // Indexes into assignments() matching `filter`, in storage order. Results are
  // cached per version (a walk asks for the same filtered view once per page).
  // Thread-safe against other const calls.
  std::shared_ptr<const std::vector<std::uint32_t>> Select(const AssignmentFilter& filter) const;

  // --- versions
  std::uint32_t version() const { return version_; }
  const std::string& version_id() const { return version_id_; }
  std::uint32_t next_stamp() const { return version_ + 1; }
  // Makes a new version current (call after every write).
  void BumpVersion();
  // The counter of a remembered versionId; nullopt when unknown or too old.
  std::optional<std::uint32_t> ResolveVersionId(std::string_view id) const;

  // --- events
  // Registers a pending event and returns its new id.
  const Event& AddEvent(Event event);
  const Event* FindEvent(std::string_view id) const;
  // The earliest due time of the pending events that are not held, or nullopt.
  std::optional<Timestamp> NextDue() const;
  // Applies every pending event that is due at or before `now` and not held,
  // in the order accepted; a later event may thus resolve before a slow or held
  // one. Returns the ids resolved, in order.
  std::vector<std::string> ResolveDue(Timestamp now);
  // Applies every pending event, held ones included, in the order accepted.
  std::vector<std::string> ResolveAll();
  // Applies one pending event now (held or not). False when `id` is not pending.
  bool ResolveEvent(std::string_view id);
  Event* MutableEvent(std::string_view id);

 private:
  static std::uint64_t PairKey(std::uint32_t asset, SubjectKind kind, std::uint32_t subject) {
    return (static_cast<std::uint64_t>(asset) << 33) | (static_cast<std::uint64_t>(kind) << 32) | subject;
  }
  void RemoveAt(std::size_t pos);
  void Resolve(Event& event);
  void InvalidateViews();

  std::vector<Asset> assets_;
  std::unordered_map<std::string, std::uint32_t> asset_index_;  // adamId '\n' pricingParam.
  std::vector<User> users_;
  std::unordered_map<std::string, std::uint32_t> user_index_;
  std::vector<std::string> serials_;
  std::unordered_map<std::string, std::uint32_t> serial_index_;
  std::vector<Assignment> assignments_;
  std::unordered_map<std::uint64_t, std::uint32_t> assignment_pos_;  // PairKey → index.

  std::uint32_t version_ = 0;
  std::string version_id_;
  std::size_t history_limit_;
  std::unordered_map<std::string, std::uint32_t> version_ids_;
  std::deque<std::string> version_order_;

  std::map<std::string, Event, std::less<>> events_;
  std::vector<std::string> ResolvePending(Timestamp now, bool include_held);

  std::deque<std::string> pending_;      // Ids of PENDING events, oldest first.
  std::deque<std::string> event_order_;  // All ids, oldest first, for eviction.
  std::uint64_t event_counter_ = 0;

  mutable std::mutex views_mu_;
  mutable std::vector<std::pair<std::string, std::shared_ptr<const std::vector<std::uint32_t>>>> views_;
};

// How many events a location remembers for GET /status (oldest resolved ones
// are forgotten first; their ids then answer 9708).
inline constexpr std::size_t kMaxEventsPerLocation = 10000;

}  // namespace vppd::sim
