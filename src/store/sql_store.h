// Internal to store/: the Store both databases share, written once against a
// small transaction interface.
//
// SqlStore implements every Store method whose SQL and logic are the same on
// SQLite and PostgreSQL: tenants, tokens, apps, the job queue and leases, the
// assignment sets' registry (generations) and FinishJob's snapshot swap. A
// backend (SqliteStore, PgStore) derives from it and brings
//   - RunTx: how a transaction runs (SQLite: the writer's mutex and BEGIN
//     IMMEDIATE, or a pooled reader; PostgreSQL: a pooled connection, retried
//     when it loses a race, so a body may run more than once);
//   - a Tx per transaction: runs a statement and reads its rows;
//   - what only it does: how assignments are staged, read and merged, how a
//     job is picked (ClaimJob), its collector's batch and its open.
// Adding a table or a column is one migration per backend (migrations.cc,
// pg_migrations.cc) and one change here.
//
// Shared SQL is written with SQLite's placeholders (?1, ?2, ...); a PostgreSQL
// Tx rewrites them to $1, $2, ... Where the two databases need different words
// for the same thing (a row lock), the text comes from Dialect().
//
//   return InTx<VppToken>(TxKind::kWrite, [&](Tx& tx) -> Result<VppToken> {
//     if (Status s = tx.Query("SELECT ... WHERE id = ?1", {id}); !s) return Fail(s.error());
//     Result<bool> row = tx.Next();
//     ...
//   });
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/function_ref.h"
#include "store/filter_sql.h"
#include "store/store.h"

namespace vppd::store {

// One statement parameter: NULL, an integer, a bool (SQLite: 0/1) or text. Text
// is a view: the statement copies it when bound, unless it is Borrowed.
class SqlArg {
 public:
  enum class Kind { kNull, kInt, kBool, kText };
  SqlArg(std::nullopt_t) {}  // NOLINT: implicit, as all of these
  SqlArg(int v) : kind_(Kind::kInt), int_(v) {}
  SqlArg(long v) : kind_(Kind::kInt), int_(v) {}
  SqlArg(long long v) : kind_(Kind::kInt), int_(v) {}
  SqlArg(unsigned long v) : kind_(Kind::kInt), int_(static_cast<std::int64_t>(v)) {}
  SqlArg(bool v) : kind_(Kind::kBool), int_(v ? 1 : 0) {}
  SqlArg(std::string_view v) : kind_(Kind::kText), text_(v) {}
  SqlArg(const std::string& v) : kind_(Kind::kText), text_(v) {}
  SqlArg(const char* v) : kind_(Kind::kText), text_(v) {}
  SqlArg(const std::optional<std::string>& v) {
    if (v) *this = SqlArg(std::string_view(*v));
  }
  // Text the statement may keep a pointer to instead of a copy: it must stay
  // alive and unchanged until the statement's rows have been read (SQLite's
  // SQLITE_STATIC). For the hot read path.
  static SqlArg Borrowed(std::string_view v) {
    SqlArg arg(v);
    arg.borrowed_ = true;
    return arg;
  }

  Kind kind() const { return kind_; }
  std::int64_t integer() const { return int_; }  // kInt; kBool as 0/1
  std::string_view text() const { return text_; }
  bool borrowed() const { return borrowed_; }

 private:
  Kind kind_ = Kind::kNull;
  std::int64_t int_ = 0;
  std::string_view text_;
  bool borrowed_ = false;
};

// One transaction's statements, on one connection, one result at a time:
// Query runs a statement and makes its rows current (a new Query ends the
// previous result, so read what you need first); Next steps to a row, whose
// columns (0-based) the readers return. Failures are Errors, never exceptions.
// A Tx lives for one RunTx body and is used by one thread.
class Tx {
 public:
  using Args = std::initializer_list<SqlArg>;
  virtual ~Tx() = default;

