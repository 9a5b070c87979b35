#include "cli/runtime.h"

#include <filesystem>
#include <map>

#include <libpq-fe.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "base/metrics.h"
#include "cli/alert_gauges.h"

namespace vppd::cli {
namespace {

Result<auth::Verifier> MakeVerifier(const Settings& s, const auth::DevKey* dev_key) {
  auth::VerifierOptions options;
  options.audiences = s.audiences;
  options.leeway = std::chrono::seconds(s.leeway_seconds);
  options.jwks_refetch_interval = std::chrono::seconds(s.jwks_refetch_seconds);
  if (dev_key != nullptr) options.issuers = auth::DevIssuers(*dev_key);
  const auth::ClaimNames claims{
      .scopes = s.scopes_claim, .roles = s.roles_claim, .tenant = s.tenant_claim, .fixed_tenant = s.tenant_id};
  if (!s.issuer.empty()) {
    // Any OpenID Connect provider, instead of Entra ID's issuers; its discovery
    // document must be readable now (systemd restarts vppd until it is).
    auto issuer = auth::DiscoverIssuer(s.issuer, claims);
    if (!issuer) {
      Error e = issuer.error();
      e.message = "auth.issuer: " + e.message;
      return Fail(std::move(e));
    }
    options.issuers.push_back(std::move(*issuer));
  } else if (dev_key == nullptr || !s.jwks_file.empty() || !s.jwks_url.empty()) {
    // Outside dev mode, Entra ID's issuers are trusted (their keys from a file, a URL,
    // or Entra's published set). In dev mode only when asked for explicitly.
    auto source = !s.jwks_file.empty()  ? auth::JwksSource::File(s.jwks_file)
                  : !s.jwks_url.empty() ? auth::JwksSource::Url(s.jwks_url)
                                        : auth::JwksSource::Url(auth::kEntraJwksUrl);
    for (auto& issuer : auth::EntraIssuers(std::move(source))) {
      issuer.claims = claims;
      options.issuers.push_back(std::move(issuer));
    }
  }
  return auth::Verifier::Create(std::move(options));
}

// Gauges read from the store when /metrics is scraped.
void RegisterStoreGauges(store::Store* store) {
  metrics::RegisterGauge("vppd_sync_queue_depth", "Sync jobs queued or running", [store] {
    auto n = store->CountJobs();
    return std::vector<std::pair<metrics::Labels, double>>{{{}, n ? static_cast<double>(*n) : -1}};
  });
  metrics::RegisterGauge(
      "vppd_license_counts_age_seconds",
      "Seconds since the newest licence count was written (a sync or an ASSET_COUNT notification)", [store] {
        auto newest = store->NewestAppChange();
        const double age = newest && *newest > 0 ? static_cast<double>(Clock::Real().Now() - *newest) / 1e6 : -1;
        return std::vector<std::pair<metrics::Labels, double>>{{{}, age}};
      });
  metrics::RegisterGauge("vppd_tokens", "vppTokens by state, all tenants", [store] {
    std::map<std::string, double> by_state;
    for (const char* state :
         {"unknown", "valid", "expired", "invalid", "assignedToExternalMDM", "duplicateLocationId"}) {
      by_state[state] = 0;
    }
    if (auto tenants = store->ListTenants()) {
      for (const auto& tenant : *tenants) {
        for (auto& [state, count] : by_state) {
          auto n = store->CountTokens(
              tenant.id, store::Expr::Apply(store::Op::kEq,
                                            {store::Expr::Of(store::Column::kTokenState), store::Expr::Value(state)}));
          if (n) count += static_cast<double>(*n);
        }
      }
    }
    std::vector<std::pair<metrics::Labels, double>> out;
    for (const auto& [state, count] : by_state) out.push_back({{{"state", state}}, count});
    return out;
  });
}

}  // namespace

Result<std::string> ProposedInstallationId(const std::string& data_dir) {
  const std::string path = data_dir + "/" + kInstallationIdFile;
  Result<std::string> existing = ReadFile(path, 256);
  if (!existing) {
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) return Fail(existing.error());  // there but unreadable: say so
    return NewGuid();
  }
  std::string id = existing->substr(0, existing->find_first_of("\r\n"));
  if (!IsGuid(id)) return Fail(Error::FailedPrecondition(path + " does not hold a GUID"));
  return id;
}

