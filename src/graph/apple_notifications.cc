// POST /apple/notifications/{locationKey}: the one route that is not Graph's. Apple
// POSTs its notifications here with its own bearer; service::NotificationReceiver
// checks the bearer, the body limit and the uId, and records the notification. The
// answer is 200 {"outcome":"recorded"|"duplicate"} once it is in the store, or the
// receiver's error in Graph's envelope (401, 400, 403, 413, 503: Apple retries
// whatever is not 2xx). Without a receiver the route answers 404. The Authorization
// header and the body are never logged; the access log names the template only.
#include "graph/api_impl.h"
#include "graph/errors.h"
#include "service/service.h"

namespace vppd::graph {

Result<http::Response> Api::Impl::AppleNotification(const Call& c) const {
  if (deps.notifications == nullptr) {
    return Fail(Error::NotFound("this vppd receives no Apple notifications"));
  }
  auto receipt =
      deps.notifications->Receive(c.id(), c.req.Header("Authorization").value_or(std::string_view{}), c.req.body);
  if (!receipt) return Fail(receipt.error());
  const char* outcome = *receipt == service::Receipt::kRecorded ? "recorded" : "duplicate";
  return http::Response::Json(200, std::string(R"({"outcome":")") + outcome + "\"}");
}

}  // namespace vppd::graph
