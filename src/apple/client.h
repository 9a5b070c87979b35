// Apple's Apps and Books for Organizations API (v2): the sToken and the client.
//
// An sToken is what an administrator downloads from Apple School/Business Manager:
// standard base64 of a UTF-8 JSON object {"token", "expDate", "orgName"}. It is sent
// verbatim (the whole base64 text) as `Authorization: Bearer <sToken>`.
#pragma once

#include <string>
#include <string_view>

#include "base/base.h"

namespace vppd::apple {

struct STokenInfo {
  std::string token;         // The inner opaque location token.
  Timestamp expiration = 0;  // From expDate.
  std::string org_name;      // From orgName.
};

// Decodes an sToken. Surrounding whitespace is ignored. Fails with InvalidArgument
// saying exactly what is wrong: not base64, not JSON, not an object, a field
// missing or of the wrong type, an expDate in no accepted ISO-8601 form.
Result<STokenInfo> DecodeSToken(std::string_view stoken);

// Builds an sToken (for the simulator, tests and the demo).
std::string EncodeSToken(std::string_view token, Timestamp expiration, std::string_view org_name);

}  // namespace vppd::apple
