// Apple's notifications in the store (issue 16): the endpoints registered at
// Apple and the notifications received, written once for SQLite and PostgreSQL
// (SqlStore). The tables are migration 13 (PostgreSQL: 8).
//
// apple_notifications is both the de-duplication (its primary key) and the
// queue of work after the answer (its rows in state 'pending'); an applier ends
// a row in the same transaction that applies it, so a notification is applied
// once however many appliers (threads, instances) look at it.
#include <fmt/format.h>

#include "store/sql_store.h"

namespace vppd::store {
namespace {

constexpr char kEndpointColumns[] =
    "tenant_id, token_id, location_key, apple_uid, auth_hash, previous_auth_hash, previous_valid_until, "
    "stoken_expiration, registration, rotated";

NotificationEndpoint ReadEndpoint(const Tx& tx) {
  NotificationEndpoint e;
  e.tenant_id = tx.Text(0);
  e.token_id = tx.Text(1);
  e.location_key = tx.Text(2);
  e.apple_uid = tx.Text(3);
  e.auth_hash = tx.Text(4);
  e.previous_auth_hash = tx.Text(5);
  e.previous_valid_until = tx.Int(6);
  e.stoken_expiration = tx.Int(7);
  e.registration = tx.Text(8);
  e.rotated = tx.Int(9);
  return e;
}

constexpr char kNotificationColumns[] = "tenant_id, token_id, notification_id, type, body, received, state, handled";

AppleNotification ReadNotification(const Tx& tx) {
  AppleNotification n;
  n.tenant_id = tx.Text(0);
  n.token_id = tx.Text(1);
  n.notification_id = tx.Text(2);
  n.type = tx.Text(3);
  n.body = tx.Text(4);
  n.received = tx.Int(5);
  n.state = tx.Text(6);
  n.handled = tx.Int(7);
  return n;
}

Error TokenNotFound(const std::string& token_id) {
  return Error::NotFound("vppToken '" + token_id + "' not found", token_id);
}

// Ends a pending notification as `state` inside `tx`; false when it was not pending.
Result<bool> EndPending(Tx& tx, const AppleNotification& n, const std::string& state, Timestamp now) {
  if (Status s = tx.Exec("UPDATE apple_notifications SET state = ?4, handled = ?5 "
                         "WHERE tenant_id = ?1 AND token_id = ?2 AND notification_id = ?3 AND state = 'pending'",
                         {n.tenant_id, n.token_id, n.notification_id, state, now});
      !s) {
    return Fail(s.error());
  }
  return tx.Changes() == 1;
}

}  // namespace

Result<std::optional<NotificationEndpoint>> SqlStore::GetNotificationEndpoint(const std::string& tenant_id,
                                                                              const std::string& token_id) {
  static const std::string sql =
      fmt::format("SELECT {} FROM notification_endpoints WHERE tenant_id = ?1 AND token_id = ?2", kEndpointColumns);
  using Out = std::optional<NotificationEndpoint>;
  return InTx<Out>(TxKind::kReadOne, [&](Tx& tx) -> Result<Out> {
    Result<bool> row = tx.QueryRow(sql, {tenant_id, token_id});
    if (!row) return Fail(row.error());
    if (!*row) return Out();
    return Out(ReadEndpoint(tx));
  });
}

Result<NotificationEndpoint> SqlStore::FindNotificationEndpoint(const std::string& location_key) {
  static const std::string sql =
      fmt::format("SELECT {} FROM notification_endpoints WHERE location_key = ?1", kEndpointColumns);
  return InTx<NotificationEndpoint>(TxKind::kReadOne, [&](Tx& tx) -> Result<NotificationEndpoint> {
    Result<bool> row = tx.QueryRow(sql, {location_key});
    if (!row) return Fail(row.error());
    if (!*row) return Fail(Error::NotFound("no notification endpoint has this key"));
    return ReadEndpoint(tx);
  });
}

Result<NotificationEndpoint> SqlStore::RotateNotificationEndpoint(const NotificationEndpoint& next) {
  if (next.location_key.empty() || next.auth_hash.empty()) {
    return Fail(Error::InvalidArgument("store: a notification endpoint needs a location key and an auth hash"));
  }
  static const std::string select =
      fmt::format("SELECT {} FROM notification_endpoints WHERE tenant_id = ?1 AND token_id = ?2", kEndpointColumns);
  return InTx<NotificationEndpoint>(TxKind::kWrite, [&](Tx& tx) -> Result<NotificationEndpoint> {
    // The token row is locked first, as every write of a token's data does.
    Result<bool> token =
        tx.QueryRow(std::string("SELECT 1 FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2") + dialect().for_update,
                    {next.tenant_id, next.token_id});
    if (!token) return Fail(token.error());
    if (!*token) return Fail(TokenNotFound(next.token_id));
    Result<bool> row = tx.QueryRow(select + dialect().for_update, {next.tenant_id, next.token_id});
    if (!row) return Fail(row.error());
    NotificationEndpoint out = next;
    if (*row) {
      const NotificationEndpoint old = ReadEndpoint(tx);
      out.location_key = old.location_key;
      out.previous_auth_hash = old.auth_hash;
      if (Status s =
              tx.Exec("UPDATE notification_endpoints SET apple_uid = ?3, auth_hash = ?4, previous_auth_hash = ?5, "
                      "previous_valid_until = ?6, stoken_expiration = ?7, registration = ?8, rotated = ?9 "
                      "WHERE tenant_id = ?1 AND token_id = ?2",
                      {out.tenant_id, out.token_id, out.apple_uid, out.auth_hash, out.previous_auth_hash,
                       out.previous_valid_until, out.stoken_expiration, out.registration, out.rotated});
          !s) {
        return Fail(s.error());
      }
      return out;
    }
    out.previous_auth_hash.clear();
    out.previous_valid_until = 0;
    if (Status s = tx.Exec(
            fmt::format("INSERT INTO notification_endpoints ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                        "?8, ?9, ?10)",
                        kEndpointColumns),
            {out.tenant_id, out.token_id, out.location_key, out.apple_uid, out.auth_hash, out.previous_auth_hash,
             out.previous_valid_until, out.stoken_expiration, out.registration, out.rotated});
        !s) {
      return Fail(s.error());
    }
    return out;
  });
}

