// Deterministic pseudo-random numbers and identifiers for the simulator.
//
// Everything the simulator invents (uIds, tokens, adamIds, serial numbers,
// versionIds, eventIds) comes from these functions seeded by `--seed`, so the same
// seed and the same request sequence give byte-identical responses. Not for
// cryptography. Header-only; all functions are pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vppd::sim {

// SplitMix64 finaliser (Steele, Lea, Flood 2014): a cheap, well-mixed 64-bit hash.
inline std::uint64_t Mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline std::uint64_t Mix64(std::uint64_t a, std::uint64_t b) { return Mix64(a ^ Mix64(b + 0x632be59bd9b4e019ULL)); }

// FNV-1a of a string, for deriving seeds from names.
inline std::uint64_t HashString(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

// A small sequential generator (SplitMix64 stream).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n); n > 0. The modulo bias is irrelevant for test data.
  std::uint64_t Below(std::uint64_t n) { return Next() % n; }
  // Uniform in [lo, hi].
  std::int64_t Range(std::int64_t lo, std::int64_t hi) {
    return lo + static_cast<std::int64_t>(Below(static_cast<std::uint64_t>(hi - lo + 1)));
  }
  // True with probability p (0..1).
  bool Chance(double p) { return static_cast<double>(Next() >> 11) * 0x1.0p-53 < p; }

 private:
  std::uint64_t state_;
};

// A GUID-shaped string (8-4-4-4-12 lower-case hex) derived from (a, b); Apple's
// v2 eventIds and versionIds have this shape (e.g. "f5897284-ed94-510f-8914-
// 3b88c9c67799" in Apple's subscriptions example).
inline std::string GuidFrom(std::uint64_t a, std::uint64_t b) {
  const std::uint64_t hi = Mix64(a, b);
  const std::uint64_t lo = Mix64(b ^ 0x5bd1e995ULL, a);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 32; ++i) {
    const std::uint64_t word = i < 16 ? hi : lo;
    const int shift = 60 - 4 * (i % 16);
    out.push_back(kHex[(word >> shift) & 0xf]);
    if (i == 7 || i == 11 || i == 15 || i == 19) out.push_back('-');
  }
  return out;
}

}  // namespace vppd::sim
