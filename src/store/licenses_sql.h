// Internal to store/: the licence rows vppd hands out, written once for both
// kinds. A device's licence (DeviceLicense, table device_licenses) is keyed by
// its serial number, a person's (UserLicense, table user_licenses) by its
// clientUserId; everything else about them is the same. reconcile_sql.cc and
// user_licenses_sql.cc define the public Store methods through these members,
// instantiated for their row:
//
//   Result<std::vector<DeviceLicense>> SqlStore::ListDeviceLicenses(...) {
//     return ListLicenses<DeviceLicense>(tenant_id, token_id);
//   }
//
// A row moves pending → granted | failed (associate) and reclaimPending →
// released | granted (disassociate); the job itself writes failed ("not enough
// licences") and deletes rows that no longer matter. An associate or
// disassociate event's rows are in one table or the other: CompleteAppleEvent
// settles both.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "store/sql_store.h"
#include "store/store_common.h"

namespace vppd::store {

// --- the two kinds ------------------------------------------------------------------------
//
// Per row type: its table, its key column, the row's and a failure's member that
// hold that key, the Graph state row, and the keys of this kind a partial
// outcome (a notification, AppleEventOutcome::only_serials) names. Every other
// column is the same, in the same order, in both tables and both structs.

template <>
struct LicenseTable<DeviceLicense> {
  using State = DeviceLicenseState;
  static constexpr const char* kTable = "device_licenses";
  static constexpr const char* kKey = "serial_number";
  static constexpr auto kFailureKey = &AppleEventOutcome::Failure::serial_number;
  static const std::string& Key(const DeviceLicense& row) { return row.serial_number; }
  static const std::vector<std::string>& Named(const AppleEventOutcome& outcome) { return *outcome.only_serials; }
  static constexpr bool kTallied = true;  // device_license_tallies (TallyDeviceLicenses)
};

template <>
struct LicenseTable<UserLicense> {
  using State = UserLicenseState;
  static constexpr const char* kTable = "user_licenses";
  static constexpr const char* kKey = "client_user_id";
  static constexpr auto kFailureKey = &AppleEventOutcome::Failure::client_user_id;
  static const std::string& Key(const UserLicense& row) { return row.client_user_id; }
  // An event of people's licences is named by clientUserIds (a serial names no row here).
  static const std::vector<std::string>& Named(const AppleEventOutcome& outcome) { return *outcome.only_serials; }
  static constexpr bool kTallied = false;
};

// The statements of a licence table, built once per row type. Parameters: ?1
// tenant_id, ?2 token_id, then as each says.
template <class Row>
struct LicenseSql {
  std::string list;            // the token's rows in key order
  std::string upsert;          // ?3 adam_id ... ?11 updated, in the struct's order
  SqlStore::BulkInsert rows;   // the same upsert, for many rows at once (BulkWrite)
  std::string remove;          // ?3 adam_id, ?4 pricing_param, ?5 key
  std::string states;          // ?3 adam_id, ?4 pricing_param: Graph's view, released rows left out
  std::string fail_all;        // ?3 event, ?4 state, ?5 code, ?6 message, ?7 updated, ?8 in-flight state
  std::string fail_one;        // fail_all, and ?9 key
  std::string settle_all;      // ?3 event, ?4 state, ?5 updated, ?6 in-flight state
  std::string settle_one;      // settle_all, and ?7 key
  std::string drop_in_flight;  // ?3 event, ?4 in-flight state
  std::string regrant;         // ?3 event, ?4 updated: a disassociate's rows held again
  std::string any_in_flight;   // ?3 event, ?4 in-flight state

