// Routing and the handlers of the Graph surface. Each handler: parse and validate,
// call one service function, serialise. Errors go through errors.cc.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>

#include <boost/json.hpp>
#include <boost/url.hpp>

#include "auth/auth.h"
#include "base/log.h"
#include "base/metrics.h"
#include "graph/errors.h"
#include "graph/graph.h"
#include "graph/json_writer.h"
#include "graph/metadata.h"
#include "graph/model.h"
#include "graph/odata.h"
#include "graph/store_mapping.h"
#include "service/service.h"

namespace vppd::graph {
namespace json = boost::json;
namespace {

constexpr char kJsonContentType[] =
    "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8";

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True when the Accept header (absent = anything) admits `media` ("application/json").
bool Accepts(const http::Request& req, std::string_view media) {
  const auto accept = req.Header("Accept");
  if (!accept || TrimSpace(*accept).empty()) return true;
  const std::string type(media.substr(0, media.find('/')));
  std::string_view rest = *accept;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    const auto semi = item.find(';');
    const std::string range = Lower(TrimSpace(item.substr(0, semi)));
    double q = 1.0;
    if (semi != std::string_view::npos) {
      std::string_view params = item.substr(semi + 1);
      while (!params.empty()) {
        const auto next = params.find(';');
        const std::string_view p = TrimSpace(params.substr(0, next));
        if (p.size() > 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
          try {
            q = std::stod(std::string(p.substr(2)));
          } catch (...) {
            q = 0;  // A malformed weight counts as "not acceptable" for that range.
          }
        }
        params = next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
      }
    }
    if (q <= 0) continue;
    if (range == "*/*" || range == type + "/*" || range == media) return true;
  }
  return false;
}

bool IsJsonContentType(const http::Request& req) {
  const auto ct = req.Header("Content-Type");
  if (!ct) return false;
  const std::string media = Lower(TrimSpace(ct->substr(0, ct->find(';'))));
  return media == "application/json";
}

std::string JoinMethods(std::span<const std::string_view> methods) {
  std::string out;
  for (const auto& m : methods) out += (out.empty() ? "" : ", ") + std::string(m);
  return out;
}

service::Principal ToPrincipal(auth::Caller&& c) {
  return {std::move(c.tenant_id), std::move(c.object_id), std::move(c.app_id), c.personal_account, c.app_only,
          std::move(c.scopes),    std::move(c.roles)};
}

// The path segments of a plain request target such as
// "/beta/deviceAppManagement/vppTokens/{id}": no query, no percent-encoding, no
// empty or dot segment, only letters, digits, "-._~", parentheses and quotes (what
// the SDKs send for item reads). Split here, without Boost.URL's general parse and
// per-segment decoding, which give the same segments for such a target (~0.5 µs of
// a ~17 µs verified request, measured with perf). False for anything else, which
// the general parser then decides.
bool PlainSegments(std::string_view target, std::vector<std::string>& out) {
  if (target.size() < 2 || target[0] != '/') return false;
  for (char c : target) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
                       c == '-' || c == '.' || c == '_' || c == '~' || c == '(' || c == ')' || c == '\'';
    if (!plain) return false;
  }
  if (target.find("//") != std::string_view::npos || target.find("/.") != std::string_view::npos) return false;
  out.reserve(6);
  for (std::size_t start = 1;;) {
    const std::size_t slash = target.find('/', start);
    out.emplace_back(target.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

// A parsed request path below the version segment.
struct Path {
  ApiVersion version = ApiVersion::kBeta;
  std::vector<std::string> segments;  // decoded, after the version
};

// "vppTokens('id')" → key; nullopt when the segment has no parenthesised key.
std::optional<std::string> ParenthesisedKey(std::string_view segment, std::string_view name) {
  if (segment.size() < name.size() + 2 || segment.substr(0, name.size()) != name || segment[name.size()] != '(' ||
      segment.back() != ')') {
    return std::nullopt;
  }
  std::string_view inner = segment.substr(name.size() + 1, segment.size() - name.size() - 2);
  if (inner.size() >= 2 && inner.front() == '\'' && inner.back() == '\'') {
    inner = inner.substr(1, inner.size() - 2);
    std::string key;
    for (std::size_t i = 0; i < inner.size(); ++i) {
      key += inner[i];
      if (inner[i] == '\'' && i + 1 < inner.size() && inner[i + 1] == '\'') ++i;
    }
    return key;
  }
  return std::string(inner);
}

// A qualified name's local part: "microsoft.graph.x" and "graph.x" (Graph's $metadata declares
// Alias="graph" for its namespace, and the Kiota-generated SDKs address casts and bound
// operations alias-qualified, e.g. mobileApps/{id}/graph.iosVppApp) → "x"; nullopt when the
// segment is not namespace-qualified.
std::optional<std::string_view> LocalName(std::string_view segment) {
  for (std::string_view prefix : {"microsoft.graph.", "graph."}) {
    if (segment.size() > prefix.size() && segment.starts_with(prefix)) return segment.substr(prefix.size());
  }
  return std::nullopt;
}

bool IsAction(std::string_view segment, std::string_view name) { return segment == name || LocalName(segment) == name; }

// getLicensesForApp(...), unqualified or namespace-qualified.
bool IsGetLicensesForApp(std::string_view segment) {
  return segment.starts_with("getLicensesForApp") || LocalName(segment).value_or("").starts_with("getLicensesForApp");
}

}  // namespace

struct Api::Impl {
  Dependencies deps;
  Options options;
  QueryLimits limits;

  // --- response helpers -------------------------------------------------

  // Appends the base URL ("https://host") to `out`.
  void AppendBaseUrl(std::string& out, const http::Request& req) const {
    if (!options.public_url.empty()) {
      out += options.public_url;
      return;
    }
    const auto proto = req.Header("X-Forwarded-Proto");
    out += proto && Lower(*proto) == "https" ? "https://" : "http://";
    out += req.Header("Host").value_or("localhost");
  }

  std::string BaseUrl(const http::Request& req) const {
    std::string out;
    AppendBaseUrl(out, req);
    return out;
  }

  // The @odata.context URL: base, version, "/$metadata#", then the fragment's pieces.
  // Built in one string (every JSON response has one).
  std::string ContextUrl(const http::Request& req, ApiVersion v,
                         std::initializer_list<std::string_view> fragment) const {
    std::string out;
    out.reserve(128);
    AppendBaseUrl(out, req);
    out += '/';
    out += VersionSegment(v);
    out += "/$metadata#";
    for (std::string_view piece : fragment) out += piece;
    return out;
  }

  static http::Response Json(int status, std::string body) {
    http::Response r;
    r.status = status;
    r.headers = {{"Content-Type", kJsonContentType}, {"OData-Version", "4.0"}};
    r.body = std::move(body);
    return r;
  }
  static http::Response Json(int status, const json::object& body) { return Json(status, json::serialize(body)); }

  static http::Response MethodNotAllowed(const http::Request& req, std::span<const std::string_view> allowed) {
    Error e{Code::kMethodNotAllowed,
            "The HTTP method '" + req.method + "' is not allowed on this resource; allowed: " + JoinMethods(allowed) +
                ".",
            {},
            "MethodNotAllowed"};
    http::Response r = ErrorResponse(e, req);
    r.headers.emplace_back("Allow", JoinMethods(allowed));
    return r;
  }

  static Error SegmentNotFound(std::string_view segment) {
    return Error::InvalidArgument("Resource not found for the segment '" + std::string(segment) + "'.",
                                  std::string(segment))
        .WithGraphCode("BadRequest");
  }

  // Parses a JSON object body; 415 for another media type, 400 for not JSON / not an object.
  static Result<json::object> ReadJsonObject(const http::Request& req) {
    if (!IsJsonContentType(req)) {
      return Fail(Error{Code::kUnsupportedMediaType,
                        "The request body must be 'application/json'" +
                            std::string(req.Header("Content-Type") ? ", not '" +
                                                                         std::string(*req.Header("Content-Type")) + "'."
                                                                   : "; the Content-Type header is missing."),
                        "Content-Type", "UnsupportedMediaType"});
    }
    if (TrimSpace(req.body).empty()) {
      return Fail(Error::InvalidArgument("The request body is empty; a JSON object is required.")
                      .WithGraphCode("BadRequest"));
    }
    boost::system::error_code ec;
    json::parse_options opts;
    opts.max_depth = 32;
    json::value v = json::parse(req.body, ec, {}, opts);
    if (ec) {
      return Fail(Error::InvalidArgument("The request body is not valid JSON: " + ec.message() + ".")
                      .WithGraphCode("BadRequest"));
    }
    if (!v.is_object()) {
      return Fail(Error::InvalidArgument("The request body must be a JSON object.").WithGraphCode("BadRequest"));
    }
    return std::move(v.get_object());
  }

  // --- dispatch ---------------------------------------------------------

  // Times every request and counts it by route template and status (GET /metrics).
  http::Response Handle(http::Request& req) const {
    const auto start = std::chrono::steady_clock::now();
    std::string route = "other";
    http::Response response = Dispatch(req, route);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    metrics::Counter("vppd_http_requests_total", "HTTP requests by route template, method and status",
                     {{"route", route}, {"method", KnownMethod(req.method)}, {"status", std::to_string(response.status)}})
        .Inc();
    metrics::Histogram("vppd_http_request_duration_seconds", "Time to answer, by route template", {{"route", route}})
        .Observe(seconds);
    return response;
  }

  static std::string KnownMethod(const std::string& m) {
    for (const char* known : {"GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"}) {
      if (m == known) return m;
    }
    return "other";  // labels come from small fixed sets
  }

  // The route template of a path, for metrics: ids and function arguments replaced.
  static std::string RouteLabel(const std::vector<std::string>& s) {
    if (s.size() == 1 && (s[0] == "healthz" || s[0] == "metrics")) return s[0];
    if (s.size() < 2 || (s[0] != "beta" && s[0] != "v1.0")) return "other";
    std::string out = s[0] + "/";
    if (s.size() == 2) return s[1] == "$metadata" ? out + "$metadata" : "other";
    if (s[1] != "deviceAppManagement") return "other";
    const std::string& collection = s[2];
    const bool tokens = collection == "vppTokens" || collection.starts_with("vppTokens(");
    const bool apps = collection == "mobileApps" || collection.starts_with("mobileApps(");
    if (!tokens && !apps) return "other";
    out += tokens ? "vppTokens" : "mobileApps";
    std::size_t i = 3;
    if (collection.find('(') != std::string::npos) out += "/{id}";
    else if (i < s.size()) {
      const std::string& seg = s[i++];
      if (seg == "$count") out += "/$count";
      else if (IsAction(seg, "syncLicenseCounts")) out += "/syncLicenseCounts";
      else if (seg.find("getLicensesForApp") != std::string::npos) out += "/getLicensesForApp";
      else if (!CastType(seg, ApiVersion::kBeta).empty()) out += "/{cast}";
      else out += "/{id}";
    }
    for (; i < s.size(); ++i) {
      if (IsAction(s[i], "syncLicenses")) out += "/syncLicenses";
      else if (IsAction(s[i], "revokeLicenses")) out += "/revokeLicenses";
      else if (s[i] == "$count") out += "/$count";
      else if (s[i] == "assignedLicenses") out += "/assignedLicenses";
      else if (!CastType(s[i], ApiVersion::kBeta).empty()) out += "/{cast}";
      else return "other";
    }
    return out;
  }

  http::Response Dispatch(http::Request& req, std::string& route) const {
    std::vector<std::string> segments;
    std::string query;
    if (!PlainSegments(req.target, segments)) {
      boost::system::result<boost::urls::url_view> url = boost::urls::parse_origin_form(req.target);
      if (!url) {
        return ErrorResponse(Error::InvalidArgument("The request target '" + req.target.substr(0, 200) +
                                                    "' is not a valid origin-form URL.")
                                 .WithGraphCode("BadRequest"),
                             req);
      }
      for (auto seg : url->segments()) segments.emplace_back(seg);
      query = url->encoded_query();
    }
    while (!segments.empty() && segments.back().empty()) segments.pop_back();  // trailing '/'

    route = RouteLabel(segments);
    log::Context* log_context = log::Current();  // the HTTP server's, with the request's ids
    if (log_context != nullptr) log_context->route = route;

    if (segments.size() == 1 && segments[0] == "metrics" && options.metrics) {
      if (req.method != "GET" && req.method != "HEAD") {
        static constexpr std::string_view kAllowed[] = {"GET", "HEAD"};
        return MethodNotAllowed(req, kAllowed);
      }
      http::Response r = http::Response::Text(200, metrics::Render());
      r.headers = {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}};
      return r;
    }
    if (segments.size() == 1 && segments[0] == "healthz") {
      if (req.method != "GET" && req.method != "HEAD") {
        static constexpr std::string_view kAllowed[] = {"GET", "HEAD"};
        return MethodNotAllowed(req, kAllowed);
      }
      return http::Response::Json(200, R"({"status":"ok"})");
    }
    if (segments.empty() || (segments[0] != "beta" && segments[0] != "v1.0")) {
      return ErrorResponse(Error::NotFound("Invalid version: the path must start with /beta or /v1.0.",
                                           segments.empty() ? "" : segments[0])
                               .WithGraphCode("BadRequest"),
                           req);
    }
    Path path;
    path.version = segments[0] == "beta" ? ApiVersion::kBeta : ApiVersion::kV1;
    path.segments.assign(std::make_move_iterator(segments.begin() + 1), std::make_move_iterator(segments.end()));

    // Graph authenticates before it routes.
    std::string why;
    auto caller = deps.verifier->Verify(req.Header("Authorization").value_or(""), &why);
    if (!caller) return ErrorResponse(caller.error(), req);
    const service::Principal principal = ToPrincipal(std::move(*caller));
    if (log_context != nullptr) log_context->tenant_id = principal.tenant_id;
    if (deps.throttle != nullptr) {
      const bool is_write = req.method != "GET" && req.method != "HEAD";
      if (auto ok = deps.throttle->Admit(principal.tenant_id, principal.app_id, is_write); !ok) {
        return ErrorResponse(ok.error(), req);
      }
    }

    auto result = Route(req, path, query, principal);
    if (!result) return ErrorResponse(result.error(), req);
    return std::move(*result);
  }

  Result<http::Response> Route(const http::Request& req, const Path& path, const std::string& query,
                               const service::Principal& who) const {
    const auto& s = path.segments;
    const ApiVersion v = path.version;
    const bool beta = v == ApiVersion::kBeta;
    if (s.empty()) return Fail(SegmentNotFound(""));
    if (s[0] == "$metadata") return MetadataResponse(req, v, std::span(s).subspan(1));
    if (s[0] != "deviceAppManagement") return Fail(SegmentNotFound(s[0]));
    if (s.size() == 1) {
      return Fail(Error{Code::kUnimplemented,
                        "vppd serves deviceAppManagement/vppTokens and mobileApps; the deviceAppManagement "
                        "singleton itself is not implemented.",
                        "deviceAppManagement", "NotImplemented"});
    }
    if (s[1] == "mobileApps" || ParenthesisedKey(s[1], "mobileApps")) return RouteApps(req, path, query, who);

    // vppTokens, vppTokens('id'), vppTokens/{id}
    std::optional<std::string> key = ParenthesisedKey(s[1], "vppTokens");
    std::size_t next = 2;
    if (!key) {
      if (s[1] != "vppTokens") return Fail(SegmentNotFound(s[1]));
      if (s.size() == 2) return TokenCollection(req, v, query, who);
      if (s[2] == "$count") {
        if (s.size() > 3) return Fail(SegmentNotFound(s[3]));
        return TokenCount(req, v, query, who);
      }
      if (beta && IsAction(s[2], "syncLicenseCounts")) {
        if (s.size() > 3) return Fail(SegmentNotFound(s[3]));
        return SyncLicenseCounts(req, who);
      }
      if (beta && IsGetLicensesForApp(s[2])) {
        if (s.size() > 3) return Fail(SegmentNotFound(s[3]));
        return GetLicensesForApp(req, s[2], query, who);
      }
      key = s[2];
      next = 3;
    }
    if (key->empty()) return Fail(SegmentNotFound(s[1]));
    if (s.size() == next) return TokenItem(req, v, query, *key, who);
    if (s.size() == next + 1 && IsAction(s[next], "syncLicenses")) return SyncLicenses(req, v, *key, who);
    if (s.size() == next + 1 && beta && IsAction(s[next], "revokeLicenses")) return RevokeLicenses(req, *key, who);
    return Fail(SegmentNotFound(s[next]));
  }

  // --- actions and functions on vppTokens -------------------------------

  Result<http::Response> SyncLicenses(const http::Request& req, ApiVersion v, const std::string& id,
                                      const service::Principal& who) const {
    if (req.method != "POST") {
      static constexpr std::string_view kAllowed[] = {"POST"};
      return MethodNotAllowed(req, kAllowed);
    }
    if (auto ok = RequireJsonAccepted(req); !ok) return Fail(ok.error());
    // The seed: "this method takes no request body" — one sent anyway is ignored.
    auto token = deps.tokens->SyncLicenses(who, id);
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

  Result<http::Response> RevokeLicenses(const http::Request& req, const std::string& id,
                                        const service::Principal& who) const {
    if (req.method != "POST") {
      static constexpr std::string_view kAllowed[] = {"POST"};
      return MethodNotAllowed(req, kAllowed);
    }
    auto body = ReadJsonObject(req);
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
        return Fail(BadParameter(std::string(key), "is not a parameter of revokeLicenses (notifyManagedDevices, "
                                                   "revokeUntrackedLicenses)"));
      }
    }
    if (!notify) return Fail(BadParameter("notifyManagedDevices", "is required"));
    if (auto ok = deps.tokens->RevokeLicenses(who, id, *notify, untracked); !ok) return Fail(ok.error());
    return http::Response{204, {}, {}, {}, {}};
  }

