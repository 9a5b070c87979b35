// A vppd of a test's own, for tests that must kill and restart it or run it on another store:
// `vppd serve --dev` on 127.0.0.1 port 0 with its own data dir, on SQLite or on a fresh
// PostgreSQL database of the server VPPD_TEST_DATABASE_URL names (tests/clients/run starts one
// when none is given), pointed at the suite's simulator. The same rules as tests/lib/harness.py:
// the address is read from the first stdout line, the CLI runs on the same data dir and database.
//
//   const vppd = await new Vppd({ store: "postgresql", args: ["--sync-lease-seconds", "2"] }).start();
//   vppd.devToken("Group.ReadWrite.All"); vppd.url; await vppd.kill9(); await vppd.start();
//   await vppd.cleanup();
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const BIN_DIR = process.env.VPPD_BIN_DIR || resolve(HERE, "..", "..", "..", "build", "bin");
const VPPD = join(BIN_DIR, "vppd");

export const STORES = ["sqlite", "postgresql"];

function psql(url, sql) {
  return execFileSync("psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
    { encoding: "utf8", timeout: 60_000, stdio: ["ignore", "pipe", "pipe"] }).trim();
}

function databaseUrl(adminUrl, name) {
  const u = new URL(adminUrl);
  u.pathname = "/" + name;
  return u.toString();
}

// A fresh database on the test PostgreSQL server; fails (does not skip) when there is none.
function createDatabase() {
  const admin = process.env.VPPD_TEST_DATABASE_URL;
  if (!admin) throw new Error("VPPD_TEST_DATABASE_URL is not set: run the suite through tests/clients/run");
  const name = "vppd_clients_" + randomBytes(6).toString("hex");
  psql(admin, `CREATE DATABASE ${name}`);
  return { name, url: databaseUrl(admin, name) };
}

export class Vppd {
  constructor({ store = "sqlite", args = [] } = {}) {
    this.store = store;
    this.args = args;
    this.env = { ...process.env };
    delete this.env.VPPD_DATABASE_URL;
    if (store === "postgresql") {
      this.database = createDatabase();
      this.env.VPPD_DATABASE_URL = this.database.url;
    } else if (store !== "sqlite") {
      throw new Error(`unknown store ${store}`);
    }
    this.dataDir = mkdtempSync(join(tmpdir(), "vppd-clients-"));
    this.logPath = join(this.dataDir, "stderr.log");
    this.proc = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  // Starts `vppd serve` and resolves once it announced its address (15 s at most).
  async start() {
    const log = openSync(this.logPath, "a");
    const proc = spawn(VPPD, ["serve", "--listen", "127.0.0.1:0", "--data-dir", this.dataDir, "--threads", "2",
      "--dev", ...this.args], { env: this.env, stdio: ["ignore", "pipe", log] });
    closeSync(log);
    this.proc = proc;
    this.exited = new Promise((done) => proc.once("exit", (code, signal) => done({ code, signal })));
    this.port = await new Promise((done, fail) => {
      let seen = "";
      const timer = setTimeout(() => fail(new Error(`vppd did not announce its address in 15 s: ${this.log()}`)),
        15_000);
      proc.stdout.on("data", (chunk) => {
        if (seen === null) return; // announced; the rest is drained
        seen += chunk.toString();
        const m = seen.match(/vppd listening on http:\/\/[^\s:]+:(\d+)/);
        if (m) {
          clearTimeout(timer);
          seen = null;
          done(Number(m[1]));
        }
      });
      proc.once("exit", (code, signal) => {
        clearTimeout(timer);
        fail(new Error(`vppd exited (${code ?? signal}) before announcing its address: ${this.log()}`));
      });
    });
    return this;
  }

  // kill -9: no shutdown of any kind; resolves once the process is gone.
  async kill9() {
    return this.#stop("SIGKILL");
  }

  async stop() {
    return this.#stop("SIGTERM");
  }

  async #stop(signal) {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(signal);
    let timer;
    const timeout = new Promise((done) => { timer = setTimeout(() => done("timeout"), 15_000); });
    const outcome = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      this.proc.kill("SIGKILL");
      await this.exited;
      throw new Error(`vppd did not stop on ${signal} within 15 s`);
    }
  }

  // A vppd subcommand on this data dir and database; returns {status, stdout, stderr}.
  cli(...args) {
    const r = spawnSync(VPPD, args, { env: this.env, encoding: "utf8", timeout: 60_000 });
    if (r.error) throw r.error;
    return r;
  }

  devToken(scopes) {
    const r = this.cli("dev-token", "--data-dir", this.dataDir, "--scopes", scopes);
    if (r.status !== 0) throw new Error(`vppd dev-token: ${r.stderr}`);
    return r.stdout.trim();
  }

  // `vppd tokens list --json`: every token with its lastReconcile report (parsed).
  tokens() {
    const r = this.cli("tokens", "list", "--json", "--data-dir", this.dataDir);
    if (r.status !== 0) throw new Error(`vppd tokens list: ${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  log() {
    try {
      return readFileSync(this.logPath, "utf8").slice(-3000);
    } catch {
      return "";
    }
  }

  async cleanup() {
    try {
      await this.stop();
    } finally {
      rmSync(this.dataDir, { recursive: true, force: true });
      if (this.database) {
        psql(process.env.VPPD_TEST_DATABASE_URL, `DROP DATABASE IF EXISTS ${this.database.name} WITH (FORCE)`);
        this.database = null;
      }
    }
  }
}
