"""Black-box tests of the vppToken resource, the Graph conventions and the HTTP edge."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import DEV_TENANT, READ_SCOPE, WRITE_SCOPE, Vppd, make_stoken, quote, raw_exchange, request  # noqa: E402

BASE = "/beta/deviceAppManagement/vppTokens"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")

# The docs' create example (spec §1.2): every property, server-managed ones included.
DOCS_CREATE_BODY = {
    "@odata.type": "#microsoft.graph.vppToken",
    "organizationName": "Organization Name value",
    "vppTokenAccountType": "education",
    "appleId": "Apple Id value",
    "expirationDateTime": "2016-12-31T23:57:57.2481234-08:00",
    "lastSyncDateTime": "2017-01-01T00:02:49.3205976-08:00",
    "token": make_stoken(),
    "state": "valid",
    "tokenActionResults": [{
        "@odata.type": "microsoft.graph.vppTokenActionResult",
        "actionName": "Action Name value", "actionState": "pending",
        "startDateTime": "2016-12-31T23:58:46.7156189-08:00",
        "lastUpdatedDateTime": "2017-01-01T00:00:56.8321556-08:00"}],
    "lastSyncStatus": "inProgress",
    "automaticallyUpdateApps": True,
    "countryOrRegion": "Country Or Region value",
    "dataSharingConsentGranted": True,
    "displayName": "Display Name value",
    "locationName": "Location Name value",
    "claimTokenManagementFromExternalMdm": True,
    "roleScopeTagIds": ["Role Scope Tag Ids value"],
    "appleDeviceAppDeliveryProtocolType": "mobileDeviceManagement",
    "lastAppCount": 12,
}

BETA_PROPERTIES = [
    "id", "organizationName", "vppTokenAccountType", "appleId", "expirationDateTime", "lastSyncDateTime", "token",
    "lastModifiedDateTime", "state", "tokenActionResults", "lastSyncStatus", "automaticallyUpdateApps",
    "countryOrRegion", "dataSharingConsentGranted", "displayName", "locationName",
    "claimTokenManagementFromExternalMdm", "roleScopeTagIds", "appleDeviceAppDeliveryProtocolType", "lastAppCount",
]
V1_PROPERTIES = ["id", "organizationName", "vppTokenAccountType", "appleId", "expirationDateTime", "lastSyncDateTime",
                 "token", "lastModifiedDateTime", "state", "lastSyncStatus", "automaticallyUpdateApps",
                 "countryOrRegion", "lastAppCount"]


# These tests are about the Graph surface, not Apple: syncs go to a closed port
# and fail fast (tests/sync covers syncing against the simulator).
NO_APPLE = ("--apple-url", "http://127.0.0.1:9/mdm/v2", "--apple-max-attempts", "1")


class VppdTestCase(unittest.TestCase):
    extra_args = ()

    @classmethod
    def setUpClass(cls):
        cls.vppd = Vppd(*NO_APPLE, *cls.extra_args).start()
        cls.token = cls.vppd.dev_token("--scopes", WRITE_SCOPE)

    @classmethod
    def tearDownClass(cls):
        cls.vppd.cleanup()

    def call(self, method, path, body=None, headers=None, token=None):
        return self.vppd.request(method, path, token=self.token if token is None else token, headers=headers,
                                 body=body)

    def create(self, **props):
        body = {"token": make_stoken(org=props.pop("org", "Contoso School"), exp=props.pop("exp", "2030-11-08T22:33:22+0000"))}
        body.update(props)
        r = self.call("POST", BASE, body)
        self.assertEqual(r.status, 201, r)
        return r.json()

    def assertGraphError(self, r, status, code, *fragments):
        self.assertEqual(r.status, status, r)
        err = r.json()["error"]
        self.assertEqual(err["code"], code, r)
        for f in fragments:
            self.assertIn(f, err["message"], r)
        inner = err["innerError"]
        self.assertTrue(GUID.match(inner["request-id"]), inner)
        self.assertTrue(ISO_Z.match(inner["date"]), inner)
        self.assertEqual(inner["request-id"], r.headers["request-id"])


class CreateAndRead(VppdTestCase):
    def test_create_decodes_the_stoken_and_answers_201(self):
        r = self.call("POST", BASE, {"token": make_stoken(org="Fabrikam", exp="2031-02-03T04:05:06-0700"),
                                     "displayName": "Main"})
        self.assertEqual(r.status, 201, r)
        t = r.json()
        self.assertTrue(GUID.match(t["id"]))
        self.assertEqual(t["@odata.type"], "#microsoft.graph.vppToken")
        self.assertTrue(t["@odata.context"].endswith("/beta/$metadata#deviceAppManagement/vppTokens/$entity"))
        self.assertEqual(t["organizationName"], "Fabrikam")
        self.assertEqual(t["expirationDateTime"], "2031-02-03T11:05:06Z")
        self.assertEqual(t["state"], "valid")
        self.assertEqual(t["lastSyncStatus"], "inProgress", "a new token is synced at once, as Intune does")
        self.assertEqual(t["tokenActionResults"][-1]["actionName"], "syncLicenses")
        self.assertEqual(t["tokenActionResults"][-1]["actionState"], "pending")
        self.assertEqual(t["lastSyncDateTime"], "0001-01-01T00:00:00Z")
        self.assertEqual(t["appleDeviceAppDeliveryProtocolType"], "default")
        self.assertEqual(t["lastAppCount"], 0)
        self.assertIsNone(t["token"], "the sToken is write-only")
        self.assertEqual(t["displayName"], "Main")
        self.assertTrue(ISO_Z.match(t["lastModifiedDateTime"]))
        self.assertTrue(r.headers["location"].endswith(BASE + "/" + t["id"]))
        self.assertEqual(list(k for k in t if not k.startswith("@")), BETA_PROPERTIES)

    def test_docs_example_body_is_accepted_and_server_managed_properties_ignored(self):
        r = self.call("POST", BASE, DOCS_CREATE_BODY)
        self.assertEqual(r.status, 201, r)
        t = r.json()
        self.assertEqual(t["organizationName"], "Contoso School")  # from the sToken, not the body
        self.assertEqual(t["state"], "valid")
        self.assertEqual(t["lastSyncStatus"], "inProgress")
        self.assertIsNone(t["locationName"])
        self.assertEqual([e["actionName"] for e in t["tokenActionResults"]], ["syncLicenses"])
        self.assertEqual(t["lastAppCount"], 0)
        # client-settable ones are kept
        self.assertEqual(t["vppTokenAccountType"], "education")
        self.assertEqual(t["appleId"], "Apple Id value")
        self.assertEqual(t["countryOrRegion"], "Country Or Region value")
        self.assertEqual(t["roleScopeTagIds"], ["Role Scope Tag Ids value"])
        self.assertTrue(t["claimTokenManagementFromExternalMdm"])
        self.assertEqual(t["appleDeviceAppDeliveryProtocolType"], "mobileDeviceManagement")

    def test_expired_stoken_gives_state_expired(self):
        t = self.create(exp="2020-01-01T00:00:00Z")
        self.assertEqual(t["state"], "expired")

    def test_get_by_id_and_by_key_syntax_and_namespace(self):
        t = self.create(displayName="keyed")
        for path in (f"{BASE}/{t['id']}", f"{BASE}('{t['id']}')"):
            r = self.call("GET", path)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["id"], t["id"])
            self.assertEqual(r.json()["displayName"], "keyed")

    def test_get_unknown_id_is_404(self):
        r = self.call("GET", f"{BASE}/00000000-0000-0000-0000-000000000000")
        self.assertGraphError(r, 404, "ResourceNotFound", "00000000-0000-0000-0000-000000000000")

    def test_select_on_single_get(self):
        t = self.create(displayName="sel")
        r = self.call("GET", f"{BASE}/{t['id']}?$select=displayName,state")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(set(k for k in body if not k.startswith("@")), {"id", "displayName", "state"})
        self.assertIn("vppTokens(displayName,state)/$entity", body["@odata.context"])
        r = self.call("GET", f"{BASE}/{t['id']}?$select=nope")
        self.assertGraphError(r, 400, "BadRequest", "nope")

    def test_v1_exposes_the_v1_subset(self):
        t = self.create(displayName="v1")
        r = self.call("GET", f"/v1.0/deviceAppManagement/vppTokens/{t['id']}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(list(k for k in r.json() if not k.startswith("@")), V1_PROPERTIES)
        self.assertIn("/v1.0/$metadata#", r.json()["@odata.context"])
        # a beta-only property is unknown in v1.0
        r = self.call("POST", "/v1.0/deviceAppManagement/vppTokens", {"token": make_stoken(), "displayName": "x"})
        self.assertGraphError(r, 400, "BadRequest", "displayName")


class UpdateAndDelete(VppdTestCase):
    def test_patch_updates_and_returns_200_with_entity(self):
        t = self.create(displayName="before")
        time.sleep(0.01)
        r = self.call("PATCH", f"{BASE}/{t['id']}", {"displayName": "after", "automaticallyUpdateApps": True,
                                                   "countryOrRegion": None, "state": "invalid"})
        self.assertEqual(r.status, 200, r)
        u = r.json()
        self.assertEqual(u["displayName"], "after")
        self.assertTrue(u["automaticallyUpdateApps"])
        self.assertIsNone(u["countryOrRegion"])
        self.assertEqual(u["state"], "valid")  # server-managed: ignored
        self.assertGreater(u["lastModifiedDateTime"], t["lastModifiedDateTime"])
        self.assertEqual(self.call("GET", f"{BASE}/{t['id']}").json()["displayName"], "after")

    def test_patch_with_new_token_is_a_renewal(self):
        t = self.create(org="Old Org", exp="2020-01-01T00:00:00Z")
        self.assertEqual(t["state"], "expired")
        r = self.call("PATCH", f"{BASE}/{t['id']}", {"token": make_stoken(org="New Org", exp="2032-01-01T00:00:00Z")})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["organizationName"], "New Org")
        self.assertEqual(r.json()["expirationDateTime"], "2032-01-01T00:00:00Z")
        self.assertEqual(r.json()["state"], "valid")
        # The sync queued for the expired sToken may still be running: its finding
        # ("expired") must not overwrite the renewal, and the new sToken gets its own sync.
        deadline = time.time() + 20
        while time.time() < deadline:
            now = self.call("GET", f"{BASE}/{t['id']}").json()
            if now["lastSyncStatus"] != "inProgress":
                break
            time.sleep(0.05)
        self.assertEqual(now["state"], "valid", now)
        self.assertEqual(now["organizationName"], "New Org")

    def test_patch_with_bad_token_changes_nothing(self):
        t = self.create(displayName="keep")
        r = self.call("PATCH", f"{BASE}/{t['id']}", {"displayName": "lost", "token": "bm90IGpzb24="})
        self.assertGraphError(r, 400, "BadRequest", "token", "JSON")
        self.assertEqual(self.call("GET", f"{BASE}/{t['id']}").json()["displayName"], "keep")

    def test_property_sizes_are_limited_and_a_refusal_changes_nothing(self):
        t = self.create(displayName="keep", roleScopeTagIds=["0"])
        # 256 characters (not bytes: "é" is two) are stored; one more is a 400 naming the property.
        r = self.call("PATCH", f"{BASE}/{t['id']}", {"displayName": "é" * 256, "roleScopeTagIds": ["t"] * 100})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["displayName"], "é" * 256)
        self.assertEqual(len(r.json()["roleScopeTagIds"]), 100)
        for body, prop, says in (({"displayName": "x" * 257}, "displayName", "at most 256 characters"),
                                 ({"displayName": "x" * 500_000}, "displayName", "at most 256 characters"),
                                 ({"appleId": "a" * 300 + "@x.com"}, "appleId", "at most 256 characters"),
                                 ({"roleScopeTagIds": ["t"] * 101}, "roleScopeTagIds", "at most 100 elements"),
                                 ({"roleScopeTagIds": ["t" * 257]}, "roleScopeTagIds", "at most 256 characters"),
                                 ({"token": "A" * (64 * 1024 + 1)}, "token", "at most 65536 characters")):
            r = self.call("PATCH", f"{BASE}/{t['id']}", {"countryOrRegion": "gb", **body})
            self.assertGraphError(r, 400, "BadRequest", prop, says)
        now = self.call("GET", f"{BASE}/{t['id']}").json()
        self.assertEqual((now["displayName"], len(now["roleScopeTagIds"]), now["countryOrRegion"]),
                         ("é" * 256, 100, t["countryOrRegion"]))
        r = self.call("POST", BASE, {"token": make_stoken(), "displayName": "y" * 257})
        self.assertGraphError(r, 400, "BadRequest", "displayName", "at most 256 characters")

    def test_patch_unknown_id_is_404(self):
        r = self.call("PATCH", f"{BASE}/nope", {"displayName": "x"})
        self.assertGraphError(r, 404, "ResourceNotFound")

    def test_delete_is_204_then_404(self):
        t = self.create()
        r = self.call("DELETE", f"{BASE}/{t['id']}")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, "")
        self.assertGraphError(self.call("GET", f"{BASE}/{t['id']}"), 404, "ResourceNotFound")
        self.assertGraphError(self.call("DELETE", f"{BASE}/{t['id']}"), 404, "ResourceNotFound")


class BadBodies(VppdTestCase):
    def test_each_malformed_body_gets_a_precise_400_or_415(self):
        cases = [
            ({"displayName": "no token"}, 400, "token", "required"),
            ({"token": ""}, 400, "token", "required"),
            ({"token": "!!!"}, 400, "token", "not base64"),
            ({"token": "W10="}, 400, "token", "JSON object"),  # base64("[]")
            ({"token": make_stoken(exp="soon")}, 400, "token", "expDate"),
            ({"token": 42}, 400, "token", "string"),
            ({"token": make_stoken(), "bogus": 1}, 400, "bogus", "does not exist"),
            ({"token": make_stoken(), "automaticallyUpdateApps": "yes"}, 400, "automaticallyUpdateApps", "true or false"),
            ({"token": make_stoken(), "automaticallyUpdateApps": None}, 400, "automaticallyUpdateApps", "null"),
            ({"token": make_stoken(), "vppTokenAccountType": "enterprise"}, 400, "vppTokenAccountType", "not a member"),
            ({"token": make_stoken(), "roleScopeTagIds": "0"}, 400, "roleScopeTagIds", "array"),
            ({"token": make_stoken(), "roleScopeTagIds": [1]}, 400, "roleScopeTagIds", "string"),
            ({"token": make_stoken(), "lastSyncDateTime": "yesterday"}, 400, "lastSyncDateTime", "ISO-8601"),
            ({"token": make_stoken(), "state": "sleepy"}, 400, "state", "not a member"),
            ({"token": make_stoken(), "lastAppCount": 1.5}, 400, "lastAppCount", "integer"),
            ({"token": make_stoken(), "@odata.type": "#microsoft.graph.iosVppApp"}, 400, "@odata.type", "vppToken"),
        ]
        for body, status, name, fragment in cases:
            with self.subTest(body=body):
                r = self.call("POST", BASE, body)
                self.assertGraphError(r, status, "BadRequest", name, fragment)

    def test_not_json_not_object_wrong_type_and_empty(self):
        self.assertGraphError(self.call("POST", BASE, "{nope", headers={"Content-Type": "application/json"}),
                              400, "BadRequest", "not valid JSON")
        self.assertGraphError(self.call("POST", BASE, "[1]", headers={"Content-Type": "application/json"}),
                              400, "BadRequest", "JSON object")
        self.assertGraphError(self.call("POST", BASE, "", headers={"Content-Type": "application/json"}),
                              400, "BadRequest", "empty")
        self.assertGraphError(self.call("POST", BASE, "token=x", headers={"Content-Type": "text/plain"}),
                              415, "UnsupportedMediaType", "application/json")
        self.assertGraphError(self.call("POST", BASE, json.dumps({"token": make_stoken()})),
                              415, "UnsupportedMediaType", "Content-Type")
        ok = self.call("POST", BASE, json.dumps({"token": make_stoken()}),
                       headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(ok.status, 201, ok)

    def test_nothing_half_written_after_rejections(self):
        before = int(self.call("GET", BASE + "/$count").body)
        self.call("POST", BASE, {"token": make_stoken(), "bogus": True})
        self.call("POST", BASE, {"token": "junk"})
        self.assertEqual(int(self.call("GET", BASE + "/$count").body), before)


class Routing(VppdTestCase):
    def test_unknown_segments_methods_and_versions(self):
        self.assertGraphError(self.call("GET", "/beta/deviceAppManagement/vppTokenz"), 400, "BadRequest",
                              "segment 'vppTokenz'")
        self.assertGraphError(self.call("GET", "/beta/deviceManagement"), 400, "BadRequest", "deviceManagement")
        self.assertGraphError(self.call("GET", "/v2.0/deviceAppManagement/vppTokens"), 404, "BadRequest", "version")
        t = self.create()
        self.assertGraphError(self.call("GET", f"{BASE}/{t['id']}/nothing"), 400, "BadRequest", "nothing")
        r = self.call("PUT", BASE)
        self.assertGraphError(r, 405, "MethodNotAllowed", "PUT")
        self.assertEqual(r.headers["allow"], "GET, POST")
        r = self.call("POST", f"{BASE}/{t['id']}", {"x": 1})
        self.assertEqual(r.status, 405)
        self.assertEqual(r.headers["allow"], "GET, PATCH, DELETE")

    def test_accept_negotiation(self):
        self.assertGraphError(self.call("GET", BASE, headers={"Accept": "application/xml"}), 406, "NotAcceptable")
        self.assertGraphError(self.call("GET", BASE, headers={"Accept": "application/json;q=0"}), 406, "NotAcceptable")
        for accept in ("application/json", "*/*", "application/*", "text/html, application/json;q=0.5"):
            self.assertEqual(self.call("GET", BASE, headers={"Accept": accept}).status, 200, accept)
        r = self.call("GET", BASE + "/$count", headers={"Accept": "text/plain;q=0.9, application/json"})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers["content-type"].startswith("text/plain"))
        # Graph answers $count in text/plain to the Accept: application/json its own clients send
        # (test_graph_items.py has the rest).
        r = self.call("GET", BASE + "/$count", headers={"Accept": "application/json"})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers["content-type"].startswith("text/plain"))
        self.assertGraphError(self.call("GET", BASE + "/$count", headers={"Accept": "application/xml"}), 406,
                              "NotAcceptable")

    def test_every_response_has_request_id_date_and_echoes_client_request_id(self):
        for path in (BASE, BASE + "/nope", "/healthz"):
            r = self.call("GET", path, headers={"client-request-id": "abc-123"})
            self.assertTrue(GUID.match(r.headers["request-id"]), r.headers)
            self.assertEqual(r.headers["client-request-id"], "abc-123")
            self.assertIn("GMT", r.headers["date"])
        r = self.call("GET", BASE + "/nope", headers={"client-request-id": "abc-123"})
        self.assertEqual(r.json()["error"]["innerError"]["client-request-id"], "abc-123")

    def test_healthz(self):
        r = request(self.vppd.port, "GET", "/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["status"], "ok")


class Collections(VppdTestCase):
    extra_args = ("--graph-page-size", "3")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]
        for i, n in enumerate(cls.names):
            body = {"token": make_stoken(org=f"Org {i % 2}", exp="2020-01-01T00:00:00Z" if i == 6 else
                                         f"203{i}-01-01T00:00:00Z"),
                    "displayName": n, "automaticallyUpdateApps": i % 2 == 0,
                    "vppTokenAccountType": "education" if i < 3 else "business"}
            if i == 0:
                body["countryOrRegion"] = "us"
            r = cls.vppd.request("POST", BASE, token=cls.token, body=body)
            assert r.status == 201, r

    def names_of(self, query):
        """Display names of every page of the query (following @odata.nextLink)."""
        return [t["displayName"] for t in self.vppd.collect(BASE + "?" + query, self.token)]

    def test_filter_operators(self):
        cases = {
            "$filter=" + quote("displayName eq 'bravo'"): ["bravo"],
            "$filter=" + quote("displayName ne 'bravo' and vppTokenAccountType eq 'education'"): ["alpha", "charlie"],
            "$filter=" + quote("startswith(displayName,'d') or endswith(displayName,'lf')"): ["delta", "golf"],
            "$filter=" + quote("contains(displayName,'o')"): ["bravo", "echo", "foxtrot", "golf"],
            "$filter=" + quote("displayName in ('echo','golf','zulu')"): ["echo", "golf"],
            "$filter=" + quote("not (automaticallyUpdateApps eq true)"): ["bravo", "delta", "foxtrot"],
            "$filter=" + quote("state eq 'expired'"): ["golf"],
            "$filter=" + quote("state eq microsoft.graph.vppTokenState'expired'"): ["golf"],
            "$filter=" + quote("expirationDateTime lt 2032-06-01T00:00:00Z and state ne 'expired'"):
                ["alpha", "bravo", "charlie"],
            "$filter=" + quote("countryOrRegion eq null and displayName le 'bravo'"): ["bravo"],
            "$filter=" + quote("countryOrRegion ne null"): ["alpha"],
            "$filter=" + quote("lastAppCount ge 0 and lastAppCount lt 1 and displayName gt 'f'"): ["foxtrot", "golf"],
        }
        for query, expected in cases.items():
            with self.subTest(query=query):
                got = self.names_of(query + "&$orderby=displayName&$top=50")
                self.assertEqual(got, expected)

    def test_bad_queries_name_the_offender(self):
        cases = [
            ("$filter=" + quote("dispalyName eq 'x'"), "dispalyName"),
            ("$filter=" + quote("state eq 'sleepy'"), "sleepy"),
            ("$filter=" + quote("displayName eq"), "$filter"),
            ("$filter=" + quote("(displayName eq 'a'"), "$filter"),
            ("$filter=" + quote("token eq 'x'"), "token"),
            ("$filter=" + quote("lastAppCount eq 'x'"), "lastAppCount"),
            ("$orderby=nope", "nope"),
            ("$top=-1", "$top"),
            ("$top=abc", "$top"),
            ("$skip=x", "$skip"),
            ("$count=maybe", "$count"),
            ("$foo=1", "$foo"),
            ("$top=1&$top=2", "$top"),
            ("$expand=x", "$expand"),
        ]
        for query, fragment in cases:
            with self.subTest(query=query):
                self.assertGraphError(self.call("GET", BASE + "?" + query), 400, "BadRequest", fragment)

    def test_orderby_several_keys_top_skip(self):
        got = self.names_of("$orderby=vppTokenAccountType%20desc,displayName%20asc&$top=50")
        self.assertEqual(got, ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"])
        got = self.names_of("$orderby=displayName%20desc&$top=2&$skip=1")
        self.assertEqual(got, ["foxtrot", "echo"])

    def test_server_driven_paging_with_next_link(self):
        seen, url, pages = [], BASE + "?$orderby=displayName&$count=true", 0
        while url:
            r = self.call("GET", url)
            self.assertEqual(r.status, 200, r)
            body = r.json()
            self.assertEqual(body["@odata.count"], 7)
            self.assertLessEqual(len(body["value"]), 3)
            seen += [t["displayName"] for t in body["value"]]
            pages += 1
            link = body.get("@odata.nextLink")
            url = link.split(str(self.vppd.port), 1)[1] if link else None
            self.assertLess(pages, 10)
        self.assertEqual(seen, sorted(self.names))
        self.assertEqual(pages, 3)

    def test_top_smaller_than_page_has_no_next_link_and_top_larger_is_paged(self):
        r = self.call("GET", BASE + "?$top=2&$orderby=displayName").json()
        self.assertNotIn("@odata.nextLink", r)
        self.assertEqual(len(r["value"]), 2)
        r = self.call("GET", BASE + "?$top=5&$orderby=displayName").json()
        self.assertEqual(len(r["value"]), 3)
        nxt = self.call("GET", r["@odata.nextLink"].split(str(self.vppd.port), 1)[1]).json()
        self.assertEqual([t["displayName"] for t in nxt["value"]], ["delta", "echo"])
        self.assertNotIn("@odata.nextLink", nxt)

    def test_count_segment_and_select(self):
        r = self.call("GET", BASE + "/$count?$filter=" + quote("vppTokenAccountType eq 'education'"))
        self.assertEqual((r.status, r.body), (200, "3"))
        r = self.call("GET", BASE + "?$select=displayName&$top=1&$orderby=displayName").json()
        self.assertEqual(set(k for k in r["value"][0] if not k.startswith("@")), {"id", "displayName"})
        self.assertIn("vppTokens(displayName)", r["@odata.context"])
        self.assertTrue(r["@odata.context"].endswith("/beta/$metadata#deviceAppManagement/vppTokens(displayName)"))


class Auth(VppdTestCase):
    def test_missing_and_bad_tokens_are_401(self):
        r = self.vppd.request("GET", BASE)
        self.assertGraphError(r, 401, "InvalidAuthenticationToken", "Access token is empty.")
        self.assertEqual(r.headers["www-authenticate"], "Bearer")
        self.assertGraphError(self.vppd.request("GET", BASE, token="abc.def.ghi"), 401, "InvalidAuthenticationToken",
                              "Access token validation failure.")
        expired = self.vppd.dev_token("--ttl", "-600")
        self.assertGraphError(self.vppd.request("GET", BASE, token=expired), 401, "InvalidAuthenticationToken",
                              "expired")

    def test_permissions_of_the_seed_profile(self):
        reader = self.vppd.dev_token("--scopes", READ_SCOPE)
        self.assertEqual(self.vppd.request("GET", BASE, token=reader).status, 200)
        self.assertGraphError(self.vppd.request("POST", BASE, token=reader, body={"token": make_stoken()}), 403,
                              "Forbidden", WRITE_SCOPE)
        app = self.vppd.dev_token("--roles", WRITE_SCOPE)
        self.assertGraphError(self.vppd.request("GET", BASE, token=app), 403, "Forbidden", "Application permissions")
        msa = self.vppd.dev_token("--msa")
        self.assertGraphError(self.vppd.request("GET", BASE, token=msa), 403, "Forbidden", "Personal")

    def test_unknown_and_unlicensed_tenants_are_403(self):
        other = "11111111-2222-4333-8444-555555555555"
        tok = self.vppd.dev_token("--tenant", other, "--scopes", WRITE_SCOPE)
        self.assertGraphError(self.vppd.request("GET", BASE, token=tok), 403, "Forbidden", "not registered")
        self.vppd.cli("tenant", "--data-dir", self.vppd.data_dir, "add", other, "--name", "Other", "--unlicensed")
        self.assertGraphError(self.vppd.request("GET", BASE, token=tok), 403, "Forbidden", "Intune license")
        self.vppd.cli("tenant", "--data-dir", self.vppd.data_dir, "set-license", other, "on")
        self.assertEqual(self.vppd.request("GET", BASE, token=tok).status, 200)

    def test_tenants_never_see_each_other(self):
        mine = self.create(displayName="mine")
        other = "22222222-3333-4444-8555-666666666666"
        self.vppd.cli("tenant", "--data-dir", self.vppd.data_dir, "add", other, "--name", "B")
        tok = self.vppd.dev_token("--tenant", other, "--scopes", WRITE_SCOPE)
        self.assertEqual(self.vppd.request("GET", BASE, token=tok).json()["value"], [])
        self.assertEqual(self.vppd.request("GET", BASE + "/$count", token=tok).body, "0")
        path = f"{BASE}/{mine['id']}"
        self.assertGraphError(self.vppd.request("GET", path, token=tok), 404, "ResourceNotFound")
        self.assertGraphError(self.vppd.request("PATCH", path, token=tok, body={"displayName": "x"}), 404,
                              "ResourceNotFound")
        self.assertGraphError(self.vppd.request("DELETE", path, token=tok), 404, "ResourceNotFound")
        self.assertEqual(self.call("GET", path).json()["displayName"], "mine")

    def test_the_clis_writes_are_seen_by_the_next_request(self):
        # vppd holds a read transaction open between its own writes (the store's
        # read anchor); a commit by another process, here the CLI, must still be
        # seen by the very next request, never later.
        other = "44444444-5555-4666-8777-888888888888"
        tok = self.vppd.dev_token("--tenant", other, "--scopes", WRITE_SCOPE)
        for round_ in range(3):
            self.vppd.cli("tenant", "--data-dir", self.vppd.data_dir, "add", other, "--name", f"Round {round_}")
            r = self.vppd.request("POST", BASE, token=tok, body={"token": make_stoken(), "displayName": "r"})
            self.assertEqual(r.status, 201, r)  # vppd's own write: its anchor moves to this commit
            path = f"{BASE}/{r.json()['id']}"
            self.assertEqual(self.vppd.request("GET", path, token=tok).status, 200)
            self.vppd.cli("tenant", "--data-dir", self.vppd.data_dir, "remove", other, "--yes")
            # The tenant may still be remembered as licensed for up to a second
            # (service Gate), but its token is gone from the store at once.
            gone = self.vppd.request("GET", path, token=tok)
            self.assertIn(gone.status, (403, 404), gone)
            self.assertIn(gone.json()["error"]["code"], ("Forbidden", "ResourceNotFound"), gone)


class CurrentProfile(VppdTestCase):
    extra_args = ("--auth-permission-profile", "current")

    def test_application_and_apps_permissions_are_accepted(self):
        app = self.vppd.dev_token("--roles", "DeviceManagementApps.ReadWrite.All")
        r = self.vppd.request("POST", BASE, token=app, body={"token": make_stoken()})
        self.assertEqual(r.status, 201, r)
        reader = self.vppd.dev_token("--roles", "DeviceManagementApps.Read.All")
        self.assertEqual(self.vppd.request("GET", BASE, token=reader).status, 200)
        self.assertGraphError(self.vppd.request("DELETE", f"{BASE}/{r.json()['id']}", token=reader), 403, "Forbidden",
                              "DeviceManagementApps.ReadWrite.All")
        delegated = self.vppd.dev_token("--scopes", "DeviceManagementApps.ReadWrite.All")
        self.assertEqual(self.vppd.request("GET", BASE, token=delegated).status, 200)
        msa = self.vppd.dev_token("--msa", "--scopes", WRITE_SCOPE)
        self.assertGraphError(self.vppd.request("GET", BASE, token=msa), 403, "Forbidden", "Personal")


class Throttling(VppdTestCase):
    extra_args = ("--throttle-app-writes", "3", "--throttle-tenant-requests", "40")

    def test_writes_over_the_limit_get_429_with_retry_after(self):
        statuses = [self.call("POST", BASE, {"token": make_stoken()}).status for _ in range(4)]
        self.assertEqual(statuses, [201, 201, 201, 429])
        r = self.call("POST", BASE, {"token": make_stoken()})
        self.assertGraphError(r, 429, "TooManyRequests", "writes")
        self.assertGreaterEqual(int(r.headers["retry-after"]), 1)
        self.assertLessEqual(int(r.headers["retry-after"]), 20)
        # reads still pass until the request limit
        self.assertEqual(self.call("GET", BASE).status, 200)
        # another tenant is not throttled
        other = "33333333-4444-4555-8666-777777777777"
        self.vppd.cli("tenant", "--data-dir", self.vppd.data_dir, "add", other)
        tok = self.vppd.dev_token("--tenant", other, "--scopes", WRITE_SCOPE)
        self.assertEqual(self.vppd.request("POST", BASE, token=tok, body={"token": make_stoken()}).status, 201)


class HttpEdge(VppdTestCase):
    def raw(self, data, read_timeout=5):
        return raw_exchange(self.vppd.port, data, read_timeout)

    def test_limits(self):
        big_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (17 * 1024) + b"\r\n\r\n"
        self.assertTrue(self.raw(big_header).startswith(b"HTTP/1.1 431"))
        big_body = (b"POST " + BASE.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(1024 * 1024 + 1).encode() + b"\r\n\r\n")
        self.assertTrue(self.raw(big_body).startswith(b"HTTP/1.1 413"))
        self.assertTrue(self.raw(b"THIS IS NOT HTTP\r\n\r\n").startswith(b"HTTP/1.1 400"))

    def test_keep_alive(self):
        out = self.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
                       b"Connection: close\r\n\r\n")
        self.assertEqual(out.count(b"HTTP/1.1 200"), 2)


class Lifecycle(unittest.TestCase):
    def test_sigterm_exits_zero_and_data_survives_restart(self):
        v = Vppd(*NO_APPLE).start()
        try:
            tok = v.dev_token()
            r = v.request("POST", BASE, token=tok, body={"token": make_stoken(), "displayName": "durable"})
            self.assertEqual(r.status, 201, r)
            self.assertEqual(v.stop(), 0)
            v.start()
            r = v.request("GET", BASE, token=tok)
            self.assertEqual([t["displayName"] for t in r.json()["value"]], ["durable"])
        finally:
            v.cleanup()

    def test_data_dir_and_key_files_are_private_and_stoken_not_in_plaintext(self):
        parent = tempfile.mkdtemp(prefix="vppd-test-")
        v = Vppd(*NO_APPLE, data_dir=os.path.join(parent, "data")).start()  # vppd creates the dir itself
        try:
            tok = v.dev_token()
            stoken = make_stoken(token="SECRET-LOCATION-TOKEN")
            self.assertEqual(v.request("POST", BASE, token=tok, body={"token": stoken}).status, 201)
            v.stop()
            self.assertEqual(os.stat(v.data_dir).st_mode & 0o777, 0o700)
            self.assertEqual(os.stat(os.path.join(v.data_dir, "secret.key")).st_mode & 0o777, 0o600)
            for name in os.listdir(v.data_dir):
                with open(os.path.join(v.data_dir, name), "rb") as f:
                    data = f.read()
                self.assertNotIn(stoken.encode(), data, name)
                self.assertNotIn(b"SECRET-LOCATION-TOKEN", data, name)
            if v.database_url:  # the store is a PostgreSQL database: look at all of it
                dump = subprocess.run(["pg_dump", "--data-only", "-d", v.database_url], capture_output=True,
                                      timeout=60, check=True).stdout
                self.assertIn(b"vpp_tokens", dump.lower().replace(b'"', b""))
                self.assertNotIn(stoken.encode(), dump)
                self.assertNotIn(b"SECRET-LOCATION-TOKEN", dump)
        finally:
            v.cleanup()
            shutil.rmtree(parent, ignore_errors=True)

    def test_the_sample_config_is_valid(self):
        sample = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging", "vppd.toml")
        v = Vppd("--config", sample, *NO_APPLE)  # flags override its listen address and data dir
        try:
            v.start()
            self.assertEqual(v.request("GET", "/healthz").status, 200)
        finally:
            v.cleanup()

    def test_bad_config_is_refused_clearly(self):
        v = Vppd()
        try:
            cfg = os.path.join(v.data_dir, "vppd.toml")
            with open(cfg, "w") as f:
                f.write('listen = "127.0.0.1:0"\n[graph]\npage_sise = 5\n')
            r = v.cli("serve", "--config", cfg, "--data-dir", v.data_dir, check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("graph.page_sise", r.stderr)
        finally:
            v.cleanup()


if __name__ == "__main__":
    unittest.main()
