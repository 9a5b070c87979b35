// What lets the reconcile decide only what changed (sync/reconcile.cc): the
// journal of directory changes (reconcile_changes) that the directory's writers
// append to in their own transactions, and the reads a pass over a few serial
// numbers needs. The SQL both databases share (SqlStore).
//
// Layout: 1. noting changes (called by directory_sql.cc)  2. reading and
// forgetting them  3. the reads of a pass over changed serials.
#include <algorithm>
#include <charconv>
#include <iterator>
#include <map>
#include <optional>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "store/licenses_sql.h"
#include "store/sql_store.h"
#include "store/store_common.h"

namespace vppd::store {
namespace {

// A write that touches more serials than this notes "everything" instead: a
// pass over that many is no cheaper than a full one.
constexpr std::size_t kListedAtMost = 10'000;

// The statement that notes, for every token of tenant ?1, the serial numbers
// `source` selects (a SELECT of one column named serial_number, its own
// parameters from ?3), with generation ?2. DISTINCT: PostgreSQL refuses an
// upsert that meets the same key twice.
std::string NoteSql(std::string_view source) {
  return fmt::format(
      "INSERT INTO reconcile_changes (tenant_id, token_id, serial_number, gen) "
      "SELECT DISTINCT t.tenant_id, t.id, s.serial_number, ?2 FROM vpp_tokens t CROSS JOIN ({}) s "
      "WHERE t.tenant_id = ?1 ON CONFLICT (tenant_id, token_id, serial_number) DO UPDATE SET gen = excluded.gen",
      source);
}

// device_license_tallies.tally: one line per asset, its ids and counts
// separated by tabs. Apple's ids hold neither; a tally whose ids would is not
// kept (nullopt), and text that does not parse is counted again.
std::optional<std::string> FormatTally(const std::vector<DeviceLicenseTally>& tallies) {
  std::string text;
  for (const DeviceLicenseTally& t : tallies) {
    for (const std::string* id : {&t.adam_id, &t.pricing_param}) {
      if (id->find_first_of("\t\n") != std::string::npos) return std::nullopt;
    }
    fmt::format_to(std::back_inserter(text), "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n", t.adam_id, t.pricing_param,
                   t.granted, t.pending, t.failed, t.reclaim_pending, t.held_since, t.reclaimed_by_directory,
                   t.not_enough);
  }
  return text;
}

std::optional<std::vector<DeviceLicenseTally>> ParseTally(std::string_view text) {
  std::vector<DeviceLicenseTally> tallies;
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    if (eol == std::string_view::npos) return std::nullopt;
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol + 1);
    std::vector<std::string_view> fields;
    for (std::size_t tab; (tab = line.find('\t')) != std::string_view::npos; line.remove_prefix(tab + 1)) {
      fields.push_back(line.substr(0, tab));
    }
    fields.push_back(line);
    if (fields.size() != 9) return std::nullopt;
    DeviceLicenseTally& t = tallies.emplace_back();
    t.adam_id = fields[0];
    t.pricing_param = fields[1];
    std::int64_t* counts[] = {
        &t.granted, &t.pending, &t.failed, &t.reclaim_pending, &t.held_since, &t.reclaimed_by_directory, &t.not_enough};
    for (std::size_t i = 0; i < std::size(counts); ++i) {
      const std::string_view f = fields[i + 2];
      auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), *counts[i]);
      if (ec != std::errc() || end != f.data() + f.size() || *counts[i] < 0) return std::nullopt;
    }
  }
  return tallies;
}

}  // namespace

// --- 1. noting changes -------------------------------------------------------------------

Status SqlStore::NoteSerialsChanged(Tx& tx, const std::string& tenant_id, const std::vector<std::string>& serials) {
  if (serials.size() > kListedAtMost) return NoteEverythingChanged(tx, tenant_id);
  std::vector<std::string> listed;
  for (const std::string& s : serials) {
    if (!s.empty()) listed.push_back(s);
  }
  if (listed.empty()) return {};
  const std::string sql = NoteSql(fmt::format("SELECT value AS serial_number FROM ({}) j", JsonValues(3)));
  return tx.Exec(sql, {tenant_id, NewGuid(), StringsToJson(listed)});
}