  // A statement of fixed text (prepared once per connection and cached).
  virtual Status QueryArgs(std::string_view sql, std::span<const SqlArg> args) = 0;
  Status Query(std::string_view sql, Args args = {}) { return QueryArgs(sql, {args.begin(), args.size()}); }
  // A statement whose text depends on a query's shape: `builder`'s dialect and
  // parameters (a bounded cache on SQLite; parsed each time on PostgreSQL).
  virtual Status QueryBuilt(const std::string& sql, const SqlBuilder& builder) = 0;
  // true: a row is current; false: the result is done.
  virtual Result<bool> Next() = 0;
  virtual bool IsNull(int col) const = 0;
  virtual std::int64_t Int(int col) const = 0;  // 0 for NULL
  virtual std::string Text(int col) const = 0;
  // The column's text without a copy: valid until the next Next or Query.
  virtual std::string_view View(int col) const = 0;
  virtual std::optional<std::string> OptText(int col) const = 0;
  virtual bool Bool(int col) const = 0;
  // Rows the last INSERT/UPDATE/DELETE changed (after its result is done).
  virtual std::int64_t Changes() const = 0;
  // The current row as a whole, in one virtual call (the backend's column reads
  // are direct calls inside it: a token is 25 columns), as store_common.h's
  // readers read it: of "id, display_name, intune_licensed, created", of
  // TokenSelectList() and of AppSelectList().
  virtual Tenant TenantRow() const = 0;
  virtual Result<VppToken> TokenRow() const = 0;
  virtual MobileApp AppRow() const = 0;

  // Query, then every row stepped over: for INSERT/UPDATE/DELETE.
  Status ExecArgs(std::string_view sql, std::span<const SqlArg> args);
  Status Exec(std::string_view sql, Args args = {}) { return ExecArgs(sql, {args.begin(), args.size()}); }
  // Query, then its first row: false when there is none.
  Result<bool> QueryRow(std::string_view sql, Args args = {});
};

// How the body of a transaction is run (see RunTx).
enum class TxKind {
  kReadOne,  // one statement: its own snapshot, no BEGIN
  kRead,     // several statements, one snapshot
  kWrite,    // a read-modify-write
};

// A licence row's table, key and Graph state (licenses_sql.h), per DeviceLicense and UserLicense.
template <class Row>
struct LicenseTable;

class SqlStore : public Store {
 public:
  // The text a dialect needs for the same thing.
  struct Dialect {
    SqlDialect sql;
    // Appended to a SELECT whose rows the transaction will write: PostgreSQL's
    // row lock; "" on SQLite, whose writer holds the only write lock anyway.
    const char* for_update;
    // The same for a tenant row whose tokens are counted (PostgreSQL: NO KEY
    // UPDATE, which does not block the foreign-key checks of other writes).
    const char* for_tenant_update;
    // CreateToken's INSERT (its token_key comes from the database).
    std::string token_insert_sql;
  };

  // `secrets` and `clock` as in SqliteOptions/PostgresOptions.
  SqlStore(Dialect dialect, std::shared_ptr<const SecretBox> secrets, const Clock* clock,
           std::int64_t max_tokens_per_tenant);

  // Called once at open, before the collector starts: turns whatever a crash or
  // a bug could have left unaccounted for into garbage. Every state change is
  // transactional, so normally this finds nothing.
  Status Reconcile();

