// Process metrics in the Prometheus text format (GET /metrics).
//
// Series are created on first use and live for the process; updating one is a
// lock-free atomic add. Label values must come from small fixed sets (routes,
// statuses, error numbers) — never ids, tenants or tokens — so the number of
// series stays bounded.
//
//   metrics::Counter("vppd_sync_jobs_total", "Sync jobs by kind and outcome",
//                    {{"kind", "syncLicenses"}, {"outcome", "done"}}).Inc();
//   metrics::Histogram("vppd_http_request_duration_seconds", "…", {{"route", r}}).Observe(0.0021);
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace vppd::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class CounterCell {
 public:
  void Inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// Latency buckets in seconds: 0.5 ms … 60 s.
class HistogramCell {
 public:
  static constexpr double kBounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
  static constexpr std::size_t kBuckets = sizeof(kBounds) / sizeof(kBounds[0]);
  void Observe(double seconds);
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6; }

 private:
  std::atomic<std::uint64_t> buckets_[kBuckets] = {};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_micros_{0};
};

// The series `name{labels}`, created on first use. Thread-safe; the returned
// reference stays valid for the life of the process.
CounterCell& Counter(const std::string& name, const std::string& help, const Labels& labels);
HistogramCell& Histogram(const std::string& name, const std::string& help, const Labels& labels);

// A gauge computed when /metrics is read (queue depth, tokens by state): `collect`
// returns (labels, value) pairs. Registering the same name again replaces it.
using GaugeCollector = std::function<std::vector<std::pair<Labels, double>>()>;
void RegisterGauge(const std::string& name, const std::string& help, GaugeCollector collect);

// Every series, in the text exposition format (version 0.0.4).
std::string Render();

}  // namespace vppd::metrics
