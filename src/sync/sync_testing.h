// For the sync module's end-to-end tests only: a real store (SQLite, and
// PostgreSQL when VPPD_TEST_DATABASE_URL is set; store/store_testing.h) and
// apple-vpp-sim in-process over real HTTP, the engine's jobs run inline
// (Engine::RunOne).
//
// SimulatedAppleTest is the store, the simulator and the engine; a test writes
// its Apple location as the simulator's data file. ReconcileFixture adds one
// location with one app, vppd's token for it synced, and the directory and
// assignments written through the store as the Graph handlers write them:
//
//   class ReconcileTest : public testing::ReconcileFixture {
//    protected:
//     ReconcileTest() : ReconcileFixture("vppd-reconcile") {}
//   };
//   TEST_P(ReconcileTest, ...) {
//     StartApple(100);
//     Assign(GroupOf(0, 10));
//     Reconcile();
//     EXPECT_EQ(AtApple(), Serials(0, 10));
//   }
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "http/server.h"
#include "simulator.h"
#include "store/store_testing.h"
#include "sync/sync.h"

namespace vppd::testing {

class SimulatedAppleTest : public ::testing::TestWithParam<Backend> {
 public:
  static constexpr const char* kTenant = "11111111-1111-1111-1111-111111111111";
  static constexpr const char* kUid = "2049025000431439";  // the location's uId

 protected:
  explicit SimulatedAppleTest(const std::string& dir_prefix) : dir_(dir_prefix) {}

  // The store, with the tenant kTenant. A derived SetUp calls this one first and
  // returns when SetUpStopped().
  void SetUp() override {
    VPPD_SKIP_WITHOUT_POSTGRES(GetParam());
    db_.emplace(GetParam(), dir_.path());
    store_options_.path = db_->path();
    store_options_.secrets = std::make_shared<SecretBox>(SecretBox::FromKey(std::string(32, 'k')));
    auto opened = db_->Open(store_options_);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
    ASSERT_TRUE(store_->PutTenant({kTenant, "T", true, 0}));
  }

  void TearDown() override {
    engine_.reset();
    server_.reset();
  }

  // True when SimulatedAppleTest::SetUp did not finish: a PostgreSQL instance skipped, or a fatal failure.
  bool SetUpStopped() const { return IsSkipped() || HasFatalFailure(); }

  // Starts the simulator on `data_json` (its --data file format; events resolve
  // 20 ms after Apple accepted them) behind an HTTP server on 127.0.0.1; sets url_
  // (Apple's base URL) and stoken_ (the location kUid's sToken).
  void StartSimulator(const std::string& data_json) {
    const std::string data = dir_.path() + "/sim.json";
    std::ofstream(data) << data_json;
    sim::SimOptions options;
    options.data_file = data;
    options.event_delay = std::chrono::milliseconds(20);
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
  }

  // vppd's token of kTenant for stoken_, valid for a year; an empty token (and a failure) when refused.
  store::VppToken CreateToken() {
    store::VppToken t;
    t.token = stoken_;
    t.state = "valid";
    t.expiration = Clock::Real().Now() + 86'400'000'000LL * 365;
    auto token = store_->CreateToken(kTenant, t);
    EXPECT_TRUE(token) << token.error().message;
    return token ? *token : store::VppToken{};
  }

  // The engine on the simulator, with the test's reconcile and notification options.
  void MakeEngine() {
    sync::EngineOptions o;
    o.apple_url = url_;
    o.installation_id = "11111111-2222-3333-4444-555555555555";
    o.event_poll_interval = std::chrono::milliseconds(30);
    o.auto_sync_interval = std::chrono::seconds(0);
    o.retry.max_attempts = 2;
    o.reconcile = reconcile_options_;
    o.notification_url = notification_url_;
    o.event_notification_wait = event_notification_wait_;
    if (fake_) o.clock = &*fake_;
    engine_options_ = o;
    engine_ = std::make_unique<sync::Engine>(*store_, o);
  }

  // A request to the simulator's control API (/_sim/...); its status is expected below `expect_below`.
  boost::json::value Control(const std::string& method, const std::string& target, const std::string& body = "",
                             int expect_below = 300) {
    http::Request req;
    req.method = method;
    req.target = target;
    req.body = body;
    req.host = "127.0.0.1";
    req.scheme = "http";
    if (!body.empty()) req.headers.push_back({"Content-Type", "application/json"});
    http::Response r = sim_->Handle(req);
    EXPECT_LT(r.status, expect_below) << target << ": " << r.body;
    last_status_ = r.status;
    return r.body.empty() ? boost::json::value() : boost::json::parse(r.body);
  }

  // Apple's own API (as another MDM would call it): `target` below /mdm/v2/.
  http::Response Apple(const std::string& method, const std::string& target, const std::string& body = "") {
    http::Request req;
    req.method = method;
    req.target = "/mdm/v2/" + target;
    req.body = body;
    req.host = "127.0.0.1";
    req.scheme = "http";
    req.headers.push_back({"Authorization", "Bearer " + stoken_});
    if (!body.empty()) req.headers.push_back({"Content-Type", "application/json"});
    return sim_->Handle(req);
  }

  // Requests the simulator counted for `key` ("POST /mdm/v2/users/create"), or all of Apple's API.
  std::int64_t AppleRequests(const std::string& key = "") {
    auto counters = Control("GET", "/_sim/counters");
    std::int64_t n = 0;
    for (const auto& [path, count] : counters.at("total").as_object()) {
      if (key.empty() ? std::string_view(path).find("/mdm/v2/") != std::string_view::npos : path == key) {
        n += count.as_int64();
      }
    }
    return n;
  }

