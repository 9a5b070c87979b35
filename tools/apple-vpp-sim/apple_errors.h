// Apple's error vocabulary for the v2 API (spec §6): numbers, the HTTP status
// each is returned with, and the ErrorResponse body
// `{"errorInfo"?, "errorMessage", "errorNumber"}`.
//
// This is the one place that turns an Apple error number into an HTTP response;
// handlers return AppleError values and never pick a status themselves.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vppd::sim {

// Error numbers the simulator produces (Apple's, spec §6.1/§6.2/§6.3).
enum AppleErrorNumber : int {
  kErrLoginRequired = 9601,
  kErrInvalidArgument = 9602,
  kErrInternal = 9603,
  kErrUserNotFound = 9609,
  kErrTokenExpired = 9621,
  kErrInvalidToken = 9622,
  kErrTokenRevoked = 9625,
  kErrAppleAccountAlreadyAssociated = 9641,  // accepting an invitation with an Apple Account another user holds
  kErrTooManyRequests = 9646,
  kErrBadPageIndex = 9650,
  kErrTooManyAssets = 9700,
  kErrTooManyClientUserIds = 9701,
  kErrTooManySerialNumbers = 9702,
  kErrDuplicateAssets = 9703,
  kErrDuplicateClientUserIds = 9704,
  kErrDuplicateSerialNumbers = 9705,
  kErrNotRevocable = 9706,
  kErrNotDeviceAssignable = 9707,
  kErrEventNotFound = 9708,
  kErrNotEnoughLicenses = 9709,
  kErrNotificationTokenRequired = 9710,
  kErrNotificationUrlTooLong = 9711,
  kErrNotificationUrlNotHttps = 9712,
  kErrMdmMetadataTooLong = 9713,
  kErrTooManyUsers = 9714,
  kErrDuplicateUsers = 9715,
  kErrUserExists = 9716,
  kErrInvalidEmail = 9717,
  kErrNoAssets = 9718,
  kErrNoSubjects = 9719,
  kErrNoUsers = 9720,
  kErrInvalidVersionId = 9721,
  kErrBadAuthorization = 9722,
  kErrMdmInfoIncomplete = 9723,
  kErrMdmIdTooLong = 9724,
  kErrMdmNameTooLong = 9725,
  kErrUnsupportedMethod = 9726,
  kErrUnsupportedContentType = 9727,
  kErrServiceUnavailable = 9729,
};

// An Apple error to answer with. `error_info_json`, when not empty, is the
// serialised errorInfo object.
struct AppleError {
  int number = kErrInternal;
  std::string message;  // Empty: the default message of `number`.
  std::string error_info_json;
};

// The HTTP status Apple uses for `number` (spec §6.1); 400 for numbers not in
// the table (the async-only ones never reach HTTP on their own).
int AppleHttpStatus(int number);
// Apple's message for `number` (one of its texts); "Error" for unknown numbers.
const char* AppleDefaultMessage(int number);
// `{"errorInfo":…,"errorMessage":"…","errorNumber":N}` (keys sorted like Apple's examples).
std::string ErrorResponseJson(const AppleError& error);

struct ErrorCodeEntry {
  int number;
  const char* message;
};
// Every number with its message, for service/config's `errorCodes`.
const std::vector<ErrorCodeEntry>& AllErrorCodes();

}  // namespace vppd::sim
