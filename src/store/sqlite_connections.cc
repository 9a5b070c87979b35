// The SQLite store's connections: see sqlite_connections.h.
#include "store/sqlite_connections.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "store/store_common.h"

namespace vppd::store {

using sqlite::Connection;
using sqlite::Stmt;

namespace {

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

// Runs one fixed statement such as BEGIN or COMMIT, prepared once per connection.
Status RunFixed(Connection& c, const char* sql) {
  Result<Stmt> stmt = c.Prepare(sql);
  if (!stmt) return Fail(stmt.error());
  return stmt->Run();
}

}  // namespace

// --- SqliteTx ------------------------------------------------------------------------

Status SqliteTx::QueryArgs(std::string_view sql, std::span<const SqlArg> args) {
  stmt_.reset();
  Result<Stmt> stmt = conn_.Prepare(sql);
  if (!stmt) return Fail(stmt.error());
  stmt_.emplace(std::move(*stmt));
  int n = 1;
  for (const SqlArg& arg : args) {
    Status s;
    switch (arg.kind()) {
      case SqlArg::Kind::kNull:
        s = stmt_->BindNull(n);
        break;
      case SqlArg::Kind::kInt:
      case SqlArg::Kind::kBool:
        s = stmt_->Bind(n, arg.integer());
        break;
      case SqlArg::Kind::kText:
        s = arg.borrowed() ? stmt_->BindStatic(n, arg.text()) : stmt_->Bind(n, arg.text());
        break;
    }
    if (!s) return s;
    ++n;
  }
  return {};
}

Status SqliteTx::QueryBuilt(const std::string& sql, const SqlBuilder& builder) {
  stmt_.reset();
  Result<Stmt> stmt = conn_.PrepareDynamic(sql);
  if (!stmt) return Fail(stmt.error());
  stmt_.emplace(std::move(*stmt));
  int n = 1;
  for (const sqlite::SqlValue& v : builder.params()) {
    if (Status s = stmt_->Bind(n++, v); !s) return s;
  }
  return {};
}

// SqliteTx is final: the readers' column reads are direct calls, inlined.
Tenant SqliteTx::TenantRow() const { return ReadTenantRow(*this); }
Result<VppToken> SqliteTx::TokenRow() const { return ReadTokenRow(*this); }
MobileApp SqliteTx::AppRow() const { return ReadAppRow(*this); }

Result<bool> SqliteTx::Next() {
  if (!stmt_) return Fail(Error::Internal("store: Next without a statement"));
  return stmt_->Step();
}

// --- connections -----------------------------------------------------------------------

// Reader connections, handed out one per call.
class SqliteConnections::ReaderPool {
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

SqliteConnections::SqliteConnections(std::unique_ptr<Connection> writer, std::chrono::milliseconds wait,
                                     std::chrono::milliseconds statement_timeout)
    : wait_(wait),
      statement_timeout_(statement_timeout),
      writer_(std::move(writer)),
      readers_(std::make_unique<ReaderPool>()) {}

SqliteConnections::~SqliteConnections() {
  {
    std::lock_guard lock(ckpt_mu_);
    ckpt_stop_ = true;
  }
  ckpt_cv_.notify_all();
  if (checkpointer_.joinable()) checkpointer_.join();
}

void SqliteConnections::AddReader(std::unique_ptr<Connection> conn) { readers_->Add(std::move(conn)); }

void SqliteConnections::SetReadAnchor(std::unique_ptr<Connection> conn) {
  std::lock_guard lock(writer_mu_);
  anchor_.emplace(std::move(conn));
  RenewAnchor();
}

// --- transactions -----------------------------------------------------------------------

// Runs `body` with the statement deadline set, containing exceptions (no
// exception leaves the store).
Status SqliteConnections::Guarded(Connection& c, FunctionRef<Status(Connection&)> body) {
  c.SetDeadline(std::chrono::steady_clock::now() + statement_timeout_);
  Status result;
  try {
    result = body(c);
  } catch (const std::exception& e) {
    result = Fail(Error::Internal(fmt::format("store: exception inside a transaction: {}", e.what())));
  }
  c.ClearDeadline();
  return result;
}

Status SqliteConnections::InTransaction(Connection& c, const char* begin, FunctionRef<Status(Connection&)> body) {
  if (Status s = RunFixed(c, begin); !s) return s;
  Status result = Guarded(c, body);
  if (!result) {
    (void)RunFixed(c, "ROLLBACK");
    return result;
  }
  if (Status s = RunFixed(c, "COMMIT"); !s) {
    (void)RunFixed(c, "ROLLBACK");
    return s;
  }
  return result;
}

Status SqliteConnections::Run(TxKind kind, FunctionRef<Status(Connection&)> body) {
  if (kind != TxKind::kWrite) {
    Result<ReaderPool::Lease> lease = readers_->Acquire(wait_);
    if (!lease) return Fail(lease.error());
    // kReadOne: SQLite's implicit transaction already gives one statement one
    // committed snapshot, for as long as it is stepped.
    if (kind == TxKind::kReadOne) return Guarded(lease->conn(), body);
    return InTransaction(lease->conn(), "BEGIN", body);
  }
  std::unique_lock lock(writer_mu_, std::defer_lock);
  if (!lock.try_lock_for(wait_)) {
    return Fail(Error::Unavailable(fmt::format("store busy: the writer stayed busy for {} ms", wait_.count())));
  }
  ReleaseAnchor();
  Status result = InTransaction(*writer_, "BEGIN IMMEDIATE", body);
  RenewAnchor();
  return result;
}

// --- the read anchor (guarded by writer_mu_) ----------------------------------------------

// Before the writer begins: a held read mark other than 0 would keep BEGIN
// from restarting a fully checkpointed WAL.
void SqliteConnections::ReleaseAnchor() {
  if (anchor_) anchor_->Release();
}

// After a commit (or a rollback, or a checkpoint): a snapshot of the newest
// commit, whose read mark the readers then share.
void SqliteConnections::RenewAnchor() {
  if (!anchor_) return;
  if (Status s = anchor_->Renew(); !s) spdlog::debug("store: read anchor not renewed: {}", s.error().message);
}

// From the checkpointer's thread; skipped while a write runs (which renews
// the anchor itself when it ends).
void SqliteConnections::TryRenewAnchor() {
  std::unique_lock lock(writer_mu_, std::try_to_lock);
  if (lock.owns_lock()) RenewAnchor();
}

// --- the checkpointer ------------------------------------------------------------

void SqliteConnections::CheckpointLoop() {
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
    // Waiting for that (RESTART) would make writers wait behind the copy
    // (bench/README.md, sync). So the WAL may grow past
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

// Moves WAL checkpoints off the request path: the writer no longer checkpoints
// when its commit takes the WAL past kCheckpointWalPages (SQLite's default
// automatic checkpoint, with the fsync that synchronous=NORMAL does at a
// checkpoint, paid by whichever Graph request or staging commit happened to
// cross the line); it wakes this thread, which checkpoints PASSIVE on a
// connection of its own, concurrently with the writer and the readers.
void SqliteConnections::StartCheckpointer(std::unique_ptr<Connection> conn) {
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
    // frame, so the WAL would restart only by chance (bench/README.md, sync).
    // So the thread starts no run while it is the writer's turn, and the
    // writer waits (bounded) for a run in progress to end.
    writer_checkpoints_ = true;
    ckpt_idle_.wait_for(lock, kCheckpointBackpressureWait, [&] { return !ckpt_running_; });
    return true;
  });
  checkpointer_ = std::thread([this] { CheckpointLoop(); });
}

}  // namespace vppd::store
