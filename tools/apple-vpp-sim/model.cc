#include "model.h"

#include <algorithm>
#include <set>

#include "apple_errors.h"
#include "json_writer.h"
#include "prng.h"

namespace vppd::sim {

const char* ProductTypeName(ProductType t) { return t == ProductType::kBook ? "Book" : "App"; }

const char* PlatformName(std::uint8_t bit) {
  switch (bit) {
    case kIOS:
      return "iOS";
    case kMacOS:
      return "macOS";
    case kTvOS:
      return "tvOS";
    case kWatchOS:
      return "watchOS";
    case kVisionOS:
      return "visionOS";
    default:
      return nullptr;
  }
}

std::uint8_t PlatformFromName(std::string_view name) {
  for (std::uint8_t bit = 1; bit <= kVisionOS; bit <<= 1)
    if (name == PlatformName(bit)) return bit;
  return 0;
}

const char* UserStatusName(UserStatus s) {
  switch (s) {
    case UserStatus::kRegistered:
      return "Registered";
    case UserStatus::kAssociated:
      return "Associated";
    case UserStatus::kRetired:
      return "Retired";
  }
  return "Registered";
}

const char* TokenStateName(TokenState s) {
  switch (s) {
    case TokenState::kActive:
      return "active";
    case TokenState::kExpired:
      return "expired";
    case TokenState::kRevoked:
      return "revoked";
    case TokenState::kInvalid:
      return "invalid";
  }
  return "active";
}

std::optional<TokenState> TokenStateFromName(std::string_view name) {
  for (TokenState s : {TokenState::kActive, TokenState::kExpired, TokenState::kRevoked, TokenState::kInvalid})
    if (name == TokenStateName(s)) return s;
  return std::nullopt;
}

const char* EventTypeName(EventType t) {
  switch (t) {
    case EventType::kAssociate:
      return "ASSOCIATE";
    case EventType::kDisassociate:
      return "DISASSOCIATE";
    case EventType::kRevoke:
      return "REVOKE";
    case EventType::kCreate:
      return "CREATE";
    case EventType::kUpdate:
      return "UPDATE";
    case EventType::kRetire:
      return "RETIRE";
  }
  return "ASSOCIATE";
}

const char* EventStatusName(EventStatus s) {
  switch (s) {
    case EventStatus::kPending:
      return "PENDING";
    case EventStatus::kComplete:
      return "COMPLETE";
    case EventStatus::kFailed:
      return "FAILED";
  }
  return "PENDING";
}

std::optional<PageWindow> ComputePage(std::size_t item_count, std::size_t page_size, std::int64_t index) {
  if (page_size == 0) page_size = 1;
  const auto total_pages =
      static_cast<std::int64_t>(std::max<std::size_t>(1, (item_count + page_size - 1) / page_size));
  if (index < 0 || index >= total_pages) return std::nullopt;
  PageWindow w;
  w.total_pages = total_pages;
  w.begin = static_cast<std::size_t>(index) * page_size;
  w.end = std::min(item_count, w.begin + page_size);
  w.has_next = index + 1 < total_pages;
  return w;
}

Location::Location(std::string uid_in, std::uint64_t seed_in, std::size_t history_limit)
    : uid(std::move(uid_in)), seed(seed_in), history_limit_(std::max<std::size_t>(1, history_limit)) {
  BumpVersion();  // Version 1 is the initial data set.
}

// ---------------------------------------------------------------- assets

namespace {
std::string AssetKey(std::string_view adam_id, std::string_view pricing) {
  std::string k;
  k.reserve(adam_id.size() + pricing.size() + 1);
  k.append(adam_id).push_back('\n');
  k.append(pricing);
  return k;
}
}  // namespace

Result<std::uint32_t> Location::AddAsset(Asset asset) {
  std::string key = AssetKey(asset.adam_id, asset.pricing_param);
  if (asset_index_.count(key))
    return Fail(Error::AlreadyExists("asset " + asset.adam_id + "/" + asset.pricing_param + " already exists"));
  const auto idx = static_cast<std::uint32_t>(assets_.size());
  asset.assigned_count = 0;
  asset.json_prefix = "{\"adamId\":";
  AppendJsonString(asset.json_prefix, asset.adam_id);
  asset.json_prefix += ",\"pricingParam\":";
  AppendJsonString(asset.json_prefix, asset.pricing_param);
  assets_.push_back(std::move(asset));
  asset_index_.emplace(std::move(key), idx);
  return idx;
}

std::optional<std::uint32_t> Location::FindAsset(std::string_view adam_id,
                                                 std::optional<std::string_view> pricing_param) const {
  if (pricing_param) {
    auto it = asset_index_.find(AssetKey(adam_id, *pricing_param));
    if (it == asset_index_.end()) return std::nullopt;
    return it->second;
  }
  // Apple's examples send assets with only an adamId: pick STDQ, else PLUS.
  for (const char* p : {"STDQ", "PLUS"}) {
    auto it = asset_index_.find(AssetKey(adam_id, p));
    if (it != asset_index_.end()) return it->second;
  }
  return std::nullopt;
}

Status Location::ChangeTotal(std::uint32_t asset_idx, std::int64_t delta) {
  Asset& a = assets_.at(asset_idx);
  if (a.unlimited) return Fail(Error::FailedPrecondition("asset " + a.adam_id + " is unlimited"));
  if (a.total_count + delta < a.assigned_count)
    return Fail(Error::FailedPrecondition("refund would leave fewer licenses than assigned (" +
                                          std::to_string(a.assigned_count) + ")"));
  if (a.total_count + delta > kUnlimitedCount - 1)
    return Fail(Error::InvalidArgument("totalCount would exceed 2147483646"));
  a.total_count += delta;
  BumpVersion();
  return {};
}

// ---------------------------------------------------------------- users, devices

std::optional<std::uint32_t> Location::FindUser(std::string_view client_user_id) const {
  auto it = user_index_.find(std::string(client_user_id));
  if (it == user_index_.end()) return std::nullopt;
  return it->second;
}

std::uint32_t Location::PutUser(User user) {
  user.version = next_stamp();
  auto it = user_index_.find(user.client_user_id);
  if (it != user_index_.end()) {
    users_[it->second] = std::move(user);
    return it->second;
  }
  const auto idx = static_cast<std::uint32_t>(users_.size());
  user_index_.emplace(user.client_user_id, idx);
  users_.push_back(std::move(user));
  return idx;
}

std::uint32_t Location::InternSerial(std::string_view serial) {
  std::string key(serial);
  auto it = serial_index_.find(key);
  if (it != serial_index_.end()) return it->second;
  const auto idx = static_cast<std::uint32_t>(serials_.size());
  serials_.push_back(key);
  serial_index_.emplace(std::move(key), idx);
  return idx;
}

std::optional<std::uint32_t> Location::FindSerial(std::string_view serial) const {
  auto it = serial_index_.find(std::string(serial));
  if (it == serial_index_.end()) return std::nullopt;
  return it->second;
}

// ---------------------------------------------------------------- assignments

bool Location::Assign(std::uint32_t asset, SubjectKind kind, std::uint32_t subject) {
  const std::uint64_t key = PairKey(asset, kind, subject);
  if (assignment_pos_.count(key)) return false;
  assignment_pos_.emplace(key, static_cast<std::uint32_t>(assignments_.size()));
  assignments_.push_back({asset, subject, next_stamp(), kind});
  ++assets_[asset].assigned_count;
  return true;
}

bool Location::Unassign(std::uint32_t asset, SubjectKind kind, std::uint32_t subject) {
  auto it = assignment_pos_.find(PairKey(asset, kind, subject));
  if (it == assignment_pos_.end()) return false;
  RemoveAt(it->second);
  return true;
}

bool Location::IsAssigned(std::uint32_t asset, SubjectKind kind, std::uint32_t subject) const {
  return assignment_pos_.count(PairKey(asset, kind, subject)) != 0;
}

// Swap-with-last removal keeps the vector dense (O(1)); the order of the moved
// record changes, which is fine because every removal is a write that moves
// versionId, and clients restart a walk when versionId moves.
void Location::RemoveAt(std::size_t pos) {
  const Assignment gone = assignments_[pos];
  --assets_[gone.asset].assigned_count;
  assignment_pos_.erase(PairKey(gone.asset, gone.kind, gone.subject));
  if (pos + 1 != assignments_.size()) {
    const Assignment& last = assignments_.back();
    assignment_pos_[PairKey(last.asset, last.kind, last.subject)] = static_cast<std::uint32_t>(pos);
    assignments_[pos] = last;
  }
  assignments_.pop_back();
}

void Location::TouchOneAssignment() {
  if (assignments_.empty()) return;
  // Deterministic choice: cycles through the store as versions advance.
  assignments_[version_ % assignments_.size()].version = next_stamp();
}

std::shared_ptr<const std::vector<std::uint32_t>> Location::Select(const AssignmentFilter& f) const {
  std::string key;
  key += f.adam_id ? "a" + *f.adam_id : "-";
  key += '\n';
  key += f.pricing_param ? "p" + *f.pricing_param : "-";
  key += '\n';
  key += f.client_user_id ? "u" + *f.client_user_id : "-";
  key += '\n';
  key += f.serial_number ? "s" + *f.serial_number : "-";
  key += '\n';
  key += f.since_version ? std::to_string(*f.since_version) : "-";
  key += f.exclude_inactive_users ? "x" : "-";
  {
    std::lock_guard lock(views_mu_);
    for (const auto& [k, v] : views_)
      if (k == key) return v;
  }

  // Resolve the named things once; a name that does not exist matches nothing.
  std::optional<std::uint32_t> user, serial;
  bool none = false;
  if (f.client_user_id) {
    user = FindUser(*f.client_user_id);
    none |= !user;
  }
  if (f.serial_number) {
    serial = FindSerial(*f.serial_number);
    none |= !serial;
  }
  auto out = std::make_shared<std::vector<std::uint32_t>>();
  if (!none) {
    for (std::size_t i = 0; i < assignments_.size(); ++i) {
      const Assignment& a = assignments_[i];
      const Asset& asset = assets_[a.asset];
      if (f.adam_id && asset.adam_id != *f.adam_id) continue;
      if (f.pricing_param && asset.pricing_param != *f.pricing_param) continue;
      if (user && (a.kind != SubjectKind::kUser || a.subject != *user)) continue;
      if (serial && (a.kind != SubjectKind::kDevice || a.subject != *serial)) continue;
      if (f.since_version && a.version <= *f.since_version) continue;
      if (f.exclude_inactive_users && a.kind == SubjectKind::kUser &&
          users_[a.subject].status != UserStatus::kAssociated)
        continue;
      out->push_back(static_cast<std::uint32_t>(i));
    }
  }
  std::lock_guard lock(views_mu_);
  // A handful of views covers concurrent walks; drop the oldest beyond that.
  constexpr std::size_t kMaxViews = 16;
  if (views_.size() >= kMaxViews) views_.erase(views_.begin());
  views_.emplace_back(std::move(key), out);
  return out;
}

void Location::InvalidateViews() {
  std::lock_guard lock(views_mu_);
  views_.clear();
}

// ---------------------------------------------------------------- versions

void Location::BumpVersion() {
  ++version_;
  version_id_ = GuidFrom(seed ^ 0x76657273696f6eULL, version_);
  version_ids_.emplace(version_id_, version_);
  version_order_.push_back(version_id_);
  while (version_order_.size() > history_limit_) {
    version_ids_.erase(version_order_.front());
    version_order_.pop_front();
  }
  InvalidateViews();
}

std::optional<std::uint32_t> Location::ResolveVersionId(std::string_view id) const {
  auto it = version_ids_.find(std::string(id));
  if (it == version_ids_.end()) return std::nullopt;
  return it->second;
}

// ---------------------------------------------------------------- events

const Event& Location::AddEvent(Event event) {
  ++event_counter_;
  event.id = GuidFrom(seed ^ 0x6576656e74ULL, event_counter_);
  event.status = EventStatus::kPending;
  pending_.push_back(event.id);
  event_order_.push_back(event.id);
  auto [it, inserted] = events_.emplace(event.id, std::move(event));
  (void)inserted;
  // Forget the oldest resolved events beyond the cap; pending ones are kept.
  while (event_order_.size() > kMaxEventsPerLocation) {
    auto old = events_.find(event_order_.front());
    if (old != events_.end() && old->second.status == EventStatus::kPending) break;
    if (old != events_.end()) events_.erase(old);
    event_order_.pop_front();
  }
  return it->second;
}

const Event* Location::FindEvent(std::string_view id) const {
  auto it = events_.find(id);
  return it == events_.end() ? nullptr : &it->second;
}

Event* Location::MutableEvent(std::string_view id) {
  auto it = events_.find(id);
  return it == events_.end() ? nullptr : &it->second;
}

std::optional<Timestamp> Location::NextDue() const {
  std::optional<Timestamp> next;
  for (const std::string& id : pending_) {
    auto it = events_.find(id);
    if (it == events_.end() || it->second.held) continue;
    if (!next || it->second.due < *next) next = it->second.due;
  }
  return next;
}

std::vector<std::string> Location::ResolvePending(Timestamp now, bool include_held) {
  std::vector<std::string> resolved;
  std::deque<std::string> still;
  for (std::string& id : pending_) {
    auto it = events_.find(id);
    if (it == events_.end()) continue;
    if (!include_held && (it->second.held || it->second.due > now)) {
      still.push_back(std::move(id));
      continue;
    }
    Resolve(it->second);
    resolved.push_back(std::move(id));
  }
  pending_ = std::move(still);
  return resolved;
}

std::vector<std::string> Location::ResolveDue(Timestamp now) {
  if (pending_.empty()) return {};
  return ResolvePending(now, false);
}

std::vector<std::string> Location::ResolveAll() { return ResolvePending(0, true); }

bool Location::ResolveEvent(std::string_view id) {
  auto pos = std::find(pending_.begin(), pending_.end(), id);
  if (pos == pending_.end()) return false;
  pending_.erase(pos);
  auto it = events_.find(id);
  if (it == events_.end()) return false;
  Resolve(it->second);
  return true;
}

bool ForcedFailure::Covers(std::string_view client_user_id, std::string_view serial_number) const {
  if (serial_numbers.empty() && client_user_ids.empty()) return true;
  if (!serial_number.empty())
    return std::find(serial_numbers.begin(), serial_numbers.end(), serial_number) != serial_numbers.end();
  return std::find(client_user_ids.begin(), client_user_ids.end(), client_user_id) != client_user_ids.end();
}

namespace {

// Failures of one event grouped by error number, each an ErrorResponse whose
// errorInfo lists the assets, clientUserIds and serialNumbers concerned (the
// shape of Apple's FAILED example: one 9609 naming "client-4"). Groups are in
// ascending error number; within a group, names keep request order (Apple does
// not say; request order lets a client match them to its request).
class FailureSet {
 public:
  void Add(int number, const Asset* asset, std::string_view user, std::string_view serial) {
    Group& g = groups_[number];
    if (asset) AddOnce(g.assets, std::pair<std::string, std::string>(asset->adam_id, asset->pricing_param));
    if (!user.empty()) AddOnce(g.users, std::string(user));
    if (!serial.empty()) AddOnce(g.serials, std::string(serial));
  }
  bool empty() const { return groups_.empty(); }
  std::string Json() const {
    JsonWriter w;
    w.BeginArray();
    for (const auto& [number, g] : groups_) {
      JsonWriter info;
      info.BeginObject();
      if (!g.assets.empty()) {
        info.Key("assets");
        info.BeginArray();
        for (const auto& [adam, pricing] : g.assets) {
          info.BeginObject();
          info.Field("adamId", adam);
          info.Field("pricingParam", pricing);
          info.EndObject();
        }
        info.EndArray();
      }
      if (!g.users.empty()) {
        info.Key("clientUserIds");
        info.BeginArray();
        for (const auto& u : g.users) info.String(u);
        info.EndArray();
      }
      if (!g.serials.empty()) {
        info.Key("serialNumbers");
        info.BeginArray();
        for (const auto& s : g.serials) info.String(s);
        info.EndArray();
      }
      info.EndObject();
      w.Raw(ErrorResponseJson({number, {}, std::move(info).Take()}));
    }
    w.EndArray();
    return std::move(w).Take();
  }

