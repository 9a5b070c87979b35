// The user licences vppd hands out and the users app assignments reach through
// groups, on SQLite and (VPPD_TEST_DATABASE_URL) PostgreSQL.
#include <chrono>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "base/testing.h"
#include "store/store.h"
#include "store/store_testing.h"

namespace vppd::store {
namespace {

using namespace std::chrono_literals;
using testing::Backend;

AppleEventOutcome::Failure UserFailure(const std::string& client_user_id, int number, const std::string& message) {
  AppleEventOutcome::Failure f;
  f.client_user_id = client_user_id;
  f.error_number = number;
  f.error_message = message;
  return f;
}

class UserLicensesStoreTest : public testing::StoreTest {
 protected:
  UserLicensesStoreTest() : StoreTest("vppd-user-licenses-store") {}

  void SetUp() override {
    StoreTest::SetUp();
    if (SetUpStopped()) return;
    token_ = Token(kTenantA);
    ASSERT_FALSE(token_.empty());
  }

  // The app (and its row) Graph's userStatuses reads through.
  std::string App(const std::string& adam) {
    EnqueueOptions o;
    EXPECT_TRUE(store_->EnqueueJob(kTenantA, token_, o, [](VppToken&) -> Status { return {}; }));
    Result<std::optional<SyncJob>> job = store_->ClaimJob("w", clock_.Now(), 60s);
    EXPECT_TRUE(job && *job);
    MobileApp a;
    a.id = "app-" + adam;
    a.token_id = token_;
    a.platform = "iOS";
    a.adam_id = adam;
    a.pricing_param = "STDQ";
    a.product_type = "App";
    a.display_name = "App";
    a.total_licenses = 10;
    SyncSnapshot snap;
    snap.apps = {a};
    EXPECT_TRUE(store_->FinishJob(**job, snap, [](VppToken&) -> Status { return {}; }));
    return a.id;
  }

  std::map<std::string, UserLicense> Licenses() {
    std::map<std::string, UserLicense> out;
    auto rows = store_->ListUserLicenses(kTenantA, token_);
    EXPECT_TRUE(rows) << rows.error().message;
    if (rows) {
      for (auto& r : *rows) out[r.client_user_id] = r;
    }
    return out;
  }

  AppleEvent Event(const std::string& id, const std::string& kind, const std::string& adam = "100") {
    AppleEvent e;
    e.event_id = id;
    e.kind = kind;
    e.adam_id = adam;
    e.pricing_param = "STDQ";
    e.next_poll = clock_.Now() + 30 * kSecond;
    return e;
  }

  User NewUser(const std::string& upn, const char* tenant = kTenantA) {
    User u;
    u.user_principal_name = upn;
    u.display_name = upn.substr(0, upn.find('@'));
    if (upn[0] == 'a') u.mail = "mail-" + upn;
    Result<User> created = store_->CreateUser(tenant, u);
    EXPECT_TRUE(created) << created.error().message;
    return created ? *created : User{};
  }
  Group NewGroup(const std::string& name, const char* tenant = kTenantA) {
    Group g;
    g.display_name = name;
    Result<Group> created = store_->CreateGroup(tenant, g);
    EXPECT_TRUE(created) << created.error().message;
    return created ? *created : Group{};
  }
  void Add(const std::string& group, const std::string& member, const char* tenant = kTenantA) {
    Result<GroupMember> added = store_->AddGroupMember(tenant, group, member);
    ASSERT_TRUE(added) << added.error().message;
  }
  static std::vector<std::string> Upns(const Result<std::vector<GroupUser>>& users) {
    EXPECT_TRUE(users) << users.error().message;
    std::vector<std::string> out;
    if (users) {
      for (const GroupUser& u : *users) out.push_back(u.user_principal_name);
    }
    return out;
  }

