"""Operability, black-box: JSON log lines with request ids, and `vppd sync TOKEN_ID [--wait]`.

Runs the real vppd against apple-vpp-sim (tests/lib/harness.py). About 25 s.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import VPPD, Vppd, quote  # noqa: E402
from sim_vppd_case import BASE, SimVppdTestCase  # noqa: E402

UNLIMITED = 2147483647  # Apple's unlimited assets: totalLicenseCount as Graph shows it
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def json_lines(text):
    """Every line of a JSON-format log, parsed; fails on any line that is not one JSON object."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        obj = json.loads(line)  # raises on a line that is not JSON
        if not isinstance(obj, dict):
            raise AssertionError(f"log line {n} is not an object: {line}")
        out.append(obj)
    return out


class OpsTestCase(SimVppdTestCase):
    sim_args = ("--assets", "12", "--assignments", "300", "--page-size", "25", "--locations", "1", "--seed", "21")
    vppd_args = ("--sync-lease-seconds", "3", "--sync-interval-seconds", "0", "--throttle-window-seconds", "0",
                 "--apple-max-attempts", "2", "--sync-full-walk-days", "0", "--apple-max-retry-seconds", "5")

    def cli_sync(self, *args, timeout=90):
        return subprocess.run([VPPD, "sync", *args, "--data-dir", self.vppd.data_dir], env=self.vppd.process_env(),
                              capture_output=True, text=True, timeout=timeout)


class JsonLogs(OpsTestCase):
    def test_every_line_is_json_and_each_response_has_its_access_line(self):
        _, stoken = self.new_location(assets=4, assignments=20)
        t = self.add_token(stoken)
        self.wait_sync(t["id"])
        answered = []  # (response, method, route, status, tenant expected)
        r = self.call("GET", f"{BASE}/{t['id']}", headers={"client-request-id": "cli-\"quoted\"-1"})
        answered.append((r, "GET", "beta/vppTokens/{id}", 200, True))
        self.assertEqual(r.headers["client-request-id"], "cli-\"quoted\"-1")
        secret_filter = "displayName eq 'query-secret-4711'"
        r = self.call("GET", f"{BASE}?$filter={quote(secret_filter)}")
        answered.append((r, "GET", "beta/vppTokens", 200, True))
        r = self.call("POST", f"{BASE}/{t['id']}/syncLicenses")
        answered.append((r, "POST", "beta/vppTokens/{id}/syncLicenses", 200, True))
        r = self.call("GET", f"{BASE}/00000000-0000-0000-0000-000000000000")
        answered.append((r, "GET", "beta/vppTokens/{id}", 404, True))
        r = self.call("GET", BASE, token=self.token + "x")  # forged: 401, no tenant known
        answered.append((r, "GET", "beta/vppTokens", 401, False))
        r = self.vppd.request("GET", "/metrics")
        answered.append((r, "GET", "metrics", 200, False))
        self.wait_sync(t["id"])
        # Garbage on the wire: answered 400 by the server before any handler.
        with socket.create_connection(("127.0.0.1", self.vppd.port), timeout=5) as s:
            s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            raw = s.recv(4096).decode(errors="replace")
        self.assertIn(" 400 ", raw.split("\r\n", 1)[0])
        garbage_rid = re.search(r"(?im)^request-id: *(\S+)", raw).group(1)
        time.sleep(0.3)  # the access line is written after the response

        lines = json_lines(self.vppd.log())
        self.assertGreater(len(lines), 10)
        for line in lines:
            for key in ("time", "level", "logger", "component", "message"):
                self.assertIn(key, line, line)
            self.assertRegex(line["time"], TIME_RE)
            self.assertIn(line["level"], ("trace", "debug", "info", "warning", "error", "critical"))
        access = [l for l in lines if "status" in l and "duration_ms" in l]
        for resp, method, route, status, with_tenant in answered:
            self.assertEqual(resp.status, status, resp)
            rid = resp.headers["request-id"]
            mine = [l for l in access if l.get("request_id") == rid]
            self.assertEqual(len(mine), 1, f"one access line for request-id {rid}")
            line = mine[0]
            self.assertEqual((line["method"], line["route"], line["status"]), (method, route, status), line)
            self.assertIsInstance(line["duration_ms"], (int, float))
            self.assertGreaterEqual(line["duration_ms"], 0)
            self.assertEqual(line["component"], "http")
            if with_tenant:
                self.assertEqual(line["tenant_id"], "7d3e5f1a-9c2b-4e8d-a6f0-3b1c5d7e9f20")
            else:
                self.assertNotIn("tenant_id", line)
        cid = [l for l in access if l.get("client_request_id") == "cli-\"quoted\"-1"]
        self.assertEqual(len(cid), 1)
        garbage = [l for l in access if l.get("request_id") == garbage_rid]
        self.assertEqual([(l["status"], l["method"]) for l in garbage], [(400, "-")])
        # The query's text is not in the log (the route template is).
        self.assertNotIn("query-secret-4711", self.vppd.log())
        # The sync's lines name their job and token.
        synced = [l for l in lines if l["component"] == "sync" and l["message"].startswith(f"token {t['id']}")
                  and "synced" in l["message"]]
        self.assertGreaterEqual(len(synced), 2, "the first sync and the requested one")
        for l in synced:
            self.assertEqual(l["token_id"], t["id"])
            self.assertRegex(l["job_id"], r"^[0-9a-f-]{36}$")
            self.assertEqual(l["tenant_id"], "7d3e5f1a-9c2b-4e8d-a6f0-3b1c5d7e9f20")
        self.assertNotEqual(synced[0]["job_id"], synced[-1]["job_id"])

    def test_no_secret_in_the_json_log(self):
        _, stoken = self.new_location(assets=3, assignments=10)
        t = self.add_token(stoken)
        self.wait_sync(t["id"])
        self.call("PATCH", f"{BASE}/{t['id']}", {"token": stoken})
        self.wait_sync(t["id"])
        inner = json.loads(__import__("base64").b64decode(stoken))["token"]
        log = self.vppd.log()
        json_lines(log)
        for secret in (self.token, self.token.split(".")[2], stoken, inner):
            self.assertNotIn(secret, log)
        self.assertNotIn("eyJ", log)


