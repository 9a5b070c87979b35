// The reconcile job's part of the store: jobs asked to run again, the device
// licences vppd hands out, Apple events in flight and their completion, the
// reports; on SQLite and (VPPD_TEST_DATABASE_URL) PostgreSQL.
#include <chrono>
#include <map>
#include <optional>

#include <gtest/gtest.h>

#include "base/testing.h"
#include "store/store.h"
#include "store/store_testing.h"

namespace vppd::store {
namespace {

using namespace std::chrono_literals;
using testing::Backend;

class ReconcileStoreTest : public testing::StoreTest {
 protected:
  ReconcileStoreTest() : StoreTest("vppd-reconcile-store") {}

  void SetUp() override {
    StoreTest::SetUp();
    if (SetUpStopped()) return;
    token_ = Token(kTenantA);
  }

  // EnqueueJob as sync::RequestReconcile calls it.
  bool Reconcile(const std::string& params = "", Timestamp not_before = 0) {
    EnqueueOptions o;
    o.kind = "reconcile";
    o.params = params;
    o.not_before = not_before != 0 ? not_before : clock_.Now();
    o.run_again = true;
    Result<Store::Enqueued> e = store_->EnqueueJob(kTenantA, token_, o, [](VppToken&) -> Status { return {}; });
    EXPECT_TRUE(e) << e.error().message;
    return e && e->queued;
  }

  std::optional<SyncJob> TryClaim() {
    Result<std::optional<SyncJob>> job = store_->ClaimJob("w", clock_.Now(), 60s);
    EXPECT_TRUE(job) << job.error().message;
    return job ? *job : std::nullopt;
  }

  // The app (and its row) Graph's deviceStatuses reads through.
  std::string App(const std::string& adam) {
    EnqueueOptions o;
    EXPECT_TRUE(store_->EnqueueJob(kTenantA, token_, o, [](VppToken&) -> Status { return {}; }));
    std::optional<SyncJob> job = TryClaim();
    EXPECT_TRUE(job);
    MobileApp a;
    a.id = "app-" + adam;
    a.token_id = token_;
    a.platform = "iOS";
    a.adam_id = adam;
    a.pricing_param = "STDQ";
    a.product_type = "App";
    a.display_name = "App";
    a.total_licenses = 10;
    SyncSnapshot snap;
    snap.apps = {a};
    EXPECT_TRUE(store_->FinishJob(*job, snap, [](VppToken&) -> Status { return {}; }));
    return a.id;
  }

  std::map<std::string, DeviceLicense> Licenses() {
    std::map<std::string, DeviceLicense> out;
    auto rows = store_->ListDeviceLicenses(kTenantA, token_);
    EXPECT_TRUE(rows) << rows.error().message;
    if (rows) {
      for (auto& r : *rows) out[r.serial_number] = r;
    }
    return out;
  }

  AppleEvent Event(const std::string& id, const std::string& kind) {
    AppleEvent e;
    e.event_id = id;
    e.kind = kind;
    e.adam_id = "100";
    e.pricing_param = "STDQ";
    e.next_poll = clock_.Now() + 30 * kSecond;
    return e;
  }

