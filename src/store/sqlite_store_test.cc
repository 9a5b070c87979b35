#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "base/testing.h"
#include "store/filter_sql.h"
#include "store/migrations.h"
#include "store/raw_db_testing.h"
#include "store/store.h"
#include "store/store_testing.h"

namespace vppd::store {
namespace {

constexpr Timestamp kDay = 86400LL * 1000000;
constexpr Timestamp kT0 = 1'780'000'000LL * 1000000;  // 2026-05-28
constexpr const char* kTenantA = "11111111-1111-1111-1111-111111111111";
constexpr const char* kTenantB = "22222222-2222-2222-2222-222222222222";

// --- helpers ---------------------------------------------------------------------

// Each test's database lives in a directory of its own.
class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("vppd-store") {}
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

using testing::Backend;
using testing::Raw;
using testing::RawDb;

Expr P(Column c) { return Expr::Of(c); }
Expr L(Literal v) { return Expr::Value(std::move(v)); }
Expr S(std::string s) { return Expr::Value(Literal(std::move(s))); }
Expr I(std::int64_t v) { return Expr::Value(Literal(v)); }
Expr Null() { return Expr::Value(Literal()); }
Expr Cmp(Op op, Expr a, Expr b) { return Expr::Apply(op, {std::move(a), std::move(b)}); }
Expr Not(Expr e) { return Expr::Apply(Op::kNot, {std::move(e)}); }

// Every test runs on both stores (SQLite, and PostgreSQL when
// VPPD_TEST_DATABASE_URL is set), each on a fresh database.
class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    VPPD_SKIP_WITHOUT_POSTGRES(GetParam());
    db_.emplace(GetParam(), dir_.path());
    secrets_ = std::make_shared<SecretBox>(SecretBox::FromKey(std::string(32, 'k')));
    options_.path = db_->path();
    options_.secrets = secrets_;
    options_.clock = &clock_;
    Open();
    ASSERT_TRUE(store_->PutTenant({kTenantA, "Tenant A", true, 0}));
    ASSERT_TRUE(store_->PutTenant({kTenantB, "Tenant B", true, 0}));
  }

  void Open() {
    store_.reset();
    Result<std::unique_ptr<Store>> opened = db_->Open(options_);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
  }

  bool pg() const { return db_->pg(); }

  VppToken Create(const std::string& tenant, VppToken t) {
    Result<VppToken> created = store_->CreateToken(tenant, std::move(t));
    EXPECT_TRUE(created) << created.error().message;
    return created ? *created : VppToken{};
  }

  TempDir dir_;
  std::optional<testing::TestDb> db_;  // before store_: the store closes first
  FakeClock clock_{kT0};
  std::shared_ptr<SecretBox> secrets_;
  SqliteOptions options_;
  std::unique_ptr<Store> store_;
};
INSTANTIATE_TEST_SUITE_P(Store, StoreTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

// Tests of SQLite's file: its format, pragmas and bytes on disk.
class SqliteFileTest : public StoreTest {};
INSTANTIATE_TEST_SUITE_P(Store, SqliteFileTest, ::testing::Values(Backend::kSqlite), testing::BackendName);

VppToken FullToken() {
  VppToken t;
  t.organization_name = "Contoso";
  t.account_type = "education";
  t.apple_id = "admin@contoso.example";
  t.expiration = kT0 + 300 * kDay;
  t.last_sync = kT0 - kDay;
  t.token = "eyJ0b2tlbiI6InNlY3JldCJ9-the-plaintext-sToken";
  t.state = "valid";
  t.action_results = {
      {"syncLicenses", "done", kT0 - 5, kT0 - 2, false, "none", 0, 0},
      {"revokeLicenses", "failed", kT0 - 9, kT0 - 1, true, "appleFailure", 3, 10},
  };
  t.last_sync_status = "completed";
  t.automatically_update_apps = true;
  t.country_or_region = "US";
  t.data_sharing_consent_granted = true;
  t.display_name = "Main token";
  t.location_name = "HQ";
  t.claim_token_management_from_external_mdm = true;
  t.role_scope_tag_ids = {"0", "7", "x\"y"};
  t.delivery_protocol = "declarativeDeviceManagement";
  t.last_app_count = 42;
  t.apple_uid = "loc-123";
  t.apple_version_id = "v9";
  t.last_full_walk = kT0 - 2 * kDay;
  t.last_sync_error = "apple: 503 after 5 attempts";
  return t;
}

void ExpectSameToken(const VppToken& a, const VppToken& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.organization_name, b.organization_name);
  EXPECT_EQ(a.account_type, b.account_type);
  EXPECT_EQ(a.apple_id, b.apple_id);
  EXPECT_EQ(a.expiration, b.expiration);
  EXPECT_EQ(a.last_sync, b.last_sync);
  EXPECT_EQ(a.token, b.token);
  EXPECT_EQ(a.last_modified, b.last_modified);
  EXPECT_EQ(a.state, b.state);
  ASSERT_EQ(a.action_results.size(), b.action_results.size());
  for (std::size_t i = 0; i < a.action_results.size(); ++i) {
    const TokenActionResult& x = a.action_results[i];
    const TokenActionResult& y = b.action_results[i];
    EXPECT_EQ(x.action_name, y.action_name);
    EXPECT_EQ(x.action_state, y.action_state);
    EXPECT_EQ(x.start, y.start);
    EXPECT_EQ(x.last_updated, y.last_updated);
    EXPECT_EQ(x.is_revoke_result, y.is_revoke_result);
    EXPECT_EQ(x.failure_reason, y.failure_reason);
    EXPECT_EQ(x.failed_licenses, y.failed_licenses);
    EXPECT_EQ(x.total_licenses, y.total_licenses);
  }
  EXPECT_EQ(a.last_sync_status, b.last_sync_status);
  EXPECT_EQ(a.automatically_update_apps, b.automatically_update_apps);
  EXPECT_EQ(a.country_or_region, b.country_or_region);
  EXPECT_EQ(a.data_sharing_consent_granted, b.data_sharing_consent_granted);
  EXPECT_EQ(a.display_name, b.display_name);
  EXPECT_EQ(a.location_name, b.location_name);
  EXPECT_EQ(a.claim_token_management_from_external_mdm, b.claim_token_management_from_external_mdm);
  EXPECT_EQ(a.role_scope_tag_ids, b.role_scope_tag_ids);
  EXPECT_EQ(a.delivery_protocol, b.delivery_protocol);
  EXPECT_EQ(a.last_app_count, b.last_app_count);
  EXPECT_EQ(a.apple_uid, b.apple_uid);
  EXPECT_EQ(a.apple_version_id, b.apple_version_id);
  EXPECT_EQ(a.last_full_walk, b.last_full_walk);
  EXPECT_EQ(a.last_sync_error, b.last_sync_error);
  EXPECT_EQ(a.created, b.created);
}

// --- opening and migrations -----------------------------------------------------

