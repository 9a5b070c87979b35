// The PostgreSQL implementation of store::Store, for one or more vppd instances
// sharing one database. Its semantics are the SQLite store's (sqlite_store.cc);
// what differs is how they are kept when several processes write at once.
//
// Transactions: every method is one transaction on a pooled connection. Writes
// run at READ COMMITTED and take the row locks their read-modify-write needs
// (the token FOR UPDATE, the tenant row when counting its tokens, the job row
// when checking a lease), so no update is lost and no check goes stale; a
// transaction that loses a race anyway (serialization failure 40001, deadlock
// 40P01) is retried from the start, up to kMaxAttempts times, so a `mutate`
// callback may run more than once (each time on freshly read data). Reads of
// several statements run at REPEATABLE READ READ ONLY (one snapshot); a read of
// one statement runs alone (a statement always sees one snapshot).
//
// Lock order, to keep deadlocks (retried, but slow) rare: tenant, token, job.
// DeleteToken and RemoveTenant delete first and retire assignment sets after,
// so a walk staging concurrently either finished (its new set is retired too)
// or finds its job gone.
//
// Jobs across instances: ClaimJob picks with FOR UPDATE SKIP LOCKED, so
// concurrent claimers never wait for nor take the same row, then takes a
// transaction-scoped advisory lock on the job's token and looks again for a
// live lease on another job of that token: two instances can never both start a
// job of one token. EnqueueJob locks the token row before it looks for a queued
// job, so coalescing is race-free and the unique index (one job per token and
// kind) is never hit.
//
// Assignment sets (generations), staging and the collector work as in the
// SQLite store; the collector of each instance picks garbage sets with SKIP
// LOCKED, so several collectors share the work instead of colliding.
#include <atomic>
#include <chrono>
#include <map>
#include <span>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "store/collector.h"
#include "store/filter_sql.h"
#include "store/pg_db.h"
#include "store/pg_migrations.h"
#include "store/store.h"
#include "store/store_common.h"

namespace vppd::store {
namespace {

using pg::Connection;
using pg::Params;
using pg::Rows;

constexpr int kMaxConnections = 256;
// A transaction that lost a race (40001, 40P01) is tried this many times in all.
constexpr int kMaxAttempts = 6;
// Rows per staging transaction (one INSERT ... unnest statement each).
constexpr std::size_t kStageChunkRows = 10000;
// The collector's ANALYZE after a new set (see NoteNewSet) runs at most this often.
constexpr auto kAnalyzeInterval = std::chrono::seconds(30);
// ClaimJob looks at most this many candidates whose token is busy before it gives up.
constexpr std::size_t kMaxClaimCandidates = 64;

// --- SQL of vpp_tokens ($1 tenant_id, $2 id, then kTokenDataColumns) ----------------

const std::string& TokenInsertSql() {
  static const std::string sql = [] {
    auto [cols, values] = TokenInsertLists('$');
    return fmt::format("INSERT INTO vpp_tokens ({}) VALUES ({})", cols, values);
  }();
  return sql;
}

const std::string& TokenUpdateSql() {
  static const std::string sql = BuildTokenUpdateSql('$');
  return sql;
}

Params TokenParams(const std::string& tenant_id, const VppToken& t, const std::optional<std::string>& sealed) {
  Params p;
  AddTokenParams(tenant_id, t, sealed, [&p](const auto& value) { p.Add(value); });
  return p;
}

// Row `i` of `rows`, as the row readers of store_common.h take a row.
struct PgRow {
  const Rows& rows;
  int i;
  std::string Text(int col) const { return rows.Text(i, col); }
  std::optional<std::string> OptText(int col) const { return rows.OptText(i, col); }
  std::int64_t Int(int col) const { return rows.Int(i, col); }
  bool Bool(int col) const { return rows.Bool(i, col); }
};

Result<VppToken> ReadToken(const Rows& r, int i) { return ReadTokenRow(PgRow{r, i}); }

// --- SQL of mobile_apps ($1 tenant_id, then kAppColumns) ------------------------------

const std::string& AppInsertSql() {
  static const std::string sql = BuildAppInsertSql('$');
  return sql;
}

MobileApp ReadApp(const Rows& r, int i) { return ReadAppRow(PgRow{r, i}); }

Params AppParams(const std::string& tenant_id, const MobileApp& a) {
  Params p;
  AddAppParams(tenant_id, a, [&p](const auto& value) { p.Add(value); });
  return p;
}

std::vector<MobileApp> ReadApps(const Rows& r) {
  std::vector<MobileApp> apps;
  apps.reserve(static_cast<std::size_t>(r.size()));
  for (int i = 0; i < r.size(); ++i) apps.push_back(ReadApp(r, i));
  return apps;
}

SyncJob ReadJob(const Rows& r, int i) { return ReadJobRow(PgRow{r, i}); }

// --- parameters -------------------------------------------------------------------------

// A PostgreSQL array literal of text ('{"a","b"}'), for unnest() and ANY(): one
// parameter instead of thousands. Elements are quoted, `"` and `\` escaped.
std::string TextArray(const std::vector<const std::string*>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char ch : *items[i]) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  return out + "}";
}

std::string IntArray(const std::vector<std::int64_t>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) out += fmt::format("{}{}", i > 0 ? "," : "", items[i]);
  return out + "}";
}

Params BuilderParams(const SqlBuilder& builder) {
  Params p;
  for (const sqlite::SqlValue& v : builder.params()) {
    std::visit(
        [&p](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::monostate>) {
            p.Add(std::nullopt);
          } else {
            p.Add(x);
          }
        },
        v);
  }
  return p;
}

// Set by a transaction body that made garbage (see NoteGarbage); a transaction
// runs on one thread from BEGIN to COMMIT.
thread_local bool t_garbage_made = false;
// Set by a transaction body that made a new assignment set current (see NoteNewSet).
thread_local bool t_set_promoted = false;

class PgStore final : public Store {
 public:
  PgStore(const PostgresOptions& options, std::unique_ptr<pg::Pool> pool)
      : secrets_(options.secrets),
        clock_(options.clock != nullptr ? *options.clock : Clock::Real()),
        max_tokens_(options.max_tokens_per_tenant),
        pool_(std::move(pool)),
        collector_([this] { return Write<CollectStep>([](Connection& c) { return CollectBatch(c); }); },
                   [this] { return AnalyzeIfWanted(); }) {}

  ~PgStore() override { collector_.Stop(); }

  void StartCollector() { collector_.Start(); }

