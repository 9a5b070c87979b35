// Apple's notifications (issue 16): the receiver that records, and the applier
// that does the work after the answer. The parser and the bearer check are in
// notification_parse.cc (the fuzz target builds that file alone).
//
// Layout: 3. the receiver  4. the applier.
#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "base/log.h"
#include "base/metrics.h"
#include "service/service.h"
#include "sync/sync.h"

namespace vppd::service {
namespace {

bool KnownType(std::string_view type) {
  return std::any_of(std::begin(kNotificationTypes), std::end(kNotificationTypes),
                     [&](const char* t) { return type == t; });
}

// The label of a type in metrics: one of a small fixed set.
std::string TypeLabel(std::string_view type) { return KnownType(type) ? std::string(type) : "unknown"; }

void CountReceived(std::string_view type, const char* outcome) {
  metrics::Counter("vppd_apple_notifications_total", "Apple notifications received, by type and outcome",
                   {{"type", TypeLabel(type)}, {"outcome", outcome}})
      .Inc();
}

}  // namespace

// ---------------------------------------------------------------------------
// 3. The receiver

NotificationReceiver::NotificationReceiver(store::Store& store, NotificationOptions options)
    : store_(store), options_(std::move(options)), clock_(options_.clock ? options_.clock : &Clock::Real()) {}

Result<Receipt> NotificationReceiver::Receive(const std::string& location_key, std::string_view authorization,
                                              std::string_view body) {
  auto refuse = [&](std::string_view type, const char* outcome, Error e) -> Result<Receipt> {
    CountReceived(type, outcome);
    spdlog::warn("apple notification refused ({}): {}", outcome, e.message);
    return Fail(std::move(e));
  };
  if (body.size() > options_.max_body_bytes) {
    return refuse("", "too_large",
                  Error{Code::kPayloadTooLarge,
                        "the body holds " + std::to_string(body.size()) + " bytes; a notification holds at most " +
                            std::to_string(options_.max_body_bytes),
                        {},
                        {}});
  }
  const Error unauthenticated = Error::Unauthenticated("no notification endpoint has this key and bearer");
  auto endpoint = store_.FindNotificationEndpoint(location_key);
  if (!endpoint) {
    if (endpoint.error().code == Code::kNotFound) return refuse("", "unauthorized", unauthenticated);
    return refuse("", "unavailable", Error::Unavailable("the store failed: " + endpoint.error().message));
  }
  if (!BearerMatches(authorization, *endpoint, clock_->Now())) return refuse("", "unauthorized", unauthenticated);
  auto parsed = ParseNotification(body);
  if (!parsed) return refuse("", "bad_request", parsed.error());
  if (parsed->uid != endpoint->apple_uid) {
    return refuse(parsed->type, "wrong_location",
                  Error::PermissionDenied("uId '" + parsed->uid + "' is not the uId of this endpoint's location"));
  }
  store::AppleNotification n;
  n.tenant_id = endpoint->tenant_id;
  n.token_id = endpoint->token_id;
  n.notification_id = parsed->notification_id;
  n.type = parsed->type;
  // The envelope as Apple sent it (checked above): parsing it again gives the same
  // notification, which re-serialising would not promise (a number beyond 64 bits
  // is a double, and its digits need not survive a round trip).
  n.body = std::string(body);
  n.received = clock_->Now();
  n.state = "pending";
  auto recorded = store_.RecordNotification(n);
  if (!recorded) {
    if (recorded.error().code == Code::kNotFound) {
      return refuse(n.type, "unauthorized", unauthenticated);  // the token went with its endpoint
    }
    return refuse(n.type, "unavailable", Error::Unavailable("the store failed: " + recorded.error().message));
  }
  if (!*recorded) {
    CountReceived(n.type, "duplicate");
    spdlog::info("apple notification {} ({}) for token {}: a duplicate, already recorded", n.notification_id, n.type,
                 n.token_id);
    return Receipt::kDuplicate;
  }
  CountReceived(n.type, "recorded");
  spdlog::info("apple notification {} ({}) for token {} recorded", n.notification_id, n.type, n.token_id);
  if (options_.on_recorded) options_.on_recorded();
  return Receipt::kRecorded;
}

// ---------------------------------------------------------------------------
// 4. The applier

struct NotificationApplier::Impl {
  store::Store& store;
  NotificationOptions options;
  const Clock& clock;
  std::mutex mu;
  std::condition_variable wake;
  std::uint64_t wakeups = 0;
  bool started = false;
  bool stopping = false;
  std::thread thread;
  Timestamp next_cleanup = 0;

