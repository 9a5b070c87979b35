#include "notifier.h"

#include <algorithm>
#include <mutex>

#include <boost/json.hpp>
#include <curl/curl.h>

#include "json_writer.h"

namespace vppd::sim {

namespace json = boost::json;

namespace {

constexpr std::pair<NotificationFaultKind, const char*> kKinds[] = {
    {NotificationFaultKind::kDrop, "drop"},
    {NotificationFaultKind::kDuplicate, "duplicate"},
    {NotificationFaultKind::kDelay, "delay"},
    {NotificationFaultKind::kReorder, "reorder"},
    {NotificationFaultKind::kWrongBearer, "wrong_bearer"},
};

const char* KindName(NotificationFaultKind k) {
  for (const auto& [kind, name] : kKinds)
    if (kind == k) return name;
  return "drop";
}

// Apple's gaps before attempts 2 and 3 (spec §5: three tries over 1–5 minutes).
constexpr std::chrono::milliseconds kRetryGaps[] = {std::chrono::seconds(60), std::chrono::seconds(180)};
// How long a reordered notification waits for a successor before it goes anyway.
constexpr std::chrono::milliseconds kReorderWait{2000};

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

class Curl final : public NotificationSender {
 public:
  Curl() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  }
  Result<int> Post(const std::string& url, const std::string& bearer, const std::string& body,
                   std::chrono::milliseconds timeout) override {
    CURL* c = curl_easy_init();
    if (!c) return Fail(Error::Internal("curl_easy_init failed"));
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, ("Authorization: Bearer " + bearer).c_str());
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<std::int64_t>(timeout.count(), 2000)));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Discard);
    const CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) return Fail(Error::Unavailable(curl_easy_strerror(rc)));
    return static_cast<int>(status);
  }
};

}  // namespace

std::unique_ptr<NotificationSender> CurlSender() { return std::make_unique<Curl>(); }

Result<NotificationFaultRule> ParseNotificationFaultRule(std::string_view text) {
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) return Fail(Error::InvalidArgument("body is not JSON: " + ec.message()));
  const json::object* o = doc.if_object();
  if (!o) return Fail(Error::InvalidArgument("body must be a JSON object"));
  NotificationFaultRule r;
  bool has_kind = false;
  for (const auto& kv : *o) {
    const std::string key(kv.key().data(), kv.key().size());
    const json::value& v = kv.value();
    auto bad = [&](const std::string& what) { return Fail(Error::InvalidArgument(key + " must be " + what, key)); };
    auto integer = [&](std::int64_t lo, std::int64_t hi) -> std::optional<std::int64_t> {
      std::int64_t x;
      if (const auto* i = v.if_int64())
        x = *i;
      else if (const auto* u = v.if_uint64(); u && *u <= static_cast<std::uint64_t>(hi))
        x = static_cast<std::int64_t>(*u);
      else
        return std::nullopt;
      if (x < lo || x > hi) return std::nullopt;
      return x;
    };
    if (key == "kind") {
      const json::string* s = v.if_string();
      auto it = s ? std::find_if(std::begin(kKinds), std::end(kKinds), [&](const auto& k) { return *s == k.second; })
                  : std::end(kKinds);
      if (it == std::end(kKinds)) return bad("one of drop, duplicate, delay, reorder, wrong_bearer");
      r.kind = it->first;
      has_kind = true;
    } else if (key == "type" || key == "location") {
      const json::string* s = v.if_string();
      if (!s) return bad("a string");
      (key == "type" ? r.type : r.location) = std::string(s->data(), s->size());
    } else if (key == "onNotifications") {
      const json::array* a = v.if_array();
      if (!a) return bad("an array of positive integers");
      for (const json::value& e : *a) {
        const auto* i = e.if_int64();
        const auto* u = e.if_uint64();
        const std::int64_t n = i ? *i : u ? static_cast<std::int64_t>(std::min<std::uint64_t>(*u, INT64_MAX)) : 0;
        if (n < 1) return bad("an array of positive integers");
        r.on_notifications.push_back(n);
      }
    } else if (key == "rate") {
      if (!v.is_number()) return bad("a number in [0, 1]");
      r.rate = v.to_number<double>();
      if (!(r.rate >= 0 && r.rate <= 1)) return bad("a number in [0, 1]");
    } else if (key == "maxHits") {
      auto x = integer(-1, INT64_MAX);
      if (!x) return bad("an integer >= -1");
      r.max_hits = *x;
    } else if (key == "delayMs") {
      auto x = integer(0, 600000);
      if (!x) return bad("an integer in [0, 600000]");
      r.delay_ms = *x;
    } else {
      return Fail(Error::InvalidArgument("unknown member " + key, key));
    }
  }
  if (!has_kind) return Fail(Error::InvalidArgument("kind is required", "kind"));
  return r;
}