TEST_P(SqliteFileTest, OpenCreatesWalSchemaAndIsIdempotent) {
  RawDb raw(options_.path);
  EXPECT_EQ(raw.Text("PRAGMA user_version"), std::to_string(LatestSchemaVersion()));
  EXPECT_EQ(raw.Text("PRAGMA application_id"), std::to_string(kApplicationId));
  EXPECT_EQ(raw.Text("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.Text("SELECT count(*) FROM sqlite_schema WHERE name IN ('tenants', 'vpp_tokens')"), "2");
  VppToken kept = Create(kTenantA, FullToken());
  Open();  // re-running the migrations on a current file is a no-op
  Open();
  EXPECT_TRUE(store_->GetToken(kTenantA, kept.id));
}

// Lookups in the directory go by the index that names their rows, not through
// every row of the tenant (the statistics of migration 22; bench/README.md).
TEST_P(SqliteFileTest, DirectoryLookupsUseTheirIndexes) {
  RawDb raw(options_.path);
  EXPECT_EQ(raw.Plan("SELECT id, serial_number, device_name FROM managed_devices "
                     "WHERE tenant_id = 'a' AND azure_ad_device_id = 'b'"),
            "SEARCH managed_devices USING INDEX managed_devices_by_aad_id (tenant_id=? AND azure_ad_device_id=?)\n");
  EXPECT_EQ(raw.Plan("SELECT id, device_name FROM managed_devices WHERE tenant_id = 'a' AND serial_number = 'S'"),
            "SEARCH managed_devices USING INDEX managed_devices_by_serial (tenant_id=? AND serial_number=?)\n");
  EXPECT_EQ(raw.Plan("SELECT group_id, seq FROM group_members WHERE tenant_id = 'a' AND member_id = 'm' AND "
                     "member_kind = 'group'"),
            "SEARCH group_members USING INDEX group_members_by_member (tenant_id=? AND member_id=? AND "
            "member_kind=?)\n");
}

TEST_P(SqliteFileTest, RefusesSchemaNewerThanTheBinary) {
  store_.reset();
  std::int64_t newer = LatestSchemaVersion() + 1;
  RawDb(options_.path).Exec("PRAGMA user_version=" + std::to_string(newer));
  Result<std::unique_ptr<Store>> opened = Store::OpenSqlite(options_);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kFailedPrecondition);
  EXPECT_NE(opened.error().message.find("version " + std::to_string(newer)), std::string::npos)
      << opened.error().message;
  EXPECT_EQ(RawDb(options_.path).Text("PRAGMA user_version"), std::to_string(newer));  // untouched
}

TEST_P(SqliteFileTest, RefusesAnotherApplicationsDatabase) {
  std::string other = dir_.File("other.db");
  RawDb(other).Exec("PRAGMA application_id=1234; CREATE TABLE notes (x TEXT);");
  SqliteOptions options = options_;
  options.path = other;
  Result<std::unique_ptr<Store>> opened = Store::OpenSqlite(options);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(RawDb(other).Text("SELECT count(*) FROM sqlite_schema WHERE name = 'vpp_tokens'"), "0");
  EXPECT_EQ(RawDb(other).Text("PRAGMA journal_mode"), "delete") << "a refused file is left exactly as it was";

  // No application_id but tables of its own: not an empty file, not vppd's.
  std::string unstamped = dir_.File("unstamped.db");
  RawDb(unstamped).Exec("CREATE TABLE tenants (x TEXT);");
  options.path = unstamped;
  opened = Store::OpenSqlite(options);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(RawDb(unstamped).Text("PRAGMA journal_mode"), "delete");
  EXPECT_EQ(RawDb(unstamped).Text("PRAGMA application_id"), "0");
}

TEST_P(SqliteFileTest, OpenValidatesOptions) {
  SqliteOptions options = options_;
  options.secrets = nullptr;
  Result<std::unique_ptr<Store>> opened = Store::OpenSqlite(options);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kInvalidArgument);

  options = options_;
  options.reader_connections = 0;
  opened = Store::OpenSqlite(options);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kInvalidArgument);

  options = options_;
  options.path = dir_.File("no/such/dir/vppd.db");
  opened = Store::OpenSqlite(options);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kUnavailable);
}

TEST_P(SqliteFileTest, RefusesAFileThatIsNotSqlite) {
  std::string junk = dir_.File("junk.db");
  std::ofstream(junk) << std::string(8192, 'j');
  SqliteOptions options = options_;
  options.path = junk;
  Result<std::unique_ptr<Store>> opened = Store::OpenSqlite(options);
  ASSERT_FALSE(opened);
  EXPECT_EQ(ReadAll(junk), std::string(8192, 'j'));
}

// --- tenants ---------------------------------------------------------------------

TEST_P(StoreTest, TenantCrud) {
  Result<Tenant> a = store_->GetTenant(kTenantA);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->display_name, "Tenant A");
  EXPECT_TRUE(a->intune_licensed);
  EXPECT_EQ(a->created, kT0);  // stamped from the injected clock

  Result<std::vector<Tenant>> all = store_->ListTenants();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, kTenantA);
  EXPECT_EQ((*all)[1].id, kTenantB);

  EXPECT_EQ(store_->GetTenant("nobody").error().code, Code::kNotFound);
  EXPECT_EQ(store_->RemoveTenant("nobody").error().code, Code::kNotFound);
  EXPECT_EQ(store_->PutTenant({"", "x", true, 0}).error().code, Code::kInvalidArgument);
  ASSERT_TRUE(store_->RemoveTenant(kTenantB));
  EXPECT_EQ(store_->GetTenant(kTenantB).error().code, Code::kNotFound);
  EXPECT_EQ(store_->ListTenants()->size(), 1u);
}

TEST_P(StoreTest, PutTenantUpdatesWithoutDroppingItsTokens) {
  VppToken t = Create(kTenantA, FullToken());
  clock_.Advance(std::chrono::hours(1));
  ASSERT_TRUE(store_->PutTenant({kTenantA, "Renamed", false, 0}));
  Result<Tenant> a = store_->GetTenant(kTenantA);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->display_name, "Renamed");
  EXPECT_FALSE(a->intune_licensed);
  EXPECT_EQ(a->created, kT0);  // kept
  EXPECT_TRUE(store_->GetToken(kTenantA, t.id)) << "an upsert must not cascade-delete the tenant's tokens";
}

TEST_P(StoreTest, RemoveTenantCascadesToItsTokensOnly) {
  VppToken a = Create(kTenantA, FullToken());
  VppToken b = Create(kTenantB, FullToken());
  ASSERT_TRUE(store_->RemoveTenant(kTenantA));
  EXPECT_EQ(store_->GetToken(kTenantA, a.id).error().code, Code::kNotFound);
  EXPECT_TRUE(store_->GetToken(kTenantB, b.id));
  Raw raw = db_->raw();
  EXPECT_EQ(raw.Text(std::string("SELECT count(*) FROM vpp_tokens WHERE tenant_id = '") + kTenantA + "'"), "0");
  // A tenant that comes back starts empty.
  ASSERT_TRUE(store_->PutTenant({kTenantA, "Again", true, 0}));
  EXPECT_EQ(*store_->CountTokens(kTenantA, std::nullopt), 0);
}

// --- the query columns ----------------------------------------------------------------

// The store's table of query columns (store/query.h) is the schema's: each column
// exists in its table, with the declared type and nullability the table says.
TEST_P(StoreTest, QueryColumnsAreTheSchemasColumns) {
  Raw raw = db_->raw();
  for (Table table : {Table::kVppTokens, Table::kMobileApps}) {
    const std::string name = table == Table::kVppTokens ? "vpp_tokens" : "mobile_apps";
    for (const ColumnInfo& c : QueryColumns(table)) {
      SCOPED_TRACE(name + "." + std::string(c.name));
      EXPECT_EQ(&Describe(c.id), &c);
      std::string type, nullable;
      if (pg()) {
        const std::string where = fmt::format(
            "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{}' AND "
            "column_name = '{}'",
            name, c.name);
        type = raw.Text("SELECT data_type " + where);
        nullable = raw.Text("SELECT CASE is_nullable WHEN 'YES' THEN 'null' ELSE 'not null' END " + where);
      } else {
        const std::string where = fmt::format("FROM pragma_table_info('{}') WHERE name = '{}'", name, c.name);
        type = raw.Text("SELECT lower(type) " + where);
        nullable = raw.Text("SELECT CASE \"notnull\" WHEN 0 THEN 'null' ELSE 'not null' END " + where);
      }
      ASSERT_FALSE(type.empty()) << "no such column";
      // The primary key is NOT NULL in fact, whatever SQLite's table_info says of it.
      if (c.name != "id") {
        EXPECT_EQ(nullable, c.nullable ? "null" : "not null");
      }
      switch (c.type) {
        case ColumnType::kText:
        case ColumnType::kEnum:
          EXPECT_EQ(type, "text");
          break;
        case ColumnType::kBool:
          EXPECT_EQ(type, pg() ? "boolean" : "integer");
          break;
        case ColumnType::kInt:
        case ColumnType::kTime:
          EXPECT_EQ(type, pg() ? "bigint" : "integer");
          break;
      }
    }
  }
}

