"""Black-box tests of syncLicenses end to end: vppd against apple-vpp-sim, faults included."""
import os
import random
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import WRITE_SCOPE, expected_apps, graph_app_counts, quote  # noqa: E402
from sim_vppd_case import APPS, APPS_SCOPE, BASE, SimVppdTestCase  # noqa: E402


class SyncTestCase(SimVppdTestCase):
    sim_args = ("--assets", "12", "--assignments", "120", "--page-size", "25", "--event-delay-ms", "100",
                "--locations", "1", "--seed", "11")
    vppd_args = ("--sync-lease-seconds", "2", "--sync-interval-seconds", "0", "--throttle-window-seconds", "0",
                 "--apple-max-attempts", "3", "--apple-max-retry-seconds", "10", "--sync-event-poll-ms", "150")

    # --- helpers (besides SimVppdTestCase's) ------------------------------

    def sync(self, token_id, **headers):
        r = self.call("POST", f"{BASE}/{token_id}/syncLicenses", headers=headers)
        self.assertEqual(r.status, 200, r)
        return r

    def graph_apps(self, token_id):
        return self.vppd.collect(APPS + "?$filter=" + quote(f"vppTokenId eq '{token_id}'") + "&$top=999", self.token)

    def assert_matches_apple(self, token_id, stoken):
        expected = expected_apps(self.sim, stoken)
        self.assertEqual(graph_app_counts(self.graph_apps(token_id), expected), expected)
        return expected

    def licenses_of(self, app_id, app_type):
        return self.vppd.collect(f"{APPS}/{app_id}/microsoft.graph.{app_type}/assignedLicenses?$top=999", self.token)


class FirstSync(SyncTestCase):
    def test_a_new_token_is_synced_and_matches_apple(self):
        loc, stoken = self.new_location()
        t = self.wait_sync(self.add_token(stoken)["id"])
        self.assertEqual((t["state"], t["lastSyncStatus"]), ("valid", "completed"), t)
        self.assertEqual(t["locationName"], loc["name"])
        self.assertEqual(t["countryOrRegion"], loc["countryISO2ACode"].lower())
        self.assertNotEqual(t["lastSyncDateTime"], "0001-01-01T00:00:00Z")
        entry = t["tokenActionResults"][-1]
        self.assertEqual((entry["actionName"], entry["actionState"]), ("syncLicenses", "done"))
        expected = self.assert_matches_apple(t["id"], stoken)
        self.assertEqual(t["lastAppCount"], len({(k[0], k[1]) for k in expected}))

        # Every app's assigned licenses are Apple's assignments of that asset.
        assignments = self.sim.walk("assignments", stoken, "assignments")
        for app in self.graph_apps(t["id"])[:4]:
            adam = app["appStoreUrl"].rsplit("/id", 1)[1]
            kind = app["@odata.type"].split(".")[-1]
            lic = self.licenses_of(app["id"], kind)
            apple = [a for a in assignments if a["adamId"] == adam]
            self.assertEqual(len(lic), app["usedLicenseCount"])
            self.assertEqual(sorted(x.get("deviceName") or x.get("userId") for x in lic),
                             sorted(a.get("serialNumber") or a.get("clientUserId") for a in apple))
        # Our mdmInfo is now on the location.
        mine = [l for l in self.sim.locations() if l["uId"] == loc["uId"]][0]
        self.assertEqual(mine["mdmInfo"]["name"], "vppd")

    def test_seed_response_shapes_and_routes(self):
        _, stoken = self.new_location(assets=4, assignments=10)
        t = self.wait_sync(self.add_token(stoken)["id"])
        r = self.sync(t["id"])
        body = r.json()
        self.assertEqual(set(body), {"@odata.context", "value"}, "the seed's shape without SdkVersion")
        self.assertEqual(body["value"]["@odata.type"], "#microsoft.graph.vppToken")
        self.assertEqual(body["value"]["lastSyncStatus"], "inProgress")
        self.wait_sync(t["id"])
        r = self.sync(t["id"], SdkVersion="graph-python-beta/1.0")
        self.assertEqual(r.json()["id"], t["id"], "SDKs get the entity at the root")
        self.assertEqual(r.json()["lastSyncStatus"], "inProgress")
        self.wait_sync(t["id"])
        for path in (f"{BASE}/{t['id']}/microsoft.graph.syncLicenses",
                     f"/v1.0/deviceAppManagement/vppTokens/{t['id']}/syncLicenses"):
            r = self.call("POST", path, body="ignored", headers={"Content-Type": "text/plain"})
            self.assertEqual(r.status, 200, r)
            self.wait_sync(t["id"])
        r = self.call("POST", f"{BASE}/00000000-0000-0000-0000-000000000000/syncLicenses")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json()["error"]["code"], "ResourceNotFound")
        r = self.call("GET", f"{BASE}/{t['id']}/syncLicenses")
        self.assertEqual(r.status, 405, r)
        reader = self.vppd.dev_token("--scopes", "DeviceManagementServiceConfig.Read.All")
        r = self.vppd.request("POST", f"{BASE}/{t['id']}/syncLicenses", token=reader)
        self.assertEqual(r.status, 403, r)

    def test_requests_while_a_sync_runs_are_coalesced(self):
        loc, stoken = self.new_location(assets=6, assignments=100)
        self.sim.control("POST", "faults", {"path": "/mdm/v2/assignments", "location": loc["uId"],
                                            "kind": "latency", "latencyMs": 300})
        self.sim.control("DELETE", "counters")
        t = self.add_token(stoken)
        for _ in range(5):
            self.assertEqual(self.sync(t["id"]).json()["value"]["lastSyncStatus"], "inProgress")
        done = self.wait_sync(t["id"])
        self.assertEqual(done["lastSyncStatus"], "completed", done)
        counts = self.sim.control("GET", "counters")["byLocation"][loc["uId"]]
        self.assertEqual(counts.get("GET /mdm/v2/client/config"), 1, counts)


