// The /assignments page parser (parse_assignments.cc) on its own: what it
// reads, that it refuses every malformed page the parsers before it refused
// (parse.h), and that its verdict on JSON agrees with Boost.JSON's on pages
// mutated at random.
#include "apple/parse.h"

#include <algorithm>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace vppd::apple::internal {
namespace {

constexpr const char* kTail = R"("currentPageIndex":0,"totalPages":1,"versionId":"v1")";

std::string PageOf(const std::string& assignments) { return R"({"assignments":)" + assignments + "," + kTail + "}"; }

struct Parsed {
  AppleStatus status;
  PageMeta meta;
  std::vector<Assignment> items;  // Own() of what the reader delivered.
};

// Parses `body` with a fresh parser. The views the reader delivers are checked
// to point into `body` or into its decoded strings, then copied.
Parsed Parse(const std::string& body) {
  Parsed p;
  PageParser parser;
  std::vector<AssignmentRef> refs;
  std::deque<std::string> decoded;
  p.status = parser.Assignments(body, &p.meta, &refs, &decoded);
  auto kept = [&](std::string_view v) {
    if (v.empty()) return true;
    if (v.data() >= body.data() && v.data() + v.size() <= body.data() + body.size()) return true;
    return std::any_of(decoded.begin(), decoded.end(), [&](const std::string& d) { return v.data() == d.data(); });
  };
  for (const AssignmentRef& a : refs) {
    EXPECT_TRUE(kept(a.adam_id) && kept(a.pricing_param) && kept(a.client_user_id) && kept(a.serial_number))
        << "a view outside the body and the decoded strings";
    p.items.push_back(a.Own());
  }
  return p;
}

// The error message, or "" when the page was accepted.
std::string ErrorOf(const std::string& body) {
  Parsed p = Parse(body);
  if (p.status) return "";
  EXPECT_EQ(p.status.error().kind, AppleErrorKind::kMalformedResponse);
  return p.status.error().error_message;
}

TEST(AssignmentsPage, ReadsEveryMemberItUses) {
  const std::string body = R"({"assignments":[
      {"adamId":"408709785","pricingParam":"STDQ","clientUserId":"u-1","extra":{"x":[1,2.5,true,null]}},
      {"adamId":408709786,"pricingParam":"PLUS","serialNumber":"C02X"}],
    "currentPageIndex":3,"nextPageIndex":4,"size":2,"totalPages":9,"versionId":"ver-7",
    "uId":"2049022643841071","tokenExpirationDate":"2030-11-08T22:33:22+0000",
    "mdmInfo":{"id":"m1","name":"vppd","metadata":"meta"},"somethingNew":[{}]})";
  Parsed p = Parse(body);
  ASSERT_TRUE(p.status) << p.status.error().Describe();
  ASSERT_EQ(p.items.size(), 2u);
  EXPECT_EQ(p.items[0].adam_id, "408709785");
  EXPECT_EQ(p.items[0].pricing_param, "STDQ");
  EXPECT_EQ(p.items[0].client_user_id, "u-1");
  EXPECT_EQ(p.items[0].serial_number, "");
  EXPECT_EQ(p.items[1].adam_id, "408709786");  // An id sent as a number: its decimal text.
  EXPECT_EQ(p.items[1].serial_number, "C02X");
  EXPECT_EQ(p.meta.current, 3);
  EXPECT_EQ(p.meta.next, 4);
  EXPECT_EQ(p.meta.size, 2);
  EXPECT_EQ(p.meta.total, 9);
  EXPECT_EQ(p.meta.version_id, "ver-7");
  EXPECT_EQ(p.meta.envelope.uid, "2049022643841071");
  EXPECT_EQ(p.meta.envelope.token_expiration, *ParseIso8601("2030-11-08T22:33:22Z"));
  ASSERT_TRUE(p.meta.envelope.mdm_info);
  EXPECT_EQ(p.meta.envelope.mdm_info->name, "vppd");
}

