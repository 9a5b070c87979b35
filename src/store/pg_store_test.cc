// What only the PostgreSQL store has: several instances on one database (claims,
// enqueues and migrations racing across Store objects), a server that goes away,
// the server's statement timeout, the connection pool's limit, and the schema
// checks at open. The shared semantics are tested on both stores by
// sqlite_store_test and sync_store_test.
#include <atomic>
#include <chrono>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "base/testing.h"
#include "store/pg_migrations.h"
#include "store/store.h"
#include "store/store_testing.h"

namespace vppd::store {
namespace {

using namespace std::chrono_literals;
using testing::Backend;
using testing::Raw;

constexpr Timestamp kT0 = 1'780'000'000LL * 1000000;
constexpr const char* kTenant = "11111111-1111-1111-1111-111111111111";

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VPPD_SKIP_WITHOUT_POSTGRES(Backend::kPostgres);
    db_.emplace(Backend::kPostgres, "");
    options_ = Options(db_->url());
  }

  PostgresOptions Options(const std::string& url) {
    PostgresOptions o;
    o.url = url;
    o.secrets = secrets_;
    o.clock = &clock_;
    return o;
  }

  std::unique_ptr<Store> Open(const PostgresOptions& o) {
    Result<std::unique_ptr<Store>> opened = Store::OpenPostgres(o);
    EXPECT_TRUE(opened) << opened.error().message;
    return opened ? std::move(*opened) : nullptr;
  }

  // `n` valid tokens of kTenant, never synced.
  std::vector<std::string> Tokens(Store& store, int n) {
    EXPECT_TRUE(store.PutTenant({kTenant, "T", true, 0}));
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      VppToken t;
      t.token = fmt::format("sToken-{}", i);
      t.state = "valid";
      Result<VppToken> created = store.CreateToken(kTenant, t);
      EXPECT_TRUE(created) << created.error().message;
      if (created) ids.push_back(created->id);
    }
    return ids;
  }

  static bool Enqueue(Store& store, const std::string& token_id, const std::string& kind) {
    EnqueueOptions o;
    o.kind = kind;
    Result<Store::Enqueued> e = store.EnqueueJob(kTenant, token_id, o, [](VppToken& t) -> Status {
      t.last_sync_status = "inProgress";
      return {};
    });
    EXPECT_TRUE(e) << e.error().message;
    return e && e->queued;
  }

  std::optional<testing::TestDb> db_;
  FakeClock clock_{kT0};
  std::shared_ptr<SecretBox> secrets_ = std::make_shared<SecretBox>(SecretBox::FromKey(std::string(32, 'k')));
  PostgresOptions options_;
};

// Two instances (Store objects, each with its own pool) and eight workers claim
// 120 jobs of 60 tokens (two kinds each) until none is left: every job is handed
// out exactly once, and no token ever has two jobs running at once.
TEST_F(PgStoreTest, ConcurrentClaimsAcrossInstancesNeverShareAJobNorAToken) {
  std::unique_ptr<Store> a = Open(options_);
  std::unique_ptr<Store> b = Open(options_);
  ASSERT_TRUE(a && b);
  std::vector<std::string> tokens = Tokens(*a, 60);
  for (const std::string& id : tokens) {
    ASSERT_TRUE(Enqueue(*a, id, "syncLicenses"));
    ASSERT_TRUE(Enqueue(*b, id, "revokeLicenses"));
  }
  ASSERT_EQ(*a->CountJobs(), 120);

  std::mutex mu;
  std::set<std::string> claimed;
  std::map<std::string, int> running;  // token → jobs between claim and finish
  std::atomic<int> duplicates{0}, overlaps{0}, errors{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 8; ++w) {
    workers.emplace_back([&, w] {
      Store& store = w % 2 == 0 ? *a : *b;
      std::string name = fmt::format("worker-{}", w);
      for (int idle = 0; idle < 50;) {
        Result<std::optional<SyncJob>> job = store.ClaimJob(name, kT0, 60s);
        if (!job) {
          ++errors;
          ADD_FAILURE() << job.error().message;
          return;
        }
        if (!*job) {
          // Nothing claimable now: the rest may be waiting for their token.
          ++idle;
          std::this_thread::sleep_for(2ms);
          continue;
        }
        idle = 0;
        {
          std::lock_guard lock(mu);
          if (!claimed.insert((*job)->id).second) ++duplicates;
          if (++running[(*job)->token_id] > 1) ++overlaps;
        }
        std::this_thread::sleep_for(1ms);  // "work" while holding the lease
        {
          std::lock_guard lock(mu);
          --running[(*job)->token_id];
        }
        Result<VppToken> done = store.FinishJob(**job, std::nullopt, [](VppToken&) -> Status { return {}; });
        if (!done) {
          ++errors;
          ADD_FAILURE() << done.error().message;
        }
      }
    });
  }
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(duplicates.load(), 0) << "a job was handed out twice";
  EXPECT_EQ(overlaps.load(), 0) << "a token had two jobs running at once";
  EXPECT_EQ(claimed.size(), 120u);
  EXPECT_EQ(*a->CountJobs(), 0);
}

