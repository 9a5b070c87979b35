// `vppd demo`: apple-vpp-sim in-process, vppd in dev mode on SQLite, the
// simulator's location added as a vppToken and synced; prints how to call it, with
// `export TOKEN=… ID=… APP=…` lines for the README's walk-through. Apple is always
// the simulator and the mode always dev: demo has no --apple-url or --dev.
#pragma once

#include <cstdint>
#include <string>

#include "cli/config.h"

namespace vppd::cli {

struct DemoOptions {
  std::string sim_listen = "127.0.0.1:0";  // the simulator's address (port 0 picks a free one)
  std::int64_t assets = 120;
  std::int64_t assignments = 3000;
  std::uint64_t seed = 7;
};

int RunDemo(Settings settings, const DemoOptions& options);

}  // namespace vppd::cli
