// /assignments pages → PageMeta and Assignment structs with simdjson On-Demand
// (the hot path of a sync; why simdjson and what it validates: parse.h).
//
// simdjson stays in this file: its header is ~1 MB and must not reach any
// other translation unit.
#include <simdjson.h>

#include <cstring>

#include "apple/parse.h"
#include "apple/transport.h"

namespace vppd::apple::internal {

// transport.cc leaves kBodyPadding spare bytes after every body so that pages
// are parsed in place, not copied.
static_assert(kBodyPadding >= simdjson::SIMDJSON_PADDING);

namespace {

namespace od = simdjson::ondemand;

// Boost.JSON's default depth limit, which the SAX parser before this one
// enforced: a deeper page is refused rather than walked recursively.
constexpr int kMaxDepth = 32;

// The member names read, recognised once per key.
enum class Key : unsigned char {
  kOther,
  kAdamId,
  kPricingParam,
  kClientUserId,
  kSerialNumber,
  kCurrentPageIndex,
  kNextPageIndex,
  kSize,
  kTotalPages,
  kVersionId,
  kUId,
  kTokenExpirationDate,
  kMdmInfo,
  kAssignments,
};

Key TopKey(std::string_view k) {
  static constexpr std::pair<std::string_view, Key> kKeys[] = {
      {"assignments", Key::kAssignments},
      {"currentPageIndex", Key::kCurrentPageIndex},
      {"nextPageIndex", Key::kNextPageIndex},
      {"size", Key::kSize},
      {"totalPages", Key::kTotalPages},
      {"versionId", Key::kVersionId},
      {"uId", Key::kUId},
      {"tokenExpirationDate", Key::kTokenExpirationDate},
      {"mdmInfo", Key::kMdmInfo},
  };
  for (const auto& [name, key] : kKeys)
    if (k == name) return key;
  return Key::kOther;
}

// An assignment's members, by length first: this runs 3-4 times per item.
Key ItemKey(std::string_view k) {
  switch (k.size()) {
    case 6: return k == "adamId" ? Key::kAdamId : Key::kOther;
    case 12:
      if (k == "pricingParam") return Key::kPricingParam;
      if (k == "clientUserId") return Key::kClientUserId;
      if (k == "serialNumber") return Key::kSerialNumber;
      return Key::kOther;
    default: return Key::kOther;
  }
}

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// One page's read. Every method returns false with `error` set on the first
// problem; the page is then refused as a whole.
class Reader {
 public:
  Reader(PageMeta* meta, std::vector<Assignment>* items) : meta_(meta), items_(items) {}

  std::string error;
  std::size_t count = 0;  // Items of this page so far: (*items_)[0, count).
  bool have_current = false, have_total = false, have_version = false;

  bool Page(od::parser& parser, simdjson::padded_string_view body) {
    od::document doc;
    if (auto e = parser.iterate(body).get(doc)) return NotJson(e);
    od::json_type type;
    if (auto e = doc.type().get(type)) return NotJson(e);
    if (type != od::json_type::object) return Fail("the response is not a JSON object");
    od::object top;
    if (auto e = doc.get_object().get(top)) return NotJson(e);
    for (auto member : top) {
      od::field f;
      std::string_view key;
      if (auto e = std::move(member).get(f)) return NotJson(e);
      if (auto e = f.unescaped_key().get(key)) return NotJson(e);
      if (!TopMember(TopKey(key), key, f.value())) return false;
    }
    // Nothing may follow the object (On-Demand stops reading where the
    // document's object ends; `{...}}` would otherwise pass).
    if (auto end = doc.current_location(); end.error() != simdjson::OUT_OF_BOUNDS)
      return Fail("the response is not JSON: content after the document");
    return true;
  }

 private:
  bool Fail(std::string what) {
    error = std::move(what);
    return false;
  }
  bool NotJson(simdjson::error_code e) { return Fail(std::string("the response is not JSON: ") + simdjson::error_message(e)); }

  bool TopMember(Key k, std::string_view key, od::value v) {
    switch (k) {
      case Key::kAssignments: return Items(v);
      case Key::kCurrentPageIndex: return Integer(v, key, &meta_->current, &have_current);
      case Key::kTotalPages: return Integer(v, key, &meta_->total, &have_total);
      case Key::kNextPageIndex: {
        std::int64_t n = 0;
        bool present = false;
        if (!Integer(v, key, &n, &present)) return false;
        if (present) meta_->next = n;
        return true;
      }
      case Key::kSize: {
        std::int64_t n = 0;
        bool present = false;
        if (!Integer(v, key, &n, &present)) return false;
        if (present) meta_->size = n;
        return true;
      }
      case Key::kVersionId: {
        bool present = false;
        if (!Id(v, key, &meta_->version_id, &present)) return false;
        if (present) have_version = !meta_->version_id.empty();
        return true;
      }
      case Key::kUId: return Id(v, key, &meta_->envelope.uid, nullptr);
      case Key::kTokenExpirationDate: {
        std::string text;
        bool present = false;
        if (!String(v, key, &text, &present)) return false;
        if (!present) return true;
        auto t = ParseIso8601(text);
        if (!t) return Fail("'tokenExpirationDate' is not a date: " + t.error().message);
        meta_->envelope.token_expiration = *t;
        return true;
      }
      case Key::kMdmInfo: return Mdm(v);
      default: return Skip(v, 1);
    }
  }

