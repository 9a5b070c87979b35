// Internal to graph/: Api's state, the route table's types, and what handlers share.
//
// Routing lives in api.cc; each part of the Graph surface has its handlers in its own
// file (vpp_tokens.cc, mobile_apps.cc, ...) as members of Api::Impl, declared below and
// listed in api.cc's route table. A handler parses and validates, calls one service
// function, and serialises; it returns an Error for errors.cc to answer.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "base/base.h"
#include "base/principal.h"
#include "graph/graph.h"
#include "graph/model.h"
#include "graph/odata.h"
#include "service/service.h"

namespace vppd::store {
struct AppRevoke;
struct MobileApp;
struct VppToken;
}  // namespace vppd::store

namespace vppd::graph {

inline constexpr char kJsonContentType[] =
    "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8";

// True when the Accept header (absent = anything) admits `media` ("application/json").
bool Accepts(const http::Request& req, std::string_view media);

// The most keys ({id}) one route template holds: groups/{id}/members/{id}/$ref.
inline constexpr std::size_t kMaxRouteKeys = 3;

// One segment of a route template (see api.cc's route table).
struct Step {
  enum Kind { kLiteral, kKey, kCast, kOperation, kFunction };
  Kind kind = kLiteral;
  std::string_view text;  // the literal, or the operation's or function's name
};

// A deviceAndAppManagementAssignmentTarget of a request body (assignments.cc), read
// strictly: InvalidArgument naming the property (`path` + "." + name) for one that
// does not exist or has the wrong JSON type. The service checks which types fit.
Result<service::AssignmentTarget> ReadAssignmentTarget(const boost::json::object& o, const std::string& path);

struct Api::Impl {
  Dependencies deps;
  Options options;
  QueryLimits limits;

  // What a route's handler is given: the request, and what routing and
  // authentication found.
  struct Call {
    const http::Request& req;
    ApiVersion version;
    const std::string& query;  // still percent-encoded
    const Principal& who;      // empty on the anonymous routes (kUnversioned, kAnonymous)
    // The template's {id} keys, decoded, in path order; the ones it does not have are empty.
    std::array<std::string, kMaxRouteKeys> ids;
    std::string_view cast;      // the qualified type of {cast}
    std::string_view function;  // the function-call segment, arguments included

    // The first key: the entity the path names ("vppTokens/{id}").
    const std::string& id() const { return ids[0]; }
  };
  using Handler = Result<http::Response> (Impl::*)(const Call&) const;

  enum RouteFlag : unsigned {
    kBetaOnly = 1,     // not served under /v1.0
    kUnversioned = 2,  // outside /beta and /v1.0, and anonymous: /healthz, /metrics, the console
    kIfMetrics = 4,    // served only when Options::metrics is on
    // Served without authentication, as Graph serves it: the Authorization header is not
    // read, so a missing, expired or forged token gets the same answer. Only for routes
    // that show no tenant data ($metadata).
    kAnonymous = 8,
    kIfDev = 16,  // served only by a --dev server (Dependencies::dev_key set)
  };

  // One row of the route table (api.cc, Table()).
  struct Route {
    std::string_view path;  // the template
    unsigned methods;       // MethodBits (api.cc)
    Handler handler;
    // Checked (service::Authorize) before the handler runs; nullopt: any
    // authenticated caller. The service checks it again, with the tenant's license.
    std::optional<service::Operation> permission;
    unsigned flags = 0;  // RouteFlags
  };

  // A row made ready for matching, once.
  struct CompiledRoute {
    const Route* route;
    std::vector<Step> steps;
    std::string labels[2];  // the metrics label under each ApiVersion
    std::size_t group;      // the index of the first row with the same template
  };
  static const std::vector<CompiledRoute>& Table();

  // --- dispatch (api.cc) --------------------------------------------------

