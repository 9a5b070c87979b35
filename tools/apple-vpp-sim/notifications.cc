// Simulator: the notifications Apple sends (spec §5) — what goes into them and
// when; notifier.cc delivers them.
//
// Shapes follow Apple's "Subscribing to notifications": the envelope
// {notification, notificationId, notificationType, uId}; ASSET_MANAGEMENT
// {assignments, error?, eventId, result, type}; USER_MANAGEMENT {error?,
// eventId, result, type, users}; ASSET_COUNT {adamId, countDelta,
// pricingParam}; USER_ASSOCIATED {associatedUsers}; TEST_NOTIFICATION {}.
// At most 100 elements per notification: a larger result is split, and one
// notification never mixes assets or outcomes (Apple: "batch of 100 devices
// per 1 app").
#include <algorithm>

#include "apple_errors.h"
#include "json_writer.h"
#include "simulator.h"

namespace vppd::sim {

namespace {

constexpr std::size_t kMaxElements = 100;

// The error member of a FAILURE notification: an ErrorResponse naming the
// subjects (and asset) of this notification.
std::string ErrorJson(int number, const Asset* asset, const std::vector<const EventOutcome*>& chunk) {
  JsonWriter info;
  info.BeginObject();
  if (asset) {
    info.Key("assets");
    info.BeginArray();
    info.BeginObject();
    info.Field("adamId", asset->adam_id);
    info.Field("pricingParam", asset->pricing_param);
    info.EndObject();
    info.EndArray();
  }
  const bool users = std::any_of(chunk.begin(), chunk.end(), [](auto* o) { return !o->client_user_id.empty(); });
  const bool serials = std::any_of(chunk.begin(), chunk.end(), [](auto* o) { return !o->serial_number.empty(); });
  if (users) {
    info.Key("clientUserIds");
    info.BeginArray();
    for (auto* o : chunk)
      if (!o->client_user_id.empty()) info.String(o->client_user_id);
    info.EndArray();
  }
  if (serials) {
    info.Key("serialNumbers");
    info.BeginArray();
    for (auto* o : chunk)
      if (!o->serial_number.empty()) info.String(o->serial_number);
    info.EndArray();
  }
  info.EndObject();
  return ErrorResponseJson({number, {}, std::move(info).Take()});
}

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost" || host == "[::1]") return true;
  if (host.rfind("127.", 0) != 0) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.')
      ++dots;
    else if (c < '0' || c > '9')
      return false;
  }
  return dots == 3;
}

}  // namespace

