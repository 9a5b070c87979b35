// AppAssignments' user licences (service.h): where each person an app's
// user-licensing assignments reach stands (userStatuses), who holds a user
// licence (assignedLicenses), and where a person stands with Apple
// (vppd's users/{id}/vppUserStatus).
#include <map>
#include <set>
#include <string_view>

#include <fmt/format.h>

#include "service/service.h"
#include "sync/sync.h"

namespace vppd::service {
namespace {

constexpr std::string_view kGroupTarget = "#microsoft.graph.groupAssignmentTarget";
constexpr std::string_view kExclusionTarget = "#microsoft.graph.exclusionGroupAssignmentTarget";
constexpr std::string_view kAllUsersTarget = "#microsoft.graph.allLicensedUsersAssignmentTarget";

Error UserNotFound(const std::string& id) {
  return Error::NotFound(
      fmt::format("Resource '{}' does not exist or one of its queried reference-property objects are not present.", id),
      id);
}

}  // namespace

Result<std::vector<UserInstallStatus>> AppAssignments::UserStatuses(const Principal& caller,
                                                                    const std::string& app_id) {
  if (auto ok = gate_.Admit(caller, Operation::kReadAppInstallStatuses); !ok) return Fail(ok.error());
  auto app = FindApp(caller.tenant_id, app_id);
  if (!app) return Fail(app.error());
  auto assignments = store_.ListAssignmentsOfApp(caller.tenant_id, app_id);
  if (!assignments) return Fail(assignments.error());
  // The people the reconcile job serves, in its order.
  sync::UserTargets targets;
  for (const store::AppAssignment& a : *assignments) {
    if (a.target_type == kExclusionTarget) {
      if (a.group_id) targets.exclude_groups.push_back(*a.group_id);
      continue;
    }
    if (a.use_device_licensing || (a.intent != "required" && a.intent != "available")) continue;
    if (a.target_type == kAllUsersTarget) targets.all_users = true;
    if (a.target_type == kGroupTarget && a.group_id) targets.include_groups.push_back(*a.group_id);
  }
  auto targeted = sync::UsersReached(store_, caller.tenant_id, targets);
  if (!targeted) return Fail(targeted.error());

  // Where each licence stands: the job's record, else Apple's at the last sync.
  auto states = store_.UserLicenseStates(caller.tenant_id, app_id);
  if (!states) return Fail(states.error());
  std::map<std::string, const store::UserLicenseState*> by_user;
  for (const store::UserLicenseState& s : *states) by_user[s.client_user_id] = &s;
  std::set<std::string> held;
  constexpr std::int64_t kBatch = 100000;
  for (std::int64_t skip = 0;; skip += kBatch) {
    auto page = store_.ListAppAssignments(caller.tenant_id, app_id, skip, kBatch);
    if (!page) return Fail(page.error());
    for (const store::LicenseAssignment& l : page->items) {
      if (!l.client_user_id.empty()) held.insert(l.client_user_id);
    }
    if (!page->has_more) break;
  }
  // A person waiting for Apple's invitation (or being registered) is pending.
  auto apple_users = store_.ListAppleUsers(caller.tenant_id, app->token_id);
  if (!apple_users) return Fail(apple_users.error());
  std::map<std::string, const store::AppleUser*> apple_by_id;
  for (const store::AppleUser& u : *apple_users) apple_by_id[u.client_user_id] = &u;

  std::vector<UserInstallStatus> out;
  for (const store::GroupUser& u : *targeted) {
    UserInstallStatus s;
    s.user_id = u.user_id;
    s.user_name = u.display_name;
    s.user_principal_name = u.user_principal_name;
    if (auto it = by_user.find(u.user_id); it != by_user.end()) {
      const std::string& state = it->second->state;
      s.install_state = state == "granted"   ? "installed"
                        : state == "failed"  ? "failed"
                        : state == "pending" ? "pendingInstall"
                                             : "installed";  // reclaimPending: still held
    } else if (held.contains(u.user_id)) {
      s.install_state = "installed";
    } else if (auto a = apple_by_id.find(u.user_id); a != apple_by_id.end()) {
      const std::string& status = a->second->status;
      if (status == "failed") s.install_state = "failed";
      if (status == "creating" || status == "Registered" || status == "Associated") s.install_state = "pendingInstall";
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::vector<UserLicenseHolder>> AppAssignments::UserLicenseHolders(
    const Principal& caller, const std::vector<std::string>& client_user_ids) {
  if (auto ok = gate_.Admit(caller, Operation::kReadMobileApps); !ok) return Fail(ok.error());
  std::vector<UserLicenseHolder> out;
  std::map<std::string, UserLicenseHolder> known;
  for (const std::string& id : client_user_ids) {
    if (id.empty() || known.contains(id)) continue;
    UserLicenseHolder h;
    auto user = store_.GetUser(caller.tenant_id, id);
    if (user) {
      h.user_principal_name = user->user_principal_name;
      h.user_name = user->display_name;
      h.email = user->mail && !user->mail->empty() ? *user->mail : user->user_principal_name;
    } else if (user.error().code != Code::kNotFound) {
      return Fail(user.error());
    }
    known.emplace(id, std::move(h));
  }
  for (const std::string& id : client_user_ids) {
    auto it = known.find(id);
    out.push_back(it == known.end() ? UserLicenseHolder{} : it->second);
  }
  return out;
}

Result<VppUserStatus> AppAssignments::UserVppStatus(const Principal& caller, const std::string& user_id) {
  if (auto ok = gate_.Admit(caller, Operation::kReadUsers); !ok) return Fail(ok.error());
  auto user = store_.GetUser(caller.tenant_id, user_id);
  if (!user) {
    if (user.error().code == Code::kNotFound) return Fail(UserNotFound(user_id));
    return Fail(user.error());
  }
  VppUserStatus status;
  status.user = std::move(*user);
  auto apple_users = store_.AppleUsersOfUser(caller.tenant_id, user_id);
  if (!apple_users) return Fail(apple_users.error());
  for (auto& [token_id, apple_user] : *apple_users) {
    VppUserStatus::Location where;
    where.token_id = token_id;
    auto rows = store_.ListUserLicenses(caller.tenant_id, token_id);
    if (!rows) return Fail(rows.error());
    for (store::UserLicense& r : *rows) {
      if (r.client_user_id == apple_user.client_user_id && r.state != "released") {
        where.licenses.push_back(std::move(r));
      }
    }
    where.apple_user = std::move(apple_user);
    status.locations.push_back(std::move(where));
  }
  return status;
}

}  // namespace vppd::service
