// Internal to store/: license assignments kept as chunks, not as rows.
//
// A location can hold millions of assignments, and a full sync rewrites all of
// them. One row (and one B-tree entry) per assignment cost ~0.8 us each to
// stage in SQLite, which made a 1,000,000-assignment sync four times its
// download. The assignments of one app of one set (generation) are therefore
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
// chunks and merging them. See sqlite_store.cc for when runs are merged.
//
// Format of a chunk: a version byte (1), then per assignment a tag byte and its
// identifier: 'g' + 16 bytes for a client user id that is a lowercase GUID in
// canonical text (most are: MDMs mint them), 'u' + varint length + bytes for any
// other client user id, 'd' + varint length + bytes for a device serial number.
#pragma once

#include <cstdint>
#include <functional>
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

// One app's run of a StageAssignments call.
struct AppRun {
  const std::string* adam_id = nullptr;  // into the staged rows
  const std::string* pricing_param = nullptr;
  std::int64_t rows = 0;  // distinct
  std::size_t bytes = 0;  // of all chunks
  std::vector<Chunk> chunks;
};

// The runs of `batch`'s rows, one per app, duplicates dropped; `sorted` is the
// order of SortedRows(batch).
std::vector<AppRun> EncodeByApp(const StagedAssignments& batch, const std::vector<std::uint32_t>& sorted);

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
