"""ETags on vppTokens (issue 14): `@odata.etag`, the ETag header and If-Match.

Every token vppd answers with carries `@odata.etag` = `W/"<row_version>"` (GET, list,
create, PATCH, in beta and v1.0); a single token's answer also has it as the `ETag`
header. PATCH and DELETE with If-Match write only when the token is still at a version
the header names (weak comparison: `W/"7"` and `"7"` are the same), `*` matching any
existing token; otherwise 412 PreconditionFailed in Graph's error envelope, and nothing
is written. An If-Match that is not an entity-tag list is 400 BadRequest "The If-Match
header contains an invalid value." (Graph's answer to one). A missing token is 404
whatever If-Match says. No If-Match: unconditional, as before.
"""
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import WRITE_SCOPE, Vppd, make_stoken  # noqa: E402

BASE = "/beta/deviceAppManagement/vppTokens"
ETAG = re.compile(r'^W/"([1-9][0-9]*)"$')
NO_APPLE = ("--apple-url", "http://127.0.0.1:9/mdm/v2", "--apple-max-attempts", "1",
            "--sync-interval-seconds", "0", "--throttle-window-seconds", "0")


class ETags(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.vppd = Vppd(*NO_APPLE).start()
        cls.token = cls.vppd.dev_token("--scopes", WRITE_SCOPE)

    @classmethod
    def tearDownClass(cls):
        cls.vppd.cleanup()

    def call(self, method, path, body=None, headers=None):
        return self.vppd.request(method, path, token=self.token, body=body, headers=headers)

    def create(self, name="etag"):
        r = self.call("POST", BASE, {"token": make_stoken(token=f"loc-{name}"), "displayName": name})
        self.assertEqual(r.status, 201, r)
        return r

    def wait_settled(self, item):
        """The tag after the create's own sync ran (it fails fast: no Apple), so no write comes later."""
        deadline = time.monotonic() + 20
        while True:
            r = self.call("GET", item)
            self.assertEqual(r.status, 200, r)
            if r.json()["lastSyncStatus"] != "inProgress" or time.monotonic() > deadline:
                return r.json()["@odata.etag"]
            time.sleep(0.05)

    def assertETag(self, r, version=None):
        tag = r.json()["@odata.etag"]
        m = ETAG.match(tag)
        self.assertIsNotNone(m, tag)
        self.assertEqual(r.headers.get("etag"), tag)
        if version is not None:
            self.assertEqual(int(m.group(1)), version)
        return tag

    def assertPreconditionFailed(self, r):
        self.assertEqual(r.status, 412, r)
        self.assertEqual(r.error_code(), "PreconditionFailed")
        self.assertIn("request-id", r.json()["error"]["innerError"])

    # --- the tags ------------------------------------------------------------

    def test_every_token_answer_carries_its_etag(self):
        created = self.create("carries")
        tag = self.assertETag(created)
        item = f"{BASE}/{created.json()['id']}"
        tag = self.wait_settled(item)
        got = self.call("GET", item)
        self.assertEqual(self.assertETag(got), tag)
        self.assertEqual(list(got.json())[:3], ["@odata.context", "@odata.type", "@odata.etag"])
        selected = self.call("GET", item + "?$select=displayName")
        self.assertEqual(selected.json()["@odata.etag"], tag, "control information, whatever $select says")
        v1 = self.call("GET", item.replace("/beta/", "/v1.0/"))
        self.assertEqual(self.assertETag(v1), tag)
        listed = self.call("GET", BASE)
        self.assertEqual(listed.status, 200, listed)
        mine = [t for t in listed.json()["value"] if t["id"] == created.json()["id"]]
        self.assertEqual(mine[0]["@odata.etag"], tag)
        self.assertNotIn("etag", listed.headers, "a collection has no ETag of its own")

        patched = self.call("PATCH", item, {"displayName": "renamed"})
        self.assertEqual(patched.status, 200, patched)
        new_tag = self.assertETag(patched)
        self.assertNotEqual(new_tag, tag, "a write moves the version")
        self.assertEqual(int(ETAG.match(new_tag).group(1)), int(ETAG.match(tag).group(1)) + 1)

    # --- If-Match ------------------------------------------------------------

    def test_patch_with_the_current_etag_writes_and_a_stale_one_is_412(self):
        item = f"{BASE}/{self.create('patch').json()['id']}"
        tag = self.wait_settled(item)
        first = self.call("PATCH", item, {"displayName": "first"}, {"If-Match": tag})
        self.assertEqual(first.status, 200, first)
        self.assertEqual(first.json()["displayName"], "first")
        stale = self.call("PATCH", item, {"displayName": "lost update"}, {"If-Match": tag})
        self.assertPreconditionFailed(stale)
        now = self.call("GET", item)
        self.assertEqual(now.json()["displayName"], "first", "nothing written on 412")
        self.assertEqual(now.json()["@odata.etag"], first.json()["@odata.etag"])
        # The strong form of the same tag, and a list that names the current one, match too.
        current = now.json()["@odata.etag"]
        strong = current[2:]
        second = self.call("PATCH", item, {"displayName": "second"}, {"If-Match": strong})
        self.assertEqual(second.status, 200, second)
        listed = self.call("PATCH", item, {"displayName": "third"},
                           {"If-Match": f'{tag}, "abc", {second.json()["@odata.etag"]}'})
        self.assertEqual(listed.status, 200, listed)
        self.assertEqual(self.call("GET", item).json()["displayName"], "third")

    def test_delete_with_a_stale_etag_is_412_and_deletes_nothing(self):
        item = f"{BASE}/{self.create('delete').json()['id']}"
        tag = self.wait_settled(item)
        self.assertEqual(self.call("PATCH", item, {"displayName": "moved on"}).status, 200)
        self.assertPreconditionFailed(self.call("DELETE", item, headers={"If-Match": tag}))
        now = self.call("GET", item)
        self.assertEqual(now.status, 200, "still there")
        deleted = self.call("DELETE", item, headers={"If-Match": now.json()["@odata.etag"]})
        self.assertEqual(deleted.status, 204, deleted)
        self.assertEqual(self.call("GET", item).status, 404)

    def test_star_matches_any_existing_token(self):
        item = f"{BASE}/{self.create('star').json()['id']}"
        self.wait_settled(item)
        r = self.call("PATCH", item, {"displayName": "starred"}, {"If-Match": "*"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.call("DELETE", item, headers={"If-Match": "*"}).status, 204)
        # Gone: 404 first, whatever the condition (RFC 9110 §13.2.1).
        self.assertEqual(self.call("PATCH", item, {"displayName": "x"}, {"If-Match": "*"}).status, 404)
        self.assertEqual(self.call("DELETE", item, headers={"If-Match": 'W/"1"'}).status, 404)

    def test_tags_vppd_never_writes_match_nothing(self):
        item = f"{BASE}/{self.create('foreign').json()['id']}"
        before = self.call("GET", item).json()
        for value in ('"abc"', 'W/""', '"0"', 'W/"99999"'):
            with self.subTest(value=value):
                self.assertPreconditionFailed(self.call("PATCH", item, {"displayName": "no"}, {"If-Match": value}))
                self.assertPreconditionFailed(self.call("DELETE", item, headers={"If-Match": value}))
        after = self.call("GET", item).json()
        self.assertNotEqual(after["displayName"], "no")
        self.assertEqual(after["id"], before["id"])

    def test_an_if_match_that_is_not_an_entity_tag_list_is_400(self):
        item = f"{BASE}/{self.create('invalid').json()['id']}"
        tag = self.wait_settled(item)
        for value in ("garbage", "7", 'W/7', '"7', "*, " + tag):
            with self.subTest(value=value):
                r = self.call("PATCH", item, {"displayName": "no"}, {"If-Match": value})
                self.assertEqual(r.status, 400, r)
                self.assertEqual(r.error_code(), "BadRequest")
                self.assertEqual(r.error_message(), "The If-Match header contains an invalid value.")
                self.assertEqual(self.call("DELETE", item, headers={"If-Match": value}).status, 400)
        now = self.call("GET", item).json()
        self.assertEqual(now["@odata.etag"], tag, "nothing written")

    def test_without_if_match_writes_are_unconditional(self):
        item = f"{BASE}/{self.create('plain').json()['id']}"
        self.wait_settled(item)
        self.assertEqual(self.call("PATCH", item, {"displayName": "a"}).status, 200)
        self.assertEqual(self.call("PATCH", item, {"displayName": "b"}).status, 200)
        self.assertEqual(self.call("DELETE", item).status, 204)


if __name__ == "__main__":
    unittest.main()
