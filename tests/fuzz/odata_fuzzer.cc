// Fuzzes the OData query-option parser (graph::ParseQueryOptions, ParseSelectOnly,
// NextLinkQuery) with raw query strings, as a client sends them after the '?'.
//
// Input: byte 0 picks the entity and what is allowed (bit 0: v1.0 instead of beta,
// bit 1: mobileApp instead of vppToken, bit 2: $search allowed, bit 3: $expand
// allowed, bit 4: small limits); the rest is the raw (percent-encoded) query.
//
// Besides "no crash, no sanitizer report", it checks the contracts of odata.h:
//  - a failure is InvalidArgument with no Graph-code override (errors.cc: BadRequest) and a message;
//  - a success has a page size in (0, default_page_size], $select names that exist
//    on the entity without duplicates, and a printable filter tree;
//  - the next link of a successful query parses again, to the next offset, with the
//    same filter, order, select and count (a link the server issues and then
//    rejects would strand every client paging through that result).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "graph/model.h"
#include "graph/odata.h"

using namespace vppd;
using namespace vppd::graph;

namespace {

constexpr std::int64_t kMaxSafeInteger = (std::int64_t{1} << 53) - 1;

void CheckError(const Error& e) {
  FUZZ_CHECK(e.code == Code::kInvalidArgument, "error code %d: %s", static_cast<int>(e.code), e.message.c_str());
  FUZZ_CHECK(e.graph_code.empty(), "graph code '%s' set (errors.cc gives InvalidArgument BadRequest)",
             e.graph_code.c_str());
  FUZZ_CHECK(!e.message.empty(), "empty message");
}

std::string OrderString(const QueryOptions& q) {
  std::string out;
  for (const auto& k : q.order_by) out += k.property + (k.descending ? " desc," : " asc,");
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t sel = data[0];
  const std::string_view query(reinterpret_cast<const char*>(data + 1), size - 1);
  const ApiVersion version = (sel & 1) ? ApiVersion::kV1 : ApiVersion::kBeta;
  const EntityDef& entity = (sel & 2) ? MobileAppEntity(version) : VppTokenEntity(version);
  AllowedOptions allowed;
  allowed.search = (sel & 4) != 0;
  allowed.expand = (sel & 8) != 0;
  QueryLimits limits;
  if (sel & 16) {
    limits.default_page_size = 3;
    limits.max_top = 10;
    limits.max_filter_length = 64;
    limits.max_depth = 4;
  }

  if (auto select = ParseSelectOnly(query, entity); !select) CheckError(select.error());

  auto q = ParseQueryOptions(query, entity, allowed, limits);
  if (!q) {
    CheckError(q.error());
    return 0;
  }
  FUZZ_CHECK(q->list.limit >= 0 && q->list.limit <= limits.default_page_size, "limit %lld",
             static_cast<long long>(q->list.limit));
  FUZZ_CHECK(q->list.skip >= 0 && q->list.skip <= kMaxSafeInteger, "skip %lld", static_cast<long long>(q->list.skip));
  for (std::size_t i = 0; i < q->select.size(); ++i) {
    FUZZ_CHECK(entity.Find(q->select[i]) != nullptr, "$select of unknown '%s'", q->select[i].c_str());
    FUZZ_CHECK(std::count(q->select.begin(), q->select.end(), q->select[i]) == 1, "duplicate '%s'",
               q->select[i].c_str());
  }
  for (const auto& key : q->order_by) {
    FUZZ_CHECK(entity.Find(key.property) != nullptr, "$orderby of unknown '%s'", key.property.c_str());
  }
  const std::string filter = q->filter ? DebugString(*q->filter) : "";

  // Paging: the link for the page after this one must be accepted as it stands.
  const std::int64_t returned = q->list.limit;
  if (returned > 0 && HasNextPage(*q, returned, /*store_has_more=*/true)) {
    const std::string next = NextLinkQuery(query, *q, q->list.skip + returned);
    auto again = ParseQueryOptions(next, entity, allowed, limits);
    FUZZ_CHECK(again.has_value(), "next link '%s' rejected: %s", next.c_str(), again.error().message.c_str());
    FUZZ_CHECK(again->list.skip == std::min(q->list.skip + returned, kMaxSafeInteger), "next skip %lld after %lld+%lld",
               static_cast<long long>(again->list.skip), static_cast<long long>(q->list.skip),
               static_cast<long long>(returned));
    if (q->top) {
      FUZZ_CHECK(again->top && *again->top == *q->top - returned, "next top");
    } else {
      FUZZ_CHECK(!again->top, "next link invented a $top");
    }
    FUZZ_CHECK((again->filter ? DebugString(*again->filter) : "") == filter, "filter changed");
    FUZZ_CHECK(OrderString(*again) == OrderString(*q), "orderby changed");
    FUZZ_CHECK(again->select == q->select, "select changed");
    FUZZ_CHECK(again->count == q->count, "count changed");
    FUZZ_CHECK(again->search == q->search, "search changed");
  }
  return 0;
}
