// The directory's store (directory_sql.cc) on SQLite and, when
// VPPD_TEST_DATABASE_URL is set, PostgreSQL: users, groups, members, devices,
// managed devices, devices through nested groups, and the bulk imports.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "base/testing.h"
#include "store/store.h"
#include "store/store_testing.h"

namespace vppd::store {
namespace {

using testing::Backend;

class DirectoryStoreTest : public testing::StoreTest {
 protected:
  DirectoryStoreTest() : StoreTest("vppd-dir-store") {}

  User NewUser(const std::string& upn) {
    User u;
    u.user_principal_name = upn;
    u.display_name = upn.substr(0, upn.find('@'));
    Result<User> created = store_->CreateUser(kTenantA, u);
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
  // An Entra device and the managed device enrolled as it (serial may be empty: none).
  std::pair<Device, ManagedDevice> NewDevice(const std::string& name, const std::string& serial) {
    Device d;
    d.device_id = NewGuid();
    d.display_name = name;
    Result<Device> device = store_->CreateDevice(kTenantA, d);
    EXPECT_TRUE(device) << device.error().message;
    ManagedDevice m;
    m.device_name = name;
    if (!serial.empty()) m.serial_number = serial;
    m.azure_ad_device_id = d.device_id;
    Result<ManagedDevice> managed = store_->CreateManagedDevice(kTenantA, m);
    EXPECT_TRUE(managed) << managed.error().message;
    return {device ? *device : Device{}, managed ? *managed : ManagedDevice{}};
  }
  void Add(const std::string& group, const std::string& member) {
    Result<GroupMember> added = store_->AddGroupMember(kTenantA, group, member);
    ASSERT_TRUE(added) << added.error().message;
  }
  std::vector<std::string> Serials(const Result<std::vector<GroupDevice>>& devices) {
    EXPECT_TRUE(devices) << devices.error().message;
    std::vector<std::string> out;
    if (devices) {
      for (const GroupDevice& d : *devices) out.push_back(d.serial_number);
    }
    return out;
  }
};

TEST_P(DirectoryStoreTest, UsersCreateGetUpdateDeleteAndUniqueUpn) {
  User alice = NewUser("alice@contoso.com");
  EXPECT_FALSE(alice.id.empty());
  EXPECT_EQ(alice.created, kT0);
  Result<User> got = store_->GetUser(kTenantA, alice.id);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->user_principal_name, "alice@contoso.com");
  EXPECT_EQ(got->display_name, "alice");
  EXPECT_TRUE(got->account_enabled);
  EXPECT_EQ(got->mail, std::nullopt);

  // The same UPN in another case is taken; in another tenant it is not.
  User dup;
  dup.user_principal_name = "ALICE@contoso.com";
  Result<User> again = store_->CreateUser(kTenantA, dup);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kAlreadyExists);
  EXPECT_TRUE(store_->CreateUser(kTenantB, dup));
  // Another tenant's id is NotFound.
  EXPECT_EQ(store_->GetUser(kTenantB, alice.id).error().code, Code::kNotFound);
  EXPECT_EQ(store_->DeleteUser(kTenantB, alice.id).error().code, Code::kNotFound);

  clock_.Advance(std::chrono::seconds(5));
  Result<User> updated = store_->UpdateUser(kTenantA, alice.id, [](User& u) -> Status {
    u.job_title = "Teacher";
    u.id = "ignored";
    return {};
  });
  ASSERT_TRUE(updated) << updated.error().message;
  EXPECT_EQ(updated->id, alice.id);
  EXPECT_EQ(updated->created, kT0);
  EXPECT_GT(updated->last_modified, kT0);
  EXPECT_EQ(store_->GetUser(kTenantA, alice.id)->job_title, "Teacher");
  // An update may not take another user's UPN, and writes nothing then.
  User bob = NewUser("bob@contoso.com");
  Result<User> clash = store_->UpdateUser(kTenantA, bob.id, [](User& u) -> Status {
    u.user_principal_name = "Alice@Contoso.com";
    return {};
  });
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().code, Code::kAlreadyExists);
  EXPECT_EQ(store_->GetUser(kTenantA, bob.id)->user_principal_name, "bob@contoso.com");

  ASSERT_TRUE(store_->DeleteUser(kTenantA, alice.id));
  EXPECT_EQ(store_->GetUser(kTenantA, alice.id).error().code, Code::kNotFound);
  EXPECT_EQ(store_->DeleteUser(kTenantA, alice.id).error().code, Code::kNotFound);
  EXPECT_EQ(store_->UpdateUser(kTenantA, alice.id, [](User&) -> Status { return {}; }).error().code, Code::kNotFound);
}

