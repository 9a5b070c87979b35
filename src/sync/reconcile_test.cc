// The reconcile job end to end: a real store (SQLite, and PostgreSQL when
// VPPD_TEST_DATABASE_URL is set), apple-vpp-sim in-process over real HTTP, the
// engine's jobs run inline (Engine::RunOne). The directory and the assignments
// are written through the store, as the Graph handlers write them; what Apple
// holds is read back from the simulator.
#include <chrono>
#include <fstream>
#include <map>
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

class ReconcileTest : public testing::ReconcileFixture {
 protected:
  ReconcileTest() : ReconcileFixture("vppd-reconcile") {}
};
INSTANTIATE_TEST_SUITE_P(Reconcile, ReconcileTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

TEST_P(ReconcileTest, AssignedDevicesGetTheirLicenceAndASecondPassCallsAppleForNothing) {
  StartApple(100);
  const std::string group = GroupOf(0, 5);
  Assign(group);
  Reconcile();
  EXPECT_EQ(AtApple(), Serials(0, 5));
  auto states = States();
  ASSERT_EQ(states.size(), 5u);
  for (auto& [serial, s] : states) EXPECT_EQ(s.state, "granted") << serial;
  EXPECT_EQ(Report().at("granted").as_int64(), 5);
  auto token = store_->GetToken(kTenant, token_);
  EXPECT_EQ(token->action_results.back().action_name, "reconcileLicenses");
  EXPECT_EQ(token->action_results.back().action_state, "done");

  const std::int64_t before = AppleRequests();
  const auto counters = boost::json::serialize(Control("GET", "/_sim/counters").at("total"));
  Reconcile();
  EXPECT_EQ(AppleRequests(), before) << "nothing changed: no Apple call; before " << counters << ", after "
                                     << boost::json::serialize(Control("GET", "/_sim/counters").at("total"));
  EXPECT_EQ(AtApple(), Serials(0, 5));
}

TEST_P(ReconcileTest, ADeviceRemovedFromTheGroupOrDeletedLosesItsLicence) {
  StartApple(100);
  std::vector<std::string> ids;
  const std::string group = GroupOf(0, 5, &ids);
  Assign(group);
  Reconcile();
  ASSERT_TRUE(store_->RemoveGroupMember(kTenant, group, ids[1]));
  ASSERT_TRUE(store_->DeleteManagedDevice(kTenant, managed_[3]));
  Reconcile();
  EXPECT_EQ(AtApple(), (std::set<std::string>{"SER000", "SER002", "SER004"}));
  auto states = States();
  EXPECT_EQ(states.size(), 3u) << "released licences are not shown";
}

TEST_P(ReconcileTest, APassAfterADirectoryChangeDecidesOnlyTheDevicesItTouchedAsAFullPassWould) {
  StartApple(100);
  std::vector<std::string> ids;
  const std::string group = GroupOf(0, 6, &ids);
  Assign(group);
  store::Group g;
  g.display_name = "excluded";
  auto excluded = store_->CreateGroup(kTenant, g);
  ASSERT_TRUE(excluded);
  Assign(excluded->id, "required", "#microsoft.graph.exclusionGroupAssignmentTarget");
  g.display_name = "uninstall";
  auto uninstall = store_->CreateGroup(kTenant, g);
  ASSERT_TRUE(uninstall);
  Assign(uninstall->id, "uninstall");
  // One pass at a time: the job's later passes only poll the events.
  auto one_pass = [&](bool force = false) {
    ASSERT_TRUE(RequestReconcile(*store_, kTenant, token_, Clock::Real().Now(), force));
    auto ran = engine_->RunOne();
    ASSERT_TRUE(ran && *ran);
  };
  one_pass();
  EXPECT_EQ(Report().at("pass").as_string(), "full") << "the first pass reads everything";
  EXPECT_EQ(Report().at("wanted").as_int64(), 6);
  Drain();
  ASSERT_EQ(AtApple(), Serials(0, 6));
  EXPECT_EQ(Report().at("pass").as_string(), "full") << "polling the events: nothing changed, figures recounted";

  // One device leaves, one joins the exclusions, one the uninstall group, a new one joins.
  ASSERT_TRUE(store_->RemoveGroupMember(kTenant, group, ids[1]));
  ASSERT_TRUE(store_->AddGroupMember(kTenant, excluded->id, ids[4]));
  ASSERT_TRUE(store_->AddGroupMember(kTenant, uninstall->id, ids[0]));
  ASSERT_TRUE(store_->AddGroupMember(kTenant, group, DeviceFor(6)));
  one_pass();
  auto report = Report();
  EXPECT_EQ(report.at("pass").as_string(), "changes");
  EXPECT_EQ(report.at("devicesDecided").as_int64(), 4);
  EXPECT_EQ(report.at("wanted").as_int64(), 4) << "6, less SER000 (uninstall), SER001, SER004, plus SER006";
  EXPECT_EQ(report.at("changes").at("wanted").as_int64(), 1) << "of the four: SER006";
  EXPECT_EQ(report.at("associated").as_int64(), 1);
  EXPECT_EQ(report.at("disassociated").as_int64(), 3);
  // Its totals: the tally taken at its start moved by the changed devices' rows,
  // which is what counting every row finds.
  auto rows = store_->ListDeviceLicenses(kTenant, token_);
  ASSERT_TRUE(rows);
  std::map<std::string, std::int64_t> counts;
  for (const store::DeviceLicense& r : *rows) ++counts[r.state];
  EXPECT_EQ(report.at("granted").as_int64(), 3);
  EXPECT_EQ(report.at("pending").as_int64(), 1) << "SER006";
  EXPECT_EQ(report.at("reclaimPending").as_int64(), 3);
  EXPECT_EQ(report.at("failed").as_int64(), 0);
  for (const char* state : {"granted", "pending", "reclaimPending"}) {
    EXPECT_EQ(report.at(state).as_int64(), counts[state]) << state;
  }
  Drain();
  EXPECT_EQ(AtApple(), (std::set<std::string>{"SER002", "SER003", "SER005", "SER006"}));
  EXPECT_EQ(Report().at("granted").as_int64(), 4) << "the rows are counted as they are now";

  // A full pass finds nothing left to do: the pass over changes decided as it would.
  const std::int64_t before = AppleRequests();
  one_pass(/*force=*/true);
  EXPECT_EQ(Report().at("pass").as_string(), "full");
  EXPECT_EQ(Report().at("wanted").as_int64(), 4);
  EXPECT_EQ(AppleRequests(), before) << "nothing to do";

  // The assignments changed: the next pass reads everything again.
  Assign(group, "available");
  one_pass();
  EXPECT_EQ(Report().at("pass").as_string(), "full");
  EXPECT_EQ(AppleRequests(), before);
}

TEST_P(ReconcileTest, APassThatAppleStoppedIsFollowedByAFullOne) {
  StartApple(100);
  const std::string group = GroupOf(0, 3);
  Reconcile();  // nothing assigned yet: the directory's changes are looked at and forgotten
  Assign(group);
  // Apple is unavailable for the associations (the client retries: every request fails).
  Control("POST", "/_sim/faults", R"({"path": "/mdm/v2/assets/associate", "kind": "unavailable", "rate": 1})");
  ASSERT_TRUE(RequestReconcile(*store_, kTenant, token_, Clock::Real().Now()));
  ASSERT_TRUE(*engine_->RunOne());
  EXPECT_FALSE(Report().at("error").as_string().empty());
  EXPECT_TRUE(AtApple().empty());
  Control("DELETE", "/_sim/faults");
  // Nothing changed since in the directory or the assignments: still, what the
  // stopped pass left unsent is decided again by a full pass.
  Reconcile();
  EXPECT_EQ(AtApple(), Serials(0, 3));
}

TEST_P(ReconcileTest, OversubscribedDevicesFailInOrderAndAreServedWhenLicencesAreBought) {
  StartApple(3);
  const std::string group = GroupOf(0, 5);
  Assign(group);
  Reconcile();
  EXPECT_EQ(AtApple(), Serials(0, 3)) << "earliest membership first";
  auto states = States();
  EXPECT_EQ(states["SER003"].state, "failed");
  EXPECT_EQ(states["SER003"].error_code, "9709");
  EXPECT_EQ(states["SER004"].error_message, "not enough licences");
  EXPECT_EQ(Report().at("notEnoughLicenses").as_int64(), 2);

  Control("POST", "/_sim/locations/" + std::string(kUid) + "/purchase",
          R"({"adamId": ")" + std::string(kAdam) + R"(", "count": 2})");
  Sync();  // the completed sync queues a reconcile, which Drain runs
  EXPECT_EQ(AtApple(), Serials(0, 5));
  for (auto& [serial, s] : States()) EXPECT_EQ(s.state, "granted") << serial;
}

TEST_P(ReconcileTest, UninstallIntentAndExclusionsTakeLicencesBack) {
  StartApple(100);
  std::vector<std::string> ids;
  const std::string group = GroupOf(0, 4, &ids);
  const std::string assignment = Assign(group);
  store::Group g;
  g.display_name = "excluded";
  auto excluded = store_->CreateGroup(kTenant, g);
  ASSERT_TRUE(excluded);
  ASSERT_TRUE(store_->AddGroupMember(kTenant, excluded->id, ids[2]));
  Assign(excluded->id, "required", "#microsoft.graph.exclusionGroupAssignmentTarget");
  Reconcile();
  EXPECT_EQ(AtApple(), (std::set<std::string>{"SER000", "SER001", "SER003"})) << "the excluded device gets none";

  ASSERT_TRUE(store_->UpdateAppAssignment(kTenant, app_, assignment, [](store::AppAssignment& a) -> Status {
    a.intent = "uninstall";
    return {};
  }));
  Reconcile();
  EXPECT_TRUE(AtApple().empty());
  EXPECT_TRUE(States().empty());
}

TEST_P(ReconcileTest, ReclaimsOfADirectoryChangeAreCappedUnlessForced) {
  StartApple(100);
  std::vector<std::string> ids;
  const std::string group = GroupOf(0, 30, &ids);
  Assign(group);
  Reconcile();
  ASSERT_EQ(AtApple().size(), 30u);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(store_->RemoveGroupMember(kTenant, group, ids[i]));
  Reconcile();
  // max(10, 0.2 × 30) = 10 reclaimed, 10 held back and reported.
  EXPECT_EQ(AtApple().size(), 20u);
  EXPECT_EQ(Report().at("heldBack").as_int64(), 10);
  EXPECT_EQ(Report().at("heldBackByApp").as_array().size(), 1u);
  EXPECT_EQ(store_->GetToken(kTenant, token_)->action_results.back().action_state, "failed");
  Reconcile(/*force=*/true);
  EXPECT_EQ(AtApple(), Serials(20, 10));
  EXPECT_EQ(Report().at("heldBack").as_int64(), 0);
}

TEST_P(ReconcileTest, ReclaimNeverLeavesLicencesWhereTheyAre) {
  reconcile_options_.reclaim = false;
  StartApple(100);
  std::vector<std::string> ids;
  const std::string group = GroupOf(0, 3, &ids);
  Assign(group);
  Reconcile();
  ASSERT_TRUE(store_->RemoveGroupMember(kTenant, group, ids[0]));
  Reconcile();
  EXPECT_EQ(AtApple(), Serials(0, 3));
  EXPECT_EQ(Report().at("keptByReclaimNever").as_int64(), 1);
}

TEST_P(ReconcileTest, LicencesVppdNeverGrantedAreLeftAloneAndCountedAsUntracked) {
  StartApple(100);
  Control("POST", "/_sim/locations/" + std::string(kUid) + "/assignments",
          R"({"add": [{"adamId": ")" + std::string(kAdam) + R"(", "serialNumber": "OTHER1"}]})");
  Sync();
  const std::string group = GroupOf(0, 2);
  Assign(group);
  Reconcile();
  EXPECT_EQ(AtApple(), (std::set<std::string>{"OTHER1", "SER000", "SER001"}));
  EXPECT_EQ(Report().at("untracked").as_int64(), 1);
}

TEST_P(ReconcileTest, PerSerialFailuresAreRecordedWithApplesNumber) {
  StartApple(100);
  const std::string group = GroupOf(0, 3);
  Assign(group);
  Control("POST", "/_sim/faults",
          R"({"path": "/mdm/v2/assets/associate", "kind": "event_failure", "errorNumber": 9610,
              "serialNumbers": ["SER001"]})");
  Reconcile();
  auto states = States();
  EXPECT_EQ(states["SER000"].state, "granted");
  EXPECT_EQ(states["SER001"].state, "failed");
  EXPECT_EQ(states["SER001"].error_code, "9610");
  EXPECT_EQ(AtApple(), (std::set<std::string>{"SER000", "SER002"}));
  // Not retried by itself (no Apple call), only when forced.
  const std::int64_t before = AppleRequests();
  const auto counters = boost::json::serialize(Control("GET", "/_sim/counters").at("total"));
  Reconcile();
  EXPECT_EQ(AppleRequests(), before) << "before " << counters << ", after "
                                     << boost::json::serialize(Control("GET", "/_sim/counters").at("total"));
  Control("DELETE", "/_sim/faults");
  Reconcile(/*force=*/true);
  EXPECT_EQ(AtApple(), Serials(0, 3));
}

