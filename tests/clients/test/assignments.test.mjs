// Licences handed out (issue 15) through Microsoft's SDKs: the directory (users through the v1.0
// SDK's own request builders, @microsoft/msgraph-sdk-users; groups, members, devices and managed
// devices through the beta SDK's pipeline and models), app assignments with device licensing,
// and what Apple (the simulator) then holds: associated for the members of the assigned groups,
// disassociated when a device leaves, oversubscription (the available count granted, the rest
// failed, served once licences are bought and synced), uninstall intent, exclusion groups, kill -9
// of vppd during a reconcile, and bad input answered precisely with nothing half-written. Where
// each device's licence stands is read as Graph shows it (mobileApps/{id}/deviceStatuses,
// assignedLicenses) and as `vppd tokens list --json` reports the last reconcile.
// Every response is parsed by the SDK's models and checked field by field (lib/check.mjs).
//
// Each store gets a vppd of its own (lib/vppd.mjs: SQLite, and PostgreSQL on the server
// tests/clients/run provides), so that it can be killed and restarted; both use the suite's
// simulator, each scenario on a location of its own.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  createDeviceFromDiscriminatorValue,
  createDirectoryObjectCollectionResponseFromDiscriminatorValue,
  createGroupFromDiscriminatorValue,
  createIosVppAppAssignedLicenseCollectionResponseFromDiscriminatorValue,
  createManagedDeviceCollectionResponseFromDiscriminatorValue,
  createManagedDeviceFromDiscriminatorValue,
  createMobileAppInstallStatusFromDiscriminatorValue,
  createMobileAppAssignmentCollectionResponseFromDiscriminatorValue,
  createMobileAppAssignmentFromDiscriminatorValue,
  createMobileAppCollectionResponseFromDiscriminatorValue,
  createVppTokenFromDiscriminatorValue,
  deserializeIntoBaseCollectionPaginationCountResponse,
  serializeAllDevicesAssignmentTarget,
  serializeDevice,
  serializeExclusionGroupAssignmentTarget,
  serializeGroup,
  serializeGroupAssignmentTarget,
  serializeIosVppAppAssignmentSettings,
  serializeMacOsVppAppAssignmentSettings,
  serializeManagedDevice,
  serializeMobileAppAssignment,
  serializeReferenceCreate,
  serializeVppToken,
} from "@microsoft/msgraph-beta-sdk/models/index.js";
import { createODataErrorFromDiscriminatorValue } from "@microsoft/msgraph-beta-sdk/models/oDataErrors/index.js";
import { createUserFromDiscriminatorValue } from "@microsoft/msgraph-sdk/models/index.js";
import { PageIterator } from "@microsoft/msgraph-sdk-core";

import { checkModel, parseWithSdk } from "../lib/check.mjs";
import {
  ERROR_MAPPING, HttpMethod, T, appleAssets, appleAssignments, betaClient, env, expectODataError, newLocation,
  send, sendNoContent, simControl, simCounters, sleep, v1Client,
} from "../lib/graph.mjs";
import { STORES, Vppd } from "../lib/vppd.mjs";

const SCOPES = ["DeviceManagementServiceConfig.ReadWrite.All", "DeviceManagementApps.ReadWrite.All",
  "User.ReadWrite.All", "Group.ReadWrite.All", "GroupMember.ReadWrite.All", "Device.ReadWrite.All",
  "DeviceManagementManagedDevices.ReadWrite.All"].join(" ");
const GROUP_TARGET = "#microsoft.graph.groupAssignmentTarget";
const EXCLUDE_TARGET = "#microsoft.graph.exclusionGroupAssignmentTarget";
const ALL_DEVICES = "#microsoft.graph.allDevicesAssignmentTarget";
const IOS_SETTINGS = "#microsoft.graph.iosVppAppAssignmentSettings";
const MAC_SETTINGS = "#microsoft.graph.macOsVppAppAssignmentSettings";
const IOS = "#microsoft.graph.iosVppApp";
const DEVICE_LICENSE = "#microsoft.graph.iosVppAppAssignedDeviceLicense";
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ASSOCIATE = "POST /mdm/v2/assets/associate";

// The SDK's models know everything vppd sends for these types but OData's control information.
const CHECK = { extras: { "#microsoft.graph.vppToken": ["lastAppCount", "@odata.etag"] } };

