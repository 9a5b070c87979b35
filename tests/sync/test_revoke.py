"""Black-box tests of revoking VPP licences by app, person or device (issue 17):
an iosVppApp's revokeAllLicenses, revokeUserLicense and revokeDeviceLicense, a
managedDevice's revokeAppleVppLicenses, and the app's revokeLicenseActionResults,
through Graph over real sockets. What Apple holds is read from apple-vpp-sim, and
every bad input is checked to change nothing there or in vppd. SQLite, or
PostgreSQL when VPPD_TEST_DATABASE_URL is set.
"""
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import WRITE_SCOPE, request  # noqa: E402
from sim_vppd_case import APPS, APPS_SCOPE, BASE, SimVppdTestCase  # noqa: E402

DIRECTORY_SCOPES = ("User.ReadWrite.All Group.ReadWrite.All GroupMember.ReadWrite.All Device.ReadWrite.All "
                    "DeviceManagementManagedDevices.ReadWrite.All")
APPS_WRITE = "DeviceManagementApps.ReadWrite.All"
PRIVILEGED = "DeviceManagementManagedDevices.PrivilegedOperations.All"
IOS = "microsoft.graph.iosVppApp"


class Revoke(SimVppdTestCase):
    sim_args = ("--assets", "12", "--locations", "1", "--seed", "17", "--event-delay-ms", "50")
    vppd_args = ("--sync-interval-seconds", "0", "--throttle-window-seconds", "0", "--sync-event-poll-ms", "100")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = cls.vppd.dev_token("--scopes",
                                       f"{WRITE_SCOPE} {APPS_SCOPE} {APPS_WRITE} {PRIVILEGED} {DIRECTORY_SCOPES}")

    def setUp(self):
        super().setUp()
        self.token = self.admin
        # A location of its own per test, with no licences handed out yet.
        loc, self.stoken = self.new_location(assets=24, assignments=0)
        self.uid = loc["uId"]
        self.token_id = self.wait_sync(self.add_token(self.stoken)["id"])["id"]
        apps = self.vppd.collect(APPS + "?$top=999&$filter=" + f"vppTokenId%20eq%20'{self.token_id}'", self.token)
        ios = [a for a in apps if a["@odata.type"] == "#" + IOS and a["licensingType"]["supportsDeviceLicensing"]
               and a["totalLicenseCount"] >= 6]
        self.assertGreaterEqual(len(ios), 2, apps)
        self.app, self.other = ios[0], ios[1]
        self.mac = [a for a in apps if a["@odata.type"] == "#microsoft.graph.macOsVppApp"]

    # --- helpers -------------------------------------------------------------------------

    def ok(self, r, status):
        self.assertEqual(r.status, status, r)
        return r.json() if r.body else None

    def adam(self, app):
        return app["appStoreUrl"].rsplit("/id", 1)[1]

    def pricing(self, app):
        asset = self.sim.walk(f"assets?adamId={self.adam(app)}", self.stoken, "assets")[0]
        return asset["pricingParam"]

    def user(self):
        """A directory user, registered at Apple under clientUserId = its id (as vppd registers users)."""
        name = "u" + uuid.uuid4().hex[:8]
        u = self.ok(self.call("POST", "/v1.0/users", {"accountEnabled": True, "displayName": name,
                                                       "mailNickname": name,
                                                       "userPrincipalName": f"{name}@example.com",
                                                       "passwordProfile": {"password": "x" * 12}}), 201)
        r = request(self.sim.port, "POST", "/mdm/v2/users/create", {"Authorization": "Bearer " + self.stoken},
                    {"users": [{"clientUserId": u["id"], "email": f"{name}@example.com"}]})
        self.assertEqual(r.status, 200, r)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.sim.walk(f"users?clientUserId={u['id']}", self.stoken, "users"):
                return u["id"]
            time.sleep(0.05)
        self.fail("the simulator never registered the user")

    def device(self, serial):
        d = self.ok(self.call("POST", "/v1.0/devices", {"accountEnabled": True, "deviceId": str(uuid.uuid4()),
                                                         "displayName": serial, "operatingSystem": "iPadOS"}), 201)
        m = self.ok(self.call("POST", "/v1.0/deviceManagement/managedDevices",
                              {"serialNumber": serial, "deviceName": f"iPad {serial}", "azureADDeviceId": d["deviceId"],
                               "operatingSystem": "iOS"}), 201)
        return m["id"]

    def hold(self, app, *, users=(), serials=()):
        """Licences of `app` given at Apple (as in Apple Business Manager), then a sync so vppd sees them."""
        items = [{"adamId": self.adam(app), "pricingParam": self.pricing(app), "clientUserId": u} for u in users]
        items += [{"adamId": self.adam(app), "pricingParam": self.pricing(app), "serialNumber": s} for s in serials]
        self.sim.control("POST", f"locations/{self.uid}/assignments", {"add": items})

    def sync(self):
        self.ok(self.call("POST", f"{BASE}/{self.token_id}/syncLicenses"), 200)
        self.wait_sync(self.token_id)

    def at_apple(self, app):
        held = self.sim.walk(f"assignments?adamId={self.adam(app)}", self.stoken, "assignments")
        return {("u:" + a["clientUserId"]) if a.get("clientUserId") else ("d:" + a["serialNumber"]) for a in held}

    def wait_apple(self, app, expected, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.at_apple(app) == expected:
                return
            time.sleep(0.1)
        self.assertEqual(self.at_apple(app), expected, "what Apple holds after waiting")

    def results(self, app):
        return self.ok(self.call("GET", f"{APPS}/{app['id']}"), 200)["revokeLicenseActionResults"]

    def wait_results(self, app, n, timeout=30):
        """The app's revokeLicenseActionResults once `n` of them have ended."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            results = self.results(app)
            if len([r for r in results if r["actionState"] in ("done", "failed")]) >= n:
                return results
            time.sleep(0.1)
        self.fail(f"revokeLicenseActionResults: {self.results(app)}")

    def action(self, app, name, body, cast=True, token=None):
        path = f"{APPS}/{app['id']}/{IOS}/{name}" if cast else f"{APPS}/{app['id']}/{name}"
        return self.call("POST", path, body, token=token)

    def assert_error(self, r, status, code, *fragments):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.error_code(), code, r)
        for f in fragments:
            self.assertIn(f, r.error_message(), r)

    # --- the actions ---------------------------------------------------------------------

    def test_revoke_user_license_disassociates_that_users_licence_only(self):
        u1, u2 = self.user(), self.user()
        p = "U" + uuid.uuid4().hex[:5].upper()
        self.hold(self.app, users=[u1, u2], serials=[f"{p}0"])
        self.hold(self.other, users=[u1])
        self.sync()
        r = self.action(self.app, "revokeUserLicense", {"userId": u1, "notifyManagedDevices": True})
        self.assertEqual(r.status, 204, r)
        self.wait_apple(self.app, {f"u:{u2}", f"d:{p}0"})
        self.assertEqual(self.at_apple(self.other), {f"u:{u1}"}, "the user's licence of another app is kept")
        [result] = self.wait_results(self.app, 1)
        self.assertEqual(result["actionName"], "revokeUserLicense")
        self.assertEqual(result["actionState"], "done")
        self.assertEqual(result["userId"], u1)
        self.assertIsNone(result["managedDeviceId"])
        self.assertEqual((result["totalLicensesCount"], result["failedLicensesCount"]), (1, 0))
        self.assertEqual(result["actionFailureReason"], "none")
        self.assertEqual(self.results(self.other), [])

        # The SDKs' alias form, without the cast: the same action.
        r = self.call("POST", f"{APPS}/{self.app['id']}/graph.revokeUserLicense",
                      {"userId": u2, "notifyManagedDevices": False})
        self.assertEqual(r.status, 204, r)
        self.wait_apple(self.app, {f"d:{p}0"})

    def test_revoke_device_license_disassociates_that_serial_of_that_app_only(self):
        p = "D" + uuid.uuid4().hex[:5].upper()
        first, second = self.device(f"{p}0"), self.device(f"{p}1")
        self.hold(self.app, serials=[f"{p}0", f"{p}1"])
        self.hold(self.other, serials=[f"{p}0"])
        self.sync()
        r = self.action(self.app, "revokeDeviceLicense", {"managedDeviceId": first, "notifyManagedDevices": True},
                        cast=False)
        self.assertEqual(r.status, 204, r)
        self.wait_apple(self.app, {f"d:{p}1"})
        self.assertEqual(self.at_apple(self.other), {f"d:{p}0"})
        [result] = self.wait_results(self.app, 1)
        self.assertEqual((result["actionName"], result["managedDeviceId"], result["userId"]),
                         ("revokeDeviceLicense", first, None))
        self.assertEqual(result["totalLicensesCount"], 1)
        self.assertNotEqual(second, first)

    def test_revoke_all_licenses_takes_every_licence_of_the_app(self):
        u1 = self.user()
        p = "A" + uuid.uuid4().hex[:5].upper()
        self.hold(self.app, users=[u1], serials=[f"{p}0", f"{p}1"])
        self.hold(self.other, serials=[f"{p}0"])
        self.sync()
        # Given at Apple after the last sync: untracked, kept unless asked.
        self.hold(self.app, serials=[f"{p}X"])
        r = self.action(self.app, "revokeAllLicenses", {"notifyManagedDevices": True})
        self.assertEqual(r.status, 204, r)
        self.wait_apple(self.app, {f"d:{p}X"})
        self.assertEqual(self.wait_results(self.app, 1)[0]["totalLicensesCount"], 3)
        r = self.action(self.app, "revokeAllLicenses", {"notifyManagedDevices": False, "revokeUntrackedLicenses": True})
        self.assertEqual(r.status, 204, r)
        self.wait_apple(self.app, set())
        self.assertEqual(self.at_apple(self.other), {f"d:{p}0"}, "another app is untouched")
        results = self.wait_results(self.app, 2)
        self.assertEqual([x["actionState"] for x in results], ["done", "done"])

    def test_revoke_apple_vpp_licenses_takes_every_licence_of_the_device(self):
        p = "M" + uuid.uuid4().hex[:5].upper()
        device = self.device(f"{p}0")
        self.device(f"{p}1")
        self.hold(self.app, serials=[f"{p}0", f"{p}1"])
        self.hold(self.other, serials=[f"{p}0"])
        self.sync()
        # DeviceManagementManagedDevices.PrivilegedOperations.All, and nothing less.
        weaker = self.vppd.dev_token("--scopes", f"{APPS_WRITE} DeviceManagementManagedDevices.ReadWrite.All")
        r = self.call("POST", f"/beta/deviceManagement/managedDevices/{device}/revokeAppleVppLicenses", token=weaker)
        self.assert_error(r, 403, "Forbidden", PRIVILEGED)
        r = self.call("POST", f"/beta/deviceManagement/managedDevices/{device}/revokeAppleVppLicenses")
        self.assertEqual(r.status, 204, r)
        self.wait_apple(self.app, {f"d:{p}1"})
        self.wait_apple(self.other, set())
        for app in (self.app, self.other):
            [result] = self.wait_results(app, 1)
            self.assertEqual((result["actionName"], result["managedDeviceId"], result["actionState"]),
                             ("revokeAppleVppLicenses", device, "done"))
        # Graph records the device's action on the device too: one result for the request.
        [action] = self.ok(self.call("GET", f"/beta/deviceManagement/managedDevices/{device}"), 200)[
            "deviceActionResults"]
        self.assertEqual(action["@odata.type"], "#microsoft.graph.revokeAppleVppLicensesActionResult")
        self.assertEqual((action["actionName"], action["actionState"], action["totalLicensesCount"],
                          action["failedLicensesCount"]), ("revokeAppleVppLicenses", "done", 2, 0))
        listed = self.vppd.collect("/beta/deviceManagement/managedDevices", self.token)
        self.assertEqual([m["deviceActionResults"] for m in listed if m["id"] == device], [[action]])
        self.assertNotIn("deviceActionResults",
                         self.ok(self.call("GET", f"/v1.0/deviceManagement/managedDevices/{device}"), 200))

    def test_a_licence_still_assigned_is_granted_again(self):
        """As Intune documents it, removing the assignment is the prerequisite of a revoke: a
        device the app is still assigned to gets its licence back with the next reconcile."""
        p = "R" + uuid.uuid4().hex[:5].upper()
        d = self.ok(self.call("POST", "/v1.0/devices", {"accountEnabled": True, "deviceId": str(uuid.uuid4()),
                                                         "displayName": p, "operatingSystem": "iPadOS"}), 201)
        managed = self.ok(self.call("POST", "/v1.0/deviceManagement/managedDevices",
                                    {"serialNumber": f"{p}0", "azureADDeviceId": d["deviceId"],
                                     "operatingSystem": "iOS"}), 201)["id"]
        g = self.ok(self.call("POST", "/v1.0/groups", {"displayName": p, "mailEnabled": False, "mailNickname": p,
                                                        "securityEnabled": True}), 201)["id"]
        self.ok(self.call("POST", f"/v1.0/groups/{g}/members/$ref",
                          {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{d['id']}"}), 204)
        assignment = {"intent": "required",
                      "settings": {"@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings",
                                   "useDeviceLicensing": True},
                      "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": g}}
        self.ok(self.call("POST", f"{APPS}/{self.app['id']}/assign", {"mobileAppAssignments": [assignment]}), 204)
        self.wait_apple(self.app, {f"d:{p}0"})
        r = self.action(self.app, "revokeDeviceLicense", {"managedDeviceId": managed, "notifyManagedDevices": True})
        self.assertEqual(r.status, 204, r)
        self.wait_results(self.app, 1)
        self.wait_apple(self.app, {f"d:{p}0"})  # the resync's reconcile granted it again
        counters = self.sim.control("GET", "counters")["byLocation"][self.uid]
        self.assertGreaterEqual(counters.get("POST /mdm/v2/assets/associate", 2), 2, counters)
        self.assertGreaterEqual(counters.get("POST /mdm/v2/assets/disassociate", 1), 1, counters)

    def test_licences_vppd_granted_people_since_the_last_sync_are_revoked(self):
        """A person's licence vppd granted (an assignment without device licensing, the
        invitation accepted) is known to vppd before any sync sees it: revokeUserLicense and
        revokeAllLicenses take it back."""
        name = "p" + uuid.uuid4().hex[:8]
        person = self.ok(self.call("POST", "/v1.0/users", {"accountEnabled": True, "displayName": name,
                                                            "mailNickname": name,
                                                            "userPrincipalName": f"{name}@example.com"}), 201)["id"]
        g = self.ok(self.call("POST", "/v1.0/groups", {"displayName": name, "mailEnabled": False,
                                                        "mailNickname": name, "securityEnabled": True}), 201)["id"]
        self.ok(self.call("POST", f"/v1.0/groups/{g}/members/$ref",
                          {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{person}"}), 204)
        synced = self.ok(self.call("GET", f"{BASE}/{self.token_id}"), 200)["lastSyncDateTime"]
        assignment = {"intent": "required",
                      "settings": {"@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings",
                                   "useDeviceLicensing": False},
                      "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": g}}
        self.ok(self.call("POST", f"{APPS}/{self.app['id']}/assign", {"mobileAppAssignments": [assignment]}), 204)
        deadline = time.time() + 30
        while time.time() < deadline and not self.sim.walk(f"users?clientUserId={person}", self.stoken, "users"):
            time.sleep(0.1)
        self.sim.control("POST", f"locations/{self.uid}/acceptInvitation", {"clientUserIds": [person]})
        self.wait_apple(self.app, {f"u:{person}"})
        self.assertEqual(self.ok(self.call("GET", f"{BASE}/{self.token_id}"), 200)["lastSyncDateTime"], synced,
                         "no sync has seen the licence")

        r = self.action(self.app, "revokeUserLicense", {"userId": person, "notifyManagedDevices": False})
        self.assertEqual(r.status, 204, r)
        [result] = self.wait_results(self.app, 1)
        self.assertEqual((result["actionName"], result["actionState"], result["totalLicensesCount"],
                          result["failedLicensesCount"]), ("revokeUserLicense", "done", 1, 0), result)
        counters = self.sim.control("GET", "counters")["byLocation"][self.uid]
        self.assertGreaterEqual(counters.get("POST /mdm/v2/assets/disassociate", 0), 1, counters)

        # The assignment stands: the resync's reconcile grants it again (Intune: remove the
        # assignment first), and again no sync has seen that grant when all licences are revoked.
        self.wait_apple(self.app, {f"u:{person}"})
        status = f"/v1.0/users/{person}/vppUserStatus"
        deadline = time.time() + 30
        while time.time() < deadline and [x["state"] for x in self.ok(self.call("GET", status), 200)["locations"][0][
                "licenses"]] != ["granted"]:
            time.sleep(0.1)
        self.assertNotIn(f"u:{person}", {("u:" + a["userId"]) for a in self.vppd.collect(
            f"{APPS}/{self.app['id']}/{IOS}/assignedLicenses", self.token) if a.get("userId")},
                         "the last sync saw the person without a licence")
        r = self.action(self.app, "revokeAllLicenses", {"notifyManagedDevices": False})
        self.assertEqual(r.status, 204, r)
        results = self.wait_results(self.app, 2)
        self.assertEqual((results[1]["actionName"], results[1]["actionState"], results[1]["totalLicensesCount"]),
                         ("revokeAllLicenses", "done", 1), results)

    # --- bad input: a precise error, and nothing done ----------------------------------------

    def test_bad_input_changes_nothing(self):
        u1, holds_nothing = self.user(), self.user()
        p = "B" + uuid.uuid4().hex[:5].upper()
        device, bare = self.device(f"{p}0"), self.device(f"{p}1")
        self.hold(self.app, users=[u1], serials=[f"{p}0"])
        self.sync()
        before = self.at_apple(self.app)
        missing = str(uuid.uuid4())
        cases = [
            # A device, or a user, without a licence of that app.
            (self.action(self.app, "revokeDeviceLicense", {"managedDeviceId": bare, "notifyManagedDevices": True}),
             400, "BadRequest", [f"{p}1", "holds no licence"]),
            (self.action(self.other, "revokeDeviceLicense", {"managedDeviceId": device, "notifyManagedDevices": True}),
             400, "BadRequest", ["holds no licence"]),
            (self.action(self.app, "revokeUserLicense", {"userId": holds_nothing, "notifyManagedDevices": True}),
             400, "BadRequest", [holds_nothing]),
            # Unknown ids.
            (self.action(self.app, "revokeUserLicense", {"userId": missing, "notifyManagedDevices": True}),
             404, "ResourceNotFound", [missing]),
            (self.action(self.app, "revokeDeviceLicense", {"managedDeviceId": missing, "notifyManagedDevices": True}),
             404, "ResourceNotFound", [missing]),
            (self.call("POST", f"/beta/deviceManagement/managedDevices/{missing}/revokeAppleVppLicenses"),
             404, "ResourceNotFound", [missing]),
            (self.call("POST", f"/beta/deviceManagement/managedDevices/{bare}/revokeAppleVppLicenses"),
             400, "BadRequest", ["holds no Apple VPP licence"]),
            # notifyManagedDevices of the wrong type, missing parameters, unknown ones.
            (self.action(self.app, "revokeUserLicense", {"userId": u1, "notifyManagedDevices": "yes"}),
             400, "BadRequest", ["notifyManagedDevices", "true or false"]),
            (self.action(self.app, "revokeAllLicenses", {"notifyManagedDevices": 1}),
             400, "BadRequest", ["notifyManagedDevices"]),
            (self.action(self.app, "revokeUserLicense", {"notifyManagedDevices": True}),
             400, "BadRequest", ["userId", "required"]),
            (self.action(self.app, "revokeDeviceLicense", {"managedDeviceId": device}),
             400, "BadRequest", ["notifyManagedDevices", "required"]),
            (self.action(self.app, "revokeUserLicense", {"userId": 7, "notifyManagedDevices": True}),
             400, "BadRequest", ["userId"]),
            (self.action(self.app, "revokeAllLicenses", {"notifyManagedDevices": True, "userId": u1}),
             400, "BadRequest", ["userId", "not a parameter of revokeAllLicenses"]),
            (self.action(self.app, "revokeAllLicenses", {"notifyManagedDevices": True,
                                                          "revokeUntrackedLicenses": "all"}),
             400, "BadRequest", ["revokeUntrackedLicenses"]),
            # Not a VPP app of this tenant (a book is no mobileApp either), or not of the cast's type.
            (self.call("POST", f"{APPS}/{missing}/{IOS}/revokeAllLicenses", {"notifyManagedDevices": True}),
             404, "ResourceNotFound", [missing]),
        ]
        if self.mac:
            cases.append((self.call("POST", f"{APPS}/{self.mac[0]['id']}/{IOS}/revokeAllLicenses",
                                    {"notifyManagedDevices": True}), 404, "ResourceNotFound", ["iosVppApp"]))
        for r, status, code, fragments in cases:
            with self.subTest(request=r.body[:120]):
                self.assert_error(r, status, code, *fragments)
        # Beta only; a body that is not JSON; permissions as Graph names them.
        r = self.call("POST", f"/v1.0/deviceAppManagement/mobileApps/{self.app['id']}/{IOS}/revokeAllLicenses",
                      {"notifyManagedDevices": True})
        self.assertEqual(r.status, 400, r)
        r = self.call("POST", f"{APPS}/{self.app['id']}/{IOS}/revokeAllLicenses", "notify=true",
                      headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 415, r)
        reader = self.vppd.dev_token("--scopes", "DeviceManagementApps.Read.All")
        r = self.action(self.app, "revokeAllLicenses", {"notifyManagedDevices": True}, token=reader)
        self.assert_error(r, 403, "Forbidden", APPS_WRITE)

        self.assertEqual(self.results(self.app), [])
        self.assertEqual(self.results(self.other), [])
        time.sleep(0.5)
        self.assertEqual(self.at_apple(self.app), before)

    def test_metadata_declares_the_actions(self):
        r = self.call("GET", "/beta/$metadata")
        self.assertEqual(r.status, 200, r)
        doc = r.body.decode() if isinstance(r.body, bytes) else r.body
        for name, binding in [("revokeAllLicenses", "microsoft.graph.iosVppApp"),
                              ("revokeUserLicense", "microsoft.graph.iosVppApp"),
                              ("revokeDeviceLicense", "microsoft.graph.iosVppApp"),
                              ("revokeAppleVppLicenses", "microsoft.graph.managedDevice")]:
            start = doc.find(f'<Action Name="{name}" IsBound="true">')
            self.assertNotEqual(start, -1, name)
            self.assertIn(f'<Parameter Name="bindingParameter" Type="{binding}"', doc[start:start + 400])
        self.assertIn('<Parameter Name="userId" Type="Edm.String"', doc)
        self.assertIn('<Parameter Name="managedDeviceId" Type="Edm.String"', doc)
