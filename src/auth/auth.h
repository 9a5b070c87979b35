// Bearer-token verification for the Graph surface, and the dev signing key.
//
// A Verifier checks the `Authorization` header of each Graph request: an RS256 JWT
// signed by one of the trusted issuers (Microsoft Entra ID v1/v2, any OpenID Connect
// provider found by DiscoverIssuer, or the dev key of a `--dev` server), for the
// token's own tenant, for an accepted audience, not expired. It turns the claims into
// a Principal (which claims: ClaimNames); permission checks are the service's business.
//
//   Result<auth::DevKey> dev = auth::DevKey::LoadOrCreate(data_dir);
//   auth::VerifierOptions options;
//   options.issuers = auth::DevIssuers(*dev);          // and/or auth::EntraIssuers()
//   Result<auth::Verifier> verifier = auth::Verifier::Create(std::move(options));
//   ...
//   std::string why;
//   Result<Principal> caller = verifier->Verify(req.Header("Authorization").value_or(""), &why);
//   if (!caller) return GraphError(caller.error());   // 401; `why` is logged already
//
// Every failure is Error{kUnauthenticated, one of Graph's three messages below} (graph/
// answers it with Graph's code InvalidAuthenticationToken); the precise reason goes to `why` and to
// an info log line ("auth: bearer token rejected (401): <reason>", with the ids of
// the request being handled), and never contains token text or key material.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/base.h"
#include "base/error.h"
#include "base/principal.h"

namespace vppd::auth {

// Microsoft's tenant of personal accounts (MSA); tokens with this `tid` are personal.
inline constexpr char kPersonalAccountTenantId[] = "9188040d-6c67-4c5b-b112-36a304b66dad";
// The tenant a `--dev` server registers and `vppd dev-token` signs for by default.
inline constexpr char kDevTenantId[] = "7d3e5f1a-9c2b-4e8d-a6f0-3b1c5d7e9f20";
// The user (`oid`) and client application (`appid`) of dev tokens unless set.
inline constexpr char kDevObjectId[] = "0a11ce00-5eed-4d3e-8f00-00000000d0e5";
inline constexpr char kDevAppId[] = "de7c11e0-0000-4000-8000-000000000001";
// Microsoft Graph's application id, one of the two audience forms of Graph tokens.
inline constexpr char kGraphAppId[] = "00000003-0000-0000-c000-000000000000";
// Entra ID's signing keys (the same set serves v1 and v2 tokens of every tenant).
inline constexpr char kEntraJwksUrl[] = "https://login.microsoftonline.com/common/discovery/v2.0/keys";

// Graph's messages for the verification failures.
inline constexpr char kMessageEmpty[] = "Access token is empty.";
inline constexpr char kMessageExpired[] = "Access token has expired or is not yet valid.";
inline constexpr char kMessageInvalid[] = "Access token validation failure.";

// Longest token accepted, in bytes (Entra tokens are 1.5–4 KiB).
inline constexpr std::size_t kMaxTokenBytes = std::size_t{16} * 1024;

// Where a trusted issuer's signing keys come from: a JSON Web Key Set
// ({"keys":[{"kty":"RSA","kid","n","e",...}]}). Only RSA keys of 2048–8192 bits whose
// `use` (when present) is "sig" and `alg` (when present) is "RS256" are taken; other
// keys in the set are skipped. Sources with equal names share one cached key set.
class JwksSource {
 public:
  // Returns the JWKS text, or an error saying why it could not be had.
  using Fetcher = std::function<Result<std::string>()>;

  // A fixed set, e.g. DevKey::JwksJson(). Must parse when the Verifier is created.
  static JwksSource Json(std::string jwks_json);
  // A file (≤ 1 MiB), read when the Verifier is created (and must parse then), and
  // read again in the background on an unknown `kid` (at most once per refetch interval).
  static JwksSource File(std::string path);
  // An http(s) URL fetched with libcurl (5 s connect, 10 s total, ≤ 1 MiB, no
  // redirects), first when the Verifier is created (a failure there is only logged),
  // then in the background on an unknown `kid` at most once per refetch interval, and
  // when the set is older than a day. A failed fetch keeps the last good set.
  static JwksSource Url(std::string url);
  // Any fetcher, treated like a URL (tests use it to count and fail fetches).
  static JwksSource Custom(std::string name, Fetcher fetcher);

