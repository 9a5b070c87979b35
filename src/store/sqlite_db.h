// Internal to store/: a small RAII layer over the SQLite C API.
//
// Connection owns one sqlite3 handle, its cache of prepared statements and a
// statement deadline. Stmt is a lease on a cached statement: it resets and clears
// its bindings when it goes out of scope, so a statement never leaks values from
// one call into the next. Every SQLite failure becomes an Error here (MapError),
// so no sqlite3 result code leaves this layer.
//
// Thread-safety: none. A Connection (and every Stmt leased from it) is used by one
// thread at a time; SqliteStore guarantees that with its writer mutex and reader pool.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>

#include "base/error.h"

struct sqlite3;
struct sqlite3_stmt;

namespace vppd::store::sqlite {

// A value bound to a numbered parameter of a dynamically built statement.
using SqlValue = std::variant<std::monostate, std::int64_t, double, std::string>;

class Connection;

class Stmt {
 public:
  Stmt(Connection* conn, sqlite3_stmt* stmt) : conn_(conn), stmt_(stmt) {}
  Stmt(Stmt&& other) noexcept : conn_(other.conn_), stmt_(other.stmt_) { other.stmt_ = nullptr; }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt();

  // Parameters are 1-based, as in SQLite. Text is copied (SQLITE_TRANSIENT).
  Status Bind(int index, std::int64_t value);
  Status Bind(int index, double value);
  Status Bind(int index, std::string_view text);
  // Binds without copying (SQLITE_STATIC): `text` must stay alive and unchanged
  // until the statement is re-bound or the lease ends. For bulk inserts.
  Status BindStatic(int index, std::string_view text);
  Status Bind(int index, const std::optional<std::string>& text);  // nullopt binds NULL
  // A blob, without copying (as BindStatic).
  Status BindBlobStatic(int index, std::string_view bytes);
  Status BindBool(int index, bool value) { return Bind(index, std::int64_t{value ? 1 : 0}); }
  Status BindNull(int index);
  Status Bind(int index, const SqlValue& value);

  // Advances: true when a row is ready, false when the statement is done.
  Result<bool> Step();
  // Steps to completion, ignoring rows; for INSERT/UPDATE/DELETE.
  Status Run();
  // Rewinds the statement (keeping its bindings) so it can be bound and run
  // again in a loop; the lease resets it anyway when it ends.
  void Reset();

  // Columns are 0-based, as in SQLite. Reading a column of the wrong storage class
  // converts as SQLite does; the STRICT schema keeps classes exact.
  bool IsNull(int col) const;
  std::int64_t Int(int col) const;
  std::string Text(int col) const;
  std::optional<std::string> OptText(int col) const;
  // A blob column's bytes, valid until the next Step, Reset or column access of `col`.
  std::string_view Blob(int col) const;  // also a TEXT column's bytes

