// apple::Client against the real apple-vpp-sim binary (started once on port 0).
//
// Each test resets the simulator (POST /_sim/reset: data, faults, counters and
// settings back to the command line's) and drives faults through /_sim/faults.
// Retries are checked through a fake sleep that records every wait and moves a
// FakeClock, so no test waits for a backoff in real time.
#include "apple/client.h"

#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/wait.h>

namespace vppd::apple {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// ------------------------------------------------------------------ the simulator process

struct Sim {
  pid_t pid = -1;
  std::string base_url;  // http://127.0.0.1:PORT/mdm/v2
  std::string root;      // http://127.0.0.1:PORT
  std::string stoken;
  std::string dir;
};

Sim* g_sim = nullptr;

std::string ReadAll(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return {};
  std::string s;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  std::fclose(f);
  return s;
}

// Starts the simulator and reads the one line it prints once listening.
Sim* StartSim() {
  auto* sim = new Sim;
  char tmpl[] = "/tmp/apple_client_test.XXXXXX";
  sim->dir = mkdtemp(tmpl);
  const std::string token_file = sim->dir + "/token";
  int out[2];
  if (pipe(out) != 0) return nullptr;
  sim->pid = fork();
  if (sim->pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);  // A crashed test must not leave the simulator behind.
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execl(APPLE_VPP_SIM, APPLE_VPP_SIM, "--listen", "127.0.0.1:0", "--assets", "40", "--assignments", "1000",
          "--page-size", "10", "--seed", "7", "--event-delay-ms", "300", "--token-file", token_file.c_str(),
          "--log-level", "off", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string line;
  char c;
  while (read(out[0], &c, 1) == 1 && c != '\n') line += c;
  close(out[0]);
  const std::string prefix = "apple-vpp-sim listening on ";
  if (line.rfind(prefix, 0) != 0) {
    ADD_FAILURE() << "the simulator did not announce itself: '" << line << "'";
    return sim;
  }
  sim->base_url = line.substr(prefix.size());
  sim->root = sim->base_url.substr(0, sim->base_url.find("/mdm/v2"));
  sim->stoken = ReadAll(token_file);
  return sim;
}

std::size_t CollectBody(char* data, std::size_t size, std::size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// A control-API call; fails the test on any non-200.
json::value Control(const std::string& method, const std::string& path, const std::string& body = "") {
  CURL* e = curl_easy_init();
  std::string out;
  const std::string url = g_sim->root + path;
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_slist* h = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  if (!body.empty()) curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &CollectBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
  const CURLcode rc = curl_easy_perform(e);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(e);
  EXPECT_EQ(rc, CURLE_OK) << method << " " << path;
  EXPECT_EQ(status, 200) << method << " " << path << ": " << out;
  boost::system::error_code ec;
  json::value v = json::parse(out, ec);
  return ec ? json::value() : v;
}

void AddFault(const std::string& rule) { Control("POST", "/_sim/faults", rule); }

json::object DefaultLocation() { return Control("GET", "/_sim/locations").at("locations").at(0).as_object(); }

std::int64_t Counter(const std::string& key) {
  json::value v = Control("GET", "/_sim/counters");
  const json::object& total = v.at("total").as_object();
  const json::value* n = total.if_contains(key);
  return n ? n->as_int64() : 0;
}

// ------------------------------------------------------------------ fixture

class ClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g_sim = StartSim();
  }
  static void TearDownTestSuite() {
    if (g_sim && g_sim->pid > 0) {
      kill(g_sim->pid, SIGTERM);
      int status = 0;
      waitpid(g_sim->pid, &status, 0);
    }
    if (g_sim) std::filesystem::remove_all(g_sim->dir);
    delete g_sim;
    g_sim = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(g_sim, nullptr);
    ASSERT_FALSE(g_sim->base_url.empty());
    Control("POST", "/_sim/reset");
  }

  // Options for the simulator, with a fake clock and a recording sleep.
  ClientOptions Options() {
    ClientOptions o;
    o.base_url = g_sim->base_url;
    o.allow_insecure_http = true;
    o.stoken = g_sim->stoken;
    o.clock = &clock_;
    o.sleep = [this](milliseconds d) {
      waits_.push_back(d);
      clock_.Advance(d);
    };
    o.jitter_seed = 42;
    o.max_requests_per_second = 10000;  // Rate tests lower it.
    o.total_timeout = milliseconds(5000);
    return o;
  }

  std::unique_ptr<Client> NewClient(ClientOptions o) {
    auto c = Client::Create(std::move(o));
    EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().Describe());
    return c ? std::move(*c) : nullptr;
  }
  std::unique_ptr<Client> NewClient() { return NewClient(Options()); }

  // Walks all assignments, checking order; returns the result.
  AppleResult<WalkResult> WalkAll(Client& c, const AssignmentFilter& f, std::vector<Assignment>* out = nullptr) {
    int expected = 0;
    return c.WalkAssignments(f, [&](const AssignmentsPage& p) -> Status {
      EXPECT_EQ(p.index, expected++);
      if (out)
        for (const AssignmentRef& a : p.items) out->push_back(a.Own());
      return {};
    });
  }

  FakeClock clock_{Clock::Real().Now()};
  std::vector<milliseconds> waits_;
};

Status Ignore(const auto&) { return {}; }

// ------------------------------------------------------------------ options

TEST_F(ClientTest, CreateRejectsBadOptions) {
  auto try_create = [](ClientOptions o) { return Client::Create(std::move(o)); };
  ClientOptions o = Options();
  o.allow_insecure_http = false;
  auto r = try_create(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, AppleErrorKind::kInvalidArgument);
  EXPECT_NE(r.error().error_message.find("http://"), std::string::npos);

  o = Options();
  o.stoken = " \n";
  EXPECT_FALSE(try_create(o));
  o = Options();
  o.stoken = "abc\r\nX-Injected: 1";
  EXPECT_FALSE(try_create(o));
  o = Options();
  o.base_url = "ftp://example.com/mdm/v2";
  EXPECT_FALSE(try_create(o));
  o = Options();
  o.max_parallel_pages = 6;
  EXPECT_FALSE(try_create(o));
  o = Options();
  o.total_timeout = milliseconds(0);
  EXPECT_FALSE(try_create(o));
  o = Options();
  o.stoken += "\n";  // As read from a .vpptoken file.
  EXPECT_TRUE(try_create(o));
}

