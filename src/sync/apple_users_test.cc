// ReconcileAppleUsers against a real store (SQLite, and PostgreSQL when
// VPPD_TEST_DATABASE_URL is set) and apple-vpp-sim in-process over real HTTP:
// users registered, their invitations, refusals, retirement, and what a crash
// between the steps leaves.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include "http/server.h"
#include "simulator.h"
#include "store/store_testing.h"
#include "sync/jobs.h"
#include "sync/sync_internal.h"
#include "sync/sync_testing.h"

namespace vppd::sync {
namespace {

using namespace std::chrono_literals;
using testing::Backend;

constexpr const char* kAdam = "408709785";

class AppleUsersTest : public testing::SimulatedAppleTest {
 protected:
  AppleUsersTest() : SimulatedAppleTest("vppd-apple-users") {}

  void SetUp() override {
    SimulatedAppleTest::SetUp();
    if (SetUpStopped()) return;
    std::ostringstream data;
    data << R"({"locations": [{"uId": ")" << kUid << R"(", "name": "School",
      "assets": [{"adamId": ")"
         << kAdam << R"(", "totalCount": 10, "supportedPlatforms": ["iOS"]}],
      "assignments": []}]})";
    ASSERT_NO_FATAL_FAILURE(StartSimulator(data.str()));
    token_ = CreateToken();
    ASSERT_FALSE(token_.id.empty());

    apple::ClientOptions& client = client_options_;
    client.base_url = url_;
    client.allow_insecure_http = true;
    client.stoken = stoken_;
    client.retry.max_attempts = 1;
    auto c = apple::Client::Create(client);
    ASSERT_TRUE(c) << c.error().Describe();
    client_ = std::move(*c);

    options_.event_poll_interval = 10ms;
    options_.event_max_wait = 10s;
  }

  // The users Apple holds, by clientUserId (the simulator's view).
  std::map<std::string, boost::json::object> AtApple() {
    std::map<std::string, boost::json::object> out;
    const boost::json::object location = Export();
    for (const auto& u : location.at("users").as_array()) {
      out[std::string(u.at("clientUserId").as_string())] = u.as_object();
    }
    return out;
  }

  std::string DirectoryUser(const std::string& upn, std::optional<std::string> mail = std::nullopt) {
    store::User u;
    u.user_principal_name = upn;
    u.mail = std::move(mail);
    auto created = store_->CreateUser(kTenant, u);
    EXPECT_TRUE(created) << created.error().message;
    return created ? created->id : "";
  }

  Result<AppleUsersPass> Run(const std::set<std::string>& wanted) { return RunWith(*store_, *client_, wanted); }

  Result<AppleUsersPass> RunWith(store::Store& store, apple::Client& client, const std::set<std::string>& wanted) {
    std::atomic<bool> lease_lost{false};
    std::atomic<bool> stopping{false};
    apple::SleepFunction sleep = [](std::chrono::milliseconds) {};
    JobProgress progress;
    MetadataCache metadata(60s);
    store::SyncJob job;
    job.tenant_id = kTenant;
    job.token_id = token_.id;
    job.kind = "reconcile";
    JobContext ctx{store, options_, Clock::Real(), job, lease_lost, stopping, sleep, progress, metadata};
    return ReconcileAppleUsers(ctx, client, token_, wanted);
  }

  // Runs passes until no user event is in flight (the simulator resolves them in ~20 ms).
  AppleUsersPass Settle(const std::set<std::string>& wanted) {
    for (int i = 0; i < 100; ++i) {
      auto pass = Run(wanted);
      EXPECT_TRUE(pass) << pass.error().message;
      if (!pass) return {};
      if (!pass->events_in_flight) return *pass;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "user events still in flight";
    return {};
  }

  std::map<std::string, store::AppleUser> Rows() {
    std::map<std::string, store::AppleUser> out;
    auto rows = store_->ListAppleUsers(kTenant, token_.id);
    EXPECT_TRUE(rows) << rows.error().message;
    if (rows) {
      for (auto& r : *rows) out[r.client_user_id] = r;
    }
    return out;
  }

  std::unique_ptr<apple::Client> client_;
  store::VppToken token_;
  EngineOptions options_;
  apple::ClientOptions client_options_;
};
INSTANTIATE_TEST_SUITE_P(Sync, AppleUsersTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

TEST_P(AppleUsersTest, WantedUsersAreRegisteredWithTheirInvitationThenAssociated) {
  const std::string ann = DirectoryUser("ann@contoso.example", "ann.mail@contoso.example");
  const std::string bob = DirectoryUser("bob@contoso.example");
  DirectoryUser("carl@contoso.example");  // not wanted: left alone

  auto first = Run({ann, bob});
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->created, 2);
  EXPECT_TRUE(first->events_in_flight);
  ASSERT_EQ(first->by_client_user_id.size(), 2u);
  EXPECT_EQ(first->by_client_user_id.at(ann).status, "creating");
  EXPECT_FALSE(first->by_client_user_id.at(ann).event_id.empty());
  auto apple = AtApple();
  ASSERT_EQ(apple.size(), 0u) << "the event has not resolved yet";

  AppleUsersPass settled = Settle({ann, bob});
  EXPECT_EQ(settled.waiting, 2);
  apple = AtApple();
  ASSERT_EQ(apple.size(), 2u);
  EXPECT_EQ(apple[ann].at("email").as_string(), "ann.mail@contoso.example") << "mail first";
  EXPECT_EQ(apple[bob].at("email").as_string(), "bob@contoso.example") << "else the userPrincipalName";
  auto rows = Rows();
  EXPECT_EQ(rows[ann].status, "Registered");
  EXPECT_EQ(rows[ann].user_id, ann);
  EXPECT_EQ(rows[ann].email, "ann.mail@contoso.example");
  EXPECT_EQ(rows[ann].invite_code, std::string(apple[ann].at("inviteCode").as_string()));
  EXPECT_EQ(rows[ann].invite_url,
            "https://business.apple.com/vpp-associate?inviteCode=" + rows[ann].invite_code + "&mt=8");
  EXPECT_EQ(AppleRequests("POST /mdm/v2/users/create"), 1);

  Accept({ann});
  auto after = Run({ann, bob});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->created, 0);
  EXPECT_EQ(after->waiting, 1);
  rows = Rows();
  EXPECT_EQ(rows[ann].status, "Associated");
  EXPECT_FALSE(rows[ann].id_hash.empty());
  EXPECT_EQ(rows[ann].invite_code, "");
  EXPECT_EQ(rows[bob].status, "Registered");

  Accept({bob});
  ASSERT_TRUE(Run({ann, bob}));
  EXPECT_EQ(Rows()[bob].status, "Associated");
  // Everyone associated: a pass has nothing to ask Apple.
  const std::int64_t before = AppleRequests();
  auto idle = Run({ann, bob});
  ASSERT_TRUE(idle);
  EXPECT_EQ(idle->waiting, 0);
  EXPECT_FALSE(idle->events_in_flight);
  EXPECT_EQ(AppleRequests(), before);
}

