// Fuzzes the parser of Apple's notifications (service::ParseNotification) and the
// bearer check (service::BearerMatches): POST /apple/notifications/{key} is the one
// route not authenticated by Graph, so its body and Authorization header come from
// anyone on the internet.
//
// Input: byte 0 even → the rest is the body; odd → the rest is an Authorization
// header checked against a fixed endpoint.
// Checks: a failure is InvalidArgument with a message (and, for a member's
// fault, its name as target); a success has the three ids within 1..256
// characters, a type vppd handles, a `notification` member that is a JSON
// object, and the same notification when the same body is parsed again (the
// applier re-reads the body the receiver kept); an ASSET_COUNT has an adamId, STDQ or PLUS, and
// a delta within ±2^31-1. The bearer check matches exactly "Bearer <secret>" (any case of the scheme).
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "fuzz_check.h"
#include "service/service.h"

using namespace vppd;

namespace {

void CheckBody(std::string_view body) {
  auto n = service::ParseNotification(body);
  if (!n) {
    FUZZ_CHECK(n.error().code == Code::kInvalidArgument, "code %d", static_cast<int>(n.error().code));
    FUZZ_CHECK(!n.error().message.empty(), "empty message");
    return;
  }
  for (const std::string* id : {&n->notification_id, &n->type, &n->uid}) {
    FUZZ_CHECK(!id->empty() && id->size() <= 256, "id of %zu characters accepted", id->size());
  }
  bool known = false;
  for (const char* t : service::kNotificationTypes) known = known || n->type == t;
  FUZZ_CHECK(known, "type '%s' accepted", n->type.c_str());
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(n->body, ec);
  FUZZ_CHECK(!ec && v.is_object(), "body is not a JSON object: %s", n->body.c_str());
  if (n->type == "ASSET_COUNT") {
    FUZZ_CHECK(!n->adam_id.empty(), "ASSET_COUNT without adamId");
    FUZZ_CHECK(n->pricing_param == "STDQ" || n->pricing_param == "PLUS", "pricingParam '%s'", n->pricing_param.c_str());
    FUZZ_CHECK(n->count_delta >= -2147483647LL && n->count_delta <= 2147483647LL, "delta %lld",
               static_cast<long long>(n->count_delta));
  }
  // The receiver keeps the body as received and the applier parses it again:
  // the same bytes must give the same notification. (Re-serialising would not:
  // a number beyond 64 bits is a double whose digits need not survive the round
  // trip — regression-long-number-in-body.)
  auto again = service::ParseNotification(body);
  FUZZ_CHECK(again.has_value(), "the same body refused the second time: %s", again.error().message.c_str());
  FUZZ_CHECK(again->body == n->body && again->adam_id == n->adam_id && again->count_delta == n->count_delta &&
                 again->pricing_param == n->pricing_param && again->notification_id == n->notification_id &&
                 again->type == n->type && again->uid == n->uid,
             "a second parse differs");
}

void CheckBearer(std::string_view header) {
  static const std::string kSecret = "s3cr3t-bearer-value";
  store::NotificationEndpoint e;
  e.auth_hash = Sha256Hex(kSecret);
  e.previous_auth_hash = Sha256Hex("previous");
  e.previous_valid_until = 100;
  const bool now_ok = service::BearerMatches(header, e, 0);
  const bool later_ok = service::BearerMatches(header, e, 100);
  auto is = [&](const std::string& secret) {
    if (header.size() != 7 + secret.size()) return false;
    for (std::size_t i = 0; i < 7; ++i) {
      if (std::tolower(static_cast<unsigned char>(header[i])) != "bearer "[i]) return false;
    }
    return header.substr(7) == secret;
  };
  FUZZ_CHECK(now_ok == (is(kSecret) || is("previous")), "bearer check wrong before the grace ends");
  FUZZ_CHECK(later_ok == is(kSecret), "bearer check wrong after the grace");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) {
    CheckBody(rest);
  } else {
    CheckBearer(rest);
  }
  return 0;
}
