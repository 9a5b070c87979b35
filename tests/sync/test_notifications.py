"""Apple's notifications end to end (issue 16): vppd registers its endpoint at
apple-vpp-sim, the simulator delivers, Graph shows the change without a sync.

A small reverse proxy in the test stands for vppd's public URL: vppd registers
http://127.0.0.1:<proxy>/apple/notifications/<key> (loopback http is allowed, with
a warning), and the proxy forwards each POST to a vppd instance (round robin when
there are two, on one PostgreSQL database). The simulator runs with
`--notification-retry-scale 0.01`, so Apple's 60 s / 180 s gaps between attempts
become 0.6 / 1.8 s.

Covered: registration (client/config holds vppd's URL and a bearer whose hash vppd
keeps, TEST_NOTIFICATION accepted); a purchase and a refund at the simulator show in
totalLicenseCount without a sync (no GET /assets after them); a duplicate delivery is
applied once; a wrong bearer gets 401 three times and changes nothing; bad input
(garbage, 10 MB, unknown type, another location's uId, a replayed id) answered
precisely; dropped notifications covered by the incremental interval; and the same
with two instances behind one URL on PostgreSQL.
"""
import http.client
import http.server
import itertools
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import PG_ADMIN_URL, VPPD, Sim, Vppd, WRITE_SCOPE, create_test_database, drop_test_database, quote, request, \
    start_instances  # noqa: E402
from sim_vppd_case import APPS, APPS_SCOPE, BASE  # noqa: E402

INT32_MAX = 2147483647


