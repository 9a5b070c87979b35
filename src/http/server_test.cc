// Black-box tests of http::Server over real sockets on 127.0.0.1, driven by a
// tiny POSIX-socket client so each test sends exactly the bytes it means to.
#include "http/server.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "base/base.h"
#include "base/log.h"

namespace vppd::http {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

long ElapsedMs(Steady::time_point since) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - since).count());
}

struct RawResponse {
  int status = 0;
  std::vector<http::Header> headers;
  std::string body;
  bool complete = false;  // The whole Content-Length body arrived.

  std::optional<std::string_view> Header(std::string_view name) const { return FindHeader(headers, name); }
};

// A blocking client socket with receive/send timeouts, so a broken server fails a
// test instead of hanging it.
class RawClient {
 public:
  // `source`: the local IPv4 address to connect from (any 127.x.y.z is local).
  explicit RawClient(std::uint16_t port, std::chrono::milliseconds timeout = 5s, const char* source = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (source != nullptr) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      ::inet_pton(AF_INET, source, &local.sin_addr);
      ::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  std::uint16_t local_port() const {
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
  }

  // Sends everything; false when the peer stops accepting (reset, timeout).
  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Reads one response; skips 1xx interim responses unless `stop_at_interim`.
  // nullopt when the connection closed or timed out before a full header.
  std::optional<RawResponse> ReadResponse(bool head_request = false, bool stop_at_interim = false) {
    for (;;) {
      std::size_t end;
      while ((end = pending_.find("\r\n\r\n")) == std::string::npos) {
        if (!Fill()) return std::nullopt;
      }
      RawResponse response;
      const std::string header = pending_.substr(0, end);
      pending_.erase(0, end + 4);
      std::size_t line_end = header.find("\r\n");
      const std::string status_line = header.substr(0, line_end);
      if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12) return std::nullopt;
      response.status = std::stoi(status_line.substr(9, 3));
      while (line_end != std::string::npos) {
        const std::size_t start = line_end + 2;
        line_end = header.find("\r\n", start);
        const std::string line =
            header.substr(start, line_end == std::string::npos ? std::string::npos : line_end - start);
        const std::size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        response.headers.emplace_back(line.substr(0, colon), value);
      }
      if (response.status / 100 == 1 && !stop_at_interim) continue;
      std::size_t length = 0;
      if (auto cl = response.Header("Content-Length")) length = std::stoul(std::string(*cl));
      if (head_request || response.status / 100 == 1 || response.status == 204) length = 0;
      while (pending_.size() < length) {
        if (!Fill()) break;
      }
      const std::size_t take = std::min(length, pending_.size());
      response.body = pending_.substr(0, take);
      pending_.erase(0, take);
      response.complete = take == length;
      return response;
    }
  }

  // True when the server closes the connection (EOF or reset) within `timeout`
  // without sending anything more.
  bool WaitClosed(std::chrono::milliseconds timeout = 3s) {
    if (!pending_.empty()) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  // True when nothing arrives and the connection stays open for `quiet`.
  bool StaysOpen(std::chrono::milliseconds quiet) {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(quiet.count())) == 0;
  }

 private:
  bool Fill() {
    char chunk[16 * 1024];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    pending_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string pending_;
};

std::string Get(std::string_view target, std::string_view extra_headers = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) + "\r\n";
}

std::string Post(std::string_view target, std::string_view body) {
  return "POST " + std::string(target) + " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + std::string(body);
}

// The handler most tests use: echoes what it saw, and has a few special targets.
struct EchoHandler {
  std::atomic<int> calls{0};
  std::atomic<bool> in_slow{false};

  Response operator()(Request& request) {
    ++calls;
    if (request.target == "/throw") throw std::runtime_error("boom");
    if (request.target == "/throw-int") throw 42;
    if (request.target == "/sleep") {
      in_slow = true;
      std::this_thread::sleep_for(600ms);  // A blocking handler (say, a slow store).
      return Response::Text(200, "slept");
    }
    if (request.target == "/delay") {
      Response response = Response::Text(200, "delayed");
      response.delay = 300ms;
      return response;
    }
    if (request.target == "/truncate") {
      Response response = Response::Text(200, std::string(100, 'x'));
      response.truncate_body_at = 10;
      return response;
    }
    if (request.target == "/bad-headers") {
      Response response = Response::Text(200, "ok");
      response.headers.emplace_back("Content-Length", "999");
      response.headers.emplace_back("Connection", "close");
      response.headers.emplace_back("request-id", "forged");
      response.headers.emplace_back("X-Injected", "a\r\nEvil: 1");
      response.headers.emplace_back("Bad Name", "v");
      response.headers.emplace_back("X-Fine", "yes");
      return response;
    }
    if (request.target == "/no-content") return Response{204, {}, "ignored", {}, {}};
    if (request.target == "/huge") return Response::Text(200, std::string(32 * 1024 * 1024, 'h'));
    Response response = Response::Text(200, request.method + " " + request.target + " " + request.body);
    response.headers.emplace_back("X-Remote", request.remote);
    response.headers.emplace_back("X-Seen-Request-Id", request.request_id);
    response.headers.emplace_back("X-Body-Size", std::to_string(request.body.size()));
    response.headers.emplace_back("X-Origin", request.scheme + "://" + request.host);
    std::string forwarded;
    for (const auto& [name, value] : request.headers) {
      if (name.rfind("X-Forwarded-", 0) == 0 || name == "Forwarded") forwarded += name + "=" + value + ";";
    }
    response.headers.emplace_back("X-Forwarded-Seen", forwarded.empty() ? "none" : forwarded);
    if (const log::Context* context = log::Current()) {
      response.headers.emplace_back("X-Log-Request-Id", context->request_id);
      response.headers.emplace_back("X-Log-Client-Request-Id", context->client_request_id);
    }
    return response;
  }
};

