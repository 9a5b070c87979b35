#include "cli/migrate_store.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "base/base.h"
#include "cli/config.h"
#include "store/store.h"
#include "sync/sync.h"

namespace vppd::cli {
namespace {

// The copy goes through the Store interface only, so any pair of stores works
// and each side's own invariants (sealing, generations, counts) hold. The target
// is opened on a clock the copy sets before each write, so the timestamps a store
// stamps (created, lastModifiedDateTime) come out as they were in the source.
constexpr char kWorker[] = "vppd migrate-store";
constexpr char kJobKind[] = "migrateStore";  // never left behind: each copy job is finished at once
constexpr std::int64_t kPage = 1000;
constexpr std::size_t kBatch = 50'000;

struct Location {
  bool sqlite = false;
  std::string path_or_url;  // the .db file, or the postgresql:// URL
  std::string data_dir;     // sqlite only: where secret.key is by default
};

Result<Location> ParseLocation(const std::string& text, const char* which) {
  if (text.rfind("sqlite:", 0) == 0) {
    std::string path = text.substr(7);
    if (path.empty()) return Fail(Error::InvalidArgument(fmt::format("--{}: sqlite: needs a path", which)));
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) path += "/vppd.db";
    return Location{true, path, std::filesystem::path(path).parent_path().string()};
  }
  if (text.rfind("postgresql://", 0) == 0 || text.rfind("postgres://", 0) == 0) return Location{false, text, {}};
  return Fail(Error::InvalidArgument(
      fmt::format("--{} must be sqlite:PATH or a postgresql:// URL, not '{}'", which, text.substr(0, 20))));
}

Result<std::unique_ptr<store::Store>> Open(const Location& at, std::shared_ptr<const SecretBox> secrets,
                                           const Clock* clock, bool must_exist) {
  if (at.sqlite) {
    std::error_code ec;
    if (must_exist && !std::filesystem::exists(at.path_or_url, ec)) {
      return Fail(Error::NotFound("no SQLite database at " + at.path_or_url));
    }
    store::SqliteOptions options;
    options.path = at.path_or_url;
    options.secrets = std::move(secrets);
    options.clock = clock;
    return store::Store::OpenSqlite(options);
  }
  store::PostgresOptions options;
  options.url = at.path_or_url;
  options.secrets = std::move(secrets);
  options.clock = clock;
  return store::Store::OpenPostgres(options);
}

// Every item of a paged store list.
template <class T, class List>
Result<std::vector<T>> All(List&& list) {
  std::vector<T> out;
  store::ListQuery query;
  query.limit = kPage;
  for (;;) {
    Result<store::Page<T>> page = list(query);
    if (!page) return Fail(page.error());
    for (auto& item : page->items) out.push_back(std::move(item));
    if (!page->has_more) return out;
    query.skip += kPage;
  }
}

Result<std::vector<store::VppToken>> Tokens(store::Store& s, const std::string& tenant) {
  return All<store::VppToken>([&](const store::ListQuery& q) { return s.ListTokens(tenant, q); });
}

Result<std::vector<store::MobileApp>> AppsOf(store::Store& s, const std::string& tenant, const std::string& token) {
  return All<store::MobileApp>([&](store::ListQuery q) {
    q.filter =
        store::Expr::Apply(store::Op::kEq, {store::Expr::Of(store::Column::kAppTokenId), store::Expr::Value(token)});
    return s.ListApps(tenant, q);
  });
}

// --- what is compared ------------------------------------------------------------

std::string Opt(const std::optional<std::string>& v) { return v ? "=" + *v : "-"; }

std::string Canonical(const store::Tenant& t) {
  return fmt::format("{}|{}|{}|{}\n", t.id, t.display_name, t.intune_licensed, t.created);
}

std::string Canonical(const store::VppToken& t, const std::string& secret) {
  std::string out = fmt::format(
      "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", t.id, Opt(t.organization_name),
      t.account_type, Opt(t.apple_id), t.expiration, t.last_sync, t.last_modified, t.state, t.last_sync_status,
      t.automatically_update_apps, Opt(t.country_or_region), t.data_sharing_consent_granted, Opt(t.display_name),
      Opt(t.location_name), t.claim_token_management_from_external_mdm, fmt::join(t.role_scope_tag_ids, ","),
      t.delivery_protocol, t.last_app_count, Opt(t.apple_uid), Opt(t.apple_version_id), t.last_full_walk,
      t.last_sync_error, t.created, Sha256Hex(secret), t.action_results.size());
  for (const auto& r : t.action_results) {
    out += fmt::format("|{}/{}/{}/{}/{}/{}/{}/{}", r.action_name, r.action_state, r.start, r.last_updated,
                       r.is_revoke_result, r.failure_reason, r.failed_licenses, r.total_licenses);
  }
  return out + "\n";
}

std::string Canonical(const store::MobileApp& a) {
  return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}\n", a.id, a.token_id,
                     a.platform, a.adam_id, a.pricing_param, a.product_type, a.display_name, a.bundle_id, a.publisher,
                     a.total_licenses, a.used_licenses, a.device_assignable, a.revocable, a.app_store_url,
                     Opt(a.token_organization_name), Opt(a.token_apple_id), Opt(a.token_display_name),
                     a.token_account_type, a.created, a.last_modified, fmt::join(a.genres, ","), Opt(a.seller));
}

