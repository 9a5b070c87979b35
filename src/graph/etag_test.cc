#include "graph/etag.h"

#include <gtest/gtest.h>

namespace vppd::graph {
namespace {

Result<IfMatch> Parse(std::vector<std::string> values) {
  std::vector<http::Header> headers = {{"Content-Type", "application/json"}};
  for (auto& v : values) headers.emplace_back("If-Match", std::move(v));
  return ParseIfMatch(headers);
}

TEST(ETagTest, TheTagOfAVersion) { EXPECT_EQ(VppTokenETag(42), "W/\"42\""); }

TEST(ETagTest, AbsentIsNoCondition) {
  auto m = Parse({});
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->present);
  EXPECT_FALSE(m->any);
  EXPECT_TRUE(m->versions.empty());
}

TEST(ETagTest, WeakAndStrongTagsNameTheSameVersion) {
  for (const char* value : {"W/\"7\"", "\"7\"", "  W/\"7\"  "}) {
    auto m = Parse({value});
    ASSERT_TRUE(m) << value;
    EXPECT_TRUE(m->present);
    EXPECT_FALSE(m->any);
    EXPECT_FALSE(m->foreign);
    EXPECT_EQ(m->versions, std::vector<std::int64_t>{7}) << value;
  }
}

TEST(ETagTest, ListsAndSeveralFieldsAreOneList) {
  auto m = Parse({"W/\"3\", \"5\",, W/\"abc\"", "W/\"9\""});
  ASSERT_TRUE(m);
  EXPECT_EQ(m->versions, (std::vector<std::int64_t>{3, 5, 9}));
  EXPECT_TRUE(m->foreign);
  auto lower = ParseIfMatch({{"if-match", "\"2\""}});
  ASSERT_TRUE(lower);
  EXPECT_EQ(lower->versions, std::vector<std::int64_t>{2});
}

TEST(ETagTest, WellFormedTagsVppdNeverWritesMatchNothing) {
  for (const char* value : {"\"abc\"", "W/\"\"", "\"0\"", "\"-1\"", "\"+1\"", "\"07x\"", "\"99999999999999999999\""}) {
    auto m = Parse({value});
    ASSERT_TRUE(m) << value;
    EXPECT_TRUE(m->foreign) << value;
    EXPECT_TRUE(m->versions.empty()) << value;
  }
}

TEST(ETagTest, StarMatchesAnyVersion) {
  auto m = Parse({"*"});
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->any);
  EXPECT_TRUE(Parse({" * "}));
}

TEST(ETagTest, WhatIsNotAnEntityTagListIsInvalid) {
  for (const char* value : {"", "  ", ",", "7", "W/7", "w/\"7\"", "\"7", "\"7\" \"8\"", "\"7\";", "*, \"7\"",
                            "W/\"7\", *", "**", "W/ \"7\"", "\"1 \""}) {  // a space is not an etagc
    auto m = Parse({value});
    ASSERT_FALSE(m) << "[" << value << "]";
    EXPECT_EQ(m.error().code, Code::kInvalidArgument);
    EXPECT_EQ(m.error().message, "The If-Match header contains an invalid value.");
    EXPECT_EQ(m.error().target, "If-Match");
  }
  EXPECT_FALSE(Parse({"\"7\"", "*"})) << "a * in another field still stands alone";
  EXPECT_FALSE(Parse({"\"7\"", ""})) << "an empty field";
}

}  // namespace
}  // namespace vppd::graph