  std::string token_;
};
INSTANTIATE_TEST_SUITE_P(Store, UserLicensesStoreTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

// --- licences ---------------------------------------------------------------------------

TEST_P(UserLicensesStoreTest, PutUpsertsAndRemovesInOneGoAndRefusesAMissingToken) {
  UserLicense failed{"100", "STDQ", "u1", "failed", "9709", "not enough licences", "", "assigned", 0};
  UserLicense other{"100", "STDQ", "u2", "failed", "9709", "not enough licences", "", "assigned", 0};
  ASSERT_TRUE(store_->PutUserLicenses(kTenantA, token_, {failed, other}, {}));
  auto rows = Licenses();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows["u1"].updated, kT0) << "stamped by the store when not given";
  EXPECT_EQ(rows["u1"].error_message, "not enough licences");

  failed.error_code = "9610";
  ASSERT_TRUE(store_->PutUserLicenses(kTenantA, token_, {failed}, {other}));
  rows = Licenses();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows["u1"].error_code, "9610");

  EXPECT_TRUE(store_->ListDeviceLicenses(kTenantA, token_)->empty()) << "a user's licence is not a device's";
  EXPECT_TRUE(store_->ListUserLicenses(kTenantB, token_)->empty()) << "tenant isolation";
  EXPECT_EQ(store_->PutUserLicenses(kTenantA, "no-such-token", {failed}, {}).error().code, Code::kNotFound);
  EXPECT_EQ(store_->PutUserLicenses(kTenantB, token_, {failed}, {}).error().code, Code::kNotFound);
}

TEST_P(UserLicensesStoreTest, AnAssociateMarksItsUsersPendingWithItsEvent) {
  ASSERT_TRUE(
      store_->RecordUserLicenseEvent(kTenantA, token_, Event("e1", "associate"), {"u1", "u2", "u3", "u4"}, "assigned"));
  auto rows = Licenses();
  ASSERT_EQ(rows.size(), 4u);
  for (auto& [user, r] : rows) {
    EXPECT_EQ(r.state, "pending") << user;
    EXPECT_EQ(r.event_id, "e1");
    EXPECT_EQ(r.cause, "assigned");
  }
  auto events = store_->ListAppleEvents(kTenantA, token_);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].serials, 4) << "counts the users it names";
  EXPECT_EQ((*events)[0].kind, "associate");
  EXPECT_TRUE(store_->ListDeviceLicenses(kTenantA, token_)->empty());
  ASSERT_TRUE(store_->RecordUserLicenseEvent(kTenantA, token_, Event("d", "disassociate"), {"u1"}, "userDeleted"));
  EXPECT_EQ(Licenses()["u1"].state, "reclaimPending");
  EXPECT_EQ(Licenses()["u1"].cause, "userDeleted");
  EXPECT_FALSE(store_->RecordUserLicenseEvent(kTenantA, token_, Event("", "associate"), {"u1"}, "assigned"));
  EXPECT_FALSE(store_->RecordUserLicenseEvent(kTenantA, token_, Event("x", "revoke"), {"u1"}, "assigned"));
  EXPECT_EQ(store_->RecordUserLicenseEvent(kTenantA, "gone", Event("y", "associate"), {"u1"}, "assigned").error().code,
            Code::kNotFound);
}

TEST_P(UserLicensesStoreTest, AnAssociateMarksItsUsersPendingAndItsOutcomeSettlesEach) {
  ASSERT_TRUE(
      store_->RecordUserLicenseEvent(kTenantA, token_, Event("e1", "associate"), {"u1", "u2", "u3", "u4"}, "assigned"));
  auto rows = Licenses();
  ASSERT_EQ(rows.size(), 4u);
  for (auto& [user, r] : rows) {
    EXPECT_EQ(r.state, "pending") << user;
    EXPECT_EQ(r.event_id, "e1");
    EXPECT_EQ(r.cause, "assigned");
  }
  auto events = store_->ListAppleEvents(kTenantA, token_);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].serials, 4) << "counts the users it names";
  EXPECT_EQ((*events)[0].kind, "associate");

  // A device event in flight at the same time is not moved by the users' outcome.
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("d1", "associate"), {"S1"}, "assigned"));

  clock_.Advance(61s);
  AppleEventOutcome outcome;
  outcome.failures = {UserFailure("u2", 9709, "Not enough licenses"), UserFailure("u3", 9616, "already assigned")};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e1", outcome));
  rows = Licenses();
  EXPECT_EQ(rows["u1"].state, "granted");
  EXPECT_EQ(rows["u1"].updated, kT0 + 61 * kSecond);
  EXPECT_EQ(rows["u2"].state, "failed");
  EXPECT_EQ(rows["u2"].error_code, "9709");
  EXPECT_EQ(rows["u2"].error_message, "Not enough licenses");
  EXPECT_EQ(rows["u3"].state, "granted") << "already assigned is where it should be";
  EXPECT_EQ(rows["u4"].state, "granted");
  events = store_->ListAppleEvents(kTenantA, token_);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].event_id, "d1");
  EXPECT_EQ((*store_->ListDeviceLicenses(kTenantA, token_))[0].state, "pending");
  EXPECT_EQ(store_->CompleteAppleEvent(kTenantA, token_, "e1", {}).error().code, Code::kNotFound);
}

