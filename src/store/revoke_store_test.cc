// Licence revokes by app, user or device (app_revokes) on SQLite and
// (VPPD_TEST_DATABASE_URL) PostgreSQL: recorded all or none, worked through in
// the order asked, ended, trimmed per app, gone with their token.
#include <optional>

#include <gtest/gtest.h>

#include "base/testing.h"
#include "store/store.h"
#include "store/store_testing.h"

namespace vppd::store {
namespace {

using testing::Backend;

class RevokeStoreTest : public testing::StoreTest {
 protected:
  RevokeStoreTest() : StoreTest("vppd-revoke-store") {}

  void SetUp() override {
    StoreTest::SetUp();
    if (SetUpStopped()) return;
    token_ = Token(kTenantA);
  }

  AppRevoke Revoke(const std::string& app, const std::string& action, const std::string& who = "") {
    AppRevoke r;
    r.token_id = token_;
    r.app_id = app;
    r.adam_id = "100";
    r.pricing_param = "STDQ";
    r.action_name = action;
    if (action == "revokeUserLicense") r.user_id = who;
    if (action == "revokeDeviceLicense") {
      r.managed_device_id = who;
      r.serial_number = "SN-" + who;
    }
    r.notify_managed_devices = true;
    return r;
  }

  std::string token_;
};
INSTANTIATE_TEST_SUITE_P(Store, RevokeStoreTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

TEST_P(RevokeStoreTest, RecordedInOrderWorkedThroughAndEnded) {
  auto added = store_->AddAppRevokes(
      kTenantA, {Revoke("app-1", "revokeUserLicense", "u1"), Revoke("app-1", "revokeDeviceLicense", "d1")}, 20);
  ASSERT_TRUE(added) << added.error().message;
  ASSERT_EQ(added->size(), 2u);
  EXPECT_FALSE((*added)[0].id.empty());
  EXPECT_LT((*added)[0].seq, (*added)[1].seq);
  EXPECT_EQ((*added)[0].start, kT0);
  clock_.Advance(std::chrono::seconds(1));
  auto later = store_->AddAppRevokes(kTenantA, {Revoke("app-2", "revokeAllLicenses")}, 20);
  ASSERT_TRUE(later);

  auto open = store_->OpenAppRevokes(kTenantA, token_);
  ASSERT_TRUE(open) << open.error().message;
  ASSERT_EQ(open->size(), 3u);
  EXPECT_EQ((*open)[0], (*added)[0]);  // every field as written
  EXPECT_EQ((*open)[1].serial_number, "SN-d1");
  EXPECT_EQ((*open)[2].action_name, "revokeAllLicenses");

  AppRevoke done = (*open)[0];
  done.action_state = "done";
  done.total_licenses = 1;
  clock_.Advance(std::chrono::seconds(5));
  ASSERT_TRUE(store_->UpdateAppRevoke(kTenantA, done));
  AppRevoke failed = (*open)[1];
  failed.action_state = "failed";
  failed.failure_reason = "appleFailure";
  failed.total_licenses = failed.failed_licenses = 1;
  failed.error = "Apple error 9610";
  ASSERT_TRUE(store_->UpdateAppRevoke(kTenantA, failed));

  open = store_->OpenAppRevokes(kTenantA, token_);
  ASSERT_TRUE(open);
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].app_id, "app-2");

  auto of = store_->AppRevokesOf(kTenantA, {"app-2", "app-1", "nope"});
  ASSERT_TRUE(of) << of.error().message;
  ASSERT_EQ(of->size(), 3u);
  EXPECT_EQ((*of)[0].app_id, "app-1");
  EXPECT_EQ((*of)[0].action_state, "done");
  EXPECT_EQ((*of)[0].last_updated, kT0 + 6 * kSecond);
  EXPECT_EQ((*of)[1].failure_reason, "appleFailure");
  EXPECT_EQ((*of)[1].failed_licenses, 1);
  EXPECT_EQ((*of)[1].error, "Apple error 9610");
  EXPECT_EQ((*of)[2].app_id, "app-2");

  // Another tenant sees none of it.
  auto other = store_->AppRevokesOf(kTenantB, {"app-1"});
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->empty());
  AppRevoke foreign = done;
  EXPECT_EQ(store_->UpdateAppRevoke(kTenantB, foreign).error().code, Code::kNotFound);
}

