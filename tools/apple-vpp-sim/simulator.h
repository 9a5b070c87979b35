// apple-vpp-sim: a faithful, stateful simulator of Apple's Apps and Books for
// Organizations API v2 (base path /mdm/v2), with a control API under /_sim/ and
// a content metadata lookup at /lookup.
//
// The Simulator is transport-free: Handle() takes the project's plain
// http::Request and returns an http::Response, so unit tests drive it without
// sockets and main.cc plugs it into http::Server.
//
//   SimOptions opts;                     // 2 generated locations, seed 1
//   auto sim = Simulator::Create(opts, Clock::Real());
//   if (!sim) ...;                        // bad --data file
//   http::Response r = (*sim)->Handle(request);
//
// One shared_mutex guards the simulated world: reads (GET) share it, writes
// (POST, control changes, event resolution) take it exclusively and briefly
// (a manage request only validates and queues an event). Counters, faults and
// the rate limiter have their own small locks. Asynchronous events resolve lazily, in the order they
// were accepted, on the first request that reaches their location after their
// due time (accept time + event delay) — so status polls, walks and control
// reads all observe the same deterministic sequence. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "apple_errors.h"
#include "base/base.h"
#include "faults.h"
#include "http/server.h"
#include "model.h"
#include "notifier.h"

namespace vppd::sim {

struct SimOptions {
  int locations = 2;               // Generated locations (ignored with data_file).
  std::int64_t assets = 40;        // Assets of the default location.
  std::int64_t assignments = 400;  // Assignments of the default location.
  std::int64_t users = -1;         // Licensable users per location; -1: sized from assignments.
  // Other generated locations get min(assets, 50) assets and min(assignments,
  // 500) assignments: enough to be realistic without multiplying memory.
  std::size_t page_size = 1000;  // Items per page of assets/assignments/users.
  std::uint64_t seed = 1;
  std::string data_file;  // Load locations from this JSON file instead.
  std::chrono::milliseconds event_delay{250};
  bool rate_limit = false;  // Enforce limits.maxRequestPerSecond per sToken.
  // Unknown sTokens: false → 9601 at HTTP 401 (Apple's table); true → 9622 at
  // HTTP 200 (what Fleet observed from Apple).
  bool invalid_token_http_200 = false;
  std::size_t history_limit = 1000;  // versionIds remembered for sinceVersionId.
  Timestamp token_expiration = 0;    // 0: 2030-11-08T22:33:22Z (Apple's example).
  Limits limits;
  // Non-empty: every /_sim/* request must carry `Authorization: Bearer <this>`,
  // else 401 (the control API hands out every sToken). Empty: no check, which
  // main.cc allows only on a loopback address.
  std::string control_token;
  // Notifications (notifier.h): gaps between delivery attempts are Apple's
  // (60 s, 180 s) times this; 0.001 makes them 60 ms and 180 ms for tests.
  double notification_retry_scale = 1.0;
  // Makes the sender of notifications; empty: libcurl.
  std::function<std::unique_ptr<NotificationSender>()> notification_sender;
  // Resolve due events of locations that subscribed to notifications on a
  // background thread (every 10 ms), so their notifications go out without a
  // request to trigger them. Off: events resolve only lazily (unit tests with
  // a fake clock).
  bool background_events = false;
};

// The body of an answer the HTTP server gives on its own (http::ServerError: a
// request that is not HTTP, too large, too slow, a throwing handler, too many
// connections), for ServerOptions::error_writer: Apple's ErrorResponse in JSON, as
// every other answer on Apple's paths, with the server's status and Apple's number
// for it: 9603 for 500, 9729 (with Retry-After: 1) for 503, and 9602 (invalid
// argument, which Apple also gives a request over its limits) for the 4xx and the
// other 5xx. The same on /_sim/* (the server does not pass the path it could not
// serve, and JSON is all the control API promises). Thread-safe.
http::Response ServerErrorResponse(const http::ServerError& error, const http::Request& request);

class Simulator {
 public:
  // Builds the locations (generated from the seed, or loaded from
  // options.data_file). Fails with InvalidArgument for a bad data file and with
  // the file's error when it cannot be read. `clock` must outlive the Simulator.
  static Result<std::unique_ptr<Simulator>> Create(SimOptions options, const Clock& clock);
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;
  ~Simulator();

  // Answers one request. Never throws for bad input; thread-safe.
  http::Response Handle(const http::Request& request);