TEST_P(DirectoryStoreTest, ListsTakeFilterOrderPagingAndCount) {
  for (const char* upn : {"carol@x.com", "alice@x.com", "bob@x.com"}) NewUser(upn);
  ListQuery q;
  q.order_by = {{Column::kUserPrincipalName, false}};
  q.limit = 2;
  Result<Page<User>> page = store_->ListUsers(kTenantA, q);
  ASSERT_TRUE(page) << page.error().message;
  ASSERT_EQ(page->items.size(), 2u);
  EXPECT_EQ(page->items[0].user_principal_name, "alice@x.com");
  EXPECT_EQ(page->items[1].user_principal_name, "bob@x.com");
  EXPECT_TRUE(page->has_more);
  q.skip = 2;
  page = store_->ListUsers(kTenantA, q);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_FALSE(page->has_more);

  Expr filter = Expr::Apply(Op::kStartsWith, {Expr::Of(Column::kUserDisplayName), Expr::Value(std::string("b"))});
  q = {};
  q.filter = filter;
  page = store_->ListUsers(kTenantA, q);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0].user_principal_name, "bob@x.com");
  EXPECT_EQ(*store_->CountUsers(kTenantA, filter), 1);
  EXPECT_EQ(*store_->CountUsers(kTenantA, std::nullopt), 3);
  EXPECT_EQ(*store_->CountUsers(kTenantB, std::nullopt), 0);
  // A column of another table is refused.
  q.filter = Expr::Apply(Op::kEq, {Expr::Of(Column::kGroupDisplayName), Expr::Value(std::string("b"))});
  EXPECT_EQ(store_->ListUsers(kTenantA, q).error().code, Code::kInvalidArgument);

  auto [d1, m1] = NewDevice("ipad-1", "SER1");
  NewDevice("ipad-2", "SER2");
  q = {};
  q.filter = Expr::Apply(Op::kEq, {Expr::Of(Column::kManagedDeviceSerialNumber), Expr::Value(std::string("SER1"))});
  Result<Page<ManagedDevice>> managed = store_->ListManagedDevices(kTenantA, q);
  ASSERT_TRUE(managed) << managed.error().message;
  ASSERT_EQ(managed->items.size(), 1u);
  EXPECT_EQ(managed->items[0].id, m1.id);
  EXPECT_EQ(managed->items[0].azure_ad_device_id, d1.device_id);
  q.filter = Expr::Apply(Op::kEq, {Expr::Of(Column::kDeviceDisplayName), Expr::Value(std::string("ipad-2"))});
  EXPECT_EQ(store_->ListDevices(kTenantA, q)->items.size(), 1u);
  EXPECT_EQ(*store_->CountGroups(kTenantA, std::nullopt), 0);
}

TEST_P(DirectoryStoreTest, DeviceIdIsUniquePerTenant) {
  auto [d, m] = NewDevice("ipad", "SER");
  Device dup;
  dup.device_id = d.device_id;
  EXPECT_EQ(store_->CreateDevice(kTenantA, dup).error().code, Code::kAlreadyExists);
  EXPECT_TRUE(store_->CreateDevice(kTenantB, dup));
  Result<ManagedDevice> renamed = store_->UpdateManagedDevice(kTenantA, m.id, [](ManagedDevice& x) -> Status {
    x.device_name = "renamed";
    return {};
  });
  ASSERT_TRUE(renamed);
  EXPECT_EQ(store_->GetManagedDevice(kTenantA, m.id)->device_name, "renamed");
  EXPECT_EQ(store_->GetManagedDevice(kTenantB, m.id).error().code, Code::kNotFound);
  ASSERT_TRUE(store_->DeleteManagedDevice(kTenantA, m.id));
  EXPECT_EQ(store_->GetManagedDevice(kTenantA, m.id).error().code, Code::kNotFound);
}

TEST_P(DirectoryStoreTest, MembersAddListRemove) {
  Group g = NewGroup("iPads");
  User alice = NewUser("alice@x.com");
  auto [d, m] = NewDevice("ipad", "SER");
  Group nested = NewGroup("nested");
  Add(g.id, alice.id);
  Add(g.id, d.id);
  Add(g.id, nested.id);

  Result<GroupMember> twice = store_->AddGroupMember(kTenantA, g.id, alice.id);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, Code::kAlreadyExists);
  Result<GroupMember> unknown = store_->AddGroupMember(kTenantA, g.id, "no-such-object");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Code::kNotFound);
  EXPECT_EQ(unknown.error().target, "no-such-object");
  Result<GroupMember> no_group = store_->AddGroupMember(kTenantA, "no-such-group", alice.id);
  ASSERT_FALSE(no_group);
  EXPECT_EQ(no_group.error().code, Code::kNotFound);
  EXPECT_EQ(no_group.error().target, "no-such-group");
  EXPECT_EQ(store_->AddGroupMember(kTenantA, g.id, g.id).error().code, Code::kInvalidArgument);
  // Another tenant sees neither the group nor the member.
  Group other = NewGroup("other", kTenantB);
  EXPECT_EQ(store_->AddGroupMember(kTenantB, other.id, alice.id).error().code, Code::kNotFound);
  EXPECT_EQ(store_->ListGroupMembers(kTenantB, g.id, 0, 10).error().code, Code::kNotFound);

  Result<Page<GroupMember>> members = store_->ListGroupMembers(kTenantA, g.id, 0, 10);
  ASSERT_TRUE(members) << members.error().message;
  ASSERT_EQ(members->items.size(), 3u);
  EXPECT_EQ(members->items[0].kind, MemberKind::kUser);
  ASSERT_TRUE(members->items[0].user);
  EXPECT_EQ(members->items[0].user->user_principal_name, "alice@x.com");
  EXPECT_EQ(members->items[1].kind, MemberKind::kDevice);
  ASSERT_TRUE(members->items[1].device);
  EXPECT_EQ(members->items[1].device->device_id, d.device_id);
  EXPECT_EQ(members->items[2].kind, MemberKind::kGroup);
  ASSERT_TRUE(members->items[2].group);
  EXPECT_LT(members->items[0].seq, members->items[1].seq);
  EXPECT_LT(members->items[1].seq, members->items[2].seq);
  Result<Page<GroupMember>> second = store_->ListGroupMembers(kTenantA, g.id, 1, 1);
  ASSERT_TRUE(second);
  ASSERT_EQ(second->items.size(), 1u);
  EXPECT_EQ(second->items[0].member_id, d.id);
  EXPECT_TRUE(second->has_more);
  EXPECT_EQ(*store_->CountGroupMembers(kTenantA, g.id), 3);

  ASSERT_TRUE(store_->RemoveGroupMember(kTenantA, g.id, alice.id));
  EXPECT_EQ(store_->RemoveGroupMember(kTenantA, g.id, alice.id).error().code, Code::kNotFound);
  // Deleting a member's object removes its memberships; deleting a group, its own.
  ASSERT_TRUE(store_->DeleteDevice(kTenantA, d.id));
  ASSERT_TRUE(store_->DeleteGroup(kTenantA, nested.id));
  EXPECT_EQ(*store_->CountGroupMembers(kTenantA, g.id), 0);
  EXPECT_TRUE(*store_->GroupExists(kTenantA, g.id));
  EXPECT_FALSE(*store_->GroupExists(kTenantB, g.id));
  ASSERT_TRUE(store_->DeleteGroup(kTenantA, g.id));
  EXPECT_FALSE(*store_->GroupExists(kTenantA, g.id));
}

