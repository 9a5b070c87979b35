// Revokes by app, user or device end to end: service::LicenseRevokes checks and
// records, the revokeAppLicenses job disassociates at apple-vpp-sim (in-process,
// over real HTTP) and records the outcome; a real store (SQLite, and PostgreSQL
// when VPPD_TEST_DATABASE_URL is set), the engine's jobs run inline. What Apple
// holds is read back from the simulator.
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "http/server.h"
#include "service/service.h"
#include "simulator.h"
#include "store/store_testing.h"
#include "sync/sync.h"
#include "sync/sync_testing.h"

namespace vppd::sync {
namespace {

using namespace std::chrono_literals;
using testing::Backend;

constexpr const char* kAppA = "408709785";  // held by two users and three devices
constexpr const char* kAppB = "361309726";  // held by SER000 too
constexpr const char* kAppC = "284882215";  // not revocable
constexpr const char* kUser1 = "aaaaaaaa-0000-0000-0000-000000000001";
constexpr const char* kUser2 = "aaaaaaaa-0000-0000-0000-000000000002";
constexpr const char* kUser3 = "aaaaaaaa-0000-0000-0000-000000000003";  // holds nothing

class RevokeTest : public testing::SimulatedAppleTest {
 protected:
  RevokeTest() : SimulatedAppleTest("vppd-revoke") {}

  void SetUp() override {
    SimulatedAppleTest::SetUp();
    if (SetUpStopped()) return;
    for (const char* id : {kUser1, kUser2, kUser3}) {
      store::User u;
      u.id = id;
      u.user_principal_name = std::string(id) + "@example.com";
      ASSERT_TRUE(store_->CreateUser(kTenant, u));
    }
    for (int i = 0; i < 4; ++i) Device(i);
    admin_.tenant_id = kTenant;
    admin_.scopes = {"DeviceManagementApps.ReadWrite.All", "DeviceManagementManagedDevices.PrivilegedOperations.All",
                     "DeviceManagementApps.Read.All", "DeviceManagementManagedDevices.Read.All"};
    revokes_ = std::make_unique<service::LicenseRevokes>(*store_, service::Options{});
    StartApple();
  }

