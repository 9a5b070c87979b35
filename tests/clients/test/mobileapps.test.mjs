// mobileApps through the Graph beta SDK's pipeline and models: the VPP apps a sync found, as
// mobileApp (derived types chosen by @odata.type), through the SDK's cast segments
// (graph.iosVppApp, graph.macOsVppApp), and each iOS app's assignedLicenses — every response
// checked field by field against its JSON, and the counts against Apple's (the simulator's).
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import {
  createIosVppAppAssignedLicenseCollectionResponseFromDiscriminatorValue,
  createIosVppAppAssignedLicenseFromDiscriminatorValue,
  createIosVppAppCollectionResponseFromDiscriminatorValue,
  createIosVppAppFromDiscriminatorValue,
  createMacOsVppAppFromDiscriminatorValue,
  createMobileAppCollectionResponseFromDiscriminatorValue,
  createMobileAppFromDiscriminatorValue,
  createVppTokenFromDiscriminatorValue,
  serializeVppToken,
} from "@microsoft/msgraph-beta-sdk/models/index.js";
import { PageIterator } from "@microsoft/msgraph-sdk-core";

import { checkModel, modelKeys, parseWithSdk } from "../lib/check.mjs";
import { ERROR_MAPPING, HttpMethod, T, appleAssets, betaClient, newLocation, send, sleep } from "../lib/graph.mjs";

const IOS = "#microsoft.graph.iosVppApp";
const MAC = "#microsoft.graph.macOsVppApp";
const USER_LICENSE = "#microsoft.graph.iosVppAppAssignedUserLicense";
const DEVICE_LICENSE = "#microsoft.graph.iosVppAppAssignedDeviceLicense";

// Navigation properties are not in an entity's JSON unless $expand-ed; every other property of
// the SDK's model must be there, except two vppd has no value for:
//  - largeIcon (mimeContent with Edm.Binary; vppd keeps no artwork and its schema no binary type),
//  - appleDeviceAppDeliveryProtocolType (a non-nullable enum; the token's setting is not on the app).
const NOT_IN_JSON = new Set(["assignments", "categories", "relationships", "assignedLicenses",
  "largeIcon", "appleDeviceAppDeliveryProtocolType"]);
const structural = (factory, type) => modelKeys(factory, type).filter((k) => !NOT_IN_JSON.has(k));
// A model without its additionalData (@odata.context differs between an item and a list).
const typed = ({ additionalData: _ignored, ...rest }) => rest;
const CHECK = {
  required: {
    [IOS]: structural(createIosVppAppFromDiscriminatorValue, IOS),
    [MAC]: structural(createMacOsVppAppFromDiscriminatorValue, MAC),
    [USER_LICENSE]: modelKeys(createIosVppAppAssignedLicenseFromDiscriminatorValue, USER_LICENSE),
    [DEVICE_LICENSE]: modelKeys(createIosVppAppAssignedLicenseFromDiscriminatorValue, DEVICE_LICENSE),
  },
};


// Walks a collection with msgraph-sdk-core's PageIterator, checking every page's JSON.
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

// The apps Graph should show for a location: one per App asset and platform family.
function expectedApps(assets) {
  const out = [];
  for (const a of assets.filter((x) => x.productType === "App")) {
    const families = new Set((a.supportedPlatforms?.length ? a.supportedPlatforms : ["iOS"])
      .map((p) => (p === "macOS" ? MAC : IOS)));
    for (const type of families) out.push([type, a.totalCount ?? 2147483647, a.assignedCount].join(" "));
  }
  return out.sort();
}