class TokenStates(SyncTestCase):
    def test_expired_stoken_fails_without_calling_apple(self):
        loc, _ = self.new_location(assets=3, assignments=5)
        old = self.sim.control("POST", f"locations/{loc['uId']}/tokens", {"expDate": "2021-01-01T00:00:00+0000"})
        self.sim.control("DELETE", "counters")
        created = self.call("POST", BASE, {"token": old["sToken"]}).json()
        self.assertEqual(created["state"], "expired")
        t = self.wait_sync(created["id"])
        self.assertEqual((t["state"], t["lastSyncStatus"]), ("expired", "failed"))
        self.assertEqual(t["tokenActionResults"][-1]["actionState"], "failed")
        self.assertNotIn(loc["uId"], self.sim.control("GET", "counters")["byLocation"])

    def test_apple_says_expired_revoked_or_invalid(self):
        for sim_state, graph_state in (("expired", "expired"), ("revoked", "invalid"), ("invalid", "invalid")):
            with self.subTest(sim_state=sim_state):
                _, stoken = self.new_location(assets=3, assignments=5)
                t = self.wait_sync(self.add_token(stoken)["id"])
                self.assertEqual(t["state"], "valid")
                apps_before = self.graph_apps(t["id"])
                self.sim.control("POST", "tokens", {"sToken": stoken, "state": sim_state})
                self.sync(t["id"])
                t = self.wait_sync(t["id"])
                self.assertEqual((t["state"], t["lastSyncStatus"]), (graph_state, "failed"))
                # A failed sync leaves the last good snapshot in place.
                self.assertEqual(self.graph_apps(t["id"]), apps_before)
                # The reason is kept, for operators.
                listing = self.vppd.cli("tokens", "list", "--data-dir", self.vppd.data_dir).stdout
                line = next(l for l in listing.splitlines() if t["id"] in l)
                self.assertIn(graph_state, line)
                self.assertIn({"expired": "9621", "revoked": "9625", "invalid": "9622"}[sim_state], line)

    def test_transient_failure_keeps_state_and_snapshot(self):
        loc, stoken = self.new_location(assets=5, assignments=20)
        t = self.wait_sync(self.add_token(stoken)["id"])
        apps_before = self.graph_apps(t["id"])
        self.sim.control("POST", "faults", {"path": "/mdm/v2/assets", "location": loc["uId"], "kind": "internal",
                                            "retryAfterSeconds": 1})
        self.sync(t["id"])
        t2 = self.wait_sync(t["id"], timeout=60)
        self.assertEqual((t2["state"], t2["lastSyncStatus"]), ("valid", "failed"))
        self.assertEqual(self.graph_apps(t["id"]), apps_before)
        self.assertEqual(t2["lastSyncDateTime"], t["lastSyncDateTime"])

    def test_another_mdm_owns_the_location_until_takeover(self):
        loc, stoken = self.new_location(assets=4, assignments=10)
        self.sim.control("POST", f"locations/{loc['uId']}/mdmInfo",
                         {"id": "other-mdm-1", "name": "Other MDM", "metadata": "x"})
        t = self.wait_sync(self.add_token(stoken)["id"])
        self.assertEqual((t["state"], t["lastSyncStatus"]), ("assignedToExternalMDM", "failed"))
        self.assertEqual(self.graph_apps(t["id"]), [])
        self.assertEqual(self.call("PATCH", f"{BASE}/{t['id']}",
                                   {"claimTokenManagementFromExternalMdm": True}).status, 200)
        self.sync(t["id"])
        t = self.wait_sync(t["id"])
        self.assertEqual((t["state"], t["lastSyncStatus"]), ("valid", "completed"))
        mine = [l for l in self.sim.locations() if l["uId"] == loc["uId"]][0]
        self.assertEqual(mine["mdmInfo"]["name"], "vppd")
        self.assert_matches_apple(t["id"], stoken)

    def test_two_tokens_on_one_location(self):
        loc, stoken = self.new_location(assets=4, assignments=10)
        second = self.sim.control("POST", f"locations/{loc['uId']}/tokens", {})["sToken"]
        a = self.wait_sync(self.add_token(stoken)["id"])
        self.assertEqual(a["state"], "valid")
        b = self.wait_sync(self.add_token(second)["id"])
        self.assertEqual((b["state"], b["lastSyncStatus"]), ("duplicateLocationId", "failed"))
        self.assertEqual(self.graph_apps(b["id"]), [])
        self.assertEqual(self.call("DELETE", f"{BASE}/{a['id']}").status, 204)
        self.sync(b["id"])
        b = self.wait_sync(b["id"])
        self.assertEqual(b["state"], "valid")

    def test_renewal_with_another_locations_stoken_fails_clearly(self):
        _, stoken = self.new_location(assets=3, assignments=5)
        _, other = self.new_location(assets=3, assignments=5)
        t = self.wait_sync(self.add_token(stoken)["id"])
        r = self.call("PATCH", f"{BASE}/{t['id']}", {"token": other})
        self.assertEqual(r.status, 200, r)
        t = self.wait_sync(t["id"])
        self.assertEqual((t["state"], t["lastSyncStatus"]), ("invalid", "failed"))