// The daily schedule on several instances: each finds the same due tokens and
// enqueues them at once; the coalescing makes exactly one job per token.
TEST_F(PgStoreTest, TwoInstancesEnqueueingTheSameDueTokensMakeOneJobEach) {
  std::unique_ptr<Store> a = Open(options_);
  std::unique_ptr<Store> b = Open(options_);
  ASSERT_TRUE(a && b);
  std::vector<std::string> tokens = Tokens(*a, 40);
  std::atomic<int> queued{0};
  std::latch all_looked(6);  // every scheduler sees every token due, then all enqueue
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      Store& store = i % 2 == 0 ? *a : *b;
      Result<std::vector<DueToken>> due = store.TokensDueForSync(kT0, 1000);
      all_looked.arrive_and_wait();
      ASSERT_TRUE(due) << due.error().message;
      EXPECT_EQ(due->size(), 40u);
      for (const DueToken& d : *due) {
        if (Enqueue(store, d.token_id, "syncLicenses")) ++queued;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(queued.load(), 40) << "exactly one enqueue per token was not coalesced";
  EXPECT_EQ(*a->CountJobs(), 40);
  EXPECT_TRUE(b->TokensDueForSync(kT0, 1000)->empty()) << "a token with a job is not due";
}

// Six instances start at once on an empty schema: all open, and the schema is
// created once (a second run of migration 1 would fail on existing tables).
TEST_F(PgStoreTest, MigrationsRunOnceWhenInstancesStartTogether) {
  std::vector<std::thread> threads;
  std::atomic<int> opened{0};
  std::vector<std::string> errors(6);
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      Result<std::unique_ptr<Store>> s = Store::OpenPostgres(options_);
      if (s) {
        ++opened;
      } else {
        errors[static_cast<std::size_t>(i)] = s.error().message;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(opened.load(), 6) << errors[0] << errors[1] << errors[2];
  Raw raw = db_->raw();
  EXPECT_EQ(raw.Int("SELECT count(*) FROM vppd_schema"), 1);
  EXPECT_EQ(raw.Int("SELECT version FROM vppd_schema"), LatestPgSchemaVersion());
  EXPECT_EQ(raw.Int(fmt::format("SELECT count(*) FROM pg_tables WHERE schemaname = '{}' AND tablename = 'vpp_tokens'",
                                db_->schema())),
            1);
}

TEST_F(PgStoreTest, ReopeningACurrentSchemaKeepsEverything) {
  std::unique_ptr<Store> s = Open(options_);
  ASSERT_TRUE(s);
  std::vector<std::string> tokens = Tokens(*s, 2);
  s.reset();
  s = Open(options_);
  ASSERT_TRUE(s);
  EXPECT_EQ(*s->CountTokens(kTenant, std::nullopt), 2);
  EXPECT_EQ(*s->GetTokenSecret(kTenant, tokens[1]), "sToken-1");
}

TEST_F(PgStoreTest, RefusesASchemaNewerThanTheBinary) {
  ASSERT_TRUE(Open(options_));
  Raw raw = db_->raw();
  std::int64_t newer = LatestPgSchemaVersion() + 1;
  raw.Exec(fmt::format("UPDATE vppd_schema SET version = {}", newer));
  Result<std::unique_ptr<Store>> opened = Store::OpenPostgres(options_);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kFailedPrecondition);
  EXPECT_NE(opened.error().message.find(fmt::format("version {}", newer)), std::string::npos) << opened.error().message;
  EXPECT_EQ(raw.Int("SELECT version FROM vppd_schema"), newer) << "untouched";
}

TEST_F(PgStoreTest, RefusesAnotherApplicationsSchema) {
  Raw raw = db_->raw();
  raw.Exec("CREATE TABLE notes (x TEXT)");
  Result<std::unique_ptr<Store>> opened = Store::OpenPostgres(options_);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(raw.Int("SELECT count(*) FROM pg_tables WHERE tablename IN ('vpp_tokens', 'vppd_schema') AND "
                    "schemaname = current_schema()"),
            0)
      << "a refused schema is left as it was";
  // A vppd_schema table of someone else's is no better.
  raw.Exec(
      "DROP TABLE notes; CREATE TABLE vppd_schema (one BOOLEAN PRIMARY KEY, application TEXT, version BIGINT);"
      "INSERT INTO vppd_schema VALUES (TRUE, 'other', 1)");
  opened = Store::OpenPostgres(options_);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kFailedPrecondition);
}

