// Delivery of Apple's notifications (spec §5) for the simulator: a bounded
// queue, one delivery thread, Apple's retry schedule (scaled), fault injection
// on deliveries and a log of every attempt for tests.
//
//   Notifier n(seed, CurlSender());
//   n.Enqueue({.id = ..., .type = "ASSET_COUNT", .uid = ..., .url = ..., .auth_token = ..., .body = ...});
//   n.Deliveries();   // what happened, attempt by attempt
//
// Delivery: attempt 1 at once, attempt 2 60 s after it, attempt 3 240 s after
// it (Apple: "up to three times over 1–5 minutes"), each gap multiplied by the
// retry scale; any 2xx is delivered and ends the chain. Each attempt has a
// timeout (kAttemptTimeout). The queue holds at most kMaxQueued notifications;
// beyond that Enqueue records an "overflow" and drops the notification (Apple
// is best effort too). Enqueue never blocks on the network.
//
// Faults (NotificationFaultRule) are chosen per notification when it is
// enqueued, from the rules matching its type and location: by count
// (`onNotifications`, 1-based) or by `rate` from a PRNG seeded by the seed and
// the rule id, at most `maxHits` times:
//   drop          never sent (outcome "dropped"); no retries
//   duplicate     once delivered, sent again with the same notificationId
//   delay         the first attempt `delayMs` later (not scaled)
//   reorder       held back until the next notification of the same location
//                 has been sent (or 2 s pass), so the two arrive swapped
//   wrong_bearer  every attempt carries a bearer that is not the location's token
//
// Thread-safe; the destructor stops the thread (in-flight attempts finish
// within their timeout).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/base.h"
#include "prng.h"

namespace vppd::sim {

// POSTs one notification. Returns the HTTP status the receiver answered (any
// status), or an Error for a transport failure (refused, timeout, bad URL).
// Must return within `timeout`.
class NotificationSender {
 public:
  virtual ~NotificationSender() = default;
  virtual Result<int> Post(const std::string& url, const std::string& bearer, const std::string& body,
                           std::chrono::milliseconds timeout) = 0;
};
// libcurl; http:// and https:// (certificates verified).
std::unique_ptr<NotificationSender> CurlSender();

struct OutgoingNotification {
  std::string id;    // notificationId
  std::string type;  // notificationType
  std::string uid;
  std::string url;
  std::string auth_token;
  std::string body;  // The whole envelope JSON.
};

enum class NotificationFaultKind : std::uint8_t { kDrop, kDuplicate, kDelay, kReorder, kWrongBearer };

struct NotificationFaultRule {
  int id = 0;
  std::string type;                            // notificationType; empty: any.
  std::string location;                        // uId; empty: any.
  std::vector<std::int64_t> on_notifications;  // 1-based counts of matching notifications.
  double rate = 1;                             // Used when on_notifications is empty.
  std::int64_t max_hits = -1;
  NotificationFaultKind kind = NotificationFaultKind::kDrop;
  std::int64_t delay_ms = 0;  // delay.
  std::int64_t matched = 0;
  std::int64_t hits = 0;
};
// Parses a rule (README "Notifications"); InvalidArgument naming the bad member.
Result<NotificationFaultRule> ParseNotificationFaultRule(std::string_view json);
std::string NotificationFaultRuleJson(const NotificationFaultRule& rule);

// One attempt (or a decision not to attempt) in the delivery log.
struct DeliveryRecord {
  std::string notification_id;
  std::string type;
  std::string uid;
  std::string url;
  int attempt = 0;      // 1-based; 0 for "dropped"/"overflow".
  std::string outcome;  // "delivered" | "failed" | "dropped" | "overflow"
  int status = 0;       // HTTP status; 0 when none.
  std::string error;    // Transport error, when any.
  bool duplicate = false;
  bool wrong_bearer = false;
  std::vector<std::string> faults;  // Names of the fault kinds applied.
  Timestamp at = 0;                 // Wall-clock time of the attempt.
  std::string body;                 // The envelope sent.
};

class Notifier {
 public:
  static constexpr std::size_t kMaxQueued = 10000;
  static constexpr std::size_t kMaxLog = 20000;  // Oldest records go first (bodies can be ~10 KB).
  static constexpr std::chrono::milliseconds kAttemptTimeout{5000};
  static constexpr int kMaxAttempts = 3;

  Notifier(std::uint64_t seed, std::unique_ptr<NotificationSender> sender, double retry_scale);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  void Enqueue(OutgoingNotification n);

  // Gaps between attempts are Apple's (60 s, then 180 s) times `scale` (≥ 0).
  void SetRetryScale(double scale);
  double retry_scale() const;

  int AddFault(NotificationFaultRule rule);
  bool RemoveFault(int id);
  std::vector<NotificationFaultRule> Faults() const;

  std::vector<DeliveryRecord> Deliveries() const;
  std::size_t Queued() const;
  void ClearLog();
  // Back to the start: empty log and queue, no fault rules, `retry_scale`.
  void Reset(double retry_scale);

 private:
  struct Pending {
    OutgoingNotification n;
    int attempt = 1;
    std::chrono::steady_clock::time_point due;
    bool duplicate = false;  // The extra copy of a duplicate fault.
    bool wrong_bearer = false;
    bool duplicate_after = false;  // Send a copy once delivered.
    bool reorder_hold = false;     // Waiting for the next notification of its location.
    std::vector<std::string> faults;
  };

  void Run();
  void Schedule(Pending p);                                                           // mu_ held.
  void Record(const Pending& p, std::string outcome, int status, std::string error);  // mu_ held.

  std::unique_ptr<NotificationSender> sender_;
  std::uint64_t seed_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  double retry_scale_;
  std::deque<Pending> queue_;                    // Sorted by due time (stable).
  std::map<std::string, Pending> reorder_held_;  // uId → held notification.
  std::deque<DeliveryRecord> log_;
  int next_fault_id_ = 1;
  std::map<int, NotificationFaultRule> faults_;
  std::map<int, Rng> rngs_;
  std::thread thread_;  // Last: started once everything above exists.
};

}  // namespace vppd::sim