  Impl(store::Store& s, NotificationOptions o)
      : store(s), options(std::move(o)), clock(options.clock ? *options.clock : Clock::Real()) {}

  static void CountApplied(const std::string& type, const char* outcome) {
    metrics::Counter("vppd_apple_notifications_applied_total", "Apple notifications worked off, by type and outcome",
                     {{"type", TypeLabel(type)}, {"outcome", outcome}})
        .Inc();
  }

  // Queues the syncLicenses that replaces a notification vppd could not apply.
  void QueueSync(const store::AppleNotification& n) {
    auto queued =
        sync::RequestJob(store, n.tenant_id, n.token_id, "syncLicenses", "", clock.Now(), options.keep_action_results);
    if (!queued && queued.error().code != Code::kNotFound) {
      spdlog::warn("token {}: could not queue a sync for notification {}: {}", n.token_id, n.notification_id,
                   queued.error().message);
    }
  }

  // True when the notification ended (or another applier ended it).
  Result<bool> Apply(const store::AppleNotification& n) {
    log::ContextScope scope({.component = "notify", .tenant_id = n.tenant_id, .token_id = n.token_id});
    const Timestamp now = clock.Now();
    if (n.type == "ASSET_COUNT") {
      // The envelope as received, checked then: parsed again, it gives the same fields.
      auto parsed = ParseNotification(n.body);
      if (!parsed) {
        auto ended = store.FinishNotification(n, "resync", now);
        if (!ended) return Fail(ended.error());
        QueueSync(n);
        CountApplied(n.type, "resync");
        return true;
      }
      auto change = store.ApplyAssetCount(n, parsed->adam_id, parsed->pricing_param, parsed->count_delta, now);
      if (!change) return Fail(change.error());
      switch (*change) {
        case store::CountChange::kApplied:
          CountApplied(n.type, "applied");
          spdlog::info("notification {}: app {} ({}) total moved by {}", n.notification_id, parsed->adam_id,
                       parsed->pricing_param, parsed->count_delta);
          return true;
        case store::CountChange::kCovered:
          CountApplied(n.type, "covered");
          return true;
        case store::CountChange::kInconsistent:
          CountApplied(n.type, "resync");
          spdlog::info("notification {}: app {} ({}) by {} does not fit the stored counts; syncing instead",
                       n.notification_id, parsed->adam_id, parsed->pricing_param, parsed->count_delta);
          QueueSync(n);
          return true;
        case store::CountChange::kDeferred:
          return false;
        case store::CountChange::kAlreadyHandled:
          return true;
      }
      return true;
    }
    if (n.type == "ASSET_MANAGEMENT") return ApplyAssetManagement(n, now);
    if (n.type == "USER_ASSOCIATED") return ApplyUserAssociated(n, now);
    if (n.type == "USER_MANAGEMENT") return ApplyUserManagement(n, now);
    // TEST_NOTIFICATION needs nothing.
    return End(n, n.type == "TEST_NOTIFICATION" ? "applied" : "recorded", now);
  }

  // The token's reconcile goes on at once (instead of at its poll time).
  void QueueReconcile(const store::AppleNotification& n, Timestamp now, const std::string& why) {
    auto queued = sync::RequestReconcile(store, n.tenant_id, n.token_id, now);
    if (queued) {
      if (options.on_job_queued) options.on_job_queued();
    } else if (queued.error().code != Code::kNotFound) {
      // The job still comes back at its poll time (or the next change).
      spdlog::warn("token {}: could not queue the reconcile after {}: {}", n.token_id, why, queued.error().message);
    }
  }

