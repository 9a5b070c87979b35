// The untracked-licences report (issue 18) on the Graph surface: the licences
// Apple held for an app or a book at the last sync that vppd did not grant
// (another MDM's, Apple School Manager's, or handed out before vppd). The
// reconcile leaves them alone; this is where an admin sees them.
//
// Graph has no such property, so vppd adds it in its own namespace, declared in
// $metadata's `vppd` schema, in the two ways OData gives a service to extend a
// model without breaking clients that do not know the extension:
//   - the instance annotation `@vppd.untrackedLicenseCount` on mobileApps and
//     managedEBooks (list and get), only when the request asks for it with
//     `Prefer: odata.include-annotations="vppd.untrackedLicenseCount"` (or
//     `vppd.*`, `*`), answered with Preference-Applied. Microsoft's SDKs do not
//     ask, so their answers are unchanged (and counting costs nothing);
//   - the bound function `vppd.untrackedLicenses()`, the list itself: each
//     licence a `vppd.untrackedLicense` (a device's serial number or a person's
//     clientUserId, with the managed device or directory user holding it when
//     the directory knows one), paged by @odata.nextLink.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "graph/api_impl.h"
#include "graph/odata.h"
#include "store/store.h"

namespace vppd::graph {
namespace json = boost::json;

namespace {

constexpr char kCountTerm[] = "vppd.untrackedLicenseCount";

// The object with `name: value` put after its leading @odata annotations (OData
// JSON: an object's instance annotations come before its properties).
void PutAfterODataAnnotations(json::object& o, std::string_view name, json::value value) {
  json::object out;
  out.reserve(o.size() + 1);
  bool placed = false;
  for (json::key_value_pair& kv : o) {
    const std::string_view key(kv.key().data(), kv.key().size());
    if (!placed && !key.starts_with("@odata.")) {
      out[name] = std::move(value);
      placed = true;
    }
    out[key] = std::move(kv.value());
  }
  if (!placed) out[name] = std::move(value);
  o = std::move(out);
}

}  // namespace

Result<bool> Api::Impl::AddUntrackedCounts(const Call& c, std::span<json::object* const> objects,
                                           const std::vector<std::string>& ids, bool books) const {
  // Beta only, as the vppd schema that declares the term is beta's.
  if (c.version != ApiVersion::kBeta) return false;
  const auto prefer = c.req.Header("Prefer");
  if (!prefer || !IncludesAnnotation(*prefer, kCountTerm)) return false;
  auto counts = books ? deps.ebooks->UntrackedCounts(c.who, ids) : deps.apps->UntrackedCounts(c.who, ids);
  if (!counts) return Fail(counts.error());
  for (std::size_t i = 0; i < objects.size() && i < ids.size(); ++i) {
    const auto it = counts->find(ids[i]);
    PutAfterODataAnnotations(*objects[i], std::string("@") + kCountTerm, it == counts->end() ? 0 : it->second);
  }
  return true;
}

void Api::Impl::NoteAnnotationsApplied(http::Response& r) {
  r.headers.emplace_back("Preference-Applied", std::string("odata.include-annotations=\"") + kCountTerm + "\"");
}

Result<http::Response> Api::Impl::AppUntrackedLicenses(const Call& c) const {
  auto app = FindApp(c);  // a book's id, or an app of another type than the cast: NotFound
  if (!app) return Fail(app.error());
  return UntrackedLicensesOf(c, *app, false);
}

Result<http::Response> Api::Impl::EBookUntrackedLicenses(const Call& c) const {
  auto book = deps.ebooks->Get(c.who, c.id());
  if (!book) return Fail(book.error());
  return UntrackedLicensesOf(c, *book, true);
}

Result<http::Response> Api::Impl::UntrackedLicensesOf(const Call& c, const store::MobileApp& app, bool book) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  static const EntityDef kLicense = [] {
    EntityDef e;
    e.name = "untrackedLicense";
    return e;
  }();
  // Pages follow the server's @odata.nextLink ($skiptoken: where the next page
  // starts among Apple's holders) and Prefer: odata.maxpagesize.
  AllowedOptions allowed;
  allowed.filter = allowed.orderby = allowed.top = allowed.skip = allowed.count = allowed.select = false;
  auto q = ParseQueryOptions(c.query, kLicense, allowed, RequestLimits(c.req));
  if (!q) return Fail(q.error());
  auto page = book ? deps.ebooks->UntrackedLicenses(c.who, app.id, q->list.skip, q->list.limit)
                   : deps.apps->UntrackedLicenses(c.who, app.id, q->list.skip, q->list.limit);
  if (!page) return Fail(page.error());
  // Who holds each licence, as the directory knows it (apps only: a book's
  // licences are people's, named by clientUserId, and reading the directory's
  // users is the apps' permission).
  std::vector<service::DeviceLicenseHolder> devices(page->items.size());
  std::vector<service::UserLicenseHolder> people(page->items.size());
  if (!book) {
    std::vector<std::string> serials, users;
    for (const auto& a : page->items) {
      serials.push_back(a.serial_number);
      users.push_back(a.serial_number.empty() ? a.client_user_id : "");
    }
    auto found_devices = deps.assignments->LicenseHolders(c.who, serials);
    if (!found_devices) return Fail(found_devices.error());
    auto found_people = deps.assignments->UserLicenseHolders(c.who, users);
    if (!found_people) return Fail(found_people.error());
    devices = std::move(*found_devices);
    people = std::move(*found_people);
  }
  json::array values;
  for (std::size_t i = 0; i < page->items.size(); ++i) {
    const store::LicenseAssignment& a = page->items[i];
    const bool device = !a.serial_number.empty();
    auto text = [](const std::optional<std::string>& v) { return v ? json::value(*v) : json::value(nullptr); };
    json::object o;
    o["@odata.type"] = "#vppd.untrackedLicense";
    o["serialNumber"] = device ? json::value(a.serial_number) : json::value(nullptr);
    o["clientUserId"] = device ? json::value(nullptr) : json::value(a.client_user_id);
    o["managedDeviceId"] = text(devices[i].managed_device_id);
    o["deviceName"] = text(devices[i].device_name);
    o["userId"] = device ? text(devices[i].user_id)
                         : (people[i].user_principal_name ? json::value(a.client_user_id) : json::value(nullptr));
    o["userPrincipalName"] = device ? text(devices[i].user_principal_name) : text(people[i].user_principal_name);
    values.push_back(std::move(o));
  }
  const std::string path = std::string("deviceAppManagement/") + (book ? "managedEBooks/" : "mobileApps/") + app.id +
                           (c.cast.empty() ? "" : "/" + std::string(c.cast)) + "/vppd.untrackedLicenses()";
  json::object body;
  body["@odata.context"] = ContextUrl(c.req, ApiVersion::kBeta, {"Collection(vppd.untrackedLicense)"});
  if (page->next) {
    body["@odata.nextLink"] = BaseUrl(c.req) + "/beta/" + path + "?" + NextLinkQuery(c.query, *q, *page->next);
  }
  body["value"] = std::move(values);
  http::Response r = Json(200, body);
  if (q->applied_page_size) {
    r.headers.emplace_back("Preference-Applied", "odata.maxpagesize=" + std::to_string(*q->applied_page_size));
  }
  return r;
}

}  // namespace vppd::graph
