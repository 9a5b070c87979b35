// The SQLite store's staging (see sqlite_store.h): a walk's rows as sorted runs
// of chunks per app, the merge of an app's runs, and FinishJob's hooks (the
// staged set's runs merged before the swap; a delta's chunks moved into the
// current set).
#include <map>

#include <fmt/format.h>

#include "store/sqlite_store.h"
#include "store/store_common.h"

namespace vppd::store {

using sqlite::Connection;
using sqlite::Stmt;

namespace {

// A staging transaction writes about this many bytes of chunks (a few ms of
// write lock), unless one app's run alone is larger.
constexpr std::size_t kStageBytesPerCommit = 1 << 20;

// Most runs an app's chunks may form in a current set before FinishJob merges
// them (deltas append runs; a read of an app of several runs decodes them all).
constexpr std::int64_t kMaxRunsPerApp = 4;

// `pieces`: chunks::Chunk or chunks::ChunkView.
template <class Pieces>
Status InsertChunks(Connection& c, std::int64_t generation, std::int64_t app_key, std::int64_t first,
                    const Pieces& pieces) {
  Result<Stmt> insert =
      c.Prepare("INSERT INTO assignment_chunks (generation, app_key, chunk, rows, data) VALUES (?1, ?2, ?3, ?4, ?5)");
  if (!insert) return Fail(insert.error());
  for (const auto& piece : pieces) {
    if (Status s = BindAll(*insert, generation, app_key, first++, piece.rows); !s) return s;
    if (Status s = insert->BindBlobStatic(5, piece.data); !s) return s;
    if (Status s = insert->Run(); !s) return s;
    insert->Reset();
  }
  return {};
}

}  // namespace

Status SqliteStore::StageAssignments(const SyncJob& job, const StagedAssignments& rows) {
  if (Status s = CheckStagedRows(rows); !s) return s;
  // Sorted, grouped by app and encoded before the write lock is taken; the
  // transaction then only appends a few blobs per app.
  // One encoder per thread, its buffers kept between calls (see
  // StagingEncoder): a sync's stager stages all of its rows on one thread.
  thread_local chunks::StagingEncoder encoder;
  const std::vector<chunks::AppRun>& runs = encoder.Encode(rows);
  // Apps go in transactions of about kStageBytesPerCommit (an app's run is
  // never split: a run is what keeps its chunks readable in order), so that a
  // Graph write waiting behind one waits a few ms at most.
  std::size_t begin = 0;
  do {
    std::size_t end = begin, bytes = 0;
    while (end < runs.size() && (end == begin || bytes + runs[end].bytes <= kStageBytesPerCommit)) {
      bytes += runs[end++].bytes;
    }
    Status staged = InTx<void>(TxKind::kWrite, [&](Tx& tx) -> Status {
      Result<std::int64_t> key = CheckLease(tx, job);
      if (!key) return Fail(key.error());
      if (begin == end) return {};  // no rows: the lease check alone
      Result<std::int64_t> generation = StagingGeneration(tx, job, *key);
      if (!generation) return Fail(generation.error());
      Connection& c = Native(tx);
      for (std::size_t i = begin; i < end; ++i) {
        if (Status s = AppendRun(c, *generation, runs[i]); !s) return s;
      }
      return {};
    });
    if (!staged) return staged;
    begin = end;
  } while (begin < runs.size());
  return {};
}

// FinishJob's first part (BeforeFinish): the staged apps that came in several runs are merged
// (duplicates dropped), one app per write transaction, before the transaction
// that swaps the set in, so that neither holds the write lock (nor grows the
// WAL) for long. The staged set is invisible to readers meanwhile. Stops
// quietly when the lease is lost or nothing is staged: FinishJob's own
// transaction then says so, or has nothing to merge.
Status SqliteStore::BeforeFinish(const SyncJob& job) {
  for (;;) {
    Result<bool> merged = InTx<bool>(TxKind::kWrite, [&](Tx& tx) -> Result<bool> {
      Result<std::int64_t> job_key = CheckLease(tx, job);
      if (!job_key) return false;
      Result<std::optional<std::int64_t>> staged = FindStagingGeneration(tx, *job_key);
      if (!staged) return Fail(staged.error());
      if (!*staged) return false;
      Connection& c = Native(tx);
      Result<AppList> split = AppsOfManyRuns(c, **staged, 1, 1);
      if (!split) return Fail(split.error());
      if (split->empty()) return false;
      if (Status s = MergeRuns(c, **staged, split->front().first, split->front().second); !s) return Fail(s.error());
      return true;
    });
    if (!merged) return Fail(merged.error());
    if (!*merged) return {};
  }
}

// A walk staged as whole apps has one run per app; an app that came in several
// (a walk not grouped by app, an app larger than the sync buffers) is merged
// first, so that a current set never holds a duplicate and its counts are exact.
Status SqliteStore::PrepareStagedSet(Tx& tx, std::int64_t staged) {
  Connection& c = Native(tx);
  Result<AppList> split = AppsOfManyRuns(c, staged, 1);
  if (!split) return Fail(split.error());
  for (const auto& [adam_id, pricing_param] : *split) {
    if (Status s = MergeRuns(c, staged, adam_id, pricing_param); !s) return s;
  }
  return {};
}

// A delta into an existing set: the staged chunks of each app move into the
// current set as further runs of the app (no copy, no decoding), and its
// counts add up. No row is compared with the set, yet the delta check then
// proves there is no duplicate: every assignment Apple has is in the set or
// in the delta, so the runs' total equals Apple's count only when nothing
// was removed and no delta row was already there (CheckMergedCounts).
// An app of more than kMaxRunsPerApp runs is merged into one, so reads stay
// cheap after many deltas. Readers see the set before or after.
Status SqliteStore::MergeDelta(Tx& tx, std::int64_t current, std::int64_t staged, const std::vector<MobileApp>& apps) {
  Connection& c = Native(tx);
  Result<Stmt> staged_apps =
      c.Prepare("SELECT adam_id, pricing_param, rows, runs, chunks FROM assignment_counts WHERE generation = ?1");
  if (!staged_apps) return Fail(staged_apps.error());
  if (Status s = staged_apps->Bind(1, staged); !s) return s;
  struct StagedApp {
    std::string adam_id, pricing_param;
    std::int64_t rows, runs, chunks;
  };
  std::vector<StagedApp> delta;
  for (;;) {
    Result<bool> row = staged_apps->Step();
    if (!row) return Fail(row.error());
    if (!*row) break;
    delta.push_back(
        {staged_apps->Text(0), staged_apps->Text(1), staged_apps->Int(2), staged_apps->Int(3), staged_apps->Int(4)});
  }
  Result<Stmt> move = c.Prepare(
      "UPDATE assignment_chunks SET generation = ?1, chunk = chunk + ?4 WHERE generation = ?2 AND app_key = ?3");
  if (!move) return Fail(move.error());
  for (const StagedApp& app : delta) {
    // Staged chunks of the app exist, so it has a key.
    Result<std::int64_t> app_key = AppKey(c, app.adam_id, app.pricing_param);
    if (!app_key) return Fail(app_key.error());
    Result<std::int64_t> first =
        AddToCounts(c, current, app.adam_id, app.pricing_param, app.rows, app.runs, app.chunks);
    if (!first) return Fail(first.error());
    if (Status s = BindAll(*move, current, staged, *app_key, *first); !s) return s;
    if (Status s = move->Run(); !s) return s;
    move->Reset();
  }
  Result<AppList> split = AppsOfManyRuns(c, current, kMaxRunsPerApp);
  if (!split) return Fail(split.error());
  for (const auto& [adam_id, pricing_param] : *split) {
    if (Status s = MergeRuns(c, current, adam_id, pricing_param); !s) return s;
  }
  // An app with more stored than Apple counts may hold a delta row that was
  // already there (an assignment removed and made again since the last
  // walk): its runs are merged, duplicates dropped, before the check decides.
  Result<std::map<std::pair<std::string, std::string>, std::int64_t>> stored = StoredCounts(tx, current);
  if (!stored) return Fail(stored.error());
  for (const MobileApp& app : apps) {
    auto it = stored->find({app.adam_id, app.pricing_param});
    if (it == stored->end() || it->second <= app.used_licenses) continue;
    if (Status s = MergeRuns(c, current, app.adam_id, app.pricing_param); !s) return s;
  }
  return {};
}

// Appends `run` to its app's chunks in `generation` and counts it in
// assignment_counts (rows, one more run, its chunks).
Status SqliteStore::AppendRun(Connection& c, std::int64_t generation, const chunks::AppRun& run) {
  Result<std::int64_t> app_key = AppKey(c, *run.adam_id, *run.pricing_param);
  if (!app_key) return Fail(app_key.error());
  const auto added = static_cast<std::int64_t>(run.chunks.size());
  Result<std::int64_t> first =
      AddToCounts(c, generation, *run.adam_id, *run.pricing_param, run.rows, /*runs=*/1, added);
  if (!first) return Fail(first.error());
  return InsertChunks(c, generation, *app_key, *first, run.chunks);
}

// Adds to the (generation, app)'s counts, creating them; returns the app's
// chunk count before the addition (the number of its first new chunk).
Result<std::int64_t> SqliteStore::AddToCounts(Connection& c, std::int64_t generation, const std::string& adam_id,
                                              const std::string& pricing_param, std::int64_t rows, std::int64_t runs,
                                              std::int64_t chunk_count) {
  Result<Stmt> count = c.Prepare(
      "INSERT INTO assignment_counts (generation, adam_id, pricing_param, rows, runs, chunks) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (generation, adam_id, pricing_param) DO UPDATE SET "
      "rows = rows + excluded.rows, runs = runs + excluded.runs, chunks = chunks + excluded.chunks "
      "RETURNING chunks");
  if (!count) return Fail(count.error());
  if (Status s = BindAll(*count, generation, adam_id, pricing_param, rows, runs, chunk_count); !s) {
    return Fail(s.error());
  }
  Result<bool> row = count->Step();
  if (!row) return Fail(row.error());
  if (!*row) return Fail(Error::Internal("store: no chunk count returned for an assignment set"));
  const std::int64_t total = count->Int(0);
  if (Status s = count->Run(); !s) return Fail(s.error());  // finish the upsert
  return total - chunk_count;
}

// Every assignment of the app in `generation`, decoded, in chunk order (sorted
// when the app's chunks are one run).
Result<std::vector<LicenseAssignment>> SqliteStore::ReadAppChunks(Connection& c, std::int64_t generation,
                                                                  std::int64_t app_key, const std::string& adam_id,
                                                                  const std::string& pricing_param) {
  Result<Stmt> read =
      c.Prepare("SELECT rows, data FROM assignment_chunks WHERE generation = ?1 AND app_key = ?2 ORDER BY chunk");
  if (!read) return Fail(read.error());
  if (Status s = BindAll(*read, generation, app_key); !s) return Fail(s.error());
  std::vector<LicenseAssignment> rows;
  for (;;) {
    Result<bool> row = read->Step();
    if (!row) return Fail(row.error());
    if (!*row) return rows;
    if (Status s =
            chunks::Decode(read->Blob(1), read->Int(0), adam_id, pricing_param, SetName(generation, adam_id), rows);
        !s) {
      return Fail(s.error());
    }
  }
}

// Rewrites the app's chunks in `generation` as one run: its runs merged,
// duplicates dropped, the counts exact. O(the app's assignments).
Status SqliteStore::MergeRuns(Connection& c, std::int64_t generation, const std::string& adam_id,
                              const std::string& pricing_param) {
  Result<std::int64_t> app_key = AppKey(c, adam_id, pricing_param);
  if (!app_key) return Fail(app_key.error());
  Result<std::vector<LicenseAssignment>> rows = ReadAppChunks(c, generation, *app_key, adam_id, pricing_param);
  if (!rows) return Fail(rows.error());
  chunks::SortDistinct(*rows);
  std::vector<const LicenseAssignment*> run;
  run.reserve(rows->size());
  for (const auto& r : *rows) run.push_back(&r);
  const std::vector<chunks::Chunk> pieces = chunks::EncodeRun(run);
  Result<Stmt> clear = c.Prepare("DELETE FROM assignment_chunks WHERE generation = ?1 AND app_key = ?2");
  if (!clear) return Fail(clear.error());
  if (Status s = BindAll(*clear, generation, *app_key); !s) return s;
  if (Status s = clear->Run(); !s) return s;
  if (Status s = InsertChunks(c, generation, *app_key, 0, pieces); !s) return s;
  Result<Stmt> count = c.Prepare(
      "UPDATE assignment_counts SET rows = ?4, runs = 1, chunks = ?5 "
      "WHERE generation = ?1 AND adam_id = ?2 AND pricing_param = ?3");
  if (!count) return Fail(count.error());
  if (Status s = BindAll(*count, generation, adam_id, pricing_param, static_cast<std::int64_t>(rows->size()),
                         static_cast<std::int64_t>(pieces.size()));
      !s) {
    return s;
  }
  return count->Run();
}

// The (adam_id, pricing_param) of the apps of `generation` whose chunks are
// more than `max_runs` runs (at most `limit` of them; -1: all).
Result<SqliteStore::AppList> SqliteStore::AppsOfManyRuns(Connection& c, std::int64_t generation, std::int64_t max_runs,
                                                         std::int64_t limit) {
  Result<Stmt> find =
      c.Prepare("SELECT adam_id, pricing_param FROM assignment_counts WHERE generation = ?1 AND runs > ?2 LIMIT ?3");
  if (!find) return Fail(find.error());
  if (Status s = BindAll(*find, generation, max_runs, limit); !s) return Fail(s.error());
  std::vector<std::pair<std::string, std::string>> apps;
  for (;;) {
    Result<bool> row = find->Step();
    if (!row) return Fail(row.error());
    if (!*row) return apps;
    apps.emplace_back(find->Text(0), find->Text(1));
  }
}

// The app_key of (adam_id, pricing_param), handed out (the next integer) the
// first time the pair is seen. Keys are never deleted or reused (migration 6).
Result<std::int64_t> SqliteStore::AppKey(Connection& c, const std::string& adam_id, const std::string& pricing_param) {
  Result<std::optional<std::int64_t>> found = FindAppKey(c, adam_id, pricing_param);
  if (!found) return Fail(found.error());
  if (*found) return **found;
  Result<Stmt> add =
      c.Prepare("INSERT INTO assignment_apps (adam_id, pricing_param) VALUES (?1, ?2) RETURNING app_key");
  if (!add) return Fail(add.error());
  if (Status s = BindAll(*add, adam_id, pricing_param); !s) return Fail(s.error());
  Result<bool> row = add->Step();
  if (!row) return Fail(row.error());
  if (!*row) return Fail(Error::Internal("store: no app_key returned for a new assignment app"));
  std::int64_t key = add->Int(0);
  if (Status s = add->Run(); !s) return Fail(s.error());  // finish the INSERT
  return key;
}

// The app_key of (adam_id, pricing_param) if it has one: an app never seen has
// no assignments in any set.
Result<std::optional<std::int64_t>> SqliteStore::FindAppKey(Connection& c, const std::string& adam_id,
                                                            const std::string& pricing_param) {
  Result<Stmt> find = c.Prepare("SELECT app_key FROM assignment_apps WHERE adam_id = ?1 AND pricing_param = ?2");
  if (!find) return Fail(find.error());
  if (Status s = BindAll(*find, adam_id, pricing_param); !s) return Fail(s.error());
  Result<bool> row = find->Step();
  if (!row) return Fail(row.error());
  if (!*row) return std::optional<std::int64_t>{};
  return std::optional<std::int64_t>{find->Int(0)};
}

}  // namespace vppd::store
