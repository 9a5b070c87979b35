// JSON → typed results for apple::Client (see parse.h for the choice of parser).
#include "apple/parse.h"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

namespace vppd::apple::internal {

namespace json = boost::json;

AppleError Malformed(std::string message) {
  AppleError e;
  e.kind = AppleErrorKind::kMalformedResponse;
  e.error_message = std::move(message);
  e.http_status = 200;
  return e;
}

namespace {

std::string_view View(const json::string& s) { return {s.data(), s.size()}; }

// Reads an optional string member; ids may come as numbers from older services.
AppleStatus ReadString(const json::value& v, std::string_view key, std::string* out) {
  if (const json::string* s = v.if_string()) {
    out->assign(s->data(), s->size());
    return {};
  }
  if (v.is_int64()) {
    *out = std::to_string(v.get_int64());
    return {};
  }
  if (v.is_uint64()) {
    *out = std::to_string(v.get_uint64());
    return {};
  }
  if (v.is_null()) return {};
  return tl::unexpected(Malformed("'" + std::string(key) + "' is not a string"));
}

AppleStatus ReadInt(const json::value& v, std::string_view key, std::int64_t* out) {
  if (v.is_int64()) {
    *out = v.get_int64();
    return {};
  }
  if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    *out = static_cast<std::int64_t>(v.get_uint64());
    return {};
  }
  return tl::unexpected(Malformed("'" + std::string(key) + "' is not an integer"));
}

AppleStatus ReadInt(const json::value& v, std::string_view key, int* out) {
  std::int64_t x = 0;
  if (auto s = ReadInt(v, key, &x); !s) return s;
  if (x < INT32_MIN || x > INT32_MAX) return tl::unexpected(Malformed("'" + std::string(key) + "' is out of range"));
  *out = static_cast<int>(x);
  return {};
}

AppleStatus ReadBool(const json::value& v, std::string_view key, bool* out) {
  if (!v.is_bool()) return tl::unexpected(Malformed("'" + std::string(key) + "' is not a boolean"));
  *out = v.get_bool();
  return {};
}

AppleStatus ReadStrings(const json::value& v, std::string_view key, std::vector<std::string>* out) {
  if (v.is_null()) return {};
  const json::array* a = v.if_array();
  if (!a) return tl::unexpected(Malformed("'" + std::string(key) + "' is not an array"));
  out->reserve(out->size() + a->size());
  for (const json::value& e : *a) {
    const json::string* s = e.if_string();
    if (!s) return tl::unexpected(Malformed("'" + std::string(key) + "' holds a non-string"));
    out->emplace_back(s->data(), s->size());
  }
  return {};
}

AppleStatus ReadMdmInfo(const json::value& v, std::optional<MdmInfo>* out) {
  if (v.is_null()) return {};
  const json::object* o = v.if_object();
  if (!o) return tl::unexpected(Malformed("'mdmInfo' is not an object"));
  MdmInfo m;
  for (const auto& kv : *o) {
    const std::string_view k = kv.key();
    AppleStatus s;
    if (k == "id") s = ReadString(kv.value(), "mdmInfo.id", &m.id);
    else if (k == "name") s = ReadString(kv.value(), "mdmInfo.name", &m.name);
    else if (k == "metadata") s = ReadString(kv.value(), "mdmInfo.metadata", &m.metadata);
    if (!s) return s;
  }
  *out = std::move(m);
  return {};
}

// Envelope members (uId, mdmInfo, tokenExpirationDate); true when `key` was one.
AppleResult<bool> ReadEnvelopeMember(std::string_view key, const json::value& v, Envelope* env) {
  if (key == "uId") {
    if (auto s = ReadString(v, key, &env->uid); !s) return tl::unexpected(s.error());
    return true;
  }
  if (key == "mdmInfo") {
    if (auto s = ReadMdmInfo(v, &env->mdm_info); !s) return tl::unexpected(s.error());
    return true;
  }
  if (key == "tokenExpirationDate") {
    if (v.is_null()) return true;
    const json::string* s = v.if_string();
    if (!s) return tl::unexpected(Malformed("'tokenExpirationDate' is not a string"));
    auto t = ParseIso8601(View(*s));
    if (!t) return tl::unexpected(Malformed("'tokenExpirationDate' is not a date: " + t.error().message));
    env->token_expiration = *t;
    return true;
  }
  return false;
}

AppleResult<json::value> ParseDocument(std::string_view body, json::storage_ptr sp = {}) {
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(body.data(), body.size()), ec, std::move(sp));
  if (ec) return tl::unexpected(Malformed("the response is not JSON: " + ec.message()));
  if (!v.is_object()) return tl::unexpected(Malformed("the response is not a JSON object"));
  return v;
}