  // A paging integer; null means absent (`*present` stays false).
  bool Integer(od::value v, std::string_view key, std::int64_t* out, bool* present) {
    od::json_type type;
    if (auto e = v.type().get(type)) return NotJson(e);
    if (type == od::json_type::null) return Null(v);
    if (type != od::json_type::number) return Fail("'" + std::string(key) + "' is not an integer");
    od::number n;
    if (auto e = v.get_number().get(n)) return NotJson(e);
    switch (n.get_number_type()) {
      case od::number_type::signed_integer: *out = n.get_int64(); break;
      case od::number_type::unsigned_integer: return Fail("'" + std::string(key) + "' is out of range");
      default: return Fail("'" + std::string(key) + "' is not an integer");
    }
    *present = true;
    return true;
  }

  // A string member; null means absent.
  bool String(od::value v, std::string_view key, std::string* out, bool* present) {
    od::json_type type;
    if (auto e = v.type().get(type)) return NotJson(e);
    if (type == od::json_type::null) return Null(v);
    if (type != od::json_type::string) return Fail("'" + std::string(key) + "' is not a string");
    std::string_view s;
    if (auto e = v.get_string().get(s)) return NotJson(e);
    out->assign(s);
    *present = true;
    return true;
  }

  // An id: a string, or an integer taken as its text (older services sent
  // some ids as numbers); null means absent. `present` may be null.
  bool Id(od::value v, std::string_view key, std::string* out, bool* present) {
    od::json_type type;
    if (auto e = v.type().get(type)) return NotJson(e);
    if (type == od::json_type::string) {
      std::string_view s;
      if (auto e = v.get_string().get(s)) return NotJson(e);
      out->assign(s);
    } else if (type == od::json_type::number) {
      // The token's text as sent (raw_json_token does not consume the value;
      // it includes the whitespace up to the next token).
      const std::string_view raw = v.raw_json_token();
      od::number n;
      if (auto e = v.get_number().get(n)) return NotJson(e);
      if (n.get_number_type() == od::number_type::unsigned_integer)
        return Fail("'" + std::string(key) + "' is out of range");
      if (n.get_number_type() != od::number_type::signed_integer)
        return Fail("'" + std::string(key) + "' is not a string");
      out->assign(TrimRight(raw));
    } else if (type == od::json_type::null) {
      return Null(v);
    } else {
      return Fail("'" + std::string(key) + "' is not a string");
    }
    if (present) *present = true;
    return true;
  }

  bool Null(od::value v) {
    bool is_null = false;
    if (auto e = v.is_null().get(is_null)) return NotJson(e);
    if (!is_null) return NotJson(simdjson::N_ATOM_ERROR);
    return true;
  }

  bool Mdm(od::value v) {
    od::json_type type;
    if (auto e = v.type().get(type)) return NotJson(e);
    if (type == od::json_type::null) return Null(v);
    if (type != od::json_type::object) return Fail("'mdmInfo' is not an object");
    od::object o;
    if (auto e = v.get_object().get(o)) return NotJson(e);
    MdmInfo& m = meta_->envelope.mdm_info.emplace();
    for (auto member : o) {
      od::field f;
      std::string_view key;
      if (auto e = std::move(member).get(f)) return NotJson(e);
      if (auto e = f.unescaped_key().get(key)) return NotJson(e);
      bool ok;
      if (key == "id") ok = Id(f.value(), "mdmInfo.id", &m.id, nullptr);
      else if (key == "name") ok = Id(f.value(), "mdmInfo.name", &m.name, nullptr);
      else if (key == "metadata") ok = Id(f.value(), "mdmInfo.metadata", &m.metadata, nullptr);
      else ok = Skip(f.value(), 2);
      if (!ok) return false;
    }
    return true;
  }

  bool Items(od::value v) {
    od::json_type type;
    if (auto e = v.type().get(type)) return NotJson(e);
    if (type == od::json_type::null) return Null(v);
    if (type != od::json_type::array) return Fail("'assignments' is not an array");
    od::array a;
    if (auto e = v.get_array().get(a)) return NotJson(e);
    for (auto element : a) {
      od::value item;
      if (auto e = std::move(element).get(item)) return NotJson(e);
      if (!Item(item)) return false;
    }
    return true;
  }

