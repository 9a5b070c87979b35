// JSON → typed results for apple::Client (see parse.h for the choice of parser).
#include "apple/parse.h"

#include <boost/json.hpp>

namespace vppd::apple::internal {

namespace json = boost::json;

AppleError Malformed(std::string message) {
  AppleError e;
  e.kind = AppleErrorKind::kMalformedResponse;
  e.error_message = std::move(message);
  e.http_status = 200;
  return e;
}

namespace {

std::string_view View(const json::string& s) { return {s.data(), s.size()}; }

// Reads an optional string member; ids may come as numbers from older services.
AppleStatus ReadString(const json::value& v, std::string_view key, std::string* out) {
  if (const json::string* s = v.if_string()) {
    out->assign(s->data(), s->size());
    return {};
  }
  if (v.is_int64()) {
    *out = std::to_string(v.get_int64());
    return {};
  }
  if (v.is_uint64()) {
    *out = std::to_string(v.get_uint64());
    return {};
  }
  if (v.is_null()) return {};
  return tl::unexpected(Malformed("'" + std::string(key) + "' is not a string"));
}

AppleStatus ReadInt(const json::value& v, std::string_view key, std::int64_t* out) {
  if (v.is_int64()) {
    *out = v.get_int64();
    return {};
  }
  if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    *out = static_cast<std::int64_t>(v.get_uint64());
    return {};
  }
  return tl::unexpected(Malformed("'" + std::string(key) + "' is not an integer"));
}

AppleStatus ReadInt(const json::value& v, std::string_view key, int* out) {
  std::int64_t x = 0;
  if (auto s = ReadInt(v, key, &x); !s) return s;
  if (x < INT32_MIN || x > INT32_MAX) return tl::unexpected(Malformed("'" + std::string(key) + "' is out of range"));
  *out = static_cast<int>(x);
  return {};
}

AppleStatus ReadBool(const json::value& v, std::string_view key, bool* out) {
  if (!v.is_bool()) return tl::unexpected(Malformed("'" + std::string(key) + "' is not a boolean"));
  *out = v.get_bool();
  return {};
}

AppleStatus ReadStrings(const json::value& v, std::string_view key, std::vector<std::string>* out) {
  if (v.is_null()) return {};
  const json::array* a = v.if_array();
  if (!a) return tl::unexpected(Malformed("'" + std::string(key) + "' is not an array"));
  out->reserve(out->size() + a->size());
  for (const json::value& e : *a) {
    const json::string* s = e.if_string();
    if (!s) return tl::unexpected(Malformed("'" + std::string(key) + "' holds a non-string"));
    out->emplace_back(s->data(), s->size());
  }
  return {};
}

AppleStatus ReadMdmInfo(const json::value& v, std::optional<MdmInfo>* out) {
  if (v.is_null()) return {};
  const json::object* o = v.if_object();
  if (!o) return tl::unexpected(Malformed("'mdmInfo' is not an object"));
  MdmInfo m;
  for (const auto& kv : *o) {
    const std::string_view k = kv.key();
    AppleStatus s;
    if (k == "id")
      s = ReadString(kv.value(), "mdmInfo.id", &m.id);
    else if (k == "name")
      s = ReadString(kv.value(), "mdmInfo.name", &m.name);
    else if (k == "metadata")
      s = ReadString(kv.value(), "mdmInfo.metadata", &m.metadata);
    if (!s) return s;
  }
  *out = std::move(m);
  return {};
}

// Envelope members (uId, mdmInfo, tokenExpirationDate); true when `key` was one.
AppleResult<bool> ReadEnvelopeMember(std::string_view key, const json::value& v, Envelope* env) {
  if (key == "uId") {
    if (auto s = ReadString(v, key, &env->uid); !s) return tl::unexpected(s.error());
    return true;
  }
  if (key == "mdmInfo") {
    if (auto s = ReadMdmInfo(v, &env->mdm_info); !s) return tl::unexpected(s.error());
    return true;
  }
  if (key == "tokenExpirationDate") {
    if (v.is_null()) return true;
    const json::string* s = v.if_string();
    if (!s) return tl::unexpected(Malformed("'tokenExpirationDate' is not a string"));
    auto t = ParseIso8601(View(*s));
    if (!t) return tl::unexpected(Malformed("'tokenExpirationDate' is not a date: " + t.error().message));
    env->token_expiration = *t;
    return true;
  }
  return false;
}

AppleResult<json::value> ParseDocument(std::string_view body, json::storage_ptr sp = {}) {
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(body.data(), body.size()), ec, std::move(sp));
  if (ec) return tl::unexpected(Malformed("the response is not JSON: " + ec.message()));
  if (!v.is_object()) return tl::unexpected(Malformed("the response is not a JSON object"));
  return v;
}

