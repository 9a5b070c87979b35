// A running vppd: the store, auth, services, the sync engine and the HTTP server,
// wired together from Settings. `serve` and `demo` both start one.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "auth/auth.h"
#include "cli/config.h"
#include "graph/graph.h"
#include "http/server.h"
#include "service/service.h"
#include "store/store.h"
#include "sync/sync.h"

namespace vppd::cli {

struct Runtime {
  Settings settings;
  std::unique_ptr<store::Store> store;
  std::optional<auth::DevKey> dev_key;
  std::optional<auth::Verifier> verifier;
  std::unique_ptr<sync::Engine> engine;
  std::unique_ptr<service::VppTokens> tokens;
  std::unique_ptr<service::MobileApps> apps;
  std::unique_ptr<service::AppAssignments> assignments;
  std::unique_ptr<service::ManagedEBooks> ebooks;
  std::unique_ptr<service::LicenseRevokes> revokes;  // revokes by app, user or device
  // Queues reconciles for the directory's and the assignments' changes (service::ReconcileTrigger).
  std::unique_ptr<service::QueueingReconcileTrigger> reconciles;
  // The reconcile job's hook for directory changes; null until the reconcile engine sets one.
  service::ReconcileTrigger* reconcile_trigger = nullptr;
  std::unique_ptr<service::Directory> directory;
  std::optional<service::Throttle> throttle;
  std::unique_ptr<service::NotificationApplier> notification_applier;
  std::unique_ptr<service::NotificationReceiver> notification_receiver;
  std::unique_ptr<graph::Api> api;
  std::unique_ptr<http::Server> server;

  // Stops serving (graceful), then the notification applier and the sync engine
  // (running syncs finish or are handed back).
  void Shutdown();
  ~Runtime() { Shutdown(); }
};

// For serve and demo: creates the data dir 0700 (or checks an existing one: it holds
// the keys) and opens the store, creating it when new: PostgreSQL at
// settings.database_url, else SQLite in the data dir.
Result<std::unique_ptr<store::Store>> OpenStore(const Settings& settings);

// For the operator commands (tokens, tenant, sync): opens the store only when it is
// there, creating nothing. NotFound, saying what it looked for, when the data dir,
// its vppd.db (SQLite) or the sToken key file is missing; a PostgreSQL database
// that does not exist fails to connect (Unavailable, naming it).
// `statement_timeout_ms` > 0: statements may run that long (a bulk import's one
// transaction) instead of the store's default.
Result<std::unique_ptr<store::Store>> OpenExistingStore(const Settings& settings, int statement_timeout_ms = 0);

// For the operator commands on one token (sync, reconcile): the tenant holding
// `token_id` (token ids are GUIDs, unique across tenants), only `tenant_id` when it is
// not empty. NotFound, saying where it looked and how to list the tokens.
Result<std::string> FindTokenTenant(store::Store& store, const std::string& token_id, const std::string& tenant_id);

// Opens everything and starts serving. The caller prints, waits, and shuts down.
Result<std::unique_ptr<Runtime>> StartRuntime(const Settings& settings);

}  // namespace vppd::cli
