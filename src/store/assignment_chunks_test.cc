// The staging order (chunks::StagingOrder, SortedRows) and encoder
// (chunks::StagingEncoder) against a plain std::sort of the same assignments by
// Graph's order, on random and adversarial ids; and the chunk bytes they write.
#include "store/assignment_chunks.h"

#include <algorithm>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "store/store_common.h"

namespace vppd::store::chunks {
namespace {

// The order StageAssignments promises: by app, then Graph's order (KeyLess).
bool ReferenceLess(const LicenseAssignment& a, const LicenseAssignment& b) {
  if (std::tie(a.adam_id, a.pricing_param) != std::tie(b.adam_id, b.pricing_param)) {
    return std::tie(a.adam_id, a.pricing_param) < std::tie(b.adam_id, b.pricing_param);
  }
  return KeyLess(a, b);
}

std::vector<LicenseAssignment> Reference(std::vector<LicenseAssignment> rows, bool distinct) {
  std::sort(rows.begin(), rows.end(), ReferenceLess);
  if (distinct) rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

StagedAssignments Batch(const std::vector<LicenseAssignment>& rows) {
  StagedAssignments batch;
  for (const LicenseAssignment& row : rows) batch.Add(row);
  return batch;
}

std::vector<LicenseAssignment> Ordered(const std::vector<LicenseAssignment>& rows, bool distinct) {
  StagedAssignments batch = Batch(rows);
  StagingOrder order;
  order.Sort(batch, distinct);
  std::vector<LicenseAssignment> out;
  for (const StagingOrder::App& app : order.apps()) {
    for (std::uint32_t i = app.begin; i < app.end; ++i) {
      const LicenseAssignment row = batch.At(order.rows()[i].row);
      EXPECT_EQ(std::tie(row.adam_id, row.pricing_param),
                std::tie(batch.apps()[app.app].first, batch.apps()[app.app].second));
      out.push_back(row);
    }
  }
  EXPECT_EQ(out.size(), order.rows().size());
  return out;
}

// What StagingEncoder writes, decoded, app after app.
std::vector<LicenseAssignment> Encoded(StagingEncoder& encoder, const std::vector<LicenseAssignment>& rows) {
  StagedAssignments batch = Batch(rows);
  std::vector<LicenseAssignment> out;
  for (const AppRun& run : encoder.Encode(batch)) {
    std::size_t bytes = 0;
    std::int64_t counted = 0;
    for (const ChunkView& chunk : run.chunks) {
      EXPECT_LE(chunk.rows, static_cast<std::int64_t>(kChunkRows));
      EXPECT_GT(chunk.rows, 0);
      bytes += chunk.data.size();
      counted += chunk.rows;
      EXPECT_TRUE(Decode(chunk.data, chunk.rows, *run.adam_id, *run.pricing_param, "test", out));
    }
    EXPECT_EQ(bytes, run.bytes);
    EXPECT_EQ(counted, run.rows);
  }
  return out;
}

std::string RandomGuid(std::mt19937_64& rng) {
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", rng() & 0xffffffff, rng() & 0xffff, rng() & 0xffff,
                     rng() & 0xffff, rng() & 0xffffffffffffULL);
}

LicenseAssignment User(std::string adam_id, std::string id, std::string pricing = "STDQ") {
  return {std::move(adam_id), std::move(pricing), std::move(id), ""};
}
LicenseAssignment Device(std::string adam_id, std::string serial, std::string pricing = "STDQ") {
  return {std::move(adam_id), std::move(pricing), "", std::move(serial)};
}

// Checks the order (with and without duplicates), SortedRows and the encoder.
void ExpectLikeReference(const std::vector<LicenseAssignment>& rows) {
  EXPECT_EQ(Ordered(rows, false), Reference(rows, false));
  EXPECT_EQ(Ordered(rows, true), Reference(rows, true));
  StagedAssignments batch = Batch(rows);
  std::vector<LicenseAssignment> sorted;
  for (std::uint32_t i : SortedRows(batch)) sorted.push_back(batch.At(i));
  EXPECT_EQ(sorted, Reference(rows, false));
  StagingEncoder encoder;
  EXPECT_EQ(Encoded(encoder, rows), Reference(rows, true));
}

TEST(StagingOrderTest, EmptyBatch) {
  ExpectLikeReference({});
  StagedAssignments batch;
  StagingEncoder encoder;
  EXPECT_TRUE(encoder.Encode(batch).empty());
  EXPECT_TRUE(SortedRows(batch).empty());
}

TEST(StagingOrderTest, RandomGuidsAndSerialsOverManyApps) {
  std::mt19937_64 rng(1);
  std::vector<LicenseAssignment> rows;
  for (int i = 0; i < 20000; ++i) {
    const std::string app = std::to_string(100 + rng() % 37);
    const std::string pricing = rng() % 5 == 0 ? "PLUS" : "STDQ";
    if (rng() % 10 < 7) {
      rows.push_back(User(app, RandomGuid(rng), pricing));
    } else {
      std::string serial = "C";
      for (int k = 0; k < 11; ++k) serial += "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"[rng() % 34];
      rows.push_back(Device(app, serial, pricing));
    }
  }
  for (int i = 0; i < 500; ++i) rows.push_back(rows[rng() % rows.size()]);  // duplicates, anywhere
  std::shuffle(rows.begin(), rows.end(), rng);
  ExpectLikeReference(rows);
}

TEST(StagingOrderTest, OneLargeAppSortsOnManyDigitsAndLevels) {
  // 60,000 rows in one bucket: the widest digits and several levels.
  std::mt19937_64 rng(2);
  std::vector<LicenseAssignment> rows;
  for (int i = 0; i < 60000; ++i) rows.push_back(User("1", RandomGuid(rng)));
  ExpectLikeReference(rows);
}

TEST(StagingOrderTest, GuidsThatShareLongPrefixes) {
  // Keys equal in hi, differing only in the last digit, or only in lo.
  std::mt19937_64 rng(3);
  std::vector<LicenseAssignment> rows;
  for (int i = 0; i < 3000; ++i) {
    rows.push_back(User("1", fmt::format("00000000-0000-0000-0000-{:012x}", rng() % 5000)));
    rows.push_back(User("1", fmt::format("abcdef01-2345-6789-abcd-ef012345678{:x}", rng() % 16)));
    rows.push_back(User("1", fmt::format("ffffffff-ffff-ffff-{:04x}-ffffffffffff", rng() % 65536)));
  }
  ExpectLikeReference(rows);
}

TEST(StagingOrderTest, EqualIdsOnly) {
  std::vector<LicenseAssignment> rows(1000, User("1", "5b9f2c1e-0d4a-4f8e-9a3b-7c6d5e4f3a2b"));
  for (int i = 0; i < 1000; ++i) rows.push_back(Device("1", "C02XK0ABJGH5"));
  for (int i = 0; i < 1000; ++i) rows.push_back(User("1", "user@example.com"));
  ExpectLikeReference(rows);
  EXPECT_EQ(Ordered(rows, true).size(), 3u);
}

TEST(StagingOrderTest, TextIdsThatTieOnTheirFirst16Bytes) {
  // Long ids equal in their first 16 bytes (the key), different after; ids that
  // differ only by trailing zero bytes (equal zero-padded keys); high bytes.
  std::mt19937_64 rng(4);
  std::vector<LicenseAssignment> rows;
  const std::string prefix = "tenant.example.org/users/";
  for (int i = 0; i < 4000; ++i) rows.push_back(User("1", prefix + std::to_string(rng() % 3000)));
  for (int i = 0; i < 200; ++i) {
    rows.push_back(Device("1", std::string(kMaxIdLength - 1, 'S') + static_cast<char>('A' + rng() % 26)));
  }
  // Every length around the key's 8 and 16 bytes, ids prefixes of each other.
  for (std::size_t n = 1; n <= 24; ++n) {
    for (char last : {'a', 'b', '\0', '\xff'}) {
      rows.push_back(Device("2", std::string(n - 1, 'a') + last));
      rows.push_back(User("2", std::string(n - 1, 'a') + last));
      std::string random(n, ' ');
      for (char& c : random) c = static_cast<char>('a' + rng() % 3);
      rows.push_back(Device("2", random));
    }
  }
  rows.push_back(User("1", std::string("ab")));
  rows.push_back(User("1", std::string("ab\0", 3)));
  rows.push_back(User("1", std::string("ab\0\0", 4)));
  rows.push_back(User("1", std::string("ab\0c", 4)));
  rows.push_back(User("1", "\xff\xfe high bytes"));
  rows.push_back(User("1", "\x80"));
  rows.push_back(Device("1", std::string("\0", 1)));
  rows.push_back(Device("1", "0"));
  std::shuffle(rows.begin(), rows.end(), rng);
  ExpectLikeReference(rows);
}

TEST(StagingOrderTest, SequentialIdsDifferOnlyInTheirLowBits) {
  std::vector<LicenseAssignment> rows;
  for (int i = 9999; i >= 0; --i) {
    rows.push_back(Device("1", fmt::format("SERIAL{:010d}", i)));
    rows.push_back(User("1", fmt::format("00000000-0000-0000-0000-{:012x}", i)));
  }
  ExpectLikeReference(rows);
}

TEST(StagingOrderTest, GuidAndOtherUserIdsOfOneAppMergeByText) {
  // Uppercase and malformed GUIDs are not packed: they sort by text among the
  // packed ones. 'g'..'o' are the letters a digit-at-a-time check could take
  // for hex (their low nibble plus 9 is 16..24).
  std::mt19937_64 rng(5);
  std::vector<LicenseAssignment> rows;
  for (int i = 0; i < 5000; ++i) {
    std::string guid = RandomGuid(rng);
    switch (rng() % 8) {
      case 0:
        std::transform(guid.begin(), guid.end(), guid.begin(), [](char c) { return std::toupper(c); });
        break;
      case 1:
        guid[rng() % 8] = static_cast<char>('g' + rng() % 9);
        break;
      case 2:
        guid[24 + rng() % 12] = static_cast<char>(rng() % 2 ? '/' : ':');  // next to '0' and '9'
        break;
      case 3:
        guid[30] = '`';  // just before 'a'
        break;
      case 4:
        guid[13] = 'x';  // a dash missing
        break;
      case 5:
        guid += "0";  // too long
        break;
      default:
        break;
    }
    rows.push_back(User(std::to_string(rng() % 3), guid));
  }
  std::shuffle(rows.begin(), rows.end(), rng);
  ExpectLikeReference(rows);
}

TEST(StagingEncoderTest, WritesTheChunkFormatAsBefore) {
  // A lowercase canonical GUID is 'g' and its 16 bytes; anything else
  // length-prefixed text ('u' users, 'd' devices); the version byte first.
  StagedAssignments batch;
  batch.Add("1", "STDQ", "0123abcd-4567-89ef-fedc-ba9876543210", "");
  batch.Add("1", "STDQ", "0123ABCD-4567-89EF-FEDC-BA9876543210", "");
  batch.Add("1", "STDQ", "", "C02XK0ABJGH5");
  StagingEncoder encoder;
  const auto& runs = encoder.Encode(batch);
  ASSERT_EQ(runs.size(), 1u);
  ASSERT_EQ(runs[0].chunks.size(), 1u);
  const std::string expected = std::string("\x01", 1) + "u\x24" + "0123ABCD-4567-89EF-FEDC-BA9876543210" + "g" +
                               "\x01\x23\xab\xcd\x45\x67\x89\xef\xfe\xdc\xba\x98\x76\x54\x32\x10" + "d\x0c" +
                               "C02XK0ABJGH5";
  EXPECT_EQ(runs[0].chunks[0].data, expected);
  EXPECT_EQ(runs[0].rows, 3);
  EXPECT_EQ(runs[0].bytes, expected.size());
  // EncodeRun (the merges' encoder) writes the same bytes for the same rows.
  std::vector<LicenseAssignment> rows;
  for (std::uint32_t i : SortedRows(batch)) rows.push_back(batch.At(i));
  std::vector<const LicenseAssignment*> run;
  for (const auto& r : rows) run.push_back(&r);
  const std::vector<Chunk> pieces = EncodeRun(run);
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].data, expected);
}

