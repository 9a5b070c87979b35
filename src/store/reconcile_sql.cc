// The device licences vppd hands out (store::DeviceLicense), the Apple events in
// flight and the reconcile reports: the SQL both databases share (SqlStore).
//
// Layout: 1. device licences  2. Apple events  3. what Graph reads  4. reports.
//
// A licence row moves pending → granted | failed (associate) and
// reclaimPending → released | granted (disassociate); the job itself writes
// failed ("not enough licences") and deletes rows that no longer matter. An event
// row lives from the moment Apple accepted the request (RecordAppleEvent, in the
// same transaction that marks its serials) until CompleteAppleEvent.
#include <fmt/format.h>

#include "store/sql_store.h"
#include "store/store_common.h"

namespace vppd::store {
namespace {

constexpr const char* kUpsertLicense =
    "INSERT INTO device_licenses (tenant_id, token_id, adam_id, pricing_param, serial_number, state, error_code, "
    "error_message, event_id, cause, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
    "ON CONFLICT (tenant_id, token_id, adam_id, pricing_param, serial_number) DO UPDATE SET "
    "state = excluded.state, error_code = excluded.error_code, error_message = excluded.error_message, "
    "event_id = excluded.event_id, cause = excluded.cause, updated = excluded.updated";

constexpr const char* kEventNotFoundPrefix = "no Apple event '";

Error EventNotFound(const std::string& event_id) {
  return Error::NotFound(std::string(kEventNotFoundPrefix) + event_id + "' is in flight", event_id);
}

}  // namespace

// --- 1. device licences ---------------------------------------------------------------

Result<std::vector<DeviceLicense>> SqlStore::ListDeviceLicenses(const std::string& tenant_id,
                                                                const std::string& token_id) {
  return InTx<std::vector<DeviceLicense>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<DeviceLicense>> {
    if (Status s = tx.Query(
            "SELECT adam_id, pricing_param, serial_number, state, error_code, error_message, event_id, cause, updated "
            "FROM device_licenses WHERE tenant_id = ?1 AND token_id = ?2 "
            "ORDER BY adam_id, pricing_param, serial_number",
            {tenant_id, token_id});
        !s) {
      return Fail(s.error());
    }
    std::vector<DeviceLicense> rows;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return rows;
      rows.push_back(
          {tx.Text(0), tx.Text(1), tx.Text(2), tx.Text(3), tx.Text(4), tx.Text(5), tx.Text(6), tx.Text(7), tx.Int(8)});
    }
  });
}

Result<std::map<std::string, std::int64_t>> SqlStore::CountDeviceLicenses(const std::string& tenant_id,
                                                                          const std::string& token_id) {
  using Counts = std::map<std::string, std::int64_t>;
  return InTx<Counts>(TxKind::kReadOne, [&](Tx& tx) -> Result<Counts> {
    if (Status s = tx.Query("SELECT state, count(*) FROM device_licenses WHERE tenant_id = ?1 AND token_id = ?2 "
                            "GROUP BY state",
                            {tenant_id, token_id});
        !s) {
      return Fail(s.error());
    }
    Counts counts;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return counts;
      counts[tx.Text(0)] = tx.Int(1);
    }
  });
}

Status SqlStore::PutDeviceLicenses(const std::string& tenant_id, const std::string& token_id,
                                   const std::vector<DeviceLicense>& rows, const std::vector<DeviceLicense>& remove) {
  if (rows.empty() && remove.empty()) return {};
  const Timestamp now = clock_.Now();
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    Result<std::int64_t> key = TokenKey(tx, tenant_id, token_id, false);
    if (!key) return Fail(key.error());
    for (const DeviceLicense& r : remove) {
      if (Status s = tx.Exec("DELETE FROM device_licenses WHERE tenant_id = ?1 AND token_id = ?2 AND adam_id = ?3 AND "
                             "pricing_param = ?4 AND serial_number = ?5",
                             {tenant_id, token_id, r.adam_id, r.pricing_param, r.serial_number});
          !s) {
        return s;
      }
    }
    for (const DeviceLicense& r : rows) {
      if (Status s = tx.Exec(kUpsertLicense,
                             {tenant_id, token_id, r.adam_id, r.pricing_param, r.serial_number, r.state, r.error_code,
                              r.error_message, r.event_id, r.cause, r.updated != 0 ? r.updated : now});
          !s) {
        return s;
      }
    }
    return {};
  });
}

