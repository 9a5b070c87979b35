// OData v4 system query options for Graph collections: `$filter`, `$orderby`, `$top`,
// `$skip`, `$count`, `$select`, `$skiptoken`, `$expand` of the entity's expandable
// navigation properties, and the `odata.maxpagesize` preference (ParseMaxPageSize).
//
// The raw query string of a request is split and percent-decoded with Boost.URL, and
// each option is parsed by a hand-written tokenizer and recursive-descent parser into
// a typed tree in Graph's terms (Expr, OrderKey below), checked against an EntityDef:
// every property name, every literal's type, every enum member. The tree is then
// translated into the store's query model (store/query.h: columns, not Graph names)
// through the EntityDef's mapping (graph/store_mapping.h). Nothing the client sends
// is ever pasted into SQL; the store only sees typed trees over its own columns.
//
//   graph::QueryLimits limits;
//   auto q = graph::ParseQueryOptions(request_query, VppTokenEntity(), {}, limits);
//   if (!q) return q.error();                  // 400 BadRequest with a precise message
//   auto page = store.ListTokens(tenant, q->list);
//   if (graph::HasNextPage(*q, page->items.size(), page->has_more))
//     next_link = base + "?" + graph::NextLinkQuery(request_query, *q, q->list.skip + page->items.size());
//
// Error messages name the option and, for `$filter`/`$orderby`, the offending token and
// its position: a 0-based character (code point) offset into the decoded option value,
// the convention of Microsoft.OData ("Syntax error at position 14 in 'state eq'").
//
// Filter grammar (precedence low → high: or, and, not, comparison/in, primary):
//   or_expr   := and_expr ('or' and_expr)*
//   and_expr  := not_expr ('and' not_expr)*
//   not_expr  := 'not' not_expr | cmp_expr
//   cmp_expr  := primary [ ('eq'|'ne'|'gt'|'ge'|'lt'|'le') primary | 'in' '(' primary (',' primary)* ')' ]
//   primary   := '(' or_expr ')' | literal | property | function '(' [primary (',' primary)*] ')'
//   property  := name | qualified_type '/' name   (a derived-type path: `microsoft.graph.iosVppApp/vppTokenId`)
// A derived-type path names a property Graph declares on that type (TypeDef); the
// comparison then holds for rows of that type only: `isof(T) and (...)`. On a type the
// entity holds no rows of, it holds for none. `$orderby` takes the same paths.
// Note that `not` binds looser than comparisons: `not state eq 'valid'` is
// `not (state eq 'valid')`, which is what people mean when they write it.
//
// Everything here is a pure function of its arguments: thread-safe, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "store/query.h"

namespace vppd::graph {

enum class EdmType { kString, kBoolean, kInt32, kInt64, kDouble, kDateTimeOffset, kGuid, kBinary, kEnum, kComplex };

struct PropertyDef {
  std::string name;  // "displayName"
  EdmType type;
  bool collection = false;  // Collection(...): not filterable/sortable, but selectable
  bool nullable = true;
  std::vector<std::string> enum_members;  // kEnum: member names in declared order
  std::string enum_type;                  // kEnum: "microsoft.graph.vppTokenState"
  bool filterable = true;                 // false e.g. for the encrypted sToken
  // The store column that holds it: set for every property that $filter/$orderby may
  // use (filterable, not a collection nor complex), and only for those.
  std::optional<store::Column> column;
};

// A type allowed in isof(...), casts and derived-type paths (`T/property`), and which
// of the store's rows are of it.
struct TypeDef {
  std::string name;  // "microsoft.graph.iosVppApp"
  // Rows of this type are those whose `column` holds `value` (platform = 'iOS'); no
  // column: every row of the entity set.
  std::optional<store::Column> column;
  std::string value;
  // False: a type of Graph's schema derived from the entity's that vppd holds no rows
  // of (microsoft.graph.iosStoreApp): isof(T) and `T/p` are valid and match nothing.
  bool held = true;
  // The properties a derived-type path `T/p` may name. A held type: names of the
  // EntityDef's properties declared on T (or inherited); empty = all of them. A type
  // not held: what Graph declares on T beyond the entity's own properties (only for
  // type-checking the comparison, which matches nothing).
  std::vector<std::string> property_names;
  std::vector<PropertyDef> foreign_properties;
};

struct EntityDef {
  std::string name;                     // "vppToken"; messages call it "microsoft.graph.vppToken"
  std::vector<PropertyDef> properties;  // what this API version exposes
  std::vector<TypeDef> types;           // types allowed in isof(...)/casts; rows of another type: none
  // Navigation properties a collection's $expand may name; vppd expands each to an
  // empty collection ("assignments" of mobileApps, until assignments are stored).
  std::vector<std::string> expandable;
  store::Table table = store::Table::kVppTokens;         // where the store keeps the entity set
  const PropertyDef* Find(std::string_view name) const;  // exact, case-sensitive (OData is)
  const TypeDef* FindType(std::string_view name) const;  // exact
};

// $filter in Graph's terms: property names, and isof with a type name. Literals are
// the store's (typed values carry no vocabulary).
enum class Op {
  // comparisons: two children, the property first
  kEq,
  kNe,
  kGt,
  kGe,
  kLt,
  kLe,
  // logic: kAnd/kOr two children, kNot one
  kAnd,
  kOr,
  kNot,
  // kIn: child 0 the property, children 1..n literals
  kIn,
  // string functions: child 0 the property, child 1 a string literal
  kStartsWith,
  kEndsWith,
  kContains,
  // isof('microsoft.graph.X'): child 0 a string literal with the type name
  kIsOf,
};

struct Expr {
  enum class Kind { kProperty, kLiteral, kOp };
  Kind kind = Kind::kLiteral;
  std::string property;    // kProperty: the Graph property name ("displayName")
  store::Literal literal;  // kLiteral
  Op op = Op::kEq;         // kOp
  std::vector<Expr> children;

