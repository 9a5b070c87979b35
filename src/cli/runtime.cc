#include "cli/runtime.h"

#include <sys/stat.h>

#include <filesystem>
#include <map>

#include <spdlog/spdlog.h>

#include "base/metrics.h"

namespace vppd::cli {
namespace {

Result<auth::Verifier> MakeVerifier(const Settings& s, const auth::DevKey* dev_key) {
  auth::VerifierOptions options;
  options.audiences = s.audiences;
  options.leeway = std::chrono::seconds(s.leeway_seconds);
  if (dev_key != nullptr) options.issuers = auth::DevIssuers(*dev_key);
  // Outside dev mode, Entra ID's issuers are trusted (their keys from a file, a URL,
  // or Entra's published set). In dev mode only when asked for explicitly.
  if (dev_key == nullptr || !s.jwks_file.empty() || !s.jwks_url.empty()) {
    auto source = !s.jwks_file.empty()  ? auth::JwksSource::File(s.jwks_file)
                  : !s.jwks_url.empty() ? auth::JwksSource::Url(s.jwks_url)
                                        : auth::JwksSource::Url(auth::kEntraJwksUrl);
    for (auto& issuer : auth::EntraIssuers(std::move(source))) options.issuers.push_back(std::move(issuer));
  }
  return auth::Verifier::Create(std::move(options));
}

// Gauges read from the store when /metrics is scraped.
void RegisterStoreGauges(store::Store* store) {
  metrics::RegisterGauge("vppd_sync_queue_depth", "Sync jobs queued or running", [store] {
    auto n = store->CountJobs();
    return std::vector<std::pair<metrics::Labels, double>>{{{}, n ? static_cast<double>(*n) : -1}};
  });
  metrics::RegisterGauge("vppd_tokens", "vppTokens by state, all tenants", [store] {
    std::map<std::string, double> by_state;
    for (const char* state : {"unknown", "valid", "expired", "invalid", "assignedToExternalMDM", "duplicateLocationId"}) {
      by_state[state] = 0;
    }
    if (auto tenants = store->ListTenants()) {
      for (const auto& tenant : *tenants) {
        for (auto& [state, count] : by_state) {
          auto n = store->CountTokens(
              tenant.id, store::Expr::Apply(store::Op::kEq, {store::Expr::Property("state"), store::Expr::Value(state)}));
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
      spdlog::warn("data dir {} is accessible by group or others; it holds keys: chmod 700 it", data_dir);
    }
  }
  auto box = SecretBox::LoadOrCreate(settings.key_file.empty() ? data_dir + "/secret.key" : settings.key_file);
  if (!box) return Fail(box.error());
  auto secrets = std::make_shared<const SecretBox>(std::move(*box));
  if (!settings.database_url.empty()) {
    store::PostgresOptions options;
    options.url = settings.database_url;
    options.secrets = std::move(secrets);
    options.max_connections = settings.database_pool_size;
    return store::Store::OpenPostgres(options);
  }
  store::SqliteOptions options;
  options.path = data_dir + "/vppd.db";
  options.secrets = std::move(secrets);
  return store::Store::OpenSqlite(options);
}

void Runtime::Shutdown() {
  if (server) server->Stop();
  if (engine) engine->Stop();
}

Result<std::unique_ptr<Runtime>> StartRuntime(const Settings& s) {
  if (auto ok = Validate(s); !ok) return Fail(ok.error());
  if (s.apple_url.rfind("http://", 0) == 0) {
    spdlog::warn("Apple API URL {} is plain http: use this only with a simulator", s.apple_url);
  }
  auto rt = std::make_unique<Runtime>();
  rt->settings = s;
  auto store = OpenStore(s);
  if (!store) return Fail(store.error());
  rt->store = std::move(*store);
  if (s.metrics) RegisterStoreGauges(rt->store.get());

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
  engine_options.event_poll_interval = std::chrono::milliseconds(s.sync_event_poll_ms);
  engine_options.retry.max_attempts = s.apple_max_attempts;
  engine_options.retry.max_total_wait = std::chrono::seconds(s.apple_max_retry_seconds);
  rt->engine = std::make_unique<sync::Engine>(*rt->store, engine_options);

  auto profile = service::ParsePermissionProfile(s.permission_profile);
  if (!profile) return Fail(profile.error());
  service::Options service_options;
  service_options.profile = *profile;
  sync::Engine* engine = rt->engine.get();
  service_options.on_job_queued = [engine] { engine->Wake(); };
  rt->tokens = std::make_unique<service::VppTokens>(*rt->store, service_options);
  rt->apps = std::make_unique<service::MobileApps>(*rt->store, service_options);
  if (s.throttle_window_seconds > 0) {
    rt->throttle.emplace(service::ThrottleLimits{.window = std::chrono::seconds(s.throttle_window_seconds),
                                                 .tenant_writes = s.throttle_tenant_writes,
                                                 .app_writes = s.throttle_app_writes,
                                                 .tenant_requests = s.throttle_tenant_requests,
                                                 .app_requests = s.throttle_app_requests});
  }

  graph::Options graph_options;
  graph_options.action_response = s.action_response == "value"    ? graph::ActionResponse::kValue
                                  : s.action_response == "entity" ? graph::ActionResponse::kEntity
                                                                  : graph::ActionResponse::kAuto;
  graph_options.page_size = s.page_size;
  graph_options.public_url = s.public_url;
  graph_options.metrics = s.metrics;
  rt->api = std::make_unique<graph::Api>(
      graph::Dependencies{.verifier = &*rt->verifier,
                          .tokens = rt->tokens.get(),
                          .apps = rt->apps.get(),
                          .throttle = rt->throttle ? &*rt->throttle : nullptr},
      graph_options);

  auto listen = ParseListen(s.listen);
  http::ServerOptions http_options;
  http_options.host = listen->first;
  http_options.port = listen->second;
  http_options.threads = s.threads;
  http_options.access_log = true;
  http_options.error_writer = graph::ServerErrorResponse;  // the server's own errors in Graph's envelope
  graph::Api* api = rt->api.get();
  auto server = http::Server::Start(http_options, [api](http::Request& r) { return api->Handle(r); });
  if (!server) return Fail(server.error());
  rt->server = std::move(*server);
  rt->engine->Start();
  return rt;
}

}  // namespace vppd::cli