Result<std::vector<std::pair<std::string, std::string>>> SqlStore::TokensToRegister(const std::string& registration,
                                                                                    int limit) {
  using Out = std::vector<std::pair<std::string, std::string>>;
  if (limit < 0) return Fail(Error::InvalidArgument("store: limit must not be negative"));
  return InTx<Out>(TxKind::kReadOne, [&](Tx& tx) -> Result<Out> {
    if (Status s = tx.Query("SELECT t.tenant_id, t.id FROM vpp_tokens t LEFT JOIN notification_endpoints e "
                            "ON e.tenant_id = t.tenant_id AND e.token_id = t.id "
                            "WHERE t.state = 'valid' AND (e.token_id IS NULL OR e.registration <> ?1) "
                            "ORDER BY t.tenant_id, t.id LIMIT ?2",
                            {registration, limit});
        !s) {
      return Fail(s.error());
    }
    Out out;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return out;
      out.emplace_back(tx.Text(0), tx.Text(1));
    }
  });
}

Result<bool> SqlStore::RecordNotification(const AppleNotification& n) {
  return InTx<bool>(TxKind::kWrite, [&](Tx& tx) -> Result<bool> {
    Result<bool> token =
        tx.QueryRow("SELECT 1 FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2", {n.tenant_id, n.token_id});
    if (!token) return Fail(token.error());
    if (!*token) return Fail(TokenNotFound(n.token_id));
    if (Status s =
            tx.Exec(fmt::format("INSERT INTO apple_notifications ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                                "ON CONFLICT (tenant_id, token_id, notification_id) DO NOTHING",
                                kNotificationColumns),
                    {n.tenant_id, n.token_id, n.notification_id, n.type, n.body, n.received, n.state, n.handled});
        !s) {
      return Fail(s.error());
    }
    return tx.Changes() == 1;
  });
}

Result<std::vector<AppleNotification>> SqlStore::PendingNotifications(int limit) {
  using Out = std::vector<AppleNotification>;
  if (limit < 0) return Fail(Error::InvalidArgument("store: limit must not be negative"));
  static const std::string sql = fmt::format(
      "SELECT {} FROM apple_notifications WHERE state = 'pending' ORDER BY received, notification_id LIMIT ?1",
      kNotificationColumns);
  return InTx<Out>(TxKind::kReadOne, [&](Tx& tx) -> Result<Out> {
    if (Status s = tx.Query(sql, {limit}); !s) return Fail(s.error());
    Out out;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return out;
      out.push_back(ReadNotification(tx));
    }
  });
}

