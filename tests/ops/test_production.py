"""From demo to production, black-box: another OpenID Connect issuer, the alert gauges, `vppd backup`.

- a foreign issuer (its own RSA key pair, made here with openssl) served by a discovery
  endpoint this test runs (http.server on 127.0.0.1): vppd started with --auth-issuer
  reads /.well-known/openid-configuration, then jwks_uri, and accepts that issuer's
  tokens with Keycloak's claims (scope, realm_access.roles, a nested tenant) and no
  others; a discovery document naming another issuer, or none, stops vppd from starting;
- /metrics counts tokens expiring within 30 days, tokens whose last sync failed, and apps
  over the usage threshold or out of licences, as the simulator's own counts say;
- `vppd backup` while vppd syncs, restored into another data dir, serves the same tokens
  and apps; refused for PostgreSQL (pointing to pg_dump), for an existing file, without a store.

Runs the real binaries (tests/lib/harness.py). About 40 s.
"""
import base64
import datetime
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import (VPPD, WRITE_SCOPE, Vppd, expected_apps, make_stoken, request)  # noqa: E402
from sim_vppd_case import APPS, APPS_SCOPE, BASE, SimVppdTestCase  # noqa: E402

TENANT = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
AUDIENCE = "api://vppd-test"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class RsaKey:
    """An RSA-2048 key pair made with the openssl command; signs RS256 JWTs."""

    def __init__(self, directory, kid):
        self.kid = kid
        self.path = os.path.join(directory, kid + ".pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                        self.path], check=True, capture_output=True)
        modulus = subprocess.run(["openssl", "rsa", "-in", self.path, "-noout", "-modulus"], check=True,
                                 capture_output=True, text=True).stdout.strip().split("=", 1)[1]
        self.n = bytes.fromhex(modulus)

    def jwk(self):
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": b64url(self.n),
                "e": b64url((65537).to_bytes(3, "big"))}

    def sign(self, claims, kid=None):
        header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid or self.kid}).encode())
        payload = b64url(json.dumps(claims).encode())
        signing_input = f"{header}.{payload}".encode()
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.path], input=signing_input,
                                   check=True, capture_output=True).stdout
        return f"{header}.{payload}.{b64url(signature)}"


class DiscoveryServer:
    """An OpenID provider's two documents on 127.0.0.1: the discovery document of
    /realms/vppd (naming `issuer`, or the server's own URL) and the key set."""

    def __init__(self, keys, issuer=None):
        outer = self
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                if self.path == "/realms/vppd/.well-known/openid-configuration":
                    body = {"issuer": outer.issuer_named, "jwks_uri": outer.url + "/protocol/openid-connect/certs",
                            "id_token_signing_alg_values_supported": ["RS256"]}
                elif self.path == "/realms/vppd/protocol/openid-connect/certs":
                    body = {"keys": [k.jwk() for k in keys]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/realms/vppd"
        self.issuer_named = issuer or self.url
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


KEYCLOAK_CLAIMS = ("--auth-scopes-claim", "scope", "--auth-roles-claim", "realm_access.roles",
                   "--auth-tenant-claim", "org.tenant")


class ForeignIssuer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="vppd-oidc-")
        cls.key = RsaKey(cls.dir, "foreign-1")
        cls.stranger = RsaKey(cls.dir, "stranger")  # a key no one publishes
        cls.idp = DiscoveryServer([cls.key])
        cls.vppd = Vppd("--auth-issuer", cls.idp.url, "--auth-audience", AUDIENCE, "--auth-permission-profile",
                        "current", *KEYCLOAK_CLAIMS, dev=False).start()
        cls.vppd.cli("tenant", "add", TENANT, "--name", "Foreign", "--data-dir", cls.vppd.data_dir)

    @classmethod
    def tearDownClass(cls):
        cls.vppd.cleanup()
        cls.idp.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def claims(self, **override):
        now = int(time.time())
        c = {"iss": self.idp.url, "aud": AUDIENCE, "sub": "u-1", "azp": "vppd-console", "iat": now, "exp": now + 600,
             "scope": f"openid profile {WRITE_SCOPE}", "org": {"tenant": TENANT}}
        c.update(override)
        return {k: v for k, v in c.items() if v is not None}

    def get(self, token):
        return self.vppd.request("GET", BASE, token=token)

    def test_discovery_then_keys_were_read(self):
        self.assertEqual(self.idp.requests[:2], ["/realms/vppd/.well-known/openid-configuration",
                                                 "/realms/vppd/protocol/openid-connect/certs"])

    def test_its_tokens_are_accepted_with_its_claims(self):
        r = self.get(self.key.sign(self.claims()))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["value"], [])
        # App-only: realm roles and no scope (the current profile allows application permissions).
        app = self.claims(scope=None, realm_access={"roles": [WRITE_SCOPE]})
        self.assertEqual(self.get(self.key.sign(app)).status, 200)
        # Neither scope nor role: authenticated, but not allowed.
        self.assertEqual(self.get(self.key.sign(self.claims(scope="openid profile"))).status, 403)

    def test_anything_else_is_refused(self):
        cases = {
            "signed by a key the issuer does not publish": self.stranger.sign(self.claims()),
            "the stranger's key under the issuer's kid": self.stranger.sign(self.claims(), kid="foreign-1"),
            "another issuer": self.key.sign(self.claims(iss=self.idp.url + "/")),
            "Entra's issuer (not trusted once auth.issuer is set)":
                self.key.sign(self.claims(iss=f"https://sts.windows.net/{TENANT}/", tid=TENANT)),
            "another audience": self.key.sign(self.claims(aud="https://graph.microsoft.com")),
            "tid instead of the configured tenant claim": self.key.sign(self.claims(org=None, tid=TENANT)),
            "expired": self.key.sign(self.claims(exp=int(time.time()) - 3600)),
        }
        for why, token in cases.items():
            with self.subTest(why):
                r = self.get(token)
                self.assertEqual(r.status, 401, r)
                self.assertEqual(r.json()["error"]["code"], "InvalidAuthenticationToken")
        # An unregistered tenant: a valid token, and 403.
        self.assertEqual(self.get(self.key.sign(self.claims(org={"tenant": "0f0f0f0f-0000-4000-8000-000000000000"})))
                         .status, 403)


