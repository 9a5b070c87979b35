// The SQLite implementation of store::Store.
//
// Connections: one writer, guarded by a timed mutex, and a pool of query_only
// readers. Every method is one transaction: writes use BEGIN IMMEDIATE (the write
// lock up front, so a read-modify-write never fails half-way with SQLITE_BUSY),
// reads a deferred BEGIN, which in WAL mode reads one committed snapshot without
// waiting for the writer.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "store/filter_sql.h"
#include "store/migrations.h"
#include "store/sqlite_db.h"
#include "store/store.h"

namespace vppd::store {
namespace {

namespace json = boost::json;
using sqlite::Connection;
using sqlite::Stmt;

// 0001-01-01T00:00:00Z in microseconds: how Graph renders "never synced". The
// store keeps lastSyncDateTime in this form on disk (VppToken::last_sync uses 0),
// so filters and $orderby on it agree with what clients see.
constexpr Timestamp kGraphMinTime = -62135596800LL * 1000000;

constexpr std::int64_t kMaxPageSize = 100000;
constexpr std::size_t kMaxIdLength = 256;
constexpr int kMaxReaderConnections = 64;

Timestamp LastSyncToDisk(Timestamp t) { return t == 0 ? kGraphMinTime : t; }
Timestamp LastSyncFromDisk(Timestamp t) { return t == kGraphMinTime ? 0 : t; }

// The associated data a token's ciphertext is bound to: a sealed value copied to
// another row (or tenant) fails to open instead of yielding someone else's token.
std::string TokenAssociatedData(const std::string& tenant_id, const std::string& id) {
  return "vpp_tokens.token:" + tenant_id + "/" + id;
}

// --- the columns of vpp_tokens, in the order every statement binds/reads them ---

// Parameters ?1 = tenant_id, ?2 = id, then ?3... = these, in order.
constexpr const char* kTokenDataColumns[] = {
    "organization_name",
    "account_type",
    "apple_id",
    "expiration",
    "last_sync",
    "token_sealed",
    "last_modified",
    "state",
    "action_results",
    "last_sync_status",
    "automatically_update_apps",
    "country_or_region",
    "data_sharing_consent",
    "display_name",
    "location_name",
    "claim_from_external_mdm",
    "role_scope_tag_ids",
    "delivery_protocol",
    "last_app_count",
    "apple_uid",
    "apple_version_id",
    "created",
};
enum TokenCol : int {  // result-column indexes of kTokenSelectList
  kId,
  kOrganizationName,
  kAccountType,
  kAppleId,
  kExpiration,
  kLastSync,
  kTokenSealed,
  kLastModified,
  kState,
  kActionResults,
  kLastSyncStatus,
  kAutoUpdate,
  kCountry,
  kConsent,
  kDisplayName,
  kLocationName,
  kClaim,
  kRoleScopeTags,
  kDeliveryProtocol,
  kLastAppCount,
  kAppleUid,
  kAppleVersionId,
  kCreated,
  kTokenColCount
};
static_assert(std::size(kTokenDataColumns) + 1 == kTokenColCount);

const std::string& TokenSelectList() {
  static const std::string list = [] {
    std::string s = "id";
    for (const char* c : kTokenDataColumns) s += fmt::format(", {}", c);
    return s;
  }();
  return list;
}

const std::string& TokenInsertSql() {
  static const std::string sql = [] {
    std::string cols = "tenant_id, id", values = "?1, ?2";
    int n = 3;
    for (const char* c : kTokenDataColumns) {
      cols += fmt::format(", {}", c);
      values += fmt::format(", ?{}", n++);
    }
    return fmt::format("INSERT INTO vpp_tokens ({}) VALUES ({})", cols, values);
  }();
  return sql;
}

const std::string& TokenUpdateSql() {
  static const std::string sql = [] {
    std::string sets;
    int n = 3;
    for (const char* c : kTokenDataColumns) sets += fmt::format("{}{} = ?{}", sets.empty() ? "" : ", ", c, n++);
    return fmt::format("UPDATE vpp_tokens SET {} WHERE tenant_id = ?1 AND id = ?2", sets);
  }();
  return sql;
}

// --- JSON list columns ----------------------------------------------------------

std::string ActionResultsToJson(const std::vector<TokenActionResult>& results) {
  json::array array;
  for (const TokenActionResult& r : results) {
    array.push_back(json::object{
        {"actionName", r.action_name},
        {"actionState", r.action_state},
        {"start", r.start},
        {"lastUpdated", r.last_updated},
        {"isRevokeResult", r.is_revoke_result},
        {"failureReason", r.failure_reason},
        {"failedLicenses", r.failed_licenses},
        {"totalLicenses", r.total_licenses},
    });
  }
  return json::serialize(array);
}

Error CorruptColumn(std::string_view column, const std::string& id) {
  return Error::Internal(
      fmt::format("store: column {} of vpp_token {} is not valid JSON of the expected shape", column, id));
}

Result<std::vector<TokenActionResult>> ActionResultsFromJson(const std::string& text, const std::string& id) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_array()) return Fail(CorruptColumn("action_results", id));
  std::vector<TokenActionResult> results;
  for (const json::value& item : v.get_array()) {
    const json::object* o = item.if_object();
    if (o == nullptr) return Fail(CorruptColumn("action_results", id));
    TokenActionResult r;
    const json::string* name = nullptr;
    const json::string* state = nullptr;
    const json::string* reason = nullptr;
    const json::value* start = o->if_contains("start");
    const json::value* updated = o->if_contains("lastUpdated");
    const json::value* revoke = o->if_contains("isRevokeResult");
    const json::value* failed = o->if_contains("failedLicenses");
    const json::value* total = o->if_contains("totalLicenses");
    if (const json::value* x = o->if_contains("actionName")) name = x->if_string();
    if (const json::value* x = o->if_contains("actionState")) state = x->if_string();
    if (const json::value* x = o->if_contains("failureReason")) reason = x->if_string();
    if (!name || !state || !reason || !start || !start->is_int64() || !updated || !updated->is_int64() || !revoke ||
        !revoke->is_bool() || !failed || !failed->is_int64() || !total || !total->is_int64()) {
      return Fail(CorruptColumn("action_results", id));
    }
    r.action_name = std::string(*name);
    r.action_state = std::string(*state);
    r.failure_reason = std::string(*reason);
    r.start = start->get_int64();
    r.last_updated = updated->get_int64();
    r.is_revoke_result = revoke->get_bool();
    r.failed_licenses = static_cast<std::int32_t>(failed->get_int64());
    r.total_licenses = static_cast<std::int32_t>(total->get_int64());
    results.push_back(std::move(r));
  }
  return results;
}

