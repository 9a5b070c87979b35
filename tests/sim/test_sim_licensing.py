"""apple-vpp-sim: what a reconcile job (device and user licensing) meets at Apple.

Issue 15: event failures per serial / clientUserId through fault rules
(`kind: "event_failure"`), exact partial results when licenses run out (9709),
a retry that succeeds once licenses are bought, and slow or held events
(`kind: "slow_event"` / `"hold_event"`) that stay PENDING while others complete.

Standard library only; the binary is `$VPPD_BIN_DIR/apple-vpp-sim` (default build/bin).
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_sim_conformance import INT32_MAX, SimTestCase, wait_event  # noqa: E402


class Licensing(SimTestCase):
    ARGS = ("--seed", "11", "--assets", "40", "--assignments", "800", "--event-delay-ms", "200")

    def setUp(self):
        super().setUp()
        self.uid = self.location()["uId"]
        self.app = next(a for a in self.assets()
                        if a["deviceAssignable"] and a["totalCount"] != INT32_MAX)["adamId"]

    def leave_free(self, n):
        """Refunds or buys so that exactly n licenses of self.app are free."""
        free = self.assets(adamId=self.app)[0]["availableCount"]
        if free > n:
            self.sim.control("POST", "locations/%s/refund" % self.uid, {"adamId": self.app, "count": free - n})
        elif free < n:
            self.sim.control("POST", "locations/%s/purchase" % self.uid, {"adamId": self.app, "count": n - free})
        self.assertEqual(self.assets(adamId=self.app)[0]["availableCount"], n)

    def associate(self, serials=(), users=(), op="associate"):
        body = {"assets": [{"adamId": self.app}]}
        if serials:
            body["serialNumbers"] = list(serials)
        if users:
            body["clientUserIds"] = list(users)
        status, ev, _ = self.sim.post("assets/" + op, body)
        self.assertEqual(status, 200, ev)
        return ev["eventId"]

    def holders(self, serials):
        return [s for s in serials if self.sim.walk(adamId=self.app, serialNumber=s)[0]]

    def fault(self, rule):
        status, body = self.sim.control("POST", "faults", rule)
        self.assertEqual(status, 200, body)
        return body

    def test_event_failure_per_serial_and_user_in_status(self):
        self.leave_free(10)
        users, _ = self.sim.walk("users", "users", activeOnly="true")
        user = next(u["clientUserId"] for u in users if u["status"] == "Associated")
        for number, serial in ((9610, "F-2"), (9616, "F-3"), (9619, "F-4"), (9628, "F-5"), (9627, "F-6")):
            self.fault({"path": "/mdm/v2/assets/associate", "kind": "event_failure", "errorNumber": number,
                        "serialNumbers": [serial]})
        self.fault({"path": "/mdm/v2/assets/associate", "kind": "event_failure", "errorNumber": 9610,
                    "clientUserIds": [user]})
        serials = ["F-1", "F-2", "F-3", "F-4", "F-5", "F-6", "F-7"]
        st = wait_event(self.sim, self.associate(serials, [user]))
        self.assertEqual(st["eventStatus"], "FAILED")
        self.assertEqual((st["numRequested"], st["numCompleted"]), (8, 2))
        by_number = {f["errorNumber"]: f for f in st["failures"]}
        self.assertEqual(sorted(by_number), [9610, 9616, 9619, 9627, 9628])
        self.assertEqual(by_number[9610]["errorInfo"]["serialNumbers"], ["F-2"])
        self.assertEqual(by_number[9610]["errorInfo"]["clientUserIds"], [user])
        self.assertEqual(by_number[9628]["errorInfo"]["serialNumbers"], ["F-5"])
        self.assertEqual(by_number[9616]["errorInfo"]["assets"][0]["adamId"], self.app)
        for f in st["failures"]:
            self.assertIsInstance(f["errorMessage"], str)
        self.assertEqual(self.holders(serials), ["F-1", "F-7"])
        self.assertEqual(self.assets(adamId=self.app)[0]["availableCount"], 8)

    def test_event_failure_on_disassociate_keeps_the_license(self):
        self.leave_free(5)
        self.assertEqual(wait_event(self.sim, self.associate(["D-1", "D-2"]))["eventStatus"], "COMPLETE")
        self.fault({"path": "/mdm/v2/assets/disassociate", "kind": "event_failure", "errorNumber": 9627,
                    "serialNumbers": ["D-2"], "maxHits": 1})
        st = wait_event(self.sim, self.associate(["D-1", "D-2"], op="disassociate"))
        self.assertEqual((st["eventStatus"], st["numCompleted"]), ("FAILED", 1))
        self.assertEqual(st["failures"][0]["errorInfo"]["serialNumbers"], ["D-2"])
        self.assertEqual(self.holders(["D-1", "D-2"]), ["D-2"])
        # maxHits 1: the retry goes through.
        st = wait_event(self.sim, self.associate(["D-2"], op="disassociate"))
        self.assertEqual(st["eventStatus"], "COMPLETE")
        self.assertEqual(self.holders(["D-2"]), [])

    def test_not_enough_licenses_exact_then_retry_after_purchase(self):
        self.leave_free(3)
        serials = ["N-C", "N-A", "N-E", "N-B", "N-D"]
        st = wait_event(self.sim, self.associate(serials))
        self.assertEqual(st["eventStatus"], "FAILED")
        self.assertEqual((st["numRequested"], st["numCompleted"]), (5, 3))
        self.assertEqual([f["errorNumber"] for f in st["failures"]], [9709])
        # The first three in request order got one; the rest are listed in request order.
        self.assertEqual(st["failures"][0]["errorInfo"]["serialNumbers"], ["N-B", "N-D"])
        self.assertEqual(self.holders(serials), ["N-C", "N-A", "N-E"])
        self.assertEqual(self.assets(adamId=self.app)[0]["availableCount"], 0)
        self.sim.control("POST", "locations/%s/purchase" % self.uid, {"adamId": self.app, "count": 2})
        st = wait_event(self.sim, self.associate(serials))
        self.assertEqual((st["eventStatus"], st["numCompleted"]), ("COMPLETE", 5))
        self.assertEqual(self.holders(serials), serials)

    def test_slow_event_stays_pending_while_others_complete(self):
        self.leave_free(5)
        self.fault({"path": "/mdm/v2/assets/associate", "kind": "slow_event", "delayMs": 1500, "onRequests": [1]})
        slow = self.associate(["S-1"])
        fast = self.associate(["S-2"])
        self.assertEqual(wait_event(self.sim, fast)["eventStatus"], "COMPLETE")
        self.assertEqual(self.sim.get("status", eventId=slow)[1]["eventStatus"], "PENDING")
        self.assertEqual(self.holders(["S-1", "S-2"]), ["S-2"])
        start = time.monotonic()
        self.assertEqual(wait_event(self.sim, slow)["eventStatus"], "COMPLETE")
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(self.holders(["S-1", "S-2"]), ["S-1", "S-2"])

    def test_held_event_until_released(self):
        self.leave_free(5)
        self.fault({"path": "/mdm/v2/assets/associate", "kind": "hold_event", "maxHits": 1})
        held = self.associate(["H-1"])
        other = self.associate(["H-2"])
        self.assertEqual(wait_event(self.sim, other)["eventStatus"], "COMPLETE")
        time.sleep(0.5)
        self.assertEqual(self.sim.get("status", eventId=held)[1]["eventStatus"], "PENDING")
        self.assertEqual(self.sim.control("POST", "events/resolve", {"eventId": "nope"})[0], 404)
        status, body = self.sim.control("POST", "events/resolve", {"eventId": held})
        self.assertEqual((status, body["eventIds"]), (200, [held]))
        self.assertEqual(self.sim.get("status", eventId=held)[1]["eventStatus"], "COMPLETE")
        self.assertEqual(self.holders(["H-1"]), ["H-1"])

    def test_event_rules_are_listed_and_validated(self):
        rule = self.fault({"path": "*", "kind": "event_failure", "errorNumber": 9616, "serialNumbers": ["L-1"]})
        # Reads do not use up (or even count against) an event rule.
        self.sim.get("assets")
        rules = self.sim.control("GET", "faults")[1]["faults"]
        self.assertEqual(rules[0]["id"], rule["id"])
        self.assertEqual((rules[0]["kind"], rules[0]["matched"], rules[0]["serialNumbers"]),
                         ("event_failure", 0, ["L-1"]))
        for bad in ({"kind": "event_failure", "clientUserIds": [1]}, {"kind": "slow_event", "delayMs": "x"},
                    {"kind": "hold_event", "extra": 1}):
            self.assertEqual(self.sim.control("POST", "faults", bad)[0], 400, bad)


if __name__ == "__main__":
    unittest.main()
