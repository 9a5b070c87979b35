"""apple-vpp-sim delivers Apple's notifications (issue 16) to a receiver in this test.

A small HTTP server on 127.0.0.1 plays the MDM: it records every POST (bearer,
body) and answers from a script (then 204). The simulator runs with
`--notification-retry-scale 0.001`, so Apple's 60 s / 180 s gaps between attempts
become 60 / 180 ms. Covered: TEST_NOTIFICATION on configuration, http:// only to
loopback (9712 otherwise), ASSET_MANAGEMENT without any request to trigger it (no
/status poll), the split at 100 elements, ASSET_COUNT, USER_ASSOCIATED, retries
(up to 3 attempts, any 2xx ends them) and each delivery fault (drop, duplicate,
delay, reorder, wrong bearer), all checked against `GET /_sim/notifications`.

Standard library only; the binary is `$VPPD_BIN_DIR/apple-vpp-sim` (default build/bin).
"""

import http.server
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_sim_conformance import INT32_MAX, SimTestCase, wait_event  # noqa: E402

TOKEN = "receiver-secret-0123"


class Receiver:
    """Records notifications; answers from `script` (statuses), then 204."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received = []  # dicts: bearer, body, at
        self.script = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.received.append({"bearer": self.headers.get("Authorization", ""),
                                              "body": json.loads(body), "at": time.monotonic(),
                                              "path": self.path})
                    status = receiver.script.pop(0) if receiver.script else 204
                if self.headers.get("Authorization") != "Bearer " + TOKEN:
                    status = 401
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/apple/notifications" % self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def clear(self, script=()):
        with self.lock:
            self.received = []
            self.script = list(script)

    def wait(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= n:
                    return list(self.received)
            time.sleep(0.02)
        with self.lock:
            return list(self.received)


class Notifications(SimTestCase):
    ARGS = ("--seed", "5", "--assets", "40", "--assignments", "800", "--event-delay-ms", "100",
            "--notification-retry-scale", "0.001")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.receiver = Receiver()

    @classmethod
    def tearDownClass(cls):
        cls.receiver.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.uid = self.location()["uId"]
        self.app = next(a for a in self.assets()
                        if a["deviceAssignable"] and a["totalCount"] != INT32_MAX)["adamId"]
        self.receiver.clear()

    def subscribe(self, types=("ASSET_MANAGEMENT", "ASSET_COUNT", "USER_MANAGEMENT", "USER_ASSOCIATED")):
        status, body, _ = self.sim.post("client/config", {"notificationUrl": self.receiver.url,
                                                          "notificationAuthToken": TOKEN,
                                                          "notificationTypes": list(types)})
        self.assertEqual(status, 200, body)
        got = self.receiver.wait(1)
        self.assertEqual(got[0]["body"]["notificationType"], "TEST_NOTIFICATION")
        self.wait_log(1)
        self.assertEqual(self.sim.control("DELETE", "notifications")[0], 200)
        self.receiver.clear()

    def deliveries(self):
        return self.sim.control("GET", "notifications")[1]["deliveries"]

    def wait_log(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d = self.deliveries()
            if len(d) >= n:
                return d
            time.sleep(0.02)
        return self.deliveries()

    def buy(self, n):
        status, body = self.sim.control("POST", "locations/%s/purchase" % self.uid, {"adamId": self.app, "count": n})
        self.assertEqual(status, 200, body)

    def notification_fault(self, rule):
        status, body = self.sim.control("POST", "notificationFaults", rule)
        self.assertEqual(status, 200, body)

    def test_test_notification_and_loopback_only_http(self):
        for url in ("http://example.com/hook", "http://192.168.1.10/hook", "http://127.0.0.1.nip.io/hook"):
            status, body, _ = self.sim.post("client/config", {"notificationUrl": url, "notificationAuthToken": "t"})
            self.assertEqual((status, body["errorNumber"]), (400, 9712), url)
        self.subscribe()
        status, cfg, _ = self.sim.get("client/config")
        self.assertEqual(cfg["notificationUrl"], self.receiver.url)
        self.assertEqual(self.sim.control("POST", "locations/%s/testNotification" % self.uid)[0], 200)
        got = self.receiver.wait(1)
        n = got[0]
        self.assertEqual(n["bearer"], "Bearer " + TOKEN)
        self.assertEqual(n["path"], "/apple/notifications")
        self.assertEqual(sorted(n["body"]), ["notification", "notificationId", "notificationType", "uId"])
        self.assertEqual((n["body"]["notification"], n["body"]["uId"]), ({}, self.uid))
        d = self.wait_log(1)
        self.assertEqual((d[0]["outcome"], d[0]["status"], d[0]["attempt"]), ("delivered", 204, 1))

    def test_asset_management_arrives_without_a_status_poll_and_splits_at_100(self):
        self.subscribe()
        self.buy(200)
        self.receiver.wait(1)
        self.receiver.clear()
        self.sim.control("DELETE", "counters")
        serials = ["NB-%03d" % i for i in range(150)]
        status, ev, _ = self.sim.post("assets/associate", {"assets": [{"adamId": self.app}],
                                                           "serialNumbers": serials})
        self.assertEqual(status, 200, ev)
        got = self.receiver.wait(2)
        self.assertEqual(len(got), 2, got)
        self.assertNotIn("GET /mdm/v2/status", self.sim.control("GET", "counters")[1]["total"])
        notes = [g["body"]["notification"] for g in got]
        self.assertEqual([len(n["assignments"]) for n in notes], [100, 50])
        for g, n in zip(got, notes):
            self.assertEqual(g["body"]["notificationType"], "ASSET_MANAGEMENT")
            self.assertEqual((n["eventId"], n["result"], n["type"]), (ev["eventId"], "SUCCESS", "ASSOCIATE"))
            self.assertNotIn("error", n)
        self.assertEqual([a["serialNumber"] for n in notes for a in n["assignments"]], serials)
        self.assertEqual(notes[0]["assignments"][0]["adamId"], self.app)
        self.assertEqual(len({g["body"]["notificationId"] for g in got}), 2)
        self.assertEqual(wait_event(self.sim, ev["eventId"])["eventStatus"], "COMPLETE")

    def test_failures_in_asset_management(self):
        self.subscribe(("ASSET_MANAGEMENT",))
        free = self.assets(adamId=self.app)[0]["availableCount"]  # Leave exactly 2 free.
        if free < 2:
            self.buy(2 - free)
        elif free > 2:
            self.sim.control("POST", "locations/%s/refund" % self.uid, {"adamId": self.app, "count": free - 2})
        self.assertEqual(self.assets(adamId=self.app)[0]["availableCount"], 2)
        self.sim.control("POST", "faults", {"path": "/mdm/v2/assets/associate", "kind": "event_failure",
                                            "errorNumber": 9628, "serialNumbers": ["FX-2"]})
        status, ev, _ = self.sim.post("assets/associate", {"assets": [{"adamId": self.app}],
                                                           "serialNumbers": ["FX-1", "FX-2", "FX-3", "FX-4"]})
        self.assertEqual(status, 200, ev)
        got = self.receiver.wait(3)
        self.assertEqual(len(got), 3)
        by_result = {}
        for g in got:
            n = g["body"]["notification"]
            key = n["result"] + (str(n["error"]["errorNumber"]) if "error" in n else "")
            by_result[key] = [a["serialNumber"] for a in n["assignments"]]
            if "error" in n:
                self.assertEqual(n["error"]["errorInfo"]["serialNumbers"], by_result[key])
                self.assertIsInstance(n["error"]["errorMessage"], str)
        self.assertEqual(by_result, {"SUCCESS": ["FX-1", "FX-3"], "FAILURE9628": ["FX-2"], "FAILURE9709": ["FX-4"]})

    def test_asset_count_and_user_associated(self):
        self.subscribe(("ASSET_COUNT", "USER_ASSOCIATED"))
        self.buy(5)
        self.sim.control("POST", "locations/%s/refund" % self.uid, {"adamId": self.app, "count": 3})
        got = self.receiver.wait(2)
        self.assertEqual([g["body"]["notification"]["countDelta"] for g in got], [5, -3])
        self.assertEqual(got[0]["body"]["notification"]["adamId"], self.app)
        self.assertEqual(got[0]["body"]["notificationType"], "ASSET_COUNT")
        status, ev, _ = self.sim.post("users/create", {"users": [{"clientUserId": "acc-1", "email": "a@x.org"}]})
        self.assertEqual(wait_event(self.sim, ev["eventId"])["eventStatus"], "COMPLETE")
        self.receiver.clear()
        status, body = self.sim.control("POST", "locations/%s/acceptInvitation" % self.uid,
                                        {"clientUserIds": ["acc-1"]})
        self.assertEqual(status, 200, body)
        got = self.receiver.wait(1)
        self.assertEqual(got[0]["body"]["notificationType"], "USER_ASSOCIATED")
        user = got[0]["body"]["notification"]["associatedUsers"][0]
        self.assertEqual((user["clientUserId"], user["status"], user["email"]), ("acc-1", "Associated", "a@x.org"))
        self.assertTrue(user["idHash"] and user["inviteCode"])
        users, _ = self.sim.walk("users", "users", clientUserId="acc-1")
        self.assertEqual(users[0]["status"], "Associated")
        self.assertEqual(self.sim.control("POST", "locations/%s/acceptInvitation" % self.uid,
                                          {"clientUserIds": ["acc-1"]})[0], 409)

    def test_retries_until_2xx_at_most_three_attempts(self):
        self.subscribe(("ASSET_COUNT",))
        self.receiver.clear(script=[500, 503, 200])
        self.buy(1)
        got = self.receiver.wait(3)
        self.assertEqual(len(got), 3)
        self.assertEqual(len({g["body"]["notificationId"] for g in got}), 1)
        self.assertGreaterEqual(got[1]["at"] - got[0]["at"], 0.055)
        self.assertGreaterEqual(got[2]["at"] - got[1]["at"], 0.170)
        d = self.wait_log(3)
        self.assertEqual([(x["attempt"], x["outcome"], x["status"]) for x in d],
                         [(1, "failed", 500), (2, "failed", 503), (3, "delivered", 200)])
        self.sim.control("DELETE", "notifications")
        self.receiver.clear(script=[500, 500, 500, 500])
        self.buy(1)
        self.receiver.wait(3)
        time.sleep(0.5)
        d = self.deliveries()
        self.assertEqual([(x["attempt"], x["outcome"]) for x in d], [(1, "failed"), (2, "failed"), (3, "failed")])
        self.assertEqual(len(self.receiver.wait(3)), 3)

    def test_unreachable_receiver_is_recorded(self):
        status, body, _ = self.sim.post("client/config", {"notificationUrl": "http://127.0.0.1:9/closed",
                                                          "notificationAuthToken": TOKEN,
                                                          "notificationTypes": ["ASSET_COUNT"]})
        self.assertEqual(status, 200, body)
        d = self.wait_log(3)
        self.assertEqual([(x["attempt"], x["outcome"], x["status"]) for x in d],
                         [(1, "failed", 0), (2, "failed", 0), (3, "failed", 0)])
        self.assertTrue(d[0]["error"])

    def test_delivery_faults(self):
        self.subscribe(("ASSET_COUNT",))
        self.notification_fault({"kind": "drop", "onNotifications": [1]})
        self.notification_fault({"kind": "duplicate", "onNotifications": [2]})
        self.notification_fault({"kind": "wrong_bearer", "onNotifications": [3], "type": "ASSET_COUNT"})
        self.notification_fault({"kind": "delay", "delayMs": 1000, "onNotifications": [4]})
        self.notification_fault({"kind": "reorder", "onNotifications": [5], "location": self.uid})
        self.assertEqual(self.sim.control("POST", "notificationFaults", {"kind": "lose"})[0], 400)
        for i in range(1, 7):
            self.buy(i)
        # 2 twice, 3 three times (401 each: wrong bearer), 5 after 6, 4 last.
        self.receiver.wait(8)
        time.sleep(0.3)  # Nothing more may come.
        got = self.receiver.wait(8)
        deltas = [g["body"]["notification"]["countDelta"] for g in got]
        self.assertNotIn(1, deltas)
        self.assertEqual(deltas.count(2), 2)
        self.assertEqual(deltas.count(3), 3)
        self.assertLess(deltas.index(6), deltas.index(5))
        self.assertEqual(deltas[-1], 4)
        self.assertEqual(sorted(deltas), [2, 2, 3, 3, 3, 4, 5, 6])
        for g in got:
            expected = "Bearer " + TOKEN if g["body"]["notification"]["countDelta"] != 3 else "Bearer not-" + TOKEN
            self.assertEqual(g["bearer"], expected)
        d = self.deliveries()
        outcomes = {}
        for x in d:
            outcomes.setdefault(x["body"]["notification"]["countDelta"], []).append(
                (x["outcome"], x["status"], x["duplicate"], x["wrongBearer"]))
        self.assertEqual(outcomes[1], [("dropped", 0, False, False)])
        self.assertEqual(outcomes[2], [("delivered", 204, False, False), ("delivered", 204, True, False)])
        self.assertEqual(outcomes[3], [("failed", 401, False, True)] * 3)
        faults = self.sim.control("GET", "notificationFaults")[1]["faults"]
        self.assertEqual([f["hits"] for f in faults], [1, 1, 1, 1, 1])
        self.assertEqual(self.sim.control("DELETE", "notificationFaults/%d" % faults[0]["id"])[0], 200)
        self.assertEqual(len(self.sim.control("GET", "notificationFaults")[1]["faults"]), 4)

    def test_settings_and_reset(self):
        status, body = self.sim.control("POST", "settings", {"notificationRetryScale": 0.5})
        self.assertEqual((status, body["notificationRetryScale"]), (200, 0.5))
        self.assertEqual(self.sim.control("POST", "settings", {"notificationRetryScale": -1})[0], 400)
        self.sim.control("POST", "notificationFaults", {"kind": "drop"})
        self.sim.control("POST", "reset")
        self.assertEqual(self.sim.control("GET", "settings")[1]["notificationRetryScale"], 0.001)
        self.assertEqual(self.sim.control("GET", "notificationFaults")[1]["faults"], [])


if __name__ == "__main__":
    unittest.main()