  // Apple: A held by users 1 and 2 and SER000..SER002, B by SER000, C (not revocable) by SER003.
  void StartApple() {
    std::ostringstream data;
    data << R"({"locations": [{"uId": ")" << kUid << R"(", "name": "School",
      "assets": [{"adamId": ")"
         << kAppA << R"(", "totalCount": 50, "supportedPlatforms": ["iOS"]},
                 {"adamId": ")"
         << kAppB << R"(", "totalCount": 50, "supportedPlatforms": ["iOS"]},
                 {"adamId": ")"
         << kAppC << R"(", "totalCount": 50, "supportedPlatforms": ["iOS"], "revocable": false}],
      "users": [{"clientUserId": ")"
         << kUser1 << R"("}, {"clientUserId": ")" << kUser2 << R"("},
                {"clientUserId": ")"
         << kUser3 << R"("}],
      "assignments": [{"adamId": ")"
         << kAppA << R"(", "clientUserId": ")" << kUser1 << R"("},
                      {"adamId": ")"
         << kAppA << R"(", "clientUserId": ")" << kUser2 << R"("},
                      {"adamId": ")"
         << kAppA << R"(", "serialNumber": "SER000"},
                      {"adamId": ")"
         << kAppA << R"(", "serialNumber": "SER001"},
                      {"adamId": ")"
         << kAppA << R"(", "serialNumber": "SER002"},
                      {"adamId": ")"
         << kAppB << R"(", "serialNumber": "SER000"},
                      {"adamId": ")"
         << kAppC << R"(", "serialNumber": "SER003"}]}]})";
    ASSERT_NO_FATAL_FAILURE(StartSimulator(data.str()));
    MakeEngine();
    token_ = CreateToken().id;
    ASSERT_FALSE(token_.empty());
    ASSERT_TRUE(RequestJob(*store_, kTenant, token_, "syncLicenses", "", Clock::Real().Now()));
    Drain();
    auto apps = store_->ListApps(kTenant, store::ListQuery{});
    ASSERT_TRUE(apps);
    for (const auto& a : apps->items) apps_[a.adam_id] = a.id;
    ASSERT_EQ(apps_.size(), 3u);
  }

  // Who Apple holds the asset for: "u:<clientUserId>" and "d:<serial>".
  std::set<std::string> AtApple(const std::string& adam) {
    std::set<std::string> out;
    auto body = boost::json::parse(Apple("GET", "assignments?adamId=" + adam).body);
    for (const auto& a : body.at("assignments").as_array()) {
      const auto& o = a.as_object();
      if (const auto* s = o.if_contains("serialNumber")) out.insert("d:" + std::string(s->as_string()));
      if (const auto* u = o.if_contains("clientUserId")) out.insert("u:" + std::string(u->as_string()));
    }
    return out;
  }

  // The Entra and managed device of serial SER00i.
  void Device(int i) {
    const std::string serial = "SER00" + std::to_string(i);
    store::Device d;
    d.device_id = "aad-" + std::to_string(i);
    auto device = store_->CreateDevice(kTenant, d);
    ASSERT_TRUE(device) << device.error().message;
    store::ManagedDevice m;
    m.serial_number = serial;
    m.azure_ad_device_id = d.device_id;
    m.operating_system = "iPadOS";
    auto managed = store_->CreateManagedDevice(kTenant, m);
    ASSERT_TRUE(managed) << managed.error().message;
    devices_[i] = device->id;
    managed_[i] = managed->id;
  }

  std::vector<store::AppRevoke> Results(const std::string& adam) {
    auto r = revokes_->ResultsOf(admin_, {apps_.at(adam)});
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : std::vector<store::AppRevoke>{};
  }

  // A licence of A vppd granted `user` since the last sync: associated at Apple
  // (the sync does not see it) and vppd's user licence row granted.
  void GrantSinceSync(const std::string& user) {
    http::Response r = Apple("POST", "assets/associate",
                             R"({"assets":[{"adamId":")" + std::string(kAppA) +
                                 R"(","pricingParam":"STDQ"}],"clientUserIds":[")" + user + R"("]})");
    ASSERT_EQ(r.status, 200) << r.body;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!AtApple(kAppA).contains("u:" + user) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);  // the simulator's event delay
    }
    ASSERT_TRUE(AtApple(kAppA).contains("u:" + user));
    store::UserLicense row;
    row.adam_id = kAppA;
    row.pricing_param = "STDQ";
    row.client_user_id = user;
    row.state = "granted";
    row.cause = "assigned";
    row.event_id = "e-vppd";
    ASSERT_TRUE(store_->PutUserLicenses(kTenant, token_, {row}, {}));
  }

  // Nothing was recorded and no job queued (a refused request).
  void ExpectNothingRecorded() {
    std::vector<std::string> ids;
    for (const auto& [adam, id] : apps_) ids.push_back(id);
    auto all = store_->AppRevokesOf(kTenant, ids);
    ASSERT_TRUE(all);
    EXPECT_TRUE(all->empty());
    EXPECT_EQ(*store_->CountJobs(), 0);
  }

  std::unique_ptr<service::LicenseRevokes> revokes_;
  Principal admin_;
  std::string token_;
  std::map<std::string, std::string> apps_;  // by adamId
  std::map<int, std::string> devices_, managed_;
};
INSTANTIATE_TEST_SUITE_P(Revoke, RevokeTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

TEST_P(RevokeTest, AUserRevokeDisassociatesThatUsersLicenceOnly) {
  ASSERT_TRUE(revokes_->RevokeUser(admin_, apps_[kAppA], "iOS", kUser1, true));
  auto pending = Results(kAppA);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].action_state, "pending");
  Drain();
  EXPECT_EQ(AtApple(kAppA), (std::set<std::string>{"u:" + std::string(kUser2), "d:SER000", "d:SER001", "d:SER002"}));
  EXPECT_EQ(AtApple(kAppB), (std::set<std::string>{"d:SER000"}));
  auto results = Results(kAppA);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].action_name, "revokeUserLicense");
  EXPECT_EQ(results[0].action_state, "done");
  EXPECT_EQ(results[0].user_id, kUser1);
  EXPECT_EQ(results[0].total_licenses, 1);
  EXPECT_EQ(results[0].failed_licenses, 0);
  EXPECT_EQ(results[0].failure_reason, "none");
  // The job's resync ran: Graph's counts show the licence freed.
  auto app = store_->GetApp(kTenant, apps_[kAppA]);
  EXPECT_EQ(app->used_licenses, 4);
}

