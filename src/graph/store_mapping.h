// Graph's vocabulary onto the store's: a $filter/$orderby in Graph's terms (property
// and type names, Graph's date for "never") becomes a store query over the store's
// columns (store/query.h). What maps onto what is the EntityDef's: each usable
// property names its store column, each type the store predicate that selects its
// rows (graph/model.cc). Errors that name a Graph property are the parser's
// (graph/odata.h), which runs first; the translation fails only when the model maps
// a property nowhere, which model_test rules out. Pure functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "base/base.h"
#include "graph/odata.h"
#include "store/query.h"

namespace vppd::graph {

// 0001-01-01T00:00:00Z, in microseconds: how Graph renders a DateTimeOffset that has
// no value (a token never synced), and the literal a client filters on to find one.
inline constexpr Timestamp kGraphNever = -62135596800LL * 1000000;
inline constexpr char kGraphNeverText[] = "0001-01-01T00:00:00Z";

// `filter` over the store's columns. Properties become their columns; isof(T) becomes
// T's predicate (true for the entity's own base types, false for a type the entity
// does not hold); a kGraphNever literal compared with lastSyncDateTime becomes
// store::kNeverSynced. Internal naming the property when it has no column.
Result<store::Expr> ToStoreFilter(const Expr& filter, const EntityDef& entity);

// The keys over the store's columns; Internal naming the property when it has none.
Result<std::vector<store::OrderKey>> ToStoreOrder(const std::vector<OrderKey>& keys, const EntityDef& entity);

// Narrows `q` to the rows of `type` (a cast segment: .../mobileApps/microsoft.graph.iosVppApp):
// `isof(type) and (filter)`, in both q.filter and q.list.filter.
Status RestrictToType(QueryOptions& q, const EntityDef& entity, const std::string& type);

}  // namespace vppd::graph