  // --- Store, written once ------------------------------------------------------
  Status PutTenant(const Tenant& tenant) override;
  Result<Tenant> GetTenant(const std::string& tenant_id) override;
  Result<std::vector<Tenant>> ListTenants() override;
  Status RemoveTenant(const std::string& tenant_id) override;
  Result<VppToken> CreateToken(const std::string& tenant_id, VppToken token) override;
  Result<VppToken> GetToken(const std::string& tenant_id, const std::string& id) override;
  Result<Page<VppToken>> ListTokens(const std::string& tenant_id, const ListQuery& query) override;
  Result<std::int64_t> CountTokens(const std::string& tenant_id, const std::optional<Expr>& filter) override;
  using Store::DeleteToken;
  using Store::UpdateToken;
  Result<VppToken> UpdateToken(const std::string& tenant_id, const std::string& id,
                               const std::function<Status(VppToken&)>& mutate,
                               std::optional<std::int64_t> if_version) override;
  Status DeleteToken(const std::string& tenant_id, const std::string& id,
                     std::optional<std::int64_t> if_version) override;
  Result<Page<MobileApp>> ListApps(const std::string& tenant_id, const ListQuery& query) override;
  Result<std::int64_t> CountApps(const std::string& tenant_id, const std::optional<Expr>& filter) override;
  Result<MobileApp> GetApp(const std::string& tenant_id, const std::string& app_id) override;
  Result<Page<LicenseAssignment>> ListAppAssignments(const std::string& tenant_id, const std::string& app_id,
                                                     std::int64_t skip, std::int64_t limit) override;
  Result<std::vector<MobileApp>> FindAppsByBundleId(const std::string& tenant_id,
                                                    const std::string& bundle_id) override;
  Result<std::vector<VppToken>> FindTokensByAppleUid(const std::string& tenant_id, const std::string& uid,
                                                     const std::string& except_token_id) override;
  Result<std::string> GetTokenSecret(const std::string& tenant_id, const std::string& id) override;
  // App assignments (assignments_sql.cc).
  Result<AppAssignment> CreateAppAssignment(const std::string& tenant_id, AppAssignment assignment) override;
  Result<AppAssignment> GetAppAssignment(const std::string& tenant_id, const std::string& app_id,
                                         const std::string& id) override;
  Result<std::vector<AppAssignment>> ListAssignmentsOfApp(const std::string& tenant_id,
                                                          const std::string& app_id) override;
  Result<std::vector<AppAssignment>> ListAssignmentsOfApps(const std::string& tenant_id,
                                                           const std::vector<std::string>& app_ids) override;
  Result<std::vector<AppAssignment>> ListAssignmentsOfToken(const std::string& tenant_id,
                                                            const std::string& token_id) override;
  Result<bool> IsAppAssigned(const std::string& tenant_id, const std::string& app_id) override;
  Result<AppAssignment> UpdateAppAssignment(const std::string& tenant_id, const std::string& app_id,
                                            const std::string& id,
                                            const std::function<Status(AppAssignment&)>& mutate) override;
  Status DeleteAppAssignment(const std::string& tenant_id, const std::string& app_id, const std::string& id) override;
  Result<std::vector<AppAssignment>> ReplaceAppAssignments(const std::string& tenant_id, const std::string& app_id,
                                                           std::vector<AppAssignment> assignments) override;
  Result<Enqueued> EnqueueJob(const std::string& tenant_id, const std::string& token_id, const EnqueueOptions& options,
                              const std::function<Status(VppToken&)>& mutate) override;
  Status RenewLease(const SyncJob& job, Timestamp lease_expires) override;
  Status ReleaseJob(const SyncJob& job, Timestamp not_before) override;
  Result<std::int64_t> CountJobs() override;
  Result<std::vector<SyncJob>> FindJobs(const std::string& tenant_id, const std::string& token_id) override;
  Status ClearStaged(const SyncJob& job) override;
  Result<VppToken> FinishJob(const SyncJob& job, const std::optional<SyncSnapshot>& snapshot,
                             const std::function<Status(VppToken&)>& mutate) override;
  Result<std::vector<DueToken>> TokensDueForSync(Timestamp before, int limit) override;
  Result<std::string> InstallationId(const std::string& proposed) override;
  // reconcile_sql.cc
  Result<std::vector<DeviceLicense>> ListDeviceLicenses(const std::string& tenant_id,
                                                        const std::string& token_id) override;
  Status PutDeviceLicenses(const std::string& tenant_id, const std::string& token_id,
                           const std::vector<DeviceLicense>& rows, const std::vector<DeviceLicense>& remove) override;
  Status RecordAppleEvent(const std::string& tenant_id, const std::string& token_id, const AppleEvent& event,
                          const std::vector<std::string>& serials, const std::string& cause) override;
  Result<std::vector<AppleEvent>> ListAppleEvents(const std::string& tenant_id, const std::string& token_id) override;
  Status DeferAppleEvent(const std::string& tenant_id, const std::string& token_id, const std::string& event_id,
                         Timestamp next_poll) override;
  Status CompleteAppleEvent(const std::string& tenant_id, const std::string& token_id, const std::string& event_id,
                            const AppleEventOutcome& outcome) override;
  Result<std::vector<DeviceLicenseState>> DeviceLicenseStates(const std::string& tenant_id,
                                                              const std::string& app_id) override;
  Result<std::vector<AppRevoke>> AddAppRevokes(const std::string& tenant_id, std::vector<AppRevoke> revokes,
                                               int keep) override;
  Result<std::vector<AppRevoke>> OpenAppRevokes(const std::string& tenant_id, const std::string& token_id) override;
  Status UpdateAppRevoke(const std::string& tenant_id, const AppRevoke& revoke) override;
  Result<std::vector<AppRevoke>> AppRevokesOfDevice(const std::string& tenant_id,
                                                    const std::string& managed_device_id) override;
  Result<std::vector<AppRevoke>> AppRevokesOf(const std::string& tenant_id,
                                              const std::vector<std::string>& app_ids) override;
  Result<std::vector<AppRevoke>> ListAppRevokes(const std::string& tenant_id, const std::string& token_id) override;
  Status PutReconcileReport(const std::string& tenant_id, const std::string& token_id,
                            const std::string& report_json) override;
  Result<std::pair<std::string, Timestamp>> GetReconcileReport(const std::string& tenant_id,
                                                               const std::string& token_id) override;
  // reconcile_changes_sql.cc
  Result<std::vector<ReconcileChange>> ListReconcileChanges(const std::string& tenant_id, const std::string& token_id,
                                                            std::size_t limit) override;
  Status NoteReconcileChanges(const std::string& tenant_id, const std::string& token_id,
                              const std::vector<std::string>& serials) override;
  Status ClearReconcileChanges(const std::string& tenant_id, const std::string& token_id,
                               const std::vector<ReconcileChange>& changes) override;
  Result<std::vector<SerialDevice>> DevicesOfSerials(const std::string& tenant_id,
                                                     const std::vector<std::string>& serials) override;
  Result<std::vector<DeviceLicense>> DeviceLicensesOfSerials(const std::string& tenant_id, const std::string& token_id,
                                                             const std::vector<std::string>& serials) override;
  Result<std::vector<DeviceLicenseTally>> TallyDeviceLicenses(const std::string& tenant_id, const std::string& token_id,
                                                              Timestamp since) override;
  // apple_users_sql.cc
  Result<std::vector<AppleUser>> ListAppleUsers(const std::string& tenant_id, const std::string& token_id) override;
  Result<std::vector<AppleUser>> AppleUsersNamed(const std::string& tenant_id, const std::string& token_id,
                                                 const std::vector<std::string>& client_user_ids) override;
  Status PutAppleUsers(const std::string& tenant_id, const std::string& token_id,
                       const std::vector<AppleUser>& rows) override;
  Result<std::vector<std::string>> UpdateAppleUsers(const std::string& tenant_id, const std::string& token_id,
                                                    const std::vector<AppleUserUpdate>& updates) override;
  Result<std::vector<std::pair<std::string, AppleUser>>> AppleUsersOfUser(const std::string& tenant_id,
                                                                          const std::string& user_id) override;
  Result<std::string> GetAppleUsersVersion(const std::string& tenant_id, const std::string& token_id) override;
  Status PutAppleUsersVersion(const std::string& tenant_id, const std::string& token_id,
                              const std::string& version_id) override;
  // untracked_sql.cc
  Result<UntrackedPage> ListUntrackedLicenses(const std::string& tenant_id, const std::string& app_id,
                                              std::int64_t cursor, std::int64_t limit) override;
  Result<std::map<std::string, std::int64_t>> CountUntrackedLicenses(const std::string& tenant_id,
                                                                     const std::vector<std::string>& app_ids) override;
  // user_licenses_sql.cc
  Result<std::vector<UserLicense>> ListUserLicenses(const std::string& tenant_id, const std::string& token_id) override;
  Status PutUserLicenses(const std::string& tenant_id, const std::string& token_id,
                         const std::vector<UserLicense>& rows, const std::vector<UserLicense>& remove) override;
  Status RecordUserLicenseEvent(const std::string& tenant_id, const std::string& token_id, const AppleEvent& event,
                                const std::vector<std::string>& client_user_ids, const std::string& cause) override;
  Result<std::vector<UserLicenseState>> UserLicenseStates(const std::string& tenant_id,
                                                          const std::string& app_id) override;
  Result<std::vector<GroupUser>> UserMembersOf(const std::string& tenant_id,
                                               const std::vector<std::string>& group_ids) override;
  Result<std::vector<GroupUser>> AllUsers(const std::string& tenant_id) override;
  // notifications_sql.cc
  Result<std::optional<NotificationEndpoint>> GetNotificationEndpoint(const std::string& tenant_id,
                                                                      const std::string& token_id) override;
  Result<NotificationEndpoint> FindNotificationEndpoint(const std::string& location_key) override;
  Result<NotificationEndpoint> RotateNotificationEndpoint(const NotificationEndpoint& next) override;
  Result<std::vector<std::pair<std::string, std::string>>> TokensToRegister(const std::string& registration,
                                                                            int limit) override;
  Result<bool> RecordNotification(const AppleNotification& n) override;
  Result<std::vector<AppleNotification>> PendingNotifications(int limit) override;
  Result<bool> FinishNotification(const AppleNotification& n, const std::string& state, Timestamp now) override;
  Result<CountChange> ApplyAssetCount(const AppleNotification& n, const std::string& adam_id,
                                      const std::string& pricing_param, std::int64_t delta, Timestamp now) override;
  Result<std::int64_t> DeleteNotificationsBefore(Timestamp before) override;
  Result<Timestamp> NewestAppChange() override;
  // Left to the backend: ClaimJob, StageAssignments, ForEachAssignment.

