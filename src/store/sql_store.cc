// The Store both databases share (see sql_store.h). Every method is one
// transaction (RunTx); the SQL is the same on SQLite and PostgreSQL, with the
// dialect's words for a row lock where a read-modify-write needs one.
//
// Layout: 1. Tx helpers  2. tenants  3. tokens  4. apps  5. jobs
// 6. FinishJob and the snapshot swap  7. assignment sets (generations)
// 8. this installation.
//
// Lock order (PostgreSQL; SQLite's writer holds the one write lock): tenant,
// token, job. DeleteToken and RemoveTenant delete first and retire assignment
// sets after, so a walk staging concurrently either finished (its new set is
// retired too) or finds its job gone.
//
// Assignment sets: a job's walk stages its rows under a generation of its own
// (state 'staging', invisible to readers); FinishJob repoints the token at it
// ('current'), and the replaced generation becomes 'garbage', which the
// backend's collector deletes in batches. States only move staging → current
// → garbage or staging → garbage; garbage is final.
#include "store/sql_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "store/store_common.h"

namespace vppd::store {

// --- 1. Tx helpers -----------------------------------------------------------------

Status Tx::ExecArgs(std::string_view sql, std::span<const SqlArg> args) {
  if (Status s = QueryArgs(sql, args); !s) return s;
  for (;;) {
    Result<bool> row = Next();
    if (!row) return Fail(row.error());
    if (!*row) return {};
  }
}

Result<bool> Tx::QueryRow(std::string_view sql, Args args) {
  if (Status s = Query(sql, args); !s) return Fail(s.error());
  return Next();
}

namespace {

// Runs `sql` with the values AddTokenParams/AddAppParams hand over. Their text
// may be temporaries (the JSON columns): copied first.
template <class AddParams>
Status ExecWithParams(Tx& tx, const std::string& sql, AddParams&& add_params) {
  constexpr std::size_t kMaxParams = 32;
  std::vector<std::string> texts;
  texts.reserve(kMaxParams);  // never reallocated: the args view its strings
  std::vector<SqlArg> args;
  args.reserve(kMaxParams);
  add_params([&](const auto& value) {
    if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::string_view>) {
      texts.emplace_back(value);
      args.emplace_back(std::string_view(texts.back()));
    } else {
      args.emplace_back(value);
    }
  });
  if (args.size() > kMaxParams) return Fail(Error::Internal("store: too many parameters for one statement"));
  return tx.ExecArgs(sql, args);
}

}  // namespace

SqlStore::SqlStore(Dialect dialect, std::shared_ptr<const SecretBox> secrets, const Clock* clock,
                   std::int64_t max_tokens_per_tenant)
    : dialect_(std::move(dialect)),
      secrets_(std::move(secrets)),
      clock_(clock != nullptr ? *clock : Clock::Real()),
      max_tokens_(max_tokens_per_tenant),
      load_token_sql_(fmt::format("SELECT {} FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2", TokenSelectList())),
      load_token_locked_sql_(load_token_sql_ + dialect_.for_update),
      lock_token_version_sql_(std::string("SELECT row_version FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2") +
                              dialect_.for_update) {}

std::string SqlStore::SetName(std::int64_t generation, const std::string& adam_id) {
  return fmt::format("set {} app {}", generation, adam_id);
}

// --- 2. tenants ---------------------------------------------------------------------

Status SqlStore::PutTenant(const Tenant& tenant) {
  if (Status s = CheckTenantId(tenant.id); !s) return s;
  Timestamp created = tenant.created != 0 ? tenant.created : clock_.Now();
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    // Not INSERT OR REPLACE: REPLACE deletes the old row first, and the delete
    // would cascade to every token of the tenant.
    return tx.Exec(
        "INSERT INTO tenants (id, display_name, intune_licensed, created) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, "
        "intune_licensed = excluded.intune_licensed",
        {tenant.id, tenant.display_name, tenant.intune_licensed, created});
  });
}

Result<Tenant> SqlStore::GetTenant(const std::string& tenant_id) {
  return InTx<Tenant>(TxKind::kReadOne, [&](Tx& tx) -> Result<Tenant> {
    Result<bool> row =
        tx.QueryRow("SELECT id, display_name, intune_licensed, created FROM tenants WHERE id = ?1", {tenant_id});
    if (!row) return Fail(row.error());
    if (!*row) return Fail(TenantNotFound(tenant_id));
    return tx.TenantRow();
  });
}

Result<std::vector<Tenant>> SqlStore::ListTenants() {
  return InTx<std::vector<Tenant>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<Tenant>> {
    if (Status s = tx.Query("SELECT id, display_name, intune_licensed, created FROM tenants ORDER BY id"); !s) {
      return Fail(s.error());
    }
    std::vector<Tenant> tenants;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return tenants;
      tenants.push_back(tx.TenantRow());
    }
  });
}

Status SqlStore::RemoveTenant(const std::string& tenant_id) {
  const std::string lock_tenant = std::string("SELECT 1 FROM tenants WHERE id = ?1") + dialect_.for_update;
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    // The tenant row first: no token can be created in it meanwhile.
    Result<bool> tenant = tx.QueryRow(lock_tenant, {tenant_id});
    if (!tenant) return Fail(tenant.error());
    if (!*tenant) return Fail(TenantNotFound(tenant_id));
    // Tokens go first (apps and jobs by cascade; a staging walk holding a job
    // row is waited for), then every set of theirs, staged ones included,
    // becomes garbage for the collector, so this transaction stays short
    // however many assignments they hold.
    if (Status s = tx.Query("DELETE FROM vpp_tokens WHERE tenant_id = ?1 RETURNING token_key", {tenant_id}); !s) {
      return s;
    }
    std::vector<std::int64_t> token_keys;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) break;
      token_keys.push_back(tx.Int(0));
    }
    for (std::int64_t token_key : token_keys) {
      if (Status s = RetireTokenGenerations(tx, token_key); !s) return s;
    }
    return tx.Exec("DELETE FROM tenants WHERE id = ?1", {tenant_id});
  });
}

