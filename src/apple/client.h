// Apple's Apps and Books for Organizations API (v2): the sToken and the client.
//
// An sToken is what an administrator downloads from Apple School/Business Manager:
// standard base64 of a UTF-8 JSON object {"token", "expDate", "orgName"}. It is sent
// verbatim (the whole base64 text) as `Authorization: Bearer <sToken>`.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/base.h"

namespace vppd::apple {

struct STokenInfo {
  std::string token;         // The inner opaque location token.
  Timestamp expiration = 0;  // From expDate.
  std::string org_name;      // From orgName.
};

// Decodes an sToken. Surrounding whitespace is ignored. Fails with InvalidArgument
// saying exactly what is wrong: not base64, not JSON, not an object, a field
// missing or of the wrong type, an expDate in no accepted ISO-8601 form.
Result<STokenInfo> DecodeSToken(std::string_view stoken);

// Builds an sToken (for the simulator, tests and the demo).
std::string EncodeSToken(std::string_view token, Timestamp expiration, std::string_view org_name);

// ===========================================================================
// The Apps and Books v2 client.
//
// One Client talks to Apple for one location (one sToken). It turns every
// failure — transport, HTTP status, Apple's ErrorResponse, a page that breaks the
// paging rules — into an AppleError, and retries what is transient (5xx, 429 /
// 9646, transport errors) with exponential backoff, full jitter and Retry-After,
// bounded in attempts and total waiting time.
//
//   ClientOptions opts;
//   opts.stoken = stoken_text;                       // The whole .vpptoken content.
//   auto client = Client::Create(std::move(opts));   // AppleResult<std::unique_ptr<Client>>
//   if (!client) return Fail(client.error().ToError());
//   AssignmentFilter f;
//   f.since_version_id = stored_version;             // Empty: a full walk.
//   auto walk = (*client)->WalkAssignments(f, [&](const AssignmentsPage& page) -> Status {
//     for (const AssignmentRef& a : page.items) ...;   // Views: copy what you keep.
//     return {};
//   });
//   if (!walk && walk.error().kind == AppleErrorKind::kVersionIdInvalid) ...;  // Do a full walk.
//   if (walk && walk->version_changed) ...;                                     // Restart the walk.
//
// Transport: libcurl with TLS verification, connect and total timeouts on every
// request, a response size cap, no redirects, keep-alive connections shared by
// every request of the Client. The sToken is sent only as
// `Authorization: Bearer <sToken>` and is never logged (curl's verbose output is
// never enabled). URLs: requests go to `base_url` + the endpoint path; of the
// service configuration's `urls` only `contentMetadataLookup` is used.
// ===========================================================================

// ---------------------------------------------------------------- errors

enum class AppleErrorKind {
  kTokenExpired,       // 9621: the sToken expired; the admin must download a new one.
  kTokenRevoked,       // 9625: revoked in Apple School/Business Manager.
  kTokenInvalid,       // 9601, 9622, 9722: Apple does not know the sToken (or the header is bad).
  kRateLimited,        // 429 / 9646 still after the retries (or Retry-After beyond the budget).
  kUnavailable,        // 5xx / 9729 / 9603 still after the retries.
  kValidation,         // Any other Apple error (4xx or an errorNumber), e.g. 97xx, 9650, 9708.
  kVersionIdInvalid,   // 9721: sinceVersionId unknown to Apple; the caller does a full walk.
  kTransport,          // Could not connect, TLS failure, timeout, connection reset.
  kMalformedResponse,  // Not JSON, the wrong shape, truncated, too large, or paging rules broken.
  kAborted,            // The walk's on_page callback failed; `cause` holds its Error.
  kInvalidArgument,    // Refused before sending: bad options or arguments (never Apple's answer).
};
const char* AppleErrorKindName(AppleErrorKind kind);

struct AppleError {
  AppleErrorKind kind = AppleErrorKind::kTransport;
  int error_number = 0;       // Apple's errorNumber; 0 when the answer carried none.
  std::string error_message;  // Apple's errorMessage, or what went wrong locally.
  int http_status = 0;        // 0 when no HTTP answer was received.
  std::string request;        // "GET /assignments?pageIndex=3" (never the sToken).
  int attempts = 0;           // Requests made, retries included.
  // Retry-After of the last answer (0 when none): a rate-limited or unavailable
  // caller may reschedule after it.
  std::chrono::seconds retry_after{0};
  std::string error_info;      // Apple's `errorInfo` as compact JSON, when present.
  std::optional<Error> cause;  // kAborted: the callback's error.

