// The reconcile job's user licences end to end (reconcile_users.cc): a real
// store (SQLite, and PostgreSQL when VPPD_TEST_DATABASE_URL is set),
// apple-vpp-sim in-process over real HTTP, the engine's jobs run inline. People
// are registered at Apple, accept their invitation through the simulator's
// /_sim/, and get their licence; a deleted person's Apple user is retired and the
// licence released.
#include "sync/reconcile_users.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "http/server.h"
#include "simulator.h"
#include "store/store_testing.h"
#include "sync/sync.h"
#include "sync/sync_testing.h"

namespace vppd::sync {
namespace {

using namespace std::chrono_literals;
using testing::Backend;

class ReconcileUsersTest : public testing::ReconcileFixture {
 protected:
  ReconcileUsersTest() : ReconcileFixture("vppd-reconcile-users") {}

  // The clientUserIds Apple holds the app for.
  std::set<std::string> UsersAtApple() {
    std::set<std::string> out;
    auto body = boost::json::parse(Apple("GET", "assignments?adamId=" + std::string(kAdam)).body);
    for (const auto& a : body.at("assignments").as_array()) {
      if (const auto* u = a.as_object().if_contains("clientUserId")) out.insert(std::string(u->as_string()));
    }
    return out;
  }

  // The Apple users the simulator holds, by clientUserId: their status.
  std::map<std::string, std::string> AppleUsers() {
    std::map<std::string, std::string> out;
    const boost::json::object location = Export();
    for (const auto& u : location.at("users").as_array()) {
      out[std::string(u.at("clientUserId").as_string())] = std::string(u.at("status").as_string());
    }
    return out;
  }

  // n directory users in a new group; returns the group id.
  std::string PeopleGroup(int n, std::vector<std::string>& ids) {
    store::Group g;
    g.display_name = "People";
    auto group = store_->CreateGroup(kTenant, g);
    EXPECT_TRUE(group) << group.error().message;
    for (int i = 0; i < n; ++i) {
      store::User u;
      u.user_principal_name = "person" + std::to_string(i) + "@contoso.example";
      auto user = store_->CreateUser(kTenant, u);
      EXPECT_TRUE(user) << user.error().message;
      EXPECT_TRUE(store_->AddGroupMember(kTenant, group->id, user->id));
      ids.push_back(user->id);
    }
    return group->id;
  }

  void AssignToPeople(const std::string& group) {
    store::AppAssignment a;
    a.app_id = app_;
    a.intent = "required";
    a.target_type = "#microsoft.graph.groupAssignmentTarget";
    a.group_id = group;
    a.use_device_licensing = false;
    a.settings_json = R"({"@odata.type":"#microsoft.graph.iosVppAppAssignmentSettings","useDeviceLicensing":false})";
    ASSERT_TRUE(store_->CreateAppAssignment(kTenant, a));
    ASSERT_TRUE(RequestReconcile(*store_, kTenant, token_, Clock::Real().Now()));
  }

  std::map<std::string, store::UserLicense> Rows() {
    std::map<std::string, store::UserLicense> out;
    auto rows = store_->ListUserLicenses(kTenant, token_);
    EXPECT_TRUE(rows) << rows.error().message;
    if (rows) {
      for (auto& r : *rows) out[r.client_user_id] = r;
    }
    return out;
  }

