// RSA keys from JWKS (OpenSSL 3 EVP/OSSL_PARAM only), the JWKS fetchers and KeySet.
#include "auth/jwks.h"

#include <memory>
#include <mutex>
#include <utility>

#include <boost/json.hpp>
#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

namespace vppd::auth::internal {
namespace {

struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};

BnPtr ToBn(std::string_view bytes) {
  return BnPtr(
      BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()), nullptr));
}

std::string FromBn(const BIGNUM* bn) {
  std::string out(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

}  // namespace

Result<PkeyPtr> RsaPublicKeyFromComponents(std::string_view n, std::string_view e) {
  BnPtr bn_n = ToBn(n);
  BnPtr bn_e = ToBn(e);
  if (!bn_n || !bn_e) return Fail(Error::Internal("out of memory building an RSA key"));
  const int bits = BN_num_bits(bn_n.get());
  if (bits < kMinRsaBits || bits > kMaxRsaBits) {
    return Fail(Error::InvalidArgument("RSA modulus of " + std::to_string(bits) + " bits (need 2048-8192)"));
  }
  // Exponents are small odd numbers (65537 in practice); refusing large ones keeps
  // verification cheap and rejects nonsense.
  if (BN_num_bits(bn_e.get()) > 32 || !BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get())) {
    return Fail(Error::InvalidArgument("RSA exponent is not an odd number in 3..2^32"));
  }
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    ERR_clear_error();
    return Fail(Error::Internal("cannot build RSA key parameters"));
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    ERR_clear_error();
    return Fail(Error::InvalidArgument("OpenSSL rejected the RSA key"));
  }
  return PkeyPtr(raw);
}

Result<RsaComponents> RsaComponentsOf(EVP_PKEY* key) {
  BIGNUM* n = nullptr;
  BIGNUM* e = nullptr;
  if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
      EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
    BN_free(n);
    BN_free(e);
    ERR_clear_error();
    return Fail(Error::Internal("not an RSA key"));
  }
  BnPtr owned_n(n);
  BnPtr owned_e(e);
  return RsaComponents{FromBn(n), FromBn(e)};
}

std::string JwkThumbprint(const RsaComponents& c) {
  // RFC 7638 §3.2: required members only, lexicographic order, no whitespace.
  const std::string canonical =
      R"({"e":")" + Base64UrlEncode(c.e) + R"(","kty":"RSA","n":")" + Base64UrlEncode(c.n) + R"("})";
  return Base64UrlEncode(Sha256(canonical));
}

bool VerifyRs256(EVP_PKEY* key, std::string_view data, std::string_view signature) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  // EVP_DigestVerifyInit on an RSA key defaults to PKCS#1 v1.5 padding: RS256 exactly.
  const bool ok =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  if (!ok) ERR_clear_error();
  return ok;
}

Result<std::string> SignRs256(EVP_PKEY* key, std::string_view data) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, in, data.size()) != 1) {
    ERR_clear_error();
    return Fail(Error::Internal("RS256 signing failed to start"));
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, data.size()) != 1) {
    ERR_clear_error();
    return Fail(Error::Internal("RS256 signing failed"));
  }
  sig.resize(len);
  return sig;
}

std::string Sha256(std::string_view data) {
  // Fetched once: OpenSSL 3 otherwise looks the implementation up on every call, and
  // this hash keys the verification cache (once per Graph request).
  static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  // One digest context per thread, re-initialised per call: EVP_Digest would
  // allocate and free a context and its provider state every time.
  thread_local const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::string out(SHA256_DIGEST_LENGTH, '\0');
  unsigned int len = 0;
  if (ctx == nullptr || EVP_DigestInit_ex2(ctx.get(), kSha256, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len) != 1) {
    // Out of memory in OpenSSL: the one-shot call reports nothing either; fall back to it.
    EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &len, kSha256, nullptr);
  }
  return out;
}