// --- 3. tokens ------------------------------------------------------------------------

Result<VppToken> SqlStore::CreateToken(const std::string& tenant_id, VppToken token) {
  // Sealing is pure CPU: done before the transaction.
  Result<std::string> sealed = PrepareNewToken(tenant_id, token, clock_, *secrets_);
  if (!sealed) return Fail(sealed.error());
  const std::string lock_tenant = std::string("SELECT 1 FROM tenants WHERE id = ?1") + dialect_.for_tenant_update;
  return InTx<VppToken>(TxKind::kWrite, [&](Tx& tx) -> Result<VppToken> {
    // Locking the tenant row serialises the creates of one tenant, so two
    // instances cannot both see room for one more token.
    Result<bool> tenant = tx.QueryRow(lock_tenant, {tenant_id});
    if (!tenant) return Fail(tenant.error());
    if (!*tenant) return Fail(TenantNotFound(tenant_id));
    Result<bool> counted = tx.QueryRow(
        "SELECT count(*), count(*) FILTER (WHERE id = ?2) FROM vpp_tokens WHERE tenant_id = ?1", {tenant_id, token.id});
    if (!counted) return Fail(counted.error());
    if (Status s = CheckTokenRoom(token.id, tx.Int(1) != 0, tx.Int(0), max_tokens_); !s) return Fail(s.error());
    const std::optional<std::string> ciphertext = *sealed;  // bound by view: outlives the statement
    if (Status s = ExecWithParams(tx, dialect_.token_insert_sql,
                                  [&](auto&& add) { AddTokenParams(tenant_id, token, ciphertext, add); });
        !s) {
      return Fail(s.error());
    }
    VppToken created = token;
    created.token.clear();  // sealed now; reads never carry it
    return created;
  });
}

Result<VppToken> SqlStore::GetToken(const std::string& tenant_id, const std::string& id) {
  return InTx<VppToken>(TxKind::kReadOne, [&](Tx& tx) { return LoadToken(tx, tenant_id, id, false); });
}

Result<Page<VppToken>> SqlStore::ListTokens(const std::string& tenant_id, const ListQuery& query) {
  if (Status s = CheckPaging(query.skip, query.limit); !s) return Fail(s.error());
  SqlBuilder builder(dialect_.sql);
  Result<std::string> where = TenantWhere(tenant_id, query.filter, Table::kVppTokens, builder);
  if (!where) return Fail(where.error());
  Result<std::string> order = CompileOrderBy(query.order_by, Table::kVppTokens, "id", dialect_.sql);
  if (!order) return Fail(order.error());
  const std::string sql = PageSql(TokenSelectList(), "vpp_tokens", *where, *order, query, builder);
  return ReadPage<VppToken>(sql, builder, query.limit, [](const Tx& row) { return row.TokenRow(); });
}

// One page of the rows of `sql` (PageSql: limit + 1 rows), each read by `read`.
template <class T, class ReadRow>
Result<Page<T>> SqlStore::ReadPage(const std::string& sql, const SqlBuilder& builder, std::int64_t limit,
                                   ReadRow&& read) {
  return InTx<Page<T>>(TxKind::kReadOne, [&](Tx& tx) -> Result<Page<T>> {
    if (Status s = tx.QueryBuilt(sql, builder); !s) return Fail(s.error());
    Page<T> page;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row || !RoomOnPage(page, limit)) return page;
      Result<T> item = read(tx);
      if (!item) return Fail(item.error());
      page.items.push_back(std::move(*item));
    }
  });
}

Result<std::int64_t> SqlStore::Count(const std::string& sql, const SqlBuilder& builder) {
  return InTx<std::int64_t>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::int64_t> {
    if (Status s = tx.QueryBuilt(sql, builder); !s) return Fail(s.error());
    Result<bool> row = tx.Next();
    if (!row) return Fail(row.error());
    return tx.Int(0);
  });
}

Result<std::int64_t> SqlStore::CountTokens(const std::string& tenant_id, const std::optional<Expr>& filter) {
  SqlBuilder builder(dialect_.sql);
  Result<std::string> where = TenantWhere(tenant_id, filter, Table::kVppTokens, builder);
  if (!where) return Fail(where.error());
  return Count(fmt::format("SELECT count(*) FROM vpp_tokens WHERE {}", *where), builder);
}

Result<VppToken> SqlStore::UpdateToken(const std::string& tenant_id, const std::string& id,
                                       const std::function<Status(VppToken&)>& mutate,
                                       std::optional<std::int64_t> if_version) {
  return InTx<VppToken>(TxKind::kWrite, [&](Tx& tx) { return MutateToken(tx, tenant_id, id, mutate, if_version); });
}

Status SqlStore::DeleteToken(const std::string& tenant_id, const std::string& id,
                             std::optional<std::int64_t> if_version) {
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    if (if_version) {
      // The row locked until the DELETE: no write can change its version in between.
      Result<bool> row = tx.QueryRow(lock_token_version_sql_, {tenant_id, id});
      if (!row) return Fail(row.error());
      if (!*row) return Fail(TokenNotFound(id));
      if (Status s = CheckTokenVersion(id, tx.Int(0), if_version); !s) return s;
    }
    // Delete first (apps and jobs by cascade), then the token's sets, current and
    // staged, become garbage for the collector (O(1) here, however many rows).
    Result<bool> row =
        tx.QueryRow("DELETE FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2 RETURNING token_key", {tenant_id, id});
    if (!row) return Fail(row.error());
    if (!*row) return Fail(TokenNotFound(id));
    const std::int64_t token_key = tx.Int(0);
    if (Result<bool> done = tx.Next(); !done) return Fail(done.error());  // the DELETE completes
    return RetireTokenGenerations(tx, token_key);
  });
}

