// /assignments pages → PageMeta and Assignment structs: a strict JSON reader
// made for this one page shape, in a single pass over the body (the hot path
// of a sync; why not a general parser, and what it validates: parse.h).
#include <array>
#include <charconv>
#include <cstring>
#include <limits>
#include <string>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "apple/parse.h"

namespace vppd::apple::internal {

namespace {

// Boost.JSON's default depth limit (32 nested arrays/objects, the page's own
// object included), which every earlier /assignments parser enforced.
constexpr int kMaxDepth = 32;

// Bytes that end the fast scan of a string: its closing quote, an escape, a
// control character (refused) and any non-ASCII byte (checked as UTF-8).
constexpr std::array<bool, 256> kStringStop = [] {
  std::array<bool, 256> stop{};
  for (int c = 0; c < 256; ++c) stop[c] = c == '"' || c == '\\' || c < 0x20 || c >= 0x80;
  return stop;
}();

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Equality with a literal (its length known at compile time).
template <std::size_t N>
bool Is(std::string_view k, const char (&name)[N]) {
  return k.size() == N - 1 && std::memcmp(k.data(), name, N - 1) == 0;
}

enum class ItemKey : unsigned char { kOther, kAdamId, kPricingParam, kClientUserId, kSerialNumber };

// An assignment's member names: this runs 3-4 times per item.
ItemKey ClassifyItemKey(std::string_view k) {
  if (Is(k, "adamId")) return ItemKey::kAdamId;
  if (k.size() != 12) return ItemKey::kOther;
  switch (k[0]) {
    case 'p':
      return Is(k, "pricingParam") ? ItemKey::kPricingParam : ItemKey::kOther;
    case 'c':
      return Is(k, "clientUserId") ? ItemKey::kClientUserId : ItemKey::kOther;
    case 's':
      return Is(k, "serialNumber") ? ItemKey::kSerialNumber : ItemKey::kOther;
    default:
      return ItemKey::kOther;
  }
}

// A value as the members read need it; containers and booleans are kOther.
struct Scalar {
  enum Kind : unsigned char { kOther, kNull, kString, kInt, kBeyondInt64 } kind = kOther;
  std::string_view text;  // kString: into the body, or into the scanner's scratch (escapes).
  std::int64_t integer = 0;
};

// Reads one page. Two kinds of problem: a syntax error (the body is not JSON)
// stops the scan at once; a shape error (a member of the wrong type) is kept
// — the first one — while the scan goes on, so that a body that is not JSON
// further on says so, as a full parse before the reading would have.
class Scanner {
 public:
  Scanner(std::string_view body, PageMeta* meta, std::vector<AssignmentRef>* items, std::deque<std::string>* decoded)
      : begin_(body.data()),
        p_(body.data()),
        end_(body.data() + body.size()),
        meta_(meta),
        items_(items),
        decoded_(decoded) {}

  std::string syntax_error, shape_error;
  std::size_t count = 0;  // Items of this page so far: (*items_)[0, count).
  bool have_current = false, have_total = false, have_version = false;

  void Page() {
    Ws();
    if (p_ == end_) {
      Syntax("the body is empty");
      return;
    }
    bool ok;
    if (*p_ == '{') {
      ok = Object(1, [this](std::string_view key) { return PageMember(key); });
    } else {
      Scalar ignored;
      ok = Value(0, &ignored);
      Shape("the response is not a JSON object");
    }
    if (!ok) return;
    Ws();
    if (p_ != end_) Syntax("content after the document");
  }

 private:
  // ------------------------------------------------------------ the page's members

  enum class PageKey : unsigned char {
    kOther,
    kAssignments,
    kMdmInfo,
    kCurrent,
    kTotal,
    kNext,
    kSize,
    kVersionId,
    kUid,
    kExpiration
  };