// ---- items

AppleStatus ReadAsset(const json::value& v, bool unlimited, Asset* a) {
  const json::object* o = v.if_object();
  if (!o) return tl::unexpected(Malformed("an asset is not an object"));
  a->unlimited = unlimited;
  for (const auto& kv : *o) {
    const std::string_view k = kv.key();
    const json::value& x = kv.value();
    AppleStatus s;
    if (k == "adamId")
      s = ReadString(x, k, &a->adam_id);
    else if (k == "pricingParam")
      s = ReadString(x, k, &a->pricing_param);
    else if (k == "productType")
      s = ReadString(x, k, &a->product_type);
    else if (k == "assignedCount")
      s = ReadInt(x, k, &a->assigned_count);
    else if (k == "availableCount")
      s = ReadInt(x, k, &a->available_count);
    else if (k == "retiredCount")
      s = ReadInt(x, k, &a->retired_count);
    else if (k == "totalCount")
      s = ReadInt(x, k, &a->total_count);
    else if (k == "deviceAssignable")
      s = ReadBool(x, k, &a->device_assignable);
    else if (k == "revocable")
      s = ReadBool(x, k, &a->revocable);
    else if (k == "supportedPlatforms")
      s = ReadStrings(x, k, &a->supported_platforms);
    if (!s) return s;
  }
  if (a->adam_id.empty()) return tl::unexpected(Malformed("an asset has no adamId"));
  return {};
}

AppleStatus ReadUser(const json::value& v, User* u) {
  const json::object* o = v.if_object();
  if (!o) return tl::unexpected(Malformed("a user is not an object"));
  for (const auto& kv : *o) {
    const std::string_view k = kv.key();
    const json::value& x = kv.value();
    AppleStatus s;
    if (k == "clientUserId")
      s = ReadString(x, k, &u->client_user_id);
    else if (k == "email")
      s = ReadString(x, k, &u->email);
    else if (k == "idHash")
      s = ReadString(x, k, &u->id_hash);
    else if (k == "inviteCode")
      s = ReadString(x, k, &u->invite_code);
    else if (k == "managedAppleId")
      s = ReadString(x, k, &u->managed_apple_id);
    else if (k == "status")
      s = ReadString(x, k, &u->status);
    if (!s) return s;
  }
  if (u->client_user_id.empty()) return tl::unexpected(Malformed("a user has no clientUserId"));
  return {};
}

// Reads the paging members and hands every member naming an item array to `items`.
template <class OnArray>
AppleStatus ReadPage(const json::object& o, PageMeta* meta, OnArray&& items) {
  bool have_current = false, have_total = false, have_version = false;
  for (const auto& kv : o) {
    const std::string_view k = kv.key();
    const json::value& x = kv.value();
    AppleStatus s;
    if (k == "currentPageIndex") {
      s = ReadInt(x, k, &meta->current);
      have_current = true;
    } else if (k == "nextPageIndex") {
      if (!x.is_null()) {
        std::int64_t n = 0;
        s = ReadInt(x, k, &n);
        meta->next = n;
      }
    } else if (k == "size") {
      std::int64_t n = 0;
      s = ReadInt(x, k, &n);
      meta->size = n;
    } else if (k == "totalPages") {
      s = ReadInt(x, k, &meta->total);
      have_total = true;
    } else if (k == "versionId") {
      s = ReadString(x, k, &meta->version_id);
      have_version = !meta->version_id.empty();
    } else {
      auto env = ReadEnvelopeMember(k, x, &meta->envelope);
      if (!env) return tl::unexpected(env.error());
      if (!*env) s = items(k, x);
    }
    if (!s) return s;
  }
  if (!have_current) return tl::unexpected(Malformed("the page has no currentPageIndex"));
  if (!have_total) return tl::unexpected(Malformed("the page has no totalPages"));
  if (!have_version) return tl::unexpected(Malformed("the page has no versionId"));
  return {};
}

