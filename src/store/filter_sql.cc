#include "store/filter_sql.h"

#include <fmt/format.h>

namespace vppd::store {
namespace {

// The store's one table of the columns a query may name: per table, each Column
// once, in the enum's order (checked below), so that Describe is an index.
constexpr ColumnInfo kTokenColumns[] = {
    {Column::kTokenId, Table::kVppTokens, "id", ColumnType::kText, false},
    {Column::kTokenOrganizationName, Table::kVppTokens, "organization_name", ColumnType::kText, true},
    {Column::kTokenAccountType, Table::kVppTokens, "account_type", ColumnType::kEnum, false},
    {Column::kTokenAppleId, Table::kVppTokens, "apple_id", ColumnType::kText, true},
    {Column::kTokenExpiration, Table::kVppTokens, "expiration", ColumnType::kTime, false},
    {Column::kTokenLastSync, Table::kVppTokens, "last_sync", ColumnType::kTime, false},
    {Column::kTokenLastModified, Table::kVppTokens, "last_modified", ColumnType::kTime, false},
    {Column::kTokenState, Table::kVppTokens, "state", ColumnType::kEnum, false},
    {Column::kTokenLastSyncStatus, Table::kVppTokens, "last_sync_status", ColumnType::kEnum, false},
    {Column::kTokenAutomaticallyUpdateApps, Table::kVppTokens, "automatically_update_apps", ColumnType::kBool, false},
    {Column::kTokenCountryOrRegion, Table::kVppTokens, "country_or_region", ColumnType::kText, true},
    {Column::kTokenDataSharingConsent, Table::kVppTokens, "data_sharing_consent", ColumnType::kBool, false},
    {Column::kTokenDisplayName, Table::kVppTokens, "display_name", ColumnType::kText, true},
    {Column::kTokenLocationName, Table::kVppTokens, "location_name", ColumnType::kText, true},
    {Column::kTokenClaimFromExternalMdm, Table::kVppTokens, "claim_from_external_mdm", ColumnType::kBool, false},
    {Column::kTokenDeliveryProtocol, Table::kVppTokens, "delivery_protocol", ColumnType::kEnum, false},
    {Column::kTokenLastAppCount, Table::kVppTokens, "last_app_count", ColumnType::kInt, false},
};

constexpr ColumnInfo kAppColumns[] = {
    {Column::kAppId, Table::kMobileApps, "id", ColumnType::kText, false},
    {Column::kAppPlatform, Table::kMobileApps, "platform", ColumnType::kText, false},
    {Column::kAppDisplayName, Table::kMobileApps, "display_name", ColumnType::kText, false},
    {Column::kAppPublisher, Table::kMobileApps, "publisher", ColumnType::kText, false},
    {Column::kAppBundleId, Table::kMobileApps, "bundle_id", ColumnType::kText, false},
    {Column::kAppStoreUrl, Table::kMobileApps, "app_store_url", ColumnType::kText, false},
    {Column::kAppTotalLicenses, Table::kMobileApps, "total_licenses", ColumnType::kInt, false},
    {Column::kAppUsedLicenses, Table::kMobileApps, "used_licenses", ColumnType::kInt, false},
    {Column::kAppTokenId, Table::kMobileApps, "token_id", ColumnType::kText, false},
    {Column::kAppTokenOrganizationName, Table::kMobileApps, "token_organization_name", ColumnType::kText, true},
    {Column::kAppTokenAppleId, Table::kMobileApps, "token_apple_id", ColumnType::kText, true},
    {Column::kAppTokenDisplayName, Table::kMobileApps, "token_display_name", ColumnType::kText, true},
    {Column::kAppTokenAccountType, Table::kMobileApps, "token_account_type", ColumnType::kEnum, false},
    {Column::kAppCreated, Table::kMobileApps, "created", ColumnType::kTime, false},
    {Column::kAppLastModified, Table::kMobileApps, "last_modified", ColumnType::kTime, false},
    {Column::kAppProductType, Table::kMobileApps, "product_type", ColumnType::kText, false},
};

constexpr ColumnInfo kUserColumns[] = {
    {Column::kUserId, Table::kUsers, "id", ColumnType::kText, false},
    {Column::kUserPrincipalName, Table::kUsers, "user_principal_name", ColumnType::kText, false},
    {Column::kUserDisplayName, Table::kUsers, "display_name", ColumnType::kText, true},
    {Column::kUserMail, Table::kUsers, "mail", ColumnType::kText, true},
    {Column::kUserGivenName, Table::kUsers, "given_name", ColumnType::kText, true},
    {Column::kUserSurname, Table::kUsers, "surname", ColumnType::kText, true},
    {Column::kUserJobTitle, Table::kUsers, "job_title", ColumnType::kText, true},
    {Column::kUserAccountEnabled, Table::kUsers, "account_enabled", ColumnType::kBool, false},
    {Column::kUserCreated, Table::kUsers, "created", ColumnType::kTime, false},
};

constexpr ColumnInfo kGroupColumns[] = {
    {Column::kGroupId, Table::kGroups, "id", ColumnType::kText, false},
    {Column::kGroupDisplayName, Table::kGroups, "display_name", ColumnType::kText, false},
    {Column::kGroupDescription, Table::kGroups, "description", ColumnType::kText, true},
    {Column::kGroupMailNickname, Table::kGroups, "mail_nickname", ColumnType::kText, true},
    {Column::kGroupMailEnabled, Table::kGroups, "mail_enabled", ColumnType::kBool, false},
    {Column::kGroupSecurityEnabled, Table::kGroups, "security_enabled", ColumnType::kBool, false},
    {Column::kGroupCreated, Table::kGroups, "created", ColumnType::kTime, false},
};

constexpr ColumnInfo kDeviceColumns[] = {
    {Column::kDeviceId, Table::kDevices, "id", ColumnType::kText, false},
    {Column::kDeviceDeviceId, Table::kDevices, "device_id", ColumnType::kText, false},
    {Column::kDeviceDisplayName, Table::kDevices, "display_name", ColumnType::kText, true},
    {Column::kDeviceOperatingSystem, Table::kDevices, "operating_system", ColumnType::kText, true},
    {Column::kDeviceOperatingSystemVersion, Table::kDevices, "operating_system_version", ColumnType::kText, true},
    {Column::kDeviceAccountEnabled, Table::kDevices, "account_enabled", ColumnType::kBool, false},
    {Column::kDeviceCreated, Table::kDevices, "created", ColumnType::kTime, false},
};

constexpr ColumnInfo kManagedDeviceColumns[] = {
    {Column::kManagedDeviceId, Table::kManagedDevices, "id", ColumnType::kText, false},
    {Column::kManagedDeviceSerialNumber, Table::kManagedDevices, "serial_number", ColumnType::kText, true},
    {Column::kManagedDeviceName, Table::kManagedDevices, "device_name", ColumnType::kText, true},
    {Column::kManagedDeviceAzureAdDeviceId, Table::kManagedDevices, "azure_ad_device_id", ColumnType::kText, true},
    {Column::kManagedDeviceUserId, Table::kManagedDevices, "user_id", ColumnType::kText, true},
    {Column::kManagedDeviceUserPrincipalName, Table::kManagedDevices, "user_principal_name", ColumnType::kText, true},
    {Column::kManagedDeviceOperatingSystem, Table::kManagedDevices, "operating_system", ColumnType::kText, true},
    {Column::kManagedDeviceOsVersion, Table::kManagedDevices, "os_version", ColumnType::kText, true},
    {Column::kManagedDeviceModel, Table::kManagedDevices, "model", ColumnType::kText, true},
    {Column::kManagedDeviceCreated, Table::kManagedDevices, "created", ColumnType::kTime, false},
    {Column::kManagedDeviceLastModified, Table::kManagedDevices, "last_modified", ColumnType::kTime, false},
};

// Every table's columns, in Table's order; together every Column once, in the
// enum's order.
constexpr std::span<const ColumnInfo> kTables[] = {kTokenColumns, kAppColumns,    kUserColumns,
                                                   kGroupColumns, kDeviceColumns, kManagedDeviceColumns};
constexpr std::size_t kColumnCount = static_cast<std::size_t>(Column::kManagedDeviceLastModified) + 1;

// What a literal or column can be compared with: text and enum members are both
// strings; integers and doubles are both numbers.
enum class Kind { kNull, kString, kBool, kNumber, kTime };

Kind KindOf(ColumnType t) {
  switch (t) {
    case ColumnType::kText:
    case ColumnType::kEnum:
      return Kind::kString;
    case ColumnType::kBool:
      return Kind::kBool;
    case ColumnType::kInt:
      return Kind::kNumber;
    case ColumnType::kTime:
      return Kind::kTime;
  }
  return Kind::kNull;
}

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kNull:
      return "null";
    case Kind::kString:
      return "string";
    case Kind::kBool:
      return "boolean";
    case Kind::kNumber:
      return "number";
    case Kind::kTime:
      return "DateTimeOffset";
  }
  return "?";
}

