// The one place where an Error becomes an HTTP status and a Graph error body:
//   {"error":{"code","message","target"?,"innerError":{"date","request-id","client-request-id"}}}
#pragma once

#include "base/error.h"
#include "http/server.h"

namespace vppd::graph {

int HttpStatus(Code code);
// Graph's error code for `code`, unless the error carries its own graph_code.
const char* DefaultGraphCode(Code code);
http::Response ErrorResponse(const Error& error, const http::Request& request);

}  // namespace vppd::graph