template <class Item, class ReadOne>
AppleStatus ReadItems(const json::value& x, std::string_view key, std::vector<Item>* items, ReadOne&& read) {
  const json::array* a = x.if_array();
  if (!a) return tl::unexpected(Malformed("'" + std::string(key) + "' is not an array"));
  items->reserve(items->size() + a->size());
  for (const json::value& e : *a) {
    Item item;
    if (auto s = read(e, &item); !s) return s;
    items->push_back(std::move(item));
  }
  return {};
}

}  // namespace

// ------------------------------------------------------------------ pages

struct PageParser::State {
  // A page parses into `buffer` (reused from page to page) through a fresh
  // monotonic arena, so after the first page a walk does not go to the heap
  // for JSON values; a page larger than the buffer spills to the heap and
  // gives that back when the next page starts. (A fresh arena per page rather
  // than monotonic_resource::release(), which keeps no upstream blocks
  // alive across pages either way and is simpler to reason about.)
  std::vector<unsigned char> buffer = std::vector<unsigned char>(1 << 20);
  std::optional<json::monotonic_resource> arena;
  json::parser parser;
  // Optional so that each page's value is move-constructed (taking the new
  // arena) rather than move-assigned (which would copy into the old one's).
  std::optional<json::value> doc;

  AppleResult<const json::object*> Parse(std::string_view body) {
    doc.reset();  // Drop the previous page before its memory goes.
    parser.reset();
    arena.emplace(buffer.data(), buffer.size());
    parser.reset(json::storage_ptr(&*arena));
    boost::system::error_code ec;
    try {
      parser.write(body.data(), body.size(), ec);
      if (!ec) doc.emplace(parser.release());
    } catch (const std::exception& e) {  // bad_alloc from Boost.JSON: never let it cross the module.
      parser.reset();
      return tl::unexpected(Malformed(std::string("the response could not be parsed: ") + e.what()));
    }
    if (ec) {
      parser.reset();
      return tl::unexpected(Malformed("the response is not JSON: " + ec.message()));
    }
    if (!doc->is_object()) return tl::unexpected(Malformed("the response is not a JSON object"));
    return &doc->get_object();
  }
};

PageParser::PageParser() : state_(new State) {}
PageParser::~PageParser() { delete state_; }

AppleStatus PageParser::Assets(std::string_view body, PageMeta* meta, std::vector<Asset>* items) {
  items->clear();
  auto o = state_->Parse(body);
  if (!o) return tl::unexpected(o.error());
  return ReadPage(**o, meta, [&](std::string_view k, const json::value& x) -> AppleStatus {
    if (k == "assets" || k == "unlimitedAssets") {
      const bool unlimited = k == "unlimitedAssets";
      return ReadItems(x, k, items, [&](const json::value& e, Asset* a) { return ReadAsset(e, unlimited, a); });
    }
    return {};
  });
}

AppleStatus PageParser::Users(std::string_view body, PageMeta* meta, std::vector<User>* items) {
  items->clear();
  auto o = state_->Parse(body);
  if (!o) return tl::unexpected(o.error());
  return ReadPage(**o, meta, [&](std::string_view k, const json::value& x) -> AppleStatus {
    if (k == "users") return ReadItems(x, k, items, ReadUser);
    return {};
  });
}

// /assignments pages: parse_assignments.cc.

// ------------------------------------------------------------------ single answers

