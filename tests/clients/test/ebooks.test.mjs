// managedEBooks through the Graph beta SDK's pipeline and models (the published package has no
// request builders; lib/graph.mjs holds the generated templates): the books a sync found, parsed
// as iosVppEBook and checked field by field against their JSON, paged by msgraph-sdk-core's
// PageIterator; an iosVppEBookAssignment created, listed and replaced through `assign`; a device
// target and device licensing refused as ODataErrors with nothing written; userStateSummary,
// deviceStates and installSummary parsed by their models.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import {
  createDeviceInstallStateCollectionResponseFromDiscriminatorValue,
  createEBookInstallSummaryFromDiscriminatorValue,
  createIosVppEBookFromDiscriminatorValue,
  createManagedEBookAssignmentCollectionResponseFromDiscriminatorValue,
  createManagedEBookAssignmentFromDiscriminatorValue,
  createManagedEBookCollectionResponseFromDiscriminatorValue,
  createManagedEBookFromDiscriminatorValue,
  createUserInstallStateSummaryCollectionResponseFromDiscriminatorValue,
  createVppTokenFromDiscriminatorValue,
  serializeAllDevicesAssignmentTarget,
  serializeAllLicensedUsersAssignmentTarget,
  serializeGroupAssignmentTarget,
  serializeIosVppEBookAssignment,
  serializeVppToken,
} from "@microsoft/msgraph-beta-sdk/models/index.js";
import { PageIterator } from "@microsoft/msgraph-sdk-core";

import { checkModel, modelKeys, parseWithSdk } from "../lib/check.mjs";
import {
  ERROR_MAPPING, HttpMethod, T, appleAssets, appleAssignments, betaClient, expectODataError, newLocation, send, sendNoContent, sleep,
} from "../lib/graph.mjs";

const BOOK = "#microsoft.graph.iosVppEBook";
const ASSIGNMENT = "#microsoft.graph.iosVppEBookAssignment";
const GROUP_TARGET = "#microsoft.graph.groupAssignmentTarget";
const ALL_USERS = "#microsoft.graph.allLicensedUsersAssignmentTarget";
const ALL_DEVICES = "#microsoft.graph.allDevicesAssignmentTarget";

// Navigation properties are not in an entity's JSON unless $expand-ed; every other property of
// the SDK's model must be there but largeCover (vppd has no artwork bytes; written only when
// $select names it, as Graph does for icons).
const NAVIGATION = new Set(["assignments", "categories", "deviceStates", "installSummary", "userStateSummary",
  "largeCover"]);
const CHECK = {
  required: {
    [BOOK]: modelKeys(createIosVppEBookFromDiscriminatorValue, BOOK).filter((k) => !NAVIGATION.has(k)),
    [ASSIGNMENT]: ["id", "installIntent", "target"],
  },
};

// The serializers write a derived target through its base without its own properties
// (microsoft/kiota#6777, see assignments.test.mjs): each target with its own type's serializer.
const TARGET_SERIALIZERS = {
  [GROUP_TARGET]: serializeGroupAssignmentTarget,
  [ALL_USERS]: serializeAllLicensedUsersAssignmentTarget,
  [ALL_DEVICES]: serializeAllDevicesAssignmentTarget,
};
function serializeAssignment(writer, { target, ...rest } = {}) {
  serializeIosVppEBookAssignment(writer, { odataType: ASSIGNMENT, ...rest });
  if (target) writer.writeObjectValue("target", target, TARGET_SERIALIZERS[target.odataType]);
}
// The generated assign body's serializer (it lives in the unpublished builder package).
function serializeAssignBody(writer, body = {}) {
  writer.writeCollectionOfObjectValues("managedEBookAssignments", body.managedEBookAssignments, serializeAssignment);
}

async function collectAll(client, first, factory) {
  const items = [];
  const start = client.exchanges.length - 1;
  checkModel(client.lastJson(), first, factory, CHECK);
  const iterator = new PageIterator(client.adapter, first, (item) => { items.push(item); return true; }, factory,
    ERROR_MAPPING);
  await iterator.iterate();
  for (const exchange of client.exchanges.slice(start + 1)) {
    assert.equal(exchange.status, 200, exchange.body);
    const raw = JSON.parse(exchange.body);
    checkModel(raw, parseWithSdk(raw, factory), factory, CHECK);
  }
  return items;
}

