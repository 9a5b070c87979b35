#include "graph/model.h"

#include <algorithm>
#include <functional>

#include <boost/json.hpp>

namespace vppd::graph {
namespace json = boost::json;
namespace {

const std::vector<std::string> kAccountTypes = {"business", "education"};
const std::vector<std::string> kTokenStatesBeta = {"unknown", "valid", "expired", "invalid", "assignedToExternalMDM",
                                                   "duplicateLocationId"};
const std::vector<std::string> kTokenStatesV1 = {"unknown", "valid", "expired", "invalid", "assignedToExternalMDM"};
const std::vector<std::string> kSyncStatuses = {"none", "inProgress", "completed", "failed"};
const std::vector<std::string> kDeliveryProtocols = {"default", "mobileDeviceManagement",
                                                     "declarativeDeviceManagement", "unknownFutureValue"};

// A property of the vppToken entity and what this server does with it.
struct TokenProperty {
  PropertyDef def;
  bool in_v1;            // part of the v1.0 subset (spec §6)
  bool client_settable;  // a client may set it on create/PATCH; otherwise server-managed
  // Renders the value of the property (beta semantics; v1 adjusts enums itself).
  std::function<json::value(const store::VppToken&)> get;
};

PropertyDef Prop(std::string name, EdmType type, bool nullable = true) {
  PropertyDef d;
  d.name = std::move(name);
  d.type = type;
  d.nullable = nullable;
  return d;
}

PropertyDef EnumProp(std::string name, std::string enum_type, const std::vector<std::string>& members) {
  PropertyDef d = Prop(std::move(name), EdmType::kEnum, false);
  d.enum_type = std::move(enum_type);
  d.enum_members = members;
  return d;
}

PropertyDef CollectionProp(std::string name, EdmType type) {
  PropertyDef d = Prop(std::move(name), type);
  d.collection = true;
  d.filterable = false;
  return d;
}

json::value OptString(const std::optional<std::string>& s) { return s ? json::value(*s) : json::value(nullptr); }

// Graph renders "never" (a non-nullable DateTimeOffset with no value) as the minimum date.
json::value Time(Timestamp t) { return json::value(t == 0 ? "0001-01-01T00:00:00Z" : FormatIso8601(t)); }

json::value ActionResults(const std::vector<store::TokenActionResult>& results) {
  json::array out;
  out.reserve(results.size());
  for (const auto& r : results) {
    json::object o;
    o["@odata.type"] = r.is_revoke_result ? "#microsoft.graph.vppTokenRevokeLicensesActionResult"
                                          : "#microsoft.graph.vppTokenActionResult";
    o["actionName"] = r.action_name;
    o["actionState"] = r.action_state;
    o["startDateTime"] = Time(r.start);
    o["lastUpdatedDateTime"] = Time(r.last_updated);
    if (r.is_revoke_result) {
      o["actionFailureReason"] = r.failure_reason;
      o["failedLicensesCount"] = r.failed_licenses;
      o["totalLicensesCount"] = r.total_licenses;
    }
    out.push_back(std::move(o));
  }
  return out;
}

const std::vector<TokenProperty>& TokenProperties() {
  using T = store::VppToken;
  static const std::vector<TokenProperty> kProps = [] {
    PropertyDef token = Prop("token", EdmType::kString);
    token.filterable = false;  // sealed at rest; and write-only
    PropertyDef results = CollectionProp("tokenActionResults", EdmType::kComplex);
    PropertyDef tags = CollectionProp("roleScopeTagIds", EdmType::kString);
    PropertyDef id = Prop("id", EdmType::kString, false);
    // Documented order (spec §2), appleDeviceAppDeliveryProtocolType and lastAppCount last.
    return std::vector<TokenProperty>{
        {id, true, false, [](const T& t) { return json::value(t.id); }},
        {Prop("organizationName", EdmType::kString), true, false,
         [](const T& t) { return OptString(t.organization_name); }},
        {EnumProp("vppTokenAccountType", "microsoft.graph.vppTokenAccountType", kAccountTypes), true, true,
         [](const T& t) { return json::value(t.account_type); }},
        {Prop("appleId", EdmType::kString), true, true, [](const T& t) { return OptString(t.apple_id); }},
        {Prop("expirationDateTime", EdmType::kDateTimeOffset, false), true, false,
         [](const T& t) { return Time(t.expiration); }},
        {Prop("lastSyncDateTime", EdmType::kDateTimeOffset, false), true, false,
         [](const T& t) { return Time(t.last_sync); }},
        {token, true, true, [](const T&) { return json::value(nullptr); }},
        {Prop("lastModifiedDateTime", EdmType::kDateTimeOffset, false), true, false,
         [](const T& t) { return Time(t.last_modified); }},
        {EnumProp("state", "microsoft.graph.vppTokenState", kTokenStatesBeta), true, false,
         [](const T& t) { return json::value(t.state); }},
        {results, false, false, [](const T& t) { return ActionResults(t.action_results); }},
        {EnumProp("lastSyncStatus", "microsoft.graph.vppTokenSyncStatus", kSyncStatuses), true, false,
         [](const T& t) { return json::value(t.last_sync_status); }},
        {Prop("automaticallyUpdateApps", EdmType::kBoolean, false), true, true,
         [](const T& t) { return json::value(t.automatically_update_apps); }},
        {Prop("countryOrRegion", EdmType::kString), true, true,
         [](const T& t) { return OptString(t.country_or_region); }},
        {Prop("dataSharingConsentGranted", EdmType::kBoolean, false), false, true,
         [](const T& t) { return json::value(t.data_sharing_consent_granted); }},
        {Prop("displayName", EdmType::kString), false, true, [](const T& t) { return OptString(t.display_name); }},
        {Prop("locationName", EdmType::kString), false, false,
         [](const T& t) { return OptString(t.location_name); }},
        {Prop("claimTokenManagementFromExternalMdm", EdmType::kBoolean, false), false, true,
         [](const T& t) { return json::value(t.claim_token_management_from_external_mdm); }},
        {tags, false, true,
         [](const T& t) {
           json::array a;
           for (const auto& s : t.role_scope_tag_ids) a.emplace_back(s);
           return json::value(std::move(a));
         }},
        {EnumProp("appleDeviceAppDeliveryProtocolType", "microsoft.graph.appleDeviceDeliveryProtocol",
                  kDeliveryProtocols),
         false, true, [](const T& t) { return json::value(t.delivery_protocol); }},
        {Prop("lastAppCount", EdmType::kInt32, false), true, false,
         [](const T& t) { return json::value(t.last_app_count); }},
    };
  }();
  return kProps;
}

EntityDef MakeEntity(ApiVersion version) {
  EntityDef e;
  e.name = "vppToken";
  e.type_names = {"microsoft.graph.vppToken"};
  for (const auto& p : TokenProperties()) {
    if (version == ApiVersion::kV1 && !p.in_v1) continue;
    PropertyDef def = p.def;
    if (version == ApiVersion::kV1 && def.name == "state") def.enum_members = kTokenStatesV1;
    e.properties.push_back(std::move(def));
  }
  return e;
}

Error BadProperty(const std::string& name, const std::string& why) {
  return Error::InvalidArgument("Invalid value for property '" + name + "': " + why, name).WithGraphCode("BadRequest");
}

// Checks one JSON value against a property definition.
Status CheckValue(const PropertyDef& def, const json::value& v) {
  if (v.is_null()) {
    if (!def.nullable) return Fail(BadProperty(def.name, "null is not allowed for this property."));
    return {};
  }
  if (def.collection) {
    if (!v.is_array()) return Fail(BadProperty(def.name, "expected a JSON array."));
    for (const auto& item : v.get_array()) {
      if (def.type == EdmType::kString && !item.is_string()) {
        return Fail(BadProperty(def.name, "every element must be a string."));
      }
      if (def.type == EdmType::kComplex && !item.is_object()) {
        return Fail(BadProperty(def.name, "every element must be an object."));
      }
    }
    return {};
  }
  switch (def.type) {
    case EdmType::kString:
    case EdmType::kGuid:
      if (!v.is_string()) return Fail(BadProperty(def.name, "expected a string."));
      return {};
    case EdmType::kBoolean:
      if (!v.is_bool()) return Fail(BadProperty(def.name, "expected true or false."));
      return {};
    case EdmType::kInt32:
    case EdmType::kInt64:
      if (!v.is_int64() && !v.is_uint64()) return Fail(BadProperty(def.name, "expected an integer."));
      if (def.type == EdmType::kInt32) {
        const bool fits = v.is_int64() ? (v.get_int64() >= INT32_MIN && v.get_int64() <= INT32_MAX)
                                       : v.get_uint64() <= static_cast<std::uint64_t>(INT32_MAX);
        if (!fits) return Fail(BadProperty(def.name, "the integer does not fit Edm.Int32."));
      }
      return {};
    case EdmType::kDouble:
      if (!v.is_number()) return Fail(BadProperty(def.name, "expected a number."));
      return {};
    case EdmType::kDateTimeOffset:
      if (!v.is_string()) return Fail(BadProperty(def.name, "expected an ISO-8601 date-time string."));
      if (auto t = ParseIso8601(v.get_string()); !t) return Fail(BadProperty(def.name, t.error().message + "."));
      return {};
    case EdmType::kEnum: {
      if (!v.is_string()) return Fail(BadProperty(def.name, "expected a member name of " + def.enum_type + "."));
      const std::string_view s = v.get_string();
      if (std::find(def.enum_members.begin(), def.enum_members.end(), s) == def.enum_members.end()) {
        std::string members;
        for (const auto& m : def.enum_members) members += (members.empty() ? "" : ", ") + m;
        return Fail(BadProperty(def.name, "'" + std::string(s) + "' is not a member of " + def.enum_type + " (" +
                                              members + ")."));
      }
      return {};
    }
    case EdmType::kComplex:
      if (!v.is_object()) return Fail(BadProperty(def.name, "expected an object."));
      return {};
  }
  return {};
}

std::optional<std::string> OptionalString(const json::value& v) {
  if (v.is_null()) return std::nullopt;
  return std::string(v.get_string());
}

}  // namespace

const char* VersionSegment(ApiVersion v) { return v == ApiVersion::kBeta ? "beta" : "v1.0"; }

const EntityDef& VppTokenEntity(ApiVersion version) {
  static const EntityDef kBeta = MakeEntity(ApiVersion::kBeta);
  static const EntityDef kV1 = MakeEntity(ApiVersion::kV1);
  return version == ApiVersion::kBeta ? kBeta : kV1;
}

void WriteVppToken(const store::VppToken& token, ApiVersion version, const std::vector<std::string>& select,
                   json::object& out) {
  out.reserve(out.size() + TokenProperties().size() + 1);
  out["@odata.type"] = "#microsoft.graph.vppToken";
  for (const auto& p : TokenProperties()) {
    if (version == ApiVersion::kV1 && !p.in_v1) continue;
    if (!select.empty() && p.def.name != "id" &&
        std::find(select.begin(), select.end(), p.def.name) == select.end()) {
      continue;
    }
    json::value v = p.get(token);
    // v1.0's vppTokenState has no duplicateLocationId; such a token is not usable there.
    if (version == ApiVersion::kV1 && p.def.name == "state" && v.get_string() == "duplicateLocationId") {
      v = "invalid";
    }
    out[p.def.name] = std::move(v);
  }
}

namespace {

struct AppProperty {
  PropertyDef def;
  bool in_v1;  // iosVppApp in v1.0
};

const std::vector<AppProperty>& AppProperties() {
  static const std::vector<AppProperty> kProps = [] {
    auto constant = [](std::string name, EdmType type) {
      PropertyDef d = Prop(std::move(name), type);
      d.filterable = false;  // not stored: the same for every VPP app
      return d;
    };
    PropertyDef account = EnumProp("vppTokenAccountType", "microsoft.graph.vppTokenAccountType", kAccountTypes);
    return std::vector<AppProperty>{
        {Prop("id", EdmType::kString, false), true},
        {Prop("displayName", EdmType::kString), true},
        {constant("description", EdmType::kString), true},
        {Prop("publisher", EdmType::kString), true},
        {Prop("createdDateTime", EdmType::kDateTimeOffset, false), true},
        {Prop("lastModifiedDateTime", EdmType::kDateTimeOffset, false), true},
        {constant("isFeatured", EdmType::kBoolean), true},
        // Graph returns every structural property of a mobileApp; the SDKs' models expect them.
        // Apple's API has none of these for a VPP app, so they are null (counts 0).
        {constant("privacyInformationUrl", EdmType::kString), true},
        {constant("informationUrl", EdmType::kString), true},
        {constant("owner", EdmType::kString), true},
        {constant("developer", EdmType::kString), true},
        {constant("notes", EdmType::kString), true},
        {constant("uploadState", EdmType::kInt32), false},
        {constant("publishingState", EdmType::kString), true},
        {constant("isAssigned", EdmType::kBoolean), false},
        {CollectionProp("roleScopeTagIds", EdmType::kString), false},
        {constant("dependentAppCount", EdmType::kInt32), false},
        {constant("supersedingAppCount", EdmType::kInt32), false},
        {constant("supersededAppCount", EdmType::kInt32), false},
        {Prop("usedLicenseCount", EdmType::kInt32, false), true},
        {Prop("totalLicenseCount", EdmType::kInt32, false), true},
        {constant("releaseDateTime", EdmType::kDateTimeOffset), true},
        {Prop("appStoreUrl", EdmType::kString), true},
        {Prop("bundleId", EdmType::kString), true},
        {account, true},
        {Prop("vppTokenOrganizationName", EdmType::kString), true},
        {Prop("vppTokenAppleId", EdmType::kString), true},
        {Prop("vppTokenId", EdmType::kString), false},
        {Prop("vppTokenDisplayName", EdmType::kString), false},
        {constant("licensingType", EdmType::kComplex), true},
        {constant("applicableDeviceType", EdmType::kComplex), true},
        {CollectionProp("revokeLicenseActionResults", EdmType::kComplex), false},
    };
  }();
  return kProps;
}

EntityDef MakeAppEntity(ApiVersion version) {
  EntityDef e;
  e.name = "mobileApp";
  e.type_names = {"microsoft.graph.mobileApp", "microsoft.graph.iosVppApp"};
  if (version == ApiVersion::kBeta) e.type_names.push_back("microsoft.graph.macOsVppApp");
  for (const auto& p : AppProperties()) {
    if (version == ApiVersion::kV1 && !p.in_v1) continue;
    e.properties.push_back(p.def);
  }
  return e;
}

bool Selected(const std::vector<std::string>& select, std::string_view name) {
  return select.empty() || name == "id" || std::find(select.begin(), select.end(), name) != select.end();
}

}  // namespace

const EntityDef& MobileAppEntity(ApiVersion version) {
  static const EntityDef kBeta = MakeAppEntity(ApiVersion::kBeta);
  static const EntityDef kV1 = MakeAppEntity(ApiVersion::kV1);
  return version == ApiVersion::kBeta ? kBeta : kV1;
}

std::string MobileAppType(const store::MobileApp& app) {
  return app.platform == "macOS" ? "#microsoft.graph.macOsVppApp" : "#microsoft.graph.iosVppApp";
}

void WriteMobileApp(const store::MobileApp& app, ApiVersion version, const std::vector<std::string>& select,
                    json::object& out) {
  const bool ios = app.platform != "macOS";
  out.reserve(out.size() + AppProperties().size() + 1);
  out["@odata.type"] = MobileAppType(app);
  auto put = [&](std::string_view name, json::value v) {
    if (Selected(select, name)) out[name] = std::move(v);
  };
  auto opt = [](const std::optional<std::string>& s) { return s ? json::value(*s) : json::value(nullptr); };
  auto str_or_null = [](const std::string& s) { return s.empty() ? json::value(nullptr) : json::value(s); };
  const bool beta = version == ApiVersion::kBeta;
  put("id", json::string(app.id));
  put("displayName", json::string(app.display_name));
  put("description", nullptr);
  put("publisher", str_or_null(app.publisher));
  put("createdDateTime", Time(app.created));
  put("lastModifiedDateTime", Time(app.last_modified));
  put("isFeatured", false);
  put("privacyInformationUrl", nullptr);
  put("informationUrl", nullptr);
  put("owner", nullptr);
  put("developer", nullptr);
  put("notes", nullptr);
  if (beta) put("uploadState", 1);  // ready: a store app has no content to upload
  put("publishingState", "published");
  if (beta) {
    put("isAssigned", false);
    put("roleScopeTagIds", json::array());
    // vppd keeps no app relationships (dependencies, supersedence).
    put("dependentAppCount", 0);
    put("supersedingAppCount", 0);
    put("supersededAppCount", 0);
  }
  const auto clamp = [](std::int64_t n) { return std::min<std::int64_t>(n, 2147483647); };
  put("usedLicenseCount", clamp(app.used_licenses));
  put("totalLicenseCount", clamp(app.total_licenses));
  put("releaseDateTime", nullptr);
  put("appStoreUrl", str_or_null(app.app_store_url));
  put("bundleId", str_or_null(app.bundle_id));
  put("vppTokenAccountType", json::string(app.token_account_type));
  put("vppTokenOrganizationName", opt(app.token_organization_name));
  put("vppTokenAppleId", opt(app.token_apple_id));
  if (beta) {
    put("vppTokenId", json::string(app.token_id));
    put("vppTokenDisplayName", opt(app.token_display_name));
  }
  // Apps can always be licensed to users; device licensing is per asset.
  json::object licensing;
  if (beta) {
    licensing["supportUserLicensing"] = true;
    licensing["supportDeviceLicensing"] = app.device_assignable;
  }
  licensing["supportsUserLicensing"] = true;
  licensing["supportsDeviceLicensing"] = app.device_assignable;
  put("licensingType", std::move(licensing));
  if (ios) {
    json::object devices;
    devices["iPad"] = true;
    devices["iPhoneAndIPod"] = true;
    put("applicableDeviceType", std::move(devices));
  }
  if (beta) put("revokeLicenseActionResults", json::array());
}

void WriteAssignedLicense(const store::MobileApp& app, const store::LicenseAssignment& a, json::object& out) {
  const bool device = !a.serial_number.empty();
  if (app.platform == "macOS") {
    out["@odata.type"] = "#microsoft.graph.macOsVppAppAssignedLicense";
  } else {
    out["@odata.type"] = device ? "#microsoft.graph.iosVppAppAssignedDeviceLicense"
                                : "#microsoft.graph.iosVppAppAssignedUserLicense";
  }
  // Stable id of the assignment within the app.
  const std::string hex = Sha256Hex(app.id + "\n" + a.client_user_id + "\n" + a.serial_number);
  out["id"] = hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
              hex.substr(20, 12);
  out["userEmailAddress"] = nullptr;
  out["userId"] = device ? json::value(nullptr) : json::value(a.client_user_id);
  out["userName"] = nullptr;
  out["userPrincipalName"] = nullptr;
  if (device) {
    out["deviceName"] = a.serial_number;
    out["managedDeviceId"] = nullptr;
  }
}

Result<service::TokenChanges> ReadTokenChanges(const json::object& body, ApiVersion version) {
  service::TokenChanges c;
  const EntityDef& entity = VppTokenEntity(version);
  for (const auto& [key_sv, value] : body) {
    const std::string key(key_sv);
    if (key == "@odata.type") {
      if (!value.is_string() ||
          (value.get_string() != "#microsoft.graph.vppToken" && value.get_string() != "microsoft.graph.vppToken")) {
        return Fail(Error::InvalidArgument("'@odata.type' must be '#microsoft.graph.vppToken'.", "@odata.type")
                        .WithGraphCode("BadRequest"));
      }
      continue;
    }
    // Instance and property annotations ("@odata.etag", "displayName@odata.type") carry no data here.
    if (key.find('@') != std::string::npos) continue;
    const PropertyDef* def = entity.Find(key);
    if (def == nullptr) {
      return Fail(Error::InvalidArgument("Property '" + key + "' does not exist on type 'microsoft.graph.vppToken'" +
                                             (version == ApiVersion::kV1 ? " in v1.0." : "."),
                                         key)
                      .WithGraphCode("BadRequest"));
    }
    if (auto ok = CheckValue(*def, value); !ok) return Fail(ok.error());
    const auto it = std::find_if(TokenProperties().begin(), TokenProperties().end(),
                                 [&](const TokenProperty& p) { return p.def.name == key; });
    if (!it->client_settable) continue;

    if (key == "token") {
      if (value.is_null()) {
        return Fail(BadProperty(key, "the sToken cannot be removed; delete the vppToken instead."));
      }
      c.token = std::string(value.get_string());
    } else if (key == "vppTokenAccountType") {
      c.account_type = std::string(value.get_string());
    } else if (key == "appleId") {
      c.apple_id = OptionalString(value);
    } else if (key == "countryOrRegion") {
      c.country_or_region = OptionalString(value);
    } else if (key == "displayName") {
      c.display_name = OptionalString(value);
    } else if (key == "automaticallyUpdateApps") {
      c.automatically_update_apps = value.get_bool();
    } else if (key == "dataSharingConsentGranted") {
      c.data_sharing_consent_granted = value.get_bool();
    } else if (key == "claimTokenManagementFromExternalMdm") {
      c.claim_token_management_from_external_mdm = value.get_bool();
    } else if (key == "roleScopeTagIds") {
      std::vector<std::string> tags;
      if (!value.is_null()) {
        for (const auto& t : value.get_array()) tags.emplace_back(t.get_string());
      }
      c.role_scope_tag_ids = std::move(tags);
    } else if (key == "appleDeviceAppDeliveryProtocolType") {
      c.delivery_protocol = std::string(value.get_string());
    }
  }
  return c;
}

}  // namespace vppd::graph