class ServerTest : public ::testing::Test {
 protected:
  void Start(ServerOptions options = {}) {
    auto server = Server::Start(options, [this](Request& r) { return handler_(r); });
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
    ASSERT_NE(server_->port(), 0);
  }
  std::uint16_t port() const { return server_->port(); }

  EchoHandler handler_;
  std::unique_ptr<Server> server_;
};

// ---------------------------------------------------------------------------
// Round trips and keep-alive

TEST_F(ServerTest, GetAndPostRoundTrip) {
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send(Get("/hello?x=%20y")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "GET /hello?x=%20y ");
  EXPECT_EQ(response->Header("content-length"), std::to_string(response->body.size()));
  EXPECT_EQ(response->Header("Content-Type"), "text/plain; charset=utf-8");

  ASSERT_TRUE(client.Send(Post("/items", "{\"a\":1}")));
  response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "POST /items {\"a\":1}");
}

TEST_F(ServerTest, HandlerLogsCarryTheRequestIds) {
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.Send("GET /ids HTTP/1.1\r\nHost: x\r\nclient-request-id: c-42\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  ASSERT_TRUE(response->Header("request-id"));
  EXPECT_EQ(response->Header("X-Log-Request-Id"), response->Header("request-id"));
  EXPECT_EQ(response->Header("X-Log-Client-Request-Id"), "c-42");
  // A long client-request-id is cut for the log (the header echo keeps it whole).
  const std::string long_id(300, 'z');
  ASSERT_TRUE(client.Send("GET /ids HTTP/1.1\r\nHost: x\r\nclient-request-id: " + long_id + "\r\n\r\n"));
  response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->Header("client-request-id"), long_id);
  EXPECT_EQ(response->Header("X-Log-Client-Request-Id"), long_id.substr(0, 128));
  // Outside a request the thread has no context.
  EXPECT_EQ(log::Current(), nullptr);
}

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  Start();
  RawClient client(port());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(client.Send(Get("/n" + std::to_string(i))));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response) << i;
    EXPECT_EQ(response->body, "GET /n" + std::to_string(i) + " ");
    EXPECT_NE(response->Header("Connection"), "close");
    // The same peer every time: the connection was reused.
    EXPECT_EQ(response->Header("X-Remote"), "127.0.0.1:" + std::to_string(client.local_port()));
  }
  EXPECT_TRUE(client.StaysOpen(100ms));
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/one") + Post("/two", "body") + Get("/three")));
  for (std::string expected : {"GET /one ", "POST /two body", "GET /three "}) {
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, expected);
  }
}

TEST_F(ServerTest, ConnectionCloseAndHttp10Semantics) {
  Start();
  {
    RawClient client(port());
    ASSERT_TRUE(client.Send(Get("/", "Connection: close\r\n")));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->Header("Connection"), "close");
    EXPECT_TRUE(client.WaitClosed());
  }
  {
    // HTTP/1.0 closes by default.
    RawClient client(port());
    ASSERT_TRUE(client.Send("GET /old HTTP/1.0\r\n\r\n"));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_TRUE(client.WaitClosed());
  }
  {
    // HTTP/1.0 with keep-alive stays open and says so.
    RawClient client(port());
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(client.Send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
      auto response = client.ReadResponse();
      ASSERT_TRUE(response) << i;
      EXPECT_EQ(response->Header("Connection"), "keep-alive");
    }
    EXPECT_TRUE(client.StaysOpen(100ms));
  }
}

TEST_F(ServerTest, HeadAnswersGetHeadersWithoutBody) {
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.Send("HEAD /thing HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto response = client.ReadResponse(/*head_request=*/true);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  // The handler saw GET; Content-Length is that of the GET body.
  EXPECT_EQ(response->Header("Content-Length"), std::to_string(std::string("GET /thing ").size()));
  // No body bytes followed: the next response parses cleanly.
  ASSERT_TRUE(client.Send(Get("/after")));
  response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "GET /after ");
}

TEST_F(ServerTest, NoContentHasNoBodyOrLength) {
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/no-content") + Get("/after")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 204);
  EXPECT_FALSE(response->Header("Content-Length"));
  response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "GET /after ");
}

