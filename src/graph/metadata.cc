#include "graph/metadata.h"

#include <cstring>
#include <string>
#include <vector>

#include "graph/errors.h"

namespace vppd::graph {
namespace {

// A bound operation (on vppTokens: spec §1.1; managedEBook's assign; revokes: issue 17). api.cc routes them; this is
// their declaration. The binding parameter comes first, as CSDL requires.
struct Parameter {
  const char* name;
  const char* type;
  bool nullable = true;
  bool unicode = true;  // Unicode="false" is what Graph declares on bundleId
};

struct Operation {
  bool is_function;  // Function (GET, no side effects) or Action (POST)
  const char* name;
  bool beta_only;
  std::vector<Parameter> parameters;
  const char* return_type;  // nullptr: none
  bool return_nullable = true;
};

const std::vector<Operation>& Operations() {
  static const std::vector<Operation> kOperations = {
      {false, "syncLicenses", false, {{"bindingParameter", "microsoft.graph.vppToken"}}, "microsoft.graph.vppToken"},
      {false,
       "revokeLicenses",
       true,
       {{"bindingParameter", "microsoft.graph.vppToken"},
        {"notifyManagedDevices", "Edm.Boolean", /*nullable=*/false},
        {"revokeUntrackedLicenses", "Edm.Boolean"}},
       nullptr},
      {false, "syncLicenseCounts", true, {{"bindingParameter", "Collection(microsoft.graph.vppToken)"}}, nullptr},
      // managedEBooks/{id}/assign (managed_ebooks.cc).
      {false,
       "assign",
       false,
       {{"bindingParameter", "microsoft.graph.managedEBook"},
        {"managedEBookAssignments", "Collection(microsoft.graph.managedEBookAssignment)"}},
       nullptr},
      // Revokes by app, person or device (beta): bound to each VPP app type, and to managedDevice.
      {false,
       "revokeAllLicenses",
       true,
       {{"bindingParameter", "microsoft.graph.iosVppApp"},
        {"notifyManagedDevices", "Edm.Boolean", /*nullable=*/false},
        {"revokeUntrackedLicenses", "Edm.Boolean"}},
       nullptr},
      {false,
       "revokeUserLicense",
       true,
       {{"bindingParameter", "microsoft.graph.iosVppApp"},
        {"userId", "Edm.String"},
        {"notifyManagedDevices", "Edm.Boolean", /*nullable=*/false}},
       nullptr},
      {false,
       "revokeDeviceLicense",
       true,
       {{"bindingParameter", "microsoft.graph.iosVppApp"},
        {"managedDeviceId", "Edm.String"},
        {"notifyManagedDevices", "Edm.Boolean", /*nullable=*/false}},
       nullptr},
      {false,
       "revokeAllLicenses",
       true,
       {{"bindingParameter", "microsoft.graph.macOsVppApp"},
        {"notifyManagedDevices", "Edm.Boolean", /*nullable=*/false},
        {"revokeUntrackedLicenses", "Edm.Boolean"}},
       nullptr},
      {false,
       "revokeUserLicense",
       true,
       {{"bindingParameter", "microsoft.graph.macOsVppApp"},
        {"userId", "Edm.String"},
        {"notifyManagedDevices", "Edm.Boolean", /*nullable=*/false}},
       nullptr},
      {false,
       "revokeDeviceLicense",
       true,
       {{"bindingParameter", "microsoft.graph.macOsVppApp"},
        {"managedDeviceId", "Edm.String"},
        {"notifyManagedDevices", "Edm.Boolean", /*nullable=*/false}},
       nullptr},
      {false, "revokeAppleVppLicenses", true, {{"bindingParameter", "microsoft.graph.managedDevice"}}, nullptr},

      {true,
       "getLicensesForApp",
       true,
       {{"bindingParameter", "Collection(microsoft.graph.vppToken)"},
        {"bundleId", "Edm.String", /*nullable=*/true, /*unicode=*/false}},
       "Collection(microsoft.graph.vppTokenLicenseSummary)"},
      // Bound to the depOnboardingSettings collection, not to vppTokens, as Graph binds it.
      {true,
       "getExpiringVppTokenCount",
       true,
       {{"bindingParameter", "Collection(microsoft.graph.depOnboardingSetting)"},
        {"expiringBeforeDateTime", "Edm.String", /*nullable=*/true, /*unicode=*/false}},
       "Edm.Int32",
       /*return_nullable=*/false},
  };
  return kOperations;
}

// What beta declares only so that getExpiringVppTokenCount has its binding type and a
// path from the container to it (/deviceManagement/depOnboardingSettings): vppd serves
// none of depOnboardingSetting's properties, so none are declared.
constexpr const char* kDepOnboardingSettingType =
    R"xml(    <EntityType Name="depOnboardingSetting" BaseType="microsoft.graph.entity" />
)xml";

// vppd's own extensions (beta), in a namespace of their own so that no Graph
// name is taken: the untracked-licences report (untracked.cc). Clients that do
// not know it are not affected: the annotation comes only when a request's
// Prefer asks for it, and the function only when called.
constexpr const char* kVppdSchema =
    R"xml(    <Schema Namespace="vppd" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <Term Name="untrackedLicenseCount" Type="Edm.Int64" AppliesTo="EntityType" Nullable="false" />
      <ComplexType Name="untrackedLicense">
        <Property Name="serialNumber" Type="Edm.String" />
        <Property Name="clientUserId" Type="Edm.String" />
        <Property Name="managedDeviceId" Type="Edm.String" />
        <Property Name="deviceName" Type="Edm.String" />
        <Property Name="userId" Type="Edm.String" />
        <Property Name="userPrincipalName" Type="Edm.String" />
      </ComplexType>
      <Function Name="untrackedLicenses" IsBound="true">
        <Parameter Name="bindingParameter" Type="microsoft.graph.mobileApp" />
        <ReturnType Type="Collection(vppd.untrackedLicense)" />
      </Function>
      <Function Name="untrackedLicenses" IsBound="true">
        <Parameter Name="bindingParameter" Type="microsoft.graph.managedEBook" />
        <ReturnType Type="Collection(vppd.untrackedLicense)" />
      </Function>
    </Schema>
)xml";

