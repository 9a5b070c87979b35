// The untracked-licences report (issue 18): the licences Apple held for an app or
// a book at the last sync that vppd did not grant (another MDM's, Apple School
// Manager's, or handed out before vppd), by device serial number and
// clientUserId. Written once for both databases (SqlStore): the licence rows by
// shared SQL, Apple's holders through the backend's ReadAppAssignments.
//
// vppd granted a licence when the app's (token, adamId, pricingParam) has a
// device_licenses row of its serial number, or a user_licenses row of its
// clientUserId, in any state but failed: pending, granted, reclaimPending (vppd
// is taking it back) and released (vppd took it back; the last sync still shows
// it). A failed row at a key Apple holds means someone else granted it, as the
// reconcile's plan reads it.
#include <algorithm>
#include <string>
#include <unordered_set>

#include "store/sql_store.h"
#include "store/store_common.h"

namespace vppd::store {
namespace {

// Apple's holders read per ReadAppAssignments call (a few MB). Large, because
// SQLite reads an app whose set came in several runs (a delta merged into it)
// by decoding and merging all of its chunks on every call.
constexpr std::int64_t kScanBatch = 50'000;

// What one report reads of an app: where its assignments are, and the keys vppd
// granted.
struct AppHolders {
  std::optional<std::int64_t> generation;  // nullopt: the token has no assignments
  std::string token_id, adam_id, pricing_param;
  std::unordered_set<std::string> serials, client_user_ids;  // vppd's, failed rows left out
  bool Untracked(const LicenseAssignment& a) const {
    return a.serial_number.empty() ? !client_user_ids.contains(a.client_user_id) : !serials.contains(a.serial_number);
  }
};

Status ReadKeys(Tx& tx, std::string_view sql, const std::string& tenant_id, const AppHolders& app,
                std::unordered_set<std::string>& out) {
  if (Status s = tx.Query(sql, {tenant_id, app.token_id, app.adam_id, app.pricing_param}); !s) return s;
  for (;;) {
    Result<bool> row = tx.Next();
    if (!row) return Fail(row.error());
    if (!*row) return {};
    out.emplace(tx.View(0));
  }
}

// The app's row and vppd's keys of it, in the caller's read transaction.
// NotFound when the tenant has no app `app_id`.
Result<AppHolders> ReadHolders(Tx& tx, const std::string& tenant_id, const std::string& app_id) {
  Result<bool> found = tx.QueryRow(
      "SELECT t.assignments_generation, a.token_id, a.adam_id, a.pricing_param FROM mobile_apps a "
      "JOIN vpp_tokens t ON t.tenant_id = a.tenant_id AND t.id = a.token_id "
      "WHERE a.tenant_id = ?1 AND a.id = ?2",
      {tenant_id, app_id});
  if (!found) return Fail(found.error());
  if (!*found) return Fail(AppNotFound(app_id));
  AppHolders app;
  if (!tx.IsNull(0)) app.generation = tx.Int(0);
  app.token_id = tx.Text(1);
  app.adam_id = tx.Text(2);
  app.pricing_param = tx.Text(3);
  if (Status s = ReadKeys(tx,
                          "SELECT serial_number FROM device_licenses WHERE tenant_id = ?1 AND token_id = ?2 "
                          "AND adam_id = ?3 AND pricing_param = ?4 AND state <> 'failed'",
                          tenant_id, app, app.serials);
      !s) {
    return Fail(s.error());
  }
  if (Status s = ReadKeys(tx,
                          "SELECT client_user_id FROM user_licenses WHERE tenant_id = ?1 AND token_id = ?2 "
                          "AND adam_id = ?3 AND pricing_param = ?4 AND state <> 'failed'",
                          tenant_id, app, app.client_user_ids);
      !s) {
    return Fail(s.error());
  }
  return app;
}

}  // namespace

Result<Store::UntrackedPage> SqlStore::ListUntrackedLicenses(const std::string& tenant_id, const std::string& app_id,
                                                             std::int64_t cursor, std::int64_t limit) {
  if (Status s = CheckPaging(cursor, limit); !s) return Fail(s.error());
  if (limit == 0) return Fail(Error::InvalidArgument("limit must be at least 1"));
  return InTx<UntrackedPage>(TxKind::kRead, [&](Tx& tx) -> Result<UntrackedPage> {
    Result<AppHolders> app = ReadHolders(tx, tenant_id, app_id);
    if (!app) return Fail(app.error());
    UntrackedPage page;
    if (!app->generation) return page;
    std::int64_t at = cursor;
    const std::int64_t budget_end = cursor + kUntrackedScanRows;
    while (at < budget_end) {
      const std::int64_t want = std::min(kScanBatch, budget_end - at);
      Result<Page<LicenseAssignment>> batch =
          ReadAppAssignments(tx, *app->generation, app->adam_id, app->pricing_param, at, want);
      if (!batch) return Fail(batch.error());
      for (LicenseAssignment& a : batch->items) {
        if (app->Untracked(a)) {
          // One more than the page holds: the next page starts here.
          if (static_cast<std::int64_t>(page.items.size()) == limit) {
            page.next = at;
            return page;
          }
          page.items.push_back(std::move(a));
        }
        ++at;
      }
      if (!batch->has_more) return page;  // every holder read
    }
    page.next = at;  // the scan's budget is spent: the next page goes on from here
    return page;
  });
}

Result<std::map<std::string, std::int64_t>> SqlStore::CountUntrackedLicenses(const std::string& tenant_id,
                                                                             const std::vector<std::string>& app_ids) {
  using Counts = std::map<std::string, std::int64_t>;
  return InTx<Counts>(TxKind::kRead, [&](Tx& tx) -> Result<Counts> {
    Counts counts;
    for (const std::string& id : app_ids) {
      Result<AppHolders> app = ReadHolders(tx, tenant_id, id);
      if (!app && app.error().code == Code::kNotFound) continue;
      if (!app) return Fail(app.error());
      std::int64_t& n = counts[id];
      if (!app->generation) continue;
      if (app->serials.empty() && app->client_user_ids.empty()) {
        // vppd granted none: every holder is untracked, and the set counts them.
        Result<bool> row = tx.QueryRow(
            "SELECT rows FROM assignment_counts WHERE generation = ?1 AND adam_id = ?2 AND pricing_param = ?3",
            {*app->generation, app->adam_id, app->pricing_param});
        if (!row) return Fail(row.error());
        if (*row) n = tx.Int(0);
        continue;
      }
      for (std::int64_t at = 0;; at += kScanBatch) {
        Result<Page<LicenseAssignment>> batch =
            ReadAppAssignments(tx, *app->generation, app->adam_id, app->pricing_param, at, kScanBatch);
        if (!batch) return Fail(batch.error());
        n += std::count_if(batch->items.begin(), batch->items.end(),
                           [&](const LicenseAssignment& a) { return app->Untracked(a); });
        if (!batch->has_more) break;
      }
    }
    return counts;
  });
}

}  // namespace vppd::store
