// The console in a real browser: Debian's chromium driven by playwright-core (no browser
// download), against `vppd demo` (servers.py). The tests run in order on one page, as a
// person would: sign in, look at the tokens, sync, upload, licences and CSV, activity,
// delete. Screenshots of each page go to build/console-screenshots/.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const shots = process.env.CONSOLE_SCREENSHOTS ?? path.join(here, "..", "..", "..", "build", "console-screenshots");
const base = process.env.VPPD_URL;
const simUrl = process.env.SIM_URL;
const graph = `${base}/beta/deviceAppManagement`;
const kDemoName = "vppd demo location";
const kExpiredOrg = "Expired Console School";

async function api(method, url, body, headers = {}) {
  const response = await fetch(url.startsWith("http") ? url : `${graph}/${url}`, {
    method,
    headers: {
      Authorization: `Bearer ${process.env.VPPD_TOKEN}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function all(url, headers = {}) {
  const items = [];
  for (let next = url; next; ) {
    const page = await api("GET", next, undefined, headers);
    items.push(...page.value);
    next = page["@odata.nextLink"];
  }
  return items;
}

// vppd's untracked-licences count, an annotation sent only when asked for.
const kUntracked = "@vppd.untrackedLicenseCount";
const kAskUntracked = { Prefer: 'odata.include-annotations="vppd.untrackedLicenseCount"' };

// Waits until the token's sync (queued on create, renew and syncLicenses) has finished.
async function settled(id) {
  for (let i = 0; i < 600; ++i) {
    const token = await api("GET", `vppTokens/${id}`);
    const entry = token.tokenActionResults.find((r) => r.actionName === "syncLicenses");
    if (token.lastSyncStatus !== "inProgress" && !["pending", "active"].includes(entry?.actionState)) return token;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the sync of token ${id} did not finish within 2 minutes`);
}

// An sToken as Apple's .vpptoken file holds it: base64 of {token, expDate, orgName}.
function sToken(token, expDate, orgName) {
  return Buffer.from(JSON.stringify({ token, expDate, orgName })).toString("base64");
}

// RFC 4180, as the console writes it.
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; ++i) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        ++i;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\r" && text[i + 1] === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      ++i;
    } else field += c;
  }
  if (field || row.length) rows.push([...row, field]);
  return rows;
}

let browser;
let context;
let page;
const cspViolations = [];
const pageErrors = [];

