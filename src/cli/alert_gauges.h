// What an operator should be told about, counted for GET /metrics: tokens close to or
// past their expiry, tokens whose last sync failed, apps running out of licences.
//
// Aggregate counts across every tenant, never a label per token, app or tenant, so
// the number of series stays fixed however large the deployment (packaging/
// vppd-alerts.yml alerts on them; `vppd tokens list` and Graph say which ones).
//
//   RegisterAlertGauges(store, {.app_usage_percent = 90});   // at start, metrics on
//   // GET /metrics then shows vppd_tokens_expiring_soon 2, vppd_apps_licenses_exhausted 1, …
#pragma once

#include <cstdint>

#include "base/base.h"
#include "base/error.h"

namespace vppd::store {
class Store;
}

namespace vppd::cli {

struct AlertOptions {
  // An app counts as nearly out of licences once this share of them is in use.
  int app_usage_percent = 90;
  // A token counts as expiring soon once its sToken expires within this many days.
  int token_expiry_days = 30;
};

struct AlertCounts {
  std::int64_t tokens_expiring_soon = 0;     // expirationDateTime in (now, now + expiry days]
  std::int64_t tokens_past_expiry = 0;       // expirationDateTime known and ≤ now, whatever the state says
  std::int64_t tokens_last_sync_failed = 0;  // lastSyncStatus failed
  // Licences are Apple's per asset: an app on iOS and macOS (two mobileApps, one
  // asset, the same counts) counts once. Unlimited (free) assets and assets without
  // licences never count.
  std::int64_t apps_over_usage_threshold = 0;  // used ≥ app_usage_percent % of total
  std::int64_t apps_licenses_exhausted = 0;    // used ≥ total
};

// Reads the counts from the store, every tenant's, at `now` (pages of 1000 apps; one
// count query per tenant and token condition). Fails with the store's error.
Result<AlertCounts> CountAlerts(store::Store& store, Timestamp now, const AlertOptions& options);

// Registers the gauges vppd_tokens_expiring_soon, vppd_tokens_past_expiry,
// vppd_tokens_last_sync_failed, vppd_apps_over_usage_threshold,
// vppd_apps_licenses_exhausted and vppd_apps_usage_threshold_ratio (the setting, for
// alert texts). One scrape reads the store once: the counts are shared by the gauges
// of a scrape and reused for 5 s. A store error shows as -1 (and is logged).
// `store` must outlive the process's metrics (it does: the runtime's).
void RegisterAlertGauges(store::Store* store, const AlertOptions& options);

}  // namespace vppd::cli
