// AppleError: classification of Apple's answers and conversion to vppd::Error.
#include <string>

#include "apple/client.h"
#include "apple/transport.h"

namespace vppd::apple {

const char* AppleErrorKindName(AppleErrorKind kind) {
  switch (kind) {
    case AppleErrorKind::kTokenExpired:
      return "TokenExpired";
    case AppleErrorKind::kTokenRevoked:
      return "TokenRevoked";
    case AppleErrorKind::kTokenInvalid:
      return "TokenInvalid";
    case AppleErrorKind::kRateLimited:
      return "RateLimited";
    case AppleErrorKind::kUnavailable:
      return "Unavailable";
    case AppleErrorKind::kValidation:
      return "Validation";
    case AppleErrorKind::kVersionIdInvalid:
      return "VersionIdInvalid";
    case AppleErrorKind::kTransport:
      return "Transport";
    case AppleErrorKind::kMalformedResponse:
      return "MalformedResponse";
    case AppleErrorKind::kAborted:
      return "Aborted";
    case AppleErrorKind::kInvalidArgument:
      return "InvalidArgument";
  }
  return "Unknown";
}

std::string AppleError::Describe() const {
  std::string s = "Apple";
  if (!request.empty()) s += " " + request;
  s += ": ";
  if (kind == AppleErrorKind::kAborted && cause) return s + "aborted by the page handler: " + cause->message;
  std::string sep;
  if (http_status != 0) {
    s += "HTTP " + std::to_string(http_status);
    sep = ", ";
  }
  if (error_number != 0) {
    s += sep + "errorNumber " + std::to_string(error_number);
    if (!error_message.empty()) s += " (" + error_message + ")";
  } else if (!error_message.empty()) {
    s += sep + error_message;
  } else if (sep.empty()) {
    s += AppleErrorKindName(kind);
  }
  if (!error_info.empty()) s += " errorInfo " + error_info.substr(0, 512);
  if (retry_after.count() > 0) s += ", Retry-After " + std::to_string(retry_after.count()) + " s";
  if (attempts > 1) s += ", after " + std::to_string(attempts) + " attempts";
  return s;
}

Error AppleError::ToError() const {
  std::string msg = Describe();
  switch (kind) {
    case AppleErrorKind::kTokenExpired:
    case AppleErrorKind::kTokenRevoked:
    case AppleErrorKind::kTokenInvalid:
    case AppleErrorKind::kVersionIdInvalid:
      return Error::FailedPrecondition(std::move(msg));
    case AppleErrorKind::kRateLimited:
      return Error::ResourceExhausted(std::move(msg));
    case AppleErrorKind::kValidation:
    case AppleErrorKind::kInvalidArgument:
      return Error::InvalidArgument(std::move(msg));
    case AppleErrorKind::kTransport:
      if (error_message.rfind("timed out", 0) == 0) return Error{Code::kDeadlineExceeded, std::move(msg), {}, {}};
      return Error::Unavailable(std::move(msg));
    case AppleErrorKind::kUnavailable:
    case AppleErrorKind::kMalformedResponse:
      return Error::Unavailable(std::move(msg));
    case AppleErrorKind::kAborted:
      if (cause) return *cause;
      return Error::Internal(std::move(msg));
  }
  return Error::Internal(std::move(msg));
}

namespace internal {

AppleErrorKind KindFor(int error_number, long http_status) {
  switch (error_number) {
    case 9621:
      return AppleErrorKind::kTokenExpired;
    case 9625:
      return AppleErrorKind::kTokenRevoked;
    case 9601:
    case 9622:
    case 9722:
      return AppleErrorKind::kTokenInvalid;
    case 9646:
      return AppleErrorKind::kRateLimited;
    case 9603:  // "Internal error": Apple's list says resend.
    case 9729:
      return AppleErrorKind::kUnavailable;
    case 9721:
      return AppleErrorKind::kVersionIdInvalid;
    default:
      break;
  }
  if (http_status == 429) return AppleErrorKind::kRateLimited;
  if (http_status >= 500) return AppleErrorKind::kUnavailable;
  if (error_number == 0 && http_status == 401) return AppleErrorKind::kTokenInvalid;
  if (error_number == 0 && (http_status < 400 || http_status > 499)) return AppleErrorKind::kMalformedResponse;
  return AppleErrorKind::kValidation;
}

}  // namespace internal
}  // namespace vppd::apple
