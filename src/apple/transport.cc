// libcurl behind apple::Client: sessions, batches, retries, rate limiting.
#include "apple/transport.h"

#include <string.h>  // memmem (GNU)

#include <algorithm>
#include <cstring>
#include <thread>

#include <boost/json.hpp>
#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include "base/metrics.h"

namespace vppd::apple::internal {

namespace json = boost::json;

// ------------------------------------------------------------------ sessions

// A multi handle keeps the connection cache: connections opened by one call are
// reused by the next call that checks the same Session out.
struct Session {
  CURLM* multi = nullptr;
  std::vector<CURL*> easies;

  Session() : multi(curl_multi_init()) {}
  ~Session() {
    for (CURL* e : easies) curl_easy_cleanup(e);
    if (multi) curl_multi_cleanup(multi);
  }
  CURL* Easy(std::size_t i) {
    while (easies.size() <= i) easies.push_back(curl_easy_init());
    return easies[i];
  }
};

namespace {

std::once_flag g_curl_init;

constexpr std::int64_t kMicrosPerSecond = 1'000'000;
// libcurl's receive buffer per transfer (CURLOPT_BUFFERSIZE; see StartReady).
constexpr long kReceiveBufferBytes = 128 * 1024;

std::chrono::milliseconds CeilMs(std::int64_t micros) {
  return std::chrono::milliseconds(micros <= 0 ? 0 : (micros + 999) / 1000);
}

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

void AppendEncoded(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (IsUnreserved(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view TrimWs(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

// Retry-After as delta-seconds or an HTTP-date; nullopt when absent or unreadable.
std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view v, Timestamp now) {
  v = TrimWs(v);
  if (v.empty()) return std::nullopt;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (v.size() > 9) return std::chrono::seconds(999'999'999);  // Absurd, but "very long" is what it says.
    return std::chrono::seconds(std::stoll(std::string(v)));
  }
  auto when = ParseHttpDate(v);
  if (!when) return std::nullopt;
  const std::int64_t delta = *when - now;
  return std::chrono::seconds(delta <= 0 ? 0 : (delta + kMicrosPerSecond - 1) / kMicrosPerSecond);
}

}  // namespace

// ------------------------------------------------------------------ rate limiter

std::int64_t RateLimiter::TryAcquire(Timestamp now, double rate) {
  std::lock_guard lock(mu_);
  if (now < paused_until_) return paused_until_ - now;
  // `rate` starts per second; fractional rates (0.5/s) widen the window instead.
  std::size_t limit = 1;
  std::int64_t window = kMicrosPerSecond;
  if (rate >= 1) {
    limit = static_cast<std::size_t>(rate);
  } else if (rate > 0) {
    window = static_cast<std::int64_t>(kMicrosPerSecond / rate);
  }
  while (!starts_.empty() && starts_.front() <= now - window) starts_.pop_front();
  if (starts_.size() >= limit) return starts_.front() + window - now;
  starts_.push_back(now);
  return 0;
}

void RateLimiter::PauseUntil(Timestamp until) {
  std::lock_guard lock(mu_);
  paused_until_ = std::max(paused_until_, until);
}

// ------------------------------------------------------------------ transport

Transport::Transport(ClientOptions options)
    : options_(std::move(options)), clock_(options_.clock ? options_.clock : &Clock::Real()) {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  rng_.seed(options_.jitter_seed ? options_.jitter_seed : std::random_device{}());
}

Transport::~Transport() = default;

void Transport::Sleep(std::chrono::milliseconds d) const {
  if (d.count() <= 0) return;
  if (options_.sleep) {
    options_.sleep(d);
  } else {
    std::this_thread::sleep_for(d);
  }
}

double Transport::Rate() const {
  if (options_.max_requests_per_second > 0) return options_.max_requests_per_second;
  const int service = service_rate_.load();
  return service > 0 ? service : 15;
}

void Transport::SetServiceRate(int requests_per_second) { service_rate_.store(requests_per_second); }

std::chrono::milliseconds Transport::Jitter(std::chrono::milliseconds cap) {
  if (cap.count() <= 0) return std::chrono::milliseconds(0);
  std::lock_guard lock(rng_mu_);
  return std::chrono::milliseconds(std::uniform_int_distribution<std::int64_t>(0, cap.count())(rng_));
}

std::unique_ptr<Session> Transport::CheckOut() {
  {
    std::lock_guard lock(pool_mu_);
    if (!idle_.empty()) {
      auto s = std::move(idle_.back());
      idle_.pop_back();
      return s;
    }
  }
  return std::make_unique<Session>();
}

void Transport::CheckIn(std::unique_ptr<Session> session) {
  std::lock_guard lock(pool_mu_);
  // More idle sessions than this only hold sockets nobody will use again soon.
  if (idle_.size() < 4) idle_.push_back(std::move(session));
}

// ------------------------------------------------------------------ batch

struct Batch::Pending {
  int id = 0;
  HttpRequest request;
  int attempts = 0;
  std::chrono::milliseconds waited{0};  // Sum of retry waits so far.
  Timestamp not_before = 0;
};

struct Batch::Slot {
  CURL* easy = nullptr;
  Pending* pending = nullptr;
  std::string body;
  std::string retry_after;
  bool too_large = false;
  std::size_t max_bytes = 0;
  curl_slist* headers = nullptr;
  char error[CURL_ERROR_SIZE] = {};

  static std::size_t Write(char* data, std::size_t size, std::size_t n, void* user) {
    auto* s = static_cast<Slot*>(user);
    const std::size_t bytes = size * n;
    if (s->body.size() + bytes > s->max_bytes) {
      s->too_large = true;
      return 0;  // Makes curl fail the transfer with CURLE_WRITE_ERROR.
    }
    // Growing geometrically.
    if (const std::size_t need = s->body.size() + bytes; need > s->body.capacity())
      s->body.reserve(std::max(need, 2 * s->body.capacity()));
    s->body.append(data, bytes);
    return bytes;
  }
  static std::size_t Header(char* data, std::size_t size, std::size_t n, void* user) {
    auto* s = static_cast<Slot*>(user);
    const std::string_view line(data, size * n);
    const auto colon = line.find(':');
    if (colon != std::string_view::npos && IEquals(line.substr(0, colon), "Retry-After"))
      s->retry_after = std::string(TrimWs(line.substr(colon + 1)));
    return size * n;
  }
};

Batch::Batch(Transport& transport, int parallel)
    : transport_(transport), session_(transport.CheckOut()), parallel_(std::max(1, parallel)) {
  curl_multi_setopt(session_->multi, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(parallel_));
  for (int i = 0; i < parallel_; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->easy = session_->Easy(static_cast<std::size_t>(i));
    slot->max_bytes = transport_.options().max_response_bytes;
    slots_.push_back(std::move(slot));
  }
}

Batch::~Batch() {
  bool clean = true;
  for (auto& slot : slots_) {
    if (!slot->pending) continue;
    // A transfer cut off mid-way leaves its connection in an unknown state;
    // removing it makes curl close that connection rather than reuse it.
    curl_multi_remove_handle(session_->multi, slot->easy);
    clean = false;
  }
  for (auto& slot : slots_) curl_slist_free_all(slot->headers);
  if (session_ && session_->multi) transport_.CheckIn(std::move(session_));
  (void)clean;
}

void Batch::Submit(int id, HttpRequest request) {
  auto p = std::make_unique<Pending>();
  p->id = id;
  p->request = std::move(request);
  requests_[id] = std::move(p);
  queue_.push_back(id);
}

void Batch::Recycle(std::string body) {
  // As many as there are slots: one for each transfer's next body.
  if (spare_bodies_.size() >= slots_.size()) return;
  body.clear();
  spare_bodies_.push_back(std::move(body));
}

void Batch::StartReady() {
  const ClientOptions& o = transport_.options();
  for (auto& slot_ptr : slots_) {
    Slot& slot = *slot_ptr;
    if (slot.pending) continue;
    const Timestamp now = transport_.clock().Now();
    auto it = std::find_if(queue_.begin(), queue_.end(), [&](int id) { return requests_[id]->not_before <= now; });
    if (it == queue_.end()) return;
    if (const std::int64_t wait = transport_.limiter().TryAcquire(now, transport_.Rate()); wait > 0) {
      rate_blocked_until_ = now + wait;
      return;
    }
    Pending& p = *requests_[*it];
    queue_.erase(it);

    CURL* e = slot.easy;
    slot.pending = &p;
    slot.body.clear();
    slot.retry_after.clear();
    slot.too_large = false;
    slot.error[0] = '\0';
    curl_slist_free_all(slot.headers);
    slot.headers = curl_slist_append(nullptr, "Accept: application/json");
    if (p.request.with_token)
      slot.headers = curl_slist_append(slot.headers, ("Authorization: Bearer " + o.stoken).c_str());
    if (p.request.post) {
      slot.headers = curl_slist_append(slot.headers, "Content-Type: application/json");
      slot.headers = curl_slist_append(slot.headers, "Expect:");  // No 100-continue round trip.
    }
    curl_easy_setopt(e, CURLOPT_URL, p.request.url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, &slot);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, slot.headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Slot::Write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &slot);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Slot::Header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &slot);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, slot.error);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.connect_timeout.count()));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(o.total_timeout.count()));
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(o.max_response_bytes));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, o.allow_insecure_http ? "http,https" : "https");
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    // A page of 1,000 assignments is ~93 KB: read it in one or two recv()s and
    // write callbacks instead of libcurl's default 16 KB at a time, each with a
    // poll() round (the curl tool reads 100 KB at a time). libcurl keeps the
    // buffer while the size stays the same.
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, kReceiveBufferBytes);
    curl_easy_setopt(e, CURLOPT_USERAGENT, o.user_agent.c_str());
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");  // Whatever libcurl can decode.
    curl_easy_setopt(e, CURLOPT_VERBOSE, 0L);          // Verbose output would print the sToken.
    if (p.request.post) {
      curl_easy_setopt(e, CURLOPT_POST, 1L);
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, p.request.body.data());
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(p.request.body.size()));
    } else {
      curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    curl_multi_add_handle(session_->multi, e);
    ++running_;
    max_running_ = std::max(max_running_, running_);
  }
}

