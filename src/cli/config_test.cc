// The settings table: every source (flag, VPPD_* environment, TOML file) refuses a
// value the same way, precedence is flag > env > TOML > default, and the flags,
// variables and keys that scripts, tests and benchmarks use still exist.
#include "cli/config.h"

#include <climits>
#include <fstream>
#include <map>
#include <set>

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include "base/testing.h"

namespace vppd::cli {
namespace {

// One run of `vppd serve ARGS` with an environment and (optionally) a TOML file, as
// main.cc loads them: TOML, then env, then flags.
class Sources {
 public:
  std::map<std::string, std::string> env;
  std::string toml;  // written to a file passed with --config when not empty

  // The settings, or the error message vppd prints (after "vppd: ").
  Result<Settings> Load(std::vector<std::string> args = {}) {
    if (!toml.empty()) {
      std::ofstream(dir_.File("vppd.toml")) << toml;
      args.insert(args.begin(), {"--config", dir_.File("vppd.toml")});
    }
    args.insert(args.begin(), "vppd");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    const EnvLookup lookup = [this](const char* name) -> const char* {
      auto it = env.find(name);
      return it == env.end() ? nullptr : it->second.c_str();
    };
    Settings s;
    CLI::App app;
    AddServeOptions(app, s);
    if (auto ok = LoadConfigFile(static_cast<int>(argv.size()), argv.data(), s, lookup); !ok) return Fail(ok.error());
    if (auto ok = ApplyEnvironment(s, lookup); !ok) return Fail(ok.error());
    try {
      app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ValidationError& e) {
      return Fail(Error::InvalidArgument(e.what()));
    }
    return s;
  }

  std::string TomlPath() const { return dir_.File("vppd.toml"); }

 private:
  testing::TempDir dir_{"vppd-config"};
};

// `name = value` under its section, as an operator writes it.
std::string TomlLine(const SettingSpec& spec, const std::string& value) {
  const std::string name(spec.name);
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return name + " = " + value + "\n";
  return "[" + name.substr(0, dot) + "]\n" + name.substr(dot + 1) + " = " + value + "\n";
}

// What each source says about one refused value, without its "where" prefix.
struct Refusals {
  std::string flag, env, toml;
};

Refusals RefuseEverywhere(const SettingSpec& spec, const std::string& text, const std::string& toml_value) {
  Refusals out;
  {
    Sources src;
    auto r = src.Load({std::string(spec.flag) + "=" + text});
    EXPECT_FALSE(r) << spec.flag << " " << text << " was accepted";
    if (!r) {
      EXPECT_EQ(r.error().code, Code::kInvalidArgument);
      const std::string prefix = std::string(spec.flag) + ": ";
      EXPECT_EQ(r.error().message.rfind(prefix, 0), 0u) << r.error().message;
      out.flag = r.error().message.substr(prefix.size());
    }
  }
  {
    Sources src;
    src.env[std::string(spec.env)] = text;
    auto r = src.Load();
    EXPECT_FALSE(r) << spec.env << "=" << text << " was accepted";
    if (!r) {
      EXPECT_EQ(r.error().code, Code::kInvalidArgument);
      const std::string prefix = std::string(spec.env) + ": ";
      EXPECT_EQ(r.error().message.rfind(prefix, 0), 0u) << r.error().message;
      out.env = r.error().message.substr(prefix.size());
    }
  }
  {
    Sources src;
    src.toml = TomlLine(spec, toml_value);
    auto r = src.Load();
    EXPECT_FALSE(r) << src.toml << " was accepted";
    if (!r) {
      EXPECT_EQ(r.error().code, Code::kInvalidArgument);
      const std::string prefix = src.TomlPath() + ": ";
      EXPECT_EQ(r.error().message.rfind(prefix, 0), 0u) << r.error().message;
      out.toml = r.error().message.substr(prefix.size());
    }
  }
  return out;
}

TEST(SettingsTest, SyncWorkersZeroIsRefusedTheSameWayFromEverySource) {
  const Refusals r = RefuseEverywhere(*FindSetting("sync.workers"), "0", "0");
  const std::string expected = "sync.workers must be an integer from 1 to 64, not '0'";
  EXPECT_EQ(r.flag, expected);
  EXPECT_EQ(r.env, expected);
  EXPECT_EQ(r.toml, expected);
}

// Every integer setting just below and just above its range, and every setting
// with a list of values given another one, from each source.
TEST(SettingsTest, EveryOutOfRangeValueIsRefusedIdenticallyByFlagEnvAndToml) {
  int checked = 0;
  for (const SettingSpec& spec : SettingTable()) {
    std::vector<std::string> bad;
    if (std::holds_alternative<int Settings::*>(spec.field)) {
      bad.push_back(std::to_string(spec.min - 1));
      if (spec.max < INT_MAX) bad.push_back(std::to_string(spec.max + 1));
    } else if (std::holds_alternative<double Settings::*>(spec.field)) {
      bad.push_back("-0.5");
      bad.push_back(std::to_string(spec.max) + ".5");
    } else if (!spec.choices.empty()) {
      bad.push_back("bogus");
    }
    for (const std::string& value : bad) {
      SCOPED_TRACE(std::string(spec.name) + " = " + value);
      const bool is_string = std::holds_alternative<std::string Settings::*>(spec.field);
      const Refusals r = RefuseEverywhere(spec, value, is_string ? "\"" + value + "\"" : value);
      EXPECT_NE(r.flag.find(std::string(spec.name) + " must be "), std::string::npos) << r.flag;
      EXPECT_NE(r.flag.find("'" + value + "'"), std::string::npos) << r.flag;
      EXPECT_EQ(r.env, r.flag);
      EXPECT_EQ(r.toml, r.flag);
      ++checked;
    }
  }
  EXPECT_GE(checked, 25);
}

TEST(SettingsTest, AFractionIsANumberFromAnySource) {
  Sources src;
  src.toml = "[assign]\nmax_reclaim_fraction = 0.5\nreclaim = \"never\"\n";
  auto s = src.Load({});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->assign_max_reclaim_fraction, 0.5);
  EXPECT_EQ(s->assign_reclaim, "never");
  src.toml = "[assign]\nmax_reclaim_fraction = 1\n";  // an integer is a number too
  s = src.Load({});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->assign_max_reclaim_fraction, 1.0);
  src.toml = "";
  src.env["VPPD_ASSIGN_MAX_RECLAIM_FRACTION"] = "0.25";
  s = src.Load({});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->assign_max_reclaim_fraction, 0.25);
  s = src.Load({"--assign-max-reclaim-fraction", "0"});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->assign_max_reclaim_fraction, 0.0);
  s = src.Load({"--assign-max-reclaim-fraction", "a lot"});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("assign.max_reclaim_fraction must be a number from 0 to 1, not 'a lot'"),
            std::string::npos)
      << s.error().message;
}

