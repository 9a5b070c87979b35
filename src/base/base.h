// Small vocabulary shared by every module: time, identifiers, encodings, secrets.
//
// Times are microseconds since the Unix epoch, UTC (Timestamp). Graph renders them
// as ISO-8601 with `Z`; Apple sends several offset forms, all accepted by ParseIso8601.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace vppd {

// Microseconds since 1970-01-01T00:00:00Z.
using Timestamp = std::int64_t;

// Clock is an interface so that expiry, retries and schedules can be tested with a
// fake. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Timestamp Now() const = 0;
  // The process-wide real clock (system_clock).
  static const Clock& Real();
};

// A clock the test moves by hand.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(Timestamp start) : now_(start) {}
  Timestamp Now() const override { return now_; }
  void Set(Timestamp t) { now_ = t; }
  void Advance(std::chrono::microseconds d) { now_ += d.count(); }

 private:
  Timestamp now_;
};

// Parses ISO-8601 date-times: `YYYY-MM-DDThh:mm[:ss[.fffffff]]` followed by `Z`,
// `±hh:mm` or `±hhmm`. Fractions beyond microseconds are truncated. Fails with
// InvalidArgument naming what is wrong.
Result<Timestamp> ParseIso8601(std::string_view text);
// `2026-11-28T14:10:17Z`, or with `.ffffff` when the time has microseconds.
std::string FormatIso8601(Timestamp t);
// RFC 7231 IMF-fixdate (`Sat, 28 Nov 2026 14:10:17 GMT`), for `Date` headers.
std::string FormatHttpDate(Timestamp t);
// Parses an IMF-fixdate; used for `Retry-After`.
Result<Timestamp> ParseHttpDate(std::string_view text);

// A random (version 4) GUID in lower-case 8-4-4-4-12 form.
std::string NewGuid();
// True when `text` is a GUID in 8-4-4-4-12 hex form (either case).
bool IsGuid(std::string_view text);

// Standard base64 with `=` padding (RFC 4648 §4).
std::string Base64Encode(std::string_view bytes);
// Accepts standard base64, padded or not; rejects other characters.
Result<std::string> Base64Decode(std::string_view text);
// URL-safe alphabet without padding (RFC 4648 §5), as JWTs use.
std::string Base64UrlEncode(std::string_view bytes);
Result<std::string> Base64UrlDecode(std::string_view text);

// Cryptographically random bytes from OpenSSL.
std::string RandomBytes(std::size_t n);
// Lower-case hex SHA-256.
std::string Sha256Hex(std::string_view data);

// Writes `data` to `path` atomically (temp file, fsync, rename) with `mode` bits.
Status WriteFileAtomic(const std::string& path, std::string_view data, unsigned mode);
// Reads a whole file, refusing files over `max_bytes`.
Result<std::string> ReadFile(const std::string& path, std::size_t max_bytes = 16 << 20);

}  // namespace vppd

namespace vppd {

// AES-256-GCM for secrets at rest (sTokens). The sealed form is
// base64(version byte | 12-byte nonce | ciphertext | 16-byte tag); the key id is
// bound as associated data so a value cannot be moved between columns unnoticed.
// Thread-safe after construction.
class SecretBox {
 public:
  // Loads the 32-byte key from `key_path`, creating it (mode 0600) when absent.
  static Result<SecretBox> LoadOrCreate(const std::string& key_path);
  static SecretBox FromKey(std::string key32);

  Result<std::string> Seal(std::string_view plaintext, std::string_view associated) const;
  // Fails with Internal when the value was tampered with or sealed under another key.
  Result<std::string> Open(std::string_view sealed, std::string_view associated) const;

 private:
  explicit SecretBox(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

}  // namespace vppd
