// reconcile: make Apple's device licences of a token match its apps' assignments.
//
// One pass (a claim of the token's "reconcile" job):
//  1. Read, from the store only: the token's app assignments, the directory's
//     devices they reach, vppd's licence rows, the Apple events in flight, and
//     Apple's device licences and counts as the last sync saw them.
//  2. Poll the events that are due (GET /status, at most every
//     EngineOptions::event_poll_interval each; Apple asks for >= 30 s) and settle
//     their serials; an event still pending after event_max_wait is given up
//     (its serials are decided again). A token with a registered notification
//     endpoint first polls an event event_notification_wait after submitting it:
//     Apple's ASSET_MANAGEMENT notifications normally settle it before
//     (service::NotificationApplier, which then queues this job again).
//  3. Decide per asset (PlanAsset, reconcile_plan.h) and send the associations
//     and disassociations in chunks of the service configuration's
//     maxSerialNumbers, one asset per request; each accepted event is recorded
//     with its serials in one transaction.
//  4. With events in flight the job is handed back to the queue until the first
//     is due for a poll (a change meanwhile makes it due at once); otherwise it
//     finishes. Either way the pass's report is stored (reconcile_reports) and
//     the token's reconcileLicenses entry says how it stands.
// Nothing to poll and nothing to change: no Apple call at all, so a second pass
// in a row costs only the store reads. A kill -9 anywhere loses nothing: the job
// is durable, events are recorded as soon as Apple accepted them, and a request
// whose event was not recorded is sent again (Apple counts associating a held
// licence, or disassociating a missing one, as done).
#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <type_traits>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "sync/reconcile_plan.h"
#include "sync/reconcile_users.h"
#include "sync/sync_internal.h"

namespace vppd::sync {
namespace {

constexpr char kGroupTarget[] = "#microsoft.graph.groupAssignmentTarget";
constexpr char kExclusionTarget[] = "#microsoft.graph.exclusionGroupAssignmentTarget";
constexpr char kAllDevicesTarget[] = "#microsoft.graph.allDevicesAssignmentTarget";
constexpr char kAllUsersTarget[] = "#microsoft.graph.allLicensedUsersAssignmentTarget";

using AssetKey = std::pair<std::string, std::string>;  // (adamId, pricingParam)

Timestamp Micros(std::chrono::milliseconds d) { return d.count() * 1000; }

// A pass decides only the devices directory changes touched when there are at
// most this many (beyond, a full pass is no slower); a full pass reads them all.
constexpr std::size_t kChangedDevicesAtMost = 10'000;
constexpr std::size_t kEveryChange = std::size_t{1} << 40;

// What an asset's assignments ask for.
struct AssetTargets {
  DeviceTargets reach;  // the devices its including assignments reach
  std::vector<std::string> uninstall_groups;
  bool uninstall_all_devices = false;
  bool assigned = false;  // some assignment includes devices with device licensing
  bool device_assignable = true;
  std::int64_t total = 0, used = 0;
};

struct Read {
  std::map<AssetKey, AssetInput> assets;
  std::vector<std::string> not_device_assignable;  // adamIds assigned with device licensing that Apple refuses
  bool in_scope = false;                           // anything to look at: assignments, rows or events
};

// Puts vppd's licence rows into the assets they belong to (rows of an asset
// the read did not include are for the caller to notice).
bool AttachRows(std::vector<store::DeviceLicense> rows, Read& read) {
  for (auto& [key, in] : read.assets) in.rows.clear();
  bool all_placed = true;
  for (store::DeviceLicense& r : rows) {
    auto it = read.assets.find({r.adam_id, r.pricing_param});
    if (it == read.assets.end()) {
      all_placed = false;
      continue;
    }
    const std::string serial = r.serial_number;
    it->second.rows.emplace_hint(it->second.rows.end(), serial, std::move(r));
  }
  return all_placed;
}

// Step 1a: the token's assignments and apps: what each asset's assignments ask for.
struct Targets {
  std::map<AssetKey, AssetTargets> by_asset;
  std::set<AssetKey> concerned;  // assets some assignment concerns
  bool any_assignment = false;
  // Of the assignments, the apps' counts, the token's last sync and the options:
  // what a pass over changed devices only must find as the last full pass left it.
  std::string inputs;
};

// FNV-1a, 64 bits: a fingerprint of the inputs, not a secret.
class Fingerprint {
 public:
  template <class... T>
  void Add(const T&... parts) {
    (AddOne(parts), ...);
  }
  std::string Hex() const { return fmt::format("{:016x}", h_); }

