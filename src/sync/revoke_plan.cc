#include "sync/revoke_plan.h"

#include <algorithm>
#include <map>

namespace vppd::sync {
namespace {

constexpr int kNotAssociated = 9619;

std::vector<std::string> Sorted(std::set<std::string> ids) { return {ids.begin(), ids.end()}; }

const std::string& KeyOf(const store::DeviceLicense& r) { return r.serial_number; }
const std::string& KeyOf(const store::UserLicense& r) { return r.client_user_id; }
void SetKey(store::DeviceLicense& r, const std::string& key) { r.serial_number = key; }
void SetKey(store::UserLicense& r, const std::string& key) { r.client_user_id = key; }

// Whether vppd holds (or is getting or taking back) the licence of this row.
template <class Row>
bool InHand(const Row& r) {
  return r.state == "granted" || r.state == "pending" || r.state == "reclaimPending";
}

template <class Row>
std::vector<Row> Released(const std::vector<Row>& rows, const std::string& adam_id, const std::string& pricing_param,
                          const std::vector<std::string>& disassociated, const std::set<std::string>& failed,
                          const std::string& event_id) {
  std::map<std::string, Row> by_key;
  for (const std::string& key : disassociated) {
    if (failed.contains(key)) continue;
    Row fresh;
    fresh.adam_id = adam_id;
    fresh.pricing_param = pricing_param;
    SetKey(fresh, key);
    fresh.state = "granted";  // as if vppd had granted it: released below
    by_key.emplace(key, std::move(fresh));
  }
  for (const Row& r : rows) {
    auto it = by_key.find(KeyOf(r));
    if (it != by_key.end() && r.adam_id == adam_id && r.pricing_param == pricing_param) it->second = r;
  }
  std::vector<Row> out;
  for (const auto& [key, r] : by_key) {
    if (r.state != "granted" && r.state != "reclaimPending") continue;
    Row released = r;
    released.state = "released";
    released.cause = "revoked";
    released.event_id = event_id;
    released.error_code.clear();
    released.error_message.clear();
    released.updated = 0;  // stamped by the store
    out.push_back(std::move(released));
  }
  return out;
}

}  // namespace

RevokeTargets RevokeTargetsOf(const store::AppRevoke& revoke, const std::vector<store::LicenseAssignment>& held_at_sync,
                              const std::vector<store::DeviceLicense>& device_rows,
                              const std::vector<store::UserLicense>& user_rows,
                              const std::vector<store::LicenseAssignment>& held_now) {
  RevokeTargets out;
  if (revoke.action_name == kRevokeUserLicenseAction) {
    if (!revoke.user_id.empty()) out.client_user_ids = {revoke.user_id};
    return out;
  }
  if (revoke.action_name != kRevokeAllLicensesAction) {
    if (!revoke.serial_number.empty()) out.serial_numbers = {revoke.serial_number};
    return out;
  }
  std::set<std::string> users, serials;
  auto add = [&](const store::LicenseAssignment& a) {
    if (a.adam_id != revoke.adam_id || a.pricing_param != revoke.pricing_param) return;
    if (!a.client_user_id.empty()) users.insert(a.client_user_id);
    if (!a.serial_number.empty()) serials.insert(a.serial_number);
  };
  for (const auto& a : held_at_sync) add(a);
  if (revoke.revoke_untracked) {
    for (const auto& a : held_now) add(a);
  }
  for (const auto& r : device_rows) {
    if (r.adam_id == revoke.adam_id && r.pricing_param == revoke.pricing_param && InHand(r)) {
      serials.insert(r.serial_number);
    }
  }
  for (const auto& r : user_rows) {
    if (r.adam_id == revoke.adam_id && r.pricing_param == revoke.pricing_param && InHand(r)) {
      users.insert(r.client_user_id);
    }
  }
  out.client_user_ids = Sorted(std::move(users));
  out.serial_numbers = Sorted(std::move(serials));
  return out;
}

RevokeFailures FailuresOf(const apple::EventStatus& status, const std::vector<std::string>& serials,
                          const std::vector<std::string>& client_user_ids) {
  RevokeFailures out;
  auto note = [&](const apple::EventFailure& f) {
    if (out.first_error.empty()) {
      out.first_error = "Apple error " + std::to_string(f.error_number) + ": " + f.error_message;
    }
  };
  for (const apple::EventFailure& f : status.failures) {
    if (f.error_number == kNotAssociated) continue;
    const auto named = static_cast<std::int64_t>(f.serial_numbers.size() + f.client_user_ids.size());
    if (named > 0) {
      out.count += named;
      out.serials.insert(f.serial_numbers.begin(), f.serial_numbers.end());
      out.client_user_ids.insert(f.client_user_ids.begin(), f.client_user_ids.end());
      note(f);
      continue;
    }
    if (status.num_completed == 0) {
      out.count = std::max<std::int64_t>(out.count, std::max<std::int64_t>(status.num_requested, 1));
      out.serials.insert(serials.begin(), serials.end());
      out.client_user_ids.insert(client_user_ids.begin(), client_user_ids.end());
    } else {
      out.count = std::max<std::int64_t>(out.count, status.num_requested - status.num_completed);
    }
    note(f);
  }
  return out;
}

std::vector<store::DeviceLicense> ReleasedRows(const std::vector<store::DeviceLicense>& rows,
                                               const std::string& adam_id, const std::string& pricing_param,
                                               const std::vector<std::string>& disassociated,
                                               const std::set<std::string>& failed, const std::string& event_id) {
  return Released(rows, adam_id, pricing_param, disassociated, failed, event_id);
}

std::vector<store::UserLicense> ReleasedRows(const std::vector<store::UserLicense>& rows, const std::string& adam_id,
                                             const std::string& pricing_param,
                                             const std::vector<std::string>& disassociated,
                                             const std::set<std::string>& failed, const std::string& event_id) {
  return Released(rows, adam_id, pricing_param, disassociated, failed, event_id);
}

std::string FailureReasonOf(const std::string& token_state) {
  return token_state == "expired" ? "expiredVppToken" : "appleFailure";
}

}  // namespace vppd::sync
