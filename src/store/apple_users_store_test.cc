// The Apple users vppd registers (store::AppleUser), their create/retire events
// and the /users walk's version, on SQLite and (VPPD_TEST_DATABASE_URL) PostgreSQL.
#include <map>
#include <optional>

#include <gtest/gtest.h>

#include "base/testing.h"
#include "store/store.h"
#include "store/store_testing.h"

namespace vppd::store {
namespace {

using testing::Backend;

class AppleUsersStoreTest : public testing::StoreTest {
 protected:
  AppleUsersStoreTest() : StoreTest("vppd-apple-users-store") {}

  void SetUp() override {
    StoreTest::SetUp();
    if (SetUpStopped()) return;
    token_ = Token(kTenantA);
  }

  static AppleUser User(const std::string& client_user_id, const std::string& status) {
    AppleUser u;
    u.client_user_id = client_user_id;
    u.user_id = "dir-" + client_user_id;
    u.email = client_user_id + "@example.org";
    u.status = status;
    return u;
  }

  std::map<std::string, AppleUser> Users(const std::string& token) {
    std::map<std::string, AppleUser> out;
    auto rows = store_->ListAppleUsers(kTenantA, token);
    EXPECT_TRUE(rows) << rows.error().message;
    if (rows) {
      for (auto& r : *rows) out[r.client_user_id] = r;
    }
    return out;
  }
  std::map<std::string, AppleUser> Users() { return Users(token_); }

  AppleEvent Event(const std::string& id, const std::string& kind) {
    AppleEvent e;
    e.event_id = id;
    e.kind = kind;
    e.next_poll = clock_.Now() + 30 * kSecond;
    return e;
  }

  std::string token_;
};
INSTANTIATE_TEST_SUITE_P(Store, AppleUsersStoreTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

TEST_P(AppleUsersStoreTest, PutUpsertsByClientUserIdAndListsInOrder) {
  AppleUser b = User("b", "Registered");
  b.invite_code = "code-b";
  b.invite_url = "https://example/?inviteCode=code-b";
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, token_, {b, User("a", "creating")}));
  auto rows = store_->ListAppleUsers(kTenantA, token_);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].client_user_id, "a");
  EXPECT_EQ((*rows)[1], (AppleUser{"b", "dir-b", "b@example.org", "Registered", "code-b",
                                   "https://example/?inviteCode=code-b", "", "", "", "", kT0}));

  clock_.Advance(std::chrono::seconds(5));
  b.status = "Associated";
  b.invite_code.clear();
  b.id_hash = "hash-b";
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, token_, {b}));
  auto users = Users();
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users["b"].status, "Associated");
  EXPECT_EQ(users["b"].id_hash, "hash-b");
  EXPECT_EQ(users["b"].invite_code, "");
  EXPECT_EQ(users["b"].updated, kT0 + 5 * kSecond);
  EXPECT_EQ(users["a"].updated, kT0);
}

TEST_P(AppleUsersStoreTest, NamedReadsOnlyTheRowsAskedForOfThatToken) {
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, token_,
                                    {User("c", "Registered"), User("a", "creating"), User("b", "Associated")}));
  const std::string other = Token(kTenantA);
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, other, {User("d", "Registered")}));
  auto named = store_->AppleUsersNamed(kTenantA, token_, {"c", "a", "d", "zz"});
  ASSERT_TRUE(named) << named.error().message;
  ASSERT_EQ(named->size(), 2u) << "d is another token's, zz nobody's";
  EXPECT_EQ((*named)[0], Users()["a"]);
  EXPECT_EQ((*named)[1], Users()["c"]);
  EXPECT_TRUE(store_->AppleUsersNamed(kTenantA, token_, {})->empty());
  EXPECT_TRUE(store_->AppleUsersNamed(kTenantB, token_, {"a"})->empty()) << "tenant-scoped";
}

TEST_P(AppleUsersStoreTest, PutRefusesBadRowsAndAMissingTokenWritingNothing) {
  Status bad = store_->PutAppleUsers(kTenantA, token_, {User("a", "creating"), User("", "creating")});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kInvalidArgument);
  EXPECT_EQ(bad.error().target, "rows[1]");
  EXPECT_EQ(store_->PutAppleUsers(kTenantA, token_, {User("a", "")}).error().code, Code::kInvalidArgument);
  EXPECT_TRUE(Users().empty());
  EXPECT_EQ(store_->PutAppleUsers(kTenantA, "no-such-token", {User("a", "creating")}).error().code, Code::kNotFound);
  // Another tenant's token is not found either.
  EXPECT_EQ(store_->PutAppleUsers(kTenantB, token_, {User("a", "creating")}).error().code, Code::kNotFound);
  EXPECT_TRUE(store_->ListAppleUsers(kTenantA, "no-such-token")->empty());
}

