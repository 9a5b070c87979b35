#include <algorithm>
#include <tuple>

#include <boost/json.hpp>

#include "apple/client.h"
#include "service/service.h"
#include "sync/sync.h"

namespace vppd::service {
namespace {

// Applies the sToken to the token's derived properties (create and renewal).
Status ApplySToken(const std::string& stoken, Timestamp now, store::VppToken& token) {
  auto info = apple::DecodeSToken(stoken);
  if (!info) {
    Error e = info.error();
    e.message = "The 'token' property is not a valid sToken: " + e.message + ".";
    e.target = "token";
    return Fail(std::move(e));
  }
  // Kept as downloaded (the whole base64 text, trimmed): Apple wants it verbatim.
  const auto first = stoken.find_first_not_of(" \t\r\n");
  token.token = stoken.substr(first, stoken.find_last_not_of(" \t\r\n") - first + 1);
  token.organization_name = info->org_name;
  token.expiration = info->expiration;
  token.state = info->expiration <= now ? "expired" : "valid";
  return {};
}

void ApplySettings(const TokenChanges& c, store::VppToken& t) {
  if (c.account_type) t.account_type = *c.account_type;
  if (c.apple_id) t.apple_id = *c.apple_id;
  if (c.country_or_region) t.country_or_region = *c.country_or_region;
  if (c.display_name) t.display_name = *c.display_name;
  if (c.automatically_update_apps) t.automatically_update_apps = *c.automatically_update_apps;
  if (c.data_sharing_consent_granted) t.data_sharing_consent_granted = *c.data_sharing_consent_granted;
  if (c.claim_token_management_from_external_mdm) {
    t.claim_token_management_from_external_mdm = *c.claim_token_management_from_external_mdm;
  }
  if (c.role_scope_tag_ids) t.role_scope_tag_ids = *c.role_scope_tag_ids;
  if (c.delivery_protocol) t.delivery_protocol = *c.delivery_protocol;
}

Error TokenNotFound(const std::string& id) { return Error::NotFound("The vppToken '" + id + "' was not found.", id); }

// Store NotFound for a token becomes Graph's message; other errors pass through.
Error MapNotFound(Error e, const std::string& id) {
  return e.code == Code::kNotFound ? TokenNotFound(id) : std::move(e);
}

}  // namespace

VppTokens::VppTokens(store::Store& store, Options options)
    : store_(store), gate_(store, options), options_(options), clock_(options.clock ? options.clock : &Clock::Real()) {}

Gate::Gate(store::Store& store, const Options& options)
    : store_(store),
      profile_(options.profile),
      clock_(options.clock ? options.clock : &Clock::Real()),
      ttl_micros_(std::chrono::duration_cast<std::chrono::microseconds>(options.licensed_ttl).count()) {}

Status Gate::Admit(const Principal& caller, Operation op) {
  if (auto ok = Authorize(caller, op, profile_); !ok) return ok;
  const Timestamp now = clock_->Now();
  {
    std::lock_guard lock(mu_);
    if (auto it = licensed_until_.find(caller.tenant_id); it != licensed_until_.end() && it->second > now) return {};
  }
  auto tenant = store_.GetTenant(caller.tenant_id);
  if (!tenant) {
    if (tenant.error().code != Code::kNotFound) return Fail(tenant.error());
    return Fail(Error::PermissionDenied("Tenant '" + caller.tenant_id +
                                        "' is not registered with this service; an administrator adds it with "
                                        "'vppd tenant add'."));
  }
  if (!tenant->intune_licensed) {
    return Fail(Error::PermissionDenied("Tenant '" + caller.tenant_id +
                                        "' does not have an active Intune license, which Microsoft Graph API for "
                                        "Intune requires."));
  }
  std::lock_guard lock(mu_);
  if (licensed_until_.size() > 100'000) licensed_until_.clear();  // bounded: callers re-check once
  licensed_until_[caller.tenant_id] = now + ttl_micros_;
  return {};
}

Result<store::VppToken> VppTokens::Create(const Principal& caller, TokenChanges changes) {
  if (auto ok = gate_.Admit(caller, Operation::kCreateToken); !ok) return Fail(ok.error());
  if (!changes.token || changes.token->find_first_not_of(" \t\r\n") == std::string::npos) {
    return Fail(Error::InvalidArgument(
        "The 'token' property is required: the sToken (.vpptoken file content) downloaded from Apple School "
        "Manager or Apple Business Manager.",
        "token"));
  }
  store::VppToken token;
  if (auto ok = ApplySToken(*changes.token, Now(), token); !ok) return Fail(ok.error());
  ApplySettings(changes, token);
  token.last_sync_status = "none";
  auto created = store_.CreateToken(caller.tenant_id, std::move(token));
  if (!created && created.error().code == Code::kResourceExhausted) {
    return Fail(Error::ResourceExhausted("A tenant can hold at most " + std::to_string(store::kMaxTokensPerTenant) +
                                         " vppTokens; delete one before adding another."));
  }
  if (!created) return created;
  // As Intune does, a new token is synced at once.
  return QueueFirstSync(caller, std::move(*created));
}

Result<store::VppToken> VppTokens::QueueFirstSync(const Principal& caller, store::VppToken token) {
  auto queued =
      sync::RequestJob(store_, caller.tenant_id, token.id, "syncLicenses", "", Now(), options_.keep_action_results);
  if (!queued) return token;  // the token is saved; the daily schedule or the next request syncs it
  if (queued->queued && options_.on_job_queued) options_.on_job_queued();
  return std::move(queued->token);
}

Result<store::VppToken> VppTokens::Get(const Principal& caller, const std::string& id) {
  if (auto ok = gate_.Admit(caller, Operation::kReadTokens); !ok) return Fail(ok.error());
  auto token = store_.GetToken(caller.tenant_id, id);
  if (!token) return Fail(MapNotFound(token.error(), id));
  return token;
}

Result<store::Page<store::VppToken>> VppTokens::List(const Principal& caller, const store::ListQuery& query) {
  if (auto ok = gate_.Admit(caller, Operation::kReadTokens); !ok) return Fail(ok.error());
  return store_.ListTokens(caller.tenant_id, query);
}

Result<std::int64_t> VppTokens::Count(const Principal& caller, const std::optional<store::Expr>& filter) {
  if (auto ok = gate_.Admit(caller, Operation::kReadTokens); !ok) return Fail(ok.error());
  return store_.CountTokens(caller.tenant_id, filter);
}

Result<std::int64_t> VppTokens::CountExpiringBefore(const Principal& caller, Timestamp before) {
  if (auto ok = gate_.Admit(caller, Operation::kGetExpiringVppTokenCount); !ok) return Fail(ok.error());
  using store::Expr;
  return store_.CountTokens(caller.tenant_id, Expr::Apply(store::Op::kLt, {Expr::Of(store::Column::kTokenExpiration),
                                                                           Expr::Value(store::DateTime{before})}));
}

Result<store::VppToken> VppTokens::Update(const Principal& caller, const std::string& id, TokenChanges changes,
                                          std::optional<std::int64_t> if_version) {
  if (auto ok = gate_.Admit(caller, Operation::kUpdateToken); !ok) return Fail(ok.error());
  const Timestamp now = Now();
  auto apply = [&](store::VppToken& token) -> Status {
    if (changes.token) {
      if (auto ok = ApplySToken(*changes.token, now, token); !ok) return ok;
    }
    ApplySettings(changes, token);
    return {};
  };
  auto updated = store_.UpdateToken(caller.tenant_id, id, apply, if_version);
  if (!updated) return Fail(MapNotFound(updated.error(), id));
  if (changes.token) return QueueFirstSync(caller, std::move(*updated));  // a renewal is synced at once
  return updated;
}

Status VppTokens::Delete(const Principal& caller, const std::string& id, std::optional<std::int64_t> if_version) {
  if (auto ok = gate_.Admit(caller, Operation::kDeleteToken); !ok) return ok;
  auto deleted = store_.DeleteToken(caller.tenant_id, id, if_version);
  if (!deleted) return Fail(MapNotFound(deleted.error(), id));
  return {};
}

Result<store::VppToken> VppTokens::SyncLicenses(const Principal& caller, const std::string& id) {
  if (auto ok = gate_.Admit(caller, Operation::kSyncLicenses); !ok) return Fail(ok.error());
  auto queued = sync::RequestJob(store_, caller.tenant_id, id, "syncLicenses", "", Now(), options_.keep_action_results);
  if (!queued) return Fail(MapNotFound(queued.error(), id));
  if (queued->queued && options_.on_job_queued) options_.on_job_queued();
  return std::move(queued->token);
}

Status VppTokens::RevokeLicenses(const Principal& caller, const std::string& id, bool notify_managed_devices,
                                 std::optional<bool> revoke_untracked_licenses) {
  if (auto ok = gate_.Admit(caller, Operation::kRevokeLicenses); !ok) return ok;
  boost::json::object params;
  params["notifyManagedDevices"] = notify_managed_devices;
  params["revokeUntrackedLicenses"] = revoke_untracked_licenses.value_or(false);
  auto queued = sync::RequestJob(store_, caller.tenant_id, id, "revokeLicenses", boost::json::serialize(params), Now(),
                                 options_.keep_action_results);
  if (!queued) return Fail(MapNotFound(queued.error(), id));
  if (queued->queued && options_.on_job_queued) options_.on_job_queued();
  return {};
}

Status VppTokens::SyncLicenseCounts(const Principal& caller) {
  if (auto ok = gate_.Admit(caller, Operation::kSyncLicenseCounts); !ok) return ok;
  store::ListQuery query;
  query.filter =
      store::Expr::Apply(store::Op::kEq, {store::Expr::Of(store::Column::kTokenState), store::Expr::Value("valid")});
  query.limit = 500;
  bool any = false;
  for (;;) {
    auto page = store_.ListTokens(caller.tenant_id, query);
    if (!page) return Fail(page.error());
    for (const auto& t : page->items) {
      auto queued = sync::RequestJob(store_, caller.tenant_id, t.id, "syncLicenseCounts", "", Now(),
                                     options_.keep_action_results);
      if (!queued && queued.error().code != Code::kNotFound) return Fail(queued.error());
      any = any || (queued && queued->queued);
    }
    if (!page->has_more) break;
    query.skip += query.limit;
  }
  if (any && options_.on_job_queued) options_.on_job_queued();
  return {};
}

Result<std::vector<LicenseSummary>> VppTokens::GetLicensesForApp(const Principal& caller,
                                                                 const std::string& bundle_id) {
  if (auto ok = gate_.Admit(caller, Operation::kGetLicensesForApp); !ok) return Fail(ok.error());
  auto apps = store_.FindAppsByBundleId(caller.tenant_id, bundle_id);
  if (!apps) return Fail(apps.error());
  // An app on two platforms is one set of licenses: count each (token, asset) once.
  std::vector<LicenseSummary> out;
  std::vector<std::tuple<std::string, std::string, std::string>> seen;
  for (const auto& app : *apps) {
    if (app.product_type != kProductApp) continue;  // the adamId fallback may find a book
    const auto key = std::make_tuple(app.token_id, app.adam_id, app.pricing_param);
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
    seen.push_back(key);
    auto it = std::find_if(out.begin(), out.end(), [&](const LicenseSummary& s) { return s.token_id == app.token_id; });
    if (it == out.end()) {
      LicenseSummary s;
      s.token_id = app.token_id;
      s.apple_id = app.token_apple_id;
      s.organization_name = app.token_organization_name;
      out.push_back(std::move(s));
      it = out.end() - 1;
    }
    it->used += app.used_licenses;
    it->available += std::max<std::int64_t>(0, app.total_licenses - app.used_licenses);
  }
  return out;
}

MobileApps::MobileApps(store::Store& store, Options options)
    : store_(store), options_(std::move(options)), gate_(store, options_) {}

Result<store::Page<store::MobileApp>> MobileApps::List(const Principal& caller, const store::ListQuery& query) {
  if (auto ok = gate_.Admit(caller, Operation::kReadMobileApps); !ok) return Fail(ok.error());
  store::ListQuery apps_only = query;
  apps_only.filter = OfProductType(kProductApp, query.filter);
  return store_.ListApps(caller.tenant_id, apps_only);
}

Result<std::int64_t> MobileApps::Count(const Principal& caller, const std::optional<store::Expr>& filter) {
  if (auto ok = gate_.Admit(caller, Operation::kReadMobileApps); !ok) return Fail(ok.error());
  return store_.CountApps(caller.tenant_id, OfProductType(kProductApp, filter));
}

Result<store::MobileApp> MobileApps::Get(const Principal& caller, const std::string& id) {
  if (auto ok = gate_.Admit(caller, Operation::kReadMobileApps); !ok) return Fail(ok.error());
  auto app = store_.GetApp(caller.tenant_id, id);
  // A book is a managedEBook, not a mobileApp.
  if ((!app && app.error().code == Code::kNotFound) || (app && app->product_type != kProductApp)) {
    return Fail(Error::NotFound("The mobileApp '" + id + "' was not found.", id));
  }
  return app;
}

Result<store::Page<store::LicenseAssignment>> MobileApps::AssignedLicenses(const Principal& caller,
                                                                           const std::string& app_id, std::int64_t skip,
                                                                           std::int64_t limit) {
  if (auto ok = gate_.Admit(caller, Operation::kReadMobileApps); !ok) return Fail(ok.error());
  if (auto app = Get(caller, app_id); !app) return Fail(app.error());  // a book's licences are not a mobileApp's
  auto page = store_.ListAppAssignments(caller.tenant_id, app_id, skip, limit);
  if (!page && page.error().code == Code::kNotFound) {
    return Fail(Error::NotFound("The mobileApp '" + app_id + "' was not found.", app_id));
  }
  return page;
}

Result<store::Store::UntrackedPage> MobileApps::UntrackedLicenses(const Principal& caller, const std::string& app_id,
                                                                  std::int64_t cursor, std::int64_t limit) {
  if (auto app = Get(caller, app_id); !app) return Fail(app.error());  // admits, and a book is not a mobileApp
  return store_.ListUntrackedLicenses(caller.tenant_id, app_id, cursor, limit);
}

Result<std::map<std::string, std::int64_t>> MobileApps::UntrackedCounts(const Principal& caller,
                                                                        const std::vector<std::string>& app_ids) {
  if (auto ok = gate_.Admit(caller, Operation::kReadMobileApps); !ok) return Fail(ok.error());
  return store_.CountUntrackedLicenses(caller.tenant_id, app_ids);
}

Status Tenants::Put(const std::string& id, const std::string& display_name, bool intune_licensed) {
  if (!IsGuid(id)) return Fail(Error::InvalidArgument("tenant id '" + id + "' is not a GUID"));
  store::Tenant t;
  t.id = id;
  t.display_name = display_name;
  t.intune_licensed = intune_licensed;
  if (auto existing = store_.GetTenant(id)) t.created = existing->created;
  if (t.created == 0) t.created = Clock::Real().Now();
  return store_.PutTenant(t);
}

Result<std::vector<store::Tenant>> Tenants::List() { return store_.ListTenants(); }

Status Tenants::SetLicense(const std::string& id, bool intune_licensed) {
  auto t = store_.GetTenant(id);
  if (!t) return Fail(t.error());
  t->intune_licensed = intune_licensed;
  return store_.PutTenant(*t);
}

Status Tenants::Remove(const std::string& id) { return store_.RemoveTenant(id); }

}  // namespace vppd::service