class TextLogsAndConfig(unittest.TestCase):
    def test_text_format_by_flag_and_by_toml_and_a_bad_format_is_refused(self):
        v = Vppd("--log-format", "text").start()
        try:
            r = v.request("GET", "/healthz")
            v.stop()
            log = v.log()
            self.assertIn(f"request_id={r.headers['request-id']}", log)
            with self.assertRaises(ValueError):
                json.loads(log.splitlines()[0])
        finally:
            v.cleanup()
        v = Vppd()
        cfg = os.path.join(v.data_dir, "vppd.toml")
        with open(cfg, "w") as f:
            f.write('[log]\nformat = "text"\nlevel = "warn"\n')
        v.extra_args = ["--config", cfg]
        try:
            v.start()
            v.request("GET", "/healthz")
            v.stop()
            self.assertNotIn("request_id=", v.log(), "level warn: no access lines")
            with open(cfg, "w") as f:
                f.write('[log]\nformat = "yaml"\n')
            r = subprocess.run([VPPD, "serve", "--config", cfg, "--data-dir", v.data_dir, "--listen", "127.0.0.1:0"],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 2, r)
            self.assertIn("log.format must be json or text, not 'yaml'", r.stderr)
            r = subprocess.run([VPPD, "serve", "--log-format", "xml", "--data-dir", v.data_dir], capture_output=True,
                               text=True, timeout=20)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("--log-format", r.stderr)
        finally:
            v.cleanup()