describe("managedEBooks with the beta SDK", () => {
  const client = betaClient();
  let location;
  let token;
  let books;

  before(async () => {
    location = await newLocation(30, 80);
    token = await send(client, HttpMethod.POST, T.vppTokens, {}, createVppTokenFromDiscriminatorValue,
      { body: { token: location.tokens[0].sToken, displayName: "books" }, serializer: serializeVppToken });
    const deadline = Date.now() + 30_000;
    while (token.lastSyncStatus === "inProgress") {
      if (Date.now() > deadline) throw new Error("the sync did not finish in 30 s");
      await sleep(100);
      token = await send(client, HttpMethod.GET, T.vppToken, { "vppToken%2Did": token.id },
        createVppTokenFromDiscriminatorValue);
    }
    assert.equal(token.lastSyncStatus, "completed");
  });

  test("list: every Book asset of the token as an iosVppEBook, with Apple's counts", async () => {
    const first = await send(client, HttpMethod.GET, T.managedEBooks, {},
      createManagedEBookCollectionResponseFromDiscriminatorValue, { query: { count: true } });
    const all = await collectAll(client, first, createManagedEBookCollectionResponseFromDiscriminatorValue);
    assert.equal(all.length, first.odataCount);
    books = all.filter((b) => b.vppTokenId === token.id);
    const assets = (await appleAssets(location.tokens[0].sToken)).filter((a) => a.productType === "Book");
    assert.ok(assets.length > 0, "the location holds books");
    assert.deepEqual(books.map((b) => `${b.totalLicenseCount} ${b.usedLicenseCount}`).sort(),
      assets.map((a) => `${a.totalCount ?? 2147483647} ${a.assignedCount}`).sort());
    for (const b of books) {
      assert.equal(b.odataType, BOOK);
      assert.equal(b.vppOrganizationName, location.orgName);
      assert.match(b.displayName, /^Sim Book /);
      assert.equal(b.publisher, "Simulated Author");
      assert.deepEqual(b.genres, ["Books", "Fiction & Literature"]);
      assert.match(b.informationUrl, /^https:\/\/books\.apple\.com\/.+\/id\d+$/);
      assert.deepEqual(b.roleScopeTagIds, []);
    }
    const one = await send(client, HttpMethod.GET, T.managedEBook, { "managedEBook%2Did": books[0].id },
      createManagedEBookFromDiscriminatorValue);
    checkModel(client.lastJson(), one, createManagedEBookFromDiscriminatorValue, CHECK);
    assert.equal(one.odataType, BOOK);
    assert.equal(one.id, books[0].id);
  });

  test("assignments: create, list and assign iosVppEBookAssignments to users", async () => {
    const id = { "managedEBook%2Did": books[0].id };
    const created = await send(client, HttpMethod.POST, T.managedEBookAssignments, id,
      createManagedEBookAssignmentFromDiscriminatorValue,
      { body: { installIntent: "required", target: { odataType: ALL_USERS } }, serializer: serializeAssignment });
    assert.equal(client.last().status, 201, client.last().body);
    checkModel(client.lastJson(), created, createManagedEBookAssignmentFromDiscriminatorValue, CHECK);
    assert.equal(created.odataType, ASSIGNMENT);
    assert.equal(created.installIntent, "required");
    assert.equal(created.target.odataType, ALL_USERS);

    await sendNoContent(client, HttpMethod.POST, T.managedEBookAssign, id, {
      body: { managedEBookAssignments: [{ installIntent: "available", target: { odataType: ALL_USERS } }] },
      serializer: serializeAssignBody,
    });
    assert.equal(client.last().status, 204, client.last().body);
    const list = await send(client, HttpMethod.GET, T.managedEBookAssignments, id,
      createManagedEBookAssignmentCollectionResponseFromDiscriminatorValue);
    checkModel(client.lastJson(), list, createManagedEBookAssignmentCollectionResponseFromDiscriminatorValue, CHECK);
    assert.deepEqual(list.value.map((a) => [a.installIntent, a.target.odataType]), [["available", ALL_USERS]]);
  });

  test("bad input: a device target and device licensing are ODataErrors, nothing written", async () => {
    const id = { "managedEBook%2Did": books[0].id };
    const before = client.exchanges.length;
    const deviceTarget = await expectODataError(() => sendNoContent(client, HttpMethod.POST, T.managedEBookAssign,
      id, { body: { managedEBookAssignments: [{ installIntent: "required", target: { odataType: ALL_DEVICES } }] },
        serializer: serializeAssignBody }));
    assert.equal(deviceTarget.responseStatusCode, 400);
    assert.equal(deviceTarget.errorEscaped.code, "BadRequest");
    assert.match(deviceTarget.errorEscaped.message, /users only/);
    const deviceLicensing = await expectODataError(() => send(client, HttpMethod.POST, T.managedEBookAssignments,
      id, createManagedEBookAssignmentFromDiscriminatorValue, {
        body: { installIntent: "required", target: { odataType: ALL_USERS },
          additionalData: { settings: { "@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings",
            useDeviceLicensing: true } } },
        serializer: (writer, value) => { serializeAssignment(writer, value); writer.writeAdditionalData(value.additionalData); },
      }));
    assert.equal(deviceLicensing.responseStatusCode, 400);
    assert.match(deviceLicensing.errorEscaped.message, /cannot be licensed to devices/);
    assert.equal(client.exchanges.length, before + 2);
    const list = await send(client, HttpMethod.GET, T.managedEBookAssignments, id,
      createManagedEBookAssignmentCollectionResponseFromDiscriminatorValue);
    assert.deepEqual(list.value.map((a) => a.target.odataType), [ALL_USERS], "unchanged");
  });

  test("userStateSummary, deviceStates and installSummary parse as Graph's models", async () => {
    // A book whose adamId is sold once (STDQ only), so Apple's assignments of the adamId are its own.
    const adam = (b) => b.informationUrl.split("/id").pop();
    const held = books.find((b) => b.usedLicenseCount > 0 && books.filter((x) => adam(x) === adam(b)).length === 1);
    assert.ok(held, "a book with licences in use");
    const id = { "managedEBook%2Did": held.id };
    const first = await send(client, HttpMethod.GET, T.managedEBookUserStateSummary, id,
      createUserInstallStateSummaryCollectionResponseFromDiscriminatorValue);
    const users = await collectAll(client, first, createUserInstallStateSummaryCollectionResponseFromDiscriminatorValue);
    const holders = new Set((await appleAssignments(location.tokens[0].sToken, `adamId=${adam(held)}`))
      .filter((a) => a.clientUserId).map((a) => a.clientUserId));
    assert.deepEqual(users.map((u) => u.id).sort(), [...holders].sort(), "one summary per user licence at Apple");
    for (const u of users) {
      assert.equal(u.odataType, "#microsoft.graph.userInstallStateSummary");
      assert.equal(u.userName, u.id, "a clientUserId no directory user has is shown as is");
    }
    const devices = await send(client, HttpMethod.GET, T.managedEBookDeviceStates, id,
      createDeviceInstallStateCollectionResponseFromDiscriminatorValue);
    checkModel(client.lastJson(), devices, createDeviceInstallStateCollectionResponseFromDiscriminatorValue, CHECK);
    assert.deepEqual(devices.value, [], "no managed device is enrolled to the simulator's users");
    const summary = await send(client, HttpMethod.GET, T.managedEBookInstallSummary, id,
      createEBookInstallSummaryFromDiscriminatorValue);
    checkModel(client.lastJson(), summary, createEBookInstallSummaryFromDiscriminatorValue, CHECK);
    assert.equal(summary.notInstalledUserCount, users.length);
    assert.deepEqual([summary.installedUserCount, summary.failedUserCount, summary.installedDeviceCount], [0, 0, 0]);
  });
});
