// Revoking VPP licences by app, person or device (beta, as Graph documents them):
// an iosVppApp's or macOsVppApp's revokeAllLicenses, revokeUserLicense and
// revokeDeviceLicense, a managedDevice's revokeAppleVppLicenses, and the apps'
// revokeLicenseActionResults that show how each ended. Each action answers 204
// once its revokes are recorded; service::LicenseRevokes says what is checked.
#include <optional>
#include <span>
#include <string>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "graph/api_impl.h"

namespace vppd::graph {
namespace json = boost::json;
namespace {

// The parameters one revoke action takes, as its body sends them.
struct RevokeBody {
  std::optional<bool> notify, untracked;
  std::optional<std::string> id;  // the action's id parameter (userId, managedDeviceId), when it has one
};

// Reads `body` for `action`, whose parameters are notifyManagedDevices (required, a boolean),
// revokeUntrackedLicenses when `takes_untracked` (a boolean or null), and `id_parameter` when
// not null (required, a non-empty string). Anything else but an annotation is a 400 naming it.
Result<RevokeBody> ParseRevokeBody(const json::object& body, std::string_view action, bool takes_untracked,
                                   const char* id_parameter) {
  RevokeBody out;
  const std::string names = std::string("notifyManagedDevices") + (takes_untracked ? ", revokeUntrackedLicenses" : "") +
                            (id_parameter ? ", " + std::string(id_parameter) : "");
  for (const auto& [key, value] : body) {
    if (key == "notifyManagedDevices") {
      if (!value.is_bool()) return Fail(Api::Impl::BadParameter("notifyManagedDevices", "must be true or false"));
      out.notify = value.get_bool();
    } else if (takes_untracked && key == "revokeUntrackedLicenses") {
      if (!value.is_bool() && !value.is_null()) {
        return Fail(Api::Impl::BadParameter("revokeUntrackedLicenses", "must be true, false or null"));
      }
      if (value.is_bool()) out.untracked = value.get_bool();
    } else if (id_parameter != nullptr && key == id_parameter) {
      if (!value.is_string() || value.get_string().empty()) {
        return Fail(Api::Impl::BadParameter(id_parameter, "must be a non-empty string"));
      }
      out.id = std::string(value.get_string());
    } else if (key.find('@') == std::string_view::npos) {  // annotations are not parameters
      return Fail(Api::Impl::BadParameter(std::string(key),
                                          "is not a parameter of " + std::string(action) + " (" + names + ")"));
    }
  }
  if (id_parameter != nullptr && !out.id) return Fail(Api::Impl::BadParameter(id_parameter, "is required"));
  if (!out.notify) return Fail(Api::Impl::BadParameter("notifyManagedDevices", "is required"));
  return out;
}

// The platform a cast segment names ("" for none: the action on either VPP app).
std::string PlatformOfCast(std::string_view cast) {
  if (cast == "microsoft.graph.iosVppApp") return "iOS";
  if (cast == "microsoft.graph.macOsVppApp") return "macOS";
  return "";
}

}  // namespace

Result<http::Response> Api::Impl::RevokeAllLicenses(const Call& c) const {
  auto body = ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  auto parsed = ParseRevokeBody(*body, "revokeAllLicenses", true, nullptr);
  if (!parsed) return Fail(parsed.error());
  if (auto ok = deps.revokes->RevokeAll(c.who, c.id(), PlatformOfCast(c.cast), *parsed->notify,
                                        parsed->untracked.value_or(false));
      !ok) {
    return Fail(ok.error());
  }
  return NoContent();
}

Result<http::Response> Api::Impl::RevokeUserLicense(const Call& c) const {
  auto body = ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  auto parsed = ParseRevokeBody(*body, "revokeUserLicense", false, "userId");
  if (!parsed) return Fail(parsed.error());
  if (auto ok = deps.revokes->RevokeUser(c.who, c.id(), PlatformOfCast(c.cast), *parsed->id, *parsed->notify); !ok) {
    return Fail(ok.error());
  }
  return NoContent();
}

Result<http::Response> Api::Impl::RevokeDeviceLicense(const Call& c) const {
  auto body = ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  auto parsed = ParseRevokeBody(*body, "revokeDeviceLicense", false, "managedDeviceId");
  if (!parsed) return Fail(parsed.error());
  if (auto ok = deps.revokes->RevokeDevice(c.who, c.id(), PlatformOfCast(c.cast), *parsed->id, *parsed->notify); !ok) {
    return Fail(ok.error());
  }
  return NoContent();
}

// Graph: "Do not supply a request body for this method"; one sent anyway is ignored.
Result<http::Response> Api::Impl::RevokeAppleVppLicenses(const Call& c) const {
  if (auto ok = deps.revokes->RevokeManagedDevice(c.who, c.id()); !ok) return Fail(ok.error());
  return NoContent();
}

void Api::Impl::WriteRevokeResults(const std::vector<store::AppRevoke>& revokes, json::object& app) {
  json::array list;
  for (const store::AppRevoke& r : revokes) {
    json::object o;
    o["actionName"] = r.action_name;
    o["actionState"] = r.action_state;
    o["startDateTime"] = FormatIso8601(r.start);
    o["lastUpdatedDateTime"] = FormatIso8601(r.last_updated);
    o["userId"] = r.user_id.empty() ? json::value(nullptr) : json::value(r.user_id);
    o["managedDeviceId"] = r.managed_device_id.empty() ? json::value(nullptr) : json::value(r.managed_device_id);
    o["totalLicensesCount"] = r.total_licenses;
    o["failedLicensesCount"] = r.failed_licenses;
    o["actionFailureReason"] = r.failure_reason;
    list.push_back(std::move(o));
  }
  app["revokeLicenseActionResults"] = std::move(list);
}

Status Api::Impl::AddRevokeResults(const Call& c, std::span<json::object* const> apps,
                                   const std::vector<std::string>& app_ids) const {
  if (c.version != ApiVersion::kBeta || deps.revokes == nullptr) return {};  // beta declares the property
  std::vector<std::string> wanted;
  for (std::size_t i = 0; i < apps.size(); ++i) {
    if (apps[i]->contains("revokeLicenseActionResults")) wanted.push_back(app_ids[i]);
  }
  if (wanted.empty()) return {};
  auto revokes = deps.revokes->ResultsOf(c.who, wanted);
  if (!revokes) return Fail(revokes.error());
  for (std::size_t i = 0; i < apps.size(); ++i) {
    if (!apps[i]->contains("revokeLicenseActionResults")) continue;
    std::vector<store::AppRevoke> mine;
    for (const auto& r : *revokes) {
      if (r.app_id == app_ids[i]) mine.push_back(r);
    }
    WriteRevokeResults(mine, *apps[i]);
  }
  return {};
}

void Api::Impl::AddDeviceActionResults(const Call& c, json::object& device, const std::string& id) const {
  json::array list;
  auto results = deps.revokes != nullptr ? deps.revokes->DeviceResults(c.who, id)
                                         : Result<std::vector<service::LicenseRevokes::DeviceRevokeResult>>();
  if (!results) {
    spdlog::warn("managed device {}: its deviceActionResults could not be read: {}", id, results.error().message);
  } else {
    for (const auto& r : *results) {
      json::object o;
      o["@odata.type"] = "#microsoft.graph.revokeAppleVppLicensesActionResult";
      o["actionName"] = "revokeAppleVppLicenses";
      o["actionState"] = r.action_state;
      o["startDateTime"] = FormatIso8601(r.start);
      o["lastUpdatedDateTime"] = FormatIso8601(r.last_updated);
      o["totalLicensesCount"] = r.total_licenses;
      o["failedLicensesCount"] = r.failed_licenses;
      list.push_back(std::move(o));
    }
  }
  device["deviceActionResults"] = std::move(list);
}

}  // namespace vppd::graph
