// Internal to store/: a small RAII layer over libpq, PostgreSQL's C client.
//
// Connection owns one PGconn and the statements it has prepared; Rows owns one
// PGresult. Values always travel as parameters ($1, $2, ...) in text format,
// never pasted into SQL; results come back as text and are parsed here. Every
// libpq failure becomes an Error here (MapError), so no SQLSTATE leaves this
// layer except through Connection::last_sqlstate(), which the transaction
// helper reads to retry serialization failures and deadlocks.
//
// Pool hands out connections, at most `max_size` at once, opening them lazily;
// a caller that finds none free waits up to `wait` and then fails with
// Unavailable. A connection that broke (server restart, network) is dropped
// instead of going back.
//
// Thread-safety: a Connection is used by one thread at a time (a Lease); Pool is
// thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/error.h"
#include "store/pool_lease.h"

struct pg_conn;
struct pg_result;

namespace vppd::store::pg {

// Parameters of one statement, in order ($1 first). NULL is nullopt.
class Params {
 public:
  Params() = default;
  template <class... Args>
  explicit Params(const Args&... args) {
    (Add(args), ...);
  }
  Params& Add(std::nullopt_t) {
    values_.emplace_back();
    return *this;
  }
  Params& Add(std::string_view text) {
    values_.emplace_back(std::string(text));
    return *this;
  }
  Params& Add(const std::string& text) { return Add(std::string_view(text)); }
  Params& Add(const char* text) { return Add(std::string_view(text)); }
  Params& Add(const std::optional<std::string>& text) {
    if (text) return Add(std::string_view(*text));
    return Add(std::nullopt);
  }
  Params& Add(bool value) {
    values_.emplace_back(value ? "true" : "false");
    return *this;
  }
  Params& Add(std::int64_t value) {
    values_.emplace_back(std::to_string(value));
    return *this;
  }
  Params& Add(int value) { return Add(static_cast<std::int64_t>(value)); }
  Params& Add(std::size_t value) { return Add(static_cast<std::int64_t>(value)); }
  Params& Add(double value);
  std::size_t size() const { return values_.size(); }
  const std::vector<std::optional<std::string>>& values() const { return values_; }

 private:
  std::vector<std::optional<std::string>> values_;
};

// The rows (or the command tag) one statement returned.
class Rows {
 public:
  explicit Rows(pg_result* result) : result_(result) {}
  Rows(Rows&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  Rows& operator=(Rows&& other) noexcept;
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;
  ~Rows();

  int size() const;
  bool empty() const { return size() == 0; }
  // Rows an INSERT/UPDATE/DELETE changed.
  std::int64_t affected() const;
  bool IsNull(int row, int col) const;
  std::string Text(int row, int col) const;
  std::string_view View(int row, int col) const;  // valid while the Rows live
  std::optional<std::string> OptText(int row, int col) const;
  std::int64_t Int(int row, int col) const;  // 0 when NULL
  bool Bool(int row, int col) const;         // false when NULL

 private:
  pg_result* result_;
};

struct ConnectOptions {
  std::string url;  // postgresql://... or a key=value connection string
  int connect_timeout_ms = 5000;
  int statement_timeout_ms = 10000;
  // How long a statement waits for a row or table lock before it fails (55P03,
  // Unavailable), as SQLite's busy timeout.
  int lock_timeout_ms = 5000;
};

class Connection {
 public:
  // Connects and sets the session's timeouts. Unavailable when the server cannot
  // be reached or refuses the connection.
  static Result<std::unique_ptr<Connection>> Open(const ConnectOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // A statement of fixed text: prepared on this connection the first time, then
  // executed by name.
  Result<Rows> Exec(std::string_view sql, const Params& params = Params());
  // A statement whose text depends on a query's shape ($filter): parsed each time.
  Result<Rows> ExecDynamic(const std::string& sql, const Params& params);
  // Runs SQL without parameters (BEGIN, COMMIT, DDL; several statements allowed).
  // Never used with values from outside the binary.
  Status Simple(const std::string& sql);

  // The SQLSTATE of the last failure ("40001"), empty when it was not a server error.
  const std::string& last_sqlstate() const { return last_sqlstate_; }
  // True once the connection is unusable (lost, or left inside a failed COMMIT).
  bool broken() const;
  void MarkBroken() { marked_broken_ = true; }

 private:
  explicit Connection(pg_conn* conn) : conn_(conn) {}
  Result<Rows> Check(pg_result* result, std::string_view sql);
  Error MapError(pg_result* result, std::string_view sql);

  pg_conn* conn_;
  std::unordered_map<std::string, std::string> prepared_;  // sql → statement name
  std::string last_sqlstate_;
  bool marked_broken_ = false;
};

class Pool {
 public:
  using Lease = PoolLease<Pool, Connection>;

  Pool(ConnectOptions options, int max_size, std::chrono::milliseconds wait)
      : options_(std::move(options)), max_size_(max_size), wait_(wait) {}

  // A connection, opened now when none is idle and fewer than max_size are out.
  // Unavailable when none frees up within `wait` or a new one cannot connect.
  Result<Lease> Acquire();
  // Closes every idle connection (a fresh start after the server went away).
  void DropIdle();

 private:
  friend Lease;
  void Release(std::unique_ptr<Connection> conn);

  const ConnectOptions options_;
  const int max_size_;
  const std::chrono::milliseconds wait_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mu_
  int open_ = 0;                                   // guarded by mu_: idle + leased
};

// The shared SQL's placeholders (SQLite's ?1, ?2, ...) as PostgreSQL's ($1, $2,
// ...). Left alone: a `?` not followed by a digit (jsonb's operators), and
// whatever is inside a '...' literal (a doubled '' included), a "..." quoted
// identifier, a -- comment (to the end of the line) or a /* ... */ comment (not
// nested). Not understood, so never to be used in shared SQL: E'...' strings
// (a backslash-escaped quote) and $$...$$ dollar quoting.
std::string PgPlaceholders(std::string_view sql);

// SQLSTATEs the transaction helper retries: the transaction lost a race and
// nothing of it was written.
inline bool IsRetryable(std::string_view sqlstate) { return sqlstate == "40001" || sqlstate == "40P01"; }

}  // namespace vppd::store::pg
