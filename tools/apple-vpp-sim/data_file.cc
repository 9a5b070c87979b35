// LoadDataFile: locations from a JSON document (format: README.md "Data file").
#include <boost/json.hpp>

#include "apple/client.h"
#include "generator.h"
#include "prng.h"

namespace vppd::sim {

namespace json = boost::json;

namespace {

// Reads optional typed members of one JSON object, recording the first error
// with its JSON path so the user can find it in a large file.
class Reader {
 public:
  Reader(const json::object& obj, std::string path, std::string* error)
      : obj_(obj), path_(std::move(path)), error_(error) {}

  std::optional<std::string> Str(std::string_view key, bool required = false) {
    const json::value* v = obj_.if_contains(key);
    if (!v || v->is_null()) {
      if (required) Fail(key, "missing");
      return std::nullopt;
    }
    if (const json::string* s = v->if_string()) return std::string(s->data(), s->size());
    Fail(key, "must be a string");
    return std::nullopt;
  }
  std::optional<bool> Bool(std::string_view key) {
    const json::value* v = obj_.if_contains(key);
    if (!v || v->is_null()) return std::nullopt;
    if (const bool* b = v->if_bool()) return *b;
    Fail(key, "must be true or false");
    return std::nullopt;
  }
  std::optional<std::int64_t> Int(std::string_view key) {
    const json::value* v = obj_.if_contains(key);
    if (!v || v->is_null()) return std::nullopt;
    if (const std::int64_t* i = v->if_int64()) return *i;
    if (const std::uint64_t* u = v->if_uint64(); u && *u <= INT64_MAX) return static_cast<std::int64_t>(*u);
    Fail(key, "must be an integer");
    return std::nullopt;
  }
  const json::array* Array(std::string_view key) {
    const json::value* v = obj_.if_contains(key);
    if (!v || v->is_null()) return nullptr;
    if (const json::array* a = v->if_array()) return a;
    Fail(key, "must be an array");
    return nullptr;
  }
  const json::object* Object(std::string_view key) {
    const json::value* v = obj_.if_contains(key);
    if (!v || v->is_null()) return nullptr;
    if (const json::object* o = v->if_object()) return o;
    Fail(key, "must be an object");
    return nullptr;
  }
  void Fail(std::string_view key, std::string_view what) {
    if (error_->empty()) *error_ = path_ + "." + std::string(key) + ": " + std::string(what);
  }
  const std::string& path() const { return path_; }

