#include "cli/config.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <type_traits>

#include <CLI/CLI.hpp>
#include <toml++/toml.h>

#include "base/base.h"

namespace vppd::cli {

// ---------------------------------------------------------------------------
// 1. The table: every setting, once.

const std::vector<SettingSpec>& SettingTable() {
  using S = Settings;
  static const std::vector<SettingSpec> table = {
      {.name = "listen",
       .flag = "--listen",
       .env = "VPPD_LISTEN",
       .help = "Address to listen on, HOST:PORT (port 0 picks a free one)",
       .field = &S::listen},
      {.name = "apple_url",
       .flag = "--apple-url",
       .env = "VPPD_APPLE_URL",
       .help = "Apple Apps and Books API base URL (http:// only for simulators)",
       .field = &S::apple_url},
      {.name = "dev",
       .flag = "--dev",
       .env = "VPPD_DEV",
       .help = "Development mode: create and trust a dev signing key in the data dir, register the dev tenant",
       .field = &S::dev,
       .is_flag = true},
      {.name = "threads",
       .flag = "--threads",
       .env = "VPPD_THREADS",
       .help = "HTTP server threads",
       .field = &S::threads,
       .min = 1,
       .max = 256},
      {.name = "log.level",
       .flag = "--log-level",
       .env = "VPPD_LOG_LEVEL",
       .help = "trace, debug, info, warn, error",
       .field = &S::log_level,
       .choices = {"trace", "debug", "info", "warn", "error"},
       .alias = "log_level"},
      {.name = "log.format",
       .flag = "--log-format",
       .env = "VPPD_LOG_FORMAT",
       .help = "json (one object per line: time, level, component, message, request/job ids) or text; "
               "default json for serve, text for demo",
       .field = &S::log_format,
       .choices = {"json", "text"}},
      {.name = "metrics",
       .flag = "--metrics",
       .env = "VPPD_METRICS",
       .help = "Serve GET /metrics (Prometheus text; aggregate counts, no ids)",
       .field = &S::metrics},
      {.name = "http.max_connections_per_address",
       .flag = "--max-connections-per-address",
       .env = "VPPD_MAX_CONNECTIONS_PER_ADDRESS",
       .help = "Connections served at once from one client address, idle keep-alive ones included; 0: no cap",
       .field = &S::max_connections_per_address,
       .min = 0,
       .max = 100'000},
      {.name = "http.tls_cert_file",
       .flag = "--tls-cert",
       .env = "VPPD_TLS_CERT",
       .help = "Serve HTTPS with this PEM certificate chain (and --tls-key); without both, plain HTTP for a "
               "TLS-terminating proxy in front",
       .field = &S::tls_cert_file},
      {.name = "http.tls_key_file",
       .flag = "--tls-key",
       .env = "VPPD_TLS_KEY",
       .help = "The PEM private key of --tls-cert",
       .field = &S::tls_key_file},
      {.name = "http.trusted_proxies",
       .flag = "--trusted-proxies",
       .env = "VPPD_TRUSTED_PROXIES",
       .help = "Proxies (IP addresses or CIDR blocks, comma-separated) whose X-Forwarded-Proto/-Host are believed; "
               "from any other peer they are dropped",
       .field = &S::trusted_proxies},
      {.name = "graph.action_response",
       .flag = "--graph-action-response",
       .env = "VPPD_GRAPH_ACTION_RESPONSE",
       .help = "syncLicenses answer: auto (entity at the root when SdkVersion is sent), value, entity",
       .field = &S::action_response,
       .choices = {"auto", "value", "entity"}},
      {.name = "graph.page_size",
       .flag = "--graph-page-size",
       .env = "VPPD_GRAPH_PAGE_SIZE",
       .help = "Rows per page of collections",
       .field = &S::page_size,
       .min = 1,
       .max = 999},
      {.name = "graph.public_url",
       .flag = "--graph-public-url",
       .env = "VPPD_GRAPH_PUBLIC_URL",
       .help = "Absolute base URL for @odata.context/@odata.nextLink (default: from Host)",
       .field = &S::public_url},
      {.name = "auth.permission_profile",
       .flag = "--auth-permission-profile",
       .env = "VPPD_AUTH_PERMISSION_PROFILE",
       .help = "seed (the seed page's permission table) or current (newest published tables)",
       .field = &S::permission_profile,
       .choices = {"seed", "current"}},
      {.name = "auth.jwks_file",
       .flag = "--auth-jwks-file",
       .env = "VPPD_AUTH_JWKS_FILE",
       .help = "Trust Entra issuers with keys from this JWKS file",
       .field = &S::jwks_file},
      {.name = "auth.jwks_url",
       .flag = "--auth-jwks-url",
       .env = "VPPD_AUTH_JWKS_URL",
       .help = "Trust Entra issuers with keys from this JWKS URL (default: Entra's common keys)",
       .field = &S::jwks_url},
      {.name = "auth.audiences",
       .flag = "--auth-audience",
       .env = "VPPD_AUTH_AUDIENCES",
       .help = "Accepted token audiences (repeatable; comma-separated in the environment)",
       .field = &S::audiences},
      {.name = "auth.leeway_seconds",
       .flag = "--auth-leeway-seconds",
       .env = "VPPD_AUTH_LEEWAY_SECONDS",
       .help = "Clock skew tolerated on exp/nbf",
       .field = &S::leeway_seconds,
       .min = 0,
       .max = 600},
      {.name = "auth.jwks_refetch_seconds",
       .flag = "--auth-jwks-refetch-seconds",
       .env = "VPPD_AUTH_JWKS_REFETCH_SECONDS",
       .help = "Most one fetch of a JWKS URL this often (a token with an unknown kid asks for one)",
       .field = &S::jwks_refetch_seconds,
       .min = 1,
       .max = 86'400},
      {.name = "auth.issuer",
       .flag = "--auth-issuer",
       .env = "VPPD_AUTH_ISSUER",
       .help = "Trust this OpenID Connect issuer instead of Entra ID: its keys from jwks_uri of "
               "ISSUER/.well-known/openid-configuration (https://, or http:// to this machine)",
       .field = &S::issuer},
      {.name = "auth.scopes_claim",
       .flag = "--auth-scopes-claim",
       .env = "VPPD_AUTH_SCOPES_CLAIM",
       .help = "Claim holding delegated permissions, space-separated or an array (Entra scp, OAuth scope); "
               "a.b reads b inside a",
       .field = &S::scopes_claim},
      {.name = "auth.roles_claim",
       .flag = "--auth-roles-claim",
       .env = "VPPD_AUTH_ROLES_CLAIM",
       .help = "Claim holding application permissions (app roles), e.g. realm_access.roles (Keycloak)",
       .field = &S::roles_claim},
      {.name = "auth.tenant_claim",
       .flag = "--auth-tenant-claim",
       .env = "VPPD_AUTH_TENANT_CLAIM",
       .help = "Claim holding the tenant id, a GUID (Entra tid)",
       .field = &S::tenant_claim},
      {.name = "auth.tenant_id",
       .flag = "--auth-tenant-id",
       .env = "VPPD_AUTH_TENANT_ID",
       .help = "Every token of the trusted issuer is of this tenant (a GUID; auth.tenant_claim is then not read): "
               "for a provider without tenants",
       .field = &S::tenant_id},
      {.name = "throttle.window_seconds",
       .flag = "--throttle-window-seconds",
       .env = "VPPD_THROTTLE_WINDOW_SECONDS",
       .help = "Throttling window; 0 disables throttling",
       .field = &S::throttle_window_seconds,
       .min = 0,
       .max = 3600},
      {.name = "throttle.tenant_writes",
       .flag = "--throttle-tenant-writes",
       .env = "VPPD_THROTTLE_TENANT_WRITES",
       .help = "Writes per window per tenant",
       .field = &S::throttle_tenant_writes,
       .min = 1,
       .max = INT_MAX},
      {.name = "throttle.app_writes",
       .flag = "--throttle-app-writes",
       .env = "VPPD_THROTTLE_APP_WRITES",
       .help = "Writes per window per application per tenant",
       .field = &S::throttle_app_writes,
       .min = 1,
       .max = INT_MAX},
      {.name = "throttle.tenant_requests",
       .flag = "--throttle-tenant-requests",
       .env = "VPPD_THROTTLE_TENANT_REQUESTS",
       .help = "Requests per window per tenant",
       .field = &S::throttle_tenant_requests,
       .min = 1,
       .max = INT_MAX},
      {.name = "throttle.app_requests",
       .flag = "--throttle-app-requests",
       .env = "VPPD_THROTTLE_APP_REQUESTS",
       .help = "Requests per window per application per tenant",
       .field = &S::throttle_app_requests,
       .min = 1,
       .max = INT_MAX},
      {.name = "apple.max_attempts",
       .flag = "--apple-max-attempts",
       .env = "VPPD_APPLE_MAX_ATTEMPTS",
       .help = "Attempts per Apple request (retries on 5xx, 429, transport errors)",
       .field = &S::apple_max_attempts,
       .min = 1,
       .max = 20},
      {.name = "apple.max_retry_seconds",
       .flag = "--apple-max-retry-seconds",
       .env = "VPPD_APPLE_MAX_RETRY_SECONDS",
       .help = "Most waiting (backoff, Retry-After) before retries of one Apple request",
       .field = &S::apple_max_retry_seconds,
       .min = 0,
       .max = 3600},
      {.name = "apple.notification_url",
       .flag = "--apple-notification-url",
       .env = "VPPD_APPLE_NOTIFICATION_URL",
       .help = "vppd's public base URL for Apple's notifications (https://; http:// only for a loopback host): each "
               "location registers <URL>/apple/notifications/<key> in Apple's client/config",
       .field = &S::apple_notification_url},
      {.name = "sync.workers",
       .flag = "--sync-workers",
       .env = "VPPD_SYNC_WORKERS",
       .help = "Sync worker threads",
       .field = &S::sync_workers,
       .min = 1,
       .max = 64},
      {.name = "sync.interval_seconds",
       .flag = "--sync-interval-seconds",
       .env = "VPPD_SYNC_INTERVAL_SECONDS",
       .help = "Every valid token is synced this often; 0 disables",
       .field = &S::sync_interval_seconds,
       .min = 0,
       .max = 30 * 86'400},
      {.name = "sync.app_metadata_ttl_seconds",
       .flag = "--sync-app-metadata-ttl-seconds",
       .env = "VPPD_SYNC_APP_METADATA_TTL_SECONDS",
       .help = "App names and bundle ids from Apple's lookup are reused this long, for every token; 0 looks them up "
               "at every sync",
       .field = &S::sync_app_metadata_ttl_seconds,
       .min = 0,
       .max = 30 * 86'400},
      {.name = "sync.incremental_interval_seconds",
       .flag = "--sync-incremental-interval-seconds",
       .env = "VPPD_SYNC_INCREMENTAL_INTERVAL_SECONDS",
       .help = "Every valid token gets an incremental sync (sinceVersionId) this often, bounding freshness when a "
               "notification is lost; 0 disables",
       .field = &S::sync_incremental_interval_seconds,
       .min = 0,
       .max = 30 * 86'400},
      {.name = "sync.full_walk_days",
       .flag = "--sync-full-walk-days",
       .env = "VPPD_SYNC_FULL_WALK_DAYS",
       .help = "A full assignments walk at least this often; deltas in between",
       .field = &S::sync_full_walk_days,
       .min = 0,
       .max = 365},
      {.name = "sync.lease_seconds",
       .flag = "--sync-lease-seconds",
       .env = "VPPD_SYNC_LEASE_SECONDS",
       .help = "Lease of a running sync job; a dead worker's job is taken over after it",
       .field = &S::sync_lease_seconds,
       .min = 2,
       .max = 3600},
      {.name = "sync.job_poll_ms",
       .flag = "--sync-job-poll-ms",
       .env = "VPPD_SYNC_JOB_POLL_MS",
       .help = "Idle workers look for jobs queued by other processes (the CLI, other instances) this often",
       .field = &S::sync_job_poll_ms,
       .min = 10,
       .max = 60'000},
      {.name = "sync.event_poll_ms",
       .flag = "--sync-event-poll-ms",
       .env = "VPPD_SYNC_EVENT_POLL_MS",
       .help = "Wait between polls of an Apple event (revokeLicenses); Apple asks for >= 30000",
       .field = &S::sync_event_poll_ms,
       .min = 10,
       .max = 600'000},
      {.name = "sync.event_notification_wait_seconds",
       .flag = "--sync-event-notification-wait-seconds",
       .env = "VPPD_SYNC_EVENT_NOTIFICATION_WAIT_SECONDS",
       .help = "With Apple's notifications registered, an Apple event's /status is polled only when no "
               "ASSET_MANAGEMENT notification ended it within this time of its submission (Apple asks for 300)",
       .field = &S::sync_event_notification_wait_seconds,
       .min = 0,
       .max = 3600},
      {.name = "assign.reclaim",
       .flag = "--assign-reclaim",
       .env = "VPPD_ASSIGN_RECLAIM",
       .help = "always: take device licences back from devices no assignment wants any more; never: leave them "
               "(Intune's behaviour)",
       .field = &S::assign_reclaim,
       .choices = {"always", "never"}},
      {.name = "assign.max_reclaim_fraction",
       .flag = "--assign-max-reclaim-fraction",
       .env = "VPPD_ASSIGN_MAX_RECLAIM_FRACTION",
       .help = "Licences reclaimed per pass and app because of directory changes, at most this share of those vppd "
               "granted (at least 10); beyond needs vppd reconcile --force. 1 lifts the cap",
       .field = &S::assign_max_reclaim_fraction,
       .min = 0,
       .max = 1},
      {.name = "alerts.app_usage_percent",
       .flag = "--alerts-app-usage-percent",
       .env = "VPPD_ALERTS_APP_USAGE_PERCENT",
       .help = "GET /metrics counts the apps with at least this share of their licences in use",
       .field = &S::alerts_app_usage_percent,
       .min = 1,
       .max = 100},
      {.name = "data_dir",
       .flag = "--data-dir",
       .env = "VPPD_DATA_DIR",
       .help = "Directory for the database, keys and secrets (serve and demo create it, 0700)",
       .field = &S::data_dir,
       .store = true},
      {.name = "store.database_url",
       .flag = "--database-url",
       .env = "VPPD_DATABASE_URL",
       .help = "postgresql://USER@HOST:PORT/DB to keep everything in PostgreSQL (several instances may share it) "
               "instead of SQLite in the data dir",
       .field = &S::database_url,
       .store = true},
      {.name = "store.pool_size",
       .flag = "--database-pool-size",
       .env = "VPPD_DATABASE_POOL_SIZE",
       .help = "Most connections to PostgreSQL",
       .field = &S::database_pool_size,
       .min = 1,
       .max = 500},
      {.name = "secrets.key_file",
       .flag = "--secrets-key-file",
       .env = "VPPD_SECRETS_KEY_FILE",
       .help = "AES-256 key file for sTokens at rest (default: <data-dir>/secret.key; serve creates it 0600)",
       .field = &S::key_file,
       .store = true},
      {.name = "console.oidc_issuer",
       .flag = "--console-oidc-issuer",
       .env = "VPPD_CONSOLE_OIDC_ISSUER",
       .help = "OIDC issuer the web console signs in at (authorization code + PKCE; endpoints from its "
               "/.well-known/openid-configuration); default auth.issuer",
       .field = &S::console_oidc_issuer},
      {.name = "console.oidc_client_id",
       .flag = "--console-oidc-client-id",
       .env = "VPPD_CONSOLE_OIDC_CLIENT_ID",
       .help = "The web console's client id at that issuer (a public client; redirect URI: vppd's URL with /)",
       .field = &S::console_oidc_client_id},
      {.name = "console.oidc_scopes",
       .flag = "--console-oidc-scopes",
       .env = "VPPD_CONSOLE_OIDC_SCOPES",
       .help = "Scopes the console asks for, space-separated (Entra: api://<vppd app id>/<permission>)",
       .field = &S::console_oidc_scopes},
  };
  return table;
}

const SettingSpec* FindSetting(std::string_view name) {
  for (const SettingSpec& spec : SettingTable()) {
    if (spec.name == name || (!spec.alias.empty() && spec.alias == name)) return &spec;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// 2. Checking and setting a value: the one place that says what a setting accepts.

namespace {

std::string Quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

Error Refused(const SettingSpec& spec, const std::string& what) {
  const std::string name(spec.name);
  if (std::holds_alternative<int Settings::*>(spec.field)) {
    return Error::InvalidArgument(name + " must be an integer from " + std::to_string(spec.min) + " to " +
                                  std::to_string(spec.max) + ", not " + what);
  }
  if (std::holds_alternative<bool Settings::*>(spec.field)) {
    return Error::InvalidArgument(name + " must be true or false, not " + what);
  }
  if (std::holds_alternative<double Settings::*>(spec.field)) {
    return Error::InvalidArgument(name + " must be a number from " + std::to_string(spec.min) + " to " +
                                  std::to_string(spec.max) + ", not " + what);
  }
  if (!spec.choices.empty()) {
    std::string list;
    for (std::size_t i = 0; i < spec.choices.size(); ++i) {
      if (i > 0) list += i + 1 == spec.choices.size() ? " or " : ", ";
      list += spec.choices[i];
    }
    return Error::InvalidArgument(name + " must be " + list + ", not " + what);
  }
  if (std::holds_alternative<std::vector<std::string> Settings::*>(spec.field)) {
    return Error::InvalidArgument(name + " must be a list of strings, not " + what);
  }
  return Error::InvalidArgument(name + " must be a string, not " + what);
}

Status SetInt(const SettingSpec& spec, std::int64_t value, std::string_view text, Settings& s) {
  if (value < spec.min || value > spec.max) return Fail(Refused(spec, Quoted(text)));
  s.*std::get<int Settings::*>(spec.field) = static_cast<int>(value);
  return {};
}

Status SetDouble(const SettingSpec& spec, double value, std::string_view text, Settings& s) {
  if (!(value >= static_cast<double>(spec.min) && value <= static_cast<double>(spec.max))) {
    return Fail(Refused(spec, Quoted(text)));
  }
  s.*std::get<double Settings::*>(spec.field) = value;
  return {};
}

Status SetString(const SettingSpec& spec, std::string value, Settings& s) {
  if (!spec.choices.empty() &&
      std::find(spec.choices.begin(), spec.choices.end(), std::string_view(value)) == spec.choices.end()) {
    return Fail(Refused(spec, Quoted(value)));
  }
  s.*std::get<std::string Settings::*>(spec.field) = std::move(value);
  return {};
}

Status SetList(const SettingSpec& spec, std::vector<std::string> items, Settings& s) {
  for (const std::string& item : items) {
    if (item.empty()) return Fail(Refused(spec, "an empty entry"));
  }
  s.*std::get<std::vector<std::string> Settings::*>(spec.field) = std::move(items);
  return {};
}

std::optional<bool> ParseBool(std::string_view text) {
  for (const char* yes : {"true", "1", "yes", "on"}) {
    if (text == yes) return true;
  }
  for (const char* no : {"false", "0", "no", "off"}) {
    if (text == no) return false;
  }
  return std::nullopt;
}

std::string TypeName(const toml::node& node) {
  if (node.is_string()) return "a string";
  if (node.is_integer()) return "an integer";
  if (node.is_floating_point()) return "a float";
  if (node.is_boolean()) return "a boolean";
  if (node.is_array()) return "an array";
  if (node.is_table()) return "a table";
  return "a date or time";
}

// A TOML value, with the same checks as text.
Status SetFromToml(const SettingSpec& spec, const toml::node& node, Settings& s) {
  if (std::holds_alternative<int Settings::*>(spec.field)) {
    auto v = node.value_exact<std::int64_t>();
    if (!v) return Fail(Refused(spec, TypeName(node)));
    return SetInt(spec, *v, std::to_string(*v), s);
  }
  if (std::holds_alternative<double Settings::*>(spec.field)) {
    std::optional<double> v = node.value_exact<double>();
    if (!v) {
      if (auto i = node.value_exact<std::int64_t>()) v = static_cast<double>(*i);
    }
    if (!v) return Fail(Refused(spec, TypeName(node)));
    char text[32];
    std::snprintf(text, sizeof text, "%g", *v);
    return SetDouble(spec, *v, text, s);
  }
  if (std::holds_alternative<bool Settings::*>(spec.field)) {
    auto v = node.value_exact<bool>();
    if (!v) return Fail(Refused(spec, TypeName(node)));
    s.*std::get<bool Settings::*>(spec.field) = *v;
    return {};
  }
  if (std::holds_alternative<std::vector<std::string> Settings::*>(spec.field)) {
    const toml::array* array = node.as_array();
    if (array == nullptr) return Fail(Refused(spec, "a single value"));
    std::vector<std::string> items;
    for (const toml::node& item : *array) {
      auto v = item.value_exact<std::string>();
      if (!v) return Fail(Refused(spec, "an array holding something else"));
      items.push_back(*v);
    }
    return SetList(spec, std::move(items), s);
  }
  auto v = node.value_exact<std::string>();
  if (!v) return Fail(Refused(spec, TypeName(node)));
  return SetString(spec, std::move(*v), s);
}

// What `--help` shows as the default.
std::string DefaultText(const SettingSpec& spec) {
  static const Settings defaults;
  return std::visit(
      [](auto field) -> std::string {
        const auto& value = defaults.*field;
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return value;
        } else if constexpr (std::is_same_v<T, int>) {
          return std::to_string(value);
        } else if constexpr (std::is_same_v<T, bool>) {
          return value ? "true" : "false";
        } else if constexpr (std::is_same_v<T, double>) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%g", value);
          return buf;
        } else {
          std::string out;
          for (const auto& item : value) out += (out.empty() ? "" : ",") + item;
          return out;
        }
      },
      spec.field);
}

}  // namespace

Status SetSetting(const SettingSpec& spec, std::string_view text, Settings& s) {
  if (std::holds_alternative<int Settings::*>(spec.field)) {
    std::int64_t value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end) return Fail(Refused(spec, Quoted(text)));
    return SetInt(spec, value, text, s);
  }
  if (std::holds_alternative<double Settings::*>(spec.field)) {
    const std::string copy(text);
    char* end = nullptr;
    const double value = copy.empty() ? 0 : std::strtod(copy.c_str(), &end);
    if (copy.empty() || end != copy.c_str() + copy.size()) return Fail(Refused(spec, Quoted(text)));
    return SetDouble(spec, value, text, s);
  }
  if (std::holds_alternative<bool Settings::*>(spec.field)) {
    auto value = ParseBool(text);
    if (!value) return Fail(Refused(spec, Quoted(text)));
    s.*std::get<bool Settings::*>(spec.field) = *value;
    return {};
  }
  if (std::holds_alternative<std::vector<std::string> Settings::*>(spec.field)) {
    std::vector<std::string> items;
    std::size_t i = 0;
    for (;;) {
      const std::size_t comma = text.find(',', i);
      items.emplace_back(text.substr(i, comma == std::string_view::npos ? std::string_view::npos : comma - i));
      if (comma == std::string_view::npos) break;
      i = comma + 1;
    }
    return SetList(spec, std::move(items), s);
  }
  return SetString(spec, std::string(text), s);
}

// ---------------------------------------------------------------------------
// 3. The sources: flags (CLI11), the environment, the TOML file.

void AddSettingOption(CLI::App& app, Settings& s, const SettingSpec& spec) {
  const std::string help =
      std::string(spec.help) + " [env " + std::string(spec.env) + ", TOML " + std::string(spec.name) + "]";
  const std::string flag(spec.flag);
  CLI::Option* option = nullptr;
  if (spec.is_flag) {
    option = app.add_flag(flag, s.*std::get<bool Settings::*>(spec.field), help);
  } else if (std::holds_alternative<std::vector<std::string> Settings::*>(spec.field)) {
    option = app.add_option_function<std::vector<std::string>>(
                    flag,
                    [&s, &spec, flag](const std::vector<std::string>& items) {
                      if (auto ok = SetList(spec, items, s); !ok) throw CLI::ValidationError(flag, ok.error().message);
                    },
                    help)
                 ->delimiter(',');
  } else {
    option = app.add_option_function<std::string>(
        flag,
        [&s, &spec, flag](const std::string& text) {
          if (auto ok = SetSetting(spec, text, s); !ok) throw CLI::ValidationError(flag, ok.error().message);
        },
        help);
  }
  if (spec.is_flag) return;
  if (const std::string d = DefaultText(spec); !d.empty()) option->default_str(d);
  if (std::holds_alternative<int Settings::*>(spec.field)) {
    option->type_name("INT " + std::to_string(spec.min) + ".." + (spec.max == INT_MAX ? "" : std::to_string(spec.max)));
  } else if (std::holds_alternative<double Settings::*>(spec.field)) {
    option->type_name("NUMBER " + std::to_string(spec.min) + ".." + std::to_string(spec.max));
  } else if (std::holds_alternative<bool Settings::*>(spec.field)) {
    option->type_name("BOOL");
  } else if (!spec.choices.empty()) {
    std::string names;
    for (std::string_view c : spec.choices) names += (names.empty() ? "" : "|") + std::string(c);
    option->type_name(names);
  }
}

void AddStoreOptions(CLI::App& app, Settings& s) {
  for (const SettingSpec& spec : SettingTable()) {
    if (spec.store) AddSettingOption(app, s, spec);
  }
}

void AddServeOptions(CLI::App& app, Settings& s, std::initializer_list<std::string_view> except) {
  // Read before CLI11 parses (LoadConfigFile); declared so that CLI11 accepts it.
  app.add_option("--config", s.config_file, "TOML configuration file (the settings below, by their TOML names)")
      ->envname("VPPD_CONFIG");
  for (const SettingSpec& spec : SettingTable()) {
    if (std::find(except.begin(), except.end(), spec.name) == except.end()) AddSettingOption(app, s, spec);
  }
}

Status ApplyEnvironment(Settings& s, const EnvLookup& env) {
  for (const SettingSpec& spec : SettingTable()) {
    const char* value = env(std::string(spec.env).c_str());
    if (value == nullptr) continue;
    if (auto ok = SetSetting(spec, value, s); !ok) {
      return Fail(Error::InvalidArgument(std::string(spec.env) + ": " + ok.error().message));
    }
  }
  return {};
}

namespace {

Status ApplyTable(const toml::table& table, const std::string& prefix, Settings& s) {
  for (const auto& [k, node] : table) {
    const std::string key = prefix + std::string(k.str());
    if (const SettingSpec* spec = FindSetting(key)) {
      if (auto ok = SetFromToml(*spec, node, s); !ok) return ok;
      continue;
    }
    const bool is_section = std::any_of(SettingTable().begin(), SettingTable().end(),
                                        [&](const SettingSpec& spec) { return spec.name.rfind(key + ".", 0) == 0; });
    if (!is_section) return Fail(Error::InvalidArgument("unknown setting '" + key + "'"));
    if (!node.is_table()) return Fail(Error::InvalidArgument("'" + key + "' must be a table"));
    if (auto ok = ApplyTable(*node.as_table(), key + ".", s); !ok) return ok;
  }
  return {};
}

}  // namespace

Status LoadConfigFile(int argc, char** argv, Settings& settings, const EnvLookup& env) {
  std::string path;
  if (const char* from_env = env("VPPD_CONFIG")) path = from_env;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc) path = argv[i + 1];
    if (std::strncmp(argv[i], "--config=", 9) == 0) path = argv[i] + 9;
  }
  if (path.empty()) return {};
  try {
    toml::table table = toml::parse_file(path);
    if (auto ok = ApplyTable(table, "", settings); !ok) {
      return Fail(Error::InvalidArgument(path + ": " + ok.error().message));
    }
    return {};
  } catch (const toml::parse_error& e) {
    return Fail(Error::InvalidArgument(path + ": " + std::string(e.description())));
  }
}

// ---------------------------------------------------------------------------
// 4. What one entry cannot check.

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

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost" || host == "[::1]") return true;
  // 127.0.0.0/8, written as four decimal octets.
  if (!host.starts_with("127.")) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

Status ValidateNotificationUrl(std::string_view url) {
  if (url.empty()) return {};
  auto bad = [&](std::string_view why) {
    return Fail(
        Error::InvalidArgument("apple.notification_url " + std::string(why) + ", not '" + std::string(url) + "'"));
  };
  const bool https = url.starts_with("https://");
  if (!https && !url.starts_with("http://")) return bad("must be an https:// URL");
  const std::string_view rest = url.substr(https ? 8 : 7);
  const std::string_view authority = rest.substr(0, rest.find('/'));
  if (authority.empty()) return bad("must name a host");
  if (url.find_first_of("?#@ ") != std::string_view::npos) {
    return bad("must be a base URL without user, query or fragment");
  }
  std::string_view host = authority;
  if (host.starts_with('[')) {
    host = host.substr(0, host.find(']') + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  if (!https && !IsLoopbackHost(host)) return bad("must be https:// (http:// only for a loopback host)");
  if (url.size() > 400) return bad("is too long (Apple takes notification URLs of at most 512 characters)");
  return {};
}

Status Validate(const Settings& s) {
  if (auto l = ParseListen(s.listen); !l) return Fail(l.error());
  if (s.apple_url.rfind("https://", 0) != 0 && s.apple_url.rfind("http://", 0) != 0) {
    return Fail(Error::InvalidArgument("--apple-url must be an http(s) URL, not '" + s.apple_url + "'"));
  }
  if (s.audiences.empty()) return Fail(Error::InvalidArgument("at least one token audience is required"));
  if (!s.database_url.empty() && s.database_url.rfind("postgresql://", 0) != 0 &&
      s.database_url.rfind("postgres://", 0) != 0) {
    return Fail(Error::InvalidArgument("--database-url must be a postgresql:// URL"));
  }
  if (auto ok = ValidateNotificationUrl(s.apple_notification_url); !ok) return ok;
  if (s.tls_cert_file.empty() != s.tls_key_file.empty()) {
    return Fail(Error::InvalidArgument("--tls-cert and --tls-key go together: set both or neither"));
  }
  if (!s.jwks_file.empty() && !s.jwks_url.empty()) {
    return Fail(Error::InvalidArgument("set either auth.jwks_file or auth.jwks_url, not both"));
  }
  if (!s.issuer.empty() && (!s.jwks_file.empty() || !s.jwks_url.empty())) {
    return Fail(Error::InvalidArgument(
        "auth.issuer finds its keys itself (jwks_uri of its discovery document): set auth.jwks_file or "
        "auth.jwks_url only without it"));
  }
  for (const std::string* claim : {&s.scopes_claim, &s.roles_claim, &s.tenant_claim}) {
    if (claim->empty()) {
      return Fail(Error::InvalidArgument("auth.scopes_claim, roles_claim and tenant_claim must not be empty"));
    }
  }
  if (!s.tenant_id.empty() && !IsGuid(s.tenant_id)) {
    return Fail(Error::InvalidArgument("auth.tenant_id must be a GUID, not '" + s.tenant_id + "'"));
  }
  return {};
}

}  // namespace vppd::cli