std::string StringsToJson(const std::vector<std::string>& strings) {
  json::array array;
  for (const std::string& s : strings) array.emplace_back(s);
  return json::serialize(array);
}

Result<std::vector<std::string>> StringsFromJson(const std::string& text, const std::string& id) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_array()) return Fail(CorruptColumn("role_scope_tag_ids", id));
  std::vector<std::string> strings;
  for (const json::value& item : v.get_array()) {
    if (!item.is_string()) return Fail(CorruptColumn("role_scope_tag_ids", id));
    strings.emplace_back(item.get_string());
  }
  return strings;
}

// --- rows -----------------------------------------------------------------------

Result<VppToken> ReadToken(const Stmt& row, const std::string& tenant_id, const SecretBox& secrets) {
  VppToken t;
  t.id = row.Text(kId);
  t.organization_name = row.OptText(kOrganizationName);
  t.account_type = row.Text(kAccountType);
  t.apple_id = row.OptText(kAppleId);
  t.expiration = row.Int(kExpiration);
  t.last_sync = LastSyncFromDisk(row.Int(kLastSync));
  Result<std::string> token = secrets.Open(row.Text(kTokenSealed), TokenAssociatedData(tenant_id, t.id));
  if (!token) {
    // The message names the row, never the value.
    return Fail(Error::Internal(fmt::format(
        "store: the sealed sToken of vpp_token {} does not open (tampered with, or sealed under another key)", t.id)));
  }
  t.token = std::move(*token);
  t.last_modified = row.Int(kLastModified);
  t.state = row.Text(kState);
  Result<std::vector<TokenActionResult>> results = ActionResultsFromJson(row.Text(kActionResults), t.id);
  if (!results) return Fail(results.error());
  t.action_results = std::move(*results);
  t.last_sync_status = row.Text(kLastSyncStatus);
  t.automatically_update_apps = row.Int(kAutoUpdate) != 0;
  t.country_or_region = row.OptText(kCountry);
  t.data_sharing_consent_granted = row.Int(kConsent) != 0;
  t.display_name = row.OptText(kDisplayName);
  t.location_name = row.OptText(kLocationName);
  t.claim_token_management_from_external_mdm = row.Int(kClaim) != 0;
  Result<std::vector<std::string>> tags = StringsFromJson(row.Text(kRoleScopeTags), t.id);
  if (!tags) return Fail(tags.error());
  t.role_scope_tag_ids = std::move(*tags);
  t.delivery_protocol = row.Text(kDeliveryProtocol);
  t.last_app_count = static_cast<std::int32_t>(row.Int(kLastAppCount));
  t.apple_uid = row.OptText(kAppleUid);
  t.apple_version_id = row.OptText(kAppleVersionId);
  t.created = row.Int(kCreated);
  return t;
}

