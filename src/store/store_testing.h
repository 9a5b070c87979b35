// For the store's own tests only: one fresh database per test on either store, and
// raw SQL access to it, so that one suite runs against SQLite and PostgreSQL.
//
// PostgreSQL runs when VPPD_TEST_DATABASE_URL names a server (scripts/pg-cluster
// starts a throwaway one); each test then gets a schema of its own, dropped at
// its end. Without the variable the PostgreSQL instances are skipped, and say so
// loudly: a skip must never pass for a run.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "base/base.h"
#include "base/testing.h"
#include "store/raw_db_testing.h"
#include "store/store.h"

namespace vppd::testing {

enum class Backend { kSqlite, kPostgres };

inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
}

inline std::string TestDatabaseUrl() {
  const char* url = std::getenv("VPPD_TEST_DATABASE_URL");
  return url != nullptr ? url : "";
}

// Call first in SetUp: skips a PostgreSQL instance when no server is configured,
// printing that it did not run (once per binary, loudly, then per test).
#define VPPD_SKIP_WITHOUT_POSTGRES(backend)                                                               \
  do {                                                                                                    \
    if ((backend) == ::vppd::testing::Backend::kPostgres && ::vppd::testing::TestDatabaseUrl().empty()) { \
      static std::atomic<bool> warned{false};                                                             \
      if (!warned.exchange(true)) {                                                                       \
        std::fprintf(stderr,                                                                              \
                     "\n*** PostgreSQL store tests DID NOT RUN: VPPD_TEST_DATABASE_URL is not set "       \
                     "(scripts/pg-cluster start prints one) ***\n\n");                                    \
      }                                                                                                   \
      GTEST_SKIP() << "NOT RUN on PostgreSQL: VPPD_TEST_DATABASE_URL is not set";                         \
    }                                                                                                     \
  } while (0)

// Raw SQL on the test's database, beside the store: to look at (and tamper with)
// what the Store API hides. Portable SQL only, unless the test knows its backend.
class RawSql {
 public:
  virtual ~RawSql() = default;
  virtual void Exec(const std::string& sql) = 0;
  // The first column of the first row as text; empty when no row or NULL.
  virtual std::string Text(const std::string& sql) = 0;
  // The first column of the first row as an integer; -1 when no row.
  virtual std::int64_t Int(const std::string& sql) = 0;
};

class SqliteRaw final : public RawSql {
 public:
  explicit SqliteRaw(const std::string& path) : db_(path) {}
  void Exec(const std::string& sql) override { db_.Exec(sql); }
  std::string Text(const std::string& sql) override { return db_.Text(sql); }
  std::int64_t Int(const std::string& sql) override { return db_.Int(sql); }

 private:
  RawDb db_;
};

class PgRaw final : public RawSql {
 public:
  explicit PgRaw(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
    EXPECT_EQ(PQstatus(conn_), CONNECTION_OK) << PQerrorMessage(conn_);
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);  // DROP ... CASCADE lists every table
  }
  ~PgRaw() override { PQfinish(conn_); }
  PgRaw(const PgRaw&) = delete;
  PgRaw& operator=(const PgRaw&) = delete;

  void Exec(const std::string& sql) override { PQclear(Run(sql)); }
  // Runs `sql` that may fail on purpose (a deadlock victim): true when it succeeded.
  bool TryExec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    ExecStatusType s = PQresultStatus(r);
    PQclear(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
  }
  std::string Text(const std::string& sql) override {
    PGresult* r = Run(sql);
    std::string out;
    if (r != nullptr && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) out = PQgetvalue(r, 0, 0);
    PQclear(r);
    return out;
  }
  std::int64_t Int(const std::string& sql) override {
    PGresult* r = Run(sql);
    std::int64_t out = -1;
    if (r != nullptr && PQntuples(r) > 0) out = PQgetisnull(r, 0, 0) ? 0 : std::atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
  }

 private:
  PGresult* Run(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    ExecStatusType s = PQresultStatus(r);
    EXPECT_TRUE(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) << sql << ": " << PQerrorMessage(conn_);
    return r;
  }
  PGconn* conn_;
};

// A value handle on a RawSql, so `db.Raw().Int(...)` reads as RawDb did.
class Raw {
 public:
  explicit Raw(std::unique_ptr<RawSql> impl) : impl_(std::move(impl)) {}
  void Exec(const std::string& sql) { impl_->Exec(sql); }
  std::string Text(const std::string& sql) { return impl_->Text(sql); }
  std::int64_t Int(const std::string& sql) { return impl_->Int(sql); }

 private:
  std::unique_ptr<RawSql> impl_;
};

// The libpq URL `base` with the session's search_path set to `schema`.
inline std::string UrlWithSchema(const std::string& base, const std::string& schema) {
  return fmt::format("{}{}options=-csearch_path%3D{}", base, base.find('?') == std::string::npos ? "?" : "&", schema);
}