  std::string token_;
};
INSTANTIATE_TEST_SUITE_P(Store, ReconcileStoreTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

// --- jobs asked to run again ------------------------------------------------------------

TEST_P(ReconcileStoreTest, AJobAskedForWhileRunningRunsOnceMoreAfterIt) {
  EXPECT_TRUE(Reconcile());
  std::optional<SyncJob> first = TryClaim();
  ASSERT_TRUE(first);
  // A change after the run read its input: the run cannot have seen it.
  EXPECT_FALSE(Reconcile());
  EXPECT_FALSE(Reconcile());  // asked twice: still one more run
  EXPECT_FALSE(TryClaim()) << "one job per token at a time";
  ASSERT_TRUE(store_->FinishJob(*first, std::nullopt, [](VppToken&) -> Status { return {}; }));
  EXPECT_EQ(*store_->CountJobs(), 1) << "queued again instead of deleted";
  std::optional<SyncJob> second = TryClaim();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->id, first->id);
  ASSERT_TRUE(store_->FinishJob(*second, std::nullopt, [](VppToken&) -> Status { return {}; }));
  EXPECT_EQ(*store_->CountJobs(), 0) << "nobody asked during the second run";
}

TEST_P(ReconcileStoreTest, WithoutRunAgainARunningJobAbsorbsTheRequest) {
  EXPECT_TRUE(Reconcile());
  std::optional<SyncJob> job = TryClaim();
  ASSERT_TRUE(job);
  EnqueueOptions o;
  o.kind = "reconcile";
  ASSERT_TRUE(store_->EnqueueJob(kTenantA, token_, o, [](VppToken&) -> Status { return {}; }));
  ASSERT_TRUE(store_->FinishJob(*job, std::nullopt, [](VppToken&) -> Status { return {}; }));
  EXPECT_EQ(*store_->CountJobs(), 0);
}

TEST_P(ReconcileStoreTest, AQueuedJobDueLaterIsBroughtForwardAndTakesTheNewParams) {
  EXPECT_TRUE(Reconcile("", clock_.Now() + 60 * kSecond));  // e.g. an event poll a minute away
  EXPECT_FALSE(TryClaim());
  EXPECT_FALSE(Reconcile(R"({"force":true})"));
  std::optional<SyncJob> job = TryClaim();
  ASSERT_TRUE(job) << "due now";
  EXPECT_EQ(job->params, R"({"force":true})");
}

TEST_P(ReconcileStoreTest, AJobHandedBackAfterARequestIsDueAtOnce) {
  EXPECT_TRUE(Reconcile());
  std::optional<SyncJob> job = TryClaim();
  ASSERT_TRUE(job);
  EXPECT_FALSE(Reconcile());
  Status released = store_->ReleaseJob(*job, clock_.Now() + 3600 * kSecond);
  ASSERT_TRUE(released) << released.error().message;
  EXPECT_TRUE(TryClaim()) << "the request made it due now, not in an hour";
  // Without a request, a hand-back keeps its time.
  std::optional<SyncJob> again = TryClaim();
  EXPECT_FALSE(again);
}

// --- device licences and events -------------------------------------------------------------

TEST_P(ReconcileStoreTest, AnAssociateMarksItsSerialsPendingAndItsOutcomeSettlesEach) {
  ASSERT_TRUE(
      store_->RecordAppleEvent(kTenantA, token_, Event("e1", "associate"), {"S1", "S2", "S3", "S4"}, "assigned"));
  auto rows = Licenses();
  ASSERT_EQ(rows.size(), 4u);
  for (auto& [serial, r] : rows) {
    EXPECT_EQ(r.state, "pending") << serial;
    EXPECT_EQ(r.event_id, "e1");
    EXPECT_EQ(r.cause, "assigned");
  }
  auto events = store_->ListAppleEvents(kTenantA, token_);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].serials, 4);
  EXPECT_EQ((*events)[0].next_poll, kT0 + 30 * kSecond);

  ASSERT_TRUE(store_->DeferAppleEvent(kTenantA, token_, "e1", kT0 + 60 * kSecond));
  events = store_->ListAppleEvents(kTenantA, token_);
  EXPECT_EQ((*events)[0].next_poll, kT0 + 60 * kSecond);
  EXPECT_EQ((*events)[0].polls, 1);

  clock_.Advance(61s);
  AppleEventOutcome outcome;
  outcome.failures = {{"S2", "", 9709, "Not enough licenses"}, {"S3", "", 9616, "License already assigned"}};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e1", outcome));
  rows = Licenses();
  EXPECT_EQ(rows["S1"].state, "granted");
  EXPECT_EQ(rows["S1"].updated, kT0 + 61 * kSecond);
  EXPECT_EQ(rows["S2"].state, "failed");
  EXPECT_EQ(rows["S2"].error_code, "9709");
  EXPECT_EQ(rows["S2"].error_message, "Not enough licenses");
  EXPECT_EQ(rows["S3"].state, "granted") << "already assigned is where it should be";
  EXPECT_EQ(rows["S4"].state, "granted");
  EXPECT_TRUE(store_->ListAppleEvents(kTenantA, token_)->empty());
  // Completed once: a late notification or a second poll finds nothing.
  Status again = store_->CompleteAppleEvent(kTenantA, token_, "e1", {});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kNotFound);
  EXPECT_EQ(store_->DeferAppleEvent(kTenantA, token_, "e1", 0).error().code, Code::kNotFound);
}

TEST_P(ReconcileStoreTest, ADisassociateReleasesOrKeepsTheLicenceWithItsError) {
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("a", "associate"), {"S1", "S2", "S3"}, "assigned"));
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "a", {}));
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("d", "disassociate"), {"S1", "S2", "S3"}, "leftScope"));
  EXPECT_EQ(Licenses()["S1"].state, "reclaimPending");
  AppleEventOutcome outcome;
  outcome.failures = {{"S2", "", 9627, "frequent reassociation"}, {"S3", "", 9619, "not associated"}};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "d", outcome));
  auto rows = Licenses();
  EXPECT_EQ(rows["S1"].state, "released");
  EXPECT_EQ(rows["S2"].state, "granted") << "still held: tried again";
  EXPECT_EQ(rows["S2"].error_code, "9627");
  EXPECT_EQ(rows["S3"].state, "released") << "not associated is where it should be";
}

