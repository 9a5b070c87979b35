// JSON string escaping: the one copy every writer of JSON text uses (Graph's
// responses, the log's JSON lines, the simulator's pages).
//
//   std::string body = "{\"id\":";
//   AppendJsonString(body, id);                        // "…" with quotes
//   std::string line = JsonEscape(message, JsonEscaping::kSanitized);  // no quotes
//
// `"`, `\` and the control characters below 0x20 are escaped as
// boost::json::serialize escapes them (\b \f \n \r \t, else \u00XX), so text written
// here equals what boost::json would print (graph's metadata_test checks it byte for
// byte). Text without anything to escape is scanned eight bytes at a time.
#pragma once

#include <string>
#include <string_view>

namespace vppd {

// What becomes of the bytes JSON allows unescaped but a reader may choke on.
enum class JsonEscaping {
  // boost::json's rules: DEL (0x7f) and every byte >= 0x80 copied as given, so
  // invalid UTF-8 in stays invalid out. For text that is UTF-8 already (parsed
  // JSON, the store's columns).
  kStandard,
  // Also DEL as \u007f, and each byte that does not start or continue a
  // well-formed UTF-8 sequence (overlong forms, surrogates and code points past
  // U+10FFFF included) as U+FFFD: the output is valid UTF-8 without control bytes
  // whatever the input (the log, which quotes what clients sent).
  kSanitized,
};

// Appends `text` escaped, without quotes, to `out`.
void AppendJsonEscaped(std::string& out, std::string_view text, JsonEscaping mode = JsonEscaping::kStandard);

// Appends `text` as a JSON string literal, quotes included, to `out`.
void AppendJsonString(std::string& out, std::string_view text, JsonEscaping mode = JsonEscaping::kStandard);

// `text` escaped, without quotes.
std::string JsonEscape(std::string_view text, JsonEscaping mode = JsonEscaping::kStandard);

}  // namespace vppd