// The published serializers of both SDKs drop a derived type's own properties when they write it
// through its base type (serializeDeviceAndAppManagementAssignmentTarget calls
// serializeGroupAssignmentTarget with isSerializingDerivedType = true, which returns at once:
// microsoft/kiota#6777), so `groupId` and `useDeviceLicensing` would never leave the client. An SDK
// user writes such objects with the serializer of their own type, which is what this does — the
// SDK's functions, chosen by @odata.type.
const SERIALIZERS = {
  [GROUP_TARGET]: serializeGroupAssignmentTarget,
  [EXCLUDE_TARGET]: serializeExclusionGroupAssignmentTarget,
  [ALL_DEVICES]: serializeAllDevicesAssignmentTarget,
  [IOS_SETTINGS]: serializeIosVppAppAssignmentSettings,
  [MAC_SETTINGS]: serializeMacOsVppAppAssignmentSettings,
};
function serializeAssignment(writer, { target, settings, ...rest } = {}) {
  serializeMobileAppAssignment(writer, { odataType: "#microsoft.graph.mobileAppAssignment", ...rest });
  if (target) writer.writeObjectValue("target", target, SERIALIZERS[target.odataType]);
  if (settings) writer.writeObjectValue("settings", settings, SERIALIZERS[settings.odataType]);
}
// The generated AssignPostRequestBody's serializer (it lives in the unpublished builder package).
function serializeAssignBody(writer, body = {}) {
  writer.writeCollectionOfObjectValues("mobileAppAssignments", body.mobileAppAssignments, serializeAssignment);
  writer.writeAdditionalData(body.additionalData);
}
// deviceStatuses' MobileAppInstallStatusCollectionResponse (a model of the unpublished builder
// package), as generated.
function createMobileAppInstallStatusCollectionResponseFromDiscriminatorValue(_parseNode) {
  return (r = {}) => ({
    ...deserializeIntoBaseCollectionPaginationCountResponse(r),
    value: (n) => { r.value = n.getCollectionOfObjectValues(createMobileAppInstallStatusFromDiscriminatorValue); },
  });
}

const include = (groupId, intent = "required") => ({
  intent, target: { odataType: GROUP_TARGET, groupId },
  settings: { odataType: IOS_SETTINGS, useDeviceLicensing: true },
});
const exclude = (groupId) => ({ intent: "required", target: { odataType: EXCLUDE_TARGET, groupId } });
const ref = (id) => ({ odataId: `https://graph.microsoft.com/v1.0/directoryObjects/${id}` });

