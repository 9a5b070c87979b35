// The PostgreSQL backend of store::Store, for one or more vppd instances
// sharing one database. What both databases do alike is SqlStore's
// (sql_store.cc); here is how a transaction runs when several processes write
// at once, and what only PostgreSQL does.
//
// Transactions: every method is one transaction on a pooled connection. Writes
// run at READ COMMITTED and take the row locks their read-modify-write needs
// (the token FOR UPDATE, the tenant row when counting its tokens, the job row
// when checking a lease: Dialect's for_update), so no update is lost and no
// check goes stale; a transaction that loses a race anyway (serialization
// failure 40001, deadlock 40P01) is retried from the start, up to kMaxAttempts
// times, so a `mutate` callback may run more than once (each time on freshly
// read data). Reads of several statements run at REPEATABLE READ READ ONLY (one
// snapshot); a read of one statement runs alone (a statement always sees one
// snapshot).
//
// Jobs across instances: ClaimJob picks with FOR UPDATE SKIP LOCKED, so
// concurrent claimers never wait for nor take the same row, then takes a
// transaction-scoped advisory lock on the job's token and looks again for a
// live lease on another job of that token: two instances can never both start a
// job of one token.
//
// Assignments are rows of license_assignments (a row per assignment, staged
// with one INSERT ... unnest per kStageChunkRows rows); the collector of each
// instance picks garbage sets with SKIP LOCKED, so several collectors share the
// work instead of colliding.
#include <atomic>
#include <chrono>
#include <random>
#include <span>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "store/collector.h"
#include "store/pg_db.h"
#include "store/pg_migrations.h"
#include "store/sql_store.h"
#include "store/store_common.h"

namespace vppd::store {
namespace {

using pg::Connection;
using pg::Params;
using pg::PgPlaceholders;
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

// Adds the rows of CTE `added` (adam_id, pricing_param) to set ?1's counts.
constexpr const char* kAddCounts =
    "INSERT INTO assignment_counts (generation, adam_id, pricing_param, rows) "
    "SELECT ?1::bigint, adam_id, pricing_param, count(*) FROM added GROUP BY adam_id, pricing_param "
    "ON CONFLICT (generation, adam_id, pricing_param) DO UPDATE SET rows = assignment_counts.rows + excluded.rows";

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

// Set by a transaction body that made garbage (see NoteGarbage); a transaction
// runs on one thread from BEGIN to COMMIT.
thread_local bool t_garbage_made = false;
// Set by a transaction body that made a new assignment set current (see NoteNewSet).
thread_local bool t_set_promoted = false;

// A transaction's statements on one PostgreSQL connection (see Tx): each runs
// at once and its rows are kept until the next.
class PgTx final : public Tx {
 public:
  explicit PgTx(Connection& conn) : conn_(conn) {}

  Status QueryArgs(std::string_view sql, std::span<const SqlArg> args) override {
    Params params;
    for (const SqlArg& arg : args) {
      switch (arg.kind()) {
        case SqlArg::Kind::kNull:
          params.Add(std::nullopt);
          break;
        case SqlArg::Kind::kInt:
          params.Add(arg.integer());
          break;
        case SqlArg::Kind::kBool:
          params.Add(arg.integer() != 0);
          break;
        case SqlArg::Kind::kText:
          params.Add(arg.text());
          break;
      }
    }
    return Keep(conn_.Exec(PgPlaceholders(sql), params));
  }

  Status QueryBuilt(const std::string& sql, const SqlBuilder& builder) override {
    Params params;
    for (const sqlite::SqlValue& v : builder.params()) {
      std::visit(
          [&params](const auto& x) {
            if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::monostate>) {
              params.Add(std::nullopt);
            } else {
              params.Add(x);
            }
          },
          v);
    }
    return Keep(conn_.ExecDynamic(sql, params));
  }