constexpr bool InEnumOrder() {
  std::size_t i = 0;
  for (std::size_t t = 0; t < std::size(kTables); ++t) {
    for (const ColumnInfo& c : kTables[t]) {
      if (static_cast<std::size_t>(c.id) != i++ || static_cast<std::size_t>(c.table) != t) return false;
    }
  }
  return i == kColumnCount;
}
static_assert(InEnumOrder(), "kTables list every Column once, in the enum's order, each under its Table");

const char* TableName(Table table) {
  switch (table) {
    case Table::kVppTokens:
      return "vpp_tokens";
    case Table::kMobileApps:
      return "mobile_apps";
    case Table::kUsers:
      return "users";
    case Table::kGroups:
      return "groups";
    case Table::kDevices:
      return "devices";
    case Table::kManagedDevices:
      return "managed_devices";
  }
  return "?";
}

Result<const ColumnInfo*> Lookup(Table table, Column column) {
  if (static_cast<std::size_t>(column) >= kColumnCount) {
    return Fail(Error::InvalidArgument(fmt::format("unknown column #{}", static_cast<int>(column))));
  }
  const ColumnInfo& c = Describe(column);
  if (c.table != table) {
    return Fail(Error::InvalidArgument(
        fmt::format("column '{}' of {} is not a column of {}", c.name, TableName(c.table), TableName(table)),
        std::string(c.name)));
  }
  return &c;
}

