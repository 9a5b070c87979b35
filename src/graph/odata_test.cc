// Tests of the OData query-option parser: tables of good filters → expected trees,
// tables of bad inputs → the exact message fragment, the other options, paging links.
#include "graph/odata.h"

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "base/base.h"

namespace vppd::graph {
namespace {

// A vppToken-like entity (the real one lives in graph/model.cc), with a few extra
// properties so that every EDM type has something to test against.
const EntityDef& TestEntity() {
  static const EntityDef entity = [] {
    EntityDef e;
    e.name = "vppToken";
    auto add = [&e](std::string name, EdmType type) -> PropertyDef& {
      PropertyDef p;
      p.name = std::move(name);
      p.type = type;
      e.properties.push_back(std::move(p));
      return e.properties.back();
    };
    add("id", EdmType::kString).nullable = false;
    add("organizationName", EdmType::kString);
    PropertyDef& account = add("vppTokenAccountType", EdmType::kEnum);
    account.enum_type = "microsoft.graph.vppTokenAccountType";
    account.enum_members = {"business", "education"};
    add("appleId", EdmType::kString);
    add("expirationDateTime", EdmType::kDateTimeOffset).nullable = false;
    add("lastSyncDateTime", EdmType::kDateTimeOffset).nullable = false;
    add("token", EdmType::kString).filterable = false;
    PropertyDef& state = add("state", EdmType::kEnum);
    state.enum_type = "microsoft.graph.vppTokenState";
    state.enum_members = {"unknown", "valid", "expired", "invalid", "assignedToExternalMDM", "duplicateLocationId"};
    add("tokenActionResults", EdmType::kComplex).collection = true;
    add("automaticallyUpdateApps", EdmType::kBoolean).nullable = false;
    add("displayName", EdmType::kString);
    add("roleScopeTagIds", EdmType::kString).collection = true;
    add("lastAppCount", EdmType::kInt32);
    // Not on vppToken; here to cover the remaining types.
    add("score", EdmType::kDouble);
    add("bytes", EdmType::kInt64);
    add("tenantId", EdmType::kGuid);
    add("settings", EdmType::kComplex);
    TypeDef base;
    base.name = "microsoft.graph.vppToken";
    // A held derived type that declares some of the properties, and one vppd holds no rows of.
    TypeDef derived;
    derived.name = "microsoft.graph.iosVppApp";
    derived.property_names = {"displayName", "state", "roleScopeTagIds"};
    TypeDef foreign;
    foreign.name = "microsoft.graph.managedApp";
    foreign.held = false;
    PropertyDef availability;
    availability.name = "appAvailability";
    availability.type = EdmType::kEnum;
    availability.nullable = false;
    availability.enum_type = "microsoft.graph.managedAppAvailability";
    availability.enum_members = {"global", "lineOfBusiness"};
    foreign.foreign_properties = {availability};
    e.types = {base, derived, foreign};
    e.expandable = {"assignments", "categories"};
    return e;
  }();
  return entity;
}

// Percent-encodes everything but RFC 3986 unreserved characters, as SDKs do.
std::string Encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    }
  }
  return out;
}

Result<QueryOptions> Parse(std::string_view raw, const QueryLimits& limits = {}, const AllowedOptions& allowed = {}) {
  return ParseGraphQueryOptions(raw, TestEntity(), allowed, limits);
}

// The filter's tree, or "ERROR: message".
std::string Filter(std::string_view filter, const QueryLimits& limits = {}) {
  Result<QueryOptions> q = Parse("$filter=" + Encode(filter), limits);
  if (!q) return "ERROR: " + q.error().message;
  if (!q->filter) return "ERROR: no filter";
  return DebugString(*q->filter);
}

std::string ErrorOf(std::string_view raw, const QueryLimits& limits = {}, const AllowedOptions& allowed = {}) {
  Result<QueryOptions> q = Parse(raw, limits, allowed);
  return q ? std::string("OK") : q.error().message;
}

struct GoodFilter {
  std::string_view filter;
  std::string_view tree;
};

TEST(ODataFilter, GoodInputsGiveTheExpectedTree) {
  const GoodFilter cases[] = {
      {"displayName eq 'Contoso'", "(eq displayName 'Contoso')"},
      {"'Contoso' eq displayName", "(eq displayName 'Contoso')"},
      {"displayName ne null", "(ne displayName null)"},
      {"null eq appleId", "(eq appleId null)"},
      // literal on the left: operator mirrored so the property is child 0
      {"5 lt lastAppCount", "(gt lastAppCount 5)"},
      {"5 ge lastAppCount", "(le lastAppCount 5)"},
      {"lastAppCount le -2", "(le lastAppCount -2)"},
      {"lastAppCount gt 1.5", "(gt lastAppCount 1.5)"},
      {"bytes gt 3000000000", "(gt bytes 3000000000)"},
      // doubles: integer literals are promoted
      {"score gt 1.5", "(gt score 1.5)"},
      {"score gt 1e3", "(gt score 1000.0)"},
      {"score lt -2", "(lt score -2.0)"},
      {"score ge 2.5E-1", "(ge score 0.25)"},
      // enums, quoted and qualified
      {"state eq 'valid'", "(eq state 'valid')"},
      {"state eq microsoft.graph.vppTokenState'expired'", "(eq state 'expired')"},
      {"'valid' ne state", "(ne state 'valid')"},
      {"state in ('valid', 'expired')", "(in state 'valid' 'expired')"},
      {"state in (microsoft.graph.vppTokenState'valid')", "(in state 'valid')"},
      {"displayName in ('a','b' , 'c')", "(in displayName 'a' 'b' 'c')"},
      // booleans
      {"automaticallyUpdateApps", "(eq automaticallyUpdateApps true)"},
      {"not automaticallyUpdateApps", "(not (eq automaticallyUpdateApps true))"},
      {"automaticallyUpdateApps eq false", "(eq automaticallyUpdateApps false)"},
      {"false ne automaticallyUpdateApps", "(ne automaticallyUpdateApps false)"},
      // precedence: or < and < not < comparison
      {"state eq 'valid' or state eq 'expired' and automaticallyUpdateApps",
       "(or (eq state 'valid') (and (eq state 'expired') (eq automaticallyUpdateApps true)))"},
      {"(state eq 'valid' or state eq 'expired') and automaticallyUpdateApps",
       "(and (or (eq state 'valid') (eq state 'expired')) (eq automaticallyUpdateApps true))"},
      {"not state eq 'valid' and lastAppCount gt 0", "(and (not (eq state 'valid')) (gt lastAppCount 0))"},
      {"not (state eq 'valid' or automaticallyUpdateApps)",
       "(not (or (eq state 'valid') (eq automaticallyUpdateApps true)))"},
      {"not not automaticallyUpdateApps", "(not (not (eq automaticallyUpdateApps true)))"},
      {"((displayName eq 'x'))", "(eq displayName 'x')"},
      // chains are balanced, left half first
      {"lastAppCount eq 1 or lastAppCount eq 2 or lastAppCount eq 3",
       "(or (or (eq lastAppCount 1) (eq lastAppCount 2)) (eq lastAppCount 3))"},
      {"lastAppCount eq 1 and lastAppCount eq 2 and lastAppCount eq 3 and lastAppCount eq 4",
       "(and (and (eq lastAppCount 1) (eq lastAppCount 2)) (and (eq lastAppCount 3) (eq lastAppCount 4)))"},
      // string functions and escapes
      {"startswith(displayName,'It''s')", "(startswith displayName 'It''s')"},
      {"endswith( displayName , 'co' )", "(endswith displayName 'co')"},
      {"contains(organizationName,'')", "(contains organizationName '')"},
      {"startswith(displayName,'a') eq true", "(startswith displayName 'a')"},
      {"startswith(displayName,'a') eq false", "(not (startswith displayName 'a'))"},
      {"true ne contains(displayName,'a')", "(not (contains displayName 'a'))"},
      {"displayName eq ''''", "(eq displayName '''')"},
      {"displayName eq '日本語 – ü'", "(eq displayName '日本語 – ü')"},
      {"displayName eq 'a&b=c'", "(eq displayName 'a&b=c')"},
      {"displayName eq 'a+b'", "(eq displayName 'a+b')"},
      // isof
      {"isof('microsoft.graph.iosVppApp')", "(isof 'microsoft.graph.iosVppApp')"},
      {"isof(microsoft.graph.vppToken)", "(isof 'microsoft.graph.vppToken')"},
      // date-times: Z, offsets, fractions (beyond microseconds truncated)
      {"expirationDateTime lt 2026-01-01T00:00:00Z", "(lt expirationDateTime 2026-01-01T00:00:00Z)"},
      {"expirationDateTime ge 2026-01-01T02:00:00+02:00", "(ge expirationDateTime 2026-01-01T00:00:00Z)"},
      {"expirationDateTime ge 2025-12-31T23:57:57.2481234-08:00",
       "(ge expirationDateTime 2026-01-01T07:57:57.248123Z)"},
      {"2026-01-01T00:00:00Z gt lastSyncDateTime", "(lt lastSyncDateTime 2026-01-01T00:00:00Z)"},
      // GUIDs, unquoted, normalised to lower case
      {"tenantId eq 9CEB2F92-2F92-9CEB-922F-EB9C922FEB9C", "(eq tenantId '9ceb2f92-2f92-9ceb-922f-eb9c922feb9c')"},
      {"tenantId in (ab2f2f92-2f92-9ceb-922f-eb9c922feb9c)", "(in tenantId 'ab2f2f92-2f92-9ceb-922f-eb9c922feb9c')"},
      // whitespace
      {"  displayName\teq   'x'  ", "(eq displayName 'x')"},
  };
  for (const GoodFilter& c : cases) {
    EXPECT_EQ(Filter(c.filter), c.tree) << "filter: " << c.filter;
  }
}

