// Internal to sync/: the people's part of a reconcile pass (reconcile_users.cc),
// called from RunReconcile (reconcile.cc) after the devices' part.
//
//   auto in_scope = PeopleInScope(ctx, token);      // store reads only
//   ...
//   auto people = ReconcilePeople(ctx, token, device_plans, forced);
//   if (people->apple_error) ...;                    // Apple stopped it: as the devices' Stop
//   report["people"] = people->Json();
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "apple/client.h"
#include "store/store.h"
#include "sync/jobs.h"
#include "sync/reconcile_plan.h"

namespace vppd::sync {

// What one pass did for people's licences, for the report and the job's next step.
struct PeoplePass {
  std::int64_t associated = 0, disassociated = 0;  // clientUserIds sent
  std::int64_t wanted = 0, holding = 0, not_enough = 0, held_back = 0, kept = 0, untracked = 0;
  std::int64_t granted = 0, pending = 0, failed = 0, reclaim_pending = 0;  // rows after the pass
  std::int64_t apple_users_created = 0, apple_users_retired = 0;
  // Wanted people who cannot hold a licence yet: waiting for the invitation
  // (Apple user Registered or being created), or refused by Apple (its error).
  struct Person {
    std::string client_user_id, status, error_code, error_message;
  };
  std::vector<Person> waiting, refused;
  // The job must come back: Apple events in flight (users' or licences'), users
  // still to be sent, or invitations to look at again (no USER_ASSOCIATED).
  bool come_back = false;
  // Set (non-zero) when the job comes back only to look at invitations again (no
  // USER_ASSOCIATED, nothing in flight): when vppd's Apple users last changed,
  // from which the wait grows (InvitationRecheck).
  Timestamp invitations_unchanged_since = 0;
  std::optional<apple::AppleError> apple_error;  // Apple stopped the pass (the token, or busy)

  bool Failed() const { return failed > 0 || held_back > 0 || !refused.empty(); }
  boost::json::object Json() const;
};

// Whether the token has anything to do with people: an assignment without device
// licensing, a user licence row, or an Apple user vppd registered. Store only.
Result<bool> PeopleInScope(JobContext& ctx, const store::VppToken& token);

// The pass for people (the token must be `valid`; otherwise nothing is done):
//  1. wanted people per asset: the directory users of the assignments without
//     device licensing (intents required/available; exclusions take away,
//     uninstall takes back), earliest membership first (UsersReached);
//  2. ReconcileAppleUsers with every wanted person: registers those without an
//     Apple user, retires those whose directory user is gone, refreshes invitations;
//  3. a licence of a retired Apple user is released (Apple releases it on retire);
//  4. per asset, PlanUserAsset: only Associated people are served; licences are
//     those the devices' plans left (`device_plans`, by (adamId, pricingParam));
//  5. disassociate, then associate, by clientUserId in chunks of maxClientUserIds,
//     each accepted event recorded with its users (RecordUserLicenseEvent).
// Errors: the store's (the job is handed back). Apple's are in apple_error.
Result<PeoplePass> ReconcilePeople(JobContext& ctx, const store::VppToken& token,
                                   const std::map<std::pair<std::string, std::string>, AssetPlan>& device_plans,
                                   bool force);

// The longest wait between two looks at invitations nobody accepted (GET /users).
inline constexpr Timestamp kInvitationRecheckCap = 3'600'000'000;  // 1 h, µs

// When a job that comes back only to look at invitations again (GET /users)
// runs next: as long after `now` as they have gone unchanged since
// `last_change`, so the wait doubles with each pass that finds nothing new; at
// least `poll` (the event poll interval) and at most kInvitationRecheckCap. Any
// change (a person registered, accepting, leaving) starts it at `poll` again, and
// a change that queues the job (a directory change, USER_ASSOCIATED) runs it at once.
Timestamp InvitationRecheck(Timestamp now, Timestamp last_change, Timestamp poll);

}  // namespace vppd::sync
