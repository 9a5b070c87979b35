// Revoking licences by app and by device (issue 17) through the Graph beta SDK's pipeline and
// models: revokeDeviceLicense and revokeAllLicenses on an iosVppApp (graph.iosVppApp, as Kiota
// addresses bound actions), a managedDevice's revokeAppleVppLicenses, and the app's
// revokeLicenseActionResults parsed by the SDK's iosVppAppRevokeLicensesActionResult model, field
// by field. What Apple then holds is read from the simulator. The builder packages that would
// carry these actions' request builders are not published for JavaScript, so the requests are
// built as they would build them (lib/graph.mjs). SQLite and PostgreSQL, a vppd each.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  createIosVppAppCollectionResponseFromDiscriminatorValue,
  createIosVppAppFromDiscriminatorValue,
  createManagedDeviceFromDiscriminatorValue,
  createVppTokenFromDiscriminatorValue,
  serializeManagedDevice,
  serializeVppToken,
} from "@microsoft/msgraph-beta-sdk/models/index.js";

import { checkModel } from "../lib/check.mjs";
import {
  HttpMethod, T, appleAssignments, betaClient, env, expectODataError, newLocation, send, sendNoContent, sleep,
} from "../lib/graph.mjs";
import { STORES, Vppd } from "../lib/vppd.mjs";

const SCOPES = ["DeviceManagementServiceConfig.ReadWrite.All", "DeviceManagementApps.ReadWrite.All",
  "DeviceManagementManagedDevices.ReadWrite.All", "DeviceManagementManagedDevices.PrivilegedOperations.All"].join(" ");
const IOS = "#microsoft.graph.iosVppApp";
const RESULT = "#microsoft.graph.iosVppAppRevokeLicensesActionResult";
const CHECK = { extras: { "#microsoft.graph.vppToken": ["lastAppCount", "@odata.etag"] } };

// The templates Kiota generates for these actions (msgraph-beta-sdk-deviceappmanagement,
// msgraph-beta-sdk-devicemanagement).
const R = {
  revokeAll: "{+baseurl}/deviceAppManagement/mobileApps/{mobileApp%2Did}/graph.iosVppApp/revokeAllLicenses",
  revokeDevice: "{+baseurl}/deviceAppManagement/mobileApps/{mobileApp%2Did}/graph.iosVppApp/revokeDeviceLicense",
  revokeAppleVpp: "{+baseurl}/deviceManagement/managedDevices/{managedDevice%2Did}/revokeAppleVppLicenses",
};
// The generated Revoke*PostRequestBody serializers (they live in the unpublished builder packages).
function serializeRevokeBody(writer, body = {}) {
  if ("managedDeviceId" in body) writer.writeStringValue("managedDeviceId", body.managedDeviceId);
  if ("notifyManagedDevices" in body) writer.writeBooleanValue("notifyManagedDevices", body.notifyManagedDevices);
  if ("revokeUntrackedLicenses" in body) {
    writer.writeBooleanValue("revokeUntrackedLicenses", body.revokeUntrackedLicenses);
  }
  writer.writeAdditionalData(body.additionalData);
}

async function until(what, fn, timeoutMs = 30_000, stepMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await sleep(stepMs);
  }
}

