// Tests of vppd_auth: the dev key, the verifier's checks (every forgery the brief
// lists), JWKS sources and their fetch policy, and the verification cache.
#include "auth/auth.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include <arpa/inet.h>
#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "auth/jwks.h"

namespace vppd::auth {
namespace {

using namespace std::chrono_literals;

constexpr char kTenant[] = "11111111-2222-4333-8444-555555555555";
constexpr char kOtherTenant[] = "99999999-8888-4777-8666-555555555555";
constexpr Timestamp kStart = 1'800'000'000LL * 1'000'000;  // 2027-01-15, in microseconds.
constexpr std::int64_t kStartSeconds = kStart / 1'000'000;

std::string TempDir() {
  std::string templ = (std::filesystem::temp_directory_path() / "vppd-auth-XXXXXX").string();
  const char* dir = ::mkdtemp(templ.data());
  EXPECT_NE(dir, nullptr);
  return templ;
}

std::string Json(const boost::json::value& v) { return boost::json::serialize(v); }
std::string Str(const boost::json::value& v) { return std::string(v.as_string()); }

// A test-owned RSA key that can sign anything, so the verifier's claim checks can be
// exercised with tokens whose signature is good.
class Signer {
 public:
  explicit Signer(std::string kid = {})
      : key_(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048))) {
    parts_ = *internal::RsaComponentsOf(key_.get());
    kid_ = kid.empty() ? internal::JwkThumbprint(parts_) : kid;
  }
  const std::string& kid() const { return kid_; }
  boost::json::object Jwk() const {
    return {{"kty", "RSA"},
            {"use", "sig"},
            {"kid", kid_},
            {"n", Base64UrlEncode(parts_.n)},
            {"e", Base64UrlEncode(parts_.e)}};
  }
  std::string Jwks() const { return Json(boost::json::object{{"keys", boost::json::array{Jwk()}}}); }
  // The public key as PEM (what an attacker would use as an HMAC secret).
  std::string PublicPem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key_.get());
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(len));
    BIO_free(bio);
    return out;
  }
  std::string SignRaw(const std::string& header, const std::string& payload) const {
    const std::string input = Base64UrlEncode(header) + "." + Base64UrlEncode(payload);
    return input + "." + Base64UrlEncode(*internal::SignRs256(key_.get(), input));
  }
  std::string Sign(const boost::json::object& claims, const std::string& kid_override = {}) const {
    boost::json::object header{{"typ", "JWT"}, {"alg", "RS256"}, {"kid", kid_override.empty() ? kid_ : kid_override}};
    return SignRaw(Json(header), Json(claims));
  }

 private:
  internal::PkeyPtr key_;
  internal::RsaComponents parts_;
  std::string kid_;
};

boost::json::object Claims(const std::string& tid = kTenant) {
  return {{"aud", "https://graph.microsoft.com"},
          {"iss", "https://sts.windows.net/" + tid + "/"},
          {"tid", tid},
          {"oid", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"},
          {"appid", "12345678-1234-4234-8234-123456789012"},
          {"scp", "DeviceManagementServiceConfig.ReadWrite.All User.Read"},
          {"iat", kStartSeconds},
          {"nbf", kStartSeconds},
          {"exp", kStartSeconds + 3600}};
}

// Splits a JWT into its three segments.
std::vector<std::string> Segments(const std::string& token) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t dot; (dot = token.find('.', start)) != std::string::npos; start = dot + 1) {
    out.push_back(token.substr(start, dot - start));
  }
  out.push_back(token.substr(start));
  return out;
}

std::string Bearer(const std::string& token) { return "Bearer " + token; }

class AuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(TempDir());
    dev_ = new DevKey(*DevKey::LoadOrCreate(*dir_));
    a_ = new Signer();
    b_ = new Signer();
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
    delete dev_;
    delete a_;
    delete b_;
  }

  // A verifier trusting Entra's issuers with signer A's key set (and the dev key).
  Verifier Make(VerifierOptions options = {}) {
    options.clock = &clock_;
    if (options.issuers.empty()) {
      options.issuers = EntraIssuers(JwksSource::Json(a_->Jwks()));
      for (TrustedIssuer& t : DevIssuers(*dev_)) options.issuers.push_back(std::move(t));
    }
    Result<Verifier> v = Verifier::Create(std::move(options));
    EXPECT_TRUE(v.has_value()) << (v ? "" : v.error().message);
    return std::move(*v);
  }

  // Expects a validation failure with Graph's message and a reason containing `why_part`.
  void ExpectInvalid(const Verifier& v, const std::string& authorization, const std::string& why_part,
                     const char* message = kMessageInvalid) {
    std::string why;
    Result<Principal> caller = v.Verify(authorization, &why);
    ASSERT_FALSE(caller.has_value()) << "accepted; expected: " << why_part;
    EXPECT_EQ(caller.error().code, Code::kUnauthenticated);
    EXPECT_EQ(caller.error().message, message);
    EXPECT_TRUE(caller.error().graph_code.empty());  // The Graph code is graph/errors.cc's business.
    EXPECT_NE(why.find(why_part), std::string::npos) << "why: " << why;
  }

  Principal ExpectValid(const Verifier& v, const std::string& authorization) {
    std::string why;
    Result<Principal> caller = v.Verify(authorization, &why);
    EXPECT_TRUE(caller.has_value()) << why;
    return caller ? *caller : Principal{};
  }

  FakeClock clock_{kStart};
  static inline std::string* dir_ = nullptr;
  static inline DevKey* dev_ = nullptr;
  static inline Signer* a_ = nullptr;
  static inline Signer* b_ = nullptr;
};

// ---- the dev key ------------------------------------------------------------------

TEST_F(AuthTest, DevTokenRoundTrip) {
  Verifier v = Make();
  DevTokenRequest req;
  req.scopes = {"DeviceManagementServiceConfig.ReadWrite.All", "User.Read"};
  Result<std::string> token = dev_->Sign(req, clock_);
  ASSERT_TRUE(token.has_value());
  Principal c = ExpectValid(v, Bearer(*token));
  EXPECT_EQ(c.tenant_id, kDevTenantId);
  EXPECT_EQ(c.object_id, kDevObjectId);
  EXPECT_EQ(c.app_id, kDevAppId);
  EXPECT_EQ(c.scopes, (std::vector<std::string>{"DeviceManagementServiceConfig.ReadWrite.All", "User.Read"}));
  EXPECT_TRUE(c.roles.empty());
  EXPECT_FALSE(c.app_only);
  EXPECT_FALSE(c.personal_account);

  auto header = boost::json::parse(*Base64UrlDecode(Segments(*token)[0])).as_object();
  EXPECT_EQ(Str(header.at("alg")), "RS256");
  EXPECT_EQ(Str(header.at("kid")), dev_->kid());
}

TEST_F(AuthTest, DevTokenAppOnlyPersonalAndV2) {
  Verifier v = Make();
  DevTokenRequest app;
  app.roles = {"DeviceManagementServiceConfig.ReadWrite.All"};
  app.tenant_id = kTenant;
  Principal c = ExpectValid(v, Bearer(*dev_->Sign(app, clock_)));
  EXPECT_TRUE(c.app_only);
  EXPECT_EQ(c.tenant_id, kTenant);
  EXPECT_EQ(c.roles, app.roles);
  EXPECT_TRUE(c.scopes.empty());

  DevTokenRequest msa;
  msa.scopes = {"User.Read"};
  msa.personal_account = true;
  c = ExpectValid(v, Bearer(*dev_->Sign(msa, clock_)));
  EXPECT_TRUE(c.personal_account);
  EXPECT_EQ(c.tenant_id, kPersonalAccountTenantId);

  DevTokenRequest v2;
  v2.scopes = {"User.Read"};
  v2.v2 = true;
  v2.app_id = "abcdefab-cdef-4abc-8def-abcdefabcdef";
  v2.audience = kGraphAppId;
  c = ExpectValid(v, Bearer(*dev_->Sign(v2, clock_)));
  EXPECT_EQ(c.app_id, v2.app_id);  // From azp.
}