struct BadInput {
  std::string_view filter;
  std::string_view message;  // a fragment of the error message
};

TEST(ODataFilter, BadInputsNameTheProblem) {
  const BadInput cases[] = {
      // unknown properties, with the position (0-based, in characters)
      {"dispalyName eq 'x'", "Invalid $filter: unknown property 'dispalyName' at position 0."},
      // (a Cyrillic 'е': not an identifier character; positions count characters, not bytes)
      {"displayName eq 'ü' and Statе eq 'valid'",
       "syntax error at position 27 in 'displayName eq 'ü' and Statе eq "
       "'valid'': unexpected character 'е'."},
      {"state eq valid", "unknown property 'valid' (string and enum values are quoted: 'valid') at position 9."},
      {"displayName eq 'é' and foo eq 1", "unknown property 'foo' at position 23."},
      // syntax: unbalanced, trailing garbage, empty
      {"state eq",
       "Invalid $filter: syntax error at position 8 in 'state eq': unexpected end of input, "
       "expected a property, a value or '('."},
      {"(state eq 'valid'", "expected ')' to close the '(' at position 0."},
      {"((state eq 'valid') or (automaticallyUpdateApps)", "expected ')' to close the '(' at position 0."},
      {"state eq 'valid')",
       "syntax error at position 16 in 'state eq 'valid')': unexpected ')', expected 'and', "
       "'or' or the end."},
      {"state eq 'valid' foo", "unexpected 'foo', expected 'and', 'or' or the end"},
      {"state eq 'valid' and", "syntax error at position 20"},
      {"and state eq 'valid'", "unexpected 'and', expected a property, a value or '('"},
      {"()", "unexpected ')'"},
      {"displayName eq 'unterminated",
       "syntax error at position 15 in 'displayName eq 'unterminated': "
       "unterminated string literal."},
      {"displayName eq 'it's'",
       "syntax error at position 20 in 'displayName eq 'it's'': unterminated string "
       "literal."},
      {"", "Invalid $filter: the filter is empty."},
      {"   ", "Invalid $filter: the filter is empty."},
      {"state EQ 'valid'", "'EQ' is not a keyword: OData keywords are lower-case, 'eq'"},
      {"state eq 'valid' AND automaticallyUpdateApps", "OData keywords are lower-case, 'and'"},
      {"lastAppCount add 1 eq 2", "operator 'add' is not supported at position 13."},
      {"displayName eq \"x\"", "unexpected character '\"'"},
      {"displayName eq 'a' && automaticallyUpdateApps", "unexpected character '&'"},
      {"displayName eq 'x' § 1", "unexpected character '§'"},
      {"displayName eq @p1", "parameter aliases ('@name') are not supported at position 15."},
      {"state in 'valid'", "unexpected 'valid', expected '(' after 'in'"},
      {"state in ()", "unexpected ')', expected a property, a value or '('"},
      {"state in ('valid' 'expired')", "expected ',' or ')' in the 'in' list"},
      {"tokenActionResults/any(a:a/actionState eq 'done')",
       "property paths ('tokenActionResults/...') and lambda "
       "operators are not supported at position 18."},
      // type checking
      {"lastAppCount eq 'x'",
       "type mismatch: property 'lastAppCount' is Edm.Int32 but the value 'x' is Edm.String "
       "at position 16."},
      {"displayName eq 5", "property 'displayName' is Edm.String but the value '5' is Edm.Int32"},
      {"displayName eq true", "property 'displayName' is Edm.String but the value 'true' is Edm.Boolean"},
      {"automaticallyUpdateApps eq 1", "is Edm.Boolean but the value '1' is Edm.Int32"},
      {"score eq 'x'", "is Edm.Double but the value 'x' is Edm.String"},
      {"lastAppCount eq 3000000000", "integer 3000000000 is out of range for Edm.Int32 property 'lastAppCount'"},
      {"bytes eq 99999999999999999999", "integer literal '99999999999999999999' is out of range at position 9."},
      {"lastAppCount eq 12abc", "invalid number literal '12abc' at position 16."},
      {"lastAppCount eq 1.5.2", "invalid number literal '1.5.2'"},
      {"expirationDateTime lt '2026-01-01T00:00:00Z'",
       "(DateTimeOffset values are written without quotes, e.g. 2026-01-01T00:00:00Z)"},
      {"expirationDateTime lt 2026-13-01T00:00:00Z", "invalid DateTimeOffset literal '2026-13-01T00:00:00Z'"},
      {"expirationDateTime lt 2026-01-01",
       "Edm.Date literal '2026-01-01' is not supported; write a DateTimeOffset "
       "such as 2026-01-01T00:00:00Z at position 22."},
      {"expirationDateTime lt 5", "property 'expirationDateTime' is Edm.DateTimeOffset but the value '5' is Edm.Int32"},
      {"tenantId eq '9ceb2f92-2f92-9ceb-922f-eb9c922feb9c'", "(GUID values are written without quotes)"},
      {"id eq 9ceb2f92-2f92-9ceb-922f-eb9c922feb9c", "(quote it: '9ceb2f92-2f92-9ceb-922f-eb9c922feb9c')"},
      // enums
      {"state eq 'foo'", "Invalid $filter: 'foo' is not a member of microsoft.graph.vppTokenState at position 9."},
      {"state eq 'Valid'", "'Valid' is not a member of microsoft.graph.vppTokenState"},
      {"state in ('valid', 'bogus')", "'bogus' is not a member of microsoft.graph.vppTokenState at position 19."},
      {"state eq microsoft.graph.vppTokenAccountType'business'",
       "type 'microsoft.graph.vppTokenAccountType' does not match the type of property 'state' "
       "(microsoft.graph.vppTokenState)"},
      {"state eq 1", "property 'state' is microsoft.graph.vppTokenState but the value '1' is Edm.Int32"},
      {"state gt 'valid'", "operator 'gt' is not supported for enum property 'state'"},
      // operators that do not apply
      {"automaticallyUpdateApps gt true",
       "operator 'gt' is not defined for Edm.Boolean property "
       "'automaticallyUpdateApps'"},
      {"displayName gt null", "null can only be compared with 'eq' or 'ne', not 'gt'"},
      {"state in ('valid', null)", "null is not allowed in an 'in' list; use 'eq null'"},
      {"'valid' in ('valid')", "the left side of 'in' must be a property"},
      {"state in (state)", "the items of an 'in' list must be values"},
      // properties that cannot be filtered
      {"roleScopeTagIds eq 'x'",
       "property 'roleScopeTagIds' is a collection (Collection(Edm.String)) and cannot be "
       "used in $filter at position 0."},
      {"tokenActionResults eq null", "property 'tokenActionResults' is a collection"},
      {"token eq 'secret'", "property 'token' cannot be used in $filter at position 0."},
      {"settings eq null", "property 'settings' is of a complex type and cannot be used in $filter"},
      {"startswith(token,'a')", "property 'token' cannot be used in $filter"},
      // shapes
      {"displayName eq lastAppCount", "comparing two properties ('displayName' and 'lastAppCount') is not supported"},
      {"'a' eq 'b'", "one side of 'eq' must be a property at position 0."},
      {"displayName", "property 'displayName' is Edm.String, not a condition; compare it with a value"},
      {"true", "a literal ('true') is not a condition"},
      {"displayName eq 'a' or 5", "a literal ('5') is not a condition"},
      {"(displayName eq 'a') eq true", "an operand of 'eq' must be a property or a value"},
      // functions
      {"startswith(state,'v')",
       "function 'startswith' needs an Edm.String property; 'state' is "
       "microsoft.graph.vppTokenState"},
      {"startswith(displayName)", "function 'startswith' takes 2 arguments, not 1 at position 0."},
      {"contains()", "function 'contains' takes 2 arguments, not 0"},
      {"startswith('x', displayName)", "the first argument of 'startswith' must be a property"},
      {"contains(displayName, 5)", "the second argument of 'contains' must be a string in quotes"},
      {"tolower(displayName) eq 'x'", "function 'tolower' is not supported at position 0."},
      {"frobnicate(displayName)", "unknown function 'frobnicate'"},
      {"startswith(displayName,'a') eq 'x'", "the result of 'startswith' can only be compared with true or false"},
      {"startswith(displayName,'a') gt true", "the result of 'startswith' can only be compared with true or false"},
      {"isof('microsoft.graph.windowsMobileMSI')",
       "'microsoft.graph.windowsMobileMSI' is not a type of microsoft.graph.vppToken (known: "
       "microsoft.graph.vppToken, microsoft.graph.iosVppApp)"},
      {"isof(displayName, 'microsoft.graph.iosVppApp')", "function 'isof' takes 1 argument, not 2"},
      {"isof(displayName)", "isof takes one type name"},
      {"isof('microsoft.graph.iosVppApp') eq false", "(isof"},  // allowed: see below
  };
  for (const BadInput& c : cases) {
    if (c.message == "(isof") continue;
    const std::string got = Filter(c.filter);
    EXPECT_NE(got.find(c.message), std::string::npos) << "filter: " << c.filter << "\n   got: " << got;
    EXPECT_EQ(got.rfind("ERROR: ", 0), 0u) << "filter: " << c.filter;
  }
  EXPECT_EQ(Filter("isof('microsoft.graph.iosVppApp') eq false"), "(not (isof 'microsoft.graph.iosVppApp'))");
}