// --- the directory -------------------------------------------------------------------

struct DirectoryContent {
  std::vector<store::User> users;
  std::vector<store::Group> groups;
  std::vector<store::Device> devices;
  std::vector<store::ManagedDevice> managed;
  // Per group (in `groups`' order), its direct members, earliest membership first.
  std::vector<std::vector<store::GroupMember>> members;
};

Result<DirectoryContent> ReadDirectory(store::Store& s, const std::string& tenant) {
  DirectoryContent d;
  auto users = All<store::User>([&](const store::ListQuery& q) { return s.ListUsers(tenant, q); });
  if (!users) return Fail(users.error());
  auto groups = All<store::Group>([&](const store::ListQuery& q) { return s.ListGroups(tenant, q); });
  if (!groups) return Fail(groups.error());
  auto devices = All<store::Device>([&](const store::ListQuery& q) { return s.ListDevices(tenant, q); });
  if (!devices) return Fail(devices.error());
  auto managed = All<store::ManagedDevice>([&](const store::ListQuery& q) { return s.ListManagedDevices(tenant, q); });
  if (!managed) return Fail(managed.error());
  d.users = std::move(*users);
  d.groups = std::move(*groups);
  d.devices = std::move(*devices);
  d.managed = std::move(*managed);
  for (const store::Group& g : d.groups) {
    std::vector<store::GroupMember> members;
    for (std::int64_t skip = 0;; skip += kPage) {
      auto page = s.ListGroupMembers(tenant, g.id, skip, kPage);
      if (!page) return Fail(page.error());
      for (auto& m : page->items) members.push_back(std::move(m));
      if (!page->has_more) break;
    }
    d.members.push_back(std::move(members));
  }
  return d;
}

// The directory as text to digest: every property, and each group's members in order
// (the order is what counts of seq: the copy renumbers it).
std::string Canonical(const DirectoryContent& d) {
  std::string out;
  for (const auto& u : d.users) {
    out +=
        fmt::format("u|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}\n", u.id, u.user_principal_name, Opt(u.display_name), Opt(u.mail),
                    Opt(u.given_name), Opt(u.surname), Opt(u.job_title), u.account_enabled, u.created, u.last_modified);
  }
  for (std::size_t i = 0; i < d.groups.size(); ++i) {
    const auto& g = d.groups[i];
    out += fmt::format("g|{}|{}|{}|{}|{}|{}|{}|{}|{}", g.id, g.display_name, Opt(g.description), Opt(g.mail_nickname),
                       g.mail_enabled, g.security_enabled, fmt::join(g.group_types, ","), g.created, g.last_modified);
    for (const auto& m : d.members[i])
      out += fmt::format("|{}/{}/{}", m.member_id, store::MemberKindName(m.kind), m.added);
    out += "\n";
  }
  for (const auto& v : d.devices) {
    out += fmt::format("d|{}|{}|{}|{}|{}|{}|{}|{}\n", v.id, v.device_id, Opt(v.display_name), Opt(v.operating_system),
                       Opt(v.operating_system_version), v.account_enabled, v.created, v.last_modified);
  }
  for (const auto& m : d.managed) {
    out += fmt::format("m|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}\n", m.id, Opt(m.serial_number), Opt(m.device_name),
                       Opt(m.azure_ad_device_id), Opt(m.user_id), Opt(m.user_principal_name), Opt(m.operating_system),
                       Opt(m.os_version), Opt(m.model), m.created, m.last_modified);
  }
  return out;
}

