// The console's sign-in outside --dev: OAuth 2.0 authorization code with PKCE, in chromium,
// against an issuer this test runs (discovery, /authorize, /token; it checks the PKCE
// challenge and signs Entra-shaped access tokens with a key vppd trusts through
// --auth-jwks-file). vppd runs without --dev, so /console/dev-token is not there.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const vppdBin = path.join(process.env.VPPD_BIN_DIR, "vppd");
const kTenant = "5b6c7d8e-1f20-4a3b-9c4d-5e6f70819203";
const kClientId = "vppd-console-test";
const kScopes = "openid api://vppd/DeviceManagementServiceConfig.ReadWrite.All";
const b64url = (buf) => Buffer.from(buf).toString("base64url");

// --- the issuer -------------------------------------------------------------------------

const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const kid = "console-oidc-test";
const codes = new Map(); // code → {challenge, clientId, redirectUri}
const seen = { authorize: [], token: [] };
let refuse = null; // an `error` the next /authorize answers with

function accessToken() {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: "JWT", alg: "RS256", kid };
  const claims = {
    aud: "https://graph.microsoft.com",
    iss: `https://sts.windows.net/${kTenant}/`,
    iat: now,
    nbf: now,
    exp: now + 3600,
    tid: kTenant,
    oid: "0a11ce00-5eed-4d3e-8f00-0000000c0501",
    appid: "de7c11e0-0000-4000-8000-0000000c0501",
    scp: "DeviceManagementServiceConfig.ReadWrite.All DeviceManagementApps.ReadWrite.All",
    idtyp: "user",
    ver: "1.0",
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(sign("sha256", Buffer.from(input), privateKey))}`;
}

let issuerUrl;
const issuer = createServer((req, res) => {
  const url = new URL(req.url, issuerUrl);
  // A browser app calls discovery and /token cross-origin: the issuer allows it, as Entra does.
  res.setHeader("Access-Control-Allow-Origin", "*");
  if (url.pathname === "/tenant/.well-known/openid-configuration") {
    res.setHeader("Content-Type", "application/json");
    res.end(
      JSON.stringify({
        issuer: `${issuerUrl}/tenant`,
        authorization_endpoint: `${issuerUrl}/tenant/authorize`,
        token_endpoint: `${issuerUrl}/tenant/token`,
        code_challenge_methods_supported: ["S256"],
      }),
    );
    return;
  }
  if (url.pathname === "/tenant/authorize") {
    const q = Object.fromEntries(url.searchParams);
    seen.authorize.push(q);
    const back = new URL(q.redirect_uri);
    back.searchParams.set("state", q.state ?? "");
    if (refuse) {
      back.searchParams.set("error", refuse);
      refuse = null;
    } else {
      const code = b64url(randomBytes(16));
      codes.set(code, { challenge: q.code_challenge, clientId: q.client_id, redirectUri: q.redirect_uri });
      back.searchParams.set("code", code);
    }
    res.writeHead(302, { Location: back.toString() });
    res.end();
    return;
  }
  if (url.pathname === "/tenant/token" && req.method === "POST") {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const form = Object.fromEntries(new URLSearchParams(body));
      seen.token.push(form);
      const issued = codes.get(form.code);
      codes.delete(form.code);
      const verifierOk =
        issued && form.code_verifier && b64url(createHash("sha256").update(form.code_verifier).digest()) === issued.challenge;
      res.setHeader("Content-Type", "application/json");
      if (
        form.grant_type !== "authorization_code" ||
        !verifierOk ||
        form.client_id !== issued.clientId ||
        form.redirect_uri !== issued.redirectUri
      ) {
        res.statusCode = 400;
        res.end(JSON.stringify({ error: "invalid_grant", error_description: "PKCE or code check failed" }));
        return;
      }
      res.end(JSON.stringify({ access_token: accessToken(), token_type: "Bearer", expires_in: 3600 }));
    });
    return;
  }
  res.statusCode = 404;
  res.end();
});

// --- vppd without --dev, trusting the issuer's key ---------------------------------------

let workdir;
let vppd;
let vppdUrl;
let browser;
let page;

function startVppd(jwksFile, dataDir) {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      vppdBin,
      [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dataDir,
        "--threads",
        "2",
        "--auth-jwks-file",
        jwksFile,
        "--console-oidc-issuer",
        `${issuerUrl}/tenant`,
        "--console-oidc-client-id",
        kClientId,
        "--console-oidc-scopes",
        kScopes,
      ],
      { stdio: ["ignore", "pipe", "ignore"] },
    );
    let out = "";
    const timer = setTimeout(() => reject(new Error(`vppd did not start: ${out}`)), 20_000);
    proc.stdout.on("data", (chunk) => {
      out += chunk;
      const m = out.match(/vppd listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: m[1] });
      }
    });
    proc.on("exit", (code) => reject(new Error(`vppd exited with ${code}: ${out}`)));
  });
}

before(async () => {
  await new Promise((resolve) => issuer.listen(0, "127.0.0.1", resolve));
  issuerUrl = `http://127.0.0.1:${issuer.address().port}`;
  workdir = mkdtempSync(path.join(tmpdir(), "vppd-console-oidc-"));
  const jwksFile = path.join(workdir, "jwks.json");
  const jwk = publicKey.export({ format: "jwk" });
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...jwk, kid, use: "sig", alg: "RS256" }] }));
  const dataDir = path.join(workdir, "data");
  ({ proc: vppd, url: vppdUrl } = await startVppd(jwksFile, dataDir));
  const added = spawnSync(vppdBin, ["tenant", "add", kTenant, "--name", "OIDC tenant", "--data-dir", dataDir]);
  assert.equal(added.status, 0, String(added.stderr));
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true });
  page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
});

