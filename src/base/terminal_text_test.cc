#include "base/terminal_text.h"

#include <gtest/gtest.h>

namespace vppd {
namespace {

TEST(TerminalSafe, KeepsPrintableTextAndValidUtf8) {
  EXPECT_EQ(TerminalSafe("Sim Location 1 — Zürich 東京 🍎 a\\b"), "Sim Location 1 — Zürich 東京 🍎 a\\b");
  EXPECT_EQ(TerminalSafe(""), "");
  EXPECT_EQ(TerminalSafe("\xc2\xa0nbsp"), "\xc2\xa0nbsp");  // U+00A0 is past the C1 range
}

TEST(TerminalSafe, EscapesC0AndDel) {
  EXPECT_EQ(TerminalSafe("row\nforged\trow\r"), "row\\nforged\\trow\\r");
  EXPECT_EQ(TerminalSafe("\x1b]0;title\x07\x1b[2J"), "\\x1b]0;title\\x07\\x1b[2J");
  EXPECT_EQ(TerminalSafe(std::string_view("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(TerminalSafe("del\x7f"), "del\\x7f");
}

TEST(TerminalSafe, EscapesC1IncludingTheOneCharacterCsi) {
  EXPECT_EQ(TerminalSafe("\xc2\x9b"
                         "31mred"),
            "\\u009b31mred");
  EXPECT_EQ(TerminalSafe("\xc2\x80\xc2\x9d\xc2\x9f"), "\\u0080\\u009d\\u009f");
}

TEST(TerminalSafe, EscapesBytesThatAreNotUtf8) {
  EXPECT_EQ(TerminalSafe("\x9b"
                         "2J"),
            "\\x9b2J");                                                 // a lone C1 byte
  EXPECT_EQ(TerminalSafe("\xc0\x8a"), "\\xc0\\x8a");                    // overlong newline
  EXPECT_EQ(TerminalSafe("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // a surrogate
  EXPECT_EQ(TerminalSafe("\xe2\x82"), "\\xe2\\x82");                    // cut short
  EXPECT_EQ(TerminalSafe("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
}

}  // namespace
}  // namespace vppd