async function shot(name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

async function tokenRow(name) {
  return page.locator("tr[data-token-id]").filter({ has: page.locator("th strong", { hasText: name }) });
}

before(async () => {
  mkdirSync(shots, { recursive: true });
  // An expired token: Apple's file says it expired in 2020 (vppd decodes state=expired).
  const expired = await api("POST", "vppTokens", {
    token: sToken("expired-console", "2020-01-01T00:00:00+0000", kExpiredOrg),
  });
  await settled(expired.id); // its first sync fails at once: the sToken has expired
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  page = await context.newPage();
  page.on("console", (m) => {
    if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
});

after(async () => {
  await browser?.close();
});

test("vppd demo prints the console's URL", () => {
  assert.match(process.env.DEMO_OUTPUT, new RegExp(`Console: ${base.replace(/[.]/g, "\\.")}/`));
});

test("signs in with the dev key in one click", async () => {
  await page.goto(`${base}/`);
  await shot("signin");
  await page.getByRole("button", { name: "Sign in with the dev key" }).click();
  await page.getByRole("heading", { level: 1, name: "Tokens" }).waitFor();
  // The bearer token stays in memory.
  const stored = await page.evaluate(() => localStorage.length + sessionStorage.length + document.cookie.length);
  assert.equal(stored, 0, "nothing in localStorage, sessionStorage or cookies");
});

test("shows the demo's tokens with their state, expiry and last sync", async () => {
  const row = await tokenRow(kDemoName);
  await row.waitFor();
  assert.equal(await row.locator(".badge").getAttribute("data-state"), "valid");
  assert.match(await row.locator('td[data-label="Last sync"]').innerText(), /completed/);
  const tokens = await all("vppTokens");
  assert.equal(await page.locator("tr[data-token-id]").count(), tokens.length, "one row per Graph token");
  await shot("tokens");
});

test("flags an expired token", async () => {
  const row = await tokenRow(kExpiredOrg);
  await row.waitFor();
  assert.equal(await row.locator(".badge").getAttribute("data-state"), "expired");
  assert.equal(await row.locator(".expiry.expired").count(), 1, "the expiry is highlighted as expired");
  assert.match(await row.innerText(), /Download a new \.vpptoken/);
});

test("highlights a token that expires within 30 days", async () => {
  const soon = new Date(Date.now() + 10 * 24 * 3600 * 1000).toISOString().replace(/\.\d+Z$/, "+0000");
  const created = await api("POST", "vppTokens", { token: sToken("soon-console", soon, "Soon Console School") });
  await settled(created.id);
  await page.getByRole("button", { name: "Refresh" }).click();
  const row = page.locator(`tr[data-token-id="${created.id}"]`);
  await row.waitFor();
  assert.equal(await row.locator(".expiry.soon").count(), 1);
  assert.match(await row.locator(".expiry").innerText(), /expires soon: in (9|10) days/);
  // A token 4 years away is not highlighted.
  assert.equal(await (await tokenRow(kDemoName)).locator(".expiry.soon, .expiry.expired").count(), 0);
  await api("DELETE", `vppTokens/${created.id}`);
  await page.getByRole("button", { name: "Refresh" }).click();
  await row.waitFor({ state: "detached" });
});

test("Sync shows the worker's progress and completes", async () => {
  const [demo] = (await all("vppTokens")).filter((t) => t.displayName === kDemoName);
  const before = demo.lastSyncDateTime;
  // Apple answers the sync's first call (client/config) 2 s late, so the running phase lasts
  // long enough to see.
  const fault = await (
    await fetch(`${simUrl}/_sim/faults`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ path: "/mdm/v2/client/config", kind: "latency", latencyMs: 2000, maxHits: 1 }),
    })
  ).json();
  const row = await tokenRow(kDemoName);
  await row.getByRole("button", { name: `Sync ${kDemoName}` }).click();
  const progress = row.locator('[data-testid="sync-progress"]');
  // The phase follows the token's syncLicenses entry: pending (queued), active (running), done.
  await progress.locator(".phase.running").waitFor({ timeout: 30_000 });
  assert.match(await progress.innerText(), /Running · [\d.]+ s/);
  assert.equal(await progress.locator("progress").count(), 1, "a progress bar while it runs");
  assert.ok(await row.getByRole("button", { name: `Sync ${kDemoName}` }).isDisabled(), "no second Sync meanwhile");
  await shot("tokens-sync-running");
  await progress.locator(".phase.done").waitFor({ timeout: 120_000 });
  await fetch(`${simUrl}/_sim/faults/${fault.id}`, { method: "DELETE" });
  assert.match(await progress.innerText(), /Synced in [\d.]+ s: \d+ apps\./);
  const now = await api("GET", `vppTokens/${demo.id}`);
  assert.equal(now.lastSyncStatus, "completed");
  assert.ok(now.lastSyncDateTime > before, `lastSyncDateTime moved (${before} → ${now.lastSyncDateTime})`);
  await shot("tokens-synced");
});

test("Sync of the expired token fails and says what to do", async () => {
  const row = await tokenRow(kExpiredOrg);
  await row.getByRole("button", { name: `Sync ${kExpiredOrg}` }).click();
  const progress = row.locator('[data-testid="sync-progress"]');
  await progress.locator(".phase.failed").waitFor({ timeout: 60_000 });
  assert.match(await progress.innerText(), /Sync failed after [\d.]+ s\. .*Download a new \.vpptoken/);
});

test("uploads a .vpptoken file, which becomes a token and syncs", async () => {
  // The demo's simulator has a second location that no token uses yet.
  const { locations } = await (await fetch(`${simUrl}/_sim/locations`)).json();
  const known = new Set((await all("vppTokens")).map((t) => t.locationName));
  const spare = locations.find((l) => !known.has(l.name));
  assert.ok(spare, "a location of the simulator without a token");
  const file = path.join(tmpdir(), `console-${process.pid}.vpptoken`);
  writeFileSync(file, spare.tokens[0].sToken);
  const beforeIds = new Set((await all("vppTokens")).map((t) => t.id));
  await page.getByLabel(".vpptoken file", { exact: true }).setInputFiles(file);
  await page.getByRole("button", { name: "Upload" }).click();
  await page.getByRole("status").filter({ hasText: /^Added / }).waitFor();
  const tokens = await all("vppTokens");
  assert.equal(tokens.length, beforeIds.size + 1);
  const added = tokens.find((t) => !beforeIds.has(t.id));
  assert.equal(added.organizationName, spare.orgName, "decoded from the uploaded file");
  await page.locator(`tr[data-token-id="${added.id}"]`).waitFor();
  assert.equal((await settled(added.id)).lastSyncStatus, "completed", "the uploaded token synced");
});