TEST_P(DirectoryStoreTest, DeviceMembersOfFollowsNestedGroupsAndCycles) {
  Group top = NewGroup("top"), mid = NewGroup("mid"), leaf = NewGroup("leaf"), apart = NewGroup("apart");
  auto [d1, m1] = NewDevice("one", "S1");
  auto [d2, m2] = NewDevice("two", "S2");
  auto [d3, m3] = NewDevice("three", "S3");
  auto [d4, m4] = NewDevice("no-serial", "");
  auto [d5, m5] = NewDevice("apart", "S5");
  User u = NewUser("u@x.com");
  Add(leaf.id, d3.id);  // earliest membership
  Add(top.id, d2.id);
  Add(top.id, mid.id);
  Add(mid.id, leaf.id);
  Add(leaf.id, top.id);  // a cycle
  Add(mid.id, d1.id);
  Add(mid.id, d4.id);
  Add(top.id, u.id);
  Add(apart.id, d5.id);
  Add(leaf.id, d2.id);  // a second way to d2: its earliest seq counts

  EXPECT_EQ(Serials(store_->DeviceMembersOf(kTenantA, {top.id})), (std::vector<std::string>{"S3", "S2", "S1"}));
  EXPECT_EQ(Serials(store_->DeviceMembersOf(kTenantA, {leaf.id})), (std::vector<std::string>{"S3", "S2", "S1"}));
  EXPECT_EQ(Serials(store_->DeviceMembersOf(kTenantA, {apart.id, "unknown"})), (std::vector<std::string>{"S5"}));
  EXPECT_TRUE(Serials(store_->DeviceMembersOf(kTenantA, {"unknown"})).empty());
  EXPECT_TRUE(Serials(store_->DeviceMembersOf(kTenantB, {top.id})).empty());
  Result<std::vector<GroupDevice>> got = store_->DeviceMembersOf(kTenantA, {mid.id, apart.id});
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 4u);
  const GroupDevice& first = got->front();
  EXPECT_EQ(first.managed_device_id, m3.id);
  EXPECT_EQ(first.device_name, "three");
  EXPECT_GT(first.seq, 0);

  EXPECT_EQ(Serials(store_->AllManagedDevices(kTenantA)).size(), 4u);  // not the one without a serial
  std::vector<std::string> by_serial = Serials(store_->ManagedDevicesBySerial(kTenantA, {"S2", "S1", "nope"}));
  EXPECT_EQ(by_serial, (std::vector<std::string>{"S1", "S2"}));
  EXPECT_TRUE(Serials(store_->ManagedDevicesBySerial(kTenantB, {"S1"})).empty());

  // Leaving the group: gone from the set.
  ASSERT_TRUE(store_->RemoveGroupMember(kTenantA, mid.id, d1.id));
  EXPECT_EQ(Serials(store_->DeviceMembersOf(kTenantA, {top.id})), (std::vector<std::string>{"S3", "S2"}));
}