TEST_F(PgStoreTest, OpenValidatesOptions) {
  PostgresOptions o = options_;
  o.secrets = nullptr;
  EXPECT_EQ(Store::OpenPostgres(o).error().code, Code::kInvalidArgument);
  o = options_;
  o.max_connections = 0;
  EXPECT_EQ(Store::OpenPostgres(o).error().code, Code::kInvalidArgument);
  o = options_;
  o.url = "";
  EXPECT_EQ(Store::OpenPostgres(o).error().code, Code::kInvalidArgument);
  o = options_;
  o.statement_timeout_ms = 0;
  EXPECT_EQ(Store::OpenPostgres(o).error().code, Code::kInvalidArgument);
}

// Nothing listens on the port: Unavailable at once, not a hang or a crash.
TEST_F(PgStoreTest, UnreachableServerIsUnavailable) {
  PostgresOptions o = Options("postgresql://vppd@127.0.0.1:1/vppd");
  auto start = std::chrono::steady_clock::now();
  Result<std::unique_ptr<Store>> opened = Store::OpenPostgres(o);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kUnavailable) << opened.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  o.url = "postgresql://vppd@127.0.0.1:1/vppd?sslmode=nonsense";  // libpq refuses the URL itself
  opened = Store::OpenPostgres(o);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kUnavailable);
}

// The server drops every connection of the store (a restart, a failover): calls
// fail with Unavailable at worst, never crash, and the store reconnects.
TEST_F(PgStoreTest, ConnectionsKilledByTheServerAreReplaced) {
  const std::string app = "vppd_kill_" + db_->schema();
  std::unique_ptr<Store> s = Open(Options(db_->url() + "&application_name=" + app));
  ASSERT_TRUE(s);
  std::vector<std::string> tokens = Tokens(*s, 3);
  for (int round = 0; round < 3; ++round) {
    Raw raw = db_->raw();
    std::int64_t killed =
        raw.Int(fmt::format("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = "
                            "'{}'",
                            app));
    EXPECT_GT(killed, 0);
    std::this_thread::sleep_for(50ms);  // the backends exit
    // The first call may see a dead connection; it is then retried or fails cleanly.
    Result<VppToken> got = s->GetToken(kTenant, tokens[0]);
    if (!got) {
      EXPECT_EQ(got.error().code, Code::kUnavailable) << got.error().message;
    }
    Result<VppToken> updated = s->UpdateToken(kTenant, tokens[1], [](VppToken& t) -> Status {
      t.display_name = "after";
      return {};
    });
    if (!updated) {
      EXPECT_EQ(updated.error().code, Code::kUnavailable) << updated.error().message;
    }
    // And then the store works again.
    Result<VppToken> again = s->GetToken(kTenant, tokens[2]);
    EXPECT_TRUE(again) << again.error().message;
    EXPECT_EQ(*s->CountTokens(kTenant, std::nullopt), 3);
  }
}

