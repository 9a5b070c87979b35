// vppd: the command line. `serve` runs the Graph endpoint; `dev-token` signs
// development tokens; `tenant` manages tenant records.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "auth/auth.h"
#include "base/json_escape.h"
#include "base/log.h"
#include "base/terminal_text.h"
#include "cli/backup.h"
#include "cli/config.h"
#include "cli/demo.h"
#include "cli/import.h"
#include "cli/migrate_store.h"
#include "cli/reconcile_command.h"
#include "cli/runtime.h"
#include "cli/sync_command.h"
#include "service/service.h"

namespace vppd::cli {
namespace {

int Die(const Error& e) {
  std::fprintf(stderr, "vppd: %s\n", TerminalSafe(e.message).c_str());
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
      "\nConsole: %s/  (in a browser on this machine; one click signs in with the dev key)\n"
      "\nDev mode: tenant %s is registered and licensed; this token is valid for 8 hours:\n\n"
      "  export TOKEN=%s\n\n"
      "Make another with: vppd dev-token --data-dir %s\n\n"
      "Try:\n"
      "  curl -s %s/beta/deviceAppManagement/vppTokens -H \"Authorization: Bearer $TOKEN\"\n"
      "  curl -s -X POST %s/beta/deviceAppManagement/vppTokens -H \"Authorization: Bearer $TOKEN\" \\\n"
      "       -H 'Content-Type: application/json' -d '{\"token\":\"<contents of your .vpptoken file>\"}'\n\n",
      base.c_str(), auth::kDevTenantId, token->c_str(), s.data_dir.c_str(), base.c_str(), base.c_str());
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
  std::printf("vppd listening on %s://%s:%u\n", s.tls_cert_file.empty() ? "http" : "https",
              ParseListen(s.listen)->first.c_str(), port);
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

// How `vppd tokens list` prints.
enum class ListFormat { kTable, kJson, kCsv };

// One token as `vppd tokens list` shows it; the texts as stored (printing escapes them).
struct TokenRow {
  std::string tenant, id, state, last_sync_status, synced, expires, name, organization, error;
  int apps = 0;
  std::string reconcile;  // the last reconciliation's report (JSON), empty when never reconciled
};

// A CSV field (RFC 4180): control characters escaped like everywhere else, quoted
// when it holds a comma, a quote or edge spaces; a leading = + - @ gets a ' so that
// a spreadsheet does not run it as a formula.
std::string CsvField(const std::string& value) {
  std::string text = TerminalSafe(value);
  if (!text.empty() && (text[0] == '=' || text[0] == '+' || text[0] == '-' || text[0] == '@')) text.insert(0, "'");
  if (text.find_first_of(",\"") == std::string::npos && (text.empty() || (text.front() != ' ' && text.back() != ' '))) {
    return text;
  }
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// A JSON string for the operator's terminal or pipe: JSON's escapes, and the C1
// controls JSON allows raw as \u0080..\u009f too.
std::string JsonField(const std::string& value) {
  std::string out = "\"";
  out += TerminalSafe(JsonEscape(value, JsonEscaping::kSanitized));
  return out + "\"";
}

void PrintTokens(const std::vector<TokenRow>& rows, ListFormat format) {
  if (format == ListFormat::kJson) {
    std::printf("[");
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const TokenRow& r = rows[i];
      const auto opt = [](const std::string& v) { return v.empty() ? std::string("null") : JsonField(v); };
      std::printf(
          "%s\n  {\"tenantId\":%s,\"id\":%s,\"displayName\":%s,\"organizationName\":%s,\"state\":%s,"
          "\"lastSyncStatus\":%s,\"lastSyncDateTime\":%s,\"expirationDateTime\":%s,\"lastAppCount\":%d,"
          "\"lastSyncError\":%s,\"lastReconcile\":%s}",
          i == 0 ? "" : ",", JsonField(r.tenant).c_str(), JsonField(r.id).c_str(), opt(r.name).c_str(),
          opt(r.organization).c_str(), JsonField(r.state).c_str(), JsonField(r.last_sync_status).c_str(),
          opt(r.synced).c_str(), opt(r.expires).c_str(), r.apps, opt(r.error).c_str(),
          r.reconcile.empty() ? "null" : TerminalSafe(r.reconcile).c_str());
    }
    std::printf("%s]\n", rows.empty() ? "" : "\n");
    return;
  }
  if (format == ListFormat::kCsv) {
    std::printf("tenant,token,state,last_sync,synced_at,expires,apps,name,organization,last_error,licences\n");
    for (const TokenRow& r : rows) {
      std::printf("%s,%s,%s,%s,%s,%s,%d,%s,%s,%s,%s\n", CsvField(r.tenant).c_str(), CsvField(r.id).c_str(),
                  CsvField(r.state).c_str(), CsvField(r.last_sync_status).c_str(), CsvField(r.synced).c_str(),
                  CsvField(r.expires).c_str(), r.apps, CsvField(r.name).c_str(), CsvField(r.organization).c_str(),
                  CsvField(r.error).c_str(), CsvField(DescribeReconcileReport(r.reconcile)).c_str());
    }
    return;
  }
  std::printf("%-36s  %-36s  %-21s  %-10s  %-20s  %-20s  %5s  %s\n", "TENANT", "TOKEN", "STATE", "LAST SYNC",
              "SYNCED AT", "EXPIRES", "APPS", "NAME / LAST ERROR");
  for (const TokenRow& r : rows) {
    std::string name = r.name.empty() ? r.organization : r.name;
    if (!r.error.empty()) name += "  [" + r.error + "]";
    if (!r.reconcile.empty()) name += "  {device licences: " + DescribeReconcileReport(r.reconcile) + "}";
    std::printf("%-36s  %-36s  %-21s  %-10s  %-20s  %-20s  %5d  %s\n", TerminalSafe(r.tenant).c_str(),
                TerminalSafe(r.id).c_str(), TerminalSafe(r.state).c_str(), TerminalSafe(r.last_sync_status).c_str(),
                r.synced.empty() ? "never" : r.synced.c_str(), r.expires.empty() ? "unknown" : r.expires.c_str(),
                r.apps, TerminalSafe(name).c_str());
  }
}

// `vppd tokens list`: one line (or object, or record) per token, read straight from the store.
int ListTokens(store::Store& store, const std::string& only_tenant, ListFormat format) {
  auto tenants = store.ListTenants();
  if (!tenants) return Die(tenants.error());
  std::vector<TokenRow> rows;
  const auto seconds = [](Timestamp t) { return t == 0 ? std::string() : FormatIso8601(t - t % 1'000'000); };
  for (const auto& tenant : *tenants) {
    if (!only_tenant.empty() && tenant.id != only_tenant) continue;
    store::ListQuery query;
    query.limit = 1000;
    for (;;) {
      auto page = store.ListTokens(tenant.id, query);
      if (!page) return Die(page.error());
      for (const auto& t : page->items) {
        rows.push_back({.tenant = tenant.id,
                        .id = t.id,
                        .state = t.state,
                        .last_sync_status = t.last_sync_status,
                        .synced = seconds(t.last_sync),
                        .expires = seconds(t.expiration),
                        .name = t.display_name.value_or(""),
                        .organization = t.organization_name.value_or(""),
                        .error = t.last_sync_error,
                        .apps = t.last_app_count,
                        .reconcile = ""});
        auto report = store.GetReconcileReport(tenant.id, t.id);
        if (report) rows.back().reconcile = report->first;
      }
      if (!page->has_more) break;
      query.skip += query.limit;
    }
  }
  PrintTokens(rows, format);
  return 0;
}

}  // namespace

int Main(int argc, char** argv) {
  // Operator commands (tokens, sync, tenant, dev-token) print their results on
  // stdout; their log says only what went wrong, as text. serve and demo choose below.
  log::Init(log::Format::kText, "warn");

  Settings settings;
  if (auto ok = LoadConfigFile(argc, argv, settings); !ok) return Die(ok.error());
  if (auto ok = ApplyEnvironment(settings); !ok) return Die(ok.error());

  CLI::App app{"vppd: Microsoft Graph's Intune vppTokens API, self-hosted, syncing Apple VPP licenses"};
  app.require_subcommand(1);

  CLI::App* serve = app.add_subcommand("serve", "Run the Graph endpoint");
  AddServeOptions(*serve, settings);

  CLI::App* demo = app.add_subcommand(
      "demo",
      "Run the simulator and vppd (dev mode, SQLite) together, add the simulator's location, sync it, "
      "and print how to call it");
  DemoOptions demo_options;
  AddServeOptions(*demo, settings, {"apple_url", "dev"});  // the demo's Apple is its simulator; always dev mode
  demo->add_option("--sim-listen", demo_options.sim_listen, "Address of the simulator, HOST:PORT (port 0 picks one)")
      ->capture_default_str();
  demo->add_option("--sim-assets", demo_options.assets, "Assets of the simulated location")->capture_default_str();
  demo->add_option("--sim-assignments", demo_options.assignments, "License assignments of the simulated location")
      ->capture_default_str();
  demo->add_option("--sim-seed", demo_options.seed, "Seed of the simulated data")->capture_default_str();

  // dev-token
  CLI::App* dev_token =
      app.add_subcommand("dev-token", "Print a JWT that a --dev server with the same data dir accepts");
  std::string tenant, scopes, roles, audience = "https://graph.microsoft.com";
  bool msa = false;
  long ttl = 3600;
  AddSettingOption(*dev_token, settings, *FindSetting("data_dir"));
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
  bool tokens_json = false, tokens_csv = false;
  tokens_list->add_option("--tenant", tokens_tenant, "Only this tenant");
  CLI::Option* json_flag = tokens_list->add_flag(
      "--json", tokens_json, "A JSON array, one object per token (Graph's property names, tenantId and lastSyncError)");
  tokens_list->add_flag("--csv", tokens_csv, "CSV with a header line")->excludes(json_flag);

  // migrate-store
  CLI::App* migrate = app.add_subcommand(
      "migrate-store", "Copy a deployment to another store (e.g. SQLite to PostgreSQL) and verify the copy");
  MigrateOptions migrate_options;
  migrate->add_option("--from", migrate_options.from, "sqlite:PATH (vppd.db or its data dir) or postgresql://...")
      ->required();
  migrate->add_option("--to", migrate_options.to, "postgresql://... or sqlite:PATH; must be empty")->required();
  migrate->add_option("--secrets-key-file", migrate_options.key_file,
                      "The sToken key both use (default: secret.key next to the SQLite database)");

  // backup
  CLI::App* backup = app.add_subcommand(
      "backup", "Copy the SQLite store to DEST while vppd serves (a consistent copy; PostgreSQL: use pg_dump)");
  std::string backup_dest;
  backup->add_option("dest", backup_dest, "The backup file to write; must not exist")->required();
  backup->add_option("--config", settings.config_file, "TOML configuration file (for data_dir)")
      ->envname("VPPD_CONFIG");
  AddStoreOptions(*backup, settings);

  // sync
  CLI::App* sync_cmd = app.add_subcommand(
      "sync",
      "Queue a syncLicenses of a vppToken (as the Graph action does) for the vppd serving this data dir; "
      "--wait follows it to the end");
  SyncCommand sync_options;
  sync_cmd->add_option("token_id", sync_options.token_id, "The vppToken's id (vppd tokens list)")->required();
  AddStoreOptions(*sync_cmd, settings);
  sync_cmd->add_option("--tenant", sync_options.tenant_id, "Only look for the token in this tenant");
  sync_cmd->add_flag("--wait", sync_options.wait,
                     "Follow the sync to its end: exit 0 when it completed, 1 with the reason when it failed");
  sync_cmd
      ->add_option("--timeout", sync_options.timeout_seconds,
                   "With --wait: give up after this many seconds (exit 3; the sync goes on)")
      ->check(CLI::Range(0.0, 86'400.0))
      ->capture_default_str();

  // reconcile
  CLI::App* reconcile_cmd = app.add_subcommand(
      "reconcile",
      "Hand out and take back a vppToken's device licences now, as its app assignments and the directory say, for "
      "the vppd serving this data dir; --wait follows it to the end");
  ReconcileCommand reconcile_options;
  reconcile_cmd->add_option("token_id", reconcile_options.token_id, "The vppToken's id (vppd tokens list)")->required();
  AddStoreOptions(*reconcile_cmd, settings);
  reconcile_cmd->add_option("--tenant", reconcile_options.tenant_id, "Only look for the token in this tenant");
  reconcile_cmd->add_flag("--force", reconcile_options.force,
                          "Reclaim beyond assign.max_reclaim_fraction in this pass (what a safety cap held back)");
  reconcile_cmd->add_flag("--wait", reconcile_options.wait,
                          "Follow the pass (and Apple's events) to its end and print what the token's devices hold");
  reconcile_cmd
      ->add_option("--timeout", reconcile_options.timeout_seconds,
                   "With --wait: give up after this many seconds (exit 3; the reconcile goes on)")
      ->check(CLI::Range(0.0, 86'400.0))
      ->capture_default_str();
  // import
  CLI::App* import_cmd = app.add_subcommand(
      "import", "Import devices, users or groups from a CSV file into the directory (one transaction; README.md)");
  ImportCommand import_options;
  import_cmd->add_option("kind", import_options.kind, "devices, users or groups")
      ->required()
      ->check(CLI::IsMember({"devices", "users", "groups"}));
  import_cmd->add_option("file", import_options.file, "The CSV file; its first line names the columns")->required();
  AddStoreOptions(*import_cmd, settings);
  import_cmd->add_option("--tenant", import_options.tenant_id, "The tenant (default: the store's only tenant)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ValidationError& e) {
    // A value the settings table refused: the same message and status as from TOML or env.
    return Die(Error::InvalidArgument(e.what()));
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (serve->parsed()) return Serve(settings);
  if (demo->parsed()) {
    if (auto ok = Validate(settings); !ok) return Die(ok.error());
    if (auto ok = ParseListen(demo_options.sim_listen); !ok) {
      return Die(Error::InvalidArgument("--sim-listen must be HOST:PORT, not '" + demo_options.sim_listen + "'"));
    }
    InitLogging(settings, log::Format::kText);
    return RunDemo(settings, demo_options);
  }

  if (dev_token->parsed()) {
    // Only a --dev server's key: a key made here would be one no server trusts.
    const std::string key_file = settings.data_dir + "/" + auth::DevKey::kFileName;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(key_file, ec)) {
      return Die(Error::NotFound("no dev signing key at '" + key_file + "': `vppd serve --dev --data-dir " +
                                 settings.data_dir + "` (or vppd demo) creates it"));
    }
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

  if (import_cmd->parsed()) {
    // A file is one transaction, which may outlast the store's default statement timeout.
    constexpr int kImportTimeoutMs = 30 * 60 * 1000;
    auto store = OpenExistingStore(settings, kImportTimeoutMs);
    if (!store) return Die(store.error());
    return RunImport(import_options, **store, stdout, stderr);
  }

  if (backup->parsed()) {
    if (auto ok = Backup(settings, backup_dest, stdout); !ok) return Die(ok.error());
    return 0;
  }

  if (sync_cmd->parsed()) {
    return RunSyncCommand(sync_options, settings);
  }
  if (reconcile_cmd->parsed()) {
    return RunReconcileCommand(reconcile_options, settings);
  }

  if (tokens_cmd->parsed()) {
    auto store = OpenExistingStore(settings);
    if (!store) return Die(store.error());
    return ListTokens(**store, tokens_tenant,
                      tokens_json  ? ListFormat::kJson
                      : tokens_csv ? ListFormat::kCsv
                                   : ListFormat::kTable);
  }

  if (tenant_cmd->parsed()) {
    auto store = OpenExistingStore(settings);
    if (!store) return Die(store.error());
    service::Tenants tenants(**store);
    if (t_add->parsed()) {
      if (auto ok = tenants.Put(tenant_id, tenant_name, !unlicensed); !ok) return Die(ok.error());
      std::printf("tenant %s added (%s)\n", TerminalSafe(tenant_id).c_str(), unlicensed ? "unlicensed" : "licensed");
      return 0;
    }
    if (t_list->parsed()) {
      auto list = tenants.List();
      if (!list) return Die(list.error());
      std::printf("%-36s  %-8s  %s\n", "ID", "LICENSED", "NAME");
      for (const auto& t : *list) {
        std::printf("%-36s  %-8s  %s\n", TerminalSafe(t.id).c_str(), t.intune_licensed ? "yes" : "no",
                    TerminalSafe(t.display_name).c_str());
      }
      return 0;
    }
    if (t_license->parsed()) {
      if (auto ok = tenants.SetLicense(tenant_id, license_state == "on"); !ok) return Die(ok.error());
      std::printf("tenant %s license %s\n", TerminalSafe(tenant_id).c_str(), license_state.c_str());
      return 0;
    }
    if (t_remove->parsed()) {
      if (!yes) {
        if (!::isatty(STDIN_FILENO)) {
          return Die(Error::InvalidArgument("removing a tenant deletes all its data; pass --yes to confirm"));
        }
        std::printf("Remove tenant %s and ALL its vppTokens, apps and licenses? Type 'yes': ",
                    TerminalSafe(tenant_id).c_str());
        std::fflush(stdout);
        std::string answer;
        std::getline(std::cin, answer);
        if (answer != "yes") {
          std::printf("not removed\n");
          return 1;
        }
      }
      if (auto ok = tenants.Remove(tenant_id); !ok) return Die(ok.error());
      std::printf("tenant %s removed\n", TerminalSafe(tenant_id).c_str());
      return 0;
    }
  }
  return 0;
}

}  // namespace vppd::cli

int main(int argc, char** argv) { return vppd::cli::Main(argc, argv); }