TEST_P(RevokeTest, ADeviceRevokeDisassociatesThatSerialOfThatAppOnly) {
  ASSERT_TRUE(revokes_->RevokeDevice(admin_, apps_[kAppA], "", managed_[0], false));
  Drain();
  EXPECT_EQ(AtApple(kAppA),
            (std::set<std::string>{"u:" + std::string(kUser1), "u:" + std::string(kUser2), "d:SER001", "d:SER002"}));
  EXPECT_EQ(AtApple(kAppB), (std::set<std::string>{"d:SER000"})) << "another app of the same device is kept";
  auto results = Results(kAppA);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].managed_device_id, managed_[0]);
  EXPECT_EQ(results[0].serial_number, "SER000");
  EXPECT_EQ(results[0].action_state, "done");
  EXPECT_EQ(results[0].total_licenses, 1);
}

TEST_P(RevokeTest, RevokeAllTakesEveryLicenceOfTheAppAndUntrackedOnlyWhenAsked) {
  // Another MDM associates a licence after the last sync: vppd has not seen it.
  http::Response r = Apple("POST", "assets/associate",
                           R"({"assets":[{"adamId":")" + std::string(kAppA) +
                               R"(","pricingParam":"STDQ"}],)"
                               R"("serialNumbers":["OTHER1"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  std::this_thread::sleep_for(100ms);  // the simulator's event delay
  ASSERT_TRUE(revokes_->RevokeAll(admin_, apps_[kAppA], "iOS", true, false));
  Drain();
  EXPECT_EQ(AtApple(kAppA), (std::set<std::string>{"d:OTHER1"})) << "only what the last sync saw";
  EXPECT_EQ(AtApple(kAppB), (std::set<std::string>{"d:SER000"}));
  auto results = Results(kAppA);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].total_licenses, 5);
  EXPECT_EQ(results[0].action_state, "done");

  ASSERT_TRUE(revokes_->RevokeAll(admin_, apps_[kAppA], "", false, true));
  Drain();
  EXPECT_EQ(AtApple(kAppA), std::set<std::string>{});
  results = Results(kAppA);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[1].revoke_untracked);
  EXPECT_EQ(results[1].total_licenses, 1);
}

TEST_P(RevokeTest, AManagedDevicesRevokeTakesEveryLicenceOfItsSerial) {
  ASSERT_TRUE(revokes_->RevokeManagedDevice(admin_, managed_[0]));
  Drain();
  EXPECT_EQ(AtApple(kAppA),
            (std::set<std::string>{"u:" + std::string(kUser1), "u:" + std::string(kUser2), "d:SER001", "d:SER002"}));
  EXPECT_EQ(AtApple(kAppB), std::set<std::string>{});
  for (const char* adam : {kAppA, kAppB}) {
    auto results = Results(adam);
    ASSERT_EQ(results.size(), 1u) << adam;
    EXPECT_EQ(results[0].action_name, "revokeAppleVppLicenses");
    EXPECT_EQ(results[0].managed_device_id, managed_[0]);
    EXPECT_EQ(results[0].action_state, "done");
  }
  EXPECT_TRUE(Results(kAppC).empty());
  // The device's deviceActionResults: the one request, its two apps' licences together.
  auto device = revokes_->DeviceResults(admin_, managed_[0]);
  ASSERT_TRUE(device) << device.error().message;
  ASSERT_EQ(device->size(), 1u);
  EXPECT_EQ((*device)[0].action_state, "done");
  EXPECT_EQ((*device)[0].total_licenses, 2);
  EXPECT_EQ((*device)[0].failed_licenses, 0);
  EXPECT_TRUE(revokes_->DeviceResults(admin_, managed_[1])->empty());
}

