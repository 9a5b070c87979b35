// App assignments (mobileAppAssignment) in the Store both databases share (see
// sql_store.h): the app_assignments table of migration 11 (SQLite) / 6
// (PostgreSQL). Each row belongs to an app of mobile_apps and goes with it (ON
// DELETE CASCADE), so a deleted token, a removed tenant or an app a sync no
// longer finds takes its assignments along. A sync that only changes an app
// updates its row in place (BuildAppUpsertSql), so assignments survive syncs.
//
// Layout: 1. rows  2. reads  3. writes.
#include <fmt/format.h>

#include "store/sql_store.h"
#include "store/store_common.h"

namespace vppd::store {
namespace {

// --- 1. rows ------------------------------------------------------------------------

constexpr const char* kAssignmentSelectList =
    "id, app_id, intent, target_type, group_id, settings, use_device_licensing, created, last_modified";

AppAssignment ReadAssignmentRow(const Tx& row) {
  AppAssignment a;
  a.id = row.Text(0);
  a.app_id = row.Text(1);
  a.intent = row.Text(2);
  a.target_type = row.Text(3);
  a.group_id = row.OptText(4);
  a.settings_json = row.Text(5);
  a.use_device_licensing = row.Bool(6);
  a.created = row.Int(7);
  a.last_modified = row.Int(8);
  return a;
}

// Every row of the current result.
Result<std::vector<AppAssignment>> ReadAssignments(Tx& tx) {
  std::vector<AppAssignment> out;
  for (;;) {
    Result<bool> row = tx.Next();
    if (!row) return Fail(row.error());
    if (!*row) return out;
    out.push_back(ReadAssignmentRow(tx));
  }
}

Error AssignmentNotFound(const std::string& app_id, const std::string& id) {
  return Error::NotFound(fmt::format("mobileAppAssignment '{}' of mobileApp '{}' not found", id, app_id), id);
}

Status CheckAssignment(const AppAssignment& a) {
  if (a.app_id.empty()) return Fail(Error::InvalidArgument("an app assignment needs its app's id"));
  if (a.intent.empty()) return Fail(Error::InvalidArgument("an app assignment needs an intent", "intent"));
  if (a.target_type.empty()) return Fail(Error::InvalidArgument("an app assignment needs a target", "target"));
  return {};
}

// Most ids one IN (...) list binds (well under both databases' parameter limits).
constexpr std::size_t kIdsPerStatement = 500;

}  // namespace

// --- 2. reads -----------------------------------------------------------------------

Status SqlStore::CheckAppExists(Tx& tx, const std::string& tenant_id, const std::string& app_id) {
  Result<bool> app = tx.QueryRow("SELECT 1 FROM mobile_apps WHERE tenant_id = ?1 AND id = ?2", {tenant_id, app_id});
  if (!app) return Fail(app.error());
  if (!*app) return Fail(AppNotFound(app_id));
  return {};
}

Result<AppAssignment> SqlStore::GetAppAssignment(const std::string& tenant_id, const std::string& app_id,
                                                 const std::string& id) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM app_assignments WHERE tenant_id = ?1 AND app_id = ?2 AND id = ?3", kAssignmentSelectList);
  return InTx<AppAssignment>(TxKind::kRead, [&](Tx& tx) -> Result<AppAssignment> {
    if (Status s = CheckAppExists(tx, tenant_id, app_id); !s) return Fail(s.error());
    Result<bool> row = tx.QueryRow(sql, {tenant_id, app_id, id});
    if (!row) return Fail(row.error());
    if (!*row) return Fail(AssignmentNotFound(app_id, id));
    return ReadAssignmentRow(tx);
  });
}

Result<std::vector<AppAssignment>> SqlStore::ListAssignmentsOfApp(const std::string& tenant_id,
                                                                  const std::string& app_id) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM app_assignments WHERE tenant_id = ?1 AND app_id = ?2 ORDER BY id", kAssignmentSelectList);
  return InTx<std::vector<AppAssignment>>(TxKind::kRead, [&](Tx& tx) -> Result<std::vector<AppAssignment>> {
    if (Status s = CheckAppExists(tx, tenant_id, app_id); !s) return Fail(s.error());
    if (Status s = tx.Query(sql, {tenant_id, app_id}); !s) return Fail(s.error());
    return ReadAssignments(tx);
  });
}