TEST_P(AppleUsersStoreTest, UpdateWritesOnlyRowsStillAsReadAndNamesTheOthers) {
  AppleUser a = User("a", "Registered");
  a.invite_code = "code-a";
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, token_, {a, User("b", "Registered")}));
  const AppleUser a_read = Users()["a"], b_read = Users()["b"];
  // A notification: b accepted its invitation after the reconcile read it.
  AppleUser b_accepted = b_read;
  b_accepted.status = "Associated";
  b_accepted.id_hash = "hash-b";
  b_accepted.updated = kT0 + 1;
  auto first = store_->UpdateAppleUsers(kTenantA, token_, {{b_read, b_accepted}});
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->empty());

  // The reconcile, from what it read: a's and b's invitation URLs, and a new user c.
  clock_.Advance(std::chrono::seconds(2));
  AppleUser a_url = a_read, b_url = b_read, c = User("c", "creating"), d = User("d", "creating");
  a_url.invite_url = "https://example/?inviteCode=code-a";
  a_url.updated = 0;  // stamped with the store's clock
  b_url.invite_url = "https://example/?inviteCode=stale";
  auto second = store_->UpdateAppleUsers(kTenantA, token_, {{a_read, a_url}, {b_read, b_url}, {std::nullopt, c}});
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(*second, std::vector<std::string>{"b"});
  auto users = Users();
  EXPECT_EQ(users["a"].invite_url, "https://example/?inviteCode=code-a");
  EXPECT_EQ(users["a"].updated, kT0 + 2 * kSecond);
  EXPECT_EQ(users["b"], b_accepted) << "the newer word stays";
  EXPECT_EQ(users["c"].status, "creating");

  // A row that appeared since it was read as missing is left alone too.
  AppleUser c_again = c;
  c_again.email = "other@example.org";
  second = store_->UpdateAppleUsers(kTenantA, token_, {{std::nullopt, c_again}, {std::nullopt, d}});
  ASSERT_TRUE(second);
  EXPECT_EQ(*second, std::vector<std::string>{"c"});
  EXPECT_EQ(Users()["c"].email, "c@example.org");
  EXPECT_EQ(Users()["d"].status, "creating");

  // Bad input writes nothing.
  AppleUser renamed = a_url;
  renamed.client_user_id = "z";
  EXPECT_EQ(store_
                ->UpdateAppleUsers(kTenantA, token_,
                                   {{User("e", "creating"), User("e", "Registered")}, {users["a"], renamed}})
                .error()
                .code,
            Code::kInvalidArgument);
  EXPECT_EQ(store_->UpdateAppleUsers(kTenantA, token_, {{std::nullopt, User("", "creating")}}).error().code,
            Code::kInvalidArgument);
  EXPECT_EQ(store_->UpdateAppleUsers(kTenantB, token_, {{std::nullopt, User("f", "creating")}}).error().code,
            Code::kNotFound);
  EXPECT_EQ(Users().size(), 4u);
}

TEST_P(AppleUsersStoreTest, AppleUsersOfUserSpansLocationsAndGoesWithTheToken) {
  const std::string other = Token(kTenantA);
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, token_, {User("u1", "Associated"), User("u2", "Registered")}));
  AppleUser foreign = User("x", "Associated");
  foreign.user_id = "";  // another MDM's user, not vppd's
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, other, {User("u1", "Registered"), foreign}));
  auto of = store_->AppleUsersOfUser(kTenantA, "dir-u1");
  ASSERT_TRUE(of);
  ASSERT_EQ(of->size(), 2u);
  std::map<std::string, std::string> by_token;
  for (auto& [token, u] : *of) by_token[token] = u.status;
  EXPECT_EQ(by_token[token_], "Associated");
  EXPECT_EQ(by_token[other], "Registered");
  EXPECT_TRUE(store_->AppleUsersOfUser(kTenantB, "dir-u1")->empty()) << "tenant-scoped";
  EXPECT_TRUE(store_->AppleUsersOfUser(kTenantA, "")->size() == 1u) << "only the foreign row has no user";

  ASSERT_TRUE(store_->DeleteToken(kTenantA, other));
  of = store_->AppleUsersOfUser(kTenantA, "dir-u1");
  ASSERT_TRUE(of);
  ASSERT_EQ(of->size(), 1u);
  EXPECT_EQ((*of)[0].first, token_);
}

