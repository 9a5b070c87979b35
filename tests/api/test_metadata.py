"""Black-box tests of GET /{beta,v1.0}/$metadata: the CSDL document against what the server really emits.

A dev-mode vppd syncs a simulator location (iOS and macOS apps, user and device licenses), revokes
its licenses (so the token carries both action-result types), and every JSON object it then returns
for vppTokens, mobileApps, assignedLicenses and getLicensesForApp is checked against the document:
each property declared on the object's type (or a base) with a compatible EDM type, each enum value
a declared member, and for v1.0 nothing beta-only.
"""
import datetime
import os
import sys
import time
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, Vppd, WRITE_SCOPE, quote  # noqa: E402

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
EDMX = "{http://docs.oasis-open.org/odata/ns/edmx}"
NS = "microsoft.graph."
APPS_SCOPE = "DeviceManagementApps.ReadWrite.All"

# What exists in beta only (spec §6); v1.0's document must declare none of it.
BETA_ONLY_TOKEN_PROPERTIES = {"claimTokenManagementFromExternalMdm", "dataSharingConsentGranted", "displayName",
                              "locationName", "roleScopeTagIds", "tokenActionResults",
                              "appleDeviceAppDeliveryProtocolType"}
BETA_ONLY_TYPES = {"macOsVppApp", "iosVppAppAssignedLicense", "iosVppAppAssignedDeviceLicense",
                   "iosVppAppAssignedUserLicense", "macOsVppAppAssignedLicense", "vppTokenActionResult",
                   "vppTokenRevokeLicensesActionResult", "vppTokenLicenseSummary"}


class Csdl:
    """The parts of a CSDL document these tests need."""

    def __init__(self, text):
        self.root = ET.fromstring(text)
        schemas = self.root.findall(f"{EDMX}DataServices/{EDM}Schema")
        # Graph's, then (beta) vppd's own extensions: the untracked-licences report.
        assert [s.get("Namespace") for s in schemas] in (["microsoft.graph"], ["microsoft.graph", "vppd"]), schemas
        self.schema = schemas[0]
        self.vppd = schemas[1] if len(schemas) > 1 else None
        self.enums = {e.get("Name"): {m.get("Name"): int(m.get("Value")) for m in e.findall(f"{EDM}Member")}
                      for e in self.schema.findall(f"{EDM}EnumType")}
        self.types = {}
        for kind in ("EntityType", "ComplexType"):
            for t in self.schema.findall(f"{EDM}{kind}"):
                assert t.get("Name") not in self.types, t.get("Name")
                self.types[t.get("Name")] = {
                    "kind": kind, "base": t.get("BaseType"), "abstract": t.get("Abstract") == "true",
                    "key": [k.get("Name") for k in t.findall(f"{EDM}Key/{EDM}PropertyRef")],
                    "properties": {p.get("Name"): (p.get("Type"), p.get("Nullable") != "false")
                                   for p in t.findall(f"{EDM}Property")},
                    "navigation": {n.get("Name"): (n.get("Type"), n.get("ContainsTarget"))
                                   for n in t.findall(f"{EDM}NavigationProperty")},
                }
        self.operations = {}
        for kind in ("Action", "Function"):
            for op in self.schema.findall(f"{EDM}{kind}"):
                params = [(p.get("Name"), p.get("Type"), p.get("Nullable") != "false")
                          for p in op.findall(f"{EDM}Parameter")]
                ret = op.find(f"{EDM}ReturnType")
                self.operations[op.get("Name")] = (kind, op.get("IsBound"), params,
                                                   ret.get("Type") if ret is not None else None)
        self.container = self.schema.find(f"{EDM}EntityContainer")

    def type(self, qualified):
        assert qualified.startswith(NS), qualified
        return self.types.get(qualified[len(NS):])

    def chain(self, name):
        """The type and its bases, most derived first."""
        out = []
        while name:
            t = self.types[name]
            out.append(t)
            name = t["base"][len(NS):] if t["base"] else None
        return out

    def find_property(self, type_name, prop):
        for t in self.chain(type_name):
            if prop in t["properties"]:
                return t["properties"][prop]
        return None

    def all_properties(self, type_name):
        return {p for t in self.chain(type_name) for p in t["properties"]}