namespace {

// The store, opened; the data dir and key file exist (the callers see to it).
// `statement_timeout_ms` > 0 replaces the store's default.
Result<std::unique_ptr<store::Store>> Open(const Settings& settings, int statement_timeout_ms = 0) {
  const std::string& data_dir = settings.data_dir;
  auto box = SecretBox::LoadOrCreate(settings.key_file.empty() ? data_dir + "/secret.key" : settings.key_file);
  if (!box) return Fail(box.error());
  auto secrets = std::make_shared<const SecretBox>(std::move(*box));
  if (!settings.database_url.empty()) {
    store::PostgresOptions options;
    options.url = settings.database_url;
    options.secrets = std::move(secrets);
    options.max_connections = settings.database_pool_size;
    if (statement_timeout_ms > 0) options.statement_timeout_ms = statement_timeout_ms;
    return store::Store::OpenPostgres(options);
  }
  store::SqliteOptions options;
  options.path = data_dir + "/vppd.db";
  options.secrets = std::move(secrets);
  if (statement_timeout_ms > 0) options.statement_timeout_ms = statement_timeout_ms;
  return store::Store::OpenSqlite(options);
}

}  // namespace

// Whether the PostgreSQL database at `url` holds a vppd store (its tenants table),
// asked before the store is opened, since opening one creates its schema. A
// connection that fails is left to the store to report (with its retries and words).
Result<bool> PostgresHoldsAStore(const std::string& url) {
  PGconn* conn = PQconnectdb(url.c_str());
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    PQfinish(conn);
    return true;
  }
  PGresult* result = PQexec(conn, "SELECT to_regclass('tenants') IS NOT NULL");
  const bool ok = PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1;
  const bool holds = ok && std::string_view(PQgetvalue(result, 0, 0)) == "t";
  const std::string error = ok ? "" : PQresultErrorMessage(result);
  PQclear(result);
  PQfinish(conn);
  if (!ok) return Fail(Error::Unavailable("cannot look for a vppd store in the database: " + error));
  return holds;
}

Result<std::unique_ptr<store::Store>> OpenExistingStore(const Settings& settings, int statement_timeout_ms) {
  const std::string& dir = settings.data_dir;
  const std::string where = " (vppd serve or vppd demo creates it; --data-dir or --database-url says where it is)";
  std::error_code ec;
  if (settings.database_url.empty()) {
    if (!std::filesystem::is_directory(dir, ec)) {
      return Fail(Error::NotFound("no vppd data dir at '" + dir + "': looked for '" + dir + "/vppd.db'" + where));
    }
    if (!std::filesystem::is_regular_file(dir + "/vppd.db", ec)) {
      return Fail(Error::NotFound("no vppd store in '" + dir + "': looked for '" + dir + "/vppd.db'" + where));
    }
  }
  if (!settings.database_url.empty()) {
    // The URL may hold a password: the message names the setting, not the URL.
    auto holds = PostgresHoldsAStore(settings.database_url);
    if (!holds) return Fail(holds.error());
    if (!*holds) {
      return Fail(
          Error::NotFound("the PostgreSQL database of --database-url holds no vppd store: looked for its "
                          "tenants table" +
                          where));
    }
  }
  const std::string key = settings.key_file.empty() ? dir + "/secret.key" : settings.key_file;
  if (!std::filesystem::is_regular_file(key, ec)) {
    return Fail(Error::NotFound("no sToken key at '" + key + "': the store's key is needed to open it (the " +
                                "server's --secrets-key-file, or secret.key in its --data-dir)"));
  }
  return Open(settings, statement_timeout_ms);
}