  // Times every request and counts it by route template and status (GET /metrics).
  http::Response Handle(http::Request& req) const;
  // Splits the target, matches it against the table (which also names the route for
  // metrics and logs), authenticates, throttles, checks the method and the
  // permission, and calls the route's handler.
  http::Response Dispatch(http::Request& req, std::string& route) const;
  bool Serves(const CompiledRoute& r, bool versioned, ApiVersion v) const;
  // Calls an unauthenticated route's handler (kUnversioned, kAnonymous) with an empty Principal
  // (and the route's first key, when it has one: apple/notifications/{id}).
  http::Response CallAnonymous(const CompiledRoute& r, const http::Request& req, ApiVersion v, const std::string& query,
                               std::string id = {}) const;

  // --- what handlers share (api.cc) ---------------------------------------

  // Appends the base URL ("https://host") to `out`: --graph-public-url when set, else the
  // origin the HTTP layer validated (Request::scheme and ::host, which believe
  // X-Forwarded-* only from a trusted proxy). Never the raw Host or X-Forwarded-* headers.
  void AppendBaseUrl(std::string& out, const http::Request& req) const;
  std::string BaseUrl(const http::Request& req) const;
  // The @odata.context URL: base, version, "/$metadata#", then the fragment's pieces.
  std::string ContextUrl(const http::Request& req, ApiVersion v,
                         std::initializer_list<std::string_view> fragment) const;
  // "(a,b)" for a $select, "" for none: the context URL's select fragment.
  static std::string SelectFragment(const std::vector<std::string>& select);

  static http::Response Json(int status, std::string body);
  static http::Response Json(int status, const boost::json::object& body);
  static http::Response NoContent();
  static http::Response MethodNotAllowed(const http::Request& req, unsigned allowed);
  static Error SegmentNotFound(std::string_view segment);
  static Error BadParameter(const std::string& name, const std::string& why);
  // Parses a JSON object body; 415 for another media type, 400 for not JSON / not an object.
  static Result<boost::json::object> ReadJsonObject(const http::Request& req);
  // 406 unless Accept admits application/json.
  static Status RequireJsonAccepted(const http::Request& req);
  // A $count segment answers text/plain, as Graph does, also to the Accept: application/json
  // that Graph's own clients send; 406 only for an Accept that admits neither (nor */*).
  static Status RequireCountAccepted(const http::Request& req);
  // A $count segment's answer.
  static http::Response CountResponse(std::int64_t n);
  // The one string parameter of a function call: "getLicensesForApp(bundleId='x')", or with a
  // parameter alias, "(bundleId=@b)?@b='x'". `example` is a well-formed call, for the message.
  static Result<std::string> ParseStringArgument(std::string_view segment, std::string_view query,
                                                 std::string_view function, std::string_view parameter,
                                                 std::string_view example);

  // The limits of one request: the server's, with the client's `Prefer: odata.maxpagesize=N`.
  QueryLimits RequestLimits(const http::Request& req) const;
  // The envelope of a collection page: @odata.context, @odata.count when asked
  // (counted by `count`), @odata.nextLink when another page exists, and `values`
  // (the JSON array text of the page's `returned_entities` entities).
  Result<http::Response> CollectionPage(const http::Request& req, ApiVersion v, const std::string& path,
                                        const std::string& query, const QueryOptions& q, std::string_view values,
                                        std::size_t returned_entities, bool has_more,
                                        const std::function<Result<std::int64_t>()>& count) const;

  // --- unversioned and metadata (api.cc) ----------------------------------

  Result<http::Response> Healthz(const Call&) const;
  Result<http::Response> Metrics(const Call&) const;
  Result<http::Response> Metadata(const Call& c) const;
  Result<http::Response> DeviceAppManagement(const Call&) const;

  // --- the console's files and sign-in helpers (console.cc) --------------

  Result<http::Response> ConsoleFile(const Call& c) const;
  Result<http::Response> ConsoleConfig(const Call& c) const;
  Result<http::Response> ConsoleDevToken(const Call& c) const;
  // --- Apple's notifications (apple_notifications.cc) ----------------------

  // POST /apple/notifications/{id}: outside Graph's auth (Apple sends its own bearer, which
  // service::NotificationReceiver checks).
  Result<http::Response> AppleNotification(const Call& c) const;

  // --- vppTokens and their actions (vpp_tokens.cc) ------------------------