Result<bool> SqlStore::FinishNotification(const AppleNotification& n, const std::string& state, Timestamp now) {
  if (state == "pending") return Fail(Error::InvalidArgument("store: a notification cannot end as pending"));
  return InTx<bool>(TxKind::kWrite, [&](Tx& tx) -> Result<bool> { return EndPending(tx, n, state, now); });
}

Result<CountChange> SqlStore::ApplyAssetCount(const AppleNotification& n, const std::string& adam_id,
                                              const std::string& pricing_param, std::int64_t delta, Timestamp now) {
  constexpr std::int64_t kUnlimited = 2147483647;  // Apple's totalCount of a free asset
  return InTx<CountChange>(TxKind::kWrite, [&](Tx& tx) -> Result<CountChange> {
    // The notification's row, locked: a second applier waits here, then finds it ended.
    Result<bool> pending = tx.QueryRow(std::string("SELECT state FROM apple_notifications WHERE tenant_id = ?1 AND "
                                                   "token_id = ?2 AND notification_id = ?3") +
                                           dialect().for_update,
                                       {n.tenant_id, n.token_id, n.notification_id});
    if (!pending) return Fail(pending.error());
    if (!*pending || tx.Text(0) != "pending") return CountChange::kAlreadyHandled;
    // A sync running now swaps in Apple's counts when it ends: whether they hold
    // this change is known only then.
    Result<bool> running = tx.QueryRow(
        "SELECT 1 FROM sync_jobs WHERE tenant_id = ?1 AND token_id = ?2 AND kind IN ('syncLicenses', "
        "'syncLicenseCounts') AND lease_owner <> '' AND lease_expires > ?3",
        {n.tenant_id, n.token_id, now});
    if (!running) return Fail(running.error());
    if (*running) return CountChange::kDeferred;
    Result<bool> token =
        tx.QueryRow("SELECT last_sync FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2", {n.tenant_id, n.token_id});
    if (!token) return Fail(token.error());
    if (!*token) return Fail(TokenNotFound(n.token_id));
    if (tx.Int(0) > n.received) {
      if (Result<bool> ended = EndPending(tx, n, "covered", now); !ended) return Fail(ended.error());
      return CountChange::kCovered;
    }
    if (Status s = tx.Query(std::string("SELECT total_licenses, used_licenses FROM mobile_apps WHERE tenant_id = ?1 "
                                        "AND token_id = ?2 AND adam_id = ?3 AND pricing_param = ?4") +
                                dialect().for_update,
                            {n.tenant_id, n.token_id, adam_id, pricing_param});
        !s) {
      return Fail(s.error());
    }
    bool any = false, consistent = true, unlimited = false;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) break;
      any = true;
      const std::int64_t total = tx.Int(0), used = tx.Int(1);
      if (total == kUnlimited) {
        unlimited = true;
        continue;
      }
      if (total + delta < 0 || total + delta < used || total + delta >= kUnlimited) consistent = false;
    }
    if (!any || !consistent) {
      if (Result<bool> ended = EndPending(tx, n, "resync", now); !ended) return Fail(ended.error());
      return CountChange::kInconsistent;
    }
    if (!unlimited) {
      if (Status s = tx.Exec("UPDATE mobile_apps SET total_licenses = total_licenses + ?5, last_modified = ?6 "
                             "WHERE tenant_id = ?1 AND token_id = ?2 AND adam_id = ?3 AND pricing_param = ?4",
                             {n.tenant_id, n.token_id, adam_id, pricing_param, delta, now});
          !s) {
        return Fail(s.error());
      }
    }
    if (Result<bool> ended = EndPending(tx, n, "applied", now); !ended) return Fail(ended.error());
    return CountChange::kApplied;
  });
}

Result<std::int64_t> SqlStore::DeleteNotificationsBefore(Timestamp before) {
  return InTx<std::int64_t>(TxKind::kWrite, [&](Tx& tx) -> Result<std::int64_t> {
    if (Status s = tx.Exec("DELETE FROM apple_notifications WHERE received < ?1 AND state <> 'pending'", {before});
        !s) {
      return Fail(s.error());
    }
    return tx.Changes();
  });
}

Result<Timestamp> SqlStore::NewestAppChange() {
  return InTx<Timestamp>(TxKind::kReadOne, [&](Tx& tx) -> Result<Timestamp> {
    Result<bool> row = tx.QueryRow("SELECT COALESCE(MAX(last_modified), 0) FROM mobile_apps");
    if (!row) return Fail(row.error());
    return tx.Int(0);
  });
}

}  // namespace vppd::store
