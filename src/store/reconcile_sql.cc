// The device licences vppd hands out (store::DeviceLicense), the Apple events in
// flight and the reconcile reports: the SQL both databases share (SqlStore).
//
// Layout: 1. device licences  2. Apple events  3. what Graph reads  4. reports.
//
// A licence row moves pending → granted | failed (associate) and
// reclaimPending → released | granted (disassociate); the job itself writes
// failed ("not enough licences") and deletes rows that no longer matter. An event
// row lives from the moment Apple accepted the request (RecordAppleEvent, in the
// same transaction that marks its serials) until CompleteAppleEvent. The licence
// rows' SQL is written once for devices and people (licenses_sql.h).
#include <fmt/format.h>

#include "store/licenses_sql.h"
#include "store/sql_store.h"
#include "store/store_common.h"

namespace vppd::store {
namespace {

constexpr const char* kEventNotFoundPrefix = "no Apple event '";

Error EventNotFound(const std::string& event_id) {
  return Error::NotFound(std::string(kEventNotFoundPrefix) + event_id + "' is in flight", event_id);
}

}  // namespace

// --- 1. device licences ---------------------------------------------------------------

Result<std::vector<DeviceLicense>> SqlStore::ListDeviceLicenses(const std::string& tenant_id,
                                                                const std::string& token_id) {
  return ListLicenses<DeviceLicense>(tenant_id, token_id);
}

Status SqlStore::PutDeviceLicenses(const std::string& tenant_id, const std::string& token_id,
                                   const std::vector<DeviceLicense>& rows, const std::vector<DeviceLicense>& remove) {
  return PutLicenses(tenant_id, token_id, rows, remove);
}

// --- 2. Apple events ---------------------------------------------------------------------

Status SqlStore::RecordAppleEvent(const std::string& tenant_id, const std::string& token_id, const AppleEvent& event,
                                  const std::vector<std::string>& serials, const std::string& cause) {
  const bool user_event = event.kind == "createUsers" || event.kind == "retireUsers";
  if (event.event_id.empty() || (event.kind != "associate" && event.kind != "disassociate" && !user_event)) {
    return Fail(Error::InvalidArgument(
        "store: an Apple event needs an id and kind associate, disassociate, createUsers or retireUsers"));
  }
  if (user_event) {
    const Timestamp now = clock_.Now();
    return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
      Result<std::int64_t> key = TokenKey(tx, tenant_id, token_id, false);
      if (!key) return Fail(key.error());
      return MarkUserEvent(tx, tenant_id, token_id, event, serials, now);
    });
  }
  return RecordLicenseEvent<DeviceLicense>(tenant_id, token_id, event, serials, cause);
}

Result<std::vector<AppleEvent>> SqlStore::ListAppleEvents(const std::string& tenant_id, const std::string& token_id) {
  return InTx<std::vector<AppleEvent>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<AppleEvent>> {
    if (Status s = tx.Query(
            "SELECT event_id, kind, adam_id, pricing_param, serials, submitted, next_poll, polls FROM apple_events "
            "WHERE tenant_id = ?1 AND token_id = ?2 ORDER BY next_poll, event_id",
            {tenant_id, token_id});
        !s) {
      return Fail(s.error());
    }
    std::vector<AppleEvent> events;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return events;
      events.push_back({tx.Text(0), tx.Text(1), tx.Text(2), tx.Text(3), tx.Int(4), tx.Int(5), tx.Int(6), tx.Int(7)});
    }
  });
}

Status SqlStore::DeferAppleEvent(const std::string& tenant_id, const std::string& token_id, const std::string& event_id,
                                 Timestamp next_poll) {
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    if (Status s = tx.Exec(
            "UPDATE apple_events SET next_poll = ?4, polls = polls + 1 WHERE tenant_id = ?1 AND token_id = ?2 AND "
            "event_id = ?3",
            {tenant_id, token_id, event_id, next_poll});
        !s) {
      return s;
    }
    if (tx.Changes() == 0) return Fail(EventNotFound(event_id));
    return {};
  });
}

Status SqlStore::CompleteAppleEvent(const std::string& tenant_id, const std::string& token_id,
                                    const std::string& event_id, const AppleEventOutcome& outcome) {
  const Timestamp now = clock_.Now();
  const std::string lock_event =
      std::string("SELECT kind FROM apple_events WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3") +
      dialect_.for_update;
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    Result<bool> found = tx.QueryRow(lock_event, {tenant_id, token_id, event_id});
    if (!found) return Fail(found.error());
    if (!*found) return Fail(EventNotFound(event_id));
    const std::string kind = tx.Text(0);
    if (kind == "createUsers" || kind == "retireUsers") {
      return SettleUserEvent(tx, tenant_id, token_id, event_id, kind, outcome, now);
    }
    // Devices whose request failed are decided again (an associate Apple refused,
    // a reclaim left held): the next pass must look at them even if it is one
    // over directory changes.
    if (outcome.abandoned || outcome.all_failed || !outcome.failures.empty()) {
      if (Status s = NoteEventSerialsChanged(tx, tenant_id, token_id, event_id); !s) return s;
    }
    // An associate or disassociate: its rows are device licences or user licences (licenses_sql.h).
    const bool associate = kind == "associate";
    Result<bool> devices_left =
        SettleLicenses<DeviceLicense>(tx, tenant_id, token_id, event_id, associate, outcome, now);
    if (!devices_left) return Fail(devices_left.error());
    Result<bool> users_left = SettleLicenses<UserLicense>(tx, tenant_id, token_id, event_id, associate, outcome, now);
    if (!users_left) return Fail(users_left.error());
    if (*devices_left || *users_left) return {};  // still in flight for its other subjects
    return tx.Exec("DELETE FROM apple_events WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3",
                   {tenant_id, token_id, event_id});
  });
}

// --- 3. what Graph reads ------------------------------------------------------------------

Result<std::vector<DeviceLicenseState>> SqlStore::DeviceLicenseStates(const std::string& tenant_id,
                                                                      const std::string& app_id) {
  return LicenseStates<DeviceLicense>(tenant_id, app_id);
}

// --- 4. reports ------------------------------------------------------------------------------

Status SqlStore::PutReconcileReport(const std::string& tenant_id, const std::string& token_id,
                                    const std::string& report_json) {
  const Timestamp now = clock_.Now();
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    Result<std::int64_t> key = TokenKey(tx, tenant_id, token_id, false);
    if (!key) return Fail(key.error());
    return tx.Exec(
        "INSERT INTO reconcile_reports (tenant_id, token_id, report, updated) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT (tenant_id, token_id) DO UPDATE SET report = excluded.report, updated = excluded.updated",
        {tenant_id, token_id, report_json, now});
  });
}

Result<std::pair<std::string, Timestamp>> SqlStore::GetReconcileReport(const std::string& tenant_id,
                                                                       const std::string& token_id) {
  using Report = std::pair<std::string, Timestamp>;
  return InTx<Report>(TxKind::kReadOne, [&](Tx& tx) -> Result<Report> {
    Result<bool> row = tx.QueryRow(
        "SELECT report, updated FROM reconcile_reports WHERE tenant_id = ?1 AND token_id = ?2", {tenant_id, token_id});
    if (!row) return Fail(row.error());
    if (!*row) return Report{"", 0};
    return Report{tx.Text(0), tx.Int(1)};
  });
}

}  // namespace vppd::store