AppleResult<ServiceConfig> ParseServiceConfig(std::string_view body) {
  auto doc = ParseDocument(body);
  if (!doc) return tl::unexpected(doc.error());
  const json::object& o = doc->get_object();
  ServiceConfig c;
  if (const json::value* u = o.if_contains("urls"); u && !u->is_null()) {
    const json::object* uo = u->if_object();
    if (!uo) return tl::unexpected(Malformed("'urls' is not an object"));
    const std::pair<const char*, std::string*> urls[] = {
        {"clientConfig", &c.urls.client_config},
        {"getAssets", &c.urls.get_assets},
        {"getAssignments", &c.urls.get_assignments},
        {"associateAssets", &c.urls.associate_assets},
        {"disassociateAssets", &c.urls.disassociate_assets},
        {"revokeAssets", &c.urls.revoke_assets},
        {"eventStatus", &c.urls.event_status},
        {"getUsers", &c.urls.get_users},
        {"createUsers", &c.urls.create_users},
        {"updateUsers", &c.urls.update_users},
        {"retireUsers", &c.urls.retire_users},
        {"contentMetadataLookup", &c.urls.content_metadata_lookup},
        {"invitationEmail", &c.urls.invitation_email},
    };
    for (const auto& [key, out] : urls)
      if (const json::value* v = uo->if_contains(key))
        if (auto s = ReadString(*v, std::string("urls.") + key, out); !s) return tl::unexpected(s.error());
  }
  if (const json::value* l = o.if_contains("limits"); l && !l->is_null()) {
    const json::object* lo = l->if_object();
    if (!lo) return tl::unexpected(Malformed("'limits' is not an object"));
    auto& L = c.limits;
    const std::pair<const char*, int*> limits[] = {
        {"maxAssets", &L.max_assets},
        {"maxClientUserIds", &L.max_client_user_ids},
        {"maxSerialNumbers", &L.max_serial_numbers},
        {"maxRevokeClientUserIds", &L.max_revoke_client_user_ids},
        {"maxRevokeSerialNumbers", &L.max_revoke_serial_numbers},
        {"maxUsers", &L.max_users},
        {"maxNotificationLength", &L.max_notification_length},
        {"maxMdmNameLength", &L.max_mdm_name_length},
        {"maxMdmMetadataLength", &L.max_mdm_metadata_length},
        {"maxMdmIdLength", &L.max_mdm_id_length},
        {"maxRequestPerSecond", &L.max_request_per_second},
    };
    for (const auto& [key, out] : limits)
      if (const json::value* v = lo->if_contains(key))
        if (auto s = ReadInt(*v, std::string("limits.") + key, out); !s) return tl::unexpected(s.error());
  }
  if (const json::value* t = o.if_contains("notificationTypes"))
    if (auto s = ReadStrings(*t, "notificationTypes", &c.notification_types); !s) return tl::unexpected(s.error());
  return c;
}

AppleResult<ClientConfig> ParseClientConfig(std::string_view body) {
  auto doc = ParseDocument(body);
  if (!doc) return tl::unexpected(doc.error());
  ClientConfig c;
  for (const auto& kv : doc->get_object()) {
    const std::string_view k = kv.key();
    const json::value& x = kv.value();
    auto env = ReadEnvelopeMember(k, x, &c);
    if (!env) return tl::unexpected(env.error());
    if (*env) continue;
    AppleStatus s;
    if (k == "countryISO2ACode")
      s = ReadString(x, k, &c.country_iso2a);
    else if (k == "defaultPlatform")
      s = ReadString(x, k, &c.default_platform);
    else if (k == "locationName")
      s = ReadString(x, k, &c.location_name);
    else if (k == "websiteURL")
      s = ReadString(x, k, &c.website_url);
    else if (k == "notificationUrl")
      s = ReadString(x, k, &c.notification_url);
    else if (k == "notificationAuthToken")
      s = ReadString(x, k, &c.notification_auth_token);
    else if (k == "subscribedNotificationTypes")
      s = ReadStrings(x, k, &c.subscribed_notification_types);
    if (!s) return tl::unexpected(s.error());
  }
  if (c.uid.empty()) return tl::unexpected(Malformed("the client config has no uId"));
  return c;
}