TEST_F(AuthTest, DevTokenNegativeTtlIsExpired) {
  Verifier v = Make();
  DevTokenRequest req;
  req.scopes = {"User.Read"};
  req.ttl = -3600s;
  ExpectInvalid(v, Bearer(*dev_->Sign(req, clock_)), "expired", kMessageExpired);
}

TEST_F(AuthTest, DevTokenRejectsBadRequests) {
  DevTokenRequest req;
  req.tenant_id = "not-a-guid";
  EXPECT_EQ(dev_->Sign(req, clock_).error().code, Code::kInvalidArgument);
  req.tenant_id = kTenant;
  req.scopes = {"two words"};
  EXPECT_EQ(dev_->Sign(req, clock_).error().code, Code::kInvalidArgument);
}

TEST_F(AuthTest, DevKeyFileIsPrivateAndReloadsWithSameKid) {
  const std::string dir = TempDir() + "/nested/data";
  Result<DevKey> first = DevKey::LoadOrCreate(dir);
  ASSERT_TRUE(first.has_value()) << first.error().message;
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/" + DevKey::kFileName).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Result<DevKey> again = DevKey::LoadOrCreate(dir);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(first->kid(), again->kid());
  EXPECT_EQ(first->JwksJson(), again->JwksJson());
  EXPECT_NE(first->kid(), dev_->kid());
  // A token from the reloaded key verifies against the first key's JWKS.
  VerifierOptions options;
  options.clock = &clock_;
  options.issuers = DevIssuers(*first);
  Result<Verifier> v = Verifier::Create(std::move(options));
  ASSERT_TRUE(v.has_value());
  EXPECT_TRUE(v->Verify(Bearer(*again->Sign({}, clock_))).has_value());
  std::filesystem::remove_all(std::filesystem::path(dir).parent_path().parent_path());
}

TEST_F(AuthTest, DevKeyJwksShape) {
  auto jwks = boost::json::parse(dev_->JwksJson()).as_object();
  const auto& key = jwks.at("keys").as_array().at(0).as_object();
  EXPECT_EQ(Str(key.at("kty")), "RSA");
  EXPECT_EQ(Str(key.at("use")), "sig");
  EXPECT_EQ(Str(key.at("alg")), "RS256");
  EXPECT_EQ(Str(key.at("kid")), dev_->kid());
  EXPECT_EQ(Str(key.at("e")), "AQAB");
  EXPECT_EQ(Base64UrlDecode(Str(key.at("n")))->size(), 256u);
  EXPECT_EQ(dev_->JwksJson().find("\"d\""), std::string::npos);  // No private part.
}

TEST_F(AuthTest, DevKeyConcurrentFirstUseAgrees) {
  const std::string dir = TempDir();
  std::string kids[4];
  std::vector<std::thread> threads;
  for (auto& kid : kids) {
    threads.emplace_back([&] { kid = DevKey::LoadOrCreate(dir)->kid(); });
  }
  for (auto& t : threads) t.join();
  for (const auto& kid : kids) EXPECT_EQ(kid, kids[0]);
  // No temp files left behind.
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1);
  std::filesystem::remove_all(dir);
}

TEST_F(AuthTest, DevKeyRejectsCorruptFile) {
  const std::string dir = TempDir();
  std::ofstream(dir + "/" + DevKey::kFileName) << "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n";
  Result<DevKey> key = DevKey::LoadOrCreate(dir);
  ASSERT_FALSE(key.has_value());
  EXPECT_EQ(key.error().code, Code::kFailedPrecondition);
  std::filesystem::remove_all(dir);
}

// ---- the Authorization header -------------------------------------------------------

TEST_F(AuthTest, SchemeIsCaseInsensitiveAndEmptyIsEmpty) {
  Verifier v = Make();
  const std::string token = a_->Sign(Claims());
  ExpectValid(v, "bearer " + token);
  ExpectValid(v, "BEARER \t " + token + "  ");
  ExpectInvalid(v, "", "no Authorization", kMessageEmpty);
  ExpectInvalid(v, "   ", "no Authorization", kMessageEmpty);
  ExpectInvalid(v, "Bearer", "without a token", kMessageEmpty);
  ExpectInvalid(v, "Bearer   ", "without a token", kMessageEmpty);
  ExpectInvalid(v, "Basic " + token, "not Bearer");
  ExpectInvalid(v, token, "not Bearer");
  ExpectInvalid(v, "Bearerx " + token, "not Bearer");
}

// ---- forged and malformed tokens ----------------------------------------------------

TEST_F(AuthTest, SignatureByteFlipped) {
  Verifier v = Make();
  std::vector<std::string> s = Segments(a_->Sign(Claims()));
  std::string sig = *Base64UrlDecode(s[2]);
  sig[100] ^= 0x01;
  ExpectInvalid(v, Bearer(s[0] + "." + s[1] + "." + Base64UrlEncode(sig)), "signature does not verify");
}

TEST_F(AuthTest, PayloadChangedAfterSigning) {
  Verifier v = Make();
  std::vector<std::string> s = Segments(a_->Sign(Claims()));
  boost::json::object claims = Claims();
  claims["roles"] = boost::json::array{"DeviceManagementServiceConfig.ReadWrite.All"};
  ExpectInvalid(v, Bearer(s[0] + "." + Base64UrlEncode(Json(claims)) + "." + s[2]), "signature does not verify");
  claims = Claims(kOtherTenant);
  ExpectInvalid(v, Bearer(s[0] + "." + Base64UrlEncode(Json(claims)) + "." + s[2]), "signature does not verify");
}

TEST_F(AuthTest, AlgNoneAndOtherAlgorithmsRejected) {
  Verifier v = Make();
  const std::string payload = Base64UrlEncode(Json(Claims()));
  const std::string good_sig = Segments(a_->Sign(Claims()))[2];
  for (const char* alg : {"none", "None", "HS256", "HS384", "HS512", "RS384", "RS512", "ES256", "PS256", "rs256"}) {
    const std::string header = Base64UrlEncode(Json({{"alg", alg}, {"kid", a_->kid()}, {"typ", "JWT"}}));
    ExpectInvalid(v, Bearer(header + "." + payload + "."), "is not RS256");
    ExpectInvalid(v, Bearer(header + "." + payload + "." + good_sig), "is not RS256");
  }
  const std::string no_alg = Base64UrlEncode(Json({{"kid", a_->kid()}}));
  ExpectInvalid(v, Bearer(no_alg + "." + payload + "." + good_sig), "no alg");
  const std::string numeric_alg = Base64UrlEncode(Json({{"alg", 256}, {"kid", a_->kid()}}));
  ExpectInvalid(v, Bearer(numeric_alg + "." + payload + "." + good_sig), "no alg");
  EXPECT_EQ(v.signature_checks(), 0u);
}

TEST_F(AuthTest, Hs256SignedWithThePublicKeyIsRejected) {
  // The classic alg-confusion attack: a verifier that lets the header pick the
  // algorithm would HMAC-verify with the RSA public key bytes as the secret.
  Verifier v = Make();
  const std::string input = Base64UrlEncode(Json({{"alg", "HS256"}, {"kid", a_->kid()}, {"typ", "JWT"}})) + "." +
                            Base64UrlEncode(Json(Claims()));
  for (const std::string& secret : {a_->PublicPem(), a_->Jwks()}) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_len);
    const std::string sig(reinterpret_cast<char*>(mac), mac_len);
    ExpectInvalid(v, Bearer(input + "." + Base64UrlEncode(sig)), "is not RS256");
  }
}

TEST_F(AuthTest, CritHeaderRejectedEvenWhenSigned) {
  Verifier v = Make();
  const std::string token =
      a_->SignRaw(Json({{"alg", "RS256"}, {"kid", a_->kid()}, {"crit", {"exp"}}}), Json(Claims()));
  ExpectInvalid(v, Bearer(token), "crit");
}

