// The directory's part of SqlStore (see sql_store.h): users, groups and their
// members, Entra devices and Intune managed devices, the reads the assignment
// and reconcile code rely on, and the bulk imports. Written once for both
// databases; the one thing a backend may do its own way is BulkWrite.
//
// Layout: 1. the entity table (columns, row readers, writers)  2. the generic
// create/get/list/update/delete  3. the Store methods per entity  4. members
// 5. devices through groups  6. imports.
//
// Memberships: group_members.member_id names a user, a device or a group
// (member_kind); no foreign key can say that, so deleting one of those deletes
// its rows here. seq is max(seq) + 1 of the tenant at the insert: increasing,
// so "earliest membership first" is an ORDER BY seq (two PostgreSQL writers
// racing may get the same seq; the order then falls back on ids, still stable).
#include <algorithm>
#include <deque>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "store/sql_store.h"
#include "store/store_common.h"

namespace vppd::store {

std::string_view MemberKindName(MemberKind kind) {
  switch (kind) {
    case MemberKind::kUser:
      return "user";
    case MemberKind::kDevice:
      return "device";
    case MemberKind::kGroup:
      return "group";
  }
  return "user";
}

namespace {

// DeviceMembersOf looks up at most this many devices by key; a larger group
// reads the tenant's devices in order instead.
constexpr std::size_t kDeviceLookupLimit = 1000;

// A hash map keyed by strings that finds by string_view without a copy.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

using BulkType = SqlStore::BulkType;

struct ColumnDef {
  const char* name;
  BulkType type;
};

// Text a row's SqlArgs view, kept alive (and never moved) until the statement ran.
using Scratch = std::deque<std::string>;

std::string_view Keep(Scratch& scratch, std::string text) { return scratch.emplace_back(std::move(text)); }

Error NotFoundError(const char* noun, const std::string& id) {
  return Error::NotFound(fmt::format("{} '{}' not found", noun, id), id);
}

// --- 1. the entity table ---------------------------------------------------------------
//
// Per entity: its table, the query table of its columns (store/query.h), its
// noun in errors, its columns in the order the readers and writers use (id
// first, created and last_modified last), how a row reads and how it writes.

template <class T>
struct Entity;

template <>
struct Entity<User> {
  static constexpr const char* kTable = "users";
  static constexpr Table kQuery = Table::kUsers;
  static constexpr const char* kNoun = "user";
  static constexpr ColumnDef kColumns[] = {
      {"id", BulkType::kText},           {"user_principal_name", BulkType::kText}, {"display_name", BulkType::kText},
      {"mail", BulkType::kText},         {"given_name", BulkType::kText},          {"surname", BulkType::kText},
      {"job_title", BulkType::kText},    {"account_enabled", BulkType::kBool},     {"created", BulkType::kInt},
      {"last_modified", BulkType::kInt},
  };
  static Result<User> Read(const Tx& row) {
    User u;
    u.id = row.Text(0);
    u.user_principal_name = row.Text(1);
    u.display_name = row.OptText(2);
    u.mail = row.OptText(3);
    u.given_name = row.OptText(4);
    u.surname = row.OptText(5);
    u.job_title = row.OptText(6);
    u.account_enabled = row.Bool(7);
    u.created = row.Int(8);
    u.last_modified = row.Int(9);
    return u;
  }
  static void Write(const User& u, Scratch&, std::vector<SqlArg>& out) {
    out.insert(out.end(), {u.id, u.user_principal_name, u.display_name, u.mail, u.given_name, u.surname, u.job_title,
                           u.account_enabled, u.created, u.last_modified});
  }
};

template <>
struct Entity<Group> {
  static constexpr const char* kTable = "groups";
  static constexpr Table kQuery = Table::kGroups;
  static constexpr const char* kNoun = "group";
  static constexpr ColumnDef kColumns[] = {
      {"id", BulkType::kText},           {"display_name", BulkType::kText},
      {"description", BulkType::kText},  {"mail_nickname", BulkType::kText},
      {"mail_enabled", BulkType::kBool}, {"security_enabled", BulkType::kBool},
      {"group_types", BulkType::kText},  {"created", BulkType::kInt},
      {"last_modified", BulkType::kInt},
  };
  static Result<Group> Read(const Tx& row) {
    Group g;
    g.id = row.Text(0);
    g.display_name = row.Text(1);
    g.description = row.OptText(2);
    g.mail_nickname = row.OptText(3);
    g.mail_enabled = row.Bool(4);
    g.security_enabled = row.Bool(5);
    Result<std::vector<std::string>> types = StringsFromJson(row.Text(6), g.id);
    if (!types) return Fail(types.error());
    g.group_types = std::move(*types);
    g.created = row.Int(7);
    g.last_modified = row.Int(8);
    return g;
  }
  static void Write(const Group& g, Scratch& scratch, std::vector<SqlArg>& out) {
    out.insert(out.end(), {g.id, g.display_name, g.description, g.mail_nickname, g.mail_enabled, g.security_enabled,
                           Keep(scratch, StringsToJson(g.group_types)), g.created, g.last_modified});
  }
};

template <>
struct Entity<Device> {
  static constexpr const char* kTable = "devices";
  static constexpr Table kQuery = Table::kDevices;
  static constexpr const char* kNoun = "device";
  static constexpr ColumnDef kColumns[] = {
      {"id", BulkType::kText},
      {"device_id", BulkType::kText},
      {"display_name", BulkType::kText},
      {"operating_system", BulkType::kText},
      {"operating_system_version", BulkType::kText},
      {"account_enabled", BulkType::kBool},
      {"created", BulkType::kInt},
      {"last_modified", BulkType::kInt},
  };
  static Result<Device> Read(const Tx& row) {
    Device d;
    d.id = row.Text(0);
    d.device_id = row.Text(1);
    d.display_name = row.OptText(2);
    d.operating_system = row.OptText(3);
    d.operating_system_version = row.OptText(4);
    d.account_enabled = row.Bool(5);
    d.created = row.Int(6);
    d.last_modified = row.Int(7);
    return d;
  }
  static void Write(const Device& d, Scratch&, std::vector<SqlArg>& out) {
    out.insert(out.end(), {d.id, d.device_id, d.display_name, d.operating_system, d.operating_system_version,
                           d.account_enabled, d.created, d.last_modified});
  }
};

template <>
struct Entity<ManagedDevice> {
  static constexpr const char* kTable = "managed_devices";
  static constexpr Table kQuery = Table::kManagedDevices;
  static constexpr const char* kNoun = "managedDevice";
  static constexpr ColumnDef kColumns[] = {
      {"id", BulkType::kText},
      {"serial_number", BulkType::kText},
      {"device_name", BulkType::kText},
      {"azure_ad_device_id", BulkType::kText},
      {"user_id", BulkType::kText},
      {"user_principal_name", BulkType::kText},
      {"operating_system", BulkType::kText},
      {"os_version", BulkType::kText},
      {"model", BulkType::kText},
      {"created", BulkType::kInt},
      {"last_modified", BulkType::kInt},
  };
  static Result<ManagedDevice> Read(const Tx& row) {
    ManagedDevice m;
    m.id = row.Text(0);
    m.serial_number = row.OptText(1);
    m.device_name = row.OptText(2);
    m.azure_ad_device_id = row.OptText(3);
    m.user_id = row.OptText(4);
    m.user_principal_name = row.OptText(5);
    m.operating_system = row.OptText(6);
    m.os_version = row.OptText(7);
    m.model = row.OptText(8);
    m.created = row.Int(9);
    m.last_modified = row.Int(10);
    return m;
  }
  static void Write(const ManagedDevice& m, Scratch&, std::vector<SqlArg>& out) {
    out.insert(out.end(), {m.id, m.serial_number, m.device_name, m.azure_ad_device_id, m.user_id, m.user_principal_name,
                           m.operating_system, m.os_version, m.model, m.created, m.last_modified});
  }
};

// The SQL of an entity, built once per type.
template <class T>
struct EntitySql {
  std::string select_list;      // "id, ..., last_modified"
  SqlStore::BulkInsert insert;  // tenant_id, then the columns; no conflict clause
  SqlStore::BulkInsert upsert;  // the same, replacing the row of (tenant_id, id) but its created
  std::string insert_sql, upsert_sql, get_sql;

