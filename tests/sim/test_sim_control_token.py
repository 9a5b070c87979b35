"""apple-vpp-sim's control API (/_sim/*) serves every sToken: off loopback it needs a token.

Issue 14, hardening: `--listen` on a non-loopback address without `--control-token`
refuses to start (exit 2, a message on stderr, nothing on stdout); with one, every
/_sim/* request needs `Authorization: Bearer T`; on loopback nothing changes.
"""

import http.client
import json
import os
import signal
import subprocess
import unittest

BIN_DIR = os.environ.get("VPPD_BIN_DIR", "build/bin")
SIM = os.path.join(BIN_DIR, "apple-vpp-sim")
CONTROL_TOKEN = "control-token-0123456789abcdef"


def start(*args, env=None):
    """Starts the simulator; returns (process, port) once it listens, or (process, None) when it exited."""
    proc = subprocess.Popen([SIM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=15)
        return proc, None
    return proc, int(line.strip().rsplit(":", 1)[1].split("/", 1)[0])


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    proc.stdout.close()
    proc.stderr.close()


def get(port, path, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


class ControlToken(unittest.TestCase):
    def test_non_loopback_listen_without_a_token_refuses_to_start(self):
        for listen in ("0.0.0.0:0", "[::]:0"):
            proc, port = start("--listen", listen)
            try:
                self.assertIsNone(port, listen)
                self.assertEqual(proc.returncode, 2, listen)
                stderr = proc.stderr.read()
                self.assertIn("REFUSING", stderr)
                self.assertIn("--control-token", stderr)
            finally:
                stop(proc)

    def test_short_token_is_refused(self):
        proc, port = start("--listen", "0.0.0.0:0", "--control-token", "short")
        try:
            self.assertIsNone(port)
            self.assertEqual(proc.returncode, 2)
        finally:
            stop(proc)

    def check_guarded(self, port):
        for token in (None, "wrong-token-0123456789abcdef"):
            status, body = get(port, "/_sim/locations", token)
            self.assertEqual(status, 401, body)
            self.assertNotIn("stoken", body.lower())
        status, body = get(port, "/_sim/locations", CONTROL_TOKEN)
        self.assertEqual(status, 200, body)
        self.assertTrue(json.loads(body)["locations"])
        status, _ = get(port, "/mdm/v2/service/config")  # Apple's side is unchanged
        self.assertEqual(status, 200)

    def test_non_loopback_listen_with_a_token_guards_the_control_api(self):
        proc, port = start("--listen", "0.0.0.0:0", "--control-token", CONTROL_TOKEN)
        try:
            self.assertIsNotNone(port, proc.stderr.read() if port is None else "")
            self.check_guarded(port)
        finally:
            stop(proc)

    def test_token_from_the_environment(self):
        proc, port = start("--listen", "0.0.0.0:0", env={"APPLE_VPP_SIM_CONTROL_TOKEN": CONTROL_TOKEN})
        try:
            self.assertIsNotNone(port)
            self.check_guarded(port)
        finally:
            stop(proc)

    def test_loopback_needs_no_token(self):
        proc, port = start("--listen", "127.0.0.1:0")
        try:
            self.assertIsNotNone(port)
            status, body = get(port, "/_sim/locations")
            self.assertEqual(status, 200, body)
        finally:
            stop(proc)


if __name__ == "__main__":
    unittest.main()
