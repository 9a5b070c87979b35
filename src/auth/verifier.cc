// The bearer-token Verifier: header parsing, JWT checks in a fixed order, the cache.
//
// Order of checks (cheap and structural first, the RSA operation only for a token
// that names a trusted issuer and a known key, time and audience last so that
// "expired" is only ever said of a token we actually issued):
//   scheme → size → cache → 3 segments → header (alg RS256, no crit, kid) →
//   payload claims (iss, exp, ...) → issuers for iss and the tenant each reads →
//   key by kid → signature → exp/nbf with leeway → aud → Principal.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <shared_mutex>
#include <unordered_map>
#include <utility>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "auth/auth.h"
#include "auth/jwks.h"

namespace vppd::auth {

using internal::KeySet;

JwksSource JwksSource::Json(std::string jwks_json) {
  // Named by content so that equal sets share one KeySet and different ones do not.
  std::string name = "inline:" + Base64UrlEncode(internal::Sha256(jwks_json).substr(0, 12));
  return JwksSource(
      std::move(name), [text = std::move(jwks_json)]() -> Result<std::string> { return text; }, /*fixed=*/true,
      /*required=*/true);
}

JwksSource JwksSource::File(std::string path) {
  std::string name = "file:" + path;
  return JwksSource(
      std::move(name), [path = std::move(path)] { return ReadFile(path, internal::kMaxJwksBytes); },
      /*fixed=*/false, /*required=*/true);
}

JwksSource JwksSource::Url(std::string url) {
  std::string name = "url:" + url;
  return JwksSource(
      std::move(name), [url = std::move(url)] { return internal::HttpGet(url); }, /*fixed=*/false,
      /*required=*/false);
}

JwksSource JwksSource::Custom(std::string name, Fetcher fetcher) {
  return JwksSource("custom:" + std::move(name), std::move(fetcher), /*fixed=*/false, /*required=*/false);
}

std::vector<TrustedIssuer> EntraIssuers(JwksSource jwks) {
  return {{"https://sts.windows.net/{tenantid}/", jwks}, {"https://login.microsoftonline.com/{tenantid}/v2.0", jwks}};
}

std::vector<TrustedIssuer> DevIssuers(const DevKey& key) { return EntraIssuers(JwksSource::Json(key.JwksJson())); }

namespace {

constexpr std::string_view kTenantPlaceholder = "{tenantid}";

enum class Verdict { kEmpty, kExpired, kInvalid };

Error Reject(Verdict verdict, const std::string& reason, std::string* why) {
  // Every rejection is a 401, and the client only gets Graph's generic message: the
  // operator learns why here. Reasons are built from fixed text and sanitised short
  // values, never token text.
  spdlog::info("auth: bearer token rejected (401): {}", reason);
  if (why != nullptr) *why = reason;
  const char* message = verdict == Verdict::kEmpty     ? kMessageEmpty
                        : verdict == Verdict::kExpired ? kMessageExpired
                                                       : kMessageInvalid;
  return Error::Unauthenticated(message);
}

// A short, log-safe rendering of an attacker-controlled value (alg, kid).
std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) {
    const bool plain =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    out += plain ? c : '?';
  }
  if (s.size() > 40) out += "...";
  return "\"" + out + "\"";
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// Decodes one base64url segment and parses it as a JSON object.
std::optional<boost::json::object> DecodeObject(std::string_view segment) {
  Result<std::string> bytes = Base64UrlDecode(segment);
  if (!bytes) return std::nullopt;
  boost::json::parse_options opts;
  opts.max_depth = 16;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(*bytes, ec, {}, opts);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

// A JWT NumericDate (seconds, possibly fractional) as microseconds; nullopt when it is
// not a number or not in [0, 10^11 s] (the year 5138), which keeps the arithmetic safe.
std::optional<Timestamp> NumericDateMicros(const boost::json::value& v) {
  constexpr double kMaxSeconds = 1e11;
  double seconds = 0;
  if (const std::int64_t* i = v.if_int64()) {
    seconds = static_cast<double>(*i);
  } else if (const std::uint64_t* u = v.if_uint64()) {
    seconds = static_cast<double>(*u);
  } else if (const double* d = v.if_double()) {
    seconds = *d;
  } else {
    return std::nullopt;
  }
  if (!std::isfinite(seconds) || seconds < 0 || seconds > kMaxSeconds) return std::nullopt;
  return static_cast<Timestamp>(std::llround(seconds * 1e6));
}

// Reads an optional string claim: absent → empty; present but not a string → false.
bool OptionalString(const boost::json::object& claims, std::string_view name, std::string* out) {
  const boost::json::value* v = claims.if_contains(name);
  if (v == nullptr) return true;
  const boost::json::string* s = v->if_string();
  if (s == nullptr) return false;
  out->assign(s->data(), s->size());
  return true;
}

// A claim by name, or by a dotted path through nested objects when no top-level
// claim has the whole name (ClaimNames). nullptr when absent.
const boost::json::value* FindClaim(const boost::json::object& claims, std::string_view name) {
  if (const boost::json::value* v = claims.if_contains(name)) return v;
  const boost::json::object* at = &claims;
  for (;;) {
    const std::size_t dot = name.find('.');
    const boost::json::value* v = at->if_contains(name.substr(0, dot));
    if (v == nullptr || dot == std::string_view::npos) return v;
    at = v->if_object();
    if (at == nullptr) return nullptr;
    name.remove_prefix(dot + 1);
  }
}

// A list of names: a space-separated string or an array of strings. Absent: empty.
// False when it is something else.
bool NameList(const boost::json::value* v, std::vector<std::string>* out) {
  if (v == nullptr) return true;
  if (const boost::json::string* s = v->if_string()) {
    const std::string_view text(*s);
    for (std::size_t pos = 0; pos < text.size();) {
      const std::size_t end = std::min(text.find(' ', pos), text.size());
      if (end > pos) out->emplace_back(text.substr(pos, end - pos));
      pos = end + 1;
    }
    return true;
  }
  const boost::json::array* list = v->if_array();
  if (list == nullptr) return false;
  for (const boost::json::value& item : *list) {
    const boost::json::string* s = item.if_string();
    if (s == nullptr) return false;
    out->emplace_back(s->data(), s->size());
  }
  return true;
}

struct IssuerEntry {
  std::string prefix;       // Pattern before {tenantid}, or the whole issuer.
  std::string suffix;       // Pattern after {tenantid}.
  bool per_tenant = false;  // The pattern holds {tenantid}.
  ClaimNames claims;
  std::shared_ptr<KeySet> keys;

  // The token's tenant as this issuer's tokens carry it; empty when it is missing or
  // not a GUID.
  std::string Tenant(const boost::json::object& token_claims) const {
    if (!claims.fixed_tenant.empty()) return claims.fixed_tenant;
    const boost::json::value* v = FindClaim(token_claims, claims.tenant);
    const boost::json::string* s = v != nullptr ? v->if_string() : nullptr;
    if (s == nullptr || !IsGuid(std::string_view(*s))) return {};
    return std::string(*s);
  }

  // Whether `iss` is this issuer's for some tenant.
  bool Names(std::string_view iss) const {
    if (!per_tenant) return iss == prefix;
    return iss.size() > prefix.size() + suffix.size() && iss.starts_with(prefix) && iss.ends_with(suffix);
  }

  bool Matches(std::string_view iss, std::string_view tid) const {
    if (!per_tenant) return iss == prefix;
    return iss.size() == prefix.size() + tid.size() + suffix.size() && iss.starts_with(prefix) &&
           iss.ends_with(suffix) && iss.substr(prefix.size(), tid.size()) == tid;
  }
};

struct CacheEntry {
  Principal caller;
  Timestamp valid_until = 0;  // exp + leeway, microseconds.
};

// Equality of two byte strings in time that depends on their length only, not on
// where they first differ: the memo below compares a request's token with one
// that another client sent.
bool SameBytes(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;  // the length of a header is no secret
  std::uint64_t diff = 0;
  std::size_t i = 0;
  for (; i + 8 <= a.size(); i += 8) {
    std::uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    diff |= x ^ y;
  }
  for (; i < a.size(); ++i) {
    diff |= static_cast<std::uint64_t>(static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

// Each Verifier's number for the memo: a destroyed Verifier's address can be
// reused by another with other trusted issuers, its number never is.
std::atomic<std::uint64_t> next_verifier_id{1};

// The last token each thread verified (or found in the cache), for one Verifier.
// A client sends one bearer token on request after request (it lives about an
// hour), so the common case is a comparison instead of a SHA-256 of the ~1 KB
// token plus a locked lookup (measured ~1 µs of a ~18 µs routed request,
// bench/README.md "api"). Bounded to one token per thread; the text sits in
// memory as it does in the connection's read buffer, and is never logged.
struct LastVerified {
  std::uint64_t verifier = 0;  // 0: empty
  std::string token;
  Principal caller;
  Timestamp valid_until = 0;
};
thread_local LastVerified tls_last_verified;

}  // namespace

struct Verifier::Impl {
  std::vector<std::string> audiences;
  Timestamp leeway_us = 0;
  const Clock* clock = nullptr;
  std::vector<IssuerEntry> issuers;
  std::vector<std::shared_ptr<KeySet>> key_sets;  // Distinct, for counters.
  std::size_t cache_capacity = 0;
  const std::uint64_t id = next_verifier_id.fetch_add(1);

  mutable std::shared_mutex cache_mu;
  mutable std::unordered_map<std::string, CacheEntry> cache;  // Key: raw SHA-256 of the token.
  mutable std::atomic<std::uint64_t> signature_checks{0};

  Result<Principal> Verify(std::string_view authorization, std::string* why) const;
  Result<Principal> VerifyToken(std::string_view token, Timestamp now, Timestamp* valid_until, std::string* why) const;
  // The key `kid` from the first of `sets` that has it, and that set's index (in `*which`).
  std::shared_ptr<const internal::PkeyPtr> FindKey(const std::vector<KeySet*>& sets, const std::string& kid,
                                                   std::size_t* which) const;
  void Remember(std::string key, const Principal& caller, Timestamp valid_until, Timestamp now) const;
};

Result<Principal> Verifier::Impl::Verify(std::string_view authorization, std::string* why) const {
  std::string_view value = Trim(authorization);
  if (value.empty()) return Fail(Reject(Verdict::kEmpty, "no Authorization header", why));
  const std::size_t space = value.find_first_of(" \t");
  const std::string_view scheme = value.substr(0, space);
  const std::string_view token = space == std::string_view::npos ? std::string_view() : Trim(value.substr(space));
  if (!EqualsIgnoreCase(scheme, "Bearer")) {
    return Fail(Reject(Verdict::kInvalid, "Authorization scheme is not Bearer", why));
  }
  if (token.empty()) return Fail(Reject(Verdict::kEmpty, "Bearer without a token", why));
  if (token.size() > kMaxTokenBytes) {
    return Fail(Reject(Verdict::kInvalid, "token of " + std::to_string(token.size()) + " bytes is over 16 KiB", why));
  }

  const Timestamp now = clock->Now();
  std::string cache_key;
  LastVerified& last = tls_last_verified;
  auto memo = [&](const Principal& caller, Timestamp valid_until) {
    last.verifier = id;
    last.token.assign(token);
    last.caller = caller;
    last.valid_until = valid_until;
  };
  if (cache_capacity > 0) {
    if (last.verifier == id && now < last.valid_until && SameBytes(last.token, token)) return last.caller;
    cache_key = internal::Sha256(token);
    std::shared_lock<std::shared_mutex> lock(cache_mu);
    auto it = cache.find(cache_key);
    if (it != cache.end() && now < it->second.valid_until) {
      memo(it->second.caller, it->second.valid_until);
      return it->second.caller;
    }
  }

  Timestamp valid_until = 0;
  Result<Principal> caller = VerifyToken(token, now, &valid_until, why);
  if (caller && cache_capacity > 0) {
    memo(*caller, valid_until);
    Remember(std::move(cache_key), *caller, valid_until, now);
  }
  return caller;
}

Result<Principal> Verifier::Impl::VerifyToken(std::string_view token, Timestamp now, Timestamp* valid_until,
                                              std::string* why) const {
  auto invalid = [why](const std::string& reason) { return Fail(Reject(Verdict::kInvalid, reason, why)); };

  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return invalid("token does not have exactly three segments");
  }

  // Header: RS256 only. Anything else (none, HS*, RS384, ES*, PS*) is refused before
  // a key is even chosen, which is what defeats alg-confusion attacks.
  std::optional<boost::json::object> header = DecodeObject(token.substr(0, dot1));
  if (!header) return invalid("header is not base64url of a JSON object");
  const boost::json::value* alg = header->if_contains("alg");
  if (alg == nullptr || !alg->is_string()) return invalid("header has no alg");
  if (alg->as_string() != "RS256") {
    const boost::json::string& a = alg->as_string();
    return invalid("alg " + Printable(std::string_view(a.data(), a.size())) + " is not RS256");
  }
  // RFC 7515 §4.1.11: extensions we do not understand must make the token invalid.
  if (header->contains("crit")) return invalid("header has crit");
  std::string kid;
  if (!OptionalString(*header, "kid", &kid) || kid.empty()) return invalid("header has no kid");

  std::optional<boost::json::object> claims = DecodeObject(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!claims) return invalid("payload is not base64url of a JSON object");
  Principal caller;
  std::string iss;
  if (!OptionalString(*claims, "iss", &iss) || iss.empty()) return invalid("iss is missing");
  const boost::json::value* exp_value = claims->if_contains("exp");
  const std::optional<Timestamp> exp = exp_value ? NumericDateMicros(*exp_value) : std::nullopt;
  if (!exp) return invalid("exp is missing or not a NumericDate");
  std::optional<Timestamp> nbf;
  if (const boost::json::value* v = claims->if_contains("nbf")) {
    nbf = NumericDateMicros(*v);
    if (!nbf) return invalid("nbf is not a NumericDate");
  }

  // The issuer must be a trusted one instantiated for the token's own tenant: a key
  // set shared by all Entra tenants must not let tenant A's token speak for tenant B.
  // The issuer whose keys sign the token says how to read it (its tenant, its claims).
  std::vector<KeySet*> sets;
  std::vector<std::pair<const IssuerEntry*, std::string>> matched;  // parallel to `sets`: the first of each
  const std::string* missing_tenant = nullptr;  // the tenant claim of an issuer of `iss` that found none
  for (const IssuerEntry& issuer : issuers) {
    std::string tenant = issuer.Tenant(*claims);
    if (tenant.empty()) {
      if (missing_tenant == nullptr && issuer.Names(iss)) missing_tenant = &issuer.claims.tenant;
      continue;
    }
    if (!issuer.Matches(iss, tenant)) continue;
    if (std::find(sets.begin(), sets.end(), issuer.keys.get()) == sets.end()) {
      sets.push_back(issuer.keys.get());
      matched.emplace_back(&issuer, std::move(tenant));
    }
  }
  if (sets.empty()) {
    if (missing_tenant != nullptr) return invalid(*missing_tenant + " is missing or not a GUID");
    return invalid("iss is not a trusted issuer for the token's tenant");
  }
  std::size_t which = 0;
  std::shared_ptr<const internal::PkeyPtr> key = FindKey(sets, kid, &which);
  if (!key) return invalid("kid " + Printable(kid) + " is in no key set of the matching issuers");
  const IssuerEntry& signer = *matched[which].first;
  caller.tenant_id = std::move(matched[which].second);

  Result<std::string> signature = Base64UrlDecode(token.substr(dot2 + 1));
  if (!signature) return invalid("signature is not base64url");
  signature_checks.fetch_add(1, std::memory_order_relaxed);
  if (!internal::VerifyRs256(key->get(), token.substr(0, dot2), *signature)) {
    return invalid("signature does not verify");
  }

  if (now >= *exp + leeway_us) return Fail(Reject(Verdict::kExpired, "token has expired", why));
  if (nbf && now + leeway_us < *nbf) return Fail(Reject(Verdict::kExpired, "token is not yet valid", why));

  bool audience_ok = false;
  if (const boost::json::value* aud = claims->if_contains("aud")) {
    auto allowed = [this](const boost::json::value& v) {
      const boost::json::string* s = v.if_string();
      return s != nullptr && std::find(audiences.begin(), audiences.end(), std::string_view(*s)) != audiences.end();
    };
    if (const boost::json::array* list = aud->if_array()) {
      audience_ok = std::any_of(list->begin(), list->end(), allowed);
    } else {
      audience_ok = allowed(*aud);
    }
  }
  if (!audience_ok) return invalid("aud is missing or not an accepted audience");

  if (!OptionalString(*claims, "oid", &caller.object_id)) return invalid("oid is not a string");
  if (!OptionalString(*claims, "appid", &caller.app_id)) return invalid("appid is not a string");
  std::string azp;
  if (!OptionalString(*claims, "azp", &azp)) return invalid("azp is not a string");
  if (caller.app_id.empty()) caller.app_id = std::move(azp);
  const ClaimNames& names = signer.claims;
  if (!NameList(FindClaim(*claims, names.scopes), &caller.scopes)) {
    return invalid(names.scopes + " is not a string or an array of strings");
  }
  if (!NameList(FindClaim(*claims, names.roles), &caller.roles)) {
    return invalid(names.roles + " is not a string or an array of strings");
  }
  caller.app_only = !caller.roles.empty() && caller.scopes.empty();
  caller.personal_account = EqualsIgnoreCase(caller.tenant_id, kPersonalAccountTenantId);
  *valid_until = *exp + leeway_us;
  return caller;
}

std::shared_ptr<const internal::PkeyPtr> Verifier::Impl::FindKey(const std::vector<KeySet*>& sets,
                                                                 const std::string& kid, std::size_t* which) const {
  // Key sets are fetched on their own threads, never on this one: a slow or hung
  // JWKS endpoint must not hold the HTTP threads (an unknown kid costs no one a wait).
  for (KeySet* set : sets) {
    if (set->Stale()) set->RequestRefresh();
  }
  for (std::size_t i = 0; i < sets.size(); ++i) {
    if (auto key = sets[i]->Find(kid)) {
      *which = i;
      return key;
    }
  }
  // An unknown kid is how a key rotation shows up: ask for a refetch (rate-limited)
  // and answer this request from what is cached; a retry finds the new key.
  for (KeySet* set : sets) set->RequestRefresh();
  return nullptr;
}

void Verifier::Impl::Remember(std::string key, const Principal& caller, Timestamp valid_until, Timestamp now) const {
  std::unique_lock<std::shared_mutex> lock(cache_mu);
  if (cache.size() >= cache_capacity && cache.find(key) == cache.end()) {
    std::erase_if(cache, [now](const auto& entry) { return now >= entry.second.valid_until; });
    if (cache.size() >= cache_capacity) {
      // Still full of live tokens: drop the tenth that expires soonest, so the cost
      // of this O(n) pass is spread over many inserts.
      std::vector<std::pair<Timestamp, std::string>> by_expiry;
      by_expiry.reserve(cache.size());
      for (const auto& [k, entry] : cache) by_expiry.emplace_back(entry.valid_until, k);
      const std::size_t drop = std::max<std::size_t>(1, cache_capacity / 10);
      std::nth_element(by_expiry.begin(), by_expiry.begin() + static_cast<std::ptrdiff_t>(drop - 1), by_expiry.end());
      for (std::size_t i = 0; i < drop; ++i) cache.erase(by_expiry[i].second);
    }
  }
  cache.insert_or_assign(std::move(key), CacheEntry{caller, valid_until});
}

Result<Verifier> Verifier::Create(VerifierOptions options) {
  if (options.issuers.empty()) return Fail(Error::InvalidArgument("no trusted issuer configured"));
  if (options.audiences.empty()) return Fail(Error::InvalidArgument("no accepted audience configured"));
  if (options.leeway.count() < 0) return Fail(Error::InvalidArgument("leeway is negative"));
  auto impl = std::make_unique<Impl>();
  impl->audiences = std::move(options.audiences);
  impl->leeway_us = std::chrono::duration_cast<std::chrono::microseconds>(options.leeway).count();
  impl->clock = options.clock != nullptr ? options.clock : &Clock::Real();
  impl->cache_capacity = options.cache_entries;

  std::unordered_map<std::string, std::shared_ptr<KeySet>> by_name;
  for (TrustedIssuer& issuer : options.issuers) {
    const std::size_t at = issuer.issuer.find(kTenantPlaceholder);
    if (issuer.issuer.empty() ||
        (at != std::string::npos && issuer.issuer.find(kTenantPlaceholder, at + 1) != std::string::npos)) {
      return Fail(Error::InvalidArgument("issuer \"" + issuer.issuer + "\" must be set, with {tenantid} at most once"));
    }
    const ClaimNames& names = issuer.claims;
    if (names.scopes.empty() || names.roles.empty() || (names.tenant.empty() && names.fixed_tenant.empty())) {
      return Fail(Error::InvalidArgument("issuer \"" + issuer.issuer + "\": a claim name is empty"));
    }
    if (!names.fixed_tenant.empty() && !IsGuid(names.fixed_tenant)) {
      return Fail(Error::InvalidArgument("issuer \"" + issuer.issuer + "\": fixed tenant \"" + names.fixed_tenant +
                                         "\" is not a GUID"));
    }
    std::shared_ptr<KeySet>& keys = by_name[issuer.jwks.name_];
    if (!keys) {
      keys = std::make_shared<KeySet>(issuer.jwks.name_, issuer.jwks.fetcher_, issuer.jwks.fixed_, *impl->clock,
                                      options.jwks_refetch_interval, options.jwks_max_age);
      Status loaded = keys->Load();
      if (!loaded && issuer.jwks.required_) {
        return Fail(Error::InvalidArgument("JWKS " + issuer.jwks.name_ + ": " + loaded.error().message));
      }
      impl->key_sets.push_back(keys);
    }
    const bool per_tenant = at != std::string::npos;
    impl->issuers.push_back(IssuerEntry{per_tenant ? issuer.issuer.substr(0, at) : issuer.issuer,
                                        per_tenant ? issuer.issuer.substr(at + kTenantPlaceholder.size()) : "",
                                        per_tenant, issuer.claims, keys});
  }
  return Verifier(std::move(impl));
}

Verifier::Verifier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Verifier::Verifier(Verifier&&) noexcept = default;
Verifier& Verifier::operator=(Verifier&&) noexcept = default;
Verifier::~Verifier() = default;

Result<Principal> Verifier::Verify(std::string_view authorization, std::string* why) const {
  return impl_->Verify(authorization, why);
}

std::uint64_t Verifier::signature_checks() const { return impl_->signature_checks.load(std::memory_order_relaxed); }

void Verifier::WaitForKeyFetches() const {
  for (const auto& set : impl_->key_sets) set->WaitIdle();
}

std::uint64_t Verifier::jwks_fetches() const {
  std::uint64_t total = 0;
  for (const auto& set : impl_->key_sets) total += set->fetches();
  return total;
}

}  // namespace vppd::auth