  static const LicenseSql& Get() {
    static const LicenseSql sql = [] {
      const char* t = LicenseTable<Row>::kTable;
      const char* k = LicenseTable<Row>::kKey;
      const std::string of_event = "WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3";
      LicenseSql s;
      s.list = fmt::format(
          "SELECT adam_id, pricing_param, {1}, state, error_code, error_message, event_id, cause, updated FROM {0} "
          "WHERE tenant_id = ?1 AND token_id = ?2 ORDER BY adam_id, pricing_param, {1}",
          t, k);
      s.upsert = fmt::format(
          "INSERT INTO {0} (tenant_id, token_id, adam_id, pricing_param, {1}, state, error_code, error_message, "
          "event_id, cause, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
          "ON CONFLICT (tenant_id, token_id, adam_id, pricing_param, {1}) DO UPDATE SET "
          "state = excluded.state, error_code = excluded.error_code, error_message = excluded.error_message, "
          "event_id = excluded.event_id, cause = excluded.cause, updated = excluded.updated",
          t, k);
      s.rows.table = t;
      for (const char* c : {"tenant_id", "token_id", "adam_id", "pricing_param", k, "state", "error_code",
                            "error_message", "event_id", "cause"}) {
        s.rows.columns.emplace_back(c, SqlStore::BulkType::kText);
      }
      s.rows.columns.emplace_back("updated", SqlStore::BulkType::kInt);
      s.rows.conflict = s.upsert.substr(s.upsert.find(" ON CONFLICT"));
      s.remove = fmt::format(
          "DELETE FROM {} WHERE tenant_id = ?1 AND token_id = ?2 AND adam_id = ?3 AND pricing_param = ?4 AND {} = ?5",
          t, k);
      s.states = fmt::format(
          "SELECT {1}, state, error_code, error_message, updated FROM {0} WHERE tenant_id = ?1 AND token_id = ?2 "
          "AND adam_id = ?3 AND pricing_param = ?4 AND state <> 'released' ORDER BY {1}",
          t, k);
      s.fail_all = fmt::format(
          "UPDATE {} SET state = ?4, error_code = ?5, error_message = ?6, updated = ?7 {} AND state = ?8", t, of_event);
      s.fail_one = fmt::format("{} AND {} = ?9", s.fail_all, k);
      s.settle_all = fmt::format(
          "UPDATE {} SET state = ?4, error_code = '', error_message = '', updated = ?5 {} AND state = ?6", t, of_event);
      s.settle_one = fmt::format("{} AND {} = ?7", s.settle_all, k);
      s.drop_in_flight = fmt::format("DELETE FROM {} {} AND state = ?4", t, of_event);
      s.regrant =
          fmt::format("UPDATE {} SET state = 'granted', updated = ?4 {} AND state = 'reclaimPending'", t, of_event);
      s.any_in_flight = fmt::format("SELECT 1 FROM {} {} AND state = ?4 LIMIT 1", t, of_event);
      return s;
    }();
    return sql;
  }
};

// The rows of a query that selects a licence row's columns in the struct's order
// (LicenseSql::list's select list), read to the end.
template <class Row>
Result<std::vector<Row>> ReadLicenseRows(Tx& tx) {
  std::vector<Row> rows;
  for (;;) {
    Result<bool> row = tx.Next();
    if (!row) return Fail(row.error());
    if (!*row) return rows;
    rows.push_back(
        {tx.Text(0), tx.Text(1), tx.Text(2), tx.Text(3), tx.Text(4), tx.Text(5), tx.Text(6), tx.Text(7), tx.Int(8)});
  }
}

// Every transaction that writes a tallied table's rows calls this after them:
// the token's tally counted before (device_license_tallies) is not reused. After
// the rows, so that a PostgreSQL writer holding this row's lock waits for no
// licence row.
template <class Row>
Status NoteLicensesWritten(Tx& tx, const std::string& tenant_id, const std::string& token_id) {
  if constexpr (!LicenseTable<Row>::kTallied) return {};
  return tx.Exec(
      "INSERT INTO device_license_tallies (tenant_id, token_id, gen, cached_gen, cached_since, tally) "
      "VALUES (?1, ?2, 1, -1, 0, '') "
      "ON CONFLICT (tenant_id, token_id) DO UPDATE SET gen = device_license_tallies.gen + 1",
      {tenant_id, token_id});
}

// --- the members, per row type ------------------------------------------------------------

template <class Row>
Result<std::vector<Row>> SqlStore::ListLicenses(const std::string& tenant_id, const std::string& token_id) {
  return InTx<std::vector<Row>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<Row>> {
    if (Status s = tx.Query(LicenseSql<Row>::Get().list, {tenant_id, token_id}); !s) return Fail(s.error());
    return ReadLicenseRows<Row>(tx);
  });
}

