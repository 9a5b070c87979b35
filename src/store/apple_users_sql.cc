// The users vppd registers at Apple per location (store::AppleUser), and the
// user events (users/create, users/retire) in flight: the SQL both databases
// share (SqlStore). The table is migration 15 (PostgreSQL: 9).
//
// Layout: 1. the rows  2. the user events' side of RecordAppleEvent and
// CompleteAppleEvent (reconcile_sql.cc calls in)  3. the /users walk's version.
//
// A row moves creating → Registered (the create event completed) → Associated
// (the person accepted the invitation: USER_ASSOCIATED, or GET /users) →
// retiring → Retired; a create Apple refused ends as failed. The sync
// (sync/apple_users.cc) decides; this file only keeps the rows and, for an
// event, moves exactly the rows that name it, in the transaction that ends it.
#include <algorithm>

#include <fmt/format.h>

#include "store/sql_store.h"
#include "store/store_common.h"

namespace vppd::store {
namespace {

constexpr const char* kColumns =
    "client_user_id, user_id, email, status, invite_code, invite_url, id_hash, event_id, error_code, error_message, "
    "updated";

AppleUser ReadAppleUser(const Tx& tx, int first) {
  AppleUser u;
  u.client_user_id = tx.Text(first + 0);
  u.user_id = tx.Text(first + 1);
  u.email = tx.Text(first + 2);
  u.status = tx.Text(first + 3);
  u.invite_code = tx.Text(first + 4);
  u.invite_url = tx.Text(first + 5);
  u.id_hash = tx.Text(first + 6);
  u.event_id = tx.Text(first + 7);
  u.error_code = tx.Text(first + 8);
  u.error_message = tx.Text(first + 9);
  u.updated = tx.Int(first + 10);
  return u;
}

// Apple's answers to a user event that mean the user already is where it should
// be: 9716 a registered user already exists for the clientUserId (a create sent
// again after a crash); 9618 already retired, 9620 already deleted, 9609 no
// such registered user (a retire sent again, or a user Apple removed itself).
bool Harmless(bool create, int error_number) {
  if (create) return error_number == 9716;
  return error_number == 9618 || error_number == 9620 || error_number == 9609;
}

Result<std::vector<AppleUser>> ReadAppleUsers(Tx& tx) {
  std::vector<AppleUser> rows;
  for (;;) {
    Result<bool> row = tx.Next();
    if (!row) return Fail(row.error());
    if (!*row) return rows;
    rows.push_back(ReadAppleUser(tx, 0));
  }
}

}  // namespace

// --- 1. the rows ----------------------------------------------------------------------------

Result<std::vector<AppleUser>> SqlStore::ListAppleUsers(const std::string& tenant_id, const std::string& token_id) {
  return InTx<std::vector<AppleUser>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<AppleUser>> {
    if (Status s = tx.Query(std::string("SELECT ") + kColumns +
                                " FROM apple_users WHERE tenant_id = ?1 AND token_id = ?2 ORDER BY client_user_id",
                            {tenant_id, token_id});
        !s) {
      return Fail(s.error());
    }
    return ReadAppleUsers(tx);
  });
}

Result<std::vector<AppleUser>> SqlStore::AppleUsersNamed(const std::string& tenant_id, const std::string& token_id,
                                                         const std::vector<std::string>& client_user_ids) {
  if (client_user_ids.empty()) return std::vector<AppleUser>{};
  const std::string sql = fmt::format(
      "SELECT {} FROM apple_users WHERE tenant_id = ?1 AND token_id = ?2 AND client_user_id IN ({}) "
      "ORDER BY client_user_id",
      kColumns, JsonValues(3));
  const std::string list = StringsToJson(client_user_ids);
  return InTx<std::vector<AppleUser>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<AppleUser>> {
    if (Status s = tx.Query(sql, {tenant_id, token_id, list}); !s) return Fail(s.error());
    return ReadAppleUsers(tx);
  });
}

