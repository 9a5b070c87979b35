// Internal to service/: what app assignments (assignments.cc) and managed eBook
// assignments (managed_ebooks.cc) share: Graph's names of intents and targets,
// and how a target in a request becomes a stored assignment's target.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "base/base.h"
#include "service/service.h"
#include "store/store.h"

namespace vppd::service::assignment_targets {

inline constexpr std::string_view kIntents[] = {"required", "available", "uninstall", "availableWithoutEnrollment"};

inline constexpr std::string_view kGroupTarget = "#microsoft.graph.groupAssignmentTarget";
inline constexpr std::string_view kExclusionTarget = "#microsoft.graph.exclusionGroupAssignmentTarget";
inline constexpr std::string_view kAllDevicesTarget = "#microsoft.graph.allDevicesAssignmentTarget";
inline constexpr std::string_view kAllUsersTarget = "#microsoft.graph.allLicensedUsersAssignmentTarget";

// "#microsoft.graph.X" for "microsoft.graph.X" or "#microsoft.graph.X" (Graph's
// examples write both); other text is returned as it is, to be refused.
std::string Qualified(const std::string& type);
// "iosVppApp" for "#microsoft.graph.iosVppApp".
std::string_view Short(std::string_view type);
// "a, b, c", each name shortened when `short_names`.
std::string Join(std::span<const std::string_view> names, bool short_names);
bool IsGroupTarget(std::string_view type);
// InvalidArgument naming the property as `where` + `property` ("mobileAppAssignments[2].target").
Error Invalid(const std::string& where, std::string_view property, std::string message);

// Sets `out`'s target_type and group_id from `target`, which must be one of
// `allowed`: an @odata.type (with or without '#'), no assignment filter, a
// groupId exactly for the group targets and of a group that exists (NotFound
// naming it). InvalidArgument otherwise, naming the property; `out` is then
// unchanged.
Status ApplyTarget(store::Store& store, const std::string& tenant_id, const AssignmentTarget& target,
                   std::span<const std::string_view> allowed, const std::string& where, store::AppAssignment& out);

}  // namespace vppd::service::assignment_targets
