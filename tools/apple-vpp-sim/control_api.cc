// The control API under /_sim/ (README.md "Control API"): inspect and change
// the simulated world from tests. JSON in and out; errors are
// {"error": "<message>"} with 400/404/405/409.
#include <boost/json.hpp>

#include "apple/client.h"
#include "generator.h"
#include "sim_internal.h"

namespace vppd::sim {

namespace json = boost::json;

namespace {

http::Response ControlError(int status, std::string message) {
  json::object o;
  o["error"] = message;
  return http::Response::Json(status, json::serialize(o));
}

http::Response ControlOk(const json::value& v) { return http::Response::Json(200, json::serialize(v)); }

http::Response MethodNotAllowed(const char* allow) {
  http::Response r = ControlError(405, std::string("method not allowed; use ") + allow);
  r.headers.emplace_back("Allow", allow);
  return r;
}

// Parses a JSON object body; an empty body is an empty object.
Result<json::object> ParseObject(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return json::object();
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(body.data(), body.size()), ec);
  if (ec) return Fail(Error::InvalidArgument("body is not JSON: " + ec.message()));
  if (!v.is_object()) return Fail(Error::InvalidArgument("body must be a JSON object"));
  return std::move(v.get_object());
}

std::optional<std::string> StringMember(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string(v->get_string().data(), v->get_string().size());
}

std::optional<std::int64_t> IntMember(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v) return std::nullopt;
  if (const auto* i = v->if_int64()) return *i;
  if (const auto* u = v->if_uint64(); u && *u <= INT64_MAX) return static_cast<std::int64_t>(*u);
  return std::nullopt;
}

json::object LocationJson(const Location& loc) {
  json::object o;
  o["uId"] = loc.uid;
  o["name"] = loc.name;
  o["orgName"] = loc.org_name;
  o["countryISO2ACode"] = loc.country;
  o["assets"] = loc.assets().size();
  o["assignments"] = loc.assignments().size();
  o["users"] = loc.users().size();
  o["versionId"] = loc.version_id();
  if (loc.mdm_info)
    o["mdmInfo"] = {{"id", loc.mdm_info->id}, {"name", loc.mdm_info->name}, {"metadata", loc.mdm_info->metadata}};
  json::array tokens;
  for (const Token& t : loc.tokens)
    tokens.push_back(
        {{"sToken", t.stoken}, {"state", TokenStateName(t.state)}, {"expDate", FormatAppleDate(t.expiration)}});
  o["tokens"] = std::move(tokens);
  return o;
}

// "/_sim/locations/<uId>/<rest>" → (uId, rest).
std::optional<std::pair<std::string_view, std::string_view>> SplitLocationPath(std::string_view path) {
  constexpr std::string_view kPrefix = "/_sim/locations/";
  if (path.rfind(kPrefix, 0) != 0) return std::nullopt;
  std::string_view rest = path.substr(kPrefix.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) return std::pair{rest, std::string_view()};
  return std::pair{rest.substr(0, slash), rest.substr(slash + 1)};
}

}  // namespace

