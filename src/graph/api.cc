// Routing of the Graph surface, and what its handlers share. One table
// (Api::Impl::Table) lists every route with its methods, handler and permission; it
// drives dispatch, the metrics/log route label and 405's Allow. The handlers live in
// a file per part of the surface (api_impl.h lists them).
#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>

#include <boost/json.hpp>
#include <boost/url.hpp>

#include "auth/auth.h"
#include "base/log.h"
#include "base/metrics.h"
#include "graph/api_impl.h"
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

bool IsJsonContentType(const http::Request& req) {
  const auto ct = req.Header("Content-Type");
  if (!ct) return false;
  const std::string media = Lower(TrimSpace(ct->substr(0, ct->find(';'))));
  return media == "application/json";
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

// True when `segment` calls the function `name` (unqualified or namespace-qualified),
// with or without its parenthesised arguments: "getLicensesForApp(bundleId='x')".
bool IsFunctionCall(std::string_view segment, std::string_view name) {
  const std::string_view local = LocalName(segment).value_or(segment);
  return local.starts_with(name) && (local.size() == name.size() || local[name.size()] == '(');
}

// True when `segment` is "name(key)" or "name('key')" with a key that is not empty
// (key syntax in parentheses, as the SDKs send for item reads).
bool HasParenthesisedKey(std::string_view segment, std::string_view name) {
  if (segment.size() < name.size() + 3 || !segment.starts_with(name) || segment[name.size()] != '(' ||
      segment.back() != ')') {
    return false;
  }
  return segment.substr(name.size() + 1, segment.size() - name.size() - 2) != "''";
}

// HTTP methods as bits: a route's methods, and the Allow header of a 405.
enum MethodBit : unsigned {
  kGet = 1,
  kHead = 2,
  kPost = 4,
  kPut = 8,
  kPatch = 16,
  kDelete = 32,
  kOtherMethod = 1u << 31,  // any method not named here
  kAnyMethod = ~0u,         // every method, named or not
};

constexpr std::pair<MethodBit, std::string_view> kMethodNames[] = {
    {kGet, "GET"}, {kHead, "HEAD"}, {kPost, "POST"}, {kPut, "PUT"}, {kPatch, "PATCH"}, {kDelete, "DELETE"}};

// The bit of a method; kOtherMethod for one not in kMethodNames.
unsigned BitOf(std::string_view method) {
  for (const auto& [bit, name] : kMethodNames) {
    if (method == name) return bit;
  }
  return kOtherMethod;
}

// "GET, PATCH, DELETE", in kMethodNames' order.
std::string JoinMethods(unsigned methods) {
  std::string out;
  for (const auto& [bit, name] : kMethodNames) {
    if ((methods & bit) == 0) continue;
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

// "deviceAppManagement/vppTokens/{id}/graph.syncLicenses" → its steps. Templates are
// string literals, so the steps' views stay valid.
std::vector<Step> ParseTemplate(std::string_view path) {
  std::vector<Step> steps;
  while (!path.empty()) {
    const auto slash = path.find('/');
    std::string_view text = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
    Step step{Step::kLiteral, text};
    if (text == "{id}") {
      step.kind = Step::kKey;
    } else if (text == "{cast}") {
      step.kind = Step::kCast;
    } else if (text.starts_with("graph.") && text.ends_with("(...)")) {
      step = {Step::kFunction, text.substr(6, text.size() - 6 - 5)};
    } else if (text.starts_with("graph.")) {
      step = {Step::kOperation, text.substr(6)};
    }
    steps.push_back(step);
  }
  return steps;
}

// The metrics and log label of a template below a version: ids, casts and function
// arguments as placeholders, operations unqualified; deviceAppManagement's routes
// without that first segment ("vppTokens/{id}/syncLicenses"), as the labels have
// always read (dashboards and log queries use them).
std::string TemplateLabel(const std::vector<Step>& steps) {
  std::string out;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (i == 0 && steps.size() > 1 && steps[0].text == "deviceAppManagement") continue;
    if (!out.empty()) out += '/';
    switch (steps[i].kind) {
      case Step::kKey:
        out += "{id}";
        break;
      case Step::kCast:
        out += "{cast}";
        break;
      default:
        out += steps[i].text;
    }
  }
  return out;
}

// A cast segment naming one of the VPP app types `v` has ("microsoft.graph.iosVppApp");
// "" when not a cast. Accepts the namespace alias too: the SDKs send graph.iosVppApp.
std::string_view CastType(std::string_view segment, ApiVersion v) {
  const std::optional<std::string_view> name = LocalName(segment);
  if (name == "iosVppApp") return "microsoft.graph.iosVppApp";
  if (name == "macOsVppApp" && v == ApiVersion::kBeta) return "microsoft.graph.macOsVppApp";
  return "";
}

// What a path's segments bound to a template's placeholders.
struct Captures {
  struct Key {
    std::size_t segment = 0;          // the path segment holding it
    std::string_view in_parentheses;  // "vppTokens" for "vppTokens('x')"; empty: the whole segment
  };
  std::array<Key, kMaxRouteKeys> keys;
  std::size_t key_count = 0;
  std::string_view cast;      // the qualified type of {cast}
  std::string_view function;  // the function-call segment, arguments included
};

// Matches `segments` against `steps`, segment by segment, without allocating. True
// when every segment matched; else `reached` is how many segments did.
bool MatchSteps(std::span<const Step> steps, std::span<const std::string> segments, ApiVersion v, Captures& captures,
                std::size_t& reached) {
  std::size_t p = 0;
  for (std::size_t k = 0; k < steps.size(); ++k, ++p) {
    reached = p;
    if (p == segments.size()) return false;
    const std::string_view segment = segments[p];
    const Step& step = steps[k];
    switch (step.kind) {
      case Step::kLiteral:
        if (segment == step.text) break;
        // "vppTokens('x')" stands for the two segments "vppTokens/x".
        if (k + 1 < steps.size() && steps[k + 1].kind == Step::kKey && HasParenthesisedKey(segment, step.text)) {
          captures.keys[captures.key_count++] = {p, step.text};
          ++k;
          break;
        }
        return false;
      case Step::kKey:
        if (segment.empty()) return false;
        captures.keys[captures.key_count++] = {p, {}};
        break;
      case Step::kCast:
        captures.cast = CastType(segment, v);
        if (captures.cast.empty()) return false;
        break;
      case Step::kOperation:
        if (!IsAction(segment, step.text)) return false;
        break;
      case Step::kFunction:
        if (!IsFunctionCall(segment, step.text)) return false;
        captures.function = segment;
        break;
    }
  }
  reached = p;
  return p == segments.size();
}

std::string KnownMethod(const std::string& m) {
  for (const char* known : {"GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"}) {
    if (m == known) return m;
  }
  return "other";  // labels come from small fixed sets
}

}  // namespace

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

void Api::Impl::AppendBaseUrl(std::string& out, const http::Request& req) const {
  if (!options.public_url.empty()) {
    out += options.public_url;
    return;
  }
  out += req.scheme.empty() ? std::string_view("http") : std::string_view(req.scheme);
  out += "://";
  out += req.host.empty() ? std::string_view("localhost") : std::string_view(req.host);  // HTTP/1.0 without Host
}

std::string Api::Impl::BaseUrl(const http::Request& req) const {
  std::string out;
  AppendBaseUrl(out, req);
  return out;
}

std::string Api::Impl::ContextUrl(const http::Request& req, ApiVersion v,
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

http::Response Api::Impl::Json(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.headers.reserve(3);  // room for one more (a single vppToken's ETag) without reallocating
  r.headers = {{"Content-Type", kJsonContentType}, {"OData-Version", "4.0"}};
  r.body = std::move(body);
  return r;
}

http::Response Api::Impl::Json(int status, const json::object& body) { return Json(status, json::serialize(body)); }

http::Response Api::Impl::MethodNotAllowed(const http::Request& req, unsigned allowed) {
  Error e{
      Code::kMethodNotAllowed,
      "The HTTP method '" + req.method + "' is not allowed on this resource; allowed: " + JoinMethods(allowed) + ".",
      {},
      {}};
  http::Response r = ErrorResponse(e, req);
  r.headers.emplace_back("Allow", JoinMethods(allowed));
  return r;
}

Error Api::Impl::SegmentNotFound(std::string_view segment) {
  return Error::InvalidArgument("Resource not found for the segment '" + std::string(segment) + "'.",
                                std::string(segment));
}

Result<json::object> Api::Impl::ReadJsonObject(const http::Request& req) {
  if (!IsJsonContentType(req)) {
    return Fail(
        Error{Code::kUnsupportedMediaType,
              "The request body must be 'application/json'" +
                  std::string(req.Header("Content-Type") ? ", not '" + std::string(*req.Header("Content-Type")) + "'."
                                                         : "; the Content-Type header is missing."),
              "Content-Type",
              {}});
  }
  if (TrimSpace(req.body).empty()) {
    return Fail(Error::InvalidArgument("The request body is empty; a JSON object is required."));
  }
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 32;
  json::value v = json::parse(req.body, ec, {}, opts);
  if (ec) {
    return Fail(Error::InvalidArgument("The request body is not valid JSON: " + ec.message() + "."));
  }
  if (!v.is_object()) {
    return Fail(Error::InvalidArgument("The request body must be a JSON object."));
  }
  return std::move(v.get_object());
}

http::Response Api::Impl::Handle(http::Request& req) const {
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

bool Api::Impl::Serves(const CompiledRoute& r, bool versioned, ApiVersion v) const {
  const unsigned flags = r.route->flags;
  if (((flags & kUnversioned) != 0) == versioned) return false;
  if ((flags & kBetaOnly) != 0 && v != ApiVersion::kBeta) return false;
  if ((flags & kIfDev) != 0 && deps.dev_key == nullptr) return false;
  return (flags & kIfMetrics) == 0 || options.metrics;
}

http::Response Api::Impl::CallAnonymous(const CompiledRoute& r, const http::Request& req, ApiVersion v,
                                        const std::string& query, std::string id) const {
  static const Principal kNobody;
  Call call{req, v, query, kNobody, {}, {}, {}};
  call.ids[0] = std::move(id);
  auto result = (this->*r.route->handler)(call);
  if (!result) return ErrorResponse(result.error(), req);
  return std::move(*result);
}

Error Api::Impl::BadParameter(const std::string& name, const std::string& why) {
  return Error::InvalidArgument("The parameter '" + name + "' " + why + ".", name);
}

Result<std::string> Api::Impl::ParseStringArgument(std::string_view segment, std::string_view query,
                                                   std::string_view function, std::string_view parameter,
                                                   std::string_view example) {
  const std::string param(parameter);
  auto bad = [&](const std::string& why) {
    return Fail(Error::InvalidArgument("Invalid function call '" + std::string(segment.substr(0, 200)) + "': " + why +
                                           " Use " + std::string(example) + ".",
                                       param));
  };
  const auto open = segment.find('(');
  if (open == std::string_view::npos || segment.back() != ')') return bad("the parameter list is missing.");
  const std::string_view name = segment.substr(0, open);
  if (name != function && LocalName(name) != function) {
    return bad("unknown function '" + std::string(name) + "'.");
  }
  std::string_view args = segment.substr(open + 1, segment.size() - open - 2);
  const auto eq = args.find('=');
  if (eq == std::string_view::npos || TrimSpace(args.substr(0, eq)) != parameter) {
    return bad("the only parameter is " + param + ".");
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
    return bad(param + " must be a string literal in single quotes.");
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
      return bad("a quote inside " + param + " must be doubled ('').");
    }
    out += inner[i];
  }
  if (out.empty()) return bad(param + " is empty.");
  return out;
}

Result<http::Response> Api::Impl::CollectionPage(const http::Request& req, ApiVersion v, const std::string& path,
                                                 const std::string& query, const QueryOptions& q,
                                                 std::string_view values, std::size_t returned_entities, bool has_more,
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

QueryLimits Api::Impl::RequestLimits(const http::Request& req) const {
  QueryLimits l = limits;
  if (auto prefer = req.Header("Prefer")) l.preferred_page_size = ParseMaxPageSize(*prefer);
  return l;
}

std::string Api::Impl::SelectFragment(const std::vector<std::string>& select) {
  if (select.empty()) return "";
  std::string out = "(";
  for (std::size_t i = 0; i < select.size(); ++i) out += (i ? "," : "") + select[i];
  return out + ")";
}

Status Api::Impl::RequireJsonAccepted(const http::Request& req) {
  if (!Accepts(req, "application/json")) {
    return Fail(Error{Code::kNotAcceptable,
                      "The Accept header '" + std::string(*req.Header("Accept")) +
                          "' excludes application/json, the only representation of this resource.",
                      "Accept",
                      {}});
  }
  return {};
}

Status Api::Impl::RequireCountAccepted(const http::Request& req) {
  if (!Accepts(req, "text/plain") && !Accepts(req, "application/json")) {
    return Fail(Error{Code::kNotAcceptable,
                      "The $count segment answers text/plain; the Accept header '" +
                          std::string(*req.Header("Accept")) + "' admits neither text/plain nor application/json.",
                      "Accept",
                      {}});
  }
  return {};
}

Result<http::Response> Api::Impl::Healthz(const Call&) const { return http::Response::Json(200, R"({"status":"ok"})"); }

Result<http::Response> Api::Impl::Metrics(const Call&) const {
  http::Response r = http::Response::Text(200, metrics::Render());
  r.headers = {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}};
  return r;
}

Result<http::Response> Api::Impl::Metadata(const Call& c) const { return MetadataResponse(c.req, c.version, {}); }

Result<http::Response> Api::Impl::DeviceAppManagement(const Call&) const {
  return Fail(Error{Code::kUnimplemented,
                    "vppd serves deviceAppManagement/vppTokens and mobileApps; the deviceAppManagement "
                    "singleton itself is not implemented.",
                    "deviceAppManagement",
                    {}});
}

http::Response Api::Impl::NoContent() { return http::Response{204, {}, {}, {}, {}}; }

http::Response Api::Impl::CountResponse(std::int64_t n) {
  http::Response r = http::Response::Text(200, std::to_string(n));
  r.headers.emplace_back("OData-Version", "4.0");
  return r;
}

// The Graph surface (and the unversioned endpoints: /healthz, /metrics, the console): one row per route and
// method. A path below /beta or /v1.0 is matched against the templates in this
// order, segment by segment; the first template that matches decides, so a literal
// comes before {id} in the same place. Its rows give the methods: another method is
// 405 with Allow. A path that no template matches is 400 "Resource not found for the
// segment" naming the first segment no template took, whatever the method.
//
// Template segments: a literal; {id}, any non-empty segment, or a key in parentheses
// on the literal before it ("vppTokens('x')" stands for "vppTokens/x"), up to
// kMaxRouteKeys of them in a template (the handler finds them in Call::ids, in order); {cast}, a
// derived type the version has ("microsoft.graph.iosVppApp" or "graph.iosVppApp");
// graph.name, a bound action or function without parameters, unqualified or
// namespace-qualified; graph.name(...), a function call with its arguments (the
// handler parses them from Call::function).
ContainerMembers RoutedContainer(ApiVersion version) {
  using Impl = Api::Impl;
  std::vector<std::string> firsts;
  std::set<std::string> keyed;
  for (const Impl::CompiledRoute& r : Impl::Table()) {
    const unsigned flags = r.route->flags;
    if ((flags & Impl::kUnversioned) != 0) continue;
    if ((flags & Impl::kBetaOnly) != 0 && version != ApiVersion::kBeta) continue;
    const std::string_view path = r.route->path;
    const std::string first(path.substr(0, path.find('/')));
    if (first.empty() || first[0] == '$') continue;
    if (std::find(firsts.begin(), firsts.end(), first) == firsts.end()) firsts.push_back(first);
    if (path == first + "/{id}") keyed.insert(first);
  }
  ContainerMembers out;
  for (const std::string& name : firsts) (keyed.contains(name) ? out.entity_sets : out.singletons).push_back(name);
  return out;
}

const std::vector<Api::Impl::CompiledRoute>& Api::Impl::Table() {
  using Op = service::Operation;
  using I = Impl;
  static constexpr unsigned kAll = kAnyMethod;
  static const Route kRoutes[] = {
      {"healthz", kGet | kHead, &I::Healthz, {}, kUnversioned},
      {"metrics", kGet | kHead, &I::Metrics, {}, kUnversioned | kIfMetrics},
      // The console (console.cc): its files at "/" and "/assets/", and what it needs before sign-in.
      {"", kGet | kHead, &I::ConsoleFile, {}, kUnversioned},
      {"index.html", kGet | kHead, &I::ConsoleFile, {}, kUnversioned},
      {"assets/{id}", kGet | kHead, &I::ConsoleFile, {}, kUnversioned},
      {"console/config.json", kGet | kHead, &I::ConsoleConfig, {}, kUnversioned},
      {"console/dev-token", kPost, &I::ConsoleDevToken, {}, kUnversioned | kIfDev},
      {"apple/notifications/{id}", kPost, &I::AppleNotification, {}, kUnversioned},
      {"$metadata", kGet, &I::Metadata, {}, kAnonymous},
      {"deviceAppManagement", kAll, &I::DeviceAppManagement, {}},
      {"deviceAppManagement/vppTokens", kGet, &I::ListTokens, Op::kReadTokens},
      {"deviceAppManagement/vppTokens", kPost, &I::CreateToken, Op::kCreateToken},
      {"deviceAppManagement/vppTokens/$count", kGet, &I::CountTokens, Op::kReadTokens},
      {"deviceAppManagement/vppTokens/graph.syncLicenseCounts", kPost, &I::SyncLicenseCounts, Op::kSyncLicenseCounts,
       kBetaOnly},
      {"deviceAppManagement/vppTokens/graph.getLicensesForApp(...)", kGet, &I::GetLicensesForApp,
       Op::kGetLicensesForApp, kBetaOnly},
      {"deviceAppManagement/vppTokens/{id}", kGet, &I::GetToken, Op::kReadTokens},
      {"deviceAppManagement/vppTokens/{id}", kPatch, &I::UpdateToken, Op::kUpdateToken},
      {"deviceAppManagement/vppTokens/{id}", kDelete, &I::DeleteToken, Op::kDeleteToken},
      {"deviceAppManagement/vppTokens/{id}/graph.syncLicenses", kPost, &I::SyncLicenses, Op::kSyncLicenses},
      {"deviceAppManagement/vppTokens/{id}/graph.revokeLicenses", kPost, &I::RevokeLicenses, Op::kRevokeLicenses,
       kBetaOnly},
      {"deviceManagement/depOnboardingSettings/graph.getExpiringVppTokenCount(...)", kGet, &I::GetExpiringVppTokenCount,
       Op::kGetExpiringVppTokenCount, kBetaOnly},
      {"deviceAppManagement/mobileApps", kGet, &I::ListApps, Op::kReadMobileApps},
      {"deviceAppManagement/mobileApps/$count", kGet, &I::CountApps, Op::kReadMobileApps},
      {"deviceAppManagement/mobileApps/{cast}", kGet, &I::ListApps, Op::kReadMobileApps},
      {"deviceAppManagement/mobileApps/{cast}/$count", kGet, &I::CountApps, Op::kReadMobileApps},
      {"deviceAppManagement/mobileApps/{id}", kGet, &I::GetApp, Op::kReadMobileApps},
      {"deviceAppManagement/mobileApps/{id}/{cast}", kGet, &I::GetApp, Op::kReadMobileApps},
      {"deviceAppManagement/mobileApps/{id}/{cast}/assignedLicenses", kGet, &I::AssignedLicenses, Op::kReadMobileApps,
       kBetaOnly},
      // vppd's own: the untracked-licences report (untracked.cc), declared in $metadata's vppd schema.
      {"deviceAppManagement/mobileApps/{id}/vppd.untrackedLicenses()", kGet, &I::AppUntrackedLicenses,
       Op::kReadMobileApps, kBetaOnly},
      {"deviceAppManagement/mobileApps/{id}/{cast}/vppd.untrackedLicenses()", kGet, &I::AppUntrackedLicenses,
       Op::kReadMobileApps, kBetaOnly},
      {"deviceAppManagement/mobileApps/{id}/assignments", kGet, &I::ListAssignments, Op::kReadAppAssignments},
      {"deviceAppManagement/mobileApps/{id}/assignments", kPost, &I::CreateAssignment, Op::kWriteAppAssignments},
      {"deviceAppManagement/mobileApps/{id}/assignments/{id}", kGet, &I::GetAssignment, Op::kReadAppAssignments},
      {"deviceAppManagement/mobileApps/{id}/assignments/{id}", kPatch, &I::UpdateAssignment, Op::kWriteAppAssignments},
      {"deviceAppManagement/mobileApps/{id}/assignments/{id}", kDelete, &I::DeleteAssignment, Op::kWriteAppAssignments},
      {"deviceAppManagement/mobileApps/{id}/graph.assign", kPost, &I::AssignApp, Op::kAssignApp},
      {"deviceAppManagement/mobileApps/{id}/deviceStatuses", kGet, &I::DeviceStatuses, Op::kReadAppInstallStatuses,
       kBetaOnly},
      {"deviceAppManagement/mobileApps/{id}/userStatuses", kGet, &I::UserStatuses, Op::kReadAppInstallStatuses,
       kBetaOnly},
      {"deviceAppManagement/mobileApps/{id}/{cast}/graph.assign", kPost, &I::AssignApp, Op::kAssignApp},
      {"deviceAppManagement/managedEBooks", kGet, &I::ListEBooks, Op::kReadManagedEBooks},
      {"deviceAppManagement/managedEBooks/$count", kGet, &I::CountEBooks, Op::kReadManagedEBooks},
      {"deviceAppManagement/managedEBooks/{id}", kGet, &I::GetEBook, Op::kReadManagedEBooks},
      {"deviceAppManagement/managedEBooks/{id}/assignments", kGet, &I::ListEBookAssignments, Op::kReadManagedEBooks},
      {"deviceAppManagement/managedEBooks/{id}/assignments", kPost, &I::CreateEBookAssignment,
       Op::kWriteManagedEBookAssignments},
      {"deviceAppManagement/managedEBooks/{id}/assignments/{id}", kGet, &I::GetEBookAssignment, Op::kReadManagedEBooks},
      {"deviceAppManagement/managedEBooks/{id}/assignments/{id}", kPatch, &I::UpdateEBookAssignment,
       Op::kWriteManagedEBookAssignments},
      {"deviceAppManagement/managedEBooks/{id}/assignments/{id}", kDelete, &I::DeleteEBookAssignment,
       Op::kWriteManagedEBookAssignments},
      {"deviceAppManagement/managedEBooks/{id}/graph.assign", kPost, &I::AssignEBook, Op::kAssignManagedEBook},
      {"deviceAppManagement/managedEBooks/{id}/userStateSummary", kGet, &I::EBookUserStateSummary,
       Op::kReadManagedEBooks},
      {"deviceAppManagement/managedEBooks/{id}/userStateSummary/{id}/deviceStates", kGet, &I::EBookDeviceStates,
       Op::kReadManagedEBooks},
      {"deviceAppManagement/managedEBooks/{id}/deviceStates", kGet, &I::EBookDeviceStates, Op::kReadManagedEBooks},
      {"deviceAppManagement/managedEBooks/{id}/installSummary", kGet, &I::EBookInstallSummary, Op::kReadManagedEBooks},
      {"deviceAppManagement/managedEBooks/{id}/vppd.untrackedLicenses()", kGet, &I::EBookUntrackedLicenses,
       Op::kReadManagedEBooks, kBetaOnly},
      // Revokes (beta): bound to iosVppApp and macOsVppApp, addressed with or without the cast.
      {"deviceAppManagement/mobileApps/{id}/graph.revokeAllLicenses", kPost, &I::RevokeAllLicenses,
       Op::kRevokeAppLicenses, kBetaOnly},
      {"deviceAppManagement/mobileApps/{id}/graph.revokeUserLicense", kPost, &I::RevokeUserLicense,
       Op::kRevokeAppLicenses, kBetaOnly},
      {"deviceAppManagement/mobileApps/{id}/graph.revokeDeviceLicense", kPost, &I::RevokeDeviceLicense,
       Op::kRevokeAppLicenses, kBetaOnly},
      {"deviceAppManagement/mobileApps/{id}/{cast}/graph.revokeAllLicenses", kPost, &I::RevokeAllLicenses,
       Op::kRevokeAppLicenses, kBetaOnly},
      {"deviceAppManagement/mobileApps/{id}/{cast}/graph.revokeUserLicense", kPost, &I::RevokeUserLicense,
       Op::kRevokeAppLicenses, kBetaOnly},
      {"deviceAppManagement/mobileApps/{id}/{cast}/graph.revokeDeviceLicense", kPost, &I::RevokeDeviceLicense,
       Op::kRevokeAppLicenses, kBetaOnly},
      {"users", kGet, &I::ListUsers, Op::kReadUsers},
      {"users", kPost, &I::CreateUser, Op::kWriteUsers},
      {"users/$count", kGet, &I::CountUsers, Op::kReadUsers},
      {"users/{id}", kGet, &I::GetUser, Op::kReadUsers},
      {"users/{id}", kPatch, &I::UpdateUser, Op::kWriteUsers},
      {"users/{id}", kDelete, &I::DeleteUser, Op::kWriteUsers},
      {"users/{id}/vppUserStatus", kGet, &I::VppUserStatus, Op::kReadUsers},
      {"groups", kGet, &I::ListGroups, Op::kReadGroups},
      {"groups", kPost, &I::CreateGroup, Op::kWriteGroups},
      {"groups/$count", kGet, &I::CountGroups, Op::kReadGroups},
      {"groups/{id}", kGet, &I::GetGroup, Op::kReadGroups},
      {"groups/{id}", kPatch, &I::UpdateGroup, Op::kWriteGroups},
      {"groups/{id}", kDelete, &I::DeleteGroup, Op::kWriteGroups},
      {"groups/{id}/members", kGet, &I::ListMembers, Op::kReadGroupMembers},
      {"groups/{id}/members/$count", kGet, &I::CountMembers, Op::kReadGroupMembers},
      {"groups/{id}/members/$ref", kPost, &I::AddMember, Op::kWriteGroupMembers},
      {"groups/{id}/members/{id}/$ref", kDelete, &I::RemoveMember, Op::kWriteGroupMembers},
      {"devices", kGet, &I::ListDevices, Op::kReadDevices},
      {"devices", kPost, &I::CreateDevice, Op::kWriteDevices},
      {"devices/$count", kGet, &I::CountDevices, Op::kReadDevices},
      {"devices/{id}", kGet, &I::GetDevice, Op::kReadDevices},
      {"devices/{id}", kPatch, &I::UpdateDevice, Op::kWriteDevices},
      {"devices/{id}", kDelete, &I::DeleteDevice, Op::kWriteDevices},
      {"deviceManagement/managedDevices", kGet, &I::ListManagedDevices, Op::kReadManagedDevices},
      {"deviceManagement/managedDevices", kPost, &I::CreateManagedDevice, Op::kWriteManagedDevices},
      {"deviceManagement/managedDevices/$count", kGet, &I::CountManagedDevices, Op::kReadManagedDevices},
      {"deviceManagement/managedDevices/{id}", kGet, &I::GetManagedDevice, Op::kReadManagedDevices},
      {"deviceManagement/managedDevices/{id}", kPatch, &I::UpdateManagedDevice, Op::kWriteManagedDevices},
      {"deviceManagement/managedDevices/{id}", kDelete, &I::DeleteManagedDevice, Op::kWriteManagedDevices},
      {"deviceManagement/managedDevices/{id}/graph.revokeAppleVppLicenses", kPost, &I::RevokeAppleVppLicenses,
       Op::kRevokeAppleVppLicenses, kBetaOnly},
      {"$batch", kPost, &I::Batch, {}},
  };
  static const std::vector<CompiledRoute> table = [] {
    std::vector<CompiledRoute> out;
    for (const Route& route : kRoutes) {
      CompiledRoute r{&route, ParseTemplate(route.path), {}, out.size()};
      if (std::count_if(r.steps.begin(), r.steps.end(), [](const Step& s) { return s.kind == Step::kKey; }) >
          static_cast<std::ptrdiff_t>(kMaxRouteKeys)) {
        throw std::logic_error("route template with more than kMaxRouteKeys keys: " + std::string(route.path));
      }
      for (const CompiledRoute& earlier : out) {
        if (earlier.route->path == route.path) {
          r.group = earlier.group;
          break;
        }
      }
      // Dispatch tries each template once and stops after the rows of the one that matched.
      if (r.group != out.size() && out.back().group != r.group) {
        throw std::logic_error("the rows of a route template must be adjacent: " + std::string(route.path));
      }
      if ((route.flags & kUnversioned) != 0) {
        r.labels[0] = r.labels[1] = route.path.empty() ? "/" : std::string(route.path);
      } else {
        const std::string label = TemplateLabel(r.steps);
        for (ApiVersion v : {ApiVersion::kBeta, ApiVersion::kV1}) {
          r.labels[static_cast<int>(v)] = std::string(VersionSegment(v)) + "/" + label;
        }
      }
      out.push_back(std::move(r));
    }
    return out;
  }();
  return table;
}

http::Response Api::Impl::Dispatch(http::Request& req, std::string& route) const {
  std::vector<std::string> segments;
  std::string query;
  if (!PlainSegments(req.target, segments)) {
    boost::system::result<boost::urls::url_view> url = boost::urls::parse_origin_form(req.target);
    if (!url) {
      return ErrorResponse(Error::InvalidArgument("The request target '" + req.target.substr(0, 200) +
                                                  "' is not a valid origin-form URL."),
                           req);
    }
    for (auto seg : url->segments()) segments.emplace_back(seg);
    query = url->encoded_query();
  }
  while (!segments.empty() && segments.back().empty()) segments.pop_back();  // trailing '/'

  const bool versioned = !segments.empty() && (segments[0] == "beta" || segments[0] == "v1.0");
  const ApiVersion v = versioned && segments[0] == "v1.0" ? ApiVersion::kV1 : ApiVersion::kBeta;
  const std::span<std::string> path = versioned ? std::span(segments).subspan(1) : std::span(segments);

  // The first template that matches decides; its rows (adjacent in the table) give the methods.
  const unsigned method = BitOf(req.method);
  const CompiledRoute* matched = nullptr;
  const CompiledRoute* chosen = nullptr;
  unsigned allowed = 0;
  Captures captures;
  std::size_t furthest = 0;             // segments matched by the template that went furthest, when none matched
  std::size_t failed_group = SIZE_MAX;  // the template the last row tried did not match
  for (const CompiledRoute& r : Table()) {
    if (matched != nullptr && r.group != matched->group) break;
    if (!Serves(r, versioned, v)) continue;
    if (matched == nullptr) {
      if (r.group == failed_group) continue;  // another method of a template that did not match
      std::size_t reached = 0;
      captures = {};
      if (!MatchSteps(r.steps, path, v, captures, reached)) {
        furthest = std::max(furthest, reached);
        failed_group = r.group;
        continue;
      }
      matched = &r;
    }
    allowed |= r.route->methods;
    if (chosen == nullptr && (r.route->methods & method) != 0) chosen = &r;
  }

  if (matched != nullptr) route = matched->labels[static_cast<int>(v)];
  log::Context* log_context = log::Current();  // the HTTP server's, with the request's ids
  if (log_context != nullptr) log_context->route = route;

  if (!versioned) {
    if (matched == nullptr) {
      return ErrorResponse(Error::NotFound("Invalid version: the path must start with /beta or /v1.0.",
                                           segments.empty() ? "" : segments[0])
                               .WithGraphCode("BadRequest"),
                           req);
    }
    if (chosen == nullptr) return MethodNotAllowed(req, allowed);
    return CallAnonymous(*chosen, req, v, query,
                         captures.key_count > 0 ? path[captures.keys[0].segment] : std::string());
  }
  // An anonymous route (kAnonymous) is answered before authentication; another method on
  // it is 405 only for an authenticated caller, like every other route.
  if (chosen != nullptr && (chosen->route->flags & kAnonymous) != 0) return CallAnonymous(*chosen, req, v, query);

  // Graph authenticates before it routes.
  std::string why;
  auto caller = deps.verifier->Verify(req.Header("Authorization").value_or(""), &why);
  if (!caller) return ErrorResponse(caller.error(), req);
  const Principal& principal = *caller;
  if (log_context != nullptr) log_context->tenant_id = principal.tenant_id;
  if (deps.throttle != nullptr) {
    const bool is_write = req.method != "GET" && req.method != "HEAD";
    if (auto ok = deps.throttle->Admit(principal.tenant_id, principal.app_id, is_write); !ok) {
      return ErrorResponse(ok.error(), req);
    }
  }

  if (matched == nullptr) {
    const std::string_view unknown = furthest < path.size() ? std::string_view(path[furthest])
                                     : path.empty()         ? std::string_view()
                                                            : std::string_view(path.back());
    return ErrorResponse(SegmentNotFound(unknown), req);
  }
  if (chosen == nullptr) return MethodNotAllowed(req, allowed);
  if (const auto& permission = chosen->route->permission) {
    if (auto ok = service::Authorize(principal, *permission, deps.tokens->permission_profile()); !ok) {
      return ErrorResponse(ok.error(), req);
    }
  }

  Call call{req, v, query, principal, {}, captures.cast, captures.function};
  for (std::size_t k = 0; k < captures.key_count; ++k) {
    const Captures::Key& key = captures.keys[k];
    std::string& segment = path[key.segment];
    call.ids[k] = key.in_parentheses.empty() ? std::move(segment) : *ParenthesisedKey(segment, key.in_parentheses);
  }
  auto result = (this->*chosen->route->handler)(call);
  if (!result) return ErrorResponse(result.error(), req);
  return std::move(*result);
}

Api::Api(Dependencies deps, Options options) : impl_(std::make_unique<Impl>()) {
  impl_->deps = deps;
  impl_->options = std::move(options);
  // "https://graph.example.com/" and "https://graph.example.com" give the same links.
  while (impl_->options.public_url.ends_with('/')) impl_->options.public_url.pop_back();
  impl_->limits.default_page_size = impl_->options.page_size;
  impl_->limits.max_top = impl_->options.max_top;
}

Api::~Api() = default;

http::Response Api::Handle(http::Request& request) const { return impl_->Handle(request); }

}  // namespace vppd::graph
