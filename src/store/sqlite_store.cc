// The SQLite implementation of store::Store.
//
// Connections: one writer, guarded by a timed mutex, and a pool of query_only
// readers. Every method is one transaction: writes use BEGIN IMMEDIATE (the write
// lock up front, so a read-modify-write never fails half-way with SQLITE_BUSY);
// reads of several statements a deferred BEGIN, which in WAL mode reads one
// committed snapshot without waiting for the writer; a read of one statement runs
// in SQLite's implicit transaction (the same snapshot guarantee, two fewer steps).
// BEGIN/COMMIT/ROLLBACK are cached prepared statements: sqlite3_exec would parse
// them on every call, which a profile showed as ~11% of an authenticated read.
//
// Sync data: each assignment is written once. A job's walk stages its rows
// straight into assignment_chunks (an app's assignments as a few blobs, see
// assignment_chunks.h) under a generation of its own (invisible to readers);
// FinishJob repoints the token at it, and the replaced generation becomes
// garbage that a background thread (the collector) deletes in batches of
// kCollectBatchChunks, one short write transaction each, so no transaction holds
// the write lock for long. assignment_counts keeps each set's rows, runs and
// chunks per asset (the delta check, reads). Chunks carry an integer app_key
// (assignment_apps). See migrations 3, 4, 6 and 8 in migrations.cc for the tables.
//
// WAL checkpoints run on a thread and connection of their own (the
// checkpointer), woken by the writer's commits; see StartCheckpointer.
//
// A read anchor (sqlite::ReadAnchor) holds a snapshot of the newest commit
// between writes, so that readers' WAL read-mark locks cost no system call:
// renewed after each write and checkpoint (and every kAnchorRenewInterval, for
// commits of other processes), released before each write begins.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "store/assignment_chunks.h"
#include "store/collector.h"
#include "store/filter_sql.h"
#include "store/migrations.h"
#include "store/pool_lease.h"
#include "store/sqlite_db.h"
#include "store/store.h"
#include "store/store_common.h"

namespace vppd::store {
namespace {

using sqlite::Connection;
using sqlite::Stmt;

constexpr int kMaxReaderConnections = 64;

const std::string& TokenInsertSql() {
  static const std::string sql = [] {
    auto [cols, values] = TokenInsertLists('?');
    // token_key: the next small integer (max + 1 is an index lookup).
    return fmt::format(
        "INSERT INTO vpp_tokens ({}, token_key) VALUES ({}, (SELECT coalesce(max(token_key), 0) + 1 FROM vpp_tokens))",
        cols, values);
  }();
  return sql;
}

const std::string& TokenUpdateSql() {
  static const std::string sql = BuildTokenUpdateSql('?');
  return sql;
}

// --- rows -----------------------------------------------------------------------

// The current row of `stmt`, as the row readers of store_common.h take a row.
struct StmtRow {
  const Stmt& stmt;
  std::string Text(int col) const { return stmt.Text(col); }
  std::optional<std::string> OptText(int col) const { return stmt.OptText(col); }
  std::int64_t Int(int col) const { return stmt.Int(col); }
  bool Bool(int col) const { return stmt.Int(col) != 0; }
};

// Binds a statement's parameters ?1, ?2, ... in the order `add` is called (see
// store_common.h), bools as 0/1; the first failure is kept.
class StmtBinder {
 public:
  explicit StmtBinder(Stmt& stmt) : stmt_(stmt) {}
  void operator()(bool value) { Bind(std::int64_t{value ? 1 : 0}); }
  void operator()(std::int64_t value) { Bind(value); }
  void operator()(std::string_view value) { Bind(value); }
  void operator()(const std::optional<std::string>& value) { Bind(value); }
  Status status() const { return status_; }

 private:
  template <class T>
  void Bind(const T& value) {
    if (status_) status_ = stmt_.Bind(n_, value);
    ++n_;
  }
  Stmt& stmt_;
  int n_ = 1;
  Status status_;
};

Result<VppToken> ReadToken(const Stmt& row) { return ReadTokenRow(StmtRow{row}); }

// Binds ?1..?26 of TokenInsertSql/TokenUpdateSql. `sealed` nullopt binds NULL,
// which TokenUpdateSql reads as "keep the stored ciphertext".
Status BindToken(Stmt& stmt, const std::string& tenant_id, const VppToken& t,
                 const std::optional<std::string>& sealed) {
  StmtBinder bind(stmt);
  AddTokenParams(tenant_id, t, sealed, bind);
  return bind.status();
}

const std::string& AppInsertSql() {
  static const std::string sql = BuildAppInsertSql('?');
  return sql;
}

MobileApp ReadApp(const Stmt& row) { return ReadAppRow(StmtRow{row}); }

Status BindApp(Stmt& stmt, const std::string& tenant_id, const MobileApp& a) {
  StmtBinder bind(stmt);
  AddAppParams(tenant_id, a, bind);
  return bind.status();
}

SyncJob ReadJob(const Stmt& row) { return ReadJobRow(StmtRow{row}); }

// A staging transaction writes about this many bytes of chunks (a few ms of
// write lock), unless one app's run alone is larger.
constexpr std::size_t kStageBytesPerCommit = 1 << 20;

// Most runs an app's chunks may form in a current set before FinishJob merges
// them (deltas append runs; a read of an app of several runs decodes them all).
constexpr std::int64_t kMaxRunsPerApp = 4;

// The collector deletes this many chunks per transaction: ~kCollectBatchRows
// assignments.
constexpr std::int64_t kCollectBatchChunks =
    std::max<std::int64_t>(1, kCollectBatchRows / static_cast<std::int64_t>(chunks::kChunkRows));

// The WAL size (pages of 4 KiB) past which a commit wakes the checkpointer;
// SQLite's own default for its automatic checkpoint.
constexpr int kCheckpointWalPages = 1000;
// ...and past which the committing writer checkpoints too (see StartCheckpointer).
constexpr int kCheckpointWalPagesHard = 4000;
// How long a writer past that waits for a background checkpoint in progress.
constexpr auto kCheckpointBackpressureWait = std::chrono::milliseconds(200);
// How often an idle store renews its read anchor. Readers see other processes'
// commits (the CLI's) at once regardless; this bounds how long such a commit
// costs readers their lock fcntls and how long the anchor's old snapshot keeps
// the checkpointer from copying it.
constexpr auto kAnchorRenewInterval = std::chrono::seconds(1);

// --- connections ----------------------------------------------------------------

// Reader connections, handed out one per call.
class ReaderPool {
 public:
  using Lease = PoolLease<ReaderPool, Connection>;

  void Add(std::unique_ptr<Connection> conn) { idle_.push_back(std::move(conn)); }

