// OData query options → Graph's terms (Expr, OrderKey) → store::ListQuery. See odata.h
// for the contract.
//
// Layout of this file, in the order a request flows through it:
//   1. small helpers: errors, echoing client text, UTF-8, integers;
//   2. the query string: tolerant escaping, splitting and decoding with Boost.URL;
//   3. the $filter tokenizer;
//   4. the $filter parser (syntax only → SyntaxNode tree with positions);
//   5. the $filter checker (SyntaxNode → Expr, against the EntityDef);
//   6. $orderby, $select, $expand, $top/$skip/$count;
//   7. $skiptoken and next links;
//   8. the public entry points (which hand the result to graph/store_mapping.h for
//      the store's terms) and DebugString.
#include "graph/odata.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <system_error>
#include <utility>

#include <boost/url/encoding_opts.hpp>
#include <boost/url/params_encoded_view.hpp>
#include <boost/url/parse_query.hpp>

#include "base/base.h"
#include "graph/store_mapping.h"

namespace vppd::graph {

const TypeDef* EntityDef::FindType(std::string_view type_name) const {
  for (const TypeDef& t : types) {
    if (t.name == type_name) return &t;
  }
  return nullptr;
}

const PropertyDef* EntityDef::Find(std::string_view property_name) const {
  for (const PropertyDef& p : properties) {
    if (p.name == property_name) return &p;
  }
  return nullptr;
}

namespace {

// ---------------------------------------------------------------------------
// 1. Helpers
// ---------------------------------------------------------------------------

// Integers accepted in $top/$skip and in skiptokens: up to 2^53-1, so every value
// is exact in JSON clients and `offset + page` can never overflow an int64.
constexpr std::int64_t kMaxSafeInteger = (std::int64_t{1} << 53) - 1;
// How much of a client's text an error message quotes back.
constexpr std::size_t kMaxEchoCodePoints = 200;
// A skiptoken is ~60 characters; anything much longer is not ours.
constexpr std::size_t kMaxSkipTokenLength = 256;

Error BadRequest(std::string message, std::string target) {
  return Error::InvalidArgument(std::move(message), std::move(target));
}

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// The code point index of byte offset `byte_pos` in (valid UTF-8) `text`: positions in
// messages count characters, as a person reading the filter would.
std::size_t CodePointOffset(std::string_view text, std::size_t byte_pos) {
  byte_pos = std::min(byte_pos, text.size());
  std::size_t n = 0;
  for (std::size_t i = 0; i < byte_pos; ++i) {
    if (!IsContinuationByte(text[i])) ++n;
  }
  return n;
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int extra = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;  // truncated sequence
    for (int k = 1; k <= extra; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr std::array<std::uint32_t, 4> kMinForLength = {0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

// Client text quoted in a message, cut to a readable length on a character boundary.
// Bytes of invalid UTF-8 (possible in option names and raw query text, which are not
// validated) become '?', so that the message is always valid JSON text.
std::string Echo(std::string_view text) {
  std::string safe;
  if (!IsValidUtf8(text)) {
    safe.assign(text);
    for (char& c : safe) {
      if (static_cast<unsigned char>(c) >= 0x80) c = '?';
    }
    text = safe;
  }
  std::size_t count = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (IsContinuationByte(text[i])) continue;
    if (count == kMaxEchoCodePoints) return std::string(text.substr(0, i)) + "...";
    ++count;
  }
  return std::string(text);
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || IsDigit(c); }

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// A non-negative decimal integer of at most kMaxSafeInteger, digits only (no sign,
// no spaces): the form of $top, $skip and skiptoken fields.
std::optional<std::int64_t> ParseNonNegative(std::string_view text) {
  if (text.empty() || text.size() > 16) return std::nullopt;
  for (char c : text) {
    if (!IsDigit(c)) return std::nullopt;
  }
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v > kMaxSafeInteger) return std::nullopt;
  return v;
}

std::string QualifiedTypeName(const EntityDef& entity) { return "microsoft.graph." + entity.name; }

// ---------------------------------------------------------------------------
// 2. The query string
// ---------------------------------------------------------------------------

// Characters RFC 3986 allows unescaped in a query (pchar / "/" / "?"), plus '%'
// which starts an escape.
bool IsQueryChar(char c) {
  if (IsIdentChar(c)) return true;
  switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':  // unreserved
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':  // sub-delims
    case '+':
    case ',':
    case ';':
    case '=':
    case ':':
    case '@':
    case '/':
    case '?':
    case '%':
      return true;
    default:
      return false;
  }
}

struct QueryParam {
  std::string name;     // decoded, as sent ("$filter", "$Top", "api-version")
  std::string value;    // decoded; '+' became a space
  std::string encoded;  // "key=value" in (escaped) encoded form, for next links
};

// Splits and decodes a raw query string. Bytes that are not allowed unescaped in a
// query are escaped first instead of rejected: browsers and many clients send raw
// UTF-8 or `"`, and Graph accepts them. A '%' that does not start a valid escape is an
// error, since its meaning cannot be guessed.
Result<std::vector<QueryParam>> SplitQuery(std::string_view raw) {
  if (!raw.empty() && raw.front() == '?') raw.remove_prefix(1);
  std::string escaped;
  escaped.reserve(raw.size());
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c == '%' && i + 2 >= raw.size()) {
      return Fail(BadRequest(
          "Malformed query string: incomplete percent-encoding at position " + std::to_string(i) + ".", "query"));
    }
    if (c == '%' && !(IsHexDigit(raw[i + 1]) && IsHexDigit(raw[i + 2]))) {
      return Fail(BadRequest("Malformed query string: invalid percent-encoding '" + Echo(raw.substr(i, 3)) +
                                 "' at position " + std::to_string(i) + ".",
                             "query"));
    }
    if (IsQueryChar(c)) {
      escaped.push_back(c);
    } else {
      const auto u = static_cast<unsigned char>(c);
      escaped.push_back('%');
      escaped.push_back(kHex[u >> 4]);
      escaped.push_back(kHex[u & 0xF]);
    }
  }
  auto parsed = boost::urls::parse_query(escaped);
  if (!parsed) {
    // Unreachable after the escaping above; kept so a Boost.URL change cannot crash us.
    return Fail(BadRequest("Malformed query string: " + parsed.error().message() + ".", "query"));
  }
  const boost::urls::encoding_opts plus_is_space(/*space_as_plus=*/true);
  std::vector<QueryParam> params;
  for (const auto& p : *parsed) {
    if (p.key.empty() && !p.has_value) continue;  // "a=1&&b=2"
    QueryParam q;
    q.name = p.key.decode(plus_is_space);
    q.value = p.has_value ? p.value.decode(plus_is_space) : std::string();
    q.encoded = std::string(p.key);
    if (p.has_value) q.encoded += "=" + std::string(p.value);
    params.push_back(std::move(q));
  }
  return params;
}

// The system query options vppd knows. Others starting with '$' are "not supported".
enum class OptionId { kFilter, kOrderBy, kTop, kSkip, kCount, kSelect, kSearch, kExpand, kSkipToken };

struct OptionName {
  std::string_view name;  // lower-case, with '$'
  OptionId id;
};
constexpr std::array<OptionName, 9> kOptions = {{
    {"$filter", OptionId::kFilter},
    {"$orderby", OptionId::kOrderBy},
    {"$top", OptionId::kTop},
    {"$skip", OptionId::kSkip},
    {"$count", OptionId::kCount},
    {"$select", OptionId::kSelect},
    {"$search", OptionId::kSearch},
    {"$expand", OptionId::kExpand},
    {"$skiptoken", OptionId::kSkipToken},
}};

std::optional<OptionId> FindOption(std::string_view name) {
  const std::string lower = AsciiLower(name);
  for (const OptionName& o : kOptions) {
    if (o.name == lower) return o.id;
  }
  return std::nullopt;
}

std::string_view CanonicalName(OptionId id) {
  for (const OptionName& o : kOptions) {
    if (o.id == id) return o.name;
  }
  return "$?";
}

Error NotSupported(std::string_view name_as_sent) {
  return BadRequest("Query option '" + Echo(name_as_sent) + "' is not supported.", Echo(name_as_sent));
}

// The decoded values of the system options of one request, at most one each.
struct OptionValues {
  std::array<std::optional<std::string>, kOptions.size()> values;
  std::optional<std::string>& operator[](OptionId id) { return values[static_cast<std::size_t>(id)]; }
  const std::optional<std::string>& operator[](OptionId id) const { return values[static_cast<std::size_t>(id)]; }
};

// Collects the `$`-options, rejecting unknown, disallowed and repeated ones and values
// that are not valid UTF-8. `allowed(id)` says whether this endpoint takes the option.
template <class AllowedFn>
Result<OptionValues> CollectOptions(const std::vector<QueryParam>& params, AllowedFn allowed) {
  OptionValues out;
  for (const QueryParam& p : params) {
    if (p.name.empty() || p.name.front() != '$') continue;  // Graph ignores other parameters.
    const std::optional<OptionId> id = FindOption(p.name);
    if (!id || !allowed(*id)) return Fail(NotSupported(p.name));
    std::optional<std::string>& slot = out[*id];
    if (slot) {
      return Fail(BadRequest("Query option '" + std::string(CanonicalName(*id)) + "' is specified more than once.",
                             std::string(CanonicalName(*id))));
    }
    if (p.value.find('\0') != std::string::npos || !IsValidUtf8(p.value)) {
      return Fail(BadRequest(
          "Invalid " + std::string(CanonicalName(*id)) + ": the value contains a NUL byte or is not valid UTF-8.",
          std::string(CanonicalName(*id))));
    }
    slot = p.value;
  }
  return out;
}

// ---------------------------------------------------------------------------
// 3. $filter tokenizer
// ---------------------------------------------------------------------------

