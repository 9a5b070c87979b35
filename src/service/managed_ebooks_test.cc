// service::ManagedEBooks on a real (SQLite) store, beside the apps of the same token:
// books only under managedEBooks and apps only under mobileApps (list, count, get,
// assignments, assignedLicenses, getLicensesForApp); a book's assignments stored
// with user licensing; device licensing and device targets refused with nothing
// written; the user licence states.
#include <chrono>
#include <mutex>

#include <gtest/gtest.h>

#include "base/testing.h"
#include "service/service.h"

namespace vppd::service {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTenant = "7d3e5f1a-9c2b-4e8d-a6f0-3b1c5d7e9f20";
constexpr const char* kReader = "0b6f1c1e-8d5a-4f0e-9a77-5e0d3c2b1a90";  // a directory user holding a book licence

Principal Caller(std::vector<std::string> scopes = {"DeviceManagementApps.ReadWrite.All",
                                                    "DeviceManagementServiceConfig.ReadWrite.All"}) {
  Principal p;
  p.tenant_id = kTenant;
  p.scopes = std::move(scopes);
  return p;
}

class CountingTrigger final : public ReconcileTrigger {
 public:
  void TokenNeedsReconcile(const std::string&, const std::string&) override {
    std::lock_guard lock(mu);
    ++calls;
  }
  void TenantNeedsReconcile(const std::string&) override {}
  std::mutex mu;
  int calls = 0;
};

EBookAssignmentChanges ToAllUsers(std::string intent = "required") {
  EBookAssignmentChanges c;
  c.install_intent = std::move(intent);
  c.target = AssignmentTarget{"#microsoft.graph.allLicensedUsersAssignmentTarget", {}, {}, {}};
  return c;
}

class ManagedEBooksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store::SqliteOptions o;
    o.path = dir_.File("vppd.db");
    o.secrets = std::make_shared<SecretBox>(SecretBox::FromKey(std::string(32, 'k')));
    auto opened = store::Store::OpenSqlite(o);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
    ASSERT_TRUE(store_->PutTenant({kTenant, "T", true, 0}));
    store::VppToken t;
    t.token = "sToken";
    t.state = "valid";
    auto token = store_->CreateToken(kTenant, t);
    ASSERT_TRUE(token);
    token_id_ = token->id;
    // An app and a book, and a user licence of the book, as a sync writes them.
    ASSERT_TRUE(store_->EnqueueJob(kTenant, token_id_, {}, [](store::VppToken&) -> Status { return {}; }));
    auto job = store_->ClaimJob("w", Clock::Real().Now(), 60s);
    ASSERT_TRUE(job && *job);
    store::SyncSnapshot snap;
    store::MobileApp app;
    app.id = "app-1";
    app.platform = "iOS";
    app.adam_id = "100";
    app.pricing_param = "STDQ";
    app.product_type = "App";
    app.bundle_id = "com.example.app";
    app.device_assignable = true;
    app.total_licenses = 10;
    snap.apps.push_back(app);
    store::MobileApp book;
    book.id = "book-1";
    book.platform = "iOS";
    book.adam_id = "200";
    book.pricing_param = "STDQ";
    book.product_type = "Book";
    book.display_name = "A Book";
    book.genres = {"Books", "Poetry"};
    book.seller = "A Publisher";
    book.total_licenses = 5;
    book.used_licenses = 1;
    snap.apps.push_back(book);
    snap.assignments = store::SyncSnapshot::Assignments::kReplaceWithStaged;
    ASSERT_TRUE(store_->StageAssignments(**job, std::vector<store::LicenseAssignment>{{"200", "STDQ", kReader, ""}}));
    ASSERT_TRUE(store_->FinishJob(**job, snap, [](store::VppToken&) -> Status { return {}; }));
    books_.emplace(*store_, Options{}, &trigger_);
    apps_.emplace(*store_, Options{});
    assignments_.emplace(*store_, Options{}, &trigger_);
  }

  testing::TempDir dir_{"vppd-service-ebooks"};
  std::unique_ptr<store::Store> store_;
  CountingTrigger trigger_;
  std::optional<ManagedEBooks> books_;
  std::optional<MobileApps> apps_;
  std::optional<AppAssignments> assignments_;
  std::string token_id_;
};