// Copies a tenant's directory with its times: each object created at its `created`,
// rewritten at its `last_modified`; memberships added in their order at their `added`.
Status CopyDirectory(store::Store& from, store::Store& to, FakeClock& clock, const std::string& tenant) {
  Result<DirectoryContent> d = ReadDirectory(from, tenant);
  if (!d) return Fail(d.error());
  auto copy = [&](const auto& item, auto create, auto update) -> Status {
    clock.Set(item.created);
    auto created = create(item);
    if (!created) return Fail(created.error());
    if (item.last_modified != item.created) {
      clock.Set(item.last_modified);
      auto touched = update(item.id);
      if (!touched) return Fail(touched.error());
    }
    return {};
  };
  for (const auto& u : d->users) {
    if (Status s = copy(
            u, [&](const store::User& x) { return to.CreateUser(tenant, x); },
            [&](const std::string& id) {
              return to.UpdateUser(tenant, id, [](store::User&) -> Status { return {}; });
            });
        !s) {
      return s;
    }
  }
  for (const auto& g : d->groups) {
    if (Status s = copy(
            g, [&](const store::Group& x) { return to.CreateGroup(tenant, x); },
            [&](const std::string& id) {
              return to.UpdateGroup(tenant, id, [](store::Group&) -> Status { return {}; });
            });
        !s) {
      return s;
    }
  }
  for (const auto& v : d->devices) {
    if (Status s = copy(
            v, [&](const store::Device& x) { return to.CreateDevice(tenant, x); },
            [&](const std::string& id) {
              return to.UpdateDevice(tenant, id, [](store::Device&) -> Status { return {}; });
            });
        !s) {
      return s;
    }
  }
  for (const auto& m : d->managed) {
    if (Status s = copy(
            m, [&](const store::ManagedDevice& x) { return to.CreateManagedDevice(tenant, x); },
            [&](const std::string& id) {
              return to.UpdateManagedDevice(tenant, id, [](store::ManagedDevice&) -> Status { return {}; });
            });
        !s) {
      return s;
    }
  }
  // Memberships tenant-wide in their order (seq), so "earliest membership first" holds in the copy.
  std::vector<std::pair<const store::GroupMember*, const std::string*>> memberships;
  for (std::size_t i = 0; i < d->groups.size(); ++i) {
    for (const auto& m : d->members[i]) memberships.emplace_back(&m, &d->groups[i].id);
  }
  std::sort(memberships.begin(), memberships.end(),
            [](const auto& a, const auto& b) { return a.first->seq < b.first->seq; });
  for (const auto& [member, group_id] : memberships) {
    clock.Set(member->added);
    auto added = to.AddGroupMember(tenant, *group_id, member->member_id);
    if (!added) return Fail(added.error());
  }
  return {};
}

// --- what was assigned, and what vppd handed out ------------------------------------

struct Licensing {
  std::vector<store::AppAssignment> assignments;  // ordered by (app_id, id)
  std::vector<store::DeviceLicense> licenses;     // ordered by (adam_id, pricing_param, serial)
  std::vector<store::UserLicense> user_licenses;  // ordered by (adam_id, pricing_param, client_user_id)
};

Result<Licensing> ReadLicensing(store::Store& s, const std::string& tenant, const std::string& token) {
  Licensing l;
  auto assignments = s.ListAssignmentsOfToken(tenant, token);
  if (!assignments) return Fail(assignments.error());
  auto licenses = s.ListDeviceLicenses(tenant, token);
  if (!licenses) return Fail(licenses.error());
  l.assignments = std::move(*assignments);
  l.licenses = std::move(*licenses);
  auto user_licenses = s.ListUserLicenses(tenant, token);
  if (!user_licenses) return Fail(user_licenses.error());
  l.user_licenses = std::move(*user_licenses);
  return l;
}

std::string Canonical(const Licensing& l) {
  std::string out;
  for (const auto& a : l.assignments) {
    out += fmt::format("a|{}|{}|{}|{}|{}|{}|{}|{}|{}\n", a.id, a.app_id, a.intent, a.target_type, Opt(a.group_id),
                       a.settings_json, a.use_device_licensing, a.created, a.last_modified);
  }
  for (const auto& d : l.licenses) {
    out += fmt::format("l|{}|{}|{}|{}|{}|{}|{}|{}|{}\n", d.adam_id, d.pricing_param, d.serial_number, d.state,
                       d.error_code, d.error_message, d.event_id, d.cause, d.updated);
  }
  for (const auto& u : l.user_licenses) {
    out += fmt::format("u|{}|{}|{}|{}|{}|{}|{}|{}|{}\n", u.adam_id, u.pricing_param, u.client_user_id, u.state,
                       u.error_code, u.error_message, u.event_id, u.cause, u.updated);
  }
  return out;
}