class Proxy:
    """Forwards every request to one of `backends` (ports), round robin; counts per backend."""

    def __init__(self):
        self.backends = []
        self.lock = threading.Lock()
        self.served = {}
        self.statuses = []
        proxy = self
        rr = itertools.count()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with proxy.lock:
                    port = proxy.backends[next(rr) % len(proxy.backends)]
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    conn.request("POST", self.path, body=body, headers=headers)
                    r = conn.getresponse()
                    status, data = r.status, r.read()
                    conn.close()
                except OSError:
                    status, data = 502, b""
                with proxy.lock:
                    proxy.served[port] = proxy.served.get(port, 0) + 1
                    proxy.statuses.append(status)
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def wait_for(what, check, timeout=15, every=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s")


class NotificationsCase(unittest.TestCase):
    """One simulator, a proxy, and `instances` vppd serve behind it."""
    instances = 1
    incremental = "0"
    vppd_args = ()  # more of vppd serve's command line
    sim_args = ("--assets", "8", "--assignments", "40", "--locations", "1", "--seed", "16",
                "--notification-retry-scale", "0.01")

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(*cls.sim_args).start()
        cls.proxy = Proxy()
        args = ("--apple-url", cls.sim.url, "--apple-notification-url", cls.proxy.url, "--sync-interval-seconds", "0",
                "--sync-incremental-interval-seconds", cls.incremental, "--throttle-window-seconds", "0",
                "--sync-lease-seconds", "3", *cls.vppd_args)
        cls.database_url = None
        if cls.instances > 1:
            cls.database_url = create_test_database()
            cls.vppds = start_instances(cls.instances, *args, database_url=cls.database_url)
        else:
            cls.vppds = [Vppd(*args).start()]
        cls.vppd = cls.vppds[0]
        cls.proxy.backends = [v.port for v in cls.vppds]
        cls.token = cls.vppd.dev_token("--scopes", f"{WRITE_SCOPE} {APPS_SCOPE}")

    @classmethod
    def tearDownClass(cls):
        for v in cls.vppds:
            v.cleanup()
        if cls.database_url:
            drop_test_database(cls.database_url)
        cls.proxy.stop()
        cls.sim.cleanup()

    def setUp(self):
        self.sim.control("DELETE", "notificationFaults")
        self.sim.control("DELETE", "notifications")

    # --- helpers -------------------------------------------------------------

    def call(self, method, path, body=None, vppd=None):
        return (vppd or self.vppd).request(method, path, token=self.token, body=body)

    def add_location(self):
        """A new location added as a vppToken, synced and registered: (uId, sToken, token id)."""
        loc = self.sim.control("POST", "locations", {"assets": 6, "assignments": 20})
        stoken = loc["tokens"][0]["sToken"]
        r = self.call("POST", BASE, {"token": stoken})
        self.assertEqual(r.status, 201, r)
        token_id = r.json()["id"]
        wait_for("the first sync", lambda: self.call("GET", f"{BASE}/{token_id}").json()["lastSyncStatus"]
                 == "completed", timeout=30)
        # Registered: Apple holds vppd's URL, and its TEST_NOTIFICATION was accepted.
        config = self.sim.apple("client/config", stoken).json()
        self.assertTrue(config["notificationUrl"].startswith(self.proxy.url + "/apple/notifications/"), config)
        self.assertEqual(sorted(config["subscribedNotificationTypes"]),
                         ["ASSET_COUNT", "ASSET_MANAGEMENT", "USER_ASSOCIATED", "USER_MANAGEMENT"])
        wait_for("the TEST_NOTIFICATION delivered", lambda: any(
            d["notificationType"] == "TEST_NOTIFICATION" and d["uId"] == loc["uId"] and d["outcome"] == "delivered"
            for d in self.deliveries()))
        return loc["uId"], stoken, token_id

    def deliveries(self):
        return self.sim.control("GET", "notifications")["deliveries"]

    def app_totals(self, token_id, vppd=None):
        """{adamId: totalLicenseCount} of the token's apps with a finite total (an app on two platforms once)."""
        apps = (vppd or self.vppd).collect(
            APPS + "?$filter=" + quote(f"vppTokenId eq '{token_id}'") + "&$top=999", self.token)
        return {a["appStoreUrl"].rsplit("/id", 1)[1]: a["totalLicenseCount"] for a in apps}

    def finite_app(self, token_id):
        totals = self.app_totals(token_id)
        adam = sorted(a for a, t in totals.items() if t != INT32_MAX)[0]
        return adam, totals[adam]

    def endpoint(self, stoken):
        """(path, bearer) of the location's registration, as Apple holds it."""
        config = self.sim.apple("client/config", stoken).json()
        return config["notificationUrl"][len(self.proxy.url):], config["notificationAuthToken"]

    def post(self, path, body, bearer, vppd=None):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return request((vppd or self.vppd).port, "POST", path,
                       {"Authorization": "Bearer " + bearer, "Content-Type": "application/json"}, data)


class Notifications(NotificationsCase):
    def test_a_purchase_and_a_refund_show_in_graph_without_a_sync(self):
        uid, stoken, token_id = self.add_location()
        adam, total = self.finite_app(token_id)
        synced = self.call("GET", f"{BASE}/{token_id}").json()["lastSyncDateTime"]
        self.sim.control("DELETE", "counters")
        start = time.time()
        self.sim.control("POST", f"locations/{uid}/purchase", {"adamId": adam, "count": 7})
        wait_for("the purchase in Graph", lambda: self.app_totals(token_id)[adam] == total + 7, timeout=5)
        print(f"\n  purchase → Graph: {time.time() - start:.3f} s", file=sys.stderr)
        self.sim.control("POST", f"locations/{uid}/refund", {"adamId": adam, "count": 2})
        wait_for("the refund in Graph", lambda: self.app_totals(token_id)[adam] == total + 5, timeout=5)
        # No sync made it: Apple saw no request of vppd's, and the token's last sync is the first one.
        counters = self.sim.counters()
        self.assertFalse([k for k in counters if k.startswith("GET /mdm/v2/")], counters)
        self.assertEqual(self.call("GET", f"{BASE}/{token_id}").json()["lastSyncDateTime"], synced)
        metrics = request(self.vppd.port, "GET", "/metrics").body
        self.assertIn('vppd_apple_notifications_total{type="ASSET_COUNT",outcome="recorded"}', metrics)
        self.assertIn("vppd_license_counts_age_seconds", metrics)

    def test_a_purchase_made_while_a_sync_runs_after_it_read_the_assets_is_kept(self):
        # The sync reads the assets, then waits 1.5 s for its assignments: the purchase
        # lands between, so the sync's counts do not hold it, although it ends after the
        # notification arrived.
        uid, stoken, token_id = self.add_location()
        adam, total = self.finite_app(token_id)
        synced = self.call("GET", f"{BASE}/{token_id}").json()["lastSyncDateTime"]
        self.sim.control("DELETE", "counters")
        self.sim.control("POST", "faults", {"path": "/mdm/v2/assignments", "location": uid, "kind": "latency",
                                            "latencyMs": 1500, "maxHits": 1})
        self.assertEqual(self.call("POST", f"{BASE}/{token_id}/syncLicenses").status, 200)
        wait_for("the sync's assignments asked for", lambda: self.sim.counters().get("GET /mdm/v2/assignments"))
        self.sim.control("POST", f"locations/{uid}/purchase", {"adamId": adam, "count": 4})
        wait_for("the sync's end", lambda: (lambda t: t["lastSyncStatus"] == "completed" and t[
            "lastSyncDateTime"] != synced)(self.call("GET", f"{BASE}/{token_id}").json()), timeout=10)
        wait_for("the purchase in Graph", lambda: self.app_totals(token_id)[adam] == total + 4, timeout=5)
        time.sleep(0.3)
        self.assertEqual(self.app_totals(token_id)[adam], total + 4, "applied once")

    def test_a_duplicate_delivery_is_applied_once(self):
        uid, stoken, token_id = self.add_location()
        adam, total = self.finite_app(token_id)
        self.sim.control("POST", "notificationFaults", {"kind": "duplicate", "type": "ASSET_COUNT"})
        self.sim.control("POST", f"locations/{uid}/purchase", {"adamId": adam, "count": 3})
        wait_for("the duplicate delivered", lambda: any(d.get("duplicate") and d["outcome"] == "delivered"
                                                         for d in self.deliveries()))
        wait_for("the purchase in Graph", lambda: self.app_totals(token_id)[adam] == total + 3, timeout=5)
        time.sleep(0.5)  # the duplicate had every chance to be applied a second time
        self.assertEqual(self.app_totals(token_id)[adam], total + 3)
        statuses = [d["status"] for d in self.deliveries() if d["notificationType"] == "ASSET_COUNT"]
        self.assertEqual(statuses, [200, 200], "both deliveries answered 2xx: Apple stops retrying")

    def test_a_wrong_bearer_gets_401_and_changes_nothing(self):
        uid, stoken, token_id = self.add_location()
        adam, total = self.finite_app(token_id)
        self.sim.control("POST", "notificationFaults", {"kind": "wrong_bearer", "type": "ASSET_COUNT"})
        self.sim.control("POST", f"locations/{uid}/purchase", {"adamId": adam, "count": 4})
        attempts = wait_for("three refused attempts", lambda: [
            d for d in self.deliveries() if d["notificationType"] == "ASSET_COUNT" and d["attempt"] == 3], timeout=10)
        self.assertEqual(attempts[0]["status"], 401)
        self.assertEqual([d["status"] for d in self.deliveries() if d["notificationType"] == "ASSET_COUNT"],
                         [401, 401, 401])
        time.sleep(0.3)
        self.assertEqual(self.app_totals(token_id)[adam], total)
        log = self.vppd.log()
        self.assertNotIn(self.endpoint(stoken)[1], log, "the bearer is never logged")

    def test_bad_input_is_answered_precisely(self):
        uid, stoken, token_id = self.add_location()
        adam, total = self.finite_app(token_id)
        path, bearer = self.endpoint(stoken)

        def envelope(nid, ntype="ASSET_COUNT", notification=None, location=uid):
            return {"notification": notification if notification is not None else {"adamId": adam, "countDelta": 1},
                    "notificationId": nid, "notificationType": ntype, "uId": location}

        r = self.post(path, "{not json", bearer)
        self.assertEqual((r.status, r.error_code()), (400, "BadRequest"), r)
        self.assertIn("not valid JSON", r.error_message())
        # 10 MB: refused from its Content-Length, before the body is read.
        with socket.create_connection(("127.0.0.1", self.vppd.port), timeout=10) as s:
            s.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bearer}\r\n"
                       f"Content-Type: application/json\r\nContent-Length: {10 << 20}\r\n\r\n").encode())
            try:
                s.sendall(b"{" + b" " * 65536)
            except OSError:
                pass  # the server may close before it takes that much
            answer = s.recv(65536).decode(errors="replace")
        self.assertTrue(answer.startswith("HTTP/1.1 413"), answer[:200])
        r = self.post(path, b"{" + b" " * (300 << 10) + b"}", bearer)  # under the server's cap, over the route's
        self.assertEqual(r.status, 413, r)
        r = self.post(path, envelope("u-1", ntype="SOMETHING_NEW", notification={}), bearer)
        self.assertEqual(r.status, 400, r)
        self.assertIn("'SOMETHING_NEW' is not one vppd handles", r.error_message())
        r = self.post(path, envelope("x-1", location="9999999999"), bearer)
        self.assertEqual(r.status, 403, r)
        r = self.post(path, envelope("x-1"), "not-" + bearer)
        self.assertEqual(r.status, 401, r)
        r = self.post(path[:-1] + ("0" if path[-1] != "0" else "1"), envelope("x-1"), bearer)
        self.assertEqual(r.status, 401, "an unknown key reads like a wrong bearer")
        r = request(self.vppd.port, "GET", path)
        self.assertEqual(r.status, 405, r)
        self.assertEqual(self.app_totals(token_id)[adam], total, "nothing refused changed anything")
        # Accepted once, then a replay: 200 both times, applied once.
        r = self.post(path, envelope("x-1"), bearer)
        self.assertEqual((r.status, r.json()), (200, {"outcome": "recorded"}), r)
        r = self.post(path, envelope("x-1"), bearer)
        self.assertEqual((r.status, r.json()), (200, {"outcome": "duplicate"}), r)
        wait_for("the count applied", lambda: self.app_totals(token_id)[adam] == total + 1, timeout=5)
        time.sleep(0.3)
        self.assertEqual(self.app_totals(token_id)[adam], total + 1)
        # Another location's endpoint and bearer cannot touch this one.
        uid2, stoken2, token2 = self.add_location()
        path2, bearer2 = self.endpoint(stoken2)
        self.assertNotEqual(path2, path)
        r = self.post(path2, envelope("y-1", location=uid), bearer2)
        self.assertEqual(r.status, 403, r)
        r = self.post(path, envelope("y-2"), bearer2)
        self.assertEqual(r.status, 401, r)
        self.assertEqual(self.app_totals(token_id)[adam], total + 1)
        # A count that does not fit (more refunded than held) is not applied: a sync is queued instead.
        synced = self.call("GET", f"{BASE}/{token_id}").json()["lastSyncDateTime"]
        r = self.post(path, envelope("z-1", notification={"adamId": adam, "countDelta": -(total + 10)}), bearer)
        self.assertEqual(r.status, 200, r)

        def resynced():
            t = self.call("GET", f"{BASE}/{token_id}").json()
            return t["lastSyncStatus"] == "completed" and t["lastSyncDateTime"] != synced
        wait_for("the resync", resynced, timeout=15)
        self.assertEqual(self.app_totals(token_id)[adam], total, "Apple's count, not the bogus delta")