TEST(StagingEncoderTest, CutsRunsIntoChunksAndIsReusable) {
  std::mt19937_64 rng(6);
  StagingEncoder encoder;
  // A large batch, then a small one, then a large one again: the buffers kept
  // from one call must not leak into the next.
  for (std::size_t n : {5000u, 3u, 1u, 12000u, 0u, 700u}) {
    std::vector<LicenseAssignment> rows;
    for (std::size_t i = 0; i < n; ++i) {
      rows.push_back(rng() % 3 ? User(std::to_string(rng() % 4), RandomGuid(rng))
                               : Device(std::to_string(rng() % 4), fmt::format("C{:011X}", rng() % 100000)));
    }
    EXPECT_EQ(Encoded(encoder, rows), Reference(rows, true)) << n << " rows";
  }
  // An app of exactly kChunkRows and kChunkRows + 1 distinct rows.
  for (std::size_t n : {kChunkRows, kChunkRows + 1}) {
    std::vector<LicenseAssignment> rows;
    for (std::size_t i = 0; i < n; ++i) rows.push_back(User("1", RandomGuid(rng)));
    StagedAssignments batch = Batch(rows);
    const auto& runs = encoder.Encode(batch);
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].chunks.size(), n == kChunkRows ? 1u : 2u);
    EXPECT_EQ(runs[0].chunks.back().rows, n == kChunkRows ? 512 : 1);
  }
}

