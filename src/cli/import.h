// `vppd import devices|users|groups FILE.csv [--tenant T]`: the directory in bulk,
// for those who run their own MDM.
//
// Works straight on the store (the data dir's SQLite, or --database-url), like
// `vppd tokens list`, in ONE transaction per file: a file with a bad row imports
// nothing, and every bad row found is reported as `FILE:LINE: reason`. The first
// line names the columns (README.md, "Directory", lists them); re-importing a
// file updates what it created instead of adding to it. Exit status: 0 imported,
// 1 nothing imported (bad rows, unknown tenant, store error).
#pragma once

#include <cstdio>
#include <string>

#include "base/error.h"
#include "cli/config.h"
#include "store/store.h"

namespace vppd::cli {

struct ImportCommand {
  std::string kind;       // "devices", "users" or "groups"
  std::string file;       // the CSV file
  std::string tenant_id;  // empty: the store's only tenant
};

// Parses and imports; prints a summary to `out`, bad rows to `err`. Returns the exit status.
int RunImport(const ImportCommand& command, store::Store& store, std::FILE* out, std::FILE* err);

// For tests: the CSV records of `text` (RFC 4180: quoted fields, "" for a quote,
// CRLF or LF), each with the line it starts on. InvalidArgument naming the line of
// an unterminated quote.
struct CsvRecord {
  int line = 0;
  std::vector<std::string> fields;
};
Result<std::vector<CsvRecord>> ParseCsv(std::string_view text);

}  // namespace vppd::cli