  // USER_ASSOCIATED: the people behind these users accepted their invitations.
  // vppd's Apple users among them become Associated (the idHash kept, the
  // invitation gone) and the reconcile goes on to associate their licences;
  // users vppd did not register are another MDM's and left alone. A user being
  // retired stays so.
  Result<bool> ApplyUserAssociated(const store::AppleNotification& n, Timestamp now) {
    auto parsed = ParseNotification(n.body);
    if (!parsed) return End(n, "recorded", now);
    // Each user moved from the row as read; one the reconcile wrote meanwhile is
    // read and moved again (UpdateAppleUsers), a few times before the
    // notification is left for its next try.
    std::set<std::string> todo;
    for (const auto& u : parsed->users) todo.insert(u.client_user_id);
    std::size_t associated = 0;
    for (int attempt = 0; attempt < 5 && !todo.empty(); ++attempt) {
      auto rows = store.AppleUsersNamed(n.tenant_id, n.token_id, std::vector<std::string>(todo.begin(), todo.end()));
      if (!rows) return Fail(rows.error());
      std::vector<store::AppleUserUpdate> changed;
      for (const store::AppleUser& read : *rows) {
        if (!todo.contains(read.client_user_id)) continue;
        const auto& u = *std::find_if(parsed->users.begin(), parsed->users.end(),
                                      [&](const auto& p) { return p.client_user_id == read.client_user_id; });
        store::AppleUser r = read;
        if (r.status == "retiring" || r.status == "Retired") continue;
        r.status = "Associated";
        if (!u.id_hash.empty()) r.id_hash = u.id_hash;
        if (!u.email.empty()) r.email = u.email;
        r.invite_code.clear();
        r.invite_url.clear();
        r.error_code.clear();
        r.error_message.clear();
        if (r == read) continue;  // told already
        r.updated = now;
        changed.push_back({read, std::move(r)});
      }
      auto left_alone = store.UpdateAppleUsers(n.tenant_id, n.token_id, changed);
      if (!left_alone) {
        if (left_alone.error().code != Code::kNotFound) return Fail(left_alone.error());
        return End(n, "recorded", now);  // the token is gone
      }
      associated += changed.size() - left_alone->size();
      todo = std::set<std::string>(left_alone->begin(), left_alone->end());
    }
    if (!todo.empty()) return false;
    spdlog::info("notification {}: {} of {} user(s) now associated", n.notification_id, associated,
                 parsed->users.size());
    if (associated > 0) QueueReconcile(n, now, "invitations accepted");
    return End(n, associated == 0 ? "recorded" : "applied", now);
  }

  // USER_MANAGEMENT: how (part of) a users/create or users/retire of vppd's
  // ended: the users it names move (CompleteAppleEvent), a created user keeps
  // its invitation code, and once the event ended the reconcile goes on.
  // users/update is not tracked: recorded.
  Result<bool> ApplyUserManagement(const store::AppleNotification& n, Timestamp now) {
    auto parsed = ParseNotification(n.body);
    if (!parsed) return End(n, "recorded", now);
    if (parsed->event_type != "CREATE" && parsed->event_type != "RETIRE") return End(n, "recorded", now);
    auto events = store.ListAppleEvents(n.tenant_id, n.token_id);
    if (!events) return Fail(events.error());
    if (!InFlight(*events, parsed->event_id)) {
      // As for ASSET_MANAGEMENT: ended already, not vppd's, or not recorded yet.
      const Timestamp grace =
          std::chrono::duration_cast<std::chrono::microseconds>(options.unknown_event_grace).count();
      if (!parsed->users.empty() && now - n.received < grace) return false;
      spdlog::info("notification {}: Apple event {} is not in flight; recorded", n.notification_id, parsed->event_id);
      return End(n, "recorded", now);
    }
    store::AppleEventOutcome outcome;
    std::vector<std::string> ids;
    for (const auto& u : parsed->users) ids.push_back(u.client_user_id);
    const std::string message =
        parsed->error_message.empty() ? "Apple reported the event as failed" : parsed->error_message;
    if (!ids.empty()) {
      outcome.only_serials = ids;
      if (!parsed->succeeded) {
        for (const auto& id : ids) outcome.failures.push_back({"", id, parsed->error_number, message});
      }
      // The invitations, as Apple tells them: vppd need not walk /users for them
      // (the reconcile puts the invitation URL around each code).
      if (parsed->event_type == "CREATE" && parsed->succeeded) {
        for (const auto& u : parsed->users) outcome.invite_codes.emplace(u.client_user_id, u.invite_code);
      }
    } else if (!parsed->succeeded) {
      outcome.all_failed = store::AppleEventOutcome::Failure{"", "", parsed->error_number, message};
    }
    if (auto done = store.CompleteAppleEvent(n.tenant_id, n.token_id, parsed->event_id, outcome); !done) {
      if (done.error().code != Code::kNotFound) return Fail(done.error());
      return End(n, "recorded", now);  // a poll completed it meanwhile
    }
    auto after = store.ListAppleEvents(n.tenant_id, n.token_id);
    const bool event_ended = after && !InFlight(*after, parsed->event_id);
    spdlog::info("notification {}: Apple event {} ({}, {}): {} user(s) settled{}", n.notification_id, parsed->event_id,
                 parsed->event_type, parsed->succeeded ? "SUCCESS" : "FAILURE", ids.size(),
                 event_ended ? ", the event ended" : "");
    if (event_ended) QueueReconcile(n, now, "event " + parsed->event_id);
    return End(n, "applied", now);
  }

