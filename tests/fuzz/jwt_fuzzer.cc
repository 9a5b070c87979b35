// Fuzzes bearer-token verification (auth::Verifier::Verify), trusting a dev key as a
// `--dev` server does.
//
// Input: byte 0 picks the mode.
//  - even: the rest is the whole Authorization header value, as a client sends it.
//    Reaches the header split, base64url, the JOSE header and claim parsing, issuer
//    matching and key lookup; a random signature never verifies.
//  - odd:  the rest is the claims (JWT payload) text. The fuzzer signs it with the
//    trusted dev key under a correct RS256 header, so the checks after the signature
//    (exp/nbf, aud, oid/appid/azp/scp/roles) see fuzzed claims too.
//
// Checks (auth.h's contract): a failure is Unauthenticated with graph code
// InvalidAuthenticationToken and one of Graph's three messages, and `why` says
// something; a success has a GUID tenant and flags that agree with its claims.
// The clock is fixed and the verified-token cache is off, so a run is deterministic.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>

#include <openssl/pem.h>
#include <spdlog/spdlog.h>

#include "auth/auth.h"
#include "auth/jwks.h"
#include "base/base.h"
#include "fuzz_check.h"

using namespace vppd;

namespace {

struct Fixture {
  FakeClock clock{1'767'225'600'000'000};  // 2026-01-01T00:00:00Z
  std::unique_ptr<auth::Verifier> verifier;
  auth::internal::PkeyPtr signing_key;
  std::string encoded_header;  // base64url of {"alg":"RS256","kid":...,"typ":"JWT"}
};

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Created once per process: an RSA key takes far longer to make than a run.
Fixture* MakeFixture() {
  // Every rejected token is logged at info (the operator's "why"); not per input here.
  spdlog::set_level(spdlog::level::warn);
  auto* f = new Fixture;
  char dir_template[] = "/tmp/vppd-fuzz-jwt-XXXXXX";
  const char* dir = mkdtemp(dir_template);
  FUZZ_CHECK(dir != nullptr, "mkdtemp failed");
  auto key = auth::DevKey::LoadOrCreate(dir);
  FUZZ_CHECK(key.has_value(), "dev key: %s", key.error().message.c_str());
  const std::string pem = ReadAll(std::filesystem::path(dir) / auth::DevKey::kFileName);
  std::filesystem::remove_all(dir);

  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  f->signing_key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  FUZZ_CHECK(f->signing_key != nullptr, "cannot read the dev key back");
  f->encoded_header = Base64UrlEncode(R"({"alg":"RS256","kid":")" + key->kid() + R"(","typ":"JWT"})");

  auth::VerifierOptions options;
  options.clock = &f->clock;
  options.cache_entries = 0;
  options.issuers = auth::DevIssuers(*key);
  auto verifier = auth::Verifier::Create(std::move(options));
  FUZZ_CHECK(verifier.has_value(), "verifier: %s", verifier.error().message.c_str());
  f->verifier = std::make_unique<auth::Verifier>(std::move(*verifier));
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture* const fixture = MakeFixture();
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string authorization;
  if (data[0] % 2 == 0) {
    authorization.assign(rest);
  } else {
    const std::string signing_input = fixture->encoded_header + "." + Base64UrlEncode(rest);
    auto signature = auth::internal::SignRs256(fixture->signing_key.get(), signing_input);
    FUZZ_CHECK(signature.has_value(), "sign: %s", signature.error().message.c_str());
    authorization = "Bearer " + signing_input + "." + Base64UrlEncode(*signature);
  }

  std::string why;
  auto caller = fixture->verifier->Verify(authorization, &why);
  if (!caller) {
    const Error& e = caller.error();
    FUZZ_CHECK(e.code == Code::kUnauthenticated, "code %d", static_cast<int>(e.code));
    FUZZ_CHECK(e.graph_code.empty(), "graph code '%s' set below graph/", e.graph_code.c_str());
    FUZZ_CHECK(
        e.message == auth::kMessageEmpty || e.message == auth::kMessageExpired || e.message == auth::kMessageInvalid,
        "message '%s'", e.message.c_str());
    FUZZ_CHECK(!why.empty(), "no reason given for '%s'", e.message.c_str());
    return 0;
  }
  FUZZ_CHECK(IsGuid(caller->tenant_id), "tenant '%s' is not a GUID", caller->tenant_id.c_str());
  FUZZ_CHECK(!caller->app_only || (!caller->roles.empty() && caller->scopes.empty()), "app_only without roles");
  for (const auto& s : caller->scopes) FUZZ_CHECK(!s.empty() && s.find(' ') == std::string::npos, "bad scope");
  return 0;
}