Result<KeyMap> ParseJwks(std::string_view text, int* skipped) {
  if (skipped != nullptr) *skipped = 0;
  if (text.size() > kMaxJwksBytes) return Fail(Error::InvalidArgument("JWKS is over 1 MiB"));
  boost::json::parse_options opts;
  opts.max_depth = 16;
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(text, ec, {}, opts);
  if (ec) return Fail(Error::InvalidArgument("JWKS is not JSON: " + ec.message()));
  const boost::json::object* root = doc.if_object();
  const boost::json::value* keys_value = root != nullptr ? root->if_contains("keys") : nullptr;
  const boost::json::array* keys = keys_value != nullptr ? keys_value->if_array() : nullptr;
  if (keys == nullptr) return Fail(Error::InvalidArgument("JWKS has no \"keys\" array"));
  if (keys->size() > kMaxJwksKeys) return Fail(Error::InvalidArgument("JWKS has over 100 keys"));

  auto member = [](const boost::json::object& o, std::string_view name) -> const boost::json::string* {
    const boost::json::value* v = o.if_contains(name);
    return v != nullptr ? v->if_string() : nullptr;
  };
  KeyMap out;
  int left_out = 0;
  for (const boost::json::value& entry : *keys) {
    const boost::json::object* jwk = entry.if_object();
    const boost::json::string* kty = jwk ? member(*jwk, "kty") : nullptr;
    const boost::json::string* kid = jwk ? member(*jwk, "kid") : nullptr;
    const boost::json::string* n = jwk ? member(*jwk, "n") : nullptr;
    const boost::json::string* e = jwk ? member(*jwk, "e") : nullptr;
    const boost::json::string* use = jwk ? member(*jwk, "use") : nullptr;
    const boost::json::string* alg = jwk ? member(*jwk, "alg") : nullptr;
    const bool usable = kty != nullptr && *kty == "RSA" && kid != nullptr && !kid->empty() && n != nullptr &&
                        e != nullptr && (jwk->if_contains("use") == nullptr || (use && *use == "sig")) &&
                        (jwk->if_contains("alg") == nullptr || (alg && *alg == "RS256"));
    if (!usable) {
      ++left_out;
      continue;
    }
    Result<std::string> n_bytes = Base64UrlDecode(std::string_view(n->data(), n->size()));
    Result<std::string> e_bytes = Base64UrlDecode(std::string_view(e->data(), e->size()));
    if (!n_bytes || !e_bytes) {
      ++left_out;
      continue;
    }
    Result<PkeyPtr> key = RsaPublicKeyFromComponents(*n_bytes, *e_bytes);
    if (!key) {
      ++left_out;
      continue;
    }
    // A kid listed twice is ambiguous: the first wins, as in most JOSE libraries.
    out.emplace(std::string(kid->data(), kid->size()), std::make_shared<const PkeyPtr>(std::move(*key)));
  }
  if (skipped != nullptr) *skipped = left_out;
  if (out.empty()) return Fail(Error::InvalidArgument("JWKS has no usable RS256 key"));
  return out;
}

namespace {

struct CurlFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};

struct Body {
  std::string data;
  bool too_large = false;
};

std::size_t WriteBody(char* ptr, std::size_t size, std::size_t nmemb, void* user) {
  auto* body = static_cast<Body*>(user);
  const std::size_t n = size * nmemb;
  if (body->data.size() + n > kMaxJwksBytes) {
    body->too_large = true;
    return 0;  // Makes libcurl abort with CURLE_WRITE_ERROR.
  }
  body->data.append(ptr, n);
  return n;
}

}  // namespace

Result<std::string> HttpGet(const std::string& url, std::string_view what) {
  static std::once_flag curl_init;
  std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });

  std::unique_ptr<CURL, CurlFree> curl(curl_easy_init());
  if (!curl) return Fail(Error::Internal("curl_easy_init failed"));
  Body body;
  char errbuf[CURL_ERROR_SIZE] = {};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // Timeouts without SIGALRM: we are multi-threaded.
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(kMaxJwksBytes));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "vppd");
  const CURLcode rc = curl_easy_perform(c);
  if (body.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
    return Fail(Error::Unavailable(std::string(what) + " at " + url + " is over 1 MiB"));
  }
  if (rc != CURLE_OK) {
    return Fail(Error::Unavailable(std::string(what) + " fetch from " + url +
                                   " failed: " + (errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc))));
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    return Fail(
        Error::Unavailable(std::string(what) + " fetch from " + url + " answered HTTP " + std::to_string(status)));
  }
  return std::move(body.data);
}