  // The first sToken of the first location (what --token-file writes).
  std::string DefaultSToken() const;

  struct Query;  // A decoded query string (sim_internal.h).

 private:
  Simulator(SimOptions options, const Clock& clock);
  Status Build();  // (Re)creates locations from options_; caller holds mu_ exclusively.
  void IndexTokens();

  struct Authed {
    Location* location = nullptr;
    const Token* token = nullptr;
  };

  // Apple API (apple_api.cc).
  http::Response HandleApple(const http::Request& req, std::string_view endpoint, const Query& query);
  // Resolves the Authorization header to a location, or the Apple error to answer.
  Result<Authed> Authenticate(const http::Request& req, AppleError* error) const;
  http::Response ServiceConfig(const http::Request& req) const;
  http::Response GetClientConfig(const Authed& a) const;
  http::Response PostClientConfig(const Authed& a, std::string_view body);
  http::Response GetAssets(const Authed& a, const Query& q) const;
  http::Response GetAssignments(const Authed& a, const Query& q) const;
  http::Response GetUsers(const Authed& a, const Query& q) const;
  // `event_faults`: the fired fault rules of event kinds (faults.h), applied to the new event.
  http::Response ManageAssets(const Authed& a, EventType type, std::string_view body,
                              const std::vector<FaultRule>& event_faults);
  http::Response ManageUsers(const Authed& a, EventType type, std::string_view body,
                             const std::vector<FaultRule>& event_faults);
  http::Response GetStatus(const Authed& a, const Query& q) const;
  http::Response Lookup(const Query& q) const;

  // Control API (control_api.cc).
  http::Response HandleControl(const http::Request& req, std::string_view path, const Query& query);
  // True when no control token is set, or the request carries it as a Bearer token.
  bool ControlAuthorized(const http::Request& req) const;

  void CountRequest(std::string_view method, std::string_view path, std::string_view location);
  // After events of `loc` resolved (ids in order): notifies, then drops their
  // outcomes. Caller holds mu_ exclusively.
  void OnEventsResolved(Location& loc, const std::vector<std::string>& ids);

  // Notifications (notifications.cc). Caller holds mu_ exclusively.
  // Sends `notification` (a JSON object) as `type` when `loc` has a URL and
  // subscribed to the type (TEST_NOTIFICATION: whenever it has a URL).
  void Notify(const Location& loc, std::string_view type, std::string notification);
  void NotifyEvent(const Location& loc, const Event& e);
  void NotifyAssetCount(const Location& loc, const Asset& asset, std::int64_t delta);
  // The person behind each Registered user accepts the invitation: Associated,
  // an idHash, a new version, one USER_ASSOCIATED (per 100 users). With
  // `apple_account` (the idHash of the Apple Account the one person signs in
  // with): AlreadyExists, nothing changed, when another user of the location
  // that is not Retired holds that Apple Account (Apple's 9641).
  Result<std::string> AcceptInvitations(Location& loc, const std::vector<std::string>& client_user_ids,
                                        const std::string& apple_account = "");
  void PumpEvents();  // The background_events thread.

  SimOptions options_;
  const Clock& clock_;

  mutable std::shared_mutex mu_;  // Guards everything below down to the faults.
  std::vector<std::unique_ptr<Location>> locations_;
  std::unordered_map<std::string, std::pair<std::size_t, std::size_t>> tokens_;  // sToken → (location, token).
  // Settings the control API may change.
  std::size_t page_size_;
  Limits limits_;
  bool invalid_token_http_200_;
  bool rate_limit_;
  std::chrono::milliseconds event_delay_;

  FaultInjector faults_;
  RateLimiter rate_limiter_;

  std::uint64_t notification_counter_ = 0;  // Guarded by mu_: derives notificationIds.
  std::unique_ptr<Notifier> notifier_;

  std::mutex pump_mu_;
  std::condition_variable pump_cv_;
  bool pump_stop_ = false;
  std::thread pump_;

  std::mutex counters_mu_;
  std::map<std::string, std::int64_t> counters_;                                  // "GET /mdm/v2/assets" → n
  std::map<std::string, std::map<std::string, std::int64_t>> location_counters_;  // uId → path → n
};

// `2030-11-08T22:33:22+0000`: the form of Apple's tokenExpirationDate.
std::string FormatAppleDate(Timestamp t);

}  // namespace vppd::sim