TEST(AssignmentsPage, EscapesAreDecodedInNamesAndValues) {
  Parsed p = Parse(PageOf(R"([{"adam\u0049d":"1\u00e9","clientUserId":"a\"b\\c"}])"));
  ASSERT_TRUE(p.status) << p.status.error().Describe();
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.items[0].adam_id, "1\xc3\xa9");
  EXPECT_EQ(p.items[0].client_user_id, "a\"b\\c");
  // Escaped page members with escaped values: each name is read before its value replaces it.
  Parsed q = Parse(R"({"assignments":[],"currentPageInde\u0078":0,"totalPage\u0073":1,"versio\u006eId":"v\u0031",)"
                   R"("mdm\u0049nfo":{"n\u0061me":"\u0076ppd"},"u\u0049d":"\u0032"})");
  ASSERT_TRUE(q.status) << q.status.error().Describe();
  EXPECT_EQ(q.meta.version_id, "v1");
  EXPECT_EQ(q.meta.total, 1);
  EXPECT_EQ(q.meta.envelope.uid, "2");
  ASSERT_TRUE(q.meta.envelope.mdm_info);
  EXPECT_EQ(q.meta.envelope.mdm_info->name, "vppd");
  EXPECT_EQ(ErrorOf(R"({"siz\u0065":"\u0031",)" + std::string(kTail) + "}"), "'size' is not an integer");
}

TEST(AssignmentsPage, NullMeansAbsent) {
  Parsed p = Parse(R"({"assignments":null,"nextPageIndex":null,"mdmInfo":null,"uId":null,)"
                   R"("tokenExpirationDate":null,)" +
                   std::string(kTail) + "}");
  ASSERT_TRUE(p.status) << p.status.error().Describe();
  EXPECT_TRUE(p.items.empty());
  EXPECT_FALSE(p.meta.next);
  EXPECT_FALSE(p.meta.envelope.mdm_info);
  EXPECT_EQ(ErrorOf(R"({"assignments":[],"currentPageIndex":null,"totalPages":1,"versionId":"v"})"),
            "the page has no currentPageIndex");
}

TEST(AssignmentsPage, ReusedVectorsAreRefilled) {
  PageParser parser;
  PageMeta meta;
  std::vector<AssignmentRef> items;
  std::deque<std::string> decoded;
  const std::string first = PageOf(R"([{"adamId":"1","serialNumber":"S1"},{"adamId":2,"clientUserId":"U"}])");
  ASSERT_TRUE(parser.Assignments(first, &meta, &items, &decoded));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[1].adam_id, "2");  // A number: its text, decoded.
  EXPECT_EQ(decoded.size(), 1u);
  const std::string second = PageOf(R"([{"adamId":"3","clientUserId":"V"}])");
  ASSERT_TRUE(parser.Assignments(second, &meta, &items, &decoded));
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].adam_id, "3");
  EXPECT_EQ(items[0].client_user_id, "V");
  EXPECT_EQ(items[0].serial_number, "");  // Not left over from the previous page.
  EXPECT_FALSE(parser.Assignments("{", &meta, &items, &decoded));
  EXPECT_TRUE(items.empty());
}

// A member named twice: the last value wins, and null keeps the earlier one
// (null means absent), for owned members and views alike.
TEST(AssignmentsPage, AMemberNamedTwiceKeepsTheLastValue) {
  Parsed p = Parse(PageOf(R"([{"adamId":"1","adamId":"2","serialNumber":"S","serialNumber":null}])"));
  ASSERT_TRUE(p.status) << p.status.error().Describe();
  EXPECT_EQ(p.items.at(0).adam_id, "2");
  EXPECT_EQ(p.items.at(0).serial_number, "S");
}