// Binds ?1..?24 of TokenInsertSql/TokenUpdateSql.
Status BindToken(Stmt& stmt, const std::string& tenant_id, const VppToken& t, const std::string& sealed) {
  int n = 1;
  Status s;
  auto bind = [&](const auto& value) {
    if (s) s = stmt.Bind(n, value);
    ++n;
  };
  auto bind_bool = [&](bool value) { bind(std::int64_t{value ? 1 : 0}); };
  bind(std::string_view(tenant_id));
  bind(std::string_view(t.id));
  bind(t.organization_name);
  bind(std::string_view(t.account_type));
  bind(t.apple_id);
  bind(std::int64_t{t.expiration});
  bind(std::int64_t{LastSyncToDisk(t.last_sync)});
  bind(std::string_view(sealed));
  bind(std::int64_t{t.last_modified});
  bind(std::string_view(t.state));
  bind(std::string_view(ActionResultsToJson(t.action_results)));
  bind(std::string_view(t.last_sync_status));
  bind_bool(t.automatically_update_apps);
  bind(t.country_or_region);
  bind_bool(t.data_sharing_consent_granted);
  bind(t.display_name);
  bind(t.location_name);
  bind_bool(t.claim_token_management_from_external_mdm);
  bind(std::string_view(StringsToJson(t.role_scope_tag_ids)));
  bind(std::string_view(t.delivery_protocol));
  bind(std::int64_t{t.last_app_count});
  bind(t.apple_uid);
  bind(t.apple_version_id);
  bind(std::int64_t{t.created});
  return s;
}

Error TokenNotFound(const std::string& id) { return Error::NotFound(fmt::format("vppToken '{}' not found", id), id); }
Error TenantNotFound(const std::string& id) { return Error::NotFound(fmt::format("tenant '{}' not found", id), id); }

// --- connections ----------------------------------------------------------------

// Reader connections, handed out one per call.
class ReaderPool {
 public:
  class Lease {
   public:
    Lease(ReaderPool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (conn_) pool_->Release(std::move(conn_));
    }
    Connection& conn() { return *conn_; }

   private:
    ReaderPool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  void Add(std::unique_ptr<Connection> conn) { idle_.push_back(std::move(conn)); }

