#include "graph/store_mapping.h"

#include <utility>

namespace vppd::graph {
namespace {

Error NoColumn(const std::string& property, const EntityDef& entity) {
  Error e = Error::Internal("property '" + property + "' of microsoft.graph." + entity.name + " has no store column");
  e.target = property;
  return e;
}

Result<store::Column> ColumnOf(const std::string& property, const EntityDef& entity) {
  const PropertyDef* p = entity.Find(property);
  if (p == nullptr || !p->column) return Fail(NoColumn(property, entity));
  return *p->column;
}

// Graph's "never" is a date; the store's is its own value of the last_sync column.
store::Literal ToStoreLiteral(store::Literal literal, store::Column column) {
  const auto* t = std::get_if<store::DateTime>(&literal);
  if (t != nullptr && column == store::Column::kTokenLastSync && t->micros == kGraphNever) {
    return store::DateTime{store::kNeverSynced};
  }
  return literal;
}

store::Op ToStoreOp(Op op) {
  switch (op) {
    case Op::kEq:
      return store::Op::kEq;
    case Op::kNe:
      return store::Op::kNe;
    case Op::kGt:
      return store::Op::kGt;
    case Op::kGe:
      return store::Op::kGe;
    case Op::kLt:
      return store::Op::kLt;
    case Op::kLe:
      return store::Op::kLe;
    case Op::kAnd:
      return store::Op::kAnd;
    case Op::kOr:
      return store::Op::kOr;
    case Op::kNot:
      return store::Op::kNot;
    case Op::kIn:
      return store::Op::kIn;
    case Op::kStartsWith:
      return store::Op::kStartsWith;
    case Op::kEndsWith:
      return store::Op::kEndsWith;
    case Op::kContains:
      return store::Op::kContains;
    case Op::kIsOf:
      break;  // translated on its own
  }
  return store::Op::kEq;
}

// isof(T): the rows the entity's TypeDef for T selects.
store::Expr TypePredicate(const Expr& e, const EntityDef& entity) {
  const std::string* name = e.children.size() == 1 ? std::get_if<std::string>(&e.children[0].literal) : nullptr;
  const TypeDef* type = name != nullptr ? entity.FindType(*name) : nullptr;
  if (type == nullptr || !type->held) return store::Expr::Value(false);
  if (!type->column) return store::Expr::Value(true);
  return store::Expr::Apply(store::Op::kEq, {store::Expr::Of(*type->column), store::Expr::Value(type->value)});
}

class Translator {
 public:
  explicit Translator(const EntityDef& entity) : entity_(entity) {}

  Result<store::Expr> Translate(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kProperty: {
        Result<store::Column> column = ColumnOf(e.property, entity_);
        if (!column) return Fail(std::move(column.error()));
        return store::Expr::Of(*column);
      }
      case Expr::Kind::kLiteral:
        return store::Expr::Value(e.literal);
      case Expr::Kind::kOp:
        break;
    }
    if (e.op == Op::kIsOf) return TypePredicate(e, entity_);
    // A comparison, `in` or string function compares its literals with the column of
    // its first child; and/or/not have no such column.
    std::optional<store::Column> subject;
    std::vector<store::Expr> children;
    children.reserve(e.children.size());
    for (const Expr& child : e.children) {
      Result<store::Expr> c = Translate(child);
      if (!c) return c;
      if (c->kind == store::Expr::Kind::kColumn && !subject) subject = c->column;
      if (c->kind == store::Expr::Kind::kLiteral && subject) {
        c->literal = ToStoreLiteral(std::move(c->literal), *subject);
      }
      children.push_back(std::move(*c));
    }
    return store::Expr::Apply(ToStoreOp(e.op), std::move(children));
  }

 private:
  const EntityDef& entity_;
};

}  // namespace

Result<store::Expr> ToStoreFilter(const Expr& filter, const EntityDef& entity) {
  return Translator(entity).Translate(filter);
}

Result<std::vector<store::OrderKey>> ToStoreOrder(const std::vector<OrderKey>& keys, const EntityDef& entity) {
  std::vector<store::OrderKey> out;
  out.reserve(keys.size());
  for (const OrderKey& key : keys) {
    Result<store::Column> column = ColumnOf(key.property, entity);
    if (!column) return Fail(std::move(column.error()));
    out.push_back({*column, key.descending});
  }
  return out;
}

Status RestrictToType(QueryOptions& q, const EntityDef& entity, const std::string& type) {
  std::vector<Expr> children;
  children.push_back(Expr::Apply(Op::kIsOf, {Expr::Value(type)}));
  if (q.filter) children.push_back(std::move(*q.filter));
  Expr filter = children.size() == 1 ? std::move(children[0]) : Expr::Apply(Op::kAnd, std::move(children));
  Result<store::Expr> translated = ToStoreFilter(filter, entity);
  if (!translated) return Fail(std::move(translated.error()));
  q.filter = std::move(filter);
  q.list.filter = std::move(*translated);
  return {};
}

}  // namespace vppd::graph
