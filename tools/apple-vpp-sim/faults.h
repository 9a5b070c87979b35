// Fault injection and per-token rate limiting for the simulator.
//
// A FaultRule matches requests by path (exact, e.g. "/mdm/v2/assignments"; "*"
// for any), optionally by method and by location uId, and triggers either on
// exact counts of matching requests ("the 3rd and 4th GET /assignments":
// onRequests [3,4]) or at a rate, with a PRNG seeded from the simulator seed and
// the rule id so runs repeat. `maxHits` caps how often a rule fires.
//
// Kinds (JSON name → effect):
//   unavailable        503 + ErrorResponse 9729 + Retry-After
//   internal           500 + ErrorResponse 9603 + Retry-After
//   too_many_requests  429 + ErrorResponse 9646 + Retry-After
//   latency            the real response, written `latencyMs` later
//   truncate           the real response cut after `truncateAt` bytes, then close
//   malformed_json     200 with a body that is not JSON
//   apple_error_200    HTTP 200 with ErrorResponse `errorNumber` (observed Apple behaviour)
//   bump_version       an out-of-band write before the request is served (versionId moves
//                      between the pages of a walk)
// Event kinds act on the event a manage request (assets/associate|disassociate|revoke,
// users/create|update|retire) creates, not on the HTTP answer; they match only
// such requests (so a "*" rule is not used up by reads):
//   event_failure      the listed `serialNumbers` / `clientUserIds` (none listed: every
//                      subject) fail inside the event with `errorNumber`; the rest completes
//   slow_event         the event resolves `delayMs` later than the event delay
//   hold_event         the event stays PENDING until POST /_sim/events/resolve releases it
// Retry-After is `retryAfterSeconds` (default 1) as delta-seconds, or as an
// IMF-fixdate that far in the future when `retryAfterFormat` is "http-date".
//
// Thread-safe: every method locks internally.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/base.h"
#include "prng.h"

namespace vppd::sim {

enum class FaultKind : std::uint8_t {
  kUnavailable,
  kInternal,
  kTooManyRequests,
  kLatency,
  kTruncate,
  kMalformedJson,
  kAppleError200,
  kBumpVersion,
  kEventFailure,
  kSlowEvent,
  kHoldEvent,
};
// True for the kinds that shape an event rather than the HTTP answer.
bool IsEventFault(FaultKind k);
const char* FaultKindName(FaultKind k);
std::optional<FaultKind> FaultKindFromName(std::string_view name);

struct FaultRule {
  int id = 0;                             // Assigned by FaultInjector::Add.
  std::string path = "*";                 // Exact request path, or "*".
  std::string method;                     // Empty: any method.
  std::string location;                   // uId; empty: any (and requests without one).
  std::vector<std::int64_t> on_requests;  // 1-based counts of matching requests.
  double rate = 0;                        // Used when on_requests is empty (0..1).
  std::int64_t max_hits = -1;             // -1: unlimited.
  FaultKind kind = FaultKind::kUnavailable;
  int retry_after_seconds = 1;
  bool retry_after_http_date = false;
  int latency_ms = 0;
  std::size_t truncate_at = 16;
  int error_number = 9603;                   // For apple_error_200 and event_failure (default 9610 there).
  std::vector<std::string> serial_numbers;   // event_failure: subjects that fail.
  std::vector<std::string> client_user_ids;  // event_failure: subjects that fail.
  std::int64_t delay_ms = 0;                 // slow_event.
  // State, for GET /_sim/faults.
  std::int64_t matched = 0;
  std::int64_t hits = 0;
};

// Parses a rule from its JSON text (see README "Fault rules"). Fails with
// InvalidArgument naming the bad member.
Result<FaultRule> ParseFaultRule(std::string_view json);
std::string FaultRuleJson(const FaultRule& rule);

class FaultInjector {
 public:
  explicit FaultInjector(std::uint64_t seed) : seed_(seed) {}
  // Adds a rule and returns its id.
  int Add(FaultRule rule);
  bool Remove(int id);
  void Clear();
  std::vector<FaultRule> List() const;
  // Counts the request against every matching rule and returns the rules that
  // fire for it, in id order. Rules of event kinds (IsEventFault) match only
  // when `creates_event` (a manage request) and are neither counted nor fired otherwise.
  std::vector<FaultRule> Match(std::string_view method, std::string_view path, std::string_view location,
                               bool creates_event = false);

 private:
  mutable std::mutex mu_;
  std::uint64_t seed_;
  int next_id_ = 1;
  std::map<int, FaultRule> rules_;
  std::map<int, Rng> rngs_;
};

// Fixed one-second windows per key (the sToken): at most `limit` requests per
// window. Thread-safe.
class RateLimiter {
 public:
  // True when the request may proceed; counts it.
  bool Allow(std::string_view key, int limit, Timestamp now);
  void Clear();

 private:
  struct Window {
    std::int64_t second = 0;
    int count = 0;
  };
  std::mutex mu_;
  std::map<std::string, Window, std::less<>> windows_;
};

}  // namespace vppd::sim
