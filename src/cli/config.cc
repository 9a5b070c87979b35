#include "cli/config.h"

#include <cstdlib>
#include <cstring>

#include <CLI/CLI.hpp>
#include <toml++/toml.h>

namespace vppd::cli {

void AddStoreOptions(CLI::App& app, Settings& s) {
  app.add_option("--data-dir", s.data_dir, "Directory for the database, keys and secrets (created 0700)")
      ->envname("VPPD_DATA_DIR")
      ->capture_default_str();
  app.add_option("--database-url", s.database_url,
                 "postgresql://USER@HOST:PORT/DB to keep everything in PostgreSQL (several instances may share "
                 "it) instead of SQLite in the data dir [TOML store.database_url]")
      ->envname("VPPD_DATABASE_URL");
}

void AddServeOptions(CLI::App& app, Settings& s) {
  app.add_option("--config", s.config_file, "TOML configuration file (settings below, same names)")
      ->envname("VPPD_CONFIG");
  app.add_option("--listen", s.listen, "Address to listen on, HOST:PORT (port 0 picks a free one)")
      ->envname("VPPD_LISTEN")
      ->capture_default_str();
  app.add_option("--apple-url", s.apple_url, "Apple Apps and Books API base URL (http:// only for simulators)")
      ->envname("VPPD_APPLE_URL")
      ->capture_default_str();
  app.add_flag("--dev", s.dev,
               "Development mode: create and trust a dev signing key in the data dir, register the dev tenant")
      ->envname("VPPD_DEV");
  app.add_option("--threads", s.threads, "HTTP server threads")
      ->envname("VPPD_THREADS")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--log-level", s.log_level, "trace, debug, info, warn, error")
      ->envname("VPPD_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--log-format", s.log_format,
                 "json (one object per line: time, level, component, message, request/job ids) or text; "
                 "default json for serve, text for demo [TOML log.format]")
      ->envname("VPPD_LOG_FORMAT")
      ->check(CLI::IsMember({"json", "text"}));
  app.add_option("--metrics", s.metrics, "Serve GET /metrics (Prometheus text; aggregate counts, no ids)")
      ->envname("VPPD_METRICS")
      ->capture_default_str();
  app.add_option("--graph-action-response", s.action_response,
                 "syncLicenses answer: auto (entity at the root when SdkVersion is sent), value, entity "
                 "[TOML graph.action_response]")
      ->envname("VPPD_GRAPH_ACTION_RESPONSE")
      ->check(CLI::IsMember({"auto", "value", "entity"}))
      ->capture_default_str();
  app.add_option("--graph-page-size", s.page_size, "Rows per page of collections [TOML graph.page_size]")
      ->envname("VPPD_GRAPH_PAGE_SIZE")
      ->check(CLI::Range(1, 999))
      ->capture_default_str();
  app.add_option("--graph-public-url", s.public_url,
                 "Absolute base URL for @odata.context/@odata.nextLink (default: from Host) [TOML graph.public_url]")
      ->envname("VPPD_GRAPH_PUBLIC_URL");
  app.add_option("--auth-permission-profile", s.permission_profile,
                 "seed (the seed page's permission table) or current (newest published tables) "
                 "[TOML auth.permission_profile]")
      ->envname("VPPD_AUTH_PERMISSION_PROFILE")
      ->check(CLI::IsMember({"seed", "current"}))
      ->capture_default_str();
  app.add_option("--auth-jwks-file", s.jwks_file, "Trust Entra issuers with keys from this JWKS file [TOML auth.jwks_file]")
      ->envname("VPPD_AUTH_JWKS_FILE");
  app.add_option("--auth-jwks-url", s.jwks_url,
                 "Trust Entra issuers with keys from this JWKS URL (default: Entra's common keys) [TOML auth.jwks_url]")
      ->envname("VPPD_AUTH_JWKS_URL");
  app.add_option("--auth-audience", s.audiences, "Accepted token audiences (repeatable) [TOML auth.audiences]")
      ->envname("VPPD_AUTH_AUDIENCES")
      ->delimiter(',');
  app.add_option("--auth-leeway-seconds", s.leeway_seconds, "Clock skew tolerated on exp/nbf [TOML auth.leeway_seconds]")
      ->envname("VPPD_AUTH_LEEWAY_SECONDS")
      ->check(CLI::Range(0, 600))
      ->capture_default_str();
  app.add_option("--throttle-window-seconds", s.throttle_window_seconds,
                 "Throttling window; 0 disables throttling [TOML throttle.window_seconds]")
      ->envname("VPPD_THROTTLE_WINDOW_SECONDS")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  app.add_option("--throttle-tenant-writes", s.throttle_tenant_writes, "Writes per window per tenant [TOML throttle.tenant_writes]")
      ->envname("VPPD_THROTTLE_TENANT_WRITES")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--throttle-app-writes", s.throttle_app_writes,
                 "Writes per window per application per tenant [TOML throttle.app_writes]")
      ->envname("VPPD_THROTTLE_APP_WRITES")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--throttle-tenant-requests", s.throttle_tenant_requests,
                 "Requests per window per tenant [TOML throttle.tenant_requests]")
      ->envname("VPPD_THROTTLE_TENANT_REQUESTS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--throttle-app-requests", s.throttle_app_requests,
                 "Requests per window per application per tenant [TOML throttle.app_requests]")
      ->envname("VPPD_THROTTLE_APP_REQUESTS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--apple-max-attempts", s.apple_max_attempts,
                 "Attempts per Apple request (retries on 5xx, 429, transport errors) [TOML apple.max_attempts]")
      ->envname("VPPD_APPLE_MAX_ATTEMPTS")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  app.add_option("--apple-max-retry-seconds", s.apple_max_retry_seconds,
                 "Most waiting (backoff, Retry-After) before retries of one Apple request "
                 "[TOML apple.max_retry_seconds]")
      ->envname("VPPD_APPLE_MAX_RETRY_SECONDS")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  app.add_option("--sync-workers", s.sync_workers, "Sync worker threads [TOML sync.workers]")
      ->envname("VPPD_SYNC_WORKERS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--sync-interval-seconds", s.sync_interval_seconds,
                 "Every valid token is synced this often; 0 disables [TOML sync.interval_seconds]")
      ->envname("VPPD_SYNC_INTERVAL_SECONDS")
      ->check(CLI::Range(0, 30 * 86'400))
      ->capture_default_str();
  app.add_option("--sync-app-metadata-ttl-seconds", s.sync_app_metadata_ttl_seconds,
                 "App names and bundle ids from Apple's lookup are reused this long, for every token; 0 looks "
                 "them up at every sync [TOML sync.app_metadata_ttl_seconds]")
      ->envname("VPPD_SYNC_APP_METADATA_TTL_SECONDS")
      ->check(CLI::Range(0, 30 * 86'400))
      ->capture_default_str();
  app.add_option("--sync-full-walk-days", s.sync_full_walk_days,
                 "A full assignments walk at least this often; deltas in between [TOML sync.full_walk_days]")
      ->envname("VPPD_SYNC_FULL_WALK_DAYS")
      ->check(CLI::Range(0, 365))
      ->capture_default_str();
  app.add_option("--sync-lease-seconds", s.sync_lease_seconds,
                 "Lease of a running sync job; a dead worker's job is taken over after it [TOML sync.lease_seconds]")
      ->envname("VPPD_SYNC_LEASE_SECONDS")
      ->check(CLI::Range(2, 3600))
      ->capture_default_str();
  app.add_option("--sync-event-poll-ms", s.sync_event_poll_ms,
                 "Wait between polls of an Apple event (revokeLicenses); Apple asks for >= 30000 "
                 "[TOML sync.event_poll_ms]")
      ->envname("VPPD_SYNC_EVENT_POLL_MS")
      ->check(CLI::Range(10, 600'000))
      ->capture_default_str();
  AddStoreOptions(app, s);
  app.add_option("--database-pool-size", s.database_pool_size,
                 "Most connections to PostgreSQL [TOML store.pool_size]")
      ->envname("VPPD_DATABASE_POOL_SIZE")
      ->check(CLI::Range(1, 500))
      ->capture_default_str();
  app.add_option("--secrets-key-file", s.key_file,
                 "AES-256 key file for sTokens at rest (default: <data-dir>/secret.key, created 0600) "
                 "[TOML secrets.key_file]")
      ->envname("VPPD_SECRETS_KEY_FILE");
}

namespace {

template <class T>
Status Take(const toml::node& node, const std::string& key, T& out) {
  if (auto v = node.value<T>()) {
    out = *v;
    return {};
  }
  return Fail(Error::InvalidArgument("config: '" + key + "' has the wrong type"));
}

Status ApplyTable(const toml::table& table, const std::string& prefix, Settings& s) {
  for (const auto& [k, node] : table) {
    const std::string key = prefix + std::string(k.str());
    Status st;
    if (key == "graph" || key == "auth" || key == "secrets" || key == "throttle" || key == "sync" ||
        key == "apple" || key == "store" || key == "log") {
      if (!node.is_table()) return Fail(Error::InvalidArgument("config: '" + key + "' must be a table"));
      st = ApplyTable(*node.as_table(), key + ".", s);
    } else if (key == "listen") st = Take(node, key, s.listen);
    else if (key == "data_dir") st = Take(node, key, s.data_dir);
    else if (key == "apple_url") st = Take(node, key, s.apple_url);
    else if (key == "dev") st = Take(node, key, s.dev);
    else if (key == "threads") st = Take(node, key, s.threads);
    else if (key == "log_level") st = Take(node, key, s.log_level);
    else if (key == "metrics") st = Take(node, key, s.metrics);
    else if (key == "log.format") st = Take(node, key, s.log_format);
    else if (key == "log.level") st = Take(node, key, s.log_level);
    else if (key == "graph.action_response") st = Take(node, key, s.action_response);
    else if (key == "graph.page_size") st = Take(node, key, s.page_size);
    else if (key == "graph.public_url") st = Take(node, key, s.public_url);
    else if (key == "auth.permission_profile") st = Take(node, key, s.permission_profile);
    else if (key == "auth.jwks_file") st = Take(node, key, s.jwks_file);
    else if (key == "auth.jwks_url") st = Take(node, key, s.jwks_url);
    else if (key == "auth.leeway_seconds") st = Take(node, key, s.leeway_seconds);
    else if (key == "secrets.key_file") st = Take(node, key, s.key_file);
    else if (key == "store.database_url") st = Take(node, key, s.database_url);
    else if (key == "store.pool_size") st = Take(node, key, s.database_pool_size);
    else if (key == "apple.max_attempts") st = Take(node, key, s.apple_max_attempts);
    else if (key == "apple.max_retry_seconds") st = Take(node, key, s.apple_max_retry_seconds);
    else if (key == "sync.workers") st = Take(node, key, s.sync_workers);
    else if (key == "sync.interval_seconds") st = Take(node, key, s.sync_interval_seconds);
    else if (key == "sync.full_walk_days") st = Take(node, key, s.sync_full_walk_days);
    else if (key == "sync.app_metadata_ttl_seconds") st = Take(node, key, s.sync_app_metadata_ttl_seconds);
    else if (key == "sync.lease_seconds") st = Take(node, key, s.sync_lease_seconds);
    else if (key == "sync.event_poll_ms") st = Take(node, key, s.sync_event_poll_ms);
    else if (key == "throttle.window_seconds") st = Take(node, key, s.throttle_window_seconds);
    else if (key == "throttle.tenant_writes") st = Take(node, key, s.throttle_tenant_writes);
    else if (key == "throttle.app_writes") st = Take(node, key, s.throttle_app_writes);
    else if (key == "throttle.tenant_requests") st = Take(node, key, s.throttle_tenant_requests);
    else if (key == "throttle.app_requests") st = Take(node, key, s.throttle_app_requests);
    else if (key == "auth.audiences") {
      const auto* arr = node.as_array();
      if (arr == nullptr) return Fail(Error::InvalidArgument("config: 'auth.audiences' must be an array of strings"));
      s.audiences.clear();
      for (const auto& item : *arr) {
        auto v = item.value<std::string>();
        if (!v) return Fail(Error::InvalidArgument("config: 'auth.audiences' must be an array of strings"));
        s.audiences.push_back(*v);
      }
    } else {
      return Fail(Error::InvalidArgument("config: unknown setting '" + key + "'"));
    }
    if (!st) return st;
  }
  return {};
}

}  // namespace

Status LoadConfigFile(int argc, char** argv, Settings& settings) {
  std::string path;
  if (const char* env = std::getenv("VPPD_CONFIG")) path = env;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc) path = argv[i + 1];
    if (std::strncmp(argv[i], "--config=", 9) == 0) path = argv[i] + 9;
  }
  if (path.empty()) return {};
  try {
    toml::table table = toml::parse_file(path);
    return ApplyTable(table, "", settings);
  } catch (const toml::parse_error& e) {
    return Fail(Error::InvalidArgument("config: " + path + ": " + std::string(e.description())));
  }
}

Result<std::pair<std::string, std::uint16_t>> ParseListen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Fail(Error::InvalidArgument("--listen must be HOST:PORT, not '" + listen + "'"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string port = listen.substr(colon + 1);
  char* end = nullptr;
  const long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535) {
    return Fail(Error::InvalidArgument("--listen port must be 0..65535, not '" + port + "'"));
  }
  return std::make_pair(host, static_cast<std::uint16_t>(p));
}

Status Validate(const Settings& s) {
  if (auto l = ParseListen(s.listen); !l) return Fail(l.error());
  if (s.apple_url.rfind("https://", 0) != 0 && s.apple_url.rfind("http://", 0) != 0) {
    return Fail(Error::InvalidArgument("--apple-url must be an http(s) URL, not '" + s.apple_url + "'"));
  }
  if (!s.log_format.empty() && s.log_format != "json" && s.log_format != "text") {
    return Fail(Error::InvalidArgument("log.format must be json or text, not '" + s.log_format + "'"));
  }
  if (s.log_level != "trace" && s.log_level != "debug" && s.log_level != "info" && s.log_level != "warn" &&
      s.log_level != "error") {
    return Fail(Error::InvalidArgument("log level must be trace, debug, info, warn or error, not '" + s.log_level +
                                       "'"));
  }
  if (s.audiences.empty()) return Fail(Error::InvalidArgument("at least one token audience is required"));
  if (!s.database_url.empty() && s.database_url.rfind("postgresql://", 0) != 0 &&
      s.database_url.rfind("postgres://", 0) != 0) {
    return Fail(Error::InvalidArgument("--database-url must be a postgresql:// URL"));
  }
  if (!s.jwks_file.empty() && !s.jwks_url.empty()) {
    return Fail(Error::InvalidArgument("set either auth.jwks_file or auth.jwks_url, not both"));
  }
  return {};
}

}  // namespace vppd::cli
