"""Several vppd instances on one PostgreSQL database share the sync work (issue 7).

Three `vppd serve` processes share a database, the secret key and the dev signing
key (what an operator gives every instance); the installation id (vppd's identity at
Apple) is not copied: the store holds it, so all three are one owner of the locations. 200 tokens on 200
simulated locations; syncs are requested through every instance at random while
instances are killed with SIGKILL and restarted. At the end every token is synced,
every app's counts equal the simulator's truth, and the claim/end lines of the
instances' logs show that no token's sync ever ran on two workers at once.

Needs VPPD_TEST_DATABASE_URL (scripts/test provides a throwaway PostgreSQL server).
VPPD_CLUSTER_TOKENS and VPPD_CLUSTER_SECONDS make it bigger (bench/cluster).
"""
import datetime
import os
import random
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import (PG_ADMIN_URL, Sim, WRITE_SCOPE, create_test_database, drop_test_database,  # noqa: E402
                     expected_apps, graph_app_counts, quote, start_instances)

BASE = "/beta/deviceAppManagement/vppTokens"
APPS = "/beta/deviceAppManagement/mobileApps"
APPS_SCOPE = "DeviceManagementApps.ReadWrite.All"

TOKENS = int(os.environ.get("VPPD_CLUSTER_TOKENS", "200"))
CHAOS_SECONDS = float(os.environ.get("VPPD_CLUSTER_SECONDS", "20"))
INSTANCES = 3
BOUNDARY_SLACK = 0.05  # seconds

CLAIM = re.compile(r"job (\S+) \(token (\S+), (\w+)\): claimed by (\S+), attempt (\d+)")
END = re.compile(r"job (\S+) \(token (\S+), (\w+)\): (\w+) after (\d+) ms")
STAMP = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d\.\d{3})")


def log_time(line):
    m = STAMP.search(line)
    if not m:
        return None
    return datetime.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def runs_in(text, killed_at):
    """(token, job, start, end) of every run a log section shows; a run the section
    never ends was cut short by SIGKILL at `killed_at` (None: still running)."""
    open_runs, runs = {}, []
    for line in text.splitlines():
        t = log_time(line)
        if (m := CLAIM.search(line)) and t is not None:
            open_runs[m.group(1)] = (m.group(2), t)
        elif (m := END.search(line)) and t is not None and m.group(1) in open_runs:
            token, start = open_runs.pop(m.group(1))
            runs.append((token, m.group(1), start, t))
    for job, (token, start) in open_runs.items():
        runs.append((token, job, start, killed_at if killed_at is not None else float("inf")))
    return runs


