// Revoking VPP licences by app, person or device (service::LicenseRevokes, see
// service.h): what a revoke may ask, checked against the store, recorded in one
// write, and handed to the token's revokeAppLicenses job.
//
// Layout: 1. who holds what (the store's view)  2. the actions.
//
// Who holds a licence, as vppd knows it without asking Apple: the assignments the
// token's last sync saw, and vppd's own grants since (its device and user
// licence rows pending, granted or being reclaimed; one it released, or failed
// to grant, is not held).
#include <algorithm>
#include <map>
#include <set>
#include <string>

#include <fmt/format.h>

#include "service/service.h"
#include "sync/sync.h"

namespace vppd::service {
namespace {

constexpr char kRevokeAll[] = "revokeAllLicenses";
constexpr char kRevokeUser[] = "revokeUserLicense";
constexpr char kRevokeDevice[] = "revokeDeviceLicense";
constexpr char kRevokeAppleVpp[] = "revokeAppleVppLicenses";

using AssetKey = std::pair<std::string, std::string>;  // (adamId, pricingParam)

// --- 1. who holds what ---------------------------------------------------------------

// Calls `each` with every assignment of the token the last sync saw (walked again
// when a sync replaces the set meanwhile). A token without a set has none.
Status ForEachHolding(store::Store& store, const std::string& tenant_id, const std::string& token_id,
                      const std::function<void(const store::LicenseAssignment&)>& each) {
  Status walked;
  for (int attempt = 0; attempt < 3; ++attempt) {
    walked = store.ForEachAssignment(tenant_id, token_id, 10'000,
                                     [&](const std::vector<store::LicenseAssignment>& batch) -> Status {
                                       for (const auto& a : batch) each(a);
                                       return {};
                                     });
    if (walked || walked.error().code != Code::kFailedPrecondition) break;
  }
  if (!walked && walked.error().code == Code::kNotFound) return {};
  return walked;
}

// The assets of the token whose licence `serial` holds: at the last sync unless
// vppd released it since, or granted (or granting) by vppd since.
Result<std::set<AssetKey>> AssetsOfSerial(store::Store& store, const std::string& tenant_id,
                                          const std::string& token_id, const std::string& serial) {
  std::set<AssetKey> held;
  if (Status s = ForEachHolding(store, tenant_id, token_id,
                                [&](const store::LicenseAssignment& a) {
                                  if (a.serial_number == serial) held.emplace(a.adam_id, a.pricing_param);
                                });
      !s) {
    return Fail(s.error());
  }
  auto rows = store.ListDeviceLicenses(tenant_id, token_id);
  if (!rows) return Fail(rows.error());
  for (const store::DeviceLicense& r : *rows) {
    if (r.serial_number != serial) continue;
    if (r.state == "released" || r.state == "failed") {
      held.erase({r.adam_id, r.pricing_param});
    } else {
      held.emplace(r.adam_id, r.pricing_param);
    }
  }
  return held;
}

// Whether the person `client_user_id` holds a licence of the asset: as
// AssetsOfSerial does for a device, from the last sync and vppd's user licence rows.
Result<bool> UserHolds(store::Store& store, const std::string& tenant_id, const std::string& token_id,
                       const std::string& client_user_id, const AssetKey& asset) {
  bool held = false;
  if (Status s = ForEachHolding(store, tenant_id, token_id,
                                [&](const store::LicenseAssignment& a) {
                                  held = held || (a.client_user_id == client_user_id && a.adam_id == asset.first &&
                                                  a.pricing_param == asset.second);
                                });
      !s) {
    return Fail(s.error());
  }
  auto rows = store.ListUserLicenses(tenant_id, token_id);
  if (!rows) return Fail(rows.error());
  for (const store::UserLicense& r : *rows) {
    if (r.client_user_id != client_user_id || r.adam_id != asset.first || r.pricing_param != asset.second) continue;
    held = r.state != "released" && r.state != "failed";
  }
  return held;
}

Error AppNotFound(const std::string& app_id) {
  return Error::NotFound("The mobileApp '" + app_id + "' does not exist.", app_id);
}

// "iOS"/"iPadOS" → iOS, "macOS" → macOS; "" when the device does not say.
std::string PlatformOf(const store::ManagedDevice& device) {
  const std::string os = device.operating_system.value_or("");
  if (os == "macOS" || os == "Mac OS X" || os == "OS X") return "macOS";
  if (!os.empty()) return "iOS";
  return "";
}

}  // namespace

LicenseRevokes::LicenseRevokes(store::Store& store, Options options)
    : store_(store),
      options_(options),
      gate_(store, options),
      read_gate_(store, options),
      clock_(options.clock ? options.clock : &Clock::Real()) {}

// --- 2. the actions ----------------------------------------------------------------------

Result<store::MobileApp> LicenseRevokes::RevocableApp(const std::string& tenant_id, const std::string& app_id,
                                                      const std::string& platform) {
  auto app = store_.GetApp(tenant_id, app_id);
  if (!app && app.error().code == Code::kNotFound) return Fail(AppNotFound(app_id));
  if (!app) return app;
  // Books are mobile_apps rows of their own kind, never mobileApps on Graph's surface.
  if (app->product_type != "App") return Fail(AppNotFound(app_id));
  if (!platform.empty() && app->platform != platform) {
    return Fail(Error::NotFound(fmt::format("The mobileApp '{}' is not a microsoft.graph.{}.", app_id,
                                            platform == "macOS" ? "macOsVppApp" : "iosVppApp"),
                                app_id));
  }
  if (!app->revocable) {
    return Fail(Error::InvalidArgument(
        fmt::format("The licences of the mobileApp '{}' cannot be revoked: Apple marks its asset {} as not "
                    "revocable.",
                    app_id, app->adam_id),
        app_id));
  }
  return app;
}

Status LicenseRevokes::Record(const std::string& tenant_id, std::vector<store::AppRevoke> revokes) {
  auto added = store_.AddAppRevokes(tenant_id, std::move(revokes), options_.keep_action_results);
  if (!added) return Fail(added.error());
  std::set<std::string> tokens;
  for (const auto& r : *added) tokens.insert(r.token_id);
  bool queued = false;
  for (const std::string& token_id : tokens) {
    // The revokes are recorded: a job that cannot be queued now (the token deleted
    // meanwhile takes them with it) is queued by the next request of the token.
    auto q = sync::RequestAppRevokes(store_, tenant_id, token_id, clock_->Now(), options_.keep_action_results);
    if (!q && q.error().code != Code::kNotFound) return Fail(q.error());
    queued = queued || (q && q->queued);
  }
  if (queued && options_.on_job_queued) options_.on_job_queued();
  return {};
}

Status LicenseRevokes::RevokeAll(const Principal& caller, const std::string& app_id, const std::string& platform,
                                 bool notify_managed_devices, bool revoke_untracked) {
  if (auto ok = gate_.Admit(caller, Operation::kRevokeAppLicenses); !ok) return ok;
  auto app = RevocableApp(caller.tenant_id, app_id, platform);
  if (!app) return Fail(app.error());
  store::AppRevoke r;
  r.token_id = app->token_id;
  r.app_id = app->id;
  r.adam_id = app->adam_id;
  r.pricing_param = app->pricing_param;
  r.action_name = kRevokeAll;
  r.notify_managed_devices = notify_managed_devices;
  r.revoke_untracked = revoke_untracked;
  return Record(caller.tenant_id, {r});
}

Status LicenseRevokes::RevokeUser(const Principal& caller, const std::string& app_id, const std::string& platform,
                                  const std::string& user_id, bool notify_managed_devices) {
  if (auto ok = gate_.Admit(caller, Operation::kRevokeAppLicenses); !ok) return ok;
  auto app = RevocableApp(caller.tenant_id, app_id, platform);
  if (!app) return Fail(app.error());
  auto user = store_.GetUser(caller.tenant_id, user_id);
  if (!user) {
    if (user.error().code != Code::kNotFound) return Fail(user.error());
    return Fail(Error::NotFound("The user '" + user_id + "' (userId) does not exist.", "userId"));
  }
  auto held = UserHolds(store_, caller.tenant_id, app->token_id, user->id, {app->adam_id, app->pricing_param});
  if (!held) return Fail(held.error());
  if (!*held) {
    return Fail(Error::InvalidArgument(
        fmt::format("The user '{}' holds no licence of the mobileApp '{}' to revoke.", user->id, app->id), "userId"));
  }
  store::AppRevoke r;
  r.token_id = app->token_id;
  r.app_id = app->id;
  r.adam_id = app->adam_id;
  r.pricing_param = app->pricing_param;
  r.action_name = kRevokeUser;
  r.user_id = user->id;
  r.notify_managed_devices = notify_managed_devices;
  return Record(caller.tenant_id, {r});
}

Status LicenseRevokes::RevokeDevice(const Principal& caller, const std::string& app_id, const std::string& platform,
                                    const std::string& managed_device_id, bool notify_managed_devices) {
  if (auto ok = gate_.Admit(caller, Operation::kRevokeAppLicenses); !ok) return ok;
  auto app = RevocableApp(caller.tenant_id, app_id, platform);
  if (!app) return Fail(app.error());
  auto device = store_.GetManagedDevice(caller.tenant_id, managed_device_id);
  if (!device) {
    if (device.error().code != Code::kNotFound) return Fail(device.error());
    return Fail(Error::NotFound("The managed device '" + managed_device_id + "' (managedDeviceId) does not exist.",
                                "managedDeviceId"));
  }
  if (!device->serial_number || device->serial_number->empty()) {
    return Fail(Error::InvalidArgument(
        "The managed device '" + device->id + "' has no serial number: it can hold no device licence.",
        "managedDeviceId"));
  }
  auto assets = AssetsOfSerial(store_, caller.tenant_id, app->token_id, *device->serial_number);
  if (!assets) return Fail(assets.error());
  if (!assets->contains({app->adam_id, app->pricing_param})) {
    return Fail(Error::InvalidArgument(fmt::format("The managed device '{}' (serial number {}) holds no licence of "
                                                   "the mobileApp '{}' to revoke.",
                                                   device->id, *device->serial_number, app->id),
                                       "managedDeviceId"));
  }
  store::AppRevoke r;
  r.token_id = app->token_id;
  r.app_id = app->id;
  r.adam_id = app->adam_id;
  r.pricing_param = app->pricing_param;
  r.action_name = kRevokeDevice;
  r.managed_device_id = device->id;
  r.serial_number = *device->serial_number;
  r.notify_managed_devices = notify_managed_devices;
  return Record(caller.tenant_id, {r});
}

Status LicenseRevokes::RevokeManagedDevice(const Principal& caller, const std::string& managed_device_id) {
  if (auto ok = gate_.Admit(caller, Operation::kRevokeAppleVppLicenses); !ok) return ok;
  auto device = store_.GetManagedDevice(caller.tenant_id, managed_device_id);
  if (!device) {
    if (device.error().code != Code::kNotFound) return Fail(device.error());
    return Fail(Error::NotFound("The managed device '" + managed_device_id + "' does not exist.", managed_device_id));
  }
  if (!device->serial_number || device->serial_number->empty()) {
    return Fail(Error::InvalidArgument(
        "The managed device '" + device->id + "' has no serial number: it holds no Apple VPP licence.", device->id));
  }
  const std::string& serial = *device->serial_number;
  const std::string platform = PlatformOf(*device);
  std::vector<store::AppRevoke> revokes;
  store::ListQuery tokens;
  tokens.limit = 500;
  for (;;) {
    auto page = store_.ListTokens(caller.tenant_id, tokens);
    if (!page) return Fail(page.error());
    for (const store::VppToken& token : page->items) {
      auto assets = AssetsOfSerial(store_, caller.tenant_id, token.id, serial);
      if (!assets) return Fail(assets.error());
      if (assets->empty()) continue;
      // The token's apps of those assets: one per asset, the device's platform first.
      std::map<AssetKey, store::MobileApp> chosen;
      store::ListQuery apps;
      apps.filter = store::Expr::Apply(store::Op::kEq,
                                       {store::Expr::Of(store::Column::kAppTokenId), store::Expr::Value(token.id)});
      apps.limit = 1000;
      for (;;) {
        auto got = store_.ListApps(caller.tenant_id, apps);
        if (!got) return Fail(got.error());
        for (store::MobileApp& app : got->items) {
          const AssetKey key{app.adam_id, app.pricing_param};
          if (app.product_type != "App" || !app.revocable || !assets->contains(key)) continue;
          auto it = chosen.find(key);
          if (it == chosen.end() || (it->second.platform != platform && app.platform == platform)) {
            chosen[key] = std::move(app);
          }
        }
        if (!got->has_more) break;
        apps.skip += apps.limit;
      }
      for (const auto& [key, app] : chosen) {
        store::AppRevoke r;
        r.token_id = token.id;
        r.app_id = app.id;
        r.adam_id = app.adam_id;
        r.pricing_param = app.pricing_param;
        r.action_name = kRevokeAppleVpp;
        r.managed_device_id = device->id;
        r.serial_number = serial;
        revokes.push_back(std::move(r));
      }
    }
    if (!page->has_more) break;
    tokens.skip += tokens.limit;
  }
  if (revokes.empty()) {
    return Fail(Error::InvalidArgument(
        fmt::format("The managed device '{}' (serial number {}) holds no Apple VPP licence that vppd can revoke.",
                    device->id, serial),
        device->id));
  }
  return Record(caller.tenant_id, std::move(revokes));
}

Result<std::vector<store::AppRevoke>> LicenseRevokes::ResultsOf(const Principal& caller,
                                                                const std::vector<std::string>& app_ids) {
  if (auto ok = read_gate_.Admit(caller, Operation::kReadMobileApps); !ok) return Fail(ok.error());
  return store_.AppRevokesOf(caller.tenant_id, app_ids);
}

Result<std::vector<LicenseRevokes::DeviceRevokeResult>> LicenseRevokes::DeviceResults(
    const Principal& caller, const std::string& managed_device_id) {
  if (auto ok = read_gate_.Admit(caller, Operation::kReadManagedDevices); !ok) return Fail(ok.error());
  auto revokes = store_.AppRevokesOfDevice(caller.tenant_id, managed_device_id);
  if (!revokes) return Fail(revokes.error());
  std::vector<DeviceRevokeResult> out;
  std::map<Timestamp, std::size_t> by_start;  // one request's revokes were recorded together
  for (const store::AppRevoke& r : *revokes) {
    auto [it, added] = by_start.emplace(r.start, out.size());
    if (added) out.push_back({"done", r.start, r.last_updated, 0, 0});
    DeviceRevokeResult& d = out[it->second];
    d.last_updated = std::max(d.last_updated, r.last_updated);
    d.total_licenses += r.total_licenses;
    d.failed_licenses += r.failed_licenses;
    auto rank = [](const std::string& state) {
      return state == "active" ? 3 : state == "pending" ? 2 : state == "failed" ? 1 : 0;
    };
    if (rank(r.action_state) > rank(d.action_state)) d.action_state = r.action_state;
  }
  return out;
}

}  // namespace vppd::service