TEST_F(ServerTest, ExpectContinueIsHonoured) {
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.Send("POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = client.ReadResponse(false, /*stop_at_interim=*/true);
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client.Send("hello"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "POST /c hello");
}

// ---------------------------------------------------------------------------
// Standard headers

TEST_F(ServerTest, EveryResponseCarriesRequestIdDateAndServer) {
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/a", "client-request-id: 0f4e2bd6-1111-2222-3333-444455556666\r\n")));
  auto first = client.ReadResponse();
  ASSERT_TRUE(first);
  ASSERT_TRUE(first->Header("request-id"));
  EXPECT_TRUE(IsGuid(*first->Header("request-id")));
  // The handler saw the same id in Request::request_id.
  EXPECT_EQ(first->Header("request-id"), first->Header("X-Seen-Request-Id"));
  EXPECT_EQ(first->Header("client-request-id"), "0f4e2bd6-1111-2222-3333-444455556666");
  EXPECT_EQ(first->Header("Server"), "vppd");
  ASSERT_TRUE(first->Header("Date"));
  auto date = ParseHttpDate(*first->Header("Date"));
  ASSERT_TRUE(date) << *first->Header("Date");
  EXPECT_LT(std::llabs(*date - Clock::Real().Now()), 5'000'000);

  ASSERT_TRUE(client.Send(Get("/b")));
  auto second = client.ReadResponse();
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->Header("client-request-id"));  // Only echoed when sent.
  EXPECT_NE(second->Header("request-id"), first->Header("request-id"));
}

TEST_F(ServerTest, ServerOwnedAndUnsafeHandlerHeadersAreDropped) {
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/bad-headers") + Get("/after")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->Header("Content-Length"), "2");
  EXPECT_NE(response->Header("request-id"), "forged");
  EXPECT_FALSE(response->Header("Connection"));
  EXPECT_FALSE(response->Header("X-Injected"));
  EXPECT_FALSE(response->Header("Evil"));
  EXPECT_EQ(response->Header("X-Fine"), "yes");
  EXPECT_EQ(response->body, "ok");
  // The handler's "Connection: close" did not close the connection.
  response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "GET /after ");
}

TEST(FindHeaderTest, IsCaseInsensitiveAndReturnsTheFirst) {
  std::vector<Header> headers{{"Content-Type", "a"}, {"X-Two", "1"}, {"x-two", "2"}};
  EXPECT_EQ(FindHeader(headers, "content-type"), "a");
  EXPECT_EQ(FindHeader(headers, "CONTENT-TYPE"), "a");
  EXPECT_EQ(FindHeader(headers, "X-TWO"), "1");
  EXPECT_FALSE(FindHeader(headers, "Content-Typ"));
  EXPECT_FALSE(FindHeader(headers, ""));
  Request request;
  request.headers = headers;
  EXPECT_EQ(request.Header("x-TWO"), "1");
}

// ---------------------------------------------------------------------------
// Limits

TEST_F(ServerTest, OversizedHeaderIs431AndCloses) {
  Start();
  {
    // Just under the limit is fine.
    RawClient client(port());
    ASSERT_TRUE(client.Send(Get("/ok", "X-Big: " + std::string(15 * 1024, 'a') + "\r\n")));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }
  RawClient client(port());
  client.Send(Get("/big", "X-Big: " + std::string(17 * 1024, 'a') + "\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 431);
  EXPECT_EQ(response->Header("Connection"), "close");
  EXPECT_TRUE(IsGuid(response->Header("request-id").value_or("")));
  EXPECT_NE(response->body.find("requestHeaderFieldsTooLarge"), std::string::npos);
  EXPECT_TRUE(client.WaitClosed());
  EXPECT_EQ(handler_.calls, 1);
}

TEST_F(ServerTest, ContentLengthOverLimitIs413BeforeTheBody) {
  Start();
  RawClient client(port());
  // Only the header is sent: the answer must not wait for the body.
  ASSERT_TRUE(client.Send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 413);
  EXPECT_TRUE(client.WaitClosed());
  EXPECT_EQ(handler_.calls, 0);
}

TEST_F(ServerTest, BodyOfExactlyTheLimitIsAccepted) {
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Post("/up", std::string(1024 * 1024, 'b'))));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->Header("X-Body-Size"), "1048576");
}

std::string Chunked(std::size_t chunk_size, int chunks) {
  std::string body;
  char size_line[32];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk_size);
  for (int i = 0; i < chunks; ++i) body += size_line + std::string(chunk_size, 'c') + "\r\n";
  return body + "0\r\n\r\n";
}