test("lists licences per app and book as bars, and the CSV export matches the Graph API", async () => {
  await page.getByRole("link", { name: "Licences" }).click();
  await page.getByRole("heading", { level: 1, name: "Licences" }).waitFor();
  await page.locator("tr[data-app-id]").first().waitFor();
  const apps = await all("mobileApps", kAskUntracked);
  const books = await all("managedEBooks", kAskUntracked);
  assert.ok(books.length > 0, "the demo's locations hold books");
  assert.ok(
    books.every((b) => !apps.some((a) => a.id === b.id)),
    "a book is a managedEBook, never a mobileApp",
  );
  assert.equal(
    await page.locator("tr[data-app-id]").count(),
    apps.length + books.length,
    "one row per mobileApp and per managedEBook",
  );
  assert.equal(await page.locator('tr[data-kind="book"]').count(), books.length, "books are marked as books");
  const bookRow = page.locator(`tr[data-app-id="${books[0].id}"]`);
  assert.match(await bookRow.innerText(), /Book/);
  assert.ok((await page.locator("meter.bar").count()) > 0, "usage bars");
  await shot("licences");

  // Sorting by name, ascending, is reflected in aria-sort.
  await page.getByRole("button", { name: /^App or book/ }).click();
  assert.equal(await page.locator('th[aria-sort="ascending"]').count(), 1);

  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Export CSV" }).click(),
  ]);
  const csv = parseCsv(readFileSync(await download.path(), "utf8"));
  const [header, ...rows] = csv;
  assert.deepEqual(header, [
    "id",
    "kind",
    "displayName",
    "bundleId",
    "platform",
    "vppTokenId",
    "totalLicenseCount",
    "usedLicenseCount",
    "available",
    "untrackedLicenseCount",
  ]);
  assert.equal(rows.length, apps.length + books.length, "every app and book is in the CSV");
  const byId = new Map([...apps, ...books].map((a) => [a.id, a]));
  const bookIds = new Set(books.map((b) => b.id));
  for (const [id, kind, displayName, bundleId, platform, vppTokenId, total, used, available, untracked] of rows) {
    const app = byId.get(id);
    assert.ok(app, `app or book ${id} of the CSV is in Graph`);
    assert.equal(kind, bookIds.has(id) ? "book" : "app");
    assert.equal(displayName.replace(/^'/, ""), app.displayName);
    assert.equal(bundleId, app.bundleId ?? "");
    assert.equal(platform, app["@odata.type"] === "#microsoft.graph.macOsVppApp" ? "macOS" : "iOS");
    assert.equal(vppTokenId, app.vppTokenId);
    assert.equal(Number(total), app.totalLicenseCount);
    assert.equal(Number(used), app.usedLicenseCount);
    const expected =
      app.totalLicenseCount === 2147483647
        ? "unlimited"
        : String(Math.max(0, app.totalLicenseCount - app.usedLicenseCount));
    assert.equal(available, expected);
    assert.equal(typeof app[kUntracked], "number", `Graph counts ${id}'s untracked licences`);
    assert.equal(Number(untracked), app[kUntracked], `${id}'s untracked licences`);
  }
  assert.ok(
    rows.some((r) => Number(r[9]) > 0),
    "the demo's locations hold licences vppd did not grant",
  );

  // The kind filter shows books only.
  await page.getByLabel("Kind").selectOption("book");
  assert.equal(await page.locator("tr[data-app-id]").count(), books.length);
  assert.equal(await page.locator('tr[data-kind="app"]').count(), 0);
  await page.getByLabel("Kind").selectOption("");

  // Filtering narrows the table.
  const sample = apps.find((a) => a.bundleId);
  await page.getByLabel("Search").fill(sample.bundleId);
  const expected = apps.filter(
    (a) =>
      (a.bundleId ?? "").toLowerCase().includes(sample.bundleId.toLowerCase()) ||
      a.displayName.toLowerCase().includes(sample.bundleId.toLowerCase()),
  ).length;
  assert.equal(await page.locator("tr[data-app-id]").count(), expected);
  await page.getByLabel("Search").fill("");
});

