// Text an operator reads on a terminal: CLI tables and messages, the text log.
//
// Names, errors and request data come from tokens, Apple and clients; printed raw,
// a newline forges a table row and an escape sequence (ESC, or the one-character
// CSI U+009B) moves the cursor, rewrites the title or hides what follows. So every
// operator-facing text output passes such values through TerminalSafe:
//
//   std::printf("%s\n", TerminalSafe(token.display_name).c_str());
//   // "Evil\n\x1b[2J" prints as  Evil\n\x1b[2J  on one line, in plain characters
//
// Escaped: C0 controls (\t \n \r by name, others as \xNN), DEL (\x7f), the C1
// controls U+0080..U+009F (\u0080..\u009f), and each byte that is not part of
// well-formed UTF-8 (\xNN: a lone 0x9b is CSI to a terminal in 8-bit mode). Every
// other character, printable ASCII and valid UTF-8, is kept as it is; a backslash
// is kept too (the escapes are for reading, not for parsing back).
#pragma once

#include <string>
#include <string_view>

namespace vppd {

std::string TerminalSafe(std::string_view text);

// Appends TerminalSafe(text) to `out`.
void AppendTerminalSafe(std::string& out, std::string_view text);

}  // namespace vppd
