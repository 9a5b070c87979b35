"""Black-box tests of user licences (issue 17): an app assigned to a group of users with
useDeviceLicensing false; vppd registers the people at apple-vpp-sim, a test plays the person
who accepts Apple's invitation (/_sim/), licences are associated by clientUserId; a deleted
user's Apple user is retired and the licence released. Graph's userStatuses, vppd's
users/{id}/vppUserStatus and assignedLicenses' user fields. SQLite, or PostgreSQL when
VPPD_TEST_DATABASE_URL is set.
"""
import json
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import WRITE_SCOPE, request  # noqa: E402
from sim_vppd_case import APPS, APPS_SCOPE, BASE, SimVppdTestCase  # noqa: E402

DIRECTORY_SCOPES = "User.ReadWrite.All Group.ReadWrite.All GroupMember.ReadWrite.All"
USER_SETTINGS = {"@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings", "useDeviceLicensing": False}


class UserLicences(SimVppdTestCase):
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
        self.created = set()
        loc, self.stoken = self.new_location(assets=6, assignments=10)
        self.uid = loc["uId"]
        self.token_id = self.wait_sync(self.add_token(self.stoken)["id"])["id"]
        apps = self.vppd.collect(APPS + "?$top=999&$filter=" + f"vppTokenId%20eq%20'{self.token_id}'", self.token)
        ios = [a for a in apps if a["@odata.type"] == "#microsoft.graph.iosVppApp"
               and 5 <= a["totalLicenseCount"] - a["usedLicenseCount"] and a["totalLicenseCount"] < 2_000_000_000]
        self.assertTrue(ios, apps)
        self.app = ios[0]
        self.adam = self.app["appStoreUrl"].rsplit("/id", 1)[1]

    # --- helpers -------------------------------------------------------------------------

    def ok(self, r, status):
        self.assertEqual(r.status, status, r)
        return r.json() if r.body else None

    def person(self, name):
        upn = f"{name}-{uuid.uuid4().hex[:6]}@contoso.example"
        user = self.ok(self.call("POST", "/v1.0/users", {"accountEnabled": True, "displayName": name.title(),
                                                          "mailNickname": name, "userPrincipalName": upn}), 201)
        self.created.add(user["id"])
        return user

    def group_of(self, people):
        name = "g" + uuid.uuid4().hex[:8]
        g = self.ok(self.call("POST", "/v1.0/groups", {"displayName": name, "mailEnabled": False,
                                                        "mailNickname": name, "securityEnabled": True}), 201)
        for p in people:
            self.ok(self.call("POST", f"/v1.0/groups/{g['id']}/members/$ref",
                              {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{p['id']}"}), 204)
        return g["id"]

    def assign_to(self, group):
        self.ok(self.call("POST", f"{APPS}/{self.app['id']}/assign", {"mobileAppAssignments": [
            {"intent": "required", "settings": USER_SETTINGS,
             "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group}}]}), 204)

    def apple_users(self, ids=None):
        """The status of each Apple user of the location (of `ids` only, when given: the simulator's
        generated location has users of its own)."""
        location = self.sim.control("GET", f"locations/{self.uid}/export")["locations"][0]
        return {u["clientUserId"]: u["status"] for u in location.get("users", [])
                if ids is None or u["clientUserId"] in ids}

    def users_at_apple(self):
        """The people vppd's directory knows that Apple holds the app for (not the generated location's)."""
        held = self.sim.walk(f"assignments?adamId={self.adam}", self.stoken, "assignments")
        return {a["clientUserId"] for a in held if a.get("clientUserId") in self.created}

    def wait(self, what, get, expected, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if get() == expected:
                return
            time.sleep(0.1)
        self.assertEqual(get(), expected, what)

    def report(self):
        """The token's last reconcile report (`vppd tokens list --json`)."""
        tokens = json.loads(self.vppd.cli("tokens", "list", "--json", "--data-dir", self.vppd.data_dir).stdout)
        return [t for t in tokens if t["id"] == self.token_id][0].get("lastReconcile") or {}

    def user_statuses(self):
        return {s["id"]: s for s in self.vppd.collect(f"{APPS}/{self.app['id']}/userStatuses", self.token)}

    def vpp_status(self, user_id):
        return self.ok(self.call("GET", f"/v1.0/users/{user_id}/vppUserStatus"), 200)

    # --- tests -------------------------------------------------------------------------------

    def test_people_are_registered_get_their_licence_once_they_accept_and_lose_it_when_deleted(self):
        ann, bob = self.person("ann"), self.person("bob")
        self.assign_to(self.group_of([ann, bob]))
        # Registered at Apple, waiting for the invitation: no licence yet.
        ours = {ann["id"], bob["id"]}
        self.wait("Apple's users", lambda: self.apple_users(ours), {ann["id"]: "Registered", bob["id"]: "Registered"})
        self.wait("invitation known", lambda: bool(self.vpp_status(ann["id"])["locations"]
                                                  and self.vpp_status(ann["id"])["locations"][0]["inviteCode"]), True)
        where = self.vpp_status(ann["id"])["locations"][0]
        self.assertEqual((where["vppTokenId"], where["clientUserId"], where["status"], where["associated"]),
                         (self.token_id, ann["id"], "Registered", False), where)
        self.assertIn(where["inviteCode"], where["inviteUrl"])
        self.assertEqual(where["email"], ann["userPrincipalName"])
        self.assertEqual(self.users_at_apple(), set())
        statuses = self.user_statuses()
        self.assertEqual(list(statuses), [ann["id"], bob["id"]], "membership order")
        self.assertEqual(statuses[ann["id"]]["@odata.type"], "#microsoft.graph.userAppInstallStatus")
        self.assertEqual((statuses[ann["id"]]["userPrincipalName"], statuses[ann["id"]]["userName"]),
                         (ann["userPrincipalName"], "Ann"))
        self.assertEqual((statuses[ann["id"]]["installedDeviceCount"], statuses[ann["id"]]["notInstalledDeviceCount"]),
                         (0, 1))

        # Ann accepts (the test plays her): her licence is associated by clientUserId; Bob still waits.
        self.sim.control("POST", f"locations/{self.uid}/acceptInvitation", {"clientUserIds": [ann["id"]]})
        self.wait("licences at Apple", self.users_at_apple, {ann["id"]})
        self.wait("ann installed", lambda: self.user_statuses()[ann["id"]]["installedDeviceCount"], 1)
        self.assertEqual(self.user_statuses()[bob["id"]]["notInstalledDeviceCount"], 1)
        where = self.vpp_status(ann["id"])["locations"][0]
        self.assertEqual((where["status"], where["associated"]), ("Associated", True))
        self.wait("ann's licence granted", lambda: [l["state"] for l in
                                                    self.vpp_status(ann["id"])["locations"][0]["licenses"]], ["granted"])

        # assignedLicenses after a sync names the person.
        self.ok(self.call("POST", f"{BASE}/{self.token_id}/syncLicenses"), 200)
        self.wait_sync(self.token_id)
        licences = self.vppd.collect(f"{APPS}/{self.app['id']}/microsoft.graph.iosVppApp/assignedLicenses", self.token)
        mine = [l for l in licences if l.get("userId") == ann["id"]]
        self.assertEqual(len(mine), 1, licences)
        self.assertEqual((mine[0]["@odata.type"], mine[0]["userPrincipalName"], mine[0]["userName"],
                          mine[0]["userEmailAddress"]),
                         ("#microsoft.graph.iosVppAppAssignedUserLicense", ann["userPrincipalName"], "Ann",
                          ann["userPrincipalName"]))

        # Ann deleted: her Apple user retired, her licence released.
        self.ok(self.call("DELETE", f"/v1.0/users/{ann['id']}"), 204)
        self.wait("ann retired", lambda: self.apple_users().get(ann["id"]), "Retired")
        self.wait("licences at Apple", self.users_at_apple, set())
        self.assertEqual(self.apple_users()[bob["id"]], "Registered", "Bob is left alone")

    def test_an_apple_account_another_person_holds_leaves_them_waiting_and_vppd_asks_less_often(self):
        """Apple refuses an acceptance with an Apple Account another user of the location holds
        (9641, to the person): vppd cannot see it (README), so the person is reported as waiting,
        holds no licence, and vppd's look at the invitations backs off instead of walking
        GET /users at every event poll (100 ms here) for ever."""
        ann, bob = self.person("ann"), self.person("bob")
        self.assign_to(self.group_of([ann, bob]))
        ours = {ann["id"], bob["id"]}
        self.wait("Apple's users", lambda: self.apple_users(ours), {ann["id"]: "Registered", bob["id"]: "Registered"})
        self.sim.control("POST", f"locations/{self.uid}/acceptInvitation",
                         {"clientUserIds": [ann["id"]], "idHash": "account-of-ann"})
        refused = request(self.sim.port, "POST", f"/_sim/locations/{self.uid}/acceptInvitation",
                          body={"clientUserIds": [bob["id"]], "idHash": "account-of-ann"})
        self.assertEqual((refused.status, refused.json().get("errorNumber")), (400, 9641), refused)
        self.wait("ann's licence at Apple", self.users_at_apple, {ann["id"]})

        def waiting():
            report = self.report().get("people") or {}
            return [(p["clientUserId"], p["status"]) for p in report.get("waiting", [])]
        self.wait("bob reported waiting", waiting, [(bob["id"], "Registered")])
        where = self.vpp_status(bob["id"])["locations"][0]
        self.assertEqual((where["status"], where["associated"], where["licenses"]), ("Registered", False, []), where)
        self.assertEqual(self.apple_users(ours)[bob["id"]], "Registered")

        # Nothing changes any more: each look comes later than the last (at most an hour apart).
        time.sleep(1)
        walks = lambda: self.sim.control("GET", "counters")["byLocation"][self.uid].get("GET /mdm/v2/users", 0)
        before = walks()
        time.sleep(3)
        self.assertLessEqual(walks() - before, 8, "polled every 100 ms, it would be about 30")
        self.assertEqual(self.users_at_apple(), {ann["id"]})

    def test_bad_input(self):
        unknown = str(uuid.uuid4())
        r = self.call("GET", f"/v1.0/users/{unknown}/vppUserStatus")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json()["error"]["code"], "Request_ResourceNotFound")
        self.assertIn(unknown, r.json()["error"]["message"])
        before = self.apple_users()
        r = self.call("GET", f"{APPS}/{unknown}/userStatuses")
        self.assertEqual(r.status, 404, r)
        # A person never registered at Apple: no location.
        nobody = self.person("carl")
        self.assertEqual(self.vpp_status(nobody["id"])["locations"], [])
        # An assignment to an unknown group writes nothing.
        r = self.call("POST", f"{APPS}/{self.app['id']}/assign", {"mobileAppAssignments": [
            {"intent": "required", "settings": USER_SETTINGS,
             "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": unknown}}]})
        self.assertEqual(r.status, 404, r)
        self.assertEqual(self.vppd.collect(f"{APPS}/{self.app['id']}/assignments", self.token), [])
        self.assertEqual(self.apple_users(), before, "nobody registered at Apple")