  const std::string& name() const { return name_; }

 private:
  friend class Verifier;
  JwksSource(std::string name, Fetcher fetcher, bool fixed, bool required)
      : name_(std::move(name)), fetcher_(std::move(fetcher)), fixed_(fixed), required_(required) {}
  std::string name_;
  Fetcher fetcher_;
  bool fixed_;     // Never refetched.
  bool required_;  // Create() fails when the first load fails.
};

// Where an issuer's tokens carry the caller's permissions and tenant. Each is the name of a
// claim or, when no top-level claim has the whole name, a path through nested objects
// with dots: "realm_access.roles" (Keycloak), while "https://example.com/roles" (a
// namespaced claim) is found as it is. Entra ID's names are the defaults.
struct ClaimNames {
  // Delegated permissions: a space-separated string (Entra's `scp`, OAuth's `scope`) or
  // an array of strings (Okta's `scp`).
  std::string scopes = "scp";
  // Application permissions (app roles): an array of strings or a space-separated string.
  std::string roles = "roles";
  // The tenant, a GUID (Entra's `tid`).
  std::string tenant = "tid";
  // When set (a GUID), every token of the issuer is of this tenant and `tenant` is not
  // read: for a provider that has no tenants (a Keycloak realm, an Authentik instance)
  // serving one organisation.
  std::string fixed_tenant{};
};

// One trusted issuer. `issuer` is compared with a token's `iss`; it may hold `{tenantid}`
// once, which is replaced by the token's own tenant first, e.g.
// "https://sts.windows.net/{tenantid}/" (then one key set serves many tenants, and a
// token only speaks for the tenant in its own `iss`). When several issuers match a
// token, its `kid` is looked up in their key sets in order, and the issuer whose keys
// have it says how the token is read (its tenant, its `claims`).
struct TrustedIssuer {
  std::string issuer;
  JwksSource jwks;
  ClaimNames claims = {};
};

struct VerifierOptions {
  // `aud` (a string, or an array of which one must match) must be one of these.
  std::vector<std::string> audiences = {"https://graph.microsoft.com", kGraphAppId};
  // Clock skew tolerated on `exp` and `nbf`.
  std::chrono::seconds leeway{60};
  const Clock* clock = nullptr;  // nullptr = Clock::Real(). Must outlive the Verifier.
  std::vector<TrustedIssuer> issuers;
  // Verified tokens remembered (by SHA-256) until their `exp` + leeway.
  std::size_t cache_entries = 10'000;
  // Least time between two fetches of one key set (the load at creation counts).
  // Refetches run on a thread of the key set, one at a time.
  std::chrono::seconds jwks_refetch_interval{60};
  // A refetchable key set older than this is refetched (in the background) on the
  // next lookup, and used meanwhile.
  std::chrono::seconds jwks_max_age{24 * 3600};
};

// Verifies bearer tokens. Thread-safe: Verify may be called from any number of threads.
class Verifier {
 public:
  // Fails with InvalidArgument when there is no issuer or audience, an issuer has
  // several `{tenantid}`, a fixed tenant is not a GUID, a claim name is empty, the leeway is negative, or a Json/File
  // source does not give a usable key set (the message says which and why).
  static Result<Verifier> Create(VerifierOptions options);

  Verifier(Verifier&&) noexcept;
  Verifier& operator=(Verifier&&) noexcept;
  ~Verifier();

  // `authorization` is the raw Authorization header value (empty when absent). The
  // scheme `Bearer` is matched case-insensitively. On failure returns Unauthenticated
  // with kMessageEmpty (no token), kMessageExpired (`exp`/`nbf` out of range with
  // leeway; only said of tokens whose signature is good) or kMessageInvalid
  // (everything else), and sets `*why` (when given) to the precise reason.
  // Never waits for a JWKS fetch: a token whose `kid` is in no cached key set is
  // refused at once, and a refetch is queued in the background (rate-limited), so
  // a retry after a key rotation succeeds once the new set is in.
  Result<Principal> Verify(std::string_view authorization, std::string* why = nullptr) const;

