#include "base/base.h"

#include <filesystem>

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "base/metrics.h"

namespace vppd {
namespace {

TEST(Iso8601, AcceptsEveryFormAppleSends) {
  // spec/apple-vpp.md §1: `+0000`, `-0700`, `+10:00`, `Z`.
  EXPECT_EQ(*ParseIso8601("2030-11-08T22:33:22+0000"), *ParseIso8601("2030-11-08T22:33:22Z"));
  EXPECT_EQ(*ParseIso8601("2014-08-15T18:13:52-0700"), *ParseIso8601("2014-08-16T01:13:52Z"));
  EXPECT_EQ(*ParseIso8601("2018-07-03T13:48:31+10:00"), *ParseIso8601("2018-07-03T03:48:31Z"));
  EXPECT_EQ(*ParseIso8601("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseIso8601("1970-01-01T00:00:01.5Z"), 1'500'000);
  EXPECT_EQ(*ParseIso8601("2016-12-31T23:57:57.2481234-08:00"), *ParseIso8601("2017-01-01T07:57:57.248123Z"));
}

TEST(Iso8601, RejectsMalformedWithAReason) {
  for (const char* bad : {"", "2030-11-08", "2030-13-01T00:00:00Z", "2030-02-30T00:00:00Z", "2030-11-08T25:00:00Z",
                          "2030-11-08T22:33:22", "2030-11-08T22:33:22+25:00", "2030-11-08T22:33:22Zjunk",
                          "2030-11-08 22:33:22Z", "2030-11-08T22:33:22.Z", "abcd-11-08T22:33:22Z"}) {
    auto r = ParseIso8601(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Code::kInvalidArgument);
    EXPECT_NE(r.error().message.find("ISO-8601"), std::string::npos);
  }
}

TEST(Iso8601, FormatsUtcWithZAndRoundTrips) {
  EXPECT_EQ(FormatIso8601(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatIso8601(1'500'000), "1970-01-01T00:00:01.500000Z");
  EXPECT_EQ(FormatIso8601(*ParseIso8601("0001-01-01T00:00:00Z")), "0001-01-01T00:00:00Z");
  const Timestamp t = *ParseIso8601("2026-11-28T14:10:17.123456Z");
  EXPECT_EQ(FormatIso8601(t), "2026-11-28T14:10:17.123456Z");
  EXPECT_EQ(FormatIso8601(*ParseIso8601("2024-02-29T23:59:59Z")), "2024-02-29T23:59:59Z");
}

TEST(HttpDate, FormatsAndParses) {
  const Timestamp t = *ParseIso8601("1994-11-06T08:49:37Z");
  EXPECT_EQ(FormatHttpDate(t), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(*ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), t);
  EXPECT_FALSE(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"));
  EXPECT_FALSE(ParseHttpDate("Sun, 06 Foo 1994 08:49:37 GMT"));
}

TEST(Guid, IsRandomVersion4) {
  const std::string a = NewGuid(), b = NewGuid();
  EXPECT_NE(a, b);
  EXPECT_TRUE(IsGuid(a));
  EXPECT_EQ(a[14], '4');
  EXPECT_FALSE(IsGuid("9ceb2f92-2f92-9ceb-922f-eb9c922feb9"));
  EXPECT_FALSE(IsGuid("9ceb2f92x2f92-9ceb-922f-eb9c922feb9c"));
  EXPECT_TRUE(IsGuid("9CEB2F92-2F92-9CEB-922F-EB9C922FEB9C"));
}

TEST(Base64, RoundTripsAndRejects) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00\x01"}) {
    EXPECT_EQ(*Base64Decode(Base64Encode(s)), s);
    EXPECT_EQ(*Base64UrlDecode(Base64UrlEncode(s)), s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(*Base64Decode("Zm8"), "fo");  // unpadded accepted
  EXPECT_FALSE(Base64Decode("Zm8=="));    // wrong padding
  EXPECT_FALSE(Base64Decode("Z"));
  EXPECT_FALSE(Base64Decode("Zm9v YmFy"));
  EXPECT_FALSE(Base64Decode("Zm-v"));
  EXPECT_FALSE(Base64UrlDecode("Zm8="));
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
}

TEST(Sha256, KnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(SecretBox, SealsOpensAndDetectsTampering) {
  const SecretBox box = SecretBox::FromKey(std::string(32, 'k'));
  auto sealed = box.Seal("the sToken", "vpp_tokens.token:1");
  ASSERT_TRUE(sealed);
  EXPECT_EQ(sealed->find("the sToken"), std::string::npos);
  EXPECT_NE(*sealed, *box.Seal("the sToken", "vpp_tokens.token:1"));  // fresh nonce each time
  EXPECT_EQ(*box.Open(*sealed, "vpp_tokens.token:1"), "the sToken");
  EXPECT_FALSE(box.Open(*sealed, "vpp_tokens.token:2"));  // bound to its place
  std::string raw = *Base64Decode(*sealed);
  raw[20] ^= 1;
  EXPECT_FALSE(box.Open(Base64Encode(raw), "vpp_tokens.token:1"));
  EXPECT_FALSE(SecretBox::FromKey(std::string(32, 'x')).Open(*sealed, "vpp_tokens.token:1"));
  EXPECT_FALSE(box.Open("not base64!", "a"));
}

TEST(SecretBox, KeyFileIsCreated0600AndReloaded) {
  const auto dir = std::filesystem::temp_directory_path() / ("vppd-base-test-" + NewGuid());
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "secret.key").string();
  auto first = SecretBox::LoadOrCreate(path);
  ASSERT_TRUE(first);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto second = SecretBox::LoadOrCreate(path);
  ASSERT_TRUE(second);
  EXPECT_EQ(*second->Open(*first->Seal("x", "a"), "a"), "x");
  ::chmod(path.c_str(), 0644);
  EXPECT_FALSE(SecretBox::LoadOrCreate(path));  // refuses a key others can read
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vppd

namespace vppd {
namespace {

TEST(Metrics, RendersCountersHistogramsAndGauges) {
  metrics::Counter("test_requests_total", "Requests", {{"route", "a"}, {"status", "200"}}).Inc();
  metrics::Counter("test_requests_total", "Requests", {{"route", "a"}, {"status", "200"}}).Inc(2);
  metrics::Counter("test_requests_total", "Requests", {{"route", "b\"x"}, {"status", "404"}}).Inc();
  auto& h = metrics::Histogram("test_latency_seconds", "Latency", {{"route", "a"}});
  h.Observe(0.003);
  h.Observe(0.2);
  metrics::RegisterGauge("test_queue_depth", "Jobs", [] {
    return std::vector<std::pair<metrics::Labels, double>>{{{{"kind", "sync"}}, 4}};
  });
  const std::string text = metrics::Render();
  EXPECT_NE(text.find("# TYPE test_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("test_requests_total{route=\"a\",status=\"200\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("test_requests_total{route=\"b\\\"x\",status=\"404\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_bucket{route=\"a\",le=\"0.0025\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_bucket{route=\"a\",le=\"0.005\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_bucket{route=\"a\",le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_count{route=\"a\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("test_queue_depth{kind=\"sync\"} 4\n"), std::string::npos);
}

}  // namespace
}  // namespace vppd
