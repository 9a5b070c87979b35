// PlanAsset: every rule of the reconcile job's decisions for one asset.
#include "sync/reconcile_plan.h"

#include <set>

#include <gtest/gtest.h>

namespace vppd::sync {
namespace {

using Serials = std::vector<std::string>;

store::DeviceLicense Row(const std::string& serial, const std::string& state, Timestamp updated = 100,
                         const std::string& code = "") {
  store::DeviceLicense r;
  r.adam_id = "1";
  r.pricing_param = "STDQ";
  r.serial_number = serial;
  r.state = state;
  r.error_code = code;
  r.updated = updated;
  return r;
}

AssetInput Input(Serials wanted, std::int64_t total, std::int64_t used) {
  AssetInput in;
  in.adam_id = "1";
  in.pricing_param = "STDQ";
  in.wanted = std::move(wanted);
  in.assigned = true;
  in.total = total;
  in.used = used;
  in.last_sync = 50;
  return in;
}

void Add(AssetInput& in, store::DeviceLicense row) { in.rows[row.serial_number] = std::move(row); }

Serials Sorted(Serials s) {
  std::sort(s.begin(), s.end());
  return s;
}

TEST(PlanAsset, ServesWantedDevicesInOrderUpToTheAvailableCount) {
  AssetInput in = Input({"C", "A", "B", "D"}, 10, 8);
  AssetPlan plan = PlanAsset(in, {}, false);
  EXPECT_EQ(plan.associate, (Serials{"C", "A"})) << "earliest membership first";
  EXPECT_EQ(plan.not_enough, 2);
  ASSERT_EQ(plan.put.size(), 2u);
  EXPECT_EQ(plan.put[0].serial_number, "B");
  EXPECT_EQ(plan.put[0].state, "failed");
  EXPECT_EQ(plan.put[0].error_code, "9709");
  EXPECT_EQ(plan.put[0].error_message, "not enough licences");
}

TEST(PlanAsset, NothingToDoTwiceInARow) {
  AssetInput in = Input({"A", "B", "C"}, 2, 0);
  Add(in, Row("A", "granted"));
  Add(in, Row("B", "pending"));
  Add(in, Row("C", "failed", 100, "9709"));
  AssetPlan plan = PlanAsset(in, {}, false);
  EXPECT_TRUE(plan.Empty());
  EXPECT_TRUE(plan.put.empty()) << "the failed row is already what it should be";
  EXPECT_TRUE(plan.remove.empty());
  EXPECT_EQ(plan.holding, 2);
  EXPECT_EQ(plan.not_enough, 1);
}

TEST(PlanAsset, CountsWhatVppdDidSinceTheLastSync) {
  // Apple's counts at the sync: 3 of 4 used, by X, Y and R. Since then vppd
  // granted A (not in the sync) and released R (still in it).
  AssetInput in = Input({"A", "B", "C"}, 4, 3);
  in.held_at_sync = {"X", "Y", "R"};
  Add(in, Row("A", "granted", 60));
  Add(in, Row("R", "released", 60));
  AssetPlan plan = PlanAsset(in, {}, false);
  EXPECT_EQ(plan.available, 1) << "4 - 3 - 1 (A) + 1 (R)";
  EXPECT_EQ(plan.associate, (Serials{"B"}));
  EXPECT_EQ(plan.untracked, 2) << "X and Y: never vppd's, nobody wants them";
}

TEST(PlanAsset, LicencesBoughtServeTheDevicesThatFailed) {
  AssetInput in = Input({"A", "B"}, 5, 1);
  in.held_at_sync = {"A"};
  Add(in, Row("A", "granted", 10));
  Add(in, Row("B", "failed", 10, "9709"));
  AssetPlan plan = PlanAsset(in, {}, false);
  EXPECT_EQ(plan.associate, (Serials{"B"}));
  EXPECT_TRUE(plan.put.empty());
}

TEST(PlanAsset, AnUntrackedHolderIsLeftAloneWhetherWantedOrNot) {
  AssetInput in = Input({"A"}, 10, 2);
  in.held_at_sync = {"A", "Z"};
  AssetPlan plan = PlanAsset(in, {}, false);
  EXPECT_TRUE(plan.Empty()) << "A holds one already; Z is not vppd's to take";
  EXPECT_EQ(plan.holding, 1);
  EXPECT_EQ(plan.untracked, 1);
}

TEST(PlanAsset, ADeviceThatLeftScopeIsReclaimedWithinTheCap) {
  AssetInput in = Input({}, 100, 0);
  for (int i = 0; i < 60; ++i) {
    const std::string serial = "S" + std::to_string(100 + i);
    if (i < 40) in.wanted.push_back(serial);
    Add(in, Row(serial, "granted", 100));
  }
  // 20 left scope; the cap is max(10, 0.2 × 60) = 12.
  AssetPlan plan = PlanAsset(in, {}, false);
  EXPECT_EQ(plan.reclaim_directory.size(), 12u);
  EXPECT_EQ(plan.reclaim_directory.front(), "S140");
  EXPECT_EQ(plan.held_back, 8);
  EXPECT_TRUE(plan.reclaim_explicit.empty());
  // Forced: all of them.
  AssetPlan forced = PlanAsset(in, {}, true);
  EXPECT_EQ(forced.reclaim_directory.size(), 20u);
  EXPECT_EQ(forced.held_back, 0);
  // A setting lifts it too.
  AssetPlan lifted = PlanAsset(in, {.max_reclaim_fraction = 1.0}, false);
  EXPECT_EQ(lifted.reclaim_directory.size(), 20u);
}

TEST(PlanAsset, ReclaimsSinceTheLastSyncUseUpTheCap) {
  AssetInput in = Input({}, 100, 0);
  for (int i = 0; i < 30; ++i) {
    store::DeviceLicense r = Row("S" + std::to_string(100 + i), i < 10 ? "released" : "granted", 100);
    if (i < 10) r.cause = "leftScope";
    if (i >= 20) in.wanted.push_back(r.serial_number);
    Add(in, r);
  }
  // 10 of max(10, 0.2 × 30) already reclaimed since the sync: nothing more.
  AssetPlan plan = PlanAsset(in, {}, false);
  EXPECT_TRUE(plan.reclaim_directory.empty());
  EXPECT_EQ(plan.held_back, 10);
  EXPECT_TRUE(plan.remove.empty()) << "released after the last sync: kept until a sync sees them gone";
  // A sync that no longer shows them starts a new budget.
  in.last_sync = 200;
  for (int i = 10; i < 30; ++i) in.held_at_sync.insert("S" + std::to_string(100 + i));
  plan = PlanAsset(in, {}, false);
  EXPECT_EQ(plan.reclaim_directory.size(), 10u);
  EXPECT_EQ(plan.remove.size(), 10u) << "the released rows: the sync saw them gone";
}

TEST(PlanAsset, TheFloorLetsSmallAppsReclaim) {
  AssetInput in = Input({"A"}, 100, 0);
  for (const char* s : {"A", "B", "C", "D"}) Add(in, Row(s, "granted", 100));
  AssetPlan plan = PlanAsset(in, {}, false);
  EXPECT_EQ(Sorted(plan.reclaim_directory), (Serials{"B", "C", "D"})) << "0.2 × 4 < 10: the floor";
  EXPECT_EQ(plan.held_back, 0);
}

TEST(PlanAsset, ExplicitActsAreNotCapped) {
  AssetInput in = Input({}, 100, 0);
  for (int i = 0; i < 50; ++i) Add(in, Row("S" + std::to_string(100 + i), "granted", 100));
  in.assigned = false;  // the assignment was deleted
  AssetPlan plan = PlanAsset(in, {}, false);
  EXPECT_EQ(plan.reclaim_explicit.size(), 50u);
  EXPECT_EQ(plan.held_back, 0);

  AssetInput un = Input({"S100", "S101"}, 100, 0);
  for (int i = 0; i < 50; ++i) {
    Add(un, Row("S" + std::to_string(100 + i), "granted", 100));
    un.uninstall.insert("S" + std::to_string(100 + i));
  }
  AssetPlan uninstall = PlanAsset(un, {}, false);
  EXPECT_EQ(uninstall.reclaim_explicit.size(), 50u) << "uninstall wins over an including group";
  EXPECT_TRUE(uninstall.associate.empty());
}

TEST(PlanAsset, ReclaimNeverKeepsEverything) {
  AssetInput in = Input({}, 100, 0);
  Add(in, Row("A", "granted", 100));
  in.assigned = false;
  AssetPlan plan = PlanAsset(in, {.reclaim = false}, false);
  EXPECT_TRUE(plan.Empty());
  EXPECT_EQ(plan.kept, 1);
}

TEST(PlanAsset, AGrantTheNewerSyncNoLongerShowsIsForgottenAndGrantedAgainWhenWanted) {
  AssetInput in = Input({"A"}, 10, 0);
  in.last_sync = 200;
  Add(in, Row("A", "granted", 100));  // revoked at Apple after vppd granted it
  AssetPlan plan = PlanAsset(in, {}, false);
  ASSERT_EQ(plan.remove.size(), 1u);
  EXPECT_EQ(plan.associate, (Serials{"A"}));
  // Granted after the sync: Apple holds it, the sync just did not see it yet.
  AssetInput fresh = Input({"A"}, 10, 0);
  fresh.last_sync = 50;
  Add(fresh, Row("A", "granted", 100));
  EXPECT_TRUE(PlanAsset(fresh, {}, false).Empty());
}

TEST(PlanAsset, AnAppleFailureIsRetriedOnlyWhenForced) {
  AssetInput in = Input({"A"}, 10, 0);
  Add(in, Row("A", "failed", 100, "9610"));
  EXPECT_TRUE(PlanAsset(in, {}, false).Empty());
  EXPECT_EQ(PlanAsset(in, {}, true).associate, (Serials{"A"}));
}

TEST(PlanAsset, RowsOfDevicesNoLongerWantedThatHoldNothingGo) {
  AssetInput in = Input({}, 10, 0);
  Add(in, Row("A", "failed", 100, "9709"));
  Add(in, Row("B", "pending", 100));
  Add(in, Row("C", "reclaimPending", 100));
  AssetPlan plan = PlanAsset(in, {}, false);
  ASSERT_EQ(plan.remove.size(), 1u);
  EXPECT_EQ(plan.remove[0].serial_number, "A");
  EXPECT_TRUE(plan.Empty()) << "events in flight are waited for";
}

TEST(PlanAsset, APassOverChangedDevicesTakesTheAssetsCountsFromItsWholeTally) {
  // Only B and C changed: A's row is not in the input; the whole asset's rows
  // said 20 granted, 1 reclaimed by directory changes, 1 licence free at least.
  AssetInput in = Input({"C", "D"}, 100, 50);
  Add(in, Row("B", "granted"));
  in.whole = AssetInput::Whole{1, 20, 1};
  AssetPlan plan = PlanAsset(in, {}, false);
  EXPECT_EQ(plan.available, 1) << "the tally's count, not total - used";
  EXPECT_EQ(plan.associate, Serials{"C"});
  EXPECT_EQ(plan.not_enough, 1) << "D: no licence left";
  EXPECT_EQ(plan.granted, 20);
  EXPECT_EQ(plan.reclaimed, 1);
  EXPECT_EQ(plan.reclaim_directory, Serials{"B"}) << "B left scope: within max(10, 0.2 x 21) - 1";
}

TEST(PlanAsset, AnAssociateANewerSyncShowsHeldIsGrantedBeforeItsEventEnds) {
  AssetInput in = Input({"A", "B"}, 10, 2);  // last sync at 50
  Add(in, Row("A", "pending", 40));          // submitted before the sync began: the sync saw it held
  Add(in, Row("B", "pending", 60));          // submitted after: the sync's view says nothing of it
  in.held_at_sync = {"A", "B"};
  AssetPlan plan = PlanAsset(in, {}, false);
  ASSERT_EQ(plan.put.size(), 1u);
  EXPECT_EQ(plan.put[0].serial_number, "A");
  EXPECT_EQ(plan.put[0].state, "granted");
  EXPECT_EQ(plan.granted, 1);
  EXPECT_EQ(plan.holding, 2);
  EXPECT_TRUE(plan.Empty());
}

TEST(PlanAsset, UnlimitedAssetsServeEveryone) {
  AssetInput in = Input({"A", "B", "C"}, kUnlimitedCount, 5);
  EXPECT_EQ(PlanAsset(in, {}, false).associate.size(), 3u);
}

// --- people's licences (PlanUserAsset): the same rules, keyed by clientUserId ---------------

store::UserLicense UserRow(const std::string& user, const std::string& state, Timestamp updated = 100,
                           const std::string& code = "") {
  store::UserLicense r;
  r.adam_id = "1";
  r.pricing_param = "STDQ";
  r.client_user_id = user;
  r.state = state;
  r.error_code = code;
  r.updated = updated;
  return r;
}

UserAssetInput UserInput(Serials wanted, std::set<std::string> ready, std::int64_t total, std::int64_t used) {
  UserAssetInput in;
  in.adam_id = "1";
  in.pricing_param = "STDQ";
  in.wanted = std::move(wanted);
  in.ready = std::move(ready);
  in.assigned = true;
  in.total = total;
  in.used = used;
  in.last_sync = 50;
  return in;
}

void AddUser(UserAssetInput& in, store::UserLicense row) { in.rows[row.client_user_id] = std::move(row); }

TEST(PlanUserAsset, OnlyAssociatedUsersGetALicenceAndTheOthersWaitWithoutTakingOne) {
  UserAssetInput in = UserInput({"u3", "u1", "u2", "u4"}, {"u1", "u2", "u4"}, 10, 8);
  UserAssetPlan plan = PlanUserAsset(in, {}, false);
  EXPECT_EQ(plan.waiting, (Serials{"u3"})) << "the invitation is not accepted yet";
  EXPECT_EQ(plan.associate, (Serials{"u1", "u2"})) << "earliest membership first, among those who can";
  EXPECT_EQ(plan.wanted, 4);
  EXPECT_EQ(plan.not_enough, 1);
  ASSERT_EQ(plan.put.size(), 1u);
  EXPECT_EQ(plan.put[0].client_user_id, "u4");
  EXPECT_EQ(plan.put[0].state, "failed");
  EXPECT_EQ(plan.put[0].error_code, "9709");
  EXPECT_EQ(plan.Left(), 0);

  // Accepted since: served on the next pass like anyone else.
  in.ready->insert("u3");
  AddUser(in, UserRow("u1", "pending"));
  AddUser(in, UserRow("u2", "pending"));
  AddUser(in, UserRow("u4", "failed", 100, "9709"));
  plan = PlanUserAsset(in, {}, false);
  EXPECT_TRUE(plan.waiting.empty());
  EXPECT_TRUE(plan.associate.empty()) << "the two licences are taken by u1 and u2";
  EXPECT_EQ(plan.not_enough, 2);
  ASSERT_EQ(plan.put.size(), 1u) << "u4's row already says so";
  EXPECT_EQ(plan.put[0].client_user_id, "u3");
}

TEST(PlanUserAsset, AUserWhoHoldsALicenceIsHoldingNotWaiting) {
  UserAssetInput in = UserInput({"u1", "u2"}, {}, 10, 0);
  AddUser(in, UserRow("u1", "granted"));
  in.held_at_sync.insert("u2");  // an untracked holder (another MDM's, or before vppd)
  UserAssetPlan plan = PlanUserAsset(in, {}, false);
  EXPECT_TRUE(plan.Empty());
  EXPECT_EQ(plan.holding, 2);
  EXPECT_TRUE(plan.waiting.empty());
}

TEST(PlanUserAsset, NothingToDoTwiceInARow) {
  UserAssetInput in = UserInput({"u1", "u2", "u3"}, {"u1", "u2", "u3"}, 2, 0);
  AddUser(in, UserRow("u1", "granted"));
  AddUser(in, UserRow("u2", "pending"));
  AddUser(in, UserRow("u3", "failed", 100, "9709"));
  UserAssetPlan plan = PlanUserAsset(in, {}, false);
  EXPECT_TRUE(plan.Empty());
  EXPECT_TRUE(plan.put.empty());
  EXPECT_TRUE(plan.remove.empty());
}

TEST(PlanUserAsset, AUserOutOfScopeIsReclaimedWithinTheCapAndExplicitActsAreNot) {
  UserAssetInput in = UserInput({}, {}, 100, 0);
  for (int i = 0; i < 60; ++i) {
    const std::string user = "u" + std::to_string(100 + i);
    if (i < 40) {
      in.wanted.push_back(user);
      in.ready->insert(user);
    }
    AddUser(in, UserRow(user, "granted", 100));
  }
  // 20 left scope (or were deleted); the cap is max(10, 0.2 × 60) = 12.
  UserAssetPlan plan = PlanUserAsset(in, {}, false);
  EXPECT_EQ(plan.reclaim_directory.size(), 12u);
  EXPECT_EQ(plan.reclaim_directory.front(), "u140");
  EXPECT_EQ(plan.held_back, 8);
  EXPECT_EQ(PlanUserAsset(in, {}, true).reclaim_directory.size(), 20u) << "forced";
  UserAssetPlan never = PlanUserAsset(in, {.reclaim = false}, false);
  EXPECT_TRUE(never.Empty());
  EXPECT_EQ(never.kept, 20);

  in.assigned = false;  // the assignment deleted: an admin's act, and nobody is wanted
  in.wanted.clear();
  plan = PlanUserAsset(in, {}, false);
  EXPECT_EQ(plan.reclaim_explicit.size(), 60u);
  EXPECT_EQ(plan.held_back, 0);

  UserAssetInput un = UserInput({"u1"}, {"u1"}, 10, 0);
  AddUser(un, UserRow("u1", "granted"));
  un.uninstall.insert("u1");
  EXPECT_EQ(PlanUserAsset(un, {}, false).reclaim_explicit, (Serials{"u1"})) << "uninstall wins";
}

TEST(PlanUserAsset, AnAppleFailureIsRetriedOnlyWhenForcedAndUntrackedHoldersAreLeftAlone) {
  UserAssetInput in = UserInput({"u1"}, {"u1"}, 10, 1);
  AddUser(in, UserRow("u1", "failed", 100, "9610"));
  in.held_at_sync.insert("someone-elses-user");
  UserAssetPlan plan = PlanUserAsset(in, {}, false);
  EXPECT_TRUE(plan.Empty());
  EXPECT_EQ(plan.untracked, 1);
  EXPECT_EQ(PlanUserAsset(in, {}, true).associate, (Serials{"u1"}));
}

}  // namespace
}  // namespace vppd::sync
