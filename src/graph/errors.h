// The one place where an Error becomes an HTTP status and a Graph error body (and
// where the HTTP server's own errors get the same body):
//   {"error":{"code","message","target"?,"innerError":{"date","request-id","client-request-id"}}}
#pragma once

#include "base/error.h"
#include "graph/graph.h"
#include "http/server.h"

namespace vppd::graph {

int HttpStatus(Code code);
// Graph's error code for `code`, unless the error carries its own graph_code.
const char* DefaultGraphCode(Code code);
// The response for `error`: its status, the envelope, WWW-Authenticate on 401 and
// Retry-After when the error has one. ServerErrorResponse (graph.h) writes the same
// envelope for the HTTP server's own answers.
http::Response ErrorResponse(const Error& error, const http::Request& request);

}  // namespace vppd::graph
