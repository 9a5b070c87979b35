#include "base/json_escape.h"

#include <string>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <gtest/gtest.h>

namespace vppd {
namespace {

constexpr auto kStandard = JsonEscaping::kStandard;
constexpr auto kSanitized = JsonEscaping::kSanitized;
const std::string kReplacement = "\xef\xbf\xbd";  // U+FFFD

std::string Replacements(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += kReplacement;
  return out;
}

std::string Bytes(std::initializer_list<unsigned char> bytes) { return std::string(bytes.begin(), bytes.end()); }

TEST(JsonEscape, EscapesQuotesBackslashesAndControlsInBothModes) {
  for (const auto mode : {kStandard, kSanitized}) {
    EXPECT_EQ(JsonEscape("", mode), "");
    EXPECT_EQ(JsonEscape("plain", mode), "plain");
    EXPECT_EQ(JsonEscape("a\"b\\c/", mode), "a\\\"b\\\\c/");
    EXPECT_EQ(JsonEscape("l1\nl2\r\t\b\f", mode), "l1\\nl2\\r\\t\\b\\f");
    EXPECT_EQ(JsonEscape(Bytes({0x01, 0x1b, 0x1f, 0x20}), mode), "\\u0001\\u001b\\u001f ");
    EXPECT_EQ(JsonEscape(std::string("nul\0x", 5), mode), "nul\\u0000x");
  }
}

TEST(JsonEscape, StandardCopiesDelAndEveryHighByte) {
  EXPECT_EQ(JsonEscape("\x7f", kStandard), "\x7f");
  EXPECT_EQ(JsonEscape("→ café 😀", kStandard), "→ café 😀");
  // Invalid UTF-8 stays as it came (boost::json::serialize does the same).
  EXPECT_EQ(JsonEscape("\xff\xc0\xaf a\xc3", kStandard), "\xff\xc0\xaf a\xc3");
}

TEST(JsonEscape, StandardEqualsBoostJsonForEveryAsciiByteAndUtf8) {
  std::string all;
  for (int c = 0; c < 0x80; ++c) all += static_cast<char>(c);
  all += "→ café 😀 \xf4\x8f\xbf\xbf";
  for (std::size_t len = 0; len <= all.size(); ++len) {
    const std::string text = all.substr(all.size() - len);
    std::string mine;
    AppendJsonString(mine, text);
    EXPECT_EQ(mine, boost::json::serialize(boost::json::string(text))) << "suffix of length " << len;
  }
}

TEST(JsonEscape, SanitizedEscapesDelAndKeepsWellFormedUtf8) {
  EXPECT_EQ(JsonEscape("a\x7fz", kSanitized), "a\\u007fz");
  EXPECT_EQ(JsonEscape("→ café 😀", kSanitized), "→ café 😀");
  // The extremes of each length: U+0080, U+07FF, U+0800, U+FFFF, U+10000, U+10FFFF,
  // and U+D7FF / U+E000 around the surrogates.
  const std::string edges =
      "\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80";
  EXPECT_EQ(JsonEscape(edges, kSanitized), edges);
}

TEST(JsonEscape, SanitizedReplacesEachInvalidByte) {
  EXPECT_EQ(JsonEscape("\xff", kSanitized), Replacements(1));
  EXPECT_EQ(JsonEscape("\x80", kSanitized), Replacements(1));              // stray continuation
  EXPECT_EQ(JsonEscape("a\xc3", kSanitized), "a" + Replacements(1));       // cut short at the end
  EXPECT_EQ(JsonEscape("\xe2\x82z", kSanitized), Replacements(2) + "z");   // cut short inside
  EXPECT_EQ(JsonEscape("\xc0\xaf", kSanitized), Replacements(2));          // overlong '/'
  EXPECT_EQ(JsonEscape("\xe0\x9f\xbf", kSanitized), Replacements(3));      // overlong U+07FF
  EXPECT_EQ(JsonEscape("\xf0\x8f\xbf\xbf", kSanitized), Replacements(4));  // overlong U+FFFF
  EXPECT_EQ(JsonEscape("\xed\xa0\x80", kSanitized), Replacements(3));      // a surrogate
  EXPECT_EQ(JsonEscape("\xf4\x90\x80\x80", kSanitized), Replacements(4));  // past U+10FFFF
  EXPECT_EQ(JsonEscape("\xf5\x80", kSanitized), Replacements(2));          // no such lead byte
  // Escaping and replacing mix: the replacement does not swallow what follows.
  EXPECT_EQ(JsonEscape("\xff\"\xfe\n", kSanitized), Replacements(1) + "\\\"" + Replacements(1) + "\\n");
}

TEST(AppendJsonString, QuotesAndAppends) {
  std::string out = "x=";
  AppendJsonString(out, "a\"b");
  EXPECT_EQ(out, "x=\"a\\\"b\"");
  AppendJsonEscaped(out, "\xff", kSanitized);
  EXPECT_EQ(out, "x=\"a\\\"b\"" + kReplacement);
}

// The eight-byte fast path must see a byte to escape at every offset of a block and
// in the tail shorter than a block, for strings of every length around a few blocks.
TEST(JsonEscape, FindsWhatToEscapeAtEveryPosition) {
  struct Case {
    std::string in;
    std::string standard;
    std::string sanitized;
  };
  const Case cases[] = {
      {"\"", "\\\"", "\\\""},
      {"\\", "\\\\", "\\\\"},
      {"\n", "\\n", "\\n"},
      {std::string(1, '\0'), "\\u0000", "\\u0000"},
      {"\x1f", "\\u001f", "\\u001f"},
      {"\x7f", "\x7f", "\\u007f"},
      {"\xff", "\xff", kReplacement},
      {"é", "é", "é"},
      {"😀", "😀", "😀"},  // four bytes: straddles a block boundary at some offsets
  };
  for (const auto& c : cases) {
    for (std::size_t len = 0; len <= 24; ++len) {
      for (std::size_t at = 0; at <= len; ++at) {
        const std::string before(at, 'a');
        const std::string after(len - at, 'b');
        EXPECT_EQ(JsonEscape(before + c.in + after, kStandard), before + c.standard + after)
            << "case " << ::testing::PrintToString(c.in) << " at " << at << " of " << len;
        EXPECT_EQ(JsonEscape(before + c.in + after, kSanitized), before + c.sanitized + after)
            << "case " << ::testing::PrintToString(c.in) << " at " << at << " of " << len;
      }
    }
  }
}

// Two bytes to escape in one block, at every pair of offsets: the second is not
// skipped after the first is written.
TEST(JsonEscape, FindsEveryByteInOneBlock) {
  for (std::size_t first = 0; first < 16; ++first) {
    for (std::size_t second = first + 1; second < 16; ++second) {
      std::string in(16, 'x');
      in[first] = '"';
      in[second] = '\x7f';
      std::string want_standard = in;
      want_standard.replace(first, 1, "\\\"");
      std::string want_sanitized = want_standard;
      want_sanitized.replace(second + 1, 1, "\\u007f");
      EXPECT_EQ(JsonEscape(in, kStandard), want_standard) << first << "," << second;
      EXPECT_EQ(JsonEscape(in, kSanitized), want_sanitized) << first << "," << second;
    }
  }
}

}  // namespace
}  // namespace vppd
