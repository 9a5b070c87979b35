// JSON → typed results for apple::Client (internal to src/apple/).
//
// Every function fails with kMalformedResponse naming the member that is
// missing or of the wrong type; the caller fills in `request` and `attempts`.
//
// Parser choice (measured with bench/apple/run, 93 KB pages of 1,000
// assignments, on the 2-core dev machine; bench/README.md "apple"): Boost.JSON's
// DOM parser over a reused arena took 0.59 ms a page and was the larger half of
// a 1,000,000-assignment walk; a SAX handler on boost::json::basic_parser
// straight into Assignment structs 0.11-0.14 ms. /assignments — the hot path —
// is now read with simdjson's DOM parser (parse_assignments.cc, the only file
// that includes simdjson): ~0.05 ms. Not simdjson On-Demand, which was tried
// first: Debian's libsimdjson picks its SIMD kernel at run time only for the
// parts compiled into the library (the DOM parser, On-Demand's first stage);
// On-Demand's second stage is compiled into the caller for the baseline x86-64
// target (simdjson's scalar "fallback"; building vppd for AVX2 would make the
// package unportable), and took ~0.10 ms on the same page, with validation
// left to do by hand for the members it skips. Assets and users (thousands,
// not millions) keep the simpler Boost.JSON DOM code.
//
// What the /assignments reader validates: simdjson's DOM parser checks the
// whole body as Boost.JSON did (UTF-8, escapes, numbers, literals, nothing
// after the document), with Boost.JSON's depth limit (32); then the members
// read must have their type (a wrong type is an error, null means absent).
// Stricter than the SAX handler, in ways no valid Apple page meets: an integer
// beyond 64 bits or a double out of range anywhere in the page (simdjson 3.0
// cannot represent them; Boost.JSON read them as doubles), a non-object in the
// `assignments` array, and a `versionId`, `uId`, `mdmInfo`, `assignments` or
// `tokenExpirationDate` of the wrong type (the SAX handler skipped those).
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
  //
  // `spare`: how many bytes after the body may be read (a std::string's
  // capacity() - size(); transport.cc leaves kBodyPadding). simdjson reads up
  // to 64 bytes past the end, so with fewer Assignments copies the body into a
  // padded buffer first; the other two ignore it.
  AppleStatus Assets(std::string_view body, PageMeta* meta, std::vector<Asset>* items, std::size_t spare = 0);
  AppleStatus Assignments(std::string_view body, PageMeta* meta, std::vector<Assignment>* items, std::size_t spare = 0);
  AppleStatus Users(std::string_view body, PageMeta* meta, std::vector<User>* items, std::size_t spare = 0);

 private:
  struct State;  // parse.cc: Boost.JSON, assets and users.
  struct Simd;   // parse_assignments.cc: simdjson, assignments.
  static void Delete(Simd* p);
  State* state_;
  Simd* simd_ = nullptr;  // Made at the first /assignments page.
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
