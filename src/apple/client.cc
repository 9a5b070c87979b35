// apple::Client: the Apps and Books v2 endpoints over the transport (transport.h)
// and the parsers (parse.h); the walk engine.
#include "apple/client.h"

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <type_traits>

#include "apple/parse.h"
#include "apple/transport.h"

namespace vppd::apple {

namespace {

using internal::Batch;
using internal::HttpRequest;
using internal::PageMeta;
using Params = std::vector<std::pair<std::string, std::string>>;

AppleError LocalError(AppleErrorKind kind, std::string message) {
  AppleError e;
  e.kind = kind;
  e.error_message = std::move(message);
  return e;
}

std::string_view Trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

const char* Bool(bool b) { return b ? "true" : "false"; }

// Fills `request`/`attempts` of a parse error from the request it answered.
AppleError Located(AppleError e, const HttpRequest& req, int attempts) {
  e.request = req.display;
  e.attempts = attempts;
  return e;
}

class ClientImpl final : public Client {
 public:
  explicit ClientImpl(ClientOptions options) : transport_(std::move(options)) {
    base_ = transport_.options().base_url;
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
  }

  AppleResult<ServiceConfig> GetServiceConfig() override { return ReadServiceConfig(/*max_attempts=*/0); }

  // GetServiceConfig, with at most `max_attempts` requests (0: the retry policy's).
  AppleResult<ServiceConfig> ReadServiceConfig(int max_attempts) {
    const Timestamp now = transport_.clock().Now();
    const std::int64_t ttl =
        std::chrono::duration_cast<std::chrono::microseconds>(options().service_config_ttl).count();
    {
      std::lock_guard lock(config_mu_);
      if (config_ && now - config_->fetched_at < ttl) return *config_;
    }
    HttpRequest req = Get("/service/config", {});
    req.with_token = false;
    req.max_attempts = max_attempts;
    auto body = Call(req);
    if (!body) return tl::unexpected(body.error());
    auto config = internal::ParseServiceConfig(body->first);
    if (!config) return tl::unexpected(Located(config.error(), req, body->second));
    config->fetched_at = now;
    transport_.SetServiceRate(config->limits.max_request_per_second);
    std::lock_guard lock(config_mu_);
    config_ = *config;
    return *config;
  }

  AppleResult<ClientConfig> GetClientConfig() override {
    return CallAndParse(Get("/client/config", {}), internal::ParseClientConfig);
  }

  AppleResult<ClientConfig> SetClientConfig(const MdmInfo& mdm_info) override {
    return CallAndParse(Post("/client/config", internal::ClientConfigBody(mdm_info)), internal::ParseClientConfig);
  }

  AppleResult<ClientConfig> RegisterNotifications(const MdmInfo& mdm_info,
                                                  const NotificationSettings& notifications) override {
    return CallAndParse(Post("/client/config", internal::ClientConfigBody(mdm_info, &notifications)),
                        internal::ParseClientConfig);
  }

  AppleResult<WalkResult> WalkAssets(const AssetFilter& f, const PageCallback<Asset>& on_page) override {
    Params p;
    if (f.product_type) p.emplace_back("productType", *f.product_type);
    if (f.pricing_param) p.emplace_back("pricingParam", *f.pricing_param);
    if (f.revocable) p.emplace_back("revocable", Bool(*f.revocable));
    if (f.device_assignable) p.emplace_back("deviceAssignable", Bool(*f.device_assignable));
    if (f.unlimited) p.emplace_back("unlimited", Bool(*f.unlimited));
    if (f.min_available_count) p.emplace_back("minAvailableCount", std::to_string(*f.min_available_count));
    if (f.max_available_count) p.emplace_back("maxAvailableCount", std::to_string(*f.max_available_count));
    if (f.min_assigned_count) p.emplace_back("minAssignedCount", std::to_string(*f.min_assigned_count));
    if (f.max_assigned_count) p.emplace_back("maxAssignedCount", std::to_string(*f.max_assigned_count));
    if (f.adam_id) p.emplace_back("adamId", *f.adam_id);
    return Walk<Asset>("/assets", p, &internal::PageParser::Assets, on_page);
  }

