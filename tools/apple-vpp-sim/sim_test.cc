// Unit tests of the simulator: model, generator, paging, versioning, validation,
// events and faults, driven through Simulator::Handle without sockets.
#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "apple/client.h"
#include "generator.h"
#include "json_writer.h"
#include "model.h"
#include "simulator.h"

namespace vppd::sim {
namespace {

namespace json = boost::json;

constexpr Timestamp kNow = 1'800'000'000LL * 1'000'000;  // 2027-01-15, before the tokens expire.

class SimTest : public ::testing::Test {
 protected:
  void Start(SimOptions opts = {}) {
    auto s = Simulator::Create(opts, clock_);
    ASSERT_TRUE(s) << s.error().message;
    sim_ = std::move(*s);
    token_ = sim_->DefaultSToken();
  }

  http::Response Get(const std::string& target, std::optional<std::string> token = std::nullopt) {
    http::Request r;
    r.method = "GET";
    r.target = target;
    r.headers.emplace_back("Host", "sim.test");
    r.headers.emplace_back("Authorization", "Bearer " + token.value_or(token_));
    return sim_->Handle(r);
  }
  http::Response Post(const std::string& target, const std::string& body,
                      const std::string& content_type = "application/json") {
    http::Request r;
    r.method = "POST";
    r.target = target;
    r.body = body;
    r.headers.emplace_back("Authorization", "Bearer " + token_);
    if (!content_type.empty()) r.headers.emplace_back("Content-Type", content_type);
    return sim_->Handle(r);
  }
  static json::object Obj(const http::Response& r) {
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    return v.is_object() ? v.get_object() : json::object();
  }
  // By value: a range-for over a member of a temporary object would dangle.
  static json::array Arr(const http::Response& r, const char* key) {
    auto o = Obj(r);
    return o.contains(key) && o[key].is_array() ? o[key].as_array() : json::array();
  }
  static std::int64_t ErrorNumber(const http::Response& r) {
    auto o = Obj(r);
    return o.contains("errorNumber") ? o["errorNumber"].as_int64() : -1;
  }
  json::array Locations() { return Obj(Get("/_sim/locations"))["locations"].as_array(); }

  // All assignments by walking every page.
  std::vector<json::object> Walk(const std::string& query = "") {
    std::vector<json::object> out;
    for (std::int64_t page = 0;;) {
      auto o = Obj(Get("/mdm/v2/assignments?pageIndex=" + std::to_string(page) + query));
      for (auto& a : o["assignments"].as_array()) out.push_back(a.as_object());
      if (!o.contains("nextPageIndex")) break;
      page = o["nextPageIndex"].as_int64();
    }
    return out;
  }

  FakeClock clock_{kNow};
  std::unique_ptr<Simulator> sim_;
  std::string token_;
};

// ---------------------------------------------------------------- JSON, paging

TEST(JsonWriterTest, EscapesAndSeparates) {
  JsonWriter w;
  w.BeginObject();
  w.Field("a", std::string_view("q\"\\\n\x01"));
  w.Key("b");
  w.BeginArray();
  w.Int(-5);
  w.Bool(true);
  w.Null();
  w.EndArray();
  w.EndObject();
  EXPECT_EQ(std::move(w).Take(), R"({"a":"q\"\\\n\u0001","b":[-5,true,null]})");
}

TEST(PagingTest, ComputePage) {
  auto p = ComputePage(2500, 1000, 0);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->total_pages, 3);
  EXPECT_EQ(p->begin, 0u);
  EXPECT_EQ(p->end, 1000u);
  EXPECT_TRUE(p->has_next);
  p = ComputePage(2500, 1000, 2);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->end - p->begin, 500u);
  EXPECT_FALSE(p->has_next);
  EXPECT_FALSE(ComputePage(2500, 1000, 3));
  EXPECT_FALSE(ComputePage(2500, 1000, -1));
  p = ComputePage(0, 1000, 0);  // Empty: one empty page.
  ASSERT_TRUE(p);
  EXPECT_EQ(p->total_pages, 1);
  EXPECT_EQ(p->end, 0u);
  EXPECT_FALSE(ComputePage(0, 1000, 1));
  p = ComputePage(3000, 1000, 2);  // Exact multiple: no trailing empty page.
  ASSERT_TRUE(p);
  EXPECT_EQ(p->total_pages, 3);
  EXPECT_FALSE(p->has_next);
}

// ---------------------------------------------------------------- generator

TEST(GeneratorTest, DeterministicAndConsistent) {
  GenerateOptions g;
  g.seed = 42;
  g.assets = 60;
  g.assignments = 5000;
  g.token_expiration = kNow + 1;
  auto a = GenerateLocation(g);
  auto b = GenerateLocation(g);
  ASSERT_EQ(a->uid, b->uid);
  ASSERT_EQ(a->tokens[0].stoken, b->tokens[0].stoken);
  ASSERT_EQ(a->assets().size(), 60u);
  ASSERT_EQ(a->assignments().size(), 5000u);
  ASSERT_EQ(a->version_id(), b->version_id());
  for (std::size_t i = 0; i < a->assignments().size(); ++i) {
    EXPECT_EQ(a->assignments()[i].asset, b->assignments()[i].asset);
    EXPECT_EQ(a->assignments()[i].subject, b->assignments()[i].subject);
  }
  std::map<std::uint32_t, std::int64_t> counted;
  bool saw_book = false, saw_unlimited = false, saw_both = false, saw_sold_out = false;
  for (const Assignment& as : a->assignments()) {
    ++counted[as.asset];
    const Asset& asset = a->assets()[as.asset];
    if (as.kind == SubjectKind::kDevice) {
      EXPECT_TRUE(asset.device_assignable);
    }
  }
  for (std::uint32_t i = 0; i < a->assets().size(); ++i) {
    const Asset& asset = a->assets()[i];
    EXPECT_EQ(asset.assigned_count, counted[i]) << asset.adam_id;
    EXPECT_GE(asset.AvailableCount(), 0);
    EXPECT_EQ(asset.AvailableCount(), asset.ReportedTotal() - asset.assigned_count);
    if (asset.product_type == ProductType::kBook) {
      saw_book = true;
      EXPECT_FALSE(asset.device_assignable);
      EXPECT_FALSE(asset.revocable);
    }
    saw_unlimited |= asset.unlimited;
    saw_both |= asset.platforms == (kIOS | kMacOS);
    saw_sold_out |= !asset.unlimited && asset.AvailableCount() == 0;
    if (asset.unlimited) {
      EXPECT_EQ(asset.ReportedTotal(), kUnlimitedCount);
    }
  }
  EXPECT_TRUE(saw_book && saw_unlimited && saw_both && saw_sold_out);

  g.seed = 43;
  EXPECT_NE(GenerateLocation(g)->uid, a->uid);
}

TEST(GeneratorTest, TokenDecodesToItsLocation) {
  GenerateOptions g;
  g.token_expiration = kNow + 3'600'000'000LL;
  auto loc = GenerateLocation(g);
  auto info = apple::DecodeSToken(loc->tokens[0].stoken);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->token, loc->tokens[0].inner);
  EXPECT_EQ(info->org_name, loc->org_name);
  EXPECT_EQ(info->expiration, g.token_expiration);
}

TEST(DataFileTest, LoadsAndReportsErrorsWithPaths) {
  const char* good = R"({"locations":[{"uId":"123","name":"PS01","assets":[
      {"adamId":"1","totalCount":3},{"adamId":"2","productType":"Book"}],
      "users":[{"clientUserId":"u1"}],
      "assignments":[{"adamId":"1","serialNumber":"S1"},{"adamId":"2","clientUserId":"u1"}]}]})";
  auto locs = LoadDataJson(good, kNow + 1, 10);
  ASSERT_TRUE(locs) << locs.error().message;
  ASSERT_EQ(locs->size(), 1u);
  const Location& l = *(*locs)[0];
  EXPECT_EQ(l.uid, "123");
  EXPECT_EQ(l.assets()[0].AvailableCount(), 2);
  EXPECT_EQ(l.assets()[1].total_count, 1);  // No totalCount: exactly what is assigned.
  EXPECT_EQ(l.tokens.size(), 1u);

  auto bad = LoadDataJson(R"({"locations":[{"assets":[{"adamId":"1"},{"pricingParam":"STDQ"}]}]})", kNow, 10);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("locations[0].assets[1].adamId: missing"), std::string::npos)
      << bad.error().message;
  bad = LoadDataJson(R"({"locations":[{"assets":[{"adamId":"2","productType":"Book"}],
      "assignments":[{"adamId":"2","serialNumber":"S"}]}]})",
                     kNow, 10);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("not device-assignable"), std::string::npos);
  bad = LoadDataJson(R"({"locations":[{"assets":[{"adamId":"1","totalCount":0}],
      "assignments":[{"adamId":"1","serialNumber":"S"}]}]})",
                     kNow, 10);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("totalCount"), std::string::npos);
  EXPECT_FALSE(LoadDataJson("[1,2]", kNow, 10));
  EXPECT_FALSE(LoadDataJson("{", kNow, 10));
}

// ---------------------------------------------------------------- envelope, auth

TEST_F(SimTest, SameSeedGivesByteIdenticalResponses) {
  Start();
  auto other = Simulator::Create(SimOptions{}, clock_);
  ASSERT_TRUE(other);
  for (const char* target : {"/mdm/v2/assets", "/mdm/v2/assignments", "/mdm/v2/users", "/mdm/v2/client/config"}) {
    http::Request r;
    r.method = "GET";
    r.target = target;
    r.headers.emplace_back("Authorization", "Bearer " + token_);
    EXPECT_EQ(sim_->Handle(r).body, (*other)->Handle(r).body) << target;
  }
}

TEST_F(SimTest, AuthErrors) {
  Start();
  http::Request r;
  r.method = "GET";
  r.target = "/mdm/v2/assets";
  auto resp = sim_->Handle(r);  // No header.
  EXPECT_EQ(resp.status, 401);
  EXPECT_EQ(ErrorNumber(resp), 9722);
  r.headers.emplace_back("Authorization", "Basic abc");
  EXPECT_EQ(ErrorNumber(sim_->Handle(r)), 9722);

  resp = Get("/mdm/v2/assets", "bm9wZQ==");
  EXPECT_EQ(resp.status, 401);
  EXPECT_EQ(ErrorNumber(resp), 9601);

  // Service config needs no token.
  r.headers.clear();
  r.target = "/mdm/v2/service/config";
  EXPECT_EQ(sim_->Handle(r).status, 200);

  SimOptions o;
  o.invalid_token_http_200 = true;
  Start(o);
  resp = Get("/mdm/v2/assets", "bm9wZQ==");
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(ErrorNumber(resp), 9622);
}

