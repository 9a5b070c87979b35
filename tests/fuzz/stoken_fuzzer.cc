// Fuzzes the sToken decoder (apple::DecodeSToken): an administrator uploads the
// .vpptoken file's text, so every byte of it is untrusted.
//
// Checks: a failure is InvalidArgument with a message; a success has the three fields
// non-empty, and re-encoding it (EncodeSToken, what the simulator and the demo use)
// decodes to the same token, organisation and expiry (to the second: Apple's expDate
// has no fraction).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "apple/client.h"
#include "fuzz_check.h"

using namespace vppd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto info = apple::DecodeSToken(text);
  if (!info) {
    FUZZ_CHECK(info.error().code == Code::kInvalidArgument, "code %d", static_cast<int>(info.error().code));
    FUZZ_CHECK(!info.error().message.empty(), "empty message");
    return 0;
  }
  FUZZ_CHECK(!info->token.empty() && !info->org_name.empty(), "empty field accepted");
  const std::string again_text = apple::EncodeSToken(info->token, info->expiration, info->org_name);
  auto again = apple::DecodeSToken(again_text);
  FUZZ_CHECK(again.has_value(), "re-encoded sToken rejected: %s", again.error().message.c_str());
  FUZZ_CHECK(again->token == info->token && again->org_name == info->org_name, "fields changed on re-encoding");
  const Timestamp seconds = info->expiration - info->expiration % 1'000'000;
  FUZZ_CHECK(again->expiration == seconds, "expiry %lld became %lld", static_cast<long long>(seconds),
             static_cast<long long>(again->expiration));
  return 0;
}