std::string NotificationFaultRuleJson(const NotificationFaultRule& r) {
  JsonWriter w;
  w.BeginObject();
  w.Field("id", r.id);
  w.Field("kind", KindName(r.kind));
  if (!r.type.empty()) w.Field("type", r.type);
  if (!r.location.empty()) w.Field("location", r.location);
  if (!r.on_notifications.empty()) {
    w.Key("onNotifications");
    w.BeginArray();
    for (auto n : r.on_notifications) w.Int(n);
    w.EndArray();
  } else {
    w.Key("rate");
    w.Raw(std::to_string(r.rate));
  }
  w.Field("maxHits", r.max_hits);
  if (r.kind == NotificationFaultKind::kDelay) w.Field("delayMs", r.delay_ms);
  w.Field("matched", r.matched);
  w.Field("hits", r.hits);
  w.EndObject();
  return std::move(w).Take();
}

Notifier::Notifier(std::uint64_t seed, std::unique_ptr<NotificationSender> sender, double retry_scale)
    : sender_(std::move(sender)), seed_(seed), retry_scale_(std::max(0.0, retry_scale)) {
  thread_ = std::thread([this] { Run(); });
}

Notifier::~Notifier() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Notifier::SetRetryScale(double scale) {
  std::lock_guard lock(mu_);
  retry_scale_ = std::max(0.0, scale);
}

double Notifier::retry_scale() const {
  std::lock_guard lock(mu_);
  return retry_scale_;
}

int Notifier::AddFault(NotificationFaultRule rule) {
  std::lock_guard lock(mu_);
  rule.id = next_fault_id_++;
  rule.matched = rule.hits = 0;
  rngs_.emplace(rule.id, Rng(Mix64(seed_ ^ 0x6e6f74696679ULL, static_cast<std::uint64_t>(rule.id))));
  const int id = rule.id;
  faults_.emplace(id, std::move(rule));
  return id;
}

bool Notifier::RemoveFault(int id) {
  std::lock_guard lock(mu_);
  rngs_.erase(id);
  return faults_.erase(id) != 0;
}

std::vector<NotificationFaultRule> Notifier::Faults() const {
  std::lock_guard lock(mu_);
  std::vector<NotificationFaultRule> out;
  for (const auto& [id, r] : faults_) out.push_back(r);
  return out;
}

std::vector<DeliveryRecord> Notifier::Deliveries() const {
  std::lock_guard lock(mu_);
  return {log_.begin(), log_.end()};
}

std::size_t Notifier::Queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();  // A notification held for reordering waits there too (its timeout copy).
}

void Notifier::ClearLog() {
  std::lock_guard lock(mu_);
  log_.clear();
}

void Notifier::Reset(double retry_scale) {
  std::lock_guard lock(mu_);
  log_.clear();
  queue_.clear();
  reorder_held_.clear();
  faults_.clear();
  rngs_.clear();
  next_fault_id_ = 1;
  retry_scale_ = std::max(0.0, retry_scale);
}

void Notifier::Record(const Pending& p, std::string outcome, int status, std::string error) {
  DeliveryRecord r;
  r.notification_id = p.n.id;
  r.type = p.n.type;
  r.uid = p.n.uid;
  r.url = p.n.url;
  r.attempt = outcome == "dropped" || outcome == "overflow" ? 0 : p.attempt;
  r.outcome = std::move(outcome);
  r.status = status;
  r.error = std::move(error);
  r.duplicate = p.duplicate;
  r.wrong_bearer = p.wrong_bearer;
  r.faults = p.faults;
  r.at = Clock::Real().Now();
  r.body = p.n.body;
  log_.push_back(std::move(r));
  while (log_.size() > kMaxLog) log_.pop_front();
}

