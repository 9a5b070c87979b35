// Builds locations: deterministically from a seed (GenerateLocation) or from a
// JSON data file (LoadDataFile, format in README.md "Data file").
//
// Generated data is consistent by construction: every asset's assignedCount is
// the number of its assignments, availableCount = totalCount − assignedCount
// (with some assets sold out to exercise 9709), retiredCount is separate;
// books are user-only and irrevocable; some apps are unlimited; platforms mix
// iOS/macOS (some both, a few visionOS). The same seed and sizes always give the
// same location, byte for byte.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/base.h"
#include "model.h"

namespace vppd::sim {

struct GenerateOptions {
  std::uint64_t seed = 1;
  int index = 0;                   // Location number (0 = the default location).
  std::int64_t assets = 40;        // Exact number of assets.
  std::int64_t assignments = 400;  // Exact number of assignments (0 when assets is 0).
  // Users able to hold licenses; -1 = sized from `assignments`. Raised when too
  // small to give every user-based assignment a distinct (asset, user) pair.
  std::int64_t users = -1;
  Timestamp token_expiration = 0;  // expDate of the location's first sToken.
  std::size_t history_limit = 1000;
  std::string name;  // Empty: "Sim Location <index+1>".
};

// A new location; never fails (sizes are clamped to >= 0).
std::unique_ptr<Location> GenerateLocation(const GenerateOptions& options);

// A new sToken for `location` (appended to location.tokens), derived from the
// location's seed and its token count. Returns the token's index.
std::size_t IssueToken(Location& location, Timestamp expiration);

// Loads every location of a data file. Fails with InvalidArgument naming the
// JSON path of the first problem (e.g. "locations[0].assets[3].adamId: missing").
Result<std::vector<std::unique_ptr<Location>>> LoadDataFile(const std::string& path, Timestamp default_expiration,
                                                            std::size_t history_limit);
// The same from JSON text (for tests).
Result<std::vector<std::unique_ptr<Location>>> LoadDataJson(std::string_view json, Timestamp default_expiration,
                                                            std::size_t history_limit);

}  // namespace vppd::sim
