// store_crash_writer: a helper for store_crash_test, not a tool for users.
//
//   store_crash_writer DIR [--normal]
//   store_crash_writer --database-url URL
//
// Opens (creating) DIR/vppd.db, or the PostgreSQL store at URL, and commits
// writes in a loop until killed. After
// each commit has returned, and only then, it prints one line and flushes:
//   c <id>          a token was created
//   u <id> <seq>    that token's lastAppCount was set to <seq>
//   f <id> <n>      a sync job of that token finished (FinishJob, replace) with
//                   <n> assignments staged over two pages
//   p <id> <n>      a re-sync of that token with <n> assignments is about to
//                   finish: it may have committed without an `f` line
// Every eighth token is synced twice (the second time after a walk restart), so
// the first set becomes garbage that the store's collector deletes while the
// loop goes on: kills also land inside collector batches.
// The test kills it with SIGKILL at random moments and checks that every printed
// write is in the database. --normal opens with synchronous=NORMAL, to show that a
// process kill loses nothing in that mode either. Exits 2 on any store error.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "store/store.h"

namespace {

// A whole sync of `token_id`: enqueue, claim, stage two pages of `n` rows (after
// a restarted walk when `resync`), FinishJob(replace) in one transaction.
bool Sync(vppd::store::Store& store, const std::string& tenant, const std::string& token_id, std::int64_t n,
          bool resync) {
  using namespace vppd;
  using namespace vppd::store;
  if (!store.EnqueueJob(tenant, token_id, {}, nullptr)) return false;
  // A job queued by a killed earlier run is older and comes first: finish it
  // without a snapshot and claim again.
  auto job = store.ClaimJob("crash", Clock::Real().Now(), std::chrono::minutes(5));
  while (job && *job && (*job)->token_id != token_id) {
    if (!store.FinishJob(**job, std::nullopt, nullptr)) return false;
    job = store.ClaimJob("crash", Clock::Real().Now(), std::chrono::minutes(5));
  }
  if (!job || !*job) {
    std::fprintf(stderr, "claim failed\n");
    return false;
  }
  if (resync) {
    // A walk that restarts: its first rows are abandoned.
    if (!store.StageAssignments(**job, {{"999", "STDQ", "abandoned", ""}})) return false;
    if (!store.ClearStaged(**job)) return false;
  }
  std::vector<LicenseAssignment> page;
  for (std::int64_t i = 0; i < n; ++i) {
    page.push_back({std::to_string(1000 + i % 7), "STDQ", "user-" + std::to_string(i), ""});
    if (page.size() == static_cast<std::size_t>(n / 2) || i == n - 1) {
      if (!store.StageAssignments(**job, page)) return false;
      page.clear();
    }
  }
  if (resync) {
    std::printf("p %s %lld\n", token_id.c_str(), static_cast<long long>(n));
    std::fflush(stdout);
  }
  SyncSnapshot snapshot;
  snapshot.assignments = SyncSnapshot::Assignments::kReplaceWithStaged;
  auto finished = store.FinishJob(**job, snapshot, nullptr);
  if (!finished) {
    std::fprintf(stderr, "finish: %s\n", finished.error().message.c_str());
    return false;
  }
  std::printf("f %s %lld\n", token_id.c_str(), static_cast<long long>(n));
  std::fflush(stdout);
  return true;
}

// `dir` names the SQLite file's directory; `database_url`, when not empty, the
// PostgreSQL store to use instead.
int Run(const std::string& dir, bool normal, const std::string& database_url) {
  using namespace vppd;
  using namespace vppd::store;
  auto secrets = std::make_shared<SecretBox>(SecretBox::FromKey(std::string(32, 'c')));
  constexpr std::int64_t kMaxTokens = 1'000'000;  // the loop outlives the real limit
  Result<std::unique_ptr<Store>> store = [&] {
    if (!database_url.empty()) {
      PostgresOptions options;
      options.url = database_url;
      options.secrets = secrets;
      options.max_tokens_per_tenant = kMaxTokens;
      return Store::OpenPostgres(options);
    }
    SqliteOptions options;
    options.path = dir + "/vppd.db";
    options.secrets = secrets;
    options.synchronous_full = !normal;
    options.max_tokens_per_tenant = kMaxTokens;
    return Store::OpenSqlite(options);
  }();
  if (!store) {
    std::fprintf(stderr, "open: %s\n", store.error().message.c_str());
    return 2;
  }
  const std::string tenant = "cccccccc-cccc-cccc-cccc-cccccccccccc";
  if (Status s = (*store)->PutTenant({tenant, "crash", true, 0}); !s) {
    std::fprintf(stderr, "tenant: %s\n", s.error().message.c_str());
    return 2;
  }
  for (std::int64_t seq = 1;; ++seq) {
    VppToken token;
    token.token = "crash-token-" + std::to_string(seq);
    token.display_name = "token " + std::to_string(seq);
    Result<VppToken> created = (*store)->CreateToken(tenant, token);
    if (!created) {
      std::fprintf(stderr, "create: %s\n", created.error().message.c_str());
      return 2;
    }
    std::printf("c %s\n", created->id.c_str());
    std::fflush(stdout);
    if (seq % 3 == 0) {
      Result<VppToken> updated = (*store)->UpdateToken(tenant, created->id, [seq](VppToken& t) -> Status {
        t.last_app_count = static_cast<std::int32_t>(seq);
        return {};
      });
      if (!updated) {
        std::fprintf(stderr, "update: %s\n", updated.error().message.c_str());
        return 2;
      }
      std::printf("u %s %lld\n", created->id.c_str(), static_cast<long long>(seq));
      std::fflush(stdout);
    }
    if (seq % 4 == 0) {
      if (!Sync(**store, tenant, created->id, 200 + seq % 300, false)) return 2;
    }
    if (seq % 8 == 0) {
      if (!Sync(**store, tenant, created->id, 100 + seq % 250, true)) return 2;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // stdout carries the protocol above; the store's logs go to stderr.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("stderr"));
  if (argc == 3 && std::strcmp(argv[1], "--database-url") == 0) return Run("", false, argv[2]);
  if (argc < 2 || argc > 3 || (argc == 3 && std::strcmp(argv[2], "--normal") != 0)) {
    std::fprintf(stderr, "usage: %s DIR [--normal] | --database-url URL\n", argv[0]);
    return 64;
  }
  return Run(argv[1], argc == 3, "");
}
