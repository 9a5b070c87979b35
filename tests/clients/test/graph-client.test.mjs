// @microsoft/microsoft-graph-client (the Graph JavaScript client library) against vppd, behind an
// HTTPS front (lib/tls-front.mjs): the seed's syncLicenses call as a client without SdkVersion
// makes it, reading `value`; the same call with the library's telemetry (SdkVersion) getting the
// entity at the root; and a collection walked with its PageIterator over @odata.nextLink.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import graphClient from "@microsoft/microsoft-graph-client";

import { env, newLocation, sleep } from "../lib/graph.mjs";
import { startTlsFront } from "../lib/tls-front.mjs";

const {
  AuthenticationHandler, Client, CustomAuthenticationProvider, HTTPMessageHandler, PageIterator, RetryHandler, TelemetryHandler,
} = graphClient;

// A custom auth provider, as the library documents: a callback handing over the dev token.
const authProvider = (done) => done(null, env.token);

// The library's default middleware chain (auth, retry, telemetry, fetch) — or the same chain
// without the telemetry handler, i.e. a client that sends no SdkVersion header.
function makeClient(baseUrl, { telemetry }) {
  const handlers = [new AuthenticationHandler(new CustomAuthenticationProvider(authProvider)), new RetryHandler()];
  if (telemetry) handlers.push(new TelemetryHandler());
  handlers.push(new HTTPMessageHandler());
  for (let i = 0; i + 1 < handlers.length; i++) handlers[i].setNext(handlers[i + 1]);
  return Client.initWithMiddleware({
    baseUrl,
    defaultVersion: "beta",
    middleware: handlers[0],
    customHosts: new Set(["127.0.0.1"]), // vppd stands in for graph.microsoft.com
  });
}

async function waitForSync(client, id, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const token = await client.api(`/deviceAppManagement/vppTokens/${id}`).get();
    if (token.lastSyncStatus !== "inProgress") return token;
    if (Date.now() > deadline) assert.fail(`token ${id} still syncing after ${timeoutMs} ms`);
    await sleep(100);
  }
}

describe("microsoft-graph-client", () => {
  let front;
  let seedClient; // no SdkVersion, as the seed's caller
  let sdkClient; // the library's default telemetry: SdkVersion
  let token;

  before(async () => {
    front = await startTlsFront(env.vppdUrl);
    seedClient = makeClient(front.url, { telemetry: false });
    sdkClient = makeClient(front.url, { telemetry: true });
    const location = await newLocation(4, 10);
    token = await seedClient.api("/deviceAppManagement/vppTokens")
      .post({ token: location.tokens[0].sToken, displayName: "graph-client-0" });
    assert.equal(token.lastSyncStatus, "inProgress");
    token = await waitForSync(seedClient, token.id);
    assert.equal(token.lastSyncStatus, "completed");
  });

  after(async () => {
    await front?.close();
  });

  test("the seed's call: POST syncLicenses without SdkVersion answers {value: vppToken}", async () => {
    const response = await seedClient.api(`/deviceAppManagement/vppTokens/${token.id}/syncLicenses`).post();
    const sent = front.seen[front.seen.length - 1];
    assert.equal(sent.method, "POST");
    assert.equal(sent.url, `/beta/deviceAppManagement/vppTokens/${token.id}/syncLicenses`);
    assert.equal(sent.headers.sdkversion, undefined, "this client sends no SdkVersion");
    assert.equal(sent.headers.authorization, `Bearer ${env.token}`, "the custom auth provider's token");
    assert.match(response["@odata.context"], /^https:\/\/127\.0\.0\.1:\d+\/beta\/\$metadata#microsoft\.graph\.vppToken$/,
      "the context names the https origin the client used");
    assert.equal(response.id, undefined, "the entity is not at the root");
    const value = response.value;
    assert.equal(value["@odata.type"], "#microsoft.graph.vppToken");
    assert.equal(value.id, token.id);
    assert.equal(value.lastSyncStatus, "inProgress");
    assert.equal(value.token, null, "the sToken is never returned");
    assert.equal((await waitForSync(seedClient, token.id)).lastSyncStatus, "completed");
  });

  test("with the library's telemetry (SdkVersion: graph-js/…) the vppToken is at the root", async () => {
    const response = await sdkClient.api(`/deviceAppManagement/vppTokens/${token.id}/syncLicenses`).post();
    const sent = front.seen[front.seen.length - 1];
    assert.match(sent.headers.sdkversion ?? "", /^graph-js\/\d/);
    assert.match(sent.headers["client-request-id"] ?? "", /^[0-9a-f-]{36}$/);
    assert.equal(response.value, undefined);
    assert.equal(response.id, token.id);
    assert.equal(response.lastSyncStatus, "inProgress");
    await waitForSync(sdkClient, token.id);
  });

  test("PageIterator follows @odata.nextLink through every page of 2", async () => {
    for (const n of [1, 2, 3, 4]) {
      const location = await newLocation(2, 4);
      await seedClient.api("/deviceAppManagement/vppTokens")
        .post({ token: location.tokens[0].sToken, displayName: `graph-client-${n}` });
    }
    const first = await seedClient.api("/deviceAppManagement/vppTokens")
      .filter("startswith(displayName,'graph-client-')")
      .orderby("displayName")
      .select(["displayName", "state"])
      .count(true)
      .get();
    assert.equal(first["@odata.count"], 5);
    assert.equal(first.value.length, 2);
    assert.match(first["@odata.nextLink"], /^https:\/\/127\.0\.0\.1:\d+\/beta\/deviceAppManagement\/vppTokens\?/);
    const names = [];
    const pagesBefore = front.seen.length;
    await new PageIterator(seedClient, first, (item) => {
      assert.deepEqual(Object.keys(item).filter((k) => !k.startsWith("@")).sort(), ["displayName", "id", "state"],
        "$select is kept on every page");
      names.push(item.displayName);
      return true;
    }).iterate();
    assert.deepEqual(names, ["graph-client-0", "graph-client-1", "graph-client-2", "graph-client-3", "graph-client-4"]);
    assert.equal(front.seen.length - pagesBefore, 2, "two more pages fetched");
  });

  test("an error is a GraphError with vppd's code and status", async () => {
    const error = await seedClient.api("/deviceAppManagement/vppTokens/00000000-0000-0000-0000-000000000000").get()
      .then(() => null, (e) => e);
    assert.ok(error, "the call fails");
    assert.equal(error.statusCode, 404);
    assert.equal(error.code, "ResourceNotFound");
    assert.match(error.requestId ?? "", /\S/);
    assert.ok(error.date instanceof Date);
  });
});
