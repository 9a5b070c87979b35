// The minimal directory (service.h, Directory): admission, validation of what a
// client sets, and the reconcile hook after changes that may move licences.
//
// Layout: 1. checks of values  2. applying changes per entity  3. Directory's methods.
#include <algorithm>

#include <fmt/format.h>

#include "service/service.h"

namespace vppd::service {
namespace {

// --- 1. checks of values -------------------------------------------------------------

std::size_t Characters(std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

Error BadValue(const char* property, std::string why) {
  return Error::InvalidArgument(
      fmt::format("Invalid value specified for property '{}' of resource: {}.", property, why), property);
}

Status CheckLength(const char* property, std::string_view value, std::size_t max) {
  if (Characters(value) > max) return Fail(BadValue(property, fmt::format("longer than {} characters", max)));
  return {};
}

Status CheckOptLength(const char* property, const std::optional<std::optional<std::string>>& value, std::size_t max) {
  if (!value || !*value) return {};
  return CheckLength(property, **value, max);
}

Status Required(const char* property, bool present) {
  if (!present) {
    return Fail(Error::InvalidArgument(fmt::format("Property '{}' is required when creating the resource.", property),
                                       property));
  }
  return {};
}

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// A GUID property, kept lower-case so that ids compare as Entra compares them.
Status CheckGuid(const char* property, std::string& value) {
  if (!IsGuid(value)) return Fail(BadValue(property, fmt::format("'{}' is not a GUID", value.substr(0, 64))));
  value = Lower(std::move(value));
  return {};
}

Status CheckGuid(const char* property, std::optional<std::optional<std::string>>& value) {
  if (!value || !*value) return {};
  if ((*value)->empty()) {
    *value = std::optional<std::string>();
    return {};
  }
  return CheckGuid(property, **value);
}

Status CheckUserPrincipalName(const std::string& upn) {
  if (auto ok = CheckLength("userPrincipalName", upn, kMaxUserPrincipalName); !ok) return ok;
  const auto at = upn.find('@');
  if (at == std::string::npos || at == 0 || at + 1 == upn.size() || upn.find('@', at + 1) != std::string::npos ||
      upn.find_first_of(" \t\r\n") != std::string::npos) {
    return Fail(BadValue("userPrincipalName", "it must be alias@domain"));
  }
  return {};
}

Status CheckNonEmpty(const char* property, const std::string& value) {
  if (value.find_first_not_of(" \t\r\n") == std::string::npos) return Fail(BadValue(property, "it is empty"));
  return {};
}

// --- 2. applying changes per entity -----------------------------------------------------

Status Apply(UserChanges c, store::User& u) {
  if (c.user_principal_name) {
    if (auto ok = CheckUserPrincipalName(*c.user_principal_name); !ok) return ok;
    u.user_principal_name = *c.user_principal_name;
  }
  if (c.display_name) {
    if (auto ok = CheckNonEmpty("displayName", *c.display_name); !ok) return ok;
    if (auto ok = CheckLength("displayName", *c.display_name, kMaxDisplayName); !ok) return ok;
    u.display_name = *c.display_name;
  }
  if (auto ok = CheckOptLength("mail", c.mail, kMaxMail); !ok) return ok;
  if (auto ok = CheckOptLength("givenName", c.given_name, kMaxPersonName); !ok) return ok;
  if (auto ok = CheckOptLength("surname", c.surname, kMaxPersonName); !ok) return ok;
  if (auto ok = CheckOptLength("jobTitle", c.job_title, kMaxJobTitle); !ok) return ok;
  if (c.mail) u.mail = *c.mail;
  if (c.given_name) u.given_name = *c.given_name;
  if (c.surname) u.surname = *c.surname;
  if (c.job_title) u.job_title = *c.job_title;
  if (c.account_enabled) u.account_enabled = *c.account_enabled;
  return {};
}

Status Apply(GroupChanges c, store::Group& g) {
  if (c.display_name) {
    if (auto ok = CheckNonEmpty("displayName", *c.display_name); !ok) return ok;
    if (auto ok = CheckLength("displayName", *c.display_name, kMaxDisplayName); !ok) return ok;
    g.display_name = *c.display_name;
  }
  if (auto ok = CheckOptLength("description", c.description, kMaxGroupDescription); !ok) return ok;
  if (auto ok = CheckOptLength("mailNickname", c.mail_nickname, kMaxMailNickname); !ok) return ok;
  if (c.mail_nickname && *c.mail_nickname &&
      (*c.mail_nickname)->find_first_of(" @()\\[]\";:<>,") != std::string::npos) {
    return Fail(BadValue("mailNickname", "it may not hold spaces nor any of @()\\[]\";:<>,"));
  }
  if (c.group_types) {
    for (const std::string& type : *c.group_types) {
      if (type == "DynamicMembership") {
        return Fail(BadValue("groupTypes", "vppd keeps no dynamic membership rules; add members instead"));
      }
      if (type != "Unified") return Fail(BadValue("groupTypes", fmt::format("'{}' is not a group type", type)));
    }
    g.group_types = *c.group_types;
  }
  if (c.description) g.description = *c.description;
  if (c.mail_nickname) g.mail_nickname = *c.mail_nickname;
  if (c.mail_enabled) g.mail_enabled = *c.mail_enabled;
  if (c.security_enabled) g.security_enabled = *c.security_enabled;
  return {};
}

Status Apply(DeviceChanges c, store::Device& d) {
  if (c.device_id) {
    if (auto ok = CheckGuid("deviceId", *c.device_id); !ok) return ok;
    d.device_id = *c.device_id;
  }
  if (c.display_name && *c.display_name) {
    if (auto ok = CheckNonEmpty("displayName", **c.display_name); !ok) return ok;
  }
  if (auto ok = CheckOptLength("displayName", c.display_name, kMaxDisplayName); !ok) return ok;
  if (auto ok = CheckOptLength("operatingSystem", c.operating_system, kMaxDeviceText); !ok) return ok;
  if (auto ok = CheckOptLength("operatingSystemVersion", c.operating_system_version, kMaxDeviceText); !ok) return ok;
  if (c.display_name) d.display_name = *c.display_name;
  if (c.operating_system) d.operating_system = *c.operating_system;
  if (c.operating_system_version) d.operating_system_version = *c.operating_system_version;
  if (c.account_enabled) d.account_enabled = *c.account_enabled;
  return {};
}

Status Apply(ManagedDeviceChanges c, store::ManagedDevice& m) {
  if (auto ok = CheckGuid("azureADDeviceId", c.azure_ad_device_id); !ok) return ok;
  if (auto ok = CheckGuid("userId", c.user_id); !ok) return ok;
  for (const auto& [name, value] : {std::pair{"serialNumber", &c.serial_number},
                                    {"deviceName", &c.device_name},
                                    {"userPrincipalName", &c.user_principal_name},
                                    {"operatingSystem", &c.operating_system},
                                    {"osVersion", &c.os_version},
                                    {"model", &c.model}}) {
    if (auto ok = CheckOptLength(name, *value, kMaxDeviceText); !ok) return ok;
  }
  for (const auto& [field, value] : {std::pair{&m.serial_number, &c.serial_number},
                                     {&m.device_name, &c.device_name},
                                     {&m.azure_ad_device_id, &c.azure_ad_device_id},
                                     {&m.user_id, &c.user_id},
                                     {&m.user_principal_name, &c.user_principal_name},
                                     {&m.operating_system, &c.operating_system},
                                     {&m.os_version, &c.os_version},
                                     {&m.model, &c.model}}) {
    if (*value) *field = **value;
  }
  return {};
}

// Graph's words for a reference to an object that is not there.
Error ResourceNotFound(const std::string& id) {
  return Error::NotFound(
      fmt::format("Resource '{}' does not exist or one of its queried reference-property objects are not present.", id),
      id);
}

// The store's NotFound and AlreadyExists in Graph's words; other errors pass through.
Error MapStoreError(Error e, const char* unique_property) {
  if (e.code == Code::kNotFound) return ResourceNotFound(e.target);
  if (e.code == Code::kAlreadyExists && unique_property != nullptr) {
    return Error::InvalidArgument(
        fmt::format("Another object with the same value for property {} already exists.", unique_property),
        unique_property);
  }
  return e;
}

template <class T>
Result<T> Mapped(Result<T> r, const char* unique_property = nullptr) {
  if (!r) return Fail(MapStoreError(std::move(r.error()), unique_property));
  return r;
}

Status Mapped(Status s) {
  if (!s) return Fail(MapStoreError(std::move(s.error()), nullptr));
  return s;
}

}  // namespace

// --- 3. Directory's methods -------------------------------------------------------------

Directory::Directory(store::Store& store, Options options, ReconcileTrigger* reconcile)
    : store_(store), options_(std::move(options)), gate_(store, options_), reconcile_(reconcile) {}

void Directory::DirectoryChanged(const Principal& caller) {
  if (reconcile_ != nullptr) reconcile_->TenantNeedsReconcile(caller.tenant_id);
}

#define VPPD_ADMIT(op) \
  if (auto ok = gate_.Admit(caller, Operation::op); !ok) return Fail(ok.error())

// users

Result<store::User> Directory::CreateUser(const Principal& caller, const UserChanges& changes) {
  VPPD_ADMIT(kWriteUsers);
  if (auto ok = Required("userPrincipalName", changes.user_principal_name.has_value()); !ok) return Fail(ok.error());
  if (auto ok = Required("displayName", changes.display_name.has_value()); !ok) return Fail(ok.error());
  store::User user;
  if (auto ok = Apply(changes, user); !ok) return Fail(ok.error());
  return Mapped(store_.CreateUser(caller.tenant_id, std::move(user)), "userPrincipalName");
}

Result<store::User> Directory::GetUser(const Principal& caller, const std::string& id) {
  VPPD_ADMIT(kReadUsers);
  return Mapped(store_.GetUser(caller.tenant_id, id));
}

Result<store::Page<store::User>> Directory::ListUsers(const Principal& caller, const store::ListQuery& query) {
  VPPD_ADMIT(kReadUsers);
  return store_.ListUsers(caller.tenant_id, query);
}

Result<std::int64_t> Directory::CountUsers(const Principal& caller, const std::optional<store::Expr>& filter) {
  VPPD_ADMIT(kReadUsers);
  return store_.CountUsers(caller.tenant_id, filter);
}

Result<store::User> Directory::UpdateUser(const Principal& caller, const std::string& id, const UserChanges& changes) {
  VPPD_ADMIT(kWriteUsers);
  return Mapped(store_.UpdateUser(caller.tenant_id, id, [&](store::User& u) { return Apply(changes, u); }),
                "userPrincipalName");
}

Status Directory::DeleteUser(const Principal& caller, const std::string& id) {
  VPPD_ADMIT(kWriteUsers);
  if (auto ok = Mapped(store_.DeleteUser(caller.tenant_id, id)); !ok) return ok;
  DirectoryChanged(caller);  // the user's licences are reclaimed and its Apple users retired
  return {};
}

// groups and members

Result<store::Group> Directory::CreateGroup(const Principal& caller, const GroupChanges& changes) {
  VPPD_ADMIT(kWriteGroups);
  if (auto ok = Required("displayName", changes.display_name.has_value()); !ok) return Fail(ok.error());
  if (auto ok = Required("mailNickname", changes.mail_nickname && *changes.mail_nickname); !ok) {
    return Fail(ok.error());
  }
  if (auto ok = Required("mailEnabled", changes.mail_enabled.has_value()); !ok) return Fail(ok.error());
  if (auto ok = Required("securityEnabled", changes.security_enabled.has_value()); !ok) return Fail(ok.error());
  store::Group group;
  if (auto ok = Apply(changes, group); !ok) return Fail(ok.error());
  return Mapped(store_.CreateGroup(caller.tenant_id, std::move(group)));
}

Result<store::Group> Directory::GetGroup(const Principal& caller, const std::string& id) {
  VPPD_ADMIT(kReadGroups);
  return Mapped(store_.GetGroup(caller.tenant_id, id));
}

Result<store::Page<store::Group>> Directory::ListGroups(const Principal& caller, const store::ListQuery& query) {
  VPPD_ADMIT(kReadGroups);
  return store_.ListGroups(caller.tenant_id, query);
}

Result<std::int64_t> Directory::CountGroups(const Principal& caller, const std::optional<store::Expr>& filter) {
  VPPD_ADMIT(kReadGroups);
  return store_.CountGroups(caller.tenant_id, filter);
}

Result<store::Group> Directory::UpdateGroup(const Principal& caller, const std::string& id,
                                            const GroupChanges& changes) {
  VPPD_ADMIT(kWriteGroups);
  return Mapped(store_.UpdateGroup(caller.tenant_id, id, [&](store::Group& g) { return Apply(changes, g); }));
}

Status Directory::DeleteGroup(const Principal& caller, const std::string& id) {
  VPPD_ADMIT(kWriteGroups);
  if (auto ok = Mapped(store_.DeleteGroup(caller.tenant_id, id)); !ok) return ok;
  DirectoryChanged(caller);  // its members left it, and it left the groups it was in
  return {};
}

Result<store::GroupMember> Directory::AddMember(const Principal& caller, const std::string& group_id,
                                                const std::string& member_id) {
  VPPD_ADMIT(kWriteGroupMembers);
  auto added = store_.AddGroupMember(caller.tenant_id, group_id, member_id);
  if (!added) {
    Error& e = added.error();
    if (e.code == Code::kAlreadyExists) {
      // Graph's own words for it.
      return Fail(Error::InvalidArgument(
          "One or more added object references already exist for the following modified properties: 'members'.",
          member_id));
    }
    if (e.code == Code::kInvalidArgument) {
      return Fail(Error::InvalidArgument("A group cannot be added as a member of itself.", member_id));
    }
    return Fail(MapStoreError(std::move(e), nullptr));
  }
  DirectoryChanged(caller);
  return added;
}

Status Directory::RemoveMember(const Principal& caller, const std::string& group_id, const std::string& member_id) {
  VPPD_ADMIT(kWriteGroupMembers);
  if (auto ok = Mapped(store_.RemoveGroupMember(caller.tenant_id, group_id, member_id)); !ok) return ok;
  DirectoryChanged(caller);
  return {};
}

Result<store::Page<store::GroupMember>> Directory::ListMembers(const Principal& caller, const std::string& group_id,
                                                               std::int64_t skip, std::int64_t limit) {
  VPPD_ADMIT(kReadGroupMembers);
  return Mapped(store_.ListGroupMembers(caller.tenant_id, group_id, skip, limit));
}

Result<std::int64_t> Directory::CountMembers(const Principal& caller, const std::string& group_id) {
  VPPD_ADMIT(kReadGroupMembers);
  return Mapped(store_.CountGroupMembers(caller.tenant_id, group_id));
}

// devices

Result<store::Device> Directory::CreateDevice(const Principal& caller, const DeviceChanges& changes) {
  VPPD_ADMIT(kWriteDevices);
  if (auto ok = Required("deviceId", changes.device_id.has_value()); !ok) return Fail(ok.error());
  if (auto ok = Required("displayName", changes.display_name && *changes.display_name); !ok) return Fail(ok.error());
  store::Device device;
  if (auto ok = Apply(changes, device); !ok) return Fail(ok.error());
  auto created = Mapped(store_.CreateDevice(caller.tenant_id, std::move(device)), "deviceId");
  if (created) DirectoryChanged(caller);
  return created;
}

Result<store::Device> Directory::GetDevice(const Principal& caller, const std::string& id) {
  VPPD_ADMIT(kReadDevices);
  return Mapped(store_.GetDevice(caller.tenant_id, id));
}

Result<store::Page<store::Device>> Directory::ListDevices(const Principal& caller, const store::ListQuery& query) {
  VPPD_ADMIT(kReadDevices);
  return store_.ListDevices(caller.tenant_id, query);
}

Result<std::int64_t> Directory::CountDevices(const Principal& caller, const std::optional<store::Expr>& filter) {
  VPPD_ADMIT(kReadDevices);
  return store_.CountDevices(caller.tenant_id, filter);
}

Result<store::Device> Directory::UpdateDevice(const Principal& caller, const std::string& id,
                                              const DeviceChanges& changes) {
  VPPD_ADMIT(kWriteDevices);
  auto updated = Mapped(store_.UpdateDevice(caller.tenant_id, id, [&](store::Device& d) { return Apply(changes, d); }),
                        "deviceId");
  if (updated) DirectoryChanged(caller);
  return updated;
}

Status Directory::DeleteDevice(const Principal& caller, const std::string& id) {
  VPPD_ADMIT(kWriteDevices);
  if (auto ok = Mapped(store_.DeleteDevice(caller.tenant_id, id)); !ok) return ok;
  DirectoryChanged(caller);
  return {};
}

// managed devices

Result<store::ManagedDevice> Directory::CreateManagedDevice(const Principal& caller,
                                                            const ManagedDeviceChanges& changes) {
  VPPD_ADMIT(kWriteManagedDevices);
  store::ManagedDevice device;
  if (auto ok = Apply(changes, device); !ok) return Fail(ok.error());
  auto created = Mapped(store_.CreateManagedDevice(caller.tenant_id, std::move(device)));
  if (created) DirectoryChanged(caller);
  return created;
}

Result<store::ManagedDevice> Directory::GetManagedDevice(const Principal& caller, const std::string& id) {
  VPPD_ADMIT(kReadManagedDevices);
  return Mapped(store_.GetManagedDevice(caller.tenant_id, id));
}

Result<store::Page<store::ManagedDevice>> Directory::ListManagedDevices(const Principal& caller,
                                                                        const store::ListQuery& query) {
  VPPD_ADMIT(kReadManagedDevices);
  return store_.ListManagedDevices(caller.tenant_id, query);
}

Result<std::int64_t> Directory::CountManagedDevices(const Principal& caller, const std::optional<store::Expr>& filter) {
  VPPD_ADMIT(kReadManagedDevices);
  return store_.CountManagedDevices(caller.tenant_id, filter);
}

Result<store::ManagedDevice> Directory::UpdateManagedDevice(const Principal& caller, const std::string& id,
                                                            const ManagedDeviceChanges& changes) {
  VPPD_ADMIT(kWriteManagedDevices);
  auto updated = Mapped(
      store_.UpdateManagedDevice(caller.tenant_id, id, [&](store::ManagedDevice& m) { return Apply(changes, m); }));
  if (updated) DirectoryChanged(caller);
  return updated;
}

Status Directory::DeleteManagedDevice(const Principal& caller, const std::string& id) {
  VPPD_ADMIT(kWriteManagedDevices);
  if (auto ok = Mapped(store_.DeleteManagedDevice(caller.tenant_id, id)); !ok) return ok;
  DirectoryChanged(caller);
  return {};
}

#undef VPPD_ADMIT

}  // namespace vppd::service