  boost::json::object People() {
    auto r = store_->GetReconcileReport(kTenant, token_);
    if (!r || r->first.empty()) return {};
    auto report = boost::json::parse(r->first).as_object();
    const auto* people = report.if_contains("people");
    return people != nullptr ? people->as_object() : boost::json::object{};
  }
  // The store and the engine on a fake clock an hour ahead of the real one (jobs
  // asked for at the real time are due at once); before StartApple.
  void UseFakeClock() {
    fake_.emplace(Clock::Real().Now() + 3'600'000'000LL);
    store_.reset();
    store::SqliteOptions options = store_options_;
    options.clock = &*fake_;
    auto opened = db_->Open(options);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
  }

  // When the token's reconcile job runs next (0 when none is queued).
  Timestamp NextReconcile() {
    auto jobs = store_->FindJobs(kTenant, token_);
    EXPECT_TRUE(jobs);
    for (const auto& j : *jobs) {
      if (j.kind == "reconcile") return j.not_before;
    }
    return 0;
  }

  // Runs jobs until `done` holds, the fake clock moved to each job's time.
  void RunFakeUntil(const std::function<bool()>& done, std::chrono::seconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return;
      auto ran = engine_->RunOne();
      ASSERT_TRUE(ran) << ran.error().message;
      if (*ran) continue;
      std::this_thread::sleep_for(10ms);  // the simulator's events end in real time
      if (const Timestamp next = NextReconcile(); next > fake_->Now()) fake_->Set(next);
    }
    FAIL() << "not reached before the timeout";
  }

  std::int64_t UsersWalks() {
    auto counters = Control("GET", "/_sim/counters");
    const auto* n = counters.at("total").as_object().if_contains("GET /mdm/v2/users");
    return n != nullptr ? n->as_int64() : 0;
  }