  AppleResult<WalkResult> WalkAssignments(const AssignmentFilter& f,
                                          const PageCallback<AssignmentRef>& on_page) override {
    Params p;
    if (f.adam_id) p.emplace_back("adamId", *f.adam_id);
    if (f.pricing_param) p.emplace_back("pricingParam", *f.pricing_param);
    if (f.client_user_id) p.emplace_back("clientUserId", *f.client_user_id);
    if (f.serial_number) p.emplace_back("serialNumber", *f.serial_number);
    if (!f.since_version_id.empty()) p.emplace_back("sinceVersionId", f.since_version_id);
    if (f.exclude_inactive_users) p.emplace_back("excludeInactiveUsers", Bool(*f.exclude_inactive_users));
    return Walk<AssignmentRef>("/assignments", p, &internal::PageParser::Assignments, on_page);
  }

  AppleResult<WalkResult> WalkUsers(const UserFilter& f, const PageCallback<User>& on_page) override {
    Params p;
    if (f.active_only) p.emplace_back("activeOnly", Bool(*f.active_only));
    if (f.retired_only) p.emplace_back("retiredOnly", Bool(*f.retired_only));
    if (f.client_user_id) p.emplace_back("clientUserId", *f.client_user_id);
    if (!f.since_version_id.empty()) p.emplace_back("sinceVersionId", f.since_version_id);
    return Walk<User>("/users", p, &internal::PageParser::Users, on_page);
  }

  AppleResult<EventResponse> Associate(const ManageAssetsRequest& request) override {
    return CallAndParse(Post("/assets/associate", internal::ManageAssetsBody(request)), internal::ParseEventResponse);
  }

  AppleResult<EventResponse> Disassociate(const ManageAssetsRequest& request) override {
    return CallAndParse(Post("/assets/disassociate", internal::ManageAssetsBody(request)),
                        internal::ParseEventResponse);
  }

  AppleResult<EventResponse> Revoke(const std::vector<std::string>& client_user_ids,
                                    const std::vector<std::string>& serial_numbers) override {
    return CallAndParse(Post("/assets/revoke", internal::RevokeBody(client_user_ids, serial_numbers)),
                        internal::ParseEventResponse);
  }

  AppleResult<EventResponse> CreateUsers(const std::vector<ManagedUser>& users) override {
    return CallAndParse(Post("/users/create", internal::ManageUsersBody(users)), internal::ParseEventResponse);
  }

  AppleResult<EventResponse> UpdateUsers(const std::vector<ManagedUser>& users) override {
    return CallAndParse(Post("/users/update", internal::ManageUsersBody(users)), internal::ParseEventResponse);
  }

  AppleResult<EventResponse> RetireUsers(const std::vector<std::string>& client_user_ids) override {
    std::vector<ManagedUser> users;
    users.reserve(client_user_ids.size());
    for (const std::string& id : client_user_ids) users.push_back({id, "", ""});
    return CallAndParse(Post("/users/retire", internal::ManageUsersBody(users)), internal::ParseEventResponse);
  }

  AppleResult<EventStatus> GetEventStatus(const std::string& event_id) override {
    if (event_id.empty()) return tl::unexpected(LocalError(AppleErrorKind::kInvalidArgument, "the eventId is empty"));
    return CallAndParse(Get("/status", {{"eventId", event_id}}), internal::ParseEventStatus);
  }

  AppleResult<EventStatus> WaitForEvent(const std::string& event_id, std::chrono::milliseconds interval,
                                        std::chrono::milliseconds max_wait) override {
    const Timestamp start = transport_.clock().Now();
    const std::int64_t budget = max_wait.count() * 1000;
    for (;;) {
      auto status = GetEventStatus(event_id);
      if (!status || !status->Pending()) return status;
      const Timestamp elapsed = transport_.clock().Now() - start;
      if (elapsed + interval.count() * 1000 > budget) return status;
      transport_.Sleep(interval);
    }
  }