enum class TokenKind {
  kEnd,
  kLParen,
  kRParen,
  kComma,
  kSlash,
  kIdentifier,   // a name, possibly dotted: displayName, and, true, microsoft.graph.iosVppApp
  kString,       // 'it''s' → text = it's
  kInteger,      // 42, -2
  kDecimal,      // 1.5, 1e3
  kDateTime,     // 2026-01-01T00:00:00Z
  kGuid,         // 8-4-4-4-12 hex, unquoted
  kEnumLiteral,  // microsoft.graph.vppTokenState'valid' → text = type, member = valid
  kError,        // a lexical error; always the last token, carries the error
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::size_t pos = 0;  // byte offset of the first character in the decoded text
  std::size_t end = 0;  // byte offset one past the last character
  std::string text;
  std::string member;
  std::int64_t integer = 0;
  double decimal = 0;
  Timestamp micros = 0;
  std::optional<Error> error;  // kError
};

// What an error message calls a token.
std::string Describe(const Token& t, std::string_view source) {
  switch (t.kind) {
    case TokenKind::kEnd:
    case TokenKind::kError:
      return "end of input";
    case TokenKind::kLParen:
      return "'('";
    case TokenKind::kRParen:
      return "')'";
    case TokenKind::kComma:
      return "','";
    case TokenKind::kSlash:
      return "'/'";
    case TokenKind::kString:
    case TokenKind::kEnumLiteral:
      return Echo(source.substr(t.pos, t.end - t.pos));  // already quoted: 'it''s'
    default:
      return "'" + Echo(source.substr(t.pos, t.end - t.pos)) + "'";
  }
}

// The errors of one option value: they all say which option, and quote positions as
// code point offsets into the decoded value.
class OptionErrors {
 public:
  OptionErrors(std::string_view option, std::string_view source) : option_(option), source_(source) {}

  // "Invalid $filter: unknown property 'x' at position 3."
  Error At(std::size_t byte_pos, const std::string& detail) const {
    return BadRequest("Invalid " + std::string(option_) + ": " + detail + " at position " +
                          std::to_string(CodePointOffset(source_, byte_pos)) + ".",
                      std::string(option_));
  }
  // "Invalid $filter: syntax error at position 14 in 'state eq': expected a value."
  Error Syntax(std::size_t byte_pos, const std::string& detail) const {
    return BadRequest("Invalid " + std::string(option_) + ": syntax error at position " +
                          std::to_string(CodePointOffset(source_, byte_pos)) + " in '" + Echo(source_) +
                          "': " + detail + ".",
                      std::string(option_));
  }
  // "Invalid $filter: the filter is empty."
  Error Plain(const std::string& detail) const {
    return BadRequest("Invalid " + std::string(option_) + ": " + detail + ".", std::string(option_));
  }
  std::string_view source() const { return source_; }

 private:
  std::string_view option_;
  std::string_view source_;
};

bool MatchesGuidAt(std::string_view s, std::size_t i) {
  static constexpr std::string_view kShape = "hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh";
  if (s.size() - i < kShape.size()) return false;
  for (std::size_t k = 0; k < kShape.size(); ++k) {
    const char c = s[i + k];
    if (kShape[k] == '-' ? c != '-' : !IsHexDigit(c)) return false;
  }
  const std::size_t after = i + kShape.size();
  return after == s.size() || !IsIdentChar(s[after]);
}

// `YYYY-MM-DDT` starts a DateTimeOffset literal.
bool MatchesDateTimeAt(std::string_view s, std::size_t i) {
  static constexpr std::string_view kShape = "dddd-dd-ddT";
  if (s.size() - i < kShape.size()) return false;
  for (std::size_t k = 0; k < kShape.size(); ++k) {
    const char c = s[i + k];
    if (kShape[k] == 'd' ? !IsDigit(c) : c != kShape[k]) return false;
  }
  return true;
}

// `YYYY-MM-DD` not followed by `T`: an Edm.Date, which no vppd property has.
bool MatchesDateAt(std::string_view s, std::size_t i) {
  static constexpr std::string_view kShape = "dddd-dd-dd";
  if (s.size() - i < kShape.size()) return false;
  for (std::size_t k = 0; k < kShape.size(); ++k) {
    const char c = s[i + k];
    if (kShape[k] == 'd' ? !IsDigit(c) : c != kShape[k]) return false;
  }
  return true;
}

class Tokenizer {
 public:
  explicit Tokenizer(const OptionErrors& errors) : errors_(errors), s_(errors.source()) {}

  // The next token; kEnd at the end (and ever after). A lexical error comes back as a
  // kError token for the parser to raise when it gets there, so that errors are
  // reported in text order: `a/any(x:...)` complains about the path before the ':'.
  // Tokens are produced on demand: rejecting `((((...` stops after max_depth tokens.
  Token Next() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
    Token t;
    t.pos = i_;
    if (i_ < s_.size()) {
      Status status = Scan(t);
      if (!status) {
        t.kind = TokenKind::kError;
        t.error = std::move(status.error());
        i_ = s_.size();
      }
    }
    t.end = i_;
    return t;
  }

  // All tokens up to and including the first kEnd or kError.
  std::vector<Token> Run() {
    std::vector<Token> tokens;
    while (true) {
      tokens.push_back(Next());
      if (tokens.back().kind == TokenKind::kEnd || tokens.back().kind == TokenKind::kError) return tokens;
    }
  }

 private:
  Status Scan(Token& t) {
    const char c = s_[i_];
    switch (c) {
      case '(':
        ++i_;
        t.kind = TokenKind::kLParen;
        return {};
      case ')':
        ++i_;
        t.kind = TokenKind::kRParen;
        return {};
      case ',':
        ++i_;
        t.kind = TokenKind::kComma;
        return {};
      case '/':
        ++i_;
        t.kind = TokenKind::kSlash;
        return {};
      case '\'':
        t.kind = TokenKind::kString;
        return QuotedString(t.text);
      case '@':
        return Fail(errors_.At(i_, "parameter aliases ('@name') are not supported"));
      default:
        break;
    }
    // A GUID may start with a letter or a digit, so it is tried before both.
    if (IsHexDigit(c) && MatchesGuidAt(s_, i_)) {
      t.kind = TokenKind::kGuid;
      t.text = std::string(s_.substr(i_, 36));
      i_ += 36;
      return {};
    }
    if (IsDigit(c) && MatchesDateTimeAt(s_, i_)) return DateTime(t);
    if (IsDigit(c) && MatchesDateAt(s_, i_)) {
      return Fail(errors_.At(i_, "Edm.Date literal '" + std::string(s_.substr(i_, 10)) +
                                     "' is not supported; write a DateTimeOffset such as " +
                                     std::string(s_.substr(i_, 10)) + "T00:00:00Z"));
    }
    if (IsDigit(c) || (c == '-' && i_ + 1 < s_.size() && IsDigit(s_[i_ + 1]))) return Number(t);
    if (IsIdentStart(c)) return Identifier(t);
    // Show the whole (possibly multi-byte) character.
    std::size_t len = 1;
    while (i_ + len < s_.size() && IsContinuationByte(s_[i_ + len])) ++len;
    return Fail(errors_.Syntax(i_, "unexpected character '" + std::string(s_.substr(i_, len)) + "'"));
  }

  // '...' with '' standing for one quote. `i_` is at the opening quote.
  Status QuotedString(std::string& out) {
    const std::size_t start = i_;
    ++i_;
    while (true) {
      if (i_ == s_.size()) return Fail(errors_.Syntax(start, "unterminated string literal"));
      if (s_[i_] == '\'') {
        if (i_ + 1 < s_.size() && s_[i_ + 1] == '\'') {
          out.push_back('\'');
          i_ += 2;
          continue;
        }
        ++i_;
        return {};
      }
      out.push_back(s_[i_++]);
    }
  }

  Status DateTime(Token& t) {
    const std::size_t start = i_;
    while (i_ < s_.size() &&
           (IsIdentChar(s_[i_]) || s_[i_] == ':' || s_[i_] == '.' || s_[i_] == '-' || s_[i_] == '+')) {
      ++i_;
    }
    const std::string_view text = s_.substr(start, i_ - start);
    Result<Timestamp> parsed = ParseIso8601(text);
    if (!parsed) {
      std::string detail = "invalid DateTimeOffset literal '" + Echo(text) + "' (" + parsed.error().message + ")";
      // `+02:00` sent unencoded arrives as ` 02:00`: '+' in a query string is a space.
      if (i_ + 3 < s_.size() && s_[i_] == ' ' && IsDigit(s_[i_ + 1]) && IsDigit(s_[i_ + 2]) && s_[i_ + 3] == ':') {
        detail += "; a '+' in a URL stands for a space, so send the offset's '+' as %2B";
      }
      return Fail(errors_.At(start, detail));
    }
    t.kind = TokenKind::kDateTime;
    t.text = std::string(text);
    t.micros = *parsed;
    return {};
  }

  // -?digits[.digits][(e|E)[+|-]digits]
  Status Number(Token& t) {
    const std::size_t start = i_;
    if (s_[i_] == '-') ++i_;
    while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
    bool is_decimal = false;
    if (i_ + 1 < s_.size() && s_[i_] == '.' && IsDigit(s_[i_ + 1])) {
      is_decimal = true;
      ++i_;
      while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      std::size_t j = i_ + 1;
      if (j < s_.size() && (s_[j] == '+' || s_[j] == '-')) ++j;
      if (j < s_.size() && IsDigit(s_[j])) {
        is_decimal = true;
        i_ = j;
        while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
      }
    }
    if (i_ < s_.size() && (IsIdentChar(s_[i_]) || s_[i_] == '.')) {
      std::size_t bad_end = i_;
      while (bad_end < s_.size() && (IsIdentChar(s_[bad_end]) || s_[bad_end] == '.')) ++bad_end;
      return Fail(errors_.At(start, "invalid number literal '" + Echo(s_.substr(start, bad_end - start)) + "'"));
    }
    const std::string_view text = s_.substr(start, i_ - start);
    t.text = std::string(text);
    if (is_decimal) {
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), t.decimal);
      if (ec != std::errc() || end != text.data() + text.size()) {
        return Fail(errors_.At(start, "number literal '" + Echo(text) + "' is out of range"));
      }
      t.kind = TokenKind::kDecimal;
    } else {
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), t.integer);
      if (ec != std::errc() || end != text.data() + text.size()) {
        return Fail(errors_.At(start, "integer literal '" + Echo(text) + "' is out of range"));
      }
      t.kind = TokenKind::kInteger;
    }
    return {};
  }

  // name(.name)*, and when a quote follows directly, a typed literal: Type'value'.
  Status Identifier(Token& t) {
    const std::size_t start = i_;
    while (true) {
      while (i_ < s_.size() && IsIdentChar(s_[i_])) ++i_;
      if (i_ + 1 < s_.size() && s_[i_] == '.' && IsIdentStart(s_[i_ + 1])) {
        ++i_;
        continue;
      }
      break;
    }
    t.text = std::string(s_.substr(start, i_ - start));
    if (i_ < s_.size() && s_[i_] == '\'') {
      t.kind = TokenKind::kEnumLiteral;
      return QuotedString(t.member);
    }
    t.kind = TokenKind::kIdentifier;
    return {};
  }

  const OptionErrors& errors_;
  std::string_view s_;
  std::size_t i_ = 0;
};