// Past the lookup limit (1,000 devices) the store reads the tenant's devices in
// order instead of by key: the same answer.
TEST_P(DirectoryStoreTest, DeviceMembersOfALargeGroup) {
  std::vector<ImportedDevice> rows;
  std::vector<std::string> members;
  for (int i = 0; i < 1200; ++i) {
    ImportedDevice row;
    row.device.device_id = fmt::format("dev-{:04}", i);
    if (i != 7) {
      row.managed.emplace();
      row.managed->serial_number = fmt::format("L{:04}", i);
    }
    rows.push_back(std::move(row));
    if (i < 1100) members.push_back(fmt::format("dev-{:04}", i));
  }
  Result<ImportCounts> imported = store_->ImportDevices(kTenantA, rows);
  ASSERT_TRUE(imported) << imported.error().message;
  ManagedDevice no_serial;  // enrolled without a serial number: nothing to license
  no_serial.azure_ad_device_id = "dev-0007";
  ASSERT_TRUE(store_->CreateManagedDevice(kTenantA, no_serial));
  // Tenant B enrols a device under the same Entra device id: not tenant A's.
  ManagedDevice other;
  other.serial_number = "B-0001";
  other.azure_ad_device_id = "dev-0001";
  ASSERT_TRUE(store_->CreateManagedDevice(kTenantB, other));
  std::vector<ImportedGroup> groups(2);
  groups[0].group.display_name = "big";
  groups[0].members = members;
  groups[1].group.display_name = "nested";
  groups[1].members = std::vector<std::string>{"dev-1150"};
  Result<ImportCounts> grouped = store_->ImportGroups(kTenantA, groups);
  ASSERT_TRUE(grouped) << grouped.error().message;
  Result<Page<Group>> listed = store_->ListGroups(kTenantA, ListQuery{});
  ASSERT_TRUE(listed);
  std::string big, nested;
  for (const Group& g : listed->items) (g.display_name == "big" ? big : nested) = g.id;
  Add(big, nested);
  // A second managed device enrolled as a member's Entra device counts too.
  ManagedDevice twin;
  twin.serial_number = "TWIN";
  twin.azure_ad_device_id = "dev-0003";
  ASSERT_TRUE(store_->CreateManagedDevice(kTenantA, twin));

  Result<std::vector<GroupDevice>> got = store_->DeviceMembersOf(kTenantA, {big});
  ASSERT_TRUE(got) << got.error().message;
  std::vector<std::string> serials = Serials(got);
  ASSERT_EQ(serials.size(), 1101u);  // 1,100 members - 1 without a serial + the twin + the nested one
  EXPECT_TRUE(std::is_sorted(got->begin(), got->end(), [](const GroupDevice& a, const GroupDevice& b) {
    return std::tie(a.seq, a.managed_device_id) < std::tie(b.seq, b.managed_device_id);
  }));
  EXPECT_EQ(std::count(serials.begin(), serials.end(), "L0007"), 0);
  EXPECT_EQ(std::count(serials.begin(), serials.end(), "B-0001"), 0);
  EXPECT_EQ(std::count(serials.begin(), serials.end(), "L1150"), 1);
  EXPECT_EQ(std::count(serials.begin(), serials.end(), "L1199"), 0);
  EXPECT_EQ(serials.back(), "L1150");  // its membership came last
  // The twin shares its Entra device's membership, so its seq.
  auto seq_of = [&](const std::string& serial) {
    for (const GroupDevice& d : *got) {
      if (d.serial_number == serial) return d.seq;
    }
    return std::int64_t{-1};
  };
  EXPECT_EQ(seq_of("TWIN"), seq_of("L0003"));
  // The same devices looked up by key (a group under the limit) carry the same seqs.
  Result<std::vector<GroupDevice>> small = store_->DeviceMembersOf(kTenantA, {nested});
  ASSERT_TRUE(small);
  ASSERT_EQ(small->size(), 1u);
  EXPECT_EQ(small->front().serial_number, "L1150");
}

TEST_P(DirectoryStoreTest, ImportDevicesCreatesBothAndUpdatesOnReimport) {
  std::vector<ImportedDevice> rows;
  for (int i = 0; i < 50; ++i) {
    ImportedDevice row;
    row.device.device_id = fmt::format("00000000-0000-0000-0000-{:012}", i);
    row.device.display_name = fmt::format("ipad-{}", i);
    row.managed.emplace();
    row.managed->serial_number = fmt::format("SER{}", i);
    row.managed->model = "iPad";
    rows.push_back(row);
  }
  Result<ImportCounts> first = store_->ImportDevices(kTenantA, rows);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->created, 100);
  EXPECT_EQ(*store_->CountDevices(kTenantA, std::nullopt), 50);
  EXPECT_EQ(*store_->CountManagedDevices(kTenantA, std::nullopt), 50);

  ListQuery q;
  q.filter = Expr::Apply(Op::kEq, {Expr::Of(Column::kManagedDeviceSerialNumber), Expr::Value(std::string("SER7"))});
  Result<Page<ManagedDevice>> seven = store_->ListManagedDevices(kTenantA, q);
  ASSERT_TRUE(seven);
  ASSERT_EQ(seven->items.size(), 1u);
  EXPECT_EQ(seven->items[0].azure_ad_device_id, "00000000-0000-0000-0000-000000000007");
  EXPECT_EQ(seven->items[0].model, "iPad");

  rows[7].managed->model = "iPad Pro";
  clock_.Advance(std::chrono::seconds(1));
  Result<ImportCounts> again = store_->ImportDevices(kTenantA, rows);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->created, 0);
  EXPECT_EQ(again->updated, 100);
  EXPECT_EQ(*store_->CountManagedDevices(kTenantA, std::nullopt), 50);
  Result<ManagedDevice> after = store_->GetManagedDevice(kTenantA, seven->items[0].id);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->model, "iPad Pro");
  EXPECT_EQ(after->created, kT0);

  // A bad row (a repeated serial) imports nothing, and names the row.
  std::vector<ImportedDevice> bad = rows;
  bad.push_back(rows[0]);
  bad.back().device.device_id = "another";
  bad[3].device.display_name = "would change";
  Result<ImportCounts> refused = store_->ImportDevices(kTenantA, bad);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kInvalidArgument);
  EXPECT_EQ(refused.error().target, "50");
  EXPECT_EQ(*store_->CountDevices(kTenantA, std::nullopt), 50);
  q.filter = Expr::Apply(Op::kEq, {Expr::Of(Column::kDeviceDisplayName), Expr::Value(std::string("would change"))});
  EXPECT_EQ(*store_->CountDevices(kTenantA, q.filter), 0);
  EXPECT_EQ(store_->ImportDevices("no-such-tenant", rows).error().code, Code::kNotFound);
}