 private:
  void AddOne(std::string_view s) {
    for (unsigned char c : s) h_ = (h_ ^ c) * 0x100000001b3ULL;
    h_ = (h_ ^ 0xff) * 0x100000001b3ULL;  // ends each part: "ab","c" differs from "a","bc"
  }
  void AddOne(const std::string& s) { AddOne(std::string_view(s)); }
  void AddOne(const char* s) { AddOne(std::string_view(s)); }
  void AddOne(std::int64_t v) { AddOne(std::to_string(v)); }
  void AddOne(bool v) { AddOne(std::string_view(v ? "1" : "0")); }
  void AddOne(double v) { AddOne(fmt::format("{}", v)); }
  void AddOne(const std::optional<std::string>& v) { AddOne(v.value_or("\x01")); }
  std::uint64_t h_ = 0xcbf29ce484222325ULL;
};

Result<Targets> ReadTargets(JobContext& ctx, const store::VppToken& token) {
  Targets out;
  auto assignments = ctx.store.ListAssignmentsOfToken(ctx.job.tenant_id, token.id);
  if (!assignments) return Fail(assignments.error());
  out.any_assignment = !assignments->empty();
  auto token_apps = TokenApps(ctx, token.id);
  if (!token_apps) return Fail(token_apps.error());
  const std::map<std::string, store::MobileApp>& apps = *token_apps;
  Fingerprint inputs;
  inputs.Add(token.last_sync, ctx.options.reconcile.reclaim, ctx.options.reconcile.max_reclaim_fraction);
  for (const auto& [id, app] : apps) {
    AssetTargets& t = out.by_asset[{app.adam_id, app.pricing_param}];
    t.total = app.total_licenses;
    t.used = app.used_licenses;
    t.device_assignable = app.device_assignable;
    inputs.Add(id, app.adam_id, app.pricing_param, t.total, t.used, t.device_assignable);
  }
  for (const store::AppAssignment& a : *assignments) {
    inputs.Add(a.id, a.app_id, a.intent, a.target_type, a.group_id, a.use_device_licensing);
    auto app = apps.find(a.app_id);
    if (app == apps.end()) continue;
    const AssetKey key{app->second.adam_id, app->second.pricing_param};
    AssetTargets& t = out.by_asset[key];
    const bool include = (a.intent == "required" || a.intent == "available") && a.use_device_licensing;
    if (a.target_type == kExclusionTarget && a.group_id) {
      t.reach.exclude_groups.push_back(*a.group_id);
    } else if (a.intent == "uninstall") {
      if (a.target_type == kAllDevicesTarget || a.target_type == kAllUsersTarget) {
        t.uninstall_all_devices = true;
      } else if (a.group_id) {
        t.uninstall_groups.push_back(*a.group_id);
      }
      out.concerned.insert(key);
    } else if (include) {
      t.assigned = true;
      if (a.target_type == kGroupTarget && a.group_id) t.reach.include_groups.push_back(*a.group_id);
      if (a.target_type == kAllDevicesTarget) t.reach.all_devices = true;
      if (a.target_type == kAllUsersTarget) t.reach.all_users = true;
      out.concerned.insert(key);
    }
  }
  out.inputs = inputs.Hex();
  return out;
}

// An asset's input with what its targets say, without devices or rows yet.
AssetInput StartInput(const AssetKey& key, const AssetTargets& t, const store::VppToken& token, Read& read) {
  AssetInput in;
  in.adam_id = key.first;
  in.pricing_param = key.second;
  in.assigned = t.assigned;
  in.total = t.total;
  in.used = t.used;
  in.last_sync = token.last_sync;
  if (t.assigned && !t.device_assignable) {
    // Apple refuses device licences of this asset (9707): nothing to hand out.
    read.not_device_assignable.push_back(key.first);
    in.assigned = false;
  }
  return in;
}

// Apple's device licences of the read's assets at the last sync (of `only`
// these serials, when given).
Status ReadHeldAtSync(JobContext& ctx, const store::VppToken& token, Read& read,
                      const std::set<std::string>* only = nullptr) {
  if (read.assets.empty()) return {};
  Status walked;
  for (int attempt = 0; attempt < 3; ++attempt) {
    for (auto& [key, in] : read.assets) in.held_at_sync.clear();
    walked = ctx.store.ForEachAssignment(ctx.job.tenant_id, token.id, 10'000,
                                         [&](const std::vector<store::LicenseAssignment>& batch) -> Status {
                                           for (const auto& a : batch) {
                                             if (a.serial_number.empty()) continue;
                                             if (only != nullptr && !only->contains(a.serial_number)) continue;
                                             auto it = read.assets.find({a.adam_id, a.pricing_param});
                                             if (it != read.assets.end())
                                               it->second.held_at_sync.insert(a.serial_number);
                                           }
                                           return {};
                                         });
    // A sync replaced the set while we read it: read the new one.
    if (walked || walked.error().code != Code::kFailedPrecondition) break;
  }
  if (!walked && walked.error().code != Code::kNotFound) return walked;
  return {};
}

// Step 1b, a full pass: every device the targets reach, every row of the token.
Result<Read> ReadAll(JobContext& ctx, const store::VppToken& token, const Targets& targets) {
  const std::string& tenant = ctx.job.tenant_id;
  Read read;
  auto rows = ctx.store.ListDeviceLicenses(tenant, token.id);
  if (!rows) return Fail(rows.error());
  read.in_scope = targets.any_assignment || !rows->empty();
  if (!read.in_scope) return read;
  std::set<AssetKey> wanted_assets = targets.concerned;
  for (const store::DeviceLicense& r : *rows) wanted_assets.insert({r.adam_id, r.pricing_param});

  // The devices they reach (all managed devices read once, if any target needs them).
  std::optional<std::vector<store::GroupDevice>> all_devices;
  auto all = [&]() -> Result<const std::vector<store::GroupDevice>*> {
    if (!all_devices) {
      auto got = ctx.store.AllManagedDevices(tenant);
      if (!got) return Fail(got.error());
      all_devices = std::move(*got);
    }
    return &*all_devices;
  };
  auto serials_of = [&](const std::vector<std::string>& groups) -> Result<std::set<std::string>> {
    std::set<std::string> out;
    if (groups.empty()) return out;
    auto members = ctx.store.DeviceMembersOf(tenant, groups);
    if (!members) return Fail(members.error());
    for (const auto& d : *members) out.insert(d.serial_number);
    return out;
  };
  static const AssetTargets kNone;
  for (const AssetKey& key : wanted_assets) {
    auto found = targets.by_asset.find(key);
    const AssetTargets& t = found == targets.by_asset.end() ? kNone : found->second;
    AssetInput& in = read.assets[key] = StartInput(key, t, token, read);
    if (in.assigned) {
      auto reached = DevicesReached(ctx.store, tenant, t.reach, &all_devices);
      if (!reached) return Fail(reached.error());
      std::set<std::string> seen;  // a serial enrolled twice is one licence
      for (const auto& d : *reached) {
        if (seen.insert(d.serial_number).second) in.wanted.push_back(d.serial_number);
      }
    }
    auto uninstall = serials_of(t.uninstall_groups);
    if (!uninstall) return Fail(uninstall.error());
    in.uninstall = std::move(*uninstall);
    if (t.uninstall_all_devices) {
      auto every = all();
      if (!every) return Fail(every.error());
      for (const auto& d : **every) in.uninstall.insert(d.serial_number);
    }
  }
  AttachRows(std::move(*rows), read);
  if (Status s = ReadHeldAtSync(ctx, token, read); !s) return Fail(s.error());
  return read;
}

// Step 1b, a pass over changed devices: only `serials` are decided, each as
// ReadAll would decide it (the same reach, exclusions and uninstalls), with each
// asset's counts from the tally of all its rows.
Result<Read> ReadChanged(JobContext& ctx, const store::VppToken& token, const Targets& targets,
                         const std::vector<std::string>& serials, const std::vector<store::DeviceLicenseTally>& tally) {
  const std::string& tenant = ctx.job.tenant_id;
  Read read;
  read.in_scope = true;
  auto rows = ctx.store.DeviceLicensesOfSerials(tenant, token.id, serials);
  if (!rows) return Fail(rows.error());
  auto devices = ctx.store.DevicesOfSerials(tenant, serials);
  if (!devices) return Fail(devices.error());
  std::map<std::string, std::vector<const store::SerialDevice*>> by_serial;
  for (const store::SerialDevice& d : *devices) by_serial[d.serial_number].push_back(&d);
  auto in_any = [](const store::SerialDevice& d, const std::vector<std::string>& groups) {
    return std::any_of(groups.begin(), groups.end(), [&](const std::string& g) {
      return std::binary_search(d.group_ids.begin(), d.group_ids.end(), g);
    });
  };

  std::set<AssetKey> assets = targets.concerned;
  for (const store::DeviceLicense& r : *rows) assets.insert({r.adam_id, r.pricing_param});
  static const AssetTargets kNone;
  for (const AssetKey& key : assets) {
    auto found = targets.by_asset.find(key);
    const AssetTargets& t = found == targets.by_asset.end() ? kNone : found->second;
    AssetInput& in = read.assets[key] = StartInput(key, t, token, read);
    for (const auto& [serial, on] : by_serial) {
      bool reached = false, excluded = false, uninstall = t.uninstall_all_devices;
      for (const store::SerialDevice* d : on) {
        reached = reached || t.reach.all_devices || (t.reach.all_users && !d->user_id.empty()) ||
                  in_any(*d, t.reach.include_groups);
        excluded = excluded || in_any(*d, t.reach.exclude_groups);
        uninstall = uninstall || in_any(*d, t.uninstall_groups);
      }
      if (in.assigned && reached && !excluded) in.wanted.push_back(serial);
      if (uninstall) in.uninstall.insert(serial);
    }
    AssetInput::Whole whole;
    whole.available = t.total >= kUnlimitedCount ? kUnlimitedCount : t.total - t.used;
    for (const store::DeviceLicenseTally& c : tally) {
      if (c.adam_id != key.first || c.pricing_param != key.second) continue;
      if (whole.available < kUnlimitedCount) whole.available -= c.held_since;
      whole.granted = c.granted;
      whole.reclaimed = c.reclaimed_by_directory;
    }
    in.whole = whole;
  }
  AttachRows(std::move(*rows), read);
  const std::set<std::string> only(serials.begin(), serials.end());
  if (Status s = ReadHeldAtSync(ctx, token, read, &only); !s) return Fail(s.error());
  return read;
}

// What one pass did and found, for the report and the logs.
struct Report {
  std::int64_t associated = 0, disassociated = 0, events_completed = 0, events_abandoned = 0;
  std::int64_t wanted = 0, holding = 0, not_enough = 0, held_back = 0, kept = 0, untracked = 0;
  std::int64_t granted = 0, pending = 0, failed = 0, reclaim_pending = 0, events_in_flight = 0;
  std::vector<std::string> not_device_assignable;
  struct HeldBack {
    std::string adam_id, pricing_param;
    std::int64_t count = 0;
  };
  std::vector<HeldBack> held_back_by_asset;
  std::int64_t events_failed = 0;  // settled with a failure (or given up): a full pass decides again
  std::string error;               // why the pass stopped early, if it did
  bool forced = false;
  // A pass over the devices that directory changes touched (else every device).
  bool over_changes = false;
  std::int64_t devices_decided = 0;
  std::string inputs;                // Targets::inputs
  std::string full_pass_at;          // when the last full pass ran: wanted..untracked are its figures
  boost::json::object changes;       // a pass over changes: its own figures for the devices it decided
  std::optional<PeoplePass> people;  // user licences (reconcile_users.cc)