template <class Row>
Status SqlStore::PutLicenses(const std::string& tenant_id, const std::string& token_id, const std::vector<Row>& rows,
                             const std::vector<Row>& remove) {
  if (rows.empty() && remove.empty()) return {};
  const LicenseSql<Row>& sql = LicenseSql<Row>::Get();
  const Timestamp now = clock_.Now();
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    Result<std::int64_t> key = TokenKey(tx, tenant_id, token_id, false);
    if (!key) return Fail(key.error());
    for (const Row& r : remove) {
      if (Status s = tx.Exec(sql.remove, {tenant_id, token_id, r.adam_id, r.pricing_param, LicenseTable<Row>::Key(r)});
          !s) {
        return s;
      }
    }
    // One statement for many rows (PostgreSQL: one round trip); a key given twice
    // is written once, as its last row says (an upsert may not meet a key twice).
    using RowKey = std::tuple<std::string_view, std::string_view, std::string_view>;
    auto key_of = [](const Row& r) { return RowKey(r.adam_id, r.pricing_param, LicenseTable<Row>::Key(r)); };
    std::map<RowKey, std::size_t> last;
    for (std::size_t i = 0; i < rows.size(); ++i) last[key_of(rows[i])] = i;
    std::vector<std::vector<SqlArg>> bulk;
    bulk.reserve(last.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      if (last[key_of(r)] != i) continue;
      bulk.push_back({tenant_id, token_id, r.adam_id, r.pricing_param, LicenseTable<Row>::Key(r), r.state, r.error_code,
                      r.error_message, r.event_id, r.cause, r.updated != 0 ? r.updated : now});
    }
    if (Status s = BulkWrite(tx, sql.rows, bulk); !s) return s;
    return NoteLicensesWritten<Row>(tx, tenant_id, token_id);
  });
}

template <class Row>
Status SqlStore::RecordLicenseEvent(const std::string& tenant_id, const std::string& token_id, const AppleEvent& event,
                                    const std::vector<std::string>& keys, const std::string& cause) {
  const LicenseSql<Row>& sql = LicenseSql<Row>::Get();
  const Timestamp now = clock_.Now();
  const std::string state = event.kind == "associate" ? "pending" : "reclaimPending";
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    Result<std::int64_t> key = TokenKey(tx, tenant_id, token_id, false);
    if (!key) return Fail(key.error());
    if (Status s = tx.Exec(
            "INSERT INTO apple_events (tenant_id, token_id, event_id, kind, adam_id, pricing_param, serials, "
            "submitted, next_poll, polls) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)",
            {tenant_id, token_id, event.event_id, event.kind, event.adam_id, event.pricing_param,
             static_cast<std::int64_t>(keys.size()), event.submitted != 0 ? event.submitted : now, event.next_poll});
        !s) {
      return s;
    }
    std::unordered_set<std::string_view> seen;
    std::vector<std::vector<SqlArg>> bulk;
    bulk.reserve(keys.size());
    for (const std::string& k : keys) {
      if (!seen.insert(k).second) continue;  // an upsert may not meet a key twice
      bulk.push_back(
          {tenant_id, token_id, event.adam_id, event.pricing_param, k, state, "", "", event.event_id, cause, now});
    }
    if (Status s = BulkWrite(tx, sql.rows, bulk); !s) return s;
    return NoteLicensesWritten<Row>(tx, tenant_id, token_id);
  });
}