// ------------------------------------------------------------------ configs

TEST_F(ClientTest, ServiceConfigIsReadAndCachedForFiveMinutes) {
  auto c = NewClient();
  auto sc = c->GetServiceConfig();
  ASSERT_TRUE(sc) << sc.error().Describe();
  EXPECT_EQ(sc->limits.max_request_per_second, 15);
  EXPECT_EQ(sc->limits.max_assets, 25);
  EXPECT_EQ(sc->limits.max_revoke_serial_numbers, 100);
  EXPECT_EQ(sc->urls.content_metadata_lookup, g_sim->root + "/lookup");
  EXPECT_EQ(sc->urls.get_assignments, g_sim->base_url + "/assignments");
  EXPECT_FALSE(sc->notification_types.empty());

  ASSERT_TRUE(c->GetServiceConfig());
  EXPECT_EQ(Counter("GET /mdm/v2/service/config"), 1);
  clock_.Advance(seconds(299));
  ASSERT_TRUE(c->GetServiceConfig());
  EXPECT_EQ(Counter("GET /mdm/v2/service/config"), 1);
  clock_.Advance(seconds(2));
  ASSERT_TRUE(c->GetServiceConfig());
  EXPECT_EQ(Counter("GET /mdm/v2/service/config"), 2);
}

TEST_F(ClientTest, ClientConfigAndMdmInfoRoundTrip) {
  auto c = NewClient();
  const json::object loc = DefaultLocation();
  auto cc = c->GetClientConfig();
  ASSERT_TRUE(cc) << cc.error().Describe();
  EXPECT_EQ(cc->uid, json::value_to<std::string>(loc.at("uId")));
  EXPECT_EQ(cc->location_name, json::value_to<std::string>(loc.at("name")));
  EXPECT_EQ(cc->country_iso2a, json::value_to<std::string>(loc.at("countryISO2ACode")));
  EXPECT_FALSE(cc->default_platform.empty());
  EXPECT_FALSE(cc->website_url.empty());
  ASSERT_TRUE(cc->token_expiration);
  EXPECT_EQ(FormatIso8601(*cc->token_expiration), "2030-11-08T22:33:22Z");
  EXPECT_FALSE(cc->mdm_info);

  const MdmInfo mine{"vppd-install-1", "vppd", "tenant=t1"};
  auto set = c->SetClientConfig(mine);
  ASSERT_TRUE(set) << set.error().Describe();
  ASSERT_TRUE(set->mdm_info);
  EXPECT_EQ(*set->mdm_info, mine);
  auto again = c->GetClientConfig();
  ASSERT_TRUE(again && again->mdm_info);
  EXPECT_EQ(*again->mdm_info, mine);

  // Every later answer carries it; a walk reports page 0's.
  auto walk = c->WalkAssets({}, Ignore<AssetsPage>);
  ASSERT_TRUE(walk) << walk.error().Describe();
  ASSERT_TRUE(walk->mdm_info);
  EXPECT_EQ(*walk->mdm_info, mine);
  EXPECT_EQ(walk->uid, cc->uid);

  // Another MDM takes over out of band: we see its id.
  Control("POST", "/_sim/locations/" + cc->uid + "/mdmInfo", R"({"id":"other","name":"Other MDM","metadata":""})");
  auto theirs = c->GetClientConfig();
  ASSERT_TRUE(theirs && theirs->mdm_info);
  EXPECT_EQ(theirs->mdm_info->id, "other");

  // Apple's validation: an id over maxMdmIdLength (100) is 9724.
  auto too_long = c->SetClientConfig({std::string(101, 'x'), "vppd", ""});
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().kind, AppleErrorKind::kValidation);
  EXPECT_EQ(too_long.error().error_number, 9724);
  EXPECT_EQ(too_long.error().http_status, 400);
  EXPECT_EQ(too_long.error().attempts, 1);  // 4xx validation is never retried.
}

// ------------------------------------------------------------------ walks

TEST_F(ClientTest, FullAssignmentWalkDeliversEveryPageInOrder) {
  auto c = NewClient();
  const json::object loc = DefaultLocation();
  std::vector<Assignment> all;
  auto r = WalkAll(*c, {}, &all);
  ASSERT_TRUE(r) << r.error().Describe();
  EXPECT_EQ(r->total_pages, 100);
  EXPECT_EQ(r->pages_delivered, 100);
  EXPECT_EQ(r->items, loc.at("assignments").as_int64());
  EXPECT_EQ(static_cast<std::int64_t>(all.size()), r->items);
  EXPECT_EQ(r->version_id, json::value_to<std::string>(loc.at("versionId")));
  EXPECT_EQ(r->uid, json::value_to<std::string>(loc.at("uId")));
  EXPECT_FALSE(r->version_changed);
  EXPECT_LE(r->max_in_flight, 5);
  EXPECT_GE(r->max_in_flight, 2);
  // Items are whole and distinct (no page delivered twice).
  std::set<std::string> keys;
  for (const Assignment& a : all) {
    EXPECT_FALSE(a.adam_id.empty());
    EXPECT_NE(a.client_user_id.empty(), a.serial_number.empty());
    keys.insert(a.adam_id + "/" + a.pricing_param + "/" + a.client_user_id + "/" + a.serial_number);
  }
  EXPECT_EQ(static_cast<std::int64_t>(keys.size()), r->items);
  // One request per page, no retries.
  EXPECT_EQ(Counter("GET /mdm/v2/assignments"), 100);
}

