// Managed eBooks (service::ManagedEBooks, see service.h): the books that syncs
// found, their assignments (kept as app assignments with user licensing, so the
// reconcile job serves them as it serves apps), and where their user licences stand.
//
// Layout: 1. names and messages  2. validation  3. the resource  4. licence states.
#include <algorithm>
#include <map>
#include <set>
#include <string_view>

#include <fmt/format.h>

#include "service/assignment_targets.h"
#include "service/service.h"

namespace vppd::service {

store::Expr OfProductType(std::string_view product_type, const std::optional<store::Expr>& filter) {
  store::Expr is_type = store::Expr::Apply(
      store::Op::kEq, {store::Expr::Of(store::Column::kAppProductType), store::Expr::Value(std::string(product_type))});
  if (!filter) return is_type;
  return store::Expr::Apply(store::Op::kAnd, {std::move(is_type), *filter});
}

namespace {

using namespace assignment_targets;

// --- 1. names and messages ------------------------------------------------------------

constexpr std::string_view kBookTargets[] = {kGroupTarget, kExclusionTarget, kAllUsersTarget};

// Most ids one `in` filter names when the user licences' users and devices are read.
constexpr std::size_t kIdsPerRead = 200;

Error BookNotFound(const std::string& id) {
  return Error::NotFound("The managedEBook '" + id + "' was not found.", id);
}

Error AssignmentNotFound(const std::string& book_id, const std::string& id) {
  return Error::NotFound(
      fmt::format("The managedEBookAssignment '{}' of managedEBook '{}' was not found.", id, book_id), id);
}

std::string TargetKey(const store::AppAssignment& a) {
  if (IsGroupTarget(a.target_type)) return "group " + a.group_id.value_or("");
  return std::string(Short(a.target_type));
}

std::string DescribeTarget(const store::AppAssignment& a) {
  if (IsGroupTarget(a.target_type)) return fmt::format("the group '{}'", a.group_id.value_or(""));
  return "all licensed users";
}

Status CheckOneTargetEach(const std::vector<store::AppAssignment>& existing, const store::AppAssignment& built,
                          const std::string& book_id) {
  for (const store::AppAssignment& other : existing) {
    if (other.id != built.id && TargetKey(other) == TargetKey(built)) {
      return Fail(Invalid("", "target",
                          fmt::format("The managedEBook '{}' is already assigned to {} (managedEBookAssignment '{}').",
                                      book_id, DescribeTarget(other), other.id)));
    }
  }
  return {};
}

// `ids` as a store filter `column in (ids)`.
store::Expr AnyOf(store::Column column, std::span<const std::string> ids) {
  std::vector<store::Expr> children = {store::Expr::Of(column)};
  for (const std::string& id : ids) children.push_back(store::Expr::Value(id));
  return store::Expr::Apply(store::Op::kIn, std::move(children));
}

}  // namespace

// --- 2. validation ----------------------------------------------------------------------

Result<store::AppAssignment> ManagedEBooks::Build(const std::string& tenant_id, const store::MobileApp& book,
                                                  const store::AppAssignment& base,
                                                  const EBookAssignmentChanges& changes, const std::string& where) {
  store::AppAssignment out = base;
  out.app_id = book.id;
  // Apple licenses a book to a user's Apple Account, never to a device's serial number.
  if (changes.use_device_licensing.value_or(false)) {
    return Fail(Invalid(where, "settings.useDeviceLicensing",
                        fmt::format("The managedEBook '{}' cannot be licensed to devices: Apple assigns books to "
                                    "users only, so an iosVppEBookAssignment has no device licensing.",
                                    book.id)));
  }
  if (changes.install_intent) out.intent = *changes.install_intent;
  if (out.intent.empty()) return Fail(Invalid(where, "installIntent", "The property 'installIntent' is required."));
  if (std::find(std::begin(kIntents), std::end(kIntents), out.intent) == std::end(kIntents)) {
    return Fail(Invalid(where, "installIntent",
                        fmt::format("The installIntent '{}' is not an installIntent; it must be one of: required, "
                                    "available, uninstall, availableWithoutEnrollment.",
                                    out.intent)));
  }
  if (changes.target) {
    if (Qualified(changes.target->type) == kAllDevicesTarget) {
      return Fail(Invalid(where, "target",
                          fmt::format("A managedEBook cannot be assigned to {}: Apple licenses books to users "
                                      "only; target users with one of {}.",
                                      Short(kAllDevicesTarget), Join(kBookTargets, true))));
    }
    if (Status s = ApplyTarget(store_, tenant_id, *changes.target, kBookTargets, where, out); !s) {
      return Fail(s.error());
    }
  }
  if (out.target_type.empty()) return Fail(Invalid(where, "target", "The property 'target' is required."));
  out.settings_json = "{}";
  out.use_device_licensing = false;  // user licences: the reconcile job's user licensing serves it
  return out;
}

// --- 3. the resource ----------------------------------------------------------------------

ManagedEBooks::ManagedEBooks(store::Store& store, Options options, ReconcileTrigger* trigger)
    : store_(store), options_(std::move(options)), gate_(store, options_), trigger_(trigger) {}

Result<store::MobileApp> ManagedEBooks::FindBook(const std::string& tenant_id, const std::string& id) {
  auto book = store_.GetApp(tenant_id, id);
  if ((!book && book.error().code == Code::kNotFound) || (book && book->product_type != kProductBook)) {
    return Fail(BookNotFound(id));
  }
  return book;
}

void ManagedEBooks::Changed(const std::string& tenant_id, const store::MobileApp& book) {
  if (trigger_ != nullptr) trigger_->TokenNeedsReconcile(tenant_id, book.token_id);
}

Result<store::Page<store::MobileApp>> ManagedEBooks::List(const Principal& caller, const store::ListQuery& query) {
  if (auto ok = gate_.Admit(caller, Operation::kReadManagedEBooks); !ok) return Fail(ok.error());
  store::ListQuery books_only = query;
  books_only.filter = OfProductType(kProductBook, query.filter);
  return store_.ListApps(caller.tenant_id, books_only);
}

Result<std::int64_t> ManagedEBooks::Count(const Principal& caller, const std::optional<store::Expr>& filter) {
  if (auto ok = gate_.Admit(caller, Operation::kReadManagedEBooks); !ok) return Fail(ok.error());
  return store_.CountApps(caller.tenant_id, OfProductType(kProductBook, filter));
}

Result<store::MobileApp> ManagedEBooks::Get(const Principal& caller, const std::string& id) {
  if (auto ok = gate_.Admit(caller, Operation::kReadManagedEBooks); !ok) return Fail(ok.error());
  return FindBook(caller.tenant_id, id);
}

Result<store::Store::UntrackedPage> ManagedEBooks::UntrackedLicenses(const Principal& caller,
                                                                     const std::string& book_id, std::int64_t cursor,
                                                                     std::int64_t limit) {
  if (auto book = Get(caller, book_id); !book) return Fail(book.error());
  return store_.ListUntrackedLicenses(caller.tenant_id, book_id, cursor, limit);
}

Result<std::map<std::string, std::int64_t>> ManagedEBooks::UntrackedCounts(const Principal& caller,
                                                                           const std::vector<std::string>& book_ids) {
  if (auto ok = gate_.Admit(caller, Operation::kReadManagedEBooks); !ok) return Fail(ok.error());
  return store_.CountUntrackedLicenses(caller.tenant_id, book_ids);
}

Result<std::vector<store::AppAssignment>> ManagedEBooks::ListAssignments(const Principal& caller,
                                                                         const std::string& book_id) {
  if (auto ok = gate_.Admit(caller, Operation::kReadManagedEBooks); !ok) return Fail(ok.error());
  if (auto book = FindBook(caller.tenant_id, book_id); !book) return Fail(book.error());
  auto list = store_.ListAssignmentsOfApp(caller.tenant_id, book_id);
  if (!list && list.error().code == Code::kNotFound) return Fail(BookNotFound(book_id));
  return list;
}

Result<std::vector<store::AppAssignment>> ManagedEBooks::AssignmentsOf(const Principal& caller,
                                                                       const std::vector<std::string>& book_ids) {
  if (auto ok = gate_.Admit(caller, Operation::kReadManagedEBooks); !ok) return Fail(ok.error());
  return store_.ListAssignmentsOfApps(caller.tenant_id, book_ids);
}

Result<store::AppAssignment> ManagedEBooks::GetAssignment(const Principal& caller, const std::string& book_id,
                                                          const std::string& id) {
  if (auto ok = gate_.Admit(caller, Operation::kReadManagedEBooks); !ok) return Fail(ok.error());
  if (auto book = FindBook(caller.tenant_id, book_id); !book) return Fail(book.error());
  auto got = store_.GetAppAssignment(caller.tenant_id, book_id, id);
  if (!got && got.error().code == Code::kNotFound) return Fail(AssignmentNotFound(book_id, id));
  return got;
}

Result<store::AppAssignment> ManagedEBooks::CreateAssignment(const Principal& caller, const std::string& book_id,
                                                             const EBookAssignmentChanges& changes) {
  if (auto ok = gate_.Admit(caller, Operation::kWriteManagedEBookAssignments); !ok) return Fail(ok.error());
  auto book = FindBook(caller.tenant_id, book_id);
  if (!book) return Fail(book.error());
  auto built = Build(caller.tenant_id, *book, store::AppAssignment{}, changes, "");
  if (!built) return Fail(built.error());
  auto existing = store_.ListAssignmentsOfApp(caller.tenant_id, book_id);
  if (!existing) return Fail(existing.error());
  if (Status s = CheckOneTargetEach(*existing, *built, book_id); !s) return Fail(s.error());
  auto created = store_.CreateAppAssignment(caller.tenant_id, *built);
  if (!created && created.error().code == Code::kNotFound) return Fail(BookNotFound(book_id));
  if (created) Changed(caller.tenant_id, *book);
  return created;
}

Result<store::AppAssignment> ManagedEBooks::UpdateAssignment(const Principal& caller, const std::string& book_id,
                                                             const std::string& id,
                                                             const EBookAssignmentChanges& changes) {
  if (auto ok = gate_.Admit(caller, Operation::kWriteManagedEBookAssignments); !ok) return Fail(ok.error());
  auto book = FindBook(caller.tenant_id, book_id);
  if (!book) return Fail(book.error());
  auto existing = store_.ListAssignmentsOfApp(caller.tenant_id, book_id);
  if (!existing) return Fail(existing.error());
  auto stored = std::find_if(existing->begin(), existing->end(), [&](const auto& a) { return a.id == id; });
  if (stored == existing->end()) return Fail(AssignmentNotFound(book_id, id));
  auto built = Build(caller.tenant_id, *book, *stored, changes, "");
  if (!built) return Fail(built.error());
  if (Status s = CheckOneTargetEach(*existing, *built, book_id); !s) return Fail(s.error());
  auto updated = store_.UpdateAppAssignment(caller.tenant_id, book_id, id, [&](store::AppAssignment& a) -> Status {
    a.intent = built->intent;
    a.target_type = built->target_type;
    a.group_id = built->group_id;
    a.settings_json = built->settings_json;
    a.use_device_licensing = false;
    return {};
  });
  if (!updated && updated.error().code == Code::kNotFound) return Fail(AssignmentNotFound(book_id, id));
  if (updated) Changed(caller.tenant_id, *book);
  return updated;
}

Status ManagedEBooks::DeleteAssignment(const Principal& caller, const std::string& book_id, const std::string& id) {
  if (auto ok = gate_.Admit(caller, Operation::kWriteManagedEBookAssignments); !ok) return ok;
  auto book = FindBook(caller.tenant_id, book_id);
  if (!book) return Fail(book.error());
  Status deleted = store_.DeleteAppAssignment(caller.tenant_id, book_id, id);
  if (!deleted && deleted.error().code == Code::kNotFound) return Fail(AssignmentNotFound(book_id, id));
  if (deleted) Changed(caller.tenant_id, *book);
  return deleted;
}

Status ManagedEBooks::Assign(const Principal& caller, const std::string& book_id,
                             const std::vector<EBookAssignmentChanges>& list) {
  if (auto ok = gate_.Admit(caller, Operation::kAssignManagedEBook); !ok) return ok;
  auto book = FindBook(caller.tenant_id, book_id);
  if (!book) return Fail(book.error());
  std::vector<store::AppAssignment> rows;
  std::set<std::string> targets;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string where = fmt::format("managedEBookAssignments[{}].", i);
    auto built = Build(caller.tenant_id, *book, store::AppAssignment{}, list[i], where);
    if (!built) return Fail(built.error());
    if (!targets.insert(TargetKey(*built)).second) {
      return Fail(Invalid(where, "target",
                          fmt::format("The managedEBookAssignments list names {} twice; a book has one assignment "
                                      "per target.",
                                      DescribeTarget(*built))));
    }
    rows.push_back(std::move(*built));
  }
  auto replaced = store_.ReplaceAppAssignments(caller.tenant_id, book_id, std::move(rows));
  if (!replaced) {
    if (replaced.error().code == Code::kNotFound) return Fail(BookNotFound(book_id));
    return Fail(replaced.error());
  }
  Changed(caller.tenant_id, *book);
  return {};
}