describe("mobileApps with the beta SDK", () => {
  const client = betaClient();
  let location;
  let token;
  let apps;

  before(async () => {
    location = await newLocation(12, 60);
    token = await send(client, HttpMethod.POST, T.vppTokens, {}, createVppTokenFromDiscriminatorValue,
      { body: { token: location.tokens[0].sToken, displayName: "apps" }, serializer: serializeVppToken });
    const deadline = Date.now() + 30_000;
    while (token.lastSyncStatus === "inProgress") {
      if (Date.now() > deadline) throw new Error("the sync did not finish in 30 s");
      await sleep(100);
      token = await send(client, HttpMethod.GET, T.vppToken, { "vppToken%2Did": token.id },
        createVppTokenFromDiscriminatorValue);
    }
    assert.equal(token.lastSyncStatus, "completed");
  });

  test("list: every app of the token, typed iosVppApp or macOsVppApp, with Apple's counts", async () => {
    const first = await send(client, HttpMethod.GET, T.mobileApps, {},
      createMobileAppCollectionResponseFromDiscriminatorValue,
      { query: { filter: `vppTokenId eq '${token.id}'`, count: true } });
    apps = await collectAll(client, first, createMobileAppCollectionResponseFromDiscriminatorValue);
    assert.equal(apps.length, first.odataCount);
    const assets = await appleAssets(location.tokens[0].sToken);
    const got = apps.map((a) => [a.odataType, a.totalLicenseCount, a.usedLicenseCount].join(" ")).sort();
    assert.deepEqual(got, expectedApps(assets));
    assert.ok(apps.some((a) => a.odataType === IOS) && apps.some((a) => a.odataType === MAC),
      "the location has apps of both platforms");
    for (const app of apps) {
      assert.equal(app.vppTokenId, token.id);
      assert.equal(app.vppTokenDisplayName, "apps");
      assert.equal(app.vppTokenOrganizationName, location.orgName);
      assert.equal(app.vppTokenAccountType, "business");
      assert.equal(app.publishingState, "published");
      assert.deepEqual([app.developer, app.owner, app.notes, app.releaseDateTime], [undefined, undefined, undefined, undefined],
        "null in the JSON");
      assert.deepEqual([app.uploadState, app.dependentAppCount, app.supersedingAppCount, app.supersededAppCount], [1, 0, 0, 0]);
      assert.match(app.appStoreUrl, /^https:\/\/apps\.apple\.com\/.+\/id\d+/);
      assert.equal(app.licensingType.supportsUserLicensing, true);
      assert.equal(app.licensingType.supportUserLicensing, true);
      assert.equal(typeof app.licensingType.supportsDeviceLicensing, "boolean");
      if (app.odataType === IOS) {
        assert.deepEqual([app.applicableDeviceType.iPad, app.applicableDeviceType.iPhoneAndIPod], [true, true]);
      }
    }
  });

  test("cast graph.iosVppApp: the SDK's list of iOS VPP apps", async () => {
    const first = await send(client, HttpMethod.GET, T.mobileAppsAsIosVppApp, {},
      createIosVppAppCollectionResponseFromDiscriminatorValue,
      { query: { filter: `vppTokenId eq '${token.id}'`, count: true } });
    const ios = await collectAll(client, first, createIosVppAppCollectionResponseFromDiscriminatorValue);
    assert.deepEqual(ios.map((a) => a.id).sort(), apps.filter((a) => a.odataType === IOS).map((a) => a.id).sort());
    assert.ok(ios.every((a) => a.odataType === IOS));
  });

  test("item: GET mobileApps/{id} and its casts graph.iosVppApp / graph.macOsVppApp", async () => {
    for (const type of [IOS, MAC]) {
      const listed = apps.find((a) => a.odataType === type);
      const plain = await send(client, HttpMethod.GET, T.mobileApp, { "mobileApp%2Did": listed.id },
        createMobileAppFromDiscriminatorValue);
      checkModel(client.lastJson(), plain, createMobileAppFromDiscriminatorValue, CHECK);
      assert.equal(plain.odataType, type);
      assert.deepEqual(typed(plain), typed(listed), "the item is the listed app");
      const [template, factory] = type === IOS
        ? [T.mobileAppAsIosVppApp, createIosVppAppFromDiscriminatorValue]
        : [T.mobileAppAsMacOsVppApp, createMacOsVppAppFromDiscriminatorValue];
      const cast = await send(client, HttpMethod.GET, template, { "mobileApp%2Did": listed.id }, factory);
      assert.equal(client.last().status, 200, client.last().body);
      checkModel(client.lastJson(), cast, factory, CHECK);
      assert.deepEqual(typed(cast), typed(listed));
    }
    // The other type's cast of an app is not found, as an ODataError.
    const ios = apps.find((a) => a.odataType === IOS);
    const error = await send(client, HttpMethod.GET, T.mobileAppAsMacOsVppApp, { "mobileApp%2Did": ios.id },
      createMacOsVppAppFromDiscriminatorValue).then(() => null, (e) => e);
    assert.ok(error, "casting an iOS app to macOsVppApp fails");
    assert.equal(error.responseStatusCode, 404);
    assert.equal(error.errorEscaped.code, "ResourceNotFound");
  });

  test("vppd's untracked-licence annotation: only when Prefer asks, and the SDK still parses every property", async () => {
    const term = "@vppd.untrackedLicenseCount";
    const ask = { Prefer: 'odata.include-annotations="vppd.untrackedLicenseCount"' };
    for (const type of [IOS, MAC]) {
      const listed = apps.find((a) => a.odataType === type);
      const plain = await send(client, HttpMethod.GET, T.mobileApp, { "mobileApp%2Did": listed.id },
        createMobileAppFromDiscriminatorValue);
      assert.equal(client.lastJson()[term], undefined, "not sent unasked");
      const annotated = await send(client, HttpMethod.GET, T.mobileApp, { "mobileApp%2Did": listed.id },
        createMobileAppFromDiscriminatorValue, { headers: ask });
      assert.equal(client.last().status, 200, client.last().body);
      checkModel(client.lastJson(), annotated, createMobileAppFromDiscriminatorValue,
        { ...CHECK, extras: { [type]: [term] } });
      assert.deepEqual(typed(annotated), typed(plain), "every typed property as without the annotation");
      // vppd granted none of this location's licences: every licence in use is untracked.
      assert.equal(annotated.additionalData[term], listed.usedLicenseCount);
    }
    const first = await send(client, HttpMethod.GET, T.mobileApps, {},
      createMobileAppCollectionResponseFromDiscriminatorValue,
      { query: { filter: `vppTokenId eq '${token.id}'` }, headers: ask });
    assert.ok(first.value.length > 0);
    for (const app of first.value) assert.equal(app.additionalData[term], app.usedLicenseCount, app.id);
  });

  test("assignedLicenses: user and device licenses of an iOS app, one per Apple assignment", async () => {
    const withLicenses = apps.filter((a) => a.odataType === IOS && a.usedLicenseCount > 2)
      .sort((a, b) => b.usedLicenseCount - a.usedLicenseCount)[0];
    assert.ok(withLicenses, "an iOS app with more than two licenses in use (so the list pages)");
    const first = await send(client, HttpMethod.GET, T.iosAssignedLicenses, { "mobileApp%2Did": withLicenses.id },
      createIosVppAppAssignedLicenseCollectionResponseFromDiscriminatorValue);
    assert.ok(first.odataNextLink, "more than one page");
    const licenses = await collectAll(client, first,
      createIosVppAppAssignedLicenseCollectionResponseFromDiscriminatorValue);
    assert.equal(licenses.length, withLicenses.usedLicenseCount);
    assert.equal(new Set(licenses.map((l) => l.id)).size, licenses.length, "ids are unique");
    for (const l of licenses) {
      assert.ok([USER_LICENSE, DEVICE_LICENSE].includes(l.odataType), l.odataType);
      if (l.odataType === USER_LICENSE) assert.match(l.userId, /\S/);
      else assert.match(l.deviceName, /\S/);
    }
  });
});