// "https://host/path" as Apple demands (9712); the simulator also takes
// "http://" for a loopback host (127.0.0.0/8, [::1], localhost) so that tests
// can receive without TLS.
bool ValidNotificationUrl(std::string_view u) {
  bool https = u.rfind("https://", 0) == 0;
  if (!https && u.rfind("http://", 0) != 0) return false;
  const std::string_view rest = u.substr(https ? 8 : 7);
  const auto slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos || slash + 1 >= rest.size()) return false;
  if (https) return true;
  std::string_view authority = rest.substr(0, slash);
  if (authority.find('@') != std::string_view::npos) return false;
  std::string_view host = authority;
  if (!host.empty() && host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);
  } else if (auto colon = host.find(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  return IsLoopbackHost(host);
}

void Simulator::Notify(const Location& loc, std::string_view type, std::string notification) {
  if (loc.notification_url.empty()) return;
  if (type != "TEST_NOTIFICATION" &&
      std::find(loc.notification_types.begin(), loc.notification_types.end(), type) == loc.notification_types.end())
    return;
  OutgoingNotification n;
  n.id = GuidFrom(options_.seed ^ 0x6e6f746966ULL, ++notification_counter_);
  n.type = std::string(type);
  n.uid = loc.uid;
  n.url = loc.notification_url;
  n.auth_token = loc.notification_auth_token;
  JsonWriter w(notification.size() + 160);
  w.BeginObject();
  w.Key("notification");
  w.Raw(notification);
  w.Field("notificationId", n.id);
  w.Field("notificationType", type);
  w.Field("uId", loc.uid);
  w.EndObject();
  n.body = std::move(w).Take();
  notifier_->Enqueue(std::move(n));
}

void Simulator::NotifyEvent(const Location& loc, const Event& e) {
  const bool users_event = e.type == EventType::kCreate || e.type == EventType::kUpdate || e.type == EventType::kRetire;
  const char* type = users_event ? "USER_MANAGEMENT" : "ASSET_MANAGEMENT";
  if (loc.notification_url.empty()) return;
  // Groups of outcomes with one asset and one error number, in order of first appearance.
  std::vector<std::pair<std::pair<std::uint32_t, int>, std::vector<const EventOutcome*>>> groups;
  for (const EventOutcome& o : e.outcomes) {
    const auto key = std::make_pair(users_event ? EventOutcome::kNoAsset : o.asset, o.error_number);
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == key; });
    if (it == groups.end()) {
      groups.push_back({key, {}});
      it = groups.end() - 1;
    }
    it->second.push_back(&o);
  }
  if (groups.empty()) groups.push_back({{EventOutcome::kNoAsset, 0}, {}});  // Nothing to report: one empty SUCCESS.
  for (const auto& [key, outcomes] : groups) {
    const Asset* asset = key.first == EventOutcome::kNoAsset ? nullptr : &loc.assets()[key.first];
    for (std::size_t begin = 0; begin == 0 || begin < outcomes.size(); begin += kMaxElements) {
      const std::vector<const EventOutcome*> chunk(
          outcomes.begin() + static_cast<std::ptrdiff_t>(begin),
          outcomes.begin() + static_cast<std::ptrdiff_t>(std::min(outcomes.size(), begin + kMaxElements)));
      JsonWriter w(256 + chunk.size() * 64);
      w.BeginObject();
      if (!users_event) {
        w.Key("assignments");
        w.BeginArray();
        for (const EventOutcome* o : chunk) {
          w.BeginObject();
          if (o->asset != EventOutcome::kNoAsset) {
            w.Field("adamId", loc.assets()[o->asset].adam_id);
            w.Field("pricingParam", loc.assets()[o->asset].pricing_param);
          }
          if (!o->client_user_id.empty()) w.Field("clientUserId", o->client_user_id);
          if (!o->serial_number.empty()) w.Field("serialNumber", o->serial_number);
          w.EndObject();
        }
        w.EndArray();
      }
      if (key.second != 0) {
        w.Key("error");
        w.Raw(ErrorJson(key.second, asset, chunk));
      }
      w.Field("eventId", e.id);
      w.Field("result", key.second == 0 ? "SUCCESS" : "FAILURE");
      w.Field("type", EventTypeName(e.type));
      if (users_event) {
        w.Key("users");
        w.BeginArray();
        for (const EventOutcome* o : chunk) {
          w.BeginObject();
          w.Field("clientUserId", o->client_user_id);
          if (auto idx = loc.FindUser(o->client_user_id); idx && key.second == 0) {
            const User& u = loc.users()[*idx];
            if (!u.email.empty()) w.Field("email", u.email);
            if (!u.id_hash.empty()) w.Field("idHash", u.id_hash);
            if (!u.invite_code.empty()) w.Field("inviteCode", u.invite_code);
            if (!u.managed_apple_id.empty()) w.Field("managedAppleId", u.managed_apple_id);
            w.Field("status", UserStatusName(u.status));
          }
          w.EndObject();
        }
        w.EndArray();
      }
      w.EndObject();
      Notify(loc, type, std::move(w).Take());
      if (outcomes.empty()) break;
    }
  }
}

void Simulator::NotifyAssetCount(const Location& loc, const Asset& asset, std::int64_t delta) {
  JsonWriter w(128);
  w.BeginObject();
  w.Field("adamId", asset.adam_id);
  w.Field("countDelta", delta);
  w.Field("pricingParam", asset.pricing_param);
  w.EndObject();
  Notify(loc, "ASSET_COUNT", std::move(w).Take());
}

void Simulator::OnEventsResolved(Location& loc, const std::vector<std::string>& ids) {
  for (const std::string& id : ids) {
    Event* e = loc.MutableEvent(id);
    if (!e) continue;
    NotifyEvent(loc, *e);
    std::vector<EventOutcome>().swap(e->outcomes);  // Only notifications need them.
  }
}

