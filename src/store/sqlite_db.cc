#include "store/sqlite_db.h"

#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/stat.h>

namespace vppd::store::sqlite {
namespace {

// Distinct filter/order shapes kept prepared per connection. Real clients use a
// handful of shapes; past this the cache is emptied rather than grown.
constexpr std::size_t kMaxDynamicStatements = 64;

// How many VM instructions run between deadline checks. A check is one
// steady_clock read (~20 ns); 1000 instructions are a few microseconds of work.
constexpr int kProgressInterval = 1000;

// How long a commit's own checkpoint (see OnWalCommit) waits for readers.
constexpr int kHardCheckpointWaitMs = 100;

}  // namespace

// --- Stmt -------------------------------------------------------------------

Stmt::~Stmt() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

Status Stmt::Bind(int index, std::int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) return Fail(conn_->MapError(rc, "bind"));
  return {};
}

Status Stmt::Bind(int index, double value) {
  int rc = sqlite3_bind_double(stmt_, index, value);
  if (rc != SQLITE_OK) return Fail(conn_->MapError(rc, "bind"));
  return {};
}

Status Stmt::Bind(int index, std::string_view text) {
  int rc = sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) return Fail(conn_->MapError(rc, "bind"));
  return {};
}

Status Stmt::BindStatic(int index, std::string_view text) {
  int rc = sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
  if (rc != SQLITE_OK) return Fail(conn_->MapError(rc, "bind"));
  return {};
}

Status Stmt::BindBlobStatic(int index, std::string_view bytes) {
  int rc = sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_STATIC);
  if (rc != SQLITE_OK) return Fail(conn_->MapError(rc, "bind"));
  return {};
}

Status Stmt::Bind(int index, const std::optional<std::string>& text) {
  if (!text) return BindNull(index);
  return Bind(index, std::string_view(*text));
}

Status Stmt::BindNull(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) return Fail(conn_->MapError(rc, "bind"));
  return {};
}

Status Stmt::Bind(int index, const SqlValue& value) {
  return std::visit(
      [&](const auto& v) -> Status {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          return BindNull(index);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return Bind(index, std::string_view(v));
        } else {
          return Bind(index, v);
        }
      },
      value);
}

Result<bool> Stmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Fail(conn_->MapError(rc, "step"));
}

Status Stmt::Run() {
  for (;;) {
    Result<bool> row = Step();
    if (!row) return Fail(row.error());
    if (!*row) return {};
  }
}

void Stmt::Reset() { sqlite3_reset(stmt_); }

bool Stmt::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

std::int64_t Stmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string Stmt::Text(int col) const {
  const unsigned char* text = sqlite3_column_text(stmt_, col);
  int size = sqlite3_column_bytes(stmt_, col);  // after column_text, as SQLite requires
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(size));
}

std::string_view Stmt::Blob(int col) const {
  const void* bytes = sqlite3_column_blob(stmt_, col);
  int size = sqlite3_column_bytes(stmt_, col);  // after column_blob, as SQLite requires
  if (bytes == nullptr) return {};
  return {static_cast<const char*>(bytes), static_cast<std::size_t>(size)};
}

std::optional<std::string> Stmt::OptText(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Text(col);
}

// --- Connection -------------------------------------------------------------