// ---------------------------------------------------------------------------
// 4. $filter parser: tokens → syntax tree. No entity knowledge here.
// ---------------------------------------------------------------------------

struct SyntaxNode {
  enum class Kind { kProperty, kLiteral, kCompare, kAnd, kOr, kNot, kIn, kCall };
  Kind kind = Kind::kLiteral;
  Token token;      // kProperty: the name; kLiteral: the literal; kCall: the function name; else the operator
  Op op = Op::kEq;  // kCompare
  // kProperty of a derived-type path `microsoft.graph.iosVppApp/vppTokenId`: the type,
  // and its position (token is then the property after the '/').
  std::string cast;
  std::size_t cast_pos = 0;
  std::vector<SyntaxNode> children;
};

struct ComparisonName {
  std::string_view name;
  Op op;
};
constexpr std::array<ComparisonName, 6> kComparisons = {{
    {"eq", Op::kEq},
    {"ne", Op::kNe},
    {"gt", Op::kGt},
    {"ge", Op::kGe},
    {"lt", Op::kLt},
    {"le", Op::kLe},
}};

// Operators of OData that vppd's store cannot evaluate.
constexpr std::array<std::string_view, 6> kUnsupportedOperators = {"has", "add", "sub", "mul", "div", "mod"};

std::string_view OpName(Op op) {
  switch (op) {
    case Op::kEq:
      return "eq";
    case Op::kNe:
      return "ne";
    case Op::kGt:
      return "gt";
    case Op::kGe:
      return "ge";
    case Op::kLt:
      return "lt";
    case Op::kLe:
      return "le";
    case Op::kAnd:
      return "and";
    case Op::kOr:
      return "or";
    case Op::kNot:
      return "not";
    case Op::kIn:
      return "in";
    case Op::kStartsWith:
      return "startswith";
    case Op::kEndsWith:
      return "endswith";
    case Op::kContains:
      return "contains";
    case Op::kIsOf:
      return "isof";
  }
  return "?";
}

bool IsWord(const Token& t, std::string_view word) { return t.kind == TokenKind::kIdentifier && t.text == word; }

bool IsReservedWord(const Token& t) {
  if (t.kind != TokenKind::kIdentifier) return false;
  for (std::string_view w : {"and", "or", "not", "in", "eq", "ne", "gt", "ge", "lt", "le"}) {
    if (t.text == w) return true;
  }
  return false;
}

class Parser {
 public:
  Parser(const OptionErrors& errors, int max_depth)
      : errors_(errors), tokenizer_(errors), current_(tokenizer_.Next()), max_depth_(max_depth) {}

  Result<SyntaxNode> Parse() {
    Result<SyntaxNode> root = ParseOr(0);
    if (!root) return root;
    if (Peek().kind != TokenKind::kEnd) return Fail(Unexpected(Peek(), "expected 'and', 'or' or the end"));
    return root;
  }

 private:
  const Token& Peek() const { return current_; }
  Token Take() {
    Token taken = std::move(current_);
    current_ = tokenizer_.Next();
    return taken;
  }

  // A token where another was expected, with a hint when it looks like a mistyped keyword.
  Error Unexpected(const Token& t, const std::string& expected) const {
    if (t.kind == TokenKind::kError) return *t.error;
    std::string detail = "unexpected " + Describe(t, errors_.source()) + ", " + expected;
    if (t.kind == TokenKind::kIdentifier) {
      const std::string lower = AsciiLower(t.text);
      for (std::string_view op : kUnsupportedOperators) {
        if (t.text == op) return errors_.At(t.pos, "operator '" + t.text + "' is not supported");
      }
      for (std::string_view w : {"and", "or", "not", "in", "eq", "ne", "gt", "ge", "lt", "le", "asc", "desc"}) {
        if (lower == w && t.text != w) {
          detail += " ('" + t.text + "' is not a keyword: OData keywords are lower-case, '" + std::string(w) + "')";
          break;
        }
      }
    }
    return errors_.Syntax(t.pos, detail);
  }

  Status Deeper(int depth, const Token& at) const {
    if (depth > max_depth_) {
      return Fail(errors_.At(at.pos, "expression nested deeper than " + std::to_string(max_depth_) + " levels"));
    }
    return {};
  }

  // `a or b or c ...` and `a and b and ...` chains become balanced trees (both
  // operators are associative, also in SQL's three-valued logic), so that a long
  // list of alternatives costs log2(n) levels of tree depth, not n: the store bounds
  // the depth it compiles, and recursion over the tree stays shallow.
  Result<SyntaxNode> ParseOr(int depth) { return ParseChain(depth, "or", SyntaxNode::Kind::kOr); }
  Result<SyntaxNode> ParseAnd(int depth) { return ParseChain(depth, "and", SyntaxNode::Kind::kAnd); }

  Result<SyntaxNode> ParseChain(int depth, std::string_view word, SyntaxNode::Kind kind) {
    std::vector<SyntaxNode> operands;
    std::vector<Token> ops;
    while (true) {
      Result<SyntaxNode> operand = kind == SyntaxNode::Kind::kOr ? ParseAnd(depth) : ParseNot(depth);
      if (!operand) return operand;
      operands.push_back(std::move(*operand));
      if (!IsWord(Peek(), word)) break;
      ops.push_back(Take());
    }
    return Balanced(kind, operands, ops, 0, operands.size());
  }

  // operands[lo, hi) joined by ops[lo, hi-1), left half one larger: (a b c) → ((a b) c).
  static SyntaxNode Balanced(SyntaxNode::Kind kind, std::vector<SyntaxNode>& operands, std::vector<Token>& ops,
                             std::size_t lo, std::size_t hi) {
    if (hi - lo == 1) return std::move(operands[lo]);
    const std::size_t mid = lo + (hi - lo + 1) / 2;
    SyntaxNode left = Balanced(kind, operands, ops, lo, mid);
    SyntaxNode right = Balanced(kind, operands, ops, mid, hi);
    return Binary(kind, std::move(ops[mid - 1]), std::move(left), std::move(right));
  }

  Result<SyntaxNode> ParseNot(int depth) {
    if (!IsWord(Peek(), "not")) return ParseComparison(depth);
    Token op = Take();
    if (auto ok = Deeper(depth + 1, op); !ok) return Fail(std::move(ok.error()));
    Result<SyntaxNode> operand = ParseNot(depth + 1);
    if (!operand) return operand;
    SyntaxNode n;
    n.kind = SyntaxNode::Kind::kNot;
    n.token = std::move(op);
    n.children.push_back(std::move(*operand));
    return n;
  }

  Result<SyntaxNode> ParseComparison(int depth) {
    Result<SyntaxNode> left = ParsePrimary(depth);
    if (!left) return left;
    const Token& next = Peek();
    for (const ComparisonName& c : kComparisons) {
      if (!IsWord(next, c.name)) continue;
      Token op = Take();
      Result<SyntaxNode> right = ParsePrimary(depth);
      if (!right) return right;
      SyntaxNode n = Binary(SyntaxNode::Kind::kCompare, std::move(op), std::move(*left), std::move(*right));
      n.op = c.op;
      return n;
    }
    if (IsWord(next, "in")) return ParseInList(depth, std::move(*left));
    return left;
  }

  // `in` '(' value (',' value)* ')'
  Result<SyntaxNode> ParseInList(int depth, SyntaxNode left) {
    SyntaxNode n;
    n.kind = SyntaxNode::Kind::kIn;
    n.token = Take();
    n.children.push_back(std::move(left));
    if (Peek().kind != TokenKind::kLParen) return Fail(Unexpected(Peek(), "expected '(' after 'in'"));
    Take();
    while (true) {
      Result<SyntaxNode> item = ParsePrimary(depth + 1);
      if (!item) return item;
      n.children.push_back(std::move(*item));
      Token t = Take();
      if (t.kind == TokenKind::kRParen) return n;
      if (t.kind != TokenKind::kComma) return Fail(Unexpected(t, "expected ',' or ')' in the 'in' list"));
    }
  }