// ---- items

AppleStatus ReadAsset(const json::value& v, bool unlimited, Asset* a) {
  const json::object* o = v.if_object();
  if (!o) return tl::unexpected(Malformed("an asset is not an object"));
  a->unlimited = unlimited;
  for (const auto& kv : *o) {
    const std::string_view k = kv.key();
    const json::value& x = kv.value();
    AppleStatus s;
    if (k == "adamId") s = ReadString(x, k, &a->adam_id);
    else if (k == "pricingParam") s = ReadString(x, k, &a->pricing_param);
    else if (k == "productType") s = ReadString(x, k, &a->product_type);
    else if (k == "assignedCount") s = ReadInt(x, k, &a->assigned_count);
    else if (k == "availableCount") s = ReadInt(x, k, &a->available_count);
    else if (k == "retiredCount") s = ReadInt(x, k, &a->retired_count);
    else if (k == "totalCount") s = ReadInt(x, k, &a->total_count);
    else if (k == "deviceAssignable") s = ReadBool(x, k, &a->device_assignable);
    else if (k == "revocable") s = ReadBool(x, k, &a->revocable);
    else if (k == "supportedPlatforms") s = ReadStrings(x, k, &a->supported_platforms);
    if (!s) return s;
  }
  if (a->adam_id.empty()) return tl::unexpected(Malformed("an asset has no adamId"));
  return {};
}

AppleStatus ReadUser(const json::value& v, User* u) {
  const json::object* o = v.if_object();
  if (!o) return tl::unexpected(Malformed("a user is not an object"));
  for (const auto& kv : *o) {
    const std::string_view k = kv.key();
    const json::value& x = kv.value();
    AppleStatus s;
    if (k == "clientUserId") s = ReadString(x, k, &u->client_user_id);
    else if (k == "email") s = ReadString(x, k, &u->email);
    else if (k == "idHash") s = ReadString(x, k, &u->id_hash);
    else if (k == "inviteCode") s = ReadString(x, k, &u->invite_code);
    else if (k == "managedAppleId") s = ReadString(x, k, &u->managed_apple_id);
    else if (k == "status") s = ReadString(x, k, &u->status);
    if (!s) return s;
  }
  if (u->client_user_id.empty()) return tl::unexpected(Malformed("a user has no clientUserId"));
  return {};
}

// Reads the paging members and hands every member naming an item array to `items`.
template <class OnArray>
AppleStatus ReadPage(const json::object& o, PageMeta* meta, OnArray&& items) {
  bool have_current = false, have_total = false, have_version = false;
  for (const auto& kv : o) {
    const std::string_view k = kv.key();
    const json::value& x = kv.value();
    AppleStatus s;
    if (k == "currentPageIndex") {
      s = ReadInt(x, k, &meta->current);
      have_current = true;
    } else if (k == "nextPageIndex") {
      if (!x.is_null()) {
        std::int64_t n = 0;
        s = ReadInt(x, k, &n);
        meta->next = n;
      }
    } else if (k == "size") {
      std::int64_t n = 0;
      s = ReadInt(x, k, &n);
      meta->size = n;
    } else if (k == "totalPages") {
      s = ReadInt(x, k, &meta->total);
      have_total = true;
    } else if (k == "versionId") {
      s = ReadString(x, k, &meta->version_id);
      have_version = !meta->version_id.empty();
    } else {
      auto env = ReadEnvelopeMember(k, x, &meta->envelope);
      if (!env) return tl::unexpected(env.error());
      if (!*env) s = items(k, x);
    }
    if (!s) return s;
  }
  if (!have_current) return tl::unexpected(Malformed("the page has no currentPageIndex"));
  if (!have_total) return tl::unexpected(Malformed("the page has no totalPages"));
  if (!have_version) return tl::unexpected(Malformed("the page has no versionId"));
  return {};
}

