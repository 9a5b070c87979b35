#include "base/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <memory>

#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "base/json_escape.h"
#include "base/terminal_text.h"

namespace vppd::log {
namespace {

thread_local Context* tls_context = nullptr;
// The extra fields of the line being logged by InfoFields on this thread. spdlog's
// synchronous sinks format on the calling thread, so the formatter sees them.
thread_local const std::vector<Field>* tls_fields = nullptr;

// "word: rest" with a lower-case word → (word, rest); otherwise ("", whole).
std::pair<std::string_view, std::string_view> SplitComponent(std::string_view message) {
  std::size_t i = 0;
  while (i < message.size() && i < 16 && message[i] >= 'a' && message[i] <= 'z') ++i;
  if (i == 0 || i + 1 >= message.size() || message[i] != ':' || message[i + 1] != ' ') return {{}, message};
  return {message.substr(0, i), message.substr(i + 2)};
}

void Append(spdlog::memory_buf_t& dest, std::string_view text) { dest.append(text.data(), text.data() + text.size()); }

// `text` escaped for a JSON string. Sanitized: a line stays valid UTF-8 without
// control bytes whatever a client sent; and the C1 controls JSON allows raw
// (U+0080..U+009F, CSI U+009B among them, all 0xc2-led) as \u0080..\u009f, for
// whoever tails the log on a terminal.
std::string Escaped(std::string_view text) {
  std::string out = JsonEscape(text, JsonEscaping::kSanitized);
  if (out.find('\xc2') != std::string::npos) out = TerminalSafe(out);
  return out;
}

// `"text"`, escaped.
void AppendQuoted(spdlog::memory_buf_t& dest, std::string_view text) {
  Append(dest, "\"");
  Append(dest, Escaped(text));
  Append(dest, "\"");
}

void AppendTime(spdlog::memory_buf_t& dest, std::chrono::system_clock::time_point time) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char buf[40];
  const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                              tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  dest.append(buf, buf + n);
}

// The fields of a line, context first, in a fixed order.
template <class Emit>
void ForEachField(const Context* ctx, const std::vector<Field>* extra, Emit&& emit) {
  if (ctx != nullptr) {
    const std::pair<const char*, const std::string*> members[] = {
        {"request_id", &ctx->request_id}, {"client_request_id", &ctx->client_request_id},
        {"tenant_id", &ctx->tenant_id},   {"job_id", &ctx->job_id},
        {"token_id", &ctx->token_id},
    };
    for (const auto& [key, value] : members) {
      if (!value->empty()) emit(std::string_view(key), std::string_view(*value), false);
    }
  }
  if (extra != nullptr) {
    for (const auto& f : *extra) emit(std::string_view(f.key), std::string_view(f.value), f.number);
  }
  // The route is the context's unless the line names its own.
  if (ctx != nullptr && !ctx->route.empty()) {
    bool own = false;
    if (extra != nullptr) {
      for (const auto& f : *extra) own = own || f.key == "route";
    }
    if (!own) emit(std::string_view("route"), std::string_view(ctx->route), false);
  }
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const Context* ctx = tls_context;
    auto [component, message] = SplitComponent(std::string_view(msg.payload.data(), msg.payload.size()));
    if (component.empty() && ctx != nullptr) component = ctx->component;
    Append(dest, "{\"time\":\"");
    AppendTime(dest, msg.time);
    Append(dest, "\",\"level\":\"");
    Append(dest, std::string_view(spdlog::level::to_string_view(msg.level).data(),
                                  spdlog::level::to_string_view(msg.level).size()));
    Append(dest, "\",\"logger\":\"");
    Append(dest, Escaped(std::string_view(msg.logger_name.data(), msg.logger_name.size())));
    Append(dest, "\",\"component\":\"");
    Append(dest, Escaped(component.empty() ? std::string_view("vppd") : component));
    Append(dest, "\",\"message\":\"");
    Append(dest, Escaped(message));
    Append(dest, "\"");
    ForEachField(ctx, tls_fields, [&](std::string_view key, std::string_view value, bool number) {
      Append(dest, ",\"");
      Append(dest, Escaped(key));
      Append(dest, "\":");
      if (number) {
        Append(dest, value);
      } else {
        AppendQuoted(dest, value);
      }
    });
    Append(dest, "}\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

// `2026-11-28T16:40:16.123Z info    http: listening on … request_id=…`: the message
// as written, then the fields as key=value (quoted when they hold spaces).
class TextFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    AppendTime(dest, msg.time);
    Append(dest, " ");
    const auto level = spdlog::level::to_string_view(msg.level);
    msg.color_range_start = dest.size();
    dest.append(level.data(), level.data() + level.size());
    msg.color_range_end = dest.size();
    for (std::size_t pad = level.size(); pad < 8; ++pad) dest.push_back(' ');  // "warning" + 1
    // Read on a terminal: no control character (C0, DEL, C1 such as CSI U+009B)
    // reaches it from a message or a field, whoever wrote them (base/terminal_text.h).
    Append(dest, TerminalSafe(std::string_view(msg.payload.data(), msg.payload.size())));
    ForEachField(tls_context, tls_fields, [&](std::string_view key, std::string_view value, bool) {
      Append(dest, " ");
      Append(dest, TerminalSafe(key));
      Append(dest, "=");
      if (value.find_first_of(" \"=") == std::string_view::npos && !value.empty()) {
        Append(dest, TerminalSafe(value));
      } else {
        // JSON-escaped already (C0, DEL, broken UTF-8); the C1 controls JSON allows
        // raw become \u0080..\u009f, which is their JSON escape too.
        Append(dest, "\"");
        Append(dest, TerminalSafe(Escaped(value)));
        Append(dest, "\"");
      }
    });
    Append(dest, "\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<TextFormatter>(); }
};

}  // namespace

Result<Format> ParseFormat(std::string_view name) {
  if (name == "text") return Format::kText;
  if (name == "json") return Format::kJson;
  return Fail(Error::InvalidArgument("log format must be json or text, not '" + std::string(name) + "'"));
}

void Init(Format format, std::string_view level) {
  std::shared_ptr<spdlog::sinks::sink> sink;
  if (format == Format::kJson) {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    sink->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    sink->set_formatter(std::make_unique<TextFormatter>());
  }
  auto logger = std::make_shared<spdlog::logger>("vppd", std::move(sink));
  logger->set_level(spdlog::level::from_str(std::string(level)));
  spdlog::set_default_logger(std::move(logger));
}

ContextScope::ContextScope(Context context) : context_(std::move(context)), previous_(tls_context) {
  tls_context = &context_;
}

ContextScope::~ContextScope() { tls_context = previous_; }

Context* Current() { return tls_context; }

void InfoFields(std::string_view message, std::vector<Field> fields) {
  const std::vector<Field>* previous = tls_fields;
  tls_fields = &fields;
  spdlog::info("{}", message);
  tls_fields = previous;
}

}  // namespace vppd::log