  // Unavailable when no connection frees up within `wait`.
  Result<Lease> Acquire(std::chrono::milliseconds wait) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, wait, [this] { return !idle_.empty(); })) {
      return Fail(Error::Unavailable(fmt::format("store busy: no reader connection free within {} ms", wait.count())));
    }
    std::unique_ptr<Connection> conn = std::move(idle_.back());
    idle_.pop_back();
    return Lease(this, std::move(conn));
  }

 private:
  void Release(std::unique_ptr<Connection> conn) {
    {
      std::lock_guard lock(mu_);
      idle_.push_back(std::move(conn));
    }
    cv_.notify_one();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(const SqliteOptions& options, std::unique_ptr<Connection> writer)
      : secrets_(options.secrets),
        clock_(options.clock != nullptr ? *options.clock : Clock::Real()),
        max_tokens_(options.max_tokens_per_tenant),
        wait_(options.busy_timeout_ms),
        statement_timeout_(options.statement_timeout_ms),
        writer_(std::move(writer)) {}

  void AddReader(std::unique_ptr<Connection> conn) { readers_.Add(std::move(conn)); }

  // --- tenants ---

  Status PutTenant(const Tenant& tenant) override {
    if (tenant.id.empty() || tenant.id.size() > kMaxIdLength) {
      return Fail(Error::InvalidArgument("tenant id must be 1..256 characters", "id"));
    }
    Timestamp created = tenant.created != 0 ? tenant.created : clock_.Now();
    return Write<void>([&](Connection& c) -> Status {
      // Not INSERT OR REPLACE: REPLACE deletes the old row first, and the delete
      // would cascade to every token of the tenant.
      Result<Stmt> stmt = c.Prepare(
          "INSERT INTO tenants (id, display_name, intune_licensed, created) VALUES (?1, ?2, ?3, ?4) "
          "ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, "
          "intune_licensed = excluded.intune_licensed");
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindAll(*stmt, tenant.id, tenant.display_name, tenant.intune_licensed, created); !s) return s;
      return stmt->Run();
    });
  }

  Result<Tenant> GetTenant(const std::string& tenant_id) override {
    return Read<Tenant>([&](Connection& c) -> Result<Tenant> {
      Result<Stmt> stmt = c.Prepare("SELECT id, display_name, intune_licensed, created FROM tenants WHERE id = ?1");
      if (!stmt) return Fail(stmt.error());
      if (Status s = stmt->Bind(1, std::string_view(tenant_id)); !s) return Fail(s.error());
      Result<bool> row = stmt->Step();
      if (!row) return Fail(row.error());
      if (!*row) return Fail(TenantNotFound(tenant_id));
      return ReadTenant(*stmt);
    });
  }

  Result<std::vector<Tenant>> ListTenants() override {
    return Read<std::vector<Tenant>>([&](Connection& c) -> Result<std::vector<Tenant>> {
      Result<Stmt> stmt = c.Prepare("SELECT id, display_name, intune_licensed, created FROM tenants ORDER BY id");
      if (!stmt) return Fail(stmt.error());
      std::vector<Tenant> tenants;
      for (;;) {
        Result<bool> row = stmt->Step();
        if (!row) return Fail(row.error());
        if (!*row) return tenants;
        tenants.push_back(ReadTenant(*stmt));
      }
    });
  }

  Status RemoveTenant(const std::string& tenant_id) override {
    return Write<void>([&](Connection& c) -> Status {
      Result<Stmt> stmt = c.Prepare("DELETE FROM tenants WHERE id = ?1");
      if (!stmt) return Fail(stmt.error());
      if (Status s = stmt->Bind(1, std::string_view(tenant_id)); !s) return s;
      if (Status s = stmt->Run(); !s) return s;
      // changes() counts the tenant row only, not the rows the cascade removed.
      if (c.Changes() == 0) return Fail(TenantNotFound(tenant_id));
      return {};
    });
  }

  // --- tokens ---

  Result<VppToken> CreateToken(const std::string& tenant_id, VppToken token) override {
    if (token.id.empty()) token.id = NewGuid();
    if (token.id.size() > kMaxIdLength) return Fail(Error::InvalidArgument("vppToken id is too long", "id"));
    token.created = token.last_modified = clock_.Now();
    // Sealing is pure CPU: done before taking the write lock.
    Result<std::string> sealed = secrets_->Seal(token.token, TokenAssociatedData(tenant_id, token.id));
    if (!sealed) return Fail(sealed.error());
    return Write<VppToken>([&](Connection& c) -> Result<VppToken> {
      Result<Stmt> tenant = c.Prepare("SELECT 1 FROM tenants WHERE id = ?1");
      if (!tenant) return Fail(tenant.error());
      if (Status s = tenant->Bind(1, std::string_view(tenant_id)); !s) return Fail(s.error());
      Result<bool> found = tenant->Step();
      if (!found) return Fail(found.error());
      if (!*found) return Fail(TenantNotFound(tenant_id));

      Result<Stmt> count = c.Prepare("SELECT count(*), coalesce(sum(id = ?2), 0) FROM vpp_tokens WHERE tenant_id = ?1");
      if (!count) return Fail(count.error());
      if (Status s = BindAll(*count, tenant_id, token.id); !s) return Fail(s.error());
      Result<bool> row = count->Step();
      if (!row) return Fail(row.error());
      if (count->Int(1) != 0) {
        return Fail(Error::AlreadyExists(fmt::format("a vppToken with id '{}' already exists", token.id)));
      }
      if (count->Int(0) >= max_tokens_) {
        return Fail(Error::ResourceExhausted(
            fmt::format("the tenant already has {} vppTokens, the most it may have", max_tokens_)));
      }

      Result<Stmt> insert = c.Prepare(TokenInsertSql());
      if (!insert) return Fail(insert.error());
      if (Status s = BindToken(*insert, tenant_id, token, *sealed); !s) return Fail(s.error());
      if (Status s = insert->Run(); !s) return Fail(s.error());
      return token;
    });
  }

  Result<VppToken> GetToken(const std::string& tenant_id, const std::string& id) override {
    return Read<VppToken>([&](Connection& c) { return LoadToken(c, tenant_id, id); });
  }

  Result<Page<VppToken>> ListTokens(const std::string& tenant_id, const ListQuery& query) override {
    if (query.skip < 0) return Fail(Error::InvalidArgument("$skip must not be negative", "$skip"));
    if (query.limit < 0 || query.limit > kMaxPageSize) {
      return Fail(Error::InvalidArgument(fmt::format("$top must be between 0 and {}", kMaxPageSize), "$top"));
    }
    SqlBuilder builder;
    std::string where = fmt::format("tenant_id = {}", builder.Param(tenant_id));
    if (query.filter) {
      Result<std::string> filter = CompileFilter(*query.filter, VppTokenColumns(), builder);
      if (!filter) return Fail(filter.error());
      where += " AND " + *filter;
    }
    Result<std::string> order = CompileOrderBy(query.order_by, VppTokenColumns(), "id");
    if (!order) return Fail(order.error());
    std::string limit = builder.Param(std::int64_t{query.limit + 1});  // one extra row tells has_more
    std::string offset = builder.Param(std::int64_t{query.skip});
    std::string sql = fmt::format("SELECT {} FROM vpp_tokens WHERE {} ORDER BY {} LIMIT {} OFFSET {}",
                                  TokenSelectList(), where, *order, limit, offset);

    return Read<Page<VppToken>>([&](Connection& c) -> Result<Page<VppToken>> {
      Result<Stmt> stmt = c.PrepareDynamic(sql);
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindParams(*stmt, builder); !s) return Fail(s.error());
      Page<VppToken> page;
      for (;;) {
        Result<bool> row = stmt->Step();
        if (!row) return Fail(row.error());
        if (!*row) break;
        if (static_cast<std::int64_t>(page.items.size()) == query.limit) {
          page.has_more = true;
          break;
        }
        Result<VppToken> token = ReadToken(*stmt, tenant_id, *secrets_);
        if (!token) return Fail(token.error());
        page.items.push_back(std::move(*token));
      }
      return page;
    });
  }

  Result<std::int64_t> CountTokens(const std::string& tenant_id, const std::optional<Expr>& filter) override {
    SqlBuilder builder;
    std::string where = fmt::format("tenant_id = {}", builder.Param(tenant_id));
    if (filter) {
      Result<std::string> compiled = CompileFilter(*filter, VppTokenColumns(), builder);
      if (!compiled) return Fail(compiled.error());
      where += " AND " + *compiled;
    }
    std::string sql = fmt::format("SELECT count(*) FROM vpp_tokens WHERE {}", where);
    return Read<std::int64_t>([&](Connection& c) -> Result<std::int64_t> {
      Result<Stmt> stmt = c.PrepareDynamic(sql);
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindParams(*stmt, builder); !s) return Fail(s.error());
      Result<bool> row = stmt->Step();
      if (!row) return Fail(row.error());
      return stmt->Int(0);
    });
  }

  Result<VppToken> UpdateToken(const std::string& tenant_id, const std::string& id,
                               const std::function<Status(VppToken&)>& mutate) override {
    return Write<VppToken>([&](Connection& c) -> Result<VppToken> {
      Result<VppToken> stored = LoadToken(c, tenant_id, id);
      if (!stored) return stored;
      VppToken token = *stored;
      if (Status s = mutate(token); !s) return Fail(s.error());
      token.id = stored->id;
      token.created = stored->created;
      token.last_modified = clock_.Now();
      Result<std::string> sealed = secrets_->Seal(token.token, TokenAssociatedData(tenant_id, token.id));
      if (!sealed) return Fail(sealed.error());
      Result<Stmt> update = c.Prepare(TokenUpdateSql());
      if (!update) return Fail(update.error());
      if (Status s = BindToken(*update, tenant_id, token, *sealed); !s) return Fail(s.error());
      if (Status s = update->Run(); !s) return Fail(s.error());
      return token;
    });
  }

  Status DeleteToken(const std::string& tenant_id, const std::string& id) override {
    return Write<void>([&](Connection& c) -> Status {
      Result<Stmt> stmt = c.Prepare("DELETE FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2");
      if (!stmt) return Fail(stmt.error());
      if (Status s = BindAll(*stmt, tenant_id, id); !s) return s;
      if (Status s = stmt->Run(); !s) return s;
      if (c.Changes() == 0) return Fail(TokenNotFound(id));
      return {};
    });
  }

 private:
  static Tenant ReadTenant(const Stmt& row) { return Tenant{row.Text(0), row.Text(1), row.Int(2) != 0, row.Int(3)}; }

  Result<VppToken> LoadToken(Connection& c, const std::string& tenant_id, const std::string& id) {
    Result<Stmt> stmt =
        c.Prepare(fmt::format("SELECT {} FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2", TokenSelectList()));
    if (!stmt) return Fail(stmt.error());
    if (Status s = BindAll(*stmt, tenant_id, id); !s) return Fail(s.error());
    Result<bool> row = stmt->Step();
    if (!row) return Fail(row.error());
    if (!*row) return Fail(TokenNotFound(id));
    return ReadToken(*stmt, tenant_id, *secrets_);
  }

  // Binds ?1, ?2, ... in order. Strings by view, bools as 0/1, integers as int64.
  template <class... Args>
  static Status BindAll(Stmt& stmt, const Args&... args) {
    int n = 1;
    Status s;
    auto one = [&](const auto& v) {
      using T = std::decay_t<decltype(v)>;
      if (!s) return;
      if constexpr (std::is_same_v<T, bool>) {
        s = stmt.BindBool(n++, v);
      } else if constexpr (std::is_integral_v<T>) {
        s = stmt.Bind(n++, std::int64_t{v});
      } else {
        s = stmt.Bind(n++, std::string_view(v));
      }
    };
    (one(args), ...);
    return s;
  }

  static Status BindParams(Stmt& stmt, const SqlBuilder& builder) {
    int n = 1;
    for (const sqlite::SqlValue& v : builder.params()) {
      if (Status s = stmt.Bind(n++, v); !s) return s;
    }
    return {};
  }

  // Runs `body` inside one transaction on `c`: commits when it succeeds, rolls back
  // when it fails (or throws: no exception leaves the store, and the connection is
  // never left inside an open transaction).
  template <class T, class Body>
  Result<T> InTransaction(Connection& c, const char* begin, Body&& body) {
    if (Status s = c.Exec(begin); !s) return Fail(s.error());
    c.SetDeadline(std::chrono::steady_clock::now() + statement_timeout_);
    Result<T> result = Fail(Error::Internal("store: transaction body did not run"));
    try {
      result = body(c);
    } catch (const std::exception& e) {
      result = Fail(Error::Internal(fmt::format("store: exception inside a transaction: {}", e.what())));
    }
    c.ClearDeadline();
    if (!result) {
      (void)c.Exec("ROLLBACK");
      return result;
    }
    if (Status s = c.Exec("COMMIT"); !s) {
      (void)c.Exec("ROLLBACK");
      return Fail(s.error());
    }
    return result;
  }

  template <class T, class Body>
  Result<T> Read(Body&& body) {
    Result<ReaderPool::Lease> lease = readers_.Acquire(wait_);
    if (!lease) return Fail(lease.error());
    return InTransaction<T>(lease->conn(), "BEGIN", std::forward<Body>(body));
  }

  template <class T, class Body>
  Result<T> Write(Body&& body) {
    std::unique_lock lock(writer_mu_, std::defer_lock);
    if (!lock.try_lock_for(wait_)) {
      return Fail(Error::Unavailable(fmt::format("store busy: the writer stayed busy for {} ms", wait_.count())));
    }
    return InTransaction<T>(*writer_, "BEGIN IMMEDIATE", std::forward<Body>(body));
  }

  std::shared_ptr<const SecretBox> secrets_;
  const Clock& clock_;
  const std::int64_t max_tokens_;
  const std::chrono::milliseconds wait_;
  const std::chrono::milliseconds statement_timeout_;
  std::timed_mutex writer_mu_;
  std::unique_ptr<Connection> writer_;  // guarded by writer_mu_
  ReaderPool readers_;
};

}  // namespace