TEST_F(ClientTest, AssetWalkMatchesTheSimulatorsCounts) {
  auto c = NewClient();
  std::int64_t items = 0;
  bool saw_book = false;
  auto r = c->WalkAssets({}, [&](const AssetsPage& p) -> Status {
    for (const Asset& a : p.items) {
      ++items;
      EXPECT_TRUE(a.pricing_param == "STDQ" || a.pricing_param == "PLUS") << a.pricing_param;
      EXPECT_TRUE(a.product_type == "App" || a.product_type == "Book") << a.product_type;
      if (!a.unlimited) {
        EXPECT_EQ(a.total_count, a.assigned_count + a.available_count) << a.adam_id;
      }
      saw_book |= a.product_type == "Book";
    }
    return {};
  });
  ASSERT_TRUE(r) << r.error().Describe();
  EXPECT_EQ(items, DefaultLocation().at("assets").as_int64());
  EXPECT_EQ(r->total_pages, 4);

  // Filters reach Apple: only books come back.
  AssetFilter books;
  books.product_type = "Book";
  std::int64_t book_items = 0;
  auto rb = c->WalkAssets(books, [&](const AssetsPage& p) -> Status {
    for (const Asset& a : p.items) {
      EXPECT_EQ(a.product_type, "Book");
      EXPECT_FALSE(a.device_assignable);
      ++book_items;
    }
    return {};
  });
  ASSERT_TRUE(rb) << rb.error().Describe();
  EXPECT_EQ(saw_book, book_items > 0);
  EXPECT_LT(book_items, items);
}

TEST_F(ClientTest, AssignmentFilterByAdamIdAndSerial) {
  auto c = NewClient();
  std::vector<Assignment> all;
  ASSERT_TRUE(WalkAll(*c, {}, &all));
  const std::string adam = all.front().adam_id;
  const auto expected = std::count_if(all.begin(), all.end(), [&](const Assignment& a) { return a.adam_id == adam; });
  AssignmentFilter f;
  f.adam_id = adam;
  std::vector<Assignment> some;
  auto r = WalkAll(*c, f, &some);
  ASSERT_TRUE(r) << r.error().Describe();
  EXPECT_EQ(static_cast<std::int64_t>(some.size()), expected);
  for (const Assignment& a : some) EXPECT_EQ(a.adam_id, adam);

  AssignmentFilter none;
  none.serial_number = "NO-SUCH-SERIAL";
  std::vector<Assignment> empty;
  auto re = WalkAll(*c, none, &empty);
  ASSERT_TRUE(re) << re.error().Describe();
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(re->pages_delivered, 1);
}

TEST_F(ClientTest, DeltaWalkSinceVersionIdAndInvalidVersionId) {
  auto c = NewClient();
  std::vector<Assignment> all;
  auto full = WalkAll(*c, {}, &all);
  ASSERT_TRUE(full);
  const std::string uid = full->uid;

  // Find an asset and a user to add an assignment out of band (as in Apple Business Manager).
  std::string user;
  for (const Assignment& a : all)
    if (!a.client_user_id.empty()) user = a.client_user_id;
  ASSERT_FALSE(user.empty());
  std::string adam;
  auto assets = c->WalkAssets({}, [&](const AssetsPage& p) -> Status {
    for (const Asset& a : p.items)
      if (adam.empty() && a.available_count > 0 && a.revocable) {
        bool taken = false;
        for (const Assignment& x : all) taken |= x.adam_id == a.adam_id && x.client_user_id == user;
        if (!taken) adam = a.adam_id;
      }
    return {};
  });
  ASSERT_TRUE(assets);
  ASSERT_FALSE(adam.empty());
  Control("POST", "/_sim/locations/" + uid + "/assignments",
          R"({"add":[{"adamId":")" + adam + R"(","clientUserId":")" + user + R"("}]})");

  AssignmentFilter f;
  f.since_version_id = full->version_id;
  std::vector<Assignment> delta;
  auto d = WalkAll(*c, f, &delta);
  ASSERT_TRUE(d) << d.error().Describe();
  EXPECT_NE(d->version_id, full->version_id);
  ASSERT_FALSE(delta.empty());
  EXPECT_LT(delta.size(), all.size());
  bool found = false;
  for (const Assignment& a : delta) found |= a.adam_id == adam && a.client_user_id == user;
  EXPECT_TRUE(found);

  f.since_version_id = "no-such-version";
  auto bad = WalkAll(*c, f);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, AppleErrorKind::kVersionIdInvalid);
  EXPECT_EQ(bad.error().error_number, 9721);
  EXPECT_EQ(bad.error().attempts, 1);
  EXPECT_EQ(bad.error().ToError().code, Code::kFailedPrecondition);
}

TEST_F(ClientTest, VersionChangeMidWalkStopsTheWalk) {
  auto c = NewClient();
  AddFault(R"({"path":"/mdm/v2/assignments","kind":"bump_version","onRequests":[12]})");
  int delivered = 0;
  auto r = c->WalkAssignments({}, [&](const AssignmentsPage&) -> Status {
    ++delivered;
    return {};
  });
  ASSERT_TRUE(r) << r.error().Describe();
  EXPECT_TRUE(r->version_changed);
  EXPECT_FALSE(r->new_version_id.empty());
  EXPECT_NE(r->new_version_id, r->version_id);
  EXPECT_EQ(r->pages_delivered, delivered);
  EXPECT_LT(delivered, 100);
  EXPECT_GE(delivered, 1);
  // It stopped early: far fewer than 100 requests were made.
  EXPECT_LT(Counter("GET /mdm/v2/assignments"), 40);
}

