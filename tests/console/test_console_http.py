"""The console as HTTP serves it: files at / and /assets/ with their types, caching and
Content-Security-Policy; /console/config.json; /console/dev-token only for a --dev
server's loopback callers. (The browser tests are test/*.test.mjs, run by ./run.)

Standard library only; binaries come from $VPPD_BIN_DIR. Needs a vppd built with the full
console (scripts/build with node and npm); the embedding step's fallback is tested by
running it on an empty web/dist.
"""
import base64
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ops"))
from harness import REPO, VPPD, Vppd, _read_announcement, request  # noqa: E402
from test_production import DiscoveryServer, RsaKey  # noqa: E402  (an OpenID provider on 127.0.0.1)

WRITE_SCOPE = "DeviceManagementServiceConfig.ReadWrite.All"


def raw_request(host, port, method, path, headers):
    """A request with exactly these headers (Host included), from whatever address reaches `host`."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def rsa_public_jwk():
    """A fresh RSA-2048 public key as a JWK (openssl for the key, its modulus in hex)."""
    key = subprocess.run(["openssl", "genrsa", "2048"], capture_output=True, check=True, timeout=60).stdout
    modulus = subprocess.run(["openssl", "rsa", "-noout", "-modulus"], input=key, capture_output=True, check=True,
                             timeout=60).stdout.decode().strip().split("=", 1)[1]
    n = base64.urlsafe_b64encode(bytes.fromhex(modulus)).rstrip(b"=").decode()
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "console-test", "n": n, "e": "AQAB"}


def non_loopback_address():
    """An IPv4 address of this machine that is not loopback, or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


class DevConsoleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.vppd = Vppd().start()
        cls.port = cls.vppd.port

    @classmethod
    def tearDownClass(cls):
        cls.vppd.cleanup()

    def get(self, path, headers=None, method="GET"):
        return request(self.port, method, path, headers=headers)

    def index_assets(self):
        body = self.get("/").body
        return re.findall(r'(?:src|href)="(/assets/[^"]+)"', body)

    def test_index_is_served_at_the_root_with_a_strict_policy(self):
        r = self.get("/")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], "text/html; charset=utf-8")
        self.assertEqual(r.headers["cache-control"], "no-cache")
        self.assertEqual(r.headers["x-content-type-options"], "nosniff")
        self.assertEqual(r.headers["referrer-policy"], "no-referrer")
        csp = r.headers["content-security-policy"]
        for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
                          "frame-ancestors 'none'", "base-uri 'none'"):
            self.assertIn(directive, csp)
        self.assertNotIn("unsafe", csp)
        self.assertIn("<div id=\"app\">", r.body, "the full console, not the fallback page")
        # Nothing inline that the policy would block.
        self.assertEqual(re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", r.body), [])
        self.assertNotIn(" style=", r.body)
        self.assertEqual(self.get("/index.html").body, r.body)

    def test_hashed_assets_are_cached_for_good_with_their_types(self):
        assets = self.index_assets()
        self.assertTrue(any(a.endswith(".js") for a in assets), assets)
        self.assertTrue(any(a.endswith(".css") for a in assets), assets)
        for path in assets:
            r = self.get(path)
            self.assertEqual(r.status, 200, path)
            self.assertEqual(r.headers["cache-control"], "public, max-age=31536000, immutable", path)
            expected = "text/javascript; charset=utf-8" if path.endswith(".js") else "text/css; charset=utf-8"
            self.assertEqual(r.headers["content-type"], expected, path)
            self.assertIn("content-security-policy", r.headers)
            self.assertGreater(len(r.body), 100)

    def test_an_unchanged_file_is_304(self):
        r = self.get("/")
        etag = r.headers["etag"]
        again = self.get("/", headers={"If-None-Match": etag})
        self.assertEqual(again.status, 304)
        self.assertEqual(again.body, "")
        self.assertEqual(self.get("/", headers={"If-None-Match": '"other"'}).status, 200)

    def test_head_and_unknown_files(self):
        r = self.get("/", method="HEAD")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, "")
        self.assertEqual(self.get("/assets/missing-0000.js").status, 404)
        self.assertEqual(self.get("/", method="POST").status, 405)
        self.assertIn("GET", self.get("/", method="DELETE").headers.get("allow", ""))

    def test_config_says_dev(self):
        r = self.get("/console/config.json")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"dev": True, "fullConsole": True, "oidc": None})
        self.assertEqual(r.headers["cache-control"], "no-store")

    def test_dev_token_signs_in_a_loopback_caller(self):
        r = self.get("/console/dev-token", method="POST")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["cache-control"], "no-store")
        body = r.json()
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["expires_in"], 8 * 3600)
        tokens = self.get("/beta/deviceAppManagement/vppTokens",
                          headers={"Authorization": "Bearer " + body["access_token"]})
        self.assertEqual(tokens.status, 200, tokens)
        # The Assignments page reads group names and people's vppUserStatus, and writes no directory
        # object: an unknown group and user are 404 (read allowed), creating a group is 403.
        bearer = {"Authorization": "Bearer " + body["access_token"]}
        for path in ("/beta/groups/00000000-0000-0000-0000-000000000001",
                     "/beta/users/00000000-0000-0000-0000-000000000001/vppUserStatus"):
            self.assertEqual(self.get(path, headers=bearer).status, 404, path)
        created = request(self.port, "POST", "/beta/groups", headers=bearer,
                          body={"displayName": "x", "mailEnabled": False, "mailNickname": "x", "securityEnabled": True})
        self.assertEqual(created.status, 403, created)
        self.assertEqual(self.get("/console/dev-token").status, 405, "POST only")

    def test_dev_token_refuses_what_is_not_this_machine(self):
        local = {"Host": f"127.0.0.1:{self.port}", "Content-Length": "0"}
        self.assertEqual(raw_request("127.0.0.1", self.port, "POST", "/console/dev-token", local)[0], 200)
        self.assertEqual(raw_request("127.0.0.1", self.port, "POST", "/console/dev-token",
                                     {**local, "Host": f"localhost:{self.port}"})[0], 200)
        cases = {
            "a name that is not this machine (DNS rebinding)": {**local, "Host": f"vppd.example.com:{self.port}"},
            "another site's page": {**local, "Origin": "http://evil.example"},
            "a proxied request": {**local, "X-Forwarded-For": "203.0.113.9"},
            "a Forwarded request": {**local, "Forwarded": "for=203.0.113.9"},
        }
        for why, headers in cases.items():
            status, _, body = raw_request("127.0.0.1", self.port, "POST", "/console/dev-token", headers)
            self.assertEqual(status, 403, why)
            self.assertEqual(json.loads(body)["error"]["code"], "Forbidden", why)
            self.assertNotIn("access_token", body, why)
        same_origin = {**local, "Origin": f"http://127.0.0.1:{self.port}"}
        self.assertEqual(raw_request("127.0.0.1", self.port, "POST", "/console/dev-token", same_origin)[0], 200)

    def test_dev_token_refuses_a_peer_that_is_not_loopback(self):
        address = non_loopback_address()
        if address is None:
            self.skipTest("this machine has no non-loopback IPv4 address")
        # A --dev server on every address (the harness's listen on loopback only), reached
        # through this machine's other address: the peer is not loopback.
        with tempfile.TemporaryDirectory() as data, open(os.devnull, "wb") as quiet:
            proc = subprocess.Popen([VPPD, "serve", "--dev", "--listen", "0.0.0.0:0", "--data-dir", data,
                                     "--threads", "1"], stdout=subprocess.PIPE, stderr=quiet)
            try:
                port, _ = _read_announcement(proc, "vppd listening on")
                headers = {"Host": f"127.0.0.1:{port}", "Content-Length": "0"}
                status, _, body = raw_request(address, port, "POST", "/console/dev-token", headers)
                self.assertEqual(status, 403, body)
                self.assertEqual(raw_request("127.0.0.1", port, "POST", "/console/dev-token", headers)[0], 200)
                # The files themselves are for anyone who reaches the server.
                self.assertEqual(raw_request(address, port, "GET", "/", {"Host": f"{address}:{port}"})[0], 200)
            finally:
                proc.terminate()
                proc.wait(15)
                proc.stdout.close()


