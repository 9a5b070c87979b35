// Fuzzes the create/PATCH body decoder (graph::ReadTokenChanges) with request bodies.
//
// Input: a request body. It is parsed as the handler parses it (Boost.JSON, nesting
// ≤ 32); a JSON object is then decoded for beta and for v1.0.
//
// Checks (model.h's contract):
//  - a failure is InvalidArgument with no Graph-code override (errors.cc: BadRequest), a message, and a target
//    naming the offending property (or '@odata.type');
//  - v1.0 is a subset of beta: a body v1.0 accepts, beta accepts with the same changes;
//  - what is decoded is what was sent: the sToken, the account type, the booleans.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <boost/json.hpp>

#include "fuzz_check.h"
#include "graph/model.h"

using namespace vppd;
using namespace vppd::graph;
namespace json = boost::json;

namespace {

void CheckError(const Error& e, const json::object& body) {
  FUZZ_CHECK(e.code == Code::kInvalidArgument, "code %d: %s", static_cast<int>(e.code), e.message.c_str());
  FUZZ_CHECK(e.graph_code.empty(), "graph code '%s' set (errors.cc gives InvalidArgument BadRequest)",
             e.graph_code.c_str());
  FUZZ_CHECK(!e.message.empty(), "empty message");
  FUZZ_CHECK(body.contains(e.target), "target '%s' is not a member of the body", e.target.c_str());
}

bool SameChanges(const service::TokenChanges& a, const service::TokenChanges& b) {
  return a.token == b.token && a.account_type == b.account_type && a.apple_id == b.apple_id &&
         a.country_or_region == b.country_or_region && a.display_name == b.display_name &&
         a.automatically_update_apps == b.automatically_update_apps &&
         a.data_sharing_consent_granted == b.data_sharing_consent_granted &&
         a.claim_token_management_from_external_mdm == b.claim_token_management_from_external_mdm &&
         a.role_scope_tag_ids == b.role_scope_tag_ids && a.delivery_protocol == b.delivery_protocol;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 32;  // as graph/api.cc reads bodies
  json::value v = json::parse(text, ec, {}, opts);
  if (ec || !v.is_object()) return 0;
  const json::object& body = v.get_object();

  auto beta = ReadTokenChanges(body, ApiVersion::kBeta);
  auto v1 = ReadTokenChanges(body, ApiVersion::kV1);
  if (!beta) CheckError(beta.error(), body);
  if (!v1) {
    CheckError(v1.error(), body);
    return 0;
  }
  FUZZ_CHECK(beta.has_value(), "v1.0 accepts what beta rejects: %s", beta.error().message.c_str());
  FUZZ_CHECK(SameChanges(*beta, *v1), "beta and v1.0 decode the same body differently");

  if (const json::value* t = body.if_contains("token"); t && t->is_string()) {
    FUZZ_CHECK(v1->token && *v1->token == std::string_view(t->get_string()), "token not taken as sent");
  }
  if (const json::value* a = body.if_contains("automaticallyUpdateApps"); a && a->is_bool()) {
    FUZZ_CHECK(v1->automatically_update_apps == a->get_bool(), "automaticallyUpdateApps not taken as sent");
  }
  if (const json::value* a = body.if_contains("vppTokenAccountType"); a && a->is_string()) {
    FUZZ_CHECK(v1->account_type && *v1->account_type == std::string_view(a->get_string()), "account type");
  }
  return 0;
}