  static const EntitySql& Get() {
    static const EntitySql sql = [] {
      EntitySql s;
      s.insert.table = Entity<T>::kTable;
      s.insert.columns.emplace_back("tenant_id", BulkType::kText);
      std::string sets;
      for (const ColumnDef& c : Entity<T>::kColumns) {
        if (!s.select_list.empty()) s.select_list += ", ";
        s.select_list += c.name;
        s.insert.columns.emplace_back(c.name, c.type);
        const std::string_view name = c.name;
        if (name == "id" || name == "created") continue;
        fmt::format_to(std::back_inserter(sets), "{}{} = excluded.{}", sets.empty() ? "" : ", ", name, name);
      }
      s.upsert = s.insert;
      s.upsert.conflict = " ON CONFLICT (tenant_id, id) DO UPDATE SET " + sets;
      s.insert_sql = SqlStore::BulkRowSql(s.insert);
      s.upsert_sql = SqlStore::BulkRowSql(s.upsert);
      s.get_sql = fmt::format("SELECT {} FROM {} WHERE tenant_id = ?1 AND id = ?2", s.select_list, Entity<T>::kTable);
      return s;
    }();
    return sql;
  }
};

// Writes `entity` of the tenant with `sql` (EntitySql's insert or upsert).
template <class T>
Status WriteEntity(Tx& tx, const std::string& sql, const std::string& tenant_id, const T& entity) {
  Scratch scratch;
  std::vector<SqlArg> args{SqlArg(tenant_id)};
  Entity<T>::Write(entity, scratch, args);
  return tx.ExecArgs(sql, args);
}

// Another object of the tenant holding what must be unique: AlreadyExists.
template <class T>
Status CheckUnique(Tx&, const std::string&, const T&) {
  return {};
}

template <>
Status CheckUnique(Tx& tx, const std::string& tenant_id, const User& user) {
  Result<bool> row =
      tx.QueryRow("SELECT id FROM users WHERE tenant_id = ?1 AND lower(user_principal_name) = lower(?2) AND id <> ?3",
                  {tenant_id, user.user_principal_name, user.id});
  if (!row) return Fail(row.error());
  if (*row) {
    return Fail(Error::AlreadyExists(
        fmt::format("another user already has the userPrincipalName '{}'", user.user_principal_name)));
  }
  return {};
}

template <>
Status CheckUnique(Tx& tx, const std::string& tenant_id, const Device& device) {
  Result<bool> row = tx.QueryRow("SELECT id FROM devices WHERE tenant_id = ?1 AND device_id = ?2 AND id <> ?3",
                                 {tenant_id, device.device_id, device.id});
  if (!row) return Fail(row.error());
  if (*row)
    return Fail(Error::AlreadyExists(fmt::format("another device already has the deviceId '{}'", device.device_id)));
  return {};
}

// What deleting an object removes besides its row: its memberships.
template <class T>
Status DeleteDependents(Tx& tx, const std::string& tenant_id, const std::string& id) {
  if constexpr (std::is_same_v<T, ManagedDevice>) {
    return {};
  } else {
    if constexpr (std::is_same_v<T, Group>) {
      if (Status s = tx.Exec("DELETE FROM group_members WHERE tenant_id = ?1 AND group_id = ?2", {tenant_id, id}); !s) {
        return s;
      }
    }
    return tx.Exec("DELETE FROM group_members WHERE tenant_id = ?1 AND member_id = ?2", {tenant_id, id});
  }
}

Status CheckTenant(Tx& tx, const std::string& tenant_id) {
  Result<bool> tenant = tx.QueryRow("SELECT 1 FROM tenants WHERE id = ?1", {tenant_id});
  if (!tenant) return Fail(tenant.error());
  if (!*tenant) return Fail(TenantNotFound(tenant_id));
  return {};
}

std::string JsonArray(const std::vector<std::string>& items) { return StringsToJson(items); }

}  // namespace

// What a write of one object changes for the reconcile (reconcile_changes_sql.cc),
// noted in the write's transaction: for a managed device its serial numbers
// before and after, for an Entra device those of the managed devices enrolled as
// it (as its deviceId was and is), for a group (deleted) everything it reached.
template <class T>
Status SqlStore::NoteEntityChanged(Tx& tx, const std::string& tenant_id, const std::string& id) {
  if constexpr (std::is_same_v<T, ManagedDevice>) {
    return NoteManagedDevicesChanged(tx, tenant_id, {id});
  } else if constexpr (std::is_same_v<T, Device>) {
    return NoteEntraDevicesChanged(tx, tenant_id, {id});
  } else if constexpr (std::is_same_v<T, Group>) {
    return NoteEverythingChanged(tx, tenant_id);
  } else {
    return {};  // users: the device pass does not look at them
  }
}

// --- 2. generic create/get/list/update/delete --------------------------------------------

std::string SqlStore::BulkRowSql(const BulkInsert& spec) {
  std::string names, values;
  for (std::size_t i = 0; i < spec.columns.size(); ++i) {
    fmt::format_to(std::back_inserter(names), "{}{}", i > 0 ? ", " : "", spec.columns[i].first);
    fmt::format_to(std::back_inserter(values), "{}?{}", i > 0 ? ", " : "", i + 1);
  }
  return fmt::format("INSERT INTO {} ({}) VALUES ({}){}", spec.table, names, values, spec.conflict);
}

Status SqlStore::BulkWrite(Tx& tx, const BulkInsert& spec, const std::vector<std::vector<SqlArg>>& rows) {
  const std::string sql = BulkRowSql(spec);  // the same text each row: one prepared statement
  for (const std::vector<SqlArg>& row : rows) {
    if (Status s = tx.ExecArgs(sql, row); !s) return s;
  }
  return {};
}

std::string SqlStore::JsonValues(int param) const {
  if (dialect_.sql == SqlDialect::kPostgres) {
    return fmt::format("SELECT value FROM json_array_elements_text(?{}::json) AS j (value)", param);
  }
  return fmt::format("SELECT value FROM json_each(?{})", param);
}

template <class T>
Result<T> SqlStore::CreateEntity(const std::string& tenant_id, T entity) {
  if (entity.id.empty()) entity.id = NewGuid();
  entity.created = entity.last_modified = clock_.Now();
  const EntitySql<T>& sql = EntitySql<T>::Get();
  return InTx<T>(TxKind::kWrite, [&](Tx& tx) -> Result<T> {
    if (Status s = CheckTenant(tx, tenant_id); !s) return Fail(s.error());
    Result<bool> taken = tx.QueryRow(sql.get_sql, {tenant_id, entity.id});
    if (!taken) return Fail(taken.error());
    if (*taken) {
      return Fail(
          Error::AlreadyExists(fmt::format("a {} with the id '{}' already exists", Entity<T>::kNoun, entity.id)));
    }
    if (Status s = CheckUnique(tx, tenant_id, entity); !s) return Fail(s.error());
    if (Status s = WriteEntity(tx, sql.insert_sql, tenant_id, entity); !s) return Fail(s.error());
    if constexpr (std::is_same_v<T, ManagedDevice>) {
      if (Status s = NoteEntityChanged<T>(tx, tenant_id, entity.id); !s) return Fail(s.error());
    }
    return entity;
  });
}

template <class T>
Result<T> SqlStore::GetEntity(const std::string& tenant_id, const std::string& id) {
  return InTx<T>(TxKind::kReadOne, [&](Tx& tx) -> Result<T> {
    Result<bool> row = tx.QueryRow(EntitySql<T>::Get().get_sql, {tenant_id, id});
    if (!row) return Fail(row.error());
    if (!*row) return Fail(NotFoundError(Entity<T>::kNoun, id));
    return Entity<T>::Read(tx);
  });
}

template <class T>
Result<Page<T>> SqlStore::ListEntities(const std::string& tenant_id, const ListQuery& query) {
  if (Status s = CheckPaging(query.skip, query.limit); !s) return Fail(s.error());
  SqlBuilder builder(dialect_.sql);
  Result<std::string> where = TenantWhere(tenant_id, query.filter, Entity<T>::kQuery, builder);
  if (!where) return Fail(where.error());
  Result<std::string> order = CompileOrderBy(query.order_by, Entity<T>::kQuery, "id", dialect_.sql);
  if (!order) return Fail(order.error());
  const std::string sql = PageSql(EntitySql<T>::Get().select_list, Entity<T>::kTable, *where, *order, query, builder);
  return InTx<Page<T>>(TxKind::kReadOne, [&](Tx& tx) -> Result<Page<T>> {
    if (Status s = tx.QueryBuilt(sql, builder); !s) return Fail(s.error());
    Page<T> page;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row || !RoomOnPage(page, query.limit)) return page;
      Result<T> item = Entity<T>::Read(tx);
      if (!item) return Fail(item.error());
      page.items.push_back(std::move(*item));
    }
  });
}