  Result<http::Response> ListTokens(const Call& c) const;
  Result<http::Response> CountTokens(const Call& c) const;
  Result<http::Response> GetToken(const Call& c) const;
  Result<http::Response> CreateToken(const Call& c) const;
  Result<http::Response> UpdateToken(const Call& c) const;
  Result<http::Response> DeleteToken(const Call& c) const;
  Result<http::Response> SyncLicenses(const Call& c) const;
  Result<http::Response> RevokeLicenses(const Call& c) const;
  Result<http::Response> SyncLicenseCounts(const Call& c) const;
  Result<http::Response> GetLicensesForApp(const Call& c) const;
  Result<http::Response> GetExpiringVppTokenCount(const Call& c) const;
  // A single token: its JSON, and its ETag as a header too.
  http::Response TokenResponse(const http::Request& req, ApiVersion v, int status, const store::VppToken& token,
                               const std::vector<std::string>& select) const;
  // The row_version an If-Match asks a write of the token {id} to find (graph/etag.h);
  // nullopt: no If-Match, or `*`. InvalidArgument for an If-Match that is not an
  // entity-tag list; Aborted when it names no version the token is at; NotFound.
  Result<std::optional<std::int64_t>> ExpectedTokenVersion(const Call& c) const;

  // --- mobileApps (mobile_apps.cc) ----------------------------------------

  Result<http::Response> ListApps(const Call& c) const;
  Result<http::Response> CountApps(const Call& c) const;
  Result<http::Response> GetApp(const Call& c) const;
  Result<http::Response> AssignedLicenses(const Call& c) const;
  Result<http::Response> AppCollection(const Call& c, bool count_segment) const;
  // The app {id}, which must be of the type {cast} when the route has one. NotFound.
  Result<store::MobileApp> FindApp(const Call& c) const;

  // --- the untracked-licences report (untracked.cc) -----------------------

  // GET mobileApps/{id}[/{cast}]/vppd.untrackedLicenses() and managedEBooks/{id}/vppd.untrackedLicenses().
  Result<http::Response> AppUntrackedLicenses(const Call& c) const;
  Result<http::Response> EBookUntrackedLicenses(const Call& c) const;
  Result<http::Response> UntrackedLicensesOf(const Call& c, const store::MobileApp& app, bool book) const;
  // When a beta request's Prefer asks for the annotation vppd.untrackedLicenseCount:
  // objects[i] (the app or book ids[i]) gets it, after its @odata annotations;
  // true when added (the response then says so: NoteAnnotationsApplied).
  Result<bool> AddUntrackedCounts(const Call& c, std::span<boost::json::object* const> objects,
                                  const std::vector<std::string>& ids, bool books) const;
  static void NoteAnnotationsApplied(http::Response& r);

  // --- mobileAppAssignments, assign, deviceStatuses (assignments.cc) ------

  Result<http::Response> ListAssignments(const Call& c) const;
  Result<http::Response> GetAssignment(const Call& c) const;
  Result<http::Response> CreateAssignment(const Call& c) const;
  Result<http::Response> UpdateAssignment(const Call& c) const;
  Result<http::Response> DeleteAssignment(const Call& c) const;
  Result<http::Response> AssignApp(const Call& c) const;
  Result<http::Response> DeviceStatuses(const Call& c) const;
  // --- userStatuses, vppUserStatus (user_licenses.cc) -------------------------
  Result<http::Response> UserStatuses(const Call& c) const;
  Result<http::Response> VppUserStatus(const Call& c) const;  // vppd's: users/{id}/vppUserStatus
  // --- managedEBooks, their assignments, assign and licence states (managed_ebooks.cc) ---
  Result<http::Response> ListEBooks(const Call& c) const;
  Result<http::Response> CountEBooks(const Call& c) const;
  Result<http::Response> EBookCollection(const Call& c, bool count_segment) const;
  Result<http::Response> GetEBook(const Call& c) const;
  Result<http::Response> ListEBookAssignments(const Call& c) const;
  Result<http::Response> GetEBookAssignment(const Call& c) const;
  Result<http::Response> CreateEBookAssignment(const Call& c) const;
  Result<http::Response> UpdateEBookAssignment(const Call& c) const;
  Result<http::Response> DeleteEBookAssignment(const Call& c) const;
  Result<http::Response> AssignEBook(const Call& c) const;
  Result<http::Response> EBookUserStateSummary(const Call& c) const;
  // managedEBooks/{id}/deviceStates and .../userStateSummary/{id}/deviceStates.
  Result<http::Response> EBookDeviceStates(const Call& c) const;
  Result<http::Response> EBookInstallSummary(const Call& c) const;
  // --- revoking licences by app, person or device (revoke.cc) ---------------