// Copies a token's app assignments (with their times) and the device licences
// and user licences vppd handed out. Apple events still in flight are not carried over: migrate
// after `vppd reconcile TOKEN --wait` (README).
Status CopyLicensing(store::Store& from, store::Store& to, FakeClock& clock, const std::string& tenant,
                     const std::string& token) {
  Result<Licensing> l = ReadLicensing(from, tenant, token);
  if (!l) return Fail(l.error());
  for (const store::AppAssignment& a : l->assignments) {
    clock.Set(a.created);
    auto created = to.CreateAppAssignment(tenant, a);
    if (!created) return Fail(created.error());
    if (a.last_modified != a.created) {
      clock.Set(a.last_modified);
      auto touched = to.UpdateAppAssignment(tenant, a.app_id, a.id, [](store::AppAssignment&) -> Status { return {}; });
      if (!touched) return Fail(touched.error());
    }
  }
  if (!l->licenses.empty()) {
    if (Status s = to.PutDeviceLicenses(tenant, token, l->licenses, {}); !s) return s;
  }
  if (!l->user_licenses.empty()) {
    if (Status s = to.PutUserLicenses(tenant, token, l->user_licenses, {}); !s) return s;
  }
  return {};
}

// --- what vppd keeps of people, revokes and Apple's notifications ----------------

// A token's rows beyond its sync's and its licences': the Apple users vppd
// registered (with the versionId of its last GET /users walk), where Apple sends
// the token's notifications, and the last reconcile's report. Its licence
// revokes are copied per tenant (RevokesOf), in the order they were asked.
struct TokenRecords {
  std::vector<store::AppleUser> apple_users;  // ordered by client_user_id
  std::string users_version;
  std::optional<store::NotificationEndpoint> endpoint;
  std::pair<std::string, Timestamp> report;  // ("", 0) when never reconciled
};

Result<TokenRecords> ReadRecords(store::Store& s, const std::string& tenant, const std::string& token) {
  TokenRecords r;
  auto users = s.ListAppleUsers(tenant, token);
  if (!users) return Fail(users.error());
  auto version = s.GetAppleUsersVersion(tenant, token);
  if (!version) return Fail(version.error());
  auto endpoint = s.GetNotificationEndpoint(tenant, token);
  if (!endpoint) return Fail(endpoint.error());
  auto report = s.GetReconcileReport(tenant, token);
  if (!report) return Fail(report.error());
  r.apple_users = std::move(*users);
  r.users_version = std::move(*version);
  r.endpoint = std::move(*endpoint);
  r.report = std::move(*report);
  return r;
}

std::string Canonical(const TokenRecords& r) {
  std::string out;
  for (const auto& u : r.apple_users) {
    out += fmt::format("p|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}\n", u.client_user_id, u.user_id, u.email, u.status,
                       u.invite_code, u.invite_url, u.id_hash, u.event_id, u.error_code, u.error_message, u.updated);
  }
  out += fmt::format("v|{}\n", r.users_version);
  if (r.endpoint) {
    const auto& e = *r.endpoint;
    out += fmt::format("n|{}|{}|{}|{}|{}|{}|{}|{}\n", e.location_key, e.apple_uid, e.auth_hash, e.previous_auth_hash,
                       e.previous_valid_until, e.stoken_expiration, e.registration, e.rotated);
  }
  out += fmt::format("r|{}|{}\n", r.report.second, Sha256Hex(r.report.first));
  return out;
}

