#include "store/collector.h"

#include <utility>

#include <spdlog/spdlog.h>

namespace vppd::store {
namespace {

// Between two batches the collector lets go of the write lock for this long, so
// that waiting writers get it (SQLite: std::timed_mutex is not fair, an unlock
// followed at once by a lock would usually win again).
constexpr auto kCollectPause = std::chrono::milliseconds(2);
// When nothing told it about garbage (in PostgreSQL: garbage made by another
// instance), the collector still looks this often.
constexpr auto kCollectInterval = std::chrono::seconds(60);
// After a failed batch (a busy store, a full disk) it waits this long.
constexpr auto kCollectRetry = std::chrono::seconds(5);

}  // namespace

Collector::Collector(std::function<Result<CollectStep>()> batch, std::function<Status()> after_round)
    : batch_(std::move(batch)), after_round_(std::move(after_round)) {}

void Collector::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Collector::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Collector::Wake() {
  {
    std::lock_guard lock(mu_);
    pending_ = true;
  }
  cv_.notify_one();
}

void Collector::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait_for(lock, kCollectInterval, [&] { return stop_ || pending_; });
    if (stop_) return;
    pending_ = false;
    lock.unlock();
    Status collected = CollectAll();
    if (collected && after_round_) collected = after_round_();
    lock.lock();
    if (!collected) {
      spdlog::warn("store: collecting replaced assignment sets failed, retrying in {} s: {}",
                   std::chrono::seconds(kCollectRetry).count(), collected.error().message);
      if (cv_.wait_for(lock, kCollectRetry, [&] { return stop_; })) return;
      pending_ = true;
    }
  }
}

Status Collector::CollectAll() {
  std::int64_t generation = 0, rows = 0;
  auto started = std::chrono::steady_clock::now();
  for (;;) {
    Result<CollectStep> step = batch_();
    if (!step) return Fail(step.error());
    if (step->generation == 0) return {};
    if (step->generation != generation) {
      generation = step->generation;
      rows = 0;
      started = std::chrono::steady_clock::now();
    }
    rows += step->rows;
    if (step->generation_done) {
      spdlog::info("store: collected assignment set {} ({} rows) in {:.3f} s", generation, rows,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      generation = 0;
    }
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, kCollectPause, [&] { return stop_; })) return {};
  }
}

}  // namespace vppd::store