Result<std::unique_ptr<Connection>> Connection::Open(const ConnectionOptions& options) {
  // SQLite counts every allocation under one process-wide mutex unless told not
  // to (Debian's build keeps SQLITE_DEFAULT_MEMSTATUS=1), which every reader
  // thread then contends for; vppd reads none of those statistics. Only possible
  // before the library initialises, i.e. before the first open; if something
  // opened a database earlier, SQLite refuses (SQLITE_MISUSE) and nothing changes.
  static const int memstatus_off = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)memstatus_off;
  sqlite3* db = nullptr;
  // NOMUTEX: the store serialises use of each connection itself, so SQLite's own
  // per-connection mutex would be pure overhead.
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  int rc = sqlite3_open_v2(options.path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Fail(Error::Unavailable(fmt::format("cannot open database {}: {}", options.path, msg)));
  }
  std::unique_ptr<Connection> conn(new Connection(db));
  // The database holds every tenant's data: owner-only, whatever the umask. SQLite
  // creates the -wal and -shm files with the database file's mode, so narrowing
  // that file here, before the first write (the WAL pragma below), covers them;
  // files an older version left 0644 are narrowed too.
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const std::string file = options.path + suffix;
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) == 0) continue;
    if (::chmod(file.c_str(), st.st_mode & 0700) != 0) {
      return Fail(Error::Unavailable(fmt::format("cannot make database file {} owner-only (mode 0600)", file)));
    }
  }
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  conn->busy_timeout_ms_ = options.busy_timeout_ms;
  sqlite3_progress_handler(db, kProgressInterval, &Connection::OnProgress, conn.get());
  // Defensive mode forbids writes that can corrupt the file (writable_schema,
  // journal_mode=OFF, ...) even if a future bug tried them.
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);

  if (options.enable_wal) {
    if (Status s = conn->EnableWal(); !s) return Fail(s.error());
  }
  // Every connection keeps SQLite's default page cache (2 MiB). A sync appends
  // blobs of chunks that nothing reads back through this cache but the merges
  // of apps staged in several runs, and a larger cache grew with every page
  // written, on the sync's stager thread (a malloc arena growing a page at a
  // time). The measurements, 64 and 8 MiB against 2: bench/README.md, sync.
  std::string pragmas = fmt::format(
      "PRAGMA foreign_keys=ON; PRAGMA synchronous={}; PRAGMA journal_size_limit=67108864;"
      " PRAGMA temp_store=MEMORY; PRAGMA query_only={}; PRAGMA cache_size=-2000;",
      options.synchronous_full ? "FULL" : "NORMAL", options.query_only ? 1 : 0);
  if (Status s = conn->Exec(pragmas.c_str()); !s) return Fail(s.error());
  return conn;
}

Status Connection::EnableWal() {
  // journal_mode=WAL is persistent in the file; asking again is a cheap no-op. It
  // answers with the mode now in force, which is not WAL on file systems without
  // shared memory.
  Result<Stmt> wal = Prepare("PRAGMA journal_mode=WAL");
  if (!wal) return Fail(wal.error());
  Result<bool> row = wal->Step();
  if (!row) return Fail(row.error());
  if (!*row || wal->Text(0) != "wal") {
    return Fail(Error::Unavailable("the database cannot use WAL journaling on this file system"));
  }
  return {};
}

Connection::~Connection() {
  for (auto& [sql, stmt] : fixed_) sqlite3_finalize(stmt);
  for (auto& [sql, stmt] : dynamic_) sqlite3_finalize(stmt);
  // close_v2 defers the close should anything still be open, rather than failing.
  sqlite3_close_v2(db_);
}

int Connection::OnProgress(void* self) {
  auto* conn = static_cast<Connection*>(self);
  return std::chrono::steady_clock::now() > conn->deadline_ ? 1 : 0;
}

Status Connection::Exec(const char* sql) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  sqlite3_free(message);  // MapError reads the same text from the handle.
  if (rc != SQLITE_OK) return Fail(MapError(rc, "exec"));
  return {};
}

Result<Stmt> Connection::Prepare(std::string_view sql) { return PrepareInto(fixed_, sql, true); }

Result<Stmt> Connection::PrepareDynamic(const std::string& sql) {
  if (dynamic_.size() >= kMaxDynamicStatements && dynamic_.find(sql) == dynamic_.end()) {
    for (auto& [text, stmt] : dynamic_) sqlite3_finalize(stmt);
    dynamic_.clear();
  }
  return PrepareInto(dynamic_, sql, false);
}

Result<Stmt> Connection::PrepareInto(StmtCache& cache, std::string_view sql, bool persistent) {
  auto it = cache.find(sql);
  if (it != cache.end()) return Stmt(this, it->second);
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), persistent ? SQLITE_PREPARE_PERSISTENT : 0,
                              &stmt, &tail);
  if (rc != SQLITE_OK) return Fail(MapError(rc, "prepare"));
  if (stmt == nullptr) return Fail(Error::Internal("store: empty SQL statement"));
  cache.emplace(sql, stmt);
  return Stmt(this, stmt);
}