TEST_P(AppleUsersStoreTest, ACreateEventMarksItsUsersAndItsOutcomeSettlesEach) {
  ASSERT_TRUE(store_->PutAppleUsers(
      kTenantA, token_,
      {User("a", "creating"), User("b", "creating"), User("c", "creating"), User("d", "Associated")}));
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("e1", "createUsers"), {"a", "b", "c"}, ""));
  auto users = Users();
  for (const char* id : {"a", "b", "c"}) {
    EXPECT_EQ(users[id].status, "creating") << id;
    EXPECT_EQ(users[id].event_id, "e1") << id;
  }
  EXPECT_EQ(users["d"].event_id, "");
  auto events = store_->ListAppleEvents(kTenantA, token_);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].kind, "createUsers");
  EXPECT_EQ((*events)[0].serials, 3);
  // No device licence row is made for a user event.
  EXPECT_TRUE(store_->ListDeviceLicenses(kTenantA, token_)->empty());

  clock_.Advance(std::chrono::seconds(40));
  AppleEventOutcome outcome;
  outcome.failures = {{"", "b", 9641, "The Apple Account is already associated with another user."},
                      {"", "c", 9716, "A registered user already exists for the clientUserId."}};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e1", outcome));
  users = Users();
  EXPECT_EQ(users["a"].status, "Registered");
  EXPECT_EQ(users["a"].event_id, "");
  EXPECT_EQ(users["a"].updated, kT0 + 40 * kSecond);
  EXPECT_EQ(users["b"].status, "failed");
  EXPECT_EQ(users["b"].error_code, "9641");
  EXPECT_EQ(users["b"].error_message, "The Apple Account is already associated with another user.");
  EXPECT_EQ(users["b"].event_id, "");
  EXPECT_EQ(users["c"].status, "Registered") << "9716: the user exists, which is what was asked";
  EXPECT_EQ(users["d"].status, "Associated") << "not the event's";
  EXPECT_TRUE(store_->ListAppleEvents(kTenantA, token_)->empty());
  EXPECT_EQ(store_->CompleteAppleEvent(kTenantA, token_, "e1", {}).error().code, Code::kNotFound);
}

TEST_P(AppleUsersStoreTest, ARowAlreadyAssociatedIsNotMovedBackByItsCreateEvent) {
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, token_, {User("a", "creating")}));
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("e1", "createUsers"), {"a"}, ""));
  // USER_ASSOCIATED came before the create's own outcome.
  AppleUser a = Users()["a"];
  a.status = "Associated";
  a.id_hash = "h";
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, token_, {a}));
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e1", {}));
  EXPECT_EQ(Users()["a"].status, "Associated");
  EXPECT_TRUE(store_->ListAppleEvents(kTenantA, token_)->empty());
}

TEST_P(AppleUsersStoreTest, ARowMovedOnBeforeItsEventIsRecordedKeepsItsNewerWord) {
  // Written creating for users/create; the person accepted (USER_ASSOCIATED)
  // before vppd recorded the event Apple answered.
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, token_, {User("a", "Associated"), User("b", "creating")}));
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("e1", "createUsers"), {"a", "b"}, ""));
  auto users = Users();
  EXPECT_EQ(users["a"].status, "Associated");
  EXPECT_EQ(users["a"].event_id, "");
  EXPECT_EQ(users["b"].event_id, "e1");
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e1", {}));
  EXPECT_EQ(Users()["a"].status, "Associated");
  EXPECT_EQ(Users()["b"].status, "Registered");
  EXPECT_TRUE(store_->ListAppleEvents(kTenantA, token_)->empty());
}

TEST_P(AppleUsersStoreTest, ARetireEndsRetiredOrStaysToRetireWithItsError) {
  AppleUser a = User("a", "retiring");
  a.invite_code = "code-a";
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, token_,
                                    {a, User("b", "retiring"), User("c", "retiring"), User("d", "retiring")}));
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("r", "retireUsers"), {"a", "b", "c", "d"}, ""));
  for (auto& [id, u] : Users()) EXPECT_EQ(u.status, "retiring") << id;
  AppleEventOutcome outcome;
  outcome.failures = {{"", "b", 9603, "Internal error"}, {"", "c", 9618, "User already retired"}};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "r", outcome));
  auto users = Users();
  EXPECT_EQ(users["a"].status, "Retired");
  EXPECT_EQ(users["a"].invite_code, "") << "a retired user's invitation is no more";
  EXPECT_EQ(users["b"].status, "retiring") << "sent again by the next pass";
  EXPECT_EQ(users["b"].event_id, "");
  EXPECT_EQ(users["b"].error_code, "9603");
  EXPECT_EQ(users["b"].error_message, "retire failed: Internal error");
  EXPECT_EQ(users["c"].status, "Retired") << "already retired is where it should be";
  EXPECT_EQ(users["d"].status, "Retired");
}

