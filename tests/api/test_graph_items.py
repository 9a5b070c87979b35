"""Black-box tests of issue 14's Graph items on the route table: the base URL of @odata.context,
@odata.nextLink and Location from the validated origin (or --graph-public-url), $count with
Accept: application/json, $metadata without a bearer token, and
depOnboardingSettings/getExpiringVppTokenCount."""
import itertools
import os
import sys
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import READ_SCOPE, WRITE_SCOPE, Vppd, make_stoken  # noqa: E402

BASE = "/beta/deviceAppManagement/vppTokens"
APPS = "/beta/deviceAppManagement/mobileApps"
DEP = "/beta/deviceManagement/depOnboardingSettings"
NO_APPLE = ("--apple-url", "http://127.0.0.1:9/mdm/v2", "--apple-max-attempts", "1", "--throttle-window-seconds", "0")
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "proxy.example:8443"}
APPS_SCOPE = "DeviceManagementApps.ReadWrite.All"
LOCATIONS = itertools.count()  # a fresh Apple location per created token


def urls_of(vppd, token, headers):
    """The absolute URLs vppd writes: @odata.context and @odata.nextLink of a list (pages of
    one), Location and @odata.context of a create."""
    r = vppd.request("GET", BASE, token=token, headers=headers)
    assert r.status == 200, r
    out = [r.json()["@odata.context"], r.json()["@odata.nextLink"]]
    r = vppd.request("POST", BASE, token=token, headers=headers,
                     body={"token": make_stoken(token=f"loc-{next(LOCATIONS)}"), "displayName": "origin"})
    assert r.status == 201, r
    out += [r.headers["location"], r.json()["@odata.context"]]
    return out


class Origin(unittest.TestCase):
    """Item 1: X-Forwarded-* only from a trusted proxy, and --graph-public-url wins."""

    def start(self, *args):
        vppd = Vppd(*NO_APPLE, "--graph-page-size", "1", *args).start()
        self.addCleanup(vppd.cleanup)
        token = vppd.dev_token("--scopes", WRITE_SCOPE)
        for n in range(2):  # two tokens, so that a page of one has a nextLink
            r = vppd.request("POST", BASE, token=token, body={"token": make_stoken(token=f"seed-{n}")})
            self.assertEqual(r.status, 201, r)
        return vppd, token

    def test_forwarded_headers_of_an_untrusted_peer_are_not_reflected(self):
        vppd, token = self.start("--trusted-proxies", "10.9.9.9")  # the test connects from 127.0.0.1
        for url in urls_of(vppd, token, {**FORWARDED, "Host": "vppd.internal:8080"}):
            self.assertTrue(url.startswith("http://vppd.internal:8080/beta/"), url)
            self.assertNotIn("proxy.example", url)

    def test_forwarded_headers_of_a_trusted_proxy_are(self):
        vppd, token = self.start("--trusted-proxies", "10.9.9.9,127.0.0.1")
        for url in urls_of(vppd, token, {**FORWARDED, "Host": "vppd.internal:8080"}):
            self.assertTrue(url.startswith("https://proxy.example:8443/beta/"), url)
        # Without X-Forwarded-*, the Host header the proxy passed on.
        for url in urls_of(vppd, token, {"Host": "vppd.internal:8080"}):
            self.assertTrue(url.startswith("http://vppd.internal:8080/beta/"), url)

    def test_graph_public_url_wins(self):
        vppd, token = self.start("--trusted-proxies", "127.0.0.1", "--graph-public-url", "https://graph.example.com")
        for headers in (FORWARDED, {}):
            for url in urls_of(vppd, token, headers):
                self.assertTrue(url.startswith("https://graph.example.com/beta/deviceAppManagement/") or
                                url.startswith("https://graph.example.com/beta/$metadata#"), url)