  static PageKey ClassifyPageKey(std::string_view k) {
    if (Is(k, "assignments")) return PageKey::kAssignments;
    if (Is(k, "mdmInfo")) return PageKey::kMdmInfo;
    if (Is(k, "currentPageIndex")) return PageKey::kCurrent;
    if (Is(k, "totalPages")) return PageKey::kTotal;
    if (Is(k, "nextPageIndex")) return PageKey::kNext;
    if (Is(k, "size")) return PageKey::kSize;
    if (Is(k, "versionId")) return PageKey::kVersionId;
    if (Is(k, "uId")) return PageKey::kUid;
    if (Is(k, "tokenExpirationDate")) return PageKey::kExpiration;
    return PageKey::kOther;
  }

  bool PageMember(std::string_view name) {
    // The name is classified before the value is read: an escaped name lives
    // in scratch_, which the value may overwrite.
    const PageKey key = ClassifyPageKey(name);
    Scalar v;
    if (key == PageKey::kAssignments) {
      if (p_ != end_ && *p_ == '[') return Array(2, [this] { return Item(); });
      if (!Value(1, &v)) return false;
      if (v.kind != Scalar::kNull) Shape("'assignments' is not an array");
      return true;
    }
    if (key == PageKey::kMdmInfo) {
      if (p_ != end_ && *p_ == '{') {
        MdmInfo& m = meta_->envelope.mdm_info.emplace();
        return Object(2, [this, &m](std::string_view k) { return MdmMember(k, m); });
      }
      if (!Value(1, &v)) return false;
      if (v.kind != Scalar::kNull) Shape("'mdmInfo' is not an object");
      return true;
    }
    if (!Value(1, &v)) return false;
    bool present = false;
    std::int64_t n = 0;
    switch (key) {
      case PageKey::kCurrent:
        Integer(v, "currentPageIndex", &meta_->current, &have_current);
        break;
      case PageKey::kTotal:
        Integer(v, "totalPages", &meta_->total, &have_total);
        break;
      case PageKey::kNext:
        Integer(v, "nextPageIndex", &n, &present);
        if (present) meta_->next = n;
        break;
      case PageKey::kSize:
        Integer(v, "size", &n, &present);
        if (present) meta_->size = n;
        break;
      case PageKey::kVersionId:
        Id(v, "versionId", &meta_->version_id, &present);
        if (present) have_version = !meta_->version_id.empty();
        break;
      case PageKey::kUid:
        Id(v, "uId", &meta_->envelope.uid, &present);
        break;
      case PageKey::kExpiration:
        Date(v);
        break;
      default:
        break;
    }
    return true;
  }

  bool MdmMember(std::string_view key, MdmInfo& m) {
    // The name is looked at before the value is read: an escaped name lives in
    // scratch_, which the value may overwrite.
    std::string* out = Is(key, "id") ? &m.id : Is(key, "name") ? &m.name : Is(key, "metadata") ? &m.metadata : nullptr;
    const char* name = out == &m.id ? "mdmInfo.id" : out == &m.name ? "mdmInfo.name" : "mdmInfo.metadata";
    Scalar v;
    if (!Value(2, &v)) return false;
    bool present = false;
    if (out) Id(v, name, out, &present);
    return true;
  }

  bool Item() {
    if (p_ == end_ || *p_ != '{') {
      Scalar ignored;
      if (!Value(2, &ignored)) return false;
      Shape("an assignment is not an object");
      return true;
    }
    if (count == items_->size()) items_->emplace_back();
    AssignmentRef& a = (*items_)[count++];
    a = {};
    const bool ok = Object<kItemNames>(3, [this, &a](std::string_view key) {
      const ItemKey k = ClassifyItemKey(key);
      Scalar v;
      if (!Value(3, &v)) return false;
      switch (k) {
        case ItemKey::kAdamId:
          IdView(v, "adamId", &a.adam_id);
          break;
        case ItemKey::kPricingParam:
          IdView(v, "pricingParam", &a.pricing_param);
          break;
        case ItemKey::kClientUserId:
          IdView(v, "clientUserId", &a.client_user_id);
          break;
        case ItemKey::kSerialNumber:
          IdView(v, "serialNumber", &a.serial_number);
          break;
        case ItemKey::kOther:
          break;
      }
      return true;
    });
    if (!ok) return false;
    if (a.adam_id.empty())
      Shape("an assignment has no adamId");
    else if (a.client_user_id.empty() == a.serial_number.empty())
      Shape("assignment of " + std::string(a.adam_id) + " needs exactly one of clientUserId, serialNumber");
    return true;
  }

