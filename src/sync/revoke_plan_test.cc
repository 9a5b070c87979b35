// What the revokeAppLicenses job decides for one revoke (revoke_plan.h): who is
// disassociated, what Apple's status says failed, which of vppd's rows are freed.
#include "sync/revoke_plan.h"

#include <gtest/gtest.h>

namespace vppd::sync {
namespace {

store::AppRevoke Revoke(const std::string& action) {
  store::AppRevoke r;
  r.action_name = action;
  r.adam_id = "100";
  r.pricing_param = "STDQ";
  return r;
}

store::LicenseAssignment Held(const std::string& adam, const std::string& user, const std::string& serial) {
  return {adam, "STDQ", user, serial};
}

store::DeviceLicense Row(const std::string& serial, const std::string& state, const std::string& adam = "100") {
  store::DeviceLicense r;
  r.adam_id = adam;
  r.pricing_param = "STDQ";
  r.serial_number = serial;
  r.state = state;
  r.cause = "assigned";
  r.event_id = "e-old";
  r.updated = 5;
  return r;
}

store::UserLicense UserRow(const std::string& user, const std::string& state, const std::string& adam = "100") {
  store::UserLicense r;
  r.adam_id = adam;
  r.pricing_param = "STDQ";
  r.client_user_id = user;
  r.state = state;
  r.cause = "assigned";
  r.event_id = "e-old";
  r.updated = 5;
  return r;
}

TEST(RevokeTargetsOf, AUserRevokeNamesTheUserOnly) {
  store::AppRevoke r = Revoke(kRevokeUserLicenseAction);
  r.user_id = "u-1";
  const RevokeTargets t = RevokeTargetsOf(r, {Held("100", "u-2", ""), Held("100", "", "S1")}, {Row("S1", "granted")},
                                          {UserRow("u-3", "granted")}, {});
  EXPECT_EQ(t.client_user_ids, std::vector<std::string>{"u-1"});
  EXPECT_TRUE(t.serial_numbers.empty());
}

TEST(RevokeTargetsOf, ADeviceRevokeNamesTheSerialAskedFor) {
  for (const char* action : {kRevokeDeviceLicenseAction, kRevokeAppleVppLicensesAction}) {
    store::AppRevoke r = Revoke(action);
    r.managed_device_id = "m-1";
    r.serial_number = "S9";
    const RevokeTargets t =
        RevokeTargetsOf(r, {Held("100", "", "S1")}, {Row("S1", "granted")}, {UserRow("u-3", "granted")}, {});
    EXPECT_TRUE(t.client_user_ids.empty()) << action;
    EXPECT_EQ(t.serial_numbers, std::vector<std::string>{"S9"}) << action;
  }
}

TEST(RevokeTargetsOf, RevokeAllTakesTheSyncsHoldersAndVppdsGrantsOfThatAssetOnly) {
  store::AppRevoke r = Revoke(kRevokeAllLicensesAction);
  const std::vector<store::LicenseAssignment> at_sync = {Held("100", "u-1", ""), Held("100", "", "S2"),
                                                         Held("200", "", "S3"), Held("100", "u-1", "")};
  const std::vector<store::DeviceLicense> rows = {Row("S1", "granted"),        Row("S4", "pending"),
                                                  Row("S5", "reclaimPending"), Row("S6", "released"),
                                                  Row("S7", "failed"),         Row("S8", "granted", "200")};
  // People vppd granted the asset since the sync (u-2, u-3, u-4), not those it released or could not grant.
  const std::vector<store::UserLicense> user_rows = {UserRow("u-1", "granted"),       UserRow("u-2", "granted"),
                                                     UserRow("u-3", "pending"),       UserRow("u-4", "reclaimPending"),
                                                     UserRow("u-5", "released"),      UserRow("u-6", "failed"),
                                                     UserRow("u-7", "granted", "200")};
  const std::vector<store::LicenseAssignment> now = {Held("100", "", "X1"), Held("100", "u-9", "")};
  RevokeTargets t = RevokeTargetsOf(r, at_sync, rows, user_rows, now);
  EXPECT_EQ(t.client_user_ids, (std::vector<std::string>{"u-1", "u-2", "u-3", "u-4"}));
  EXPECT_EQ(t.serial_numbers, (std::vector<std::string>{"S1", "S2", "S4", "S5"}));
  // Untracked: also what Apple holds now that the sync did not see.
  r.revoke_untracked = true;
  t = RevokeTargetsOf(r, at_sync, rows, user_rows, now);
  EXPECT_EQ(t.client_user_ids, (std::vector<std::string>{"u-1", "u-2", "u-3", "u-4", "u-9"}));
  EXPECT_EQ(t.serial_numbers, (std::vector<std::string>{"S1", "S2", "S4", "S5", "X1"}));
}

TEST(FailuresOf, NamedFailuresCountThoseAndNotAssociatedIsNoFailure) {
  apple::EventStatus s;
  s.event_status = "FAILED";
  s.num_requested = 4;
  s.num_completed = 1;
  apple::EventFailure named;
  named.error_number = 9610;
  named.error_message = "License not found";
  named.serial_numbers = {"S1", "S2"};
  apple::EventFailure gone;
  gone.error_number = 9619;
  gone.serial_numbers = {"S3"};
  s.failures = {gone, named};
  apple::EventFailure person;
  person.error_number = 9610;
  person.error_message = "License not found";
  person.client_user_ids = {"u-1"};
  s.failures.push_back(person);
  const RevokeFailures f = FailuresOf(s, {"S1", "S2", "S3", "S4"}, {"u-1", "u-2"});
  EXPECT_EQ(f.count, 3);
  EXPECT_EQ(f.serials, (std::set<std::string>{"S1", "S2"}));
  EXPECT_EQ(f.client_user_ids, (std::set<std::string>{"u-1"}));
  EXPECT_EQ(f.first_error, "Apple error 9610: License not found");
}

TEST(FailuresOf, AnUnnamedFailureWithNothingCompletedFailsEveryTarget) {
  apple::EventStatus s;
  s.event_status = "FAILED";
  s.num_requested = 2;
  s.num_completed = 0;
  apple::EventFailure whole;
  whole.error_number = 9632;
  whole.error_message = "boom";
  s.failures = {whole};
  const RevokeFailures f = FailuresOf(s, {"S1", "S2"}, {});
  EXPECT_EQ(f.count, 2);
  EXPECT_EQ(f.serials, (std::set<std::string>{"S1", "S2"}));
  EXPECT_TRUE(f.client_user_ids.empty());
  // A disassociate of people that failed as a whole fails each of them.
  const RevokeFailures people = FailuresOf(s, {}, {"u-1", "u-2"});
  EXPECT_EQ(people.client_user_ids, (std::set<std::string>{"u-1", "u-2"}));
  EXPECT_TRUE(people.serials.empty());
  apple::EventStatus ok;
  ok.event_status = "COMPLETE";
  ok.num_requested = ok.num_completed = 2;
  EXPECT_EQ(FailuresOf(ok, {"S1", "S2"}, {}).count, 0);
}

TEST(ReleasedRows, FreesWhatWasTakenBackButNotFailuresOrAssociatesInFlight) {
  const std::vector<store::DeviceLicense> rows = {Row("S1", "granted"), Row("S2", "granted"), Row("S3", "pending"),
                                                  Row("S4", "reclaimPending"), Row("S5", "granted")};
  // S6: a licence vppd never granted (no row), taken back too.
  const auto released =
      ReleasedRows(rows, rows[0].adam_id, rows[0].pricing_param, {"S1", "S2", "S3", "S4", "S6"}, {"S2"}, "e-new");
  ASSERT_EQ(released.size(), 3u);
  EXPECT_EQ(released[0].serial_number, "S1");
  EXPECT_EQ(released[0].state, "released");
  EXPECT_EQ(released[0].cause, "revoked");
  EXPECT_EQ(released[0].event_id, "e-new");
  EXPECT_EQ(released[0].updated, 0);
  EXPECT_EQ(released[1].serial_number, "S4");
  EXPECT_EQ(released[2].serial_number, "S6");
  EXPECT_EQ(released[2].state, "released");
  EXPECT_EQ(released[2].adam_id, rows[0].adam_id);
  EXPECT_EQ(released[2].pricing_param, rows[0].pricing_param);
}

TEST(ReleasedRows, FreesWhatWasTakenBackFromPeopleToo) {
  const std::vector<store::UserLicense> rows = {UserRow("u-1", "granted"), UserRow("u-2", "granted"),
                                                UserRow("u-3", "pending"), UserRow("u-4", "failed"),
                                                UserRow("u-5", "granted", "200")};
  // u-6: held at the last sync, never granted by vppd; u-5's row is of another asset.
  const auto released = ReleasedRows(rows, "100", "STDQ", {"u-1", "u-2", "u-3", "u-4", "u-5", "u-6"}, {"u-2"}, "e-new");
  ASSERT_EQ(released.size(), 3u);
  EXPECT_EQ(released[0].client_user_id, "u-1");
  EXPECT_EQ(released[0].state, "released");
  EXPECT_EQ(released[0].cause, "revoked");
  EXPECT_EQ(released[0].event_id, "e-new");
  EXPECT_EQ(released[0].updated, 0);
  EXPECT_EQ(released[1].client_user_id, "u-5");
  EXPECT_EQ(released[1].adam_id, "100") << "a row of its own for this asset, not the other asset's";
  EXPECT_EQ(released[2].client_user_id, "u-6");
  EXPECT_EQ(released[2].pricing_param, "STDQ");
}

TEST(FailureReasonOf, AnExpiredTokenIsNamedAsGraphNamesIt) {
  EXPECT_EQ(FailureReasonOf("expired"), "expiredVppToken");
  EXPECT_EQ(FailureReasonOf("invalid"), "appleFailure");
}

}  // namespace
}  // namespace vppd::sync
