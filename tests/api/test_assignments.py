"""Black-box tests of app assignments (issue 15): mobileApps/{id}/assignments (list,
get, create, PATCH, delete), the assign action, isAssigned and $expand=assignments,
under /beta and /v1.0, and every bad input answered with a precise Graph 400 or 404
that writes nothing. The real vppd and apple-vpp-sim over sockets; SQLite, or
PostgreSQL when VPPD_TEST_DATABASE_URL is set.
"""
import os
import sqlite3
import sys
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import DEV_TENANT, WRITE_SCOPE, psql  # noqa: E402
from sim_vppd_case import APPS, BASE, SimVppdTestCase  # noqa: E402

GROUP = "#microsoft.graph.groupAssignmentTarget"
EXCLUDE = "#microsoft.graph.exclusionGroupAssignmentTarget"
ALL_DEVICES = "#microsoft.graph.allDevicesAssignmentTarget"
ALL_USERS = "#microsoft.graph.allLicensedUsersAssignmentTarget"
IOS_SETTINGS = "#microsoft.graph.iosVppAppAssignmentSettings"
MAC_SETTINGS = "#microsoft.graph.macOsVppAppAssignmentSettings"


def to_group(group_id, intent="required", settings=None, kind=GROUP):
    body = {"@odata.type": "#microsoft.graph.mobileAppAssignment", "intent": intent,
            "target": {"@odata.type": kind, "groupId": group_id}}
    if settings is not None:
        body["settings"] = settings
    return body


def to_all(kind=ALL_DEVICES, intent="available", settings=None):
    body = {"intent": intent, "target": {"@odata.type": kind}}
    if settings is not None:
        body["settings"] = settings
    return body


