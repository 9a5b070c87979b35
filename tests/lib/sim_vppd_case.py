"""A unittest base class for black-box tests of vppd syncing from apple-vpp-sim.

Each test class gets one simulator and one vppd pointed at it (both killed and
cleaned up after the class), a dev token with the write and mobileApps scopes,
the simulator's faults cleared before each test, and the calls the sync suites
all make: create a location, add its token, wait for the sync to finish.

    class FirstSync(SimVppdTestCase):
        sim_args = ("--assets", "12", "--locations", "1", "--seed", "11")
        vppd_args = ("--sync-interval-seconds", "0")

        def test_walks(self):
            loc, stoken = self.new_location(assets=4, assignments=10)
            t = self.wait_sync(self.add_token(stoken)["id"])
"""
import time
import unittest

from harness import Sim, Vppd, WRITE_SCOPE

BASE = "/beta/deviceAppManagement/vppTokens"
APPS = "/beta/deviceAppManagement/mobileApps"
APPS_SCOPE = "DeviceManagementApps.ReadWrite.All"


class SimVppdTestCase(unittest.TestCase):
    sim_args = ()   # apple-vpp-sim's command line
    vppd_args = ()  # vppd's, after --apple-url (the simulator's)

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(*cls.sim_args).start()
        cls.vppd = Vppd("--apple-url", cls.sim.url, *cls.vppd_args).start()
        cls.token = cls.vppd.dev_token("--scopes", f"{WRITE_SCOPE} {APPS_SCOPE}")

    @classmethod
    def tearDownClass(cls):
        cls.vppd.cleanup()
        cls.sim.cleanup()

    def setUp(self):
        self.sim.control("DELETE", "faults")

    def call(self, method, path, body=None, headers=None, token=None):
        return self.vppd.request(method, path, token=token or self.token, headers=headers, body=body)

    def new_location(self, assets=12, assignments=120, **extra):
        """A new simulator location: (its description, its first sToken)."""
        loc = self.sim.control("POST", "locations", {"assets": assets, "assignments": assignments, **extra})
        return loc, loc["tokens"][0]["sToken"]

    def add_token(self, stoken, **props):
        r = self.call("POST", BASE, {"token": stoken, **props})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["lastSyncStatus"], "inProgress", "creating a token starts a sync")
        return r.json()

    def wait_sync(self, token_id, timeout=40):
        """The token once its sync has finished; fails the test after `timeout` seconds."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.call("GET", f"{BASE}/{token_id}")
            self.assertEqual(r.status, 200, r)
            t = r.json()
            if t["lastSyncStatus"] != "inProgress":
                return t
            time.sleep(0.1)
        self.fail(f"sync of {token_id} did not finish within {timeout}s")
