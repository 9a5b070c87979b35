#include "faults.h"

#include <algorithm>

#include <boost/json.hpp>

#include "json_writer.h"

namespace vppd::sim {

namespace json = boost::json;

namespace {

constexpr std::pair<FaultKind, const char*> kKinds[] = {
    {FaultKind::kUnavailable, "unavailable"},
    {FaultKind::kInternal, "internal"},
    {FaultKind::kTooManyRequests, "too_many_requests"},
    {FaultKind::kLatency, "latency"},
    {FaultKind::kTruncate, "truncate"},
    {FaultKind::kMalformedJson, "malformed_json"},
    {FaultKind::kAppleError200, "apple_error_200"},
    {FaultKind::kBumpVersion, "bump_version"},
    {FaultKind::kEventFailure, "event_failure"},
    {FaultKind::kSlowEvent, "slow_event"},
    {FaultKind::kHoldEvent, "hold_event"},
};

// Reads an optional array of strings.
Status ReadStrings(const json::object& o, std::string_view key, std::vector<std::string>* out) {
  const json::value* v = o.if_contains(key);
  if (!v) return {};
  const json::array* a = v->if_array();
  if (!a) return Fail(Error::InvalidArgument(std::string(key) + " must be an array of strings", std::string(key)));
  for (const json::value& e : *a) {
    const json::string* s = e.if_string();
    if (!s || s->empty())
      return Fail(Error::InvalidArgument(std::string(key) + " must be an array of strings", std::string(key)));
    out->emplace_back(s->data(), s->size());
  }
  return {};
}

// Reads an integer member within [lo, hi].
Status ReadInt(const json::object& o, std::string_view key, std::int64_t lo, std::int64_t hi, std::int64_t* out) {
  const json::value* v = o.if_contains(key);
  if (!v) return {};
  std::int64_t x;
  if (const auto* i = v->if_int64())
    x = *i;
  else if (const auto* u = v->if_uint64(); u && *u <= static_cast<std::uint64_t>(hi))
    x = static_cast<std::int64_t>(*u);
  else
    return Fail(Error::InvalidArgument(std::string(key) + " must be an integer", std::string(key)));
  if (x < lo || x > hi)
    return Fail(Error::InvalidArgument(
        std::string(key) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", std::string(key)));
  *out = x;
  return {};
}

Status ReadString(const json::object& o, std::string_view key, std::string* out) {
  const json::value* v = o.if_contains(key);
  if (!v) return {};
  const json::string* s = v->if_string();
  if (!s) return Fail(Error::InvalidArgument(std::string(key) + " must be a string", std::string(key)));
  *out = std::string(s->data(), s->size());
  return {};
}

}  // namespace

const char* FaultKindName(FaultKind k) {
  for (const auto& [kind, name] : kKinds)
    if (kind == k) return name;
  return "unavailable";
}

bool IsEventFault(FaultKind k) {
  return k == FaultKind::kEventFailure || k == FaultKind::kSlowEvent || k == FaultKind::kHoldEvent;
}

std::optional<FaultKind> FaultKindFromName(std::string_view name) {
  for (const auto& [kind, n] : kKinds)
    if (name == n) return kind;
  return std::nullopt;
}

Result<FaultRule> ParseFaultRule(std::string_view text) {
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) return Fail(Error::InvalidArgument("body is not JSON: " + ec.message()));
  const json::object* o = doc.if_object();
  if (!o) return Fail(Error::InvalidArgument("body must be a JSON object"));
  static constexpr std::string_view kKnown[] = {
      "path",       "method",      "location",          "onRequests",       "rate",
      "maxHits",    "kind",        "retryAfterSeconds", "retryAfterFormat", "latencyMs",
      "truncateAt", "errorNumber", "serialNumbers",     "clientUserIds",    "delayMs"};
  for (const auto& kv : *o) {
    const std::string_view key(kv.key().data(), kv.key().size());
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown))
      return Fail(Error::InvalidArgument("unknown member " + std::string(key), std::string(key)));
  }
  FaultRule r;
  std::string kind;
  if (auto s = ReadString(*o, "kind", &kind); !s) return Fail(s.error());
  auto k = FaultKindFromName(kind);
  if (!k)
    return Fail(
        Error::InvalidArgument("kind must be one of unavailable, internal, too_many_requests, latency, "
                               "truncate, malformed_json, apple_error_200, bump_version, event_failure, slow_event, "
                               "hold_event",
                               "kind"));
  r.kind = *k;
  if (auto s = ReadString(*o, "path", &r.path); !s) return Fail(s.error());
  if (r.path.empty() || (r.path != "*" && r.path[0] != '/'))
    return Fail(Error::InvalidArgument("path must be \"*\" or start with /", "path"));
  if (auto s = ReadString(*o, "method", &r.method); !s) return Fail(s.error());
  if (auto s = ReadString(*o, "location", &r.location); !s) return Fail(s.error());
  if (const json::value* v = o->if_contains("onRequests")) {
    const json::array* a = v->if_array();
    if (!a) return Fail(Error::InvalidArgument("onRequests must be an array of positive integers", "onRequests"));
    for (const json::value& e : *a) {
      std::int64_t n = 0;
      if (const auto* i = e.if_int64())
        n = *i;
      else if (const auto* u = e.if_uint64())
        n = static_cast<std::int64_t>(std::min<std::uint64_t>(*u, INT64_MAX));
      if (n < 1) return Fail(Error::InvalidArgument("onRequests must be an array of positive integers", "onRequests"));
      r.on_requests.push_back(n);
    }
  }
  if (const json::value* v = o->if_contains("rate")) {
    if (!v->is_number()) return Fail(Error::InvalidArgument("rate must be a number in [0, 1]", "rate"));
    r.rate = v->to_number<double>();  // is_number() checked: cannot throw.
    if (!(r.rate >= 0 && r.rate <= 1)) return Fail(Error::InvalidArgument("rate must be a number in [0, 1]", "rate"));
  }
  if (r.on_requests.empty() && r.rate == 0 && !o->contains("rate"))
    r.rate = 1;  // Neither trigger given: fire on every matching request.
  std::int64_t x = r.max_hits;
  if (auto s = ReadInt(*o, "maxHits", -1, INT64_MAX, &x); !s) return Fail(s.error());
  r.max_hits = x;
  x = r.retry_after_seconds;
  if (auto s = ReadInt(*o, "retryAfterSeconds", 0, 86400, &x); !s) return Fail(s.error());
  r.retry_after_seconds = static_cast<int>(x);
  std::string format = "seconds";
  if (auto s = ReadString(*o, "retryAfterFormat", &format); !s) return Fail(s.error());
  if (format != "seconds" && format != "http-date")
    return Fail(Error::InvalidArgument("retryAfterFormat must be seconds or http-date", "retryAfterFormat"));
  r.retry_after_http_date = format == "http-date";
  x = r.latency_ms;
  if (auto s = ReadInt(*o, "latencyMs", 0, 120000, &x); !s) return Fail(s.error());
  r.latency_ms = static_cast<int>(x);
  x = static_cast<std::int64_t>(r.truncate_at);
  if (auto s = ReadInt(*o, "truncateAt", 0, 1 << 30, &x); !s) return Fail(s.error());
  r.truncate_at = static_cast<std::size_t>(x);
  if (r.kind == FaultKind::kEventFailure) r.error_number = 9610;  // License not found (spec §6.6).
  x = r.error_number;
  if (auto s = ReadInt(*o, "errorNumber", 1, 99999, &x); !s) return Fail(s.error());
  r.error_number = static_cast<int>(x);
  if (auto s = ReadStrings(*o, "serialNumbers", &r.serial_numbers); !s) return Fail(s.error());
  if (auto s = ReadStrings(*o, "clientUserIds", &r.client_user_ids); !s) return Fail(s.error());
  x = r.delay_ms;
  if (auto s = ReadInt(*o, "delayMs", 0, 86'400'000, &x); !s) return Fail(s.error());
  r.delay_ms = x;
  return r;
}