Status SqlStore::NoteEntraDevicesChanged(Tx& tx, const std::string& tenant_id,
                                         const std::vector<std::string>& device_object_ids) {
  if (device_object_ids.size() > kListedAtMost) return NoteEverythingChanged(tx, tenant_id);
  if (device_object_ids.empty()) return {};
  const std::string sql =
      NoteSql(fmt::format("SELECT md.serial_number FROM devices d CROSS JOIN managed_devices md "
                          "WHERE d.tenant_id = ?1 AND d.id IN ({}) AND md.tenant_id = ?1 "
                          "AND md.azure_ad_device_id = d.device_id AND coalesce(md.serial_number, '') <> ''",
                          JsonValues(3)));
  return tx.Exec(sql, {tenant_id, NewGuid(), StringsToJson(device_object_ids)});
}

Status SqlStore::NoteManagedDevicesChanged(Tx& tx, const std::string& tenant_id,
                                           const std::vector<std::string>& managed_device_ids) {
  if (managed_device_ids.size() > kListedAtMost) return NoteEverythingChanged(tx, tenant_id);
  if (managed_device_ids.empty()) return {};
  const std::string sql =
      NoteSql(fmt::format("SELECT serial_number FROM managed_devices WHERE tenant_id = ?1 AND id IN ({}) "
                          "AND coalesce(serial_number, '') <> ''",
                          JsonValues(3)));
  return tx.Exec(sql, {tenant_id, NewGuid(), StringsToJson(managed_device_ids)});
}

Status SqlStore::NoteEventSerialsChanged(Tx& tx, const std::string& tenant_id, const std::string& token_id,
                                         const std::string& event_id) {
  return tx.Exec(
      "INSERT INTO reconcile_changes (tenant_id, token_id, serial_number, gen) "
      "SELECT DISTINCT tenant_id, token_id, serial_number, CAST(?4 AS TEXT) FROM device_licenses "
      "WHERE tenant_id = ?1 AND token_id = ?2 AND event_id = ?3 "
      "ON CONFLICT (tenant_id, token_id, serial_number) DO UPDATE SET gen = excluded.gen",
      {tenant_id, token_id, event_id, NewGuid()});
}

Status SqlStore::NoteEverythingChanged(Tx& tx, const std::string& tenant_id) {
  // The serials listed so far stay: clearing them here could lose one a pass is
  // deciding right now. The pass that meets "" reads everything and forgets them.
  static const std::string sql = NoteSql("SELECT '' AS serial_number");
  return tx.Exec(sql, {tenant_id, NewGuid()});
}

// --- 2. reading and forgetting them --------------------------------------------------------

Result<std::vector<ReconcileChange>> SqlStore::ListReconcileChanges(const std::string& tenant_id,
                                                                    const std::string& token_id, std::size_t limit) {
  return InTx<std::vector<ReconcileChange>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<ReconcileChange>> {
    if (Status s = tx.Query("SELECT serial_number, gen FROM reconcile_changes WHERE tenant_id = ?1 AND token_id = ?2 "
                            "ORDER BY serial_number LIMIT ?3",
                            {tenant_id, token_id, static_cast<std::int64_t>(limit) + 1});
        !s) {
      return Fail(s.error());
    }
    std::vector<ReconcileChange> changes;
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) return changes;
      changes.push_back({tx.Text(0), tx.Text(1)});
    }
  });
}

Status SqlStore::NoteReconcileChanges(const std::string& tenant_id, const std::string& token_id,
                                      const std::vector<std::string>& serials) {
  if (serials.empty()) return {};
  const std::string sql = fmt::format(
      "INSERT INTO reconcile_changes (tenant_id, token_id, serial_number, gen) "
      "SELECT DISTINCT CAST(?1 AS TEXT), CAST(?2 AS TEXT), value, CAST(?3 AS TEXT) FROM ({}) j WHERE value <> '' "
      "ON CONFLICT (tenant_id, token_id, serial_number) DO UPDATE SET gen = excluded.gen",
      JsonValues(4));
  const std::string list = StringsToJson(serials);
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    return tx.Exec(sql, {tenant_id, token_id, NewGuid(), list});
  });
}