TEST_P(RevokeStoreTest, AllOrNothingWhenATokenIsMissing) {
  AppRevoke stray = Revoke("app-1", "revokeAllLicenses");
  stray.token_id = "no-such-token";
  auto added = store_->AddAppRevokes(kTenantA, {Revoke("app-1", "revokeAllLicenses"), stray}, 20);
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().code, Code::kNotFound);
  auto open = store_->OpenAppRevokes(kTenantA, token_);
  ASSERT_TRUE(open);
  EXPECT_TRUE(open->empty());
  // A token of another tenant is not this tenant's either.
  AppRevoke foreign = Revoke("app-1", "revokeAllLicenses");
  foreign.token_id = Token(kTenantB);
  EXPECT_EQ(store_->AddAppRevokes(kTenantA, {foreign}, 20).error().code, Code::kNotFound);
}

TEST_P(RevokeStoreTest, KeepsTheNewestEndedEntriesPerApp) {
  for (int i = 0; i < 5; ++i) {
    auto added = store_->AddAppRevokes(kTenantA, {Revoke("app-1", "revokeUserLicense", "u" + std::to_string(i))}, 3);
    ASSERT_TRUE(added) << added.error().message;
    AppRevoke r = (*added)[0];
    r.action_state = "done";
    ASSERT_TRUE(store_->UpdateAppRevoke(kTenantA, r));
  }
  auto pending = store_->AddAppRevokes(kTenantA, {Revoke("app-1", "revokeAllLicenses")}, 3);
  ASSERT_TRUE(pending);
  auto of = store_->AppRevokesOf(kTenantA, {"app-1"});
  ASSERT_TRUE(of);
  ASSERT_EQ(of->size(), 4u);  // the 3 newest ended, and the one not ended yet
  EXPECT_EQ((*of)[0].user_id, "u2");
  EXPECT_EQ((*of)[2].user_id, "u4");
  EXPECT_EQ((*of)[3].action_state, "pending");
}

TEST_P(RevokeStoreTest, ADevicesRevokesAreFoundByItsId) {
  AppRevoke a = Revoke("app-1", "revokeAppleVppLicenses"), b = Revoke("app-2", "revokeAppleVppLicenses");
  a.managed_device_id = b.managed_device_id = "m-1";
  AppRevoke other_device = Revoke("app-1", "revokeDeviceLicense", "m-1");  // not the device's own action
  ASSERT_TRUE(store_->AddAppRevokes(kTenantA, {a, b, other_device}, 20));
  auto found = store_->AppRevokesOfDevice(kTenantA, "m-1");
  ASSERT_TRUE(found) << found.error().message;
  ASSERT_EQ(found->size(), 2u);
  EXPECT_EQ((*found)[0].app_id, "app-1");
  EXPECT_EQ((*found)[1].app_id, "app-2");
  EXPECT_EQ((*found)[0].start, (*found)[1].start);
  EXPECT_TRUE(store_->AppRevokesOfDevice(kTenantB, "m-1")->empty());
}

TEST_P(RevokeStoreTest, GoWithTheirToken) {
  ASSERT_TRUE(store_->AddAppRevokes(kTenantA, {Revoke("app-1", "revokeAllLicenses")}, 20));
  ASSERT_TRUE(store_->DeleteToken(kTenantA, token_));
  auto of = store_->AppRevokesOf(kTenantA, {"app-1"});
  ASSERT_TRUE(of);
  EXPECT_TRUE(of->empty());
}

// What `vppd migrate-store` copies: every revoke of a token, open and ended, in the order asked.
TEST_P(RevokeStoreTest, ListedPerTokenOpenAndEndedInTheOrderAsked) {
  auto first = store_->AddAppRevokes(kTenantA, {Revoke("app-2", "revokeAllLicenses")}, 20);
  ASSERT_TRUE(first);
  AppRevoke ended = (*first)[0];
  ended.action_state = "done";
  ASSERT_TRUE(store_->UpdateAppRevoke(kTenantA, ended));
  AppRevoke elsewhere = Revoke("app-9", "revokeAllLicenses");
  elsewhere.token_id = Token(kTenantA);
  ASSERT_TRUE(store_->AddAppRevokes(kTenantA, {Revoke("app-1", "revokeUserLicense", "u1"), elsewhere}, 20));
  auto listed = store_->ListAppRevokes(kTenantA, token_);
  ASSERT_TRUE(listed) << listed.error().message;
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].app_id, "app-2");
  EXPECT_EQ((*listed)[0].action_state, "done");
  EXPECT_EQ((*listed)[1].app_id, "app-1");
  EXPECT_EQ((*listed)[1].action_state, "pending");
  EXPECT_LT((*listed)[0].seq, (*listed)[1].seq);
  EXPECT_TRUE(store_->ListAppRevokes(kTenantB, token_)->empty()) << "another tenant's token of that id has none";
  EXPECT_TRUE(store_->ListAppRevokes(kTenantA, "no-such-token")->empty());
}

}  // namespace
}  // namespace vppd::store
