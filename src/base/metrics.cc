#include "base/metrics.h"

#include <cstdio>
#include <map>
#include <memory>
#include <mutex>

namespace vppd::metrics {
namespace {

struct Family {
  std::string help;
  std::string type;  // counter | histogram | gauge
  // Cells by their rendered label set ({a="b",c="d"}); node-based, so references stay valid.
  std::map<std::string, std::unique_ptr<CounterCell>> counters;
  std::map<std::string, std::unique_ptr<HistogramCell>> histograms;
  GaugeCollector gauge;
};

struct Registry {
  std::mutex mu;
  std::map<std::string, Family> families;
};

Registry& Global() {
  static Registry* registry = new Registry();  // never destroyed: cells outlive every thread
  return *registry;
}

void AppendEscaped(std::string& out, const std::string& value) {
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
}

std::string RenderLabels(const Labels& labels, const std::string& extra = {}) {
  if (labels.empty() && extra.empty()) return {};
  std::string out = "{";
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ',';
    out += labels[i].first;
    out += "=\"";
    AppendEscaped(out, labels[i].second);
    out += '"';
  }
  if (!extra.empty()) {
    if (!labels.empty()) out += ',';
    out += extra;
  }
  return out + "}";
}

// "{a="b"}" + le="x" → "{a="b",le="x"}".
std::string WithLe(const std::string& rendered, const std::string& le) {
  const std::string extra = "le=\"" + le + "\"";
  if (rendered.empty()) return "{" + extra + "}";
  return rendered.substr(0, rendered.size() - 1) + "," + extra + "}";
}

std::string Number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);  // exact for the bucket bounds
  return buf;
}

Family& FamilyFor(Registry& r, const std::string& name, const std::string& help, const char* type) {
  Family& f = r.families[name];
  if (f.type.empty()) {
    f.help = help;
    f.type = type;
  }
  return f;
}

}  // namespace

void HistogramCell::Observe(double seconds) {
  for (std::size_t i = 0; i < kBuckets; ++i) {
    if (seconds <= kBounds[i]) buckets_[i].fetch_add(1, std::memory_order_relaxed);
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<std::uint64_t>(seconds > 0 ? seconds * 1e6 : 0), std::memory_order_relaxed);
}

CounterCell& Counter(const std::string& name, const std::string& help, const Labels& labels) {
  Registry& r = Global();
  std::lock_guard lock(r.mu);
  auto& cell = FamilyFor(r, name, help, "counter").counters[RenderLabels(labels)];
  if (!cell) cell = std::make_unique<CounterCell>();
  return *cell;
}

HistogramCell& Histogram(const std::string& name, const std::string& help, const Labels& labels) {
  Registry& r = Global();
  std::lock_guard lock(r.mu);
  auto& cell = FamilyFor(r, name, help, "histogram").histograms[RenderLabels(labels)];
  if (!cell) cell = std::make_unique<HistogramCell>();
  return *cell;
}

void RegisterGauge(const std::string& name, const std::string& help, GaugeCollector collect) {
  Registry& r = Global();
  std::lock_guard lock(r.mu);
  FamilyFor(r, name, help, "gauge").gauge = std::move(collect);
}

std::string Render() {
  Registry& r = Global();
  // Gauge collectors may query the store: copy them out and call them unlocked.
  std::vector<std::pair<std::string, GaugeCollector>> gauges;
  std::string out;
  {
    std::lock_guard lock(r.mu);
    for (const auto& [name, f] : r.families) {
      if (f.type == "gauge") {
        if (f.gauge) gauges.emplace_back(name, f.gauge);
        continue;
      }
      out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + f.type + "\n";
      for (const auto& [labels, cell] : f.counters) out += name + labels + " " + std::to_string(cell->value()) + "\n";
      for (const auto& [labels, cell] : f.histograms) {
        for (std::size_t i = 0; i < HistogramCell::kBuckets; ++i) {
          out += name + "_bucket" + WithLe(labels, Number(HistogramCell::kBounds[i])) + " " +
                 std::to_string(cell->bucket(i)) + "\n";
        }
        out += name + "_bucket" + WithLe(labels, "+Inf") + " " + std::to_string(cell->count()) + "\n";
        out += name + "_sum" + labels + " " + Number(cell->sum()) + "\n";
        out += name + "_count" + labels + " " + std::to_string(cell->count()) + "\n";
      }
    }
  }
  for (const auto& [name, collect] : gauges) {
    std::string help;
    {
      std::lock_guard lock(r.mu);
      help = r.families[name].help;
    }
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " gauge\n";
    for (const auto& [labels, value] : collect()) out += name + RenderLabels(labels) + " " + Number(value) + "\n";
  }
  return out;
}

}  // namespace vppd::metrics