TEST_P(ReconcileTest, AnEventInFlightSurvivesARestartAndIsFinishedByTheNextProcess) {
  StartApple(100);
  const std::string group = GroupOf(0, 4);
  Assign(group);
  Control("POST", "/_sim/faults", R"({"path": "/mdm/v2/assets/associate", "kind": "hold_event"})");
  ASSERT_TRUE(RequestReconcile(*store_, kTenant, token_, Clock::Real().Now()));
  ASSERT_TRUE(*engine_->RunOne());  // submits, records the event, hands the job back to poll later
  auto events = store_->ListAppleEvents(kTenant, token_);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ(States()["SER000"].state, "pending");
  EXPECT_EQ(*store_->CountJobs(), 1) << "the job waits for the event";

  // The process dies: engine and store go; a new process opens the same store.
  engine_.reset();
  store_.reset();
  store::SqliteOptions options;
  options.path = db_->path();
  options.secrets = std::make_shared<SecretBox>(SecretBox::FromKey(std::string(32, 'k')));
  auto reopened = db_->Open(options);
  ASSERT_TRUE(reopened) << reopened.error().message;
  store_ = std::move(*reopened);
  MakeEngine();
  Control("POST", "/_sim/events/resolve", "{}");
  const std::int64_t associates = AppleRequests();
  Drain();
  EXPECT_EQ(AtApple(), Serials(0, 4));
  for (auto& [serial, s] : States()) EXPECT_EQ(s.state, "granted") << serial;
  EXPECT_TRUE(store_->ListAppleEvents(kTenant, token_)->empty());
  auto counters = Control("GET", "/_sim/counters").at("total").as_object();
  EXPECT_EQ(counters.at("POST /mdm/v2/assets/associate").as_int64(), 1) << "the event was not sent twice";
  EXPECT_GT(AppleRequests(), associates) << "it was polled";
}