template <class T>
Result<std::int64_t> SqlStore::CountEntities(const std::string& tenant_id, const std::optional<Expr>& filter) {
  SqlBuilder builder(dialect_.sql);
  Result<std::string> where = TenantWhere(tenant_id, filter, Entity<T>::kQuery, builder);
  if (!where) return Fail(where.error());
  return Count(fmt::format("SELECT count(*) FROM {} WHERE {}", Entity<T>::kTable, *where), builder);
}

template <class T>
Result<T> SqlStore::UpdateEntity(const std::string& tenant_id, const std::string& id,
                                 const std::function<Status(T&)>& mutate) {
  const EntitySql<T>& sql = EntitySql<T>::Get();
  const std::string load = sql.get_sql + dialect_.for_update;
  return InTx<T>(TxKind::kWrite, [&](Tx& tx) -> Result<T> {
    Result<bool> row = tx.QueryRow(load, {tenant_id, id});
    if (!row) return Fail(row.error());
    if (!*row) return Fail(NotFoundError(Entity<T>::kNoun, id));
    Result<T> stored = Entity<T>::Read(tx);
    if (!stored) return stored;
    T updated = *stored;
    if (Status s = mutate(updated); !s) return Fail(s.error());
    updated.id = stored->id;
    updated.created = stored->created;
    updated.last_modified = clock_.Now();
    if (Status s = CheckUnique(tx, tenant_id, updated); !s) return Fail(s.error());
    // Before and after: what the object reached as it was, and as it is now.
    if constexpr (!std::is_same_v<T, Group>) {
      if (Status s = NoteEntityChanged<T>(tx, tenant_id, id); !s) return Fail(s.error());
    }
    if (Status s = WriteEntity(tx, sql.upsert_sql, tenant_id, updated); !s) return Fail(s.error());
    if constexpr (!std::is_same_v<T, Group>) {
      if (Status s = NoteEntityChanged<T>(tx, tenant_id, id); !s) return Fail(s.error());
    }
    return updated;
  });
}

template <class T>
Status SqlStore::DeleteEntity(const std::string& tenant_id, const std::string& id) {
  const std::string sql = fmt::format("DELETE FROM {} WHERE tenant_id = ?1 AND id = ?2", Entity<T>::kTable);
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    if (Status s = NoteEntityChanged<T>(tx, tenant_id, id); !s) return s;
    if (Status s = DeleteDependents<T>(tx, tenant_id, id); !s) return s;
    if (Status s = tx.Exec(sql, {tenant_id, id}); !s) return s;
    if (tx.Changes() == 0) return Fail(NotFoundError(Entity<T>::kNoun, id));
    return {};
  });
}

// --- 3. the Store methods per entity ---------------------------------------------------------

Result<User> SqlStore::CreateUser(const std::string& t, User v) { return CreateEntity(t, std::move(v)); }
Result<User> SqlStore::GetUser(const std::string& t, const std::string& id) { return GetEntity<User>(t, id); }
Result<Page<User>> SqlStore::ListUsers(const std::string& t, const ListQuery& q) { return ListEntities<User>(t, q); }
Result<std::int64_t> SqlStore::CountUsers(const std::string& t, const std::optional<Expr>& f) {
  return CountEntities<User>(t, f);
}
Result<User> SqlStore::UpdateUser(const std::string& t, const std::string& id,
                                  const std::function<Status(User&)>& mutate) {
  return UpdateEntity<User>(t, id, mutate);
}
Status SqlStore::DeleteUser(const std::string& t, const std::string& id) { return DeleteEntity<User>(t, id); }