  // --- the directory (directory_sql.cc) ------------------------------------------
  Result<User> CreateUser(const std::string& tenant_id, User user) override;
  Result<User> GetUser(const std::string& tenant_id, const std::string& id) override;
  Result<Page<User>> ListUsers(const std::string& tenant_id, const ListQuery& query) override;
  Result<std::int64_t> CountUsers(const std::string& tenant_id, const std::optional<Expr>& filter) override;
  Result<User> UpdateUser(const std::string& tenant_id, const std::string& id,
                          const std::function<Status(User&)>& mutate) override;
  Status DeleteUser(const std::string& tenant_id, const std::string& id) override;
  Result<Group> CreateGroup(const std::string& tenant_id, Group group) override;
  Result<Group> GetGroup(const std::string& tenant_id, const std::string& id) override;
  Result<Page<Group>> ListGroups(const std::string& tenant_id, const ListQuery& query) override;
  Result<std::int64_t> CountGroups(const std::string& tenant_id, const std::optional<Expr>& filter) override;
  Result<Group> UpdateGroup(const std::string& tenant_id, const std::string& id,
                            const std::function<Status(Group&)>& mutate) override;
  Status DeleteGroup(const std::string& tenant_id, const std::string& id) override;
  Result<bool> GroupExists(const std::string& tenant_id, const std::string& group_id) override;
  Result<Device> CreateDevice(const std::string& tenant_id, Device device) override;
  Result<Device> GetDevice(const std::string& tenant_id, const std::string& id) override;
  Result<Page<Device>> ListDevices(const std::string& tenant_id, const ListQuery& query) override;
  Result<std::int64_t> CountDevices(const std::string& tenant_id, const std::optional<Expr>& filter) override;
  Result<Device> UpdateDevice(const std::string& tenant_id, const std::string& id,
                              const std::function<Status(Device&)>& mutate) override;
  Status DeleteDevice(const std::string& tenant_id, const std::string& id) override;
  Result<ManagedDevice> CreateManagedDevice(const std::string& tenant_id, ManagedDevice device) override;
  Result<ManagedDevice> GetManagedDevice(const std::string& tenant_id, const std::string& id) override;
  Result<Page<ManagedDevice>> ListManagedDevices(const std::string& tenant_id, const ListQuery& query) override;
  Result<std::int64_t> CountManagedDevices(const std::string& tenant_id, const std::optional<Expr>& filter) override;
  Result<ManagedDevice> UpdateManagedDevice(const std::string& tenant_id, const std::string& id,
                                            const std::function<Status(ManagedDevice&)>& mutate) override;
  Status DeleteManagedDevice(const std::string& tenant_id, const std::string& id) override;
  Result<GroupMember> AddGroupMember(const std::string& tenant_id, const std::string& group_id,
                                     const std::string& member_id) override;
  Status RemoveGroupMember(const std::string& tenant_id, const std::string& group_id,
                           const std::string& member_id) override;
  Result<Page<GroupMember>> ListGroupMembers(const std::string& tenant_id, const std::string& group_id,
                                             std::int64_t skip, std::int64_t limit) override;
  Result<std::int64_t> CountGroupMembers(const std::string& tenant_id, const std::string& group_id) override;
  Result<std::vector<GroupDevice>> DeviceMembersOf(const std::string& tenant_id,
                                                   const std::vector<std::string>& group_ids) override;
  Result<std::vector<GroupDevice>> AllManagedDevices(const std::string& tenant_id) override;
  Result<std::vector<GroupDevice>> ManagedDevicesBySerial(const std::string& tenant_id,
                                                          const std::vector<std::string>& serials) override;
  Result<ImportCounts> ImportUsers(const std::string& tenant_id, const std::vector<User>& rows) override;
  Result<ImportCounts> ImportDevices(const std::string& tenant_id, const std::vector<ImportedDevice>& rows) override;
  Result<ImportCounts> ImportGroups(const std::string& tenant_id, const std::vector<ImportedGroup>& rows) override;