class DroppedNotifications(NotificationsCase):
    incremental = "2"

    def test_dropped_notifications_are_covered_by_the_incremental_sync(self):
        uid, stoken, token_id = self.add_location()
        adam, total = self.finite_app(token_id)
        self.sim.control("POST", "notificationFaults", {"kind": "drop", "type": "ASSET_COUNT"})
        start = time.time()
        self.sim.control("POST", f"locations/{uid}/purchase", {"adamId": adam, "count": 6})
        wait_for("the purchase in Graph through the incremental sync",
                 lambda: self.app_totals(token_id)[adam] == total + 6, timeout=15)
        took = time.time() - start
        print(f"\n  dropped purchase → Graph: {took:.3f} s (interval 2 s)", file=sys.stderr)
        self.assertEqual([d["outcome"] for d in self.deliveries() if d["notificationType"] == "ASSET_COUNT"],
                         ["dropped"])


@unittest.skipUnless(PG_ADMIN_URL, "VPPD_TEST_DATABASE_URL is not set: two instances need PostgreSQL")
class TwoInstancesOnPostgres(NotificationsCase):
    instances = 2

    def test_two_instances_behind_one_url(self):
        uid, stoken, token_id = self.add_location()
        adam, total = self.finite_app(token_id)
        self.sim.control("POST", "notificationFaults", {"kind": "duplicate", "type": "ASSET_COUNT"})
        for n in range(1, 6):
            self.sim.control("POST", f"locations/{uid}/purchase", {"adamId": adam, "count": n})
        wait_for("every purchase in Graph", lambda: self.app_totals(token_id)[adam] == total + 15, timeout=10)
        time.sleep(0.5)
        for v in self.vppds:
            self.assertEqual(self.app_totals(token_id, vppd=v)[adam], total + 15)
        self.assertEqual(len(self.proxy.served), 2, self.proxy.served)
        delivered = [d for d in self.deliveries() if d["notificationType"] == "ASSET_COUNT"]
        self.assertEqual(len(delivered), 10, "five purchases, each delivered twice")
        self.assertTrue(all(d["status"] == 200 for d in delivered), delivered)


