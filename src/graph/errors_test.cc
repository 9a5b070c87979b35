// errors.cc: the one mapping from Code to HTTP status and Graph code, and the one
// Graph error envelope, for the handlers' errors and the HTTP server's own.
#include "graph/errors.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "graph/graph.h"

namespace vppd::graph {
namespace {

namespace json = boost::json;

http::Request RequestWithIds(std::string client_request_id) {
  http::Request r;
  r.method = "GET";
  r.target = "/beta/x";
  r.request_id = "5a0e1c2d-0000-4000-8000-000000000001";
  if (!client_request_id.empty()) r.headers.emplace_back("client-request-id", std::move(client_request_id));
  return r;
}

TEST(Errors, EveryCodeHasOneStatusAndGraphCode) {
  const struct {
    Code code;
    int status;
    const char* graph_code;
  } kTable[] = {
      {Code::kInvalidArgument, 400, "BadRequest"},
      {Code::kUnauthenticated, 401, "InvalidAuthenticationToken"},
      {Code::kPermissionDenied, 403, "Forbidden"},
      {Code::kNotFound, 404, "ResourceNotFound"},
      {Code::kMethodNotAllowed, 405, "MethodNotAllowed"},
      {Code::kNotAcceptable, 406, "NotAcceptable"},
      {Code::kAlreadyExists, 409, "Conflict"},
      {Code::kFailedPrecondition, 409, "Conflict"},
      {Code::kAborted, 412, "PreconditionFailed"},
      {Code::kPayloadTooLarge, 413, "RequestEntityTooLarge"},
      {Code::kUnsupportedMediaType, 415, "UnsupportedMediaType"},
      {Code::kResourceExhausted, 429, "TooManyRequests"},
      {Code::kUnimplemented, 501, "NotImplemented"},
      {Code::kUnavailable, 503, "ServiceUnavailable"},
      {Code::kDeadlineExceeded, 504, "GatewayTimeout"},
      {Code::kInternal, 500, "InternalServerError"},
  };
  for (const auto& row : kTable) {
    // What the service returns: a code, a message, a target; no Graph code.
    const Error error{row.code, "what went wrong", "thing", {}};
    const http::Response r = ErrorResponse(error, RequestWithIds(""));
    EXPECT_EQ(r.status, row.status) << CodeName(row.code);
    const json::object body = json::parse(r.body).as_object();
    const json::object& e = body.at("error").as_object();
    EXPECT_EQ(e.at("code").as_string(), row.graph_code) << CodeName(row.code);
    EXPECT_EQ(e.at("message").as_string(), "what went wrong");
    EXPECT_EQ(e.at("target").as_string(), "thing");
  }
}

TEST(Errors, AGraphCodeOverridesTheMapping) {
  const http::Response r =
      ErrorResponse(Error::NotFound("Invalid version.").WithGraphCode("BadRequest"), RequestWithIds(""));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(json::parse(r.body).at("error").at("code").as_string(), "BadRequest");
}

TEST(Errors, HeadersFollowTheCode) {
  const http::Response unauthenticated = ErrorResponse(Error::Unauthenticated("no"), RequestWithIds(""));
  EXPECT_EQ(http::FindHeader(unauthenticated.headers, "WWW-Authenticate"), "Bearer");
  Error throttled = Error::ResourceExhausted("slow down");
  throttled.retry_after_seconds = 7;
  const http::Response r = ErrorResponse(throttled, RequestWithIds(""));
  EXPECT_EQ(http::FindHeader(r.headers, "Retry-After"), "7");
  EXPECT_FALSE(http::FindHeader(r.headers, "WWW-Authenticate"));
}

// The HTTP server's own answers get the same envelope, client-request-id included.
TEST(Errors, ServerErrorsGetTheSameEnvelope) {
  const http::Request request = RequestWithIds("c-42");
  const http::Response own = ServerErrorResponse({413, "requestEntityTooLarge", "Too large."}, request);
  const http::Response handler = ErrorResponse(Error{Code::kPayloadTooLarge, "Too large.", {}, {}}, request);
  EXPECT_EQ(own.status, 413);
  EXPECT_EQ(http::FindHeader(own.headers, "Content-Type"), http::FindHeader(handler.headers, "Content-Type"));
  const json::object body = json::parse(own.body).as_object();
  const json::object& e = body.at("error").as_object();
  EXPECT_EQ(e.at("code").as_string(), "requestEntityTooLarge");
  EXPECT_EQ(e.at("message").as_string(), "Too large.");
  EXPECT_FALSE(e.contains("target"));
  const json::object& inner = e.at("innerError").as_object();
  EXPECT_EQ(inner.at("request-id").as_string(), request.request_id);
  EXPECT_EQ(inner.at("client-request-id").as_string(), "c-42");
  EXPECT_TRUE(inner.contains("date"));
  // The same members, in the same order, as a handler's error.
  const json::value handler_body = json::parse(handler.body);
  const json::object& other = handler_body.at("error").at("innerError").as_object();
  ASSERT_EQ(inner.size(), other.size());
  for (auto a = inner.begin(), b = other.begin(); a != inner.end(); ++a, ++b) EXPECT_EQ(a->key(), b->key());
  // Without a client-request-id, Graph repeats the request-id.
  const http::Response bare = ServerErrorResponse({503, "serviceUnavailable", "Busy."}, RequestWithIds(""));
  EXPECT_EQ(json::parse(bare.body).at("error").at("innerError").at("client-request-id").as_string(),
            "5a0e1c2d-0000-4000-8000-000000000001");
}

}  // namespace
}  // namespace vppd::graph
