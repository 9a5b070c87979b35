// The SQLite store (see sqlite_store.h): its open, the sets a crash may leave
// unregistered (AdoptUnknownSets), the collector's batch, ClaimJob, and reads
// of assignments kept as chunks. Staging is in sqlite_staging.cc, the connections in
// sqlite_connections.cc, everything SQL both databases share in sql_store.cc.
#include "store/sqlite_store.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "store/migrations.h"
#include "store/store_common.h"

namespace vppd::store {

using sqlite::Connection;
using sqlite::Stmt;

namespace {

constexpr int kMaxReaderConnections = 64;

// The collector deletes this many chunks per transaction: ~kCollectBatchRows
// assignments.
constexpr std::int64_t kCollectBatchChunks =
    std::max<std::int64_t>(1, kCollectBatchRows / static_cast<std::int64_t>(chunks::kChunkRows));

SqlStore::Dialect SqliteDialect() {
  auto [cols, values] = TokenInsertLists('?');
  // token_key: the next small integer (max + 1 is an index lookup; the writer
  // holds the only write lock).
  return SqlStore::Dialect{SqlDialect::kSqlite, "", "",
                           fmt::format("INSERT INTO vpp_tokens ({}, token_key) VALUES ({}, "
                                       "(SELECT coalesce(max(token_key), 0) + 1 FROM vpp_tokens))",
                                       cols, values)};
}

// Steps a DELETE ... RETURNING rows to its end; the sum of the rows.
Result<std::int64_t> SumRows(Stmt& del) {
  std::int64_t sum = 0;
  for (;;) {
    Result<bool> row = del.Step();
    if (!row) return Fail(row.error());
    if (!*row) return sum;
    sum += del.Int(0);
  }
}

}  // namespace

SqliteStore::SqliteStore(const SqliteOptions& options, std::unique_ptr<Connection> writer)
    : SqlStore(SqliteDialect(), options.secrets, options.clock, options.max_tokens_per_tenant),
      conns_(std::move(writer), std::chrono::milliseconds(options.busy_timeout_ms),
             std::chrono::milliseconds(options.statement_timeout_ms)),
      pick_job_sql_(JobPickSql("", "")),
      collector_([this] { return InTx<CollectStep>(TxKind::kWrite, [](Tx& tx) { return CollectBatch(Native(tx)); }); },
                 {}) {}

SqliteStore::~SqliteStore() { collector_.Stop(); }  // before the connections go

Status SqliteStore::RunTx(TxKind kind, FunctionRef<Status(Tx&)> body) {
  return conns_.Run(kind, [&](Connection& c) -> Status {
    SqliteTx tx(c);
    return body(tx);
  });
}

// Costs one index seek per generation in assignment_chunks.
Result<std::int64_t> SqliteStore::AdoptUnknownSets(Tx& tx) {
  Connection& c = Native(tx);
  Result<Stmt> next =
      c.Prepare("SELECT generation FROM assignment_chunks WHERE generation > ?1 ORDER BY generation LIMIT 1");
  if (!next) return Fail(next.error());
  Result<Stmt> known = c.Prepare("SELECT 1 FROM assignment_generations WHERE generation = ?1");
  if (!known) return Fail(known.error());
  Result<Stmt> adopt = c.Prepare(
      "INSERT INTO assignment_generations (generation, token_key, job_key, state) VALUES (?1, 0, NULL, "
      "'garbage')");
  if (!adopt) return Fail(adopt.error());
  std::vector<std::int64_t> unknown;
  for (std::int64_t after = 0;;) {
    if (Status s = next->Bind(1, after); !s) return Fail(s.error());
    Result<bool> row = next->Step();
    if (!row) return Fail(row.error());
    if (!*row) break;
    after = next->Int(0);
    next->Reset();
    if (Status s = known->Bind(1, after); !s) return Fail(s.error());
    Result<bool> is_known = known->Step();
    if (!is_known) return Fail(is_known.error());
    known->Reset();
    if (!*is_known) unknown.push_back(after);
  }
  for (std::int64_t generation : unknown) {
    if (Status s = adopt->Bind(1, generation); !s) return Fail(s.error());
    if (Status s = adopt->Run(); !s) return Fail(s.error());
    adopt->Reset();
  }
  return static_cast<std::int64_t>(unknown.size());
}

// --- jobs ------------------------------------------------------------------------------

Result<std::optional<SyncJob>> SqliteStore::ClaimJob(const std::string& worker, Timestamp now,
                                                     std::chrono::milliseconds lease) {
  if (Status s = CheckClaim(worker, lease); !s) return Fail(s.error());
  Timestamp expires = now + static_cast<Timestamp>(lease.count()) * 1000;
  // Inside BEGIN IMMEDIATE nobody else claims between the pick and the update.
  return InTx<std::optional<SyncJob>>(TxKind::kWrite, [&](Tx& tx) -> Result<std::optional<SyncJob>> {
    Result<bool> row = tx.QueryRow(pick_job_sql_, {now});
    if (!row) return Fail(row.error());
    if (!*row) return std::optional<SyncJob>();
    const std::int64_t key = tx.Int(0);
    return ClaimPicked(tx, key, ReadJobRow(tx), worker, expires);
  });
}

// --- reads of assignments ------------------------------------------------------------------

Result<Page<LicenseAssignment>> SqliteStore::ReadAppAssignments(Tx& tx, std::int64_t generation,
                                                                const std::string& adam_id,
                                                                const std::string& pricing_param, std::int64_t skip,
                                                                std::int64_t limit) {
  Connection& c = Native(tx);
  Result<std::optional<std::int64_t>> app_key = FindAppKey(c, adam_id, pricing_param);
  if (!app_key) return Fail(app_key.error());
  if (!*app_key) return Page<LicenseAssignment>();  // no set ever held a row of this app
  return ListChunkedAssignments(c, generation, **app_key, adam_id, pricing_param, skip, limit);
}

// An app's assignments in Graph's order, `limit` from `skip` (see
// ListAppAssignments). An app of one run: whole chunks are skipped by their row
// counts and only the chunks of the page are decoded. Of several runs: all are
// decoded and merged.
Result<Page<LicenseAssignment>> SqliteStore::ListChunkedAssignments(Connection& c, std::int64_t generation,
                                                                    std::int64_t app_key, const std::string& adam_id,
                                                                    const std::string& pricing_param, std::int64_t skip,
                                                                    std::int64_t limit) {
  Result<Stmt> runs =
      c.Prepare("SELECT runs FROM assignment_counts WHERE generation = ?1 AND adam_id = ?2 AND pricing_param = ?3");
  if (!runs) return Fail(runs.error());
  if (Status s = BindAll(*runs, generation, adam_id, pricing_param); !s) return Fail(s.error());
  Result<bool> counted = runs->Step();
  if (!counted) return Fail(counted.error());
  Page<LicenseAssignment> page;
  if (!*counted) return page;  // the set holds no assignment of the app
  const bool one_run = runs->Int(0) == 1;
  runs->Reset();
  std::vector<LicenseAssignment> rows;
  if (!one_run) {
    Result<std::vector<LicenseAssignment>> all = ReadAppChunks(c, generation, app_key, adam_id, pricing_param);
    if (!all) return Fail(all.error());
    rows = std::move(*all);
    chunks::SortDistinct(rows);
  } else {
    Result<Stmt> read =
        c.Prepare("SELECT rows, data FROM assignment_chunks WHERE generation = ?1 AND app_key = ?2 ORDER BY chunk");
    if (!read) return Fail(read.error());
    if (Status s = BindAll(*read, generation, app_key); !s) return Fail(s.error());
    // `rows` then starts at the chunk holding row `skip`.
    std::int64_t first = 0;
    for (;;) {
      Result<bool> row = read->Step();
      if (!row) return Fail(row.error());
      if (!*row || static_cast<std::int64_t>(rows.size()) > (skip - first) + limit) break;
      const std::int64_t n = read->Int(0);
      if (rows.empty() && first + n <= skip) {  // wholly before the page: not decoded
        first += n;
        continue;
      }
      if (Status s = chunks::Decode(read->Blob(1), n, adam_id, pricing_param, SetName(generation, adam_id), rows); !s) {
        return Fail(s.error());
      }
    }
    skip -= first;
  }
  for (auto it = rows.begin() + std::min<std::int64_t>(skip, static_cast<std::int64_t>(rows.size()));
       it != rows.end() && RoomOnPage(page, limit); ++it) {
    page.items.push_back(std::move(*it));
  }
  return page;
}

Status SqliteStore::ForEachAssignment(const std::string& tenant_id, const std::string& token_id, std::size_t batch,
                                      const std::function<Status(const std::vector<LicenseAssignment>&)>& on_batch) {
  if (Status s = CheckBatchSize(batch); !s) return s;
  // Keyset pagination on (app_key, chunk): each read is an index seek past the
  // last chunk seen, so the whole walk is O(assignments); see WalkStep.
  struct Chunk {
    std::int64_t app_key, chunk;
    std::string adam_id, pricing_param;
    std::int64_t rows;
    std::string data;
  };
  std::vector<Chunk> got;
  std::optional<std::int64_t> pinned;
  std::int64_t last_app = -1, last_chunk = -1;
  const std::int64_t limit = static_cast<std::int64_t>(std::max<std::size_t>(1, batch / chunks::kChunkRows));
  chunks::Batcher batcher(batch, on_batch);
  for (;;) {
    Result<bool> more = WalkStep(tenant_id, token_id, pinned, [&](Tx& tx, std::int64_t generation) -> Status {
      got.clear();
      Result<Stmt> next = Native(tx).Prepare(
          "SELECT c.app_key, c.chunk, p.adam_id, p.pricing_param, c.rows, c.data FROM assignment_chunks c "
          "JOIN assignment_apps p ON p.app_key = c.app_key "
          "WHERE c.generation = ?1 AND (c.app_key, c.chunk) > (?2, ?3) ORDER BY c.app_key, c.chunk LIMIT ?4");
      if (!next) return Fail(next.error());
      if (Status s = BindAll(*next, generation, last_app, last_chunk, limit); !s) return s;
      for (;;) {
        Result<bool> row = next->Step();
        if (!row) return Fail(row.error());
        if (!*row) return {};
        got.push_back(
            {next->Int(0), next->Int(1), next->Text(2), next->Text(3), next->Int(4), std::string(next->Blob(5))});
      }
    });
    if (!more) return Fail(more.error());
    if (!*more || got.empty()) return batcher.Flush();
    for (const Chunk& chunk : got) {
      if (Status s =
              batcher.Add(chunk.data, chunk.rows, chunk.adam_id, chunk.pricing_param, SetName(*pinned, chunk.adam_id));
          !s) {
        return s;
      }
      last_app = chunk.app_key;
      last_chunk = chunk.chunk;
    }
  }
}

// --- the collector -------------------------------------------------------------------------

// One batch: up to kCollectBatchRows rows of the oldest garbage set, from the
// front of its key range; the registry row goes with the last batch.
Result<CollectStep> SqliteStore::CollectBatch(Connection& c) {
  CollectStep step;
  Result<Stmt> pick =
      c.Prepare("SELECT generation FROM assignment_generations WHERE state = 'garbage' ORDER BY generation LIMIT 1");
  if (!pick) return Fail(pick.error());
  Result<bool> found = pick->Step();
  if (!found) return Fail(found.error());
  if (!*found) return step;
  step.generation = pick->Int(0);
  pick->Reset();
  // The key of the batch's last chunk: then one range delete on the primary key.
  Result<Stmt> edge = c.Prepare(
      "SELECT app_key, chunk FROM assignment_chunks WHERE generation = ?1 "
      "ORDER BY app_key, chunk LIMIT 1 OFFSET ?2");
  if (!edge) return Fail(edge.error());
  if (Status s = BindAll(*edge, step.generation, kCollectBatchChunks - 1); !s) return Fail(s.error());
  Result<bool> more = edge->Step();
  if (!more) return Fail(more.error());
  if (*more) {
    const std::int64_t app_key = edge->Int(0), chunk = edge->Int(1);
    edge->Reset();
    Result<Stmt> del = c.Prepare(
        "DELETE FROM assignment_chunks WHERE generation = ?1 AND (app_key, chunk) <= (?2, ?3) RETURNING rows");
    if (!del) return Fail(del.error());
    if (Status s = BindAll(*del, step.generation, app_key, chunk); !s) return Fail(s.error());
    Result<std::int64_t> rows = SumRows(*del);
    if (!rows) return Fail(rows.error());
    step.rows = *rows;
    return step;
  }
  edge->Reset();
  // Fewer than a batch left: the rest, and the set's registry row.
  Result<Stmt> rest = c.Prepare("DELETE FROM assignment_chunks WHERE generation = ?1 RETURNING rows");
  if (!rest) return Fail(rest.error());
  if (Status s = BindAll(*rest, step.generation); !s) return Fail(s.error());
  Result<std::int64_t> rows = SumRows(*rest);
  if (!rows) return Fail(rows.error());
  step.rows = *rows;
  for (const char* sql : {"DELETE FROM assignment_counts WHERE generation = ?1",
                          "DELETE FROM assignment_generations WHERE generation = ?1"}) {
    Result<Stmt> forget = c.Prepare(sql);
    if (!forget) return Fail(forget.error());
    if (Status s = BindAll(*forget, step.generation); !s) return Fail(s.error());
    if (Status s = forget->Run(); !s) return Fail(s.error());
  }
  step.generation_done = true;
  return step;
}

// --- open ----------------------------------------------------------------------------------

Result<std::unique_ptr<Store>> Store::OpenSqlite(const SqliteOptions& options) {
  if (Status s = CheckOpenOptions(options.secrets.get(), options.path, "database path",
                                  {options.busy_timeout_ms, options.statement_timeout_ms}, "reader_connections",
                                  options.reader_connections, kMaxReaderConnections);
      !s) {
    return Fail(s.error());
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
    store->connections().AddReader(std::move(*reader));
  }
  // The anchor reads like a reader (and is query_only like one).
  Result<std::unique_ptr<Connection>> anchor = Connection::Open(conn_options);
  if (!anchor) return Fail(anchor.error());
  store->connections().SetReadAnchor(std::move(*anchor));
  if (Status s = store->Reconcile(); !s) return Fail(s.error());
  if (options.collect_garbage) store->StartCollector();
  conn_options.query_only = false;  // a checkpoint writes the database file
  Result<std::unique_ptr<Connection>> checkpointer = Connection::Open(conn_options);
  if (!checkpointer) return Fail(checkpointer.error());
  // It reads WAL frames and writes pages: no page cache of its own needed.
  if (Status s = (*checkpointer)->Exec("PRAGMA cache_size=-256"); !s) return Fail(s.error());
  store->connections().StartCheckpointer(std::move(*checkpointer));
  spdlog::info("store: opened {} (schema version {}, {} readers, synchronous={})", options.path, LatestSchemaVersion(),
               options.reader_connections, options.synchronous_full ? "FULL" : "NORMAL");
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace vppd::store
