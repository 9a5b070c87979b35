// `vppd demo`: apple-vpp-sim in-process, vppd in dev mode on SQLite, the
// simulator's location added as a vppToken and synced; prints how to call it.
#pragma once

#include <cstdint>

#include "cli/config.h"

namespace vppd::cli {

struct DemoOptions {
  std::int64_t assets = 120;
  std::int64_t assignments = 3000;
  std::uint64_t seed = 7;
};

int RunDemo(Settings settings, const DemoOptions& options);

}  // namespace vppd::cli
