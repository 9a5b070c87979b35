// Helpers for unit tests only (never linked into vppd).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace vppd::testing {

// A fresh directory under the system temp dir, removed with everything in it when
// the object goes away.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "vppd-test") {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace vppd::testing