TEST_P(RevokeTest, ALicenceAnAssignmentStillGivesIsGrantedAgainByTheNextReconcile) {
  // vppd grants SER003 the app through an assignment to its group.
  store::Group g;
  g.display_name = "iPads";
  auto group = store_->CreateGroup(kTenant, g);
  ASSERT_TRUE(group);
  ASSERT_TRUE(store_->AddGroupMember(kTenant, group->id, devices_[3]));
  store::AppAssignment a;
  a.app_id = apps_[kAppA];
  a.intent = "required";
  a.target_type = "#microsoft.graph.groupAssignmentTarget";
  a.group_id = group->id;
  a.use_device_licensing = true;
  ASSERT_TRUE(store_->CreateAppAssignment(kTenant, a));
  ASSERT_TRUE(RequestReconcile(*store_, kTenant, token_, Clock::Real().Now()));
  Drain();
  ASSERT_TRUE(AtApple(kAppA).contains("d:SER003"));

  // The revoke takes it away at Apple and frees vppd's row; the resync that
  // follows queues a reconcile, which grants it again: the assignment stands.
  ASSERT_TRUE(revokes_->RevokeDevice(admin_, apps_[kAppA], "iOS", managed_[3], true));
  ASSERT_TRUE(engine_->RunOne());  // the revoke job alone
  EXPECT_FALSE(AtApple(kAppA).contains("d:SER003"));
  auto rows = store_->ListDeviceLicenses(kTenant, token_);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].state, "released");
  EXPECT_EQ((*rows)[0].cause, "revoked");
  Drain();
  EXPECT_TRUE(AtApple(kAppA).contains("d:SER003"));
  rows = store_->ListDeviceLicenses(kTenant, token_);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].state, "granted");
}

TEST_P(RevokeTest, AUserRevokeTakesBackALicenceVppdGrantedSinceTheSync) {
  GrantSinceSync(kUser3);
  ASSERT_TRUE(revokes_->RevokeUser(admin_, apps_[kAppA], "iOS", kUser3, true))
      << "the user holds a licence vppd granted: the last sync did not see it, vppd's row does";
  ASSERT_TRUE(engine_->RunOne());  // the revoke job alone
  EXPECT_FALSE(AtApple(kAppA).contains("u:" + std::string(kUser3)));
  EXPECT_TRUE(AtApple(kAppA).contains("u:" + std::string(kUser1)));
  auto results = Results(kAppA);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].action_state, "done");
  EXPECT_EQ(results[0].total_licenses, 1);
  // vppd's row is released at once: a second revoke finds nothing to take.
  auto rows = store_->ListUserLicenses(kTenant, token_);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].state, "released");
  EXPECT_EQ((*rows)[0].cause, "revoked");
  EXPECT_FALSE((*rows)[0].event_id.empty());
  auto again = revokes_->RevokeUser(admin_, apps_[kAppA], "iOS", kUser3, true);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kInvalidArgument);
}

TEST_P(RevokeTest, RevokeAllTakesBackLicencesVppdGrantedPeopleSinceTheSync) {
  GrantSinceSync(kUser3);
  ASSERT_TRUE(revokes_->RevokeAll(admin_, apps_[kAppA], "iOS", true, false));
  ASSERT_TRUE(engine_->RunOne());  // the revoke job alone
  EXPECT_EQ(AtApple(kAppA), std::set<std::string>{});
  auto results = Results(kAppA);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].total_licenses, 6);
  EXPECT_EQ(results[0].action_state, "done");
  // Every person's licence taken back is released in vppd's rows, vppd's grant
  // and the ones the sync saw (as for devices: counted free until a sync shows them gone).
  auto rows = store_->ListUserLicenses(kTenant, token_);
  ASSERT_TRUE(rows);
  std::map<std::string, std::string> states;
  for (const auto& r : *rows) states[r.client_user_id] = r.state + "/" + r.cause;
  EXPECT_EQ(states, (std::map<std::string, std::string>{
                        {kUser1, "released/revoked"}, {kUser2, "released/revoked"}, {kUser3, "released/revoked"}}));
}