TEST_F(AuthTest, UnknownOrMissingKid) {
  Verifier v = Make();
  // Signed by A but naming a kid nobody publishes: the header is what was signed.
  ExpectInvalid(v, Bearer(a_->Sign(Claims(), "no-such-kid")), "kid \"no-such-kid\"");
  // Signed by B, whose key is not trusted at all.
  ExpectInvalid(v, Bearer(b_->Sign(Claims())), "is in no key set");
  // A's kid on B's signature: the key is found, the signature fails.
  ExpectInvalid(v, Bearer(b_->Sign(Claims(), a_->kid())), "signature does not verify");
  ExpectInvalid(v, Bearer(a_->SignRaw(Json({{"alg", "RS256"}}), Json(Claims()))), "no kid");
  ExpectInvalid(v, Bearer(a_->SignRaw(Json({{"alg", "RS256"}, {"kid", ""}}), Json(Claims()))), "no kid");
}

TEST_F(AuthTest, ExpiryNotBeforeAndLeeway) {
  Verifier v = Make();  // Leeway 60 s.
  auto with = [](std::int64_t nbf, std::int64_t exp) {
    boost::json::object c = Claims();
    c["nbf"] = kStartSeconds + nbf;
    c["exp"] = kStartSeconds + exp;
    return c;
  };
  ExpectInvalid(v, Bearer(a_->Sign(with(-7200, -120))), "expired", kMessageExpired);
  ExpectInvalid(v, Bearer(a_->Sign(with(-7200, -60))), "expired", kMessageExpired);  // exp + leeway == now.
  ExpectValid(v, Bearer(a_->Sign(with(-7200, -59))));
  ExpectValid(v, Bearer(a_->Sign(with(-7200, -30))));
  ExpectInvalid(v, Bearer(a_->Sign(with(120, 3600))), "not yet valid", kMessageExpired);
  ExpectInvalid(v, Bearer(a_->Sign(with(61, 3600))), "not yet valid", kMessageExpired);
  ExpectValid(v, Bearer(a_->Sign(with(60, 3600))));
  ExpectValid(v, Bearer(a_->Sign(with(30, 3600))));
  // Fractional NumericDates are allowed; nbf is optional.
  boost::json::object c = Claims();
  c.erase("nbf");
  c["exp"] = static_cast<double>(kStartSeconds) + 10.5;
  ExpectValid(v, Bearer(a_->Sign(c)));

  VerifierOptions strict;
  strict.leeway = 0s;
  Verifier no_leeway = Make(std::move(strict));
  ExpectInvalid(no_leeway, Bearer(a_->Sign(with(-7200, -30))), "expired", kMessageExpired);
}

TEST_F(AuthTest, ExpiredForgeryIsNotCalledExpired) {
  // "Expired" is only said of tokens whose signature is good.
  Verifier v = Make();
  boost::json::object c = Claims();
  c["exp"] = kStartSeconds - 7200;
  ExpectInvalid(v, Bearer(b_->Sign(c, a_->kid())), "signature does not verify");
}

TEST_F(AuthTest, TimeClaimsMustBeNumericDates) {
  Verifier v = Make();
  for (const auto& bad : {boost::json::value("1800003600"), boost::json::value(-5), boost::json::value(1e300),
                          boost::json::value(nullptr)}) {
    boost::json::object c = Claims();
    c["exp"] = bad;
    ExpectInvalid(v, Bearer(a_->Sign(c)), "exp is missing");
    c = Claims();
    c["nbf"] = bad;
    ExpectInvalid(v, Bearer(a_->Sign(c)), "nbf is not");
  }
  boost::json::object c = Claims();
  c.erase("exp");
  ExpectInvalid(v, Bearer(a_->Sign(c)), "exp is missing");
}

TEST_F(AuthTest, Audience) {
  Verifier v = Make();
  boost::json::object c = Claims();
  c["aud"] = "https://management.azure.com";
  ExpectInvalid(v, Bearer(a_->Sign(c)), "aud");
  c["aud"] = "https://graph.microsoft.com/";  // Close is not equal.
  ExpectInvalid(v, Bearer(a_->Sign(c)), "aud");
  c.erase("aud");
  ExpectInvalid(v, Bearer(a_->Sign(c)), "aud");
  c["aud"] = boost::json::array{"https://management.azure.com", kGraphAppId};
  ExpectValid(v, Bearer(a_->Sign(c)));
  c["aud"] = boost::json::array{};
  ExpectInvalid(v, Bearer(a_->Sign(c)), "aud");
  c["aud"] = kGraphAppId;
  ExpectValid(v, Bearer(a_->Sign(c)));
}

TEST_F(AuthTest, IssuerMustBeTrustedForTheTokensOwnTenant) {
  Verifier v = Make();
  boost::json::object c = Claims();
  c["iss"] = "https://evil.example/" + std::string(kTenant) + "/";
  ExpectInvalid(v, Bearer(a_->Sign(c)), "not a trusted issuer");
  c["iss"] = "https://sts.windows.net/" + std::string(kOtherTenant) + "/";  // Another tenant than tid.
  ExpectInvalid(v, Bearer(a_->Sign(c)), "not a trusted issuer");
  c["iss"] = "https://sts.windows.net/" + std::string(kTenant);  // No trailing slash.
  ExpectInvalid(v, Bearer(a_->Sign(c)), "not a trusted issuer");
  c.erase("iss");
  ExpectInvalid(v, Bearer(a_->Sign(c)), "iss is missing");
  c["iss"] = "https://login.microsoftonline.com/" + std::string(kTenant) + "/v2.0";
  ExpectValid(v, Bearer(a_->Sign(c)));
}

TEST_F(AuthTest, IssuerKeysAreNotSharedBetweenIssuers) {
  // A trusts only the v1 issuer with A's keys and v2 with B's: A's key cannot sign v2 tokens.
  VerifierOptions options;
  options.issuers = {{"https://sts.windows.net/{tenantid}/", JwksSource::Json(a_->Jwks())},
                     {"https://login.microsoftonline.com/{tenantid}/v2.0", JwksSource::Json(b_->Jwks())}};
  Verifier v = Make(std::move(options));
  boost::json::object c = Claims();
  ExpectValid(v, Bearer(a_->Sign(c)));
  ExpectInvalid(v, Bearer(b_->Sign(c)), "is in no key set");
  c["iss"] = "https://login.microsoftonline.com/" + std::string(kTenant) + "/v2.0";
  ExpectValid(v, Bearer(b_->Sign(c)));
  ExpectInvalid(v, Bearer(a_->Sign(c)), "is in no key set");
}

TEST_F(AuthTest, TenantMustBeAGuid) {
  Verifier v = Make();
  boost::json::object c = Claims();
  c["tid"] = "contoso.onmicrosoft.com";
  c["iss"] = "https://sts.windows.net/contoso.onmicrosoft.com/";
  ExpectInvalid(v, Bearer(a_->Sign(c)), "tid");
  c.erase("tid");
  ExpectInvalid(v, Bearer(a_->Sign(c)), "tid");
  c = Claims();
  c["tid"] = 7;
  ExpectInvalid(v, Bearer(a_->Sign(c)), "tid");
}

TEST_F(AuthTest, MalformedTokens) {
  Verifier v = Make();
  const std::string token = a_->Sign(Claims());
  std::vector<std::string> s = Segments(token);
  ExpectInvalid(v, Bearer(token.substr(0, token.size() - 20)), "signature does not verify");  // Truncated.
  ExpectInvalid(v, Bearer(s[0] + "." + s[1]), "three segments");
  ExpectInvalid(v, Bearer(s[0] + "." + s[1] + "." + s[2] + "." + s[2]), "three segments");
  ExpectInvalid(v, Bearer(s[0]), "three segments");
  ExpectInvalid(v, Bearer(".."), "header");
  ExpectInvalid(v, Bearer("%%%." + s[1] + "." + s[2]), "header");
  ExpectInvalid(v, Bearer(s[0] + ".*garbage*." + s[2]), "payload");
  ExpectInvalid(v, Bearer(s[0] + "." + s[1] + ".!!!"), "signature is not base64url");
  ExpectInvalid(v, Bearer(s[0] + "=." + s[1] + "." + s[2]), "header");  // Padding is not base64url.
  ExpectInvalid(v, Bearer(Base64UrlEncode("{\"alg\":") + "." + s[1] + "." + s[2]), "header");  // Not JSON.
  ExpectInvalid(v, Bearer(Base64UrlEncode("[\"RS256\"]") + "." + s[1] + "." + s[2]), "header");
  // A JSON array payload, correctly signed.
  ExpectInvalid(v, Bearer(a_->SignRaw(Json({{"alg", "RS256"}, {"kid", a_->kid()}}), "[1,2,3]")), "payload");
  ExpectInvalid(v, Bearer(a_->SignRaw(Json({{"alg", "RS256"}, {"kid", a_->kid()}}), "\"text\"")), "payload");
}