TEST(ODataFilter, ErrorsAreBadRequestsTargetingTheOption) {
  Result<QueryOptions> q = Parse("$filter=" + Encode("nope eq 1"));
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, Code::kInvalidArgument);
  EXPECT_TRUE(q.error().graph_code.empty());  // errors.cc: BadRequest
  EXPECT_EQ(q.error().target, "$filter");
}

TEST(ODataFilter, DerivedTypePathsHoldForRowsOfTheTypeOnly) {
  EXPECT_EQ(Filter("microsoft.graph.iosVppApp/displayName eq 'a'"),
            "(and (isof 'microsoft.graph.iosVppApp') (eq displayName 'a'))");
  EXPECT_EQ(Filter("'a' ne microsoft.graph.iosVppApp/displayName"),
            "(and (isof 'microsoft.graph.iosVppApp') (ne displayName 'a'))");
  EXPECT_EQ(Filter("microsoft.graph.iosVppApp/state in ('valid')"),
            "(and (isof 'microsoft.graph.iosVppApp') (in state 'valid'))");
  EXPECT_EQ(Filter("startswith(microsoft.graph.iosVppApp/displayName,'a')"),
            "(and (isof 'microsoft.graph.iosVppApp') (startswith displayName 'a'))");
  EXPECT_EQ(Filter("microsoft.graph.vppToken/lastAppCount gt 1 or displayName eq null"),
            "(or (and (isof 'microsoft.graph.vppToken') (gt lastAppCount 1)) (eq displayName null))");
  // A type vppd holds no rows of: checked as Graph declares it, then it matches nothing.
  EXPECT_EQ(Filter("microsoft.graph.managedApp/appAvailability eq null"), "(isof 'microsoft.graph.managedApp')");
  EXPECT_EQ(Filter("microsoft.graph.managedApp/appAvailability ne 'global'"), "(isof 'microsoft.graph.managedApp')");
  EXPECT_EQ(Filter("microsoft.graph.managedApp/displayName eq 'x'"), "(isof 'microsoft.graph.managedApp')");
}

TEST(ODataFilter, BadDerivedTypePathsNameTheProblem) {
  EXPECT_EQ(Filter("microsoft.graph.nosuch/displayName eq 'a'"),
            "ERROR: Invalid $filter: 'microsoft.graph.nosuch' is not a type of microsoft.graph.vppToken at "
            "position 0.");
  EXPECT_EQ(Filter("microsoft.graph.iosVppApp/lastAppCount eq 1"),
            "ERROR: Invalid $filter: unknown property 'lastAppCount' on type 'microsoft.graph.iosVppApp' at "
            "position 26.");
  EXPECT_EQ(Filter("microsoft.graph.managedApp/version eq '1'"),
            "ERROR: Invalid $filter: unknown property 'version' on type 'microsoft.graph.managedApp' at position 27.");
  EXPECT_NE(Filter("microsoft.graph.managedApp/appAvailability eq 'nowhere'").find("is not a member"),
            std::string::npos);
  EXPECT_NE(Filter("microsoft.graph.iosVppApp/roleScopeTagIds eq null").find("is a collection"), std::string::npos);
  EXPECT_NE(Filter("microsoft.graph.iosVppApp/ eq 1").find("expected a property name after"), std::string::npos);
  EXPECT_NE(Filter("microsoft.graph.iosVppApp/displayName/x eq 1").find("property paths"), std::string::npos);
  EXPECT_NE(Filter("microsoft.graph.iosVppApp/microsoft.graph.x eq 1").find("expected a property name"),
            std::string::npos);
  // A path that starts with a property, not a type, is still not supported.
  EXPECT_NE(Filter("displayName/x eq 1").find("property paths ('displayName/...')"), std::string::npos);
}