Result<Group> SqlStore::CreateGroup(const std::string& t, Group v) { return CreateEntity(t, std::move(v)); }
Result<Group> SqlStore::GetGroup(const std::string& t, const std::string& id) { return GetEntity<Group>(t, id); }
Result<Page<Group>> SqlStore::ListGroups(const std::string& t, const ListQuery& q) { return ListEntities<Group>(t, q); }
Result<std::int64_t> SqlStore::CountGroups(const std::string& t, const std::optional<Expr>& f) {
  return CountEntities<Group>(t, f);
}
Result<Group> SqlStore::UpdateGroup(const std::string& t, const std::string& id,
                                    const std::function<Status(Group&)>& mutate) {
  return UpdateEntity<Group>(t, id, mutate);
}
Status SqlStore::DeleteGroup(const std::string& t, const std::string& id) { return DeleteEntity<Group>(t, id); }

Result<bool> SqlStore::GroupExists(const std::string& tenant_id, const std::string& group_id) {
  return InTx<bool>(TxKind::kReadOne, [&](Tx& tx) -> Result<bool> {
    return tx.QueryRow("SELECT 1 FROM groups WHERE tenant_id = ?1 AND id = ?2", {tenant_id, group_id});
  });
}

Result<Device> SqlStore::CreateDevice(const std::string& t, Device v) { return CreateEntity(t, std::move(v)); }
Result<Device> SqlStore::GetDevice(const std::string& t, const std::string& id) { return GetEntity<Device>(t, id); }
Result<Page<Device>> SqlStore::ListDevices(const std::string& t, const ListQuery& q) {
  return ListEntities<Device>(t, q);
}
Result<std::int64_t> SqlStore::CountDevices(const std::string& t, const std::optional<Expr>& f) {
  return CountEntities<Device>(t, f);
}
Result<Device> SqlStore::UpdateDevice(const std::string& t, const std::string& id,
                                      const std::function<Status(Device&)>& mutate) {
  return UpdateEntity<Device>(t, id, mutate);
}
Status SqlStore::DeleteDevice(const std::string& t, const std::string& id) { return DeleteEntity<Device>(t, id); }

Result<ManagedDevice> SqlStore::CreateManagedDevice(const std::string& t, ManagedDevice v) {
  return CreateEntity(t, std::move(v));
}
Result<ManagedDevice> SqlStore::GetManagedDevice(const std::string& t, const std::string& id) {
  return GetEntity<ManagedDevice>(t, id);
}
Result<Page<ManagedDevice>> SqlStore::ListManagedDevices(const std::string& t, const ListQuery& q) {
  return ListEntities<ManagedDevice>(t, q);
}
Result<std::int64_t> SqlStore::CountManagedDevices(const std::string& t, const std::optional<Expr>& f) {
  return CountEntities<ManagedDevice>(t, f);
}
Result<ManagedDevice> SqlStore::UpdateManagedDevice(const std::string& t, const std::string& id,
                                                    const std::function<Status(ManagedDevice&)>& mutate) {
  return UpdateEntity<ManagedDevice>(t, id, mutate);
}
Status SqlStore::DeleteManagedDevice(const std::string& t, const std::string& id) {
  return DeleteEntity<ManagedDevice>(t, id);
}

// --- 4. members ----------------------------------------------------------------------------

namespace {

// The kind of object `id` is in the tenant (users, then devices, then groups);
// nullopt when none.
Result<std::optional<MemberKind>> FindObjectKind(Tx& tx, const std::string& tenant_id, const std::string& id) {
  Result<bool> row = tx.QueryRow(
      "SELECT 0 FROM users WHERE tenant_id = ?1 AND id = ?2 UNION ALL "
      "SELECT 1 FROM devices WHERE tenant_id = ?1 AND id = ?2 UNION ALL "
      "SELECT 2 FROM groups WHERE tenant_id = ?1 AND id = ?2",
      {tenant_id, id});
  if (!row) return Fail(row.error());
  if (!*row) return std::optional<MemberKind>();
  return std::optional<MemberKind>(static_cast<MemberKind>(tx.Int(0)));
}

Result<bool> LockGroup(Tx& tx, const std::string& tenant_id, const std::string& group_id, const char* for_update) {
  return tx.QueryRow(std::string("SELECT 1 FROM groups WHERE tenant_id = ?1 AND id = ?2") + for_update,
                     {tenant_id, group_id});
}

Result<std::int64_t> NextSeq(Tx& tx, const std::string& tenant_id) {
  Result<bool> row =
      tx.QueryRow("SELECT coalesce(max(seq), 0) + 1 FROM group_members WHERE tenant_id = ?1", {tenant_id});
  if (!row) return Fail(row.error());
  return tx.Int(0);
}

MemberKind MemberKindOf(std::string_view name) {
  if (name == "device") return MemberKind::kDevice;
  if (name == "user") return MemberKind::kUser;
  return MemberKind::kGroup;
}

Error MemberNotFound(const std::string& id) {
  return Error::NotFound(fmt::format("directoryObject '{}' not found", id), id);
}

}  // namespace

Status SqlStore::NoteMemberChanged(Tx& tx, const std::string& tenant_id, const std::string& member_id,
                                   MemberKind kind) {
  switch (kind) {
    case MemberKind::kDevice:
      return NoteEntraDevicesChanged(tx, tenant_id, {member_id});
    case MemberKind::kGroup:
      return NoteEverythingChanged(tx, tenant_id);  // every device the nested group reaches
    case MemberKind::kUser:
      break;
  }
  return {};
}