TEST(AssignmentsPage, MalformedJsonAnywhereIsRefused) {
  const std::string ok_item = R"({"adamId":"1","serialNumber":"S"})";
  const std::string deep32 = std::string(31, '[') + std::string(31, ']');  // With the page's object: 32 levels.
  const std::string deep33 = std::string(32, '[') + std::string(32, ']');
  EXPECT_EQ(ErrorOf(PageOf("[" + ok_item + "]")), "");
  EXPECT_EQ(ErrorOf(R"({"x":)" + deep32 + "," + kTail + "}"), "");
  for (const std::string& body : {
           std::string(""),
           std::string("   "),
           PageOf("[" + ok_item + "]") + " x",  // Something after the document.
           PageOf("[" + ok_item + "]") + "}",
           PageOf("[" + ok_item + "]").substr(0, 40),                // Truncated.
           PageOf("[" + ok_item + "]").substr(0, 20),                // Truncated in a string.
           R"({"unread":{"deep":tru},)" + std::string(kTail) + "}",  // Members not read are checked too.
           R"({"unread":[1,2,],)" + std::string(kTail) + "}",
           R"({"unread":"\q",)" + std::string(kTail) + "}",
           R"({"unread":01,)" + std::string(kTail) + "}",
           R"({"unread":"a)"
           "\x01"
           R"(b",)" +
               std::string(kTail) + "}",                       // Raw control character.
           R"({"unread":"\xff",)" + std::string(kTail) + "}",  // Not UTF-8.
           R"({"x":)" + deep33 + "," + kTail + "}",            // Deeper than Boost.JSON's 32.
           PageOf(R"([{"adamId":"1","serialNumber":"S",}])"),
       }) {
    const std::string error = ErrorOf(body);
    EXPECT_NE(error.find("not JSON"), std::string::npos) << body << " → " << error;
  }
}

TEST(AssignmentsPage, WrongShapesSayWhatIsWrong) {
  struct Case {
    std::string body;
    const char* says;
  } cases[] = {
      {"[1]", "not a JSON object"},
      {"true", "not a JSON object"},
      {"1e309", "not JSON"},  // A double cannot hold it: refused before its shape is looked at.
      {"1.5", "not a JSON object"},
      {R"("text")", "not a JSON object"},
      {PageOf("{}"), "'assignments' is not an array"},
      {PageOf("[1]"), "an assignment is not an object"},
      {PageOf("[null]"), "an assignment is not an object"},
      {PageOf("[[]]"), "an assignment is not an object"},
      {PageOf(R"([{"adamId":"1"}])"), "needs exactly one of clientUserId, serialNumber"},
      {PageOf(R"([{"adamId":"1","clientUserId":"u","serialNumber":"s"}])"), "needs exactly one"},
      {PageOf(R"([{"serialNumber":"s"}])"), "an assignment has no adamId"},
      {PageOf(R"([{"adamId":1.5,"serialNumber":"s"}])"), "'adamId' is not a string"},
      {PageOf(R"([{"adamId":true,"serialNumber":"s"}])"), "'adamId' is not a string"},
      {PageOf(R"([{"adamId":{},"serialNumber":"s"}])"), "'adamId' is not a string"},
      {PageOf(R"([{"adamId":"1","serialNumber":["s"]}])"), "'serialNumber' is not a string"},
      {PageOf(R"([{"adamId":9223372036854775808,"serialNumber":"s"}])"), "'adamId' is out of range"},
      {R"({"currentPageIndex":"0","totalPages":1,"versionId":"v"})", "'currentPageIndex' is not an integer"},
      {R"({"currentPageIndex":0.5,"totalPages":1,"versionId":"v"})", "'currentPageIndex' is not an integer"},
      {R"({"currentPageIndex":0,"totalPages":{},"versionId":"v"})", "'totalPages' is not an integer"},
      {R"({"currentPageIndex":0,"totalPages":18446744073709551615,"versionId":"v"})", "'totalPages' is out of range"},
      {R"({"currentPageIndex":0,"totalPages":1,"versionId":"v","nextPageIndex":[]})", "'nextPageIndex' is not"},
      {R"({"currentPageIndex":0,"totalPages":1,"versionId":"v","size":true})", "'size' is not an integer"},
      {R"({"currentPageIndex":0,"totalPages":1,"versionId":{}})", "'versionId' is not a string"},
      {R"({"currentPageIndex":0,"totalPages":1,"versionId":""})", "no versionId"},
      {R"({"currentPageIndex":0,"totalPages":1})", "no versionId"},
      {R"({"totalPages":1,"versionId":"v"})", "no currentPageIndex"},
      {R"({"currentPageIndex":0,"versionId":"v"})", "no totalPages"},
      {R"({"uId":[],)" + std::string(kTail) + "}", "'uId' is not a string"},
      {R"({"mdmInfo":"x",)" + std::string(kTail) + "}", "'mdmInfo' is not an object"},
      {R"({"mdmInfo":{"name":false},)" + std::string(kTail) + "}", "'mdmInfo.name' is not a string"},
      {R"({"tokenExpirationDate":5,)" + std::string(kTail) + "}", "'tokenExpirationDate' is not a string"},
      {R"({"tokenExpirationDate":"soon",)" + std::string(kTail) + "}", "'tokenExpirationDate' is not a date"},
  };
  for (const Case& c : cases) {
    const std::string error = ErrorOf(c.body);
    EXPECT_NE(error.find(c.says), std::string::npos) << c.body << " → '" << error << "', expected '" << c.says << "'";
  }
}