// --- tokens: CRUD ------------------------------------------------------------------

TEST_P(StoreTest, CreateAndGetRoundTripEveryField) {
  VppToken in = FullToken();
  VppToken created = Create(kTenantA, in);
  EXPECT_TRUE(IsGuid(created.id)) << created.id;
  EXPECT_EQ(created.created, kT0);
  EXPECT_EQ(created.last_modified, kT0);
  Result<VppToken> got = store_->GetToken(kTenantA, created.id);
  ASSERT_TRUE(got) << got.error().message;
  ExpectSameToken(*got, created);
  // The secret contract: neither the create's answer nor a read carries the sToken.
  EXPECT_TRUE(created.token.empty());
  EXPECT_TRUE(got->token.empty());
  EXPECT_EQ(*store_->GetTokenSecret(kTenantA, created.id), in.token);
  EXPECT_EQ(store_->GetTokenSecret(kTenantA, "nope").error().code, Code::kNotFound);
  EXPECT_EQ(store_->GetTokenSecret(kTenantB, created.id).error().code, Code::kNotFound);

  // Optional fields absent, never synced: come back absent and 0.
  VppToken bare;
  bare.token = "t";
  VppToken b = Create(kTenantA, bare);
  Result<VppToken> got_bare = store_->GetToken(kTenantA, b.id);
  ASSERT_TRUE(got_bare);
  ExpectSameToken(*got_bare, b);
  EXPECT_EQ(got_bare->last_sync, 0);
  EXPECT_FALSE(got_bare->display_name.has_value());
  EXPECT_TRUE(got_bare->role_scope_tag_ids.empty());
}

TEST_P(StoreTest, CreateKeepsAGivenIdAndRefusesDuplicates) {
  VppToken t = FullToken();
  t.id = "aaaaaaaa-0000-0000-0000-000000000001";
  EXPECT_EQ(Create(kTenantA, t).id, t.id);
  Result<VppToken> again = store_->CreateToken(kTenantA, t);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kAlreadyExists);
  // The same id in another tenant is that tenant's business (and no existence leak).
  EXPECT_TRUE(store_->CreateToken(kTenantB, t));
}

TEST_P(StoreTest, CreateForUnknownTenantIsNotFound) {
  Result<VppToken> r = store_->CreateToken("33333333-3333-3333-3333-333333333333", FullToken());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kNotFound);
}

TEST_P(StoreTest, UpdateStampsLastModifiedAndKeepsIdentity) {
  VppToken t = Create(kTenantA, FullToken());
  clock_.Advance(std::chrono::seconds(90));
  Result<VppToken> updated = store_->UpdateToken(kTenantA, t.id, [](VppToken& x) -> Status {
    x.display_name = std::nullopt;
    x.state = "expired";
    x.token = "a-new-sToken";
    x.last_sync = 0;
    x.action_results.clear();
    x.id = "something-else";  // ignored
    x.created = 1;            // ignored
    return {};
  });
  ASSERT_TRUE(updated) << updated.error().message;
  EXPECT_EQ(updated->id, t.id);
  EXPECT_EQ(updated->created, kT0);
  EXPECT_EQ(updated->last_modified, kT0 + 90'000'000);
  Result<VppToken> got = store_->GetToken(kTenantA, t.id);
  ASSERT_TRUE(got);
  ExpectSameToken(*got, *updated);
  EXPECT_TRUE(updated->token.empty());
  EXPECT_EQ(*store_->GetTokenSecret(kTenantA, t.id), "a-new-sToken");
  EXPECT_EQ(store_->GetToken(kTenantA, "something-else").error().code, Code::kNotFound);
}

TEST_P(StoreTest, FailedMutateWritesNothing) {
  VppToken t = Create(kTenantA, FullToken());
  clock_.Advance(std::chrono::seconds(5));
  Result<VppToken> r = store_->UpdateToken(kTenantA, t.id, [](VppToken& x) -> Status {
    x.state = "invalid";
    return Fail(Error::FailedPrecondition("nope"));
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(r.error().message, "nope");
  ExpectSameToken(*store_->GetToken(kTenantA, t.id), t);

  // A throwing mutate is contained too, and the writer stays usable.
  r = store_->UpdateToken(kTenantA, t.id, [](VppToken&) -> Status { throw std::runtime_error("boom"); });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInternal);
  EXPECT_TRUE(store_->UpdateToken(kTenantA, t.id, [](VppToken&) -> Status { return {}; }));
}

TEST_P(StoreTest, DeleteToken) {
  VppToken t = Create(kTenantA, FullToken());
  ASSERT_TRUE(store_->DeleteToken(kTenantA, t.id));
  EXPECT_EQ(store_->GetToken(kTenantA, t.id).error().code, Code::kNotFound);
  EXPECT_EQ(store_->DeleteToken(kTenantA, t.id).error().code, Code::kNotFound);
  EXPECT_EQ(store_->UpdateToken(kTenantA, t.id, [](VppToken&) -> Status { return {}; }).error().code, Code::kNotFound);
}

TEST_P(StoreTest, TenantIsolationForEveryMethod) {
  VppToken a = Create(kTenantA, FullToken());
  Create(kTenantB, FullToken());
  bool called = false;

  EXPECT_EQ(store_->GetToken(kTenantB, a.id).error().code, Code::kNotFound);
  Result<VppToken> u = store_->UpdateToken(kTenantB, a.id, [&](VppToken&) -> Status {
    called = true;
    return {};
  });
  EXPECT_EQ(u.error().code, Code::kNotFound);
  EXPECT_FALSE(called);
  EXPECT_EQ(store_->DeleteToken(kTenantB, a.id).error().code, Code::kNotFound);

  Result<Page<VppToken>> page = store_->ListTokens(kTenantB, {});
  ASSERT_TRUE(page);
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_NE(page->items[0].id, a.id);
  // Even a filter naming A's token id sees nothing from B's side.
  ListQuery by_id;
  by_id.filter = Cmp(Op::kEq, P(Column::kTokenId), S(a.id));
  EXPECT_TRUE(store_->ListTokens(kTenantB, by_id)->items.empty());
  EXPECT_EQ(*store_->CountTokens(kTenantB, by_id.filter), 0);
  by_id.filter = Cmp(Op::kOr, Cmp(Op::kEq, P(Column::kTokenId), S(a.id)), L(true));
  EXPECT_EQ(*store_->CountTokens(kTenantB, by_id.filter), 1);  // `or true` cannot widen the tenant scope
  EXPECT_EQ(*store_->CountTokens(kTenantA, std::nullopt), 1);
  EXPECT_EQ(*store_->CountTokens("no-such-tenant", std::nullopt), 0);

  // A's token is intact after B's attempts.
  ExpectSameToken(*store_->GetToken(kTenantA, a.id), a);
}

// --- the per-tenant limit ------------------------------------------------------------

TEST_P(StoreTest, TokenLimitIsPerTenant) {
  options_.max_tokens_per_tenant = 5;
  Open();
  std::vector<std::string> ids;
  ids.reserve(5);
  for (int i = 0; i < 5; ++i) ids.push_back(Create(kTenantA, FullToken()).id);
  Result<VppToken> sixth = store_->CreateToken(kTenantA, FullToken());
  ASSERT_FALSE(sixth);
  EXPECT_EQ(sixth.error().code, Code::kResourceExhausted);
  EXPECT_EQ(*store_->CountTokens(kTenantA, std::nullopt), 5);
  EXPECT_TRUE(store_->CreateToken(kTenantB, FullToken()));  // B has its own budget
  ASSERT_TRUE(store_->DeleteToken(kTenantA, ids[0]));
  EXPECT_TRUE(store_->CreateToken(kTenantA, FullToken()));  // room again
}

TEST_P(StoreTest, RealLimitOf3000) {
  // The real constant, once. NORMAL sync for speed: durability is tested elsewhere.
  options_.synchronous_full = false;
  Open();
  ASSERT_EQ(options_.max_tokens_per_tenant, kMaxTokensPerTenant);
  auto start = std::chrono::steady_clock::now();
  VppToken t = FullToken();
  for (std::int64_t i = 0; i < kMaxTokensPerTenant; ++i) {
    ASSERT_TRUE(store_->CreateToken(kTenantA, t)) << i;
  }
  Result<VppToken> over = store_->CreateToken(kTenantA, t);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, Code::kResourceExhausted);
  std::printf("[ measure  ] 3000 CreateToken (synchronous=NORMAL): %.2f s, %.0f creates/s\n", seconds,
              kMaxTokensPerTenant / seconds);

  // A full page of the whole tenant.
  start = std::chrono::steady_clock::now();
  ListQuery q;
  q.limit = 1000;
  q.order_by = {{Column::kTokenDisplayName, false}};
  Result<Page<VppToken>> page = store_->ListTokens(kTenantA, q);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->items.size(), 1000u);
  EXPECT_TRUE(page->has_more);
  std::printf("[ measure  ] ListTokens of 1000 of 3000 (no sToken opened): %.1f ms\n",
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());

  // The same page cannot be read in 1 ms: the call is cut off with DeadlineExceeded
  // (and the connection rolls back cleanly, so the next call works). PostgreSQL's
  // statement_timeout is tested where a statement is made slow on purpose
  // (pg_store_test), as 1 ms of a server's time is no stable yardstick.
  if (pg()) return;
  options_.statement_timeout_ms = 1;
  options_.reader_connections = 1;
  Open();
  Result<Page<VppToken>> cut = store_->ListTokens(kTenantA, q);
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code, Code::kDeadlineExceeded) << cut.error().message;
  // A point lookup runs far fewer VM steps than one deadline check interval.
  Result<VppToken> one = store_->GetToken(kTenantA, page->items[0].id);
  EXPECT_TRUE(one) << one.error().message;
}

