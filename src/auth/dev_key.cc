// The dev signing key: created once per data dir, loaded on every start.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <utility>

#include <boost/json.hpp>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "auth/auth.h"
#include "auth/jwks.h"

namespace vppd::auth {

struct DevKey::Impl {
  internal::PkeyPtr key;
  std::string kid;
  internal::RsaComponents pub;
};

namespace {

constexpr int kDevKeyBits = 2048;
constexpr std::size_t kMaxKeyFileBytes = std::size_t{64} * 1024;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

// Wipes a string that held private key material before releasing it.
struct Wiped {
  std::string text;
  ~Wiped() { OPENSSL_cleanse(text.data(), text.size()); }
};

// strerror is not thread-safe; error categories' message() is.
std::string Errno(const std::string& what) { return what + ": " + std::generic_category().message(errno); }

// Never prompt for a passphrase: the dev key is stored unencrypted; an encrypted file
// is someone else's and fails to load instead of blocking on a terminal.
int NoPassphrase(char*, int, int, void*) { return 0; }

Result<internal::PkeyPtr> ParsePrivateKey(const std::string& pem, const std::string& path) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* raw = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, &NoPassphrase, nullptr) : nullptr;
  ERR_clear_error();
  if (raw == nullptr) return Fail(Error::FailedPrecondition(path + " holds no PEM private key"));
  internal::PkeyPtr key(raw);
  if (EVP_PKEY_is_a(key.get(), "RSA") != 1 || EVP_PKEY_get_bits(key.get()) < kDevKeyBits) {
    return Fail(Error::FailedPrecondition(path + " is not an RSA key of at least 2048 bits"));
  }
  return key;
}

Result<std::string> GeneratePem() {
  internal::PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(kDevKeyBits)));
  if (!key) {
    ERR_clear_error();
    return Fail(Error::Internal("RSA key generation failed"));
  }
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    ERR_clear_error();
    return Fail(Error::Internal("cannot encode the dev key as PEM"));
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  std::string pem(data, static_cast<std::size_t>(len));
  OPENSSL_cleanse(data, static_cast<std::size_t>(len));
  return pem;
}

// Publishes `pem` at `path` only if no file is there yet: written to a private temp
// file, then hard-linked into place (link fails with EEXIST instead of replacing), so
// two processes racing on first use both end up loading the same key. Returns false
// when another key was already there.
Result<bool> CreateExclusive(const std::string& path, const std::string& pem) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + Base64UrlEncode(RandomBytes(6));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(Error::Internal(Errno("cannot create " + tmp)));
  std::size_t done = 0;
  while (done < pem.size()) {
    const ssize_t n = ::write(fd, pem.data() + done, pem.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Error e = Error::Internal(Errno("cannot write " + tmp));
      ::close(fd);
      ::unlink(tmp.c_str());
      return Fail(std::move(e));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    Error e = Error::Internal(Errno("cannot flush " + tmp));
    ::unlink(tmp.c_str());
    return Fail(std::move(e));
  }
  const int linked = ::link(tmp.c_str(), path.c_str());
  const int link_errno = errno;
  ::unlink(tmp.c_str());
  if (linked == 0) return true;
  if (link_errno == EEXIST) return false;
  errno = link_errno;
  return Fail(Error::Internal(Errno("cannot create " + path)));
}

}  // namespace