TEST_F(ServerTest, ChunkedBodyWithinLimitIsAssembled) {
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.Send("POST /ch HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + Chunked(1000, 3)));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->Header("X-Body-Size"), "3000");
}

TEST_F(ServerTest, ChunkedBodyOverLimitIs413) {
  Start();
  RawClient client(port());
  // 17 chunks of 64 KiB: 1 MiB + 64 KiB.
  client.Send("POST /ch HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + Chunked(64 * 1024, 17));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 413);
  EXPECT_NE(response->body.find("requestEntityTooLarge"), std::string::npos);
  EXPECT_TRUE(client.WaitClosed());
  EXPECT_EQ(handler_.calls, 0);
}

TEST_F(ServerTest, GarbageIs400AndCloses) {
  Start();
  for (std::string garbage :
       {std::string("\x01\x02\x03 nonsense\r\n\r\n"), std::string("GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
        std::string("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n")}) {
    RawClient client(port());
    ASSERT_TRUE(client.Send(garbage));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response) << garbage;
    EXPECT_EQ(response->status, 400) << garbage;
    EXPECT_TRUE(client.WaitClosed()) << garbage;
  }
  EXPECT_EQ(handler_.calls, 0);
}

// Inputs that front proxies and origin servers may frame differently (request
// smuggling) are refused rather than guessed at.
TEST_F(ServerTest, AmbiguousFramingIs400) {
  Start();
  for (std::string request : {
           std::string(
               "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
           std::string(
               "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"),
           std::string("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
           std::string("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n"),
           std::string("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
       }) {
    RawClient client(port());
    client.Send(request);
    auto response = client.ReadResponse();
    ASSERT_TRUE(response) << request;
    EXPECT_EQ(response->status, 400) << request;
    EXPECT_TRUE(client.WaitClosed()) << request;
  }
  EXPECT_EQ(handler_.calls, 0);
}

// RFC 9112 §6.3: a Transfer-Encoding whose final coding is not chunked leaves the
// body length unknown. Read as bodiless, the body would run as a second request
// (here a GET that the handler would count): it must be 400 and close instead.
TEST_F(ServerTest, TransferEncodingNotEndingInChunkedIs400AndCloses) {
  Start();
  const std::string smuggled = Get("/smuggled");
  for (std::string codings : {
           std::string("Transfer-Encoding: gzip\r\n"),
           std::string("Transfer-Encoding: xchunked\r\n"),
           std::string("Transfer-Encoding: chunked, identity\r\n"),
           std::string("Transfer-Encoding: identity\r\n"),
           std::string("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"),  // One list: gzip is last.
           std::string("Transfer-Encoding: chunked, chunked\r\n"),
           std::string("Transfer-Encoding: ,\r\n"),
       }) {
    RawClient client(port());
    ASSERT_TRUE(client.Send("POST /first HTTP/1.1\r\nHost: t\r\n" + codings + "\r\n" + smuggled));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response) << codings;
    EXPECT_EQ(response->status, 400) << codings;
    EXPECT_NE(response->body.find("badRequest"), std::string::npos) << response->body;
    EXPECT_TRUE(client.WaitClosed()) << codings;
  }
  {
    RawClient client(port());  // HTTP/1.0 has no Transfer-Encoding (RFC 9112 §6.1).
    ASSERT_TRUE(client.Send("POST /first HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 400);
    EXPECT_TRUE(client.WaitClosed());
  }
  {
    RawClient client(port());  // A coding we would have to decode: 501.
    ASSERT_TRUE(client.Send("POST /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 501);
    EXPECT_TRUE(client.WaitClosed());
  }
  EXPECT_EQ(handler_.calls, 0);
  // Plain chunked, in any case and with a parameter-free list of one, still works.
  RawClient client(port());
  ASSERT_TRUE(client.Send("POST /ok HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "POST /ok abc");
}

TEST_F(ServerTest, UnsupportedVersionIs505) {
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.Send("GET / HTTP/2.0\r\nHost: t\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 505);
  EXPECT_TRUE(client.WaitClosed());
  // A malformed version is a plain 400.
  RawClient other(port());
  ASSERT_TRUE(other.Send("GET / HTTP/x.y\r\nHost: t\r\n\r\n"));
  response = other.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
}

// ---------------------------------------------------------------------------
// Timeouts

TEST_F(ServerTest, StalledHeaderIs408AndCloses) {
  ServerOptions options;
  options.read_timeout = 300ms;
  Start(options);
  RawClient client(port());
  const auto started = Steady::now();
  ASSERT_TRUE(client.Send("GET /stall HTTP/1.1\r\nHost: t\r\n"));  // ...and never the blank line.
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 408);
  EXPECT_GE(ElapsedMs(started), 250);
  EXPECT_LT(ElapsedMs(started), 2000);
  EXPECT_TRUE(client.WaitClosed());
}

TEST_F(ServerTest, StalledBodyIs408) {
  ServerOptions options;
  options.read_timeout = 300ms;
  Start(options);
  RawClient client(port());
  ASSERT_TRUE(client.Send("POST /stall HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 408);
  EXPECT_EQ(handler_.calls, 0);
}

TEST_F(ServerTest, IdleKeepAliveIsClosedSilently) {
  ServerOptions options;
  options.idle_timeout = 300ms;
  Start(options);
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/")));
  ASSERT_TRUE(client.ReadResponse());
  const auto idle_since = Steady::now();
  EXPECT_TRUE(client.WaitClosed(3s));  // Closed with no 408 or other bytes.
  EXPECT_GE(ElapsedMs(idle_since), 250);
  EXPECT_LT(ElapsedMs(idle_since), 2000);
}

TEST_F(ServerTest, SilentNewConnectionIsClosedAfterReadTimeout) {
  ServerOptions options;
  options.read_timeout = 300ms;
  Start(options);
  RawClient client(port());
  const auto started = Steady::now();
  EXPECT_TRUE(client.WaitClosed(3s));
  EXPECT_GE(ElapsedMs(started), 250);
}

TEST_F(ServerTest, SlowClientDoesNotBlockOthers) {
  ServerOptions options;
  options.threads = 1;
  options.read_timeout = 5s;
  Start(options);
  RawClient staller(port());
  ASSERT_TRUE(staller.Send("GET /half HTTP/1.1\r\nHost: t\r\nX-Partial: "));
  std::this_thread::sleep_for(50ms);
  const auto started = Steady::now();
  RawClient normal(port());
  ASSERT_TRUE(normal.Send(Get("/quick")));
  auto response = normal.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_LT(ElapsedMs(started), 1000);
}

// ---------------------------------------------------------------------------
// Faults

TEST_F(ServerTest, DelayWaitsWithoutHoldingTheThread) {
  ServerOptions options;
  options.threads = 1;
  Start(options);
  RawClient delayed(port());
  const auto started = Steady::now();
  ASSERT_TRUE(delayed.Send(Get("/delay")));
  std::this_thread::sleep_for(50ms);
  // The only thread is free while the delayed answer waits.
  RawClient other(port());
  ASSERT_TRUE(other.Send(Get("/other")));
  auto quick = other.ReadResponse();
  ASSERT_TRUE(quick);
  EXPECT_LT(ElapsedMs(started), 250);
  auto response = delayed.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "delayed");
  EXPECT_GE(ElapsedMs(started), 290);
}

TEST_F(ServerTest, TruncateSendsAPrefixThenCloses) {
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/truncate")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->Header("Content-Length"), "100");
  EXPECT_FALSE(response->complete);
  EXPECT_EQ(response->body, std::string(10, 'x'));
}

TEST_F(ServerTest, HandlerThrowIs500AndTheConnectionSurvives) {
  Start();
  RawClient client(port());
  for (std::string target : {"/throw", "/throw-int"}) {
    ASSERT_TRUE(client.Send(Get(target)));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 500);
    // No error writer in these options: the server's own text answer.
    EXPECT_EQ(response->Header("Content-Type"), "text/plain; charset=utf-8");
    EXPECT_EQ(response->body.rfind("generalException: ", 0), 0u) << response->body;
    EXPECT_EQ(response->body.find("boom"), std::string::npos);  // Internals stay in the log.
  }
  ASSERT_TRUE(client.Send(Get("/ok")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

// ---------------------------------------------------------------------------
// Connections, binding, shutdown

TEST_F(ServerTest, ConnectionsOverTheLimitGet503) {
  ServerOptions options;
  options.max_connections = 2;
  Start(options);
  auto a = std::make_unique<RawClient>(port());
  RawClient b(port());
  for (RawClient* c : {a.get(), &b}) {
    ASSERT_TRUE(c->Send(Get("/")));
    ASSERT_TRUE(c->ReadResponse());
  }
  {
    RawClient c(port());
    auto response = c.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 503);
    EXPECT_EQ(response->Header("Retry-After"), "1");
    EXPECT_TRUE(c.WaitClosed());
  }
  a.reset();  // Frees a slot once the server notices.
  std::optional<RawResponse> response;
  for (int attempt = 0; attempt < 50 && (!response || response->status != 200); ++attempt) {
    std::this_thread::sleep_for(20ms);
    RawClient d(port());
    d.Send(Get("/again"));
    response = d.ReadResponse();
  }
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

// One address holding its share of slots with idle keep-alive connections gets
// 503 for one more, and another address is served as usual.
TEST_F(ServerTest, ConnectionsOverThePerAddressCapGet503OthersAreServed) {
  ServerOptions options;
  options.max_connections_per_address = 3;
  Start(options);
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<RawClient>(port()));
    ASSERT_TRUE(idle.back()->Send(Get("/")));
    ASSERT_TRUE(idle.back()->ReadResponse());  // Now idle, kept alive.
  }
  {
    RawClient over(port());
    auto response = over.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 503);
    EXPECT_EQ(response->Header("Retry-After"), "1");
    // No error writer here: the server's plain `code: message` answer.
    EXPECT_EQ(response->body, "serviceUnavailable: Too many open connections from this address.\n") << response->body;
    EXPECT_TRUE(over.WaitClosed());
  }
  for (int i = 0; i < 3; ++i) {
    RawClient other(port(), 5s, "127.0.0.2");
    ASSERT_TRUE(other.connected());
    ASSERT_TRUE(other.Send(Get("/other")));
    auto response = other.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }
  // The idle connections still work, and one closing frees its address's slot.
  ASSERT_TRUE(idle.front()->Send(Get("/still")));
  ASSERT_TRUE(idle.front()->ReadResponse());
  idle.pop_back();
  std::optional<RawResponse> response;
  for (int attempt = 0; attempt < 50 && (!response || response->status != 200); ++attempt) {
    std::this_thread::sleep_for(20ms);
    RawClient again(port());
    again.Send(Get("/again"));
    response = again.ReadResponse();
  }
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

// The server's own answers go through the error writer, with what is known of the
// request: its id always, its headers (client-request-id) once the header was read.
TEST_F(ServerTest, ErrorWriterWritesEveryAnswerTheServerGivesOnItsOwn) {
  struct Seen {
    int status;
    std::string code;
    std::string request_id;
    std::string client_request_id;
  };
  std::mutex mu;
  std::vector<Seen> seen;
  ServerOptions options;
  options.max_connections = 2;
  options.read_timeout = 300ms;
  options.error_writer = [&](const ServerError& error, const Request& request) {
    std::lock_guard lock(mu);
    seen.push_back({error.status, std::string(error.code), request.request_id,
                    std::string(request.Header("client-request-id").value_or("-"))});
    Response r = Response::Json(999, "{\"written\":\"" + std::string(error.code) + "\"}");  // status is the server's
    r.headers.emplace_back("X-Writer", "yes");
    return r;
  };
  Start(options);
  auto expect_written = [&](const std::optional<RawResponse>& response, int status, std::string_view code,
                            std::string_view client_request_id) {
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, status);
    EXPECT_EQ(response->Header("X-Writer"), "yes");
    EXPECT_EQ(response->body, "{\"written\":\"" + std::string(code) + "\"}");
    std::lock_guard lock(mu);
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.back().status, status);
    EXPECT_EQ(seen.back().code, code);
    EXPECT_EQ(seen.back().request_id, response->Header("request-id").value_or("?"));
    EXPECT_EQ(seen.back().client_request_id, client_request_id);
  };
  {
    RawClient client(port());
    ASSERT_TRUE(
        client.Send("POST /up HTTP/1.1\r\nHost: t\r\nclient-request-id: c-413\r\nContent-Length: 1048577\r\n\r\n"));
    auto response = client.ReadResponse();
    expect_written(response, 413, "requestEntityTooLarge", "c-413");
    EXPECT_EQ(response->Header("client-request-id"), "c-413");
  }
  {
    RawClient client(port());
    ASSERT_TRUE(
        client.Send("POST /slow HTTP/1.1\r\nHost: t\r\nclient-request-id: c-408\r\nContent-Length: 10\r\n\r\nab"));
    expect_written(client.ReadResponse(), 408, "requestTimeout", "c-408");
  }
  {
    RawClient client(port());
    ASSERT_TRUE(client.Send(Get("/big", "X-Big: " + std::string(17 * 1024, 'a') + "\r\n")));
    expect_written(client.ReadResponse(), 431, "requestHeaderFieldsTooLarge", "-");
  }
  {
    RawClient client(port());
    ASSERT_TRUE(client.Send("\x01\x02\x03 nonsense\r\n\r\n"));
    expect_written(client.ReadResponse(), 400, "badRequest", "-");
  }
  {
    RawClient client(port());
    ASSERT_TRUE(client.Send(Get("/throw", "client-request-id: c-500\r\n")));
    expect_written(client.ReadResponse(), 500, "generalException", "c-500");
  }
  {
    // Two kept-alive connections take both slots. The clients above have closed, but
    // the server may not have given their slots back yet: each is retried until served.
    std::vector<std::unique_ptr<RawClient>> held;
    for (int attempt = 0; attempt < 100 && held.size() < 2; ++attempt) {
      auto client = std::make_unique<RawClient>(port());
      if (client->Send(Get("/"))) {
        auto served = client->ReadResponse();
        if (served && served->status == 200) {
          held.push_back(std::move(client));
          continue;
        }
      }
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_EQ(held.size(), 2u);
    RawClient over(port());
    auto response = over.ReadResponse();
    expect_written(response, 503, "serviceUnavailable", "-");
    EXPECT_EQ(response->Header("Retry-After"), "1");
  }
}

TEST_F(ServerTest, AThrowingErrorWriterFallsBackToText) {
  ServerOptions options;
  options.error_writer = [](const ServerError&, const Request&) -> Response { throw std::runtime_error("writer"); };
  Start(options);
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/throw")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  EXPECT_EQ(response->body.rfind("generalException: ", 0), 0u) << response->body;
}

TEST_F(ServerTest, ClientThatNeverReadsIsCutOffAfterWriteTimeout) {
  ServerOptions options;
  options.max_connections = 1;
  options.write_timeout = 300ms;
  Start(options);
  RawClient reader_that_never_reads(port());
  ASSERT_TRUE(reader_that_never_reads.Send(Get("/huge")));  // 32 MiB: far more than socket buffers hold.
  std::this_thread::sleep_for(100ms);
  {
    // The stuck write still holds the only slot.
    RawClient c(port());
    auto response = c.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 503);
  }
  // After write_timeout the connection is dropped and the slot is free again.
  std::optional<RawResponse> response;
  const auto started = Steady::now();
  while (ElapsedMs(started) < 3000 && (!response || response->status != 200)) {
    std::this_thread::sleep_for(50ms);
    RawClient d(port());
    d.Send(Get("/again"));
    response = d.ReadResponse();
  }
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST_F(ServerTest, StopLetsARequestBeingReadFinish) {
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.Send("POST /late HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab"));
  std::this_thread::sleep_for(50ms);
  auto stopping = std::async(std::launch::async, [this] { server_->Stop(); });
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(stopping.wait_for(0ms), std::future_status::timeout);  // Waiting for us.
  ASSERT_TRUE(client.Send("cd"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "POST /late abcd");
  EXPECT_EQ(response->Header("Connection"), "close");
  EXPECT_EQ(stopping.wait_for(2s), std::future_status::ready);
}

TEST_F(ServerTest, RemoteIsThePeerAddress) {
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->Header("X-Remote"), "127.0.0.1:" + std::to_string(client.local_port()));
}

// The Host header ends up in URLs handlers build: it must be a host[:port].
TEST_F(ServerTest, InvalidOrMissingHostIs400) {
  Start();
  for (std::string request : {
           std::string("GET / HTTP/1.1\r\nHost: evil.example/x?\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost: example.com:99999\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost: example.com:\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost: [not-v6]:80\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost: \r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\n\r\n"),
       }) {
    RawClient client(port());
    ASSERT_TRUE(client.Send(request));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response) << request;
    EXPECT_EQ(response->status, 400) << request;
    EXPECT_NE(response->body.find("Host"), std::string::npos) << response->body;
    EXPECT_TRUE(client.WaitClosed()) << request;
  }
  EXPECT_EQ(handler_.calls, 0);
  for (const auto& [host, origin] : std::vector<std::pair<std::string, std::string>>{
           {"vppd.example.com", "http://vppd.example.com"},
           {"vppd.example.com:8443", "http://vppd.example.com:8443"},
           {"127.0.0.1:8080", "http://127.0.0.1:8080"},
           {"[::1]:8080", "http://[::1]:8080"},
           {"[::1]", "http://[::1]"},
       }) {
    RawClient client(port());
    ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n"));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response) << host;
    EXPECT_EQ(response->status, 200) << host;
    EXPECT_EQ(response->Header("X-Origin"), origin);
  }
  RawClient old(port());  // HTTP/1.0 needs no Host.
  ASSERT_TRUE(old.Send("GET / HTTP/1.0\r\n\r\n"));
  auto response = old.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->Header("X-Origin"), "http://");
}

// Forwarding headers are a client's word unless a trusted proxy sends them.
TEST_F(ServerTest, ForwardedHeadersAreBelievedOnlyFromTrustedProxies) {
  const std::string forwarded =
      "GET / HTTP/1.1\r\nHost: internal:8080\r\nX-Forwarded-Proto: https\r\n"
      "X-Forwarded-Host: spoofed.example, vppd.example.com\r\nX-Forwarded-For: 10.1.2.3\r\n"
      "Forwarded: for=10.1.2.3\r\n\r\n";
  {
    ServerOptions nobody;
    nobody.trusted_proxies = {};  // Nobody's forwarding headers count.
    Start(nobody);
    RawClient client(port());
    ASSERT_TRUE(client.Send(forwarded));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->Header("X-Origin"), "http://internal:8080");
    EXPECT_EQ(response->Header("X-Forwarded-Seen"), "none");
  }
  {
    Start();  // The default: a proxy on this machine (127.0.0.1, ::1), and no one else.
    RawClient local_proxy(port());
    ASSERT_TRUE(local_proxy.Send(forwarded));
    auto response = local_proxy.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->Header("X-Origin"), "https://vppd.example.com");
    RawClient other(port(), 5s, "127.0.0.2");
    ASSERT_TRUE(other.Send(forwarded));
    response = other.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->Header("X-Origin"), "http://internal:8080");
    EXPECT_EQ(response->Header("X-Forwarded-Seen"), "none");
  }
  ServerOptions options;
  options.trusted_proxies = {"10.0.0.0/8", "127.0.0.1/32", "::1"};
  Start(options);
  {
    RawClient proxy(port());
    ASSERT_TRUE(proxy.Send(forwarded));
    auto response = proxy.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->Header("X-Origin"), "https://vppd.example.com");  // The nearest proxy's word.
    EXPECT_NE(response->Header("X-Forwarded-Seen"), "none");
  }
  {
    RawClient other(port(), 5s, "127.0.0.2");  // Not in the list.
    ASSERT_TRUE(other.Send(forwarded));
    auto response = other.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->Header("X-Origin"), "http://internal:8080");
    EXPECT_EQ(response->Header("X-Forwarded-Seen"), "none");
  }
  for (std::string bad :
       {std::string("X-Forwarded-Proto: gopher\r\n"), std::string("X-Forwarded-Host: evil.example/path\r\n")}) {
    RawClient proxy(port());
    ASSERT_TRUE(proxy.Send("GET / HTTP/1.1\r\nHost: internal\r\n" + bad + "\r\n"));
    auto response = proxy.ReadResponse();
    ASSERT_TRUE(response) << bad;
    EXPECT_EQ(response->status, 400) << bad;
  }
}

TEST(ServerStartTest, BusyPortFailsWithUnavailable) {
  auto first = Server::Start({}, [](Request&) { return Response::Text(200, "1"); });
  ASSERT_TRUE(first);
  ServerOptions options;
  options.port = (*first)->port();
  auto second = Server::Start(options, [](Request&) { return Response::Text(200, "2"); });
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Code::kUnavailable);
  EXPECT_NE(second.error().message.find(std::to_string(options.port)), std::string::npos);
}

TEST(ServerStartTest, InvalidTrustedProxyFailsWithInvalidArgument) {
  for (std::string entry : {"proxy.example", "10.0.0.0/33", "::1/129", "10.0.0.1/", "10.0.0.0/8x"}) {
    ServerOptions options;
    options.trusted_proxies = {entry};
    auto server = Server::Start(options, [](Request&) { return Response::Text(200, "1"); });
    ASSERT_FALSE(server) << entry;
    EXPECT_EQ(server.error().code, Code::kInvalidArgument) << entry;
  }
}

TEST(ServerStartTest, InvalidOptionsFailWithInvalidArgument) {
  ServerOptions options;
  options.threads = 0;
  auto server = Server::Start(options, [](Request&) { return Response::Text(200, ""); });
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error().code, Code::kInvalidArgument);

  options = {};
  options.host = "not an address!";
  server = Server::Start(options, [](Request&) { return Response::Text(200, ""); });
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error().code, Code::kInvalidArgument);

  server = Server::Start({}, nullptr);
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error().code, Code::kInvalidArgument);
}

