// Internal to vppd_auth: RSA public keys from JWKS, the cached key set of one
// source, and the OpenSSL helpers shared by the verifier and the dev key.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include <openssl/evp.h>

#include "auth/auth.h"
#include "base/base.h"

namespace vppd::auth::internal {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// Limits on what a JWKS may be.
inline constexpr std::size_t kMaxJwksBytes = 1 << 20;
inline constexpr std::size_t kMaxJwksKeys = 100;
inline constexpr int kMinRsaBits = 2048;
inline constexpr int kMaxRsaBits = 8192;

// Builds an RSA public key from the big-endian bytes of a JWK's `n` and `e`. Fails
// with InvalidArgument when the numbers do not make a 2048–8192-bit key with an odd
// exponent > 1.
Result<PkeyPtr> RsaPublicKeyFromComponents(std::string_view n, std::string_view e);

// The big-endian bytes of the modulus and exponent of an RSA key.
struct RsaComponents {
  std::string n;
  std::string e;
};
Result<RsaComponents> RsaComponentsOf(EVP_PKEY* key);

// RFC 7638 JWK thumbprint (base64url SHA-256 of {"e","kty","n"}), used as a stable kid.
std::string JwkThumbprint(const RsaComponents& c);

// True when `signature` is a valid RSASSA-PKCS1-v1_5 SHA-256 signature of `data`.
// Clears OpenSSL's error queue on failure.
bool VerifyRs256(EVP_PKEY* key, std::string_view data, std::string_view signature);
// Signs `data` with RSASSA-PKCS1-v1_5 SHA-256.
Result<std::string> SignRs256(EVP_PKEY* key, std::string_view data);

// Raw 32-byte SHA-256.
std::string Sha256(std::string_view data);

// kid → key, immutable once built (shared by readers without locks).
using KeyMap = std::unordered_map<std::string, std::shared_ptr<const PkeyPtr>>;

// Parses a JWKS. Unusable keys (not RSA, other use/alg, too small, bad numbers) are
// skipped; fails with InvalidArgument when the text is not a JWKS, is over the limits,
// or has no usable key. `skipped` (when given) counts the keys left out.
Result<KeyMap> ParseJwks(std::string_view text, int* skipped = nullptr);

// GET `url` with libcurl: connect ≤ 5 s, whole transfer ≤ 10 s, body ≤ kMaxJwksBytes,
// http/https only, no redirects. Fails with Unavailable saying what went wrong;
// `what` names the document in the message ("JWKS", "OpenID configuration").
Result<std::string> HttpGet(const std::string& url, std::string_view what = "JWKS");

// The keys of one JwksSource, with the fetch policy: a fixed source is loaded once; a
// refetchable one is fetched again on request, by a background thread of its own, at
// most once per `refetch_interval` (counted from the start of the last attempt, the
// load at creation included) and never two at a time; the last good set is kept when
// a fetch fails. Requests never wait for a fetch. Thread-safe.
class KeySet {
 public:
  KeySet(std::string name, JwksSource::Fetcher fetcher, bool fixed, const Clock& clock,
         std::chrono::seconds refetch_interval, std::chrono::seconds max_age);
  // Stops the background thread; waits for a fetch in flight (≤ the fetcher's timeout).
  ~KeySet();
  KeySet(const KeySet&) = delete;
  KeySet& operator=(const KeySet&) = delete;

  // Fetches and installs the set now, on the calling thread. Used at creation.
  Status Load();
  // The key with `kid`, or nullptr. Never fetches.
  std::shared_ptr<const PkeyPtr> Find(const std::string& kid) const;
  // Queues a background fetch if one may start now: never for a fixed source, not
  // while one is queued or running, and at most once per refetch interval. Returns
  // at once; true when a fetch was queued.
  bool RequestRefresh();
  // True when a refetchable set is older than max_age (or was never loaded).
  bool Stale() const;
  // Blocks until no fetch is queued or running. For tests.
  void WaitIdle();

  const std::string& name() const { return name_; }
  std::uint64_t fetches() const { return fetches_.load(std::memory_order_relaxed); }

 private:
  void RefreshLoop();
  Status FetchAndInstall();  // Runs without mu_; only one runs at a time (in_flight_).

  const std::string name_;
  const JwksSource::Fetcher fetcher_;
  const bool fixed_;
  const Clock& clock_;
  const Timestamp refetch_interval_us_;
  const Timestamp max_age_us_;

  mutable std::shared_mutex keys_mu_;
  std::shared_ptr<const KeyMap> keys_;  // Guarded by keys_mu_.
  Timestamp loaded_at_ = 0;             // Guarded by keys_mu_.
  bool loaded_ = false;                 // Guarded by keys_mu_.

  std::mutex mu_;  // Guards the fetch state below.
  std::condition_variable cv_;
  bool queued_ = false;         // A fetch is asked for and not yet started.
  bool in_flight_ = false;      // A fetch is running.
  bool stopping_ = false;       // The destructor runs.
  Timestamp last_attempt_ = 0;  // Meaningful once attempted_.
  bool attempted_ = false;
  std::thread refresher_;  // Started by the first RequestRefresh.
  std::atomic<std::uint64_t> fetches_{0};
};

}  // namespace vppd::auth::internal