  std::string Json(Timestamp now) const {
    boost::json::object o;
    o["reconciled"] = FormatIso8601(now);
    o["forced"] = forced;
    o["pass"] = over_changes ? "changes" : "full";
    if (over_changes) {
      o["devicesDecided"] = devices_decided;
      o["changes"] = changes;
    }
    o["fullPassAt"] = full_pass_at.empty() ? FormatIso8601(now) : full_pass_at;
    o["inputs"] = inputs;
    o["associated"] = associated;
    o["disassociated"] = disassociated;
    o["eventsCompleted"] = events_completed;
    o["eventsAbandoned"] = events_abandoned;
    o["eventsInFlight"] = events_in_flight;
    o["wanted"] = wanted;
    o["holding"] = holding;
    o["granted"] = granted;
    o["pending"] = pending;
    o["failed"] = failed;
    o["notEnoughLicenses"] = not_enough;
    o["reclaimPending"] = reclaim_pending;
    o["heldBack"] = held_back;
    o["keptByReclaimNever"] = kept;
    o["untracked"] = untracked;
    boost::json::array held;
    for (const auto& h : held_back_by_asset) {
      held.push_back({{"adamId", h.adam_id}, {"pricingParam", h.pricing_param}, {"count", h.count}});
    }
    o["heldBackByApp"] = std::move(held);
    boost::json::array refused;
    for (const auto& a : not_device_assignable) refused.push_back(boost::json::value(a));
    o["notDeviceAssignable"] = std::move(refused);
    if (people) o["people"] = people->Json();
    if (!error.empty()) o["error"] = error;
    return boost::json::serialize(o);
  }
};

bool Forced(const std::string& params) {
  boost::system::error_code ec;
  auto v = boost::json::parse(params, ec);
  if (ec || !v.is_object()) return false;
  const auto* f = v.get_object().if_contains("force");
  return f != nullptr && f->is_bool() && f->get_bool();
}

// Apple could not be reached or refused the token: the pass stops.
struct Stop {
  apple::AppleError error;
};

// Step 2: polls the due events and settles what ended.
std::optional<Stop> PollEvents(JobContext& ctx, apple::Client& client, Report& report) {
  auto events = ctx.store.ListAppleEvents(ctx.job.tenant_id, ctx.job.token_id);
  if (!events) return std::nullopt;  // the store's trouble shows at the next write
  const Timestamp now = ctx.clock.Now();
  for (const store::AppleEvent& e : *events) {
    if (e.next_poll > now || ctx.stopping) continue;
    auto status = client.GetEventStatus(e.event_id);
    store::AppleEventOutcome outcome;
    if (!status) {
      if (status.error().error_number != 9708) return Stop{status.error()};
      outcome.abandoned = true;  // Apple does not know it (any more): decide again
    } else if (status->Pending()) {
      if (now - e.submitted < Micros(ctx.options.event_max_wait)) {
        (void)ctx.store.DeferAppleEvent(ctx.job.tenant_id, ctx.job.token_id, e.event_id,
                                        now + Micros(ctx.options.event_poll_interval));
        continue;
      }
      outcome.abandoned = true;  // Apple: still pending after 10 minutes, send it again
    } else {
      outcome = EventOutcome(*status);
    }
    auto done = ctx.store.CompleteAppleEvent(ctx.job.tenant_id, ctx.job.token_id, e.event_id, outcome);
    if (done) ++(outcome.abandoned ? report.events_abandoned : report.events_completed);
    if (done && (outcome.abandoned || outcome.all_failed || !outcome.failures.empty())) ++report.events_failed;
  }
  return std::nullopt;
}

// The report's totals by state: the tally's, over every asset.
void TotalsFromTally(const std::vector<store::DeviceLicenseTally>& tally, Report& report) {
  report.granted = report.pending = report.failed = report.reclaim_pending = 0;
  for (const store::DeviceLicenseTally& t : tally) {
    report.granted += t.granted;
    report.pending += t.pending;
    report.failed += t.failed;
    report.reclaim_pending += t.reclaim_pending;
  }
}

// The report's totals from the rows as they are now: the same tally a pass
// starts from (the store keeps it, so the next pass over a few changes finds
// it counted if no licence row was written meanwhile).
void CountRows(JobContext& ctx, Timestamp since, Report& report) {
  auto tally = ctx.store.TallyDeviceLicenses(ctx.job.tenant_id, ctx.job.token_id, since);
  if (tally) TotalsFromTally(*tally, report);
  auto events = ctx.store.ListAppleEvents(ctx.job.tenant_id, ctx.job.token_id);
  if (events) report.events_in_flight = static_cast<std::int64_t>(events->size());
}

// The same totals for a pass over changes that settled no event: the tally of
// every row taken at its start, moved by what became of the changed devices'
// rows (as read then, and read again now), instead of a second count of every
// row. Rows a notification settled meanwhile show in the next pass's figures
// (each such notification queues one, which counts every row).
void CountChangedRows(JobContext& ctx, Timestamp since, const std::vector<store::DeviceLicenseTally>& tally,
                      const Read& read, const std::vector<std::string>& serials, Report& report) {
  auto now = ctx.store.DeviceLicensesOfSerials(ctx.job.tenant_id, ctx.job.token_id, serials);
  if (!now) return CountRows(ctx, since, report);
  TotalsFromTally(tally, report);
  auto move = [&](const std::string& state, std::int64_t by) {
    if (state == "granted") report.granted += by;
    if (state == "pending") report.pending += by;
    if (state == "failed") report.failed += by;
    if (state == "reclaimPending") report.reclaim_pending += by;
  };
  for (const auto& [key, in] : read.assets) {
    for (const auto& [serial, row] : in.rows) move(row.state, -1);
  }
  for (const store::DeviceLicense& row : *now) move(row.state, +1);
  auto events = ctx.store.ListAppleEvents(ctx.job.tenant_id, ctx.job.token_id);
  if (events) report.events_in_flight = static_cast<std::int64_t>(events->size());
}

// What the last pass's report says that this one needs.
struct LastReport {
  std::string inputs;        // "" when there is none (or it predates passes over changes)
  boost::json::object full;  // the last full pass's figures (wanted ... untracked)
  std::string full_pass_at;
  std::int64_t Figure(const char* key) const {
    const auto* f = full.if_contains(key);
    return f != nullptr && f->is_int64() ? f->get_int64() : 0;
  }
};

constexpr const char* kFullFigures[] = {"wanted",   "holding", "notEnoughLicenses", "heldBack", "keptByReclaimNever",
                                        "untracked"};

LastReport ParseLastReport(const std::string& json) {
  LastReport last;
  boost::system::error_code ec;
  auto v = boost::json::parse(json, ec);
  if (ec || !v.is_object()) return last;
  const boost::json::object& o = v.get_object();
  auto text = [&](const char* key) {
    const auto* f = o.if_contains(key);
    return f != nullptr && f->is_string() ? std::string(f->get_string()) : std::string();
  };
  last.inputs = text("inputs");
  last.full_pass_at = text("fullPassAt");
  for (const char* key : kFullFigures) {
    if (const auto* f = o.if_contains(key); f != nullptr && f->is_int64()) last.full[key] = f->get_int64();
  }
  return last;
}

// Whether this pass may decide only the devices `changes` name: the inputs
// are as the last full pass left them, the changes are listed (not "everything",
// not too many), nobody waits for a licence (their order is the whole group's),
// and the pass is not forced.
bool CanPassOverChanges(const LastReport& last, const Targets& targets,
                        const std::vector<store::ReconcileChange>& changes, std::size_t at_most,
                        const std::vector<store::DeviceLicenseTally>& tally, const ReconcileOptions& options,
                        bool forced) {
  // No change: a pass that only settles events reads everything, and so keeps
  // the report's figures exact (a pass over changes only adjusts them).
  if (changes.empty()) return false;
  if (forced || last.inputs.empty() || last.inputs != targets.inputs || changes.size() > at_most) return false;
  // Reclaims held back wait for a full pass's order; with reclaim off every pass
  // reports the licences it keeps, which only a full pass can count.
  if (!options.reclaim || last.Figure("heldBack") > 0 || last.Figure("notEnoughLicenses") > 0) return false;
  if (std::any_of(changes.begin(), changes.end(), [](const auto& c) { return c.serial_number.empty(); })) return false;
  return std::none_of(tally.begin(), tally.end(), [](const auto& t) { return t.not_enough > 0; });
}

}  // namespace

store::AppleEventOutcome EventOutcome(const apple::EventStatus& status) {
  store::AppleEventOutcome outcome;
  for (const apple::EventFailure& f : status.failures) {
    if (f.serial_numbers.empty() && f.client_user_ids.empty()) {
      if (status.num_completed == 0) outcome.all_failed = {"", "", f.error_number, f.error_message};
      continue;
    }
    for (const std::string& serial : f.serial_numbers) {
      outcome.failures.push_back({serial, "", f.error_number, f.error_message});
    }
    for (const std::string& id : f.client_user_ids) {
      outcome.failures.push_back({"", id, f.error_number, f.error_message});
    }
  }
  return outcome;
}

Result<std::map<std::string, store::MobileApp>> TokenApps(JobContext& ctx, const std::string& token_id) {
  std::map<std::string, store::MobileApp> apps;
  store::ListQuery query;
  query.filter =
      store::Expr::Apply(store::Op::kEq, {store::Expr::Of(store::Column::kAppTokenId), store::Expr::Value(token_id)});
  query.limit = 1000;
  for (;;) {
    auto page = ctx.store.ListApps(ctx.job.tenant_id, query);
    if (!page) return Fail(page.error());
    for (auto& app : page->items) apps.emplace(app.id, std::move(app));
    if (!page->has_more) break;
    query.skip += query.limit;
  }
  return apps;
}

template <class Row>
std::optional<apple::AppleError> SendLicences(JobContext& ctx, apple::Client& client, int max_per_request,
                                              const AssetKey& asset, const std::vector<std::string>& keys,
                                              bool associate, const std::string& cause, Timestamp first_poll) {
  constexpr bool kDevices = std::is_same_v<Row, store::DeviceLicense>;
  const std::string& tenant = ctx.job.tenant_id;
  const std::string& token = ctx.job.token_id;
  const std::size_t step = static_cast<std::size_t>(std::max(1, max_per_request));
  for (std::size_t i = 0; i < keys.size() && !ctx.stopping; i += step) {
    std::vector<std::string> chunk(keys.begin() + static_cast<std::ptrdiff_t>(i),
                                   keys.begin() + static_cast<std::ptrdiff_t>(std::min(keys.size(), i + step)));
    apple::ManageAssetsRequest req;
    req.assets = {{asset.first, asset.second}};
    (kDevices ? req.serial_numbers : req.client_user_ids) = chunk;
    auto event = associate ? client.Associate(req) : client.Disassociate(req);
    const Timestamp now = ctx.clock.Now();
    if (!event) {
      if (event.error().kind != apple::AppleErrorKind::kValidation) return event.error();
      // Apple refused these outright (e.g. 9707 not device-assignable): recorded per key.
      std::vector<Row> rows;
      for (const std::string& key : chunk) {
        Row r;
        r.adam_id = asset.first;
        r.pricing_param = asset.second;
        if constexpr (kDevices) {
          r.serial_number = key;
        } else {
          r.client_user_id = key;
        }
        r.state = associate ? "failed" : "granted";
        r.error_code = std::to_string(event.error().error_number);
        r.error_message = (associate ? "" : "reclaim failed: ") + event.error().error_message;
        r.cause = cause;
        rows.push_back(std::move(r));
      }
      if constexpr (kDevices) {
        (void)ctx.store.PutDeviceLicenses(tenant, token, rows, {});
      } else {
        (void)ctx.store.PutUserLicenses(tenant, token, rows, {});
      }
      continue;
    }
    store::AppleEvent recorded;
    recorded.event_id = event->event_id;
    recorded.kind = associate ? "associate" : "disassociate";
    recorded.adam_id = asset.first;
    recorded.pricing_param = asset.second;
    recorded.submitted = now;
    recorded.next_poll = now + first_poll;
    Status ok = kDevices ? ctx.store.RecordAppleEvent(tenant, token, recorded, chunk, cause)
                         : ctx.store.RecordUserLicenseEvent(tenant, token, recorded, chunk, cause);
    if (!ok) {
      spdlog::warn("token {}: Apple event {} ({} {}) accepted but not recorded: {}; the next pass sends it again",
                   token, event->event_id, chunk.size(), kDevices ? "serials" : "users", ok.error().message);
    }
  }
  return std::nullopt;
}

template std::optional<apple::AppleError> SendLicences<store::DeviceLicense>(JobContext&, apple::Client&, int,
                                                                             const AssetKey&,
                                                                             const std::vector<std::string>&, bool,
                                                                             const std::string&, Timestamp);
template std::optional<apple::AppleError> SendLicences<store::UserLicense>(JobContext&, apple::Client&, int,
                                                                           const AssetKey&,
                                                                           const std::vector<std::string>&, bool,
                                                                           const std::string&, Timestamp);

Status RunReconcile(JobContext& ctx) {
  const auto& job = ctx.job;
  auto token = ctx.store.GetToken(job.tenant_id, job.token_id);
  if (!token) {
    if (token.error().code == Code::kNotFound) return FinishWithoutSnapshot(ctx, nullptr, token.error());
    return ReleaseOrAbandon(ctx, token.error());
  }
  Report report;
  report.forced = Forced(job.params);
  // The directory changes this pass covers, read before the directory itself:
  // a change made while the pass runs stays for the next one.
  auto changes = ctx.store.ListReconcileChanges(job.tenant_id, job.token_id, kChangedDevicesAtMost);
  if (!changes) return ReleaseOrAbandon(ctx, changes.error());
  auto targets = ReadTargets(ctx, *token);
  if (!targets) return ReleaseOrAbandon(ctx, targets.error());
  auto tally = ctx.store.TallyDeviceLicenses(job.tenant_id, job.token_id, token->last_sync);
  if (!tally) return ReleaseOrAbandon(ctx, tally.error());
  auto last_report = ctx.store.GetReconcileReport(job.tenant_id, job.token_id);
  if (!last_report) return ReleaseOrAbandon(ctx, last_report.error());
  const LastReport last = ParseLastReport(last_report->first);
  report.inputs = targets->inputs;

  // A pass over the changed devices when it decides as a full one would (see
  // CanPassOverChanges); a full pass covers every change noted so far.
  std::vector<std::string> changed;
  auto read_all = [&]() -> Result<Read> {
    report.over_changes = false;
    auto every = ctx.store.ListReconcileChanges(job.tenant_id, job.token_id, kEveryChange);
    if (!every) return Fail(every.error());
    *changes = std::move(*every);
    return ReadAll(ctx, *token, *targets);
  };
  report.over_changes =
      CanPassOverChanges(last, *targets, *changes, kChangedDevicesAtMost, *tally, ctx.options.reconcile, report.forced);
  if (report.over_changes) {
    for (const store::ReconcileChange& c : *changes) changed.push_back(c.serial_number);
    report.devices_decided = static_cast<std::int64_t>(changed.size());
  }
  auto read = report.over_changes ? ReadChanged(ctx, *token, *targets, changed, *tally) : read_all();
  if (!read) return ReleaseOrAbandon(ctx, read.error());
  if (report.over_changes) read->in_scope = targets->any_assignment || !tally->empty();
  auto events = ctx.store.ListAppleEvents(job.tenant_id, job.token_id);
  if (!events) return ReleaseOrAbandon(ctx, events.error());
  auto people = PeopleInScope(ctx, *token);
  if (!people) return ReleaseOrAbandon(ctx, people.error());
  if (!read->in_scope && events->empty() && !*people) {
    // Nothing assigned with device licensing, nothing granted: leave the token alone.
    (void)ctx.store.ClearReconcileChanges(job.tenant_id, job.token_id, *changes);
    auto done = ctx.store.FinishJob(job, std::nullopt, [](store::VppToken&) -> Status { return {}; });
    if (!done && done.error().code != Code::kNotFound) return ReleaseOrAbandon(ctx, done.error());
    return {};
  }

  const Timestamp now = ctx.clock.Now();
  std::map<AssetKey, AssetPlan> plans;
  // Plans every asset; a pass over changes whose plans would leave a device
  // without a licence or hold reclaims back reads everything instead (who is
  // served first, and what the cap allows, are the whole group's questions).
  auto plan_all = [&]() -> Status {
    for (int round = 0; round < 2; ++round) {
      plans.clear();
      for (const auto& [key, in] : read->assets) {
        plans.emplace(key, PlanAsset(in, ctx.options.reconcile, report.forced));
      }
      // A licence Apple held at the sync that vppd never granted, among the changed
      // devices: whether the last pass counted it as wanted cannot be told from
      // the rows, so neither can the report's figures.
      // A changed device whose licence is in flight is decided only once its event
      // ends, by whichever pass sees that: a full one, since its change is forgotten.
      auto unknown_holder = [](const auto& asset) {
        const AssetInput& in = asset.second;
        const bool in_flight = std::any_of(in.rows.begin(), in.rows.end(), [](const auto& r) {
          return r.second.state == "pending" || r.second.state == "reclaimPending";
        });
        return in_flight || std::any_of(in.held_at_sync.begin(), in.held_at_sync.end(),
                                        [&](const std::string& serial) { return !in.rows.contains(serial); });
      };
      const bool partial_says_no = std::any_of(read->assets.begin(), read->assets.end(), unknown_holder) ||
                                   std::any_of(plans.begin(), plans.end(), [](const auto& p) {
                                     return p.second.not_enough > 0 || p.second.held_back > 0;
                                   });
      if (report.over_changes && partial_says_no) {
        read = read_all();
        if (!read) return Fail(read.error());
        continue;
      }
      // The rows the plans settle locally (failed: not enough licences; forgotten
      // ones), before any request: a licence associated below writes its own row,
      // which must not then be taken for the stale one it replaces.
      for (const auto& [key, plan] : plans) {
        if (plan.put.empty() && plan.remove.empty()) continue;
        if (Status s = ctx.store.PutDeviceLicenses(job.tenant_id, job.token_id, plan.put, plan.remove); !s) return s;
      }
      return {};
    }
    return {};
  };
  auto planning_failed = [&](const Error& e) {
    if (e.code == Code::kNotFound) return FinishWithoutSnapshot(ctx, nullptr, e);
    return ReleaseOrAbandon(ctx, e);
  };
  if (Status s = plan_all(); !s) return planning_failed(s.error());
  const bool due = std::any_of(events->begin(), events->end(), [&](const auto& e) { return e.next_poll <= now; });
  const bool work = std::any_of(plans.begin(), plans.end(), [](const auto& p) { return !p.second.Empty(); });

  std::optional<Stop> stopped;
  if (due || work) {
    auto prepared = Prepare(ctx, kReconcileAction);
    if (!prepared) return EndWith(ctx, kReconcileAction, prepared.error());
    apple::Client& client = *prepared->client;
    if (due) {
      stopped = PollEvents(ctx, client, report);
      if (!stopped && (report.events_completed > 0 || report.events_abandoned > 0)) {
        // Settled events change only vppd's rows (what is wanted stays): decide
        // on fresh rows, read again in full only if one no longer fits, or if an
        // event failed (its devices are decided again, and they may be any).
        if (report.over_changes && report.events_failed > 0) {
          read = read_all();
          if (!read) return ReleaseOrAbandon(ctx, read.error());
        } else {
          auto rows = report.over_changes ? ctx.store.DeviceLicensesOfSerials(job.tenant_id, job.token_id, changed)
                                          : ctx.store.ListDeviceLicenses(job.tenant_id, job.token_id);
          if (!rows) return ReleaseOrAbandon(ctx, rows.error());
          if (!AttachRows(std::move(*rows), *read)) {
            read = read_all();
            if (!read) return ReleaseOrAbandon(ctx, read.error());
          }
        }
        if (Status s = plan_all(); !s) return planning_failed(s.error());
      }
    }
    if (!stopped) {
      auto service = client.GetServiceConfig();
      if (!service) {
        stopped = Stop{service.error()};
      } else {
        // Notified of how they end: polled only if no notification came in time.
        Timestamp first_poll = Micros(ctx.options.event_poll_interval);
        if (work && NotifiedOf(ctx, "ASSET_MANAGEMENT")) {
          first_poll = std::max(first_poll, Micros(ctx.options.event_notification_wait));
        }
        const auto& limits = service->limits;
        for (const auto& [key, plan] : plans) {
          if (stopped || ctx.stopping) break;
          // Reclaims first: the licences they free serve waiting devices on the next pass.
          auto send = [&](const std::vector<std::string>& serials, bool associate, const std::string& cause) {
            if (auto error = SendLicences<store::DeviceLicense>(ctx, client, limits.max_serial_numbers, key, serials,
                                                                associate, cause, first_poll)) {
              stopped = Stop{*error};
            }
          };
          send(plan.reclaim_explicit, false, read->assets.at(key).assigned ? "uninstall" : "unassigned");
          if (!stopped) send(plan.reclaim_directory, false, "leftScope");
          if (!stopped) send(plan.associate, true, "assigned");
        }
      }
    }
  }
  if (!stopped && *people && !ctx.stopping) {
    auto pass = ReconcilePeople(ctx, *token, plans, report.forced);
    if (!pass) return ReleaseOrAbandon(ctx, pass.error());
    if (pass->apple_error) stopped = Stop{*pass->apple_error};
    report.people = std::move(*pass);
  }
  for (const auto& [key, plan] : plans) {
    report.associated += static_cast<std::int64_t>(plan.associate.size());
    report.disassociated += static_cast<std::int64_t>(plan.reclaim_explicit.size() + plan.reclaim_directory.size());
    report.wanted += plan.wanted;
    report.holding += plan.holding;
    report.not_enough += plan.not_enough;
    report.held_back += plan.held_back;
    report.kept += plan.kept;
    report.untracked += plan.untracked;
    if (plan.held_back > 0) report.held_back_by_asset.push_back({key.first, key.second, plan.held_back});
  }
  if (report.over_changes) {
    // The token's figures: the last pass's, moved by what changed for these
    // devices. Before this pass a device was wanted when vppd held a row for it
    // that was not being taken back, and held a licence when that row was
    // granted or pending (no unknown holder among them: see plan_all). Nobody
    // waits, nothing is held back or kept (CanPassOverChanges, plan_all), and
    // the untracked are unchanged.
    report.changes = {{"wanted", report.wanted}, {"holding", report.holding}, {"untracked", report.untracked}};
    std::int64_t wanted = last.Figure("wanted"), holding = last.Figure("holding");
    for (const auto& [key, plan] : plans) {
      wanted += plan.wanted;
      holding += plan.holding;
      for (const auto& [serial, row] : read->assets.at(key).rows) {
        if (row.state == "granted" || row.state == "pending" || row.state == "failed") --wanted;
        if (row.state == "granted" || row.state == "pending") --holding;
      }
    }
    report.wanted = std::max<std::int64_t>(0, wanted);
    report.holding = std::max<std::int64_t>(0, holding);
    report.untracked = last.Figure("untracked");
    report.full_pass_at = last.full_pass_at;
  }
  report.not_device_assignable = read->not_device_assignable;
  // What this pass decided is sent (or settled locally): its changes are done.
  if (!stopped && !ctx.stopping) (void)ctx.store.ClearReconcileChanges(job.tenant_id, job.token_id, *changes);
  if (report.over_changes && report.events_completed == 0 && report.events_abandoned == 0) {
    CountChangedRows(ctx, token->last_sync, *tally, *read, changed, report);
  } else {
    CountRows(ctx, token->last_sync, report);
  }
  if (ctx.stopping) return ReleaseForRetry(ctx, Error::Unavailable("shutting down"));
  if (stopped) {
    report.error = stopped->error.Describe();
    report.inputs.clear();  // decisions left unsent: the next pass must be a full one
    (void)ctx.store.PutReconcileReport(job.tenant_id, job.token_id, report.Json(ctx.clock.Now()));
    // The token itself (expired, revoked, another MDM): recorded on it, as a sync does.
    SyncFailure failure = FromAppleError(stopped->error);
    if (!failure.state.empty()) return EndWith(ctx, kReconcileAction, failure);
    // Apple busy or unreachable: try again later (Retry-After when Apple gave one).
    const Timestamp wait = std::max<Timestamp>(stopped->error.retry_after.count() * 1'000'000, 30'000'000);
    spdlog::warn("token {} (tenant {}): reconcile stopped: {}; again in {} s", job.token_id, job.tenant_id,
                 report.error, wait / 1'000'000);
    if (auto ok = ctx.store.ReleaseJob(job, ctx.clock.Now() + wait); !ok) return ReleaseOrAbandon(ctx, ok.error());
    return Fail(Error::Unavailable(report.error));
  }
  (void)ctx.store.PutReconcileReport(job.tenant_id, job.token_id, report.Json(ctx.clock.Now()));
  spdlog::info(
      "token {} (tenant {}): reconcile ({}): {} associations and {} disassociations sent, {} events settled, {} "
      "in flight; {} of {} wanted devices hold a licence, {} without (not enough licences), {} reclaims held back, "
      "{} untracked",
      job.token_id, job.tenant_id,
      report.over_changes ? fmt::format("{} changed devices", report.devices_decided) : std::string("every device"),
      report.associated, report.disassociated, report.events_completed, report.events_in_flight, report.holding,
      report.wanted, report.not_enough, report.held_back, report.untracked);
  const int keep = ctx.options.keep_action_results;
  auto mark = [&](store::VppToken& t, const std::string& state) {
    auto& entry = ActionEntry(t, kReconcileAction, ctx.clock.Now(), keep);
    entry.action_state = state;
    entry.total_licenses = static_cast<std::int32_t>(report.wanted);
    entry.failed_licenses = static_cast<std::int32_t>(report.failed);
  };
  if (report.events_in_flight > 0 || (report.people && report.people->come_back)) {
    // Come back when the first event is due for a poll (sooner if something
    // changes, or a notification ends an event).
    auto in_flight = ctx.store.ListAppleEvents(job.tenant_id, job.token_id);
    Timestamp next = ctx.clock.Now() + Micros(ctx.options.event_poll_interval);
    if (report.events_in_flight == 0 && report.people && report.people->invitations_unchanged_since > 0) {
      // Only invitations to look at again: later the longer nothing changes.
      next = InvitationRecheck(ctx.clock.Now(), report.people->invitations_unchanged_since,
                               Micros(ctx.options.event_poll_interval));
    }
    if (in_flight && !in_flight->empty()) {
      next = in_flight->front().next_poll;
      for (const auto& e : *in_flight) next = std::min(next, e.next_poll);
    }
    (void)ctx.store.UpdateToken(job.tenant_id, job.token_id, [&](store::VppToken& t) -> Status {
      mark(t, "active");
      return {};
    });
    if (auto ok = ctx.store.ReleaseJob(job, next); !ok) return ReleaseOrAbandon(ctx, ok.error());
    return {};
  }
  const bool failed = report.failed > 0 || report.held_back > 0 || (report.people && report.people->Failed());
  auto done = ctx.store.FinishJob(job, std::nullopt, [&](store::VppToken& t) -> Status {
    mark(t, failed ? "failed" : "done");
    return {};
  });
  if (!done && done.error().code != Code::kNotFound) return ReleaseOrAbandon(ctx, done.error());
  return {};
}

Result<std::vector<store::GroupDevice>> DevicesReached(store::Store& store, const std::string& tenant_id,
                                                       const DeviceTargets& targets,
                                                       std::optional<std::vector<store::GroupDevice>>* all) {
  std::vector<store::GroupDevice> reached;
  if (!targets.include_groups.empty()) {
    auto members = store.DeviceMembersOf(tenant_id, targets.include_groups);
    if (!members) return Fail(members.error());
    reached = std::move(*members);
  }
  if (targets.all_devices || targets.all_users) {
    std::optional<std::vector<store::GroupDevice>> read_here;
    if (all == nullptr) all = &read_here;
    if (!*all) {
      auto every = store.AllManagedDevices(tenant_id);
      if (!every) return Fail(every.error());
      *all = std::move(*every);
    }
    for (const auto& d : **all) {
      if (targets.all_devices || !d.user_id.empty()) reached.push_back(d);
    }
    std::stable_sort(reached.begin(), reached.end(), [](const auto& a, const auto& b) {
      return std::tie(a.seq, a.managed_device_id) < std::tie(b.seq, b.managed_device_id);
    });
    // A device both in a group and reached by "all": once, at its first place.
    std::set<std::string> seen;
    std::erase_if(reached, [&](const store::GroupDevice& d) { return !seen.insert(d.managed_device_id).second; });
  }
  if (!targets.exclude_groups.empty()) {
    auto excluded = store.DeviceMembersOf(tenant_id, targets.exclude_groups);
    if (!excluded) return Fail(excluded.error());
    std::set<std::string> out;  // by serial: a licence is a serial's
    for (const auto& d : *excluded) out.insert(d.serial_number);
    std::erase_if(reached, [&](const store::GroupDevice& d) { return out.contains(d.serial_number); });
  }
  return reached;
}

}  // namespace vppd::sync
