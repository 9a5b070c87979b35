// The admin console (web/): a static single-page Graph client, built by Vite into
// web/dist and embedded in the binary by cmake/embed_console.cmake. vppd serves it at
// "/" (index.html) and "/assets/*" without authentication: the files hold no tenant data;
// the console signs in and then calls the public Graph routes like any other client.
//
// Beside the files, two anonymous routes that the console needs before it has a token:
//   GET  /console/config.json   {"dev": bool, "oidc": {"issuer","clientId","scopes"} | null}
//   POST /console/dev-token     a --dev server only, to loopback callers only: a dev token
//                               {"access_token","token_type","expires_in"} signed with the
//                               server's dev key (what `vppd dev-token` prints).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "graph/graph.h"
#include "http/server.h"

namespace vppd::graph::console {

// One embedded file.
struct Asset {
  std::string_view path;          // "/index.html", "/assets/index-3f9a1c.js"
  std::string_view content_type;  // from the extension
  std::string_view body;
  std::string_view etag;  // quoted: "\"1a2b…\""
  bool immutable;         // content-hashed name (under /assets/): cacheable for good
};

// Defined in the generated console_assets.cc: the built console, or, when web/dist was
// not built (no Node on the build machine), one index.html that says how to get it.
std::span<const Asset> Assets();
bool IsFullConsole();

struct Options {
  // Non-null on a --dev server: /console/dev-token signs with it (loopback callers only).
  const auth::DevKey* dev_key = nullptr;
  ConsoleOidc oidc;  // graph.h
};

// GET/HEAD "/", "/index.html" and "/assets/<file>": the embedded file with its Content-Type,
// Cache-Control (immutable for hashed assets, no-cache for index.html), ETag (304 on
// If-None-Match), and the console's Content-Security-Policy. nullopt: no such file.
std::optional<http::Response> ServeFile(const http::Request& req, std::string_view path, const Options& options);

// GET /console/config.json.
http::Response Config(const Options& options);

// POST /console/dev-token. 404 unless options.dev_key is set; 403 to a peer that is not on
// loopback or a request whose Origin is not this server (another site's page). The
// token: the dev tenant, delegated DeviceManagementServiceConfig.ReadWrite.All,
// DeviceManagementApps.ReadWrite.All, Group.Read.All and User.Read.All, 8 hours.
http::Response DevToken(const http::Request& req, const Options& options);

// The Content-Security-Policy of every console file: scripts, styles and connections to
// this origin only (plus the OIDC issuer's origin, for discovery and the token exchange).
std::string ContentSecurityPolicy(const Options& options);

}  // namespace vppd::graph::console
