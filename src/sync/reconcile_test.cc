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

namespace vppd::sync {
namespace {

using namespace std::chrono_literals;
using testing::Backend;

constexpr const char* kTenant = "11111111-1111-1111-1111-111111111111";
constexpr const char* kAdam = "408709785";
constexpr const char* kUid = "2049025000431439";

class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("vppd-reconcile") {}
};

class ReconcileTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    VPPD_SKIP_WITHOUT_POSTGRES(GetParam());
    db_.emplace(GetParam(), dir_.path());
    store::SqliteOptions options;
    options.path = db_->path();
    options.secrets = std::make_shared<SecretBox>(SecretBox::FromKey(std::string(32, 'k')));
    auto opened = db_->Open(options);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
    ASSERT_TRUE(store_->PutTenant({kTenant, "T", true, 0}));
  }

  void TearDown() override {
    engine_.reset();
    server_.reset();
  }

  // Apple: one location, one device-assignable app with `total` licences.
  void StartApple(int total) {
    const std::string data = dir_.path() + "/sim.json";
    std::ofstream(data) << R"({"locations": [{"uId": ")" << kUid << R"(", "name": "School",
      "assets": [{"adamId": ")"
                        << kAdam << R"(", "totalCount": )" << total << R"(, "supportedPlatforms": ["iOS"]}],
      "assignments": []}]})";
    sim::SimOptions options;
    options.data_file = data;
    options.event_delay = 20ms;
    auto created = sim::Simulator::Create(options, Clock::Real());
    ASSERT_TRUE(created) << created.error().message;
    sim_ = std::move(*created);
    http::ServerOptions http;
    http.host = "127.0.0.1";
    http.port = 0;
    http.threads = 2;
    sim::Simulator* sim = sim_.get();
    auto server = http::Server::Start(http, [sim](http::Request& r) { return sim->Handle(r); });
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
    url_ = "http://127.0.0.1:" + std::to_string(server_->port()) + "/mdm/v2";
    stoken_ =
        std::string(Control("GET", "/_sim/locations/" + std::string(kUid)).at("tokens").at(0).at("sToken").as_string());
    MakeEngine();
    store::VppToken t;
    t.token = stoken_;
    t.state = "valid";
    t.expiration = Clock::Real().Now() + 86'400'000'000LL * 365;
    auto token = store_->CreateToken(kTenant, t);
    ASSERT_TRUE(token) << token.error().message;
    token_ = token->id;
    Sync();
    store::ListQuery query;
    auto apps = store_->ListApps(kTenant, query);
    ASSERT_TRUE(apps && apps->items.size() == 1);
    app_ = apps->items[0].id;
  }

  void MakeEngine() {
    EngineOptions o;
    o.apple_url = url_;
    o.installation_id = "11111111-2222-3333-4444-555555555555";
    o.event_poll_interval = 30ms;
    o.auto_sync_interval = std::chrono::seconds(0);
    o.retry.max_attempts = 2;
    o.reconcile = reconcile_options_;
    o.notification_url = notification_url_;
    o.event_notification_wait = event_notification_wait_;
    engine_options_ = o;
    engine_ = std::make_unique<Engine>(*store_, o);
  }

  boost::json::value Control(const std::string& method, const std::string& target, const std::string& body = "") {
    http::Request req;
    req.method = method;
    req.target = target;
    req.body = body;
    req.host = "127.0.0.1";
    req.scheme = "http";
    if (!body.empty()) req.headers.push_back({"Content-Type", "application/json"});
    http::Response r = sim_->Handle(req);
    EXPECT_LT(r.status, 300) << target << ": " << r.body;
    return r.body.empty() ? boost::json::value() : boost::json::parse(r.body);
  }

  // The serials Apple holds the app for.
  std::set<std::string> AtApple() {
    http::Request req;
    req.method = "GET";
    req.target = "/mdm/v2/assignments?adamId=" + std::string(kAdam);
    req.host = "127.0.0.1";
    req.scheme = "http";
    req.headers.push_back({"Authorization", "Bearer " + stoken_});
    std::set<std::string> out;
    http::Response r = sim_->Handle(req);
    auto body = boost::json::parse(r.body);
    for (const auto& a : body.at("assignments").as_array()) {
      if (const auto* s = a.as_object().if_contains("serialNumber")) out.insert(std::string(s->as_string()));
    }
    return out;
  }

  // Apple requests so far (every endpoint, this location).
  std::int64_t AppleRequests() {
    auto counters = Control("GET", "/_sim/counters");
    std::int64_t n = 0;
    for (const auto& [path, count] : counters.at("total").as_object()) {
      if (std::string_view(path).find("/mdm/v2/") != std::string_view::npos) n += count.as_int64();
    }
    return n;
  }

  // Runs jobs until none is left (events in flight come back after their poll time).
  void Drain(std::chrono::seconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto ran = engine_->RunOne();
      ASSERT_TRUE(ran) << ran.error().message;
      if (*ran) continue;
      if (*store_->CountJobs() == 0) return;
      std::this_thread::sleep_for(10ms);
    }
    FAIL() << "jobs still queued after the timeout";
  }

  void Sync() {
    ASSERT_TRUE(RequestJob(*store_, kTenant, token_, "syncLicenses", "", Clock::Real().Now()));
    Drain();
  }

  void Reconcile(bool force = false) {
    ASSERT_TRUE(RequestReconcile(*store_, kTenant, token_, Clock::Real().Now(), force));
    Drain();
  }

  // n devices (serials SER000, SER001, ...) in a new group; returns the group id.
  std::string GroupOf(int from, int n, std::vector<std::string>* device_ids = nullptr) {
    store::Group g;
    g.display_name = "G" + std::to_string(from);
    auto group = store_->CreateGroup(kTenant, g);
    EXPECT_TRUE(group) << group.error().message;
    for (int i = from; i < from + n; ++i) {
      const std::string id = DeviceFor(i);
      EXPECT_TRUE(store_->AddGroupMember(kTenant, group->id, id));
      if (device_ids) device_ids->push_back(id);
    }
    return group->id;
  }

  // The Entra device of serial i (created with its managed device the first time).
  std::string DeviceFor(int i) {
    if (auto it = devices_.find(i); it != devices_.end()) return it->second;
    char serial[16];
    std::snprintf(serial, sizeof serial, "SER%03d", i);
    store::Device d;
    d.device_id = "aad-" + std::to_string(i);
    auto device = store_->CreateDevice(kTenant, d);
    EXPECT_TRUE(device) << device.error().message;
    store::ManagedDevice m;
    m.serial_number = serial;
    m.azure_ad_device_id = d.device_id;
    m.device_name = "iPad " + std::to_string(i);
    auto managed = store_->CreateManagedDevice(kTenant, m);
    EXPECT_TRUE(managed) << managed.error().message;
    managed_[i] = managed->id;
    return devices_[i] = device->id;
  }

  std::string Assign(const std::string& group, const std::string& intent = "required",
                     const char* target = "#microsoft.graph.groupAssignmentTarget") {
    store::AppAssignment a;
    a.app_id = app_;
    a.intent = intent;
    a.target_type = target;
    a.group_id = group;
    a.use_device_licensing = target != std::string("#microsoft.graph.exclusionGroupAssignmentTarget");
    a.settings_json = R"({"@odata.type":"#microsoft.graph.iosVppAppAssignmentSettings","useDeviceLicensing":true})";
    auto created = store_->CreateAppAssignment(kTenant, a);
    EXPECT_TRUE(created) << created.error().message;
    return created ? created->id : "";
  }

  std::map<std::string, store::DeviceLicenseState> States() {
    std::map<std::string, store::DeviceLicenseState> out;
    auto states = store_->DeviceLicenseStates(kTenant, app_);
    EXPECT_TRUE(states) << states.error().message;
    if (states) {
      for (auto& s : *states) out[s.serial_number] = s;
    }
    return out;
  }

  boost::json::object Report() {
    auto r = store_->GetReconcileReport(kTenant, token_);
    EXPECT_TRUE(r && !r->first.empty());
    return boost::json::parse(r->first).as_object();
  }

  static std::set<std::string> Serials(int from, int n) {
    std::set<std::string> out;
    for (int i = from; i < from + n; ++i) {
      char serial[16];
      std::snprintf(serial, sizeof serial, "SER%03d", i);
      out.insert(serial);
    }
    return out;
  }

  TempDir dir_;
  std::optional<testing::TestDb> db_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<sim::Simulator> sim_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<Engine> engine_;
  ReconcileOptions reconcile_options_;
  std::string notification_url_;  // set before StartApple: the sync registers an endpoint
  std::chrono::milliseconds event_notification_wait_{300'000};
  EngineOptions engine_options_;
  std::string url_, stoken_, token_, app_;
  std::map<int, std::string> devices_, managed_;
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
  EXPECT_EQ(Report().at("pass").as_string(), "changes") << "polling the events: nothing changed";
  EXPECT_EQ(Report().at("devicesDecided").as_int64(), 0);

  // One device leaves, one joins the exclusions, one the uninstall group, a new one joins.
  ASSERT_TRUE(store_->RemoveGroupMember(kTenant, group, ids[1]));
  ASSERT_TRUE(store_->AddGroupMember(kTenant, excluded->id, ids[4]));
  ASSERT_TRUE(store_->AddGroupMember(kTenant, uninstall->id, ids[0]));
  ASSERT_TRUE(store_->AddGroupMember(kTenant, group, DeviceFor(6)));
  one_pass();
  auto report = Report();
  EXPECT_EQ(report.at("pass").as_string(), "changes");
  EXPECT_EQ(report.at("devicesDecided").as_int64(), 4);
  EXPECT_EQ(report.at("wanted").as_int64(), 6) << "the whole token's figures are the last full pass's";
  EXPECT_EQ(report.at("changes").at("wanted").as_int64(), 1) << "of the four: SER006";
  EXPECT_EQ(report.at("associated").as_int64(), 1);
  EXPECT_EQ(report.at("disassociated").as_int64(), 3);
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