// --- 4. licence states ------------------------------------------------------------------

Result<std::vector<EBookUserState>> ManagedEBooks::UserStates(const Principal& caller, const std::string& book_id) {
  if (auto ok = gate_.Admit(caller, Operation::kReadManagedEBooks); !ok) return Fail(ok.error());
  if (auto book = FindBook(caller.tenant_id, book_id); !book) return Fail(book.error());
  // The book's user licences at Apple (the last sync's), by clientUserId.
  std::set<std::string> holders;
  constexpr std::int64_t kBatch = 10000;
  for (std::int64_t skip = 0;; skip += kBatch) {
    auto page = store_.ListAppAssignments(caller.tenant_id, book_id, skip, kBatch);
    if (!page) return Fail(page.error());
    for (const store::LicenseAssignment& l : page->items) {
      if (!l.client_user_id.empty()) holders.insert(l.client_user_id);
    }
    if (!page->has_more) break;
  }
  std::map<std::string, EBookUserState> by_user;
  for (const std::string& id : holders) {
    EBookUserState& s = by_user[id];
    s.user_id = id;
    s.user_name = id;
  }
  // Their names and devices, a chunk of users per read.
  const std::vector<std::string> ids(holders.begin(), holders.end());
  for (std::size_t from = 0; from < ids.size(); from += kIdsPerRead) {
    const std::span<const std::string> chunk(ids.data() + from, std::min(kIdsPerRead, ids.size() - from));
    store::ListQuery users;
    users.filter = AnyOf(store::Column::kUserId, chunk);
    users.limit = static_cast<std::int64_t>(chunk.size());
    auto found = store_.ListUsers(caller.tenant_id, users);
    if (!found) return Fail(found.error());
    for (const store::User& u : found->items) by_user[u.id].user_name = u.user_principal_name;
    store::ListQuery devices;
    devices.filter = AnyOf(store::Column::kManagedDeviceUserId, chunk);
    devices.limit = 1000;
    for (;;) {
      auto page = store_.ListManagedDevices(caller.tenant_id, devices);
      if (!page) return Fail(page.error());
      for (const store::ManagedDevice& d : page->items) {
        if (d.user_id) ++by_user[*d.user_id].installed_devices;
      }
      if (!page->has_more) break;
      devices.skip += devices.limit;
    }
  }
  std::vector<EBookUserState> out;
  for (auto& [id, s] : by_user) out.push_back(std::move(s));
  return out;
}

