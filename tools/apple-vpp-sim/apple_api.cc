// The Apple v2 endpoints (spec §2–§4, §6): routing, authentication, faults,
// validation and the response bodies.
#include <algorithm>
#include <set>

#include <boost/json.hpp>

#include "json_writer.h"
#include "sim_internal.h"

namespace vppd::sim {

namespace json = boost::json;

namespace {

enum class Op : std::uint8_t {
  kServiceConfig,
  kClientConfig,
  kAssets,
  kAssignments,
  kUsers,
  kAssociate,
  kDisassociate,
  kRevoke,
  kUsersCreate,
  kUsersUpdate,
  kUsersRetire,
  kStatus,
};

struct Endpoint {
  std::string_view name;  // Path below /mdm/v2/.
  Op op;
  bool get;
  bool post;
};

constexpr Endpoint kEndpoints[] = {
    {"service/config", Op::kServiceConfig, true, false},
    {"client/config", Op::kClientConfig, true, true},
    {"assets", Op::kAssets, true, false},
    {"assignments", Op::kAssignments, true, false},
    {"users", Op::kUsers, true, false},
    {"assets/associate", Op::kAssociate, false, true},
    {"assets/disassociate", Op::kDisassociate, false, true},
    {"assets/revoke", Op::kRevoke, false, true},
    {"users/create", Op::kUsersCreate, false, true},
    {"users/update", Op::kUsersUpdate, false, true},
    {"users/retire", Op::kUsersRetire, false, true},
    {"status", Op::kStatus, true, false},
};

// The common tail of every authenticated response (spec §2): mdmInfo once set,
// tokenExpirationDate (always, as in all of Apple's examples), uId.
void WriteEnvelope(JsonWriter& w, const Location& loc, const Token& token) {
  if (loc.mdm_info) {
    w.Key("mdmInfo");
    w.BeginObject();
    w.Field("id", loc.mdm_info->id);
    w.Field("metadata", loc.mdm_info->metadata);
    w.Field("name", loc.mdm_info->name);
    w.EndObject();
  }
  w.Field("tokenExpirationDate", FormatAppleDate(token.expiration));
  w.Field("uId", loc.uid);
}

void WritePaging(JsonWriter& w, std::int64_t index, const PageWindow& page) {
  w.Field("currentPageIndex", index);
  if (page.has_next) w.Field("nextPageIndex", index + 1);
  w.Field("size", static_cast<std::int64_t>(page.end - page.begin));
  w.Field("totalPages", page.total_pages);
}

// pageIndex: absent → 0; anything but a non-negative int32 → 9650.
std::optional<std::int64_t> PageIndexParam(const Simulator::Query& q) {
  auto v = q.Get("pageIndex");
  if (!v) return 0;
  auto n = ParseInt32Param(*v);
  if (!n || *n < 0) return std::nullopt;
  return n;
}

http::Response BadPageIndex() { return AppleErrorReply(kErrBadPageIndex); }

http::Response Ok(std::string body) { return http::Response::Json(200, std::move(body)); }

// True for Content-Type application/json (parameters such as charset allowed).
bool IsJsonContentType(const http::Request& req) {
  auto ct = req.Header("Content-Type");
  if (!ct) return false;
  std::string_view v = *ct;
  v = v.substr(0, v.find(';'));
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  constexpr std::string_view kJson = "application/json";
  return v.size() == kJson.size() && std::equal(v.begin(), v.end(), kJson.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

// Reads an optional array of strings; false when present but not one.
bool ReadStringArray(const json::object& o, std::string_view key, std::vector<std::string>* out) {
  const json::value* v = o.if_contains(key);
  if (!v || v->is_null()) return true;
  const json::array* a = v->if_array();
  if (!a) return false;
  for (const json::value& e : *a) {
    const json::string* s = e.if_string();
    if (!s) return false;
    out->emplace_back(s->data(), s->size());
  }
  return true;
}

template <class T>
bool HasDuplicates(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return std::adjacent_find(v.begin(), v.end()) != v.end();
}

// An errorInfo naming assets.
std::string AssetsInfo(const Location& loc, const std::vector<std::uint32_t>& assets) {
  JsonWriter w;
  w.BeginObject();
  w.Key("assets");
  w.BeginArray();
  for (std::uint32_t a : assets) {
    w.BeginObject();
    w.Field("adamId", loc.assets()[a].adam_id);
    w.Field("pricingParam", loc.assets()[a].pricing_param);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::move(w).Take();
}

// Simple but strict address check for 9717: one '@', a non-empty local part,
// a dotted domain, no whitespace or control characters, at most 254 bytes.
bool ValidEmail(std::string_view e) {
  if (e.empty() || e.size() > 254) return false;
  const auto at = e.find('@');
  if (at == 0 || at == std::string_view::npos || e.find('@', at + 1) != std::string_view::npos) return false;
  const std::string_view domain = e.substr(at + 1);
  const auto dot = domain.find('.');
  if (dot == 0 || dot == std::string_view::npos || domain.back() == '.') return false;
  return std::none_of(e.begin(), e.end(), [](char c) { return static_cast<unsigned char>(c) <= ' '; });
}

constexpr std::string_view kNotificationTypes[] = {"TEST_NOTIFICATION",  "ASSET_MANAGEMENT", "USER_MANAGEMENT",
                                                   "USER_ASSOCIATED",    "ASSET_COUNT",      "SUBSCRIPTION_MANAGEMENT",
                                                   "SUBSCRIPTION_COUNT", "UNLIMITED_ASSET"};

}  // namespace

// ------------------------------------------------------------------ routing

Result<Simulator::Authed> Simulator::Authenticate(const http::Request& req, AppleError* error) const {
  auto header = req.Header("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  std::string_view value = header.value_or("");
  if (value.size() <= kBearer.size() || !std::equal(kBearer.begin(), kBearer.end(), value.begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == std::tolower(b);
      })) {
    *error = {kErrBadAuthorization, {}, {}};
    return Fail(Error::Unauthenticated("bad Authorization header"));
  }
  std::string_view stoken = value.substr(kBearer.size());
  while (!stoken.empty() && (stoken.front() == ' ' || stoken.front() == '\t')) stoken.remove_prefix(1);
  while (!stoken.empty() && std::isspace(static_cast<unsigned char>(stoken.back()))) stoken.remove_suffix(1);
  if (stoken.empty()) {
    *error = {kErrBadAuthorization, {}, {}};
    return Fail(Error::Unauthenticated("empty sToken"));
  }
  auto it = tokens_.find(std::string(stoken));
  const Token* token = nullptr;
  Location* loc = nullptr;
  if (it != tokens_.end()) {
    loc = locations_[it->second.first].get();
    token = &loc->tokens[it->second.second];
  }
  if (!token) {
    *error = {invalid_token_http_200_ ? kErrInvalidToken : kErrLoginRequired, {}, {}};
    return Fail(Error::Unauthenticated("unknown sToken"));
  }
  if (token->state == TokenState::kInvalid) {
    // A token Apple knows but no longer accepts (e.g. regenerated in Apple
    // Business Manager): the observed answer, 9622 at HTTP 200 (spec §1, Fleet).
    *error = {kErrInvalidToken, {}, {}};
    return Fail(Error::Unauthenticated("invalidated sToken"));
  }
  if (token->state == TokenState::kRevoked) {
    *error = {kErrTokenRevoked, {}, {}};
    return Fail(Error::Unauthenticated("revoked sToken"));
  }
  if (token->state == TokenState::kExpired || clock_.Now() >= token->expiration) {
    *error = {kErrTokenExpired, {}, {}};
    return Fail(Error::Unauthenticated("expired sToken"));
  }
  return Authed{loc, token};
}

http::Response Simulator::HandleApple(const http::Request& req, std::string_view name, const Query& query) {
  const Endpoint* ep = nullptr;
  for (const Endpoint& e : kEndpoints)
    if (e.name == name) ep = &e;
  if (!ep)
    return http::Response::Json(
        404, ErrorResponseJson({kErrInvalidArgument, "No such endpoint: /mdm/v2/" + std::string(name), {}}));
  const bool is_get = req.method == "GET", is_post = req.method == "POST";
  if (!((is_get && ep->get) || (is_post && ep->post))) {
    http::Response r = AppleErrorReply(kErrUnsupportedMethod);
    r.headers.emplace_back("Allow", ep->get && ep->post ? "GET, POST" : ep->get ? "GET" : "POST");
    return r;
  }
  const std::string full_path = "/mdm/v2/" + std::string(name);

  // 1. Who is calling (service/config needs no sToken).
  std::string stoken, uid;
  std::optional<Timestamp> due;
  int max_rps = 0;
  bool rate_limit = false;
  if (ep->op != Op::kServiceConfig) {
    std::shared_lock lock(mu_);
    AppleError error;
    auto authed = Authenticate(req, &error);
    if (!authed) {
      http::Response r = AppleErrorReply(error);
      // Observed Apple behaviour (spec §1): 9622 comes with HTTP 200.
      if (error.number == kErrInvalidToken) r.status = 200;
      return r;
    }
    stoken = authed->token->stoken;
    uid = authed->location->uid;
    due = authed->location->NextDue();
    max_rps = limits_.max_request_per_second;
    rate_limit = rate_limit_;
  }
  if (!uid.empty()) CountRequest(req.method, full_path, uid);

  // 2. Per-token rate limit (limits.maxRequestPerSecond), then injected faults.
  const Timestamp now = clock_.Now();
  if (rate_limit && !rate_limiter_.Allow(stoken, max_rps, now)) {
    http::Response r = AppleErrorReply(kErrTooManyRequests);
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  const bool creates_event = is_post && ep->op != Op::kClientConfig;
  const std::vector<FaultRule> fired = faults_.Match(req.method, full_path, uid, creates_event);
  std::chrono::milliseconds delay{0};
  const FaultRule* shaping = nullptr;  // At most one fault decides the response.
  bool bump = false;
  std::vector<FaultRule> event_faults;  // Shape the event this request creates.
  for (const FaultRule& f : fired) {
    if (IsEventFault(f.kind))
      event_faults.push_back(f);
    else if (f.kind == FaultKind::kLatency)
      delay += std::chrono::milliseconds(f.latency_ms);
    else if (f.kind == FaultKind::kBumpVersion)
      bump = true;
    else if (!shaping)
      shaping = &f;
  }
  if (shaping && shaping->kind != FaultKind::kTruncate) {
    http::Response r;
    switch (shaping->kind) {
      case FaultKind::kUnavailable:
        r = AppleErrorReply(kErrServiceUnavailable);
        break;
      case FaultKind::kInternal:
        r = AppleErrorReply(kErrInternal);
        break;
      case FaultKind::kTooManyRequests:
        r = AppleErrorReply(kErrTooManyRequests);
        break;
      case FaultKind::kMalformedJson:
        // Valid HTTP, broken JSON: a cut-off page with a stray token.
        r = http::Response::Json(200, "{\"assignments\":[{\"adamId\":\"408709785\",\"pricingParam\":<html>");
        break;
      default:
        r = http::Response::Json(200, ErrorResponseJson({shaping->error_number, {}, {}}));
        break;
    }
    if (shaping->kind == FaultKind::kUnavailable || shaping->kind == FaultKind::kInternal ||
        shaping->kind == FaultKind::kTooManyRequests) {
      r.headers.emplace_back("Retry-After", shaping->retry_after_http_date
                                                ? FormatHttpDate(now + shaping->retry_after_seconds * 1'000'000LL)
                                                : std::to_string(shaping->retry_after_seconds));
    }
    r.delay = delay;
    return r;
  }

  // 3. Writes that must happen before this request is served: events now due,
  //    and an injected out-of-band write.
  if (bump || (due && *due <= now)) {
    std::unique_lock lock(mu_);
    AppleError ignored;
    if (auto authed = Authenticate(req, &ignored)) {
      OnEventsResolved(*authed->location, authed->location->ResolveDue(now));
      if (bump) {
        authed->location->TouchOneAssignment();
        authed->location->BumpVersion();
      }
    }
  }

  // 4. Serve.
  http::Response r;
  if (ep->op == Op::kServiceConfig) {
    std::shared_lock lock(mu_);
    r = ServiceConfig(req);
  } else if (is_post && !IsJsonContentType(req)) {
    r = AppleErrorReply(kErrUnsupportedContentType);
  } else {
    const bool write = is_post;
    std::shared_lock read_lock(mu_, std::defer_lock);
    std::unique_lock write_lock(mu_, std::defer_lock);
    if (write)
      write_lock.lock();
    else
      read_lock.lock();
    AppleError error;
    auto authed = Authenticate(req, &error);  // Again: the state may have changed meanwhile.
    if (!authed) {
      r = AppleErrorReply(error);
      if (error.number == kErrInvalidToken) r.status = 200;
    } else {
      switch (ep->op) {
        case Op::kClientConfig:
          r = is_get ? GetClientConfig(*authed) : PostClientConfig(*authed, req.body);
          break;
        case Op::kAssets:
          r = GetAssets(*authed, query);
          break;
        case Op::kAssignments:
          r = GetAssignments(*authed, query);
          break;
        case Op::kUsers:
          r = GetUsers(*authed, query);
          break;
        case Op::kAssociate:
          r = ManageAssets(*authed, EventType::kAssociate, req.body, event_faults);
          break;
        case Op::kDisassociate:
          r = ManageAssets(*authed, EventType::kDisassociate, req.body, event_faults);
          break;
        case Op::kRevoke:
          r = ManageAssets(*authed, EventType::kRevoke, req.body, event_faults);
          break;
        case Op::kUsersCreate:
          r = ManageUsers(*authed, EventType::kCreate, req.body, event_faults);
          break;
        case Op::kUsersUpdate:
          r = ManageUsers(*authed, EventType::kUpdate, req.body, event_faults);
          break;
        case Op::kUsersRetire:
          r = ManageUsers(*authed, EventType::kRetire, req.body, event_faults);
          break;
        case Op::kStatus:
          r = GetStatus(*authed, query);
          break;
        case Op::kServiceConfig:
          break;
      }
    }
  }
  if (shaping && shaping->kind == FaultKind::kTruncate)
    r.truncate_body_at = std::min(shaping->truncate_at, r.body.size());
  r.delay = delay;
  return r;
}

// ------------------------------------------------------------------ config

http::Response Simulator::ServiceConfig(const http::Request& req) const {
  // URLs point back at this server, at the host the client used.
  const std::string host(req.Header("Host").value_or("127.0.0.1"));
  const std::string base = "http://" + host + "/mdm/v2/";
  JsonWriter w(8192);
  w.BeginObject();
  w.Key("errorCodes");
  w.BeginArray();
  for (const ErrorCodeEntry& e : AllErrorCodes()) {
    w.BeginObject();
    w.Field("errorMessage", e.message);
    w.Field("errorNumber", e.number);
    w.EndObject();
  }
  w.EndArray();
  const Limits& l = limits_;
  w.Key("limits");
  w.BeginObject();
  w.Field("maxAssets", l.max_assets);
  w.Field("maxClientUserIds", l.max_client_user_ids);
  w.Field("maxMdmIdLength", l.max_mdm_id_length);
  w.Field("maxMdmMetadataLength", l.max_mdm_metadata_length);
  w.Field("maxMdmNameLength", l.max_mdm_name_length);
  w.Field("maxNotificationLength", l.max_notification_length);
  w.Field("maxRequestPerSecond", l.max_request_per_second);
  w.Field("maxRevokeClientUserIds", l.max_revoke_client_user_ids);
  w.Field("maxRevokeSerialNumbers", l.max_revoke_serial_numbers);
  w.Field("maxSerialNumbers", l.max_serial_numbers);
  w.Field("maxSubscriptionClientUserIds", l.max_subscription_client_user_ids);
  w.Field("maxSubscriptions", l.max_subscriptions);
  w.Field("maxUsers", l.max_users);
  w.EndObject();
  w.Key("notificationTypes");
  w.BeginArray();
  for (const char* t : {"ASSET_MANAGEMENT", "USER_MANAGEMENT", "USER_ASSOCIATED", "ASSET_COUNT"}) w.String(t);
  w.EndArray();
  w.Key("urls");
  w.BeginObject();
  w.Field("associateAssets", base + "assets/associate");
  w.Field("clientConfig", base + "client/config");
  w.Field("contentMetadataLookup", "http://" + host + "/lookup");
  w.Field("createUsers", base + "users/create");
  w.Field("disassociateAssets", base + "assets/disassociate");
  w.Field("eventStatus", base + "status");
  w.Field("getAssets", base + "assets");
  w.Field("getAssignments", base + "assignments");
  w.Field("getUsers", base + "users");
  // Apple's template: the client replaces %25inviteCode%25 with a user's code.
  w.Field("invitationEmail", "https://business.apple.com/vpp-associate?inviteCode=%25inviteCode%25&mt=8");
  w.Field("retireUsers", base + "users/retire");
  w.Field("revokeAssets", base + "assets/revoke");
  w.Field("updateUsers", base + "users/update");
  w.EndObject();
  w.EndObject();
  return Ok(std::move(w).Take());
}

http::Response Simulator::GetClientConfig(const Authed& a) const {
  const Location& loc = *a.location;
  JsonWriter w(512);
  w.BeginObject();
  w.Field("countryISO2ACode", loc.country);
  w.Field("defaultPlatform", loc.default_platform);
  w.Field("locationName", loc.name);
  if (loc.mdm_info) {
    w.Key("mdmInfo");
    w.BeginObject();
    w.Field("id", loc.mdm_info->id);
    w.Field("metadata", loc.mdm_info->metadata);
    w.Field("name", loc.mdm_info->name);
    w.EndObject();
  }
  if (!loc.notification_url.empty()) {
    w.Field("notificationAuthToken", loc.notification_auth_token);
    w.Field("notificationUrl", loc.notification_url);
  }
  w.Key("subscribedNotificationTypes");
  w.BeginArray();
  for (const auto& t : loc.notification_types) w.String(t);
  w.EndArray();
  w.Field("tokenExpirationDate", FormatAppleDate(a.token->expiration));
  w.Field("uId", loc.uid);
  w.Field("websiteURL", loc.website_url);
  w.EndObject();
  return Ok(std::move(w).Take());
}

http::Response Simulator::PostClientConfig(const Authed& a, std::string_view body) {
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view(body.data(), body.size()), ec);
  if (ec) return AppleErrorReply(kErrInvalidArgument, "The request body is not valid JSON.");
  const json::object* o = doc.if_object();
  if (!o) return AppleErrorReply(kErrInvalidArgument, "The request body must be a JSON object.");
  Location& loc = *a.location;

  // Validate everything first; change nothing unless the whole request is valid.
  std::optional<MdmInfo> mdm;
  if (const json::value* v = o->if_contains("mdmInfo"); v && !v->is_null()) {
    const json::object* m = v->if_object();
    if (!m) return AppleErrorReply(kErrInvalidArgument, "mdmInfo must be an object.");
    auto field = [&](std::string_view k) -> std::optional<std::string> {
      const json::value* f = m->if_contains(k);
      const json::string* s = f ? f->if_string() : nullptr;
      if (!s) return std::nullopt;
      return std::string(s->data(), s->size());
    };
    auto id = field("id"), name = field("name"), metadata = field("metadata");
    if (!id || !name || !metadata || id->empty() || name->empty()) return AppleErrorReply(kErrMdmInfoIncomplete);
    if (id->size() > static_cast<std::size_t>(limits_.max_mdm_id_length)) return AppleErrorReply(kErrMdmIdTooLong);
    if (name->size() > static_cast<std::size_t>(limits_.max_mdm_name_length))
      return AppleErrorReply(kErrMdmNameTooLong);
    if (metadata->size() > static_cast<std::size_t>(limits_.max_mdm_metadata_length))
      return AppleErrorReply(kErrMdmMetadataTooLong);
    mdm = MdmInfo{std::move(*id), std::move(*name), std::move(*metadata)};
  }
  auto opt_string = [&](std::string_view k, bool* bad) -> std::optional<std::string> {
    const json::value* v = o->if_contains(k);
    if (!v || v->is_null()) return std::nullopt;
    const json::string* s = v->if_string();
    if (!s) {
      *bad = true;
      return std::nullopt;
    }
    return std::string(s->data(), s->size());
  };
  bool bad = false;
  auto url = opt_string("notificationUrl", &bad);
  auto auth = opt_string("notificationAuthToken", &bad);
  if (bad) return AppleErrorReply(kErrInvalidArgument, "notificationUrl and notificationAuthToken must be strings.");
  std::optional<std::vector<std::string>> types;
  if (const json::value* v = o->if_contains("notificationTypes"); v && !v->is_null()) {
    types.emplace();
    if (!ReadStringArray(*o, "notificationTypes", &*types))
      return AppleErrorReply(kErrInvalidArgument, "notificationTypes must be an array of strings.");
    for (const auto& t : *types)
      if (std::find(std::begin(kNotificationTypes), std::end(kNotificationTypes), t) == std::end(kNotificationTypes))
        return AppleErrorReply(kErrInvalidArgument, "Unknown notification type " + t + ".");
  }
  const bool clearing = url && url->empty();
  if (url && !clearing) {
    if (url->size() > static_cast<std::size_t>(limits_.max_notification_length))
      return AppleErrorReply(kErrNotificationUrlTooLong);
    if (!ValidNotificationUrl(*url)) return AppleErrorReply(kErrNotificationUrlNotHttps);
    if (!auth || auth->empty()) return AppleErrorReply(kErrNotificationTokenRequired);
  } else if (!url && auth && !auth->empty() && loc.notification_url.empty()) {
    return AppleErrorReply(kErrNotificationTokenRequired);  // A token without any URL.
  }

  // Apply. mdmInfo is ownership metadata, not library data: versionId stays.
  if (mdm) loc.mdm_info = std::move(mdm);
  if (clearing) {
    loc.notification_url.clear();
    loc.notification_auth_token.clear();
  } else if (url) {
    loc.notification_url = std::move(*url);
    loc.notification_auth_token = std::move(*auth);
  } else if (auth && !auth->empty()) {
    loc.notification_auth_token = std::move(*auth);
  }
  if (types) loc.notification_types = std::move(*types);
  // Apple sends a TEST_NOTIFICATION when the notification settings are configured.
  if (url && !clearing) Notify(loc, "TEST_NOTIFICATION", "{}");
  return GetClientConfig(a);
}

// ------------------------------------------------------------------ reads

http::Response Simulator::GetAssets(const Authed& a, const Query& q) const {
  const Location& loc = *a.location;
  auto index = PageIndexParam(q);
  if (!index) return BadPageIndex();

  std::optional<ProductType> product_type;
  if (auto v = q.Get("productType")) {
    if (*v == "App")
      product_type = ProductType::kApp;
    else if (*v == "Book")
      product_type = ProductType::kBook;
    else
      return AppleErrorReply(kErrInvalidArgument, "productType must be App or Book.");
  }
  std::optional<std::string_view> pricing = q.Get("pricingParam");
  if (pricing && *pricing != "STDQ" && *pricing != "PLUS")
    return AppleErrorReply(kErrInvalidArgument, "pricingParam must be STDQ or PLUS.");
  std::optional<bool> flags[3];
  const char* flag_names[3] = {"revocable", "deviceAssignable", "unlimited"};
  for (int i = 0; i < 3; ++i) {
    if (auto v = q.Get(flag_names[i])) {
      flags[i] = ParseBoolParam(*v);
      if (!flags[i])
        return AppleErrorReply(kErrInvalidArgument, std::string(flag_names[i]) + " must be true or false.");
    }
  }
  std::optional<std::int64_t> bounds[4];
  const char* bound_names[4] = {"minAvailableCount", "maxAvailableCount", "minAssignedCount", "maxAssignedCount"};
  for (int i = 0; i < 4; ++i) {
    if (auto v = q.Get(bound_names[i])) {
      bounds[i] = ParseInt32Param(*v);
      if (!bounds[i]) return AppleErrorReply(kErrInvalidArgument, std::string(bound_names[i]) + " must be an integer.");
    }
  }
  std::optional<std::string_view> adam_id = q.Get("adamId");
  // sinceVersionId is not a Get Assets parameter: ignored, as Apple does.

  std::vector<std::uint32_t> selected;
  for (std::uint32_t i = 0; i < loc.assets().size(); ++i) {
    const Asset& as = loc.assets()[i];
    if (product_type && as.product_type != *product_type) continue;
    if (pricing && as.pricing_param != *pricing) continue;
    if (flags[0] && as.revocable != *flags[0]) continue;
    if (flags[1] && as.device_assignable != *flags[1]) continue;
    if (flags[2] && !*flags[2] && as.unlimited) continue;  // unlimited=false excludes them.
    if (adam_id && as.adam_id != *adam_id) continue;
    const std::int64_t avail = as.AvailableCount(), assigned = as.assigned_count;
    if (bounds[0] && avail < *bounds[0]) continue;
    if (bounds[1] && avail > *bounds[1]) continue;
    if (bounds[2] && assigned < *bounds[2]) continue;
    if (bounds[3] && assigned > *bounds[3]) continue;
    selected.push_back(i);
  }
  auto page = ComputePage(selected.size(), page_size_, *index);
  if (!page) return BadPageIndex();

  // unlimited=true: unlimited assets go to `unlimitedAssets` without counts
  // other than assignedCount (Apple's UnlimitedResponseAsset).
  const bool split = flags[2] && *flags[2];
  JsonWriter w(256 + (page->end - page->begin) * 256);
  w.BeginObject();
  auto write_asset = [&](const Asset& as, bool unlimited_shape) {
    w.BeginObject();
    w.Field("adamId", as.adam_id);
    w.Field("assignedCount", as.assigned_count);
    if (!unlimited_shape) w.Field("availableCount", as.AvailableCount());
    w.Field("deviceAssignable", as.device_assignable);
    w.Field("pricingParam", as.pricing_param);
    w.Field("productType", ProductTypeName(as.product_type));
    if (!unlimited_shape) w.Field("retiredCount", as.retired_count);
    w.Field("revocable", as.revocable);
    w.Key("supportedPlatforms");
    w.BeginArray();
    for (std::uint8_t bit = 1; bit <= kVisionOS; bit <<= 1)
      if (as.platforms & bit) w.String(PlatformName(bit));
    w.EndArray();
    if (!unlimited_shape) w.Field("totalCount", as.ReportedTotal());
    w.EndObject();
  };
  w.Key("assets");
  w.BeginArray();
  for (std::size_t i = page->begin; i < page->end; ++i) {
    const Asset& as = loc.assets()[selected[i]];
    if (!(split && as.unlimited)) write_asset(as, false);
  }
  w.EndArray();
  WritePaging(w, *index, *page);
  if (split) {
    w.Key("unlimitedAssets");
    w.BeginArray();
    for (std::size_t i = page->begin; i < page->end; ++i) {
      const Asset& as = loc.assets()[selected[i]];
      if (as.unlimited) write_asset(as, true);
    }
    w.EndArray();
  }
  w.Field("versionId", loc.version_id());
  WriteEnvelope(w, loc, *a.token);
  w.EndObject();
  return Ok(std::move(w).Take());
}

http::Response Simulator::GetAssignments(const Authed& a, const Query& q) const {
  const Location& loc = *a.location;
  auto index = PageIndexParam(q);
  if (!index) return BadPageIndex();
  AssignmentFilter f;
  if (auto v = q.Get("adamId")) f.adam_id = std::string(*v);
  if (auto v = q.Get("pricingParam")) {
    if (*v != "STDQ" && *v != "PLUS") return AppleErrorReply(kErrInvalidArgument, "pricingParam must be STDQ or PLUS.");
    f.pricing_param = std::string(*v);
  }
  if (auto v = q.Get("clientUserId")) f.client_user_id = std::string(*v);
  if (auto v = q.Get("serialNumber")) f.serial_number = std::string(*v);
  if (auto v = q.Get("sinceVersionId")) {
    f.since_version = loc.ResolveVersionId(*v);
    if (!f.since_version) return AppleErrorReply(kErrInvalidVersionId);
  }
  bool include_user_state = false;
  for (auto [name, out] : {std::pair<const char*, bool*>{"excludeInactiveUsers", &f.exclude_inactive_users},
                           std::pair<const char*, bool*>{"includeUserState", &include_user_state}}) {
    if (auto v = q.Get(name)) {
      auto b = ParseBoolParam(*v);
      if (!b) return AppleErrorReply(kErrInvalidArgument, std::string(name) + " must be true or false.");
      *out = *b;
    }
  }

  // The unfiltered walk reads the store directly; filtered ones a cached view.
  std::shared_ptr<const std::vector<std::uint32_t>> view;
  std::size_t count = loc.assignments().size();
  if (!f.Empty()) {
    view = loc.Select(f);
    count = view->size();
  }
  auto page = ComputePage(count, page_size_, *index);
  if (!page) return BadPageIndex();

  // Hot path: about 70 bytes per assignment, written directly.
  JsonWriter w(512 + (page->end - page->begin) * 96);
  w.BeginObject();
  w.Key("assignments");
  w.BeginArray();
  std::string& out = w.buffer();
  const auto& all = loc.assignments();
  for (std::size_t i = page->begin; i < page->end; ++i) {
    const Assignment& as = all[view ? (*view)[i] : i];
    if (i != page->begin) out.push_back(',');
    out += loc.assets()[as.asset].json_prefix;
    if (as.kind == SubjectKind::kUser) {
      const User& u = loc.users()[as.subject];
      out += ",\"clientUserId\":";
      AppendJsonString(out, u.client_user_id);
      if (include_user_state) {
        // Field name as in Apple's subscription admins (userStatus with includeUserState).
        out += ",\"userStatus\":\"";
        out += UserStatusName(u.status);
        out.push_back('"');
      }
    } else {
      out += ",\"serialNumber\":";
      AppendJsonString(out, loc.serials()[as.subject]);
    }
    out.push_back('}');
  }
  w.EndArray();
  WritePaging(w, *index, *page);
  w.Field("versionId", loc.version_id());
  WriteEnvelope(w, loc, *a.token);
  w.EndObject();
  return Ok(std::move(w).Take());
}

http::Response Simulator::GetUsers(const Authed& a, const Query& q) const {
  const Location& loc = *a.location;
  auto index = PageIndexParam(q);
  if (!index) return BadPageIndex();
  bool active_only = false, retired_only = false;
  for (auto [name, out] : {std::pair<const char*, bool*>{"activeOnly", &active_only},
                           std::pair<const char*, bool*>{"retiredOnly", &retired_only}}) {
    if (auto v = q.Get(name)) {
      auto b = ParseBoolParam(*v);
      if (!b) return AppleErrorReply(kErrInvalidArgument, std::string(name) + " must be true or false.");
      *out = *b;
    }
  }
  if (active_only && retired_only)
    return AppleErrorReply(kErrInvalidArgument, "activeOnly and retiredOnly exclude each other.");
  std::optional<std::uint32_t> since;
  if (auto v = q.Get("sinceVersionId")) {
    since = loc.ResolveVersionId(*v);
    if (!since) return AppleErrorReply(kErrInvalidVersionId);
  }
  auto client_user_id = q.Get("clientUserId");
  auto managed_apple_id = q.Get("managedAppleId");  // Fleet queries it (spec §3.7, Obs).

  std::vector<std::uint32_t> selected;
  for (std::uint32_t i = 0; i < loc.users().size(); ++i) {
    const User& u = loc.users()[i];
    const bool retired = u.status == UserStatus::kRetired;
    if (active_only && retired) continue;
    if (retired_only && !retired) continue;
    if (since && u.version <= *since) continue;
    if (client_user_id && u.client_user_id != *client_user_id) continue;
    if (managed_apple_id && u.managed_apple_id != *managed_apple_id) continue;
    selected.push_back(i);
  }
  auto page = ComputePage(selected.size(), page_size_, *index);
  if (!page) return BadPageIndex();
  JsonWriter w(512 + (page->end - page->begin) * 160);
  w.BeginObject();
  WritePaging(w, *index, *page);
  w.Field("versionId", loc.version_id());
  w.Key("users");
  w.BeginArray();
  for (std::size_t i = page->begin; i < page->end; ++i) {
    const User& u = loc.users()[selected[i]];
    w.BeginObject();
    w.Field("clientUserId", u.client_user_id);
    if (!u.email.empty()) w.Field("email", u.email);
    if (!u.id_hash.empty()) w.Field("idHash", u.id_hash);
    if (u.status == UserStatus::kRegistered && !u.invite_code.empty()) w.Field("inviteCode", u.invite_code);
    if (!u.managed_apple_id.empty()) w.Field("managedAppleId", u.managed_apple_id);
    w.Field("status", UserStatusName(u.status));
    w.EndObject();
  }
  w.EndArray();
  WriteEnvelope(w, loc, *a.token);
  w.EndObject();
  return Ok(std::move(w).Take());
}

http::Response Simulator::GetStatus(const Authed& a, const Query& q) const {
  const Location& loc = *a.location;
  auto id = q.Get("eventId");
  if (!id || id->empty()) return AppleErrorReply(kErrInvalidArgument, "eventId is required.");
  const Event* e = loc.FindEvent(*id);
  if (!e) return AppleErrorReply(kErrEventNotFound);
  JsonWriter w(512 + e->failures_json.size());
  w.BeginObject();
  w.Field("eventStatus", EventStatusName(e->status));
  w.Field("eventType", EventTypeName(e->type));
  if (e->status == EventStatus::kFailed) {
    w.Key("failures");
    w.Raw(e->failures_json);
  }
  w.Field("numCompleted", e->num_completed);
  w.Field("numRequested", e->num_requested);
  WriteEnvelope(w, loc, *a.token);
  w.EndObject();
  return Ok(std::move(w).Take());
}

// ------------------------------------------------------------------ writes

namespace {

// Applies the event kinds of fault rules to an event about to be queued.
void ApplyEventFaults(const std::vector<FaultRule>& faults, Event& e) {
  for (const FaultRule& f : faults) {
    switch (f.kind) {
      case FaultKind::kEventFailure:
        e.forced_failures.push_back({f.error_number, f.serial_numbers, f.client_user_ids});
        break;
      case FaultKind::kSlowEvent:
        e.due += f.delay_ms * 1000;
        break;
      case FaultKind::kHoldEvent:
        e.held = true;
        break;
      default:
        break;
    }
  }
}

}  // namespace

http::Response Simulator::ManageAssets(const Authed& a, EventType type, std::string_view body,
                                       const std::vector<FaultRule>& event_faults) {
  Location& loc = *a.location;
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view(body.data(), body.size()), ec);
  if (ec) return AppleErrorReply(kErrInvalidArgument, "The request body is not valid JSON.");
  const json::object* o = doc.if_object();
  if (!o) return AppleErrorReply(kErrInvalidArgument, "The request body must be a JSON object.");

  Event e;
  e.type = type;
  if (!ReadStringArray(*o, "clientUserIds", &e.client_user_ids) ||
      !ReadStringArray(*o, "serialNumbers", &e.serial_numbers))
    return AppleErrorReply(kErrInvalidArgument, "clientUserIds and serialNumbers must be arrays of strings.");
  std::vector<std::pair<std::string, std::optional<std::string>>> requested_assets;
  if (type != EventType::kRevoke) {
    if (const json::value* v = o->if_contains("assets"); v && !v->is_null()) {
      const json::array* arr = v->if_array();
      if (!arr) return AppleErrorReply(kErrInvalidArgument, "assets must be an array.");
      for (const json::value& item : *arr) {
        const json::object* ao = item.if_object();
        const json::value* adam = ao ? ao->if_contains("adamId") : nullptr;
        const json::string* adam_s = adam ? adam->if_string() : nullptr;
        if (!adam_s || adam_s->empty())
          return AppleErrorReply(kErrInvalidArgument, "Each asset needs an adamId string.");
        std::optional<std::string> pricing;
        if (const json::value* p = ao->if_contains("pricingParam"); p && !p->is_null()) {
          const json::string* ps = p->if_string();
          if (!ps || (*ps != "STDQ" && *ps != "PLUS"))
            return AppleErrorReply(kErrInvalidArgument, "pricingParam must be STDQ or PLUS.");
          pricing = std::string(ps->data(), ps->size());
        }
        requested_assets.emplace_back(std::string(adam_s->data(), adam_s->size()), std::move(pricing));
      }
    }
    if (requested_assets.empty()) return AppleErrorReply(kErrNoAssets);
  }
  if (e.client_user_ids.empty() && e.serial_numbers.empty()) return AppleErrorReply(kErrNoSubjects);
  const bool revoke = type == EventType::kRevoke;
  if (static_cast<int>(requested_assets.size()) > limits_.max_assets) return AppleErrorReply(kErrTooManyAssets);
  if (static_cast<int>(e.client_user_ids.size()) >
      (revoke ? limits_.max_revoke_client_user_ids : limits_.max_client_user_ids))
    return AppleErrorReply(kErrTooManyClientUserIds);
  if (static_cast<int>(e.serial_numbers.size()) >
      (revoke ? limits_.max_revoke_serial_numbers : limits_.max_serial_numbers))
    return AppleErrorReply(kErrTooManySerialNumbers);

  // Resolve assets; unknown ones are named in errorInfo (simulator's choice:
  // Apple's documents do not say how it reports an adamId the location lacks).
  std::vector<std::string> unknown;
  for (const auto& [adam, pricing] : requested_assets) {
    auto idx = loc.FindAsset(adam, pricing ? std::optional<std::string_view>(*pricing) : std::nullopt);
    if (!idx)
      unknown.push_back(adam);
    else
      e.assets.push_back(*idx);
  }
  if (!unknown.empty()) {
    JsonWriter info;
    info.BeginObject();
    info.Key("assets");
    info.BeginArray();
    for (const auto& u : unknown) {
      info.BeginObject();
      info.Field("adamId", u);
      info.EndObject();
    }
    info.EndArray();
    info.EndObject();
    return AppleErrorReply(kErrInvalidArgument, "The location does not own these assets.", std::move(info).Take());
  }
  if (HasDuplicates(e.assets)) return AppleErrorReply(kErrDuplicateAssets);
  if (HasDuplicates(e.client_user_ids)) return AppleErrorReply(kErrDuplicateClientUserIds);
  if (HasDuplicates(e.serial_numbers)) return AppleErrorReply(kErrDuplicateSerialNumbers);
  if (!e.serial_numbers.empty()) {
    std::vector<std::uint32_t> books;
    for (auto idx : e.assets)
      if (!loc.assets()[idx].device_assignable) books.push_back(idx);
    if (!books.empty()) return AppleErrorReply(kErrNotDeviceAssignable, {}, AssetsInfo(loc, books));
  }
  if (type == EventType::kDisassociate) {
    std::vector<std::uint32_t> fixed;
    for (auto idx : e.assets)
      if (!loc.assets()[idx].revocable) fixed.push_back(idx);
    if (!fixed.empty()) return AppleErrorReply(kErrNotRevocable, {}, AssetsInfo(loc, fixed));
  }

  const auto subjects = static_cast<std::int64_t>(e.client_user_ids.size() + e.serial_numbers.size());
  e.num_requested = revoke ? subjects : static_cast<std::int64_t>(e.assets.size()) * subjects;
  e.due = clock_.Now() + std::chrono::duration_cast<std::chrono::microseconds>(event_delay_).count();
  ApplyEventFaults(event_faults, e);
  const Event& added = loc.AddEvent(std::move(e));
  JsonWriter w(256);
  w.BeginObject();
  w.Field("eventId", added.id);
  WriteEnvelope(w, loc, *a.token);
  w.EndObject();
  return Ok(std::move(w).Take());
}

http::Response Simulator::ManageUsers(const Authed& a, EventType type, std::string_view body,
                                      const std::vector<FaultRule>& event_faults) {
  Location& loc = *a.location;
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view(body.data(), body.size()), ec);
  if (ec) return AppleErrorReply(kErrInvalidArgument, "The request body is not valid JSON.");
  const json::object* o = doc.if_object();
  if (!o) return AppleErrorReply(kErrInvalidArgument, "The request body must be a JSON object.");
  const json::value* users = o->if_contains("users");
  if (!users || users->is_null()) return AppleErrorReply(kErrNoUsers);
  const json::array* arr = users->if_array();
  if (!arr) return AppleErrorReply(kErrInvalidArgument, "users must be an array.");
  if (arr->empty()) return AppleErrorReply(kErrNoUsers);
  if (static_cast<int>(arr->size()) > limits_.max_users) return AppleErrorReply(kErrTooManyUsers);

  Event e;
  e.type = type;
  std::vector<std::string> ids;
  for (const json::value& item : *arr) {
    const json::object* uo = item.if_object();
    if (!uo) return AppleErrorReply(kErrInvalidArgument, "Each user must be an object.");
    auto str = [&](std::string_view k, bool* bad) -> std::optional<std::string> {
      const json::value* v = uo->if_contains(k);
      if (!v || v->is_null()) return std::nullopt;
      const json::string* s = v->if_string();
      if (!s) {
        *bad = true;
        return std::nullopt;
      }
      return std::string(s->data(), s->size());
    };
    bool bad = false;
    UserSpec spec;
    auto id = str("clientUserId", &bad);
    spec.email = str("email", &bad);
    spec.managed_apple_id = str("managedAppleId", &bad);
    if (bad || !id || id->empty())
      return AppleErrorReply(kErrInvalidArgument,
                             "Each user needs a clientUserId string; email and managedAppleId are strings.");
    if (spec.email && !ValidEmail(*spec.email)) return AppleErrorReply(kErrInvalidEmail);
    spec.client_user_id = std::move(*id);
    ids.push_back(spec.client_user_id);
    e.users.push_back(std::move(spec));
  }
  if (HasDuplicates(ids)) return AppleErrorReply(kErrDuplicateUsers);
  e.num_requested = static_cast<std::int64_t>(e.users.size());
  e.due = clock_.Now() + std::chrono::duration_cast<std::chrono::microseconds>(event_delay_).count();
  ApplyEventFaults(event_faults, e);
  const Event& added = loc.AddEvent(std::move(e));
  JsonWriter w(256);
  w.BeginObject();
  w.Field("eventId", added.id);
  WriteEnvelope(w, loc, *a.token);
  w.EndObject();
  return Ok(std::move(w).Take());
}

// ------------------------------------------------------------------ lookup

// Content metadata, modelled on Apple's lookup service
// (uclient-api.itunes.apple.com/WebObjects/MZStorePlatform.woa/wa/lookup?version=2
// &id=A,B&p=mdm-lockup&caller=MDM&platform=…&cc=us&l=en): the answer is
// {"results": {"<adamId>": {"id", "name", "bundleId", "offers":[{"version":
// {"display"}}], …}}} — clients read results[adamId].name / .bundleId /
// .offers[0].version (as seen in public MDM clients calling that URL). A book
// (kind ebook) has no bundleId; it has its author as artistName, genreNames and
// its Apple Books url. Ids the
// simulator does not know are absent from `results`. No authentication.
http::Response Simulator::Lookup(const Query& q) const {
  auto ids_param = q.Get("id");
  if (!ids_param || ids_param->empty()) return AppleErrorReply(kErrInvalidArgument, "id is required.");
  std::vector<std::string> ids;
  std::string_view rest = *ids_param;
  while (!rest.empty() && ids.size() < 200) {
    const auto comma = rest.find(',');
    std::string_view id = rest.substr(0, comma);
    if (!id.empty()) ids.emplace_back(id);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  JsonWriter w(1024);
  w.BeginObject();
  w.Key("results");
  w.BeginObject();
  std::set<std::string> done;
  for (const std::string& id : ids) {
    if (!done.insert(id).second) continue;
    for (const auto& loc : locations_) {
      auto idx = loc->FindAsset(id);
      if (!idx) continue;
      const Asset& as = loc->assets()[*idx];
      w.Key(id);
      w.BeginObject();
      const bool book = as.product_type == ProductType::kBook;
      // A book's lookup names its author and genres, and has no bundle id.
      w.Field("artistName", book ? "Simulated Author" : "Simulated Developer");
      if (!as.bundle_id.empty()) w.Field("bundleId", as.bundle_id);
      w.Field("id", as.adam_id);
      w.Field("kind", as.product_type == ProductType::kBook ? "ebook"
                      : (as.platforms & kIOS)               ? "iosSoftware"
                                                            : "macSoftware");
      w.Field("name", as.name.empty() ? "Asset " + as.adam_id : as.name);
      w.Key("offers");
      w.BeginArray();
      w.BeginObject();
      w.Field("type", "get");
      w.Key("version");
      w.BeginObject();
      w.Field("display", as.version);
      w.EndObject();
      w.EndObject();
      w.EndArray();
      if (book) {
        w.Key("genreNames");
        w.BeginArray();
        w.String("Books");
        w.String("Fiction & Literature");
        w.EndArray();
        w.Field("url", "https://books.apple.com/us/book/id" + as.adam_id);
      }
      w.Key("supportedPlatforms");
      w.BeginArray();
      for (std::uint8_t bit = 1; bit <= kVisionOS; bit <<= 1)
        if (as.platforms & bit) w.String(PlatformName(bit));
      w.EndArray();
      w.EndObject();
      break;
    }
  }
  w.EndObject();
  w.EndObject();
  return Ok(std::move(w).Take());
}

}  // namespace vppd::sim
