// `vppd migrate-store --from sqlite:PATH --to postgresql://...`: copies a whole
// deployment (installation id, tenants, tokens with their sealed sTokens, apps,
// license assignments) from one store to another, then proves the copy by counts and
// checksums computed the same way on both sides.
#pragma once

#include <cstdio>
#include <string>

#include "base/error.h"

namespace vppd::cli {

struct MigrateOptions {
  std::string from;      // sqlite:PATH (a vppd.db file or a data dir) or postgresql://...
  std::string to;        // likewise; must hold no tenant yet
  std::string key_file;  // the sToken key both stores use; empty = secret.key next to the SQLite file
};

// Runs the copy and the verification, reporting progress on `out`. The installation
// id (vppd's identity at Apple) is copied first: the source's (a SQLite source with
// none stored proposes its data dir's installation-id file). Fails with
// FailedPrecondition when the target already holds data or another installation id, DataLoss when the
// verification finds a difference (the message names the first one).
Status MigrateStore(const MigrateOptions& options, std::FILE* out);

}  // namespace vppd::cli