  static Expr Property(std::string name) {
    Expr e;
    e.kind = Kind::kProperty;
    e.property = std::move(name);
    return e;
  }
  static Expr Value(store::Literal v) {
    Expr e;
    e.kind = Kind::kLiteral;
    e.literal = std::move(v);
    return e;
  }
  static Expr Apply(Op op, std::vector<Expr> children) {
    Expr e;
    e.kind = Kind::kOp;
    e.op = op;
    e.children = std::move(children);
    return e;
  }
};

// A $orderby key in Graph's terms.
struct OrderKey {
  std::string property;
  bool descending = false;
};

struct QueryLimits {
  std::int64_t default_page_size = 100;  // rows per page when $top is absent or larger
  std::int64_t max_top = 999;            // largest accepted $top
  std::size_t max_filter_length = 4096;  // bytes of a decoded $filter (also caps $orderby/$select)
  int max_depth = 64;                    // nesting of parentheses and `not` in $filter
  // The client's `Prefer: odata.maxpagesize=N` (see ParseMaxPageSize): pages hold at
  // most min(N, default_page_size) rows. Absent: no preference.
  std::optional<std::int64_t> preferred_page_size;
};

// Which options the endpoint accepts (others → 400 "not supported" naming the option).
struct AllowedOptions {
  bool filter = true, orderby = true, top = true, skip = true, count = true, select = true, search = false,
       expand = false, skiptoken = true;
};

struct QueryOptions {
  // $filter and $orderby in Graph's terms, as checked against the EntityDef.
  std::optional<Expr> filter;
  std::vector<OrderKey> order_by;
  // What the store is asked: filter and order_by above in the store's columns (the
  // order without the id tie-breaker: the store appends it), skip (from $skip or the
  // $skiptoken), limit (= min(top remaining, default_page_size)).
  store::ListQuery list;
  // $top as given; after a $skiptoken, the part of the original $top still to be
  // returned from list.skip onwards. Absent = no client limit.
  std::optional<std::int64_t> top;
  std::vector<std::string> select;  // validated property names, in the order given, no duplicates; empty = all
  bool count = false;               // $count=true
  // $expand as given: names from EntityDef::expandable, in the order given, no
  // duplicates (`*` names them all). Only when AllowedOptions::expand.
  std::vector<std::string> expand;
  // Set when limits.preferred_page_size was given: the page size applied,
  // min(N, default_page_size), to answer in `Preference-Applied: odata.maxpagesize=...`.
  std::optional<std::int64_t> applied_page_size;
  // $search as given (decoded), only when AllowedOptions::search; the caller interprets it.
  std::optional<std::string> search;
  // For server-driven paging: the `$skiptoken` to put in @odata.nextLink for the next
  // page is computed by NextLinkQuery below.
};

// Parses the raw (still percent-encoded) query string of a request, without the '?':
// `$filter=...&$top=5`. `+` decodes to a space (as browsers and SDKs encode it); a
// literal plus must be sent as %2B. Bytes that RFC 3986 does not allow unescaped in a
// query (raw UTF-8, `"`, `[`) are tolerated as themselves. Option names are matched
// case-insensitively (Graph does); filter keywords and property names are not.
//
// Errors, all InvalidArgument with graph code "BadRequest" and `target` = the option:
//  - malformed percent-encoding, NUL or invalid UTF-8 in a value;
//  - an unknown or not-allowed `$`-option: "Query option '$foo' is not supported.";
//  - a repeated option: "Query option '$top' is specified more than once.";
//  - "Invalid value 'x' for $top: must be a non-negative integer." (also $skip; $top
//    above max_top; $count not 'true'/'false');
//  - `$filter`/`$orderby`/`$select`/`$expand` errors naming the property, token and position, e.g.
//    "Invalid $filter: unknown property 'dispalyName' at position 0." or
//    "Invalid $filter: syntax error at position 16 in 'state eq 'valid')': unexpected ')',
//    expected 'and', 'or' or the end.";
//  - a $skiptoken that is not one NextLinkQuery produced for these same options
//    (tampered, or reused with another $filter/$orderby/...), or combined with $skip/$top.
// An empty (or blank) `$orderby` is ignored, as Graph ignores it.
// `limits.preferred_page_size` caps the page (list.limit) and sets applied_page_size.
// Non-`$` parameters are ignored (Graph ignores them); the caller may read them itself.
// The filter and order are translated into `list` as ToStoreFilter/ToStoreOrder do
// (graph/store_mapping.h); Internal if the entity maps a usable property nowhere.
Result<QueryOptions> ParseQueryOptions(std::string_view raw_query, const EntityDef& entity,
                                       const AllowedOptions& allowed, const QueryLimits& limits);

// The N of an `odata.maxpagesize=N` preference in the value of a `Prefer` header
// (RFC 7240: comma-separated preferences, names case-insensitive, parameters after
// ';' ignored), when N is a positive integer; nullopt otherwise (no such preference,
// or a value that is not one: a preference the server cannot honour is ignored).
std::optional<std::int64_t> ParseMaxPageSize(std::string_view prefer_header);

// Whether an `odata.include-annotations` preference in the value of a `Prefer`
// header asks for the instance annotation `term` ("vppd.untrackedLicenseCount"):
// its value (quoted or not) is a comma-separated list of `*`, `namespace.*` or a
// term, each possibly excluded by a leading `-`; the most specific pattern that
// matches decides, an exclusion winning a tie (OData 4.01 Protocol 8.2.8.4). The
// first such preference counts (RFC 7240); none: false.
bool IncludesAnnotation(std::string_view prefer_header, std::string_view term);

// ParseQueryOptions in Graph's terms only: `filter` and `order_by` are set, `list`
// holds skip and limit but no filter or order. For entities without a store mapping
// (the grammar's own tests); the same errors otherwise.
Result<QueryOptions> ParseGraphQueryOptions(std::string_view raw_query, const EntityDef& entity,
                                            const AllowedOptions& allowed, const QueryLimits& limits);

// Options for a single-entity GET: only $select, and $expand, which is checked as Graph
// checks it: `*` expands nothing and is accepted; a name that is not a navigation
// property is rejected ("Invalid $expand: property 'displayName' on type
// 'microsoft.graph.vppToken' is not a navigation property..."). A single entity's
// writers expand nothing, so every named $expand is a 400 here, `expandable` ones
// included. Other `$`-options → 400 "not supported"; errors as for ParseQueryOptions.
Result<std::vector<std::string>> ParseSelectOnly(std::string_view raw_query, const EntityDef& entity);

// The query string for the next page: the original options (their encoded text kept
// as sent) with `$skip`/`$top`/`$skiptoken` replaced by a `$skiptoken` that encodes
// (next_offset, remaining top) plus a checksum binding it to the other `$`-options.
// The token is opaque to clients and validated when parsed back (tampered → 400). It is
// an integrity check, not a secret: it grants nothing `$skip`/`$top` do not.
// `next_offset` is the absolute offset of the first row of the next page, normally
// current.list.skip + rows returned. Returns the encoded query string to append after '?'.
std::string NextLinkQuery(std::string_view raw_query, const QueryOptions& current, std::int64_t next_offset);

// Whether a next page exists: the store said so and the client's $top is not yet used
// up by the `returned` rows of this page.
bool HasNextPage(const QueryOptions& current, std::int64_t returned, bool store_has_more);

// A compact S-expression of a filter tree, for tests and logs:
// `(and (eq state 'valid') (not (startswith displayName 'it''s')))`. Doubles always
// show a '.' or exponent (`2.0`), date-times print as ISO-8601, null as `null`.
std::string DebugString(const Expr& expr);

}  // namespace vppd::graph
