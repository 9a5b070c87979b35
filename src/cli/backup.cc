#include "cli/backup.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include <sqlite3.h>
#include <sys/stat.h>

#include "base/terminal_text.h"

namespace vppd::cli {
namespace {

struct SqliteClose {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using SqlitePtr = std::unique_ptr<sqlite3, SqliteClose>;

Error SqliteError(const std::string& what, sqlite3* db) {
  return Error::Internal(what + ": " + (db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
}

Result<SqlitePtr> OpenDb(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  SqlitePtr db(raw);
  if (rc != SQLITE_OK) return Fail(SqliteError("cannot open " + path, raw));
  sqlite3_busy_timeout(raw, 10'000);  // the server's writer holds locks for milliseconds
  return db;
}

Status FsyncPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(Error::Internal("cannot open " + path + " to sync it"));
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return Fail(Error::Internal("cannot sync " + path + " to disk"));
  return {};
}

// Copies `source` into the new file `temp` in one backup step (one read transaction:
// a consistent snapshot) and checks the copy. Returns the copy's pages.
Result<int> CopyAndCheck(const std::string& source, const std::string& temp) {
  auto src = OpenDb(source, SQLITE_OPEN_READONLY);
  if (!src) return Fail(src.error());
  auto dst = OpenDb(temp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXCLUSIVE);
  if (!dst) return Fail(dst.error());
  sqlite3_backup* backup = sqlite3_backup_init(dst->get(), "main", src->get(), "main");
  if (backup == nullptr) return Fail(SqliteError("cannot start the backup", dst->get()));
  int rc = SQLITE_OK;
  // -1: every page in this one step. BUSY only while another connection holds an
  // exclusive lock (never in WAL mode for long): try again, within the busy timeout.
  for (int attempt = 0; attempt < 100; ++attempt) {
    rc = sqlite3_backup_step(backup, -1);
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
    sqlite3_sleep(100);
  }
  const int pages = sqlite3_backup_pagecount(backup);
  sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) {
    return Fail(Error::Internal(std::string("backup of ") + source + " failed: " + sqlite3_errstr(rc)));
  }
  // The copy must be a sound database before it takes DEST's name.
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(dst->get(), "PRAGMA quick_check", -1, &stmt, nullptr) != SQLITE_OK) {
    return Fail(SqliteError("cannot check the copy", dst->get()));
  }
  std::string verdict;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    verdict += text != nullptr ? reinterpret_cast<const char*>(text) : "";
  }
  sqlite3_finalize(stmt);
  if (verdict != "ok") return Fail(Error::Internal("the copy failed its check (PRAGMA quick_check): " + verdict));
  return pages;
}

}  // namespace

Status Backup(const Settings& settings, const std::string& dest, std::FILE* out) {
  if (!settings.database_url.empty()) {
    return Fail(Error::FailedPrecondition(
        "this deployment keeps its store in PostgreSQL (--database-url): back it up with pg_dump "
        "(pg_dump --format=custom --file=vppd.dump DATABASE; pg_restore to restore), and keep the secrets "
        "key file with it"));
  }
  const std::string source = settings.data_dir + "/vppd.db";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(source, ec)) {
    return Fail(Error::NotFound("no vppd store to back up: looked for '" + source +
                                "' (--data-dir, or data_dir in --config, says where it is)"));
  }
  struct stat st {};
  if (::geteuid() == 0 && ::stat(source.c_str(), &st) == 0 && st.st_uid != 0) {
    // Reading a WAL database may create vppd.db-wal and -shm beside it; made by root,
    // the server (its owner) could no longer open them.
    return Fail(Error::FailedPrecondition("run the backup as the owner of " + source + " (uid " +
                                          std::to_string(st.st_uid) +
                                          "), not as root: runuser -u vppd -- vppd backup ..."));
  }
  if (dest.empty()) return Fail(Error::InvalidArgument("no backup file given"));
  if (std::filesystem::exists(dest, ec) || std::filesystem::is_symlink(dest, ec)) {
    return Fail(Error::FailedPrecondition("'" + dest + "' exists: a backup never overwrites a file"));
  }
  const std::string temp = dest + ".partial";
  std::filesystem::remove(temp, ec);      // left by a backup that was killed
  const mode_t old_umask = ::umask(077);  // the copy holds sealed sTokens and the installation id: 0600
  Result<int> pages = CopyAndCheck(source, temp);
  ::umask(old_umask);
  auto give_up = [&temp](const Error& e) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    return Fail(e);
  };
  if (!pages) return give_up(pages.error());
  if (auto ok = FsyncPath(temp); !ok) return give_up(ok.error());
  std::filesystem::rename(temp, dest, ec);
  if (ec) return give_up(Error::Internal("cannot rename " + temp + " to " + dest + ": " + ec.message()));
  const std::filesystem::path parent = std::filesystem::absolute(dest, ec).parent_path();
  (void)FsyncPath(parent.string());  // the rename, durable; a failure here loses nothing written
  const auto bytes = std::filesystem::file_size(dest, ec);
  const std::string key = settings.key_file.empty() ? settings.data_dir + "/secret.key" : settings.key_file;
  std::fprintf(out,
               "backed up %s to %s: %d pages, %.1f MiB, checked\n"
               "its sTokens are sealed with %s, which is not in the backup: keep a copy of that file too "
               "(it never changes)\n",
               TerminalSafe(source).c_str(), TerminalSafe(dest).c_str(), *pages,
               ec ? 0.0 : static_cast<double>(bytes) / (1024.0 * 1024.0), TerminalSafe(key).c_str());
  return {};
}

}  // namespace vppd::cli
