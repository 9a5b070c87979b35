// OData v4 system query options for Graph collections: `$filter`, `$orderby`, `$top`,
// `$skip`, `$count`, `$select`, `$skiptoken` (and the rejection of `$search`/`$expand`).
//
// The raw query string of a request is split and percent-decoded with Boost.URL, and
// each option is parsed by a hand-written tokenizer and recursive-descent parser into
// the store's query model (store/query.h), checked against an EntityDef: every
// property name, every literal's type, every enum member. Nothing the client sends is
// ever pasted into SQL; the store only sees typed Expr trees.
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

enum class EdmType { kString, kBoolean, kInt32, kInt64, kDouble, kDateTimeOffset, kGuid, kEnum, kComplex };

struct PropertyDef {
  std::string name;  // "displayName"
  EdmType type;
  bool collection = false;  // Collection(...): not filterable/sortable, but selectable
  bool nullable = true;
  std::vector<std::string> enum_members;  // kEnum: member names in declared order
  std::string enum_type;                  // kEnum: "microsoft.graph.vppTokenState"
  bool filterable = true;                 // false e.g. for the encrypted sToken
};

struct EntityDef {
  std::string name;                     // "vppToken"; messages call it "microsoft.graph.vppToken"
  std::vector<PropertyDef> properties;  // what this API version exposes
  std::vector<std::string> type_names;  // types allowed in isof(...)/casts, e.g. "microsoft.graph.iosVppApp"
  const PropertyDef* Find(std::string_view name) const;  // exact, case-sensitive (OData is)
};

struct QueryLimits {
  std::int64_t default_page_size = 100;  // rows per page when $top is absent or larger
  std::int64_t max_top = 999;            // largest accepted $top
  std::size_t max_filter_length = 4096;  // bytes of a decoded $filter (also caps $orderby/$select)
  int max_depth = 64;                    // nesting of parentheses and `not` in $filter
};

// Which options the endpoint accepts (others → 400 "not supported" naming the option).
struct AllowedOptions {
  bool filter = true, orderby = true, top = true, skip = true, count = true, select = true, search = false,
       expand = false, skiptoken = true;
};

struct QueryOptions {
  // filter, order_by (without the id tie-breaker: the store appends it), skip (from $skip
  // or the $skiptoken), limit (= min(top remaining, default_page_size)).
  store::ListQuery list;
  // $top as given; after a $skiptoken, the part of the original $top still to be
  // returned from list.skip onwards. Absent = no client limit.
  std::optional<std::int64_t> top;
  std::vector<std::string> select;  // validated property names, in the order given, no duplicates; empty = all
  bool count = false;               // $count=true
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
//  - `$filter`/`$orderby`/`$select` errors naming the property, token and position, e.g.
//    "Invalid $filter: unknown property 'dispalyName' at position 0." or
//    "Invalid $filter: syntax error at position 16 in 'state eq 'valid')': unexpected ')',
//    expected 'and', 'or' or the end.";
//  - a $skiptoken that is not one NextLinkQuery produced for these same options
//    (tampered, or reused with another $filter/$orderby/...), or combined with $skip/$top.
// Non-`$` parameters are ignored (Graph ignores them); the caller may read them itself.
Result<QueryOptions> ParseQueryOptions(std::string_view raw_query, const EntityDef& entity,
                                       const AllowedOptions& allowed, const QueryLimits& limits);

// Options for a single-entity GET: only $select, and $expand, which is checked as Graph
// checks it: `*` expands nothing and is accepted; a name that is not a navigation
// property is rejected ("Invalid $expand: property 'displayName' on type
// 'microsoft.graph.vppToken' is not a navigation property..."). EntityDef has no
// navigation properties, so every named $expand is a 400. Other `$`-options → 400
// "not supported"; errors as for ParseQueryOptions.
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
std::string DebugString(const store::Expr& expr);

}  // namespace vppd::graph