  // At open: turns whatever could be unaccounted for into garbage (see the SQLite
  // store's Reconcile), and moves the generation numbers past every number in
  // the tables, so a new set never meets rows of an old one.
  Status Reconcile() {
    return Write<void>([&](Connection& c) -> Status {
      std::int64_t found = 0;
      for (const char* sql : {
               "UPDATE assignment_generations SET state = 'garbage', job_key = NULL WHERE state = 'staging' "
               "AND NOT EXISTS (SELECT 1 FROM sync_jobs j WHERE j.key = assignment_generations.job_key)",
               "UPDATE assignment_generations SET state = 'garbage' WHERE state = 'current' AND NOT EXISTS "
               "(SELECT 1 FROM vpp_tokens t WHERE t.assignments_generation = assignment_generations.generation)",
               // Rows of a generation the registry does not know: the distinct
               // generations by a walk over the primary key (one seek each).
               "WITH RECURSIVE gens (g) AS ("
               "  SELECT min(generation) FROM license_assignments"
               "  UNION ALL"
               "  SELECT (SELECT min(generation) FROM license_assignments WHERE generation > g) FROM gens"
               "  WHERE g IS NOT NULL) "
               "INSERT INTO assignment_generations (generation, token_key, job_key, state) "
               "SELECT g, 0, NULL, 'garbage' FROM gens WHERE g IS NOT NULL AND NOT EXISTS "
               "(SELECT 1 FROM assignment_generations a WHERE a.generation = g) ON CONFLICT DO NOTHING",
           }) {
        Result<Rows> r = c.Exec(sql);
        if (!r) return Fail(r.error());
        found += r->affected();
      }
      Result<Rows> counts = c.Exec(
          "DELETE FROM assignment_counts k WHERE NOT EXISTS "
          "(SELECT 1 FROM assignment_generations g WHERE g.generation = k.generation)");
      if (!counts) return Fail(counts.error());
      Result<Rows> sequence = c.Exec(
          "SELECT setval(s.seq, m.top) FROM "
          "(SELECT pg_get_serial_sequence('assignment_generations', 'generation')::regclass AS seq) s, "
          "(SELECT greatest((SELECT max(generation) FROM assignment_generations), "
          "(SELECT max(generation) FROM license_assignments)) AS top) m "
          "WHERE m.top IS NOT NULL AND m.top > coalesce(pg_sequence_last_value(s.seq), 0)");
      if (!sequence) return Fail(sequence.error());
      if (found > 0) spdlog::warn("store: {} unaccounted assignment set(s) found at open; collecting them", found);
      return {};
    });
  }

  // --- tenants ---

  Status PutTenant(const Tenant& tenant) override {
    if (Status s = CheckTenantId(tenant.id); !s) return s;
    Timestamp created = tenant.created != 0 ? tenant.created : clock_.Now();
    return Write<void>([&](Connection& c) -> Status {
      Result<Rows> r = c.Exec(
          "INSERT INTO tenants (id, display_name, intune_licensed, created) VALUES ($1, $2, $3, $4) "
          "ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, "
          "intune_licensed = excluded.intune_licensed",
          Params(tenant.id, tenant.display_name, tenant.intune_licensed, std::int64_t{created}));
      if (!r) return Fail(r.error());
      return {};
    });
  }

  Result<Tenant> GetTenant(const std::string& tenant_id) override {
    return ReadOne<Tenant>([&](Connection& c) -> Result<Tenant> {
      Result<Rows> r =
          c.Exec("SELECT id, display_name, intune_licensed, created FROM tenants WHERE id = $1", Params(tenant_id));
      if (!r) return Fail(r.error());
      if (r->empty()) return Fail(TenantNotFound(tenant_id));
      return ReadTenant(*r, 0);
    });
  }

  Result<std::vector<Tenant>> ListTenants() override {
    return ReadOne<std::vector<Tenant>>([&](Connection& c) -> Result<std::vector<Tenant>> {
      Result<Rows> r = c.Exec("SELECT id, display_name, intune_licensed, created FROM tenants ORDER BY id");
      if (!r) return Fail(r.error());
      std::vector<Tenant> tenants;
      for (int i = 0; i < r->size(); ++i) tenants.push_back(ReadTenant(*r, i));
      return tenants;
    });
  }

  Status RemoveTenant(const std::string& tenant_id) override {
    return Write<void>([&](Connection& c) -> Status {
      // The tenant row first: no token can be created in it meanwhile.
      Result<Rows> tenant = c.Exec("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", Params(tenant_id));
      if (!tenant) return Fail(tenant.error());
      if (tenant->empty()) return Fail(TenantNotFound(tenant_id));
      // Tokens go first (apps and jobs by cascade; a staging walk holding a job
      // row is waited for), then every set of theirs, staged ones included,
      // becomes garbage: see the lock order above.
      Result<Rows> keys = c.Exec("DELETE FROM vpp_tokens WHERE tenant_id = $1 RETURNING token_key", Params(tenant_id));
      if (!keys) return Fail(keys.error());
      std::vector<std::int64_t> token_keys;
      for (int i = 0; i < keys->size(); ++i) token_keys.push_back(keys->Int(i, 0));
      if (!token_keys.empty()) {
        Result<Rows> retired = c.Exec(
            "UPDATE assignment_generations SET state = 'garbage', job_key = NULL WHERE state <> 'garbage' "
            "AND token_key = ANY($1::bigint[])",
            Params(IntArray(token_keys)));
        if (!retired) return Fail(retired.error());
        if (retired->affected() > 0) NoteGarbage();
      }
      Result<Rows> gone = c.Exec("DELETE FROM tenants WHERE id = $1", Params(tenant_id));
      if (!gone) return Fail(gone.error());
      return {};
    });
  }

  // --- tokens ---

  Result<VppToken> CreateToken(const std::string& tenant_id, VppToken token) override {
    Result<std::string> sealed = PrepareNewToken(tenant_id, token, clock_, *secrets_);
    if (!sealed) return Fail(sealed.error());
    return Write<VppToken>([&](Connection& c) -> Result<VppToken> {
      // Locking the tenant row serialises the creates of one tenant, so two
      // instances cannot both see room for one more token. NO KEY UPDATE does
      // not block the foreign-key checks of other writes.
      Result<Rows> tenant = c.Exec("SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE", Params(tenant_id));
      if (!tenant) return Fail(tenant.error());
      if (tenant->empty()) return Fail(TenantNotFound(tenant_id));
      Result<Rows> count =
          c.Exec("SELECT count(*), count(*) FILTER (WHERE id = $2) FROM vpp_tokens WHERE tenant_id = $1",
                 Params(tenant_id, token.id));
      if (!count) return Fail(count.error());
      if (Status s = CheckTokenRoom(token.id, count->Int(0, 1) != 0, count->Int(0, 0), max_tokens_); !s) {
        return Fail(s.error());
      }
      Result<Rows> insert = c.Exec(TokenInsertSql(), TokenParams(tenant_id, token, *sealed));
      if (!insert) return Fail(insert.error());
      VppToken created = token;
      created.token.clear();  // sealed now; reads never carry it
      return created;
    });
  }

  Result<VppToken> GetToken(const std::string& tenant_id, const std::string& id) override {
    return ReadOne<VppToken>([&](Connection& c) { return LoadToken(c, tenant_id, id, false); });
  }

  Result<Page<VppToken>> ListTokens(const std::string& tenant_id, const ListQuery& query) override {
    if (Status s = CheckPaging(query.skip, query.limit); !s) return Fail(s.error());
    SqlBuilder builder(SqlDialect::kPostgres);
    Result<std::string> where = TenantWhere(tenant_id, query.filter, Table::kVppTokens, builder);
    if (!where) return Fail(where.error());
    Result<std::string> order = CompileOrderBy(query.order_by, Table::kVppTokens, "id", SqlDialect::kPostgres);
    if (!order) return Fail(order.error());
    return ReadPage<VppToken>(TokenSelectList(), "vpp_tokens", *where, *order, query, builder,
                              [](const Rows& r, int i) { return ReadToken(r, i); });
  }

