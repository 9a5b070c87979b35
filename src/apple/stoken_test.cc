#include <gtest/gtest.h>

#include "apple/client.h"

namespace vppd::apple {
namespace {

std::string B64(std::string_view json) { return Base64Encode(json); }

TEST(SToken, DecodesAppleFileWithEveryDateForm) {
  for (const char* exp : {"2030-11-08T22:33:22+0000", "2030-11-08T23:33:22+01:00", "2030-11-08T22:33:22Z"}) {
    auto info =
        DecodeSToken(B64(std::string(R"({"token":"abc==","expDate":")") + exp + R"(","orgName":"Org"})") + "\n");
    ASSERT_TRUE(info) << info.error().message;
    EXPECT_EQ(info->token, "abc==");
    EXPECT_EQ(info->org_name, "Org");
    EXPECT_EQ(info->expiration, *ParseIso8601("2030-11-08T22:33:22Z"));
  }
}

TEST(SToken, RoundTripsEncode) {
  const Timestamp exp = *ParseIso8601("2031-01-02T03:04:05Z");
  const std::string s = EncodeSToken("inner", exp, "Contoso");
  EXPECT_NE(Base64Decode(s)->find("+0000"), std::string::npos);
  auto info = DecodeSToken(s);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->expiration, exp);
  EXPECT_EQ(info->org_name, "Contoso");
}

TEST(SToken, SaysWhatIsWrong) {
  struct Case {
    std::string input;
    const char* says;
  } cases[] = {
      {"", "empty"},
      {"   \n", "empty"},
      {"not base64!", "not base64"},
      {B64("not json"), "JSON"},
      {B64("[1,2]"), "JSON object"},
      {B64(R"({"expDate":"2030-11-08T22:33:22+0000","orgName":"O"})"), "no 'token'"},
      {B64(R"({"token":"t","orgName":"O"})"), "no 'expDate'"},
      {B64(R"({"token":"t","expDate":"2030-11-08T22:33:22+0000"})"), "no 'orgName'"},
      {B64(R"({"token":5,"expDate":"2030-11-08T22:33:22+0000","orgName":"O"})"), "'token' is not a string"},
      {B64(R"({"token":"","expDate":"2030-11-08T22:33:22+0000","orgName":"O"})"), "'token' is empty"},
      {B64(R"({"token":"t","expDate":"next year","orgName":"O"})"), "expDate is invalid"},
      {std::string(20000, 'A'), "longer than"},
  };
  for (const auto& c : cases) {
    auto r = DecodeSToken(c.input);
    ASSERT_FALSE(r) << c.input;
    EXPECT_EQ(r.error().code, Code::kInvalidArgument);
    EXPECT_NE(r.error().message.find(c.says), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace vppd::apple