// --- secrets at rest ----------------------------------------------------------------

// The secrets-at-rest tests' token: created with one sToken, then given another,
// so that the checks (for "SECRET-PLAINTEXT" and the first one's tail) see both a
// first seal and a re-seal.
constexpr char kFirstSecret[] = "SECRET-PLAINTEXT-sToken-7f3a9c1e5b";
constexpr char kSecondSecret[] = "SECRET-PLAINTEXT-sToken-second-4d2e";

VppToken CreateTokenThenReplaceSecret(Store& store) {
  VppToken t = FullToken();
  t.token = kFirstSecret;
  Result<VppToken> created = store.CreateToken(kTenantA, std::move(t));
  if (!created) {
    ADD_FAILURE() << created.error().message;
    return {};
  }
  Result<VppToken> replaced = store.UpdateToken(kTenantA, created->id, [](VppToken& x) -> Status {
    x.token = kSecondSecret;
    return {};
  });
  EXPECT_TRUE(replaced) << replaced.error().message;
  return *created;
}

TEST_P(SqliteFileTest, SealedTokenIsNeverOnDiskInPlaintext) {
  const VppToken created = CreateTokenThenReplaceSecret(*store_);
  ASSERT_FALSE(HasFailure());
  std::string bytes = ReadAll(options_.path) + ReadAll(options_.path + "-wal");
  ASSERT_GT(bytes.size(), 0u);
  EXPECT_NE(bytes.find("Contoso"), std::string::npos) << "sanity: the search does see plain columns";
  EXPECT_EQ(bytes.find("SECRET-PLAINTEXT"), std::string::npos);
  EXPECT_EQ(bytes.find("7f3a9c1e5b"), std::string::npos);
  store_.reset();  // checkpoint into the main file, then look again
  EXPECT_EQ(ReadAll(options_.path).find("SECRET-PLAINTEXT"), std::string::npos);
  Open();
  EXPECT_EQ(*store_->GetTokenSecret(kTenantA, created.id), kSecondSecret);
}

// --- the read anchor (sqlite::ReadAnchor) ------------------------------------------
// Between its writes the store keeps a read transaction open on a connection of
// its own, so that readers' WAL read-mark locks cost no system call. It must never
// make a read stale, and must not keep the WAL from restarting.

TEST_P(SqliteFileTest, ReadsSeeAnotherWritersCommitsAtOnce) {
  // Our own write first: the anchor then holds the newest commit, which the
  // other store's commits leave behind (as the CLI's do, from another process).
  VppToken t = Create(kTenantA, FullToken());
  Result<std::unique_ptr<Store>> other = db_->Open(options_);
  ASSERT_TRUE(other) << other.error().message;
  auto rename = [&](Store& store, const std::string& name) {
    Result<VppToken> r = store.UpdateToken(kTenantA, t.id, [&](VppToken& x) -> Status {
      x.display_name = name;
      return {};
    });
    ASSERT_TRUE(r) << r.error().message;
  };
  for (int i = 0; i < 40; ++i) {
    const std::string name = "other-" + std::to_string(i);
    rename(**other, name);
    Result<VppToken> seen = store_->GetToken(kTenantA, t.id);
    ASSERT_TRUE(seen) << seen.error().message;
    ASSERT_EQ(seen->display_name, name) << "a read after the other store's commit returned, round " << i;
    Result<Page<VppToken>> listed = store_->ListTokens(kTenantA, {});  // a multi-statement read too
    ASSERT_TRUE(listed) << listed.error().message;
    ASSERT_EQ(listed->items.size(), 1u);
    EXPECT_EQ(listed->items[0].display_name, name);
    if (i % 2 == 1) {
      // And the other way round, with this store's anchor renewed by its write.
      const std::string mine = "mine-" + std::to_string(i);
      rename(*store_, mine);
      EXPECT_EQ((*other)->GetToken(kTenantA, t.id)->display_name, mine);
      EXPECT_EQ(store_->GetToken(kTenantA, t.id)->display_name, mine);
    }
  }
  // A token the other store deletes is gone for this one at once.
  ASSERT_TRUE((*other)->DeleteToken(kTenantA, t.id));
  Result<VppToken> gone = store_->GetToken(kTenantA, t.id);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, Code::kNotFound);
}

TEST_P(SqliteFileTest, TheWalRestartsWhileReadersRead) {
  // Readers read without pause while the writer commits ~40 MB of WAL frames:
  // each checkpoint must be able to let the WAL restart from its beginning, so
  // neither the anchor nor the readers may hold it at an old snapshot.
  VppToken t = Create(kTenantA, FullToken());
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        Result<VppToken> got = store_->GetToken(kTenantA, t.id);
        if (!got) {
          ADD_FAILURE() << got.error().message;
          return;
        }
        reads.fetch_add(1);
      }
    });
  }
  const std::string pad(6000, 'x');  // two overflow pages besides the row's own
  std::uintmax_t max_wal = 0;
  const int kUpdates = 6000;
  for (int i = 0; i < kUpdates; ++i) {
    Result<VppToken> r = store_->UpdateToken(kTenantA, t.id, [&](VppToken& x) -> Status {
      x.location_name = std::to_string(i) + pad;
      return {};
    });
    ASSERT_TRUE(r) << r.error().message;
    if (i % 100 == 0) max_wal = std::max(max_wal, std::filesystem::file_size(options_.path + "-wal"));
  }
  stop = true;
  for (std::thread& reader : readers) reader.join();
  max_wal = std::max(max_wal, std::filesystem::file_size(options_.path + "-wal"));
  std::printf("[ measure  ] %d updates, %lld reads beside them, WAL at most %.1f MB\n", kUpdates,
              static_cast<long long>(reads.load()), static_cast<double>(max_wal) / 1e6);
  EXPECT_GT(reads.load(), 1000) << "the readers did read";
  // ~3 pages a commit: ~9,000 pages (37 MB) if the WAL never restarted. The
  // checkpointer copies at 1,000 pages, the writer itself at 4,000 (16 MB).
  EXPECT_LT(max_wal, 20u << 20) << "the WAL did not restart";
}