  // Unavailable when no connection frees up within `wait`.
  Result<Lease> Acquire(std::chrono::milliseconds wait) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, wait, [this] { return !idle_.empty(); })) {
      return Fail(Error::Unavailable(fmt::format("store busy: no reader connection free within {} ms", wait.count())));
    }
    std::unique_ptr<Connection> conn = std::move(idle_.back());
    idle_.pop_back();
    return Lease(this, std::move(conn));
  }

 private:
  friend Lease;
  void Release(std::unique_ptr<Connection> conn) {
    {
      std::lock_guard lock(mu_);
      idle_.push_back(std::move(conn));
    }
    cv_.notify_one();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(const SqliteOptions& options, std::unique_ptr<Connection> writer)
      : secrets_(options.secrets),
        clock_(options.clock != nullptr ? *options.clock : Clock::Real()),
        max_tokens_(options.max_tokens_per_tenant),
        wait_(options.busy_timeout_ms),
        statement_timeout_(options.statement_timeout_ms),
        writer_(std::move(writer)),
        collector_([this] { return Write<CollectStep>([](Connection& c) { return CollectBatch(c); }); }, {}) {}

  ~SqliteStore() override {
    collector_.Stop();  // before the connections go
    {
      std::lock_guard lock(ckpt_mu_);
      ckpt_stop_ = true;
    }
    ckpt_cv_.notify_all();
    if (checkpointer_.joinable()) checkpointer_.join();
  }

  void AddReader(std::unique_ptr<Connection> conn) { readers_.Add(std::move(conn)); }

  // Installs the read anchor (once, at open, before the first write) and takes
  // its first snapshot.
  void SetReadAnchor(std::unique_ptr<Connection> conn) {
    std::lock_guard lock(writer_mu_);
    anchor_.emplace(std::move(conn));
    RenewAnchor();
  }

  // Called once at open, before the collector starts: turns whatever a crash or a
  // bug could have left unaccounted for into garbage. Every state change is
  // transactional, so normally this finds nothing; it costs one index seek per
  // generation in assignment_chunks.
  Status Reconcile() {
    return Write<void>([&](Connection& c) -> Status {
      std::int64_t found = 0;
      // A staging set whose job is gone; a 'current' set no token points at.
      for (const char* sql : {
               "UPDATE assignment_generations SET state = 'garbage', job_key = NULL WHERE state = 'staging' "
               "AND job_key NOT IN (SELECT key FROM sync_jobs)",
               "UPDATE assignment_generations SET state = 'garbage' WHERE state = 'current' AND generation NOT IN "
               "(SELECT assignments_generation FROM vpp_tokens WHERE assignments_generation IS NOT NULL)",
           }) {
        if (Status s = RunFixed(c, sql); !s) return s;
        found += c.Changes();
      }
      // Rows of a generation the registry does not know.
      Result<Stmt> next =
          c.Prepare("SELECT generation FROM assignment_chunks WHERE generation > ?1 ORDER BY generation LIMIT 1");
      if (!next) return Fail(next.error());
      Result<Stmt> known = c.Prepare("SELECT 1 FROM assignment_generations WHERE generation = ?1");
      if (!known) return Fail(known.error());
      Result<Stmt> adopt = c.Prepare(
          "INSERT INTO assignment_generations (generation, token_key, job_key, state) VALUES (?1, 0, NULL, "
          "'garbage')");
      if (!adopt) return Fail(adopt.error());
      std::vector<std::int64_t> unknown;
      for (std::int64_t after = 0;;) {
        if (Status s = next->Bind(1, after); !s) return s;
        Result<bool> row = next->Step();
        if (!row) return Fail(row.error());
        if (!*row) break;
        after = next->Int(0);
        next->Reset();
        if (Status s = known->Bind(1, after); !s) return s;
        Result<bool> is_known = known->Step();
        if (!is_known) return Fail(is_known.error());
        known->Reset();
        if (!*is_known) unknown.push_back(after);
      }
      for (std::int64_t generation : unknown) {
        if (Status s = adopt->Bind(1, generation); !s) return s;
        if (Status s = adopt->Run(); !s) return s;
        adopt->Reset();
      }
      found += static_cast<std::int64_t>(unknown.size());
      // Counts of sets the registry does not know (there should be none).
      if (Status s = RunFixed(c,
                              "DELETE FROM assignment_counts WHERE generation NOT IN "
                              "(SELECT generation FROM assignment_generations)");
          !s) {
        return s;
      }
      if (found > 0) spdlog::warn("store: {} unaccounted assignment set(s) found at open; collecting them", found);
      return {};
    });
  }

  // Starts the collector thread (once, after Reconcile).
  void StartCollector() { collector_.Start(); }

  // Moves WAL checkpoints off the request path: the writer no longer checkpoints
  // when its commit takes the WAL past 1,000 pages (SQLite's default, ~10 ms with
  // the fsync that synchronous=NORMAL does at a checkpoint, paid by whichever
  // Graph request or staging commit happened to cross the line); it wakes this
  // thread, which checkpoints PASSIVE on a connection of its own, concurrently
  // with the writer and the readers.
  void StartCheckpointer(std::unique_ptr<Connection> conn) {
    checkpointer_conn_ = std::move(conn);
    writer_->OnWalCommit([this](int wal_pages) {
      std::unique_lock lock(ckpt_mu_);
      if (wal_pages < kCheckpointWalPagesHard) {
        writer_checkpoints_ = false;
        if (wal_pages < kCheckpointWalPages) return false;
        ckpt_pending_ = true;
        ckpt_cv_.notify_one();
        return false;
      }
      // Backpressure: should the thread fall far behind a stream of commits (a
      // starved CPU, a walk staged back to back), the writer checkpoints itself
      // as SQLite would, once past kCheckpointWalPagesHard (in RESTART mode,
      // waiting briefly for readers: see Connection::OnWalCommit). Its
      // checkpoint is turned away (busy) while the thread's runs, and with
      // commits back to back the thread's runs never catch up with the last
      // frame, so the WAL restarted only by chance: in sync_store_test's
      // TheWalStaysBounded a third of the runs at load 5-6 reached 32-38 MB
      // (before this round's faster staging too). So the thread starts no run
      // while it is the writer's turn, and the writer waits (bounded) for a run
      // in progress to end.
      writer_checkpoints_ = true;
      ckpt_idle_.wait_for(lock, kCheckpointBackpressureWait, [&] { return !ckpt_running_; });
      return true;
    });
    checkpointer_ = std::thread([this] { CheckpointLoop(); });
  }

  // --- tenants ---

  Status PutTenant(const Tenant& tenant) override {
    if (Status s = CheckTenantId(tenant.id); !s) return s;
    Timestamp created = tenant.created != 0 ? tenant.created : clock_.Now();
    return Write<void>([&](Connection& c) -> Status {
      // Not INSERT OR REPLACE: REPLACE deletes the old row first, and the delete
      // would cascade to every token of the tenant.
      Result<Stmt> stmt = c.Prepare(
          "INSERT INTO tenants (id, display_name, intune_licensed, created) VALUES (?1, ?2, ?3, ?4) "
          "ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, "
          "intune_licensed = excluded.intune_licensed");
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindAll(*stmt, tenant.id, tenant.display_name, tenant.intune_licensed, created); !s) return s;
      return stmt->Run();
    });
  }

  Result<Tenant> GetTenant(const std::string& tenant_id) override {
    return ReadOne<Tenant>([&](Connection& c) -> Result<Tenant> {
      Result<Stmt> stmt = c.Prepare("SELECT id, display_name, intune_licensed, created FROM tenants WHERE id = ?1");
      if (!stmt) return Fail(stmt.error());
      if (Status s = stmt->Bind(1, std::string_view(tenant_id)); !s) return Fail(s.error());
      Result<bool> row = stmt->Step();
      if (!row) return Fail(row.error());
      if (!*row) return Fail(TenantNotFound(tenant_id));
      return ReadTenant(*stmt);
    });
  }

  Result<std::vector<Tenant>> ListTenants() override {
    return ReadOne<std::vector<Tenant>>([&](Connection& c) -> Result<std::vector<Tenant>> {
      Result<Stmt> stmt = c.Prepare("SELECT id, display_name, intune_licensed, created FROM tenants ORDER BY id");
      if (!stmt) return Fail(stmt.error());
      std::vector<Tenant> tenants;
      for (;;) {
        Result<bool> row = stmt->Step();
        if (!row) return Fail(row.error());
        if (!*row) return tenants;
        tenants.push_back(ReadTenant(*stmt));
      }
    });
  }

  Status RemoveTenant(const std::string& tenant_id) override {
    return Write<void>([&](Connection& c) -> Status {
      // assignment_chunks has no foreign key (see migrations.cc): the tenant's
      // assignment sets, current and staged, become garbage for the collector, so
      // this transaction stays short however many rows they hold.
      Result<Stmt> retire = c.Prepare(
          "UPDATE assignment_generations SET state = 'garbage', job_key = NULL WHERE state <> 'garbage' "
          "AND token_key IN (SELECT token_key FROM vpp_tokens WHERE tenant_id = ?1)");
      if (!retire) return Fail(retire.error());
      if (Status s = BindAll(*retire, tenant_id); !s) return s;
      if (Status s = retire->Run(); !s) return s;
      if (c.Changes() > 0) NoteGarbage();
      Result<Stmt> stmt = c.Prepare("DELETE FROM tenants WHERE id = ?1");
      if (!stmt) return Fail(stmt.error());
      if (Status s = stmt->Bind(1, std::string_view(tenant_id)); !s) return s;
      if (Status s = stmt->Run(); !s) return s;
      // changes() counts the tenant row only, not the rows the cascade removed.
      if (c.Changes() == 0) return Fail(TenantNotFound(tenant_id));
      return {};
    });
  }

  // --- tokens ---

  Result<VppToken> CreateToken(const std::string& tenant_id, VppToken token) override {
    // Sealing is pure CPU: done before taking the write lock.
    Result<std::string> sealed = PrepareNewToken(tenant_id, token, clock_, *secrets_);
    if (!sealed) return Fail(sealed.error());
    return Write<VppToken>([&](Connection& c) -> Result<VppToken> {
      Result<Stmt> tenant = c.Prepare("SELECT 1 FROM tenants WHERE id = ?1");
      if (!tenant) return Fail(tenant.error());
      if (Status s = tenant->Bind(1, std::string_view(tenant_id)); !s) return Fail(s.error());
      Result<bool> found = tenant->Step();
      if (!found) return Fail(found.error());
      if (!*found) return Fail(TenantNotFound(tenant_id));

      Result<Stmt> count = c.Prepare("SELECT count(*), coalesce(sum(id = ?2), 0) FROM vpp_tokens WHERE tenant_id = ?1");
      if (!count) return Fail(count.error());
      if (Status s = BindAll(*count, tenant_id, token.id); !s) return Fail(s.error());
      Result<bool> row = count->Step();
      if (!row) return Fail(row.error());
      if (Status s = CheckTokenRoom(token.id, count->Int(1) != 0, count->Int(0), max_tokens_); !s) {
        return Fail(s.error());
      }

      Result<Stmt> insert = c.Prepare(TokenInsertSql());
      if (!insert) return Fail(insert.error());
      if (Status s = BindToken(*insert, tenant_id, token, *sealed); !s) return Fail(s.error());
      if (Status s = insert->Run(); !s) return Fail(s.error());
      VppToken created = token;
      created.token.clear();  // sealed now; reads never carry it
      return created;
    });
  }

  Result<VppToken> GetToken(const std::string& tenant_id, const std::string& id) override {
    return ReadOne<VppToken>([&](Connection& c) { return LoadToken(c, tenant_id, id); });
  }

  Result<Page<VppToken>> ListTokens(const std::string& tenant_id, const ListQuery& query) override {
    if (Status s = CheckPaging(query.skip, query.limit); !s) return Fail(s.error());
    SqlBuilder builder;
    Result<std::string> where = TenantWhere(tenant_id, query.filter, Table::kVppTokens, builder);
    if (!where) return Fail(where.error());
    Result<std::string> order = CompileOrderBy(query.order_by, Table::kVppTokens, "id");
    if (!order) return Fail(order.error());
    return ReadPage<VppToken>(TokenSelectList(), "vpp_tokens", *where, *order, query, builder,
                              [](Stmt& row) { return ReadToken(row); });
  }

  // One page of `SELECT select_list FROM table WHERE where ORDER BY order`: `query.limit`
  // rows from `query.skip`, one more fetched to tell has_more; each row read by `read`.
  template <class T, class ReadRow>
  Result<Page<T>> ReadPage(const std::string& select_list, const char* table, const std::string& where,
                           const std::string& order, const ListQuery& query, SqlBuilder& builder, ReadRow&& read) {
    const std::string sql = PageSql(select_list, table, where, order, query, builder);
    return ReadOne<Page<T>>([&](Connection& c) -> Result<Page<T>> {
      Result<Stmt> stmt = c.PrepareDynamic(sql);
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindParams(*stmt, builder); !s) return Fail(s.error());
      Page<T> page;
      for (;;) {
        Result<bool> row = stmt->Step();
        if (!row) return Fail(row.error());
        if (!*row || !RoomOnPage(page, query.limit)) break;
        Result<T> item = read(*stmt);
        if (!item) return Fail(item.error());
        page.items.push_back(std::move(*item));
      }
      return page;
    });
  }

  Result<std::int64_t> CountTokens(const std::string& tenant_id, const std::optional<Expr>& filter) override {
    SqlBuilder builder;
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
      Result<std::int64_t> token_key = TokenKey(c, tenant_id, id);
      if (!token_key) return Fail(token_key.error());
      // assignment_chunks has no foreign key (see migrations.cc): the token's
      // sets, current and staged, become garbage for the collector (O(1) here,
      // however many rows); apps and jobs follow the token by cascade.
      if (Status s = RetireTokenGenerations(c, *token_key); !s) return s;
      Result<Stmt> stmt = c.Prepare("DELETE FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2");
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindAll(*stmt, tenant_id, id); !s) return s;
      if (Status s = stmt->Run(); !s) return s;
      if (c.Changes() == 0) return Fail(TokenNotFound(id));
      return {};
    });
  }

  // --- apps and licenses ---

  Result<Page<MobileApp>> ListApps(const std::string& tenant_id, const ListQuery& query) override {
    if (Status s = CheckPaging(query.skip, query.limit); !s) return Fail(s.error());
    SqlBuilder builder;
    Result<std::string> where = TenantWhere(tenant_id, query.filter, Table::kMobileApps, builder);
    if (!where) return Fail(where.error());
    Result<std::string> order = CompileOrderBy(query.order_by, Table::kMobileApps, "id");
    if (!order) return Fail(order.error());
    return ReadPage<MobileApp>(AppSelectList(), "mobile_apps", *where, *order, query, builder,
                               [](Stmt& row) -> Result<MobileApp> { return ReadApp(row); });
  }

  Result<std::int64_t> CountApps(const std::string& tenant_id, const std::optional<Expr>& filter) override {
    SqlBuilder builder;
    Result<std::string> where = TenantWhere(tenant_id, filter, Table::kMobileApps, builder);
    if (!where) return Fail(where.error());
    return Count(fmt::format("SELECT count(*) FROM mobile_apps WHERE {}", *where), builder);
  }

  Result<MobileApp> GetApp(const std::string& tenant_id, const std::string& app_id) override {
    static const std::string sql =
        fmt::format("SELECT {} FROM mobile_apps WHERE tenant_id = ?1 AND id = ?2", AppSelectList());
    return ReadOne<MobileApp>([&](Connection& c) -> Result<MobileApp> {
      Result<std::vector<MobileApp>> apps = QueryApps(c, sql, tenant_id, app_id);
      if (!apps) return Fail(apps.error());
      if (apps->empty()) return Fail(AppNotFound(app_id));
      return std::move(apps->front());
    });
  }

  Result<Page<LicenseAssignment>> ListAppAssignments(const std::string& tenant_id, const std::string& app_id,
                                                     std::int64_t skip, std::int64_t limit) override {
    if (Status s = CheckPaging(skip, limit); !s) return Fail(s.error());
    return Read<Page<LicenseAssignment>>([&](Connection& c) -> Result<Page<LicenseAssignment>> {
      Result<Stmt> app = c.Prepare(
          "SELECT t.assignments_generation, a.adam_id, a.pricing_param FROM mobile_apps a "
          "JOIN vpp_tokens t ON t.tenant_id = a.tenant_id AND t.id = a.token_id "
          "WHERE a.tenant_id = ?1 AND a.id = ?2");
      if (!app) return Fail(app.error());
      if (Status s = BindAll(*app, tenant_id, app_id); !s) return Fail(s.error());
      Result<bool> found = app->Step();
      if (!found) return Fail(found.error());
      if (!*found) return Fail(AppNotFound(app_id));
      Page<LicenseAssignment> page;
      if (app->IsNull(0)) return page;  // the token has no assignments
      // Only the token's current generation: staged and garbage sets are invisible.
      std::int64_t generation = app->Int(0);
      std::string adam_id = app->Text(1), pricing_param = app->Text(2);
      app->Reset();
      Result<std::optional<std::int64_t>> app_key = FindAppKey(c, adam_id, pricing_param);
      if (!app_key) return Fail(app_key.error());
      if (!*app_key) return page;  // no set ever held a row of this app

      return ListChunkedAssignments(c, generation, **app_key, adam_id, pricing_param, skip, limit);
    });
  }

  // An app's assignments in Graph's order, `limit` from `skip` (see
  // ListAppAssignments). An app of one run: whole chunks are skipped by their row
  // counts and only the chunks of the page are decoded. Of several runs: all are
  // decoded and merged.
  static Result<Page<LicenseAssignment>> ListChunkedAssignments(Connection& c, std::int64_t generation,
                                                                std::int64_t app_key, const std::string& adam_id,
                                                                const std::string& pricing_param, std::int64_t skip,
                                                                std::int64_t limit) {
    Result<Stmt> runs =
        c.Prepare("SELECT runs FROM assignment_counts WHERE generation = ?1 AND adam_id = ?2 AND pricing_param = ?3");
    if (!runs) return Fail(runs.error());
    if (Status s = BindAll(*runs, generation, adam_id, pricing_param); !s) return Fail(s.error());
    Result<bool> counted = runs->Step();
    if (!counted) return Fail(counted.error());
    Page<LicenseAssignment> page;
    if (!*counted) return page;  // the set holds no assignment of the app
    const bool one_run = runs->Int(0) == 1;
    runs->Reset();
    std::vector<LicenseAssignment> rows;
    if (!one_run) {
      Result<std::vector<LicenseAssignment>> all = ReadAppChunks(c, generation, app_key, adam_id, pricing_param);
      if (!all) return Fail(all.error());
      rows = std::move(*all);
      chunks::SortDistinct(rows);
    } else {
      Result<Stmt> read =
          c.Prepare("SELECT rows, data FROM assignment_chunks WHERE generation = ?1 AND app_key = ?2 ORDER BY chunk");
      if (!read) return Fail(read.error());
      if (Status s = BindAll(*read, generation, app_key); !s) return Fail(s.error());
      // `rows` then starts at the chunk holding row `skip`.
      std::int64_t first = 0;
      for (;;) {
        Result<bool> row = read->Step();
        if (!row) return Fail(row.error());
        if (!*row || static_cast<std::int64_t>(rows.size()) > (skip - first) + limit) break;
        const std::int64_t n = read->Int(0);
        if (rows.empty() && first + n <= skip) {  // wholly before the page: not decoded
          first += n;
          continue;
        }
        if (Status s = chunks::Decode(read->Blob(1), n, adam_id, pricing_param, ChunkName(generation, adam_id), rows);
            !s) {
          return Fail(s.error());
        }
      }
      skip -= first;
    }
    for (auto it = rows.begin() + std::min<std::int64_t>(skip, static_cast<std::int64_t>(rows.size()));
         it != rows.end() && RoomOnPage(page, limit); ++it) {
      page.items.push_back(std::move(*it));
    }
    return page;
  }

  Status ForEachAssignment(const std::string& tenant_id, const std::string& token_id, std::size_t batch,
                           const std::function<Status(const std::vector<LicenseAssignment>&)>& on_batch) override {
    if (Status s = CheckBatchSize(batch); !s) return s;
    // Keyset pagination on (app_key, chunk): each read is an index seek past the
    // last chunk seen, so the whole walk is O(assignments). Each read is a
    // transaction of its own and no connection is held while `on_batch` runs, so
    // a slow consumer neither starves the reader pool nor pins the WAL. The walk
    // stays on the set the token had when it began: each read checks, in its
    // snapshot, that the token still points at it (the collector deletes a
    // replaced set), and fails with FailedPrecondition when a sync replaced it
    // meanwhile; a token deleted mid-walk ends it.
    struct ChunkRead {
      bool token_gone = false;
      std::optional<std::int64_t> generation;
      std::vector<std::tuple<std::int64_t, std::int64_t, std::string, std::string, std::int64_t, std::string>> chunks;
    };
    std::optional<std::int64_t> pinned;
    std::int64_t last_app = -1, last_chunk = -1;
    chunks::Batcher batcher(batch, on_batch);
    for (bool first = true;; first = false) {
      Result<ChunkRead> got = Read<ChunkRead>([&](Connection& c) -> Result<ChunkRead> {
        ChunkRead out;
        Result<Stmt> token = c.Prepare(
            "SELECT assignments_generation FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2");
        if (!token) return Fail(token.error());
        if (Status s = BindAll(*token, tenant_id, token_id); !s) return Fail(s.error());
        Result<bool> row = token->Step();
        if (!row) return Fail(row.error());
        if (!*row) {
          out.token_gone = true;
          return out;
        }
        if (!token->IsNull(0)) out.generation = token->Int(0);
        token->Reset();
        if (!out.generation || (!first && out.generation != pinned)) return out;
        Result<Stmt> next = c.Prepare(
            "SELECT c.app_key, c.chunk, p.adam_id, p.pricing_param, c.rows, c.data FROM assignment_chunks c "
            "JOIN assignment_apps p ON p.app_key = c.app_key "
            "WHERE c.generation = ?1 AND (c.app_key, c.chunk) > (?2, ?3) ORDER BY c.app_key, c.chunk LIMIT ?4");
        if (!next) return Fail(next.error());
        const std::int64_t limit = static_cast<std::int64_t>(std::max<std::size_t>(1, batch / chunks::kChunkRows));
        if (Status s = BindAll(*next, *out.generation, last_app, last_chunk, limit); !s) return Fail(s.error());
        for (;;) {
          Result<bool> more = next->Step();
          if (!more) return Fail(more.error());
          if (!*more) return out;
          const std::string_view data = next->Blob(5);
          out.chunks.emplace_back(next->Int(0), next->Int(1), next->Text(2), next->Text(3), next->Int(4),
                                  std::string(data));
        }
      });
      if (!got) return Fail(got.error());
      if (got->token_gone && first) return Fail(TokenNotFound(token_id));
      if (got->token_gone || (first && !got->generation)) return batcher.Flush();
      if (first) pinned = got->generation;
      if (got->generation != pinned) {
        return Fail(SetReplacedDuringWalk(token_id));
      }
      if (got->chunks.empty()) return batcher.Flush();
      for (const auto& [app_key, chunk, adam_id, pricing_param, rows, data] : got->chunks) {
        if (Status s = batcher.Add(data, rows, adam_id, pricing_param, ChunkName(*pinned, adam_id)); !s) return s;
        last_app = app_key;
        last_chunk = chunk;
      }
    }
  }

  Result<std::vector<MobileApp>> FindAppsByBundleId(const std::string& tenant_id,
                                                    const std::string& bundle_id) override {
    if (bundle_id.empty()) return std::vector<MobileApp>{};  // an unknown bundle id is stored as ''
    static const std::string by_bundle = fmt::format(
        "SELECT {} FROM mobile_apps WHERE tenant_id = ?1 AND bundle_id = ?2 ORDER BY token_id, id", AppSelectList());
    static const std::string by_adam = fmt::format(
        "SELECT {} FROM mobile_apps WHERE tenant_id = ?1 AND adam_id = ?2 ORDER BY token_id, id", AppSelectList());
    return Read<std::vector<MobileApp>>([&](Connection& c) -> Result<std::vector<MobileApp>> {
      Result<std::vector<MobileApp>> apps = QueryApps(c, by_bundle, tenant_id, bundle_id);
      if (!apps || !apps->empty()) return apps;
      return QueryApps(c, by_adam, tenant_id, bundle_id);
    });
  }

  Result<std::vector<VppToken>> FindTokensByAppleUid(const std::string& tenant_id, const std::string& uid,
                                                     const std::string& except_token_id) override {
    static const std::string sql =
        fmt::format("SELECT {} FROM vpp_tokens WHERE tenant_id = ?1 AND apple_uid = ?2 AND id <> ?3 ORDER BY id",
                    TokenSelectList());
    return ReadOne<std::vector<VppToken>>([&](Connection& c) -> Result<std::vector<VppToken>> {
      Result<Stmt> stmt = c.Prepare(sql);
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindAll(*stmt, tenant_id, uid, except_token_id); !s) return Fail(s.error());
      std::vector<VppToken> tokens;
      for (;;) {
        Result<bool> row = stmt->Step();
        if (!row) return Fail(row.error());
        if (!*row) return tokens;
        Result<VppToken> token = ReadToken(*stmt);
        if (!token) return Fail(token.error());
        tokens.push_back(std::move(*token));
      }
    });
  }

  Result<std::string> GetTokenSecret(const std::string& tenant_id, const std::string& id) override {
    Result<std::string> sealed = ReadOne<std::string>([&](Connection& c) -> Result<std::string> {
      Result<Stmt> stmt = c.Prepare("SELECT token_sealed FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2");
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindAll(*stmt, tenant_id, id); !s) return Fail(s.error());
      Result<bool> row = stmt->Step();
      if (!row) return Fail(row.error());
      if (!*row) return Fail(TokenNotFound(id));
      return stmt->Text(0);
    });
    if (!sealed) return sealed;
    // Opened outside the reader lease: AES-GCM is pure CPU.
    return OpenTokenSecret(tenant_id, id, *sealed, *secrets_);
  }

  // --- sync jobs ---

  Result<Enqueued> EnqueueJob(const std::string& tenant_id, const std::string& token_id, const EnqueueOptions& options,
                              const std::function<Status(VppToken&)>& mutate) override {
    if (Status s = CheckEnqueueOptions(options); !s) return Fail(s.error());
    // Coalescing needs no write: when a job of this kind is already queued or
    // running, answer from a reader's snapshot and leave the write lock to the
    // sync that may be holding it (a FinishJob swapping in 100,000 rows holds it
    // for ~0.1 s; syncLicenses p99 target 10 ms, bench/sync). The snapshot is
    // taken after the call began, so the answer is one a write transaction
    // could have given. When no job is queued, the write path decides (and
    // checks again under its lock).
    Result<std::optional<VppToken>> coalesced =
        Read<std::optional<VppToken>>([&](Connection& c) -> Result<std::optional<VppToken>> {
          Result<Stmt> queued =
              c.Prepare("SELECT 1 FROM sync_jobs WHERE tenant_id = ?1 AND token_id = ?2 AND kind = ?3");
          if (!queued) return Fail(queued.error());
          if (Status s = BindAll(*queued, tenant_id, token_id, options.kind); !s) return Fail(s.error());
          Result<bool> exists = queued->Step();
          if (!exists) return Fail(exists.error());
          if (!*exists) return std::optional<VppToken>();
          queued->Reset();
          Result<VppToken> token = LoadToken(c, tenant_id, token_id);
          if (!token) return Fail(token.error());
          return std::optional<VppToken>(std::move(*token));
        });
    if (coalesced && *coalesced) return Enqueued{std::move(**coalesced), false};
    std::string job_id = NewGuid();
    return Write<Enqueued>([&](Connection& c) -> Result<Enqueued> {
      // Inside BEGIN IMMEDIATE nobody else writes between this check and the
      // insert; the unique index on (tenant, token, kind) would refuse a second
      // job even if that ever changed.
      Result<Stmt> queued = c.Prepare("SELECT 1 FROM sync_jobs WHERE tenant_id = ?1 AND token_id = ?2 AND kind = ?3");
      if (!queued) return Fail(queued.error());
      if (Status s = BindAll(*queued, tenant_id, token_id, options.kind); !s) return Fail(s.error());
      Result<bool> exists = queued->Step();
      if (!exists) return Fail(exists.error());
      if (*exists) {
        Result<VppToken> token = LoadToken(c, tenant_id, token_id);
        if (!token) return Fail(token.error());
        return Enqueued{std::move(*token), false};
      }
      Result<VppToken> token = MutateToken(c, tenant_id, token_id, mutate);
      if (!token) return Fail(token.error());
      Result<Stmt> insert = c.Prepare(
          "INSERT INTO sync_jobs (id, tenant_id, token_id, kind, params, requested, not_before, attempts, "
          "lease_owner, lease_expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, '', 0)");
      if (!insert) return Fail(insert.error());
      if (Status s = BindAll(*insert, job_id, tenant_id, token_id, options.kind, options.params, token->last_modified,
                             options.not_before);
          !s) {
        return Fail(s.error());
      }
      if (Status s = insert->Run(); !s) return Fail(s.error());
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
          "WHERE j.not_before <= ?1 AND (j.lease_owner = '' OR j.lease_expires <= ?1) "
          "AND NOT EXISTS (SELECT 1 FROM sync_jobs o WHERE o.tenant_id = j.tenant_id AND o.token_id = j.token_id "
          "AND o.key <> j.key AND o.lease_owner <> '' AND o.lease_expires > ?1) "
          "ORDER BY j.requested, j.key LIMIT 1",
          kJobSelectList);
      Result<Stmt> stmt = c.Prepare(pick);
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindAll(*stmt, now); !s) return Fail(s.error());
      Result<bool> row = stmt->Step();
      if (!row) return Fail(row.error());
      if (!*row) return std::optional<SyncJob>();
      std::int64_t key = stmt->Int(0);
      SyncJob job = ReadJob(*stmt);
      const bool taken_over = StampClaim(job, worker, expires);

      Result<Stmt> claim = c.Prepare(
          "UPDATE sync_jobs SET lease_owner = ?2, lease_expires = ?3, attempts = ?4, pages_walked = 0, "
          "pages_total = 0, assignments_staged = 0 WHERE key = ?1");
      if (!claim) return Fail(claim.error());
      if (Status s = BindAll(*claim, key, worker, expires, job.attempts); !s) return Fail(s.error());
      if (Status s = claim->Run(); !s) return Fail(s.error());
      if (taken_over) {
        if (Status s = RetireStaging(c, key); !s) return Fail(s.error());
      }
      return std::optional<SyncJob>(std::move(job));
    });
  }

  Status RenewLease(const SyncJob& job, Timestamp lease_expires) override {
    return Write<void>([&](Connection& c) -> Status {
      Result<std::int64_t> key = CheckLease(c, job);
      if (!key) return Fail(key.error());
      Result<Stmt> stmt = c.Prepare(
          "UPDATE sync_jobs SET lease_expires = ?2, pages_walked = ?3, pages_total = ?4, assignments_staged = ?5 "
          "WHERE key = ?1");
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindAll(*stmt, *key, lease_expires, job.pages_walked, job.pages_total, job.assignments_staged);
          !s) {
        return s;
      }
      return stmt->Run();
    });
  }

  Result<std::vector<SyncJob>> FindJobs(const std::string& tenant_id, const std::string& token_id) override {
    return Read<std::vector<SyncJob>>([&](Connection& c) -> Result<std::vector<SyncJob>> {
      static const std::string query = fmt::format(
          "SELECT {} FROM sync_jobs WHERE tenant_id = ?1 AND token_id = ?2 ORDER BY requested, key", kJobSelectList);
      Result<Stmt> stmt = c.Prepare(query);
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindAll(*stmt, tenant_id, token_id); !s) return Fail(s.error());
      std::vector<SyncJob> jobs;
      for (;;) {
        Result<bool> row = stmt->Step();
        if (!row) return Fail(row.error());
        if (!*row) break;
        jobs.push_back(ReadJob(*stmt));
      }
      return jobs;
    });
  }

  Status ReleaseJob(const SyncJob& job, Timestamp not_before) override {
    return Write<void>([&](Connection& c) -> Status {
      Result<std::int64_t> key = CheckLease(c, job);
      if (!key) return Fail(key.error());
      Result<Stmt> stmt =
          c.Prepare("UPDATE sync_jobs SET lease_owner = '', lease_expires = 0, not_before = ?2 WHERE key = ?1");
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindAll(*stmt, *key, not_before); !s) return s;
      if (Status s = stmt->Run(); !s) return s;
      return RetireStaging(c, *key);
    });
  }

  Result<std::int64_t> CountJobs() override {
    return ReadOne<std::int64_t>([](Connection& c) { return c.QueryInt("SELECT count(*) FROM sync_jobs"); });
  }

  // --- snapshots ---

  using Store::StageAssignments;
  Status StageAssignments(const SyncJob& job, const StagedAssignments& rows) override {
    if (Status s = CheckStagedRows(rows); !s) return s;
    // Sorted, grouped by app and encoded before the write lock is taken; the
    // transaction then only appends a few blobs per app.
    // One encoder per thread, its buffers kept between calls (see
    // StagingEncoder): a sync's stager stages all of its rows on one thread.
    thread_local chunks::StagingEncoder encoder;
    const std::vector<chunks::AppRun>& runs = encoder.Encode(rows);
    // Apps go in transactions of about kStageBytesPerCommit (an app's run is
    // never split: a run is what keeps its chunks readable in order), so that a
    // Graph write waiting behind one waits a few ms at most.
    std::size_t begin = 0;
    do {
      std::size_t end = begin, bytes = 0;
      while (end < runs.size() && (end == begin || bytes + runs[end].bytes <= kStageBytesPerCommit)) {
        bytes += runs[end++].bytes;
      }
      Status staged = Write<void>([&](Connection& c) -> Status {
        Result<std::int64_t> key = CheckLease(c, job);
        if (!key) return Fail(key.error());
        if (begin == end) return {};  // no rows: the lease check alone
        Result<std::int64_t> generation = StagingGeneration(c, job, *key);
        if (!generation) return Fail(generation.error());
        for (std::size_t i = begin; i < end; ++i) {
          if (Status s = AppendRun(c, *generation, runs[i]); !s) return s;
        }
        return {};
      });
      if (!staged) return staged;
      begin = end;
    } while (begin < runs.size());
    return {};
  }

  Status ClearStaged(const SyncJob& job) override {
    return Write<void>([&](Connection& c) -> Status {
      Result<std::int64_t> key = CheckLease(c, job);
      if (!key) return Fail(key.error());
      // O(1): the staged set becomes garbage; the next StageAssignments starts a
      // fresh generation.
      return RetireStaging(c, *key);
    });
  }

  Result<VppToken> FinishJob(const SyncJob& job, const std::optional<SyncSnapshot>& snapshot,
                             const std::function<Status(VppToken&)>& mutate) override {
    if (snapshot && snapshot->assignments != SyncSnapshot::Assignments::kKeep) {
      if (Status s = MergeStagedRuns(job); !s) return Fail(s.error());
    }
    // nullopt from the body: the token is gone; the job's removal still commits.
    Result<std::optional<VppToken>> finished =
        Write<std::optional<VppToken>>([&](Connection& c) -> Result<std::optional<VppToken>> {
          bool gone = false;
          Result<std::int64_t> job_key = CheckLease(c, job, &gone);
          if (!job_key) {
            // Deleting the token cascades to its jobs, so a vanished job may mean a
            // vanished token: that is NotFound, not a lost lease.
            if (gone) {
              Result<std::int64_t> token_key = TokenKey(c, job.tenant_id, job.token_id);
              if (!token_key && token_key.error().code == Code::kNotFound) return std::optional<VppToken>();
            }
            return Fail(job_key.error());
          }
          Result<std::int64_t> token_key = TokenKey(c, job.tenant_id, job.token_id);
          if (!token_key) {
            if (token_key.error().code != Code::kNotFound) return Fail(token_key.error());
            if (Status s = DeleteJob(c, *job_key); !s) return Fail(s.error());
            return std::optional<VppToken>();
          }
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

  // FinishJob's first part: the staged apps that came in several runs are merged
  // (duplicates dropped), one app per write transaction, before the transaction
  // that swaps the set in, so that neither holds the write lock (nor grows the
  // WAL) for long. The staged set is invisible to readers meanwhile. Stops
  // quietly when the lease is lost or nothing is staged: FinishJob's own
  // transaction then says so, or has nothing to merge.
  Status MergeStagedRuns(const SyncJob& job) {
    for (;;) {
      Result<bool> merged = Write<bool>([&](Connection& c) -> Result<bool> {
        Result<std::int64_t> job_key = CheckLease(c, job);
        if (!job_key) return false;
        Result<std::optional<std::int64_t>> staged = FindStagingGeneration(c, *job_key);
        if (!staged) return Fail(staged.error());
        if (!*staged) return false;
        Result<std::vector<std::pair<std::string, std::string>>> split = AppsOfManyRuns(c, **staged, 1, 1);
        if (!split) return Fail(split.error());
        if (split->empty()) return false;
        if (Status s = MergeRuns(c, **staged, split->front().first, split->front().second); !s) return Fail(s.error());
        return true;
      });
      if (!merged) return Fail(merged.error());
      if (!*merged) return {};
    }
  }

  Result<std::vector<std::pair<std::string, std::string>>> TokensDueForSync(Timestamp before, int limit) override {
    using Due = std::vector<std::pair<std::string, std::string>>;
    if (limit < 0) return Fail(Error::InvalidArgument("store: limit must not be negative"));
    return ReadOne<Due>([&](Connection& c) -> Result<Due> {
      Result<Stmt> stmt = c.Prepare(
          "SELECT tenant_id, id FROM vpp_tokens t WHERE state = 'valid' AND last_sync < ?1 "
          "AND NOT EXISTS (SELECT 1 FROM sync_jobs j WHERE j.tenant_id = t.tenant_id AND j.token_id = t.id) "
          "ORDER BY last_sync, tenant_id, id LIMIT ?2");
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindAll(*stmt, before, limit); !s) return Fail(s.error());
      Due due;
      for (;;) {
        Result<bool> row = stmt->Step();
        if (!row) return Fail(row.error());
        if (!*row) return due;
        due.emplace_back(stmt->Text(0), stmt->Text(1));
      }
    });
  }

  // --- this installation ---

  Result<std::string> InstallationId(const std::string& proposed) override {
    if (Status s = CheckProposedInstallationId(proposed); !s) return Fail(s.error());
    // BEGIN IMMEDIATE holds SQLite's write lock from the insert to the read, so
    // another process opening the same file sees either no row or this one.
    return Write<std::string>([&](Connection& c) -> Result<std::string> {
      Result<Stmt> insert =
          c.Prepare("INSERT INTO vppd_settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING");
      if (!insert) return Fail(insert.error());
      if (Status s = BindAll(*insert, std::string_view(kInstallationIdSetting), proposed); !s) return Fail(s.error());
      if (Status s = insert->Run(); !s) return Fail(s.error());
      Result<Stmt> select = c.Prepare("SELECT value FROM vppd_settings WHERE name = ?1");
      if (!select) return Fail(select.error());
      if (Status s = select->Bind(1, std::string_view(kInstallationIdSetting)); !s) return Fail(s.error());
      Result<bool> row = select->Step();
      if (!row) return Fail(row.error());
      if (!*row) return Fail(Error::Internal("store: the installation id vanished while it was written"));
      return CheckedStoredInstallationId(select->Text(0));
    });
  }

 private:
  static Tenant ReadTenant(const Stmt& row) { return Tenant{row.Text(0), row.Text(1), row.Int(2) != 0, row.Int(3)}; }

  // The count `sql` (text built at run time) returns with `builder`'s parameters.
  Result<std::int64_t> Count(const std::string& sql, const SqlBuilder& builder) {
    return ReadOne<std::int64_t>([&](Connection& c) -> Result<std::int64_t> {
      Result<Stmt> stmt = c.PrepareDynamic(sql);
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindParams(*stmt, builder); !s) return Fail(s.error());
      Result<bool> row = stmt->Step();
      if (!row) return Fail(row.error());
      return stmt->Int(0);
    });
  }

  Result<VppToken> LoadToken(Connection& c, const std::string& tenant_id, const std::string& id) {
    // Built once: this is the statement of every Graph item read.
    static const std::string sql =
        fmt::format("SELECT {} FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2", TokenSelectList());
    Result<Stmt> stmt = c.Prepare(sql);
    if (!stmt) return Fail(stmt.error());
    // Not copied into SQLite: both outlive the lease, which clears the bindings.
    if (Status s = stmt->BindStatic(1, tenant_id); !s) return Fail(s.error());
    if (Status s = stmt->BindStatic(2, id); !s) return Fail(s.error());
    Result<bool> row = stmt->Step();
    if (!row) return Fail(row.error());
    if (!*row) return Fail(TokenNotFound(id));
    return ReadToken(*stmt);
  }

  // The read-modify-write of UpdateToken, EnqueueJob and FinishJob, inside the
  // caller's write transaction. The token is re-sealed only when `mutate` set a new
  // plaintext; otherwise the stored ciphertext is kept (and never opened).
  Result<VppToken> MutateToken(Connection& c, const std::string& tenant_id, const std::string& id,
                               const std::function<Status(VppToken&)>& mutate) {
    Result<VppToken> stored = LoadToken(c, tenant_id, id);
    if (!stored) return stored;
    Result<MutatedToken> mutated = MutateStoredToken(tenant_id, *stored, mutate, clock_, *secrets_);
    if (!mutated) return Fail(mutated.error());
    Result<Stmt> update = c.Prepare(TokenUpdateSql());
    if (!update) return Fail(update.error());
    if (Status s = BindToken(*update, tenant_id, mutated->token, mutated->sealed); !s) return Fail(s.error());
    if (Status s = update->Run(); !s) return Fail(s.error());
    return std::move(mutated->token);
  }

  // The token's integer key (assignment_generations.token_key). NotFound.
  static Result<std::int64_t> TokenKey(Connection& c, const std::string& tenant_id, const std::string& id) {
    Result<Stmt> stmt = c.Prepare("SELECT token_key FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2");
    if (!stmt) return Fail(stmt.error());
    if (Status s = BindAll(*stmt, tenant_id, id); !s) return Fail(s.error());
    Result<bool> row = stmt->Step();
    if (!row) return Fail(row.error());
    if (!*row) return Fail(TokenNotFound(id));
    if (stmt->IsNull(0)) return Fail(Error::Internal(fmt::format("store: vpp_token {} has no token_key", id)));
    return stmt->Int(0);
  }

  // --- assignment generations (migration 3) ---
  //
  // Every helper below runs inside the caller's write transaction. The states only
  // move staging → current → garbage or staging → garbage; garbage is final, so
  // the collector can delete a garbage set's rows in transactions of its own.

  // The token's current generation; nullopt when it has no assignments.
  static Result<std::optional<std::int64_t>> CurrentGeneration(Connection& c, std::int64_t token_key) {
    Result<Stmt> stmt = c.Prepare("SELECT assignments_generation FROM vpp_tokens WHERE token_key = ?1");
    if (!stmt) return Fail(stmt.error());
    if (Status s = stmt->Bind(1, token_key); !s) return Fail(s.error());
    Result<bool> row = stmt->Step();
    if (!row) return Fail(row.error());
    if (!*row || stmt->IsNull(0)) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(stmt->Int(0));
  }

  // The generation job `job_key` is staging into; nullopt before its first row.
  static Result<std::optional<std::int64_t>> FindStagingGeneration(Connection& c, std::int64_t job_key) {
    Result<Stmt> stmt =
        c.Prepare("SELECT generation FROM assignment_generations WHERE job_key = ?1 AND state = 'staging'");
    if (!stmt) return Fail(stmt.error());
    if (Status s = stmt->Bind(1, job_key); !s) return Fail(s.error());
    Result<bool> row = stmt->Step();
    if (!row) return Fail(row.error());
    if (!*row) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(stmt->Int(0));
  }

  // The job's staging generation, allocated on its first staged row.
  static Result<std::int64_t> StagingGeneration(Connection& c, const SyncJob& job, std::int64_t job_key) {
    Result<std::optional<std::int64_t>> found = FindStagingGeneration(c, job_key);
    if (!found) return Fail(found.error());
    if (*found) return **found;
    Result<std::int64_t> token_key = TokenKey(c, job.tenant_id, job.token_id);
    if (!token_key) return Fail(token_key.error());
    Result<Stmt> insert = c.Prepare(
        "INSERT INTO assignment_generations (token_key, job_key, state) VALUES (?1, ?2, 'staging') "
        "RETURNING generation");
    if (!insert) return Fail(insert.error());
    if (Status s = BindAll(*insert, *token_key, job_key); !s) return Fail(s.error());
    Result<bool> row = insert->Step();
    if (!row) return Fail(row.error());
    if (!*row) return Fail(Error::Internal("store: INSERT ... RETURNING generation returned no row"));
    std::int64_t generation = insert->Int(0);
    if (Status s = insert->Run(); !s) return Fail(s.error());  // step to DONE: the insert completes
    return generation;
  }

  // Makes `staged` (nullopt: no rows, the empty set) the token's current set.
  static Status PromoteStaged(Connection& c, std::int64_t token_key, std::optional<std::int64_t> staged) {
    if (staged) {
      Result<Stmt> promote =
          c.Prepare("UPDATE assignment_generations SET state = 'current', job_key = NULL WHERE generation = ?1");
      if (!promote) return Fail(promote.error());
      if (Status s = promote->Bind(1, *staged); !s) return s;
      if (Status s = promote->Run(); !s) return s;
    }
    Result<Stmt> point = c.Prepare("UPDATE vpp_tokens SET assignments_generation = ?2 WHERE token_key = ?1");
    if (!point) return Fail(point.error());
    if (Status s = point->Bind(1, token_key); !s) return s;
    if (Status s = staged ? point->Bind(2, *staged) : point->BindNull(2); !s) return s;
    return point->Run();
  }

  Status RetireGeneration(Connection& c, std::int64_t generation) {
    Result<Stmt> stmt =
        c.Prepare("UPDATE assignment_generations SET state = 'garbage', job_key = NULL WHERE generation = ?1");
    if (!stmt) return Fail(stmt.error());
    if (Status s = stmt->Bind(1, generation); !s) return s;
    if (Status s = stmt->Run(); !s) return s;
    NoteGarbage();
    return {};
  }

  // The job's staged set, if any, becomes garbage (a walk restart, a hand-back, a
  // dead worker's job re-claimed, the job's end).
  Status RetireStaging(Connection& c, std::int64_t job_key) {
    Result<Stmt> stmt = c.Prepare(
        "UPDATE assignment_generations SET state = 'garbage', job_key = NULL WHERE job_key = ?1 AND state = 'staging'");
    if (!stmt) return Fail(stmt.error());
    if (Status s = stmt->Bind(1, job_key); !s) return s;
    if (Status s = stmt->Run(); !s) return s;
    if (c.Changes() > 0) NoteGarbage();
    return {};
  }

  // Every set of the token, current and staged, becomes garbage (the token goes).
  Status RetireTokenGenerations(Connection& c, std::int64_t token_key) {
    Result<Stmt> stmt = c.Prepare(
        "UPDATE assignment_generations SET state = 'garbage', job_key = NULL WHERE token_key = ?1 "
        "AND state <> 'garbage'");
    if (!stmt) return Fail(stmt.error());
    if (Status s = stmt->Bind(1, token_key); !s) return s;
    if (Status s = stmt->Run(); !s) return s;
    if (c.Changes() > 0) NoteGarbage();
    return {};
  }

  // Appends `run` to its app's chunks in `generation` and counts it in
  // assignment_counts (rows, one more run, its chunks).
  static Status AppendRun(Connection& c, std::int64_t generation, const chunks::AppRun& run) {
    Result<std::int64_t> app_key = AppKey(c, *run.adam_id, *run.pricing_param);
    if (!app_key) return Fail(app_key.error());
    const auto added = static_cast<std::int64_t>(run.chunks.size());
    Result<std::int64_t> first =
        AddToCounts(c, generation, *run.adam_id, *run.pricing_param, run.rows, /*runs=*/1, added);
    if (!first) return Fail(first.error());
    return InsertChunks(c, generation, *app_key, *first, run.chunks);
  }

  // Adds to the (generation, app)'s counts, creating them; returns the app's
  // chunk count before the addition (the number of its first new chunk).
  static Result<std::int64_t> AddToCounts(Connection& c, std::int64_t generation, const std::string& adam_id,
                                          const std::string& pricing_param, std::int64_t rows, std::int64_t runs,
                                          std::int64_t chunk_count) {
    Result<Stmt> count = c.Prepare(
        "INSERT INTO assignment_counts (generation, adam_id, pricing_param, rows, runs, chunks) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (generation, adam_id, pricing_param) DO UPDATE SET "
        "rows = rows + excluded.rows, runs = runs + excluded.runs, chunks = chunks + excluded.chunks "
        "RETURNING chunks");
    if (!count) return Fail(count.error());
    if (Status s = BindAll(*count, generation, adam_id, pricing_param, rows, runs, chunk_count); !s) {
      return Fail(s.error());
    }
    Result<bool> row = count->Step();
    if (!row) return Fail(row.error());
    if (!*row) return Fail(Error::Internal("store: no chunk count returned for an assignment set"));
    const std::int64_t total = count->Int(0);
    if (Status s = count->Run(); !s) return Fail(s.error());  // finish the upsert
    return total - chunk_count;
  }

  // `pieces`: chunks::Chunk or chunks::ChunkView.
  template <class Pieces>
  static Status InsertChunks(Connection& c, std::int64_t generation, std::int64_t app_key, std::int64_t first,
                             const Pieces& pieces) {
    Result<Stmt> insert =
        c.Prepare("INSERT INTO assignment_chunks (generation, app_key, chunk, rows, data) VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!insert) return Fail(insert.error());
    for (const auto& piece : pieces) {
      if (Status s = BindAll(*insert, generation, app_key, first++, piece.rows); !s) return s;
      if (Status s = insert->BindBlobStatic(5, piece.data); !s) return s;
      if (Status s = insert->Run(); !s) return s;
      insert->Reset();
    }
    return {};
  }

  // Every assignment of the app in `generation`, decoded, in chunk order (sorted
  // when the app's chunks are one run).
  static Result<std::vector<LicenseAssignment>> ReadAppChunks(Connection& c, std::int64_t generation,
                                                              std::int64_t app_key, const std::string& adam_id,
                                                              const std::string& pricing_param) {
    Result<Stmt> read =
        c.Prepare("SELECT rows, data FROM assignment_chunks WHERE generation = ?1 AND app_key = ?2 ORDER BY chunk");
    if (!read) return Fail(read.error());
    if (Status s = BindAll(*read, generation, app_key); !s) return Fail(s.error());
    std::vector<LicenseAssignment> rows;
    for (;;) {
      Result<bool> row = read->Step();
      if (!row) return Fail(row.error());
      if (!*row) return rows;
      if (Status s = chunks::Decode(read->Blob(1), read->Int(0), adam_id, pricing_param,
                                    ChunkName(generation, adam_id), rows);
          !s) {
        return Fail(s.error());
      }
    }
  }

  static std::string ChunkName(std::int64_t generation, const std::string& adam_id) {
    return fmt::format("set {} app {}", generation, adam_id);
  }

  // Rewrites the app's chunks in `generation` as one run: its runs merged,
  // duplicates dropped, the counts exact. O(the app's assignments).
  static Status MergeRuns(Connection& c, std::int64_t generation, const std::string& adam_id,
                          const std::string& pricing_param) {
    Result<std::int64_t> app_key = AppKey(c, adam_id, pricing_param);
    if (!app_key) return Fail(app_key.error());
    Result<std::vector<LicenseAssignment>> rows = ReadAppChunks(c, generation, *app_key, adam_id, pricing_param);
    if (!rows) return Fail(rows.error());
    chunks::SortDistinct(*rows);
    std::vector<const LicenseAssignment*> run;
    run.reserve(rows->size());
    for (const auto& r : *rows) run.push_back(&r);
    const std::vector<chunks::Chunk> pieces = chunks::EncodeRun(run);
    Result<Stmt> clear = c.Prepare("DELETE FROM assignment_chunks WHERE generation = ?1 AND app_key = ?2");
    if (!clear) return Fail(clear.error());
    if (Status s = BindAll(*clear, generation, *app_key); !s) return s;
    if (Status s = clear->Run(); !s) return s;
    if (Status s = InsertChunks(c, generation, *app_key, 0, pieces); !s) return s;
    Result<Stmt> count = c.Prepare(
        "UPDATE assignment_counts SET rows = ?4, runs = 1, chunks = ?5 "
        "WHERE generation = ?1 AND adam_id = ?2 AND pricing_param = ?3");
    if (!count) return Fail(count.error());
    if (Status s = BindAll(*count, generation, adam_id, pricing_param, static_cast<std::int64_t>(rows->size()),
                           static_cast<std::int64_t>(pieces.size()));
        !s) {
      return s;
    }
    return count->Run();
  }

  // The (adam_id, pricing_param) of the apps of `generation` whose chunks are
  // more than `max_runs` runs (at most `limit` of them; -1: all).
  static Result<std::vector<std::pair<std::string, std::string>>> AppsOfManyRuns(Connection& c,
                                                                                 std::int64_t generation,
                                                                                 std::int64_t max_runs,
                                                                                 std::int64_t limit = -1) {
    Result<Stmt> find = c.Prepare(
        "SELECT adam_id, pricing_param FROM assignment_counts WHERE generation = ?1 AND runs > ?2 LIMIT ?3");
    if (!find) return Fail(find.error());
    if (Status s = BindAll(*find, generation, max_runs, limit); !s) return Fail(s.error());
    std::vector<std::pair<std::string, std::string>> apps;
    for (;;) {
      Result<bool> row = find->Step();
      if (!row) return Fail(row.error());
      if (!*row) return apps;
      apps.emplace_back(find->Text(0), find->Text(1));
    }
  }

  // The app_key of (adam_id, pricing_param), handed out (the next integer) the
  // first time the pair is seen. Keys are never deleted or reused (migration 6).
  static Result<std::int64_t> AppKey(Connection& c, const std::string& adam_id, const std::string& pricing_param) {
    Result<std::optional<std::int64_t>> found = FindAppKey(c, adam_id, pricing_param);
    if (!found) return Fail(found.error());
    if (*found) return **found;
    Result<Stmt> add =
        c.Prepare("INSERT INTO assignment_apps (adam_id, pricing_param) VALUES (?1, ?2) RETURNING app_key");
    if (!add) return Fail(add.error());
    if (Status s = BindAll(*add, adam_id, pricing_param); !s) return Fail(s.error());
    Result<bool> row = add->Step();
    if (!row) return Fail(row.error());
    if (!*row) return Fail(Error::Internal("store: no app_key returned for a new assignment app"));
    std::int64_t key = add->Int(0);
    if (Status s = add->Run(); !s) return Fail(s.error());  // finish the INSERT
    return key;
  }

  // The app_key of (adam_id, pricing_param) if it has one: an app never seen has
  // no assignments in any set.
  static Result<std::optional<std::int64_t>> FindAppKey(Connection& c, const std::string& adam_id,
                                                        const std::string& pricing_param) {
    Result<Stmt> find = c.Prepare("SELECT app_key FROM assignment_apps WHERE adam_id = ?1 AND pricing_param = ?2");
    if (!find) return Fail(find.error());
    if (Status s = BindAll(*find, adam_id, pricing_param); !s) return Fail(s.error());
    Result<bool> row = find->Step();
    if (!row) return Fail(row.error());
    if (!*row) return std::optional<std::int64_t>{};
    return std::optional<std::int64_t>{find->Int(0)};
  }

  // The job's integer key if `job`'s lease is still the caller's: the row exists
  // and has the lease owner and attempt count the claim returned (attempts fences
  // a worker that re-claims its own expired job under the same name).
  // FailedPrecondition otherwise; `gone` is set when the row no longer exists.
  static Result<std::int64_t> CheckLease(Connection& c, const SyncJob& job, bool* gone = nullptr) {
    if (gone != nullptr) *gone = false;
    Result<Stmt> stmt = c.Prepare("SELECT key, lease_owner, attempts FROM sync_jobs WHERE id = ?1");
    if (!stmt) return Fail(stmt.error());
    if (Status s = BindAll(*stmt, job.id); !s) return Fail(s.error());
    Result<bool> row = stmt->Step();
    if (!row) return Fail(row.error());
    if (!*row) {
      if (gone != nullptr) *gone = true;
      return Fail(LeaseLost(job, "the job no longer exists"));
    }
    if (job.lease_owner.empty() || stmt->Text(1) != job.lease_owner || stmt->Int(2) != job.attempts) {
      return Fail(LeaseLost(
          job, stmt->Text(1).empty() ? "it was handed back" : fmt::format("worker '{}' holds it now", stmt->Text(1))));
    }
    return stmt->Int(0);
  }

  // Runs a fixed-text statement (with BindAll's arguments) and collects ReadApp rows.
  template <class... Args>
  static Result<std::vector<MobileApp>> QueryApps(Connection& c, const std::string& sql, const Args&... args) {
    Result<Stmt> stmt = c.Prepare(sql);
    if (!stmt) return Fail(stmt.error());
    if (Status s = BindAll(*stmt, args...); !s) return Fail(s.error());
    std::vector<MobileApp> apps;
    for (;;) {
      Result<bool> row = stmt->Step();
      if (!row) return Fail(row.error());
      if (!*row) return apps;
      apps.push_back(ReadApp(*stmt));
    }
  }

  // Deletes a job; its staged set, if any, becomes garbage.
  Status DeleteJob(Connection& c, std::int64_t job_key) {
    if (Status s = RetireStaging(c, job_key); !s) return s;
    Result<Stmt> stmt = c.Prepare("DELETE FROM sync_jobs WHERE key = ?1");
    if (!stmt) return Fail(stmt.error());
    if (Status s = stmt->Bind(1, job_key); !s) return s;
    return stmt->Run();
  }

  // FinishJob's snapshot, inside its transaction: the token's apps become exactly
  // snapshot.apps, and its assignments follow snapshot.assignments.
  Status ApplySnapshot(Connection& c, const SyncJob& job, std::int64_t token_key, std::int64_t job_key,
                       const SyncSnapshot& snapshot) {
    static const std::string existing_sql =
        fmt::format("SELECT {} FROM mobile_apps WHERE tenant_id = ?1 AND token_id = ?2", AppSelectList());
    Result<std::vector<MobileApp>> existing = QueryApps(c, existing_sql, job.tenant_id, job.token_id);
    if (!existing) return Fail(existing.error());

    const AppChanges changes = DiffSnapshotApps(std::move(*existing), snapshot.apps, job.token_id, clock_.Now());
    Result<Stmt> remove = c.Prepare("DELETE FROM mobile_apps WHERE tenant_id = ?1 AND token_id = ?2 AND id = ?3");
    if (!remove) return Fail(remove.error());
    for (const std::string& id : changes.removed_ids) {
      if (Status s = BindAll(*remove, job.tenant_id, job.token_id, id); !s) return s;
      if (Status s = remove->Run(); !s) return s;
      remove->Reset();
    }
    Result<Stmt> insert = c.Prepare(AppInsertSql());
    if (!insert) return Fail(insert.error());
    for (const MobileApp& app : changes.written) {
      if (Status s = BindApp(*insert, job.tenant_id, app); !s) return s;
      if (Status s = insert->Run(); !s) return s;
      insert->Reset();
    }

    using Mode = SyncSnapshot::Assignments;
    // kKeep: the staged set, if any, goes with the job (DeleteJob).
    if (snapshot.assignments == Mode::kKeep) return {};
    Result<std::optional<std::int64_t>> current = CurrentGeneration(c, token_key);
    if (!current) return Fail(current.error());
    Result<std::optional<std::int64_t>> staged = FindStagingGeneration(c, job_key);
    if (!staged) return Fail(staged.error());
    // Repointing is O(1) whatever the sizes: the staged set becomes the token's
    // and the replaced one garbage. A merge into a token without assignments is
    // the same move. A walk staged as whole apps has one run per app; an app
    // that came in several (a walk not grouped by app, an app larger than the
    // sync buffers) is merged first, so that a current set never holds a
    // duplicate and its counts are exact.
    if (snapshot.assignments == Mode::kReplaceWithStaged || !*current) {
      if (*staged) {
        Result<std::vector<std::pair<std::string, std::string>>> split = AppsOfManyRuns(c, **staged, 1);
        if (!split) return Fail(split.error());
        for (const auto& [adam_id, pricing_param] : *split) {
          if (Status s = MergeRuns(c, **staged, adam_id, pricing_param); !s) return s;
        }
      }
      if (Status s = PromoteStaged(c, token_key, *staged); !s) return s;
      if (*current) {
        if (Status s = RetireGeneration(c, **current); !s) return s;
      }
      if (snapshot.assignments == Mode::kMergeStaged) return CheckMergedCounts(c, *staged, snapshot.apps);
      return {};
    }
    // A delta into an existing set: the staged chunks of each app move into the
    // current set as further runs of the app (no copy, no decoding), and its
    // counts add up. No row is compared with the set, yet the delta check then
    // proves there is no duplicate: every assignment Apple has is in the set or
    // in the delta, so the runs' total equals Apple's count only when nothing
    // was removed and no delta row was already there (CheckMergedCounts).
    // An app of more than kMaxRunsPerApp runs is merged into one, so reads stay
    // cheap after many deltas. Readers see the set before or after.
    if (*staged) {
      Result<Stmt> staged_apps =
          c.Prepare("SELECT adam_id, pricing_param, rows, runs, chunks FROM assignment_counts WHERE generation = ?1");
      if (!staged_apps) return Fail(staged_apps.error());
      if (Status s = staged_apps->Bind(1, **staged); !s) return s;
      struct StagedApp {
        std::string adam_id, pricing_param;
        std::int64_t rows, runs, chunks;
      };
      std::vector<StagedApp> delta;
      for (;;) {
        Result<bool> row = staged_apps->Step();
        if (!row) return Fail(row.error());
        if (!*row) break;
        delta.push_back({staged_apps->Text(0), staged_apps->Text(1), staged_apps->Int(2), staged_apps->Int(3),
                         staged_apps->Int(4)});
      }
      Result<Stmt> move = c.Prepare(
          "UPDATE assignment_chunks SET generation = ?1, chunk = chunk + ?4 WHERE generation = ?2 AND app_key = ?3");
      if (!move) return Fail(move.error());
      for (const StagedApp& app : delta) {
        // Staged chunks of the app exist, so it has a key.
        Result<std::int64_t> app_key = AppKey(c, app.adam_id, app.pricing_param);
        if (!app_key) return Fail(app_key.error());
        Result<std::int64_t> first = AddToCounts(c, **current, app.adam_id, app.pricing_param, app.rows, app.runs,
                                                 app.chunks);
        if (!first) return Fail(first.error());
        if (Status s = BindAll(*move, **current, **staged, *app_key, *first); !s) return s;
        if (Status s = move->Run(); !s) return s;
        move->Reset();
      }
      Result<std::vector<std::pair<std::string, std::string>>> split =
          AppsOfManyRuns(c, **current, kMaxRunsPerApp);
      if (!split) return Fail(split.error());
      for (const auto& [adam_id, pricing_param] : *split) {
        if (Status s = MergeRuns(c, **current, adam_id, pricing_param); !s) return s;
      }
      // An app with more stored than Apple counts may hold a delta row that was
      // already there (an assignment removed and made again since the last
      // walk): its runs are merged, duplicates dropped, before the check decides.
      Result<std::map<std::pair<std::string, std::string>, std::int64_t>> stored = StoredCounts(c, **current);
      if (!stored) return Fail(stored.error());
      for (const MobileApp& app : snapshot.apps) {
        auto it = stored->find({app.adam_id, app.pricing_param});
        if (it == stored->end() || it->second <= app.used_licenses) continue;
        if (Status s = MergeRuns(c, **current, app.adam_id, app.pricing_param); !s) return s;
      }
    }
    return CheckMergedCounts(c, *current, snapshot.apps);
  }

  // After a delta merge, every app's stored assignments must number what Apple
  // counts (used_licenses); a difference means the delta missed something (a
  // removal, a page) and the caller must walk everything. FailedPrecondition
  // "delta inconsistent: ..." naming the first few differences.
  // `generation` is the token's set after the merge (nullopt: empty).
  // The counts come from assignment_counts (one row per asset), not from the rows.
  static Status CheckMergedCounts(Connection& c, std::optional<std::int64_t> generation,
                                  const std::vector<MobileApp>& apps) {
    // 0: no generation has it
    Result<std::map<std::pair<std::string, std::string>, std::int64_t>> stored = StoredCounts(c, generation.value_or(0));
    if (!stored) return Fail(stored.error());
    return CheckDeltaCounts(*stored, apps);
  }

  // Assignments per (adam_id, pricing_param) of a set, from assignment_counts.
  static Result<std::map<std::pair<std::string, std::string>, std::int64_t>> StoredCounts(Connection& c,
                                                                                           std::int64_t generation) {
    Result<Stmt> counts = c.Prepare("SELECT adam_id, pricing_param, rows FROM assignment_counts WHERE generation = ?1");
    if (!counts) return Fail(counts.error());
    if (Status s = counts->Bind(1, generation); !s) return Fail(s.error());
    std::map<std::pair<std::string, std::string>, std::int64_t> stored;
    for (;;) {
      Result<bool> row = counts->Step();
      if (!row) return Fail(row.error());
      if (!*row) return stored;
      stored[{counts->Text(0), counts->Text(1)}] = counts->Int(2);
    }
  }

  // Binds ?1, ?2, ... in order. Strings by view, bools as 0/1, integers as int64.
  template <class... Args>
  static Status BindAll(Stmt& stmt, const Args&... args) {
    int n = 1;
    Status s;
    auto one = [&](const auto& v) {
      using T = std::decay_t<decltype(v)>;
      if (!s) return;
      if constexpr (std::is_same_v<T, bool>) {
        s = stmt.BindBool(n++, v);
      } else if constexpr (std::is_integral_v<T>) {
        s = stmt.Bind(n++, static_cast<std::int64_t>(v));
      } else {
        s = stmt.Bind(n++, std::string_view(v));
      }
    };
    (one(args), ...);
    return s;
  }

  static Status BindParams(Stmt& stmt, const SqlBuilder& builder) {
    int n = 1;
    for (const sqlite::SqlValue& v : builder.params()) {
      if (Status s = stmt.Bind(n++, v); !s) return s;
    }
    return {};
  }

  // Runs one fixed statement such as BEGIN or COMMIT, prepared once per connection.
  static Status RunFixed(Connection& c, const char* sql) {
    Result<Stmt> stmt = c.Prepare(sql);
    if (!stmt) return Fail(stmt.error());
    return stmt->Run();
  }

  // Runs `body` with the statement deadline set, containing exceptions (no
  // exception leaves the store).
  template <class T, class Body>
  Result<T> Guarded(Connection& c, Body&& body) {
    c.SetDeadline(std::chrono::steady_clock::now() + statement_timeout_);
    Result<T> result = Fail(Error::Internal("store: transaction body did not run"));
    try {
      result = body(c);
    } catch (const std::exception& e) {
      result = Fail(Error::Internal(fmt::format("store: exception inside a transaction: {}", e.what())));
    }
    c.ClearDeadline();
    return result;
  }

  // Runs `body` inside one transaction on `c`: commits when it succeeds, rolls back
  // when it fails or throws, so the connection is never left inside an open
  // transaction.
  template <class T, class Body>
  Result<T> InTransaction(Connection& c, const char* begin, Body&& body) {
    if (Status s = RunFixed(c, begin); !s) return Fail(s.error());
    Result<T> result = Guarded<T>(c, std::forward<Body>(body));
    if (!result) {
      (void)RunFixed(c, "ROLLBACK");
      return result;
    }
    if (Status s = RunFixed(c, "COMMIT"); !s) {
      (void)RunFixed(c, "ROLLBACK");
      return Fail(s.error());
    }
    return result;
  }

  // A read of several statements: one deferred transaction, so they all see the
  // same committed snapshot.
  template <class T, class Body>
  Result<T> Read(Body&& body) {
    Result<ReaderPool::Lease> lease = readers_.Acquire(wait_);
    if (!lease) return Fail(lease.error());
    return InTransaction<T>(lease->conn(), "BEGIN", std::forward<Body>(body));
  }

  // A read of exactly one statement: SQLite's implicit transaction already gives it
  // one committed snapshot, for as long as the statement is stepped.
  template <class T, class Body>
  Result<T> ReadOne(Body&& body) {
    Result<ReaderPool::Lease> lease = readers_.Acquire(wait_);
    if (!lease) return Fail(lease.error());
    return Guarded<T>(lease->conn(), std::forward<Body>(body));
  }

  template <class T, class Body>
  Result<T> Write(Body&& body) {
    std::unique_lock lock(writer_mu_, std::defer_lock);
    if (!lock.try_lock_for(wait_)) {
      return Fail(Error::Unavailable(fmt::format("store busy: the writer stayed busy for {} ms", wait_.count())));
    }
    ReleaseAnchor();
    Result<T> result = InTransaction<T>(*writer_, "BEGIN IMMEDIATE", std::forward<Body>(body));
    RenewAnchor();
    return result;
  }

  // --- the read anchor (guarded by writer_mu_) ---

  // Before the writer begins: a held read mark other than 0 would keep BEGIN
  // from restarting a fully checkpointed WAL.
  void ReleaseAnchor() {
    if (anchor_) anchor_->Release();
  }

  // After a commit (or a rollback, or a checkpoint): a snapshot of the newest
  // commit, whose read mark the readers then share.
  void RenewAnchor() {
    if (!anchor_) return;
    if (Status s = anchor_->Renew(); !s) spdlog::debug("store: read anchor not renewed: {}", s.error().message);
  }

  // From the checkpointer's thread; skipped while a write runs (which renews
  // the anchor itself when it ends).
  void TryRenewAnchor() {
    std::unique_lock lock(writer_mu_, std::try_to_lock);
    if (lock.owns_lock()) RenewAnchor();
  }

  // --- the checkpointer ---

  void CheckpointLoop() {
    std::unique_lock lock(ckpt_mu_);
    for (;;) {
      const bool woken = ckpt_cv_.wait_for(lock, kAnchorRenewInterval,
                                           [&] { return ckpt_stop_ || (ckpt_pending_ && !writer_checkpoints_); });
      if (ckpt_stop_) return;
      if (!woken) {
        // Idle for a while: follow other processes' commits, if any.
        lock.unlock();  // the writer takes ckpt_mu_ while it holds writer_mu_
        TryRenewAnchor();
        lock.lock();
        continue;
      }
      ckpt_pending_ = false;
      ckpt_running_ = true;
      lock.unlock();
      // A PASSIVE checkpoint copies the frames there were when it started, beside
      // the writer; the WAL restarts from its beginning when the writer next
      // begins with everything copied (between two commits of a walk, say).
      // Waiting for that (RESTART) would make writers wait behind the copy:
      // measured, up to 1.2 s when rows are scattered. So the WAL may grow past
      // 1,000 pages while commits come back to back; it shrinks back to
      // journal_size_limit (64 MiB) at the next restart.
      if (Status s = checkpointer_conn_->CheckpointPassive(); !s) {
        spdlog::warn("store: WAL checkpoint failed: {}", s.error().message);
      }
      // Everything copied, new readers take read mark 0: the anchor follows.
      TryRenewAnchor();
      lock.lock();
      ckpt_running_ = false;
      ckpt_idle_.notify_all();
    }
  }

  // --- the collector ---

  // Tells the collector there is garbage. Called inside write transactions (which
  // may still roll back: then the collector finds nothing, which is harmless).
  void NoteGarbage() { collector_.Wake(); }

  // One batch: up to kCollectBatchRows rows of the oldest garbage set, from the
  // front of its key range; the registry row goes with the last batch.
  static Result<CollectStep> CollectBatch(Connection& c) {
    CollectStep step;
    Result<Stmt> pick =
        c.Prepare("SELECT generation FROM assignment_generations WHERE state = 'garbage' ORDER BY generation LIMIT 1");
    if (!pick) return Fail(pick.error());
    Result<bool> found = pick->Step();
    if (!found) return Fail(found.error());
    if (!*found) return step;
    step.generation = pick->Int(0);
    pick->Reset();
    // The key of the batch's last chunk: then one range delete on the primary key.
    Result<Stmt> edge = c.Prepare(
        "SELECT app_key, chunk FROM assignment_chunks WHERE generation = ?1 "
        "ORDER BY app_key, chunk LIMIT 1 OFFSET ?2");
    if (!edge) return Fail(edge.error());
    if (Status s = BindAll(*edge, step.generation, kCollectBatchChunks - 1); !s) return Fail(s.error());
    Result<bool> more = edge->Step();
    if (!more) return Fail(more.error());
    if (*more) {
      const std::int64_t app_key = edge->Int(0), chunk = edge->Int(1);
      edge->Reset();
      Result<Stmt> del = c.Prepare(
          "DELETE FROM assignment_chunks WHERE generation = ?1 AND (app_key, chunk) <= (?2, ?3) RETURNING rows");
      if (!del) return Fail(del.error());
      if (Status s = BindAll(*del, step.generation, app_key, chunk); !s) return Fail(s.error());
      Result<std::int64_t> rows = SumRows(*del);
      if (!rows) return Fail(rows.error());
      step.rows = *rows;
      return step;
    }
    edge->Reset();
    // Fewer than a batch left: the rest, and the set's registry row.
    Result<Stmt> rest = c.Prepare("DELETE FROM assignment_chunks WHERE generation = ?1 RETURNING rows");
    if (!rest) return Fail(rest.error());
    if (Status s = BindAll(*rest, step.generation); !s) return Fail(s.error());
    Result<std::int64_t> rows = SumRows(*rest);
    if (!rows) return Fail(rows.error());
    step.rows = *rows;
    for (const char* sql : {"DELETE FROM assignment_counts WHERE generation = ?1",
                            "DELETE FROM assignment_generations WHERE generation = ?1"}) {
      Result<Stmt> forget = c.Prepare(sql);
      if (!forget) return Fail(forget.error());
      if (Status s = BindAll(*forget, step.generation); !s) return Fail(s.error());
      if (Status s = forget->Run(); !s) return Fail(s.error());
    }
    step.generation_done = true;
    return step;
  }

  // Steps a DELETE ... RETURNING rows to its end; the sum of the rows.
  static Result<std::int64_t> SumRows(Stmt& del) {
    std::int64_t sum = 0;
    for (;;) {
      Result<bool> row = del.Step();
      if (!row) return Fail(row.error());
      if (!*row) return sum;
      sum += del.Int(0);
    }
  }

  std::shared_ptr<const SecretBox> secrets_;
  const Clock& clock_;
  const std::int64_t max_tokens_;
  const std::chrono::milliseconds wait_;
  const std::chrono::milliseconds statement_timeout_;
  std::timed_mutex writer_mu_;
  std::unique_ptr<Connection> writer_;        // guarded by writer_mu_
  std::optional<sqlite::ReadAnchor> anchor_;  // guarded by writer_mu_; see sqlite::ReadAnchor
  ReaderPool readers_;

  std::unique_ptr<Connection> checkpointer_conn_;  // used by checkpointer_ only
  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;    // the checkpointer waits for work
  std::condition_variable ckpt_idle_;  // the writer waits for the checkpointer's run to end
  bool ckpt_pending_ = false;          // guarded by ckpt_mu_
  bool ckpt_stop_ = false;             // guarded by ckpt_mu_
  bool ckpt_running_ = false;          // guarded by ckpt_mu_: a background checkpoint is copying
  bool writer_checkpoints_ = false;    // guarded by ckpt_mu_: past the hard limit, the writer's turn
  std::thread checkpointer_;

  Collector collector_;  // last: stopped by the destructor before the rest goes
};

}  // namespace

