// The one error vocabulary of vppd.
//
// Every fallible function returns Result<T> (or Status for no value). Codes follow
// the canonical set (abseil/gRPC) and are turned into an HTTP status and a Graph
// error body in exactly one place: graph/errors.cc. Library failures (Boost, libcurl,
// SQLite, OpenSSL) are converted to Error at the adapter that calls the library;
// no exception crosses a module boundary.
//
//   Result<Token> t = store.GetToken(tenant, id);
//   if (!t) return tl::unexpected(t.error());
#pragma once

#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace vppd {

enum class Code {
  kInvalidArgument,       // 400: the request is malformed or names something invalid.
  kUnauthenticated,       // 401: no, bad or expired credentials.
  kPermissionDenied,      // 403: authenticated but not allowed.
  kNotFound,              // 404: no such object (or not visible to the caller).
  kMethodNotAllowed,      // 405: known resource, wrong HTTP method.
  kNotAcceptable,         // 406: the Accept header excludes every representation.
  kAlreadyExists,         // 409: create of something that exists.
  kFailedPrecondition,    // 409: the state of the object forbids the operation.
  kAborted,               // 412: a conditional write's expected version (If-Match) no longer holds.
  kPayloadTooLarge,       // 413
  kUnsupportedMediaType,  // 415
  kResourceExhausted,     // 429: quota or rate limit.
  kUnimplemented,         // 501
  kUnavailable,           // 503: transient, retry later.
  kDeadlineExceeded,      // 504
  kInternal,              // 500: a bug or a broken invariant.
};

// An error with a human-readable message. `target` names the offending thing
// (a property, a query option, a path segment) when there is one. Code says what
// went wrong; graph/errors.cc maps it to an HTTP status and a Graph error code.
// `graph_code` is for graph/ only: it overrides that mapping for an answer whose
// Graph code is not the code's own — the 404 of a path outside /beta and /v1.0, which
// Graph codes "BadRequest". The layers below never set it.
struct [[nodiscard]] Error {
  Code code = Code::kInternal;
  std::string message;
  std::string target;
  std::string graph_code;
  // When > 0, the client may retry after this many seconds (sent as Retry-After
  // on 429 and 503).
  int retry_after_seconds = 0;

  static Error InvalidArgument(std::string msg, std::string target = {}) {
    return {Code::kInvalidArgument, std::move(msg), std::move(target), {}, 0};
  }
  static Error Unauthenticated(std::string msg) { return {Code::kUnauthenticated, std::move(msg), {}, {}, 0}; }
  static Error PermissionDenied(std::string msg) { return {Code::kPermissionDenied, std::move(msg), {}, {}, 0}; }
  static Error NotFound(std::string msg, std::string target = {}) {
    return {Code::kNotFound, std::move(msg), std::move(target), {}, 0};
  }
  static Error AlreadyExists(std::string msg) { return {Code::kAlreadyExists, std::move(msg), {}, {}, 0}; }
  static Error FailedPrecondition(std::string msg) { return {Code::kFailedPrecondition, std::move(msg), {}, {}, 0}; }
  static Error Aborted(std::string msg) { return {Code::kAborted, std::move(msg), {}, {}, 0}; }
  static Error ResourceExhausted(std::string msg) { return {Code::kResourceExhausted, std::move(msg), {}, {}, 0}; }
  static Error Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg), {}, {}, 0}; }
  static Error Internal(std::string msg) { return {Code::kInternal, std::move(msg), {}, {}, 0}; }

  // Returns a copy with `graph_code` set, for graph/'s errors whose Graph code is specific.
  Error WithGraphCode(std::string gc) && {
    graph_code = std::move(gc);
    return std::move(*this);
  }
};

// tl::expected that may not be dropped: a call whose Result or Status is ignored
// does not compile (-Werror=unused-result). Write `(void)call();` where ignoring
// a failure is the intent, with a comment saying why.
template <class T, class E>
class [[nodiscard]] Expected : public tl::expected<T, E> {
  using Base = tl::expected<T, E>;

 public:
  using Base::Base;
  Expected() = default;
  Expected(const Base& other) : Base(other) {}        // NOLINT(google-explicit-constructor)
  Expected(Base&& other) : Base(std::move(other)) {}  // NOLINT(google-explicit-constructor)
};

template <class T>
using Result = Expected<T, Error>;
using Status = Expected<void, Error>;

inline tl::unexpected<Error> Fail(Error e) { return tl::unexpected<Error>(std::move(e)); }

// Short name of a code ("InvalidArgument"), for logs.
const char* CodeName(Code code);

}  // namespace vppd