  template <class T, class ReadRow>
  Result<Page<T>> ReadPage(const std::string& select_list, const char* table, const std::string& where,
                           const std::string& order, const ListQuery& query, SqlBuilder& builder, ReadRow&& read) {
    const std::string sql = PageSql(select_list, table, where, order, query, builder);
    Params params = BuilderParams(builder);
    return ReadOne<Page<T>>([&](Connection& c) -> Result<Page<T>> {
      Result<Rows> r = c.ExecDynamic(sql, params);
      if (!r) return Fail(r.error());
      Page<T> page;
      for (int i = 0; i < r->size() && RoomOnPage(page, query.limit); ++i) {
        Result<T> item = read(*r, i);
        if (!item) return Fail(item.error());
        page.items.push_back(std::move(*item));
      }
      return page;
    });
  }

  Result<std::int64_t> CountTokens(const std::string& tenant_id, const std::optional<Expr>& filter) override {
    SqlBuilder builder(SqlDialect::kPostgres);
    Result<std::string> where = TenantWhere(tenant_id, filter, Table::kVppTokens, builder);
    if (!where) return Fail(where.error());
    return Count(fmt::format("SELECT count(*) FROM vpp_tokens WHERE {}", *where), builder);
  }

  Result<VppToken> UpdateToken(const std::string& tenant_id, const std::string& id,
                               const std::function<Status(VppToken&)>& mutate) override {
    return Write<VppToken>([&](Connection& c) { return MutateToken(c, tenant_id, id, mutate); });
  }

  Status DeleteToken(const std::string& tenant_id, const std::string& id) override {
    return Write<void>([&](Connection& c) -> Status {
      // Delete first (apps and jobs by cascade), then retire the token's sets:
      // see the lock order above.
      Result<Rows> r =
          c.Exec("DELETE FROM vpp_tokens WHERE tenant_id = $1 AND id = $2 RETURNING token_key", Params(tenant_id, id));
      if (!r) return Fail(r.error());
      if (r->empty()) return Fail(TokenNotFound(id));
      return RetireTokenGenerations(c, r->Int(0, 0));
    });
  }

  // --- apps and licenses ---

  Result<Page<MobileApp>> ListApps(const std::string& tenant_id, const ListQuery& query) override {
    if (Status s = CheckPaging(query.skip, query.limit); !s) return Fail(s.error());
    SqlBuilder builder(SqlDialect::kPostgres);
    Result<std::string> where = TenantWhere(tenant_id, query.filter, Table::kMobileApps, builder);
    if (!where) return Fail(where.error());
    Result<std::string> order = CompileOrderBy(query.order_by, Table::kMobileApps, "id", SqlDialect::kPostgres);
    if (!order) return Fail(order.error());
    return ReadPage<MobileApp>(AppSelectList(), "mobile_apps", *where, *order, query, builder,
                               [](const Rows& r, int i) -> Result<MobileApp> { return ReadApp(r, i); });
  }

  Result<std::int64_t> CountApps(const std::string& tenant_id, const std::optional<Expr>& filter) override {
    SqlBuilder builder(SqlDialect::kPostgres);
    Result<std::string> where = TenantWhere(tenant_id, filter, Table::kMobileApps, builder);
    if (!where) return Fail(where.error());
    return Count(fmt::format("SELECT count(*) FROM mobile_apps WHERE {}", *where), builder);
  }

  Result<MobileApp> GetApp(const std::string& tenant_id, const std::string& app_id) override {
    static const std::string sql =
        fmt::format("SELECT {} FROM mobile_apps WHERE tenant_id = $1 AND id = $2", AppSelectList());
    return ReadOne<MobileApp>([&](Connection& c) -> Result<MobileApp> {
      Result<Rows> r = c.Exec(sql, Params(tenant_id, app_id));
      if (!r) return Fail(r.error());
      if (r->empty()) return Fail(AppNotFound(app_id));
      return ReadApp(*r, 0);
    });
  }

  Result<Page<LicenseAssignment>> ListAppAssignments(const std::string& tenant_id, const std::string& app_id,
                                                     std::int64_t skip, std::int64_t limit) override {
    if (Status s = CheckPaging(skip, limit); !s) return Fail(s.error());
    return Read<Page<LicenseAssignment>>([&](Connection& c) -> Result<Page<LicenseAssignment>> {
      Result<Rows> app = c.Exec(
          "SELECT t.assignments_generation, a.adam_id, a.pricing_param FROM mobile_apps a "
          "JOIN vpp_tokens t ON t.tenant_id = a.tenant_id AND t.id = a.token_id "
          "WHERE a.tenant_id = $1 AND a.id = $2",
          Params(tenant_id, app_id));
      if (!app) return Fail(app.error());
      if (app->empty()) return Fail(AppNotFound(app_id));
      Page<LicenseAssignment> page;
      if (app->IsNull(0, 0)) return page;  // the token has no assignments
      std::int64_t generation = app->Int(0, 0);
      std::string adam_id = app->Text(0, 1), pricing_param = app->Text(0, 2);
      Result<Rows> rows = c.Exec(
          "SELECT client_user_id, serial_number FROM license_assignments "
          "WHERE generation = $1 AND adam_id = $2 AND pricing_param = $3 "
          "ORDER BY serial_number, client_user_id LIMIT $4 OFFSET $5",
          Params(generation, adam_id, pricing_param, std::int64_t{limit + 1}, std::int64_t{skip}));
      if (!rows) return Fail(rows.error());
      for (int i = 0; i < rows->size() && RoomOnPage(page, limit); ++i) {
        page.items.push_back({adam_id, pricing_param, rows->Text(i, 0), rows->Text(i, 1)});
      }
      return page;
    });
  }

  Status ForEachAssignment(const std::string& tenant_id, const std::string& token_id, std::size_t batch,
                           const std::function<Status(const std::vector<LicenseAssignment>&)>& on_batch) override {
    if (Status s = CheckBatchSize(batch); !s) return s;
    // Keyset pagination on the primary key, each batch a read of its own (one
    // snapshot) that also checks the token still points at the set the walk
    // began with (see Store::ForEachAssignment and the SQLite store).
    struct Batch {
      bool token_gone = false;
      std::optional<std::int64_t> generation;
      std::vector<LicenseAssignment> rows;
    };
    static const std::string token_sql =
        "SELECT assignments_generation FROM vpp_tokens WHERE tenant_id = $1 AND id = $2";
    static const std::string first_sql =
        "SELECT adam_id, pricing_param, client_user_id, serial_number FROM license_assignments "
        "WHERE generation = $1 ORDER BY adam_id, pricing_param, serial_number, client_user_id LIMIT $2";
    static const std::string next_sql =
        "SELECT adam_id, pricing_param, client_user_id, serial_number FROM license_assignments WHERE generation = $1 "
        "AND (adam_id, pricing_param, serial_number, client_user_id) > ($3::text, $4::text, $5::text, $6::text) "
        "ORDER BY adam_id, pricing_param, serial_number, client_user_id LIMIT $2";
    std::optional<std::int64_t> pinned;
    std::optional<LicenseAssignment> last;
    for (bool first = true;; first = false) {
      Result<Batch> got = Read<Batch>([&](Connection& c) -> Result<Batch> {
        Batch out;
        Result<Rows> token = c.Exec(token_sql, Params(tenant_id, token_id));
        if (!token) return Fail(token.error());
        if (token->empty()) {
          out.token_gone = true;
          return out;
        }
        if (!token->IsNull(0, 0)) out.generation = token->Int(0, 0);
        if (!out.generation || (!first && out.generation != pinned)) return out;
        Result<Rows> r = last ? c.Exec(next_sql, Params(*out.generation, batch, last->adam_id, last->pricing_param,
                                                        last->serial_number, last->client_user_id))
                              : c.Exec(first_sql, Params(*out.generation, batch));
        if (!r) return Fail(r.error());
        out.rows.reserve(static_cast<std::size_t>(r->size()));
        for (int i = 0; i < r->size(); ++i) {
          out.rows.push_back({r->Text(i, 0), r->Text(i, 1), r->Text(i, 2), r->Text(i, 3)});
        }
        return out;
      });
      if (!got) return Fail(got.error());
      if (got->token_gone && first) return Fail(TokenNotFound(token_id));
      if (got->token_gone || (first && !got->generation)) return {};
      if (first) pinned = got->generation;
      if (got->generation != pinned) return Fail(SetReplacedDuringWalk(token_id));
      if (got->rows.empty()) return {};
      if (Status s = on_batch(got->rows); !s) return s;
      if (got->rows.size() < batch) return {};
      last = got->rows.back();
    }
  }