// One test's database: a SQLite file (in `dir`), or a fresh PostgreSQL schema.
class TestDb {
 public:
  TestDb(Backend backend, const std::string& dir) : backend_(backend) {
    if (backend_ == Backend::kSqlite) {
      path_ = dir + "/vppd.db";
      return;
    }
    static std::atomic<int> counter{0};
    std::random_device rd;
    schema_ = fmt::format("vppd_test_{}_{}_{:x}", ::getpid(), counter++, rd());
    PgRaw(TestDatabaseUrl()).Exec("CREATE SCHEMA " + schema_);
    url_ = UrlWithSchema(TestDatabaseUrl(), schema_);
  }
  ~TestDb() {
    if (backend_ == Backend::kPostgres) PgRaw(TestDatabaseUrl()).Exec("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
  }
  TestDb(const TestDb&) = delete;
  TestDb& operator=(const TestDb&) = delete;

  bool pg() const { return backend_ == Backend::kPostgres; }
  const std::string& path() const { return path_; }      // SQLite
  const std::string& url() const { return url_; }        // PostgreSQL, with the schema
  const std::string& schema() const { return schema_; }  // PostgreSQL

  // The PostgreSQL options equivalent to `o`'s: the same secrets, clock, limits
  // and timeouts; the reader connections plus one for writes.
  store::PostgresOptions PgOptions(const store::SqliteOptions& o) const {
    store::PostgresOptions p;
    p.url = url_;
    p.secrets = o.secrets;
    p.clock = o.clock;
    p.max_tokens_per_tenant = o.max_tokens_per_tenant;
    p.statement_timeout_ms = o.statement_timeout_ms;
    p.pool_wait_ms = o.busy_timeout_ms;
    p.max_connections = o.reader_connections + 1;
    p.collect_garbage = o.collect_garbage;
    return p;
  }

  // Opens the store of this backend with `o` (its path is ignored for PostgreSQL).
  Result<std::unique_ptr<store::Store>> Open(const store::SqliteOptions& o) const {
    if (pg()) return store::Store::OpenPostgres(PgOptions(o));
    return store::Store::OpenSqlite(o);
  }

  Raw raw() const {
    if (pg()) return Raw(std::make_unique<PgRaw>(url_));
    return Raw(std::make_unique<SqliteRaw>(path_));
  }

 private:
  Backend backend_;
  std::string path_, url_, schema_;
};

// The fixture most store tests share: a fresh store of the test's backend (a
// fixed key, the fake clock at kT0) holding the tenants kTenantA and kTenantB.
// A derived SetUp calls this one first and returns when SetUpStopped():
//
//   class RevokeStoreTest : public testing::StoreTest {
//    protected:
//     RevokeStoreTest() : StoreTest("vppd-revoke-store") {}
//     void SetUp() override {
//       StoreTest::SetUp();
//       if (SetUpStopped()) return;
//       token_ = Token(kTenantA);
//     }
//     std::string token_;
//   };
//   INSTANTIATE_TEST_SUITE_P(Store, RevokeStoreTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
//                            testing::BackendName);
class StoreTest : public ::testing::TestWithParam<Backend> {
 public:
  static constexpr Timestamp kSecond = 1000000;
  static constexpr Timestamp kT0 = 1'780'000'000LL * kSecond;
  static constexpr const char* kTenantA = "11111111-1111-1111-1111-111111111111";
  static constexpr const char* kTenantB = "22222222-2222-2222-2222-222222222222";

 protected:
  explicit StoreTest(const std::string& dir_prefix) : dir_(dir_prefix) {}

  void SetUp() override {
    VPPD_SKIP_WITHOUT_POSTGRES(GetParam());
    db_.emplace(GetParam(), dir_.path());
    options_.path = db_->path();
    options_.secrets = std::make_shared<SecretBox>(SecretBox::FromKey(std::string(32, 'k')));
    options_.clock = &clock_;
    Result<std::unique_ptr<store::Store>> opened = db_->Open(options_);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
    ASSERT_TRUE(store_->PutTenant({kTenantA, "A", true, 0}));
    ASSERT_TRUE(store_->PutTenant({kTenantB, "B", true, 0}));
  }

  // True when StoreTest::SetUp did not finish: a PostgreSQL instance skipped, or a fatal failure.
  bool SetUpStopped() const { return IsSkipped() || HasFatalFailure(); }

  // A new valid token of `tenant` (sToken "sToken", or "sToken-<uid>" at Apple
  // location `uid`); "" (and a failure) when the store refused it.
  std::string Token(const std::string& tenant, const std::string& uid = "") {
    store::VppToken t;
    t.token = uid.empty() ? "sToken" : "sToken-" + uid;
    t.state = "valid";
    t.apple_uid = uid;
    Result<store::VppToken> created = store_->CreateToken(tenant, t);
    EXPECT_TRUE(created) << created.error().message;
    return created ? created->id : "";
  }

  TempDir dir_;
  std::optional<TestDb> db_;  // before store_: the store closes first
  FakeClock clock_{kT0};
  store::SqliteOptions options_;
  std::unique_ptr<store::Store> store_;
};

}  // namespace vppd::testing
