// vppTokens through the Graph beta SDK's pipeline and models (@microsoft/msgraph-beta-sdk):
// create, get, update, list with paging, syncLicenses (SdkVersion sent → entity at the root),
// revokeLicenses, getLicensesForApp, delete, and errors parsed as ODataError.
// Every response is checked field by field against its JSON (lib/check.mjs).
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import {
  createMobileAppCollectionResponseFromDiscriminatorValue,
  createVppTokenCollectionResponseFromDiscriminatorValue,
  createVppTokenFromDiscriminatorValue,
  createVppTokenLicenseSummaryFromDiscriminatorValue,
  deserializeIntoBaseCollectionPaginationCountResponse,
  serializeVppToken,
} from "@microsoft/msgraph-beta-sdk/models/index.js";
import { createODataErrorFromDiscriminatorValue } from "@microsoft/msgraph-beta-sdk/models/oDataErrors/index.js";
import { PageIterator } from "@microsoft/msgraph-sdk-core";

import { checkModel, modelKeys, parseWithSdk } from "../lib/check.mjs";
import {
  ERROR_MAPPING, HttpMethod, T, appleAssets, betaClient, env, expectODataError, newLocation, send, sendNoContent, sleep,
} from "../lib/graph.mjs";

const TOKEN_TYPE = "#microsoft.graph.vppToken";
const SYNC_RESULT = "#microsoft.graph.vppTokenActionResult";
const REVOKE_RESULT = "#microsoft.graph.vppTokenRevokeLicensesActionResult";
const SUMMARY_TYPE = "#microsoft.graph.vppTokenLicenseSummary";
const NO_TYPE = "(no @odata.type)";

// What vppd must send for each type: every property the SDK's model has, and nothing else but
// lastAppCount (a vppToken property of Graph's v1.0 and the README that this beta model lacks)
// and @odata.etag (OData control information, which the SDK keeps in additionalData).
const CHECK = {
  extras: { [TOKEN_TYPE]: ["lastAppCount", "@odata.etag"] },
  required: {
    [TOKEN_TYPE]: [...modelKeys(createVppTokenFromDiscriminatorValue, TOKEN_TYPE), "lastAppCount", "@odata.etag"],
    [SYNC_RESULT]: ["@odata.type", "actionName", "actionState", "startDateTime", "lastUpdatedDateTime"],
    [REVOKE_RESULT]: ["@odata.type", "actionName", "actionState", "startDateTime", "lastUpdatedDateTime",
      "actionFailureReason", "failedLicensesCount", "totalLicensesCount"],
    [SUMMARY_TYPE]: modelKeys(createVppTokenLicenseSummaryFromDiscriminatorValue, SUMMARY_TYPE),
  },
};
const ERROR_CHECK = {
  required: { [NO_TYPE]: [] },
};

// getLicensesForApp's response type lives in the request-builder package; this is its generated shape.
function createGetLicensesForAppResponse() {
  return (response = {}) => ({
    ...deserializeIntoBaseCollectionPaginationCountResponse(response),
    value: (n) => { response.value = n.getCollectionOfObjectValues(createVppTokenLicenseSummaryFromDiscriminatorValue); },
  });
}

// The generated serializer of revokeLicenses' request body (RevokeLicensesPostRequestBody).
function serializeRevokeLicensesBody(writer, body = {}) {
  writer.writeBooleanValue("notifyManagedDevices", body.notifyManagedDevices);
  writer.writeBooleanValue("revokeUntrackedLicenses", body.revokeUntrackedLicenses);
  writer.writeAdditionalData(body.additionalData);
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function getToken(client, id) {
  const token = await send(client, HttpMethod.GET, T.vppToken, { "vppToken%2Did": id },
    createVppTokenFromDiscriminatorValue);
  assert.equal(client.last().status, 200);
  checkModel(client.lastJson(), token, createVppTokenFromDiscriminatorValue, CHECK);
  return token;
}

async function waitForSync(client, id, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const token = await getToken(client, id);
    if (token.lastSyncStatus !== "inProgress") return token;
    if (Date.now() > deadline) assert.fail(`token ${id} still syncing after ${timeoutMs} ms`);
    await sleep(100);
  }
}

async function createToken(client, location, props = {}) {
  const body = { token: location.tokens[0].sToken, ...props };
  const created = await send(client, HttpMethod.POST, T.vppTokens, {}, createVppTokenFromDiscriminatorValue,
    { body, serializer: serializeVppToken });
  assert.equal(client.last().status, 201, client.last().body);
  checkModel(client.lastJson(), created, createVppTokenFromDiscriminatorValue, CHECK);
  return created;
}

