// `vppd sync TOKEN_ID [--wait] [--timeout S]`: an operator's syncLicenses.
//
// Works straight on the store (the data dir's SQLite, or --database-url), like
// `vppd tokens list`: it queues a
// syncLicenses job exactly as the Graph action does (sync::RequestJob: the token
// shows lastSyncStatus=inProgress and a pending tokenActionResults entry; an
// already queued or running sync is joined, not doubled). A running `vppd serve`
// on the same store picks the job up (its workers look for jobs every second).
//
// With --wait it follows the job to its end, showing the pages walked and the
// assignments staged (a progress bar on a terminal, a line every few seconds
// otherwise), then prints what the token holds. Exit status: 0 synced; 1 the sync
// failed (the reason is printed) or the token does not exist; 3 --timeout passed
// first (the job stays queued or running).
#pragma once

#include <string>

#include "cli/config.h"

namespace vppd::cli {

struct SyncCommand {
  std::string token_id;
  std::string tenant_id;  // optional: only look in this tenant
  bool wait = false;
  double timeout_seconds = 600;
  double poll_seconds = 0.25;
};

// Runs the command; returns the process exit status. Writes results to stdout,
// errors to stderr.
// `settings` says where the store is (data dir or database URL, key file).
int RunSyncCommand(const SyncCommand& command, const Settings& settings);

}  // namespace vppd::cli