TEST_P(UserLicensesStoreTest, ADisassociateReleasesOrKeepsTheLicenceWithItsError) {
  ASSERT_TRUE(
      store_->RecordUserLicenseEvent(kTenantA, token_, Event("a", "associate"), {"u1", "u2", "u3"}, "assigned"));
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "a", {}));
  ASSERT_TRUE(
      store_->RecordUserLicenseEvent(kTenantA, token_, Event("d", "disassociate"), {"u1", "u2", "u3"}, "userDeleted"));
  EXPECT_EQ(Licenses()["u1"].state, "reclaimPending");
  EXPECT_EQ(Licenses()["u1"].cause, "userDeleted");
  AppleEventOutcome outcome;
  outcome.failures = {UserFailure("u2", 9627, "frequent reassociation"), UserFailure("u3", 9619, "not associated")};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "d", outcome));
  auto rows = Licenses();
  EXPECT_EQ(rows["u1"].state, "released");
  EXPECT_EQ(rows["u2"].state, "granted") << "still held: tried again";
  EXPECT_EQ(rows["u2"].error_code, "9627");
  EXPECT_EQ(rows["u2"].error_message, "reclaim failed: frequent reassociation");
  EXPECT_EQ(rows["u3"].state, "released") << "not associated is where it should be";
}

TEST_P(UserLicensesStoreTest, AnEventFailedAsAWholeFailsEveryUserAndAnAbandonedOneUndoesItself) {
  ASSERT_TRUE(store_->RecordUserLicenseEvent(kTenantA, token_, Event("a", "associate"), {"u1", "u2"}, "assigned"));
  AppleEventOutcome all;
  all.all_failed = UserFailure("", 9644, "maintenance");
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "a", all));
  EXPECT_EQ(Licenses()["u1"].state, "failed");
  EXPECT_EQ(Licenses()["u2"].error_code, "9644");

  ASSERT_TRUE(store_->RecordUserLicenseEvent(kTenantA, token_, Event("b", "associate"), {"u1", "u3"}, "assigned"));
  AppleEventOutcome abandoned;
  abandoned.abandoned = true;
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "b", abandoned));
  auto rows = Licenses();
  EXPECT_FALSE(rows.contains("u1")) << "as if never submitted";
  EXPECT_FALSE(rows.contains("u3")) << "as if never submitted";
  EXPECT_EQ(rows["u2"].state, "failed") << "not in the abandoned event";

  ASSERT_TRUE(store_->RecordUserLicenseEvent(kTenantA, token_, Event("c", "associate"), {"u1"}, "assigned"));
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "c", {}));
  ASSERT_TRUE(store_->RecordUserLicenseEvent(kTenantA, token_, Event("d", "disassociate"), {"u1"}, "uninstall"));
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "d", abandoned));
  EXPECT_EQ(Licenses()["u1"].state, "granted") << "an abandoned reclaim leaves the licence held";
  EXPECT_FALSE(store_->RecordUserLicenseEvent(kTenantA, token_, Event("", "associate"), {"u1"}, "assigned"));
  EXPECT_EQ(store_->RecordUserLicenseEvent(kTenantA, "gone", Event("x", "associate"), {"u1"}, "assigned").error().code,
            Code::kNotFound);
}