TEST(AssignmentsPage, StringsAreCheckedAndDecodedAsRfc8259Says) {
  auto user_of = [](const std::string& quoted) {
    Parsed p = Parse(PageOf(R"([{"adamId":"1","clientUserId":)" + quoted + "}]"));
    return p.status ? p.items.at(0).client_user_id : "error: " + p.status.error().error_message;
  };
  EXPECT_EQ(user_of(R"("\ud83d\ude00")"), "\xf0\x9f\x98\x80");  // A surrogate pair: one 4-byte character.
  EXPECT_EQ(user_of("\"\xf0\x9f\x98\x80\""), "\xf0\x9f\x98\x80");
  EXPECT_EQ(user_of(R"("\u00e9\u20ac\/\b\f\n\r\t")"), "\xc3\xa9\xe2\x82\xac/\b\f\n\r\t");
  EXPECT_EQ(user_of(R"("x\u0000y")"), std::string("x\0y", 3));
  // Long enough for the 16-byte scan to find the escape and the non-ASCII byte past its first step.
  EXPECT_EQ(user_of("\"0123456789abcdef0123\\\"\xc3\xa9\""), "0123456789abcdef0123\"\xc3\xa9");
  for (const char* bad : {
           R"("\ud83d")",        // A high surrogate alone.
           R"("\ude00x")",       // A low surrogate alone.
           R"("\ud83d\u0041")",  // A high surrogate and no low one.
           R"("\u12")",          // Truncated escape.
           R"("\u12g4")",
           "\"\xc0\xaf\"",          // Overlong '/'.
           "\"\xe0\x80\xaf\"",      // Overlong, 3 bytes.
           "\"\xed\xa0\x80\"",      // An encoded surrogate.
           "\"\xf4\x90\x80\x80\"",  // Above U+10FFFF.
           "\"\xe2\x82\"",          // Truncated sequence.
           "\"\x80\"",              // A continuation byte alone.
       }) {
    EXPECT_NE(user_of(bad).find("not JSON"), std::string::npos) << bad << " → " << user_of(bad);
  }
}

