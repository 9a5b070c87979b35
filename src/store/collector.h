// Internal to store/: the collector, the background thread of both stores that
// deletes garbage assignment sets (replaced, abandoned or orphaned generations)
// in batches, one short write transaction each, so no transaction holds locks
// for long. What a batch is (its SQL, its transaction) is the store's; the loop,
// its pacing, its retries and its log lines are here.
//
//   Collector collector([this] { return Write<CollectStep>(...); }, {});
//   collector.Start();   // after the store's Reconcile
//   collector.Wake();    // garbage was made
//   collector.Stop();    // in the store's destructor, before what a batch uses goes
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "base/base.h"

namespace vppd::store {

// What one batch did.
struct CollectStep {
  std::int64_t generation = 0;   // 0: no garbage left (that this collector may take)
  std::int64_t rows = 0;         // deleted by this step
  bool generation_done = false;  // the set is gone, registry row included
};

// The collector deletes a garbage set about this many assignments per write
// transaction (PostgreSQL: rows; SQLite: the chunks holding them), short enough
// that a Graph write waiting behind one still meets syncLicenses' 10 ms p99.
constexpr std::int64_t kCollectBatchRows = 5000;

class Collector {
 public:
  // `batch`: deletes one batch, in a write transaction of its own. `after_round`
  // (may be empty): runs on the collector thread after every round that left no
  // garbage; its failure is retried like a batch's.
  Collector(std::function<Result<CollectStep>()> batch, std::function<Status()> after_round);
  ~Collector() { Stop(); }
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  // Starts the thread (once). It looks for garbage at once: there may be some
  // from before a restart.
  void Start();
  // Stops the thread and waits for it; idempotent.
  void Stop();
  // There is garbage: the thread looks now rather than at its next interval.
  // Thread-safe; cheap.
  void Wake();

 private:
  void Loop();
  // Deletes every garbage set, one batch per transaction, until none is left or
  // the collector stops.
  Status CollectAll();

  const std::function<Result<CollectStep>()> batch_;
  const std::function<Status()> after_round_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = true;  // guarded by mu_; true: look at once (garbage from before a restart)
  bool stop_ = false;    // guarded by mu_
  std::thread thread_;
};

}  // namespace vppd::store
