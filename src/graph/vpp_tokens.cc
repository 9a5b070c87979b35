// The vppToken handlers: the resource, its actions (syncLicenses, revokeLicenses,
// syncLicenseCounts) and functions (getLicensesForApp, getExpiringVppTokenCount).
#include <algorithm>
#include <optional>
#include <string>

#include <boost/json.hpp>

#include "graph/api_impl.h"
#include "graph/etag.h"
#include "graph/json_writer.h"
#include "graph/model.h"
#include "graph/odata.h"

namespace vppd::graph {
namespace json = boost::json;

Result<http::Response> Api::Impl::SyncLicenses(const Call& c) const {
  const http::Request& req = c.req;
  const ApiVersion v = c.version;
  if (auto ok = RequireJsonAccepted(req); !ok) return Fail(ok.error());
  // The seed: "this method takes no request body" — one sent anyway is ignored.
  auto token = deps.tokens->SyncLicenses(c.who, c.id());
  if (!token) return Fail(token.error());
  const bool at_root = options.action_response == ActionResponse::kEntity ||
                       (options.action_response == ActionResponse::kAuto && req.Header("SdkVersion").has_value());
  std::string body;
  JsonWriter w(body);
  w.BeginObject();
  w.Key("@odata.context");
  w.String(ContextUrl(req, v, {"microsoft.graph.vppToken"}));
  if (at_root) {
    WriteVppTokenMembers(*token, v, {}, w);
  } else {
    w.Key("value");  // the seed's shape
    w.BeginObject();
    WriteVppTokenMembers(*token, v, {}, w);
    w.EndObject();
  }
  w.EndObject();
  return Json(200, std::move(body));
}

Result<http::Response> Api::Impl::RevokeLicenses(const Call& c) const {
  auto body = ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  std::optional<bool> notify, untracked;
  for (const auto& [key, value] : *body) {
    if (key == "notifyManagedDevices") {
      if (!value.is_bool()) return Fail(BadParameter("notifyManagedDevices", "must be true or false"));
      notify = value.get_bool();
    } else if (key == "revokeUntrackedLicenses") {
      if (!value.is_bool() && !value.is_null()) {
        return Fail(BadParameter("revokeUntrackedLicenses", "must be true, false or null"));
      }
      if (value.is_bool()) untracked = value.get_bool();
    } else if (key.find('@') == std::string_view::npos) {
      return Fail(BadParameter(std::string(key),
                               "is not a parameter of revokeLicenses (notifyManagedDevices, "
                               "revokeUntrackedLicenses)"));
    }
  }
  if (!notify) return Fail(BadParameter("notifyManagedDevices", "is required"));
  if (auto ok = deps.tokens->RevokeLicenses(c.who, c.id(), *notify, untracked); !ok) return Fail(ok.error());
  return NoContent();
}

Result<http::Response> Api::Impl::SyncLicenseCounts(const Call& c) const {
  if (auto ok = deps.tokens->SyncLicenseCounts(c.who); !ok) return Fail(ok.error());
  return NoContent();
}

Result<http::Response> Api::Impl::GetLicensesForApp(const Call& c) const {
  const http::Request& req = c.req;
  if (auto ok = RequireJsonAccepted(req); !ok) return Fail(ok.error());
  auto bundle_id = ParseStringArgument(c.function, c.query, "getLicensesForApp", "bundleId",
                                       "getLicensesForApp(bundleId='com.example.app')");
  if (!bundle_id) return Fail(bundle_id.error());
  auto summaries = deps.tokens->GetLicensesForApp(c.who, *bundle_id);
  if (!summaries) return Fail(summaries.error());
  json::array values;
  for (const auto& s : *summaries) {
    json::object o;
    WriteLicenseSummary(s, o);
    values.push_back(std::move(o));
  }
  json::object body;
  body["@odata.context"] = ContextUrl(req, ApiVersion::kBeta, {"Collection(microsoft.graph.vppTokenLicenseSummary)"});
  body["value"] = std::move(values);
  return Json(200, body);
}

// GET deviceManagement/depOnboardingSettings/getExpiringVppTokenCount(expiringBeforeDateTime='…'):
// a function bound to the depOnboardingSetting collection (beta CSDL). Its one parameter is
// an Edm.String holding an ISO-8601 date-time, so it is quoted; it answers Edm.Int32 as
// {"@odata.context":"…/$metadata#Edm.Int32","value":n}.
Result<http::Response> Api::Impl::GetExpiringVppTokenCount(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto text = ParseStringArgument(c.function, c.query, "getExpiringVppTokenCount", "expiringBeforeDateTime",
                                  "getExpiringVppTokenCount(expiringBeforeDateTime='2027-01-01T00:00:00Z')");
  if (!text) return Fail(text.error());
  auto before = ParseIso8601(*text);
  if (!before) {
    return Fail(BadParameter("expiringBeforeDateTime",
                             "must be an ISO-8601 date-time such as "
                             "'2027-01-01T00:00:00Z', not '" +
                                 text->substr(0, 100) + "'"));
  }
  auto n = deps.tokens->CountExpiringBefore(c.who, *before);
  if (!n) return Fail(n.error());
  std::string body;
  JsonWriter w(body);
  w.BeginObject();
  w.Key("@odata.context");
  w.String(ContextUrl(c.req, ApiVersion::kBeta, {"Edm.Int32"}));
  w.Key("value");
  w.Int(*n);
  w.EndObject();
  return Json(200, std::move(body));
}

Result<http::Response> Api::Impl::ListTokens(const Call& c) const {
  const http::Request& req = c.req;
  const ApiVersion v = c.version;
  if (auto ok = RequireJsonAccepted(req); !ok) return Fail(ok.error());
  AllowedOptions allowed;
  auto q = ParseQueryOptions(c.query, VppTokenEntity(v), allowed, RequestLimits(req));
  if (!q) return Fail(q.error());
  auto page = deps.tokens->List(c.who, q->list);
  if (!page) return Fail(page.error());
  std::string values;
  values.reserve(page->items.size() * 1024);
  JsonWriter w(values);
  w.BeginArray();
  for (const auto& t : page->items) {
    w.BeginObject();
    WriteVppTokenMembers(t, v, q->select, w);
    w.EndObject();
  }
  w.EndArray();
  return CollectionPage(req, v, "deviceAppManagement/vppTokens", c.query, *q, values, page->items.size(),
                        page->has_more, [&] { return deps.tokens->Count(c.who, q->list.filter); });
}

Result<http::Response> Api::Impl::CountTokens(const Call& c) const {
  if (auto ok = RequireCountAccepted(c.req); !ok) return Fail(ok.error());
  AllowedOptions allowed;
  allowed.orderby = allowed.top = allowed.skip = allowed.count = allowed.select = allowed.skiptoken = false;
  auto q = ParseQueryOptions(c.query, VppTokenEntity(c.version), allowed, limits);
  if (!q) return Fail(q.error());
  auto n = deps.tokens->Count(c.who, q->list.filter);
  if (!n) return Fail(n.error());
  http::Response r = http::Response::Text(200, std::to_string(*n));
  r.headers.emplace_back("OData-Version", "4.0");
  return r;
}

Result<http::Response> Api::Impl::GetToken(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto select = ParseSelectOnly(c.query, VppTokenEntity(c.version));
  if (!select) return Fail(select.error());
  auto token = deps.tokens->Get(c.who, c.id());
  if (!token) return Fail(token.error());
  return TokenResponse(c.req, c.version, 200, *token, *select);
}

Result<http::Response> Api::Impl::UpdateToken(const Call& c) const {
  if (auto ok = RequireJsonAccepted(c.req); !ok) return Fail(ok.error());
  auto body = ReadJsonObject(c.req);
  if (!body) return Fail(body.error());
  auto changes = ReadTokenChanges(*body, c.version);
  if (!changes) return Fail(changes.error());
  auto version = ExpectedTokenVersion(c);
  if (!version) return Fail(version.error());
  auto token = deps.tokens->Update(c.who, c.id(), std::move(*changes), *version);
  if (!token) return Fail(token.error());
  return TokenResponse(c.req, c.version, 200, *token, {});
}

Result<http::Response> Api::Impl::DeleteToken(const Call& c) const {
  auto version = ExpectedTokenVersion(c);
  if (!version) return Fail(version.error());
  if (auto ok = deps.tokens->Delete(c.who, c.id(), *version); !ok) return Fail(ok.error());
  return NoContent();
}

Result<std::optional<std::int64_t>> Api::Impl::ExpectedTokenVersion(const Call& c) const {
  auto if_match = ParseIfMatch(c.req.headers);
  if (!if_match) return Fail(if_match.error());
  if (!if_match->present || if_match->any) return std::nullopt;  // `*`: the write's own NotFound decides
  if (if_match->versions.size() == 1 && !if_match->foreign) return if_match->versions.front();
  // Several tags, or none vppd could have written: the one the token is at, if listed. The
  // write still checks that version under its row lock, so nothing can come in between.
  auto current = deps.tokens->Get(c.who, c.id());
  if (!current) return Fail(current.error());
  const auto& listed = if_match->versions;
  if (std::find(listed.begin(), listed.end(), current->row_version) != listed.end()) return current->row_version;
  return Fail(Error::Aborted("The If-Match ETag does not match the vppToken's current version (" +
                             VppTokenETag(current->row_version) + "): read it again."));
}

Result<http::Response> Api::Impl::CreateToken(const Call& c) const {
  const http::Request& req = c.req;
  const ApiVersion v = c.version;
  if (auto ok = RequireJsonAccepted(req); !ok) return Fail(ok.error());
  auto body = ReadJsonObject(req);
  if (!body) return Fail(body.error());
  auto changes = ReadTokenChanges(*body, v);
  if (!changes) return Fail(changes.error());
  auto token = deps.tokens->Create(c.who, std::move(*changes));
  if (!token) return Fail(token.error());
  http::Response r = TokenResponse(req, v, 201, *token, {});
  r.headers.emplace_back("Location",
                         BaseUrl(req) + "/" + VersionSegment(v) + "/deviceAppManagement/vppTokens/" + token->id);
  return r;
}

http::Response Api::Impl::TokenResponse(const http::Request& req, ApiVersion v, int status,
                                        const store::VppToken& token, const std::vector<std::string>& select) const {
  // Written straight into the body: the hot path of every item read.
  std::string body;
  body.reserve(1536);  // a full entity with one action result is ~1.1 KB
  JsonWriter w(body);
  w.BeginObject();
  w.Key("@odata.context");
  w.String(ContextUrl(req, v, {"deviceAppManagement/vppTokens", SelectFragment(select), "/$entity"}));
  WriteVppTokenMembers(token, v, select, w);
  w.EndObject();
  http::Response r = Json(status, std::move(body));
  r.headers.emplace_back("ETag", VppTokenETag(token.row_version));
  return r;
}

}  // namespace vppd::graph