// Copies them; the store stamps the report and the users' version with the clock.
Status CopyRecords(store::Store& from, store::Store& to, FakeClock& clock, const std::string& tenant,
                   const std::string& token) {
  Result<TokenRecords> r = ReadRecords(from, tenant, token);
  if (!r) return Fail(r.error());
  if (!r->apple_users.empty()) {
    if (Status s = to.PutAppleUsers(tenant, token, r->apple_users); !s) return s;
  }
  if (!r->users_version.empty()) {
    if (Status s = to.PutAppleUsersVersion(tenant, token, r->users_version); !s) return s;
  }
  if (r->endpoint) {
    // Created, then rotated once when it had a previous auth token: the copy
    // accepts the same bearers (Apple may be retrying a delivery with the old one).
    store::NotificationEndpoint e = *r->endpoint;
    if (!e.previous_auth_hash.empty()) {
      store::NotificationEndpoint first = e;
      first.auth_hash = e.previous_auth_hash;
      if (auto made = to.RotateNotificationEndpoint(first); !made) return Fail(made.error());
    }
    if (auto made = to.RotateNotificationEndpoint(e); !made) return Fail(made.error());
  }
  if (!r->report.first.empty()) {
    clock.Set(r->report.second);
    if (Status s = to.PutReconcileReport(tenant, token, r->report.first); !s) return s;
  }
  return {};
}

// The tenant's licence revokes, every token's, in the order they were asked (seq).
Result<std::vector<store::AppRevoke>> RevokesOf(store::Store& s, const std::string& tenant,
                                                const std::vector<store::VppToken>& tokens) {
  std::vector<store::AppRevoke> out;
  for (const auto& token : tokens) {
    auto revokes = s.ListAppRevokes(tenant, token.id);
    if (!revokes) return Fail(revokes.error());
    out.insert(out.end(), revokes->begin(), revokes->end());
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.seq < b.seq; });
  return out;
}

// seq is left out: the copy numbers the revokes again, in the same order.
std::string Canonical(const std::vector<store::AppRevoke>& revokes) {
  std::string out;
  for (const auto& r : revokes) {
    out += fmt::format("x|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}\n", r.id, r.token_id, r.app_id,
                       r.adam_id, r.pricing_param, r.action_name, r.user_id, r.managed_device_id, r.serial_number,
                       r.notify_managed_devices, r.revoke_untracked, r.action_state, r.failure_reason, r.total_licenses,
                       r.failed_licenses, r.error, r.start, r.last_updated);
  }
  return out;
}

// Each revoke recorded at its start, then its outcome at its last update.
Status CopyRevokes(store::Store& from, store::Store& to, FakeClock& clock, const std::string& tenant,
                   const std::vector<store::VppToken>& tokens) {
  Result<std::vector<store::AppRevoke>> revokes = RevokesOf(from, tenant, tokens);
  if (!revokes) return Fail(revokes.error());
  for (const store::AppRevoke& r : *revokes) {
    clock.Set(r.start);
    auto added = to.AddAppRevokes(tenant, {r}, 0);
    if (!added) return Fail(added.error());
    if (r.last_updated != r.start) {
      clock.Set(r.last_updated);
      if (Status s = to.UpdateAppRevoke(tenant, r); !s) return s;
    }
  }
  return {};
}

// Counts and digests of one store's content. Lists come ordered by id from every
// store, so their digest is of the concatenation; assignments come in an order
// each store chooses, so theirs is a sum of per-row hashes (order-free).
struct Inventory {
  std::string installation_id;
  std::int64_t tenants = 0, tokens = 0, apps = 0, assignments = 0;
  std::int64_t directory_objects = 0, memberships = 0;    // users, groups, devices, managed devices; members
  std::int64_t app_assignments = 0, device_licenses = 0;  // what admins assigned; what vppd handed out
  std::int64_t user_licenses = 0, apple_users = 0, revokes = 0;
  std::string tenants_digest, tokens_digest, apps_digest, directory_digest, licensing_digest, records_digest;
  std::uint64_t assignments_digest = 0;

  bool operator==(const Inventory&) const = default;
  std::string Describe() const {
    return fmt::format(
        "{} tenants, {} tokens, {} apps, {} license assignments, {} directory objects, {} memberships, "
        "{} app assignments, {} device licences handed out, {} user licences handed out, {} Apple users, "
        "{} licence revokes (installation id {})",
        tenants, tokens, apps, assignments, directory_objects, memberships, app_assignments, device_licenses,
        user_licenses, apple_users, revokes, installation_id);
  }
};

std::uint64_t RowHash(const store::LicenseAssignment& a, const std::string& token_id) {
  const std::string hex =
      Sha256Hex(fmt::format("{}|{}|{}|{}|{}", token_id, a.adam_id, a.pricing_param, a.client_user_id, a.serial_number));
  return std::stoull(hex.substr(0, 16), nullptr, 16);
}