  Result<std::vector<MobileApp>> FindAppsByBundleId(const std::string& tenant_id,
                                                    const std::string& bundle_id) override {
    if (bundle_id.empty()) return std::vector<MobileApp>{};
    static const std::string by_bundle = fmt::format(
        "SELECT {} FROM mobile_apps WHERE tenant_id = $1 AND bundle_id = $2 ORDER BY token_id, id", AppSelectList());
    static const std::string by_adam = fmt::format(
        "SELECT {} FROM mobile_apps WHERE tenant_id = $1 AND adam_id = $2 ORDER BY token_id, id", AppSelectList());
    return Read<std::vector<MobileApp>>([&](Connection& c) -> Result<std::vector<MobileApp>> {
      Result<Rows> r = c.Exec(by_bundle, Params(tenant_id, bundle_id));
      if (!r) return Fail(r.error());
      if (!r->empty()) return ReadApps(*r);
      r = c.Exec(by_adam, Params(tenant_id, bundle_id));
      if (!r) return Fail(r.error());
      return ReadApps(*r);
    });
  }

  Result<std::vector<VppToken>> FindTokensByAppleUid(const std::string& tenant_id, const std::string& uid,
                                                     const std::string& except_token_id) override {
    static const std::string sql =
        fmt::format("SELECT {} FROM vpp_tokens WHERE tenant_id = $1 AND apple_uid = $2 AND id <> $3 ORDER BY id",
                    TokenSelectList());
    return ReadOne<std::vector<VppToken>>([&](Connection& c) -> Result<std::vector<VppToken>> {
      Result<Rows> r = c.Exec(sql, Params(tenant_id, uid, except_token_id));
      if (!r) return Fail(r.error());
      std::vector<VppToken> tokens;
      for (int i = 0; i < r->size(); ++i) {
        Result<VppToken> token = ReadToken(*r, i);
        if (!token) return Fail(token.error());
        tokens.push_back(std::move(*token));
      }
      return tokens;
    });
  }

  Result<std::string> GetTokenSecret(const std::string& tenant_id, const std::string& id) override {
    Result<std::string> sealed = ReadOne<std::string>([&](Connection& c) -> Result<std::string> {
      Result<Rows> r =
          c.Exec("SELECT token_sealed FROM vpp_tokens WHERE tenant_id = $1 AND id = $2", Params(tenant_id, id));
      if (!r) return Fail(r.error());
      if (r->empty()) return Fail(TokenNotFound(id));
      return r->Text(0, 0);
    });
    if (!sealed) return sealed;
    return OpenTokenSecret(tenant_id, id, *sealed, *secrets_);
  }

  // --- sync jobs ---

  Result<Enqueued> EnqueueJob(const std::string& tenant_id, const std::string& token_id, const EnqueueOptions& options,
                              const std::function<Status(VppToken&)>& mutate) override {
    if (Status s = CheckEnqueueOptions(options); !s) return Fail(s.error());
    static constexpr const char* kQueued =
        "SELECT 1 FROM sync_jobs WHERE tenant_id = $1 AND token_id = $2 AND kind = $3";
    // Coalescing needs no lock: answered from one snapshot when a job is queued.
    Result<std::optional<VppToken>> coalesced =
        Read<std::optional<VppToken>>([&](Connection& c) -> Result<std::optional<VppToken>> {
          Result<Rows> queued = c.Exec(kQueued, Params(tenant_id, token_id, options.kind));
          if (!queued) return Fail(queued.error());
          if (queued->empty()) return std::optional<VppToken>();
          Result<VppToken> token = LoadToken(c, tenant_id, token_id, false);
          if (!token) return Fail(token.error());
          return std::optional<VppToken>(std::move(*token));
        });
    if (coalesced && *coalesced) return Enqueued{std::move(**coalesced), false};
    std::string job_id = NewGuid();
    return Write<Enqueued>([&](Connection& c) -> Result<Enqueued> {
      // The token row lock comes before the look for a queued job: every enqueue
      // of this token (on any instance) waits here, so the look cannot go stale.
      Result<VppToken> locked = LoadToken(c, tenant_id, token_id, true);
      if (!locked) return Fail(locked.error());
      Result<Rows> queued = c.Exec(kQueued, Params(tenant_id, token_id, options.kind));
      if (!queued) return Fail(queued.error());
      if (!queued->empty()) return Enqueued{std::move(*locked), false};
      Result<VppToken> token = ApplyMutate(c, tenant_id, *locked, mutate);
      if (!token) return Fail(token.error());
      Result<Rows> insert = c.Exec(
          "INSERT INTO sync_jobs (id, tenant_id, token_id, kind, params, requested, not_before, attempts, "
          "lease_owner, lease_expires) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, '', 0)",
          Params(job_id, tenant_id, token_id, options.kind, options.params, std::int64_t{token->last_modified},
                 std::int64_t{options.not_before}));
      if (!insert) return Fail(insert.error());
      return Enqueued{std::move(*token), true};
    });
  }