TEST_P(AppleUsersTest, CreatesGoInChunksOfMaxUsers) {
  Control("POST", "/_sim/settings", R"({"limits":{"maxUsers":2}})");
  std::set<std::string> wanted;
  for (int i = 0; i < 5; ++i) wanted.insert(DirectoryUser("u" + std::to_string(i) + "@contoso.example"));
  auto pass = Run(wanted);
  ASSERT_TRUE(pass) << pass.error().message;
  EXPECT_EQ(pass->created, 5);
  EXPECT_EQ(AppleRequests("POST /mdm/v2/users/create"), 3);
  EXPECT_EQ(store_->ListAppleEvents(kTenant, token_.id)->size(), 3u);
  EXPECT_EQ(Settle(wanted).waiting, 5);
  EXPECT_EQ(AtApple().size(), 5u);
}

TEST_P(AppleUsersTest, ADeletedDirectoryUserIsRetiredAndItsLicencesReleased) {
  const std::string ann = DirectoryUser("ann@contoso.example");
  const std::string bob = DirectoryUser("bob@contoso.example");
  Settle({ann, bob});
  Accept({ann});
  Control("POST", "/_sim/locations/" + std::string(kUid) + "/assignments",
          R"({"add":[{"adamId":")" + std::string(kAdam) + R"(","clientUserId":")" + ann + R"("}]})");
  ASSERT_TRUE(store_->DeleteUser(kTenant, ann));

  auto pass = Run({bob});
  ASSERT_TRUE(pass) << pass.error().message;
  EXPECT_EQ(pass->retired, 1);
  EXPECT_EQ(pass->by_client_user_id.at(ann).status, "retiring");
  AppleUsersPass settled = Settle({bob});
  EXPECT_EQ(settled.by_client_user_id.at(ann).status, "Retired");
  EXPECT_EQ(settled.by_client_user_id.at(bob).status, "Registered") << "out of scope is not deleted";
  EXPECT_EQ(AtApple()[ann].at("status").as_string(), "Retired");
  EXPECT_TRUE(Export().at("assignments").as_array().empty()) << "a retired user's revocable licence is released";
  // Done once: the next pass sends nothing more.
  EXPECT_EQ(Run({bob})->retired, 0);
  EXPECT_EQ(AppleRequests("POST /mdm/v2/users/retire"), 1);
}

