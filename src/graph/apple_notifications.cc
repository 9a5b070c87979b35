#include "graph/apple_notifications.h"

#include "graph/errors.h"
#include "service/service.h"

namespace vppd::graph {

http::Response AppleNotificationResponse(service::NotificationReceiver* receiver, const http::Request& request,
                                         const std::string& location_key) {
  if (receiver == nullptr) {
    return ErrorResponse(Error::NotFound("this vppd receives no Apple notifications"), request);
  }
  auto receipt =
      receiver->Receive(location_key, request.Header("Authorization").value_or(std::string_view{}), request.body);
  if (!receipt) return ErrorResponse(receipt.error(), request);
  const char* outcome = *receipt == service::Receipt::kRecorded ? "recorded" : "duplicate";
  return http::Response::Json(200, std::string(R"({"outcome":")") + outcome + "\"}");
}

}  // namespace vppd::graph
