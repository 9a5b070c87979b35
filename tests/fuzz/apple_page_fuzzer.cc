// Fuzzes the parsers of Apple's answers (src/apple/parse.h): every byte of an Apple
// (or man-in-the-middle, or simulator) response is untrusted.
//
// Input: byte 0 picks the parser (assets, assignments, users pages; service config,
// client config, event response, event status, lookup); the rest is the body.
//
// Checks: a failure carries a message; parsing the same body twice with one
// PageParser (a walk reuses it, after failures too) gives the same answer; an
// assignment has exactly one of clientUserId and serialNumber (client.h's contract,
// which the sync relies on to tell user from device licenses); the /assignments
// reader (parse_assignments.cc, hand-written for speed) agrees with Boost.JSON on
// what is JSON, both ways: a page it accepts is JSON to Boost.JSON, and a body
// Boost.JSON reads is refused as "not JSON" only for a number a double or 64-bit
// integer cannot hold.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "apple/parse.h"
#include "fuzz_check.h"

using namespace vppd;
using namespace vppd::apple;

namespace {

template <class T>
void CheckStatus(const AppleResult<T>& r) {
  if (!r) FUZZ_CHECK(!r.error().error_message.empty(), "error without a message: %s", r.error().Describe().c_str());
}

// Parses `body` twice with one parser (a walk reuses it, after failures too);
// both answers must agree. Empty when the body was refused.
template <class Item, class Parse>
std::optional<std::vector<Item>> ParseTwice(Parse parse, std::string_view body) {
  internal::PageParser parser;
  internal::PageMeta meta1, meta2;
  std::vector<Item> items1, items2;
  const AppleStatus first = (parser.*parse)(body, &meta1, &items1);
  const AppleStatus second = (parser.*parse)(body, &meta2, &items2);
  CheckStatus(first);
  FUZZ_CHECK(first.has_value() == second.has_value(), "a reused parser changed its verdict");
  if (!first) return std::nullopt;
  FUZZ_CHECK(items1.size() == items2.size(), "a reused parser read %zu items, then %zu", items1.size(), items2.size());
  FUZZ_CHECK(meta1.current == meta2.current && meta1.next == meta2.next && meta1.total == meta2.total &&
                 meta1.version_id == meta2.version_id && meta1.envelope.uid == meta2.envelope.uid,
             "a reused parser read other paging members");
  return items1;
}

// The same for /assignments pages, whose items view the body or the strings the
// reader decoded: every view must point into one of them (ASan then also
// reads each), and the two parses must read the same items. The items, copied.
std::optional<std::vector<Assignment>> ParseAssignmentsTwice(std::string_view body, std::string* error) {
  internal::PageParser parser;
  internal::PageMeta meta1, meta2;
  std::vector<AssignmentRef> items1, items2;
  std::deque<std::string> decoded1, decoded2;
  const AppleStatus first = parser.Assignments(body, &meta1, &items1, &decoded1);
  const AppleStatus second = parser.Assignments(body, &meta2, &items2, &decoded2);
  CheckStatus(first);
  if (!first) *error = first.error().error_message;
  FUZZ_CHECK(first.has_value() == second.has_value(), "a reused parser changed its verdict");
  if (!first) return std::nullopt;
  FUZZ_CHECK(items1.size() == items2.size(), "a reused parser read %zu items, then %zu", items1.size(), items2.size());
  auto kept = [&](std::string_view v) {
    if (v.empty() || (v.data() >= body.data() && v.data() + v.size() <= body.data() + body.size())) return true;
    for (const std::string& d : decoded1)
      if (v.data() == d.data() && v.size() == d.size()) return true;
    return false;
  };
  std::vector<Assignment> out;
  for (std::size_t i = 0; i < items1.size(); ++i) {
    const AssignmentRef& a = items1[i];
    FUZZ_CHECK(kept(a.adam_id) && kept(a.pricing_param) && kept(a.client_user_id) && kept(a.serial_number),
               "item %zu views memory outside the body and the decoded strings", i);
    const AssignmentRef& b = items2[i];
    FUZZ_CHECK(a.adam_id == b.adam_id && a.pricing_param == b.pricing_param && a.client_user_id == b.client_user_id &&
                   a.serial_number == b.serial_number,
               "a reused parser read item %zu otherwise", i);
    out.push_back(a.Own());
  }
  return out;
}

// The /assignments reader's verdict on JSON against Boost.JSON's (full
// validation, depth <= 32): accepted → JSON (an object); refused as not JSON →
// not JSON, unless for a number beyond what the reader holds (Boost.JSON reads
// any number as a double; the reader refuses integers beyond 64 bits and
// doubles that overflow, as simdjson did before it).
void SameVerdictAsBoostJson(std::string_view body, bool accepted, const std::string& error) {
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(boost::json::string_view(body.data(), body.size()), ec);
  if (accepted) {
    FUZZ_CHECK(!ec, "an accepted /assignments page is not JSON to Boost.JSON: %s", ec.message().c_str());
    FUZZ_CHECK(v.is_object(), "an accepted /assignments page is not an object");
    return;
  }
  // The reader's syntax errors begin so (a message about a member's value may
  // quote the body, and the body may say anything).
  if (ec || error.rfind("the response is not JSON: ", 0) != 0) return;
  FUZZ_CHECK(error.find("integer beyond 64 bits") != std::string::npos ||
                 error.find("number out of range") != std::string::npos,
             "JSON to Boost.JSON refused as not JSON: %s", error.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 8) {
    case 0:
      ParseTwice<Asset>(&internal::PageParser::Assets, body);
      break;
    case 1: {
      std::string error;
      const auto items = ParseAssignmentsTwice(body, &error);
      SameVerdictAsBoostJson(body, items.has_value(), error);
      if (!items) break;
      for (const Assignment& a : *items) {
        FUZZ_CHECK(a.client_user_id.empty() != a.serial_number.empty(),
                   "assignment with clientUserId '%s' and serialNumber '%s'", a.client_user_id.c_str(),
                   a.serial_number.c_str());
        FUZZ_CHECK(!a.adam_id.empty(), "assignment without adamId");
      }
      break;
    }
    case 2:
      ParseTwice<User>(&internal::PageParser::Users, body);
      break;
    case 3:
      CheckStatus(internal::ParseServiceConfig(body));
      break;
    case 4:
      CheckStatus(internal::ParseClientConfig(body));
      break;
    case 5:
      CheckStatus(internal::ParseEventResponse(body));
      break;
    case 6:
      CheckStatus(internal::ParseEventStatus(body));
      break;
    case 7: {
      std::vector<AppMetadata> out;
      const AppleStatus s = internal::ParseLookup(body, &out);
      if (!s) FUZZ_CHECK(!s.error().error_message.empty(), "lookup error without a message");
      break;
    }
  }
  return 0;
}
