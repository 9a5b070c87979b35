#include "cli/demo.h"

#include <cstdio>
#include <thread>

#include <spdlog/spdlog.h>

#include "base/terminal_text.h"
#include "cli/runtime.h"
#include "simulator.h"

namespace vppd::cli {
namespace {

constexpr char kDemoName[] = "vppd demo location";

int Die(const Error& e) {
  std::fprintf(stderr, "vppd demo: %s\n", TerminalSafe(e.message).c_str());
  return 1;
}

}  // namespace

int RunDemo(Settings s, const DemoOptions& options) {
  // 1. Apple, simulated.
  sim::SimOptions sim_options;
  sim_options.locations = 2;
  sim_options.assets = options.assets;
  sim_options.assignments = options.assignments;
  sim_options.seed = options.seed;
  auto simulator = sim::Simulator::Create(sim_options, Clock::Real());
  if (!simulator) return Die(simulator.error());
  auto sim_listen = ParseListen(options.sim_listen);
  if (!sim_listen) return Die(sim_listen.error());
  http::ServerOptions sim_http;
  sim_http.host = sim_listen->first;
  sim_http.port = sim_listen->second;
  sim_http.threads = 1;
  sim::Simulator* sim = simulator->get();
  auto sim_server = http::Server::Start(sim_http, [sim](http::Request& r) { return sim->Handle(r); });
  if (!sim_server) return Die(sim_server.error());
  // vppd calls it on the address it listens on (a wildcard address is reached on loopback).
  std::string sim_host = sim_listen->first;
  if (sim_host == "0.0.0.0" || sim_host == "::" || sim_host.empty()) sim_host = "127.0.0.1";
  if (sim_host.find(':') != std::string::npos) sim_host = "[" + sim_host + "]";
  const std::string sim_base = "http://" + sim_host + ":" + std::to_string((*sim_server)->port());

  // 2. vppd, dev mode, against it.
  s.dev = true;
  s.apple_url = sim_base + "/mdm/v2";
  // The simulator is not Apple: it does not ask for 30 s between polls of an event, and a
  // licence handed out in the demo should show as granted within a second or two. A value
  // set explicitly (flag, VPPD_*, TOML) is kept.
  if (s.sync_event_poll_ms == Settings{}.sync_event_poll_ms) s.sync_event_poll_ms = 1'000;
  auto rt = StartRuntime(s);
  if (!rt) return Die(rt.error());
  const std::uint16_t port = (*rt)->server->port();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);

  // 3. The simulator's location as a vppToken of the dev tenant (renewed when a
  //    previous demo left one in this data dir), which queues its first sync.
  service::Principal admin;
  admin.tenant_id = auth::kDevTenantId;
  admin.scopes = {"DeviceManagementServiceConfig.ReadWrite.All", "DeviceManagementApps.ReadWrite.All"};
  service::TokenChanges changes;
  changes.token = sim->DefaultSToken();
  changes.display_name = std::optional<std::string>(kDemoName);
  store::ListQuery existing_query;
  existing_query.filter = store::Expr::Apply(
      store::Op::kEq, {store::Expr::Of(store::Column::kTokenDisplayName), store::Expr::Value(kDemoName)});
  auto existing = (*rt)->tokens->List(admin, existing_query);
  if (!existing) return Die(existing.error());
  auto token = existing->items.empty() ? (*rt)->tokens->Create(admin, changes)
                                       : (*rt)->tokens->Update(admin, existing->items.front().id, changes);
  if (!token) return Die(token.error());

  std::printf("vppd listening on %s (demo; Apple simulated at %s)\n", base.c_str(), sim_base.c_str());
  std::fflush(stdout);
  std::printf("Waiting for the first sync of '%s'...\n", kDemoName);
  std::fflush(stdout);
  for (int i = 0; i < 600; ++i) {
    auto now = (*rt)->tokens->Get(admin, token->id);
    if (now && now->last_sync_status != "inProgress") {
      token = std::move(now);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::printf("  lastSyncStatus=%s state=%s apps=%d location='%s'%s%s\n", token->last_sync_status.c_str(),
              token->state.c_str(), token->last_app_count, TerminalSafe(token->location_name.value_or("")).c_str(),
              token->last_sync_error.empty() ? "" : " error: ", TerminalSafe(token->last_sync_error).c_str());

  // An iOS app of the token for $APP (the walk-through reads its assignedLicenses
  // through the iosVppApp cast), and its bundle id for getLicensesForApp.
  std::string app_id, bundle_hint = "com.example.app";
  store::ListQuery ios_apps;
  ios_apps.filter = store::Expr::Apply(
      store::Op::kAnd,
      {store::Expr::Apply(store::Op::kEq, {store::Expr::Of(store::Column::kAppTokenId), store::Expr::Value(token->id)}),
       store::Expr::Apply(store::Op::kEq, {store::Expr::Of(store::Column::kAppPlatform), store::Expr::Value("iOS")})});
  ios_apps.limit = 200;
  if (auto apps = (*rt)->apps->List(admin, ios_apps); apps) {
    for (const auto& app : apps->items) {
      if (app.platform != "iOS" || app.bundle_id.empty()) continue;
      app_id = app.id;
      bundle_hint = app.bundle_id;
      break;
    }
  }
  auth::DevTokenRequest req;
  req.scopes = admin.scopes;
  req.ttl = std::chrono::hours(8);
  auto jwt = (*rt)->dev_key->Sign(req);
  if (!jwt) return Die(jwt.error());
  const std::string t = "vppTokens/" + token->id;
  std::printf("\nConsole: %s/  (in a browser on this machine; one click signs in with the dev key)\n", base.c_str());
  std::printf(
      "\nA dev token (tenant %s, 8 hours), the demo's vppToken and one of its apps:\n\n"
      "  export TOKEN=%s\n  export ID=%s\n  export APP=%s\n  V=%s/beta/deviceAppManagement\n\n"
      "The seed's request — sync the token's licenses:\n"
      "  curl -s -X POST %s/beta/deviceAppManagement/%s/syncLicenses -H \"Authorization: Bearer $TOKEN\"\n\n"
      "Read it back, and what the sync found:\n"
      "  curl -s %s/beta/deviceAppManagement/%s -H \"Authorization: Bearer $TOKEN\"\n"
      "  curl -s '%s/beta/deviceAppManagement/mobileApps?$top=5&$select=displayName,bundleId,totalLicenseCount,"
      "usedLicenseCount' -H \"Authorization: Bearer $TOKEN\"\n"
      "  curl -s \"%s/beta/deviceAppManagement/vppTokens/getLicensesForApp(bundleId='%s')\" "
      "-H \"Authorization: Bearer $TOKEN\"\n\n"
      "Ctrl-C stops both.\n",
      auth::kDevTenantId, jwt->c_str(), token->id.c_str(), app_id.c_str(), base.c_str(), base.c_str(), t.c_str(),
      base.c_str(), t.c_str(), base.c_str(), base.c_str(), TerminalSafe(bundle_hint).c_str());
  std::fflush(stdout);
  (*rt)->server->RunUntilSignal();
  (*rt)->Shutdown();
  (*sim_server)->Stop();
  return 0;
}

}  // namespace vppd::cli
