#include "base/terminal_text.h"

#include <cstdio>

namespace vppd {
namespace {

void AppendHex(std::string& out, const char* prefix, unsigned value, int digits) {
  char buf[12];
  const int n = std::snprintf(buf, sizeof buf, "%s%0*x", prefix, digits, value);
  out.append(buf, static_cast<std::size_t>(n));
}

// Length of the well-formed UTF-8 sequence at text[i] (2..4), or 0 when there is
// none (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
std::size_t Utf8Length(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b = byte(i);
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
  if (b >= 0xc2 && b <= 0xdf) {
    len = 2;
  } else if (b >= 0xe0 && b <= 0xef) {
    len = 3;
    if (b == 0xe0) lo = 0xa0;
    if (b == 0xed) hi = 0x9f;
  } else if (b >= 0xf0 && b <= 0xf4) {
    len = 4;
    if (b == 0xf0) lo = 0x90;
    if (b == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + len > text.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  }
  return len;
}

}  // namespace

void AppendTerminalSafe(std::string& out, std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b >= 0x20 && b < 0x7f) {
      out.push_back(static_cast<char>(b));
      ++i;
    } else if (b == '\n') {
      out += "\\n";
      ++i;
    } else if (b == '\r') {
      out += "\\r";
      ++i;
    } else if (b == '\t') {
      out += "\\t";
      ++i;
    } else if (b < 0x80) {  // the other C0 controls and DEL
      AppendHex(out, "\\x", b, 2);
      ++i;
    } else if (const std::size_t len = Utf8Length(text, i); len == 0) {
      AppendHex(out, "\\x", b, 2);
      ++i;
    } else if (b == 0xc2 && static_cast<unsigned char>(text[i + 1]) <= 0x9f) {  // C1: U+0080..U+009F
      AppendHex(out, "\\u", static_cast<unsigned char>(text[i + 1]), 4);
      i += 2;
    } else {
      out.append(text.substr(i, len));
      i += len;
    }
  }
}

std::string TerminalSafe(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  AppendTerminalSafe(out, text);
  return out;
}

}  // namespace vppd
