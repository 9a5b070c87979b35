// The people's part of a reconcile pass (reconcile_users.h): user licences.
//
// Layout: 1. who is wanted  2. Apple's users  3. decide per asset  4. send  5. the report.
//
// It mirrors the devices' part (reconcile.cc) with clientUserIds for serials:
// the same states, plan rules (PlanUserAsset), chunking, durable events and
// report. What is the people's own: a person holds a licence only once Apple's
// user for them is Associated (the invitation accepted), so the pass first makes
// Apple hold a user for every wanted person (ReconcileAppleUsers, apple_users.cc),
// and reports those still waiting, or refused, instead of failing them.
#include "sync/reconcile_users.h"

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>

#include "sync/sync.h"
#include "sync/sync_internal.h"

namespace vppd::sync {
namespace {

constexpr char kGroupTarget[] = "#microsoft.graph.groupAssignmentTarget";
constexpr char kExclusionTarget[] = "#microsoft.graph.exclusionGroupAssignmentTarget";
constexpr char kAllUsersTarget[] = "#microsoft.graph.allLicensedUsersAssignmentTarget";
// Reports name at most this many waiting or refused people (the counts are whole).
constexpr std::size_t kReportedPeople = 100;

using AssetKey = std::pair<std::string, std::string>;  // (adamId, pricingParam)

Timestamp Micros(std::chrono::milliseconds d) { return d.count() * 1000; }

bool Includes(const store::AppAssignment& a) {
  return (a.intent == "required" || a.intent == "available") && !a.use_device_licensing;
}

// What an asset's assignments ask of people.
struct AssetPeople {
  UserTargets reach;
  std::vector<std::string> uninstall_groups;
  bool uninstall_all = false;
  bool assigned = false;
  std::int64_t total = 0, used = 0;
};

std::set<std::string> Ids(const std::vector<store::GroupUser>& users) {
  std::set<std::string> out;
  for (const auto& u : users) out.insert(u.user_id);
  return out;
}

}  // namespace

Result<std::vector<store::GroupUser>> UsersReached(store::Store& store, const std::string& tenant_id,
                                                   const UserTargets& targets) {
  std::vector<store::GroupUser> reached;
  if (!targets.include_groups.empty()) {
    auto members = store.UserMembersOf(tenant_id, targets.include_groups);
    if (!members) return Fail(members.error());
    reached = std::move(*members);
  }
  if (targets.all_users) {
    auto every = store.AllUsers(tenant_id);
    if (!every) return Fail(every.error());
    for (auto& u : *every) reached.push_back(std::move(u));
    std::stable_sort(reached.begin(), reached.end(), [](const auto& a, const auto& b) {
      return std::tie(a.seq, a.user_id) < std::tie(b.seq, b.user_id);
    });
    // A user both in a group and reached by "all": once, at its first place.
    std::set<std::string> seen;
    std::erase_if(reached, [&](const store::GroupUser& u) { return !seen.insert(u.user_id).second; });
  }
  if (!targets.exclude_groups.empty()) {
    auto excluded = store.UserMembersOf(tenant_id, targets.exclude_groups);
    if (!excluded) return Fail(excluded.error());
    const std::set<std::string> out = Ids(*excluded);
    std::erase_if(reached, [&](const store::GroupUser& u) { return out.contains(u.user_id); });
  }
  return reached;
}

boost::json::object PeoplePass::Json() const {
  boost::json::object o;
  o["associated"] = associated;
  o["disassociated"] = disassociated;
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
  o["appleUsersCreated"] = apple_users_created;
  o["appleUsersRetired"] = apple_users_retired;
  o["waitingForInvitation"] = static_cast<std::int64_t>(waiting.size());
  o["refusedByApple"] = static_cast<std::int64_t>(refused.size());
  auto people = [](const std::vector<Person>& list) {
    boost::json::array out;
    for (std::size_t i = 0; i < list.size() && i < kReportedPeople; ++i) {
      boost::json::object p{{"clientUserId", list[i].client_user_id}, {"status", list[i].status}};
      if (!list[i].error_code.empty()) {
        p["errorCode"] = list[i].error_code;
        p["errorMessage"] = list[i].error_message;
      }
      out.push_back(std::move(p));
    }
    return out;
  };
  o["waiting"] = people(waiting);
  o["refused"] = people(refused);
  return o;
}

Result<bool> PeopleInScope(JobContext& ctx, const store::VppToken& token) {
  const std::string& tenant = ctx.job.tenant_id;
  auto assignments = ctx.store.ListAssignmentsOfToken(tenant, token.id);
  if (!assignments) return Fail(assignments.error());
  for (const auto& a : *assignments) {
    if (Includes(a)) return true;
  }
  auto rows = ctx.store.ListUserLicenses(tenant, token.id);
  if (!rows) return Fail(rows.error());
  if (!rows->empty()) return true;
  auto users = ctx.store.ListAppleUsers(tenant, token.id);
  if (!users) return Fail(users.error());
  return std::any_of(users->begin(), users->end(), [](const store::AppleUser& u) {
    return !u.user_id.empty() && u.status != "Retired" && u.status != "failed";
  });
}

Result<PeoplePass> ReconcilePeople(JobContext& ctx, const store::VppToken& token,
                                   const std::map<AssetKey, AssetPlan>& device_plans, bool force) {
  PeoplePass pass;
  // A token that is not valid (expired, another MDM's, a duplicate): nothing at Apple.
  if (token.state != "valid") return pass;
  const std::string& tenant = ctx.job.tenant_id;

  // 1. Who is wanted, per asset.
  auto assignments = ctx.store.ListAssignmentsOfToken(tenant, token.id);
  if (!assignments) return Fail(assignments.error());
  auto apps = TokenApps(ctx, token.id);
  if (!apps) return Fail(apps.error());
  std::map<AssetKey, AssetPeople> targets;
  for (const auto& [id, app] : *apps) {
    AssetPeople& t = targets[{app.adam_id, app.pricing_param}];
    t.total = app.total_licenses;
    t.used = app.used_licenses;
  }
  std::set<AssetKey> assets;  // assets some assignment or row concerns
  for (const store::AppAssignment& a : *assignments) {
    auto app = apps->find(a.app_id);
    if (app == apps->end()) continue;
    const AssetKey key{app->second.adam_id, app->second.pricing_param};
    AssetPeople& t = targets[key];
    if (a.target_type == kExclusionTarget && a.group_id) {
      t.reach.exclude_groups.push_back(*a.group_id);
    } else if (a.intent == "uninstall") {
      if (a.target_type == kAllUsersTarget) t.uninstall_all = true;
      if (a.target_type == kGroupTarget && a.group_id) t.uninstall_groups.push_back(*a.group_id);
    } else if (Includes(a)) {
      t.assigned = true;
      if (a.target_type == kGroupTarget && a.group_id) t.reach.include_groups.push_back(*a.group_id);
      if (a.target_type == kAllUsersTarget) t.reach.all_users = true;
      assets.insert(key);
    }
  }
  auto rows = ctx.store.ListUserLicenses(tenant, token.id);
  if (!rows) return Fail(rows.error());
  for (const store::UserLicense& r : *rows) assets.insert({r.adam_id, r.pricing_param});

  std::map<AssetKey, UserAssetInput> inputs;
  std::set<std::string> wanted_users;
  std::optional<std::set<std::string>> everyone;
  for (const AssetKey& key : assets) {
    AssetPeople& t = targets[key];
    UserAssetInput& in = inputs[key];
    in.adam_id = key.first;
    in.pricing_param = key.second;
    in.assigned = t.assigned;
    in.total = t.total;
    in.used = t.used;
    in.last_sync = token.last_sync;
    if (auto d = device_plans.find(key); d != device_plans.end() && t.total < kUnlimitedCount) {
      in.used = t.total - d->second.Left();  // what the devices' plan left is what people may have
    }
    if (t.assigned) {
      auto reached = UsersReached(ctx.store, tenant, t.reach);
      if (!reached) return Fail(reached.error());
      for (const auto& u : *reached) {
        in.wanted.push_back(u.user_id);
        wanted_users.insert(u.user_id);
      }
    }
    if (!t.uninstall_groups.empty()) {
      auto members = ctx.store.UserMembersOf(tenant, t.uninstall_groups);
      if (!members) return Fail(members.error());
      in.uninstall = Ids(*members);
    }
    if (t.uninstall_all) {
      if (!everyone) {
        auto all = ctx.store.AllUsers(tenant);
        if (!all) return Fail(all.error());
        everyone = Ids(*all);
      }
      in.uninstall.insert(everyone->begin(), everyone->end());
    }
  }

  // 2. Apple's users: registered for every wanted person, retired for those gone.
  auto secret = ctx.store.GetTokenSecret(tenant, token.id);
  if (!secret) return Fail(secret.error());
  auto made = MakeClient(ctx, *secret);
  if (!made) {
    pass.apple_error = made.error();
    return pass;
  }
  apple::Client& client = **made;
  auto apple_users = ReconcileAppleUsers(ctx, client, token, wanted_users);
  if (!apple_users) {
    // Apple busy or unreachable, or the store: the next pass tries again.
    spdlog::warn("token {} (tenant {}): Apple users not reconciled: {}", token.id, tenant, apple_users.error().message);
    pass.come_back = true;
    return pass;
  }
  pass.apple_users_created = apple_users->created;
  pass.apple_users_retired = apple_users->retired;
  pass.come_back = apple_users->events_in_flight;
  const auto& by_id = apple_users->by_client_user_id;

  // 3. Apple released the licences of a retired user; those being retired wait for it.
  std::vector<store::UserLicense> released;
  std::set<std::string> retiring;
  for (const auto& [id, u] : by_id) {
    if (u.status == "retiring") retiring.insert(id);
    if (u.status != "Retired") continue;
    for (const store::UserLicense& r : *rows) {
      if (r.client_user_id != id || (r.state != "granted" && r.state != "failed")) continue;
      store::UserLicense gone = r;
      gone.state = "released";
      gone.error_code.clear();
      gone.error_message.clear();
      gone.cause = "userRetired";
      gone.updated = 0;
      released.push_back(std::move(gone));
    }
  }
  if (auto ok = ctx.store.PutUserLicenses(tenant, token.id, released, {}); !ok) return Fail(ok.error());
  if (!released.empty()) {
    rows = ctx.store.ListUserLicenses(tenant, token.id);
    if (!rows) return Fail(rows.error());
  }

  // 4. Decide per asset: only Associated people can be served.
  std::set<std::string> ready;
  for (const auto& [id, u] : by_id) {
    if (u.status == "Associated") ready.insert(id);
  }
  for (store::UserLicense& r : *rows) {
    if (retiring.contains(r.client_user_id)) continue;  // the retire releases it
    auto it = inputs.find({r.adam_id, r.pricing_param});
    if (it != inputs.end()) it->second.rows.emplace(r.client_user_id, std::move(r));
  }
  // Apple's user licences of these assets at the last sync.
  if (!inputs.empty()) {
    Status walked;
    for (int attempt = 0; attempt < 3; ++attempt) {
      for (auto& [key, in] : inputs) in.held_at_sync.clear();
      walked = ctx.store.ForEachAssignment(tenant, token.id, 10'000,
                                           [&](const std::vector<store::LicenseAssignment>& batch) -> Status {
                                             for (const auto& a : batch) {
                                               if (a.client_user_id.empty()) continue;
                                               auto it = inputs.find({a.adam_id, a.pricing_param});
                                               if (it != inputs.end()) it->second.held_at_sync.insert(a.client_user_id);
                                             }
                                             return {};
                                           });
      if (walked || walked.error().code != Code::kFailedPrecondition) break;  // a sync replaced the set: again
    }
    if (!walked && walked.error().code != Code::kNotFound) return Fail(walked.error());
  }
  std::map<AssetKey, UserAssetPlan> plans;
  std::set<std::string> waiting_seen;
  for (auto& [key, in] : inputs) {
    in.ready = ready;
    UserAssetPlan plan = PlanUserAsset(in, ctx.options.reconcile, force);
    for (const std::string& id : plan.waiting) {
      if (!waiting_seen.insert(id).second) continue;
      auto u = by_id.find(id);
      PeoplePass::Person p{id, u == by_id.end() ? "unregistered" : u->second.status, "", ""};
      if (u != by_id.end() && u->second.status == "failed") {
        p.error_code = u->second.error_code;
        p.error_message = u->second.error_message;
        pass.refused.push_back(std::move(p));
      } else {
        pass.waiting.push_back(std::move(p));
      }
    }
    pass.wanted += plan.wanted;
    pass.holding += plan.holding;
    pass.not_enough += plan.not_enough;
    pass.held_back += plan.held_back;
    pass.kept += plan.kept;
    pass.untracked += plan.untracked;
    pass.associated += static_cast<std::int64_t>(plan.associate.size());
    pass.disassociated += static_cast<std::int64_t>(plan.reclaim_explicit.size() + plan.reclaim_directory.size());
    plans.emplace(key, std::move(plan));
  }
  // Invitations not accepted yet: Apple tells (USER_ASSOCIATED queues the job), or
  // the next pass's GET /users finds out.
  const bool waiting_unnotified = !pass.waiting.empty() && !NotifiedOf(ctx, "USER_ASSOCIATED");
  if (waiting_unnotified) pass.come_back = true;

  // 5. Send: reclaims first, then associations.
  const bool work = std::any_of(plans.begin(), plans.end(), [](const auto& p) { return !p.second.Empty(); });
  if (work && !ctx.stopping) {
    auto service = client.GetServiceConfig();
    if (!service) {
      pass.apple_error = service.error();
    } else {
      const int max_users = service->limits.max_client_user_ids;
      // Notified of how they end (ASSET_MANAGEMENT names the clientUserIds): polled
      // only if no notification came in time.
      Timestamp first_poll = Micros(ctx.options.event_poll_interval);
      if (NotifiedOf(ctx, "ASSET_MANAGEMENT")) {
        first_poll = std::max(first_poll, Micros(ctx.options.event_notification_wait));
      }
      std::set<std::string> directory_users;
      bool directory_read = false;
      for (const auto& [key, plan] : plans) {
        if (pass.apple_error || ctx.stopping) break;
        const UserAssetInput& in = inputs.at(key);
        auto& err = pass.apple_error;
        err = SendLicences<store::UserLicense>(ctx, client, max_users, key, plan.reclaim_explicit, false,
                                               in.assigned ? "uninstall" : "unassigned", first_poll);
        if (!err && !plan.reclaim_directory.empty()) {
          // Deleted people, and people who left every including group.
          if (!directory_read) {
            auto all = ctx.store.AllUsers(tenant);
            if (!all) return Fail(all.error());
            directory_users = Ids(*all);
            directory_read = true;
          }
          std::vector<std::string> deleted, left;
          for (const std::string& id : plan.reclaim_directory) {
            (directory_users.contains(id) ? left : deleted).push_back(id);
          }
          err =
              SendLicences<store::UserLicense>(ctx, client, max_users, key, deleted, false, "userDeleted", first_poll);
          if (!err)
            err = SendLicences<store::UserLicense>(ctx, client, max_users, key, left, false, "leftScope", first_poll);
        }
        if (!err)
          err = SendLicences<store::UserLicense>(ctx, client, max_users, key, plan.associate, true, "assigned",
                                                 first_poll);
      }
    }
  }
  // The rows the plans settle locally (failed: not enough licences; forgotten ones).
  for (const auto& [key, plan] : plans) {
    if (plan.put.empty() && plan.remove.empty()) continue;
    if (auto ok = ctx.store.PutUserLicenses(tenant, token.id, plan.put, plan.remove); !ok) return Fail(ok.error());
  }

  // What the rows say now.
  auto now_rows = ctx.store.ListUserLicenses(tenant, token.id);
  if (!now_rows) return Fail(now_rows.error());
  for (const auto& r : *now_rows) {
    if (r.state == "granted") ++pass.granted;
    if (r.state == "pending") ++pass.pending;
    if (r.state == "failed") ++pass.failed;
    if (r.state == "reclaimPending") ++pass.reclaim_pending;
  }
  if (pass.pending > 0 || pass.reclaim_pending > 0) pass.come_back = true;
  // Back only to look at the invitations again: the wait grows while they do not change.
  if (waiting_unnotified && !apple_users->events_in_flight && pass.pending == 0 && pass.reclaim_pending == 0 &&
      !pass.apple_error) {
    for (const auto& [id, u] : by_id) {
      if (!u.user_id.empty()) pass.invitations_unchanged_since = std::max(pass.invitations_unchanged_since, u.updated);
    }
  }
  return pass;
}

Timestamp InvitationRecheck(Timestamp now, Timestamp last_change, Timestamp poll) {
  const Timestamp unchanged = std::max<Timestamp>(0, now - last_change);
  return now + std::clamp<Timestamp>(unchanged, poll, std::max(poll, kInvitationRecheckCap));
}

}  // namespace vppd::sync