describe("vppTokens with the beta SDK", () => {
  const client = betaClient();
  let location;
  let token; // created in the first test, used by the others

  before(async () => {
    location = await newLocation(8, 40);
  });

  test("create: a VppToken the SDK serialized is accepted and echoed typed", async () => {
    const started = Date.now();
    const created = await createToken(client, location, {
      displayName: "kiota-page-0",
      appleId: "vpp-admin@contoso.example",
      countryOrRegion: "gb",
      automaticallyUpdateApps: true,
      vppTokenAccountType: "business",
      dataSharingConsentGranted: true,
      roleScopeTagIds: ["0"],
      appleDeviceAppDeliveryProtocolType: "mobileDeviceManagement",
    });
    const sent = JSON.parse(client.last().requestBody);
    assert.equal(sent.token, location.tokens[0].sToken, "serializeVppToken wrote the sToken");
    assert.equal(sent.vppTokenAccountType, "business");
    assert.match(created.id, GUID);
    assert.equal(created.odataType, TOKEN_TYPE);
    assert.equal(created.organizationName, location.orgName, "decoded from the sToken");
    assert.equal(created.expirationDateTime.toISOString(), "2030-11-08T22:33:22.000Z");
    assert.equal(created.state, "valid");
    assert.equal(created.lastSyncStatus, "inProgress", "creating a token starts a sync");
    assert.equal(created.token, undefined, "the sToken is write-only (null)");
    assert.equal(created.displayName, "kiota-page-0");
    assert.equal(created.appleId, "vpp-admin@contoso.example");
    assert.equal(created.countryOrRegion, "gb");
    assert.equal(created.automaticallyUpdateApps, true);
    assert.equal(created.vppTokenAccountType, "business");
    assert.equal(created.dataSharingConsentGranted, true);
    assert.deepEqual(created.roleScopeTagIds, ["0"]);
    assert.equal(created.appleDeviceAppDeliveryProtocolType, "mobileDeviceManagement");
    assert.equal(created.claimTokenManagementFromExternalMdm, false);
    assert.ok(created.lastModifiedDateTime.getTime() >= started - 2000, "lastModifiedDateTime is now");
    token = created;
  });

  test("get: the sync completes and every property parses", async () => {
    const synced = await waitForSync(client, token.id);
    assert.equal(synced.lastSyncStatus, "completed");
    assert.equal(synced.state, "valid");
    assert.equal(synced.locationName, location.name);
    assert.ok(synced.lastSyncDateTime.getTime() > Date.parse("2020-01-01"), "lastSyncDateTime is set");
    const results = synced.tokenActionResults;
    assert.ok(results.length >= 1);
    const sync = results.find((r) => r.actionName === "syncLicenses");
    assert.ok(sync, "a syncLicenses action result");
    assert.equal(sync.odataType, SYNC_RESULT);
    assert.equal(sync.actionState, "done");
    assert.ok(sync.startDateTime <= sync.lastUpdatedDateTime);
    // lastAppCount is not in the beta model: it stays in additionalData. It counts App assets
    // (an app on iOS and macOS once, though it is two mobileApps).
    const appAssets = (await appleAssets(location.tokens[0].sToken)).filter((a) => a.productType === "App");
    assert.ok(appAssets.length > 0);
    assert.equal(synced.additionalData.lastAppCount, appAssets.length);
  });

  test("get with $select: only the selected properties and id", async () => {
    const got = await send(client, HttpMethod.GET, T.vppToken, { "vppToken%2Did": token.id },
      createVppTokenFromDiscriminatorValue, { query: { select: ["displayName", "state"] } });
    const raw = client.lastJson();
    assert.deepEqual(Object.keys(raw).filter((k) => !k.startsWith("@")).sort(), ["displayName", "id", "state"]);
    checkModel(raw, got, createVppTokenFromDiscriminatorValue, { extras: CHECK.extras });
    assert.equal(got.displayName, "kiota-page-0");
    assert.equal(got.state, "valid");
  });

  test("update: PATCH with a serialized VppToken answers the updated entity", async () => {
    const updated = await send(client, HttpMethod.PATCH, T.vppToken, { "vppToken%2Did": token.id },
      createVppTokenFromDiscriminatorValue,
      { body: { automaticallyUpdateApps: false, roleScopeTagIds: ["0", "7"], countryOrRegion: "us" },
        serializer: serializeVppToken });
    assert.equal(client.last().status, 200);
    checkModel(client.lastJson(), updated, createVppTokenFromDiscriminatorValue, CHECK);
    assert.equal(updated.id, token.id);
    assert.equal(updated.automaticallyUpdateApps, false);
    assert.deepEqual(updated.roleScopeTagIds, ["0", "7"]);
    assert.equal(updated.countryOrRegion, "us");
    assert.equal(updated.displayName, "kiota-page-0", "untouched properties are kept");
    const again = await getToken(client, token.id);
    assert.equal(again.automaticallyUpdateApps, false);
    assert.deepEqual(again.roleScopeTagIds, ["0", "7"]);
  });

  test("syncLicenses: the SDK sends SdkVersion and gets the vppToken at the root", async () => {
    const synced = await send(client, HttpMethod.POST, T.syncLicenses, { "vppToken%2Did": token.id },
      createVppTokenFromDiscriminatorValue);
    const exchange = client.last();
    assert.equal(exchange.status, 200);
    assert.match(exchange.requestHeaders.get("SdkVersion") ?? "", /^graph-typescript-beta\/.+, graph-typescript-core\//,
      "msgraph-sdk-core's telemetry handler names the SDK");
    const raw = JSON.parse(exchange.body);
    assert.equal(raw.value, undefined, "not the seed's {value: ...} shape");
    assert.match(raw["@odata.context"], /\/beta\/\$metadata#microsoft\.graph\.vppToken$/);
    checkModel(raw, synced, createVppTokenFromDiscriminatorValue, CHECK);
    assert.equal(synced.id, token.id);
    assert.equal(synced.lastSyncStatus, "inProgress");
    const done = await waitForSync(client, token.id);
    assert.equal(done.lastSyncStatus, "completed");
  });

  test("list: VppTokenCollectionResponse pages walked by msgraph-sdk-core's PageIterator", async () => {
    // Two more tokens, so the filtered collection (3) spans two pages of 2.
    for (const n of [1, 2]) {
      await createToken(client, await newLocation(2, 4), { displayName: `kiota-page-${n}` });
    }
    const query = { filter: "startswith(displayName,'kiota-page-')", orderby: ["displayName desc"], count: true };
    const first = await send(client, HttpMethod.GET, T.vppTokens, {},
      createVppTokenCollectionResponseFromDiscriminatorValue, { query });
    checkModel(client.lastJson(), first, createVppTokenCollectionResponseFromDiscriminatorValue, CHECK);
    assert.equal(first.odataCount, 3);
    assert.equal(first.value.length, 2, "--graph-page-size 2");
    assert.ok(first.odataNextLink, "a next page is announced");
    const names = [];
    const iterator = new PageIterator(client.adapter, first, (t) => { names.push(t.displayName); return true; },
      createVppTokenCollectionResponseFromDiscriminatorValue, ERROR_MAPPING);
    const before = client.exchanges.length;
    await iterator.iterate();
    assert.deepEqual(names, ["kiota-page-2", "kiota-page-1", "kiota-page-0"]);
    const nextPages = client.exchanges.slice(before);
    assert.equal(nextPages.length, 1, "one more request for the second page");
    assert.equal(nextPages[0].url, first.odataNextLink);
    assert.equal(nextPages[0].status, 200);
    const second = JSON.parse(nextPages[0].body);
    checkModel(second, parseWithSdk(second, createVppTokenCollectionResponseFromDiscriminatorValue), createVppTokenCollectionResponseFromDiscriminatorValue, CHECK);
    assert.equal(second["@odata.nextLink"], undefined, "the last page has no nextLink");
    assert.equal(second["@odata.count"], 3, "$count is kept on later pages");
  });

  test("getLicensesForApp: a vppTokenLicenseSummary per token holding the app", async () => {
    const apps = await send(client, HttpMethod.GET, T.mobileApps, {},
      createMobileAppCollectionResponseFromDiscriminatorValue,
      { query: { filter: `vppTokenId eq '${token.id}' and isof('microsoft.graph.iosVppApp')`, top: 1 } });
    assert.equal(apps.value.length, 1);
    const app = apps.value[0];
    const result = await send(client, HttpMethod.GET, T.getLicensesForApp, { bundleId: app.bundleId },
      createGetLicensesForAppResponse);
    assert.equal(client.last().status, 200);
    checkModel(client.lastJson(), result, createGetLicensesForAppResponse, CHECK);
    const mine = result.value.filter((s) => s.vppTokenId === token.id);
    assert.equal(mine.length, 1, "one summary for this token");
    const summary = mine[0];
    assert.equal(summary.odataType, SUMMARY_TYPE);
    assert.equal(summary.organizationName, location.orgName);
    assert.equal(summary.appleId, "vpp-admin@contoso.example");
    assert.equal(summary.usedLicenseCount, app.usedLicenseCount);
    assert.equal(summary.availableLicenseCount, app.totalLicenseCount - app.usedLicenseCount);
    const none = await send(client, HttpMethod.GET, T.getLicensesForApp, { bundleId: "com.example.not-held" },
      createGetLicensesForAppResponse);
    assert.deepEqual(none.value, []);
  });

  test("revokeLicenses: 204, then a vppTokenRevokeLicensesActionResult", async () => {
    await sendNoContent(client, HttpMethod.POST, T.revokeLicenses, { "vppToken%2Did": token.id },
      { body: { notifyManagedDevices: true, revokeUntrackedLicenses: false }, serializer: serializeRevokeLicensesBody });
    assert.equal(client.last().status, 204);
    assert.deepEqual(JSON.parse(client.last().requestBody), { notifyManagedDevices: true, revokeUntrackedLicenses: false });
    const deadline = Date.now() + 30_000;
    let revoke;
    for (;;) {
      const t = await getToken(client, token.id);
      revoke = t.tokenActionResults.find((r) => r.actionName === "revokeLicenses");
      // actionState (microsoft.graph.actionState): pending and active are the unfinished members.
      if (revoke && !["pending", "active"].includes(revoke.actionState) && t.lastSyncStatus !== "inProgress") break;
      if (Date.now() > deadline) assert.fail(`revokeLicenses not finished: ${JSON.stringify(revoke)}`);
      await sleep(100);
    }
    assert.equal(revoke.odataType, REVOKE_RESULT, "parsed as the derived type");
    assert.equal(revoke.actionState, "done");
    assert.equal(revoke.failedLicensesCount, 0);
    assert.ok(revoke.totalLicensesCount > 0 && revoke.totalLicensesCount <= 40, `${revoke.totalLicensesCount}`);
    assert.equal(typeof revoke.actionFailureReason, "string");
  });

  test("errors: every failure is an ODataError with code, message and innerError", async () => {
    const cases = [
      { status: 404, code: "ResourceNotFound",
        call: (c) => send(c, HttpMethod.GET, T.vppToken, { "vppToken%2Did": "00000000-0000-0000-0000-000000000000" },
          createVppTokenFromDiscriminatorValue) },
      { status: 400, code: "BadRequest", target: "vppTokenAccountType",
        call: (c) => send(c, HttpMethod.PATCH, T.vppToken, { "vppToken%2Did": token.id },
          createVppTokenFromDiscriminatorValue,
          { body: { vppTokenAccountType: "personal" }, serializer: serializeVppToken }) },
      { status: 403, code: "Forbidden", client: betaClient(env.readToken),
        call: (c) => send(c, HttpMethod.POST, T.syncLicenses, { "vppToken%2Did": token.id },
          createVppTokenFromDiscriminatorValue) },
      { status: 401, code: "InvalidAuthenticationToken", client: betaClient(env.expiredToken),
        call: (c) => send(c, HttpMethod.GET, T.vppTokens, {}, createVppTokenCollectionResponseFromDiscriminatorValue) },
      { status: 405, code: "MethodNotAllowed",
        call: (c) => send(c, HttpMethod.DELETE, T.syncLicenses, { "vppToken%2Did": token.id },
          createVppTokenFromDiscriminatorValue) },
    ];
    for (const c of cases) {
      const who = c.client ?? client;
      const error = await expectODataError(() => c.call(who));
      const label = `${c.status} ${c.code}`;
      assert.equal(error.responseStatusCode, c.status, label);
      const raw = JSON.parse(who.last().body);
      checkModel(raw, error, createODataErrorFromDiscriminatorValue, ERROR_CHECK);
      const main = error.errorEscaped;
      assert.equal(main.code, c.code, label);
      assert.ok(main.message.length > 10, `${label}: a message`);
      assert.equal(error.message, main.message, `${label}: the ODataError's message is the error's`);
      if (c.target) assert.equal(main.target, c.target, label);
      assert.ok(main.innerError, `${label}: innerError`);
      assert.match(main.innerError.requestId ?? "", /\S/, `${label}: request-id`);
      assert.match(main.innerError.clientRequestId ?? "", /\S/, `${label}: client-request-id`);
      assert.ok(Math.abs(main.innerError.date.getTime() - Date.now()) < 60_000, `${label}: date is now`);
    }
  });

  test("delete: 204, then the token is gone (404 ODataError)", async () => {
    await sendNoContent(client, HttpMethod.DELETE, T.vppToken, { "vppToken%2Did": token.id });
    assert.equal(client.last().status, 204);
    const error = await expectODataError(() => getToken(client, token.id));
    assert.equal(error.responseStatusCode, 404);
    assert.equal(error.errorEscaped.code, "ResourceNotFound");
  });
});
