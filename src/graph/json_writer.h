// JsonWriter: appends JSON text straight to a std::string. Internal to graph/.
//
// The hot responses (a vppToken, the Graph error envelope) are written with it
// instead of building a boost::json::object and serialising it: the tree costs an
// allocation per member and a hashed insert per key, then a second pass to print
// it (measured: a third of a vppToken read's handler time; bench/README.md "api").
// Strings are escaped by base/json_escape.h as boost::json::serialize escapes them,
// so the output is the same text either way.
//
//   std::string body;
//   JsonWriter w(body);
//   w.BeginObject();
//   w.Key("id");
//   w.String(id);
//   w.EndObject();
//
// The writer inserts the commas; it does not check the nesting (a Key outside an
// object is the caller's bug), which keeps each call a few appends.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/json_escape.h"

namespace vppd::graph {

class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  void BeginObject() { Open('{'); }
  void EndObject() { Close('}'); }
  void BeginArray() { Open('['); }
  void EndArray() { Close(']'); }

  // A member name; the next call writes its value.
  void Key(std::string_view name) {
    Separate();
    AppendJsonString(out_, name);
    out_ += ':';
    comma_ = false;
  }

  // A member name quoted once beforehand by QuotedKey (`"name":`) and appended as
  // it is: the property tables of the hot responses prepare theirs, so a
  // vppToken's ~25 names are not escaped again on every read.
  void PreparedKey(std::string_view quoted) {
    Separate();
    out_ += quoted;
    comma_ = false;
  }
  static std::string QuotedKey(std::string_view name) {
    std::string quoted;
    AppendJsonString(quoted, name);
    quoted += ':';
    return quoted;
  }
  void String(std::string_view s) {
    Separate();
    AppendJsonString(out_, s);
    comma_ = true;
  }
  void Int(std::int64_t v) {
    Separate();
    char buf[24];
    char* end = buf + sizeof buf;
    char* p = end;
    // Digits of the magnitude, computed unsigned so INT64_MIN does not overflow.
    std::uint64_t u = v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
    do {
      *--p = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u != 0);
    if (v < 0) *--p = '-';
    out_.append(p, static_cast<std::size_t>(end - p));
    comma_ = true;
  }
  void Bool(bool v) {
    Separate();
    out_ += v ? "true" : "false";
    comma_ = true;
  }
  void Null() {
    Separate();
    out_ += "null";
    comma_ = true;
  }
  // An already serialised JSON value (an array or object from elsewhere).
  void Raw(std::string_view json) {
    Separate();
    out_ += json;
    comma_ = true;
  }

 private:
  void Separate() {
    if (comma_) out_ += ',';
  }
  void Open(char c) {
    Separate();
    out_ += c;
    comma_ = false;
  }
  void Close(char c) {
    out_ += c;
    comma_ = true;
  }

  std::string& out_;
  bool comma_ = false;  // a value precedes: the next key or element needs a ','
};

}  // namespace vppd::graph
