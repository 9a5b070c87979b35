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
// straight into license_assignments under a generation of its own (invisible to
// readers); FinishJob repoints the token at it, and the replaced generation
// becomes garbage that a background thread (the collector) deletes in batches of
// kCollectBatchRows, one short write transaction each, so no transaction holds the
// write lock for long. assignment_counts keeps each set's rows per asset for the
// delta check. Rows carry an integer app_key (assignment_apps) handed out in the
// order assets first arrive, so a walk appends to its set. See migrations 3, 4
// and 5 in migrations.cc for the tables.
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

// Rows per multi-row INSERT when staging (4 parameters each, plus the generation).
constexpr std::size_t kInsertRowsPerStatement = 64;

// A staging commit writes at most about this many pages (4 KiB each), however the
// rows are spread: ~1 MiB, a few ms of write lock.
constexpr std::int64_t kStagePagesPerCommit = 256;
// ...but never fewer rows than this per commit (each has a fixed cost too).
constexpr std::size_t kMinStageChunkRows = 200;

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
  // generation in license_assignments.
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
          c.Prepare("SELECT generation FROM license_assignments WHERE generation > ?1 ORDER BY generation LIMIT 1");
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
      // license_assignments has no foreign key (see migrations.cc): the tenant's
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
    Result<std::string> where = TenantWhere(tenant_id, query.filter, VppTokenColumns(), builder);
    if (!where) return Fail(where.error());
    Result<std::string> order = CompileOrderBy(query.order_by, VppTokenColumns(), "id");
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
    Result<std::string> where = TenantWhere(tenant_id, filter, VppTokenColumns(), builder);
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
      // license_assignments has no foreign key (see migrations.cc): the token's
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
    Result<std::string> where = TenantWhere(tenant_id, query.filter, MobileAppEntity(), builder);
    if (!where) return Fail(where.error());
    Result<std::string> order = CompileOrderBy(query.order_by, MobileAppEntity().properties, "id");
    if (!order) return Fail(order.error());
    return ReadPage<MobileApp>(AppSelectList(), "mobile_apps", *where, *order, query, builder,
                               [](Stmt& row) -> Result<MobileApp> { return ReadApp(row); });
  }

  Result<std::int64_t> CountApps(const std::string& tenant_id, const std::optional<Expr>& filter) override {
    SqlBuilder builder;
    Result<std::string> where = TenantWhere(tenant_id, filter, MobileAppEntity(), builder);
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

      // The primary key orders an app's rows by (serial_number, client_user_id).
      Result<Stmt> rows = c.Prepare(
          "SELECT client_user_id, serial_number FROM license_assignments "
          "WHERE generation = ?1 AND app_key = ?2 "
          "ORDER BY serial_number, client_user_id LIMIT ?3 OFFSET ?4");
      if (!rows) return Fail(rows.error());
      if (Status s = BindAll(*rows, generation, **app_key, limit + 1, skip); !s) return Fail(s.error());
      for (;;) {
        Result<bool> row = rows->Step();
        if (!row) return Fail(row.error());
        if (!*row || !RoomOnPage(page, limit)) break;
        page.items.push_back({adam_id, pricing_param, rows->Text(0), rows->Text(1)});
      }
      return page;
    });
  }

  Status ForEachAssignment(const std::string& tenant_id, const std::string& token_id, std::size_t batch,
                           const std::function<Status(const std::vector<LicenseAssignment>&)>& on_batch) override {
    if (Status s = CheckBatchSize(batch); !s) return s;
    Result<std::int64_t> token_key =
        ReadOne<std::int64_t>([&](Connection& c) { return TokenKey(c, tenant_id, token_id); });
    if (!token_key) return Fail(token_key.error());
    // Keyset pagination on the primary key: each batch is an index seek past the
    // last row seen, so the whole walk is O(rows), where OFFSET would be O(rows²).
    // Each batch is a read of its own and no connection is held while `on_batch`
    // runs, so a slow consumer neither starves the reader pool nor pins the WAL.
    // Each batch reads the token's current generation in the same statement (one
    // snapshot), never a remembered one: the collector may be deleting that one
    // by the next batch. A sync that finishes mid-walk therefore continues the
    // walk in the new set, from the last key seen (as before generations); a token
    // deleted mid-walk ends it.
    static constexpr const char* kCurrent =
        "generation = (SELECT assignments_generation FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2)";
    // Apps come in app_key order (the order their assets were first seen), each
    // app's rows in key order.
    static const std::string first_sql = fmt::format(
        "SELECT p.adam_id, p.pricing_param, a.client_user_id, a.serial_number, a.app_key "
        "FROM license_assignments a JOIN assignment_apps p ON p.app_key = a.app_key WHERE {} "
        "ORDER BY a.app_key, a.serial_number, a.client_user_id LIMIT ?3",
        kCurrent);
    static const std::string next_sql = fmt::format(
        "SELECT p.adam_id, p.pricing_param, a.client_user_id, a.serial_number, a.app_key "
        "FROM license_assignments a JOIN assignment_apps p ON p.app_key = a.app_key WHERE {} "
        "AND (a.app_key, a.serial_number, a.client_user_id) > (?4, ?5, ?6) "
        "ORDER BY a.app_key, a.serial_number, a.client_user_id LIMIT ?3",
        kCurrent);
    std::int64_t last_app_key = 0;  // of the last row read
    return WalkAssignments(batch, on_batch, [&](const std::optional<LicenseAssignment>& last) {
      return ReadOne<AssignmentBatch>([&](Connection& c) -> Result<AssignmentBatch> {
        Result<Stmt> stmt = c.Prepare(last ? next_sql : first_sql);
        if (!stmt) return Fail(stmt.error());
        Status bound = last ? BindAll(*stmt, tenant_id, token_id, batch, last_app_key, last->serial_number,
                                      last->client_user_id)
                            : BindAll(*stmt, tenant_id, token_id, batch);
        if (!bound) return Fail(bound.error());
        AssignmentBatch out;
        out.reserve(batch);
        for (;;) {
          Result<bool> row = stmt->Step();
          if (!row) return Fail(row.error());
          if (!*row) return out;
          out.push_back({stmt->Text(0), stmt->Text(1), stmt->Text(2), stmt->Text(3)});
          last_app_key = stmt->Int(4);
        }
      });
    });
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

  Status StageAssignments(const SyncJob& job, const std::vector<LicenseAssignment>& rows) override {
    if (Status s = CheckStagedRows(rows); !s) return s;
    // Sorted in primary-key order before the write lock is taken: consecutive
    // inserts then land next to each other in the B-tree (mostly appends to the
    // same leaf) instead of touching a random page each.
    const std::vector<const LicenseAssignment*> sorted = SortedByKey(rows);
    if (rows.empty()) {
      return Write<void>([&](Connection& c) -> Status {
        Result<std::int64_t> key = CheckLease(c, job);
        if (!key) return Fail(key.error());
        return {};
      });
    }
    // Rows are written where they stay, so how much a commit writes depends on
    // where they land: rows grouped by asset (as Apple's pages come) fill a few
    // B-tree pages, ~0.05 pages a row; rows spread over a large set touch one
    // page each, and a 3,000-row commit would then write ~12 MB and hold the
    // write lock for tens of ms. So the rows go in chunks sized from the pages
    // per row the last commits wrote, each commit at most ~kStagePagesPerCommit
    // pages (a few ms).
    return StageInChunks(
        sorted, [this] { return StageChunkRows(); },
        [&](const std::vector<const LicenseAssignment*>& part) -> Status {
          std::int64_t pages = 0;
          Status staged = WriteCounted(&pages, [&](Connection& c) -> Status {
            Result<std::int64_t> key = CheckLease(c, job);
            if (!key) return Fail(key.error());
            Result<std::int64_t> generation = StagingGeneration(c, job, *key);
            if (!generation) return Fail(generation.error());
            return InsertAssignments(c, *generation, part);
          });
          if (staged) NoteStagePages(pages, part.size());
          return staged;
        });
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

  // The token's integer key (license_assignments.token_key). NotFound.
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

  // Inserts `rows` (sorted by adam_id, pricing_param, serial_number,
  // client_user_id) into `generation`, duplicates dropped (Apple's pages may
  // repeat a row while data moves), and adds what each asset really gained to
  // assignment_counts. Each asset's run goes under its app_key (AppKey), runs in
  // key order: keys follow the order assets first came, so a walk in Apple's
  // order appends at the end of its set, where SQLite's cursor is already (see
  // migration 6). Up to kInsertRowsPerStatement rows per statement (one
  // sqlite3_step inserts them all with one cursor: less VM setup, binding and
  // B-tree descent per row); a statement never spans two assets, so its
  // changes() is that asset's.
  static Status InsertAssignments(Connection& c, std::int64_t generation,
                                  const std::vector<const LicenseAssignment*>& rows) {
    static constexpr std::size_t kSizes[] = {kInsertRowsPerStatement, 16, 4, 1};
    static const std::string sqls[] = {InsertAssignmentsSql(kSizes[0]), InsertAssignmentsSql(kSizes[1]),
                                       InsertAssignmentsSql(kSizes[2]), InsertAssignmentsSql(kSizes[3])};
    struct Run {
      std::int64_t app_key;
      std::size_t begin, end;
    };
    std::vector<Run> runs;
    for (std::size_t begin = 0; begin < rows.size();) {
      const LicenseAssignment& first = *rows[begin];
      std::size_t end = begin;
      while (end < rows.size() && rows[end]->adam_id == first.adam_id &&
             rows[end]->pricing_param == first.pricing_param) {
        ++end;
      }
      Result<std::int64_t> key = AppKey(c, first.adam_id, first.pricing_param);
      if (!key) return Fail(key.error());
      runs.push_back({*key, begin, end});
      begin = end;
    }
    std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.app_key < b.app_key; });
    for (const Run& run : runs) {
      std::size_t begin = run.begin;
      std::int64_t added = 0;
      for (std::size_t k = 0; k < std::size(kSizes); ++k) {
        if (run.end - begin < kSizes[k]) continue;
        Result<Stmt> insert = c.Prepare(sqls[k]);
        if (!insert) return Fail(insert.error());
        while (run.end - begin >= kSizes[k]) {
          if (Status s = insert->Bind(1, generation); !s) return s;
          if (Status s = insert->Bind(2, run.app_key); !s) return s;
          int n = 3;
          for (std::size_t i = begin; i < begin + kSizes[k]; ++i) {
            const LicenseAssignment& r = *rows[i];
            if (Status s = insert->BindStatic(n++, r.serial_number); !s) return s;
            if (Status s = insert->BindStatic(n++, r.client_user_id); !s) return s;
          }
          if (Status s = insert->Run(); !s) return s;
          added += c.Changes();
          insert->Reset();
          begin += kSizes[k];
        }
      }
      const LicenseAssignment& first = *rows[run.begin];
      if (Status s = AddCount(c, generation, first.adam_id, first.pricing_param, added); !s) return s;
    }
    return {};
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

  static Status AddCount(Connection& c, std::int64_t generation, const std::string& adam_id,
                         const std::string& pricing_param, std::int64_t added) {
    if (added == 0) return {};
    Result<Stmt> count = c.Prepare(
        "INSERT INTO assignment_counts (generation, adam_id, pricing_param, rows) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT (generation, adam_id, pricing_param) DO UPDATE SET rows = rows + excluded.rows");
    if (!count) return Fail(count.error());
    if (Status s = BindAll(*count, generation, adam_id, pricing_param, added); !s) return s;
    return count->Run();
  }

  static std::string InsertAssignmentsSql(std::size_t rows) {
    std::string sql =
        "INSERT OR IGNORE INTO license_assignments (generation, app_key, serial_number, client_user_id) VALUES ";
    for (std::size_t k = 0; k < rows; ++k) {
      int p = 3 + 2 * static_cast<int>(k);
      sql += fmt::format("{}(?1, ?2, ?{}, ?{})", k == 0 ? "" : ", ", p, p + 1);
    }
    return sql;
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

    Result<Stmt> clear = c.Prepare("DELETE FROM mobile_apps WHERE tenant_id = ?1 AND token_id = ?2");
    if (!clear) return Fail(clear.error());
    if (Status s = BindAll(*clear, job.tenant_id, job.token_id); !s) return s;
    if (Status s = clear->Run(); !s) return s;

    const Timestamp now = clock_.Now();
    Result<Stmt> insert = c.Prepare(AppInsertSql());
    if (!insert) return Fail(insert.error());
    for (const MobileApp& app : MergeSnapshotApps(std::move(*existing), snapshot.apps, job.token_id, now)) {
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
    // the same move.
    if (snapshot.assignments == Mode::kReplaceWithStaged || !*current) {
      if (Status s = PromoteStaged(c, token_key, *staged); !s) return s;
      if (*current) {
        if (Status s = RetireGeneration(c, **current); !s) return s;
      }
      if (snapshot.assignments == Mode::kMergeStaged) return CheckMergedCounts(c, *staged, snapshot.apps);
      return {};
    }
    // A delta into an existing set: its (few) rows are copied into the current
    // generation asset by asset, already in key order, duplicates dropped by OR
    // IGNORE, and what each asset gained is counted; the staged set then goes
    // with the job. Readers see the set before or after.
    if (*staged) {
      Result<Stmt> assets = c.Prepare("SELECT adam_id, pricing_param FROM assignment_counts WHERE generation = ?1");
      if (!assets) return Fail(assets.error());
      if (Status s = assets->Bind(1, **staged); !s) return s;
      std::vector<std::pair<std::string, std::string>> delta_assets;
      for (;;) {
        Result<bool> row = assets->Step();
        if (!row) return Fail(row.error());
        if (!*row) break;
        delta_assets.emplace_back(assets->Text(0), assets->Text(1));
      }
      Result<Stmt> copy = c.Prepare(
          "INSERT OR IGNORE INTO license_assignments (generation, app_key, serial_number, client_user_id) "
          "SELECT ?1, app_key, serial_number, client_user_id FROM license_assignments "
          "WHERE generation = ?2 AND app_key = ?3 ORDER BY app_key, serial_number, client_user_id");
      if (!copy) return Fail(copy.error());
      for (const auto& [adam_id, pricing_param] : delta_assets) {
        // Staged rows of the asset exist, so it has a key.
        Result<std::int64_t> app_key = AppKey(c, adam_id, pricing_param);
        if (!app_key) return Fail(app_key.error());
        if (Status s = BindAll(*copy, **current, **staged, *app_key); !s) return s;
        if (Status s = copy->Run(); !s) return s;
        std::int64_t added = c.Changes();
        copy->Reset();
        if (Status s = AddCount(c, **current, adam_id, pricing_param, added); !s) return s;
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
    Result<Stmt> counts = c.Prepare("SELECT adam_id, pricing_param, rows FROM assignment_counts WHERE generation = ?1");
    if (!counts) return Fail(counts.error());
    if (Status s = counts->Bind(1, generation.value_or(0)); !s) return s;  // 0: no generation has it
    std::map<std::pair<std::string, std::string>, std::int64_t> stored;
    for (;;) {
      Result<bool> row = counts->Step();
      if (!row) return Fail(row.error());
      if (!*row) break;
      stored[{counts->Text(0), counts->Text(1)}] = counts->Int(2);
    }
    return CheckDeltaCounts(stored, apps);
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

  // Write for a Status body that also reports how many pages its commit wrote.
  template <class Body>
  Status WriteCounted(std::int64_t* pages, Body&& body) {
    std::unique_lock lock(writer_mu_, std::defer_lock);
    if (!lock.try_lock_for(wait_)) {
      return Fail(Error::Unavailable(fmt::format("store busy: the writer stayed busy for {} ms", wait_.count())));
    }
    const std::int64_t before = writer_->PagesWritten();
    ReleaseAnchor();
    Status result = InTransaction<void>(*writer_, "BEGIN IMMEDIATE", std::forward<Body>(body));
    RenewAnchor();
    *pages = writer_->PagesWritten() - before;
    return result;
  }

  // Rows per staging commit, from the pages per row recent commits wrote.
  std::size_t StageChunkRows() const {
    const double per_row = stage_pages_per_row_.load(std::memory_order_relaxed);
    const double rows = static_cast<double>(kStagePagesPerCommit) / std::max(per_row, 1e-3);
    return static_cast<std::size_t>(
        std::clamp(rows, static_cast<double>(kMinStageChunkRows), static_cast<double>(kMaxBatchRows)));
  }

  // Folds one commit into the estimate (a moving average, so one odd commit
  // neither stalls nor floods the next ones).
  void NoteStagePages(std::int64_t pages, std::size_t rows) {
    if (rows == 0) return;
    const double observed = static_cast<double>(pages) / static_cast<double>(rows);
    const double old = stage_pages_per_row_.load(std::memory_order_relaxed);
    stage_pages_per_row_.store(0.5 * old + 0.5 * observed, std::memory_order_relaxed);
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
    // The key of the batch's last row: then one range delete on the primary key.
    Result<Stmt> edge = c.Prepare(
        "SELECT app_key, serial_number, client_user_id FROM license_assignments WHERE generation = ?1 "
        "ORDER BY app_key, serial_number, client_user_id LIMIT 1 OFFSET ?2");
    if (!edge) return Fail(edge.error());
    if (Status s = BindAll(*edge, step.generation, kCollectBatchRows - 1); !s) return Fail(s.error());
    Result<bool> more = edge->Step();
    if (!more) return Fail(more.error());
    if (*more) {
      const std::int64_t app_key = edge->Int(0);
      std::string serial = edge->Text(1), user = edge->Text(2);
      edge->Reset();
      Result<Stmt> del = c.Prepare(
          "DELETE FROM license_assignments WHERE generation = ?1 "
          "AND (app_key, serial_number, client_user_id) <= (?2, ?3, ?4)");
      if (!del) return Fail(del.error());
      if (Status s = BindAll(*del, step.generation, app_key, serial, user); !s) return Fail(s.error());
      if (Status s = del->Run(); !s) return Fail(s.error());
      step.rows = c.Changes();
      return step;
    }
    edge->Reset();
    // Fewer than a batch left: the rest, and the set's registry row.
    Result<Stmt> rest = c.Prepare("DELETE FROM license_assignments WHERE generation = ?1");
    if (!rest) return Fail(rest.error());
    if (Status s = BindAll(*rest, step.generation); !s) return Fail(s.error());
    if (Status s = rest->Run(); !s) return Fail(s.error());
    step.rows = c.Changes();
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

  std::shared_ptr<const SecretBox> secrets_;
  const Clock& clock_;
  const std::int64_t max_tokens_;
  const std::chrono::milliseconds wait_;
  const std::chrono::milliseconds statement_timeout_;
  std::timed_mutex writer_mu_;
  std::unique_ptr<Connection> writer_;        // guarded by writer_mu_
  std::optional<sqlite::ReadAnchor> anchor_;  // guarded by writer_mu_; see sqlite::ReadAnchor
  ReaderPool readers_;

  // Pages a staged row cost in recent commits (all jobs; see StageAssignments).
  // Starts low: a first chunk of grouped rows must not be split needlessly.
  std::atomic<double> stage_pages_per_row_{0.05};

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
