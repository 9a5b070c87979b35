// Simulator: construction, request routing, counters.
#include "simulator.h"

#include <algorithm>
#include <charconv>
#include <ctime>

#include <boost/url.hpp>

#include "generator.h"
#include "sim_internal.h"

namespace vppd::sim {

std::string FormatAppleDate(Timestamp t) {
  const std::time_t secs = static_cast<std::time_t>(t / 1'000'000 - (t % 1'000'000 < 0 ? 1 : 0));
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S+0000", &tm);
  return buf;
}

std::optional<bool> ParseBoolParam(std::string_view v) {
  auto eq = [&](std::string_view w) {
    return v.size() == w.size() &&
           std::equal(v.begin(), v.end(), w.begin(), [](char a, char b) { return std::tolower(a) == b; });
  };
  if (eq("true") || v == "1") return true;
  if (eq("false") || v == "0") return false;
  return std::nullopt;
}

std::optional<std::int64_t> ParseInt32Param(std::string_view v) {
  std::int64_t x = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || end != v.data() + v.size() || v.empty()) return std::nullopt;
  if (x < INT32_MIN || x > INT32_MAX) return std::nullopt;
  return x;
}

Simulator::Simulator(SimOptions options, const Clock& clock)
    : options_(std::move(options)),
      clock_(clock),
      page_size_(std::max<std::size_t>(1, options_.page_size)),
      limits_(options_.limits),
      invalid_token_http_200_(options_.invalid_token_http_200),
      rate_limit_(options_.rate_limit),
      event_delay_(options_.event_delay),
      faults_(options_.seed) {
  if (options_.token_expiration == 0) options_.token_expiration = 1920407602LL * 1'000'000;  // 2030-11-08T22:33:22Z
  notifier_ = std::make_unique<Notifier>(options_.seed,
                                         options_.notification_sender ? options_.notification_sender() : CurlSender(),
                                         options_.notification_retry_scale);
}

Simulator::~Simulator() {
  {
    std::lock_guard lock(pump_mu_);
    pump_stop_ = true;
  }
  pump_cv_.notify_all();
  if (pump_.joinable()) pump_.join();
}

Result<std::unique_ptr<Simulator>> Simulator::Create(SimOptions options, const Clock& clock) {
  std::unique_ptr<Simulator> sim(new Simulator(std::move(options), clock));
  {
    std::unique_lock lock(sim->mu_);
    if (auto s = sim->Build(); !s) return Fail(s.error());
  }
  if (sim->options_.background_events) {
    Simulator* raw = sim.get();
    sim->pump_ = std::thread([raw] { raw->PumpEvents(); });
  }
  return sim;
}

Status Simulator::Build() {
  std::vector<std::unique_ptr<Location>> locs;
  if (!options_.data_file.empty()) {
    auto loaded = LoadDataFile(options_.data_file, options_.token_expiration, options_.history_limit);
    if (!loaded) return Fail(loaded.error());
    locs = std::move(*loaded);
  } else {
    const int count = std::max(1, options_.locations);
    for (int i = 0; i < count; ++i) {
      GenerateOptions g;
      g.seed = options_.seed;
      g.index = i;
      g.assets = i == 0 ? options_.assets : std::min<std::int64_t>(options_.assets, 50);
      g.assignments = i == 0 ? options_.assignments : std::min<std::int64_t>(options_.assignments, 500);
      g.users = options_.users;
      g.token_expiration = options_.token_expiration;
      g.history_limit = options_.history_limit;
      locs.push_back(GenerateLocation(g));
    }
  }
  locations_ = std::move(locs);
  IndexTokens();
  return {};
}

void Simulator::IndexTokens() {
  tokens_.clear();
  for (std::size_t l = 0; l < locations_.size(); ++l)
    for (std::size_t t = 0; t < locations_[l]->tokens.size(); ++t) tokens_[locations_[l]->tokens[t].stoken] = {l, t};
}

std::string Simulator::DefaultSToken() const {
  std::shared_lock lock(mu_);
  if (locations_.empty() || locations_[0]->tokens.empty()) return {};
  return locations_[0]->tokens[0].stoken;
}

void Simulator::CountRequest(std::string_view method, std::string_view path, std::string_view location) {
  std::string key;
  key.reserve(method.size() + path.size() + 1);
  key.append(method).push_back(' ');
  key.append(path);
  std::lock_guard lock(counters_mu_);
  if (location.empty()) {
    ++counters_[key];
  } else {
    ++location_counters_[std::string(location)][key];
  }
}

bool Simulator::ControlAuthorized(const http::Request& req) const {
  const std::string& expected = options_.control_token;
  if (expected.empty()) return true;
  const std::string_view header = req.Header("Authorization").value_or("");
  constexpr std::string_view kScheme = "Bearer ";
  if (header.size() != kScheme.size() + expected.size() || header.substr(0, kScheme.size()) != kScheme) return false;
  // In time that depends on the length only (the length of the token is no secret).
  unsigned char diff = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<unsigned char>(header[kScheme.size() + i] ^ expected[i]);
  }
  return diff == 0;
}

http::Response ServerErrorResponse(const http::ServerError& error, const http::Request&) {
  const int number = error.status == 500   ? kErrInternal
                     : error.status == 503 ? kErrServiceUnavailable
                                           : kErrInvalidArgument;
  http::Response r = http::Response::Json(error.status, ErrorResponseJson({number, std::string(error.message), {}}));
  if (error.status == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

http::Response Simulator::Handle(const http::Request& req) {
  auto url = boost::urls::parse_origin_form(req.target);
  if (!url) {
    CountRequest(req.method, "(unparsable)", {});
    return AppleErrorReply(kErrInvalidArgument, "The request target is not a valid path and query.");
  }
  std::string path = url->path();
  Query query;
  for (auto p : url->params()) query.items.emplace_back(p.key, p.value);
  CountRequest(req.method, path, {});

  constexpr std::string_view kApplePrefix = "/mdm/v2/";
  if (path == "/_sim" || path.rfind("/_sim/", 0) == 0) {
    if (!ControlAuthorized(req)) {
      http::Response r =
          http::Response::Json(401, R"({"error":"the control API needs Authorization: Bearer <the --control-token>"})");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    }
    return HandleControl(req, path, query);
  }
  if (path == "/lookup") {
    if (req.method != "GET") {
      http::Response r = AppleErrorReply(kErrUnsupportedMethod);
      r.headers.emplace_back("Allow", "GET");
      return r;
    }
    std::shared_lock lock(mu_);
    return Lookup(query);
  }
  if (path.rfind(kApplePrefix, 0) == 0)
    return HandleApple(req, std::string_view(path).substr(kApplePrefix.size()), query);
  return http::Response::Json(404, ErrorResponseJson({kErrInvalidArgument, "No such endpoint: " + path, {}}));
}

}  // namespace vppd::sim