TEST_F(ClientTest, OnPageErrorAbortsTheWalk) {
  auto c = NewClient();
  int calls = 0;
  auto r = c->WalkAssignments({}, [&](const AssignmentsPage& p) -> Status {
    ++calls;
    if (p.index == 3) return Fail(Error::Internal("store full"));
    return {};
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(r.error().kind, AppleErrorKind::kAborted);
  ASSERT_TRUE(r.error().cause);
  EXPECT_EQ(r.error().ToError().code, Code::kInternal);
  EXPECT_EQ(r.error().ToError().message, "store full");
}

TEST_F(ClientTest, InFlightPagesStayWithinTheLimit) {
  // Every page after the first is held 200 ms by the simulator: five at a time
  // need ≥ 4 rounds for pages 1..20, two at a time ≥ 10 rounds. A client sending
  // more in parallel than allowed would finish sooner than these bounds.
  Control("POST", "/_sim/settings", R"({"pageSize":50})");  // 1000 / 50 = 20 pages.
  AddFault(R"({"path":"/mdm/v2/assignments","kind":"latency","latencyMs":200,"rate":1})");
  for (int parallel : {5, 2}) {
    ClientOptions o = Options();
    o.max_parallel_pages = parallel;
    auto c = NewClient(o);
    const auto start = std::chrono::steady_clock::now();
    auto r = WalkAll(*c, {});
    const auto elapsed = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(r) << r.error().Describe();
    EXPECT_EQ(r->pages_delivered, 20);
    EXPECT_EQ(r->max_in_flight, parallel);
    const int rounds = 1 + (19 + parallel - 1) / parallel;
    EXPECT_GE(elapsed, milliseconds(200 * rounds)) << "parallel " << parallel;
    EXPECT_LT(elapsed, milliseconds(200 * rounds + 1500)) << "parallel " << parallel;
  }
}

TEST_F(ClientTest, AWalkSleepsWhileItsPagesAreOnTheWire) {
  // Every page after the first is held 100 ms: the walk waits ~500 ms with all
  // five slots busy and more pages queued. It must wait in poll(), not spin (a
  // queued page waiting for a slot once made every wait a zero-timeout poll,
  // 100% CPU): the walking thread's CPU time stays a small part of the wall time.
  Control("POST", "/_sim/settings", R"({"pageSize":50})");  // 20 pages.
  AddFault(R"({"path":"/mdm/v2/assignments","kind":"latency","latencyMs":100,"rate":1})");
  auto c = NewClient();
  auto thread_cpu = [] {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return std::chrono::seconds(t.tv_sec) + std::chrono::nanoseconds(t.tv_nsec);
  };
  const auto cpu_start = thread_cpu();
  const auto start = std::chrono::steady_clock::now();
  auto r = WalkAll(*c, {});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  const auto cpu = thread_cpu() - cpu_start;
  ASSERT_TRUE(r) << r.error().Describe();
  EXPECT_EQ(r->pages_delivered, 20);
  EXPECT_GE(elapsed, milliseconds(400));
  EXPECT_LT(cpu * 4, elapsed) << std::chrono::duration_cast<milliseconds>(cpu).count() << " ms of CPU in "
                              << std::chrono::duration_cast<milliseconds>(elapsed).count() << " ms";
}

// ------------------------------------------------------------------ faults and retries

TEST_F(ClientTest, RetryAfterSecondsIsHonoured) {
  auto c = NewClient();
  AddFault(R"({"path":"/mdm/v2/client/config","kind":"unavailable","onRequests":[1],"retryAfterSeconds":2})");
  auto r = c->GetClientConfig();
  ASSERT_TRUE(r) << r.error().Describe();
  ASSERT_EQ(waits_.size(), 1u);
  EXPECT_EQ(waits_[0], milliseconds(2000));
}

TEST_F(ClientTest, RetryAfterHttpDateIsHonoured) {
  auto c = NewClient();
  AddFault(
      R"({"path":"/mdm/v2/client/config","kind":"internal","onRequests":[1],"retryAfterSeconds":3,"retryAfterFormat":"http-date"})");
  auto r = c->GetClientConfig();
  ASSERT_TRUE(r) << r.error().Describe();
  ASSERT_EQ(waits_.size(), 1u);
  // The date has whole seconds; the client rounds up what is left of it.
  EXPECT_GE(waits_[0], milliseconds(2000));
  EXPECT_LE(waits_[0], milliseconds(3000));
}

TEST_F(ClientTest, RateLimited429IsRetriedThenReported) {
  auto c = NewClient();
  AddFault(R"({"path":"/mdm/v2/assets","kind":"too_many_requests","onRequests":[1,2]})");
  auto ok = c->WalkAssets({}, Ignore<AssetsPage>);
  ASSERT_TRUE(ok) << ok.error().Describe();
  EXPECT_EQ(waits_, (std::vector<milliseconds>{milliseconds(1000), milliseconds(1000)}));

  Control("DELETE", "/_sim/faults");
  AddFault(R"({"path":"/mdm/v2/assets","kind":"too_many_requests","rate":1})");
  waits_.clear();
  auto r = c->WalkAssets({}, Ignore<AssetsPage>);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, AppleErrorKind::kRateLimited);
  EXPECT_EQ(r.error().error_number, 9646);
  EXPECT_EQ(r.error().http_status, 429);
  EXPECT_EQ(r.error().attempts, 5);
  EXPECT_EQ(r.error().retry_after, seconds(1));
  EXPECT_EQ(waits_.size(), 4u);
  EXPECT_EQ(r.error().ToError().code, Code::kResourceExhausted);
  EXPECT_NE(r.error().Describe().find("9646"), std::string::npos);
}

TEST_F(ClientTest, RetriesAreBoundedInTotalWaitingTime) {
  ClientOptions o = Options();
  o.retry.max_total_wait = milliseconds(2500);
  auto c = NewClient(o);
  AddFault(R"({"path":"/mdm/v2/client/config","kind":"unavailable","rate":1,"retryAfterSeconds":1})");
  auto r = c->GetClientConfig();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, AppleErrorKind::kUnavailable);
  EXPECT_EQ(r.error().error_number, 9729);
  EXPECT_EQ(r.error().http_status, 503);
  EXPECT_EQ(r.error().attempts, 3);  // Waited 1 s twice; a third second would pass 2.5 s.
  EXPECT_EQ(waits_, (std::vector<milliseconds>{milliseconds(1000), milliseconds(1000)}));

  // A Retry-After longer than the whole budget ends the retries at once.
  Control("DELETE", "/_sim/faults");
  AddFault(R"({"path":"/mdm/v2/client/config","kind":"unavailable","rate":1,"retryAfterSeconds":10})");
  waits_.clear();
  auto r2 = c->GetClientConfig();
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().attempts, 1);
  EXPECT_EQ(r2.error().retry_after, seconds(10));
  EXPECT_TRUE(waits_.empty());
}

