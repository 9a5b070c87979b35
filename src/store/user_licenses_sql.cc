// The user licences vppd hands out (store::UserLicense) and the directory's users
// that app assignments reach: the SQL both databases share (SqlStore).
//
// Layout: 1. user licences  2. their Apple events  3. what Graph reads  4. users through groups.
//
// A row moves as a device licence's does: the licence rows' SQL is written once
// for devices and people (licenses_sql.h), and CompleteAppleEvent
// (reconcile_sql.cc) settles both kinds, since an event's rows are in one table
// or the other.
#include <fmt/format.h>

#include "store/licenses_sql.h"
#include "store/sql_store.h"
#include "store/store_common.h"

namespace vppd::store {

// --- 1. user licences -------------------------------------------------------------------

Result<std::vector<UserLicense>> SqlStore::ListUserLicenses(const std::string& tenant_id, const std::string& token_id) {
  return ListLicenses<UserLicense>(tenant_id, token_id);
}

Status SqlStore::PutUserLicenses(const std::string& tenant_id, const std::string& token_id,
                                 const std::vector<UserLicense>& rows, const std::vector<UserLicense>& remove) {
  return PutLicenses(tenant_id, token_id, rows, remove);
}

// --- 2. their Apple events --------------------------------------------------------------

Status SqlStore::RecordUserLicenseEvent(const std::string& tenant_id, const std::string& token_id,
                                        const AppleEvent& event, const std::vector<std::string>& client_user_ids,
                                        const std::string& cause) {
  if (event.event_id.empty() || (event.kind != "associate" && event.kind != "disassociate")) {
    return Fail(Error::InvalidArgument("store: an Apple event needs an id and kind associate or disassociate"));
  }
  return RecordLicenseEvent<UserLicense>(tenant_id, token_id, event, client_user_ids, cause);
}

// --- 3. what Graph reads ------------------------------------------------------------------

Result<std::vector<UserLicenseState>> SqlStore::UserLicenseStates(const std::string& tenant_id,
                                                                  const std::string& app_id) {
  return LicenseStates<UserLicense>(tenant_id, app_id);
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

}  // namespace vppd::store