  // "Apple GET /assets?pageIndex=0: HTTP 401, errorNumber 9621 (Token has expired…), after 1 attempt".
  std::string Describe() const;
  // The vppd::Error for the rest of the program: token expired/revoked/invalid →
  // FailedPrecondition (it is the vppToken's state, not the Graph caller's
  // credentials), rate limited → ResourceExhausted, unavailable/transport/
  // malformed → Unavailable (transport timeouts → DeadlineExceeded), validation →
  // InvalidArgument, version id invalid → FailedPrecondition, invalid argument →
  // InvalidArgument, aborted → the cause unchanged. The message is Describe().
  Error ToError() const;
};

template <class T>
using AppleResult = Expected<T, AppleError>;
using AppleStatus = Expected<void, AppleError>;

// ---------------------------------------------------------------- options

struct RetryPolicy {
  int max_attempts = 5;  // Per request, the first one included (1: no retries).
  // The sum of waits before retries of one request; a Retry-After that would go
  // beyond it ends the retries at once (the error carries retry_after).
  std::chrono::milliseconds max_total_wait{120'000};
  std::chrono::milliseconds base_backoff{500};  // Attempt n waits uniform(0, min(max, base·2^(n-1))).
  std::chrono::milliseconds max_backoff{30'000};
};

// Blocks the calling thread for the given time. Tests pass one that records the
// waits and advances a FakeClock instead of sleeping.
using SleepFunction = std::function<void(std::chrono::milliseconds)>;

struct ClientOptions {
  std::string base_url = "https://vpp.itunes.apple.com/mdm/v2";  // No trailing slash needed.
  bool allow_insecure_http = false;                              // Needed for an http:// base_url (simulators).
  std::string stoken;                                            // The whole base64 .vpptoken text. Required.
  std::chrono::milliseconds connect_timeout{10'000};             // Per attempt.
  std::chrono::milliseconds total_timeout{60'000};               // Per attempt, connect to last byte.
  std::size_t max_response_bytes = 64u << 20;                    // Larger bodies: kMalformedResponse.
  int max_parallel_pages = 5;  // Page requests in flight during a walk (Apple's limit: 5).
  RetryPolicy retry;
  const Clock* clock = nullptr;  // nullptr: Clock::Real(). Must outlive the Client.
  SleepFunction sleep;           // Empty: std::this_thread::sleep_for.
  std::string user_agent = "vppd/0.1";
  // Requests per second for this location (token bucket, burst of one second).
  // 0: the service configuration's limits.maxRequestPerSecond. The client reads
  // it before its first request with the sToken, unless the caller did (one
  // attempt; 15 while it could not be read).
  double max_requests_per_second = 0;
  std::chrono::seconds service_config_ttl{300};  // Apple: re-read about every 5 minutes.
  std::uint64_t jitter_seed = 0;                 // 0: seeded from the random device.
  // Lookup parameters for LookupMetadata (Apple's MZStorePlatform lookup).
  std::string lookup_platform = "enterprisestore";
  std::string lookup_country = "us";  // Lower-case ISO country; the location's countryISO2ACode fits.
};

// ---------------------------------------------------------------- results

struct MdmInfo {
  std::string id;        // Unique per installation (vppd: per installation and tenant).
  std::string name;      // Product name.
  std::string metadata;  // Free text.
  bool operator==(const MdmInfo&) const = default;
};

struct ServiceConfig {
  struct Urls {
    std::string client_config, get_assets, get_assignments, associate_assets, disassociate_assets, revoke_assets,
        event_status, get_users, create_users, update_users, retire_users, content_metadata_lookup, invitation_email;
  } urls;
  struct Limits {
    int max_assets = 25, max_client_user_ids = 1000, max_serial_numbers = 1000;
    int max_revoke_client_user_ids = 100, max_revoke_serial_numbers = 100;
    int max_users = 100;
    int max_notification_length = 512, max_mdm_name_length = 100, max_mdm_metadata_length = 255,
        max_mdm_id_length = 100;
    int max_request_per_second = 15;
  } limits;  // Fields Apple omits keep the defaults above (Apple's documented values).
  std::vector<std::string> notification_types;
  Timestamp fetched_at = 0;  // Client clock.
};

// The fields every authenticated answer carries.
struct Envelope {
  std::string uid;                            // Apple's unique library id (duplicate-location detection).
  std::optional<MdmInfo> mdm_info;            // Present once some MDM set it.
  std::optional<Timestamp> token_expiration;  // tokenExpirationDate.
};

struct ClientConfig : Envelope {
  std::string country_iso2a;     // countryISO2ACode, e.g. "US".
  std::string default_platform;  // volumestore | enterprisestore.
  std::string location_name;
  std::string website_url;
  std::string notification_url;
  // The shared secret Apple sends back with notifications. A secret: never log it.
  std::string notification_auth_token;
  std::vector<std::string> subscribed_notification_types;
};

// Where and what Apple notifies (client/config notificationUrl,
// notificationAuthToken, notificationTypes; Apple's "Subscribing to notifications").
struct NotificationSettings {
  std::string url;                 // https://… (Apple answers 9712 otherwise; its length limit is 9711)
  std::string auth_token;          // Sent back as `Authorization: Bearer <auth_token>`. A secret.
  std::vector<std::string> types;  // The complete set: ASSET_COUNT, ASSET_MANAGEMENT, …
};

struct Asset {
  std::string adam_id;
  std::string pricing_param;  // STDQ | PLUS.
  std::string product_type;   // App | Book.
  std::int64_t assigned_count = 0, available_count = 0, retired_count = 0, total_count = 0;
  bool device_assignable = false;
  bool revocable = false;
  bool unlimited = false;                        // From unlimitedAssets (no available/retired/total counts).
  std::vector<std::string> supported_platforms;  // iOS, macOS, tvOS, watchOS, visionOS.
};

struct Assignment {
  std::string adam_id;
  std::string pricing_param;
  std::string client_user_id;  // Exactly one of client_user_id and serial_number is set.
  std::string serial_number;
};

// An assignment as a walk delivers it: views into the page's own buffers, valid
// only during on_page (a million of them a sync are read once and staged, so
// the walk does not copy them into strings first). Own() for one to keep.
struct AssignmentRef {
  std::string_view adam_id;
  std::string_view pricing_param;
  std::string_view client_user_id;  // Exactly one of client_user_id and serial_number is set.
  std::string_view serial_number;

  Assignment Own() const {
    return {std::string(adam_id), std::string(pricing_param), std::string(client_user_id), std::string(serial_number)};
  }
};

struct User {
  std::string client_user_id;
  std::string email, id_hash, invite_code, managed_apple_id;
  std::string status;  // Registered | Associated | Retired.
};

// One page of a walk, as delivered to on_page (valid only during the call).
template <class Item>
struct Page {
  int index = 0;
  int total_pages = 0;
  std::string version_id;
  std::vector<Item> items;
};
using AssetsPage = Page<Asset>;
using AssignmentsPage = Page<AssignmentRef>;
using UsersPage = Page<User>;

struct WalkResult : Envelope {
  std::string version_id;   // Page 0's: store it for the next sinceVersionId.
  int total_pages = 0;      // From page 0.
  int pages_delivered = 0;  // Pages passed to on_page.
  std::int64_t items = 0;   // Items passed to on_page.
  // A later page carried another versionId: the walk stopped without delivering
  // that page or any after it; the caller restarts (the data moved under it).
  bool version_changed = false;
  std::string new_version_id;  // The different versionId, when version_changed.
  int max_in_flight = 0;       // Most page requests that were on the wire at once.
};

struct AssetFilter {
  std::optional<std::string> product_type;   // App | Book.
  std::optional<std::string> pricing_param;  // STDQ | PLUS.
  std::optional<bool> revocable, device_assignable, unlimited;
  std::optional<std::int64_t> min_available_count, max_available_count, min_assigned_count, max_assigned_count;
  std::optional<std::string> adam_id;
};

struct AssignmentFilter {
  std::optional<std::string> adam_id, pricing_param, client_user_id, serial_number;
  std::string since_version_id;  // Empty: everything; else only records changed since (9721 → kVersionIdInvalid).
  std::optional<bool> exclude_inactive_users;
};

struct UserFilter {
  std::optional<bool> active_only, retired_only;
  std::optional<std::string> client_user_id;
  std::string since_version_id;
};

struct AssetRef {
  std::string adam_id;
  std::string pricing_param;  // Empty: not sent (Apple picks the asset by adamId).
};

// associate / disassociate: `assets` plus clientUserIds and/or serialNumbers.
// The caller keeps each request within ServiceConfig().limits (maxAssets,
// maxClientUserIds, maxSerialNumbers); the client sends it as given and Apple
// answers 9700–9702 (kValidation) when over.
struct ManageAssetsRequest {
  std::vector<AssetRef> assets;
  std::vector<std::string> client_user_ids;
  std::vector<std::string> serial_numbers;
};

// A user of users/create and users/update. email and managed_apple_id are
// sent only when not empty.
struct ManagedUser {
  std::string client_user_id, email, managed_apple_id;
};

struct EventResponse : Envelope {
  std::string event_id;
};

struct EventFailure {
  int error_number = 0;
  std::string error_message;
  std::vector<std::string> client_user_ids, serial_numbers;
  std::vector<AssetRef> assets;
};

struct EventStatus : Envelope {
  std::string event_status;  // PENDING | COMPLETE | FAILED (FAILED may be a partial success).
  std::string event_type;    // ASSOCIATE | DISASSOCIATE | REVOKE | CREATE | UPDATE | RETIRE.
  std::int64_t num_requested = 0, num_completed = 0;
  std::vector<EventFailure> failures;
  bool Pending() const { return event_status == "PENDING"; }
};

// From the content metadata lookup (service config urls.contentMetadataLookup).
struct AppMetadata {
  std::string adam_id;
  std::string bundle_id;  // Empty for books.
  std::string name;
  std::string kind;     // iosSoftware | macSoftware | ebook | ...
  std::string version;  // offers[0].version.display, when present.
  std::vector<std::string> supported_platforms;
  // What the lookup says of a book (kind ebook), where Apple gives it: artistName
  // (the author or publisher), sellerName, genreNames.
  std::string artist_name;
  std::string seller_name;
  std::vector<std::string> genres;
};

// ---------------------------------------------------------------- client

template <class Item>
using PageCallback = std::function<Status(const Page<Item>&)>;

// Thread-safe: any number of threads may call any method at once; they share
// the connection cache, the rate limiter and the service-config cache. Each call
// blocks its thread until done (bounded by timeouts × attempts + waits).
class Client {
 public:
  // Validates options (kInvalidArgument: empty sToken, an http:// base_url
  // without allow_insecure_http, a scheme other than http(s), non-positive
  // timeouts or max_parallel_pages outside 1..5). Sends nothing.
  static AppleResult<std::unique_ptr<Client>> Create(ClientOptions options);
  virtual ~Client() = default;

  // GET /service/config (no sToken), cached for options.service_config_ttl. A
  // failed refresh returns the error even while an older copy exists.
  virtual AppleResult<ServiceConfig> GetServiceConfig() = 0;

  // GET /client/config.
  virtual AppleResult<ClientConfig> GetClientConfig() = 0;
  // POST /client/config {"mdmInfo": ...}: takes or keeps ownership of the
  // location. Returns the configuration Apple answers with (its mdm_info is ours
  // on success). Apple's 9723–9725/9713 (missing or too-long fields) → kValidation.
  virtual AppleResult<ClientConfig> SetClientConfig(const MdmInfo& mdm_info) = 0;
  // POST /client/config with mdmInfo and the notification settings: registers
  // where Apple sends this location's notifications (and keeps ownership). The
  // auth token is sent in the body only and never logged. Apple's 9710–9712 and
  // 9728 (no token, URL too long, not HTTPS, unreachable) → kValidation. A client
  // that does not implement it (test fakes) answers kInvalidArgument.
  virtual AppleResult<ClientConfig> RegisterNotifications(const MdmInfo& mdm_info,
                                                          const NotificationSettings& notifications) {
    (void)mdm_info;
    (void)notifications;
    AppleError e;
    e.kind = AppleErrorKind::kInvalidArgument;
    e.error_message = "this Apple client does not register notifications";
    return tl::unexpected(e);
  }

  // Walks. Page 0 first (totalPages, versionId), then pages 1..n-1 with at most
  // max_parallel_pages requests in flight; on_page is called on the calling
  // thread, one page at a time, in page order. At most 2 × max_parallel_pages
  // pages are fetched but not yet delivered, so memory does not grow with the
  // location. on_page returning an error ends the walk with kAborted (cause =
  // that error); transfers in flight are dropped. Checked on every page:
  // currentPageIndex == the requested index, totalPages == page 0's,
  // nextPageIndex == index+1 exactly when index+1 < totalPages, size == items;
  // a violation is kMalformedResponse. A later page with another versionId ends
  // the walk successfully with version_changed (that page is not delivered).
  virtual AppleResult<WalkResult> WalkAssets(const AssetFilter& filter, const PageCallback<Asset>& on_page) = 0;
  virtual AppleResult<WalkResult> WalkAssignments(const AssignmentFilter& filter,
                                                  const PageCallback<AssignmentRef>& on_page) = 0;
  virtual AppleResult<WalkResult> WalkUsers(const UserFilter& filter, const PageCallback<User>& on_page) = 0;

  // POST /assets/associate | /assets/disassociate → the event to poll. POSTs are
  // retried only when Apple cannot have acted (429, 503, connection refused), so
  // an event is never submitted twice.
  virtual AppleResult<EventResponse> Associate(const ManageAssetsRequest& request) = 0;
  virtual AppleResult<EventResponse> Disassociate(const ManageAssetsRequest& request) = 0;
  // POST /assets/revoke: strips every revocable asset from these users/devices.
  // The caller keeps within limits.maxRevokeClientUserIds / maxRevokeSerialNumbers.
  virtual AppleResult<EventResponse> Revoke(const std::vector<std::string>& client_user_ids,
                                            const std::vector<std::string>& serial_numbers) = 0;

  // POST /users/create | /users/update {"users": [...]} and POST /users/retire
  // {"users": [{"clientUserId"}]} → the event to poll (type CREATE | UPDATE |
  // RETIRE); retried as the other POSTs. The caller keeps each request within
  // limits.maxUsers; Apple answers 9714 too many, 9715 duplicates, 9717 a bad
  // email, 9720 none (kValidation). A created user is Registered with an
  // inviteCode (WalkUsers, or a USER_MANAGEMENT notification); a retired one's
  // revocable licences are released. Per-user refusals (9716 the clientUserId
  // exists, 9641 the Apple Account is associated with another user, 9618 already
  // retired) come with the event's status, not here.
  virtual AppleResult<EventResponse> CreateUsers(const std::vector<ManagedUser>& users) = 0;
  virtual AppleResult<EventResponse> UpdateUsers(const std::vector<ManagedUser>& users) = 0;
  virtual AppleResult<EventResponse> RetireUsers(const std::vector<std::string>& client_user_ids) = 0;

  // GET /status?eventId=. An unknown id is kValidation with errorNumber 9708.
  virtual AppleResult<EventStatus> GetEventStatus(const std::string& event_id) = 0;
  // Polls GetEventStatus every `interval` (Apple asks for ≥ 30 s) through the
  // sleep function until the event is no longer PENDING or `max_wait` has
  // passed; returns the last status either way (check Pending()).
  virtual AppleResult<EventStatus> WaitForEvent(const std::string& event_id, std::chrono::milliseconds interval,
                                                std::chrono::milliseconds max_wait) = 0;

  // Names and bundle ids from urls.contentMetadataLookup (read from the service
  // configuration), in batches of 100 ids. Ids Apple does not know are absent
  // from the answer. No sToken is sent.
  virtual AppleResult<std::vector<AppMetadata>> LookupMetadata(const std::vector<std::string>& adam_ids) = 0;
};

}  // namespace vppd::apple
