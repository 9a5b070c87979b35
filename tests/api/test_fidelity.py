"""Black-box tests of Graph fidelity in queries (issue 14): what published scripts and
SDKs send and Graph accepts. An empty $orderby, derived-type property paths, isof()
of mobileApp types vppd holds no rows of, $expand=assignments on mobileApps, and
`Prefer: odata.maxpagesize=N`. One simulator location synced for two tokens' worth of
apps (iOS and macOS), read through /mobileApps and /vppTokens.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import quote  # noqa: E402
from sim_vppd_case import APPS, BASE, SimVppdTestCase  # noqa: E402


class Fidelity(SimVppdTestCase):
    sim_args = ("--assets", "12", "--assignments", "30", "--locations", "1", "--seed", "11")
    vppd_args = ("--sync-interval-seconds", "0")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helper = cls("test_empty_orderby_is_ignored")  # for its assertion helpers
        cls.token_ids = []
        for _ in range(2):
            _, stoken = helper.new_location(assets=10, assignments=20)
            cls.token_ids.append(helper.wait_sync(helper.add_token(stoken)["id"])["id"])
        cls.all_apps = cls.vppd.collect(APPS + "?$top=999", cls.token)

    def get(self, path, **headers):
        return self.call("GET", path, headers=headers)

    def values(self, path, **headers):
        r = self.get(path, **headers)
        self.assertEqual(r.status, 200, r)
        return r.json()["value"]

    def ids(self, apps):
        return sorted(a["id"] for a in apps)

    def test_fixture_holds_both_app_types_of_both_tokens(self):
        kinds = {(a["@odata.type"], a["vppTokenId"]) for a in self.all_apps}
        for token_id in self.token_ids:
            self.assertIn(("#microsoft.graph.iosVppApp", token_id), kinds)
            self.assertIn(("#microsoft.graph.macOsVppApp", token_id), kinds)

    # --- 1. an empty $orderby ----------------------------------------------

    def test_empty_orderby_is_ignored(self):
        for path in (BASE + "?$orderby=", APPS + "?$orderby=&$top=999", APPS + "?$orderby=%20&$top=999"):
            with self.subTest(path=path):
                r = self.get(path)
                self.assertEqual(r.status, 200, r)
        self.assertEqual(self.ids(self.values(APPS + "?$orderby=&$top=999")), self.ids(self.all_apps))
        # A list with an empty key is still malformed.
        self.assertEqual(self.get(APPS + "?$orderby=" + quote("displayName,")).status, 400)

    # --- 2. derived-type property paths ------------------------------------

    def test_a_derived_type_path_matches_rows_of_that_type_only(self):
        token_id = self.token_ids[0]
        got = self.values(APPS + "?$top=999&$filter=" + quote(f"microsoft.graph.iosVppApp/vppTokenId eq '{token_id}'"))
        want = [a for a in self.all_apps
                if a["vppTokenId"] == token_id and a["@odata.type"] == "#microsoft.graph.iosVppApp"]
        self.assertTrue(want)
        self.assertEqual(self.ids(got), self.ids(want))
        got = self.values(APPS + "?$top=999&$filter=" +
                          quote(f"microsoft.graph.macOsVppApp/vppTokenId in ('{token_id}')"))
        want = [a for a in self.all_apps
                if a["vppTokenId"] == token_id and a["@odata.type"] == "#microsoft.graph.macOsVppApp"]
        self.assertEqual(self.ids(got), self.ids(want))
        # A property Graph declares on iosVppApp only: no macOS app matches.
        got = self.values(APPS + "?$top=999&$filter=" + quote("startswith(microsoft.graph.iosVppApp/bundleId,'')"))
        self.assertTrue(all(a["@odata.type"] == "#microsoft.graph.iosVppApp" for a in got), got)

    def test_a_path_on_a_type_vppd_holds_no_rows_of_matches_nothing(self):
        for f in ("microsoft.graph.managedApp/appAvailability eq null",
                  "microsoft.graph.managedApp/appAvailability eq 'global'",
                  "microsoft.graph.managedIOSStoreApp/version eq '1.0'",
                  "microsoft.graph.iosStoreApp/displayName ne 'x'"):
            with self.subTest(filter=f):
                self.assertEqual(self.values(APPS + "?$filter=" + quote(f)), [])
        # ... and combines like any condition.
        got = self.values(APPS + "?$top=999&$filter=" +
                          quote("not (microsoft.graph.managedApp/appAvailability eq null)"))
        self.assertEqual(self.ids(got), self.ids(self.all_apps))

    def test_a_bad_derived_type_path_is_400(self):
        for f, needle in (("microsoft.graph.nosuchApp/version eq '1'", "is not a type"),
                          ("microsoft.graph.managedApp/nosuch eq 1", "unknown property 'nosuch'"),
                          ("microsoft.graph.macOsVppApp/applicableDeviceType eq null", "unknown property"),
                          ("microsoft.graph.managedApp/appAvailability eq 'nowhere'", "not a member"),
                          ("microsoft.graph.iosVppApp/ eq 1", "expected a property name")):
            with self.subTest(filter=f):
                r = self.get(APPS + "?$filter=" + quote(f))
                self.assertEqual(r.status, 400, r)
                self.assertIn(needle, r.error_message())
        r = self.get(BASE + "?$filter=" + quote("microsoft.graph.managedApp/version eq '1'"))
        self.assertEqual(r.status, 400, r)

    def test_derived_type_paths_in_orderby(self):
        got = self.values(APPS + "?$top=999&$orderby=" + quote("microsoft.graph.iosVppApp/displayName desc"))
        self.assertEqual(len(got), len(self.all_apps))
        names = [a["displayName"] for a in got]
        self.assertEqual(names, sorted(names, reverse=True))
        # A type vppd holds no rows of orders nothing: the default order stays.
        got = self.values(APPS + "?$top=999&$orderby=" + quote("microsoft.graph.managedApp/version"))
        self.assertEqual([a["id"] for a in got], [a["id"] for a in self.all_apps])
        for o in ("microsoft.graph.nosuchApp/version", "microsoft.graph.managedApp/nosuch"):
            with self.subTest(orderby=o):
                self.assertEqual(self.get(APPS + "?$orderby=" + quote(o)).status, 400)

    # --- 3. isof() of mobileApp types vppd does not hold --------------------

    def test_isof_a_mobile_app_type_vppd_does_not_hold_is_empty(self):
        for t in ("microsoft.graph.iosStoreApp", "microsoft.graph.win32LobApp", "microsoft.graph.managedApp"):
            with self.subTest(type=t):
                self.assertEqual(self.values(APPS + "?$filter=" + quote(f"isof('{t}')")), [])
                r = self.get(APPS + "/$count?$filter=" + quote(f"isof('{t}')"), Accept="text/plain")
                self.assertEqual((r.status, r.body), (200, "0"))
        got = self.values(APPS + "?$top=999&$filter=" + quote("not isof('microsoft.graph.iosStoreApp')"))
        self.assertEqual(self.ids(got), self.ids(self.all_apps))
        got = self.values(APPS + "?$top=999&$filter=" + quote("isof('microsoft.graph.iosVppApp')"))
        self.assertTrue(got)
        self.assertTrue(all(a["@odata.type"] == "#microsoft.graph.iosVppApp" for a in got))

    def test_isof_a_name_that_is_no_type_of_graph_is_400(self):
        for t in ("microsoft.graph.nosuchApp", "microsoft.graph.vppToken", "iosStoreApp"):
            with self.subTest(type=t):
                r = self.get(APPS + "?$filter=" + quote(f"isof('{t}')"))
                self.assertEqual(r.status, 400, r)
                self.assertIn("is not a type of microsoft.graph.mobileApp", r.error_message())

    # --- 4. $expand=assignments ---------------------------------------------

    def test_expand_assignments_gives_each_app_an_empty_list(self):
        got = self.values(APPS + "?$top=999&$expand=assignments")
        self.assertEqual(self.ids(got), self.ids(self.all_apps))
        self.assertTrue(all(a["assignments"] == [] for a in got), got[:2])
        self.assertNotIn("assignments", self.all_apps[0])
        got = self.values(APPS + "?$expand=*&$select=displayName")
        self.assertTrue(all(set(a) == {"@odata.type", "id", "displayName", "assignments"} for a in got), got[:2])
        got = self.values(APPS + "/microsoft.graph.iosVppApp?$expand=assignments")
        self.assertTrue(all(a["assignments"] == [] for a in got), got[:2])

    def test_expand_of_anything_else_stays_400(self):
        for path in (APPS + "?$expand=categories", APPS + "?$expand=displayName",
                     APPS + "?$expand=assignments($select=id)", APPS + "/$count?$expand=assignments",
                     BASE + "?$expand=assignments"):
            with self.subTest(path=path):
                r = self.get(path, Accept="*/*")
                self.assertEqual(r.status, 400, r)

    # --- 6. every property of Graph's beta schema ----------------------------

    def test_apps_carry_graphs_current_properties(self):
        for a in self.all_apps:
            self.assertEqual(a["appleDeviceAppDeliveryProtocolType"], "default", a)
            self.assertNotIn("largeIcon", a)  # Graph lists apps without their icons
        got = self.values(APPS + "?$select=largeIcon,displayName")
        self.assertTrue(got)
        self.assertTrue(all(a["largeIcon"] is None for a in got), got[:2])
        r = self.get(f"{APPS}/{self.all_apps[0]['id']}?$select=largeIcon")
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.json()["largeIcon"])
        # And $metadata declares them.
        r = self.get("/beta/$metadata", Accept="application/xml")
        self.assertIn('<Property Name="largeIcon" Type="microsoft.graph.mimeContent" />', r.body)
        self.assertIn('<Property Name="appleDeviceAppDeliveryProtocolType" '
                      'Type="microsoft.graph.appleDeviceDeliveryProtocol" Nullable="false" />', r.body)

    # --- 5. Prefer: odata.maxpagesize ---------------------------------------

    def test_maxpagesize_is_honoured_and_applied(self):
        seen = []
        path = APPS
        while path:
            r = self.get(path, Prefer="odata.maxpagesize=3")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("preference-applied"), "odata.maxpagesize=3")
            page = r.json()
            self.assertLessEqual(len(page["value"]), 3)
            seen += page["value"]
            link = page.get("@odata.nextLink")
            path = link[link.index("/beta/"):] if link else None
        self.assertEqual([a["id"] for a in seen], [a["id"] for a in self.all_apps])

    def test_maxpagesize_with_top_and_on_tokens(self):
        r = self.get(APPS + "?$top=5", Prefer='return=minimal, odata.maxpagesize="2"')
        self.assertEqual(len(r.json()["value"]), 2)
        self.assertIn("@odata.nextLink", r.json())
        self.assertEqual(r.headers.get("preference-applied"), "odata.maxpagesize=2")
        r = self.get(BASE, Prefer="odata.maxpagesize=1")
        self.assertEqual(len(r.json()["value"]), 1)
        self.assertIn("@odata.nextLink", r.json())
        self.assertEqual(r.headers.get("preference-applied"), "odata.maxpagesize=1")

    def test_no_or_unusable_preference_changes_nothing(self):
        for prefer in (None, "odata.maxpagesize=0", "odata.maxpagesize=abc", "return=representation"):
            with self.subTest(prefer=prefer):
                r = self.get(APPS, **({"Prefer": prefer} if prefer else {}))
                self.assertEqual(r.status, 200, r)
                self.assertNotIn("preference-applied", r.headers)
                self.assertEqual(len(r.json()["value"]), len(self.all_apps))


if __name__ == "__main__":
    unittest.main()
