// JsonWriter: appends JSON text straight into a std::string.
//
// The simulator's hot path is serialising pages of up to a few thousand
// assignments; building a boost::json::value tree for each page and then
// serialising it costs several times more than writing the text directly, and
// direct writing also fixes the key order (Apple's examples list keys in
// alphabetical order; so do we, which keeps responses byte-identical across
// runs). Requests and the data file are still parsed with Boost.JSON.
//
//   JsonWriter w;
//   w.BeginObject();
//   w.Key("uId"); w.String("2049025000431439");
//   w.Key("size"); w.Int(3);
//   w.EndObject();
//   std::string body = std::move(w).Take();
//
// Strings go through vppd::AppendJsonString (base/json_escape.h; handlers call it
// directly too) in its standard mode: bytes >= 0x80 are copied as they are (the
// simulator only handles UTF-8 input it parsed itself).
//
// The writer inserts commas itself; it does not validate nesting (callers are
// the simulator's own handlers). Not thread-safe; one writer per response.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/json_escape.h"

namespace vppd::sim {

class JsonWriter {
 public:
  JsonWriter() { out_.reserve(256); }
  explicit JsonWriter(std::size_t reserve) { out_.reserve(reserve); }

  void BeginObject() {
    Separate();
    out_.push_back('{');
    first_.push_back(true);
  }
  void EndObject() {
    out_.push_back('}');
    first_.pop_back();
  }
  void BeginArray() {
    Separate();
    out_.push_back('[');
    first_.push_back(true);
  }
  void EndArray() {
    out_.push_back(']');
    first_.pop_back();
  }

  // Writes `"name":`; the next value call does not add a comma.
  void Key(std::string_view name) {
    Separate();
    AppendJsonString(out_, name);
    out_.push_back(':');
    after_key_ = true;
  }
  void String(std::string_view value) {
    Separate();
    AppendJsonString(out_, value);
  }
  void Int(std::int64_t value);
  void Bool(bool value) {
    Separate();
    out_ += value ? "true" : "false";
  }
  void Null() {
    Separate();
    out_ += "null";
  }
  // Inserts already-serialised JSON (a value) verbatim.
  void Raw(std::string_view json) {
    Separate();
    out_ += json;
  }

  // Key + value shorthands.
  void Field(std::string_view k, std::string_view v) {
    Key(k);
    String(v);
  }
  void Field(std::string_view k, const char* v) {
    Key(k);
    String(v);
  }
  void Field(std::string_view k, std::int64_t v) {
    Key(k);
    Int(v);
  }
  void Field(std::string_view k, int v) {
    Key(k);
    Int(v);
  }
  void Field(std::string_view k, bool v) {
    Key(k);
    Bool(v);
  }

  std::string& buffer() { return out_; }
  std::string Take() && { return std::move(out_); }

 private:
  void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back()) out_.push_back(',');
      first_.back() = false;
    }
  }

  std::string out_;
  std::vector<bool> first_;
  bool after_key_ = false;
};

}  // namespace vppd::sim