AppleResult<EventResponse> ParseEventResponse(std::string_view body) {
  auto doc = ParseDocument(body);
  if (!doc) return tl::unexpected(doc.error());
  EventResponse r;
  for (const auto& kv : doc->get_object()) {
    auto env = ReadEnvelopeMember(kv.key(), kv.value(), &r);
    if (!env) return tl::unexpected(env.error());
    if (!*env && kv.key() == "eventId")
      if (auto s = ReadString(kv.value(), "eventId", &r.event_id); !s) return tl::unexpected(s.error());
  }
  if (r.event_id.empty()) return tl::unexpected(Malformed("the answer has no eventId"));
  return r;
}

AppleResult<EventStatus> ParseEventStatus(std::string_view body) {
  auto doc = ParseDocument(body);
  if (!doc) return tl::unexpected(doc.error());
  EventStatus r;
  for (const auto& kv : doc->get_object()) {
    const std::string_view k = kv.key();
    const json::value& x = kv.value();
    auto env = ReadEnvelopeMember(k, x, &r);
    if (!env) return tl::unexpected(env.error());
    if (*env) continue;
    AppleStatus s;
    if (k == "eventStatus")
      s = ReadString(x, k, &r.event_status);
    else if (k == "eventType")
      s = ReadString(x, k, &r.event_type);
    else if (k == "numRequested")
      s = ReadInt(x, k, &r.num_requested);
    else if (k == "numCompleted")
      s = ReadInt(x, k, &r.num_completed);
    else if (k == "failures" && !x.is_null()) {
      const json::array* a = x.if_array();
      if (!a) return tl::unexpected(Malformed("'failures' is not an array"));
      for (const json::value& fv : *a) {
        const json::object* fo = fv.if_object();
        if (!fo) return tl::unexpected(Malformed("a failure is not an object"));
        EventFailure f;
        if (const json::value* n = fo->if_contains("errorNumber"))
          if (auto t = ReadInt(*n, "failures.errorNumber", &f.error_number); !t) return tl::unexpected(t.error());
        if (const json::value* m = fo->if_contains("errorMessage"))
          if (auto t = ReadString(*m, "failures.errorMessage", &f.error_message); !t) return tl::unexpected(t.error());
        if (const json::value* info = fo->if_contains("errorInfo"); info && info->is_object()) {
          const json::object& io = info->get_object();
          if (const json::value* u = io.if_contains("clientUserIds"))
            if (auto t = ReadStrings(*u, "errorInfo.clientUserIds", &f.client_user_ids); !t)
              return tl::unexpected(t.error());
          if (const json::value* sn = io.if_contains("serialNumbers"))
            if (auto t = ReadStrings(*sn, "errorInfo.serialNumbers", &f.serial_numbers); !t)
              return tl::unexpected(t.error());
          if (const json::value* as = io.if_contains("assets"); as && as->is_array()) {
            for (const json::value& av : as->get_array()) {
              const json::object* ao = av.if_object();
              if (!ao) continue;
              AssetRef ref;
              if (const json::value* id = ao->if_contains("adamId")) (void)ReadString(*id, "adamId", &ref.adam_id);
              if (const json::value* pp = ao->if_contains("pricingParam"))
                (void)ReadString(*pp, "pricingParam", &ref.pricing_param);
              f.assets.push_back(std::move(ref));
            }
          }
        }
        r.failures.push_back(std::move(f));
      }
    }
    if (!s) return tl::unexpected(s.error());
  }
  if (r.event_status.empty()) return tl::unexpected(Malformed("the status has no eventStatus"));
  return r;
}

