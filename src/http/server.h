// The HTTP/1.1 server every vppd process (and apple-vpp-sim) listens with.
//
// Boost.Beast and Asio stay inside src/http/: handlers see only the plain
// Request/Response below. One coroutine per connection; limits and timeouts on
// every read; keep-alive; graceful shutdown.
//
//   http::ServerOptions opts;
//   opts.port = 8080;
//   auto server = http::Server::Start(opts, [](http::Request& req) {
//     return http::Response::Text(200, "ok");
//   });
//   if (!server) ...;
//   (*server)->RunUntilSignal();   // SIGTERM/SIGINT: stop accepting, drain, return.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace vppd::http {

using Header = std::pair<std::string, std::string>;

// Case-insensitive lookup of the first header called `name`; nullopt when absent.
std::optional<std::string_view> FindHeader(const std::vector<Header>& headers, std::string_view name);

struct Request {
  std::string method;   // "GET", "POST", ... as sent.
  std::string target;   // Raw request-target: path and query, still percent-encoded.
  std::vector<Header> headers;
  std::string body;     // At most ServerOptions::max_body_bytes.
  std::string remote;   // "ip:port" of the peer.
  // A fresh GUID per request, also sent back as the `request-id` header.
  std::string request_id;

  std::optional<std::string_view> Header(std::string_view name) const { return FindHeader(headers, name); }
};

struct Response {
  int status = 200;
  std::vector<Header> headers;  // Content-Type, Allow, Retry-After, ...
  std::string body;

  // Fault injection for simulators: wait this long before writing (without
  // holding a thread), and/or send only the first `truncate_body_at` bytes of the
  // body (Content-Length still announces the whole) and then close.
  std::chrono::milliseconds delay{0};
  std::optional<std::size_t> truncate_body_at;

  static Response Json(int status, std::string body) {
    return {status, {{"Content-Type", "application/json"}}, std::move(body), {}, {}};
  }
  static Response Text(int status, std::string body) {
    return {status, {{"Content-Type", "text/plain; charset=utf-8"}}, std::move(body), {}, {}};
  }
};

// Called on one of the server's threads for each complete request. May block
// (store access) but should not sleep; must not throw (a throw is caught, logged
// and answered 500, as a last resort).
using Handler = std::function<Response(Request&)>;

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: pick a free port (see Server::port()).
  int threads = 2;
  std::size_t max_header_bytes = 16 * 1024;  // Over → 431, then close.
  std::size_t max_body_bytes = 1024 * 1024;  // Over → 413, then close.
  // A request's header and body must arrive within this time once started → 408.
  std::chrono::milliseconds read_timeout{10'000};
  // A keep-alive connection with no request for this long is closed silently.
  std::chrono::milliseconds idle_timeout{60'000};
  // On shutdown, in-flight requests get this long to finish.
  std::chrono::milliseconds drain_timeout{10'000};
  std::size_t max_connections = 10'000;
};

class Server {
 public:
  // Binds and starts serving on `options.threads` threads. Fails with
  // Unavailable when the address cannot be bound.
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options, Handler handler);
  virtual ~Server() = default;

  // The port actually bound.
  virtual std::uint16_t port() const = 0;
  // Blocks until SIGTERM or SIGINT, then shuts down gracefully and returns.
  virtual void RunUntilSignal() = 0;
  // Graceful shutdown from any thread: stop accepting, let in-flight requests
  // finish (up to drain_timeout), close idle connections, join threads. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace vppd::http