  Result<http::Response> RevokeAllLicenses(const Call& c) const;       // mobileApps/{id}[/{cast}]/revokeAllLicenses
  Result<http::Response> RevokeUserLicense(const Call& c) const;       // .../revokeUserLicense
  Result<http::Response> RevokeDeviceLicense(const Call& c) const;     // .../revokeDeviceLicense
  Result<http::Response> RevokeAppleVppLicenses(const Call& c) const;  // managedDevices/{id}/revokeAppleVppLicenses
  // Sets revokeLicenseActionResults on the apps whose JSON has the property
  // (WriteMobileApp wrote it: beta, selected) from their revokes, one read for all.
  // apps[i] is the JSON of the app app_ids[i].
  Status AddRevokeResults(const Call& c, std::span<boost::json::object* const> apps,
                          const std::vector<std::string>& app_ids) const;
  static void WriteRevokeResults(const std::vector<store::AppRevoke>& revokes, boost::json::object& app);
  // Sets a managed device's deviceActionResults (beta) from its revokeAppleVppLicenses
  // requests (revokeAppleVppLicensesActionResult); an empty list when it has none or
  // they cannot be read (logged).
  void AddDeviceActionResults(const Call& c, boost::json::object& device, const std::string& id) const;

  // --- the directory (directory.cc) ----------------------------------------

  Result<http::Response> ListUsers(const Call& c) const;
  Result<http::Response> CountUsers(const Call& c) const;
  Result<http::Response> GetUser(const Call& c) const;
  Result<http::Response> CreateUser(const Call& c) const;
  Result<http::Response> UpdateUser(const Call& c) const;
  Result<http::Response> DeleteUser(const Call& c) const;
  Result<http::Response> ListGroups(const Call& c) const;
  Result<http::Response> CountGroups(const Call& c) const;
  Result<http::Response> GetGroup(const Call& c) const;
  Result<http::Response> CreateGroup(const Call& c) const;
  Result<http::Response> UpdateGroup(const Call& c) const;
  Result<http::Response> DeleteGroup(const Call& c) const;
  Result<http::Response> ListMembers(const Call& c) const;
  Result<http::Response> CountMembers(const Call& c) const;
  Result<http::Response> AddMember(const Call& c) const;     // POST .../members/$ref {"@odata.id": ...}
  Result<http::Response> RemoveMember(const Call& c) const;  // DELETE .../members/{id}/$ref
  Result<http::Response> ListDevices(const Call& c) const;
  Result<http::Response> CountDevices(const Call& c) const;
  Result<http::Response> GetDevice(const Call& c) const;
  Result<http::Response> CreateDevice(const Call& c) const;
  Result<http::Response> UpdateDevice(const Call& c) const;
  Result<http::Response> DeleteDevice(const Call& c) const;
  Result<http::Response> ListManagedDevices(const Call& c) const;
  Result<http::Response> CountManagedDevices(const Call& c) const;
  Result<http::Response> GetManagedDevice(const Call& c) const;
  Result<http::Response> CreateManagedDevice(const Call& c) const;
  Result<http::Response> UpdateManagedDevice(const Call& c) const;
  Result<http::Response> DeleteManagedDevice(const Call& c) const;
  // JSON batching: up to 20 requests, each run through Handle with the caller's Authorization.
  Result<http::Response> Batch(const Call& c) const;
};

}  // namespace vppd::graph
