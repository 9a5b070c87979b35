// Internal to graph/: the one route that is not Graph's — Apple's notifications.
#pragma once

#include <string>

#include "http/server.h"

namespace vppd::service {
class NotificationReceiver;
}

namespace vppd::graph {

// POST /apple/notifications/{locationKey}: hands the request to the receiver
// (service::NotificationReceiver: bearer, body limit, uId, de-duplication) and
// answers 200 {"outcome":"recorded"|"duplicate"} once the notification is in the
// store, or the receiver's error in Graph's envelope (401, 400, 403, 413, 503:
// Apple retries whatever is not 2xx). A null receiver answers 404. Never logs
// the Authorization header or the body.
http::Response AppleNotificationResponse(service::NotificationReceiver* receiver, const http::Request& request,
                                         const std::string& location_key);

}  // namespace vppd::graph
