"""Black-box tests of the untracked-licences report (issue 18): the licences Apple holds for
an app or a book that vppd did not grant. The annotation `@vppd.untrackedLicenseCount` on
mobileApps and managedEBooks (only when `Prefer: odata.include-annotations` asks for it), and
the bound function `vppd.untrackedLicenses()` (each a `vppd.untrackedLicense`: a serial number
or a clientUserId, paged), checked against what Apple holds (assignedLicenses, the simulator)
before and after vppd grants licences of its own. The real vppd and apple-vpp-sim over sockets; SQLite, or PostgreSQL when
VPPD_TEST_DATABASE_URL is set.
"""
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import WRITE_SCOPE  # noqa: E402
from sim_vppd_case import APPS, APPS_SCOPE, BASE, SimVppdTestCase  # noqa: E402

BOOKS = "/beta/deviceAppManagement/managedEBooks"
TERM = "@vppd.untrackedLicenseCount"
ASK = {"Prefer": 'odata.include-annotations="vppd.untrackedLicenseCount"'}
DIRECTORY_SCOPES = ("Group.ReadWrite.All GroupMember.ReadWrite.All Device.ReadWrite.All "
                    "DeviceManagementManagedDevices.ReadWrite.All")
IOS_SETTINGS = {"@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings", "useDeviceLicensing": True}


def cast(app):
    return app["@odata.type"].lstrip("#")


def key(licence):
    """A licence's holder: ("device", serial number) or ("user", clientUserId), from an
    untracked licence or an assignedLicenses item (whose deviceName is the serial number
    when no managed device holds it, and userId the clientUserId)."""
    if licence["@odata.type"] == "#vppd.untrackedLicense":
        return ("device", licence["serialNumber"]) if licence["serialNumber"] else ("user", licence["clientUserId"])
    return ("device", licence["deviceName"]) if "deviceName" in licence else ("user", licence["userId"])


