"""The operator's command line, black-box: what `vppd tokens|tenant|sync|dev-token|demo` print and refuse.

- the operator commands refuse a data dir or store that does not exist, and create nothing;
- `vppd tokens list` (table, --json, --csv) and `vppd tenant list` never pass a control
  character through, and the table has an expiry column;
- `vppd sync --wait` without a server says that no worker has claimed the job;
- `vppd demo` honours --sim-listen, refuses --apple-url and --dev, prints `export ID=…`/`APP=…`;
- settings refused the same way from a flag, VPPD_* and the TOML file.

Runs the real vppd (tests/lib/harness.py). About 30 s.
"""
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import (PG_ADMIN_URL, VPPD, WRITE_SCOPE, Vppd, create_test_database, drop_test_database,  # noqa: E402
                     make_stoken, psql, request)

BASE = "/beta/deviceAppManagement/vppTokens"
NO_APPLE = ("--apple-url", "http://127.0.0.1:9/mdm/v2", "--apple-max-attempts", "1", "--sync-interval-seconds", "0")
# A displayName that, printed raw, clears the screen, sets the terminal's title,
# colours with the one-character CSI (U+009B) and forges a second row.
EVIL = ("Evil\x1b[2J\x1b]0;owned\x07\u009b31m\nffffffff-0000-0000-0000-000000000000  "
        "ffffffff-0000-0000-0000-000000000001  valid\x7f")


def run(*args, env=None, timeout=30):
    return subprocess.run([VPPD, *args], capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else sqlite_env())


def sqlite_env():
    """The environment without a database URL: these commands look at the data dir given."""
    env = dict(os.environ)
    env.pop("VPPD_DATABASE_URL", None)
    return env


def control_characters(text):
    """The C0, DEL and C1 characters in `text` (newlines between lines aside)."""
    return [c for c in text.replace("\n", "") if ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MissingStore(unittest.TestCase):
    def setUp(self):
        self.parent = tempfile.mkdtemp(prefix="vppd-ops-")
        self.addCleanup(shutil.rmtree, self.parent, ignore_errors=True)

    def test_operator_commands_refuse_a_data_dir_that_does_not_exist_and_create_nothing(self):
        missing = os.path.join(self.parent, "no-such-dir")
        for args in (["tokens", "list"], ["tenant", "list"], ["tenant", "add", "11111111-1111-1111-1111-111111111111"],
                     ["sync", "3f0c5a9e-0000-4000-8000-000000000000"]):
            r = run(*args, "--data-dir", missing)
            self.assertNotEqual(r.returncode, 0, (args, r))
            self.assertIn(f"looked for '{missing}/vppd.db'", r.stderr, args)
            self.assertIn("vppd serve or vppd demo creates it", r.stderr, args)
            self.assertEqual(r.stdout, "", args)
            self.assertFalse(os.path.exists(missing), f"vppd {' '.join(args)} created {missing}")
        r = run("dev-token", "--data-dir", missing)
        self.assertNotEqual(r.returncode, 0, r)
        self.assertIn(f"no dev signing key at '{missing}/dev-signing-key.pem'", r.stderr)
        self.assertFalse(os.path.exists(missing))

    def test_an_existing_folder_without_a_store_is_refused_too_and_left_empty(self):
        empty = os.path.join(self.parent, "empty")
        os.mkdir(empty)
        for args in (["tokens", "list"], ["tenant", "list"], ["sync", "3f0c5a9e-0000-4000-8000-000000000000"],
                     ["dev-token"]):
            r = run(*args, "--data-dir", empty)
            self.assertNotEqual(r.returncode, 0, (args, r))
            self.assertIn(empty, r.stderr, args)
            self.assertEqual(os.listdir(empty), [], f"vppd {' '.join(args)} wrote into the folder")

    @unittest.skipUnless(PG_ADMIN_URL, "needs a PostgreSQL server (VPPD_TEST_DATABASE_URL)")
    def test_a_postgresql_database_without_a_store_is_refused_and_left_empty(self):
        url = create_test_database()
        self.addCleanup(drop_test_database, url)
        for args in (["tokens", "list"], ["tenant", "list"], ["sync", "3f0c5a9e-0000-4000-8000-000000000000"]):
            r = run(*args, "--database-url", url, "--data-dir", self.parent)
            self.assertNotEqual(r.returncode, 0, (args, r))
            self.assertIn("the PostgreSQL database of --database-url holds no vppd store", r.stderr, args)
            self.assertNotIn(url, r.stderr, "the URL may hold a password")
        self.assertEqual(psql(url, "SELECT to_regclass('tenants') IS NULL"), "t", "no schema was created")
        self.assertEqual(os.listdir(self.parent), [])

    def test_a_store_without_its_key_is_refused_and_no_new_key_is_made(self):
        v = Vppd(*NO_APPLE, sqlite=True).start()
        try:
            v.stop()
            os.rename(os.path.join(v.data_dir, "secret.key"), os.path.join(self.parent, "secret.key"))
            r = run("tokens", "list", "--data-dir", v.data_dir)
            self.assertNotEqual(r.returncode, 0, r)
            self.assertIn(f"no sToken key at '{v.data_dir}/secret.key'", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(v.data_dir, "secret.key")))
            r = run("tokens", "list", "--data-dir", v.data_dir, "--secrets-key-file",
                    os.path.join(self.parent, "secret.key"))
            self.assertEqual(r.returncode, 0, r)
        finally:
            v.cleanup()