Result<GroupMember> SqlStore::AddGroupMember(const std::string& tenant_id, const std::string& group_id,
                                             const std::string& member_id) {
  if (member_id == group_id) {
    return Fail(Error::InvalidArgument(fmt::format("group '{}' cannot be a member of itself", group_id), member_id));
  }
  const Timestamp now = clock_.Now();
  return InTx<GroupMember>(TxKind::kWrite, [&](Tx& tx) -> Result<GroupMember> {
    Result<bool> group = LockGroup(tx, tenant_id, group_id, dialect_.for_update);
    if (!group) return Fail(group.error());
    if (!*group) return Fail(NotFoundError("group", group_id));
    Result<std::optional<MemberKind>> kind = FindObjectKind(tx, tenant_id, member_id);
    if (!kind) return Fail(kind.error());
    if (!*kind) return Fail(MemberNotFound(member_id));
    Result<bool> already =
        tx.QueryRow("SELECT 1 FROM group_members WHERE tenant_id = ?1 AND group_id = ?2 AND member_id = ?3",
                    {tenant_id, group_id, member_id});
    if (!already) return Fail(already.error());
    if (*already) {
      return Fail(Error::AlreadyExists(fmt::format("'{}' is already a member of group '{}'", member_id, group_id)));
    }
    Result<std::int64_t> seq = NextSeq(tx, tenant_id);
    if (!seq) return Fail(seq.error());
    GroupMember member;
    member.member_id = member_id;
    member.kind = **kind;
    member.seq = *seq;
    member.added = now;
    if (Status s = tx.Exec("INSERT INTO group_members (tenant_id, group_id, member_id, member_kind, seq, added) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           {tenant_id, group_id, member_id, MemberKindName(member.kind), member.seq, now});
        !s) {
      return Fail(s.error());
    }
    if (Status s = NoteMemberChanged(tx, tenant_id, member_id, member.kind); !s) return Fail(s.error());
    return member;
  });
}

Status SqlStore::RemoveGroupMember(const std::string& tenant_id, const std::string& group_id,
                                   const std::string& member_id) {
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    Result<bool> group = LockGroup(tx, tenant_id, group_id, dialect_.for_update);
    if (!group) return Fail(group.error());
    if (!*group) return Fail(NotFoundError("group", group_id));
    Result<bool> member =
        tx.QueryRow("SELECT member_kind FROM group_members WHERE tenant_id = ?1 AND group_id = ?2 AND member_id = ?3",
                    {tenant_id, group_id, member_id});
    if (!member) return Fail(member.error());
    if (!*member) {
      return Fail(Error::NotFound(fmt::format("'{}' is not a member of group '{}'", member_id, group_id), member_id));
    }
    const MemberKind kind = MemberKindOf(tx.View(0));
    if (Status s = tx.Exec("DELETE FROM group_members WHERE tenant_id = ?1 AND group_id = ?2 AND member_id = ?3",
                           {tenant_id, group_id, member_id});
        !s) {
      return s;
    }
    return NoteMemberChanged(tx, tenant_id, member_id, kind);
  });
}

Result<Page<GroupMember>> SqlStore::ListGroupMembers(const std::string& tenant_id, const std::string& group_id,
                                                     std::int64_t skip, std::int64_t limit) {
  if (Status s = CheckPaging(skip, limit); !s) return Fail(s.error());
  const std::string users_sql = fmt::format("SELECT {} FROM users WHERE tenant_id = ?1 AND id IN ({})",
                                            EntitySql<User>::Get().select_list, JsonValues(2));
  const std::string devices_sql = fmt::format("SELECT {} FROM devices WHERE tenant_id = ?1 AND id IN ({})",
                                              EntitySql<Device>::Get().select_list, JsonValues(2));
  const std::string groups_sql = fmt::format("SELECT {} FROM groups WHERE tenant_id = ?1 AND id IN ({})",
                                             EntitySql<Group>::Get().select_list, JsonValues(2));
  return InTx<Page<GroupMember>>(TxKind::kRead, [&](Tx& tx) -> Result<Page<GroupMember>> {
    Result<bool> group = tx.QueryRow("SELECT 1 FROM groups WHERE tenant_id = ?1 AND id = ?2", {tenant_id, group_id});
    if (!group) return Fail(group.error());
    if (!*group) return Fail(NotFoundError("group", group_id));
    if (Status s = tx.Query("SELECT member_id, member_kind, seq, added FROM group_members "
                            "WHERE tenant_id = ?1 AND group_id = ?2 ORDER BY seq, member_id LIMIT ?3 OFFSET ?4",
                            {tenant_id, group_id, limit + 1, skip});
        !s) {
      return Fail(s.error());
    }
    Page<GroupMember> page;
    std::vector<std::string> ids[3];
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row || !RoomOnPage(page, limit)) break;
      GroupMember m;
      m.member_id = tx.Text(0);
      m.kind = MemberKindOf(tx.View(1));
      m.seq = tx.Int(2);
      m.added = tx.Int(3);
      ids[static_cast<int>(m.kind)].push_back(m.member_id);
      page.items.push_back(std::move(m));
    }
    std::unordered_map<std::string, GroupMember*> by_id;
    for (GroupMember& m : page.items) by_id[m.member_id] = &m;
    auto attach = [&](const std::string& sql, const std::vector<std::string>& list, auto read, auto set) -> Status {
      if (list.empty()) return {};
      if (Status s = tx.Query(sql, {tenant_id, JsonArray(list)}); !s) return s;
      for (;;) {
        Result<bool> row = tx.Next();
        if (!row) return Fail(row.error());
        if (!*row) return {};
        auto object = read(tx);
        if (!object) return Fail(object.error());
        if (auto it = by_id.find(object->id); it != by_id.end()) set(*it->second, std::move(*object));
      }
    };
    if (Status s = attach(
            users_sql, ids[0], [](const Tx& r) { return Entity<User>::Read(r); },
            [](GroupMember& m, User u) { m.user = std::move(u); });
        !s) {
      return Fail(s.error());
    }
    if (Status s = attach(
            devices_sql, ids[1], [](const Tx& r) { return Entity<Device>::Read(r); },
            [](GroupMember& m, Device d) { m.device = std::move(d); });
        !s) {
      return Fail(s.error());
    }
    if (Status s = attach(
            groups_sql, ids[2], [](const Tx& r) { return Entity<Group>::Read(r); },
            [](GroupMember& m, Group g) { m.group = std::move(g); });
        !s) {
      return Fail(s.error());
    }
    return page;
  });
}

Result<std::int64_t> SqlStore::CountGroupMembers(const std::string& tenant_id, const std::string& group_id) {
  return InTx<std::int64_t>(TxKind::kRead, [&](Tx& tx) -> Result<std::int64_t> {
    Result<bool> group = tx.QueryRow("SELECT 1 FROM groups WHERE tenant_id = ?1 AND id = ?2", {tenant_id, group_id});
    if (!group) return Fail(group.error());
    if (!*group) return Fail(NotFoundError("group", group_id));
    Result<bool> row =
        tx.QueryRow("SELECT count(*) FROM group_members WHERE tenant_id = ?1 AND group_id = ?2", {tenant_id, group_id});
    if (!row) return Fail(row.error());
    return tx.Int(0);
  });
}

// --- 5. devices through groups ----------------------------------------------------------------

Result<std::vector<GroupDevice>> SqlStore::QueryGroupDevices(const std::string& sql, Tx::Args args) {
  // The args view the caller's strings, alive for this call.
  std::vector<SqlArg> copied(args.begin(), args.end());
  return InTx<std::vector<GroupDevice>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<GroupDevice>> {
    if (Status s = tx.QueryArgs(sql, copied); !s) return Fail(s.error());
    std::vector<GroupDevice> devices;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return devices;
      devices.push_back({tx.Text(0), tx.Text(1), tx.Text(2), tx.Text(3), tx.Int(4)});
    }
  });
}