TEST_F(ManagedEBooksTest, BooksAreManagedEBooksAndNeverMobileApps) {
  auto books = books_->List(Caller(), store::ListQuery{});
  ASSERT_TRUE(books) << books.error().message;
  ASSERT_EQ(books->items.size(), 1u);
  EXPECT_EQ(books->items[0].id, "book-1");
  EXPECT_EQ(books->items[0].genres, (std::vector<std::string>{"Books", "Poetry"}));
  EXPECT_EQ(books->items[0].seller, "A Publisher");
  EXPECT_EQ(*books_->Count(Caller(), std::nullopt), 1);
  EXPECT_TRUE(books_->Get(Caller(), "book-1"));
  EXPECT_EQ(books_->Get(Caller(), "app-1").error().code, Code::kNotFound);

  auto apps = apps_->List(Caller(), store::ListQuery{});
  ASSERT_TRUE(apps);
  ASSERT_EQ(apps->items.size(), 1u);
  EXPECT_EQ(apps->items[0].id, "app-1");
  EXPECT_EQ(*apps_->Count(Caller(), std::nullopt), 1);
  // A client's own filter is kept, and still sees apps only.
  const store::Expr any_total = store::Expr::Apply(
      store::Op::kGe, {store::Expr::Of(store::Column::kAppTotalLicenses), store::Expr::Value(std::int64_t{0})});
  EXPECT_EQ(*apps_->Count(Caller(), any_total), 1);
  EXPECT_EQ(*books_->Count(Caller(), any_total), 1);
  const auto not_found = [](auto result) { return !result && result.error().code == Code::kNotFound; };
  EXPECT_TRUE(not_found(apps_->Get(Caller(), "book-1")));
  EXPECT_TRUE(not_found(apps_->AssignedLicenses(Caller(), "book-1", 0, 10)));
  EXPECT_TRUE(not_found(assignments_->List(Caller(), "book-1")));
  EXPECT_TRUE(not_found(assignments_->Create(
      Caller(), "book-1",
      AssignmentChanges{"available", AssignmentTarget{"#microsoft.graph.allLicensedUsersAssignmentTarget", {}, {}, {}},
                        std::nullopt})));
  EXPECT_TRUE(not_found(assignments_->DeviceStatuses(Caller(), "book-1")));
  // getLicensesForApp falls back to adamIds: a book's is not an app's.
  VppTokens tokens(*store_, Options{});
  EXPECT_TRUE(tokens.GetLicensesForApp(Caller(), "200")->empty());
  EXPECT_EQ(tokens.GetLicensesForApp(Caller(), "com.example.app")->size(), 1u);
}

TEST_F(ManagedEBooksTest, AssignmentsAreUserLicencesAndTriggerTheReconcile) {
  auto created = books_->CreateAssignment(Caller(), "book-1", ToAllUsers());
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_FALSE(created->use_device_licensing);
  EXPECT_EQ(created->settings_json, "{}");
  EXPECT_EQ(created->intent, "required");
  EXPECT_EQ(trigger_.calls, 1);
  // The reconcile job reads it as it reads an app's.
  auto of_token = store_->ListAssignmentsOfToken(kTenant, token_id_);
  ASSERT_TRUE(of_token);
  ASSERT_EQ(of_token->size(), 1u);
  EXPECT_EQ(of_token->front().app_id, "book-1");

  EBookAssignmentChanges patch;
  patch.install_intent = "available";
  auto updated = books_->UpdateAssignment(Caller(), "book-1", created->id, patch);
  ASSERT_TRUE(updated) << updated.error().message;
  EXPECT_EQ(updated->intent, "available");
  EXPECT_EQ(books_->ListAssignments(Caller(), "book-1")->size(), 1u);
  ASSERT_TRUE(books_->DeleteAssignment(Caller(), "book-1", created->id));
  EXPECT_TRUE(books_->ListAssignments(Caller(), "book-1")->empty());
  EXPECT_EQ(trigger_.calls, 3);
}

TEST_F(ManagedEBooksTest, DeviceLicensingAndDeviceTargetsAreRefusedWithNothingWritten) {
  ASSERT_TRUE(books_->CreateAssignment(Caller(), "book-1", ToAllUsers()));
  const int calls = trigger_.calls;

  EBookAssignmentChanges device_licensing = ToAllUsers();
  device_licensing.use_device_licensing = true;
  auto refused = books_->CreateAssignment(Caller(), "book-1", device_licensing);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kInvalidArgument);
  EXPECT_EQ(refused.error().target, "settings.useDeviceLicensing");
  EXPECT_NE(refused.error().message.find("cannot be licensed to devices"), std::string::npos);

  EBookAssignmentChanges all_devices = ToAllUsers();
  all_devices.target->type = "microsoft.graph.allDevicesAssignmentTarget";
  refused = books_->CreateAssignment(Caller(), "book-1", all_devices);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().target, "target");
  EXPECT_NE(refused.error().message.find("users only"), std::string::npos);

  // In assign, the element is named; nothing replaced.
  auto assign = books_->Assign(Caller(), "book-1", {ToAllUsers("available"), all_devices});
  ASSERT_FALSE(assign);
  EXPECT_EQ(assign.error().target, "managedEBookAssignments[1].target");
  assign = books_->Assign(Caller(), "book-1", {device_licensing});
  ASSERT_FALSE(assign);
  EXPECT_EQ(assign.error().target, "managedEBookAssignments[0].settings.useDeviceLicensing");
  // PATCH to all devices.
  auto stored = books_->ListAssignments(Caller(), "book-1");
  ASSERT_EQ(stored->size(), 1u);
  EBookAssignmentChanges to_devices;
  to_devices.target = all_devices.target;
  EXPECT_EQ(books_->UpdateAssignment(Caller(), "book-1", stored->front().id, to_devices).error().code,
            Code::kInvalidArgument);
  // Other refusals: a second assignment to all users, a bad intent, no intent, an app's id, read-only.
  EXPECT_EQ(books_->CreateAssignment(Caller(), "book-1", ToAllUsers("available")).error().code, Code::kInvalidArgument);
  EXPECT_EQ(books_->CreateAssignment(Caller(), "book-1", ToAllUsers("install")).error().target, "installIntent");
  EBookAssignmentChanges no_intent = ToAllUsers();
  no_intent.install_intent.reset();
  EXPECT_EQ(books_->CreateAssignment(Caller(), "book-1", no_intent).error().target, "installIntent");
  EXPECT_EQ(books_->CreateAssignment(Caller(), "app-1", ToAllUsers()).error().code, Code::kNotFound);
  EXPECT_EQ(books_->Assign(Caller({"DeviceManagementApps.Read.All"}), "book-1", {}).error().code,
            Code::kPermissionDenied);

  auto after = books_->ListAssignments(Caller(), "book-1");
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, *stored);
  EXPECT_EQ(trigger_.calls, calls);
  EXPECT_TRUE(store_->ListAssignmentsOfApp(kTenant, "app-1")->empty());
}

