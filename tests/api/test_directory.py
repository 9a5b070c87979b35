"""Black-box tests of the minimal directory (issue 15): /users, /groups and their members,
/devices, /deviceManagement/managedDevices, POST /$batch and `vppd import`, on the real
vppd over real sockets (SQLite, or PostgreSQL when VPPD_TEST_DATABASE_URL is set)."""
import os
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import DEV_TENANT, Vppd, quote  # noqa: E402

NO_APPLE = ("--apple-url", "http://127.0.0.1:9/mdm/v2", "--apple-max-attempts", "1", "--throttle-window-seconds", "0")
SCOPES = ("User.ReadWrite.All Group.ReadWrite.All GroupMember.ReadWrite.All Device.ReadWrite.All "
          "DeviceManagementManagedDevices.ReadWrite.All")
OTHER_TENANT = "3a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def new_user(n):
    return {"accountEnabled": True, "displayName": f"User {n}", "mailNickname": f"user{n}",
            "userPrincipalName": f"user{n}@contoso.com",
            "passwordProfile": {"forceChangePasswordNextSignIn": True, "password": "xWwvJ]6NMw+bWH-d"}}


def new_group(name):
    return {"displayName": name, "mailEnabled": False, "mailNickname": name.replace(" ", ""),
            "securityEnabled": True}


def new_device(name):
    return {"accountEnabled": True, "deviceId": str(uuid.uuid4()), "displayName": name, "operatingSystem": "iPadOS",
            "operatingSystemVersion": "17.4",
            "alternativeSecurityIds": [{"type": 2, "key": "base64Y3YxN2E1MWM1LTEwMzktNGE1Zi05MTE4LTcwZGNkNDk2Mjg5NA=="}]}


def ref(id_, host="https://graph.microsoft.com/v1.0"):
    return {"@odata.id": f"{host}/directoryObjects/{id_}"}