Timestamp Batch::NextStartTime() const {
  Timestamp t = INT64_MAX;
  for (int id : queue_) t = std::min(t, requests_.at(id)->not_before);
  return std::max(t, rate_blocked_until_);
}

std::vector<Completion> Batch::WaitSome() {
  while (done_.empty()) {
    if (requests_.empty()) return {};
    StartReady();
    if (running_ == 0) {
      // Nothing on the wire: everything waits for a retry time or the rate limit.
      const Timestamp now = transport_.clock().Now();
      transport_.Sleep(CeilMs(NextStartTime() - now));
      continue;
    }
    int still = 0;
    curl_multi_perform(session_->multi, &still);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(session_->multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Slot* slot = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &slot);
      const CURLcode code = msg->data.result;
      curl_multi_remove_handle(session_->multi, msg->easy_handle);
      --running_;
      Finish(*slot, code);
    }
    if (!done_.empty()) break;
    StartReady();
    // Wake for socket activity, or when a queued request may start. Only a
    // request that waits for its time (a retry's backoff, the rate limit)
    // while a slot is free shortens the wait: one that waits for a slot waits
    // for a transfer to end, which is socket activity. (Counting those too
    // made every wait of a walk, whose queue is never empty, a zero-timeout
    // poll: the walk thread spun at 100% CPU between pages.)
    std::int64_t timeout_ms = 1000;
    if (!queue_.empty() && running_ < parallel_) {
      const std::int64_t until = NextStartTime() - transport_.clock().Now();
      timeout_ms = std::clamp<std::int64_t>((until + 999) / 1000, 0, 1000);
    }
    if (running_ > 0) curl_multi_poll(session_->multi, nullptr, 0, static_cast<int>(timeout_ms), nullptr);
  }
  // Put the freed slots back to work before the caller spends time on what
  // finished (parsing a page): the requests go out now, and Apple prepares
  // the next pages while this thread parses.
  StartReady();
  if (running_ > 0) {
    int still = 0;
    curl_multi_perform(session_->multi, &still);
  }
  return std::exchange(done_, {});
}