class ForeignIssuerRefusedAtStart(unittest.TestCase):
    def start_fails(self, *args):
        data_dir = tempfile.mkdtemp(prefix="vppd-oidc-")
        try:
            r = subprocess.run([VPPD, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, *args],
                               capture_output=True, text=True, timeout=30)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertNotIn("vppd listening on", r.stdout)
        return r.stderr

    def test_a_document_naming_another_issuer(self):
        with tempfile.TemporaryDirectory() as d:
            idp = DiscoveryServer([RsaKey(d, "k")], issuer="https://evil.example/realms/vppd")
            try:
                err = self.start_fails("--auth-issuer", idp.url)
            finally:
                idp.close()
        self.assertIn("auth.issuer", err)
        self.assertIn("names the issuer 'https://evil.example/realms/vppd'", err)

    def test_no_discovery_document(self):
        err = self.start_fails("--auth-issuer", "http://127.0.0.1:9/realms/vppd")
        self.assertIn("OpenID configuration fetch from http://127.0.0.1:9/realms/vppd/.well-known/", err)

    def test_plain_http_to_another_machine(self):
        err = self.start_fails("--auth-issuer", "http://idp.example/realms/vppd")
        self.assertIn("must be https://", err)

    def test_with_a_jwks_url_besides(self):
        err = self.start_fails("--auth-issuer", "https://idp.example/realms/vppd", "--auth-jwks-url",
                               "https://idp.example/keys")
        self.assertIn("auth.issuer finds its keys itself", err)


def metric(text, name):
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    if not m:
        raise AssertionError(f"{name} not in /metrics")
    return float(m.group(1))


class AlertGauges(SimVppdTestCase):
    sim_args = ("--seed", "7")
    vppd_args = ("--sync-interval-seconds", "0", "--alerts-app-usage-percent", "60", "--apple-max-attempts", "1")

    def test_counts_match_the_simulators(self):
        loc, stoken = self.new_location(assets=30, assignments=400)
        self.assertEqual(self.wait_sync(self.add_token(stoken)["id"])["lastSyncStatus"], "completed")
        # A token Apple does not know, expiring in 10 days: its sync fails.
        soon = (datetime.datetime.utcnow() + datetime.timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%S+0000")
        bad = self.add_token(make_stoken(token="unknown-to-apple", exp=soon, org="Expiring Soon"))
        self.assertEqual(self.wait_sync(bad["id"])["lastSyncStatus"], "failed")

        over, exhausted = set(), set()
        for (adam, pricing, _), (total, used) in expected_apps(self.sim, stoken).items():
            if 0 < total < 2147483647 and used > 0:
                if used * 100 >= total * 60:
                    over.add((adam, pricing))
                if used >= total:
                    exhausted.add((adam, pricing))
        self.assertGreater(len(over), 0, "the simulated location should have busy apps")
        text = request(self.vppd.port, "GET", "/metrics").body
        self.assertEqual(metric(text, "vppd_apps_over_usage_threshold"), len(over))
        self.assertEqual(metric(text, "vppd_apps_licenses_exhausted"), len(exhausted))
        self.assertEqual(metric(text, "vppd_apps_usage_threshold_ratio"), 0.6)
        self.assertEqual(metric(text, "vppd_tokens_expiring_soon"), 1)
        self.assertEqual(metric(text, "vppd_tokens_past_expiry"), 0)
        self.assertEqual(metric(text, "vppd_tokens_last_sync_failed"), 1)
        for line in text.splitlines():  # aggregate only: no id of a token, app or tenant
            if line.startswith(("vppd_tokens_", "vppd_apps_")):
                self.assertNotIn("{", line)

    def test_the_shipped_alert_rules_name_only_metrics_vppd_serves(self):
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "packaging", "vppd-alerts.yml")) as f:
            rules = f.read()
        text = request(self.vppd.port, "GET", "/metrics").body
        served = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
        named = set(re.findall(r"\b(vppd_[a-z_]+)\b", rules))
        self.assertIn("vppd_tokens_expiring_soon", named)
        # Counters appear once first counted (a sync job, a request to Apple); the rest at once.
        self.assertEqual(named - served - {"vppd_sync_jobs_total", "vppd_apple_requests_total"}, set())


