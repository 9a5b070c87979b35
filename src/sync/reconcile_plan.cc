#include "sync/reconcile_plan.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <string_view>
#include <unordered_set>

namespace vppd::sync {
namespace {

template <class Row>
bool Is(const Row* r, const char* state) {
  return r != nullptr && r->state == state;
}

void SetKey(store::DeviceLicense& r, const std::string& key) { r.serial_number = key; }
void SetKey(store::UserLicense& r, const std::string& key) { r.client_user_id = key; }

template <class Row>
LicencePlan<Row> Plan(const LicenceInput<Row>& in, const ReconcileOptions& options, bool force) {
  LicencePlan<Row> plan;
  const bool unlimited = in.total >= kUnlimitedCount;

  // 1. What vppd's rows say about Apple now, against the last sync's view.
  //    A licence vppd granted that a newer sync no longer shows was taken away at
  //    Apple (revoked outside vppd): the row is forgotten.
  //    An associate still in flight that a sync begun after it already shows
  //    held is granted: Apple did it (its event's poll or notification, which
  //    settles only rows still pending, may come much later).
  std::map<std::string, const Row*> rows;
  std::deque<Row> settled;  // such rows, as granted
  std::int64_t available = in.total - in.used;
  for (const auto& [serial, as_read] : in.rows) {
    const bool at_sync = in.held_at_sync.contains(serial);
    const Row* current = &as_read;
    if (as_read.state == "pending" && at_sync && in.last_sync > as_read.updated) {
      Row granted = as_read;
      granted.state = "granted";
      plan.put.push_back(granted);
      current = &settled.emplace_back(std::move(granted));
    }
    const Row& row = *current;
    if (row.state == "granted" && !at_sync && in.last_sync > row.updated) {
      plan.remove.push_back(row);
      continue;
    }
    if (row.state == "released") {
      if (at_sync) {
        ++available;  // Apple's count still has it: freed since
      } else if (in.last_sync > row.updated) {
        plan.remove.push_back(row);  // a sync since has seen it gone: nothing left to account for
        continue;
      }
    } else if (row.state == "failed" && at_sync) {
      plan.remove.push_back(row);  // Apple holds it after all (granted by someone else)
      continue;
    } else if (row.state != "failed" && !at_sync) {
      --available;  // vppd holds (or is getting) one the last sync did not count
    }
    if (row.state == "granted") ++plan.granted;
    const bool directory = row.cause == "leftScope" || row.cause == "userDeleted";
    if ((row.state == "reclaimPending" || row.state == "released") && directory) ++plan.reclaimed;
    rows.emplace_hint(rows.end(), serial, &row);  // in.rows is in key order
  }
  if (in.whole) {
    available = in.whole->available;
    plan.granted = in.whole->granted;
    plan.reclaimed = in.whole->reclaimed;
  }
  plan.available = unlimited ? kUnlimitedCount : std::max<std::int64_t>(0, available);
  std::int64_t left = plan.available;

  // 2. Serve the wanted keys in order.
  std::unordered_set<std::string_view> wanted;  // views of in.wanted
  wanted.reserve(in.wanted.size());
  for (const std::string& serial : in.wanted) {
    if (in.uninstall.contains(serial) || !wanted.insert(serial).second) continue;
    ++plan.wanted;
    auto it = rows.find(serial);
    const Row* row = it == rows.end() ? nullptr : it->second;
    if (Is(row, "granted") || Is(row, "pending") || Is(row, "reclaimPending") ||
        (in.held_at_sync.contains(serial) && !Is(row, "released"))) {
      ++plan.holding;
      continue;
    }
    // A person who has not accepted Apple's invitation cannot hold a licence yet:
    // waits, and takes none from those who can.
    if (in.ready && !in.ready->contains(serial)) {
      plan.waiting.push_back(serial);
      continue;
    }
    // A failure Apple reported (other than running out) is not retried by
    // itself: only a forced pass asks Apple again.
    if (Is(row, "failed") && row->error_code != kNotEnoughLicencesCode && !force) {
      continue;
    }
    if (unlimited || left > 0) {
      plan.associate.push_back(serial);
      if (!unlimited) --left;
      continue;
    }
    ++plan.not_enough;
    if (!Is(row, "failed") || row->error_code != kNotEnoughLicencesCode) {
      Row failed;
      failed.adam_id = in.adam_id;
      failed.pricing_param = in.pricing_param;
      SetKey(failed, serial);
      failed.state = "failed";
      failed.error_code = kNotEnoughLicencesCode;
      failed.error_message = kNotEnoughLicencesMessage;
      failed.cause = "assigned";
      plan.put.push_back(std::move(failed));
    }
  }

  // 3. Take back what vppd granted to devices no longer wanted.
  std::vector<std::string> directory;
  for (const auto& [serial, row] : rows) {
    if (wanted.contains(serial)) continue;
    if (row->state == "failed") {
      plan.remove.push_back(*row);
      continue;
    }
    if (row->state != "granted") continue;  // in flight, or released
    if (!options.reclaim) {
      ++plan.kept;
    } else if (!in.assigned || in.uninstall.contains(serial)) {
      plan.reclaim_explicit.push_back(serial);
    } else {
      directory.push_back(serial);
    }
  }
  // The cap is shared by the passes until a sync has seen the reclaims (their
  // rows stay until then): the job's own follow-up passes (event polls) must not
  // each take another share.
  const std::int64_t base = plan.granted + plan.reclaimed;
  const auto cap =
      force ? static_cast<std::int64_t>(directory.size())
            : std::max<std::int64_t>(
                  0, std::max<std::int64_t>(
                         kReclaimFloor, static_cast<std::int64_t>(std::floor(options.max_reclaim_fraction * base))) -
                         plan.reclaimed);
  const auto take = std::min<std::int64_t>(cap, static_cast<std::int64_t>(directory.size()));
  plan.reclaim_directory.assign(directory.begin(), directory.begin() + take);
  plan.held_back = static_cast<std::int64_t>(directory.size()) - take;

  // 4. Apple's holders vppd never granted and nobody wants: left alone, counted.
  for (const std::string& serial : in.held_at_sync) {
    if (wanted.contains(serial)) continue;
    auto it = rows.find(serial);
    if (it == rows.end()) ++plan.untracked;
  }
  return plan;
}

}  // namespace

AssetPlan PlanAsset(const AssetInput& in, const ReconcileOptions& options, bool force) {
  return Plan(in, options, force);
}

UserAssetPlan PlanUserAsset(const UserAssetInput& in, const ReconcileOptions& options, bool force) {
  return Plan(in, options, force);
}

}  // namespace vppd::sync
