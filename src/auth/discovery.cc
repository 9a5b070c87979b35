// OpenID Connect discovery: an issuer URL → the issuer tokens carry and its keys' URL.
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

#include "auth/auth.h"
#include "auth/jwks.h"

namespace vppd::auth {
namespace {

constexpr std::string_view kWellKnown = "/.well-known/openid-configuration";

std::string_view WithoutTrailingSlash(std::string_view url) {
  while (url.ends_with('/')) url.remove_suffix(1);
  return url;
}

// https://, or http:// to this machine. Keys fetched over plain http from elsewhere
// would let anyone on the path sign tokens vppd trusts. Returns the host (no port).
Result<std::string> CheckedUrl(std::string_view what, std::string_view url) {
  auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed || parsed->host().empty()) {
    return Fail(Error::InvalidArgument(std::string(what) + " '" + std::string(url) + "' is not an absolute URL"));
  }
  const std::string scheme(parsed->scheme());
  std::string host(parsed->host());
  if (scheme == "https") return host;
  const bool loopback = host == "127.0.0.1" || host == "[::1]" || host == "::1" || host == "localhost";
  if (scheme == "http" && loopback) return host;
  return Fail(Error::InvalidArgument(std::string(what) + " '" + std::string(url) +
                                     "' must be https:// (http:// only to 127.0.0.1, ::1 or localhost)"));
}

std::string_view SchemeAndHost(std::string_view url) {
  const std::size_t authority = url.find("://");
  if (authority == std::string_view::npos) return url;
  return url.substr(0, url.find('/', authority + 3));
}

}  // namespace

Result<TrustedIssuer> DiscoverIssuer(const std::string& issuer_url, ClaimNames claims, const UrlFetcher& get) {
  if (auto ok = CheckedUrl("issuer", issuer_url); !ok) return Fail(ok.error());
  const std::string url = std::string(WithoutTrailingSlash(issuer_url)) + std::string(kWellKnown);
  Result<std::string> text = get ? get(url) : internal::HttpGet(url, "OpenID configuration");
  if (!text) return Fail(text.error());

  auto refuse = [&url](const std::string& why) {
    return Fail(Error::InvalidArgument("OpenID configuration at " + url + ": " + why));
  };
  boost::json::parse_options opts;
  opts.max_depth = 32;
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(*text, ec, {}, opts);
  if (ec || !doc.is_object()) return refuse("not a JSON object");
  const boost::json::value* issuer = doc.as_object().if_contains("issuer");
  const boost::json::value* jwks_uri = doc.as_object().if_contains("jwks_uri");
  if (issuer == nullptr || !issuer->is_string() || issuer->as_string().empty()) return refuse("no issuer");
  if (jwks_uri == nullptr || !jwks_uri->is_string() || jwks_uri->as_string().empty()) return refuse("no jwks_uri");
  const std::string named(issuer->as_string());
  const bool same = WithoutTrailingSlash(named) == WithoutTrailingSlash(issuer_url);
  const bool per_tenant =
      named.find("{tenantid}") != std::string::npos && SchemeAndHost(named) == SchemeAndHost(issuer_url);
  if (!same && !per_tenant) {
    // OIDC Discovery §4.3: a document naming another issuer is not this issuer's.
    return refuse("it names the issuer '" + named + "', not '" + issuer_url + "'");
  }
  const std::string keys(jwks_uri->as_string());
  if (auto ok = CheckedUrl("jwks_uri", keys); !ok) return refuse(ok.error().message);
  spdlog::info("auth: trusting issuer {} with the keys at {} (from {})", named, keys, url);
  return TrustedIssuer{named, JwksSource::Url(keys), std::move(claims)};
}

}  // namespace vppd::auth
