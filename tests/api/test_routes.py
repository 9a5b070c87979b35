"""Black-box tests of routing (one route table): 400 for unknown segments whatever the method,
405 + Allow for known paths, route labels, the permission checked before the body, and the
Graph error envelope on the answers the HTTP server gives on its own."""
import json
import os
import re
import sys
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import READ_SCOPE, WRITE_SCOPE, Vppd, make_stoken, raw_exchange  # noqa: E402

BASE = "/beta/deviceAppManagement/vppTokens"
APPS = "/beta/deviceAppManagement/mobileApps"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
NO_APPLE = ("--apple-url", "http://127.0.0.1:9/mdm/v2", "--apple-max-attempts", "1")
METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")


class Routes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.vppd = Vppd(*NO_APPLE, "--throttle-window-seconds", "0").start()
        cls.token = cls.vppd.dev_token("--scopes", WRITE_SCOPE)
        r = cls.vppd.request("POST", BASE, token=cls.token, body={"token": make_stoken(), "displayName": "routes"})
        assert r.status == 201, r
        cls.id = r.json()["id"]

    @classmethod
    def tearDownClass(cls):
        cls.vppd.cleanup()

    def call(self, method, path, body=None, headers=None, token=None):
        if body is None and method in ("POST", "PATCH", "PUT"):
            body = {}
        return self.vppd.request(method, path, token=self.token if token is None else token, headers=headers,
                                 body=body)

    def test_unknown_segments_are_400_whatever_the_method(self):
        cases = [
            (f"{APPS}/some-app/nothing", "nothing"),
            (f"{APPS}('some-app')/nothing", "nothing"),
            (f"{APPS}/some-app/microsoft.graph.iosVppApp/nothing", "nothing"),
            (f"{APPS}/microsoft.graph.iosVppApp/nothing", "nothing"),
            (f"{BASE}/{self.id}/nothing", "nothing"),
            (f"{BASE}/{self.id}/syncLicenses/more", "more"),
            (f"{BASE}/$count/more", "more"),
            ("/beta/deviceAppManagement/vppTokenz", "vppTokenz"),
            ("/beta/deviceManagement", "deviceManagement"),
            ("/beta/$metadata/extra", "extra"),
            # beta-only routes are not there in v1.0
            (f"/v1.0/deviceAppManagement/vppTokens/{self.id}/revokeLicenses", "revokeLicenses"),
            (f"/v1.0/deviceAppManagement/mobileApps/x/microsoft.graph.iosVppApp/assignedLicenses",
             "assignedLicenses"),
        ]
        for path, segment in cases:
            for method in METHODS:
                with self.subTest(method=method, path=path):
                    r = self.call(method, path)
                    self.assertEqual(r.status, 400, r)
                    err = r.json()["error"]
                    self.assertEqual(err["code"], "BadRequest", r)
                    self.assertEqual(err["message"], f"Resource not found for the segment '{segment}'.", r)
                    self.assertNotIn("allow", r.headers)

    def test_known_paths_answer_405_with_allow(self):
        cases = [
            ("PUT", BASE, "GET, POST"),
            ("DELETE", BASE, "GET, POST"),
            ("POST", f"{BASE}/{self.id}", "GET, PATCH, DELETE"),
            ("PUT", f"{BASE}('{self.id}')", "GET, PATCH, DELETE"),
            ("GET", f"{BASE}/{self.id}/syncLicenses", "POST"),
            ("GET", f"{BASE}/{self.id}/microsoft.graph.syncLicenses", "POST"),
            ("DELETE", f"{BASE}/{self.id}/revokeLicenses", "POST"),
            ("DELETE", f"{BASE}/$count", "GET"),
            ("GET", f"{BASE}/syncLicenseCounts", "POST"),
            ("POST", f"{BASE}/getLicensesForApp(bundleId='x')", "GET"),
            ("POST", f"{BASE}/microsoft.graph.getLicensesForApp(bundleId='x')", "GET"),
            ("POST", APPS, "GET"),
            ("DELETE", f"{APPS}/some-app", "GET"),
            ("PATCH", f"{APPS}/some-app/graph.iosVppApp", "GET"),
            ("POST", f"{APPS}/some-app/microsoft.graph.iosVppApp/assignedLicenses", "GET"),
            ("POST", f"{APPS}/$count", "GET"),
            ("POST", "/beta/$metadata", "GET"),
            ("POST", "/healthz", "GET, HEAD"),
        ]
        for method, path, allow in cases:
            with self.subTest(method=method, path=path):
                r = self.call(method, path)
                self.assertEqual(r.status, 405, r)
                self.assertEqual(r.headers.get("allow"), allow, r)
                self.assertEqual(r.json()["error"]["code"], "MethodNotAllowed", r)
                self.assertIn(f"'{method}'", r.json()["error"]["message"], r)

    def test_unauthenticated_requests_are_401_before_routing(self):
        for method, path in (("GET", BASE), ("POST", f"{APPS}/x/nothing"), ("PUT", BASE)):
            r = self.vppd.request(method, path, body={} if method != "GET" else None)
            self.assertEqual(r.status, 401, (method, path, r))

    def test_operations_unqualified_qualified_and_by_key(self):
        for path in (f"{BASE}/{self.id}/syncLicenses", f"{BASE}('{self.id}')/microsoft.graph.syncLicenses",
                     f"{BASE}/{self.id}/graph.syncLicenses",
                     f"/v1.0/deviceAppManagement/vppTokens/{self.id}/syncLicenses"):
            r = self.call("POST", path, body=None)
            self.assertEqual(r.status, 200, (path, r))
        r = self.call("GET", f"{BASE}/microsoft.graph.getLicensesForApp(bundleId='com.example.none')")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["value"], [])
        r = self.call("GET", f"{BASE}/getLicensesForApp")
        self.assertEqual(r.status, 400, r)
        self.assertIn("parameter list is missing", r.json()["error"]["message"])
        r = self.call("GET", f"/v1.0/deviceAppManagement/vppTokens('{self.id}')")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["id"], self.id)

    def test_metrics_count_requests_by_route_template(self):
        self.call("GET", f"{BASE}/{self.id}")
        self.call("GET", f"/v1.0/deviceAppManagement/vppTokens('{self.id}')")
        self.call("GET", f"{BASE}/$count")
        self.call("GET", f"{BASE}/getLicensesForApp(bundleId='a.b')")
        self.call("GET", f"{APPS}/x/microsoft.graph.iosVppApp/assignedLicenses")
        self.call("GET", f"{APPS}/graph.macOsVppApp/$count")
        self.call("PUT", f"{BASE}/{self.id}/syncLicenses")
        self.call("GET", f"{BASE}/{self.id}/nothing")
        text = self.vppd.request("GET", "/metrics").body
        for route in ("beta/vppTokens/{id}", "v1.0/vppTokens/{id}", "beta/vppTokens/$count",
                      "beta/vppTokens/getLicensesForApp", "beta/mobileApps/{id}/{cast}/assignedLicenses",
                      "beta/mobileApps/{cast}/$count", "beta/vppTokens/{id}/syncLicenses", "other"):
            self.assertIn(f'route="{route}"', text, route)
        self.assertRegex(text, r'route="beta/vppTokens/\{id\}/syncLicenses",method="PUT",status="405"')
        self.assertNotIn(self.id, text)

    def test_the_permission_is_checked_before_the_request_is_read(self):
        reader = self.vppd.dev_token("--scopes", READ_SCOPE)
        r = self.vppd.request("PATCH", f"{BASE}/{self.id}", token=reader, body="not json",
                              headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 403, r)
        self.assertIn(WRITE_SCOPE, r.json()["error"]["message"])
        r = self.vppd.request("POST", BASE, token=reader, body="x", headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 403, r)
        # and a caller who may write still gets the precise 400 / 415
        r = self.vppd.request("PATCH", f"{BASE}/{self.id}", token=self.token, body="not json",
                              headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r)
        r = self.vppd.request("POST", BASE, token=self.token, body="x", headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 415, r)


    # Where a bound operation is called: below its binding, vppTokens (a collection or one
    # token), deviceManagement/depOnboardingSettings, one managedEBook, a VPP app (cast) or a managed device.
    ARGUMENTS = {"getLicensesForApp": "(bundleId='x')",
                 "getExpiringVppTokenCount": "(expiringBeforeDateTime='2027-01-01T00:00:00Z')"}

    def operation_path(self, version, name, on_collection, binding):
        segment = name + self.ARGUMENTS.get(name, "")
        if binding == "Collection(microsoft.graph.depOnboardingSetting)":
            return f"/{version}/deviceManagement/depOnboardingSettings/{segment}"
        if binding == "microsoft.graph.managedEBook":  # managedEBooks/{id}/assign
            return f"/{version}/deviceAppManagement/managedEBooks/x/{segment}"
        if binding in ("microsoft.graph.iosVppApp", "microsoft.graph.macOsVppApp"):  # revokes (issue 17)
            return f"/{version}/deviceAppManagement/mobileApps/x/{binding}/{segment}"
        if binding == "microsoft.graph.managedDevice":
            return f"/{version}/deviceManagement/managedDevices/x/{segment}"
        base = f"/{version}/deviceAppManagement/vppTokens"
        return f"{base}/{segment}" if on_collection else f"{base}/{self.id}/{segment}"

    def test_what_metadata_declares_is_routed(self):
        """Every bound operation and every collection of deviceAppManagement that $metadata declares has a
        route with the method OData gives it (asked with the other method: 405 naming it in Allow), and
        an operation the version does not declare is an unknown segment there."""
        edm = "{http://docs.oasis-open.org/odata/ns/edm}"
        declared = {}
        for version in ("beta", "v1.0"):
            doc = ET.fromstring(self.call("GET", f"/{version}/$metadata").body)
            schema = doc.find(f".//{edm}Schema")
            ops = {}
            for kind, method in (("Action", "POST"), ("Function", "GET")):
                for op in schema.findall(f"{edm}{kind}"):
                    binding = op.find(f"{edm}Parameter").get("Type")
                    ops[op.get("Name")] = (method, binding.startswith("Collection("), binding)
            declared[version] = ops
            nav = [n.get("Name") for t in schema.findall(f"{edm}EntityType") if t.get("Name") == "deviceAppManagement"
                   for n in t.findall(f"{edm}NavigationProperty")]
            self.assertEqual(sorted(nav), ["managedEBooks", "mobileApps", "vppTokens"], version)
            for name in nav:
                r = self.call("DELETE", f"/{version}/deviceAppManagement/{name}")
                self.assertEqual(r.status, 405, (version, name, r))
                self.assertIn("GET", r.headers["allow"])
            for name, (method, on_collection, binding) in ops.items():
                path = self.operation_path(version, name, on_collection, binding)
                r = self.call("GET" if method == "POST" else "POST", path)
                self.assertEqual(r.status, 405, (version, name, r))
                self.assertEqual(r.headers["allow"], method, (version, name))
        self.assertTrue(declared["beta"])
        for name in set(declared["beta"]) - set(declared["v1.0"]):
            method, on_collection, binding = declared["beta"][name]
            r = self.call(method, self.operation_path("v1.0", name, on_collection, binding))
            if on_collection and "vppToken" in binding:  # then the segment reads as a key: no such token
                self.assertIn(r.status, (404, 405), (name, r))
            else:
                self.assertEqual(r.status, 400, (name, r))
                self.assertIn("Resource not found for the segment", r.json()["error"]["message"])