TEST_F(AuthTest, OversizedTokenRejectedBeforeAnyWork) {
  Verifier v = Make();
  boost::json::object c = Claims();
  c["padding"] = std::string(20 * 1024, 'x');
  const std::string token = a_->Sign(c);
  ASSERT_GT(token.size(), 20u * 1024);
  ExpectInvalid(v, Bearer(token), "over 16 KiB");
  EXPECT_EQ(v.signature_checks(), 0u);
  // Just under the limit is fine.
  c["padding"] = std::string(11 * 1024, 'x');
  const std::string big = a_->Sign(c);
  ASSERT_LT(big.size(), kMaxTokenBytes);
  ExpectValid(v, Bearer(big));
}

TEST_F(AuthTest, ClaimTypesAreChecked) {
  Verifier v = Make();
  for (const char* claim : {"oid", "appid", "azp", "scp"}) {
    boost::json::object c = Claims();
    c[claim] = 42;
    ExpectInvalid(v, Bearer(a_->Sign(c)), std::string(claim) + " is not a string");
  }
  boost::json::object c = Claims();
  c["roles"] = boost::json::object{{"a", "b"}};
  ExpectInvalid(v, Bearer(a_->Sign(c)), "roles is not a string or an array of strings");
  c["roles"] = boost::json::array{"ok", 1};
  ExpectInvalid(v, Bearer(a_->Sign(c)), "roles is not a string or an array of strings");
  c["roles"] = "DeviceManagementApps.ReadWrite.All Other";  // A string is a space-separated list.
  EXPECT_EQ(ExpectValid(v, Bearer(a_->Sign(c))).roles,
            (std::vector<std::string>{"DeviceManagementApps.ReadWrite.All", "Other"}));
  c = Claims();
  c["scp"] = boost::json::array{"DeviceManagementServiceConfig.ReadWrite.All"};  // Okta-style array.
  EXPECT_EQ(ExpectValid(v, Bearer(a_->Sign(c))).scopes,
            (std::vector<std::string>{"DeviceManagementServiceConfig.ReadWrite.All"}));
}

TEST_F(AuthTest, AppOnlyAndPersonalParsing) {
  Verifier v = Make();
  boost::json::object app = Claims();
  app.erase("scp");
  app["roles"] =
      boost::json::array{"DeviceManagementApps.ReadWrite.All", "DeviceManagementServiceConfig.ReadWrite.All"};
  Principal c = ExpectValid(v, Bearer(a_->Sign(app)));
  EXPECT_TRUE(c.app_only);
  EXPECT_TRUE(c.scopes.empty());
  EXPECT_EQ(c.roles.size(), 2u);
  EXPECT_EQ(c.roles[1], "DeviceManagementServiceConfig.ReadWrite.All");
  EXPECT_EQ(c.app_id, "12345678-1234-4234-8234-123456789012");

  boost::json::object both = Claims();  // Delegated token that also carries roles: not app-only.
  both["roles"] = boost::json::array{"Admin"};
  c = ExpectValid(v, Bearer(a_->Sign(both)));
  EXPECT_FALSE(c.app_only);
  EXPECT_EQ(c.scopes, (std::vector<std::string>{"DeviceManagementServiceConfig.ReadWrite.All", "User.Read"}));

  boost::json::object msa = Claims(kPersonalAccountTenantId);
  msa.erase("oid");
  msa["scp"] = "  User.Read   Files.Read ";
  c = ExpectValid(v, Bearer(a_->Sign(msa)));
  EXPECT_TRUE(c.personal_account);
  EXPECT_FALSE(c.app_only);
  EXPECT_TRUE(c.object_id.empty());
  EXPECT_EQ(c.scopes, (std::vector<std::string>{"User.Read", "Files.Read"}));

  boost::json::object v2 = Claims();  // v2 tokens name the client in azp.
  v2.erase("appid");
  v2["azp"] = "abcdefab-cdef-4abc-8def-abcdefabcdef";
  v2["iss"] = "https://login.microsoftonline.com/" + std::string(kTenant) + "/v2.0";
  EXPECT_EQ(ExpectValid(v, Bearer(a_->Sign(v2))).app_id, "abcdefab-cdef-4abc-8def-abcdefabcdef");
}

// ---- JWKS sources -------------------------------------------------------------------

TEST_F(AuthTest, JwksFileWithTwoKeys) {
  const std::string dir = TempDir();
  const std::string path = dir + "/jwks.json";
  boost::json::object ec_key{{"kty", "EC"}, {"crv", "P-256"}, {"kid", "ec"}, {"x", "AA"}, {"y", "AA"}};
  boost::json::object enc_key = b_->Jwk();
  enc_key["use"] = "enc";
  enc_key["kid"] = "encryption";
  std::ofstream(path) << Json(boost::json::object{{"keys", {ec_key, a_->Jwk(), enc_key, b_->Jwk()}}});
  VerifierOptions options;
  options.issuers = EntraIssuers(JwksSource::File(path));
  Verifier v = Make(std::move(options));
  ExpectValid(v, Bearer(a_->Sign(Claims())));
  ExpectValid(v, Bearer(b_->Sign(Claims())));
  ExpectInvalid(v, Bearer(b_->Sign(Claims(), "encryption")), "is in no key set");  // use=enc skipped.
  ExpectInvalid(v, Bearer(dev_->Sign({}, clock_).value()), "is in no key set");
  EXPECT_EQ(v.jwks_fetches(), 1u);  // Both issuers share one key set.
  std::filesystem::remove_all(dir);
}

TEST_F(AuthTest, BadJsonOrFileSourceFailsCreate) {
  const std::string dir = TempDir();
  auto create = [&](JwksSource source) {
    VerifierOptions options;
    options.issuers = EntraIssuers(std::move(source));
    return Verifier::Create(std::move(options));
  };
  EXPECT_FALSE(create(JwksSource::File(dir + "/missing.json")).has_value());
  EXPECT_FALSE(create(JwksSource::Json("not json")).has_value());
  EXPECT_FALSE(create(JwksSource::Json("{\"keys\":[]}")).has_value());
  EXPECT_FALSE(create(JwksSource::Json("[]")).has_value());
  boost::json::object small{
      {"kty", "RSA"}, {"kid", "k"}, {"n", Base64UrlEncode(std::string(128, '\xff'))}, {"e", "AQAB"}};
  Result<Verifier> v = create(JwksSource::Json(Json(boost::json::object{{"keys", {small}}})));
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code, Code::kInvalidArgument);
  EXPECT_NE(v.error().message.find("no usable RS256 key"), std::string::npos) << v.error().message;
  std::filesystem::remove_all(dir);
}

