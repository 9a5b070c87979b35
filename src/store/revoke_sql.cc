// Licence revokes by app, user or device (store::AppRevoke): the SQL both
// databases share (SqlStore). A row is written pending when Graph asks, moved to
// active and then done or failed by the token's revokeAppLicenses job, and kept
// (the newest few per app) as the app's revokeLicenseActionResults entry.
#include <algorithm>

#include <fmt/format.h>

#include "store/sql_store.h"
#include "store/store_common.h"

namespace vppd::store {
namespace {

constexpr const char* kColumns =
    "id, token_id, app_id, adam_id, pricing_param, action_name, user_id, managed_device_id, serial_number, notify, "
    "untracked, action_state, failure_reason, total_licenses, failed_licenses, error, start, last_updated, seq";

AppRevoke ReadRevoke(const Tx& tx) {
  AppRevoke r;
  r.id = tx.Text(0);
  r.token_id = tx.Text(1);
  r.app_id = tx.Text(2);
  r.adam_id = tx.Text(3);
  r.pricing_param = tx.Text(4);
  r.action_name = tx.Text(5);
  r.user_id = tx.Text(6);
  r.managed_device_id = tx.Text(7);
  r.serial_number = tx.Text(8);
  r.notify_managed_devices = tx.Bool(9);
  r.revoke_untracked = tx.Bool(10);
  r.action_state = tx.Text(11);
  r.failure_reason = tx.Text(12);
  r.total_licenses = static_cast<std::int32_t>(tx.Int(13));
  r.failed_licenses = static_cast<std::int32_t>(tx.Int(14));
  r.error = tx.Text(15);
  r.start = tx.Int(16);
  r.last_updated = tx.Int(17);
  r.seq = tx.Int(18);
  return r;
}

Result<std::vector<AppRevoke>> ReadAll(Tx& tx) {
  std::vector<AppRevoke> out;
  for (;;) {
    Result<bool> row = tx.Next();
    if (!row) return Fail(row.error());
    if (!*row) return out;
    out.push_back(ReadRevoke(tx));
  }
}

}  // namespace

Result<std::vector<AppRevoke>> SqlStore::AddAppRevokes(const std::string& tenant_id, std::vector<AppRevoke> revokes,
                                                       int keep) {
  const Timestamp now = clock_.Now();
  return InTx<std::vector<AppRevoke>>(TxKind::kWrite, [&](Tx& tx) -> Result<std::vector<AppRevoke>> {
    std::vector<AppRevoke> out = revokes;  // the body may run again (PostgreSQL): start from the request each time
    Result<bool> last = tx.QueryRow("SELECT COALESCE(MAX(seq), 0) FROM app_revokes WHERE tenant_id = ?1", {tenant_id});
    if (!last) return Fail(last.error());
    std::int64_t seq = tx.Int(0);
    for (AppRevoke& r : out) {
      if (Result<std::int64_t> key = TokenKey(tx, tenant_id, r.token_id, false); !key) return Fail(key.error());
      if (r.id.empty()) r.id = NewGuid();
      r.start = r.last_updated = now;
      r.seq = ++seq;
      static const std::string insert = fmt::format(
          "INSERT INTO app_revokes (tenant_id, {}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
          "?14, "
          "?15, ?16, ?17, ?18, ?19, ?20)",
          kColumns);
      if (Status s = tx.Exec(insert, {tenant_id,
                                      r.id,
                                      r.token_id,
                                      r.app_id,
                                      r.adam_id,
                                      r.pricing_param,
                                      r.action_name,
                                      r.user_id,
                                      r.managed_device_id,
                                      r.serial_number,
                                      r.notify_managed_devices,
                                      r.revoke_untracked,
                                      r.action_state,
                                      r.failure_reason,
                                      r.total_licenses,
                                      r.failed_licenses,
                                      r.error,
                                      r.start,
                                      r.last_updated,
                                      r.seq});
          !s) {
        return Fail(s.error());
      }
    }
    if (keep > 0) {
      for (std::size_t i = 0; i < out.size(); ++i) {
        if (i > 0 && out[i].app_id == out[i - 1].app_id) continue;
        // The newest `keep` ended entries stay; older ended ones go.
        if (Status s = tx.Exec(
                "DELETE FROM app_revokes WHERE tenant_id = ?1 AND app_id = ?2 AND action_state IN ('done', 'failed') "
                "AND seq <= (SELECT seq FROM app_revokes WHERE tenant_id = ?1 AND app_id = ?2 AND "
                "action_state IN ('done', 'failed') ORDER BY seq DESC LIMIT 1 OFFSET ?3)",
                {tenant_id, out[i].app_id, keep});
            !s) {
          return Fail(s.error());
        }
      }
    }
    return out;
  });
}

Result<std::vector<AppRevoke>> SqlStore::OpenAppRevokes(const std::string& tenant_id, const std::string& token_id) {
  return InTx<std::vector<AppRevoke>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<AppRevoke>> {
    static const std::string sql = fmt::format(
        "SELECT {} FROM app_revokes WHERE tenant_id = ?1 AND token_id = ?2 AND action_state IN ('pending', 'active') "
        "ORDER BY seq, id",
        kColumns);
    if (Status s = tx.Query(sql, {tenant_id, token_id}); !s) {
      return Fail(s.error());
    }
    return ReadAll(tx);
  });
}