Result<std::unique_ptr<store::Store>> OpenStore(const Settings& settings) {
  const std::string& data_dir = settings.data_dir;
  std::error_code ec;
  if (!std::filesystem::exists(data_dir, ec)) {
    std::filesystem::create_directories(data_dir, ec);
    if (ec) return Fail(Error::Internal("cannot create data dir " + data_dir + ": " + ec.message()));
    ::chmod(data_dir.c_str(), 0700);
  } else if (!std::filesystem::is_directory(data_dir, ec)) {
    return Fail(Error::InvalidArgument("data dir " + data_dir + " is not a directory"));
  } else {
    struct stat st {};
    if (::stat(data_dir.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      // It holds the keys and the database: owner-only, as when vppd creates it.
      if (::chmod(data_dir.c_str(), st.st_mode & 0700) != 0) {
        return Fail(Error::FailedPrecondition("data dir " + data_dir +
                                              " is accessible by group or others and cannot be made owner-only"));
      }
      spdlog::warn("data dir {} was accessible by group or others; it holds keys: made it owner-only (mode {:o})",
                   data_dir, st.st_mode & 0700);
    }
  }
  return Open(settings);
}

void Runtime::Shutdown() {
  if (server) server->Stop();
  if (notification_applier) notification_applier->Stop();
  if (engine) engine->Stop();
}

Result<std::string> FindTokenTenant(store::Store& store, const std::string& token_id, const std::string& tenant_id) {
  auto tenants = store.ListTenants();
  if (!tenants) return Fail(tenants.error());
  for (const auto& tenant : *tenants) {
    if (!tenant_id.empty() && tenant.id != tenant_id) continue;
    auto token = store.GetToken(tenant.id, token_id);
    if (token) return tenant.id;
    if (token.error().code != Code::kNotFound) return Fail(token.error());
  }
  std::string where = tenant_id.empty() ? "in any tenant" : "in tenant " + tenant_id;
  return Fail(Error::NotFound("no vppToken with id '" + token_id + "' " + where +
                              " of this store (vppd tokens list shows them)"));
}

Result<std::unique_ptr<Runtime>> StartRuntime(const Settings& s) {
  if (auto ok = Validate(s); !ok) return Fail(ok.error());
  if (s.apple_url.rfind("http://", 0) == 0) {
    spdlog::warn("Apple API URL {} is plain http: use this only with a simulator", s.apple_url);
  }
  if (s.apple_notification_url.rfind("http://", 0) == 0) {
    spdlog::warn(
        "apple.notification_url {} is plain http (loopback): Apple itself accepts only https; use this only "
        "with a simulator",
        s.apple_notification_url);
  }
  auto rt = std::make_unique<Runtime>();
  rt->settings = s;
  auto store = OpenStore(s);
  if (!store) return Fail(store.error());
  rt->store = std::move(*store);
  if (s.metrics) {
    RegisterStoreGauges(rt->store.get());
    RegisterAlertGauges(rt->store.get(), {.app_usage_percent = s.alerts_app_usage_percent});
  }

  if (s.dev) {
    auto key = auth::DevKey::LoadOrCreate(s.data_dir);
    if (!key) return Fail(key.error());
    rt->dev_key = std::move(*key);
    service::Tenants tenants(*rt->store);
    if (auto ok = tenants.Put(auth::kDevTenantId, "vppd dev tenant", true); !ok) return Fail(ok.error());
  }
  auto verifier = MakeVerifier(s, rt->dev_key ? &*rt->dev_key : nullptr);
  if (!verifier) return Fail(verifier.error());
  rt->verifier.emplace(std::move(*verifier));

  // The store's id wins: every instance on one database is then one owner at Apple.
  auto proposed = ProposedInstallationId(s.data_dir);
  if (!proposed) return Fail(proposed.error());
  auto installation = rt->store->InstallationId(*proposed);
  if (!installation) return Fail(installation.error());
  if (*installation != *proposed && std::filesystem::exists(s.data_dir + "/" + kInstallationIdFile)) {
    spdlog::warn("{}/{} holds {} but the store's installation id is {}: using the store's (the file is only read)",
                 s.data_dir, kInstallationIdFile, *proposed, *installation);
  }
  sync::EngineOptions engine_options;
  engine_options.workers = s.sync_workers;
  engine_options.apple_url = s.apple_url;
  engine_options.installation_id = *installation;
  engine_options.auto_sync_interval = std::chrono::seconds(s.sync_interval_seconds);
  engine_options.metadata_ttl = std::chrono::seconds(s.sync_app_metadata_ttl_seconds);
  engine_options.full_walk_interval = std::chrono::hours(24 * s.sync_full_walk_days);
  engine_options.lease = std::chrono::seconds(s.sync_lease_seconds);
  engine_options.poll_interval = std::chrono::milliseconds(s.sync_job_poll_ms);
  engine_options.event_poll_interval = std::chrono::milliseconds(s.sync_event_poll_ms);
  engine_options.event_notification_wait = std::chrono::seconds(s.sync_event_notification_wait_seconds);
  engine_options.reconcile.reclaim = s.assign_reclaim != "never";
  engine_options.reconcile.max_reclaim_fraction = s.assign_max_reclaim_fraction;
  engine_options.retry.max_attempts = s.apple_max_attempts;
  engine_options.retry.max_total_wait = std::chrono::seconds(s.apple_max_retry_seconds);
  engine_options.incremental_interval = std::chrono::seconds(s.sync_incremental_interval_seconds);
  engine_options.notification_url = s.apple_notification_url;
  rt->engine = std::make_unique<sync::Engine>(*rt->store, engine_options);
  // A new URL or other types: every location registers again with its next sync, queued now.
  if (auto queued = sync::QueueNotificationRegistrations(*rt->store, engine_options); !queued) {
    spdlog::warn("could not queue the syncs that register notifications: {}", queued.error().message);
  } else if (*queued > 0) {
    spdlog::info("notifications: {} token(s) to register at {}; their syncs are queued", *queued,
                 s.apple_notification_url);
  }

  auto profile = service::ParsePermissionProfile(s.permission_profile);
  if (!profile) return Fail(profile.error());
  service::Options service_options;
  service_options.profile = *profile;
  sync::Engine* engine = rt->engine.get();
  service_options.on_job_queued = [engine] { engine->Wake(); };
  rt->tokens = std::make_unique<service::VppTokens>(*rt->store, service_options);
  rt->apps = std::make_unique<service::MobileApps>(*rt->store, service_options);
  rt->reconciles = std::make_unique<service::QueueingReconcileTrigger>(*rt->store, service_options);
  rt->assignments = std::make_unique<service::AppAssignments>(*rt->store, service_options, rt->reconciles.get());
  rt->ebooks = std::make_unique<service::ManagedEBooks>(*rt->store, service_options, rt->reconciles.get());
  rt->reconcile_trigger = rt->reconciles.get();
  rt->directory = std::make_unique<service::Directory>(*rt->store, service_options, rt->reconcile_trigger);
  rt->revokes = std::make_unique<service::LicenseRevokes>(*rt->store, service_options);
  if (s.throttle_window_seconds > 0) {
    rt->throttle.emplace(service::ThrottleLimits{.window = std::chrono::seconds(s.throttle_window_seconds),
                                                 .tenant_writes = s.throttle_tenant_writes,
                                                 .app_writes = s.throttle_app_writes,
                                                 .tenant_requests = s.throttle_tenant_requests,
                                                 .app_requests = s.throttle_app_requests});
  }

  service::NotificationOptions notification_options;
  notification_options.on_job_queued = [engine] { engine->Wake(); };  // an event ended: its reconcile goes on
  rt->notification_applier = std::make_unique<service::NotificationApplier>(*rt->store, notification_options);
  service::NotificationApplier* applier = rt->notification_applier.get();
  notification_options.on_recorded = [applier] { applier->Wake(); };
  rt->notification_receiver = std::make_unique<service::NotificationReceiver>(*rt->store, notification_options);

  graph::Options graph_options;
  graph_options.action_response = s.action_response == "value"    ? graph::ActionResponse::kValue
                                  : s.action_response == "entity" ? graph::ActionResponse::kEntity
                                                                  : graph::ActionResponse::kAuto;
  graph_options.page_size = s.page_size;
  graph_options.public_url = s.public_url;
  graph_options.metrics = s.metrics;
  // The console signs in where vppd's tokens come from, unless told otherwise.
  graph_options.console_oidc = {.issuer = s.console_oidc_issuer.empty() ? s.issuer : s.console_oidc_issuer,
                                .client_id = s.console_oidc_client_id,
                                .scopes = s.console_oidc_scopes};
  rt->api = std::make_unique<graph::Api>(graph::Dependencies{.verifier = &*rt->verifier,
                                                             .tokens = rt->tokens.get(),
                                                             .apps = rt->apps.get(),
                                                             .assignments = rt->assignments.get(),
                                                             .ebooks = rt->ebooks.get(),
                                                             .throttle = rt->throttle ? &*rt->throttle : nullptr,
                                                             .directory = rt->directory.get(),
                                                             .revokes = rt->revokes.get(),
                                                             .dev_key = rt->dev_key ? &*rt->dev_key : nullptr,
                                                             .notifications = rt->notification_receiver.get()},
                                         graph_options);

  auto listen = ParseListen(s.listen);
  http::ServerOptions http_options;
  http_options.host = listen->first;
  http_options.port = listen->second;
  http_options.threads = s.threads;
  http_options.max_connections_per_address = static_cast<std::size_t>(s.max_connections_per_address);
  http_options.trusted_proxies = s.trusted_proxies;
  http_options.tls_cert_file = s.tls_cert_file;
  http_options.tls_key_file = s.tls_key_file;
  http_options.access_log = true;
  http_options.error_writer = graph::ServerErrorResponse;  // the server's own errors in Graph's envelope
  graph::Api* api = rt->api.get();
  auto server = http::Server::Start(http_options, [api](http::Request& r) { return api->Handle(r); });
  if (!server) return Fail(server.error());
  rt->server = std::move(*server);
  rt->engine->Start();
  rt->notification_applier->Start();
  return rt;
}

}  // namespace vppd::cli