TEST_P(AppleUsersStoreTest, AnEventFailedAsAWholeOrAbandonedMovesEveryUserOfIt) {
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, token_, {User("a", "creating"), User("b", "creating")}));
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("e1", "createUsers"), {"a"}, ""));
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("e2", "createUsers"), {"b"}, ""));
  AppleEventOutcome all;
  all.all_failed = AppleEventOutcome::Failure{"", "", 9717, "Invalid email"};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e1", all));
  AppleEventOutcome abandoned;
  abandoned.abandoned = true;
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e2", abandoned));
  auto users = Users();
  EXPECT_EQ(users["a"].status, "failed");
  EXPECT_EQ(users["a"].error_code, "9717");
  EXPECT_EQ(users["b"].status, "creating") << "as if never sent: the next pass sends it again";
  EXPECT_EQ(users["b"].event_id, "");
  EXPECT_TRUE(store_->ListAppleEvents(kTenantA, token_)->empty());
}

TEST_P(AppleUsersStoreTest, APartOfAUserEventMovesItsUsersAndTheLastPartEndsIt) {
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, token_, {User("a", "creating"), User("b", "creating")}));
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("e1", "createUsers"), {"a", "b"}, ""));
  AppleEventOutcome first;
  first.only_serials = std::vector<std::string>{"a"};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e1", first));
  EXPECT_EQ(Users()["a"].status, "Registered");
  EXPECT_EQ(Users()["b"].status, "creating");
  EXPECT_EQ(store_->ListAppleEvents(kTenantA, token_)->size(), 1u);
  AppleEventOutcome last;
  last.only_serials = std::vector<std::string>{"b"};
  last.failures = {{"", "b", 9641, "already associated"}};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e1", last));
  EXPECT_EQ(Users()["b"].status, "failed");
  EXPECT_TRUE(store_->ListAppleEvents(kTenantA, token_)->empty());
}

TEST_P(AppleUsersStoreTest, ACreateToldByNotificationKeepsTheInvitationCodesItNames) {
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, token_, {User("a", "creating"), User("b", "creating")}));
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("e1", "createUsers"), {"a", "b"}, ""));
  AppleUser b = Users()["b"];
  b.status = "Associated";  // b accepted before the create's own outcome came
  ASSERT_TRUE(store_->PutAppleUsers(kTenantA, token_, {b}));
  AppleEventOutcome told;
  told.only_serials = std::vector<std::string>{"a", "b"};
  told.invite_codes = {{"a", "code-a"}, {"b", "code-b"}};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e1", told));
  auto users = Users();
  EXPECT_EQ(users["a"].status, "Registered");
  EXPECT_EQ(users["a"].invite_code, "code-a");
  EXPECT_EQ(users["a"].invite_url, "") << "the reconcile puts the URL around it";
  EXPECT_EQ(users["b"].status, "Associated");
  EXPECT_EQ(users["b"].invite_code, "") << "an accepted invitation is no more";
  EXPECT_TRUE(store_->ListAppleEvents(kTenantA, token_)->empty());
}

TEST_P(AppleUsersStoreTest, RecordRefusesUnknownKindsAndMakesARowNotPutBefore) {
  EXPECT_EQ(store_->RecordAppleEvent(kTenantA, token_, Event("x", "updateUsers"), {"a"}, "").error().code,
            Code::kInvalidArgument);
  EXPECT_EQ(store_->RecordAppleEvent(kTenantA, "no-such-token", Event("x", "createUsers"), {"a"}, "").error().code,
            Code::kNotFound);
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("r", "retireUsers"), {"z"}, ""));
  auto users = Users();
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users["z"].status, "retiring");
  EXPECT_EQ(users["z"].event_id, "r");
}

TEST_P(AppleUsersStoreTest, TheUsersVersionIsKeptPerToken) {
  EXPECT_EQ(*store_->GetAppleUsersVersion(kTenantA, token_), "");
  ASSERT_TRUE(store_->PutAppleUsersVersion(kTenantA, token_, "v1"));
  ASSERT_TRUE(store_->PutAppleUsersVersion(kTenantA, token_, "v2"));
  EXPECT_EQ(*store_->GetAppleUsersVersion(kTenantA, token_), "v2");
  EXPECT_EQ(*store_->GetAppleUsersVersion(kTenantB, token_), "");
  EXPECT_EQ(store_->PutAppleUsersVersion(kTenantA, "no-such-token", "v").error().code, Code::kNotFound);
  ASSERT_TRUE(store_->DeleteToken(kTenantA, token_));
  EXPECT_EQ(*store_->GetAppleUsersVersion(kTenantA, token_), "");
}

}  // namespace
}  // namespace vppd::store
