// The query model a Store evaluates: a typed filter expression tree, ordering and
// paging. graph/odata parses `$filter`/`$orderby`/`$top`/`$skip` into it, having
// already checked every property name and literal type against the entity model;
// the store compiles it to parameterised SQL (never by pasting text).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/base.h"

namespace vppd::store {

// A DateTimeOffset literal, kept apart from integers so the SQL compiler knows
// what it compares.
struct DateTime {
  Timestamp micros = 0;
  bool operator==(const DateTime&) const = default;
};

// null, boolean, integer, floating point, string (also enum members, by name), date-time.
using Literal = std::variant<std::monostate, bool, std::int64_t, double, std::string, DateTime>;

enum class Op {
  // comparisons: two children
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
  std::string property;  // kProperty: the Graph property name ("displayName").
  Literal literal;       // kLiteral
  Op op = Op::kEq;       // kOp
  std::vector<Expr> children;

  static Expr Property(std::string name) {
    Expr e;
    e.kind = Kind::kProperty;
    e.property = std::move(name);
    return e;
  }
  static Expr Value(Literal v) {
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

struct OrderKey {
  std::string property;
  bool descending = false;
};

struct ListQuery {
  std::optional<Expr> filter;
  std::vector<OrderKey> order_by;  // The id is always appended as a last key, for stable pages.
  std::int64_t skip = 0;
  std::int64_t limit = 100;  // Page size; the store fetches limit+1 to know if more exist.
};

template <class T>
struct Page {
  std::vector<T> items;
  bool has_more = false;  // Another page exists after this one.
};

}  // namespace vppd::store