TEST(AssignmentsPage, NumbersAreReadAsJsonSaysAndIdsKeepTheirDigits) {
  auto adam_of = [](const std::string& number) {
    Parsed p = Parse(PageOf(R"([{"adamId":)" + number + R"(,"serialNumber":"S"}])"));
    return p.status ? p.items.at(0).adam_id : "error: " + p.status.error().error_message;
  };
  EXPECT_EQ(adam_of("408709785"), "408709785");
  EXPECT_EQ(adam_of("-9223372036854775808"), "-9223372036854775808");
  EXPECT_EQ(adam_of("-0"), "0");
  EXPECT_EQ(adam_of("9223372036854775807"), "9223372036854775807");
  EXPECT_NE(adam_of("18446744073709551615").find("out of range"), std::string::npos);
  EXPECT_NE(adam_of("18446744073709551616").find("not JSON"), std::string::npos);  // Beyond 64 bits.
  EXPECT_NE(adam_of("-9223372036854775809").find("not JSON"), std::string::npos);
  EXPECT_NE(adam_of("1e2").find("not a string"), std::string::npos);
  for (const char* bad : {"01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "1.5e999", "Infinity", "NaN"})
    EXPECT_NE(adam_of(bad).find("not JSON"), std::string::npos) << bad << " → " << adam_of(bad);
  // Members not read: any valid number is fine, an underflow too (it is a zero).
  EXPECT_EQ(ErrorOf(R"({"x":[0,-0.0,1.5E-3,2e+10,1e-400,0.000e999,123456789.25],)" + std::string(kTail) + "}"), "");
}

TEST(AssignmentsPage, WhitespaceAndMemberOrderAreFree) {
  Parsed p = Parse(
      " \n{ \"versionId\" : \"v\" ,\t\"assignments\"\r: [ { \"serialNumber\" :\"S\" , \"adamId\": \"7\" } ] ,"
      " \"totalPages\":1, \"currentPageIndex\" :0 }\n ");
  ASSERT_TRUE(p.status) << p.status.error().Describe();
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.items[0].adam_id, "7");
  EXPECT_EQ(p.items[0].serial_number, "S");
}

// What an accepted page says, read again from Boost.JSON's document (pages
// without duplicated member names, where "the last one wins" is the same
// for both): the same items and paging members.
void ExpectReadAsBoostJsonReadsIt(const std::string& body, const Parsed& p) {
  const boost::json::value doc = boost::json::parse(body);
  const boost::json::object& page = doc.as_object();
  auto id = [](const boost::json::object& o, const char* key) -> std::string {
    const boost::json::value* v = o.if_contains(key);
    if (!v || v->is_null()) return "";
    return v->is_string() ? std::string(v->get_string()) : std::to_string(v->as_int64());
  };
  std::vector<Assignment> expected;
  if (const boost::json::value* a = page.if_contains("assignments"); a && a->is_array()) {
    for (const boost::json::value& item : a->get_array()) {
      const boost::json::object& o = item.as_object();
      expected.push_back({id(o, "adamId"), id(o, "pricingParam"), id(o, "clientUserId"), id(o, "serialNumber")});
    }
  }
  ASSERT_EQ(p.items.size(), expected.size()) << body;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(p.items[i].adam_id, expected[i].adam_id) << body;
    EXPECT_EQ(p.items[i].pricing_param, expected[i].pricing_param) << body;
    EXPECT_EQ(p.items[i].client_user_id, expected[i].client_user_id) << body;
    EXPECT_EQ(p.items[i].serial_number, expected[i].serial_number) << body;
  }
  EXPECT_EQ(p.meta.version_id, id(page, "versionId")) << body;
  EXPECT_EQ(p.meta.envelope.uid, id(page, "uId")) << body;
  EXPECT_EQ(p.meta.current, page.at("currentPageIndex").as_int64()) << body;
  EXPECT_EQ(p.meta.total, page.at("totalPages").as_int64()) << body;
}