  AppleResult<std::vector<AppMetadata>> LookupMetadata(const std::vector<std::string>& adam_ids) override {
    std::vector<AppMetadata> out;
    if (adam_ids.empty()) return out;
    auto config = GetServiceConfig();
    if (!config) return tl::unexpected(config.error());
    const std::string& url = config->urls.content_metadata_lookup;
    const bool https = url.rfind("https://", 0) == 0;
    const bool http = url.rfind("http://", 0) == 0;
    if (!https && !(http && options().allow_insecure_http))
      return tl::unexpected(LocalError(
          AppleErrorKind::kMalformedResponse,
          "the service config's contentMetadataLookup URL is missing or not https: '" + url.substr(0, 200) + "'"));
    // Apple's lookup takes a comma-separated id list; 100 per request keeps
    // the URL short of any proxy's limit.
    constexpr std::size_t kBatch = 100;
    for (std::size_t i = 0; i < adam_ids.size(); i += kBatch) {
      std::string ids;
      for (std::size_t j = i; j < std::min(adam_ids.size(), i + kBatch); ++j) {
        if (!ids.empty()) ids.push_back(',');
        ids += adam_ids[j];
      }
      HttpRequest req;
      req.with_token = false;
      req.url = url;
      for (const auto& [k, v] : Params{{"version", "2"},
                                       {"p", "mdm-lockup"},
                                       {"caller", "MDM"},
                                       {"platform", options().lookup_platform},
                                       {"cc", options().lookup_country},
                                       {"l", "en"},
                                       {"id", ids}})
        internal::AppendQuery(req.url, k, v);
      req.display = "GET lookup (" + std::to_string(std::min(kBatch, adam_ids.size() - i)) + " ids)";
      auto body = Call(req);
      if (!body) return tl::unexpected(body.error());
      if (auto s = internal::ParseLookup(body->first, &out); !s)
        return tl::unexpected(Located(s.error(), req, body->second));
    }
    return out;
  }

 private:
  const ClientOptions& options() const { return transport_.options(); }

  HttpRequest Get(const std::string& path, const Params& params) {
    HttpRequest r;
    r.url = base_ + path;
    for (const auto& [k, v] : params) internal::AppendQuery(r.url, k, v);
    r.display = "GET " + r.url.substr(base_.size());
    return r;
  }

  HttpRequest Post(const std::string& path, std::string body) {
    HttpRequest r;
    r.post = true;
    r.url = base_ + path;
    r.body = std::move(body);
    r.display = "POST " + path;
    return r;
  }

  // The location's requests are paced at the service config's
  // maxRequestPerSecond, and at Apple's usual 15 until it is known. So the
  // first one a client sends reads it first (once, one attempt; when that
  // fails, 15 it stays, and GetServiceConfig tells the caller why): a job's
  // first requests (status polls, a walk) are not held to 15 a second while
  // Apple allows more. Nothing to read when the options set a rate.
  void LearnRate() {
    if (options().max_requests_per_second > 0) return;
    std::call_once(rate_read_, [this] { (void)ReadServiceConfig(/*max_attempts=*/1); });
  }

  // One request → (body, attempts).
  AppleResult<std::pair<std::string, int>> Call(const HttpRequest& req) {
    if (req.with_token) LearnRate();
    Batch batch(transport_, 1);
    batch.Submit(0, req);
    std::vector<internal::Completion> done = batch.WaitSome();
    internal::Completion& c = done.at(0);
    if (!c.body) return tl::unexpected(std::move(c.body.error()));
    return std::pair{std::move(*c.body), c.attempts};
  }

  template <class Parse>
  auto CallAndParse(const HttpRequest& req, Parse parse) -> decltype(parse(std::string_view())) {
    auto body = Call(req);
    if (!body) return tl::unexpected(body.error());
    auto parsed = parse(body->first);
    if (!parsed) return tl::unexpected(Located(parsed.error(), req, body->second));
    return parsed;
  }

  // Assets and users are read into structs of their own; assignments are views
  // of their page's body and of the strings the reader decoded.
  template <class Item>
  using ParseFn =
      std::conditional_t<std::is_same_v<Item, AssignmentRef>,
                         AppleStatus (internal::PageParser::*)(std::string_view, PageMeta*, std::vector<Item>*,
                                                               std::deque<std::string>*),
                         AppleStatus (internal::PageParser::*)(std::string_view, PageMeta*, std::vector<Item>*)>;