TEST_F(AuthTest, CreateValidatesOptions) {
  VerifierOptions none;
  EXPECT_EQ(Verifier::Create(std::move(none)).error().code, Code::kInvalidArgument);
  VerifierOptions empty_issuer;
  empty_issuer.issuers = {{"", JwksSource::Json(a_->Jwks())}};
  EXPECT_FALSE(Verifier::Create(std::move(empty_issuer)).has_value());
  VerifierOptions bad_fixed_tenant;
  bad_fixed_tenant.issuers = {{"https://idp.example", JwksSource::Json(a_->Jwks()), {.fixed_tenant = "contoso"}}};
  EXPECT_FALSE(Verifier::Create(std::move(bad_fixed_tenant)).has_value());
  VerifierOptions empty_claim;
  empty_claim.issuers = {{"https://idp.example", JwksSource::Json(a_->Jwks()), {.scopes = ""}}};
  EXPECT_FALSE(Verifier::Create(std::move(empty_claim)).has_value());
  VerifierOptions twice;
  twice.issuers = {{"https://x/{tenantid}/{tenantid}", JwksSource::Json(a_->Jwks())}};
  EXPECT_FALSE(Verifier::Create(std::move(twice)).has_value());
  VerifierOptions no_audience;
  no_audience.audiences.clear();
  no_audience.issuers = EntraIssuers(JwksSource::Json(a_->Jwks()));
  EXPECT_FALSE(Verifier::Create(std::move(no_audience)).has_value());
  VerifierOptions negative;
  negative.leeway = -1s;
  negative.issuers = EntraIssuers(JwksSource::Json(a_->Jwks()));
  EXPECT_FALSE(Verifier::Create(std::move(negative)).has_value());
}

// A fetcher the test controls: counts calls, serves `jwks` or fails.
struct FakeJwks {
  std::mutex mu;
  std::string jwks;
  bool fail = false;
  std::atomic<int> calls{0};
  JwksSource Source(const std::string& name) {
    return JwksSource::Custom(name, [this]() -> Result<std::string> {
      ++calls;
      std::lock_guard<std::mutex> lock(mu);
      if (fail) return Fail(Error::Unavailable("simulated outage"));
      return jwks;
    });
  }
};

TEST_F(AuthTest, UnknownKidRefetchesAtMostOncePerInterval) {
  FakeJwks fake;
  fake.jwks = a_->Jwks();
  VerifierOptions options;
  options.issuers = EntraIssuers(fake.Source("idp"));
  Verifier v = Make(std::move(options));
  EXPECT_EQ(fake.calls, 1);  // Loaded at creation, once for both issuers.
  ExpectValid(v, Bearer(a_->Sign(Claims())));
  EXPECT_EQ(fake.calls, 1);

  // Within a minute of the load at creation, an unknown kid does not refetch.
  ExpectInvalid(v, Bearer(b_->Sign(Claims())), "is in no key set");
  EXPECT_EQ(fake.calls, 1);
  clock_.Advance(60s);

  // Key rotation not yet published: B's kid is unknown; one refetch, then none for a minute.
  ExpectInvalid(v, Bearer(b_->Sign(Claims())), "is in no key set");
  v.WaitForKeyFetches();
  EXPECT_EQ(fake.calls, 2);
  ExpectInvalid(v, Bearer(b_->Sign(Claims())), "is in no key set");
  clock_.Advance(59s);
  ExpectInvalid(v, Bearer(b_->Sign(Claims())), "is in no key set");
  EXPECT_EQ(fake.calls, 2);

  // Now published: after the interval, the unknown kid triggers a fetch that finds it.
  {
    std::lock_guard<std::mutex> lock(fake.mu);
    fake.jwks = Json(boost::json::object{{"keys", {a_->Jwk(), b_->Jwk()}}});
  }
  clock_.Advance(1s);
  boost::json::object c = Claims();
  c["exp"] = kStartSeconds + 7200;
  c["nbf"] = kStartSeconds + 120;
  // The request that shows the new kid is answered from the cached set (no wait for
  // the fetch); the fetch it queued lets the retry through.
  ExpectInvalid(v, Bearer(b_->Sign(c)), "is in no key set");
  v.WaitForKeyFetches();
  ExpectValid(v, Bearer(b_->Sign(c)));
  EXPECT_EQ(fake.calls, 3);
  EXPECT_EQ(v.jwks_fetches(), 3u);  // Successful fetches: creation, the refetch without B, the one with B.

  // An outage: the fetch fails, the last good set stays in use.
  {
    std::lock_guard<std::mutex> lock(fake.mu);
    fake.fail = true;
  }
  clock_.Advance(61s);
  ExpectInvalid(v, Bearer(a_->Sign(c, "rotated-away")), "is in no key set");
  v.WaitForKeyFetches();
  EXPECT_EQ(fake.calls, 4);
  ExpectValid(v, Bearer(a_->Sign(c)));
  ExpectValid(v, Bearer(b_->Sign(Claims(kOtherTenant))));
  EXPECT_EQ(fake.calls, 4);
}

TEST_F(AuthTest, UnreachableSourceAtStartIsRetriedLater) {
  FakeJwks fake;
  fake.fail = true;
  VerifierOptions options;
  options.issuers = EntraIssuers(fake.Source("down"));
  Verifier v = Make(std::move(options));  // Does not fail: the IdP may come back.
  EXPECT_EQ(fake.calls, 1);
  ExpectInvalid(v, Bearer(a_->Sign(Claims())), "is in no key set");
  EXPECT_EQ(fake.calls, 1);  // Rate-limited: the failed attempt at creation counts.
  {
    std::lock_guard<std::mutex> lock(fake.mu);
    fake.fail = false;
    fake.jwks = a_->Jwks();
  }
  clock_.Advance(60s);
  ExpectInvalid(v, Bearer(a_->Sign(Claims())), "is in no key set");
  v.WaitForKeyFetches();
  ExpectValid(v, Bearer(a_->Sign(Claims())));
  EXPECT_EQ(fake.calls, 2);
}

TEST_F(AuthTest, OldKeySetIsRefreshedAfterMaxAge) {
  FakeJwks fake;
  fake.jwks = a_->Jwks();
  VerifierOptions options;
  options.issuers = EntraIssuers(fake.Source("aging"));
  options.jwks_max_age = 3600s;
  options.cache_entries = 0;
  Verifier v = Make(std::move(options));
  boost::json::object c = Claims();
  c["exp"] = kStartSeconds + 4 * 3600;
  const std::string token = a_->Sign(c);
  ExpectValid(v, Bearer(token));
  EXPECT_EQ(fake.calls, 1);
  {
    std::lock_guard<std::mutex> lock(fake.mu);
    fake.jwks = b_->Jwks();  // A's key was revoked.
  }
  clock_.Advance(3600s);
  // The first lookup after max_age queues the refresh and is answered from the old
  // set or the new one, whichever is in at that instant; after the refresh, A is gone.
  (void)v.Verify(Bearer(token));
  v.WaitForKeyFetches();
  ExpectInvalid(v, Bearer(token), "is in no key set");
  EXPECT_EQ(fake.calls, 2);
}

TEST_F(AuthTest, SlowAgeRefreshDoesNotStallKnownKeys) {
  std::mutex mu;
  std::condition_variable cv;
  bool slow = false, entered = false, released = false;
  VerifierOptions options;
  options.issuers = EntraIssuers(JwksSource::Custom("slow", [&]() -> Result<std::string> {
    std::unique_lock<std::mutex> lock(mu);
    if (slow) {
      entered = true;
      cv.notify_all();
      cv.wait(lock, [&] { return released; });
    }
    return a_->Jwks();
  }));
  options.jwks_max_age = 3600s;
  options.cache_entries = 0;
  Verifier v = Make(std::move(options));
  boost::json::object c = Claims();
  c["exp"] = kStartSeconds + 4 * 3600;
  const std::string token = Bearer(a_->Sign(c));
  clock_.Advance(3600s);  // The set is now stale.
  {
    std::lock_guard<std::mutex> lock(mu);
    slow = true;
  }
  std::thread refresher([&] { EXPECT_TRUE(v.Verify(token).has_value()); });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return entered; });
  }
  // The refresher is stuck in the fetch; this request still verifies with the old set.
  ExpectValid(v, token);
  {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
  }
  cv.notify_all();
  refresher.join();
  v.WaitForKeyFetches();
  EXPECT_EQ(v.jwks_fetches(), 2u);
}

