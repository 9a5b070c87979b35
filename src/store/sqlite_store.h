// Internal to store/: the SQLite implementation of store::Store.
//
// What both databases do alike is SqlStore's (sql_store.h); this class brings
// the SQLite store's connections (sqlite_connections.h) and what only it does:
// assignments kept as chunks. Each assignment is written once: a job's walk
// stages its rows straight into assignment_chunks (an app's assignments as a
// few blobs, see assignment_chunks.h) under a generation of its own; FinishJob
// repoints the token at it, and the replaced generation becomes garbage that
// the collector deletes in batches of kCollectBatchChunks, one short write
// transaction each. assignment_counts keeps each set's rows, runs and chunks
// per asset (the delta check, reads). Chunks carry an integer app_key
// (assignment_apps). See migrations 3, 4, 6 and 8 in migrations.cc.
//
// Files: sqlite_store.cc (open, sets a crash left unregistered, the
// collector, ClaimJob, reads of assignments), sqlite_staging.cc (staging,
// merging runs, a delta's move).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/assignment_chunks.h"
#include "store/collector.h"
#include "store/sql_store.h"
#include "store/sqlite_connections.h"
#include "store/sqlite_db.h"

namespace vppd::store {

class SqliteStore final : public SqlStore {
 public:
  SqliteStore(const SqliteOptions& options, std::unique_ptr<sqlite::Connection> writer);
  ~SqliteStore() override;

  SqliteConnections& connections() { return conns_; }
  void StartCollector() { collector_.Start(); }

  Result<std::optional<SyncJob>> ClaimJob(const std::string& worker, Timestamp now,
                                          std::chrono::milliseconds lease) override;
  Status ForEachAssignment(const std::string& tenant_id, const std::string& token_id, std::size_t batch,
                           const std::function<Status(const std::vector<LicenseAssignment>&)>& on_batch) override;
  using Store::StageAssignments;
  Status StageAssignments(const SyncJob& job, const StagedAssignments& rows) override;

 protected:
  Status RunTx(TxKind kind, FunctionRef<Status(Tx&)> body) override;
  void NoteGarbage() override { collector_.Wake(); }
  Result<std::int64_t> AdoptUnknownSets(Tx& tx) override;
  Result<Page<LicenseAssignment>> ReadAppAssignments(Tx& tx, std::int64_t generation, const std::string& adam_id,
                                                     const std::string& pricing_param, std::int64_t skip,
                                                     std::int64_t limit) override;
  Status BeforeFinish(const SyncJob& job) override;
  Status PrepareStagedSet(Tx& tx, std::int64_t staged) override;
  Status MergeDelta(Tx& tx, std::int64_t current, std::int64_t staged, const std::vector<MobileApp>& apps) override;

 private:
  using AppList = std::vector<std::pair<std::string, std::string>>;

  static sqlite::Connection& Native(Tx& tx) { return static_cast<SqliteTx&>(tx).conn(); }

  // --- sqlite_store.cc ---
  static Result<Page<LicenseAssignment>> ListChunkedAssignments(sqlite::Connection& c, std::int64_t generation,
                                                                std::int64_t app_key, const std::string& adam_id,
                                                                const std::string& pricing_param, std::int64_t skip,
                                                                std::int64_t limit);
  static Result<CollectStep> CollectBatch(sqlite::Connection& c);

  // --- sqlite_staging.cc ---
  static Status AppendRun(sqlite::Connection& c, std::int64_t generation, const chunks::AppRun& run);
  static Result<std::int64_t> AddToCounts(sqlite::Connection& c, std::int64_t generation, const std::string& adam_id,
                                          const std::string& pricing_param, std::int64_t rows, std::int64_t runs,
                                          std::int64_t chunk_count);
  static Result<std::vector<LicenseAssignment>> ReadAppChunks(sqlite::Connection& c, std::int64_t generation,
                                                              std::int64_t app_key, const std::string& adam_id,
                                                              const std::string& pricing_param);
  static Status MergeRuns(sqlite::Connection& c, std::int64_t generation, const std::string& adam_id,
                          const std::string& pricing_param);
  static Result<AppList> AppsOfManyRuns(sqlite::Connection& c, std::int64_t generation, std::int64_t max_runs,
                                        std::int64_t limit = -1);
  static Result<std::int64_t> AppKey(sqlite::Connection& c, const std::string& adam_id,
                                     const std::string& pricing_param);
  static Result<std::optional<std::int64_t>> FindAppKey(sqlite::Connection& c, const std::string& adam_id,
                                                        const std::string& pricing_param);

  SqliteConnections conns_;
  const std::string pick_job_sql_;
  Collector collector_;  // last: stopped by the destructor before the rest goes
};

// Binds ?1, ?2, ... in order. Strings by view (copied), bools as 0/1, integers as int64.
template <class... Args>
Status BindAll(sqlite::Stmt& stmt, const Args&... args) {
  int n = 1;
  Status s;
  auto one = [&](const auto& v) {
    using T = std::decay_t<decltype(v)>;
    if (!s) return;
    if constexpr (std::is_same_v<T, bool>) {
      s = stmt.BindBool(n++, v);
    } else if constexpr (std::is_integral_v<T>) {
      s = stmt.Bind(n++, static_cast<std::int64_t>(v));
    } else {
      s = stmt.Bind(n++, std::string_view(v));
    }
  };
  (one(args), ...);
  return s;
}

}  // namespace vppd::store
