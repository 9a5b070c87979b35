// Internal to sync/: what the reconcile job decides for one asset, as a pure
// function of what it read (no store, no Apple), so every rule is unit-tested.
//
//   AssetInput in;            // who should hold a licence, who holds one, the counts
//   AssetPlan plan = PlanAsset(in, options, force);   // PlanUserAsset: people's licences
//   // plan.associate / plan.reclaim_* go to Apple; plan.put / plan.remove to the store.
//
// The rules (issue 15):
//  - Wanted: the members of the included groups (intents required/available with
//    device licensing) minus those of excluded groups, in (seq, managed device id)
//    order: earliest membership first.
//  - Held: a licence vppd granted or is granting (its rows), or one Apple showed at
//    the last sync. A wanted device that holds one needs nothing; one vppd never
//    granted is "untracked" and left alone.
//  - Oversubscription: wanted devices without a licence are served in order while
//    licences are available (Apple's counts of the last sync, corrected by what
//    vppd did since); the rest are failed "not enough licences" (9709) and served
//    on a later pass when licences appear.
//  - Reclaim: a licence vppd granted to a device no longer wanted is
//    disassociated, unless reclaim is off. Explicit acts (an uninstall intent
//    targeting the device, or no assignment left that includes anyone) are not
//    capped; directory changes (left every including group, deleted) are capped
//    at max(kReclaimFloor, fraction × licences vppd granted for the asset) until
//    a sync has seen them (so the job's follow-up passes share one budget),
//    unless forced; the rest is held back and reported.
//  - A pass over the devices a directory change touched decides only those, with
//    the asset's counts (LicenceInput::whole) from all of its rows.
//  - People (issue 17) follow the same rules, keyed by clientUserId, with one more:
//    a licence can be associated only to a user who accepted Apple's invitation
//    (Associated); the others wait, reported, and are served when they accept.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "store/store.h"
#include "sync/sync.h"

namespace vppd::sync {

inline constexpr char kNotEnoughLicencesCode[] = "9709";
inline constexpr char kNotEnoughLicencesMessage[] = "not enough licences";
inline constexpr std::int64_t kUnlimitedCount = 2'147'483'647;

// What the plan reads for one asset, for devices (Row = store::DeviceLicense, keys
// are serial numbers) or people (Row = store::UserLicense, keys are clientUserIds).
template <class Row>
struct LicenceInput {
  std::string adam_id, pricing_param;
  // Keys that should hold a licence, in serving order (each once).
  std::vector<std::string> wanted;
  // Keys an uninstall intent targets (an explicit reclaim).
  std::set<std::string> uninstall;
  // Whether any assignment still includes devices (people) with this kind of
  // licensing. false: every licence vppd granted is reclaimed explicitly.
  bool assigned = false;
  // Apple's holders of the asset (of this kind) at the last sync.
  std::set<std::string> held_at_sync;
  Timestamp last_sync = 0;
  // Apple's counts at the last sync (total kUnlimitedCount: unlimited).
  std::int64_t total = 0, used = 0;
  // vppd's rows for the asset, by key.
  std::map<std::string, Row> rows;
  // People only: the wanted keys that can be given a licence now (Apple's user
  // is Associated: the person accepted the invitation). The others wait, take no
  // licence and are reported. nullopt (devices): every key can.
  std::optional<std::set<std::string>> ready;
  // A pass over some keys only (the devices a directory change touched): `wanted`,
  // `uninstall`, `held_at_sync` and `rows` hold those keys alone, and what they
  // cannot tell about the asset as a whole comes from all of its rows counted.
  struct Whole {
    std::int64_t available = 0;  // licences free, at least (Apple's counts less what vppd may hold beyond them)
    std::int64_t granted = 0;    // rows granted
    std::int64_t reclaimed = 0;  // directory reclaims since the last sync
  };
  std::optional<Whole> whole;
};

template <class Row>
struct LicencePlan {
  std::vector<std::string> associate;          // in serving order
  std::vector<std::string> reclaim_explicit;   // uninstall, unassigned
  std::vector<std::string> reclaim_directory;  // within the cap
  std::vector<Row> put;                        // rows to write (failed: not enough licences)
  std::vector<Row> remove;                     // rows that no longer mean anything
  std::vector<std::string> waiting;            // wanted, not ready (in serving order)
  std::int64_t available = 0;                  // licences free before this plan's associations
  std::int64_t wanted = 0;
  std::int64_t holding = 0;     // wanted keys holding a licence (vppd's or untracked)
  std::int64_t not_enough = 0;  // wanted keys left without one
  std::int64_t held_back = 0;   // directory reclaims beyond the cap
  std::int64_t kept = 0;        // not wanted, kept because reclaim is off
  std::int64_t untracked = 0;   // Apple's holders vppd never granted, not wanted
  std::int64_t granted = 0;     // rows granted before this plan
  std::int64_t reclaimed = 0;   // directory reclaims since the last sync (in flight or done)
  bool Empty() const { return associate.empty() && reclaim_explicit.empty() && reclaim_directory.empty(); }
  // Licences left after this plan's associations (kUnlimitedCount: unlimited).
  std::int64_t Left() const {
    return available >= kUnlimitedCount ? kUnlimitedCount : available - static_cast<std::int64_t>(associate.size());
  }
};

using AssetInput = LicenceInput<store::DeviceLicense>;
using AssetPlan = LicencePlan<store::DeviceLicense>;
using UserAssetInput = LicenceInput<store::UserLicense>;
using UserAssetPlan = LicencePlan<store::UserLicense>;

AssetPlan PlanAsset(const AssetInput& in, const ReconcileOptions& options, bool force);
// The same rules for people's licences, and `ready`: a wanted person whose Apple
// user is not Associated waits (plan.waiting) and takes no licence.
UserAssetPlan PlanUserAsset(const UserAssetInput& in, const ReconcileOptions& options, bool force);

}  // namespace vppd::sync