Status SqlStore::ClearReconcileChanges(const std::string& tenant_id, const std::string& token_id,
                                       const std::vector<ReconcileChange>& changes) {
  if (changes.empty()) return {};
  return InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
    for (const ReconcileChange& c : changes) {
      if (Status s = tx.Exec("DELETE FROM reconcile_changes WHERE tenant_id = ?1 AND token_id = ?2 "
                             "AND serial_number = ?3 AND gen = ?4",
                             {tenant_id, token_id, c.serial_number, c.gen});
          !s) {
        return s;
      }
    }
    return {};
  });
}

// --- 3. the reads of a pass over changed serials ----------------------------------------

Result<std::vector<SerialDevice>> SqlStore::DevicesOfSerials(const std::string& tenant_id,
                                                             const std::vector<std::string>& serials) {
  if (serials.empty()) return std::vector<SerialDevice>{};
  const std::string devices_sql = fmt::format(
      "SELECT md.serial_number, md.id, coalesce(md.user_id, ''), coalesce(d.id, '') "
      "FROM managed_devices md LEFT JOIN devices d ON d.tenant_id = md.tenant_id "
      "AND d.device_id = md.azure_ad_device_id "
      "WHERE md.tenant_id = ?1 AND md.serial_number IN ({}) ORDER BY md.serial_number, md.id",
      JsonValues(2));
  // Every group holding the Entra devices, directly or through nested groups
  // (UNION: a cycle adds no new row and ends the recursion).
  const std::string groups_sql = fmt::format(
      "WITH RECURSIVE up (member_id, group_id) AS ("
      "SELECT member_id, group_id FROM group_members WHERE tenant_id = ?1 AND member_id IN ({}) "
      "UNION SELECT up.member_id, m.group_id FROM up JOIN group_members m "
      "ON m.tenant_id = ?1 AND m.member_id = up.group_id AND m.member_kind = 'group') "
      "SELECT member_id, group_id FROM up",
      JsonValues(2));
  const std::string serial_list = StringsToJson(serials);
  return InTx<std::vector<SerialDevice>>(TxKind::kRead, [&](Tx& tx) -> Result<std::vector<SerialDevice>> {
    std::vector<SerialDevice> devices;
    std::vector<std::string> entra_of;  // per device: the Entra device's object id, or ""
    if (Status s = tx.Query(devices_sql, {tenant_id, serial_list}); !s) return Fail(s.error());
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) break;
      devices.push_back({tx.Text(0), tx.Text(1), tx.Text(2), {}});
      entra_of.push_back(tx.Text(3));
    }
    std::vector<std::string> entra;
    for (const std::string& id : entra_of) {
      if (!id.empty()) entra.push_back(id);
    }
    if (entra.empty()) return devices;
    std::map<std::string, std::vector<std::string>> groups_of;
    if (Status s = tx.Query(groups_sql, {tenant_id, StringsToJson(entra)}); !s) return Fail(s.error());
    for (;;) {
      Result<bool> row = tx.Next();
      if (!row) return Fail(row.error());
      if (!*row) break;
      groups_of[tx.Text(0)].push_back(tx.Text(1));
    }
    for (std::size_t i = 0; i < devices.size(); ++i) {
      auto it = groups_of.find(entra_of[i]);
      if (it == groups_of.end()) continue;
      devices[i].group_ids = it->second;
      std::sort(devices[i].group_ids.begin(), devices[i].group_ids.end());
    }
    return devices;
  });
}

Result<std::vector<DeviceLicense>> SqlStore::DeviceLicensesOfSerials(const std::string& tenant_id,
                                                                     const std::string& token_id,
                                                                     const std::vector<std::string>& serials) {
  if (serials.empty()) return std::vector<DeviceLicense>{};
  const std::string sql = fmt::format(
      "SELECT adam_id, pricing_param, serial_number, state, error_code, error_message, event_id, cause, updated "
      "FROM (SELECT DISTINCT value FROM ({}) j) s CROSS JOIN device_licenses d "
      "WHERE d.tenant_id = ?1 AND d.token_id = ?2 AND d.serial_number = s.value "
      "ORDER BY adam_id, pricing_param, serial_number",
      JsonValues(3));
  const std::string list = StringsToJson(serials);
  return InTx<std::vector<DeviceLicense>>(TxKind::kReadOne, [&](Tx& tx) -> Result<std::vector<DeviceLicense>> {
    if (Status s = tx.Query(sql, {tenant_id, token_id, list}); !s) return Fail(s.error());
    return ReadLicenseRows<DeviceLicense>(tx);
  });
}