class SeveralInstancesOnOneDatabase(unittest.TestCase):
    def setUp(self):
        if not PG_ADMIN_URL:
            self.skipTest("VPPD_TEST_DATABASE_URL is not set: the multi-instance test needs PostgreSQL "
                          "(scripts/test starts one with scripts/pg-cluster)")
        self.sim = Sim("--locations", str(TOKENS), "--assets", "8", "--assignments", "60", "--page-size", "20",
                       "--event-delay-ms", "100", "--seed", "21", "--threads", "4").start()
        self.addCleanup(self.sim.cleanup)
        self.database_url = create_test_database()
        self.addCleanup(drop_test_database, self.database_url)
        args = ("--apple-url", self.sim.url, "--sync-lease-seconds", "3", "--sync-interval-seconds", "0",
                "--throttle-window-seconds", "0", "--apple-max-attempts", "4", "--apple-max-retry-seconds", "5",
                "--sync-workers", "3")
        self.instances = start_instances(INSTANCES, *args, database_url=self.database_url,
                                         on_create=lambda v: self.addCleanup(v.cleanup))
        for v in self.instances:
            # The id is only read from a data dir (an older deployment's), never written there.
            self.assertFalse(os.path.exists(os.path.join(v.data_dir, "installation-id")), v.data_dir)
        self.token = self.instances[0].dev_token("--scopes", f"{WRITE_SCOPE} {APPS_SCOPE}")
        # Each instance's log is cut into sections, one per process, ended by a kill time.
        self.sections = {i: [] for i in range(INSTANCES)}  # [(offset where it ends, killed_at)]

    def call(self, instance, method, path, body=None):
        return self.instances[instance].request(method, path, token=self.token, body=body)

    def live(self):
        return [i for i, v in enumerate(self.instances) if v.proc and v.proc.poll() is None]

    def kill_and_restart(self, i):
        v = self.instances[i]
        v.stop(sig=signal.SIGKILL)
        self.sections[i].append((os.path.getsize(v.log_path), time.time()))
        v.start()

    def all_runs(self):
        runs = []
        for i, v in enumerate(self.instances):
            text = v.log()
            begin = 0
            for end, killed_at in self.sections[i]:
                runs += runs_in(text[begin:end], killed_at)
                begin = end
            runs += runs_in(text[begin:], None)
        return runs

    def test_tokens_synced_once_at_a_time_across_instances_that_die(self):
        rng = random.Random(7)
        # 5% of Apple's answers are 503 with Retry-After: retries interleave with kills.
        self.sim.control("POST", "faults", {"path": "*", "rate": 0.05, "kind": "unavailable",
                                            "retryAfterSeconds": 1})
        locations = self.sim.locations()
        self.assertEqual(len(locations), TOKENS)
        stokens, ids = {}, []
        for n, loc in enumerate(locations):
            stoken = loc["tokens"][0]["sToken"]
            r = self.call(n % INSTANCES, "POST", BASE, {"token": stoken, "displayName": f"loc {n}"})
            self.assertEqual(r.status, 201, r)
            ids.append(r.json()["id"])
            stokens[r.json()["id"]] = stoken

        # Sync requests through every instance at random; an instance killed every few seconds.
        requests = kills = 0
        deadline = time.time() + CHAOS_SECONDS
        next_kill = time.time() + 2
        while time.time() < deadline:
            live = self.live()
            r = self.call(rng.choice(live), "POST", f"{BASE}/{rng.choice(ids)}/syncLicenses")
            self.assertEqual(r.status, 200, r)
            requests += 1
            if time.time() >= next_kill:
                self.kill_and_restart(rng.randrange(INSTANCES))
                kills += 1
                next_kill = time.time() + rng.uniform(1.5, 3.5)
        self.assertGreaterEqual(kills, max(2, int(CHAOS_SECONDS / 5)))

        # Everything settles: every token synced, no job left.
        self.sim.control("DELETE", "faults")
        deadline = time.time() + 120 + TOKENS * 0.2
        pending = ids
        while pending and time.time() < deadline:
            listing = self.instances[0].collect(BASE + "?$select=id,lastSyncStatus&$top=999", self.token)
            pending = [t["id"] for t in listing if t["lastSyncStatus"] != "completed"]
            if pending:
                time.sleep(0.5)
        self.assertEqual(pending, [], "tokens whose sync never completed")
        # One owner at Apple: every location carries the mdmInfo of the one installation id.
        owners = {(loc.get("mdmInfo") or {}).get("id") for loc in self.sim.locations()}
        self.assertEqual(len(owners), 1, owners)
        self.assertTrue(next(iter(owners)).startswith("vppd-"), owners)
        for v in self.instances:
            self.assertEqual(v.request("GET", "/healthz").status, 200)

        # Counts equal Apple's truth, asked of a random instance per token.
        for token_id in ids:
            expected = expected_apps(self.sim, stokens[token_id])
            apps = self.instances[rng.randrange(INSTANCES)].collect(
                APPS + "?$filter=" + quote(f"vppTokenId eq '{token_id}'") + "&$top=999", self.token)
            self.assertEqual(graph_app_counts(apps, expected), expected, token_id)

        # No token ran on two workers at once; every token ran at least once.
        runs = self.all_runs()
        by_token = {}
        for token, job, start, end in runs:
            by_token.setdefault(token, []).append((start, end, job))
        self.assertEqual(set(by_token), set(ids))
        for token, spans in by_token.items():
            spans.sort()
            for (s1, e1, j1), (s2, e2, j2) in zip(spans, spans[1:]):
                # A job's end line is written just after its commit, so the next job of the
                # token (queued and claimed on another instance meanwhile) may log its claim
                # a moment earlier: allow that much, far less than any real run takes.
                self.assertGreaterEqual(s2, e1 - BOUNDARY_SLACK,
                                        f"token {token}: job {j2} started while job {j1} still ran")
        print(f"\ncluster: {TOKENS} tokens, {INSTANCES} instances, {requests} sync requests, {kills} kills, "
              f"{len(runs)} job runs", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