// --- 2. Apple events ---------------------------------------------------------------------

Status SqlStore::RecordAppleEvent(const std::string& tenant_id, const std::string& token_id, const AppleEvent& event,
                                  const std::vector<std::string>& serials, const std::string& cause) {
  const bool user_event = event.kind == "createUsers" || event.kind == "retireUsers";
  if (event.event_id.empty() || (event.kind != "associate" && event.kind != "disassociate" && !user_event)) {
    return Fail(Error::InvalidArgument(
        "store: an Apple event needs an id and kind associate, disassociate, createUsers or retireUsers"));
  }
  const Timestamp now = clock_.Now();
  if (user_event) {
    return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
      Result<std::int64_t> key = TokenKey(tx, tenant_id, token_id, false);
      if (!key) return Fail(key.error());
      return MarkUserEvent(tx, tenant_id, token_id, event, serials, now);
    });
  }
  const std::string state = event.kind == "associate" ? "pending" : "reclaimPending";
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    Result<std::int64_t> key = TokenKey(tx, tenant_id, token_id, false);
    if (!key) return Fail(key.error());
    if (Status s = tx.Exec(
            "INSERT INTO apple_events (tenant_id, token_id, event_id, kind, adam_id, pricing_param, serials, "
            "submitted, next_poll, polls) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)",
            {tenant_id, token_id, event.event_id, event.kind, event.adam_id, event.pricing_param,
             static_cast<std::int64_t>(serials.size()), event.submitted != 0 ? event.submitted : now, event.next_poll});
        !s) {
      return s;
    }
    for (const std::string& serial : serials) {
      if (Status s = tx.Exec(kUpsertLicense, {tenant_id, token_id, event.adam_id, event.pricing_param, serial, state,
                                              "", "", event.event_id, cause, now});
          !s) {
        return s;
      }
    }
    return {};
  });
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
    const bool associate = kind == "associate";
    const std::string in_flight = associate ? "pending" : "reclaimPending";
    // Apple's answers that mean the licence already is where it should be.
    const int harmless = associate ? 9616 : 9619;
    auto set_failed = [&](const std::optional<std::string>& serial, const AppleEventOutcome::Failure& f) -> Status {
      // A failed associate: not granted. A failed disassociate: still held, tried again.
      const std::string state = associate ? "failed" : "granted";
      const std::string message = associate ? f.error_message : "reclaim failed: " + f.error_message;
      static constexpr const char* kAll =
          "UPDATE device_licenses SET state = ?4, error_code = ?5, error_message = ?6, updated = ?7 "
          "WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3 AND state = ?8";
      static const std::string kOne = std::string(kAll) + " AND serial_number = ?9";
      const std::string code = std::to_string(f.error_number);
      if (!serial) return tx.Exec(kAll, {tenant_id, token_id, event_id, state, code, message, now, in_flight});
      return tx.Exec(kOne, {tenant_id, token_id, event_id, state, code, message, now, in_flight, *serial});
    };
    if (outcome.abandoned) {
      // As if never submitted: an associate's rows go (the next run decides
      // again); a disassociate's licences are still held.
      if (associate) {
        if (Status s = tx.Exec(
                "DELETE FROM device_licenses WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3 AND state = ?4",
                {tenant_id, token_id, event_id, in_flight});
            !s) {
          return s;
        }
      } else if (Status s =
                     tx.Exec("UPDATE device_licenses SET state = 'granted', updated = ?4 WHERE tenant_id = ?1 AND "
                             "token_id = ?2 AND event_id = ?3 AND state = 'reclaimPending'",
                             {tenant_id, token_id, event_id, now});
                 !s) {
        return s;
      }
    } else if (outcome.only_serials) {
      // A part of the event (a notification): these serials move, the others wait for theirs.
      const std::string done_state = associate ? "granted" : "released";
      for (const std::string& serial : *outcome.only_serials) {
        const AppleEventOutcome::Failure* failed = nullptr;
        if (outcome.all_failed && outcome.all_failed->error_number != harmless) failed = &*outcome.all_failed;
        for (const auto& f : outcome.failures) {
          if (failed == nullptr && f.serial_number == serial && f.error_number != harmless) failed = &f;
        }
        Status s = failed != nullptr
                       ? set_failed(serial, *failed)
                       : tx.Exec(
                             "UPDATE device_licenses SET state = ?4, error_code = '', error_message = '', "
                             "updated = ?5 WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3 AND "
                             "state = ?6 AND serial_number = ?7",
                             {tenant_id, token_id, event_id, done_state, now, in_flight, serial});
        if (!s) return s;
      }
      Result<bool> left = tx.QueryRow(
          "SELECT 1 FROM device_licenses WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3 AND state = ?4 "
          "LIMIT 1",
          {tenant_id, token_id, event_id, in_flight});
      if (!left) return Fail(left.error());
      if (*left) return {};  // still in flight for its other serials
    } else {
      if (outcome.all_failed && outcome.all_failed->error_number != harmless) {
        if (Status s = set_failed(std::nullopt, *outcome.all_failed); !s) return s;
      }
      for (const auto& f : outcome.failures) {
        if (f.error_number == harmless) continue;
        if (Status s = set_failed(f.serial_number, f); !s) return s;
      }
      if (Status s = tx.Exec("UPDATE device_licenses SET state = ?4, error_code = '', error_message = '', updated = ?5 "
                             "WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3 AND state = ?6",
                             {tenant_id, token_id, event_id, associate ? "granted" : "released", now, in_flight});
          !s) {
        return s;
      }
    }
    // An event of clientUserIds moves user licence rows instead (user_licenses_sql.cc).
    Result<bool> users_left = SettleUserLicenses(tx, tenant_id, token_id, event_id, associate, outcome, now);
    if (!users_left) return Fail(users_left.error());
    if (*users_left) return {};
    return tx.Exec("DELETE FROM apple_events WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3",
                   {tenant_id, token_id, event_id});
  });
}