  // One INSERT per row of a bulk write (an import): `columns` of `table` take
  // the row's values in order; `conflict` (may be "") follows the VALUES. The
  // type of each column says how PostgreSQL's unnest reads it.
  enum class BulkType { kText, kInt, kBool };
  struct BulkInsert {
    std::string table;
    std::vector<std::pair<std::string, BulkType>> columns;
    std::string conflict;
  };
  // The INSERT of one row of `spec` ("INSERT INTO t (a, b) VALUES (?1, ?2) <conflict>").
  static std::string BulkRowSql(const BulkInsert& spec);

 protected:
  // --- what a backend provides -----------------------------------------------------

  // Runs `body` as one transaction of `kind` with a Tx of the backend's: commits
  // when it succeeds, rolls back when it fails (its error is returned) or throws
  // (Internal). May run `body` again (PostgreSQL, a lost race). Unavailable when
  // no connection frees up in time.
  virtual Status RunTx(TxKind kind, FunctionRef<Status(Tx&)> body) = 0;
  // A transaction made garbage for the collector: wake it once it has committed.
  virtual void NoteGarbage() = 0;
  // A transaction made a staged set current (PostgreSQL refreshes its statistics).
  virtual void NoteNewSet() {}
  // FinishJob's work on the staged set before its own transaction (SQLite
  // merges the runs of apps staged in several calls). Quietly does nothing when
  // the lease is lost: FinishJob's transaction says so.
  virtual Status BeforeFinish(const SyncJob& /*job*/) { return {}; }
  // Inside FinishJob, before `staged` replaces the token's set: the set must then
  // hold no duplicate and exact counts.
  virtual Status PrepareStagedSet(Tx& /*tx*/, std::int64_t /*staged*/) { return {}; }
  // Inside FinishJob: adds the rows of set `staged` to set `current` (a delta),
  // duplicates dropped, and counts them in assignment_counts.
  virtual Status MergeDelta(Tx& tx, std::int64_t current, std::int64_t staged, const std::vector<MobileApp>& apps) = 0;

