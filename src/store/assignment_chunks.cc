#include "store/assignment_chunks.h"

#include <algorithm>

#include <fmt/format.h>

namespace vppd::store::chunks {
namespace {

constexpr char kVersion = 1;
constexpr char kGuidUser = 'g';
constexpr char kTextUser = 'u';
constexpr char kSerial = 'd';
constexpr std::size_t kGuidLength = 36;

// Value of a lowercase hex digit, or -1 (uppercase is not canonical here: it
// would not round-trip).
struct HexTable {
  signed char value[256];
  constexpr HexTable() : value() {
    for (int c = 0; c < 256; ++c) value[c] = -1;
    for (int c = '0'; c <= '9'; ++c) value[c] = static_cast<signed char>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) value[c] = static_cast<signed char>(c - 'a' + 10);
  }
};
constexpr HexTable kHex;

// Where the 32 hex digits of a canonical GUID (8-4-4-4-12) are in its text.
constexpr unsigned char kDigitAt[32] = {0,  1,  2,  3,  4,  5,  6,  7,  9,  10, 11, 12, 14, 15, 16, 17,
                                        19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35};

// The 16 bytes of a lowercase canonical GUID; false for anything else.
bool PackGuid(std::string_view text, unsigned char out[16]) {
  if (text.size() != kGuidLength || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-') {
    return false;
  }
  int bad = 0;
  for (int k = 0; k < 16; ++k) {
    const int hi = kHex.value[static_cast<unsigned char>(text[kDigitAt[2 * k]])];
    const int lo = kHex.value[static_cast<unsigned char>(text[kDigitAt[2 * k + 1]])];
    bad |= hi | lo;  // negative when either is not a digit
    out[k] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return bad >= 0;
}

void UnpackGuid(const unsigned char* in, std::string& out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  out.assign(kGuidLength, '-');
  for (int k = 0; k < 16; ++k) {
    out[kDigitAt[2 * k]] = kDigits[in[k] >> 4];
    out[kDigitAt[2 * k + 1]] = kDigits[in[k] & 0xf];
  }
}

void PutText(char tag, std::string_view text, std::string& out) {
  out.push_back(tag);
  for (std::size_t n = text.size(); ; n >>= 7) {  // varint length
    if (n < 0x80) {
      out.push_back(static_cast<char>(n));
      break;
    }
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  out.append(text);
}

void PutOne(bool device, std::string_view id, std::string& out) {
  if (device) return PutText(kSerial, id, out);
  unsigned char guid[16];
  if (PackGuid(id, guid)) {
    out.push_back(kGuidUser);
    out.append(reinterpret_cast<const char*>(guid), sizeof guid);
    return;
  }
  PutText(kTextUser, id, out);
}

void PutOne(const LicenseAssignment& row, std::string& out) {
  const bool device = !row.serial_number.empty();
  PutOne(device, device ? row.serial_number : row.client_user_id, out);
}

// Cuts the `n` rows that `put(i, out)` appends into chunks of kChunkRows.
template <class Put>
std::vector<Chunk> EncodeRows(std::size_t n, Put&& put) {
  std::vector<Chunk> out;
  for (std::size_t begin = 0; begin < n; begin += kChunkRows) {
    const std::size_t end = std::min(n, begin + kChunkRows);
    Chunk& chunk = out.emplace_back();
    chunk.rows = static_cast<std::int64_t>(end - begin);
    chunk.data.reserve(1 + (end - begin) * 18);
    chunk.data.push_back(kVersion);
    for (std::size_t i = begin; i < end; ++i) put(i, chunk.data);
  }
  return out;
}

}  // namespace

std::vector<Chunk> EncodeRun(const std::vector<const LicenseAssignment*>& rows) {
  return EncodeRows(rows.size(), [&](std::size_t i, std::string& out) { PutOne(*rows[i], out); });
}

std::vector<AppRun> EncodeByApp(const StagedAssignments& batch, const std::vector<std::uint32_t>& sorted) {
  const auto& rows = batch.rows();
  std::vector<AppRun> out;
  std::vector<std::uint32_t> run;
  for (std::size_t begin = 0; begin < sorted.size();) {
    const std::uint32_t app = rows[sorted[begin]].app;
    run.clear();
    std::size_t end = begin;
    for (; end < sorted.size() && rows[sorted[end]].app == app; ++end) {
      const auto& row = rows[sorted[end]];
      if (!run.empty()) {
        const auto& prev = rows[run.back()];
        if (prev.kind == row.kind && batch.id(prev) == batch.id(row)) continue;  // a duplicate
      }
      run.push_back(sorted[end]);
    }
    AppRun& app_run = out.emplace_back();
    app_run.adam_id = &batch.apps()[app].first;
    app_run.pricing_param = &batch.apps()[app].second;
    app_run.rows = static_cast<std::int64_t>(run.size());
    app_run.chunks = EncodeRows(run.size(), [&](std::size_t i, std::string& data) {
      const auto& row = rows[run[i]];
      PutOne(row.kind == StagedAssignments::kDevice, batch.id(row), data);
    });
    for (const Chunk& chunk : app_run.chunks) app_run.bytes += chunk.data.size();
    begin = end;
  }
  return out;
}

Status Decode(std::string_view data, std::int64_t rows, const std::string& adam_id, const std::string& pricing_param,
              std::string_view what, std::vector<LicenseAssignment>& out) {
  auto corrupt = [&](std::string_view why) {
    return Fail(Error::Internal(fmt::format("store: assignment chunk of {} is corrupt: {}", what, why)));
  };
  if (rows < 0 || data.empty() || data[0] != kVersion) return corrupt("unknown format");
  const auto* p = reinterpret_cast<const unsigned char*>(data.data()) + 1;
  const auto* end = reinterpret_cast<const unsigned char*>(data.data()) + data.size();
  out.reserve(out.size() + static_cast<std::size_t>(rows));
  for (std::int64_t n = 0; n < rows; ++n) {
    if (p == end) return corrupt("fewer assignments than its row count");
    const char tag = static_cast<char>(*p++);
    LicenseAssignment& row = out.emplace_back();
    row.adam_id = adam_id;
    row.pricing_param = pricing_param;
    if (tag == kGuidUser) {
      if (end - p < 16) return corrupt("truncated id");
      UnpackGuid(p, row.client_user_id);
      p += 16;
      continue;
    }
    if (tag != kTextUser && tag != kSerial) return corrupt("unknown tag");
    std::size_t length = 0;
    for (int shift = 0;; shift += 7) {
      if (p == end || shift > 28) return corrupt("bad length");
      const unsigned char b = *p++;
      length |= static_cast<std::size_t>(b & 0x7f) << shift;
      if (b < 0x80) break;
    }
    if (length == 0 || static_cast<std::size_t>(end - p) < length) return corrupt("bad length");
    (tag == kSerial ? row.serial_number : row.client_user_id).assign(reinterpret_cast<const char*>(p), length);
    p += length;
  }
  if (p != end) return corrupt("more bytes than its row count");
  return {};
}

Status Batcher::Add(std::string_view data, std::int64_t rows, const std::string& adam_id,
                    const std::string& pricing_param, std::string_view what) {
  if (Status s = Decode(data, rows, adam_id, pricing_param, what, pending_); !s) return s;
  while (pending_.size() >= batch_) {
    if (pending_.size() == batch_) {
      if (Status s = on_batch_(pending_); !s) return s;
      pending_.clear();
      break;
    }
    std::vector<LicenseAssignment> full(std::make_move_iterator(pending_.begin()),
                                        std::make_move_iterator(pending_.begin() + static_cast<std::ptrdiff_t>(batch_)));
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(batch_));
    if (Status s = on_batch_(full); !s) return s;
  }
  return {};
}

Status Batcher::Flush() {
  if (pending_.empty()) return {};
  Status s = on_batch_(pending_);
  pending_.clear();
  return s;
}

void SortDistinct(std::vector<LicenseAssignment>& rows) {
  std::sort(rows.begin(), rows.end(), KeyLess);
  rows.erase(std::unique(rows.begin(), rows.end(), KeyEqual), rows.end());
}

}  // namespace vppd::store::chunks