TEST_P(DirectoryStoreTest, ImportUsersAndGroupsWithMembers) {
  std::vector<User> users(3);
  users[0].user_principal_name = "a@x.com";
  users[1].user_principal_name = "b@x.com";
  users[2].user_principal_name = "c@x.com";
  ASSERT_TRUE(store_->ImportUsers(kTenantA, users));
  users[1].user_principal_name = "B@X.com";  // the same user, another case
  users[1].job_title = "Head";
  Result<ImportCounts> again = store_->ImportUsers(kTenantA, users);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->updated, 3);
  EXPECT_EQ(*store_->CountUsers(kTenantA, std::nullopt), 3);
  users.push_back(users[0]);
  EXPECT_EQ(store_->ImportUsers(kTenantA, users).error().target, "3");

  ImportedDevice device;
  device.device.device_id = "dev-1";
  device.managed.emplace();
  device.managed->serial_number = "S1";
  ASSERT_TRUE(store_->ImportDevices(kTenantA, {device}));

  std::vector<ImportedGroup> groups(2);
  groups[0].group.display_name = "Class 1";
  groups[0].members = std::vector<std::string>{"a@x.com", "dev-1"};
  groups[1].group.display_name = "School";
  groups[1].members = std::vector<std::string>{"Class 1"};  // not an id, UPN or deviceId
  Result<ImportCounts> refused = store_->ImportGroups(kTenantA, groups);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().target, "1");
  EXPECT_EQ(*store_->CountGroups(kTenantA, std::nullopt), 0);

  groups[1].members = std::vector<std::string>{};
  Result<ImportCounts> imported = store_->ImportGroups(kTenantA, groups);
  ASSERT_TRUE(imported) << imported.error().message;
  EXPECT_EQ(imported->created, 2);
  EXPECT_EQ(imported->members_added, 2);
  Result<Page<Group>> listed = store_->ListGroups(kTenantA, ListQuery{});
  ASSERT_TRUE(listed);
  std::string class_id;
  for (const Group& g : listed->items) {
    if (g.display_name == "Class 1") class_id = g.id;
  }
  ASSERT_FALSE(class_id.empty());
  EXPECT_EQ(Serials(store_->DeviceMembersOf(kTenantA, {class_id})), (std::vector<std::string>{"S1"}));

  // Re-imported by name with other members: replaced, the group kept.
  groups[0].members = std::vector<std::string>{"B@x.com"};
  groups[1].members.reset();  // no members column: untouched
  imported = store_->ImportGroups(kTenantA, groups);
  ASSERT_TRUE(imported) << imported.error().message;
  EXPECT_EQ(imported->updated, 2);
  EXPECT_EQ(imported->members_added, 1);
  EXPECT_EQ(imported->members_removed, 2);
  EXPECT_EQ(*store_->CountGroups(kTenantA, std::nullopt), 2);
  Result<Page<GroupMember>> members = store_->ListGroupMembers(kTenantA, class_id, 0, 10);
  ASSERT_TRUE(members);
  ASSERT_EQ(members->items.size(), 1u);
  ASSERT_TRUE(members->items[0].user);
  EXPECT_EQ(members->items[0].user->job_title, "Head");
}

TEST_P(DirectoryStoreTest, RemovingTheTenantRemovesItsDirectory) {
  Group g = NewGroup("g");
  User u = NewUser("u@x.com");
  Add(g.id, u.id);
  NewDevice("d", "S");
  ASSERT_TRUE(store_->RemoveTenant(kTenantA));
  ASSERT_TRUE(store_->PutTenant({kTenantA, "Tenant A", true, 0}));
  EXPECT_EQ(*store_->CountUsers(kTenantA, std::nullopt), 0);
  EXPECT_EQ(*store_->CountGroups(kTenantA, std::nullopt), 0);
  EXPECT_EQ(*store_->CountManagedDevices(kTenantA, std::nullopt), 0);
  EXPECT_EQ(db_->raw().Int("SELECT count(*) FROM group_members"), 0);
}