Status SqlStore::PutAppleUsers(const std::string& tenant_id, const std::string& token_id,
                               const std::vector<AppleUser>& rows) {
  std::vector<AppleUserUpdate> updates;
  updates.reserve(rows.size());
  for (const AppleUser& r : rows) updates.push_back({std::nullopt, r});
  auto written = WriteAppleUsers(tenant_id, token_id, updates, false);
  if (!written) return Fail(written.error());
  return {};
}

Result<std::vector<std::string>> SqlStore::UpdateAppleUsers(const std::string& tenant_id, const std::string& token_id,
                                                            const std::vector<AppleUserUpdate>& updates) {
  return WriteAppleUsers(tenant_id, token_id, updates, true);
}

// Upserts every `after`, or (`only_unchanged`) each only where the stored row
// is still its `before`: an UPDATE that names every column as read, or an
// INSERT that finds no row.
Result<std::vector<std::string>> SqlStore::WriteAppleUsers(const std::string& tenant_id, const std::string& token_id,
                                                           const std::vector<AppleUserUpdate>& updates,
                                                           bool only_unchanged) {
  std::vector<std::string> left_alone;
  if (updates.empty()) return left_alone;
  for (std::size_t i = 0; i < updates.size(); ++i) {
    const AppleUser& r = updates[i].after;
    if (r.client_user_id.empty() || r.status.empty()) {
      return Fail(Error::InvalidArgument("store: an Apple user needs a clientUserId and a status",
                                         "rows[" + std::to_string(i) + "]"));
    }
    if (updates[i].before && updates[i].before->client_user_id != r.client_user_id) {
      return Fail(Error::InvalidArgument("store: an Apple user's update must keep its clientUserId",
                                         "rows[" + std::to_string(i) + "]"));
    }
  }
  const Timestamp now = clock_.Now();
  return InTx<std::vector<std::string>>(TxKind::kWrite, [&](Tx& tx) -> Result<std::vector<std::string>> {
    left_alone.clear();
    Result<std::int64_t> key = TokenKey(tx, tenant_id, token_id, false);
    if (!key) return Fail(key.error());
    for (const auto& [before, r] : updates) {
      const std::vector<SqlArg> values = {tenant_id,
                                          token_id,
                                          r.client_user_id,
                                          r.user_id,
                                          r.email,
                                          r.status,
                                          r.invite_code,
                                          r.invite_url,
                                          r.id_hash,
                                          r.event_id,
                                          r.error_code,
                                          r.error_message,
                                          r.updated != 0 ? r.updated : now};
      if (!only_unchanged) {
        if (Status s = tx.ExecArgs(
                "INSERT INTO apple_users (tenant_id, token_id, client_user_id, user_id, email, status, invite_code, "
                "invite_url, id_hash, event_id, error_code, error_message, updated) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
                "ON CONFLICT (tenant_id, token_id, client_user_id) DO UPDATE SET user_id = excluded.user_id, "
                "email = excluded.email, status = excluded.status, invite_code = excluded.invite_code, "
                "invite_url = excluded.invite_url, id_hash = excluded.id_hash, event_id = excluded.event_id, "
                "error_code = excluded.error_code, error_message = excluded.error_message, "
                "updated = excluded.updated",
                values);
            !s) {
          return Fail(s.error());
        }
        continue;
      }
      if (!before) {
        if (Status s = tx.ExecArgs(
                "INSERT INTO apple_users (tenant_id, token_id, client_user_id, user_id, email, status, invite_code, "
                "invite_url, id_hash, event_id, error_code, error_message, updated) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
                "ON CONFLICT (tenant_id, token_id, client_user_id) DO NOTHING",
                values);
            !s) {
          return Fail(s.error());
        }
      } else {
        std::vector<SqlArg> args = values;
        for (const SqlArg& a : std::vector<SqlArg>{before->user_id, before->email, before->status, before->invite_code,
                                                   before->invite_url, before->id_hash, before->event_id,
                                                   before->error_code, before->error_message, before->updated}) {
          args.push_back(a);
        }
        if (Status s = tx.ExecArgs(
                "UPDATE apple_users SET user_id = ?4, email = ?5, status = ?6, invite_code = ?7, invite_url = ?8, "
                "id_hash = ?9, event_id = ?10, error_code = ?11, error_message = ?12, updated = ?13 "
                "WHERE tenant_id = ?1 AND token_id = ?2 AND client_user_id = ?3 AND user_id = ?14 AND email = ?15 "
                "AND status = ?16 AND invite_code = ?17 AND invite_url = ?18 AND id_hash = ?19 AND event_id = ?20 "
                "AND error_code = ?21 AND error_message = ?22 AND updated = ?23",
                args);
            !s) {
          return Fail(s.error());
        }
      }
      if (tx.Changes() == 0) left_alone.push_back(r.client_user_id);
    }
    return left_alone;
  });
}