class WalkFaults(SyncTestCase):
    def test_version_change_mid_walk_restarts_the_walk(self):
        loc, stoken = self.new_location(assets=8, assignments=150)
        self.sim.control("POST", "faults", {"path": "/mdm/v2/assignments", "location": loc["uId"],
                                            "kind": "bump_version", "onRequests": [3]})
        self.sim.control("DELETE", "counters")
        t = self.wait_sync(self.add_token(stoken)["id"])
        self.assertEqual(t["lastSyncStatus"], "completed", t)
        counts = self.sim.control("GET", "counters")["byLocation"][loc["uId"]]
        self.assertGreater(counts["GET /mdm/v2/assignments"], 150 // 25 + 1, "the walk was restarted")
        self.assert_matches_apple(t["id"], stoken)

    def test_retry_after_is_honoured(self):
        loc, stoken = self.new_location(assets=5, assignments=20)
        self.sim.control("POST", "faults", {"path": "/mdm/v2/assets", "location": loc["uId"],
                                            "kind": "unavailable", "onRequests": [1], "retryAfterSeconds": 2})
        start = time.time()
        t = self.wait_sync(self.add_token(stoken)["id"])
        self.assertEqual(t["lastSyncStatus"], "completed", t)
        self.assertGreaterEqual(time.time() - start, 2.0)
        self.assert_matches_apple(t["id"], stoken)

    def test_incremental_sync_then_full_walk_when_the_delta_does_not_add_up(self):
        loc, stoken = self.new_location(assets=6, assignments=100)
        t = self.wait_sync(self.add_token(stoken)["id"])
        apps = [a for a in expected_apps(self.sim, stoken)]
        adam = apps[0][0]
        self.sim.control("POST", f"locations/{loc['uId']}/purchase", {"adamId": adam, "count": 5})
        self.sim.control("POST", f"locations/{loc['uId']}/assignments",
                         {"add": [{"adamId": adam, "serialNumber": f"DELTA{i:07d}"} for i in range(3)]})
        self.sim.control("DELETE", "counters")
        self.sync(t["id"])
        t = self.wait_sync(t["id"])
        self.assertEqual(t["lastSyncStatus"], "completed", t)
        counts = self.sim.control("GET", "counters")["byLocation"][loc["uId"]]
        self.assertEqual(counts["GET /mdm/v2/assignments"], 1, "a delta: one page")
        self.assert_matches_apple(t["id"], stoken)
        # A removal is invisible in a delta: the counts disagree and vppd walks everything.
        self.sim.control("POST", f"locations/{loc['uId']}/assignments",
                         {"remove": [{"adamId": adam, "serialNumber": "DELTA0000000"}]})
        self.sim.control("DELETE", "counters")
        self.sync(t["id"])
        t = self.wait_sync(t["id"])
        counts = self.sim.control("GET", "counters")["byLocation"][loc["uId"]]
        self.assertGreater(counts["GET /mdm/v2/assignments"], 1, "fell back to a full walk")
        self.assert_matches_apple(t["id"], stoken)

    def test_delete_during_sync(self):
        loc, stoken = self.new_location(assets=6, assignments=150)
        self.sim.control("POST", "faults", {"path": "/mdm/v2/assignments", "location": loc["uId"],
                                            "kind": "latency", "latencyMs": 250})
        t = self.add_token(stoken)
        time.sleep(0.6)
        self.assertEqual(self.call("DELETE", f"{BASE}/{t['id']}").status, 204)
        time.sleep(2.5)
        self.assertEqual(self.graph_apps(t["id"]), [])
        self.assertEqual(self.call("GET", f"{BASE}/{t['id']}").status, 404)
        self.assertEqual(self.call("GET", "/healthz").status, 200)


class Restarts(SyncTestCase):
    def test_kill_9_mid_sync_and_the_sync_still_completes(self):
        rng = random.Random(5)
        for point in range(3):
            with self.subTest(point=point):
                loc, stoken = self.new_location(assets=6, assignments=200)
                self.sim.control("POST", "faults", {"path": "/mdm/v2/assignments", "location": loc["uId"],
                                                    "kind": "latency", "latencyMs": 150, "maxHits": 6})
                t = self.add_token(stoken)
                time.sleep(rng.uniform(0.1, 1.2))
                self.vppd.stop(sig=signal.SIGKILL)
                self.vppd.start()
                done = self.wait_sync(t["id"], timeout=60)
                self.assertEqual(done["lastSyncStatus"], "completed", done)
                self.assert_matches_apple(t["id"], stoken)

    def test_sigterm_with_syncs_running_exits_zero(self):
        loc, stoken = self.new_location(assets=6, assignments=150)
        self.sim.control("POST", "faults", {"path": "/mdm/v2/assignments", "location": loc["uId"],
                                            "kind": "latency", "latencyMs": 200, "maxHits": 4})
        t = self.add_token(stoken)
        time.sleep(0.3)
        self.assertEqual(self.vppd.stop(), 0)
        self.vppd.start()
        done = self.wait_sync(t["id"], timeout=60)
        self.assertEqual(done["lastSyncStatus"], "completed", done)


class OtherActions(SyncTestCase):
    def test_revoke_tracked_licenses_then_resync(self):
        loc, stoken = self.new_location(assets=8, assignments=60)
        t = self.wait_sync(self.add_token(stoken)["id"])
        revocable = {(a["adamId"], a["pricingParam"]) for a in self.sim.walk("assets", stoken, "assets")
                     if a["revocable"]}
        tracked = [a for a in self.sim.walk("assignments", stoken, "assignments")
                   if (a["adamId"], a["pricingParam"]) in revocable]
        self.assertGreater(len(tracked), 0)
        r = self.call("POST", f"{BASE}/{t['id']}/revokeLicenses", {"notifyManagedDevices": False})
        self.assertEqual(r.status, 204, r)
        deadline = time.time() + 60
        while time.time() < deadline:
            t = self.call("GET", f"{BASE}/{t['id']}").json()
            names = [(e["actionName"], e["actionState"]) for e in t["tokenActionResults"]]
            if ("revokeLicenses", "done") in names and t["lastSyncStatus"] == "completed" and \
                    names[-1] == ("syncLicenses", "done"):
                break
            time.sleep(0.2)
        revoke = [e for e in t["tokenActionResults"] if e["actionName"] == "revokeLicenses"][-1]
        self.assertEqual(revoke["@odata.type"], "#microsoft.graph.vppTokenRevokeLicensesActionResult")
        self.assertEqual((revoke["totalLicensesCount"], revoke["failedLicensesCount"]), (len(tracked), 0), revoke)
        self.assertEqual(revoke["actionFailureReason"], "none")
        left = [a for a in self.sim.walk("assignments", stoken, "assignments")
                if (a["adamId"], a["pricingParam"]) in revocable]
        self.assertEqual(left, [])
        self.assert_matches_apple(t["id"], stoken)

    def test_revoke_body_is_checked(self):
        _, stoken = self.new_location(assets=3, assignments=5)
        t = self.wait_sync(self.add_token(stoken)["id"])
        for body, fragment in (({}, "notifyManagedDevices"), ({"notifyManagedDevices": "yes"}, "notifyManagedDevices"),
                               ({"notifyManagedDevices": True, "x": 1}, "'x'"),
                               ({"notifyManagedDevices": True, "revokeUntrackedLicenses": 3}, "revokeUntracked")):
            r = self.call("POST", f"{BASE}/{t['id']}/revokeLicenses", body)
            self.assertEqual(r.status, 400, r)
            self.assertIn(fragment, r.json()["error"]["message"])
        self.assertEqual(self.call("POST", f"{BASE}/nope/revokeLicenses", {"notifyManagedDevices": True}).status, 404)

    def test_sync_license_counts_refreshes_counts(self):
        loc, stoken = self.new_location(assets=5, assignments=20)
        t = self.wait_sync(self.add_token(stoken)["id"])
        adam, pricing, _ = next(iter(expected_apps(self.sim, stoken)))
        self.sim.control("POST", f"locations/{loc['uId']}/purchase", {"adamId": adam, "pricingParam": pricing,
                                                                      "count": 7})
        r = self.call("POST", f"{BASE}/syncLicenseCounts")
        self.assertEqual(r.status, 204, r)
        deadline = time.time() + 30
        while time.time() < deadline:
            t = self.call("GET", f"{BASE}/{t['id']}").json()
            if any(e["actionName"] == "syncLicenseCounts" and e["actionState"] == "done"
                   for e in t["tokenActionResults"]):
                break
            time.sleep(0.2)
        self.assert_matches_apple(t["id"], stoken)

    def test_get_licenses_for_app(self):
        _, stoken = self.new_location(assets=6, assignments=40)
        t = self.wait_sync(self.add_token(stoken, appleId="admin@example.com")["id"])
        app = next(a for a in self.graph_apps(t["id"]) if a["bundleId"])
        r = self.call("GET", f"{BASE}/getLicensesForApp(bundleId='{quote(app['bundleId'])}')")
        self.assertEqual(r.status, 200, r)
        rows = [v for v in r.json()["value"] if v["vppTokenId"] == t["id"]]
        self.assertEqual(len(rows), 1, r.json())
        self.assertEqual(rows[0]["usedLicenseCount"], app["usedLicenseCount"])
        self.assertEqual(rows[0]["availableLicenseCount"],
                         max(0, app["totalLicenseCount"] - app["usedLicenseCount"]))
        self.assertEqual(rows[0]["appleId"], "admin@example.com")
        r = self.call("GET", f"{BASE}/microsoft.graph.getLicensesForApp(bundleId=@b)?@b='{quote(app['bundleId'])}'")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.call("GET", f"{BASE}/getLicensesForApp(bundleId='no.such.app')").json()["value"], [])
        for bad in ("getLicensesForApp", "getLicensesForApp(bundleId=x)", "getLicensesForApp(foo='x')",
                    "getLicensesForApp(bundleId='a'b')"):
            r = self.call("GET", f"{BASE}/{quote(bad)}")
            self.assertEqual(r.status, 400, (bad, r))


