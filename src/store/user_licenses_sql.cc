// The user licences vppd hands out (store::UserLicense) and the directory's users
// that app assignments reach: the SQL both databases share (SqlStore).
//
// Layout: 1. user licences  2. their Apple events  3. what Graph reads  4. users through groups
// 5. the part of an event a notification names.
//
// A row moves as a device licence's does (reconcile_sql.cc): pending → granted |
// failed, reclaimPending → released | granted; CompleteAppleEvent moves both
// kinds, since an event's rows are in one table or the other.
#include <fmt/format.h>

#include "store/sql_store.h"
#include "store/store_common.h"

namespace vppd::store {
namespace {

constexpr const char* kUpsertUserLicense =
    "INSERT INTO user_licenses (tenant_id, token_id, adam_id, pricing_param, client_user_id, state, error_code, "
    "error_message, event_id, cause, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
    "ON CONFLICT (tenant_id, token_id, adam_id, pricing_param, client_user_id) DO UPDATE SET "
    "state = excluded.state, error_code = excluded.error_code, error_message = excluded.error_message, "
    "event_id = excluded.event_id, cause = excluded.cause, updated = excluded.updated";

Status SettleNamedUserLicenses(Tx& tx, const std::string& tenant_id, const std::string& token_id,
                               const std::string& event_id, bool associate, const AppleEventOutcome& outcome,
                               Timestamp now);  // section 5

}  // namespace

// --- 1. user licences -------------------------------------------------------------------

Result<std::vector<UserLicense>> SqlStore::ListUserLicenses(const std::string& tenant_id, const std::string& token_id) {
  return InTx<std::vector<UserLicense>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<UserLicense>> {
    if (Status s = tx.Query(
            "SELECT adam_id, pricing_param, client_user_id, state, error_code, error_message, event_id, cause, "
            "updated FROM user_licenses WHERE tenant_id = ?1 AND token_id = ?2 "
            "ORDER BY adam_id, pricing_param, client_user_id",
            {tenant_id, token_id});
        !s) {
      return Fail(s.error());
    }
    std::vector<UserLicense> rows;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return rows;
      rows.push_back(
          {tx.Text(0), tx.Text(1), tx.Text(2), tx.Text(3), tx.Text(4), tx.Text(5), tx.Text(6), tx.Text(7), tx.Int(8)});
    }
  });
}

Status SqlStore::PutUserLicenses(const std::string& tenant_id, const std::string& token_id,
                                 const std::vector<UserLicense>& rows, const std::vector<UserLicense>& remove) {
  if (rows.empty() && remove.empty()) return {};
  const Timestamp now = clock_.Now();
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    Result<std::int64_t> key = TokenKey(tx, tenant_id, token_id, false);
    if (!key) return Fail(key.error());
    for (const UserLicense& r : remove) {
      if (Status s = tx.Exec("DELETE FROM user_licenses WHERE tenant_id = ?1 AND token_id = ?2 AND adam_id = ?3 AND "
                             "pricing_param = ?4 AND client_user_id = ?5",
                             {tenant_id, token_id, r.adam_id, r.pricing_param, r.client_user_id});
          !s) {
        return s;
      }
    }
    for (const UserLicense& r : rows) {
      if (Status s = tx.Exec(kUpsertUserLicense,
                             {tenant_id, token_id, r.adam_id, r.pricing_param, r.client_user_id, r.state, r.error_code,
                              r.error_message, r.event_id, r.cause, r.updated != 0 ? r.updated : now});
          !s) {
        return s;
      }
    }
    return {};
  });
}

// --- 2. their Apple events --------------------------------------------------------------

Status SqlStore::RecordUserLicenseEvent(const std::string& tenant_id, const std::string& token_id,
                                        const AppleEvent& event, const std::vector<std::string>& client_user_ids,
                                        const std::string& cause) {
  if (event.event_id.empty() || (event.kind != "associate" && event.kind != "disassociate")) {
    return Fail(Error::InvalidArgument("store: an Apple event needs an id and kind associate or disassociate"));
  }
  const Timestamp now = clock_.Now();
  const std::string state = event.kind == "associate" ? "pending" : "reclaimPending";
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    Result<std::int64_t> key = TokenKey(tx, tenant_id, token_id, false);
    if (!key) return Fail(key.error());
    if (Status s =
            tx.Exec("INSERT INTO apple_events (tenant_id, token_id, event_id, kind, adam_id, pricing_param, serials, "
                    "submitted, next_poll, polls) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)",
                    {tenant_id, token_id, event.event_id, event.kind, event.adam_id, event.pricing_param,
                     static_cast<std::int64_t>(client_user_ids.size()), event.submitted != 0 ? event.submitted : now,
                     event.next_poll});
        !s) {
      return s;
    }
    for (const std::string& user : client_user_ids) {
      if (Status s = tx.Exec(kUpsertUserLicense, {tenant_id, token_id, event.adam_id, event.pricing_param, user, state,
                                                  "", "", event.event_id, cause, now});
          !s) {
        return s;
      }
    }
    return {};
  });
}