TEST_F(ClientTest, TimeoutsAreRetriedWithJitteredExponentialBackoff) {
  ClientOptions o = Options();
  o.total_timeout = milliseconds(300);
  o.retry.max_attempts = 4;
  o.retry.base_backoff = milliseconds(400);
  o.retry.max_backoff = milliseconds(1000);
  auto c = NewClient(o);
  AddFault(R"({"path":"/mdm/v2/client/config","kind":"latency","latencyMs":1500,"rate":1})");
  auto r = c->GetClientConfig();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, AppleErrorKind::kTransport);
  EXPECT_EQ(r.error().http_status, 0);
  EXPECT_EQ(r.error().attempts, 4);
  EXPECT_NE(r.error().error_message.find("timed out"), std::string::npos) << r.error().error_message;
  EXPECT_EQ(r.error().ToError().code, Code::kDeadlineExceeded);
  ASSERT_EQ(waits_.size(), 3u);
  // Full jitter: uniform in [0, min(max, base·2^(n-1))].
  EXPECT_LE(waits_[0], milliseconds(400));
  EXPECT_LE(waits_[1], milliseconds(800));
  EXPECT_LE(waits_[2], milliseconds(1000));

  // Latency beyond the timeout once: the retry succeeds.
  Control("DELETE", "/_sim/faults");
  AddFault(R"({"path":"/mdm/v2/client/config","kind":"latency","latencyMs":1500,"onRequests":[1]})");
  waits_.clear();
  auto ok = c->GetClientConfig();
  ASSERT_TRUE(ok) << ok.error().Describe();
  EXPECT_EQ(waits_.size(), 1u);
}

TEST_F(ClientTest, TruncatedBodiesAreRetriedThenMalformed) {
  auto c = NewClient();
  AddFault(R"({"path":"/mdm/v2/assignments","kind":"truncate","truncateAt":100,"onRequests":[5]})");
  auto ok = WalkAll(*c, {});
  ASSERT_TRUE(ok) << ok.error().Describe();
  EXPECT_EQ(ok->pages_delivered, 100);
  EXPECT_EQ(waits_.size(), 1u);

  Control("DELETE", "/_sim/faults");
  AddFault(R"({"path":"/mdm/v2/client/config","kind":"truncate","truncateAt":10,"rate":1})");
  auto r = c->GetClientConfig();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, AppleErrorKind::kMalformedResponse);
  EXPECT_NE(r.error().error_message.find("truncated"), std::string::npos) << r.error().error_message;
  EXPECT_EQ(r.error().attempts, 5);
}

TEST_F(ClientTest, AMalformedPageIsFetchedAgainThenTheWalkFails) {
  auto c = NewClient();
  // Once (the 3rd GET /assignments, and page 0 once too): each page is fetched
  // again and the walk completes with every item, in order.
  AddFault(R"({"path":"/mdm/v2/assignments","kind":"malformed_json","onRequests":[1, 3]})");
  std::vector<Assignment> items;
  auto ok = WalkAll(*c, {}, &items);
  ASSERT_TRUE(ok) << ok.error().Describe();
  EXPECT_EQ(ok->pages_delivered, 100);
  EXPECT_EQ(static_cast<std::int64_t>(items.size()), ok->items);
  EXPECT_EQ(Counter("GET /mdm/v2/assignments"), 102);

  // Every time: the page is fetched max_attempts times (5), then the walk fails.
  Control("DELETE", "/_sim/faults");
  Control("DELETE", "/_sim/counters");
  AddFault(R"({"path":"/mdm/v2/assignments","kind":"malformed_json","rate":1})");
  auto r = WalkAll(*c, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, AppleErrorKind::kMalformedResponse);
  EXPECT_NE(r.error().request.find("/assignments"), std::string::npos) << r.error().request;
  EXPECT_EQ(r.error().ToError().code, Code::kUnavailable);
  EXPECT_EQ(Counter("GET /mdm/v2/assignments"), 5);
}

TEST_F(ClientTest, AppleErrorsAtHttp200AreErrors) {
  auto c = NewClient();
  AddFault(R"({"path":"/mdm/v2/client/config","kind":"apple_error_200","errorNumber":9625,"onRequests":[1]})");
  auto r = c->GetClientConfig();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, AppleErrorKind::kTokenRevoked);
  EXPECT_EQ(r.error().http_status, 200);

  AddFault(R"({"path":"/mdm/v2/client/config","kind":"apple_error_200","errorNumber":9602,"onRequests":[1]})");
  auto v = c->GetClientConfig();
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().kind, AppleErrorKind::kValidation);
  EXPECT_EQ(v.error().error_number, 9602);
  EXPECT_EQ(v.error().attempts, 1);

  // 9646 at HTTP 200 is still a rate limit, and retried.
  AddFault(R"({"path":"/mdm/v2/client/config","kind":"apple_error_200","errorNumber":9646,"onRequests":[1]})");
  waits_.clear();
  auto ok = c->GetClientConfig();
  ASSERT_TRUE(ok) << ok.error().Describe();
  EXPECT_EQ(waits_.size(), 1u);
}

TEST_F(ClientTest, PostsAreRetriedOnlyWhenAppleCannotHaveActed) {
  auto c = NewClient();
  ManageAssetsRequest req;
  req.assets.push_back({"1", ""});
  req.serial_numbers.push_back("X");
  AddFault(R"({"path":"/mdm/v2/assets/associate","kind":"internal","onRequests":[1]})");
  auto r = c->Associate(req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, AppleErrorKind::kUnavailable);
  EXPECT_EQ(r.error().http_status, 500);
  EXPECT_EQ(r.error().attempts, 1);

  AddFault(R"({"path":"/mdm/v2/assets/associate","kind":"unavailable","onRequests":[1]})");  // Rules count from when
                                                                                             // they are added.
  auto r2 = c->Associate(req);  // 503 → retried; then Apple validates the (bogus) asset.
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().kind, AppleErrorKind::kValidation);
  EXPECT_EQ(r2.error().attempts, 2);
  EXPECT_FALSE(r2.error().error_info.empty());  // Names the unknown asset.
}

// ------------------------------------------------------------------ tokens

