// vppd: the command line. `serve` runs the Graph endpoint; `dev-token` signs
// development tokens; `tenant` manages tenant records.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "auth/auth.h"
#include "base/log.h"
#include "cli/config.h"
#include "cli/demo.h"
#include "cli/migrate_store.h"
#include "cli/runtime.h"
#include "cli/sync_command.h"
#include "service/service.h"

namespace vppd::cli {
namespace {

int Die(const Error& e) {
  std::fprintf(stderr, "vppd: %s\n", e.message.c_str());
  return e.code == Code::kInvalidArgument ? 2 : 1;
}

void PrintDevInstructions(const Settings& s, std::uint16_t port, const auth::DevKey& key) {
  auth::DevTokenRequest req;
  req.scopes = {"DeviceManagementServiceConfig.ReadWrite.All", "DeviceManagementApps.ReadWrite.All"};
  req.ttl = std::chrono::hours(8);
  auto token = key.Sign(req);
  if (!token) return;
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  std::printf(
      "\nDev mode: tenant %s is registered and licensed; this token is valid for 8 hours:\n\n"
      "  export TOKEN=%s\n\n"
      "Make another with: vppd dev-token --data-dir %s\n\n"
      "Try:\n"
      "  curl -s %s/beta/deviceAppManagement/vppTokens -H \"Authorization: Bearer $TOKEN\"\n"
      "  curl -s -X POST %s/beta/deviceAppManagement/vppTokens -H \"Authorization: Bearer $TOKEN\" \\\n"
      "       -H 'Content-Type: application/json' -d '{\"token\":\"<contents of your .vpptoken file>\"}'\n\n",
      auth::kDevTenantId, token->c_str(), s.data_dir.c_str(), base.c_str(), base.c_str());
  std::fflush(stdout);
}

// The process logger for `serve` (json unless asked otherwise) and `demo` (text).
void InitLogging(const Settings& s, log::Format fallback) {
  auto format = s.log_format.empty() ? fallback : log::ParseFormat(s.log_format).value_or(fallback);
  log::Init(format, s.log_level);
}

int Serve(const Settings& s) {
  if (auto ok = Validate(s); !ok) return Die(ok.error());
  InitLogging(s, log::Format::kJson);
  auto rt = StartRuntime(s);
  if (!rt) return Die(rt.error());
  const std::uint16_t port = (*rt)->server->port();
  std::printf("vppd listening on http://%s:%u\n", ParseListen(s.listen)->first.c_str(), port);
  std::fflush(stdout);
  if ((*rt)->dev_key) PrintDevInstructions(s, port, *(*rt)->dev_key);
  spdlog::info("serving (data dir {}, permission profile {}, Apple at {})", s.data_dir, s.permission_profile,
               s.apple_url);
  (*rt)->server->RunUntilSignal();
  (*rt)->Shutdown();
  spdlog::info("stopped");
  return 0;
}

std::vector<std::string> SplitSpaces(const std::string& s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    const auto j = s.find(' ', i);
    if (j != i) out.push_back(s.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) break;
    i = j + 1;
  }
  return out;
}

// `vppd tokens list`: one line per token, read straight from the store.
int ListTokens(store::Store& store, const std::string& only_tenant) {
  auto tenants = store.ListTenants();
  if (!tenants) return Die(tenants.error());
  std::printf("%-36s  %-36s  %-21s  %-10s  %-20s  %5s  %s\n", "TENANT", "TOKEN", "STATE", "LAST SYNC", "SYNCED AT",
              "APPS", "NAME / LAST ERROR");
  for (const auto& tenant : *tenants) {
    if (!only_tenant.empty() && tenant.id != only_tenant) continue;
    store::ListQuery query;
    query.limit = 1000;
    for (;;) {
      auto page = store.ListTokens(tenant.id, query);
      if (!page) return Die(page.error());
      for (const auto& t : page->items) {
        const std::string synced = t.last_sync == 0 ? "never" : FormatIso8601(t.last_sync - t.last_sync % 1'000'000);
        std::string name = t.display_name.value_or(t.organization_name.value_or(""));
        if (!t.last_sync_error.empty()) name += "  [" + t.last_sync_error + "]";
        std::printf("%-36s  %-36s  %-21s  %-10s  %-20s  %5d  %s\n", tenant.id.c_str(), t.id.c_str(), t.state.c_str(),
                    t.last_sync_status.c_str(), synced.c_str(), t.last_app_count, name.c_str());
      }
      if (!page->has_more) break;
      query.skip += query.limit;
    }
  }
  return 0;
}

}  // namespace