template <class Item, class ReadOne>
AppleStatus ReadItems(const json::value& x, std::string_view key, std::vector<Item>* items, ReadOne&& read) {
  const json::array* a = x.if_array();
  if (!a) return tl::unexpected(Malformed("'" + std::string(key) + "' is not an array"));
  items->reserve(items->size() + a->size());
  for (const json::value& e : *a) {
    Item item;
    if (auto s = read(e, &item); !s) return s;
    items->push_back(std::move(item));
  }
  return {};
}

}  // namespace

// ------------------------------------------------------------------ pages

struct PageParser::State {
  // A page parses into `buffer` (reused from page to page) through a fresh
  // monotonic arena, so after the first page a walk does not go to the heap
  // for JSON values; a page larger than the buffer spills to the heap and
  // gives that back when the next page starts. (A fresh arena per page rather
  // than monotonic_resource::release(), which keeps no upstream blocks
  // alive across pages either way and is simpler to reason about.)
  std::vector<unsigned char> buffer = std::vector<unsigned char>(1 << 20);
  std::optional<json::monotonic_resource> arena;
  json::parser parser;
  // Optional so that each page's value is move-constructed (taking the new
  // arena) rather than move-assigned (which would copy into the old one's).
  std::optional<json::value> doc;

  AppleResult<const json::object*> Parse(std::string_view body) {
    doc.reset();  // Drop the previous page before its memory goes.
    parser.reset();
    arena.emplace(buffer.data(), buffer.size());
    parser.reset(json::storage_ptr(&*arena));
    boost::system::error_code ec;
    try {
      parser.write(body.data(), body.size(), ec);
      if (!ec) doc.emplace(parser.release());
    } catch (const std::exception& e) {  // bad_alloc from Boost.JSON: never let it cross the module.
      parser.reset();
      return tl::unexpected(Malformed(std::string("the response could not be parsed: ") + e.what()));
    }
    if (ec) {
      parser.reset();
      return tl::unexpected(Malformed("the response is not JSON: " + ec.message()));
    }
    if (!doc->is_object()) return tl::unexpected(Malformed("the response is not a JSON object"));
    return &doc->get_object();
  }
};

PageParser::PageParser() : state_(new State) {}
PageParser::~PageParser() { delete state_; }

AppleStatus PageParser::Assets(std::string_view body, PageMeta* meta, std::vector<Asset>* items) {
  items->clear();
  auto o = state_->Parse(body);
  if (!o) return tl::unexpected(o.error());
  return ReadPage(**o, meta, [&](std::string_view k, const json::value& x) -> AppleStatus {
    if (k == "assets" || k == "unlimitedAssets") {
      const bool unlimited = k == "unlimitedAssets";
      return ReadItems(x, k, items, [&](const json::value& e, Asset* a) { return ReadAsset(e, unlimited, a); });
    }
    return {};
  });
}

AppleStatus PageParser::Users(std::string_view body, PageMeta* meta, std::vector<User>* items) {
  items->clear();
  auto o = state_->Parse(body);
  if (!o) return tl::unexpected(o.error());
  return ReadPage(**o, meta, [&](std::string_view k, const json::value& x) -> AppleStatus {
    if (k == "users") return ReadItems(x, k, items, ReadUser);
    return {};
  });
}

// ------------------------------------------------------------------ assignments (SAX)

namespace {

// The /assignments hot path: a SAX handler that fills PageMeta and the
// Assignment structs straight from Boost.JSON's basic_parser, building no DOM.
// Measured on a 93 KB page of 1,000 assignments: 0.59 ms through the DOM
// (~160 MB/s), 0.14 ms here (~650 MB/s) (bench/README.md "apple").
class AssignmentsHandler {
 public:
  static constexpr std::size_t max_object_size = 1'000'000;
  static constexpr std::size_t max_array_size = 10'000'000;
  static constexpr std::size_t max_key_size = 1 << 16;
  static constexpr std::size_t max_string_size = 1 << 20;

  PageMeta* meta = nullptr;
  std::vector<Assignment>* items = nullptr;
  std::size_t count = 0;  // Items of this page so far: (*items)[0, count).
  std::string error;  // Set when the shape is wrong; the parse stops.
  bool have_current = false, have_total = false, have_version = false;

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }

  bool on_object_begin(boost::system::error_code& ec) {
    if (stack_.empty()) return Push(kTop);
    switch (stack_.back()) {
      case kItems:
        // Reuse an element the vector still holds (its strings keep their
        // buffers: no allocation for a clientUserId after a walk's first pages).
        if (count < items->size()) {
          Assignment& a = (*items)[count];
          a.adam_id.clear();
          a.pricing_param.clear();
          a.client_user_id.clear();
          a.serial_number.clear();
        } else {
          items->emplace_back();
        }
        ++count;
        return Push(kItem);
      case kTop:
        if (key_id_ == Key::kMdmInfo) {
          meta->envelope.mdm_info.emplace();
          return Push(kMdm);
        }
        if (IsPagingKey()) return Fail(ec, "'" + key_ + "' is not an integer");
        return Push(kSkip);
      case kItem:
        if (IsItemKey()) return Fail(ec, "'" + key_ + "' is not a string");
        return Push(kSkip);
      default: return Push(kSkip);
    }
  }
  bool on_object_end(std::size_t, boost::system::error_code& ec) {
    if (stack_.back() == kItem) {
      const Assignment& a = (*items)[count - 1];
      if (a.adam_id.empty()) return Fail(ec, "an assignment has no adamId");
      if (a.client_user_id.empty() == a.serial_number.empty())
        return Fail(ec, "assignment of " + a.adam_id + " needs exactly one of clientUserId, serialNumber");
    }
    stack_.pop_back();
    return true;
  }
  bool on_array_begin(boost::system::error_code& ec) {
    if (stack_.empty()) return Fail(ec, "the response is not a JSON object");
    if (stack_.back() == kTop && key_id_ == Key::kAssignments) return Push(kItems);
    if (stack_.back() == kTop && IsPagingKey()) return Fail(ec, "'" + key_ + "' is not an integer");
    if (stack_.back() == kItems) return Fail(ec, "an assignment is not an object");
    if (stack_.back() == kItem && IsItemKey()) return Fail(ec, "'" + key_ + "' is not a string");
    return Push(kSkip);
  }
  bool on_array_end(std::size_t, boost::system::error_code&) {
    stack_.pop_back();
    return true;
  }