TEST_P(RevokeTest, BadInputIsRefusedWithNothingRecorded) {
  // The refusal's code (kInternal stands for "accepted", which none of these may be).
  auto code = [](const Status& s) { return s ? Code::kInternal : s.error().code; };
  // Unknown ids.
  EXPECT_EQ(code(revokes_->RevokeUser(admin_, apps_[kAppA], "", "bbbbbbbb-0000-0000-0000-000000000009", true)),
            Code::kNotFound);
  EXPECT_EQ(code(revokes_->RevokeDevice(admin_, apps_[kAppA], "", "no-such-device", true)), Code::kNotFound);
  EXPECT_EQ(code(revokes_->RevokeAll(admin_, "no-such-app", "", true, false)), Code::kNotFound);
  EXPECT_EQ(code(revokes_->RevokeManagedDevice(admin_, "no-such-device")), Code::kNotFound);
  // The app under another type's cast.
  EXPECT_EQ(code(revokes_->RevokeAll(admin_, apps_[kAppA], "macOS", true, false)), Code::kNotFound);
  // Nothing to revoke: a user or a device without a licence of the app, a device without any.
  auto user = revokes_->RevokeUser(admin_, apps_[kAppA], "", kUser3, true);
  EXPECT_EQ(code(user), Code::kInvalidArgument);
  EXPECT_EQ(user.error().target, "userId");
  auto device = revokes_->RevokeDevice(admin_, apps_[kAppB], "", managed_[1], true);
  EXPECT_EQ(code(device), Code::kInvalidArgument);
  EXPECT_NE(device.error().message.find("SER001"), std::string::npos) << device.error().message;
  EXPECT_EQ(code(revokes_->RevokeManagedDevice(admin_, managed_[3])), Code::kInvalidArgument)
      << "SER003 holds only a licence Apple does not let be revoked";
  // Apple does not let C be revoked.
  EXPECT_EQ(code(revokes_->RevokeAll(admin_, apps_[kAppC], "", true, false)), Code::kInvalidArgument);
  // A device without a serial number.
  store::ManagedDevice bare;
  auto made = store_->CreateManagedDevice(kTenant, bare);
  ASSERT_TRUE(made);
  EXPECT_EQ(code(revokes_->RevokeDevice(admin_, apps_[kAppA], "", made->id, true)), Code::kInvalidArgument);
  // Permissions: reading apps is not enough; a device's revoke needs the privileged operation.
  Principal reader = admin_;
  reader.scopes = {"DeviceManagementApps.Read.All"};
  EXPECT_EQ(code(revokes_->RevokeAll(reader, apps_[kAppA], "", true, false)), Code::kPermissionDenied);
  Principal apps_writer = admin_;
  apps_writer.scopes = {"DeviceManagementApps.ReadWrite.All"};
  EXPECT_EQ(code(revokes_->RevokeManagedDevice(apps_writer, managed_[0])), Code::kPermissionDenied);
  ExpectNothingRecorded();
  EXPECT_EQ(AtApple(kAppA).size(), 5u);
}

TEST_P(RevokeTest, AnExpiredTokenFailsItsRevokesAsGraphNamesIt) {
  ASSERT_TRUE(revokes_->RevokeUser(admin_, apps_[kAppA], "", kUser2, true));
  ASSERT_TRUE(store_->UpdateToken(kTenant, token_, [](store::VppToken& t) -> Status {
    t.expiration = Clock::Real().Now() - 1'000'000;
    return {};
  }));
  Drain();
  auto results = Results(kAppA);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].action_state, "failed");
  EXPECT_EQ(results[0].failure_reason, "expiredVppToken");
  EXPECT_TRUE(AtApple(kAppA).contains("u:" + std::string(kUser2)));
}

}  // namespace
}  // namespace vppd::sync

namespace vppd::sync {
namespace {

// A worker that died mid-revoke (claimed the job, marked the revoke active, never finished):
// once its lease expires another worker claims the job and does the revoke again, to the end.
TEST_P(RevokeTest, ARevokeCutShortByADeadWorkerIsDoneByTheNextClaim) {
  ASSERT_TRUE(revokes_->RevokeDevice(admin_, apps_[kAppA], "", managed_[1], true));
  auto dead = store_->ClaimJob("dead-worker", Clock::Real().Now(), 1ms);
  ASSERT_TRUE(dead && *dead) << "the revoke job is queued";
  EXPECT_EQ((*dead)->kind, "revokeAppLicenses");
  auto open = store_->OpenAppRevokes(kTenant, token_);
  ASSERT_TRUE(open && open->size() == 1);
  store::AppRevoke active = (*open)[0];
  active.action_state = "active";
  ASSERT_TRUE(store_->UpdateAppRevoke(kTenant, active));
  std::this_thread::sleep_for(5ms);  // the dead worker's lease runs out
  Drain();
  EXPECT_FALSE(AtApple(kAppA).contains("d:SER001"));
  auto results = Results(kAppA);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].action_state, "done");
  EXPECT_EQ(results[0].total_licenses, 1);
}

}  // namespace
}  // namespace vppd::sync
