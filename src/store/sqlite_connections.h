// Internal to store/: the SQLite store's connections and how a transaction
// runs on them. Nothing here knows a table.
//
// One writer, guarded by a timed mutex, and a pool of query_only readers. A
// write runs in BEGIN IMMEDIATE (the write lock up front, so a
// read-modify-write never fails half-way with SQLITE_BUSY); a read of several
// statements in a deferred BEGIN, which in WAL mode reads one committed
// snapshot without waiting for the writer; a read of one statement in SQLite's
// implicit transaction (the same snapshot guarantee, two fewer steps).
// BEGIN/COMMIT/ROLLBACK are cached prepared statements (sqlite3_exec would
// parse them on every call).
//
// WAL checkpoints run on a thread and connection of their own (the
// checkpointer), woken by the writer's commits; see StartCheckpointer.
//
// A read anchor (sqlite::ReadAnchor) holds a snapshot of the newest commit
// between writes, so that readers' WAL read-mark locks cost no system call:
// renewed after each write and checkpoint (and every kAnchorRenewInterval, for
// commits of other processes), released before each write begins.
//
// Thread-safety: Run may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "store/pool_lease.h"
#include "store/sql_store.h"
#include "store/sqlite_db.h"

namespace vppd::store {

// A transaction's statements on one SQLite connection (see Tx). Text is bound
// with a copy unless the SqlArg is Borrowed; booleans as 0/1.
class SqliteTx final : public Tx {
 public:
  explicit SqliteTx(sqlite::Connection& conn) : conn_(conn) {}

  Status QueryArgs(std::string_view sql, std::span<const SqlArg> args) override;
  Status QueryBuilt(const std::string& sql, const SqlBuilder& builder) override;
  Result<bool> Next() override;
  bool IsNull(int col) const override { return stmt_->IsNull(col); }
  std::int64_t Int(int col) const override { return stmt_->Int(col); }
  std::string Text(int col) const override { return stmt_->Text(col); }
  std::string_view View(int col) const override { return stmt_->Blob(col); }
  std::optional<std::string> OptText(int col) const override { return stmt_->OptText(col); }
  bool Bool(int col) const override { return stmt_->Int(col) != 0; }
  std::int64_t Changes() const override { return conn_.Changes(); }
  Tenant TenantRow() const override;
  Result<VppToken> TokenRow() const override;
  MobileApp AppRow() const override;

  // The connection, for the SQLite store's own statements; ends the current result.
  sqlite::Connection& conn() {
    stmt_.reset();
    return conn_;
  }

 private:
  sqlite::Connection& conn_;
  std::optional<sqlite::Stmt> stmt_;
};

class SqliteConnections {
 public:
  // `wait`: how long a call waits for a connection or the write lock;
  // `statement_timeout`: how long the statements of one call may run.
  SqliteConnections(std::unique_ptr<sqlite::Connection> writer, std::chrono::milliseconds wait,
                    std::chrono::milliseconds statement_timeout);
  ~SqliteConnections();  // stops the checkpointer
  SqliteConnections(const SqliteConnections&) = delete;
  SqliteConnections& operator=(const SqliteConnections&) = delete;

  void AddReader(std::unique_ptr<sqlite::Connection> conn);
  // Installs the read anchor (once, at open, before the first write) and takes
  // its first snapshot.
  void SetReadAnchor(std::unique_ptr<sqlite::Connection> conn);
  // Starts the checkpointer on a connection of its own (once, at open).
  void StartCheckpointer(std::unique_ptr<sqlite::Connection> conn);

  // Runs `body` as a transaction of `kind` (see the file comment): commits when
  // it succeeds, rolls back when it fails or throws (Internal), so a connection
  // is never left inside an open transaction. Unavailable when no reader or the
  // write lock frees up within `wait`; statements past the statement timeout
  // fail with DeadlineExceeded.
  Status Run(TxKind kind, FunctionRef<Status(sqlite::Connection&)> body);

 private:
  class ReaderPool;

  Status Guarded(sqlite::Connection& c, FunctionRef<Status(sqlite::Connection&)> body);
  Status InTransaction(sqlite::Connection& c, const char* begin, FunctionRef<Status(sqlite::Connection&)> body);
  void ReleaseAnchor();
  void RenewAnchor();
  void TryRenewAnchor();
  void CheckpointLoop();

  const std::chrono::milliseconds wait_;
  const std::chrono::milliseconds statement_timeout_;
  std::timed_mutex writer_mu_;
  std::unique_ptr<sqlite::Connection> writer_;  // guarded by writer_mu_
  std::optional<sqlite::ReadAnchor> anchor_;    // guarded by writer_mu_; see sqlite::ReadAnchor
  std::unique_ptr<ReaderPool> readers_;

  std::unique_ptr<sqlite::Connection> checkpointer_conn_;  // used by checkpointer_ only
  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;    // the checkpointer waits for work
  std::condition_variable ckpt_idle_;  // the writer waits for the checkpointer's run to end
  bool ckpt_pending_ = false;          // guarded by ckpt_mu_
  bool ckpt_stop_ = false;             // guarded by ckpt_mu_
  bool ckpt_running_ = false;          // guarded by ckpt_mu_: a background checkpoint is copying
  bool writer_checkpoints_ = false;    // guarded by ckpt_mu_: past the hard limit, the writer's turn
  std::thread checkpointer_;
};

}  // namespace vppd::store