TEST_F(ClientTest, ExpiredRevokedAndInvalidTokens) {
  const std::string stoken = g_sim->stoken;
  struct Case {
    const char* state;
    AppleErrorKind kind;
    int number;
    int http;
  };
  for (const Case& k : {Case{"expired", AppleErrorKind::kTokenExpired, 9621, 401},
                        Case{"revoked", AppleErrorKind::kTokenRevoked, 9625, 401},
                        // Known but invalidated: Apple's observed 9622 at HTTP 200.
                        Case{"invalid", AppleErrorKind::kTokenInvalid, 9622, 200}}) {
    Control("POST", "/_sim/reset");
    json::object body{{"sToken", stoken}, {"state", k.state}};
    Control("POST", "/_sim/tokens", json::serialize(body));
    auto c = NewClient();
    auto r = c->GetClientConfig();
    ASSERT_FALSE(r) << k.state;
    EXPECT_EQ(r.error().kind, k.kind) << k.state;
    EXPECT_EQ(r.error().error_number, k.number) << k.state;
    EXPECT_EQ(r.error().http_status, k.http) << k.state;
    EXPECT_EQ(r.error().attempts, 1) << k.state;
    EXPECT_EQ(r.error().ToError().code, Code::kFailedPrecondition);
    // The sToken never appears in what is logged or returned.
    EXPECT_EQ(r.error().Describe().find(stoken.substr(0, 20)), std::string::npos);
  }

  // A token Apple has never seen: 9601 at 401 (Apple's table), or 9622 at 200
  // when the simulator plays the observed behaviour.
  Control("POST", "/_sim/reset");
  ClientOptions o = Options();
  o.stoken = EncodeSToken("bogus", 4102444800LL * 1000000, "Nobody");
  auto c = NewClient(o);
  auto r401 = c->WalkAssignments({}, Ignore<AssignmentsPage>);
  ASSERT_FALSE(r401);
  EXPECT_EQ(r401.error().kind, AppleErrorKind::kTokenInvalid);
  EXPECT_EQ(r401.error().error_number, 9601);
  EXPECT_EQ(r401.error().http_status, 401);
  Control("POST", "/_sim/settings", R"({"invalidTokenReply":"9622"})");
  auto r = c->WalkAssignments({}, Ignore<AssignmentsPage>);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, AppleErrorKind::kTokenInvalid);
  EXPECT_EQ(r.error().error_number, 9622);
  EXPECT_EQ(r.error().http_status, 200);
}

// ------------------------------------------------------------------ events

TEST_F(ClientTest, AssociateThenPollStatusUntilComplete) {
  ClientOptions o = Options();
  o.clock = nullptr;  // The simulator resolves events in real time.
  o.sleep = nullptr;
  auto c = NewClient(o);
  std::string adam;
  auto assets = c->WalkAssets({}, [&](const AssetsPage& p) -> Status {
    for (const Asset& a : p.items)
      if (adam.empty() && a.device_assignable && a.available_count > 0) adam = a.adam_id;
    return {};
  });
  ASSERT_TRUE(assets);
  ASSERT_FALSE(adam.empty());

  ManageAssetsRequest req;
  req.assets.push_back({adam, ""});
  req.serial_numbers = {"CLIENTTEST01", "CLIENTTEST02"};
  auto ev = c->Associate(req);
  ASSERT_TRUE(ev) << ev.error().Describe();
  EXPECT_FALSE(ev->event_id.empty());

  auto first = c->GetEventStatus(ev->event_id);
  ASSERT_TRUE(first) << first.error().Describe();
  EXPECT_EQ(first->event_type, "ASSOCIATE");
  EXPECT_TRUE(first->Pending());
  auto done = c->WaitForEvent(ev->event_id, milliseconds(100), milliseconds(5000));
  ASSERT_TRUE(done) << done.error().Describe();
  EXPECT_EQ(done->event_status, "COMPLETE");
  EXPECT_EQ(done->num_requested, 2);
  EXPECT_EQ(done->num_completed, 2);

  AssignmentFilter f;
  f.serial_number = "CLIENTTEST01";
  std::vector<Assignment> got;
  ASSERT_TRUE(WalkAll(*c, f, &got));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].adam_id, adam);

  auto dis = c->Disassociate(req);
  ASSERT_TRUE(dis) << dis.error().Describe();
  auto revoke = c->Revoke({}, {"CLIENTTEST02"});
  ASSERT_TRUE(revoke) << revoke.error().Describe();
  auto revoked = c->WaitForEvent(revoke->event_id, milliseconds(100), milliseconds(5000));
  ASSERT_TRUE(revoked);
  EXPECT_EQ(revoked->event_type, "REVOKE");

  auto unknown = c->GetEventStatus("no-such-event");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, AppleErrorKind::kValidation);
  EXPECT_EQ(unknown.error().error_number, 9708);

  // Apple's synchronous validation: nothing to assign to.
  ManageAssetsRequest empty;
  empty.assets.push_back({adam, ""});
  auto none = c->Associate(empty);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().error_number, 9719);
}

// ------------------------------------------------------------------ users

// The users the simulator holds under these clientUserIds (GET /users?clientUserId=).
std::vector<User> UsersNamed(Client& c, const std::vector<std::string>& ids) {
  std::vector<User> out;
  for (const std::string& id : ids) {
    UserFilter f;
    f.client_user_id = id;
    auto walked = c.WalkUsers(f, [&](const UsersPage& p) -> Status {
      for (const User& u : p.items) out.push_back(u);
      return {};
    });
    EXPECT_TRUE(walked) << walked.error().Describe();
  }
  return out;
}