namespace {

// One attempt's outcome before the retry decision.
struct Outcome {
  bool ok = false;
  AppleError error;
  bool retryable = false;
  std::optional<std::chrono::seconds> retry_after;
};

Outcome ClassifyCurl(CURLcode code, const char* detail, bool too_large, std::size_t max_bytes, bool idempotent,
                     long connect_timeout_ms, long total_timeout_ms) {
  Outcome o;
  o.error.kind = AppleErrorKind::kTransport;
  std::string what = curl_easy_strerror(code);
  if (detail && *detail) what += std::string(": ") + detail;
  switch (code) {
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
      if (code == CURLE_FILESIZE_EXCEEDED || too_large) {
        o.error.kind = AppleErrorKind::kMalformedResponse;
        o.error.error_message = "the response is larger than " + std::to_string(max_bytes) + " bytes";
        return o;
      }
      break;
    case CURLE_PARTIAL_FILE:
      o.error.kind = AppleErrorKind::kMalformedResponse;
      o.error.error_message = "the response was truncated (" + what + ")";
      o.retryable = idempotent;
      return o;
    case CURLE_OPERATION_TIMEDOUT:
      o.error.error_message = "timed out (connect timeout " + std::to_string(connect_timeout_ms) + " ms, total " +
                              std::to_string(total_timeout_ms) + " ms): " + what;
      o.retryable = idempotent;
      return o;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      o.error.error_message = "could not connect: " + what;
      o.retryable = true;  // Nothing reached Apple: safe even for POSTs.
      return o;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_TOO_MANY_REDIRECTS:
      o.error.error_message = what;  // Will not fix itself by retrying.
      return o;
    default:
      break;
  }
  o.error.error_message = what;
  o.retryable = idempotent;
  return o;
}

Outcome ClassifyHttp(long status, std::string_view body, bool idempotent) {
  Outcome o;
  // Apple has answered errors with HTTP 200: any body naming an errorNumber is
  // an error. The substring test keeps the common case (a page) to one scan,
  // with memmem: std::string_view::find stops at every '"' (memchr, then
  // memcmp), which on a 93 KB page of assignments cost as much as parsing it
  // (~0.1 ms; glibc's memmem ~0.01 ms; bench/README.md "apple").
  static constexpr std::string_view kErrorKey = "\"errorNumber\"";
  const bool mentions_error = memmem(body.data(), body.size(), kErrorKey.data(), kErrorKey.size()) != nullptr;
  int number = 0;
  std::string message, info;
  bool json_body = false;
  if (mentions_error || status < 200 || status > 299) {
    boost::system::error_code ec;
    json::value v = json::parse(json::string_view(body.data(), body.size()), ec);
    if (!ec && v.is_object()) {
      json_body = true;
      const json::object& obj = v.get_object();
      if (const json::value* n = obj.if_contains("errorNumber")) {
        if (n->is_int64())
          number = static_cast<int>(n->get_int64());
        else if (n->is_uint64())
          number = static_cast<int>(n->get_uint64());
        else if (n->is_string())
          number = std::atoi(n->get_string().c_str());
        if (number == 0) number = -1;  // Present but unreadable: still an error.
      }
      if (const json::value* m = obj.if_contains("errorMessage"); m && m->is_string())
        message = m->get_string().c_str();
      if (const json::value* i = obj.if_contains("errorInfo"); i && !i->is_null()) info = json::serialize(*i);
    }
  }
  if (number == 0 && status >= 200 && status <= 299) {
    o.ok = true;
    return o;
  }
  const int apple_number = number > 0 ? number : 0;
  o.error.kind = KindFor(apple_number, status);
  o.error.error_number = apple_number;
  o.error.http_status = static_cast<int>(status);
  o.error.error_info = std::move(info);
  if (!message.empty()) {
    o.error.error_message = std::move(message);
  } else if (number < 0) {
    o.error.error_message = "the error body's errorNumber is not a number";
  } else if (number == 0) {
    o.error.error_message = json_body ? "HTTP " + std::to_string(status) + " without an Apple errorNumber"
                                      : "HTTP " + std::to_string(status) + " without an Apple error body";
  }
  const bool transient = o.error.kind == AppleErrorKind::kRateLimited || o.error.kind == AppleErrorKind::kUnavailable;
  // A POST that Apple refused up front (429, 503, 9646, 9729) did nothing and
  // may be resent; a 500 on a POST may have half-happened.
  const bool refused_up_front = status == 429 || status == 503 || apple_number == 9646 || apple_number == 9729;
  o.retryable = transient && (idempotent || refused_up_front);
  return o;
}

// "GET /assignments" from "GET /assignments?pageIndex=3": a bounded label.
std::string Endpoint(const HttpRequest& request) { return request.display.substr(0, request.display.find('?')); }

// Every attempt, by endpoint, HTTP status (or "transport") and Apple errorNumber.
void CountAttempt(const HttpRequest& request, const Outcome& out) {
  const std::string status = out.ok                      ? "200"
                             : out.error.http_status > 0 ? std::to_string(out.error.http_status)
                                                         : "transport";
  const std::string error_number = out.ok || out.error.error_number == 0 ? "" : std::to_string(out.error.error_number);
  metrics::Counter("vppd_apple_requests_total", "Requests to Apple (attempts), by endpoint, status and errorNumber",
                   {{"endpoint", Endpoint(request)}, {"status", status}, {"error_number", error_number}})
      .Inc();
}

}  // namespace