test("shows each app's and book's untracked licences, and lists them as Graph does", async () => {
  await page.getByRole("link", { name: "Tokens" }).click();
  await page.getByRole("link", { name: "Licences" }).click();
  await page.locator("tr[data-app-id]").first().waitFor();
  const apps = await all("mobileApps", kAskUntracked);
  const books = await all("managedEBooks", kAskUntracked);
  for (const item of [...apps, ...books]) {
    const cell = page.locator(`tr[data-app-id="${item.id}"] td[data-label="Untracked"]`);
    assert.equal((await cell.innerText()).trim(), String(item[kUntracked]), `${item.displayName}'s count`);
  }
  const total = [...apps, ...books].reduce((n, a) => n + a[kUntracked], 0);
  assert.match(await page.locator("p.summary").innerText(), new RegExp(`· ${total} untracked`));

  // The app and the book with the most: pressing the count lists them, in Graph's order.
  const most = (list) => list.reduce((a, b) => (b[kUntracked] > a[kUntracked] ? b : a));
  for (const [item, set] of [
    [most(apps), "mobileApps"],
    [most(books), "managedEBooks"],
  ]) {
    if (item[kUntracked] === 0) continue;
    const listed = await all(`${set}/${item.id}/vppd.untrackedLicenses()`);
    assert.equal(listed.length, item[kUntracked], "the function lists what the annotation counts");
    const button = page.locator(`tr[data-app-id="${item.id}"] td[data-label="Untracked"] button`);
    assert.equal(await button.getAttribute("aria-expanded"), "false");
    await button.click();
    assert.equal(await button.getAttribute("aria-expanded"), "true");
    const detail = page.locator(`#untracked-${item.id}`);
    await detail.locator("tr[data-untracked]").first().waitFor();
    const shown = await detail.locator("tr[data-untracked]").evaluateAll((rows) =>
      rows.map((r) => r.getAttribute("data-untracked")),
    );
    assert.deepEqual(
      shown,
      listed.map((l) => l.serialNumber ?? l.clientUserId),
    );
    if (set === "mobileApps") await shot("licences-untracked");
    await button.click(); // and closes them again
    assert.equal(await detail.count(), 0);
  }
});

test("Assignments shows an app's assignments and the licences held per user and device", async () => {
  await page.getByRole("link", { name: "Assignments" }).click();
  await page.getByRole("heading", { level: 1, name: "Assignments" }).waitFor();
  const apps = await all("mobileApps");
  const most = Math.max(...apps.map((a) => a.usedLicenseCount));
  const select = page.getByRole("combobox", { name: /^App/ });
  await page.waitForFunction(() => document.querySelector("select")?.value);
  const chosen = await select.inputValue();
  const busiest = apps.find((a) => a.id === chosen);
  assert.equal(busiest.usedLicenseCount, most, "an app with the most licences in use first");
  await page.locator("tr[data-licence-id]").first().waitFor();
  const cast = busiest["@odata.type"].slice(1);
  const held = await all(`mobileApps/${busiest.id}/${cast}/assignedLicenses`);
  assert.equal(await page.locator("tr[data-licence-id]").count(), Math.min(200, held.length));
  const devices = held.filter((l) => l.deviceName).length;
  assert.match(
    await page.locator("#held-h + p").innerText(),
    new RegExp(`^${held.length} licences: ${held.length - devices} users, ${devices} devices`),
  );
  // The assignments as Graph lists them.
  const { length } = await all(`mobileApps/${busiest.id}/assignments`);
  await page.locator("table.assignments, #assign-h + p").first().waitFor();
  assert.equal(await page.locator("tr[data-assignment-id]").count(), length);
  assert.equal(await page.getByTestId("assignments-unavailable").count(), 0);
  await shot("assignments");
  // Another app through the select.
  const other = apps.find((a) => a.id !== busiest.id && a.usedLicenseCount > 0);
  await select.selectOption(other.id);
  const otherHeld = await all(`mobileApps/${other.id}/${other["@odata.type"].slice(1)}/assignedLicenses`);
  await page.waitForFunction(
    (n) => document.querySelectorAll("tr[data-licence-id]").length === n,
    Math.min(200, otherHeld.length),
  );
});

