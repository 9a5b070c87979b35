// Licences for people (issue 17) through Microsoft's SDKs: users through the v1.0 SDK's own
// request builders, a group of them, an iOS VPP app assigned to it with
// iosVppAppAssignmentSettings { useDeviceLicensing: false } through the beta pipeline and models.
// vppd registers the people at Apple (the simulator), the test plays a person accepting Apple's
// invitation (/_sim/), the licence is associated by clientUserId; userStatuses (the SDK's
// userAppInstallStatus) and assignedLicenses (iosVppAppAssignedUserLicense, the person named from
// the directory) are parsed and checked by the SDK's models; a user deleted through the SDK has
// their Apple user retired and the licence released. vppd's own users/{id}/vppUserStatus (no SDK
// model: vppd's) is read with plain fetch. Bad input: an unknown user or app. SQLite and PostgreSQL.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  createGroupFromDiscriminatorValue,
  createIosVppAppAssignedLicenseCollectionResponseFromDiscriminatorValue,
  createMobileAppCollectionResponseFromDiscriminatorValue,
  createUserAppInstallStatusFromDiscriminatorValue,
  createVppTokenFromDiscriminatorValue,
  deserializeIntoBaseCollectionPaginationCountResponse,
  serializeGroup,
  serializeGroupAssignmentTarget,
  serializeIosVppAppAssignmentSettings,
  serializeMobileAppAssignment,
  serializeReferenceCreate,
  serializeVppToken,
} from "@microsoft/msgraph-beta-sdk/models/index.js";
import { PageIterator } from "@microsoft/msgraph-sdk-core";

import { checkModel, parseWithSdk } from "../lib/check.mjs";
import {
  ERROR_MAPPING, HttpMethod, T, appleAssignments, betaClient, env, expectODataError, newLocation, send,
  sendNoContent, simControl, sleep, v1Client,
} from "../lib/graph.mjs";
import { STORES, Vppd } from "../lib/vppd.mjs";

const SCOPES = ["DeviceManagementServiceConfig.ReadWrite.All", "DeviceManagementApps.ReadWrite.All",
  "User.ReadWrite.All", "Group.ReadWrite.All", "GroupMember.ReadWrite.All"].join(" ");
const GROUP_TARGET = "#microsoft.graph.groupAssignmentTarget";
const IOS_SETTINGS = "#microsoft.graph.iosVppAppAssignmentSettings";
const IOS = "#microsoft.graph.iosVppApp";
const USER_LICENSE = "#microsoft.graph.iosVppAppAssignedUserLicense";
const CHECK = { extras: { "#microsoft.graph.vppToken": ["lastAppCount", "@odata.etag"] } };
const USER_STATUSES = "{+baseurl}/deviceAppManagement/mobileApps/{mobileApp%2Did}/userStatuses{?%24skip,%24top}";

