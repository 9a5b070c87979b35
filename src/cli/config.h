// vppd's settings: TOML file < VPPD_* environment < command-line flags.
//
// Each setting is declared once in config.cc (name, TOML key, env var, flag, help),
// so `vppd serve --help` documents every one of them.
#pragma once

#include <cstdint>
#include <string>
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
  // [graph]
  std::string action_response = "auto";
  std::int64_t page_size = 100;
  std::string public_url;
  // [auth]
  std::string permission_profile = "seed";
  std::string jwks_file;  // trusted issuers' keys from a file instead of Entra's URL
  std::string jwks_url;
  std::vector<std::string> audiences = {"https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"};
  int leeway_seconds = 60;
  // [throttle] (Intune's published limits; 0 disables throttling)
  int throttle_window_seconds = 20;
  int throttle_tenant_writes = 200;
  int throttle_app_writes = 100;
  int throttle_tenant_requests = 2000;
  int throttle_app_requests = 1000;
  // [apple]
  int apple_max_attempts = 5;          // per request, the first included
  int apple_max_retry_seconds = 120;   // total waiting before retries of one request
  // [sync]
  int sync_workers = 2;
  int sync_interval_seconds = 86'400;  // automatic sync of every valid token; 0 disables
  int sync_full_walk_days = 7;         // a full assignments walk at least this often
  int sync_app_metadata_ttl_seconds = 86'400;  // app names and bundle ids reused this long; 0: every sync
  int sync_lease_seconds = 30;
  int sync_event_poll_ms = 30'000;  // Apple asks for at least 30 s between event status polls
  // [secrets]
  std::string key_file;  // empty = <data_dir>/secret.key
  // [store] empty database_url = SQLite in <data_dir>/vppd.db; postgresql://... = that
  // database, which several instances may share.
  std::string database_url;
  int database_pool_size = 16;  // most connections this instance opens to PostgreSQL
};

// Declares where the store is (--data-dir, --database-url) on `app`: serve and the
// operator subcommands that open the store share them.
void AddStoreOptions(CLI::App& app, Settings& settings);

// Declares the serve settings on `app` (flags with their VPPD_* env names).
void AddServeOptions(CLI::App& app, Settings& settings);

// Reads `--config F` (or VPPD_CONFIG) from argv/env before CLI11 parses, and fills
// `settings` from the TOML file, so flags and env (applied by CLI11 afterwards)
// override it. Unknown keys and wrong types are errors naming the key.
Status LoadConfigFile(int argc, char** argv, Settings& settings);

// Checks values CLI11 cannot (listen address form, enum-like settings).
Status Validate(const Settings& settings);

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
