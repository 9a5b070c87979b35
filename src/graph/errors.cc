#include "graph/errors.h"

#include <boost/json.hpp>

#include "base/base.h"

namespace vppd::graph {

int HttpStatus(Code code) {
  switch (code) {
    case Code::kInvalidArgument: return 400;
    case Code::kUnauthenticated: return 401;
    case Code::kPermissionDenied: return 403;
    case Code::kNotFound: return 404;
    case Code::kMethodNotAllowed: return 405;
    case Code::kNotAcceptable: return 406;
    case Code::kAlreadyExists: return 409;
    case Code::kFailedPrecondition: return 409;
    case Code::kPayloadTooLarge: return 413;
    case Code::kUnsupportedMediaType: return 415;
    case Code::kResourceExhausted: return 429;
    case Code::kUnimplemented: return 501;
    case Code::kUnavailable: return 503;
    case Code::kDeadlineExceeded: return 504;
    case Code::kInternal: return 500;
  }
  return 500;
}

const char* DefaultGraphCode(Code code) {
  switch (code) {
    case Code::kInvalidArgument: return "BadRequest";
    case Code::kUnauthenticated: return "InvalidAuthenticationToken";
    case Code::kPermissionDenied: return "Forbidden";
    case Code::kNotFound: return "ResourceNotFound";
    case Code::kMethodNotAllowed: return "MethodNotAllowed";
    case Code::kNotAcceptable: return "NotAcceptable";
    case Code::kAlreadyExists: return "Conflict";
    case Code::kFailedPrecondition: return "Conflict";
    case Code::kPayloadTooLarge: return "RequestEntityTooLarge";
    case Code::kUnsupportedMediaType: return "UnsupportedMediaType";
    case Code::kResourceExhausted: return "TooManyRequests";
    case Code::kUnimplemented: return "NotImplemented";
    case Code::kUnavailable: return "ServiceUnavailable";
    case Code::kDeadlineExceeded: return "GatewayTimeout";
    case Code::kInternal: return "InternalServerError";
  }
  return "InternalServerError";
}

http::Response ErrorResponse(const Error& error, const http::Request& request) {
  boost::json::object inner;
  // Graph's innerError date has no fractional seconds.
  const Timestamp now = Clock::Real().Now();
  inner["date"] = FormatIso8601(now - now % 1'000'000);
  inner["request-id"] = request.request_id;
  inner["client-request-id"] = std::string(request.Header("client-request-id").value_or(request.request_id));
  boost::json::object err;
  err["code"] = error.graph_code.empty() ? DefaultGraphCode(error.code) : error.graph_code;
  err["message"] = error.message;
  if (!error.target.empty()) err["target"] = error.target;
  err["innerError"] = std::move(inner);
  boost::json::object body;
  body["error"] = std::move(err);
  http::Response r = http::Response::Json(HttpStatus(error.code), boost::json::serialize(body));
  if (error.code == Code::kUnauthenticated) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  if (error.retry_after_seconds > 0) r.headers.emplace_back("Retry-After", std::to_string(error.retry_after_seconds));
  return r;
}

}  // namespace vppd::graph
