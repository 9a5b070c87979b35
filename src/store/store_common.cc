#include "store/store_common.h"

#include <set>

#include <boost/json.hpp>
#include <fmt/format.h>

namespace vppd::store {

namespace json = boost::json;

std::string TokenAssociatedData(const std::string& tenant_id, const std::string& id) {
  return "vpp_tokens.token:" + tenant_id + "/" + id;
}

const std::string& TokenSelectList() {
  static const std::string list = [] {
    std::string s = "id";
    for (const char* c : kTokenDataColumns) {
      if (std::string_view(c) != "token_sealed") s += fmt::format(", {}", c);
    }
    return s;
  }();
  return list;
}

std::string ActionResultsToJson(const std::vector<TokenActionResult>& results) {
  json::array array;
  for (const TokenActionResult& r : results) {
    array.push_back(json::object{
        {"actionName", r.action_name},
        {"actionState", r.action_state},
        {"start", r.start},
        {"lastUpdated", r.last_updated},
        {"isRevokeResult", r.is_revoke_result},
        {"failureReason", r.failure_reason},
        {"failedLicenses", r.failed_licenses},
        {"totalLicenses", r.total_licenses},
    });
  }
  return json::serialize(array);
}

Error CorruptColumn(std::string_view column, const std::string& id) {
  return Error::Internal(
      fmt::format("store: column {} of vpp_token {} is not valid JSON of the expected shape", column, id));
}

// Parses a JSON list column on every token read: "[]" needs no parser, and the
// tree of a short list lives in a buffer on the stack instead of the heap.
constexpr std::size_t kColumnParseBuffer = 4096;

Result<std::vector<TokenActionResult>> ActionResultsFromJson(const std::string& text, const std::string& id) {
  if (text == "[]") return std::vector<TokenActionResult>{};
  unsigned char buffer[kColumnParseBuffer];
  json::monotonic_resource arena(buffer, sizeof buffer);
  boost::system::error_code ec;
  json::value v = json::parse(text, ec, &arena);
  if (ec || !v.is_array()) return Fail(CorruptColumn("action_results", id));
  std::vector<TokenActionResult> results;
  for (const json::value& item : v.get_array()) {
    const json::object* o = item.if_object();
    if (o == nullptr) return Fail(CorruptColumn("action_results", id));
    TokenActionResult r;
    const json::string* name = nullptr;
    const json::string* state = nullptr;
    const json::string* reason = nullptr;
    const json::value* start = o->if_contains("start");
    const json::value* updated = o->if_contains("lastUpdated");
    const json::value* revoke = o->if_contains("isRevokeResult");
    const json::value* failed = o->if_contains("failedLicenses");
    const json::value* total = o->if_contains("totalLicenses");
    if (const json::value* x = o->if_contains("actionName")) name = x->if_string();
    if (const json::value* x = o->if_contains("actionState")) state = x->if_string();
    if (const json::value* x = o->if_contains("failureReason")) reason = x->if_string();
    if (!name || !state || !reason || !start || !start->is_int64() || !updated || !updated->is_int64() || !revoke ||
        !revoke->is_bool() || !failed || !failed->is_int64() || !total || !total->is_int64()) {
      return Fail(CorruptColumn("action_results", id));
    }
    r.action_name = std::string(*name);
    r.action_state = std::string(*state);
    r.failure_reason = std::string(*reason);
    r.start = start->get_int64();
    r.last_updated = updated->get_int64();
    r.is_revoke_result = revoke->get_bool();
    r.failed_licenses = static_cast<std::int32_t>(failed->get_int64());
    r.total_licenses = static_cast<std::int32_t>(total->get_int64());
    results.push_back(std::move(r));
  }
  return results;
}

std::string StringsToJson(const std::vector<std::string>& strings) {
  json::array array;
  for (const std::string& s : strings) array.emplace_back(s);
  return json::serialize(array);
}

Result<std::vector<std::string>> StringsFromJson(const std::string& text, const std::string& id) {
  if (text == "[]") return std::vector<std::string>{};
  unsigned char buffer[kColumnParseBuffer];
  json::monotonic_resource arena(buffer, sizeof buffer);
  boost::system::error_code ec;
  json::value v = json::parse(text, ec, &arena);
  if (ec || !v.is_array()) return Fail(CorruptColumn("role_scope_tag_ids", id));
  std::vector<std::string> strings;
  for (const json::value& item : v.get_array()) {
    if (!item.is_string()) return Fail(CorruptColumn("role_scope_tag_ids", id));
    strings.emplace_back(item.get_string());
  }
  return strings;
}

Error TokenNotFound(const std::string& id) { return Error::NotFound(fmt::format("vppToken '{}' not found", id), id); }
Error TenantNotFound(const std::string& id) { return Error::NotFound(fmt::format("tenant '{}' not found", id), id); }
Error AppNotFound(const std::string& id) { return Error::NotFound(fmt::format("mobileApp '{}' not found", id), id); }

const std::string& AppSelectList() {
  static const std::string list = [] {
    std::string s;
    for (const char* c : kAppColumns) s += fmt::format("{}{}", s.empty() ? "" : ", ", c);
    return s;
  }();
  return list;
}

bool SameAppData(const MobileApp& a, const MobileApp& b) {
  return a.token_id == b.token_id && a.platform == b.platform && a.adam_id == b.adam_id &&
         a.pricing_param == b.pricing_param && a.product_type == b.product_type && a.display_name == b.display_name &&
         a.bundle_id == b.bundle_id && a.publisher == b.publisher && a.total_licenses == b.total_licenses &&
         a.used_licenses == b.used_licenses && a.device_assignable == b.device_assignable &&
         a.revocable == b.revocable && a.app_store_url == b.app_store_url &&
         a.token_organization_name == b.token_organization_name && a.token_apple_id == b.token_apple_id &&
         a.token_display_name == b.token_display_name && a.token_account_type == b.token_account_type;
}

Error LeaseLost(const SyncJob& job, std::string_view why) {
  return Error::FailedPrecondition(
      fmt::format("sync job {} is no longer leased to worker '{}': {}", job.id, job.lease_owner, why));
}
Status CheckPaging(std::int64_t skip, std::int64_t limit) {
  if (skip < 0) return Fail(Error::InvalidArgument("$skip must not be negative", "$skip"));
  if (limit < 0 || limit > kMaxPageSize) {
    return Fail(Error::InvalidArgument(fmt::format("$top must be between 0 and {}", kMaxPageSize), "$top"));
  }
  return {};
}

Status CheckStagedRows(const std::vector<LicenseAssignment>& rows) {
  if (rows.size() > kMaxBatchRows) {
    return Fail(Error::InvalidArgument(fmt::format("store: at most {} rows may be staged at once", kMaxBatchRows)));
  }
  for (const LicenseAssignment& r : rows) {
    if (r.adam_id.empty() || r.client_user_id.empty() == r.serial_number.empty()) {
      return Fail(Error::InvalidArgument(fmt::format(
          "store: an assignment needs an adamId and exactly one of clientUserId and serialNumber (adamId '{}')",
          r.adam_id)));
    }
  }
  return {};
}

Status CheckDeltaCounts(const std::map<std::pair<std::string, std::string>, std::int64_t>& stored,
                        const std::vector<MobileApp>& apps) {
  std::string differences;
  int mismatches = 0;
  std::set<std::pair<std::string, std::string>> checked;  // an asset on two platforms is one asset
  for (const MobileApp& app : apps) {
    if (!checked.emplace(app.adam_id, app.pricing_param).second) continue;
    auto it = stored.find({app.adam_id, app.pricing_param});
    std::int64_t have = it == stored.end() ? 0 : it->second;
    if (have == app.used_licenses) continue;
    if (++mismatches <= 5) {
      differences += fmt::format("{}adamId {} ({}): {} stored, Apple counts {}", differences.empty() ? "" : "; ",
                                 app.adam_id, app.pricing_param, have, app.used_licenses);
    }
  }
  if (mismatches == 0) return {};
  return Fail(Error::FailedPrecondition(
      fmt::format("delta inconsistent: {} app(s) differ after merging: {}", mismatches, differences)));
}

}  // namespace vppd::store