KeySet::KeySet(std::string name, JwksSource::Fetcher fetcher, bool fixed, const Clock& clock,
               std::chrono::seconds refetch_interval, std::chrono::seconds max_age)
    : name_(std::move(name)),
      fetcher_(std::move(fetcher)),
      fixed_(fixed),
      clock_(clock),
      refetch_interval_us_(std::chrono::duration_cast<std::chrono::microseconds>(refetch_interval).count()),
      max_age_us_(std::chrono::duration_cast<std::chrono::microseconds>(max_age).count()) {}

KeySet::~KeySet() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
}

Status KeySet::Load() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    attempted_ = true;
    last_attempt_ = clock_.Now();
    in_flight_ = true;
  }
  Status status = FetchAndInstall();
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_ = false;
  }
  cv_.notify_all();
  return status;
}

std::shared_ptr<const PkeyPtr> KeySet::Find(const std::string& kid) const {
  std::shared_ptr<const KeyMap> keys;
  {
    std::shared_lock<std::shared_mutex> lock(keys_mu_);
    keys = keys_;
  }
  if (!keys) return nullptr;
  auto it = keys->find(kid);
  return it == keys->end() ? nullptr : it->second;
}

bool KeySet::Stale() const {
  if (fixed_) return false;
  std::shared_lock<std::shared_mutex> lock(keys_mu_);
  return !loaded_ || clock_.Now() - loaded_at_ >= max_age_us_;
}

bool KeySet::RequestRefresh() {
  if (fixed_) return false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || queued_ || in_flight_) return false;
    // The attempt is stamped here rather than when the fetch starts, so that a flood
    // of unknown kids queues exactly one fetch per interval.
    const Timestamp now = clock_.Now();
    if (attempted_ && now - last_attempt_ < refetch_interval_us_) return false;
    attempted_ = true;
    last_attempt_ = now;
    queued_ = true;
    if (!refresher_.joinable()) refresher_ = std::thread([this] { RefreshLoop(); });
  }
  cv_.notify_all();
  return true;
}

void KeySet::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return !queued_ && !in_flight_; });
}

void KeySet::RefreshLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || queued_; });
    if (stopping_) break;
    queued_ = false;
    in_flight_ = true;
    lock.unlock();
    (void)FetchAndInstall();  // Logs its own failure; the last good set stays.
    lock.lock();
    in_flight_ = false;
    cv_.notify_all();
  }
  queued_ = false;
  cv_.notify_all();  // Nobody waits for a fetch that will not run.
}

Status KeySet::FetchAndInstall() {
  Result<std::string> text = fetcher_();
  if (!text) {
    spdlog::warn("auth: JWKS {}: {}; keeping the last good key set", name_, text.error().message);
    return Fail(text.error());
  }
  int skipped = 0;
  Result<KeyMap> keys = ParseJwks(*text, &skipped);
  if (!keys) {
    spdlog::warn("auth: JWKS {}: {}; keeping the last good key set", name_, keys.error().message);
    return Fail(keys.error());
  }
  spdlog::debug("auth: JWKS {}: {} keys loaded, {} skipped", name_, keys->size(), skipped);
  auto fresh = std::make_shared<const KeyMap>(std::move(*keys));
  {
    std::unique_lock<std::shared_mutex> lock(keys_mu_);
    keys_ = std::move(fresh);
    loaded_at_ = clock_.Now();
    loaded_ = true;
  }
  fetches_.fetch_add(1, std::memory_order_relaxed);
  return {};
}

}  // namespace vppd::auth::internal