  bool on_key_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    part_.append(s.data(), s.size());
    return true;
  }
  bool on_key(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    if (part_.empty()) {
      key_.assign(s.data(), s.size());
    } else {
      key_.swap(part_.append(s.data(), s.size()));
      part_.clear();
    }
    key_id_ = Classify(key_);
    return true;
  }
  bool on_string_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    part_.append(s.data(), s.size());
    return true;
  }
  bool on_string(boost::json::string_view s, std::size_t, boost::system::error_code& ec) {
    std::string_view v(s.data(), s.size());
    if (!part_.empty()) {
      part_.append(v);
      v = part_;
    }
    const bool ok = String(v, ec);
    part_.clear();
    return ok;
  }
  bool on_number_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t n, boost::json::string_view raw, boost::system::error_code& ec) {
    return Integer(n, std::string_view(raw.data(), raw.size()), ec);
  }
  bool on_uint64(std::uint64_t n, boost::json::string_view raw, boost::system::error_code& ec) {
    if (n > static_cast<std::uint64_t>(INT64_MAX)) return Fail(ec, "'" + key_ + "' is out of range");
    return Integer(static_cast<std::int64_t>(n), std::string_view(raw.data(), raw.size()), ec);
  }
  bool on_double(double, boost::json::string_view, boost::system::error_code& ec) {
    // A bare number or boolean as the whole body: there is no context to look at.
    if (stack_.empty()) return Fail(ec, "the response is not a JSON object");
    if (Relevant()) return Fail(ec, "'" + key_ + "' is not " + (stack_.back() == kTop ? "an integer" : "a string"));
    return true;
  }
  bool on_bool(bool, boost::system::error_code& ec) { return on_double(0, {}, ec); }
  bool on_null(boost::system::error_code&) { return true; }  // Absent and null mean the same.
  bool on_comment_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::system::error_code&) { return true; }

 private:
  enum Ctx : unsigned char { kTop, kItems, kItem, kMdm, kSkip };

  bool Push(Ctx c) {
    stack_.push_back(c);
    return true;
  }
  bool Fail(boost::system::error_code& ec, std::string what) {
    error = std::move(what);
    ec = boost::json::error::extra_data;  // Any code: `error` says what happened.
    return false;
  }
  bool IsPagingKey() const {
    return key_id_ == Key::kCurrentPageIndex || key_id_ == Key::kNextPageIndex || key_id_ == Key::kSize ||
           key_id_ == Key::kTotalPages;
  }
  bool IsItemKey() const {
    return key_id_ == Key::kAdamId || key_id_ == Key::kPricingParam || key_id_ == Key::kClientUserId ||
           key_id_ == Key::kSerialNumber;
  }
  // True when a value under the current key is one this handler reads.
  bool Relevant() const {
    if (stack_.empty()) return true;
    switch (stack_.back()) {
      case kTop:
        return IsPagingKey() || key_id_ == Key::kVersionId || key_id_ == Key::kUId ||
               key_id_ == Key::kTokenExpirationDate;
      case kItem: return IsItemKey();
      case kItems: return true;
      default: return false;
    }
  }

  bool String(std::string_view v, boost::system::error_code& ec) {
    if (stack_.empty()) return Fail(ec, "the response is not a JSON object");
    switch (stack_.back()) {
      case kItem: {
        Assignment& a = (*items)[count - 1];
        if (key_id_ == Key::kAdamId) a.adam_id.assign(v);
        else if (key_id_ == Key::kPricingParam) a.pricing_param.assign(v);
        else if (key_id_ == Key::kClientUserId) a.client_user_id.assign(v);
        else if (key_id_ == Key::kSerialNumber) a.serial_number.assign(v);
        return true;
      }
      case kTop:
        if (key_id_ == Key::kVersionId) {
          meta->version_id.assign(v);
          have_version = !v.empty();
        } else if (key_id_ == Key::kUId) {
          meta->envelope.uid.assign(v);
        } else if (key_id_ == Key::kTokenExpirationDate) {
          auto t = ParseIso8601(v);
          if (!t) return Fail(ec, "'tokenExpirationDate' is not a date: " + t.error().message);
          meta->envelope.token_expiration = *t;
        } else if (IsPagingKey()) {
          return Fail(ec, "'" + key_ + "' is not an integer");
        }
        return true;
      case kMdm: {
        MdmInfo& m = *meta->envelope.mdm_info;
        if (key_id_ == Key::kId) m.id.assign(v);
        else if (key_id_ == Key::kName) m.name.assign(v);
        else if (key_id_ == Key::kMetadata) m.metadata.assign(v);
        return true;
      }
      case kItems: return Fail(ec, "an assignment is not an object");
      default: return true;
    }
  }

  bool Integer(std::int64_t n, std::string_view raw, boost::system::error_code& ec) {
    if (stack_.empty()) return Fail(ec, "the response is not a JSON object");
    switch (stack_.back()) {
      case kTop:
        if (key_id_ == Key::kCurrentPageIndex) {
          meta->current = n;
          have_current = true;
        } else if (key_id_ == Key::kNextPageIndex) {
          meta->next = n;
        } else if (key_id_ == Key::kSize) {
          meta->size = n;
        } else if (key_id_ == Key::kTotalPages) {
          meta->total = n;
          have_total = true;
        } else if (key_id_ == Key::kVersionId || key_id_ == Key::kUId) {
          return String(raw, ec);  // Ids as numbers: read their text.
        }
        return true;
      case kItem:
        if (IsItemKey()) return String(raw, ec);
        return true;
      case kItems: return Fail(ec, "an assignment is not an object");
      default: return true;
    }
  }

  // The member names this handler reads, recognised once per key (comparing
  // the key's text at every value was the larger part of a page's parse).
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
    kId,
    kName,
    kMetadata,
  };
  static Key Classify(std::string_view k) {
    static constexpr std::pair<std::string_view, Key> kKeys[] = {
        {"adamId", Key::kAdamId},
        {"pricingParam", Key::kPricingParam},
        {"clientUserId", Key::kClientUserId},
        {"serialNumber", Key::kSerialNumber},
        {"currentPageIndex", Key::kCurrentPageIndex},
        {"nextPageIndex", Key::kNextPageIndex},
        {"size", Key::kSize},
        {"totalPages", Key::kTotalPages},
        {"versionId", Key::kVersionId},
        {"uId", Key::kUId},
        {"tokenExpirationDate", Key::kTokenExpirationDate},
        {"mdmInfo", Key::kMdmInfo},
        {"assignments", Key::kAssignments},
        {"id", Key::kId},
        {"name", Key::kName},
        {"metadata", Key::kMetadata},
    };
    for (const auto& [name, key] : kKeys)
      if (k == name) return key;
    return Key::kOther;
  }

  std::vector<Ctx> stack_;
  std::string key_;
  Key key_id_ = Key::kOther;
  std::string part_;
};

}  // namespace