TEST_P(ReconcileStoreTest, AnEventFailedAsAWholeFailsEverySerialAndAnAbandonedOneUndoesItself) {
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("a", "associate"), {"S1", "S2"}, "assigned"));
  AppleEventOutcome all;
  all.all_failed = AppleEventOutcome::Failure{"", "", 9644, "maintenance"};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "a", all));
  EXPECT_EQ(Licenses()["S1"].state, "failed");
  EXPECT_EQ(Licenses()["S2"].error_code, "9644");

  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("b", "associate"), {"S1", "S3"}, "assigned"));
  AppleEventOutcome abandoned;
  abandoned.abandoned = true;
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "b", abandoned));
  auto rows = Licenses();
  EXPECT_FALSE(rows.contains("S1")) << "as if never submitted";
  EXPECT_FALSE(rows.contains("S3")) << "as if never submitted";
  EXPECT_EQ(rows["S2"].state, "failed") << "not in the abandoned event";

  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("c", "associate"), {"S1"}, "assigned"));
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "c", {}));
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("d", "disassociate"), {"S1"}, "uninstall"));
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "d", abandoned));
  EXPECT_EQ(Licenses()["S1"].state, "granted") << "an abandoned reclaim leaves the licence held";
}

// An ASSET_MANAGEMENT notification names part of an event: those serials move,
// the event stays in flight until its last serial was named.
TEST_P(ReconcileStoreTest, APartOfAnEventMovesItsSerialsAndTheLastPartEndsIt) {
  ASSERT_TRUE(
      store_->RecordAppleEvent(kTenantA, token_, Event("e", "associate"), {"S1", "S2", "S3", "S4"}, "assigned"));
  AppleEventOutcome first;
  first.only_serials = std::vector<std::string>{"S1", "S2"};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e", first));
  auto rows = Licenses();
  EXPECT_EQ(rows["S1"].state, "granted");
  EXPECT_EQ(rows["S2"].state, "granted");
  EXPECT_EQ(rows["S3"].state, "pending") << "not named yet";
  ASSERT_EQ(store_->ListAppleEvents(kTenantA, token_)->size(), 1u) << "still in flight for S3 and S4";
  // Named again (a duplicate): nothing moves back.
  AppleEventOutcome again = first;
  again.all_failed = AppleEventOutcome::Failure{"", "", 9610, "License not found"};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e", again));
  EXPECT_EQ(Licenses()["S1"].state, "granted") << "settled rows stay settled";

  AppleEventOutcome failed;
  failed.only_serials = std::vector<std::string>{"S3"};
  failed.failures = {{"S3", "", 9610, "License not found"}};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e", failed));
  rows = Licenses();
  EXPECT_EQ(rows["S3"].state, "failed");
  EXPECT_EQ(rows["S3"].error_code, "9610");
  EXPECT_EQ(rows["S3"].error_message, "License not found");
  ASSERT_EQ(store_->ListAppleEvents(kTenantA, token_)->size(), 1u);

  AppleEventOutcome last;
  last.only_serials = std::vector<std::string>{"S4", "S9"};  // S9 is no serial of the event: ignored
  last.all_failed = AppleEventOutcome::Failure{"", "", 9616, "already assigned"};  // harmless on an associate
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "e", last));
  rows = Licenses();
  EXPECT_EQ(rows["S4"].state, "granted");
  EXPECT_FALSE(rows.contains("S9"));
  EXPECT_TRUE(store_->ListAppleEvents(kTenantA, token_)->empty()) << "the last serial ended the event";
  EXPECT_EQ(store_->CompleteAppleEvent(kTenantA, token_, "e", last).error().code, Code::kNotFound);

  // A disassociate in parts: released, or held with the error.
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("d", "disassociate"), {"S1", "S2"}, "leftScope"));
  AppleEventOutcome kept;
  kept.only_serials = std::vector<std::string>{"S2"};
  kept.all_failed = AppleEventOutcome::Failure{"", "", 9627, "frequent reassociation"};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "d", kept));
  rows = Licenses();
  EXPECT_EQ(rows["S1"].state, "reclaimPending");
  EXPECT_EQ(rows["S2"].state, "granted");
  EXPECT_EQ(rows["S2"].error_code, "9627");
  AppleEventOutcome released;
  released.only_serials = std::vector<std::string>{"S1"};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "d", released));
  EXPECT_EQ(Licenses()["S1"].state, "released");
  EXPECT_TRUE(store_->ListAppleEvents(kTenantA, token_)->empty());
}