// A compiled value: SQL text that yields it, and what kind it is.
struct Operand {
  std::string sql;
  Kind kind;
  std::string column;  // set when it is a column, for error targets
};

class FilterCompiler {
 public:
  FilterCompiler(Table table, SqlBuilder& builder) : table_(table), builder_(builder) {}

  // `negate` carries a pending `not` down the tree (De Morgan), so `not` reaches
  // SQL only on leaves: exact, because every leaf is two-valued.
  Result<std::string> Predicate(const Expr& e, int depth, bool negate, int nesting) {
    if (Status s = Visit(depth); !s) return Fail(s.error());
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        if (const bool* b = std::get_if<bool>(&e.literal)) return Bool(*b != negate);
        return Fail(Error::InvalidArgument("$filter must be a boolean expression"));
      case Expr::Kind::kColumn: {
        // A boolean column on its own is a predicate.
        Result<Operand> o = Value(e);
        if (!o) return Fail(o.error());
        if (o->kind != Kind::kBool) {
          return Fail(Error::InvalidArgument(
              fmt::format("column '{}' is not boolean and cannot stand alone in $filter", o->column), o->column));
        }
        return Negated(pg() ? fmt::format("coalesce({}, FALSE)", o->sql) : fmt::format("coalesce({} = 1, 0)", o->sql),
                       negate);
      }
      case Expr::Kind::kOp:
        break;
    }
    switch (e.op) {
      case Op::kNot:
        if (Status s = Arity(e, 1); !s) return Fail(s.error());
        return Predicate(e.children[0], depth + 1, !negate, nesting);
      case Op::kAnd:
      case Op::kOr:
        return Group(e, depth, negate, nesting);
      default: {
        Result<std::string> leaf = Leaf(e);
        if (!leaf) return leaf;
        return Negated(std::move(*leaf), negate);
      }
    }
  }

 private:
  Status Visit(int depth) {
    if (depth > kMaxFilterDepth) {
      return Fail(Error::InvalidArgument(fmt::format("$filter is nested deeper than {} levels", kMaxFilterDepth)));
    }
    if (++nodes_ > kMaxFilterNodes) {
      return Fail(Error::InvalidArgument(fmt::format("$filter has more than {} terms", kMaxFilterNodes)));
    }
    return {};
  }

  static std::string Negated(std::string sql, bool negate) {
    if (negate) sql.insert(0, "NOT ");
    return sql;
  }

  // An and/or chain as one flat SQL group: `a and (b and c)` and `not (a or b)`
  // inside an `and` all become `(a AND b AND c ...)`. SQLite's parser has a small
  // fixed stack (~24 nested groups), so SQL nesting must grow only where and/or
  // truly alternate, and that is bounded by kMaxFilterAlternations.
  Result<std::string> Group(const Expr& e, int depth, bool negate, int nesting) {
    if (nesting + 1 > kMaxFilterAlternations) {
      return Fail(Error::InvalidArgument(
          fmt::format("$filter alternates 'and'/'or' more than {} levels deep", kMaxFilterAlternations)));
    }
    bool is_and = (e.op == Op::kAnd) != negate;  // the operator after De Morgan
    std::vector<Item> items;
    if (Status s = Flatten(e, depth, negate, is_and, items); !s) return Fail(s.error());
    std::string sql = "(";
    for (std::size_t i = 0; i < items.size(); ++i) {
      Result<std::string> item = Predicate(*items[i].expr, items[i].depth, items[i].negate, nesting + 1);
      if (!item) return item;
      if (i > 0) sql += is_and ? " AND " : " OR ";
      sql += *item;
    }
    return sql + ")";
  }

  struct Item {
    const Expr* expr;
    int depth;
    bool negate;
  };

  // Collects the operands of the chain `e` belongs to. `e` is an and/or node whose
  // effective operator (after `negate`) is `is_and`.
  Status Flatten(const Expr& e, int depth, bool negate, bool is_and, std::vector<Item>& items) {
    if (Status s = Arity(e, 2); !s) return s;
    for (const Expr& child : e.children) {
      // Look through `not`s to the operator they apply to.
      const Expr* core = &child;
      bool core_negate = negate;
      int core_depth = depth + 1;
      while (core->kind == Expr::Kind::kOp && core->op == Op::kNot && core->children.size() == 1) {
        if (Status s = Visit(core_depth); !s) return s;
        core = &core->children[0];
        core_negate = !core_negate;
        ++core_depth;
      }
      bool same_chain = core->kind == Expr::Kind::kOp && (core->op == Op::kAnd || core->op == Op::kOr) &&
                        ((core->op == Op::kAnd) != core_negate) == is_and;
      if (same_chain) {
        if (Status s = Visit(core_depth); !s) return s;
        if (Status s = Flatten(*core, core_depth, core_negate, is_and, items); !s) return s;
      } else {
        items.push_back({core, core_depth, core_negate});
      }
    }
    return {};
  }

  // A comparison, `in` or string function: a two-valued SQL predicate.
  Result<std::string> Leaf(const Expr& e) {
    const auto& c = e.children;
    switch (e.op) {
      case Op::kEq:
      case Op::kNe:
      case Op::kGt:
      case Op::kGe:
      case Op::kLt:
      case Op::kLe:
        if (Status s = Arity(e, 2); !s) return Fail(s.error());
        return Comparison(e.op, c[0], c[1]);
      case Op::kIn:
        return In(e);
      case Op::kStartsWith:
      case Op::kEndsWith:
      case Op::kContains:
        if (Status s = Arity(e, 2); !s) return Fail(s.error());
        return StringFunction(e.op, c[0], c[1]);
      case Op::kAnd:
      case Op::kOr:
      case Op::kNot:
        break;
    }
    return Fail(Error::InvalidArgument("unknown $filter operator"));
  }

  static Status Arity(const Expr& e, std::size_t n) {
    if (e.children.size() != n) {
      return Fail(Error::InvalidArgument(
          fmt::format("malformed $filter: an operator expects {} operand(s), got {}", n, e.children.size())));
    }
    return {};
  }

  // A column or a literal, compiled to a column name or a parameter.
  Result<Operand> Value(const Expr& e) {
    if (e.kind == Expr::Kind::kColumn) {
      Result<const ColumnInfo*> col = Lookup(table_, e.column);
      if (!col) return Fail(col.error());
      std::string name((*col)->name);
      return Operand{name, KindOf((*col)->type), name};
    }
    if (e.kind != Expr::Kind::kLiteral) {
      return Fail(Error::InvalidArgument("$filter compares a column or a literal, not an expression"));
    }
    if (builder_.params().size() >= kMaxFilterParams) {
      return Fail(Error::InvalidArgument(fmt::format("$filter has more than {} literals", kMaxFilterParams)));
    }
    return std::visit(
        [&](const auto& v) -> Result<Operand> {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::monostate>) {
            return Operand{"NULL", Kind::kNull, {}};
          } else if constexpr (std::is_same_v<T, bool>) {
            return Operand{builder_.BoolParam(v), Kind::kBool, {}};
          } else if constexpr (std::is_same_v<T, std::int64_t> || std::is_same_v<T, double>) {
            return Operand{builder_.Param(v), Kind::kNumber, {}};
          } else if constexpr (std::is_same_v<T, std::string>) {
            return Operand{builder_.Param(v), Kind::kString, {}};
          } else {
            static_assert(std::is_same_v<T, DateTime>);
            return Operand{builder_.Param(std::int64_t{v.micros}), Kind::kTime, {}};
          }
        },
        e.literal);
  }

  static Status Compatible(const Operand& a, const Operand& b) {
    if (a.kind == Kind::kNull || b.kind == Kind::kNull || a.kind == b.kind) return {};
    const std::string& target = a.column.empty() ? b.column : a.column;
    return Fail(Error::InvalidArgument(fmt::format("cannot compare a {} with a {}", KindName(a.kind), KindName(b.kind)),
                                       target));
  }

  Result<std::string> Comparison(Op op, const Expr& lhs, const Expr& rhs) {
    Result<Operand> a = Value(lhs);
    if (!a) return Fail(a.error());
    Result<Operand> b = Value(rhs);
    if (!b) return Fail(b.error());
    if (Status s = Compatible(*a, *b); !s) return Fail(s.error());
    bool has_null = a->kind == Kind::kNull || b->kind == Kind::kNull;
    // IS / IS NOT (SQLite), IS NOT DISTINCT FROM / IS DISTINCT FROM (PostgreSQL):
    // null-safe, two-valued equality.
    if (op == Op::kEq) return fmt::format("({} {} {})", a->sql, pg() ? "IS NOT DISTINCT FROM" : "IS", b->sql);
    if (op == Op::kNe) return fmt::format("({} {} {})", a->sql, pg() ? "IS DISTINCT FROM" : "IS NOT", b->sql);
    if (has_null) return Bool(false);  // relational operators are false on null
    const char* sql_op = op == Op::kGt ? ">" : op == Op::kGe ? ">=" : op == Op::kLt ? "<" : "<=";
    return fmt::format("coalesce({} {} {}, {})", a->sql, sql_op, b->sql, Bool(false));
  }

  Result<std::string> In(const Expr& e) {
    if (e.children.empty()) return Fail(Error::InvalidArgument("malformed $filter: 'in' without a left operand"));
    Result<Operand> subject = Value(e.children[0]);
    if (!subject) return Fail(subject.error());
    std::string list;
    bool has_null = false;
    for (std::size_t i = 1; i < e.children.size(); ++i) {
      if (e.children[i].kind != Expr::Kind::kLiteral) {
        return Fail(Error::InvalidArgument("the right side of 'in' must be a list of literals", subject->column));
      }
      Result<Operand> item = Value(e.children[i]);
      if (!item) return Fail(item.error());
      if (Status s = Compatible(*subject, *item); !s) return Fail(s.error());
      if (item->kind == Kind::kNull) {
        has_null = true;
        continue;
      }
      if (!list.empty()) list += ", ";
      list += item->sql;
    }
    // A flat IN list rather than a chain of ORs: SQLite limits expression depth
    // (1000), and a long OR chain is that deep.
    std::string sql =
        list.empty() ? Bool(false) : fmt::format("coalesce({} IN ({}), {})", subject->sql, list, Bool(false));
    if (has_null) sql = fmt::format("({} OR {} IS NULL)", sql, subject->sql);
    return sql;
  }

  Result<std::string> StringFunction(Op op, const Expr& lhs, const Expr& rhs) {
    Result<Operand> haystack = Value(lhs);
    if (!haystack) return Fail(haystack.error());
    Result<Operand> needle = Value(rhs);
    if (!needle) return Fail(needle.error());
    for (const Operand* o : {&*haystack, &*needle}) {
      if (o->kind != Kind::kString && o->kind != Kind::kNull) {
        return Fail(Error::InvalidArgument(fmt::format("string functions take strings, not a {}", KindName(o->kind)),
                                           o->column));
      }
    }
    if (haystack->kind == Kind::kNull || needle->kind == Kind::kNull) return Bool(false);
    const std::string& h = haystack->sql;
    const std::string& n = needle->sql;
    if (pg()) {
      // strpos/left/right count characters and, under COLLATE "C", `=` compares
      // bytes: case-sensitive, and no character of the needle is special.
      switch (op) {
        case Op::kContains:
          return fmt::format("coalesce(strpos({}, {}) > 0, FALSE)", h, n);
        case Op::kStartsWith:
          return fmt::format("coalesce(left({0}, length({1})) = {1}, FALSE)", h, n);
        default:  // kEndsWith
          return fmt::format("coalesce(length({0}) >= length({1}) AND right({0}, length({1})) = {1}, FALSE)", h, n);
      }
    }
    // instr/substr/length count characters and compare bytes exactly, so the
    // match is case-sensitive and no character of the needle is special.
    switch (op) {
      case Op::kContains:
        return fmt::format("coalesce(instr({}, {}) > 0, 0)", h, n);
      case Op::kStartsWith:
        return fmt::format("coalesce(substr({0}, 1, length({1})) = {1}, 0)", h, n);
      default:  // kEndsWith
        return fmt::format(
            "coalesce(length({0}) >= length({1}) AND substr({0}, length({0}) - length({1}) + 1) = {1}, 0)", h, n);
    }
  }

  bool pg() const { return builder_.dialect() == SqlDialect::kPostgres; }
  std::string Bool(bool value) const {
    if (pg()) return value ? "TRUE" : "FALSE";
    return value ? "1" : "0";
  }

  Table table_;
  SqlBuilder& builder_;
  int nodes_ = 0;
};

}  // namespace