  // A paging integer; null means absent (`*present` stays false).
  void Integer(const Scalar& v, std::string_view key, std::int64_t* out, bool* present) {
    switch (v.kind) {
      case Scalar::kNull:
        return;
      case Scalar::kInt:
        *out = v.integer;
        *present = true;
        return;
      case Scalar::kBeyondInt64:
        Shape("'" + std::string(key) + "' is out of range");
        return;
      default:
        Shape("'" + std::string(key) + "' is not an integer");
        return;
    }
  }

  // An id's text: a string, or an integer's decimal text (older services sent
  // some ids as numbers) in number_, until the next id. False for null (absent:
  // a member named twice keeps what it had) and for another type (a shape error).
  bool IdText(const Scalar& v, std::string_view key, std::string_view* text) {
    switch (v.kind) {
      case Scalar::kString:
        *text = v.text;
        return true;
      case Scalar::kInt:
        number_ = std::to_string(v.integer);
        *text = number_;
        return true;
      case Scalar::kNull:
        return false;
      case Scalar::kBeyondInt64:
        Shape("'" + std::string(key) + "' is out of range");
        return false;
      default:
        Shape("'" + std::string(key) + "' is not a string");
        return false;
    }
  }

  // An id of the page (versionId, uId, mdmInfo's), copied; `*present` once read.
  void Id(const Scalar& v, std::string_view key, std::string* out, bool* present) {
    std::string_view text;
    if (!IdText(v, key, &text)) return;
    out->assign(text);
    *present = true;
  }

  // An assignment's id: a view of the body where the id stands in it as read,
  // else of a string kept in decoded_ (escapes, numbers).
  void IdView(const Scalar& v, std::string_view key, std::string_view* out) {
    if (v.kind == Scalar::kString && v.text.data() >= begin_ && v.text.data() < end_) {
      *out = v.text;  // The common case (a string without escapes), kept off IdText.
      return;
    }
    std::string_view text;
    if (IdText(v, key, &text)) *out = decoded_->emplace_back(text);
  }

  void Date(const Scalar& v) {
    if (v.kind == Scalar::kNull) return;
    if (v.kind != Scalar::kString) return Shape("'tokenExpirationDate' is not a string");
    auto t = ParseIso8601(v.text);
    if (!t) return Shape("'tokenExpirationDate' is not a date: " + t.error().message);
    meta_->envelope.token_expiration = *t;
  }

  // ------------------------------------------------------------ JSON (RFC 8259)

  void Shape(std::string what) {
    if (shape_error.empty()) shape_error = std::move(what);
  }
  bool Syntax(std::string_view what) {
    syntax_error = std::string(what) + " at byte " + std::to_string(p_ - begin_);
    return false;
  }

  void Ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  // An assignment's member names, matched with their quotes straight from the
  // body (a third of a page's strings are these names). A name spelled
  // otherwise (an escape in it, another member) takes the general path.
  bool ItemName(std::string_view* name) {
    const std::ptrdiff_t left = end_ - p_;
    if (left >= 8 && std::memcmp(p_, "\"adamId\"", 8) == 0) {
      *name = std::string_view(p_ + 1, 6);
      p_ += 8;
      return true;
    }
    if (left < 14 || p_[13] != '"') return false;
    // Literal operands: the compiler compares in registers, no memcmp call.
    const bool known = std::memcmp(p_, "\"pricingParam\"", 14) == 0 || std::memcmp(p_, "\"clientUserId\"", 14) == 0 ||
                       std::memcmp(p_, "\"serialNumber\"", 14) == 0;
    if (!known) return false;
    *name = std::string_view(p_ + 1, 12);
    p_ += 14;
    return true;
  }