class Isolation(SyncTestCase):
    def test_another_tenant_cannot_see_or_act_on_tokens_apps_or_licenses(self):
        _, stoken = self.new_location(assets=6, assignments=30)
        t = self.wait_sync(self.add_token(stoken)["id"])
        app = next(a for a in self.graph_apps(t["id"]) if a["bundleId"])
        other = "44444444-5555-4666-8777-888888888888"
        self.vppd.cli("tenant", "--data-dir", self.vppd.data_dir, "add", other, "--name", "Other")
        tok = self.vppd.dev_token("--tenant", other, "--scopes", f"{WRITE_SCOPE} {APPS_SCOPE}")
        req = lambda m, p, b=None: self.vppd.request(m, p, token=tok, body=b)  # noqa: E731
        self.assertEqual(req("POST", f"{BASE}/{t['id']}/syncLicenses").status, 404)
        self.assertEqual(req("POST", f"{BASE}/{t['id']}/revokeLicenses", {"notifyManagedDevices": True}).status, 404)
        self.assertEqual(req("POST", f"{BASE}/syncLicenseCounts").status, 204)
        self.assertEqual(req("GET", APPS).json()["value"], [])
        self.assertEqual(req("GET", f"{APPS}/$count").body, "0")
        self.assertEqual(req("GET", f"{APPS}/{app['id']}").status, 404)
        self.assertEqual(req("GET", f"{APPS}/{app['id']}/microsoft.graph.iosVppApp/assignedLicenses").status, 404)
        r = req("GET", f"{BASE}/getLicensesForApp(bundleId='{quote(app['bundleId'])}')")
        self.assertEqual(r.json()["value"], [])
        # nothing happened to the first tenant's token
        after = self.call("GET", f"{BASE}/{t['id']}").json()
        self.assertEqual(after["tokenActionResults"], t["tokenActionResults"])

    def test_no_secret_reaches_the_log(self):
        _, stoken = self.new_location(assets=4, assignments=10)
        t = self.wait_sync(self.add_token(stoken)["id"])
        self.call("PATCH", f"{BASE}/{t['id']}", {"token": stoken})
        self.wait_sync(t["id"])
        self.vppd.request("GET", BASE, token=self.token + "x")  # a forged token is logged about, not logged
        import base64, json as _json  # noqa: E401
        inner = _json.loads(base64.b64decode(stoken))["token"]
        with open(os.path.join(self.vppd.data_dir, "dev-signing-key.pem")) as f:
            key_lines = [l for l in f.read().splitlines() if l and "PRIVATE KEY" not in l]
        log = self.vppd.log()
        self.assertIn("synced", log, "the log is the one this vppd writes")
        for secret in [self.token, self.token.split(".")[2], stoken, inner] + key_lines[:3]:
            self.assertNotIn(secret, log)
        self.assertNotIn("eyJ", log, "no JWT or sToken-like base64 JSON")
        # serve logs JSON: the secrets are not hiding behind an escape either.
        lines = [_json.loads(l) for l in log.splitlines()]
        self.assertTrue(any(l.get("route") == "beta/vppTokens/{id}" and l.get("method") == "PATCH" for l in lines))
        decoded = "\n".join(" ".join(str(v) for v in l.values()) for l in lines)
        for secret in [self.token, stoken, inner]:
            self.assertNotIn(secret, decoded)


