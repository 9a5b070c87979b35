#include <mutex>
#include <unordered_map>

#include "service/service.h"

namespace vppd::service {

// Fixed windows: each key counts requests in the current window, which starts at
// its first request. Keys of idle tenants/apps are dropped when their window ends,
// so memory follows the active callers, not every caller ever seen.
struct Throttle::Impl {
  struct Window {
    Timestamp start = 0;
    int writes = 0;
    int requests = 0;
  };
  ThrottleLimits limits;
  const Clock* clock;
  std::mutex mu;
  std::unordered_map<std::string, Window> windows;  // "t:<tenant>" and "a:<tenant>/<app>"
  Timestamp last_sweep = 0;

  Window& Current(const std::string& key, Timestamp now) {
    Window& w = windows[key];
    if (now - w.start >= Span()) w = Window{now, 0, 0};
    return w;
  }
  Timestamp Span() const { return std::chrono::duration_cast<std::chrono::microseconds>(limits.window).count(); }
  void Sweep(Timestamp now) {
    if (now - last_sweep < Span()) return;
    last_sweep = now;
    std::erase_if(windows, [&](const auto& kv) { return now - kv.second.start >= Span(); });
  }
};

Throttle::Throttle(ThrottleLimits limits, const Clock* clock) : impl_(std::make_unique<Impl>()) {
  impl_->limits = limits;
  impl_->clock = clock ? clock : &Clock::Real();
}

Throttle::~Throttle() = default;

Status Throttle::Admit(const std::string& tenant_id, const std::string& app_id, bool is_write) {
  const Timestamp now = impl_->clock->Now();
  std::lock_guard lock(impl_->mu);
  impl_->Sweep(now);
  auto& tenant = impl_->Current("t:" + tenant_id, now);
  auto& app = impl_->Current("a:" + tenant_id + "/" + app_id, now);
  const auto& l = impl_->limits;
  const char* which = nullptr;
  const Impl::Window* full = nullptr;
  if (tenant.requests >= l.tenant_requests)
    which = "requests for this tenant", full = &tenant;
  else if (app.requests >= l.app_requests)
    which = "requests for this application in this tenant", full = &app;
  else if (is_write && tenant.writes >= l.tenant_writes)
    which = "writes for this tenant", full = &tenant;
  else if (is_write && app.writes >= l.app_writes)
    which = "writes for this application in this tenant", full = &app;
  if (full != nullptr) {
    const Timestamp reset = full->start + impl_->Span() - now;
    Error e = Error::ResourceExhausted(std::string("Too many ") + which + " in " + std::to_string(l.window.count()) +
                                       " seconds; retry after the Retry-After delay.");
    e.retry_after_seconds = static_cast<int>((reset + 999'999) / 1'000'000);
    if (e.retry_after_seconds < 1) e.retry_after_seconds = 1;
    return Fail(std::move(e));
  }
  ++tenant.requests;
  ++app.requests;
  if (is_write) {
    ++tenant.writes;
    ++app.writes;
  }
  return {};
}

}  // namespace vppd::service