TEST(ODataFilter, IsOfATypeNotHeldIsValid) {
  EXPECT_EQ(Filter("isof('microsoft.graph.managedApp')"), "(isof 'microsoft.graph.managedApp')");
  // The message lists only the types that have rows.
  EXPECT_EQ(Filter("isof('microsoft.graph.nosuch')"),
            "ERROR: Invalid $filter: 'microsoft.graph.nosuch' is not a type of microsoft.graph.vppToken (known: "
            "microsoft.graph.vppToken, microsoft.graph.iosVppApp) at position 5.");
}

TEST(ODataFilter, NestingIsBoundedWithoutDeepRecursion) {
  QueryLimits roomy;
  roomy.max_filter_length = 1 << 20;
  const std::string leaf = "lastAppCount eq 1";
  // Exactly max_depth parentheses: accepted.
  EXPECT_EQ(Filter(std::string(64, '(') + leaf + std::string(64, ')'), roomy), "(eq lastAppCount 1)");
  // One more: rejected, at the 65th '('.
  EXPECT_EQ(Filter(std::string(65, '(') + leaf + std::string(65, ')'), roomy),
            "ERROR: Invalid $filter: expression nested deeper than 64 levels at position 64.");
  // 10,000: rejected the same way, without walking (or overflowing the stack on) the rest.
  EXPECT_EQ(Filter(std::string(10000, '(') + leaf + std::string(10000, ')'), roomy),
            "ERROR: Invalid $filter: expression nested deeper than 64 levels at position 64.");
  std::string nots;
  for (int i = 0; i < 10000; ++i) nots += "not ";
  EXPECT_NE(Filter(nots + "automaticallyUpdateApps", roomy).find("nested deeper than 64 levels at position 256."),
            std::string::npos);
  // Unbalanced in the other direction, deep.
  EXPECT_NE(Filter(std::string(10000, '(') + leaf, roomy).find("nested deeper"), std::string::npos);
  // A configured lower limit is honoured.
  QueryLimits shallow;
  shallow.max_depth = 2;
  EXPECT_EQ(Filter("((lastAppCount eq 1))", shallow), "(eq lastAppCount 1)");
  EXPECT_NE(Filter("(((lastAppCount eq 1)))", shallow).find("nested deeper than 2 levels"), std::string::npos);
  EXPECT_NE(Filter("not not not automaticallyUpdateApps", shallow).find("nested deeper than 2 levels"),
            std::string::npos);
}

TEST(ODataFilter, LongChainsBecomeShallowTrees) {
  std::string filter = "lastAppCount eq 0";
  for (int i = 1; i < 150; ++i) filter += " or lastAppCount eq " + std::to_string(i);
  ASSERT_LT(filter.size(), 4096u);
  Result<QueryOptions> q = Parse("$filter=" + Encode(filter));
  ASSERT_TRUE(q) << q.error().message;
  // 150 terms → ceil(log2(150)) = 8 levels of `or` (left-assoc would be 149).
  int depth = 0;
  for (const Expr* e = &*q->filter; e->kind == Expr::Kind::kOp && e->op == Op::kOr; e = &e->children[0]) {
    ++depth;
  }
  EXPECT_EQ(depth, 8);
}

TEST(ODataFilter, LengthIsLimited) {
  std::string filter = "displayName eq '" + std::string(5000, 'x') + "'";
  EXPECT_EQ(Filter(filter), "ERROR: Invalid $filter: the filter is 5017 bytes long; at most 4096 are allowed.");
  QueryLimits tight;
  tight.max_filter_length = 20;
  EXPECT_EQ(Filter("displayName eq 'abc'", tight), "(eq displayName 'abc')");
  EXPECT_NE(Filter("displayName eq 'abcd'", tight).find("at most 20 are allowed"), std::string::npos);
}

TEST(ODataFilter, LongMessagesQuoteATruncatedFilter) {
  const std::string filter = "displayName eq '" + std::string(1000, 'x') + "' )";
  const std::string got = Filter(filter);
  EXPECT_NE(got.find("syntax error at position 1018"), std::string::npos) << got;
  EXPECT_NE(got.find("xxx...'"), std::string::npos) << got;
  EXPECT_LT(got.size(), 400u);
}

// ---------------------------------------------------------------------------
// Query string handling
// ---------------------------------------------------------------------------

TEST(ODataQueryString, PercentEncodingEdgeCases) {
  // '+' is a space, %2B a plus; SDKs send %20 and %27.
  EXPECT_EQ(DebugString(*Parse("$filter=displayName+eq+'a+b'")->filter), "(eq displayName 'a b')");
  EXPECT_EQ(DebugString(*Parse("$filter=displayName%20eq%20%27a%2Bb%27")->filter), "(eq displayName 'a+b')");
  // An encoded '&' or '=' stays inside the value.
  EXPECT_EQ(DebugString(*Parse("$filter=displayName%20eq%20'a%26b%3Dc'&$top=1")->filter), "(eq displayName 'a&b=c')");
  // The option name itself may be encoded.
  EXPECT_EQ(DebugString(*Parse("%24filter=automaticallyUpdateApps")->filter), "(eq automaticallyUpdateApps true)");
  // UTF-8, encoded or raw (tolerated like Graph does), and a raw '"' reaches the parser.
  EXPECT_EQ(DebugString(*Parse("$filter=displayName%20eq%20'%E6%97%A5'")->filter), "(eq displayName '日')");
  EXPECT_EQ(DebugString(*Parse("$filter=displayName%20eq%20'日'")->filter), "(eq displayName '日')");
  EXPECT_NE(ErrorOf("$filter=displayName%20eq%20\"x\"").find("syntax error at position 15"), std::string::npos);
  // A leading '?' is tolerated.
  EXPECT_TRUE(Parse("?$top=5"));
  // Offsets sent with a raw '+' arrive as a space: say so.
  EXPECT_NE(ErrorOf("$filter=expirationDateTime%20lt%202026-01-01T00:00:00+02:00")
                .find("a '+' in a URL stands for a space, so send the offset's '+' as %2B"),
            std::string::npos);

  EXPECT_EQ(ErrorOf("$filter=displayName%zz"),
            "Malformed query string: invalid percent-encoding '%zz' at position 19.");
  EXPECT_EQ(ErrorOf("$top=1%2"), "Malformed query string: incomplete percent-encoding at position 6.");
  EXPECT_EQ(ErrorOf("$top=1%"), "Malformed query string: incomplete percent-encoding at position 6.");
  EXPECT_EQ(ErrorOf("$filter=displayName%20eq%20'%00'"),
            "Invalid $filter: the value contains a NUL byte or is not valid UTF-8.");
  EXPECT_EQ(ErrorOf("$filter=displayName%20eq%20'%FF'"),
            "Invalid $filter: the value contains a NUL byte or is not valid UTF-8.");
  // Overlong encoding of '/' and a UTF-16 surrogate: both invalid UTF-8.
  EXPECT_NE(ErrorOf("$filter=displayName%20eq%20'%C0%AF'").find("not valid UTF-8"), std::string::npos);
  EXPECT_NE(ErrorOf("$filter=displayName%20eq%20'%ED%A0%80'").find("not valid UTF-8"), std::string::npos);
  EXPECT_NE(ErrorOf("$filter=displayName%20eq%20'%E6%97'").find("not valid UTF-8"), std::string::npos);
  // Malformed non-$ parameters are ignored, but a bad escape anywhere is not.
  EXPECT_EQ(ErrorOf("api-version=2&foo=%zz"), "Malformed query string: invalid percent-encoding '%zz' at position 18.");
}