Result<DevKey> DevKey::LoadOrCreate(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) return Fail(Error::Internal("cannot create " + data_dir + ": " + ec.message()));
  const std::string path = (std::filesystem::path(data_dir) / kFileName).string();

  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return Fail(Error::Internal(Errno("cannot stat " + path)));
    Result<std::string> fresh = GeneratePem();
    if (!fresh) return Fail(fresh.error());
    Wiped pem{std::move(*fresh)};
    Result<bool> created = CreateExclusive(path, pem.text);
    if (!created) return Fail(created.error());
    if (*created) spdlog::info("auth: created dev signing key {}", path);
  } else if ((st.st_mode & 077) != 0) {
    spdlog::warn("auth: dev signing key {} is readable by others (mode {:o}); it should be 0600", path,
                 st.st_mode & 0777);
  }

  Result<std::string> text = ReadFile(path, kMaxKeyFileBytes);
  if (!text) return Fail(Error::Internal("cannot read " + path + ": " + text.error().message));
  Wiped pem{std::move(*text)};
  Result<internal::PkeyPtr> key = ParsePrivateKey(pem.text, path);
  if (!key) return Fail(key.error());
  Result<internal::RsaComponents> pub = internal::RsaComponentsOf(key->get());
  if (!pub) return Fail(pub.error());
  auto impl = std::make_shared<Impl>();
  impl->kid = internal::JwkThumbprint(*pub);
  impl->pub = std::move(*pub);
  impl->key = std::move(*key);
  return DevKey(std::move(impl));
}

const std::string& DevKey::kid() const { return impl_->kid; }

std::string DevKey::JwksJson() const {
  boost::json::object jwk;
  jwk["kty"] = "RSA";
  jwk["use"] = "sig";
  jwk["alg"] = "RS256";
  jwk["kid"] = impl_->kid;
  jwk["n"] = Base64UrlEncode(impl_->pub.n);
  jwk["e"] = Base64UrlEncode(impl_->pub.e);
  boost::json::object jwks;
  jwks["keys"] = boost::json::array{std::move(jwk)};
  return boost::json::serialize(jwks);
}

Result<std::string> DevKey::Sign(const DevTokenRequest& request, const Clock& clock) const {
  const std::string tid = request.personal_account    ? std::string(kPersonalAccountTenantId)
                          : request.tenant_id.empty() ? std::string(kDevTenantId)
                                                      : request.tenant_id;
  if (!IsGuid(tid)) return Fail(Error::InvalidArgument("tenant id is not a GUID", "tenant_id"));
  std::string scp;
  for (const std::string& scope : request.scopes) {
    if (scope.empty() || scope.find(' ') != std::string::npos) {
      return Fail(Error::InvalidArgument("a scope is empty or contains a space", "scopes"));
    }
    if (!scp.empty()) scp += ' ';
    scp += scope;
  }

  const std::int64_t now = clock.Now() / 1'000'000;
  boost::json::object claims;
  claims["aud"] = request.audience;
  claims["iss"] =
      request.v2 ? "https://login.microsoftonline.com/" + tid + "/v2.0" : "https://sts.windows.net/" + tid + "/";
  claims["iat"] = now;
  claims["nbf"] = now;
  claims["exp"] = now + request.ttl.count();
  claims["tid"] = tid;
  claims["oid"] = request.object_id.empty() ? std::string(kDevObjectId) : request.object_id;
  claims[request.v2 ? "azp" : "appid"] = request.app_id.empty() ? std::string(kDevAppId) : request.app_id;
  if (!scp.empty()) claims["scp"] = scp;
  if (!request.roles.empty()) {
    boost::json::array roles;
    for (const std::string& role : request.roles) roles.emplace_back(role);
    claims["roles"] = std::move(roles);
  }
  claims["idtyp"] = scp.empty() && !request.roles.empty() ? "app" : "user";
  claims["ver"] = request.v2 ? "2.0" : "1.0";

  boost::json::object header;
  header["typ"] = "JWT";
  header["alg"] = "RS256";
  header["kid"] = impl_->kid;
  const std::string signing_input =
      Base64UrlEncode(boost::json::serialize(header)) + "." + Base64UrlEncode(boost::json::serialize(claims));
  Result<std::string> signature = internal::SignRs256(impl_->key.get(), signing_input);
  if (!signature) return Fail(signature.error());
  return signing_input + "." + Base64UrlEncode(*signature);
}

}  // namespace vppd::auth