Result<std::vector<std::pair<std::string, AppleUser>>> SqlStore::AppleUsersOfUser(const std::string& tenant_id,
                                                                                  const std::string& user_id) {
  using Rows = std::vector<std::pair<std::string, AppleUser>>;
  return InTx<Rows>(TxKind::kReadOne, [&](Tx& tx) -> Result<Rows> {
    if (Status s = tx.Query(std::string("SELECT token_id, ") + kColumns +
                                " FROM apple_users WHERE tenant_id = ?1 AND user_id = ?2 "
                                "ORDER BY token_id, client_user_id",
                            {tenant_id, user_id});
        !s) {
      return Fail(s.error());
    }
    Rows rows;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return rows;
      rows.emplace_back(tx.Text(0), ReadAppleUser(tx, 1));
    }
  });
}

// --- 2. user events ---------------------------------------------------------------------------

Status SqlStore::MarkUserEvent(Tx& tx, const std::string& tenant_id, const std::string& token_id,
                               const AppleEvent& event, const std::vector<std::string>& client_user_ids,
                               Timestamp now) {
  if (Status s =
          tx.Exec("INSERT INTO apple_events (tenant_id, token_id, event_id, kind, adam_id, pricing_param, serials, "
                  "submitted, next_poll, polls) VALUES (?1, ?2, ?3, ?4, '', '', ?5, ?6, ?7, 0)",
                  {tenant_id, token_id, event.event_id, event.kind, static_cast<std::int64_t>(client_user_ids.size()),
                   event.submitted != 0 ? event.submitted : now, event.next_poll});
      !s) {
    return s;
  }
  const std::string status = event.kind == "createUsers" ? "creating" : "retiring";
  for (const std::string& id : client_user_ids) {
    // The row was written before the request (UpdateAppleUsers); one that was
    // not is made here, so the event's users are never lost. One a notification
    // moved on since (the person accepted) keeps that newer word.
    if (Status s = tx.Exec(
            "INSERT INTO apple_users (tenant_id, token_id, client_user_id, user_id, email, status, invite_code, "
            "invite_url, id_hash, event_id, error_code, error_message, updated) "
            "VALUES (?1, ?2, ?3, '', '', ?4, '', '', '', ?5, '', '', ?6) "
            "ON CONFLICT (tenant_id, token_id, client_user_id) DO UPDATE SET event_id = excluded.event_id, "
            "updated = excluded.updated WHERE apple_users.status = excluded.status AND apple_users.event_id = ''",
            {tenant_id, token_id, id, status, event.event_id, now});
        !s) {
      return s;
    }
  }
  return {};
}

