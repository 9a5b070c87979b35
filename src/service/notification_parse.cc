// Apple's notifications (issue 16): the envelope's parser and the bearer check.
// Pure functions of their input, free of the store and of HTTP: the fuzz target
// (tests/fuzz/notification_fuzzer.cc) builds this file alone.
//
// Layout: 1. parsing  2. the bearer.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include <boost/json.hpp>

#include "service/service.h"

namespace vppd::service {
namespace json = boost::json;
namespace {

bool KnownType(std::string_view type) {
  return std::any_of(std::begin(kNotificationTypes), std::end(kNotificationTypes),
                     [&](const char* t) { return type == t; });
}

constexpr std::size_t kMaxIdLength = 256;
constexpr std::int64_t kMaxCountDelta = 2147483647;

// A required string member of at most kMaxIdLength characters; `allow_number`
// takes an integer too (Apple's ids are strings, but a uId reads like a number).
Result<std::string> IdMember(const json::object& o, std::string_view key, bool allow_number) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return Fail(Error::InvalidArgument("'" + std::string(key) + "' is missing", std::string(key)));
  std::string out;
  if (const json::string* s = v->if_string()) {
    out.assign(s->data(), s->size());
  } else if (allow_number && (v->is_int64() || v->is_uint64())) {
    out = json::serialize(*v);
  } else {
    return Fail(Error::InvalidArgument("'" + std::string(key) + "' must be a string", std::string(key)));
  }
  if (out.empty() || out.size() > kMaxIdLength) {
    return Fail(Error::InvalidArgument("'" + std::string(key) + "' must hold 1 to 256 characters", std::string(key)));
  }
  return out;
}

Status ParseAssetCount(const json::object& n, ParsedNotification& out) {
  auto adam = IdMember(n, "adamId", true);
  if (!adam) return Fail(Error::InvalidArgument("ASSET_COUNT: " + adam.error().message, "notification.adamId"));
  out.adam_id = std::move(*adam);
  out.pricing_param = "STDQ";
  if (const json::value* p = n.if_contains("pricingParam"); p != nullptr && !p->is_null()) {
    const json::string* s = p->if_string();
    if (s == nullptr || (*s != "STDQ" && *s != "PLUS")) {
      return Fail(
          Error::InvalidArgument("ASSET_COUNT: 'pricingParam' must be STDQ or PLUS", "notification.pricingParam"));
    }
    out.pricing_param.assign(s->data(), s->size());
  }
  const json::value* d = n.if_contains("countDelta");
  std::int64_t delta = 0;
  if (d != nullptr && d->is_int64()) {
    delta = d->get_int64();
  } else if (d != nullptr && d->is_uint64()) {
    delta = std::numeric_limits<std::int64_t>::max();  // out of range below
  } else {
    return Fail(Error::InvalidArgument(
        d == nullptr ? "ASSET_COUNT: 'countDelta' is missing" : "ASSET_COUNT: 'countDelta' must be an integer",
        "notification.countDelta"));
  }
  if (delta < -kMaxCountDelta || delta > kMaxCountDelta) {
    return Fail(Error::InvalidArgument("ASSET_COUNT: 'countDelta' is out of range", "notification.countDelta"));
  }
  out.count_delta = delta;
  return {};
}

constexpr std::size_t kMaxAssignments = 1000;  // Apple sends at most 100

// An optional string member: "" when absent or null.
Result<std::string> OptionalString(const json::object& o, std::string_view key, const std::string& where,
                                   std::string_view type = "ASSET_MANAGEMENT") {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return std::string();
  const json::string* s = v->if_string();
  if (s == nullptr || s->size() > kMaxIdLength) {
    return Fail(Error::InvalidArgument(std::string(type) + ": '" + std::string(key) +
                                           "' must be a string of at most 256 "
                                           "characters",
                                       where));
  }
  return std::string(s->data(), s->size());
}

// USER_MANAGEMENT's users and USER_ASSOCIATED's associatedUsers:
// [{clientUserId, email?, idHash?, inviteCode?, status?}].
Status ParseUsers(const json::object& n, std::string_view type, std::string_view key, bool required,
                  ParsedNotification& out) {
  const std::string where = "notification." + std::string(key);
  auto bad = [&](const std::string& message) {
    return Fail(Error::InvalidArgument(std::string(type) + ": " + message, where));
  };
  const json::value* a = n.if_contains(key);
  if (a == nullptr || a->is_null()) {
    if (required) return bad("'" + std::string(key) + "' is missing");
    return {};
  }
  const json::array* list = a->if_array();
  if (list == nullptr) return bad("'" + std::string(key) + "' must be an array");
  if (list->size() > kMaxAssignments) return bad("more than 1000 users");
  for (const json::value& item : *list) {
    const json::object* o = item.if_object();
    if (o == nullptr) return bad("a user must be an object");
    ParsedNotification::User u;
    auto id = IdMember(*o, "clientUserId", false);
    if (!id) return bad(id.error().message);
    u.client_user_id = std::move(*id);
    const std::pair<const char*, std::string*> fields[] = {
        {"email", &u.email}, {"idHash", &u.id_hash}, {"inviteCode", &u.invite_code}, {"status", &u.status}};
    for (const auto& [name, field] : fields) {
      auto value = OptionalString(*o, name, where + "." + name, type);
      if (!value) return Fail(value.error());
      *field = std::move(*value);
    }
    out.users.push_back(std::move(u));
  }
  return {};
}

// {assignments: [{adamId, pricingParam, serialNumber | clientUserId}], error?: ErrorResponse,
//  eventId, result: SUCCESS | FAILURE, type: ASSOCIATE | DISASSOCIATE | REVOKE}; and
// USER_MANAGEMENT: {error?, eventId, result, type: CREATE | UPDATE | RETIRE, users: [...]}.
Status ParseAssetManagement(const json::object& n, ParsedNotification& out,
                            std::string_view kind = "ASSET_MANAGEMENT") {
  auto bad = [kind](std::string message, std::string target) {
    return Fail(Error::InvalidArgument(std::string(kind) + ": " + std::move(message), std::move(target)));
  };
  auto event = IdMember(n, "eventId", true);
  if (!event) return bad(event.error().message, "notification.eventId");
  out.event_id = std::move(*event);
  auto type = IdMember(n, "type", false);
  if (!type) return bad(type.error().message, "notification.type");
  out.event_type = std::move(*type);
  const json::value* result = n.if_contains("result");
  const json::string* r = result != nullptr ? result->if_string() : nullptr;
  if (r == nullptr || (*r != "SUCCESS" && *r != "FAILURE")) {
    return bad("'result' must be SUCCESS or FAILURE", "notification.result");
  }
  out.succeeded = *r == "SUCCESS";
  if (const json::value* a = n.if_contains("assignments"); a != nullptr && !a->is_null()) {
    const json::array* list = a->if_array();
    if (list == nullptr) return bad("'assignments' must be an array", "notification.assignments");
    if (list->size() > kMaxAssignments) return bad("more than 1000 assignments", "notification.assignments");
    for (const json::value& item : *list) {
      const json::object* o = item.if_object();
      if (o == nullptr) return bad("an assignment must be an object", "notification.assignments");
      auto serial = OptionalString(*o, "serialNumber", "notification.assignments.serialNumber");
      if (!serial) return Fail(serial.error());
      auto user = OptionalString(*o, "clientUserId", "notification.assignments.clientUserId");
      if (!user) return Fail(user.error());
      if (!serial->empty()) out.serial_numbers.push_back(std::move(*serial));
      if (!user->empty()) {
        out.names_users = true;
        out.client_user_ids.push_back(std::move(*user));
      }
    }
  }
  if (const json::value* e = n.if_contains("error"); e != nullptr && !e->is_null()) {
    const json::object* o = e->if_object();
    if (o == nullptr) return bad("'error' must be an object", "notification.error");
    if (const json::value* number = o->if_contains("errorNumber"); number != nullptr && !number->is_null()) {
      if (!number->is_int64() || number->get_int64() < 0 || number->get_int64() > 1'000'000'000) {
        return bad("'error.errorNumber' must be an integer", "notification.error.errorNumber");
      }
      out.error_number = static_cast<int>(number->get_int64());
    }
    if (const json::value* m = o->if_contains("errorMessage"); m != nullptr && !m->is_null()) {
      const json::string* text = m->if_string();
      if (text == nullptr) return bad("'error.errorMessage' must be a string", "notification.error.errorMessage");
      out.error_message.assign(text->data(), std::min<std::size_t>(text->size(), 1024));
    }
  }
  return {};
}

// Boost.JSON reads a number beyond a double's range (1e400) as infinity, which has
// no JSON spelling: the body kept would not parse again. Apple sends none.
bool NumbersFinite(const json::value& v) {
  if (const double* d = v.if_double()) return std::isfinite(*d);
  if (const json::object* o = v.if_object()) {
    for (const auto& member : *o) {
      if (!NumbersFinite(member.value())) return false;
    }
  }
  if (const json::array* a = v.if_array()) {
    for (const json::value& item : *a) {
      if (!NumbersFinite(item)) return false;
    }
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------
// 1. Parsing

Result<ParsedNotification> ParseNotification(std::string_view body) {
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 16;
  json::value doc = json::parse(json::string_view(body.data(), body.size()), ec, {}, opts);
  if (ec) return Fail(Error::InvalidArgument("the body is not valid JSON: " + ec.message()));
  if (!NumbersFinite(doc)) return Fail(Error::InvalidArgument("the body holds a number out of range"));
  const json::object* o = doc.if_object();
  if (o == nullptr) return Fail(Error::InvalidArgument("the body must be a JSON object"));
  ParsedNotification out;
  auto id = IdMember(*o, "notificationId", false);
  if (!id) return Fail(id.error());
  out.notification_id = std::move(*id);
  auto type = IdMember(*o, "notificationType", false);
  if (!type) return Fail(type.error());
  if (!KnownType(*type)) {
    return Fail(Error::InvalidArgument("notificationType '" + type->substr(0, 64) + "' is not one vppd handles",
                                       "notificationType"));
  }
  out.type = std::move(*type);
  auto uid = IdMember(*o, "uId", true);
  if (!uid) return Fail(uid.error());
  out.uid = std::move(*uid);
  const json::value* n = o->if_contains("notification");
  if (n == nullptr) return Fail(Error::InvalidArgument("'notification' is missing", "notification"));
  const json::object* no = n->if_object();
  if (no == nullptr) return Fail(Error::InvalidArgument("'notification' must be an object", "notification"));
  if (out.type == "ASSET_COUNT") {
    if (Status s = ParseAssetCount(*no, out); !s) return Fail(s.error());
  } else if (out.type == "ASSET_MANAGEMENT") {
    if (Status s = ParseAssetManagement(*no, out); !s) return Fail(s.error());
  } else if (out.type == "USER_MANAGEMENT") {
    if (Status s = ParseAssetManagement(*no, out, "USER_MANAGEMENT"); !s) return Fail(s.error());
    if (Status s = ParseUsers(*no, out.type, "users", false, out); !s) return Fail(s.error());
  } else if (out.type == "USER_ASSOCIATED") {
    if (Status s = ParseUsers(*no, out.type, "associatedUsers", true, out); !s) return Fail(s.error());
  }
  out.body = json::serialize(*no);
  return out;
}

// ---------------------------------------------------------------------------
// 2. The bearer

namespace {

// Equal strings, in time that depends on their lengths only (both are
// SHA-256 hex digests here, always 64 characters).
bool SameDigest(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || a.empty()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

bool BearerMatches(std::string_view authorization, const store::NotificationEndpoint& endpoint, Timestamp now) {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() <= kScheme.size() || authorization.size() > 1024) return false;
  // The scheme is case-insensitive (RFC 9110 §11.1).
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i]))) {
      return false;
    }
  }
  const std::string digest = Sha256Hex(authorization.substr(kScheme.size()));
  // Both compared, whatever the first gave: the time does not say which matched.
  const bool current = SameDigest(digest, endpoint.auth_hash);
  const bool previous = SameDigest(digest, endpoint.previous_auth_hash) && now < endpoint.previous_valid_until;
  return current || previous;
}

}  // namespace vppd::service