class Assignments(SimVppdTestCase):
    sim_args = ("--assets", "12", "--locations", "1", "--seed", "15")
    vppd_args = ("--sync-interval-seconds", "0", "--throttle-window-seconds", "0")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helper = cls("test_create_get_list_update_delete")
        _, cls.stoken = helper.new_location(assets=12, assignments=20)
        cls.token_id = helper.wait_sync(helper.add_token(cls.stoken)["id"])["id"]
        apps = cls.vppd.collect(APPS + "?$top=999", cls.token)
        device = [a for a in apps if a["licensingType"]["supportsDeviceLicensing"]]
        cls.ios = [a for a in device if a["@odata.type"] == "#microsoft.graph.iosVppApp"]
        cls.mac = [a for a in device if a["@odata.type"] == "#microsoft.graph.macOsVppApp"]
        assert len(cls.ios) >= 3 and cls.mac, [a["@odata.type"] for a in apps]
        cls.user_only = [a for a in apps if not a["licensingType"]["supportsDeviceLicensing"]]
        cls.groups = [helper.new_group(f"VPP {i}") for i in range(3)]

    def new_group(self, name):
        r = self.call("POST", "/v1.0/groups", {"displayName": name, "mailEnabled": False,
                                               "mailNickname": name.replace(" ", "").lower(),
                                               "securityEnabled": True, "groupTypes": []},
                      token=self.vppd.dev_token("--scopes", "Group.ReadWrite.All Directory.ReadWrite.All"))
        if r.status == 201:
            return r.json()["id"]
        # Until the directory's Graph surface is on this branch: the row, as its store writes it.
        gid = str(uuid.uuid4())
        self.sql("INSERT INTO groups (tenant_id, id, display_name, mail_enabled, security_enabled, group_types, "
                 f"created, last_modified) VALUES ('{DEV_TENANT}', '{gid}', '{name}', {{f}}, {{t}}, '[]', 0, 0)")
        return gid

    def sql(self, statement):
        """Runs a directory INSERT on the store (booleans written {t}/{f}), until the
        directory's Graph surface is on this branch."""
        if self.vppd.database_url:
            psql(self.vppd.database_url, statement.format(f="false", t="true"))
        else:
            with sqlite3.connect(os.path.join(self.vppd.data_dir, "vppd.db"), timeout=10) as db:
                db.execute(statement.format(f=0, t=1))

    def new_managed_device(self, serial, name, group=None, seq=0):
        """An Entra device, the managed device linked to it (azureADDeviceId), and
        the Entra device's membership of `group`: (managed device id, user id)."""
        entra, device_id, managed, user = (str(uuid.uuid4()) for _ in range(4))
        self.sql(f"INSERT INTO devices (tenant_id, id, device_id, display_name, account_enabled, created, "
                 f"last_modified) VALUES ('{DEV_TENANT}', '{entra}', '{device_id}', '{name}', {{t}}, 0, 0)")
        self.sql(f"INSERT INTO managed_devices (tenant_id, id, serial_number, device_name, azure_ad_device_id, "
                 f"user_id, created, last_modified) VALUES ('{DEV_TENANT}', '{managed}', '{serial}', '{name}', "
                 f"'{device_id}', '{user}', 0, 0)")
        if group:
            self.sql(f"INSERT INTO group_members (tenant_id, group_id, member_id, member_kind, seq, added) "
                     f"VALUES ('{DEV_TENANT}', '{group}', '{entra}', 'device', {seq}, 0)")
        return managed, user

    def assignments_of(self, app_id, version="beta"):
        r = self.call("GET", f"/{version}/deviceAppManagement/mobileApps/{app_id}/assignments")
        self.assertEqual(r.status, 200, r)
        return r.json()["value"]

    def assign(self, app_id, items, path=""):
        return self.call("POST", f"{APPS}/{app_id}{path}/assign", {"mobileAppAssignments": items})

    def create(self, app_id, body, version="beta"):
        return self.call("POST", f"/{version}/deviceAppManagement/mobileApps/{app_id}/assignments", body)

    def clear(self, app_id):
        r = self.assign(app_id, [])
        self.assertEqual(r.status, 204, r)

    def assert_error(self, r, status, code, *fragments):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.error_code(), code, r)
        for f in fragments:
            self.assertIn(f, r.error_message(), r)

    # --- the resource ---------------------------------------------------------------

    def test_create_get_list_update_delete(self):
        app = self.ios[0]["id"]
        self.clear(app)
        r = self.create(app, to_group(self.groups[0], settings={"@odata.type": IOS_SETTINGS,
                                                                "useDeviceLicensing": True}))
        self.assertEqual(r.status, 201, r)
        made = r.json()
        self.assertEqual(made["@odata.type"], "#microsoft.graph.mobileAppAssignment")
        self.assertEqual(made["intent"], "required")
        self.assertEqual(made["target"], {"@odata.type": GROUP, "groupId": self.groups[0],
                                          "deviceAndAppManagementAssignmentFilterId": None,
                                          "deviceAndAppManagementAssignmentFilterType": "none"})
        # Every documented property of the settings, null where not set.
        self.assertEqual(made["settings"], {"@odata.type": IOS_SETTINGS, "useDeviceLicensing": True,
                                            "vpnConfigurationId": None, "uninstallOnDeviceRemoval": None,
                                            "isRemovable": None, "preventManagedAppBackup": None,
                                            "preventAutoAppUpdate": None})
        self.assertEqual((made["source"], made["sourceId"]), ("direct", None))
        self.assertIn("/$metadata#deviceAppManagement/mobileApps('", made["@odata.context"])
        self.assertTrue(r.headers["location"].endswith(f"/beta/deviceAppManagement/mobileApps/{app}/assignments/"
                                                      f"{made['id']}"), r.headers)

        r = self.call("GET", f"{APPS}/{app}/assignments/{made['id']}")
        self.assertEqual(r.status, 200, r)
        got = r.json()
        del got["@odata.context"], made["@odata.context"]
        self.assertEqual(got, made)
        self.assertEqual([a["id"] for a in self.assignments_of(app)], [made["id"]])
        self.assertTrue(self.call("GET", f"{APPS}/{app}").json()["isAssigned"])

        r = self.call("PATCH", f"{APPS}/{app}/assignments/{made['id']}",
                      {"intent": "uninstall", "settings": {"@odata.type": IOS_SETTINGS, "useDeviceLicensing": True,
                                                           "isRemovable": False, "vpnConfigurationId": "vpn-1"}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["intent"], "uninstall")
        self.assertEqual(r.json()["target"]["groupId"], self.groups[0])  # not sent: kept
        self.assertEqual((r.json()["settings"]["isRemovable"], r.json()["settings"]["vpnConfigurationId"]),
                         (False, "vpn-1"))
        self.assertEqual(self.assignments_of(app)[0]["intent"], "uninstall")

        r = self.call("DELETE", f"{APPS}/{app}/assignments/{made['id']}")
        self.assertEqual(r.status, 204, r)
        self.assert_error(self.call("GET", f"{APPS}/{app}/assignments/{made['id']}"), 404, "ResourceNotFound", made["id"])
        self.assert_error(self.call("DELETE", f"{APPS}/{app}/assignments/{made['id']}"), 404, "ResourceNotFound")
        self.assertEqual(self.assignments_of(app), [])
        self.assertFalse(self.call("GET", f"{APPS}/{app}").json()["isAssigned"])

    def test_assign_replaces_the_apps_assignments(self):
        app = self.ios[1]["id"]
        self.clear(app)
        self.assertEqual(self.create(app, to_all(ALL_USERS)).status, 201)
        r = self.assign(app, [to_group(self.groups[0], settings={"@odata.type": IOS_SETTINGS,
                                                                 "useDeviceLicensing": True}),
                              to_group(self.groups[1], kind=EXCLUDE, intent="required"),
                              # '#' is optional in @odata.type, as Graph's examples show
                              to_all("microsoft.graph.allDevicesAssignmentTarget", intent="available")])
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, "")
        got = self.assignments_of(app)
        self.assertEqual(sorted((a["target"]["@odata.type"], a["target"].get("groupId")) for a in got),
                         sorted([(GROUP, self.groups[0]), (EXCLUDE, self.groups[1]), (ALL_DEVICES, None)]))
        # Through the SDKs' cast segment too; an empty list removes them all.
        r = self.assign(app, [to_all()], path="/microsoft.graph.iosVppApp")
        self.assertEqual(r.status, 204, r)
        self.assertEqual([a["target"]["@odata.type"] for a in self.assignments_of(app)], [ALL_DEVICES])
        r = self.call("POST", f"{APPS}/{app}/microsoft.graph.assign", {"mobileAppAssignments": []})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.assignments_of(app), [])

    def test_macos_apps_take_macos_settings(self):
        app = self.mac[0]["id"]
        self.clear(app)
        r = self.create(app, to_group(self.groups[0], settings={"@odata.type": MAC_SETTINGS,
                                                                "useDeviceLicensing": True,
                                                                "preventAutoAppUpdate": True}))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["settings"], {"@odata.type": MAC_SETTINGS, "useDeviceLicensing": True,
                                                "uninstallOnDeviceRemoval": None, "preventManagedAppBackup": None,
                                                "preventAutoAppUpdate": True})
        # No settings at all is allowed: null.
        r = self.create(app, to_all(ALL_USERS))
        self.assertEqual(r.status, 201, r)
        self.assertIsNone(r.json()["settings"])
        self.clear(app)

    def test_expand_assignments_and_is_assigned(self):
        app = self.ios[2]["id"]
        self.assertEqual(self.assign(app, [to_group(self.groups[2]), to_all()]).status, 204)
        listed = {a["id"]: a for a in self.vppd.collect(APPS + "?$top=999&$expand=assignments", self.token)}
        self.assertEqual(sorted(a["target"]["@odata.type"] for a in listed[app]["assignments"]),
                         sorted([GROUP, ALL_DEVICES]))
        self.assertTrue(listed[app]["isAssigned"])
        self.assertEqual(listed[app]["assignments"], self.assignments_of(app))
        for a in listed.values():
            self.assertEqual(a["isAssigned"], bool(a["assignments"]), a["id"])
        # Without $expand: isAssigned, no assignments.
        plain = {a["id"]: a for a in self.vppd.collect(APPS + "?$top=999", self.token)}
        self.assertTrue(plain[app]["isAssigned"])
        self.assertNotIn("assignments", plain[app])
        # On one app (which used to be a 400), with $select, and on its cast.
        for path in (f"{APPS}/{app}?$expand=assignments", f"{APPS}/{app}/microsoft.graph.iosVppApp?$expand=*"):
            r = self.call("GET", path)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["assignments"], self.assignments_of(app), path)
        r = self.call("GET", f"{APPS}/{app}?$select=displayName&$expand=assignments")
        self.assertEqual(set(r.json()) - {"@odata.context"}, {"@odata.type", "id", "displayName", "assignments"})
        for bad in ("$expand=categories", "$expand=assignments($select=id)", "$top=1"):
            self.assert_error(self.call("GET", f"{APPS}/{app}?{bad}"), 400, "BadRequest")
        self.clear(app)

    def test_v1_has_the_same_surface_without_source(self):
        app = self.ios[0]["id"]
        self.clear(app)
        r = self.create(app, to_group(self.groups[0]), version="v1.0")
        self.assertEqual(r.status, 201, r)
        self.assertNotIn("source", r.json())
        self.assertIn("/v1.0/$metadata#", r.json()["@odata.context"])
        self.assertEqual([a["id"] for a in self.assignments_of(app, "v1.0")], [r.json()["id"]])
        r = self.call("POST", f"/v1.0/deviceAppManagement/mobileApps/{app}/assign", {"mobileAppAssignments": []})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.assignments_of(app, "v1.0"), [])

    def test_assignments_survive_a_sync(self):
        app = self.ios[0]["id"]
        self.assertEqual(self.assign(app, [to_group(self.groups[1])]).status, 204)
        before = self.assignments_of(app)
        r = self.call("POST", f"{BASE}/{self.token_id}/syncLicenses")
        self.assertEqual(r.status, 200, r)
        self.wait_sync(self.token_id)
        self.assertEqual(self.assignments_of(app), before)
        self.clear(app)

    # --- where licences stand -------------------------------------------------------

    def apps_with_device_licences(self, at_least):
        """The iOS apps (of the ones that take device licences) for which Apple holds at
        least `at_least` device licences (the simulator's truth): [(app, sorted serials)]."""
        by_adam = {}
        for a in self.sim.walk("assignments", self.stoken, "assignments"):
            if a.get("serialNumber"):
                by_adam.setdefault(a["adamId"], []).append(a["serialNumber"])
        found = [(app, sorted(by_adam.get(app["appStoreUrl"].rsplit("id", 1)[1], []))) for app in self.ios]
        found = [(app, held) for app, held in found if len(held) >= at_least]
        self.assertTrue(found, "the location has device licences of an iOS app")
        return found

    def test_device_statuses_list_the_targeted_devices(self):
        # A serial Apple holds a licence of this app for, and ones it does not.
        app, held = self.apps_with_device_licences(1)[0]
        included, excluded = self.new_group("Statuses in"), self.new_group("Statuses out")
        first, _ = self.new_managed_device(held[0], "iPad held", included, seq=1000)
        second, _ = self.new_managed_device("SIM-NOT-HELD-1", "iPad new", included, seq=1001)
        third, _ = self.new_managed_device("SIM-NOT-HELD-2", "iPad excluded", included, seq=1002)
        self.sql(f"INSERT INTO group_members (tenant_id, group_id, member_id, member_kind, seq, added) "
                 f"SELECT tenant_id, '{excluded}', member_id, 'device', 1003, 0 FROM group_members "
                 f"WHERE group_id = '{included}' AND seq = 1002")
        path = f"{APPS}/{app['id']}/deviceStatuses"
        # No assignment, or none with device licensing: no device is targeted.
        self.clear(app["id"])
        self.assertEqual(self.call("GET", path).json()["value"], [])
        self.assertEqual(self.assign(app["id"], [to_group(included)]).status, 204)
        self.assertEqual(self.call("GET", path).json()["value"], [])

        device = {"@odata.type": IOS_SETTINGS, "useDeviceLicensing": True}
        self.assertEqual(self.assign(app["id"], [to_group(included, settings=device),
                                                 to_group(excluded, kind=EXCLUDE)]).status, 204)
        r = self.call("GET", path)
        self.assertEqual(r.status, 200, r)
        got = r.json()["value"]
        self.assertEqual([s["deviceId"] for s in got], [first, second])  # earliest membership first, minus excluded
        self.assertEqual(got[0]["@odata.type"], "#microsoft.graph.mobileAppInstallStatus")
        # Apple held the first serial before vppd ran: installed. The second's state is the
        # reconcile job's, which runs here against the simulator (tests/sync/test_reconcile.py
        # checks the states exactly, where the licences are known).
        self.assertEqual((got[0]["deviceName"], got[0]["installState"], got[0]["errorCode"]),
                         ("iPad held", "installed", 0))
        self.assertIn(got[1]["installState"], ("unknown", "pendingInstall", "installed", "failed"))
        self.assertEqual(got[1]["mobileAppInstallStatusValue"], got[1]["installState"])
        for prop in ("id", "lastSyncDateTime", "installStateDetail", "userName", "userPrincipalName", "osVersion",
                     "osDescription", "displayVersion"):
            self.assertIn(prop, got[0])
        # Paged as Graph pages.
        r = self.call("GET", path + "?$top=1")
        self.assertEqual(len(r.json()["value"]), 1)
        # uninstall wants no licence; all devices with device licensing targets every managed device.
        self.assertEqual(self.assign(app["id"], [to_group(included, intent="uninstall", settings=device)]).status,
                         204)
        self.assertEqual(self.call("GET", path).json()["value"], [])
        self.assertEqual(self.assign(app["id"], [to_all(settings=device)]).status, 204)
        ids = [s["deviceId"] for s in self.call("GET", path).json()["value"]]
        self.assertTrue({first, second, third} <= set(ids), ids)
        self.clear(app["id"])
        self.assert_error(self.call("GET", f"{APPS}/00000000-0000-0000-0000-00000000dead/deviceStatuses"), 404,
                          "ResourceNotFound")
        self.assertEqual(self.call("GET", f"/v1.0/deviceAppManagement/mobileApps/{app['id']}/deviceStatuses").status,
                         400)  # beta only, as Graph has it

    # --- bad input: precise errors, nothing written --------------------------------

    def test_bad_bodies_are_400s_naming_the_property(self):
        app = self.ios[0]["id"]
        self.assertEqual(self.assign(app, [to_all(ALL_USERS)]).status, 204)
        before = self.assignments_of(app)
        group = self.groups[0]
        cases = [
            ({"target": {"@odata.type": ALL_DEVICES}}, "intent", "'intent' is required"),
            ({**to_all(), "intent": "install"}, "intent", "'install' is not an installIntent"),
            ({**to_all(), "intent": 1}, "intent", "must be a string"),
            ({"intent": "required"}, "target", "'target' is required"),
            ({"intent": "required", "target": "all"}, "target", "must be an object"),
            ({"intent": "required", "target": {"groupId": group}}, "target", "needs an '@odata.type'"),
            ({"intent": "required", "target": {"@odata.type": "#microsoft.graph.configurationManagerCollection"
                                                              "AssignmentTarget"}},
             "target", "is not supported"),
            ({"intent": "required", "target": {"@odata.type": GROUP}}, "target.groupId", "needs a groupId"),
            ({"intent": "required", "target": {"@odata.type": GROUP, "groupId": 7}}, "target.groupId",
             "must be a string"),
            ({"intent": "required", "target": {"@odata.type": ALL_DEVICES, "groupId": group}}, "target.groupId",
             "has no groupId"),
            ({"intent": "required", "target": {"@odata.type": ALL_DEVICES, "colour": "red"}}, "target.colour",
             "does not exist"),
            ({"intent": "required", "target": {"@odata.type": ALL_DEVICES,
                                               "deviceAndAppManagementAssignmentFilterId": "f-1"}},
             "target.deviceAndAppManagementAssignmentFilterId", "filters are not supported"),
            ({"intent": "required", "target": {"@odata.type": ALL_DEVICES,
                                               "deviceAndAppManagementAssignmentFilterType": "include"}},
             "target.deviceAndAppManagementAssignmentFilterType", "filters are not supported"),
            (to_all(settings={"@odata.type": MAC_SETTINGS}), "settings",
             "take settings of type iosVppAppAssignmentSettings, not macOsVppAppAssignmentSettings"),
            (to_all(settings={"@odata.type": "#microsoft.graph.iosLobAppAssignmentSettings"}), "settings",
             "is not one vppd knows"),
            (to_all(settings={"useDeviceLicensing": True}), "settings", "need an '@odata.type'"),
            (to_all(settings={"@odata.type": IOS_SETTINGS, "useDeviceLicensing": "yes"}),
             "settings.useDeviceLicensing", "must be true or false"),
            (to_all(settings={"@odata.type": IOS_SETTINGS, "isRemovable": 0}), "settings.isRemovable",
             "must be true, false or null"),
            (to_all(settings={"@odata.type": IOS_SETTINGS, "autoUpdate": True}), "settings.autoUpdate",
             "does not exist"),
            (to_all(settings=[]), "settings", "must be an object"),
            ({**to_all(), "@odata.type": "#microsoft.graph.managedEBookAssignment"}, "@odata.type",
             "must be '#microsoft.graph.mobileAppAssignment'"),
            ({**to_all(), "installIntent": "required"}, "installIntent", "does not exist"),
        ]
        for body, target, fragment in cases:
            with self.subTest(body=body):
                r = self.create(app, body)
                self.assert_error(r, 400, "BadRequest", fragment)
                self.assertEqual(r.json()["error"].get("target", target), target, r)
                # The same body inside assign names its place in the list.
                r = self.assign(app, [to_all(ALL_USERS), body])
                self.assertEqual(r.status, 400, r)
                self.assertIn(fragment, r.error_message(), r)
        self.assertEqual(self.assignments_of(app), before)
        # A macOS app's settings have no iOS-only properties.
        mac = self.mac[0]["id"]
        for prop, value in (("isRemovable", True), ("vpnConfigurationId", "v")):
            r = self.create(mac, to_all(settings={"@odata.type": MAC_SETTINGS, prop: value}))
            self.assert_error(r, 400, "BadRequest", f"has no property '{prop}'")
        self.assertEqual(self.assignments_of(mac), [])
        self.clear(app)

    def test_unknown_group_app_and_assignment_are_404s_naming_them(self):
        app = self.ios[0]["id"]
        self.clear(app)
        missing = "00000000-0000-0000-0000-00000000dead"
        for kind in (GROUP, EXCLUDE):
            r = self.create(app, to_group(missing, kind=kind))
            self.assert_error(r, 404, "ResourceNotFound", f"The group '{missing}' was not found")
        r = self.assign(app, [to_group(self.groups[0]), to_group(missing)])
        self.assert_error(r, 404, "ResourceNotFound", missing)
        self.assertEqual(self.assignments_of(app), [])
        for path in (f"{APPS}/{missing}/assignments", f"{APPS}/{missing}/assign",
                     f"{APPS}/{missing}/assignments/{missing}"):
            with self.subTest(path=path):
                method = "GET" if path.endswith(missing) or path.endswith("assignments") else "POST"
                body = {"mobileAppAssignments": []} if path.endswith("assign") else None
                r = self.call(method, path, body)
                self.assert_error(r, 404, "ResourceNotFound", missing)
        self.assert_error(self.create(missing, to_all()), 404, "ResourceNotFound", f"The mobileApp '{missing}'")
        # An assignment of another app is not found under this one.
        r = self.create(self.ios[1]["id"], to_all(ALL_USERS))
        self.assertEqual(r.status, 201, r)
        other = r.json()["id"]
        self.assert_error(self.call("GET", f"{APPS}/{app}/assignments/{other}"), 404, "ResourceNotFound", other)
        self.assert_error(self.call("PATCH", f"{APPS}/{app}/assignments/{other}", {"intent": "available"}), 404,
                          "ResourceNotFound")
        self.assert_error(self.call("DELETE", f"{APPS}/{app}/assignments/{other}"), 404, "ResourceNotFound")
        self.clear(self.ios[1]["id"])

    def test_non_vpp_apps_and_books_cannot_be_assigned(self):
        app = self.ios[0]["id"]
        # A cast to a type vppd holds no apps of (a store app) is a segment no route takes;
        # to the other platform's VPP type, the app is not found as one.
        r = self.assign(app, [], path="/microsoft.graph.iosStoreApp")
        self.assert_error(r, 400, "BadRequest", "Resource not found for the segment 'microsoft.graph.iosStoreApp'")
        r = self.assign(app, [], path="/microsoft.graph.macOsVppApp")
        self.assert_error(r, 404, "ResourceNotFound", "is not a microsoft.graph.macOsVppApp")
        # Books are not mobileApps, and their assignment type is not a mobileAppAssignment.
        r = self.call("POST", "/beta/deviceAppManagement/managedEBooks/x/assign", {"managedEBookAssignments": []})
        self.assert_error(r, 404, "ResourceNotFound", "managedEBook 'x'")
        r = self.create(app, {**to_all(), "@odata.type": "#microsoft.graph.iosVppEBookAssignment"})
        self.assert_error(r, 400, "BadRequest", "mobileAppAssignment")
        # A VPP app Apple does not let be licensed to devices.
        if self.user_only:
            r = self.create(self.user_only[0]["id"], to_all(settings={"@odata.type": IOS_SETTINGS
                                                                      if self.user_only[0]["@odata.type"].endswith(
                                                                          "iosVppApp") else MAC_SETTINGS,
                                                                      "useDeviceLicensing": True}))
            self.assert_error(r, 400, "BadRequest", "cannot be licensed to devices")

    def test_one_assignment_per_target(self):
        app = self.ios[0]["id"]
        self.clear(app)
        self.assertEqual(self.create(app, to_group(self.groups[0])).status, 201)
        r = self.create(app, to_group(self.groups[0], kind=EXCLUDE))
        self.assert_error(r, 400, "BadRequest", f"already assigned to the group '{self.groups[0]}'")
        r = self.assign(app, [to_all(), to_all(intent="required")])
        self.assert_error(r, 400, "BadRequest", "all devices twice")
        self.assertEqual(len(self.assignments_of(app)), 1)
        # PATCH onto another assignment's target is refused too.
        second = self.create(app, to_group(self.groups[1])).json()["id"]
        r = self.call("PATCH", f"{APPS}/{app}/assignments/{second}",
                      {"target": {"@odata.type": GROUP, "groupId": self.groups[0]}})
        self.assert_error(r, 400, "BadRequest", "already assigned")
        self.clear(app)

    def test_assign_body_is_checked(self):
        app = self.ios[0]["id"]
        for body, fragment in (({}, "'mobileAppAssignments' is required"),
                               ({"mobileAppAssignments": {}}, "must be an array"),
                               ({"mobileAppAssignments": [1]}, "mobileAppAssignments[0]"),
                               ({"mobileAppAssignments": [], "notify": True}, "not a parameter of assign")):
            with self.subTest(body=body):
                self.assert_error(self.call("POST", f"{APPS}/{app}/assign", body), 400, "BadRequest", fragment)

    # --- permissions ------------------------------------------------------------------

    def test_permissions(self):
        app = self.ios[0]["id"]
        read = self.vppd.dev_token("--scopes", "DeviceManagementApps.Read.All")
        self.assertEqual(self.call("GET", f"{APPS}/{app}/assignments", token=read).status, 200)
        for method, path, body in (("POST", f"{APPS}/{app}/assignments", to_all()),
                                   ("POST", f"{APPS}/{app}/assign", {"mobileAppAssignments": []})):
            r = self.call(method, path, body, token=read)
            self.assert_error(r, 403, "Forbidden", "DeviceManagementApps.ReadWrite.All")
        # The vppToken permission alone does not reach apps.
        config = self.vppd.dev_token("--scopes", WRITE_SCOPE)
        self.assertEqual(self.call("GET", f"{APPS}/{app}/assignments", token=config).status, 403)


if __name__ == "__main__":
    unittest.main()