 private:
  Connection* conn_;
  sqlite3_stmt* stmt_;
};

struct ConnectionOptions {
  std::string path;
  int busy_timeout_ms = 5000;
  // true: PRAGMA synchronous=FULL; false: NORMAL. See SqliteOptions.
  bool synchronous_full = false;
  // Reader connections set query_only, so a bug cannot write through them.
  bool query_only = false;
  // Switch the file to WAL while opening. The writer opens without it, so that a
  // file found not to be vppd's is left exactly as it was (WAL is persistent).
  bool enable_wal = true;
};

class Connection {
 public:
  // Opens (creating when absent) and configures the connection: WAL, foreign keys,
  // busy timeout, defensive mode. Unavailable when the file cannot be opened.
  static Result<std::unique_ptr<Connection>> Open(const ConnectionOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Switches the file to WAL journaling (persistent in the file). Unavailable when
  // the file system cannot do WAL.
  Status EnableWal();

  // Runs SQL without parameters or result rows: BEGIN/COMMIT, PRAGMA, DDL. Never
  // used with values from outside the binary.
  Status Exec(const char* sql);
  // A statement of fixed text, prepared once and kept for the connection's life.
  Result<Stmt> Prepare(std::string_view sql);
  // A statement whose text depends on a query's shape ($filter/$orderby). Kept in a
  // small bounded cache, so hostile variety cannot grow memory without limit.
  Result<Stmt> PrepareDynamic(const std::string& sql);

  // Statements that run past `deadline` are interrupted and fail with
  // DeadlineExceeded. ClearDeadline before COMMIT/ROLLBACK, which must not be cut.
  void SetDeadline(std::chrono::steady_clock::time_point deadline) { deadline_ = deadline; }
  void ClearDeadline() { deadline_ = std::chrono::steady_clock::time_point::max(); }

  // Turns a SQLite result code into an Error naming `what` was being done.
  Error MapError(int rc, std::string_view what) const;
  // The number of rows the last INSERT/UPDATE/DELETE changed.
  std::int64_t Changes() const;

  // Calls `on_commit(wal_pages)` after each commit of this connection with the
  // WAL's size in pages, from the committing thread, and turns off SQLite's
  // automatic checkpoint for the connection (whose cost the committing call
  // would otherwise pay: ~10 ms with an fsync). The callback must be quick and
  // must not use the connection; when it returns true the connection checkpoints
  // at once, before the commit returns, as SQLite's automatic checkpoint does,
  // but in RESTART mode: it waits (up to 100 ms) for readers of older snapshots
  // to finish, so that the WAL restarts from its beginning at the next write.
  void OnWalCommit(std::function<bool(int wal_pages)> on_commit);
  // PRAGMA wal_checkpoint(PASSIVE): copies what it can of the WAL into the
  // database without waiting for (or blocking) readers or the writer. The WAL
  // restarts from its beginning when the writer next begins with everything
  // copied.
  Status CheckpointPassive();
  // The single integer a query such as `PRAGMA user_version` returns.
  Result<std::int64_t> QueryInt(const char* sql);

 private:
  explicit Connection(sqlite3* db) : db_(db) {}
  static int OnProgress(void* self);
  // Statements by their text, found by a string_view (no copy of the SQL per lookup).
  struct SqlHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view sql) const { return std::hash<std::string_view>{}(sql); }
  };
  using StmtCache = std::unordered_map<std::string, sqlite3_stmt*, SqlHash, std::equal_to<>>;
  Result<Stmt> PrepareInto(StmtCache& cache, std::string_view sql, bool persistent);

  sqlite3* db_;
  StmtCache fixed_;
  StmtCache dynamic_;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  std::function<bool(int)> on_wal_commit_;
  int busy_timeout_ms_ = 0;  // restored after a checkpoint's shorter wait
  friend class Stmt;
};

// Keeps a read transaction open on a connection of its own, so that the
// process's readers take and drop their WAL read-mark lock without a system
// call.
//
// Why: a WAL read transaction takes a shared lock on one of the read-mark
// bytes of the `-shm` file and drops it at its end. SQLite's unix VFS counts
// these locks per process: it calls fcntl only when no other connection of
// the process holds that byte, so a lone reader pays two fcntls per read (a
// tenth of a Graph read: bench/README.md, api). A reader picks the read mark that equals the newest commit, so while
// this connection holds a snapshot of the newest commit, every reader that
// begins after it shares its mark and its lock: the lock and unlock become
// counter updates. Readers still run SQLite's full protocol and always see
// the newest commit, whoever wrote it; the anchor changes only which locks
// are free, never what anyone reads.
//
// What the owner must do: Renew after each commit of its writer (and after a
// checkpoint, which moves new readers to mark 0), and Release before its
// writer begins: the WAL restarts from its beginning only when no read mark
// but 0 is held then, and the checkpointer copies no frame past the held
// snapshot. A write by another process (the CLI) is visible to readers at
// once; only the saving waits for the next Renew.
//
// Thread-safety: none; the owner serialises Renew and Release.
class ReadAnchor {
 public:
  explicit ReadAnchor(std::unique_ptr<Connection> conn) : conn_(std::move(conn)) {}
  ~ReadAnchor() { Release(); }
  ReadAnchor(const ReadAnchor&) = delete;
  ReadAnchor& operator=(const ReadAnchor&) = delete;

  // Ends the snapshot held (if any) and begins one of the newest commit. On
  // failure (SQLITE_BUSY during a WAL recovery, say) nothing is held, which
  // costs readers their fcntls and nothing else.
  Status Renew();
  // Ends the snapshot held; nothing when none is.
  void Release();
  bool held() const { return held_; }

 private:
  std::unique_ptr<Connection> conn_;
  bool held_ = false;
};

}  // namespace vppd::store::sqlite