// The token row (`lock`: for a read-modify-write). Its strings are the caller's
// and outlive the row: bound without a copy, as this is every Graph item read.
Result<VppToken> SqlStore::LoadToken(Tx& tx, const std::string& tenant_id, const std::string& id, bool lock) {
  Result<bool> row =
      tx.QueryRow(lock ? load_token_locked_sql_ : load_token_sql_, {SqlArg::Borrowed(tenant_id), SqlArg::Borrowed(id)});
  if (!row) return Fail(row.error());
  if (!*row) return Fail(TokenNotFound(id));
  return tx.TokenRow();
}

// The read-modify-write of UpdateToken, EnqueueJob and FinishJob, inside the
// caller's write transaction; conditional on the token's version when
// `if_version` is set (checked under the row lock LoadToken takes).
Result<VppToken> SqlStore::MutateToken(Tx& tx, const std::string& tenant_id, const std::string& id,
                                       const std::function<Status(VppToken&)>& mutate,
                                       std::optional<std::int64_t> if_version) {
  Result<VppToken> stored = LoadToken(tx, tenant_id, id, true);
  if (!stored) return stored;
  if (Status s = CheckTokenVersion(id, stored->row_version, if_version); !s) return Fail(s.error());
  return ApplyMutate(tx, tenant_id, *stored, mutate);
}

// Applies `mutate` to `stored` (loaded for update in this transaction) and writes
// the result. The token is re-sealed only when `mutate` set a new plaintext;
// otherwise the stored ciphertext is kept (and never opened).
Result<VppToken> SqlStore::ApplyMutate(Tx& tx, const std::string& tenant_id, const VppToken& stored,
                                       const std::function<Status(VppToken&)>& mutate) {
  Result<MutatedToken> mutated = MutateStoredToken(tenant_id, stored, mutate, clock_, *secrets_);
  if (!mutated) return Fail(mutated.error());
  static const std::string update_sql = BuildTokenUpdateSql('?');
  if (Status s = ExecWithParams(tx, update_sql,
                                [&](auto&& add) { AddTokenParams(tenant_id, mutated->token, mutated->sealed, add); });
      !s) {
    return Fail(s.error());
  }
  return std::move(mutated->token);
}

Result<std::int64_t> SqlStore::TokenKey(Tx& tx, const std::string& tenant_id, const std::string& id, bool lock) {
  static const std::string plain = "SELECT token_key FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2";
  Result<bool> row = tx.QueryRow(lock ? plain + dialect_.for_update : plain, {tenant_id, id});
  if (!row) return Fail(row.error());
  if (!*row) return Fail(TokenNotFound(id));
  if (tx.IsNull(0)) return Fail(Error::Internal(fmt::format("store: vpp_token {} has no token_key", id)));
  return tx.Int(0);
}

Result<std::vector<VppToken>> SqlStore::FindTokensByAppleUid(const std::string& tenant_id, const std::string& uid,
                                                             const std::string& except_token_id) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM vpp_tokens WHERE tenant_id = ?1 AND apple_uid = ?2 AND id <> ?3 ORDER BY id", TokenSelectList());
  return InTx<std::vector<VppToken>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<VppToken>> {
    if (Status s = tx.Query(sql, {tenant_id, uid, except_token_id}); !s) return Fail(s.error());
    std::vector<VppToken> tokens;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return tokens;
      Result<VppToken> token = tx.TokenRow();
      if (!token) return Fail(token.error());
      tokens.push_back(std::move(*token));
    }
  });
}

Result<std::string> SqlStore::GetTokenSecret(const std::string& tenant_id, const std::string& id) {
  Result<std::string> sealed = InTx<std::string>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::string> {
    Result<bool> row =
        tx.QueryRow("SELECT token_sealed FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2", {tenant_id, id});
    if (!row) return Fail(row.error());
    if (!*row) return Fail(TokenNotFound(id));
    return tx.Text(0);
  });
  if (!sealed) return sealed;
  // Opened outside the transaction: AES-GCM is pure CPU.
  return OpenTokenSecret(tenant_id, id, *sealed, *secrets_);
}

// --- 4. apps ------------------------------------------------------------------------------

Result<Page<MobileApp>> SqlStore::ListApps(const std::string& tenant_id, const ListQuery& query) {
  if (Status s = CheckPaging(query.skip, query.limit); !s) return Fail(s.error());
  SqlBuilder builder(dialect_.sql);
  Result<std::string> where = TenantWhere(tenant_id, query.filter, Table::kMobileApps, builder);
  if (!where) return Fail(where.error());
  Result<std::string> order = CompileOrderBy(query.order_by, Table::kMobileApps, "id", dialect_.sql);
  if (!order) return Fail(order.error());
  const std::string sql = PageSql(AppSelectList(), "mobile_apps", *where, *order, query, builder);
  return ReadPage<MobileApp>(sql, builder, query.limit,
                             [](const Tx& row) -> Result<MobileApp> { return row.AppRow(); });
}