  Result<bool> Next() override {
    if (!rows_) return Fail(Error::Internal("store: Next without a statement"));
    return ++row_ < rows_->size();
  }
  bool IsNull(int col) const override { return rows_->IsNull(row_, col); }
  std::int64_t Int(int col) const override { return rows_->Int(row_, col); }
  std::string Text(int col) const override { return rows_->Text(row_, col); }
  std::string_view View(int col) const override { return rows_->View(row_, col); }
  std::optional<std::string> OptText(int col) const override { return rows_->OptText(row_, col); }
  bool Bool(int col) const override { return rows_->Bool(row_, col); }
  std::int64_t Changes() const override { return rows_ ? rows_->affected() : 0; }
  // PgTx is final: the readers' column reads are direct calls.
  Tenant TenantRow() const override { return ReadTenantRow(*this); }
  Result<VppToken> TokenRow() const override { return ReadTokenRow(*this); }
  MobileApp AppRow() const override { return ReadAppRow(*this); }

  Connection& conn() { return conn_; }

 private:
  Status Keep(Result<Rows> rows) {
    rows_.reset();
    if (!rows) return Fail(rows.error());
    rows_.emplace(std::move(*rows));
    row_ = -1;
    return {};
  }

  Connection& conn_;
  std::optional<Rows> rows_;
  int row_ = -1;
};

SqlStore::Dialect PgDialect() {
  auto [cols, values] = TokenInsertLists('?');
  return SqlStore::Dialect{SqlDialect::kPostgres, " FOR UPDATE", " FOR NO KEY UPDATE",
                           fmt::format("INSERT INTO vpp_tokens ({}) VALUES ({})", cols, values)};
}

class PgStore final : public SqlStore {
 public:
  PgStore(const PostgresOptions& options, std::unique_ptr<pg::Pool> pool)
      : SqlStore(PgDialect(), options.secrets, options.clock, options.max_tokens_per_tenant),
        pool_(std::move(pool)),
        pick_job_sql_(JobPickSql(" AND j.key <> ALL (?2::bigint[])", " FOR UPDATE OF j SKIP LOCKED")),
        collector_(
            [this] { return InTx<CollectStep>(TxKind::kWrite, [](Tx& tx) { return CollectBatch(Native(tx)); }); },
            [this] { return AnalyzeIfWanted(); }) {}

  ~PgStore() override { collector_.Stop(); }

  void StartCollector() { collector_.Start(); }

  // SKIP LOCKED and an advisory lock per token (see the file comment).
  Result<std::optional<SyncJob>> ClaimJob(const std::string& worker, Timestamp now,
                                          std::chrono::milliseconds lease) override;
  // A row per assignment: staged by unnest, walked by keyset.
  using Store::StageAssignments;
  Status StageAssignments(const SyncJob& job, const StagedAssignments& batch) override;
  Status ForEachAssignment(const std::string& tenant_id, const std::string& token_id, std::size_t batch,
                           const std::function<Status(const std::vector<LicenseAssignment>&)>& on_batch) override;

 protected:
  Status RunTx(TxKind kind, FunctionRef<Status(Tx&)> body) override;
  // The collector is woken once the transaction has committed (RunTx), not
  // before, or it could look, find nothing yet, and sleep a whole
  // kCollectInterval. (In the SQLite store the writer lock orders the two.)
  void NoteGarbage() override { t_garbage_made = true; }
  // Called inside a transaction that made a staged set current. The planner's
  // statistics of license_assignments predate a bulk load until autovacuum's
  // next ANALYZE (up to a minute or more): meanwhile it takes a token's set for a
  // few rows and sorts where it should walk the index (bench/README.md, sync).
  // So the collector thread runs ANALYZE itself after such a commit, at most
  // every kAnalyzeInterval.
  void NoteNewSet() override { t_set_promoted = true; }
  Status MergeDelta(Tx& tx, std::int64_t current, std::int64_t staged, const std::vector<MobileApp>& apps) override;
  // Also moves the generation numbers past every number in the tables, so a
  // new set never meets rows of an old one.
  Result<std::int64_t> AdoptUnknownSets(Tx& tx) override;
  Result<Page<LicenseAssignment>> ReadAppAssignments(Tx& tx, std::int64_t generation, const std::string& adam_id,
                                                     const std::string& pricing_param, std::int64_t skip,
                                                     std::int64_t limit) override;
  // An import's rows by unnest: one INSERT per kStageChunkRows rows, one array per column.
  Status BulkWrite(Tx& tx, const BulkInsert& spec, const std::vector<std::vector<SqlArg>>& rows) override;