class Items(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.vppd = Vppd(*NO_APPLE).start()
        cls.token = cls.vppd.dev_token("--scopes", f"{WRITE_SCOPE} {APPS_SCOPE}")
        cls.read = cls.vppd.dev_token("--scopes", READ_SCOPE)
        # Expiring 2026-03-01, 2027-06-30 and 2030-11-08 (the first already past when these tests run).
        for n, exp in enumerate(("2026-03-01T00:00:00+0000", "2027-06-30T12:00:00+0000", "2030-11-08T22:33:22+0000")):
            r = cls.vppd.request("POST", BASE, token=cls.token, body={"token": make_stoken(token=f"exp-{n}", exp=exp)})
            assert r.status == 201, r

    @classmethod
    def tearDownClass(cls):
        cls.vppd.cleanup()

    # ---- item 2: $count with Accept: application/json

    def test_count_answers_text_plain_to_every_accept_that_admits_it_or_json(self):
        for path in (f"{BASE}/$count", f"{APPS}/$count", f"{APPS}/microsoft.graph.iosVppApp/$count"):
            for accept in ("application/json", "application/json;odata.metadata=minimal", "*/*", "text/plain",
                           "text/*", "application/*", "application/xml, application/json;q=0.1", None):
                with self.subTest(path=path, accept=accept):
                    r = self.vppd.request("GET", path, token=self.token, headers={"Accept": accept} if accept else {})
                    self.assertEqual(r.status, 200, r)
                    self.assertTrue(r.headers["content-type"].startswith("text/plain"), r.headers)
                    self.assertEqual(r.body, "3" if path.startswith(BASE) else "0")

    def test_count_is_406_for_an_accept_that_admits_neither(self):
        for accept in ("application/xml", "text/html", "application/json;q=0, text/plain;q=0", "image/*"):
            with self.subTest(accept=accept):
                r = self.vppd.request("GET", f"{BASE}/$count", token=self.token, headers={"Accept": accept})
                self.assertEqual(r.status, 406, r)
                self.assertEqual(r.error_code(), "NotAcceptable")
                self.assertEqual(r.json()["error"]["target"], "Accept")

    # ---- item 3: $metadata without a bearer token

    def test_metadata_is_served_without_a_token_and_whatever_the_token(self):
        expired = self.vppd.dev_token("--ttl", "-600")
        for version in ("beta", "v1.0"):
            for token in (None, "not-a-jwt", expired, self.token):
                with self.subTest(version=version, token=token and token[:12]):
                    r = self.vppd.request("GET", f"/{version}/$metadata", token=token)
                    self.assertEqual(r.status, 200, r)
                    self.assertTrue(r.headers["content-type"].startswith("application/xml"), r.headers)
                    self.assertNotIn("www-authenticate", r.headers)
                    ET.fromstring(r.body)

    def test_everything_else_still_needs_a_token(self):
        for method, path in (("GET", BASE), ("GET", f"{BASE}/$count"), ("GET", APPS), ("POST", "/beta/$metadata"),
                             ("GET", "/beta/$metadata/extra"), ("GET", "/beta/nothing"),
                             ("GET", f"{DEP}/getExpiringVppTokenCount(expiringBeforeDateTime='2030-01-01T00:00:00Z')")):
            for token in (None, "not-a-jwt"):
                with self.subTest(method=method, path=path, token=token):
                    r = self.vppd.request(method, path, token=token, body={} if method == "POST" else None)
                    self.assertEqual(r.status, 401, r)
                    self.assertEqual(r.error_code(), "InvalidAuthenticationToken")

    # ---- item 4: getExpiringVppTokenCount

    def expiring(self, argument, token=None, headers=None, name="getExpiringVppTokenCount", version="beta"):
        path = f"/{version}/deviceManagement/depOnboardingSettings/{name}(expiringBeforeDateTime={argument})"
        return self.vppd.request("GET", path, token=token or self.token, headers=headers)

    def test_expiring_vpp_token_count(self):
        cases = [
            ("'2020-01-01T00:00:00Z'", 0),
            ("'2026-03-01T00:00:00Z'", 0),  # strictly before
            ("'2026-03-01T00:00:01Z'", 1),
            ("'2028-01-01T00:00:00Z'", 2),
            ("'2027-06-30T13:00:00%2B02:00'", 1),  # 11:00 UTC, an offset percent-encoded as the SDKs send it
            ("'2027-06-30T12:00:00.000001Z'", 2),
            ("'2031-01-01T00:00:00Z'", 3),
        ]
        for argument, expected in cases:
            with self.subTest(argument=argument):
                r = self.expiring(argument)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json(), {
                    "@odata.context": f"http://127.0.0.1:{self.vppd.port}/beta/$metadata#Edm.Int32",
                    "value": expected,
                })
        # Namespace-qualified (the Kiota SDKs), with a parameter alias, and with the read permission.
        self.assertEqual(self.expiring("'2028-01-01T00:00:00Z'", name="microsoft.graph.getExpiringVppTokenCount")
                         .json()["value"], 2)
        r = self.vppd.request("GET", f"{DEP}/getExpiringVppTokenCount(expiringBeforeDateTime=@d)"
                              "?@d='2028-01-01T00:00:00Z'", token=self.token)
        self.assertEqual(r.json()["value"], 2, r)
        self.assertEqual(self.expiring("'2028-01-01T00:00:00Z'", token=self.read).json()["value"], 2)

    def test_expiring_vpp_token_count_counts_only_the_callers_tenant(self):
        other = self.vppd.dev_token("--scopes", WRITE_SCOPE, "--tenant", "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d")
        r = self.expiring("'2031-01-01T00:00:00Z'", token=other)
        if r.status == 403:  # the other tenant is not licensed: refused, never another tenant's count
            self.assertEqual(r.error_code(), "Forbidden")
        else:
            self.assertEqual(r.json()["value"], 0, r)

    def test_expiring_vpp_token_count_refuses_bad_arguments(self):
        for argument in ("'not-a-date'", "'2028-13-01T00:00:00Z'", "''", "2028-01-01T00:00:00Z", "'2028-01-01'x",
                         "'it''s'", "@missing"):
            with self.subTest(argument=argument):
                r = self.expiring(argument)
                self.assertEqual(r.status, 400, r)
                self.assertEqual(r.error_code(), "BadRequest")
                self.assertEqual(r.json()["error"]["target"], "expiringBeforeDateTime", r)
        r = self.vppd.request("GET", f"{DEP}/getExpiringVppTokenCount(when='2028-01-01T00:00:00Z')", token=self.token)
        self.assertEqual(r.status, 400, r)
        r = self.vppd.request("GET", f"{DEP}/getExpiringVppTokenCount", token=self.token)
        self.assertEqual(r.status, 400, r)

    def test_expiring_vpp_token_count_routing_and_permissions(self):
        # Bound to the depOnboardingSettings collection, GET only, beta only.
        r = self.vppd.request("POST", f"{DEP}/getExpiringVppTokenCount(expiringBeforeDateTime='2028-01-01T00:00:00Z')",
                              token=self.token, body={})
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.headers["allow"], "GET")
        r = self.expiring("'2028-01-01T00:00:00Z'", version="v1.0")
        self.assertEqual(r.status, 400, r)
        # v1.0 has deviceManagement (its managedDevices) but no depOnboardingSettings.
        self.assertEqual(r.error_message(), "Resource not found for the segment 'depOnboardingSettings'.")
        r = self.vppd.request("GET", f"{DEP}/some-id/getExpiringVppTokenCount(expiringBeforeDateTime='2028-01-01Z')",
                              token=self.token)
        self.assertEqual(r.status, 400, r)
        r = self.expiring("'2028-01-01T00:00:00Z'", token=self.vppd.dev_token("--scopes", "User.Read"))
        self.assertEqual(r.status, 403, r)
        self.assertIn("DeviceManagementServiceConfig.Read.All", r.error_message())
        r = self.expiring("'2028-01-01T00:00:00Z'", headers={"Accept": "application/xml"})
        self.assertEqual(r.status, 406, r)


if __name__ == "__main__":
    unittest.main()
