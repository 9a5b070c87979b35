#include "cli/reconcile_command.h"

#include <chrono>
#include <cstdio>
#include <thread>

#include <boost/json.hpp>

#include "base/terminal_text.h"
#include "cli/runtime.h"
#include "store/store.h"
#include "sync/sync.h"

namespace vppd::cli {
namespace {

int Exit(const std::string& message, int status = 1) {
  std::fprintf(stderr, "vppd reconcile: %s\n", TerminalSafe(message).c_str());
  return status;
}

std::int64_t Count(const boost::json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_int64() ? v->get_int64() : 0;
}

}  // namespace

std::string DescribeReconcileReport(const std::string& report_json) {
  if (report_json.empty()) return "";
  boost::system::error_code ec;
  auto v = boost::json::parse(report_json, ec);
  if (ec || !v.is_object()) return "";
  const auto& o = v.get_object();
  std::string out = std::to_string(Count(o, "granted")) + " granted";
  if (auto n = Count(o, "pending")) out += ", " + std::to_string(n) + " pending";
  if (auto n = Count(o, "failed")) {
    out += ", " + std::to_string(n) + " failed";
    if (auto short_of = Count(o, "notEnoughLicenses")) {
      out += " (not enough licences: " + std::to_string(short_of) + ")";
    }
  }
  if (auto n = Count(o, "reclaimPending")) out += ", " + std::to_string(n) + " being reclaimed";
  if (auto n = Count(o, "heldBack")) out += ", " + std::to_string(n) + " reclaims held back (vppd reconcile --force)";
  if (auto n = Count(o, "keptByReclaimNever")) out += ", " + std::to_string(n) + " kept (assign.reclaim = never)";
  if (auto n = Count(o, "untracked")) out += ", " + std::to_string(n) + " untracked";
  if (const auto* e = o.if_contains("error"); e != nullptr && e->is_string()) {
    out += ", stopped: " + std::string(e->get_string());
  }
  if (const auto* at = o.if_contains("reconciled"); at != nullptr && at->is_string()) {
    out += ", at " + std::string(at->get_string());
  }
  return out;
}

int RunReconcileCommand(const ReconcileCommand& cmd, const Settings& settings) {
  auto opened = OpenExistingStore(settings);
  if (!opened) return Exit(opened.error().message);
  store::Store& store = **opened;
  auto tenant = FindTokenTenant(store, cmd.token_id, cmd.tenant_id);
  if (!tenant) return Exit(tenant.error().message);
  auto before = store.GetReconcileReport(*tenant, cmd.token_id);
  if (!before) return Exit(before.error().message);
  auto queued = sync::RequestReconcile(store, *tenant, cmd.token_id, Clock::Real().Now(), cmd.force);
  if (!queued) return Exit(queued.error().message);
  std::printf("%s reconcile%s of token %s (tenant %s)\n", queued->queued ? "queued" : "asked the queued or running",
              cmd.force ? " (forced: no reclaim cap)" : "", TerminalSafe(cmd.token_id).c_str(),
              TerminalSafe(*tenant).c_str());
  std::fflush(stdout);
  if (!cmd.wait) return 0;

  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(cmd.timeout_seconds));
  bool told = false;
  for (;;) {
    auto jobs = store.FindJobs(*tenant, cmd.token_id);
    if (!jobs) return Exit(jobs.error().message);
    bool running = false;
    for (const auto& j : *jobs) {
      if (j.kind == "reconcile") running = true;
    }
    auto report = store.GetReconcileReport(*tenant, cmd.token_id);
    if (!report) return Exit(report.error().message);
    // Done: the job is gone and a pass after our request left its report.
    if (!running && report->second > before->second) {
      std::printf("reconciled token %s: %s\n", TerminalSafe(cmd.token_id).c_str(),
                  TerminalSafe(DescribeReconcileReport(report->first)).c_str());
      boost::system::error_code ec;
      auto v = boost::json::parse(report->first, ec);
      if (!ec && v.is_object() && (Count(v.get_object(), "failed") > 0 || Count(v.get_object(), "heldBack") > 0)) {
        return 1;
      }
      return 0;
    }
    if (!running && !told) {
      // Nothing in scope leaves no report: the job is simply gone.
      auto token = store.GetToken(*tenant, cmd.token_id);
      if (!token) return Exit(token.error().message);
      if (report->second == before->second && std::chrono::steady_clock::now() - started > std::chrono::seconds(1)) {
        std::printf("reconciled token %s: nothing is assigned with device licensing\n",
                    TerminalSafe(cmd.token_id).c_str());
        return 0;
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Exit("timed out waiting for the reconcile of token " + cmd.token_id +
                      " (is a vppd serve running on this store? the job goes on in the background)",
                  3);
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(cmd.poll_seconds));
  }
}

}  // namespace vppd::cli
