#include "store/assignment_chunks.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>

#include <fmt/format.h>

namespace vppd::store::chunks {
namespace {

constexpr char kVersion = 1;
constexpr char kGuidUser = 'g';
constexpr char kTextUser = 'u';
constexpr char kSerial = 'd';
constexpr std::size_t kGuidLength = 36;

// Where the 32 hex digits of a canonical GUID (8-4-4-4-12) are in its text.
constexpr unsigned char kDigitAt[32] = {0,  1,  2,  3,  4,  5,  6,  7,  9,  10, 11, 12, 14, 15, 16, 17,
                                        19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35};

constexpr std::uint64_t kBytes(std::uint8_t b) { return 0x0101010101010101ULL * b; }

// The value of the 8 lowercase hex digits of `x` (read little-endian from
// text: its first digit in the low byte, the most significant), or false when
// one is not such a digit. Eight digits at a time: the sort packs every GUID of
// a sync, and a digit at a time through a table this was most of its time.
[[gnu::always_inline]] inline bool HexValue8(std::uint64_t x, std::uint64_t& value) {
  // '0'..'9' are 0x30..0x39, 'a'..'f' 0x61..0x66: the low nibble, plus 9 when
  // bit 6 is set. Any other byte either gives more than 15 or does not come
  // back from the value (no byte carries into the next: each stays <= 0x7f).
  const std::uint64_t n = (x & kBytes(0x0f)) + ((x >> 6) & kBytes(0x01)) * 9;
  const std::uint64_t letters = ((n + kBytes(0x06)) >> 4) & kBytes(0x01);  // digits 10..15 (and larger)
  const std::uint64_t text = n + kBytes(0x30) + letters * 39;
  if (text != x || ((n + kBytes(0x70)) & kBytes(0x80)) != 0) return false;
  // The nibbles (the first in the low byte) into one number, the first highest.
  std::uint64_t v = __builtin_bswap64(n);
  v = ((v >> 4) | v) & 0x00ff00ff00ff00ffULL;
  v = ((v >> 8) | v) & 0x0000ffff0000ffffULL;
  value = ((v >> 16) | v) & 0xffffffffULL;
  return true;
}

inline std::uint64_t Load8(const char* p) {
  std::uint64_t x = 0;
  std::memcpy(&x, p, sizeof x);
  if constexpr (std::endian::native == std::endian::big) x = __builtin_bswap64(x);
  return x;
}

inline std::uint64_t Load4(const char* p) {
  std::uint32_t x = 0;
  std::memcpy(&x, p, sizeof x);
  if constexpr (std::endian::native == std::endian::big) x = __builtin_bswap32(x);
  return x;
}

// The 16 bytes of a lowercase canonical GUID as two big-endian integers (so
// that they order as the text does); false for anything else (uppercase is not
// canonical here: it would not round-trip).
bool PackGuid(std::string_view text, std::uint64_t& hi, std::uint64_t& lo) {
  if (text.size() != kGuidLength || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-') {
    return false;
  }
  // 8-4-4-4-12 digits at 0, 9, 14, 19 and 24: read as four words of 8 digits
  // (the groups of 4 in pairs), straight from the text.
  const char* p = text.data();
  std::uint64_t a = 0, bc = 0, df = 0, e = 0;
  const bool ok = HexValue8(Load8(p), a) & HexValue8(Load4(p + 9) | Load4(p + 14) << 32, bc) &
                  HexValue8(Load4(p + 19) | Load4(p + 32) << 32, df) & HexValue8(Load8(p + 24), e);
  hi = a << 32 | bc;
  lo = (df >> 16) << 48 | e << 16 | (df & 0xffff);
  return ok;
}

std::uint64_t BigEndian(std::uint64_t v) {
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
  return v;
}

// The Write* functions write one row at `p`, which has room (StagingEncoder
// makes it), and return where it ends; the Put* ones append to a string.
constexpr std::size_t kGuidRowBytes = 17;

char* WriteGuid(std::uint64_t hi, std::uint64_t lo, char* p) {
  *p = kGuidUser;
  const std::uint64_t bytes[2] = {BigEndian(hi), BigEndian(lo)};
  std::memcpy(p + 1, bytes, sizeof bytes);
  return p + kGuidRowBytes;
}

char* WriteText(char tag, std::string_view text, char* p) {
  *p++ = tag;
  for (std::size_t n = text.size();; n >>= 7) {  // varint length
    if (n < 0x80) {
      *p++ = static_cast<char>(n);
      break;
    }
    *p++ = static_cast<char>((n & 0x7f) | 0x80);
  }
  std::memcpy(p, text.data(), text.size());
  return p + text.size();
}

void PutGuid(std::uint64_t hi, std::uint64_t lo, std::string& out) {
  char row[kGuidRowBytes];
  WriteGuid(hi, lo, row);
  out.append(row, sizeof row);
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
  for (std::size_t n = text.size();; n >>= 7) {  // varint length
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
  std::uint64_t hi = 0, lo = 0;
  if (PackGuid(id, hi, lo)) return PutGuid(hi, lo, out);
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

namespace {

using OrderedRow = StagingOrder::Row;

std::uint64_t LoadBigEndian(const char* p) {
  std::uint64_t v = 0;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
  return v;
}

// The first 16 bytes of `id`, zero-padded, as two big-endian integers: keys
// order as the ids do, except that ids equal in their first 16 bytes (or that
// differ only by trailing zero bytes) tie.
void TextKey(std::string_view id, std::uint64_t& hi, std::uint64_t& lo) {
  // Loaded from the id itself when it is 8 bytes or longer (serial numbers are
  // 12): a copy into a padded buffer would stall each load behind the copy.
  const char* p = id.data();
  const std::size_t n = id.size();
  if (n >= 16) {
    hi = LoadBigEndian(p);
    lo = LoadBigEndian(p + 8);
  } else if (n >= 8) {
    hi = LoadBigEndian(p);
    lo = n == 8 ? 0 : LoadBigEndian(p + n - 8) << (8 * (16 - n));  // bytes 8..n-1, then zeros
  } else {
    char bytes[8] = {};
    std::memcpy(bytes, p, n);
    hi = LoadBigEndian(bytes);
    lo = 0;
  }
}

// The order of one bucket's rows: by key; on a tie, by the whole ids when the
// keys are text (a tie of GUID keys is the same id).
struct KeyOrder {
  const StagedAssignments& batch;
  bool text;
  bool operator()(const OrderedRow& a, const OrderedRow& b) const {
    if (a.hi != b.hi) return a.hi < b.hi;
    if (a.lo != b.lo) return a.lo < b.lo;
    return text && batch.id(batch.rows()[a.row]) < batch.id(batch.rows()[b.row]);
  }
  bool Same(const OrderedRow& a, const OrderedRow& b) const {
    return a.hi == b.hi && a.lo == b.lo && (!text || batch.id(batch.rows()[a.row]) == batch.id(batch.rows()[b.row]));
  }
};

constexpr std::ptrdiff_t kInsertionSortRows = 16;
constexpr int kMaxRadixBits = 11;  // 2,048 counters: 16 KB of the stack at most per level

void InsertionSort(OrderedRow* first, OrderedRow* last, const KeyOrder& less) {
  for (OrderedRow* i = first + 1; i < last; ++i) {
    const OrderedRow x = *i;
    OrderedRow* j = i;
    for (; j > first && less(x, j[-1]); --j) *j = j[-1];
    *j = x;
  }
}

// Sorts the rows [first, last) by `less` into `out` (as many rows; the input
// is clobbered): a most significant digit radix sort on the highest bits in
// which the keys differ (the bits above are common to all: random GUIDs and
// serial numbers spread evenly over the digits whatever prefix they share),
// about log2(n) bits at a time so that each digit gets a row or two; short
// ranges by insertion. Each level consumes the bits it sorted on, so the depth
// is at most 128 / 4. The rows move once per level, and once more only where a
// digit holds more than kInsertionSortRows.
void RadixSortInto(OrderedRow* first, OrderedRow* last, OrderedRow* out, const KeyOrder& less) {
  const std::ptrdiff_t n = last - first;
  if (n <= kInsertionSortRows) {
    std::copy(first, last, out);
    return InsertionSort(out, out + n, less);
  }
  std::uint64_t hi_min = first->hi, hi_max = first->hi, lo_min = first->lo, lo_max = first->lo;
  for (const OrderedRow* r = first + 1; r < last; ++r) {
    hi_min = std::min(hi_min, r->hi);
    hi_max = std::max(hi_max, r->hi);
    lo_min = std::min(lo_min, r->lo);
    lo_max = std::max(lo_max, r->lo);
  }
  const bool on_hi = hi_min != hi_max;  // else every hi is the same: lo decides
  if (!on_hi && lo_min == lo_max) {
    std::copy(first, last, out);
    if (less.text) std::sort(out, out + n, less);  // equal keys: the whole ids decide
    return;
  }
  const std::uint64_t differ = on_hi ? hi_min ^ hi_max : lo_min ^ lo_max;
  const int top = 63 - std::countl_zero(differ);  // the highest bit in which two keys differ
  const int bits = std::min(
      top + 1, std::clamp(static_cast<int>(std::bit_width(static_cast<std::uint64_t>(n))) - 1, 4, kMaxRadixBits));
  const int shift = top + 1 - bits;
  const std::uint64_t mask = (std::uint64_t{1} << bits) - 1;
  auto digit = [&](const OrderedRow& r) { return static_cast<std::size_t>(((on_hi ? r.hi : r.lo) >> shift) & mask); };
  const std::size_t digits = std::size_t{1} << bits;
  std::uint32_t ends[(1 << kMaxRadixBits) + 1];
  std::fill(ends, ends + digits + 1, 0);
  for (const OrderedRow* r = first; r < last; ++r) ++ends[digit(*r) + 1];
  for (std::size_t d = 1; d <= digits; ++d) ends[d] += ends[d - 1];
  for (const OrderedRow* r = first; r < last; ++r) out[ends[digit(*r)]++] = *r;  // ends[d]: the end of digit d
  std::uint32_t begin = 0;
  bool small_digits = false;  // of 2..kInsertionSortRows rows
  for (std::size_t d = 0; d < digits; ++d) {
    const std::uint32_t size = ends[d] - begin;
    if (size > kInsertionSortRows) {
      RadixSortInto(out + begin, out + ends[d], first + begin, less);
      std::copy(first + begin, first + ends[d], out + begin);
    } else {
      small_digits |= size > 1;
    }
    begin = ends[d];
  }
  // Rows are out of order only within a digit: one insertion pass over all of
  // them sorts the small digits (and only compares in the sorted ones), cheaper
  // than a call per digit.
  if (small_digits) InsertionSort(out, out + n, less);
}

// A user id shaped like a canonical GUID (its length and dashes): almost
// always one. PackGuid decides.
bool GuidShaped(std::string_view id) {
  return id.size() == kGuidLength && id[8] == '-' && id[13] == '-' && id[18] == '-' && id[23] == '-';
}

}  // namespace

void StagingOrder::Sort(const StagedAssignments& batch, bool distinct) {
  const auto& apps = batch.apps();
  const auto& rows = batch.rows();
  // Apps ranked once (a few hundred at most in a call).
  by_rank_.resize(apps.size());
  for (std::uint32_t a = 0; a < by_rank_.size(); ++a) by_rank_[a] = a;
  std::sort(by_rank_.begin(), by_rank_.end(), [&](std::uint32_t a, std::uint32_t b) { return apps[a] < apps[b]; });
  ranks_.resize(apps.size());
  for (std::uint32_t k = 0; k < by_rank_.size(); ++k) ranks_[by_rank_[k]] = k;

  // The rows bucketed by (app, kind of id), a counting sort (stable, O(n)):
  // each row's bucket counted, then its key written straight into its
  // bucket's place. A GUID-shaped user id is taken for a GUID; should one not
  // pack (a non-digit in it: practically never), the rows are bucketed again,
  // each GUID packed twice.
  // Rows mostly come in long runs of one bucket (Apple's pages grouped by
  // asset): the counts and write positions of the current run stay in
  // registers, not incremented in memory row after row (a chain of dependent
  // loads and stores).
  constexpr std::uint32_t kNoBucket = ~std::uint32_t{0};
  auto bucket_rows = [&](bool exact) {
    starts_.assign(apps.size() * kIdClasses + 1, 0);
    bucket_of_.resize(rows.size());
    std::uint32_t run_bucket = kNoBucket, run_rows = 0;
    for (std::uint32_t i = 0; i < rows.size(); ++i) {
      const StagedAssignments::Row& row = rows[i];
      std::uint32_t id_class = kSerial;
      if (row.kind != StagedAssignments::kDevice) {
        std::uint64_t hi = 0, lo = 0;
        const std::string_view id = batch.id(row);
        id_class = (exact ? PackGuid(id, hi, lo) : GuidShaped(id)) ? kGuidUser : kTextUser;
      }
      const std::uint32_t b = ranks_[row.app] * kIdClasses + id_class;
      bucket_of_[i] = b;
      if (b != run_bucket) {
        if (run_bucket != kNoBucket) starts_[run_bucket + 1] += run_rows;
        run_bucket = b;
        run_rows = 0;
      }
      ++run_rows;
    }
    if (run_bucket != kNoBucket) starts_[run_bucket + 1] += run_rows;
    for (std::size_t b = 1; b < starts_.size(); ++b) starts_[b] += starts_[b - 1];
    buckets_.resize(rows.size());
    // starts_[b]: the next free place of bucket b; in the end, the end of b.
    run_bucket = kNoBucket;
    OrderedRow* next = nullptr;
    for (std::uint32_t i = 0; i < rows.size(); ++i) {
      const std::uint32_t b = bucket_of_[i];
      if (b != run_bucket) {
        if (run_bucket != kNoBucket) starts_[run_bucket] = static_cast<std::uint32_t>(next - buckets_.data());
        run_bucket = b;
        next = buckets_.data() + starts_[b];
      }
      OrderedRow& key = *next++;
      key.row = i;
      key.bucket = b;
      const std::string_view id = batch.id(rows[i]);
      if (b % kIdClasses != kGuidUser) {
        TextKey(id, key.hi, key.lo);
      } else if (!PackGuid(id, key.hi, key.lo)) {
        return false;
      }
    }
    if (run_bucket != kNoBucket) starts_[run_bucket] = static_cast<std::uint32_t>(next - buckets_.data());
    return true;
  };
  if (!bucket_rows(/*exact=*/false)) bucket_rows(/*exact=*/true);

  // Each bucket sorted into the same place of rows_.
  rows_.resize(rows.size());
  auto bucket = [&](std::vector<OrderedRow>& in, std::size_t b) {
    return std::pair<OrderedRow*, OrderedRow*>(in.data() + (b == 0 ? 0 : starts_[b - 1]), in.data() + starts_[b]);
  };
  for (std::size_t b = 0; b + 1 < starts_.size(); ++b) {
    auto [first, last] = bucket(buckets_, b);
    RadixSortInto(first, last, bucket(rows_, b).first, KeyOrder{batch, b % kIdClasses != kGuidUser});
  }
  rows_.swap(buckets_);  // buckets_: the sorted buckets

  // The result, app by app: its GUID and other user ids merged by text, then
  // its serial numbers; a row the same as the one before it of its bucket
  // dropped when `distinct`.
  rows_.clear();
  apps_.clear();
  const KeyOrder guid_order{batch, false}, text_order{batch, true};
  auto push = [&](const OrderedRow& r, const OrderedRow*& previous, const KeyOrder& order) {
    if (distinct && previous != nullptr && order.Same(*previous, r)) return;
    rows_.push_back(r);
    previous = &r;
  };
  for (std::uint32_t rank = 0; rank < by_rank_.size(); ++rank) {
    const auto begin = static_cast<std::uint32_t>(rows_.size());
    auto [g, g_end] = bucket(buckets_, std::size_t{rank} * kIdClasses + kGuidUser);
    auto [t, t_end] = bucket(buckets_, std::size_t{rank} * kIdClasses + kTextUser);
    auto [s, s_end] = bucket(buckets_, std::size_t{rank} * kIdClasses + kSerial);
    const OrderedRow* previous_guid = nullptr;
    const OrderedRow* previous_text = nullptr;
    while (g < g_end && t < t_end) {  // a GUID and another id are never the same id
      if (batch.id(rows[g->row]) < batch.id(rows[t->row])) {
        push(*g++, previous_guid, guid_order);
      } else {
        push(*t++, previous_text, text_order);
      }
    }
    for (; g < g_end; ++g) push(*g, previous_guid, guid_order);
    for (; t < t_end; ++t) push(*t, previous_text, text_order);
    const OrderedRow* previous_serial = nullptr;
    for (; s < s_end; ++s) push(*s, previous_serial, text_order);
    const auto end = static_cast<std::uint32_t>(rows_.size());
    if (end > begin) apps_.push_back({by_rank_[rank], begin, end});
  }
}

const std::vector<AppRun>& StagingEncoder::Encode(const StagedAssignments& batch) {
  order_.Sort(batch, /*distinct=*/true);
  const auto& rows = batch.rows();
  const auto& ordered = order_.rows();
  // Room for the most the rows can take (a version byte a chunk; a tag, a
  // varint length of at most 5 bytes and the id a row), so that rows are
  // written through a pointer, and the views into the buffer stay valid.
  std::size_t most = ordered.size() * 6 + batch.id_bytes();
  for (const StagingOrder::App& app : order_.apps()) most += (app.end - app.begin + kChunkRows - 1) / kChunkRows;
  most = std::max(most, ordered.size() * kGuidRowBytes);
  if (most > capacity_) {
    capacity_ = std::max(most, capacity_ * 2);
    bytes_ = std::make_unique_for_overwrite<char[]>(capacity_);
  }
  chunks_.clear();
  runs_.clear();
  char* p = bytes_.get();
  for (const StagingOrder::App& app : order_.apps()) {
    const std::size_t first_chunk = chunks_.size();
    for (std::uint32_t begin = app.begin; begin < app.end; begin += kChunkRows) {
      const std::uint32_t end = std::min<std::uint32_t>(app.end, begin + kChunkRows);
      char* const start = p;
      *p++ = kVersion;
      for (std::uint32_t i = begin; i < end; ++i) {
        // Straight from the sort keys: a GUID is written as the bytes it was sorted by.
        const OrderedRow& r = ordered[i];
        if (r.guid()) {
          p = WriteGuid(r.hi, r.lo, p);
          continue;
        }
        const StagedAssignments::Row& row = rows[r.row];
        p = WriteText(row.kind == StagedAssignments::kDevice ? kSerial : kTextUser, batch.id(row), p);
      }
      chunks_.push_back({end - begin, std::string_view(start, static_cast<std::size_t>(p - start))});
    }
    AppRun& run = runs_.emplace_back();
    run.adam_id = &batch.apps()[app.app].first;
    run.pricing_param = &batch.apps()[app.app].second;
    run.rows = app.end - app.begin;
    for (std::size_t c = first_chunk; c < chunks_.size(); ++c) run.bytes += chunks_[c].data.size();
  }
  // The views, once chunks_ no longer moves.
  std::size_t next = 0;
  for (AppRun& run : runs_) {
    const std::size_t count = (static_cast<std::size_t>(run.rows) + kChunkRows - 1) / kChunkRows;
    run.chunks = std::span<const ChunkView>(chunks_).subspan(next, count);
    next += count;
  }
  return runs_;
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
    std::vector<LicenseAssignment> full(
        std::make_move_iterator(pending_.begin()),
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
