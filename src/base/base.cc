#include "base/base.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>

namespace vppd {
namespace {

class RealClock final : public Clock {
 public:
  Timestamp Now() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t year;
  unsigned month, day;
};

Civil CivilFromDays(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

bool IsLeap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(std::int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

constexpr std::int64_t kMicrosPerSecond = 1'000'000;
constexpr std::int64_t kSecondsPerDay = 86'400;

// Reads exactly `n` digits at `pos`, advancing it.
bool ReadDigits(std::string_view s, std::size_t& pos, int n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    const char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  pos += n;
  out = v;
  return true;
}

bool Expect(std::string_view s, std::size_t& pos, char c) {
  if (pos < s.size() && s[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

constexpr const char* kWeekdays[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};  // 1970-01-01 was a Thursday.
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Encode64(std::string_view in, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  const std::size_t rest = in.size() - i;
  if (rest == 1) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (pad) out += "==";
  } else if (rest == 2) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (pad) out += '=';
  }
  return out;
}

Result<std::string> Decode64(std::string_view in, bool url) {
  // Padding is optional; when present it must be correct and only at the end.
  std::size_t end = in.size();
  std::size_t padding = 0;
  while (end > 0 && in[end - 1] == '=') {
    --end;
    ++padding;
  }
  if (padding > 2 || (padding > 0 && in.size() % 4 != 0)) {
    return Fail(Error::InvalidArgument("invalid base64 padding"));
  }
  if (end % 4 == 1) return Fail(Error::InvalidArgument("invalid base64 length"));
  std::string out;
  out.reserve(end / 4 * 3 + 2);
  unsigned acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < end; ++i) {
    const char c = in[i];
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == (url ? '-' : '+'))
      v = 62;
    else if (c == (url ? '_' : '/'))
      v = 63;
    else
      return Fail(Error::InvalidArgument("invalid base64 character at offset " + std::to_string(i)));
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

}  // namespace

const Clock& Clock::Real() {
  static const RealClock clock;
  return clock;
}

Result<Timestamp> ParseIso8601(std::string_view s) {
  auto bad = [&](const char* why) {
    return Fail(Error::InvalidArgument("'" + std::string(s.substr(0, 64)) + "' is not an ISO-8601 date-time: " + why));
  };
  std::size_t pos = 0;
  int year, month, day, hour, minute, second = 0;
  if (!ReadDigits(s, pos, 4, year) || !Expect(s, pos, '-') || !ReadDigits(s, pos, 2, month) || !Expect(s, pos, '-') ||
      !ReadDigits(s, pos, 2, day)) {
    return bad("expected YYYY-MM-DD");
  }
  if (!Expect(s, pos, 'T') && !Expect(s, pos, 't')) return bad("expected 'T' after the date");
  if (!ReadDigits(s, pos, 2, hour) || !Expect(s, pos, ':') || !ReadDigits(s, pos, 2, minute)) {
    return bad("expected hh:mm");
  }
  std::int64_t micros = 0;
  if (Expect(s, pos, ':')) {
    if (!ReadDigits(s, pos, 2, second)) return bad("expected two-digit seconds");
    if (Expect(s, pos, '.')) {
      int digits = 0;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        if (digits < 6) micros = micros * 10 + (s[pos] - '0');
        ++digits;
        ++pos;
      }
      if (digits == 0) return bad("expected digits after '.'");
      for (int i = digits; i < 6; ++i) micros *= 10;
    }
  }
  if (month < 1 || month > 12) return bad("month out of range");
  if (day < 1 || static_cast<unsigned>(day) > DaysInMonth(year, month)) return bad("day out of range");
  if (hour > 23 || minute > 59 || second > 60) return bad("time out of range");
  if (second == 60) second = 59;  // A leap second is clamped; Timestamp has none.

  std::int64_t offset_seconds = 0;
  if (Expect(s, pos, 'Z') || Expect(s, pos, 'z')) {
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int sign = s[pos] == '-' ? -1 : 1;
    ++pos;
    int oh, om;
    if (!ReadDigits(s, pos, 2, oh)) return bad("expected a ±hh:mm or ±hhmm offset");
    Expect(s, pos, ':');
    if (!ReadDigits(s, pos, 2, om)) return bad("expected a ±hh:mm or ±hhmm offset");
    if (oh > 23 || om > 59) return bad("offset out of range");
    offset_seconds = sign * (oh * 3600 + om * 60);
  } else {
    return bad("expected 'Z' or an offset");
  }
  if (pos != s.size()) return bad("unexpected text after the time");
  const std::int64_t days = DaysFromCivil(year, month, day);
  const std::int64_t secs = days * kSecondsPerDay + hour * 3600 + minute * 60 + second - offset_seconds;
  return secs * kMicrosPerSecond + micros;
}

namespace {

// A Timestamp split into its UTC calendar date and time of day.
struct BrokenDown {
  std::int64_t days;  // since 1970-01-01
  Civil date;
  int hour, minute, second;
  std::int64_t micros;
};

BrokenDown BreakDown(Timestamp t) {
  std::int64_t secs = t / kMicrosPerSecond;
  std::int64_t micros = t % kMicrosPerSecond;
  if (micros < 0) {
    micros += kMicrosPerSecond;
    --secs;
  }
  std::int64_t days = secs / kSecondsPerDay;
  std::int64_t rem = secs % kSecondsPerDay;
  if (rem < 0) {
    rem += kSecondsPerDay;
    --days;
  }
  return {days,
          CivilFromDays(days),
          static_cast<int>(rem / 3600),
          static_cast<int>(rem / 60 % 60),
          static_cast<int>(rem % 60),
          micros};
}

}  // namespace

std::string FormatIso8601(Timestamp t) {
  const BrokenDown b = BreakDown(t);
  if (b.date.year < 0 || b.date.year > 9999) {
    char buf[48];
    const int n = std::snprintf(buf, sizeof buf, "%lld-%02u-%02uT%02d:%02d:%02dZ", static_cast<long long>(b.date.year),
                                b.date.month, b.date.day, b.hour, b.minute, b.second);
    return std::string(buf, n);
  }
  // On every Graph response (several per entity): digits by hand, not snprintf.
  char buf[28] = "0000-00-00T00:00:00.000000Z";
  auto put = [&](int pos, std::int64_t value, int width) {
    for (int i = width - 1; i >= 0; --i) {
      buf[pos + i] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
  };
  put(0, b.date.year, 4);
  put(5, b.date.month, 2);
  put(8, b.date.day, 2);
  put(11, b.hour, 2);
  put(14, b.minute, 2);
  put(17, b.second, 2);
  if (b.micros == 0) {
    buf[19] = 'Z';
    return std::string(buf, 20);
  }
  put(20, b.micros, 6);
  return std::string(buf, 27);
}

std::string FormatHttpDate(Timestamp t) {
  const BrokenDown b = BreakDown(t);
  const int weekday = static_cast<int>(((b.days % 7) + 7) % 7);
  char buf[40];
  const int n =
      std::snprintf(buf, sizeof buf, "%s, %02u %s %04lld %02d:%02d:%02d GMT", kWeekdays[weekday], b.date.day,
                    kMonths[b.date.month - 1], static_cast<long long>(b.date.year), b.hour, b.minute, b.second);
  return std::string(buf, n);
}

Result<Timestamp> ParseHttpDate(std::string_view s) {
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  auto bad = [&] { return Fail(Error::InvalidArgument("'" + std::string(s.substr(0, 64)) + "' is not an HTTP date")); };
  if (s.size() != 29 || s.substr(3, 2) != ", " || s.substr(25) != " GMT") return bad();
  std::size_t pos = 5;
  int day, year, hour, minute, second;
  if (!ReadDigits(s, pos, 2, day) || !Expect(s, pos, ' ')) return bad();
  const std::string_view mon = s.substr(pos, 3);
  unsigned month = 0;
  for (unsigned i = 0; i < 12; ++i) {
    if (mon == kMonths[i]) month = i + 1;
  }
  pos += 3;
  if (month == 0 || !Expect(s, pos, ' ') || !ReadDigits(s, pos, 4, year) || !Expect(s, pos, ' ') ||
      !ReadDigits(s, pos, 2, hour) || !Expect(s, pos, ':') || !ReadDigits(s, pos, 2, minute) || !Expect(s, pos, ':') ||
      !ReadDigits(s, pos, 2, second)) {
    return bad();
  }
  if (day < 1 || static_cast<unsigned>(day) > DaysInMonth(year, month) || hour > 23 || minute > 59 || second > 60) {
    return bad();
  }
  const std::int64_t days = DaysFromCivil(year, month, day);
  return (days * kSecondsPerDay + hour * 3600 + minute * 60 + std::min(second, 59)) * kMicrosPerSecond;
}

std::string NewGuid() {
  // Every request gets a GUID (request-id), so draw OpenSSL's CSPRNG output in 4 KiB
  // chunks per thread rather than paying RAND_bytes' locking for each 16 bytes.
  thread_local std::string pool;
  thread_local std::size_t used = 0;
  if (used + 16 > pool.size()) {
    pool = RandomBytes(4096);
    used = 0;
  }
  std::string b = pool.substr(used, 16);
  used += 16;
  b[6] = static_cast<char>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<char>((b[8] & 0x3F) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[(static_cast<unsigned char>(b[i]) >> 4) & 15];
    out += kHex[static_cast<unsigned char>(b[i]) & 15];
  }
  return out;
}

bool IsGuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < 36; ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

std::string Base64Encode(std::string_view bytes) { return Encode64(bytes, kB64, true); }
Result<std::string> Base64Decode(std::string_view text) { return Decode64(text, false); }
std::string Base64UrlEncode(std::string_view bytes) { return Encode64(bytes, kB64Url, false); }
Result<std::string> Base64UrlDecode(std::string_view text) {
  if (text.find('=') != std::string_view::npos) {
    return Fail(Error::InvalidArgument("base64url text must not be padded"));
  }
  return Decode64(text, true);
}

std::string RandomBytes(std::size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    // OpenSSL's CSPRNG failing means the process cannot make secrets safely.
    std::fputs("fatal: OpenSSL RAND_bytes failed\n", stderr);
    std::abort();
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);  // fetched once
  EVP_Digest(data.data(), data.size(), md, &len, kSha256, nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

Status WriteFileAtomic(const std::string& path, std::string_view data, unsigned mode) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Fail(Error::Internal("cannot create " + tmp + ": " + std::strerror(errno)));
  ::fchmod(fd, mode);  // umask must not widen or narrow what the caller asked for.
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Fail(Error::Internal("cannot write " + tmp + ": " + std::strerror(err)));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Fail(Error::Internal("cannot sync " + tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return Fail(Error::Internal("cannot rename " + tmp + " to " + path + ": " + std::strerror(err)));
  }
  return {};
}

Result<std::string> ReadFile(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(Error::NotFound("cannot open " + path));
  std::string out;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.append(buf, static_cast<std::size_t>(in.gcount()));
    if (out.size() > max_bytes) {
      return Fail(Error::InvalidArgument(path + " is larger than " + std::to_string(max_bytes) + " bytes"));
    }
  }
  return out;
}

}  // namespace vppd