// Random damage to a real page// Random damage to a real page (bytes changed, dropped, doubled; cuts): the
// reader's verdict on "is this JSON" must be Boost.JSON's (depth 32) every time.
TEST(AssignmentsPage, AgreesWithBoostJsonOnDamagedPages) {
  std::string items = "[";
  for (int i = 0; i < 20; ++i) {
    items +=
        std::string(i ? "," : "") + R"({"adamId":")" + std::to_string(400000000 + i) + R"(","pricingParam":"STDQ",)";
    items += i % 3 ? R"("clientUserId":"4d07591c-81e0-726c-fcd0-9142112c70b)" + std::to_string(i % 10) + "\"}"
                   : R"("serialNumber":"C39Y7E9G76E)" + std::to_string(i % 10) + "\"}";
  }
  items += "]";
  const std::string page = R"({"assignments":)" + items +
                           R"(,"currentPageIndex":0,"size":20,"totalPages":1,"versionId":"v","uId":"1",)"
                           R"("tokenExpirationDate":"2030-11-08T22:33:22+0000","x":[1.5,true,null,{"a":"\u00e9"}]})";
  const std::string alphabet = "{}[]\",:\\u0123456789abcdefnrtlse.-+ \x80\xc3\xa9\xed\xf0";
  std::mt19937 rng(20261128);
  int accepted = 0, refused = 0;
  for (int n = 0; n < 20000; ++n) {
    std::string body = page;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const std::size_t at = rng() % body.size();
      switch (rng() % 4) {
        case 0:
          body[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          body.erase(at, 1);
          break;
        case 2:
          body.insert(at, 1, body[at]);
          break;
        case 3:
          body.resize(at);
          break;
      }
    }
    boost::system::error_code ec;
    (void)boost::json::parse(body, ec);
    const bool json = !ec;  // A document that is JSON but no object: "not a JSON object".
    Parsed p = Parse(body);
    const bool said_not_json = !p.status && p.status.error().error_message.rfind("the response is not JSON: ", 0) == 0;
    ASSERT_EQ(json, !said_not_json) << body << "\n→ " << (p.status ? "accepted" : p.status.error().error_message)
                                    << "; Boost.JSON: " << (ec ? ec.message() : "JSON");
    (p.status ? accepted : refused)++;
    if (p.status) ExpectReadAsBoostJsonReadsIt(body, p);
  }
  EXPECT_GT(accepted, 100);  // The damage leaves some pages whole, and spoils most.
  EXPECT_GT(refused, 10000);
}

TEST(AssignmentsPage, LargePagesGrowTheParser) {
  // Larger than the parser's first allocation (128 KiB), after a small page.
  std::string items = "[";
  for (int i = 0; i < 3000; ++i)
    items += std::string(i ? "," : "") + R"({"adamId":")" + std::to_string(i) +
             R"(","pricingParam":"STDQ","clientUserId":"00000000-0000-0000-0000-)" + std::to_string(100000000000 + i) +
             R"("})";
  items += "]";
  PageParser parser;
  PageMeta meta;
  std::vector<AssignmentRef> out;
  std::deque<std::string> decoded;
  ASSERT_TRUE(parser.Assignments(PageOf("[]"), &meta, &out, &decoded));
  const std::string body = PageOf(items);
  ASSERT_GT(body.size(), 1u << 17);
  auto s = parser.Assignments(body, &meta, &out, &decoded);
  ASSERT_TRUE(s) << s.error().Describe();
  ASSERT_EQ(out.size(), 3000u);
  EXPECT_EQ(out[2999].adam_id, "2999");
}

}  // namespace
}  // namespace vppd::apple::internal

namespace vppd::apple {
namespace {

// A book's lookup answer (kind ebook): no bundle id; its author, seller and genres kept.
TEST(Lookup, ReadsWhatABookHas) {
  std::vector<AppMetadata> out;
  ASSERT_TRUE(internal::ParseLookup(R"({"results":{"900":{"id":"900","kind":"ebook","name":"A Book",
      "artistName":"An Author","sellerName":"A Publisher","genreNames":["Books","Poetry"],
      "url":"https://books.apple.com/us/book/id900","offers":[{"version":{"display":"1.2"}}]},
      "901":{"id":"901","kind":"iosSoftware","name":"An App","bundleId":"com.example.a"}}})",
                                    &out));
  ASSERT_EQ(out.size(), 2u);
  const AppMetadata& book = out[0].adam_id == "900" ? out[0] : out[1];
  EXPECT_EQ(book.kind, "ebook");
  EXPECT_EQ(book.name, "A Book");
  EXPECT_EQ(book.bundle_id, "");
  EXPECT_EQ(book.artist_name, "An Author");
  EXPECT_EQ(book.seller_name, "A Publisher");
  EXPECT_EQ(book.genres, (std::vector<std::string>{"Books", "Poetry"}));
  const AppMetadata& app = out[0].adam_id == "901" ? out[0] : out[1];
  EXPECT_TRUE(app.genres.empty());
  EXPECT_EQ(app.seller_name, "");
  // genreNames that is not a list of strings is a malformed answer.
  out.clear();
  EXPECT_FALSE(internal::ParseLookup(R"({"results":{"900":{"genreNames":"Books"}}})", &out));
}

}  // namespace
}  // namespace vppd::apple
