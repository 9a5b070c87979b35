"""Hardening of issue 14: what an attacker found, and that it holds now.

Each test names the item it covers. The tokens of the JWKS tests are signed here
(openssl's command line for RSA) with keys that a JWKS server in this process serves.
"""
import base64
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import DEV_TENANT, WRITE_SCOPE, Vppd, request  # noqa: E402

BASE = "/beta/deviceAppManagement/vppTokens"
NO_APPLE = ("--apple-url", "http://127.0.0.1:9/mdm/v2", "--apple-max-attempts", "1")
GRAPH_401_MESSAGES = ("Access token is empty.", "Access token has expired or is not yet valid.",
                      "Access token validation failure.")
STATUS_LINE = re.compile(rb"HTTP/1\.[01] \d{3} ")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class RsaKey:
    """An RSA-2048 key in a temp dir; signs RS256 JWTs shaped like Entra's for Graph."""

    def __init__(self, directory, kid):
        self.kid = kid
        self.path = os.path.join(directory, kid + ".pem")
        subprocess.run(["openssl", "genrsa", "-out", self.path, "2048"], check=True, capture_output=True)
        out = subprocess.run(["openssl", "rsa", "-in", self.path, "-noout", "-modulus"], check=True,
                             capture_output=True, text=True).stdout
        self.n = bytes.fromhex(out.strip().split("=", 1)[1])

    def jwk(self):
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "n": b64url(self.n), "e": b64url(b"\x01\x00\x01")}

    def sign(self, kid=None, tenant=DEV_TENANT, ttl=3600):
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": kid or self.kid}
        claims = {"aud": "https://graph.microsoft.com", "iss": f"https://sts.windows.net/{tenant}/", "tid": tenant,
                  "oid": "0a11ce00-5eed-4d3e-8f00-00000000d0e5", "appid": "de7c11e0-0000-4000-8000-000000000001",
                  "scp": WRITE_SCOPE, "iat": now, "nbf": now - 60, "exp": now + ttl, "ver": "1.0"}
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.path], input=signing_input.encode(),
                                   check=True, capture_output=True).stdout
        return signing_input + "." + b64url(signature)