TEST_F(ServerTest, StopLetsASlowHandlerFinishAndAnswer) {
  Start();
  const std::uint16_t bound = port();
  RawClient client(bound);
  ASSERT_TRUE(client.Send(Get("/sleep")));
  while (!handler_.in_slow) std::this_thread::sleep_for(5ms);
  const auto stop_started = Steady::now();
  server_->Stop();
  const long stop_ms = ElapsedMs(stop_started);
  EXPECT_GE(stop_ms, 400);  // Waited for the handler (600 ms, partly elapsed).
  EXPECT_LT(stop_ms, 3000);
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "slept");
  EXPECT_EQ(response->Header("Connection"), "close");
  EXPECT_TRUE(client.WaitClosed());
  // No longer accepting; a second Stop is a no-op.
  RawClient late(bound, 1s);
  EXPECT_FALSE(late.connected());
  server_->Stop();
}

TEST_F(ServerTest, StopClosesIdleKeepAliveConnectionsAtOnce) {
  Start();  // idle_timeout is 60 s: only Stop can close it quickly.
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/")));
  ASSERT_TRUE(client.ReadResponse());
  const auto started = Steady::now();
  server_->Stop();
  EXPECT_LT(ElapsedMs(started), 1000);
  EXPECT_TRUE(client.WaitClosed(1s));
}