// With a control token, /_sim/* needs it as a Bearer token (the control API hands
// out every sToken); Apple's endpoints are unaffected. Without one, as before.
TEST_F(SimTest, ControlTokenGuardsTheControlApi) {
  Start();
  EXPECT_EQ(Get("/_sim/locations", "anything").status, 200);
  SimOptions o;
  o.control_token = "control-0123456789";
  Start(o);
  for (const char* target : {"/_sim/locations", "/_sim/counters", "/_sim", "/_sim/faults"}) {
    http::Request r;
    r.method = "GET";
    r.target = target;
    http::Response resp = sim_->Handle(r);  // No header.
    EXPECT_EQ(resp.status, 401) << target;
    EXPECT_EQ(resp.body.find("stoken"), std::string::npos) << resp.body;
    EXPECT_EQ(Get(target, token_).status, 401) << target;  // An sToken is not the control token.
    EXPECT_EQ(Get(target, "control-0123456788").status, 401) << target;
    EXPECT_EQ(Get(target, "control-01234567890").status, 401) << target;
    r.headers.emplace_back("Authorization", "Basic control-0123456789");
    EXPECT_EQ(sim_->Handle(r).status, 401) << target;
  }
  http::Response listed = Get("/_sim/locations", "control-0123456789");
  EXPECT_EQ(listed.status, 200);
  EXPECT_NE(listed.body.find(token_), std::string::npos);
  http::Request del;
  del.method = "DELETE";
  del.target = "/_sim/counters";
  EXPECT_EQ(sim_->Handle(del).status, 401);
  del.headers.emplace_back("Authorization", "Bearer control-0123456789");
  EXPECT_EQ(sim_->Handle(del).status, 200);
  EXPECT_EQ(Get("/mdm/v2/assets").status, 200);  // Apple's API takes sTokens as before.
}

TEST_F(SimTest, ExpiredAndRevokedTokens) {
  Start();
  // A second token for the same location shares its uId.
  const std::string uid(Locations()[0].as_object().at("uId").as_string());
  auto issued = Obj(Post("/_sim/locations/" + uid + "/tokens", "{}"));
  const std::string second(issued["sToken"].as_string());
  EXPECT_EQ(Obj(Get("/mdm/v2/client/config", second))["uId"].as_string(), uid);

  EXPECT_EQ(Post("/_sim/tokens", R"({"sToken":")" + second + R"(","state":"revoked"})").status, 200);
  auto resp = Get("/mdm/v2/assets", second);
  EXPECT_EQ(resp.status, 401);
  EXPECT_EQ(ErrorNumber(resp), 9625);

  // An invalidated token gets the observed 9622 at HTTP 200, whatever the setting.
  EXPECT_EQ(Post("/_sim/tokens", R"({"sToken":")" + second + R"(","state":"invalid"})").status, 200);
  resp = Get("/mdm/v2/assets", second);
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(ErrorNumber(resp), 9622);

  // Expiry by the clock.
  clock_.Set(1920407602LL * 1'000'000);
  resp = Get("/mdm/v2/assets");
  EXPECT_EQ(resp.status, 401);
  EXPECT_EQ(ErrorNumber(resp), 9621);
}

TEST_F(SimTest, MethodContentTypeAndUnknownPath) {
  Start();
  auto resp = Post("/mdm/v2/assets", "{}");
  EXPECT_EQ(resp.status, 405);
  EXPECT_EQ(ErrorNumber(resp), 9726);
  resp = Post("/mdm/v2/assets/associate", "{}", "text/plain");
  EXPECT_EQ(resp.status, 415);
  EXPECT_EQ(ErrorNumber(resp), 9727);
  resp = Post("/mdm/v2/assets/associate", "{not json");
  EXPECT_EQ(resp.status, 400);
  EXPECT_EQ(ErrorNumber(resp), 9602);
  resp = Get("/mdm/v2/nope");
  EXPECT_EQ(resp.status, 404);
  EXPECT_GT(ErrorNumber(resp), 0);
}

// What the HTTP server answers on its own reads like the simulator's other answers.
TEST_F(SimTest, ServerErrorsAreAppleErrorResponses) {
  http::Request req;
  req.target = "/mdm/v2/assets/associate";
  auto resp = ServerErrorResponse({413, "requestEntityTooLarge", "The request body exceeds the server's limit."}, req);
  EXPECT_EQ(resp.status, 413);
  EXPECT_EQ(ErrorNumber(resp), 9602);
  EXPECT_EQ(Obj(resp)["errorMessage"], "The request body exceeds the server's limit.");
  EXPECT_EQ(http::FindHeader(resp.headers, "Content-Type").value_or(""), "application/json");

  req.target.clear();  // A 503 over max_connections: nothing of the request was read.
  resp = ServerErrorResponse({503, "serviceUnavailable", "Too many connections."}, req);
  EXPECT_EQ(resp.status, 503);
  EXPECT_EQ(ErrorNumber(resp), 9729);
  EXPECT_EQ(http::FindHeader(resp.headers, "Retry-After").value_or(""), "1");

  req.target = "/lookup?id=1";
  EXPECT_EQ(ErrorNumber(ServerErrorResponse({500, "generalException", "boom"}, req)), 9603);

  req.target = "/_sim/faults";  // The control API promises JSON only; Apple's is JSON.
  resp = ServerErrorResponse({431, "requestHeaderFieldsTooLarge", "Header too large."}, req);
  EXPECT_EQ(resp.status, 431);
  EXPECT_EQ(ErrorNumber(resp), 9602);
}