void Batch::Finish(Slot& slot, int curl_code) {
  Pending& p = *slot.pending;
  slot.pending = nullptr;
  curl_slist_free_all(slot.headers);
  slot.headers = nullptr;
  ++p.attempts;
  const ClientOptions& o = transport_.options();
  const Timestamp now = transport_.clock().Now();
  const bool idempotent = !p.request.post;

  Outcome out;
  if (curl_code != CURLE_OK) {
    out = ClassifyCurl(static_cast<CURLcode>(curl_code), slot.error, slot.too_large, o.max_response_bytes, idempotent,
                       static_cast<long>(o.connect_timeout.count()), static_cast<long>(o.total_timeout.count()));
  } else {
    long status = 0;
    curl_easy_getinfo(slot.easy, CURLINFO_RESPONSE_CODE, &status);
    out = ClassifyHttp(status, slot.body, idempotent);
    out.retry_after = ParseRetryAfter(slot.retry_after, now);
  }
  CountAttempt(p.request, out);
  if (out.ok) {
    // Hand the buffer over; the next transfer on this slot receives into a
    // recycled one, or a fresh one, at least as large as this body, so large
    // pages do not grow it step by step.
    const std::size_t size = slot.body.size();
    std::string next;
    if (!spare_bodies_.empty()) {
      next = std::move(spare_bodies_.back());
      spare_bodies_.pop_back();
    }
    next.reserve(size);
    done_.push_back({p.id, std::exchange(slot.body, std::move(next)), p.attempts});
    requests_.erase(p.id);
    return;
  }
  AppleError& err = out.error;
  err.request = p.request.display;
  err.attempts = p.attempts;
  if (out.retry_after) err.retry_after = *out.retry_after;

  const std::chrono::milliseconds remaining = o.retry.max_total_wait - p.waited;
  const int max_attempts =
      p.request.max_attempts > 0 ? std::min(p.request.max_attempts, o.retry.max_attempts) : o.retry.max_attempts;
  std::optional<std::chrono::milliseconds> wait;
  if (out.retryable && p.attempts < max_attempts && remaining.count() > 0) {
    if (out.retry_after) {
      // Calling before Retry-After can extend Apple's block: wait it out or give up.
      if (*out.retry_after <= remaining) wait = std::chrono::milliseconds(*out.retry_after);
    } else {
      const int shift = std::min(p.attempts - 1, 30);
      const auto cap = std::min<std::chrono::milliseconds>(o.retry.max_backoff, o.retry.base_backoff * (1LL << shift));
      wait = std::min(transport_.Jitter(cap), remaining);
    }
  }
  if (!wait) {
    done_.push_back({p.id, tl::unexpected(std::move(err)), p.attempts});
    requests_.erase(p.id);
    return;
  }
  metrics::Counter("vppd_apple_retries_total", "Apple requests retried, by endpoint",
                   {{"endpoint", Endpoint(p.request)}})
      .Inc();
  spdlog::debug("apple: {} failed ({}), retry {} in {} ms", p.request.display, err.error_message, p.attempts + 1,
                wait->count());
  p.waited += *wait;
  p.not_before = now + wait->count() * 1000;
  if (err.kind == AppleErrorKind::kRateLimited) transport_.limiter().PauseUntil(p.not_before);
  queue_.push_front(p.id);  // A retried page is the one the walk waits for.
}

void AppendQuery(std::string& url, std::string_view key, std::string_view value) {
  url.push_back(url.find('?') == std::string::npos ? '?' : '&');
  AppendEncoded(url, key);
  url.push_back('=');
  AppendEncoded(url, value);
}

void CountRefetch(const HttpRequest& request) {
  metrics::Counter("vppd_apple_retries_total", "Apple requests retried, by endpoint", {{"endpoint", Endpoint(request)}})
      .Inc();
  spdlog::info("apple: {} answered a page that does not parse; fetching it again", request.display);
}

}  // namespace vppd::apple::internal