def parse_iso(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


class MetadataTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim("--assets", "10", "--assignments", "80", "--page-size", "25", "--locations", "1",
                      "--seed", "7", "--event-delay-ms", "50").start()
        cls.vppd = Vppd("--apple-url", cls.sim.url, "--sync-interval-seconds", "0", "--throttle-window-seconds", "0",
                        "--sync-event-poll-ms", "100").start()
        cls.token = cls.vppd.dev_token("--scopes", f"{WRITE_SCOPE} {APPS_SCOPE}")
        cls.docs = {}
        for version in ("beta", "v1.0"):
            r = cls.vppd.request("GET", f"/{version}/$metadata", token=cls.token)
            assert r.status == 200, r
            cls.docs[version] = Csdl(r.body)
        cls.collect()

    @classmethod
    def tearDownClass(cls):
        cls.vppd.cleanup()
        cls.sim.cleanup()

    @classmethod
    def call(cls, method, path, body=None):
        r = cls.vppd.request(method, path, token=cls.token, body=body)
        assert r.status in (200, 201, 204), (method, path, r)
        return r.json() if r.body else None

    @classmethod
    def all_pages(cls, path):
        out = []
        while path:
            body = cls.call("GET", path)
            out += body["value"]
            link = body.get("@odata.nextLink")
            path = link.split(str(cls.vppd.port), 1)[1] if link else None
        return out

    @classmethod
    def wait_token(cls, token_id, done, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            t = cls.call("GET", f"/beta/deviceAppManagement/vppTokens/{token_id}")
            if done(t):
                return t
            time.sleep(0.1)
        raise AssertionError(f"token {token_id} did not reach the expected state: {t}")

    @classmethod
    def collect(cls):
        """Real responses of every kind, keyed by version."""
        stoken = cls.sim.locations()[0]["tokens"][0]["sToken"]
        created = cls.call("POST", "/beta/deviceAppManagement/vppTokens",
                           {"token": stoken, "displayName": "Metadata", "roleScopeTagIds": ["0"]})
        tid = created["id"]
        cls.wait_token(tid, lambda t: t["lastSyncStatus"] != "inProgress")
        cls.apps = {v: cls.all_pages(f"/{v}/deviceAppManagement/mobileApps?$top=999") for v in ("beta", "v1.0")}
        cls.licenses = []
        for app in cls.apps["beta"]:
            kind = app["@odata.type"].split(".")[-1]
            cls.licenses += cls.all_pages(f"/beta/deviceAppManagement/mobileApps/{app['id']}/"
                                          f"microsoft.graph.{kind}/assignedLicenses?$top=999")
        cls.summaries = []
        for bundle in {a["bundleId"] for a in cls.apps["beta"] if a.get("bundleId")}:
            cls.summaries += cls.call("GET", "/beta/deviceAppManagement/vppTokens/getLicensesForApp"
                                             f"(bundleId='{quote(bundle)}')")["value"]
        # A revoke adds a vppTokenRevokeLicensesActionResult next to the sync results.
        cls.call("POST", f"/beta/deviceAppManagement/vppTokens/{tid}/revokeLicenses", {"notifyManagedDevices": False})
        cls.wait_token(tid, lambda t: any(e["actionName"] == "revokeLicenses" and e["actionState"] in ("done", "failed")
                                          for e in t["tokenActionResults"]) and t["lastSyncStatus"] != "inProgress")
        cls.tokens = {v: cls.call("GET", f"/{v}/deviceAppManagement/vppTokens")["value"] for v in ("beta", "v1.0")}
        cls.synced = {v: cls.call("POST", f"/{v}/deviceAppManagement/vppTokens/{tid}/syncLicenses")["value"]
                      for v in ("beta", "v1.0")}

    # --- checking JSON against the document ------------------------------

    def check_value(self, doc, edm_type, nullable, value, path):
        if value is None:
            self.assertTrue(nullable, f"{path} is null but {edm_type} is not nullable")
            return
        if edm_type.startswith("Collection("):
            self.assertIsInstance(value, list, path)
            for i, item in enumerate(value):
                self.check_value(doc, edm_type[len("Collection("):-1], False, item, f"{path}[{i}]")
            return
        if edm_type == "Edm.String":
            self.assertIsInstance(value, str, path)
        elif edm_type == "Edm.Boolean":
            self.assertIsInstance(value, bool, path)
        elif edm_type == "Edm.Int32":
            self.assertTrue(isinstance(value, int) and not isinstance(value, bool), path)
            self.assertTrue(-2**31 <= value < 2**31, f"{path} = {value} does not fit Edm.Int32")
        elif edm_type == "Edm.DateTimeOffset":
            self.assertIsInstance(value, str, path)
            parse_iso(value)
        elif edm_type.startswith(NS) and edm_type[len(NS):] in doc.enums:
            self.assertIn(value, doc.enums[edm_type[len(NS):]], f"{path}: '{value}' is not a member of {edm_type}")
        elif doc.type(edm_type) is not None:
            self.check_object(doc, value, edm_type, path, complete=True)
        else:
            self.fail(f"{path}: type {edm_type} is not declared")

    def check_object(self, doc, obj, declared, path, complete):
        """`complete`: every declared property of the type must be present too (full objects, no $select)."""
        self.assertIsInstance(obj, dict, path)
        name = obj.get("@odata.type", declared).lstrip("#")
        self.assertTrue(name.startswith(NS), path)
        name = name[len(NS):]
        self.assertIn(name, doc.types, f"{path}: @odata.type {name} is not declared")
        self.assertFalse(doc.types[name]["abstract"], f"{path}: an instance of abstract {name}")
        if declared:
            self.assertIn(declared[len(NS):], [t for t in self.names_of_chain(doc, name)],
                          f"{path}: {name} does not derive from {declared}")
        for key, value in obj.items():
            if key.startswith("@"):
                continue
            prop = doc.find_property(name, key)
            self.assertIsNotNone(prop, f"{path}: '{key}' is emitted but not declared on {name} or its bases")
            self.check_value(doc, prop[0], prop[1], value, f"{path}.{key}")
        if complete:
            # Graph lists mobileApps without largeIcon: written only when $select names it (test_fidelity.py).
            missing = doc.all_properties(name) - set(obj) - {"largeIcon"}
            self.assertEqual(missing, set(), f"{path}: declared on {name} but never emitted")

    @staticmethod
    def names_of_chain(doc, name):
        out = []
        while name:
            out.append(name)
            base = doc.types[name]["base"]
            name = base[len(NS):] if base else None
        return out

    # --- tests ---------------------------------------------------------------

    def test_documents_parse_and_have_the_expected_shape(self):
        for version, doc in self.docs.items():
            with self.subTest(version=version):
                self.assertEqual(doc.root.tag, f"{EDMX}Edmx")
                self.assertEqual(doc.root.get("Version"), "4.0")
                entity = doc.types["entity"]
                self.assertEqual(entity["key"], ["id"])
                self.assertEqual(entity["properties"]["id"], ("Edm.String", False))
                self.assertEqual(doc.types["vppToken"]["base"], "microsoft.graph.entity")
                self.assertTrue(doc.types["mobileApp"]["abstract"])
                self.assertEqual(doc.types["iosVppApp"]["base"], "microsoft.graph.mobileApp")
                dam = doc.types["deviceAppManagement"]
                self.assertEqual(dam["navigation"], {
                    "vppTokens": ("Collection(microsoft.graph.vppToken)", "true"),
                    "mobileApps": ("Collection(microsoft.graph.mobileApp)", "true"),
                    "managedEBooks": ("Collection(microsoft.graph.managedEBook)", "true")})
                singletons = [(s.get("Name"), s.get("Type")) for s in doc.container.findall(f"{EDM}Singleton")]
                self.assertEqual(singletons, [("deviceAppManagement", "microsoft.graph.deviceAppManagement"),
                                      ("deviceManagement", "microsoft.graph.deviceManagement")])
                # Every type a property, base or navigation names is declared.
                for tname, t in doc.types.items():
                    refs = [ty for ty, _ in t["properties"].values()] + [ty for ty, _ in t["navigation"].values()]
                    refs += [t["base"]] if t["base"] else []
                    for ref in refs:
                        inner = ref[len("Collection("):-1] if ref.startswith("Collection(") else ref
                        if inner.startswith("Edm."):
                            continue
                        self.assertTrue(inner[len(NS):] in doc.types or inner[len(NS):] in doc.enums,
                                        f"{tname} refers to undeclared {inner}")
        beta = self.docs["beta"]
        self.assertEqual(beta.types["macOsVppApp"]["base"], "microsoft.graph.mobileApp")
        self.assertEqual(beta.types["iosVppAppAssignedDeviceLicense"]["base"],
                         "microsoft.graph.iosVppAppAssignedLicense")
        self.assertEqual(beta.types["vppTokenRevokeLicensesActionResult"]["base"],
                         "microsoft.graph.vppTokenActionResult")
        self.assertEqual(beta.types["iosVppApp"]["navigation"]["assignedLicenses"],
                         ("Collection(microsoft.graph.iosVppAppAssignedLicense)", "true"))
        self.assertEqual(beta.types["vppToken"]["properties"]["tokenActionResults"],
                         ("Collection(microsoft.graph.vppTokenActionResult)", True))

    def test_enums_carry_the_documented_values(self):
        beta = self.docs["beta"]
        self.assertEqual(beta.enums["vppTokenState"], {"unknown": 0, "valid": 1, "expired": 2, "invalid": 3,
                                                       "assignedToExternalMDM": 4, "duplicateLocationId": 5})
        self.assertEqual(beta.enums["vppTokenSyncStatus"], {"none": 0, "inProgress": 1, "completed": 2, "failed": 3})
        self.assertEqual(beta.enums["vppTokenAccountType"], {"business": 0, "education": 1})
        self.assertEqual(beta.enums["vppTokenActionFailureReason"]["expiredApplePushNotificationCertificate"], 4)
        self.assertEqual(beta.enums["actionState"]["notSupported"], 6)
        self.assertNotIn("duplicateLocationId", self.docs["v1.0"].enums["vppTokenState"])

    def test_bound_operations(self):
        beta = self.docs["beta"]
        self.assertEqual(beta.operations["syncLicenses"],
                         ("Action", "true", [("bindingParameter", "microsoft.graph.vppToken", True)],
                          "microsoft.graph.vppToken"))
        self.assertEqual(beta.operations["revokeLicenses"],
                         ("Action", "true", [("bindingParameter", "microsoft.graph.vppToken", True),
                                             ("notifyManagedDevices", "Edm.Boolean", False),
                                             ("revokeUntrackedLicenses", "Edm.Boolean", True)], None))
        self.assertEqual(beta.operations["syncLicenseCounts"],
                         ("Action", "true", [("bindingParameter", "Collection(microsoft.graph.vppToken)", True)], None))
        self.assertEqual(beta.operations["getLicensesForApp"],
                         ("Function", "true", [("bindingParameter", "Collection(microsoft.graph.vppToken)", True),
                                               ("bundleId", "Edm.String", True)],
                          "Collection(microsoft.graph.vppTokenLicenseSummary)"))
        self.assertEqual(beta.operations["getExpiringVppTokenCount"],
                         ("Function", "true",
                          [("bindingParameter", "Collection(microsoft.graph.depOnboardingSetting)", True),
                           ("expiringBeforeDateTime", "Edm.String", True)], "Edm.Int32"))
        self.assertEqual(beta.types["deviceManagement"]["navigation"]["depOnboardingSettings"],
                         ("Collection(microsoft.graph.depOnboardingSetting)", "true"))
        # managedEBooks/{id}/assign (issue 17), in both versions.
        for doc in self.docs.values():
            self.assertEqual(doc.operations["assign"],
                             ("Action", "true", [("bindingParameter", "microsoft.graph.managedEBook", True),
                                                 ("managedEBookAssignments",
                                                  "Collection(microsoft.graph.managedEBookAssignment)", True)], None))
        self.assertEqual(set(self.docs["v1.0"].operations), {"syncLicenses", "assign"})

    def test_vppds_own_schema_declares_the_untracked_report(self):
        vppd = self.docs["beta"].vppd
        self.assertIsNotNone(vppd)
        self.assertIsNone(self.docs["v1.0"].vppd)
        terms = {t.get("Name"): (t.get("Type"), t.get("AppliesTo")) for t in vppd.findall(f"{EDM}Term")}
        self.assertEqual(terms, {"untrackedLicenseCount": ("Edm.Int64", "EntityType")})
        functions = [(f.get("Name"), f.get("IsBound"), [p.get("Type") for p in f.findall(f"{EDM}Parameter")],
                      f.find(f"{EDM}ReturnType").get("Type")) for f in vppd.findall(f"{EDM}Function")]
        returns = "Collection(vppd.untrackedLicense)"
        self.assertEqual(functions, [("untrackedLicenses", "true", ["microsoft.graph.mobileApp"], returns),
                                     ("untrackedLicenses", "true", ["microsoft.graph.managedEBook"], returns)])
        licence = vppd.find(f"{EDM}ComplexType[@Name='untrackedLicense']")
        self.assertEqual({p.get("Name"): p.get("Type") for p in licence.findall(f"{EDM}Property")},
                         {n: "Edm.String" for n in ("serialNumber", "clientUserId", "managedDeviceId", "deviceName",
                                                    "userId", "userPrincipalName")})
        # The binding types are Graph's, declared in the document.
        for name in ("mobileApp", "managedEBook"):
            self.assertIn(name, self.docs["beta"].types)

    def test_every_emitted_property_is_declared(self):
        self.assertTrue(any(a["@odata.type"].endswith("iosVppApp") for a in self.apps["beta"]))
        self.assertTrue(any(a["@odata.type"].endswith("macOsVppApp") for a in self.apps["beta"]))
        kinds = {lic["@odata.type"] for lic in self.licenses}
        self.assertTrue({"#microsoft.graph.iosVppAppAssignedDeviceLicense",
                         "#microsoft.graph.iosVppAppAssignedUserLicense"} <= kinds, kinds)
        self.assertTrue(any("macOsVppAppAssignedLicense" in k for k in kinds), kinds)
        self.assertGreater(len(self.summaries), 0)
        result_types = {e["@odata.type"] for e in self.tokens["beta"][0]["tokenActionResults"]}
        self.assertEqual(result_types, {"#microsoft.graph.vppTokenActionResult",
                                        "#microsoft.graph.vppTokenRevokeLicensesActionResult"})
        for version, doc in self.docs.items():
            with self.subTest(version=version):
                for i, t in enumerate(self.tokens[version]):
                    self.check_object(doc, t, "microsoft.graph.vppToken", f"{version} vppTokens[{i}]", complete=True)
                self.check_object(doc, self.synced[version], "microsoft.graph.vppToken",
                                  f"{version} syncLicenses", complete=True)
                for i, a in enumerate(self.apps[version]):
                    self.check_object(doc, a, "microsoft.graph.mobileApp", f"{version} mobileApps[{i}]", complete=True)
        beta = self.docs["beta"]
        for i, lic in enumerate(self.licenses):
            # Device properties appear on device licenses only; a user license leaves them out.
            self.check_object(beta, lic, "", f"assignedLicenses[{i}]", complete=False)
        for i, s in enumerate(self.summaries):
            self.check_object(beta, s, "microsoft.graph.vppTokenLicenseSummary", f"getLicensesForApp[{i}]",
                              complete=True)

    def test_v1_declares_nothing_beta_only(self):
        v1 = self.docs["v1.0"]
        self.assertEqual(BETA_ONLY_TYPES & set(v1.types), set())
        self.assertEqual(BETA_ONLY_TOKEN_PROPERTIES & v1.all_properties("vppToken"), set())
        self.assertEqual(v1.types["iosVppApp"]["navigation"], {})
        self.assertNotIn("vppTokenId", v1.all_properties("iosVppApp"))
        self.assertEqual(set(v1.types["vppLicensingType"]["properties"]),
                         {"supportsUserLicensing", "supportsDeviceLicensing"})
        # ...and what beta declares beyond v1.0 is exactly the beta-only set for vppToken.
        self.assertEqual(self.docs["beta"].all_properties("vppToken") - v1.all_properties("vppToken"),
                         BETA_ONLY_TOKEN_PROPERTIES)

    def test_served_without_a_bearer_token_and_to_any_scope(self):
        # Graph serves $metadata anonymously (test_graph_items.py has the rest).
        r = self.vppd.request("GET", "/beta/$metadata")
        self.assertEqual(r.status, 200, r)
        ET.fromstring(r.body)
        other = self.vppd.dev_token("--scopes", "User.Read")
        r = self.vppd.request("GET", "/v1.0/$metadata", token=other, headers={"Accept": "application/json"})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers["content-type"].startswith("application/xml"), r.headers)
        self.assertEqual(r.headers.get("odata-version"), "4.0")
        ET.fromstring(r.body)

    def test_other_methods_and_segments(self):
        r = self.vppd.request("POST", "/beta/$metadata", token=self.token, body={})
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.headers.get("allow"), "GET")
        r = self.vppd.request("GET", "/beta/$metadata/vppTokens", token=self.token)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.error_code(), "BadRequest")
        for segment in ("metadata", "vppTokens", "%24metadataX"):
            r = self.vppd.request("GET", f"/beta/{segment}", token=self.token)
            self.assertEqual(r.status, 400, (segment, r))
        # $batch is served (test_directory.py), to POST only.
        r = self.vppd.request("GET", "/beta/$batch", token=self.token)
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.headers.get("allow"), "POST")
        # The query string does not change the document.
        r = self.vppd.request("GET", "/beta/$metadata?$format=xml", token=self.token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(ET.tostring(ET.fromstring(r.body)), ET.tostring(self.docs["beta"].root))


if __name__ == "__main__":
    unittest.main()
