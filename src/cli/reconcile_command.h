// `vppd reconcile TOKEN_ID [--force] [--wait] [--timeout S]`: hand out and take back
// the token's device licences now (sync/reconcile.cc), as a change to an assignment
// or to the directory would.
//
// Works straight on the store, like `vppd sync`: it queues the token's reconcile job
// (coalesced with one already queued; a running one runs once more) for the vppd
// serving the same store. --force lifts the reclaim safety cap
// (assign.max_reclaim_fraction) for that pass. With --wait it follows the job
// until it is gone (Apple's events included) and prints the report. Exit status:
// 0 done; 1 the token does not exist, or the pass ended with licences failed or
// reclaims held back (printed); 3 --timeout passed first (the job goes on).
#pragma once

#include <string>

#include "cli/config.h"

namespace vppd::cli {

struct ReconcileCommand {
  std::string token_id;
  std::string tenant_id;  // optional: only look in this tenant
  bool force = false;
  bool wait = false;
  double timeout_seconds = 600;
  double poll_seconds = 0.25;
};

int RunReconcileCommand(const ReconcileCommand& command, const Settings& settings);

// One line for an operator from a stored report (sync/reconcile.cc's JSON):
// "120 granted, 3 failed (not enough licences: 3), 5 reclaims held back, 2 untracked, at …";
// empty when `report_json` is empty.
std::string DescribeReconcileReport(const std::string& report_json);

}  // namespace vppd::cli
