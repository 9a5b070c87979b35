// JSON → typed results for apple::Client (internal to src/apple/).
//
// Every function fails with kMalformedResponse naming the member that is
// missing or of the wrong type; the caller fills in `request` and `attempts`.
//
// Two readers. /assignments pages — millions of rows in a large location, the
// hot path of a sync — are read by a strict JSON reader made for that one page
// shape (parse_assignments.cc): one pass over the body, assignments delivered
// as views of it. Everything else (assets, users, config, events: thousands of
// items, not millions) is read with Boost.JSON's DOM. Why, with the figures of
// every parser tried: bench/README.md, "apple".
//
// What the /assignments reader validates: all of RFC 8259, as Boost.JSON does
// (UTF-8 without overlongs or surrogates, escapes and \u surrogate pairs,
// numbers, literals, nothing after the document) with Boost.JSON's depth limit
// (32), members it does not read included; then the members read must have
// their type (a wrong type is an error, null means absent). A syntax error
// anywhere wins over a wrong type. Stricter than Boost.JSON only where no
// valid Apple page goes: an integer beyond 64 bits or a double that overflows
// anywhere in the page is refused. The fuzzer
// (tests/fuzz, apple_page) holds it to Boost.JSON's verdict both ways.
#pragma once

#include <cstdint>
#include <deque>
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
  AppleStatus Assets(std::string_view body, PageMeta* meta, std::vector<Asset>* items);
  // The items view `body` and, for the ids that are not in it as they read
  // (escaped, or sent as numbers), `decoded`, which the call appends to (a
  // deque: its strings stay where they are). Both must outlive the items.
  AppleStatus Assignments(std::string_view body, PageMeta* meta, std::vector<AssignmentRef>* items,
                          std::deque<std::string>* decoded);
  AppleStatus Users(std::string_view body, PageMeta* meta, std::vector<User>* items);

 private:
  struct State;  // parse.cc: Boost.JSON, assets and users (assignments need no state).
  State* state_;
};

AppleResult<ServiceConfig> ParseServiceConfig(std::string_view body);
AppleResult<ClientConfig> ParseClientConfig(std::string_view body);
AppleResult<EventResponse> ParseEventResponse(std::string_view body);
AppleResult<EventStatus> ParseEventStatus(std::string_view body);
// Appends the results of one lookup answer.
AppleStatus ParseLookup(std::string_view body, std::vector<AppMetadata>* out);

// {"mdmInfo":{...}} and the ManageAssets/Revoke bodies.
// With `notifications`: also notificationUrl, notificationAuthToken and notificationTypes.
std::string ClientConfigBody(const MdmInfo& mdm, const NotificationSettings* notifications = nullptr);
std::string ManageAssetsBody(const ManageAssetsRequest& request);
std::string RevokeBody(const std::vector<std::string>& client_user_ids, const std::vector<std::string>& serial_numbers);
// {"users": [{"clientUserId", "email"?, "managedAppleId"?}]} for users/create, update and retire.
std::string ManageUsersBody(const std::vector<ManagedUser>& users);

}  // namespace vppd::apple::internal