// A notification naming serials moves device rows only; an event of users stays
// in flight until its poll.
TEST_P(UserLicensesStoreTest, ANotificationNamingSerialsLeavesAUsersEventInFlight) {
  ASSERT_TRUE(store_->RecordUserLicenseEvent(kTenantA, token_, Event("e", "associate"), {"u1"}, "assigned"));
  AppleEventOutcome part;
  part.only_serials = std::vector<std::string>{"S9"};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e", part));
  EXPECT_EQ(Licenses()["u1"].state, "pending");
  EXPECT_EQ(store_->ListAppleEvents(kTenantA, token_)->size(), 1u);
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e", {}));
  EXPECT_EQ(Licenses()["u1"].state, "granted");
  EXPECT_TRUE(store_->ListAppleEvents(kTenantA, token_)->empty());
}

TEST_P(UserLicensesStoreTest, UserLicenseStatesShowsAnAppsLicencesButNotReleasedOnes) {
  const std::string app = App("100");
  ASSERT_TRUE(
      store_->RecordUserLicenseEvent(kTenantA, token_, Event("a", "associate"), {"u2", "u1", "u3"}, "assigned"));
  AppleEventOutcome outcome;
  outcome.failures = {UserFailure("u3", 9709, "Not enough licenses")};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "a", outcome));
  ASSERT_TRUE(store_->RecordUserLicenseEvent(kTenantA, token_, Event("d", "disassociate"), {"u2"}, "leftScope"));
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "d", {}));
  ASSERT_TRUE(store_->RecordUserLicenseEvent(kTenantA, token_, Event("o", "associate", "200"), {"u7"}, "assigned"));

  auto states = store_->UserLicenseStates(kTenantA, app);
  ASSERT_TRUE(states) << states.error().message;
  ASSERT_EQ(states->size(), 2u);
  EXPECT_EQ((*states)[0].client_user_id, "u1");
  EXPECT_EQ((*states)[0].state, "granted");
  EXPECT_EQ((*states)[1].client_user_id, "u3");
  EXPECT_EQ((*states)[1].state, "failed");
  EXPECT_EQ((*states)[1].error_code, "9709");
  EXPECT_EQ(store_->UserLicenseStates(kTenantA, "no-such-app").error().code, Code::kNotFound);
  EXPECT_EQ(store_->UserLicenseStates(kTenantB, app).error().code, Code::kNotFound) << "tenant isolation";
}

TEST_P(UserLicensesStoreTest, LicencesGoWithTheToken) {
  ASSERT_TRUE(store_->RecordUserLicenseEvent(kTenantA, token_, Event("a", "associate"), {"u1"}, "assigned"));
  ASSERT_TRUE(store_->DeleteToken(kTenantA, token_));
  EXPECT_TRUE(store_->ListUserLicenses(kTenantA, token_)->empty());
  EXPECT_TRUE(store_->ListAppleEvents(kTenantA, token_)->empty());
}

// --- users through groups -------------------------------------------------------------------

