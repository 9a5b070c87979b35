"""How the reconcile job's Apple events end when Apple's notifications are on
(issue 16): an ASSET_MANAGEMENT notification settles them, no GET /status is
made (per the simulator's request log), per-serial failures in it are recorded on
their device, a duplicate delivery is applied once, and when the notification is
dropped the job polls /status after sync.event_notification_wait_seconds.

The set-up is test_notifications.py's: the simulator delivers through a small
proxy that stands for vppd's public URL. SQLite, or PostgreSQL when
VPPD_TEST_DATABASE_URL is set. Where a licence stands is read from the store
(Graph's deviceStatuses is not served yet).
"""
import json
import os
import sqlite3
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PG_ADMIN_URL, WRITE_SCOPE, psql, request  # noqa: E402
from sim_vppd_case import APPS, APPS_SCOPE  # noqa: E402
from test_notifications import NotificationsCase, wait_for  # noqa: E402

DIRECTORY_SCOPES = ("User.ReadWrite.All Group.ReadWrite.All GroupMember.ReadWrite.All Device.ReadWrite.All "
                    "DeviceManagementManagedDevices.ReadWrite.All")
IOS_SETTINGS = {"@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings", "useDeviceLicensing": True}


class EventNotificationsCase(NotificationsCase):
    sim_args = NotificationsCase.sim_args + ("--event-delay-ms", "50")
    wait_seconds = "300"  # Apple's 5 minutes: any /status call within a test is a poll vppd should not have made

    @classmethod
    def setUpClass(cls):
        cls.vppd_args = ("--sync-event-poll-ms", "100", "--sync-event-notification-wait-seconds", cls.wait_seconds)
        super().setUpClass()
        cls.token = cls.vppd.dev_token("--scopes", f"{WRITE_SCOPE} {APPS_SCOPE} {DIRECTORY_SCOPES}")

    def setUp(self):
        super().setUp()
        self.sim.control("DELETE", "faults")
        self.uid, self.stoken, self.token_id = self.add_location()
        apps = self.vppd.collect(APPS + "?$top=999&$filter=" + f"vppTokenId%20eq%20'{self.token_id}'", self.token)
        ios = [a for a in apps if a["@odata.type"] == "#microsoft.graph.iosVppApp"
               and a["licensingType"]["supportsDeviceLicensing"] and a["totalLicenseCount"] < 2_000_000_000]
        self.assertTrue(ios, apps)
        self.app = max(ios, key=lambda a: a["totalLicenseCount"] - a["usedLicenseCount"])
        self.adam = self.app["appStoreUrl"].rsplit("/id", 1)[1]
        free = self.app["totalLicenseCount"] - self.app["usedLicenseCount"]
        if free < 5:  # bought at the simulator; its ASSET_COUNT brings the count to vppd
            self.sim.control("POST", f"locations/{self.uid}/purchase", {"adamId": self.adam, "count": 10})
            wait_for("the purchase in Graph", lambda: self.call("GET", f"{APPS}/{self.app['id']}").json()[
                "totalLicenseCount"] == self.app["totalLicenseCount"] + 10, timeout=10)

    # --- helpers -------------------------------------------------------------------------

    def ok(self, r, status):
        self.assertEqual(r.status, status, r)
        return r.json() if r.body else None

    def assign_group(self, serials):
        """A group of new devices with these serials, the app assigned to it with device licensing."""
        name = "g" + uuid.uuid4().hex[:8]
        group = self.ok(self.call("POST", "/v1.0/groups", {"displayName": name, "mailEnabled": False,
                                                            "mailNickname": name, "securityEnabled": True}), 201)
        for serial in serials:
            d = self.ok(self.call("POST", "/v1.0/devices", {"accountEnabled": True, "deviceId": str(uuid.uuid4()),
                                                             "displayName": serial, "operatingSystem": "iPadOS"}), 201)
            self.ok(self.call("POST", "/v1.0/deviceManagement/managedDevices",
                              {"serialNumber": serial, "deviceName": serial, "azureADDeviceId": d["deviceId"],
                               "operatingSystem": "iOS"}), 201)
            self.ok(self.call("POST", f"/v1.0/groups/{group['id']}/members/$ref",
                              {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{d['id']}"}), 204)
        self.ok(self.call("POST", f"{APPS}/{self.app['id']}/assign", {"mobileAppAssignments": [{
            "intent": "required", "settings": IOS_SETTINGS,
            "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group["id"]}}]}), 204)

    def at_apple(self, serials):
        held = self.sim.walk(f"assignments?adamId={self.adam}", self.stoken, "assignments")
        return {a["serialNumber"] for a in held if a.get("serialNumber") in serials}

    def report(self):
        tokens = json.loads(self.vppd.cli("tokens", "list", "--json", "--data-dir", self.vppd.data_dir).stdout)
        return [t for t in tokens if t["id"] == self.token_id][0]["lastReconcile"] or {}

    def settled(self, granted, failed=0, timeout=15):
        """Waits for a reconcile report with every event settled: `granted` and `failed` devices."""
        return wait_for(f"{granted} granted and {failed} failed, no event in flight", lambda: (lambda r: r if (
            r.get("granted") == granted and r.get("failed") == failed and r.get("eventsInFlight") == 0
            and r.get("pending") == 0) else None)(self.report()), timeout=timeout)

    def licences(self):
        """{serial: (state, error code)} of the token's device licences, from the store."""
        sql = ("SELECT serial_number, state, error_code FROM device_licenses "
               f"WHERE token_id = '{self.token_id}' ORDER BY serial_number")
        if self.vppd.database_url:
            rows = [line.split("|") for line in psql(self.vppd.database_url, sql).splitlines() if line]
        else:
            with sqlite3.connect(os.path.join(self.vppd.data_dir, "vppd.db"), timeout=10) as db:
                rows = db.execute(sql).fetchall()
        return {serial: (state, code) for serial, state, code in rows}

    def user_licences(self):
        """{clientUserId: (state, error code)} of the token's user licences, from the store."""
        sql = ("SELECT client_user_id, state, error_code FROM user_licenses "
               f"WHERE token_id = '{self.token_id}' ORDER BY client_user_id")
        if self.vppd.database_url:
            rows = [line.split("|") for line in psql(self.vppd.database_url, sql).splitlines() if line]
        else:
            with sqlite3.connect(os.path.join(self.vppd.data_dir, "vppd.db"), timeout=10) as db:
                rows = db.execute(sql).fetchall()
        return {user: (state, code) for user, state, code in rows}

    def status_polls(self):
        counts = self.sim.control("GET", "counters")["byLocation"].get(self.uid, {})
        return counts.get("GET /mdm/v2/status", 0)

    def managements(self):
        return [d for d in self.deliveries() if d["notificationType"] == "ASSET_MANAGEMENT" and d["uId"] == self.uid]

    def metric(self, line_start):
        for line in request(self.vppd.port, "GET", "/metrics").body.splitlines():
            if line.startswith(line_start + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


class EventNotifications(EventNotificationsCase):
    def test_an_associate_is_settled_by_its_notification_without_a_status_poll(self):
        p = "N" + uuid.uuid4().hex[:5].upper()
        serials = {f"{p}{i}" for i in range(3)}
        applied = 'vppd_apple_notifications_applied_total{type="ASSET_MANAGEMENT",outcome="applied"}'
        before = self.metric(applied)
        start = time.time()
        self.assign_group(sorted(serials))
        self.settled(granted=3)
        print(f"\n  assign → every licence granted: {time.time() - start:.3f} s (no poll before 300 s)",
              file=sys.stderr)
        self.assertEqual(self.at_apple(serials), serials)
        self.assertEqual(self.licences(), {s: ("granted", "") for s in serials})
        self.assertEqual(self.status_polls(), 0, "the notification said it: no GET /status")
        delivered = self.managements()
        self.assertTrue(delivered and all(d["status"] == 200 for d in delivered), delivered)
        self.assertEqual(self.metric(applied) - before, len(delivered))

    def test_a_persons_licence_is_settled_by_its_notification_without_a_status_poll(self):
        """Issue 17: an associate by clientUserId is settled by the ASSET_MANAGEMENT that names the
        person, as a device's is; no /status poll (the wait is 300 s)."""
        name = "p" + uuid.uuid4().hex[:8]
        person = self.ok(self.call("POST", "/v1.0/users", {"accountEnabled": True, "displayName": name,
                                                            "mailNickname": name,
                                                            "userPrincipalName": f"{name}@example.com"}), 201)["id"]
        group = self.ok(self.call("POST", "/v1.0/groups", {"displayName": name, "mailEnabled": False,
                                                            "mailNickname": name, "securityEnabled": True}), 201)
        self.ok(self.call("POST", f"/v1.0/groups/{group['id']}/members/$ref",
                          {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{person}"}), 204)
        self.ok(self.call("POST", f"{APPS}/{self.app['id']}/assign", {"mobileAppAssignments": [{
            "intent": "required", "settings": dict(IOS_SETTINGS, useDeviceLicensing=False),
            "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group["id"]}}]}), 204)
        wait_for("the person registered at Apple", lambda: self.sim.walk(f"users?clientUserId={person}", self.stoken,
                                                                          "users"))
        self.sim.control("POST", f"locations/{self.uid}/acceptInvitation", {"clientUserIds": [person]})
        wait_for("the person's licence granted", lambda: self.user_licences() == {person: ("granted", "")},
                 timeout=15)
        held = self.sim.walk(f"assignments?adamId={self.adam}", self.stoken, "assignments")
        self.assertIn(person, {a.get("clientUserId") for a in held})
        self.assertEqual(self.status_polls(), 0, "the notifications said it: no GET /status")
        named = [d for d in self.managements() if d["status"] == 200]
        self.assertTrue(named, self.managements())

    def test_a_per_serial_failure_in_the_notification_is_recorded_on_its_device(self):
        p = "F" + uuid.uuid4().hex[:5].upper()
        serials = [f"{p}{i}" for i in range(3)]
        self.sim.control("POST", "faults", {"path": "/mdm/v2/assets/associate", "location": self.uid,
                                            "kind": "event_failure", "errorNumber": 9610,
                                            "serialNumbers": [serials[1]]})
        self.assign_group(serials)
        self.settled(granted=2, failed=1)
        self.assertEqual(self.licences(), {serials[0]: ("granted", ""), serials[1]: ("failed", "9610"),
                                           serials[2]: ("granted", "")})
        self.assertEqual(self.at_apple(set(serials)), {serials[0], serials[2]})
        self.assertEqual(self.status_polls(), 0)
        results = sorted(d["body"]["notification"]["result"] for d in self.managements())
        self.assertEqual(results, ["FAILURE", "SUCCESS"], "one notification per outcome")

    def test_a_duplicate_delivery_completes_the_event_once(self):
        self.sim.control("POST", "notificationFaults", {"kind": "duplicate", "type": "ASSET_MANAGEMENT"})
        duplicate = 'vppd_apple_notifications_total{type="ASSET_MANAGEMENT",outcome="duplicate"}'
        applied = 'vppd_apple_notifications_applied_total{type="ASSET_MANAGEMENT",outcome="applied"}'
        before = (self.metric(duplicate), self.metric(applied))
        p = "D" + uuid.uuid4().hex[:5].upper()
        serials = {f"{p}{i}" for i in range(2)}
        self.assign_group(sorted(serials))
        self.settled(granted=2)
        wait_for("the duplicate delivered", lambda: any(d.get("duplicate") and d["outcome"] == "delivered"
                                                         for d in self.managements()))
        time.sleep(0.5)  # the duplicate had every chance to be applied a second time
        self.assertEqual(self.metric(duplicate) - before[0], 1)
        self.assertEqual(self.metric(applied) - before[1], 1, "applied once")
        self.assertEqual(self.licences(), {s: ("granted", "") for s in serials})
        self.assertEqual(self.status_polls(), 0)


@unittest.skipUnless(PG_ADMIN_URL, "VPPD_TEST_DATABASE_URL is not set: two instances need PostgreSQL")
class TwoInstancesOnPostgres(EventNotificationsCase):
    instances = 2

    def test_parts_of_one_event_applied_by_two_instances_settle_it_once(self):
        # Two notifications for one event (one per outcome), delivered round robin
        # to two instances on one database, each twice.
        self.sim.control("POST", "notificationFaults", {"kind": "duplicate", "type": "ASSET_MANAGEMENT"})
        p = "T" + uuid.uuid4().hex[:5].upper()
        serials = [f"{p}{i}" for i in range(4)]
        self.sim.control("POST", "faults", {"path": "/mdm/v2/assets/associate", "location": self.uid,
                                            "kind": "event_failure", "errorNumber": 9610,
                                            "serialNumbers": [serials[3]]})
        self.assign_group(serials)
        self.settled(granted=3, failed=1)
        self.assertEqual(self.licences(), {**{s: ("granted", "") for s in serials[:3]}, serials[3]: ("failed", "9610")})
        self.assertEqual(self.status_polls(), 0)
        delivered = self.managements()
        self.assertEqual(len(delivered), 4, "two notifications, each delivered twice")
        self.assertTrue(all(d["status"] == 200 for d in delivered), delivered)
        self.assertEqual(len(self.proxy.served), 2, self.proxy.served)


class DroppedEventNotifications(EventNotificationsCase):
    wait_seconds = "2"

    def test_a_dropped_notification_is_covered_by_the_poll_after_the_wait(self):
        self.sim.control("POST", "notificationFaults", {"kind": "drop", "type": "ASSET_MANAGEMENT",
                                                        "location": self.uid})
        p = "L" + uuid.uuid4().hex[:5].upper()
        serials = {f"{p}{i}" for i in range(2)}
        start = time.time()
        self.assign_group(sorted(serials))
        wait_for("the associate sent", lambda: self.sim.control("GET", "counters")["byLocation"].get(
            self.uid, {}).get("POST /mdm/v2/assets/associate"))
        time.sleep(1)
        self.assertEqual(self.status_polls(), 0, "not polled before the wait")
        self.settled(granted=2)
        took = time.time() - start
        print(f"\n  dropped notification → granted by the poll: {took:.3f} s (wait 2 s)", file=sys.stderr)
        self.assertGreaterEqual(took, 2)
        self.assertGreaterEqual(self.status_polls(), 1)
        self.assertEqual(self.licences(), {s: ("granted", "") for s in serials})
        self.assertEqual([d["outcome"] for d in self.managements()], ["dropped"])


if __name__ == "__main__":
    unittest.main()