// A JWKS endpoint that hangs (the fetch is held until the test releases it) costs a
// request nothing: unknown kids are refused at once while the one refetch hangs,
// known kids verify, a flood queues no second fetch, and the new key is picked up
// once the fetch completes.
TEST_F(AuthTest, HungJwksFetchNeverStallsVerify) {
  std::mutex mu;
  std::condition_variable cv;
  bool slow = false, entered = false, released = false;
  std::string jwks = a_->Jwks();
  std::atomic<int> calls{0};
  VerifierOptions options;
  options.issuers = EntraIssuers(JwksSource::Custom("hung", [&]() -> Result<std::string> {
    ++calls;
    std::unique_lock<std::mutex> lock(mu);
    if (slow) {
      entered = true;
      cv.notify_all();
      cv.wait(lock, [&] { return released; });
    }
    return jwks;
  }));
  options.cache_entries = 0;
  Verifier v = Make(std::move(options));
  auto release = [&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      released = true;
    }
    cv.notify_all();
  };
  // Verify on another thread, so that a Verify that waits for the fetch fails the
  // test instead of hanging it.
  auto verify_promptly = [&](const std::string& authorization) {
    auto result = std::async(std::launch::async, [&v, authorization] { return v.Verify(authorization); });
    if (result.wait_for(5s) != std::future_status::ready) {
      ADD_FAILURE() << "Verify waited for the JWKS fetch";
      release();
    }
    return result.get();
  };
  {
    std::lock_guard<std::mutex> lock(mu);
    slow = true;
    jwks = Json(boost::json::object{{"keys", {a_->Jwk(), b_->Jwk()}}});  // B is published now.
  }
  clock_.Advance(60s);
  const std::string known = Bearer(a_->Sign(Claims()));
  const std::string rotated = Bearer(b_->Sign(Claims()));
  EXPECT_FALSE(verify_promptly(rotated).has_value());
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return entered; }));  // The refetch runs, and hangs.
  }
  for (int i = 0; i < 50; ++i) {
    EXPECT_FALSE(verify_promptly(Bearer(b_->Sign(Claims(), "flood-" + std::to_string(i)))).has_value());
    EXPECT_TRUE(verify_promptly(known).has_value());
  }
  EXPECT_EQ(calls, 2);  // Creation, and the one refetch in flight: the flood queued nothing.
  release();
  v.WaitForKeyFetches();
  EXPECT_TRUE(verify_promptly(rotated).has_value());
  // Rate-limited: within the interval, another unknown kid queues no fetch.
  clock_.Advance(59s);
  EXPECT_FALSE(verify_promptly(Bearer(b_->Sign(Claims(), "late"))).has_value());
  v.WaitForKeyFetches();
  EXPECT_EQ(calls, 2);
}

// A one-shot-per-connection HTTP server on 127.0.0.1 that answers every request
// with `status` and `body`.
class TinyHttpServer {
 public:
  TinyHttpServer(int status, std::string body) : status_(status), body_(std::move(body)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(fd_, 8);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TinyHttpServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/keys"; }
  int requests() const { return requests_; }

 private:
  void Serve() {
    while (!stop_) {
      const int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::read(conn, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<std::size_t>(n));
      }
      ++requests_;
      const std::string response = "HTTP/1.1 " + std::to_string(status_) +
                                   " X\r\nContent-Length: " + std::to_string(body_.size()) +
                                   "\r\nConnection: close\r\n\r\n" + body_;
      for (std::size_t done = 0; done < response.size();) {
        const ssize_t n = ::send(conn, response.data() + done, response.size() - done, MSG_NOSIGNAL);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
      }
      ::close(conn);
    }
  }
  int status_;
  std::string body_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

TEST_F(AuthTest, JwksFromUrl) {
  TinyHttpServer server(200, a_->Jwks());
  VerifierOptions options;
  options.issuers = EntraIssuers(JwksSource::Url(server.Url()));
  Verifier v = Make(std::move(options));
  ExpectValid(v, Bearer(a_->Sign(Claims())));
  EXPECT_EQ(server.requests(), 1);
  EXPECT_EQ(v.jwks_fetches(), 1u);
}

TEST_F(AuthTest, HttpGetFailures) {
  {
    TinyHttpServer server(404, "{}");
    Result<std::string> r = internal::HttpGet(server.Url());
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Code::kUnavailable);
    EXPECT_NE(r.error().message.find("HTTP 404"), std::string::npos) << r.error().message;
  }
  {
    TinyHttpServer server(200, std::string(internal::kMaxJwksBytes + 1, ' '));
    Result<std::string> r = internal::HttpGet(server.Url());
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("over 1 MiB"), std::string::npos) << r.error().message;
  }
  Result<std::string> refused = internal::HttpGet("http://127.0.0.1:1/keys");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kUnavailable);
  Result<std::string> scheme = internal::HttpGet("file:///etc/passwd");
  EXPECT_FALSE(scheme.has_value());
}

// ---- another OpenID Connect issuer (claims where Keycloak or Authentik put them) -------

constexpr char kForeignIssuer[] = "https://idp.example/realms/vppd";

// A Keycloak-shaped access token of kForeignIssuer: `scope`, realm roles, the tenant in
// a custom nested claim, no `tid`.
boost::json::object ForeignClaims() {
  return {{"aud", "api://vppd"},
          {"iss", kForeignIssuer},
          {"sub", "f:1234"},
          {"azp", "vppd-console"},
          {"scope", "openid DeviceManagementServiceConfig.ReadWrite.All"},
          {"realm_access", boost::json::object{{"roles", boost::json::array{"DeviceManagementApps.ReadWrite.All"}}}},
          {"org", boost::json::object{{"tenant", kTenant}}},
          {"iat", kStartSeconds},
          {"exp", kStartSeconds + 3600}};
}

ClaimNames KeycloakNames() { return {.scopes = "scope", .roles = "realm_access.roles", .tenant = "org.tenant"}; }

TEST_F(AuthTest, ForeignIssuerWithItsOwnClaims) {
  // Entra's issuers with A's keys, the foreign one with B's.
  VerifierOptions options;
  options.audiences = {"api://vppd"};
  options.issuers = EntraIssuers(JwksSource::Json(a_->Jwks()));
  options.issuers.push_back({kForeignIssuer, JwksSource::Json(b_->Jwks()), KeycloakNames()});
  Verifier v = Make(std::move(options));

  Principal c = ExpectValid(v, Bearer(b_->Sign(ForeignClaims())));
  EXPECT_EQ(c.tenant_id, kTenant);
  EXPECT_EQ(c.scopes, (std::vector<std::string>{"openid", "DeviceManagementServiceConfig.ReadWrite.All"}));
  EXPECT_EQ(c.roles, (std::vector<std::string>{"DeviceManagementApps.ReadWrite.All"}));
  EXPECT_EQ(c.app_id, "vppd-console");
  EXPECT_FALSE(c.app_only);

  // Each issuer's keys sign only its own tokens.
  ExpectInvalid(v, Bearer(a_->Sign(ForeignClaims())), "is in no key set");
  boost::json::object entra = Claims();
  entra["aud"] = "api://vppd";
  ExpectValid(v, Bearer(a_->Sign(entra)));
  ExpectInvalid(v, Bearer(b_->Sign(entra)), "is in no key set");

  // The issuer is compared exactly.
  boost::json::object f = ForeignClaims();
  f["iss"] = std::string(kForeignIssuer) + "/";
  ExpectInvalid(v, Bearer(b_->Sign(f)), "not a trusted issuer");
  f["iss"] = "https://idp.example/realms/other";
  ExpectInvalid(v, Bearer(b_->Sign(f)), "not a trusted issuer");

  // The tenant claim is the configured one: `tid` is not read for this issuer.
  f = ForeignClaims();
  f.erase("org");
  f["tid"] = kTenant;
  ExpectInvalid(v, Bearer(b_->Sign(f)), "org.tenant is missing or not a GUID");
  f["org"] = boost::json::object{{"tenant", "contoso"}};
  ExpectInvalid(v, Bearer(b_->Sign(f)), "org.tenant is missing or not a GUID");

  // Claims of the wrong shape are refused; absent ones are empty lists.
  f = ForeignClaims();
  f["scope"] = 7;
  ExpectInvalid(v, Bearer(b_->Sign(f)), "scope is not a string or an array of strings");
  f = ForeignClaims();
  f["realm_access"] = "DeviceManagementApps.ReadWrite.All";  // Not an object: no roles there.
  f.erase("scope");
  c = ExpectValid(v, Bearer(b_->Sign(f)));
  EXPECT_TRUE(c.roles.empty());
  EXPECT_TRUE(c.scopes.empty());
  EXPECT_FALSE(c.app_only);
}

