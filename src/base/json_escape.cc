#include "base/json_escape.h"

#include <cstdint>
#include <cstring>

namespace vppd {
namespace {

constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHigh = 0x8080808080808080ULL;

// Nonzero when a byte of `w` is below `k` (k <= 0x80): the classic SWAR test, a
// byte b < k sets the top bit of (b - k) & ~b. Exact as to whether any byte is.
constexpr std::uint64_t AnyBelow(std::uint64_t w, unsigned char k) { return (w - kOnes * k) & ~w & kHigh; }
constexpr std::uint64_t AnyEqual(std::uint64_t w, unsigned char b) { return AnyBelow(w ^ (kOnes * b), 1); }

// True when one of the eight bytes of `w` needs the slow path: below 0x20, '"' or
// '\\'; when sanitizing also DEL and every byte >= 0x80 (to check its UTF-8).
template <JsonEscaping kMode>
bool AnyNeedsLook(std::uint64_t w) {
  std::uint64_t hit = AnyBelow(w, 0x20) | AnyEqual(w, '"') | AnyEqual(w, '\\');
  if constexpr (kMode == JsonEscaping::kSanitized) hit |= (w & kHigh) | AnyEqual(w, 0x7f);
  return hit != 0;
}

// The length of the well-formed UTF-8 sequence at p[0..n), n >= 1 and p[0] >= 0x80;
// 0 when there is none (a stray continuation byte, an overlong form, a surrogate,
// a code point past U+10FFFF, or a sequence cut short).
std::size_t Utf8SequenceLength(const unsigned char* p, std::size_t n) {
  const unsigned char c = p[0];
  std::size_t len = 0;
  std::uint32_t cp = 0;
  if (c >= 0xc2 && c <= 0xdf) {  // 0xc0 and 0xc1 could only start overlong forms
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  }
  if (len == 0 || len > n) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((p[k] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (p[k] & 0x3f);
  }
  if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) return 0;
  if (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) return 0;
  return len;
}

template <JsonEscaping kMode>
void AppendEscaped(std::string& out, std::string_view text) {
  const auto* const p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t run = 0;  // start of the pending run copied as it is
  std::size_t i = 0;
  while (i < n) {
    // Eight bytes at a time while none needs a look (nearly all text).
    if (i + 8 <= n) {
      std::uint64_t word;
      std::memcpy(&word, p + i, 8);
      if (!AnyNeedsLook<kMode>(word)) {
        i += 8;
        continue;
      }
    }
    const unsigned char c = p[i];
    if constexpr (kMode == JsonEscaping::kSanitized) {
      if (c >= 0x80) {
        if (const std::size_t len = Utf8SequenceLength(p + i, n - i); len != 0) {
          i += len;
        } else {
          out.append(text.data() + run, i - run);
          run = ++i;
          out += "\xef\xbf\xbd";  // U+FFFD
        }
        continue;
      }
      if (c == 0x7f) {
        out.append(text.data() + run, i - run);
        run = ++i;
        out += "\\u007f";
        continue;
      }
    }
    if (c >= 0x20 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    out.append(text.data() + run, i - run);
    run = ++i;
    out += '\\';
    switch (c) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '\b':
        out += 'b';
        break;
      case '\f':
        out += 'f';
        break;
      case '\n':
        out += 'n';
        break;
      case '\r':
        out += 'r';
        break;
      case '\t':
        out += 't';
        break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        out += "u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
      }
    }
  }
  out.append(text.data() + run, n - run);
}

}  // namespace

void AppendJsonEscaped(std::string& out, std::string_view text, JsonEscaping mode) {
  if (mode == JsonEscaping::kSanitized) {
    AppendEscaped<JsonEscaping::kSanitized>(out, text);
  } else {
    AppendEscaped<JsonEscaping::kStandard>(out, text);
  }
}

void AppendJsonString(std::string& out, std::string_view text, JsonEscaping mode) {
  out += '"';
  AppendJsonEscaped(out, text, mode);
  out += '"';
}

std::string JsonEscape(std::string_view text, JsonEscaping mode) {
  std::string out;
  out.reserve(text.size() + 8);
  AppendJsonEscaped(out, text, mode);
  return out;
}

}  // namespace vppd
