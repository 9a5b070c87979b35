#include "apple_errors.h"

#include <algorithm>

#include "json_writer.h"

namespace vppd::sim {

namespace {

struct Row {
  int number;
  int http;
  const char* message;
};

// Messages follow Apple's wording where Apple's tables give one (spec §6, from
// developer.apple.com …/handling-error-responses and the legacy errorCodes list).
constexpr Row kRows[] = {
    {9600, 400, "Missing required argument"},
    {9601, 401, "Login required"},
    {9602, 400, "Invalid argument"},
    {9603, 500, "Internal error"},
    {9609, 400, "Registered user not found"},
    {9610, 400, "License not found"},
    {9616, 400, "License already assigned"},
    {9619, 400, "License not associated"},
    {9624, 400, "License refunded"},
    {9621, 401,
     "Token has expired. You need to generate a new token online using your organization's account at "
     "https://school.apple.com or https://business.apple.com."},
    {9622, 401, "Invalid authentication token"},
    {9623, 400, "Invalid APNs token"},
    {9625, 401, "The server has revoked the sToken."},
    {9626, 400, "License assigned to another user"},
    {9627, 400, "Disassociation failed due to frequent reassociation"},
    {9628, 400, "License not eligible for device assignment"},
    {9634, 410, "This service is no longer available."},
    {9635, 400, "The Apple Account can't be associated with the user."},
    {9637, 403, "Facilitator accounts can't perform this operation."},
    {9641, 400, "The Apple Account is already associated with another user."},
    {9644, 400, "The service is in maintenance mode."},
    {9646, 429, "There are too many requests for the organization. Try again later."},
    {9647, 403, "This operation isn't supported for legacy tokens."},
    {9650, 400, "Invalid pageIndex value. It must be greater than 0, and less than the total number of pages."},
    {9700, 400, "Too many assets were requested."},
    {9701, 400, "Too many clientUserIds were requested."},
    {9702, 400, "Too many serialNumbers were requested."},
    {9703, 400, "Duplicate assets were requested."},
    {9704, 400, "Duplicate clientUserIds were requested."},
    {9705, 400, "Duplicate serialNumbers were requested."},
    {9706, 400, "The asset isn't revocable."},
    {9707, 400, "The asset isn't device-assignable."},
    {9708, 400, "The eventId wasn't found."},
    {9709, 400, "There aren't enough licenses available for the assets."},
    {9710, 400, "Both notificationUrl and notificationAuthToken are required."},
    {9711, 400, "The notificationUrl is too long."},
    {9712, 400, "The notificationUrl must use HTTPS and include a host and path."},
    {9713, 400, "The mdmInfo metadata is too long."},
    {9714, 400, "Too many users were requested."},
    {9715, 400, "Duplicate users were requested."},
    {9716, 400, "A registered user already exists for the clientUserId."},
    {9717, 400, "The email address is invalid."},
    {9718, 400, "No assets were specified."},
    {9719, 400, "Neither clientUserIds nor serialNumbers were specified."},
    {9720, 400, "No users were specified."},
    {9721, 400, "Invalid versionId."},
    {9722, 401, "The Authorization header must be of the form 'Bearer {sToken}'."},
    {9723, 400, "The mdmInfo name, id and metadata are all required."},
    {9724, 400, "The mdmInfo id is too long."},
    {9725, 400, "The mdmInfo name is too long."},
    {9726, 405, "Unsupported method."},
    {9727, 415, "Unsupported Content-Type."},
    {9728, 400, "The notificationUrl is unreachable."},
    {9729, 503, "The service is temporarily unavailable."},
};

const Row* FindRow(int number) {
  for (const Row& r : kRows)
    if (r.number == number) return &r;
  return nullptr;
}

}  // namespace

int AppleHttpStatus(int number) {
  const Row* r = FindRow(number);
  return r ? r->http : 400;
}

const char* AppleDefaultMessage(int number) {
  const Row* r = FindRow(number);
  return r ? r->message : "Error";
}

std::string ErrorResponseJson(const AppleError& error) {
  JsonWriter w;
  w.BeginObject();
  if (!error.error_info_json.empty()) {
    w.Key("errorInfo");
    w.Raw(error.error_info_json);
  }
  w.Field("errorMessage", error.message.empty() ? std::string_view(AppleDefaultMessage(error.number))
                                                : std::string_view(error.message));
  w.Field("errorNumber", error.number);
  w.EndObject();
  return std::move(w).Take();
}

const std::vector<ErrorCodeEntry>& AllErrorCodes() {
  static const std::vector<ErrorCodeEntry> all = [] {
    std::vector<ErrorCodeEntry> v;
    for (const Row& r : kRows) v.push_back({r.number, r.message});
    return v;
  }();
  return all;
}

}  // namespace vppd::sim