Result<std::vector<GroupDevice>> SqlStore::DeviceMembersOf(const std::string& tenant_id,
                                                           const std::vector<std::string>& group_ids) {
  if (group_ids.empty()) return std::vector<GroupDevice>{};
  // Three reads in one snapshot, joined here rather than by the database: the
  // groups asked about with every group nested in them (UNION, not UNION ALL: a
  // cycle adds no new row and ends the recursion) and the Entra devices they
  // hold, each with its earliest membership; then the managed devices enrolled
  // as those. A small group looks its devices up by key. A large one reads the
  // tenant's devices and managed devices in key order instead, since a lookup
  // per member lands on a random page each time (bench/README.md, "assign").
  // Joining here also keeps the plan independent of SQLite's planner, which
  // has no statistics to choose by.
  const std::string members_sql = fmt::format(
      "WITH RECURSIVE reached (group_id) AS ("
      "SELECT id FROM groups WHERE tenant_id = ?1 AND id IN ({}) "
      "UNION SELECT m.member_id FROM group_members m JOIN reached r ON m.group_id = r.group_id "
      "WHERE m.tenant_id = ?1 AND m.member_kind = 'group') "
      "SELECT m.member_id, min(m.seq) FROM reached r CROSS JOIN group_members m "
      "WHERE m.tenant_id = ?1 AND m.group_id = r.group_id AND m.member_kind = 'device' GROUP BY m.member_id",
      JsonValues(2));
  const std::string ids = JsonArray(group_ids);
  return InTx<std::vector<GroupDevice>>(TxKind::kRead, [&](Tx& tx) -> Result<std::vector<GroupDevice>> {
    StringMap<std::int64_t> seq_of_device;  // Entra device object id → earliest membership
    if (Status s = tx.Query(members_sql, {tenant_id, ids}); !s) return Fail(s.error());
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) break;
      seq_of_device.emplace(tx.View(0), tx.Int(1));
    }
    std::vector<GroupDevice> devices;
    if (seq_of_device.empty()) return devices;
    auto add = [&](Tx& t, std::int64_t seq) {
      if (t.View(1).empty()) return;  // no serial number: nothing to license
      devices.push_back({t.Text(0), t.Text(1), t.Text(2), t.Text(3), seq});
    };
    if (seq_of_device.size() <= kDeviceLookupLimit) {
      std::vector<std::string> member_ids;
      member_ids.reserve(seq_of_device.size());
      for (const auto& [id, seq] : seq_of_device) member_ids.push_back(id);
      const std::string list = JsonArray(member_ids);
      // No condition on the serial number here (it is checked below): the lookup
      // must go by the Entra device id, not by the serial-number index.
      const std::string sql = fmt::format(
          "SELECT md.id, coalesce(md.serial_number, ''), coalesce(md.device_name, ''), coalesce(md.user_id, ''), d.id "
          "FROM devices d CROSS JOIN managed_devices md "
          "WHERE d.tenant_id = ?1 AND d.id IN ({}) AND md.tenant_id = ?1 AND md.azure_ad_device_id = d.device_id",
          JsonValues(2));
      if (Status s = tx.Query(sql, {tenant_id, list}); !s) return Fail(s.error());
      for (;;) {
        Result<bool> row = tx.Next();
        if (!row) return Fail(row.error());
        if (!*row) break;
        add(tx, seq_of_device.find(tx.View(4))->second);
      }
    } else {
      StringMap<std::int64_t> seq_of_enrolment;  // devices.device_id → earliest membership
      seq_of_enrolment.reserve(seq_of_device.size());
      if (Status s = tx.Query("SELECT id, device_id FROM devices WHERE tenant_id = ?1", {tenant_id}); !s) {
        return Fail(s.error());
      }
      for (;;) {
        Result<bool> row = tx.Next();
        if (!row) return Fail(row.error());
        if (!*row) break;
        auto member = seq_of_device.find(tx.View(0));
        if (member != seq_of_device.end()) seq_of_enrolment.emplace(tx.View(1), member->second);
      }
      if (Status s =
              tx.Query("SELECT id, coalesce(serial_number, ''), coalesce(device_name, ''), coalesce(user_id, ''), "
                       "coalesce(azure_ad_device_id, '') FROM managed_devices WHERE tenant_id = ?1",
                       {tenant_id});
          !s) {
        return Fail(s.error());
      }
      devices.reserve(seq_of_enrolment.size());
      for (;;) {
        Result<bool> row = tx.Next();
        if (!row) return Fail(row.error());
        if (!*row) break;
        auto enrolled = seq_of_enrolment.find(tx.View(4));
        if (enrolled != seq_of_enrolment.end()) add(tx, enrolled->second);
      }
    }
    std::sort(devices.begin(), devices.end(), [](const GroupDevice& a, const GroupDevice& b) {
      return std::tie(a.seq, a.managed_device_id) < std::tie(b.seq, b.managed_device_id);
    });
    return devices;
  });
}

Result<std::vector<GroupDevice>> SqlStore::AllManagedDevices(const std::string& tenant_id) {
  return QueryGroupDevices(
      "SELECT id, serial_number, coalesce(device_name, ''), coalesce(user_id, ''), 0 FROM managed_devices "
      "WHERE tenant_id = ?1 AND coalesce(serial_number, '') <> '' ORDER BY id",
      {tenant_id});
}

Result<std::vector<GroupDevice>> SqlStore::ManagedDevicesBySerial(const std::string& tenant_id,
                                                                  const std::vector<std::string>& serials) {
  if (serials.empty()) return std::vector<GroupDevice>{};
  const std::string sql = fmt::format(
      "SELECT id, serial_number, coalesce(device_name, ''), coalesce(user_id, ''), 0 FROM managed_devices "
      "WHERE tenant_id = ?1 AND serial_number IN ({}) ORDER BY serial_number, id",
      JsonValues(2));
  const std::string list = JsonArray(serials);
  return QueryGroupDevices(sql, {tenant_id, list});
}

// --- 6. imports -----------------------------------------------------------------------------

namespace {

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

Error BadRow(std::size_t index, std::string message) {
  return Error::InvalidArgument(fmt::format("row {}: {}", index, message), std::to_string(index));
}

// Reads "key, id, created" rows of `sql` (?1 the tenant) into `out`: key -> (id, created).
Status ReadKeys(Tx& tx, const char* sql, const std::string& tenant_id,
                std::unordered_map<std::string, std::pair<std::string, Timestamp>>& out, bool lower) {
  if (Status s = tx.Query(sql, {tenant_id}); !s) return s;
  for (;;) {
    Result<bool> row = tx.Next();
    if (!row) return Fail(row.error());
    if (!*row) return {};
    std::string key = lower ? Lower(tx.Text(0)) : tx.Text(0);
    out.try_emplace(std::move(key), tx.Text(1), tx.Int(2));
  }
}

// Rows an import writes per BulkWrite: memory stays bounded however large the file.
constexpr std::size_t kBulkChunkRows = 10000;

// The rows of an import's write: the entities, and the SqlArgs that view them.
template <class T>
struct BulkRows {
  std::deque<T> entities;
  Scratch scratch;
  std::vector<std::vector<SqlArg>> rows;
  const T& Add(const std::string& tenant_id, T entity) {
    const T& kept = entities.emplace_back(std::move(entity));
    std::vector<SqlArg>& args = rows.emplace_back();
    args.reserve(12);
    args.emplace_back(tenant_id);
    Entity<T>::Write(kept, scratch, args);
    return kept;
  }
  bool Full() const { return rows.size() >= kBulkChunkRows; }
  void Clear() {
    rows.clear();
    scratch.clear();
    entities.clear();
  }
};

// SQLite: an import's inserts land all over several B-trees (random GUID keys), which
// thrash the writer's 2 MB page cache; for the transaction it may use 64 MB (the
// size sqlite_db.cc opens it with is restored after). Nothing on PostgreSQL.
class WideCache {
 public:
  WideCache(Tx& tx, SqlDialect dialect) : tx_(tx), on_(dialect == SqlDialect::kSqlite) {
    if (on_) (void)tx_.Exec("PRAGMA cache_size=-65536");
  }
  ~WideCache() {
    if (on_) (void)tx_.Exec("PRAGMA cache_size=-2000");
  }
  WideCache(const WideCache&) = delete;
  WideCache& operator=(const WideCache&) = delete;

