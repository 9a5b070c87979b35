// The console's first load in Debian's chromium (playwright-core), against a running demo:
// every round is a fresh browser context (empty cache), so it is a first visit each time.
// Measures what crosses the wire before sign-in (the bytes vppd sends, and what gzip -9 makes
// of them) and, from the page's own clock (performance marks the app sets, relative to the
// start of navigation): interactive = the sign-in button rendered, the app having started
// and read /console/config.json; then, after the one click, the Tokens page with its data.
//
//   node load.mjs URL ROUNDS          (bench/console/run starts the demo and calls this)
import { gzipSync } from "node:zlib";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
// playwright-core is the browser tests' (tests/console/package-lock.json); run installs it.
const require = createRequire(path.join(here, "..", "..", "tests", "console", "package.json"));
const { chromium } = require("playwright-core");

const [base, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 10);
const budget = { bytes: 300 * 1024, interactiveMs: 1000 };

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true });
const results = [];
for (let round = 0; round < rounds; ++round) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const bodies = new Map();
  page.on("response", async (response) => {
    const url = new URL(response.url());
    if (url.origin !== new URL(base).origin || url.pathname.startsWith("/beta/")) return;
    try {
      bodies.set(url.pathname, await response.body());
    } catch {
      // a 304 or a redirect has no body
    }
  });
  await page.goto(`${base}/`, { waitUntil: "load" });
  const button = page.getByRole("button", { name: "Sign in with the dev key" });
  await button.waitFor();
  const mark = (name) =>
    page.evaluate((n) => performance.getEntriesByName(n)[0]?.startTime ?? NaN, name);
  const interactive = await mark("vppd-console-interactive");
  const nav = await page.evaluate(() => {
    const n = performance.getEntriesByType("navigation")[0];
    return { responseEnd: n.responseEnd, domContentLoaded: n.domContentLoadedEventEnd, load: n.loadEventEnd };
  });
  await page.waitForTimeout(100); // let the response handlers finish reading bodies
  let bytes = 0;
  let gzipped = 0;
  for (const body of bodies.values()) {
    bytes += body.length;
    gzipped += gzipSync(body, { level: 9 }).length;
  }
  const files = [...bodies.keys()];
  const clicked = await page.evaluate(() => performance.now());
  await button.click();
  await page.locator("tr[data-token-id]").first().waitFor();
  const tokensShown = (await mark("vppd-console-tokens")) - clicked;
  results.push({ interactive, tokensShown, bytes, gzipped, files, ...nav });
  await context.close();
}
await browser.close();

const sorted = (key) => results.map((r) => r[key]).sort((a, b) => a - b);
const median = (key) => Math.round(sorted(key)[Math.floor(results.length / 2)]);
const max = (key) => Math.round(sorted(key)[results.length - 1]);
const p90 = (key) => Math.round(sorted(key)[Math.min(results.length - 1, Math.ceil(results.length * 0.9) - 1)]);
const first = results[0];
console.log(`files of the first load: ${first.files.join(" ")}`);
console.log(`bytes sent by vppd: ${first.bytes} (gzip -9 of the same: ${first.gzipped}); budget ${budget.bytes} compressed`);
console.log(`rounds: ${rounds}, each a fresh browser context (empty cache)`);
for (const key of ["responseEnd", "domContentLoaded", "load", "interactive", "tokensShown"]) {
  const cells = [["median", median(key)], ["p90", p90(key)], ["max", max(key)]];
  console.log(`${key.padEnd(17)} ${cells.map(([n, v]) => `${n} ${String(v).padStart(5)} ms`).join("   ")}`);
}
const ok = first.bytes <= budget.bytes && median("interactive") <= budget.interactiveMs;
console.log(
  `verdict: ${ok ? "met" : "NOT met"} (≤ ${budget.bytes} bytes: ${first.bytes}; interactive ≤ ${budget.interactiveMs} ms: median ${median("interactive")} ms, p90 ${p90("interactive")} ms, max ${max("interactive")} ms)`,
);
process.exit(ok ? 0 : 1);