TEST_F(SimTest, EnvelopeAndMdmInfo) {
  Start();
  auto o = Obj(Get("/mdm/v2/assets"));
  EXPECT_TRUE(o.contains("uId") && o.contains("tokenExpirationDate") && o.contains("versionId"));
  EXPECT_EQ(o["tokenExpirationDate"].as_string(), "2030-11-08T22:33:22+0000");
  EXPECT_FALSE(o.contains("mdmInfo"));

  EXPECT_EQ(ErrorNumber(Post("/mdm/v2/client/config", R"({"mdmInfo":{"id":"a","name":"b"}})")), 9723);
  EXPECT_EQ(ErrorNumber(Post("/mdm/v2/client/config",
                             R"({"mdmInfo":{"id":")" + std::string(101, 'x') + R"(","name":"b","metadata":""}})")),
            9724);
  EXPECT_EQ(ErrorNumber(Post("/mdm/v2/client/config",
                             R"({"mdmInfo":{"id":"a","name":")" + std::string(101, 'x') + R"(","metadata":""}})")),
            9725);
  EXPECT_EQ(ErrorNumber(Post("/mdm/v2/client/config",
                             R"({"mdmInfo":{"id":"a","name":"b","metadata":")" + std::string(256, 'x') + R"("}})")),
            9713);
  EXPECT_EQ(ErrorNumber(Post("/mdm/v2/client/config", R"({"notificationUrl":"https://x.test/hook"})")), 9710);
  EXPECT_EQ(ErrorNumber(Post("/mdm/v2/client/config",
                             R"({"notificationUrl":"http://x.test/hook","notificationAuthToken":"t"})")),
            9712);
  EXPECT_EQ(ErrorNumber(Post("/mdm/v2/client/config", R"({"notificationUrl":"https://x.test/)" + std::string(600, 'p') +
                                                          R"(","notificationAuthToken":"t"})")),
            9711);
  auto set = Post("/mdm/v2/client/config", R"({"mdmInfo":{"id":"vppd-1","name":"vppd","metadata":"m"}})");
  ASSERT_EQ(set.status, 200) << set.body;
  EXPECT_EQ(Obj(set)["mdmInfo"].as_object().at("id").as_string(), "vppd-1");
  o = Obj(Get("/mdm/v2/assignments"));
  EXPECT_EQ(o["mdmInfo"].as_object().at("name").as_string(), "vppd");
}

// ---------------------------------------------------------------- assets

TEST_F(SimTest, AssetFiltersAndUnlimited) {
  SimOptions opts;
  opts.assets = 80;
  opts.assignments = 2000;
  Start(opts);
  auto all = Obj(Get("/mdm/v2/assets"))["assets"].as_array();
  ASSERT_EQ(all.size(), 80u);
  std::size_t unlimited = 0, books = 0;
  for (auto& v : all) {
    auto& a = v.as_object();
    if (a["totalCount"].as_int64() == kUnlimitedCount) ++unlimited;
    if (a["productType"].as_string() == "Book") ++books;
    EXPECT_EQ(a["availableCount"].as_int64(), a["totalCount"].as_int64() - a["assignedCount"].as_int64());
  }
  ASSERT_GT(unlimited, 0u);
  auto limited = Obj(Get("/mdm/v2/assets?unlimited=false"))["assets"].as_array();
  EXPECT_EQ(limited.size(), 80u - unlimited);
  auto split = Obj(Get("/mdm/v2/assets?unlimited=true"));
  EXPECT_EQ(split["assets"].as_array().size(), 80u - unlimited);
  EXPECT_EQ(split["unlimitedAssets"].as_array().size(), unlimited);
  EXPECT_FALSE(split["unlimitedAssets"].as_array()[0].as_object().contains("totalCount"));
  EXPECT_EQ(Obj(Get("/mdm/v2/assets?productType=Book"))["assets"].as_array().size(), books);
  for (auto& v : Arr(Get("/mdm/v2/assets?minAvailableCount=1&maxAssignedCount=20"), "assets")) {
    EXPECT_GE(v.as_object().at("availableCount").as_int64(), 1);
    EXPECT_LE(v.as_object().at("assignedCount").as_int64(), 20);
  }
  const std::string adam(all[3].as_object().at("adamId").as_string());
  EXPECT_EQ(Obj(Get("/mdm/v2/assets?adamId=" + adam))["assets"].as_array().size(), 1u);
  EXPECT_EQ(ErrorNumber(Get("/mdm/v2/assets?productType=Film")), 9602);
  EXPECT_EQ(ErrorNumber(Get("/mdm/v2/assets?revocable=maybe")), 9602);
  // sinceVersionId is ignored by /assets, even when garbage.
  EXPECT_EQ(Get("/mdm/v2/assets?sinceVersionId=garbage").status, 200);
}

// ---------------------------------------------------------------- paging, versions

TEST_F(SimTest, PagingFieldsAndBadIndex) {
  SimOptions opts;
  opts.assignments = 2500;
  opts.page_size = 1000;
  Start(opts);
  auto p0 = Obj(Get("/mdm/v2/assignments"));
  EXPECT_EQ(p0["currentPageIndex"].as_int64(), 0);
  EXPECT_EQ(p0["nextPageIndex"].as_int64(), 1);
  EXPECT_EQ(p0["size"].as_int64(), 1000);
  EXPECT_EQ(p0["totalPages"].as_int64(), 3);
  auto p2 = Obj(Get("/mdm/v2/assignments?pageIndex=2"));
  EXPECT_EQ(p2["size"].as_int64(), 500);
  EXPECT_FALSE(p2.contains("nextPageIndex"));
  for (const char* bad : {"3", "-1", "x", "1.5", ""}) {
    auto r = Get(std::string("/mdm/v2/assignments?pageIndex=") + bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(ErrorNumber(r), 9650) << bad;
  }
  EXPECT_EQ(Walk().size(), 2500u);
}

TEST_F(SimTest, AssignmentFilters) {
  SimOptions opts;
  opts.assignments = 3000;
  Start(opts);
  auto all = Walk();
  const auto& first = all[0];
  const std::string adam(first.at("adamId").as_string());
  for (auto& a : Walk("&adamId=" + adam)) EXPECT_EQ(a.at("adamId").as_string(), adam);
  std::string serial, user;
  for (auto& a : all) {
    if (serial.empty() && a.contains("serialNumber")) serial = a.at("serialNumber").as_string();
    if (user.empty() && a.contains("clientUserId")) user = a.at("clientUserId").as_string();
  }
  auto by_serial = Walk("&serialNumber=" + serial);
  ASSERT_FALSE(by_serial.empty());
  for (auto& a : by_serial) EXPECT_EQ(a.at("serialNumber").as_string(), serial);
  auto by_user = Walk("&clientUserId=" + user + "&includeUserState=true");
  ASSERT_FALSE(by_user.empty());
  for (auto& a : by_user) EXPECT_TRUE(a.contains("userStatus"));
  EXPECT_TRUE(Walk("&serialNumber=NOPE").empty());
  auto active = Walk("&excludeInactiveUsers=true");
  EXPECT_LE(active.size(), all.size());
}

TEST_F(SimTest, VersionDeltaAndHistory) {
  SimOptions opts;
  opts.history_limit = 3;
  opts.event_delay = std::chrono::milliseconds(0);
  Start(opts);
  const std::string v1(Obj(Get("/mdm/v2/assignments"))["versionId"].as_string());
  EXPECT_TRUE(Walk("&sinceVersionId=" + v1).empty());

  // An out-of-band assignment is a write: new versionId, visible in the delta.
  const std::string uid(Locations()[0].as_object().at("uId").as_string());
  std::string adam;
  for (auto& v : Arr(Get("/mdm/v2/assets?unlimited=true"), "unlimitedAssets"))
    if (v.as_object().at("deviceAssignable").as_bool()) adam = v.as_object().at("adamId").as_string();
  ASSERT_FALSE(adam.empty());
  auto r = Post("/_sim/locations/" + uid + "/assignments",
                R"({"add":[{"adamId":")" + adam + R"(","serialNumber":"NEWSERIAL001"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string v2(Obj(Get("/mdm/v2/assignments"))["versionId"].as_string());
  EXPECT_NE(v1, v2);
  auto delta = Walk("&sinceVersionId=" + v1);
  ASSERT_EQ(delta.size(), 1u);
  EXPECT_EQ(delta[0].at("serialNumber").as_string(), "NEWSERIAL001");
  // /assets carries the same versionId.
  EXPECT_EQ(Obj(Get("/mdm/v2/assets"))["versionId"].as_string(), v2);

  EXPECT_EQ(ErrorNumber(Get("/mdm/v2/assignments?sinceVersionId=garbage")), 9721);
  EXPECT_EQ(ErrorNumber(Get("/mdm/v2/users?sinceVersionId=garbage")), 9721);
  // Three more writes push v1 out of a 3-version history.
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Post("/_sim/locations/" + uid + "/bumpVersion", "").status, 200);
  auto old = Get("/mdm/v2/assignments?sinceVersionId=" + v1);
  EXPECT_EQ(old.status, 400);
  EXPECT_EQ(ErrorNumber(old), 9721);
}

// ---------------------------------------------------------------- validation

TEST_F(SimTest, ManageValidation) {
  Start();
  auto assets = Obj(Get("/mdm/v2/assets"))["assets"].as_array();
  std::string app, book;
  for (auto& v : assets) {
    auto& a = v.as_object();
    if (a.at("productType").as_string() == "Book")
      book = a.at("adamId").as_string();
    else
      app = a.at("adamId").as_string();
  }
  ASSERT_FALSE(app.empty() || book.empty());
  auto num = [&](const std::string& path, const std::string& body) { return ErrorNumber(Post(path, body)); };
  EXPECT_EQ(num("/mdm/v2/assets/associate", R"({"serialNumbers":["S"]})"), 9718);
  EXPECT_EQ(num("/mdm/v2/assets/associate", R"({"assets":[{"adamId":")" + app + R"("}]})"), 9719);
  std::string many = R"({"serialNumbers":["S"],"assets":[)";
  for (int i = 0; i < 26; ++i) many += std::string(i ? "," : "") + R"({"adamId":")" + std::to_string(i) + R"("})";
  EXPECT_EQ(num("/mdm/v2/assets/associate", many + "]}"), 9700);
  std::string serials = R"({"assets":[{"adamId":")" + app + R"("}],"serialNumbers":[)";
  for (int i = 0; i < 1001; ++i) serials += std::string(i ? "," : "") + "\"S" + std::to_string(i) + "\"";
  EXPECT_EQ(num("/mdm/v2/assets/associate", serials + "]}"), 9702);
  EXPECT_EQ(num("/mdm/v2/assets/associate",
                R"({"assets":[{"adamId":")" + app + R"("},{"adamId":")" + app + R"("}],"serialNumbers":["S"]})"),
            9703);
  EXPECT_EQ(num("/mdm/v2/assets/associate", R"({"assets":[{"adamId":")" + app + R"("}],"clientUserIds":["u","u"]})"),
            9704);
  EXPECT_EQ(num("/mdm/v2/assets/associate", R"({"assets":[{"adamId":")" + app + R"("}],"serialNumbers":["S","S"]})"),
            9705);
  EXPECT_EQ(num("/mdm/v2/assets/associate", R"({"assets":[{"adamId":")" + book + R"("}],"serialNumbers":["S"]})"),
            9707);
  EXPECT_EQ(num("/mdm/v2/assets/disassociate", R"({"assets":[{"adamId":")" + book + R"("}],"clientUserIds":["u"]})"),
            9706);
  EXPECT_EQ(num("/mdm/v2/assets/revoke", R"({})"), 9719);
  EXPECT_EQ(num("/mdm/v2/users/create", R"({"users":[]})"), 9720);
  EXPECT_EQ(num("/mdm/v2/users/create", R"({"users":[{"clientUserId":"a"},{"clientUserId":"a"}]})"), 9715);
  EXPECT_EQ(num("/mdm/v2/users/create", R"({"users":[{"clientUserId":"a","email":"not-an-email"}]})"), 9717);
  std::string users = R"({"users":[)";
  for (int i = 0; i < 101; ++i)
    users += std::string(i ? "," : "") + R"({"clientUserId":"u)" + std::to_string(i) + "\"}";
  EXPECT_EQ(num("/mdm/v2/users/create", users + "]}"), 9714);
  EXPECT_EQ(num("/mdm/v2/assets/associate", R"({"assets":[{"adamId":"1"}],"serialNumbers":["S"]})"), 9602);
  EXPECT_EQ(ErrorNumber(Get("/mdm/v2/status?eventId=nope")), 9708);
}

// ---------------------------------------------------------------- events

TEST_F(SimTest, AControlReadSeesEventsThatAreDue) {
  // Apple works events off on its own: a test that reads the location after the
  // event's delay sees it applied, with no Apple request in between.
  SimOptions opts;
  opts.event_delay = std::chrono::milliseconds(500);
  Start(opts);
  std::string unlimited;
  for (auto& v : Arr(Get("/mdm/v2/assets?unlimited=true"), "unlimitedAssets"))
    if (v.as_object().at("deviceAssignable").as_bool()) unlimited = v.as_object().at("adamId").as_string();
  ASSERT_FALSE(unlimited.empty());
  const std::string uid(Locations()[0].as_object().at("uId").as_string());
  auto held = [&] { return Obj(Get("/_sim/locations/" + uid))["assignments"].as_int64(); };
  const std::int64_t before = held();
  ASSERT_EQ(
      Post("/mdm/v2/assets/associate", R"({"assets":[{"adamId":")" + unlimited + R"("}],"serialNumbers":["C1","C2"]})")
          .status,
      200);
  EXPECT_EQ(held(), before) << "not yet due";
  clock_.Advance(std::chrono::milliseconds(499));
  EXPECT_EQ(held(), before) << "not yet due";
  clock_.Advance(std::chrono::milliseconds(1));
  EXPECT_EQ(held(), before + 2) << "due: applied when observed";
}

TEST_F(SimTest, AssociateResolvesAfterDelayWithPartialFailure) {
  SimOptions opts;
  opts.event_delay = std::chrono::milliseconds(500);
  Start(opts);
  // A sold-out app: available 0.
  std::string sold_out;
  for (auto& v : Arr(Get("/mdm/v2/assets?unlimited=false&deviceAssignable=true&maxAvailableCount=0"), "assets"))
    sold_out = v.as_object().at("adamId").as_string();
  ASSERT_FALSE(sold_out.empty());
  const std::string uid(Locations()[0].as_object().at("uId").as_string());
  ASSERT_EQ(Post("/_sim/locations/" + uid + "/purchase", R"({"adamId":")" + sold_out + R"(","count":2})").status, 200);
  const std::string v0(Obj(Get("/mdm/v2/assets"))["versionId"].as_string());

  auto ev = Post("/mdm/v2/assets/associate", R"({"assets":[{"adamId":")" + sold_out +
                                                 R"("}],"serialNumbers":["A1","A2","A3"],"clientUserIds":["ghost"]})");
  ASSERT_EQ(ev.status, 200) << ev.body;
  const std::string id(Obj(ev)["eventId"].as_string());
  auto st = Obj(Get("/mdm/v2/status?eventId=" + id));
  EXPECT_EQ(st["eventStatus"].as_string(), "PENDING");
  EXPECT_EQ(st["eventType"].as_string(), "ASSOCIATE");
  EXPECT_EQ(st["numRequested"].as_int64(), 4);
  EXPECT_EQ(Obj(Get("/mdm/v2/assets"))["versionId"].as_string(), v0);  // Nothing applied yet.

  clock_.Advance(std::chrono::milliseconds(500));
  st = Obj(Get("/mdm/v2/status?eventId=" + id));
  EXPECT_EQ(st["eventStatus"].as_string(), "FAILED");
  EXPECT_EQ(st["numCompleted"].as_int64(), 2);
  std::map<std::int64_t, json::object> failures;
  for (auto& f : st["failures"].as_array()) failures[f.as_object().at("errorNumber").as_int64()] = f.as_object();
  ASSERT_TRUE(failures.count(9709));
  ASSERT_TRUE(failures.count(9609));
  EXPECT_EQ(failures[9709]["errorInfo"].as_object()["serialNumbers"].as_array().size(), 1u);
  EXPECT_EQ(failures[9609]["errorInfo"].as_object()["clientUserIds"].as_array()[0].as_string(), "ghost");
  auto asset = Obj(Get("/mdm/v2/assets?adamId=" + sold_out))["assets"].as_array()[0].as_object();
  EXPECT_EQ(asset["availableCount"].as_int64(), 0);
  EXPECT_NE(Obj(Get("/mdm/v2/assets"))["versionId"].as_string(), v0);
  EXPECT_EQ(Walk("&serialNumber=A1").size(), 1u);

  // Disassociate them again: COMPLETE, counts restored.
  ev = Post("/mdm/v2/assets/disassociate",
            R"({"assets":[{"adamId":")" + sold_out + R"("}],"serialNumbers":["A1","A2"]})");
  clock_.Advance(std::chrono::milliseconds(500));
  st = Obj(Get("/mdm/v2/status?eventId=" + std::string(Obj(ev)["eventId"].as_string())));
  EXPECT_EQ(st["eventStatus"].as_string(), "COMPLETE");
  EXPECT_EQ(st["numCompleted"].as_int64(), 2);
  asset = Obj(Get("/mdm/v2/assets?adamId=" + sold_out))["assets"].as_array()[0].as_object();
  EXPECT_EQ(asset["availableCount"].as_int64(), 2);
}

// Licensing against a sold-out app that the tests buy licenses for.
class LicensingTest : public SimTest {
 protected:
  void SetUp() override {
    SimOptions opts;
    opts.event_delay = std::chrono::milliseconds(100);
    Start(opts);
    uid_ = std::string(Locations()[0].as_object().at("uId").as_string());
    for (auto& v : Arr(Get("/mdm/v2/assets?unlimited=false&deviceAssignable=true&maxAvailableCount=0"), "assets"))
      app_ = std::string(v.as_object().at("adamId").as_string());
    ASSERT_FALSE(app_.empty());
  }
  void Buy(std::int64_t n) {
    ASSERT_EQ(Post("/_sim/locations/" + uid_ + "/purchase",
                   R"({"adamId":")" + app_ + R"(","count":)" + std::to_string(n) + "}")
                  .status,
              200);
  }
  std::string Associate(const std::string& subjects, const char* op = "associate") {
    auto r = Post(std::string("/mdm/v2/assets/") + op, R"({"assets":[{"adamId":")" + app_ + R"("}],)" + subjects + "}");
    EXPECT_EQ(r.status, 200) << r.body;
    return std::string(Obj(r)["eventId"].as_string());
  }
  json::object Status(const std::string& id) { return Obj(Get("/mdm/v2/status?eventId=" + id)); }
  // errorNumber → errorInfo of a resolved event's failures.
  std::map<std::int64_t, json::object> Failures(const std::string& id) {
    std::map<std::int64_t, json::object> out;
    auto st = Status(id);
    if (!st.contains("failures")) return out;
    for (auto& f : st["failures"].as_array())
      out[f.as_object().at("errorNumber").as_int64()] = f.as_object().at("errorInfo").as_object();
    return out;
  }
  static std::vector<std::string> Strings(const json::value& v) {
    std::vector<std::string> out;
    for (auto& s : v.as_array()) out.emplace_back(s.as_string());
    return out;
  }
  std::string uid_, app_;
};

TEST_F(LicensingTest, EventFailureRuleFailsChosenSerialsAndUsers) {
  Buy(10);
  ASSERT_EQ(Post("/_sim/faults", R"({"path":"/mdm/v2/assets/associate","kind":"event_failure",)"
                                 R"("errorNumber":9616,"serialNumbers":["S2"],"clientUserIds":["ghost-user"]})")
                .status,
            200);
  ASSERT_EQ(
      Post("/_sim/faults", R"({"path":"*","kind":"event_failure","errorNumber":9628,"serialNumbers":["S3"]})").status,
      200);
  // Reads do not use up event rules.
  Get("/mdm/v2/assets");
  const std::string id = Associate(R"("serialNumbers":["S1","S2","S3","S4"])");
  clock_.Advance(std::chrono::milliseconds(100));
  auto st = Status(id);
  EXPECT_EQ(st["eventStatus"].as_string(), "FAILED");
  EXPECT_EQ(st["numRequested"].as_int64(), 4);
  EXPECT_EQ(st["numCompleted"].as_int64(), 2);
  auto failures = Failures(id);
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_EQ(Strings(failures[9616]["serialNumbers"]), std::vector<std::string>{"S2"});
  EXPECT_EQ(Strings(failures[9628]["serialNumbers"]), std::vector<std::string>{"S3"});
  EXPECT_EQ(failures[9616]["assets"].as_array()[0].as_object().at("adamId").as_string(), app_);
  // The failed serials got nothing; the others did.
  EXPECT_EQ(Walk("&adamId=" + app_ + "&serialNumber=S1").size(), 1u);
  EXPECT_EQ(Walk("&adamId=" + app_ + "&serialNumber=S2").size(), 0u);
  EXPECT_EQ(Walk("&adamId=" + app_ + "&serialNumber=S3").size(), 0u);
  EXPECT_EQ(Walk("&adamId=" + app_ + "&serialNumber=S4").size(), 1u);

  // Disassociate is not matched by the first rule's path; the "*" rule still fails S3 there.
  const std::string dis = Associate(R"("serialNumbers":["S1","S3"])", "disassociate");
  clock_.Advance(std::chrono::milliseconds(100));
  auto f = Failures(dis);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(Strings(f[9628]["serialNumbers"]), std::vector<std::string>{"S3"});
  EXPECT_EQ(Walk("&adamId=" + app_ + "&serialNumber=S1").size(), 0u);
  auto rules = Obj(Get("/_sim/faults"))["faults"].as_array();
  EXPECT_EQ(rules[0].as_object().at("hits").as_int64(), 1);
  EXPECT_EQ(rules[1].as_object().at("hits").as_int64(), 2);
}

TEST_F(LicensingTest, EventFailureForUsersAndWholeEvents) {
  Buy(10);
  std::string user;
  for (auto& u : Arr(Get("/mdm/v2/users?activeOnly=true"), "users"))
    if (u.as_object().at("status").as_string() == "Associated")
      user = std::string(u.as_object().at("clientUserId").as_string());
  ASSERT_FALSE(user.empty());
  // No subjects listed: every subject of the (first) matching event fails.
  ASSERT_EQ(Post("/_sim/faults", R"({"path":"/mdm/v2/assets/associate","kind":"event_failure","errorNumber":9610,)"
                                 R"("onRequests":[1]})")
                .status,
            200);
  std::string id = Associate(R"("clientUserIds":[")" + user + R"("],"serialNumbers":["X1"])");
  clock_.Advance(std::chrono::milliseconds(100));
  auto st = Status(id);
  EXPECT_EQ(st["numCompleted"].as_int64(), 0);
  auto f = Failures(id);
  EXPECT_EQ(Strings(f[9610]["clientUserIds"]), std::vector<std::string>{user});
  EXPECT_EQ(Strings(f[9610]["serialNumbers"]), std::vector<std::string>{"X1"});
  // The rule fired once: the retry succeeds.
  id = Associate(R"("clientUserIds":[")" + user + R"("],"serialNumbers":["X1"])");
  clock_.Advance(std::chrono::milliseconds(100));
  EXPECT_EQ(Status(id)["eventStatus"].as_string(), "COMPLETE");
  EXPECT_EQ(Status(id)["numCompleted"].as_int64(), 2);
  // Bad rules are refused.
  EXPECT_EQ(Post("/_sim/faults", R"({"kind":"event_failure","serialNumbers":"S1"})").status, 400);
  EXPECT_EQ(Post("/_sim/faults", R"({"kind":"slow_event","delayMs":-1})").status, 400);
}

TEST_F(LicensingTest, NotEnoughLicensesIsExactInRequestOrderAndRetrySucceedsAfterPurchase) {
  Buy(3);
  const std::string id = Associate(R"("serialNumbers":["C3","A1","B2","Z9","M5"])");
  clock_.Advance(std::chrono::milliseconds(100));
  auto st = Status(id);
  EXPECT_EQ(st["eventStatus"].as_string(), "FAILED");
  EXPECT_EQ(st["numCompleted"].as_int64(), 3);
  auto f = Failures(id);
  ASSERT_EQ(f.size(), 1u);
  // The first three in request order got one; the rest are named in request order.
  EXPECT_EQ(Strings(f[9709]["serialNumbers"]), (std::vector<std::string>{"Z9", "M5"}));
  for (const char* sn : {"C3", "A1", "B2"}) EXPECT_EQ(Walk("&adamId=" + app_ + "&serialNumber=" + sn).size(), 1u) << sn;
  auto asset = Obj(Get("/mdm/v2/assets?adamId=" + app_))["assets"].as_array()[0].as_object();
  EXPECT_EQ(asset["availableCount"].as_int64(), 0);

  const std::size_t before = Walk("&adamId=" + app_).size();
  Buy(2);
  const std::string retry = Associate(R"("serialNumbers":["Z9","A1","M5","B2","C3"])");
  clock_.Advance(std::chrono::milliseconds(100));
  st = Status(retry);
  EXPECT_EQ(st["eventStatus"].as_string(), "COMPLETE");
  EXPECT_EQ(st["numCompleted"].as_int64(), 5);
  EXPECT_EQ(Walk("&adamId=" + app_).size(), before + 2);
}

TEST_F(LicensingTest, SlowAndHeldEventsStayPendingWhileOthersComplete) {
  Buy(10);
  ASSERT_EQ(
      Post("/_sim/faults", R"({"path":"/mdm/v2/assets/associate","kind":"slow_event","delayMs":5000,"onRequests":[1]})")
          .status,
      200);
  ASSERT_EQ(Post("/_sim/faults", R"({"path":"/mdm/v2/assets/associate","kind":"hold_event","onRequests":[2]})").status,
            200);
  const std::string slow = Associate(R"("serialNumbers":["P1"])");
  const std::string held = Associate(R"("serialNumbers":["P2"])");
  const std::string normal = Associate(R"("serialNumbers":["P3"])");
  clock_.Advance(std::chrono::milliseconds(100));
  EXPECT_EQ(Status(normal)["eventStatus"].as_string(), "COMPLETE");
  EXPECT_EQ(Status(slow)["eventStatus"].as_string(), "PENDING");
  EXPECT_EQ(Status(held)["eventStatus"].as_string(), "PENDING");
  clock_.Advance(std::chrono::milliseconds(5000));
  EXPECT_EQ(Status(slow)["eventStatus"].as_string(), "COMPLETE");
  EXPECT_EQ(Status(held)["eventStatus"].as_string(), "PENDING");
  clock_.Advance(std::chrono::hours(1));
  EXPECT_EQ(Status(held)["eventStatus"].as_string(), "PENDING");
  // Releasing an unknown id is 404; the held one resolves on its own release.
  EXPECT_EQ(Post("/_sim/events/resolve", R"({"eventId":"nope"})").status, 404);
  auto r = Post("/_sim/events/resolve", R"({"eventId":")" + held + R"("})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Status(held)["eventStatus"].as_string(), "COMPLETE");
  EXPECT_EQ(Walk("&adamId=" + app_ + "&serialNumber=P2").size(), 1u);
  // A held event is also resolved by the plain resolve-all.
  const std::string held2 = Associate(R"("serialNumbers":["P4"])");
  ASSERT_EQ(Post("/_sim/faults", R"({"path":"/mdm/v2/assets/associate","kind":"hold_event"})").status, 200);
  const std::string held3 = Associate(R"("serialNumbers":["P5"])");
  clock_.Advance(std::chrono::milliseconds(100));
  EXPECT_EQ(Status(held2)["eventStatus"].as_string(), "COMPLETE");
  EXPECT_EQ(Status(held3)["eventStatus"].as_string(), "PENDING");
  EXPECT_EQ(Post("/_sim/events/resolve", "").status, 200);
  EXPECT_EQ(Status(held3)["eventStatus"].as_string(), "COMPLETE");
}

TEST_F(SimTest, UserLifecycle) {
  SimOptions opts;
  opts.event_delay = std::chrono::milliseconds(0);
  Start(opts);
  const std::string v0(Obj(Get("/mdm/v2/users"))["versionId"].as_string());
  auto ev = Obj(Post("/mdm/v2/users/create", R"({"users":[{"clientUserId":"new-1","email":"n@x.org"}]})"));
  auto st = Obj(Get("/mdm/v2/status?eventId=" + std::string(ev["eventId"].as_string())));
  EXPECT_EQ(st["eventStatus"].as_string(), "COMPLETE");
  auto users = Obj(Get("/mdm/v2/users?sinceVersionId=" + v0))["users"].as_array();
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0].as_object().at("status").as_string(), "Registered");
  EXPECT_TRUE(users[0].as_object().contains("inviteCode"));
  ev = Obj(Post("/mdm/v2/users/create", R"({"users":[{"clientUserId":"new-1"}]})"));
  st = Obj(Get("/mdm/v2/status?eventId=" + std::string(ev["eventId"].as_string())));
  EXPECT_EQ(st["eventStatus"].as_string(), "FAILED");
  EXPECT_EQ(st["failures"].as_array()[0].as_object().at("errorNumber").as_int64(), 9716);
  ev = Obj(Post("/mdm/v2/users/retire", R"({"users":[{"clientUserId":"new-1"},{"clientUserId":"ghost"}]})"));
  st = Obj(Get("/mdm/v2/status?eventId=" + std::string(ev["eventId"].as_string())));
  EXPECT_EQ(st["numCompleted"].as_int64(), 1);
  EXPECT_EQ(Obj(Get("/mdm/v2/users?clientUserId=new-1"))["users"].as_array()[0].as_object().at("status").as_string(),
            "Retired");
  EXPECT_EQ(Obj(Get("/mdm/v2/users?retiredOnly=true&activeOnly=false"))["users"].as_array().size() > 0, true);
}

