// The managedEBooks surface (spec/graph-assignments.md §6): a tenant's VPP books as
// iosVppEBook (list, $count, get), their assignments (iosVppEBookAssignment: list,
// get, create, PATCH, delete), the assign action, and where their user licences
// stand (userStateSummary, deviceStates, installSummary). Books are the rows of
// mobile_apps whose product type is Book (service::ManagedEBooks).
//
// Layout: 1. the entity model  2. writing  3. reading a body  4. handlers  5. $metadata types.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "graph/api_impl.h"
#include "graph/metadata.h"
#include "graph/model.h"
#include "graph/odata.h"
#include "graph/store_mapping.h"
#include "service/service.h"

namespace vppd::graph {
namespace json = boost::json;
namespace {

// --- 1. the entity model ----------------------------------------------------------------

constexpr char kEBookType[] = "#microsoft.graph.iosVppEBook";
constexpr char kEBookAssignmentType[] = "#microsoft.graph.iosVppEBookAssignment";

PropertyDef Prop(std::string name, EdmType type, bool nullable = true) {
  PropertyDef d;
  d.name = std::move(name);
  d.type = type;
  d.nullable = nullable;
  return d;
}

PropertyDef Stored(PropertyDef d, store::Column column) {
  d.column = column;
  return d;
}

PropertyDef Unstored(PropertyDef d) {
  d.filterable = false;  // no column: the same for every book, or a list
  return d;
}

json::value Time(Timestamp t) { return json::value(t == 0 ? kGraphNeverText : FormatIso8601(t)); }
json::value StringOrNull(const std::string& s) { return s.empty() ? json::value(nullptr) : json::value(s); }
json::value OptString(const std::optional<std::string>& s) { return s ? json::value(*s) : json::value(nullptr); }

struct BookProperty {
  PropertyDef def;
  bool on_base;  // declared on managedEBook (else on iosVppEBook)
  std::function<json::value(const store::MobileApp&)> get;
  std::string complex_type = {};  // kComplex: its qualified type
  bool in_v1 = true;              // false: beta only
};

// The properties in Graph's documented order (beta adds roleScopeTagIds to iosVppEBook).
const std::vector<BookProperty>& BookProperties() {
  using C = store::Column;
  using B = store::MobileApp;
  static const std::vector<BookProperty> kProps = [] {
    const auto null_value = [](const B&) { return json::value(nullptr); };
    return std::vector<BookProperty>{
        {Stored(Prop("id", EdmType::kString, false), C::kAppId), true, [](const B& b) { return json::value(b.id); }},
        {Stored(Prop("displayName", EdmType::kString), C::kAppDisplayName), true,
         [](const B& b) { return json::value(b.display_name); }},
        {Unstored(Prop("description", EdmType::kString)), true, null_value},
        {Stored(Prop("publisher", EdmType::kString), C::kAppPublisher), true,
         [](const B& b) { return StringOrNull(b.publisher); }},
        {Unstored(Prop("publishedDateTime", EdmType::kDateTimeOffset, false)), true,
         [](const B&) { return json::value(kGraphNeverText); }},
        // Apple's lookup gives an artwork URL at most, not the cover's bytes: none, written (null)
        // only when $select names it, as mobileApps' largeIcon.
        {Unstored(Prop("largeCover", EdmType::kComplex)), true, null_value, "microsoft.graph.mimeContent"},
        {Stored(Prop("createdDateTime", EdmType::kDateTimeOffset, false), C::kAppCreated), true,
         [](const B& b) { return Time(b.created); }},
        {Stored(Prop("lastModifiedDateTime", EdmType::kDateTimeOffset, false), C::kAppLastModified), true,
         [](const B& b) { return Time(b.last_modified); }},
        // The book's page in Apple Books.
        {Stored(Prop("informationUrl", EdmType::kString), C::kAppStoreUrl), true,
         [](const B& b) { return StringOrNull(b.app_store_url); }},
        {Unstored(Prop("privacyInformationUrl", EdmType::kString)), true, null_value},
        {Unstored(Prop("vppTokenId", EdmType::kGuid, false)), false,
         [](const B& b) { return json::value(b.token_id); }},
        {Stored(Prop("appleId", EdmType::kString), C::kAppTokenAppleId), false,
         [](const B& b) { return OptString(b.token_apple_id); }},
        {Stored(Prop("vppOrganizationName", EdmType::kString), C::kAppTokenOrganizationName), false,
         [](const B& b) { return OptString(b.token_organization_name); }},
        {[] {
           PropertyDef d = Prop("genres", EdmType::kString);
           d.collection = true;
           d.filterable = false;
           return d;
         }(),
         false,
         [](const B& b) {
           json::array a;
           for (const std::string& g : b.genres) a.emplace_back(g);
           return json::value(std::move(a));
         }},
        // Apple's lookup names no language for a book.
        {Unstored(Prop("language", EdmType::kString)), false, null_value},
        {Unstored(Prop("seller", EdmType::kString)), false, [](const B& b) { return OptString(b.seller); }},
        {Stored(Prop("totalLicenseCount", EdmType::kInt32, false), C::kAppTotalLicenses), false,
         [](const B& b) { return json::value(std::min<std::int64_t>(b.total_licenses, 2147483647)); }},
        {Stored(Prop("usedLicenseCount", EdmType::kInt32, false), C::kAppUsedLicenses), false,
         [](const B& b) { return json::value(std::min<std::int64_t>(b.used_licenses, 2147483647)); }},
        // vppd has no scope tags: every book is in the default scope, as an Intune tenant without them.
        {[] {
           PropertyDef d = Prop("roleScopeTagIds", EdmType::kString);
           d.collection = true;
           d.filterable = false;
           return d;
         }(),
         false, [](const B&) { return json::value(json::array()); }, "", /*in_v1=*/false},
    };
  }();
  return kProps;
}

EntityDef MakeEBookEntity(ApiVersion version) {
  EntityDef e;
  e.name = "managedEBook";
  e.table = store::Table::kMobileApps;
  TypeDef base;
  base.name = "microsoft.graph.managedEBook";
  TypeDef ios;
  ios.name = "microsoft.graph.iosVppEBook";  // every book vppd holds
  e.types = {base, ios};
  for (const BookProperty& p : BookProperties()) {
    if (p.in_v1 || version == ApiVersion::kBeta) e.properties.push_back(p.def);
  }
  e.expandable = {"assignments"};
  return e;
}

const EntityDef& EBookEntity(ApiVersion version) {
  static const EntityDef kBeta = MakeEBookEntity(ApiVersion::kBeta);
  static const EntityDef kV1 = MakeEBookEntity(ApiVersion::kV1);
  return version == ApiVersion::kBeta ? kBeta : kV1;
}

bool Selected(const std::vector<std::string>& select, std::string_view name) {
  return select.empty() || name == "id" || std::find(select.begin(), select.end(), name) != select.end();
}

// --- 2. writing ---------------------------------------------------------------------------

void WriteEBookAssignment(const store::AppAssignment& a, json::object& out) {
  out["@odata.type"] = kEBookAssignmentType;
  out["id"] = a.id;
  json::object target;
  target["@odata.type"] = a.target_type;
  target["deviceAndAppManagementAssignmentFilterId"] = nullptr;
  target["deviceAndAppManagementAssignmentFilterType"] = "none";
  if (a.group_id) target["groupId"] = *a.group_id;
  out["target"] = std::move(target);
  out["installIntent"] = a.intent;
}

void WriteEBook(const store::MobileApp& book, ApiVersion version, const std::vector<std::string>& select,
                const std::vector<std::string>& expand, std::span<const store::AppAssignment> assignments,
                json::object& out) {
  out["@odata.type"] = kEBookType;
  for (const BookProperty& p : BookProperties()) {
    if (!p.in_v1 && version != ApiVersion::kBeta) continue;
    if (!Selected(select, p.def.name)) continue;
    if (p.def.name == "largeCover" && std::find(select.begin(), select.end(), p.def.name) == select.end()) continue;
    out[p.def.name] = p.get(book);
  }
  for (const std::string& name : expand) {  // "assignments", the one expandable
    json::array list;
    for (const store::AppAssignment& a : assignments) {
      json::object o;
      WriteEBookAssignment(a, o);
      list.push_back(std::move(o));
    }
    out[name] = std::move(list);
  }
}

void WriteUserState(const service::EBookUserState& s, json::object& out) {
  out["@odata.type"] = "#microsoft.graph.userInstallStateSummary";
  out["id"] = s.user_id;
  out["userName"] = s.user_name;
  out["installedDeviceCount"] = s.installed_devices;
  out["failedDeviceCount"] = s.failed_devices;
  out["notInstalledDeviceCount"] = s.not_installed_devices;
}

void WriteDeviceState(const service::EBookDeviceState& s, json::object& out) {
  out["@odata.type"] = "#microsoft.graph.deviceInstallState";
  out["id"] = s.managed_device_id;
  out["deviceName"] = StringOrNull(s.device_name);
  out["deviceId"] = s.managed_device_id;
  out["lastSyncDateTime"] = Time(s.last_sync);
  out["installState"] = s.install_state;
  out["errorCode"] = nullptr;
  out["osVersion"] = StringOrNull(s.os_version);
  out["osDescription"] = StringOrNull(s.os_description);
  out["userName"] = StringOrNull(s.user_name);
}

// --- 3. reading a body --------------------------------------------------------------------

Error BadProperty(const std::string& path, const std::string& why) {
  return Error::InvalidArgument(fmt::format("The property '{}' {}.", path, why), path);
}

// A managedEBookAssignment body (create, PATCH, an element of assign's list). `path`
// prefixes property names in errors ("" or "managedEBookAssignments[1].").
Result<service::EBookAssignmentChanges> ReadEBookAssignment(const json::object& body, const std::string& path) {
  service::EBookAssignmentChanges c;
  for (const auto& [key_sv, value] : body) {
    const std::string key(key_sv);
    const std::string at = path + key;
    if (key == "@odata.type") {
      const bool known = value.is_string() && (value.get_string() == "#microsoft.graph.iosVppEBookAssignment" ||
                                               value.get_string() == "microsoft.graph.iosVppEBookAssignment" ||
                                               value.get_string() == "#microsoft.graph.managedEBookAssignment" ||
                                               value.get_string() == "microsoft.graph.managedEBookAssignment");
      if (!known) return Fail(BadProperty(at, "must be '#microsoft.graph.iosVppEBookAssignment'"));
    } else if (key.find('@') != std::string::npos) {
      continue;
    } else if (key == "id") {
      if (!value.is_null() && !value.is_string()) return Fail(BadProperty(at, "must be a string or null"));
    } else if (key == "installIntent") {
      if (!value.is_string()) return Fail(BadProperty(at, "must be a string (an installIntent member)"));
      c.install_intent = std::string(value.get_string());
    } else if (key == "target") {
      if (!value.is_object()) return Fail(BadProperty(at, "must be an object with an '@odata.type'"));
      auto target = ReadAssignmentTarget(value.get_object(), at);
      if (!target) return Fail(target.error());
      c.target = std::move(*target);
    } else if (key == "settings" && value.is_object() && value.get_object().contains("useDeviceLicensing") &&
               value.get_object().at("useDeviceLicensing").is_bool() &&
               value.get_object().at("useDeviceLicensing").get_bool()) {
      // An app's settings sent for a book: say why a book takes no device licensing.
      c.use_device_licensing = true;
    } else if (key == "intent") {
      return Fail(BadProperty(at,
                              "does not exist on type 'microsoft.graph.iosVppEBookAssignment' (its intent is "
                              "'installIntent')"));
    } else {
      return Fail(BadProperty(at, "does not exist on type 'microsoft.graph.iosVppEBookAssignment'"));
    }
  }
  return c;
}

std::string EBooksPath(const std::string& book_id, std::string_view rest) {
  return "deviceAppManagement/managedEBooks('" + book_id + "')/" + std::string(rest);
}

// A list without a store query (assignments, states): $top/$skip and paging over it.
template <class Item, class Write>
Result<http::Response> Paged(const Api::Impl& impl, const Api::Impl::Call& c, const std::string& path,
                             std::string_view entity_name, const std::vector<Item>& items, Write&& write) {
  EntityDef def;
  def.name = std::string(entity_name);
  AllowedOptions allowed;
  allowed.filter = allowed.orderby = allowed.select = allowed.count = false;
  auto q = ParseQueryOptions(c.query, def, allowed, impl.RequestLimits(c.req));
  if (!q) return Fail(q.error());
  const std::size_t from = std::min<std::size_t>(items.size(), static_cast<std::size_t>(q->list.skip));
  const std::size_t to = std::min<std::size_t>(items.size(), from + static_cast<std::size_t>(q->list.limit));
  json::array values;
  for (std::size_t i = from; i < to; ++i) {
    json::object o;
    write(items[i], o);
    values.push_back(std::move(o));
  }
  return impl.CollectionPage(c.req, c.version, path, c.query, *q, json::serialize(values), values.size(),
                             to < items.size(), [] { return Result<std::int64_t>(0); });  // $count is not allowed
}

}  // namespace

// --- 4. handlers ------------------------------------------------------------------------------

Result<http::Response> Api::Impl::ListEBooks(const Call& c) const { return EBookCollection(c, false); }

Result<http::Response> Api::Impl::CountEBooks(const Call& c) const { return EBookCollection(c, true); }

Result<http::Response> Api::Impl::EBookCollection(const Call& c, bool count_segment) const {
  const EntityDef& entity = EBookEntity(c.version);
  AllowedOptions allowed;
  allowed.expand = !count_segment;
  if (count_segment) {
    if (auto ok = RequireCountAccepted(c.req); !ok) return Fail(ok.error());
    allowed.orderby = allowed.top = allowed.skip = allowed.count = allowed.select = allowed.skiptoken = false;
  } else if (auto ok = RequireJsonAccepted(c.req); !ok) {
    return Fail(ok.error());
  }
  auto q = ParseQueryOptions(c.query, entity, allowed, RequestLimits(c.req));
  if (!q) return Fail(q.error());
  if (count_segment) {
    auto n = deps.ebooks->Count(c.who, q->list.filter);
    if (!n) return Fail(n.error());
    return CountResponse(*n);
  }
  auto page = deps.ebooks->List(c.who, q->list);
  if (!page) return Fail(page.error());
  std::vector<store::AppAssignment> assignments;
  if (!q->expand.empty()) {
    std::vector<std::string> ids;
    for (const auto& b : page->items) ids.push_back(b.id);
    auto found = deps.ebooks->AssignmentsOf(c.who, ids);
    if (!found) return Fail(found.error());
    assignments = std::move(*found);
  }
  std::vector<json::object> objects;
  objects.reserve(page->items.size());
  std::vector<std::string> ids;
  for (const auto& book : page->items) {
    const auto first =
        std::lower_bound(assignments.begin(), assignments.end(), book.id,
                         [](const store::AppAssignment& a, const std::string& id) { return a.app_id < id; });
    auto last = first;
    while (last != assignments.end() && last->app_id == book.id) ++last;
    WriteEBook(book, c.version, q->select, q->expand, std::span<const store::AppAssignment>(first, last),
               objects.emplace_back());
    ids.push_back(book.id);
  }
  std::vector<json::object*> pointers;
  for (auto& o : objects) pointers.push_back(&o);
  auto annotated = AddUntrackedCounts(c, pointers, ids, true);
  if (!annotated) return Fail(annotated.error());
  json::array values;
  for (auto& o : objects) values.push_back(std::move(o));
  auto r = CollectionPage(c.req, c.version, "deviceAppManagement/managedEBooks", c.query, *q, json::serialize(values),
                          values.size(), page->has_more, [&] { return deps.ebooks->Count(c.who, q->list.filter); });
  if (r && *annotated) NoteAnnotationsApplied(*r);
  return r;
}

Result<http::Response> Api::Impl::GetEBook(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  AllowedOptions allowed;  // $select and $expand
  allowed.filter = allowed.orderby = allowed.top = allowed.skip = allowed.count = allowed.skiptoken = false;
  allowed.expand = true;
  auto q = ParseQueryOptions(c.query, EBookEntity(c.version), allowed, RequestLimits(c.req));
  if (!q) return Fail(q.error());
  auto book = deps.ebooks->Get(c.who, c.id());
  if (!book) return Fail(book.error());
  std::vector<store::AppAssignment> assignments;
  if (!q->expand.empty()) {
    auto found = deps.ebooks->ListAssignments(c.who, c.id());
    if (!found) return Fail(found.error());
    assignments = std::move(*found);
  }
  json::object body;
  body["@odata.context"] =
      ContextUrl(c.req, c.version, {"deviceAppManagement/managedEBooks", SelectFragment(q->select), "/$entity"});
  WriteEBook(*book, c.version, q->select, q->expand, assignments, body);
  json::object* one[] = {&body};
  auto annotated = AddUntrackedCounts(c, one, {book->id}, true);
  if (!annotated) return Fail(annotated.error());
  http::Response r = Json(200, body);
  if (*annotated) NoteAnnotationsApplied(r);
  return r;
}

Result<http::Response> Api::Impl::ListEBookAssignments(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto list = deps.ebooks->ListAssignments(c.who, c.id());
  if (!list) return Fail(list.error());
  return Paged(*this, c, EBooksPath(c.id(), "assignments"), "managedEBookAssignment", *list, WriteEBookAssignment);
}

Result<http::Response> Api::Impl::GetEBookAssignment(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto got = deps.ebooks->GetAssignment(c.who, c.ids[0], c.ids[1]);
  if (!got) return Fail(got.error());
  json::object body;
  body["@odata.context"] = ContextUrl(c.req, c.version, {EBooksPath(c.ids[0], "assignments"), "/$entity"});
  WriteEBookAssignment(*got, body);
  return Json(200, body);
}

Result<http::Response> Api::Impl::CreateEBookAssignment(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto body = ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  auto changes = ReadEBookAssignment(*body, "");
  if (!changes) return Fail(changes.error());
  auto created = deps.ebooks->CreateAssignment(c.who, c.id(), *changes);
  if (!created) return Fail(created.error());
  json::object out;
  out["@odata.context"] = ContextUrl(c.req, c.version, {EBooksPath(c.id(), "assignments"), "/$entity"});
  WriteEBookAssignment(*created, out);
  http::Response r = Json(201, out);
  r.headers.emplace_back("Location", BaseUrl(c.req) + "/" + VersionSegment(c.version) +
                                         "/deviceAppManagement/managedEBooks/" + c.id() + "/assignments/" +
                                         created->id);
  return r;
}

Result<http::Response> Api::Impl::UpdateEBookAssignment(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto body = ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  auto changes = ReadEBookAssignment(*body, "");
  if (!changes) return Fail(changes.error());
  auto updated = deps.ebooks->UpdateAssignment(c.who, c.ids[0], c.ids[1], *changes);
  if (!updated) return Fail(updated.error());
  json::object out;
  out["@odata.context"] = ContextUrl(c.req, c.version, {EBooksPath(c.ids[0], "assignments"), "/$entity"});
  WriteEBookAssignment(*updated, out);
  return Json(200, out);
}

Result<http::Response> Api::Impl::DeleteEBookAssignment(const Call& c) const {
  if (auto ok = deps.ebooks->DeleteAssignment(c.who, c.ids[0], c.ids[1]); !ok) return Fail(ok.error());
  return NoContent();
}

// POST managedEBooks/{id}/assign: {"managedEBookAssignments": [...]}.
Result<http::Response> Api::Impl::AssignEBook(const Call& c) const {
  auto body = ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  std::optional<std::vector<service::EBookAssignmentChanges>> list;
  for (const auto& [key_sv, value] : *body) {
    const std::string key(key_sv);
    if (key == "managedEBookAssignments") {
      if (!value.is_array()) return Fail(BadParameter(key, "must be an array of iosVppEBookAssignment objects"));
      std::vector<service::EBookAssignmentChanges> items;
      const json::array& array = value.get_array();
      for (std::size_t i = 0; i < array.size(); ++i) {
        const std::string at = fmt::format("managedEBookAssignments[{}]", i);
        if (!array[i].is_object()) {
          return Fail(
              Error::InvalidArgument(fmt::format("The element {} must be an iosVppEBookAssignment object.", at), at));
        }
        auto item = ReadEBookAssignment(array[i].get_object(), at + ".");
        if (!item) return Fail(item.error());
        items.push_back(std::move(*item));
      }
      list = std::move(items);
    } else if (key.find('@') == std::string::npos) {
      return Fail(BadParameter(key, "is not a parameter of assign (managedEBookAssignments)"));
    }
  }
  if (!list) return Fail(BadParameter("managedEBookAssignments", "is required"));
  if (auto ok = deps.ebooks->Assign(c.who, c.id(), *list); !ok) return Fail(ok.error());
  return NoContent();
}

Result<http::Response> Api::Impl::EBookUserStateSummary(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto states = deps.ebooks->UserStates(c.who, c.id());
  if (!states) return Fail(states.error());
  return Paged(*this, c, EBooksPath(c.id(), "userStateSummary"), "userInstallStateSummary", *states, WriteUserState);
}

Result<http::Response> Api::Impl::EBookDeviceStates(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  // managedEBooks/{id}/deviceStates, or .../userStateSummary/{userId}/deviceStates.
  const std::optional<std::string> user = c.ids[1].empty() ? std::nullopt : std::optional<std::string>(c.ids[1]);
  auto states = deps.ebooks->DeviceStates(c.who, c.id(), user);
  if (!states) return Fail(states.error());
  const std::string path =
      user ? EBooksPath(c.id(), "userStateSummary('" + *user + "')/deviceStates") : EBooksPath(c.id(), "deviceStates");
  return Paged(*this, c, path, "deviceInstallState", *states, WriteDeviceState);
}

// GET managedEBooks/{id}/installSummary: the counts of userStateSummary, summed.
Result<http::Response> Api::Impl::EBookInstallSummary(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto states = deps.ebooks->UserStates(c.who, c.id());
  if (!states) return Fail(states.error());
  std::int64_t installed = 0, failed = 0, not_installed = 0, users_installed = 0, users_failed = 0,
               users_not_installed = 0;
  for (const service::EBookUserState& s : *states) {
    installed += s.installed_devices;
    failed += s.failed_devices;
    not_installed += s.not_installed_devices;
    if (s.failed_devices > 0) {
      ++users_failed;
    } else if (s.installed_devices > 0) {
      ++users_installed;
    } else {
      ++users_not_installed;
    }
  }
  json::object body;
  body["@odata.context"] = ContextUrl(c.req, c.version, {EBooksPath(c.id(), "installSummary"), "/$entity"});
  body["@odata.type"] = "#microsoft.graph.eBookInstallSummary";
  body["id"] = c.id();
  body["installedDeviceCount"] = installed;
  body["failedDeviceCount"] = failed;
  body["notInstalledDeviceCount"] = not_installed;
  body["installedUserCount"] = users_installed;
  body["failedUserCount"] = users_failed;
  body["notInstalledUserCount"] = users_not_installed;
  return Json(200, body);
}

// --- 5. $metadata types --------------------------------------------------------------------

const std::vector<SchemaEnum>& EBookSchemaEnums() {
  static const std::vector<SchemaEnum> kEnums = {
      {"installIntent", {"available", "required", "uninstall", "availableWithoutEnrollment"}},
      {"installState", {"notApplicable", "installed", "failed", "notInstalled", "uninstallFailed", "unknown"}},
      {"deviceAndAppManagementAssignmentFilterType", {"none", "include", "exclude"}},
  };
  return kEnums;
}

namespace {

std::vector<SchemaType> MakeEBookSchemaTypes(ApiVersion version) {
  auto edm = [](const BookProperty& p) -> std::string {
    std::string t;
    switch (p.def.type) {
      case EdmType::kDateTimeOffset:
        t = "Edm.DateTimeOffset";
        break;
      case EdmType::kGuid:
        t = "Edm.Guid";
        break;
      case EdmType::kInt32:
        t = "Edm.Int32";
        break;
      case EdmType::kComplex:
        t = p.complex_type;
        break;
      default:
        t = "Edm.String";
    }
    return p.def.collection ? "Collection(" + t + ")" : t;
  };
  auto type = [](std::string name, bool entity, std::string base, bool is_abstract = false) {
    SchemaType t;
    t.name = std::move(name);
    t.entity = entity;
    t.base_type = std::move(base);
    t.is_abstract = is_abstract;
    return t;
  };
  std::vector<SchemaType> types;
  SchemaType book = type("managedEBook", true, "microsoft.graph.entity", /*is_abstract=*/true);
  SchemaType ios = type("iosVppEBook", true, "microsoft.graph.managedEBook");
  for (const BookProperty& p : BookProperties()) {
    if (p.def.name == "id" || (!p.in_v1 && version != ApiVersion::kBeta)) continue;  // id: the base's key
    (p.on_base ? book : ios).properties.push_back({p.def.name, edm(p), p.def.nullable});
  }
  book.navigation = {{"assignments", "Collection(microsoft.graph.managedEBookAssignment)"},
                     {"installSummary", "microsoft.graph.eBookInstallSummary"},
                     {"deviceStates", "Collection(microsoft.graph.deviceInstallState)"},
                     {"userStateSummary", "Collection(microsoft.graph.userInstallStateSummary)"}};
  types.push_back(std::move(book));
  types.push_back(std::move(ios));

  SchemaType assignment = type("managedEBookAssignment", true, "microsoft.graph.entity");
  assignment.properties = {{"target", "microsoft.graph.deviceAndAppManagementAssignmentTarget", true},
                           {"installIntent", "microsoft.graph.installIntent", false}};
  types.push_back(std::move(assignment));
  types.push_back(type("iosVppEBookAssignment", true, "microsoft.graph.managedEBookAssignment"));

  SchemaType target = type("deviceAndAppManagementAssignmentTarget", false, "", /*is_abstract=*/true);
  target.properties = {{"deviceAndAppManagementAssignmentFilterId", "Edm.String", true},
                       {"deviceAndAppManagementAssignmentFilterType",
                        "microsoft.graph.deviceAndAppManagementAssignmentFilterType", false}};
  types.push_back(std::move(target));
  SchemaType group = type("groupAssignmentTarget", false, "microsoft.graph.deviceAndAppManagementAssignmentTarget");
  group.properties = {{"groupId", "Edm.String", true}};
  types.push_back(std::move(group));
  types.push_back(type("exclusionGroupAssignmentTarget", false, "microsoft.graph.groupAssignmentTarget"));
  types.push_back(
      type("allLicensedUsersAssignmentTarget", false, "microsoft.graph.deviceAndAppManagementAssignmentTarget"));
  types.push_back(type("allDevicesAssignmentTarget", false, "microsoft.graph.deviceAndAppManagementAssignmentTarget"));

  SchemaType summary = type("eBookInstallSummary", true, "microsoft.graph.entity");
  for (const char* name : {"installedDeviceCount", "failedDeviceCount", "notInstalledDeviceCount", "installedUserCount",
                           "failedUserCount", "notInstalledUserCount"}) {
    summary.properties.push_back({name, "Edm.Int32", false});
  }
  types.push_back(std::move(summary));
  SchemaType user = type("userInstallStateSummary", true, "microsoft.graph.entity");
  user.properties = {{"userName", "Edm.String", true},
                     {"installedDeviceCount", "Edm.Int32", false},
                     {"failedDeviceCount", "Edm.Int32", false},
                     {"notInstalledDeviceCount", "Edm.Int32", false}};
  user.navigation = {{"deviceStates", "Collection(microsoft.graph.deviceInstallState)"}};
  types.push_back(std::move(user));
  SchemaType device = type("deviceInstallState", true, "microsoft.graph.entity");
  device.properties = {{"deviceName", "Edm.String", true},
                       {"deviceId", "Edm.String", true},
                       {"lastSyncDateTime", "Edm.DateTimeOffset", false},
                       {"installState", "microsoft.graph.installState", false},
                       {"errorCode", "Edm.String", true},
                       {"osVersion", "Edm.String", true},
                       {"osDescription", "Edm.String", true},
                       {"userName", "Edm.String", true}};
  types.push_back(std::move(device));
  return types;
}

}  // namespace

const std::vector<SchemaType>& EBookSchemaTypes(ApiVersion version) {
  static const std::vector<SchemaType> kBeta = MakeEBookSchemaTypes(ApiVersion::kBeta);
  static const std::vector<SchemaType> kV1 = MakeEBookSchemaTypes(ApiVersion::kV1);
  return version == ApiVersion::kBeta ? kBeta : kV1;
}

}  // namespace vppd::graph
