#include "apple/client.h"
#include "service/service.h"

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

Error TokenNotFound(const std::string& id) {
  return Error::NotFound("The vppToken '" + id + "' was not found.", id).WithGraphCode("ResourceNotFound");
}

// Store NotFound for a token becomes Graph's message; other errors pass through.
Error MapNotFound(Error e, const std::string& id) {
  return e.code == Code::kNotFound ? TokenNotFound(id) : std::move(e);
}

}  // namespace

VppTokens::VppTokens(store::Store& store, Options options)
    : store_(store), options_(options), clock_(options.clock ? options.clock : &Clock::Real()) {}

Status VppTokens::Admit(const Principal& caller, Operation op) {
  if (auto ok = Authorize(caller, op, options_.profile); !ok) return ok;
  auto tenant = store_.GetTenant(caller.tenant_id);
  if (!tenant) {
    if (tenant.error().code != Code::kNotFound) return Fail(tenant.error());
    return Fail(Error::PermissionDenied("Tenant '" + caller.tenant_id +
                                        "' is not registered with this service; an administrator adds it with "
                                        "'vppd tenant add'.")
                    .WithGraphCode("Forbidden"));
  }
  if (!tenant->intune_licensed) {
    return Fail(Error::PermissionDenied("Tenant '" + caller.tenant_id +
                                        "' does not have an active Intune license, which Microsoft Graph API for "
                                        "Intune requires.")
                    .WithGraphCode("Forbidden"));
  }
  return {};
}

Result<store::VppToken> VppTokens::Create(const Principal& caller, TokenChanges changes) {
  if (auto ok = Admit(caller, Operation::kCreateToken); !ok) return Fail(ok.error());
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
                                         " vppTokens; delete one before adding another.")
                    .WithGraphCode("BadRequest"));
  }
  return created;
}

Result<store::VppToken> VppTokens::Get(const Principal& caller, const std::string& id) {
  if (auto ok = Admit(caller, Operation::kReadTokens); !ok) return Fail(ok.error());
  auto token = store_.GetToken(caller.tenant_id, id);
  if (!token) return Fail(MapNotFound(token.error(), id));
  return token;
}

Result<store::Page<store::VppToken>> VppTokens::List(const Principal& caller, const store::ListQuery& query) {
  if (auto ok = Admit(caller, Operation::kReadTokens); !ok) return Fail(ok.error());
  return store_.ListTokens(caller.tenant_id, query);
}

Result<std::int64_t> VppTokens::Count(const Principal& caller, const std::optional<store::Expr>& filter) {
  if (auto ok = Admit(caller, Operation::kReadTokens); !ok) return Fail(ok.error());
  return store_.CountTokens(caller.tenant_id, filter);
}

Result<store::VppToken> VppTokens::Update(const Principal& caller, const std::string& id, TokenChanges changes) {
  if (auto ok = Admit(caller, Operation::kUpdateToken); !ok) return Fail(ok.error());
  const Timestamp now = Now();
  auto updated = store_.UpdateToken(caller.tenant_id, id, [&](store::VppToken& token) -> Status {
    if (changes.token) {
      if (auto ok = ApplySToken(*changes.token, now, token); !ok) return ok;
    }
    ApplySettings(changes, token);
    return {};
  });
  if (!updated) return Fail(MapNotFound(updated.error(), id));
  return updated;
}

Status VppTokens::Delete(const Principal& caller, const std::string& id) {
  if (auto ok = Admit(caller, Operation::kDeleteToken); !ok) return ok;
  auto deleted = store_.DeleteToken(caller.tenant_id, id);
  if (!deleted) return Fail(MapNotFound(deleted.error(), id));
  return {};
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