  static Error BadParameter(const std::string& name, const std::string& why) {
    return Error::InvalidArgument("The parameter '" + name + "' " + why + ".", name).WithGraphCode("BadRequest");
  }

  Result<http::Response> SyncLicenseCounts(const http::Request& req, const service::Principal& who) const {
    if (req.method != "POST") {
      static constexpr std::string_view kAllowed[] = {"POST"};
      return MethodNotAllowed(req, kAllowed);
    }
    if (auto ok = deps.tokens->SyncLicenseCounts(who); !ok) return Fail(ok.error());
    return http::Response{204, {}, {}, {}, {}};
  }

  // getLicensesForApp(bundleId='x'), or with a parameter alias: (bundleId=@b)?@b='x'.
  static Result<std::string> ParseBundleIdArgument(std::string_view segment, std::string_view query) {
    auto bad = [&](const std::string& why) {
      return Fail(Error::InvalidArgument("Invalid function call '" + std::string(segment.substr(0, 200)) + "': " + why +
                                         " Use getLicensesForApp(bundleId='com.example.app').",
                                         "bundleId")
                      .WithGraphCode("BadRequest"));
    };
    const auto open = segment.find('(');
    if (open == std::string_view::npos || segment.back() != ')') return bad("the parameter list is missing.");
    const std::string_view name = segment.substr(0, open);
    if (name != "getLicensesForApp" && LocalName(name) != "getLicensesForApp") {
      return bad("unknown function '" + std::string(name) + "'.");
    }
    std::string_view args = segment.substr(open + 1, segment.size() - open - 2);
    const auto eq = args.find('=');
    if (eq == std::string_view::npos || TrimSpace(args.substr(0, eq)) != "bundleId") {
      return bad("the only parameter is bundleId.");
    }
    std::string_view value = TrimSpace(args.substr(eq + 1));
    std::string alias_value;
    if (!value.empty() && value.front() == '@') {
      // Parameter alias: its value is a query parameter of the same name.
      const std::string alias(value);
      auto params = boost::urls::parse_query(query);
      bool found = false;
      if (params) {
        for (auto p : *params) {
          if (p.key == alias && p.has_value) {
            alias_value = p.value;
            found = true;
          }
        }
      }
      if (!found) return bad("the parameter alias " + alias + " has no value in the query string.");
      value = alias_value;
    }
    if (value.size() < 2 || value.front() != '\'' || value.back() != '\'') {
      return bad("bundleId must be a string literal in single quotes.");
    }
    std::string out;
    const std::string_view inner = value.substr(1, value.size() - 2);
    for (std::size_t i = 0; i < inner.size(); ++i) {
      if (inner[i] == '\'') {
        if (i + 1 < inner.size() && inner[i + 1] == '\'') {
          out += '\'';
          ++i;
          continue;
        }
        return bad("a quote inside bundleId must be doubled ('').");
      }
      out += inner[i];
    }
    if (out.empty()) return bad("bundleId is empty.");
    return out;
  }