TEST_P(StoreTest, SealedTokenIsNeverStoredInPlaintext) {
  const VppToken created = CreateTokenThenReplaceSecret(*store_);
  ASSERT_FALSE(HasFailure());
  // Every column of every row, as text (SQLite's bytes on disk: SqliteFileTest).
  Raw raw = db_->raw();
  std::string everything = pg()
                               ? "SELECT string_agg(t::text, '|') FROM vpp_tokens t"
                               : "SELECT group_concat(quote(token_sealed) || action_results || organization_name, '|') "
                                 "FROM vpp_tokens";
  std::string rows = raw.Text(everything);
  EXPECT_NE(rows.find("Contoso"), std::string::npos) << "sanity: the search does see plain columns";
  EXPECT_EQ(rows.find("SECRET-PLAINTEXT"), std::string::npos);
  EXPECT_EQ(rows.find("7f3a9c1e5b"), std::string::npos);
  EXPECT_EQ(*store_->GetTokenSecret(kTenantA, created.id), kSecondSecret);
}

TEST_P(StoreTest, TamperedCiphertextIsAnErrorNotGarbage) {
  VppToken t = Create(kTenantA, FullToken());
  Raw raw = db_->raw();
  std::string sealed = raw.Text("SELECT token_sealed FROM vpp_tokens WHERE id = '" + t.id + "'");
  ASSERT_GT(sealed.size(), 20u);
  sealed[sealed.size() / 2] = sealed[sealed.size() / 2] == 'A' ? 'B' : 'A';
  raw.Exec("UPDATE vpp_tokens SET token_sealed = '" + sealed + "' WHERE id = '" + t.id + "'");

  Result<std::string> got = store_->GetTokenSecret(kTenantA, t.id);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Code::kInternal);
  EXPECT_EQ(got.error().message.find(FullToken().token), std::string::npos);
  // Graph reads never open the sealed column, so they are unaffected.
  EXPECT_TRUE(store_->GetToken(kTenantA, t.id));
  EXPECT_TRUE(store_->ListTokens(kTenantA, {}));
  // An update that does not renew keeps the (broken) ciphertext as it is; a renewal replaces it.
  ASSERT_TRUE(store_->UpdateToken(kTenantA, t.id, [](VppToken& x) -> Status {
    x.display_name = "renamed";
    return {};
  }));
  EXPECT_EQ(raw.Text("SELECT token_sealed FROM vpp_tokens WHERE id = '" + t.id + "'"), sealed);
  ASSERT_TRUE(store_->UpdateToken(kTenantA, t.id, [](VppToken& x) -> Status {
    x.token = "renewed";
    return {};
  }));
  EXPECT_EQ(*store_->GetTokenSecret(kTenantA, t.id), "renewed");
}

TEST_P(StoreTest, SealedValueMovedToAnotherRowDoesNotOpen) {
  VppToken a = Create(kTenantA, FullToken());
  VppToken other = FullToken();
  other.token = "another";
  VppToken b = Create(kTenantA, other);
  Raw raw = db_->raw();
  raw.Exec("UPDATE vpp_tokens SET token_sealed = (SELECT token_sealed FROM vpp_tokens WHERE id = '" + a.id +
           "') WHERE id = '" + b.id + "'");
  Result<std::string> got = store_->GetTokenSecret(kTenantA, b.id);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Code::kInternal);
  EXPECT_TRUE(store_->GetTokenSecret(kTenantA, a.id));
}

TEST_P(StoreTest, CorruptJsonColumnIsInternal) {
  VppToken t = Create(kTenantA, FullToken());
  db_->raw().Exec("UPDATE vpp_tokens SET action_results = '[{\"actionName\": 3}]'");
  Result<VppToken> got = store_->GetToken(kTenantA, t.id);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Code::kInternal);
}

// --- filters -----------------------------------------------------------------------------

// Five tokens labelled t1..t5 (apple_id) with values chosen so that each operator
// separates them, including the traps: case, null, LIKE metacharacters.
class FilterTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    Add("t1", [](VppToken& t) {
      t.display_name = "Alpha";
      t.organization_name = "Contoso";
      t.country_or_region = "US";
      t.state = "valid";
      t.automatically_update_apps = true;
      t.last_app_count = 5;
      t.expiration = kT0 + kDay;
      t.last_sync = 0;
      t.location_name = "50%_off store";
    });
    Add("t2", [](VppToken& t) {
      t.display_name = "alpha";
      t.account_type = "education";
      t.state = "expired";
      t.data_sharing_consent_granted = true;
      t.last_app_count = 12;
      t.expiration = kT0 + 2 * kDay;
      t.last_sync = kT0;
      t.location_name = "50XXoff";  // what an unescaped LIKE '%50%_off%' would also match
    });
    Add("t3", [](VppToken& t) {
      t.organization_name = "Fabrikam";
      t.country_or_region = "FR";
      t.state = "invalid";
      t.last_app_count = 0;
      t.expiration = kT0 - kDay;
      t.last_sync = kT0 + 5;
      t.location_name = "a\\b";
    });
    Add("t4", [](VppToken& t) {
      t.display_name = "Beta_1";
      t.organization_name = "Contoso";
      t.country_or_region = "US";
      t.state = "valid";
      t.last_app_count = 7;
      t.expiration = kT0 + 3 * kDay;
      t.location_name = "100%";
    });
    Add("t5", [](VppToken& t) {
      t.display_name = "Beta1";
      t.organization_name = "contoso";
      t.country_or_region = "DE";
      t.state = "assignedToExternalMDM";
      t.last_app_count = 12;
      t.expiration = kT0 + 4 * kDay;
    });
    Create(kTenantB, FullToken());  // never in any answer for A
  }

  template <class F>
  void Add(const std::string& label, F fill) {
    VppToken t;
    t.apple_id = label;
    t.token = "s-" + label;
    fill(t);
    clock_.Advance(std::chrono::seconds(1));
    Create(kTenantA, t);
  }

  // The labels a filter selects, sorted; "error:<Code>" when it fails.
  std::string Match(Expr filter) {
    ListQuery q;
    q.filter = filter;
    q.limit = 1000;
    Result<Page<VppToken>> page = store_->ListTokens(kTenantA, q);
    if (!page) return std::string("error:") + CodeName(page.error().code);
    std::vector<std::string> labels;
    for (const VppToken& t : page->items) labels.push_back(*t.apple_id);
    std::sort(labels.begin(), labels.end());
    std::string out;
    for (const std::string& l : labels) out += (out.empty() ? "" : ",") + l;
    Result<std::int64_t> count = store_->CountTokens(kTenantA, filter);
    EXPECT_TRUE(count);
    if (count) {
      EXPECT_EQ(*count, static_cast<std::int64_t>(labels.size())) << "count disagrees with list";
    }
    return out;
  }
};
INSTANTIATE_TEST_SUITE_P(Store, FilterTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

TEST_P(FilterTest, ComparisonsOnStrings) {
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenDisplayName), S("alpha"))), "t2");  // case-sensitive
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenDisplayName), S("Alpha"))), "t1");
  EXPECT_EQ(Match(Cmp(Op::kNe, P(Column::kTokenDisplayName), S("Alpha"))), "t2,t3,t4,t5");  // null ne 'Alpha' is true
  EXPECT_EQ(Match(Cmp(Op::kGt, P(Column::kTokenDisplayName), S("B"))), "t2,t4,t5");         // byte order, null excluded
  EXPECT_EQ(Match(Cmp(Op::kGe, P(Column::kTokenDisplayName), S("Beta1"))), "t2,t4,t5");
  EXPECT_EQ(Match(Cmp(Op::kLt, P(Column::kTokenDisplayName), S("Beta1"))),
            "t1");  // 'Beta_1' > 'Beta1': '_' (0x5f) > '1'
  EXPECT_EQ(Match(Cmp(Op::kLe, P(Column::kTokenDisplayName), S("Alpha"))), "t1");
  EXPECT_EQ(Match(Cmp(Op::kEq, S("Alpha"), P(Column::kTokenDisplayName))), "t1");  // literal on the left
}