TEST_F(AuthTest, ForeignIssuerAppOnlyAndNamespacedClaims) {
  // A namespaced claim holding dots is found as it is, before any path is tried.
  VerifierOptions options;
  options.audiences = {"api://vppd"};
  options.issuers = {{kForeignIssuer,
                      JwksSource::Json(b_->Jwks()),
                      {.scopes = "scope", .roles = "https://vppd.example/roles", .tenant = "org.tenant"}}};
  Verifier v = Make(std::move(options));
  boost::json::object f = ForeignClaims();
  f.erase("scope");
  f["https://vppd.example/roles"] = boost::json::array{"DeviceManagementServiceConfig.ReadWrite.All"};
  Principal c = ExpectValid(v, Bearer(b_->Sign(f)));
  EXPECT_TRUE(c.app_only);
  EXPECT_EQ(c.roles, (std::vector<std::string>{"DeviceManagementServiceConfig.ReadWrite.All"}));
}

TEST_F(AuthTest, ForeignIssuerWithAFixedTenant) {
  VerifierOptions options;
  options.audiences = {"api://vppd"};
  options.issuers = {{kForeignIssuer, JwksSource::Json(b_->Jwks()), {.scopes = "scope", .fixed_tenant = kOtherTenant}}};
  Verifier v = Make(std::move(options));
  boost::json::object f = ForeignClaims();
  f.erase("org");
  EXPECT_EQ(ExpectValid(v, Bearer(b_->Sign(f))).tenant_id, kOtherTenant);
  f["tid"] = kTenant;  // A tenant claim cannot move the caller to another tenant.
  EXPECT_EQ(ExpectValid(v, Bearer(b_->Sign(f))).tenant_id, kOtherTenant);
}

TEST_F(AuthTest, TheIssuerWhoseKeySignedSaysHowToReadTheToken) {
  // One `iss`, two key sets read differently: each token is read as its signer's issuer says.
  VerifierOptions options;
  options.audiences = {"api://vppd"};
  options.issuers = {{kForeignIssuer, JwksSource::Json(a_->Jwks()), {.scopes = "scope", .fixed_tenant = kTenant}},
                     {kForeignIssuer, JwksSource::Json(b_->Jwks()), {.scopes = "scp", .fixed_tenant = kOtherTenant}}};
  Verifier v = Make(std::move(options));
  boost::json::object f = ForeignClaims();
  f["scp"] = "DeviceManagementApps.Read.All";
  Principal by_a = ExpectValid(v, Bearer(a_->Sign(f)));
  EXPECT_EQ(by_a.tenant_id, kTenant);
  EXPECT_EQ(by_a.scopes, (std::vector<std::string>{"openid", "DeviceManagementServiceConfig.ReadWrite.All"}));
  Principal by_b = ExpectValid(v, Bearer(b_->Sign(f)));
  EXPECT_EQ(by_b.tenant_id, kOtherTenant);
  EXPECT_EQ(by_b.scopes, (std::vector<std::string>{"DeviceManagementApps.Read.All"}));
}

// A discovery document for `issuer` whose keys are at `jwks_uri`.
std::string Discovery(const std::string& issuer, const std::string& jwks_uri) {
  return Json(boost::json::object{{"issuer", issuer},
                                  {"jwks_uri", jwks_uri},
                                  {"authorization_endpoint", issuer + "/protocol/openid-connect/auth"},
                                  {"id_token_signing_alg_values_supported", boost::json::array{"RS256"}}});
}

TEST_F(AuthTest, DiscoveredIssuerVerifiesItsTokens) {
  TinyHttpServer keys(200, b_->Jwks());
  std::vector<std::string> asked;
  UrlFetcher get = [&](const std::string& url) -> Result<std::string> {
    asked.push_back(url);
    return Discovery(kForeignIssuer, keys.Url());
  };
  Result<TrustedIssuer> issuer = DiscoverIssuer(std::string(kForeignIssuer) + "/", KeycloakNames(), get);
  ASSERT_TRUE(issuer.has_value()) << issuer.error().message;
  EXPECT_EQ(asked, (std::vector<std::string>{std::string(kForeignIssuer) + "/.well-known/openid-configuration"}));
  EXPECT_EQ(issuer->issuer, kForeignIssuer);
  EXPECT_EQ(issuer->claims.roles, "realm_access.roles");

  VerifierOptions options;
  options.audiences = {"api://vppd"};
  options.issuers = {std::move(*issuer)};
  Verifier v = Make(std::move(options));
  EXPECT_EQ(ExpectValid(v, Bearer(b_->Sign(ForeignClaims()))).tenant_id, kTenant);
  ExpectInvalid(v, Bearer(a_->Sign(ForeignClaims())), "is in no key set");
  EXPECT_EQ(keys.requests(), 1);
}

TEST_F(AuthTest, DiscoveryOfEntraMultiTenantDocument) {
  // Entra's "common" document names its issuer with {tenantid}; that is the pattern trusted.
  UrlFetcher get = [](const std::string&) -> Result<std::string> {
    return Discovery("https://login.microsoftonline.com/{tenantid}/v2.0",
                     "https://login.microsoftonline.com/common/discovery/v2.0/keys");
  };
  Result<TrustedIssuer> issuer = DiscoverIssuer("https://login.microsoftonline.com/common/v2.0", {}, get);
  ASSERT_TRUE(issuer.has_value()) << issuer.error().message;
  EXPECT_EQ(issuer->issuer, "https://login.microsoftonline.com/{tenantid}/v2.0");
  EXPECT_EQ(issuer->jwks.name(), "url:https://login.microsoftonline.com/common/discovery/v2.0/keys");
}