class AlertRules(unittest.TestCase):
    """packaging/vppd-alerts.yml, checked and unit-tested by promtool (Debian's prometheus package)."""

    def test_promtool_checks_and_tests_the_rules(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.fail("promtool is missing: scripts/setup installs the prometheus package, which has it")
        packaging = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging")
        for args in (("check", "rules", "vppd-alerts.yml"), ("test", "rules", "vppd-alerts.test.yml")):
            r = subprocess.run([promtool, *args], cwd=packaging, capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("SUCCESS", r.stdout)


@unittest.skipIf(os.environ.get("VPPD_TEST_DATABASE_URL"), "backs up the SQLite store (PostgreSQL: pg_dump)")
class Backup(SimVppdTestCase):
    sim_args = ("--seed", "3")
    vppd_args = ("--sync-interval-seconds", "0")

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="vppd-backup-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def backup(self, dest, *args, data_dir=None):
        env = dict(os.environ)
        env.pop("VPPD_DATABASE_URL", None)
        return subprocess.run([VPPD, "backup", dest, "--data-dir", data_dir or self.vppd.data_dir, *args],
                              capture_output=True, text=True, timeout=120, env=env)

    def graph(self, vppd, token):
        tokens = {t["id"]: (t["lastSyncStatus"], t["organizationName"]) for t in vppd.collect(BASE, token)}
        apps = {a["id"]: (a["totalLicenseCount"], a["usedLicenseCount"]) for a in vppd.collect(APPS, token)}
        return tokens, apps

    def test_backup_while_syncing_restores_to_the_same_data(self):
        _, stoken = self.new_location(assets=40, assignments=3000)
        t = self.wait_sync(self.add_token(stoken)["id"])
        # Syncs running while the backup is taken: the copy is one consistent snapshot.
        self.assertEqual(self.call("POST", f"{BASE}/{t['id']}/syncLicenses").status, 200)
        dest = os.path.join(self.dir, "vppd-backup.db")
        r = self.backup(dest)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("checked", r.stdout)
        self.assertIn("secret.key", r.stdout)  # the key is not in the backup: said so
        self.assertEqual(os.stat(dest).st_mode & 0o777, 0o600)
        self.assertFalse(os.path.exists(dest + ".partial"))
        self.wait_sync(t["id"])
        before = self.graph(self.vppd, self.token)

        # Restore into another data dir: the backup as vppd.db, the key copied apart.
        restored = os.path.join(self.dir, "restored")
        os.mkdir(restored, 0o700)
        shutil.copy(dest, os.path.join(restored, "vppd.db"))
        for name in ("secret.key", "dev-signing-key.pem"):
            shutil.copy(os.path.join(self.vppd.data_dir, name), os.path.join(restored, name))
        copy = Vppd("--apple-url", "http://127.0.0.1:9/mdm/v2", "--sync-interval-seconds", "0", data_dir=restored,
                    sqlite=True).start()
        try:
            tokens, apps = self.graph(copy, self.token)
        finally:
            copy.cleanup()
        self.assertEqual(set(tokens), set(before[0]))
        self.assertEqual(tokens[t["id"]][1], before[0][t["id"]][1])
        self.assertEqual(apps, before[1])
        self.assertGreater(len(apps), 0)

    def test_refusals(self):
        dest = os.path.join(self.dir, "exists.db")
        open(dest, "w").close()
        r = self.backup(dest)
        self.assertEqual(r.returncode, 1)
        self.assertIn("exists: a backup never overwrites a file", r.stderr)
        r = self.backup(os.path.join(self.dir, "x.db"), data_dir=os.path.join(self.dir, "nothing-here"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("no vppd store to back up", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "x.db")))
        r = self.backup(os.path.join(self.dir, "y.db"), "--database-url", "postgresql://vppd@127.0.0.1:9/vppd")
        self.assertEqual(r.returncode, 1)
        self.assertIn("pg_dump", r.stderr)
        self.assertNotIn("127.0.0.1:9", r.stderr, "the URL (it may hold a password) is not printed")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "y.db")))


if __name__ == "__main__":
    unittest.main()