std::string FaultRuleJson(const FaultRule& r) {
  JsonWriter w;
  w.BeginObject();
  w.Field("id", r.id);
  w.Field("kind", FaultKindName(r.kind));
  w.Field("path", r.path);
  if (!r.method.empty()) w.Field("method", r.method);
  if (!r.location.empty()) w.Field("location", r.location);
  if (!r.on_requests.empty()) {
    w.Key("onRequests");
    w.BeginArray();
    for (auto n : r.on_requests) w.Int(n);
    w.EndArray();
  } else {
    w.Key("rate");
    w.Raw(std::to_string(r.rate));
  }
  w.Field("maxHits", r.max_hits);
  w.Field("retryAfterSeconds", r.retry_after_seconds);
  w.Field("retryAfterFormat", r.retry_after_http_date ? "http-date" : "seconds");
  w.Field("latencyMs", r.latency_ms);
  w.Field("truncateAt", static_cast<std::int64_t>(r.truncate_at));
  w.Field("errorNumber", r.error_number);
  if (r.kind == FaultKind::kEventFailure) {
    w.Key("serialNumbers");
    w.BeginArray();
    for (const auto& sn : r.serial_numbers) w.String(sn);
    w.EndArray();
    w.Key("clientUserIds");
    w.BeginArray();
    for (const auto& cu : r.client_user_ids) w.String(cu);
    w.EndArray();
  }
  if (r.kind == FaultKind::kSlowEvent) w.Field("delayMs", r.delay_ms);
  w.Field("matched", r.matched);
  w.Field("hits", r.hits);
  w.EndObject();
  return std::move(w).Take();
}