TEST_F(AuthTest, DiscoveryFailures) {
  int calls = 0;
  auto serving = [&calls](std::string body) {
    return [&calls, body](const std::string&) -> Result<std::string> {
      ++calls;
      return body;
    };
  };
  auto fails = [](const Result<TrustedIssuer>& r, Code code, const std::string& part) {
    ASSERT_FALSE(r.has_value()) << "discovered " << r->issuer;
    EXPECT_EQ(r.error().code, code);
    EXPECT_NE(r.error().message.find(part), std::string::npos) << r.error().message;
  };
  // URLs refused before anything is fetched: plain http to another machine, not a URL.
  fails(DiscoverIssuer("http://idp.example/realms/vppd", {}, serving("{}")), Code::kInvalidArgument, "must be https");
  fails(DiscoverIssuer("idp.example", {}, serving("{}")), Code::kInvalidArgument, "not an absolute URL");
  EXPECT_EQ(calls, 0);
  // The fetch fails: its error, as it is.
  fails(DiscoverIssuer(kForeignIssuer, {},
                       [](const std::string&) -> Result<std::string> { return Fail(Error::Unavailable("down")); }),
        Code::kUnavailable, "down");
  fails(DiscoverIssuer("http://127.0.0.1:1/realms/vppd", {}), Code::kUnavailable, "OpenID configuration fetch from");
  // Documents that are not one, or not this issuer's.
  fails(DiscoverIssuer(kForeignIssuer, {}, serving("<html>")), Code::kInvalidArgument, "not a JSON object");
  fails(DiscoverIssuer(kForeignIssuer, {}, serving(R"({"issuer":"https://idp.example/realms/vppd"})")),
        Code::kInvalidArgument, "no jwks_uri");
  fails(DiscoverIssuer(kForeignIssuer, {}, serving(R"({"jwks_uri":"https://idp.example/certs"})")),
        Code::kInvalidArgument, "no issuer");
  fails(DiscoverIssuer(kForeignIssuer, {}, serving(Discovery("https://evil.example/realms/vppd", "https://x/keys"))),
        Code::kInvalidArgument, "names the issuer 'https://evil.example/realms/vppd'");
  fails(DiscoverIssuer(kForeignIssuer, {},
                       serving(Discovery("https://evil.example/{tenantid}/v2.0", "https://evil.example/keys"))),
        Code::kInvalidArgument, "names the issuer");
  fails(DiscoverIssuer(kForeignIssuer, {}, serving(Discovery(kForeignIssuer, "http://idp.example/certs"))),
        Code::kInvalidArgument, "jwks_uri 'http://idp.example/certs' must be https");
}

// ---- the verification cache --------------------------------------------------------

TEST_F(AuthTest, CachedTokenCostsNoRsa) {
  Verifier v = Make();
  const std::string token = a_->Sign(Claims());
  ExpectValid(v, Bearer(token));
  EXPECT_EQ(v.signature_checks(), 1u);
  Principal c = ExpectValid(v, "bearer  " + token);
  EXPECT_EQ(v.signature_checks(), 1u);
  EXPECT_EQ(c.tenant_id, kTenant);
  EXPECT_EQ(c.scopes.size(), 2u);
  ExpectValid(v, Bearer(a_->Sign(Claims(kOtherTenant))));
  EXPECT_EQ(v.signature_checks(), 2u);
}

// The per-thread memo of the last verified token answers only the very same bytes,
// for the very Verifier that verified them.
TEST_F(AuthTest, LastTokenMemoAnswersOnlyThatTokenForThatVerifier) {
  Verifier v = Make();
  const std::string token = a_->Sign(Claims());
  ExpectValid(v, Bearer(token));
  // Same length, one signature character near the end changed: must not ride on
  // the memo. (Not the very last: its low bits are base64 padding, which a
  // decoder may ignore, leaving the same signature.)
  std::string forged = token;
  char& c = forged[forged.size() - 10];
  c = c == 'A' ? 'B' : 'A';
  ExpectInvalid(v, Bearer(forged), "signature");
  std::string forged_first = token;  // And a change in the first byte.
  forged_first[0] = forged_first[0] == 'e' ? 'f' : 'e';
  EXPECT_FALSE(v.Verify(Bearer(forged_first)).has_value());
  ExpectValid(v, Bearer(token));
  ExpectValid(v, Bearer(token));
  EXPECT_EQ(v.signature_checks(), 2u);  // the good token once, the forgery with a valid header once

  // Another Verifier on this thread that trusts only B's keys: A's token was just
  // memoised by `v`, but is not valid here.
  VerifierOptions only_b;
  only_b.issuers = {{"https://sts.windows.net/{tenantid}/", JwksSource::Json(b_->Jwks())}};
  Verifier w = Make(std::move(only_b));
  ExpectInvalid(w, Bearer(token), "is in no key set");
  ExpectValid(v, Bearer(token));
  EXPECT_EQ(v.signature_checks(), 2u);
}

// The memo obeys the token's expiry exactly as the cache does.
TEST_F(AuthTest, LastTokenMemoExpiresWithTheToken) {
  Verifier v = Make();
  const std::string token = a_->Sign(Claims());  // exp = start + 3600, leeway 60.
  ExpectValid(v, Bearer(token));
  ExpectValid(v, Bearer(token));
  clock_.Advance(3600s + 60s);
  ExpectInvalid(v, Bearer(token), "expired", kMessageExpired);
}

TEST_F(AuthTest, CachedEntryExpiresWithTheToken) {
  Verifier v = Make();
  const std::string token = a_->Sign(Claims());  // exp = start + 3600, leeway 60.
  ExpectValid(v, Bearer(token));
  clock_.Advance(3600s + 59s);
  ExpectValid(v, Bearer(token));
  EXPECT_EQ(v.signature_checks(), 1u);
  clock_.Advance(1s);
  ExpectInvalid(v, Bearer(token), "expired", kMessageExpired);
  EXPECT_EQ(v.signature_checks(), 2u);  // Fully re-verified, not answered from the cache.
}

TEST_F(AuthTest, FailuresAreNotCached) {
  Verifier v = Make();
  boost::json::object c = Claims();
  c["aud"] = "https://other";
  const std::string token = a_->Sign(c);
  ExpectInvalid(v, Bearer(token), "aud");
  ExpectInvalid(v, Bearer(token), "aud");
  EXPECT_EQ(v.signature_checks(), 2u);
}

TEST_F(AuthTest, CacheIsBoundedAndEvictsSoonestExpiring) {
  VerifierOptions options;
  options.cache_entries = 2;
  Verifier v = Make(std::move(options));
  auto token = [](std::int64_t ttl) {
    boost::json::object c = Claims();
    c["exp"] = kStartSeconds + ttl;
    return a_->Sign(c);
  };
  const std::string short_lived = token(600), t2 = token(1200), t3 = token(1800);
  ExpectValid(v, Bearer(short_lived));
  ExpectValid(v, Bearer(t2));
  ExpectValid(v, Bearer(t3));  // Full: evicts short_lived.
  EXPECT_EQ(v.signature_checks(), 3u);
  ExpectValid(v, Bearer(t3));
  ExpectValid(v, Bearer(t2));
  EXPECT_EQ(v.signature_checks(), 3u);
  ExpectValid(v, Bearer(short_lived));
  EXPECT_EQ(v.signature_checks(), 4u);

  // Expired entries are swept first.
  clock_.Advance(1300s);
  const std::string t4 = token(3600);
  ExpectValid(v, Bearer(t4));  // Sweeps short_lived and t2, keeps t3.
  ExpectValid(v, Bearer(t3));
  EXPECT_EQ(v.signature_checks(), 5u);
}

TEST_F(AuthTest, ConcurrentVerification) {
  Verifier v = Make();
  std::vector<std::string> tokens;
  for (int i = 0; i < 8; ++i) {
    boost::json::object c = Claims();
    c["oid"] = "aaaaaaaa-bbbb-4ccc-8ddd-00000000000" + std::to_string(i);
    tokens.push_back(Bearer(a_->Sign(c)));
  }
  const std::string forged = Bearer(b_->Sign(Claims(), a_->kid()));
  std::atomic<int> ok{0}, rejected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (v.Verify(tokens[static_cast<std::size_t>(i) % tokens.size()])) ++ok;
        if (!v.Verify(forged)) ++rejected;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 800);
  EXPECT_EQ(rejected, 800);
  EXPECT_LE(v.signature_checks(), 8u * 4 + 800);  // Valid tokens: at most one RSA check per thread.
}

// Not a benchmark harness, just the numbers the report quotes.
TEST_F(AuthTest, MeasureVerifyCost) {
  Verifier v = Make();
  std::vector<std::string> tokens;
  for (int i = 0; i < 200; ++i) {
    boost::json::object c = Claims();
    c["jti"] = std::to_string(i);
    tokens.push_back(Bearer(a_->Sign(c)));
  }
  auto t0 = std::chrono::steady_clock::now();
  for (const auto& t : tokens) ASSERT_TRUE(v.Verify(t).has_value());
  auto t1 = std::chrono::steady_clock::now();
  constexpr int kRounds = 50;
  for (int r = 0; r < kRounds; ++r) {
    for (const auto& t : tokens) ASSERT_TRUE(v.Verify(t).has_value());
  }
  auto t2 = std::chrono::steady_clock::now();
  const double cold_us = std::chrono::duration<double, std::micro>(t1 - t0).count() / tokens.size();
  const double warm_us = std::chrono::duration<double, std::micro>(t2 - t1).count() / (tokens.size() * kRounds);
  std::printf("verify: %.1f us uncached (RS256), %.2f us cached\n", cold_us, warm_us);
  EXPECT_LT(warm_us, cold_us);
}

}  // namespace
}  // namespace vppd::auth