  // An object at `depth` (the page's own is 1); `on_member(name)` reads the
  // member's value, starting at it. kItemNames: an assignment's (ItemName).
  static constexpr bool kItemNames = true;
  template <bool kNames = false, class OnMember>
  bool Object(int depth, OnMember on_member) {
    if (depth > kMaxDepth) return Syntax("nested deeper than 32");
    ++p_;  // '{'
    Ws();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    for (;;) {
      if (p_ == end_ || *p_ != '"') return Syntax("expected a member name");
      std::string_view key;
      if (!(kNames && ItemName(&key)) && !String(&key)) return false;
      Ws();
      if (p_ == end_ || *p_ != ':') return Syntax("expected ':'");
      ++p_;
      Ws();
      if (!on_member(key)) return false;
      Ws();
      if (p_ == end_) return Syntax("unterminated object");
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return Syntax("expected ',' or '}'");
      ++p_;
      Ws();
    }
  }

  // An array at `depth`; `on_element()` reads one element, starting at it.
  template <class OnElement>
  bool Array(int depth, OnElement on_element) {
    if (depth > kMaxDepth) return Syntax("nested deeper than 32");
    ++p_;  // '['
    Ws();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    for (;;) {
      if (!on_element()) return false;
      Ws();
      if (p_ == end_) return Syntax("unterminated array");
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return Syntax("expected ',' or ']'");
      ++p_;
      Ws();
    }
  }

  // Any value, inside a container at `depth`; what the members read need of it
  // goes to `out`.
  bool Value(int depth, Scalar* out) {
    if (p_ == end_) return Syntax("expected a value");
    switch (*p_) {
      case '"':
        out->kind = Scalar::kString;
        return String(&out->text);
      case '{':
        out->kind = Scalar::kOther;
        return Object(depth + 1, [this, depth](std::string_view) {
          Scalar ignored;
          return Value(depth + 1, &ignored);
        });
      case '[':
        out->kind = Scalar::kOther;
        return Array(depth + 1, [this, depth] {
          Scalar ignored;
          return Value(depth + 1, &ignored);
        });
      case 't':
        out->kind = Scalar::kOther;
        return Literal("true");
      case 'f':
        out->kind = Scalar::kOther;
        return Literal("false");
      case 'n':
        out->kind = Scalar::kNull;
        return Literal("null");
      default:
        return Number(out);
    }
  }

  template <std::size_t N>
  bool Literal(const char (&word)[N]) {
    if (static_cast<std::size_t>(end_ - p_) < N - 1 || std::memcmp(p_, word, N - 1) != 0) return Syntax("not a value");
    p_ += N - 1;
    return true;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. An integer is read as
  // int64 (kBeyondInt64 up to 2^64 - 1); an integer beyond 64 bits or a number
  // whose magnitude overflows a double is refused, as simdjson did before.
  bool Number(Scalar* out) {
    const char* start = p_;
    const bool negative = *p_ == '-';
    if (negative) ++p_;
    if (p_ == end_ || !IsDigit(*p_)) return Syntax("not a value");
    const char* digits = p_;
    if (*p_ == '0')
      ++p_;
    else
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    const char* digits_end = p_;
    bool integer = true;
    if (p_ != end_ && *p_ == '.') {
      integer = false;
      ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return Syntax("a digit must follow '.'");
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      integer = false;
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return Syntax("a digit must follow the exponent");
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    }
    out->kind = Scalar::kOther;
    if (!integer) {
      double d = 0;
      const auto r = std::from_chars(start, p_, d);
      // Out of range is an overflow (refused) or an underflow (a zero, fine).
      if (r.ec == std::errc::result_out_of_range && Overflows(digits, digits_end)) return Syntax("number out of range");
      return true;
    }
    std::uint64_t magnitude = 0;
    if (std::from_chars(digits, digits_end, magnitude).ec != std::errc()) return Syntax("integer beyond 64 bits");
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (negative) {
      if (magnitude > kMax + 1) return Syntax("integer beyond 64 bits");
      out->kind = Scalar::kInt;
      out->integer =
          magnitude == kMax + 1 ? std::numeric_limits<std::int64_t>::min() : -static_cast<std::int64_t>(magnitude);
    } else if (magnitude > kMax) {
      out->kind = Scalar::kBeyondInt64;
    } else {
      out->kind = Scalar::kInt;
      out->integer = static_cast<std::int64_t>(magnitude);
    }
    return true;
  }

  // For a number from_chars found out of range: whether it is too large (not
  // too small). [digits, digits_end) is its integer part; p_ is its end.
  bool Overflows(const char* digits, const char* digits_end) const {
    std::int64_t scale = 0;  // Decimal exponent of the first significant digit.
    const char* first = digits;
    while (first != digits_end && *first == '0') ++first;
    if (first != digits_end) {
      scale = digits_end - first - 1;
    } else {
      const char* q = digits_end;
      if (q != p_ && *q == '.') ++q;
      std::int64_t zeros = 0;
      while (q != p_ && *q == '0') ++q, ++zeros;
      scale = -zeros - 1;
    }
    const char* e = digits_end;
    while (e != p_ && *e != 'e' && *e != 'E') ++e;
    if (e != p_) {
      ++e;
      const bool minus = *e == '-';
      if (*e == '+' || *e == '-') ++e;
      std::int64_t exponent = 0;
      for (; e != p_ && exponent < 100000; ++e) exponent = exponent * 10 + (*e - '0');
      scale += minus ? -exponent : exponent;
    }
    return scale > 0;
  }

  // A string starting at its '"'; `*out` views the body when it has no escape,
  // else scratch_ (valid until the next escaped string).
  bool String(std::string_view* out) {
    const char* start = ++p_;
    for (;;) {
      p_ = ScanToStop(p_);
      if (p_ == end_) return Syntax("unterminated string");
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        *out = std::string_view(start, static_cast<std::size_t>(p_ - start));
        ++p_;
        return true;
      }
      if (c == '\\') return EscapedString(start, out);
      if (c < 0x20) return Syntax("control character in a string");
      if (!Utf8Sequence()) return false;
    }
  }