Result<bool> SqlStore::SettleUserLicenses(Tx& tx, const std::string& tenant_id, const std::string& token_id,
                                          const std::string& event_id, bool associate, const AppleEventOutcome& outcome,
                                          Timestamp now) {
  const std::string in_flight = associate ? "pending" : "reclaimPending";
  // Apple's answers that mean the licence already is where it should be.
  const int harmless = associate ? 9616 : 9619;
  auto set_failed = [&](const std::optional<std::string>& user, const AppleEventOutcome::Failure& f) -> Status {
    // A failed associate: not granted. A failed disassociate: still held, tried again.
    const std::string state = associate ? "failed" : "granted";
    const std::string message = associate ? f.error_message : "reclaim failed: " + f.error_message;
    static constexpr const char* kAll =
        "UPDATE user_licenses SET state = ?4, error_code = ?5, error_message = ?6, updated = ?7 "
        "WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3 AND state = ?8";
    static const std::string kOne = std::string(kAll) + " AND client_user_id = ?9";
    const std::string code = std::to_string(f.error_number);
    if (!user) return tx.Exec(kAll, {tenant_id, token_id, event_id, state, code, message, now, in_flight});
    return tx.Exec(kOne, {tenant_id, token_id, event_id, state, code, message, now, in_flight, *user});
  };
  if (outcome.abandoned) {
    // As if never submitted: an associate's rows go; a disassociate's licences are still held.
    Status s = associate ? tx.Exec(
                               "DELETE FROM user_licenses WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3 "
                               "AND state = ?4",
                               {tenant_id, token_id, event_id, in_flight})
                         : tx.Exec(
                               "UPDATE user_licenses SET state = 'granted', updated = ?4 WHERE tenant_id = ?1 AND "
                               "token_id = ?2 AND event_id = ?3 AND state = 'reclaimPending'",
                               {tenant_id, token_id, event_id, now});
    if (!s) return Fail(s.error());
    return false;
  }
  if (outcome.only_serials) {
    // A notification names part of the event: the people it names move, the others wait for theirs.
    if (Status s = SettleNamedUserLicenses(tx, tenant_id, token_id, event_id, associate, outcome, now); !s) {
      return Fail(s.error());
    }
    Result<bool> left = tx.QueryRow(
        "SELECT 1 FROM user_licenses WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3 AND state = ?4 LIMIT 1",
        {tenant_id, token_id, event_id, in_flight});
    if (!left) return Fail(left.error());
    return *left;
  }
  if (outcome.all_failed && outcome.all_failed->error_number != harmless) {
    if (Status s = set_failed(std::nullopt, *outcome.all_failed); !s) return Fail(s.error());
  }
  for (const auto& f : outcome.failures) {
    if (f.error_number == harmless || f.client_user_id.empty()) continue;
    if (Status s = set_failed(f.client_user_id, f); !s) return Fail(s.error());
  }
  if (Status s = tx.Exec("UPDATE user_licenses SET state = ?4, error_code = '', error_message = '', updated = ?5 "
                         "WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3 AND state = ?6",
                         {tenant_id, token_id, event_id, associate ? "granted" : "released", now, in_flight});
      !s) {
    return Fail(s.error());
  }
  return false;
}

// --- 3. what Graph reads ------------------------------------------------------------------

Result<std::vector<UserLicenseState>> SqlStore::UserLicenseStates(const std::string& tenant_id,
                                                                  const std::string& app_id) {
  return InTx<std::vector<UserLicenseState>>(TxKind::kRead, [&](Tx& tx) -> Result<std::vector<UserLicenseState>> {
    Result<bool> app =
        tx.QueryRow("SELECT token_id, adam_id, pricing_param FROM mobile_apps WHERE tenant_id = ?1 AND id = ?2",
                    {tenant_id, app_id});
    if (!app) return Fail(app.error());
    if (!*app) return Fail(AppNotFound(app_id));
    const std::string token_id = tx.Text(0), adam_id = tx.Text(1), pricing_param = tx.Text(2);
    if (Status s = tx.Query(
            "SELECT client_user_id, state, error_code, error_message, updated FROM user_licenses "
            "WHERE tenant_id = ?1 AND token_id = ?2 AND adam_id = ?3 AND pricing_param = ?4 AND state <> 'released' "
            "ORDER BY client_user_id",
            {tenant_id, token_id, adam_id, pricing_param});
        !s) {
      return Fail(s.error());
    }
    std::vector<UserLicenseState> states;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return states;
      states.push_back({tx.Text(0), tx.Text(1), tx.Text(2), tx.Text(3), tx.Int(4)});
    }
  });
}