class UntrackedLicenses(SimVppdTestCase):
    sim_args = ("--assets", "12", "--locations", "1", "--seed", "23", "--event-delay-ms", "50")
    vppd_args = ("--sync-interval-seconds", "0", "--throttle-window-seconds", "0", "--sync-event-poll-ms", "100")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.token = cls.vppd.dev_token("--scopes", f"{WRITE_SCOPE} {APPS_SCOPE} {DIRECTORY_SCOPES}")
        helper = cls("test_counts_and_lists_are_apples_holders_while_vppd_granted_none")
        _, cls.stoken = helper.new_location(assets=30, assignments=150)
        cls.token_id = helper.wait_sync(helper.add_token(cls.stoken)["id"])["id"]
        cls.apps = cls.vppd.collect(APPS + "?$top=999", cls.token)
        cls.books = cls.vppd.collect(BOOKS + "?$top=999", cls.token)
        assert cls.apps and cls.books, (cls.apps, cls.books)

    # --- helpers -----------------------------------------------------------------------------

    def ok(self, r, status=200):
        self.assertEqual(r.status, status, r)
        return r.json() if r.body else None

    def collect(self, path, headers=None):
        """Every item of a collection, following @odata.nextLink; (items, pages)."""
        items, url, pages = [], path, 0
        while url:
            body = self.ok(self.call("GET", url, headers=headers))
            items += body["value"]
            pages += 1
            link = body.get("@odata.nextLink")
            url = link.split(str(self.vppd.port), 1)[1] if link else None
        return items, pages

    def untracked(self, app, headers=None):
        return self.collect(f"{APPS}/{app['id']}/vppd.untrackedLicenses()", headers)[0]

    def assigned(self, app):
        return self.collect(f"{APPS}/{app['id']}/{cast(app)}/assignedLicenses")[0]

    def counts(self, path):
        items, _ = self.collect(path + "?$top=999", ASK)
        return {i["id"]: i[TERM] for i in items}

    # --- tests -------------------------------------------------------------------------------

    def test_counts_and_lists_are_apples_holders_while_vppd_granted_none(self):
        counts = self.counts(APPS)
        self.assertEqual(set(counts), {a["id"] for a in self.apps})
        held = 0
        for app in self.apps:
            at_apple = self.assigned(app)
            listed = self.untracked(app)
            # The same licences, in assignedLicenses' order.
            self.assertEqual([key(x) for x in listed], [key(x) for x in at_apple], app["id"])
            for x in listed:
                self.assertEqual(x["@odata.type"], "#vppd.untrackedLicense")
                self.assertEqual(set(x), {"@odata.type", "serialNumber", "clientUserId", "managedDeviceId",
                                          "deviceName", "userId", "userPrincipalName"})
                self.assertTrue((x["serialNumber"] is None) != (x["clientUserId"] is None), x)
            self.assertEqual(counts[app["id"]], len(at_apple), app["id"])
            held += len(at_apple)
        self.assertGreater(held, 0, "the location's apps hold licences at Apple")
        # One app: the same count, and the response says the preference was applied.
        app = max(self.apps, key=lambda a: counts[a["id"]])
        r = self.call("GET", f"{APPS}/{app['id']}", headers=ASK)
        self.assertEqual(self.ok(r)[TERM], counts[app["id"]])
        self.assertEqual(r.headers.get("preference-applied"), 'odata.include-annotations="vppd.untrackedLicenseCount"')

    def test_books_report_their_holders(self):
        counts = self.counts(BOOKS)
        self.assertEqual(set(counts), {b["id"] for b in self.books})
        assets = self.sim.walk("assignments", self.stoken, "assignments")
        for book in self.books:
            listed, _ = self.collect(f"{BOOKS}/{book['id']}/vppd.untrackedLicenses()")
            self.assertEqual(counts[book["id"]], len(listed))
            for item in listed:
                self.assertEqual(item["@odata.type"], "#vppd.untrackedLicense", item)
                self.assertIsNone(item["serialNumber"], item)
            users = {i["clientUserId"] for i in listed}
            adam = book["informationUrl"].rsplit("/id", 1)[1] if book.get("informationUrl") else None
            if adam:
                expected = {a["clientUserId"] for a in assets if a["adamId"] == adam and a.get("clientUserId")}
                self.assertEqual(users, expected, book)
            r = self.call("GET", f"{BOOKS}/{book['id']}", headers=ASK)
            self.assertEqual(self.ok(r)[TERM], counts[book["id"]])
        self.assertGreater(sum(counts.values()), 0, "the location's books are held by people")

    def test_nothing_changes_for_clients_that_do_not_ask(self):
        for path in (APPS, BOOKS, f"{APPS}/{self.apps[0]['id']}", f"{BOOKS}/{self.books[0]['id']}"):
            for headers in (None, {"Prefer": 'odata.include-annotations="-vppd.*"'},
                            {"Prefer": 'odata.include-annotations="display.*"'}, {"Prefer": "odata.maxpagesize=5"}):
                r = self.call("GET", path, headers=headers)
                self.assertNotIn(TERM, r.body, (path, headers))
                self.assertNotIn("include-annotations", r.headers.get("preference-applied", ""), (path, headers))
        # v1.0 does not declare vppd's schema: no annotation there, even when asked.
        for path in ("/v1.0/deviceAppManagement/mobileApps", "/v1.0/deviceAppManagement/managedEBooks"):
            r = self.call("GET", path, headers=ASK)
            self.assertEqual(r.status, 200, r)
            self.assertNotIn(TERM, r.body, path)
            self.assertNotIn("include-annotations", r.headers.get("preference-applied", ""), path)
        # `*` and the namespace ask for it; the annotation comes first after @odata.type.
        for prefer in ('odata.include-annotations="*"', "odata.include-annotations=vppd.*"):
            body = self.ok(self.call("GET", f"{APPS}/{self.apps[0]['id']}", headers={"Prefer": prefer}))
            self.assertEqual(list(body)[:3], ["@odata.context", "@odata.type", TERM], prefer)

    def test_paging_follows_next_links_to_the_whole_list(self):
        counts = self.counts(APPS)
        app = max(self.apps, key=lambda a: counts[a["id"]])
        self.assertGreaterEqual(counts[app["id"]], 5, counts)
        whole = self.untracked(app)
        paged, pages = self.collect(f"{APPS}/{app['id']}/vppd.untrackedLicenses()", {"Prefer": "odata.maxpagesize=2"})
        self.assertEqual(paged, whole)
        self.assertEqual(pages, (len(whole) + 1) // 2)
        r = self.call("GET", f"{APPS}/{app['id']}/vppd.untrackedLicenses()", headers={"Prefer": "odata.maxpagesize=2"})
        body = self.ok(r)
        self.assertEqual(r.headers.get("preference-applied"), "odata.maxpagesize=2")
        self.assertIn("$skiptoken=", body["@odata.nextLink"])
        self.assertTrue(body["@odata.context"].endswith("$metadata#Collection(vppd.untrackedLicense)"),
                        body["@odata.context"])
        # With the cast segment too.
        self.assertEqual(self.collect(f"{APPS}/{app['id']}/{cast(app)}/vppd.untrackedLicenses()")[0], whole)

    def test_bad_requests(self):
        app, book = self.apps[0], self.books[0]
        fn = "vppd.untrackedLicenses()"
        cases = [
            (f"{APPS}/{uuid.uuid4()}/{fn}", 404),
            (f"{APPS}/{book['id']}/{fn}", 404),   # a book is not a mobileApp
            (f"{BOOKS}/{app['id']}/{fn}", 404),   # nor an app a book
            (f"{APPS}/{app['id']}/{fn}?$top=1", 400),
            (f"{APPS}/{app['id']}/{fn}?$skip=1", 400),
            (f"{APPS}/{app['id']}/{fn}?$filter=userId%20eq%20'x'", 400),
            (f"{APPS}/{app['id']}/{fn}?$skiptoken=forged", 400),
            (f"/v1.0/deviceAppManagement/mobileApps/{app['id']}/{fn}", 400),  # beta only
        ]
        other = "microsoft.graph.macOsVppApp" if cast(app) == "microsoft.graph.iosVppApp" else "microsoft.graph.iosVppApp"
        cases.append((f"{APPS}/{app['id']}/{other}/{fn}", 404))
        for path, status in cases:
            r = self.call("GET", path)
            self.assertEqual(r.status, status, (path, r))
            self.assertIn("error", r.json(), path)
        # Reading apps needs the apps permission.
        no_apps = self.vppd.dev_token("--scopes", "Group.ReadWrite.All")
        r = self.call("GET", f"{APPS}/{app['id']}/{fn}", token=no_apps)
        self.assertEqual(r.status, 403, r)
        r = self.call("GET", APPS, headers=ASK, token=no_apps)
        self.assertEqual(r.status, 403, r)

    def test_licences_vppd_grants_are_not_untracked(self):
        counts = self.counts(APPS)
        apps = [a for a in self.apps if a["@odata.type"] == "#microsoft.graph.iosVppApp"
                and a["licensingType"]["supportsDeviceLicensing"]
                and a["totalLicenseCount"] - a["usedLicenseCount"] >= 2]
        self.assertTrue(apps, self.apps)
        app = apps[0]
        before = self.untracked(app)
        self.assertEqual(counts[app["id"]], len(before))
        # Two iPads in a group; the app assigned to it with device licensing.
        serials = ["UNTR" + uuid.uuid4().hex[:8].upper() for _ in range(2)]
        group = self.ok(self.call("POST", "/v1.0/groups", {"displayName": "iPads", "mailEnabled": False,
                                                            "mailNickname": "ipads" + serials[0].lower(),
                                                            "securityEnabled": True}), 201)["id"]
        for serial in serials:
            d = self.ok(self.call("POST", "/v1.0/devices", {"accountEnabled": True, "deviceId": str(uuid.uuid4()),
                                                             "displayName": serial, "operatingSystem": "iPadOS"}), 201)
            self.ok(self.call("POST", "/v1.0/deviceManagement/managedDevices",
                              {"serialNumber": serial, "deviceName": serial, "azureADDeviceId": d["deviceId"],
                               "operatingSystem": "iOS"}), 201)
            self.ok(self.call("POST", f"/v1.0/groups/{group}/members/$ref",
                              {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{d['id']}"}), 204)
        self.ok(self.call("POST", f"{APPS}/{app['id']}/assign", {"mobileAppAssignments": [
            {"intent": "required", "settings": IOS_SETTINGS,
             "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group}}]}), 204)
        # Granted by vppd (deviceStatuses: installed), then a sync shows them among Apple's holders.
        deadline = time.time() + 30
        while time.time() < deadline:
            states = self.collect(f"{APPS}/{app['id']}/deviceStatuses")[0]
            if [s["installState"] for s in states] == ["installed", "installed"]:
                break
            time.sleep(0.1)
        self.assertEqual([s["installState"] for s in states], ["installed", "installed"], states)
        self.ok(self.call("POST", f"{BASE}/{self.token_id}/syncLicenses"))
        self.wait_sync(self.token_id)
        at_apple = self.assigned(app)
        self.assertEqual({a.get("deviceName") for a in at_apple} & set(serials), set(serials),
                         "the sync sees vppd's licences at Apple")
        after = self.untracked(app)
        self.assertEqual(after, before, "vppd's own licences are not untracked")
        self.assertFalse({key(x) for x in after} & {("device", s) for s in serials})
        self.assertEqual(len(at_apple), len(before) + 2)
        self.assertEqual(self.counts(APPS)[app["id"]], len(before))