Result<std::unique_ptr<Store>> Store::OpenSqlite(const SqliteOptions& options) {
  if (options.secrets == nullptr) return Fail(Error::InvalidArgument("store: no SecretBox to seal sTokens with"));
  if (options.path.empty()) return Fail(Error::InvalidArgument("store: empty database path"));
  if (options.busy_timeout_ms <= 0 || options.statement_timeout_ms <= 0) {
    return Fail(Error::InvalidArgument("store: timeouts must be positive"));
  }
  if (options.reader_connections < 1 || options.reader_connections > kMaxReaderConnections) {
    return Fail(Error::InvalidArgument(fmt::format("store: reader_connections must be 1..{}", kMaxReaderConnections)));
  }
  sqlite::ConnectionOptions conn_options;
  conn_options.path = options.path;
  conn_options.busy_timeout_ms = options.busy_timeout_ms;
  conn_options.synchronous_full = options.synchronous_full;
  conn_options.enable_wal = false;  // not before the file is known to be vppd's
  Result<std::unique_ptr<Connection>> writer = Connection::Open(conn_options);
  if (!writer) return Fail(writer.error());
  if (Status s = CheckSchemaOwnership(**writer); !s) return Fail(s.error());
  if (Status s = (*writer)->EnableWal(); !s) return Fail(s.error());
  if (Status s = Migrate(**writer); !s) return Fail(s.error());
  conn_options.enable_wal = true;

  auto store = std::make_unique<SqliteStore>(options, std::move(*writer));
  conn_options.query_only = true;
  for (int i = 0; i < options.reader_connections; ++i) {
    Result<std::unique_ptr<Connection>> reader = Connection::Open(conn_options);
    if (!reader) return Fail(reader.error());
    store->AddReader(std::move(*reader));
  }
  spdlog::info("store: opened {} (schema version {}, {} readers, synchronous={})", options.path, LatestSchemaVersion(),
               options.reader_connections, options.synchronous_full ? "FULL" : "NORMAL");
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace vppd::store