// StagedAssignments keeps each (adamId, pricingParam) once, whatever order rows
// and pages bring them in; Append maps a page's apps onto the batch's.
TEST(StagedAssignmentsTest, AppsAreKeptOnceThroughAddAppendAndClear) {
  std::mt19937_64 rng(7);
  StagedAssignments batch;
  std::vector<LicenseAssignment> expected;
  for (int round = 0; round < 2; ++round) {
    for (int p = 0; p < 30; ++p) {
      StagedAssignments page;
      for (int i = 0; i < 200; ++i) {
        // Pairs that a concatenated key would confuse: ("1", "2STDQ") and ("12", "STDQ").
        const int a = static_cast<int>(rng() % 700);
        LicenseAssignment row =
            rng() % 2 ? User(std::to_string(a), RandomGuid(rng), a % 3 ? "STDQ" : "PLUS")
                      : Device(std::to_string(a / 10), "S" + std::to_string(i), std::to_string(a % 10) + "STDQ");
        page.Add(row);
        expected.push_back(row);
      }
      batch.Append(page);
    }
    ASSERT_EQ(batch.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(batch.At(i), expected[i]) << i;
    std::vector<std::pair<std::string, std::string>> apps = batch.apps();
    std::sort(apps.begin(), apps.end());
    EXPECT_EQ(std::adjacent_find(apps.begin(), apps.end()), apps.end()) << "an app kept twice";
    std::vector<std::pair<std::string, std::string>> distinct;
    for (const auto& row : expected) distinct.emplace_back(row.adam_id, row.pricing_param);
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    EXPECT_EQ(apps, distinct);
    ExpectLikeReference(expected);
    batch.Clear();
    expected.clear();
    EXPECT_TRUE(batch.empty());
    EXPECT_TRUE(batch.apps().empty());
  }
}

// Ids of every length up to 24 bytes that differ in one byte only (first,
// middle, last): each is its own app, on the fast path (the previous row's
// app) and through the table alike.
TEST(StagedAssignmentsTest, AppsDifferingInOneByteAreToldApart) {
  StagedAssignments batch;
  std::vector<std::pair<std::string, std::string>> expected;
  for (std::size_t n = 1; n <= 24; ++n) {
    const std::string base(n, '7');
    for (std::size_t at : {std::size_t{0}, n / 2, n - 1}) {
      std::string other = base;
      other[at] = '8';
      for (const std::string& pricing : {std::string("STDQ"), std::string("STDR")}) {
        for (const std::string& adam : {base, other}) {
          batch.Add(adam, pricing, "u-" + adam, "");  // Alternating: the fast path sees a different app each row.
          batch.Add(adam, pricing, "v-" + adam, "");  // Then the same one.
          if (std::find(expected.begin(), expected.end(), std::pair(adam, pricing)) == expected.end())
            expected.emplace_back(adam, pricing);
        }
      }
    }
  }
  EXPECT_EQ(batch.apps(), expected);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& app = batch.apps()[batch.rows()[i].app];
    EXPECT_EQ(batch.At(i).adam_id, app.first);
    EXPECT_EQ(batch.At(i).client_user_id.substr(2), app.first) << i;
  }
}