Result<std::int64_t> SqlStore::CountApps(const std::string& tenant_id, const std::optional<Expr>& filter) {
  SqlBuilder builder(dialect_.sql);
  Result<std::string> where = TenantWhere(tenant_id, filter, Table::kMobileApps, builder);
  if (!where) return Fail(where.error());
  return Count(fmt::format("SELECT count(*) FROM mobile_apps WHERE {}", *where), builder);
}

// Runs a fixed-text statement and collects its rows (AppRow).
Result<std::vector<MobileApp>> SqlStore::QueryApps(Tx& tx, const std::string& sql, Tx::Args args) {
  if (Status s = tx.Query(sql, args); !s) return Fail(s.error());
  std::vector<MobileApp> apps;
  for (;;) {
    Result<bool> row = tx.Next();
    if (!row) return Fail(row.error());
    if (!*row) return apps;
    apps.push_back(tx.AppRow());
  }
}

Result<MobileApp> SqlStore::GetApp(const std::string& tenant_id, const std::string& app_id) {
  static const std::string sql =
      fmt::format("SELECT {} FROM mobile_apps WHERE tenant_id = ?1 AND id = ?2", AppSelectList());
  return InTx<MobileApp>(TxKind::kReadOne, [&](Tx& tx) -> Result<MobileApp> {
    Result<std::vector<MobileApp>> apps = QueryApps(tx, sql, {tenant_id, app_id});
    if (!apps) return Fail(apps.error());
    if (apps->empty()) return Fail(AppNotFound(app_id));
    return std::move(apps->front());
  });
}

Result<Page<LicenseAssignment>> SqlStore::ListAppAssignments(const std::string& tenant_id, const std::string& app_id,
                                                             std::int64_t skip, std::int64_t limit) {
  if (Status s = CheckPaging(skip, limit); !s) return Fail(s.error());
  return InTx<Page<LicenseAssignment>>(TxKind::kRead, [&](Tx& tx) -> Result<Page<LicenseAssignment>> {
    Result<bool> found = tx.QueryRow(
        "SELECT t.assignments_generation, a.adam_id, a.pricing_param FROM mobile_apps a "
        "JOIN vpp_tokens t ON t.tenant_id = a.tenant_id AND t.id = a.token_id "
        "WHERE a.tenant_id = ?1 AND a.id = ?2",
        {tenant_id, app_id});
    if (!found) return Fail(found.error());
    if (!*found) return Fail(AppNotFound(app_id));
    if (tx.IsNull(0)) return Page<LicenseAssignment>();  // the token has no assignments
    // Only the token's current generation: staged and garbage sets are invisible.
    const std::int64_t generation = tx.Int(0);
    const std::string adam_id = tx.Text(1), pricing_param = tx.Text(2);
    return ReadAppAssignments(tx, generation, adam_id, pricing_param, skip, limit);
  });
}

Result<std::vector<MobileApp>> SqlStore::FindAppsByBundleId(const std::string& tenant_id,
                                                            const std::string& bundle_id) {
  if (bundle_id.empty()) return std::vector<MobileApp>{};  // an unknown bundle id is stored as ''
  static const std::string by_bundle = fmt::format(
      "SELECT {} FROM mobile_apps WHERE tenant_id = ?1 AND bundle_id = ?2 ORDER BY token_id, id", AppSelectList());
  static const std::string by_adam = fmt::format(
      "SELECT {} FROM mobile_apps WHERE tenant_id = ?1 AND adam_id = ?2 ORDER BY token_id, id", AppSelectList());
  return InTx<std::vector<MobileApp>>(TxKind::kRead, [&](Tx& tx) -> Result<std::vector<MobileApp>> {
    Result<std::vector<MobileApp>> apps = QueryApps(tx, by_bundle, {tenant_id, bundle_id});
    if (!apps || !apps->empty()) return apps;
    return QueryApps(tx, by_adam, {tenant_id, bundle_id});
  });
}

Result<bool> SqlStore::WalkStep(const std::string& tenant_id, const std::string& token_id,
                                std::optional<std::int64_t>& pinned,
                                FunctionRef<Status(Tx&, std::int64_t)> read_batch) {
  struct Seen {
    bool token_gone = false;
    std::optional<std::int64_t> generation;
  };
  const bool first = !pinned;
  Result<Seen> seen = InTx<Seen>(TxKind::kRead, [&](Tx& tx) -> Result<Seen> {
    Seen out;
    Result<bool> row = tx.QueryRow("SELECT assignments_generation FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2",
                                   {tenant_id, token_id});
    if (!row) return Fail(row.error());
    if (!*row) {
      out.token_gone = true;
      return out;
    }
    if (!tx.IsNull(0)) out.generation = tx.Int(0);
    if (!out.generation || (!first && out.generation != pinned)) return out;
    if (Status s = read_batch(tx, *out.generation); !s) return Fail(s.error());
    return out;
  });
  if (!seen) return Fail(seen.error());
  if (seen->token_gone && first) return Fail(TokenNotFound(token_id));
  if (seen->token_gone || (first && !seen->generation)) return false;
  if (first) pinned = seen->generation;
  if (seen->generation != pinned) return Fail(SetReplacedDuringWalk(token_id));
  return true;
}

// --- 5. jobs -----------------------------------------------------------------------------