TEST_P(ReconcileStoreTest, PutUpsertsAndRemovesInOneGoAndRefusesAMissingToken) {
  DeviceLicense a{"100", "STDQ", "S1", "failed", "9709", "not enough licences", "", "assigned", 0};
  DeviceLicense b{"100", "STDQ", "S2", "failed", "9709", "not enough licences", "", "assigned", 0};
  ASSERT_TRUE(store_->PutDeviceLicenses(kTenantA, token_, {a, b}, {}));
  EXPECT_EQ(Licenses()["S1"].updated, kT0) << "stamped now when not given";
  a.state = "granted";
  a.error_code = a.error_message = "";
  ASSERT_TRUE(store_->PutDeviceLicenses(kTenantA, token_, {a}, {b}));
  auto rows = Licenses();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows["S1"].state, "granted");
  Status missing = store_->PutDeviceLicenses(kTenantA, "no-such-token", {a}, {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  Status other = store_->RecordAppleEvent(kTenantB, token_, Event("x", "associate"), {"S9"}, "assigned");
  EXPECT_EQ(other.error().code, Code::kNotFound) << "another tenant's token";
  EXPECT_EQ(store_->RecordAppleEvent(kTenantA, token_, Event("", "associate"), {"S9"}, "").error().code,
            Code::kInvalidArgument);
}

TEST_P(ReconcileStoreTest, DeviceLicenseStatesShowsAnAppsLicencesButNotReleasedOnes) {
  const std::string app = App("100");
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("a", "associate"), {"S2", "S1", "S3"}, "assigned"));
  AppleEventOutcome outcome;
  outcome.failures = {{"S3", "", 9709, "Not enough licenses"}};
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "a", outcome));
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("d", "disassociate"), {"S2"}, "leftScope"));
  ASSERT_TRUE(store_->CompleteAppleEvent(kTenantA, token_, "d", {}));
  auto other = Event("o", "associate");
  other.adam_id = "200";  // another app's licence
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, other, {"S7"}, "assigned"));

  auto states = store_->DeviceLicenseStates(kTenantA, app);
  ASSERT_TRUE(states) << states.error().message;
  ASSERT_EQ(states->size(), 2u);
  EXPECT_EQ((*states)[0].serial_number, "S1");
  EXPECT_EQ((*states)[0].state, "granted");
  EXPECT_EQ((*states)[1].serial_number, "S3");
  EXPECT_EQ((*states)[1].state, "failed");
  EXPECT_EQ((*states)[1].error_code, "9709");
  EXPECT_EQ(store_->DeviceLicenseStates(kTenantA, "no-such-app").error().code, Code::kNotFound);
  EXPECT_EQ(store_->DeviceLicenseStates(kTenantB, app).error().code, Code::kNotFound) << "tenant isolation";
}

TEST_P(ReconcileStoreTest, ReportsAndEverythingElseGoWithTheToken) {
  auto none = store_->GetReconcileReport(kTenantA, token_);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->first, "");
  ASSERT_TRUE(store_->PutReconcileReport(kTenantA, token_, R"({"granted":1})"));
  clock_.Advance(5s);
  ASSERT_TRUE(store_->PutReconcileReport(kTenantA, token_, R"({"granted":2})"));
  auto report = store_->GetReconcileReport(kTenantA, token_);
  EXPECT_EQ(report->first, R"({"granted":2})");
  EXPECT_EQ(report->second, kT0 + 5 * kSecond);
  ASSERT_TRUE(store_->RecordAppleEvent(kTenantA, token_, Event("a", "associate"), {"S1"}, "assigned"));

  ASSERT_TRUE(store_->DeleteToken(kTenantA, token_));
  EXPECT_TRUE(store_->ListDeviceLicenses(kTenantA, token_)->empty());
  EXPECT_TRUE(store_->ListAppleEvents(kTenantA, token_)->empty());
  EXPECT_EQ(store_->GetReconcileReport(kTenantA, token_)->first, "");
  EXPECT_EQ(store_->PutReconcileReport(kTenantA, token_, "{}").error().code, Code::kNotFound);
}

}  // namespace
}  // namespace vppd::store