TEST_P(ReconcileTest, AChangeWhileAPassRunsIsSeenByAnotherPass) {
  StartApple(100);
  std::vector<std::string> ids;
  const std::string group = GroupOf(0, 2, &ids);
  Assign(group);
  ASSERT_TRUE(RequestReconcile(*store_, kTenant, token_, Clock::Real().Now()));
  auto claimed = store_->ClaimJob("other", Clock::Real().Now(), 60s);
  ASSERT_TRUE(claimed && *claimed);
  // A device joins while that pass runs (after it read the directory).
  ASSERT_TRUE(store_->AddGroupMember(kTenant, group, DeviceFor(7)));
  ASSERT_TRUE(RequestReconcile(*store_, kTenant, token_, Clock::Real().Now()));
  ASSERT_TRUE(store_->FinishJob(**claimed, std::nullopt, [](store::VppToken&) -> Status { return {}; }));
  Drain();
  EXPECT_EQ(AtApple(), (std::set<std::string>{"SER000", "SER001", "SER007"}));
}

// With a registered notification endpoint an event is first polled only after
// event_notification_wait (Apple's ASSET_MANAGEMENT normally tells first); a
// notification that never came is covered by that poll.
TEST_P(ReconcileTest, WithNotificationsAnEventIsPolledOnlyAfterTheWaitAndThePollStillCovers) {
  notification_url_ = "http://127.0.0.1:9";  // nothing listens: every notification is lost
  event_notification_wait_ = 1500ms;
  StartApple(100);
  auto endpoint = store_->GetNotificationEndpoint(kTenant, token_);
  ASSERT_TRUE(endpoint && *endpoint) << "the sync registered the location";
  EXPECT_EQ((*endpoint)->registration, NotificationRegistration(engine_options_));
  Assign(GroupOf(0, 2));
  ASSERT_TRUE(RequestReconcile(*store_, kTenant, token_, Clock::Real().Now()));
  ASSERT_TRUE(*engine_->RunOne());  // submits and records the event
  auto events = store_->ListAppleEvents(kTenant, token_);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].next_poll - (*events)[0].submitted, 1'500'000) << "not polled before the wait";
  const auto statuses = [&] {
    auto total = Control("GET", "/_sim/counters").at("total").as_object();
    const auto* n = total.if_contains("GET /mdm/v2/status");
    return n ? n->as_int64() : 0;
  };
  EXPECT_FALSE(*engine_->RunOne()) << "the job waits for the event's notification";
  EXPECT_EQ(statuses(), 0);
  Drain();  // no notification comes: polled after the wait
  EXPECT_GE(statuses(), 1);
  EXPECT_EQ(AtApple(), Serials(0, 2));
  for (auto& [serial, st] : States()) EXPECT_EQ(st.state, "granted") << serial;
}