  // Inside ListAppAssignments' read: the assignments of (adam_id,
  // pricing_param) in set `generation`, ordered by (serial_number,
  // client_user_id), `limit` from `skip`.
  virtual Result<Page<LicenseAssignment>> ReadAppAssignments(Tx& tx, std::int64_t generation,
                                                             const std::string& adam_id,
                                                             const std::string& pricing_param, std::int64_t skip,
                                                             std::int64_t limit) = 0;
  // Inside an import's transaction: inserts `rows` (each as many values as
  // spec.columns) as `spec` says. Here: one cached statement run per row
  // (SQLite's prepared statement reused); PostgreSQL overrides it with a
  // statement per chunk of rows (unnest of one array per column).
  virtual Status BulkWrite(Tx& tx, const BulkInsert& spec, const std::vector<std::vector<SqlArg>>& rows);
  // Inside Reconcile: registers the sets that have rows but no registry row as
  // garbage; returns how many.
  virtual Result<std::int64_t> AdoptUnknownSets(Tx& tx) = 0;

  // --- shared helpers a backend uses inside its own transactions ----------------------

  // `body`'s result as a transaction of `kind` (see RunTx).
  template <class T, class Body>
  Result<T> InTx(TxKind kind, Body&& body) {
    if constexpr (std::is_void_v<T>) {
      return RunTx(kind, std::forward<Body>(body));
    } else {
      // One object returned (NRVO), so a row read is moved once, as it would
      // be without the transaction around it.
      Result<T> out(tl::unexpect, Error{});
      Status s = RunTx(kind, [&](Tx& tx) -> Status {
        out = body(tx);
        if (!out) return Fail(out.error());
        return {};
      });
      if (!s) out = Fail(std::move(s.error()));
      return out;
    }
  }