TEST(ODataQueryString, OptionsAndDefaults) {
  Result<QueryOptions> q = Parse("");
  ASSERT_TRUE(q);
  EXPECT_FALSE(q->filter);
  EXPECT_TRUE(q->order_by.empty());
  EXPECT_EQ(q->list.skip, 0);
  EXPECT_EQ(q->list.limit, 100);
  EXPECT_FALSE(q->top);
  EXPECT_FALSE(q->count);
  EXPECT_TRUE(q->select.empty());

  q = Parse("$top=5&$skip=20&$count=true&api-version=2&foo&&bar=baz");
  ASSERT_TRUE(q) << q.error().message;
  EXPECT_EQ(q->top, 5);
  EXPECT_EQ(q->list.limit, 5);
  EXPECT_EQ(q->list.skip, 20);
  EXPECT_TRUE(q->count);

  q = Parse("$top=250");  // more than a page: the page size wins, the rest comes by nextLink
  EXPECT_EQ(q->top, 250);
  EXPECT_EQ(q->list.limit, 100);
  q = Parse("$top=0");
  EXPECT_EQ(q->list.limit, 0);
  q = Parse("$top=999&$count=false");
  EXPECT_EQ(q->top, 999);
  EXPECT_FALSE(q->count);
  // Option names are case-insensitive, as in Graph.
  q = Parse("$TOP=7&$Filter=automaticallyUpdateApps");
  ASSERT_TRUE(q) << q.error().message;
  EXPECT_EQ(q->top, 7);
  EXPECT_TRUE(q->filter);
}

TEST(ODataQueryString, BadOptionValues) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"$top=-1", "Invalid value '-1' for $top: must be a non-negative integer."},
      {"$top=abc", "Invalid value 'abc' for $top: must be a non-negative integer."},
      {"$top=", "Invalid value '' for $top: must be a non-negative integer."},
      {"$top", "Invalid value '' for $top: must be a non-negative integer."},
      {"$top=1.5", "Invalid value '1.5' for $top: must be a non-negative integer."},
      {"$top=+5", "Invalid value ' 5' for $top: must be a non-negative integer."},
      {"$top=%2B5", "Invalid value '+5' for $top: must be a non-negative integer."},
      {"$top=100000", "Invalid value '100000' for $top: must be at most 999."},
      {"$top=1000", "Invalid value '1000' for $top: must be at most 999."},
      {"$top=99999999999999999999999", "Invalid value '99999999999999999999999' for $top: must be at most 999."},
      {"$skip=-5", "Invalid value '-5' for $skip: must be a non-negative integer."},
      {"$skip=1e3", "Invalid value '1e3' for $skip: must be a non-negative integer."},
      {"$skip=9007199254740992", "Invalid value '9007199254740992' for $skip: must be at most 9007199254740991."},
      {"$count=maybe", "Invalid value 'maybe' for $count: must be 'true' or 'false'."},
      {"$count=TRUE", "Invalid value 'TRUE' for $count: must be 'true' or 'false'."},
      {"$count=", "Invalid value '' for $count: must be 'true' or 'false'."},
      {"$top=1&$top=2", "Query option '$top' is specified more than once."},
      {"$top=1&$TOP=1", "Query option '$top' is specified more than once."},
      {"$filter=automaticallyUpdateApps&$filter=automaticallyUpdateApps",
       "Query option '$filter' is specified more than once."},
      {"$foo=1", "Query option '$foo' is not supported."},
      {"$format=json", "Query option '$format' is not supported."},
      {"$search=contoso", "Query option '$search' is not supported."},
      {"$expand=*", "Query option '$expand' is not supported."},
      {"$=1", "Query option '$' is not supported."},
      {"$%FFx=1", "Query option '$?x' is not supported."},  // never invalid UTF-8 in a message
      {"$filter=", "Invalid $filter: the filter is empty."},
  };
  for (const auto& [raw, message] : cases) {
    EXPECT_EQ(ErrorOf(raw), message) << "query: " << raw;
  }
  Result<QueryOptions> q = Parse("$top=-1");
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().target, "$top");
  EXPECT_EQ(q.error().code, Code::kInvalidArgument);
  EXPECT_TRUE(q.error().graph_code.empty());  // errors.cc: BadRequest
  EXPECT_EQ(Parse("$nope=1").error().target, "$nope");
}

TEST(ODataQueryString, AllowedOptionsPerEndpoint) {
  AllowedOptions count_endpoint;  // /vppTokens/$count: $filter and $search only
  count_endpoint.orderby = count_endpoint.top = count_endpoint.skip = count_endpoint.count = false;
  count_endpoint.select = count_endpoint.skiptoken = false;
  count_endpoint.search = true;
  EXPECT_EQ(ErrorOf("$top=1", {}, count_endpoint), "Query option '$top' is not supported.");
  EXPECT_EQ(ErrorOf("$orderby=displayName", {}, count_endpoint), "Query option '$orderby' is not supported.");
  EXPECT_EQ(ErrorOf("$skiptoken=abc", {}, count_endpoint), "Query option '$skiptoken' is not supported.");
  Result<QueryOptions> q = Parse("$search=%22contoso%22&$filter=automaticallyUpdateApps", {}, count_endpoint);
  ASSERT_TRUE(q) << q.error().message;
  EXPECT_EQ(q->search, "\"contoso\"");

  AllowedOptions with_expand;
  with_expand.expand = true;
  EXPECT_TRUE(Parse("$expand=*", {}, with_expand));
  EXPECT_EQ(ErrorOf("$expand=assignments"), "Query option '$expand' is not supported.");
  EXPECT_EQ(ErrorOf("$expand=displayName", {}, with_expand),
            "Invalid $expand: property 'displayName' on type 'microsoft.graph.vppToken' is not a navigation "
            "property; only navigation properties can be expanded at position 0.");
}

TEST(ODataExpand, ExpandableNavigationPropertiesAreNamed) {
  AllowedOptions with_expand;
  with_expand.expand = true;
  auto expand = [&](std::string_view value) -> std::string {
    Result<QueryOptions> q = Parse("$expand=" + Encode(value), {}, with_expand);
    if (!q) return "ERROR: " + q.error().message;
    std::string out;
    for (const std::string& n : q->expand) out += (out.empty() ? "" : ",") + n;
    return out;
  };
  EXPECT_EQ(expand("assignments"), "assignments");
  EXPECT_EQ(expand("categories, assignments,assignments"), "categories,assignments");
  EXPECT_EQ(expand("*"), "assignments,categories");
  EXPECT_EQ(expand("assignments($select=id)"),
            "ERROR: Invalid $expand: options and paths of an expanded navigation property ('assignments($select=id)') "
            "are not supported at position 11.");
  EXPECT_EQ(expand("relationships"),
            "ERROR: Invalid $expand: could not find a navigation property named 'relationships' on type "
            "'microsoft.graph.vppToken' at position 0.");
  EXPECT_NE(expand("displayName").find("is not a navigation property"), std::string::npos);
  EXPECT_NE(expand("assignments,").find("expected a navigation property name"), std::string::npos);
  // A single entity's GET expands nothing yet: naming one is a 400 there.
  EXPECT_TRUE(ParseSelectOnly("$expand=*", TestEntity()));
  EXPECT_FALSE(ParseSelectOnly("$expand=assignments", TestEntity()));
}