TEST_P(FilterTest, NullSemantics) {
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenDisplayName), Null())), "t3");
  EXPECT_EQ(Match(Cmp(Op::kNe, P(Column::kTokenDisplayName), Null())), "t1,t2,t4,t5");
  EXPECT_EQ(Match(Cmp(Op::kEq, Null(), P(Column::kTokenOrganizationName))), "t2");
  EXPECT_EQ(Match(Cmp(Op::kEq, Null(), Null())), "t1,t2,t3,t4,t5");  // null eq null
  EXPECT_EQ(Match(Cmp(Op::kNe, Null(), Null())), "");
  EXPECT_EQ(Match(Cmp(Op::kGt, P(Column::kTokenDisplayName), Null())), "");  // relational with null is false
  EXPECT_EQ(Match(Cmp(Op::kLe, P(Column::kTokenDisplayName), Null())), "");
  EXPECT_EQ(Match(Not(Cmp(Op::kGt, P(Column::kTokenDisplayName), S("B")))), "t1,t3");  // not of a null-false is true
  // property vs property: null eq null is true (t2: no organization, no country).
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenOrganizationName), P(Column::kTokenCountryOrRegion))), "t2");
  EXPECT_EQ(Match(Cmp(Op::kNe, P(Column::kTokenOrganizationName), P(Column::kTokenCountryOrRegion))), "t1,t3,t4,t5");
  // A non-nullable property is never null.
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenLastAppCount), Null())), "");
}

TEST_P(FilterTest, StringFunctionsAreExactAndCaseSensitive) {
  EXPECT_EQ(Match(Cmp(Op::kContains, P(Column::kTokenLocationName), S("50%_off"))), "t1");  // not t2
  EXPECT_EQ(Match(Cmp(Op::kContains, P(Column::kTokenDisplayName), S("_"))), "t4");
  EXPECT_EQ(Match(Cmp(Op::kContains, P(Column::kTokenLocationName), S("%"))), "t1,t4");
  EXPECT_EQ(Match(Cmp(Op::kContains, P(Column::kTokenLocationName), S("\\"))), "t3");
  EXPECT_EQ(Match(Cmp(Op::kStartsWith, P(Column::kTokenDisplayName), S("Beta_"))), "t4");
  EXPECT_EQ(Match(Cmp(Op::kStartsWith, P(Column::kTokenDisplayName), S("A"))), "t1");
  EXPECT_EQ(Match(Cmp(Op::kStartsWith, P(Column::kTokenDisplayName), S("Alpha and more"))), "");
  EXPECT_EQ(Match(Cmp(Op::kEndsWith, P(Column::kTokenLocationName), S("%"))), "t4");
  EXPECT_EQ(Match(Cmp(Op::kEndsWith, P(Column::kTokenLocationName), S("OFF"))), "");
  EXPECT_EQ(Match(Cmp(Op::kEndsWith, P(Column::kTokenLocationName), S("off"))), "t2");
  EXPECT_EQ(Match(Cmp(Op::kEndsWith, P(Column::kTokenDisplayName), S("1"))), "t4,t5");
  EXPECT_EQ(Match(Cmp(Op::kContains, P(Column::kTokenOrganizationName), S("Contoso"))), "t1,t4");
  // The empty needle matches every non-null value.
  EXPECT_EQ(Match(Cmp(Op::kStartsWith, P(Column::kTokenDisplayName), S(""))), "t1,t2,t4,t5");
  EXPECT_EQ(Match(Cmp(Op::kEndsWith, P(Column::kTokenDisplayName), S(""))), "t1,t2,t4,t5");
  EXPECT_EQ(Match(Cmp(Op::kContains, P(Column::kTokenDisplayName), S(""))), "t1,t2,t4,t5");
  // On null: false, so `not` is true.
  EXPECT_EQ(Match(Not(Cmp(Op::kContains, P(Column::kTokenCountryOrRegion), S("U")))), "t2,t3,t5");
  EXPECT_EQ(Match(Cmp(Op::kContains, P(Column::kTokenCountryOrRegion), Null())), "");
  // On an enum, by member name.
  EXPECT_EQ(Match(Cmp(Op::kStartsWith, P(Column::kTokenState), S("in"))), "t3");
}

TEST_P(FilterTest, NumbersBooleansTimesEnums) {
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenLastAppCount), I(12))), "t2,t5");
  EXPECT_EQ(Match(Cmp(Op::kGt, P(Column::kTokenLastAppCount), I(5))), "t2,t4,t5");
  EXPECT_EQ(Match(Cmp(Op::kGe, P(Column::kTokenLastAppCount), I(5))), "t1,t2,t4,t5");
  EXPECT_EQ(Match(Cmp(Op::kLt, P(Column::kTokenLastAppCount), I(5))), "t3");
  EXPECT_EQ(Match(Cmp(Op::kLe, P(Column::kTokenLastAppCount), I(0))), "t3");
  EXPECT_EQ(Match(Cmp(Op::kGt, P(Column::kTokenLastAppCount), L(6.5))), "t2,t4,t5");

  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenAutomaticallyUpdateApps), L(true))), "t1");
  EXPECT_EQ(Match(Cmp(Op::kNe, P(Column::kTokenAutomaticallyUpdateApps), L(true))), "t2,t3,t4,t5");
  EXPECT_EQ(Match(P(Column::kTokenAutomaticallyUpdateApps)), "t1");
  EXPECT_EQ(Match(Not(P(Column::kTokenAutomaticallyUpdateApps))), "t2,t3,t4,t5");
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenDataSharingConsent), L(true))), "t2");
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenClaimFromExternalMdm), L(false))), "t1,t2,t3,t4,t5");
  EXPECT_EQ(Match(L(true)), "t1,t2,t3,t4,t5");
  EXPECT_EQ(Match(L(false)), "");

  EXPECT_EQ(Match(Cmp(Op::kLt, P(Column::kTokenExpiration), L(DateTime{kT0}))), "t3");
  EXPECT_EQ(Match(Cmp(Op::kGe, P(Column::kTokenExpiration), L(DateTime{kT0 + 3 * kDay}))), "t4,t5");
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenLastSync), L(DateTime{kT0}))), "t2");
  EXPECT_EQ(Match(Cmp(Op::kGt, P(Column::kTokenLastSync), L(DateTime{kT0}))), "t3");
  // Never synced is kNeverSynced, the earliest time: before every other.
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenLastSync), L(DateTime{kNeverSynced}))), "t1,t4,t5");
  EXPECT_EQ(Match(Cmp(Op::kLt, P(Column::kTokenLastSync), L(DateTime{-kDay}))), "t1,t4,t5");
  EXPECT_EQ(Match(Cmp(Op::kGt, P(Column::kTokenLastModified), L(DateTime{kT0 + 3'000'000}))), "t4,t5");

  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenAccountType), S("education"))), "t2");
  EXPECT_EQ(Match(Cmp(Op::kNe, P(Column::kTokenState), S("valid"))), "t2,t3,t5");
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenLastSyncStatus), S("none"))), "t1,t2,t3,t4,t5");
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenDeliveryProtocol), S("default"))), "t1,t2,t3,t4,t5");
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenAppleId), S("t3"))), "t3");
}