Result<Inventory> Take(store::Store& s) {
  Inventory inv;
  std::string tenants_text, tokens_text, apps_text, licensing_text, records_text;
  // Both stores hold an id by now (MigrateStore sets it first): the proposal is not stored.
  Result<std::string> installation = s.InstallationId(NewGuid());
  if (!installation) return Fail(installation.error());
  inv.installation_id = std::move(*installation);
  Result<std::vector<store::Tenant>> tenants = s.ListTenants();
  if (!tenants) return Fail(tenants.error());
  for (const auto& tenant : *tenants) {
    ++inv.tenants;
    tenants_text += Canonical(tenant);
    Result<std::vector<store::VppToken>> tokens = Tokens(s, tenant.id);
    if (!tokens) return Fail(tokens.error());
    for (const auto& token : *tokens) {
      ++inv.tokens;
      Result<std::string> secret = s.GetTokenSecret(tenant.id, token.id);
      if (!secret) return Fail(secret.error());
      tokens_text += tenant.id + "/" + Canonical(token, *secret);
      Result<std::vector<store::MobileApp>> apps = AppsOf(s, tenant.id, token.id);
      if (!apps) return Fail(apps.error());
      for (const auto& app : *apps) {
        ++inv.apps;
        apps_text += Canonical(app);
      }
      Result<Licensing> licensing = ReadLicensing(s, tenant.id, token.id);
      if (!licensing) return Fail(licensing.error());
      inv.app_assignments += static_cast<std::int64_t>(licensing->assignments.size());
      inv.device_licenses += static_cast<std::int64_t>(licensing->licenses.size());
      inv.user_licenses += static_cast<std::int64_t>(licensing->user_licenses.size());
      licensing_text += tenant.id + "/" + token.id + "\n" + Canonical(*licensing);
      Result<TokenRecords> records = ReadRecords(s, tenant.id, token.id);
      if (!records) return Fail(records.error());
      inv.apple_users += static_cast<std::int64_t>(records->apple_users.size());
      records_text += tenant.id + "/" + token.id + "\n" + Canonical(*records);
      Status walked = s.ForEachAssignment(tenant.id, token.id, kBatch, [&](const auto& rows) -> Status {
        for (const auto& row : rows) {
          ++inv.assignments;
          inv.assignments_digest += RowHash(row, token.id);
        }
        return {};
      });
      if (!walked) return Fail(walked.error());
    }
    Result<std::vector<store::AppRevoke>> revokes = RevokesOf(s, tenant.id, *tokens);
    if (!revokes) return Fail(revokes.error());
    inv.revokes += static_cast<std::int64_t>(revokes->size());
    records_text += tenant.id + "\n" + Canonical(*revokes);
  }
  std::string directory_text;
  for (const auto& tenant : *tenants) {
    Result<DirectoryContent> d = ReadDirectory(s, tenant.id);
    if (!d) return Fail(d.error());
    inv.directory_objects +=
        static_cast<std::int64_t>(d->users.size() + d->groups.size() + d->devices.size() + d->managed.size());
    for (const auto& m : d->members) inv.memberships += static_cast<std::int64_t>(m.size());
    directory_text += tenant.id + "\n" + Canonical(*d);
  }
  inv.directory_digest = Sha256Hex(directory_text);
  inv.tenants_digest = Sha256Hex(tenants_text);
  inv.tokens_digest = Sha256Hex(tokens_text);
  inv.apps_digest = Sha256Hex(apps_text);
  inv.licensing_digest = Sha256Hex(licensing_text);
  inv.records_digest = Sha256Hex(records_text);
  return inv;
}

// --- the copy ----------------------------------------------------------------------

