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
//
// Contract, in the order a request meets it:
//   - Connections: at most `max_connections` are served at once, and at most
//     `max_connections_per_address` from one peer IP address (idle keep-alive
//     connections count: they hold a slot); one more is answered 503
//     (Retry-After: 1) without being read and closed. A new
//     connection must start its first request within `read_timeout` and a
//     keep-alive connection its next one within `idle_timeout`; otherwise it is
//     closed silently (no request was started, so nothing is owed).
//   - Reading: once the first byte of a request has arrived, the whole header and
//     body must arrive within `read_timeout` → else 408. A header over
//     `max_header_bytes` (request line included) → 431. A body over
//     `max_body_bytes` → 413, decided from Content-Length before any body is read,
//     or as a chunked body grows. Malformed HTTP → 400; a version other than 1.0
//     or 1.1 → 505. A Host that is not a valid host[:port] (DNS name, IPv4, or
//     [IPv6]; a port ≤ 65535), several Host headers, or none in HTTP/1.1 → 400;
//     so is a trusted proxy's (see trusted_proxies) invalid X-Forwarded-Host or
//     an X-Forwarded-Proto other than http/https. A Transfer-Encoding whose last coding is not `chunked` (or
//     that names chunked twice, comes with Content-Length, or is sent in
//     HTTP/1.0) → 400 (RFC 9112 §6.3); a coding before chunked → 501. Each of
//     these closes the connection after the answer.
//     `Expect: 100-continue` is honoured.
//   - Handling: the handler runs synchronously on an io thread. While it runs, that
//     thread serves nobody else: with `threads` = N, N handlers blocked at once
//     (on SQLite, say) stall every other connection until one returns; accepting
//     and slow clients cost no thread, only handlers do. Size `threads` for the
//     number of handlers that may block at the same time. HEAD requests reach the
//     handler as GET; the answer carries the GET's headers (Content-Length
//     included) and no body. A handler that throws is answered 500 through the
//     error writer (code generalException, a generic message: the exception text
//     goes to the log, not to the client), and the connection lives on.
//   - Logging: the handler runs inside a log::ContextScope (base/log.h) holding
//     the request's request_id and client_request_id (at most 128 characters of
//     it), so every line it logs carries them; it may add the route template and
//     the tenant to log::Current(). After the response is written the server logs
//     one access line (method, that route or else the path without its query,
//     status, duration_ms, remote) when `access_log` is on.
//   - Writing: every response carries `request-id` (the Request's fresh GUID),
//     `client-request-id` echoed when the request had one, `Date`, `Server: vppd`
//     (unless the handler set Server) and `Content-Length` (except 1xx and 204).
//     The server owns Content-Length, Transfer-Encoding, Connection, Date,
//     request-id and client-request-id: the handler's values for these are
//     dropped, as are headers with an invalid name or a CR/LF/NUL in the value.
//     The whole response must be written within `write_timeout`, else the
//     connection is closed. Keep-alive: HTTP/1.1 unless `Connection: close`,
//     HTTP/1.0 only with `Connection: keep-alive`.
//   - Shutdown (Stop or a signal): stop accepting; idle keep-alive connections are
//     closed at once; requests being read, handled or delayed finish and are
//     answered with `Connection: close`; after `drain_timeout` whatever is left is
//     closed by force (a handler still running keeps its thread until it returns,
//     and Stop waits for that when it joins).
//
// Errors the server answers by itself (400, 408, 413, 431, 505, 500 for a throwing
// handler, 503 over max_connections) are written by ServerOptions::error_writer,
// so that they read like the handler's own errors (vppd sets graph's envelope);
// without one they are text/plain with the message.
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
  std::string method;                 // "GET", "POST", ... as sent.
  std::string target;                 // Raw request-target: path and query, still percent-encoded.
  std::vector<http::Header> headers;  // Qualified: the member Header() below hides the type.
  std::string body;                   // At most ServerOptions::max_body_bytes.
  std::string remote;                 // "ip:port" of the peer.
  // What the client addressed, for URLs built from the request: "http", or
  // "https" when a trusted proxy says so in X-Forwarded-Proto; and host[:port]
  // from the Host header, or a trusted proxy's X-Forwarded-Host. Both validated
  // (see the contract above). `host` is empty only for HTTP/1.0 without Host.
  std::string scheme;
  std::string host;
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