// --- 3. what Graph reads ------------------------------------------------------------------

Result<std::vector<DeviceLicenseState>> SqlStore::DeviceLicenseStates(const std::string& tenant_id,
                                                                      const std::string& app_id) {
  return InTx<std::vector<DeviceLicenseState>>(TxKind::kRead, [&](Tx& tx) -> Result<std::vector<DeviceLicenseState>> {
    Result<bool> app =
        tx.QueryRow("SELECT token_id, adam_id, pricing_param FROM mobile_apps WHERE tenant_id = ?1 AND id = ?2",
                    {tenant_id, app_id});
    if (!app) return Fail(app.error());
    if (!*app) return Fail(AppNotFound(app_id));
    const std::string token_id = tx.Text(0), adam_id = tx.Text(1), pricing_param = tx.Text(2);
    if (Status s = tx.Query(
            "SELECT serial_number, state, error_code, error_message, updated FROM device_licenses "
            "WHERE tenant_id = ?1 AND token_id = ?2 AND adam_id = ?3 AND pricing_param = ?4 AND state <> 'released' "
            "ORDER BY serial_number",
            {tenant_id, token_id, adam_id, pricing_param});
        !s) {
      return Fail(s.error());
    }
    std::vector<DeviceLicenseState> states;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return states;
      states.push_back({tx.Text(0), tx.Text(1), tx.Text(2), tx.Text(3), tx.Int(4)});
    }
  });
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