Status SqlStore::SettleUserEvent(Tx& tx, const std::string& tenant_id, const std::string& token_id,
                                 const std::string& event_id, const std::string& kind, const AppleEventOutcome& outcome,
                                 Timestamp now) {
  const bool create = kind == "createUsers";
  const std::string in_flight = create ? "creating" : "retiring";
  // Every row of the event still in flight, or only these clientUserIds.
  auto rows_of = [&](const std::string& set, Tx::Args extra_args, const std::optional<std::string>& id) -> Status {
    std::string sql =
        "UPDATE apple_users SET " + set + " WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3 AND status = ?4";
    std::vector<SqlArg> args = {tenant_id, token_id, event_id, in_flight};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    if (id) {
      sql += " AND client_user_id = ?" + std::to_string(args.size() + 1);
      args.emplace_back(*id);
    }
    return tx.ExecArgs(sql, args);
  };
  // A refused create: failed with Apple's error. A refused retire: still to be
  // retired (sent again by the next pass), with the error to show meanwhile.
  auto set_failed = [&](const std::optional<std::string>& id, const AppleEventOutcome::Failure& f) -> Status {
    const std::string code = std::to_string(f.error_number);
    if (create) {
      return rows_of("status = 'failed', event_id = '', error_code = ?5, error_message = ?6, updated = ?7",
                     {code, f.error_message, now}, id);
    }
    return rows_of("event_id = '', error_code = ?5, error_message = ?6, updated = ?7",
                   {code, "retire failed: " + f.error_message, now}, id);
  };
  const std::string done = create ? "status = 'Registered', event_id = '', error_code = '', error_message = '', "
                                    "updated = ?5"
                                  : "status = 'Retired', event_id = '', invite_code = '', invite_url = '', "
                                    "error_code = '', error_message = '', updated = ?5";
  const AppleEventOutcome::Failure* all =
      outcome.all_failed && !Harmless(create, outcome.all_failed->error_number) ? &*outcome.all_failed : nullptr;
  auto failure_of = [&](const std::string& id) -> const AppleEventOutcome::Failure* {
    if (all != nullptr) return all;
    for (const auto& f : outcome.failures) {
      if (f.client_user_id == id && !Harmless(create, f.error_number)) return &f;
    }
    return nullptr;
  };

  if (outcome.abandoned) {
    // As if never accepted: the next pass sends these users again.
    if (Status s = rows_of("event_id = '', updated = ?5", {now}, std::nullopt); !s) return s;
  } else if (outcome.only_serials) {
    for (const std::string& id : *outcome.only_serials) {
      const AppleEventOutcome::Failure* f = failure_of(id);
      auto code = outcome.invite_codes.find(id);
      Status s = f != nullptr ? set_failed(id, *f)
                 : create && code != outcome.invite_codes.end() && !code->second.empty()
                     ? rows_of(done + ", invite_code = ?6, invite_url = ''", {now, code->second}, id)
                     : rows_of(done, {now}, id);
      if (!s) return s;
    }
    Result<bool> left = tx.QueryRow(
        "SELECT 1 FROM apple_users WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3 AND status = ?4 LIMIT 1",
        {tenant_id, token_id, event_id, in_flight});
    if (!left) return Fail(left.error());
    if (*left) return {};  // its other users are still in flight
  } else {
    if (all != nullptr) {
      if (Status s = set_failed(std::nullopt, *all); !s) return s;
    }
    for (const auto& f : outcome.failures) {
      if (f.client_user_id.empty() || Harmless(create, f.error_number)) continue;
      if (Status s = set_failed(f.client_user_id, f); !s) return s;
    }
    if (Status s = rows_of(done, {now}, std::nullopt); !s) return s;
  }
  return tx.Exec("DELETE FROM apple_events WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3",
                 {tenant_id, token_id, event_id});
}

// --- 3. the /users walk's version ----------------------------------------------------------

Result<std::string> SqlStore::GetAppleUsersVersion(const std::string& tenant_id, const std::string& token_id) {
  return InTx<std::string>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::string> {
    Result<bool> row = tx.QueryRow("SELECT version_id FROM apple_users_versions WHERE tenant_id = ?1 AND token_id = ?2",
                                   {tenant_id, token_id});
    if (!row) return Fail(row.error());
    return *row ? tx.Text(0) : std::string();
  });
}

Status SqlStore::PutAppleUsersVersion(const std::string& tenant_id, const std::string& token_id,
                                      const std::string& version_id) {
  const Timestamp now = clock_.Now();
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    Result<std::int64_t> key = TokenKey(tx, tenant_id, token_id, false);
    if (!key) return Fail(key.error());
    return tx.Exec(
        "INSERT INTO apple_users_versions (tenant_id, token_id, version_id, updated) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT (tenant_id, token_id) DO UPDATE SET version_id = excluded.version_id, "
        "updated = excluded.updated",
        {tenant_id, token_id, version_id, now});
  });
}

}  // namespace vppd::store