 private:
  static Connection& Native(Tx& tx) { return static_cast<PgTx&>(tx).conn(); }
  static Status InsertAssignments(Tx& tx, std::int64_t generation, std::span<const LicenseAssignment> rows);
  Status AnalyzeIfWanted();
  static Result<CollectStep> CollectBatch(Connection& c);

  std::unique_ptr<pg::Pool> pool_;
  const std::string pick_job_sql_;
  std::atomic<bool> analyze_wanted_{false};
  std::chrono::steady_clock::time_point last_analyze_{};  // used by the collector thread only
  Collector collector_;                                   // last: stopped by the destructor before the rest goes
};

Result<std::int64_t> PgStore::AdoptUnknownSets(Tx& tx) {
  // The distinct generations of license_assignments by a walk over the primary
  // key (one seek each).
  if (Status s = tx.Exec("WITH RECURSIVE gens (g) AS ("
                         "  SELECT min(generation) FROM license_assignments"
                         "  UNION ALL"
                         "  SELECT (SELECT min(generation) FROM license_assignments WHERE generation > g) FROM gens"
                         "  WHERE g IS NOT NULL) "
                         "INSERT INTO assignment_generations (generation, token_key, job_key, state) "
                         "SELECT g, 0, NULL, 'garbage' FROM gens WHERE g IS NOT NULL AND NOT EXISTS "
                         "(SELECT 1 FROM assignment_generations a WHERE a.generation = g) ON CONFLICT DO NOTHING");
      !s) {
    return Fail(s.error());
  }
  const std::int64_t adopted = tx.Changes();
  if (Status s = tx.Exec("SELECT setval(s.seq, m.top) FROM "
                         "(SELECT pg_get_serial_sequence('assignment_generations', 'generation')::regclass AS seq) s, "
                         "(SELECT greatest((SELECT max(generation) FROM assignment_generations), "
                         "(SELECT max(generation) FROM license_assignments)) AS top) m "
                         "WHERE m.top IS NOT NULL AND m.top > coalesce(pg_sequence_last_value(s.seq), 0)");
      !s) {
    return Fail(s.error());
  }
  return adopted;
}

// --- transactions ---------------------------------------------------------------------

// A transaction on a pooled connection: inside BEGIN ... COMMIT unless it is one
// statement (ROLLBACK when the body fails or throws). A transaction
// that lost a race (40001, 40P01) runs again, after a short random pause; so
// does one whose pooled connection turned out dead before anything ran (the
// server restarted since it was last used).
Status PgStore::RunTx(TxKind kind, FunctionRef<Status(Tx&)> body) {
  const char* begin = kind == TxKind::kWrite  ? "BEGIN"
                      : kind == TxKind::kRead ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
                                              : nullptr;  // kReadOne: one statement, its own snapshot
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
    Status result = Fail(Error::Internal("store: transaction body did not run"));
    t_garbage_made = false;
    t_set_promoted = false;
    try {
      PgTx tx(c);
      result = body(tx);
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

// --- jobs ---------------------------------------------------------------------------------

Result<std::optional<SyncJob>> PgStore::ClaimJob(const std::string& worker, Timestamp now,
                                                 std::chrono::milliseconds lease) {
  if (Status s = CheckClaim(worker, lease); !s) return Fail(s.error());
  Timestamp expires = now + static_cast<Timestamp>(lease.count()) * 1000;
  return InTx<std::optional<SyncJob>>(TxKind::kWrite, [&](Tx& tx) -> Result<std::optional<SyncJob>> {
    std::vector<std::int64_t> passed;  // candidates whose token turned out busy
    while (passed.size() < kMaxClaimCandidates) {
      Result<bool> row = tx.QueryRow(pick_job_sql_, {now, IntArray(passed)});
      if (!row) return Fail(row.error());
      if (!*row) return std::optional<SyncJob>();
      const std::int64_t key = tx.Int(0);
      SyncJob job = ReadJobRow(tx);
      // One job per token at a time, across instances: whoever claims a job of
      // this token holds this lock until its commit, and after taking it a fresh
      // statement sees every claim committed before.
      Result<bool> locked =
          tx.QueryRow("SELECT pg_try_advisory_xact_lock(hashtextextended(?1::text || '/' || ?2::text, 1448103748))",
                      {job.tenant_id, job.token_id});
      if (!locked) return Fail(locked.error());
      if (!tx.Bool(0)) {
        passed.push_back(key);
        continue;
      }
      Result<bool> busy = tx.QueryRow(
          "SELECT 1 FROM sync_jobs WHERE tenant_id = ?1 AND token_id = ?2 AND key <> ?3 AND lease_owner <> '' "
          "AND lease_expires > ?4",
          {job.tenant_id, job.token_id, key, now});
      if (!busy) return Fail(busy.error());
      if (*busy) {
        passed.push_back(key);
        continue;
      }
      return ClaimPicked(tx, key, std::move(job), worker, expires);
    }
    return std::optional<SyncJob>();
  });
}

// --- assignments ---------------------------------------------------------------------------

Status PgStore::StageAssignments(const SyncJob& job, const StagedAssignments& batch) {
  if (Status s = CheckStagedRows(batch); !s) return s;
  // This store writes a row per assignment, in primary-key order: the inserts
  // then walk the index in order.
  std::vector<LicenseAssignment> rows;
  rows.reserve(batch.size());
  for (std::uint32_t i : SortedRows(batch)) rows.push_back(batch.At(i));
  // A transaction per kStageChunkRows rows (no rows: the lease check alone):
  // staged rows are invisible, so several transactions are as good as one; on
  // a failure (returned, nothing more staged) the caller abandons the walk,
  // whatever part was staged.
  std::size_t done = 0;
  do {
    const std::span<const LicenseAssignment> part(rows.data() + done, std::min(kStageChunkRows, rows.size() - done));
    Status staged = InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
      Result<std::int64_t> key = CheckLease(tx, job);
      if (!key) return Fail(key.error());
      if (part.empty()) return {};
      Result<std::int64_t> generation = StagingGeneration(tx, job, *key);
      if (!generation) return Fail(generation.error());
      return InsertAssignments(tx, *generation, part);
    });
    if (!staged) return staged;
    done += part.size();
  } while (done < rows.size());
  return {};
}

// Inserts `rows` into `generation` in one statement (four arrays, unnested),
// duplicates dropped, and adds what each asset really gained to
// assignment_counts in the same statement.
Status PgStore::InsertAssignments(Tx& tx, std::int64_t generation, std::span<const LicenseAssignment> rows) {
  std::vector<const std::string*> adam, pricing, serial, user;
  for (auto* v : {&adam, &pricing, &serial, &user}) v->reserve(rows.size());
  for (const LicenseAssignment& r : rows) {
    adam.push_back(&r.adam_id);
    pricing.push_back(&r.pricing_param);
    serial.push_back(&r.serial_number);
    user.push_back(&r.client_user_id);
  }
  static const std::string sql =
      "WITH added AS (INSERT INTO license_assignments (generation, adam_id, pricing_param, serial_number, "
      "client_user_id) SELECT ?1::bigint, a, p, s, u FROM unnest(?2::text[], ?3::text[], ?4::text[], ?5::text[]) "
      "AS r (a, p, s, u) ON CONFLICT DO NOTHING RETURNING adam_id, pricing_param) " +
      std::string(kAddCounts);
  return tx.Exec(sql, {generation, TextArray(adam), TextArray(pricing), TextArray(serial), TextArray(user)});
}

Status PgStore::BulkWrite(Tx& tx, const BulkInsert& spec, const std::vector<std::vector<SqlArg>>& rows) {
  if (rows.empty()) return {};
  std::string names, arrays, aliases;
  for (std::size_t c = 0; c < spec.columns.size(); ++c) {
    const char* type = spec.columns[c].second == BulkType::kText  ? "text"
                       : spec.columns[c].second == BulkType::kInt ? "bigint"
                                                                  : "boolean";
    const char* sep = c > 0 ? ", " : "";
    fmt::format_to(std::back_inserter(names), "{}{}", sep, spec.columns[c].first);
    fmt::format_to(std::back_inserter(arrays), "{}?{}::{}[]", sep, c + 1, type);
    fmt::format_to(std::back_inserter(aliases), "{}c{}", sep, c);
  }
  const std::string sql = fmt::format("INSERT INTO {} ({}) SELECT {} FROM unnest({}) AS r ({}){}", spec.table, names,
                                      aliases, arrays, aliases, spec.conflict);
  // One array literal per column: elements quoted (`"` and `\` escaped), NULL bare.
  for (std::size_t from = 0; from < rows.size(); from += kStageChunkRows) {
    const std::size_t to = std::min(rows.size(), from + kStageChunkRows);
    std::vector<std::string> literals(spec.columns.size(), "{");
    for (std::size_t r = from; r < to; ++r) {
      for (std::size_t c = 0; c < spec.columns.size(); ++c) {
        std::string& out = literals[c];
        if (r > from) out += ',';
        const SqlArg& arg = rows[r][c];
        switch (arg.kind()) {
          case SqlArg::Kind::kNull:
            out += "NULL";
            break;
          case SqlArg::Kind::kInt:
            out += std::to_string(arg.integer());
            break;
          case SqlArg::Kind::kBool:
            out += arg.integer() != 0 ? "t" : "f";
            break;
          case SqlArg::Kind::kText:
            out += '"';
            for (char ch : arg.text()) {
              if (ch == '"' || ch == '\\') out += '\\';
              out += ch;
            }
            out += '"';
            break;
        }
      }
    }
    std::vector<SqlArg> args;
    for (std::string& literal : literals) args.emplace_back(std::string_view(literal += '}'));
    if (Status s = tx.ExecArgs(sql, args); !s) return s;
  }
  return {};
}

// A delta into an existing set: its rows are copied into the current set,
// duplicates dropped, and what each asset gained counted, in one statement.
Status PgStore::MergeDelta(Tx& tx, std::int64_t current, std::int64_t staged, const std::vector<MobileApp>& /*apps*/) {
  static const std::string sql =
      "WITH added AS (INSERT INTO license_assignments (generation, adam_id, pricing_param, serial_number, "
      "client_user_id) SELECT ?1::bigint, adam_id, pricing_param, serial_number, client_user_id "
      "FROM license_assignments WHERE generation = ?2 "
      "ORDER BY adam_id, pricing_param, serial_number, client_user_id "
      "ON CONFLICT DO NOTHING RETURNING adam_id, pricing_param) " +
      std::string(kAddCounts);
  return tx.Exec(sql, {current, staged});
}

// A page by OFFSET over the rows of the asset, in primary-key order.
Result<Page<LicenseAssignment>> PgStore::ReadAppAssignments(Tx& tx, std::int64_t generation, const std::string& adam_id,
                                                            const std::string& pricing_param, std::int64_t skip,
                                                            std::int64_t limit) {
  if (Status s = tx.Query("SELECT client_user_id, serial_number FROM license_assignments "
                          "WHERE generation = ?1 AND adam_id = ?2 AND pricing_param = ?3 "
                          "ORDER BY serial_number, client_user_id LIMIT ?4 OFFSET ?5",
                          {generation, adam_id, pricing_param, limit + 1, skip});
      !s) {
    return Fail(s.error());
  }
  Page<LicenseAssignment> page;
  for (;;) {
    Result<bool> row = tx.Next();
    if (!row) return Fail(row.error());
    if (!*row || !RoomOnPage(page, limit)) return page;
    page.items.push_back({adam_id, pricing_param, tx.Text(0), tx.Text(1)});
  }
}

Status PgStore::ForEachAssignment(const std::string& tenant_id, const std::string& token_id, std::size_t batch,
                                  const std::function<Status(const std::vector<LicenseAssignment>&)>& on_batch) {
  if (Status s = CheckBatchSize(batch); !s) return s;
  // Keyset pagination on the primary key (see WalkStep).
  static const std::string first_sql =
      "SELECT adam_id, pricing_param, client_user_id, serial_number FROM license_assignments "
      "WHERE generation = $1 ORDER BY adam_id, pricing_param, serial_number, client_user_id LIMIT $2";
  static const std::string next_sql =
      "SELECT adam_id, pricing_param, client_user_id, serial_number FROM license_assignments WHERE generation = $1 "
      "AND (adam_id, pricing_param, serial_number, client_user_id) > ($3::text, $4::text, $5::text, $6::text) "
      "ORDER BY adam_id, pricing_param, serial_number, client_user_id LIMIT $2";
  std::optional<std::int64_t> pinned;
  std::optional<LicenseAssignment> last;
  std::vector<LicenseAssignment> rows;
  for (;;) {
    Result<bool> more = WalkStep(tenant_id, token_id, pinned, [&](Tx& tx, std::int64_t generation) -> Status {
      Connection& c = Native(tx);
      Result<Rows> r = last ? c.Exec(next_sql, Params(generation, batch, last->adam_id, last->pricing_param,
                                                      last->serial_number, last->client_user_id))
                            : c.Exec(first_sql, Params(generation, batch));
      if (!r) return Fail(r.error());
      rows.clear();
      rows.reserve(static_cast<std::size_t>(r->size()));
      for (int i = 0; i < r->size(); ++i) rows.push_back({r->Text(i, 0), r->Text(i, 1), r->Text(i, 2), r->Text(i, 3)});
      return {};
    });
    if (!more) return Fail(more.error());
    if (!*more || rows.empty()) return {};
    if (Status s = on_batch(rows); !s) return s;
    if (rows.size() < batch) return {};
    last = rows.back();
  }
}

// --- the collector -------------------------------------------------------------------------

Status PgStore::AnalyzeIfWanted() {
  if (!analyze_wanted_.load()) return {};
  auto now = std::chrono::steady_clock::now();
  if (now - last_analyze_ < kAnalyzeInterval) return {};  // kept wanted: a later wake-up does it
  analyze_wanted_ = false;
  last_analyze_ = now;
  return InTx<void>(TxKind::kReadOne, [](Tx& tx) -> Status {
    // Sampling (30,000 rows by default), not a scan; blocks no reader or writer.
    return Native(tx).Simple("ANALYZE license_assignments, assignment_counts");
  });
}

// One batch of the oldest garbage set no other collector holds (SKIP LOCKED:
// the collectors of several instances share the work).
Result<CollectStep> PgStore::CollectBatch(Connection& c) {
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

}  // namespace

Result<std::unique_ptr<Store>> Store::OpenPostgres(const PostgresOptions& options) {
  if (Status s = CheckOpenOptions(options.secrets.get(), options.url, "PostgreSQL URL",
                                  {options.pool_wait_ms, options.statement_timeout_ms, options.connect_timeout_ms},
                                  "max_connections", options.max_connections, kMaxConnections);
      !s) {
    return Fail(s.error());
  }
  const pg::ConnectOptions connect{.url = options.url,
                                   .connect_timeout_ms = options.connect_timeout_ms,
                                   .statement_timeout_ms = options.statement_timeout_ms,
                                   .lock_timeout_ms = options.pool_wait_ms};
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