TEST_F(ClientTest, UsersAreCreatedUpdatedAndRetired) {
  ClientOptions o = Options();
  o.clock = nullptr;  // The simulator resolves events in real time.
  o.sleep = nullptr;
  auto c = NewClient(o);

  auto created = c->CreateUsers({{"client-test-u1", "u1@example.org", ""}, {"client-test-u2", "", ""}});
  ASSERT_TRUE(created) << created.error().Describe();
  EXPECT_FALSE(created->event_id.empty());
  EXPECT_FALSE(created->uid.empty()) << "the envelope is read as for every answer";
  auto create_done = c->WaitForEvent(created->event_id, milliseconds(100), milliseconds(5000));
  ASSERT_TRUE(create_done) << create_done.error().Describe();
  EXPECT_EQ(create_done->event_type, "CREATE");
  EXPECT_EQ(create_done->event_status, "COMPLETE");
  EXPECT_EQ(create_done->num_requested, 2);
  EXPECT_EQ(create_done->num_completed, 2);
  std::vector<User> users = UsersNamed(*c, {"client-test-u1", "client-test-u2"});
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[0].status, "Registered");
  EXPECT_EQ(users[0].email, "u1@example.org");
  EXPECT_FALSE(users[0].invite_code.empty());
  EXPECT_TRUE(users[1].email.empty()) << "no email was sent for u2";

  // Created again: Apple refuses that user in the event (9716), by clientUserId.
  auto again = c->CreateUsers({{"client-test-u1", "u1@example.org", ""}});
  ASSERT_TRUE(again) << again.error().Describe();
  auto again_done = c->WaitForEvent(again->event_id, milliseconds(100), milliseconds(5000));
  ASSERT_TRUE(again_done);
  EXPECT_EQ(again_done->event_status, "FAILED");
  ASSERT_EQ(again_done->failures.size(), 1u);
  EXPECT_EQ(again_done->failures[0].error_number, 9716);
  EXPECT_EQ(again_done->failures[0].client_user_ids, (std::vector<std::string>{"client-test-u1"}));

  auto updated = c->UpdateUsers({{"client-test-u2", "u2@example.org", ""}});
  ASSERT_TRUE(updated) << updated.error().Describe();
  auto update_done = c->WaitForEvent(updated->event_id, milliseconds(100), milliseconds(5000));
  ASSERT_TRUE(update_done);
  EXPECT_EQ(update_done->event_type, "UPDATE");
  EXPECT_EQ(update_done->event_status, "COMPLETE");
  EXPECT_EQ(UsersNamed(*c, {"client-test-u2"}).at(0).email, "u2@example.org");

  // The person accepts the invitation (the simulator plays them).
  const std::string uid(DefaultLocation().at("uId").as_string());
  Control("POST", "/_sim/locations/" + uid + "/acceptInvitation", R"({"clientUserIds":["client-test-u2"]})");
  const User u2 = UsersNamed(*c, {"client-test-u2"}).at(0);
  EXPECT_EQ(u2.status, "Associated");
  EXPECT_FALSE(u2.id_hash.empty());
  EXPECT_TRUE(u2.invite_code.empty());

  auto retired = c->RetireUsers({"client-test-u1", "client-test-u2"});
  ASSERT_TRUE(retired) << retired.error().Describe();
  auto retire_done = c->WaitForEvent(retired->event_id, milliseconds(100), milliseconds(5000));
  ASSERT_TRUE(retire_done);
  EXPECT_EQ(retire_done->event_type, "RETIRE");
  EXPECT_EQ(retire_done->event_status, "COMPLETE");
  for (const User& u : UsersNamed(*c, {"client-test-u1", "client-test-u2"})) {
    EXPECT_EQ(u.status, "Retired") << u.client_user_id;
    EXPECT_TRUE(u.invite_code.empty());
  }
  // Retired again: Apple no longer has them as registered users (9609).
  auto twice = c->RetireUsers({"client-test-u1"});
  ASSERT_TRUE(twice);
  auto twice_done = c->WaitForEvent(twice->event_id, milliseconds(100), milliseconds(5000));
  ASSERT_TRUE(twice_done);
  ASSERT_EQ(twice_done->failures.size(), 1u);
  EXPECT_EQ(twice_done->failures[0].error_number, 9609);
}

TEST_F(ClientTest, UserRequestsAppleRefusesOutrightAreValidationErrors) {
  auto c = NewClient();
  auto none = c->CreateUsers({});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind, AppleErrorKind::kValidation);
  EXPECT_EQ(none.error().error_number, 9720);
  EXPECT_EQ(c->RetireUsers({}).error().error_number, 9720);

  auto bad_email = c->UpdateUsers({{"client-test-u3", "not an email", ""}});
  ASSERT_FALSE(bad_email);
  EXPECT_EQ(bad_email.error().error_number, 9717);

  auto config = c->GetServiceConfig();
  ASSERT_TRUE(config);
  std::vector<ManagedUser> many;
  for (int i = 0; i <= config->limits.max_users; ++i) many.push_back({"client-test-many-" + std::to_string(i), "", ""});
  auto too_many = c->CreateUsers(many);
  ASSERT_FALSE(too_many);
  EXPECT_EQ(too_many.error().error_number, 9714);
  auto duplicates = c->CreateUsers({{"client-test-d", "", ""}, {"client-test-d", "", ""}});
  ASSERT_FALSE(duplicates);
  EXPECT_EQ(duplicates.error().error_number, 9715);
}

TEST_F(ClientTest, WaitForEventGivesUpAfterMaxWait) {
  auto c = NewClient();  // Fake clock: the simulator's real 300 ms never pass.
  Control("POST", "/_sim/settings", R"({"eventDelayMs":600000})");
  std::string adam;
  ASSERT_TRUE(c->WalkAssets({}, [&](const AssetsPage& p) -> Status {
    for (const Asset& a : p.items)
      if (adam.empty() && a.device_assignable && a.available_count > 0) adam = a.adam_id;
    return {};
  }));
  auto ev = c->Associate({{{adam, ""}}, {}, {"CLIENTTEST03"}});
  ASSERT_TRUE(ev) << ev.error().Describe();
  auto st = c->WaitForEvent(ev->event_id, seconds(30), seconds(95));
  ASSERT_TRUE(st) << st.error().Describe();
  EXPECT_TRUE(st->Pending());
  EXPECT_EQ(waits_, (std::vector<milliseconds>{seconds(30), seconds(30), seconds(30)}));
}

// ------------------------------------------------------------------ rate cap

TEST_F(ClientTest, RateCapSpacesRequests) {
  ClientOptions o = Options();
  o.max_requests_per_second = 5;
  auto c = NewClient(o);
  const Timestamp start = clock_.Now();
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(c->GetClientConfig());
  // 5 in the first second, 5 in the next, 2 in the third: two waits for a slot.
  EXPECT_GE(clock_.Now() - start, 2'000'000);
  EXPECT_LT(clock_.Now() - start, 3'000'000);
}