// MoveTailTo: the tail's rows go to the other batch as they were (kinds, an
// invalid one included, ids, apps), the rest stays, and both go on taking rows.
TEST(StagedAssignmentsTest, MoveTailToSplitsABatchWhereAsked) {
  std::mt19937_64 rng(11);
  for (std::size_t from :
       {std::size_t{0}, std::size_t{1}, std::size_t{57}, std::size_t{99}, std::size_t{100}, std::size_t{500}}) {
    StagedAssignments batch, out;
    std::vector<LicenseAssignment> rows;
    out.Add(User("999", RandomGuid(rng), "STDQ"));  // `out` already holds a row and an app.
    for (int i = 0; i < 100; ++i) {
      rows.push_back(i % 3 ? User(std::to_string(i / 7), RandomGuid(rng), "STDQ")
                           : Device(std::to_string(i / 7), "S" + std::to_string(i), "PLUS"));
      batch.Add(rows.back());
    }
    batch.Add("7", "STDQ", "user", "serial");  // kInvalid: both ids.
    const std::size_t total = batch.size();
    batch.MoveTailTo(from, out);
    const std::size_t kept = std::min(from, total);
    ASSERT_EQ(batch.size(), kept);
    ASSERT_EQ(out.size(), 1 + total - kept);
    for (std::size_t i = 0; i < kept && i < rows.size(); ++i) EXPECT_EQ(batch.At(i), rows[i]) << i;
    for (std::size_t i = kept; i < rows.size(); ++i) EXPECT_EQ(out.At(1 + i - kept), rows[i]) << i;
    if (kept < total) {
      EXPECT_EQ(out.rows().back().kind, StagedAssignments::kInvalid);
    }
    EXPECT_EQ(batch.id_bytes() + out.id_bytes(), [&] {
      std::size_t n = out.At(0).client_user_id.size() + 6;  // the invalid row keeps its "serial"
      for (const auto& r : rows) n += r.client_user_id.size() + r.serial_number.size();
      return n;
    }());
    batch.Add(User("1", "after", "STDQ"));  // Both still take rows.
    EXPECT_EQ(batch.At(batch.size() - 1), User("1", "after", "STDQ"));
    out.Append(batch);
    EXPECT_EQ(out.At(out.size() - 1), User("1", "after", "STDQ"));
  }
}

}  // namespace
}  // namespace vppd::store::chunks