// The published serializers drop a derived type's own properties when writing it through its base
// type (microsoft/kiota#6777): the target and settings are written with their own type's serializer,
// as tests/clients/test/assignments.test.mjs does.
function serializeAssignment(writer, { target, settings, ...rest } = {}) {
  serializeMobileAppAssignment(writer, { odataType: "#microsoft.graph.mobileAppAssignment", ...rest });
  if (target) writer.writeObjectValue("target", target, serializeGroupAssignmentTarget);
  if (settings) writer.writeObjectValue("settings", settings, serializeIosVppAppAssignmentSettings);
}
function serializeAssignBody(writer, body = {}) {
  writer.writeCollectionOfObjectValues("mobileAppAssignments", body.mobileAppAssignments, serializeAssignment);
  writer.writeAdditionalData(body.additionalData);
}
// userStatuses' UserAppInstallStatusCollectionResponse (a model of the unpublished builder package), as generated.
function createUserAppInstallStatusCollectionResponseFromDiscriminatorValue(_parseNode) {
  return (r = {}) => ({
    ...deserializeIntoBaseCollectionPaginationCountResponse(r),
    value: (n) => { r.value = n.getCollectionOfObjectValues(createUserAppInstallStatusFromDiscriminatorValue); },
  });
}

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
  describe(`licences for people, through the SDKs (${store})`, () => {
    let vppd;
    let token;
    let beta;
    let v1;

    before(async () => {
      vppd = await new Vppd({ store, args: vppdArgs() }).start();
      token = vppd.devToken(SCOPES);
      beta = betaClient(token, vppd.url);
      v1 = v1Client(token, vppd.url);
    });
    after(async () => {
      await vppd?.cleanup();
    });

    async function createUser(name) {
      const user = await v1.graph.users.post({
        accountEnabled: true, displayName: name, mailNickname: name, userPrincipalName: `${name}@contoso.example`,
      });
      assert.equal(v1.last().status, 201, v1.last().body);
      return user;
    }

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

    async function waitSync(tokenId) {
      return until(`the sync of ${tokenId}`, async () => {
        const t = await send(beta, HttpMethod.GET, T.vppToken, { "vppToken%2Did": tokenId },
          createVppTokenFromDiscriminatorValue);
        if (t.lastSyncStatus === "inProgress") return null;
        assert.equal(t.lastSyncStatus, "completed");
        return t;
      });
    }

    // A new location, its vppToken (synced) and one of its iOS apps with licences to spare.
    async function tokenWithApp() {
      const location = await newLocation(6, 10);
      const sToken = location.tokens[0].sToken;
      const created = await send(beta, HttpMethod.POST, T.vppTokens, {}, createVppTokenFromDiscriminatorValue,
        { body: { token: sToken, displayName: `people-${store}` }, serializer: serializeVppToken });
      assert.equal(beta.last().status, 201, beta.last().body);
      await waitSync(created.id);
      const apps = await collect(T.mobileApps, {}, createMobileAppCollectionResponseFromDiscriminatorValue,
        { filter: `vppTokenId eq '${created.id}'` });
      const app = apps.find((a) => a.odataType === IOS && a.totalLicenseCount < 2_000_000_000 &&
        a.totalLicenseCount - a.usedLicenseCount >= 3);
      assert.ok(app, "an iOS app with licences to spare");
      return { sToken, uId: location.uId, tokenId: created.id, app, adamId: app.appStoreUrl.split("/id").pop() };
    }

    const appleUsers = async (f, ids) => {
      const location = (await simControl("GET", `locations/${f.uId}/export`)).locations[0];
      return Object.fromEntries((location.users ?? []).filter((u) => ids.includes(u.clientUserId))
        .map((u) => [u.clientUserId, u.status]));
    };
    const usersAtApple = async (f, ids) => (await appleAssignments(f.sToken, `adamId=${f.adamId}`))
      .map((a) => a.clientUserId).filter((id) => ids.includes(id)).sort();
    const vppUserStatus = async (id) => {
      const r = await fetch(`${vppd.url}/v1.0/users/${id}/vppUserStatus`, { headers: { Authorization: `Bearer ${token}` } });
      return { status: r.status, body: await r.json() };
    };
    const userStatuses = (f) => collect(USER_STATUSES, { "mobileApp%2Did": f.app.id },
      createUserAppInstallStatusCollectionResponseFromDiscriminatorValue);

    test("a group of users assigned without device licensing: registered, invited, associated once they accept, " +
      "released when deleted", async () => {
      const f = await tokenWithApp();
      const suffix = crypto.randomUUID().slice(0, 6);
      const ann = await createUser(`ann-${suffix}`);
      const bob = await createUser(`bob-${suffix}`);
      const ids = [ann.id, bob.id];
      const group = await send(beta, HttpMethod.POST, T.groups, {}, createGroupFromDiscriminatorValue,
        { body: { displayName: `people-${suffix}`, mailEnabled: false, mailNickname: `people-${suffix}`,
          securityEnabled: true, groupTypes: [] }, serializer: serializeGroup });
      for (const id of ids) {
        await sendNoContent(beta, HttpMethod.POST, T.groupMembersRef, { "group%2Did": group.id },
          { body: { odataId: `https://graph.microsoft.com/v1.0/directoryObjects/${id}` },
            serializer: serializeReferenceCreate });
        assert.equal(beta.last().status, 204, beta.last().body);
      }
      await sendNoContent(beta, HttpMethod.POST, T.assign, { "mobileApp%2Did": f.app.id },
        { body: { mobileAppAssignments: [{ intent: "required", target: { odataType: GROUP_TARGET, groupId: group.id },
          settings: { odataType: IOS_SETTINGS, useDeviceLicensing: false } }] }, serializer: serializeAssignBody });
      assert.equal(beta.last().status, 204, beta.last().body);

      // Registered at Apple, each waiting for the invitation.
      await until("both registered", async () => {
        const users = await appleUsers(f, ids);
        return users[ann.id] === "Registered" && users[bob.id] === "Registered";
      });
      const waiting = await until("Ann's invitation", async () => {
        const s = await vppUserStatus(ann.id);
        return s.body.locations?.[0]?.inviteCode ? s : null;
      });
      assert.equal(waiting.status, 200);
      const where = waiting.body.locations[0];
      assert.deepEqual([where.vppTokenId, where.clientUserId, where.status, where.associated],
        [f.tokenId, ann.id, "Registered", false]);
      assert.ok(where.inviteUrl.includes(where.inviteCode), where.inviteUrl);
      let statuses = await userStatuses(f);
      assert.deepEqual(statuses.map((s) => [s.odataType, s.id, s.userPrincipalName, s.notInstalledDeviceCount]),
        [["#microsoft.graph.userAppInstallStatus", ann.id, ann.userPrincipalName, 1],
          ["#microsoft.graph.userAppInstallStatus", bob.id, bob.userPrincipalName, 1]], "in membership order");
      assert.deepEqual(await usersAtApple(f, ids), []);

      // Ann accepts with her Apple Account (the test plays her): her licence is associated by
      // clientUserId. Bob tries Ann's account: Apple refuses him (9641, the account is another user's
      // of the location), which vppd cannot see (README): he is reported waiting, without a licence.
      const account = `account-of-ann-${suffix}`;
      await simControl("POST", `locations/${f.uId}/acceptInvitation`, { clientUserIds: [ann.id], idHash: account });
      await assert.rejects(simControl("POST", `locations/${f.uId}/acceptInvitation`,
        { clientUserIds: [bob.id], idHash: account }), /: 400 .*9641/);
      await until("Ann's licence at Apple", async () =>
        JSON.stringify(await usersAtApple(f, ids)) === JSON.stringify([ann.id]));
      await until("Ann installed", async () => (await userStatuses(f))[0].installedDeviceCount === 1);
      statuses = await userStatuses(f);
      assert.deepEqual(statuses.map((s) => [s.installedDeviceCount, s.failedDeviceCount, s.notInstalledDeviceCount]),
        [[1, 0, 0], [0, 0, 1]]);
      const associated = (await vppUserStatus(ann.id)).body.locations[0];
      assert.deepEqual([associated.status, associated.associated], ["Associated", true]);
      const refused = (await vppUserStatus(bob.id)).body.locations[0];
      assert.deepEqual([refused.status, refused.associated, refused.licenses], ["Registered", false, []]);
      assert.deepEqual((await appleUsers(f, ids))[bob.id], "Registered");

      // assignedLicenses after a sync: the SDK's iosVppAppAssignedUserLicense names Ann.
      await send(beta, HttpMethod.POST, T.syncLicenses, { "vppToken%2Did": f.tokenId },
        createVppTokenFromDiscriminatorValue);
      await waitSync(f.tokenId);
      const licences = await collect(T.iosAssignedLicenses, { "mobileApp%2Did": f.app.id },
        createIosVppAppAssignedLicenseCollectionResponseFromDiscriminatorValue);
      const hers = licences.filter((l) => l.userId === ann.id);
      assert.deepEqual(hers.map((l) => [l.odataType, l.userPrincipalName, l.userName, l.userEmailAddress]),
        [[USER_LICENSE, ann.userPrincipalName, ann.displayName, ann.userPrincipalName]]);

      // Ann deleted through the SDK: her Apple user retired, her licence released; Bob left alone.
      await v1.graph.users.byUserId(ann.id).delete();
      assert.equal(v1.last().status, 204, v1.last().body);
      await until("Ann retired and released", async () =>
        (await appleUsers(f, ids))[ann.id] === "Retired" && (await usersAtApple(f, ids)).length === 0);
      assert.equal((await appleUsers(f, ids))[bob.id], "Registered");
    });

    test("bad input: an unknown user or app, answered as Graph does", async () => {
      const unknown = crypto.randomUUID();
      const missing = await vppUserStatus(unknown);
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error.code, "Request_ResourceNotFound");
      assert.ok(missing.body.error.message.includes(unknown), missing.body.error.message);
      const e = await expectODataError(() => userStatuses({ app: { id: unknown } }));
      assert.equal(e.responseStatusCode, 404, e.message);
    });
  });
}
