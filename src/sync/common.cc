#include <algorithm>

#include <spdlog/spdlog.h>

#include "sync/sync_internal.h"

namespace vppd::sync {

std::string MobileAppId(const std::string& token_id, const std::string& adam_id, const std::string& pricing_param,
                        const std::string& platform) {
  // The first 16 bytes of SHA-256 of the identity, shaped as an RFC 4122 name-based id.
  std::string hex = Sha256Hex("vppd-mobile-app\n" + token_id + "\n" + adam_id + "\n" + pricing_param + "\n" + platform);
  hex.resize(32);
  hex[12] = '5';                                                    // version nibble
  hex[16] = "89ab"[std::stoi(hex.substr(16, 1), nullptr, 16) & 3];  // variant bits
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
         hex.substr(20, 12);
}

apple::MdmInfo OurMdmInfo(const std::string& installation_id, const std::string& tenant_id) {
  // Unique per installation and tenant (design.md), within Apple's 100-character id limit.
  apple::MdmInfo info;
  info.id = "vppd-" + Sha256Hex(installation_id + "/" + tenant_id).substr(0, 40);
  info.name = "vppd";
  info.metadata = "tenant " + tenant_id;
  return info;
}

apple::AppleResult<std::unique_ptr<apple::Client>> MakeClient(const JobContext& ctx, const std::string& stoken) {
  apple::ClientOptions options;
  options.base_url = ctx.options.apple_url;
  options.allow_insecure_http = ctx.options.apple_url.rfind("http://", 0) == 0;
  options.stoken = stoken;
  options.clock = &ctx.clock;
  options.retry = ctx.options.retry;
  options.sleep = ctx.sleep;
  if (ctx.options.client_factory) return ctx.options.client_factory(std::move(options));
  return apple::Client::Create(std::move(options));
}

store::TokenActionResult& ActionEntry(store::VppToken& token, const std::string& kind, Timestamp now, int keep) {
  auto& results = token.action_results;
  auto it = std::find_if(results.rbegin(), results.rend(), [&](const store::TokenActionResult& r) {
    return r.action_name == kind && (r.action_state == "pending" || r.action_state == "active");
  });
  store::TokenActionResult* entry;
  if (it == results.rend()) {
    store::TokenActionResult r;
    r.action_name = kind;
    r.start = now;
    r.is_revoke_result = kind == kRevokeLicenses;
    results.push_back(r);
    entry = &results.back();
  } else {
    entry = &*it;
  }
  entry->last_updated = now;
  if (keep > 0 && static_cast<int>(results.size()) > keep) {
    const std::ptrdiff_t index = entry - results.data();
    const std::ptrdiff_t drop = static_cast<std::ptrdiff_t>(results.size()) - keep;
    results.erase(results.begin(), results.begin() + drop);
    return results[std::max<std::ptrdiff_t>(0, index - drop)];
  }
  return *entry;
}

bool SameSToken(JobContext& ctx, const store::VppToken& current) {
  if (ctx.loaded_expiration == 0 || current.expiration == ctx.loaded_expiration) return true;
  ctx.superseded = true;
  return false;
}

Status FinishFailed(JobContext& ctx, const std::string& kind, const std::string& state, const std::string& reason) {
  auto done = ctx.store.FinishJob(ctx.job, std::nullopt, [&](store::VppToken& t) -> Status {
    if (SameSToken(ctx, t)) {
      if (!state.empty()) t.state = state;
      if (kind == kSyncLicenses || kind == kSyncLicenseCounts) t.last_sync_status = "failed";
      t.last_sync_error = reason;
    }
    auto& entry = ActionEntry(t, kind, ctx.clock.Now(), ctx.options.keep_action_results);
    entry.action_state = "failed";
    if (entry.is_revoke_result && entry.failure_reason == "none") {
      entry.failure_reason = state == "expired" ? "expiredVppToken" : "appleFailure";
    }
    return {};
  });
  if (!done && done.error().code != Code::kNotFound) return ReleaseOrAbandon(ctx, done.error());
  return Fail(Error::Unavailable(reason));
}

Status FinishWithoutSnapshot(JobContext& ctx, const store::VppToken*, const Error& why) {
  auto done = ctx.store.FinishJob(ctx.job, std::nullopt, [](store::VppToken&) -> Status { return {}; });
  if (!done && done.error().code != Code::kNotFound) return ReleaseOrAbandon(ctx, done.error());
  return Fail(why);
}

Status ReleaseForRetry(JobContext& ctx, const Error& why) {
  // A short pause so a flapping store or a restart loop does not spin.
  if (auto ok = ctx.store.ReleaseJob(ctx.job, ctx.clock.Now() + 1'000'000); !ok) {
    spdlog::warn("job {}: could not hand it back ({}); its lease will expire", ctx.job.id, ok.error().message);
  }
  return Fail(why);
}

Status ReleaseOrAbandon(JobContext& ctx, const Error& why) {
  if (ctx.lease_lost || why.code == Code::kFailedPrecondition) {
    spdlog::warn("job {} (token {}): lease lost, another worker owns it now: {}", ctx.job.id, ctx.job.token_id,
                 why.message);
    return Fail(why);
  }
  return ReleaseForRetry(ctx, why);
}

MetadataCache::MetadataCache(std::chrono::seconds ttl, std::size_t max_entries)
    : ttl_us_(std::chrono::duration_cast<std::chrono::microseconds>(ttl).count()), max_entries_(max_entries) {}

std::vector<apple::AppMetadata> MetadataCache::Find(const std::vector<std::string>& ids, Timestamp now,
                                                    std::vector<std::string>& missing) const {
  std::vector<apple::AppMetadata> found;
  std::lock_guard lock(mu_);
  for (const std::string& id : ids) {
    auto it = entries_.find(id);
    if (it != entries_.end() && now - it->second.fetched < ttl_us_) {
      found.push_back(it->second.metadata);
    } else {
      missing.push_back(id);
    }
  }
  return found;
}

void MetadataCache::Remember(const std::vector<apple::AppMetadata>& found, Timestamp now) {
  if (ttl_us_ <= 0) return;
  std::lock_guard lock(mu_);
  if (entries_.size() + found.size() > max_entries_) {
    std::erase_if(entries_, [&](const auto& e) { return now - e.second.fetched >= ttl_us_; });
    if (entries_.size() + found.size() > max_entries_) entries_.clear();  // bounded, whatever comes
  }
  for (const apple::AppMetadata& m : found) entries_[m.adam_id] = Entry{m, now};
}

}  // namespace vppd::sync
