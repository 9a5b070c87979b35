// Who is calling: the one description of a caller that every layer shares.
//
// auth/ makes it from a verified bearer token (auth::Verifier::Verify), graph/
// passes it on untouched, and service/ decides with it what the caller may do
// (service::Principal is this type too). Plain data, no behaviour.
#pragma once

#include <string>
#include <vector>

namespace vppd {

struct Principal {
  std::string tenant_id;            // `tid`, a GUID as the token spells it.
  std::string object_id;            // `oid`; may be empty for some app tokens.
  std::string app_id;               // `appid` (v1) or `azp` (v2); may be empty.
  bool personal_account = false;    // A personal Microsoft account (MSA) tenant.
  bool app_only = false;            // Has `roles` and no `scp`.
  std::vector<std::string> scopes;  // `scp` split on spaces: delegated permissions.
  std::vector<std::string> roles;   // `roles`: application permissions.
};

}  // namespace vppd