INSTANTIATE_TEST_SUITE_P(Store, DirectoryStoreTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

// --- the journal the reconcile's device pass reads (reconcile_changes) --------------------

class DirectoryChangesTest : public DirectoryStoreTest {
 protected:
  void SetUp() override {
    DirectoryStoreTest::SetUp();
    if (SetUpStopped()) return;
    token_ = Token(kTenantA);
  }
  // The serials noted for the token since the last call (then forgotten).
  std::vector<std::string> Take() {
    Result<std::vector<ReconcileChange>> changes = store_->ListReconcileChanges(kTenantA, token_, 100);
    EXPECT_TRUE(changes) << changes.error().message;
    if (!changes) return {};
    EXPECT_TRUE(store_->ClearReconcileChanges(kTenantA, token_, *changes));
    std::vector<std::string> serials;
    for (const ReconcileChange& c : *changes) serials.push_back(c.serial_number);
    return serials;
  }
  std::string token_;
};

using SerialList = std::vector<std::string>;

TEST_P(DirectoryChangesTest, EachDirectoryWriteNotesTheSerialsItMayMoveInOrOutOfReach) {
  auto [d1, m1] = NewDevice("one", "S1");
  auto [d2, m2] = NewDevice("two", "S2");
  EXPECT_EQ(Take(), (SerialList{"S1", "S2"})) << "managed devices created";
  Group g = NewGroup("g");
  User u = NewUser("u@x.com");
  EXPECT_EQ(Take(), SerialList{}) << "a group and a user created reach nothing yet";

  Add(g.id, d1.id);
  EXPECT_EQ(Take(), SerialList{"S1"}) << "an Entra device joined: the managed devices enrolled as it";
  Add(g.id, u.id);
  EXPECT_EQ(Take(), SerialList{}) << "a user's membership is not the device pass's";
  ASSERT_TRUE(store_->RemoveGroupMember(kTenantA, g.id, d1.id));
  EXPECT_EQ(Take(), SerialList{"S1"});
  EXPECT_EQ(store_->RemoveGroupMember(kTenantA, g.id, d1.id).error().code, Code::kNotFound);
  EXPECT_EQ(Take(), SerialList{}) << "a failed write notes nothing";

  // A managed device's serial changes: the old and the new one.
  ASSERT_TRUE(store_->UpdateManagedDevice(kTenantA, m1.id, [](ManagedDevice& m) -> Status {
    m.serial_number = "S1-NEW";
    return {};
  }));
  EXPECT_EQ(Take(), (SerialList{"S1", "S1-NEW"}));
  // An Entra device's deviceId changes: those enrolled as the old and as the new one.
  ASSERT_TRUE(store_->UpdateDevice(kTenantA, d1.id, [&](Device& d) -> Status {
    d.device_id = d2.device_id + "-x";
    return {};
  }));
  EXPECT_EQ(Take(), SerialList{"S1-NEW"}) << "nothing is enrolled as the new deviceId";
  ASSERT_TRUE(store_->DeleteDevice(kTenantA, d2.id));
  EXPECT_EQ(Take(), SerialList{"S2"});
  ASSERT_TRUE(store_->DeleteManagedDevice(kTenantA, m2.id));
  EXPECT_EQ(Take(), SerialList{"S2"});

  // Too wide to list: a nested group, a group deleted.
  Group inner = NewGroup("inner");
  Add(g.id, inner.id);
  EXPECT_EQ(Take(), SerialList{""});
  ASSERT_TRUE(store_->DeleteGroup(kTenantA, inner.id));
  EXPECT_EQ(Take(), SerialList{""});
}

TEST_P(DirectoryChangesTest, ImportsNoteWhatTheyMoved) {
  std::vector<ImportedDevice> devices(3);
  for (int i = 0; i < 3; ++i) {
    devices[i].device.device_id = "dev-" + std::to_string(i);
    devices[i].managed.emplace();
    devices[i].managed->serial_number = "IMP" + std::to_string(i);
  }
  ASSERT_TRUE(store_->ImportDevices(kTenantA, devices));
  EXPECT_EQ(Take(), (SerialList{"IMP0", "IMP1", "IMP2"}));

  std::vector<ImportedGroup> groups(1);
  groups[0].group.display_name = "imported";
  groups[0].members = std::vector<std::string>{"dev-0", "dev-1"};
  ASSERT_TRUE(store_->ImportGroups(kTenantA, groups));
  EXPECT_EQ(Take(), (SerialList{"IMP0", "IMP1"}));
  groups[0].members = std::vector<std::string>{"dev-1", "dev-2"};
  ASSERT_TRUE(store_->ImportGroups(kTenantA, groups));
  EXPECT_EQ(Take(), (SerialList{"IMP0", "IMP2"})) << "one left, one joined; dev-1 stayed";
  ASSERT_TRUE(store_->ImportGroups(kTenantA, groups));
  EXPECT_EQ(Take(), SerialList{}) << "the same members again";
}

TEST_P(DirectoryChangesTest, APassForgetsOnlyWhatItRead) {
  auto [d1, m1] = NewDevice("one", "S1");
  Result<std::vector<ReconcileChange>> read = store_->ListReconcileChanges(kTenantA, token_, 100);
  ASSERT_TRUE(read && read->size() == 1);
  // The device changes again while the pass runs: a new generation of S1.
  ASSERT_TRUE(store_->UpdateManagedDevice(kTenantA, m1.id, [](ManagedDevice& m) -> Status {
    m.device_name = "renamed";
    return {};
  }));
  ASSERT_TRUE(store_->ClearReconcileChanges(kTenantA, token_, *read));
  EXPECT_EQ(Take(), SerialList{"S1"}) << "the later change stays for the next pass";
  EXPECT_EQ(Take(), SerialList{});
}

TEST_P(DirectoryChangesTest, EveryTokenOfTheTenantAndNoOtherTenantSeesTheChange) {
  const std::string second = Token(kTenantA, "2");
  const std::string other = Token(kTenantB, "3");
  NewDevice("one", "S1");
  auto listed = [&](const char* tenant, const std::string& token) {
    Result<std::vector<ReconcileChange>> changes = store_->ListReconcileChanges(tenant, token, 100);
    EXPECT_TRUE(changes);
    return changes ? changes->size() : 0;
  };
  EXPECT_EQ(listed(kTenantA, token_), 1u);
  EXPECT_EQ(listed(kTenantA, second), 1u);
  EXPECT_EQ(listed(kTenantB, other), 0u);
  EXPECT_EQ(listed(kTenantB, token_), 0u) << "another tenant cannot read A's token";
  // More than the limit reads as limit + 1.
  NewDevice("two", "S2");
  NewDevice("three", "S3");
  Result<std::vector<ReconcileChange>> one = store_->ListReconcileChanges(kTenantA, token_, 1);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->size(), 2u);
}