// Called on one of the server's threads for each complete request, possibly on
// several threads at once (it must be thread-safe). May block (store access) but
// should not sleep: each blocked call holds one of the `threads` (see above); use
// Response::delay to wait. Must not throw (a throw is caught, logged and answered
// 500, as a last resort).
using Handler = std::function<Response(Request&)>;

// One of the answers the server gives on its own: the status, a short code naming
// what went wrong ("requestTimeout") and a message for the client.
struct ServerError {
  int status = 500;
  std::string_view code;
  std::string_view message;
};

// Writes the response of a ServerError. `request` holds what is known of the
// request: always request_id; the headers (client-request-id among them) once the
// header was read; nothing more for a 503 over max_connections. Called on the
// server's threads, possibly at once; must not throw (a throw falls back to the
// text answer). The server still owns the headers listed under "Writing".
using ErrorWriter = std::function<Response(const ServerError& error, const Request& request)>;

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
  // A response (header and body) must be written within this time, else the
  // connection is closed.
  std::chrono::milliseconds write_timeout{10'000};
  // On shutdown, in-flight requests get this long to finish.
  std::chrono::milliseconds drain_timeout{10'000};
  std::size_t max_connections = 10'000;  // Served at once; one more → 503, then close.
  // Served at once from one peer IP address, idle keep-alive connections included;
  // one more → 503, then close. 0: no cap.
  std::size_t max_connections_per_address = 256;
  // Peers (IP addresses or CIDR blocks: "10.0.0.0/8", "::1") whose
  // X-Forwarded-Proto and X-Forwarded-Host are believed (the last element of
  // each, the one the nearest proxy added). From any other peer, X-Forwarded-*
  // and Forwarded are removed before the handler sees the request. An entry that
  // is not an address or block fails Start. The default trusts a proxy on the
  // same machine (127.0.0.1 and ::1 exactly, as ASP.NET Core's forwarded-headers
  // middleware does); {} trusts nobody.
  std::vector<std::string> trusted_proxies = {"127.0.0.1", "::1"};
  // TLS (Beast over OpenSSL): PEM files of the certificate chain and its private
  // key. Both set: every connection must complete a TLS 1.2+ handshake within
  // read_timeout (else it is closed silently) and Request::scheme is "https".
  // Both empty: plain HTTP (run behind a TLS-terminating proxy). One without the
  // other, or a file that does not load, fails Start with InvalidArgument.
  std::string tls_cert_file;
  std::string tls_key_file;
  // One info line per answered request (method, route, status, duration_ms,
  // remote, with the request's ids): see base/log.h. vppd turns it on.
  bool access_log = false;
  // The body of the server's own error answers (see ServerError); unset: text/plain.
  ErrorWriter error_writer;
};

// Thread-safety: port() and Stop() may be called from any thread; Stop() from a
// handler only begins the shutdown (a thread cannot join itself) and the owner's
// Stop() or the destructor completes it. The destructor calls Stop(); do not
// destroy the Server from one of its handlers.
class Server {
 public:
  // Binds and starts serving on `options.threads` threads. Fails with
  // Unavailable when the address cannot be bound (port in use, no permission),
  // InvalidArgument when an option is out of range (threads < 1, max_connections
  // 0, max_header_bytes 0) or the host name cannot be resolved.
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options, Handler handler);
  virtual ~Server() = default;

  // The port actually bound.
  virtual std::uint16_t port() const = 0;
  // Blocks until SIGTERM or SIGINT (or until Stop() is called from elsewhere),
  // then shuts down gracefully and returns. The server catches both signals from
  // Start on (one sent between Start and this call is not lost, nor does it kill
  // the process) and restores the default dispositions when this returns.
  virtual void RunUntilSignal() = 0;
  // Graceful shutdown from any thread: stop accepting, let in-flight requests
  // finish (up to drain_timeout), close idle connections, join threads. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace vppd::http
