// /assignments pages → PageMeta and Assignment structs with simdjson (the hot
// path of a sync; why simdjson's DOM parser and what it validates: parse.h).
//
// simdjson stays in this file: its header is ~1 MB and must not reach any
// other translation unit.
#include <simdjson.h>

#include <algorithm>
#include <cstring>

#include "apple/parse.h"
#include "apple/transport.h"

namespace vppd::apple::internal {

// transport.cc leaves kBodyPadding spare bytes after every body so that pages
// are parsed in place, not copied.
static_assert(kBodyPadding >= simdjson::SIMDJSON_PADDING);

namespace {

namespace dom = simdjson::dom;

// Boost.JSON's default depth limit (32 nested arrays/objects, the page's own
// object included), which the SAX parser before this one enforced.
constexpr std::size_t kMaxDepth = 32;

// Equality with a literal (its length known at compile time).
template <std::size_t N>
bool Is(std::string_view k, const char (&name)[N]) {
  return k.size() == N - 1 && std::memcmp(k.data(), name, N - 1) == 0;
}

enum class ItemKey : unsigned char { kOther, kAdamId, kPricingParam, kClientUserId, kSerialNumber };

// An assignment's member names: this runs 3-4 times per item.
ItemKey ClassifyItemKey(std::string_view k) {
  if (Is(k, "adamId")) return ItemKey::kAdamId;
  if (k.size() != 12) return ItemKey::kOther;
  switch (k[0]) {
    case 'p': return Is(k, "pricingParam") ? ItemKey::kPricingParam : ItemKey::kOther;
    case 'c': return Is(k, "clientUserId") ? ItemKey::kClientUserId : ItemKey::kOther;
    case 's': return Is(k, "serialNumber") ? ItemKey::kSerialNumber : ItemKey::kOther;
    default: return ItemKey::kOther;
  }
}

// One page's read from simdjson's document (already validated as a whole:
// only the types of the members read are left to check). Every method returns
// false with `error` set on the first problem; the page is then refused.
class Reader {
 public:
  Reader(PageMeta* meta, std::vector<Assignment>* items) : meta_(meta), items_(items) {}

  std::string error;
  std::size_t count = 0;  // Items of this page so far: (*items_)[0, count).
  bool have_current = false, have_total = false, have_version = false;

  bool Page(dom::element doc) {
    dom::object top;
    if (doc.get_object().get(top)) return Fail("the response is not a JSON object");
    for (const dom::key_value_pair member : top) {
      const std::string_view k = member.key;
      const dom::element v = member.value;
      bool ok = true;
      if (Is(k, "assignments")) {
        ok = Items(v);
      } else if (Is(k, "currentPageIndex")) {
        ok = Integer(v, k, &meta_->current, &have_current);
      } else if (Is(k, "totalPages")) {
        ok = Integer(v, k, &meta_->total, &have_total);
      } else if (Is(k, "nextPageIndex") || Is(k, "size")) {
        std::int64_t n = 0;
        bool present = false;
        ok = Integer(v, k, &n, &present);
        if (ok && present) (k[0] == 'n' ? meta_->next : meta_->size) = n;
      } else if (Is(k, "versionId")) {
        bool present = false;
        ok = Id(v, k, &meta_->version_id, &present);
        if (ok && present) have_version = !meta_->version_id.empty();
      } else if (Is(k, "uId")) {
        bool present = false;
        ok = Id(v, k, &meta_->envelope.uid, &present);
      } else if (Is(k, "tokenExpirationDate")) {
        ok = Date(v);
      } else if (Is(k, "mdmInfo")) {
        ok = Mdm(v);
      }
      if (!ok) return false;
    }
    return true;
  }

 private:
  bool Fail(std::string what) {
    error = std::move(what);
    return false;
  }

  // A paging integer; null means absent (`*present` stays false).
  bool Integer(dom::element v, std::string_view key, std::int64_t* out, bool* present) {
    switch (v.type()) {
      case dom::element_type::NULL_VALUE: return true;
      case dom::element_type::INT64:
        *out = v.get_int64().value_unsafe();
        *present = true;
        return true;
      case dom::element_type::UINT64: return Fail("'" + std::string(key) + "' is out of range");
      default: return Fail("'" + std::string(key) + "' is not an integer");
    }
  }

