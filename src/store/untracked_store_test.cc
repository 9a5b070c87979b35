// The untracked-licences report (untracked_sql.cc): Apple's holders of an app at
// the last sync that vppd did not grant, listed in pages and counted per app; on
// SQLite and (VPPD_TEST_DATABASE_URL) PostgreSQL.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "base/testing.h"
#include "store/store.h"
#include "store/store_testing.h"

namespace vppd::store {
namespace {

using namespace std::chrono_literals;
using testing::Backend;

LicenseAssignment Device(const std::string& adam, const std::string& serial) { return {adam, "STDQ", "", serial}; }
LicenseAssignment User(const std::string& adam, const std::string& id) { return {adam, "STDQ", id, ""}; }

// "S:serial" or "U:clientUserId", for comparing lists.
std::vector<std::string> Keys(const std::vector<LicenseAssignment>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r.serial_number.empty() ? "U:" + r.client_user_id : "S:" + r.serial_number);
  return out;
}

class UntrackedStoreTest : public testing::StoreTest {
 protected:
  UntrackedStoreTest() : StoreTest("vppd-untracked-store") {}

  void SetUp() override {
    StoreTest::SetUp();
    if (SetUpStopped()) return;
    token_ = Token(kTenantA);
  }

  static MobileApp App(const std::string& token, const std::string& adam, const std::string& product = "App") {
    MobileApp a;
    a.id = "app-" + adam;
    a.token_id = token;
    a.platform = "iOS";
    a.adam_id = adam;
    a.pricing_param = "STDQ";
    a.product_type = product;
    a.display_name = product + " " + adam;
    a.total_licenses = 1000;
    return a;
  }

  // A full sync of the token: `apps`, and Apple's holders `rows`, staged in
  // `calls` calls (SQLite then keeps an app as that many runs of chunks).
  void Sync(const std::string& tenant, const std::string& token, std::vector<MobileApp> apps,
            const std::vector<LicenseAssignment>& rows, int calls = 1) {
    EnqueueOptions o;
    ASSERT_TRUE(store_->EnqueueJob(tenant, token, o, [](VppToken&) -> Status { return {}; }));
    Result<std::optional<SyncJob>> job = store_->ClaimJob("w", clock_.Now(), 60s);
    ASSERT_TRUE(job && *job);
    for (int c = 0; c < calls; ++c) {
      std::vector<LicenseAssignment> part;
      for (std::size_t i = c; i < rows.size(); i += calls) part.push_back(rows[i]);
      ASSERT_TRUE(store_->StageAssignments(**job, part));
    }
    SyncSnapshot snap;
    snap.apps = std::move(apps);
    snap.assignments = SyncSnapshot::Assignments::kReplaceWithStaged;
    ASSERT_TRUE(store_->FinishJob(**job, snap, [](VppToken&) -> Status { return {}; }));
  }

  void Granted(const std::string& adam, const std::string& serial, const std::string& state = "granted") {
    DeviceLicense r;
    r.adam_id = adam;
    r.pricing_param = "STDQ";
    r.serial_number = serial;
    r.state = state;
    r.cause = "assigned";
    ASSERT_TRUE(store_->PutDeviceLicenses(kTenantA, token_, {r}, {}));
  }
  void GrantedToUser(const std::string& adam, const std::string& id, const std::string& state = "granted") {
    UserLicense r;
    r.adam_id = adam;
    r.pricing_param = "STDQ";
    r.client_user_id = id;
    r.state = state;
    r.cause = "assigned";
    ASSERT_TRUE(store_->PutUserLicenses(kTenantA, token_, {r}, {}));
  }

  // Every page of the app's report, `limit` a page.
  std::vector<LicenseAssignment> AllPages(const std::string& app_id, std::int64_t limit, int* pages = nullptr) {
    std::vector<LicenseAssignment> out;
    std::optional<std::int64_t> cursor = 0;
    int n = 0;
    while (cursor && n < 1000) {
      Result<Store::UntrackedPage> page = store_->ListUntrackedLicenses(kTenantA, app_id, *cursor, limit);
      EXPECT_TRUE(page) << page.error().message;
      if (!page) break;
      EXPECT_LE(static_cast<std::int64_t>(page->items.size()), limit);
      out.insert(out.end(), page->items.begin(), page->items.end());
      cursor = page->next;
      ++n;
    }
    if (pages != nullptr) *pages = n;
    return out;
  }

  std::int64_t Count(const std::string& app_id) {
    auto counts = store_->CountUntrackedLicenses(kTenantA, {app_id});
    EXPECT_TRUE(counts) << counts.error().message;
    return counts && counts->contains(app_id) ? counts->at(app_id) : -1;
  }