TEST_P(AppleUsersTest, WithReclaimNeverADeletedUserStaysRegistered) {
  options_.reconcile.reclaim = false;
  const std::string ann = DirectoryUser("ann@contoso.example");
  Settle({ann});
  ASSERT_TRUE(store_->DeleteUser(kTenant, ann));
  auto pass = Run({});
  ASSERT_TRUE(pass);
  EXPECT_EQ(pass->retired, 0);
  EXPECT_EQ(AppleRequests("POST /mdm/v2/users/retire"), 0);
  EXPECT_EQ(Rows()[ann].status, "Registered");
}

TEST_P(AppleUsersTest, ARefusedUserIsReportedAndNotSentAgainUntilItChanges) {
  const std::string ann = DirectoryUser("ann@contoso.example");
  const std::string bob = DirectoryUser("bob@contoso.example");
  // Apple: ann's Apple Account is associated with another user of the location.
  Control("POST", "/_sim/faults",
          R"({"path":"/mdm/v2/users/create","kind":"event_failure","errorNumber":9641,"clientUserIds":[")" + ann +
              R"("],"maxHits":1})");
  AppleUsersPass pass = Settle({ann, bob});
  EXPECT_EQ(pass.failed, 1);
  EXPECT_EQ(pass.waiting, 1);
  auto rows = Rows();
  EXPECT_EQ(rows[ann].status, "failed");
  EXPECT_EQ(rows[ann].error_code, "9641");
  EXPECT_FALSE(rows[ann].error_message.empty());
  EXPECT_EQ(rows[bob].status, "Registered");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Run({ann, bob}));
  EXPECT_EQ(AppleRequests("POST /mdm/v2/users/create"), 1) << "not retried forever";

  // The user changed (another address): tried again.
  ASSERT_TRUE(store_->UpdateUser(kTenant, ann, [](store::User& u) -> Status {
    u.mail = "ann.new@contoso.example";
    return {};
  }));
  pass = Settle({ann, bob});
  EXPECT_EQ(pass.failed, 0);
  EXPECT_EQ(Rows()[ann].status, "Registered");
  EXPECT_EQ(Rows()[ann].error_code, "");
  EXPECT_EQ(AppleRequests("POST /mdm/v2/users/create"), 2);
}

TEST_P(AppleUsersTest, AnEmailAppleRefusesOutrightFailsThoseUsers) {
  const std::string ann = DirectoryUser("not-an-email");
  auto pass = Run({ann});
  ASSERT_TRUE(pass) << pass.error().message;
  EXPECT_EQ(pass->failed, 1);
  EXPECT_FALSE(pass->events_in_flight);
  EXPECT_EQ(Rows()[ann].status, "failed");
  EXPECT_EQ(Rows()[ann].error_code, "9717");
}