TEST_F(ManagedEBooksTest, UserStatesFollowTheUserLicencesAndTheirDevices) {
  // Before the directory knows the clientUserId: shown as is, no devices.
  auto states = books_->UserStates(Caller(), "book-1");
  ASSERT_TRUE(states) << states.error().message;
  ASSERT_EQ(states->size(), 1u);
  EXPECT_EQ(states->front().user_id, kReader);
  EXPECT_EQ(states->front().user_name, kReader);
  EXPECT_EQ(states->front().installed_devices, 0);

  store::User user;
  user.id = kReader;
  user.user_principal_name = "reader@contoso.example";
  ASSERT_TRUE(store_->CreateUser(kTenant, user));
  for (const char* serial : {"S1", "S2"}) {
    store::ManagedDevice d;
    d.serial_number = serial;
    d.device_name = std::string("iPad ") + serial;
    d.user_id = kReader;
    ASSERT_TRUE(store_->CreateManagedDevice(kTenant, d));
  }
  store::ManagedDevice someone_elses;
  someone_elses.serial_number = "S3";
  someone_elses.user_id = "11111111-2222-3333-4444-555555555555";
  ASSERT_TRUE(store_->CreateManagedDevice(kTenant, someone_elses));

  states = books_->UserStates(Caller(), "book-1");
  ASSERT_TRUE(states);
  ASSERT_EQ(states->size(), 1u);
  EXPECT_EQ(states->front().user_name, "reader@contoso.example");
  EXPECT_EQ(states->front().installed_devices, 2);
  auto devices = books_->DeviceStates(Caller(), "book-1");
  ASSERT_TRUE(devices) << devices.error().message;
  ASSERT_EQ(devices->size(), 2u);
  for (const EBookDeviceState& d : *devices) {
    EXPECT_EQ(d.user_name, "reader@contoso.example");
    EXPECT_EQ(d.install_state, "installed");
  }
  EXPECT_EQ(books_->DeviceStates(Caller(), "book-1", std::string(kReader))->size(), 2u);
  EXPECT_EQ(books_->DeviceStates(Caller(), "book-1", std::string("nobody")).error().code, Code::kNotFound);
  EXPECT_EQ(books_->UserStates(Caller(), "app-1").error().code, Code::kNotFound);
}

TEST(EBookPermissions, AppsScopesDelegatedAndApplicationInBothProfiles) {
  for (PermissionProfile profile : {PermissionProfile::kSeed, PermissionProfile::kCurrent}) {
    Principal read = Caller({"DeviceManagementApps.Read.All"}), write = Caller({"DeviceManagementApps.ReadWrite.All"});
    EXPECT_TRUE(Authorize(read, Operation::kReadManagedEBooks, profile));
    EXPECT_TRUE(Authorize(write, Operation::kReadManagedEBooks, profile));
    for (Operation op : {Operation::kWriteManagedEBookAssignments, Operation::kAssignManagedEBook}) {
      EXPECT_FALSE(Authorize(read, op, profile));
      EXPECT_TRUE(Authorize(write, op, profile));
    }
    EXPECT_FALSE(
        Authorize(Caller({"DeviceManagementServiceConfig.ReadWrite.All"}), Operation::kReadManagedEBooks, profile));
    Principal app = Caller({});
    app.app_only = true;
    app.roles = {"DeviceManagementApps.ReadWrite.All"};
    EXPECT_TRUE(Authorize(app, Operation::kAssignManagedEBook, profile));
  }
}

}  // namespace
}  // namespace vppd::service
