"""apple-vpp-sim's own HTTP errors read like Apple's (issue 14).

The answers the HTTP server gives by itself (a request that is not HTTP, a body or a
header over the limit, an HTTP version it does not speak) are Apple's ErrorResponse
`{"errorMessage", "errorNumber"}` in application/json, with the server's status and
Apple's number for it (9602, invalid argument, which Apple also gives a request over
its limits), as every other answer on Apple's paths is; the same on the control API
(/_sim/*), which promises JSON. Never text/plain.

Raw sockets, because http.client cannot send a broken request line. Standard library
only; the binary is `$VPPD_BIN_DIR/apple-vpp-sim` (default build/bin).
"""

import json
import socket
import unittest

from test_sim_conformance import Sim

BODY_LIMIT = 4 * 1024 * 1024  # main.cc's max_body_bytes


class ServerErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def exchange(self, raw):
        """Sends `raw` on a fresh connection; returns (status, headers dict, body bytes) of the answer."""
        with socket.create_connection((self.sim.host, self.sim.port), timeout=10) as s:
            try:
                s.sendall(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # The server may answer and close before it has read all of a too-large request.
            data = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", len(body)))
        return int(lines[0].split()[1]), headers, body[:length]

    def assertAppleError(self, answer, status, number):
        got_status, headers, body = answer
        self.assertEqual(got_status, status, body)
        self.assertEqual(headers.get("content-type"), "application/json", body)
        doc = json.loads(body)
        self.assertEqual(doc["errorNumber"], number, doc)
        self.assertIsInstance(doc["errorMessage"], str)
        self.assertTrue(doc["errorMessage"])
        self.assertEqual(set(doc), {"errorMessage", "errorNumber"})

    def test_body_over_the_limit(self):
        head = ("POST /mdm/v2/assets/associate HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (self.sim.token, BODY_LIMIT + 1))
        self.assertAppleError(self.exchange(head.encode() + b"x" * 1024), 413, 9602)

    def test_header_over_the_limit(self):
        raw = ("GET /mdm/v2/assets HTTP/1.1\r\nHost: sim\r\nX-Big: %s\r\n\r\n" % ("b" * 20000)).encode()
        self.assertAppleError(self.exchange(raw), 431, 9602)

    def test_not_http(self):
        self.assertAppleError(self.exchange(b"GARBAGE\r\n\r\n"), 400, 9602)

    def test_unsupported_http_version(self):
        self.assertAppleError(self.exchange(b"GET /mdm/v2/service/config HTTP/2.5\r\nHost: sim\r\n\r\n"), 505, 9602)

    def test_transfer_coding_not_chunked(self):
        raw = (b"POST /mdm/v2/assets/associate HTTP/1.1\r\nHost: sim\r\nTransfer-Encoding: gzip\r\n"
               b"Content-Type: application/json\r\n\r\n{}")
        status, headers, body = self.exchange(raw)
        self.assertGreaterEqual(status, 400)
        self.assertAppleError((status, headers, body), status, 9602)

    def test_control_api_gets_json_too(self):
        head = "POST /_sim/faults HTTP/1.1\r\nHost: sim\r\nContent-Length: %d\r\n\r\n" % (BODY_LIMIT + 1)
        self.assertAppleError(self.exchange(head.encode() + b"{"), 413, 9602)

    def test_handler_errors_stay_apple_errors(self):
        # The simulator's own answers were Apple's already: a bad sToken, wrong method, bad JSON, unknown path.
        status, headers, raw = self.sim.request("GET", "/mdm/v2/assets", token="not-a-token")
        self.assertAppleError((status, headers, raw), 401, 9601)
        status, headers, raw = self.sim.request("DELETE", "/mdm/v2/assets")
        self.assertAppleError((status, headers, raw), 405, 9726)
        status, headers, raw = self.sim.request("POST", "/mdm/v2/assets/associate", body="{bad")
        self.assertAppleError((status, headers, raw), 400, 9602)
        status, headers, raw = self.sim.request("GET", "/no/such/path")
        self.assertAppleError((status, headers, raw), 404, 9602)


if __name__ == "__main__":
    unittest.main()