AppleStatus PageParser::Assignments(std::string_view body, PageMeta* meta, std::vector<Assignment>* items) {
  boost::json::basic_parser<AssignmentsHandler> p{boost::json::parse_options()};
  p.handler().meta = meta;
  p.handler().items = items;
  items->reserve(1000);  // Apple's pages hold up to ~1,000.
  boost::system::error_code ec;
  try {
    p.write_some(false, body.data(), body.size(), ec);
  } catch (const std::exception& e) {
    items->clear();
    return tl::unexpected(Malformed(std::string("the response could not be parsed: ") + e.what()));
  }
  const AssignmentsHandler& h = p.handler();
  items->resize(h.count);  // Drops elements left from a previous page.
  if (!h.error.empty()) return tl::unexpected(Malformed(h.error));
  if (ec) return tl::unexpected(Malformed("the response is not JSON: " + ec.message()));
  if (!h.have_current) return tl::unexpected(Malformed("the page has no currentPageIndex"));
  if (!h.have_total) return tl::unexpected(Malformed("the page has no totalPages"));
  if (!h.have_version) return tl::unexpected(Malformed("the page has no versionId"));
  return {};
}

// ------------------------------------------------------------------ single answers

AppleResult<ServiceConfig> ParseServiceConfig(std::string_view body) {
  auto doc = ParseDocument(body);
  if (!doc) return tl::unexpected(doc.error());
  const json::object& o = doc->get_object();
  ServiceConfig c;
  if (const json::value* u = o.if_contains("urls"); u && !u->is_null()) {
    const json::object* uo = u->if_object();
    if (!uo) return tl::unexpected(Malformed("'urls' is not an object"));
    const std::pair<const char*, std::string*> urls[] = {
        {"clientConfig", &c.urls.client_config},
        {"getAssets", &c.urls.get_assets},
        {"getAssignments", &c.urls.get_assignments},
        {"associateAssets", &c.urls.associate_assets},
        {"disassociateAssets", &c.urls.disassociate_assets},
        {"revokeAssets", &c.urls.revoke_assets},
        {"eventStatus", &c.urls.event_status},
        {"getUsers", &c.urls.get_users},
        {"createUsers", &c.urls.create_users},
        {"updateUsers", &c.urls.update_users},
        {"retireUsers", &c.urls.retire_users},
        {"contentMetadataLookup", &c.urls.content_metadata_lookup},
        {"invitationEmail", &c.urls.invitation_email},
    };
    for (const auto& [key, out] : urls)
      if (const json::value* v = uo->if_contains(key))
        if (auto s = ReadString(*v, std::string("urls.") + key, out); !s) return tl::unexpected(s.error());
  }
  if (const json::value* l = o.if_contains("limits"); l && !l->is_null()) {
    const json::object* lo = l->if_object();
    if (!lo) return tl::unexpected(Malformed("'limits' is not an object"));
    auto& L = c.limits;
    const std::pair<const char*, int*> limits[] = {
        {"maxAssets", &L.max_assets},
        {"maxClientUserIds", &L.max_client_user_ids},
        {"maxSerialNumbers", &L.max_serial_numbers},
        {"maxRevokeClientUserIds", &L.max_revoke_client_user_ids},
        {"maxRevokeSerialNumbers", &L.max_revoke_serial_numbers},
        {"maxUsers", &L.max_users},
        {"maxNotificationLength", &L.max_notification_length},
        {"maxMdmNameLength", &L.max_mdm_name_length},
        {"maxMdmMetadataLength", &L.max_mdm_metadata_length},
        {"maxMdmIdLength", &L.max_mdm_id_length},
        {"maxRequestPerSecond", &L.max_request_per_second},
    };
    for (const auto& [key, out] : limits)
      if (const json::value* v = lo->if_contains(key))
        if (auto s = ReadInt(*v, std::string("limits.") + key, out); !s) return tl::unexpected(s.error());
  }
  if (const json::value* t = o.if_contains("notificationTypes"))
    if (auto s = ReadStrings(*t, "notificationTypes", &c.notification_types); !s) return tl::unexpected(s.error());
  return c;
}