Result<Store::Enqueued> SqlStore::EnqueueJob(const std::string& tenant_id, const std::string& token_id,
                                             const EnqueueOptions& options,
                                             const std::function<Status(VppToken&)>& mutate) {
  if (Status s = CheckEnqueueOptions(options); !s) return Fail(s.error());
  static constexpr const char* kQueued =
      "SELECT key, lease_owner, not_before, rerun, params FROM sync_jobs WHERE tenant_id = ?1 AND token_id = ?2 AND "
      "kind = ?3";
  // With run_again, a queued job that is due later than asked, or a running one
  // not yet marked to run again, or one with other params than asked (not
  // empty), needs the write path.
  auto absorbed = [&](Tx& tx) {
    if (!options.run_again) return true;
    if (!options.params.empty() && tx.Text(4) != options.params) return false;
    if (tx.Text(1).empty()) return tx.Int(2) <= options.not_before;
    return tx.Bool(3);
  };
  // Coalescing needs no write: when a job of this kind is already queued or
  // running, answer from one snapshot and leave the write lock to the sync that
  // may be holding it (syncLicenses p99 target 10 ms, bench/README.md). The
  // snapshot is taken after the call began, so the answer is one a write
  // transaction could have given. Otherwise the write path decides.
  Result<std::optional<VppToken>> coalesced =
      InTx<std::optional<VppToken>>(TxKind::kRead, [&](Tx& tx) -> Result<std::optional<VppToken>> {
        Result<bool> queued = tx.QueryRow(kQueued, {tenant_id, token_id, options.kind});
        if (!queued) return Fail(queued.error());
        if (!*queued || !absorbed(tx)) return std::optional<VppToken>();
        Result<VppToken> token = LoadToken(tx, tenant_id, token_id, false);
        if (!token) return Fail(token.error());
        return std::optional<VppToken>(std::move(*token));
      });
  if (coalesced && *coalesced) return Enqueued{std::move(**coalesced), false};
  std::string job_id = NewGuid();
  return InTx<Enqueued>(TxKind::kWrite, [&](Tx& tx) -> Result<Enqueued> {
    // The token row lock comes before the look for a queued job: every enqueue
    // of this token (on any instance) waits here, so the look cannot go stale;
    // the unique index on (tenant, token, kind) would refuse a second job anyway.
    Result<VppToken> locked = LoadToken(tx, tenant_id, token_id, true);
    if (!locked) return Fail(locked.error());
    Result<bool> queued = tx.QueryRow(kQueued, {tenant_id, token_id, options.kind});
    if (!queued) return Fail(queued.error());
    if (*queued) {
      if (!absorbed(tx)) {
        const std::int64_t key = tx.Int(0);
        const bool running = !tx.Text(1).empty();
        // The params asked for last win (the run they ask for has not read them yet).
        const std::string params = options.params.empty() ? tx.Text(4) : options.params;
        if (Status s =
                running
                    ? tx.Exec("UPDATE sync_jobs SET rerun = ?2, params = ?3 WHERE key = ?1", {key, true, params})
                    : tx.Exec(
                          "UPDATE sync_jobs SET not_before = CASE WHEN not_before > ?2 THEN ?2 ELSE not_before END, "
                          "params = ?3 WHERE key = ?1",
                          {key, options.not_before, params});
            !s) {
          return Fail(s.error());
        }
      }
      return Enqueued{std::move(*locked), false};
    }
    Result<VppToken> token = ApplyMutate(tx, tenant_id, *locked, mutate);
    if (!token) return Fail(token.error());
    if (Status s = tx.Exec(
            "INSERT INTO sync_jobs (id, tenant_id, token_id, kind, params, requested, not_before, "
            "attempts, lease_owner, lease_expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, '', 0)",
            {job_id, tenant_id, token_id, options.kind, options.params, token->last_modified, options.not_before});
        !s) {
      return Fail(s.error());
    }
    return Enqueued{std::move(*token), true};
  });
}

std::string SqlStore::JobPickSql(std::string_view extra, std::string_view suffix) const {
  return fmt::format(
      "SELECT {} FROM sync_jobs j "
      "WHERE j.not_before <= ?1 AND (j.lease_owner = '' OR j.lease_expires <= ?1) "
      "AND NOT EXISTS (SELECT 1 FROM sync_jobs o WHERE o.tenant_id = j.tenant_id AND o.token_id = j.token_id "
      "AND o.key <> j.key AND o.lease_owner <> '' AND o.lease_expires > ?1){} "
      "ORDER BY j.requested, j.key LIMIT 1{}",
      kJobSelectList, extra, suffix);
}

Result<std::optional<SyncJob>> SqlStore::ClaimPicked(Tx& tx, std::int64_t key, SyncJob job, const std::string& worker,
                                                     Timestamp expires) {
  const bool taken_over = StampClaim(job, worker, expires);
  // A request to run again is answered by this run, which reads after the claim.
  if (Status s = tx.Exec("UPDATE sync_jobs SET lease_owner = ?2, lease_expires = ?3, attempts = ?4, pages_walked = 0, "
                         "pages_total = 0, assignments_staged = 0, rerun = ?5 WHERE key = ?1",
                         {key, worker, expires, job.attempts, false});
      !s) {
    return Fail(s.error());
  }
  if (taken_over) {
    if (Status s = RetireStaging(tx, key); !s) return Fail(s.error());
  }
  return std::optional<SyncJob>(std::move(job));
}

Result<std::int64_t> SqlStore::CheckLease(Tx& tx, const SyncJob& job) {
  static const std::string plain = "SELECT key, lease_owner, attempts FROM sync_jobs WHERE id = ?1";
  Result<bool> row = tx.QueryRow(plain + dialect_.for_update, {job.id});
  if (!row) return Fail(row.error());
  if (!*row) return Fail(LeaseLost(job, "the job no longer exists"));
  const std::string owner = tx.Text(1);
  if (job.lease_owner.empty() || owner != job.lease_owner || tx.Int(2) != job.attempts) {
    return Fail(LeaseLost(job, owner.empty() ? "it was handed back" : fmt::format("worker '{}' holds it now", owner)));
  }
  return tx.Int(0);
}