Status CopyToken(store::Store& from, store::Store& to, FakeClock& clock, const std::string& tenant,
                 const store::VppToken& source) {
  Result<std::string> secret = from.GetTokenSecret(tenant, source.id);
  if (!secret) return Fail(secret.error());
  store::VppToken copy = source;
  copy.token = *secret;
  clock.Set(source.created);
  Result<store::VppToken> created = to.CreateToken(tenant, copy);
  if (!created) return Fail(created.error());

  // Apps and assignments go in the way a sync writes them: a job stages the rows
  // and its finish swaps them in with the apps, then restores every property.
  store::EnqueueOptions enqueue;
  enqueue.kind = kJobKind;
  Result<store::Store::Enqueued> queued =
      to.EnqueueJob(tenant, source.id, enqueue, [](store::VppToken&) -> Status { return {}; });
  if (!queued) return Fail(queued.error());
  // The clock jumps to the source's stamps, so the lease must outlast any of them.
  Result<std::optional<store::SyncJob>> job = to.ClaimJob(kWorker, clock.Now(), std::chrono::hours(24 * 365 * 100));
  if (!job) return Fail(job.error());
  if (!*job || (*job)->token_id != source.id) {
    return Fail(Error::FailedPrecondition("the target store handed out another job: is a vppd running on it?"));
  }
  Status walked = from.ForEachAssignment(tenant, source.id, kBatch,
                                         [&](const auto& rows) -> Status { return to.StageAssignments(**job, rows); });
  if (!walked) return Fail(walked.error());
  Result<std::vector<store::MobileApp>> apps = AppsOf(from, tenant, source.id);
  if (!apps) return Fail(apps.error());
  store::SyncSnapshot snapshot;
  snapshot.apps = std::move(*apps);
  snapshot.assignments = store::SyncSnapshot::Assignments::kReplaceWithStaged;
  clock.Set(source.last_modified);
  Result<store::VppToken> finished = to.FinishJob(**job, snapshot, [&](store::VppToken& t) -> Status {
    const Timestamp created_at = t.created;
    t = source;
    t.token.clear();  // keep the sealed sToken written by CreateToken
    t.created = created_at;
    return {};
  });
  if (!finished) return Fail(finished.error());
  if (Status s = CopyLicensing(from, to, clock, tenant, source.id); !s) return s;
  return CopyRecords(from, to, clock, tenant, source.id);
}

}  // namespace

