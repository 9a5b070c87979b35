#include "graph/model.h"

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <functional>

#include <boost/json.hpp>

#include "graph/etag.h"
#include "graph/json_writer.h"
#include "graph/store_mapping.h"

namespace vppd::graph {
namespace json = boost::json;
namespace {

const std::vector<std::string> kAccountTypes = {"business", "education"};
const std::vector<std::string> kTokenStatesBeta = {
    "unknown", "valid", "expired", "invalid", "assignedToExternalMDM", "duplicateLocationId"};
const std::vector<std::string> kTokenStatesV1 = {"unknown", "valid", "expired", "invalid", "assignedToExternalMDM"};
const std::vector<std::string> kSyncStatuses = {"none", "inProgress", "completed", "failed"};
const std::vector<std::string> kDeliveryProtocols = {"default", "mobileDeviceManagement", "declarativeDeviceManagement",
                                                     "unknownFutureValue"};
const std::vector<std::string> kActionStates = {"none", "pending", "canceled",    "active",
                                                "done", "failed",  "notSupported"};
const std::vector<std::string> kActionFailureReasons = {"none", "appleFailure", "internalError", "expiredVppToken",
                                                        "expiredApplePushNotificationCertificate"};
const std::vector<std::string> kPublishingStates = {"notPublished", "processing", "published"};

// A property of the vppToken entity and what this server does with it.
// Every table below is read twice: by the JSON writers and by Schema() ($metadata), so
// the document and the wire format cannot disagree. A row's position is its JSON order.
struct TokenProperty {
  PropertyDef def;
  bool in_v1;            // part of the v1.0 subset (spec §6)
  bool client_settable;  // a client may set it on create/PATCH; otherwise server-managed
  // Writes the value of the property (beta semantics; v1 adjusts enums itself).
  void (*write)(const store::VppToken&, JsonWriter&);
  std::string complex_type = {};  // kComplex: the qualified type of the value (or of its elements)
  std::string json_key = {};      // def.name as JsonWriter::QuotedKey writes it
};

// Fills in each row's json_key, once, when a property table is built.
template <class Row>
std::vector<Row> WithJsonKeys(std::vector<Row> rows) {
  for (Row& row : rows) row.json_key = JsonWriter::QuotedKey(row.def.name);
  return rows;
}

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

// A type whose rows the store holds: those whose `column` holds `value` (no column: all).
TypeDef HeldType(std::string name, std::optional<store::Column> column, std::string value) {
  TypeDef t;
  t.name = std::move(name);
  t.column = column;
  t.value = std::move(value);
  return t;
}

// The property as the store keeps it: in `column`, which $filter/$orderby then use.
PropertyDef Stored(PropertyDef d, store::Column column) {
  d.column = column;
  return d;
}

json::value OptString(const std::optional<std::string>& s) { return s ? json::value(*s) : json::value(nullptr); }

// Graph renders "never" (a non-nullable DateTimeOffset with no value) as the minimum date.
json::value Time(Timestamp t) { return json::value(t == 0 ? kGraphNeverText : FormatIso8601(t)); }

void WriteOptString(const std::optional<std::string>& s, JsonWriter& w) {
  if (s) {
    w.String(*s);
  } else {
    w.Null();
  }
}

void WriteTime(Timestamp t, JsonWriter& w) {
  if (t == 0) {
    w.String(kGraphNeverText);
  } else {
    w.String(FormatIso8601(t));
  }
}

// vppTokenActionResult, and vppTokenRevokeLicensesActionResult which derives from it.
struct ActionResultProperty {
  PropertyDef def;
  bool revoke_only;  // declared on vppTokenRevokeLicensesActionResult
  void (*write)(const store::TokenActionResult&, JsonWriter&);
  std::string json_key = {};  // def.name as JsonWriter::QuotedKey writes it
};

const std::vector<ActionResultProperty>& ActionResultProperties() {
  using R = store::TokenActionResult;
  using W = JsonWriter;
  static const std::vector<ActionResultProperty> kProps = WithJsonKeys(std::vector<ActionResultProperty>{
      {Prop("actionName", EdmType::kString), false, [](const R& r, W& w) { w.String(r.action_name); }},
      {EnumProp("actionState", "microsoft.graph.actionState", kActionStates), false,
       [](const R& r, W& w) { w.String(r.action_state); }},
      {Prop("startDateTime", EdmType::kDateTimeOffset, false), false, [](const R& r, W& w) { WriteTime(r.start, w); }},
      {Prop("lastUpdatedDateTime", EdmType::kDateTimeOffset, false), false,
       [](const R& r, W& w) { WriteTime(r.last_updated, w); }},
      {EnumProp("actionFailureReason", "microsoft.graph.vppTokenActionFailureReason", kActionFailureReasons), true,
       [](const R& r, W& w) { w.String(r.failure_reason); }},
      {Prop("failedLicensesCount", EdmType::kInt32, false), true, [](const R& r, W& w) { w.Int(r.failed_licenses); }},
      {Prop("totalLicensesCount", EdmType::kInt32, false), true, [](const R& r, W& w) { w.Int(r.total_licenses); }},
  });
  return kProps;
}

void WriteActionResults(const std::vector<store::TokenActionResult>& results, JsonWriter& w) {
  w.BeginArray();
  for (const auto& r : results) {
    w.BeginObject();
    w.PreparedKey(R"("@odata.type":)");
    w.String(r.is_revoke_result ? "#microsoft.graph.vppTokenRevokeLicensesActionResult"
                                : "#microsoft.graph.vppTokenActionResult");
    for (const auto& p : ActionResultProperties()) {
      if (p.revoke_only && !r.is_revoke_result) continue;
      w.PreparedKey(p.json_key);
      p.write(r, w);
    }
    w.EndObject();
  }
  w.EndArray();
}

const std::vector<TokenProperty>& TokenProperties() {
  using C = store::Column;
  using T = store::VppToken;
  using W = JsonWriter;
  static const std::vector<TokenProperty> kProps = [] {
    PropertyDef token = Prop("token", EdmType::kString);
    token.filterable = false;  // sealed at rest; and write-only
    PropertyDef results = CollectionProp("tokenActionResults", EdmType::kComplex);
    PropertyDef tags = CollectionProp("roleScopeTagIds", EdmType::kString);
    PropertyDef id = Prop("id", EdmType::kString, false);
    // Documented order (spec §2), appleDeviceAppDeliveryProtocolType and lastAppCount last.
    return WithJsonKeys(std::vector<TokenProperty>{
        {Stored(id, C::kTokenId), true, false, [](const T& t, W& w) { w.String(t.id); }},
        {Stored(Prop("organizationName", EdmType::kString), C::kTokenOrganizationName), true, false,
         [](const T& t, W& w) { WriteOptString(t.organization_name, w); }},
        {Stored(EnumProp("vppTokenAccountType", "microsoft.graph.vppTokenAccountType", kAccountTypes),
                C::kTokenAccountType),
         true, true, [](const T& t, W& w) { w.String(t.account_type); }},
        {Stored(Prop("appleId", EdmType::kString), C::kTokenAppleId), true, true,
         [](const T& t, W& w) { WriteOptString(t.apple_id, w); }},
        {Stored(Prop("expirationDateTime", EdmType::kDateTimeOffset, false), C::kTokenExpiration), true, false,
         [](const T& t, W& w) { WriteTime(t.expiration, w); }},
        {Stored(Prop("lastSyncDateTime", EdmType::kDateTimeOffset, false), C::kTokenLastSync), true, false,
         [](const T& t, W& w) { WriteTime(t.last_sync, w); }},
        {token, true, true, [](const T&, W& w) { w.Null(); }},
        {Stored(Prop("lastModifiedDateTime", EdmType::kDateTimeOffset, false), C::kTokenLastModified), true, false,
         [](const T& t, W& w) { WriteTime(t.last_modified, w); }},
        {Stored(EnumProp("state", "microsoft.graph.vppTokenState", kTokenStatesBeta), C::kTokenState), true, false,
         [](const T& t, W& w) { w.String(t.state); }},
        {results, false, false, [](const T& t, W& w) { WriteActionResults(t.action_results, w); },
         "microsoft.graph.vppTokenActionResult"},
        {Stored(EnumProp("lastSyncStatus", "microsoft.graph.vppTokenSyncStatus", kSyncStatuses),
                C::kTokenLastSyncStatus),
         true, false, [](const T& t, W& w) { w.String(t.last_sync_status); }},
        {Stored(Prop("automaticallyUpdateApps", EdmType::kBoolean, false), C::kTokenAutomaticallyUpdateApps), true,
         true, [](const T& t, W& w) { w.Bool(t.automatically_update_apps); }},
        {Stored(Prop("countryOrRegion", EdmType::kString), C::kTokenCountryOrRegion), true, true,
         [](const T& t, W& w) { WriteOptString(t.country_or_region, w); }},
        {Stored(Prop("dataSharingConsentGranted", EdmType::kBoolean, false), C::kTokenDataSharingConsent), false, true,
         [](const T& t, W& w) { w.Bool(t.data_sharing_consent_granted); }},
        {Stored(Prop("displayName", EdmType::kString), C::kTokenDisplayName), false, true,
         [](const T& t, W& w) { WriteOptString(t.display_name, w); }},
        {Stored(Prop("locationName", EdmType::kString), C::kTokenLocationName), false, false,
         [](const T& t, W& w) { WriteOptString(t.location_name, w); }},
        {Stored(Prop("claimTokenManagementFromExternalMdm", EdmType::kBoolean, false), C::kTokenClaimFromExternalMdm),
         false, true, [](const T& t, W& w) { w.Bool(t.claim_token_management_from_external_mdm); }},
        {tags, false, true,
         [](const T& t, W& w) {
           w.BeginArray();
           for (const auto& s : t.role_scope_tag_ids) w.String(s);
           w.EndArray();
         }},
        {Stored(EnumProp("appleDeviceAppDeliveryProtocolType", "microsoft.graph.appleDeviceDeliveryProtocol",
                         kDeliveryProtocols),
                C::kTokenDeliveryProtocol),
         false, true, [](const T& t, W& w) { w.String(t.delivery_protocol); }},
        {Stored(Prop("lastAppCount", EdmType::kInt32, false), C::kTokenLastAppCount), true, false,
         [](const T& t, W& w) { w.Int(t.last_app_count); }},
    });
  }();
  return kProps;
}

EntityDef MakeEntity(ApiVersion version) {
  EntityDef e;
  e.name = "vppToken";
  e.types = {HeldType("microsoft.graph.vppToken", std::nullopt, {})};
  e.table = store::Table::kVppTokens;
  for (const auto& p : TokenProperties()) {
    if (version == ApiVersion::kV1 && !p.in_v1) continue;
    PropertyDef def = p.def;
    if (version == ApiVersion::kV1 && def.name == "state") def.enum_members = kTokenStatesV1;
    e.properties.push_back(std::move(def));
  }
  return e;
}

Error BadProperty(const std::string& name, const std::string& why) {
  return Error::InvalidArgument("Invalid value for property '" + name + "': " + why, name);
}

// Checks one JSON value against a property definition.
// What a client may store in a vppToken (README, "Choices"): a string of at most
// 256 characters — the sToken 64 KB, Apple's are under 2 KB — and a collection of at
// most 100 elements, each a string within the same 256.
constexpr std::size_t kMaxStringChars = 256;
constexpr std::size_t kMaxTokenChars = 64 * 1024;
constexpr std::size_t kMaxCollection = 100;

// Characters of UTF-8 text (Boost.JSON has checked it): the bytes that start one.
std::size_t Utf8Chars(std::string_view s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

Status CheckLength(const PropertyDef& def, std::string_view s) {
  const std::size_t most = def.name == "token" ? kMaxTokenChars : kMaxStringChars;
  if (Utf8Chars(s) > most) {
    return Fail(BadProperty(def.name, "at most " + std::to_string(most) + " characters are allowed."));
  }
  return {};
}

Status CheckValue(const PropertyDef& def, const json::value& v) {
  if (v.is_null()) {
    if (!def.nullable) return Fail(BadProperty(def.name, "null is not allowed for this property."));
    return {};
  }
  if (def.collection) {
    if (!v.is_array()) return Fail(BadProperty(def.name, "expected a JSON array."));
    if (v.get_array().size() > kMaxCollection) {
      return Fail(BadProperty(def.name, "at most " + std::to_string(kMaxCollection) + " elements are allowed."));
    }
    for (const auto& item : v.get_array()) {
      if (def.type == EdmType::kString && !item.is_string()) {
        return Fail(BadProperty(def.name, "every element must be a string."));
      }
      if (item.is_string()) {
        if (auto ok = CheckLength(def, item.get_string()); !ok) return ok;
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
    case EdmType::kBinary:
      if (!v.is_string()) return Fail(BadProperty(def.name, "expected a string."));
      return CheckLength(def, v.get_string());
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
        return Fail(BadProperty(
            def.name, "'" + std::string(s) + "' is not a member of " + def.enum_type + " (" + members + ")."));
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

void WriteVppTokenMembers(const store::VppToken& token, ApiVersion version, const std::vector<std::string>& select,
                          JsonWriter& out) {
  out.PreparedKey(R"("@odata.type":)");
  out.String("#microsoft.graph.vppToken");
  out.PreparedKey(R"("@odata.etag":)");  // control information: whatever $select names
  out.String(VppTokenETag(token.row_version));
  for (const auto& p : TokenProperties()) {
    if (version == ApiVersion::kV1 && !p.in_v1) continue;
    if (!select.empty() && p.def.name != "id" && std::find(select.begin(), select.end(), p.def.name) == select.end()) {
      continue;
    }
    out.PreparedKey(p.json_key);
    // v1.0's vppTokenState has no duplicateLocationId; such a token is not usable there.
    if (version == ApiVersion::kV1 && p.def.name == "state" && token.state == "duplicateLocationId") {
      out.String("invalid");
      continue;
    }
    p.write(token, out);
  }
}

namespace {

// Where an app property is declared in the mobileApp hierarchy, and so which apps show it.
enum class AppScope {
  kMobileApp,  // the abstract base: every app
  kVppApp,     // declared on both iosVppApp and macOsVppApp
  kIosOnly,    // iosVppApp only
  kMacOnly,    // macOsVppApp only
};

struct AppProperty {
  PropertyDef def;
  bool in_v1;  // iosVppApp in v1.0
  AppScope scope;
  std::function<json::value(const store::MobileApp&, ApiVersion)> get;
  std::string complex_type = {};    // kComplex: the qualified type of the value (or of its elements)
  bool only_when_selected = false;  // written only when $select names it, as Graph does for icons
};

bool IsMac(const store::MobileApp& app) { return app.platform == "macOS"; }

bool AppliesTo(AppScope scope, bool mac) {
  return scope == AppScope::kMobileApp || scope == AppScope::kVppApp || (scope == AppScope::kMacOnly) == mac;
}

json::value StringOrNull(const std::string& s) { return s.empty() ? json::value(nullptr) : json::value(s); }
json::value ClampInt32(std::int64_t n) { return json::value(std::min<std::int64_t>(n, 2147483647)); }

// A complex value's member: vppLicensingType and iosDeviceType.
struct ComplexMember {
  PropertyDef def;
  bool in_v1;
  std::function<json::value(const store::MobileApp&)> get;
};

// Apps can always be licensed to users; device licensing is per asset. Beta also
// carries the older spelling of the same two facts (spec §4).
const std::vector<ComplexMember>& LicensingTypeMembers() {
  using A = store::MobileApp;
  static const std::vector<ComplexMember> kMembers = {
      {Prop("supportUserLicensing", EdmType::kBoolean, false), false, [](const A&) { return json::value(true); }},
      {Prop("supportDeviceLicensing", EdmType::kBoolean, false), false,
       [](const A& a) { return json::value(a.device_assignable); }},
      {Prop("supportsUserLicensing", EdmType::kBoolean, false), true, [](const A&) { return json::value(true); }},
      {Prop("supportsDeviceLicensing", EdmType::kBoolean, false), true,
       [](const A& a) { return json::value(a.device_assignable); }},
  };
  return kMembers;
}

const std::vector<ComplexMember>& IosDeviceTypeMembers() {
  static const std::vector<ComplexMember> kMembers = {
      {Prop("iPad", EdmType::kBoolean, false), true, [](const store::MobileApp&) { return json::value(true); }},
      {Prop("iPhoneAndIPod", EdmType::kBoolean, false), true,
       [](const store::MobileApp&) { return json::value(true); }},
  };
  return kMembers;
}

json::value ComplexValue(const std::vector<ComplexMember>& members, const store::MobileApp& app, ApiVersion version) {
  json::object o;
  for (const auto& m : members) {
    if (version == ApiVersion::kV1 && !m.in_v1) continue;
    o[m.def.name] = m.get(app);
  }
  return o;
}

const std::vector<AppProperty>& AppProperties() {
  using C = store::Column;
  using A = store::MobileApp;
  using V = ApiVersion;
  static const std::vector<AppProperty> kProps = [] {
    auto constant = [](PropertyDef d) {
      d.filterable = false;  // not stored: the same for every VPP app
      return d;
    };
    PropertyDef account = Stored(EnumProp("vppTokenAccountType", "microsoft.graph.vppTokenAccountType", kAccountTypes),
                                 C::kAppTokenAccountType);
    PropertyDef publishing =
        constant(EnumProp("publishingState", "microsoft.graph.mobileAppPublishingState", kPublishingStates));
    PropertyDef revoke_results = CollectionProp("revokeLicenseActionResults", EdmType::kComplex);
    const auto empty_array = [](const A&, V) { return json::value(json::array()); };
    const auto null_value = [](const A&, V) { return json::value(nullptr); };
    const auto zero = [](const A&, V) { return json::value(0); };
    return std::vector<AppProperty>{
        {Stored(Prop("id", EdmType::kString, false), C::kAppId), true, AppScope::kMobileApp,
         [](const A& a, V) { return json::value(json::string(a.id)); }},
        {Stored(Prop("displayName", EdmType::kString), C::kAppDisplayName), true, AppScope::kMobileApp,
         [](const A& a, V) { return json::value(json::string(a.display_name)); }},
        {constant(Prop("description", EdmType::kString)), true, AppScope::kMobileApp,
         [](const A&, V) { return json::value(nullptr); }},
        {Stored(Prop("publisher", EdmType::kString), C::kAppPublisher), true, AppScope::kMobileApp,
         [](const A& a, V) { return StringOrNull(a.publisher); }},
        {Stored(Prop("createdDateTime", EdmType::kDateTimeOffset, false), C::kAppCreated), true, AppScope::kMobileApp,
         [](const A& a, V) { return Time(a.created); }},
        {Stored(Prop("lastModifiedDateTime", EdmType::kDateTimeOffset, false), C::kAppLastModified), true,
         AppScope::kMobileApp, [](const A& a, V) { return Time(a.last_modified); }},
        {constant(Prop("isFeatured", EdmType::kBoolean, false)), true, AppScope::kMobileApp,
         [](const A&, V) { return json::value(false); }},
        // Apple's API gives an artwork URL at most, not the icon's bytes: no icon, as in
        // Graph for an app whose icon was never uploaded. Graph lists apps without their
        // icons; it is written when $select asks for it.
        {constant(Prop("largeIcon", EdmType::kComplex)), true, AppScope::kMobileApp, null_value,
         "microsoft.graph.mimeContent", /*only_when_selected=*/true},
        // Graph returns every structural property of a mobileApp; the SDKs' models expect them.
        // Apple's API has none of these for a VPP app, so they are null (counts 0).
        {constant(Prop("privacyInformationUrl", EdmType::kString)), true, AppScope::kMobileApp, null_value},
        {constant(Prop("informationUrl", EdmType::kString)), true, AppScope::kMobileApp, null_value},
        {constant(Prop("owner", EdmType::kString)), true, AppScope::kMobileApp, null_value},
        {constant(Prop("developer", EdmType::kString)), true, AppScope::kMobileApp, null_value},
        {constant(Prop("notes", EdmType::kString)), true, AppScope::kMobileApp, null_value},
        // 1 = ready: a store app has no content to upload.
        {constant(Prop("uploadState", EdmType::kInt32, false)), false, AppScope::kMobileApp,
         [](const A&, V) { return json::value(1); }},
        {publishing, true, AppScope::kMobileApp, [](const A&, V) { return json::value("published"); }},
        // Written from the app's assignments (WriteMobileApp); not a column, so not filterable.
        {constant(Prop("isAssigned", EdmType::kBoolean, false)), false, AppScope::kMobileApp,
         [](const A&, V) { return json::value(false); }},
        {CollectionProp("roleScopeTagIds", EdmType::kString), false, AppScope::kMobileApp, empty_array},
        // vppd keeps no app relationships (dependencies, supersedence).
        {constant(Prop("dependentAppCount", EdmType::kInt32, false)), false, AppScope::kMobileApp, zero},
        {constant(Prop("supersedingAppCount", EdmType::kInt32, false)), false, AppScope::kMobileApp, zero},
        {constant(Prop("supersededAppCount", EdmType::kInt32, false)), false, AppScope::kMobileApp, zero},
        {Stored(Prop("usedLicenseCount", EdmType::kInt32, false), C::kAppUsedLicenses), true, AppScope::kVppApp,
         [](const A& a, V) { return ClampInt32(a.used_licenses); }},
        {Stored(Prop("totalLicenseCount", EdmType::kInt32, false), C::kAppTotalLicenses), true, AppScope::kVppApp,
         [](const A& a, V) { return ClampInt32(a.total_licenses); }},
        {constant(Prop("releaseDateTime", EdmType::kDateTimeOffset)), true, AppScope::kVppApp, null_value},
        {Stored(Prop("appStoreUrl", EdmType::kString), C::kAppStoreUrl), true, AppScope::kVppApp,
         [](const A& a, V) { return StringOrNull(a.app_store_url); }},
        {Stored(Prop("bundleId", EdmType::kString), C::kAppBundleId), true, AppScope::kVppApp,
         [](const A& a, V) { return StringOrNull(a.bundle_id); }},
        {account, true, AppScope::kVppApp,
         [](const A& a, V) { return json::value(json::string(a.token_account_type)); }},
        {Stored(Prop("vppTokenOrganizationName", EdmType::kString), C::kAppTokenOrganizationName), true,
         AppScope::kVppApp, [](const A& a, V) { return OptString(a.token_organization_name); }},
        {Stored(Prop("vppTokenAppleId", EdmType::kString), C::kAppTokenAppleId), true, AppScope::kVppApp,
         [](const A& a, V) { return OptString(a.token_apple_id); }},
        {Stored(Prop("vppTokenId", EdmType::kString), C::kAppTokenId), false, AppScope::kVppApp,
         [](const A& a, V) { return json::value(json::string(a.token_id)); }},
        {Stored(Prop("vppTokenDisplayName", EdmType::kString), C::kAppTokenDisplayName), false, AppScope::kVppApp,
         [](const A& a, V) { return OptString(a.token_display_name); }},
        // Beta's current schema has it on both VPP apps. The store keeps the token's
        // protocol, not the app's: the enum's default member, as Graph gives an app with none set.
        {constant(EnumProp("appleDeviceAppDeliveryProtocolType", "microsoft.graph.appleDeviceDeliveryProtocol",
                           kDeliveryProtocols)),
         false, AppScope::kVppApp, [](const A&, V) { return json::value("default"); }},
        {constant(Prop("licensingType", EdmType::kComplex)), true, AppScope::kVppApp,
         [](const A& a, V v) { return ComplexValue(LicensingTypeMembers(), a, v); },
         "microsoft.graph.vppLicensingType"},
        {constant(Prop("applicableDeviceType", EdmType::kComplex)), true, AppScope::kIosOnly,
         [](const A& a, V v) { return ComplexValue(IosDeviceTypeMembers(), a, v); }, "microsoft.graph.iosDeviceType"},
        // One name, a type per platform (spec §5.4); vppd revokes per token, so these stay empty.
        {revoke_results, false, AppScope::kIosOnly, empty_array, "microsoft.graph.iosVppAppRevokeLicensesActionResult"},
        {revoke_results, false, AppScope::kMacOnly, empty_array,
         "microsoft.graph.macOsVppAppRevokeLicensesActionResult"},
    };
  }();
  return kProps;
}

// The types of Graph's mobileApp hierarchy that vppd holds no rows of (all but the VPP
// apps), as the CSDL of each version declares them (msgraph-metadata, 2026-08; beta as
// its generated SDK models list them).
const std::vector<std::string>& ForeignAppTypes(ApiVersion version) {
  static const std::vector<std::string> kV1 = {"androidLobApp",
                                               "androidStoreApp",
                                               "iosLobApp",
                                               "iosStoreApp",
                                               "iosiPadOSWebClip",
                                               "macOSDmgApp",
                                               "macOSLobApp",
                                               "macOSMicrosoftDefenderApp",
                                               "macOSMicrosoftEdgeApp",
                                               "macOSOfficeSuiteApp",
                                               "managedAndroidLobApp",
                                               "managedAndroidStoreApp",
                                               "managedApp",
                                               "managedIOSLobApp",
                                               "managedIOSStoreApp",
                                               "managedMobileLobApp",
                                               "microsoftStoreForBusinessApp",
                                               "mobileLobApp",
                                               "webApp",
                                               "win32LobApp",
                                               "windowsAppX",
                                               "windowsMicrosoftEdgeApp",
                                               "windowsMobileMSI",
                                               "windowsUniversalAppX",
                                               "windowsWebApp"};
  static const std::vector<std::string> kBeta = {"androidForWorkApp",
                                                 "androidLobApp",
                                                 "androidManagedStoreApp",
                                                 "androidManagedStoreWebApp",
                                                 "androidStoreApp",
                                                 "iosiPadOSWebClip",
                                                 "iosLobApp",
                                                 "iosStoreApp",
                                                 "macOSDmgApp",
                                                 "macOSLobApp",
                                                 "macOSMicrosoftDefenderApp",
                                                 "macOSMicrosoftEdgeApp",
                                                 "macOSOfficeSuiteApp",
                                                 "macOSPkgApp",
                                                 "macOSWebClip",
                                                 "managedAndroidLobApp",
                                                 "managedAndroidStoreApp",
                                                 "managedApp",
                                                 "managedIOSLobApp",
                                                 "managedIOSStoreApp",
                                                 "managedMobileLobApp",
                                                 "microsoftStoreForBusinessApp",
                                                 "mobileLobApp",
                                                 "officeSuiteApp",
                                                 "webApp",
                                                 "win32CatalogApp",
                                                 "win32LobApp",
                                                 "windowsAppX",
                                                 "windowsMicrosoftEdgeApp",
                                                 "windowsMobileMSI",
                                                 "windowsPhone81AppX",
                                                 "windowsPhone81AppXBundle",
                                                 "windowsPhone81StoreApp",
                                                 "windowsPhoneXAP",
                                                 "windowsStoreApp",
                                                 "windowsUniversalAppX",
                                                 "windowsWebApp",
                                                 "winGetApp"};
  return version == ApiVersion::kBeta ? kBeta : kV1;
}

EntityDef MakeAppEntity(ApiVersion version) {
  EntityDef e;
  e.name = "mobileApp";
  e.table = store::Table::kMobileApps;
  // The platform column tells the two VPP app types apart; every app is a mobileApp.
  e.types = {HeldType("microsoft.graph.mobileApp", std::nullopt, {}),
             HeldType("microsoft.graph.iosVppApp", store::Column::kAppPlatform, "iOS")};
  if (version == ApiVersion::kBeta) {
    e.types.push_back(HeldType("microsoft.graph.macOsVppApp", store::Column::kAppPlatform, "macOS"));
  }
  for (const auto& p : AppProperties()) {
    if (version == ApiVersion::kV1 && !p.in_v1) continue;
    // What a derived-type path on each VPP app type may name.
    for (TypeDef& t : e.types) {
      if (!t.column) continue;
      const bool mac = t.value == "macOS";
      if (AppliesTo(p.scope, mac) &&
          std::find(t.property_names.begin(), t.property_names.end(), p.def.name) == t.property_names.end()) {
        t.property_names.push_back(p.def.name);
      }
    }
    if (e.Find(p.def.name) != nullptr) continue;  // declared once per platform
    e.properties.push_back(p.def);
  }
  // The rest of Graph's mobileApp hierarchy: valid in isof() and paths, never a row here.
  for (const std::string& name : ForeignAppTypes(version)) {
    TypeDef t;
    t.name = "microsoft.graph." + name;
    t.held = false;
    if (name.starts_with("managed")) {
      // Declared on managedApp (abstract), inherited by the managed* types.
      t.foreign_properties = {
          EnumProp("appAvailability", "microsoft.graph.managedAppAvailability", {"global", "lineOfBusiness"}),
          Prop("version", EdmType::kString)};
    }
    e.types.push_back(std::move(t));
  }
  e.expandable = {"assignments"};
  return e;
}

bool Selected(const std::vector<std::string>& select, std::string_view name) {
  return select.empty() || name == "id" || std::find(select.begin(), select.end(), name) != select.end();
}

// Assigned licenses: iosVppAppAssignedLicense with its device and user subtypes, and
// macOsVppAppAssignedLicense.
struct LicenseProperty {
  PropertyDef def;
  bool device_only;  // iosVppAppAssignedDeviceLicense (and vppd's macOS device licenses, see Schema())
  std::function<json::value(const store::LicenseAssignment&)> get;
};

const std::vector<LicenseProperty>& LicenseProperties() {
  using L = store::LicenseAssignment;
  static const std::vector<LicenseProperty> kProps = {
      {Prop("userEmailAddress", EdmType::kString), false, [](const L&) { return json::value(nullptr); }},
      // Apple knows a user only by the clientUserId the MDM gave it.
      {Prop("userId", EdmType::kString), false,
       [](const L& a) { return a.serial_number.empty() ? json::value(a.client_user_id) : json::value(nullptr); }},
      {Prop("userName", EdmType::kString), false, [](const L&) { return json::value(nullptr); }},
      {Prop("userPrincipalName", EdmType::kString), false, [](const L&) { return json::value(nullptr); }},
      // The serial number is all Apple says about a device.
      {Prop("deviceName", EdmType::kString), true, [](const L& a) { return json::value(a.serial_number); }},
      {Prop("managedDeviceId", EdmType::kString), true, [](const L&) { return json::value(nullptr); }},
  };
  return kProps;
}

// vppTokenLicenseSummary, an element of getLicensesForApp.
struct SummaryProperty {
  PropertyDef def;
  std::function<json::value(const service::LicenseSummary&)> get;
};

const std::vector<SummaryProperty>& SummaryProperties() {
  using S = service::LicenseSummary;
  static const std::vector<SummaryProperty> kProps = {
      {Prop("vppTokenId", EdmType::kString), [](const S& s) { return json::value(s.token_id); }},
      {Prop("appleId", EdmType::kString), [](const S& s) { return OptString(s.apple_id); }},
      {Prop("organizationName", EdmType::kString), [](const S& s) { return OptString(s.organization_name); }},
      {Prop("availableLicenseCount", EdmType::kInt32, false), [](const S& s) { return ClampInt32(s.available); }},
      {Prop("usedLicenseCount", EdmType::kInt32, false), [](const S& s) { return ClampInt32(s.used); }},
  };
  return kProps;
}

}  // namespace

const EntityDef& MobileAppEntity(ApiVersion version) {
  static const EntityDef kBeta = MakeAppEntity(ApiVersion::kBeta);
  static const EntityDef kV1 = MakeAppEntity(ApiVersion::kV1);
  return version == ApiVersion::kBeta ? kBeta : kV1;
}

std::string MobileAppType(const store::MobileApp& app) {
  return IsMac(app) ? "#microsoft.graph.macOsVppApp" : "#microsoft.graph.iosVppApp";
}

void WriteMobileApp(const store::MobileApp& app, ApiVersion version, const std::vector<std::string>& select,
                    json::object& out, const std::vector<std::string>& expand,
                    std::span<const store::AppAssignment> assignments) {
  const bool mac = IsMac(app);
  out.reserve(out.size() + AppProperties().size() + 1);
  out["@odata.type"] = MobileAppType(app);
  for (const auto& p : AppProperties()) {
    if (version == ApiVersion::kV1 && !p.in_v1) continue;
    if (!AppliesTo(p.scope, mac) || !Selected(select, p.def.name)) continue;
    if (p.only_when_selected && std::find(select.begin(), select.end(), p.def.name) == select.end()) continue;
    // isAssigned is not a column of the app: it is whether the app has assignments.
    out[p.def.name] = p.def.name == "isAssigned" ? json::value(!assignments.empty()) : p.get(app, version);
  }
  for (const std::string& name : expand) {  // "assignments", the one expandable
    json::array list;
    for (const store::AppAssignment& a : assignments) {
      json::object o;
      WriteAppAssignment(a, version, o);
      list.push_back(std::move(o));
    }
    out[name] = std::move(list);
  }
}

void WriteAppAssignment(const store::AppAssignment& a, ApiVersion version, json::object& out) {
  out["@odata.type"] = "#microsoft.graph.mobileAppAssignment";
  out["id"] = a.id;
  out["intent"] = a.intent;
  json::object target;
  target["@odata.type"] = a.target_type;
  target["deviceAndAppManagementAssignmentFilterId"] = nullptr;
  target["deviceAndAppManagementAssignmentFilterType"] = "none";
  if (a.group_id) target["groupId"] = *a.group_id;
  out["target"] = std::move(target);
  json::value settings = nullptr;
  if (a.settings_json != "{}") {
    boost::system::error_code ec;
    settings = json::parse(a.settings_json, ec);
    if (ec) settings = nullptr;  // the service wrote it: never malformed
  }
  out["settings"] = std::move(settings);
  if (version == ApiVersion::kBeta) {
    out["source"] = "direct";
    out["sourceId"] = nullptr;
  }
}

void WriteAssignedLicense(const store::MobileApp& app, const store::LicenseAssignment& a, json::object& out,
                          const service::DeviceLicenseHolder* holder) {
  const bool device = !a.serial_number.empty();
  if (IsMac(app)) {
    out["@odata.type"] = "#microsoft.graph.macOsVppAppAssignedLicense";
  } else {
    out["@odata.type"] =
        device ? "#microsoft.graph.iosVppAppAssignedDeviceLicense" : "#microsoft.graph.iosVppAppAssignedUserLicense";
  }
  // Stable id of the assignment within the app.
  const std::string hex = Sha256Hex(app.id + "\n" + a.client_user_id + "\n" + a.serial_number);
  out["id"] = hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
              hex.substr(20, 12);
  for (const auto& p : LicenseProperties()) {
    if (p.device_only && !device) continue;
    out[p.def.name] = p.get(a);
  }
  if (device && holder != nullptr && holder->managed_device_id) {
    out["managedDeviceId"] = *holder->managed_device_id;
    if (holder->device_name && !holder->device_name->empty()) out["deviceName"] = *holder->device_name;
    if (holder->user_id) out["userId"] = *holder->user_id;
  }
}

void WriteLicenseSummary(const service::LicenseSummary& summary, json::object& out) {
  out["@odata.type"] = "#microsoft.graph.vppTokenLicenseSummary";
  for (const auto& p : SummaryProperties()) out[p.def.name] = p.get(summary);
}

// --- the schema ------------------------------------------------------------

namespace {

constexpr char kNamespace[] = "microsoft.graph.";

std::string EdmTypeName(const PropertyDef& def, const std::string& complex_type) {
  std::string t;
  switch (def.type) {
    case EdmType::kString:
      t = "Edm.String";
      break;
    case EdmType::kBoolean:
      t = "Edm.Boolean";
      break;
    case EdmType::kInt32:
      t = "Edm.Int32";
      break;
    case EdmType::kInt64:
      t = "Edm.Int64";
      break;
    case EdmType::kDouble:
      t = "Edm.Double";
      break;
    case EdmType::kDateTimeOffset:
      t = "Edm.DateTimeOffset";
      break;
    case EdmType::kGuid:
      t = "Edm.Guid";
      break;
    case EdmType::kBinary:
      t = "Edm.Binary";
      break;
    case EdmType::kEnum:
      t = def.enum_type;
      break;
    case EdmType::kComplex:
      t = complex_type;
      break;
  }
  return def.collection ? "Collection(" + t + ")" : t;
}

// Collects the types of one version; enums come from the enum properties themselves.
class SchemaBuilder {
 public:
  SchemaType& Type(std::string name, bool entity, std::string base, bool is_abstract = false) {
    SchemaType t;
    t.name = std::move(name);
    t.entity = entity;
    t.base_type = std::move(base);
    t.is_abstract = is_abstract;
    types_.push_back(std::move(t));  // a deque: earlier references stay valid
    return types_.back();
  }

  // A complex type no property refers to but an operation returns.
  void KeepComplex(std::string name) { roots_.push_back(kNamespace + std::move(name)); }

  void Add(SchemaType& type, const PropertyDef& def, const std::string& complex_type = {}) {
    // The tables are constants; a row without its complex type is a programming error.
    if (def.type == EdmType::kComplex && complex_type.empty()) std::abort();
    type.properties.push_back({def.name, EdmTypeName(def, complex_type), def.nullable});
    if (def.type == EdmType::kEnum) AddEnum(def);
  }

  Schema Finish() && {
    // Entity types always; a complex type when a kept type's property refers to it,
    // when it is the base of a kept type, or when it derives from a kept type (a value
    // of the base may be one of it: tokenActionResults holds revoke results).
    std::vector<bool> kept(types_.size());
    for (std::size_t i = 0; i < types_.size(); ++i) {
      kept[i] =
          types_[i].entity || std::find(roots_.begin(), roots_.end(), kNamespace + types_[i].name) != roots_.end();
    }
    for (bool changed = true; changed;) {
      changed = false;
      for (std::size_t i = 0; i < types_.size(); ++i) {
        if (kept[i]) continue;
        const std::string qualified = kNamespace + types_[i].name;
        for (std::size_t j = 0; j < types_.size() && !kept[i]; ++j) {
          if (kept[j] && (RefersTo(types_[j], qualified) || types_[i].base_type == kNamespace + types_[j].name)) {
            kept[i] = changed = true;
          }
        }
      }
    }
    for (std::size_t i = 0; i < types_.size(); ++i) {
      if (kept[i]) schema_.types.push_back(std::move(types_[i]));
    }
    // Enums as far as the kept types use them.
    for (auto& e : enums_) {
      const std::string qualified = kNamespace + e.name;
      if (std::any_of(schema_.types.begin(), schema_.types.end(),
                      [&](const SchemaType& t) { return RefersTo(t, qualified); })) {
        schema_.enums.push_back(std::move(e));
      }
    }
    return std::move(schema_);
  }

 private:
  void AddEnum(const PropertyDef& def) {
    const std::string name = def.enum_type.substr(def.enum_type.rfind('.') + 1);
    for (const auto& e : enums_) {
      if (e.name != name) continue;
      if (e.members != def.enum_members) std::abort();  // two rows disagree about one enum: a programming error
      return;
    }
    enums_.push_back({name, def.enum_members});
  }

  // `type` has a property of type `qualified` (or a collection of it), or derives from it.
  static bool RefersTo(const SchemaType& type, const std::string& qualified) {
    if (type.base_type == qualified) return true;
    for (const auto& p : type.properties) {
      if (p.type == qualified || p.type == "Collection(" + qualified + ")") return true;
    }
    return false;
  }

  std::deque<SchemaType> types_;
  std::vector<SchemaEnum> enums_;
  std::vector<std::string> roots_;
  Schema schema_;
};

Schema MakeSchema(ApiVersion version) {
  const bool beta = version == ApiVersion::kBeta;
  SchemaBuilder b;

  SchemaType& entity = b.Type("entity", true, "", /*is_abstract=*/true);
  entity.key = "id";
  b.Add(entity, Prop("id", EdmType::kString, false));

  SchemaType& dam = b.Type("deviceAppManagement", true, "microsoft.graph.entity");
  dam.navigation = {{"vppTokens", "Collection(microsoft.graph.vppToken)"},
                    {"mobileApps", "Collection(microsoft.graph.mobileApp)"},
                    {"managedEBooks", "Collection(microsoft.graph.managedEBook)"}};

  SchemaType& token = b.Type("vppToken", true, "microsoft.graph.entity");
  for (const PropertyDef& def : VppTokenEntity(version).properties) {
    if (def.name == "id") continue;  // from entity
    const auto row = std::find_if(TokenProperties().begin(), TokenProperties().end(),
                                  [&](const TokenProperty& p) { return p.def.name == def.name; });
    b.Add(token, def, row->complex_type);
  }

  SchemaType& action = b.Type("vppTokenActionResult", false, "");
  SchemaType& revoke = b.Type("vppTokenRevokeLicensesActionResult", false, "microsoft.graph.vppTokenActionResult");
  for (const auto& p : ActionResultProperties()) b.Add(p.revoke_only ? revoke : action, p.def);

  SchemaType& summary = b.Type("vppTokenLicenseSummary", false, "");
  for (const auto& p : SummaryProperties()) b.Add(summary, p.def);
  // getLicensesForApp (beta only) returns summaries; no property refers to them.
  if (beta) b.KeepComplex("vppTokenLicenseSummary");

  SchemaType& mime = b.Type("mimeContent", false, "");
  b.Add(mime, Prop("type", EdmType::kString));
  b.Add(mime, Prop("value", EdmType::kBinary));

  SchemaType& licensing = b.Type("vppLicensingType", false, "");
  for (const auto& m : LicensingTypeMembers()) {
    if (beta || m.in_v1) b.Add(licensing, m.def);
  }
  SchemaType& device_type = b.Type("iosDeviceType", false, "");
  for (const auto& m : IosDeviceTypeMembers()) {
    if (beta || m.in_v1) b.Add(device_type, m.def);
  }
  SchemaType& ios_revoke = b.Type("iosVppAppRevokeLicensesActionResult", false, "");
  SchemaType& mac_revoke = b.Type("macOsVppAppRevokeLicensesActionResult", false, "");
  for (SchemaType* t : {&ios_revoke, &mac_revoke}) {
    // Graph's shape (spec §5.4): the token's revoke result plus who it was about.
    for (const auto& p : ActionResultProperties()) {
      b.Add(*t, p.def);
      if (p.def.name == "lastUpdatedDateTime") {
        b.Add(*t, Prop("userId", EdmType::kString));
        b.Add(*t, Prop("managedDeviceId", EdmType::kString));
      }
    }
  }

  SchemaType& app = b.Type("mobileApp", true, "microsoft.graph.entity", /*is_abstract=*/true);
  SchemaType& ios = b.Type("iosVppApp", true, "microsoft.graph.mobileApp");
  SchemaType* mac = beta ? &b.Type("macOsVppApp", true, "microsoft.graph.mobileApp") : nullptr;
  for (const auto& p : AppProperties()) {
    if ((!beta && !p.in_v1) || p.def.name == "id") continue;
    if (p.scope == AppScope::kMobileApp) {
      b.Add(app, p.def, p.complex_type);
      continue;
    }
    if (p.scope != AppScope::kMacOnly) b.Add(ios, p.def, p.complex_type);
    if (mac != nullptr && p.scope != AppScope::kIosOnly) b.Add(*mac, p.def, p.complex_type);
  }

  if (beta) {
    ios.navigation = {{"assignedLicenses", "Collection(microsoft.graph.iosVppAppAssignedLicense)"}};
    mac->navigation = {{"assignedLicenses", "Collection(microsoft.graph.macOsVppAppAssignedLicense)"}};
    SchemaType& ios_license = b.Type("iosVppAppAssignedLicense", true, "microsoft.graph.entity");
    SchemaType& ios_device = b.Type("iosVppAppAssignedDeviceLicense", true, "microsoft.graph.iosVppAppAssignedLicense");
    b.Type("iosVppAppAssignedUserLicense", true, "microsoft.graph.iosVppAppAssignedLicense");
    // Graph's macOsVppAppAssignedLicense has no device properties, but Apple licenses
    // Macs by serial number too; vppd shows it as on iOS rather than dropping it.
    SchemaType& mac_license = b.Type("macOsVppAppAssignedLicense", true, "microsoft.graph.entity");
    for (const auto& p : LicenseProperties()) {
      b.Add(p.device_only ? ios_device : ios_license, p.def);
      b.Add(mac_license, p.def);
    }
  }
  return std::move(b).Finish();
}

}  // namespace

const Schema& ModelSchema(ApiVersion version) {
  static const Schema kBeta = MakeSchema(ApiVersion::kBeta);
  static const Schema kV1 = MakeSchema(ApiVersion::kV1);
  return version == ApiVersion::kBeta ? kBeta : kV1;
}

Result<service::TokenChanges> ReadTokenChanges(const json::object& body, ApiVersion version) {
  service::TokenChanges c;
  const EntityDef& entity = VppTokenEntity(version);
  for (const auto& [key_sv, value] : body) {
    const std::string key(key_sv);
    if (key == "@odata.type") {
      if (!value.is_string() ||
          (value.get_string() != "#microsoft.graph.vppToken" && value.get_string() != "microsoft.graph.vppToken")) {
        return Fail(Error::InvalidArgument("'@odata.type' must be '#microsoft.graph.vppToken'.", "@odata.type"));
      }
      continue;
    }
    // Instance and property annotations ("@odata.etag", "displayName@odata.type") carry no data here.
    if (key.find('@') != std::string::npos) continue;
    const PropertyDef* def = entity.Find(key);
    if (def == nullptr) {
      return Fail(Error::InvalidArgument("Property '" + key + "' does not exist on type 'microsoft.graph.vppToken'" +
                                             (version == ApiVersion::kV1 ? " in v1.0." : "."),
                                         key));
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