 private:
  template <class T>
  struct Ordered {  // Insertion order, no duplicates.
    std::vector<T> items;
    std::set<T> seen;
    bool empty() const { return items.empty(); }
    typename std::vector<T>::const_iterator begin() const { return items.begin(); }
    typename std::vector<T>::const_iterator end() const { return items.end(); }
  };
  template <class T>
  static void AddOnce(Ordered<T>& o, T value) {
    if (o.seen.insert(value).second) o.items.push_back(std::move(value));
  }
  struct Group {
    Ordered<std::pair<std::string, std::string>> assets;
    Ordered<std::string> users;
    Ordered<std::string> serials;
  };
  std::map<int, Group> groups_;
};

// A user that can hold licenses: known and not retired.
bool Usable(const std::optional<std::uint32_t>& idx, const std::vector<User>& users) {
  return idx && users[*idx].status != UserStatus::kRetired;
}

}  // namespace

void Location::Resolve(Event& e) {
  FailureSet failures;
  std::int64_t requested = 0, completed = 0;
  bool changed = false;
  e.outcomes.clear();
  // The error number a fault rule forces on this subject, or 0.
  auto forced = [&e](std::string_view user, std::string_view serial) {
    for (const ForcedFailure& f : e.forced_failures)
      if (f.Covers(user, serial)) return f.error_number;
    return 0;
  };
  auto outcome = [&e](std::uint32_t asset, std::string_view user, std::string_view serial, int error) {
    e.outcomes.push_back({asset, std::string(user), std::string(serial), error});
  };

  switch (e.type) {
    case EventType::kAssociate:
    case EventType::kDisassociate: {
      const bool associate = e.type == EventType::kAssociate;
      for (std::uint32_t asset_idx : e.assets) {
        const Asset& asset = assets_[asset_idx];
        // One subject: its failure number, or 0 once done.
        auto apply = [&](SubjectKind kind, std::uint32_t subject) -> int {
          if (!associate) {
            changed |= Unassign(asset_idx, kind, subject);
            return 0;  // Disassociating an unassigned pair is a no-op.
          }
          if (IsAssigned(asset_idx, kind, subject)) return 0;  // Already holds a license.
          if (asset.AvailableCount() <= 0) return kErrNotEnoughLicenses;
          changed |= Assign(asset_idx, kind, subject);
          return 0;
        };
        for (const std::string& cu : e.client_user_ids) {
          ++requested;
          int error = forced(cu, {});
          if (!error) {
            auto user = FindUser(cu);
            error = Usable(user, users_) ? apply(SubjectKind::kUser, *user) : kErrUserNotFound;
          }
          if (error) failures.Add(error, error == kErrUserNotFound ? nullptr : &asset, cu, {});
          completed += error == 0;
          outcome(asset_idx, cu, {}, error);
        }
        for (const std::string& sn : e.serial_numbers) {
          ++requested;
          int error = forced({}, sn);
          if (!error) error = apply(SubjectKind::kDevice, InternSerial(sn));
          if (error) failures.Add(error, &asset, {}, sn);
          completed += error == 0;
          outcome(asset_idx, {}, sn, error);
        }
      }
      break;
    }
    case EventType::kRevoke: {
      // Strip every revocable asset from the named users and devices in one pass.
      std::set<std::uint32_t> users, serials;
      for (const std::string& cu : e.client_user_ids) {
        ++requested;
        int error = forced(cu, {});
        auto user = FindUser(cu);
        if (!error && !Usable(user, users_)) error = kErrUserNotFound;
        if (error) {
          failures.Add(error, nullptr, cu, {});
          outcome(EventOutcome::kNoAsset, cu, {}, error);
          continue;
        }
        users.insert(*user);
        ++completed;
      }
      for (const std::string& sn : e.serial_numbers) {
        ++requested;
        if (int error = forced({}, sn)) {
          failures.Add(error, nullptr, {}, sn);
          outcome(EventOutcome::kNoAsset, {}, sn, error);
          continue;
        }
        if (auto s = FindSerial(sn)) serials.insert(*s);
        ++completed;
      }
      for (std::size_t i = assignments_.size(); i-- > 0;) {
        const Assignment a = assignments_[i];
        if (!assets_[a.asset].revocable) continue;
        const bool user = a.kind == SubjectKind::kUser;
        if ((user ? users : serials).count(a.subject)) {
          outcome(a.asset, user ? std::string_view(users_[a.subject].client_user_id) : std::string_view(),
                  user ? std::string_view() : std::string_view(serials_[a.subject]), 0);
          RemoveAt(i);
          changed = true;
        }
      }
      break;
    }
    case EventType::kCreate:
    case EventType::kUpdate:
    case EventType::kRetire: {
      for (const UserSpec& spec : e.users) {
        ++requested;
        auto idx = FindUser(spec.client_user_id);
        int error = forced(spec.client_user_id, {});
        if (!error && e.type == EventType::kCreate && Usable(idx, users_)) error = kErrUserExists;
        if (!error && e.type != EventType::kCreate && !Usable(idx, users_)) error = kErrUserNotFound;
        outcome(EventOutcome::kNoAsset, spec.client_user_id, {}, error);
        if (error) {
          failures.Add(error, nullptr, spec.client_user_id, {});
          continue;
        }
        if (e.type == EventType::kCreate) {
          User u;
          u.client_user_id = spec.client_user_id;
          u.email = spec.email.value_or("");
          u.managed_apple_id = spec.managed_apple_id.value_or("");
          u.status = UserStatus::kRegistered;
          // Invite codes are 32 hex characters in Apple's examples.
          const std::string g = GuidFrom(seed ^ 0x696e76ULL, HashString(u.client_user_id) ^ version_);
          for (char c : g)
            if (c != '-') u.invite_code.push_back(c);
          PutUser(std::move(u));
        } else if (e.type == EventType::kUpdate) {
          User& u = users_[*idx];
          if (spec.email) u.email = *spec.email;
          if (spec.managed_apple_id) u.managed_apple_id = *spec.managed_apple_id;
          u.version = next_stamp();
        } else {
          User& u = users_[*idx];
          u.status = UserStatus::kRetired;
          u.invite_code.clear();
          u.version = next_stamp();
          // Retiring a user releases its revocable licenses (books stay bound).
          for (std::size_t i = assignments_.size(); i-- > 0;) {
            const Assignment& a = assignments_[i];
            if (a.kind == SubjectKind::kUser && a.subject == *idx && assets_[a.asset].revocable) RemoveAt(i);
          }
        }
        changed = true;
        ++completed;
      }
      break;
    }
  }

  e.num_requested = requested;
  e.num_completed = completed;
  e.status = failures.empty() ? EventStatus::kComplete : EventStatus::kFailed;
  e.failures_json = failures.Json();
  if (changed) BumpVersion();
}

}  // namespace vppd::sim
