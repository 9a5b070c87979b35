// Internal to store/: license assignments kept as chunks, not as rows.
//
// A location can hold millions of assignments, and a full sync rewrites all of
// them. One row (and one B-tree entry) per assignment made staging in SQLite
// the largest part of a sync (bench/README.md, sync). The assignments of one app of one set (generation) are therefore
// kept as a few *chunks*: blobs of up to kChunkRows assignments in a compact
// binary form, one table row each (assignment_chunks, SQLite migration 8).
//
// A *run* is what one StageAssignments call brings for one app: its rows sorted
// by (serial_number, client_user_id), the order Graph lists them in, without
// duplicates, cut into consecutive chunks. An app of a set whose rows came in
// one run (the usual case: the sync hands the store whole apps) is listed by
// reading chunks in order and skipping whole chunks by their row counts; an app
// of several runs (a walk that was not grouped by app, an app of more rows than
// the sync buffers, deltas appended to a set) is read by decoding all of its
// chunks and merging them. See sqlite_staging.cc for when runs are merged.
//
// Format of a chunk: a version byte (1), then per assignment a tag byte and its
// identifier: 'g' + 16 bytes for a client user id that is a lowercase GUID in
// canonical text (most are: MDMs mint them), 'u' + varint length + bytes for any
// other client user id, 'd' + varint length + bytes for a device serial number.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/base.h"
#include "store/store.h"

namespace vppd::store::chunks {

// Most assignments in one chunk: ~10-20 KB. Listing an app's assignments (a
// Graph page of 100) decodes one or two chunks.
inline constexpr std::size_t kChunkRows = 512;

// Graph's order of an app's assignments: by serial number, then client user id
// (byte order; user assignments, whose serial number is empty, first).
inline bool KeyLess(const LicenseAssignment& a, const LicenseAssignment& b) {
  if (a.serial_number != b.serial_number) return a.serial_number < b.serial_number;
  return a.client_user_id < b.client_user_id;
}
inline bool KeyEqual(const LicenseAssignment& a, const LicenseAssignment& b) {
  return a.serial_number == b.serial_number && a.client_user_id == b.client_user_id;
}

// One chunk to write.
struct Chunk {
  std::int64_t rows = 0;
  std::string data;
};

// Cuts `rows` (one app's, sorted by KeyLess, distinct) into chunks of at most
// kChunkRows.
std::vector<Chunk> EncodeRun(const std::vector<const LicenseAssignment*>& rows);

// The order StageAssignments writes a batch in: rows grouped by app, apps in
// (adamId, pricingParam) order, each app's rows in Graph's order (KeyLess: user
// rows, whose serial number is empty, first; each by its id's bytes).
//
// Why not std::sort with a comparator on the ids: at 1,000,000 rows a sync, the
// comparisons (and the cache misses of reaching each id) were most of the
// stager's CPU. Each row gets a 16-byte key once, compared as two integers: a
// client user id that is a lowercase canonical GUID packed into its 16 bytes
// (the order of its text; the chunk encoder writes the same bytes), any other
// id's first 16 bytes, zero-padded (whole ids then compared on a tie only).
// Rows are bucketed by (app, kind of id) in O(n), then each bucket is radix
// sorted on the keys' highest differing bits. GUID and other user ids of one
// app are sorted apart and merged by text.
//
// Not thread-safe; reusable: Sort keeps its buffers for the next call.
class StagingOrder {
 public:
  struct Row {
    std::uint64_t hi = 0, lo = 0;  // the key, big-endian; for a GUID its 16 bytes
    std::uint32_t row = 0;         // index into the batch's rows()
    std::uint32_t bucket = 0;      // app rank * kIdClasses + IdClass
    bool guid() const { return bucket % kIdClasses == kGuidUser; }
  };
  struct App {
    std::uint32_t app = 0;             // index into the batch's apps()
    std::uint32_t begin = 0, end = 0;  // its rows in rows()
  };
  enum IdClass : std::uint32_t { kGuidUser = 0, kTextUser = 1, kSerial = 2, kIdClasses = 3 };

  // Orders `batch`'s rows, which must have passed CheckStagedRows; drops
  // duplicates (a row of the same app, kind and id as one before it) when
  // `distinct`. The result refers to `batch` by index only.
  void Sort(const StagedAssignments& batch, bool distinct);

  // The rows in order; the apps with rows, in order.
  const std::vector<Row>& rows() const { return rows_; }
  const std::vector<App>& apps() const { return apps_; }

 private:
  std::vector<Row> rows_;     // the result (the buckets sorted, until swapped with buckets_)
  std::vector<Row> buckets_;  // the keys bucketed (then the sorted buckets)
  std::vector<App> apps_;
  std::vector<std::uint32_t> by_rank_, ranks_, starts_, bucket_of_;
};

// A chunk of a StageAssignments call: a view into the StagingEncoder that made it.
struct ChunkView {
  std::int64_t rows = 0;
  std::string_view data;
};

// One app's run of a StageAssignments call.
struct AppRun {
  const std::string* adam_id = nullptr;  // into the staged rows
  const std::string* pricing_param = nullptr;
  std::int64_t rows = 0;  // distinct
  std::size_t bytes = 0;  // of all chunks
  std::span<const ChunkView> chunks;
};

// Encodes StageAssignments calls: each batch's rows as one run per app, in
// StagingOrder, duplicates dropped. Keeps its buffers (the order's, the chunks'
// bytes) from one call to the next: a sync's stager makes ~20 calls of 50,000
// rows, and buffers allocated and freed at each call made the allocator grow
// and trim its heap each time (page faults, mprotect: ~15 % of the stager's
// CPU). Not thread-safe.
class StagingEncoder {
 public:
  // The runs of `batch`'s rows (checked by CheckStagedRows); they view `batch`
  // and this encoder, valid until the next Encode.
  const std::vector<AppRun>& Encode(const StagedAssignments& batch);

 private:
  StagingOrder order_;
  std::unique_ptr<char[]> bytes_;  // every chunk, back to back
  std::size_t capacity_ = 0;       // of bytes_
  std::vector<ChunkView> chunks_;
  std::vector<AppRun> runs_;
};

// Appends the `rows` assignments of `data` to `out`, with adam_id and
// pricing_param set. Internal naming `what` when the blob is not a well-formed
// chunk of exactly `rows` assignments.
Status Decode(std::string_view data, std::int64_t rows, const std::string& adam_id, const std::string& pricing_param,
              std::string_view what, std::vector<LicenseAssignment>& out);

// ForEachAssignment's batches: the assignments of the chunks added, in the
// order added, handed to `on_batch` in batches of exactly `batch` (the last
// one fewer; none when there are none).
class Batcher {
 public:
  Batcher(std::size_t batch, const std::function<Status(const std::vector<LicenseAssignment>&)>& on_batch)
      : batch_(batch), on_batch_(on_batch) {}
  // Decodes a chunk (see Decode) and hands on every full batch.
  Status Add(std::string_view data, std::int64_t rows, const std::string& adam_id, const std::string& pricing_param,
             std::string_view what);
  // Hands on what is left.
  Status Flush();

 private:
  std::size_t batch_;
  const std::function<Status(const std::vector<LicenseAssignment>&)>& on_batch_;
  std::vector<LicenseAssignment> pending_;
};

// Sorts `rows` (one app's) by KeyLess and drops duplicates: the merge of runs.
void SortDistinct(std::vector<LicenseAssignment>& rows);

}  // namespace vppd::store::chunks
