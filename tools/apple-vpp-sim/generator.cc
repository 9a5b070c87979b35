#include "generator.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "apple/client.h"
#include "prng.h"

namespace vppd::sim {

namespace {

constexpr char kBase34[] = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";  // Apple serials skip I and O.

// A 12-character Apple-style serial number, distinct for distinct `i`: an affine
// bijection on Z/34^11 (the multiplier is coprime to 34) written in base 34.
std::string SerialNumber(std::uint64_t location_salt, std::uint64_t i) {
  constexpr std::uint64_t kRadix = 34;
  std::uint64_t modulus = 1;
  for (int k = 0; k < 11; ++k) modulus *= kRadix;
  const std::uint64_t offset = location_salt % modulus;
  // 0x9e3779b97f4a7c15 is odd and not divisible by 17, hence coprime to 34.
  const unsigned __int128 product = static_cast<unsigned __int128>(i) * 0x9e3779b97f4a7c15ULL + offset;
  std::uint64_t v = static_cast<std::uint64_t>(product % modulus);
  std::string s(12, '0');
  s[0] = 'C';
  for (int k = 11; k >= 1; --k) {
    s[static_cast<std::size_t>(k)] = kBase34[v % kRadix];
    v /= kRadix;
  }
  return s;
}

std::string RandomBase64(Rng& rng, std::size_t bytes) {
  std::string raw;
  raw.reserve(bytes);
  for (std::size_t i = 0; i < bytes; ++i) raw.push_back(static_cast<char>(rng.Next() & 0xff));
  return Base64Encode(raw);
}

// A step coprime to n, so i ↦ (start + i·step) mod n visits n distinct values.
std::uint64_t CoprimeStep(Rng& rng, std::uint64_t n) {
  if (n <= 1) return 1;
  for (;;) {
    const std::uint64_t step = 1 + rng.Below(n - 1);
    if (std::gcd(step, n) == 1) return step;
  }
}

}  // namespace

std::size_t IssueToken(Location& location, Timestamp expiration) {
  Rng rng(Mix64(location.seed ^ 0x746f6b656eULL, location.tokens.size()));
  Token t;
  t.inner = RandomBase64(rng, 48);
  t.expiration = expiration;
  t.stoken = apple::EncodeSToken(t.inner, expiration, location.org_name);
  location.tokens.push_back(std::move(t));
  return location.tokens.size() - 1;
}

std::unique_ptr<Location> GenerateLocation(const GenerateOptions& o) {
  const std::uint64_t loc_seed = Mix64(o.seed, static_cast<std::uint64_t>(o.index) + 1);
  Rng rng(loc_seed);
  // Apple's uIds are long decimal strings ("2049025000431439" in its examples).
  const std::string uid = "20490" + std::to_string(10000000000ULL + rng.Below(89999999999ULL));
  auto loc = std::make_unique<Location>(uid, loc_seed, o.history_limit);
  const int n = o.index + 1;
  loc->name = o.name.empty() ? "Sim Location " + std::to_string(n) : o.name;
  loc->org_name = "Simulated Organisation " + std::to_string(n);
  static constexpr const char* kCountries[] = {"US", "GB", "DE", "FR", "JP", "AU"};
  loc->country = kCountries[o.index % 6];
  loc->default_platform = "volumestore";
  loc->website_url = o.index % 2 == 0 ? "https://business.apple.com" : "https://school.apple.com";
  IssueToken(*loc, o.token_expiration);

  const std::int64_t n_assets = std::max<std::int64_t>(0, o.assets);
  const std::int64_t n_assignments = n_assets == 0 ? 0 : std::max<std::int64_t>(0, o.assignments);

  // ---- assets
  std::set<std::string> adam_ids;
  auto new_adam_id = [&] {
    for (;;) {
      std::string id = std::to_string(300000000 + rng.Below(1400000000));
      if (adam_ids.insert(id).second) return id;
    }
  };
  int books = 0, apps = 0;
  for (std::int64_t i = 0; i < n_assets; ++i) {
    Asset a;
    const bool book = rng.Chance(0.2);
    if (book) {
      ++books;
      a.product_type = ProductType::kBook;
      // Every fifth book is also sold as PLUS: same adamId, second asset
      // (identity is (adamId, pricingParam)).
      const Asset* prev = loc->assets().empty() ? nullptr : &loc->assets().back();
      if (books % 5 == 0 && prev && prev->product_type == ProductType::kBook && prev->pricing_param == "STDQ") {
        a.adam_id = prev->adam_id;
        a.pricing_param = "PLUS";
      } else {
        a.adam_id = new_adam_id();
        a.pricing_param = "STDQ";
      }
      a.device_assignable = false;  // Books go to users only and cannot be revoked.
      a.revocable = false;
      a.platforms = kIOS | kMacOS;
      a.name = "Sim Book " + std::to_string(books);
    } else {
      ++apps;
      a.product_type = ProductType::kApp;
      a.adam_id = new_adam_id();
      a.pricing_param = "STDQ";
      a.device_assignable = true;
      a.revocable = true;
      const auto r = rng.Below(100);
      a.platforms = r < 55 ? kIOS : r < 70 ? kMacOS : r < 95 ? (kIOS | kMacOS) : (kIOS | kVisionOS);
      a.unlimited = rng.Chance(0.1);
      a.name = "Sim App " + std::to_string(apps);
      a.bundle_id = "com.example.sim.app" + std::to_string(apps);
    }
    a.version = std::to_string(1 + rng.Below(5)) + "." + std::to_string(rng.Below(10));
    a.retired_count = rng.Chance(0.2) ? rng.Range(1, 5) : 0;
    (void)loc->AddAsset(std::move(a));  // adamId/pricing pairs are unique by construction.
  }

  // ---- split assignments over assets, then over devices and users
  const auto& assets = loc->assets();
  std::vector<std::int64_t> weight(assets.size()), device_part(assets.size()), user_part(assets.size());
  std::int64_t weight_sum = 0;
  for (auto& w : weight) weight_sum += (w = rng.Range(1, 8));
  std::int64_t given = 0;
  for (std::size_t i = 0; i < assets.size(); ++i) {
    const std::int64_t c = n_assignments * weight[i] / std::max<std::int64_t>(1, weight_sum);
    device_part[i] = c;
    given += c;
  }
  for (std::size_t i = 0; given < n_assignments; i = (i + 1) % assets.size(), ++given) ++device_part[i];
  std::int64_t max_dev = 0, max_user = 0, sum_dev = 0, sum_user = 0;
  for (std::size_t i = 0; i < assets.size(); ++i) {
    const std::int64_t c = device_part[i];
    if (!assets[i].device_assignable) {
      user_part[i] = c;
      device_part[i] = 0;
    } else {
      device_part[i] = c * 7 / 10;  // Most app licenses go to devices, the rest to users.
      user_part[i] = c - device_part[i];
    }
    max_dev = std::max(max_dev, device_part[i]);
    max_user = std::max(max_user, user_part[i]);
    sum_dev += device_part[i];
    sum_user += user_part[i];
  }
  // Pools large enough that each asset's share picks distinct subjects, and small
  // enough that subjects hold several licenses (about 3 apps per device).
  const std::int64_t device_pool = std::max({std::int64_t{8}, max_dev, sum_dev / 3});
  std::int64_t user_pool = std::max({std::int64_t{4}, max_user, sum_user / 2});
  if (o.users > user_pool) user_pool = o.users;

  // ---- users: the licensable pool, then some registered-only and retired users
  auto make_user = [&](std::int64_t i, UserStatus status) {
    User u;
    u.client_user_id = GuidFrom(loc_seed ^ 0x75736572ULL, static_cast<std::uint64_t>(i));
    u.email = "user" + std::to_string(i + 1) + "@" + "org" + std::to_string(n) + ".example.com";
    if (i % 4 == 0)
      u.managed_apple_id = "user" + std::to_string(i + 1) + "@appleid.org" + std::to_string(n) + ".example.com";
    u.status = status;
    if (status == UserStatus::kRegistered) {
      const std::string g = GuidFrom(loc_seed ^ 0x696e76ULL, static_cast<std::uint64_t>(i));
      for (char c : g)
        if (c != '-') u.invite_code.push_back(c);
    } else {
      u.id_hash = RandomBase64(rng, 20);  // Apple shows a base64 SHA-1-sized hash.
    }
    return u;
  };
  for (std::int64_t i = 0; i < user_pool; ++i) {
    // A few licensed users have not accepted their invitation yet.
    loc->PutUser(make_user(i, rng.Chance(0.03) ? UserStatus::kRegistered : UserStatus::kAssociated));
  }
  const std::int64_t extra_registered = std::max<std::int64_t>(1, user_pool / 10);
  const std::int64_t extra_retired = std::max<std::int64_t>(1, user_pool / 20);
  for (std::int64_t i = 0; i < extra_registered; ++i) loc->PutUser(make_user(user_pool + i, UserStatus::kRegistered));
  for (std::int64_t i = 0; i < extra_retired; ++i)
    loc->PutUser(make_user(user_pool + extra_registered + i, UserStatus::kRetired));

  if (sum_dev > 0)
    for (std::int64_t i = 0; i < device_pool; ++i)
      loc->InternSerial(SerialNumber(loc_seed, static_cast<std::uint64_t>(i)));

  // ---- assignments
  loc->ReserveAssignments(static_cast<std::size_t>(n_assignments));
  for (std::size_t a = 0; a < assets.size(); ++a) {
    if (device_part[a] > 0) {
      const auto pool = static_cast<std::uint64_t>(device_pool);
      const std::uint64_t start = rng.Below(pool), step = CoprimeStep(rng, pool);
      for (std::int64_t k = 0; k < device_part[a]; ++k)
        loc->Assign(static_cast<std::uint32_t>(a), SubjectKind::kDevice,
                    static_cast<std::uint32_t>((start + static_cast<std::uint64_t>(k) * step) % pool));
    }
    if (user_part[a] > 0) {
      const auto pool = static_cast<std::uint64_t>(user_pool);
      const std::uint64_t start = rng.Below(pool), step = CoprimeStep(rng, pool);
      for (std::int64_t k = 0; k < user_part[a]; ++k)
        loc->Assign(static_cast<std::uint32_t>(a), SubjectKind::kUser,
                    static_cast<std::uint32_t>((start + static_cast<std::uint64_t>(k) * step) % pool));
    }
  }

  // ---- totals: assigned + available, some sold out (to exercise 9709)
  for (std::uint32_t a = 0; a < assets.size(); ++a) {
    const Asset& asset = assets[a];
    if (asset.unlimited) continue;
    const auto r = rng.Below(100);
    const std::int64_t available = r < 15 ? 0 : r < 30 ? rng.Range(1, 3) : rng.Range(5, 50 + asset.assigned_count / 4);
    loc->SetTotal(a, asset.assigned_count + available);
  }
  // The generated state is one version, whatever it took to build it.
  loc->BumpVersion();
  return loc;
}

}  // namespace vppd::sim
