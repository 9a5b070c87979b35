// Helpers shared by the simulator's handler files (simulator.cc, apple_api.cc,
// control_api.cc). Not part of the simulator's interface.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "apple_errors.h"
#include "http/server.h"
#include "simulator.h"

namespace vppd::sim {

// The decoded query string of a request.
struct Simulator::Query {
  std::vector<std::pair<std::string, std::string>> items;

  // The first value of `key` (empty for a key given without `=`), or nullopt.
  std::optional<std::string_view> Get(std::string_view key) const {
    for (const auto& [k, v] : items)
      if (k == key) return std::string_view(v);
    return std::nullopt;
  }
};

// An Apple ErrorResponse with the HTTP status Apple uses for its number.
inline http::Response AppleErrorReply(const AppleError& e) {
  return http::Response::Json(AppleHttpStatus(e.number), ErrorResponseJson(e));
}
inline http::Response AppleErrorReply(int number, std::string message = {}, std::string info = {}) {
  return AppleErrorReply(AppleError{number, std::move(message), std::move(info)});
}

// Query-parameter parsers. nullopt: the value is not of the type.
std::optional<bool> ParseBoolParam(std::string_view v);           // true/false/1/0 (any case).
std::optional<std::int64_t> ParseInt32Param(std::string_view v);  // A decimal int32.

// A notificationUrl the simulator accepts (9712 otherwise): `https://host/path`,
// as Apple demands, or `http://` to a loopback host (the simulator's deviation,
// so tests can receive). notifications.cc.
bool ValidNotificationUrl(std::string_view url);

}  // namespace vppd::sim
