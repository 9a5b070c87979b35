#include "graph/etag.h"

#include <charconv>

namespace vppd::graph {
namespace {

constexpr std::string_view kWhitespace = " \t";

bool IsIfMatch(std::string_view name) {
  constexpr std::string_view kName = "if-match";
  if (name.size() != kName.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i] >= 'A' && name[i] <= 'Z' ? static_cast<char>(name[i] - 'A' + 'a') : name[i];
    if (c != kName[i]) return false;
  }
  return true;
}

Error InvalidIfMatch() { return Error::InvalidArgument("The If-Match header contains an invalid value.", "If-Match"); }

// etagc (RFC 9110 §8.8.3): any visible character but DQUOTE, or obs-text.
bool IsETagChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == 0x21 || (u >= 0x23 && u <= 0x7e) || u >= 0x80;
}

// Adds the list `value` to `out`; false when it is not `*` or a list of entity-tags.
bool ReadField(std::string_view value, IfMatch& out) {
  bool any_element = false;
  while (true) {
    const std::size_t start = value.find_first_not_of(kWhitespace);
    value = start == std::string_view::npos ? std::string_view() : value.substr(start);
    if (value.empty()) break;
    if (value.front() == ',') {  // an empty list element, which #rule allows
      value.remove_prefix(1);
      continue;
    }
    any_element = true;
    if (value.front() == '*') {
      out.any = true;
      value.remove_prefix(1);
    } else {
      if (value.starts_with("W/")) value.remove_prefix(2);
      if (value.empty() || value.front() != '"') return false;
      const std::size_t close = value.find('"', 1);
      if (close == std::string_view::npos) return false;
      const std::string_view tag = value.substr(1, close - 1);
      for (char c : tag) {
        if (!IsETagChar(c)) return false;
      }
      std::int64_t version = 0;
      const auto [end, ec] = std::from_chars(tag.data(), tag.data() + tag.size(), version);
      if (!tag.empty() && ec == std::errc() && end == tag.data() + tag.size() && version > 0) {
        out.versions.push_back(version);
      } else {
        out.foreign = true;
      }
      value.remove_prefix(close + 1);
    }
    const std::size_t next = value.find_first_not_of(kWhitespace);
    if (next == std::string_view::npos) break;
    if (value[next] != ',') return false;
    value.remove_prefix(next + 1);
  }
  return any_element;
}

}  // namespace

std::string VppTokenETag(std::int64_t row_version) {
  char text[32] = "W/\"";  // on every token answered, twice for a single one: no temporaries
  char* end = std::to_chars(text + 3, text + sizeof text - 1, row_version).ptr;
  *end++ = '"';
  return std::string(text, end);
}

Result<IfMatch> ParseIfMatch(const std::vector<http::Header>& headers) {
  IfMatch out;
  for (const auto& [name, value] : headers) {
    if (!IsIfMatch(name)) continue;
    out.present = true;
    if (!ReadField(value, out)) return Fail(InvalidIfMatch());
  }
  if (out.any && (out.foreign || !out.versions.empty())) return Fail(InvalidIfMatch());  // `*` stands alone
  return out;
}

}  // namespace vppd::graph