int FaultInjector::Add(FaultRule rule) {
  std::lock_guard lock(mu_);
  rule.id = next_id_++;
  rule.matched = rule.hits = 0;
  rngs_.emplace(rule.id, Rng(Mix64(seed_ ^ 0x6661756c74ULL, static_cast<std::uint64_t>(rule.id))));
  const int id = rule.id;
  rules_.emplace(id, std::move(rule));
  return id;
}

bool FaultInjector::Remove(int id) {
  std::lock_guard lock(mu_);
  rngs_.erase(id);
  return rules_.erase(id) != 0;
}

void FaultInjector::Clear() {
  std::lock_guard lock(mu_);
  rules_.clear();
  rngs_.clear();
  next_id_ = 1;
}

std::vector<FaultRule> FaultInjector::List() const {
  std::lock_guard lock(mu_);
  std::vector<FaultRule> out;
  for (const auto& [id, r] : rules_) out.push_back(r);
  return out;
}

std::vector<FaultRule> FaultInjector::Match(std::string_view method, std::string_view path, std::string_view location,
                                            bool creates_event) {
  std::lock_guard lock(mu_);
  std::vector<FaultRule> fired;
  for (auto& [id, r] : rules_) {
    if (IsEventFault(r.kind) && !creates_event) continue;
    if (r.path != "*" && r.path != path) continue;
    if (!r.method.empty() && r.method != method) continue;
    if (!r.location.empty() && r.location != location) continue;
    ++r.matched;
    if (r.max_hits >= 0 && r.hits >= r.max_hits) continue;
    bool fire;
    if (!r.on_requests.empty()) {
      fire = std::find(r.on_requests.begin(), r.on_requests.end(), r.matched) != r.on_requests.end();
    } else {
      // Draw for every matching request so the sequence only depends on the count.
      fire = rngs_.at(id).Chance(r.rate);
    }
    if (!fire) continue;
    ++r.hits;
    fired.push_back(r);
  }
  return fired;
}

bool RateLimiter::Allow(std::string_view key, int limit, Timestamp now) {
  const std::int64_t second = now / 1'000'000;
  std::lock_guard lock(mu_);
  auto it = windows_.find(key);
  if (it == windows_.end()) it = windows_.emplace(std::string(key), Window{}).first;
  Window& w = it->second;
  if (w.second != second) {
    w.second = second;
    w.count = 0;
  }
  if (w.count >= limit) return false;
  ++w.count;
  return true;
}

void RateLimiter::Clear() {
  std::lock_guard lock(mu_);
  windows_.clear();
}

}  // namespace vppd::sim