TEST_P(DirectoryChangesTest, ALicenceTakenBackElsewhereIsNotedForItsTokenOnly) {
  const std::string second = Token(kTenantA, "2");
  ASSERT_TRUE(store_->NoteReconcileChanges(kTenantA, token_, {"R1", "R2", "R1", ""}));
  EXPECT_EQ(Take(), (SerialList{"R1", "R2"}));
  Result<std::vector<ReconcileChange>> others = store_->ListReconcileChanges(kTenantA, second, 10);
  ASSERT_TRUE(others);
  EXPECT_TRUE(others->empty());
  EXPECT_FALSE(store_->NoteReconcileChanges(kTenantB, token_, {"R1"})) << "not B's token";
}

TEST_P(DirectoryChangesTest, AnEventThatFailedNotesItsDevicesOneThatSucceededDoesNot) {
  auto record = [&](const std::string& id, std::vector<std::string> serials) {
    AppleEvent e;
    e.event_id = id;
    e.kind = "associate";
    e.adam_id = "1";
    e.submitted = e.next_poll = kT0;
    ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, e, serials, "assigned"));
  };
  record("ok", {"E1", "E2"});
  record("bad", {"E3", "E4"});
  record("gone", {"E5"});
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "ok", {}));
  EXPECT_EQ(Take(), SerialList{});
  AppleEventOutcome failed;
  failed.failures.push_back({"E4", "", 9610, "not eligible"});
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "bad", failed));
  EXPECT_EQ(Take(), (SerialList{"E3", "E4"}));
  AppleEventOutcome abandoned;
  abandoned.abandoned = true;
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "gone", abandoned));
  EXPECT_EQ(Take(), SerialList{"E5"});
}

TEST_P(DirectoryChangesTest, DevicesOfSerialsNameTheirGroupsNestedOrNot) {
  auto [d1, m1] = NewDevice("one", "S1");
  auto [d2, m2] = NewDevice("two", "S2");
  ManagedDevice loose;  // enrolled as no Entra device
  loose.serial_number = "S3";
  ASSERT_TRUE(store_->CreateManagedDevice(kTenantA, loose));
  Group outer = NewGroup("outer"), inner = NewGroup("inner"), other = NewGroup("other");
  Add(outer.id, inner.id);
  Add(inner.id, outer.id);  // a cycle ends the walk
  Add(inner.id, d1.id);
  Add(other.id, d2.id);
  Result<std::vector<SerialDevice>> got = store_->DevicesOfSerials(kTenantA, {"S1", "S2", "S3", "NONE"});
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 3u);
  std::vector<std::string> s1_groups{inner.id, outer.id};
  std::sort(s1_groups.begin(), s1_groups.end());
  EXPECT_EQ((*got)[0].serial_number, "S1");
  EXPECT_EQ((*got)[0].managed_device_id, m1.id);
  EXPECT_EQ((*got)[0].group_ids, s1_groups);
  EXPECT_EQ((*got)[1].group_ids, std::vector<std::string>{other.id});
  EXPECT_EQ((*got)[2].serial_number, "S3");
  EXPECT_TRUE((*got)[2].group_ids.empty());
  Result<std::vector<SerialDevice>> b = store_->DevicesOfSerials(kTenantB, {"S1"});
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->empty());
}

TEST_P(DirectoryChangesTest, LicenceRowsBySerialAndTalliedByAsset) {
  auto row = [](std::string adam, std::string serial, std::string state, std::string cause, Timestamp updated,
                std::string code = "") {
    DeviceLicense r;
    r.adam_id = std::move(adam);
    r.serial_number = std::move(serial);
    r.state = std::move(state);
    r.cause = std::move(cause);
    r.error_code = std::move(code);
    r.updated = updated;
    return r;
  };
  const Timestamp sync = kT0 - 100;
  ASSERT_TRUE(store_->PutDeviceLicenses(
      kTenantA, token_,
      {row("1", "A", "granted", "assigned", sync - 1),  // before the sync
       row("1", "B", "granted", "assigned", sync + 1),  // since
       row("1", "C", "pending", "assigned", sync - 1), row("1", "D", "reclaimPending", "leftScope", sync + 1),
       row("1", "E", "released", "leftScope", sync + 1), row("1", "F", "released", "uninstall", sync + 1),
       row("1", "G", "failed", "assigned", sync + 1, "9709"), row("1", "H", "failed", "assigned", sync + 1, "9610"),
       row("2", "A", "granted", "assigned", sync + 1)},
      {}));
  Result<std::vector<DeviceLicense>> of = store_->DeviceLicensesOfSerials(kTenantA, token_, {"A", "G", "Z"});
  ASSERT_TRUE(of) << of.error().message;
  ASSERT_EQ(of->size(), 3u);
  EXPECT_EQ((*of)[0].adam_id + (*of)[0].serial_number, "1A");
  EXPECT_EQ((*of)[1].adam_id + (*of)[1].serial_number, "1G");
  EXPECT_EQ((*of)[2].adam_id + (*of)[2].serial_number, "2A");
  Result<std::vector<DeviceLicense>> other = store_->DeviceLicensesOfSerials(kTenantB, token_, {"A"});
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->empty());

  Result<std::vector<DeviceLicenseTally>> tally = store_->TallyDeviceLicenses(kTenantA, token_, sync);
  ASSERT_TRUE(tally) << tally.error().message;
  ASSERT_EQ(tally->size(), 2u);
  const DeviceLicenseTally& one = (*tally)[0];
  EXPECT_EQ(one.adam_id, "1");
  EXPECT_EQ(one.granted, 2);
  EXPECT_EQ(one.held_since, 3) << "B (granted since), C (pending), D (reclaimPending)";
  EXPECT_EQ(one.reclaimed_by_directory, 2) << "D and E; F was an uninstall";
  EXPECT_EQ(one.not_enough, 1);
  EXPECT_EQ(one.pending, 1);
  EXPECT_EQ(one.failed, 2);
  EXPECT_EQ(one.reclaim_pending, 1);
  EXPECT_EQ((*tally)[1].granted, 1);
  EXPECT_EQ((*tally)[1].pending + (*tally)[1].failed + (*tally)[1].reclaim_pending, 0);
}