 private:
  Tx& tx_;
  bool on_;
};

}  // namespace

Result<ImportCounts> SqlStore::ImportUsers(const std::string& tenant_id, const std::vector<User>& rows) {
  const Timestamp now = clock_.Now();
  return InTx<ImportCounts>(TxKind::kWrite, [&](Tx& tx) -> Result<ImportCounts> {
    if (Status s = CheckTenant(tx, tenant_id); !s) return Fail(s.error());
    std::unordered_map<std::string, std::pair<std::string, Timestamp>> by_upn;
    if (Status s = ReadKeys(tx, "SELECT user_principal_name, id, created FROM users WHERE tenant_id = ?1", tenant_id,
                            by_upn, true);
        !s) {
      return Fail(s.error());
    }
    ImportCounts counts;
    std::unordered_set<std::string> seen;
    WideCache cache(tx, dialect_.sql);
    BulkRows<User> bulk;
    const BulkInsert& upsert = EntitySql<User>::Get().upsert;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      User user = rows[i];
      if (user.user_principal_name.empty()) return Fail(BadRow(i, "userPrincipalName is required"));
      const std::string key = Lower(user.user_principal_name);
      if (!seen.insert(key).second) {
        return Fail(BadRow(i, fmt::format("userPrincipalName '{}' appears twice", user.user_principal_name)));
      }
      if (auto it = by_upn.find(key); it != by_upn.end()) {
        user.id = it->second.first;
        user.created = it->second.second;
        ++counts.updated;
      } else {
        user.id = NewGuid();
        user.created = now;
        ++counts.created;
      }
      user.last_modified = now;
      bulk.Add(tenant_id, std::move(user));
      if (bulk.Full()) {
        if (Status s = BulkWrite(tx, upsert, bulk.rows); !s) return Fail(s.error());
        bulk.Clear();
      }
    }
    if (Status s = BulkWrite(tx, upsert, bulk.rows); !s) return Fail(s.error());
    return counts;
  });
}

Result<ImportCounts> SqlStore::ImportDevices(const std::string& tenant_id, const std::vector<ImportedDevice>& rows) {
  const Timestamp now = clock_.Now();
  return InTx<ImportCounts>(TxKind::kWrite, [&](Tx& tx) -> Result<ImportCounts> {
    if (Status s = CheckTenant(tx, tenant_id); !s) return Fail(s.error());
    std::unordered_map<std::string, std::pair<std::string, Timestamp>> by_device_id, by_serial;
    if (Status s = ReadKeys(tx, "SELECT device_id, id, created FROM devices WHERE tenant_id = ?1", tenant_id,
                            by_device_id, false);
        !s) {
      return Fail(s.error());
    }
    // A serial held by several managed devices (re-enrolled): the first by id.
    if (Status s = ReadKeys(tx,
                            "SELECT serial_number, id, created FROM managed_devices WHERE tenant_id = ?1 "
                            "AND serial_number IS NOT NULL ORDER BY id",
                            tenant_id, by_serial, false);
        !s) {
      return Fail(s.error());
    }
    ImportCounts counts;
    std::unordered_set<std::string> seen_devices, seen_serials;
    WideCache cache(tx, dialect_.sql);
    BulkRows<Device> device_rows;
    BulkRows<ManagedDevice> managed_rows;
    const BulkInsert& device_upsert = EntitySql<Device>::Get().upsert;
    const BulkInsert& managed_upsert = EntitySql<ManagedDevice>::Get().upsert;
    auto flush = [&]() -> Status {
      if (Status s = BulkWrite(tx, device_upsert, device_rows.rows); !s) return s;
      if (Status s = BulkWrite(tx, managed_upsert, managed_rows.rows); !s) return s;
      device_rows.Clear();
      managed_rows.Clear();
      return {};
    };
    for (std::size_t i = 0; i < rows.size(); ++i) {
      Device device = rows[i].device;
      if (device.device_id.empty()) return Fail(BadRow(i, "deviceId is required"));
      if (!seen_devices.insert(device.device_id).second) {
        return Fail(BadRow(i, fmt::format("deviceId '{}' appears twice", device.device_id)));
      }
      if (auto it = by_device_id.find(device.device_id); it != by_device_id.end()) {
        device.id = it->second.first;
        device.created = it->second.second;
        ++counts.updated;
      } else {
        device.id = NewGuid();
        device.created = now;
        ++counts.created;
      }
      device.last_modified = now;
      device_rows.Add(tenant_id, std::move(device));
      if (device_rows.Full()) {
        if (Status s = flush(); !s) return Fail(s.error());
      }
      if (!rows[i].managed) continue;
      ManagedDevice m = *rows[i].managed;
      if (!m.serial_number || m.serial_number->empty()) return Fail(BadRow(i, "serialNumber is required"));
      if (!seen_serials.insert(*m.serial_number).second) {
        return Fail(BadRow(i, fmt::format("serialNumber '{}' appears twice", *m.serial_number)));
      }
      m.azure_ad_device_id = rows[i].device.device_id;
      if (auto it = by_serial.find(*m.serial_number); it != by_serial.end()) {
        m.id = it->second.first;
        m.created = it->second.second;
        ++counts.updated;
      } else {
        m.id = NewGuid();
        m.created = now;
        ++counts.created;
      }
      m.last_modified = now;
      managed_rows.Add(tenant_id, std::move(m));
    }
    if (Status s = flush(); !s) return Fail(s.error());
    // Serials are the managed devices' keys here, so they name what changed.
    if (Status s = NoteSerialsChanged(tx, tenant_id, {seen_serials.begin(), seen_serials.end()}); !s) {
      return Fail(s.error());
    }
    return counts;
  });
}