  Result<std::optional<SyncJob>> ClaimJob(const std::string& worker, Timestamp now,
                                          std::chrono::milliseconds lease) override {
    if (Status s = CheckClaim(worker, lease); !s) return Fail(s.error());
    Timestamp expires = now + static_cast<Timestamp>(lease.count()) * 1000;
    return Write<std::optional<SyncJob>>([&](Connection& c) -> Result<std::optional<SyncJob>> {
      static const std::string pick = fmt::format(
          "SELECT {} FROM sync_jobs j "
          "WHERE j.not_before <= $1 AND (j.lease_owner = '' OR j.lease_expires <= $1) "
          "AND NOT EXISTS (SELECT 1 FROM sync_jobs o WHERE o.tenant_id = j.tenant_id AND o.token_id = j.token_id "
          "AND o.key <> j.key AND o.lease_owner <> '' AND o.lease_expires > $1) "
          "AND j.key <> ALL ($2::bigint[]) "
          "ORDER BY j.requested, j.key LIMIT 1 FOR UPDATE OF j SKIP LOCKED",
          kJobSelectList);
      std::vector<std::int64_t> passed;  // candidates whose token turned out busy
      while (passed.size() < kMaxClaimCandidates) {
        Result<Rows> r = c.Exec(pick, Params(std::int64_t{now}, IntArray(passed)));
        if (!r) return Fail(r.error());
        if (r->empty()) return std::optional<SyncJob>();
        std::int64_t key = r->Int(0, 0);
        SyncJob job = ReadJob(*r, 0);
        // One job per token at a time, across instances: whoever claims a job of
        // this token holds this lock until its commit, and after taking it a fresh
        // statement sees every claim committed before.
        Result<Rows> mine =
            c.Exec("SELECT pg_try_advisory_xact_lock(hashtextextended($1::text || '/' || $2::text, 1448103748))",
                   Params(job.tenant_id, job.token_id));
        if (!mine) return Fail(mine.error());
        if (!mine->Bool(0, 0)) {
          passed.push_back(key);
          continue;
        }
        Result<Rows> busy = c.Exec(
            "SELECT 1 FROM sync_jobs WHERE tenant_id = $1 AND token_id = $2 AND key <> $3 AND lease_owner <> '' "
            "AND lease_expires > $4",
            Params(job.tenant_id, job.token_id, key, std::int64_t{now}));
        if (!busy) return Fail(busy.error());
        if (!busy->empty()) {
          passed.push_back(key);
          continue;
        }
        const bool taken_over = StampClaim(job, worker, expires);
        Result<Rows> claim = c.Exec(
            "UPDATE sync_jobs SET lease_owner = $2, lease_expires = $3, attempts = $4, pages_walked = 0, "
            "pages_total = 0, assignments_staged = 0 WHERE key = $1",
            Params(key, worker, std::int64_t{expires}, job.attempts));
        if (!claim) return Fail(claim.error());
        if (taken_over) {
          if (Status s = RetireStaging(c, key); !s) return Fail(s.error());
        }
        return std::optional<SyncJob>(std::move(job));
      }
      return std::optional<SyncJob>();
    });
  }

  Status RenewLease(const SyncJob& job, Timestamp lease_expires) override {
    return Write<void>([&](Connection& c) -> Status {
      Result<std::int64_t> key = CheckLease(c, job);
      if (!key) return Fail(key.error());
      Result<Rows> r = c.Exec(
          "UPDATE sync_jobs SET lease_expires = $2, pages_walked = $3, pages_total = $4, assignments_staged = $5 "
          "WHERE key = $1",
          Params(*key, std::int64_t{lease_expires}, job.pages_walked, job.pages_total, job.assignments_staged));
      if (!r) return Fail(r.error());
      return {};
    });
  }

  Result<std::vector<SyncJob>> FindJobs(const std::string& tenant_id, const std::string& token_id) override {
    return ReadOne<std::vector<SyncJob>>([&](Connection& c) -> Result<std::vector<SyncJob>> {
      static const std::string query = fmt::format(
          "SELECT {} FROM sync_jobs WHERE tenant_id = $1 AND token_id = $2 ORDER BY requested, key", kJobSelectList);
      Result<Rows> r = c.Exec(query, Params(tenant_id, token_id));
      if (!r) return Fail(r.error());
      std::vector<SyncJob> jobs;
      for (int i = 0; i < r->size(); ++i) jobs.push_back(ReadJob(*r, i));
      return jobs;
    });
  }

  Status ReleaseJob(const SyncJob& job, Timestamp not_before) override {
    return Write<void>([&](Connection& c) -> Status {
      Result<std::int64_t> key = CheckLease(c, job);
      if (!key) return Fail(key.error());
      Result<Rows> r =
          c.Exec("UPDATE sync_jobs SET lease_owner = '', lease_expires = 0, not_before = $2 WHERE key = $1",
                 Params(*key, std::int64_t{not_before}));
      if (!r) return Fail(r.error());
      return RetireStaging(c, *key);
    });
  }

  Result<std::int64_t> CountJobs() override {
    return ReadOne<std::int64_t>([](Connection& c) -> Result<std::int64_t> {
      Result<Rows> r = c.Exec("SELECT count(*) FROM sync_jobs");
      if (!r) return Fail(r.error());
      return r->Int(0, 0);
    });
  }

  // --- snapshots ---

  using Store::StageAssignments;
  Status StageAssignments(const SyncJob& job, const StagedAssignments& batch) override {
    if (Status s = CheckStagedRows(batch); !s) return s;
    // This store writes a row per assignment, in primary-key order: the inserts
    // then walk the index in order.
    std::vector<LicenseAssignment> rows;
    rows.reserve(batch.size());
    for (std::uint32_t i : SortedRows(batch)) rows.push_back(batch.At(i));
    if (rows.empty()) {
      return Write<void>([&](Connection& c) -> Status {
        Result<std::int64_t> key = CheckLease(c, job);
        if (!key) return Fail(key.error());
        return {};
      });
    }
    // A transaction per kStageChunkRows rows: staged rows are invisible, so
    // several transactions are as good as one; on a failure (returned, nothing
    // more staged) the caller abandons the walk, whatever part was staged.
    for (std::size_t done = 0; done < rows.size(); done += kStageChunkRows) {
      const std::span<const LicenseAssignment> part(rows.data() + done, std::min(kStageChunkRows, rows.size() - done));
      Status staged = Write<void>([&](Connection& c) -> Status {
        Result<std::int64_t> key = CheckLease(c, job);
        if (!key) return Fail(key.error());
        Result<std::int64_t> generation = StagingGeneration(c, job, *key);
        if (!generation) return Fail(generation.error());
        return InsertAssignments(c, *generation, part);
      });
      if (!staged) return staged;
    }
    return {};
  }

  Status ClearStaged(const SyncJob& job) override {
    return Write<void>([&](Connection& c) -> Status {
      Result<std::int64_t> key = CheckLease(c, job);
      if (!key) return Fail(key.error());
      return RetireStaging(c, *key);
    });
  }

  Result<VppToken> FinishJob(const SyncJob& job, const std::optional<SyncSnapshot>& snapshot,
                             const std::function<Status(VppToken&)>& mutate) override {
    Result<std::optional<VppToken>> finished =
        Write<std::optional<VppToken>>([&](Connection& c) -> Result<std::optional<VppToken>> {
          // Token, then job (the lock order above).
          Result<std::int64_t> token_key = TokenKey(c, job.tenant_id, job.token_id, true);
          if (!token_key) {
            if (token_key.error().code != Code::kNotFound) return Fail(token_key.error());
            // The token is gone, and with it (cascade) the job and its staging.
            Result<Rows> r = c.Exec("SELECT key FROM sync_jobs WHERE id = $1", Params(job.id));
            if (!r) return Fail(r.error());
            if (!r->empty()) {
              if (Status s = DeleteJob(c, r->Int(0, 0)); !s) return Fail(s.error());
            }
            return std::optional<VppToken>();
          }
          Result<std::int64_t> job_key = CheckLease(c, job);
          if (!job_key) return Fail(job_key.error());
          if (snapshot) {
            if (Status s = ApplySnapshot(c, job, *token_key, *job_key, *snapshot); !s) return Fail(s.error());
          }
          Result<VppToken> token = MutateToken(c, job.tenant_id, job.token_id, mutate);
          if (!token) return Fail(token.error());
          if (Status s = DeleteJob(c, *job_key); !s) return Fail(s.error());
          return std::optional<VppToken>(std::move(*token));
        });
    if (!finished) return Fail(finished.error());
    if (!*finished) return Fail(TokenNotFound(job.token_id));
    return std::move(**finished);
  }