// Attribute values: the names are our own constants, but escaping keeps the document
// well-formed whatever a future table holds.
std::string Escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

class Writer {
 public:
  void Open(std::string_view tag, std::initializer_list<std::pair<std::string_view, std::string>> attrs,
            bool empty = false) {
    Indent();
    out_ += '<';
    out_ += tag;
    for (const auto& [name, value] : attrs) {
      if (value.empty()) continue;  // an absent optional attribute
      out_ += ' ';
      out_ += name;
      out_ += "=\"" + Escape(value) + '"';
    }
    out_ += empty ? " />\n" : ">\n";
    if (!empty) ++depth_;
  }
  void Close(std::string_view tag) {
    --depth_;
    Indent();
    out_ += "</";
    out_ += tag;
    out_ += ">\n";
  }
  void Raw(std::string_view s) { out_ += s; }
  std::string Take() && { return std::move(out_); }

 private:
  void Indent() { out_.append(static_cast<std::size_t>(depth_) * 2, ' '); }
  std::string out_;
  int depth_ = 0;
};

std::string BuildDocument(ApiVersion version) {
  const Schema& schema = ModelSchema(version);
  Writer w;
  w.Raw("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
  w.Open("edmx:Edmx", {{"Version", "4.0"}, {"xmlns:edmx", "http://docs.oasis-open.org/odata/ns/edmx"}});
  w.Open("edmx:DataServices", {});
  w.Open("Schema", {{"Namespace", "microsoft.graph"}, {"xmlns", "http://docs.oasis-open.org/odata/ns/edm"}});

  std::vector<const SchemaEnum*> enums;
  for (const SchemaEnum& e : schema.enums) enums.push_back(&e);
  for (const SchemaEnum& e : EBookSchemaEnums()) enums.push_back(&e);
  for (const SchemaEnum* enum_type : enums) {
    const SchemaEnum& e = *enum_type;
    w.Open("EnumType", {{"Name", e.name}});
    for (std::size_t i = 0; i < e.members.size(); ++i) {
      w.Open("Member", {{"Name", e.members[i]}, {"Value", std::to_string(i)}}, /*empty=*/true);
    }
    w.Close("EnumType");
  }
  std::vector<const SchemaType*> types;
  for (const SchemaType& t : schema.types) types.push_back(&t);
  // deviceManagement (the directory's, holding managedDevices) leads in beta to
  // depOnboardingSettings too.
  SchemaType management;
  for (const SchemaType& t : DirectorySchemaTypes()) {
    if (version == ApiVersion::kBeta && t.name == "deviceManagement") {
      management = t;
      management.navigation.push_back({"depOnboardingSettings", "Collection(microsoft.graph.depOnboardingSetting)"});
      types.push_back(&management);
    } else {
      types.push_back(&t);
    }
  }
  for (const SchemaType& t : EBookSchemaTypes(version)) types.push_back(&t);
  for (const SchemaType* type : types) {
    const SchemaType& t = *type;
    const char* tag = t.entity ? "EntityType" : "ComplexType";
    const bool empty = t.key.empty() && t.properties.empty() && t.navigation.empty();
    w.Open(tag, {{"Name", t.name}, {"BaseType", t.base_type}, {"Abstract", t.is_abstract ? "true" : ""}}, empty);
    if (empty) continue;
    if (!t.key.empty()) {
      w.Open("Key", {});
      w.Open("PropertyRef", {{"Name", t.key}}, /*empty=*/true);
      w.Close("Key");
    }
    for (const SchemaProperty& p : t.properties) {
      w.Open("Property", {{"Name", p.name}, {"Type", p.type}, {"Nullable", p.nullable ? "" : "false"}},
             /*empty=*/true);
    }
    for (const SchemaNavigation& n : t.navigation) {
      w.Open("NavigationProperty", {{"Name", n.name}, {"Type", n.type}, {"ContainsTarget", "true"}}, /*empty=*/true);
    }
    w.Close(tag);
  }
  if (version == ApiVersion::kBeta) w.Raw(kDepOnboardingSettingType);
  for (const Operation& op : Operations()) {
    if (op.beta_only && version != ApiVersion::kBeta) continue;
    const char* tag = op.is_function ? "Function" : "Action";
    w.Open(tag, {{"Name", op.name}, {"IsBound", "true"}});
    for (const Parameter& p : op.parameters) {
      w.Open("Parameter",
             {{"Name", p.name},
              {"Type", p.type},
              {"Nullable", p.nullable ? "" : "false"},
              {"Unicode", p.unicode ? "" : "false"}},
             /*empty=*/true);
    }
    if (op.return_type != nullptr) {
      w.Open("ReturnType", {{"Type", op.return_type}, {"Nullable", op.return_nullable ? "" : "false"}},
             /*empty=*/true);
    }
    w.Close(tag);
  }
  w.Open("EntityContainer", {{"Name", "GraphService"}});
  const ContainerMembers members = RoutedContainer(version);
  for (const std::string& name : members.singletons) {
    w.Open("Singleton", {{"Name", name}, {"Type", "microsoft.graph." + name}}, /*empty=*/true);
  }
  for (const std::string& name : members.entity_sets) {
    // Graph names a set by its type in the plural: users of user, groups of group.
    w.Open("EntitySet", {{"Name", name}, {"EntityType", "microsoft.graph." + name.substr(0, name.size() - 1)}},
           /*empty=*/true);
  }
  w.Close("EntityContainer");

  w.Close("Schema");
  if (version == ApiVersion::kBeta) w.Raw(kVppdSchema);
  w.Close("edmx:DataServices");
  w.Close("edmx:Edmx");
  return std::move(w).Take();
}

}  // namespace

const std::string& MetadataDocument(ApiVersion version) {
  static const std::string kBeta = BuildDocument(ApiVersion::kBeta);
  static const std::string kV1 = BuildDocument(ApiVersion::kV1);
  return version == ApiVersion::kBeta ? kBeta : kV1;
}

Result<http::Response> MetadataResponse(const http::Request& request, ApiVersion version,
                                        std::span<const std::string> rest) {
  if (!rest.empty()) {
    return Fail(Error::InvalidArgument("Resource not found for the segment '" + rest.front() + "'.", rest.front()));
  }
  if (request.method != "GET") {
    http::Response r =
        ErrorResponse(Error{Code::kMethodNotAllowed,
                            "The HTTP method '" + request.method + "' is not allowed on this resource; allowed: GET.",
                            {},
                            "MethodNotAllowed"},
                      request);
    r.headers.emplace_back("Allow", "GET");
    return r;
  }
  // Accept is not negotiated: the XML document is the only representation there is,
  // and Graph sends it whatever the client asks for.
  return http::Response{200,
                        {{"Content-Type", "application/xml; charset=utf-8"}, {"OData-Version", "4.0"}},
                        MetadataDocument(version),
                        {},
                        {}};
}

}  // namespace vppd::graph
