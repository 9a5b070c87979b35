#include <memory>

#include <openssl/evp.h>
#include <sys/stat.h>

#include "base/base.h"

namespace vppd {
namespace {

constexpr unsigned char kVersion = 1;
constexpr std::size_t kKeyBytes = 32;
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

const unsigned char* Bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

}  // namespace

Result<SecretBox> SecretBox::LoadOrCreate(const std::string& key_path) {
  if (auto existing = ReadFile(key_path, 1024)) {
    auto key = Base64Decode(std::string_view(*existing).substr(0, existing->find_last_not_of(" \r\n\t") + 1));
    if (!key || key->size() != kKeyBytes) {
      return Fail(Error::FailedPrecondition("secret key file " + key_path + " is not a base64 32-byte key"));
    }
    struct stat st {};
    if (::stat(key_path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      return Fail(
          Error::FailedPrecondition("secret key file " + key_path + " is readable by group or others; chmod 600 it"));
    }
    return SecretBox(std::move(*key));
  }
  std::string key = RandomBytes(kKeyBytes);
  if (auto st = WriteFileAtomic(key_path, Base64Encode(key) + "\n", 0600); !st) return Fail(st.error());
  return SecretBox(std::move(key));
}

SecretBox SecretBox::FromKey(std::string key32) { return SecretBox(std::move(key32)); }

Result<std::string> SecretBox::Seal(std::string_view plaintext, std::string_view associated) const {
  if (key_.size() != kKeyBytes) return Fail(Error::Internal("secret key has the wrong size"));
  const std::string nonce = RandomBytes(kNonceBytes);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  std::string out;
  out.resize(1 + kNonceBytes + plaintext.size() + kTagBytes);
  out[0] = static_cast<char>(kVersion);
  out.replace(1, kNonceBytes, nonce);
  auto* cipher = reinterpret_cast<unsigned char*>(out.data() + 1 + kNonceBytes);
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key_), Bytes(nonce)) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, Bytes(associated), static_cast<int>(associated.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), cipher, &len, Bytes(plaintext), static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), cipher + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, cipher + plaintext.size()) != 1) {
    return Fail(Error::Internal("AES-256-GCM encryption failed"));
  }
  return Base64Encode(out);
}

Result<std::string> SecretBox::Open(std::string_view sealed, std::string_view associated) const {
  auto raw = Base64Decode(sealed);
  if (!raw || raw->size() < 1 + kNonceBytes + kTagBytes || static_cast<unsigned char>((*raw)[0]) != kVersion) {
    return Fail(Error::Internal("sealed secret is malformed"));
  }
  const std::string_view all(*raw);
  const std::string_view nonce = all.substr(1, kNonceBytes);
  const std::string_view cipher = all.substr(1 + kNonceBytes, all.size() - 1 - kNonceBytes - kTagBytes);
  std::string tag(all.substr(all.size() - kTagBytes));
  std::string plain(cipher.size(), '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int len = 0;
  auto* out = reinterpret_cast<unsigned char*>(plain.data());
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key_), Bytes(nonce)) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(associated), static_cast<int>(associated.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), out, &len, Bytes(cipher), static_cast<int>(cipher.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), out + len, &len) != 1) {
    return Fail(Error::Internal("sealed secret failed authentication (tampered, or sealed under another key)"));
  }
  return plain;
}

}  // namespace vppd