Result<std::unique_ptr<Store>> Store::OpenSqlite(const SqliteOptions& options) {
  if (options.secrets == nullptr) return Fail(Error::InvalidArgument("store: no SecretBox to seal sTokens with"));
  if (options.path.empty()) return Fail(Error::InvalidArgument("store: empty database path"));
  if (options.busy_timeout_ms <= 0 || options.statement_timeout_ms <= 0) {
    return Fail(Error::InvalidArgument("store: timeouts must be positive"));
  }
  if (options.reader_connections < 1 || options.reader_connections > kMaxReaderConnections) {
    return Fail(Error::InvalidArgument(fmt::format("store: reader_connections must be 1..{}", kMaxReaderConnections)));
  }
  sqlite::ConnectionOptions conn_options;
  conn_options.path = options.path;
  conn_options.busy_timeout_ms = options.busy_timeout_ms;
  conn_options.synchronous_full = options.synchronous_full;
  conn_options.enable_wal = false;  // not before the file is known to be vppd's
  Result<std::unique_ptr<Connection>> writer = Connection::Open(conn_options);
  if (!writer) return Fail(writer.error());
  if (Status s = CheckSchemaOwnership(**writer); !s) return Fail(s.error());
  if (Status s = (*writer)->EnableWal(); !s) return Fail(s.error());
  if (Status s = Migrate(**writer); !s) return Fail(s.error());
  conn_options.enable_wal = true;

  auto store = std::make_unique<SqliteStore>(options, std::move(*writer));
  conn_options.query_only = true;
  for (int i = 0; i < options.reader_connections; ++i) {
    Result<std::unique_ptr<Connection>> reader = Connection::Open(conn_options);
    if (!reader) return Fail(reader.error());
    store->AddReader(std::move(*reader));
  }
  // The anchor reads like a reader (and is query_only like one).
  Result<std::unique_ptr<Connection>> anchor = Connection::Open(conn_options);
  if (!anchor) return Fail(anchor.error());
  store->SetReadAnchor(std::move(*anchor));
  if (Status s = store->Reconcile(); !s) return Fail(s.error());
  if (options.collect_garbage) store->StartCollector();
  conn_options.query_only = false;  // a checkpoint writes the database file
  Result<std::unique_ptr<Connection>> checkpointer = Connection::Open(conn_options);
  if (!checkpointer) return Fail(checkpointer.error());
  // It reads WAL frames and writes pages: no page cache of its own needed.
  if (Status s = (*checkpointer)->Exec("PRAGMA cache_size=-256"); !s) return Fail(s.error());
  store->StartCheckpointer(std::move(*checkpointer));
  spdlog::info("store: opened {} (schema version {}, {} readers, synchronous={})", options.path, LatestSchemaVersion(),
               options.reader_connections, options.synchronous_full ? "FULL" : "NORMAL");
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace vppd::store