TEST(SettingsTest, TheRangeEndsAreAccepted) {
  Sources src;
  src.toml = "[sync]\nworkers = 64\n[graph]\npage_size = 1\n";
  src.env["VPPD_THREADS"] = "256";
  auto s = src.Load({"--auth-leeway-seconds", "0"});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->sync_workers, 64);
  EXPECT_EQ(s->page_size, 1);
  EXPECT_EQ(s->threads, 256);
  EXPECT_EQ(s->leeway_seconds, 0);
}

TEST(SettingsTest, FlagBeatsEnvBeatsTomlBeatsTheDefault) {
  Sources src;
  EXPECT_EQ(src.Load()->sync_workers, 2);
  src.toml = "[sync]\nworkers = 3\n[log]\nformat = \"text\"\n";
  EXPECT_EQ(src.Load()->sync_workers, 3);
  src.env["VPPD_SYNC_WORKERS"] = "4";
  EXPECT_EQ(src.Load()->sync_workers, 4);
  auto s = src.Load({"--sync-workers", "5"});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->sync_workers, 5);
  EXPECT_EQ(s->log_format, "text");  // from the file, nothing overrode it
}

TEST(SettingsTest, ARefusedValueIsRefusedEvenWhenAHigherSourceWouldOverrideIt) {
  Sources src;
  src.toml = "[sync]\nworkers = 0\n";
  auto s = src.Load({"--sync-workers", "5"});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("sync.workers must be an integer from 1 to 64, not '0'"), std::string::npos);
}

TEST(SettingsTest, ListsAndBooleansFromEachSource) {
  Sources src;
  src.toml = "metrics = false\n[auth]\naudiences = [\"a\", \"b\"]\n";
  auto s = src.Load();
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_FALSE(s->metrics);
  EXPECT_EQ(s->audiences, (std::vector<std::string>{"a", "b"}));
  src.env["VPPD_AUTH_AUDIENCES"] = "c,d";
  src.env["VPPD_METRICS"] = "true";
  src.env["VPPD_DEV"] = "1";
  s = src.Load();
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_TRUE(s->metrics);
  EXPECT_TRUE(s->dev);
  EXPECT_EQ(s->audiences, (std::vector<std::string>{"c", "d"}));
  s = src.Load({"--auth-audience", "e", "--auth-audience", "f", "--metrics", "false"});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_FALSE(s->metrics);
  EXPECT_EQ(s->audiences, (std::vector<std::string>{"e", "f"}));

  src.env = {{"VPPD_METRICS", "maybe"}};
  s = src.Load();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, "VPPD_METRICS: metrics must be true or false, not 'maybe'");
}

