// Boost.Beast/Asio implementation of http::Server (see server.h for the contract).
//
// Shape: one io_context run by `threads` threads; an accept coroutine on its own
// strand; one coroutine per connection on a strand of its own, so everything a
// connection owns (socket, timers, buffer, phase) is touched from one strand only
// and Stop() reaches it by posting onto that strand.
//
// Deadlines are a per-connection steady_timer that cancels the socket when it
// fires (instead of beast::tcp_stream's timeout, which closes the socket and so
// makes a 408 answer impossible). A generation counter discards stale expiries.
#include "http/server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "base/base.h"
#include "base/json_escape.h"
#include "base/log.h"

namespace vppd::http {

namespace {

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string_view> FindHeader(const std::vector<Header>& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using std::chrono::milliseconds;

// After an error answer or a `Connection: close` response the client may still be
// sending (the rest of an oversized body, a pipelined request). Closing with
// unread bytes makes the kernel send RST, and the client can lose the answer we
// just wrote; so we half-close and discard input for a bounded time and volume.
constexpr milliseconds kLingerTimeout{1'000};
constexpr std::size_t kLingerMaxBytes = 512 * 1024;
// Connections over max_connections get a canned 503; beyond this many such
// answers in flight, further excess connections are closed without one.
constexpr std::size_t kMaxRejectsInFlight = 64;
// After drain_timeout, connections are closed by force; this is how long Stop then
// waits for their coroutines to unwind before stopping the io_context.
constexpr milliseconds kForceCloseGrace{1'000};
// Accept failures such as EMFILE repeat immediately; back off instead of spinning.
constexpr milliseconds kAcceptBackoff{100};

auto Ec(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// The `Date` header text, formatted at most once per second per thread.
const std::string& CachedHttpDate() {
  thread_local Timestamp cached_second = -1;
  thread_local std::string cached_text;
  const Timestamp now = Clock::Real().Now();
  const Timestamp second = now / 1'000'000;
  if (second != cached_second) {
    cached_text = FormatHttpDate(second * 1'000'000);
    cached_second = second;
  }
  return cached_text;
}

// The text answer for one of the server's own errors when no error writer is set
// (or it threw): "requestTimeout: The request did not arrive in time."
Response PlainErrorResponse(const ServerError& error) {
  return Response::Text(error.status, std::string(error.code) + ": " + std::string(error.message) + "\n");
}

// A header name must be an RFC 7230 token; a value must not contain CR, LF or NUL
// (which would let a handler inject headers or split the response).
bool IsToken(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
    if (std::string_view("\"(),/:;<=>?@[\\]{}").find(c) != std::string_view::npos) return false;
  }
  return true;
}

bool IsSafeValue(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// Headers the server owns; a handler's versions are dropped.
bool IsServerOwned(std::string_view name) {
  for (std::string_view owned :
       {"content-length", "transfer-encoding", "connection", "date", "request-id", "client-request-id", "keep-alive"}) {
    if (EqualsIgnoreCase(name, owned)) return true;
  }
  return false;
}

std::string FormatEndpoint(const tcp::endpoint& ep) {
  const auto address = ep.address();
  if (address.is_v6()) return "[" + address.to_string() + "]:" + std::to_string(ep.port());
  return address.to_string() + ":" + std::to_string(ep.port());
}

// The peer's IP address as the per-address cap counts it: an IPv4 client of a
// dual-stack listener is the same client as on an IPv4 listener.
std::string PeerAddress(const tcp::endpoint& ep) {
  const auto address = ep.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

// True when the request line still in `buffer` ends in a syntactically valid
// `HTTP/d.d` (which Beast rejected as unsupported): that deserves 505, not 400.
bool HasWellFormedVersion(const beast::flat_buffer& buffer) {
  const std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
  const std::size_t eol = data.find("\r\n");
  if (eol == std::string_view::npos || eol < 9) return false;
  const std::string_view version = data.substr(eol - 9, 9);  // " HTTP/d.d"
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  return version.substr(0, 6) == " HTTP/" && digit(version[6]) && version[7] == '.' && digit(version[8]);
}

// RFC 9112 §6.1 and §6.3 on a request's Transfer-Encoding, which Beast alone
// frames loosely: when chunked is not the final coding it reads no body at all,
// and the body's bytes would then run as the next request (a smuggling
// primitive). Returns 0 when the framing is sound (no Transfer-Encoding, or
// exactly `chunked`), else the status to answer before closing: 400 when the body
// length cannot be known (chunked not last, or given twice; an empty coding list;
// Transfer-Encoding in HTTP/1.0; Transfer-Encoding with Content-Length), 501 for
// a coding before chunked, which the server does not decode.
int TransferEncodingStatus(const bhttp::header<true>& header) {
  std::vector<std::string> codings;
  bool present = false;
  for (const auto& field : header) {
    if (field.name() != bhttp::field::transfer_encoding) continue;
    present = true;
    const std::string_view value = field.value();
    for (std::size_t pos = 0; pos <= value.size();) {
      std::size_t end = value.find(',', pos);
      if (end == std::string_view::npos) end = value.size();
      std::string_view coding = value.substr(pos, end - pos);
      coding = coding.substr(0, coding.find(';'));  // Parameters do not change the coding.
      while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t')) coding.remove_prefix(1);
      while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t')) coding.remove_suffix(1);
      if (!coding.empty()) {
        std::string lower(coding);
        for (char& c : lower) c = AsciiLower(c);
        codings.push_back(std::move(lower));
      }
      pos = end + 1;
    }
  }
  if (!present) return 0;
  if (header.version() != 11 || codings.empty() || codings.back() != "chunked") return 400;
  if (header.find(bhttp::field::content_length) != header.end()) return 400;
  for (std::size_t i = 0; i + 1 < codings.size(); ++i) {
    if (codings[i] == "chunked") return 400;
  }
  return codings.size() == 1 ? 0 : 501;
}

// An IP address block ("10.0.0.0/8", "::1"), for the trusted proxies.
struct AddressBlock {
  std::array<unsigned char, 16> bytes{};
  std::size_t size = 0;  // 4 or 16.
  unsigned prefix = 0;   // Leading bits that must match.

  static std::optional<AddressBlock> Parse(std::string_view text) {
    const std::size_t slash = text.find('/');
    error_code ec;
    const auto address = asio::ip::make_address(std::string(text.substr(0, slash)), ec);
    if (ec) return std::nullopt;
    AddressBlock block = Of(address);
    if (slash != std::string_view::npos) {
      const std::string_view bits = text.substr(slash + 1);
      unsigned prefix = 0;
      if (bits.empty() || bits.size() > 3 || bits.find_first_not_of("0123456789") != std::string_view::npos) {
        return std::nullopt;
      }
      for (char c : bits) prefix = prefix * 10 + static_cast<unsigned>(c - '0');
      if (prefix > block.size * 8) return std::nullopt;
      block.prefix = prefix;
    }
    return block;
  }
  static AddressBlock Of(const asio::ip::address& address) {
    AddressBlock block;
    if (address.is_v4()) {
      const auto b = address.to_v4().to_bytes();
      std::copy(b.begin(), b.end(), block.bytes.begin());
      block.size = 4;
    } else {
      const auto b = address.to_v6().to_bytes();
      std::copy(b.begin(), b.end(), block.bytes.begin());
      block.size = 16;
    }
    block.prefix = static_cast<unsigned>(block.size * 8);
    return block;
  }
  bool Contains(const AddressBlock& address) const {
    if (address.size != size) return false;
    const unsigned whole = prefix / 8;
    if (!std::equal(bytes.begin(), bytes.begin() + whole, address.bytes.begin())) return false;
    const unsigned rest = prefix % 8;
    if (rest == 0) return true;
    const auto mask = static_cast<unsigned char>(0xff << (8 - rest));
    return (bytes[whole] & mask) == (address.bytes[whole] & mask);
  }
};

// True for `host[:port]` as it may appear in a URL we build from it: a DNS name
// (letters, digits, '-', '_', dots), an IPv4 address, or an IPv6 address in
// brackets; the port 1–5 digits, at most 65535. At most 255 characters.
bool IsValidHostPort(std::string_view text) {
  if (text.empty() || text.size() > 255) return false;
  std::string_view host = text;
  std::string_view port;
  if (text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return false;
    error_code ec;
    asio::ip::make_address_v6(std::string(text.substr(1, close - 1)), ec);
    if (ec) return false;
    host = {};
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return false;
      port = text.substr(close + 2);
      if (port.empty()) return false;
    }
  } else if (const std::size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (port.empty()) return false;
  }
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) return false;
    unsigned long n = 0;
    for (char c : port) n = n * 10 + static_cast<unsigned long>(c - '0');
    if (n > 65535) return false;
  }
  if (text.front() == '[') return true;
  if (host.empty() || host.front() == '.' || host.front() == '-') return false;
  for (char c : host) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// The last element of a comma-separated forwarding header (the one the nearest
// proxy added), trimmed.
std::string_view LastListElement(std::string_view value) {
  const std::size_t comma = value.rfind(',');
  if (comma != std::string_view::npos) value.remove_prefix(comma + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  return value;
}

class Connection;

// What the accept loop does with a fresh connection.
// kReject: over max_connections; kRejectAddress: over max_connections_per_address.
enum class Admission { kServe, kReject, kRejectAddress, kDrop };

class ServerImpl final : public Server {
 public:
  ServerImpl(const ServerOptions& options, Handler handler);
  ~ServerImpl() override;

  Status Listen();
  void StartThreads();

  std::uint16_t port() const override { return port_; }
  void RunUntilSignal() override;
  void Stop() override;
  void CatchSignals();

  // For connections.
  const ServerOptions& options() const { return options_; }
  // The TLS context when the options name a certificate; null otherwise.
  asio::ssl::context* tls_context() { return tls_.get(); }
  bool draining() const { return draining_.load(); }
  Response Invoke(Request& request);
  // The answer to one of the server's own errors, through options().error_writer.
  Response ErrorAnswer(const ServerError& error, const Request& request) const;
  void Unregister(Connection* connection, bool rejected);
  // True when `peer_address` is one of options().trusted_proxies (decided once per
  // connection: its peer does not change).
  bool IsTrustedProxy(const std::string& peer_address) const;
  // Sets request.scheme and request.host (see Request), and removes forwarding
  // headers that the peer is not trusted (`trusted_peer`) to send. Returns nullptr, or the
  // message of the 400 to answer when the Host (or a trusted proxy's
  // X-Forwarded-Host/-Proto) is not valid, or Host is missing or repeated in HTTP/1.1.
  const char* ResolveOrigin(Request& request, bool trusted_peer, unsigned version) const;

 private:
  asio::awaitable<void> AcceptLoop();
  Admission Register(const std::shared_ptr<Connection>& connection);
  // Stop accepting and ask every connection to finish; safe from any thread.
  void BeginDrain();
  void CloseAllConnections();
  void PostToEachConnection(void (*fn)(Connection&));
  bool WaitForConnections(milliseconds timeout);
  void RunIoThread();
  bool OnServerThread() const;

  const ServerOptions options_;
  const Handler handler_;
  std::uint16_t port_ = 0;
  std::vector<AddressBlock> trusted_proxies_;  // Parsed from options_ by Listen().
  std::atomic<bool> draining_{false};

  // Live connections (served and rejected), for shutdown. Guarded by registry_mu_.
  std::mutex registry_mu_;
  std::condition_variable registry_cv_;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections_;
  std::size_t serving_ = 0;
  std::size_t rejecting_ = 0;
  // Connections served per peer address (no entry at zero), against
  // max_connections_per_address.
  std::unordered_map<std::string, std::size_t> serving_by_address_;

  // Wakes RunUntilSignal when a signal arrives or Stop begins.
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool signalled_ = false;

  // Serialises Stop() callers; stopped_ makes later calls return at once.
  std::mutex stop_mu_;
  bool stopped_ = false;

  // Declared after everything coroutines touch: members are destroyed in reverse
  // order, so the io_context (which destroys suspended coroutine frames, whose
  // cleanup unregisters connections) goes before the registry it uses, and the
  // acceptor goes before the io_context it belongs to.
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  tcp::acceptor acceptor_;
  std::unique_ptr<asio::ssl::context> tls_;  // with tls_cert_file: every connection speaks TLS
  // SIGTERM/SIGINT, caught from Start on (see StartThreads); reset after Stop.
  std::optional<asio::signal_set> signals_;
  std::vector<std::thread> threads_;
};

thread_local const ServerImpl* tls_current_server = nullptr;

// client-request-id is the client's to choose; the log keeps at most this much of it.
constexpr std::size_t kMaxLoggedClientRequestId = 128;

// The access line of one answered request, with the ambient log context's ids.
// The route is the handler's template when it named one, else the path without
// its query (a query may hold anything a client typed).
void LogAccess(std::string_view method, std::string_view target, int status,
               std::chrono::steady_clock::time_point started, bool written, const std::string& remote) {
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  const log::Context* ctx = log::Current();
  std::string route =
      ctx != nullptr && !ctx->route.empty() ? ctx->route : std::string(target.substr(0, target.find('?')));
  if (route.size() > 200) route.resize(200);
  std::string message = "http: ";
  message.append(method).append(" ").append(route).append(" ").append(std::to_string(status));
  if (!written) message += " (not delivered: the connection failed)";
  log::InfoFields(message, {log::Str("method", std::string(method)), log::Str("route", route),
                            log::Num("status", static_cast<long long>(status)), log::Num("duration_ms", ms),
                            log::Str("remote", remote)});
}

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(ServerImpl& server, tcp::socket socket, std::string address)
      : server_(server),
        address_(std::move(address)),
        trusted_peer_(server.IsTrustedProxy(address_)),
        options_(server.options()),
        executor_(socket.get_executor()),
        socket_(std::move(socket)),
        deadline_(executor_),
        delay_timer_(executor_) {
    if (asio::ssl::context* tls = server.tls_context()) {
      tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, *tls);
    }
  }

  // The connection's strand. Safe from any thread (a copy taken at construction,
  // so other threads never touch the socket object).
  const asio::any_io_executor& executor() const { return executor_; }

  // The coroutine that serves requests until the connection closes.
  asio::awaitable<void> Serve();
  // Answers 503 without reading a request, then closes (over max_connections, or
  // over max_connections_per_address when `per_address`).
  asio::awaitable<void> Reject(bool per_address);

  // Run on the connection's strand. Drain: an idle connection closes now, a busy
  // one after its current response. ForceClose: close now, whatever the state.
  void Drain();
  void ForceClose();

  void set_rejected() { rejected_ = true; }
  bool rejected() const { return rejected_; }
  // The peer's IP address, as the per-address cap counts it.
  const std::string& address() const { return address_; }

 private:
  enum class Phase { kIdle, kReading, kHandling, kWriting, kClosing };

  // Unregisters the connection however the coroutine ends (even when its frame
  // is destroyed unfinished by io_context shutdown).
  struct RegistrationGuard {
    Connection* connection;
    ~RegistrationGuard() { connection->server_.Unregister(connection, connection->rejected_); }
  };

  void Arm(milliseconds timeout);
  void Disarm();
  // Reads one request into `request` (and its version/keep-alive). On failure
  // returns the status to answer with, or 0 to close silently.
  asio::awaitable<int> ReadRequest(Request& request, unsigned& version, bool& keep_alive);
  asio::awaitable<bool> WriteResponse(Response response, unsigned version, bool keep_alive, bool head,
                                      std::string_view request_id, std::string_view client_request_id);
  asio::awaitable<void> CloseGracefully();
  ServerImpl& server_;
  const std::string address_;
  const bool trusted_peer_;  // a trusted proxy's X-Forwarded-* are believed
  const ServerOptions& options_;
  const asio::any_io_executor executor_;
  tcp::socket socket_;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;  // null without TLS
  asio::steady_timer deadline_;
  asio::steady_timer delay_timer_;
  beast::flat_buffer buffer_;  // Reused across the requests of the connection.
  std::string remote_;
  Phase phase_ = Phase::kIdle;
  std::uint64_t deadline_generation_ = 0;
  bool timed_out_ = false;
  bool drain_requested_ = false;
  bool force_closed_ = false;
  bool rejected_ = false;
};

// ---------------------------------------------------------------------------
// Connection

void Connection::Arm(milliseconds timeout) {
  timed_out_ = false;
  const std::uint64_t generation = ++deadline_generation_;
  deadline_.expires_after(timeout);
  deadline_.async_wait([self = shared_from_this(), generation](error_code ec) {
    // A re-armed or disarmed deadline bumps the generation: an expiry that was
    // already queued when that happened must not cancel the new operation.
    if (ec || generation != self->deadline_generation_) return;
    self->timed_out_ = true;
    error_code ignored;
    self->socket_.cancel(ignored);
  });
}

void Connection::Disarm() {
  ++deadline_generation_;
  deadline_.cancel();
}

void Connection::Drain() {
  drain_requested_ = true;
  if (phase_ == Phase::kIdle || phase_ == Phase::kClosing) {
    error_code ignored;
    socket_.cancel(ignored);
  }
}

void Connection::ForceClose() {
  force_closed_ = true;
  error_code ignored;
  socket_.close(ignored);
  delay_timer_.cancel();
  Disarm();
}

asio::awaitable<int> Connection::ReadRequest(Request& request, unsigned& version, bool& keep_alive) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
  // The body limit is checked against Content-Length once the whole header is here
  // (so that the 413 knows the request's headers: its client-request-id), then
  // enforced while the body is read (a chunked body as it grows).
  parser.body_limit(boost::none);

  error_code ec;
  Arm(options_.read_timeout);
  if (tls_) {
    co_await bhttp::async_read_header(*tls_, buffer_, parser, Ec(ec));
  } else {
    co_await bhttp::async_read_header(socket_, buffer_, parser, Ec(ec));
  }
  if (!ec && !timed_out_) {
    if (const int status = TransferEncodingStatus(parser.get()); status != 0) {
      spdlog::debug("http: request from {} with an unusable Transfer-Encoding: {}", remote_, status);
      co_return status;
    }
    const auto length = parser.content_length();
    if (length && *length > options_.max_body_bytes) ec = bhttp::error::body_limit;
    parser.body_limit(static_cast<std::uint64_t>(options_.max_body_bytes));
  }
  if (!ec && !timed_out_ && !parser.is_done()) {
    auto& header = parser.get();
    // curl and others wait (up to a second) for this before sending a body.
    if (header.version() == 11 && EqualsIgnoreCase(header[bhttp::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      if (tls_) {
        co_await asio::async_write(*tls_, asio::buffer(kContinue), Ec(ec));
      } else {
        co_await asio::async_write(socket_, asio::buffer(kContinue), Ec(ec));
      }
    }
    if (!ec && !timed_out_) {
      if (tls_) {
        co_await bhttp::async_read(*tls_, buffer_, parser, Ec(ec));
      } else {
        co_await bhttp::async_read(socket_, buffer_, parser, Ec(ec));
      }
    }
  }
  if (timed_out_) ec = beast::error::timeout;

  if (ec) {
    if (parser.is_header_done()) {
      // The header arrived whole: the error answer can echo its client-request-id.
      for (const auto& field : parser.get()) {
        request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
      }
    }
    if (ec == beast::error::timeout) co_return parser.got_some() ? 408 : 0;
    if (ec == bhttp::error::header_limit) co_return 431;
    if (ec == bhttp::error::body_limit) co_return 413;
    if (ec == bhttp::error::buffer_overflow) co_return parser.is_header_done() ? 413 : 431;
    // The peer closed (between or in the middle of requests), or we were cancelled:
    // nobody to answer.
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) co_return 0;
    if (ec == bhttp::error::bad_version && HasWellFormedVersion(buffer_)) co_return 505;
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category()) {
      spdlog::debug("http: malformed request from {}: {}", remote_, ec.message());
      co_return 400;
    }
    co_return 0;
  }

  auto message = parser.release();
  version = message.version();  // 10 or 11: the parser rejects others.
  keep_alive = message.keep_alive();
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  request.headers.reserve(static_cast<std::size_t>(std::distance(message.begin(), message.end())));
  for (const auto& field : message) {
    request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  request.body = std::move(message.body());
  co_return 200;
}

asio::awaitable<bool> Connection::WriteResponse(Response response, unsigned version, bool keep_alive, bool head,
                                                std::string_view request_id, std::string_view client_request_id) {
  if (response.status < 100 || response.status > 999) {
    spdlog::error("http: handler returned invalid status {} (request-id {})", response.status, request_id);
    Request known;
    known.request_id = std::string(request_id);
    if (!client_request_id.empty()) known.headers.emplace_back("client-request-id", std::string(client_request_id));
    response = server_.ErrorAnswer({500, "generalException", "The handler produced an invalid response."}, known);
  }
  bhttp::response<bhttp::string_body> message;
  message.version(version);
  message.result(static_cast<unsigned>(response.status));
  bool has_server = false;
  for (const auto& [name, value] : response.headers) {
    if (!IsToken(name) || !IsSafeValue(value)) {
      spdlog::warn("http: dropping unsafe response header \"{}\" (request-id {})", JsonEscape(name), request_id);
      continue;
    }
    if (IsServerOwned(name)) continue;
    if (EqualsIgnoreCase(name, "server")) has_server = true;
    message.insert(name, value);
  }
  if (!has_server) message.set(bhttp::field::server, "vppd");
  message.set(bhttp::field::date, CachedHttpDate());
  message.set("request-id", request_id);
  if (!client_request_id.empty()) message.set("client-request-id", client_request_id);
  message.keep_alive(keep_alive);

  // 1xx and 204 carry neither a body nor Content-Length (RFC 9110 §8.6).
  const bool bodiless_status = response.status < 200 || response.status == 204;
  const std::size_t full_size = bodiless_status ? 0 : response.body.size();
  if (!bodiless_status) message.content_length(full_size);
  // HEAD: the GET's headers, Content-Length included, and no body.
  const bool send_body = !head && !bodiless_status;
  const bool truncating = send_body && response.truncate_body_at && *response.truncate_body_at < full_size;

  error_code ec;
  Arm(options_.write_timeout);
  if (!truncating) {
    // One gathered write of header and body (Beast leaves an explicitly set
    // Content-Length alone, so HEAD keeps the GET's length with no body).
    if (send_body) message.body() = std::move(response.body);
    if (tls_) {
      co_await bhttp::async_write(*tls_, message, Ec(ec));
    } else {
      co_await bhttp::async_write(socket_, message, Ec(ec));
    }
  } else {
    // Truncation fault: the header announces the whole body, only a prefix follows.
    bhttp::response_serializer<bhttp::string_body> serializer(message);
    if (tls_) {
      co_await bhttp::async_write_header(*tls_, serializer, Ec(ec));
      if (!ec && !timed_out_) {
        co_await asio::async_write(*tls_, asio::buffer(response.body.data(), *response.truncate_body_at), Ec(ec));
      }
    } else {
      co_await bhttp::async_write_header(socket_, serializer, Ec(ec));
      if (!ec && !timed_out_) {
        co_await asio::async_write(socket_, asio::buffer(response.body.data(), *response.truncate_body_at), Ec(ec));
      }
    }
  }
  Disarm();
  // Beast reports end_of_stream after writing a message that says "close".
  co_return !timed_out_ && (!ec || ec == bhttp::error::end_of_stream);
}

asio::awaitable<void> Connection::CloseGracefully() {
  phase_ = Phase::kClosing;
  error_code ec;
  if (tls_ && !force_closed_) {
    // TLS's close_notify, within the linger time; then the socket as without TLS.
    Arm(std::min(kLingerTimeout, options_.read_timeout));
    co_await tls_->async_shutdown(Ec(ec));
    Disarm();
    socket_.close(ec);
    co_return;
  }
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (!ec && !force_closed_ && !drain_requested_) {
    Arm(std::min(kLingerTimeout, options_.read_timeout));
    std::array<char, 16 * 1024> scratch;
    std::size_t discarded = 0;
    while (discarded < kLingerMaxBytes) {
      const std::size_t n = co_await socket_.async_read_some(asio::buffer(scratch), Ec(ec));
      if (ec || timed_out_) break;
      discarded += n;
    }
    Disarm();
  }
  socket_.close(ec);
}

asio::awaitable<void> Connection::Reject(bool per_address) {
  auto self = shared_from_this();
  RegistrationGuard guard{this};
  Request request;  // Not read: only its id is known.
  request.request_id = NewGuid();
  Response response = server_.ErrorAnswer(
      {503, "serviceUnavailable",
       per_address ? "Too many open connections from this address." : "The server has too many open connections."},
      request);
  response.headers.emplace_back("Retry-After", "1");
  co_await WriteResponse(std::move(response), 11, false, false, request.request_id, {});
  co_await CloseGracefully();
}

asio::awaitable<void> Connection::Serve() {
  auto self = shared_from_this();
  RegistrationGuard guard{this};
  error_code ec;
  const auto peer = socket_.remote_endpoint(ec);
  remote_ = ec ? std::string("unknown") : FormatEndpoint(peer);
  if (tls_) {
    // The handshake gets read_timeout, as a first request would; a failed one
    // (plain HTTP to a TLS port, an untrusted client) closes silently.
    Arm(options_.read_timeout);
    co_await tls_->async_handshake(asio::ssl::stream_base::server, Ec(ec));
    Disarm();
    if (ec || timed_out_ || force_closed_) {
      spdlog::debug("http: TLS handshake with {} failed: {}", remote_, timed_out_ ? "timeout" : ec.message());
      socket_.close(ec);
      co_return;
    }
  }

  bool first_request = true;
  bool linger = false;
  for (;;) {
    // Wait for the first byte of a request. Nothing is owed to a client that has
    // not started one, so a timeout here (or a drain) closes silently.
    phase_ = Phase::kIdle;
    if (buffer_.size() == 0) {
      // During shutdown, a request that has already arrived is still served.
      if ((drain_requested_ || server_.draining()) && socket_.available(ec) == 0) break;
      // A fresh connection gets read_timeout to start its first request; a
      // keep-alive connection idle_timeout to start the next one.
      Arm(first_request ? options_.read_timeout : options_.idle_timeout);
      if (tls_) {
        // The socket's readiness says nothing here: the handshake may already have
        // taken the request's first record off it. Read the first bytes instead.
        const std::size_t n = co_await tls_->async_read_some(buffer_.prepare(16 * 1024), Ec(ec));
        buffer_.commit(n);
      } else {
        co_await socket_.async_wait(tcp::socket::wait_read, Ec(ec));
      }
      Disarm();
      if (ec || timed_out_ || force_closed_) break;
    }
    first_request = false;

    phase_ = Phase::kReading;
    Request request;
    unsigned version = 11;
    bool keep_alive = false;
    int read_status = co_await ReadRequest(request, version, keep_alive);
    Disarm();
    if (force_closed_) break;
    request.remote = remote_;
    request.request_id = NewGuid();
    std::string_view bad_request_message = "The request is not valid HTTP/1.1.";
    if (read_status == 200) {
      if (const char* problem = server_.ResolveOrigin(request, trusted_peer_, version)) {
        read_status = 400;
        bad_request_message = problem;
      }
    }
    if (read_status != 200) {
      if (read_status == 0) break;
      static constexpr struct {
        int status;
        std::string_view code;
        std::string_view message;
      } kErrors[] = {
          {400, "badRequest", "The request is not valid HTTP/1.1."},
          {408, "requestTimeout", "The request did not arrive in time."},
          {413, "requestEntityTooLarge", "The request body exceeds the server's limit."},
          {431, "requestHeaderFieldsTooLarge", "The request header exceeds the server's limit."},
          {501, "notImplemented", "Transfer codings other than chunked are not supported."},
          {505, "httpVersionNotSupported", "Only HTTP/1.0 and HTTP/1.1 are supported."},
      };
      Response response = Response::Text(read_status, "");
      for (const auto& e : kErrors) {
        if (e.status == read_status) {
          response =
              server_.ErrorAnswer({e.status, e.code, e.status == 400 ? bad_request_message : e.message}, request);
        }
      }
      // Known when the header arrived whole (a body too large or too slow).
      const std::string client_request_id(request.Header("client-request-id").value_or(""));
      phase_ = Phase::kWriting;
      const auto started = std::chrono::steady_clock::now();
      const bool written = co_await WriteResponse(std::move(response), version == 10 ? 10 : 11, false, false,
                                                  request.request_id, client_request_id);
      if (options_.access_log) {
        // The request was not read whole: its method and target are not known.
        log::ContextScope scope({.component = "http", .request_id = request.request_id});
        LogAccess("-", "-", read_status, started, written, remote_);
      }
      linger = true;
      break;
    }

    // HEAD is answered as GET without the body, so handlers need not know it.
    const bool head = request.method == "HEAD";
    if (head) request.method = "GET";
    const std::string client_request_id(request.Header("client-request-id").value_or(""));

    phase_ = Phase::kHandling;
    const auto started = std::chrono::steady_clock::now();
    // Lines the handler logs carry the request's ids; it adds what it learns
    // (route template, tenant), which the access line below reuses.
    log::Context log_context{.component = "http",
                             .request_id = request.request_id,
                             .client_request_id = client_request_id.substr(0, kMaxLoggedClientRequestId)};
    Response response;
    {
      log::ContextScope scope(std::move(log_context));
      response = server_.Invoke(request);
      log_context = *log::Current();
    }
    if (response.delay > milliseconds::zero() && !force_closed_) {
      delay_timer_.expires_after(response.delay);
      co_await delay_timer_.async_wait(Ec(ec));
    }
    if (force_closed_) break;

    // Decided after the handler and the delay: a drain may have begun meanwhile.
    const bool truncated = response.truncate_body_at.has_value();
    keep_alive = keep_alive && !truncated && !drain_requested_ && !server_.draining();
    const int status = response.status;
    phase_ = Phase::kWriting;
    const bool written =
        co_await WriteResponse(std::move(response), version, keep_alive, head, request.request_id, client_request_id);
    if (options_.access_log) {
      log::ContextScope scope(std::move(log_context));
      LogAccess(head ? "HEAD" : request.method, request.target, status, started, written, remote_);
    }
    if (!written) break;
    if (!keep_alive) {
      linger = true;
      break;
    }
  }

  if (linger && !force_closed_) {
    co_await CloseGracefully();
  } else {
    socket_.close(ec);
  }
}

// ---------------------------------------------------------------------------
// ServerImpl

ServerImpl::ServerImpl(const ServerOptions& options, Handler handler)
    : options_(options),
      handler_(std::move(handler)),
      ioc_(std::max(options.threads, 1)),
      work_(asio::make_work_guard(ioc_)),
      acceptor_(asio::make_strand(ioc_)) {}

ServerImpl::~ServerImpl() {
  // From a handler this cannot join (see server.h); the joinable threads then
  // terminate the process loudly rather than leaving it half torn down.
  if (OnServerThread()) spdlog::critical("http: Server destroyed from one of its own handlers");
  Stop();
}

Status ServerImpl::Listen() {
  if (options_.threads < 1) return Fail(Error::InvalidArgument("threads must be at least 1", "threads"));
  if (options_.tls_cert_file.empty() != options_.tls_key_file.empty()) {
    return Fail(Error::InvalidArgument("TLS needs both a certificate and a key file", "tls"));
  }
  if (!options_.tls_cert_file.empty()) {
    // TLS 1.2 and 1.3 only, OpenSSL's default ciphers for them.
    tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    tls_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                      asio::ssl::context::single_dh_use);
    error_code ec;
    tls_->use_certificate_chain_file(options_.tls_cert_file, ec);
    if (ec) {
      return Fail(Error::InvalidArgument(
          "cannot load the TLS certificate chain " + options_.tls_cert_file + ": " + ec.message(), "tls_cert_file"));
    }
    tls_->use_private_key_file(options_.tls_key_file, asio::ssl::context::pem, ec);
    if (ec) {
      // The message names the file, never its content.
      return Fail(Error::InvalidArgument(
          "cannot load the TLS private key " + options_.tls_key_file + ": " + ec.message(), "tls_key_file"));
    }
  }
  if (options_.max_header_bytes == 0 || options_.max_header_bytes > std::numeric_limits<std::uint32_t>::max()) {
    return Fail(Error::InvalidArgument("max_header_bytes must be between 1 and 4 GiB", "max_header_bytes"));
  }
  if (options_.max_connections == 0) {
    return Fail(Error::InvalidArgument("max_connections must be at least 1", "max_connections"));
  }
  for (const std::string& entry : options_.trusted_proxies) {
    std::optional<AddressBlock> block = AddressBlock::Parse(entry);
    if (!block) {
      return Fail(Error::InvalidArgument("trusted proxy '" + entry + "' is not an IP address or CIDR block",
                                         "trusted_proxies"));
    }
    trusted_proxies_.push_back(*block);
  }

  error_code ec;
  tcp::endpoint endpoint;
  const auto address = asio::ip::make_address(options_.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, options_.port);
  } else {
    // A host name ("localhost"): resolve once, at startup, and bind the first address.
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(options_.host, std::to_string(options_.port), tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return Fail(
          Error::InvalidArgument("cannot resolve listen host '" + options_.host + "': " + ec.message(), "host"));
    }
    endpoint = results.begin()->endpoint();
  }

  const std::string where = options_.host + ":" + std::to_string(options_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return Fail(Error::Unavailable("cannot open a socket for " + where + ": " + ec.message()));
  // Lets a restarted server bind while old connections sit in TIME_WAIT; it does
  // not allow two listeners on one port on Linux.
  acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  acceptor_.bind(endpoint, ec);
  if (ec) return Fail(Error::Unavailable("cannot bind " + where + ": " + ec.message()));
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Fail(Error::Unavailable("cannot listen on " + where + ": " + ec.message()));
  port_ = acceptor_.local_endpoint(ec).port();
  if (ec) return Fail(Error::Unavailable("cannot read the bound port of " + where + ": " + ec.message()));
  return {};
}

void ServerImpl::StartThreads() {
  // Before anyone can learn the port: a SIGTERM sent as soon as the server
  // announces itself must drain it, not kill the process (default disposition).
  CatchSignals();
  asio::co_spawn(acceptor_.get_executor(), AcceptLoop(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::critical("http: accept loop failed: {}", ex.what());
    }
  });
  threads_.reserve(static_cast<std::size_t>(options_.threads));
  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { RunIoThread(); });
  spdlog::info("http: listening on {}:{} with {} thread(s)", options_.host, port_, options_.threads);
}

void ServerImpl::RunIoThread() {
  tls_current_server = this;
  for (;;) {
    try {
      ioc_.run();
      return;
    } catch (const std::exception& e) {
      // Handlers and coroutines catch their own; this is the last resort.
      spdlog::error("http: io thread caught: {}", e.what());
    }
  }
}

bool ServerImpl::OnServerThread() const { return tls_current_server == this; }

Response ServerImpl::Invoke(Request& request) {
  try {
    return handler_(request);
  } catch (const std::exception& e) {
    spdlog::error("http: handler threw on {} {} (request-id {}): {}", request.method, request.target,
                  request.request_id, e.what());
  } catch (...) {
    spdlog::error("http: handler threw a non-exception on {} {} (request-id {})", request.method, request.target,
                  request.request_id);
  }
  return ErrorAnswer({500, "generalException", "An unexpected error occurred while handling the request."}, request);
}

Response ServerImpl::ErrorAnswer(const ServerError& error, const Request& request) const {
  if (!options_.error_writer) return PlainErrorResponse(error);
  try {
    Response response = options_.error_writer(error, request);
    response.status = error.status;
    return response;
  } catch (const std::exception& e) {
    spdlog::error("http: error writer threw (request-id {}): {}", request.request_id, e.what());
  } catch (...) {
    spdlog::error("http: error writer threw a non-exception (request-id {})", request.request_id);
  }
  return PlainErrorResponse(error);
}

bool ServerImpl::IsTrustedProxy(const std::string& peer_address) const {
  if (trusted_proxies_.empty()) return false;
  error_code ec;
  const auto address = asio::ip::make_address(peer_address, ec);
  if (ec) return false;
  const AddressBlock peer = AddressBlock::Of(address);
  return std::any_of(trusted_proxies_.begin(), trusted_proxies_.end(),
                     [&](const AddressBlock& block) { return block.Contains(peer); });
}

const char* ServerImpl::ResolveOrigin(Request& request, bool trusted_peer, unsigned version) const {
  std::optional<std::string_view> host;
  int hosts = 0;
  for (const auto& [name, value] : request.headers) {
    if (EqualsIgnoreCase(name, "host")) {
      ++hosts;
      host = value;
    }
  }
  if (hosts > 1) return "The request has more than one Host header.";
  if (host && !IsValidHostPort(*host)) return "The Host header is not a valid host[:port].";
  if (!host && version == 11) return "The request has no Host header.";
  request.scheme = options_.tls_cert_file.empty() ? "http" : "https";
  request.host = std::string(host.value_or(""));
  if (!trusted_peer) {
    // Nobody but a trusted proxy may say what the client addressed: handlers that
    // read these headers directly must not see a client's own.
    std::erase_if(request.headers, [](const http::Header& h) {
      return EqualsIgnoreCase(h.first, "x-forwarded-proto") || EqualsIgnoreCase(h.first, "x-forwarded-host") ||
             EqualsIgnoreCase(h.first, "x-forwarded-port") || EqualsIgnoreCase(h.first, "x-forwarded-for") ||
             EqualsIgnoreCase(h.first, "forwarded");
    });
    return nullptr;
  }
  if (const auto proto = request.Header("X-Forwarded-Proto")) {
    std::string scheme(LastListElement(*proto));
    for (char& c : scheme) c = AsciiLower(c);
    if (scheme != "http" && scheme != "https") return "X-Forwarded-Proto is not http or https.";
    request.scheme = std::move(scheme);
  }
  if (const auto forwarded_host = request.Header("X-Forwarded-Host")) {
    const std::string_view value = LastListElement(*forwarded_host);
    if (!IsValidHostPort(value)) return "X-Forwarded-Host is not a valid host[:port].";
    request.host = std::string(value);
  }
  return nullptr;
}

Admission ServerImpl::Register(const std::shared_ptr<Connection>& connection) {
  std::lock_guard lock(registry_mu_);
  Admission admission = Admission::kServe;
  const auto from_address = serving_by_address_.find(connection->address());
  const bool over_address = options_.max_connections_per_address > 0 && from_address != serving_by_address_.end() &&
                            from_address->second >= options_.max_connections_per_address;
  if (serving_ >= options_.max_connections || over_address) {
    if (rejecting_ >= kMaxRejectsInFlight) return Admission::kDrop;
    admission = over_address ? Admission::kRejectAddress : Admission::kReject;
    connection->set_rejected();
    ++rejecting_;
  } else {
    ++serving_;
    ++serving_by_address_[connection->address()];
  }
  connections_.emplace(connection.get(), connection);
  return admission;
}

void ServerImpl::Unregister(Connection* connection, bool rejected) {
  {
    std::lock_guard lock(registry_mu_);
    if (connections_.erase(connection) == 0) return;
    --(rejected ? rejecting_ : serving_);
    if (!rejected) {
      auto it = serving_by_address_.find(connection->address());
      if (it != serving_by_address_.end() && --it->second == 0) serving_by_address_.erase(it);
    }
  }
  registry_cv_.notify_all();
}

asio::awaitable<void> ServerImpl::AcceptLoop() {
  asio::steady_timer backoff(acceptor_.get_executor());
  for (;;) {
    error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(asio::make_strand(ioc_), Ec(ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      spdlog::warn("http: accept failed: {}", ec.message());
      backoff.expires_after(kAcceptBackoff);
      co_await backoff.async_wait(Ec(ec));
      continue;
    }
    if (draining()) {
      socket.close(ec);
      co_return;
    }
    socket.set_option(tcp::no_delay(true), ec);  // Responses go out in one write; no Nagle delay.
    const tcp::endpoint peer = socket.remote_endpoint(ec);
    auto connection = std::make_shared<Connection>(*this, std::move(socket), ec ? std::string() : PeerAddress(peer));
    const Admission admission = Register(connection);
    if (admission == Admission::kDrop) continue;  // The socket closes with `connection`.
    auto on_done = [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("http: connection failed: {}", ex.what());
      }
    };
    auto executor = connection->executor();
    if (admission != Admission::kServe) {
      asio::co_spawn(executor, connection->Reject(admission == Admission::kRejectAddress), on_done);
    } else {
      asio::co_spawn(executor, connection->Serve(), on_done);
    }
  }
}

void ServerImpl::BeginDrain() {
  if (draining_.exchange(true)) return;
  spdlog::info("http: shutting down: no longer accepting on port {}", port_);
  asio::post(acceptor_.get_executor(), [this] {
    error_code ignored;
    acceptor_.close(ignored);
  });
  PostToEachConnection([](Connection& c) { c.Drain(); });
  { std::lock_guard lock(wake_mu_); }
  wake_cv_.notify_all();
}

void ServerImpl::CloseAllConnections() {
  PostToEachConnection([](Connection& c) { c.ForceClose(); });
}

// Runs `fn` on every live connection, each on its own strand (never under the
// registry lock, which the connections themselves take when they end).
void ServerImpl::PostToEachConnection(void (*fn)(Connection&)) {
  std::vector<std::shared_ptr<Connection>> live;
  {
    std::lock_guard lock(registry_mu_);
    for (auto& [raw, weak] : connections_) {
      if (auto connection = weak.lock()) live.push_back(std::move(connection));
    }
  }
  for (auto& connection : live) {
    auto executor = connection->executor();
    asio::post(executor, [fn, connection = std::move(connection)] { fn(*connection); });
  }
}

bool ServerImpl::WaitForConnections(milliseconds timeout) {
  std::unique_lock lock(registry_mu_);
  return registry_cv_.wait_for(lock, timeout, [this] { return connections_.empty(); });
}

void ServerImpl::Stop() {
  if (threads_.empty()) return;  // Never started (Listen failed).
  if (OnServerThread()) {
    // A handler cannot wait for itself to finish or join its own thread: begin the
    // drain and leave the waiting to the owner's Stop() or the destructor.
    BeginDrain();
    return;
  }
  std::lock_guard stop_lock(stop_mu_);
  if (stopped_) return;
  BeginDrain();
  if (!WaitForConnections(options_.drain_timeout)) {
    spdlog::warn("http: connections still busy after the {} ms drain timeout; closing them",
                 options_.drain_timeout.count());
    CloseAllConnections();
    // A handler still running keeps its thread until it returns; join waits for it.
    WaitForConnections(kForceCloseGrace);
  }
  work_.reset();
  ioc_.stop();
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  stopped_ = true;
  spdlog::info("http: stopped");
}

void ServerImpl::CatchSignals() {
  // Asio's handler only writes to a pipe; the completion runs on an io thread and
  // wakes RunUntilSignal (which may not have been called yet: it sees signalled_).
  signals_.emplace(ioc_, SIGINT, SIGTERM);
  signals_->async_wait([this](const error_code& ec, int signal_number) {
    if (ec) return;
    spdlog::info("http: received signal {}", signal_number);
    {
      std::lock_guard lock(wake_mu_);
      signalled_ = true;
    }
    wake_cv_.notify_all();
  });
}

void ServerImpl::RunUntilSignal() {
  {
    std::unique_lock lock(wake_mu_);
    wake_cv_.wait(lock, [this] { return signalled_ || draining(); });
  }
  Stop();
  signals_.reset();  // restores the default dispositions
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, Handler handler) {
  if (!handler) return Fail(Error::InvalidArgument("a handler is required"));
  auto server = std::make_unique<ServerImpl>(options, std::move(handler));
  if (Status listening = server->Listen(); !listening) return Fail(listening.error());
  server->StartThreads();
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace vppd::http