http::Response Simulator::HandleControl(const http::Request& req, std::string_view path, const Query& query) {
  (void)query;
  const std::string& m = req.method;
  auto body = ParseObject(req.body);
  if (!body) return ControlError(400, body.error().message);
  const json::object& in = *body;

  // ---- counters
  if (path == "/_sim/counters") {
    std::lock_guard lock(counters_mu_);
    if (m == "DELETE") {
      counters_.clear();
      location_counters_.clear();
      return ControlOk(json::object{{"cleared", true}});
    }
    if (m != "GET") return MethodNotAllowed("GET, DELETE");
    json::object total, by_location;
    for (const auto& [k, v] : counters_) total[k] = v;
    for (const auto& [uid, paths] : location_counters_) {
      json::object p;
      for (const auto& [k, v] : paths) p[k] = v;
      by_location[uid] = std::move(p);
    }
    return ControlOk(json::object{{"total", std::move(total)}, {"byLocation", std::move(by_location)}});
  }

  // ---- faults
  if (path == "/_sim/faults") {
    if (m == "GET") {
      json::array rules;
      for (const FaultRule& r : faults_.List()) rules.push_back(json::parse(FaultRuleJson(r)));
      return ControlOk(json::object{{"faults", std::move(rules)}});
    }
    if (m == "DELETE") {
      faults_.Clear();
      return ControlOk(json::object{{"cleared", true}});
    }
    if (m != "POST") return MethodNotAllowed("GET, POST, DELETE");
    auto rule = ParseFaultRule(req.body);
    if (!rule) return ControlError(400, rule.error().message);
    const int id = faults_.Add(std::move(*rule));
    return ControlOk(json::object{{"id", id}});
  }
  if (path.rfind("/_sim/faults/", 0) == 0) {
    if (m != "DELETE") return MethodNotAllowed("DELETE");
    auto id = ParseInt32Param(path.substr(std::string_view("/_sim/faults/").size()));
    if (!id || !faults_.Remove(static_cast<int>(*id))) return ControlError(404, "no such fault rule");
    return ControlOk(json::object{{"removed", *id}});
  }

  // ---- notifications: the delivery log and faults on deliveries
  if (path == "/_sim/notifications") {
    if (m == "DELETE") {
      notifier_->ClearLog();
      return ControlOk(json::object{{"cleared", true}});
    }
    if (m != "GET") return MethodNotAllowed("GET, DELETE");
    json::array out;
    for (const DeliveryRecord& d : notifier_->Deliveries()) {
      boost::system::error_code ec;
      json::value sent = json::parse(d.body, ec);
      json::array faults;
      for (const auto& f : d.faults) faults.push_back(json::string(f));
      json::object o{{"notificationId", d.notification_id},
                     {"notificationType", d.type},
                     {"uId", d.uid},
                     {"url", d.url},
                     {"attempt", d.attempt},
                     {"outcome", d.outcome},
                     {"status", d.status},
                     {"duplicate", d.duplicate},
                     {"wrongBearer", d.wrong_bearer},
                     {"faults", std::move(faults)},
                     {"at", FormatAppleDate(d.at)},
                     {"body", ec ? json::value(nullptr) : std::move(sent)}};
      if (!d.error.empty()) o["error"] = d.error;
      out.push_back(std::move(o));
    }
    return ControlOk(json::object{{"deliveries", std::move(out)}, {"queued", notifier_->Queued()}});
  }
  if (path == "/_sim/notificationFaults") {
    if (m == "GET") {
      json::array rules;
      for (const auto& r : notifier_->Faults()) rules.push_back(json::parse(NotificationFaultRuleJson(r)));
      return ControlOk(json::object{{"faults", std::move(rules)}});
    }
    if (m == "DELETE") {
      for (const auto& r : notifier_->Faults()) notifier_->RemoveFault(r.id);
      return ControlOk(json::object{{"cleared", true}});
    }
    if (m != "POST") return MethodNotAllowed("GET, POST, DELETE");
    auto rule = ParseNotificationFaultRule(req.body);
    if (!rule) return ControlError(400, rule.error().message);
    return ControlOk(json::object{{"id", notifier_->AddFault(std::move(*rule))}});
  }
  if (path.rfind("/_sim/notificationFaults/", 0) == 0) {
    if (m != "DELETE") return MethodNotAllowed("DELETE");
    auto id = ParseInt32Param(path.substr(std::string_view("/_sim/notificationFaults/").size()));
    if (!id || !notifier_->RemoveFault(static_cast<int>(*id))) return ControlError(404, "no such fault rule");
    return ControlOk(json::object{{"removed", *id}});
  }

  // ---- settings
  if (path == "/_sim/settings") {
    std::unique_lock lock(mu_);
    if (m == "POST") {
      if (auto v = IntMember(in, "pageSize")) {
        if (*v < 1 || *v > 100000) return ControlError(400, "pageSize must be in [1, 100000]");
        page_size_ = static_cast<std::size_t>(*v);
      }
      if (auto v = IntMember(in, "eventDelayMs")) {
        if (*v < 0 || *v > 600000) return ControlError(400, "eventDelayMs must be in [0, 600000]");
        event_delay_ = std::chrono::milliseconds(*v);
      }
      if (const json::value* v = in.if_contains("notificationRetryScale")) {
        if (!v->is_number() || v->to_number<double>() < 0 || v->to_number<double>() > 1000)
          return ControlError(400, "notificationRetryScale must be a number in [0, 1000]");
        notifier_->SetRetryScale(v->to_number<double>());
      }
      if (const json::value* v = in.if_contains("rateLimit")) {
        if (!v->is_bool()) return ControlError(400, "rateLimit must be true or false");
        rate_limit_ = v->get_bool();
      }
      if (auto v = StringMember(in, "invalidTokenReply")) {
        if (*v != "9601" && *v != "9622") return ControlError(400, "invalidTokenReply must be \"9601\" or \"9622\"");
        invalid_token_http_200_ = *v == "9622";
      }
      if (const json::value* v = in.if_contains("limits")) {
        const json::object* lo = v->if_object();
        if (!lo) return ControlError(400, "limits must be an object");
        Limits l = limits_;
        const std::pair<const char*, int*> fields[] = {
            {"maxAssets", &l.max_assets},
            {"maxClientUserIds", &l.max_client_user_ids},
            {"maxSerialNumbers", &l.max_serial_numbers},
            {"maxRevokeClientUserIds", &l.max_revoke_client_user_ids},
            {"maxRevokeSerialNumbers", &l.max_revoke_serial_numbers},
            {"maxUsers", &l.max_users},
            {"maxNotificationLength", &l.max_notification_length},
            {"maxMdmNameLength", &l.max_mdm_name_length},
            {"maxMdmMetadataLength", &l.max_mdm_metadata_length},
            {"maxMdmIdLength", &l.max_mdm_id_length},
            {"maxRequestPerSecond", &l.max_request_per_second},
        };
        for (const auto& kv : *lo) {
          const std::string_view key(kv.key().data(), kv.key().size());
          auto it = std::find_if(std::begin(fields), std::end(fields), [&](const auto& f) { return key == f.first; });
          auto n = IntMember(*lo, key);
          if (it == std::end(fields)) return ControlError(400, "unknown limit " + std::string(key));
          if (!n || *n < 0 || *n > 1000000) return ControlError(400, std::string(key) + " must be in [0, 1000000]");
          *it->second = static_cast<int>(*n);
        }
        limits_ = l;
      }
    } else if (m != "GET") {
      return MethodNotAllowed("GET, POST");
    }
    return ControlOk(json::object{{"pageSize", page_size_},
                                  {"eventDelayMs", event_delay_.count()},
                                  {"rateLimit", rate_limit_},
                                  {"invalidTokenReply", invalid_token_http_200_ ? "9622" : "9601"},
                                  {"maxRequestPerSecond", limits_.max_request_per_second},
                                  {"notificationRetryScale", notifier_->retry_scale()}});
  }

  // ---- reset
  if (path == "/_sim/reset") {
    if (m != "POST") return MethodNotAllowed("POST");
    std::unique_lock lock(mu_);
    if (auto s = Build(); !s) return ControlError(500, s.error().message);
    page_size_ = std::max<std::size_t>(1, options_.page_size);
    limits_ = options_.limits;
    invalid_token_http_200_ = options_.invalid_token_http_200;
    rate_limit_ = options_.rate_limit;
    event_delay_ = options_.event_delay;
    faults_.Clear();
    rate_limiter_.Clear();
    notifier_->Reset(options_.notification_retry_scale);
    notification_counter_ = 0;
    std::lock_guard clock(counters_mu_);
    counters_.clear();
    location_counters_.clear();
    return ControlOk(json::object{{"reset", true}});
  }

  // ---- token state: {"sToken", "state": active|expired|revoked|invalid, "expDate"?}
  if (path == "/_sim/tokens") {
    if (m != "POST") return MethodNotAllowed("POST");
    auto stoken = StringMember(in, "sToken");
    if (!stoken) return ControlError(400, "sToken is required");
    std::unique_lock lock(mu_);
    auto it = tokens_.find(*stoken);
    if (it == tokens_.end()) return ControlError(404, "no such sToken");
    Token& t = locations_[it->second.first]->tokens[it->second.second];
    if (auto s = StringMember(in, "state")) {
      auto state = TokenStateFromName(*s);
      if (!state) return ControlError(400, "state must be active, expired, revoked or invalid");
      t.state = *state;
    }
    if (auto exp = StringMember(in, "expDate")) {
      // Changes the expiry the simulator enforces and reports; the sToken text
      // (which embeds the original expDate) stays, as a client has stored it.
      auto ts = ParseIso8601(*exp);
      if (!ts) return ControlError(400, ts.error().message);
      t.expiration = *ts;
    }
    return ControlOk(json::object{
        {"sToken", t.stoken}, {"state", TokenStateName(t.state)}, {"expDate", FormatAppleDate(t.expiration)}});
  }

  // ---- events: resolve everything pending now (tests that do not want to wait),
  //      held events included; or, with {"eventId"}, release just that one.
  if (path == "/_sim/events/resolve") {
    if (m != "POST") return MethodNotAllowed("POST");
    std::optional<std::string> event_id;
    if (!req.body.empty()) {
      auto in = ParseObject(req.body);
      if (!in) return ControlError(400, in.error().message);
      event_id = StringMember(*in, "eventId");
      if (in->contains("eventId") && !event_id) return ControlError(400, "eventId must be a string");
    }
    std::unique_lock lock(mu_);
    json::array resolved;
    for (auto& loc : locations_) {
      if (event_id) {
        if (loc->ResolveEvent(*event_id)) {
          resolved.push_back(json::string(*event_id));
          OnEventsResolved(*loc, {*event_id});
        }
        continue;
      }
      auto ids = loc->ResolveAll();
      for (const auto& id : ids) resolved.push_back(json::string(id));
      OnEventsResolved(*loc, ids);
    }
    if (event_id && resolved.empty()) return ControlError(404, "no pending event with that eventId");
    return ControlOk(json::object{{"resolved", true}, {"eventIds", std::move(resolved)}});
  }

  // ---- locations
  if (path == "/_sim/locations") {
    std::unique_lock lock(mu_);
    if (m == "GET") {
      json::array out;
      for (const auto& loc : locations_) out.push_back(LocationJson(*loc));
      return ControlOk(json::object{{"locations", std::move(out)}});
    }
    if (m != "POST") return MethodNotAllowed("GET, POST");
    GenerateOptions g;
    g.seed = options_.seed;
    g.index = static_cast<int>(locations_.size());
    g.assets = IntMember(in, "assets").value_or(std::min<std::int64_t>(options_.assets, 50));
    g.assignments = IntMember(in, "assignments").value_or(std::min<std::int64_t>(options_.assignments, 500));
    g.users = IntMember(in, "users").value_or(-1);
    if (g.assets < 0 || g.assets > 1'000'000 || g.assignments < 0 || g.assignments > 10'000'000)
      return ControlError(400, "assets must be in [0, 1e6] and assignments in [0, 1e7]");
    g.name = StringMember(in, "name").value_or("");
    g.token_expiration = options_.token_expiration;
    g.history_limit = options_.history_limit;
    auto loc = GenerateLocation(g);
    for (const auto& other : locations_)
      if (other->uid == loc->uid) return ControlError(409, "generated uId collides; try again with another name");
    json::object out = LocationJson(*loc);
    locations_.push_back(std::move(loc));
    IndexTokens();
    return ControlOk(out);
  }

  auto split = SplitLocationPath(path);
  if (!split) return ControlError(404, "no such control endpoint: " + std::string(path));
  std::unique_lock lock(mu_);
  Location* loc = nullptr;
  for (auto& l : locations_)
    if (l->uid == split->first) loc = l.get();
  if (!loc) return ControlError(404, "no such location: " + std::string(split->first));
  const std::string_view action = split->second;

  if (action.empty()) {
    if (m != "GET") return MethodNotAllowed("GET");
    // Apple works its events off in its own time, not when a client next calls:
    // what a test observes includes every event that is due by now.
    OnEventsResolved(*loc, loc->ResolveDue(clock_.Now()));
    return ControlOk(LocationJson(*loc));
  }
  if (action == "tokens") {
    if (m != "POST") return MethodNotAllowed("POST");
    Timestamp exp = options_.token_expiration;
    if (auto e = StringMember(in, "expDate")) {
      auto ts = ParseIso8601(*e);
      if (!ts) return ControlError(400, ts.error().message);
      exp = *ts;
    }
    const std::size_t idx = IssueToken(*loc, exp);
    IndexTokens();
    return ControlOk(json::object{{"sToken", loc->tokens[idx].stoken}, {"uId", loc->uid}});
  }
  if (action == "mdmInfo") {
    if (m != "POST") return MethodNotAllowed("POST");
    // Another MDM takes the location over (or, with an empty body, nobody owns it).
    if (in.empty()) {
      loc->mdm_info.reset();
    } else {
      auto id = StringMember(in, "id"), name = StringMember(in, "name"), meta = StringMember(in, "metadata");
      if (!id || !name || !meta) return ControlError(400, "id, name and metadata are required strings");
      loc->mdm_info = MdmInfo{*id, *name, *meta};
    }
    return ControlOk(LocationJson(*loc));
  }
  if (action == "purchase" || action == "refund") {
    if (m != "POST") return MethodNotAllowed("POST");
    auto adam = StringMember(in, "adamId");
    auto count = IntMember(in, "count");
    if (!adam || !count || *count <= 0) return ControlError(400, "adamId (string) and count (> 0) are required");
    auto pricing = StringMember(in, "pricingParam");
    auto idx = loc->FindAsset(*adam, pricing ? std::optional<std::string_view>(*pricing) : std::nullopt);
    if (!idx) return ControlError(404, "no such asset: " + *adam);
    if (auto s = loc->ChangeTotal(*idx, action == "purchase" ? *count : -*count); !s)
      return ControlError(409, s.error().message);
    const Asset& as = loc->assets()[*idx];
    NotifyAssetCount(*loc, as, action == "purchase" ? *count : -*count);
    return ControlOk(json::object{{"adamId", as.adam_id},
                                  {"pricingParam", as.pricing_param},
                                  {"totalCount", as.ReportedTotal()},
                                  {"assignedCount", as.assigned_count},
                                  {"availableCount", as.AvailableCount()},
                                  {"versionId", loc->version_id()}});
  }
  if (action == "assignments") {
    // Out-of-band changes, as if made in Apple Business Manager:
    // {"add": [{adamId, pricingParam?, clientUserId|serialNumber}], "remove": [...]}
    if (m != "POST") return MethodNotAllowed("POST");
    struct Change {
      bool add;
      std::uint32_t asset;
      SubjectKind kind;
      std::string subject;
    };
    std::vector<Change> changes;
    for (const char* key : {"add", "remove"}) {
      const json::value* v = in.if_contains(key);
      if (!v) continue;
      if (!v->is_array()) return ControlError(400, std::string(key) + " must be an array");
      for (const json::value& item : v->get_array()) {
        if (!item.is_object()) return ControlError(400, std::string(key) + " items must be objects");
        const json::object& io = item.get_object();
        auto adam = StringMember(io, "adamId");
        auto pricing = StringMember(io, "pricingParam");
        auto user = StringMember(io, "clientUserId");
        auto serial = StringMember(io, "serialNumber");
        if (!adam || user.has_value() == serial.has_value())
          return ControlError(400, "each item needs adamId and exactly one of clientUserId, serialNumber");
        auto idx = loc->FindAsset(*adam, pricing ? std::optional<std::string_view>(*pricing) : std::nullopt);
        if (!idx) return ControlError(404, "no such asset: " + *adam);
        if (user && !loc->FindUser(*user)) return ControlError(404, "no such user: " + *user);
        if (serial && !loc->assets()[*idx].device_assignable)
          return ControlError(409, "asset " + *adam + " is not device-assignable");
        changes.push_back({std::string_view(key) == "add", *idx, user ? SubjectKind::kUser : SubjectKind::kDevice,
                           user ? *user : *serial});
      }
    }
    std::int64_t added = 0, removed = 0;
    for (const Change& c : changes) {
      const std::uint32_t subject =
          c.kind == SubjectKind::kUser ? *loc->FindUser(c.subject) : loc->InternSerial(c.subject);
      if (c.add) {
        if (loc->assets()[c.asset].AvailableCount() <= 0 && !loc->IsAssigned(c.asset, c.kind, subject)) {
          if (added + removed > 0) loc->BumpVersion();  // Keep what was already applied visible.
          return ControlError(409, "no license available for " + loc->assets()[c.asset].adam_id);
        }
        added += loc->Assign(c.asset, c.kind, subject);
      } else {
        removed += loc->Unassign(c.asset, c.kind, subject);
      }
    }
    if (added + removed > 0) loc->BumpVersion();
    return ControlOk(json::object{{"added", added}, {"removed", removed}, {"versionId", loc->version_id()}});
  }
  if (action == "export") {
    // The location in the --data file format (README "Data file"): a snapshot a
    // later run can load with --data.
    if (m != "GET") return MethodNotAllowed("GET");
    json::object o;
    o["uId"] = loc->uid;
    o["name"] = loc->name;
    o["orgName"] = loc->org_name;
    o["countryISO2ACode"] = loc->country;
    o["defaultPlatform"] = loc->default_platform;
    o["websiteURL"] = loc->website_url;
    if (loc->mdm_info)
      o["mdmInfo"] = {{"id", loc->mdm_info->id}, {"name", loc->mdm_info->name}, {"metadata", loc->mdm_info->metadata}};
    json::array tokens;
    for (const Token& t : loc->tokens)
      tokens.push_back(
          {{"token", t.inner}, {"expDate", FormatAppleDate(t.expiration)}, {"state", TokenStateName(t.state)}});
    o["tokens"] = std::move(tokens);
    json::array assets;
    for (const Asset& a : loc->assets()) {
      json::array platforms;
      for (std::uint8_t bit = 1; bit <= kVisionOS; bit <<= 1)
        if (a.platforms & bit) platforms.push_back(json::string(PlatformName(bit)));
      json::object ao{{"adamId", a.adam_id},
                      {"pricingParam", a.pricing_param},
                      {"productType", ProductTypeName(a.product_type)},
                      {"deviceAssignable", a.device_assignable},
                      {"revocable", a.revocable},
                      {"unlimited", a.unlimited},
                      {"supportedPlatforms", std::move(platforms)},
                      {"totalCount", a.total_count},
                      {"retiredCount", a.retired_count},
                      {"name", a.name},
                      {"version", a.version}};
      if (!a.bundle_id.empty()) ao["bundleId"] = a.bundle_id;
      assets.push_back(std::move(ao));
    }
    o["assets"] = std::move(assets);
    json::array users;
    for (const User& u : loc->users()) {
      json::object uo{{"clientUserId", u.client_user_id}, {"status", UserStatusName(u.status)}};
      if (!u.email.empty()) uo["email"] = u.email;
      if (!u.managed_apple_id.empty()) uo["managedAppleId"] = u.managed_apple_id;
      if (!u.invite_code.empty()) uo["inviteCode"] = u.invite_code;
      if (!u.id_hash.empty()) uo["idHash"] = u.id_hash;
      users.push_back(std::move(uo));
    }
    o["users"] = std::move(users);
    json::array assignments;
    assignments.reserve(loc->assignments().size());
    for (const Assignment& a : loc->assignments()) {
      const Asset& asset = loc->assets()[a.asset];
      json::object ao{{"adamId", asset.adam_id}, {"pricingParam", asset.pricing_param}};
      if (a.kind == SubjectKind::kUser)
        ao["clientUserId"] = loc->users()[a.subject].client_user_id;
      else
        ao["serialNumber"] = loc->serials()[a.subject];
      assignments.push_back(std::move(ao));
    }
    o["assignments"] = std::move(assignments);
    return ControlOk(json::object{{"locations", json::array{std::move(o)}}});
  }
  if (action == "acceptInvitation") {
    // The people behind Registered users accept their invitations:
    // {"clientUserIds": [...], "idHash"?} → Associated, an idHash, USER_ASSOCIATED;
    // with idHash (one user) the person signs in with that Apple Account, and
    // one another user holds is refused with Apple's 9641.
    if (m != "POST") return MethodNotAllowed("POST");
    const json::value* v = in.if_contains("clientUserIds");
    if (!v || !v->is_array() || v->get_array().empty())
      return ControlError(400, "clientUserIds must be a non-empty array of strings");
    std::vector<std::string> ids;
    for (const json::value& e : v->get_array()) {
      if (!e.is_string()) return ControlError(400, "clientUserIds must be a non-empty array of strings");
      ids.emplace_back(e.get_string().data(), e.get_string().size());
    }
    const json::value* account = in.if_contains("idHash");
    if (account && (!account->is_string() || account->get_string().empty()))
      return ControlError(400, "idHash must be a non-empty string");
    auto accepted = AcceptInvitations(*loc, ids, account ? std::string(account->get_string()) : std::string());
    if (!accepted) {
      const Code c = accepted.error().code;
      // Answered as Apple answers the person: its ErrorResponse.
      if (c == Code::kAlreadyExists) return AppleErrorReply(kErrAppleAccountAlreadyAssociated);
      return ControlError(c == Code::kNotFound             ? 404
                          : c == Code::kFailedPrecondition ? 409
                                                           : 400,
                          accepted.error().message);
    }
    return ControlOk(json::object{{"associatedUsers", json::parse(*accepted)}, {"versionId", loc->version_id()}});
  }
  if (action == "testNotification") {
    if (m != "POST") return MethodNotAllowed("POST");
    if (loc->notification_url.empty()) return ControlError(409, "the location has no notificationUrl");
    Notify(*loc, "TEST_NOTIFICATION", "{}");
    return ControlOk(json::object{{"sent", true}});
  }
  if (action == "bumpVersion") {
    if (m != "POST") return MethodNotAllowed("POST");
    loc->TouchOneAssignment();
    loc->BumpVersion();
    return ControlOk(json::object{{"versionId", loc->version_id()}});
  }
  return ControlError(404, "no such control endpoint: " + std::string(path));
}

}  // namespace vppd::sim