  bool Item(od::value v) {
    od::json_type type;
    if (auto e = v.type().get(type)) return NotJson(e);
    if (type != od::json_type::object) return Fail("an assignment is not an object");
    od::object o;
    if (auto e = v.get_object().get(o)) return NotJson(e);
    // Reuse an element the vector still holds (its strings keep their
    // buffers: no allocation for a clientUserId after a walk's first pages).
    if (count == items_->size()) items_->emplace_back();
    Assignment& a = (*items_)[count++];
    a.adam_id.clear();
    a.pricing_param.clear();
    a.client_user_id.clear();
    a.serial_number.clear();
    for (auto member : o) {
      od::field f;
      std::string_view key;
      if (auto e = std::move(member).get(f)) return NotJson(e);
      if (auto e = f.unescaped_key().get(key)) return NotJson(e);
      bool ok;
      switch (ItemKey(key)) {
        case Key::kAdamId: ok = Id(f.value(), key, &a.adam_id, nullptr); break;
        case Key::kPricingParam: ok = Id(f.value(), key, &a.pricing_param, nullptr); break;
        case Key::kClientUserId: ok = Id(f.value(), key, &a.client_user_id, nullptr); break;
        case Key::kSerialNumber: ok = Id(f.value(), key, &a.serial_number, nullptr); break;
        default: ok = Skip(f.value(), 3);
      }
      if (!ok) return false;
    }
    if (a.adam_id.empty()) return Fail("an assignment has no adamId");
    if (a.client_user_id.empty() == a.serial_number.empty())
      return Fail("assignment of " + a.adam_id + " needs exactly one of clientUserId, serialNumber");
    return true;
  }

  // A member vppd does not read, inside `depth` containers. On-Demand would
  // jump over it checking only that brackets balance; this visits every value
  // instead, so a page is valid JSON throughout or refused, as before.
  bool Skip(od::value v, int depth) {
    od::json_type type;
    if (auto e = v.type().get(type)) return NotJson(e);
    switch (type) {
      case od::json_type::object: {
        if (depth + 1 > kMaxDepth) return Fail("the response is not JSON: nested too deeply");
        od::object o;
        if (auto e = v.get_object().get(o)) return NotJson(e);
        for (auto member : o) {
          od::field f;
          std::string_view key;
          if (auto e = std::move(member).get(f)) return NotJson(e);
          if (auto e = f.unescaped_key().get(key)) return NotJson(e);
          if (!Skip(f.value(), depth + 1)) return false;
        }
        return true;
      }
      case od::json_type::array: {
        if (depth + 1 > kMaxDepth) return Fail("the response is not JSON: nested too deeply");
        od::array a;
        if (auto e = v.get_array().get(a)) return NotJson(e);
        for (auto element : a) {
          od::value x;
          if (auto e = std::move(element).get(x)) return NotJson(e);
          if (!Skip(x, depth + 1)) return false;
        }
        return true;
      }
      case od::json_type::string: {
        std::string_view s;
        if (auto e = v.get_string().get(s)) return NotJson(e);
        return true;
      }
      case od::json_type::number: {
        od::number n;
        if (auto e = v.get_number().get(n)) return NotJson(e);
        return true;
      }
      case od::json_type::boolean: {
        bool b;
        if (auto e = v.get_bool().get(b)) return NotJson(e);
        return true;
      }
      case od::json_type::null: return Null(v);
    }
    return NotJson(simdjson::TAPE_ERROR);
  }

  PageMeta* meta_;
  std::vector<Assignment>* items_;
};

}  // namespace

// The simdjson parser (its buffers are reused from page to page) and, for a
// body without kBodyPadding spare bytes, a padded copy of it.
struct PageParser::OnDemand {
  od::parser parser;
  std::string copy;
};

void PageParser::Delete(OnDemand* p) { delete p; }

AppleStatus PageParser::Assignments(std::string_view body, PageMeta* meta, std::vector<Assignment>* items,
                                    std::size_t spare) {
  items->reserve(1000);  // Apple's pages hold up to ~1,000.
  Reader r(meta, items);
  try {
    if (!on_demand_) on_demand_ = new OnDemand;
    simdjson::padded_string_view padded;
    if (spare >= simdjson::SIMDJSON_PADDING) {
      padded = simdjson::padded_string_view(body.data(), body.size(), body.size() + spare);
    } else {
      std::string& copy = on_demand_->copy;
      copy.reserve(body.size() + simdjson::SIMDJSON_PADDING);
      copy.assign(body);
      padded = simdjson::padded_string_view(copy.data(), copy.size(), copy.capacity());
    }
    r.Page(on_demand_->parser, padded);
  } catch (const std::exception& e) {  // bad_alloc: never let it cross the module.
    r.error = std::string("the response could not be parsed: ") + e.what();
  }
  items->resize(r.count);  // Drops elements left from a previous page.
  if (!r.error.empty()) return tl::unexpected(Malformed(std::move(r.error)));
  if (!r.have_current) return tl::unexpected(Malformed("the page has no currentPageIndex"));
  if (!r.have_total) return tl::unexpected(Malformed("the page has no totalPages"));
  if (!r.have_version) return tl::unexpected(Malformed("the page has no versionId"));
  return {};
}

}  // namespace vppd::apple::internal