// A statement the server cancels at statement_timeout_ms is DeadlineExceeded;
// nothing of the call is written and the connection stays usable.
TEST_F(PgStoreTest, StatementTimeoutIsDeadlineExceeded) {
  options_.statement_timeout_ms = 200;
  std::unique_ptr<Store> s = Open(options_);
  ASSERT_TRUE(s);
  std::vector<std::string> tokens = Tokens(*s, 1);
  Raw raw = db_->raw();
  raw.Exec(
      "CREATE FUNCTION slow_update() RETURNS trigger LANGUAGE plpgsql AS "
      "$$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;"
      "CREATE TRIGGER slow BEFORE UPDATE ON vpp_tokens FOR EACH ROW EXECUTE FUNCTION slow_update()");
  auto start = std::chrono::steady_clock::now();
  Result<VppToken> r = s->UpdateToken(kTenant, tokens[0], [](VppToken& t) -> Status {
    t.display_name = "never";
    return {};
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kDeadlineExceeded) << r.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  raw.Exec("DROP TRIGGER slow ON vpp_tokens");
  EXPECT_FALSE(s->GetToken(kTenant, tokens[0])->display_name.has_value());
  EXPECT_TRUE(s->UpdateToken(kTenant, tokens[0], [](VppToken& t) -> Status {
    t.display_name = "now";
    return {};
  }));
  EXPECT_EQ(s->GetToken(kTenant, tokens[0])->display_name, "now");
}

// All connections busy past pool_wait_ms: Unavailable, and the store recovers.
TEST_F(PgStoreTest, PoolExhaustedPastTheWaitIsUnavailable) {
  options_.max_connections = 1;
  options_.pool_wait_ms = 200;
  std::unique_ptr<Store> s = Open(options_);
  ASSERT_TRUE(s);
  std::vector<std::string> tokens = Tokens(*s, 1);
  std::atomic<bool> holding{false};
  std::thread holder([&] {
    // The only connection, held inside a transaction for 800 ms.
    EXPECT_TRUE(s->UpdateToken(kTenant, tokens[0], [&](VppToken&) -> Status {
      holding = true;
      std::this_thread::sleep_for(800ms);
      return {};
    }));
  });
  while (!holding) std::this_thread::sleep_for(1ms);
  auto start = std::chrono::steady_clock::now();
  Result<std::vector<Tenant>> r = s->ListTenants();
  auto waited = std::chrono::steady_clock::now() - start;
  holder.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUnavailable) << r.error().message;
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 700ms);
  EXPECT_TRUE(s->ListTenants());
}

// A transaction chosen as a deadlock's victim (40P01) is run again, so the call
// succeeds: here FinishJob holds the token and waits for the job row, which
// another session holds while it asks for the token.
TEST_F(PgStoreTest, ADeadlockVictimIsRetried) {
  std::unique_ptr<Store> s = Open(options_);
  ASSERT_TRUE(s);
  std::vector<std::string> tokens = Tokens(*s, 1);
  ASSERT_TRUE(Enqueue(*s, tokens[0], "syncLicenses"));
  Result<std::optional<SyncJob>> job = s->ClaimJob("w", kT0, 60s);
  ASSERT_TRUE(job && *job);
  testing::PgRaw other(db_->url());
  other.Exec("BEGIN; SELECT * FROM sync_jobs FOR UPDATE");
  std::atomic<int> mutates{0};
  Result<VppToken> finished = Fail(Error::Internal("not run"));
  std::thread finisher([&] {
    finished = s->FinishJob(**job, std::nullopt, [&](VppToken& t) -> Status {
      ++mutates;
      t.last_sync_status = "completed";
      return {};
    });
  });
  std::this_thread::sleep_for(300ms);  // FinishJob now holds the token row and waits for the job row
  // Closes the cycle. The server's deadlock check (after deadlock_timeout, 1 s)
  // picks a victim; whichever it is, FinishJob must end well.
  bool other_won = other.TryExec("SELECT * FROM vpp_tokens FOR UPDATE");
  other.Exec(other_won ? "COMMIT" : "ROLLBACK");
  finisher.join();
  ASSERT_TRUE(finished) << finished.error().message;
  EXPECT_EQ(finished->last_sync_status, "completed");
  EXPECT_EQ(*s->CountJobs(), 0);
  // A victim FinishJob failed waiting for the job row, before its mutate ran.
  EXPECT_EQ(mutates.load(), 1);
  std::printf("[ measure  ] deadlock victim: %s\n", other_won ? "FinishJob (retried)" : "the other session");
}

// PostgreSQL text cannot hold NUL, and libpq passes text NUL-terminated: such a
// value is refused whole rather than cut short.
TEST_F(PgStoreTest, TextWithNulIsInvalidArgument) {
  std::unique_ptr<Store> s = Open(options_);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->PutTenant({kTenant, "T", true, 0}));
  VppToken t;
  t.token = "s";
  t.display_name = std::string("a\0b", 3);
  Result<VppToken> r = s->CreateToken(kTenant, t);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalidArgument);
  EXPECT_EQ(*s->CountTokens(kTenant, std::nullopt), 0);
  EXPECT_EQ(s->GetToken(kTenant, std::string("x\0y", 3)).error().code, Code::kInvalidArgument);
}

}  // namespace
}  // namespace vppd::store