TEST_P(ReconcileTest, WithoutARegisteredEndpointAnEventIsPolledAsBefore) {
  StartApple(100);
  Assign(GroupOf(0, 1));
  ASSERT_TRUE(RequestReconcile(*store_, kTenant, token_, Clock::Real().Now()));
  ASSERT_TRUE(*engine_->RunOne());
  auto events = store_->ListAppleEvents(kTenant, token_);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].next_poll - (*events)[0].submitted, 30'000) << "event_poll_interval";
  Drain();
  EXPECT_EQ(AtApple(), Serials(0, 1));
}

TEST(EventOutcome, MapsApplesFailuresPerSerialOrForTheWholeEvent) {
  apple::EventStatus status;
  status.event_status = "FAILED";
  status.num_requested = 3;
  status.num_completed = 1;
  status.failures.push_back({9610, "License not found", {}, {"S1", "S2"}, {}});
  status.failures.push_back({9603, "Internal error", {}, {}, {}});  // names no serial, but one completed
  auto outcome = EventOutcome(status);
  ASSERT_EQ(outcome.failures.size(), 2u);
  EXPECT_EQ(outcome.failures[1].serial_number, "S2");
  EXPECT_EQ(outcome.failures[1].error_number, 9610);
  EXPECT_FALSE(outcome.all_failed);
  EXPECT_FALSE(outcome.only_serials);
  status.num_completed = 0;
  outcome = EventOutcome(status);
  ASSERT_TRUE(outcome.all_failed);
  EXPECT_EQ(outcome.all_failed->error_number, 9603);
}

}  // namespace
}  // namespace vppd::sync