 private:
  const json::object& obj_;
  std::string path_;
  std::string* error_;
};

// Calls fn(object, path) for each element of `array`, which must all be objects.
template <class Fn>
void ForEachObject(const json::array* array, const std::string& path, std::string* error, Fn fn) {
  if (!array) return;
  for (std::size_t i = 0; i < array->size() && error->empty(); ++i) {
    const std::string p = path + "[" + std::to_string(i) + "]";
    if (const json::object* o = (*array)[i].if_object()) {
      fn(*o, p);
    } else if (error->empty()) {
      *error = p + ": must be an object";
    }
  }
}

void LoadLocation(const json::object& obj, const std::string& path, int index, Timestamp default_expiration,
                  std::size_t history_limit, std::vector<std::unique_ptr<Location>>& out, std::string* error) {
  Reader r(obj, path, error);
  const std::uint64_t seed = Mix64(0x64617461ULL, static_cast<std::uint64_t>(index) + 1);
  std::string uid = r.Str("uId").value_or("20490" + std::to_string(10000000000ULL + Mix64(seed) % 89999999999ULL));
  for (const auto& other : out)
    if (other->uid == uid) return r.Fail("uId", "duplicate uId " + uid);
  auto loc = std::make_unique<Location>(uid, seed ^ HashString(uid), history_limit);
  loc->name = r.Str("name").value_or("Location " + std::to_string(index + 1));
  loc->org_name = r.Str("orgName").value_or("Organisation " + std::to_string(index + 1));
  loc->country = r.Str("countryISO2ACode").value_or("US");
  loc->default_platform = r.Str("defaultPlatform").value_or("volumestore");
  loc->website_url = r.Str("websiteURL").value_or("https://business.apple.com");
  if (const json::object* mdm = r.Object("mdmInfo")) {
    Reader m(*mdm, path + ".mdmInfo", error);
    MdmInfo info;
    info.id = m.Str("id", true).value_or("");
    info.name = m.Str("name", true).value_or("");
    info.metadata = m.Str("metadata", true).value_or("");
    loc->mdm_info = std::move(info);
  }

  // Tokens: explicit inner tokens, or one generated like a fresh download.
  const json::array* tokens = r.Array("tokens");
  ForEachObject(tokens, path + ".tokens", error, [&](const json::object& t, const std::string& p) {
    Reader tr(t, p, error);
    Token tok;
    tok.inner = tr.Str("token", true).value_or("");
    tok.expiration = default_expiration;
    if (auto exp = tr.Str("expDate")) {
      auto ts = ParseIso8601(*exp);
      if (!ts) return tr.Fail("expDate", ts.error().message);
      tok.expiration = *ts;
    }
    if (auto st = tr.Str("state")) {
      auto s = TokenStateFromName(*st);
      if (!s) return tr.Fail("state", "must be active, expired, revoked or invalid");
      tok.state = *s;
    }
    tok.stoken = apple::EncodeSToken(tok.inner, tok.expiration, loc->org_name);
    loc->tokens.push_back(std::move(tok));
  });
  if (!tokens || tokens->empty()) IssueToken(*loc, default_expiration);

  ForEachObject(r.Array("assets"), path + ".assets", error, [&](const json::object& a, const std::string& p) {
    Reader ar(a, p, error);
    Asset asset;
    asset.adam_id = ar.Str("adamId", true).value_or("");
    asset.pricing_param = ar.Str("pricingParam").value_or("STDQ");
    if (asset.pricing_param != "STDQ" && asset.pricing_param != "PLUS")
      return ar.Fail("pricingParam", "must be STDQ or PLUS");
    const std::string type = ar.Str("productType").value_or("App");
    if (type != "App" && type != "Book") return ar.Fail("productType", "must be App or Book");
    asset.product_type = type == "Book" ? ProductType::kBook : ProductType::kApp;
    const bool app = asset.product_type == ProductType::kApp;
    asset.device_assignable = ar.Bool("deviceAssignable").value_or(app);
    asset.revocable = ar.Bool("revocable").value_or(app);
    asset.unlimited = ar.Bool("unlimited").value_or(false);
    asset.retired_count = ar.Int("retiredCount").value_or(0);
    asset.name = ar.Str("name").value_or("");
    asset.bundle_id = ar.Str("bundleId").value_or("");
    asset.version = ar.Str("version").value_or("1.0");
    asset.platforms = 0;
    if (const json::array* plats = ar.Array("supportedPlatforms")) {
      for (const json::value& v : *plats) {
        const json::string* s = v.if_string();
        const std::uint8_t bit = s ? PlatformFromName(std::string_view(s->data(), s->size())) : 0;
        if (!bit) return ar.Fail("supportedPlatforms", "unknown platform (iOS, macOS, tvOS, watchOS, visionOS)");
        asset.platforms |= bit;
      }
    }
    if (asset.platforms == 0) asset.platforms = kIOS;
    const std::optional<std::int64_t> total = ar.Int("totalCount");
    auto idx = loc->AddAsset(std::move(asset));
    if (!idx) return ar.Fail("adamId", idx.error().message);
    // totalCount is checked against the assignments once they are loaded.
    loc->SetTotal(*idx, total.value_or(-1));
  });

  ForEachObject(r.Array("users"), path + ".users", error, [&](const json::object& u, const std::string& p) {
    Reader ur(u, p, error);
    User user;
    user.client_user_id = ur.Str("clientUserId", true).value_or("");
    if (loc->FindUser(user.client_user_id)) return ur.Fail("clientUserId", "duplicate");
    user.email = ur.Str("email").value_or("");
    user.managed_apple_id = ur.Str("managedAppleId").value_or("");
    user.invite_code = ur.Str("inviteCode").value_or("");
    user.id_hash = ur.Str("idHash").value_or("");
    const std::string status = ur.Str("status").value_or("Associated");
    if (status == "Registered")
      user.status = UserStatus::kRegistered;
    else if (status == "Associated")
      user.status = UserStatus::kAssociated;
    else if (status == "Retired")
      user.status = UserStatus::kRetired;
    else
      return ur.Fail("status", "must be Registered, Associated or Retired");
    loc->PutUser(std::move(user));
  });

  ForEachObject(r.Array("assignments"), path + ".assignments", error, [&](const json::object& a, const std::string& p) {
    Reader ar(a, p, error);
    const std::string adam = ar.Str("adamId", true).value_or("");
    const std::optional<std::string> pricing = ar.Str("pricingParam");
    const std::optional<std::string> user = ar.Str("clientUserId");
    const std::optional<std::string> serial = ar.Str("serialNumber");
    if (!error->empty()) return;
    auto asset = loc->FindAsset(adam, pricing ? std::optional<std::string_view>(*pricing) : std::nullopt);
    if (!asset) return ar.Fail("adamId", "no such asset " + adam);
    if (user.has_value() == serial.has_value())
      return ar.Fail("clientUserId", "exactly one of clientUserId and serialNumber");
    if (user) {
      auto u = loc->FindUser(*user);
      if (!u) return ar.Fail("clientUserId", "no such user " + *user);
      if (!loc->Assign(*asset, SubjectKind::kUser, *u)) return ar.Fail("clientUserId", "duplicate assignment");
    } else {
      if (!loc->assets()[*asset].device_assignable) return ar.Fail("serialNumber", "asset is not device-assignable");
      if (!loc->Assign(*asset, SubjectKind::kDevice, loc->InternSerial(*serial)))
        return ar.Fail("serialNumber", "duplicate assignment");
    }
  });
  if (!error->empty()) return;

  for (std::uint32_t i = 0; i < loc->assets().size(); ++i) {
    const Asset& a = loc->assets()[i];
    if (a.total_count < 0) {
      loc->SetTotal(i, a.assigned_count);  // No totalCount: exactly what is assigned.
    } else if (!a.unlimited && a.total_count < a.assigned_count) {
      *error = path + ".assets: " + a.adam_id + " has totalCount " + std::to_string(a.total_count) + " but " +
               std::to_string(a.assigned_count) + " assignments";
      return;
    }
  }
  loc->BumpVersion();
  out.push_back(std::move(loc));
}

}  // namespace

Result<std::vector<std::unique_ptr<Location>>> LoadDataJson(std::string_view text, Timestamp default_expiration,
                                                            std::size_t history_limit) {
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) return Fail(Error::InvalidArgument("data file is not JSON: " + ec.message()));
  const json::object* root = doc.if_object();
  if (!root) return Fail(Error::InvalidArgument("data file: the top level must be an object"));
  const json::value* locs = root->if_contains("locations");
  if (!locs || !locs->is_array() || locs->get_array().empty())
    return Fail(Error::InvalidArgument("data file: \"locations\" must be a non-empty array"));
  std::vector<std::unique_ptr<Location>> out;
  std::string error;
  int index = 0;
  ForEachObject(&locs->get_array(), "locations", &error, [&](const json::object& o, const std::string& p) {
    LoadLocation(o, p, index++, default_expiration, history_limit, out, &error);
  });
  if (!error.empty()) return Fail(Error::InvalidArgument("data file: " + error));
  return out;
}

Result<std::vector<std::unique_ptr<Location>>> LoadDataFile(const std::string& path, Timestamp default_expiration,
                                                            std::size_t history_limit) {
  auto text = ReadFile(path, std::size_t{1} << 30);
  if (!text) return Fail(text.error());
  return LoadDataJson(*text, default_expiration, history_limit);
}

}  // namespace vppd::sim