Result<std::vector<AppAssignment>> SqlStore::ListAssignmentsOfApps(const std::string& tenant_id,
                                                                   const std::vector<std::string>& app_ids) {
  if (app_ids.empty()) return std::vector<AppAssignment>{};
  return InTx<std::vector<AppAssignment>>(TxKind::kRead, [&](Tx& tx) -> Result<std::vector<AppAssignment>> {
    std::vector<AppAssignment> out;
    for (std::size_t from = 0; from < app_ids.size(); from += kIdsPerStatement) {
      SqlBuilder builder(dialect().sql);
      const std::string tenant = builder.Param(tenant_id);
      std::string in;
      for (std::size_t i = from; i < std::min(app_ids.size(), from + kIdsPerStatement); ++i) {
        in += (in.empty() ? "" : ", ") + builder.Param(app_ids[i]);
      }
      const std::string sql =
          fmt::format("SELECT {} FROM app_assignments WHERE tenant_id = {} AND app_id IN ({}) ORDER BY app_id, id",
                      kAssignmentSelectList, tenant, in);
      if (Status s = tx.QueryBuilt(sql, builder); !s) return Fail(s.error());
      Result<std::vector<AppAssignment>> rows = ReadAssignments(tx);
      if (!rows) return Fail(rows.error());
      for (AppAssignment& a : *rows) out.push_back(std::move(a));
    }
    // Each statement is in order; the chunks are not when the ids were not sorted.
    std::stable_sort(out.begin(), out.end(), [](const AppAssignment& a, const AppAssignment& b) {
      return std::tie(a.app_id, a.id) < std::tie(b.app_id, b.id);
    });
    return out;
  });
}

Result<std::vector<AppAssignment>> SqlStore::ListAssignmentsOfToken(const std::string& tenant_id,
                                                                    const std::string& token_id) {
  static const std::string sql = fmt::format(
      "SELECT a.id, a.app_id, a.intent, a.target_type, a.group_id, a.settings, a.use_device_licensing, a.created, "
      "a.last_modified FROM app_assignments a JOIN mobile_apps m ON m.tenant_id = a.tenant_id AND m.id = a.app_id "
      "WHERE a.tenant_id = ?1 AND m.token_id = ?2 ORDER BY a.app_id, a.id");
  return InTx<std::vector<AppAssignment>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<AppAssignment>> {
    if (Status s = tx.Query(sql, {tenant_id, token_id}); !s) return Fail(s.error());
    return ReadAssignments(tx);
  });
}

Result<bool> SqlStore::IsAppAssigned(const std::string& tenant_id, const std::string& app_id) {
  return InTx<bool>(TxKind::kRead, [&](Tx& tx) -> Result<bool> {
    if (Status s = CheckAppExists(tx, tenant_id, app_id); !s) return Fail(s.error());
    return tx.QueryRow("SELECT 1 FROM app_assignments WHERE tenant_id = ?1 AND app_id = ?2 LIMIT 1",
                       {tenant_id, app_id});
  });
}

// --- 3. writes ----------------------------------------------------------------------

// Inserts `assignment` (its id assigned when empty, its times stamped `now` when
// 0) inside the caller's write transaction; the caller has checked its app.
Status SqlStore::InsertAppAssignment(Tx& tx, const std::string& tenant_id, AppAssignment& assignment, Timestamp now) {
  if (Status s = CheckAssignment(assignment); !s) return s;
  if (assignment.id.empty()) {
    assignment.id = NewGuid();
  } else {
    // Checked first: SQLite reports a key conflict as a bare constraint failure.
    Result<bool> taken =
        tx.QueryRow("SELECT 1 FROM app_assignments WHERE tenant_id = ?1 AND id = ?2", {tenant_id, assignment.id});
    if (!taken) return Fail(taken.error());
    if (*taken) {
      return Fail(
          Error::AlreadyExists(fmt::format("a mobileAppAssignment with id '{}' already exists", assignment.id)));
    }
  }
  if (assignment.created == 0) assignment.created = now;
  if (assignment.last_modified == 0) assignment.last_modified = now;
  return tx.Exec(
      "INSERT INTO app_assignments (tenant_id, id, app_id, intent, target_type, group_id, settings, "
      "use_device_licensing, created, last_modified) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
      {tenant_id, assignment.id, assignment.app_id, assignment.intent, assignment.target_type, assignment.group_id,
       assignment.settings_json, assignment.use_device_licensing, assignment.created, assignment.last_modified});
}