class ServerErrorEnvelope(unittest.TestCase):
    """The answers the HTTP server gives on its own carry Graph's envelope, like the handlers'."""

    @classmethod
    def setUpClass(cls):
        cls.vppd = Vppd(*NO_APPLE).start()

    @classmethod
    def tearDownClass(cls):
        cls.vppd.cleanup()

    def raw(self, data):
        """Sends `data`, reads until the server closes; returns (status, headers, body)."""
        out = raw_exchange(self.vppd.port, data)
        head, _, body = out.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), headers, body[:int(headers.get("content-length", len(body)))]

    def assertEnvelope(self, answer, status, code, client_request_id=None):
        got_status, headers, body = answer
        self.assertEqual(got_status, status, body)
        self.assertTrue(headers["content-type"].startswith("application/json"), headers)
        err = json.loads(body)["error"]
        self.assertEqual(err["code"], code)
        self.assertTrue(err["message"])
        inner = err["innerError"]
        self.assertTrue(GUID.match(inner["request-id"]), inner)
        self.assertEqual(inner["request-id"], headers["request-id"])
        self.assertEqual(inner["client-request-id"], client_request_id or headers["request-id"])
        self.assertTrue(ISO_Z.match(inner["date"]), inner)
        self.assertEqual(list(inner), ["date", "request-id", "client-request-id"])  # as the handlers' errors
        if client_request_id:
            self.assertEqual(headers["client-request-id"], client_request_id)

    def test_body_too_large_is_413_in_the_envelope_with_the_client_request_id(self):
        answer = self.raw(b"POST " + BASE.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"client-request-id: c-413\r\nContent-Length: " + str(1024 * 1024 + 1).encode() +
                          b"\r\n\r\n")
        self.assertEnvelope(answer, 413, "requestEntityTooLarge", "c-413")

    def test_header_too_large_is_431_in_the_envelope(self):
        answer = self.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (17 * 1024) + b"\r\n\r\n")
        self.assertEnvelope(answer, 431, "requestHeaderFieldsTooLarge")

    def test_malformed_request_is_400_in_the_envelope(self):
        self.assertEnvelope(self.raw(b"THIS IS NOT HTTP\r\n\r\n"), 400, "badRequest")


if __name__ == "__main__":
    unittest.main()