for (const store of STORES) {
  describe(`revoking licences, through the beta SDK (${store})`, () => {
    let vppd;
    let beta;
    let location;
    let sToken;
    let apps; // iOS apps of the token whose licences Apple holds for devices: {app, adamId, serials}

    before(async () => {
      vppd = await new Vppd({
        store, args: ["--apple-url", `${env.simUrl}/mdm/v2`, "--sync-interval-seconds", "0",
          "--throttle-window-seconds", "0", "--sync-event-poll-ms", "100"],
      }).start();
      beta = betaClient(vppd.devToken(SCOPES), vppd.url);
      location = await newLocation(16, 120);
      sToken = location.tokens[0].sToken;
      let token = await send(beta, HttpMethod.POST, T.vppTokens, {}, createVppTokenFromDiscriminatorValue,
        { body: { token: sToken, displayName: "revokes" }, serializer: serializeVppToken });
      token = await until("the first sync", async () => {
        const t = await send(beta, HttpMethod.GET, T.vppToken, { "vppToken%2Did": token.id },
          createVppTokenFromDiscriminatorValue);
        return t.lastSyncStatus === "inProgress" ? null : t;
      });
      assert.equal(token.lastSyncStatus, "completed");
      const held = await appleAssignments(sToken);
      await send(beta, HttpMethod.GET, T.mobileAppsAsIosVppApp, {}, createIosVppAppCollectionResponseFromDiscriminatorValue,
        { query: { filter: `vppTokenId eq '${token.id}'`, top: 999 } });
      // The apps as listed (the SDK's collection model is checked in mobileapps.test.mjs).
      const list = beta.lastJson().value;
      apps = list.filter((a) => a["@odata.type"] === IOS).map((a) => {
        const adamId = a.appStoreUrl.split("/id").pop();
        const serials = held.filter((h) => h.adamId === adamId && h.serialNumber).map((h) => h.serialNumber);
        return { app: a, adamId, serials };
      }).filter((a) => a.serials.length >= 2);
      assert.ok(apps.length >= 2, "the location has two iOS apps with device licences");
    });
    after(async () => {
      await vppd?.cleanup();
    });

    const serialsAtApple = async (adamId) =>
      new Set((await appleAssignments(sToken, `adamId=${adamId}`)).filter((a) => a.serialNumber).map((a) => a.serialNumber));

    async function managedDevice(serial) {
      return send(beta, HttpMethod.POST, T.managedDevices, {}, createManagedDeviceFromDiscriminatorValue,
        // The models mark these read-only (the SDK does not write them): additionalData carries them.
        { body: { additionalData: { serialNumber: serial, deviceName: `iPad ${serial}`, operatingSystem: "iOS" } },
          serializer: serializeManagedDevice });
    }

    async function resultsOf(app) {
      const parsed = await send(beta, HttpMethod.GET, T.mobileAppAsIosVppApp, { "mobileApp%2Did": app.id },
        createIosVppAppFromDiscriminatorValue);
      checkModel(beta.lastJson(), parsed, createIosVppAppFromDiscriminatorValue, CHECK);
      return parsed.revokeLicenseActionResults;
    }

    test("revokeDeviceLicense: exactly that serial of that app, and the result the SDK's model reads", async () => {
      const { app, adamId, serials } = apps[0];
      const [serial, kept] = serials;
      const device = await managedDevice(serial);
      await sendNoContent(beta, HttpMethod.POST, R.revokeDevice, { "mobileApp%2Did": app.id },
        { body: { managedDeviceId: device.id, notifyManagedDevices: true }, serializer: serializeRevokeBody });
      assert.equal(beta.last().status, 204, beta.last().body);
      await until("Apple no longer holds the serial", async () => !(await serialsAtApple(adamId)).has(serial));
      assert.ok((await serialsAtApple(adamId)).has(kept), "another device of the app keeps its licence");
      const [result] = await until("the revoke ended", async () => {
        const r = await resultsOf(app);
        return r.length === 1 && r[0].actionState === "done" ? r : null;
      });
      assert.equal(result.odataType ?? RESULT, RESULT);
      assert.equal(result.actionName, "revokeDeviceLicense");
      assert.equal(result.managedDeviceId, device.id);
      assert.equal(result.totalLicensesCount, 1);
      assert.equal(result.failedLicensesCount, 0);
      assert.equal(result.actionFailureReason, "none");
      assert.ok(result.startDateTime instanceof Date && result.lastUpdatedDateTime >= result.startDateTime);

      // A device without a licence of the app: an ODataError with Graph's code, nothing done.
      const again = await expectODataError(() => sendNoContent(beta, HttpMethod.POST, R.revokeDevice,
        { "mobileApp%2Did": app.id },
        { body: { managedDeviceId: device.id, notifyManagedDevices: true }, serializer: serializeRevokeBody }));
      assert.equal(again.responseStatusCode, 400);
      assert.equal(again.errorEscaped.code, "BadRequest");
      assert.match(again.errorEscaped.message, /holds no licence/);
      const wrongType = await expectODataError(() => sendNoContent(beta, HttpMethod.POST, R.revokeDevice,
        { "mobileApp%2Did": app.id },
        { body: { managedDeviceId: device.id, additionalData: { notifyManagedDevices: "yes" } },
          serializer: serializeRevokeBody }));
      assert.equal(wrongType.responseStatusCode, 400);
      assert.match(wrongType.errorEscaped.message, /notifyManagedDevices/);
      assert.equal((await resultsOf(app)).length, 1, "nothing recorded for the refused requests");
    });

    test("revokeAllLicenses: every licence of the app, none of another", async () => {
      const { app, adamId } = apps[1];
      const other = apps[0];
      const before = await serialsAtApple(other.adamId);
      await sendNoContent(beta, HttpMethod.POST, R.revokeAll, { "mobileApp%2Did": app.id },
        { body: { notifyManagedDevices: false, revokeUntrackedLicenses: false }, serializer: serializeRevokeBody });
      assert.equal(beta.last().status, 204, beta.last().body);
      await until("Apple holds nothing of the app", async () =>
        (await appleAssignments(sToken, `adamId=${adamId}`)).length === 0);
      assert.deepEqual(await serialsAtApple(other.adamId), before);
      const [result] = await until("the revoke ended", async () => {
        const r = await resultsOf(app);
        return r.length === 1 && r[0].actionState === "done" ? r : null;
      });
      assert.equal(result.actionName, "revokeAllLicenses");
      assert.ok(result.totalLicensesCount >= 2);
    });

    test("managedDevices/{id}/revokeAppleVppLicenses: every licence of the device", async () => {
      const { adamId, serials } = apps[0];
      const serial = [...(await serialsAtApple(adamId))].find((s) => serials.includes(s));
      const device = await managedDevice(serial);
      await sendNoContent(beta, HttpMethod.POST, R.revokeAppleVpp, { "managedDevice%2Did": device.id });
      assert.equal(beta.last().status, 204, beta.last().body);
      await until("Apple holds nothing for the serial", async () =>
        (await appleAssignments(sToken, `serialNumber=${serial}`)).length === 0);
      // The device's deviceActionResults, as the SDK's managedDevice model reads it.
      const [action] = await until("the device's action ended", async () => {
        const m = await send(beta, HttpMethod.GET, T.managedDevice, { "managedDevice%2Did": device.id },
          createManagedDeviceFromDiscriminatorValue);
        checkModel(beta.lastJson(), m, createManagedDeviceFromDiscriminatorValue, CHECK);
        const r = m.deviceActionResults ?? [];
        return r.length === 1 && r[0].actionState === "done" ? r : null;
      });
      assert.equal(action.odataType, "#microsoft.graph.revokeAppleVppLicensesActionResult");
      assert.equal(action.actionName, "revokeAppleVppLicenses");
      assert.ok(action.totalLicensesCount >= 1);
      assert.equal(action.failedLicensesCount, 0);
    });
  });
}