TEST(SettingsTest, WrongTypesAndUnknownKeysInTomlNameTheKey) {
  Sources src;
  src.toml = "[sync]\nworkers = \"4\"\n";
  auto s = src.Load();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, src.TomlPath() + ": sync.workers must be an integer from 1 to 64, not a string");
  src.toml = "[sync]\nworkerz = 4\n";
  s = src.Load();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, src.TomlPath() + ": unknown setting 'sync.workerz'");
  src.toml = "sync = 4\n";
  s = src.Load();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, src.TomlPath() + ": 'sync' must be a table");
  src.toml = "[auth]\naudiences = \"one\"\n";
  s = src.Load();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, src.TomlPath() + ": auth.audiences must be a list of strings, not a single value");
  src.toml = "log_level = \"debug\"\n";  // the older top-level spelling
  s = src.Load();
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->log_level, "debug");
}

// The interfaces design.md, tests/ and bench/ rely on.
TEST(SettingsTest, EveryFlagEnvAndTomlKeyInUseStillExists) {
  const std::set<std::string> flags = {"--listen",
                                       "--data-dir",
                                       "--apple-url",
                                       "--dev",
                                       "--threads",
                                       "--log-level",
                                       "--log-format",
                                       "--metrics",
                                       "--graph-action-response",
                                       "--graph-page-size",
                                       "--graph-public-url",
                                       "--auth-permission-profile",
                                       "--auth-jwks-file",
                                       "--auth-jwks-url",
                                       "--auth-audience",
                                       "--auth-leeway-seconds",
                                       "--throttle-window-seconds",
                                       "--throttle-tenant-writes",
                                       "--throttle-app-writes",
                                       "--throttle-tenant-requests",
                                       "--throttle-app-requests",
                                       "--apple-max-attempts",
                                       "--apple-max-retry-seconds",
                                       "--sync-workers",
                                       "--sync-interval-seconds",
                                       "--sync-app-metadata-ttl-seconds",
                                       "--sync-full-walk-days",
                                       "--sync-lease-seconds",
                                       "--sync-job-poll-ms",
                                       "--sync-event-poll-ms",
                                       "--sync-event-notification-wait-seconds",
                                       "--database-url",
                                       "--database-pool-size",
                                       "--secrets-key-file",
                                       "--max-connections-per-address",
                                       "--trusted-proxies",
                                       "--auth-jwks-refetch-seconds",
                                       "--assign-reclaim",
                                       "--assign-max-reclaim-fraction",
                                       "--apple-notification-url",
                                       "--sync-incremental-interval-seconds",
                                       "--tls-cert",
                                       "--tls-key",
                                       "--auth-issuer",
                                       "--auth-scopes-claim",
                                       "--auth-roles-claim",
                                       "--auth-tenant-claim",
                                       "--auth-tenant-id",
                                       "--alerts-app-usage-percent",
                                       "--console-oidc-issuer",
                                       "--console-oidc-client-id",
                                       "--console-oidc-scopes"};
  const std::set<std::string> keys = {"listen",
                                      "data_dir",
                                      "apple_url",
                                      "dev",
                                      "threads",
                                      "log_level",
                                      "metrics",
                                      "log.format",
                                      "log.level",
                                      "graph.action_response",
                                      "graph.page_size",
                                      "graph.public_url",
                                      "auth.permission_profile",
                                      "auth.jwks_file",
                                      "auth.jwks_url",
                                      "auth.audiences",
                                      "auth.leeway_seconds",
                                      "secrets.key_file",
                                      "store.database_url",
                                      "store.pool_size",
                                      "apple.max_attempts",
                                      "apple.max_retry_seconds",
                                      "sync.workers",
                                      "sync.interval_seconds",
                                      "sync.full_walk_days",
                                      "sync.app_metadata_ttl_seconds",
                                      "sync.lease_seconds",
                                      "sync.job_poll_ms",
                                      "sync.event_poll_ms",
                                      "sync.event_notification_wait_seconds",
                                      "throttle.window_seconds",
                                      "throttle.tenant_writes",
                                      "throttle.app_writes",
                                      "throttle.tenant_requests",
                                      "throttle.app_requests",
                                      "http.max_connections_per_address",
                                      "http.trusted_proxies",
                                      "auth.jwks_refetch_seconds",
                                      "assign.reclaim",
                                      "assign.max_reclaim_fraction",
                                      "apple.notification_url",
                                      "sync.incremental_interval_seconds",
                                      "http.tls_cert_file",
                                      "http.tls_key_file",
                                      "auth.issuer",
                                      "auth.scopes_claim",
                                      "auth.roles_claim",
                                      "auth.tenant_claim",
                                      "auth.tenant_id",
                                      "alerts.app_usage_percent",
                                      "console.oidc_issuer",
                                      "console.oidc_client_id",
                                      "console.oidc_scopes"};
  std::set<std::string> table_flags, table_envs, table_names;
  for (const SettingSpec& spec : SettingTable()) {
    EXPECT_TRUE(table_flags.insert(std::string(spec.flag)).second) << spec.flag << " twice";
    EXPECT_TRUE(table_envs.insert(std::string(spec.env)).second) << spec.env << " twice";
    EXPECT_EQ(spec.env.rfind("VPPD_", 0), 0u) << spec.env;
    EXPECT_TRUE(table_names.insert(std::string(spec.name)).second) << spec.name << " twice";
  }
  EXPECT_EQ(table_flags, flags);
  for (const std::string& key : keys) EXPECT_NE(FindSetting(key), nullptr) << key;
  for (const char* env : {"VPPD_LISTEN", "VPPD_DATA_DIR", "VPPD_DATABASE_URL", "VPPD_SECRETS_KEY_FILE",
                          "VPPD_SYNC_WORKERS", "VPPD_LOG_FORMAT", "VPPD_DEV", "VPPD_AUTH_AUDIENCES"}) {
    EXPECT_TRUE(table_envs.count(env)) << env;
  }
}