TEST(ODataPaging, MaxPageSizePreference) {
  EXPECT_EQ(ParseMaxPageSize("odata.maxpagesize=5"), 5);
  EXPECT_EQ(ParseMaxPageSize("return=minimal, odata.maxpagesize=7"), 7);
  EXPECT_EQ(ParseMaxPageSize("ODATA.MaxPageSize = \"3\" ; x=y"), 3);
  EXPECT_EQ(ParseMaxPageSize("maxpagesize=4"), 4);
  EXPECT_EQ(ParseMaxPageSize("odata.maxpagesize=2,odata.maxpagesize=9"), 2);  // the first counts
  EXPECT_EQ(ParseMaxPageSize(""), std::nullopt);
  EXPECT_EQ(ParseMaxPageSize("odata.maxpagesize"), std::nullopt);
  EXPECT_EQ(ParseMaxPageSize("odata.maxpagesize=0"), std::nullopt);
  EXPECT_EQ(ParseMaxPageSize("odata.maxpagesize=-1"), std::nullopt);
  EXPECT_EQ(ParseMaxPageSize("odata.maxpagesize=1e3"), std::nullopt);
  EXPECT_EQ(ParseMaxPageSize("odata.maxpagesize=99999999999999999999"), std::nullopt);
  EXPECT_EQ(ParseMaxPageSize("odata.maxpagesize=abc, odata.maxpagesize=5"), std::nullopt);
  EXPECT_EQ(ParseMaxPageSize("respond-async, wait=10"), std::nullopt);

  QueryLimits limits;
  limits.default_page_size = 100;
  Result<QueryOptions> q = Parse("", limits);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->list.limit, 100);
  EXPECT_EQ(q->applied_page_size, std::nullopt);
  limits.preferred_page_size = 3;
  q = Parse("", limits);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->list.limit, 3);
  EXPECT_EQ(q->applied_page_size, 3);
  q = Parse("$top=2", limits);
  EXPECT_EQ(q->list.limit, 2);
  q = Parse("$top=10", limits);
  EXPECT_EQ(q->list.limit, 3);
  EXPECT_TRUE(HasNextPage(*q, 3, true));
  // Above the server's page size: the server's applies, and is what Preference-Applied says.
  limits.preferred_page_size = 500;
  q = Parse("", limits);
  EXPECT_EQ(q->list.limit, 100);
  EXPECT_EQ(q->applied_page_size, 100);
}

// ---------------------------------------------------------------------------
// $orderby and $select
// ---------------------------------------------------------------------------

std::string OrderBy(std::string_view value) {
  Result<QueryOptions> q = Parse("$orderby=" + Encode(value));
  if (!q) return "ERROR: " + q.error().message;
  std::string out;
  for (const OrderKey& k : q->order_by) {
    out += (out.empty() ? "" : ",") + k.property + (k.descending ? " desc" : " asc");
  }
  return out;
}

TEST(ODataOrderBy, KeysInOrder) {
  EXPECT_EQ(OrderBy("displayName"), "displayName asc");
  EXPECT_EQ(OrderBy("displayName desc,lastSyncDateTime"), "displayName desc,lastSyncDateTime asc");
  EXPECT_EQ(OrderBy(" state asc , expirationDateTime desc , lastAppCount "),
            "state asc,expirationDateTime desc,lastAppCount asc");
  EXPECT_EQ(OrderBy("displayName foo"),
            "ERROR: Invalid $orderby: syntax error at position 12 in 'displayName foo': unexpected 'foo', expected "
            "'asc', 'desc', ',' or the end.");
  EXPECT_EQ(OrderBy("displayName DESC").find("(keywords are lower-case: 'desc')") != std::string::npos, true);
  EXPECT_EQ(OrderBy("displayName desc, displayName"),
            "ERROR: Invalid $orderby: property 'displayName' appears more than once at position 18.");
  EXPECT_EQ(OrderBy("dispalyName"), "ERROR: Invalid $orderby: unknown property 'dispalyName' at position 0.");
  EXPECT_EQ(OrderBy("roleScopeTagIds"),
            "ERROR: Invalid $orderby: property 'roleScopeTagIds' (Collection(Edm.String)) cannot be used in $orderby "
            "at position 0.");
  EXPECT_NE(OrderBy("token").find("property 'token' (Edm.String) cannot be used in $orderby"), std::string::npos);
  EXPECT_NE(OrderBy("settings").find("cannot be used in $orderby"), std::string::npos);
  EXPECT_NE(OrderBy("displayName,").find("unexpected end of input, expected a property name"), std::string::npos);
  EXPECT_NE(OrderBy(",displayName").find("unexpected ',', expected a property name"), std::string::npos);
  EXPECT_NE(OrderBy("'displayName'").find("expected a property name"), std::string::npos);
  // Empty: ignored, as Graph ignores it.
  EXPECT_EQ(OrderBy(""), "");
  EXPECT_EQ(OrderBy("  "), "");
  EXPECT_TRUE(Parse("$orderby="));
}

TEST(ODataOrderBy, DerivedTypePaths) {
  EXPECT_EQ(OrderBy("microsoft.graph.iosVppApp/displayName desc,state"), "displayName desc,state asc");
  // A type with no rows here: every value is null, so the key orders nothing.
  EXPECT_EQ(OrderBy("microsoft.graph.managedApp/appAvailability,displayName"), "displayName asc");
  EXPECT_EQ(OrderBy("microsoft.graph.managedApp/displayName"), "");
  EXPECT_EQ(OrderBy("microsoft.graph.nosuch/displayName"),
            "ERROR: Invalid $orderby: 'microsoft.graph.nosuch' is not a type of microsoft.graph.vppToken at "
            "position 0.");
  EXPECT_EQ(OrderBy("microsoft.graph.iosVppApp/lastAppCount"),
            "ERROR: Invalid $orderby: unknown property 'lastAppCount' on type 'microsoft.graph.iosVppApp' at "
            "position 26.");
  EXPECT_EQ(OrderBy("microsoft.graph.managedApp/version"),
            "ERROR: Invalid $orderby: unknown property 'version' on type 'microsoft.graph.managedApp' at position 27.");
  EXPECT_NE(OrderBy("microsoft.graph.iosVppApp/roleScopeTagIds").find("cannot be used in $orderby"), std::string::npos);
  EXPECT_NE(OrderBy("microsoft.graph.iosVppApp/").find("expected a property name"), std::string::npos);
}

std::string Select(std::string_view value) {
  Result<QueryOptions> q = Parse("$select=" + Encode(value));
  if (!q) return "ERROR: " + q.error().message;
  std::string out;
  for (const std::string& s : q->select) out += (out.empty() ? "" : ",") + s;
  return out.empty() ? "(all)" : out;
}

TEST(ODataSelect, NamesInOrder) {
  EXPECT_EQ(Select("displayName,state"), "displayName,state");
  EXPECT_EQ(Select(" state , displayName,state"), "state,displayName");  // trimmed, de-duplicated
  EXPECT_EQ(Select("roleScopeTagIds,token,tokenActionResults"), "roleScopeTagIds,token,tokenActionResults");
  EXPECT_EQ(Select("*"), "(all)");
  EXPECT_EQ(Select("displayName,*"), "(all)");
  EXPECT_EQ(Select("dispalyName"),
            "ERROR: Invalid $select: unknown property 'dispalyName' on type 'microsoft.graph.vppToken' at position 0.");
  EXPECT_EQ(
      Select("displayName,DisplayName"),
      "ERROR: Invalid $select: unknown property 'DisplayName' on type 'microsoft.graph.vppToken' at position 12.");
  EXPECT_EQ(Select("displayName,,state"), "ERROR: Invalid $select: expected a property name at position 12.");
  EXPECT_EQ(Select(""), "ERROR: Invalid $select: expected a property name at position 0.");
  EXPECT_EQ(Select("displayName,"), "ERROR: Invalid $select: expected a property name at position 12.");
}