  // RSA signature checks performed so far (a cache hit performs none). For tests and metrics.
  std::uint64_t signature_checks() const;
  // Successful fetches (the initial load included) of all key sets. For tests and metrics.
  std::uint64_t jwks_fetches() const;
  // Blocks until no key set has a fetch queued or running. For tests.
  void WaitForKeyFetches() const;

 private:
  struct Impl;
  explicit Verifier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What `vppd dev-token` asks for.
struct DevTokenRequest {
  std::string tenant_id;            // Empty = kDevTenantId. Must be a GUID.
  std::vector<std::string> scopes;  // → `scp` (omitted when empty).
  std::vector<std::string> roles;   // → `roles` (omitted when empty).
  bool personal_account = false;    // tid = kPersonalAccountTenantId (tenant_id ignored).
  std::chrono::seconds ttl{3600};   // exp = now + ttl; negative gives an expired token.
  std::string audience = "https://graph.microsoft.com";
  std::string object_id;  // Empty = kDevObjectId.
  std::string app_id;     // Empty = kDevAppId.
  bool v2 = false;        // v2 issuer and `azp` instead of v1 issuer and `appid`.
};

// The dev signing key: RSA-2048, kept PEM (PKCS#8) in `<data_dir>/dev-signing-key.pem`,
// created mode 0600 on first use. Its kid is the RFC 7638 thumbprint of the public key,
// so it is stable across restarts. Copies share the key; thread-safe.
class DevKey {
 public:
  static constexpr char kFileName[] = "dev-signing-key.pem";

  // Loads the key, creating the directory and the key when absent (concurrent callers
  // end up with the same key). Fails with Internal when the file cannot be read or
  // written, or FailedPrecondition when it holds no RSA private key of ≥ 2048 bits.
  static Result<DevKey> LoadOrCreate(const std::string& data_dir);

  const std::string& kid() const;
  // {"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid","n","e"}]} of the public key.
  std::string JwksJson() const;
  // A signed RS256 token shaped like an Entra access token for Graph (iss, aud, tid,
  // oid, appid|azp, scp, roles, iat, nbf, exp, ver). Fails with InvalidArgument when
  // tenant_id is not a GUID or a scope contains a space.
  Result<std::string> Sign(const DevTokenRequest& request, const Clock& clock = Clock::Real()) const;

 private:
  struct Impl;
  explicit DevKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// The v1 ("https://sts.windows.net/{tenantid}/") and v2
// ("https://login.microsoftonline.com/{tenantid}/v2.0") issuers, trusted with `jwks`.
std::vector<TrustedIssuer> EntraIssuers(JwksSource jwks = JwksSource::Url(kEntraJwksUrl));
// The same issuers trusted with the dev key's public key: what a --dev server trusts.
std::vector<TrustedIssuer> DevIssuers(const DevKey& key);

// Fetches a URL's body (the discovery document); HttpGet's limits in production.
using UrlFetcher = std::function<Result<std::string>(const std::string& url)>;

// Any OpenID Connect provider, through its discovery document (OpenID Connect Discovery
// 1.0): GETs `<issuer_url>/.well-known/openid-configuration` (5 s connect, 10 s total,
// ≤ 1 MiB, no redirects) and returns the issuer it names, trusted with the keys at its
// `jwks_uri` (a JwksSource::Url: fetched off the request threads, refetched on an
// unknown `kid`), reading `claims`.
//
//   auto issuer = auth::DiscoverIssuer("https://idp.example.com/realms/vppd", claims);
//   // Keycloak: {issuer "https://idp.example.com/realms/vppd", keys of .../certs}
//
// The document's `issuer` must be `issuer_url` (OIDC Discovery §4.3; a trailing slash
// aside), or hold `{tenantid}` on the same scheme and host (Entra ID's multi-tenant
// documents: "https://login.microsoftonline.com/common/v2.0" names
// "https://login.microsoftonline.com/{tenantid}/v2.0"). `issuer_url` and `jwks_uri` must
// be https://, or http:// to a loopback address (127.0.0.1, ::1, localhost: tests).
// Fails with Unavailable when the document cannot be fetched, InvalidArgument when a
// URL is refused or the document is not JSON with string `issuer` and `jwks_uri` (or
// its issuer is another); the message names the URL and the reason.
Result<TrustedIssuer> DiscoverIssuer(const std::string& issuer_url, ClaimNames claims, const UrlFetcher& get = {});

}  // namespace vppd::auth
