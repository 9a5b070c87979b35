#include "graph/errors.h"

#include "base/base.h"
#include "graph/json_writer.h"

namespace vppd::graph {

int HttpStatus(Code code) {
  switch (code) {
    case Code::kInvalidArgument:
      return 400;
    case Code::kUnauthenticated:
      return 401;
    case Code::kPermissionDenied:
      return 403;
    case Code::kNotFound:
      return 404;
    case Code::kMethodNotAllowed:
      return 405;
    case Code::kNotAcceptable:
      return 406;
    case Code::kAlreadyExists:
      return 409;
    case Code::kFailedPrecondition:
      return 409;
    case Code::kAborted:
      return 412;
    case Code::kPayloadTooLarge:
      return 413;
    case Code::kUnsupportedMediaType:
      return 415;
    case Code::kResourceExhausted:
      return 429;
    case Code::kUnimplemented:
      return 501;
    case Code::kUnavailable:
      return 503;
    case Code::kDeadlineExceeded:
      return 504;
    case Code::kInternal:
      return 500;
  }
  return 500;
}

const char* DefaultGraphCode(Code code) {
  switch (code) {
    case Code::kInvalidArgument:
      return "BadRequest";
    case Code::kUnauthenticated:
      return "InvalidAuthenticationToken";
    case Code::kPermissionDenied:
      return "Forbidden";
    case Code::kNotFound:
      return "ResourceNotFound";
    case Code::kMethodNotAllowed:
      return "MethodNotAllowed";
    case Code::kNotAcceptable:
      return "NotAcceptable";
    case Code::kAlreadyExists:
      return "Conflict";
    case Code::kFailedPrecondition:
      return "Conflict";
    case Code::kAborted:
      return "PreconditionFailed";
    case Code::kPayloadTooLarge:
      return "RequestEntityTooLarge";
    case Code::kUnsupportedMediaType:
      return "UnsupportedMediaType";
    case Code::kResourceExhausted:
      return "TooManyRequests";
    case Code::kUnimplemented:
      return "NotImplemented";
    case Code::kUnavailable:
      return "ServiceUnavailable";
    case Code::kDeadlineExceeded:
      return "GatewayTimeout";
    case Code::kInternal:
      return "InternalServerError";
  }
  return "InternalServerError";
}

namespace {

// The envelope itself, written straight into the body (no JSON tree), with the member
// names already quoted: every 401/404 is a Graph error, so this is a hot path too.
http::Response Envelope(int status, std::string_view code, std::string_view message, std::string_view target,
                        const http::Request& request) {
  std::string body;
  body.reserve(256 + message.size() + target.size());
  JsonWriter w(body);
  w.BeginObject();
  w.PreparedKey(R"("error":)");
  w.BeginObject();
  w.PreparedKey(R"("code":)");
  w.String(code);
  w.PreparedKey(R"("message":)");
  w.String(message);
  if (!target.empty()) {
    w.PreparedKey(R"("target":)");
    w.String(target);
  }
  w.PreparedKey(R"("innerError":)");
  w.BeginObject();
  // Graph's innerError date has no fractional seconds.
  const Timestamp now = Clock::Real().Now();
  w.PreparedKey(R"("date":)");
  w.String(FormatIso8601(now - now % 1'000'000));
  w.PreparedKey(R"("request-id":)");
  w.String(request.request_id);
  w.PreparedKey(R"("client-request-id":)");
  w.String(request.Header("client-request-id").value_or(request.request_id));
  w.EndObject();
  w.EndObject();
  w.EndObject();
  return http::Response::Json(status, std::move(body));
}

}  // namespace

http::Response ErrorResponse(const Error& error, const http::Request& request) {
  http::Response r =
      Envelope(HttpStatus(error.code),
               error.graph_code.empty() ? std::string_view(DefaultGraphCode(error.code)) : error.graph_code,
               error.message, error.target, request);
  if (error.code == Code::kUnauthenticated) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  if (error.retry_after_seconds > 0) r.headers.emplace_back("Retry-After", std::to_string(error.retry_after_seconds));
  return r;
}

http::Response ServerErrorResponse(const http::ServerError& error, const http::Request& request) {
  return Envelope(error.status, error.code, error.message, {}, request);
}

}  // namespace vppd::graph