  // The walk engine (contract in client.h).
  template <class Item>
  AppleResult<WalkResult> Walk(const std::string& path, const Params& params, ParseFn<Item> parse,
                               const PageCallback<Item>& on_page) {
    LearnRate();
    const int parallel = options().max_parallel_pages;
    const int window = 2 * parallel;  // Pages fetched but not yet delivered, at most.
    internal::PageParser parser;
    Batch batch(transport_, parallel);
    std::map<int, HttpRequest> requests;
    auto submit = [&](int index) {
      Params p = params;
      if (index > 0) p.emplace_back("pageIndex", std::to_string(index));  // Page 0: none, as Apple's docs do.
      HttpRequest req = Get(path, p);
      requests[index] = req;
      batch.Submit(index, std::move(req));
    };

    struct Parsed {
      Page<Item> page;
      PageMeta meta;
      // What the items of an assignments page view, kept until it is delivered
      // (pages wait in `ready` for the ones before them). The body in a
      // unique_ptr: a moved std::string may move its bytes (a short one does).
      std::unique_ptr<std::string> body;
      std::deque<std::string> decoded;
    };
    WalkResult result;
    std::int64_t total = 0;
    // Vectors of delivered pages, handed back to the parser: the walk stops
    // allocating per page (and, for assets and users, per item: their elements'
    // strings keep their buffers).
    std::vector<std::vector<Item>> spare;
    // Parses a finished page and checks the paging rules against page 0's.
    auto parse_page = [&](internal::Completion& c) -> AppleResult<Parsed> {
      const HttpRequest& req = requests.at(c.id);
      if (!c.body) return tl::unexpected(std::move(c.body.error()));
      Parsed out;
      out.page.index = c.id;
      if (!spare.empty()) {
        out.page.items = std::move(spare.back());
        spare.pop_back();
      }
      AppleStatus s;
      if constexpr (std::is_same_v<Item, AssignmentRef>) {
        out.body = std::make_unique<std::string>(std::move(*c.body));
        s = (parser.*parse)(*out.body, &out.meta, &out.page.items, &out.decoded);
      } else {
        s = (parser.*parse)(*c.body, &out.meta, &out.page.items);
        batch.Recycle(std::move(*c.body));  // Read into items: the buffer takes the next page.
      }
      if (!s) return tl::unexpected(Located(s.error(), req, c.attempts));
      const PageMeta& m = out.meta;
      const std::int64_t expected_total = c.id == 0 ? m.total : total;
      auto broken = [&](std::string what) {
        return tl::unexpected(Located(internal::Malformed(what), req, c.attempts));
      };
      if (m.current != c.id)
        return broken("currentPageIndex " + std::to_string(m.current) + " answers pageIndex " + std::to_string(c.id));
      if (m.total < 0 || m.total > INT32_MAX)
        return broken("totalPages " + std::to_string(m.total) + " is out of range");
      if (m.total != expected_total)
        return broken("totalPages changed from " + std::to_string(total) + " to " + std::to_string(m.total));
      if (m.total == 0 && !out.page.items.empty()) return broken("totalPages is 0 but the page has items");
      const bool more = c.id + 1 < m.total;
      if (more && m.next != c.id + 1)
        return broken("page " + std::to_string(c.id) + " of " + std::to_string(m.total) + " has nextPageIndex " +
                      (m.next ? std::to_string(*m.next) : std::string("missing")));
      if (!more && m.next) return broken("the last page has nextPageIndex " + std::to_string(*m.next));
      if (m.size && *m.size != static_cast<std::int64_t>(out.page.items.size()))
        return broken("size " + std::to_string(*m.size) + " but " + std::to_string(out.page.items.size()) + " items");
      out.page.total_pages = static_cast<int>(m.total);
      out.page.version_id = m.version_id;
      return out;
    };
    // A page that arrived whole but does not parse, or breaks the paging rules,
    // is fetched again like a transport failure (a GET changes nothing at Apple,
    // and a garbled page from a front end is as transient as a 503), up to the
    // retry policy's attempts per page. What the transport already gave up on
    // (no body) is not fetched again.
    std::map<int, int> refetches;
    auto refetch = [&](const internal::Completion& c, const AppleError& e) {
      if (!c.body || e.kind != AppleErrorKind::kMalformedResponse) return false;
      int& n = refetches[c.id];
      if (n + 1 >= options().retry.max_attempts) return false;
      ++n;
      internal::CountRefetch(requests.at(c.id));
      submit(c.id);
      return true;
    };
    // A delivered page's vector goes back to the parser, its body to the transport.
    auto retire = [&](Parsed& p) {
      spare.push_back(std::move(p.page.items));
      if (p.body) batch.Recycle(std::move(*p.body));
    };
    auto deliver = [&](const Parsed& p) -> AppleStatus {
      if (Status s = on_page(p.page); !s) {
        AppleError e = LocalError(AppleErrorKind::kAborted, s.error().message);
        e.request = requests.at(p.page.index).display;
        e.cause = s.error();
        return tl::unexpected(std::move(e));
      }
      ++result.pages_delivered;
      result.items += static_cast<std::int64_t>(p.page.items.size());
      requests.erase(p.page.index);
      return {};
    };

    // Page 0 alone: it tells how many pages there are and which version.
    submit(0);
    AppleResult<Parsed> page0;
    for (;;) {
      std::vector<internal::Completion> first = batch.WaitSome();
      page0 = parse_page(first.at(0));
      if (page0 || !refetch(first.at(0), page0.error())) break;
    }
    if (!page0) return tl::unexpected(page0.error());
    total = page0->meta.total;
    static_cast<Envelope&>(result) = page0->meta.envelope;
    result.version_id = page0->meta.version_id;
    result.total_pages = static_cast<int>(total);

    int next_submit = 1, next_deliver = 1;
    auto fill = [&] {
      while (next_submit < total && next_submit < next_deliver + window) submit(next_submit++);
    };
    fill();  // The next pages are on their way while on_page handles page 0.
    if (auto s = deliver(*page0); !s) return tl::unexpected(s.error());
    retire(*page0);

    std::map<int, Parsed> ready;
    while (next_deliver < total) {
      fill();
      std::vector<internal::Completion> finished = batch.WaitSome();
      fill();  // Queue what the freed window allows; WaitSome starts it next time round.
      for (internal::Completion& c : finished) {
        auto parsed = parse_page(c);
        if (!parsed) {
          if (refetch(c, parsed.error())) continue;
          return tl::unexpected(parsed.error());
        }
        if (parsed->meta.version_id != result.version_id) {
          // The data set moved under the walk: what was delivered and what
          // follows would mix two versions. The caller restarts.
          result.version_changed = true;
          result.new_version_id = parsed->meta.version_id;
          result.max_in_flight = batch.MaxRunning();
          return result;
        }
        ready.emplace(c.id, std::move(*parsed));
      }
      for (auto it = ready.begin(); it != ready.end() && it->first == next_deliver; it = ready.erase(it)) {
        if (auto s = deliver(it->second); !s) return tl::unexpected(s.error());
        retire(it->second);
        ++next_deliver;
      }
    }
    result.max_in_flight = batch.MaxRunning();
    return result;
  }

