// Internal to store/: compiles a store::Expr (a filter) and OrderKeys into a SQL
// fragment with numbered parameters (`?2`), through the store's column table
// (QueryColumns in store/query.h). No text from the query is ever pasted into SQL:
// columns are looked up, literals become parameters.
//
// Semantics (those of OData's "lifted operators", which graph/ translates into this):
// - eq/ne are null-safe: `x eq null` is IS NULL, null eq null is true, null ne 'a'
//   is true.
// - gt/ge/lt/le are false when either side is null.
// - startswith/endswith/contains on a null value are false; `not` of them is true.
//   Every leaf predicate is two-valued, so `not` always negates exactly.
// - String comparison and the string functions are case-sensitive (BINARY), and
//   the functions use instr/substr rather than LIKE, so `%`, `_` and `\` in the
//   needle are ordinary characters with no escaping to get wrong.
// - Enum columns are compared and ordered by member name (TEXT), not by the
//   member's numeric value. Equality, `in` and the string functions are exact;
//   gt/lt and $orderby follow the names' byte order.
// - Booleans are 0/1, DateTimeOffset literals are INTEGER microseconds.
// - `not` is applied by De Morgan down to the leaves, and and/or chains are
//   flattened; both are exact because every leaf is two-valued.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "store/query.h"
#include "store/sqlite_db.h"

namespace vppd::store {

// Bounds on a compiled filter, so a hostile $filter can neither overflow the stack
// (depth), nor SQLite's expression/parameter limits, nor take long to compile.
inline constexpr int kMaxFilterDepth = 100;
// and/or chains of any length compile flat, and `not` is pushed down to the
// leaves, so SQL nests only where and/or alternate: `a and (b or (c and ...))`.
// SQLite's parser stack fits about 24 such levels; real filters use a few.
inline constexpr int kMaxFilterAlternations = 16;
inline constexpr int kMaxFilterNodes = 2000;
inline constexpr int kMaxFilterParams = 1000;
inline constexpr std::size_t kMaxOrderKeys = 32;

// The SQL the compiler writes for. The semantics above hold in both; the text
// differs: SQLite's `?3`, IS, 0/1 booleans, instr/substr; PostgreSQL's typed
// `$3::bigint` placeholders (its parameters go as text, so each says its type),
// IS [NOT] DISTINCT FROM, TRUE/FALSE, strpos/left/right, text parameters in
// COLLATE "C" (byte order, as SQLite's BINARY), and NULLS FIRST/LAST so nulls
// order as in SQLite (smallest).
enum class SqlDialect { kSqlite, kPostgres };

// Builds SQL text and its parameters together. Parameters are numbered in the
// order they are added, starting at 1.
class SqlBuilder {
 public:
  explicit SqlBuilder(SqlDialect dialect = SqlDialect::kSqlite) : dialect_(dialect) {}
  // Adds a parameter and returns its placeholder ("?3", or "$3::bigint").
  std::string Param(sqlite::SqlValue value);
  // A boolean parameter: 0/1 for SQLite, a boolean for PostgreSQL.
  std::string BoolParam(bool value);
  const std::vector<sqlite::SqlValue>& params() const { return params_; }
  SqlDialect dialect() const { return dialect_; }

 private:
  SqlDialect dialect_;
  std::vector<sqlite::SqlValue> params_;
};

// A boolean SQL expression for `filter` over `table`, its literals added to
// `builder`. InvalidArgument naming the problem (and the column, as target) when the
// filter names a column of another table, compares a literal of the wrong type, has
// a malformed node, or exceeds the bounds above.
Result<std::string> CompileFilter(const Expr& filter, Table table, SqlBuilder& builder);

// `col1 DESC, col2, id` — the keys, then `id_column` ascending as the last key so
// pages are stable. InvalidArgument as for CompileFilter.
Result<std::string> CompileOrderBy(const std::vector<OrderKey>& keys, Table table, std::string_view id_column,
                                   SqlDialect dialect = SqlDialect::kSqlite);

}  // namespace vppd::store