TEST_F(ServerTest, StopAfterDrainTimeoutClosesWhatIsLeft) {
  ServerOptions options;
  options.drain_timeout = 100ms;
  Start(options);
  RawClient slow(port());
  ASSERT_TRUE(slow.Send(Get("/sleep")));
  RawClient stalled(port());
  ASSERT_TRUE(stalled.Send("GET /half HTTP/1.1\r\n"));  // Would hold a drain for read_timeout (10 s).
  while (!handler_.in_slow) std::this_thread::sleep_for(5ms);
  const auto started = Steady::now();
  server_->Stop();
  // Returns once the blocked handler does; the stalled reader was cut off.
  EXPECT_LT(ElapsedMs(started), 2000);
  EXPECT_TRUE(stalled.WaitClosed(1s));
  // The handler's answer may still make it out if it returns before the forced
  // close lands; either way the connection ends.
  if (auto response = slow.ReadResponse()) {
    EXPECT_EQ(response->Header("Connection"), "close");
  }
  EXPECT_TRUE(slow.WaitClosed(1s));
}

TEST_F(ServerTest, StopFromAHandlerDoesNotDeadlock) {
  auto server = Server::Start({}, [&](Request&) {
    server_->Stop();  // Begins the shutdown; cannot wait for itself.
    return Response::Text(200, "bye");
  });
  ASSERT_TRUE(server);
  server_ = std::move(*server);
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->Header("Connection"), "close");
  server_->Stop();  // The owner completes it.
}