  Result<SyntaxNode> ParsePrimary(int depth) {
    const Token& t = Peek();
    switch (t.kind) {
      case TokenKind::kLParen: {
        Token open = Take();
        if (auto ok = Deeper(depth + 1, open); !ok) return Fail(std::move(ok.error()));
        Result<SyntaxNode> inner = ParseOr(depth + 1);
        if (!inner) return inner;
        if (Peek().kind != TokenKind::kRParen) {
          return Fail(Unexpected(Peek(), "expected ')' to close the '(' at position " +
                                             std::to_string(CodePointOffset(errors_.source(), open.pos))));
        }
        Take();
        return inner;
      }
      case TokenKind::kString:
      case TokenKind::kInteger:
      case TokenKind::kDecimal:
      case TokenKind::kDateTime:
      case TokenKind::kGuid:
      case TokenKind::kEnumLiteral: {
        SyntaxNode n;
        n.kind = SyntaxNode::Kind::kLiteral;
        n.token = Take();
        return n;
      }
      case TokenKind::kIdentifier:
        break;
      case TokenKind::kEnd:
      case TokenKind::kError:
      case TokenKind::kRParen:
      case TokenKind::kComma:
      case TokenKind::kSlash:
        return Fail(Unexpected(t, "expected a property, a value or '('"));
    }
    if (IsReservedWord(t)) return Fail(Unexpected(t, "expected a property, a value or '('"));
    SyntaxNode n;
    n.token = Take();
    if (IsWord(n.token, "true") || IsWord(n.token, "false") || IsWord(n.token, "null")) {
      n.kind = SyntaxNode::Kind::kLiteral;
      return n;
    }
    if (Peek().kind == TokenKind::kLParen) return ParseCallArguments(depth, std::move(n));
    if (Peek().kind == TokenKind::kSlash && n.token.text.find('.') != std::string::npos) {
      // A derived-type path: a qualified type name, '/', a property name.
      Take();  // '/'
      if (Peek().kind != TokenKind::kIdentifier || Peek().text.find('.') != std::string::npos ||
          IsReservedWord(Peek())) {
        return Fail(Unexpected(Peek(), "expected a property name after '" + n.token.text + "/'"));
      }
      SyntaxNode p;
      p.kind = SyntaxNode::Kind::kProperty;
      p.cast = std::move(n.token.text);
      p.cast_pos = n.token.pos;
      p.token = Take();
      if (Peek().kind == TokenKind::kSlash || Peek().kind == TokenKind::kLParen) {
        return Fail(errors_.At(Peek().pos,
                               "property paths ('" + p.token.text + "/...') and lambda operators are not supported"));
      }
      return p;
    }
    if (Peek().kind == TokenKind::kSlash) {
      return Fail(
          errors_.At(Peek().pos, "property paths ('" + n.token.text + "/...') and lambda operators are not supported"));
    }
    n.kind = SyntaxNode::Kind::kProperty;
    return n;
  }

  // name '(' [value (',' value)*] ')'
  Result<SyntaxNode> ParseCallArguments(int depth, SyntaxNode call) {
    call.kind = SyntaxNode::Kind::kCall;
    Token open = Take();
    if (auto ok = Deeper(depth + 1, open); !ok) return Fail(std::move(ok.error()));
    if (Peek().kind == TokenKind::kRParen) {
      Take();
      return call;
    }
    while (true) {
      Result<SyntaxNode> arg = ParsePrimary(depth + 1);
      if (!arg) return arg;
      call.children.push_back(std::move(*arg));
      Token t = Take();
      if (t.kind == TokenKind::kRParen) return call;
      if (t.kind != TokenKind::kComma) {
        return Fail(Unexpected(t, "expected ',' or ')' in the arguments of '" + call.token.text + "'"));
      }
    }
  }

  static SyntaxNode Binary(SyntaxNode::Kind kind, Token op, SyntaxNode left, SyntaxNode right) {
    SyntaxNode n;
    n.kind = kind;
    n.token = std::move(op);
    n.children.push_back(std::move(left));
    n.children.push_back(std::move(right));
    return n;
  }

  const OptionErrors& errors_;
  Tokenizer tokenizer_;
  Token current_;  // the one token of lookahead
  int max_depth_;
};

// ---------------------------------------------------------------------------
// 5. $filter checker: syntax tree → Expr, typed against the entity.
// ---------------------------------------------------------------------------

std::string EdmName(const PropertyDef& p) {
  std::string base;
  switch (p.type) {
    case EdmType::kString:
      base = "Edm.String";
      break;
    case EdmType::kBoolean:
      base = "Edm.Boolean";
      break;
    case EdmType::kInt32:
      base = "Edm.Int32";
      break;
    case EdmType::kInt64:
      base = "Edm.Int64";
      break;
    case EdmType::kDouble:
      base = "Edm.Double";
      break;
    case EdmType::kDateTimeOffset:
      base = "Edm.DateTimeOffset";
      break;
    case EdmType::kGuid:
      base = "Edm.Guid";
      break;
    case EdmType::kBinary:
      base = "Edm.Binary";
      break;
    case EdmType::kEnum:
      base = p.enum_type;
      break;
    case EdmType::kComplex:
      base = "a complex type";
      break;
  }
  return p.collection ? "Collection(" + base + ")" : base;
}

// The type an untyped literal would have on its own, for mismatch messages.
std::string LiteralTypeName(const Token& t) {
  switch (t.kind) {
    case TokenKind::kString:
      return "Edm.String";
    case TokenKind::kInteger:
      return t.integer >= std::numeric_limits<std::int32_t>::min() &&
                     t.integer <= std::numeric_limits<std::int32_t>::max()
                 ? "Edm.Int32"
                 : "Edm.Int64";
    case TokenKind::kDecimal:
      return "Edm.Double";
    case TokenKind::kDateTime:
      return "Edm.DateTimeOffset";
    case TokenKind::kGuid:
      return "Edm.Guid";
    case TokenKind::kEnumLiteral:
      return t.text;
    case TokenKind::kIdentifier:
      if (t.text == "null") return "null";
      return "Edm.Boolean";
    default:
      return "unknown";
  }
}

bool IsOrdering(Op op) { return op == Op::kGt || op == Op::kGe || op == Op::kLt || op == Op::kLe; }

Op Mirror(Op op) {
  switch (op) {
    case Op::kGt:
      return Op::kLt;
    case Op::kGe:
      return Op::kLe;
    case Op::kLt:
      return Op::kGt;
    case Op::kLe:
      return Op::kGe;
    default:
      return op;  // eq, ne are symmetric
  }
}

// OData functions that exist but that the store cannot evaluate: named as
// "not supported" rather than "unknown", which would suggest a typo.
constexpr std::array<std::string_view, 24> kUnsupportedFunctions = {
    "tolower",
    "toupper",
    "trim",
    "length",
    "indexof",
    "substring",
    "concat",
    "matchesPattern",
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "fractionalseconds",
    "date",
    "time",
    "totaloffsetminutes",
    "now",
    "round",
    "floor",
    "ceiling",
    "cast",
    "hassubset",
};

// Expr::Apply takes a vector; building it from a braced list would copy
// every subtree (initializer lists are const), making chains quadratic. These move.
Expr Apply(Op op, Expr only) {
  std::vector<Expr> children;
  children.push_back(std::move(only));
  return Expr::Apply(op, std::move(children));
}
Expr Apply(Op op, Expr first, Expr second) {
  std::vector<Expr> children;
  children.reserve(2);
  children.push_back(std::move(first));
  children.push_back(std::move(second));
  return Expr::Apply(op, std::move(children));
}

class Checker {
 public:
  Checker(const OptionErrors& errors, const EntityDef& entity) : errors_(errors), entity_(entity) {}

  // A node in boolean position: the filter itself, operands of and/or/not.
  Result<Expr> Condition(const SyntaxNode& n) {
    switch (n.kind) {
      case SyntaxNode::Kind::kAnd:
      case SyntaxNode::Kind::kOr: {
        Result<Expr> left = Condition(n.children[0]);
        if (!left) return left;
        Result<Expr> right = Condition(n.children[1]);
        if (!right) return right;
        return Apply(n.kind == SyntaxNode::Kind::kAnd ? Op::kAnd : Op::kOr, std::move(*left), std::move(*right));
      }
      case SyntaxNode::Kind::kNot: {
        Result<Expr> operand = Condition(n.children[0]);
        if (!operand) return operand;
        return Apply(Op::kNot, std::move(*operand));
      }
      case SyntaxNode::Kind::kCompare:
        return Compare(n);
      case SyntaxNode::Kind::kIn:
        return In(n);
      case SyntaxNode::Kind::kCall:
        return Call(n);
      case SyntaxNode::Kind::kProperty: {
        // A bare boolean property is a condition: `automaticallyUpdateApps` = `... eq true`.
        Result<const PropertyDef*> p = FilterableProperty(n);
        if (!p) return Fail(std::move(p.error()));
        if ((*p)->type != EdmType::kBoolean) {
          return Fail(errors_.At(n.token.pos, "property '" + n.token.text + "' is " + EdmName(**p) +
                                                  ", not a condition; compare it with a value"));
        }
        return Apply(Op::kEq, Expr::Property((*p)->name), Expr::Value(true));
      }
      case SyntaxNode::Kind::kLiteral:
        break;
    }
    return Fail(errors_.At(n.token.pos, "a literal (" + Describe(n.token, errors_.source()) +
                                            ") is not a condition; compare a property with it"));
  }

 private:
  // The property a node names, which must exist and be usable in $filter.
  Result<const PropertyDef*> FilterableProperty(const SyntaxNode& n, const PropertyDef* other = nullptr) {
    if (!n.cast.empty()) return DerivedProperty(n);
    const PropertyDef* p = entity_.Find(n.token.text);
    if (p == nullptr) {
      std::string detail = "unknown property '" + Echo(n.token.text) + "'";
      // `state eq valid`: the member was meant as a value; say how values are written.
      if (other != nullptr && (other->type == EdmType::kEnum || other->type == EdmType::kString)) {
        detail += " (string and enum values are quoted: '" + Echo(n.token.text) + "')";
      }
      return Fail(errors_.At(n.token.pos, detail));
    }
    return Usable(p, n.token.pos);
  }