  Result<std::vector<std::pair<std::string, std::string>>> TokensDueForSync(Timestamp before, int limit) override {
    using Due = std::vector<std::pair<std::string, std::string>>;
    if (limit < 0) return Fail(Error::InvalidArgument("store: limit must not be negative"));
    return ReadOne<Due>([&](Connection& c) -> Result<Due> {
      Result<Rows> r = c.Exec(
          "SELECT tenant_id, id FROM vpp_tokens t WHERE state = 'valid' AND last_sync < $1 "
          "AND NOT EXISTS (SELECT 1 FROM sync_jobs j WHERE j.tenant_id = t.tenant_id AND j.token_id = t.id) "
          "ORDER BY last_sync, tenant_id, id LIMIT $2",
          Params(std::int64_t{before}, limit));
      if (!r) return Fail(r.error());
      Due due;
      for (int i = 0; i < r->size(); ++i) due.emplace_back(r->Text(i, 0), r->Text(i, 1));
      return due;
    });
  }

  // --- this installation ---

  Result<std::string> InstallationId(const std::string& proposed) override {
    if (Status s = CheckProposedInstallationId(proposed); !s) return Fail(s.error());
    // READ COMMITTED: an insert that meets another instance's uncommitted row waits
    // for it to commit and then does nothing, and the SELECT (a new snapshot) sees
    // that row. So instances starting together all return the first id stored.
    return Write<std::string>([&](Connection& c) -> Result<std::string> {
      Result<Rows> r = c.Exec("INSERT INTO vppd_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                              Params(std::string(kInstallationIdSetting), proposed));
      if (!r) return Fail(r.error());
      r = c.Exec("SELECT value FROM vppd_settings WHERE name = $1", Params(std::string(kInstallationIdSetting)));
      if (!r) return Fail(r.error());
      if (r->empty()) return Fail(Error::Internal("store: the installation id vanished while it was written"));
      return CheckedStoredInstallationId(r->Text(0, 0));
    });
  }

 private:
  static Tenant ReadTenant(const Rows& r, int i) {
    return Tenant{r.Text(i, 0), r.Text(i, 1), r.Bool(i, 2), r.Int(i, 3)};
  }

  Result<std::int64_t> Count(const std::string& sql, const SqlBuilder& builder) {
    Params params = BuilderParams(builder);
    return ReadOne<std::int64_t>([&](Connection& c) -> Result<std::int64_t> {
      Result<Rows> r = c.ExecDynamic(sql, params);
      if (!r) return Fail(r.error());
      return r->Int(0, 0);
    });
  }

  // `lock`: FOR UPDATE, for a read-modify-write.
  static Result<VppToken> LoadToken(Connection& c, const std::string& tenant_id, const std::string& id, bool lock) {
    static const std::string plain =
        fmt::format("SELECT {} FROM vpp_tokens WHERE tenant_id = $1 AND id = $2", TokenSelectList());
    static const std::string locked = plain + " FOR UPDATE";
    Result<Rows> r = c.Exec(lock ? locked : plain, Params(tenant_id, id));
    if (!r) return Fail(r.error());
    if (r->empty()) return Fail(TokenNotFound(id));
    return ReadToken(*r, 0);
  }

  Result<VppToken> MutateToken(Connection& c, const std::string& tenant_id, const std::string& id,
                               const std::function<Status(VppToken&)>& mutate) {
    Result<VppToken> stored = LoadToken(c, tenant_id, id, true);
    if (!stored) return stored;
    return ApplyMutate(c, tenant_id, *stored, mutate);
  }

  // Applies `mutate` to `stored` (loaded FOR UPDATE in this transaction) and writes
  // the result; re-seals only when `mutate` set a new plaintext.
  Result<VppToken> ApplyMutate(Connection& c, const std::string& tenant_id, const VppToken& stored,
                               const std::function<Status(VppToken&)>& mutate) {
    Result<MutatedToken> mutated = MutateStoredToken(tenant_id, stored, mutate, clock_, *secrets_);
    if (!mutated) return Fail(mutated.error());
    Result<Rows> r = c.Exec(TokenUpdateSql(), TokenParams(tenant_id, mutated->token, mutated->sealed));
    if (!r) return Fail(r.error());
    return std::move(mutated->token);
  }

  static Result<std::int64_t> TokenKey(Connection& c, const std::string& tenant_id, const std::string& id, bool lock) {
    Result<Rows> r = c.Exec(lock ? "SELECT token_key FROM vpp_tokens WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
                                 : "SELECT token_key FROM vpp_tokens WHERE tenant_id = $1 AND id = $2",
                            Params(tenant_id, id));
    if (!r) return Fail(r.error());
    if (r->empty()) return Fail(TokenNotFound(id));
    return r->Int(0, 0);
  }

  // --- assignment generations (see the SQLite store) ---

  static Result<std::optional<std::int64_t>> CurrentGeneration(Connection& c, std::int64_t token_key) {
    Result<Rows> r = c.Exec("SELECT assignments_generation FROM vpp_tokens WHERE token_key = $1", Params(token_key));
    if (!r) return Fail(r.error());
    if (r->empty() || r->IsNull(0, 0)) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(r->Int(0, 0));
  }

  static Result<std::optional<std::int64_t>> FindStagingGeneration(Connection& c, std::int64_t job_key) {
    Result<Rows> r = c.Exec("SELECT generation FROM assignment_generations WHERE job_key = $1 AND state = 'staging'",
                            Params(job_key));
    if (!r) return Fail(r.error());
    if (r->empty()) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(r->Int(0, 0));
  }

  // The job's staging generation, allocated on its first staged row. The caller
  // holds the job row (CheckLease), so no one else allocates one meanwhile.
  static Result<std::int64_t> StagingGeneration(Connection& c, const SyncJob& job, std::int64_t job_key) {
    Result<std::optional<std::int64_t>> found = FindStagingGeneration(c, job_key);
    if (!found) return Fail(found.error());
    if (*found) return **found;
    Result<std::int64_t> token_key = TokenKey(c, job.tenant_id, job.token_id, false);
    if (!token_key) return Fail(token_key.error());
    Result<Rows> r = c.Exec(
        "INSERT INTO assignment_generations (token_key, job_key, state) VALUES ($1, $2, 'staging') "
        "RETURNING generation",
        Params(*token_key, job_key));
    if (!r) return Fail(r.error());
    return r->Int(0, 0);
  }

  static Status PromoteStaged(Connection& c, std::int64_t token_key, std::optional<std::int64_t> staged) {
    if (staged) {
      Result<Rows> r = c.Exec(
          "UPDATE assignment_generations SET state = 'current', job_key = NULL WHERE generation = $1", Params(*staged));
      if (!r) return Fail(r.error());
    }
    Params p(token_key);
    if (staged) {
      p.Add(*staged);
    } else {
      p.Add(std::nullopt);
    }
    Result<Rows> r = c.Exec("UPDATE vpp_tokens SET assignments_generation = $2::bigint WHERE token_key = $1", p);
    if (!r) return Fail(r.error());
    return {};
  }

  Status RetireGeneration(Connection& c, std::int64_t generation) {
    Result<Rows> r = c.Exec("UPDATE assignment_generations SET state = 'garbage', job_key = NULL WHERE generation = $1",
                            Params(generation));
    if (!r) return Fail(r.error());
    NoteGarbage();
    return {};
  }

  Status RetireStaging(Connection& c, std::int64_t job_key) {
    Result<Rows> r = c.Exec(
        "UPDATE assignment_generations SET state = 'garbage', job_key = NULL WHERE job_key = $1 AND state = 'staging'",
        Params(job_key));
    if (!r) return Fail(r.error());
    if (r->affected() > 0) NoteGarbage();
    return {};
  }

  Status RetireTokenGenerations(Connection& c, std::int64_t token_key) {
    Result<Rows> r = c.Exec(
        "UPDATE assignment_generations SET state = 'garbage', job_key = NULL WHERE token_key = $1 "
        "AND state <> 'garbage'",
        Params(token_key));
    if (!r) return Fail(r.error());
    if (r->affected() > 0) NoteGarbage();
    return {};
  }

  // Inserts `rows` into `generation` in one statement (four arrays, unnested),
  // duplicates dropped, and adds what each asset really gained to
  // assignment_counts in the same statement.
  static Status InsertAssignments(Connection& c, std::int64_t generation, std::span<const LicenseAssignment> rows) {
    std::vector<const std::string*> adam, pricing, serial, user;
    for (auto* v : {&adam, &pricing, &serial, &user}) v->reserve(rows.size());
    for (const LicenseAssignment& r : rows) {
      adam.push_back(&r.adam_id);
      pricing.push_back(&r.pricing_param);
      serial.push_back(&r.serial_number);
      user.push_back(&r.client_user_id);
    }
    Result<Rows> r = c.Exec(
        "WITH added AS (INSERT INTO license_assignments (generation, adam_id, pricing_param, serial_number, "
        "client_user_id) SELECT $1::bigint, a, p, s, u FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) "
        "AS r (a, p, s, u) ON CONFLICT DO NOTHING RETURNING adam_id, pricing_param) " +
            std::string(kAddCounts),
        Params(generation, TextArray(adam), TextArray(pricing), TextArray(serial), TextArray(user)));
    if (!r) return Fail(r.error());
    return {};
  }

  // Adds the rows of CTE `added` (adam_id, pricing_param) to set $1's counts.
  static constexpr const char* kAddCounts =
      "INSERT INTO assignment_counts (generation, adam_id, pricing_param, rows) "
      "SELECT $1::bigint, adam_id, pricing_param, count(*) FROM added GROUP BY adam_id, pricing_param "
      "ON CONFLICT (generation, adam_id, pricing_param) DO UPDATE SET rows = assignment_counts.rows + excluded.rows";

  // The job's key if `job`'s lease is still the caller's, with the job row locked
  // until the transaction ends (see the SQLite store). FailedPrecondition otherwise.
  static Result<std::int64_t> CheckLease(Connection& c, const SyncJob& job) {
    Result<Rows> r =
        c.Exec("SELECT key, lease_owner, attempts FROM sync_jobs WHERE id = $1 FOR UPDATE", Params(job.id));
    if (!r) return Fail(r.error());
    if (r->empty()) return Fail(LeaseLost(job, "the job no longer exists"));
    std::string owner = r->Text(0, 1);
    if (job.lease_owner.empty() || owner != job.lease_owner || r->Int(0, 2) != job.attempts) {
      return Fail(
          LeaseLost(job, owner.empty() ? "it was handed back" : fmt::format("worker '{}' holds it now", owner)));
    }
    return r->Int(0, 0);
  }

  Status DeleteJob(Connection& c, std::int64_t job_key) {
    if (Status s = RetireStaging(c, job_key); !s) return s;
    Result<Rows> r = c.Exec("DELETE FROM sync_jobs WHERE key = $1", Params(job_key));
    if (!r) return Fail(r.error());
    return {};
  }

  Status ApplySnapshot(Connection& c, const SyncJob& job, std::int64_t token_key, std::int64_t job_key,
                       const SyncSnapshot& snapshot) {
    static const std::string existing_sql =
        fmt::format("SELECT {} FROM mobile_apps WHERE tenant_id = $1 AND token_id = $2", AppSelectList());
    Result<Rows> existing = c.Exec(existing_sql, Params(job.tenant_id, job.token_id));
    if (!existing) return Fail(existing.error());
    std::vector<MobileApp> before = ReadApps(*existing);
    const AppChanges changes = DiffSnapshotApps(std::move(before), snapshot.apps, job.token_id, clock_.Now());
    static const std::string remove_sql = "DELETE FROM mobile_apps WHERE tenant_id = $1 AND token_id = $2 AND id = $3";
    for (const std::string& id : changes.removed_ids) {
      Result<Rows> removed = c.Exec(remove_sql, Params(job.tenant_id, job.token_id, id));
      if (!removed) return Fail(removed.error());
    }
    for (const MobileApp& app : changes.written) {
      Result<Rows> insert = c.Exec(AppInsertSql(), AppParams(job.tenant_id, app));
      if (!insert) return Fail(insert.error());
    }

    using Mode = SyncSnapshot::Assignments;
    if (snapshot.assignments == Mode::kKeep) return {};
    Result<std::optional<std::int64_t>> current = CurrentGeneration(c, token_key);
    if (!current) return Fail(current.error());
    Result<std::optional<std::int64_t>> staged = FindStagingGeneration(c, job_key);
    if (!staged) return Fail(staged.error());
    if (snapshot.assignments == Mode::kReplaceWithStaged || !*current) {
      if (Status s = PromoteStaged(c, token_key, *staged); !s) return s;
      if (*staged) NoteNewSet();
      if (*current) {
        if (Status s = RetireGeneration(c, **current); !s) return s;
      }
      if (snapshot.assignments == Mode::kMergeStaged) return CheckMergedCounts(c, *staged, snapshot.apps);
      return {};
    }
    // A delta into an existing set: its rows are copied into the current set,
    // duplicates dropped, and what each asset gained counted, in one statement.
    if (*staged) {
      Result<Rows> r = c.Exec(
          "WITH added AS (INSERT INTO license_assignments (generation, adam_id, pricing_param, serial_number, "
          "client_user_id) SELECT $1::bigint, adam_id, pricing_param, serial_number, client_user_id "
          "FROM license_assignments WHERE generation = $2 "
          "ORDER BY adam_id, pricing_param, serial_number, client_user_id "
          "ON CONFLICT DO NOTHING RETURNING adam_id, pricing_param) " +
              std::string(kAddCounts),
          Params(**current, **staged));
      if (!r) return Fail(r.error());
    }
    return CheckMergedCounts(c, *current, snapshot.apps);
  }

  static Status CheckMergedCounts(Connection& c, std::optional<std::int64_t> generation,
                                  const std::vector<MobileApp>& apps) {
    Result<Rows> r = c.Exec("SELECT adam_id, pricing_param, rows FROM assignment_counts WHERE generation = $1",
                            Params(generation.value_or(0)));
    if (!r) return Fail(r.error());
    std::map<std::pair<std::string, std::string>, std::int64_t> stored;
    for (int i = 0; i < r->size(); ++i) stored[{r->Text(i, 0), r->Text(i, 1)}] = r->Int(i, 2);
    return CheckDeltaCounts(stored, apps);
  }

  // --- transactions ---

  // Runs `body` on a pooled connection: inside `begin` ... COMMIT when `begin` is
  // given (ROLLBACK when the body fails or throws), alone otherwise. A transaction
  // that lost a race (40001, 40P01) runs again, after a short random pause; so
  // does one whose pooled connection turned out dead before anything ran (the
  // server restarted since it was last used).
  template <class T, class Body>
  Result<T> Run(const char* begin, Body&& body) {
    thread_local std::mt19937 rng{std::random_device{}()};  // retry jitter
    std::uniform_int_distribution<int> jitter(1, 10);
    for (int attempt = 1;; ++attempt) {
      Result<pg::Pool::Lease> lease = pool_->Acquire();
      if (!lease) return Fail(lease.error());
      Connection& c = lease->conn();
      if (begin != nullptr) {
        if (Status s = c.Simple(begin); !s) {
          if (c.broken() && attempt == 1) {
            pool_->DropIdle();  // the others are likely as dead
            continue;
          }
          return Fail(s.error());
        }
      }
      Result<T> result = Fail(Error::Internal("store: transaction body did not run"));
      t_garbage_made = false;
      t_set_promoted = false;
      try {
        result = body(c);
      } catch (const std::exception& e) {
        result = Fail(Error::Internal(fmt::format("store: exception inside a transaction: {}", e.what())));
      }
      if (result && begin != nullptr) {
        if (Status s = c.Simple("COMMIT"); !s) result = Fail(s.error());
      }
      if (result) {
        if (t_set_promoted) analyze_wanted_ = true;
        if (t_garbage_made || t_set_promoted) collector_.Wake();
        return result;
      }
      const std::string sqlstate = c.last_sqlstate();
      const bool broken = c.broken();
      if (begin != nullptr && !broken) {
        if (Status s = c.Simple("ROLLBACK"); !s) c.MarkBroken();  // never reuse a connection stuck in a transaction
      }
      if (pg::IsRetryable(sqlstate) && attempt < kMaxAttempts) {
        std::this_thread::sleep_for(std::chrono::milliseconds(jitter(rng) * attempt));
        continue;
      }
      // A single read is safe to repeat on a fresh connection.
      if (begin == nullptr && broken && attempt == 1) {
        pool_->DropIdle();
        continue;
      }
      return result;
    }
  }

  template <class T, class Body>
  Result<T> Write(Body&& body) {
    return Run<T>("BEGIN", std::forward<Body>(body));
  }
  // Several statements, one snapshot.
  template <class T, class Body>
  Result<T> Read(Body&& body) {
    return Run<T>("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", std::forward<Body>(body));
  }
  // One statement: its own snapshot.
  template <class T, class Body>
  Result<T> ReadOne(Body&& body) {
    return Run<T>(nullptr, std::forward<Body>(body));
  }

  // --- the collector ---

  // Called inside a transaction that made garbage: the collector is woken once
  // that transaction has committed (Run), not before, or it could look, find
  // nothing yet, and sleep a whole kCollectInterval. (In the SQLite store the
  // writer lock orders the two.)
  void NoteGarbage() { t_garbage_made = true; }

  // Called inside a transaction that made a staged set current. The planner's
  // statistics of license_assignments predate a bulk load until autovacuum's
  // next ANALYZE (up to a minute or more): meanwhile it takes a token's set for a
  // few rows and sorts where it should walk the index (measured: a 10,000-row
  // ForEachAssignment batch 78 ms instead of 5 ms). So the collector thread runs
  // ANALYZE itself after such a commit, at most every kAnalyzeInterval.
  void NoteNewSet() { t_set_promoted = true; }

  Status AnalyzeIfWanted() {
    if (!analyze_wanted_.load()) return {};
    auto now = std::chrono::steady_clock::now();
    if (now - last_analyze_ < kAnalyzeInterval) return {};  // kept wanted: a later wake-up does it
    analyze_wanted_ = false;
    last_analyze_ = now;
    return ReadOne<void>([](Connection& c) -> Status {
      // Sampling (30,000 rows by default), not a scan; blocks no reader or writer.
      if (Status s = c.Simple("ANALYZE license_assignments, assignment_counts"); !s) return s;
      return {};
    });
  }

  // One batch of the oldest garbage set no other collector holds (SKIP LOCKED:
  // the collectors of several instances share the work).
  static Result<CollectStep> CollectBatch(Connection& c) {
    CollectStep step;
    Result<Rows> pick = c.Exec(
        "SELECT generation FROM assignment_generations WHERE state = 'garbage' ORDER BY generation LIMIT 1 "
        "FOR UPDATE SKIP LOCKED");
    if (!pick) return Fail(pick.error());
    if (pick->empty()) return step;
    step.generation = pick->Int(0, 0);
    Result<Rows> del = c.Exec(
        "DELETE FROM license_assignments WHERE ctid = ANY (ARRAY (SELECT ctid FROM license_assignments "
        "WHERE generation = $1 LIMIT $2))",
        Params(step.generation, kCollectBatchRows));
    if (!del) return Fail(del.error());
    step.rows = del->affected();
    if (step.rows == kCollectBatchRows) return step;
    for (const char* sql : {"DELETE FROM assignment_counts WHERE generation = $1",
                            "DELETE FROM assignment_generations WHERE generation = $1"}) {
      Result<Rows> r = c.Exec(sql, Params(step.generation));
      if (!r) return Fail(r.error());
    }
    step.generation_done = true;
    return step;
  }

  std::shared_ptr<const SecretBox> secrets_;
  const Clock& clock_;
  const std::int64_t max_tokens_;
  std::unique_ptr<pg::Pool> pool_;

  std::atomic<bool> analyze_wanted_{false};
  std::chrono::steady_clock::time_point last_analyze_{};  // used by the collector thread only
  Collector collector_;  // last: stopped by the destructor before the rest goes
};

}  // namespace

