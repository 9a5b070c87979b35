"""Black-box tests of the reconcile job (issue 15): vppd hands out and takes back
device licences at apple-vpp-sim as the directory and the app assignments say,
through Graph over real sockets; what Apple holds is read from the simulator.
SQLite, or PostgreSQL when VPPD_TEST_DATABASE_URL is set.
"""
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import DEV_TENANT, WRITE_SCOPE, Vppd, request  # noqa: E402
from sim_vppd_case import APPS, APPS_SCOPE, BASE, SimVppdTestCase  # noqa: E402

DIRECTORY_SCOPES = ("Group.ReadWrite.All GroupMember.ReadWrite.All Device.ReadWrite.All "
                    "DeviceManagementManagedDevices.ReadWrite.All")
IOS_SETTINGS = {"@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings", "useDeviceLicensing": True}


class Reconcile(SimVppdTestCase):
    sim_args = ("--assets", "12", "--locations", "1", "--seed", "21", "--event-delay-ms", "50")
    vppd_args = ("--sync-interval-seconds", "0", "--throttle-window-seconds", "0", "--sync-event-poll-ms", "100",
                 "--sync-lease-seconds", "2")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = cls.vppd.dev_token("--scopes", f"{WRITE_SCOPE} {APPS_SCOPE} {DIRECTORY_SCOPES}")

    def setUp(self):
        super().setUp()
        self.token = self.admin
        # A location of its own per test: one iOS app that takes device licences, with `available` free.
        loc, self.stoken = self.new_location(assets=6, assignments=10)
        self.uid = loc["uId"]
        self.token_id = self.wait_sync(self.add_token(self.stoken)["id"])["id"]
        apps = self.vppd.collect(APPS + "?$top=999&$filter=" + f"vppTokenId%20eq%20'{self.token_id}'", self.token)
        ios = [a for a in apps if a["@odata.type"] == "#microsoft.graph.iosVppApp"
               and a["licensingType"]["supportsDeviceLicensing"] and a["totalLicenseCount"] < 2_000_000_000]
        self.assertTrue(ios, apps)
        self.app = ios[0]
        self.adam = self.app["appStoreUrl"].rsplit("/id", 1)[1]

    # --- helpers -------------------------------------------------------------------------

    def ok(self, r, status):
        self.assertEqual(r.status, status, r)
        return r.json() if r.body else None

    def set_available(self, n):
        """Refunds or buys licences at the simulator until exactly n are free, then syncs."""
        asset = [a for a in self.sim.walk(f"assets?adamId={self.adam}", self.stoken, "assets")][0]
        delta = n - asset["availableCount"]
        path = f"locations/{self.uid}/" + ("purchase" if delta > 0 else "refund")
        if delta:
            self.sim.control("POST", path, {"adamId": self.adam, "pricingParam": asset["pricingParam"],
                                            "count": abs(delta)})
        self.ok(self.call("POST", f"{BASE}/{self.token_id}/syncLicenses"), 200)
        self.wait_sync(self.token_id)

    def device(self, serial):
        d = self.ok(self.call("POST", "/v1.0/devices", {"accountEnabled": True, "deviceId": str(uuid.uuid4()),
                                                         "displayName": serial, "operatingSystem": "iPadOS"}), 201)
        m = self.ok(self.call("POST", "/v1.0/deviceManagement/managedDevices",
                              {"serialNumber": serial, "deviceName": f"iPad {serial}", "azureADDeviceId": d["deviceId"],
                               "operatingSystem": "iOS"}), 201)
        return d["id"], m["id"]

    def group(self, serials):
        name = "g" + uuid.uuid4().hex[:8]
        g = self.ok(self.call("POST", "/v1.0/groups", {"displayName": name, "mailEnabled": False,
                                                        "mailNickname": name, "securityEnabled": True}), 201)
        ids = {}
        for serial in serials:
            ids[serial] = self.device(serial)
            self.add(g["id"], ids[serial][0])
        return g["id"], ids

    def add(self, group, member):
        self.ok(self.call("POST", f"/v1.0/groups/{group}/members/$ref",
                          {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{member}"}), 204)

    def assign(self, *items):
        self.ok(self.call("POST", f"{APPS}/{self.app['id']}/assign", {"mobileAppAssignments": list(items)}), 204)

    def include(self, group, intent="required"):
        return {"intent": intent, "settings": IOS_SETTINGS,
                "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group}}

    def at_apple(self, prefix):
        held = self.sim.walk(f"assignments?adamId={self.adam}", self.stoken, "assignments")
        return {a["serialNumber"] for a in held if a.get("serialNumber", "").startswith(prefix)}

    def wait_apple(self, prefix, expected, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.at_apple(prefix) == expected:
                return
            time.sleep(0.1)
        self.assertEqual(self.at_apple(prefix), expected, "what Apple holds after waiting")

    def apple_writes(self):
        counts = self.sim.control("GET", "counters")["byLocation"].get(self.uid, {})
        return {k: v for k, v in counts.items() if "/mdm/v2/" in k}

    def statuses(self):
        return self.vppd.collect(f"{APPS}/{self.app['id']}/deviceStatuses", self.token)

    def wait_statuses(self, expected, timeout=15):
        """deviceStatuses once its (installState, errorCode) list is `expected`."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            statuses = self.statuses()
            if [(s["installState"], s["errorCode"]) for s in statuses] == expected:
                return statuses
            time.sleep(0.1)
        self.assertEqual([(s["installState"], s["errorCode"]) for s in self.statuses()], expected)

    def report(self):
        tokens = json.loads(self.vppd.cli("tokens", "list", "--json", "--data-dir", self.vppd.data_dir).stdout)
        return [t for t in tokens if t["id"] == self.token_id][0]["lastReconcile"]

    def reconcile(self, *args):
        return self.vppd.cli("reconcile", self.token_id, "--wait", "--timeout", "30", "--data-dir",
                             self.vppd.data_dir, *args, check=False)

    # --- tests -----------------------------------------------------------------------------

    def test_assign_associates_and_a_device_leaving_the_group_is_disassociated(self):
        p = "A" + uuid.uuid4().hex[:5].upper()
        serials = {f"{p}{i}" for i in range(4)}
        self.set_available(4)
        group, ids = self.group(sorted(serials))
        self.assign(self.include(group))
        self.wait_apple(p, serials)

        # Leaving the group takes the licence back.
        gone = sorted(serials)[1]
        r = self.call("DELETE", f"/v1.0/groups/{group}/members/{ids[gone][0]}/$ref")
        self.assertEqual(r.status, 204, r)
        self.wait_apple(p, serials - {gone})

        # Once the disassociate's event is seen to end (Apple shows the change before vppd
        # polls it), nothing changed since: a second pass in a row makes no Apple call.
        r = self.reconcile()
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertIn("3 granted", r.stdout)
        self.assertEqual(self.report()["eventsInFlight"], 0, self.report())
        before = self.apple_writes()
        r = self.reconcile()
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertIn("3 granted", r.stdout)
        self.assertEqual(self.apple_writes(), before, "a second pass calls Apple for nothing")

    def test_an_import_is_reconciled_without_being_asked(self):
        # `vppd import` queues the reconcile a change through Graph would: the devices
        # a re-imported group gains get licences and those it loses lose them, with
        # no `vppd reconcile`.
        p = "I" + uuid.uuid4().hex[:5].upper()
        self.set_available(3)
        work = tempfile.mkdtemp(prefix="vppd-import-")
        self.addCleanup(shutil.rmtree, work, True)
        ids = [str(uuid.uuid4()) for _ in range(3)]
        group = str(uuid.uuid4())

        def importing(kind, text):
            path = os.path.join(work, kind + ".csv")
            with open(path, "w") as f:
                f.write(text)
            r = self.vppd.cli("import", kind, path, "--data-dir", self.vppd.data_dir, "--tenant", DEV_TENANT)
            self.assertEqual(r.returncode, 0, r.stderr)

        def group_of(members):
            importing("groups", f"id,displayName,mailNickname,members\n{group},{p},{p.lower()},{';'.join(members)}\n")

        importing("devices", "deviceId,displayName,serialNumber\n" + "".join(f"{d},{p}{n},{p}{n}\n"
                                                                              for n, d in enumerate(ids)))
        group_of([])
        self.assign(self.include(group))
        group_of(ids)
        self.wait_apple(p, {f"{p}0", f"{p}1", f"{p}2"})
        group_of(ids[1:])
        self.wait_apple(p, {f"{p}1", f"{p}2"})

    def test_exclusions_and_uninstall(self):
        p = "E" + uuid.uuid4().hex[:5].upper()
        serials = [f"{p}{i}" for i in range(3)]
        self.set_available(3)
        group, ids = self.group(serials)
        excluded, _ = self.group([])
        self.add(excluded, ids[serials[0]][0])
        exclusion = {"intent": "required",
                     "target": {"@odata.type": "#microsoft.graph.exclusionGroupAssignmentTarget", "groupId": excluded}}
        self.assign(self.include(group), exclusion)
        self.wait_apple(p, set(serials[1:]))
        self.assign(self.include(group, intent="uninstall"))
        self.wait_apple(p, set())

    def test_oversubscription_then_licences_bought(self):
        self.set_available(2)
        p = "O" + uuid.uuid4().hex[:5].upper()
        serials = [f"{p}{i}" for i in range(4)]
        group, ids = self.group(serials)
        self.assign(self.include(group))
        self.wait_apple(p, set(serials[:2]))  # earliest membership first
        deadline = time.time() + 10
        while time.time() < deadline and (self.report() or {}).get("notEnoughLicenses") != 2:
            time.sleep(0.1)
        self.assertEqual(self.report()["notEnoughLicenses"], 2, self.report())
        # deviceStatuses: every device of the group in that order, the last two failed
        # with Apple's "not enough licences" (pendingInstall until vppd sees the event end).
        statuses = self.wait_statuses([("installed", 0), ("installed", 0), ("failed", 9709), ("failed", 9709)])
        self.assertEqual([s["deviceName"] for s in statuses], [f"iPad {x}" for x in serials])
        self.assertEqual(statuses[2]["installStateDetail"], "seeInstallErrorCode")
        self.assertEqual({s["id"] for s in statuses}, {ids[x][1] for x in serials})
        self.set_available(2)  # two more bought; the sync queues a reconcile
        self.wait_apple(p, set(serials))
        self.wait_statuses([("installed", 0)] * 4)

        # Another MDM associates a serial no managed device here has (Apple's own API,
        # straight to the simulator); after a sync it is a licence vppd shows by serial.
        self.set_available(1)
        asset = self.sim.walk(f"assets?adamId={self.adam}", self.stoken, "assets")[0]
        stranger = f"{p}X"
        r = request(self.sim.port, "POST", "/mdm/v2/assets/associate", {"Authorization": "Bearer " + self.stoken},
                    {"assets": [{"adamId": self.adam, "pricingParam": asset["pricingParam"]}],
                     "serialNumbers": [stranger]})
        self.assertEqual(r.status, 200, r)
        self.wait_apple(p, set(serials) | {stranger})
        self.ok(self.call("POST", f"{BASE}/{self.token_id}/syncLicenses"), 200)
        self.wait_sync(self.token_id)
        licences = self.vppd.collect(f"{APPS}/{self.app['id']}/microsoft.graph.iosVppApp/assignedLicenses?$top=999",
                                     self.token)
        # assignedLicenses (Apple's licences at the last sync) names the managed device that
        # holds each serial; a serial no managed device has is shown by itself.
        devices = [x for x in licences if x["@odata.type"] == "#microsoft.graph.iosVppAppAssignedDeviceLicense"]
        ours = {x["managedDeviceId"]: x for x in devices if x["deviceName"].startswith(f"iPad {p}")}
        self.assertEqual(set(ours), {ids[x][1] for x in serials}, devices)
        for serial in serials:
            self.assertEqual(ours[ids[serial][1]]["deviceName"], f"iPad {serial}")
        alone = [x for x in licences if x.get("deviceName") == stranger]
        self.assertEqual(len(alone), 1, licences)
        self.assertIsNone(alone[0]["managedDeviceId"])
        self.assertIsNone(alone[0].get("userId"))

    def test_safety_cap_holds_back_then_force(self):
        p = "C" + uuid.uuid4().hex[:5].upper()
        serials = [f"{p}{i:02d}" for i in range(30)]
        self.set_available(30)
        group, ids = self.group(serials)
        self.assign(self.include(group))
        self.wait_apple(p, set(serials))
        for s in serials[:20]:
            self.assertEqual(self.call("DELETE", f"/v1.0/groups/{group}/members/{ids[s][0]}/$ref").status, 204)
        r = self.reconcile()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("10 reclaims held back", r.stdout)
        self.wait_apple(p, set(serials[10:]))
        r = self.reconcile("--force")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.wait_apple(p, set(serials[20:]))

    def test_kill_9_during_a_reconcile(self):
        p = "K" + uuid.uuid4().hex[:5].upper()
        serials = {f"{p}{i}" for i in range(3)}
        self.set_available(3)
        group, _ = self.group(sorted(serials))
        self.sim.control("POST", "faults", {"path": "/mdm/v2/assets/associate", "location": self.uid,
                                            "kind": "hold_event"})
        self.assign(self.include(group))
        deadline = time.time() + 20
        while time.time() < deadline and not self.apple_writes().get("POST /mdm/v2/assets/associate"):
            time.sleep(0.05)
        self.assertEqual(self.apple_writes().get("POST /mdm/v2/assets/associate"), 1)
        self.vppd.stop(signal.SIGKILL)
        self.sim.control("POST", "events/resolve", {})
        self.vppd.start()
        self.wait_apple(p, serials)
        self.assertEqual(self.apple_writes().get("POST /mdm/v2/assets/associate"), 1, "not sent twice")


if __name__ == "__main__":
    import unittest
    unittest.main()