Result<std::vector<EBookDeviceState>> ManagedEBooks::DeviceStates(const Principal& caller, const std::string& book_id,
                                                                  const std::optional<std::string>& user_id) {
  auto users = UserStates(caller, book_id);
  if (!users) return Fail(users.error());
  auto book = FindBook(caller.tenant_id, book_id);
  if (!book) return Fail(book.error());
  std::vector<std::string> ids;
  std::map<std::string, std::string> names;
  for (const EBookUserState& u : *users) {
    if (user_id && u.user_id != *user_id) continue;
    ids.push_back(u.user_id);
    names[u.user_id] = u.user_name;
  }
  if (user_id && ids.empty()) {
    return Fail(Error::NotFound(
        fmt::format("The userInstallStateSummary '{}' of managedEBook '{}' was not found.", *user_id, book_id),
        *user_id));
  }
  std::vector<EBookDeviceState> out;
  for (std::size_t from = 0; from < ids.size(); from += kIdsPerRead) {
    const std::span<const std::string> chunk(ids.data() + from, std::min(kIdsPerRead, ids.size() - from));
    store::ListQuery devices;
    devices.filter = AnyOf(store::Column::kManagedDeviceUserId, chunk);
    devices.order_by = {{store::Column::kManagedDeviceUserId, false}};
    devices.limit = 1000;
    for (;;) {
      auto page = store_.ListManagedDevices(caller.tenant_id, devices);
      if (!page) return Fail(page.error());
      for (const store::ManagedDevice& d : page->items) {
        EBookDeviceState s;
        s.managed_device_id = d.id;
        s.device_name = d.device_name.value_or("");
        s.os_version = d.os_version.value_or("");
        s.os_description = d.operating_system.value_or("");
        s.user_id = d.user_id.value_or("");
        s.user_name = names[s.user_id];
        s.last_sync = book->last_modified;
        out.push_back(std::move(s));
      }
      if (!page->has_more) break;
      devices.skip += devices.limit;
    }
  }
  return out;
}

}  // namespace vppd::service