Status SqlStore::RenewLease(const SyncJob& job, Timestamp lease_expires) {
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    Result<std::int64_t> key = CheckLease(tx, job);
    if (!key) return Fail(key.error());
    return tx.Exec(
        "UPDATE sync_jobs SET lease_expires = ?2, pages_walked = ?3, pages_total = ?4, assignments_staged = ?5 "
        "WHERE key = ?1",
        {*key, lease_expires, job.pages_walked, job.pages_total, job.assignments_staged});
  });
}

Status SqlStore::ReleaseJob(const SyncJob& job, Timestamp not_before) {
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    Result<std::int64_t> key = CheckLease(tx, job);
    if (!key) return Fail(key.error());
    // Asked to run again meanwhile: due at once.
    if (Status s = tx.Exec("UPDATE sync_jobs SET lease_owner = '', lease_expires = 0, "
                           "not_before = CASE WHEN rerun THEN 0 ELSE CAST(?2 AS BIGINT) END, rerun = ?3 WHERE key = ?1",
                           {*key, not_before, false});
        !s) {
      return s;
    }
    return RetireStaging(tx, *key);
  });
}

Result<std::int64_t> SqlStore::CountJobs() {
  return InTx<std::int64_t>(TxKind::kReadOne, [](Tx& tx) -> Result<std::int64_t> {
    Result<bool> row = tx.QueryRow("SELECT count(*) FROM sync_jobs");
    if (!row) return Fail(row.error());
    return tx.Int(0);
  });
}

Result<std::vector<SyncJob>> SqlStore::FindJobs(const std::string& tenant_id, const std::string& token_id) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM sync_jobs WHERE tenant_id = ?1 AND token_id = ?2 ORDER BY requested, key", kJobSelectList);
  return InTx<std::vector<SyncJob>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<SyncJob>> {
    if (Status s = tx.Query(sql, {tenant_id, token_id}); !s) return Fail(s.error());
    std::vector<SyncJob> jobs;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return jobs;
      jobs.push_back(ReadJobRow(tx));
    }
  });
}

Status SqlStore::ClearStaged(const SyncJob& job) {
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    Result<std::int64_t> key = CheckLease(tx, job);
    if (!key) return Fail(key.error());
    // O(1): the staged set becomes garbage; the next StageAssignments starts a
    // fresh generation.
    return RetireStaging(tx, *key);
  });
}

// Deletes a job; its staged set, if any, becomes garbage.
Status SqlStore::DeleteJob(Tx& tx, std::int64_t job_key) {
  if (Status s = RetireStaging(tx, job_key); !s) return s;
  return tx.Exec("DELETE FROM sync_jobs WHERE key = ?1", {job_key});
}

Result<std::vector<DueToken>> SqlStore::TokensDueForSync(Timestamp before, int limit) {
  using Due = std::vector<DueToken>;
  if (limit < 0) return Fail(Error::InvalidArgument("store: limit must not be negative"));
  return InTx<Due>(TxKind::kReadOne, [&](Tx& tx) -> Result<Due> {
    if (Status s =
            tx.Query("SELECT tenant_id, id, last_sync FROM vpp_tokens t WHERE state = 'valid' AND last_sync < ?1 "
                     "AND NOT EXISTS (SELECT 1 FROM sync_jobs j WHERE j.tenant_id = t.tenant_id "
                     "AND j.token_id = t.id AND j.kind IN ('syncLicenses', 'syncLicenseCounts')) "
                     "ORDER BY last_sync, tenant_id, id LIMIT ?2",
                     {before, limit});
        !s) {
      return Fail(s.error());
    }
    Due due;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return due;
      due.push_back(DueToken{tx.Text(0), tx.Text(1), LastSyncFromDisk(tx.Int(2))});
    }
  });
}

// --- 6. FinishJob and the snapshot swap --------------------------------------------------

Result<VppToken> SqlStore::FinishJob(const SyncJob& job, const std::optional<SyncSnapshot>& snapshot,
                                     const std::function<Status(VppToken&)>& mutate) {
  if (snapshot && snapshot->assignments != SyncSnapshot::Assignments::kKeep) {
    if (Status s = BeforeFinish(job); !s) return Fail(s.error());
  }
  // nullopt from the body: the token is gone; the job's removal still commits.
  Result<std::optional<VppToken>> finished =
      InTx<std::optional<VppToken>>(TxKind::kWrite, [&](Tx& tx) -> Result<std::optional<VppToken>> {
        // Token, then job (the lock order).
        Result<std::int64_t> token_key = TokenKey(tx, job.tenant_id, job.token_id, true);
        if (!token_key) {
          if (token_key.error().code != Code::kNotFound) return Fail(token_key.error());
          // The token is gone, and with it (cascade) the job: NotFound, not a
          // lost lease. A job row left anyway goes, its staging with it.
          Result<bool> row = tx.QueryRow("SELECT key FROM sync_jobs WHERE id = ?1", {job.id});
          if (!row) return Fail(row.error());
          if (*row) {
            if (Status s = DeleteJob(tx, tx.Int(0)); !s) return Fail(s.error());
          }
          return std::optional<VppToken>();
        }
        Result<std::int64_t> job_key = CheckLease(tx, job);
        if (!job_key) return Fail(job_key.error());
        if (snapshot) {
          if (Status s = ApplySnapshot(tx, job, *token_key, *job_key, *snapshot); !s) return Fail(s.error());
        }
        Result<VppToken> token = MutateToken(tx, job.tenant_id, job.token_id, mutate);
        if (!token) return Fail(token.error());
        // Asked to run again while it ran (EnqueueOptions::run_again): queued once more.
        Result<bool> again = tx.QueryRow("SELECT rerun FROM sync_jobs WHERE key = ?1", {*job_key});
        if (!again) return Fail(again.error());
        if (*again && tx.Bool(0)) {
          if (Status s = RetireStaging(tx, *job_key); !s) return Fail(s.error());
          if (Status s = tx.Exec("UPDATE sync_jobs SET lease_owner = '', lease_expires = 0, not_before = 0, "
                                 "rerun = ?2 WHERE key = ?1",
                                 {*job_key, false});
              !s) {
            return Fail(s.error());
          }
          return std::optional<VppToken>(std::move(*token));
        }
        if (Status s = DeleteJob(tx, *job_key); !s) return Fail(s.error());
        return std::optional<VppToken>(std::move(*token));
      });
  if (!finished) return Fail(finished.error());
  if (!*finished) return Fail(TokenNotFound(job.token_id));
  return std::move(**finished);
}

