// The ETags of vppTokens: `W/"<row_version>"`, written as `@odata.etag` on every
// token vppd answers with and as the `ETag` header of a single token; and the
// If-Match header of a PATCH or DELETE, read back into the versions it names.
//
//   auto cond = ParseIfMatch(request.headers);   // Result<IfMatch>
//   if (!cond) return Fail(cond.error());        // 400: not an entity-tag list
//   if (cond->present && !cond->any) ...         // compare cond->versions
//
// Comparison is weak (RFC 9110 §8.8.3.2): `W/"7"` and `"7"` both name version 7.
// The tags vppd hands out are weak, and Graph's clients send back the tag they were
// given, so strong comparison (which If-Match asks for) would never match one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "http/server.h"

namespace vppd::graph {

// `W/"<row_version>"`.
std::string VppTokenETag(std::int64_t row_version);

// What the If-Match header fields of a request ask for.
struct IfMatch {
  bool present = false;  // at least one If-Match field
  bool any = false;      // `*`: any current version
  // The versions the list names (a tag vppd could have written: decimal digits).
  std::vector<std::int64_t> versions;
  // The list also names tags vppd never writes (`"abc"`, `W/""`): well formed, but
  // they match no version.
  bool foreign = false;
};

// Reads every If-Match field of `headers` (several fields are one list, RFC 9110
// §5.3). InvalidArgument ("The If-Match header contains an invalid value.", target
// "If-Match", Graph's answer to such a header) when a field is empty or is not `*` or
// a comma-separated list of entity-tags, or mixes `*` with tags.
Result<IfMatch> ParseIfMatch(const std::vector<http::Header>& headers);

}  // namespace vppd::graph
