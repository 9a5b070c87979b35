// Registering a location's notification endpoint at Apple (issue 16): client/config's
// notificationUrl, notificationAuthToken and notificationTypes.
//
// Each token gets an endpoint: a random key in the URL (/apple/notifications/{key})
// and a random bearer, of which the store keeps only a SHA-256. Since only the hash
// is kept, registering again always means a new bearer (a rotation); the one before
// is still accepted for kPreviousBearerGrace, while Apple may retry a delivery made
// with it. The sync registers in Prepare, once the location is ours (never over
// another MDM's registration), when Apple does not hold exactly this endpoint (its
// GET client/config echoes URL, bearer and types) or the sToken was renewed.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "sync/sync.h"
#include "sync/sync_internal.h"

namespace vppd::sync {
namespace {

// Apple retries a delivery up to 3 times over 1–5 minutes.
constexpr Timestamp kPreviousBearerGrace = 10LL * 60 * 1'000'000;

// Compares two strings in time that depends on their lengths only.
bool SameSecret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool SameTypes(std::vector<std::string> a, std::vector<std::string> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  return a == b;
}

}  // namespace

std::string NotificationRegistration(const EngineOptions& options) {
  std::vector<std::string> types = options.notification_types;
  std::sort(types.begin(), types.end());
  std::string out = options.notification_url;
  for (const auto& t : types) out += " " + t;
  return out;
}

std::string NotificationUrl(const std::string& base_url, const std::string& location_key) {
  std::string base = base_url;
  while (base.ends_with('/')) base.pop_back();
  return base + "/apple/notifications/" + location_key;
}

Result<int> QueueNotificationRegistrations(store::Store& store, const EngineOptions& options) {
  if (options.notification_url.empty()) return 0;
  auto due = store.TokensToRegister(NotificationRegistration(options), 10'000);
  if (!due) return Fail(due.error());
  const Clock& clock = options.clock != nullptr ? *options.clock : Clock::Real();
  int queued = 0;
  for (const auto& [tenant, token] : *due) {
    auto done = RequestJob(store, tenant, token, "syncLicenses", "", clock.Now(), options.keep_action_results);
    if (!done) {
      if (done.error().code == Code::kNotFound) continue;
      return Fail(done.error());
    }
    if (done->queued) ++queued;
  }
  return queued;
}

bool NotifiedOf(JobContext& ctx, const char* type) {
  const EngineOptions& o = ctx.options;
  if (o.notification_url.empty() ||
      std::find(o.notification_types.begin(), o.notification_types.end(), type) == o.notification_types.end()) {
    return false;
  }
  auto endpoint = ctx.store.GetNotificationEndpoint(ctx.job.tenant_id, ctx.job.token_id);
  return endpoint && *endpoint && (*endpoint)->registration == NotificationRegistration(o);
}

void EnsureNotificationRegistration(JobContext& ctx, apple::Client& client, const store::VppToken& token,
                                    const apple::ClientConfig& config) {
  const EngineOptions& o = ctx.options;
  if (o.notification_url.empty()) return;
  const std::string& tenant_id = ctx.job.tenant_id;
  const std::string registration = NotificationRegistration(o);
  auto existing = ctx.store.GetNotificationEndpoint(tenant_id, token.id);
  if (!existing) {
    spdlog::warn("token {}: notification endpoint not read ({}); not registered this time", token.id,
                 existing.error().message);
    return;
  }
  if (*existing) {
    const store::NotificationEndpoint& e = **existing;
    const bool current = e.registration == registration && e.stoken_expiration == token.expiration &&
                         e.apple_uid == config.uid &&
                         config.notification_url == NotificationUrl(o.notification_url, e.location_key) &&
                         SameSecret(Sha256Hex(config.notification_auth_token), e.auth_hash) &&
                         SameTypes(config.subscribed_notification_types, o.notification_types);
    if (current) return;
  }
  const Timestamp now = ctx.clock.Now();
  const std::string bearer = Base64UrlEncode(RandomBytes(32));
  store::NotificationEndpoint next;
  next.tenant_id = tenant_id;
  next.token_id = token.id;
  next.location_key = *existing ? (*existing)->location_key : Sha256Hex(RandomBytes(32)).substr(0, 32);
  next.apple_uid = config.uid;
  next.auth_hash = Sha256Hex(bearer);
  next.previous_valid_until = now + kPreviousBearerGrace;
  next.stoken_expiration = token.expiration;
  next.registration = registration;
  next.rotated = now;
  // Stored before Apple hears of it: a notification sent with the new bearer
  // right after the registration (Apple's TEST_NOTIFICATION) finds it.
  auto stored = ctx.store.RotateNotificationEndpoint(next);
  if (!stored) {
    spdlog::warn("token {}: notification endpoint not stored ({}); not registered this time", token.id,
                 stored.error().message);
    return;
  }
  apple::NotificationSettings settings;
  settings.url = NotificationUrl(o.notification_url, stored->location_key);
  settings.auth_token = bearer;
  settings.types = o.notification_types;
  auto registered = client.RegisterNotifications(OurMdmInfo(o.installation_id, tenant_id), settings);
  if (!registered) {
    spdlog::warn("token {}: registering notifications at {} failed, the next sync tries again: {}", token.id,
                 settings.url, registered.error().Describe());
    return;
  }
  spdlog::info("token {}: notifications of location '{}' (uId {}) registered at {} ({})", token.id,
               config.location_name, config.uid, settings.url, (*existing) ? "bearer rotated" : "new endpoint");
}

}  // namespace vppd::sync