// FinishJob's snapshot, inside its transaction: the token's apps become exactly
// snapshot.apps, and its assignments follow snapshot.assignments.
Status SqlStore::ApplySnapshot(Tx& tx, const SyncJob& job, std::int64_t token_key, std::int64_t job_key,
                               const SyncSnapshot& snapshot) {
  static const std::string existing_sql =
      fmt::format("SELECT {} FROM mobile_apps WHERE tenant_id = ?1 AND token_id = ?2", AppSelectList());
  Result<std::vector<MobileApp>> existing = QueryApps(tx, existing_sql, {job.tenant_id, job.token_id});
  if (!existing) return Fail(existing.error());
  const AppChanges changes = DiffSnapshotApps(std::move(*existing), snapshot.apps, job.token_id, clock_.Now());
  for (const std::string& id : changes.removed_ids) {
    if (Status s = tx.Exec("DELETE FROM mobile_apps WHERE tenant_id = ?1 AND token_id = ?2 AND id = ?3",
                           {job.tenant_id, job.token_id, id});
        !s) {
      return s;
    }
  }
  static const std::string upsert_sql = BuildAppUpsertSql('?');
  for (const MobileApp& app : changes.written) {
    if (Status s = ExecWithParams(tx, upsert_sql, [&](auto&& add) { AddAppParams(job.tenant_id, app, add); }); !s) {
      return s;
    }
  }

  using Mode = SyncSnapshot::Assignments;
  // kKeep: the staged set, if any, goes with the job (DeleteJob).
  if (snapshot.assignments == Mode::kKeep) return {};
  Result<std::optional<std::int64_t>> current = CurrentGeneration(tx, token_key);
  if (!current) return Fail(current.error());
  Result<std::optional<std::int64_t>> staged = FindStagingGeneration(tx, job_key);
  if (!staged) return Fail(staged.error());
  // Repointing is O(1) whatever the sizes: the staged set becomes the token's
  // and the replaced one garbage. A merge into a token without assignments is
  // the same move.
  if (snapshot.assignments == Mode::kReplaceWithStaged || !*current) {
    if (*staged) {
      if (Status s = PrepareStagedSet(tx, **staged); !s) return s;
    }
    if (Status s = PromoteStaged(tx, token_key, *staged); !s) return s;
    if (*current) {
      if (Status s = RetireGeneration(tx, **current); !s) return s;
    }
    if (snapshot.assignments == Mode::kMergeStaged) return CheckMergedCounts(tx, *staged, snapshot.apps);
    return {};
  }
  if (*staged) {
    if (Status s = MergeDelta(tx, **current, **staged, snapshot.apps); !s) return s;
  }
  return CheckMergedCounts(tx, *current, snapshot.apps);
}

// After a delta merge, every app's stored assignments must number what Apple
// counts (used_licenses); a difference means the delta missed something (a
// removal, a page) and the caller must walk everything. `generation` is the
// token's set after the merge (nullopt: empty). The counts come from
// assignment_counts (one row per asset), not from the rows.
Status SqlStore::CheckMergedCounts(Tx& tx, std::optional<std::int64_t> generation, const std::vector<MobileApp>& apps) {
  // 0: no generation has it
  Result<std::map<std::pair<std::string, std::string>, std::int64_t>> stored = StoredCounts(tx, generation.value_or(0));
  if (!stored) return Fail(stored.error());
  return CheckDeltaCounts(*stored, apps);
}

Result<std::map<std::pair<std::string, std::string>, std::int64_t>> SqlStore::StoredCounts(Tx& tx,
                                                                                           std::int64_t generation) {
  if (Status s =
          tx.Query("SELECT adam_id, pricing_param, rows FROM assignment_counts WHERE generation = ?1", {generation});
      !s) {
    return Fail(s.error());
  }
  std::map<std::pair<std::string, std::string>, std::int64_t> stored;
  for (;;) {
    Result<bool> row = tx.Next();
    if (!row) return Fail(row.error());
    if (!*row) return stored;
    stored[{tx.Text(0), tx.Text(1)}] = tx.Int(2);
  }
}

// --- 7. assignment sets (generations) ----------------------------------------------------
//
// Every helper below runs inside the caller's write transaction.

// The token's current generation; nullopt when it has no assignments.
Result<std::optional<std::int64_t>> SqlStore::CurrentGeneration(Tx& tx, std::int64_t token_key) {
  Result<bool> row = tx.QueryRow("SELECT assignments_generation FROM vpp_tokens WHERE token_key = ?1", {token_key});
  if (!row) return Fail(row.error());
  if (!*row || tx.IsNull(0)) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(tx.Int(0));
}

