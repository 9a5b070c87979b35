// JSON → typed results for apple::Client (internal to src/apple/).
//
// Every function fails with kMalformedResponse naming the member that is
// missing or of the wrong type; the caller fills in `request` and `attempts`.
//
// Parser choice (measured with bench/apple/run, 93 KB pages of 1,000
// assignments, on the 2-core dev machine): Boost.JSON's DOM parser over a
// reused arena took 0.59 ms a page (~160 MB/s, conversion included) and was the
// larger half of a 1,000,000-assignment walk. /assignments — the hot path — is
// therefore read by a SAX handler on boost::json::basic_parser straight into
// Assignment structs: 0.14 ms a page (~650 MB/s). Assets and users (thousands,
// not millions) keep the simpler DOM code. simdjson On-Demand is not adopted
// yet: a standalone test on the same page, filling the same structs, took
// ~0.07-0.10 ms against this handler's ~0.11-0.15 ms (bench/README.md
// "apple"): ~0.05 s per million assignments, for a new package, input padding
// and On-Demand's lazier validation of the members it skips to reconcile with
// this handler's errors.
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

  // Each fills `items` with the page's items, replacing what it held.
  // Assignments reuses the elements `items` still holds (their strings keep
  // their buffers), so a walk that hands back delivered pages' vectors stops
  // allocating per assignment after its first pages.
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
