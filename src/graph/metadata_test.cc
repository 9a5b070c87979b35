// $metadata against the writers it describes: every property the JSON writers emit is
// declared on the type the object names (or a base), with a compatible EDM type, and
// every enum value emitted is a member; the document is well-formed XML with the
// expected structure; v1.0 declares nothing beta-only.
#include "graph/metadata.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "graph/json_writer.h"
#include "graph/model.h"

namespace vppd::graph {
namespace {
namespace json = boost::json;

const SchemaType* FindType(const Schema& s, std::string_view qualified) {
  if (!qualified.starts_with("microsoft.graph.")) return nullptr;
  const std::string_view name = qualified.substr(16);
  for (const auto& t : s.types) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const SchemaEnum* FindEnum(const Schema& s, std::string_view qualified) {
  for (const auto& e : s.enums) {
    if ("microsoft.graph." + e.name == qualified) return &e;
  }
  return nullptr;
}

// The property `name` on `type` or one of its bases.
const SchemaProperty* FindProperty(const Schema& s, const SchemaType* type, std::string_view name) {
  for (; type != nullptr; type = FindType(s, type->base_type)) {
    for (const auto& p : type->properties) {
      if (p.name == name) return &p;
    }
  }
  return nullptr;
}

std::vector<std::string> AllProperties(const Schema& s, const SchemaType* type) {
  std::vector<std::string> out;
  for (; type != nullptr; type = FindType(s, type->base_type)) {
    for (const auto& p : type->properties) out.push_back(p.name);
  }
  return out;
}

// Checks `value` against an EDM type; reports the first problem with its JSON path.
void CheckValue(const Schema& s, const std::string& type, bool nullable, const json::value& v, const std::string& path);

void CheckObject(const Schema& s, const std::string& declared_type, const json::object& o, const std::string& path,
                 bool complete) {
  std::string type = declared_type;
  if (const json::value* t = o.if_contains("@odata.type")) {
    ASSERT_TRUE(t->is_string()) << path;
    std::string_view named = t->get_string();
    if (named.starts_with("#")) named.remove_prefix(1);
    type = std::string(named);
  }
  const SchemaType* st = FindType(s, type);
  ASSERT_NE(st, nullptr) << path << ": type " << type << " is not declared";
  for (const auto& [key, value] : o) {
    if (key.starts_with("@")) continue;
    const SchemaProperty* p = FindProperty(s, st, key);
    ASSERT_NE(p, nullptr) << path << ": '" << key << "' is emitted but not declared on " << type;
    CheckValue(s, p->type, p->nullable, value, path + "." + std::string(key));
  }
  if (complete) {
    for (const auto& name : AllProperties(s, st)) {
      EXPECT_TRUE(o.contains(name)) << path << ": " << type << "." << name << " is declared but not emitted";
    }
  }
}

void CheckValue(const Schema& s, const std::string& type, bool nullable, const json::value& v,
                const std::string& path) {
  if (v.is_null()) {
    EXPECT_TRUE(nullable) << path << " is null but not nullable";
    return;
  }
  if (type.starts_with("Collection(")) {
    ASSERT_TRUE(v.is_array()) << path;
    const std::string element = type.substr(11, type.size() - 12);
    for (const auto& item : v.get_array()) CheckValue(s, element, false, item, path + "[]");
    return;
  }
  if (type == "Edm.String") {
    EXPECT_TRUE(v.is_string()) << path;
  } else if (type == "Edm.Boolean") {
    EXPECT_TRUE(v.is_bool()) << path;
  } else if (type == "Edm.Int32") {
    ASSERT_TRUE(v.is_int64()) << path;
    EXPECT_TRUE(v.get_int64() >= INT32_MIN && v.get_int64() <= INT32_MAX) << path;
  } else if (type == "Edm.DateTimeOffset") {
    ASSERT_TRUE(v.is_string()) << path;
    EXPECT_TRUE(ParseIso8601(v.get_string()).has_value()) << path << " = " << v;
  } else if (const SchemaEnum* e = FindEnum(s, type)) {
    ASSERT_TRUE(v.is_string()) << path;
    EXPECT_NE(std::find(e->members.begin(), e->members.end(), v.get_string()), e->members.end())
        << path << " = " << v << " is not a member of " << type;
  } else if (FindType(s, type) != nullptr) {
    ASSERT_TRUE(v.is_object()) << path;
    CheckObject(s, type, v.get_object(), path, /*complete=*/true);
  } else {
    ADD_FAILURE() << path << ": unknown type " << type;
  }
}

store::VppToken FullToken(const std::string& state) {
  store::VppToken t;
  t.id = "9ceb2f92-2f92-9ceb-922f-eb9c922feb9c";
  t.organization_name = "Contoso";
  t.account_type = "education";
  t.apple_id = "admin@contoso.com";
  t.expiration = 1'900'000'000'000'000;
  t.last_sync = 0;  // never: rendered as 0001-01-01
  t.last_modified = 1'700'000'000'123'456;
  t.state = state;
  t.last_sync_status = "completed";
  t.country_or_region = "US";
  t.display_name = "Main";
  t.location_name = "Campus";
  t.role_scope_tag_ids = {"0"};
  t.delivery_protocol = "declarativeDeviceManagement";
  t.last_app_count = 12;
  store::TokenActionResult sync;
  sync.action_name = "syncLicenses";
  sync.action_state = "done";
  store::TokenActionResult revoke;
  revoke.action_name = "revokeLicenses";
  revoke.action_state = "failed";
  revoke.is_revoke_result = true;
  revoke.failure_reason = "appleFailure";
  t.action_results = {sync, revoke};
  return t;
}

store::MobileApp App(const std::string& platform) {
  store::MobileApp a;
  a.id = "app-" + platform;
  a.token_id = "9ceb2f92-2f92-9ceb-922f-eb9c922feb9c";
  a.platform = platform;
  a.display_name = "Pages";
  a.bundle_id = "com.apple.Pages";
  a.total_licenses = 5'000'000'000;  // clamped to Int32
  a.device_assignable = true;
  a.token_organization_name = "Contoso";
  return a;
}

// The writer must print what boost::json::serialize prints for the same values.
TEST(JsonWriterTest, MatchesBoostJsonSerialize) {
  const std::string strings[] = {"",
                                 "plain",
                                 "quote \" and backslash \\",
                                 "\b\f\n\r\t",
                                 std::string("nul \0 and \x01 \x1f \x7f", 16),
                                 "utf-8: \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                                 "slash / and <script>"};
  json::object expected;
  json::array list;
  std::string text;
  JsonWriter w(text);
  w.BeginObject();
  for (std::size_t i = 0; i < std::size(strings); ++i) {
    const std::string key = "k" + std::to_string(i) + strings[i];
    expected[key] = strings[i];
    w.Key(key);
    w.String(strings[i]);
  }
  for (std::int64_t n : {std::int64_t{0}, std::int64_t{-1}, std::int64_t{2147483647}, INT64_MIN, INT64_MAX}) {
    list.emplace_back(n);
  }
  list.emplace_back(true);
  list.emplace_back(false);
  list.emplace_back(nullptr);
  list.emplace_back(json::object{});
  list.emplace_back(json::array{});
  expected["list"] = list;
  w.Key("list");
  w.BeginArray();
  for (std::int64_t n : {std::int64_t{0}, std::int64_t{-1}, std::int64_t{2147483647}, INT64_MIN, INT64_MAX}) w.Int(n);
  w.Bool(true);
  w.Bool(false);
  w.Null();
  w.BeginObject();
  w.EndObject();
  w.Raw("[]");
  w.EndArray();
  w.EndObject();
  EXPECT_EQ(text, json::serialize(expected));
}

// Every byte value at every position of a 17-byte string: the word-at-a-time scan
// must catch each character that needs escaping wherever it falls.
TEST(JsonWriterTest, EscapesEveryByteAtEveryPosition) {
  for (int b = 0; b < 256; ++b) {
    for (std::size_t at = 0; at < 17; ++at) {
      std::string s(17, 'a');
      s[at] = static_cast<char>(b);
      std::string text;
      JsonWriter w(text);
      w.String(s);
      ASSERT_EQ(text, json::serialize(json::string(s))) << "byte " << b << " at " << at;
    }
  }
}

TEST(MetadataTest, EveryEmittedTokenPropertyIsDeclared) {
  for (ApiVersion v : {ApiVersion::kBeta, ApiVersion::kV1}) {
    SCOPED_TRACE(VersionSegment(v));
    const Schema& s = ModelSchema(v);
    for (const char* state : {"valid", "duplicateLocationId", "assignedToExternalMDM"}) {
      // The text that goes on the wire, parsed back.
      std::string text;
      JsonWriter w(text);
      w.BeginObject();
      WriteVppTokenMembers(FullToken(state), v, {}, w);
      w.EndObject();
      boost::system::error_code ec;
      json::value parsed = json::parse(text, ec);
      ASSERT_FALSE(ec) << text;
      ASSERT_TRUE(parsed.is_object()) << text;
      const json::object& o = parsed.get_object();
      CheckObject(s, "microsoft.graph.vppToken", o, "vppToken", /*complete=*/true);
    }
  }
}

TEST(MetadataTest, EveryEmittedAppPropertyIsDeclared) {
  for (ApiVersion v : {ApiVersion::kBeta, ApiVersion::kV1}) {
    SCOPED_TRACE(VersionSegment(v));
    const Schema& s = ModelSchema(v);
    for (const char* platform : {"iOS", "macOS"}) {
      if (v == ApiVersion::kV1 && std::string(platform) == "macOS") continue;  // v1.0 lists iOS apps only
      // Every property, including those written only when selected (largeIcon).
      std::vector<std::string> all;
      for (const PropertyDef& p : MobileAppEntity(v).properties) all.push_back(p.name);
      json::object o;
      WriteMobileApp(App(platform), v, all, o);
      CheckObject(s, "microsoft.graph.mobileApp", o, platform, /*complete=*/true);
    }
  }
}

TEST(MetadataTest, LargeIconIsNullAndAssignmentsExpandEmpty) {
  for (ApiVersion v : {ApiVersion::kBeta, ApiVersion::kV1}) {
    // Listed without the icon, as Graph lists apps; null when selected.
    json::object o;
    WriteMobileApp(App("iOS"), v, {}, o);
    EXPECT_FALSE(o.contains("largeIcon"));
    EXPECT_FALSE(o.contains("assignments"));
    json::object selected;
    WriteMobileApp(App("iOS"), v, {"largeIcon"}, selected);
    ASSERT_TRUE(selected.contains("largeIcon"));
    EXPECT_TRUE(selected.at("largeIcon").is_null());
    if (v == ApiVersion::kBeta) {
      EXPECT_EQ(o.at("appleDeviceAppDeliveryProtocolType"), "default");
    }
    json::object expanded;
    WriteMobileApp(App("macOS"), v, {"displayName"}, expanded, {"assignments"});
    EXPECT_EQ(json::serialize(expanded.at("assignments")), "[]");
    EXPECT_EQ(expanded.size(), 4u);  // @odata.type, id, displayName, assignments
  }
}

TEST(MetadataTest, LicensesAndSummariesAreDeclared) {
  const Schema& s = ModelSchema(ApiVersion::kBeta);
  for (const char* platform : {"iOS", "macOS"}) {
    store::LicenseAssignment user{"1", "STDQ", "client-user", ""};
    store::LicenseAssignment device{"1", "STDQ", "", "C02XK0JHJG5H"};
    for (const auto& a : {user, device}) {
      json::object o;
      WriteAssignedLicense(App(platform), a, o);
      CheckObject(s, "", o, std::string(platform) + " license", /*complete=*/false);
    }
  }
  service::LicenseSummary summary{"t1", std::nullopt, "Contoso", 3'000'000'000, 2};
  json::object o;
  WriteLicenseSummary(summary, o);
  CheckObject(s, "", o, "summary", /*complete=*/true);
}

TEST(MetadataTest, EnumValuesAreTheirPositions) {
  const Schema& s = ModelSchema(ApiVersion::kBeta);
  const SchemaEnum* state = FindEnum(s, "microsoft.graph.vppTokenState");
  ASSERT_NE(state, nullptr);
  EXPECT_EQ(state->members, (std::vector<std::string>{"unknown", "valid", "expired", "invalid", "assignedToExternalMDM",
                                                      "duplicateLocationId"}));
  const std::string& doc = MetadataDocument(ApiVersion::kBeta);
  EXPECT_NE(doc.find(R"x(<Member Name="duplicateLocationId" Value="5" />)x"), std::string::npos);
  EXPECT_NE(doc.find(R"x(<Member Name="expiredApplePushNotificationCertificate" Value="4" />)x"), std::string::npos);
  EXPECT_NE(doc.find(R"x(<Member Name="notSupported" Value="6" />)x"), std::string::npos);
}

TEST(MetadataTest, V1DeclaresNothingBetaOnly) {
  const Schema& s = ModelSchema(ApiVersion::kV1);
  EXPECT_EQ(FindType(s, "microsoft.graph.macOsVppApp"), nullptr);
  EXPECT_EQ(FindType(s, "microsoft.graph.iosVppAppAssignedLicense"), nullptr);
  EXPECT_EQ(FindType(s, "microsoft.graph.vppTokenActionResult"), nullptr);
  EXPECT_EQ(FindType(s, "microsoft.graph.vppTokenLicenseSummary"), nullptr);
  EXPECT_EQ(FindEnum(s, "microsoft.graph.appleDeviceDeliveryProtocol"), nullptr);
  const SchemaType* token = FindType(s, "microsoft.graph.vppToken");
  ASSERT_NE(token, nullptr);
  for (const char* beta_only :
       {"displayName", "locationName", "tokenActionResults", "roleScopeTagIds", "claimTokenManagementFromExternalMdm",
        "dataSharingConsentGranted", "appleDeviceAppDeliveryProtocolType"}) {
    EXPECT_EQ(FindProperty(s, token, beta_only), nullptr) << beta_only;
  }
  const SchemaEnum* state = FindEnum(s, "microsoft.graph.vppTokenState");
  ASSERT_NE(state, nullptr);
  EXPECT_EQ(std::count(state->members.begin(), state->members.end(), "duplicateLocationId"), 0);
  const SchemaType* ios = FindType(s, "microsoft.graph.iosVppApp");
  ASSERT_NE(ios, nullptr);
  EXPECT_TRUE(ios->navigation.empty());
  EXPECT_EQ(FindProperty(s, ios, "vppTokenId"), nullptr);

  const std::string& doc = MetadataDocument(ApiVersion::kV1);
  EXPECT_NE(doc.find(R"x(<Action Name="syncLicenses" IsBound="true">)x"), std::string::npos);
  for (const char* op : {"revokeLicenses", "syncLicenseCounts", "getLicensesForApp"}) {
    EXPECT_EQ(doc.find(op), std::string::npos) << op;
  }
  EXPECT_EQ(doc.find("supportUserLicensing"), std::string::npos);
  EXPECT_NE(doc.find("supportsUserLicensing"), std::string::npos);
}

// Element nesting of an XML document, as a list of "open/close" events; fails on a
// mismatched or unclosed tag. Enough for a document without comments or CDATA.
std::vector<std::string> Elements(const std::string& xml) {
  std::vector<std::string> stack, opened;
  std::size_t pos = 0;
  while ((pos = xml.find('<', pos)) != std::string::npos) {
    const std::size_t end = xml.find('>', pos);
    if (end == std::string::npos) {
      ADD_FAILURE() << "unterminated tag at " << pos;
      return {};
    }
    std::string tag = xml.substr(pos + 1, end - pos - 1);
    pos = end + 1;
    if (tag.starts_with("?")) continue;
    if (tag.starts_with("/")) {
      if (stack.empty() || stack.back() != tag.substr(1)) {
        ADD_FAILURE() << "</" << tag.substr(1) << "> closes " << (stack.empty() ? "nothing" : stack.back());
        return {};
      }
      stack.pop_back();
      continue;
    }
    const std::string name = tag.substr(0, tag.find_first_of(" />"));
    opened.push_back(name);
    if (!tag.ends_with("/")) stack.push_back(name);
  }
  EXPECT_TRUE(stack.empty()) << "unclosed " << (stack.empty() ? "" : stack.back());
  return opened;
}

TEST(MetadataTest, DocumentIsWellFormedAndComplete) {
  const std::string& doc = MetadataDocument(ApiVersion::kBeta);
  const auto elements = Elements(doc);
  ASSERT_FALSE(elements.empty());
  EXPECT_EQ(elements.front(), "edmx:Edmx");
  for (
      const char* needle : {
          R"x(<Schema Namespace="microsoft.graph" xmlns="http://docs.oasis-open.org/odata/ns/edm">)x",
          R"x(<EntityType Name="entity" Abstract="true">)x",
          R"x(<PropertyRef Name="id" />)x",
          R"x(<EntityType Name="vppToken" BaseType="microsoft.graph.entity">)x",
          R"x(<EntityType Name="mobileApp" BaseType="microsoft.graph.entity" Abstract="true">)x",
          R"x(<EntityType Name="iosVppApp" BaseType="microsoft.graph.mobileApp">)x",
          R"x(<EntityType Name="macOsVppApp" BaseType="microsoft.graph.mobileApp">)x",
          R"x(<EntityType Name="iosVppAppAssignedDeviceLicense" BaseType="microsoft.graph.iosVppAppAssignedLicense">)x",
          R"x(<ComplexType Name="vppTokenRevokeLicensesActionResult" BaseType="microsoft.graph.vppTokenActionResult">)x",
          R"x(<Property Name="state" Type="microsoft.graph.vppTokenState" Nullable="false" />)x",
          R"x(<Property Name="tokenActionResults" Type="Collection(microsoft.graph.vppTokenActionResult)" />)x",
          R"x(<Property Name="roleScopeTagIds" Type="Collection(Edm.String)" />)x",
          // Graph's mobileApp.largeIcon, null for a VPP app.
          R"x(<Property Name="largeIcon" Type="microsoft.graph.mimeContent" />)x",
          R"x(<ComplexType Name="mimeContent">)x",
          R"x(<Property Name="value" Type="Edm.Binary" />)x",
          R"x(<NavigationProperty Name="vppTokens" Type="Collection(microsoft.graph.vppToken)" ContainsTarget="true" />)x",
          R"x(<NavigationProperty Name="mobileApps" Type="Collection(microsoft.graph.mobileApp)" ContainsTarget="true" />)x",
          R"x(<NavigationProperty Name="assignedLicenses" Type="Collection(microsoft.graph.iosVppAppAssignedLicense)" ContainsTarget="true" />)x",
          R"x(<Parameter Name="notifyManagedDevices" Type="Edm.Boolean" Nullable="false" />)x",
          R"x(<Parameter Name="bundleId" Type="Edm.String" Unicode="false" />)x",
          R"x(<ReturnType Type="Collection(microsoft.graph.vppTokenLicenseSummary)" />)x",
          R"x(<Function Name="getLicensesForApp" IsBound="true">)x",
          R"x(<Singleton Name="deviceAppManagement" Type="microsoft.graph.deviceAppManagement" />)x",
      }) {
    EXPECT_NE(doc.find(needle), std::string::npos) << needle;
  }
  // Bases come before the types derived from them, and each type once.
  std::set<std::string> seen;
  for (const auto& t : ModelSchema(ApiVersion::kBeta).types) {
    EXPECT_TRUE(seen.insert(t.name).second) << t.name << " twice";
    if (!t.base_type.empty()) {
      EXPECT_TRUE(seen.contains(t.base_type.substr(16))) << t.name << " before its base";
    }
  }
  Elements(MetadataDocument(ApiVersion::kV1));
}

// The element `<tag Name="name" ...>...</tag>` of a CSDL text, each line trimmed, with
// the alias `graph.` written out; "" when absent.
std::string CsdlElement(const std::string& xml, const std::string& tag, const std::string& name) {
  const std::size_t start = xml.find("<" + tag + " Name=\"" + name + "\"");
  if (start == std::string::npos) return "";
  const std::string close = "</" + tag + ">";
  const std::size_t end = xml.find(close, start);
  if (end == std::string::npos) return "";
  std::istringstream in(xml.substr(start, end + close.size() - start));
  std::string out;
  for (std::string line; std::getline(in, line);) {
    line.erase(0, line.find_first_not_of(' '));
    for (const char* before : {"\"graph.", "(graph."}) {
      for (std::size_t p = 0; (p = line.find(before, p)) != std::string::npos; p += 17) {
        line.replace(p + 1, 6, "microsoft.graph.");
      }
    }
    out += line + "\n";
  }
  return out;
}

// getExpiringVppTokenCount is declared in beta as Graph's beta CSDL declares it (the
// fixture holds Graph's declaration), bound to the depOnboardingSettings collection,
// with a path to that collection from the container; v1.0 declares none of it.
TEST(MetadataTest, ExpiringVppTokenCountIsDeclaredAsGraphDeclaresIt) {
  std::ifstream in(std::string(VPPD_GRAPH_TESTDATA) + "/graph_vpp_apps_beta.xml");
  ASSERT_TRUE(in);
  const std::string graph((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string want = CsdlElement(graph, "Function", "getExpiringVppTokenCount");
  ASSERT_FALSE(want.empty());
  const std::string& beta = MetadataDocument(ApiVersion::kBeta);
  EXPECT_EQ(CsdlElement(beta, "Function", "getExpiringVppTokenCount"), want);
  for (
      const char* needle : {
          R"x(<EntityType Name="depOnboardingSetting" BaseType="microsoft.graph.entity" />)x",
          R"x(<EntityType Name="deviceManagement" BaseType="microsoft.graph.entity">)x",
          R"x(<NavigationProperty Name="depOnboardingSettings" Type="Collection(microsoft.graph.depOnboardingSetting)" ContainsTarget="true" />)x",
          R"x(<Singleton Name="deviceManagement" Type="microsoft.graph.deviceManagement" />)x",
      }) {
    EXPECT_NE(beta.find(needle), std::string::npos) << needle;
  }
  Elements(beta);
  const std::string& v1 = MetadataDocument(ApiVersion::kV1);
  // (v1.0 has deviceManagement too, for managedDevices, without depOnboardingSettings.)
  for (const char* beta_only : {"getExpiringVppTokenCount", "depOnboardingSetting"}) {
    EXPECT_EQ(v1.find(beta_only), std::string::npos) << beta_only;
  }
}

TEST(MetadataTest, Response) {
  http::Request req;
  req.method = "GET";
  req.target = "/beta/$metadata";
  auto r = MetadataResponse(req, ApiVersion::kV1, {});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, MetadataDocument(ApiVersion::kV1));
  EXPECT_EQ(http::FindHeader(r->headers, "Content-Type").value_or(""), "application/xml; charset=utf-8");
  EXPECT_EQ(http::FindHeader(r->headers, "OData-Version").value_or(""), "4.0");

  const std::vector<std::string> rest = {"vppTokens"};
  auto extra = MetadataResponse(req, ApiVersion::kBeta, rest);
  ASSERT_FALSE(extra.has_value());
  EXPECT_EQ(extra.error().code, Code::kInvalidArgument);
  EXPECT_EQ(extra.error().target, "vppTokens");

  req.method = "POST";
  auto post = MetadataResponse(req, ApiVersion::kBeta, {});
  ASSERT_TRUE(post.has_value());
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(http::FindHeader(post->headers, "Allow").value_or(""), "GET");
}

// The container comes from the route table: the directory's collections are entity sets
// (addressed by key under them), deviceAppManagement and deviceManagement singletons; each
// names a type the document declares.
TEST(MetadataTest, ContainerMembersComeFromTheRouteTable) {
  for (ApiVersion version : {ApiVersion::kBeta, ApiVersion::kV1}) {
    const ContainerMembers members = RoutedContainer(version);
    EXPECT_EQ(members.singletons, (std::vector<std::string>{"deviceAppManagement", "deviceManagement"}));
    EXPECT_EQ(members.entity_sets, (std::vector<std::string>{"users", "groups", "devices"}));
    const std::string& doc = MetadataDocument(version);
    for (const char* set : {"users", "groups", "devices"}) {
      const std::string type(set, std::strlen(set) - 1);
      EXPECT_NE(doc.find("<EntitySet Name=\"" + std::string(set) + "\" EntityType=\"microsoft.graph." + type + "\""),
                std::string::npos)
          << set;
      EXPECT_NE(doc.find("<EntityType Name=\"" + type + "\""), std::string::npos) << type;
    }
    EXPECT_NE(doc.find(R"(<Singleton Name="deviceManagement" Type="microsoft.graph.deviceManagement")"),
              std::string::npos);
  }
}

// managedEBooks (issue 17): the types, the enums they use and the assign action are
// declared in both versions, reached from deviceAppManagement; beta's iosVppEBook adds
// roleScopeTagIds; the document stays well-formed.
TEST(MetadataTest, DeclaresManagedEBooks) {
  for (ApiVersion version : {ApiVersion::kBeta, ApiVersion::kV1}) {
    const std::string& doc = MetadataDocument(version);
    for (
        const char* needle : {
            R"x(<NavigationProperty Name="managedEBooks" Type="Collection(microsoft.graph.managedEBook)" ContainsTarget="true" />)x",
            R"x(<EntityType Name="managedEBook" BaseType="microsoft.graph.entity" Abstract="true">)x",
            R"x(<EntityType Name="iosVppEBook" BaseType="microsoft.graph.managedEBook">)x",
            R"x(<Property Name="vppTokenId" Type="Edm.Guid" Nullable="false" />)x",
            R"x(<Property Name="genres" Type="Collection(Edm.String)" />)x",
            R"x(<Property Name="largeCover" Type="microsoft.graph.mimeContent" />)x",
            R"x(<EntityType Name="iosVppEBookAssignment" BaseType="microsoft.graph.managedEBookAssignment" />)x",
            R"x(<Property Name="installIntent" Type="microsoft.graph.installIntent" Nullable="false" />)x",
            R"x(<ComplexType Name="groupAssignmentTarget" BaseType="microsoft.graph.deviceAndAppManagementAssignmentTarget">)x",
            R"x(<NavigationProperty Name="userStateSummary" Type="Collection(microsoft.graph.userInstallStateSummary)" ContainsTarget="true" />)x",
            R"x(<Property Name="installState" Type="microsoft.graph.installState" Nullable="false" />)x",
            R"x(<EnumType Name="installIntent">)x",
            R"x(<Action Name="assign" IsBound="true">)x",
            R"x(<Parameter Name="bindingParameter" Type="microsoft.graph.managedEBook" />)x",
        }) {
      EXPECT_NE(doc.find(needle), std::string::npos) << needle;
    }
    const std::string ios = CsdlElement(doc, "EntityType", "iosVppEBook");
    EXPECT_EQ(ios.find("roleScopeTagIds") != std::string::npos, version == ApiVersion::kBeta) << ios;
    Elements(doc);
  }
}

}  // namespace
}  // namespace vppd::graph

namespace vppd::graph {
namespace {

// Issue 17: the revokes by app, person or device, bound as Graph binds them (beta only).
TEST(MetadataTest, DeclaresTheRevokeActionsInBetaOnly) {
  const std::string& beta = MetadataDocument(ApiVersion::kBeta);
  for (const char* type : {"microsoft.graph.iosVppApp", "microsoft.graph.macOsVppApp"}) {
    for (const char* op : {"revokeAllLicenses", "revokeUserLicense", "revokeDeviceLicense"}) {
      const std::string action = std::string(R"x(<Action Name=")x") + op + R"x(" IsBound="true">)x" + "\n" +
                                 R"x(        <Parameter Name="bindingParameter" Type=")x" + type + R"x(" />)x";
      EXPECT_NE(beta.find(action), std::string::npos) << op << " on " << type;
    }
  }
  EXPECT_NE(beta.find(R"x(<Action Name="revokeAppleVppLicenses" IsBound="true">)x"
                      "\n"
                      R"x(        <Parameter Name="bindingParameter" Type="microsoft.graph.managedDevice" />)x"),
            std::string::npos);
  EXPECT_NE(beta.find(R"x(<Parameter Name="userId" Type="Edm.String" />)x"), std::string::npos);
  EXPECT_NE(beta.find(R"x(<Parameter Name="managedDeviceId" Type="Edm.String" />)x"), std::string::npos);
  const std::string& v1 = MetadataDocument(ApiVersion::kV1);
  for (const char* op : {"revokeAllLicenses", "revokeUserLicense", "revokeDeviceLicense", "revokeAppleVppLicenses"}) {
    EXPECT_EQ(v1.find(op), std::string::npos) << op;
  }
}

TEST(MetadataTest, DeclaresVppdsUntrackedReportInItsOwnSchemaInBetaOnly) {
  const std::string& beta = MetadataDocument(ApiVersion::kBeta);
  const std::size_t schema =
      beta.find(R"x(<Schema Namespace="vppd" xmlns="http://docs.oasis-open.org/odata/ns/edm">)x");
  ASSERT_NE(schema, std::string::npos);
  // After Graph's schema, not inside it.
  EXPECT_GT(schema, beta.find("</Schema>"));
  for (const char* needle : {
           R"x(<Term Name="untrackedLicenseCount" Type="Edm.Int64" AppliesTo="EntityType" Nullable="false" />)x",
           R"x(<Parameter Name="bindingParameter" Type="microsoft.graph.mobileApp" />)x",
           R"x(<Parameter Name="bindingParameter" Type="microsoft.graph.managedEBook" />)x",
           R"x(<ReturnType Type="Collection(vppd.untrackedLicense)" />)x",
           R"x(<ComplexType Name="untrackedLicense">)x",
           R"x(<Property Name="serialNumber" Type="Edm.String" />)x",
           R"x(<Property Name="clientUserId" Type="Edm.String" />)x",
       }) {
    EXPECT_NE(beta.find(needle, schema), std::string::npos) << needle;
  }
  Elements(beta);  // still well-formed
  EXPECT_EQ(MetadataDocument(ApiVersion::kV1).find("vppd"), std::string::npos);
}

}  // namespace
}  // namespace vppd::graph
