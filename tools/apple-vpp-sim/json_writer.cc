#include "json_writer.h"

#include <charconv>

namespace vppd::sim {

void JsonWriter::Int(std::int64_t value) {
  Separate();
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  (void)ec;  // 24 bytes always hold an int64.
  out_.append(buf, end);
}

}  // namespace vppd::sim