  std::string token_;
};
INSTANTIATE_TEST_SUITE_P(Store, UntrackedStoreTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

TEST_P(UntrackedStoreTest, UntrackedAreApplesHoldersWithoutALicenceRowOfVppdThatDidNotFail) {
  Sync(kTenantA, token_, {App(token_, "100"), App(token_, "200")},
       {Device("100", "S1"), Device("100", "S2"), Device("100", "S3"), Device("100", "S4"), Device("100", "S5"),
        User("100", "u1"), User("100", "u2"), User("100", "u3"), Device("200", "S9")});
  Granted("100", "S1");                    // vppd's
  Granted("100", "S2", "reclaimPending");  // vppd's, being taken back
  Granted("100", "S3", "released");        // vppd's, taken back after the sync
  Granted("100", "S4", "failed");          // vppd failed; someone else holds it
  Granted("100", "S7", "pending");         // vppd's, not at Apple yet: not a holder
  Granted("200", "S5");                    // another app's licence on S5
  GrantedToUser("100", "u2");
  GrantedToUser("100", "u3", "failed");

  Result<Store::UntrackedPage> page = store_->ListUntrackedLicenses(kTenantA, "app-100", 0, 100);
  ASSERT_TRUE(page) << page.error().message;
  // Graph's order: users (no serial number) first, then devices by serial.
  EXPECT_EQ(Keys(page->items), (std::vector<std::string>{"U:u1", "U:u3", "S:S4", "S:S5"}));
  EXPECT_FALSE(page->next);
  for (const auto& a : page->items) {
    EXPECT_EQ(a.adam_id, "100");
    EXPECT_EQ(a.pricing_param, "STDQ");
  }
  EXPECT_EQ(Count("app-100"), 4);
  // App 200: vppd granted nothing of it (its row is for S5, not S9).
  EXPECT_EQ(Keys(AllPages("app-200", 10)), std::vector<std::string>{"S:S9"});
  EXPECT_EQ(Count("app-200"), 1);
}

TEST_P(UntrackedStoreTest, PagesFollowTheCursorToTheEndWithoutRepeatsOrGaps) {
  std::vector<LicenseAssignment> rows;
  std::vector<std::string> expected;
  for (int i = 0; i < 30; ++i) {
    rows.push_back(User("100", fmt::format("user-{:02}", i)));
    if (i % 3 != 0) expected.push_back(fmt::format("U:user-{:02}", i));
  }
  for (int i = 0; i < 40; ++i) {
    rows.push_back(Device("100", fmt::format("SER{:03}", i)));
    if (i % 4 != 0) expected.push_back(fmt::format("S:SER{:03}", i));
  }
  Sync(kTenantA, token_, {App(token_, "100")}, rows, /*calls=*/3);  // SQLite: three runs to merge
  for (int i = 0; i < 30; i += 3) GrantedToUser("100", fmt::format("user-{:02}", i));
  for (int i = 0; i < 40; i += 4) Granted("100", fmt::format("SER{:03}", i));

  for (std::int64_t limit : {1, 7, 50, 100}) {
    int pages = 0;
    EXPECT_EQ(Keys(AllPages("app-100", limit, &pages)), expected) << "limit " << limit;
    // Exactly as many pages as the items need: the last page knows it is last.
    EXPECT_EQ(pages, (static_cast<int>(expected.size()) + limit - 1) / limit) << "limit " << limit;
  }
  EXPECT_EQ(Count("app-100"), static_cast<std::int64_t>(expected.size()));

  // A cursor past the end: an empty last page.
  Result<Store::UntrackedPage> past = store_->ListUntrackedLicenses(kTenantA, "app-100", 1000, 10);
  ASSERT_TRUE(past);
  EXPECT_TRUE(past->items.empty());
  EXPECT_FALSE(past->next);
}

TEST_P(UntrackedStoreTest, CountsLeaveOutUnknownAppsAndReadEachTenantOnly) {
  Sync(kTenantA, token_, {App(token_, "100"), App(token_, "300")}, {Device("100", "S1"), User("100", "u1")});
  const std::string other = Token(kTenantB);
  MobileApp theirs = App(other, "400");
  theirs.id = "app-theirs";
  Sync(kTenantB, other, {theirs}, {Device("400", "S1")});

  auto counts = store_->CountUntrackedLicenses(kTenantA, {"app-100", "app-300", "app-none", "app-theirs"});
  ASSERT_TRUE(counts) << counts.error().message;
  EXPECT_EQ(*counts, (std::map<std::string, std::int64_t>{{"app-100", 2}, {"app-300", 0}}));

  // Another tenant's app is not found, whatever its id.
  Result<Store::UntrackedPage> page = store_->ListUntrackedLicenses(kTenantA, "app-theirs", 0, 10);
  ASSERT_FALSE(page);
  EXPECT_EQ(page.error().code, Code::kNotFound);
  Result<Store::UntrackedPage> own = store_->ListUntrackedLicenses(kTenantB, "app-theirs", 0, 10);
  ASSERT_TRUE(own) << own.error().message;
  EXPECT_EQ(Keys(own->items), std::vector<std::string>{"S:S1"});
}

TEST_P(UntrackedStoreTest, ATokenNeverSyncedHasNoneAndBadPagingIsRefused) {
  EnqueueOptions o;
  ASSERT_TRUE(store_->EnqueueJob(kTenantA, token_, o, [](VppToken&) -> Status { return {}; }));
  Result<std::optional<SyncJob>> job = store_->ClaimJob("w", clock_.Now(), 60s);
  ASSERT_TRUE(job && *job);
  SyncSnapshot snap;
  snap.apps = {App(token_, "100")};  // apps, but no assignments walked (syncLicenseCounts)
  ASSERT_TRUE(store_->FinishJob(**job, snap, [](VppToken&) -> Status { return {}; }));

  Result<Store::UntrackedPage> page = store_->ListUntrackedLicenses(kTenantA, "app-100", 0, 10);
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_TRUE(page->items.empty());
  EXPECT_FALSE(page->next);
  EXPECT_EQ(Count("app-100"), 0);

  EXPECT_EQ(store_->ListUntrackedLicenses(kTenantA, "app-100", -1, 10).error().code, Code::kInvalidArgument);
  EXPECT_EQ(store_->ListUntrackedLicenses(kTenantA, "app-100", 0, 0).error().code, Code::kInvalidArgument);
  EXPECT_EQ(store_->ListUntrackedLicenses(kTenantA, "nope", 0, 10).error().code, Code::kNotFound);
}

TEST_P(UntrackedStoreTest, APageStopsAtTheScanBudgetAndTheNextGoesOnFromThere) {
  // More holders than one call reads, all but the last two vppd's own: the first
  // page reads its budget, finds nothing, and says where to go on.
  const std::int64_t n = Store::kUntrackedScanRows + 3;
  std::vector<LicenseAssignment> rows;
  for (std::int64_t i = 0; i < n; ++i) rows.push_back(Device("100", fmt::format("D{:07}", i)));
  Sync(kTenantA, token_, {App(token_, "100")}, rows, /*calls=*/2);
  // vppd's rows for D0000000 .. D(n-3), written in one statement of the database's own.
  const std::string serial = db_->pg() ? "'D' || lpad(i::text, 7, '0')" : "printf('D%07d', i)";
  db_->raw().Exec(fmt::format(
      "INSERT INTO device_licenses (tenant_id, token_id, adam_id, pricing_param, serial_number, state, error_code, "
      "error_message, event_id, cause, updated) "
      "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) "
      "SELECT '{}', '{}', '100', 'STDQ', {}, 'granted', '', '', '', 'assigned', 0 FROM n",
      n - 3, kTenantA, token_, serial));
  ASSERT_EQ(db_->raw().Int(fmt::format("SELECT count(*) FROM device_licenses WHERE token_id = '{}' AND state = "
                                       "'granted'",
                                       token_)),
            n - 2);

  Result<Store::UntrackedPage> first = store_->ListUntrackedLicenses(kTenantA, "app-100", 0, 10);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->items.empty());
  ASSERT_TRUE(first->next);
  EXPECT_EQ(*first->next, Store::kUntrackedScanRows);
  Result<Store::UntrackedPage> second = store_->ListUntrackedLicenses(kTenantA, "app-100", *first->next, 10);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(Keys(second->items),
            (std::vector<std::string>{fmt::format("S:D{:07}", n - 2), fmt::format("S:D{:07}", n - 1)}));
  EXPECT_FALSE(second->next);
  EXPECT_EQ(Count("app-100"), 2);
}

TEST_P(UntrackedStoreTest, ABooksHoldersAreReportedAsAnAppsAre) {
  Sync(kTenantA, token_, {App(token_, "100"), App(token_, "500", "Book")},
       {User("500", "u1"), User("500", "u2"), Device("100", "S1")});
  GrantedToUser("500", "u2");
  EXPECT_EQ(Keys(AllPages("app-500", 10)), std::vector<std::string>{"U:u1"});
  EXPECT_EQ(Count("app-500"), 1);
}

}  // namespace
}  // namespace vppd::store