async function sim(method, route, body) {
  const response = await fetch(`${simUrl}/_sim/${route}`, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`simulator ${method} ${route}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

test("Assignments shows where each targeted device's licence stands, failures with Apple's reason", async () => {
  // An iOS app of the demo's location that Apple licenses to devices, with exactly one licence
  // left (the simulator's purchase/refund, then a sync), assigned to a group of two iPads.
  const [demo] = (await all("vppTokens")).filter((t) => t.displayName === kDemoName);
  const { locations } = await sim("GET", "locations");
  const location = locations.find((l) => l.name === demo.locationName);
  assert.ok(location, `the simulator's location named ${demo.locationName}`);
  const [{ assets }] = (await sim("GET", `locations/${location.uId}/export`)).locations;
  const adamIds = assets.map((a) => a.adamId);
  const apps = (await all("mobileApps")).filter((a) => a.vppTokenId === demo.id);
  const asset = assets.find(
    (a) =>
      a.deviceAssignable &&
      !a.unlimited &&
      adamIds.indexOf(a.adamId) === adamIds.lastIndexOf(a.adamId) &&
      apps.some((x) => x["@odata.type"] === "#microsoft.graph.iosVppApp" && x.appStoreUrl.endsWith(`/id${a.adamId}`)),
  );
  assert.ok(asset, "an iOS asset Apple licenses to devices");
  const app = apps.find((x) => x["@odata.type"] === "#microsoft.graph.iosVppApp" && x.appStoreUrl.endsWith(`/id${asset.adamId}`));
  const bought = await sim("POST", `locations/${location.uId}/purchase`, { adamId: asset.adamId, count: 1 });
  if (bought.availableCount > 1) {
    await sim("POST", `locations/${location.uId}/refund`, { adamId: asset.adamId, count: bought.availableCount - 1 });
  }
  await api("POST", `vppTokens/${demo.id}/syncLicenses`);
  await settled(demo.id);

  const directory = `${base}/v1.0`;
  const group = await api("POST", `${directory}/groups`, {
    displayName: "Console iPads",
    mailEnabled: false,
    mailNickname: "console-ipads",
    securityEnabled: true,
  });
  const managed = [];
  for (const n of [1, 2]) {
    const device = await api("POST", `${directory}/devices`, {
      accountEnabled: true,
      deviceId: crypto.randomUUID(),
      displayName: `Console iPad ${n}`,
      operatingSystem: "iPadOS",
    });
    managed.push(
      await api("POST", `${directory}/deviceManagement/managedDevices`, {
        serialNumber: `CONSOLE${n}${Date.now()}`,
        deviceName: `Console iPad ${n}`,
        azureADDeviceId: device.deviceId,
      }),
    );
    await api("POST", `${directory}/groups/${group.id}/members/$ref`, {
      "@odata.id": `https://graph.microsoft.com/v1.0/directoryObjects/${device.id}`,
    });
  }
  await api("POST", `mobileApps/${app.id}/assign`, {
    mobileAppAssignments: [
      {
        intent: "required",
        target: { "@odata.type": "#microsoft.graph.groupAssignmentTarget", groupId: group.id },
        settings: { "@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings", useDeviceLicensing: true },
      },
    ],
  });
  // The reconcile job grants the one licence to the earliest member; the other fails with 9709.
  let statuses = [];
  for (let i = 0; i < 150; ++i) {
    statuses = await all(`mobileApps/${app.id}/deviceStatuses`);
    if (statuses.map((s) => s.installState).join() === "installed,failed") break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual(
    statuses.map((s) => [s.id, s.installState, s.errorCode]),
    [
      [managed[0].id, "installed", 0],
      [managed[1].id, "failed", 9709],
    ],
  );

  await page.getByRole("link", { name: "Tokens" }).click();
  await page.getByRole("link", { name: "Assignments" }).click();
  await page.getByRole("heading", { level: 1, name: "Assignments" }).waitFor();
  await page.waitForFunction(() => document.querySelector("select")?.value);
  await page.getByRole("combobox", { name: /^App/ }).selectOption(app.id);
  await page.locator(`tr[data-device-id="${managed[1].id}"]`).waitFor();
  assert.equal(await page.locator("tr[data-assignment-id]").count(), 1);
  assert.match(await page.locator("tr[data-assignment-id]").innerText(), /Group[\s\S]*required[\s\S]*per device/);
  assert.match(await page.getByTestId("device-states").innerText(), /^2 devices: 1 licence granted, 1 failed$/);
  const granted = page.locator(`tr[data-device-id="${managed[0].id}"]`);
  assert.equal(await granted.getAttribute("data-state"), "installed");
  assert.match(await granted.innerText(), /Console iPad 1[\s\S]*Licence granted/);
  const failed = page.locator(`tr[data-device-id="${managed[1].id}"]`);
  assert.match(await failed.innerText(), /Console iPad 2[\s\S]*Failed[\s\S]*not enough licences.*\(Apple 9709\)/);
  await shot("assignments-devices");
});

test("Assignments shows where each targeted person's licence stands, and groups by name", async () => {
  // An iOS app of the demo's location with licences bought here (then a sync), assigned with
  // licensing per user to a group of people made through Graph: two Apple invites, and one
  // whose mail Apple refuses (9717).
  const [demo] = (await all("vppTokens")).filter((t) => t.displayName === kDemoName);
  const { locations } = await sim("GET", "locations");
  const location = locations.find((l) => l.name === demo.locationName);
  const [{ assets }] = (await sim("GET", `locations/${location.uId}/export`)).locations;
  const adamIds = assets.map((a) => a.adamId);
  const iosApps = (await all("mobileApps")).filter(
    (a) => a.vppTokenId === demo.id && a["@odata.type"] === "#microsoft.graph.iosVppApp",
  );
  const appOf = (asset) => iosApps.find((x) => x.appStoreUrl.endsWith(`/id${asset.adamId}`));
  // The last such asset: the device test above took the first.
  const asset = assets.findLast(
    (a) => !a.unlimited && adamIds.indexOf(a.adamId) === adamIds.lastIndexOf(a.adamId) && appOf(a),
  );
  assert.ok(asset, "an iOS app of the demo's location");
  const app = appOf(asset);
  await sim("POST", `locations/${location.uId}/purchase`, { adamId: asset.adamId, count: 2 });
  await api("POST", `vppTokens/${demo.id}/syncLicenses`);
  await settled(demo.id);

  const directory = `${base}/v1.0`;
  const group = await api("POST", `${directory}/groups`, {
    displayName: "Console Teachers",
    mailEnabled: false,
    mailNickname: "console-teachers",
    securityEnabled: true,
  });
  const member = async (name, mail) => {
    const upn = `console.${name.toLowerCase()}.${Date.now()}@contoso.example`;
    const user = await api("POST", `${directory}/users`, {
      accountEnabled: true,
      displayName: `Console ${name}`,
      mailNickname: `console-${name.toLowerCase()}`,
      userPrincipalName: upn,
      mail: mail ?? upn,
    });
    await api("POST", `${directory}/groups/${group.id}/members/$ref`, {
      "@odata.id": `https://graph.microsoft.com/v1.0/directoryObjects/${user.id}`,
    });
    return user;
  };
  const people = [await member("Ann"), await member("Bob")];
  const [ann, bob] = people;
  await api("POST", `mobileApps/${app.id}/assign`, {
    mobileAppAssignments: [
      {
        intent: "required",
        target: { "@odata.type": "#microsoft.graph.groupAssignmentTarget", groupId: group.id },
        settings: { "@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings", useDeviceLicensing: false },
      },
    ],
  });
  // The reconcile job registers both at Apple, where they are invited.
  const standing = async (user) => (await api("GET", `${directory}/users/${user.id}/vppUserStatus`)).locations[0];
  let where = [];
  for (let i = 0; i < 150; ++i) {
    where = [await standing(ann), await standing(bob)];
    if (where.every((w) => w?.status === "Registered")) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual(
    where.map((w) => w?.status),
    ["Registered", "Registered"],
    "both registered at Apple and invited",
  );
  // Carl joins later (Apple refuses a whole users/create that holds a bad email), with a mail
  // that is no address.
  const carl = await member("Carl", "console-carl.contoso.example");
  let refusal;
  for (let i = 0; i < 150 && refusal?.status !== "failed"; ++i) {
    refusal = await standing(carl);
    if (refusal?.status !== "failed") await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual([refusal?.status, refusal?.errorCode], ["failed", "9717"], "Apple refused Carl");

  await page.getByRole("link", { name: "Tokens" }).click();
  await page.getByRole("link", { name: "Assignments" }).click();
  await page.getByRole("heading", { level: 1, name: "Assignments" }).waitFor();
  await page.waitForFunction(() => document.querySelector("select")?.value);
  await page.getByRole("combobox", { name: /^App/ }).selectOption(app.id);
  const row = (user) => page.locator(`tr[data-user-id="${user.id}"]`);
  await row(bob).waitFor();
  for (const [i, user] of people.entries()) {
    assert.equal(await row(user).getAttribute("data-state"), "invited");
    assert.deepEqual(await row(user).locator("th, td").allInnerTexts(), [
      `${user.userPrincipalName} ${user.displayName}`,
      "Waiting for the invitation",
      `not accepted yet, registered as ${user.userPrincipalName} · Apple's invitation`,
    ]);
    const link = row(user).getByRole("link", { name: "Apple's invitation" });
    assert.equal(await link.getAttribute("href"), where[i].inviteUrl);
  }
  assert.equal(await row(carl).getAttribute("data-state"), "failed");
  assert.deepEqual(await row(carl).locator("th, td").allInnerTexts(), [
    `${carl.userPrincipalName} Console Carl`,
    "Failed",
    "Apple refused the person: the email address is not valid: correct the user's mail or userPrincipalName (Apple 9717)",
  ]);
  assert.equal(
    await page.getByTestId("people-states").innerText(),
    "3 people: 2 waiting for the invitation, 1 failed",
  );
  // The group by its name, read once the assignments are in.
  const groupCell = page.locator(`td[data-group-id="${group.id}"]`);
  await page.waitForFunction(
    (id) => document.querySelector(`td[data-group-id="${id}"]`)?.textContent === "Console Teachers",
    group.id,
  );
  assert.deepEqual(await page.locator("tr[data-assignment-id]").locator("th, td").allInnerTexts(), [
    "Group",
    "Console Teachers",
    "required",
    "per user",
  ]);
  assert.doesNotMatch(await page.locator("table.assignments").innerText(), new RegExp(group.id));
  assert.equal(await groupCell.locator("span").getAttribute("title"), group.id);
  await shot("assignments-people-waiting");

  // Ann accepts Apple's invitation (the test plays her at the simulator); vppd associates her
  // licence, and Refresh shows it granted. Bob still waits.
  await sim("POST", `locations/${location.uId}/acceptInvitation`, { clientUserIds: [ann.id] });
  let statuses = [];
  for (let i = 0; i < 300; ++i) {
    statuses = await all(`mobileApps/${app.id}/userStatuses`);
    if (statuses[0]?.installedDeviceCount === 1) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual(
    statuses.map((s) => [s.id, s.installedDeviceCount, s.failedDeviceCount, s.notInstalledDeviceCount]),
    [
      [ann.id, 1, 0, 0],
      [bob.id, 0, 0, 1],
      [carl.id, 0, 1, 0],
    ],
    "Ann's licence granted, as Graph reports it",
  );
  assert.equal(await row(ann).getAttribute("data-state"), "invited", "the page shows what it read until refreshed");
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.locator(`tr[data-user-id="${ann.id}"][data-state="granted"]`).waitFor();
  assert.deepEqual(await row(ann).locator("td").allInnerTexts(), ["Licence granted", "—"]);
  assert.equal(await row(bob).getAttribute("data-state"), "invited");
  assert.equal(
    await page.getByTestId("people-states").innerText(),
    "3 people: 1 licence granted, 1 waiting for the invitation, 1 failed",
  );
  await shot("assignments-people");

  // A console that may not read groups or users (403, as vppd answers a token without the
  // scopes): the group by its id, Bob only "not granted yet", Carl failed without a reason, and
  // the page says what is missing.
  const refused = { error: { code: "Authorization_RequestDenied", message: "Insufficient privileges." } };
  const refuse = (route) => route.fulfill({ status: 403, contentType: "application/json", body: JSON.stringify(refused) });
  await page.route(`${base}/beta/groups/*`, refuse);
  await page.route(`${base}/beta/users/*/vppUserStatus`, refuse);
  try {
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.locator(`tr[data-user-id="${bob.id}"][data-state="notGranted"]`).waitFor();
    assert.deepEqual(await row(bob).locator("td").allInnerTexts(), ["Not granted yet", "—"]);
    assert.equal(await row(ann).getAttribute("data-state"), "granted");
    assert.deepEqual(await row(carl).locator("td").allInnerTexts(), ["Failed", "—"]);
    await page.getByText("Groups are shown by id").waitFor();
    assert.equal(await groupCell.innerText(), group.id);
    assert.match(await page.locator("#people-h ~ p.hint").innerText(), /Reading users \(User\.Read\.All\)/);
    assert.equal(await page.getByRole("alert").count(), 0, "a refusal is not an error");
  } finally {
    await page.unrouteAll();
  }
});

test("Activity lists the tokenActionResults history", async () => {
  await page.getByRole("link", { name: "Activity" }).click();
  await page.getByRole("heading", { level: 1, name: "Activity" }).waitFor();
  const tokens = await all("vppTokens");
  const entries = tokens.reduce((n, t) => n + t.tokenActionResults.length, 0);
  await page.locator("table.activity tbody tr").first().waitFor();
  assert.equal(await page.locator("table.activity tbody tr").count(), entries);
  assert.ok((await page.locator("table.activity tbody tr", { hasText: "syncLicenses" }).count()) > 0);
  await shot("activity");
});

test("is usable by keyboard", async () => {
  // Navigation: Tab moves along the links, Enter follows one.
  await page.getByRole("link", { name: "Tokens" }).focus();
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Licences");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { level: 1, name: "Licences" }).waitFor();
  // A column header sorts from the keyboard.
  await page.getByRole("button", { name: /^Purchased/ }).focus();
  await page.keyboard.press("Enter");
  assert.equal(await page.locator('th[aria-sort="descending"]').innerText(), "Purchased ▼");
  // The skip link shows when focused and takes focus to the content.
  await page.locator("a.skip").focus();
  const box = await page.locator("a.skip").boundingBox();
  assert.ok(box && box.x >= 0 && box.y >= 0, "the focused skip link is on screen");
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "main");
  await page.getByRole("link", { name: "Tokens" }).focus();
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { level: 1, name: "Tokens" }).waitFor();
});

test("renews a token from a .vpptoken file", async () => {
  const [expired] = (await all("vppTokens")).filter((t) => t.organizationName === kExpiredOrg);
  const file = path.join(tmpdir(), `console-renew-${process.pid}.vpptoken`);
  writeFileSync(file, sToken("expired-console", "2031-06-30T00:00:00+0000", kExpiredOrg) + "\n");
  const row = page.locator(`tr[data-token-id="${expired.id}"]`);
  await row.getByLabel(`Renew ${kExpiredOrg} with a .vpptoken file`).setInputFiles(file);
  await page.getByRole("status").filter({ hasText: `Renewed ${kExpiredOrg}` }).waitFor();
  const renewed = await api("GET", `vppTokens/${expired.id}`);
  assert.equal(renewed.expirationDateTime, "2031-06-30T00:00:00Z", "PATCH carried the new sToken");
  await row.locator(".expiry:not(.expired)").waitFor();
  await settled(expired.id);
});

test("deletes a token only after confirmation", async () => {
  const [expired] = (await all("vppTokens")).filter((t) => t.organizationName === kExpiredOrg);
  const row = page.locator(`tr[data-token-id="${expired.id}"]`);
  await row.getByRole("button", { name: /^Delete / }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  await shot("delete-confirmation");
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await dialog.waitFor({ state: "hidden" });
  assert.equal((await api("GET", `vppTokens/${expired.id}`)).id, expired.id, "Cancel keeps the token");

  await row.getByRole("button", { name: /^Delete / }).click();
  await dialog.getByRole("button", { name: "Delete token" }).click();
  await row.waitFor({ state: "detached" });
  const response = await fetch(`${graph}/vppTokens/${expired.id}`, {
    headers: { Authorization: `Bearer ${process.env.VPPD_TOKEN}` },
  });
  assert.equal(response.status, 404, "deleted in Graph");
});

test("every control on every page has an accessible name", async () => {
  for (const hash of ["#/tokens", "#/licences", "#/assignments", "#/activity"]) {
    await page.evaluate((h) => (window.location.hash = h), hash);
    await page.locator("tbody tr").first().waitFor();
    const unnamed = await page.evaluate(() =>
      [...document.querySelectorAll("a, button, input, select, textarea, meter, progress")]
        .filter((el) => {
          const labelled = el.labels && [...el.labels].some((l) => l.textContent.trim());
          return !(labelled || el.getAttribute("aria-label") || el.textContent.trim() || el.title);
        })
        .map((el) => el.outerHTML.slice(0, 120)),
    );
    assert.deepEqual(unnamed, [], `${hash}: controls without a name`);
    assert.equal(await page.locator("h1").count(), 1, `${hash}: one h1`);
    assert.equal(await page.locator("main").count(), 1, `${hash}: one main landmark`);
  }
});

test("fits a phone's width", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [hash, name] of [
    ["#/tokens", "phone-tokens"],
    ["#/licences", "phone-licences"],
    ["#/assignments", "phone-assignments"],
  ]) {
    await page.evaluate((h) => (window.location.hash = h), hash);
    await page.locator("tbody tr").first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${name}: no horizontal scrolling (${overflow}px too wide)`);
    await shot(name);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
});

test("the strict Content-Security-Policy held: no violation, no script error", () => {
  assert.deepEqual(cspViolations, []);
  assert.deepEqual(pageErrors, []);
});