class Listings(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.vppd = Vppd(*NO_APPLE).start()
        cls.token = cls.vppd.dev_token("--scopes", WRITE_SCOPE)
        r = cls.vppd.request("POST", BASE, token=cls.token,
                             body={"token": make_stoken(org="Org\x1b]8;;http://x\x07link"), "displayName": EVIL})
        assert r.status == 201, r
        cls.created = r.json()

    @classmethod
    def tearDownClass(cls):
        cls.vppd.cleanup()

    def cli(self, *args):
        r = self.vppd.cli(*args, "--data-dir", self.vppd.data_dir)
        self.assertEqual(r.returncode, 0, r)
        return r.stdout

    def test_the_table_escapes_control_characters_and_shows_the_expiry(self):
        out = self.cli("tokens", "list")
        self.assertEqual(control_characters(out), [], repr(out))
        lines = out.splitlines()
        self.assertEqual(len(lines), 2, "a header and the one token: no forged row\n" + out)
        self.assertIn("EXPIRES", lines[0])
        self.assertIn(r"Evil\x1b[2J\x1b]0;owned\x07\u009b31m\nffffffff-0000-0000-0000-000000000000", lines[1])
        self.assertIn(r"valid\x7f", lines[1])
        expires = self.created["expirationDateTime"][:19] + "Z"
        self.assertEqual(expires, "2030-11-08T22:33:22Z")
        self.assertIn(expires, lines[1])
        self.assertEqual(lines[1].index(expires), lines[0].index("EXPIRES"), "in the EXPIRES column")

    def test_json_gives_back_the_names_exactly_and_no_raw_control_character(self):
        out = self.cli("tokens", "list", "--json")
        self.assertEqual(control_characters(out), [], repr(out))
        self.assertIn(r"\u009b", out)
        rows = json.loads(out)
        self.assertEqual(len(rows), 1)
        row = rows[0]
        self.assertEqual(row["id"], self.created["id"])
        self.assertEqual(row["displayName"], EVIL)
        self.assertEqual(row["organizationName"], "Org\x1b]8;;http://x\x07link")
        self.assertEqual(row["expirationDateTime"], "2030-11-08T22:33:22Z")
        for key in ("tenantId", "state", "lastSyncStatus", "lastSyncDateTime", "lastAppCount", "lastSyncError"):
            self.assertIn(key, row)

    def test_csv_has_a_header_one_record_per_token_and_escaped_text(self):
        out = self.cli("tokens", "list", "--csv")
        self.assertEqual(control_characters(out), [], repr(out))
        records = list(csv.DictReader(io.StringIO(out)))
        self.assertEqual(len(records), 1, out)
        rec = records[0]
        self.assertEqual(rec["token"], self.created["id"])
        self.assertEqual(rec["expires"], "2030-11-08T22:33:22Z")
        self.assertTrue(rec["name"].startswith(r"Evil\x1b[2J"), rec)
        self.assertEqual(rec["organization"], r"Org\x1b]8;;http://x\x07link")

    def test_json_and_csv_together_are_refused(self):
        r = self.vppd.cli("tokens", "list", "--json", "--csv", "--data-dir", self.vppd.data_dir, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("excludes", r.stderr)

    def test_tenant_list_escapes_names(self):
        tenant = "22222222-2222-2222-2222-222222222222"
        self.cli("tenant", "add", tenant, "--name", "T\x1b[1A\u009b2Kforged\rrow")
        out = self.cli("tenant", "list")
        self.assertEqual(control_characters(out), [], repr(out))
        self.assertIn(r"T\x1b[1A\u009b2Kforged\rrow", out)


class SyncWithoutAServer(unittest.TestCase):
    def test_wait_says_at_once_and_again_that_no_worker_has_claimed_the_job(self):
        v = Vppd(*NO_APPLE).start()
        try:
            token = v.dev_token("--scopes", WRITE_SCOPE)
            r = v.request("POST", BASE, token=token, body={"token": make_stoken()})
            self.assertEqual(r.status, 201, r)
            token_id = r.json()["id"]
            deadline = time.time() + 30
            while v.request("GET", f"{BASE}/{token_id}", token=token).json()["lastSyncStatus"] == "inProgress":
                self.assertLess(time.time(), deadline, "the first sync never ended")
                time.sleep(0.1)
            v.stop()
            started = time.time()
            proc = subprocess.Popen([VPPD, "sync", token_id, "--wait", "--timeout", "8", "--data-dir", v.data_dir],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=v.process_env())
            first = proc.stderr.readline()
            first_after = time.time() - started
            rest = proc.stderr.read()
            self.assertEqual(proc.wait(20), 3)
            proc.stdout.close()
            proc.stderr.close()
            self.assertIn("no worker has claimed the job yet", first)
            self.assertLess(first_after, 3, "said at once")
            again = re.findall(r"no worker has claimed the job after (\d+\.\d) s: is a vppd serve running on this "
                               r"(?:data dir|database)\?", rest)
            self.assertTrue(again, rest)
            self.assertTrue(4.5 <= float(again[0]) <= 7.5, again)
            self.assertIn("timed out after", rest)
        finally:
            v.cleanup()


class Demo(unittest.TestCase):
    def test_sim_listen_exports_and_the_flags_it_does_not_take(self):
        data = tempfile.mkdtemp(prefix="vppd-demo-")
        self.addCleanup(shutil.rmtree, data, ignore_errors=True)
        sim_port = free_port()
        proc = subprocess.Popen([VPPD, "demo", "--listen", "127.0.0.1:0", "--sim-listen", f"127.0.0.1:{sim_port}",
                                 "--data-dir", data, "--sim-assets", "8", "--sim-assignments", "40"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=sqlite_env())
        try:
            out, deadline = "", time.time() + 90
            while "Ctrl-C stops both." not in out:
                line = proc.stdout.readline()
                self.assertTrue(line, "demo ended early:\n" + out)
                self.assertLess(time.time(), deadline)
                out += line
            self.assertIn(f"Apple simulated at http://127.0.0.1:{sim_port}", out)
            port = int(re.search(r"vppd listening on http://127\.0\.0\.1:(\d+)", out).group(1))
            exports = dict(re.findall(r"^  export (\w+)=(\S*)$", out, re.M))
            self.assertEqual(set(exports), {"TOKEN", "ID", "APP"}, out)
            headers = {"Authorization": "Bearer " + exports["TOKEN"]}
            r = request(port, "GET", f"{BASE}/{exports['ID']}", headers)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["lastSyncStatus"], "completed")
            self.assertTrue(exports["APP"], out)
            r = request(port, "GET", f"/beta/deviceAppManagement/mobileApps/{exports['APP']}"
                                     "/microsoft.graph.iosVppApp/assignedLicenses", headers)
            self.assertEqual(r.status, 200, r)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
            proc.stdout.close()
        for flag in (["--apple-url", "http://127.0.0.1:9"], ["--dev"]):
            r = run("demo", "--data-dir", data, *flag)
            self.assertNotEqual(r.returncode, 0, r)
            self.assertIn(flag[0], r.stderr)
        helptext = run("demo", "--help").stdout
        self.assertIn("--sim-listen", helptext)
        self.assertNotIn("--apple-url", helptext)
        self.assertNotIn("--dev ", helptext)


class SettingsFromEverySource(unittest.TestCase):
    def test_sync_workers_zero_is_refused_alike_by_flag_env_and_toml(self):
        data = tempfile.mkdtemp(prefix="vppd-ops-")
        self.addCleanup(shutil.rmtree, data, ignore_errors=True)
        cfg = os.path.join(data, "vppd.toml")
        with open(cfg, "w") as f:
            f.write("[sync]\nworkers = 0\n")
        message = "sync.workers must be an integer from 1 to 64, not '0'"
        serve = ["serve", "--data-dir", data, "--listen", "127.0.0.1:0"]
        by_flag = run(*serve, "--sync-workers", "0")
        by_env = run(*serve, env={**sqlite_env(), "VPPD_SYNC_WORKERS": "0"})
        by_toml = run(*serve, "--config", cfg)
        self.assertEqual(by_flag.stderr, f"vppd: --sync-workers: {message}\n")
        self.assertEqual(by_env.stderr, f"vppd: VPPD_SYNC_WORKERS: {message}\n")
        self.assertEqual(by_toml.stderr, f"vppd: {cfg}: {message}\n")
        self.assertEqual({by_flag.returncode, by_env.returncode, by_toml.returncode}, {2})
        self.assertEqual(os.listdir(data), ["vppd.toml"], "refused before anything was created")


if __name__ == "__main__":
    unittest.main()
