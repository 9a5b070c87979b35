// The Microsoft Graph surface vppd serves: OData paths, query options, JSON, the
// Graph error envelope, authentication of each request, and the vppToken handlers.
//
//   graph::Api api(deps, options);
//   http::ServerOptions opts;
//   opts.error_writer = graph::ServerErrorResponse;   // the server's own errors, in Graph's envelope
//   http::Server::Start(opts, [&](http::Request& r) { return api.Handle(r); });
//
// Handle never throws and never answers 500 for bad input: every malformed request
// gets a Graph error naming what is wrong (errors.cc is the only place that turns an
// Error into a status and body).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "http/server.h"

namespace vppd {
namespace auth {
class DevKey;
class Verifier;
}  // namespace auth
namespace service {
class AppAssignments;
class ManagedEBooks;
class Directory;
class LicenseRevokes;
class MobileApps;
class NotificationReceiver;
class Throttle;
class VppTokens;
}  // namespace service
}  // namespace vppd

namespace vppd::graph {

// How syncLicenses answers (design.md): the seed's `{"value": {...}}`, the entity at
// the root, or `auto` (the root when the request carries an SdkVersion header).
enum class ActionResponse { kAuto, kValue, kEntity };

// The console's sign-in outside --dev (console.h): OAuth 2.0 authorization code with PKCE
// at `issuer`, offered when issuer and client_id are both set.
struct ConsoleOidc {
  std::string issuer;     // "https://login.microsoftonline.com/{tenant}/v2.0"
  std::string client_id;  // the console's registration: a public client (SPA), redirect URI "<vppd URL>/"
  std::string scopes = "openid DeviceManagementServiceConfig.ReadWrite.All DeviceManagementApps.ReadWrite.All";
};

struct Options {
  ActionResponse action_response = ActionResponse::kAuto;
  std::int64_t page_size = 100;  // server-driven paging of collections
  std::int64_t max_top = 999;
  // Absolute base for @odata.context and @odata.nextLink ("https://vppd.example.com").
  // Empty: the request's validated origin, http::Request::scheme and ::host (X-Forwarded-*
  // believed only from the server's trusted proxies).
  std::string public_url;
  // Serve GET /metrics (Prometheus text; aggregate counts only, no ids or tenants).
  bool metrics = true;
  ConsoleOidc console_oidc;
};

struct Dependencies {
  const auth::Verifier* verifier = nullptr;
  service::VppTokens* tokens = nullptr;
  service::MobileApps* apps = nullptr;
  service::AppAssignments* assignments = nullptr;
  service::ManagedEBooks* ebooks = nullptr;    // managedEBooks
  service::Throttle* throttle = nullptr;       // nullptr: no request-rate limits
  service::Directory* directory = nullptr;     // users, groups, devices, managedDevices
  service::LicenseRevokes* revokes = nullptr;  // revokes by app, user or device
  // A --dev server's signing key: the console's POST /console/dev-token signs with it
  // (loopback callers only). nullptr: that route is not served.
  const auth::DevKey* dev_key = nullptr;
  // POST /apple/notifications/{key}; nullptr: the route answers 404.
  service::NotificationReceiver* notifications = nullptr;
};

// Graph's error envelope {"error":{"code","message","innerError":{"date","request-id",
// "client-request-id"}}} for an answer the HTTP server gives on its own (limits,
// timeouts, malformed requests, a throwing handler, overload): set it as
// http::ServerOptions::error_writer. Thread-safe; never throws but for bad_alloc.
http::Response ServerErrorResponse(const http::ServerError& error, const http::Request& request);

class Api {
 public:
  Api(Dependencies deps, Options options);
  ~Api();
  // Thread-safe; called concurrently from the server's threads.
  http::Response Handle(http::Request& request) const;

  // Defined in api_impl.h, internal to graph/ (whose other files, $metadata's among
  // them, read the route table through it); the name alone gives nothing away.
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace vppd::graph