  Result<http::Response> GetLicensesForApp(const http::Request& req, const std::string& segment,
                                           const std::string& query, const service::Principal& who) const {
    if (req.method != "GET") {
      static constexpr std::string_view kAllowed[] = {"GET"};
      return MethodNotAllowed(req, kAllowed);
    }
    if (auto ok = RequireJsonAccepted(req); !ok) return Fail(ok.error());
    auto bundle_id = ParseBundleIdArgument(segment, query);
    if (!bundle_id) return Fail(bundle_id.error());
    auto summaries = deps.tokens->GetLicensesForApp(who, *bundle_id);
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

  // --- mobileApps ---------------------------------------------------------

  // A cast segment naming one of the VPP app types this version has; "" when not a cast.
  // Accepts the namespace alias too: the SDKs send graph.iosVppApp.
  static std::string CastType(std::string_view segment, ApiVersion v) {
    const std::optional<std::string_view> name = LocalName(segment);
    if (name == "iosVppApp") return "microsoft.graph.iosVppApp";
    if (name == "macOsVppApp" && v == ApiVersion::kBeta) return "microsoft.graph.macOsVppApp";
    return "";
  }

  Result<http::Response> RouteApps(const http::Request& req, const Path& path, const std::string& query,
                                   const service::Principal& who) const {
    const auto& s = path.segments;
    const ApiVersion v = path.version;
    auto only_get = [&]() -> std::optional<http::Response> {
      if (req.method == "GET") return std::nullopt;
      static constexpr std::string_view kAllowed[] = {"GET"};
      return MethodNotAllowed(req, kAllowed);
    };
    std::optional<std::string> key = ParenthesisedKey(s[1], "mobileApps");
    std::size_t next = 2;
    if (!key) {
      std::string cast;
      if (s.size() > 2) cast = CastType(s[2], v);
      const std::size_t rest = cast.empty() ? 2 : 3;
      if (s.size() == rest || (s.size() == rest + 1 && s[rest] == "$count")) {
        if (auto r = only_get()) return std::move(*r);
        return ListApps(req, v, query, cast, s.size() == rest + 1, who);
      }
      if (!cast.empty()) return Fail(SegmentNotFound(s[3]));
      key = s[2];
      next = 3;
    }
    if (auto r = only_get()) return std::move(*r);
    if (key->empty()) return Fail(SegmentNotFound(s[1]));
    std::string cast;
    if (s.size() > next) {
      cast = CastType(s[next], v);
      if (cast.empty()) return Fail(SegmentNotFound(s[next]));
      ++next;
    }
    auto app = deps.apps->Get(who, *key);
    if (!app) return Fail(app.error());
    if (!cast.empty() && MobileAppType(*app) != "#" + cast) {
      return Fail(Error::NotFound("The mobileApp '" + *key + "' is not a " + cast + ".", *key)
                      .WithGraphCode("ResourceNotFound"));
    }
    if (s.size() == next) {
      if (auto ok = RequireJsonAccepted(req); !ok) return Fail(ok.error());
      auto select = ParseSelectOnly(query, MobileAppEntity(v));
      if (!select) return Fail(select.error());
      json::object body;
      body["@odata.context"] =
          ContextUrl(req, v, {"deviceAppManagement/mobileApps", SelectFragment(*select), "/$entity"});
      WriteMobileApp(*app, v, *select, body);
      return Json(200, body);
    }
    if (s.size() == next + 1 && s[next] == "assignedLicenses" && !cast.empty() && v == ApiVersion::kBeta) {
      return AssignedLicenses(req, *app, cast, query, who);
    }
    return Fail(SegmentNotFound(s[next]));
  }

  Result<http::Response> ListApps(const http::Request& req, ApiVersion v, const std::string& query,
                                  const std::string& cast, bool count_segment, const service::Principal& who) const {
    const EntityDef& entity = MobileAppEntity(v);
    AllowedOptions allowed;
    allowed.expand = !count_segment;
    if (count_segment) {
      if (!Accepts(req, "text/plain")) {
        return Fail(Error{Code::kNotAcceptable, "The $count segment answers text/plain, which the Accept header excludes.",
                          "Accept", "NotAcceptable"});
      }
      allowed.orderby = allowed.top = allowed.skip = allowed.count = allowed.select = allowed.skiptoken = false;
    } else if (auto ok = RequireJsonAccepted(req); !ok) {
      return Fail(ok.error());
    }
    auto q = ParseQueryOptions(query, entity, allowed, RequestLimits(req));
    if (!q) return Fail(q.error());
    // A cast segment is a type filter (and v1.0 has iOS VPP apps only).
    std::string type = cast;
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
    const std::string path = "deviceAppManagement/mobileApps" + (cast.empty() ? "" : "/" + cast);
    json::array values;
    for (const auto& app : page->items) {
      json::object o;
      WriteMobileApp(app, v, q->select, o, q->expand);
      values.push_back(std::move(o));
    }
    return CollectionPage(req, v, path, query, *q, json::serialize(values), values.size(), page->has_more,
                          [&] { return deps.apps->Count(who, q->list.filter); });
  }

  Result<http::Response> AssignedLicenses(const http::Request& req, const store::MobileApp& app, const std::string& cast,
                                          const std::string& query, const service::Principal& who) const {
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
    auto page = deps.apps->AssignedLicenses(who, app.id, q->list.skip, q->list.limit);
    if (!page) return Fail(page.error());
    const std::string path = "deviceAppManagement/mobileApps/" + app.id + "/" + cast + "/assignedLicenses";
    json::array values;
    for (const auto& a : page->items) {
      json::object o;
      WriteAssignedLicense(app, a, o);
      values.push_back(std::move(o));
    }
    return CollectionPage(req, ApiVersion::kBeta, path, query, *q, json::serialize(values), values.size(),
                          page->has_more,
                          [] { return Result<std::int64_t>(0); });  // $count is not allowed here
  }

  // The envelope of a collection page: @odata.context, @odata.count when asked
  // (counted by `count`), @odata.nextLink when another page exists, and `values`
  // (the JSON array text of the page's `returned` entities).
  Result<http::Response> CollectionPage(const http::Request& req, ApiVersion v, const std::string& path,
                                        const std::string& query, const QueryOptions& q, std::string_view values,
                                        std::size_t returned_entities, bool has_more,
                                        const std::function<Result<std::int64_t>()>& count) const {
    std::string body;
    body.reserve(values.size() + 256);
    JsonWriter w(body);
    w.BeginObject();
    w.Key("@odata.context");
    w.String(ContextUrl(req, v, {path, SelectFragment(q.select)}));
    if (q.count) {
      auto n = count();
      if (!n) return Fail(n.error());
      w.Key("@odata.count");
      w.Int(*n);
    }
    const auto returned = static_cast<std::int64_t>(returned_entities);
    if (HasNextPage(q, returned, has_more)) {
      w.Key("@odata.nextLink");
      w.String(BaseUrl(req) + "/" + VersionSegment(v) + "/" + path + "?" +
               NextLinkQuery(query, q, q.list.skip + returned));
    }
    w.Key("value");
    w.Raw(values);
    w.EndObject();
    http::Response r = Json(200, std::move(body));
    if (q.applied_page_size) {
      r.headers.emplace_back("Preference-Applied", "odata.maxpagesize=" + std::to_string(*q.applied_page_size));
    }
    return r;
  }

  // The limits of one request: the server's, with the client's `Prefer: odata.maxpagesize=N`.
  QueryLimits RequestLimits(const http::Request& req) const {
    QueryLimits l = limits;
    if (auto prefer = req.Header("Prefer")) l.preferred_page_size = ParseMaxPageSize(*prefer);
    return l;
  }

  static std::string SelectFragment(const std::vector<std::string>& select) {
    if (select.empty()) return "";
    std::string out = "(";
    for (std::size_t i = 0; i < select.size(); ++i) out += (i ? "," : "") + select[i];
    return out + ")";
  }

  static Status RequireJsonAccepted(const http::Request& req) {
    if (!Accepts(req, "application/json")) {
      return Fail(Error{Code::kNotAcceptable,
                        "The Accept header '" + std::string(*req.Header("Accept")) +
                            "' excludes application/json, the only representation of this resource.",
                        "Accept", "NotAcceptable"});
    }
    return {};
  }

  // --- vppTokens --------------------------------------------------------

  Result<http::Response> TokenCollection(const http::Request& req, ApiVersion v, const std::string& query,
                                         const service::Principal& who) const {
    if (req.method == "GET") return ListTokens(req, v, query, who);
    if (req.method == "POST") return CreateToken(req, v, who);
    static constexpr std::string_view kAllowed[] = {"GET", "POST"};
    return MethodNotAllowed(req, kAllowed);
  }

  Result<http::Response> ListTokens(const http::Request& req, ApiVersion v, const std::string& query,
                                    const service::Principal& who) const {
    if (auto ok = RequireJsonAccepted(req); !ok) return Fail(ok.error());
    AllowedOptions allowed;
    auto q = ParseQueryOptions(query, VppTokenEntity(v), allowed, RequestLimits(req));
    if (!q) return Fail(q.error());
    auto page = deps.tokens->List(who, q->list);
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
    return CollectionPage(req, v, "deviceAppManagement/vppTokens", query, *q, values, page->items.size(),
                          page->has_more, [&] { return deps.tokens->Count(who, q->list.filter); });
  }

  Result<http::Response> TokenCount(const http::Request& req, ApiVersion v, const std::string& query,
                                    const service::Principal& who) const {
    if (req.method != "GET") {
      static constexpr std::string_view kAllowed[] = {"GET"};
      return MethodNotAllowed(req, kAllowed);
    }
    if (!Accepts(req, "text/plain")) {
      return Fail(Error{Code::kNotAcceptable, "The $count segment answers text/plain, which the Accept header excludes.",
                        "Accept", "NotAcceptable"});
    }
    AllowedOptions allowed;
    allowed.orderby = allowed.top = allowed.skip = allowed.count = allowed.select = allowed.skiptoken = false;
    auto q = ParseQueryOptions(query, VppTokenEntity(v), allowed, limits);
    if (!q) return Fail(q.error());
    auto n = deps.tokens->Count(who, q->list.filter);
    if (!n) return Fail(n.error());
    http::Response r = http::Response::Text(200, std::to_string(*n));
    r.headers.emplace_back("OData-Version", "4.0");
    return r;
  }

  Result<http::Response> TokenItem(const http::Request& req, ApiVersion v, const std::string& query,
                                   const std::string& id, const service::Principal& who) const {
    if (req.method == "GET") {
      if (auto ok = RequireJsonAccepted(req); !ok) return Fail(ok.error());
      auto select = ParseSelectOnly(query, VppTokenEntity(v));
      if (!select) return Fail(select.error());
      auto token = deps.tokens->Get(who, id);
      if (!token) return Fail(token.error());
      return EntityResponse(req, v, 200, *token, *select);
    }
    if (req.method == "PATCH") {
      if (auto ok = RequireJsonAccepted(req); !ok) return Fail(ok.error());
      auto body = ReadJsonObject(req);
      if (!body) return Fail(body.error());
      auto changes = ReadTokenChanges(*body, v);
      if (!changes) return Fail(changes.error());
      auto token = deps.tokens->Update(who, id, std::move(*changes));
      if (!token) return Fail(token.error());
      return EntityResponse(req, v, 200, *token, {});
    }
    if (req.method == "DELETE") {
      if (auto ok = deps.tokens->Delete(who, id); !ok) return Fail(ok.error());
      return http::Response{204, {}, {}, {}, {}};
    }
    static constexpr std::string_view kAllowed[] = {"GET", "PATCH", "DELETE"};
    return MethodNotAllowed(req, kAllowed);
  }

  Result<http::Response> CreateToken(const http::Request& req, ApiVersion v, const service::Principal& who) const {
    if (auto ok = RequireJsonAccepted(req); !ok) return Fail(ok.error());
    auto body = ReadJsonObject(req);
    if (!body) return Fail(body.error());
    auto changes = ReadTokenChanges(*body, v);
    if (!changes) return Fail(changes.error());
    auto token = deps.tokens->Create(who, std::move(*changes));
    if (!token) return Fail(token.error());
    http::Response r = EntityResponse(req, v, 201, *token, {});
    r.headers.emplace_back("Location",
                           BaseUrl(req) + "/" + VersionSegment(v) + "/deviceAppManagement/vppTokens/" + token->id);
    return r;
  }

  http::Response EntityResponse(const http::Request& req, ApiVersion v, int status, const store::VppToken& token,
                                const std::vector<std::string>& select) const {
    // Written straight into the body: the hot path of every item read.
    std::string body;
    body.reserve(1536);  // a full entity with one action result is ~1.1 KB
    JsonWriter w(body);
    w.BeginObject();
    w.Key("@odata.context");
    w.String(ContextUrl(req, v, {"deviceAppManagement/vppTokens", SelectFragment(select), "/$entity"}));
    WriteVppTokenMembers(token, v, select, w);
    w.EndObject();
    return Json(status, std::move(body));
  }
};

Api::Api(Dependencies deps, Options options) : impl_(std::make_unique<Impl>()) {
  impl_->deps = deps;
  impl_->options = std::move(options);
  impl_->limits.default_page_size = impl_->options.page_size;
  impl_->limits.max_top = impl_->options.max_top;
}

Api::~Api() = default;

http::Response Api::Handle(http::Request& request) const { return impl_->Handle(request); }

}  // namespace vppd::graph