TEST(ODataSelectOnly, SingleEntityGet) {
  Result<std::vector<std::string>> s = ParseSelectOnly("$select=displayName,state&api-version=1", TestEntity());
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(*s, (std::vector<std::string>{"displayName", "state"}));
  s = ParseSelectOnly("", TestEntity());
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->empty());
  EXPECT_TRUE(ParseSelectOnly("$expand=*", TestEntity()));

  auto error = [](std::string_view raw) {
    Result<std::vector<std::string>> r = ParseSelectOnly(raw, TestEntity());
    return r ? std::string("OK") : r.error().message;
  };
  EXPECT_EQ(error("$expand=displayName"),
            "Invalid $expand: property 'displayName' on type 'microsoft.graph.vppToken' is not a navigation property; "
            "only navigation properties can be expanded at position 0.");
  EXPECT_EQ(error("$expand=*,assignedLicenses($select=id)"),
            "Invalid $expand: could not find a navigation property named 'assignedLicenses' on type "
            "'microsoft.graph.vppToken' at position 2.");
  EXPECT_EQ(error("$filter=automaticallyUpdateApps"), "Query option '$filter' is not supported.");
  EXPECT_EQ(error("$top=1"), "Query option '$top' is not supported.");
  EXPECT_EQ(error("$select=nope"),
            "Invalid $select: unknown property 'nope' on type 'microsoft.graph.vppToken' at position 0.");
  EXPECT_EQ(error("$select=id&$select=id"), "Query option '$select' is specified more than once.");
}

// ---------------------------------------------------------------------------
// Paging: $skiptoken and next links
// ---------------------------------------------------------------------------

std::string TokenOf(const std::string& query) {
  const std::size_t at = query.find("$skiptoken=");
  return at == std::string::npos ? std::string() : query.substr(at + 11);
}

TEST(ODataPaging, NextLinksWalkTheTopAcrossPages) {
  const std::string first = "$filter=" + Encode("state eq 'valid'") + "&$top=250&$count=true&api-version=2";
  Result<QueryOptions> p1 = Parse(first);
  ASSERT_TRUE(p1) << p1.error().message;
  EXPECT_EQ(p1->list.skip, 0);
  EXPECT_EQ(p1->list.limit, 100);
  ASSERT_TRUE(HasNextPage(*p1, 100, true));

  const std::string second = NextLinkQuery(first, *p1, 100);
  // The other options are kept as sent; $top became part of the token.
  EXPECT_EQ(second.rfind("$filter=" + Encode("state eq 'valid'") + "&$count=true&api-version=2&$skiptoken=", 0), 0u)
      << second;
  EXPECT_EQ(second.find("$top"), std::string::npos);
  Result<QueryOptions> p2 = Parse(second);
  ASSERT_TRUE(p2) << p2.error().message;
  EXPECT_EQ(p2->list.skip, 100);
  EXPECT_EQ(p2->top, 150);
  EXPECT_EQ(p2->list.limit, 100);
  EXPECT_TRUE(p2->count);
  EXPECT_EQ(DebugString(*p2->filter), "(eq state 'valid')");
  ASSERT_TRUE(HasNextPage(*p2, 100, true));

  const std::string third = NextLinkQuery(second, *p2, 200);
  EXPECT_EQ(third.find("$skiptoken=" + TokenOf(second)), std::string::npos);  // the old token is replaced
  Result<QueryOptions> p3 = Parse(third);
  ASSERT_TRUE(p3) << p3.error().message;
  EXPECT_EQ(p3->list.skip, 200);
  EXPECT_EQ(p3->top, 50);
  EXPECT_EQ(p3->list.limit, 50);
  // The $top is used up after this page, whatever the store has beyond it.
  EXPECT_FALSE(HasNextPage(*p3, 50, true));
  EXPECT_FALSE(HasNextPage(*p3, 20, false));
}

TEST(ODataPaging, WithoutTopAndWithSkip) {
  const std::string first = "$skip=10&$orderby=displayName%20desc";
  Result<QueryOptions> p1 = Parse(first);
  ASSERT_TRUE(p1);
  EXPECT_EQ(p1->list.skip, 10);
  EXPECT_TRUE(HasNextPage(*p1, 100, true));
  EXPECT_FALSE(HasNextPage(*p1, 100, false));
  const std::string second = NextLinkQuery(first, *p1, 110);
  EXPECT_EQ(second.rfind("$orderby=displayName%20desc&$skiptoken=", 0), 0u) << second;
  Result<QueryOptions> p2 = Parse(second);
  ASSERT_TRUE(p2) << p2.error().message;
  EXPECT_EQ(p2->list.skip, 110);
  EXPECT_FALSE(p2->top);
  EXPECT_EQ(p2->list.limit, 100);
  ASSERT_EQ(p2->order_by.size(), 1u);
  EXPECT_TRUE(p2->order_by[0].descending);
  // An empty query still gets a valid link.
  Result<QueryOptions> bare = Parse("");
  const std::string link = NextLinkQuery("", *bare, 100);
  EXPECT_EQ(link.rfind("$skiptoken=", 0), 0u);
  EXPECT_EQ(Parse(link)->list.skip, 100);
}

TEST(ODataPaging, ReEncodedLinksStillMatch) {
  // A client (or proxy) that re-encodes the link differently but equivalently is fine:
  // the token is bound to the decoded option values.
  const std::string first = "$filter=displayName+eq+'a'";
  Result<QueryOptions> p1 = Parse(first);
  const std::string token = TokenOf(NextLinkQuery(first, *p1, 100));
  Result<QueryOptions> p2 = Parse("$filter=displayName%20eq%20%27a%27&$skiptoken=" + token);
  ASSERT_TRUE(p2) << p2.error().message;
  EXPECT_EQ(p2->list.skip, 100);
}