Result<ImportCounts> SqlStore::ImportGroups(const std::string& tenant_id, const std::vector<ImportedGroup>& rows) {
  const Timestamp now = clock_.Now();
  return InTx<ImportCounts>(TxKind::kWrite, [&](Tx& tx) -> Result<ImportCounts> {
    if (Status s = CheckTenant(tx, tenant_id); !s) return Fail(s.error());
    // Existing groups by id and by name (a name several groups share cannot key a row).
    std::unordered_map<std::string, std::pair<std::string, Timestamp>> by_id, by_name;
    std::unordered_set<std::string> shared_names;
    if (Status s = tx.Query("SELECT id, display_name, created FROM groups WHERE tenant_id = ?1", {tenant_id}); !s) {
      return Fail(s.error());
    }
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) break;
      by_id.try_emplace(tx.Text(0), tx.Text(0), tx.Int(2));
      if (!by_name.try_emplace(tx.Text(1), tx.Text(0), tx.Int(2)).second) shared_names.insert(tx.Text(1));
    }
    ImportCounts counts;
    std::unordered_set<std::string> seen;
    WideCache cache(tx, dialect_.sql);
    BulkRows<Group> bulk;  // not chunked: the members below need every group
    const std::deque<Group>& groups = bulk.entities;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      Group group = rows[i].group;
      if (group.display_name.empty()) return Fail(BadRow(i, "displayName is required"));
      const std::pair<std::string, Timestamp>* existing = nullptr;
      if (!group.id.empty()) {
        if (auto it = by_id.find(group.id); it != by_id.end()) existing = &it->second;
      } else {
        if (shared_names.count(group.display_name) > 0) {
          return Fail(BadRow(i, fmt::format("several groups are named '{}': give the group's id", group.display_name)));
        }
        if (auto it = by_name.find(group.display_name); it != by_name.end()) existing = &it->second;
      }
      if (existing != nullptr) {
        group.id = existing->first;
        group.created = existing->second;
        ++counts.updated;
      } else {
        if (group.id.empty()) group.id = NewGuid();
        group.created = now;
        ++counts.created;
      }
      if (!seen.insert(group.id).second) return Fail(BadRow(i, fmt::format("group '{}' appears twice", group.id)));
      group.last_modified = now;
      bulk.Add(tenant_id, std::move(group));
    }
    if (Status s = BulkWrite(tx, EntitySql<Group>::Get().upsert, bulk.rows); !s) return Fail(s.error());

    bool any_members = false;
    for (const ImportedGroup& row : rows) any_members = any_members || row.members.has_value();
    if (!any_members) return counts;

    // Member references: object ids, userPrincipalNames, devices' deviceIds.
    std::unordered_map<std::string, std::pair<std::string, MemberKind>> refs;
    auto read_refs = [&](const char* sql, MemberKind kind, bool lower) -> Status {
      if (Status s = tx.Query(sql, {tenant_id}); !s) return s;
      for (;;) {
        Result<bool> row = tx.Next();
        if (!row) return Fail(row.error());
        if (!*row) return {};
        const std::string id = tx.Text(0);
        refs.try_emplace(id, id, kind);
        if (!tx.IsNull(1)) refs.try_emplace(lower ? Lower(tx.Text(1)) : tx.Text(1), id, kind);
      }
    };
    if (Status s = read_refs("SELECT id, user_principal_name FROM users WHERE tenant_id = ?1", MemberKind::kUser, true);
        !s) {
      return Fail(s.error());
    }
    if (Status s = read_refs("SELECT id, device_id FROM devices WHERE tenant_id = ?1", MemberKind::kDevice, false);
        !s) {
      return Fail(s.error());
    }
    if (Status s = read_refs("SELECT id, NULL FROM groups WHERE tenant_id = ?1", MemberKind::kGroup, false); !s) {
      return Fail(s.error());
    }
    // The current members of the imported groups.
    std::unordered_map<std::string, std::set<std::string>> current;
    if (Status s = tx.Query("SELECT group_id, member_id FROM group_members WHERE tenant_id = ?1", {tenant_id}); !s) {
      return Fail(s.error());
    }
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) break;
      current[tx.Text(0)].insert(tx.Text(1));
    }
    Result<std::int64_t> seq = NextSeq(tx, tenant_id);
    if (!seq) return Fail(seq.error());
    SqlStore::BulkInsert member_spec{"group_members",
                                     {{"tenant_id", BulkType::kText},
                                      {"group_id", BulkType::kText},
                                      {"member_id", BulkType::kText},
                                      {"member_kind", BulkType::kText},
                                      {"seq", BulkType::kInt},
                                      {"added", BulkType::kInt}},
                                     ""};
    Scratch added_text;
    std::vector<std::vector<SqlArg>> added;
    std::vector<std::pair<std::string, std::string>> removed;
    std::vector<std::string> devices_moved;  // Entra devices added to or removed from a group
    bool groups_moved = false;               // a nested group added or removed
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (!rows[i].members) continue;
      const Group& group = groups[i];
      std::set<std::string> wanted;
      for (const std::string& ref : *rows[i].members) {
        auto it = refs.find(ref);
        if (it == refs.end()) it = refs.find(Lower(ref));
        if (it == refs.end()) return Fail(BadRow(i, fmt::format("member '{}' is no user, device or group", ref)));
        const auto& [member_id, kind] = it->second;
        if (member_id == group.id) return Fail(BadRow(i, "a group cannot be a member of itself"));
        if (!wanted.insert(member_id).second) continue;
        std::set<std::string>& have = current[group.id];
        if (have.count(member_id) > 0) continue;
        if (kind == MemberKind::kDevice) devices_moved.push_back(member_id);
        groups_moved = groups_moved || kind == MemberKind::kGroup;
        std::vector<SqlArg>& args = added.emplace_back();
        args = {SqlArg(tenant_id),
                SqlArg(std::string_view(group.id)),
                SqlArg(Keep(added_text, member_id)),
                SqlArg(MemberKindName(kind)),
                SqlArg((*seq)++),
                SqlArg(now)};
        ++counts.members_added;
      }
      for (const std::string& member_id : current[group.id]) {
        if (wanted.count(member_id) > 0) continue;
        removed.emplace_back(group.id, member_id);
        auto ref = refs.find(member_id);
        const MemberKind kind = ref == refs.end() ? MemberKind::kGroup : ref->second.second;
        if (kind == MemberKind::kDevice) devices_moved.push_back(member_id);
        groups_moved = groups_moved || kind == MemberKind::kGroup;
      }
    }
    Status noted =
        groups_moved ? NoteEverythingChanged(tx, tenant_id) : NoteEntraDevicesChanged(tx, tenant_id, devices_moved);
    if (!noted) return Fail(noted.error());
    for (const auto& [group_id, member_id] : removed) {
      if (Status s = tx.Exec("DELETE FROM group_members WHERE tenant_id = ?1 AND group_id = ?2 AND member_id = ?3",
                             {tenant_id, group_id, member_id});
          !s) {
        return Fail(s.error());
      }
      ++counts.members_removed;
    }
    if (Status s = BulkWrite(tx, member_spec, added); !s) return Fail(s.error());
    return counts;
  });
}

}  // namespace vppd::store