  // `T/p`: p as Graph declares it on T, a type of the entity's (TypeDef).
  Result<const PropertyDef*> DerivedProperty(const SyntaxNode& n) {
    const TypeDef* type = entity_.FindType(n.cast);
    if (type == nullptr) {
      return Fail(errors_.At(n.cast_pos, "'" + Echo(n.cast) + "' is not a type of " + QualifiedTypeName(entity_)));
    }
    const std::string& name = n.token.text;
    const PropertyDef* p = nullptr;
    if (!type->held || type->property_names.empty() ||
        std::find(type->property_names.begin(), type->property_names.end(), name) != type->property_names.end()) {
      p = entity_.Find(name);
    }
    if (p == nullptr && !type->held) {
      for (const PropertyDef& f : type->foreign_properties) {
        if (f.name == name) p = &f;
      }
    }
    if (p == nullptr) {
      return Fail(errors_.At(n.token.pos, "unknown property '" + Echo(name) + "' on type '" + type->name + "'"));
    }
    return Usable(p, n.token.pos);
  }

  // `p` may be compared in $filter: a single value of a primitive or enum type.
  Result<const PropertyDef*> Usable(const PropertyDef* p, std::size_t pos) {
    if (p->collection) {
      return Fail(errors_.At(
          pos, "property '" + p->name + "' is a collection (" + EdmName(*p) + ") and cannot be used in $filter"));
    }
    if (p->type == EdmType::kComplex) {
      return Fail(errors_.At(pos, "property '" + p->name + "' is of a complex type and cannot be used in $filter"));
    }
    if (!p->filterable) {
      return Fail(errors_.At(pos, "property '" + p->name + "' cannot be used in $filter"));
    }
    return p;
  }

  // A comparison on the derived-type path `prop` holds for rows of its type only (as
  // Graph's Intune service answers): `isof(T) and (e)`; for a type vppd holds no rows
  // of, for none.
  Expr Narrow(const SyntaxNode& prop, Expr e) const {
    if (prop.cast.empty()) return e;
    Expr is = Apply(Op::kIsOf, Expr::Value(prop.cast));
    if (!entity_.FindType(prop.cast)->held) return is;
    return Apply(Op::kAnd, std::move(is), std::move(e));
  }

  Error Mismatch(const PropertyDef& p, const Token& lit, const std::string& hint = {}) const {
    std::string detail = "type mismatch: property '" + p.name + "' is " + EdmName(p) + " but the value " +
                         Describe(lit, errors_.source()) + " is " + LiteralTypeName(lit);
    if (!hint.empty()) detail += " (" + hint + ")";
    return errors_.At(lit.pos, detail);
  }

  // Converts literal `lit`, compared with `p` by `op`, to the store's literal.
  Result<store::Literal> LiteralFor(const PropertyDef& p, const Token& lit, Op op) {
    if (IsWord(lit, "null")) {
      if (op != Op::kEq && op != Op::kNe) {
        return Fail(
            errors_.At(lit.pos, "null can only be compared with 'eq' or 'ne', not '" + std::string(OpName(op)) + "'"));
      }
      return store::Literal{};
    }
    if (IsOrdering(op) && p.type == EdmType::kBoolean) {
      return Fail(errors_.At(lit.pos, "operator '" + std::string(OpName(op)) + "' is not defined for " + EdmName(p) +
                                          " property '" + p.name + "'"));
    }
    if (IsOrdering(op) && p.type == EdmType::kEnum) {
      return Fail(errors_.At(lit.pos, "operator '" + std::string(OpName(op)) +
                                          "' is not supported for enum property '" + p.name + "' (" + p.enum_type +
                                          "); use 'eq', 'ne' or 'in'"));
    }
    switch (p.type) {
      case EdmType::kString:
        if (lit.kind == TokenKind::kString) return store::Literal{lit.text};
        return Fail(Mismatch(p, lit, lit.kind == TokenKind::kGuid ? "quote it: '" + lit.text + "'" : ""));
      case EdmType::kBoolean:
        if (IsWord(lit, "true")) return store::Literal{true};
        if (IsWord(lit, "false")) return store::Literal{false};
        return Fail(Mismatch(p, lit));
      case EdmType::kInt32:
      case EdmType::kInt64:
        // Decimals against integers are allowed: OData promotes both sides to Edm.Double.
        if (lit.kind == TokenKind::kDecimal) return store::Literal{lit.decimal};
        if (lit.kind != TokenKind::kInteger) return Fail(Mismatch(p, lit));
        if (p.type == EdmType::kInt32 && (lit.integer < std::numeric_limits<std::int32_t>::min() ||
                                          lit.integer > std::numeric_limits<std::int32_t>::max())) {
          return Fail(
              errors_.At(lit.pos, "integer " + lit.text + " is out of range for Edm.Int32 property '" + p.name + "'"));
        }
        return store::Literal{lit.integer};
      case EdmType::kDouble:
        if (lit.kind == TokenKind::kDecimal) return store::Literal{lit.decimal};
        if (lit.kind == TokenKind::kInteger) return store::Literal{static_cast<double>(lit.integer)};
        return Fail(Mismatch(p, lit));
      case EdmType::kDateTimeOffset:
        if (lit.kind == TokenKind::kDateTime) return store::Literal{store::DateTime{lit.micros}};
        return Fail(Mismatch(p, lit,
                             lit.kind == TokenKind::kString
                                 ? "DateTimeOffset values are written without quotes, e.g. 2026-01-01T00:00:00Z"
                                 : ""));
      case EdmType::kGuid:
        // GUIDs compare case-insensitively; the store keeps them lower-case (NewGuid).
        if (lit.kind == TokenKind::kGuid) return store::Literal{AsciiLower(lit.text)};
        return Fail(Mismatch(p, lit, lit.kind == TokenKind::kString ? "GUID values are written without quotes" : ""));
      case EdmType::kEnum:
        return EnumLiteral(p, lit);
      case EdmType::kBinary:  // no binary literals: binary-x'..' is not parsed
      case EdmType::kComplex:
        break;  // rejected by FilterableProperty
    }
    return Fail(Mismatch(p, lit));
  }

  Result<store::Literal> EnumLiteral(const PropertyDef& p, const Token& lit) {
    std::string_view member;
    if (lit.kind == TokenKind::kString) {
      member = lit.text;
    } else if (lit.kind == TokenKind::kEnumLiteral) {
      if (lit.text != p.enum_type) {
        return Fail(errors_.At(lit.pos, "type '" + Echo(lit.text) + "' does not match the type of property '" + p.name +
                                            "' (" + p.enum_type + ")"));
      }
      member = lit.member;
    } else {
      return Fail(Mismatch(p, lit));
    }
    if (std::find(p.enum_members.begin(), p.enum_members.end(), member) == p.enum_members.end()) {
      return Fail(errors_.At(lit.pos, "'" + Echo(member) + "' is not a member of " + p.enum_type));
    }
    return store::Literal{std::string(member)};
  }

  // The left or right operand of a comparison must be a property or a literal.
  Status Operand(const SyntaxNode& n, std::string_view op) {
    if (n.kind == SyntaxNode::Kind::kProperty || n.kind == SyntaxNode::Kind::kLiteral) return {};
    return Fail(errors_.At(n.token.pos, "an operand of '" + std::string(op) + "' must be a property or a value"));
  }

  Result<Expr> Compare(const SyntaxNode& n) {
    const SyntaxNode* left = &n.children[0];
    const SyntaxNode* right = &n.children[1];
    Op op = n.op;
    // `startswith(displayName,'a') eq true`: a boolean function compared with a boolean.
    if (left->kind == SyntaxNode::Kind::kCall || right->kind == SyntaxNode::Kind::kCall) {
      return CompareCall(n);
    }
    if (auto ok = Operand(*left, n.token.text); !ok) return Fail(std::move(ok.error()));
    if (auto ok = Operand(*right, n.token.text); !ok) return Fail(std::move(ok.error()));
    if (left->kind == SyntaxNode::Kind::kLiteral && right->kind == SyntaxNode::Kind::kLiteral) {
      return Fail(errors_.At(left->token.pos, "one side of '" + n.token.text + "' must be a property"));
    }
    if (left->kind == SyntaxNode::Kind::kLiteral) {
      // Normal form: the property is child 0; `5 lt x` becomes `x gt 5`.
      std::swap(left, right);
      op = Mirror(op);
    }
    const PropertyDef* known_right =
        right->kind == SyntaxNode::Kind::kProperty ? entity_.Find(right->token.text) : nullptr;
    Result<const PropertyDef*> p = FilterableProperty(*left, known_right);
    if (!p) return Fail(std::move(p.error()));
    if (right->kind == SyntaxNode::Kind::kProperty) {
      if (known_right == nullptr) {
        Result<const PropertyDef*> unknown = FilterableProperty(*right, *p);
        return Fail(std::move(unknown.error()));
      }
      return Fail(errors_.At(right->token.pos, "comparing two properties ('" + (*p)->name + "' and '" +
                                                   known_right->name + "') is not supported"));
    }
    Result<store::Literal> value = LiteralFor(**p, right->token, op);
    if (!value) return Fail(std::move(value.error()));
    return Narrow(*left, Apply(op, Expr::Property((*p)->name), Expr::Value(std::move(*value))));
  }