class Directory(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.vppd = Vppd(*NO_APPLE).start()
        cls.token = cls.vppd.dev_token("--scopes", SCOPES)
        cls.read_only = cls.vppd.dev_token("--scopes", "User.Read.All Group.Read.All")
        cls.vppd.cli("tenant", "add", OTHER_TENANT, "--data-dir", cls.vppd.data_dir)
        cls.other = cls.vppd.dev_token("--tenant", OTHER_TENANT, "--scopes", SCOPES)

    @classmethod
    def tearDownClass(cls):
        cls.vppd.cleanup()

    def call(self, method, path, body=None, token=None, version="v1.0"):
        return self.vppd.request(method, f"/{version}{path}", token=token or self.token, body=body)

    def create(self, path, body, version="v1.0"):
        r = self.call("POST", path, body, version=version)
        self.assertEqual(r.status, 201, r)
        return r.json()

    # --- users -----------------------------------------------------------------------------

    def test_user_create_get_list_update_delete(self):
        u = self.create("/users", new_user("crud"))
        self.assertEqual(u["userPrincipalName"], "usercrud@contoso.com")
        self.assertIn("/v1.0/$metadata#users/$entity", u["@odata.context"])
        self.assertNotIn("passwordProfile", u)  # accepted, never stored nor shown
        r = self.call("GET", f"/users/{u['id']}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["displayName"], "User crud")
        r = self.call("PATCH", f"/users/{u['id']}", {"jobTitle": "Teacher"})
        self.assertEqual(r.status, 204, r)
        r = self.call("GET", "/users?$filter=" + quote("jobTitle eq 'Teacher'") + "&$select=jobTitle", version="beta")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([x["id"] for x in r.json()["value"]], [u["id"]])
        self.assertEqual(set(r.json()["value"][0]), {"id", "jobTitle"})
        r = self.call("DELETE", f"/users/{u['id']}")
        self.assertEqual(r.status, 204, r)
        r = self.call("GET", f"/users/{u['id']}")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.error_code(), "Request_ResourceNotFound")
        self.assertIn(u["id"], r.error_message())

    def test_user_bad_input(self):
        missing = new_user("missing")
        del missing["userPrincipalName"]
        r = self.call("POST", "/users", missing)
        self.assertEqual(r.status, 400, r)
        self.assertIn("userPrincipalName", r.error_message())
        r = self.call("POST", "/users", {**new_user("t"), "accountEnabled": "yes"})
        self.assertEqual(r.status, 400, r)
        self.assertIn("accountEnabled", r.error_message())
        r = self.call("POST", "/users", {**new_user("long"), "displayName": "x" * 257})
        self.assertEqual(r.status, 400, r)
        self.assertIn("256", r.error_message())
        r = self.call("POST", "/users", {**new_user("bad"), "userPrincipalName": "no-at-sign"})
        self.assertEqual(r.status, 400, r)
        r = self.call("POST", "/users", {**new_user("x"), "favouriteColour": "blue"})
        self.assertEqual(r.status, 400, r)
        self.assertIn("favouriteColour", r.error_message())
        self.create("/users", new_user("dup"))
        r = self.call("POST", "/users", {**new_user("dup"), "userPrincipalName": "USERDUP@contoso.com"})
        self.assertEqual(r.status, 400, r)
        self.assertIn("userPrincipalName", r.error_message())

    def test_permissions_and_other_tenant(self):
        u = self.create("/users", new_user("tenant"))
        r = self.call("POST", "/users", new_user("ro"), token=self.read_only)
        self.assertEqual(r.status, 403, r)
        r = self.call("GET", f"/users/{u['id']}", token=self.read_only)
        self.assertEqual(r.status, 200, r)
        r = self.call("GET", "/devices", token=self.read_only)
        self.assertEqual(r.status, 403, r)
        # Another tenant sees none of it, and cannot touch it.
        r = self.call("GET", f"/users/{u['id']}", token=self.other)
        self.assertEqual(r.status, 404, r)
        r = self.call("DELETE", f"/users/{u['id']}", token=self.other)
        self.assertEqual(r.status, 404, r)
        r = self.call("GET", "/users", token=self.other)
        self.assertEqual(r.json()["value"], [])
        g = self.create("/groups", new_group("Tenant A group"))
        r = self.call("POST", f"/groups/{g['id']}/members/$ref", ref(u["id"]), token=self.other)
        self.assertEqual(r.status, 404, r)

    # --- groups and members ----------------------------------------------------------------

    def test_members_add_list_remove(self):
        g = self.create("/groups", new_group("iPads 1"))
        self.assertEqual(g["groupTypes"], [])
        u = self.create("/users", new_user("member"))
        d = self.create("/devices", new_device("ipad-member"))
        # Graph's host as the SDKs send it, and vppd's own.
        r = self.call("POST", f"/groups/{g['id']}/members/$ref", ref(u["id"]))
        self.assertEqual(r.status, 204, r)
        r = self.call("POST", f"/groups/{g['id']}/members/$ref", ref(d["id"], f"http://127.0.0.1:{self.vppd.port}/v1.0"),
                      version="beta")
        self.assertEqual(r.status, 204, r)
        r = self.call("GET", f"/groups/{g['id']}/members")
        self.assertEqual(r.status, 200, r)
        members = r.json()["value"]
        self.assertEqual([(m["@odata.type"], m["id"]) for m in members],
                         [("#microsoft.graph.user", u["id"]), ("#microsoft.graph.device", d["id"])])
        self.assertEqual(members[1]["deviceId"], d["deviceId"])
        r = self.vppd.request("GET", f"/v1.0/groups/{g['id']}/members/$count", token=self.token,
                              headers={"ConsistencyLevel": "eventual"})
        self.assertEqual((r.status, r.body.strip()), (200, "2"))
        # Twice: Graph's 400.
        r = self.call("POST", f"/groups/{g['id']}/members/$ref", ref(u["id"]))
        self.assertEqual(r.status, 400, r)
        self.assertIn("One or more added object references already exist", r.error_message())
        # Unknown member, unknown group: 404 naming them.
        missing = str(uuid.uuid4())
        r = self.call("POST", f"/groups/{g['id']}/members/$ref", ref(missing))
        self.assertEqual(r.status, 404, r)
        self.assertIn(missing, r.error_message())
        r = self.call("POST", f"/groups/{missing}/members/$ref", ref(u["id"]))
        self.assertEqual(r.status, 404, r)
        self.assertIn(missing, r.error_message())
        # Bad references.
        for body in ({}, {"@odata.id": 5}, {"@odata.id": "https://graph.microsoft.com/v1.0/applications/x"},
                     {"@odata.id": "https://graph.microsoft.com/v1.0/"}):
            r = self.call("POST", f"/groups/{g['id']}/members/$ref", body)
            self.assertEqual(r.status, 400, (body, r))
        r = self.call("POST", f"/groups/{g['id']}/members/$ref", ref(g["id"]))
        self.assertEqual(r.status, 400, r)
        # Removal.
        r = self.call("DELETE", f"/groups/{g['id']}/members/{u['id']}/$ref")
        self.assertEqual(r.status, 204, r)
        r = self.call("DELETE", f"/groups/{g['id']}/members/{u['id']}/$ref")
        self.assertEqual(r.status, 404, r)
        r = self.call("GET", f"/groups/{g['id']}/members")
        self.assertEqual([m["id"] for m in r.json()["value"]], [d["id"]])

    def test_group_bad_input_and_update(self):
        r = self.call("POST", "/groups", {"displayName": "no nickname", "mailEnabled": False, "securityEnabled": True})
        self.assertEqual(r.status, 400, r)
        self.assertIn("mailNickname", r.error_message())
        r = self.call("POST", "/groups", {**new_group("dyn"), "groupTypes": ["DynamicMembership"]})
        self.assertEqual(r.status, 400, r)
        r = self.call("POST", "/groups", {**new_group("bad"), "description": 5})
        self.assertEqual(r.status, 400, r)
        self.assertIn("description", r.error_message())
        r = self.call("POST", "/groups", {**new_group("bind"), "members@odata.bind": []})
        self.assertEqual(r.status, 400, r)
        g = self.create("/groups", new_group("Renamed later"))
        r = self.call("PATCH", f"/groups/{g['id']}", {"displayName": "Renamed"})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.call("GET", f"/groups/{g['id']}").json()["displayName"], "Renamed")
        r = self.call("DELETE", f"/groups/{g['id']}")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.call("GET", f"/groups/{g['id']}").status, 404)

    # --- devices and managed devices -----------------------------------------------------------

    def test_devices_and_managed_devices(self):
        d = self.create("/devices", new_device("ipad-7"))
        r = self.call("POST", "/devices", {**new_device("dup"), "deviceId": d["deviceId"]})
        self.assertEqual(r.status, 400, r)
        self.assertIn("deviceId", r.error_message())
        r = self.call("POST", "/devices", {**new_device("bad"), "deviceId": "not-a-guid"})
        self.assertEqual(r.status, 400, r)
        for version in ("v1.0", "beta"):
            m = self.create("/deviceManagement/managedDevices",
                            {"serialNumber": f"SER-{version}", "deviceName": "ipad-7", "azureADDeviceId": d["deviceId"],
                             "operatingSystem": "iOS", "osVersion": "17.4", "model": "iPad"}, version=version)
            self.assertEqual(m["@odata.type"], "#microsoft.graph.managedDevice")
            self.assertEqual(m["azureADDeviceId"], d["deviceId"])
        r = self.call("GET", "/deviceManagement/managedDevices?$filter=" + quote("serialNumber eq 'SER-beta'"))
        self.assertEqual(r.status, 200, r)
        [m] = r.json()["value"]
        r = self.call("PATCH", f"/deviceManagement/managedDevices/{m['id']}", {"deviceName": "renamed"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["deviceName"], "renamed")
        r = self.call("PATCH", f"/deviceManagement/managedDevices/{m['id']}", {"azureADDeviceId": "nope"})
        self.assertEqual(r.status, 400, r)
        r = self.call("PATCH", f"/deviceManagement/managedDevices/{m['id']}", {"serialNumber": 12})
        self.assertEqual(r.status, 400, r)
        r = self.call("GET", f"/deviceManagement/managedDevices/{m['id']}", token=self.other)
        self.assertEqual(r.status, 404, r)
        r = self.call("DELETE", f"/deviceManagement/managedDevices/{m['id']}")
        self.assertEqual(r.status, 204, r)
        r = self.call("GET", "/deviceManagement/managedDevices/$count?$filter=" + quote("serialNumber eq 'SER-beta'"))
        self.assertEqual((r.status, r.body.strip()), (200, "0"))

    # --- $batch ------------------------------------------------------------------------------------

    def test_batch(self):
        g = self.create("/groups", new_group("Batch group"))
        requests = [
            {"id": "1", "method": "POST", "url": "/devices", "headers": {"Content-Type": "application/json"},
             "body": new_device("batch-1")},
            {"id": "2", "method": "GET", "url": f"/groups/{g['id']}"},
            {"id": "3", "method": "GET", "url": f"/users/{uuid.uuid4()}"},
            {"id": "4", "method": "GET", "url": "/users", "dependsOn": ["3"]},
        ]
        r = self.call("POST", "/$batch", {"requests": requests})
        self.assertEqual(r.status, 200, r)
        by_id = {x["id"]: x for x in r.json()["responses"]}
        self.assertEqual(by_id["1"]["status"], 201)
        self.assertEqual(by_id["1"]["body"]["displayName"], "batch-1")
        self.assertEqual(by_id["2"]["status"], 200)
        self.assertEqual(by_id["2"]["body"]["displayName"], "Batch group")
        self.assertEqual(by_id["3"]["status"], 404)
        self.assertEqual(by_id["4"]["status"], 424)
        # The outer caller's permissions apply inside.
        r = self.call("POST", "/$batch", {"requests": [{"id": "1", "method": "POST", "url": "/users",
                                                        "body": new_user("batch-ro")}]}, token=self.read_only)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["responses"][0]["status"], 403)
        too_many = [{"id": str(n), "method": "GET", "url": "/users"} for n in range(21)]
        r = self.call("POST", "/$batch", {"requests": too_many})
        self.assertEqual(r.status, 400, r)
        r = self.call("POST", "/$batch", {"requests": [{"id": "1", "method": "GET", "url": "https://evil/users"}]})
        self.assertEqual(r.status, 400, r)
        r = self.call("POST", "/$batch", {"requests": [{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}]})
        self.assertEqual(r.status, 400, r)

    def test_metadata_declares_the_directory(self):
        r = self.vppd.request("GET", "/v1.0/$metadata")
        self.assertEqual(r.status, 200, r)
        for name in ('EntityType Name="user"', 'EntityType Name="group"', 'EntityType Name="device"',
                     'EntityType Name="managedDevice"', 'EntitySet Name="users"'):
            self.assertIn(name, r.body)