AppleResult<ClientConfig> ParseClientConfig(std::string_view body) {
  auto doc = ParseDocument(body);
  if (!doc) return tl::unexpected(doc.error());
  ClientConfig c;
  for (const auto& kv : doc->get_object()) {
    const std::string_view k = kv.key();
    const json::value& x = kv.value();
    auto env = ReadEnvelopeMember(k, x, &c);
    if (!env) return tl::unexpected(env.error());
    if (*env) continue;
    AppleStatus s;
    if (k == "countryISO2ACode") s = ReadString(x, k, &c.country_iso2a);
    else if (k == "defaultPlatform") s = ReadString(x, k, &c.default_platform);
    else if (k == "locationName") s = ReadString(x, k, &c.location_name);
    else if (k == "websiteURL") s = ReadString(x, k, &c.website_url);
    else if (k == "notificationUrl") s = ReadString(x, k, &c.notification_url);
    else if (k == "subscribedNotificationTypes") s = ReadStrings(x, k, &c.subscribed_notification_types);
    if (!s) return tl::unexpected(s.error());
  }
  if (c.uid.empty()) return tl::unexpected(Malformed("the client config has no uId"));
  return c;
}

AppleResult<EventResponse> ParseEventResponse(std::string_view body) {
  auto doc = ParseDocument(body);
  if (!doc) return tl::unexpected(doc.error());
  EventResponse r;
  for (const auto& kv : doc->get_object()) {
    auto env = ReadEnvelopeMember(kv.key(), kv.value(), &r);
    if (!env) return tl::unexpected(env.error());
    if (!*env && kv.key() == "eventId")
      if (auto s = ReadString(kv.value(), "eventId", &r.event_id); !s) return tl::unexpected(s.error());
  }
  if (r.event_id.empty()) return tl::unexpected(Malformed("the answer has no eventId"));
  return r;
}

AppleResult<EventStatus> ParseEventStatus(std::string_view body) {
  auto doc = ParseDocument(body);
  if (!doc) return tl::unexpected(doc.error());
  EventStatus r;
  for (const auto& kv : doc->get_object()) {
    const std::string_view k = kv.key();
    const json::value& x = kv.value();
    auto env = ReadEnvelopeMember(k, x, &r);
    if (!env) return tl::unexpected(env.error());
    if (*env) continue;
    AppleStatus s;
    if (k == "eventStatus") s = ReadString(x, k, &r.event_status);
    else if (k == "eventType") s = ReadString(x, k, &r.event_type);
    else if (k == "numRequested") s = ReadInt(x, k, &r.num_requested);
    else if (k == "numCompleted") s = ReadInt(x, k, &r.num_completed);
    else if (k == "failures" && !x.is_null()) {
      const json::array* a = x.if_array();
      if (!a) return tl::unexpected(Malformed("'failures' is not an array"));
      for (const json::value& fv : *a) {
        const json::object* fo = fv.if_object();
        if (!fo) return tl::unexpected(Malformed("a failure is not an object"));
        EventFailure f;
        if (const json::value* n = fo->if_contains("errorNumber"))
          if (auto t = ReadInt(*n, "failures.errorNumber", &f.error_number); !t) return tl::unexpected(t.error());
        if (const json::value* m = fo->if_contains("errorMessage"))
          if (auto t = ReadString(*m, "failures.errorMessage", &f.error_message); !t) return tl::unexpected(t.error());
        if (const json::value* info = fo->if_contains("errorInfo"); info && info->is_object()) {
          const json::object& io = info->get_object();
          if (const json::value* u = io.if_contains("clientUserIds"))
            if (auto t = ReadStrings(*u, "errorInfo.clientUserIds", &f.client_user_ids); !t) return tl::unexpected(t.error());
          if (const json::value* sn = io.if_contains("serialNumbers"))
            if (auto t = ReadStrings(*sn, "errorInfo.serialNumbers", &f.serial_numbers); !t) return tl::unexpected(t.error());
          if (const json::value* as = io.if_contains("assets"); as && as->is_array()) {
            for (const json::value& av : as->get_array()) {
              const json::object* ao = av.if_object();
              if (!ao) continue;
              AssetRef ref;
              if (const json::value* id = ao->if_contains("adamId")) (void)ReadString(*id, "adamId", &ref.adam_id);
              if (const json::value* pp = ao->if_contains("pricingParam")) (void)ReadString(*pp, "pricingParam", &ref.pricing_param);
              f.assets.push_back(std::move(ref));
            }
          }
        }
        r.failures.push_back(std::move(f));
      }
    }
    if (!s) return tl::unexpected(s.error());
  }
  if (r.event_status.empty()) return tl::unexpected(Malformed("the status has no eventStatus"));
  return r;
}