  Result<bool> End(const store::AppleNotification& n, const char* state, Timestamp now) {
    auto ended = store.FinishNotification(n, state, now);
    if (!ended) return Fail(ended.error());
    if (*ended) CountApplied(n.type, state);
    return true;
  }

  // The notification read as the event's status, for the outcome mapping the
  // /status poll uses: a SUCCESS completed what it names; a FAILURE failed it
  // (every serial and clientUserId it names, or the whole event when it names none).
  static apple::EventStatus AsEventStatus(const ParsedNotification& p) {
    apple::EventStatus status;
    status.event_status = p.succeeded ? "COMPLETE" : "FAILED";
    status.event_type = p.event_type;
    status.num_requested = static_cast<std::int64_t>(p.serial_numbers.size() + p.client_user_ids.size());
    status.num_completed = p.succeeded ? status.num_requested : 0;
    if (!p.succeeded) {
      apple::EventFailure f;
      f.error_number = p.error_number;
      f.error_message = p.error_message.empty() ? "Apple reported the event as failed" : p.error_message;
      f.serial_numbers = p.serial_numbers;
      f.client_user_ids = p.client_user_ids;
      status.failures.push_back(std::move(f));
    }
    return status;
  }

  static bool InFlight(const std::vector<store::AppleEvent>& events, const std::string& event_id) {
    return std::any_of(events.begin(), events.end(), [&](const auto& e) { return e.event_id == event_id; });
  }