AppleStatus ParseLookup(std::string_view body, std::vector<AppMetadata>* out) {
  auto doc = ParseDocument(body);
  if (!doc) return tl::unexpected(doc.error());
  const json::value* results = doc->get_object().if_contains("results");
  if (!results) return tl::unexpected(Malformed("the lookup answer has no 'results'"));
  const json::object* ro = results->if_object();
  if (!ro) return tl::unexpected(Malformed("the lookup's 'results' is not an object"));
  for (const auto& kv : *ro) {
    const json::object* o = kv.value().if_object();
    if (!o) return tl::unexpected(Malformed("lookup result " + std::string(kv.key()) + " is not an object"));
    AppMetadata m;
    m.adam_id = kv.key();
    for (const auto& f : *o) {
      const std::string_view k = f.key();
      const json::value& x = f.value();
      AppleStatus s;
      if (k == "bundleId")
        s = ReadString(x, k, &m.bundle_id);
      else if (k == "name")
        s = ReadString(x, k, &m.name);
      else if (k == "kind")
        s = ReadString(x, k, &m.kind);
      else if (k == "supportedPlatforms")
        s = ReadStrings(x, k, &m.supported_platforms);
      else if (k == "artistName")
        s = ReadString(x, k, &m.artist_name);
      else if (k == "sellerName")
        s = ReadString(x, k, &m.seller_name);
      else if (k == "genreNames")
        s = ReadStrings(x, k, &m.genres);
      else if (k == "offers" && x.is_array() && !x.get_array().empty()) {
        // offers[0].version.display: the current version, where Apple gives one.
        const json::object* offer = x.get_array()[0].if_object();
        const json::value* ver = offer ? offer->if_contains("version") : nullptr;
        const json::object* vo = ver ? ver->if_object() : nullptr;
        if (const json::value* d = vo ? vo->if_contains("display") : nullptr)
          s = ReadString(*d, "version.display", &m.version);
      }
      if (!s) return s;
    }
    out->push_back(std::move(m));
  }
  return {};
}

// ------------------------------------------------------------------ bodies

std::string ClientConfigBody(const MdmInfo& mdm, const NotificationSettings* notifications) {
  json::object o;
  o["mdmInfo"] = {{"id", mdm.id}, {"name", mdm.name}, {"metadata", mdm.metadata}};
  if (notifications != nullptr) {
    o["notificationUrl"] = notifications->url;
    o["notificationAuthToken"] = notifications->auth_token;
    json::array types;
    for (const auto& t : notifications->types) types.emplace_back(t);
    o["notificationTypes"] = std::move(types);
  }
  return json::serialize(o);
}

namespace {
void PutStrings(json::object& o, const char* key, const std::vector<std::string>& v) {
  if (v.empty()) return;
  json::array a;
  a.reserve(v.size());
  for (const auto& s : v) a.emplace_back(s);
  o[key] = std::move(a);
}
}  // namespace

std::string ManageAssetsBody(const ManageAssetsRequest& request) {
  json::object o;
  json::array assets;
  for (const AssetRef& a : request.assets) {
    json::object ao;
    ao["adamId"] = a.adam_id;
    if (!a.pricing_param.empty()) ao["pricingParam"] = a.pricing_param;
    assets.push_back(std::move(ao));
  }
  o["assets"] = std::move(assets);
  PutStrings(o, "clientUserIds", request.client_user_ids);
  PutStrings(o, "serialNumbers", request.serial_numbers);
  return json::serialize(o);
}

std::string RevokeBody(const std::vector<std::string>& client_user_ids,
                       const std::vector<std::string>& serial_numbers) {
  json::object o;
  PutStrings(o, "clientUserIds", client_user_ids);
  PutStrings(o, "serialNumbers", serial_numbers);
  return json::serialize(o);
}

std::string ManageUsersBody(const std::vector<ManagedUser>& users) {
  json::array a;
  a.reserve(users.size());
  for (const ManagedUser& u : users) {
    json::object uo;
    uo["clientUserId"] = u.client_user_id;
    if (!u.email.empty()) uo["email"] = u.email;
    if (!u.managed_apple_id.empty()) uo["managedAppleId"] = u.managed_apple_id;
    a.push_back(std::move(uo));
  }
  json::object o;
  o["users"] = std::move(a);
  return json::serialize(o);
}

}  // namespace vppd::apple::internal