  // The job's integer key if `job`'s lease is still the caller's: the row exists
  // and has the lease owner and attempt count the claim returned (attempts fences
  // a worker that re-claims its own expired job under the same name); the row is
  // locked until the transaction ends. FailedPrecondition otherwise.
  Result<std::int64_t> CheckLease(Tx& tx, const SyncJob& job);
  // ClaimJob's write once a backend has picked job `key` (read by ReadJobRow):
  // leased to `worker` until `expires`; a dead worker's staged set retired.
  Result<std::optional<SyncJob>> ClaimPicked(Tx& tx, std::int64_t key, SyncJob job, const std::string& worker,
                                             Timestamp expires);
  // ClaimJob's pick: the oldest claimable job whose token runs no other job,
  // `extra` (" AND ...", may be "") added to its conditions, `suffix` after its
  // LIMIT; ?1 is now. Columns as kJobSelectList.
  std::string JobPickSql(std::string_view extra, std::string_view suffix) const;
  // The job's staging set, allocated on its first staged row (the caller holds
  // the job row: CheckLease).
  Result<std::int64_t> StagingGeneration(Tx& tx, const SyncJob& job, std::int64_t job_key);
  Result<std::optional<std::int64_t>> FindStagingGeneration(Tx& tx, std::int64_t job_key);
  // Assignments per (adam_id, pricing_param) of a set, from assignment_counts.
  static Result<std::map<std::pair<std::string, std::string>, std::int64_t>> StoredCounts(Tx& tx,
                                                                                          std::int64_t generation);
  // The token's integer key (assignment_generations.token_key). NotFound.
  Result<std::int64_t> TokenKey(Tx& tx, const std::string& tenant_id, const std::string& id, bool lock);
  // One step of ForEachAssignment's walk, as a read transaction of its own (so
  // no connection is held while the caller hands a batch on): checks, in its
  // snapshot, that the token still points at the set the walk began with
  // (`pinned`, set by the first step; the collector deletes a replaced set),
  // then calls `read_batch(tx, generation)` to read the rows after the
  // caller's cursor. `read_batch` may run more than once (a retried
  // transaction): it replaces what it read before. True when it ran; false when
  // the walk is over (the token has no set, or was deleted mid-walk). NotFound
  // when the token does not exist at the first step; FailedPrecondition when a
  // sync replaced the set.
  Result<bool> WalkStep(const std::string& tenant_id, const std::string& token_id, std::optional<std::int64_t>& pinned,
                        FunctionRef<Status(Tx&, std::int64_t)> read_batch);
  // A set's name in errors about its data.
  static std::string SetName(std::int64_t generation, const std::string& adam_id);

  const Dialect& dialect() const { return dialect_; }
  const Clock& clock() const { return clock_; }

 private:
  Result<VppToken> LoadToken(Tx& tx, const std::string& tenant_id, const std::string& id, bool lock);
  Result<VppToken> MutateToken(Tx& tx, const std::string& tenant_id, const std::string& id,
                               const std::function<Status(VppToken&)>& mutate,
                               std::optional<std::int64_t> if_version = std::nullopt);
  Result<VppToken> ApplyMutate(Tx& tx, const std::string& tenant_id, const VppToken& stored,
                               const std::function<Status(VppToken&)>& mutate);
  Result<std::vector<MobileApp>> QueryApps(Tx& tx, const std::string& sql, Tx::Args args);
  // PutAppleUsers and UpdateAppleUsers (apple_users_sql.cc).
  Result<std::vector<std::string>> WriteAppleUsers(const std::string& tenant_id, const std::string& token_id,
                                                   const std::vector<AppleUserUpdate>& updates, bool only_unchanged);
  // A user event's side of RecordAppleEvent and CompleteAppleEvent, inside their
  // transactions (apple_users_sql.cc).
  Status MarkUserEvent(Tx& tx, const std::string& tenant_id, const std::string& token_id, const AppleEvent& event,
                       const std::vector<std::string>& client_user_ids, Timestamp now);
  Status SettleUserEvent(Tx& tx, const std::string& tenant_id, const std::string& token_id, const std::string& event_id,
                         const std::string& kind, const AppleEventOutcome& outcome, Timestamp now);
  // The licence rows vppd hands out, one implementation over DeviceLicense and
  // UserLicense (licenses_sql.h); the public Store methods of both are these.
  template <class Row>
  Result<std::vector<Row>> ListLicenses(const std::string& tenant_id, const std::string& token_id);
  // Upserts `rows` and deletes `remove` in one transaction (updated 0: now); NotFound without the token.
  template <class Row>
  Status PutLicenses(const std::string& tenant_id, const std::string& token_id, const std::vector<Row>& rows,
                     const std::vector<Row>& remove);
  // An associate/disassociate Apple accepted, with its rows marked pending/reclaimPending (the caller checked
  // the event's id and kind).
  template <class Row>
  Status RecordLicenseEvent(const std::string& tenant_id, const std::string& token_id, const AppleEvent& event,
                            const std::vector<std::string>& keys, const std::string& cause);
  // CompleteAppleEvent's moves for an associate/disassociate's rows of this
  // kind; true when some of them are still in flight (a notification named
  // only some).
  template <class Row>
  Result<bool> SettleLicenses(Tx& tx, const std::string& tenant_id, const std::string& token_id,
                              const std::string& event_id, bool associate, const AppleEventOutcome& outcome,
                              Timestamp now);
  template <class Row>
  Result<std::vector<typename LicenseTable<Row>::State>> LicenseStates(const std::string& tenant_id,
                                                                       const std::string& app_id);
  // App assignments' helpers (assignments_sql.cc).
  Status CheckAppExists(Tx& tx, const std::string& tenant_id, const std::string& app_id);
  Status InsertAppAssignment(Tx& tx, const std::string& tenant_id, AppAssignment& assignment, Timestamp now);
  template <class T, class ReadRow>
  Result<Page<T>> ReadPage(const std::string& sql, const SqlBuilder& builder, std::int64_t limit, ReadRow&& read);
  Result<std::int64_t> Count(const std::string& sql, const SqlBuilder& builder);
  Status DeleteJob(Tx& tx, std::int64_t job_key);
  Status ApplySnapshot(Tx& tx, const SyncJob& job, std::int64_t token_key, std::int64_t job_key,
                       const SyncSnapshot& snapshot);
  Status CheckMergedCounts(Tx& tx, std::optional<std::int64_t> generation, const std::vector<MobileApp>& apps);
  Result<std::optional<std::int64_t>> CurrentGeneration(Tx& tx, std::int64_t token_key);
  Status PromoteStaged(Tx& tx, std::int64_t token_key, std::optional<std::int64_t> staged);
  Status RetireGeneration(Tx& tx, std::int64_t generation);
  Status RetireStaging(Tx& tx, std::int64_t job_key);
  Status RetireTokenGenerations(Tx& tx, std::int64_t token_key);

