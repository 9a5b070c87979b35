"""Conformance tests of apple-vpp-sim against Apple's documented behaviour.

Each test drives the real binary over HTTP on 127.0.0.1 (port 0, URL read from
its first stdout line) and checks one item of the simulator checklist
(spec/apple-vpp.md §10): auth errors, the response envelope, paging and 9650,
versionId / sinceVersionId / 9721, filters, unlimited assets, asynchronous
events (PENDING → COMPLETE/FAILED, 9709, 9609), validation numbers, 9726/9727,
mdmInfo rules, every fault kind and rate limiting.

Standard library only. The binary is `$VPPD_BIN_DIR/apple-vpp-sim`
(default build/bin). Run: python3 -m unittest discover -s tests/sim -v
"""

import email.utils
import http.client
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.parse

BIN_DIR = os.environ.get("VPPD_BIN_DIR", "build/bin")
SIM = os.path.join(BIN_DIR, "apple-vpp-sim")
INT32_MAX = 2147483647


class Sim:
    """One running simulator process."""

    def __init__(self, *args):
        self.tmp = tempfile.TemporaryDirectory()
        self.token_file = os.path.join(self.tmp.name, "sim.vpptoken")
        self.proc = subprocess.Popen(
            [SIM, "--listen", "127.0.0.1:0", "--token-file", self.token_file, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and not line:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError("simulator exited: " + self.proc.stderr.read())
        prefix = "apple-vpp-sim listening on "
        if not line.startswith(prefix):
            self.stop()
            raise RuntimeError("unexpected first line: %r" % line)
        self.base = line[len(prefix):].strip()  # http://127.0.0.1:PORT/mdm/v2
        parsed = urllib.parse.urlparse(self.base)
        self.host, self.port = parsed.hostname, parsed.port
        with open(self.token_file) as f:
            self.token = f.read().strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.tmp.cleanup()

    # -- raw HTTP ---------------------------------------------------------
    def request(self, method, path, body=None, headers=None, token=None, auth=True,
                content_type="application/json", timeout=10):
        """Returns (status, headers dict (lower-case names), raw body bytes)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        h = dict(headers or {})
        if auth:
            h.setdefault("Authorization", "Bearer " + (token if token is not None else self.token))
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if content_type:
                h.setdefault("Content-Type", content_type)
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw
        finally:
            conn.close()

    def api(self, method, endpoint, body=None, query=None, **kw):
        """Calls /mdm/v2/<endpoint>; returns (status, parsed JSON, headers)."""
        path = "/mdm/v2/" + endpoint
        if query:
            path += "?" + urllib.parse.urlencode(query)
        status, headers, raw = self.request(method, path, body=body, **kw)
        return status, json.loads(raw), headers

    def get(self, endpoint, **query):
        return self.api("GET", endpoint, query=query or None)

    def post(self, endpoint, body, **kw):
        return self.api("POST", endpoint, body=body, **kw)

    def control(self, method, path, body=None):
        status, _, raw = self.request(method, "/_sim/" + path, body=body, auth=False)
        return status, json.loads(raw)

    def walk(self, endpoint="assignments", key="assignments", **query):
        """All items of a paged endpoint, following nextPageIndex; returns (items, versionIds)."""
        items, versions, page = [], [], 0
        while True:
            status, body, _ = self.get(endpoint, pageIndex=page, **query)
            assert status == 200, body
            items += body[key]
            versions.append(body["versionId"])
            if "nextPageIndex" not in body:
                return items, versions
            page = body["nextPageIndex"]


def wait_event(sim, event_id, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        status, body, _ = sim.get("status", eventId=event_id)
        assert status == 200, body
        if body["eventStatus"] != "PENDING" or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


class SimTestCase(unittest.TestCase):
    """Shares one simulator per class; every test starts from a reset state."""

    ARGS = ("--seed", "7", "--assets", "60", "--assignments", "3000", "--page-size", "500",
            "--event-delay-ms", "300")

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(*cls.ARGS)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        status, _ = self.sim.control("POST", "reset")
        self.assertEqual(status, 200)

    def assertAppleError(self, result, number, http_status):
        status, body, _ = result
        self.assertEqual(status, http_status, body)
        self.assertEqual(body.get("errorNumber"), number, body)
        self.assertIsInstance(body.get("errorMessage"), str)

    def location(self, index=0):
        return self.sim.control("GET", "locations")[1]["locations"][index]

    def assets(self, **query):
        return self.sim.walk("assets", "assets", **query)[0]


class AuthAndEnvelope(SimTestCase):
    def test_service_config_needs_no_token_and_points_back(self):
        status, body, _ = self.sim.api("GET", "service/config", auth=False)
        self.assertEqual(status, 200)
        for key in ("clientConfig", "getAssets", "getAssignments", "associateAssets", "disassociateAssets",
                    "revokeAssets", "eventStatus", "getUsers", "createUsers", "updateUsers", "retireUsers"):
            self.assertTrue(body["urls"][key].startswith(self.sim.base + "/"), key)
        self.assertIn("%25inviteCode%25", body["urls"]["invitationEmail"])
        lookup = body["urls"]["contentMetadataLookup"]
        self.assertTrue(lookup.startswith("http://127.0.0.1:"))
        self.assertEqual(body["limits"]["maxAssets"], 25)
        self.assertEqual(body["limits"]["maxRequestPerSecond"], 15)
        numbers = {e["errorNumber"] for e in body["errorCodes"]}
        self.assertTrue({9601, 9621, 9625, 9646, 9650, 9709, 9721, 9722}.issubset(numbers))

    def test_auth_errors(self):
        self.assertAppleError(self.sim.api("GET", "assets", auth=False), 9722, 401)
        self.assertAppleError(self.sim.api("GET", "assets", headers={"Authorization": "Basic Zm9vOmJhcg=="}), 9722, 401)
        self.assertAppleError(self.sim.api("GET", "assets", headers={"Authorization": "Bearer"}), 9722, 401)
        self.assertAppleError(self.sim.api("GET", "assets", token="bm90IGEgdG9rZW4="), 9601, 401)

    def test_expired_and_revoked_tokens(self):
        uid = self.location()["uId"]
        status, issued = self.sim.control("POST", "locations/%s/tokens" % uid, {})
        self.assertEqual(status, 200)
        second = issued["sToken"]
        self.assertEqual(self.sim.api("GET", "client/config", token=second)[1]["uId"], uid)  # duplicate location
        self.sim.control("POST", "tokens", {"sToken": second, "state": "revoked"})
        self.assertAppleError(self.sim.api("GET", "assets", token=second), 9625, 401)
        self.sim.control("POST", "tokens", {"sToken": second, "state": "invalid"})
        self.assertAppleError(self.sim.api("GET", "assets", token=second), 9622, 200)
        self.sim.control("POST", "tokens", {"sToken": self.sim.token, "state": "expired"})
        self.assertAppleError(self.sim.get("assets"), 9621, 401)
        self.sim.control("POST", "tokens", {"sToken": self.sim.token, "state": "active",
                                            "expDate": "2020-01-01T00:00:00+0000"})
        self.assertAppleError(self.sim.get("assignments"), 9621, 401)

    def test_invalid_token_at_http_200_when_configured(self):
        self.sim.control("POST", "settings", {"invalidTokenReply": "9622"})
        self.assertAppleError(self.sim.api("GET", "assets", token="bm90IGEgdG9rZW4="), 9622, 200)

    def test_token_file_is_apple_format(self):
        import base64
        decoded = json.loads(base64.b64decode(self.sim.token, validate=True))
        self.assertEqual(set(decoded), {"token", "expDate", "orgName"})

    def test_envelope_on_every_authenticated_response(self):
        responses = [self.sim.get(e) for e in ("client/config", "assets", "assignments", "users")]
        status, ev, _ = self.sim.post("users/create", {"users": [{"clientUserId": "env-1"}]})
        self.assertEqual(status, 200)
        responses.append((status, ev, None))
        responses.append(self.sim.get("status", eventId=ev["eventId"]))
        for status, body, _ in responses:
            self.assertEqual(status, 200, body)
            self.assertIsInstance(body["uId"], str)
            self.assertRegex(body["tokenExpirationDate"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$")
            self.assertNotIn("mdmInfo", body)
        self.assertIsInstance(ev["eventId"], str)
        info = {"id": "vppd-test", "name": "vppd", "metadata": "conformance"}
        status, body, _ = self.sim.post("client/config", {"mdmInfo": info})
        self.assertEqual((status, body["mdmInfo"]), (200, info))
        for endpoint in ("client/config", "assets", "assignments", "users"):
            self.assertEqual(self.sim.get(endpoint)[1]["mdmInfo"], info, endpoint)

    def test_ids_are_strings(self):
        body = self.sim.get("assets")[1]
        self.assertIsInstance(body["versionId"], str)
        for a in body["assets"]:
            self.assertIsInstance(a["adamId"], str)

    def test_another_mdm_overwrites_mdminfo(self):
        uid = self.location()["uId"]
        self.sim.post("client/config", {"mdmInfo": {"id": "ours", "name": "vppd", "metadata": ""}})
        other = {"id": "theirs", "name": "Other MDM", "metadata": "x"}
        self.assertEqual(self.sim.control("POST", "locations/%s/mdmInfo" % uid, other)[0], 200)
        self.assertEqual(self.sim.get("assignments")[1]["mdmInfo"], other)


class Paging(SimTestCase):
    def test_fields_and_walk(self):
        status, p0, _ = self.sim.get("assignments")
        self.assertEqual(status, 200)
        self.assertEqual(p0["currentPageIndex"], 0)
        self.assertEqual(p0["nextPageIndex"], 1)
        self.assertEqual(p0["size"], 500)
        self.assertEqual(p0["totalPages"], 6)
        items, versions = self.sim.walk()
        self.assertEqual(len(items), 3000)
        self.assertEqual(len(set(versions)), 1)
        last = self.sim.get("assignments", pageIndex=5)[1]
        self.assertNotIn("nextPageIndex", last)
        self.assertEqual(last["currentPageIndex"], 5)
        for a in items:
            self.assertEqual(("clientUserId" in a) + ("serialNumber" in a), 1, a)
            self.assertIn(a["pricingParam"], ("STDQ", "PLUS"))

    def test_random_access_matches_sequential(self):
        p3 = self.sim.get("assignments", pageIndex=3)[1]
        p1 = self.sim.get("assignments", pageIndex=1)[1]
        items, _ = self.sim.walk()
        self.assertEqual(p1["assignments"], items[500:1000])
        self.assertEqual(p3["assignments"], items[1500:2000])

    def test_bad_page_index(self):
        for bad in ("6", "-1", "abc", "1.5", "99999999999"):
            self.assertAppleError(self.sim.get("assignments", pageIndex=bad), 9650, 400)
            self.assertAppleError(self.sim.get("assets", pageIndex=bad), 9650, 400)
            self.assertAppleError(self.sim.get("users", pageIndex=bad), 9650, 400)

    def test_users_walk(self):
        users, _ = self.sim.walk("users", "users")
        self.assertGreater(len(users), 0)
        statuses = {u["status"] for u in users}
        self.assertTrue(statuses.issubset({"Registered", "Associated", "Retired"}))
        for u in users:
            if u["status"] == "Registered":
                self.assertIn("inviteCode", u)


class AssetsAndFilters(SimTestCase):
    def test_counts_are_consistent(self):
        assets = self.assets()
        self.assertEqual(len(assets), 60)
        assignments, _ = self.sim.walk()
        per_asset = {}
        for a in assignments:
            key = (a["adamId"], a["pricingParam"])
            per_asset[key] = per_asset.get(key, 0) + 1
        for a in assets:
            self.assertEqual(a["assignedCount"], per_asset.get((a["adamId"], a["pricingParam"]), 0), a)
            self.assertEqual(a["availableCount"], a["totalCount"] - a["assignedCount"], a)
            self.assertIn(a["productType"], ("App", "Book"))
            self.assertTrue(set(a["supportedPlatforms"]).issubset({"iOS", "macOS", "tvOS", "watchOS", "visionOS"}))
            if a["productType"] == "Book":
                self.assertFalse(a["deviceAssignable"])

    def test_unlimited_semantics(self):
        everything = self.assets()
        unlimited = [a for a in everything if a["totalCount"] == INT32_MAX]
        self.assertTrue(unlimited, "the generated location has unlimited assets")
        limited = self.assets(unlimited="false")
        self.assertEqual(len(limited), len(everything) - len(unlimited))
        body = self.sim.get("assets", unlimited="true")[1]
        self.assertEqual({a["adamId"] for a in body["unlimitedAssets"]}, {a["adamId"] for a in unlimited})
        for a in body["unlimitedAssets"]:
            self.assertNotIn("totalCount", a)
            self.assertNotIn("availableCount", a)
        self.assertNotIn("unlimitedAssets", self.sim.get("assets")[1])

    def test_asset_filters(self):
        everything = self.assets()
        for name, values in (("productType", ("App", "Book")), ("pricingParam", ("STDQ", "PLUS"))):
            for v in values:
                got = self.assets(**{name: v})
                self.assertEqual(len(got), sum(1 for a in everything if a[name] == v))
        for name in ("revocable", "deviceAssignable"):
            got = self.assets(**{name: "true"})
            self.assertEqual(len(got), sum(1 for a in everything if a[name]))
        got = self.assets(minAvailableCount=1, maxAvailableCount=20)
        self.assertEqual(len(got), sum(1 for a in everything if 1 <= a["availableCount"] <= 20))
        got = self.assets(minAssignedCount=40, maxAssignedCount=80)
        self.assertEqual(len(got), sum(1 for a in everything if 40 <= a["assignedCount"] <= 80))
        one = everything[5]
        self.assertEqual([a["adamId"] for a in self.assets(adamId=one["adamId"])].count(one["adamId"]),
                         sum(1 for a in everything if a["adamId"] == one["adamId"]))
        self.assertAppleError(self.sim.get("assets", productType="Movie"), 9602, 400)
        self.assertAppleError(self.sim.get("assets", minAvailableCount="many"), 9602, 400)

    def test_assets_ignore_since_version_id(self):
        self.assertEqual(self.sim.get("assets", sinceVersionId="nonsense")[0], 200)

    def test_assignment_filters(self):
        items, _ = self.sim.walk()
        adam = items[0]["adamId"]
        serial = next(a["serialNumber"] for a in items if "serialNumber" in a)
        user = next(a["clientUserId"] for a in items if "clientUserId" in a)
        got, _ = self.sim.walk(adamId=adam)
        self.assertEqual(len(got), sum(1 for a in items if a["adamId"] == adam))
        got, _ = self.sim.walk(serialNumber=serial)
        self.assertEqual(len(got), sum(1 for a in items if a.get("serialNumber") == serial))
        got, _ = self.sim.walk(clientUserId=user, includeUserState="true")
        self.assertEqual(len(got), sum(1 for a in items if a.get("clientUserId") == user))
        self.assertTrue(all("userStatus" in a for a in got))
        got, _ = self.sim.walk(pricingParam="PLUS")
        self.assertEqual(len(got), sum(1 for a in items if a["pricingParam"] == "PLUS"))
        users = {u["clientUserId"]: u["status"] for u in self.sim.walk("users", "users")[0]}
        got, _ = self.sim.walk(excludeInactiveUsers="true")
        expected = [a for a in items if "serialNumber" in a or users[a["clientUserId"]] == "Associated"]
        self.assertEqual(len(got), len(expected))

    def test_user_filters(self):
        users, _ = self.sim.walk("users", "users")
        retired = [u for u in users if u["status"] == "Retired"]
        self.assertTrue(retired)
        self.assertEqual(len(self.sim.walk("users", "users", retiredOnly="true")[0]), len(retired))
        self.assertEqual(len(self.sim.walk("users", "users", activeOnly="true")[0]), len(users) - len(retired))
        one = users[3]["clientUserId"]
        self.assertEqual([u["clientUserId"] for u in self.sim.walk("users", "users", clientUserId=one)[0]], [one])


class EventsAndVersions(SimTestCase):
    def pick(self, predicate):
        return next(a for a in self.assets() if predicate(a))

    def test_associate_pending_then_complete_with_counts(self):
        asset = self.pick(lambda a: a["deviceAssignable"] and 3 <= a["availableCount"] < INT32_MAX - 10**6)
        v0 = self.sim.get("assignments")[1]["versionId"]
        status, ev, _ = self.sim.post("assets/associate", {"assets": [{"adamId": asset["adamId"]}],
                                                           "serialNumbers": ["CONF-1", "CONF-2"]})
        self.assertEqual(status, 200, ev)
        st = self.sim.get("status", eventId=ev["eventId"])[1]
        self.assertEqual((st["eventStatus"], st["eventType"], st["numRequested"]), ("PENDING", "ASSOCIATE", 2))
        self.assertEqual(self.sim.get("assignments")[1]["versionId"], v0)
        st = wait_event(self.sim, ev["eventId"])
        self.assertEqual((st["eventStatus"], st["numCompleted"]), ("COMPLETE", 2))
        after = self.assets(adamId=asset["adamId"])
        after = next(a for a in after if a["pricingParam"] == asset["pricingParam"])
        self.assertEqual(after["assignedCount"], asset["assignedCount"] + 2)
        self.assertEqual(after["availableCount"], asset["availableCount"] - 2)
        v1 = self.sim.get("assignments")[1]["versionId"]
        self.assertNotEqual(v0, v1)
        delta, _ = self.sim.walk(sinceVersionId=v0)
        self.assertEqual(sorted(a["serialNumber"] for a in delta), ["CONF-1", "CONF-2"])
        self.assertEqual(self.sim.walk(sinceVersionId=v1)[0], [])

        status, ev, _ = self.sim.post("assets/disassociate", {"assets": [{"adamId": asset["adamId"]}],
                                                              "serialNumbers": ["CONF-1"]})
        self.assertEqual(wait_event(self.sim, ev["eventId"])["eventStatus"], "COMPLETE")
        self.assertNotEqual(self.sim.get("assignments")[1]["versionId"], v1)

    def test_not_enough_licenses_is_partial_failure(self):
        asset = self.pick(lambda a: a["deviceAssignable"] and a["totalCount"] != INT32_MAX)
        uid = self.location()["uId"]
        # Leave exactly one license free.
        delta = asset["availableCount"] - 1
        if delta > 0:
            self.sim.control("POST", "locations/%s/refund" % uid, {"adamId": asset["adamId"], "count": delta})
        elif delta < 0:
            self.sim.control("POST", "locations/%s/purchase" % uid, {"adamId": asset["adamId"], "count": -delta})
        status, ev, _ = self.sim.post("assets/associate", {"assets": [{"adamId": asset["adamId"]}],
                                                           "serialNumbers": ["P-1", "P-2", "P-3"],
                                                           "clientUserIds": ["no-such-user"]})
        self.assertEqual(status, 200, ev)
        st = wait_event(self.sim, ev["eventId"])
        self.assertEqual(st["eventStatus"], "FAILED")
        self.assertEqual((st["numRequested"], st["numCompleted"]), (4, 1))
        by_number = {f["errorNumber"]: f for f in st["failures"]}
        self.assertEqual(set(by_number), {9609, 9709})
        self.assertEqual(len(by_number[9709]["errorInfo"]["serialNumbers"]), 2)
        self.assertEqual(by_number[9709]["errorInfo"]["assets"][0]["adamId"], asset["adamId"])
        self.assertEqual(by_number[9609]["errorInfo"]["clientUserIds"], ["no-such-user"])
        self.assertEqual(self.assets(adamId=asset["adamId"])[0]["availableCount"], 0)

    def test_revoke_and_user_lifecycle(self):
        status, ev, _ = self.sim.post("users/create", {"users": [{"clientUserId": "life-1", "email": "l@x.org"}]})
        self.assertEqual(wait_event(self.sim, ev["eventId"])["eventStatus"], "COMPLETE")
        app = self.pick(lambda a: a["revocable"] and a["availableCount"] > 0)
        ev = self.sim.post("assets/associate", {"assets": [{"adamId": app["adamId"]}], "clientUserIds": ["life-1"]})[1]
        self.assertEqual(wait_event(self.sim, ev["eventId"])["eventStatus"], "COMPLETE")
        self.assertEqual(len(self.sim.walk(clientUserId="life-1")[0]), 1)
        ev = self.sim.post("assets/revoke", {"clientUserIds": ["life-1"]})[1]
        st = wait_event(self.sim, ev["eventId"])
        self.assertEqual((st["eventType"], st["eventStatus"]), ("REVOKE", "COMPLETE"))
        self.assertEqual(self.sim.walk(clientUserId="life-1")[0], [])
        ev = self.sim.post("users/retire", {"users": [{"clientUserId": "life-1"}]})[1]
        self.assertEqual(wait_event(self.sim, ev["eventId"])["eventType"], "RETIRE")
        self.assertEqual(self.sim.get("users", clientUserId="life-1")[1]["users"][0]["status"], "Retired")

    def test_unknown_event_and_version_ids(self):
        self.assertAppleError(self.sim.get("status", eventId="00000000-0000-0000-0000-000000000000"), 9708, 400)
        self.assertAppleError(self.sim.get("assignments", sinceVersionId="garbage"), 9721, 400)
        self.assertAppleError(self.sim.get("users", sinceVersionId="garbage"), 9721, 400)

    def test_out_of_band_changes_move_version(self):
        uid = self.location()["uId"]
        v0 = self.sim.get("assets")[1]["versionId"]
        asset = self.pick(lambda a: a["totalCount"] != INT32_MAX)
        status, body = self.sim.control("POST", "locations/%s/purchase" % uid, {"adamId": asset["adamId"], "count": 5})
        self.assertEqual(status, 200, body)
        after = self.sim.get("assets")[1]
        self.assertNotEqual(after["versionId"], v0)
        got = next(a for a in self.assets(adamId=asset["adamId"]) if a["pricingParam"] == asset["pricingParam"])
        self.assertEqual(got["totalCount"], asset["totalCount"] + 5)
        status, body = self.sim.control("POST", "locations/%s/refund" % uid, {"adamId": asset["adamId"],
                                                                              "count": got["totalCount"] + 1})
        self.assertEqual(status, 409, body)


class Validation(SimTestCase):
    def test_sync_validation_numbers(self):
        assets = self.assets()
        app = next(a["adamId"] for a in assets if a["deviceAssignable"])
        book = next(a["adamId"] for a in assets if a["productType"] == "Book")
        A = lambda *ids: [{"adamId": i} for i in ids]
        cases = [
            ("assets/associate", {"serialNumbers": ["S"]}, 9718),
            ("assets/associate", {"assets": A(app)}, 9719),
            ("assets/associate", {"assets": A(*[str(i) for i in range(26)]), "serialNumbers": ["S"]}, 9700),
            ("assets/associate", {"assets": A(app), "clientUserIds": ["u%d" % i for i in range(1001)]}, 9701),
            ("assets/associate", {"assets": A(app), "serialNumbers": ["s%d" % i for i in range(1001)]}, 9702),
            ("assets/associate", {"assets": A(app, app), "serialNumbers": ["S"]}, 9703),
            ("assets/associate", {"assets": A(app), "clientUserIds": ["u", "u"]}, 9704),
            ("assets/associate", {"assets": A(app), "serialNumbers": ["s", "s"]}, 9705),
            ("assets/disassociate", {"assets": A(book), "clientUserIds": ["u"]}, 9706),
            ("assets/associate", {"assets": A(book), "serialNumbers": ["S"]}, 9707),
            ("assets/revoke", {}, 9719),
            ("assets/revoke", {"clientUserIds": ["u%d" % i for i in range(101)]}, 9701),
            ("users/create", {}, 9720),
            ("users/create", {"users": [{"clientUserId": "u%d" % i} for i in range(101)]}, 9714),
            ("users/update", {"users": [{"clientUserId": "d"}, {"clientUserId": "d"}]}, 9715),
            ("users/create", {"users": [{"clientUserId": "e", "email": "no-at-sign"}]}, 9717),
            ("assets/associate", "[1,2", 9602),
        ]
        for endpoint, body, number in cases:
            with self.subTest(endpoint=endpoint, number=number):
                self.assertAppleError(self.sim.post(endpoint, body), number, 400)

    def test_method_and_content_type(self):
        result = self.sim.post("assets", {})
        self.assertAppleError(result, 9726, 405)
        self.assertIn("GET", result[2]["allow"])
        self.assertAppleError(self.sim.get("assets/associate"), 9726, 405)
        self.assertAppleError(self.sim.post("assets/associate", {"assets": []}, content_type="text/plain"), 9727, 415)
        self.assertAppleError(self.sim.post("client/config", {}, content_type=None), 9727, 415)
        status, _, raw = self.sim.request("GET", "/mdm/v2/no/such/thing")
        self.assertEqual(status, 404)
        self.assertIn("errorNumber", json.loads(raw))

    def test_client_config_rules(self):
        post = lambda body: self.sim.post("client/config", body)
        self.assertAppleError(post({"mdmInfo": {"id": "x", "name": "y"}}), 9723, 400)
        self.assertAppleError(post({"mdmInfo": {"id": "x" * 101, "name": "y", "metadata": ""}}), 9724, 400)
        self.assertAppleError(post({"mdmInfo": {"id": "x", "name": "y" * 101, "metadata": ""}}), 9725, 400)
        self.assertAppleError(post({"mdmInfo": {"id": "x", "name": "y", "metadata": "z" * 256}}), 9713, 400)
        self.assertAppleError(post({"notificationUrl": "https://hooks.example/vpp"}), 9710, 400)
        self.assertAppleError(post({"notificationUrl": "https://h.example/" + "p" * 600,
                                    "notificationAuthToken": "t"}), 9711, 400)
        self.assertAppleError(post({"notificationUrl": "http://hooks.example/vpp",
                                    "notificationAuthToken": "t"}), 9712, 400)
        status, body, _ = post({"notificationUrl": "https://hooks.example/vpp", "notificationAuthToken": "t",
                                "notificationTypes": ["ASSET_MANAGEMENT"]})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["notificationUrl"], "https://hooks.example/vpp")
        self.assertEqual(body["subscribedNotificationTypes"], ["ASSET_MANAGEMENT"])
        for key in ("countryISO2ACode", "defaultPlatform", "locationName", "websiteURL", "uId", "tokenExpirationDate"):
            self.assertIn(key, body)


class Faults(SimTestCase):
    def add(self, **rule):
        status, body = self.sim.control("POST", "faults", rule)
        self.assertEqual(status, 200, body)
        return body["id"]

    def test_count_triggered_503_with_retry_after_seconds(self):
        self.add(path="/mdm/v2/assignments", method="GET", onRequests=[3, 4], kind="unavailable",
                 retryAfterSeconds=2)
        codes = []
        for _ in range(5):
            status, body, headers = self.sim.get("assignments")
            codes.append(status)
            if status == 503:
                self.assertEqual(body["errorNumber"], 9729)
                self.assertEqual(headers["retry-after"], "2")
        self.assertEqual(codes, [200, 200, 503, 503, 200])

    def test_500_with_http_date_retry_after(self):
        self.add(path="/mdm/v2/assets", kind="internal", retryAfterSeconds=30, retryAfterFormat="http-date",
                 maxHits=1)
        status, body, headers = self.sim.get("assets")
        self.assertEqual((status, body["errorNumber"]), (500, 9603))
        when = email.utils.parsedate_to_datetime(headers["retry-after"])
        self.assertGreater(when.timestamp(), time.time() + 20)
        self.assertEqual(self.sim.get("assets")[0], 200)

    def test_429(self):
        self.add(path="/mdm/v2/users", kind="too_many_requests", maxHits=1)
        self.assertAppleError(self.sim.get("users"), 9646, 429)

    def test_latency(self):
        self.add(path="/mdm/v2/client/config", kind="latency", latencyMs=400)
        t0 = time.monotonic()
        self.assertEqual(self.sim.get("client/config")[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.38)

    def test_truncated_body(self):
        self.add(path="/mdm/v2/assignments", kind="truncate", truncateAt=100)
        with self.assertRaises(http.client.IncompleteRead):
            self.sim.request("GET", "/mdm/v2/assignments")

    def test_malformed_json(self):
        self.add(path="/mdm/v2/assignments", kind="malformed_json")
        status, _, raw = self.sim.request("GET", "/mdm/v2/assignments")
        self.assertEqual(status, 200)
        with self.assertRaises(ValueError):
            json.loads(raw)

    def test_apple_error_at_http_200(self):
        self.add(path="/mdm/v2/client/config", kind="apple_error_200", errorNumber=9622)
        self.assertAppleError(self.sim.get("client/config"), 9622, 200)

    def test_bump_version_between_pages(self):
        self.add(path="/mdm/v2/assignments", onRequests=[3], kind="bump_version")
        _, versions = self.sim.walk()
        self.assertEqual(len(versions), 6)
        self.assertEqual(len(set(versions[:2])), 1)
        self.assertNotEqual(versions[1], versions[2])

    def test_location_scoped_rule_and_listing(self):
        other = self.location(1)
        self.add(path="*", kind="unavailable", location=other["uId"])
        self.assertEqual(self.sim.get("assets")[0], 200)  # default location untouched
        self.assertAppleError(self.sim.api("GET", "assets", token=other["tokens"][0]["sToken"]), 9729, 503)
        rules = self.sim.control("GET", "faults")[1]["faults"]
        self.assertEqual(rules[0]["hits"], 1)
        self.assertEqual(self.sim.control("DELETE", "faults/%d" % rules[0]["id"])[0], 200)
        self.assertEqual(self.sim.api("GET", "assets", token=other["tokens"][0]["sToken"])[0], 200)

    def test_bad_rule_rejected(self):
        status, body = self.sim.control("POST", "faults", {"kind": "meteor"})
        self.assertEqual(status, 400, body)

    def test_counters(self):
        self.sim.control("DELETE", "counters")
        for _ in range(3):
            self.sim.get("assignments")
        self.sim.get("assets")
        counters = self.sim.control("GET", "counters")[1]
        self.assertEqual(counters["total"]["GET /mdm/v2/assignments"], 3)
        self.assertEqual(counters["total"]["GET /mdm/v2/assets"], 1)
        uid = self.location()["uId"]
        self.assertEqual(counters["byLocation"][uid]["GET /mdm/v2/assignments"], 3)


class RateLimit(unittest.TestCase):
    def test_per_token_rate_limit(self):
        sim = Sim("--rate-limit", "--max-rps", "5", "--assignments", "50")
        try:
            codes = [sim.get("client/config") for _ in range(20)]
            limited = [r for r in codes if r[0] == 429]
            self.assertTrue(limited)
            self.assertEqual(limited[0][1]["errorNumber"], 9646)
            # A token of another location has its own budget.
            other = sim.control("GET", "locations")[1]["locations"][1]["tokens"][0]["sToken"]
            self.assertEqual(sim.api("GET", "client/config", token=other)[0], 200)
            time.sleep(1.1)
            self.assertEqual(sim.get("client/config")[0], 200)
        finally:
            sim.stop()


class ProcessBehaviour(unittest.TestCase):
    def test_same_seed_same_bytes_and_clean_exit(self):
        a, b = Sim("--seed", "99", "--assignments", "700"), Sim("--seed", "99", "--assignments", "700")
        try:
            self.assertEqual(a.token, b.token)
            for path in ("/mdm/v2/assets", "/mdm/v2/assignments?pageIndex=0", "/mdm/v2/users", "/mdm/v2/client/config"):
                self.assertEqual(a.request("GET", path)[2], b.request("GET", path)[2], path)
        finally:
            b.stop()
            a.proc.send_signal(signal.SIGTERM)
            self.assertEqual(a.proc.wait(timeout=15), 0)
            a.stop()

    def test_data_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "data.json")
            with open(path, "w") as f:
                json.dump({"locations": [{"uId": "555", "name": "PS01", "assets": [
                    {"adamId": "408709785", "totalCount": 10, "supportedPlatforms": ["iOS", "macOS"]}],
                    "assignments": [{"adamId": "408709785", "serialNumber": "C02ABC"}]}]}, f)
            sim = Sim("--data", path)
            try:
                body = sim.get("assets")[1]
                self.assertEqual(body["uId"], "555")
                self.assertEqual((body["assets"][0]["assignedCount"], body["assets"][0]["availableCount"]), (1, 9))
                self.assertEqual(sim.get("client/config")[1]["locationName"], "PS01")
            finally:
                sim.stop()

    def test_bad_flags_and_data_exit_2(self):
        with tempfile.TemporaryDirectory() as d:
            bad = os.path.join(d, "bad.json")
            with open(bad, "w") as f:
                json.dump({"locations": [{"assets": [{"pricingParam": "STDQ"}]}]}, f)
            for args in (["--assets", "-1"], ["--listen", "nonsense"], ["--data", bad]):
                proc = subprocess.run([SIM, *args], capture_output=True, text=True, timeout=30)
                self.assertEqual(proc.returncode, 2, (args, proc.stderr))
                self.assertEqual(proc.stdout, "")
            proc = subprocess.run([SIM, "--data", bad], capture_output=True, text=True, timeout=30)
            self.assertIn("locations[0].assets[0].adamId", proc.stderr)

    def test_export_round_trips_through_data_file(self):
        a = Sim("--seed", "5", "--assignments", "300", "--page-size", "100")
        try:
            uid = a.control("GET", "locations")[1]["locations"][0]["uId"]
            status, exported = a.control("GET", "locations/%s/export" % uid)
            self.assertEqual(status, 200)
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "snapshot.json")
                with open(path, "w") as f:
                    json.dump(exported, f)
                b = Sim("--data", path, "--page-size", "100")
                try:
                    self.assertEqual(a.token, b.token)  # same inner token, expDate and orgName
                    for endpoint in ("assets", "users"):
                        left, right = a.walk(endpoint, endpoint)[0], b.walk(endpoint, endpoint)[0]
                        self.assertEqual(left, right, endpoint)
                    key = lambda x: json.dumps(x, sort_keys=True)
                    self.assertEqual(sorted(map(key, a.walk()[0])), sorted(map(key, b.walk()[0])))
                finally:
                    b.stop()
        finally:
            a.stop()

    def test_lookup(self):
        sim = Sim("--assignments", "10")
        try:
            app = next(a for a in sim.get("assets")[1]["assets"] if a["productType"] == "App")
            status, _, raw = sim.request("GET", "/lookup?version=2&p=mdm-lockup&caller=MDM&id=%s,1" % app["adamId"],
                                         auth=False)
            self.assertEqual(status, 200)
            results = json.loads(raw)["results"]
            self.assertEqual(list(results), [app["adamId"]])
            self.assertIn("bundleId", results[app["adamId"]])
            self.assertIn("name", results[app["adamId"]])
        finally:
            sim.stop()


if __name__ == "__main__":
    unittest.main()