  // ASSET_MANAGEMENT: settles the serials, or the clientUserIds (user licences),
  // it names of the reconcile job's event (the whole event when it names none);
  // once the event ended, the job goes on at once instead of at its poll time.
  // False: kept pending (tried again).
  Result<bool> ApplyAssetManagement(const store::AppleNotification& n, Timestamp now) {
    // The envelope as received, checked then: parsed again, it gives the same fields.
    auto parsed = ParseNotification(n.body);
    if (!parsed) return End(n, "recorded", now);
    auto events = store.ListAppleEvents(n.tenant_id, n.token_id);
    if (!events) return Fail(events.error());
    const bool device_event = parsed->event_type == "ASSOCIATE" || parsed->event_type == "DISASSOCIATE";
    if (!InFlight(*events, parsed->event_id)) {
      // Completed already (its poll got there first, or this repeats one that
      // ended it), not vppd's (a revoke), or not recorded yet: Apple may tell
      // before the job has stored the event it accepted a moment ago.
      const Timestamp grace =
          std::chrono::duration_cast<std::chrono::microseconds>(options.unknown_event_grace).count();
      const bool names = !parsed->serial_numbers.empty() || !parsed->client_user_ids.empty();
      if (device_event && names && now - n.received < grace) return false;
      spdlog::info("notification {}: Apple event {} is not in flight; recorded", n.notification_id, parsed->event_id);
      return End(n, "recorded", now);
    }
    store::AppleEventOutcome outcome = sync::EventOutcome(AsEventStatus(*parsed));
    // The keys it names: an event's rows are device licences (serials) or user
    // licences (clientUserIds), and each kind settles the keys of its own.
    std::vector<std::string> named = parsed->serial_numbers;
    named.insert(named.end(), parsed->client_user_ids.begin(), parsed->client_user_ids.end());
    if (!named.empty()) outcome.only_serials = std::move(named);
    if (auto done = store.CompleteAppleEvent(n.tenant_id, n.token_id, parsed->event_id, outcome); !done) {
      if (done.error().code != Code::kNotFound) return Fail(done.error());
      return End(n, "recorded", now);  // a poll completed it meanwhile
    }
    auto after = store.ListAppleEvents(n.tenant_id, n.token_id);
    const bool event_ended = after && !InFlight(*after, parsed->event_id);
    spdlog::info("notification {}: Apple event {} ({}, {}): {} serial(s), {} user(s) settled{}", n.notification_id,
                 parsed->event_id, parsed->event_type, parsed->succeeded ? "SUCCESS" : "FAILURE",
                 parsed->serial_numbers.size(), parsed->client_user_ids.size(), event_ended ? ", the event ended" : "");
    if (event_ended) {
      auto queued = sync::RequestReconcile(store, n.tenant_id, n.token_id, now);
      if (queued) {
        if (options.on_job_queued) options.on_job_queued();
      } else if (queued.error().code != Code::kNotFound) {
        // The job still comes back at its poll time, and finds the event ended.
        spdlog::warn("token {}: could not queue the reconcile after event {}: {}", n.token_id, parsed->event_id,
                     queued.error().message);
      }
    }
    return End(n, "applied", now);
  }

  Result<int> RunOnce() {
    auto pending = store.PendingNotifications(100);
    if (!pending) return Fail(pending.error());
    int ended = 0;
    for (const auto& n : *pending) {
      auto done = Apply(n);
      if (!done) {
        spdlog::warn("notification {} (token {}): not applied yet: {}", n.notification_id, n.token_id,
                     done.error().message);
        continue;
      }
      if (*done) ++ended;
    }
    const Timestamp now = clock.Now();
    if (now >= next_cleanup) {
      next_cleanup = now + 600'000'000LL;  // every 10 minutes
      const Timestamp retention = std::chrono::duration_cast<std::chrono::microseconds>(options.retention).count();
      if (auto gone = store.DeleteNotificationsBefore(now - retention); !gone) {
        spdlog::warn("deleting old notifications failed: {}", gone.error().message);
      } else if (*gone > 0) {
        spdlog::info("deleted {} notifications older than {} h", *gone, options.retention.count());
      }
    }
    return ended;
  }

  void Loop() {
    while (true) {
      std::uint64_t seen = 0;
      {
        std::lock_guard lock(mu);
        if (stopping) return;
        seen = wakeups;
      }
      if (auto ran = RunOnce(); !ran) spdlog::warn("notification applier: {}", ran.error().message);
      std::unique_lock lock(mu);
      wake.wait_for(lock, std::chrono::seconds(1), [&] { return stopping || wakeups != seen; });
    }
  }
};

NotificationApplier::NotificationApplier(store::Store& store, NotificationOptions options)
    : impl_(std::make_unique<Impl>(store, std::move(options))) {}

NotificationApplier::~NotificationApplier() { Stop(); }

void NotificationApplier::Start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->started) return;
  impl_->started = true;
  impl_->thread = std::thread([this] { impl_->Loop(); });
}

void NotificationApplier::Stop() {
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->started || impl_->stopping) return;
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void NotificationApplier::Wake() {
  {
    std::lock_guard lock(impl_->mu);
    ++impl_->wakeups;
  }
  impl_->wake.notify_all();
}

Result<int> NotificationApplier::RunOnce() { return impl_->RunOnce(); }

}  // namespace vppd::service