template <class Row>
Result<bool> SqlStore::SettleLicenses(Tx& tx, const std::string& tenant_id, const std::string& token_id,
                                      const std::string& event_id, bool associate, const AppleEventOutcome& outcome,
                                      Timestamp now) {
  using Failure = AppleEventOutcome::Failure;
  const LicenseSql<Row>& sql = LicenseSql<Row>::Get();
  const std::string in_flight = associate ? "pending" : "reclaimPending";
  // Apple's answers that mean the licence already is where it should be.
  const int harmless = associate ? 9616 : 9619;
  // An event's rows are of one kind: the other kind's statements change nothing,
  // and its tally stays as counted.
  std::int64_t changed = 0;
  auto exec = [&](const std::string& statement, Tx::Args args) -> Status {
    Status s = tx.Exec(statement, args);
    if (s) changed += tx.Changes();
    return s;
  };
  auto set_failed = [&](const std::optional<std::string>& key, const Failure& f) -> Status {
    // A failed associate: not granted. A failed disassociate: still held, tried again.
    const std::string state = associate ? "failed" : "granted";
    const std::string message = associate ? f.error_message : "reclaim failed: " + f.error_message;
    const std::string code = std::to_string(f.error_number);
    if (!key) return exec(sql.fail_all, {tenant_id, token_id, event_id, state, code, message, now, in_flight});
    return exec(sql.fail_one, {tenant_id, token_id, event_id, state, code, message, now, in_flight, *key});
  };
  auto settled = [&](bool still_in_flight) -> Result<bool> {
    if (changed > 0) {
      if (Status s = NoteLicensesWritten<Row>(tx, tenant_id, token_id); !s) return Fail(s.error());
    }
    return still_in_flight;
  };
  if (outcome.abandoned) {
    // As if never submitted: an associate's rows go (the next run decides
    // again); a disassociate's licences are still held.
    Status s = associate ? exec(sql.drop_in_flight, {tenant_id, token_id, event_id, in_flight})
                         : exec(sql.regrant, {tenant_id, token_id, event_id, now});
    if (!s) return Fail(s.error());
    return settled(false);
  }
  const std::string done_state = associate ? "granted" : "released";
  if (outcome.only_serials) {
    // A part of the event (a notification): the rows it names move, the others wait for theirs.
    for (const std::string& key : LicenseTable<Row>::Named(outcome)) {
      const Failure* failed = nullptr;
      if (outcome.all_failed && outcome.all_failed->error_number != harmless) failed = &*outcome.all_failed;
      for (const Failure& f : outcome.failures) {
        if (failed == nullptr && f.*LicenseTable<Row>::kFailureKey == key && f.error_number != harmless) failed = &f;
      }
      Status s = failed != nullptr
                     ? set_failed(key, *failed)
                     : exec(sql.settle_one, {tenant_id, token_id, event_id, done_state, now, in_flight, key});
      if (!s) return Fail(s.error());
    }
    Result<bool> left = tx.QueryRow(sql.any_in_flight, {tenant_id, token_id, event_id, in_flight});
    if (!left) return Fail(left.error());
    return settled(*left);
  }
  if (outcome.all_failed && outcome.all_failed->error_number != harmless) {
    if (Status s = set_failed(std::nullopt, *outcome.all_failed); !s) return Fail(s.error());
  }
  for (const Failure& f : outcome.failures) {
    const std::string& key = f.*LicenseTable<Row>::kFailureKey;
    if (f.error_number == harmless || key.empty()) continue;
    if (Status s = set_failed(key, f); !s) return Fail(s.error());
  }
  if (Status s = exec(sql.settle_all, {tenant_id, token_id, event_id, done_state, now, in_flight}); !s) {
    return Fail(s.error());
  }
  return settled(false);
}

template <class Row>
Result<std::vector<typename LicenseTable<Row>::State>> SqlStore::LicenseStates(const std::string& tenant_id,
                                                                               const std::string& app_id) {
  using State = typename LicenseTable<Row>::State;
  return InTx<std::vector<State>>(TxKind::kRead, [&](Tx& tx) -> Result<std::vector<State>> {
    Result<bool> app =
        tx.QueryRow("SELECT token_id, adam_id, pricing_param FROM mobile_apps WHERE tenant_id = ?1 AND id = ?2",
                    {tenant_id, app_id});
    if (!app) return Fail(app.error());
    if (!*app) return Fail(AppNotFound(app_id));
    const std::string token_id = tx.Text(0), adam_id = tx.Text(1), pricing_param = tx.Text(2);
    if (Status s = tx.Query(LicenseSql<Row>::Get().states, {tenant_id, token_id, adam_id, pricing_param}); !s) {
      return Fail(s.error());
    }
    std::vector<State> states;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return states;
      states.push_back({tx.Text(0), tx.Text(1), tx.Text(2), tx.Text(3), tx.Int(4)});
    }
  });
}

}  // namespace vppd::store