// A kill -9 after the rows were written but before Apple answered (or after
// Apple accepted but before the event was recorded) leaves rows creating without
// an event: the next pass sends them again, and Apple's "exists already" (9716)
// for the ones it had created counts as done.
TEST_P(AppleUsersTest, UsersLeftWithoutAnEventAreSentAgainAndNothingIsRegisteredTwice) {
  const std::string ann = DirectoryUser("ann@contoso.example");
  const std::string bob = DirectoryUser("bob@contoso.example");
  // What the killed pass left: both written, only ann's create reached Apple.
  store::AppleUser a;
  a.client_user_id = ann;
  a.user_id = ann;
  a.email = "ann@contoso.example";
  a.status = "creating";
  store::AppleUser b = a;
  b.client_user_id = b.user_id = bob;
  b.email = "bob@contoso.example";
  ASSERT_TRUE(store_->PutAppleUsers(kTenant, token_.id, {a, b}));
  auto accepted = client_->CreateUsers({{ann, "ann@contoso.example", ""}});
  ASSERT_TRUE(accepted);
  std::this_thread::sleep_for(60ms);

  AppleUsersPass pass = Settle({ann, bob});
  EXPECT_EQ(pass.failed, 0);
  EXPECT_EQ(pass.waiting, 2);
  auto rows = Rows();
  EXPECT_EQ(rows[ann].status, "Registered");
  EXPECT_EQ(rows[ann].error_code, "");
  EXPECT_FALSE(rows[ann].invite_code.empty());
  EXPECT_EQ(rows[bob].status, "Registered");
  EXPECT_EQ(AtApple().size(), 2u);
}

// An Apple client that kills its process (SIGKILL, as kill -9) right after Apple
// accepted a users/create: the event is at Apple, not in the store.
class KilledAfterCreate final : public apple::Client {
 public:
  explicit KilledAfterCreate(apple::Client& real) : real_(real) {}
  apple::AppleResult<apple::EventResponse> CreateUsers(const std::vector<apple::ManagedUser>& users) override {
    auto accepted = real_.CreateUsers(users);
    if (accepted) ::raise(SIGKILL);
    return accepted;
  }
  apple::AppleResult<apple::ServiceConfig> GetServiceConfig() override { return real_.GetServiceConfig(); }
  apple::AppleResult<apple::ClientConfig> GetClientConfig() override { return real_.GetClientConfig(); }
  apple::AppleResult<apple::ClientConfig> SetClientConfig(const apple::MdmInfo& m) override {
    return real_.SetClientConfig(m);
  }
  apple::AppleResult<apple::WalkResult> WalkAssets(const apple::AssetFilter& f,
                                                   const apple::PageCallback<apple::Asset>& cb) override {
    return real_.WalkAssets(f, cb);
  }
  apple::AppleResult<apple::WalkResult> WalkAssignments(const apple::AssignmentFilter& f,
                                                        const apple::PageCallback<apple::AssignmentRef>& cb) override {
    return real_.WalkAssignments(f, cb);
  }
  apple::AppleResult<apple::WalkResult> WalkUsers(const apple::UserFilter& f,
                                                  const apple::PageCallback<apple::User>& cb) override {
    return real_.WalkUsers(f, cb);
  }
  apple::AppleResult<apple::EventResponse> Associate(const apple::ManageAssetsRequest& r) override {
    return real_.Associate(r);
  }
  apple::AppleResult<apple::EventResponse> Disassociate(const apple::ManageAssetsRequest& r) override {
    return real_.Disassociate(r);
  }
  apple::AppleResult<apple::EventResponse> Revoke(const std::vector<std::string>& u,
                                                  const std::vector<std::string>& s) override {
    return real_.Revoke(u, s);
  }
  apple::AppleResult<apple::EventResponse> UpdateUsers(const std::vector<apple::ManagedUser>& users) override {
    return real_.UpdateUsers(users);
  }
  apple::AppleResult<apple::EventResponse> RetireUsers(const std::vector<std::string>& ids) override {
    return real_.RetireUsers(ids);
  }
  apple::AppleResult<apple::EventStatus> GetEventStatus(const std::string& id) override {
    return real_.GetEventStatus(id);
  }
  apple::AppleResult<apple::EventStatus> WaitForEvent(const std::string& id, std::chrono::milliseconds i,
                                                      std::chrono::milliseconds w) override {
    return real_.WaitForEvent(id, i, w);
  }
  apple::AppleResult<std::vector<apple::AppMetadata>> LookupMetadata(const std::vector<std::string>& ids) override {
    return real_.LookupMetadata(ids);
  }

 private:
  apple::Client& real_;
};