class Metrics(SyncTestCase):
    def test_metrics_count_requests_syncs_and_apple_calls_without_ids(self):
        loc, stoken = self.new_location(assets=4, assignments=30)
        self.sim.control("POST", "faults", {"path": "/mdm/v2/assets", "location": loc["uId"], "kind": "unavailable",
                                            "onRequests": [1], "retryAfterSeconds": 1})
        t = self.wait_sync(self.add_token(stoken)["id"])
        self.sync(t["id"])
        self.wait_sync(t["id"])
        r = self.vppd.request("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers["content-type"].startswith("text/plain"))
        text = r.body

        def value(series):
            line = next((l for l in text.splitlines() if l.startswith(series + " ")), None)
            self.assertIsNotNone(line, f"{series} missing")
            return float(line.rsplit(" ", 1)[1])

        self.assertGreaterEqual(value('vppd_http_requests_total{route="beta/vppTokens/{id}/syncLicenses",'
                                      'method="POST",status="200"}'), 1)
        self.assertGreaterEqual(value('vppd_http_requests_total{route="beta/vppTokens",method="POST",status="201"}'), 1)
        self.assertGreaterEqual(value('vppd_sync_jobs_total{kind="syncLicenses",outcome="completed"}'), 2)
        self.assertGreaterEqual(value('vppd_apple_requests_total{endpoint="GET /assets",status="503",'
                                      'error_number="9729"}'), 1)
        self.assertGreaterEqual(value('vppd_apple_retries_total{endpoint="GET /assets"}'), 1)
        self.assertGreaterEqual(value('vppd_tokens{state="valid"}'), 1)
        self.assertGreaterEqual(value("vppd_sync_queue_depth"), 0)
        self.assertIn('vppd_http_request_duration_seconds_bucket{route="beta/vppTokens/{id}",le="+Inf"}', text)
        self.assertNotIn(t["id"], text)
        self.assertNotIn(loc["uId"], text)


class MobileAppsSurface(SyncTestCase):
    def test_casts_filters_items_and_licenses(self):
        _, stoken = self.new_location(assets=12, assignments=80)
        t = self.wait_sync(self.add_token(stoken)["id"])
        apps = self.graph_apps(t["id"])
        ios = [a for a in apps if a["@odata.type"] == "#microsoft.graph.iosVppApp"]
        mac = [a for a in apps if a["@odata.type"] == "#microsoft.graph.macOsVppApp"]
        flt = quote(f"vppTokenId eq '{t['id']}'")
        r = self.call("GET", f"{APPS}/microsoft.graph.iosVppApp?$filter={flt}&$top=999")
        self.assertEqual(sorted(a["id"] for a in r.json()["value"]), sorted(a["id"] for a in ios))
        r = self.call("GET", f"{APPS}?$filter={flt}%20and%20isof('microsoft.graph.macOsVppApp')&$top=999")
        self.assertEqual(sorted(a["id"] for a in r.json()["value"]), sorted(a["id"] for a in mac))
        r = self.call("GET", f"{APPS}/$count?$filter={flt}")
        self.assertEqual(int(r.body), len(apps))
        one = ios[0]
        r = self.call("GET", f"{APPS}/{one['id']}")
        self.assertEqual(r.json(), {**one, "@odata.context": r.json()["@odata.context"]})
        self.assertEqual(self.call("GET", f"{APPS}/{one['id']}/microsoft.graph.iosVppApp").status, 200)
        self.assertEqual(self.call("GET", f"{APPS}/{one['id']}/microsoft.graph.macOsVppApp").status, 404)
        self.assertEqual(self.call("GET", f"{APPS}/nope").status, 404)
        lic = self.licenses_of(one["id"], "iosVppApp")
        self.assertEqual(len(lic), one["usedLicenseCount"])
        for x in lic:
            self.assertIn(x["@odata.type"], ("#microsoft.graph.iosVppAppAssignedDeviceLicense",
                                             "#microsoft.graph.iosVppAppAssignedUserLicense"))
        # v1.0 shows iOS VPP apps only, with its smaller property set.
        r = self.call("GET", f"/v1.0/deviceAppManagement/mobileApps?$top=999")
        self.assertTrue(all(a["@odata.type"] == "#microsoft.graph.iosVppApp" for a in r.json()["value"]))
        self.assertNotIn("vppTokenId", r.json()["value"][0])
        # apps read permission
        only_tokens = self.vppd.dev_token("--scopes", WRITE_SCOPE)
        self.assertEqual(self.vppd.request("GET", APPS, token=only_tokens).status, 403)


if __name__ == "__main__":
    unittest.main()