Result<std::unique_ptr<Store>> Store::OpenPostgres(const PostgresOptions& options) {
  if (options.secrets == nullptr) return Fail(Error::InvalidArgument("store: no SecretBox to seal sTokens with"));
  if (options.url.empty()) return Fail(Error::InvalidArgument("store: empty PostgreSQL URL"));
  if (options.pool_wait_ms <= 0 || options.statement_timeout_ms <= 0 || options.connect_timeout_ms <= 0) {
    return Fail(Error::InvalidArgument("store: timeouts must be positive"));
  }
  if (options.max_connections < 1 || options.max_connections > kMaxConnections) {
    return Fail(Error::InvalidArgument(fmt::format("store: max_connections must be 1..{}", kMaxConnections)));
  }
  pg::ConnectOptions connect;
  connect.url = options.url;
  connect.connect_timeout_ms = options.connect_timeout_ms;
  connect.statement_timeout_ms = options.statement_timeout_ms;
  connect.lock_timeout_ms = options.pool_wait_ms;
  auto pool =
      std::make_unique<pg::Pool>(connect, options.max_connections, std::chrono::milliseconds(options.pool_wait_ms));
  {
    Result<pg::Pool::Lease> lease = pool->Acquire();
    if (!lease) return Fail(lease.error());
    if (Status s = MigratePg(lease->conn()); !s) return Fail(s.error());
  }
  auto store = std::make_unique<PgStore>(options, std::move(pool));
  if (Status s = store->Reconcile(); !s) return Fail(s.error());
  if (options.collect_garbage) store->StartCollector();
  spdlog::info("store: opened PostgreSQL (schema version {}, up to {} connections)", LatestPgSchemaVersion(),
               options.max_connections);
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace vppd::store