  // The location as the simulator holds it (its data file format).
  boost::json::object Export() {
    return Control("GET", "/_sim/locations/" + std::string(kUid) + "/export").at("locations").at(0).as_object();
  }

  // The people behind these Registered users accept their invitations.
  void Accept(const std::vector<std::string>& ids) {
    boost::json::array a;
    for (const auto& id : ids) a.emplace_back(id);
    Control("POST", "/_sim/locations/" + std::string(kUid) + "/acceptInvitation",
            boost::json::serialize(boost::json::object{{"clientUserIds", a}}));
  }

  // Runs jobs until none is left (events in flight come back after their poll time).
  void Drain(std::chrono::seconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto ran = engine_->RunOne();
      ASSERT_TRUE(ran) << ran.error().message;
      if (*ran) continue;
      if (*store_->CountJobs() == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "jobs still queued after the timeout";
  }

  // Runs jobs until `done` holds (a job comes back while events or invitations wait).
  void RunUntil(const std::function<bool()>& done, std::chrono::seconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return;
      auto ran = engine_->RunOne();
      ASSERT_TRUE(ran) << ran.error().message;
      if (!*ran) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "not reached before the timeout";
  }

  TempDir dir_;
  std::optional<TestDb> db_;
  store::SqliteOptions store_options_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<sim::Simulator> sim_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<sync::Engine> engine_;
  // MakeEngine's options: set what a test needs before it (or before StartApple).
  sync::ReconcileOptions reconcile_options_;
  std::string notification_url_;  // the sync registers an endpoint
  std::chrono::milliseconds event_notification_wait_{300'000};
  sync::EngineOptions engine_options_;  // as MakeEngine made them
  std::optional<FakeClock> fake_;       // the engine's clock when set (a test's own store too)
  std::string url_, stoken_;
  int last_status_ = 0;  // of the last Control request
};

class ReconcileFixture : public SimulatedAppleTest {
 public:
  static constexpr const char* kAdam = "408709785";

 protected:
  using SimulatedAppleTest::SimulatedAppleTest;

  // Apple: one location, one device-assignable app with `total` licences; the
  // engine, vppd's token (token_) synced, and the app's id (app_).
  void StartApple(int total) {
    ASSERT_NO_FATAL_FAILURE(StartSimulator(
        std::string(R"({"locations": [{"uId": ")") + kUid + R"(", "name": "School", "assets": [{"adamId": ")" + kAdam +
        R"(", "totalCount": )" + std::to_string(total) + R"(, "supportedPlatforms": ["iOS"]}], "assignments": []}]})"));
    MakeEngine();
    token_ = CreateToken().id;
    ASSERT_FALSE(token_.empty());
    Sync();
    store::ListQuery query;
    auto apps = store_->ListApps(kTenant, query);
    ASSERT_TRUE(apps && apps->items.size() == 1);
    app_ = apps->items[0].id;
  }

  void Sync() {
    ASSERT_TRUE(sync::RequestJob(*store_, kTenant, token_, "syncLicenses", "", Clock::Real().Now()));
    Drain();
  }

  void Reconcile(bool force = false) {
    ASSERT_TRUE(sync::RequestReconcile(*store_, kTenant, token_, Clock::Real().Now(), force));
    Drain();
  }

  // The serials Apple holds the app for.
  std::set<std::string> AtApple() {
    std::set<std::string> out;
    auto body = boost::json::parse(Apple("GET", "assignments?adamId=" + std::string(kAdam)).body);
    for (const auto& a : body.at("assignments").as_array()) {
      if (const auto* s = a.as_object().if_contains("serialNumber")) out.insert(std::string(s->as_string()));
    }
    return out;
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
    store::Device d;
    d.device_id = "aad-" + std::to_string(i);
    auto device = store_->CreateDevice(kTenant, d);
    EXPECT_TRUE(device) << device.error().message;
    store::ManagedDevice m;
    m.serial_number = Serial(i);
    m.azure_ad_device_id = d.device_id;
    m.device_name = "iPad " + std::to_string(i);
    auto managed = store_->CreateManagedDevice(kTenant, m);
    EXPECT_TRUE(managed) << managed.error().message;
    managed_[i] = managed->id;
    return devices_[i] = device->id;
  }

  // The app assigned to `group` with device licensing (an exclusion target has no licensing of its own).
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

  // The app's device licences as Graph's deviceStatuses reads them, by serial.
  std::map<std::string, store::DeviceLicenseState> States() {
    std::map<std::string, store::DeviceLicenseState> out;
    auto states = store_->DeviceLicenseStates(kTenant, app_);
    EXPECT_TRUE(states) << states.error().message;
    if (states) {
      for (auto& s : *states) out[s.serial_number] = s;
    }
    return out;
  }

  // The token's last reconcile report.
  boost::json::object Report() {
    auto r = store_->GetReconcileReport(kTenant, token_);
    EXPECT_TRUE(r && !r->first.empty());
    return boost::json::parse(r->first).as_object();
  }

  static std::string Serial(int i) {
    char serial[16];
    std::snprintf(serial, sizeof serial, "SER%03d", i);
    return serial;
  }

  static std::set<std::string> Serials(int from, int n) {
    std::set<std::string> out;
    for (int i = from; i < from + n; ++i) out.insert(Serial(i));
    return out;
  }

  std::string token_, app_;
  std::map<int, std::string> devices_, managed_;  // by serial number's i
};

}  // namespace vppd::testing