class ProductionConsoleTest(unittest.TestCase):
    """Without --dev: no dev token; OIDC sign-in when an issuer and client id are set."""

    @classmethod
    def setUpClass(cls):
        # Entra's issuers with a key of our own: nothing is fetched from the network.
        fd, cls.jwks = tempfile.mkstemp(prefix="vppd-console-jwks-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": [rsa_public_jwk()]}, f)
        cls.vppd = Vppd("--console-oidc-issuer", "https://login.example.com/tenant-1/v2.0",
                        "--console-oidc-client-id", "console-app", "--console-oidc-scopes",
                        "openid api://vppd/DeviceManagementServiceConfig.ReadWrite.All",
                        "--auth-jwks-file", cls.jwks, dev=False).start()

    @classmethod
    def tearDownClass(cls):
        cls.vppd.cleanup()
        os.unlink(cls.jwks)

    def test_no_dev_token_route(self):
        r = request(self.vppd.port, "POST", "/console/dev-token")
        self.assertEqual(r.status, 404, r)
        self.assertNotIn("access_token", r.body)

    def test_config_names_the_issuer_and_the_policy_allows_it(self):
        r = request(self.vppd.port, "GET", "/console/config.json")
        self.assertEqual(r.json(), {"dev": False, "fullConsole": True, "oidc": {
            "issuer": "https://login.example.com/tenant-1/v2.0", "clientId": "console-app",
            "scopes": "openid api://vppd/DeviceManagementServiceConfig.ReadWrite.All"}})
        csp = request(self.vppd.port, "GET", "/").headers["content-security-policy"]
        self.assertIn("connect-src 'self' https://login.example.com;", csp)


class ConsoleIssuerDefaultTest(unittest.TestCase):
    """With --auth-issuer, the console signs in at that issuer unless told otherwise."""

    def test_the_console_uses_auth_issuer(self):
        with tempfile.TemporaryDirectory() as keys:
            idp = DiscoveryServer([RsaKey(keys, "console-default")])
            vppd = Vppd("--auth-issuer", idp.url, "--console-oidc-client-id", "console-app", dev=False)
            try:
                vppd.start()
                oidc = request(vppd.port, "GET", "/console/config.json").json()["oidc"]
                self.assertEqual(oidc["issuer"], idp.url)
                self.assertEqual(oidc["clientId"], "console-app")
                origin = idp.url.split("/realms/")[0]
                csp = request(vppd.port, "GET", "/").headers["content-security-policy"]
                self.assertIn(f"connect-src 'self' {origin};", csp)
            finally:
                vppd.cleanup()
                idp.close()


class EmbeddingTest(unittest.TestCase):
    """cmake/embed_console.cmake: the generated source, with and without a built console."""

    def generate(self, dist):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "console_assets.cc")
            subprocess.run(["cmake", f"-DDIST={dist}", f"-DFALLBACK={REPO}/web/fallback.html", f"-DOUTPUT={out}",
                            "-P", os.path.join(REPO, "cmake", "embed_console.cmake")], check=True, timeout=60)
            with open(out) as f:
                return f.read()

    def test_without_a_built_console_the_fallback_page_is_embedded(self):
        with tempfile.TemporaryDirectory() as empty:
            source = self.generate(empty)
        self.assertIn("bool IsFullConsole() { return false; }", source)
        self.assertEqual(re.findall(r'\{"(/[^"]*)", "([^"]*)"', source), [("/index.html", "text/html; charset=utf-8")])

    def test_a_built_console_is_embedded_file_by_file(self):
        with tempfile.TemporaryDirectory() as dist:
            os.makedirs(os.path.join(dist, "assets"))
            for name, text in {"index.html": "<!doctype html>", "assets/app-1a2b.js": "x" * 40,
                               "assets/app-1a2b.js.map": "{}"}.items():
                with open(os.path.join(dist, name), "w") as f:
                    f.write(text)
            source = self.generate(dist)
        self.assertIn("bool IsFullConsole() { return true; }", source)
        rows = re.findall(r'\{"(/[^"]*)", "([^"]*)", std::string_view\(kData\d+, (\d+)\), "(?:\\"|[^"])*", (\w+)\}',
                          source)
        self.assertEqual(rows, [("/assets/app-1a2b.js", "text/javascript; charset=utf-8", "40", "true"),
                                ("/index.html", "text/html; charset=utf-8", "15", "false")],
                         "source maps stay out; hashed assets are immutable")


if __name__ == "__main__":
    unittest.main()
