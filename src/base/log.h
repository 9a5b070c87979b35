// Log lines: text for a person at a terminal, or one JSON object per line for a
// log pipeline, with the request or job they belong to.
//
// Code logs with spdlog as before (`spdlog::info("store: opened {}", path)`); Init
// installs the process logger whose formatter adds what the message cannot know:
//
//   {"time":"2026-11-28T16:40:16.123Z","level":"info","logger":"vppd","component":"http",
//    "message":"GET beta/vppTokens/{id} 200","request_id":"…","tenant_id":"…", "status":200, …}
//
// - `component` is the message's "word: " prefix (http, auth, store, apple, sync…),
//   which JSON lines drop from `message`; without one, the ambient Context's.
// - The ambient Context is per thread: the HTTP server sets one (request_id,
//   client_request_id) around each handler call, the handler adds what it learns
//   (route, tenant_id), the sync workers set one per job (job_id, token_id, tenant_id).
//   Every line logged on that thread meanwhile carries those fields.
// - LogFields adds fields to one line (the access line: method, route, status,
//   duration_ms).
//
// Never pass secrets (sTokens, bearer tokens, keys) to a log line or a Context:
// nothing here can tell them apart from other strings.
//
// Thread-safety: Init once at startup, before other threads log. Contexts are
// thread-local; LogFields may be called from any thread.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace vppd::log {

enum class Format { kText, kJson };

// "text" or "json"; InvalidArgument naming the value otherwise.
Result<Format> ParseFormat(std::string_view name);

// Makes the process logger write `format` lines to stderr at `level` ("trace",
// "debug", "info", "warn", "error"; anything else is info). Text lines are coloured
// when stderr is a terminal.
void Init(Format format, std::string_view level);

// The fields every line logged on this thread carries while a ContextScope lives.
// Empty members are left out of the line.
struct Context {
  // (`{}` initializers: designated initializers may name only some members.)
  std::string component{};  // used when the message has no "word: " prefix
  std::string request_id{};
  std::string client_request_id{};
  std::string route{};  // the route template, never the raw target (queries may hold anything)
  std::string tenant_id{};
  std::string job_id{};
  std::string token_id{};
};

// Installs `context` on this thread for the scope's life and restores the one it
// replaced (scopes nest). Not movable: it must die on the thread that made it.
class ContextScope {
 public:
  explicit ContextScope(Context context);
  ~ContextScope();
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  Context context_;
  Context* previous_;
};

// This thread's innermost context (to add fields to, or to copy into a scope on
// another thread); nullptr outside any scope.
Context* Current();

// A field of one line. Numbers are written unquoted in JSON.
struct Field {
  std::string key;
  std::string value;
  bool number = false;
};
inline Field Str(std::string key, std::string value) { return {std::move(key), std::move(value), false}; }
inline Field Num(std::string key, double value) {
  std::string text = std::to_string(value);
  while (text.size() > 1 && text.back() == '0') text.pop_back();
  if (!text.empty() && text.back() == '.') text.pop_back();
  return {std::move(key), std::move(text), true};
}
inline Field Num(std::string key, long long value) { return {std::move(key), std::to_string(value), true}; }

// Logs `message` at info with `fields` added to this line only.
void InfoFields(std::string_view message, std::vector<Field> fields);

}  // namespace vppd::log
