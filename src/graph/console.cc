// The console's files and its two sign-in helpers (console.h), and their handlers in
// Api's route table (api.cc lists them). The files themselves come from the generated
// console_assets.cc.
#include "graph/console.h"

#include <chrono>

#include "auth/auth.h"
#include "base/json_escape.h"
#include "graph/api_impl.h"
#include "graph/errors.h"

namespace vppd::graph::console {
namespace {

// How long a token from /console/dev-token lives (what `vppd serve --dev` prints is 8 h too).
constexpr auto kDevTokenTtl = std::chrono::hours(8);

const Asset* Find(std::string_view path) {
  for (const Asset& asset : Assets()) {
    if (asset.path == path) return &asset;
  }
  return nullptr;
}

// True when `value` (If-None-Match) lists `etag` or is "*".
bool EtagMatches(std::string_view value, std::string_view etag) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.starts_with("W/")) item.remove_prefix(2);
    if (item == etag || item == "*") return true;
    value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
  }
  return false;
}

// "https://login.example.com" from "https://login.example.com/tenant/v2.0"; empty when the
// issuer is not an http(s) URL of plain characters (it goes into a header).
std::string Origin(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return {};
  const std::string_view scheme = url.substr(0, scheme_end);
  if (scheme != "https" && scheme != "http") return {};
  const auto host_end = url.find('/', scheme_end + 3);
  const std::string_view origin = url.substr(0, host_end);
  if (origin.size() == scheme_end + 3) return {};
  for (char c : origin.substr(scheme_end + 3)) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                       c == '-' || c == ':' || c == '[' || c == ']';
    if (!plain) return {};
  }
  return std::string(origin);
}

// The peer's address, without its port, is a loopback address (127.0.0.0/8, ::1, or
// IPv4 loopback mapped into IPv6).
bool PeerIsLoopback(std::string_view remote) {
  return remote.starts_with("127.") || remote.starts_with("[::1]:") || remote.starts_with("[::ffff:127.");
}

// The Host header names this machine ("localhost", "127.0.0.1", "[::1]", with or
// without a port): a page of another name that resolves to 127.0.0.1 (DNS rebinding)
// does not get a token.
bool HostIsLoopback(std::string_view host) {
  if (host.starts_with("[")) {
    const auto close = host.find(']');
    return close != std::string_view::npos && host.substr(0, close + 1) == "[::1]";
  }
  host = host.substr(0, host.find(':'));
  return host == "localhost" || host.starts_with("127.");
}

}  // namespace

std::string ContentSecurityPolicy(const Options& options) {
  std::string issuer = options.oidc.client_id.empty() ? std::string() : Origin(options.oidc.issuer);
  if (!issuer.empty()) issuer = " " + issuer;
  return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'" + issuer +
         "; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
}

std::optional<http::Response> ServeFile(const http::Request& req, std::string_view path, const Options& options) {
  if (path == "/") path = "/index.html";
  const Asset* asset = Find(path);
  if (asset == nullptr) return std::nullopt;
  http::Response response;
  response.headers = {
      {"Content-Type", std::string(asset->content_type)},
      {"Cache-Control", asset->immutable ? "public, max-age=31536000, immutable" : "no-cache"},
      {"ETag", std::string(asset->etag)},
      {"Content-Security-Policy", ContentSecurityPolicy(options)},
      {"X-Content-Type-Options", "nosniff"},
      // The OIDC code comes back in the query string: never sent on as a referrer.
      {"Referrer-Policy", "no-referrer"},
      {"X-Frame-Options", "DENY"},
  };
  if (const auto match = req.Header("If-None-Match"); match && EtagMatches(*match, asset->etag)) {
    response.status = 304;
    return response;
  }
  response.status = 200;
  response.body = std::string(asset->body);
  return response;
}

http::Response Config(const Options& options) {
  std::string body = "{\"dev\":";
  body += options.dev_key != nullptr ? "true" : "false";
  body += ",\"fullConsole\":";
  body += IsFullConsole() ? "true" : "false";
  body += ",\"oidc\":";
  if (options.oidc.issuer.empty() || options.oidc.client_id.empty()) {
    body += "null";
  } else {
    body += "{\"issuer\":";
    AppendJsonString(body, options.oidc.issuer);
    body += ",\"clientId\":";
    AppendJsonString(body, options.oidc.client_id);
    body += ",\"scopes\":";
    AppendJsonString(body, options.oidc.scopes);
    body += "}";
  }
  body += "}";
  http::Response response = http::Response::Json(200, std::move(body));
  response.headers.push_back({"Cache-Control", "no-store"});
  return response;
}

http::Response DevToken(const http::Request& req, const Options& options) {
  if (options.dev_key == nullptr) {
    return ErrorResponse(Error::NotFound("/console/dev-token is served only by a --dev server."), req);
  }
  // A reverse proxy on this machine would make every client look local: a proxied
  // request (it names its client) is refused like a remote one.
  const bool proxied = req.Header("Forwarded").has_value() || req.Header("X-Forwarded-For").has_value();
  if (!PeerIsLoopback(req.remote) || proxied || !HostIsLoopback(req.host)) {
    return ErrorResponse(Error::PermissionDenied("The dev key signs in callers on this machine only (loopback, "
                                                 "addressed as localhost, 127.0.0.1 or [::1])."),
                         req);
  }
  // A page of another origin may POST here (a "simple" request); it is refused, even
  // though it could not read the answer.
  if (const auto origin = req.Header("Origin"); origin && *origin != req.scheme + "://" + req.host) {
    return ErrorResponse(Error::PermissionDenied("Dev sign-in is for the console of this server only."), req);
  }
  auth::DevTokenRequest request;
  // The console's pages read the directory too: group names and where people stand with
  // Apple (the Assignments page); reads only, it changes no group or user.
  request.scopes = {"DeviceManagementServiceConfig.ReadWrite.All", "DeviceManagementApps.ReadWrite.All",
                    "Group.Read.All", "User.Read.All"};
  request.ttl = kDevTokenTtl;
  auto token = options.dev_key->Sign(request);
  if (!token) return ErrorResponse(token.error(), req);
  std::string body = "{\"access_token\":";
  AppendJsonString(body, *token);
  body += ",\"token_type\":\"Bearer\",\"expires_in\":" +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kDevTokenTtl).count()) + "}";
  http::Response response = http::Response::Json(200, std::move(body));
  response.headers.push_back({"Cache-Control", "no-store"});
  return response;
}

}  // namespace vppd::graph::console

namespace vppd::graph {

namespace {
console::Options ConsoleOptions(const Dependencies& deps, const Options& options) {
  return {.dev_key = deps.dev_key, .oidc = options.console_oidc};
}
}  // namespace

Result<http::Response> Api::Impl::ConsoleFile(const Call& c) const {
  const std::string_view target = c.req.target;
  const std::string_view path = target.substr(0, target.find('?'));
  if (auto file = console::ServeFile(c.req, path, ConsoleOptions(deps, options))) return std::move(*file);
  return Fail(Error::NotFound("The console has no file '" + std::string(path.substr(0, 200)) + "'."));
}

Result<http::Response> Api::Impl::ConsoleConfig(const Call&) const {
  return console::Config(ConsoleOptions(deps, options));
}

Result<http::Response> Api::Impl::ConsoleDevToken(const Call& c) const {
  return console::DevToken(c.req, ConsoleOptions(deps, options));
}

}  // namespace vppd::graph