class JwksServer:
    """Serves {"keys": [...]} on 127.0.0.1; after `fast_requests` requests each one
    sleeps `delay` seconds before answering (a slow or overloaded IdP)."""

    def __init__(self, keys, delay=0.0, fast_requests=0):
        self.keys = list(keys)
        self.delay = delay
        self.fast_requests = fast_requests
        self.requests = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with outer.lock:
                    outer.requests += 1
                    slow = outer.requests > outer.fast_requests
                    delay = outer.delay
                if slow and delay:
                    time.sleep(delay)
                with outer.lock:
                    body = json.dumps({"keys": [k.jwk() for k in outer.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/keys"

    def count(self):
        with self.lock:
            return self.requests

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def timed(port, method, path, token=None):
    headers = {"Authorization": "Bearer " + token} if token else {}
    start = time.monotonic()
    r = request(port, method, path, headers, timeout=30)
    return r, time.monotonic() - start


class SlowJwks(unittest.TestCase):
    """Item 1: a slow JWKS endpoint and a flood of unknown kids stall no one."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="vppd-jwks-")
        self.old_key = RsaKey(self.dir, "old-key")
        self.new_key = RsaKey(self.dir, "new-key")
        self.jwks = JwksServer([self.old_key], delay=5.0, fast_requests=1)  # the load at start is quick
        self.vppd = Vppd("--auth-jwks-url", self.jwks.url, *NO_APPLE).start()

    def tearDown(self):
        self.vppd.cleanup()
        self.jwks.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_unknown_kid_flood_against_a_slow_jwks_stalls_no_one(self):
        port = self.vppd.port
        known = self.old_key.sign()
        r, _ = timed(port, "GET", BASE, known)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.jwks.count(), 1)
        with self.jwks.lock:
            self.jwks.keys.append(self.new_key)  # a rotation: published, but each fetch now takes 5 s
        rotated = self.new_key.sign()

        stop = threading.Event()
        flood_statuses = []
        flood_slowest = [0.0]

        def flood(worker):
            forged = self.old_key.sign(kid=f"unknown-{worker}")
            while not stop.is_set():
                r, took = timed(port, "GET", BASE, forged)
                flood_statuses.append(r.status)
                flood_slowest[0] = max(flood_slowest[0], took)
                time.sleep(0.01)

        threads = [threading.Thread(target=flood, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        slowest = {"healthz": 0.0, "known": 0.0}
        picked_up_after = None
        start = time.monotonic()
        try:
            # The set was loaded at start; the unknown kids may refetch it once a
            # minute (the refetch interval), and that fetch hangs for 5 s.
            while time.monotonic() - start < 90:
                r, took = timed(port, "GET", "/healthz")
                self.assertEqual(r.status, 200, r)
                slowest["healthz"] = max(slowest["healthz"], took)
                r, took = timed(port, "GET", BASE, known)
                self.assertEqual(r.status, 200, r)
                slowest["known"] = max(slowest["known"], took)
                r, took = timed(port, "GET", BASE, rotated)
                slowest["known"] = max(slowest["known"], took)
                if r.status == 200:
                    picked_up_after = time.monotonic() - start
                    break
                self.assertEqual(r.status, 401, r)
                time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertIsNotNone(picked_up_after, "the key added to the JWKS was never picked up")
        self.assertLess(slowest["healthz"], 1.5, slowest)
        self.assertLess(slowest["known"], 1.5, slowest)
        self.assertLess(flood_slowest[0], 1.5)  # unknown kids are refused at once, not after the fetch
        self.assertTrue(flood_statuses and set(flood_statuses) == {401}, set(flood_statuses))
        # Thousands of unknown kids, one refetch: the load at start, then one per interval.
        self.assertGreater(len(flood_statuses), 100)
        self.assertEqual(self.jwks.count(), 2)


class Hardening(unittest.TestCase):
    """Items 2, 3, 5 on one dev-mode vppd."""

    @classmethod
    def setUpClass(cls):
        cls.data_dir = tempfile.mkdtemp(prefix="vppd-harden-")
        os.chmod(cls.data_dir, 0o755)  # as an admin or systemd might have made it
        old_umask = os.umask(0o022)
        try:
            cls.vppd = Vppd(*NO_APPLE, "--throttle-window-seconds", "0", data_dir=cls.data_dir).start()
        finally:
            os.umask(old_umask)
        cls.token = cls.vppd.dev_token()

    @classmethod
    def tearDownClass(cls):
        cls.vppd.cleanup()
        shutil.rmtree(cls.data_dir, ignore_errors=True)

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.vppd.port), timeout=10)

    def read_all(self, s):
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
        return data

    # ---- item 3: request smuggling

    def test_transfer_encoding_not_ending_in_chunked_is_400_and_close(self):
        smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        for codings in (b"gzip", b"xchunked", b"chunked, identity", b"identity"):
            s = self.connect()
            try:
                s.sendall(b"POST " + BASE.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                          self.token.encode() + b"\r\nTransfer-Encoding: " + codings + b"\r\n\r\n" + smuggled)
                data = self.read_all(s)
            finally:
                s.close()
            self.assertTrue(data.startswith(b"HTTP/1.1 400"), (codings, data[:200]))
            self.assertEqual(len(STATUS_LINE.findall(data)), 1, (codings, data))  # the body did not run as a request
            self.assertIn(b"Connection: close", data)

    def test_transfer_encoding_with_content_length_is_400_and_close(self):
        s = self.connect()
        try:
            s.sendall(b"POST " + BASE.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = self.read_all(s)
        finally:
            s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:200])
        self.assertEqual(len(STATUS_LINE.findall(data)), 1, data)

    # ---- item 5: file modes

    def test_database_files_and_data_dir_are_owner_only(self):
        r = self.vppd.request("GET", BASE, token=self.token)  # the store has been written
        self.assertEqual(r.status, 200, r)
        self.assertEqual(os.stat(self.data_dir).st_mode & 0o777, 0o700)
        self.assertIn("made it owner-only", self.vppd.log())
        if self.vppd.database_url:
            return  # the database is PostgreSQL's business
        for name in ("vppd.db", "vppd.db-wal", "vppd.db-shm"):
            path = os.path.join(self.data_dir, name)
            self.assertTrue(os.path.exists(path), path)
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600, name)

    # ---- item 7: Host and X-Forwarded-* are not a client's to choose

    def test_invalid_host_is_400(self):
        for host in ("evil.example/x", 'a"b', "example.com:99999", "user@example.com"):
            r = self.vppd.request("GET", BASE, token=self.token, headers={"Host": host})
            self.assertEqual(r.status, 400, (host, r))
            self.assertNotIn(host, r.body)
        r = self.vppd.request("GET", BASE, token=self.token, headers={"Host": "vppd.example.com:8443"})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json()["@odata.context"].startswith("http://vppd.example.com:8443/beta/"), r)

    def test_forwarded_headers_from_an_untrusted_peer_are_ignored(self):
        r = self.vppd.request("GET", BASE, token=self.token,
                              headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"})
        self.assertEqual(r.status, 200, r)
        context = r.json()["@odata.context"]
        self.assertTrue(context.startswith(f"http://127.0.0.1:{self.vppd.port}/beta/"), context)

    # ---- item 2: why a 401, in the log

    def test_each_401_logs_its_reason_and_never_the_token(self):
        header, payload, signature = self.token.split(".")
        unknown_kid = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "no-such-key"}).encode())
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        cases = [
            (None, "no Authorization header"),
            (self.vppd.dev_token("--ttl", "-600"), "token has expired"),
            (self.vppd.dev_token("--audience", "https://example.com"), "aud is missing or not an accepted audience"),
            (unknown_kid + "." + payload + "." + signature, "is in no key set"),
            (header + "." + payload + "." + flipped, "signature does not verify"),
        ]
        for token, reason in cases:
            r = self.vppd.request("GET", BASE, token=token)
            self.assertEqual(r.status, 401, r)
            self.assertIn(r.error_message(), GRAPH_401_MESSAGES)  # the client gets Graph's generic message
            request_id = r.headers["request-id"]
            deadline = time.time() + 5
            while True:
                lines = [json.loads(line) for line in self.vppd.log().splitlines() if line.startswith("{")]
                mine = [line for line in lines if line.get("request_id") == request_id and
                        line.get("component") == "auth"]
                if mine or time.time() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(len(mine), 1, (reason, mine))
            self.assertEqual(mine[0]["level"], "info")
            self.assertIn(reason, mine[0]["message"])
        log = self.vppd.log()
        for token, _ in cases:
            if token:
                self.assertNotIn(token.split(".")[2][:40], log)
                self.assertNotIn(token.split(".")[1][:40], log)


if __name__ == "__main__":
    unittest.main()