Result<std::vector<DeviceLicenseTally>> SqlStore::TallyDeviceLicenses(const std::string& tenant_id,
                                                                      const std::string& token_id, Timestamp since) {
  struct Counted {
    std::vector<DeviceLicenseTally> tallies;
    std::int64_t gen = 0;
    bool cached = false;
  };
  auto counted = InTx<Counted>(TxKind::kRead, [&](Tx& tx) -> Result<Counted> {
    Counted c;
    // The generation first: a write committed after it moves it, so a tally
    // that may have seen that write is never reused under this generation.
    Result<bool> row = tx.QueryRow(
        "SELECT gen, cached_gen, cached_since, tally FROM device_license_tallies WHERE tenant_id = ?1 AND "
        "token_id = ?2",
        {tenant_id, token_id});
    if (!row) return Fail(row.error());
    if (*row) {
      c.gen = tx.Int(0);
      if (tx.Int(1) == c.gen && tx.Int(2) == since) {
        if (auto parsed = ParseTally(tx.Text(3))) {
          c.tallies = std::move(*parsed);
          c.cached = true;
          return c;
        }
      }
    }
    if (Status s =
            tx.Query("SELECT adam_id, pricing_param, "
                     "sum(CASE WHEN state = 'granted' THEN 1 ELSE 0 END), "
                     "sum(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), "
                     "sum(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), "
                     "sum(CASE WHEN state = 'reclaimPending' THEN 1 ELSE 0 END), "
                     "sum(CASE WHEN state IN ('pending', 'reclaimPending') OR (state = 'granted' AND updated > ?3) "
                     "THEN 1 ELSE 0 END), "
                     "sum(CASE WHEN state IN ('reclaimPending', 'released') AND cause IN ('leftScope', 'userDeleted') "
                     "THEN 1 ELSE 0 END), "
                     "sum(CASE WHEN state = 'failed' AND error_code = '9709' THEN 1 ELSE 0 END) "
                     "FROM device_licenses WHERE tenant_id = ?1 AND token_id = ?2 "
                     "GROUP BY adam_id, pricing_param ORDER BY adam_id, pricing_param",
                     {tenant_id, token_id, since});
        !s) {
      return Fail(s.error());
    }
    for (;;) {
      Result<bool> next = tx.Next();
      if (!next) return Fail(next.error());
      if (!*next) return c;
      DeviceLicenseTally& t = c.tallies.emplace_back();
      t.adam_id = tx.Text(0);
      t.pricing_param = tx.Text(1);
      t.granted = tx.Int(2);
      t.pending = tx.Int(3);
      t.failed = tx.Int(4);
      t.reclaim_pending = tx.Int(5);
      t.held_since = tx.Int(6);
      t.reclaimed_by_directory = tx.Int(7);
      t.not_enough = tx.Int(8);
    }
  });
  if (!counted) return Fail(counted.error());
  if (!counted->cached) {
    // Kept for the next caller only if no licence row was written since the
    // count (gen unchanged); a token deleted meanwhile keeps nothing either.
    // Failing to keep it costs that caller a count, nothing else.
    if (std::optional<std::string> text = FormatTally(counted->tallies)) {
      Status kept = InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
        return tx.Exec(
            "INSERT INTO device_license_tallies (tenant_id, token_id, gen, cached_gen, cached_since, tally) "
            "SELECT tenant_id, id, CAST(?3 AS BIGINT), CAST(?3 AS BIGINT), CAST(?4 AS BIGINT), CAST(?5 AS TEXT) "
            "FROM vpp_tokens WHERE tenant_id = ?1 AND id = ?2 "
            "ON CONFLICT (tenant_id, token_id) DO UPDATE SET cached_gen = excluded.cached_gen, "
            "cached_since = excluded.cached_since, tally = excluded.tally "
            "WHERE device_license_tallies.gen = excluded.gen",
            {tenant_id, token_id, counted->gen, since, *text});
      });
      if (!kept) spdlog::debug("store: token {}: licence tally not kept: {}", token_id, kept.error().message);
    }
  }
  return std::move(counted->tallies);
}

}  // namespace vppd::store
