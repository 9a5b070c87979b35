"""`vppd migrate-store`: a SQLite deployment copied to PostgreSQL, verified, and served unchanged.

Needs VPPD_TEST_DATABASE_URL (scripts/test provides a throwaway PostgreSQL server).
"""
import os
import base64
import sqlite3
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import (PG_ADMIN_URL, VPPD, Sim, Vppd, WRITE_SCOPE, create_test_database,  # noqa: E402
                     drop_test_database, psql)

BASE = "/beta/deviceAppManagement/vppTokens"
APPS = "/beta/deviceAppManagement/mobileApps"
APPS_SCOPE = "DeviceManagementApps.ReadWrite.All"
DIRECTORY_SCOPES = ("User.ReadWrite.All Group.ReadWrite.All GroupMember.ReadWrite.All Device.ReadWrite.All "
                    "DeviceManagementManagedDevices.ReadWrite.All")


def migrate(*args):
    return subprocess.run([VPPD, "migrate-store", *args], capture_output=True, text=True, timeout=300)


class MigrateStore(unittest.TestCase):
    def setUp(self):
        if not PG_ADMIN_URL:
            self.skipTest("VPPD_TEST_DATABASE_URL is not set: migrate-store is tested into PostgreSQL "
                          "(scripts/test starts one with scripts/pg-cluster)")
        self.sim = Sim("--locations", "3", "--assets", "15", "--assignments", "400", "--page-size", "50",
                       "--seed", "31", "--event-delay-ms", "50").start()
        self.addCleanup(self.sim.cleanup)
        self.source = Vppd("--apple-url", self.sim.url, "--sync-interval-seconds", "0", "--sync-event-poll-ms", "100",
                           sqlite=True)
        self.addCleanup(self.source.cleanup)
        self.target_url = create_test_database()
        self.addCleanup(drop_test_database, self.target_url)

    def snapshot(self, v, token):
        """Everything Graph shows: tokens, apps and every app's licenses."""
        tokens = v.collect(BASE + "?$top=999", token)
        # A token's ETag is its row's version, which starts again in the copy (README:
        # an If-Match from before the move gets 412 and the client reads again).
        for t in tokens:
            self.assertRegex(t.pop("@odata.etag"), r'^W/"[0-9]+"$')
        apps = v.collect(APPS + "?$top=999&$expand=assignments", token)
        licenses = {}
        for a in apps:
            cast = a["@odata.type"].split(".")[-1]
            licenses[a["id"]] = v.collect(f"{APPS}/{a['id']}/microsoft.graph.{cast}/assignedLicenses?$top=999", token)
            if a["assignments"]:  # where vppd's licences stand
                licenses[a["id"] + "/deviceStatuses"] = v.collect(f"{APPS}/{a['id']}/deviceStatuses", token)
            if any(not x["settings"]["useDeviceLicensing"] for x in a["assignments"]):  # people's licences
                licenses[a["id"] + "/userStatuses"] = v.collect(f"{APPS}/{a['id']}/userStatuses", token)
        directory = {path: v.collect(f"/v1.0/{path}?$top=999", token)
                     for path in ("users", "groups", "devices", "deviceManagement/managedDevices")}
        for g in directory["groups"]:
            directory[g["id"]] = v.collect(f"/v1.0/groups/{g['id']}/members?$top=999", token)
        for u in directory["users"]:  # the Apple users vppd registered: invitation, status, licences
            r = v.request("GET", f"/v1.0/users/{u['id']}/vppUserStatus", token=token)
            self.assertEqual(r.status, 200, r)
            status = r.json()
            status.pop("@odata.context")  # names the instance's own address
            directory[u["id"] + "/vppUserStatus"] = status
        return tokens, apps, licenses, directory

    def test_sqlite_deployment_moves_to_postgresql_intact(self):
        # A deployment of a version that kept its installation id in the data dir: the
        # upgraded vppd stores that id, and the copy keeps it.
        legacy_id = str(uuid.uuid4())
        with open(os.path.join(self.source.data_dir, "installation-id"), "w") as f:
            f.write(legacy_id + "\n")
        v = self.source.start()
        token = v.dev_token("--scopes", f"{WRITE_SCOPE} {APPS_SCOPE} {DIRECTORY_SCOPES}")
        ids = []
        for n, loc in enumerate(self.sim.locations()):
            r = v.request("POST", BASE, token=token, body={"token": loc["tokens"][0]["sToken"],
                                                           "displayName": f"site {n}"})
            self.assertEqual(r.status, 201, r)
            ids.append(r.json()["id"])
        deadline = time.time() + 60
        while time.time() < deadline:
            states = [t["lastSyncStatus"] for t in v.collect(BASE, token)]
            if all(s == "completed" for s in states):
                break
            time.sleep(0.2)
        self.assertTrue(all(s == "completed" for s in states), states)
        # An edit after the sync: lastModifiedDateTime differs from the sync time and must survive.
        r = v.request("PATCH", f"{BASE}/{ids[0]}", token=token, body={"displayName": "renamed"})
        self.assertEqual(r.status, 200, r)
        # A directory: a user, a device and its managed device, two groups (one nested) with
        # members in a known order, one object edited after its creation.
        made = {}
        for path, body in (("users", {"userPrincipalName": "ana@x.com", "displayName": "Ana"}),
                           ("devices", {"deviceId": str(uuid.uuid4()), "displayName": "ipad"}),
                           ("groups", {"displayName": "A", "mailNickname": "a", "mailEnabled": False,
                                       "securityEnabled": True}),
                           ("groups", {"displayName": "B", "mailNickname": "b", "mailEnabled": False,
                                       "securityEnabled": True})):
            r = v.request("POST", f"/v1.0/{path}", token=token, body=body)
            self.assertEqual(r.status, 201, r)
            made.setdefault(path, []).append(r.json())
        r = v.request("POST", "/v1.0/deviceManagement/managedDevices", token=token,
                      body={"serialNumber": "SER1", "azureADDeviceId": made["devices"][0]["deviceId"]})
        self.assertEqual(r.status, 201, r)
        a, b = made["groups"]
        for group, member in ((a, made["devices"][0]), (a, made["users"][0]), (b, a)):
            r = v.request("POST", f"/v1.0/groups/{group['id']}/members/$ref", token=token,
                          body={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{member['id']}"})
            self.assertEqual(r.status, 204, r)
        time.sleep(0.01)
        r = v.request("PATCH", f"/v1.0/users/{made['users'][0]['id']}", token=token, body={"jobTitle": "Head"})
        self.assertEqual(r.status, 204, r)
        # An app assigned to group A with device licensing: vppd hands SER1 a licence at
        # Apple (the reconcile job), which the copy must know it handed out.
        app = next(x for x in v.collect(APPS + "?$top=999", token)
                   if x["@odata.type"] == "#microsoft.graph.iosVppApp"
                   and x["licensingType"]["supportsDeviceLicensing"] and x["usedLicenseCount"] < x["totalLicenseCount"])
        r = v.request("POST", f"{APPS}/{app['id']}/assign", token=token, body={"mobileAppAssignments": [{
            "intent": "required", "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": a["id"]},
            "settings": {"@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings", "useDeviceLicensing": True}}]})
        self.assertEqual(r.status, 204, r)
        statuses = f"{APPS}/{app['id']}/deviceStatuses"
        deadline = time.time() + 30
        while time.time() < deadline and [s["installState"] for s in v.collect(statuses, token)] != ["installed"]:
            time.sleep(0.1)
        self.assertEqual([s["installState"] for s in v.collect(statuses, token)], ["installed"])
        # People: the same app assigned to a group of two without device licensing. vppd
        # registers both at Apple; Ben accepts the invitation and gets the licence, Cy waits.
        people = []
        for name in ("ben", "cy"):
            r = v.request("POST", "/v1.0/users", token=token, body={"userPrincipalName": f"{name}@x.com",
                                                                    "displayName": name.title()})
            self.assertEqual(r.status, 201, r)
            people.append(r.json()["id"])
        r = v.request("POST", "/v1.0/groups", token=token, body={"displayName": "P", "mailNickname": "p",
                                                                 "mailEnabled": False, "securityEnabled": True})
        self.assertEqual(r.status, 201, r)
        p = r.json()["id"]
        for member in people:
            r = v.request("POST", f"/v1.0/groups/{p}/members/$ref", token=token,
                          body={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{member}"})
            self.assertEqual(r.status, 204, r)
        r = v.request("POST", f"{APPS}/{app['id']}/assignments", token=token, body={
            "intent": "required", "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": p},
            "settings": {"@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings", "useDeviceLicensing": False}})
        self.assertEqual(r.status, 201, r)
        uid = self.sim.locations()[ids.index(app["vppTokenId"])]["uId"]  # ids follow the locations' order

        def invitation(user):
            r = v.request("GET", f"/v1.0/users/{user}/vppUserStatus", token=token)
            self.assertEqual(r.status, 200, r)
            where = r.json()["locations"]
            return where[0] if where and where[0].get("inviteCode") else None

        deadline = time.time() + 30
        while time.time() < deadline and not all(invitation(x) for x in people):
            time.sleep(0.1)
        self.assertTrue(all(invitation(x) for x in people), [invitation(x) for x in people])
        self.sim.control("POST", f"locations/{uid}/acceptInvitation", {"clientUserIds": [people[0]]})
        user_statuses = f"{APPS}/{app['id']}/userStatuses"
        deadline = time.time() + 30
        while time.time() < deadline and [s["installedDeviceCount"] for s in v.collect(user_statuses, token)] != [1, 0]:
            time.sleep(0.1)
        self.assertEqual([s["installedDeviceCount"] for s in v.collect(user_statuses, token)], [1, 0])
        self.assertEqual(invitation(people[1])["status"], "Registered")
        # A revoke: every licence of another app (of another token, no assignment), and the
        # resync it queues.
        revoked = next(x for x in v.collect(APPS + "?$top=999", token)
                       if x["@odata.type"] == "#microsoft.graph.iosVppApp" and x["vppTokenId"] != app["vppTokenId"]
                       and x["usedLicenseCount"] > 0)
        r = v.request("POST", f"{APPS}/{revoked['id']}/microsoft.graph.iosVppApp/revokeAllLicenses", token=token,
                      body={"notifyManagedDevices": False})
        self.assertEqual(r.status, 204, r)
        deadline = time.time() + 30
        while time.time() < deadline:
            results = v.request("GET", f"{APPS}/{revoked['id']}", token=token).json()["revokeLicenseActionResults"]
            states = [t["lastSyncStatus"] for t in v.collect(BASE, token)]
            if [x["actionState"] for x in results] == ["done"] and all(s == "completed" for s in states):
                break
            time.sleep(0.2)
        self.assertEqual([x["actionState"] for x in results], ["done"], results)
        self.assertEqual(v.request("GET", f"{APPS}/{revoked['id']}", token=token).json()["usedLicenseCount"], 0)
        before = self.snapshot(v, token)
        self.assertEqual([x["actionName"] for a in before[1] if a["id"] == revoked["id"]
                          for x in a["revokeLicenseActionResults"]], ["revokeAllLicenses"])
        self.assertEqual(before[3][people[0] + "/vppUserStatus"]["locations"][0]["status"], "Associated")
        self.assertGreater(sum(len(x) for x in before[2].values()), 1000)
        # vppd's identity at Apple: the mdmInfo its syncs wrote to every location.
        owners = {loc["uId"]: loc.get("mdmInfo") for loc in self.sim.locations()}
        self.assertTrue(all(m and m["id"].startswith("vppd-") for m in owners.values()), owners)
        v.stop()

        r = migrate("--from", f"sqlite:{v.data_dir}", "--to", self.target_url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("verified: counts equal", r.stdout)
        self.assertIn("source: 1 tenants, 3 tokens", r.stdout)
        # Licences handed out: SER1's and Ben's, and a released row for each licence the revoke took back.
        self.assertRegex(r.stdout, r"source: [^\n]*8 directory objects, 5 memberships, 2 app assignments, "
                                   r"[0-9]+ device licences handed out, [0-9]+ user licences handed out, "
                                   r"2 Apple users, 1 licence revokes \(installation id")
        self.assertEqual(psql(self.target_url, "SELECT count(*) FROM apple_users WHERE user_id <> ''"), "2")
        self.assertEqual(psql(self.target_url, "SELECT count(*) FROM app_revokes"), "1")
        self.assertEqual(psql(self.target_url, f"SELECT state FROM user_licenses WHERE client_user_id = '{people[0]}'"),
                         "granted")
        revoked = int(psql(self.target_url, "SELECT count(*) FROM user_licenses WHERE cause = 'revoked'"))
        self.assertEqual(int(psql(self.target_url, "SELECT count(*) FROM user_licenses")), revoked + 1)
        installation = psql(self.target_url, "SELECT value FROM vppd_settings WHERE name = 'installation_id'")
        self.assertEqual(installation, legacy_id)
        self.assertIn(f"installation id: {installation}\n", r.stdout)
        self.assertIn(f"(installation id {installation})", r.stdout.split("target:")[1])

        # The same data dir (keys) on the copy: Graph shows exactly the same.
        on_pg = Vppd("--apple-url", self.sim.url, "--sync-interval-seconds", "0", data_dir=v.data_dir,
                     database_url=self.target_url)
        try:
            on_pg.start()
            self.assertEqual(self.snapshot(on_pg, token), before)
            # The sToken moved sealed and opens on PostgreSQL: a sync works.
            r = on_pg.request("POST", f"{BASE}/{ids[1]}/syncLicenses", token=token)
            self.assertEqual(r.status, 200, r)
            deadline = time.time() + 30
            while time.time() < deadline:
                t = on_pg.request("GET", f"{BASE}/{ids[1]}", token=token).json()
                if t["lastSyncStatus"] != "inProgress":
                    break
                time.sleep(0.2)
            self.assertEqual(t["lastSyncStatus"], "completed", t)
            self.assertEqual(t["state"], "valid", t)
            # It synced as the same owner: had the installation id changed, the location
            # would be another MDM's (assignedToExternalMDM) and keep the old mdmInfo.
            for loc in self.sim.locations():
                self.assertEqual(loc.get("mdmInfo"), owners[loc["uId"]], loc["uId"])
            with open(os.path.join(v.data_dir, "installation-id")) as f:
                self.assertEqual(f.read(), legacy_id + "\n", "the file is only read")
        finally:
            on_pg.stop()

        # Copying again into a store that holds data is refused, and nothing changes.
        count = psql(self.target_url, "SELECT count(*) FROM vpp_tokens")
        r = migrate("--from", f"sqlite:{v.data_dir}", "--to", self.target_url)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("already holds 1 tenant", r.stderr)
        self.assertEqual(psql(self.target_url, "SELECT count(*) FROM vpp_tokens"), count)

        # What only the store keeps, read from the tables: a token's notification endpoint (the URL
        # key and both bearers' hashes, so Apple's deliveries keep being accepted) and a revoke still
        # open, whose job is queued again on the copy.
        with sqlite3.connect(os.path.join(v.data_dir, "vppd.db")) as db:
            tenant, tok = db.execute("SELECT tenant_id, id FROM vpp_tokens ORDER BY id LIMIT 1").fetchone()
            app_id, adam, pricing = db.execute("SELECT id, adam_id, pricing_param FROM mobile_apps WHERE token_id = ? "
                                               "AND product_type = 'App' ORDER BY id LIMIT 1", (tok,)).fetchone()
            db.execute("INSERT INTO notification_endpoints VALUES (?, ?, 'key-1', 'uid-1', 'hash-now', 'hash-before', "
                       "123, 456, 'reg', 789)", (tenant, tok))
            db.execute("INSERT INTO app_revokes VALUES (?, ?, 'rev-open', ?, ?, ?, 'revokeDeviceLicense', '', 'md-1', "
                       "'NOSUCH', 0, 0, 'pending', 'none', 0, 0, '', 1000, 1000, 99)",
                       (tenant, tok, app_id, adam, pricing))
        second = create_test_database()
        self.addCleanup(drop_test_database, second)
        r = migrate("--from", f"sqlite:{v.data_dir}", "--to", second)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(", 2 licence revokes (installation id", r.stdout)
        self.assertIn("1 token(s)' revokes queued again", r.stdout)
        self.assertEqual(psql(second, "SELECT location_key, apple_uid, auth_hash, previous_auth_hash, "
                                      "previous_valid_until, stoken_expiration, registration, rotated "
                                      f"FROM notification_endpoints WHERE token_id = '{tok}'"),
                         "key-1|uid-1|hash-now|hash-before|123|456|reg|789")
        self.assertEqual(psql(second, "SELECT action_state, start, serial_number FROM app_revokes "
                                      "WHERE id = 'rev-open'"), "pending|1000|NOSUCH")
        self.assertIn("revokeAppLicenses", psql(second, f"SELECT kind FROM sync_jobs WHERE token_id = '{tok}'").split())

    def test_bad_arguments_and_a_wrong_key_fail_clearly(self):
        v = self.source.start()
        token = v.dev_token()
        r = v.request("POST", BASE, token=token, body={"token": self.sim.locations()[0]["tokens"][0]["sToken"]})
        self.assertEqual(r.status, 201, r)
        v.stop()

        r = migrate("--from", "mysql://x", "--to", self.target_url)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--from must be sqlite:PATH or a postgresql:// URL", r.stderr)
        r = migrate("--from", "sqlite:/nonexistent/dir/vppd.db", "--to", self.target_url)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no sToken key", r.stderr)

        other_key = os.path.join(v.data_dir, "other.key")
        with open(other_key, "w") as f:
            f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
        os.chmod(other_key, 0o600)
        r = migrate("--from", f"sqlite:{v.data_dir}", "--to", self.target_url, "--secrets-key-file", other_key)
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("verified", r.stdout)
        self.assertEqual(psql(self.target_url, "SELECT count(*) FROM tenants"), "0",
                         "a copy that cannot read the source copies nothing")

        # A target that is already another deployment (its own installation id) is refused
        # before anything is copied: it would take the locations over at Apple.
        other_url = create_test_database()
        self.addCleanup(drop_test_database, other_url)
        other = Vppd("--apple-url", self.sim.url, "--sync-interval-seconds", "0", database_url=other_url)
        self.addCleanup(other.cleanup)
        other.start()
        other.stop()
        other_id = psql(other_url, "SELECT value FROM vppd_settings WHERE name = 'installation_id'")
        tokens = psql(other_url, "SELECT count(*) FROM vpp_tokens")
        r = migrate("--from", f"sqlite:{v.data_dir}", "--to", other_url)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"the target store already holds installation id {other_id}", r.stderr)
        self.assertEqual(psql(other_url, "SELECT value FROM vppd_settings WHERE name = 'installation_id'"), other_id)
        self.assertEqual(psql(other_url, "SELECT count(*) FROM vpp_tokens"), tokens)

        # An unreachable target: a clear error, no hang, and the URL's password is not repeated.
        r = migrate("--from", f"sqlite:{v.data_dir}", "--to", "postgresql://nobody:Hunter2Secret@127.0.0.1:1/none")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("vppd: store: cannot connect to PostgreSQL", r.stderr)
        self.assertNotIn("Hunter2Secret", r.stdout + r.stderr)
        # Nor does serve repeat it when it cannot reach its database.
        r = subprocess.run([VPPD, "serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", v.data_dir,
                            "--database-url", "postgresql://nobody:Hunter2Secret@127.0.0.1:1/none"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot connect to PostgreSQL", r.stderr)
        self.assertNotIn("Hunter2Secret", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