TEST(ODataPaging, TamperedOrMisusedTokensAreRejected) {
  const std::string first = "$filter=" + Encode("state eq 'valid'") + "&$top=250";
  Result<QueryOptions> p1 = Parse(first);
  const std::string token = TokenOf(NextLinkQuery(first, *p1, 100));
  ASSERT_FALSE(token.empty());
  const std::string filter = "$filter=" + Encode("state eq 'valid'");
  ASSERT_TRUE(Parse(filter + "&$skiptoken=" + token));

  const std::string invalid =
      "Invalid $skiptoken: the token is malformed or was not issued for these query options; follow @odata.nextLink "
      "exactly as returned.";
  // Every single-character change of the token is caught.
  for (std::size_t i = 0; i < token.size(); ++i) {
    std::string bad = token;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    EXPECT_EQ(ErrorOf(filter + "&$skiptoken=" + bad), invalid) << "changed char " << i;
  }
  // A well-formed token with edited numbers (and the old checksum) is caught.
  Result<std::string> body = Base64UrlDecode(token);
  ASSERT_TRUE(body);
  EXPECT_EQ(body->rfind("v1.100.150.", 0), 0u) << *body;
  std::string forged = *body;
  forged.replace(3, 3, "999");
  EXPECT_EQ(ErrorOf(filter + "&$skiptoken=" + Base64UrlEncode(forged)), invalid);
  // Reused with another filter, or without one.
  EXPECT_EQ(ErrorOf("$filter=" + Encode("state eq 'expired'") + "&$skiptoken=" + token), invalid);
  EXPECT_EQ(ErrorOf("$skiptoken=" + token), invalid);
  EXPECT_EQ(ErrorOf(filter + "&$count=true&$skiptoken=" + token), invalid);
  // Garbage, empty, oversized, other versions.
  EXPECT_EQ(ErrorOf("$skiptoken=!!!"), invalid);
  EXPECT_EQ(ErrorOf("$skiptoken="), invalid);
  EXPECT_EQ(ErrorOf("$skiptoken=" + std::string(300, 'A')), invalid);
  EXPECT_EQ(ErrorOf("$skiptoken=" + Base64UrlEncode("v2.1.-.0123456789abcdef")), invalid);
  EXPECT_EQ(ErrorOf("$skiptoken=" + Base64UrlEncode("v1.-1.-.0123456789abcdef")), invalid);
  // Mixed with the client's own paging.
  EXPECT_EQ(ErrorOf(filter + "&$top=5&$skiptoken=" + token),
            "Query option '$skiptoken' cannot be combined with '$skip' or '$top'.");
  EXPECT_EQ(ErrorOf(filter + "&$skip=5&$skiptoken=" + token),
            "Query option '$skiptoken' cannot be combined with '$skip' or '$top'.");
  Result<QueryOptions> q = Parse("$skiptoken=x");
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().target, "$skiptoken");
}

// ---------------------------------------------------------------------------
// DebugString
// ---------------------------------------------------------------------------

TEST(ODataDebugString, PrintsEveryLiteralKind) {
  const Expr e = Expr::Apply(
      Op::kAnd, {Expr::Apply(Op::kIn, {Expr::Property("p"), Expr::Value(std::int64_t{-3}), Expr::Value(2.0),
                                       Expr::Value(0.5), Expr::Value(std::string("it's")), Expr::Value(true),
                                       Expr::Value(store::Literal{}), Expr::Value(store::DateTime{1'000'001})}),
                 Expr::Apply(Op::kIsOf, {Expr::Value(std::string("t"))})});
  EXPECT_EQ(DebugString(e), "(and (in p -3 2.0 0.5 'it''s' true null 1970-01-01T00:00:01.000001Z) (isof 't'))");
}

}  // namespace
}  // namespace vppd::graph

namespace vppd::graph {
namespace {

// Random sequences of filter fragments and raw bytes: every input must give either a
// tree or a BadRequest, never a crash, a hang or another error code. Deterministic
// (fixed seed) so that a failure reproduces; run it under ASan/UBSan to be useful.
TEST(ODataRobustness, RandomInputsGiveTreesOrBadRequests) {
  static constexpr std::string_view kPieces[] = {"displayName",
                                                 "state",
                                                 "lastAppCount",
                                                 "score",
                                                 "tenantId",
                                                 "expirationDateTime",
                                                 "token",
                                                 "roleScopeTagIds",
                                                 "automaticallyUpdateApps",
                                                 " eq ",
                                                 " ne ",
                                                 " gt ",
                                                 " and ",
                                                 " or ",
                                                 "not ",
                                                 " in ",
                                                 "(",
                                                 ")",
                                                 ",",
                                                 "'",
                                                 "''",
                                                 "'valid'",
                                                 "'x'",
                                                 "1",
                                                 "-2",
                                                 "1.5",
                                                 "1e3",
                                                 "null",
                                                 "true",
                                                 "false",
                                                 "2026-01-01T00:00:00Z",
                                                 "9ceb2f92-2f92-9ceb-922f-eb9c922feb9c",
                                                 "startswith(",
                                                 "isof(",
                                                 "microsoft.graph.vppTokenState'valid'",
                                                 "/",
                                                 "%",
                                                 "%2",
                                                 "%zz",
                                                 "%20",
                                                 "%27",
                                                 "%00",
                                                 "%FF",
                                                 "+",
                                                 "&",
                                                 "=",
                                                 "$top=",
                                                 "$filter=",
                                                 "é",
                                                 "\x80",
                                                 " ",
                                                 "@",
                                                 ":",
                                                 ".",
                                                 "-"};
  std::uint64_t seed = 0x9E3779B97F4A7C15ull;
  auto next = [&seed] {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  };
  int parsed = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string raw = "$filter=";
    const int pieces = 1 + static_cast<int>(next() % 12);
    for (int i = 0; i < pieces; ++i) raw += kPieces[next() % std::size(kPieces)];
    Result<QueryOptions> q = Parse(raw);
    if (q) {
      ++parsed;
      if (q->filter) {
        EXPECT_FALSE(DebugString(*q->filter).empty());
      }
    } else {
      EXPECT_EQ(q.error().code, Code::kInvalidArgument) << raw;
      EXPECT_TRUE(q.error().graph_code.empty()) << raw;  // errors.cc: BadRequest
      EXPECT_FALSE(q.error().message.empty()) << raw;
    }
  }
  EXPECT_GT(parsed, 0);  // the generator does reach valid filters
}

// --- Prefer: odata.include-annotations ---------------------------------------------

TEST(IncludesAnnotation, PatternsTermsNamespacesAndExclusions) {
  constexpr std::string_view kTerm = "vppd.untrackedLicenseCount";
  EXPECT_FALSE(IncludesAnnotation("", kTerm));
  EXPECT_FALSE(IncludesAnnotation("odata.maxpagesize=10", kTerm));
  EXPECT_TRUE(IncludesAnnotation("odata.include-annotations=\"vppd.untrackedLicenseCount\"", kTerm));
  EXPECT_TRUE(IncludesAnnotation("odata.include-annotations=vppd.*", kTerm));
  EXPECT_TRUE(IncludesAnnotation("Odata.Include-Annotations = \"*\"", kTerm));
  EXPECT_TRUE(IncludesAnnotation("include-annotations=\"display.*,vppd.untrackedLicenseCount\"", kTerm));
  // Among other preferences, the list's commas inside quotes.
  EXPECT_TRUE(
      IncludesAnnotation("odata.maxpagesize=5, odata.include-annotations=\"a.*, vppd.*\", return=minimal", kTerm));
  EXPECT_FALSE(IncludesAnnotation("odata.include-annotations=\"display.*\"", kTerm));
  EXPECT_FALSE(IncludesAnnotation("odata.include-annotations=\"vppd.untrackedLicenseCounts\"", kTerm));
  EXPECT_FALSE(IncludesAnnotation("odata.include-annotations=\"vppdx.*\"", kTerm));
  // The most specific pattern decides; an exclusion wins a tie.
  EXPECT_FALSE(IncludesAnnotation("odata.include-annotations=\"*,-vppd.*\"", kTerm));
  EXPECT_TRUE(IncludesAnnotation("odata.include-annotations=\"-vppd.*,vppd.untrackedLicenseCount\"", kTerm));
  EXPECT_FALSE(IncludesAnnotation("odata.include-annotations=\"vppd.*,-vppd.*\"", kTerm));
  EXPECT_FALSE(IncludesAnnotation("odata.include-annotations=\"-*\"", kTerm));
  // The first preference counts.
  EXPECT_FALSE(IncludesAnnotation("odata.include-annotations=\"-*\", odata.include-annotations=\"vppd.*\"", kTerm));
}

}  // namespace
}  // namespace vppd::graph
