// The HTTP layer under apple::Client (internal to src/apple/).
//
// libcurl stays behind this header. A Transport owns the policy every request
// follows — timeouts, size cap, TLS, the Bearer header, retries with backoff and
// Retry-After, the per-location rate limit — and a pool of Sessions (one libcurl
// multi handle and its easy handles each) so that keep-alive connections outlive
// a call without being shared between threads.
//
// A call checks a Session out, submits requests to a Batch, and collects
// completions; the Batch runs at most `parallel` transfers at once and retries
// each request on its own. Everything a Batch does happens on the calling thread.
//
//   Batch batch(transport, /*parallel=*/5);
//   batch.Submit(0, std::move(request));
//   while (batch.Active()) for (Completion& c : batch.WaitSome()) ...;
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "apple/client.h"

namespace vppd::apple::internal {

struct HttpRequest {
  bool post = false;
  std::string url;         // Absolute.
  std::string display;     // "GET /assignments?pageIndex=3", for errors (never the sToken).
  std::string body;        // POST only; sent as application/json.
  bool with_token = true;  // false: no Authorization header (service config, lookup).
  int max_attempts = 0;    // 0: the retry policy's; else at most this many (1: no retries).
};

// What a finished request gave: the 2xx body with no Apple error in it, or the
// final error after the retries. `attempts` counts requests made.
struct Completion {
  int id = 0;
  AppleResult<std::string> body;
  int attempts = 0;
};

// "Requests per second" as Apple counts it: at most `rate` requests start in any
// one-second interval. A sliding log (not a token bucket with a burst) because
// Apple — and the simulator — count fixed one-second windows, and a full bucket
// refilled within the same window could send up to twice the rate in it.
// Thread-safe.
class RateLimiter {
 public:
  // Takes a slot at `now` and returns 0, or returns how long (µs) until one frees.
  std::int64_t TryAcquire(Timestamp now, double rate);
  // Nothing starts before `until` (after a 429 with Retry-After).
  void PauseUntil(Timestamp until);

 private:
  std::mutex mu_;
  std::deque<Timestamp> starts_;  // Start times within the last second, oldest first.
  Timestamp paused_until_ = 0;
};

struct Session;  // A libcurl multi handle and its easy handles (transport.cc).

class Transport {
 public:
  explicit Transport(ClientOptions options);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  const ClientOptions& options() const { return options_; }
  const Clock& clock() const { return *clock_; }
  void Sleep(std::chrono::milliseconds d) const;
  RateLimiter& limiter() { return limiter_; }
  // The rate the limiter enforces now (options, else the service config's).
  double Rate() const;
  void SetServiceRate(int requests_per_second);

  // Uniform in [0, cap] milliseconds, thread-safe.
  std::chrono::milliseconds Jitter(std::chrono::milliseconds cap);

  std::unique_ptr<Session> CheckOut();
  void CheckIn(std::unique_ptr<Session> session);

 private:
  ClientOptions options_;
  const Clock* clock_;
  RateLimiter limiter_;
  std::atomic<int> service_rate_{0};

  std::mutex rng_mu_;
  std::mt19937_64 rng_;

  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Session>> idle_;  // Kept for their open connections.
};

// The requests of one call. Not thread-safe; destroying it drops transfers in
// flight (their connections are closed, not reused).
class Batch {
 public:
  Batch(Transport& transport, int parallel);
  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  void Submit(int id, HttpRequest request);
  // Submitted requests not yet returned by WaitSome.
  std::size_t Active() const { return requests_.size(); }
  // Transfers running right now (for tests and the in-flight bound).
  int Running() const { return running_; }
  int MaxRunning() const { return max_running_; }
  // Blocks until at least one request has finished (success or final error)
  // and returns those that have. Empty only when nothing is active.
  std::vector<Completion> WaitSome();
  // Hands a body WaitSome returned back for a later transfer to receive into:
  // a walk then reuses a few page-sized buffers instead of allocating (and
  // faulting in) ~100 KB per page.
  void Recycle(std::string body);

 private:
  struct Pending;
  struct Slot;
  void StartReady();
  void Finish(Slot& slot, int curl_code);
  Timestamp NextStartTime() const;

  Transport& transport_;
  std::unique_ptr<Session> session_;
  int parallel_;
  std::map<int, std::unique_ptr<Pending>> requests_;  // By id.
  std::vector<std::unique_ptr<Slot>> slots_;          // `parallel_` of them, one easy handle each.
  std::deque<int> queue_;                             // Waiting ids: retries first, then in submission order.
  Timestamp rate_blocked_until_ = 0;
  std::vector<Completion> done_;
  std::vector<std::string> spare_bodies_;  // From Recycle.
  int running_ = 0;
  int max_running_ = 0;
};

// Builds "k=v&k2=v2" with percent-encoding of values.
void AppendQuery(std::string& url, std::string_view key, std::string_view value);

// Apple error classification (errors.cc): the kind for an errorNumber and/or an HTTP status.
AppleErrorKind KindFor(int error_number, long http_status);

// Counts (vppd_apple_retries_total) and logs a page the walk fetches again
// because its body did not parse: a retry decided above the transport.
void CountRefetch(const HttpRequest& request);

}  // namespace vppd::apple::internal