// The sample configuration that packaging/ ships sets every setting: it must load.
TEST(SettingsTest, ThePackagedSampleConfigurationLoads) {
  Settings s;
  std::string config = std::string(VPPD_SOURCE_DIR) + "/packaging/vppd.toml";
  std::vector<char*> argv = {const_cast<char*>("vppd"), const_cast<char*>("--config"), config.data()};
  auto ok = LoadConfigFile(3, argv.data(), s, [](const char*) -> const char* { return nullptr; });
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_TRUE(Validate(s));
}

TEST(SettingsTest, ValidateChecksWhatOneEntryCannot) {
  Settings s;
  EXPECT_TRUE(Validate(s));
  s.listen = "nohostport";
  EXPECT_FALSE(Validate(s));
  s = Settings{};
  s.jwks_file = "a";
  s.jwks_url = "b";
  EXPECT_FALSE(Validate(s));
  s = Settings{};
  s.issuer = "https://idp.example/realms/vppd";
  EXPECT_TRUE(Validate(s));
  s.jwks_url = "https://idp.example/keys";  // the issuer's keys come from its discovery document
  EXPECT_FALSE(Validate(s));
  s = Settings{};
  s.tenant_id = "contoso";
  EXPECT_FALSE(Validate(s));
  s.tenant_id = "11111111-2222-4333-8444-555555555555";
  EXPECT_TRUE(Validate(s));
  s.roles_claim = "";
  EXPECT_FALSE(Validate(s));
}

// Another OpenID Connect provider, set up as an operator would in vppd.toml.
TEST(SettingsTest, AnotherIssuerAndItsClaimsFromEachSource) {
  Sources src;
  src.toml =
      "[auth]\nissuer = \"https://idp.example/realms/vppd\"\nscopes_claim = \"scope\"\n"
      "roles_claim = \"realm_access.roles\"\n[alerts]\napp_usage_percent = 80\n";
  src.env["VPPD_AUTH_TENANT_CLAIM"] = "org.tenant";
  auto s = src.Load({"--auth-tenant-id", "11111111-2222-4333-8444-555555555555"});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->issuer, "https://idp.example/realms/vppd");
  EXPECT_EQ(s->scopes_claim, "scope");
  EXPECT_EQ(s->roles_claim, "realm_access.roles");
  EXPECT_EQ(s->tenant_claim, "org.tenant");
  EXPECT_EQ(s->tenant_id, "11111111-2222-4333-8444-555555555555");
  EXPECT_EQ(s->alerts_app_usage_percent, 80);
  EXPECT_EQ(Settings{}.alerts_app_usage_percent, 90);
  EXPECT_EQ(Settings{}.scopes_claim, "scp");
}

}  // namespace
}  // namespace vppd::cli

namespace vppd::cli {
namespace {

TEST(NotificationUrl, HttpsOrLoopbackHttpOnly) {
  for (const char* ok : {"", "https://vppd.example.com", "https://vppd.example.com:8443/base/", "http://127.0.0.1:8080",
                         "http://127.1.2.3", "http://localhost:9000/x", "http://[::1]:8080"}) {
    EXPECT_TRUE(ValidateNotificationUrl(ok)) << ok;
  }
  for (const char* bad :
       {"ftp://x", "vppd.example.com", "https://", "http://vppd.example.com", "http://10.0.0.1:80",
        "http://127.0.0.1.evil.example", "https://u:p@vppd.example.com", "https://x/?q=1", "https://x/#f"}) {
    auto r = ValidateNotificationUrl(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("apple.notification_url"), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace vppd::cli