// The generation job `job_key` is staging into; nullopt before its first row.
Result<std::optional<std::int64_t>> SqlStore::FindStagingGeneration(Tx& tx, std::int64_t job_key) {
  Result<bool> row =
      tx.QueryRow("SELECT generation FROM assignment_generations WHERE job_key = ?1 AND state = 'staging'", {job_key});
  if (!row) return Fail(row.error());
  if (!*row) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(tx.Int(0));
}

Result<std::int64_t> SqlStore::StagingGeneration(Tx& tx, const SyncJob& job, std::int64_t job_key) {
  Result<std::optional<std::int64_t>> found = FindStagingGeneration(tx, job_key);
  if (!found) return Fail(found.error());
  if (*found) return **found;
  Result<std::int64_t> token_key = TokenKey(tx, job.tenant_id, job.token_id, false);
  if (!token_key) return Fail(token_key.error());
  Result<bool> row = tx.QueryRow(
      "INSERT INTO assignment_generations (token_key, job_key, state) VALUES (?1, ?2, 'staging') "
      "RETURNING generation",
      {*token_key, job_key});
  if (!row) return Fail(row.error());
  if (!*row) return Fail(Error::Internal("store: INSERT ... RETURNING generation returned no row"));
  const std::int64_t generation = tx.Int(0);
  if (Result<bool> done = tx.Next(); !done) return Fail(done.error());  // the insert completes
  return generation;
}

// Makes `staged` (nullopt: no rows, the empty set) the token's current set.
Status SqlStore::PromoteStaged(Tx& tx, std::int64_t token_key, std::optional<std::int64_t> staged) {
  if (staged) {
    if (Status s = tx.Exec("UPDATE assignment_generations SET state = 'current', job_key = NULL WHERE generation = ?1",
                           {*staged});
        !s) {
      return s;
    }
    NoteNewSet();
  }
  SqlArg set = staged ? SqlArg(*staged) : SqlArg(std::nullopt);
  return tx.Exec("UPDATE vpp_tokens SET assignments_generation = ?2 WHERE token_key = ?1", {token_key, set});
}

Status SqlStore::RetireGeneration(Tx& tx, std::int64_t generation) {
  if (Status s = tx.Exec("UPDATE assignment_generations SET state = 'garbage', job_key = NULL WHERE generation = ?1",
                         {generation});
      !s) {
    return s;
  }
  NoteGarbage();
  return {};
}

// The job's staged set, if any, becomes garbage (a walk restart, a hand-back, a
// dead worker's job re-claimed, the job's end).
Status SqlStore::RetireStaging(Tx& tx, std::int64_t job_key) {
  if (Status s = tx.Exec("UPDATE assignment_generations SET state = 'garbage', job_key = NULL WHERE job_key = ?1 AND "
                         "state = 'staging'",
                         {job_key});
      !s) {
    return s;
  }
  if (tx.Changes() > 0) NoteGarbage();
  return {};
}

// Every set of the token, current and staged, becomes garbage (the token goes).
Status SqlStore::RetireTokenGenerations(Tx& tx, std::int64_t token_key) {
  if (Status s = tx.Exec("UPDATE assignment_generations SET state = 'garbage', job_key = NULL WHERE token_key = ?1 "
                         "AND state <> 'garbage'",
                         {token_key});
      !s) {
    return s;
  }
  if (tx.Changes() > 0) NoteGarbage();
  return {};
}

Status SqlStore::Reconcile() {
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    std::int64_t found = 0;
    // A staging set whose job is gone; a 'current' set no token points at.
    for (const char* sql : {
             "UPDATE assignment_generations SET state = 'garbage', job_key = NULL WHERE state = 'staging' "
             "AND job_key NOT IN (SELECT key FROM sync_jobs)",
             "UPDATE assignment_generations SET state = 'garbage' WHERE state = 'current' AND generation NOT IN "
             "(SELECT assignments_generation FROM vpp_tokens WHERE assignments_generation IS NOT NULL)",
         }) {
      if (Status s = tx.Exec(sql); !s) return s;
      found += tx.Changes();
    }
    Result<std::int64_t> adopted = AdoptUnknownSets(tx);
    if (!adopted) return Fail(adopted.error());
    found += *adopted;
    // Counts of sets the registry does not know (there should be none).
    if (Status s = tx.Exec(
            "DELETE FROM assignment_counts WHERE generation NOT IN (SELECT generation FROM assignment_generations)");
        !s) {
      return s;
    }
    if (found > 0) spdlog::warn("store: {} unaccounted assignment set(s) found at open; collecting them", found);
    return {};
  });
}

// --- 8. this installation ------------------------------------------------------------------

Result<std::string> SqlStore::InstallationId(const std::string& proposed) {
  if (Status s = CheckProposedInstallationId(proposed); !s) return Fail(s.error());
  // SQLite: BEGIN IMMEDIATE holds the write lock from the insert to the read.
  // PostgreSQL (READ COMMITTED): an insert that meets another instance's
  // uncommitted row waits for it to commit and then does nothing, and the
  // SELECT (a new snapshot) sees that row. Either way, instances starting
  // together all return the first id stored.
  return InTx<std::string>(TxKind::kWrite, [&](Tx& tx) -> Result<std::string> {
    if (Status s = tx.Exec("INSERT INTO vppd_settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                           {kInstallationIdSetting, proposed});
        !s) {
      return Fail(s.error());
    }
    Result<bool> row = tx.QueryRow("SELECT value FROM vppd_settings WHERE name = ?1", {kInstallationIdSetting});
    if (!row) return Fail(row.error());
    if (!*row) return Fail(Error::Internal("store: the installation id vanished while it was written"));
    return CheckedStoredInstallationId(tx.Text(0));
  });
}

}  // namespace vppd::store