Status MigrateStore(const MigrateOptions& options, std::FILE* out) {
  Result<Location> from = ParseLocation(options.from, "from");
  if (!from) return Fail(from.error());
  Result<Location> to = ParseLocation(options.to, "to");
  if (!to) return Fail(to.error());
  if (from->path_or_url == to->path_or_url) return Fail(Error::InvalidArgument("--from and --to are the same store"));

  std::string key_file = options.key_file;
  if (key_file.empty()) {
    if (!from->sqlite && !to->sqlite) {
      return Fail(Error::InvalidArgument("--secrets-key-file is required between two PostgreSQL databases"));
    }
    key_file = (from->sqlite ? from->data_dir : to->data_dir) + "/secret.key";
  }
  std::error_code ec;
  if (!std::filesystem::exists(key_file, ec)) {
    // Never create a key here: the source's sTokens are sealed with an existing one.
    return Fail(Error::NotFound("no sToken key at " + key_file + " (give --secrets-key-file)"));
  }
  Result<SecretBox> box = SecretBox::LoadOrCreate(key_file);
  if (!box) return Fail(box.error());
  auto secrets = std::make_shared<const SecretBox>(std::move(*box));

  Result<std::unique_ptr<store::Store>> source = Open(*from, secrets, nullptr, true);
  if (!source) return Fail(source.error());
  FakeClock clock(0);
  Result<std::unique_ptr<store::Store>> target = Open(*to, secrets, &clock, false);
  if (!target) return Fail(target.error());

  // vppd's identity at Apple goes first: a target that is already someone else
  // (another deployment's id) would take every location over from this one.
  // A SQLite source that predates the id in the store still has it in its data dir.
  Result<std::string> proposed = from->sqlite ? ProposedInstallationId(from->data_dir) : Result<std::string>(NewGuid());
  if (!proposed) return Fail(proposed.error());
  Result<std::string> source_id = (*source)->InstallationId(*proposed);
  if (!source_id) return Fail(source_id.error());
  Result<std::string> target_id = (*target)->InstallationId(*source_id);
  if (!target_id) return Fail(target_id.error());
  if (*target_id != *source_id) {
    return Fail(Error::FailedPrecondition(
        fmt::format("the target store already holds installation id {} where the source's is {}: it belongs to "
                    "another deployment (vppd at Apple), so migrate-store will not copy into it",
                    *target_id, *source_id)));
  }
  std::fprintf(out, "installation id: %s\n", source_id->c_str());

  Result<std::vector<store::Tenant>> existing = (*target)->ListTenants();
  if (!existing) return Fail(existing.error());
  if (!existing->empty()) {
    return Fail(Error::FailedPrecondition(
        fmt::format("the target store already holds {} tenant(s); migrate-store copies into an empty store only",
                    existing->size())));
  }
  Result<std::int64_t> running = (*source)->CountJobs();
  if (!running) return Fail(running.error());

  Result<Inventory> before = Take(**source);
  if (!before) return Fail(before.error());
  std::fprintf(out, "source: %s\n", before->Describe().c_str());
  std::fflush(out);

  Result<std::vector<store::Tenant>> tenants = (*source)->ListTenants();
  if (!tenants) return Fail(tenants.error());
  std::int64_t copied = 0, requeued = 0, revoke_jobs = 0;
  for (const auto& tenant : *tenants) {
    if (Status ok = (*target)->PutTenant(tenant); !ok) return ok;
    if (Status ok = CopyDirectory(**source, **target, clock, tenant.id); !ok) {
      return Fail(Error{ok.error().code,
                        fmt::format("copying the directory of tenant {}: {}", tenant.id, ok.error().message),
                        {},
                        {},
                        0});
    }
    Result<std::vector<store::VppToken>> tokens = Tokens(**source, tenant.id);
    if (!tokens) return Fail(tokens.error());
    for (const auto& token : *tokens) {
      if (Status ok = CopyToken(**source, **target, clock, tenant.id, token); !ok) {
        return Fail(Error{ok.error().code,
                          fmt::format("copying vppToken {} of tenant {}: {}", token.id, tenant.id, ok.error().message),
                          {},
                          {},
                          0});
      }
      if (++copied % 100 == 0)
        std::fprintf(out, "copied %lld of %lld tokens\n", static_cast<long long>(copied),
                     static_cast<long long>(before->tokens));
    }
    if (Status ok = CopyRevokes(**source, **target, clock, tenant.id, *tokens); !ok) {
      return Fail(Error{ok.error().code,
                        fmt::format("copying the licence revokes of tenant {}: {}", tenant.id, ok.error().message),
                        {},
                        {},
                        0});
    }
  }

  Result<Inventory> after = Take(**target);
  if (!after) return Fail(after.error());
  if (!(*after == *before)) {
    return Fail(Error::Internal("verification failed: the target holds " + after->Describe() + " (digests " +
                                after->tokens_digest.substr(0, 12) + "/" + after->apps_digest.substr(0, 12) +
                                ") where the source holds " + before->Describe() + " (digests " +
                                before->tokens_digest.substr(0, 12) + "/" + before->apps_digest.substr(0, 12) + ")"));
  }
  // Syncs that were queued or running in the source start again in the target
  // (a token shows lastSyncStatus inProgress while one is), and so do the
  // revokes not ended (their token's revokeAppLicenses job).
  for (const auto& tenant : *tenants) {
    Result<std::vector<store::VppToken>> tokens = Tokens(**target, tenant.id);
    if (!tokens) return Fail(tokens.error());
    for (const auto& token : *tokens) {
      auto open = (*target)->OpenAppRevokes(tenant.id, token.id);
      if (!open) return Fail(open.error());
      if (!open->empty()) {
        clock.Set(token.last_modified);
        auto queued = sync::RequestAppRevokes(**target, tenant.id, token.id, clock.Now());
        if (!queued) return Fail(queued.error());
        ++revoke_jobs;
      }
      if (token.last_sync_status != "inProgress") continue;
      store::EnqueueOptions enqueue;
      clock.Set(token.last_modified);
      Result<store::Store::Enqueued> queued =
          (*target)->EnqueueJob(tenant.id, token.id, enqueue, [](store::VppToken&) -> Status { return {}; });
      if (!queued) return Fail(queued.error());
      ++requeued;
    }
  }
  std::fprintf(out,
               "target: %s\nverified: counts equal; checksums of tenants %.12s, tokens %.12s, apps %.12s, "
               "assignments %016llx equal\n",
               after->Describe().c_str(), after->tenants_digest.c_str(), after->tokens_digest.c_str(),
               after->apps_digest.c_str(), static_cast<unsigned long long>(after->assignments_digest));
  if (*running > 0 || revoke_jobs > 0) {
    std::fprintf(out,
                 "%lld job(s) were queued or running in the source: %lld token sync(s) and %lld token(s)' revokes "
                 "queued again\n",
                 static_cast<long long>(*running), static_cast<long long>(requeued),
                 static_cast<long long>(revoke_jobs));
  }
  return {};
}

}  // namespace vppd::cli