class SyncCommand(OpsTestCase):
    def expected_counts(self, stoken):
        """(apps, used, total, assignments, unlimited) as `vppd sync --wait` should count them: Apple's
        unlimited apps (totalCount 2147483647) are not added to the totals but said apart."""
        assets = self.sim.walk("assets", stoken, "assets")
        apps = [a for a in assets if a["productType"] == "App"]
        limited = [a for a in apps if a["totalCount"] != UNLIMITED]
        unlimited = [a for a in apps if a["totalCount"] == UNLIMITED]
        used = sum(a["assignedCount"] for a in limited)
        total = sum(a["totalCount"] for a in limited)
        assignments = len(self.sim.walk("assignments", stoken, "assignments"))
        said = ""
        if unlimited:
            said = (f", and {sum(a['assignedCount'] for a in unlimited)} of unlimited on {len(unlimited)} "
                    f"app{'' if len(unlimited) == 1 else 's'}")
        return len(apps), used, total, assignments, said

    def synced_token_with_slow_pages(self, assets, assignments, latency_ms):
        """A new location's token, synced once; then each /assignments page takes latency_ms."""
        loc, stoken = self.new_location(assets=assets, assignments=assignments)
        t = self.add_token(stoken)
        self.wait_sync(t["id"])
        self.sim.control("POST", "faults", {"path": "/mdm/v2/assignments", "location": loc["uId"],
                                            "kind": "latency", "latencyMs": latency_ms})
        return loc, stoken, t

    def test_queue_and_wait_reports_progress_and_the_simulator_s_counts(self):
        # 12 pages of 25 assignments, slowed so the walk is seen in progress: 0.8 s a
        # page, 5 at a time, ~3.2 s for the 12, against a progress write and a
        # printed line a second.
        loc, stoken, t = self.synced_token_with_slow_pages(12, 300, 800)
        before = len(self.call("GET", f"{BASE}/{t['id']}").json()["tokenActionResults"])
        r = self.cli_sync(t["id"], "--wait", "--timeout", "60")
        self.assertEqual(r.returncode, 0, r)
        apps, used, total, assignments, unlimited = self.expected_counts(stoken)
        self.assertIn(f"queued syncLicenses of token {t['id']}", r.stdout)
        self.assertIn(f"synced token {t['id']} ({loc['name']})", r.stdout)
        self.assertIn(f": {apps} apps, {used} of {total} licenses used{unlimited}, {assignments} assignments", r.stdout)
        # Progress lines (stdout is not a terminal): the running walk's pages, durably published.
        progress = re.findall(r"running(?: \(attempt \d+\))?: (\d+)/(\d+) pages, (\d+) assignments staged", r.stdout)
        self.assertTrue(progress, r.stdout)
        self.assertTrue(all(int(total_pages) == 12 for _, total_pages, _ in progress), progress)
        self.assertTrue(any(0 < int(done) < 12 for done, _, _ in progress), progress)
        self.assertTrue(all(int(staged) <= int(done) * 25 for done, _, staged in progress), progress)
        # The same token changes as the Graph action: one more syncLicenses entry, done.
        after = self.call("GET", f"{BASE}/{t['id']}").json()
        self.assertEqual(after["lastSyncStatus"], "completed")
        self.assertEqual(len(after["tokenActionResults"]), before + 1)
        self.assertEqual((after["tokenActionResults"][-1]["actionName"], after["tokenActionResults"][-1]["actionState"]),
                         ("syncLicenses", "done"))

    def test_unlimited_apps_are_not_summed_into_the_total(self):
        # 40 assets: the simulator makes about one app in ten unlimited (this seed: several).
        loc, stoken = self.new_location(assets=40, assignments=200)
        t = self.add_token(stoken)
        self.wait_sync(t["id"])
        apps, used, total, assignments, unlimited = self.expected_counts(stoken)
        self.assertTrue(unlimited, "the location has an unlimited app")
        r = self.cli_sync(t["id"], "--wait", "--timeout", "60")
        self.assertEqual(r.returncode, 0, r)
        self.assertIn(f": {apps} apps, {used} of {total} licenses used{unlimited}, {assignments} assignments", r.stdout)
        self.assertNotIn(str(UNLIMITED), r.stdout)
        self.assertLess(total, UNLIMITED)

    def test_on_a_terminal_it_draws_a_progress_bar(self):
        import pty
        # Slow pages (~3.2 s for the walk's 12, 5 at a time), so that the walk spans
        # several of the worker's progress writes (one a second).
        _, _, t = self.synced_token_with_slow_pages(6, 300, 800)
        master, slave = pty.openpty()
        proc = subprocess.Popen([VPPD, "sync", t["id"], "--wait", "--data-dir", self.vppd.data_dir], stdout=slave,
                                env=self.vppd.process_env(),
                                stderr=subprocess.PIPE)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        self.assertEqual(proc.wait(60), 0, proc.stderr.read())
        proc.stderr.close()
        text = out.decode(errors="replace")
        # Redrawn in place: carriage return, erase line, a bar of pages walked.
        bars = re.findall(r"\r\x1b\[K\[([#-]{30})\] running: (\d+)/12 pages", text)
        self.assertTrue(bars, repr(text[-800:]))
        self.assertTrue(any("#" in bar and "-" in bar for bar, _ in bars), bars)
        self.assertIn(f"synced token {t['id']}", text)
        self.assertNotIn("\n1.0 s:", text, "no plain progress lines on a terminal")

    def test_without_wait_it_only_queues_and_a_second_request_joins_the_first(self):
        _, _, t = self.synced_token_with_slow_pages(6, 100, 400)
        r = self.cli_sync(t["id"])
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("queued syncLicenses", r.stdout)
        self.assertEqual(self.call("GET", f"{BASE}/{t['id']}").json()["lastSyncStatus"], "inProgress")
        r = self.cli_sync(t["id"])
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("joined the already queued or running syncLicenses", r.stdout)
        # --timeout shorter than the walk: exit 3, the sync goes on.
        r = self.cli_sync(t["id"], "--wait", "--timeout", "0.3")
        self.assertEqual(r.returncode, 3, r)
        self.assertIn("timed out after", r.stderr)
        done = self.wait_sync(t["id"])
        self.assertEqual(done["lastSyncStatus"], "completed")
        entries = [e for e in done["tokenActionResults"] if e["actionName"] == "syncLicenses"]
        self.assertEqual([e["actionState"] for e in entries], ["done", "done"], "one sync for the two requests")

    def test_a_failed_sync_exits_non_zero_with_the_reason(self):
        _, stoken = self.new_location(assets=3, assignments=10)
        t = self.add_token(stoken)
        self.wait_sync(t["id"])
        self.sim.control("POST", "tokens", {"sToken": stoken, "state": "expired"})
        r = self.cli_sync(t["id"], "--wait", "--timeout", "60")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(f"syncLicenses of token {t['id']} failed (state expired)", r.stderr)
        after = self.call("GET", f"{BASE}/{t['id']}").json()
        self.assertEqual((after["state"], after["lastSyncStatus"]), ("expired", "failed"))

    def test_an_unknown_token_is_a_clear_error(self):
        r = self.cli_sync("3f0c5a9e-0000-4000-8000-000000000000", "--wait")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("no vppToken with id '3f0c5a9e-0000-4000-8000-000000000000' in any tenant", r.stderr)
        r = self.cli_sync("not-a-guid")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("no vppToken with id 'not-a-guid'", r.stderr)
        r = subprocess.run([VPPD, "sync", "--data-dir", self.vppd.data_dir], env=self.vppd.process_env(),
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("token_id", r.stderr)


if __name__ == "__main__":
    unittest.main()
