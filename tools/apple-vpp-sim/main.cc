// apple-vpp-sim: serves the simulator on HTTP until SIGTERM/SIGINT.
//
// Prints exactly one line on stdout once listening —
//   apple-vpp-sim listening on http://HOST:PORT/mdm/v2
// — and flushes it, so a test can start the binary with --listen 127.0.0.1:0
// and read the URL. Diagnostics go to stderr. Exit status: 0 after a signal,
// 2 for bad flags or data (and for a non-loopback --listen without
// --control-token: the control API hands out every sToken), 1 when the address
// cannot be bound or the token file cannot be written.
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include "http/server.h"
#include "simulator.h"

namespace {

// "HOST:PORT" (the host may be "[v6]"). False when malformed.
bool SplitHostPort(const std::string& text, std::string* host, std::uint16_t* port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string h = text.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  const std::string p = text.substr(colon + 1);
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) return false;
  const unsigned long n = std::stoul(p);
  if (n > 65535) return false;
  *host = h;
  *port = static_cast<std::uint16_t>(n);
  return true;
}

// True for an address only this machine can reach: 127.0.0.0/8, ::1 (also
// bracketed or IPv4-mapped) and "localhost". Any other name or address, the
// wildcards 0.0.0.0 and :: included, may be reachable from elsewhere.
bool IsLoopback(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

}  // namespace

int main(int argc, char** argv) {
  vppd::sim::SimOptions opts;
  std::string listen = "127.0.0.1:8086";
  std::string token_file;
  std::string token_expiry;
  int threads = 2;
  int event_delay_ms = static_cast<int>(opts.event_delay.count());
  bool invalid_token_200 = false;
  std::string log_level = "warn";

  CLI::App app{"apple-vpp-sim: a faithful simulator of Apple's Apps and Books for Organizations API v2"};
  app.add_option("--listen", listen, "Address to listen on, HOST:PORT (port 0 picks a free one)")
      ->capture_default_str();
  app.add_option("--assets", opts.assets, "Assets of the default location")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_option("--assignments", opts.assignments, "Assignments of the default location")
      ->capture_default_str()
      ->check(CLI::Range(0, 20000000));
  app.add_option("--page-size", opts.page_size, "Items per page of /assets, /assignments and /users")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--seed", opts.seed, "Seed of all generated data and ids")->capture_default_str();
  app.add_option("--token-file", token_file, "Write the default location's sToken (the .vpptoken content) here");
  app.add_option("--locations", opts.locations,
                 "Generated locations (others get min(assets,50) / min(assignments,500))")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--users-per-location", opts.users, "Licensable users per location (-1: sized from assignments)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 10000000));
  app.add_option("--data", opts.data_file, "Load locations from this JSON file instead of generating them")
      ->check(CLI::ExistingFile);
  app.add_option("--event-delay-ms", event_delay_ms, "Time before an async event (associate, users/...) resolves")
      ->capture_default_str()
      ->check(CLI::Range(0, 600000));
  app.add_option("--threads", threads, "HTTP server threads")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_flag("--rate-limit", opts.rate_limit, "Enforce limits.maxRequestPerSecond per sToken (429 + 9646)");
  app.add_option("--max-rps", opts.limits.max_request_per_second, "limits.maxRequestPerSecond")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_flag("--invalid-token-200", invalid_token_200,
               "Answer unknown sTokens with 9622 at HTTP 200 (observed) instead of 9601 at 401 (documented)");
  app.add_option("--history", opts.history_limit, "versionIds remembered for sinceVersionId (older ones: 9721)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  app.add_option("--token-expiry", token_expiry,
                 "expDate of generated sTokens (ISO-8601; default 2030-11-08T22:33:22+0000)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off")->capture_default_str();
  app.add_option("--control-token", opts.control_token,
                 "Require 'Authorization: Bearer T' on /_sim/* (needed to listen on a non-loopback address)")
      ->envname("APPLE_VPP_SIM_CONTROL_TOKEN");
  app.add_option("--notification-retry-scale", opts.notification_retry_scale,
                 "Multiplies Apple's gaps between notification delivery attempts (60 s, 180 s); 0.001 for tests")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1000.0));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help exits 0; every usage error exits 2, like a bad --listen or --data.
    return app.exit(e) == 0 ? 0 : 2;
  }

  spdlog::set_level(spdlog::level::from_str(log_level));
  opts.event_delay = std::chrono::milliseconds(event_delay_ms);
  opts.background_events = true;  // Notifications of events go out without a request to trigger them.
  opts.invalid_token_http_200 = invalid_token_200;
  if (!token_expiry.empty()) {
    auto ts = vppd::ParseIso8601(token_expiry);
    if (!ts) {
      std::cerr << "apple-vpp-sim: --token-expiry: " << ts.error().message << "\n";
      return 2;
    }
    opts.token_expiration = *ts;
  }
  vppd::http::ServerOptions server_opts;
  if (!SplitHostPort(listen, &server_opts.host, &server_opts.port)) {
    std::cerr << "apple-vpp-sim: --listen must be HOST:PORT, got " << listen << "\n";
    return 2;
  }
  if (!IsLoopback(server_opts.host) && opts.control_token.empty()) {
    std::cerr << "apple-vpp-sim: REFUSING to listen on " << listen
              << " without --control-token: that address may be reachable from other machines, and the\n"
                 "control API (/_sim/*) serves every simulated sToken and rewrites the simulated world.\n"
                 "Listen on 127.0.0.1 (or ::1), or set --control-token T (or APPLE_VPP_SIM_CONTROL_TOKEN)\n"
                 "and send 'Authorization: Bearer T' with every /_sim/* request.\n";
    return 2;
  }
  if (!opts.control_token.empty() && opts.control_token.size() < 16) {
    std::cerr << "apple-vpp-sim: --control-token must be at least 16 characters\n";
    return 2;
  }
  server_opts.threads = threads;
  server_opts.max_body_bytes = 4 * 1024 * 1024;               // 1000 serials × a few assets fits easily.
  server_opts.error_writer = vppd::sim::ServerErrorResponse;  // Apple's ErrorResponse, not text/plain.

  auto sim = vppd::sim::Simulator::Create(opts, vppd::Clock::Real());
  if (!sim) {
    std::cerr << "apple-vpp-sim: " << sim.error().message << "\n";
    return 2;
  }
  if (!token_file.empty()) {
    if (auto s = vppd::WriteFileAtomic(token_file, (*sim)->DefaultSToken(), 0600); !s) {
      std::cerr << "apple-vpp-sim: --token-file: " << s.error().message << "\n";
      return 1;
    }
  }
  vppd::sim::Simulator* handler_sim = sim->get();
  auto server = vppd::http::Server::Start(server_opts, [handler_sim](vppd::http::Request& req) {
    vppd::http::Response resp = handler_sim->Handle(req);
    spdlog::debug("{} {} {} -> {} ({} bytes)", req.remote, req.method, req.target, resp.status, resp.body.size());
    return resp;
  });
  if (!server) {
    std::cerr << "apple-vpp-sim: " << server.error().message << "\n";
    return 1;
  }
  std::string shown_host =
      server_opts.host.find(':') != std::string::npos ? "[" + server_opts.host + "]" : server_opts.host;
  std::printf("apple-vpp-sim listening on http://%s:%u/mdm/v2\n", shown_host.c_str(),
              static_cast<unsigned>((*server)->port()));
  std::fflush(stdout);
  (*server)->RunUntilSignal();
  return 0;
}