// users/update changes what it names and nothing else; the user keeps its status and invitation.
TEST_F(SimTest, UsersUpdateChangesEmailAndManagedAppleId) {
  SimOptions opts;
  opts.event_delay = std::chrono::milliseconds(0);
  Start(opts);
  Post("/mdm/v2/users/create", R"({"users":[{"clientUserId":"up-1","email":"old@x.org"}]})");
  auto before = Arr(Get("/mdm/v2/users?clientUserId=up-1"), "users")[0].as_object();
  const std::string v0(Obj(Get("/mdm/v2/users"))["versionId"].as_string());
  auto ev = Obj(Post("/mdm/v2/users/update", R"({"users":[{"clientUserId":"up-1","email":"new@x.org"},)"
                                             R"({"clientUserId":"ghost","email":"g@x.org"}]})"));
  auto st = Obj(Get("/mdm/v2/status?eventId=" + std::string(ev["eventId"].as_string())));
  EXPECT_EQ(st["eventType"].as_string(), "UPDATE");
  EXPECT_EQ(st["numCompleted"].as_int64(), 1);
  EXPECT_EQ(st["failures"].as_array()[0].as_object().at("errorNumber").as_int64(), 9609) << "no such user";
  auto after = Arr(Get("/mdm/v2/users?sinceVersionId=" + v0), "users");
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].as_object().at("email").as_string(), "new@x.org");
  EXPECT_EQ(after[0].as_object().at("status").as_string(), "Registered");
  EXPECT_EQ(after[0].as_object().at("inviteCode"), before.at("inviteCode"));
}