  internal::Transport transport_;
  std::string base_;
  std::mutex config_mu_;
  std::optional<ServiceConfig> config_;
  std::once_flag rate_read_;  // LearnRate
};

}  // namespace

AppleResult<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  auto bad = [](std::string m) { return tl::unexpected(LocalError(AppleErrorKind::kInvalidArgument, std::move(m))); };
  options.stoken = std::string(Trim(options.stoken));  // .vpptoken files end with a newline.
  if (options.stoken.empty()) return bad("the sToken is empty");
  if (std::any_of(options.stoken.begin(), options.stoken.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x21 || c == 0x7f; }))
    return bad("the sToken contains whitespace or control characters");
  const std::string& url = options.base_url;
  if (url.rfind("http://", 0) == 0) {
    if (!options.allow_insecure_http)
      return bad("the Apple base URL is plain http:// (allow_insecure_http is off): " + url);
  } else if (url.rfind("https://", 0) != 0) {
    return bad("the Apple base URL must start with https:// (or http:// for simulators): " + url);
  }
  if (url.find_first_of(" \t\r\n?#") != std::string::npos)
    return bad("the Apple base URL has a query, fragment or space");
  if (options.connect_timeout.count() <= 0 || options.total_timeout.count() <= 0)
    return bad("connect_timeout and total_timeout must be positive");
  if (options.max_parallel_pages < 1 || options.max_parallel_pages > 5)
    return bad("max_parallel_pages must be in 1..5 (Apple allows 5 page requests in flight)");
  if (options.max_response_bytes == 0) return bad("max_response_bytes must be positive");
  if (options.retry.max_attempts < 1) return bad("retry.max_attempts must be at least 1");
  if (options.retry.base_backoff.count() < 0 || options.retry.max_backoff.count() < 0 ||
      options.retry.max_total_wait.count() < 0)
    return bad("retry times must not be negative");
  if (options.max_requests_per_second < 0) return bad("max_requests_per_second must not be negative");
  return std::unique_ptr<Client>(new ClientImpl(std::move(options)));
}

}  // namespace vppd::apple
