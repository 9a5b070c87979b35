"""Black-box tests of managed eBooks (issue 17): the sync keeps Apple's Book assets and
names them through the lookup; /managedEBooks (list, $count, get, OData options) shows
only them as iosVppEBook, under /beta and /v1.0; their assignments
(iosVppEBookAssignment), the assign action, userStateSummary, deviceStates and
installSummary; every bad input (device licensing, a device target...) a precise 400
or 404 with nothing written; and every /mobileApps answer still apps only. The real
vppd and apple-vpp-sim over sockets; SQLite, or PostgreSQL when VPPD_TEST_DATABASE_URL
is set.
"""
import os
import sqlite3
import sys
import unittest
import uuid
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import DEV_TENANT, expected_apps, psql  # noqa: E402
from sim_vppd_case import APPS, BASE, SimVppdTestCase  # noqa: E402

BOOKS = "/beta/deviceAppManagement/managedEBooks"
V1_BOOKS = "/v1.0/deviceAppManagement/managedEBooks"
GROUP = "#microsoft.graph.groupAssignmentTarget"
EXCLUDE = "#microsoft.graph.exclusionGroupAssignmentTarget"
ALL_DEVICES = "#microsoft.graph.allDevicesAssignmentTarget"
ALL_USERS = "#microsoft.graph.allLicensedUsersAssignmentTarget"
EBOOK_ASSIGNMENT = "#microsoft.graph.iosVppEBookAssignment"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


def to_group(group_id, intent="required", kind=GROUP):
    return {"@odata.type": EBOOK_ASSIGNMENT, "installIntent": intent,
            "target": {"@odata.type": kind, "groupId": group_id}}


def to_all_users(intent="available"):
    return {"@odata.type": EBOOK_ASSIGNMENT, "installIntent": intent, "target": {"@odata.type": ALL_USERS}}