class Import(unittest.TestCase):
    """`vppd import`: one transaction per file, bad rows named by line, re-import updates."""

    def setUp(self):
        self.vppd = Vppd(*NO_APPLE).start()
        self.addCleanup(self.vppd.cleanup)
        self.token = self.vppd.dev_token("--scopes", SCOPES)
        self.dir = tempfile.mkdtemp(prefix="vppd-import-")

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def importing(self, kind, path, check=True):
        return self.vppd.cli("import", kind, path, "--data-dir", self.vppd.data_dir, "--tenant", DEV_TENANT,
                             check=check)

    def count(self, path):
        r = self.vppd.request("GET", f"/v1.0{path}/$count", token=self.token)
        self.assertEqual(r.status, 200, r)
        return int(r.body)

    def test_devices_users_groups_and_reimport(self):
        ids = [str(uuid.uuid4()) for _ in range(3)]
        devices = self.write("devices.csv", "deviceId,displayName,serialNumber,model\n" + "".join(
            f"{d},ipad-{n},SER{n},\"iPad, 10th gen\"\n" for n, d in enumerate(ids)))
        r = self.importing("devices", devices)
        self.assertIn("6 objects created", r.stdout)
        self.assertEqual(self.count("/devices"), 3)
        self.assertEqual(self.count("/deviceManagement/managedDevices"), 3)
        r = self.importing("devices", devices)
        self.assertIn("0 objects created, 6 updated", r.stdout)
        self.assertEqual(self.count("/devices"), 3)
        r = self.vppd.request("GET", "/v1.0/deviceManagement/managedDevices?$filter=" + quote("serialNumber eq 'SER1'"),
                              token=self.token)
        [m] = r.json()["value"]
        self.assertEqual((m["model"], m["azureADDeviceId"], m["deviceName"]), ("iPad, 10th gen", ids[1], "ipad-1"))

        users = self.write("users.csv", "userPrincipalName,displayName\nana@x.com,Ana\nben@x.com,Ben\n")
        self.importing("users", users)
        groups = self.write("groups.csv", f"displayName,mailNickname,members\nClass 1,class1,ana@x.com;{ids[0]}\n")
        r = self.importing("groups", groups)
        self.assertIn("2 members added", r.stdout)
        [g] = self.vppd.request("GET", "/v1.0/groups", token=self.token).json()["value"]
        members = self.vppd.request("GET", f"/v1.0/groups/{g['id']}/members", token=self.token).json()["value"]
        self.assertEqual(sorted(m["@odata.type"] for m in members), ["#microsoft.graph.device", "#microsoft.graph.user"])
        # The same file again: the same group, the same members.
        r = self.importing("groups", groups)
        self.assertIn("0 objects created, 1 updated, 0 members added, 0 removed", r.stdout)

    def test_bad_rows_import_nothing(self):
        good = str(uuid.uuid4())
        path = self.write("devices.csv", f"deviceId,displayName,serialNumber\n{good},ok,S1\nnot-a-guid,bad,S2\n"
                                         f"{uuid.uuid4()},also,S1\n,missing,S3\n")
        r = self.importing("devices", path, check=False)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("devices.csv:3: deviceId 'not-a-guid' is not a GUID", r.stderr)
        self.assertIn("devices.csv:5: deviceId is required", r.stderr)
        self.assertIn("nothing imported", r.stderr)
        self.assertEqual(self.count("/devices"), 0)
        # A repeated serial is found by the store, and named by its line too.
        path = self.write("dup.csv", f"deviceId,serialNumber\n{good},S1\n{uuid.uuid4()},S1\n")
        r = self.importing("devices", path, check=False)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("dup.csv:3: serialNumber 'S1' appears twice", r.stderr)
        self.assertEqual(self.count("/devices"), 0)
        path = self.write("cols.csv", "deviceId,colour\n")
        r = self.importing("devices", path, check=False)
        self.assertIn("unknown column 'colour'", r.stderr)
        path = self.write("g.csv", "displayName,members\nG,nobody@x.com\n")
        r = self.importing("groups", path, check=False)
        self.assertIn("g.csv:2: member 'nobody@x.com' is no user, device or group", r.stderr)
        self.assertEqual(self.count("/groups"), 0)


if __name__ == "__main__":
    unittest.main()
