#include "base/log.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "base/testing.h"

namespace vppd::log {
namespace {

// Runs `body` with stderr going to a file and returns what it wrote.
template <class F>
std::string CaptureStderr(F&& body) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/stderr";
  std::fflush(stderr);
  const int saved = ::dup(2);
  FILE* file = std::fopen(path.c_str(), "w");
  ::dup2(::fileno(file), 2);
  body();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::fclose(file);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The escaping itself is tested in base/json_escape_test.cc; here, that a line is
// valid UTF-8 without control bytes whatever a client sent (the sanitizing mode).
TEST(JsonLines, EscapeControlsAndReplaceInvalidUtf8) {
  const std::string out = CaptureStderr([] {
    Init(Format::kJson, "info");
    ContextScope request({.client_request_id = "c\xff\x7f"});
    spdlog::info("http: bad \"x\xc3\"\nnext");
  });
  const std::string fffd = "\xef\xbf\xbd";
  const std::string want = R"("component":"http","message":"bad \"x)" + fffd + R"(\"\nnext","client_request_id":"c)" +
                           fffd + R"(\u007f"})" + "\n";
  EXPECT_NE(out.find(want), std::string::npos) << out;
}

TEST(ParseFormat, AcceptsJsonAndTextOnly) {
  EXPECT_EQ(*ParseFormat("json"), Format::kJson);
  EXPECT_EQ(*ParseFormat("text"), Format::kText);
  auto bad = ParseFormat("xml");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kInvalidArgument);
  EXPECT_NE(bad.error().message.find("'xml'"), std::string::npos);
}

TEST(JsonLines, CarryComponentContextAndFields) {
  const std::string out = CaptureStderr([] {
    Init(Format::kJson, "info");
    spdlog::info("store: opened {}", "x.db");
    {
      ContextScope request({.component = "http", .request_id = "rid-1", .client_request_id = "c\"1"});
      Current()->route = "beta/vppTokens/{id}";
      Current()->tenant_id = "t-1";
      spdlog::warn("no prefix here");
      {
        ContextScope job({.job_id = "j-9", .token_id = "tok-2"});
        spdlog::info("sync: walked");
      }
      InfoFields("GET beta/vppTokens/{id} 200", {Str("method", "GET"), Num("status", 200LL), Num("duration_ms", 1.5)});
    }
    spdlog::debug("below the level");
    spdlog::error("after the scope");
  });
  const std::string time_re = R"(\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",)";
  std::istringstream lines(out);
  std::string line;
  std::vector<std::string> got;
  while (std::getline(lines, line)) got.push_back(line);
  ASSERT_EQ(got.size(), 5u) << out;
  for (const auto& l : got) {
    EXPECT_TRUE(std::regex_search(l, std::regex("^" + time_re))) << l;
  }
  EXPECT_NE(got[0].find(R"("level":"info","logger":"vppd","component":"store","message":"opened x.db"})"),
            std::string::npos)
      << got[0];
  EXPECT_NE(got[1].find(R"("level":"warning","logger":"vppd","component":"http","message":"no prefix here",)"
                        R"("request_id":"rid-1","client_request_id":"c\"1","tenant_id":"t-1",)"
                        R"("route":"beta/vppTokens/{id}"})"),
            std::string::npos)
      << got[1];
  // The inner scope replaces the outer one; it does not merge with it.
  EXPECT_NE(got[2].find(R"("component":"sync","message":"walked","job_id":"j-9","token_id":"tok-2"})"),
            std::string::npos)
      << got[2];
  EXPECT_NE(got[3].find(R"("message":"GET beta/vppTokens/{id} 200","request_id":"rid-1","client_request_id":"c\"1",)"
                        R"("tenant_id":"t-1","method":"GET","status":200,"duration_ms":1.5,)"
                        R"("route":"beta/vppTokens/{id}"})"),
            std::string::npos)
      << got[3];
  EXPECT_NE(got[4].find(R"("component":"vppd","message":"after the scope"})"), std::string::npos) << got[4];
}

TEST(TextLines, AppendFieldsAsKeyValues) {
  const std::string out = CaptureStderr([] {
    Init(Format::kText, "info");
    ContextScope request({.request_id = "rid-2"});
    InfoFields("http: GET x 200", {Str("route", "a b"), Num("status", 200LL)});
  });
  EXPECT_NE(out.find(" info    http: GET x 200 request_id=rid-2 route=\"a b\" status=200\n"), std::string::npos) << out;
}

// What a client sends (a path, a client-request-id) reaches the text log: no
// control character may reach the terminal reading it, the one-byte CSI U+009B
// included, in the message or in a field, quoted or not.
TEST(TextLines, EscapeEveryControlCharacter) {
  const std::string out = CaptureStderr([] {
    Init(Format::kText, "info");
    ContextScope request({.request_id = "rid\x1b[2J",
                          .client_request_id = "c \xc2\x9b"
                                               "31m"});
    InfoFields(
        "http: GET /a\nforged line \xc2\x9b"
        "2J\x07 200",
        {Str("route",
             "x\xc2\x9b"
             "1m"),
         Str("path",
             "a b\xc2\x9b"
             "K\x7f")});
  });
  EXPECT_NE(out.find(" info    http: GET /a\\nforged line \\u009b2J\\x07 200 request_id=rid\\x1b[2J "
                     "client_request_id=\"c \\u009b31m\" route=x\\u009b1m path=\"a b\\u009bK\\u007f\"\n"),
            std::string::npos)
      << out;
  for (const char c : out.substr(0, out.size() - 1)) {
    const auto b = static_cast<unsigned char>(c);
    EXPECT_TRUE(b >= 0x20 && b != 0x7f) << "control byte " << int(b) << " in " << out;
  }
  EXPECT_EQ(out.find("\xc2\x9b"), std::string::npos) << out;
}

// The JSON line gives the same text back, but never a raw C1 control.
TEST(JsonLines, EscapeC1ControlsToo) {
  const std::string out = CaptureStderr([] {
    Init(Format::kJson, "info");
    ContextScope request({.request_id = "r\xc2\x9b"
                                        "1m"});
    spdlog::info(
        "http: a\xc2\x9b"
        "2J b\xc2\xa0"
        "c");
  });
  EXPECT_NE(out.find(R"("message":"a\u009b2J b)"
                     "\xc2\xa0"
                     R"(c","request_id":"r\u009b1m")"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("\xc2\x9b"), std::string::npos) << out;
}

}  // namespace
}  // namespace vppd::log