std::span<const ColumnInfo> QueryColumns(Table table) { return kTables[static_cast<std::size_t>(table)]; }

const ColumnInfo& Describe(Column column) {
  std::size_t i = static_cast<std::size_t>(column);
  for (std::span<const ColumnInfo> columns : kTables) {
    if (i < columns.size()) return columns[i];
    i -= columns.size();
  }
  return kTokenColumns[0];  // not an enumerator: the contract excludes it
}

std::string SqlBuilder::Param(sqlite::SqlValue value) {
  const char* type = std::visit(
      [](const auto& v) -> const char* {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::int64_t>) return "bigint";
        if constexpr (std::is_same_v<T, double>) return "float8";
        if constexpr (std::is_same_v<T, std::string>) return "text";
        return "";
      },
      value);
  params_.push_back(std::move(value));
  if (dialect_ == SqlDialect::kSqlite) return fmt::format("?{}", params_.size());
  if (std::string_view(type) == "text") return fmt::format("(${}::text COLLATE \"C\")", params_.size());
  if (*type == '\0') return fmt::format("${}", params_.size());
  return fmt::format("${}::{}", params_.size(), type);
}

std::string SqlBuilder::BoolParam(bool value) {
  if (dialect_ == SqlDialect::kSqlite) return Param(std::int64_t{value ? 1 : 0});
  params_.emplace_back(std::string(value ? "true" : "false"));
  return fmt::format("${}::boolean", params_.size());
}

Result<std::string> CompileFilter(const Expr& filter, Table table, SqlBuilder& builder) {
  FilterCompiler compiler(table, builder);
  return compiler.Predicate(filter, 1, false, 0);
}

Result<std::string> CompileOrderBy(const std::vector<OrderKey>& keys, Table table, std::string_view id_column,
                                   SqlDialect dialect) {
  if (keys.size() > kMaxOrderKeys) {
    return Fail(Error::InvalidArgument(fmt::format("$orderby has more than {} keys", kMaxOrderKeys)));
  }
  std::string sql;
  for (const OrderKey& key : keys) {
    Result<const ColumnInfo*> col = Lookup(table, key.column);
    if (!col) return Fail(col.error());
    // SQLite orders nulls as the smallest value; PostgreSQL as the largest unless told.
    const char* nulls = dialect != SqlDialect::kPostgres ? "" : key.descending ? " NULLS LAST" : " NULLS FIRST";
    fmt::format_to(std::back_inserter(sql), "{}{}{}, ", (*col)->name, key.descending ? " DESC" : "", nulls);
  }
  sql += id_column;
  return sql;
}

}  // namespace vppd::store
