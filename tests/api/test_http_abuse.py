"""The HTTP edge under abuse: vppd keeps serving well-behaved clients while others misbehave."""
import os
import resource
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Vppd, make_stoken  # noqa: E402

BASE = "/beta/deviceAppManagement/vppTokens"
NO_APPLE = ("--apple-url", "http://127.0.0.1:9/mdm/v2", "--apple-max-attempts", "1")


class Abuse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 4096)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        cls.vppd = Vppd(*NO_APPLE, "--throttle-window-seconds", "0").start()
        cls.token = cls.vppd.dev_token()
        r = cls.vppd.request("POST", BASE, token=cls.token, body={"token": make_stoken(), "displayName": "abuse"})
        assert r.status == 201, r
        cls.item = BASE + "/" + r.json()["id"]

    @classmethod
    def tearDownClass(cls):
        cls.vppd.cleanup()

    def good_request_time(self):
        start = time.time()
        r = self.vppd.request("GET", self.item, token=self.token)
        self.assertEqual(r.status, 200, r)
        return time.time() - start

    def connect(self, source="127.0.0.1"):
        return socket.create_connection(("127.0.0.1", self.vppd.port), timeout=10, source_address=(source, 0))

    def test_a_thousand_idle_connections_do_not_block_others(self):
        # From another address: one address may hold at most 256 connections (the
        # rest are answered 503 and closed), and that does not touch anyone else.
        idle = [self.connect("127.0.0.2") for _ in range(1000)]
        try:
            for _ in range(20):
                self.assertLess(self.good_request_time(), 1.0)
        finally:
            for s in idle:
                s.close()

    def test_one_address_at_its_connection_cap_does_not_stop_another(self):
        held = []
        try:
            deadline = time.time() + 10  # the server may still be closing another test's sockets
            while len(held) < 256:  # vppd's per-address cap
                s = self.connect("127.0.0.2")
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = s.recv(65536)
                if answer.startswith(b"HTTP/1.1 503") and time.time() < deadline:
                    s.close()
                    time.sleep(0.05)
                    continue
                self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:100])  # then idle, kept alive
                held.append(s)
            over = self.connect("127.0.0.2")
            held.append(over)
            answer = over.recv(65536)
            self.assertTrue(answer.startswith(b"HTTP/1.1 503"), answer[:100])
            self.assertIn(b'"code":"serviceUnavailable"', answer)
            for _ in range(20):
                self.assertLess(self.good_request_time(), 1.0)
        finally:
            for s in held:
                s.close()

    def test_slow_header_clients_do_not_block_others(self):
        slow = []
        for _ in range(200):
            s = self.connect()
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never finish
            slow.append(s)
        try:
            for _ in range(20):
                self.assertLess(self.good_request_time(), 1.0)
        finally:
            for s in slow:
                s.close()

    def test_oversized_and_garbage_get_answers_while_others_are_served(self):
        def answer(data):
            s = self.connect()
            try:
                s.sendall(data)
                return s.recv(64)
            finally:
                s.close()

        for _ in range(20):
            self.assertTrue(answer(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
                            .startswith(b"HTTP/1.1 431"))
            self.assertTrue(answer(b"POST " + BASE.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
                            .startswith(b"HTTP/1.1 413"))
            self.assertTrue(answer(b"\x16\x03\x01\x02\x00garbage\r\n\r\n").startswith(b"HTTP/1.1 400"))
            self.assertLess(self.good_request_time(), 1.0)

    def test_pipelined_requests_then_garbage(self):
        s = self.connect()
        try:
            auth = f"Authorization: Bearer {self.token}\r\n".encode()
            one = b"GET " + self.item.encode() + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"
            s.sendall(one * 3 + b"NOT HTTP AT ALL\r\n\r\n")
            data = b""
            s.settimeout(5)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            self.assertEqual(data.count(b"HTTP/1.1 200"), 3)
            self.assertEqual(data.count(b"HTTP/1.1 400"), 1)  # then the connection is closed
        finally:
            s.close()
        self.assertLess(self.good_request_time(), 1.0)


if __name__ == "__main__":
    unittest.main()
