// The assignments of VPP apps (service::AppAssignments, see service.h): validation
// of what a request sends, the store's writes, and the reconcile trigger after each
// committed change.
//
// Layout: 1. names and messages  2. validation  3. the resource.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <string_view>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "service/assignment_targets.h"
#include "service/service.h"
#include "sync/sync.h"

namespace vppd::service {

// --- 0. what app and book assignments share (assignment_targets.h) ------------------------

namespace assignment_targets {

std::string Qualified(const std::string& type) {
  if (type.starts_with("microsoft.graph.")) return "#" + type;
  return type;
}

std::string_view Short(std::string_view type) {
  const auto dot = type.rfind('.');
  return dot == std::string_view::npos ? type : type.substr(dot + 1);
}

std::string Join(std::span<const std::string_view> names, bool short_names) {
  std::string out;
  for (std::string_view n : names) out += fmt::format("{}{}", out.empty() ? "" : ", ", short_names ? Short(n) : n);
  return out;
}

bool IsGroupTarget(std::string_view type) { return type == kGroupTarget || type == kExclusionTarget; }

Error Invalid(const std::string& where, std::string_view property, std::string message) {
  return Error::InvalidArgument(std::move(message), where + std::string(property));
}

Status ApplyTarget(store::Store& store, const std::string& tenant_id, const AssignmentTarget& t,
                   std::span<const std::string_view> allowed, const std::string& where, store::AppAssignment& out) {
  const std::string type = Qualified(t.type);
  if (t.type.empty()) {
    return Fail(
        Invalid(where, "target", fmt::format("The target needs an '@odata.type': one of {}.", Join(allowed, true))));
  }
  if (std::find(allowed.begin(), allowed.end(), type) == allowed.end()) {
    return Fail(Invalid(
        where, "target",
        fmt::format("The target type '{}' is not supported; it must be one of: {}.", t.type, Join(allowed, true))));
  }
  if (t.filter_id) {
    return Fail(Invalid(where, "target.deviceAndAppManagementAssignmentFilterId",
                        "Assignment filters are not supported by vppd: "
                        "deviceAndAppManagementAssignmentFilterId must be null."));
  }
  if (t.filter_type && *t.filter_type != "none") {
    return Fail(Invalid(where, "target.deviceAndAppManagementAssignmentFilterType",
                        fmt::format("Assignment filters are not supported by vppd: "
                                    "deviceAndAppManagementAssignmentFilterType must be none, not '{}'.",
                                    *t.filter_type)));
  }
  if (IsGroupTarget(type)) {
    if (!t.group_id || t.group_id->empty()) {
      return Fail(Invalid(where, "target.groupId", fmt::format("A {} needs a groupId.", Short(type))));
    }
    auto exists = store.GroupExists(tenant_id, *t.group_id);
    if (!exists) return Fail(exists.error());
    if (!*exists) {
      return Fail(Error::NotFound(fmt::format("The group '{}' was not found.", *t.group_id), *t.group_id));
    }
    out.group_id = t.group_id;
  } else {
    if (t.group_id) return Fail(Invalid(where, "target.groupId", fmt::format("A {} has no groupId.", Short(type))));
    out.group_id.reset();
  }
  out.target_type = type;
  return {};
}

}  // namespace assignment_targets

namespace {
namespace json = boost::json;
using namespace assignment_targets;

// --- 1. names and messages ------------------------------------------------------------

constexpr std::string_view kTargets[] = {kGroupTarget, kExclusionTarget, kAllDevicesTarget, kAllUsersTarget};

constexpr std::string_view kIosSettings = "#microsoft.graph.iosVppAppAssignmentSettings";
constexpr std::string_view kMacSettings = "#microsoft.graph.macOsVppAppAssignmentSettings";

// The settings type an app of this platform takes.
std::string_view SettingsTypeFor(const store::MobileApp& app) {
  return app.platform == "macOS" ? kMacSettings : kIosSettings;
}
std::string_view AppTypeName(const store::MobileApp& app) {
  return app.platform == "macOS" ? "macOsVppApp" : "iosVppApp";
}

Error AppNotFound(const std::string& id) { return Error::NotFound("The mobileApp '" + id + "' was not found.", id); }

// Which target an assignment is for, to find two of one app for the same one.
std::string TargetKey(const store::AppAssignment& a) {
  if (IsGroupTarget(a.target_type)) return "group " + a.group_id.value_or("");
  return std::string(Short(a.target_type));
}
std::string DescribeTarget(const store::AppAssignment& a) {
  if (IsGroupTarget(a.target_type)) return fmt::format("the group '{}'", a.group_id.value_or(""));
  return a.target_type == kAllDevicesTarget ? "all devices" : "all licensed users";
}

// The settings object as Graph shows it: its type and every property it has,
// null where not set.
std::string SettingsJson(const AssignmentSettings& s, std::string_view type) {
  json::object o;
  o["@odata.type"] = type;
  auto opt_bool = [](const std::optional<bool>& b) { return b ? json::value(*b) : json::value(nullptr); };
  o["useDeviceLicensing"] = s.use_device_licensing.value_or(false);
  if (type == kIosSettings) {
    o["vpnConfigurationId"] = s.vpn_configuration_id ? json::value(*s.vpn_configuration_id) : json::value(nullptr);
  }
  o["uninstallOnDeviceRemoval"] = opt_bool(s.uninstall_on_device_removal);
  if (type == kIosSettings) o["isRemovable"] = opt_bool(s.is_removable);
  o["preventManagedAppBackup"] = opt_bool(s.prevent_managed_app_backup);
  o["preventAutoAppUpdate"] = opt_bool(s.prevent_auto_app_update);
  return json::serialize(o);
}

// --- 2. validation ----------------------------------------------------------------------

Status CheckIntent(const std::string& intent, const std::string& where) {
  if (std::find(std::begin(kIntents), std::end(kIntents), intent) != std::end(kIntents)) return {};
  return Fail(Invalid(
      where, "intent",
      fmt::format("The intent '{}' is not an installIntent; it must be one of: {}.", intent, Join(kIntents, false))));
}

Status CheckSettings(const AssignmentSettings& s, const std::string& type, const store::MobileApp& app,
                     const std::string& where) {
  if (type != kIosSettings && type != kMacSettings) {
    return Fail(Invalid(where, "settings",
                        fmt::format("The settings type '{}' is not one vppd knows; a VPP app takes {} or {}.", s.type,
                                    Short(kIosSettings), Short(kMacSettings))));
  }
  if (type != SettingsTypeFor(app)) {
    return Fail(Invalid(where, "settings",
                        fmt::format("The mobileApp '{}' is an {}: its assignments take settings of type {}, not {}.",
                                    app.id, AppTypeName(app), Short(SettingsTypeFor(app)), Short(type))));
  }
  if (type == kMacSettings) {
    if (s.vpn_configuration_id) {
      return Fail(Invalid(where, "settings.vpnConfigurationId",
                          "macOsVppAppAssignmentSettings has no property 'vpnConfigurationId'."));
    }
    if (s.is_removable) {
      return Fail(
          Invalid(where, "settings.isRemovable", "macOsVppAppAssignmentSettings has no property 'isRemovable'."));
    }
  }
  if (s.use_device_licensing.value_or(false) && !app.device_assignable) {
    return Fail(Invalid(where, "settings.useDeviceLicensing",
                        fmt::format("The mobileApp '{}' cannot be licensed to devices: Apple does not let this asset "
                                    "be assigned to a device (deviceAssignable is false).",
                                    app.id)));
  }
  return {};
}

}  // namespace

// --- 3. the resource ----------------------------------------------------------------------

AppAssignments::AppAssignments(store::Store& store, Options options, ReconcileTrigger* trigger)
    : store_(store), options_(std::move(options)), gate_(store, options_), trigger_(trigger) {}

Result<store::MobileApp> AppAssignments::FindApp(const std::string& tenant_id, const std::string& app_id) {
  auto app = store_.GetApp(tenant_id, app_id);
  // A book is a managedEBook: its assignments are ManagedEBooks' (managed_ebooks.cc).
  if ((!app && app.error().code == Code::kNotFound) || (app && app->product_type != kProductApp)) {
    return Fail(AppNotFound(app_id));
  }
  return app;
}

void AppAssignments::Changed(const std::string& tenant_id, const store::MobileApp& app) {
  if (trigger_ != nullptr) trigger_->TokenNeedsReconcile(tenant_id, app.token_id);
}

// `base` with `changes` applied and validated against `app` (where: the
// property path's prefix in errors, "" or "mobileAppAssignments[2].").
Result<store::AppAssignment> AppAssignments::Build(const std::string& tenant_id, const store::MobileApp& app,
                                                   const store::AppAssignment& base, const AssignmentChanges& changes,
                                                   const std::string& where) {
  store::AppAssignment out = base;
  out.app_id = app.id;
  if (changes.intent) out.intent = *changes.intent;
  if (out.intent.empty()) return Fail(Invalid(where, "intent", "The property 'intent' is required."));
  if (Status s = CheckIntent(out.intent, where); !s) return Fail(s.error());

  if (changes.target) {
    if (Status s = ApplyTarget(store_, tenant_id, *changes.target, kTargets, where, out); !s) return Fail(s.error());
  }
  if (out.target_type.empty()) return Fail(Invalid(where, "target", "The property 'target' is required."));

  if (changes.settings) {
    if (!*changes.settings) {
      out.settings_json = "{}";
      out.use_device_licensing = false;
    } else {
      const AssignmentSettings& s = **changes.settings;
      const std::string type = Qualified(s.type);
      if (s.type.empty()) {
        return Fail(Invalid(where, "settings",
                            fmt::format("The settings need an '@odata.type': {} for an {}.",
                                        Short(SettingsTypeFor(app)), AppTypeName(app))));
      }
      if (Status ok = CheckSettings(s, type, app, where); !ok) return Fail(ok.error());
      out.settings_json = SettingsJson(s, type);
      out.use_device_licensing = s.use_device_licensing.value_or(false);
    }
  }
  return out;
}

Result<std::vector<store::AppAssignment>> AppAssignments::List(const Principal& caller, const std::string& app_id) {
  if (auto ok = gate_.Admit(caller, Operation::kReadAppAssignments); !ok) return Fail(ok.error());
  if (auto app = FindApp(caller.tenant_id, app_id); !app) return Fail(app.error());
  auto list = store_.ListAssignmentsOfApp(caller.tenant_id, app_id);
  if (!list && list.error().code == Code::kNotFound) return Fail(AppNotFound(app_id));
  return list;
}

Result<store::AppAssignment> AppAssignments::Get(const Principal& caller, const std::string& app_id,
                                                 const std::string& id) {
  if (auto ok = gate_.Admit(caller, Operation::kReadAppAssignments); !ok) return Fail(ok.error());
  auto app = FindApp(caller.tenant_id, app_id);
  if (!app) return Fail(app.error());
  auto got = store_.GetAppAssignment(caller.tenant_id, app_id, id);
  if (!got && got.error().code == Code::kNotFound) {
    return Fail(
        Error::NotFound(fmt::format("The mobileAppAssignment '{}' of mobileApp '{}' was not found.", id, app_id), id));
  }
  return got;
}

Result<std::vector<store::AppAssignment>> AppAssignments::OfApps(const Principal& caller,
                                                                 const std::vector<std::string>& app_ids) {
  if (auto ok = gate_.Admit(caller, Operation::kReadAppAssignments); !ok) return Fail(ok.error());
  return store_.ListAssignmentsOfApps(caller.tenant_id, app_ids);
}

Result<store::AppAssignment> AppAssignments::Create(const Principal& caller, const std::string& app_id,
                                                    AssignmentChanges changes) {
  if (auto ok = gate_.Admit(caller, Operation::kWriteAppAssignments); !ok) return Fail(ok.error());
  auto app = FindApp(caller.tenant_id, app_id);
  if (!app) return Fail(app.error());
  auto built = Build(caller.tenant_id, *app, store::AppAssignment{}, changes, "");
  if (!built) return Fail(built.error());
  auto existing = store_.ListAssignmentsOfApp(caller.tenant_id, app_id);
  if (!existing) return Fail(existing.error());
  for (const store::AppAssignment& other : *existing) {
    if (TargetKey(other) == TargetKey(*built)) {
      return Fail(Invalid("", "target",
                          fmt::format("The mobileApp '{}' is already assigned to {} (mobileAppAssignment '{}').",
                                      app_id, DescribeTarget(other), other.id)));
    }
  }
  auto created = store_.CreateAppAssignment(caller.tenant_id, *built);
  if (!created && created.error().code == Code::kNotFound) return Fail(AppNotFound(app_id));
  if (created) Changed(caller.tenant_id, *app);
  return created;
}

Result<store::AppAssignment> AppAssignments::Update(const Principal& caller, const std::string& app_id,
                                                    const std::string& id, AssignmentChanges changes) {
  if (auto ok = gate_.Admit(caller, Operation::kWriteAppAssignments); !ok) return Fail(ok.error());
  auto app = FindApp(caller.tenant_id, app_id);
  if (!app) return Fail(app.error());
  auto existing = store_.ListAssignmentsOfApp(caller.tenant_id, app_id);
  if (!existing) return Fail(existing.error());
  auto stored = std::find_if(existing->begin(), existing->end(), [&](const auto& a) { return a.id == id; });
  if (stored == existing->end()) {
    return Fail(
        Error::NotFound(fmt::format("The mobileAppAssignment '{}' of mobileApp '{}' was not found.", id, app_id), id));
  }
  // Validated (the group looked up) before the write transaction.
  auto built = Build(caller.tenant_id, *app, *stored, changes, "");
  if (!built) return Fail(built.error());
  for (const store::AppAssignment& other : *existing) {
    if (other.id != id && TargetKey(other) == TargetKey(*built)) {
      return Fail(Invalid("", "target",
                          fmt::format("The mobileApp '{}' is already assigned to {} (mobileAppAssignment '{}').",
                                      app_id, DescribeTarget(other), other.id)));
    }
  }
  auto updated = store_.UpdateAppAssignment(caller.tenant_id, app_id, id, [&](store::AppAssignment& a) -> Status {
    a.intent = built->intent;
    a.target_type = built->target_type;
    a.group_id = built->group_id;
    a.settings_json = built->settings_json;
    a.use_device_licensing = built->use_device_licensing;
    return {};
  });
  if (updated) Changed(caller.tenant_id, *app);
  return updated;
}

Status AppAssignments::Delete(const Principal& caller, const std::string& app_id, const std::string& id) {
  if (auto ok = gate_.Admit(caller, Operation::kWriteAppAssignments); !ok) return ok;
  auto app = FindApp(caller.tenant_id, app_id);
  if (!app) return Fail(app.error());
  Status deleted = store_.DeleteAppAssignment(caller.tenant_id, app_id, id);
  if (!deleted && deleted.error().code == Code::kNotFound) {
    return Fail(
        Error::NotFound(fmt::format("The mobileAppAssignment '{}' of mobileApp '{}' was not found.", id, app_id), id));
  }
  if (deleted) Changed(caller.tenant_id, *app);
  return deleted;
}

Status AppAssignments::Assign(const Principal& caller, const std::string& app_id,
                              std::vector<AssignmentChanges> assignments) {
  if (auto ok = gate_.Admit(caller, Operation::kAssignApp); !ok) return ok;
  auto app = FindApp(caller.tenant_id, app_id);
  if (!app) return Fail(app.error());
  std::vector<store::AppAssignment> rows;
  std::set<std::string> targets;
  for (std::size_t i = 0; i < assignments.size(); ++i) {
    const std::string where = fmt::format("mobileAppAssignments[{}].", i);
    auto built = Build(caller.tenant_id, *app, store::AppAssignment{}, assignments[i], where);
    if (!built) return Fail(built.error());
    if (!targets.insert(TargetKey(*built)).second) {
      return Fail(Invalid(where, "target",
                          fmt::format("The mobileAppAssignments list {} twice; an app has one assignment per target.",
                                      "names " + DescribeTarget(*built))));
    }
    rows.push_back(std::move(*built));
  }
  auto replaced = store_.ReplaceAppAssignments(caller.tenant_id, app_id, std::move(rows));
  if (!replaced) {
    if (replaced.error().code == Code::kNotFound) return Fail(AppNotFound(app_id));
    return Fail(replaced.error());
  }
  Changed(caller.tenant_id, *app);
  return {};
}

Result<std::vector<DeviceInstallStatus>> AppAssignments::DeviceStatuses(const Principal& caller,
                                                                        const std::string& app_id) {
  if (auto ok = gate_.Admit(caller, Operation::kReadAppInstallStatuses); !ok) return Fail(ok.error());
  auto app = FindApp(caller.tenant_id, app_id);
  if (!app) return Fail(app.error());
  auto assignments = store_.ListAssignmentsOfApp(caller.tenant_id, app_id);
  if (!assignments) return Fail(assignments.error());
  // The devices the reconcile job serves, in its order.
  sync::DeviceTargets targets;
  for (const store::AppAssignment& a : *assignments) {
    if (a.target_type == kExclusionTarget) {
      if (a.group_id) targets.exclude_groups.push_back(*a.group_id);
      continue;
    }
    if (!a.use_device_licensing || (a.intent != "required" && a.intent != "available")) continue;
    if (a.target_type == kAllDevicesTarget) targets.all_devices = true;
    if (a.target_type == kAllUsersTarget) targets.all_users = true;
    if (a.target_type == kGroupTarget && a.group_id) targets.include_groups.push_back(*a.group_id);
  }
  auto targeted = sync::DevicesReached(store_, caller.tenant_id, targets);
  if (!targeted) return Fail(targeted.error());

  // Where each licence stands: the reconcile job's record, else Apple's at the last sync.
  auto states = store_.DeviceLicenseStates(caller.tenant_id, app_id);
  if (!states) return Fail(states.error());
  std::map<std::string, const store::DeviceLicenseState*> by_serial;
  for (const store::DeviceLicenseState& s : *states) by_serial[s.serial_number] = &s;
  std::set<std::string> held;
  constexpr std::int64_t kBatch = 100000;
  for (std::int64_t skip = 0;; skip += kBatch) {
    auto page = store_.ListAppAssignments(caller.tenant_id, app_id, skip, kBatch);
    if (!page) return Fail(page.error());
    for (const store::LicenseAssignment& l : page->items) {
      if (!l.serial_number.empty()) held.insert(l.serial_number);
    }
    if (!page->has_more) break;
  }

  std::vector<DeviceInstallStatus> out;
  for (const store::GroupDevice& d : *targeted) {
    DeviceInstallStatus s;
    s.managed_device_id = d.managed_device_id;
    s.device_name = d.device_name;
    s.serial_number = d.serial_number;
    s.user_id = d.user_id;
    if (auto it = by_serial.find(d.serial_number); it != by_serial.end()) {
      const store::DeviceLicenseState& r = *it->second;
      s.updated = r.updated;
      if (r.state == "pending") {
        s.install_state = "pendingInstall";
      } else if (r.state == "granted") {
        s.install_state = "installed";
      } else if (r.state == "failed") {
        s.install_state = "failed";
        s.error_code = static_cast<std::int32_t>(std::strtol(r.error_code.c_str(), nullptr, 10));
        s.error_message = r.error_message;
      }
    } else if (held.count(d.serial_number) != 0) {
      s.install_state = "installed";
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::vector<DeviceLicenseHolder>> AppAssignments::LicenseHolders(const Principal& caller,
                                                                        const std::vector<std::string>& serials) {
  if (auto ok = gate_.Admit(caller, Operation::kReadMobileApps); !ok) return Fail(ok.error());
  std::vector<DeviceLicenseHolder> out;
  std::vector<std::string> asked;
  for (const std::string& serial : serials) {
    if (!serial.empty()) asked.push_back(serial);
  }
  std::map<std::string, store::GroupDevice> first;
  if (!asked.empty()) {
    auto devices = store_.ManagedDevicesBySerial(caller.tenant_id, asked);
    if (!devices) return Fail(devices.error());
    for (store::GroupDevice& d : *devices) first.emplace(d.serial_number, std::move(d));  // ordered by id: first wins
  }
  for (const std::string& serial : serials) {
    DeviceLicenseHolder h;
    h.serial_number = serial;
    if (auto it = first.find(serial); it != first.end()) {
      h.managed_device_id = it->second.managed_device_id;
      h.device_name = it->second.device_name;
      if (!it->second.user_id.empty()) h.user_id = it->second.user_id;
    }
    out.push_back(std::move(h));
  }
  return out;
}

}  // namespace vppd::service
