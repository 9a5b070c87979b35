// QueueingReconcileTrigger: changes to assignments and the directory queue a
// reconcile of the tokens they may concern (service.h).
#include <spdlog/spdlog.h>

#include "service/service.h"
#include "sync/sync.h"

namespace vppd::service {

QueueingReconcileTrigger::QueueingReconcileTrigger(store::Store& store, Options options)
    : store_(store), options_(std::move(options)), clock_(options_.clock ? options_.clock : &Clock::Real()) {}

void QueueingReconcileTrigger::TokenNeedsReconcile(const std::string& tenant_id, const std::string& token_id) {
  auto queued = sync::RequestReconcile(store_, tenant_id, token_id, clock_->Now());
  if (!queued) {
    if (queued.error().code != Code::kNotFound) {
      spdlog::warn("token {} (tenant {}): could not queue a reconcile: {}", token_id, tenant_id,
                   queued.error().message);
    }
    return;
  }
  if (options_.on_job_queued) options_.on_job_queued();
}

void QueueingReconcileTrigger::TenantNeedsReconcile(const std::string& tenant_id) {
  store::ListQuery query;
  query.limit = store::kMaxTokensPerTenant;
  auto tokens = store_.ListTokens(tenant_id, query);
  if (!tokens) {
    spdlog::warn("tenant {}: could not list its tokens to queue reconciles: {}", tenant_id, tokens.error().message);
    return;
  }
  for (const store::VppToken& token : tokens->items) TokenNeedsReconcile(tenant_id, token.id);
}

}  // namespace vppd::service