// kill -9 of a process in the middle of a pass, after Apple accepted the create
// and before the event was recorded: nothing is lost and no one registered twice.
TEST_P(AppleUsersTest, AKill9AfterAppleAcceptedLosesNothing) {
  const std::string ann = DirectoryUser("ann@contoso.example");
  const std::string bob = DirectoryUser("bob@contoso.example");
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child: a store and an Apple client of its own (never the parent's), and
    // never a return (no destructor of the parent's objects runs here).
    auto store = db_->Open(store_options_);
    auto real = apple::Client::Create(client_options_);
    if (!store || !real) ::_exit(2);
    KilledAfterCreate killed(**real);
    (void)RunWith(**store, killed, {ann, bob});
    ::_exit(3);  // not reached: the create kills the process
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_EQ(AppleRequests("POST /mdm/v2/users/create"), 1);
  auto rows = Rows();
  ASSERT_EQ(rows.size(), 2u) << "written before the request";
  EXPECT_EQ(rows[ann].status, "creating");
  EXPECT_EQ(rows[ann].event_id, "") << "the process died before recording it";
  EXPECT_TRUE(store_->ListAppleEvents(kTenant, token_.id)->empty());

  AppleUsersPass pass = Settle({ann, bob});
  EXPECT_EQ(pass.failed, 0) << "Apple's 9716 for the users it had is no refusal";
  EXPECT_EQ(pass.waiting, 2);
  rows = Rows();
  EXPECT_EQ(rows[ann].status, "Registered");
  EXPECT_EQ(rows[bob].status, "Registered");
  EXPECT_FALSE(rows[bob].invite_code.empty());
  EXPECT_EQ(AtApple().size(), 2u);
  EXPECT_EQ(AppleRequests("POST /mdm/v2/users/create"), 2) << "sent again once";
}

TEST_P(AppleUsersTest, AppleUnreachableLeavesTheUsersToSendAndTheJobComingBack) {
  const std::string ann = DirectoryUser("ann@contoso.example");
  Control("POST", "/_sim/faults", R"({"path":"/mdm/v2/users/create","kind":"unavailable","maxHits":1})");
  auto failed = Run({ann});
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, Code::kUnavailable);
  EXPECT_EQ(Rows()[ann].status, "creating");
  EXPECT_EQ(Rows()[ann].event_id, "");
  AppleUsersPass pass = Settle({ann});
  EXPECT_EQ(pass.waiting, 1);
  EXPECT_EQ(AtApple().size(), 1u);
}

// A /users walk that meets a user whose create vppd has not seen end yet must
// not move past it: once the event ends (without the code), a later walk still
// brings that user's invitation.
TEST_P(AppleUsersTest, AUserPassedOverWhileInFlightGetsItsInvitationFromALaterWalk) {
  const std::string ann = DirectoryUser("ann@contoso.example");
  Settle({ann});  // ann waits for her invitation to be accepted: every pass walks /users
  options_.event_poll_interval = 1h;
  const std::string bob = DirectoryUser("bob@contoso.example");
  auto first = Run({ann, bob});
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->created, 1);
  std::this_thread::sleep_for(80ms);  // Apple has made bob Registered; vppd has not polled
  ASSERT_TRUE(Run({ann, bob}));
  const std::string event = Rows()[bob].event_id;
  ASSERT_FALSE(event.empty());
  EXPECT_EQ(Rows()[bob].status, "creating");
  // The event ends as a /status poll ends it: no invitation code with it.
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenant, token_.id, event, {}));
  EXPECT_EQ(Rows()[bob].invite_code, "");
  ASSERT_TRUE(Run({ann, bob}));
  EXPECT_EQ(Rows()[bob].status, "Registered");
  EXPECT_EQ(Rows()[bob].invite_code, std::string(AtApple()[bob].at("inviteCode").as_string()));
}

TEST_P(AppleUsersTest, ARetiredUserWantedAgainIsRegisteredAgain) {
  const std::string ann = DirectoryUser("ann@contoso.example");
  Settle({ann});
  ASSERT_TRUE(client_->RetireUsers({ann}));  // retired at Apple by someone else
  std::this_thread::sleep_for(60ms);
  ASSERT_TRUE(Run({ann}));  // the walk shows it Retired
  EXPECT_EQ(Rows()[ann].status, "Retired");
  AppleUsersPass pass = Settle({ann});
  EXPECT_EQ(pass.by_client_user_id.at(ann).status, "Registered");
  EXPECT_EQ(AtApple()[ann].at("status").as_string(), "Registered");
}

}  // namespace
}  // namespace vppd::sync