TEST_P(UserLicensesStoreTest, UserMembersOfFollowsNestedGroupsAndCyclesEarliestMembershipFirst) {
  User ann = NewUser("ann@a.example"), bob = NewUser("bob@a.example"), cid = NewUser("cid@a.example");
  User dan = NewUser("dan@a.example"), eve = NewUser("eve@a.example");
  Group top = NewGroup("top"), mid = NewGroup("mid"), leaf = NewGroup("leaf"), apart = NewGroup("apart");
  Add(leaf.id, cid.id);  // seq 1
  Add(top.id, mid.id);   // a group: not a user
  Add(mid.id, leaf.id);
  Add(leaf.id, top.id);  // a cycle
  Add(mid.id, bob.id);
  Add(top.id, ann.id);
  Add(top.id, cid.id);  // cid again, later: its earliest membership counts
  Add(apart.id, eve.id);
  (void)dan;  // in no group

  EXPECT_EQ(Upns(store_->UserMembersOf(kTenantA, {top.id})),
            (std::vector<std::string>{"cid@a.example", "bob@a.example", "ann@a.example"}));
  EXPECT_EQ(Upns(store_->UserMembersOf(kTenantA, {leaf.id})),
            (std::vector<std::string>{"cid@a.example", "bob@a.example", "ann@a.example"}))
      << "the cycle reaches every group";
  EXPECT_EQ(Upns(store_->UserMembersOf(kTenantA, {apart.id, "unknown"})), (std::vector<std::string>{"eve@a.example"}));
  EXPECT_TRUE(Upns(store_->UserMembersOf(kTenantA, {"unknown"})).empty());
  EXPECT_TRUE(Upns(store_->UserMembersOf(kTenantA, {})).empty());
  EXPECT_TRUE(Upns(store_->UserMembersOf(kTenantB, {top.id})).empty()) << "tenant isolation";

  auto got = store_->UserMembersOf(kTenantA, {apart.id, mid.id});
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 4u);
  EXPECT_EQ((*got)[0].user_id, cid.id);
  EXPECT_EQ((*got)[0].display_name, "cid");
  EXPECT_EQ((*got)[0].mail, "") << "no mail";
  EXPECT_LT((*got)[0].seq, (*got)[1].seq);
  EXPECT_EQ((*got)[2].user_principal_name, "ann@a.example");
  EXPECT_EQ((*got)[2].mail, "mail-ann@a.example");

  // A user deleted leaves every group; a device in a group is not a user.
  ASSERT_TRUE(store_->DeleteUser(kTenantA, bob.id));
  EXPECT_EQ(Upns(store_->UserMembersOf(kTenantA, {top.id})),
            (std::vector<std::string>{"cid@a.example", "ann@a.example"}));
}

TEST_P(UserLicensesStoreTest, UserMembersOfALargeGroupReadsTheTenantsUsersInOrder) {
  // Beyond 1,000 members the users are read in key order and joined in vppd:
  // the same answer, in the order of the earliest membership.
  Group big = NewGroup("big"), nested = NewGroup("nested");
  std::vector<std::string> upns, ids;
  for (int i = 0; i < 1200; ++i) {
    User u = NewUser(fmt::format("p{:04}@a.example", 1199 - i));  // ids in no particular order to the names
    Add(i < 1100 ? big.id : nested.id, u.id);
    upns.push_back(u.user_principal_name);
    ids.push_back(u.id);
  }
  Add(big.id, nested.id);
  NewUser("outside@a.example");  // in no group
  Group other = NewGroup("other", kTenantB);
  Add(other.id, NewUser("b@b.example", kTenantB).id, kTenantB);
  Add(nested.id, ids[0]);  // a later membership of the first: its earliest counts

  auto got = store_->UserMembersOf(kTenantA, {big.id});
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 1200u);
  for (std::size_t i = 0; i < got->size(); ++i) {
    EXPECT_EQ((*got)[i].user_principal_name, upns[i]) << "position " << i;
    if (i > 0) {
      EXPECT_LT((*got)[i - 1].seq, (*got)[i].seq);
    }
  }
  EXPECT_EQ(Upns(store_->UserMembersOf(kTenantA, {nested.id})).size(), 101u) << "100 users, and one added twice";
  EXPECT_EQ(Upns(store_->UserMembersOf(kTenantB, {big.id})).size(), 0u) << "tenant isolation";
}

TEST_P(UserLicensesStoreTest, AllUsersIsEveryUserOfTheTenantById) {
  User a = NewUser("ann@a.example"), b = NewUser("bob@a.example");
  NewUser("zed@b.example", kTenantB);
  auto all = store_->AllUsers(kTenantA);
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].user_id, std::min(a.id, b.id));
  EXPECT_EQ((*all)[1].user_id, std::max(a.id, b.id));
  EXPECT_EQ((*all)[0].seq, 0);
  EXPECT_TRUE(store_->AllUsers("33333333-3333-3333-3333-333333333333")->empty());
}

}  // namespace
}  // namespace vppd::store