AppleStatus ParseLookup(std::string_view body, std::vector<AppMetadata>* out) {
  auto doc = ParseDocument(body);
  if (!doc) return tl::unexpected(doc.error());
  const json::value* results = doc->get_object().if_contains("results");
  if (!results) return tl::unexpected(Malformed("the lookup answer has no 'results'"));
  const json::object* ro = results->if_object();
  if (!ro) return tl::unexpected(Malformed("the lookup's 'results' is not an object"));
  for (const auto& kv : *ro) {
    const json::object* o = kv.value().if_object();
    if (!o) return tl::unexpected(Malformed("lookup result " + std::string(kv.key()) + " is not an object"));
    AppMetadata m;
    m.adam_id = kv.key();
    for (const auto& f : *o) {
      const std::string_view k = f.key();
      const json::value& x = f.value();
      AppleStatus s;
      if (k == "bundleId") s = ReadString(x, k, &m.bundle_id);
      else if (k == "name") s = ReadString(x, k, &m.name);
      else if (k == "kind") s = ReadString(x, k, &m.kind);
      else if (k == "supportedPlatforms") s = ReadStrings(x, k, &m.supported_platforms);
      else if (k == "offers" && x.is_array() && !x.get_array().empty()) {
        // offers[0].version.display: the current version, where Apple gives one.
        const json::object* offer = x.get_array()[0].if_object();
        const json::value* ver = offer ? offer->if_contains("version") : nullptr;
        const json::object* vo = ver ? ver->if_object() : nullptr;
        if (const json::value* d = vo ? vo->if_contains("display") : nullptr) s = ReadString(*d, "version.display", &m.version);
      }
      if (!s) return s;
    }
    out->push_back(std::move(m));
  }
  return {};
}

// ------------------------------------------------------------------ bodies

std::string ClientConfigBody(const MdmInfo& mdm) {
  json::object o;
  o["mdmInfo"] = {{"id", mdm.id}, {"name", mdm.name}, {"metadata", mdm.metadata}};
  return json::serialize(o);
}

namespace {
void PutStrings(json::object& o, const char* key, const std::vector<std::string>& v) {
  if (v.empty()) return;
  json::array a;
  a.reserve(v.size());
  for (const auto& s : v) a.emplace_back(s);
  o[key] = std::move(a);
}
}  // namespace

std::string ManageAssetsBody(const ManageAssetsRequest& request) {
  json::object o;
  json::array assets;
  for (const AssetRef& a : request.assets) {
    json::object ao;
    ao["adamId"] = a.adam_id;
    if (!a.pricing_param.empty()) ao["pricingParam"] = a.pricing_param;
    assets.push_back(std::move(ao));
  }
  o["assets"] = std::move(assets);
  PutStrings(o, "clientUserIds", request.client_user_ids);
  PutStrings(o, "serialNumbers", request.serial_numbers);
  return json::serialize(o);
}

std::string RevokeBody(const std::vector<std::string>& client_user_ids, const std::vector<std::string>& serial_numbers) {
  json::object o;
  PutStrings(o, "clientUserIds", client_user_ids);
  PutStrings(o, "serialNumbers", serial_numbers);
  return json::serialize(o);
}

}  // namespace vppd::apple::internal