  // An id: a string, or an integer taken as its decimal text (older services
  // sent some ids as numbers); null means absent (`*present` stays false).
  bool Id(dom::element v, std::string_view key, std::string* out, bool* present) {
    switch (v.type()) {
      case dom::element_type::STRING: out->assign(v.get_string().value_unsafe()); break;
      case dom::element_type::INT64: *out = std::to_string(v.get_int64().value_unsafe()); break;
      case dom::element_type::NULL_VALUE: return true;
      case dom::element_type::UINT64: return Fail("'" + std::string(key) + "' is out of range");
      default: return Fail("'" + std::string(key) + "' is not a string");
    }
    *present = true;
    return true;
  }

  bool Date(dom::element v) {
    if (v.is_null()) return true;
    std::string_view text;
    if (v.get_string().get(text)) return Fail("'tokenExpirationDate' is not a string");
    auto t = ParseIso8601(text);
    if (!t) return Fail("'tokenExpirationDate' is not a date: " + t.error().message);
    meta_->envelope.token_expiration = *t;
    return true;
  }

  bool Mdm(dom::element v) {
    if (v.is_null()) return true;
    dom::object o;
    if (v.get_object().get(o)) return Fail("'mdmInfo' is not an object");
    MdmInfo& m = meta_->envelope.mdm_info.emplace();
    for (const dom::key_value_pair member : o) {
      bool present = false, ok = true;
      if (Is(member.key, "id")) ok = Id(member.value, "mdmInfo.id", &m.id, &present);
      else if (Is(member.key, "name")) ok = Id(member.value, "mdmInfo.name", &m.name, &present);
      else if (Is(member.key, "metadata")) ok = Id(member.value, "mdmInfo.metadata", &m.metadata, &present);
      if (!ok) return false;
    }
    return true;
  }

  bool Items(dom::element v) {
    if (v.is_null()) return true;
    dom::array a;
    if (v.get_array().get(a)) return Fail("'assignments' is not an array");
    for (const dom::element item : a)
      if (!Item(item)) return false;
    return true;
  }

  bool Item(dom::element v) {
    dom::object o;
    if (v.get_object().get(o)) return Fail("an assignment is not an object");
    // Reuse an element the vector still holds (its strings keep their
    // buffers: no allocation for a clientUserId after a walk's first pages).
    if (count == items_->size()) items_->emplace_back();
    Assignment& a = (*items_)[count++];
    a.adam_id.clear();
    a.pricing_param.clear();
    a.client_user_id.clear();
    a.serial_number.clear();
    for (const dom::key_value_pair member : o) {
      const std::string_view k = member.key;
      bool present = false, ok = true;
      switch (ClassifyItemKey(k)) {
        case ItemKey::kAdamId: ok = Id(member.value, k, &a.adam_id, &present); break;
        case ItemKey::kPricingParam: ok = Id(member.value, k, &a.pricing_param, &present); break;
        case ItemKey::kClientUserId: ok = Id(member.value, k, &a.client_user_id, &present); break;
        case ItemKey::kSerialNumber: ok = Id(member.value, k, &a.serial_number, &present); break;
        case ItemKey::kOther: break;
      }
      if (!ok) return false;
    }
    if (a.adam_id.empty()) return Fail("an assignment has no adamId");
    if (a.client_user_id.empty() == a.serial_number.empty())
      return Fail("assignment of " + a.adam_id + " needs exactly one of clientUserId, serialNumber");
    return true;
  }

  PageMeta* meta_;
  std::vector<Assignment>* items_;
};

}  // namespace

// simdjson's parser (its buffers are reused from page to page) and, for a body
// without kBodyPadding spare bytes, a padded copy of it.
struct PageParser::Simd {
  dom::parser parser;
  bool allocated = false;
  std::string copy;
};

void PageParser::Delete(Simd* p) { delete p; }

AppleStatus PageParser::Assignments(std::string_view body, PageMeta* meta, std::vector<Assignment>* items,
                                    std::size_t spare) {
  items->reserve(1000);  // Apple's pages hold up to ~1,000.
  Reader r(meta, items);
  try {
    if (!simd_) simd_ = new Simd;
    Simd& s = *simd_;
    // The depth limit is set once; the capacity grows with larger pages.
    if (!s.allocated) {
      if (s.parser.allocate(std::max<std::size_t>(body.size(), 1 << 17), kMaxDepth))
        throw std::bad_alloc();
      s.allocated = true;
    }
    const char* data = body.data();
    if (spare < simdjson::SIMDJSON_PADDING) {
      s.copy.reserve(body.size() + simdjson::SIMDJSON_PADDING);
      s.copy.assign(body);
      data = s.copy.data();
    }
    dom::element doc;
    if (auto e = s.parser.parse(data, body.size(), /*realloc_if_needed=*/false).get(doc))
      r.error = std::string("the response is not JSON: ") + simdjson::error_message(e);
    else
      r.Page(doc);
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
