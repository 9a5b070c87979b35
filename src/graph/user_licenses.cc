// User licences on the Graph surface: an app's userStatuses (Graph's
// userAppInstallStatus, beta) and vppd's own users/{id}/vppUserStatus (where a
// person stands with Apple: the invitation, associated or not, per location).
//
// Graph has no property for Apple's invitation: userAppInstallStatus counts
// devices (installed, failed, not installed), so userStatuses shows a person's
// licence as one of them, and vppUserStatus, vppd's, says the rest (README).
#include <algorithm>
#include <string>

#include <boost/json.hpp>

#include "graph/api_impl.h"
#include "graph/odata.h"
#include "service/service.h"

namespace vppd::graph {
namespace json = boost::json;
namespace {

json::value OptText(const std::string& s) { return s.empty() ? json::value(nullptr) : json::value(s); }

// A person's licence as one device of userAppInstallStatus's counts.
void WriteUserStatus(const service::UserInstallStatus& s, json::object& out) {
  out["@odata.type"] = "#microsoft.graph.userAppInstallStatus";
  out["id"] = s.user_id;
  out["userName"] = OptText(s.user_name);
  out["userPrincipalName"] = OptText(s.user_principal_name);
  out["installedDeviceCount"] = s.install_state == "installed" ? 1 : 0;
  out["failedDeviceCount"] = s.install_state == "failed" ? 1 : 0;
  out["notInstalledDeviceCount"] = s.install_state == "installed" || s.install_state == "failed" ? 0 : 1;
}

}  // namespace

// GET mobileApps/{id}/userStatuses: each person the app's user-licensing assignments reach.
Result<http::Response> Api::Impl::UserStatuses(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  static const EntityDef kStatus = [] {
    EntityDef e;
    e.name = "userAppInstallStatus";
    return e;
  }();
  AllowedOptions allowed;  // $top/$skip and server-driven paging over the list
  allowed.filter = allowed.orderby = allowed.select = allowed.count = false;
  auto q = ParseQueryOptions(c.query, kStatus, allowed, RequestLimits(c.req));
  if (!q) return Fail(q.error());
  auto statuses = deps.assignments->UserStatuses(c.who, c.id());
  if (!statuses) return Fail(statuses.error());
  const std::size_t from = std::min<std::size_t>(statuses->size(), static_cast<std::size_t>(q->list.skip));
  const std::size_t to = std::min<std::size_t>(statuses->size(), from + static_cast<std::size_t>(q->list.limit));
  json::array values;
  for (std::size_t i = from; i < to; ++i) {
    json::object o;
    WriteUserStatus((*statuses)[i], o);
    values.push_back(std::move(o));
  }
  const std::string path = "deviceAppManagement/mobileApps/" + c.id() + "/userStatuses";
  return CollectionPage(c.req, ApiVersion::kBeta, path, c.query, *q, json::serialize(values), values.size(),
                        to < statuses->size(), [] { return Result<std::int64_t>(0); });  // $count is not allowed
}

// GET users/{id}/vppUserStatus (vppd's): the person's Apple user and licences per vppToken.
Result<http::Response> Api::Impl::VppUserStatus(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  if (!c.query.empty()) {
    return Fail(Error::InvalidArgument("vppUserStatus takes no query options.").WithGraphCode("Request_BadRequest"));
  }
  auto status = deps.assignments->UserVppStatus(c.who, c.id());
  if (!status) {
    if (status.error().code == Code::kNotFound) {
      return Fail(std::move(status.error()).WithGraphCode("Request_ResourceNotFound"));
    }
    return Fail(status.error());
  }
  json::object body;
  body["@odata.context"] = ContextUrl(c.req, c.version, {"vppd.vppUserStatus"});
  body["userId"] = status->user.id;
  body["userPrincipalName"] = status->user.user_principal_name;
  json::array locations;
  for (const auto& where : status->locations) {
    const store::AppleUser& a = where.apple_user;
    json::object o;
    o["vppTokenId"] = where.token_id;
    o["clientUserId"] = a.client_user_id;
    o["email"] = OptText(a.email);
    // creating | Registered | Associated | retiring | Retired | failed (Apple refused it)
    o["status"] = a.status;
    o["associated"] = a.status == "Associated";
    o["inviteCode"] = OptText(a.invite_code);
    o["inviteUrl"] = OptText(a.invite_url);
    o["errorCode"] = OptText(a.error_code);
    o["errorMessage"] = OptText(a.error_message);
    o["lastModifiedDateTime"] = a.updated == 0 ? json::value(nullptr) : json::value(FormatIso8601(a.updated));
    json::array licenses;
    for (const store::UserLicense& l : where.licenses) {
      json::object lo;
      lo["adamId"] = l.adam_id;
      lo["pricingParam"] = l.pricing_param;
      lo["state"] = l.state;  // pending | granted | failed | reclaimPending
      lo["errorCode"] = OptText(l.error_code);
      lo["errorMessage"] = OptText(l.error_message);
      licenses.push_back(std::move(lo));
    }
    o["licenses"] = std::move(licenses);
    locations.push_back(std::move(o));
  }
  body["locations"] = std::move(locations);
  return Json(200, body);
}

}  // namespace vppd::graph