class Registration(unittest.TestCase):
    """When vppd registers: never over another MDM, after a takeover, again after a restart with another URL."""

    def setUp(self):
        self.sim = Sim("--assets", "6", "--assignments", "20", "--locations", "1", "--seed", "17",
                       "--notification-retry-scale", "0.01").start()
        self.proxies = [Proxy(), Proxy()]
        self.vppds = []

    def tearDown(self):
        for v in reversed(self.vppds):
            v.cleanup()
        for p in self.proxies:
            p.stop()
        self.sim.cleanup()

    def start(self, proxy, previous=None):
        args = ("--apple-url", self.sim.url, "--apple-notification-url", proxy.url, "--sync-interval-seconds", "0",
                "--sync-incremental-interval-seconds", "0", "--throttle-window-seconds", "0")
        v = Vppd(*args, data_dir=previous.data_dir if previous else None,
                 database_url=previous.database_url if previous else None).start()
        self.vppds.append(v)
        proxy.backends = [v.port]
        return v

    def test_never_over_another_mdm_then_after_a_takeover_and_a_new_url(self):
        v = self.start(self.proxies[0])
        token = v.dev_token("--scopes", WRITE_SCOPE)
        loc = self.sim.control("POST", "locations", {"assets": 4, "assignments": 10})
        stoken = loc["tokens"][0]["sToken"]
        self.sim.control("POST", f"locations/{loc['uId']}/mdmInfo", {"id": "other", "name": "Other MDM",
                                                                     "metadata": ""})
        r = v.request("POST", BASE, token=token, body={"token": stoken})
        self.assertEqual(r.status, 201, r)
        tid = r.json()["id"]
        state = wait_for("the sync", lambda: (lambda t: t["lastSyncStatus"] != "inProgress" and t)(
            v.request("GET", f"{BASE}/{tid}", token=token).json()), timeout=30)
        self.assertEqual(state["state"], "assignedToExternalMDM")
        self.assertNotIn("notificationUrl", self.sim.apple("client/config", stoken).json(),
                         "another MDM's location: nothing registered")
        # The admin takes it over: the sync registers.
        r = v.request("PATCH", f"{BASE}/{tid}", token=token, body={"claimTokenManagementFromExternalMdm": True})
        self.assertIn(r.status, (200, 204), r)
        r = v.request("POST", f"{BASE}/{tid}/syncLicenses", token=token)
        self.assertEqual(r.status, 200, r)
        wait_for("the takeover's registration", lambda: self.sim.apple("client/config", stoken).json().get(
            "notificationUrl", "").startswith(self.proxies[0].url + "/apple/notifications/"), timeout=30)
        first = self.sim.apple("client/config", stoken).json()
        # Restarted with another public URL: every token's sync is queued and registers again.
        v.stop()
        v2 = self.start(self.proxies[1], previous=v)
        wait_for("the new URL registered", lambda: self.sim.apple("client/config", stoken).json().get(
            "notificationUrl", "").startswith(self.proxies[1].url + "/apple/notifications/"), timeout=30)
        second = self.sim.apple("client/config", stoken).json()
        self.assertEqual(first["notificationUrl"].rsplit("/", 1)[1], second["notificationUrl"].rsplit("/", 1)[1],
                         "the location keeps its key")
        self.assertNotEqual(first["notificationAuthToken"], second["notificationAuthToken"], "the bearer rotated")
        self.assertIn("1 token(s) to register", v2.log())
        # Both bearers work for now (Apple may be retrying with the old one); a third does not.
        path = second["notificationUrl"][len(self.proxies[1].url):]
        for n, (bearer, status) in enumerate(((second["notificationAuthToken"], 200),
                                              (first["notificationAuthToken"], 200), ("guess", 401))):
            r = request(v2.port, "POST", path, {"Authorization": "Bearer " + bearer},
                        json.dumps({"notification": {}, "notificationId": f"t-{n}",
                                    "notificationType": "TEST_NOTIFICATION", "uId": loc["uId"]}))
            self.assertEqual(r.status, status, r)
        # Restarted with the same URL: nothing to register again.
        v2.stop()
        v3 = self.start(self.proxies[1], previous=v)
        time.sleep(1)
        self.assertNotIn("token(s) to register", v3.log())
        self.assertEqual(self.sim.apple("client/config", stoken).json()["notificationAuthToken"],
                         second["notificationAuthToken"])


