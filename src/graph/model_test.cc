// The Graph model against the store's columns: every property $filter/$orderby may
// use maps onto a store column of a compatible type, every store column is reached
// by the model, the properties are those $metadata declares (and the JSON writers
// write: both read the same tables), and queries in Graph's terms become queries
// over the store's columns (graph/store_mapping.h).
#include "graph/model.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "graph/odata.h"
#include "graph/store_mapping.h"
#include "store/query.h"

namespace vppd::graph {
namespace {

const ApiVersion kVersions[] = {ApiVersion::kBeta, ApiVersion::kV1};

bool Usable(const PropertyDef& p) { return p.filterable && !p.collection && p.type != EdmType::kComplex; }

// Which store column types hold a value of each EDM type.
bool Compatible(EdmType edm, store::ColumnType column) {
  switch (edm) {
    case EdmType::kString:
    case EdmType::kGuid:
      return column == store::ColumnType::kText;
    case EdmType::kEnum:
      return column == store::ColumnType::kEnum;
    case EdmType::kBoolean:
      return column == store::ColumnType::kBool;
    case EdmType::kInt32:
    case EdmType::kInt64:
      return column == store::ColumnType::kInt;
    case EdmType::kDateTimeOffset:
      return column == store::ColumnType::kTime;
    case EdmType::kDouble:
    case EdmType::kBinary:
    case EdmType::kComplex:
      return false;
  }
  return false;
}

std::vector<const EntityDef*> Entities(ApiVersion v) { return {&VppTokenEntity(v), &MobileAppEntity(v)}; }

// Store columns that no Graph property or type reaches, and why. None today: a
// column added for the store's own use goes here, with its reason.
// Columns only the service names: product_type tells mobileApps (App) from managedEBooks (Book).
const std::set<store::Column> kInternalColumns = {store::Column::kAppProductType};

TEST(ModelToStore, EveryUsablePropertyMapsToAColumnOfACompatibleType) {
  for (ApiVersion v : kVersions) {
    for (const EntityDef* e : Entities(v)) {
      std::set<store::Column> used;
      for (const PropertyDef& p : e->properties) {
        SCOPED_TRACE(e->name + "." + p.name + " in " + VersionSegment(v));
        ASSERT_EQ(p.column.has_value(), Usable(p)) << "a property $filter/$orderby may use has a column, and only it";
        if (!p.column) continue;
        const store::ColumnInfo& c = store::Describe(*p.column);
        EXPECT_EQ(c.table, e->table);
        EXPECT_TRUE(Compatible(p.type, c.type)) << "store column " << c.name;
        // A Graph property that may not be null must not read a column that may be.
        if (c.nullable) {
          EXPECT_TRUE(p.nullable) << "store column " << c.name << " is nullable";
        }
        EXPECT_TRUE(used.insert(*p.column).second) << "two properties on one column " << c.name;
      }
      for (const TypeDef& t : e->types) {
        SCOPED_TRACE(e->name + " type " + t.name);
        if (!t.column) continue;
        const store::ColumnInfo& c = store::Describe(*t.column);
        EXPECT_EQ(c.table, e->table);
        EXPECT_TRUE(c.type == store::ColumnType::kText || c.type == store::ColumnType::kEnum) << c.name;
        EXPECT_FALSE(t.value.empty());
      }
    }
  }
}

TEST(ModelToStore, EveryStoreColumnIsReachedFromGraphOrListedAsInternal) {
  for (store::Table table : {store::Table::kVppTokens, store::Table::kMobileApps}) {
    std::set<store::Column> reached;
    for (ApiVersion v : kVersions) {
      for (const EntityDef* e : Entities(v)) {
        if (e->table != table) continue;
        for (const PropertyDef& p : e->properties) {
          if (p.column) reached.insert(*p.column);
        }
        for (const TypeDef& t : e->types) {
          if (t.column) reached.insert(*t.column);
        }
      }
    }
    for (const store::ColumnInfo& c : store::QueryColumns(table)) {
      EXPECT_TRUE(reached.count(c.id) + kInternalColumns.count(c.id) == 1)
          << "store column " << c.name << ": reached by no Graph property or type, and not listed as internal";
    }
  }
}

// The EntityDefs that queries are checked against hold exactly the properties that
// $metadata declares for the entity set's types (the JSON writers use the same tables).
TEST(ModelToStore, EntityPropertiesAreTheSchemasProperties) {
  for (ApiVersion v : kVersions) {
    const Schema& schema = ModelSchema(v);
    auto declared = [&](std::vector<std::string> type_names) {
      std::set<std::string> names;
      for (const SchemaType& t : schema.types) {
        if (std::find(type_names.begin(), type_names.end(), t.name) == type_names.end()) continue;
        for (const SchemaProperty& p : t.properties) names.insert(p.name);
      }
      return names;
    };
    auto names = [](const EntityDef& e) {
      std::set<std::string> out;
      for (const PropertyDef& p : e.properties) out.insert(p.name);
      return out;
    };
    SCOPED_TRACE(VersionSegment(v));
    EXPECT_EQ(names(VppTokenEntity(v)), declared({"entity", "vppToken"}));
    EXPECT_EQ(names(MobileAppEntity(v)), declared({"entity", "mobileApp", "iosVppApp", "macOsVppApp"}));
    for (const TypeDef& t : MobileAppEntity(v).types) {
      if (!t.held) continue;  // Graph's other mobileApp types: valid in queries, never served
      const std::string name = t.name.substr(t.name.rfind('.') + 1);
      EXPECT_TRUE(
          std::any_of(schema.types.begin(), schema.types.end(), [&](const SchemaType& s) { return s.name == name; }))
          << t.name << " is not a type of $metadata";
    }
  }
}

// --- the schema against Graph's ----------------------------------------------------

// name -> qualified type of every structural property of `type`, inherited ones included.
using PropertyTypes = std::map<std::string, std::string>;

// The <EntityType>s of a CSDL fixture (testdata/), read with just enough XML: one
// element per line, attributes in double quotes, the alias `graph.` for microsoft.graph.
std::map<std::string, std::pair<std::string, PropertyTypes>> CsdlEntityTypes(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot read " << path;
  auto attribute = [](const std::string& line, const std::string& name) {
    const std::size_t at = line.find(" " + name + "=\"");
    if (at == std::string::npos) return std::string();
    const std::size_t start = at + name.size() + 3;
    std::string value = line.substr(start, line.find('"', start) - start);
    for (std::size_t p; (p = value.find("graph.")) != std::string::npos && (p == 0 || value[p - 1] == '(');) {
      value.replace(p, 6, "microsoft.graph.");
    }
    return value;
  };
  std::map<std::string, std::pair<std::string, PropertyTypes>> types;
  std::string current;
  for (std::string line; std::getline(in, line);) {
    if (line.find("<EntityType ") != std::string::npos) {
      current = attribute(line, "Name");
      std::string base = attribute(line, "BaseType");
      types[current].first = base.empty() ? "" : base.substr(base.rfind('.') + 1);
    } else if (line.find("</EntityType>") != std::string::npos) {
      current.clear();
    } else if (!current.empty() && line.find("<Property ") != std::string::npos) {
      types[current].second[attribute(line, "Name")] = attribute(line, "Type");
    }
  }
  return types;
}

PropertyTypes Flatten(const std::string& name, const std::map<std::string, std::pair<std::string, PropertyTypes>>& t) {
  PropertyTypes out;
  for (std::string n = name; !n.empty();) {
    const auto it = t.find(n);
    if (it == t.end()) break;
    out.insert(it->second.second.begin(), it->second.second.end());
    n = it->second.first;
  }
  return out;
}

std::map<std::string, std::pair<std::string, PropertyTypes>> ModelEntityTypes(ApiVersion v) {
  std::map<std::string, std::pair<std::string, PropertyTypes>> types;
  for (const SchemaType& t : ModelSchema(v).types) {
    if (!t.entity) continue;
    auto& [base, props] = types[t.name];
    base = t.base_type.empty() ? "" : t.base_type.substr(t.base_type.rfind('.') + 1);
    for (const SchemaProperty& p : t.properties) props[p.name] = p.type;
  }
  return types;
}

// Apps carry every structural property Graph's beta schema gives iosVppApp and
// macOsVppApp (and their bases), with Graph's types, and nothing Graph does not have.
TEST(GraphSchema, VppAppsCarryEveryPropertyOfGraph) {
  const auto graph = CsdlEntityTypes(std::string(VPPD_GRAPH_TESTDATA) + "/graph_vpp_apps_beta.xml");
  const auto model = ModelEntityTypes(ApiVersion::kBeta);
  for (const char* type : {"iosVppApp", "macOsVppApp", "mobileApp", "entity"}) {
    SCOPED_TRACE(type);
    const PropertyTypes want = Flatten(type, graph);
    ASSERT_FALSE(want.empty());
    EXPECT_EQ(Flatten(type, model), want);
  }
}

// Tokens carry every structural property Graph's beta schema gives vppToken, with
// Graph's types. One more: lastAppCount, which Graph's documentation shows in its
// vppToken examples but its schema does not declare.
TEST(GraphSchema, VppTokenCarriesEveryPropertyOfGraph) {
  const auto graph = CsdlEntityTypes(std::string(VPPD_GRAPH_TESTDATA) + "/graph_vpp_apps_beta.xml");
  PropertyTypes want = Flatten("vppToken", graph);
  ASSERT_FALSE(want.empty());
  want["lastAppCount"] = "Edm.Int32";
  EXPECT_EQ(Flatten("vppToken", ModelEntityTypes(ApiVersion::kBeta)), want);
}

// --- the translation ----------------------------------------------------------------

// `(eq last_sync 2026-…)`: the store's tree, with the store's column names.
std::string Show(const store::Expr& e) {
  switch (e.kind) {
    case store::Expr::Kind::kColumn:
      return std::string(store::Describe(e.column).name);
    case store::Expr::Kind::kLiteral:
      if (const bool* b = std::get_if<bool>(&e.literal)) return *b ? "true" : "false";
      if (const std::string* s = std::get_if<std::string>(&e.literal)) return "'" + *s + "'";
      if (const std::int64_t* i = std::get_if<std::int64_t>(&e.literal)) return std::to_string(*i);
      if (const store::DateTime* t = std::get_if<store::DateTime>(&e.literal)) {
        return t->micros == store::kNeverSynced ? "never" : FormatIso8601(t->micros);
      }
      return "null";
    case store::Expr::Kind::kOp:
      break;
  }
  static const char* const kOps[] = {"eq", "ne",  "gt", "ge",         "lt",       "le",      "and",
                                     "or", "not", "in", "startswith", "endswith", "contains"};
  std::string out = std::string("(") + kOps[static_cast<int>(e.op)];
  for (const store::Expr& c : e.children) out += " " + Show(c);
  return out + ")";
}

std::string StoreFilter(const std::string& filter, ApiVersion v = ApiVersion::kBeta, bool apps = false) {
  const EntityDef& entity = apps ? MobileAppEntity(v) : VppTokenEntity(v);
  Result<QueryOptions> q = ParseQueryOptions("$filter=" + filter, entity, {}, {});
  if (!q) return "ERROR: " + q.error().message;
  return q->list.filter ? Show(*q->list.filter) : "";
}

std::string StoreOrder(const std::string& order, bool apps = false) {
  const EntityDef& entity = apps ? MobileAppEntity(ApiVersion::kBeta) : VppTokenEntity(ApiVersion::kBeta);
  Result<QueryOptions> q = ParseQueryOptions("$orderby=" + order, entity, {}, {});
  if (!q) return "ERROR: " + q.error().message;
  std::string out;
  for (const store::OrderKey& k : q->list.order_by) {
    out += (out.empty() ? "" : ",") + std::string(store::Describe(k.column).name) + (k.descending ? " desc" : "");
  }
  return out;
}

TEST(GraphToStore, PropertiesBecomeColumns) {
  EXPECT_EQ(StoreFilter("displayName eq 'x' and lastAppCount gt 3"),
            "(and (eq display_name 'x') (gt last_app_count 3))");
  EXPECT_EQ(StoreFilter("automaticallyUpdateApps"), "(eq automatically_update_apps true)");
  EXPECT_EQ(StoreFilter("not startswith(locationName, 'a')"), "(not (startswith location_name 'a'))");
  EXPECT_EQ(StoreFilter("state in ('valid', 'expired')"), "(in state 'valid' 'expired')");
  EXPECT_EQ(StoreFilter("vppTokenId eq 'abc' and vppTokenAccountType eq 'education'", ApiVersion::kBeta, true),
            "(and (eq token_id 'abc') (eq token_account_type 'education'))");
  EXPECT_EQ(StoreFilter("createdDateTime lt 2026-01-02T03:04:05Z", ApiVersion::kBeta, true),
            "(lt created 2026-01-02T03:04:05Z)");
  EXPECT_EQ(StoreOrder("lastAppCount desc,displayName"), "last_app_count desc,display_name");
  EXPECT_EQ(StoreOrder("vppTokenDisplayName,usedLicenseCount desc", true), "token_display_name,used_licenses desc");
}

TEST(GraphToStore, GraphsNeverIsTheStoresNever) {
  EXPECT_EQ(StoreFilter("lastSyncDateTime eq 0001-01-01T00:00:00Z"), "(eq last_sync never)");
  EXPECT_EQ(StoreFilter("0001-01-01T00:00:00Z eq lastSyncDateTime"), "(eq last_sync never)");
  EXPECT_EQ(StoreFilter("lastSyncDateTime in (0001-01-01T00:00:00Z, 2026-01-01T00:00:00Z)"),
            "(in last_sync never 2026-01-01T00:00:00Z)");
  EXPECT_EQ(StoreFilter("lastSyncDateTime gt 2026-01-01T00:00:00Z"), "(gt last_sync 2026-01-01T00:00:00Z)");
  // Rendering: a token never synced shows Graph's date.
  EXPECT_STREQ(kGraphNeverText, "0001-01-01T00:00:00Z");
  EXPECT_EQ(FormatIso8601(kGraphNever), kGraphNeverText);
}

TEST(GraphToStore, TypesBecomeStorePredicates) {
  EXPECT_EQ(StoreFilter("isof('microsoft.graph.iosVppApp')", ApiVersion::kBeta, true), "(eq platform 'iOS')");
  EXPECT_EQ(StoreFilter("isof(microsoft.graph.macOsVppApp)", ApiVersion::kBeta, true), "(eq platform 'macOS')");
  EXPECT_EQ(StoreFilter("not isof('microsoft.graph.iosVppApp')", ApiVersion::kBeta, true), "(not (eq platform 'iOS'))");
  EXPECT_EQ(StoreFilter("isof('microsoft.graph.mobileApp')", ApiVersion::kBeta, true), "true");
  EXPECT_EQ(StoreFilter("isof('microsoft.graph.vppToken')"), "true");
  // A type the entity set does not hold selects no row (reached through a cast).
  Expr other = Expr::Apply(Op::kIsOf, {Expr::Value(std::string("microsoft.graph.managedApp"))});
  Result<store::Expr> none = ToStoreFilter(other, MobileAppEntity(ApiVersion::kBeta));
  ASSERT_TRUE(none);
  EXPECT_EQ(Show(*none), "false");
}

TEST(GraphToStore, DerivedTypePathsAndTypesNotHeld) {
  const auto apps = [](const std::string& filter) { return StoreFilter(filter, ApiVersion::kBeta, true); };
  EXPECT_EQ(apps("microsoft.graph.iosVppApp/vppTokenId eq 'x'"), "(and (eq platform 'iOS') (eq token_id 'x'))");
  EXPECT_EQ(apps("microsoft.graph.macOsVppApp/bundleId ne null"), "(and (eq platform 'macOS') (ne bundle_id null))");
  EXPECT_EQ(apps("microsoft.graph.mobileApp/displayName eq 'a'"), "(and true (eq display_name 'a'))");
  // Graph declares applicableDeviceType on iosVppApp only, and it is complex.
  EXPECT_NE(apps("microsoft.graph.macOsVppApp/applicableDeviceType eq null").find("unknown property"),
            std::string::npos);
  // Types of Graph's schema that vppd holds no rows of: valid, and no row matches.
  EXPECT_EQ(apps("microsoft.graph.managedApp/appAvailability eq null"), "false");
  EXPECT_EQ(apps("microsoft.graph.managedIOSStoreApp/version eq '1'"), "false");
  EXPECT_EQ(apps("isof('microsoft.graph.iosStoreApp')"), "false");
  EXPECT_EQ(apps("not isof('microsoft.graph.win32LobApp')"), "(not false)");
  EXPECT_NE(apps("microsoft.graph.iosStoreApp/appAvailability eq null").find("unknown property"), std::string::npos);
  // Not a type of Graph's schema (or not a mobileApp): still a 400.
  EXPECT_NE(apps("isof('microsoft.graph.nosuchApp')").find("is not a type of microsoft.graph.mobileApp"),
            std::string::npos);
  EXPECT_NE(apps("isof('microsoft.graph.vppToken')").find("is not a type"), std::string::npos);
  EXPECT_EQ(StoreFilter("isof('microsoft.graph.iosVppApp')", ApiVersion::kV1, true), "(eq platform 'iOS')");
  EXPECT_EQ(StoreFilter("isof('microsoft.graph.iosStoreApp')", ApiVersion::kV1, true), "false");
  EXPECT_EQ(StoreOrder("microsoft.graph.iosVppApp/vppTokenId desc,microsoft.graph.managedApp/version", true),
            "token_id desc");
}

TEST(GraphToStore, OnlyAssignmentsExpandOnMobileApps) {
  for (ApiVersion v : kVersions) {
    EXPECT_EQ(MobileAppEntity(v).expandable, std::vector<std::string>{"assignments"});
    EXPECT_TRUE(VppTokenEntity(v).expandable.empty());
  }
}

TEST(GraphToStore, RestrictToTypeAddsTheTypeToBothTrees) {
  const EntityDef& apps = MobileAppEntity(ApiVersion::kV1);
  Result<QueryOptions> q = ParseQueryOptions("$filter=bundleId eq 'b'", apps, {}, {});
  ASSERT_TRUE(q);
  ASSERT_TRUE(RestrictToType(*q, apps, "microsoft.graph.iosVppApp"));
  EXPECT_EQ(DebugString(*q->filter), "(and (isof 'microsoft.graph.iosVppApp') (eq bundleId 'b'))");
  EXPECT_EQ(Show(*q->list.filter), "(and (eq platform 'iOS') (eq bundle_id 'b'))");

  Result<QueryOptions> all = ParseQueryOptions("", apps, {}, {});
  ASSERT_TRUE(all);
  ASSERT_TRUE(RestrictToType(*all, apps, "microsoft.graph.iosVppApp"));
  EXPECT_EQ(Show(*all->list.filter), "(eq platform 'iOS')");
}

// Errors that name a Graph property come from the parser, before any translation,
// with Graph's wording and code.
TEST(GraphToStore, ErrorsNameTheGraphProperty) {
  EXPECT_EQ(StoreFilter("last_sync eq null"), "ERROR: Invalid $filter: unknown property 'last_sync' at position 0.");
  EXPECT_EQ(StoreFilter("token eq 'x'"),
            "ERROR: Invalid $filter: property 'token' cannot be used in $filter at position 0.");
  EXPECT_EQ(StoreFilter("platform eq 'iOS'", ApiVersion::kBeta, true),
            "ERROR: Invalid $filter: unknown property 'platform' at position 0.");
  Result<QueryOptions> q = ParseQueryOptions("$orderby=roleScopeTagIds", VppTokenEntity(ApiVersion::kBeta), {}, {});
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, Code::kInvalidArgument);
  EXPECT_TRUE(q.error().graph_code.empty());  // errors.cc: BadRequest
  EXPECT_EQ(q.error().target, "$orderby");
}

// A model that lets a property into $filter without saying where the store keeps it
// is a bug: Internal, naming the property, never a query without that condition.
TEST(GraphToStore, APropertyWithoutAColumnIsAnInternalError) {
  EntityDef e = VppTokenEntity(ApiVersion::kBeta);
  for (PropertyDef& p : e.properties) {
    if (p.name == "displayName") p.column.reset();
  }
  Result<QueryOptions> q = ParseQueryOptions("$filter=state eq 'valid' or displayName eq 'x'", e, {}, {});
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, Code::kInternal);
  EXPECT_EQ(q.error().target, "displayName");
  q = ParseQueryOptions("$orderby=displayName", e, {}, {});
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, Code::kInternal);
  // In Graph's terms alone, the same query is fine.
  EXPECT_TRUE(ParseGraphQueryOptions("$filter=displayName eq 'x'&$orderby=displayName", e, {}, {}));
}

}  // namespace
}  // namespace vppd::graph