Result<AppAssignment> SqlStore::CreateAppAssignment(const std::string& tenant_id, AppAssignment assignment) {
  if (Status s = CheckAssignment(assignment); !s) return Fail(s.error());
  const Timestamp now = clock().Now();
  return InTx<AppAssignment>(TxKind::kWrite, [&](Tx& tx) -> Result<AppAssignment> {
    AppAssignment row = assignment;  // the body may run again (PostgreSQL): start from the caller's each time
    if (Status s = CheckAppExists(tx, tenant_id, row.app_id); !s) return Fail(s.error());
    if (Status s = InsertAppAssignment(tx, tenant_id, row, now); !s) return Fail(s.error());
    return row;
  });
}

Result<AppAssignment> SqlStore::UpdateAppAssignment(const std::string& tenant_id, const std::string& app_id,
                                                    const std::string& id,
                                                    const std::function<Status(AppAssignment&)>& mutate) {
  const std::string load_sql =
      fmt::format("SELECT {} FROM app_assignments WHERE tenant_id = ?1 AND app_id = ?2 AND id = ?3{}",
                  kAssignmentSelectList, dialect().for_update);
  const Timestamp now = clock().Now();
  return InTx<AppAssignment>(TxKind::kWrite, [&](Tx& tx) -> Result<AppAssignment> {
    if (Status s = CheckAppExists(tx, tenant_id, app_id); !s) return Fail(s.error());
    Result<bool> row = tx.QueryRow(load_sql, {tenant_id, app_id, id});
    if (!row) return Fail(row.error());
    if (!*row) return Fail(AssignmentNotFound(app_id, id));
    const AppAssignment stored = ReadAssignmentRow(tx);
    AppAssignment changed = stored;
    if (Status s = mutate(changed); !s) return Fail(s.error());
    changed.id = stored.id;
    changed.app_id = stored.app_id;
    changed.created = stored.created;
    changed.last_modified = now;
    if (Status s = CheckAssignment(changed); !s) return Fail(s.error());
    if (Status s = tx.Exec("UPDATE app_assignments SET intent = ?3, target_type = ?4, group_id = ?5, settings = ?6, "
                           "use_device_licensing = ?7, last_modified = ?8 WHERE tenant_id = ?1 AND id = ?2",
                           {tenant_id, changed.id, changed.intent, changed.target_type, changed.group_id,
                            changed.settings_json, changed.use_device_licensing, changed.last_modified});
        !s) {
      return Fail(s.error());
    }
    return changed;
  });
}

Status SqlStore::DeleteAppAssignment(const std::string& tenant_id, const std::string& app_id, const std::string& id) {
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    if (Status s = CheckAppExists(tx, tenant_id, app_id); !s) return s;
    if (Status s = tx.Exec("DELETE FROM app_assignments WHERE tenant_id = ?1 AND app_id = ?2 AND id = ?3",
                           {tenant_id, app_id, id});
        !s) {
      return s;
    }
    if (tx.Changes() == 0) return Fail(AssignmentNotFound(app_id, id));
    return {};
  });
}

Result<std::vector<AppAssignment>> SqlStore::ReplaceAppAssignments(const std::string& tenant_id,
                                                                   const std::string& app_id,
                                                                   std::vector<AppAssignment> assignments) {
  for (AppAssignment& a : assignments) a.app_id = app_id;
  for (const AppAssignment& a : assignments) {
    if (Status s = CheckAssignment(a); !s) return Fail(s.error());
  }
  const std::string lock_app =
      std::string("SELECT 1 FROM mobile_apps WHERE tenant_id = ?1 AND id = ?2") + dialect().for_update;
  const Timestamp now = clock().Now();
  return InTx<std::vector<AppAssignment>>(TxKind::kWrite, [&](Tx& tx) -> Result<std::vector<AppAssignment>> {
    // The app row locked: two assigns of one app run one after the other, so the
    // second one's set is the one left, never a mix.
    Result<bool> app = tx.QueryRow(lock_app, {tenant_id, app_id});
    if (!app) return Fail(app.error());
    if (!*app) return Fail(AppNotFound(app_id));
    if (Status s = tx.Exec("DELETE FROM app_assignments WHERE tenant_id = ?1 AND app_id = ?2", {tenant_id, app_id});
        !s) {
      return Fail(s.error());
    }
    std::vector<AppAssignment> rows = assignments;  // the body may run again: start from the caller's each time
    for (AppAssignment& row : rows) {
      if (Status s = InsertAppAssignment(tx, tenant_id, row, now); !s) return Fail(s.error());
    }
    std::sort(rows.begin(), rows.end(), [](const AppAssignment& a, const AppAssignment& b) { return a.id < b.id; });
    return rows;
  });
}

}  // namespace vppd::store