  Result<Expr> CompareCall(const SyntaxNode& n) {
    const bool call_left = n.children[0].kind == SyntaxNode::Kind::kCall;
    const SyntaxNode& call = n.children[call_left ? 0 : 1];
    const SyntaxNode& other = n.children[call_left ? 1 : 0];
    // Checked first, so that `tolower(x) eq 'a'` says tolower is not supported.
    Result<Expr> inner = Call(call);
    if (!inner) return inner;
    const bool is_bool =
        other.kind == SyntaxNode::Kind::kLiteral && (IsWord(other.token, "true") || IsWord(other.token, "false"));
    if (!is_bool || (n.op != Op::kEq && n.op != Op::kNe)) {
      return Fail(errors_.At(n.token.pos, "the result of '" + call.token.text +
                                              "' can only be compared with true or false using 'eq' or 'ne'"));
    }
    const bool wants_true = IsWord(other.token, "true") == (n.op == Op::kEq);
    if (wants_true) return inner;
    return Apply(Op::kNot, std::move(*inner));
  }

  Result<Expr> In(const SyntaxNode& n) {
    const SyntaxNode& left = n.children[0];
    if (left.kind != SyntaxNode::Kind::kProperty) {
      return Fail(errors_.At(left.token.pos, "the left side of 'in' must be a property"));
    }
    Result<const PropertyDef*> p = FilterableProperty(left);
    if (!p) return Fail(std::move(p.error()));
    std::vector<Expr> children;
    children.reserve(n.children.size());
    children.push_back(Expr::Property((*p)->name));
    for (std::size_t i = 1; i < n.children.size(); ++i) {
      const SyntaxNode& item = n.children[i];
      if (item.kind != SyntaxNode::Kind::kLiteral) {
        return Fail(errors_.At(item.token.pos, "the items of an 'in' list must be values"));
      }
      if (IsWord(item.token, "null")) {
        return Fail(errors_.At(item.token.pos, "null is not allowed in an 'in' list; use 'eq null'"));
      }
      Result<store::Literal> value = LiteralFor(**p, item.token, Op::kEq);
      if (!value) return Fail(std::move(value.error()));
      children.push_back(Expr::Value(std::move(*value)));
    }
    return Narrow(left, Expr::Apply(Op::kIn, std::move(children)));
  }

  Result<Expr> Call(const SyntaxNode& n) {
    const std::string& name = n.token.text;
    const std::size_t argc = n.children.size();
    auto arity = [&](std::size_t want) -> Status {
      if (argc == want) return {};
      return Fail(errors_.At(n.token.pos, "function '" + name + "' takes " + std::to_string(want) +
                                              (want == 1 ? " argument" : " arguments") + ", not " +
                                              std::to_string(argc)));
    };
    Op op = Op::kContains;
    if (name == "startswith") {
      op = Op::kStartsWith;
    } else if (name == "endswith") {
      op = Op::kEndsWith;
    } else if (name == "contains") {
      op = Op::kContains;
    } else if (name == "isof") {
      if (auto ok = arity(1); !ok) return Fail(std::move(ok.error()));
      return IsOf(n.children[0]);
    } else if (std::find(kUnsupportedFunctions.begin(), kUnsupportedFunctions.end(), name) !=
                   kUnsupportedFunctions.end() ||
               name == "any" || name == "all") {
      return Fail(errors_.At(n.token.pos, "function '" + name + "' is not supported"));
    } else {
      return Fail(errors_.At(n.token.pos, "unknown function '" + Echo(name) + "'"));
    }
    if (auto ok = arity(2); !ok) return Fail(std::move(ok.error()));
    const SyntaxNode& target = n.children[0];
    const SyntaxNode& needle = n.children[1];
    if (target.kind != SyntaxNode::Kind::kProperty) {
      return Fail(errors_.At(target.token.pos, "the first argument of '" + name + "' must be a property"));
    }
    Result<const PropertyDef*> p = FilterableProperty(target);
    if (!p) return Fail(std::move(p.error()));
    if ((*p)->type != EdmType::kString) {
      return Fail(errors_.At(target.token.pos, "function '" + name + "' needs an Edm.String property; '" + (*p)->name +
                                                   "' is " + EdmName(**p)));
    }
    if (needle.kind != SyntaxNode::Kind::kLiteral || needle.token.kind != TokenKind::kString) {
      return Fail(errors_.At(needle.token.pos, "the second argument of '" + name + "' must be a string in quotes"));
    }
    return Narrow(target, Apply(op, Expr::Property((*p)->name), Expr::Value(needle.token.text)));
  }

  // isof('microsoft.graph.iosVppApp') or isof(microsoft.graph.iosVppApp).
  Result<Expr> IsOf(const SyntaxNode& arg) {
    std::string type;
    if (arg.kind == SyntaxNode::Kind::kLiteral && arg.token.kind == TokenKind::kString) {
      type = arg.token.text;
    } else if (arg.kind == SyntaxNode::Kind::kProperty && arg.token.text.find('.') != std::string::npos) {
      type = arg.token.text;
    } else {
      return Fail(errors_.At(arg.token.pos,
                             "isof takes one type name, e.g. isof('microsoft.graph.iosVppApp'); "
                             "isof with a property is not supported"));
    }
    if (entity_.FindType(type) == nullptr) {
      std::string known;
      for (const TypeDef& t : entity_.types) {
        if (t.held) known += (known.empty() ? "" : ", ") + t.name;
      }
      return Fail(errors_.At(arg.token.pos, "'" + Echo(type) + "' is not a type of " + QualifiedTypeName(entity_) +
                                                (known.empty() ? "" : " (known: " + known + ")")));
    }
    return Apply(Op::kIsOf, Expr::Value(std::move(type)));
  }

  const OptionErrors& errors_;
  const EntityDef& entity_;
};

// The most and/or/not nodes on one path from the root: the nesting the store walks.
int LogicalDepth(const Expr& e) {
  if (e.kind != Expr::Kind::kOp) return 0;
  if (e.op != Op::kAnd && e.op != Op::kOr && e.op != Op::kNot) return 0;
  int deepest = 0;
  for (const Expr& c : e.children) deepest = std::max(deepest, LogicalDepth(c));
  return deepest + 1;
}

Result<Expr> ParseFilter(std::string_view text, const EntityDef& entity, const QueryLimits& limits) {
  const OptionErrors errors("$filter", text);
  if (text.size() > limits.max_filter_length) {
    return Fail(errors.Plain("the filter is " + std::to_string(text.size()) + " bytes long; at most " +
                             std::to_string(limits.max_filter_length) + " are allowed"));
  }
  if (text.find_first_not_of(" \t") == std::string_view::npos) return Fail(errors.Plain("the filter is empty"));
  Result<SyntaxNode> tree = Parser(errors, limits.max_depth).Parse();
  if (!tree) return Fail(std::move(tree.error()));
  Result<Expr> expr = Checker(errors, entity).Condition(*tree);
  if (!expr) return expr;
  // The parser bounded the nesting the client wrote; this bounds what the store will
  // walk (the and/or chains add a few levels), with the same message.
  if (LogicalDepth(*expr) > limits.max_depth) {
    return Fail(errors.Plain("expression nested deeper than " + std::to_string(limits.max_depth) + " levels"));
  }
  return expr;
}

// ---------------------------------------------------------------------------
// 6. $orderby, $select, $expand, $top, $skip, $count
// ---------------------------------------------------------------------------

Result<std::vector<OrderKey>> ParseOrderBy(std::string_view text, const EntityDef& entity, const QueryLimits& limits) {
  const OptionErrors errors("$orderby", text);
  if (text.size() > limits.max_filter_length) {
    return Fail(errors.Plain("the value is longer than " + std::to_string(limits.max_filter_length) + " bytes"));
  }
  const std::vector<Token> t = Tokenizer(errors).Run();
  std::vector<OrderKey> keys;
  // An empty (or blank) $orderby orders by nothing, as Graph ignores it.
  if (t.front().kind == TokenKind::kEnd) return keys;
  std::size_t i = 0;
  while (true) {
    const TypeDef* cast = nullptr;
    if (t[i].kind == TokenKind::kIdentifier && t[i].text.find('.') != std::string::npos &&
        t[i + 1].kind == TokenKind::kSlash) {
      // A derived-type path `T/p`: T must be a type of the entity.
      cast = entity.FindType(t[i].text);
      if (cast == nullptr) {
        return Fail(errors.At(t[i].pos, "'" + Echo(t[i].text) + "' is not a type of " + QualifiedTypeName(entity)));
      }
      i += 2;
    }
    const Token& name = t[i++];
    if (name.kind == TokenKind::kError) return Fail(*name.error);
    if (name.kind != TokenKind::kIdentifier || (cast != nullptr && name.text.find('.') != std::string::npos)) {
      return Fail(errors.Syntax(name.pos, "unexpected " + Describe(name, text) + ", expected a property name"));
    }
    const PropertyDef* p = entity.Find(name.text);
    if (cast != nullptr && !cast->property_names.empty() &&
        std::find(cast->property_names.begin(), cast->property_names.end(), name.text) == cast->property_names.end()) {
      p = nullptr;
    }
    // On a type vppd holds no rows of, every row's value is null: the key orders nothing.
    bool ignored = false;
    if (p == nullptr && cast != nullptr && !cast->held) {
      for (const PropertyDef& f : cast->foreign_properties) {
        if (f.name == name.text) p = &f;
      }
    }
    if (cast != nullptr && !cast->held) ignored = true;
    if (p == nullptr) {
      return Fail(errors.At(name.pos, "unknown property '" + Echo(name.text) + "'" +
                                          (cast != nullptr ? " on type '" + cast->name + "'" : "")));
    }
    if (p->collection || p->type == EdmType::kComplex || !p->filterable) {
      return Fail(errors.At(name.pos, "property '" + p->name + "' (" + EdmName(*p) + ") cannot be used in $orderby"));
    }
    for (const OrderKey& k : keys) {
      if (k.property == p->name) {
        return Fail(errors.At(name.pos, "property '" + p->name + "' appears more than once"));
      }
    }
    OrderKey key{p->name, false};
    if (IsWord(t[i], "asc") || IsWord(t[i], "desc")) {
      key.descending = t[i].text == "desc";
      ++i;
    }
    if (!ignored) keys.push_back(std::move(key));
    if (t[i].kind == TokenKind::kEnd) return keys;
    if (t[i].kind == TokenKind::kError) return Fail(*t[i].error);
    if (t[i].kind != TokenKind::kComma) {
      std::string detail = "unexpected " + Describe(t[i], text) + ", expected 'asc', 'desc', ',' or the end";
      const std::string lower = t[i].kind == TokenKind::kIdentifier ? AsciiLower(t[i].text) : "";
      if ((lower == "asc" || lower == "desc") && t[i].text != lower) {
        detail += " (keywords are lower-case: '" + lower + "')";
      }
      return Fail(errors.Syntax(t[i].pos, detail));
    }
    ++i;
  }
}