TEST_F(ServerTest, RunUntilSignalDrainsOnSigterm) {
  // Nothing here may deliver SIGTERM before RunUntilSignal's handler is installed:
  // wait until the disposition is no longer the default, then send it once.
  Start();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/")));
  ASSERT_TRUE(client.ReadResponse());
  auto run = std::async(std::launch::async, [this] { server_->RunUntilSignal(); });
  struct sigaction current {};
  for (int i = 0; i < 500; ++i) {
    ::sigaction(SIGTERM, nullptr, &current);
    if (current.sa_handler != SIG_DFL) break;
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_NE(current.sa_handler, SIG_DFL);
  ::kill(::getpid(), SIGTERM);
  ASSERT_EQ(run.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(client.WaitClosed(1s));
  ::sigaction(SIGTERM, nullptr, &current);
  EXPECT_EQ(current.sa_handler, SIG_DFL);  // Restored.
}

TEST_F(ServerTest, RunUntilSignalReturnsWhenStoppedElsewhere) {
  Start();
  auto run = std::async(std::launch::async, [this] { server_->RunUntilSignal(); });
  std::this_thread::sleep_for(50ms);
  server_->Stop();
  EXPECT_EQ(run.wait_for(5s), std::future_status::ready);
}

}  // namespace
}  // namespace vppd::http