  // The first byte at or after `p` that kStringStop names, or end_.
  const char* ScanToStop(const char* p) const {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    // Bit i of the mask set: byte i of the 16 at p stops the scan. Signed
    // compare: bytes >= 0x80 are negative, so "< 0x20" takes them too.
    while (end_ - p >= 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      const __m128i stop =
          _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)), _mm_cmplt_epi8(v, space));
      if (const auto mask = static_cast<unsigned>(_mm_movemask_epi8(stop))) return p + __builtin_ctz(mask);
      p += 16;
    }
#endif
    while (p != end_ && !kStringStop[static_cast<unsigned char>(*p)]) ++p;
    return p;
  }

  // One UTF-8 sequence at p_ (its lead byte is >= 0x80), RFC 3629: no overlong
  // forms, no surrogates, nothing above U+10FFFF.
  bool Utf8Sequence() {
    const auto* s = reinterpret_cast<const unsigned char*>(p_);
    const std::ptrdiff_t left = end_ - p_;
    auto cont = [&](std::ptrdiff_t i, unsigned char lo = 0x80, unsigned char hi = 0xbf) {
      return i < left && s[i] >= lo && s[i] <= hi;
    };
    int length = 0;
    const unsigned char c = s[0];
    if (c >= 0xc2 && c <= 0xdf)
      length = cont(1) ? 2 : 0;
    else if (c == 0xe0)
      length = cont(1, 0xa0) && cont(2) ? 3 : 0;
    else if (c == 0xed)
      length = cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
    else if (c >= 0xe1 && c <= 0xef)
      length = cont(1) && cont(2) ? 3 : 0;
    else if (c == 0xf0)
      length = cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
    else if (c >= 0xf1 && c <= 0xf3)
      length = cont(1) && cont(2) && cont(3) ? 4 : 0;
    else if (c == 0xf4)
      length = cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
    if (length == 0) return Syntax("invalid UTF-8 in a string");
    p_ += length;
    return true;
  }

  // The rest of a string from its first escape (p_ at the '\'), decoded into scratch_.
  bool EscapedString(const char* start, std::string_view* out) {
    scratch_.assign(start, p_);
    for (;;) {
      const char* run = p_;
      p_ = ScanToStop(p_);
      scratch_.append(run, p_);
      if (p_ == end_) return Syntax("unterminated string");
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        *out = scratch_;
        return true;
      }
      if (c < 0x20) return Syntax("control character in a string");
      if (c >= 0x80) {
        const char* seq = p_;
        if (!Utf8Sequence()) return false;
        scratch_.append(seq, p_);
        continue;
      }
      // A backslash.
      if (++p_ == end_) return Syntax("unterminated string");
      switch (*p_++) {
        case '"':
          scratch_ += '"';
          break;
        case '\\':
          scratch_ += '\\';
          break;
        case '/':
          scratch_ += '/';
          break;
        case 'b':
          scratch_ += '\b';
          break;
        case 'f':
          scratch_ += '\f';
          break;
        case 'n':
          scratch_ += '\n';
          break;
        case 'r':
          scratch_ += '\r';
          break;
        case 't':
          scratch_ += '\t';
          break;
        case 'u':
          if (!UnicodeEscape()) return false;
          break;
        default:
          --p_;
          return Syntax("invalid escape in a string");
      }
    }
  }

  // After "\u": four hex digits, a surrogate pair as two escapes; appended as UTF-8.
  bool UnicodeEscape() {
    std::uint32_t code = 0;
    if (!Hex4(&code)) return false;
    if (code >= 0xdc00 && code <= 0xdfff) return Syntax("unpaired surrogate in a string");
    if (code >= 0xd800 && code <= 0xdbff) {
      std::uint32_t low = 0;
      if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return Syntax("unpaired surrogate in a string");
      p_ += 2;
      if (!Hex4(&low)) return false;
      if (low < 0xdc00 || low > 0xdfff) return Syntax("unpaired surrogate in a string");
      code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
    }
    if (code < 0x80) {
      scratch_ += static_cast<char>(code);
    } else if (code < 0x800) {
      scratch_ += static_cast<char>(0xc0 | code >> 6);
      scratch_ += static_cast<char>(0x80 | (code & 0x3f));
    } else if (code < 0x10000) {
      scratch_ += static_cast<char>(0xe0 | code >> 12);
      scratch_ += static_cast<char>(0x80 | (code >> 6 & 0x3f));
      scratch_ += static_cast<char>(0x80 | (code & 0x3f));
    } else {
      scratch_ += static_cast<char>(0xf0 | code >> 18);
      scratch_ += static_cast<char>(0x80 | (code >> 12 & 0x3f));
      scratch_ += static_cast<char>(0x80 | (code >> 6 & 0x3f));
      scratch_ += static_cast<char>(0x80 | (code & 0x3f));
    }
    return true;
  }

  bool Hex4(std::uint32_t* code) {
    if (end_ - p_ < 4) return Syntax("truncated \\u escape");
    for (int i = 0; i < 4; ++i, ++p_) {
      const char c = *p_;
      const int digit = IsDigit(c)             ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                               : -1;
      if (digit < 0) return Syntax("invalid \\u escape");
      *code = *code << 4 | static_cast<std::uint32_t>(digit);
    }
    return true;
  }

  const char* begin_;
  const char* p_;
  const char* end_;
  PageMeta* meta_;
  std::vector<AssignmentRef>* items_;
  std::deque<std::string>* decoded_;
  std::string scratch_;
  std::string number_;  // IdText's
};

}  // namespace

AppleStatus PageParser::Assignments(std::string_view body, PageMeta* meta, std::vector<AssignmentRef>* items,
                                    std::deque<std::string>* decoded) {
  Scanner s(body, meta, items, decoded);
  std::string failed;
  try {
    s.Page();
  } catch (const std::exception& e) {  // bad_alloc: never let it cross the module.
    failed = std::string("the response could not be parsed: ") + e.what();
  }
  items->resize(s.count);  // Drops elements left from a previous page.
  if (!failed.empty()) return tl::unexpected(Malformed(std::move(failed)));
  if (!s.syntax_error.empty()) return tl::unexpected(Malformed("the response is not JSON: " + s.syntax_error));
  if (!s.shape_error.empty()) return tl::unexpected(Malformed(std::move(s.shape_error)));
  if (!s.have_current) return tl::unexpected(Malformed("the page has no currentPageIndex"));
  if (!s.have_total) return tl::unexpected(Malformed("the page has no totalPages"));
  if (!s.have_version) return tl::unexpected(Malformed("the page has no versionId"));
  return {};
}

}  // namespace vppd::apple::internal