// The person accepting an invitation, played through /_sim/: the Apple Account
// (idHash) they sign in with is associated with one user of the location at a
// time; a second user accepting with it is refused as Apple refuses (9641).
TEST_F(SimTest, AnAppleAccountAlreadyAssociatedWithAnotherUserIsRefused) {
  SimOptions opts;
  opts.event_delay = std::chrono::milliseconds(0);
  Start(opts);
  const std::string uid(Locations()[0].as_object().at("uId").as_string());
  const std::string accept = "/_sim/locations/" + uid + "/acceptInvitation";
  Post("/mdm/v2/users/create", R"({"users":[{"clientUserId":"p-1"},{"clientUserId":"p-2"},{"clientUserId":"p-3"}]})");
  Get("/mdm/v2/users");  // events resolve as Apple's API is read
  auto r = Post(accept, R"({"clientUserIds":["p-1"],"idHash":"account-A"})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto p1 = Arr(Get("/mdm/v2/users?clientUserId=p-1"), "users")[0].as_object();
  EXPECT_EQ(p1["status"].as_string(), "Associated");
  EXPECT_EQ(p1["idHash"].as_string(), "account-A");

  const std::string v0(Obj(Get("/mdm/v2/users"))["versionId"].as_string());
  r = Post(accept, R"({"clientUserIds":["p-2"],"idHash":"account-A"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorNumber(r), 9641);
  EXPECT_EQ(Obj(r)["errorMessage"].as_string(), "The Apple Account is already associated with another user.");
  auto p2 = Arr(Get("/mdm/v2/users?clientUserId=p-2"), "users")[0].as_object();
  EXPECT_EQ(p2["status"].as_string(), "Registered") << "the invitation is still open";
  EXPECT_TRUE(p2.contains("inviteCode"));
  EXPECT_FALSE(p2.contains("idHash"));
  EXPECT_EQ(Obj(Get("/mdm/v2/users"))["versionId"].as_string(), v0) << "nothing changed";

  // Another account is fine; one idHash names one person.
  EXPECT_EQ(Post(accept, R"({"clientUserIds":["p-2"],"idHash":"account-B"})").status, 200);
  EXPECT_EQ(Post(accept, R"({"clientUserIds":["p-3","p-2"],"idHash":"account-C"})").status, 400);
  EXPECT_EQ(Post(accept, R"({"clientUserIds":["p-3"],"idHash":""})").status, 400);
  // Once p-1 is retired its account is free again (its idHash may remain on the retired user).
  Post("/mdm/v2/users/retire", R"({"users":[{"clientUserId":"p-1"}]})");
  Get("/mdm/v2/users");
  r = Post(accept, R"({"clientUserIds":["p-3"],"idHash":"account-A"})");
  EXPECT_EQ(r.status, 200) << r.body;
}

// Retiring a user releases its revocable licences (counts follow); a book's stays.
TEST_F(LicensingTest, RetireReleasesRevocableLicencesAndCountsFollow) {
  Buy(3);
  std::string book;
  for (auto& v : Arr(Get("/mdm/v2/assets?productType=Book&unlimited=false"), "assets")) {
    const auto& o = v.as_object();
    if (book.empty() && !o.at("revocable").as_bool() && o.at("availableCount").as_int64() > 0)
      book = std::string(o.at("adamId").as_string());
  }
  ASSERT_FALSE(book.empty());
  auto count = [&](const std::string& adam, const char* field) {
    return Arr(Get("/mdm/v2/assets?adamId=" + adam), "assets")[0].as_object().at(field).as_int64();
  };
  const std::int64_t book_available = count(book, "availableCount");
  const std::int64_t app_assigned = count(app_, "assignedCount");
  Post("/mdm/v2/users/create", R"({"users":[{"clientUserId":"r-1"},{"clientUserId":"r-2"}]})");
  clock_.Advance(std::chrono::milliseconds(100));
  Associate(R"("clientUserIds":["r-1","r-2"])");
  Post("/mdm/v2/assets/associate", R"({"assets":[{"adamId":")" + book + R"("}],"clientUserIds":["r-1"]})");
  clock_.Advance(std::chrono::milliseconds(100));
  EXPECT_EQ(count(app_, "assignedCount"), app_assigned + 2);
  EXPECT_EQ(count(app_, "availableCount"), 1);
  EXPECT_EQ(count(book, "availableCount"), book_available - 1);

  auto ev = Obj(Post("/mdm/v2/users/retire", R"({"users":[{"clientUserId":"r-1"}]})"));
  clock_.Advance(std::chrono::milliseconds(100));
  auto st = Status(std::string(ev["eventId"].as_string()));
  EXPECT_EQ(st["eventType"].as_string(), "RETIRE");
  EXPECT_EQ(st["eventStatus"].as_string(), "COMPLETE");
  EXPECT_EQ(count(app_, "assignedCount"), app_assigned + 1);
  EXPECT_EQ(count(app_, "availableCount"), 2);
  EXPECT_EQ(Walk("&clientUserId=r-1&adamId=" + app_).size(), 0u);
  EXPECT_EQ(Walk("&clientUserId=r-2&adamId=" + app_).size(), 1u) << "only the retired user's";
  EXPECT_EQ(Walk("&clientUserId=r-1&adamId=" + book).size(), 1u) << "a book is not revocable";
  EXPECT_EQ(count(book, "availableCount"), book_available - 1);
  // A retired user holds nothing new.
  auto again = Associate(R"("clientUserIds":["r-1"])");
  clock_.Advance(std::chrono::milliseconds(100));
  EXPECT_TRUE(Failures(again).count(9609));
}

// Books are licensed to users only: a device associate of a Book is refused
// outright (9707, errorInfo naming the asset), a user associate works.
TEST_F(LicensingTest, BooksAreAssignableToUsersOnly) {
  std::string book;
  for (auto& v : Arr(Get("/mdm/v2/assets?productType=Book&unlimited=false"), "assets")) {
    const auto& o = v.as_object();
    if (book.empty() && o.at("availableCount").as_int64() > 0) book = std::string(o.at("adamId").as_string());
    EXPECT_FALSE(o.at("deviceAssignable").as_bool()) << o.at("adamId").as_string();
  }
  ASSERT_FALSE(book.empty());
  auto r = Post("/mdm/v2/assets/associate", R"({"assets":[{"adamId":")" + book + R"("}],"serialNumbers":["B1"]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorNumber(r), 9707);
  EXPECT_EQ(Obj(r)["errorInfo"].as_object()["assets"].as_array()[0].as_object().at("adamId").as_string(), book);
  Post("/mdm/v2/users/create", R"({"users":[{"clientUserId":"reader"}]})");
  clock_.Advance(std::chrono::milliseconds(100));
  r = Post("/mdm/v2/assets/associate", R"({"assets":[{"adamId":")" + book + R"("}],"clientUserIds":["reader"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  clock_.Advance(std::chrono::milliseconds(100));
  EXPECT_EQ(Status(std::string(Obj(r)["eventId"].as_string()))["eventStatus"].as_string(), "COMPLETE");
  EXPECT_EQ(Walk("&clientUserId=reader&adamId=" + book).size(), 1u);
}

// ---------------------------------------------------------------- faults, rate limit, counters

TEST_F(SimTest, CountTriggeredFaultsAndCounters) {
  Start();
  ASSERT_EQ(Post("/_sim/faults",
                 R"({"path":"/mdm/v2/assignments","onRequests":[2,3],"kind":"unavailable","retryAfterSeconds":7})")
                .status,
            200);
  ASSERT_EQ(Post("/_sim/faults", R"({"path":"/mdm/v2/assets","kind":"truncate","truncateAt":10,"maxHits":1})").status,
            200);
  EXPECT_EQ(Get("/mdm/v2/assignments").status, 200);
  auto r = Get("/mdm/v2/assignments");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(ErrorNumber(r), 9729);
  bool saw_retry = false;
  for (auto& [k, v] : r.headers) saw_retry |= k == "Retry-After" && v == "7";
  EXPECT_TRUE(saw_retry);
  EXPECT_EQ(Get("/mdm/v2/assignments").status, 503);
  EXPECT_EQ(Get("/mdm/v2/assignments").status, 200);
  r = Get("/mdm/v2/assets");
  ASSERT_TRUE(r.truncate_body_at);
  EXPECT_EQ(*r.truncate_body_at, 10u);
  EXPECT_FALSE(Get("/mdm/v2/assets").truncate_body_at);  // maxHits 1.
  EXPECT_EQ(Post("/_sim/faults", R"({"kind":"explode"})").status, 400);

  auto counters = Obj(Get("/_sim/counters"));
  EXPECT_EQ(counters["total"].as_object().at("GET /mdm/v2/assignments").as_int64(), 4);
}

TEST_F(SimTest, RateFaultIsDeterministic) {
  auto run = [&] {
    Start();
    EXPECT_EQ(Post("/_sim/faults", R"({"path":"*","rate":0.5,"kind":"apple_error_200","errorNumber":9603})").status,
              200);
    std::string pattern;
    for (int i = 0; i < 40; ++i) pattern += ErrorNumber(Get("/mdm/v2/client/config")) == 9603 ? 'x' : '.';
    return pattern;
  };
  const std::string a = run(), b = run();
  EXPECT_EQ(a, b);
  EXPECT_NE(a.find('x'), std::string::npos);
  EXPECT_NE(a.find('.'), std::string::npos);
}

TEST_F(SimTest, BumpVersionFaultMovesVersionBetweenPages) {
  SimOptions opts;
  opts.assignments = 2000;
  Start(opts);
  ASSERT_EQ(Post("/_sim/faults", R"({"path":"/mdm/v2/assignments","onRequests":[2],"kind":"bump_version"})").status,
            200);
  const std::string v0(Obj(Get("/mdm/v2/assignments"))["versionId"].as_string());
  const std::string v1(Obj(Get("/mdm/v2/assignments?pageIndex=1"))["versionId"].as_string());
  EXPECT_NE(v0, v1);
  EXPECT_EQ(Walk("&sinceVersionId=" + v0).size(), 1u);
}

TEST_F(SimTest, RateLimitPerToken) {
  SimOptions opts;
  opts.rate_limit = true;
  opts.limits.max_request_per_second = 3;
  Start(opts);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Get("/mdm/v2/client/config").status, 200);
  auto r = Get("/mdm/v2/client/config");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(ErrorNumber(r), 9646);
  clock_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(Get("/mdm/v2/client/config").status, 200);
}

TEST_F(SimTest, ResetRestoresInitialState) {
  Start();
  const std::string before = Get("/mdm/v2/assignments").body;
  const std::string uid(Locations()[0].as_object().at("uId").as_string());
  ASSERT_EQ(Post("/_sim/locations/" + uid + "/bumpVersion", "").status, 200);
  EXPECT_NE(Get("/mdm/v2/assignments").body, before);
  ASSERT_EQ(Post("/_sim/reset", "").status, 200);
  EXPECT_EQ(Get("/mdm/v2/assignments").body, before);
}

TEST_F(SimTest, LookupServesMetadata) {
  Start();
  std::string app;
  for (auto& v : Arr(Get("/mdm/v2/assets?productType=App"), "assets")) app = v.as_object().at("adamId").as_string();
  auto o = Obj(Get("/lookup?version=2&id=" + app + ",999&p=mdm-lockup&caller=MDM"));
  auto& results = o["results"].as_object();
  ASSERT_TRUE(results.contains(app));
  EXPECT_FALSE(results.contains("999"));
  EXPECT_TRUE(results.at(app).as_object().contains("bundleId"));
  auto cfg = Obj(Get("/mdm/v2/service/config"));
  EXPECT_EQ(cfg["urls"].as_object().at("contentMetadataLookup").as_string(), "http://sim.test/lookup");
  EXPECT_EQ(cfg["limits"].as_object().at("maxAssets").as_int64(), 25);
}

// A book's lookup answer is an ebook's: no bundle id, its author and genres, its Apple Books page.
TEST_F(SimTest, LookupServesBookMetadata) {
  Start();
  std::string book;
  for (auto& v : Arr(Get("/mdm/v2/assets?productType=Book"), "assets")) book = v.as_object().at("adamId").as_string();
  ASSERT_FALSE(book.empty());
  auto o = Obj(Get("/lookup?version=2&id=" + book + "&p=mdm-lockup&caller=MDM"));
  const auto& r = o["results"].as_object().at(book).as_object();
  EXPECT_EQ(r.at("kind").as_string(), "ebook");
  EXPECT_FALSE(r.contains("bundleId"));
  EXPECT_EQ(r.at("artistName").as_string(), "Simulated Author");
  ASSERT_TRUE(r.at("genreNames").is_array());
  EXPECT_FALSE(r.at("genreNames").as_array().empty());
  EXPECT_EQ(r.at("url").as_string(), "https://books.apple.com/us/book/id" + book);
}

// Readers walk while writers associate, bump and purchase: every page must be
// internally consistent (size matches, versionId well-formed) and nothing may
// crash. Run under TSAN to check the locking.
TEST_F(SimTest, ConcurrentReadersAndWriters) {
  SimOptions opts;
  opts.assignments = 5000;
  opts.page_size = 250;
  opts.event_delay = std::chrono::milliseconds(0);
  Start(opts);
  const std::string uid(Locations()[0].as_object().at("uId").as_string());
  std::string app;
  for (auto& v : Arr(Get("/mdm/v2/assets?unlimited=true"), "unlimitedAssets"))
    if (v.as_object().at("deviceAssignable").as_bool()) app = v.as_object().at("adamId").as_string();
  ASSERT_FALSE(app.empty());
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 60; ++i) {
        auto r = Get("/mdm/v2/assignments?pageIndex=" + std::to_string((i + t) % 20));
        if (r.status != 200 && r.status != 400) ++bad;  // 400: the page vanished (9650).
        if (r.status != 200) continue;
        auto o = Obj(r);
        if (static_cast<std::int64_t>(o["assignments"].as_array().size()) != o["size"].as_int64()) ++bad;
        if (o["versionId"].as_string().size() != 36) ++bad;
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 40; ++i) {
      auto r = Post("/mdm/v2/assets/associate",
                    R"({"assets":[{"adamId":")" + app + R"("}],"serialNumbers":["T)" + std::to_string(i) + R"("]})");
      if (r.status != 200) ++bad;
      if (Post("/_sim/locations/" + uid + "/bumpVersion", "").status != 200) ++bad;
    }
  });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(Post("/_sim/events/resolve", "").status, 200);
  EXPECT_EQ(Walk("&adamId=" + app).size() >= 40u, true);
}