Result<std::string> Simulator::AcceptInvitations(Location& loc, const std::vector<std::string>& client_user_ids,
                                                 const std::string& apple_account) {
  if (!apple_account.empty() && client_user_ids.size() != 1)
    return Fail(Error::InvalidArgument("idHash names one person's Apple Account: give exactly one clientUserId"));
  std::vector<std::uint32_t> accepted;
  for (const std::string& id : client_user_ids) {
    auto idx = loc.FindUser(id);
    if (!idx) return Fail(Error::NotFound("no such user: " + id));
    if (loc.users()[*idx].status != UserStatus::kRegistered)
      return Fail(Error::FailedPrecondition("user " + id + " is not Registered"));
    if (std::find(accepted.begin(), accepted.end(), *idx) != accepted.end())
      return Fail(Error::InvalidArgument("duplicate clientUserId " + id));
    accepted.push_back(*idx);
  }
  if (!apple_account.empty()) {
    // Apple: an Apple Account is associated with one user of a location at a
    // time; the person is told so (9641, "Apple Account already associated with
    // another user" in Apple's "Interpreting Error Codes"; 9616 there is "License
    // already assigned") and the user stays Registered. A Retired user's idHash
    // may remain and does not hold the account.
    for (std::uint32_t i = 0; i < loc.users().size(); ++i) {
      const User& other = loc.users()[i];
      if (i != accepted[0] && other.id_hash == apple_account && other.status != UserStatus::kRetired)
        return Fail(Error::AlreadyExists(AppleDefaultMessage(kErrAppleAccountAlreadyAssociated)));
    }
    loc.MutableUser(accepted[0]).id_hash = apple_account;
  }
  JsonWriter out;
  out.BeginArray();
  std::vector<std::string> entries;  // One associatedUsers element per user.
  for (std::uint32_t idx : accepted) {
    User& u = loc.MutableUser(idx);
    const std::string invite = u.invite_code;
    u.status = UserStatus::kAssociated;
    if (u.id_hash.empty()) {
      const std::string g = GuidFrom(loc.seed ^ 0x69646861736855ULL, HashString(u.client_user_id));
      for (char c : g)
        if (c != '-') u.id_hash.push_back(c);
    }
    u.invite_code.clear();
    u.version = loc.next_stamp();
    JsonWriter e;
    e.BeginObject();
    e.Field("clientUserId", u.client_user_id);
    e.Field("email", u.email);
    e.Field("idHash", u.id_hash);
    e.Field("inviteCode", invite);
    e.Field("status", UserStatusName(u.status));
    e.EndObject();
    entries.push_back(std::move(e).Take());
    out.Raw(entries.back());
  }
  out.EndArray();
  if (!accepted.empty()) loc.BumpVersion();
  for (std::size_t begin = 0; begin < entries.size(); begin += kMaxElements) {
    JsonWriter w;
    w.BeginObject();
    w.Key("associatedUsers");
    w.BeginArray();
    for (std::size_t i = begin; i < std::min(entries.size(), begin + kMaxElements); ++i) w.Raw(entries[i]);
    w.EndArray();
    w.EndObject();
    Notify(loc, "USER_ASSOCIATED", std::move(w).Take());
  }
  return std::move(out).Take();
}

void Simulator::PumpEvents() {
  std::unique_lock pump_lock(pump_mu_);
  while (!pump_stop_) {
    pump_cv_.wait_for(pump_lock, std::chrono::milliseconds(10));
    if (pump_stop_) break;
    const Timestamp now = clock_.Now();
    bool due = false;
    {
      std::shared_lock lock(mu_);
      for (const auto& loc : locations_) {
        if (loc->notification_url.empty()) continue;
        auto next = loc->NextDue();
        if (next && *next <= now) due = true;
      }
    }
    if (!due) continue;
    std::unique_lock lock(mu_);
    for (auto& loc : locations_)
      if (!loc->notification_url.empty()) OnEventsResolved(*loc, loc->ResolveDue(now));
  }
}

}  // namespace vppd::sim
