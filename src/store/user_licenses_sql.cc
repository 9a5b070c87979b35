// The user licences vppd hands out (store::UserLicense) and the directory's users
// that app assignments reach: the SQL both databases share (SqlStore).
//
// Layout: 1. user licences  2. their Apple events  3. what Graph reads  4. users through groups.
//
// A row moves as a device licence's does: the licence rows' SQL is written once
// for devices and people (licenses_sql.h), and CompleteAppleEvent
// (reconcile_sql.cc) settles both kinds, since an event's rows are in one table
// or the other.
#include <algorithm>
#include <cstddef>
#include <tuple>
#include <unordered_map>

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

// UserMembersOf looks up at most this many users by key; a larger group reads
// the tenant's users in order instead.
constexpr std::size_t kUserLookupLimit = 1000;
constexpr const char* kUserColumns =
    "SELECT id, user_principal_name, coalesce(display_name, ''), coalesce(mail, '') FROM users";

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
  // DeviceMembersOf's reads (directory_sql.cc), joined here: the groups asked
  // about and every group nested in them (UNION ends a cycle) and the users they
  // hold, each with its earliest membership; then those users. A small group
  // looks them up by key; a large one reads the tenant's users in key order,
  // since a lookup per member lands on a random page each time (bench/README.md,
  // "assign/people").
  const std::string members_sql = fmt::format(
      "WITH RECURSIVE reached (group_id) AS ("
      "SELECT id FROM groups WHERE tenant_id = ?1 AND id IN ({}) "
      "UNION SELECT m.member_id FROM group_members m JOIN reached r ON m.group_id = r.group_id "
      "WHERE m.tenant_id = ?1 AND m.member_kind = 'group') "
      "SELECT m.member_id, min(m.seq) FROM reached r CROSS JOIN group_members m "
      "WHERE m.tenant_id = ?1 AND m.group_id = r.group_id AND m.member_kind = 'user' GROUP BY m.member_id",
      JsonValues(2));
  const std::string ids = StringsToJson(group_ids);
  return InTx<std::vector<GroupUser>>(TxKind::kRead, [&](Tx& tx) -> Result<std::vector<GroupUser>> {
    std::unordered_map<std::string, std::int64_t> seq_of;  // user id → earliest membership
    if (Status s = tx.Query(members_sql, {tenant_id, ids}); !s) return Fail(s.error());
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) break;
      seq_of.emplace(tx.Text(0), tx.Int(1));
    }
    std::vector<GroupUser> users;
    if (seq_of.empty()) return users;
    std::string list;
    if (seq_of.size() <= kUserLookupLimit) {
      std::vector<std::string> member_ids;
      member_ids.reserve(seq_of.size());
      for (const auto& [id, seq] : seq_of) member_ids.push_back(id);
      list = StringsToJson(member_ids);
    }
    const std::string sql = list.empty()
                                ? std::string(kUserColumns) + " WHERE tenant_id = ?1"
                                : fmt::format("{} WHERE tenant_id = ?1 AND id IN ({})", kUserColumns, JsonValues(2));
    if (Status s = list.empty() ? tx.Query(sql, {tenant_id}) : tx.Query(sql, {tenant_id, list}); !s) {
      return Fail(s.error());
    }
    users.reserve(seq_of.size());
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) break;
      auto member = seq_of.find(tx.Text(0));
      if (member != seq_of.end()) users.push_back({tx.Text(0), tx.Text(1), tx.Text(2), tx.Text(3), member->second});
    }
    std::sort(users.begin(), users.end(), [](const GroupUser& a, const GroupUser& b) {
      return std::tie(a.seq, a.user_id) < std::tie(b.seq, b.user_id);
    });
    return users;
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
