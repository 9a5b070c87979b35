#include "cli/alert_gauges.h"

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "base/metrics.h"
#include "store/store.h"

namespace vppd::cli {
namespace {

using store::Column;
using store::Expr;
using store::Op;

constexpr std::int64_t kUnlimited = 2147483647;  // Apple's totalCount of a free asset
constexpr Timestamp kDayMicros = 86'400LL * 1'000'000;

Expr Compare(Op op, Column column, store::Literal value) {
  return Expr::Apply(op, {Expr::Of(column), Expr::Value(std::move(value))});
}

Expr And(Expr a, Expr b) { return Expr::Apply(Op::kAnd, {std::move(a), std::move(b)}); }

}  // namespace

Result<AlertCounts> CountAlerts(store::Store& store, Timestamp now, const AlertOptions& options) {
  auto tenants = store.ListTenants();
  if (!tenants) return Fail(tenants.error());
  const Timestamp soon = now + options.token_expiry_days * kDayMicros;
  // A token without a known expiry holds 0 (1970): "past expiry" starts after it.
  const Expr expiring = And(Compare(Op::kGt, Column::kTokenExpiration, store::DateTime{now}),
                            Compare(Op::kLe, Column::kTokenExpiration, store::DateTime{soon}));
  const Expr past = And(Compare(Op::kGt, Column::kTokenExpiration, store::DateTime{0}),
                        Compare(Op::kLe, Column::kTokenExpiration, store::DateTime{now}));
  const Expr failed = Compare(Op::kEq, Column::kTokenLastSyncStatus, std::string("failed"));
  // Only apps with licences in use can be over a threshold; free assets never are. Apps only:
  // books (mobile_apps rows of product type Book) are not what vppd_apps_* count.
  const Expr in_use = And(Compare(Op::kEq, Column::kAppProductType, std::string("App")),
                          And(Compare(Op::kGt, Column::kAppUsedLicenses, std::int64_t{0}),
                              And(Compare(Op::kGt, Column::kAppTotalLicenses, std::int64_t{0}),
                                  Compare(Op::kLt, Column::kAppTotalLicenses, kUnlimited))));

  AlertCounts counts;
  for (const store::Tenant& tenant : *tenants) {
    for (auto [filter, count] :
         {std::pair{&expiring, &counts.tokens_expiring_soon}, std::pair{&past, &counts.tokens_past_expiry},
          std::pair{&failed, &counts.tokens_last_sync_failed}}) {
      auto n = store.CountTokens(tenant.id, *filter);
      if (!n) return Fail(n.error());
      *count += *n;
    }
    // An asset is (token, adamId, pricingParam); its iOS and macOS apps are one.
    std::set<std::tuple<std::string, std::string, std::string>> over, exhausted;
    store::ListQuery query;
    query.filter = in_use;
    query.limit = 1000;
    for (;;) {
      auto page = store.ListApps(tenant.id, query);
      if (!page) return Fail(page.error());
      for (const store::MobileApp& app : page->items) {
        auto asset = std::make_tuple(app.token_id, app.adam_id, app.pricing_param);
        if (app.used_licenses * 100 >= app.total_licenses * options.app_usage_percent) over.insert(asset);
        if (app.used_licenses >= app.total_licenses) exhausted.insert(std::move(asset));
      }
      if (!page->has_more) break;
      query.skip += query.limit;
    }
    counts.apps_over_usage_threshold += static_cast<std::int64_t>(over.size());
    counts.apps_licenses_exhausted += static_cast<std::int64_t>(exhausted.size());
  }
  return counts;
}

void RegisterAlertGauges(store::Store* store, const AlertOptions& options) {
  // The gauges of one scrape share one reading of the store.
  struct Shared {
    std::mutex mu;
    std::chrono::steady_clock::time_point read_at;
    std::optional<AlertCounts> counts;  // nullopt: the last read failed
    bool read = false;
  };
  auto shared = std::make_shared<Shared>();
  auto gauge = [store, options, shared](std::int64_t AlertCounts::*field) {
    return [store, options, shared, field] {
      std::lock_guard lock(shared->mu);
      const auto now = std::chrono::steady_clock::now();
      if (!shared->read || now - shared->read_at > std::chrono::seconds(5)) {
        auto counts = CountAlerts(*store, Clock::Real().Now(), options);
        if (!counts) spdlog::warn("metrics: cannot count tokens and apps to alert on: {}", counts.error().message);
        shared->counts = counts ? std::optional<AlertCounts>(*counts) : std::nullopt;
        shared->read_at = now;
        shared->read = true;
      }
      const double value = shared->counts ? static_cast<double>((*shared->counts).*field) : -1;
      return std::vector<std::pair<metrics::Labels, double>>{{{}, value}};
    };
  };
  metrics::RegisterGauge(
      "vppd_tokens_expiring_soon",
      "vppTokens whose sToken expires within " + std::to_string(options.token_expiry_days) + " days, all tenants",
      gauge(&AlertCounts::tokens_expiring_soon));
  metrics::RegisterGauge("vppd_tokens_past_expiry", "vppTokens whose sToken expiry date has passed, all tenants",
                         gauge(&AlertCounts::tokens_past_expiry));
  metrics::RegisterGauge("vppd_tokens_last_sync_failed", "vppTokens whose last sync failed, all tenants",
                         gauge(&AlertCounts::tokens_last_sync_failed));
  metrics::RegisterGauge("vppd_apps_over_usage_threshold",
                         "Apps (assets) with at least vppd_apps_usage_threshold_ratio of their licences in use",
                         gauge(&AlertCounts::apps_over_usage_threshold));
  metrics::RegisterGauge("vppd_apps_licenses_exhausted", "Apps (assets) with every licence in use",
                         gauge(&AlertCounts::apps_licenses_exhausted));
  const double ratio = options.app_usage_percent / 100.0;
  metrics::RegisterGauge("vppd_apps_usage_threshold_ratio",
                         "The share of licences in use from which an app counts as over the threshold "
                         "(alerts.app_usage_percent)",
                         [ratio] {
                           return std::vector<std::pair<metrics::Labels, double>>{{{}, ratio}};
                         });
}

}  // namespace vppd::cli
