// The mobileAppAssignment surface: an app's assignments (list, get, create, PATCH,
// delete), its assign action, and the JSON of an assignment (its target and
// settings), read strictly and written as Graph does.
//
// Layout: 1. reading a body  2. writing a device status  3. handlers.
#include <algorithm>
#include <string>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "graph/api_impl.h"
#include "graph/model.h"
#include "graph/odata.h"
#include "service/service.h"

namespace vppd::graph {
namespace json = boost::json;
namespace {

// --- 1. reading a body ---------------------------------------------------------------

Error BadProperty(const std::string& path, const std::string& why) {
  return Error::InvalidArgument(fmt::format("The property '{}' {}.", path, why), path);
}

// The text of a string-or-null property: nullopt for null. InvalidArgument for
// another JSON type.
Result<std::optional<std::string>> OptionalString(const json::value& v, const std::string& path) {
  if (v.is_null()) return std::optional<std::string>();
  if (!v.is_string()) return Fail(BadProperty(path, "must be a string or null"));
  return std::optional<std::string>(std::string(v.get_string()));
}

Result<std::optional<bool>> OptionalBool(const json::value& v, const std::string& path) {
  if (v.is_null()) return std::optional<bool>();
  if (!v.is_bool()) return Fail(BadProperty(path, "must be true, false or null"));
  return std::optional<bool>(v.get_bool());
}

// An @odata.type: the text, for the service to check (it knows which types fit).
Result<std::string> TypeOf(const json::value& v, const std::string& path) {
  if (!v.is_string()) return Fail(BadProperty(path + "@odata.type", "must be a string"));
  return std::string(v.get_string());
}

}  // namespace

Result<service::AssignmentTarget> ReadAssignmentTarget(const json::object& o, const std::string& path) {
  service::AssignmentTarget t;
  for (const auto& [key_sv, value] : o) {
    const std::string key(key_sv);
    const std::string at = path + "." + key;
    if (key == "@odata.type") {
      auto type = TypeOf(value, path + ".");
      if (!type) return Fail(type.error());
      t.type = *type;
    } else if (key.find('@') != std::string::npos) {
      continue;  // annotations carry no data here
    } else if (key == "groupId" || key == "deviceAndAppManagementAssignmentFilterId" ||
               key == "deviceAndAppManagementAssignmentFilterType") {
      auto text = OptionalString(value, at);
      if (!text) return Fail(text.error());
      if (key == "groupId") t.group_id = *text;
      if (key == "deviceAndAppManagementAssignmentFilterId") t.filter_id = *text;
      if (key == "deviceAndAppManagementAssignmentFilterType") t.filter_type = *text;
    } else if (key == "collectionId" || key == "groupDisplayName") {
      // Read-only or legacy properties some clients echo back; checked, then ignored.
      auto text = OptionalString(value, at);
      if (!text) return Fail(text.error());
    } else {
      return Fail(BadProperty(at, "does not exist on a deviceAndAppManagementAssignmentTarget"));
    }
  }
  return t;
}

namespace {

Result<service::AssignmentSettings> ReadSettings(const json::object& o, const std::string& path) {
  service::AssignmentSettings s;
  for (const auto& [key_sv, value] : o) {
    const std::string key(key_sv);
    const std::string at = path + "." + key;
    if (key == "@odata.type") {
      auto type = TypeOf(value, path + ".");
      if (!type) return Fail(type.error());
      s.type = *type;
    } else if (key.find('@') != std::string::npos) {
      continue;
    } else if (key == "useDeviceLicensing") {
      if (!value.is_bool()) return Fail(BadProperty(at, "must be true or false"));
      s.use_device_licensing = value.get_bool();
    } else if (key == "vpnConfigurationId") {
      auto text = OptionalString(value, at);
      if (!text) return Fail(text.error());
      s.vpn_configuration_id = *text;
    } else if (key == "uninstallOnDeviceRemoval" || key == "isRemovable" || key == "preventManagedAppBackup" ||
               key == "preventAutoAppUpdate") {
      auto flag = OptionalBool(value, at);
      if (!flag) return Fail(flag.error());
      if (key == "uninstallOnDeviceRemoval") s.uninstall_on_device_removal = *flag;
      if (key == "isRemovable") s.is_removable = *flag;
      if (key == "preventManagedAppBackup") s.prevent_managed_app_backup = *flag;
      if (key == "preventAutoAppUpdate") s.prevent_auto_app_update = *flag;
    } else {
      return Fail(BadProperty(at,
                              "does not exist on the VPP app assignment settings (useDeviceLicensing, "
                              "vpnConfigurationId, uninstallOnDeviceRemoval, isRemovable, "
                              "preventManagedAppBackup, preventAutoAppUpdate)"));
    }
  }
  return s;
}

// A mobileAppAssignment body (create, PATCH, an element of assign's list). `path`
// prefixes property names in errors ("" or "mobileAppAssignments[1].").
Result<service::AssignmentChanges> ReadAssignment(const json::object& body, const std::string& path) {
  service::AssignmentChanges c;
  for (const auto& [key_sv, value] : body) {
    const std::string key(key_sv);
    const std::string at = path + key;
    if (key == "@odata.type") {
      if (!value.is_string() || (value.get_string() != "#microsoft.graph.mobileAppAssignment" &&
                                 value.get_string() != "microsoft.graph.mobileAppAssignment")) {
        return Fail(BadProperty(at, "must be '#microsoft.graph.mobileAppAssignment'"));
      }
    } else if (key.find('@') != std::string::npos) {
      continue;
    } else if (key == "id" || key == "sourceId") {
      // Server-managed (the create page calls them required): checked, then ignored.
      auto text = OptionalString(value, at);
      if (!text) return Fail(text.error());
    } else if (key == "source") {
      if (!value.is_null() &&
          !(value.is_string() && (value.get_string() == "direct" || value.get_string() == "policySets"))) {
        return Fail(BadProperty(at, "must be one of direct, policySets"));
      }
    } else if (key == "intent") {
      if (!value.is_string()) return Fail(BadProperty(at, "must be a string (an installIntent member)"));
      c.intent = std::string(value.get_string());
    } else if (key == "target") {
      if (!value.is_object()) return Fail(BadProperty(at, "must be an object with an '@odata.type'"));
      auto target = ReadAssignmentTarget(value.get_object(), at);
      if (!target) return Fail(target.error());
      c.target = std::move(*target);
    } else if (key == "settings") {
      if (value.is_null()) {
        c.settings.emplace(std::nullopt);
        continue;
      }
      if (!value.is_object()) return Fail(BadProperty(at, "must be an object with an '@odata.type', or null"));
      auto settings = ReadSettings(value.get_object(), at);
      if (!settings) return Fail(settings.error());
      c.settings.emplace(std::move(*settings));
    } else {
      return Fail(BadProperty(at, "does not exist on type 'microsoft.graph.mobileAppAssignment'"));
    }
  }
  return c;
}

}  // namespace

// --- 2. writing a device's status (an assignment: model.cc) --------------------------

namespace {

void WriteInstallStatus(const service::DeviceInstallStatus& s, json::object& out) {
  out["@odata.type"] = "#microsoft.graph.mobileAppInstallStatus";
  out["id"] = s.managed_device_id;
  out["deviceName"] = s.device_name.empty() ? json::value(nullptr) : json::value(s.device_name);
  out["deviceId"] = s.managed_device_id;
  out["lastSyncDateTime"] = s.updated == 0 ? "0001-01-01T00:00:00Z" : FormatIso8601(s.updated);
  out["mobileAppInstallStatusValue"] = s.install_state;
  out["installState"] = s.install_state;
  out["installStateDetail"] =
      s.install_state == "failed" && s.error_code != 0 ? "seeInstallErrorCode" : "noAdditionalDetails";
  out["errorCode"] = s.error_code;
  out["osVersion"] = nullptr;
  out["osDescription"] = nullptr;
  out["userName"] = nullptr;
  out["userPrincipalName"] = s.user_principal_name.empty() ? json::value(nullptr) : json::value(s.user_principal_name);
  out["displayVersion"] = nullptr;
}

}  // namespace

// --- 3. handlers ------------------------------------------------------------------------

namespace {

std::string AssignmentsPath(const std::string& app_id) {
  return "deviceAppManagement/mobileApps('" + app_id + "')/assignments";
}

}  // namespace

Result<http::Response> Api::Impl::ListAssignments(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  AllowedOptions allowed;
  allowed.filter = allowed.orderby = allowed.top = allowed.skip = allowed.count = allowed.select = false;
  allowed.skiptoken = false;
  static const EntityDef kAssignment = [] {
    EntityDef e;
    e.name = "mobileAppAssignment";
    return e;
  }();
  auto q = ParseQueryOptions(c.query, kAssignment, allowed, RequestLimits(c.req));
  if (!q) return Fail(q.error());
  auto list = deps.assignments->List(c.who, c.id());
  if (!list) return Fail(list.error());
  json::array values;
  for (const auto& a : *list) {
    json::object o;
    WriteAppAssignment(a, c.version, o);
    values.push_back(std::move(o));
  }
  json::object body;
  body["@odata.context"] = ContextUrl(c.req, c.version, {AssignmentsPath(c.id())});
  body["value"] = std::move(values);
  return Json(200, body);
}

Result<http::Response> Api::Impl::GetAssignment(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto got = deps.assignments->Get(c.who, c.ids[0], c.ids[1]);
  if (!got) return Fail(got.error());
  json::object body;
  body["@odata.context"] = ContextUrl(c.req, c.version, {AssignmentsPath(c.ids[0]), "/$entity"});
  WriteAppAssignment(*got, c.version, body);
  return Json(200, body);
}

Result<http::Response> Api::Impl::CreateAssignment(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto body = ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  auto changes = ReadAssignment(*body, "");
  if (!changes) return Fail(changes.error());
  auto created = deps.assignments->Create(c.who, c.id(), std::move(*changes));
  if (!created) return Fail(created.error());
  json::object out;
  out["@odata.context"] = ContextUrl(c.req, c.version, {AssignmentsPath(c.id()), "/$entity"});
  WriteAppAssignment(*created, c.version, out);
  http::Response r = Json(201, out);
  r.headers.emplace_back("Location", BaseUrl(c.req) + "/" + VersionSegment(c.version) +
                                         "/deviceAppManagement/mobileApps/" + c.id() + "/assignments/" + created->id);
  return r;
}

Result<http::Response> Api::Impl::UpdateAssignment(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto body = ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  auto changes = ReadAssignment(*body, "");
  if (!changes) return Fail(changes.error());
  auto updated = deps.assignments->Update(c.who, c.ids[0], c.ids[1], std::move(*changes));
  if (!updated) return Fail(updated.error());
  json::object out;
  out["@odata.context"] = ContextUrl(c.req, c.version, {AssignmentsPath(c.ids[0]), "/$entity"});
  WriteAppAssignment(*updated, c.version, out);
  return Json(200, out);
}

Result<http::Response> Api::Impl::DeleteAssignment(const Call& c) const {
  if (auto ok = deps.assignments->Delete(c.who, c.ids[0], c.ids[1]); !ok) return Fail(ok.error());
  return NoContent();
}

// GET mobileApps/{id}/deviceStatuses: where the licence of each targeted device stands.
Result<http::Response> Api::Impl::DeviceStatuses(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  static const EntityDef kStatus = [] {
    EntityDef e;
    e.name = "mobileAppInstallStatus";
    return e;
  }();
  AllowedOptions allowed;  // $top/$skip and server-driven paging over the list
  allowed.filter = allowed.orderby = allowed.select = allowed.count = false;
  auto q = ParseQueryOptions(c.query, kStatus, allowed, RequestLimits(c.req));
  if (!q) return Fail(q.error());
  auto statuses = deps.assignments->DeviceStatuses(c.who, c.id());
  if (!statuses) return Fail(statuses.error());
  const std::size_t from = std::min<std::size_t>(statuses->size(), static_cast<std::size_t>(q->list.skip));
  const std::size_t to = std::min<std::size_t>(statuses->size(), from + static_cast<std::size_t>(q->list.limit));
  json::array values;
  for (std::size_t i = from; i < to; ++i) {
    json::object o;
    WriteInstallStatus((*statuses)[i], o);
    values.push_back(std::move(o));
  }
  const std::string path = "deviceAppManagement/mobileApps/" + c.id() + "/deviceStatuses";
  return CollectionPage(c.req, ApiVersion::kBeta, path, c.query, *q, json::serialize(values), values.size(),
                        to < statuses->size(), [] { return Result<std::int64_t>(0); });  // $count is not allowed
}

// POST mobileApps/{id}/assign (or .../{cast}/assign): {"mobileAppAssignments": [...]}.
Result<http::Response> Api::Impl::AssignApp(const Call& c) const {
  auto body = ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  std::optional<std::vector<service::AssignmentChanges>> list;
  for (const auto& [key_sv, value] : *body) {
    const std::string key(key_sv);
    if (key == "mobileAppAssignments") {
      if (!value.is_array()) return Fail(BadParameter(key, "must be an array of mobileAppAssignment objects"));
      std::vector<service::AssignmentChanges> items;
      const json::array& array = value.get_array();
      for (std::size_t i = 0; i < array.size(); ++i) {
        const std::string path = fmt::format("mobileAppAssignments[{}].", i);
        if (!array[i].is_object()) {
          return Fail(Error::InvalidArgument(
              fmt::format("The element mobileAppAssignments[{}] must be a mobileAppAssignment object.", i),
              fmt::format("mobileAppAssignments[{}]", i)));
        }
        auto item = ReadAssignment(array[i].get_object(), path);
        if (!item) return Fail(item.error());
        items.push_back(std::move(*item));
      }
      list = std::move(items);
    } else if (key.find('@') == std::string::npos) {
      return Fail(BadParameter(key, "is not a parameter of assign (mobileAppAssignments)"));
    }
  }
  if (!list) return Fail(BadParameter("mobileAppAssignments", "is required"));
  if (!c.cast.empty()) {
    // The cast names the app's type: an app of another type is not found under it.
    auto app = FindApp(c);
    if (!app) return Fail(app.error());
  }
  if (auto ok = deps.assignments->Assign(c.who, c.id(), std::move(*list)); !ok) return Fail(ok.error());
  return NoContent();
}

}  // namespace vppd::graph