Status SqlStore::UpdateAppRevoke(const std::string& tenant_id, const AppRevoke& r) {
  const Timestamp now = clock_.Now();
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    if (Status s = tx.Exec(
            "UPDATE app_revokes SET action_state = ?3, failure_reason = ?4, total_licenses = ?5, "
            "failed_licenses = ?6, error = ?7, last_updated = ?8 WHERE tenant_id = ?1 AND id = ?2",
            {tenant_id, r.id, r.action_state, r.failure_reason, r.total_licenses, r.failed_licenses, r.error, now});
        !s) {
      return s;
    }
    if (tx.Changes() == 0) return Fail(Error::NotFound("no licence revoke '" + r.id + "'", r.id));
    return {};
  });
}

Result<std::vector<AppRevoke>> SqlStore::AppRevokesOf(const std::string& tenant_id,
                                                      const std::vector<std::string>& app_ids) {
  return InTx<std::vector<AppRevoke>>(TxKind::kRead, [&](Tx& tx) -> Result<std::vector<AppRevoke>> {
    std::vector<std::string> ids = app_ids;
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    static const std::string sql =
        fmt::format("SELECT {} FROM app_revokes WHERE tenant_id = ?1 AND app_id = ?2 ORDER BY seq, id", kColumns);
    std::vector<AppRevoke> out;
    for (const std::string& app_id : ids) {  // a page of apps: one indexed read each
      if (Status s = tx.Query(sql, {tenant_id, app_id}); !s) {
        return Fail(s.error());
      }
      Result<std::vector<AppRevoke>> rows = ReadAll(tx);
      if (!rows) return Fail(rows.error());
      out.insert(out.end(), rows->begin(), rows->end());
    }
    return out;
  });
}

Result<std::vector<AppRevoke>> SqlStore::AppRevokesOfDevice(const std::string& tenant_id,
                                                            const std::string& managed_device_id) {
  return InTx<std::vector<AppRevoke>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<AppRevoke>> {
    static const std::string sql = fmt::format(
        "SELECT {} FROM app_revokes WHERE tenant_id = ?1 AND managed_device_id = ?2 AND "
        "action_name = 'revokeAppleVppLicenses' ORDER BY seq, id",
        kColumns);
    if (Status s = tx.Query(sql, {tenant_id, managed_device_id}); !s) return Fail(s.error());
    return ReadAll(tx);
  });
}

Result<std::vector<AppRevoke>> SqlStore::ListAppRevokes(const std::string& tenant_id, const std::string& token_id) {
  return InTx<std::vector<AppRevoke>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<AppRevoke>> {
    static const std::string sql =
        fmt::format("SELECT {} FROM app_revokes WHERE tenant_id = ?1 AND token_id = ?2 ORDER BY seq, id", kColumns);
    if (Status s = tx.Query(sql, {tenant_id, token_id}); !s) return Fail(s.error());
    return ReadAll(tx);
  });
}

}  // namespace vppd::store
