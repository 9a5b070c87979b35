// The entity model of the Graph surface (spec/graph-vpptoken.md §2–§3, §6):
// which properties each API version exposes, their EDM types, which a client may
// set, and the JSON form of each entity. Internal to graph/.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/fwd.hpp>

#include "graph/odata.h"
#include "service/service.h"
#include "store/store.h"

namespace vppd::graph {

enum class ApiVersion { kBeta, kV1 };

// "beta" / "v1.0".
const char* VersionSegment(ApiVersion v);

// The vppToken entity as `version` exposes it (v1.0 is a subset of beta).
const EntityDef& VppTokenEntity(ApiVersion version);

class JsonWriter;

// The members of the entity's JSON object (the caller writes the braces, and may
// write members of its own first, such as @odata.context): "@odata.type" and
// "@odata.etag" (graph/etag.h) first, then the properties in the documented order. `select` (validated names) limits
// the properties; `id` is always included. The sToken itself is write-only and
// rendered as null.
void WriteVppTokenMembers(const store::VppToken& token, ApiVersion version, const std::vector<std::string>& select,
                          JsonWriter& out);

// mobileApp as the apps of VPP tokens show it (iosVppApp and macOsVppApp; v1.0 has
// only iosVppApp, with fewer properties).
const EntityDef& MobileAppEntity(ApiVersion version);
// "#microsoft.graph.iosVppApp" or "#microsoft.graph.macOsVppApp".
std::string MobileAppType(const store::MobileApp& app);
// `assignments`: the app's assignments (they give isAssigned), written as the
// "assignments" collection when `expand` (names from MobileAppEntity().expandable)
// names it.
void WriteMobileApp(const store::MobileApp& app, ApiVersion version, const std::vector<std::string>& select,
                    boost::json::object& out, const std::vector<std::string>& expand = {},
                    std::span<const store::AppAssignment> assignments = {});
// A mobileAppAssignment (assignments.cc): its target and settings as Graph shows
// them; beta adds source ("direct") and sourceId.
void WriteAppAssignment(const store::AppAssignment& assignment, ApiVersion version, boost::json::object& out);
// An element of .../assignedLicenses: iosVppAppAssignedDeviceLicense / ...UserLicense
// (macOsVppAppAssignedLicense on macOS), with what Apple gives: the serial number as
// deviceName, the clientUserId as userId.
// `holder`: for a device licence, the managed device the directory says holds the
// serial (managedDeviceId, deviceName, userId); without one, deviceName is the serial.
void WriteAssignedLicense(const store::MobileApp& app, const store::LicenseAssignment& assignment,
                          boost::json::object& out, const service::DeviceLicenseHolder* holder = nullptr);

// An element of getLicensesForApp (vppTokenLicenseSummary).
void WriteLicenseSummary(const service::LicenseSummary& summary, boost::json::object& out);

// --- The schema: the writers' own tables seen as CSDL types (for $metadata) -----------

struct SchemaProperty {
  std::string name;
  std::string type;  // qualified: "Edm.String", "microsoft.graph.vppTokenState", "Collection(Edm.String)"
  bool nullable = true;
};

// A containment navigation property (ContainsTarget="true"), e.g. deviceAppManagement/vppTokens.
struct SchemaNavigation {
  std::string name;
  std::string type;  // "Collection(microsoft.graph.vppToken)"
};

struct SchemaType {
  std::string name;       // unqualified, in namespace microsoft.graph: "iosVppApp"
  bool entity = true;     // EntityType; false: ComplexType
  std::string base_type;  // qualified ("microsoft.graph.mobileApp"); empty: none
  bool is_abstract = false;
  std::string key;                         // the key property, declared only on `entity` ("id")
  std::vector<SchemaProperty> properties;  // declared on this type; inherited ones are on the base
  std::vector<SchemaNavigation> navigation;
};

struct SchemaEnum {
  std::string name;                  // unqualified: "vppTokenState"
  std::vector<std::string> members;  // in declared order; a member's value is its position
};

struct Schema {
  std::vector<SchemaEnum> enums;
  std::vector<SchemaType> types;  // bases before derived types
};

// Every type `version` serialises, built from the same property tables the writers
// above use: the `entity` base, deviceAppManagement (vppTokens and mobileApps only),
// vppToken, mobileApp (abstract), iosVppApp, and in beta macOsVppApp and the assigned
// licenses; complex types and enums exactly as far as those properties refer to them
// (plus vppTokenLicenseSummary in beta, which getLicensesForApp returns). Built once;
// thread-safe.
const Schema& ModelSchema(ApiVersion version);

// Decodes a create/PATCH body. Every property must exist in `version` and have the
// right JSON type (nullability, enum membership, ISO-8601 date-times, collections);
// the first offence is an InvalidArgument naming the property. Server-managed
// properties (the docs' examples send them all) are checked, then ignored.
// `@odata.type`, when present, must name microsoft.graph.vppToken; other
// annotations are ignored.
Result<service::TokenChanges> ReadTokenChanges(const boost::json::object& body, ApiVersion version);

}  // namespace vppd::graph