class ManagedEBooks(SimVppdTestCase):
    sim_args = ("--assets", "12", "--locations", "1", "--seed", "17")
    vppd_args = ("--sync-interval-seconds", "0", "--throttle-window-seconds", "0")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helper = cls("test_list_get_count_as_iosvppebook")
        _, cls.stoken = helper.new_location(assets=40, assignments=120)
        synced = helper.wait_sync(helper.add_token(cls.stoken)["id"])
        cls.token_id, cls.organization = synced["id"], synced["organizationName"]
        cls.assets = cls.sim.walk("assets", cls.stoken, "assets")
        cls.book_assets = {(a["adamId"], a["pricingParam"]): a for a in cls.assets if a["productType"] == "Book"}
        assert len(cls.book_assets) >= 3, cls.assets
        cls.books = cls.vppd.collect(BOOKS + "?$top=999", cls.token)
        cls.apps = cls.vppd.collect(APPS + "?$top=999", cls.token)
        cls.groups = [helper.new_group(f"Readers {i}") for i in range(3)]

    # --- helpers ----------------------------------------------------------------------

    def sql(self, statement):
        """Runs a directory INSERT on the store (booleans written {t}/{f})."""
        if self.vppd.database_url:
            psql(self.vppd.database_url, statement.format(f="false", t="true"))
        else:
            with sqlite3.connect(os.path.join(self.vppd.data_dir, "vppd.db"), timeout=10) as db:
                db.execute(statement.format(f=0, t=1))

    def query(self, statement):
        if self.vppd.database_url:
            return psql(self.vppd.database_url, statement).strip()
        with sqlite3.connect(os.path.join(self.vppd.data_dir, "vppd.db"), timeout=10) as db:
            return "\n".join("|".join(str(c) for c in row) for row in db.execute(statement))

    def new_group(self, name):
        r = self.call("POST", "/v1.0/groups", {"displayName": name, "mailEnabled": False,
                                               "mailNickname": name.replace(" ", "").lower(),
                                               "securityEnabled": True, "groupTypes": []},
                      token=self.vppd.dev_token("--scopes", "Group.ReadWrite.All Directory.ReadWrite.All"))
        self.assertEqual(r.status, 201, r)
        return r.json()["id"]

    def assignments_of(self, book_id, version="beta"):
        r = self.call("GET", f"/{version}/deviceAppManagement/managedEBooks/{book_id}/assignments")
        self.assertEqual(r.status, 200, r)
        return r.json()["value"]

    def assign(self, book_id, items):
        return self.call("POST", f"{BOOKS}/{book_id}/assign", {"managedEBookAssignments": items})

    def create(self, book_id, body, version="beta"):
        return self.call("POST", f"/{version}/deviceAppManagement/managedEBooks/{book_id}/assignments", body)

    def clear(self, book_id):
        r = self.assign(book_id, [])
        self.assertEqual(r.status, 204, r)

    def assert_error(self, r, status, code, *fragments):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.error_code(), code, r)
        for f in fragments:
            self.assertIn(f, r.error_message(), r)

    def adam_of(self, book):
        return book["informationUrl"].rsplit("/id", 1)[1]

    # --- the books --------------------------------------------------------------------

    def test_list_get_count_as_iosvppebook(self):
        self.assertEqual(len(self.books), len(self.book_assets), "one managedEBook per Book asset")
        expected = {(adam, pricing): (a["totalCount"], a["assignedCount"])
                    for (adam, pricing), a in self.book_assets.items()}
        got = {}
        for b in self.books:
            self.assertEqual(b["@odata.type"], "#microsoft.graph.iosVppEBook")
            adam = self.adam_of(b)
            pricing = "STDQ" if (adam, "STDQ") in expected and (adam, "STDQ") not in got else "PLUS"
            got[(adam, pricing)] = (b["totalLicenseCount"], b["usedLicenseCount"])
            # Named through Apple's lookup (kind ebook): the simulator's name, author and genres.
            self.assertTrue(b["displayName"].startswith("Sim Book "), b)
            self.assertEqual(b["publisher"], "Simulated Author")
            self.assertEqual(b["genres"], ["Books", "Fiction & Literature"])
            self.assertEqual(b["vppTokenId"], self.token_id)
            self.assertEqual(b["vppOrganizationName"], self.organization)
            self.assertIn("appleId", b)
            self.assertTrue(b["informationUrl"].startswith("https://books.apple.com/"), b)
            for name in ("language", "seller", "privacyInformationUrl", "description"):
                self.assertIn(name, b)
            self.assertNotIn("largeCover", b, "listed only when $select names it, as Graph does for icons")
        self.assertEqual(sorted(got.values()), sorted(expected.values()))

        r = self.call("GET", f"{BOOKS}/$count")
        self.assertEqual((r.status, r.body), (200, str(len(self.books))), r)
        one = self.books[0]
        r = self.call("GET", f"{BOOKS}/{one['id']}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual({k: v for k, v in r.json().items() if k != "@odata.context"}, one)
        self.assertIn("$metadata#deviceAppManagement/managedEBooks/$entity", r.json()["@odata.context"])
        # v1.0 has managedEBooks too, with the same shape.
        v1 = self.vppd.collect(V1_BOOKS + "?$top=999", self.token)
        self.assertEqual(sorted(b["id"] for b in v1), sorted(b["id"] for b in self.books))

    def test_odata_options(self):
        used = [b for b in self.books if b["usedLicenseCount"] > 0]
        r = self.call("GET", f"{BOOKS}?$filter=usedLicenseCount%20gt%200&$count=true")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(b["id"] for b in r.json()["value"]), sorted(b["id"] for b in used))
        self.assertEqual(r.json()["@odata.count"], len(used))
        r = self.call("GET", f"{BOOKS}?$orderby=displayName%20desc&$select=displayName")
        self.assertEqual(r.status, 200, r)
        names = [b["displayName"] for b in r.json()["value"]]
        self.assertEqual(names, sorted(names, reverse=True))
        self.assertEqual(set(r.json()["value"][0]), {"@odata.type", "id", "displayName"})
        r = self.call("GET", f"{BOOKS}/{self.books[0]['id']}?$select=largeCover")
        self.assertEqual({k: v for k, v in r.json().items() if not k.startswith("@")},
                         {"id": self.books[0]["id"], "largeCover": None})
        # Server-driven paging: a nextLink that brings the rest; $top takes what it asks for.
        r = self.call("GET", BOOKS, headers={"Prefer": "odata.maxpagesize=2"})
        self.assertEqual(len(r.json()["value"]), 2)
        self.assertIn("@odata.nextLink", r.json())
        self.assertEqual(len(self.call("GET", f"{BOOKS}?$top=2").json()["value"]), 2)
        self.assertEqual(len(self.vppd.collect(f"{BOOKS}?$top={len(self.books)}", self.token)), len(self.books))
        # A property iosVppEBook does not have, and $expand of something not a navigation property.
        r = self.call("GET", f"{BOOKS}?$filter=bundleId%20eq%20'x'")
        self.assert_error(r, 400, "BadRequest", "bundleId")
        r = self.call("GET", f"{BOOKS}?$expand=assignments")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(all(b["assignments"] == [] or isinstance(b["assignments"], list) for b in r.json()["value"]))

    def test_mobile_apps_still_show_apps_only(self):
        book_ids = {b["id"] for b in self.books}
        app_ids = {a["id"] for a in self.apps}
        self.assertFalse(book_ids & app_ids, "a book is never a mobileApp")
        self.assertEqual(len(self.apps), len(expected_apps(self.sim, self.stoken)), "mobileApps: App assets only")
        self.assertTrue(all(a["@odata.type"] in ("#microsoft.graph.iosVppApp", "#microsoft.graph.macOsVppApp")
                            for a in self.apps))
        r = self.call("GET", f"{APPS}/$count")
        self.assertEqual(r.body, str(len(self.apps)), r)
        r = self.call("GET", f"{APPS}?$filter=usedLicenseCount%20ge%200&$count=true&$expand=assignments")
        self.assertEqual(r.json()["@odata.count"], len(self.apps))
        self.assertFalse({a["id"] for a in r.json()["value"]} & book_ids)
        r = self.call("GET", f"{APPS}/microsoft.graph.iosVppApp/$count")
        ios = [a for a in self.apps if a["@odata.type"] == "#microsoft.graph.iosVppApp"]
        self.assertEqual(r.body, str(len(ios)), r)
        r = self.call("GET", f"/v1.0/deviceAppManagement/mobileApps/$count")
        self.assertEqual(r.body, str(len(ios)), r)
        book = self.books[0]["id"]
        for path in ("", "/microsoft.graph.iosVppApp", "/assignments", "/deviceStatuses",
                     "/microsoft.graph.iosVppApp/assignedLicenses"):
            self.assert_error(self.call("GET", f"{APPS}/{book}{path}"), 404, "ResourceNotFound", book)
        r = self.call("POST", f"{APPS}/{book}/assignments",
                      {"intent": "available", "target": {"@odata.type": ALL_USERS}})
        self.assert_error(r, 404, "ResourceNotFound", book)
        self.assert_error(self.call("POST", f"{APPS}/{book}/assign", {"mobileAppAssignments": []}), 404,
                          "ResourceNotFound")
        # The token counts apps only; getLicensesForApp finds no book by its adamId.
        token = self.call("GET", f"{BASE}/{self.token_id}").json()
        self.assertEqual(token["lastAppCount"], len({(a["adamId"], a["pricingParam"]) for a in self.assets
                                                     if a["productType"] == "App"}))
        adam = self.adam_of(self.books[0])
        r = self.call("GET", f"{BASE}/getLicensesForApp(bundleId='{adam}')")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["value"], [])
        # ...and an app is not a managedEBook.
        self.assert_error(self.call("GET", f"{BOOKS}/{self.apps[0]['id']}"), 404, "ResourceNotFound",
                          self.apps[0]["id"])

    # --- assignments ------------------------------------------------------------------

    def test_assignments_create_get_list_update_delete(self):
        book = self.books[1]["id"]
        self.clear(book)
        r = self.create(book, to_group(self.groups[0]))
        self.assertEqual(r.status, 201, r)
        created = {k: v for k, v in r.json().items() if k != "@odata.context"}
        self.assertEqual(created["@odata.type"], EBOOK_ASSIGNMENT)
        self.assertEqual(created["installIntent"], "required")
        self.assertEqual(created["target"], {"@odata.type": GROUP, "groupId": self.groups[0],
                                             "deviceAndAppManagementAssignmentFilterId": None,
                                             "deviceAndAppManagementAssignmentFilterType": "none"})
        self.assertTrue(r.headers["location"].endswith(f"/managedEBooks/{book}/assignments/{created['id']}"), r)
        # Stored as an app assignment with user licensing: the reconcile job serves it.
        self.assertEqual(self.query("SELECT CASE WHEN use_device_licensing THEN 1 ELSE 0 END FROM app_assignments "
                                    f"WHERE id = '{created['id']}'"), "0")
        r = self.call("GET", f"{BOOKS}/{book}/assignments/{created['id']}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual({k: v for k, v in r.json().items() if k != "@odata.context"}, created)
        self.assertEqual(self.assignments_of(book), [created])
        self.assertEqual(self.assignments_of(book, "v1.0"), [created])
        r = self.call("PATCH", f"{BOOKS}/{book}/assignments/{created['id']}", {"installIntent": "available"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["installIntent"], "available")
        r = self.call("GET", f"{BOOKS}/{book}?$expand=assignments")
        self.assertEqual([a["installIntent"] for a in r.json()["assignments"]], ["available"])
        self.assertEqual(self.call("DELETE", f"{BOOKS}/{book}/assignments/{created['id']}").status, 204)
        self.assertEqual(self.assignments_of(book), [])
        self.assert_error(self.call("GET", f"{BOOKS}/{book}/assignments/{created['id']}"), 404, "ResourceNotFound")

    def test_assign_replaces_the_assignments(self):
        book = self.books[2]["id"]
        self.clear(book)
        self.assertEqual(self.create(book, to_group(self.groups[0])).status, 201)
        r = self.assign(book, [to_group(self.groups[1]), to_group(self.groups[2], "uninstall", EXCLUDE),
                               to_all_users()])
        self.assertEqual(r.status, 204, r)
        got = self.assignments_of(book)
        self.assertEqual(sorted((a["target"]["@odata.type"], a["target"].get("groupId"), a["installIntent"])
                                for a in got),
                         sorted([(GROUP, self.groups[1], "required"), (EXCLUDE, self.groups[2], "uninstall"),
                                 (ALL_USERS, None, "available")]))
        self.clear(book)
        self.assertEqual(self.assignments_of(book), [])

    def test_bad_input_is_refused_with_nothing_written(self):
        book = self.books[0]["id"]
        self.clear(book)
        self.assertEqual(self.create(book, to_group(self.groups[0])).status, 201)
        before = self.assignments_of(book)
        cases = [
            # A book assigned with device licensing.
            ({**to_group(self.groups[1]), "settings": {"@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings",
                                                       "useDeviceLicensing": True}},
             "settings.useDeviceLicensing", "cannot be licensed to devices"),
            # A device-only target.
            ({"installIntent": "required", "target": {"@odata.type": ALL_DEVICES}}, "target", "users only"),
            ({"installIntent": "sometimes", "target": {"@odata.type": ALL_USERS}}, "installIntent", "sometimes"),
            ({"target": {"@odata.type": ALL_USERS}}, "installIntent", "required"),
            ({"installIntent": "required"}, "target", "required"),
            ({"intent": "required", "target": {"@odata.type": ALL_USERS}}, "intent", "installIntent"),
            ({**to_all_users(), "settings": {"useDeviceLicensing": False}}, "settings", "does not exist"),
            ({**to_all_users(), "@odata.type": "#microsoft.graph.mobileAppAssignment"}, "@odata.type",
             "iosVppEBookAssignment"),
            ({"installIntent": "required", "target": {"@odata.type": GROUP}}, "target.groupId", "needs a groupId"),
            ({"installIntent": "required", "target": {"@odata.type": ALL_USERS, "groupId": self.groups[1]}},
             "target.groupId", "has no groupId"),
            ({"installIntent": "required", "target": {"@odata.type": ALL_USERS,
                                                      "deviceAndAppManagementAssignmentFilterId": "f"}},
             "target.deviceAndAppManagementAssignmentFilterId", "not supported"),
            # The book is already assigned to that group.
            (to_group(self.groups[0], "available"), "target", "already assigned"),
        ]
        for body, target, fragment in cases:
            with self.subTest(body=body):
                r = self.create(book, body)
                self.assert_error(r, 400, "BadRequest", fragment)
                self.assertTrue(r.json()["error"]["message"], r)
        # In assign: one bad element among good ones, named by its index; nothing replaced.
        r = self.assign(book, [to_group(self.groups[1]),
                               {"installIntent": "required", "target": {"@odata.type": ALL_DEVICES}}])
        self.assert_error(r, 400, "BadRequest", "users only")
        r = self.assign(book, [to_group(self.groups[1]), {**to_all_users(), "settings": {
            "@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings", "useDeviceLicensing": True}}])
        self.assert_error(r, 400, "BadRequest", "cannot be licensed to devices")
        r = self.assign(book, [to_group(self.groups[1]), to_group(self.groups[1], "available")])
        self.assert_error(r, 400, "BadRequest", "twice")
        r = self.assign(book, [to_group(str(uuid.uuid4()))])
        self.assertEqual(r.status, 404, r)
        r = self.call("POST", f"{BOOKS}/{book}/assign", {"mobileAppAssignments": []})
        self.assert_error(r, 400, "BadRequest", "mobileAppAssignments")
        # PATCH to a device target: refused, the stored one unchanged.
        r = self.call("PATCH", f"{BOOKS}/{book}/assignments/{before[0]['id']}",
                      {"target": {"@odata.type": ALL_DEVICES}})
        self.assert_error(r, 400, "BadRequest", "users only")
        self.assertEqual(self.assignments_of(book), before, "nothing was written")
        # Unknown book, and an app's id: not found, nothing written.
        for other in (str(uuid.uuid4()), self.apps[0]["id"]):
            self.assert_error(self.create(other, to_all_users()), 404, "ResourceNotFound", other)
            self.assert_error(self.assign(other, [to_all_users()]), 404, "ResourceNotFound", other)
        self.assertEqual(self.call("GET", f"{APPS}/{self.apps[0]['id']}/assignments").json()["value"], [])
        self.clear(book)

    def test_permissions_are_graphs(self):
        read_only = self.vppd.dev_token("--scopes", "DeviceManagementApps.Read.All")
        book = self.books[0]["id"]
        self.assertEqual(self.call("GET", BOOKS, token=read_only).status, 200)
        self.assertEqual(self.call("GET", f"{BOOKS}/{book}/userStateSummary", token=read_only).status, 200)
        r = self.call("POST", f"{BOOKS}/{book}/assignments", to_all_users(), token=read_only)
        self.assert_error(r, 403, "Forbidden", "DeviceManagementApps.ReadWrite.All")
        r = self.call("POST", f"{BOOKS}/{book}/assign", {"managedEBookAssignments": []}, token=read_only)
        self.assertEqual(r.status, 403, r)
        other = self.vppd.dev_token("--scopes", "DeviceManagementServiceConfig.ReadWrite.All")
        r = self.call("GET", BOOKS, token=other)
        self.assert_error(r, 403, "Forbidden", "DeviceManagementApps.Read.All")

    # --- where licences stand -----------------------------------------------------------

    def test_user_state_summary_device_states_and_install_summary(self):
        # A user licence of a book at Apple, whose clientUserId becomes a directory user
        # with two managed devices.
        licences = self.sim.walk("assignments", self.stoken, "assignments")
        held = [(lic["adamId"], lic["pricingParam"], lic["clientUserId"]) for lic in licences
                if (lic["adamId"], lic["pricingParam"]) in self.book_assets and lic.get("clientUserId")]
        self.assertTrue(held, "the simulator licenses some books to users")
        adam, _, user = held[0]
        book = next(b for b in self.books if self.adam_of(b) == adam and b["usedLicenseCount"] > 0)
        upn = f"reader-{user[:8]}@contoso.example"
        self.sql(f"INSERT INTO users (tenant_id, id, user_principal_name, display_name, account_enabled, created, "
                 f"last_modified) VALUES ('{DEV_TENANT}', '{user}', '{upn}', 'Reader', {{t}}, 0, 0)")
        devices = []
        for i in range(2):
            managed = str(uuid.uuid4())
            self.sql(f"INSERT INTO managed_devices (tenant_id, id, serial_number, device_name, user_id, "
                     f"operating_system, os_version, created, last_modified) VALUES ('{DEV_TENANT}', '{managed}', "
                     f"'SERIAL{i}{user[:6]}', 'Reader iPad {i}', '{user}', 'iOS', '17.{i}', 0, 0)")
            devices.append(managed)

        r = self.call("GET", f"{BOOKS}/{book['id']}/userStateSummary")
        self.assertEqual(r.status, 200, r)
        states = {s["id"]: s for s in r.json()["value"]}
        holders = {u for a, _, u in held if a == adam}
        self.assertEqual(set(states), holders, "one summary per user licence of the book")
        self.assertEqual(states[user], {"@odata.type": "#microsoft.graph.userInstallStateSummary", "id": user,
                                        "userName": upn, "installedDeviceCount": 2, "failedDeviceCount": 0,
                                        "notInstalledDeviceCount": 0})
        r = self.call("GET", f"{BOOKS}/{book['id']}/deviceStates")
        self.assertEqual(r.status, 200, r)
        mine = [d for d in r.json()["value"] if d["userName"] == upn]
        self.assertEqual(sorted(d["id"] for d in mine), sorted(devices))
        self.assertTrue(all(d["installState"] == "installed" and d["osDescription"] == "iOS" for d in mine), mine)
        self.assertEqual({d["deviceName"] for d in mine}, {"Reader iPad 0", "Reader iPad 1"})
        r = self.call("GET", f"{BOOKS}/{book['id']}/userStateSummary/{user}/deviceStates")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(d["id"] for d in r.json()["value"]), sorted(devices))
        self.assert_error(self.call("GET", f"{BOOKS}/{book['id']}/userStateSummary/{uuid.uuid4()}/deviceStates"),
                          404, "ResourceNotFound")
        r = self.call("GET", f"{V1_BOOKS}/{book['id']}/installSummary")
        self.assertEqual(r.status, 200, r)
        summary = r.json()
        self.assertEqual(summary["@odata.type"], "#microsoft.graph.eBookInstallSummary")
        self.assertEqual(summary["installedUserCount"] + summary["notInstalledUserCount"], len(holders))
        self.assertGreaterEqual(summary["installedDeviceCount"], 2)
        self.assert_error(self.call("GET", f"{BOOKS}/{uuid.uuid4()}/deviceStates"), 404, "ResourceNotFound")

    # --- $metadata ----------------------------------------------------------------------

    def test_metadata_declares_what_is_served(self):
        for version in ("beta", "v1.0"):
            with self.subTest(version=version):
                r = self.call("GET", f"/{version}/$metadata")
                self.assertEqual(r.status, 200, r)
                schema = ET.fromstring(r.body).find(f".//{EDM}Schema")
                types = {t.get("Name"): t for t in schema if t.tag in (f"{EDM}EntityType", f"{EDM}ComplexType")}
                enums = {e.get("Name") for e in schema.findall(f"{EDM}EnumType")}
                dam = {n.get("Name"): n.get("Type") for n in types["deviceAppManagement"].findall(
                    f"{EDM}NavigationProperty")}
                self.assertEqual(dam["managedEBooks"], "Collection(microsoft.graph.managedEBook)")
                book = types["managedEBook"]
                self.assertEqual(book.get("Abstract"), "true")
                self.assertEqual({n.get("Name") for n in book.findall(f"{EDM}NavigationProperty")},
                                 {"assignments", "installSummary", "deviceStates", "userStateSummary"})
                ios = {p.get("Name"): p.get("Type") for p in types["iosVppEBook"].findall(f"{EDM}Property")}
                self.assertEqual(ios["vppTokenId"], "Edm.Guid")
                self.assertEqual(ios["genres"], "Collection(Edm.String)")
                declared = set(ios) | {p.get("Name") for p in book.findall(f"{EDM}Property")} | {"id"}
                book_json = self.call("GET", f"/{version}/deviceAppManagement/managedEBooks/{self.books[0]['id']}").json()
                self.assertEqual(set(book_json) - {"@odata.type", "@odata.context"}, declared - {"largeCover"},
                                 "every emitted property declared")
                self.assertEqual("roleScopeTagIds" in declared, version == "beta")
                self.assertEqual(types["iosVppEBookAssignment"].get("BaseType"),
                                 "microsoft.graph.managedEBookAssignment")
                for name in ("userInstallStateSummary", "deviceInstallState", "eBookInstallSummary",
                             "groupAssignmentTarget", "allLicensedUsersAssignmentTarget"):
                    self.assertIn(name, types)
                self.assertTrue({"installIntent", "installState"} <= enums, enums)


if __name__ == "__main__":
    unittest.main()