TEST_F(ClientTest, RateCapFromServiceConfigKeepsTheSimulatorHappy) {
  // The simulator enforces 8 requests/s per sToken; the client learns 8 from
  // the service config and, with retries off, must never see a 429.
  Control("POST", "/_sim/settings", R"({"rateLimit":true,"limits":{"maxRequestPerSecond":8}})");
  ClientOptions o = Options();
  o.clock = nullptr;
  o.sleep = nullptr;
  o.max_requests_per_second = 0;
  o.retry.max_attempts = 1;
  auto c = NewClient(o);
  ASSERT_TRUE(c->GetServiceConfig());
  const auto start = std::chrono::steady_clock::now();
  auto r = c->WalkAssets({}, Ignore<AssetsPage>);  // 4 pages
  ASSERT_TRUE(r) << r.error().Describe();
  AssignmentFilter f;
  Control("POST", "/_sim/settings", R"({"pageSize":100})");  // 10 pages
  auto r2 = WalkAll(*c, f);
  ASSERT_TRUE(r2) << r2.error().Describe();
  EXPECT_EQ(r2->pages_delivered, 10);
  // 14 requests at 8/s (the service config was the first of the window) need > 1 s.
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(1000));
}

TEST_F(ClientTest, FirstRequestsArePacedAtTheServiceConfigsRate) {
  // Apple allows 1,000 requests/s: a new client's 40 requests start without a
  // wait (at the 15/s it assumes before it knows, 25 of them would wait).
  Control("POST", "/_sim/settings", R"({"limits":{"maxRequestPerSecond":1000}})");
  ClientOptions o = Options();
  o.max_requests_per_second = 0;
  auto c = NewClient(o);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(c->GetClientConfig());
  auto walk = c->WalkAssets({}, Ignore<AssetsPage>);
  ASSERT_TRUE(walk) << walk.error().Describe();
  EXPECT_EQ(waits_, std::vector<milliseconds>{});
  EXPECT_EQ(Counter("GET /mdm/v2/service/config"), 1);  // Read once, before the first request.
  EXPECT_EQ(c->GetServiceConfig()->limits.max_request_per_second, 1000);
  EXPECT_EQ(Counter("GET /mdm/v2/service/config"), 1);
}

TEST_F(ClientTest, AServiceConfigThatCannotBeReadLeavesTheUsualRate) {
  // One attempt, not retried, not read again by the next requests: they go on
  // at 15/s. The caller's own GetServiceConfig retries and reports the error.
  AddFault(R"({"path":"/mdm/v2/service/config","kind":"unavailable","rate":1})");
  ClientOptions o = Options();
  o.max_requests_per_second = 0;
  auto c = NewClient(o);
  const Timestamp start = clock_.Now();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(c->GetClientConfig());
  EXPECT_EQ(Counter("GET /mdm/v2/service/config"), 1);
  // 15 in the first second, 5 in the next.
  EXPECT_GE(clock_.Now() - start, 1'000'000);
  EXPECT_LT(clock_.Now() - start, 2'000'000);
  auto config = c->GetServiceConfig();
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().kind, AppleErrorKind::kUnavailable);
  EXPECT_EQ(Counter("GET /mdm/v2/service/config"), 1 + o.retry.max_attempts);
}

// ------------------------------------------------------------------ metadata

TEST_F(ClientTest, LookupMetadataNamesApps) {
  auto c = NewClient();
  std::vector<std::string> ids;
  ASSERT_TRUE(c->WalkAssets({}, [&](const AssetsPage& p) -> Status {
    for (const Asset& a : p.items) ids.push_back(a.adam_id);
    return {};
  }));
  ids.push_back("999999999999");  // Unknown: absent from the answer.
  std::vector<std::string> many;
  for (int i = 0; i < 3; ++i) many.insert(many.end(), ids.begin(), ids.end());  // > 100 ids: two requests.
  auto r = c->LookupMetadata(many);
  ASSERT_TRUE(r) << r.error().Describe();
  std::set<std::string> seen;
  for (const AppMetadata& m : *r) {
    seen.insert(m.adam_id);
    EXPECT_FALSE(m.name.empty());
    EXPECT_FALSE(m.kind.empty());
    if (m.kind != "ebook") {
      EXPECT_FALSE(m.bundle_id.empty()) << m.adam_id;
    }
  }
  const std::set<std::string> distinct(ids.begin(), ids.end());  // STDQ and PLUS share adamIds.
  EXPECT_EQ(seen.size(), distinct.size() - 1);
  EXPECT_EQ(seen.count("999999999999"), 0u);
  EXPECT_EQ(Counter("GET /lookup"), 2);
  auto empty = c->LookupMetadata({});
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

// ------------------------------------------------------------------ transport

TEST_F(ClientTest, ConnectionRefusedIsATransportError) {
  ClientOptions o = Options();
  o.base_url = "http://127.0.0.1:1/mdm/v2";
  o.retry.max_attempts = 2;
  auto c = NewClient(o);
  auto r = c->GetClientConfig();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, AppleErrorKind::kTransport);
  EXPECT_EQ(r.error().attempts, 2);
  EXPECT_EQ(r.error().ToError().code, Code::kUnavailable);
}

TEST_F(ClientTest, ResponsesOverTheSizeCapAreRefused) {
  ClientOptions o = Options();
  o.max_response_bytes = 500;  // A page of 10 assignments is about 900 bytes.
  auto c = NewClient(o);
  auto r = WalkAll(*c, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, AppleErrorKind::kMalformedResponse);
  EXPECT_NE(r.error().error_message.find("larger than 500"), std::string::npos) << r.error().error_message;
  EXPECT_EQ(r.error().attempts, 1);
}

TEST_F(ClientTest, ConcurrentCallsFromManyThreads) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  ClientOptions o = Options();
  o.clock = nullptr;
  o.sleep = nullptr;
  auto shared = NewClient(o);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 3; ++i) {
        auto r = shared->WalkAssignments({}, Ignore<AssignmentsPage>);
        if (r && r->items == 1000) ++ok;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 12);
}

}  // namespace
}  // namespace vppd::apple