  // directory_sql.cc's generic parts, per entity type (User, Group, Device, ManagedDevice).
  template <class T>
  Result<T> CreateEntity(const std::string& tenant_id, T entity);
  template <class T>
  Result<T> GetEntity(const std::string& tenant_id, const std::string& id);
  template <class T>
  Result<Page<T>> ListEntities(const std::string& tenant_id, const ListQuery& query);
  template <class T>
  Result<std::int64_t> CountEntities(const std::string& tenant_id, const std::optional<Expr>& filter);
  template <class T>
  Result<T> UpdateEntity(const std::string& tenant_id, const std::string& id, const std::function<Status(T&)>& mutate);
  template <class T>
  Status DeleteEntity(const std::string& tenant_id, const std::string& id);
  // The directory's writers note, in their transaction, what the reconcile must
  // look at again (reconcile_changes_sql.cc): these serial numbers, those of the
  // managed devices enrolled as these Entra devices (object ids) or of these
  // managed devices (as they are at the call), or everything.
  Status NoteSerialsChanged(Tx& tx, const std::string& tenant_id, const std::vector<std::string>& serials);
  Status NoteEntraDevicesChanged(Tx& tx, const std::string& tenant_id,
                                 const std::vector<std::string>& device_object_ids);
  Status NoteManagedDevicesChanged(Tx& tx, const std::string& tenant_id,
                                   const std::vector<std::string>& managed_device_ids);
  Status NoteEverythingChanged(Tx& tx, const std::string& tenant_id);
  // An Apple event's devices (its rows), for that token only: a failed event's.
  Status NoteEventSerialsChanged(Tx& tx, const std::string& tenant_id, const std::string& token_id,
                                 const std::string& event_id);
  template <class T>
  Status NoteEntityChanged(Tx& tx, const std::string& tenant_id, const std::string& id);
  Status NoteMemberChanged(Tx& tx, const std::string& tenant_id, const std::string& member_id, MemberKind kind);
  // The SQL text of a JSON array parameter's values as a one-column subquery.
  std::string JsonValues(int param) const;
  Result<std::vector<GroupDevice>> QueryGroupDevices(const std::string& sql, Tx::Args args);

  const Dialect dialect_;
  const std::shared_ptr<const SecretBox> secrets_;
  const Clock& clock_;
  const std::int64_t max_tokens_;
  // Fixed statements whose text depends on the dialect, built once.
  const std::string load_token_sql_, load_token_locked_sql_, lock_token_version_sql_;
};

}  // namespace vppd::store