// --- 4. users through groups --------------------------------------------------------------

namespace {

Result<std::vector<GroupUser>> ReadGroupUsers(Tx& tx) {
  std::vector<GroupUser> users;
  for (;;) {
    Result<bool> row = tx.Next();
    if (!row) return Fail(row.error());
    if (!*row) return users;
    users.push_back({tx.Text(0), tx.Text(1), tx.Text(2), tx.Text(3), tx.Int(4)});
  }
}

}  // namespace

Result<std::vector<GroupUser>> SqlStore::UserMembersOf(const std::string& tenant_id,
                                                       const std::vector<std::string>& group_ids) {
  if (group_ids.empty()) return std::vector<GroupUser>{};
  // DeviceMembersOf's walk (directory_sql.cc): the groups asked about and every
  // group nested in them (UNION ends a cycle), then the users those hold, each
  // once at its earliest membership. CROSS JOIN keeps SQLite's join order to the walk.
  const std::string sql = fmt::format(
      "WITH RECURSIVE reached (group_id) AS ("
      "SELECT id FROM groups WHERE tenant_id = ?1 AND id IN ({}) "
      "UNION SELECT m.member_id FROM group_members m JOIN reached r ON m.group_id = r.group_id "
      "WHERE m.tenant_id = ?1 AND m.member_kind = 'group') "
      "SELECT u.id, u.user_principal_name, coalesce(u.display_name, ''), coalesce(u.mail, ''), min(m.seq) "
      "FROM reached r CROSS JOIN group_members m CROSS JOIN users u "
      "WHERE m.tenant_id = ?1 AND m.group_id = r.group_id AND m.member_kind = 'user' "
      "AND u.tenant_id = ?1 AND u.id = m.member_id "
      "GROUP BY u.id, u.user_principal_name, u.display_name, u.mail "
      "ORDER BY min(m.seq), u.id",
      JsonValues(2));
  const std::string ids = StringsToJson(group_ids);
  return InTx<std::vector<GroupUser>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<GroupUser>> {
    if (Status s = tx.Query(sql, {tenant_id, ids}); !s) return Fail(s.error());
    return ReadGroupUsers(tx);
  });
}

Result<std::vector<GroupUser>> SqlStore::AllUsers(const std::string& tenant_id) {
  return InTx<std::vector<GroupUser>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<GroupUser>> {
    if (Status s =
            tx.Query("SELECT id, user_principal_name, coalesce(display_name, ''), coalesce(mail, ''), 0 FROM users "
                     "WHERE tenant_id = ?1 ORDER BY id",
                     {tenant_id});
        !s) {
      return Fail(s.error());
    }
    return ReadGroupUsers(tx);
  });
}

// --- 5. the part of an event a notification names ---------------------------------------

namespace {

// An ASSET_MANAGEMENT notification names some of an event's keys
// (outcome.only_serials; for an event of people, clientUserIds): those users'
// rows in flight move as SettleUserLicenses moves a whole event's — granted or
// released, or failed (an associate) or back to granted (a disassociate) with
// Apple's error; the harmless answers (9616, 9619) count as done. Keys that name
// no user row of the event (serials) change nothing.
Status SettleNamedUserLicenses(Tx& tx, const std::string& tenant_id, const std::string& token_id,
                               const std::string& event_id, bool associate, const AppleEventOutcome& outcome,
                               Timestamp now) {
  const std::string in_flight = associate ? "pending" : "reclaimPending";
  const int harmless = associate ? 9616 : 9619;
  for (const std::string& user : *outcome.only_serials) {
    const AppleEventOutcome::Failure* failed = nullptr;
    if (outcome.all_failed && outcome.all_failed->error_number != harmless) failed = &*outcome.all_failed;
    for (const auto& f : outcome.failures) {
      if (failed == nullptr && f.client_user_id == user && f.error_number != harmless) failed = &f;
    }
    Status s = failed != nullptr
                   ? tx.Exec(
                         "UPDATE user_licenses SET state = ?4, error_code = ?5, error_message = ?6, updated = ?7 "
                         "WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3 AND state = ?8 AND "
                         "client_user_id = ?9",
                         {tenant_id, token_id, event_id, associate ? "failed" : "granted",
                          std::to_string(failed->error_number),
                          associate ? failed->error_message : "reclaim failed: " + failed->error_message, now,
                          in_flight, user})
                   : tx.Exec(
                         "UPDATE user_licenses SET state = ?4, error_code = '', error_message = '', updated = ?5 "
                         "WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3 AND state = ?6 AND "
                         "client_user_id = ?7",
                         {tenant_id, token_id, event_id, associate ? "granted" : "released", now, in_flight, user});
    if (!s) return s;
  }
  return {};
}

}  // namespace

}  // namespace vppd::store