TEST_P(FilterTest, LogicAndIn) {
  EXPECT_EQ(Match(Cmp(Op::kAnd, Cmp(Op::kEq, P(Column::kTokenState), S("valid")),
                      Cmp(Op::kGt, P(Column::kTokenLastAppCount), I(5)))),
            "t4");
  EXPECT_EQ(Match(Cmp(Op::kOr, Cmp(Op::kEq, P(Column::kTokenState), S("expired")),
                      Cmp(Op::kEq, P(Column::kTokenCountryOrRegion), S("DE")))),
            "t2,t5");
  EXPECT_EQ(Match(Not(Cmp(Op::kOr, Cmp(Op::kEq, P(Column::kTokenState), S("expired")),
                          Cmp(Op::kEq, P(Column::kTokenCountryOrRegion), S("DE"))))),
            "t1,t3,t4");
  EXPECT_EQ(Match(Expr::Apply(Op::kIn, {P(Column::kTokenState), S("valid"), S("expired")})), "t1,t2,t4");
  EXPECT_EQ(Match(Expr::Apply(Op::kIn, {P(Column::kTokenCountryOrRegion), S("US"), Null()})), "t1,t2,t4");
  EXPECT_EQ(Match(Not(Expr::Apply(Op::kIn, {P(Column::kTokenCountryOrRegion), S("US"), Null()}))), "t3,t5");
  EXPECT_EQ(Match(Not(Expr::Apply(Op::kIn, {P(Column::kTokenCountryOrRegion), S("US")}))), "t2,t3,t5");
  EXPECT_EQ(Match(Expr::Apply(Op::kIn, {P(Column::kTokenLastAppCount), I(12), I(7)})), "t2,t4,t5");
  EXPECT_EQ(Match(Expr::Apply(Op::kIn, {P(Column::kTokenLastAppCount)})), "");

  // A long `in` list stays flat (no deep OR chain): 900 literals are fine.
  std::vector<Expr> many = {P(Column::kTokenLastAppCount)};
  for (int i = 100; i < 1000; ++i) many.push_back(I(i));
  many.push_back(I(7));
  EXPECT_EQ(Match(Expr::Apply(Op::kIn, many)), "t4");
}

TEST_P(FilterTest, InvalidFiltersAreInvalidArgument) {
  const std::string kBad = "error:InvalidArgument";
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kAppPlatform), S("iOS"))), kBad);  // a column of mobile_apps
  EXPECT_EQ(Match(Cmp(Op::kStartsWith, P(Column::kAppBundleId), S("com."))), kBad);
  EXPECT_EQ(Match(Cmp(Op::kEq, P(static_cast<Column>(1000)), S("x"))), kBad);  // no such column
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenDisplayName), I(5))), kBad);
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenLastAppCount), S("5"))), kBad);
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenExpiration), I(5))), kBad);
  EXPECT_EQ(Match(Cmp(Op::kEq, P(Column::kTokenDisplayName), P(Column::kTokenLastAppCount))), kBad);
  EXPECT_EQ(Match(Cmp(Op::kContains, P(Column::kTokenLastAppCount), S("1"))), kBad);
  EXPECT_EQ(Match(Expr::Apply(Op::kIn, {P(Column::kTokenState), P(Column::kTokenState)})), kBad);
  EXPECT_EQ(Match(P(Column::kTokenDisplayName)), kBad);  // not boolean
  EXPECT_EQ(Match(S("x")), kBad);
  EXPECT_EQ(Match(Expr::Apply(Op::kAnd, {L(true)})), kBad);
  EXPECT_EQ(Match(Cmp(Op::kEq, Cmp(Op::kEq, P(Column::kTokenState), S("valid")), L(true))), kBad);

  ListQuery q;
  q.filter = Cmp(Op::kEq, P(Column::kAppPlatform), S("x"));
  Result<Page<VppToken>> r = store_->ListTokens(kTenantA, q);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().target, "platform");

  // Too many literals.
  std::vector<Expr> many = {P(Column::kTokenLastAppCount)};
  for (int i = 0; i < kMaxFilterParams + 5; ++i) many.push_back(I(i));
  EXPECT_EQ(Match(Expr::Apply(Op::kIn, many)), kBad);
}

TEST_P(FilterTest, NotIsPushedDownExactly) {
  Expr valid = Cmp(Op::kEq, P(Column::kTokenState), S("valid"));
  Expr big = Cmp(Op::kGt, P(Column::kTokenLastAppCount), I(5));
  Expr has_name = Cmp(Op::kGt, P(Column::kTokenDisplayName), S("B"));  // false on null
  // not (a and b) == not a or not b
  EXPECT_EQ(Match(Not(Cmp(Op::kAnd, valid, big))), "t1,t2,t3,t5");
  EXPECT_EQ(Match(Cmp(Op::kOr, Not(valid), Not(big))), "t1,t2,t3,t5");
  EXPECT_EQ(Match(Not(Not(Cmp(Op::kAnd, valid, big)))), "t4");
  EXPECT_EQ(Match(Not(Cmp(Op::kOr, has_name, L(false)))), "t1,t3");
  EXPECT_EQ(Match(Not(Cmp(Op::kAnd, has_name, L(true)))), "t1,t3");
  // and (x, not (or y z)) flattens into one AND group; same answer either way.
  EXPECT_EQ(Match(Cmp(Op::kAnd, valid, Not(Cmp(Op::kOr, big, Cmp(Op::kEq, P(Column::kTokenDisplayName), Null()))))),
            "t1");
}

TEST_P(FilterTest, LongChainsFlattenButAlternationIsBounded) {
  // `a and b and ... ` as a parser builds it: a left-deep binary tree, 90 levels.
  Expr chain = Cmp(Op::kNe, P(Column::kTokenLastAppCount), I(1000));
  for (int i = 0; i < 90; ++i)
    chain = Cmp(Op::kAnd, std::move(chain), Cmp(Op::kNe, P(Column::kTokenLastAppCount), I(1000 + i)));
  EXPECT_EQ(Match(chain), "t1,t2,t3,t4,t5");
  Expr ors = Cmp(Op::kEq, P(Column::kTokenLastAppCount), I(7));
  for (int i = 0; i < 90; ++i)
    ors = Cmp(Op::kOr, Cmp(Op::kEq, P(Column::kTokenLastAppCount), I(1000 + i)), std::move(ors));
  EXPECT_EQ(Match(ors), "t4");

  // The bulkiest leaves SQL-wise: a negated endswith and a negated `in` with null.
  auto alternating = [](int levels) {
    Expr e = Cmp(Op::kEq, P(Column::kTokenState), S("valid"));
    for (int i = 0; i < levels; ++i) {
      Expr leaf = i % 3 == 0 ? Not(Expr::Apply(Op::kIn, {P(Column::kTokenCountryOrRegion), S("US"), Null()}))
                             : Not(Cmp(Op::kEndsWith, P(Column::kTokenLocationName), S("zzz")));
      e = Cmp(i % 2 == 0 ? Op::kOr : Op::kAnd, std::move(leaf), std::move(e));
    }
    return e;
  };
  // Outermost: `not (countryOrRegion in (US, null)) and (<always true>)`.
  EXPECT_EQ(Match(alternating(kMaxFilterAlternations)), "t3,t5");
  EXPECT_EQ(Match(alternating(kMaxFilterAlternations + 1)), "error:InvalidArgument");
}