// A comma-separated list of plain names with their byte offsets; spaces around names
// are allowed and dropped.
struct ListItem {
  std::string_view name;
  std::size_t pos;
};
std::vector<ListItem> SplitList(std::string_view text) {
  std::vector<ListItem> items;
  std::size_t start = 0;
  while (true) {
    std::size_t comma = text.find(',', start);
    std::size_t end = comma == std::string_view::npos ? text.size() : comma;
    std::size_t b = start;
    std::size_t e = end;
    while (b < e && (text[b] == ' ' || text[b] == '\t')) ++b;
    while (e > b && (text[e - 1] == ' ' || text[e - 1] == '\t')) --e;
    items.push_back({text.substr(b, e - b), b});
    if (comma == std::string_view::npos) return items;
    start = comma + 1;
  }
}

Result<std::vector<std::string>> ParseSelect(std::string_view text, const EntityDef& entity,
                                             const QueryLimits& limits) {
  const OptionErrors errors("$select", text);
  if (text.size() > limits.max_filter_length) {
    return Fail(errors.Plain("the value is longer than " + std::to_string(limits.max_filter_length) + " bytes"));
  }
  std::vector<std::string> names;
  bool all = false;
  for (const ListItem& item : SplitList(text)) {
    if (item.name.empty()) return Fail(errors.At(item.pos, "expected a property name"));
    if (item.name == "*") {
      all = true;
      continue;
    }
    const PropertyDef* p = entity.Find(item.name);
    if (p == nullptr) {
      return Fail(errors.At(item.pos,
                            "unknown property '" + Echo(item.name) + "' on type '" + QualifiedTypeName(entity) + "'"));
    }
    if (std::find(names.begin(), names.end(), p->name) == names.end()) names.push_back(p->name);
  }
  if (all) names.clear();  // `*` selects everything, whatever else is listed.
  return names;
}

// The navigation properties vppd expands are the entity's `expandable` ones, each to
// an empty collection; `*` names them all. Any other name is rejected, with
// Microsoft.OData's messages. Returns the names, in the order given, no duplicates.
Result<std::vector<std::string>> ParseExpand(std::string_view text, const EntityDef& entity) {
  const OptionErrors errors("$expand", text);
  std::vector<std::string> names;
  for (const ListItem& item : SplitList(text)) {
    if (item.name == "*") {
      for (const std::string& n : entity.expandable) {
        if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
      }
      continue;
    }
    if (item.name.empty()) return Fail(errors.At(item.pos, "expected a navigation property name"));
    const auto known = std::find(entity.expandable.begin(), entity.expandable.end(), item.name);
    if (known != entity.expandable.end()) {
      if (std::find(names.begin(), names.end(), *known) == names.end()) names.push_back(*known);
      continue;
    }
    // `foo($select=x)` / `foo/bar`: the name is what comes before the options or path.
    const std::string_view name = item.name.substr(0, item.name.find_first_of("(/"));
    if (std::find(entity.expandable.begin(), entity.expandable.end(), name) != entity.expandable.end()) {
      return Fail(errors.At(item.pos + name.size(), "options and paths of an expanded navigation property ('" +
                                                        Echo(item.name) + "') are not supported"));
    }
    if (entity.Find(name) != nullptr) {
      return Fail(
          errors.At(item.pos, "property '" + std::string(name) + "' on type '" + QualifiedTypeName(entity) +
                                  "' is not a navigation property; only navigation properties can be expanded"));
    }
    return Fail(errors.At(item.pos, "could not find a navigation property named '" + Echo(name) + "' on type '" +
                                        QualifiedTypeName(entity) + "'"));
  }
  return names;
}

Result<std::int64_t> ParseCountingOption(std::string_view option, std::string_view value, std::int64_t max) {
  const bool digits = !value.empty() && std::all_of(value.begin(), value.end(), IsDigit);
  if (!digits) {
    return Fail(BadRequest(
        "Invalid value '" + Echo(value) + "' for " + std::string(option) + ": must be a non-negative integer.",
        std::string(option)));
  }
  const std::optional<std::int64_t> n = ParseNonNegative(value);  // nullopt: beyond 2^53
  if (!n || *n > max) {
    return Fail(BadRequest("Invalid value '" + Echo(value) + "' for " + std::string(option) + ": must be at most " +
                               std::to_string(max) + ".",
                           std::string(option)));
  }
  return *n;
}

// ---------------------------------------------------------------------------
// 7. $skiptoken
// ---------------------------------------------------------------------------
//
// Token = base64url("v1.<offset>.<top|->.<check>"), where check is the first 16 hex of
// SHA-256 over the fields and the decoded values of every other `$`-option that shapes
// the result. A token is therefore only valid with the query it was issued for: edited
// by hand, or reused with another $filter, it is rejected rather than silently paging
// through a different result.

constexpr std::array<OptionId, 6> kBoundOptions = {OptionId::kFilter, OptionId::kOrderBy, OptionId::kSelect,
                                                   OptionId::kCount,  OptionId::kSearch,  OptionId::kExpand};

std::string SkipTokenCheck(std::int64_t offset, const std::optional<std::int64_t>& top, const OptionValues& options) {
  std::string material = "vppd-skiptoken-v1\n";
  material.append(std::to_string(offset)).append("\n").append(top ? std::to_string(*top) : "-");
  for (OptionId id : kBoundOptions) {
    const std::optional<std::string>& v = options[id];
    material.append("\n").append(CanonicalName(id));
    // Length-prefixed so that no two option sets produce the same material.
    if (v) {
      material.append("=").append(std::to_string(v->size())).append(":").append(*v);
    } else {
      material.append("~");
    }
  }
  return Sha256Hex(material).substr(0, 16);
}

std::string MakeSkipToken(std::int64_t offset, const std::optional<std::int64_t>& top, const OptionValues& options) {
  const std::string body = "v1." + std::to_string(offset) + "." + (top ? std::to_string(*top) : "-") + "." +
                           SkipTokenCheck(offset, top, options);
  return Base64UrlEncode(body);
}

struct SkipToken {
  std::int64_t offset = 0;
  std::optional<std::int64_t> top;
};

Result<SkipToken> ParseSkipToken(std::string_view token, const OptionValues& options) {
  const Error invalid = BadRequest(
      "Invalid $skiptoken: the token is malformed or was not issued for these query options; "
      "follow @odata.nextLink exactly as returned.",
      "$skiptoken");
  if (token.empty() || token.size() > kMaxSkipTokenLength) return Fail(invalid);
  Result<std::string> body = Base64UrlDecode(token);
  if (!body) return Fail(invalid);
  std::vector<std::string_view> fields;
  std::string_view rest = *body;
  while (true) {
    const std::size_t dot = rest.find('.');
    fields.push_back(rest.substr(0, dot));
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  if (fields.size() != 4 || fields[0] != "v1") return Fail(invalid);
  SkipToken out;
  std::optional<std::int64_t> offset = ParseNonNegative(fields[1]);
  if (!offset) return Fail(invalid);
  out.offset = *offset;
  if (fields[2] != "-") {
    out.top = ParseNonNegative(fields[2]);
    if (!out.top) return Fail(invalid);
  }
  if (fields[3] != SkipTokenCheck(out.offset, out.top, options)) return Fail(invalid);
  return out;
}

// ---------------------------------------------------------------------------
// 8. Entry points
// ---------------------------------------------------------------------------

bool IsAllowed(const AllowedOptions& a, OptionId id) {
  switch (id) {
    case OptionId::kFilter:
      return a.filter;
    case OptionId::kOrderBy:
      return a.orderby;
    case OptionId::kTop:
      return a.top;
    case OptionId::kSkip:
      return a.skip;
    case OptionId::kCount:
      return a.count;
    case OptionId::kSelect:
      return a.select;
    case OptionId::kSearch:
      return a.search;
    case OptionId::kExpand:
      return a.expand;
    case OptionId::kSkipToken:
      return a.skiptoken;
  }
  return false;
}

void AppendDouble(std::string& out, double v) {
  std::array<char, 32> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  std::string_view s(buf.data(), ec == std::errc() ? static_cast<std::size_t>(end - buf.data()) : 0);
  out += s;
  if (s.find_first_of(".eEn") == std::string_view::npos) out += ".0";  // 'n': nan, inf
}

void AppendDebug(std::string& out, const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kProperty:
      out += e.property;
      return;
    case Expr::Kind::kLiteral:
      if (std::holds_alternative<std::monostate>(e.literal)) {
        out += "null";
      } else if (const bool* b = std::get_if<bool>(&e.literal)) {
        out += *b ? "true" : "false";
      } else if (const std::int64_t* i = std::get_if<std::int64_t>(&e.literal)) {
        out += std::to_string(*i);
      } else if (const double* d = std::get_if<double>(&e.literal)) {
        AppendDouble(out, *d);
      } else if (const std::string* s = std::get_if<std::string>(&e.literal)) {
        out += '\'';
        for (char c : *s) {
          if (c == '\'') out += '\'';
          out += c;
        }
        out += '\'';
      } else if (const store::DateTime* t = std::get_if<store::DateTime>(&e.literal)) {
        out += FormatIso8601(t->micros);
      }
      return;
    case Expr::Kind::kOp:
      out += '(';
      out += OpName(e.op);
      for (const Expr& c : e.children) {
        out += ' ';
        AppendDebug(out, c);
      }
      out += ')';
      return;
  }
}

}  // namespace

