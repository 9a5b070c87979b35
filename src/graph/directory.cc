// The directory's handlers: /users, /groups (and their members), /devices and
// /deviceManagement/managedDevices, in beta and v1.0; and JSON batching, POST /$batch.
//
// Layout: 1. the four entity types (model, JSON, bodies)  2. the generic handlers
// 3. Api::Impl's handlers per route  4. members  5. $batch  6. $metadata types.
//
// Bodies: every property must be one the type has, with the right JSON type
// (400 naming it otherwise); read-only and unstored properties Graph documents
// for the type (passwordProfile, businessPhones, alternativeSecurityIds, ...) are
// accepted and ignored. passwordProfile in particular is never stored: vppd
// authenticates no one.
#include <map>
#include <set>
#include <string>

#include <boost/algorithm/string/predicate.hpp>
#include <boost/json.hpp>
#include <boost/url.hpp>
#include <fmt/format.h>

#include "graph/api_impl.h"
#include "graph/errors.h"
#include "graph/metadata.h"
#include "graph/model.h"
#include "graph/odata.h"
#include "graph/store_mapping.h"
#include "store/store.h"

namespace vppd::graph {
namespace json = boost::json;
using store::Column;

namespace {

// --- 1. the four entity types -------------------------------------------------------------

PropertyDef Prop(std::string name, EdmType type, std::optional<Column> column, bool nullable = true) {
  PropertyDef d;
  d.name = std::move(name);
  d.type = type;
  d.nullable = nullable;
  d.column = column;
  d.filterable = column.has_value();
  return d;
}

PropertyDef Strings(std::string name) {
  PropertyDef d = Prop(std::move(name), EdmType::kString, std::nullopt);
  d.collection = true;
  return d;
}

EntityDef MakeEntity(std::string name, store::Table table, std::vector<PropertyDef> properties) {
  EntityDef e;
  e.name = std::move(name);
  e.table = table;
  e.properties = std::move(properties);
  TypeDef type;
  type.name = "microsoft.graph." + e.name;
  e.types = {type};
  return e;
}

json::value Opt(const std::optional<std::string>& s) { return s ? json::value(*s) : json::value(nullptr); }
json::value Time(Timestamp t) { return json::value(FormatIso8601(t)); }

// A JSON body's value, checked against the property's type.
Error WrongType(std::string_view property, std::string_view expected) {
  return Error::InvalidArgument(fmt::format("Invalid value for property '{}': expected {}.", property, expected),
                                std::string(property));
}

Result<std::string> String(const json::value& v, std::string_view property) {
  if (!v.is_string()) return Fail(WrongType(property, "a string (Edm.String)"));
  return std::string(v.get_string());
}
Result<std::optional<std::string>> NullableString(const json::value& v, std::string_view property) {
  if (v.is_null()) return std::optional<std::string>();
  auto s = String(v, property);
  if (!s) return Fail(s.error());
  return std::optional<std::string>(std::move(*s));
}
Result<bool> Bool(const json::value& v, std::string_view property) {
  if (!v.is_bool()) return Fail(WrongType(property, "true or false (Edm.Boolean)"));
  return v.get_bool();
}
Result<std::vector<std::string>> StringList(const json::value& v, std::string_view property) {
  if (!v.is_array()) return Fail(WrongType(property, "an array of strings"));
  std::vector<std::string> out;
  for (const json::value& item : v.get_array()) {
    if (!item.is_string()) return Fail(WrongType(property, "an array of strings"));
    out.emplace_back(item.get_string());
  }
  return out;
}

// Walks a body: `on_property` takes each property it knows (returning false for
// one it does not); `ignored` are accepted and dropped. Annotations ("@odata.type")
// must name `type` when they are the type; others are ignored.
Status ReadBody(const json::object& body, std::string_view type, std::initializer_list<std::string_view> ignored,
                const std::function<Result<bool>(std::string_view, const json::value&)>& on_property) {
  for (const auto& [key, value] : body) {
    if (key == "@odata.type") {
      if (!value.is_string() || (value.get_string() != fmt::format("#microsoft.graph.{}", type) &&
                                 value.get_string() != fmt::format("microsoft.graph.{}", type))) {
        return Fail(Error::InvalidArgument(
            fmt::format("The @odata.type of the body must be '#microsoft.graph.{}'.", type), "@odata.type"));
      }
      continue;
    }
    if (key.find("@odata.bind") != std::string_view::npos) {
      return Fail(Error::InvalidArgument(
          fmt::format("'{}' is not supported by vppd; add members with POST .../members/$ref.", std::string(key)),
          std::string(key)));
    }
    if (key.starts_with("@")) continue;
    if (std::find(ignored.begin(), ignored.end(), std::string_view(key)) != ignored.end()) continue;
    Result<bool> known = on_property(key, value);
    if (!known) return Fail(known.error());
    if (!*known) {
      return Fail(Error::InvalidArgument(
          fmt::format("Property '{}' does not exist on type 'microsoft.graph.{}'.", std::string(key), type),
          std::string(key)));
    }
  }
  return {};
}

// Sets `field` from `value` when `property` is `key`: true when it was.
template <class Field, class Reader>
Result<bool> Take(std::string_view key, std::string_view property, const json::value& value, Field& field,
                  Reader read) {
  if (key != property) return false;
  auto v = read(value, property);
  if (!v) return Fail(v.error());
  field = std::move(*v);
  return true;
}

struct UserKind {
  using Entity = store::User;
  using Changes = service::UserChanges;
  static constexpr const char* kName = "user";
  static constexpr const char* kSet = "users";
  static constexpr service::Operation kRead = service::Operation::kReadUsers;
  static const EntityDef& Def() {
    static const EntityDef e = MakeEntity(
        "user", store::Table::kUsers,
        {Prop("id", EdmType::kString, Column::kUserId, false), Strings("businessPhones"),
         Prop("displayName", EdmType::kString, Column::kUserDisplayName),
         Prop("givenName", EdmType::kString, Column::kUserGivenName),
         Prop("jobTitle", EdmType::kString, Column::kUserJobTitle), Prop("mail", EdmType::kString, Column::kUserMail),
         Prop("mobilePhone", EdmType::kString, std::nullopt), Prop("officeLocation", EdmType::kString, std::nullopt),
         Prop("preferredLanguage", EdmType::kString, std::nullopt),
         Prop("surname", EdmType::kString, Column::kUserSurname),
         Prop("userPrincipalName", EdmType::kString, Column::kUserPrincipalName),
         Prop("accountEnabled", EdmType::kBoolean, Column::kUserAccountEnabled),
         Prop("createdDateTime", EdmType::kDateTimeOffset, Column::kUserCreated)});
    return e;
  }
  static void Write(const store::User& u, json::object& o) {
    o["id"] = u.id;
    o["businessPhones"] = json::array();
    o["displayName"] = Opt(u.display_name);
    o["givenName"] = Opt(u.given_name);
    o["jobTitle"] = Opt(u.job_title);
    o["mail"] = Opt(u.mail);
    o["mobilePhone"] = nullptr;
    o["officeLocation"] = nullptr;
    o["preferredLanguage"] = nullptr;
    o["surname"] = Opt(u.surname);
    o["userPrincipalName"] = u.user_principal_name;
    o["accountEnabled"] = u.account_enabled;
    o["createdDateTime"] = Time(u.created);
  }
  static Result<Changes> Read(const json::object& body) {
    Changes c;
    Status s = ReadBody(
        body, kName,
        {"id", "passwordProfile", "mailNickname", "usageLocation", "businessPhones", "mobilePhone", "officeLocation",
         "preferredLanguage", "passwordPolicies", "createdDateTime"},
        [&](std::string_view k, const json::value& v) -> Result<bool> {
          for (auto r :
               {Take(k, "userPrincipalName", v, c.user_principal_name, String),
                Take(k, "displayName", v, c.display_name, String), Take(k, "mail", v, c.mail, NullableString),
                Take(k, "givenName", v, c.given_name, NullableString), Take(k, "surname", v, c.surname, NullableString),
                Take(k, "jobTitle", v, c.job_title, NullableString),
                Take(k, "accountEnabled", v, c.account_enabled, Bool)}) {
            if (!r || *r) return r;
          }
          return false;
        });
    if (!s) return Fail(s.error());
    return c;
  }
};

struct GroupKind {
  using Entity = store::Group;
  using Changes = service::GroupChanges;
  static constexpr const char* kName = "group";
  static constexpr const char* kSet = "groups";
  static constexpr service::Operation kRead = service::Operation::kReadGroups;
  static const EntityDef& Def() {
    static const EntityDef e = MakeEntity("group", store::Table::kGroups,
                                          {Prop("id", EdmType::kString, Column::kGroupId, false),
                                           Prop("createdDateTime", EdmType::kDateTimeOffset, Column::kGroupCreated),
                                           Prop("description", EdmType::kString, Column::kGroupDescription),
                                           Prop("displayName", EdmType::kString, Column::kGroupDisplayName),
                                           Strings("groupTypes"), Prop("mail", EdmType::kString, std::nullopt),
                                           Prop("mailEnabled", EdmType::kBoolean, Column::kGroupMailEnabled),
                                           Prop("mailNickname", EdmType::kString, Column::kGroupMailNickname),
                                           Prop("securityEnabled", EdmType::kBoolean, Column::kGroupSecurityEnabled),
                                           Prop("visibility", EdmType::kString, std::nullopt)});
    return e;
  }
  static void Write(const store::Group& g, json::object& o) {
    o["id"] = g.id;
    o["createdDateTime"] = Time(g.created);
    o["description"] = Opt(g.description);
    o["displayName"] = g.display_name;
    json::array types;
    for (const std::string& t : g.group_types) types.emplace_back(t);
    o["groupTypes"] = std::move(types);
    o["mail"] = nullptr;
    o["mailEnabled"] = g.mail_enabled;
    o["mailNickname"] = Opt(g.mail_nickname);
    o["securityEnabled"] = g.security_enabled;
    o["visibility"] = nullptr;
  }
  static Result<Changes> Read(const json::object& body) {
    Changes c;
    Status s = ReadBody(body, kName, {"id", "visibility", "createdDateTime", "mail", "classification"},
                        [&](std::string_view k, const json::value& v) -> Result<bool> {
                          for (auto r : {Take(k, "displayName", v, c.display_name, String),
                                         Take(k, "description", v, c.description, NullableString),
                                         Take(k, "mailNickname", v, c.mail_nickname, NullableString),
                                         Take(k, "mailEnabled", v, c.mail_enabled, Bool),
                                         Take(k, "securityEnabled", v, c.security_enabled, Bool),
                                         Take(k, "groupTypes", v, c.group_types, StringList)}) {
                            if (!r || *r) return r;
                          }
                          return false;
                        });
    if (!s) return Fail(s.error());
    return c;
  }
};

struct DeviceKind {
  using Entity = store::Device;
  using Changes = service::DeviceChanges;
  static constexpr const char* kName = "device";
  static constexpr const char* kSet = "devices";
  static constexpr service::Operation kRead = service::Operation::kReadDevices;
  static const EntityDef& Def() {
    static const EntityDef e = MakeEntity(
        "device", store::Table::kDevices,
        {Prop("id", EdmType::kString, Column::kDeviceId, false),
         Prop("accountEnabled", EdmType::kBoolean, Column::kDeviceAccountEnabled),
         Prop("deviceId", EdmType::kString, Column::kDeviceDeviceId),
         Prop("displayName", EdmType::kString, Column::kDeviceDisplayName),
         Prop("operatingSystem", EdmType::kString, Column::kDeviceOperatingSystem),
         Prop("operatingSystemVersion", EdmType::kString, Column::kDeviceOperatingSystemVersion),
         Prop("registrationDateTime", EdmType::kDateTimeOffset, Column::kDeviceCreated),
         Prop("isCompliant", EdmType::kBoolean, std::nullopt), Prop("isManaged", EdmType::kBoolean, std::nullopt),
         Prop("trustType", EdmType::kString, std::nullopt)});
    return e;
  }
  static void Write(const store::Device& d, json::object& o) {
    o["id"] = d.id;
    o["accountEnabled"] = d.account_enabled;
    o["deviceId"] = d.device_id;
    o["displayName"] = Opt(d.display_name);
    o["operatingSystem"] = Opt(d.operating_system);
    o["operatingSystemVersion"] = Opt(d.operating_system_version);
    o["registrationDateTime"] = Time(d.created);
    o["isCompliant"] = nullptr;
    o["isManaged"] = nullptr;
    o["trustType"] = nullptr;
  }
  static Result<Changes> Read(const json::object& body) {
    Changes c;
    Status s =
        ReadBody(body, kName,
                 {"id", "alternativeSecurityIds", "isCompliant", "isManaged", "trustType", "profileType",
                  "registrationDateTime"},
                 [&](std::string_view k, const json::value& v) -> Result<bool> {
                   for (auto r : {Take(k, "deviceId", v, c.device_id, String),
                                  Take(k, "displayName", v, c.display_name, NullableString),
                                  Take(k, "operatingSystem", v, c.operating_system, NullableString),
                                  Take(k, "operatingSystemVersion", v, c.operating_system_version, NullableString),
                                  Take(k, "accountEnabled", v, c.account_enabled, Bool)}) {
                     if (!r || *r) return r;
                   }
                   return false;
                 });
    if (!s) return Fail(s.error());
    return c;
  }
};

struct ManagedDeviceKind {
  using Entity = store::ManagedDevice;
  using Changes = service::ManagedDeviceChanges;
  static constexpr const char* kName = "managedDevice";
  static constexpr const char* kSet = "deviceManagement/managedDevices";
  static constexpr service::Operation kRead = service::Operation::kReadManagedDevices;
  static const EntityDef& Def() {
    static const EntityDef e =
        MakeEntity("managedDevice", store::Table::kManagedDevices,
                   {Prop("id", EdmType::kString, Column::kManagedDeviceId, false),
                    Prop("userId", EdmType::kString, Column::kManagedDeviceUserId),
                    Prop("deviceName", EdmType::kString, Column::kManagedDeviceName),
                    Prop("enrolledDateTime", EdmType::kDateTimeOffset, Column::kManagedDeviceCreated, false),
                    Prop("lastSyncDateTime", EdmType::kDateTimeOffset, Column::kManagedDeviceLastModified, false),
                    Prop("operatingSystem", EdmType::kString, Column::kManagedDeviceOperatingSystem),
                    Prop("osVersion", EdmType::kString, Column::kManagedDeviceOsVersion),
                    Prop("azureADDeviceId", EdmType::kString, Column::kManagedDeviceAzureAdDeviceId),
                    Prop("model", EdmType::kString, Column::kManagedDeviceModel),
                    Prop("manufacturer", EdmType::kString, std::nullopt),
                    Prop("serialNumber", EdmType::kString, Column::kManagedDeviceSerialNumber),
                    Prop("userPrincipalName", EdmType::kString, Column::kManagedDeviceUserPrincipalName)});
    return e;
  }
  static void Write(const store::ManagedDevice& m, json::object& o) {
    o["@odata.type"] = "#microsoft.graph.managedDevice";
    o["id"] = m.id;
    o["userId"] = Opt(m.user_id);
    o["deviceName"] = Opt(m.device_name);
    o["enrolledDateTime"] = Time(m.created);
    o["lastSyncDateTime"] = Time(m.last_modified);
    o["operatingSystem"] = Opt(m.operating_system);
    o["osVersion"] = Opt(m.os_version);
    o["azureADDeviceId"] = Opt(m.azure_ad_device_id);
    o["model"] = Opt(m.model);
    o["manufacturer"] = nullptr;
    o["serialNumber"] = Opt(m.serial_number);
    o["userPrincipalName"] = Opt(m.user_principal_name);
  }
  static Result<Changes> Read(const json::object& body) {
    Changes c;
    Status s = ReadBody(body, kName,
                        {"id", "manufacturer", "enrolledDateTime", "lastSyncDateTime", "managementAgent", "ownerType",
                         "managedDeviceOwnerType", "complianceState", "deviceEnrollmentType", "imei", "meid",
                         "phoneNumber", "emailAddress", "userDisplayName", "deviceRegistrationState"},
                        [&](std::string_view k, const json::value& v) -> Result<bool> {
                          for (auto r : {Take(k, "serialNumber", v, c.serial_number, NullableString),
                                         Take(k, "deviceName", v, c.device_name, NullableString),
                                         Take(k, "azureADDeviceId", v, c.azure_ad_device_id, NullableString),
                                         Take(k, "userId", v, c.user_id, NullableString),
                                         Take(k, "userPrincipalName", v, c.user_principal_name, NullableString),
                                         Take(k, "operatingSystem", v, c.operating_system, NullableString),
                                         Take(k, "osVersion", v, c.os_version, NullableString),
                                         Take(k, "model", v, c.model, NullableString)}) {
                            if (!r || *r) return r;
                          }
                          return false;
                        });
    if (!s) return Fail(s.error());
    return c;
  }
};

// The service's calls per kind.
Result<store::Page<store::User>> List(service::Directory& d, const Principal& p, const store::ListQuery& q, UserKind) {
  return d.ListUsers(p, q);
}
Result<store::Page<store::Group>> List(service::Directory& d, const Principal& p, const store::ListQuery& q,
                                       GroupKind) {
  return d.ListGroups(p, q);
}
Result<store::Page<store::Device>> List(service::Directory& d, const Principal& p, const store::ListQuery& q,
                                        DeviceKind) {
  return d.ListDevices(p, q);
}
Result<store::Page<store::ManagedDevice>> List(service::Directory& d, const Principal& p, const store::ListQuery& q,
                                               ManagedDeviceKind) {
  return d.ListManagedDevices(p, q);
}
Result<std::int64_t> Count(service::Directory& d, const Principal& p, const std::optional<store::Expr>& f, UserKind) {
  return d.CountUsers(p, f);
}
Result<std::int64_t> Count(service::Directory& d, const Principal& p, const std::optional<store::Expr>& f, GroupKind) {
  return d.CountGroups(p, f);
}
Result<std::int64_t> Count(service::Directory& d, const Principal& p, const std::optional<store::Expr>& f, DeviceKind) {
  return d.CountDevices(p, f);
}
Result<std::int64_t> Count(service::Directory& d, const Principal& p, const std::optional<store::Expr>& f,
                           ManagedDeviceKind) {
  return d.CountManagedDevices(p, f);
}
Result<store::User> Get(service::Directory& d, const Principal& p, const std::string& id, UserKind) {
  return d.GetUser(p, id);
}
Result<store::Group> Get(service::Directory& d, const Principal& p, const std::string& id, GroupKind) {
  return d.GetGroup(p, id);
}
Result<store::Device> Get(service::Directory& d, const Principal& p, const std::string& id, DeviceKind) {
  return d.GetDevice(p, id);
}
Result<store::ManagedDevice> Get(service::Directory& d, const Principal& p, const std::string& id, ManagedDeviceKind) {
  return d.GetManagedDevice(p, id);
}
Result<store::User> Create(service::Directory& d, const Principal& p, const service::UserChanges& c) {
  return d.CreateUser(p, c);
}
Result<store::Group> Create(service::Directory& d, const Principal& p, const service::GroupChanges& c) {
  return d.CreateGroup(p, c);
}
Result<store::Device> Create(service::Directory& d, const Principal& p, const service::DeviceChanges& c) {
  return d.CreateDevice(p, c);
}
Result<store::ManagedDevice> Create(service::Directory& d, const Principal& p, const service::ManagedDeviceChanges& c) {
  return d.CreateManagedDevice(p, c);
}
Result<store::User> Update(service::Directory& d, const Principal& p, const std::string& id,
                           const service::UserChanges& c) {
  return d.UpdateUser(p, id, c);
}
Result<store::Group> Update(service::Directory& d, const Principal& p, const std::string& id,
                            const service::GroupChanges& c) {
  return d.UpdateGroup(p, id, c);
}
Result<store::Device> Update(service::Directory& d, const Principal& p, const std::string& id,
                             const service::DeviceChanges& c) {
  return d.UpdateDevice(p, id, c);
}
Result<store::ManagedDevice> Update(service::Directory& d, const Principal& p, const std::string& id,
                                    const service::ManagedDeviceChanges& c) {
  return d.UpdateManagedDevice(p, id, c);
}
Status Delete(service::Directory& d, const Principal& p, const std::string& id, UserKind) {
  return d.DeleteUser(p, id);
}
Status Delete(service::Directory& d, const Principal& p, const std::string& id, GroupKind) {
  return d.DeleteGroup(p, id);
}
Status Delete(service::Directory& d, const Principal& p, const std::string& id, DeviceKind) {
  return d.DeleteDevice(p, id);
}
Status Delete(service::Directory& d, const Principal& p, const std::string& id, ManagedDeviceKind) {
  return d.DeleteManagedDevice(p, id);
}

// Graph's codes for the directory's errors (Entra's "Request_*" family).
Error DirectoryError(Error e) {
  if (!e.graph_code.empty()) return e;
  if (e.code == Code::kNotFound) return std::move(e).WithGraphCode("Request_ResourceNotFound");
  if (e.code == Code::kInvalidArgument) return std::move(e).WithGraphCode("Request_BadRequest");
  return e;
}

template <class T>
Result<T> Directory(Result<T> r) {
  if (!r) return Fail(DirectoryError(std::move(r.error())));
  return r;
}

// --- 2. the generic handlers ---------------------------------------------------------------

template <class K, class I, class C>
Result<http::Response> ListOf(const I& impl, const C& c, bool count_segment) {
  AllowedOptions allowed;
  if (count_segment) {
    if (auto ok = I::RequireCountAccepted(c.req); !ok) return Fail(ok.error());
    allowed.orderby = allowed.top = allowed.skip = allowed.count = allowed.select = allowed.skiptoken = false;
  } else if (auto ok = I::RequireJsonAccepted(c.req); !ok) {
    return Fail(ok.error());
  }
  auto q = ParseQueryOptions(c.query, K::Def(), allowed, impl.RequestLimits(c.req));
  if (!q) return Fail(q.error());
  service::Directory& dir = *impl.deps.directory;
  if (count_segment) {
    auto n = Directory(Count(dir, c.who, q->list.filter, K{}));
    if (!n) return Fail(n.error());
    return I::CountResponse(*n);
  }
  auto page = Directory(List(dir, c.who, q->list, K{}));
  if (!page) return Fail(page.error());
  json::array values;
  for (const auto& item : page->items) {
    json::object o;
    K::Write(item, o);
    if constexpr (std::is_same_v<K, ManagedDeviceKind>) {
      if (c.version == ApiVersion::kBeta) impl.AddDeviceActionResults(c, o, item.id);  // revoke.cc
    }
    if (!q->select.empty()) {
      json::object selected;
      for (const auto& [key, value] : o) {
        if (key == "id" || key.starts_with("@") ||
            std::find(q->select.begin(), q->select.end(), std::string_view(key)) != q->select.end()) {
          selected[key] = value;
        }
      }
      o = std::move(selected);
    }
    values.push_back(std::move(o));
  }
  return impl.CollectionPage(c.req, c.version, K::kSet, c.query, *q, json::serialize(values), values.size(),
                             page->has_more, [&] { return Count(dir, c.who, q->list.filter, K{}); });
}

template <class K, class I, class C>
http::Response EntityResponse(const I& impl, const C& c, int status, const typename K::Entity& entity,
                              const std::vector<std::string>& select) {
  json::object body;
  body["@odata.context"] = impl.ContextUrl(c.req, c.version, {K::kSet, I::SelectFragment(select), "/$entity"});
  json::object o;
  K::Write(entity, o);
  if constexpr (std::is_same_v<K, ManagedDeviceKind>) {
    if (c.version == ApiVersion::kBeta) impl.AddDeviceActionResults(c, o, entity.id);  // revoke.cc
  }
  for (auto& [key, value] : o) {
    if (select.empty() || key == "id" || key.starts_with("@") ||
        std::find(select.begin(), select.end(), std::string_view(key)) != select.end()) {
      body[key] = std::move(value);
    }
  }
  return I::Json(status, body);
}

template <class K, class I, class C>
Result<http::Response> GetOne(const I& impl, const C& c) {
  if (auto ok = I::RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto select = ParseSelectOnly(c.query, K::Def());
  if (!select) return Fail(select.error());
  auto entity = Directory(Get(*impl.deps.directory, c.who, c.id(), K{}));
  if (!entity) return Fail(entity.error());
  return EntityResponse<K>(impl, c, 200, *entity, *select);
}

template <class K, class I, class C>
Result<http::Response> CreateOne(const I& impl, const C& c) {
  if (auto ok = I::RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto body = I::ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  auto changes = Directory(K::Read(*body));
  if (!changes) return Fail(changes.error());
  auto created = Directory(Create(*impl.deps.directory, c.who, *changes));
  if (!created) return Fail(created.error());
  http::Response r = EntityResponse<K>(impl, c, 201, *created, {});
  r.headers.emplace_back("Location",
                         impl.BaseUrl(c.req) + "/" + VersionSegment(c.version) + "/" + K::kSet + "/" + created->id);
  return r;
}

// PATCH: 204 as Graph answers for users, groups and devices; a managedDevice comes back (200).
template <class K, class I, class C>
Result<http::Response> UpdateOne(const I& impl, const C& c) {
  auto body = I::ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  auto changes = Directory(K::Read(*body));
  if (!changes) return Fail(changes.error());
  auto updated = Directory(Update(*impl.deps.directory, c.who, c.id(), *changes));
  if (!updated) return Fail(updated.error());
  if constexpr (std::is_same_v<K, ManagedDeviceKind>) {
    return EntityResponse<K>(impl, c, 200, *updated, {});
  } else {
    return I::NoContent();
  }
}

template <class K, class I, class C>
Result<http::Response> DeleteOne(const I& impl, const C& c) {
  if (auto ok = Directory(Delete(*impl.deps.directory, c.who, c.id(), K{})); !ok) return Fail(ok.error());
  return I::NoContent();
}

}  // namespace

// --- 3. Api::Impl's handlers per route -----------------------------------------------------

Result<http::Response> Api::Impl::ListUsers(const Call& c) const { return ListOf<UserKind>(*this, c, false); }
Result<http::Response> Api::Impl::CountUsers(const Call& c) const { return ListOf<UserKind>(*this, c, true); }
Result<http::Response> Api::Impl::GetUser(const Call& c) const { return GetOne<UserKind>(*this, c); }
Result<http::Response> Api::Impl::CreateUser(const Call& c) const { return CreateOne<UserKind>(*this, c); }
Result<http::Response> Api::Impl::UpdateUser(const Call& c) const { return UpdateOne<UserKind>(*this, c); }
Result<http::Response> Api::Impl::DeleteUser(const Call& c) const { return DeleteOne<UserKind>(*this, c); }

Result<http::Response> Api::Impl::ListGroups(const Call& c) const { return ListOf<GroupKind>(*this, c, false); }
Result<http::Response> Api::Impl::CountGroups(const Call& c) const { return ListOf<GroupKind>(*this, c, true); }
Result<http::Response> Api::Impl::GetGroup(const Call& c) const { return GetOne<GroupKind>(*this, c); }
Result<http::Response> Api::Impl::CreateGroup(const Call& c) const { return CreateOne<GroupKind>(*this, c); }
Result<http::Response> Api::Impl::UpdateGroup(const Call& c) const { return UpdateOne<GroupKind>(*this, c); }
Result<http::Response> Api::Impl::DeleteGroup(const Call& c) const { return DeleteOne<GroupKind>(*this, c); }

Result<http::Response> Api::Impl::ListDevices(const Call& c) const { return ListOf<DeviceKind>(*this, c, false); }
Result<http::Response> Api::Impl::CountDevices(const Call& c) const { return ListOf<DeviceKind>(*this, c, true); }
Result<http::Response> Api::Impl::GetDevice(const Call& c) const { return GetOne<DeviceKind>(*this, c); }
Result<http::Response> Api::Impl::CreateDevice(const Call& c) const { return CreateOne<DeviceKind>(*this, c); }
Result<http::Response> Api::Impl::UpdateDevice(const Call& c) const { return UpdateOne<DeviceKind>(*this, c); }
Result<http::Response> Api::Impl::DeleteDevice(const Call& c) const { return DeleteOne<DeviceKind>(*this, c); }

Result<http::Response> Api::Impl::ListManagedDevices(const Call& c) const {
  return ListOf<ManagedDeviceKind>(*this, c, false);
}
Result<http::Response> Api::Impl::CountManagedDevices(const Call& c) const {
  return ListOf<ManagedDeviceKind>(*this, c, true);
}
Result<http::Response> Api::Impl::GetManagedDevice(const Call& c) const { return GetOne<ManagedDeviceKind>(*this, c); }
Result<http::Response> Api::Impl::CreateManagedDevice(const Call& c) const {
  return CreateOne<ManagedDeviceKind>(*this, c);
}
Result<http::Response> Api::Impl::UpdateManagedDevice(const Call& c) const {
  return UpdateOne<ManagedDeviceKind>(*this, c);
}
Result<http::Response> Api::Impl::DeleteManagedDevice(const Call& c) const {
  return DeleteOne<ManagedDeviceKind>(*this, c);
}

// --- 4. members -------------------------------------------------------------------------------

namespace {

const EntityDef& DirectoryObjectDef() {
  static const EntityDef e = [] {
    EntityDef d = MakeEntity("directoryObject", store::Table::kUsers, {Prop("id", EdmType::kString, std::nullopt)});
    d.properties[0].filterable = false;
    return d;
  }();
  return e;
}

// The id of an `@odata.id` reference: the last path segment of any URL whose path
// ends in directoryObjects/{id} (or users/, groups/, devices/), whatever its host, or
// a bare id. InvalidArgument otherwise.
Result<std::string> ReferencedId(const json::object& body) {
  auto bad = [](std::string why) {
    return Fail(Error::InvalidArgument("Invalid @odata.id: " + why +
                                           ". Send {\"@odata.id\": "
                                           "\"https://graph.microsoft.com/v1.0/directoryObjects/{id}\"}.",
                                       "@odata.id")
                    .WithGraphCode("Request_BadRequest"));
  };
  const json::value* ref = body.if_contains("@odata.id");
  if (ref == nullptr) return bad("the property is missing");
  if (!ref->is_string()) return bad("it must be a string");
  const std::string_view text = ref->get_string();
  if (text.size() > 2048) return bad("it is too long");
  boost::system::result<boost::urls::url_view> url = boost::urls::parse_uri_reference(text);
  if (!url) return bad("it is not a URL");
  std::vector<std::string> segments;
  for (auto s : url->segments()) segments.emplace_back(s);
  while (!segments.empty() && segments.back().empty()) segments.pop_back();
  if (segments.size() < 2) return bad("its path must end in directoryObjects/{id}");
  const std::string& collection = segments[segments.size() - 2];
  if (collection != "directoryObjects" && collection != "users" && collection != "groups" && collection != "devices") {
    return bad("its path must end in directoryObjects/{id}");
  }
  if (segments.back().empty()) return bad("the id is empty");
  return segments.back();
}

void WriteMember(const store::GroupMember& m, json::object& o) {
  switch (m.kind) {
    case store::MemberKind::kUser:
      o["@odata.type"] = "#microsoft.graph.user";
      if (m.user) UserKind::Write(*m.user, o);
      break;
    case store::MemberKind::kDevice:
      o["@odata.type"] = "#microsoft.graph.device";
      if (m.device) DeviceKind::Write(*m.device, o);
      break;
    case store::MemberKind::kGroup:
      o["@odata.type"] = "#microsoft.graph.group";
      if (m.group) GroupKind::Write(*m.group, o);
      break;
  }
  if (!o.contains("id")) o["id"] = m.member_id;
}

}  // namespace

Result<http::Response> Api::Impl::ListMembers(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  AllowedOptions allowed;
  allowed.filter = allowed.orderby = allowed.select = false;
  auto q = ParseQueryOptions(c.query, DirectoryObjectDef(), allowed, RequestLimits(c.req));
  if (!q) return Fail(q.error());
  auto page = Directory(deps.directory->ListMembers(c.who, c.id(), q->list.skip, q->list.limit));
  if (!page) return Fail(page.error());
  json::array values;
  for (const auto& m : page->items) {
    json::object o;
    WriteMember(m, o);
    values.push_back(std::move(o));
  }
  // The context Graph gives a group's members: the directoryObjects collection.
  QueryOptions shown = *q;
  return CollectionPage(c.req, c.version, "groups/" + c.id() + "/members", c.query, shown, json::serialize(values),
                        values.size(), page->has_more, [&] { return deps.directory->CountMembers(c.who, c.id()); });
}

Result<http::Response> Api::Impl::CountMembers(const Call& c) const {
  if (auto ok = RequireCountAccepted(c.req); !ok) return Fail(ok.error());
  AllowedOptions allowed;
  allowed.filter = allowed.orderby = allowed.top = allowed.skip = allowed.count = allowed.select = allowed.skiptoken =
      false;
  auto q = ParseQueryOptions(c.query, DirectoryObjectDef(), allowed, limits);
  if (!q) return Fail(q.error());
  auto n = Directory(deps.directory->CountMembers(c.who, c.id()));
  if (!n) return Fail(n.error());
  return CountResponse(*n);
}

Result<http::Response> Api::Impl::AddMember(const Call& c) const {
  auto body = ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  auto member_id = ReferencedId(*body);
  if (!member_id) return Fail(member_id.error());
  auto added = Directory(deps.directory->AddMember(c.who, c.id(), *member_id));
  if (!added) return Fail(added.error());
  return NoContent();
}

Result<http::Response> Api::Impl::RemoveMember(const Call& c) const {
  if (auto ok = Directory(deps.directory->RemoveMember(c.who, c.id(), c.ids[1])); !ok) return Fail(ok.error());
  return NoContent();
}

// --- 5. $batch -----------------------------------------------------------------------------------

namespace {

constexpr std::size_t kMaxBatchRequests = 20;  // as Graph

Error BatchError(std::string message) { return Error::InvalidArgument(std::move(message)).WithGraphCode("BadRequest"); }

}  // namespace

Result<http::Response> Api::Impl::Batch(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto body = ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  const json::value* requests = body->if_contains("requests");
  if (requests == nullptr || !requests->is_array()) {
    return Fail(BatchError("The batch body must have a 'requests' array."));
  }
  const json::array& list = requests->get_array();
  if (list.size() > kMaxBatchRequests) {
    return Fail(BatchError(fmt::format("Number of batch request steps exceeds the maximum of {}.", kMaxBatchRequests)));
  }
  // Checked whole before any runs: a malformed batch runs nothing.
  struct Step {
    std::string id, method, url;
    const json::object* headers = nullptr;
    const json::value* body = nullptr;
    std::vector<std::string> depends_on;
  };
  std::vector<Step> steps;
  std::set<std::string> ids;
  for (const json::value& item : list) {
    if (!item.is_object()) return Fail(BatchError("Each element of 'requests' must be an object."));
    const json::object& r = item.get_object();
    Step s;
    for (const char* required : {"id", "method", "url"}) {
      const json::value* v = r.if_contains(required);
      if (v == nullptr || !v->is_string() || v->get_string().empty()) {
        return Fail(BatchError(fmt::format("A batch request needs a non-empty string '{}'.", required)));
      }
    }
    s.id = r.at("id").get_string();
    s.method = r.at("method").get_string();
    for (char& ch : s.method) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    s.url = r.at("url").get_string();
    if (!ids.insert(s.id).second) return Fail(BatchError("The batch request id '" + s.id + "' is not unique."));
    if (s.url.find("://") != std::string::npos || s.url.starts_with("//")) {
      return Fail(BatchError("The url of batch request '" + s.id + "' must be relative, e.g. '/users'."));
    }
    if (s.url.starts_with("/")) s.url.erase(0, 1);
    if (s.url.starts_with("$batch")) return Fail(BatchError("A batch request may not contain another $batch."));
    if (const json::value* h = r.if_contains("headers")) {
      if (!h->is_object()) return Fail(BatchError("The headers of batch request '" + s.id + "' must be an object."));
      s.headers = &h->get_object();
    }
    s.body = r.if_contains("body");
    if (const json::value* d = r.if_contains("dependsOn")) {
      if (!d->is_array()) return Fail(BatchError("dependsOn of batch request '" + s.id + "' must be an array."));
      for (const json::value& dep : d->get_array()) {
        if (!dep.is_string()) return Fail(BatchError("dependsOn of batch request '" + s.id + "' must hold ids."));
        const std::string dep_id(dep.get_string());
        bool earlier = false;
        for (const Step& prior : steps) earlier = earlier || prior.id == dep_id;
        if (!earlier) {
          return Fail(BatchError("Batch request '" + s.id + "' depends on '" + dep_id +
                                 "', which is not a request before it in the batch."));
        }
        s.depends_on.push_back(dep_id);
      }
    }
    steps.push_back(std::move(s));
  }

  // Run in order, each through the whole request path with the outer caller's credentials.
  std::map<std::string, int> statuses;
  json::array responses;
  for (const Step& s : steps) {
    json::object out;
    out["id"] = s.id;
    bool failed_dependency = false;
    for (const std::string& dep : s.depends_on) failed_dependency = failed_dependency || statuses[dep] >= 400;
    if (failed_dependency) {
      statuses[s.id] = 424;
      out["status"] = 424;
      out["body"] = {{"error", {{"code", "FailedDependency"}, {"message", "A request this one depends on failed."}}}};
      responses.push_back(std::move(out));
      continue;
    }
    http::Request inner;
    inner.method = s.method;
    inner.target = "/" + std::string(VersionSegment(c.version)) + "/" + s.url;
    inner.remote = c.req.remote;
    inner.scheme = c.req.scheme;
    inner.host = c.req.host;
    inner.request_id = NewGuid();
    if (s.headers != nullptr) {
      for (const auto& [name, value] : *s.headers) {
        if (!value.is_string()) continue;
        if (boost::algorithm::iequals(std::string_view(name), "Authorization")) continue;
        inner.headers.emplace_back(std::string(name), std::string(value.get_string()));
      }
    }
    if (auto auth = c.req.Header("Authorization")) inner.headers.emplace_back("Authorization", std::string(*auth));
    if (s.body != nullptr) {
      inner.body = s.body->is_string() ? std::string(s.body->get_string()) : json::serialize(*s.body);
      if (!inner.Header("Content-Type")) inner.headers.emplace_back("Content-Type", "application/json");
    }
    http::Response r = Handle(inner);
    statuses[s.id] = r.status;
    out["status"] = r.status;
    json::object headers;
    for (const auto& [name, value] : r.headers) headers[name] = value;
    out["headers"] = std::move(headers);
    if (!r.body.empty()) {
      boost::system::error_code ec;
      json::value parsed = json::parse(r.body, ec);
      out["body"] = ec ? json::value(r.body) : std::move(parsed);
    }
    responses.push_back(std::move(out));
  }
  json::object answer;
  answer["responses"] = std::move(responses);
  return Json(200, answer);
}

// --- 6. $metadata types ---------------------------------------------------------------------------

const std::vector<SchemaType>& DirectorySchemaTypes() {
  static const std::vector<SchemaType> kTypes = [] {
    auto edm = [](const PropertyDef& p) -> std::string {
      std::string t;
      switch (p.type) {
        case EdmType::kBoolean:
          t = "Edm.Boolean";
          break;
        case EdmType::kDateTimeOffset:
          t = "Edm.DateTimeOffset";
          break;
        default:
          t = "Edm.String";
      }
      return p.collection ? "Collection(" + t + ")" : t;
    };
    auto type = [&](const EntityDef& def, std::string base) {
      SchemaType t;
      t.name = def.name;
      t.base_type = std::move(base);
      for (const PropertyDef& p : def.properties) {
        if (p.name == "id") continue;  // the base's key
        t.properties.push_back({p.name, edm(p), p.nullable});
      }
      return t;
    };
    std::vector<SchemaType> types;
    SchemaType object;
    object.name = "directoryObject";
    object.base_type = "microsoft.graph.entity";
    object.properties = {{"deletedDateTime", "Edm.DateTimeOffset", true}};
    types.push_back(object);
    SchemaType user = type(UserKind::Def(), "microsoft.graph.directoryObject");
    types.push_back(user);
    SchemaType group = type(GroupKind::Def(), "microsoft.graph.directoryObject");
    group.navigation = {{"members", "Collection(microsoft.graph.directoryObject)"}};
    types.push_back(group);
    types.push_back(type(DeviceKind::Def(), "microsoft.graph.directoryObject"));
    types.push_back(type(ManagedDeviceKind::Def(), "microsoft.graph.entity"));
    SchemaType management;
    management.name = "deviceManagement";
    management.base_type = "microsoft.graph.entity";
    management.navigation = {{"managedDevices", "Collection(microsoft.graph.managedDevice)"}};
    types.push_back(management);
    return types;
  }();
  return kTypes;
}

}  // namespace vppd::graph
