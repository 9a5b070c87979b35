// Durability under kill -9: runs store_crash_writer, kills it with SIGKILL at
// random moments, and checks that every write it reported as committed survived
// and that the file is intact. Since assignments are written once under
// generations (migration 3), it also checks the new crash windows: a kill while a
// walk stages, between a restart's ClearStaged and FinishJob, and inside the
// collector's batches must leave no assignment row that nothing accounts for once
// the reopened store's collector has run, and reads must see exactly the
// reported set. It runs on SQLite and, when VPPD_TEST_DATABASE_URL is set, on
// PostgreSQL (the writer's connection dies with it; the server must roll back
// whatever it had not committed).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "store/store.h"
#include "store/store_testing.h"

namespace vppd::store {
namespace {

using testing::Backend;

constexpr const char* kTenant = "cccccccc-cccc-cccc-cccc-cccccccccccc";

struct RoundOutput {
  std::string stdout_text;
  int status = 0;
};

// Runs the writer for about `run_for`, then SIGKILLs it and drains what it printed.
// `url` not empty: the writer uses that PostgreSQL store instead of `dir`. With
// `after_first_write`, `run_for` counts from the first write the writer reports
// (at most 60 s after the start), not from the start: on a loaded machine opening
// the store alone can take longer than a whole round, and a round killed before
// its first write tests nothing of the write loop.
RoundOutput RunAndKill(const std::string& dir, bool normal, const std::string& url, std::chrono::milliseconds run_for,
                       bool after_first_write) {
  RoundOutput out;
  int fds[2];
  if (pipe(fds) != 0) {
    ADD_FAILURE() << "pipe failed";
    return out;
  }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    if (!url.empty()) {
      execl(VPPD_STORE_CRASH_WRITER, VPPD_STORE_CRASH_WRITER, "--database-url", url.c_str(),
            static_cast<char*>(nullptr));
    } else if (normal) {
      execl(VPPD_STORE_CRASH_WRITER, VPPD_STORE_CRASH_WRITER, dir.c_str(), "--normal", static_cast<char*>(nullptr));
    } else {
      execl(VPPD_STORE_CRASH_WRITER, VPPD_STORE_CRASH_WRITER, dir.c_str(), static_cast<char*>(nullptr));
    }
    _exit(127);
  }
  close(fds[1]);
  auto read_some = [&](int timeout_ms) {
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return false;
    char buf[8192];
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) return false;
    out.stdout_text.append(buf, static_cast<std::size_t>(n));
    return true;
  };
  if (after_first_write) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (out.stdout_text.find('\n') == std::string::npos && std::chrono::steady_clock::now() < give_up) {
      read_some(100);
    }
  }
  // Keep the pipe drained while the writer runs, so it never blocks on stdout.
  auto deadline = std::chrono::steady_clock::now() + run_for;
  while (std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    read_some(static_cast<int>(std::max<long>(1, left.count())));
  }
  kill(pid, SIGKILL);
  // The writer is dead: what it printed is in the pipe; read to EOF (bounded).
  auto drain_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < drain_deadline && read_some(1000)) {
  }
  close(fds[0]);
  waitpid(pid, &out.status, 0);
  return out;
}

class StoreCrashTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { VPPD_SKIP_WITHOUT_POSTGRES(GetParam()); }
};
INSTANTIATE_TEST_SUITE_P(Store, StoreCrashTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

TEST_P(StoreCrashTest, KilledWriterLosesNoCommittedWrite) {
  std::string pattern = (std::filesystem::temp_directory_path() / "vppd-crash-XXXXXX").string();
  std::string dir = mkdtemp(pattern.data());
  testing::TestDb db(GetParam(), dir);
  const bool pg = db.pg();
  unsigned seed = static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count());
  std::printf("[ seed     ] %u\n", seed);
  std::mt19937 rng(seed);

  // id -> the lastAppCount a reported update set. A token whose update committed
  // but was not reported (killed in between) may hold either value.
  std::map<std::string, std::optional<std::int64_t>> created;
  // id -> assignments of a reported FinishJob.
  std::map<std::string, std::int64_t> synced;
  // id -> assignments of a re-sync that may have committed without being reported.
  std::map<std::string, std::int64_t> pending;
  constexpr int kRounds = 8;
  for (int round = 0; round < kRounds; ++round) {
    // Round 0 dies almost at once (during open and migration); the rest at random
    // moments in the write loop, counted from its first write. Odd rounds use
    // synchronous=NORMAL.
    std::uniform_int_distribution<int> ms(round == 0 ? 1 : 30, round == 0 ? 15 : 400);
    bool normal = round % 2 == 1;
    RoundOutput out = RunAndKill(dir, normal, db.url(), std::chrono::milliseconds(ms(rng)), round != 0);
    ASSERT_TRUE(WIFSIGNALED(out.status) && WTERMSIG(out.status) == SIGKILL)
        << "the writer must be running until killed; status " << out.status;

    std::istringstream lines(out.stdout_text);
    std::string line;
    int round_writes = 0;
    while (std::getline(lines, line)) {
      if (lines.eof()) break;  // a trailing partial line: not reported, not checked
      std::istringstream words(line);
      std::string kind, id;
      words >> kind >> id;
      if (kind == "c") {
        created[id] = std::nullopt;
      } else if (kind == "f") {
        std::int64_t n = 0;
        words >> n;
        synced[id] = n;
        pending.erase(id);
      } else if (kind == "p") {
        std::int64_t n = 0;
        words >> n;
        pending[id] = n;
      } else if (kind == "u") {
        std::int64_t seq = 0;
        words >> seq;
        created[id] = seq;
      } else {
        ADD_FAILURE() << "unexpected writer output: " << line;
      }
      ++round_writes;
    }

    // Reopen (recovering the WAL) and check every reported write.
    SqliteOptions options;
    options.path = dir + "/vppd.db";
    options.secrets = std::make_shared<SecretBox>(SecretBox::FromKey(std::string(32, 'c')));
    if (!pg && !std::filesystem::exists(options.path)) continue;  // killed before creating the file
    Result<std::unique_ptr<Store>> store = db.Open(options);
    ASSERT_TRUE(store) << CodeName(store.error().code) << ": " << store.error().message;
    for (const auto& [id, app_count] : created) {
      Result<VppToken> t = (*store)->GetToken(kTenant, id);
      ASSERT_TRUE(t) << "round " << round << ": committed token " << id << " lost: " << t.error().message;
      if (app_count) {
        EXPECT_EQ(t->last_app_count, *app_count) << "round " << round << ": committed update of " << id << " lost";
      }
    }
    for (const auto& [id, n] : synced) {
      std::int64_t rows = 0;
      Status walked = (*store)->ForEachAssignment(kTenant, id, 1000, [&](const auto& batch) -> Status {
        rows += static_cast<std::int64_t>(batch.size());
        return {};
      });
      ASSERT_TRUE(walked) << walked.error().message;
      auto maybe = pending.find(id);
      if (maybe != pending.end() && rows == maybe->second) continue;  // the unreported re-sync committed
      EXPECT_EQ(rows, n) << "round " << round << ": committed FinishJob of " << id << " lost";
    }
    Result<std::int64_t> count = (*store)->CountTokens(kTenant, std::nullopt);
    ASSERT_TRUE(count);
    EXPECT_GE(*count, static_cast<std::int64_t>(created.size()));  // at most the unreported last one more
    EXPECT_LE(*count, static_cast<std::int64_t>(created.size()) + round + 1);

    testing::Raw raw = db.raw();
    auto query_int = [&](const std::string& sql) { return raw.Int(sql); };
    // The reopened store's collector deletes what the killed writer left behind
    // (replaced sets, abandoned walks, a half-collected set).
    auto collect_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (query_int("SELECT count(*) FROM assignment_generations WHERE state = 'garbage'") != 0 &&
           std::chrono::steady_clock::now() < collect_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(query_int("SELECT count(*) FROM assignment_generations WHERE state = 'garbage'"), 0)
        << "round " << round << ": garbage not collected";
    // Every row belongs to a token's current set or to a job's walk in progress.
    // SQLite keeps an app's rows as chunks (its migration 8), PostgreSQL as rows.
    const std::string assignments = pg ? "license_assignments" : "assignment_chunks";
    const std::string counted = pg ? "count(*)" : "sum(rows)";
    EXPECT_EQ(query_int("SELECT count(*) FROM " + assignments +
                        " WHERE generation NOT IN "
                        "(SELECT assignments_generation FROM vpp_tokens WHERE assignments_generation IS NOT NULL) "
                        "AND generation NOT IN (SELECT generation FROM assignment_generations WHERE state = "
                        "'staging' AND job_key IN (SELECT key FROM sync_jobs))"),
              0)
        << "round " << round << ": assignment rows nothing accounts for";
    EXPECT_EQ(query_int("SELECT count(*) FROM vpp_tokens t WHERE assignments_generation IS NOT NULL AND NOT EXISTS "
                        "(SELECT 1 FROM assignment_generations g WHERE g.generation = t.assignments_generation "
                        "AND g.state = 'current')"),
              0)
        << "round " << round << ": a token points at a set that is not current";
    EXPECT_EQ(query_int("SELECT count(*) FROM (SELECT generation, adam_id, pricing_param, " + counted + " AS n FROM " +
                        assignments + " " + std::string(pg ? "" : "JOIN assignment_apps USING (app_key) ") +
                        "GROUP BY 1, 2, 3) r FULL OUTER JOIN assignment_counts k "
                        "USING (generation, adam_id, pricing_param) WHERE r.n " +
                        std::string(pg ? "IS DISTINCT FROM" : "IS NOT") + " k.rows"),
              0)
        << "round " << round << ": assignment_counts disagrees with the rows";
    std::printf(
        "[ round %d  ] %lld assignment rows, %lld sets staging\n", round,
        static_cast<long long>(query_int("SELECT coalesce(" + counted + ", 0) FROM " + assignments)),
        static_cast<long long>(query_int("SELECT count(*) FROM assignment_generations WHERE state = 'staging'")));
    store->reset();
    if (pg) {
      std::printf("[ round %d  ] killed after %d reported writes; %zu tokens checked\n", round, round_writes,
                  created.size());
      continue;
    }

    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(options.path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "ok") << "round " << round;
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    std::printf("[ round %d  ] killed after %d reported writes (%s); %zu tokens checked\n", round, round_writes,
                normal ? "NORMAL" : "FULL", created.size());
  }
  EXPECT_GE(created.size(), 50u) << "too few writes to mean anything";
  EXPECT_GE(synced.size(), 10u) << "too few finished syncs to mean anything";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vppd::store
