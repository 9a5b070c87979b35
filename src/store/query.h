// The query model a Store evaluates, in the store's own terms: the columns a query
// may name (one table, below), a typed filter expression tree over them, ordering
// and paging. The store compiles it to parameterised SQL (never by pasting text).
// Callers translate their own vocabulary into it: graph/ maps Graph's property and
// type names onto these columns (graph/store_mapping.h), having already checked
// every name and literal type against its entity model.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/base.h"

namespace vppd::store {

// --- the columns ----------------------------------------------------------------

// The tables a query runs over.
enum class Table { kVppTokens, kMobileApps, kUsers, kGroups, kDevices, kManagedDevices };

// Every column of the tables above that a query may name. Columns a query
// cannot name (the sealed sToken, the JSON lists, Apple's ids and cursors) are not
// here; ColumnInfo::name is the SQL name.
enum class Column {
  // vpp_tokens
  kTokenId,
  kTokenOrganizationName,
  kTokenAccountType,
  kTokenAppleId,
  kTokenExpiration,
  kTokenLastSync,  // kNeverSynced when never synced
  kTokenLastModified,
  kTokenState,
  kTokenLastSyncStatus,
  kTokenAutomaticallyUpdateApps,
  kTokenCountryOrRegion,
  kTokenDataSharingConsent,
  kTokenDisplayName,
  kTokenLocationName,
  kTokenClaimFromExternalMdm,
  kTokenDeliveryProtocol,
  kTokenLastAppCount,
  // mobile_apps
  kAppId,
  kAppPlatform,  // "iOS" or "macOS"
  kAppDisplayName,
  kAppPublisher,
  kAppBundleId,
  kAppStoreUrl,
  kAppTotalLicenses,
  kAppUsedLicenses,
  kAppTokenId,
  kAppTokenOrganizationName,
  kAppTokenAppleId,
  kAppTokenDisplayName,
  kAppTokenAccountType,
  kAppCreated,
  kAppLastModified,
  kAppProductType,  // "App" or "Book"
  // users
  kUserId,
  kUserPrincipalName,
  kUserDisplayName,
  kUserMail,
  kUserGivenName,
  kUserSurname,
  kUserJobTitle,
  kUserAccountEnabled,
  kUserCreated,
  // groups
  kGroupId,
  kGroupDisplayName,
  kGroupDescription,
  kGroupMailNickname,
  kGroupMailEnabled,
  kGroupSecurityEnabled,
  kGroupCreated,
  // devices (Entra)
  kDeviceId,
  kDeviceDeviceId,
  kDeviceDisplayName,
  kDeviceOperatingSystem,
  kDeviceOperatingSystemVersion,
  kDeviceAccountEnabled,
  kDeviceCreated,
  // managed_devices (Intune)
  kManagedDeviceId,
  kManagedDeviceSerialNumber,
  kManagedDeviceName,
  kManagedDeviceAzureAdDeviceId,
  kManagedDeviceUserId,
  kManagedDeviceUserPrincipalName,
  kManagedDeviceOperatingSystem,
  kManagedDeviceOsVersion,
  kManagedDeviceModel,
  kManagedDeviceCreated,
  kManagedDeviceLastModified,
};

// kText: a string. kEnum: the name of a member of a fixed set, held as text
// (compared and ordered by name). kBool: true/false. kInt: a 64-bit integer.
// kTime: a Timestamp (microseconds since the Unix epoch, UTC).
enum class ColumnType { kText, kEnum, kBool, kInt, kTime };

struct ColumnInfo {
  Column id;
  Table table;
  std::string_view name;  // the SQL column, "display_name"
  ColumnType type;
  bool nullable;
};

// The columns of `table` a query may name, in the table's order. Static data.
std::span<const ColumnInfo> QueryColumns(Table table);
// The entry of `column` in QueryColumns; `column` must be one of the enumerators.
const ColumnInfo& Describe(Column column);

// vpp_tokens.last_sync of a token that was never synced. VppToken::last_sync says
// "never" with 0; the column holds the earliest time instead (the first instant of
// year 1, the earliest an ISO-8601 date-time names), so that never-synced tokens sort
// and compare before every real sync time. A query for never-synced tokens compares
// kTokenLastSync with this value.
inline constexpr Timestamp kNeverSynced = -62135596800LL * 1000000;

// --- the expression tree ----------------------------------------------------------

// A date-time literal, kept apart from integers so the SQL compiler knows what it
// compares (kTime columns).
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
  // kIn: child 0 the column, children 1..n literals
  kIn,
  // string functions: child 0 the column, child 1 a string literal
  kStartsWith,
  kEndsWith,
  kContains,
};

struct Expr {
  enum class Kind { kColumn, kLiteral, kOp };
  Kind kind = Kind::kLiteral;
  Column column = Column::kTokenId;  // kColumn
  Literal literal;                   // kLiteral
  Op op = Op::kEq;                   // kOp
  std::vector<Expr> children;

  static Expr Of(Column c) {
    Expr e;
    e.kind = Kind::kColumn;
    e.column = c;
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
  Column column;
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