  static std::int64_t Int(const boost::json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_int64() ? v->as_int64() : -1;
  }
};
INSTANTIATE_TEST_SUITE_P(Reconcile, ReconcileUsersTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

TEST_P(ReconcileUsersTest, PeopleAreRegisteredWaitAndGetTheirLicenceOnceTheyAccept) {
  StartApple(100);
  std::vector<std::string> people;
  AssignToPeople(PeopleGroup(3, people));
  // Registered at Apple, each waiting for the invitation; no licence yet.
  RunUntil([&] { return AppleUsers().size() == 3 && Int(People(), "waitingForInvitation") == 3; });
  for (const auto& id : people) EXPECT_EQ(AppleUsers()[id], "Registered");
  EXPECT_TRUE(UsersAtApple().empty());
  EXPECT_TRUE(Rows().empty()) << "nothing to associate before the invitation is accepted";

  // Two accept: they get the licence at Apple, the third still waits.
  Accept({people[0], people[2]});
  RunUntil([&] {
    return UsersAtApple().size() == 2 && Rows().size() == 2 && Rows()[people[0]].state == "granted" &&
           Rows()[people[2]].state == "granted";
  });
  EXPECT_EQ(UsersAtApple(), (std::set<std::string>{people[0], people[2]}));
  EXPECT_EQ(Int(People(), "waitingForInvitation"), 1);
  EXPECT_EQ(People().at("waiting").as_array().at(0).at("clientUserId").as_string(), people[1]);

  Accept({people[1]});
  RunUntil([&] { return Rows().size() == 3 && Rows()[people[1]].state == "granted"; });
  EXPECT_EQ(UsersAtApple().size(), 3u);
  // Nothing left to do: the job finishes, and another pass asks Apple for nothing.
  RunUntil([&] { return *store_->CountJobs() == 0; });
  const std::int64_t before = AppleRequests();
  Reconcile();
  EXPECT_EQ(AppleRequests(), before) << "a second pass in a row calls Apple for nothing";
  EXPECT_EQ(Int(People(), "granted"), 3);
}

TEST_P(ReconcileUsersTest, ADeletedPersonsAppleUserIsRetiredAndTheLicenceReleased) {
  StartApple(100);
  std::vector<std::string> people;
  AssignToPeople(PeopleGroup(2, people));
  RunUntil([&] { return AppleUsers().size() == 2; });
  Accept(people);
  RunUntil([&] { return UsersAtApple().size() == 2 && Rows()[people[1]].state == "granted"; });

  ASSERT_TRUE(store_->DeleteUser(kTenant, people[1]));
  ASSERT_TRUE(RequestReconcile(*store_, kTenant, token_, Clock::Real().Now()));
  RunUntil([&] { return AppleUsers()[people[1]] == "Retired" && UsersAtApple().size() == 1; });
  EXPECT_EQ(UsersAtApple(), (std::set<std::string>{people[0]}));
  RunUntil([&] { return Rows()[people[1]].state == "released"; });
  EXPECT_EQ(Rows()[people[0]].state, "granted");
}

TEST_P(ReconcileUsersTest, MorePeopleThanLicencesServesTheEarliestMembers) {
  StartApple(2);
  std::vector<std::string> people;
  AssignToPeople(PeopleGroup(3, people));
  RunUntil([&] { return AppleUsers().size() == 3; });
  Accept(people);
  RunUntil([&] {
    return Rows().size() == 3 && Rows()[people[0]].state == "granted" && Rows()[people[1]].state == "granted";
  });
  EXPECT_EQ(UsersAtApple(), (std::set<std::string>{people[0], people[1]}));
  auto rows = Rows();
  EXPECT_EQ(rows[people[2]].state, "failed");
  EXPECT_EQ(rows[people[2]].error_code, "9709");
  EXPECT_EQ(Int(People(), "notEnoughLicenses"), 1);
}

TEST_P(ReconcileUsersTest, ReclaimNeverKeepsADeletedPersonsLicenceAndAppleUser) {
  reconcile_options_.reclaim = false;
  StartApple(100);
  std::vector<std::string> people;
  AssignToPeople(PeopleGroup(1, people));
  RunUntil([&] { return AppleUsers().size() == 1; });
  Accept(people);
  RunUntil([&] { return Rows()[people[0]].state == "granted"; });
  ASSERT_TRUE(store_->DeleteUser(kTenant, people[0]));
  Reconcile();
  EXPECT_EQ(AppleUsers()[people[0]], "Associated");
  EXPECT_EQ(UsersAtApple(), (std::set<std::string>{people[0]}));
  EXPECT_EQ(Int(People(), "keptByReclaimNever"), 1);
}

TEST_P(ReconcileUsersTest, APersonAppleRefusesIsReportedAndNotSentAgain) {
  StartApple(100);
  store::Group g;
  g.display_name = "Refused";
  auto group = store_->CreateGroup(kTenant, g);
  ASSERT_TRUE(group);
  store::User u;
  u.user_principal_name = "dana@contoso.example";
  u.mail = "not-an-email";  // Apple refuses users/create with 9717
  auto dana = store_->CreateUser(kTenant, u);
  ASSERT_TRUE(dana);
  ASSERT_TRUE(store_->AddGroupMember(kTenant, group->id, dana->id));
  AssignToPeople(group->id);
  RunUntil([&] { return Int(People(), "refusedByApple") == 1 && *store_->CountJobs() == 0; });
  auto refused = People().at("refused").as_array().at(0).as_object();
  EXPECT_EQ(refused.at("clientUserId").as_string(), dana->id);
  EXPECT_EQ(refused.at("status").as_string(), "failed");
  EXPECT_EQ(refused.at("errorCode").as_string(), "9717");
  EXPECT_EQ(Int(People(), "waitingForInvitation"), 0);
  EXPECT_TRUE(Rows().empty());
  EXPECT_TRUE(AppleUsers().empty());
  // The job finished (nothing to wait for), and another pass does not ask Apple again.
  const std::int64_t before = AppleRequests();
  Reconcile();
  EXPECT_EQ(AppleRequests(), before) << "a refusal is not sent again by itself";
  EXPECT_EQ(Int(People(), "refusedByApple"), 1);
  auto token = store_->GetToken(kTenant, token_);
  ASSERT_TRUE(token);
  std::string state;
  for (const auto& r : token->action_results) {
    if (r.action_name == "reconcileLicenses") state = r.action_state;
  }
  EXPECT_EQ(state, "failed") << "a person left without a licence fails the reconcile entry, as a device does";
}

TEST(InvitationRecheck, WaitsAsLongAsNothingChangedBetweenThePollIntervalAndAnHour) {
  const Timestamp poll = 30'000'000, now = 10'000'000'000;
  EXPECT_EQ(InvitationRecheck(now, now, poll), now + poll) << "just changed: the poll interval";
  EXPECT_EQ(InvitationRecheck(now, now - 5'000'000, poll), now + poll);
  EXPECT_EQ(InvitationRecheck(now, now - 90'000'000, poll), now + 90'000'000) << "unchanged 90 s: 90 s more";
  EXPECT_EQ(InvitationRecheck(now, now - 9'000'000'000, poll), now + kInvitationRecheckCap);
  EXPECT_EQ(InvitationRecheck(now, now + 1'000'000, poll), now + poll) << "a change stamped ahead of this clock";
  EXPECT_EQ(InvitationRecheck(now, 0, 2 * kInvitationRecheckCap), now + 2 * kInvitationRecheckCap)
      << "a poll interval beyond the cap stays the poll interval";
}

// While invitations wait and Apple does not tell (no USER_ASSOCIATED), the job
// looks at GET /users again later each time nothing changed: the wait doubles
// from the event poll interval up to an hour; a change starts it over.
TEST_P(ReconcileUsersTest, WaitingInvitationsAreLookedAtLessOftenWhileNothingChanges) {
  UseFakeClock();
  StartApple(100);
  std::vector<std::string> ids;
  const std::string group = PeopleGroup(1, ids);
  AssignToPeople(group);
  auto registered = [&](std::size_t n) {
    return [this, n] {
      auto users = store_->ListAppleUsers(kTenant, token_);
      auto events = store_->ListAppleEvents(kTenant, token_);
      if (!users || !events || users->size() != n || !events->empty()) return false;
      return std::all_of(users->begin(), users->end(),
                         [](const auto& u) { return u.status == "Registered" && !u.invite_url.empty(); });
    };
  };
  RunFakeUntil(registered(1));
  ASSERT_TRUE(engine_->RunOne());  // the pass that finds the invitation known leaves the job waiting
  const Timestamp poll = 30'000;   // the fixture's event poll interval, µs
  std::vector<Timestamp> waits;
  while (waits.size() < 2 || waits[waits.size() - 2] < kInvitationRecheckCap) {
    ASSERT_LT(waits.size(), 40u);
    const Timestamp next = NextReconcile();
    ASSERT_GT(next, 0) << "the job comes back while the invitation waits";
    waits.push_back(next - fake_->Now());
    fake_->Set(next);
    const std::int64_t walks = UsersWalks();
    auto ran = engine_->RunOne();
    ASSERT_TRUE(ran && *ran);
    EXPECT_EQ(UsersWalks(), walks + 1) << "each pass looks once";
  }
  EXPECT_GE(waits.front(), poll);
  EXPECT_LE(waits.front(), 2 * poll);
  // Each wait is as long as the invitation has gone unchanged: from the second on it doubles.
  EXPECT_GE(waits[1], waits[0]);
  for (std::size_t i = 2; i < waits.size(); ++i) {
    EXPECT_EQ(waits[i], std::min(2 * waits[i - 1], kInvitationRecheckCap)) << "pass " << i;
  }
  EXPECT_EQ(waits.back(), kInvitationRecheckCap);
  EXPECT_EQ(Int(People(), "waitingForInvitation"), 1);

  // A second person joins: registered at once, and the wait starts over.
  store::User u;
  u.user_principal_name = "late@contoso.example";
  auto late = store_->CreateUser(kTenant, u);
  ASSERT_TRUE(late);
  ASSERT_TRUE(store_->AddGroupMember(kTenant, group, late->id));
  ASSERT_TRUE(RequestReconcile(*store_, kTenant, token_, fake_->Now()));
  RunFakeUntil(registered(2));
  ASSERT_TRUE(engine_->RunOne());
  EXPECT_LE(NextReconcile() - fake_->Now(), 2 * poll) << "a change starts the wait over";

  // The person accepts: the next look finds it and the licence is associated.
  Accept({ids[0]});
  RunFakeUntil([&] { return UsersAtApple().contains(ids[0]); });
}

}  // namespace
}  // namespace vppd::sync