function vppdArgs() {
  return ["--apple-url", `${env.simUrl}/mdm/v2`, "--graph-page-size", "2", "--sync-interval-seconds", "0",
    "--throttle-window-seconds", "0", "--sync-event-poll-ms", "100", "--sync-lease-seconds", "2"];
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
  describe(`licences handed out, through the SDKs (${store})`, () => {
    let vppd;
    let token; // a dev bearer token with every scope the scenarios need
    let beta; // beta SDK client of the running vppd (a new one after each restart)
    let v1;

    const connect = () => {
      beta = betaClient(token, vppd.url);
      v1 = v1Client(token, vppd.url);
    };

    before(async () => {
      vppd = await new Vppd({ store, args: vppdArgs() }).start();
      token = vppd.devToken(SCOPES);
      connect();
    });
    after(async () => {
      await vppd?.cleanup();
    });

    // --- the directory, through the SDKs ------------------------------------------------------

    // A user through the v1.0 SDK's own request builder (client.users.post).
    async function createUser(name) {
      const user = await v1.graph.users.post({
        accountEnabled: true, displayName: name, mailNickname: name, userPrincipalName: `${name}@contoso.example`,
        passwordProfile: { forceChangePasswordNextSignIn: true, password: "xWwvJ]6NMw+bWH-d" },
      });
      assert.equal(v1.last().status, 201, v1.last().body);
      assert.ok(!("passwordProfile" in v1.lastJson()), "the password is never stored nor shown");
      checkModel(v1.lastJson(), user, createUserFromDiscriminatorValue, CHECK);
      assert.match(user.id, GUID);
      assert.equal(user.userPrincipalName, `${name}@contoso.example`);
      return user;
    }

    async function createGroup(name) {
      const group = await send(beta, HttpMethod.POST, T.groups, {}, createGroupFromDiscriminatorValue,
        { body: { displayName: name, mailEnabled: false, mailNickname: name, securityEnabled: true, groupTypes: [] },
          serializer: serializeGroup });
      assert.equal(beta.last().status, 201, beta.last().body);
      checkModel(beta.lastJson(), group, createGroupFromDiscriminatorValue, CHECK);
      assert.deepEqual([group.displayName, group.securityEnabled, group.groupTypes], [name, true, []]);
      return group;
    }

    // An Entra device and the Intune managed device ("iPad SERIAL") that names it by azureADDeviceId. The beta and
    // v1.0 models mark serialNumber, deviceName, azureADDeviceId and operatingSystem read-only, so
    // their serializer writes none of them; an SDK user sends them in additionalData.
    async function createDevice(serial, userId) {
      const device = await send(beta, HttpMethod.POST, T.devices, {}, createDeviceFromDiscriminatorValue,
        { body: { accountEnabled: true, deviceId: crypto.randomUUID(), displayName: `iPad ${serial}`,
          operatingSystem: "iPadOS" },
          serializer: serializeDevice });
      assert.equal(beta.last().status, 201, beta.last().body);
      checkModel(beta.lastJson(), device, createDeviceFromDiscriminatorValue, CHECK);
      const managed = await send(beta, HttpMethod.POST, T.managedDevices, {}, createManagedDeviceFromDiscriminatorValue,
        { body: { additionalData: { serialNumber: serial, deviceName: `iPad ${serial}`,
          azureADDeviceId: device.deviceId, operatingSystem: "iOS", ...(userId ? { userId } : {}) } },
          serializer: serializeManagedDevice });
      assert.equal(beta.last().status, 201, beta.last().body);
      checkModel(beta.lastJson(), managed, createManagedDeviceFromDiscriminatorValue, CHECK);
      assert.deepEqual([managed.serialNumber, managed.deviceName, managed.azureADDeviceId, managed.userId ?? undefined],
        [serial, `iPad ${serial}`, device.deviceId, userId]);
      return { device, managed, serial };
    }

    async function addMember(groupId, objectId) {
      await sendNoContent(beta, HttpMethod.POST, T.groupMembersRef, { "group%2Did": groupId },
        { body: ref(objectId), serializer: serializeReferenceCreate });
      assert.equal(beta.last().status, 204, beta.last().body);
    }

    async function removeMember(groupId, objectId) {
      await sendNoContent(beta, HttpMethod.DELETE, T.groupMemberRef,
        { "group%2Did": groupId, "directoryObject%2Did": objectId });
      assert.equal(beta.last().status, 204, beta.last().body);
    }

    // Every page of a collection through msgraph-sdk-core's PageIterator, each checked.
    async function collect(template, params, factory, query) {
      const first = await send(beta, HttpMethod.GET, template, params, factory, { query });
      const start = beta.exchanges.length - 1;
      const items = [];
      const iterator = new PageIterator(beta.adapter, first, (item) => { items.push(item); return true; }, factory,
        ERROR_MAPPING);
      await iterator.iterate();
      for (const exchange of beta.exchanges.slice(start)) {
        assert.equal(exchange.status, 200, exchange.body);
        const raw = JSON.parse(exchange.body);
        checkModel(raw, parseWithSdk(raw, factory), factory, CHECK);
      }
      return items;
    }

    const members = (groupId) => collect(T.groupMembers, { "group%2Did": groupId },
      createDirectoryObjectCollectionResponseFromDiscriminatorValue);

    // A group of new devices (serials PREFIX0, PREFIX1, …), added in that order; the first one's
    // managed device names `userId` when given.
    async function deviceGroup(prefix, count, userId) {
      const group = await createGroup(`g-${prefix.toLowerCase()}`);
      const devices = [];
      for (let i = 0; i < count; i++) {
        const d = await createDevice(`${prefix}${i}`, i === 0 ? userId : undefined);
        await addMember(group.id, d.device.id);
        devices.push(d);
      }
      return { group, devices, serials: devices.map((d) => d.serial) };
    }

    // --- a location with one iOS app that takes device licences -------------------------------

    // A new location, its vppToken (synced), and an iOS VPP app of it that supports device
    // licensing with exactly `available` licences free at Apple.
    async function tokenWithApp(available) {
      const location = await newLocation(6, 10);
      const sToken = location.tokens[0].sToken;
      const created = await send(beta, HttpMethod.POST, T.vppTokens, {}, createVppTokenFromDiscriminatorValue,
        { body: { token: sToken, displayName: `clients-${store}` }, serializer: serializeVppToken });
      assert.equal(beta.last().status, 201, beta.last().body);
      await waitSync(created.id);
      const apps = await collect(T.mobileApps, {}, createMobileAppCollectionResponseFromDiscriminatorValue,
        { filter: `vppTokenId eq '${created.id}'` });
      const assets = await appleAssets(sToken);
      const app = apps.find((a) => {
        if (a.odataType !== IOS || !a.licensingType.supportsDeviceLicensing) return false;
        const adamId = a.appStoreUrl.split("/id").pop();
        const same = assets.filter((x) => x.adamId === adamId && x.productType === "App");
        return same.length === 1 && same[0].deviceAssignable && a.totalLicenseCount < 2_000_000_000;
      });
      assert.ok(app, "the location has an iOS app with a limited count of device licences");
      const fixture = { location, sToken, uId: location.uId, tokenId: created.id, app,
        adamId: app.appStoreUrl.split("/id").pop() };
      await setAvailable(fixture, available);
      return fixture;
    }

    async function waitSync(tokenId) {
      return until(`the sync of ${tokenId}`, async () => {
        const t = await send(beta, HttpMethod.GET, T.vppToken, { "vppToken%2Did": tokenId },
          createVppTokenFromDiscriminatorValue);
        checkModel(beta.lastJson(), t, createVppTokenFromDiscriminatorValue, CHECK);
        if (t.lastSyncStatus === "inProgress") return null;
        assert.equal(t.lastSyncStatus, "completed");
        return t;
      });
    }

    // syncLicenses through the SDK, then waits for it.
    async function syncLicenses(tokenId) {
      await send(beta, HttpMethod.POST, T.syncLicenses, { "vppToken%2Did": tokenId },
        createVppTokenFromDiscriminatorValue);
      assert.equal(beta.last().status, 200, beta.last().body);
      return waitSync(tokenId);
    }

    // Buys or refunds at the simulator until exactly n licences of the app are free; then syncs.
    async function setAvailable(f, n) {
      const [asset] = (await appleAssets(f.sToken)).filter((a) => a.adamId === f.adamId);
      const delta = n - asset.availableCount;
      if (delta !== 0) {
        await simControl("POST", `locations/${f.uId}/${delta > 0 ? "purchase" : "refund"}`,
          { adamId: f.adamId, pricingParam: asset.pricingParam, count: Math.abs(delta) });
      }
      await syncLicenses(f.tokenId);
      const [after] = (await appleAssets(f.sToken)).filter((a) => a.adamId === f.adamId);
      assert.equal(after.availableCount, n);
    }

    async function assign(f, assignments) {
      await sendNoContent(beta, HttpMethod.POST, T.assign, { "mobileApp%2Did": f.app.id },
        { body: { mobileAppAssignments: assignments }, serializer: serializeAssignBody });
      assert.equal(beta.last().status, 204, beta.last().body);
      assert.equal(beta.last().body, "");
    }

    const assignments = (appId) => collect(T.assignments, { "mobileApp%2Did": appId },
      createMobileAppAssignmentCollectionResponseFromDiscriminatorValue);

    // The serials starting with `prefix` that Apple holds a licence of the app for.
    async function atApple(f, prefix) {
      const held = await appleAssignments(f.sToken, `adamId=${f.adamId}`);
      return held.map((a) => a.serialNumber ?? "").filter((s) => s.startsWith(prefix)).sort();
    }

    async function waitApple(f, prefix, expected, timeoutMs = 30_000) {
      const want = [...expected].sort();
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = await atApple(f, prefix);
        if (JSON.stringify(got) === JSON.stringify(want)) return;
        if (Date.now() > deadline) assert.deepEqual(got, want, "the serials Apple holds after waiting");
        await sleep(100);
      }
    }

    // The token's last reconcile, as `vppd tokens list --json` reports it.
    const lastReconcile = (f) => vppd.tokens().find((t) => t.id === f.tokenId)?.lastReconcile ?? null;

    // GET mobileApps/{id}/deviceStatuses, every page: [managed device id, deviceName, installState,
    // errorCode] of each device the app's assignments target, in the order they joined.
    async function statuses(f) {
      const all = await collect(T.deviceStatuses, { "mobileApp%2Did": f.app.id },
        createMobileAppInstallStatusCollectionResponseFromDiscriminatorValue);
      for (const s of all) {
        assert.equal(s.installStateDetail, s.installState === "failed" ? "seeInstallErrorCode" : "noAdditionalDetails",
          JSON.stringify(s));
      }
      return all.map((s) => [s.id, s.deviceName, s.installState, s.errorCode]);
    }

    async function waitStatuses(f, expected, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = await statuses(f);
        if (JSON.stringify(got) === JSON.stringify(expected)) return;
        if (Date.now() > deadline) assert.deepEqual(got, expected, "deviceStatuses after waiting");
        await sleep(100);
      }
    }
    const status = (d, state, code = 0) => [d.managed.id, `iPad ${d.serial}`, state, code];

    // The state of the token's latest reconcileLicenses entry in tokenActionResults (the SDK's
    // vppTokenActionResult).
    async function reconcileState(f) {
      const t = await send(beta, HttpMethod.GET, T.vppToken, { "vppToken%2Did": f.tokenId },
        createVppTokenFromDiscriminatorValue);
      checkModel(beta.lastJson(), t, createVppTokenFromDiscriminatorValue, CHECK);
      const entries = t.tokenActionResults.filter((a) => a.actionName === "reconcileLicenses")
        .sort((a, b) => a.startDateTime - b.startDateTime);
      assert.ok(entries.length > 0, JSON.stringify(t.tokenActionResults));
      return entries.at(-1).actionState;
    }

    const prefixFor = (letter) => letter + crypto.randomUUID().replaceAll("-", "").slice(0, 6).toUpperCase();

    // --- scenarios --------------------------------------------------------------------------------

    test("the directory: users, devices, managed devices and a group with members", async () => {
      const user = await createUser(`teacher-${store}`);
      const got = await v1.graph.users.byUserId(user.id).get();
      checkModel(v1.lastJson(), got, createUserFromDiscriminatorValue, CHECK);
      assert.equal(got.displayName, user.displayName);
      const group = await createGroup(`ipads-${store}`);
      const ipads = [await createDevice(prefixFor("D") + "0", user.id), await createDevice(prefixFor("D") + "1")];
      await addMember(group.id, user.id);
      for (const d of ipads) await addMember(group.id, d.device.id);
      // Listed with the page size 2: two pages, the user first, then the devices in the order added.
      const listed = await members(group.id);
      assert.deepEqual(listed.map((m) => [m.odataType, m.id]), [["#microsoft.graph.user", user.id],
        ...ipads.map((d) => ["#microsoft.graph.device", d.device.id])]);
      assert.deepEqual(listed.slice(1).map((m) => m.deviceId), ipads.map((d) => d.device.deviceId));
      // The managed devices, found by serial number as an SDK user filters them, name the user.
      for (const d of ipads) {
        const [found] = await collect(T.managedDevices, {}, createManagedDeviceCollectionResponseFromDiscriminatorValue,
          { filter: `serialNumber eq '${d.serial}'` });
        assert.equal(found.id, d.managed.id);
        assert.equal(found.azureADDeviceId, d.device.deviceId);
      }
      assert.equal(ipads[0].managed.userId, user.id);
    });

    test("assign to the group with device licensing: Apple holds the members' serials; a device that leaves or is " +
      "deleted gives its licence back",
      async () => {
        const f = await tokenWithApp(10);
        const prefix = prefixFor("A");
        const owner = await createUser(`owner-${prefix.toLowerCase()}`);
        const { group, devices, serials } = await deviceGroup(prefix, 4, owner.id);
        // A device outside the group gets nothing.
        const outsider = await createDevice(`${prefix}X`);
        await assign(f, [include(group.id)]);
        const [made] = await assignments(f.app.id);
        checkModel(beta.lastJson().value[0], made, createMobileAppAssignmentFromDiscriminatorValue, CHECK);
        assert.equal(made.intent, "required");
        assert.deepEqual([made.target.odataType, made.target.groupId], [GROUP_TARGET, group.id]);
        assert.deepEqual([made.settings.odataType, made.settings.useDeviceLicensing], [IOS_SETTINGS, true]);
        await waitApple(f, prefix, serials);
        assert.ok(!(await atApple(f, prefix)).includes(outsider.serial));
        await waitStatuses(f, devices.map((d) => status(d, "installed")));

        // Graph's view after a sync: one device licence per serial, naming the managed device that
        // holds it (its id, name and user).
        await syncLicenses(f.tokenId);
        const licences = await collect(T.iosAssignedLicenses, { "mobileApp%2Did": f.app.id },
          createIosVppAppAssignedLicenseCollectionResponseFromDiscriminatorValue);
        const ours = licences.filter((l) => l.deviceName?.startsWith(`iPad ${prefix}`));
        assert.deepEqual(ours.map((l) => [l.odataType, l.managedDeviceId, l.deviceName, l.userId ?? null]).sort(),
          devices.map((d, i) => [DEVICE_LICENSE, d.managed.id, `iPad ${d.serial}`, i === 0 ? owner.id : null]).sort());

        // Leaving the group takes the licence back, and only that one.
        await removeMember(group.id, devices[1].device.id);
        assert.deepEqual((await members(group.id)).map((m) => m.id),
          devices.filter((_, i) => i !== 1).map((d) => d.device.id));
        await waitApple(f, prefix, serials.filter((_, i) => i !== 1));
        await waitStatuses(f, devices.filter((_, i) => i !== 1).map((d) => status(d, "installed")));

        // A managed device deleted (retired from Intune) gives its licence back too.
        await sendNoContent(beta, HttpMethod.DELETE, T.managedDevice, { "managedDevice%2Did": devices[3].managed.id });
        assert.equal(beta.last().status, 204, beta.last().body);
        await waitApple(f, prefix, [serials[0], serials[2]]);
        await waitStatuses(f, [status(devices[0], "installed"), status(devices[2], "installed")]);
        const report = await until("a report of 2 granted", () => {
          const r = lastReconcile(f);
          return r && r.granted === 2 && r.eventsInFlight === 0 ? r : null;
        });
        assert.deepEqual([report.wanted, report.failed, report.notEnoughLicenses, report.heldBack], [2, 0, 0, 0]);
      });

    test("oversubscribed: exactly the available count granted, the rest failed; bought licences served after a sync",
      async () => {
        const f = await tokenWithApp(2);
        const prefix = prefixFor("O");
        const { group, devices, serials } = await deviceGroup(prefix, 5);
        await assign(f, [include(group.id)]);
        // Served in the order they joined: the first two; the other three failed with Apple's 9709
        // (not enough licences).
        await waitApple(f, prefix, serials.slice(0, 2));
        await waitStatuses(f, devices.map((d, i) => (i < 2 ? status(d, "installed") : status(d, "failed", 9709))));
        const report = await until("a report with 3 short of licences", () => {
          const r = lastReconcile(f);
          return r && r.notEnoughLicenses === 3 && r.eventsInFlight === 0 ? r : null;
        });
        assert.deepEqual([report.wanted, report.granted, report.failed], [5, 2, 3]);
        // Devices left without a licence: the token's reconcileLicenses action failed.
        await until("reconcileLicenses failed", async () => (await reconcileState(f)) === "failed", 10_000);
        const [asset] = (await appleAssets(f.sToken)).filter((a) => a.adamId === f.adamId);
        assert.equal(asset.availableCount, 0, "every available licence went out");
        // Three more bought at Apple; syncLicenses (through the SDK) sees them and the rest are served.
        await simControl("POST", `locations/${f.uId}/purchase`,
          { adamId: f.adamId, pricingParam: asset.pricingParam, count: 3 });
        await sleep(300);
        assert.deepEqual(await atApple(f, prefix), serials.slice(0, 2), "nothing happens before vppd knows");
        await syncLicenses(f.tokenId);
        await waitApple(f, prefix, serials);
        await waitStatuses(f, devices.map((d) => status(d, "installed")));
        const done = await until("a report of 5 granted", () => {
          const r = lastReconcile(f);
          return r && r.granted === 5 && r.eventsInFlight === 0 ? r : null;
        });
        assert.deepEqual([done.failed, done.notEnoughLicenses], [0, 0]);
        await until("reconcileLicenses done", async () => (await reconcileState(f)) === "done", 10_000);
      });

    test("an exclusion group keeps its devices out; uninstall intent takes the licences back", async () => {
      const f = await tokenWithApp(10);
      const prefix = prefixFor("E");
      const { group, devices, serials } = await deviceGroup(prefix, 4);
      const excluded = await createGroup(`x-${prefix.toLowerCase()}`);
      await addMember(excluded.id, devices[0].device.id);
      await addMember(excluded.id, devices[3].device.id);
      await assign(f, [include(group.id), exclude(excluded.id)]);
      const listed = await assignments(f.app.id);
      assert.deepEqual(listed.map((a) => [a.target.odataType, a.target.groupId]).sort(),
        [[EXCLUDE_TARGET, excluded.id], [GROUP_TARGET, group.id]].sort());
      await waitApple(f, prefix, [serials[1], serials[2]]);
      // Excluded devices are not targeted: not in deviceStatuses at all.
      await waitStatuses(f, [status(devices[1], "installed"), status(devices[2], "installed")]);
      const report = await until("a settled report", () => {
        const r = lastReconcile(f);
        return r && r.granted === 2 && r.eventsInFlight === 0 ? r : null;
      });
      assert.deepEqual([report.wanted, report.failed], [2, 0], "excluded devices are not wanted, nor failed");

      // Uninstall: the app's assignment replaced, every licence it granted taken back (no cap:
      // an admin's act).
      await assign(f, [include(group.id, "uninstall")]);
      const [uninstall] = await assignments(f.app.id);
      assert.equal(uninstall.intent, "uninstall");
      await waitApple(f, prefix, []);
      const [asset] = (await appleAssets(f.sToken)).filter((a) => a.adamId === f.adamId);
      assert.equal(asset.availableCount, 10, "the licences are free again");
      assert.deepEqual(await statuses(f), [], "an uninstall intent targets no device for a licence");
    });

    test("bad input: precise Graph errors through the SDK, nothing half-written", async () => {
      const f = await tokenWithApp(10);
      const prefix = prefixFor("B");
      const { group, devices } = await deviceGroup(prefix, 1);
      const other = await createGroup(`o-${prefix.toLowerCase()}`);
      // What is there before: one assignment, one member; every refused call below leaves them as they are.
      await assign(f, [include(group.id)]);
      const snapshot = async () => (await assignments(f.app.id)).map((a) =>
        [a.id, a.intent, a.target.odataType, a.target.groupId, a.settings?.odataType, a.settings?.useDeviceLicensing]);
      const before = await snapshot();
      assert.deepEqual(before.map((a) => a.slice(1)), [["required", GROUP_TARGET, group.id, IOS_SETTINGS, true]]);
      const missing = crypto.randomUUID();

      // Runs a call that must fail; checks the ODataError the SDK built, field by field.
      async function refused(call, status, code, ...fragments) {
        const error = await expectODataError(call);
        assert.equal(error.responseStatusCode, status, beta.last().body);
        checkModel(JSON.parse(beta.last().body), error, createODataErrorFromDiscriminatorValue, CHECK);
        assert.equal(error.errorEscaped.code, code, beta.last().body);
        for (const fragment of fragments) assert.ok(error.errorEscaped.message.includes(fragment), beta.last().body);
        return error;
      }
      const assignAll = (items, appId = f.app.id) => sendNoContent(beta, HttpMethod.POST, T.assign,
        { "mobileApp%2Did": appId }, { body: { mobileAppAssignments: items }, serializer: serializeAssignBody });
      const create = (item, appId = f.app.id) => send(beta, HttpMethod.POST, T.assignments, { "mobileApp%2Did": appId },
        createMobileAppAssignmentFromDiscriminatorValue, { body: item, serializer: serializeAssignment });

      // An unknown group, alone or beside a good one, as a target or an exclusion: 404 naming it.
      await refused(() => assignAll([include(other.id), include(missing)]), 404, "ResourceNotFound",
        `The group '${missing}' was not found`);
      await refused(() => assignAll([include(group.id), exclude(missing)]), 404, "ResourceNotFound", missing);
      await refused(() => create(include(missing)), 404, "ResourceNotFound", `The group '${missing}' was not found`);
      assert.deepEqual(await snapshot(), before);

      // Settings of the other platform's type: 400 naming both types.
      const macSettings = { ...include(other.id), settings: { odataType: MAC_SETTINGS, useDeviceLicensing: true } };
      await refused(() => assignAll([include(group.id), macSettings]), 400, "BadRequest",
        "iosVppAppAssignmentSettings", "macOsVppAppAssignmentSettings");
      assert.equal(JSON.parse(beta.exchanges.at(-1).requestBody).mobileAppAssignments[1].settings["@odata.type"],
        MAC_SETTINGS, "the SDK sent the macOS settings");
      await refused(() => create(macSettings), 400, "BadRequest", "iosVppAppAssignmentSettings");
      assert.deepEqual(await snapshot(), before);

      // An app vppd does not hold as a VPP app (an Intune store or line-of-business app's id): 404.
      await refused(() => assignAll([include(group.id)], missing), 404, "ResourceNotFound",
        `The mobileApp '${missing}'`);
      await refused(() => create(include(group.id), missing), 404, "ResourceNotFound", `The mobileApp '${missing}'`);
      assert.deepEqual(await snapshot(), before);

      // A member added twice: Graph's 400; an unknown object or group: 404 naming it.
      await refused(() => addMember(group.id, devices[0].device.id), 400, "Request_BadRequest",
        "One or more added object references already exist");
      await refused(() => addMember(group.id, missing), 404, "Request_ResourceNotFound", missing);
      await refused(() => addMember(missing, devices[0].device.id), 404, "Request_ResourceNotFound", missing);
      assert.deepEqual((await members(group.id)).map((m) => m.id), [devices[0].device.id]);
      assert.deepEqual(await members(other.id), []);

      // And what stands still works: the one device holds its licence.
      await waitApple(f, prefix, [devices[0].serial]);
    });

    test("kill -9 during a reconcile (twice), restart: the end state is exact, no event sent twice", async () => {
      const f = await tokenWithApp(60);
      const prefix = prefixFor("K");
      const { group, devices, serials } = await deviceGroup(prefix, 40);
      // The first associate is answered 2 s late (vppd dies waiting for it: Apple accepted an event
      // vppd never recorded); the second one's event stays pending until released (vppd dies with
      // it recorded and in flight).
      const rules = [
        await simControl("POST", "faults", { path: "/mdm/v2/assets/associate", location: f.uId, kind: "latency",
          latencyMs: 2000, maxHits: 1 }),
        await simControl("POST", "faults", { path: "/mdm/v2/assets/associate", location: f.uId, kind: "hold_event",
          onRequests: [2] }),
      ];
      try {
        await assign(f, [include(group.id)]);
        await until("the first associate at Apple", async () => (await simCounters(f.uId))[ASSOCIATE] === 1,
          20_000, 20);
        await vppd.kill9();
        await vppd.start();
        connect();
        // After the dead worker's lease, the job runs again: the unrecorded request is sent again.
        await until("the second associate recorded as in flight", async () => {
          if ((await simCounters(f.uId))[ASSOCIATE] !== 2) return false;
          const r = lastReconcile(f);
          return r && r.eventsInFlight === 1 && r.pending === 40;
        }, 20_000, 50);
        await vppd.kill9();
        await vppd.start();
        connect();
        // Back up with the event still held at Apple: every device's licence is pending.
        assert.deepEqual(await statuses(f), devices.map((d) => status(d, "pendingInstall")));
        await simControl("POST", "events/resolve", {});
        await waitApple(f, prefix, serials);
        await waitStatuses(f, devices.map((d) => status(d, "installed")));
        const report = await until("a settled report", () => {
          const r = lastReconcile(f);
          return r && r.eventsInFlight === 0 && r.granted === 40 ? r : null;
        });
        assert.deepEqual([report.wanted, report.pending, report.failed], [40, 0, 0]);
        assert.equal((await simCounters(f.uId))[ASSOCIATE], 2, "the recorded event was polled, not sent again");
        // A pass now has nothing to do and makes no Apple write.
        const writes = await simCounters(f.uId);
        const r = vppd.cli("reconcile", f.tokenId, "--wait", "--timeout", "30", "--data-dir", vppd.dataDir);
        assert.equal(r.status, 0, r.stdout + r.stderr);
        const after = await simCounters(f.uId);
        for (const key of Object.keys(after).filter((k) => k.startsWith("POST /mdm/v2/assets/"))) {
          assert.equal(after[key], writes[key], `${key}: a second pass calls Apple for nothing`);
        }
        // Graph sees all of it.
        await syncLicenses(f.tokenId);
        const licences = await collect(T.iosAssignedLicenses, { "mobileApp%2Did": f.app.id },
          createIosVppAppAssignedLicenseCollectionResponseFromDiscriminatorValue, { top: 999 });
        const ours = licences.filter((l) => l.deviceName?.startsWith(`iPad ${prefix}`));
        assert.deepEqual(ours.map((l) => l.managedDeviceId).sort(), devices.map((d) => d.managed.id).sort());
      } finally {
        for (const rule of rules) await simControl("DELETE", `faults/${rule.id}`).catch(() => {});
      }
    });
  });
}
