// vppd's settings: defaults < TOML file < VPPD_* environment < command-line flags.
//
// Every setting is declared once, in SettingTable() (config.cc): its name (the
// TOML key), flag, environment variable, help, and the values it accepts. The
// TOML reader, the environment reader and CLI11 all go through that entry, so a
// value is refused with the same message wherever it comes from; only the prefix
// says where:
//
//   --sync-workers: sync.workers must be an integer from 1 to 64, not '0'
//   VPPD_SYNC_WORKERS: sync.workers must be an integer from 1 to 64, not '0'
//   vppd.toml: sync.workers must be an integer from 1 to 64, not '0'
//
// Usage (what `vppd serve` does):
//
//   Settings s;
//   CLI::App app;
//   AddServeOptions(app, s);
//   if (auto ok = LoadConfigFile(argc, argv, s); !ok) ...;   // TOML
//   if (auto ok = ApplyEnvironment(s); !ok) ...;             // VPPD_*
//   app.parse(argc, argv);  // flags; a bad one throws CLI::ValidationError
#pragma once

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/error.h"

namespace CLI {
class App;
}

namespace vppd::cli {

struct Settings {
  std::string config_file;  // --config / VPPD_CONFIG
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "vppd-data";
  std::string apple_url = "https://vpp.itunes.apple.com/mdm/v2";
  bool dev = false;
  int threads = 4;
  std::string log_level = "info";
  // [log] format: "json" or "text"; empty = the command's default (serve: json,
  // one object per line for a log pipeline; demo: text, for the person watching).
  std::string log_format;
  bool metrics = true;  // GET /metrics
  // [http]
  int max_connections_per_address = 256;  // 0: no cap
  std::string tls_cert_file;              // PEM certificate chain: serve HTTPS (with tls_key_file)
  std::string tls_key_file;               // PEM private key
  std::vector<std::string> trusted_proxies = {"127.0.0.1", "::1"};
  // [graph]
  std::string action_response = "auto";
  int page_size = 100;
  std::string public_url;
  // [auth]
  std::string permission_profile = "seed";
  std::string jwks_file;  // trusted issuers' keys from a file instead of Entra's URL
  std::string jwks_url;
  std::vector<std::string> audiences = {"https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"};
  int leeway_seconds = 60;
  int jwks_refetch_seconds = 60;  // most one key-set fetch this often (an unknown kid asks for one)
  std::string issuer;             // any OpenID Connect issuer (discovery) instead of Entra ID's
  std::string scopes_claim = "scp";
  std::string roles_claim = "roles";
  std::string tenant_claim = "tid";
  std::string tenant_id;  // every token of the trusted issuer is of this tenant (tenant_claim unread)
  // [throttle] (Intune's published limits; 0 disables throttling)
  int throttle_window_seconds = 20;
  int throttle_tenant_writes = 200;
  int throttle_app_writes = 100;
  int throttle_tenant_requests = 2000;
  int throttle_app_requests = 1000;
  // [apple]
  int apple_max_attempts = 5;         // per request, the first included
  int apple_max_retry_seconds = 120;  // total waiting before retries of one request
  // vppd's public base URL for Apple's notifications (https://; http:// only on a
  // loopback host); empty: none registered.
  std::string apple_notification_url;
  // [sync]
  int sync_workers = 2;
  int sync_interval_seconds = 86'400;             // automatic sync of every valid token; 0 disables
  int sync_incremental_interval_seconds = 3'600;  // incremental sync of every valid token; 0 disables
  int sync_full_walk_days = 7;                    // a full assignments walk at least this often
  int sync_app_metadata_ttl_seconds = 86'400;     // app names and bundle ids reused this long; 0: every sync
  int sync_lease_seconds = 30;
  int sync_job_poll_ms = 1'000;     // jobs queued by another process (the CLI, another instance) wait this at most
  int sync_event_poll_ms = 30'000;  // Apple asks for at least 30 s between event status polls
  // With a notification endpoint: an event's /status is first polled this long after it was sent.
  int sync_event_notification_wait_seconds = 300;
  // [assign] (the reconcile job that hands out device licences)
  std::string assign_reclaim = "always";     // always | never (Intune's behaviour: nothing is taken back)
  double assign_max_reclaim_fraction = 0.2;  // directory-caused reclaims per pass and app, at least 10
  // [alerts] what /metrics counts as needing attention
  int alerts_app_usage_percent = 90;  // an app with this share of its licences in use
  // [secrets]
  std::string key_file;  // empty = <data_dir>/secret.key
  // [store] empty database_url = SQLite in <data_dir>/vppd.db; postgresql://... = that
  // database, which several instances may share.
  std::string database_url;
  int database_pool_size = 16;  // most connections this instance opens to PostgreSQL
  // [console] OIDC sign-in of the web console outside --dev (authorization code + PKCE);
  // offered when an issuer (this, else `issuer` above) and the client id are set.
  std::string console_oidc_issuer;
  std::string console_oidc_client_id;
  // vppd's two permissions, and the directory reads the Assignments page makes (group
  // names, people's standing with Apple); without the last two it shows ids and less.
  std::string console_oidc_scopes =
      "openid DeviceManagementServiceConfig.ReadWrite.All DeviceManagementApps.ReadWrite.All Group.Read.All "
      "User.Read.All";
};

// One setting. `name` is its TOML key ("sync.workers") and the name messages use.
struct SettingSpec {
  using Field = std::variant<std::string Settings::*, int Settings::*, bool Settings::*,
                             std::vector<std::string> Settings::*, double Settings::*>;
  // (`{}` initializers: the table's designated initializers name only some members.)
  std::string_view name{};
  std::string_view flag{};  // "--sync-workers"
  std::string_view env{};   // "VPPD_SYNC_WORKERS"
  std::string_view help{};
  Field field{};
  std::int64_t min = 0, max = 0;            // int and number (double) settings: the accepted range
  std::vector<std::string_view> choices{};  // string settings: the accepted values; empty = any
  std::string_view alias{};                 // another TOML key for the same setting (older spelling)
  bool is_flag = false;                     // bool given as `--dev` (no value on the command line)
  bool store = false;                       // where the store is, its key: the operator commands take it too
};

// Every setting, in the order `vppd serve --help` lists them.
const std::vector<SettingSpec>& SettingTable();
// The entry whose name (or alias) is `name`; nullptr when there is none.
const SettingSpec* FindSetting(std::string_view name);

// Sets one setting from text (a flag's or an environment variable's value; a list
// setting splits it at commas). InvalidArgument, with the message above (no
// prefix), when the value is not accepted; `settings` is then unchanged.
Status SetSetting(const SettingSpec& spec, std::string_view text, Settings& settings);

// Declares one setting's flag on `app`; a value it refuses throws
// CLI::ValidationError("--flag: <message>") from app.parse().
void AddSettingOption(CLI::App& app, Settings& settings, const SettingSpec& spec);

// Declares where the store is and its key (--data-dir, --database-url,
// --secrets-key-file) on `app`: serve and the operator commands share them.
void AddStoreOptions(CLI::App& app, Settings& settings);

// Declares every setting's flag on `app` (and --config), for serve and demo; not
// those named in `except` (demo sets apple_url and dev itself).
void AddServeOptions(CLI::App& app, Settings& settings, std::initializer_list<std::string_view> except = {});

// getenv, or a test's stand-in.
using EnvLookup = std::function<const char*(const char*)>;

// Reads `--config F` (or VPPD_CONFIG) from argv/env before CLI11 parses, and fills
// `settings` from the TOML file, so env and flags (applied afterwards) override it.
// Unknown keys, wrong types and refused values are InvalidArgument, "F: <message>".
Status LoadConfigFile(int argc, char** argv, Settings& settings, const EnvLookup& env = std::getenv);

// Applies every setting's VPPD_* variable that is set (after the TOML file, before
// the flags). A refused value is InvalidArgument, "VPPD_X: <message>".
Status ApplyEnvironment(Settings& settings, const EnvLookup& env = std::getenv);

// Checks what one setting's entry cannot: forms (listen address, URLs) and
// settings that exclude each other.
Status Validate(const Settings& settings);

// apple.notification_url: empty, or https://HOST[:PORT][/PATH], or http:// with a
// loopback host (127.0.0.0/8, [::1], localhost). InvalidArgument otherwise.
Status ValidateNotificationUrl(std::string_view url);

// "host:port" → parts; InvalidArgument for anything else.
Result<std::pair<std::string, std::uint16_t>> ParseListen(const std::string& listen);

// vppd's identity at Apple is the store's (store::Store::InstallationId), shared by
// every instance on one database. Before it moved there it was this file in the data
// dir; it is now only read, so that a deployment keeps its identity: its GUID is what
// the instance proposes to a store that has none yet.
inline constexpr const char* kInstallationIdFile = "installation-id";
// The id to propose: the file's GUID when the file exists (FailedPrecondition when it
// holds something else), else a new GUID.
Result<std::string> ProposedInstallationId(const std::string& data_dir);  // in runtime.cc

}  // namespace vppd::cli