// ---------------------------------------------------------------- notifications

// Records every POST and answers from a script (then 200). Thread-safe.
class FakeSender final : public NotificationSender {
 public:
  struct Sent {
    std::string url, bearer;
    json::object body;
    std::chrono::steady_clock::time_point at;
  };
  struct Shared {
    std::mutex mu;
    std::vector<Sent> sent;
    std::deque<int> script;  // Statuses to answer, in order; 0: a transport error.
  };
  explicit FakeSender(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
  Result<int> Post(const std::string& url, const std::string& bearer, const std::string& body,
                   std::chrono::milliseconds) override {
    std::lock_guard lock(shared_->mu);
    shared_->sent.push_back({url, bearer, json::parse(body).as_object(), std::chrono::steady_clock::now()});
    if (shared_->script.empty()) return 200;
    const int status = shared_->script.front();
    shared_->script.pop_front();
    if (status == 0) return Fail(Error::Unavailable("connection refused"));
    return status;
  }

 private:
  std::shared_ptr<Shared> shared_;
};

class NotificationTest : public SimTest {
 protected:
  void SetUp() override {
    SimOptions opts;
    opts.event_delay = std::chrono::milliseconds(100);
    opts.notification_retry_scale = 0.001;  // Retries after 60 ms and 180 ms more.
    auto shared = shared_;
    opts.notification_sender = [shared] { return std::make_unique<FakeSender>(shared); };
    Start(opts);
    uid_ = std::string(Locations()[0].as_object().at("uId").as_string());
    for (auto& v : Arr(Get("/mdm/v2/assets?unlimited=false&deviceAssignable=true&maxAvailableCount=0"), "assets"))
      app_ = std::string(v.as_object().at("adamId").as_string());
    ASSERT_FALSE(app_.empty());
  }
  void Subscribe(
      const std::string& types = R"(["ASSET_MANAGEMENT","ASSET_COUNT","USER_MANAGEMENT","USER_ASSOCIATED"])") {
    auto r = Post("/mdm/v2/client/config",
                  R"({"notificationUrl":"http://127.0.0.1:9/hook","notificationAuthToken":"secret-1",)"
                  R"("notificationTypes":)" +
                      types + "}");
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_TRUE(WaitSent(1));  // The TEST_NOTIFICATION.
    ASSERT_EQ(WaitDeliveries(1).size(), 1u);
    http::Request clear;
    clear.method = "DELETE";
    clear.target = "/_sim/notifications";
    ASSERT_EQ(sim_->Handle(clear).status, 200);
    std::lock_guard lock(shared_->mu);
    shared_->sent.clear();
  }
  // Waits (real time, up to 5 s) until at least n POSTs were made.
  bool WaitSent(std::size_t n) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(shared_->mu);
        if (shared_->sent.size() >= n) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  std::vector<FakeSender::Sent> Sent() {
    std::lock_guard lock(shared_->mu);
    return shared_->sent;
  }
  json::array Deliveries() { return Obj(Get("/_sim/notifications"))["deliveries"].as_array(); }
  // Waits until the delivery log has n records.
  json::array WaitDeliveries(std::size_t n) {
    json::array d;
    for (int i = 0; i < 500 && (d = Deliveries()).size() < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return d;
  }
  void Buy(std::int64_t n) {
    ASSERT_EQ(Post("/_sim/locations/" + uid_ + "/purchase",
                   R"({"adamId":")" + app_ + R"(","count":)" + std::to_string(n) + "}")
                  .status,
              200);
  }
  std::string Serials(int from, int to) {
    std::string out = "[";
    for (int i = from; i < to; ++i) out += (i > from ? ",\"N" : "\"N") + std::to_string(i) + "\"";
    return out + "]";
  }

  std::shared_ptr<FakeSender::Shared> shared_ = std::make_shared<FakeSender::Shared>();
  std::string uid_, app_;
};

TEST_F(NotificationTest, HttpOnlyForLoopbackAndATestNotificationOnConfiguration) {
  for (const char* url : {"http://example.com/hook", "http://127.0.0.1.example.com/hook", "http://10.0.0.1/hook",
                          "http://user@127.0.0.1/hook", "http://127.0.0.1/", "ftp://127.0.0.1/hook"}) {
    auto r = Post("/mdm/v2/client/config",
                  std::string(R"({"notificationUrl":")") + url + R"(","notificationAuthToken":"t"})");
    EXPECT_EQ(ErrorNumber(r), 9712) << url;
  }
  for (const char* url :
       {"http://127.0.0.1:8080/hook", "http://localhost/a/b", "http://[::1]:9/x", "https://mdm.example.com/apple"}) {
    auto r = Post("/mdm/v2/client/config",
                  std::string(R"({"notificationUrl":")") + url + R"(","notificationAuthToken":"tok"})");
    EXPECT_EQ(r.status, 200) << url << r.body;
  }
  ASSERT_TRUE(WaitSent(4));
  auto sent = Sent();
  EXPECT_EQ(sent[0].url, "http://127.0.0.1:8080/hook");
  EXPECT_EQ(sent[0].bearer, "tok");
  EXPECT_EQ(sent[0].body["notificationType"].as_string(), "TEST_NOTIFICATION");
  EXPECT_EQ(sent[0].body["uId"].as_string(), uid_);
  EXPECT_TRUE(sent[0].body["notification"].as_object().empty());
  EXPECT_EQ(sent[0].body["notificationId"].as_string().size(), 36u);
  EXPECT_EQ(Post("/_sim/locations/" + uid_ + "/testNotification", "").status, 200);
  ASSERT_TRUE(WaitSent(5));
}

TEST_F(NotificationTest, AssetManagementSplitsAt100AndReportsFailures) {
  Subscribe(R"(["ASSET_MANAGEMENT"])");
  Buy(120);
  ASSERT_EQ(Post("/_sim/faults", R"({"path":"/mdm/v2/assets/associate","kind":"event_failure","errorNumber":9616,)"
                                 R"("serialNumbers":["N5"]})")
                .status,
            200);
  auto ev = Post("/mdm/v2/assets/associate",
                 R"({"assets":[{"adamId":")" + app_ + R"("}],"serialNumbers":)" + Serials(0, 150) + "}");
  ASSERT_EQ(ev.status, 200);
  const std::string id(Obj(ev)["eventId"].as_string());
  clock_.Advance(std::chrono::milliseconds(100));
  ASSERT_EQ(Obj(Get("/mdm/v2/status?eventId=" + id))["eventStatus"].as_string(), "FAILED");
  // 150 tried, 120 served: SUCCESS 100 + 20, FAILURE 9616 (N5), FAILURE 9709 (the last 29).
  ASSERT_TRUE(WaitSent(4));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto sent = Sent();
  ASSERT_EQ(sent.size(), 4u);
  std::vector<std::pair<std::string, std::size_t>> shape;
  std::set<std::string> ids;
  for (auto& s : sent) {
    EXPECT_EQ(s.body["notificationType"].as_string(), "ASSET_MANAGEMENT");
    EXPECT_EQ(s.bearer, "secret-1");
    ids.insert(std::string(s.body["notificationId"].as_string()));
    auto& n = s.body["notification"].as_object();
    EXPECT_EQ(n.at("eventId").as_string(), id);
    EXPECT_EQ(n.at("type").as_string(), "ASSOCIATE");
    const auto& a = n.at("assignments").as_array();
    EXPECT_LE(a.size(), 100u);
    EXPECT_EQ(a[0].as_object().at("adamId").as_string(), app_);
    std::string tag(n.at("result").as_string());
    if (n.contains("error")) tag += std::to_string(n.at("error").as_object().at("errorNumber").as_int64());
    shape.emplace_back(tag, a.size());
  }
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_EQ(shape, (std::vector<std::pair<std::string, std::size_t>>{
                       {"SUCCESS", 100}, {"SUCCESS", 20}, {"FAILURE9616", 1}, {"FAILURE9709", 29}}));
  auto failure = sent[2].body["notification"].as_object();
  EXPECT_EQ(failure["assignments"].as_array()[0].as_object().at("serialNumber").as_string(), "N5");
  EXPECT_EQ(failure["error"].as_object().at("errorInfo").as_object().at("serialNumbers").as_array()[0].as_string(),
            "N5");
}

TEST_F(NotificationTest, AssetCountUsersAndSubscriptionFilter) {
  Subscribe(R"(["ASSET_COUNT","USER_ASSOCIATED","USER_MANAGEMENT"])");
  Buy(7);
  ASSERT_EQ(Post("/_sim/locations/" + uid_ + "/refund", R"({"adamId":")" + app_ + R"(","count":2})").status, 200);
  ASSERT_TRUE(WaitSent(2));
  auto sent = Sent();
  EXPECT_EQ(sent[0].body["notificationType"].as_string(), "ASSET_COUNT");
  EXPECT_EQ(sent[0].body["notification"].as_object().at("countDelta").as_int64(), 7);
  EXPECT_EQ(sent[0].body["notification"].as_object().at("adamId").as_string(), app_);
  EXPECT_TRUE(sent[0].body["notification"].as_object().contains("pricingParam"));
  EXPECT_EQ(sent[1].body["notification"].as_object().at("countDelta").as_int64(), -2);
  // Not subscribed to ASSET_MANAGEMENT: an associate sends nothing.
  Post("/mdm/v2/assets/associate", R"({"assets":[{"adamId":")" + app_ + R"("}],"serialNumbers":["Q1"]})");
  clock_.Advance(std::chrono::milliseconds(100));
  Get("/mdm/v2/assets");
  // A new user, then the person accepts the invitation.
  Post("/mdm/v2/users/create", R"({"users":[{"clientUserId":"inv-1","email":"i@x.org"}]})");
  clock_.Advance(std::chrono::milliseconds(100));
  Get("/mdm/v2/users");
  ASSERT_TRUE(WaitSent(3));
  sent = Sent();
  EXPECT_EQ(sent[2].body["notificationType"].as_string(), "USER_MANAGEMENT");
  auto um = sent[2].body["notification"].as_object();
  EXPECT_EQ(um["type"].as_string(), "CREATE");
  EXPECT_EQ(um["result"].as_string(), "SUCCESS");
  EXPECT_EQ(um["users"].as_array()[0].as_object().at("status").as_string(), "Registered");
  EXPECT_EQ(Post("/_sim/locations/" + uid_ + "/acceptInvitation", R"({"clientUserIds":["nobody"]})").status, 404);
  auto r = Post("/_sim/locations/" + uid_ + "/acceptInvitation", R"({"clientUserIds":["inv-1"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Post("/_sim/locations/" + uid_ + "/acceptInvitation", R"({"clientUserIds":["inv-1"]})").status, 409);
  ASSERT_TRUE(WaitSent(4));
  sent = Sent();
  ASSERT_EQ(sent.size(), 4u);
  EXPECT_EQ(sent[3].body["notificationType"].as_string(), "USER_ASSOCIATED");
  auto au = sent[3].body["notification"].as_object()["associatedUsers"].as_array()[0].as_object();
  EXPECT_EQ(au["clientUserId"].as_string(), "inv-1");
  EXPECT_EQ(au["status"].as_string(), "Associated");
  EXPECT_EQ(au["idHash"].as_string().size(), 32u);
  EXPECT_EQ(au["inviteCode"].as_string().size(), 32u);
  auto user = Arr(Get("/mdm/v2/users?clientUserId=inv-1"), "users")[0].as_object();
  EXPECT_EQ(user["status"].as_string(), "Associated");
}

// USER_MANAGEMENT as Apple shapes it: {eventId, result, type, users[...]} and,
// for a FAILURE, the error with the users it names; a RETIRE says Retired.
TEST_F(NotificationTest, UserManagementReportsCreateFailuresAndRetire) {
  Subscribe(R"(["USER_MANAGEMENT","USER_ASSOCIATED"])");
  Post("/mdm/v2/users/create", R"({"users":[{"clientUserId":"m-1","email":"m@x.org"}]})");
  clock_.Advance(std::chrono::milliseconds(100));
  Get("/mdm/v2/users");
  ASSERT_TRUE(WaitSent(1));
  // Created again (9716) together with a new one: a SUCCESS for the new user and a FAILURE for m-1.
  Post("/mdm/v2/users/create", R"({"users":[{"clientUserId":"m-1"},{"clientUserId":"m-2"}]})");
  clock_.Advance(std::chrono::milliseconds(100));
  Get("/mdm/v2/users");
  ASSERT_TRUE(WaitSent(3));
  auto sent = Sent();
  json::object success, failure;
  for (std::size_t i = 1; i < 3; ++i) {
    auto n = sent[i].body["notification"].as_object();
    EXPECT_EQ(sent[i].body["notificationType"].as_string(), "USER_MANAGEMENT");
    EXPECT_EQ(n["type"].as_string(), "CREATE");
    (n["result"].as_string() == "SUCCESS" ? success : failure) = n;
  }
  ASSERT_FALSE(success.empty());
  ASSERT_FALSE(failure.empty());
  EXPECT_EQ(success["eventId"], failure["eventId"]);
  EXPECT_EQ(success["users"].as_array()[0].as_object().at("clientUserId").as_string(), "m-2");
  EXPECT_EQ(success["users"].as_array()[0].as_object().at("status").as_string(), "Registered");
  EXPECT_EQ(success["users"].as_array()[0].as_object().at("inviteCode").as_string().size(), 32u);
  EXPECT_EQ(failure["error"].as_object().at("errorNumber").as_int64(), 9716);
  EXPECT_EQ(failure["users"].as_array()[0].as_object().at("clientUserId").as_string(), "m-1");

  Post("/mdm/v2/users/retire", R"({"users":[{"clientUserId":"m-2"}]})");
  clock_.Advance(std::chrono::milliseconds(100));
  Get("/mdm/v2/users");
  ASSERT_TRUE(WaitSent(4));
  auto retire = Sent()[3].body["notification"].as_object();
  EXPECT_EQ(retire["type"].as_string(), "RETIRE");
  EXPECT_EQ(retire["result"].as_string(), "SUCCESS");
  EXPECT_EQ(retire["users"].as_array()[0].as_object().at("status").as_string(), "Retired");
}

TEST_F(NotificationTest, RetriesUpToThreeAttemptsAndStopsOn2xx) {
  Subscribe(R"(["ASSET_COUNT"])");
  {
    std::lock_guard lock(shared_->mu);
    shared_->script = {500, 0, 204, 503, 503, 503};
  }
  Buy(1);  // 500, refused, 204: delivered on the third attempt.
  auto d = WaitDeliveries(3);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].as_object().at("outcome").as_string(), "failed");
  EXPECT_EQ(d[0].as_object().at("status").as_int64(), 500);
  EXPECT_EQ(d[1].as_object().at("outcome").as_string(), "failed");
  EXPECT_TRUE(d[1].as_object().contains("error"));
  EXPECT_EQ(d[2].as_object().at("outcome").as_string(), "delivered");
  EXPECT_EQ(d[2].as_object().at("attempt").as_int64(), 3);
  auto sent = Sent();
  ASSERT_EQ(sent.size(), 3u);
  // Apple's gaps (60 s, then 180 s) scaled by 0.001.
  EXPECT_GE(sent[1].at - sent[0].at, std::chrono::milliseconds(55));
  EXPECT_GE(sent[2].at - sent[1].at, std::chrono::milliseconds(170));
  EXPECT_EQ(sent[0].body["notificationId"], sent[2].body["notificationId"]);
  Buy(1);  // 503 three times: given up after the third attempt.
  d = WaitDeliveries(6);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  d = Deliveries();
  ASSERT_EQ(d.size(), 6u);
  EXPECT_EQ(d[5].as_object().at("attempt").as_int64(), 3);
  EXPECT_EQ(d[5].as_object().at("outcome").as_string(), "failed");
  EXPECT_EQ(Sent().size(), 6u);
}

TEST_F(NotificationTest, DeliveryFaults) {
  Subscribe(R"(["ASSET_COUNT"])");
  auto rule = [&](const std::string& body) {
    auto r = Post("/_sim/notificationFaults", body);
    EXPECT_EQ(r.status, 200) << r.body;
  };
  rule(R"({"kind":"drop","onNotifications":[1]})");
  rule(R"({"kind":"duplicate","onNotifications":[2]})");
  rule(R"({"kind":"wrong_bearer","onNotifications":[3]})");
  rule(R"({"kind":"delay","delayMs":300,"onNotifications":[4]})");
  rule(R"({"kind":"reorder","onNotifications":[5]})");
  EXPECT_EQ(Post("/_sim/notificationFaults", R"({"kind":"explode"})").status, 400);
  EXPECT_EQ(Post("/_sim/notificationFaults", R"({"kind":"drop","bogus":1})").status, 400);
  for (int i = 1; i <= 6; ++i) Buy(i);  // countDelta tells the notifications apart.
  ASSERT_TRUE(WaitSent(6));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto sent = Sent();
  std::vector<std::int64_t> deltas;
  for (auto& s : sent) deltas.push_back(s.body["notification"].as_object().at("countDelta").as_int64());
  // 1 dropped; 2 twice; 3 with a wrong bearer; 5 held until 6 went; 4 delayed past them all.
  EXPECT_EQ(deltas, (std::vector<std::int64_t>{2, 2, 3, 6, 5, 4}));
  EXPECT_EQ(sent[0].body["notificationId"], sent[1].body["notificationId"]);
  EXPECT_EQ(sent[2].bearer, "not-secret-1");
  EXPECT_EQ(sent[3].bearer, "secret-1");
  auto d = Deliveries();
  EXPECT_EQ(d[0].as_object().at("outcome").as_string(), "dropped");
  EXPECT_TRUE(d[2].as_object().at("duplicate").as_bool());
  EXPECT_TRUE(d[3].as_object().at("wrongBearer").as_bool());
  auto faults = Obj(Get("/_sim/notificationFaults"))["faults"].as_array();
  ASSERT_EQ(faults.size(), 5u);
  EXPECT_EQ(faults[0].as_object().at("hits").as_int64(), 1);
  EXPECT_EQ(faults[0].as_object().at("matched").as_int64(), 6);
}

TEST_F(NotificationTest, ReorderedNotificationWithoutSuccessorGoesAfterTwoSeconds) {
  Subscribe(R"(["ASSET_COUNT"])");
  ASSERT_EQ(Post("/_sim/notificationFaults", R"({"kind":"reorder"})").status, 200);
  const auto start = std::chrono::steady_clock::now();
  Buy(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(Sent().empty());
  EXPECT_EQ(Obj(Get("/_sim/notifications"))["queued"].as_int64(), 1);
  ASSERT_TRUE(WaitSent(1));
  EXPECT_GE(Sent()[0].at - start, std::chrono::milliseconds(1900));
  auto d = WaitDeliveries(1);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].as_object().at("outcome").as_string(), "delivered");
  EXPECT_EQ(d[0].as_object().at("faults").as_array()[0].as_string(), "reorder");
}

TEST_F(NotificationTest, RateFaultsAndIdsAreDeterministic) {
  auto run = [this] {
    EXPECT_EQ(Post("/_sim/reset", "").status, 200);
    {
      std::lock_guard lock(shared_->mu);
      shared_->sent.clear();
    }
    Subscribe(R"(["ASSET_COUNT"])");
    EXPECT_EQ(Post("/_sim/notificationFaults", R"({"kind":"drop","rate":0.5})").status, 200);
    for (int i = 1; i <= 12; ++i) Buy(i);
    WaitDeliveries(12);
    std::vector<std::string> out;
    for (auto& d : Deliveries()) {
      auto o = d.as_object();
      out.push_back(std::string(o.at("notificationId").as_string()) + " " + std::string(o.at("outcome").as_string()));
    }
    std::sort(out.begin(), out.end());  // Drops are logged at once, deliveries when made.
    return out;
  };
  auto first = run();
  auto second = run();
  EXPECT_EQ(first.size(), 12u);
  EXPECT_EQ(first, second);
  EXPECT_NE(std::count_if(first.begin(), first.end(), [](auto& s) { return s.ends_with("dropped"); }), 0);
  EXPECT_NE(std::count_if(first.begin(), first.end(), [](auto& s) { return s.ends_with("delivered"); }), 0);
}

}  // namespace
}  // namespace vppd::sim