// The tally is kept and given again until a licence row of the token is
// written: a row changed behind the store's back (raw SQL) does not show while
// it is kept, and every writer of licence rows makes the next tally count again.
TEST_P(DirectoryChangesTest, TallyIsKeptUntilALicenceRowIsWritten) {
  const Timestamp sync = kT0 - 100;
  auto granted = [](std::string serial) {
    DeviceLicense r;
    r.adam_id = "1";
    r.serial_number = std::move(serial);
    r.state = "granted";
    r.cause = "assigned";
    return r;
  };
  auto granted_count = [&](Timestamp since) -> std::int64_t {
    Result<std::vector<DeviceLicenseTally>> tally = store_->TallyDeviceLicenses(kTenantA, token_, since);
    EXPECT_TRUE(tally) << tally.error().message;
    if (!tally || tally->empty()) return 0;
    EXPECT_EQ(tally->size(), 1u);
    return (*tally)[0].granted;
  };
  auto tamper = [&](const std::string& serial) {
    db_->raw().Exec("UPDATE device_licenses SET state = 'failed' WHERE serial_number = '" + serial + "'");
  };
  EXPECT_EQ(granted_count(sync), 0) << "no rows yet";
  ASSERT_TRUE(store_->PutDeviceLicenses(kTenantA, token_, {granted("A"), granted("B"), granted("C")}, {}));
  EXPECT_EQ(granted_count(sync), 3) << "a put is counted";
  tamper("A");
  EXPECT_EQ(granted_count(sync), 3) << "kept: the rows were not read again";
  EXPECT_EQ(granted_count(sync + 1), 2) << "another `since` counts again";
  EXPECT_EQ(granted_count(sync), 2) << "counted again for the first `since`";

  // Each writer makes the next tally count: a put that removes,
  tamper("B");
  ASSERT_TRUE(store_->PutDeviceLicenses(kTenantA, token_, {}, {granted("C")}));
  EXPECT_EQ(granted_count(sync), 0) << "B tampered, C removed";
  // an event recorded,
  ASSERT_TRUE(store_->PutDeviceLicenses(kTenantA, token_, {granted("D"), granted("E")}, {}));
  EXPECT_EQ(granted_count(sync), 2);
  AppleEvent event;
  event.event_id = "ev-1";
  event.kind = "disassociate";
  event.adam_id = "1";
  event.serials = 1;
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, event, {"D"}, "leftScope"));
  EXPECT_EQ(granted_count(sync), 1) << "D is reclaimPending";
  // and an event settled, in part (a notification) or whole (a poll).
  tamper("E");
  AppleEventOutcome part;
  part.only_serials = std::vector<std::string>{"D"};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "ev-1", part));
  EXPECT_EQ(granted_count(sync), 0) << "E tampered, D released";

  // A user licence event settled changes no device row: the tally stays kept.
  ASSERT_TRUE(store_->PutDeviceLicenses(kTenantA, token_, {granted("F")}, {}));
  EXPECT_EQ(granted_count(sync), 1);
  AppleEvent people = event;
  people.event_id = "ev-2";
  people.kind = "associate";
  ASSERT_TRUE(store_->RecordUserLicenseEvent(kTenantA, token_, people, {"user-1"}, "assigned"));
  tamper("F");
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "ev-2", AppleEventOutcome{}));
  EXPECT_EQ(granted_count(sync), 1) << "kept across a settle that wrote only user licences";

  // Another token's tally is its own.
  const std::string other = Token(kTenantA, "2");
  ASSERT_TRUE(store_->PutDeviceLicenses(kTenantA, other, {granted("A")}, {}));
  Result<std::vector<DeviceLicenseTally>> theirs = store_->TallyDeviceLicenses(kTenantA, other, sync);
  ASSERT_TRUE(theirs);
  ASSERT_EQ(theirs->size(), 1u);
  EXPECT_EQ((*theirs)[0].granted, 1);
  EXPECT_EQ(granted_count(sync), 1) << "kept: the other token's writes do not touch it";
  // A deleted token takes its kept tally with it.
  ASSERT_TRUE(store_->DeleteToken(kTenantA, other));
  EXPECT_EQ(db_->raw().Int("SELECT count(*) FROM device_license_tallies WHERE token_id = '" + other + "'"), 0);
}

INSTANTIATE_TEST_SUITE_P(Store, DirectoryChangesTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

}  // namespace
}  // namespace vppd::store