Result<QueryOptions> ParseGraphQueryOptions(std::string_view raw_query, const EntityDef& entity,
                                            const AllowedOptions& allowed, const QueryLimits& limits) {
  Result<std::vector<QueryParam>> params = SplitQuery(raw_query);
  if (!params) return Fail(std::move(params.error()));
  Result<OptionValues> options = CollectOptions(*params, [&](OptionId id) { return IsAllowed(allowed, id); });
  if (!options) return Fail(std::move(options.error()));
  const OptionValues& o = *options;

  QueryOptions out;
  out.list.limit = limits.default_page_size;
  if (const auto& v = o[OptionId::kFilter]) {
    Result<Expr> filter = ParseFilter(*v, entity, limits);
    if (!filter) return Fail(std::move(filter.error()));
    out.filter = std::move(*filter);
  }
  if (const auto& v = o[OptionId::kOrderBy]) {
    Result<std::vector<OrderKey>> keys = ParseOrderBy(*v, entity, limits);
    if (!keys) return Fail(std::move(keys.error()));
    out.order_by = std::move(*keys);
  }
  if (const auto& v = o[OptionId::kSelect]) {
    Result<std::vector<std::string>> names = ParseSelect(*v, entity, limits);
    if (!names) return Fail(std::move(names.error()));
    out.select = std::move(*names);
  }
  if (const auto& v = o[OptionId::kExpand]) {
    Result<std::vector<std::string>> names = ParseExpand(*v, entity);
    if (!names) return Fail(std::move(names.error()));
    out.expand = std::move(*names);
  }
  if (const auto& v = o[OptionId::kSearch]) out.search = *v;
  if (const auto& v = o[OptionId::kCount]) {
    if (*v != "true" && *v != "false") {
      return Fail(BadRequest("Invalid value '" + Echo(*v) + "' for $count: must be 'true' or 'false'.", "$count"));
    }
    out.count = *v == "true";
  }
  if (const auto& v = o[OptionId::kTop]) {
    Result<std::int64_t> top = ParseCountingOption("$top", *v, limits.max_top);
    if (!top) return Fail(std::move(top.error()));
    out.top = *top;
  }
  if (const auto& v = o[OptionId::kSkip]) {
    Result<std::int64_t> skip = ParseCountingOption("$skip", *v, kMaxSafeInteger);
    if (!skip) return Fail(std::move(skip.error()));
    out.list.skip = *skip;
  }
  if (const auto& v = o[OptionId::kSkipToken]) {
    // The token carries the paging state; a client mixing it with its own is confused.
    if (o[OptionId::kSkip] || o[OptionId::kTop]) {
      return Fail(BadRequest("Query option '$skiptoken' cannot be combined with '$skip' or '$top'.", "$skiptoken"));
    }
    Result<SkipToken> token = ParseSkipToken(*v, o);
    if (!token) return Fail(std::move(token.error()));
    out.list.skip = token->offset;
    out.top = token->top;
  }
  std::int64_t page_size = limits.default_page_size;
  if (limits.preferred_page_size) {
    page_size = std::min(*limits.preferred_page_size, page_size);
    out.applied_page_size = page_size;
  }
  out.list.limit = out.top ? std::min(*out.top, page_size) : page_size;
  return out;
}

Result<QueryOptions> ParseQueryOptions(std::string_view raw_query, const EntityDef& entity,
                                       const AllowedOptions& allowed, const QueryLimits& limits) {
  Result<QueryOptions> q = ParseGraphQueryOptions(raw_query, entity, allowed, limits);
  if (!q) return q;
  if (q->filter) {
    Result<store::Expr> filter = ToStoreFilter(*q->filter, entity);
    if (!filter) return Fail(std::move(filter.error()));
    q->list.filter = std::move(*filter);
  }
  Result<std::vector<store::OrderKey>> order = ToStoreOrder(q->order_by, entity);
  if (!order) return Fail(std::move(order.error()));
  q->list.order_by = std::move(*order);
  return q;
}

Result<std::vector<std::string>> ParseSelectOnly(std::string_view raw_query, const EntityDef& entity) {
  Result<std::vector<QueryParam>> params = SplitQuery(raw_query);
  if (!params) return Fail(std::move(params.error()));
  Result<OptionValues> options =
      CollectOptions(*params, [](OptionId id) { return id == OptionId::kSelect || id == OptionId::kExpand; });
  if (!options) return Fail(std::move(options.error()));
  if (const auto& v = (*options)[OptionId::kExpand]) {
    // A single entity's writers expand nothing yet: only `*` (which then names nothing) passes.
    EntityDef without_navigation;
    without_navigation.name = entity.name;
    without_navigation.properties = entity.properties;
    Result<std::vector<std::string>> names = ParseExpand(*v, entity.expandable.empty() ? entity : without_navigation);
    if (!names) return Fail(std::move(names.error()));
  }
  if (const auto& v = (*options)[OptionId::kSelect]) return ParseSelect(*v, entity, QueryLimits{});
  return std::vector<std::string>{};
}

std::string NextLinkQuery(std::string_view raw_query, const QueryOptions& current, std::int64_t next_offset) {
  std::optional<std::int64_t> remaining;
  if (current.top) remaining = std::max<std::int64_t>(0, *current.top - (next_offset - current.list.skip));
  next_offset = std::clamp<std::int64_t>(next_offset, 0, kMaxSafeInteger);

  std::string out;
  OptionValues options;
  // The query was parsed successfully before (or we would not page), so splitting
  // cannot fail; if it somehow does, the link keeps only the token.
  Result<std::vector<QueryParam>> params = SplitQuery(raw_query);
  if (params) {
    for (const QueryParam& p : *params) {
      const std::optional<OptionId> id = p.name.starts_with('$') ? FindOption(p.name) : std::nullopt;
      if (id == OptionId::kSkip || id == OptionId::kTop || id == OptionId::kSkipToken) continue;
      if (id) options[*id] = p.value;
      if (!out.empty()) {
        out += '&';
        out += p.encoded;
      } else if (p.encoded.starts_with('?')) {
        // SplitQuery drops one leading '?' of a query; kept raw, this parameter's name
        // would lose it when the link comes back, and the link would not parse alike.
        out += "%3F" + p.encoded.substr(1);
      } else {
        out += p.encoded;
      }
    }
  }
  if (!out.empty()) out += '&';
  out += "$skiptoken=" + MakeSkipToken(next_offset, remaining, options);
  return out;
}

std::optional<std::int64_t> ParseMaxPageSize(std::string_view prefer_header) {
  for (const ListItem& item : SplitList(prefer_header)) {
    std::string_view pref = item.name.substr(0, item.name.find(';'));
    while (!pref.empty() && (pref.back() == ' ' || pref.back() == '\t')) pref.remove_suffix(1);
    const std::size_t eq = pref.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = pref.substr(0, eq);
    std::string_view value = pref.substr(eq + 1);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    if (AsciiLower(name) != "odata.maxpagesize" && AsciiLower(name) != "maxpagesize") continue;
    const bool digits = !value.empty() && value.size() <= 15 && std::all_of(value.begin(), value.end(), IsDigit);
    const std::optional<std::int64_t> n = digits ? ParseNonNegative(value) : std::nullopt;
    // RFC 7240: the first occurrence of a preference counts.
    return n && *n > 0 ? n : std::nullopt;
  }
  return std::nullopt;
}

bool IncludesAnnotation(std::string_view prefer_header, std::string_view term) {
  // Preferences are split on commas outside double quotes: the annotation list
  // is itself comma-separated, inside quotes.
  std::string_view rest = prefer_header;
  while (!rest.empty()) {
    std::size_t end = 0;
    bool quoted = false;
    while (end < rest.size() && (quoted || rest[end] != ',')) {
      if (rest[end] == '"') quoted = !quoted;
      ++end;
    }
    std::string_view pref = rest.substr(0, end);
    rest = end < rest.size() ? rest.substr(end + 1) : std::string_view{};
    pref = pref.substr(0, pref.find(';'));  // parameters are ignored
    const std::size_t eq = pref.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = pref.substr(0, eq), value = pref.substr(eq + 1);
    while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.remove_prefix(1);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    const std::string lower = AsciiLower(name);
    if (lower != "odata.include-annotations" && lower != "include-annotations") continue;
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    const std::string_view ns = term.substr(0, term.rfind('.'));
    int included = -1, excluded = -1;  // the most specific match of each: 0 `*`, 1 `ns.*`, 2 the term
    for (const ListItem& item : SplitList(value)) {
      std::string_view pattern = item.name;
      const bool exclude = pattern.starts_with('-');
      if (exclude) pattern.remove_prefix(1);
      int specificity = -1;
      if (pattern == "*") {
        specificity = 0;
      } else if (pattern.size() == ns.size() + 2 && pattern.starts_with(ns) && pattern.ends_with(".*")) {
        specificity = 1;
      } else if (pattern == term) {
        specificity = 2;
      }
      int& best = exclude ? excluded : included;
      best = std::max(best, specificity);
    }
    return included >= 0 && included > excluded;
  }
  return false;
}

bool HasNextPage(const QueryOptions& current, std::int64_t returned, bool store_has_more) {
  if (!store_has_more) return false;
  return !current.top || *current.top - returned > 0;
}

std::string DebugString(const Expr& expr) {
  std::string out;
  AppendDebug(out, expr);
  return out;
}

}  // namespace vppd::graph