after(async () => {
  await browser?.close();
  vppd?.kill("SIGTERM");
  issuer.close();
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

test("without --dev there is no dev sign-in, only the issuer's", async () => {
  await page.goto(`${vppdUrl}/`);
  await page.getByRole("heading", { name: "Organisation sign-in" }).waitFor();
  assert.equal(await page.getByRole("button", { name: "Sign in with the dev key" }).count(), 0);
  const response = await fetch(`${vppdUrl}/console/dev-token`, { method: "POST" });
  assert.equal(response.status, 404);
});

test("signs in with authorization code + PKCE and calls Graph with the token", async () => {
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("heading", { level: 1, name: "Tokens" }).waitFor();
  await page.getByText("No tokens yet").waitFor(); // GET /vppTokens answered for the issuer's tenant

  const asked = seen.authorize.at(-1);
  assert.equal(asked.response_type, "code");
  assert.equal(asked.client_id, kClientId);
  assert.equal(asked.redirect_uri, `${vppdUrl}/`);
  assert.equal(asked.scope, kScopes);
  assert.equal(asked.code_challenge_method, "S256");
  assert.match(asked.code_challenge, /^[A-Za-z0-9_-]{43}$/);
  assert.ok(asked.state.length >= 32, "an unguessable state");
  const exchanged = seen.token.at(-1);
  assert.match(exchanged.code_verifier, /^[A-Za-z0-9_-]{43,128}$/);

  // The code is gone from the address bar, and nothing was left in storage.
  assert.equal(new URL(page.url()).search, "");
  const stored = await page.evaluate(() => localStorage.length + sessionStorage.length + document.cookie.length);
  assert.equal(stored, 0);
});

test("a refusal by the issuer is shown, and nothing is signed in", async () => {
  await page.getByRole("button", { name: "Sign out" }).click();
  refuse = "access_denied";
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("alert").filter({ hasText: "The issuer refused sign-in: access_denied" }).waitFor();
  assert.equal(await page.getByRole("heading", { level: 1, name: "Tokens" }).count(), 0);
});

test("an answer that does not match the request (state) is refused", async () => {
  const before = seen.token.length;
  await page.goto(`${vppdUrl}/?code=forged&state=forged`);
  await page.getByRole("alert").filter({ hasText: "does not match the request" }).waitFor();
  assert.equal(seen.token.length, before, "the forged code was not exchanged");
});