class TlsServing(unittest.TestCase):
    """--tls-cert/--tls-key: vppd serves HTTPS itself (Beast over OpenSSL), the receiver included."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="vppd-tls-")
        self.cert, self.key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out",
                        self.cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        data = os.path.join(self.dir, "data")
        self.log = open(os.path.join(self.dir, "stderr.log"), "wb")
        self.proc = subprocess.Popen([VPPD, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--dev",
                                      "--tls-cert", self.cert, "--tls-key", self.key], stdout=subprocess.PIPE,
                                     stderr=self.log, env={k: v for k, v in os.environ.items()
                                                           if k != "VPPD_DATABASE_URL"})
        line = self.proc.stdout.readline().decode()
        self.assertTrue(line.startswith("vppd listening on https://127.0.0.1:"), line)
        self.port = int(line.split("https://127.0.0.1:", 1)[1].split()[0])
        self.data = data

    def tearDown(self):
        self.proc.terminate()
        self.proc.wait(15)
        self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def https(self, method, path, headers=None, body=None):
        ctx = ssl.create_default_context(cafile=self.cert)
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=10)
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        out = (r.status, r.read().decode())
        conn.close()
        return out

    def test_https_is_served_and_plain_http_is_not(self):
        self.assertEqual(self.https("GET", "/healthz")[0], 200)
        status, body = self.https("POST", "/apple/notifications/0123456789abcdef0123456789abcdef",
                                  {"Authorization": "Bearer x", "Content-Type": "application/json"}, "{}")
        self.assertEqual(status, 401, body)
        token = subprocess.run([VPPD, "dev-token", "--data-dir", self.data], capture_output=True, text=True,
                               check=True).stdout.strip()
        status, body = self.https("GET", "/beta/deviceAppManagement/vppTokens", {"Authorization": "Bearer " + token})
        self.assertEqual(status, 200, body)
        self.assertTrue(json.loads(body)["@odata.context"].startswith(f"https://127.0.0.1:{self.port}/"), body)
        # Plain HTTP to the TLS port gets no HTTP answer.
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                answer = s.recv(1024)
            except OSError:
                answer = b""
        self.assertFalse(answer.startswith(b"HTTP/"), answer)
        # A client that does not trust the certificate cannot talk to it.
        with self.assertRaises(ssl.SSLError):
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ssl.create_default_context(),
                                               timeout=10)
            conn.request("GET", "/healthz")

    def test_a_bad_certificate_or_half_a_pair_is_refused_at_start(self):
        for args in (["--tls-cert", self.cert], ["--tls-cert", self.key, "--tls-key", self.key]):
            r = subprocess.run([VPPD, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data, "--dev", *args],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, r.stderr)
            self.assertIn("tls", r.stderr.lower())


if __name__ == "__main__":
    unittest.main()
