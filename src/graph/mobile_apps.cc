// The mobileApps handlers: the collection of a tenant's VPP apps (with derived-type
// casts), one app, and its assignedLicenses.
#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "graph/api_impl.h"
#include "graph/model.h"
#include "graph/odata.h"
#include "graph/store_mapping.h"
#include "store/store.h"

namespace vppd::graph {
namespace json = boost::json;

Result<http::Response> Api::Impl::ListApps(const Call& c) const { return AppCollection(c, false); }

Result<http::Response> Api::Impl::CountApps(const Call& c) const { return AppCollection(c, true); }

Result<store::MobileApp> Api::Impl::FindApp(const Call& c) const {
  auto app = deps.apps->Get(c.who, c.id());
  if (!app) return app;
  if (!c.cast.empty() && MobileAppType(*app) != "#" + std::string(c.cast)) {
    return Fail(Error::NotFound("The mobileApp '" + c.id() + "' is not a " + std::string(c.cast) + ".", c.id()));
  }
  return app;
}

Result<http::Response> Api::Impl::GetApp(const Call& c) const {
  auto app = FindApp(c);
  if (!app) return Fail(app.error());
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  AllowedOptions allowed;  // $select and $expand
  allowed.filter = allowed.orderby = allowed.top = allowed.skip = allowed.count = allowed.skiptoken = false;
  allowed.expand = true;
  auto q = ParseQueryOptions(c.query, MobileAppEntity(c.version), allowed, RequestLimits(c.req));
  if (!q) return Fail(q.error());
  auto assignments = deps.assignments->List(c.who, app->id);  // isAssigned, and $expand=assignments
  if (!assignments) return Fail(assignments.error());
  json::object body;
  body["@odata.context"] =
      ContextUrl(c.req, c.version, {"deviceAppManagement/mobileApps", SelectFragment(q->select), "/$entity"});
  WriteMobileApp(*app, c.version, q->select, body, q->expand, *assignments);
  json::object* one[] = {&body};
  if (auto ok = AddRevokeResults(c, one, {app->id}); !ok) return Fail(ok.error());
  auto annotated = AddUntrackedCounts(c, one, {app->id}, false);
  if (!annotated) return Fail(annotated.error());
  http::Response r = Json(200, body);
  if (*annotated) NoteAnnotationsApplied(r);
  return r;
}

Result<http::Response> Api::Impl::AppCollection(const Call& c, bool count_segment) const {
  const http::Request& req = c.req;
  const ApiVersion v = c.version;
  const std::string& query = c.query;
  const Principal& who = c.who;
  const EntityDef& entity = MobileAppEntity(v);
  AllowedOptions allowed;
  allowed.expand = !count_segment;
  if (count_segment) {
    if (auto ok = RequireCountAccepted(req); !ok) return Fail(ok.error());
    allowed.orderby = allowed.top = allowed.skip = allowed.count = allowed.select = allowed.skiptoken = false;
  } else if (auto ok = RequireJsonAccepted(req); !ok) {
    return Fail(ok.error());
  }
  auto q = ParseQueryOptions(query, entity, allowed, RequestLimits(req));
  if (!q) return Fail(q.error());
  // A cast segment is a type filter (and v1.0 has iOS VPP apps only).
  std::string type(c.cast);
  if (type.empty() && v == ApiVersion::kV1) type = "microsoft.graph.iosVppApp";
  if (!type.empty()) {
    if (auto ok = RestrictToType(*q, entity, type); !ok) return Fail(ok.error());
  }
  if (count_segment) {
    auto n = deps.apps->Count(who, q->list.filter);
    if (!n) return Fail(n.error());
    http::Response r = http::Response::Text(200, std::to_string(*n));
    r.headers.emplace_back("OData-Version", "4.0");
    return r;
  }
  auto page = deps.apps->List(who, q->list);
  if (!page) return Fail(page.error());
  const std::string path = "deviceAppManagement/mobileApps" + (c.cast.empty() ? "" : "/" + std::string(c.cast));
  // The page's assignments in one read (isAssigned, $expand=assignments), in app order.
  std::vector<std::string> ids;
  for (const auto& app : page->items) ids.push_back(app.id);
  auto assignments = deps.assignments->OfApps(who, ids);
  if (!assignments) return Fail(assignments.error());
  std::vector<json::object> objects;
  objects.reserve(page->items.size());
  for (const auto& app : page->items) {
    const auto first =
        std::lower_bound(assignments->begin(), assignments->end(), app.id,
                         [](const store::AppAssignment& a, const std::string& id) { return a.app_id < id; });
    auto last = first;
    while (last != assignments->end() && last->app_id == app.id) ++last;
    json::object& o = objects.emplace_back();
    WriteMobileApp(app, v, q->select, o, q->expand, std::span<const store::AppAssignment>(first, last));
  }
  std::vector<json::object*> pointers;
  for (auto& o : objects) pointers.push_back(&o);
  if (auto ok = AddRevokeResults(c, pointers, ids); !ok) return Fail(ok.error());
  auto annotated = AddUntrackedCounts(c, pointers, ids, false);
  if (!annotated) return Fail(annotated.error());
  json::array values;
  for (auto& o : objects) values.push_back(std::move(o));
  auto r = CollectionPage(req, v, path, query, *q, json::serialize(values), values.size(), page->has_more,
                          [&] { return deps.apps->Count(who, q->list.filter); });
  if (r && *annotated) NoteAnnotationsApplied(*r);
  return r;
}

Result<http::Response> Api::Impl::AssignedLicenses(const Call& c) const {
  auto found = FindApp(c);
  if (!found) return Fail(found.error());
  const store::MobileApp& app = *found;
  const http::Request& req = c.req;
  const std::string& query = c.query;
  if (auto ok = RequireJsonAccepted(req); !ok) return Fail(ok.error());
  static const EntityDef kLicense = [] {
    EntityDef e;
    e.name = "iosVppAppAssignedLicense";
    return e;
  }();
  AllowedOptions allowed;
  allowed.filter = allowed.orderby = allowed.select = allowed.count = false;
  auto q = ParseQueryOptions(query, kLicense, allowed, RequestLimits(req));
  if (!q) return Fail(q.error());
  auto page = deps.apps->AssignedLicenses(c.who, app.id, q->list.skip, q->list.limit);
  if (!page) return Fail(page.error());
  const std::string path = "deviceAppManagement/mobileApps/" + app.id + "/" + std::string(c.cast) + "/assignedLicenses";
  // Device licences: who holds each serial, from the directory's managed devices.
  std::vector<std::string> serials;
  for (const auto& a : page->items) serials.push_back(a.serial_number);
  auto holders = deps.assignments->LicenseHolders(c.who, serials);
  if (!holders) return Fail(holders.error());
  // User licences: the directory user each clientUserId is (vppd registers users under their id).
  std::vector<std::string> users;
  for (const auto& a : page->items) users.push_back(a.serial_number.empty() ? a.client_user_id : "");
  auto people = deps.assignments->UserLicenseHolders(c.who, users);
  if (!people) return Fail(people.error());
  json::array values;
  for (std::size_t i = 0; i < page->items.size(); ++i) {
    json::object o;
    WriteAssignedLicense(app, page->items[i], o, &(*holders)[i]);
    if (const service::UserLicenseHolder& p = (*people)[i]; p.user_principal_name) {
      o["userPrincipalName"] = *p.user_principal_name;
      o["userName"] = p.user_name ? json::value(*p.user_name) : json::value(nullptr);
      o["userEmailAddress"] = p.email ? json::value(*p.email) : json::value(nullptr);
    }
    values.push_back(std::move(o));
  }
  return CollectionPage(req, ApiVersion::kBeta, path, query, *q, json::serialize(values), values.size(), page->has_more,
                        [] { return Result<std::int64_t>(0); });  // $count is not allowed here
}

}  // namespace vppd::graph
