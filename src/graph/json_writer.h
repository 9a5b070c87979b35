// JsonWriter: appends JSON text straight to a std::string. Internal to graph/.
//
// The hot responses (a vppToken, the Graph error envelope) are written with it
// instead of building a boost::json::object and serialising it: the tree costs an
// allocation per member and a hashed insert per key, then a second pass to print
// it (measured: a third of a vppToken read's handler time; bench/README.md "api").
// Strings are escaped as boost::json::serialize escapes them, so the output is the
// same text either way.
//
//   std::string body;
//   JsonWriter w(body);
//   w.BeginObject();
//   w.Key("id");
//   w.String(id);
//   w.EndObject();
//
// The writer inserts the commas; it does not check the nesting (a Key outside an
// object is the caller's bug), which keeps each call a few appends.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace vppd::graph {

class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  void BeginObject() { Open('{'); }
  void EndObject() { Close('}'); }
  void BeginArray() { Open('['); }
  void EndArray() { Close(']'); }

  // A member name; the next call writes its value.
  void Key(std::string_view name) {
    Separate();
    AppendQuoted(name);
    out_ += ':';
    comma_ = false;
  }

  void String(std::string_view s) {
    Separate();
    AppendQuoted(s);
    comma_ = true;
  }
  void Int(std::int64_t v) {
    Separate();
    char buf[24];
    char* end = buf + sizeof buf;
    char* p = end;
    // Digits of the magnitude, computed unsigned so INT64_MIN does not overflow.
    std::uint64_t u = v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
    do {
      *--p = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u != 0);
    if (v < 0) *--p = '-';
    out_.append(p, static_cast<std::size_t>(end - p));
    comma_ = true;
  }
  void Bool(bool v) {
    Separate();
    out_ += v ? "true" : "false";
    comma_ = true;
  }
  void Null() {
    Separate();
    out_ += "null";
    comma_ = true;
  }
  // An already serialised JSON value (an array or object from elsewhere).
  void Raw(std::string_view json) {
    Separate();
    out_ += json;
    comma_ = true;
  }

 private:
  void Separate() {
    if (comma_) out_ += ',';
  }
  void Open(char c) {
    Separate();
    out_ += c;
    comma_ = false;
  }
  void Close(char c) {
    out_ += c;
    comma_ = true;
  }

  // "s" with `"`, `\` and control characters escaped (\b \f \n \r \t, else
  // \u00XX), everything else (UTF-8 included) as is: boost::json's rules.
  void AppendQuoted(std::string_view s) {
    out_ += '"';
    const char* const p = s.data();
    const std::size_t n = s.size();
    std::size_t run = 0;  // start of the pending unescaped run
    std::size_t i = 0;
    while (i < n) {
      // Eight bytes at a time while none needs escaping (nearly all text).
      if (i + 8 <= n) {
        std::uint64_t word;
        std::memcpy(&word, p + i, 8);
        if (!AnyNeedsEscape(word)) {
          i += 8;
          continue;
        }
      }
      const auto c = static_cast<unsigned char>(p[i]);
      if (c >= 0x20 && c != '"' && c != '\\') {
        ++i;
        continue;
      }
      out_.append(p + run, i - run);
      run = ++i;
      out_ += '\\';
      switch (c) {
        case '"': out_ += '"'; break;
        case '\\': out_ += '\\'; break;
        case '\b': out_ += 'b'; break;
        case '\f': out_ += 'f'; break;
        case '\n': out_ += 'n'; break;
        case '\r': out_ += 'r'; break;
        case '\t': out_ += 't'; break;
        default: {
          static constexpr char kHex[] = "0123456789abcdef";
          out_ += "u00";
          out_ += kHex[c >> 4];
          out_ += kHex[c & 0xf];
        }
      }
    }
    out_.append(p + run, n - run);
    out_ += '"';
  }

  // True when one of the eight bytes of `w` is below 0x20, '"' or '\\' (the
  // classic SWAR tests: a byte b < k sets the top bit of (b - k) & ~b).
  static bool AnyNeedsEscape(std::uint64_t w) {
    constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
    constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
    const auto has_zero = [](std::uint64_t v) { return (v - kOnes) & ~v & kHigh; };
    const std::uint64_t below_space = (w - kOnes * 0x20) & ~w & kHigh;
    return (below_space | has_zero(w ^ (kOnes * '"')) | has_zero(w ^ (kOnes * '\\'))) != 0;
  }

  std::string& out_;
  bool comma_ = false;  // a value precedes: the next key or element needs a ','
};

}  // namespace vppd::graph