int Main(int argc, char** argv) {
  // Operator commands (tokens, sync, tenant, dev-token) print their results on
  // stdout; their log says only what went wrong, as text. serve and demo choose below.
  log::Init(log::Format::kText, "warn");

  Settings settings;
  if (auto ok = LoadConfigFile(argc, argv, settings); !ok) return Die(ok.error());

  CLI::App app{"vppd: Microsoft Graph's Intune vppTokens API, self-hosted, syncing Apple VPP licenses"};
  app.require_subcommand(1);

  CLI::App* serve = app.add_subcommand("serve", "Run the Graph endpoint");
  AddServeOptions(*serve, settings);

  CLI::App* demo = app.add_subcommand(
      "demo", "Run the simulator and vppd (dev mode, SQLite) together, add the simulator's location, sync it, "
              "and print how to call it");
  DemoOptions demo_options;
  AddServeOptions(*demo, settings);
  demo->add_option("--sim-assets", demo_options.assets, "Assets of the simulated location")->capture_default_str();
  demo->add_option("--sim-assignments", demo_options.assignments, "License assignments of the simulated location")
      ->capture_default_str();
  demo->add_option("--sim-seed", demo_options.seed, "Seed of the simulated data")->capture_default_str();

  // dev-token
  CLI::App* dev_token = app.add_subcommand("dev-token", "Print a JWT that a --dev server with the same data dir accepts");
  std::string tenant, scopes, roles, audience = "https://graph.microsoft.com";
  bool msa = false;
  long ttl = 3600;
  dev_token->add_option("--data-dir", settings.data_dir, "The --dev server's data dir")->capture_default_str();
  dev_token->add_option("--tenant", tenant, "Tenant id (default: the dev tenant)");
  dev_token->add_option("--scopes", scopes, "Delegated permissions, space-separated (scp)");
  dev_token->add_option("--roles", roles, "Application permissions, space-separated (roles): an app-only token");
  dev_token->add_flag("--msa", msa, "A personal Microsoft account token");
  dev_token->add_option("--ttl", ttl, "Seconds until expiry; negative gives an expired token")->capture_default_str();
  dev_token->add_option("--audience", audience, "aud claim")->capture_default_str();

  // tenant
  CLI::App* tenant_cmd = app.add_subcommand("tenant", "Manage tenant records");
  tenant_cmd->require_subcommand(1);
  tenant_cmd->fallthrough();  // `vppd tenant add ID --data-dir D` as well as `vppd tenant --data-dir D add ID`
  AddStoreOptions(*tenant_cmd, settings);
  std::string tenant_id, tenant_name, license_state;
  bool unlicensed = false, yes = false;
  CLI::App* t_add = tenant_cmd->add_subcommand("add", "Add (or replace) a tenant");
  t_add->add_option("id", tenant_id, "Tenant id (GUID)")->required();
  t_add->add_option("--name", tenant_name, "Display name");
  t_add->add_flag("--unlicensed", unlicensed, "Record the tenant without an active Intune license");
  CLI::App* t_list = tenant_cmd->add_subcommand("list", "List tenants");
  CLI::App* t_license = tenant_cmd->add_subcommand("set-license", "Set a tenant's Intune license flag");
  t_license->add_option("id", tenant_id, "Tenant id")->required();
  t_license->add_option("state", license_state, "on or off")->required()->check(CLI::IsMember({"on", "off"}));
  CLI::App* t_remove = tenant_cmd->add_subcommand("remove", "Remove a tenant and all its data");
  t_remove->add_option("id", tenant_id, "Tenant id")->required();
  t_remove->add_flag("--yes", yes, "Do not ask for confirmation");

  // tokens
  CLI::App* tokens_cmd = app.add_subcommand("tokens", "Inspect vppTokens (for operators)");
  tokens_cmd->require_subcommand(1);
  tokens_cmd->fallthrough();
  AddStoreOptions(*tokens_cmd, settings);
  CLI::App* tokens_list = tokens_cmd->add_subcommand(
      "list", "Every token of every tenant (or of --tenant): state, last sync, apps, and why the last sync failed");
  std::string tokens_tenant;
  tokens_list->add_option("--tenant", tokens_tenant, "Only this tenant");

  // migrate-store
  CLI::App* migrate = app.add_subcommand(
      "migrate-store", "Copy a deployment to another store (e.g. SQLite to PostgreSQL) and verify the copy");
  MigrateOptions migrate_options;
  migrate->add_option("--from", migrate_options.from, "sqlite:PATH (vppd.db or its data dir) or postgresql://...")
      ->required();
  migrate->add_option("--to", migrate_options.to, "postgresql://... or sqlite:PATH; must be empty")->required();
  migrate->add_option("--secrets-key-file", migrate_options.key_file,
                      "The sToken key both use (default: secret.key next to the SQLite database)");

  // sync
  CLI::App* sync_cmd = app.add_subcommand(
      "sync", "Queue a syncLicenses of a vppToken (as the Graph action does) for the vppd serving this data dir; "
              "--wait follows it to the end");
  SyncCommand sync_options;
  sync_cmd->add_option("token_id", sync_options.token_id, "The vppToken's id (vppd tokens list)")->required();
  AddStoreOptions(*sync_cmd, settings);
  sync_cmd->add_option("--tenant", sync_options.tenant_id, "Only look for the token in this tenant");
  sync_cmd->add_option("--secrets-key-file", settings.key_file,
                       "The server's sToken key file when it is not <data-dir>/secret.key")
      ->envname("VPPD_SECRETS_KEY_FILE");
  sync_cmd->add_flag("--wait", sync_options.wait,
                     "Follow the sync to its end: exit 0 when it completed, 1 with the reason when it failed");
  sync_cmd->add_option("--timeout", sync_options.timeout_seconds,
                       "With --wait: give up after this many seconds (exit 3; the sync goes on)")
      ->check(CLI::Range(0.0, 86'400.0))
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (serve->parsed()) return Serve(settings);
  if (demo->parsed()) {
    if (auto ok = Validate(settings); !ok) return Die(ok.error());
    InitLogging(settings, log::Format::kText);
    return RunDemo(settings, demo_options);
  }

  if (dev_token->parsed()) {
    auto key = auth::DevKey::LoadOrCreate(settings.data_dir);
    if (!key) return Die(key.error());
    auth::DevTokenRequest req;
    req.tenant_id = tenant;
    req.scopes = SplitSpaces(scopes);
    req.roles = SplitSpaces(roles);
    if (scopes.empty() && roles.empty()) req.scopes = {"DeviceManagementServiceConfig.ReadWrite.All"};
    req.personal_account = msa;
    req.ttl = std::chrono::seconds(ttl);
    req.audience = audience;
    auto token = key->Sign(req);
    if (!token) return Die(token.error());
    std::printf("%s\n", token->c_str());
    return 0;
  }

  if (migrate->parsed()) {
    if (auto ok = MigrateStore(migrate_options, stdout); !ok) return Die(ok.error());
    return 0;
  }

  if (sync_cmd->parsed()) {
    return RunSyncCommand(sync_options, settings);
  }

  if (tokens_cmd->parsed()) {
    auto store = OpenStore(settings);
    if (!store) return Die(store.error());
    return ListTokens(**store, tokens_tenant);
  }

  if (tenant_cmd->parsed()) {
    auto store = OpenStore(settings);
    if (!store) return Die(store.error());
    service::Tenants tenants(**store);
    if (t_add->parsed()) {
      if (auto ok = tenants.Put(tenant_id, tenant_name, !unlicensed); !ok) return Die(ok.error());
      std::printf("tenant %s added (%s)\n", tenant_id.c_str(), unlicensed ? "unlicensed" : "licensed");
      return 0;
    }
    if (t_list->parsed()) {
      auto list = tenants.List();
      if (!list) return Die(list.error());
      std::printf("%-36s  %-8s  %s\n", "ID", "LICENSED", "NAME");
      for (const auto& t : *list) {
        std::printf("%-36s  %-8s  %s\n", t.id.c_str(), t.intune_licensed ? "yes" : "no", t.display_name.c_str());
      }
      return 0;
    }
    if (t_license->parsed()) {
      if (auto ok = tenants.SetLicense(tenant_id, license_state == "on"); !ok) return Die(ok.error());
      std::printf("tenant %s license %s\n", tenant_id.c_str(), license_state.c_str());
      return 0;
    }
    if (t_remove->parsed()) {
      if (!yes) {
        if (!::isatty(STDIN_FILENO)) {
          return Die(Error::InvalidArgument("removing a tenant deletes all its data; pass --yes to confirm"));
        }
        std::printf("Remove tenant %s and ALL its vppTokens, apps and licenses? Type 'yes': ", tenant_id.c_str());
        std::fflush(stdout);
        std::string answer;
        std::getline(std::cin, answer);
        if (answer != "yes") {
          std::printf("not removed\n");
          return 1;
        }
      }
      if (auto ok = tenants.Remove(tenant_id); !ok) return Die(ok.error());
      std::printf("tenant %s removed\n", tenant_id.c_str());
      return 0;
    }
  }
  return 0;
}

}  // namespace vppd::cli

int main(int argc, char** argv) { return vppd::cli::Main(argc, argv); }
