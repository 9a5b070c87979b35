// JSON → typed results for apple::Client (internal to src/apple/).
//
// Every function fails with kMalformedResponse naming the member that is
// missing or of the wrong type; the caller fills in `request` and `attempts`.
//
// Why Boost.JSON's DOM parser (reused, over a monotonic arena) and not
// simdjson: the hot path is /assignments pages of 1,000 items (~70 KB). Parsing
// one into the arena and converting it to Assignment structs measured ~0.25 ms
// on this machine (≈280 MB/s end to end), i.e. about 0.25 s for a 1,000,000-item
// walk — a small share next to the transfer itself (see bench/README.md
// "apple"), so a second JSON library would buy little.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "apple/client.h"

namespace vppd::apple::internal {

// A kMalformedResponse error (HTTP 200) with this message.
AppleError Malformed(std::string message);

// Paging members of a page (spec §4).
struct PageMeta {
  std::int64_t current = -1;
  std::optional<std::int64_t> next;
  std::optional<std::int64_t> size;
  std::int64_t total = -1;
  std::string version_id;
  Envelope envelope;
};

// Holds the parser and the arena between pages, so a walk allocates its
// parsing memory once. Not thread-safe; one per walk.
class PageParser {
 public:
  PageParser();
  ~PageParser();
  PageParser(const PageParser&) = delete;
  PageParser& operator=(const PageParser&) = delete;

  AppleStatus Assets(std::string_view body, PageMeta* meta, std::vector<Asset>* items);
  AppleStatus Assignments(std::string_view body, PageMeta* meta, std::vector<Assignment>* items);
  AppleStatus Users(std::string_view body, PageMeta* meta, std::vector<User>* items);

 private:
  struct State;
  State* state_;
};

AppleResult<ServiceConfig> ParseServiceConfig(std::string_view body);
AppleResult<ClientConfig> ParseClientConfig(std::string_view body);
AppleResult<EventResponse> ParseEventResponse(std::string_view body);
AppleResult<EventStatus> ParseEventStatus(std::string_view body);
// Appends the results of one lookup answer.
AppleStatus ParseLookup(std::string_view body, std::vector<AppMetadata>* out);

// {"mdmInfo":{...}} and the ManageAssets/Revoke bodies.
std::string ClientConfigBody(const MdmInfo& mdm);
std::string ManageAssetsBody(const ManageAssetsRequest& request);
std::string RevokeBody(const std::vector<std::string>& client_user_ids, const std::vector<std::string>& serial_numbers);

}  // namespace vppd::apple::internal
