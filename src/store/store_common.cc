#include "store/store_common.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <set>
#include <unordered_map>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "store/assignment_chunks.h"

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

std::pair<std::string, std::string> TokenInsertLists(char mark) {
  std::string cols = "tenant_id, id", values = fmt::format("{0}1, {0}2", mark);
  int n = 3;
  for (const char* c : kTokenDataColumns) {
    cols += fmt::format(", {}", c);
    values += fmt::format(", {}{}", mark, n++);
  }
  return {cols, values};
}

std::string BuildTokenUpdateSql(char mark) {
  std::string sets;
  int n = 3;
  for (const char* c : kTokenDataColumns) {
    if (std::string_view(c) == "token_sealed") {
      sets += fmt::format("{}{} = coalesce({}{}, {})", sets.empty() ? "" : ", ", c, mark, n++, c);
      continue;
    }
    sets += fmt::format("{}{} = {}{}", sets.empty() ? "" : ", ", c, mark, n++);
  }
  return fmt::format("UPDATE vpp_tokens SET {} WHERE tenant_id = {}1 AND id = {}2", sets, mark, mark);
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

Status CheckTokenVersion(const std::string& id, std::int64_t stored, std::optional<std::int64_t> if_version) {
  if (!if_version || *if_version == stored) return {};
  return Fail(Error::Aborted(fmt::format(
      "the vppToken '{}' was changed since version {} (it is at version {}): read it again", id, *if_version, stored)));
}

const std::string& AppSelectList() {
  static const std::string list = [] {
    std::string s;
    for (const char* c : kAppColumns) s += fmt::format("{}{}", s.empty() ? "" : ", ", c);
    return s;
  }();
  return list;
}

std::string BuildAppUpsertSql(char mark) {
  std::string values = fmt::format("{}1", mark);
  for (std::size_t i = 0; i < std::size(kAppColumns); ++i) values += fmt::format(", {}{}", mark, i + 2);
  std::string updates;
  for (const char* c : kAppColumns) {
    if (std::string_view(c) == "id") continue;
    updates += fmt::format("{}{} = excluded.{}", updates.empty() ? "" : ", ", c, c);
  }
  return fmt::format("INSERT INTO mobile_apps (tenant_id, {}) VALUES ({}) ON CONFLICT (tenant_id, id) DO UPDATE SET {}",
                     AppSelectList(), values, updates);
}

std::string GenresJson(const std::vector<std::string>& genres) {
  boost::json::array a;
  for (const std::string& g : genres) a.emplace_back(g);
  return boost::json::serialize(a);
}

std::vector<std::string> ParseGenres(const std::string& text) {
  std::vector<std::string> out;
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  for (const auto& g : v.get_array()) {
    if (g.is_string()) out.emplace_back(g.get_string());
  }
  return out;
}

bool SameAppData(const MobileApp& a, const MobileApp& b) {
  return a.token_id == b.token_id && a.platform == b.platform && a.adam_id == b.adam_id &&
         a.pricing_param == b.pricing_param && a.product_type == b.product_type && a.display_name == b.display_name &&
         a.bundle_id == b.bundle_id && a.publisher == b.publisher && a.total_licenses == b.total_licenses &&
         a.used_licenses == b.used_licenses && a.device_assignable == b.device_assignable &&
         a.revocable == b.revocable && a.app_store_url == b.app_store_url &&
         a.token_organization_name == b.token_organization_name && a.token_apple_id == b.token_apple_id &&
         a.token_display_name == b.token_display_name && a.token_account_type == b.token_account_type &&
         a.genres == b.genres && a.seller == b.seller;
}

Error LeaseLost(const SyncJob& job, std::string_view why) {
  return Error::FailedPrecondition(
      fmt::format("sync job {} is no longer leased to worker '{}': {}", job.id, job.lease_owner, why));
}
std::string PageSql(const std::string& select_list, const char* table, const std::string& where,
                    const std::string& order, const ListQuery& query, SqlBuilder& builder) {
  std::string limit = builder.Param(std::int64_t{query.limit + 1});
  std::string offset = builder.Param(std::int64_t{query.skip});
  return fmt::format("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT {} OFFSET {}", select_list, table, where, order,
                     limit, offset);
}

AppChanges DiffSnapshotApps(std::vector<MobileApp> existing, const std::vector<MobileApp>& snapshot_apps,
                            const std::string& token_id, Timestamp now) {
  std::unordered_map<std::string, MobileApp> before;
  for (MobileApp& app : existing) before.emplace(app.id, std::move(app));
  AppChanges changes;
  for (const MobileApp& given : snapshot_apps) {
    MobileApp app = given;
    app.token_id = token_id;  // a token's snapshot holds only its own apps
    auto old = before.find(app.id);
    if (old != before.end()) {
      const bool same = SameAppData(app, old->second);
      // The same app across syncs: createdDateTime never moves, and
      // lastModifiedDateTime moves only when something Graph shows changed.
      app.created = old->second.created;
      app.last_modified = same ? old->second.last_modified : now;
      before.erase(old);
      if (same) continue;  // otherwise written over the stored row (an upsert), which keeps its assignments
    } else {
      if (app.created == 0) app.created = now;
      if (app.last_modified == 0) app.last_modified = now;
    }
    changes.written.push_back(std::move(app));
  }
  for (auto& [id, app] : before) changes.removed_ids.push_back(id);
  std::sort(changes.removed_ids.begin(), changes.removed_ids.end());
  return changes;
}

Error SetReplacedDuringWalk(const std::string& token_id) {
  return Error::FailedPrecondition(
      fmt::format("the assignments of vppToken {} were replaced by a sync during the walk; walk them again", token_id));
}

bool StampClaim(SyncJob& job, const std::string& worker, Timestamp expires) {
  bool taken_over = !job.lease_owner.empty();  // its worker died: its staged rows are garbage
  job.lease_owner = worker;
  job.lease_expires = expires;
  job.attempts += 1;
  job.pages_walked = job.pages_total = job.assignments_staged = 0;
  return taken_over;
}

Result<std::string> PrepareNewToken(const std::string& tenant_id, VppToken& token, const Clock& clock,
                                    const SecretBox& secrets) {
  if (token.id.empty()) token.id = NewGuid();
  if (token.id.size() > kMaxIdLength) return Fail(Error::InvalidArgument("vppToken id is too long", "id"));
  token.created = token.last_modified = clock.Now();
  token.row_version = 1;
  return secrets.Seal(token.token, TokenAssociatedData(tenant_id, token.id));
}

Status CheckTokenRoom(const std::string& id, bool exists, std::int64_t count, std::int64_t max_tokens) {
  if (exists) return Fail(Error::AlreadyExists(fmt::format("a vppToken with id '{}' already exists", id)));
  if (count >= max_tokens) {
    return Fail(
        Error::ResourceExhausted(fmt::format("the tenant already has {} vppTokens, the most it may have", max_tokens)));
  }
  return {};
}

Result<MutatedToken> MutateStoredToken(const std::string& tenant_id, const VppToken& stored,
                                       const std::function<Status(VppToken&)>& mutate, const Clock& clock,
                                       const SecretBox& secrets) {
  MutatedToken out{stored, std::nullopt};
  VppToken& token = out.token;
  if (mutate) {
    if (Status s = mutate(token); !s) return Fail(s.error());
  }
  token.id = stored.id;
  token.created = stored.created;
  token.last_modified = clock.Now();
  token.row_version = stored.row_version + 1;  // `stored` is locked: no other writer in between
  if (!token.token.empty()) {
    Result<std::string> sealed = secrets.Seal(token.token, TokenAssociatedData(tenant_id, token.id));
    if (!sealed) return Fail(sealed.error());
    out.sealed = std::move(*sealed);
    token.token.clear();
  }
  return out;
}

Result<std::string> OpenTokenSecret(const std::string& tenant_id, const std::string& id, const std::string& sealed,
                                    const SecretBox& secrets) {
  Result<std::string> token = secrets.Open(sealed, TokenAssociatedData(tenant_id, id));
  if (!token) {
    // The message names the row, never the value.
    return Fail(Error::Internal(fmt::format(
        "store: the sealed sToken of vpp_token {} does not open (tampered with, or sealed under another key)", id)));
  }
  return token;
}

Status CheckProposedInstallationId(const std::string& proposed) {
  if (!IsGuid(proposed)) {
    return Fail(Error::InvalidArgument("store: the proposed installation id must be a GUID", "installation_id"));
  }
  return {};
}

Result<std::string> CheckedStoredInstallationId(std::string stored) {
  if (!IsGuid(stored)) return Fail(Error::Internal("store: the stored installation id is not a GUID"));
  return stored;
}

Status CheckTenantId(const std::string& id) {
  if (id.empty() || id.size() > kMaxIdLength) {
    return Fail(Error::InvalidArgument("tenant id must be 1..256 characters", "id"));
  }
  return {};
}

Status CheckEnqueueOptions(const EnqueueOptions& options) {
  if (options.kind.empty() || options.kind.size() > kMaxIdLength) {
    return Fail(Error::InvalidArgument("store: a job kind must be 1..256 characters", "kind"));
  }
  if (options.params.size() > kMaxJobParamsBytes) {
    return Fail(Error::InvalidArgument(fmt::format("store: job params exceed {} bytes", kMaxJobParamsBytes)));
  }
  return {};
}

Status CheckClaim(const std::string& worker, std::chrono::milliseconds lease) {
  if (worker.empty() || worker.size() > kMaxIdLength) {
    return Fail(Error::InvalidArgument("store: a worker name must be 1..256 characters"));
  }
  if (lease.count() <= 0) return Fail(Error::InvalidArgument("store: a lease must be positive"));
  return {};
}

Status CheckBatchSize(std::size_t batch) {
  if (batch == 0 || batch > kMaxBatchRows) {
    return Fail(Error::InvalidArgument(fmt::format("store: batch must be 1..{} rows", kMaxBatchRows)));
  }
  return {};
}

Status CheckOpenOptions(const SecretBox* secrets, std::string_view location, std::string_view what,
                        std::initializer_list<int> timeouts_ms, std::string_view connections_name, int connections,
                        int max_connections) {
  if (secrets == nullptr) return Fail(Error::InvalidArgument("store: no SecretBox to seal sTokens with"));
  if (location.empty()) return Fail(Error::InvalidArgument(fmt::format("store: empty {}", what)));
  for (int timeout : timeouts_ms) {
    if (timeout <= 0) return Fail(Error::InvalidArgument("store: timeouts must be positive"));
  }
  if (connections < 1 || connections > max_connections) {
    return Fail(Error::InvalidArgument(fmt::format("store: {} must be 1..{}", connections_name, max_connections)));
  }
  return {};
}

Status CheckPaging(std::int64_t skip, std::int64_t limit) {
  if (skip < 0) return Fail(Error::InvalidArgument("$skip must not be negative", "$skip"));
  if (limit < 0 || limit > kMaxPageSize) {
    return Fail(Error::InvalidArgument(fmt::format("$top must be between 0 and {}", kMaxPageSize), "$top"));
  }
  return {};
}

Status CheckStagedRows(const StagedAssignments& rows) {
  if (rows.size() > kMaxBatchRows) {
    return Fail(Error::InvalidArgument(fmt::format("store: at most {} rows may be staged at once", kMaxBatchRows)));
  }
  for (const StagedAssignments::Row& r : rows.rows()) {
    if (r.kind == StagedAssignments::kInvalid) {
      return Fail(Error::InvalidArgument(fmt::format(
          "store: an assignment needs an adamId and exactly one of clientUserId and serialNumber (adamId '{}')",
          rows.apps()[r.app].first)));
    }
  }
  return {};
}

std::vector<std::uint32_t> SortedRows(const StagedAssignments& batch) {
  chunks::StagingOrder order;
  order.Sort(batch, /*distinct=*/false);
  std::vector<std::uint32_t> sorted;
  sorted.reserve(order.rows().size());
  for (const chunks::StagingOrder::Row& r : order.rows()) sorted.push_back(r.row);
  return sorted;
}

// --- StagedAssignments ----------------------------------------------------------------

namespace {

std::size_t AppHash(std::string_view adam_id, std::string_view pricing_param) {
  const std::size_t h = std::hash<std::string_view>{}(adam_id);
  return h ^ (std::hash<std::string_view>{}(pricing_param) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
}

}  // namespace

namespace {

// a == b without a call to memcmp for ids of up to 16 bytes (adamIds, STDQ):
// AppIndex compares two per row, a million times a sync, where the call was
// most of the cost.
[[gnu::always_inline]] inline bool SameText(std::string_view a, std::string_view b) {
  const std::size_t n = a.size();
  if (n != b.size()) return false;
  if (n >= 8 && n <= 16) {  // Two 8-byte words, overlapping when n < 16.
    std::uint64_t a0, a1, b0, b1;
    std::memcpy(&a0, a.data(), 8);
    std::memcpy(&b0, b.data(), 8);
    std::memcpy(&a1, a.data() + n - 8, 8);
    std::memcpy(&b1, b.data() + n - 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
  }
  if (n < 8) {
    for (std::size_t i = 0; i < n; ++i)
      if (a[i] != b[i]) return false;
    return true;
  }
  return std::memcmp(a.data(), b.data(), n) == 0;
}

}  // namespace

std::uint32_t StagedAssignments::AppIndex(std::string_view adam_id, std::string_view pricing_param) {
  if (!apps_.empty() && SameText(apps_[last_app_].first, adam_id) && SameText(apps_[last_app_].second, pricing_param)) {
    return last_app_;
  }
  if ((apps_.size() + 1) * 2 > app_slots_.size()) GrowAppSlots();
  const std::size_t mask = app_slots_.size() - 1;
  for (std::size_t s = AppHash(adam_id, pricing_param) & mask;; s = (s + 1) & mask) {
    const std::uint32_t slot = app_slots_[s];
    if (slot == 0) {
      apps_.emplace_back(adam_id, pricing_param);
      app_slots_[s] = static_cast<std::uint32_t>(apps_.size());
      return last_app_ = static_cast<std::uint32_t>(apps_.size() - 1);
    }
    const auto& app = apps_[slot - 1];
    if (SameText(app.first, adam_id) && SameText(app.second, pricing_param)) return last_app_ = slot - 1;
  }
}

void StagedAssignments::GrowAppSlots() {
  std::size_t size = 16;
  while ((apps_.size() + 1) * 2 > size) size *= 2;
  app_slots_.assign(size, 0);
  for (std::size_t a = 0; a < apps_.size(); ++a) {
    std::size_t s = AppHash(apps_[a].first, apps_[a].second) & (size - 1);
    while (app_slots_[s] != 0) s = (s + 1) & (size - 1);
    app_slots_[s] = static_cast<std::uint32_t>(a + 1);
  }
}

void StagedAssignments::Add(std::string_view adam_id, std::string_view pricing_param, std::string_view client_user_id,
                            std::string_view serial_number) {
  Row row;
  row.app = AppIndex(adam_id, pricing_param);
  const bool user = !client_user_id.empty(), device = !serial_number.empty();
  row.kind = adam_id.empty() || user == device ? kInvalid : device ? kDevice : kUser;
  const std::string_view id = device ? serial_number : client_user_id;
  row.offset = static_cast<std::uint32_t>(ids_.size());
  row.length = static_cast<std::uint32_t>(id.size());
  ids_.append(id);
  rows_.push_back(row);
}

void StagedAssignments::Append(const StagedAssignments& other) {
  std::vector<std::uint32_t> app_map(other.apps_.size());
  for (std::size_t a = 0; a < other.apps_.size(); ++a) {
    app_map[a] = AppIndex(other.apps_[a].first, other.apps_[a].second);
  }
  const auto base = static_cast<std::uint32_t>(ids_.size());
  ids_.append(other.ids_);
  // Copied whole, then renumbered in place: two tight loops (the stager
  // appends every row of a sync).
  const std::size_t first = rows_.size();
  rows_.insert(rows_.end(), other.rows_.begin(), other.rows_.end());
  for (auto row = rows_.begin() + static_cast<std::ptrdiff_t>(first); row != rows_.end(); ++row) {
    row->app = app_map[row->app];
    row->offset += base;
  }
}

void StagedAssignments::MoveTailTo(std::size_t from, StagedAssignments& out) {
  if (from >= rows_.size()) return;
  std::uint32_t app_here = rows_[from].app, app_there = out.AppIndex(apps_[app_here].first, apps_[app_here].second);
  for (std::size_t i = from; i < rows_.size(); ++i) {
    Row row = rows_[i];
    if (row.app != app_here) {
      app_here = row.app;
      app_there = out.AppIndex(apps_[app_here].first, apps_[app_here].second);
    }
    const std::string_view text = id(row);
    row.app = app_there;
    row.offset = static_cast<std::uint32_t>(out.ids_.size());
    out.ids_.append(text);
    out.rows_.push_back(row);
  }
  // Add and Append write ids in row order: the tail's ids end the string.
  ids_.resize(rows_[from].offset);
  rows_.resize(from);
}

void StagedAssignments::Clear() {
  rows_.clear();
  ids_.clear();
  apps_.clear();
  std::fill(app_slots_.begin(), app_slots_.end(), 0);
  last_app_ = 0;
}

void StagedAssignments::Reserve(std::size_t rows, std::size_t id_bytes) {
  rows_.reserve(rows);
  ids_.reserve(id_bytes);
}

LicenseAssignment StagedAssignments::At(std::size_t i) const {
  const Row& row = rows_[i];
  LicenseAssignment a{apps_[row.app].first, apps_[row.app].second, "", ""};
  (row.kind == kDevice ? a.serial_number : a.client_user_id) = std::string(id(row));
  return a;
}

Status Store::StageAssignments(const SyncJob& job, const std::vector<LicenseAssignment>& rows) {
  StagedAssignments batch;
  for (const LicenseAssignment& row : rows) batch.Add(row);
  return StageAssignments(job, batch);
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