void Notifier::Schedule(Pending p) {
  auto pos = std::upper_bound(queue_.begin(), queue_.end(), p.due,
                              [](const auto& due, const Pending& q) { return due < q.due; });
  queue_.insert(pos, std::move(p));
}

void Notifier::Enqueue(OutgoingNotification n) {
  std::unique_lock lock(mu_);
  Pending p;
  p.n = std::move(n);
  p.due = std::chrono::steady_clock::now();
  if (queue_.size() >= kMaxQueued) {
    Record(p, "overflow", 0, "queue full");
    return;
  }
  bool drop = false, reorder = false;
  for (auto& [id, r] : faults_) {
    if (!r.type.empty() && r.type != p.n.type) continue;
    if (!r.location.empty() && r.location != p.n.uid) continue;
    ++r.matched;
    if (r.max_hits >= 0 && r.hits >= r.max_hits) continue;
    const bool fire = r.on_notifications.empty() ? rngs_.at(id).Chance(r.rate)
                                                 : std::find(r.on_notifications.begin(), r.on_notifications.end(),
                                                             r.matched) != r.on_notifications.end();
    if (!fire) continue;
    ++r.hits;
    p.faults.push_back(KindName(r.kind));
    switch (r.kind) {
      case NotificationFaultKind::kDrop:
        drop = true;
        break;
      case NotificationFaultKind::kDuplicate:
        p.duplicate_after = true;
        break;
      case NotificationFaultKind::kDelay:
        p.due += std::chrono::milliseconds(r.delay_ms);
        break;
      case NotificationFaultKind::kReorder:
        reorder = true;
        break;
      case NotificationFaultKind::kWrongBearer:
        p.wrong_bearer = true;
        break;
    }
  }
  // A notification held for reordering goes right after this one.
  std::optional<Pending> released;
  if (auto it = reorder_held_.find(p.n.uid); it != reorder_held_.end()) {
    released = std::move(it->second);
    reorder_held_.erase(it);
  }
  if (drop) {
    Record(p, "dropped", 0, "");
  } else if (reorder && !released) {
    p.reorder_hold = true;
    p.due += kReorderWait;  // Goes anyway if no successor comes.
    reorder_held_.emplace(p.n.uid, p);
    Schedule(std::move(p));  // The timeout copy; skipped if released first.
  } else {
    Schedule(p);
  }
  if (released) {
    released->reorder_hold = false;
    released->due = std::max(released->due - kReorderWait, p.due);
    // Drop the timeout copy still in the queue.
    const std::string id = released->n.id;
    queue_.erase(
        std::remove_if(queue_.begin(), queue_.end(), [&](const Pending& q) { return q.reorder_hold && q.n.id == id; }),
        queue_.end());
    Schedule(std::move(*released));
  }
  lock.unlock();
  cv_.notify_all();
}

void Notifier::Run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (queue_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    if (queue_.front().due > now) {
      cv_.wait_until(lock, queue_.front().due);
      continue;
    }
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    if (p.reorder_hold) {  // Its successor never came: send it now.
      reorder_held_.erase(p.n.uid);
      p.reorder_hold = false;
    }
    const std::string bearer = p.wrong_bearer ? "not-" + p.n.auth_token : p.n.auth_token;
    lock.unlock();
    Result<int> sent = sender_->Post(p.n.url, bearer, p.n.body, kAttemptTimeout);
    lock.lock();
    if (stop_) break;
    const bool delivered = sent && *sent >= 200 && *sent < 300;
    Record(p, delivered ? "delivered" : "failed", sent ? *sent : 0, sent ? "" : sent.error().message);
    if (delivered) {
      if (p.duplicate_after) {
        Pending copy = p;
        copy.duplicate_after = false;
        copy.duplicate = true;
        copy.attempt = 1;  // Keeps its due time: it goes before anything queued after the original.
        Schedule(std::move(copy));
      }
    } else if (p.attempt < kMaxAttempts) {
      const auto gap = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double, std::milli>(kRetryGaps[p.attempt - 1].count() * retry_scale_));
      p.due = std::chrono::steady_clock::now() + gap;
      ++p.attempt;
      Schedule(std::move(p));
    }
  }
}

}  // namespace vppd::sim
