// store_sync_bench: times the store's part of a full license sync at bench/sync's
// size, and the Graph item read path.
//
//   store_sync_bench [--rows N] [--page P] [--order by-asset|shuffled] [--dir D]
//                    [--database-url postgresql://...]
//
// Stages N assignments (default 1,000,000) in pages of P (default 1,000), as the
// sync's stager stages Apple's pages (built beforehand, untimed; the staging
// timed in wall time and in the staging thread's CPU time), then
// FinishJob(kReplaceWithStaged) into an empty token, then again over the existing N rows (the steady state: a re-sync),
// then a small delta through kMergeStaged with its count check; then times the collector deleting the replaced set.
// Prints one line per phase; exits 1 on any store error.
//
// --order: by-asset (the default) delivers rows grouped by asset, in random order
// within an asset, as apple-vpp-sim's pages do; shuffled gives every row a random
// asset, the worst case for a B-tree that is built by inserts (each row lands on
// another leaf page, so each page's commit rewrites ~one page per row).
//
// --database-url: the same on the PostgreSQL store, in a schema of its own
// (vppd_bench_PID) that is dropped at the end.
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <libpq-fe.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include "store/store.h"

namespace {

using namespace vppd;
using namespace vppd::store;
using Steady = std::chrono::steady_clock;

double Ms(Steady::time_point from, Steady::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

#define CHECK_OK(expr)                                                            \
  do {                                                                            \
    const auto& _r = (expr);                                                      \
    if (!_r) {                                                                    \
      std::fprintf(stderr, "%s failed: %s\n", #expr, _r.error().message.c_str()); \
      std::exit(1);                                                               \
    }                                                                             \
  } while (0)

// Realistic shapes: 9-digit adamIds over 300 assets, 70% user licenses with
// GUID-long clientUserIds, 30% device licenses with 12-character serials.
LicenseAssignment Row(std::mt19937_64& rng, std::int64_t i, std::int64_t rows, bool by_asset) {
  LicenseAssignment a;
  // by_asset: 300 runs of rows/300 consecutive rows, one asset each.
  std::uint64_t asset = by_asset ? static_cast<std::uint64_t>(i * 300 / std::max<std::int64_t>(rows, 1)) : rng() % 300;
  a.adam_id = std::to_string(361'000'000 + (asset * 7919) % 300);
  a.pricing_param = rng() % 10 == 0 ? "PLUS" : "STDQ";
  if (rng() % 10 < 7) {
    // Random, as MDMs mint them and apple-vpp-sim serves them (not in row order).
    a.client_user_id = fmt::format("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", rng() & 0xffffffff, rng() & 0xffff,
                                   rng() & 0xfff, rng() & 0xfff, rng() & 0xffffffffffffULL);
  } else {
    a.serial_number = fmt::format("C{:011X}", (static_cast<std::uint64_t>(i) * 2654435761ULL) & 0xffffffffffffULL);
  }
  return a;
}

struct Args {
  std::int64_t rows = 1'000'000;
  std::int64_t page = 1000;
  bool by_asset = true;
  std::string dir;
  std::string database_url;  // empty: SQLite
};

SyncJob ClaimOne(Store& store, const std::string& tenant, const std::string& token_id) {
  auto queued = store.EnqueueJob(tenant, token_id, {}, nullptr);
  CHECK_OK(queued);
  auto job = store.ClaimJob("bench", vppd::Clock::Real().Now(), std::chrono::minutes(10));
  CHECK_OK(job);
  if (!*job) {
    std::fprintf(stderr, "no job to claim\n");
    std::exit(1);
  }
  return **job;
}

double ThreadCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

struct StageTimes {
  double wall_ms = 0;
  double cpu_s = 0;  // of the staging thread: what the sync's stager spends
};

// Stages the rows as the sync's stager does (sync::EngineOptions::stage_rows):
// the pages, built beforehand as the walk builds them (not timed), appended into
// calls of 50,000 rows.
StageTimes StageAll(Store& store, const SyncJob& job, const Args& args, std::uint64_t seed) {
  constexpr std::size_t kStageRows = 50'000;
  std::mt19937_64 rng(seed);
  std::vector<StagedAssignments> pages;
  for (std::int64_t i = 0; i < args.rows;) {
    StagedAssignments& page = pages.emplace_back();
    for (std::int64_t k = 0; k < args.page && i < args.rows; ++k, ++i) page.Add(Row(rng, i, args.rows, args.by_asset));
  }
  StagedAssignments buffer;
  buffer.Reserve(kStageRows + static_cast<std::size_t>(args.page),
                 (kStageRows + static_cast<std::size_t>(args.page)) * 40);
  const auto start = Steady::now();
  const double cpu_start = ThreadCpuSeconds();
  for (std::size_t p = 0; p < pages.size(); ++p) {
    buffer.Append(pages[p]);
    if (buffer.size() >= kStageRows || p + 1 == pages.size()) {
      CHECK_OK(store.StageAssignments(job, buffer));
      buffer.Clear();
    }
  }
  return {Ms(start, Steady::now()), ThreadCpuSeconds() - cpu_start};
}

// A raw libpq session beside the store: the bench's schema, the collector's progress.
class PgSession {
 public:
  PgSession() = default;
  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;
  ~PgSession() {
    if (conn_ != nullptr) PQfinish(conn_);
  }
  void Connect(const std::string& url) {
    conn_ = PQconnectdb(url.c_str());
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::fprintf(stderr, "cannot connect: %s\n", PQerrorMessage(conn_));
      std::exit(1);
    }
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
  }
  void Exec(const std::string& sql) { PQclear(Run(sql)); }
  std::int64_t Int(const std::string& sql) {
    PGresult* r = Run(sql);
    std::int64_t v = PQntuples(r) > 0 ? std::atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return v;
  }

 private:
  PGresult* Run(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
      std::fprintf(stderr, "%s: %s\n", sql.c_str(), PQerrorMessage(conn_));
      std::exit(1);
    }
    return r;
  }
  PGconn* conn_ = nullptr;
};

int Run(const Args& args) {
  std::string dir = args.dir;
  bool temporary = dir.empty();
  if (temporary) {
    std::string pattern = (std::filesystem::temp_directory_path() / "vppd-store-bench-XXXXXX").string();
    dir = mkdtemp(pattern.data());
  }
  SqliteOptions options;
  options.path = dir + "/vppd.db";
  options.secrets = std::make_shared<SecretBox>(SecretBox::FromKey(std::string(32, 'b')));
  options.statement_timeout_ms = 120000;  // the bench may run on a loaded machine
  const bool pg = !args.database_url.empty();
  PgSession pg_session;
  std::string schema = fmt::format("vppd_bench_{}", ::getpid());
  if (pg) {
    pg_session.Connect(args.database_url);
    pg_session.Exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE; CREATE SCHEMA " + schema);
    pg_session.Exec("SET search_path = " + schema);
  }
  auto opened = [&] {
    if (!pg) return Store::OpenSqlite(options);
    PostgresOptions o;
    o.url = fmt::format("{}{}options=-csearch_path%3D{}", args.database_url,
                        args.database_url.find('?') == std::string::npos ? "?" : "&", schema);
    o.secrets = options.secrets;
    o.statement_timeout_ms = options.statement_timeout_ms;
    return Store::OpenPostgres(o);
  }();
  CHECK_OK(opened);
  Store& store = **opened;
  const std::string tenant = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb";
  CHECK_OK(store.PutTenant({tenant, "bench", true, 0}));
  VppToken t;
  t.token = "bench-sToken";
  t.state = "valid";
  auto token = store.CreateToken(tenant, t);
  CHECK_OK(token);

  std::printf("rows %lld, pages of %lld, %s, file %s\n", static_cast<long long>(args.rows),
              static_cast<long long>(args.page), args.by_asset ? "grouped by asset" : "shuffled",
              pg ? ("PostgreSQL schema " + schema).c_str() : options.path.c_str());
  // A Graph-like write (UpdateToken of another token) every 2 ms during the
  // resync: how long a request waits behind staging and the collector.
  VppToken other_token;
  other_token.token = "probe-sToken";
  auto other = store.CreateToken(tenant, other_token);
  CHECK_OK(other);
  std::vector<double> probe_ms;
  std::atomic<bool> probing{false}, stop_probe{false};
  std::thread probe([&] {
    while (!stop_probe) {
      if (probing) {
        auto t0 = Steady::now();
        CHECK_OK(store.UpdateToken(tenant, other->id, [](VppToken& x) -> Status {
          x.last_app_count += 1;
          return {};
        }));
        probe_ms.push_back(Ms(t0, Steady::now()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });

  for (int round = 0; round < 2; ++round) {
    SyncJob job = ClaimOne(store, tenant, token->id);
    probing = round == 1;
    const StageTimes staged = StageAll(store, job, args, 42 + static_cast<std::uint64_t>(round));
    const double stage_ms = staged.wall_ms;
    SyncSnapshot snap;
    snap.assignments = SyncSnapshot::Assignments::kReplaceWithStaged;
    auto start = Steady::now();
    CHECK_OK(store.FinishJob(job, snap, [](VppToken& x) -> Status {
      x.last_sync_status = "completed";
      return {};
    }));
    double finish_ms = Ms(start, Steady::now());
    probing = false;
    std::printf(
        "%s sync: StageAssignments %lld pages %.0f ms (%.2f ms/page, %.3f s of the thread's CPU); "
        "FinishJob(replace) %.0f ms\n",
        round == 0 ? "first " : "resync", static_cast<long long>((args.rows + args.page - 1) / args.page), stage_ms,
        stage_ms / static_cast<double>((args.rows + args.page - 1) / args.page), staged.cpu_s, finish_ms);
  }

  stop_probe = true;
  probe.join();
  if (!probe_ms.empty()) {
    std::sort(probe_ms.begin(), probe_ms.end());
    auto at = [&](double q) {
      return probe_ms[static_cast<std::size_t>(q * static_cast<double>(probe_ms.size() - 1))];
    };
    std::printf("UpdateToken during the resync's staging: %zu calls, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                probe_ms.size(), at(0.5), at(0.99), probe_ms.back());
  }

  // A delta of one page merged into the full set, with the per-app count check
  // (which fails here: the bench's apps list is empty, so nothing is checked).
  {
    SyncJob job = ClaimOne(store, tenant, token->id);
    Args delta = args;
    delta.rows = args.page;
    const double stage_ms = StageAll(store, job, delta, 7).wall_ms;
    SyncSnapshot snap;
    snap.assignments = SyncSnapshot::Assignments::kMergeStaged;
    auto start = Steady::now();
    CHECK_OK(store.FinishJob(job, snap, nullptr));
    std::printf("delta : StageAssignments 1 page %.1f ms; FinishJob(merge + count check) %.0f ms\n", stage_ms,
                Ms(start, Steady::now()));
  }

  // The collector deletes the set the resync replaced (and the delta's staged
  // set) in the background; time it through a raw connection.
  if (pg) {
    auto start = Steady::now();
    while (pg_session.Int("SELECT count(*) FROM assignment_generations WHERE state = 'garbage'") != 0 &&
           Ms(start, Steady::now()) < 120000) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::printf("collector: the replaced set gone %.0f ms after the delta's FinishJob\n", Ms(start, Steady::now()));
  } else {
    sqlite3* raw = nullptr;
    if (sqlite3_open_v2(options.path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      std::fprintf(stderr, "raw open failed\n");
      std::exit(1);
    }
    auto garbage = [&] {
      sqlite3_stmt* stmt = nullptr;
      sqlite3_prepare_v2(raw, "SELECT count(*) FROM assignment_generations WHERE state = 'garbage'", -1, &stmt,
                         nullptr);
      std::int64_t n = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
      sqlite3_finalize(stmt);
      return n;
    };
    auto start = Steady::now();
    while (garbage() != 0 && Ms(start, Steady::now()) < 120000)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::printf("collector: the replaced set gone %.0f ms after the delta's FinishJob\n", Ms(start, Steady::now()));
    sqlite3_close(raw);
  }

  std::int64_t rows = 0;
  auto walk_start = Steady::now();
  CHECK_OK(store.ForEachAssignment(tenant, token->id, 10000, [&](const std::vector<LicenseAssignment>& b) -> Status {
    rows += static_cast<std::int64_t>(b.size());
    return {};
  }));
  std::printf("ForEachAssignment(batch 10000): %lld rows in %.0f ms\n", static_cast<long long>(rows),
              Ms(walk_start, Steady::now()));

  // The Graph item read: GetTenant + GetToken, as an authenticated GET does.
  constexpr int kReads = 20000;
  auto read_start = Steady::now();
  for (int i = 0; i < kReads; ++i) {
    CHECK_OK(store.GetTenant(tenant));
    CHECK_OK(store.GetToken(tenant, token->id));
  }
  std::printf("GetTenant+GetToken: %.1f us per pair\n", Ms(read_start, Steady::now()) * 1000.0 / kReads);

  if (pg) {
    std::printf("license_assignments %.1f MB (with its index)\n",
                static_cast<double>(pg_session.Int("SELECT pg_total_relation_size('license_assignments')")) / 1e6);
    opened->reset();
    pg_session.Exec("DROP SCHEMA " + schema + " CASCADE");
    if (temporary) std::filesystem::remove_all(dir);
    return 0;
  }
  std::error_code ec;
  auto size = std::filesystem::file_size(options.path, ec);
  auto wal = std::filesystem::file_size(options.path + "-wal", ec);
  std::printf("file %.1f MB, wal %.1f MB\n", static_cast<double>(size) / 1e6, static_cast<double>(wal) / 1e6);
  opened->reset();
  if (temporary) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  Args args;
  for (int i = 1; i < argc; ++i) {
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", argv[i]);
        std::exit(64);
      }
      return argv[++i];
    };
    if (std::strcmp(argv[i], "--rows") == 0) {
      args.rows = std::stoll(value());
    } else if (std::strcmp(argv[i], "--page") == 0) {
      args.page = std::stoll(value());
    } else if (std::strcmp(argv[i], "--order") == 0) {
      std::string order = value();
      if (order != "by-asset" && order != "shuffled") {
        std::fprintf(stderr, "--order is by-asset or shuffled\n");
        return 64;
      }
      args.by_asset = order == "by-asset";
    } else if (std::strcmp(argv[i], "--dir") == 0) {
      args.dir = value();
    } else if (std::strcmp(argv[i], "--database-url") == 0) {
      args.database_url = value();
    } else {
      std::fprintf(stderr,
                   "usage: %s [--rows N] [--page P] [--order by-asset|shuffled] [--dir D] [--database-url URL]\n",
                   argv[0]);
      return 64;
    }
  }
  if (args.rows < 0 || args.page < 1 || args.page > 100000) {
    std::fprintf(stderr, "--rows must be >= 0 and --page 1..100000\n");
    return 64;
  }
  return Run(args);
}