TEST_P(FilterTest, DepthLimit) {
  auto nested = [](int nots) {
    Expr e = Cmp(Op::kEq, P(Column::kTokenState), S("valid"));
    for (int i = 0; i < nots; ++i) e = Not(std::move(e));
    return e;
  };
  EXPECT_EQ(Match(nested(kMaxFilterDepth - 1)), "t2,t3,t5");  // odd number of nots
  EXPECT_EQ(Match(nested(kMaxFilterDepth)), "error:InvalidArgument");
  EXPECT_EQ(Match(nested(5000)), "error:InvalidArgument");  // refused, not a stack overflow
}

// --- ordering and paging --------------------------------------------------------------------

std::string Labels(const Page<VppToken>& page) {
  std::string out;
  for (const VppToken& t : page.items) out += (out.empty() ? "" : ",") + *t.apple_id;
  return out;
}

TEST_P(FilterTest, OrderByMultipleKeysAscDesc) {
  ListQuery q;
  q.order_by = {{Column::kTokenLastAppCount, true}, {Column::kTokenDisplayName, false}};
  EXPECT_EQ(Labels(*store_->ListTokens(kTenantA, q)), "t5,t2,t4,t1,t3");  // 'Beta1' < 'alpha' in BINARY
  q.order_by = {{Column::kTokenLastAppCount, true}, {Column::kTokenDisplayName, true}};
  EXPECT_EQ(Labels(*store_->ListTokens(kTenantA, q)), "t2,t5,t4,t1,t3");
  q.order_by = {{Column::kTokenExpiration, false}};
  EXPECT_EQ(Labels(*store_->ListTokens(kTenantA, q)), "t3,t1,t2,t4,t5");
  q.order_by = {{Column::kTokenDisplayName, false}};  // null first, then byte order
  EXPECT_EQ(Labels(*store_->ListTokens(kTenantA, q)), "t3,t1,t5,t4,t2");
  q.order_by = {{Column::kAppDisplayName, false}};  // a column of mobile_apps
  EXPECT_EQ(store_->ListTokens(kTenantA, q).error().code, Code::kInvalidArgument);
  q.order_by = {{static_cast<Column>(1000), true}};
  EXPECT_EQ(store_->ListTokens(kTenantA, q).error().code, Code::kInvalidArgument);
}

TEST_P(FilterTest, TiesAreBrokenById) {
  ListQuery q;
  q.order_by = {{Column::kTokenState, false}};
  Result<Page<VppToken>> page = store_->ListTokens(kTenantA, q);
  ASSERT_TRUE(page);
  // assignedToExternalMDM, expired, invalid, valid, valid — the two valid ones by id.
  ASSERT_EQ(page->items.size(), 5u);
  EXPECT_EQ(*page->items[0].apple_id, "t5");
  EXPECT_EQ(*page->items[1].apple_id, "t2");
  EXPECT_EQ(*page->items[2].apple_id, "t3");
  EXPECT_LT(page->items[3].id, page->items[4].id);
  // No order at all: by id.
  page = store_->ListTokens(kTenantA, {});
  ASSERT_TRUE(page);
  EXPECT_TRUE(std::is_sorted(page->items.begin(), page->items.end(),
                             [](const VppToken& a, const VppToken& b) { return a.id < b.id; }));
}

TEST_P(FilterTest, PagingSetsHasMore) {
  ListQuery q;
  q.order_by = {{Column::kTokenExpiration, false}};
  q.limit = 2;
  std::string seen;
  for (int skip = 0; skip < 6; skip += 2) {
    q.skip = skip;
    Result<Page<VppToken>> page = store_->ListTokens(kTenantA, q);
    ASSERT_TRUE(page);
    seen += Labels(*page) + "|";
    EXPECT_EQ(page->has_more, skip + 2 < 5) << skip;
  }
  EXPECT_EQ(seen, "t3,t1|t2,t4|t5|");
  q.skip = 0;
  q.limit = 5;
  EXPECT_FALSE(store_->ListTokens(kTenantA, q)->has_more);  // exactly fits
  q.limit = 0;
  Result<Page<VppToken>> empty = store_->ListTokens(kTenantA, q);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->items.empty());
  EXPECT_TRUE(empty->has_more);
  q.limit = 2;
  q.skip = 10;
  EXPECT_TRUE(store_->ListTokens(kTenantA, q)->items.empty());
  q.skip = -1;
  EXPECT_EQ(store_->ListTokens(kTenantA, q).error().code, Code::kInvalidArgument);
  q.skip = 0;
  q.limit = -1;
  EXPECT_EQ(store_->ListTokens(kTenantA, q).error().code, Code::kInvalidArgument);
  // Filter and paging together.
  q.limit = 1;
  q.filter = Cmp(Op::kEq, P(Column::kTokenOrganizationName), S("Contoso"));
  Result<Page<VppToken>> first = store_->ListTokens(kTenantA, q);
  ASSERT_TRUE(first);
  EXPECT_EQ(Labels(*first), "t1");
  EXPECT_TRUE(first->has_more);
}

// --- concurrency -------------------------------------------------------------------------------

TEST_P(StoreTest, ConcurrentWritersAndReaders) {
  VppToken shared = Create(kTenantA, FullToken());
  shared = *store_->UpdateToken(kTenantA, shared.id, [](VppToken& t) -> Status {
    t.last_app_count = 0;
    return {};
  });
  constexpr int kThreads = 8;
  constexpr int kCreatesPerThread = 15;
  constexpr int kIncrementsPerThread = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      const char* tenant = i % 2 == 0 ? kTenantA : kTenantB;
      for (int n = 0; n < kIncrementsPerThread; ++n) {
        if (n < kCreatesPerThread && !store_->CreateToken(tenant, FullToken())) ++failures;
        Result<VppToken> u = store_->UpdateToken(kTenantA, shared.id, [](VppToken& t) -> Status {
          ++t.last_app_count;
          return {};
        });
        if (!u) ++failures;
        ListQuery q;
        q.filter = Cmp(Op::kEq, P(Column::kTokenState), S("valid"));
        q.limit = 50;
        Result<Page<VppToken>> page = store_->ListTokens(tenant, q);
        if (!page) ++failures;
        if (!store_->GetToken(kTenantA, shared.id)) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store_->GetToken(kTenantA, shared.id)->last_app_count, kThreads * kIncrementsPerThread)
      << "every read-modify-write must be atomic";
  EXPECT_EQ(*store_->CountTokens(kTenantA, std::nullopt), 1 + kThreads / 2 * kCreatesPerThread);
  EXPECT_EQ(*store_->CountTokens(kTenantB, std::nullopt), kThreads / 2 * kCreatesPerThread);
}

TEST_P(StoreTest, WriterBusyPastTimeoutIsUnavailable) {
  options_.busy_timeout_ms = 200;
  Open();
  // Another process (here: a raw connection) holds the write lock; on PostgreSQL
  // the lock a create needs, the tenant row's.
  Raw other = db_->raw();
  other.Exec(pg() ? "BEGIN; SELECT * FROM tenants FOR UPDATE" : "BEGIN IMMEDIATE");
  auto start = std::chrono::steady_clock::now();
  Result<VppToken> r = store_->CreateToken(kTenantA, FullToken());
  auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUnavailable);
  EXPECT_GE(waited, std::chrono::milliseconds(150));
  EXPECT_LT(waited, std::chrono::seconds(3));
  // Reads go on meanwhile (WAL), and writes resume once the lock is gone.
  EXPECT_TRUE(store_->ListTenants());
  other.Exec("ROLLBACK");
  EXPECT_TRUE(store_->CreateToken(kTenantA, FullToken()));
}

}  // namespace
}  // namespace vppd::store