std::int64_t Connection::Changes() const { return sqlite3_changes64(db_); }

void Connection::OnWalCommit(std::function<bool(int wal_pages)> on_commit) {
  on_wal_commit_ = std::move(on_commit);
  sqlite3_wal_hook(
      db_,
      [](void* self, sqlite3* db, const char* schema, int pages) -> int {
        if (static_cast<Connection*>(self)->on_wal_commit_(pages)) {
          // As sqlite3WalDefaultHook does, a busy checkpoint is not the commit's failure.
          // RESTART, not PASSIVE: the writer is here because the WAL has grown
          // past the hard limit, and a PASSIVE checkpoint copies nothing past a
          // reader still on an older snapshot, nor lets the WAL restart while a
          // reader holds a read mark other than 0; under a steady stream of
          // reads there nearly always is one (sqlite_store_test
          // TheWalRestartsWhileReadersRead: WAL 27-50 MB after 6,000 commits, 16.5
          // with RESTART). Those reads last one statement, and readers beginning
          // after the copy take mark 0, so a short wait is enough; past it the
          // checkpoint gives up (busy), as a PASSIVE one would.
          auto* conn = static_cast<Connection*>(self);
          sqlite3_busy_timeout(db, kHardCheckpointWaitMs);
          (void)sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_RESTART, nullptr, nullptr);
          sqlite3_busy_timeout(db, conn->busy_timeout_ms_);
        }
        return SQLITE_OK;
      },
      this);
}

Status Connection::CheckpointPassive() {
  int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  if (rc != SQLITE_OK) return Fail(MapError(rc, "checkpoint"));
  return {};
}

Result<std::int64_t> Connection::QueryInt(const char* sql) {
  Result<Stmt> stmt = Prepare(sql);
  if (!stmt) return Fail(stmt.error());
  Result<bool> row = stmt->Step();
  if (!row) return Fail(row.error());
  if (!*row) return Fail(Error::Internal(fmt::format("store: `{}` returned no row", sql)));
  return stmt->Int(0);
}

// --- ReadAnchor -------------------------------------------------------------

Status ReadAnchor::Renew() {
  Release();
  // A deferred BEGIN takes no lock; the first read of the database (here the
  // header's user_version) begins the read transaction and takes the mark.
  for (const char* sql : {"BEGIN", "PRAGMA user_version"}) {
    Result<Stmt> stmt = conn_->Prepare(sql);
    Status s = stmt ? stmt->Run() : Status(Fail(stmt.error()));
    if (!s) {
      (void)conn_->Exec("ROLLBACK");  // fails harmlessly when BEGIN did
      return s;
    }
  }
  held_ = true;
  return {};
}

void ReadAnchor::Release() {
  if (!held_) return;
  held_ = false;
  Result<Stmt> rollback = conn_->Prepare("ROLLBACK");
  if (rollback) (void)rollback->Run();
}

Error Connection::MapError(int rc, std::string_view what) const {
  // The handle's message is specific ("UNIQUE constraint failed: ..."); it never
  // contains bound values, so it is safe to log and return.
  std::string detail = fmt::format("sqlite {}: {} ({})", what, sqlite3_errmsg(db_), sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Error::Unavailable("store busy, retry later: " + detail);
    case SQLITE_INTERRUPT: {
      Error timed_out = Error::Unavailable("store statement timed out: " + detail);
      timed_out.code = Code::kDeadlineExceeded;  // no named factory for it
      return timed_out;
    }
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return Error::Unavailable("store I/O failed: " + detail);
    case SQLITE_CONSTRAINT:
      return Error::FailedPrecondition("store constraint failed: " + detail);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Error::Internal("database file is corrupt: " + detail);
    default:
      return Error::Internal(detail);
  }
}

}  // namespace vppd::store::sqlite
