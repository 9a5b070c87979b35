"""Black-box harness: runs the real vppd (and apple-vpp-sim) binaries on 127.0.0.1.

Standard library only. Binaries come from $VPPD_BIN_DIR (default build/bin).
Every process is started on port 0 and announces its URL on the first line of
stdout; the harness waits for it with a deadline, so a hung start fails fast.
"""
import base64
import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.environ.get("VPPD_BIN_DIR", os.path.join(REPO, "build", "bin"))
VPPD = os.path.join(BIN_DIR, "vppd")
SIM = os.path.join(BIN_DIR, "apple-vpp-sim")

# When set (scripts/test sets it from scripts/pg-cluster), every Vppd runs on a fresh
# PostgreSQL database of this server instead of SQLite: the URL names a database the
# harness may CREATE DATABASE from.
PG_ADMIN_URL = os.environ.get("VPPD_TEST_DATABASE_URL", "")

DEV_TENANT = "7d3e5f1a-9c2b-4e8d-a6f0-3b1c5d7e9f20"
WRITE_SCOPE = "DeviceManagementServiceConfig.ReadWrite.All"
READ_SCOPE = "DeviceManagementServiceConfig.Read.All"


def make_stoken(token="loc-token", exp="2030-11-08T22:33:22+0000", org="Contoso School"):
    """An sToken as Apple's .vpptoken file holds it: base64 of {token, expDate, orgName}."""
    raw = json.dumps({"token": token, "expDate": exp, "orgName": org}).encode()
    return base64.b64encode(raw).decode()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body)

    def error_code(self):
        return self.json()["error"]["code"]

    def error_message(self):
        return self.json()["error"]["message"]

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


def request(port, method, path, headers=None, body=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = dict(headers or {})
            headers.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read().decode("utf-8", "replace")
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def raw_exchange(port, data, read_timeout=5):
    """Sends the bytes `data` on a new connection and returns every byte the server sends
    until it closes the connection or is silent for `read_timeout` seconds: for requests
    that http.client will not send (malformed, pipelined, oversized)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def _read_announcement(proc, prefix, deadline_s=15, log_path=None):
    """Waits for the 'PREFIX http://host:port' line on stdout; returns the port."""
    deadline = time.time() + deadline_s
    buf = b""
    fd = proc.stdout.fileno()
    while time.time() < deadline:
        if proc.poll() is not None:
            tail = ""
            if log_path:
                with open(log_path, "rb") as f:
                    tail = f.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{prefix} exited with {proc.returncode}: {tail}")
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        buf += chunk
        for line in buf.decode(errors="replace").splitlines():
            if line.startswith(prefix) and "http://" in line:
                url = line.split("http://", 1)[1].split()[0]
                hostport = url.split("/", 1)[0]
                return int(hostport.rsplit(":", 1)[1]), "http://" + url
    proc.kill()
    raise RuntimeError(f"{prefix} did not announce its address within {deadline_s}s")


def run_command(command, env, timeout):
    """Runs a test runner in its own process group; kills the group when it runs past
    `timeout` seconds (reported, exit status 124). Returns its exit status."""
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        print(f"servers.py: {' '.join(command)} ran longer than {timeout:.0f}s; killed", file=sys.stderr)
        return 124


def psql(url, sql):
    """Runs SQL on a PostgreSQL database with psql; returns its unaligned output."""
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"psql {sql!r}: {r.stderr.strip()}")
    return r.stdout.strip()


def database_url_for(admin_url, name):
    """The URL of database `name` on the server of `admin_url`."""
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def create_test_database():
    """A fresh, empty database on the test server; returns its URL."""
    name = "vppd_test_" + os.urandom(6).hex()
    psql(PG_ADMIN_URL, f"CREATE DATABASE {name}")
    return database_url_for(PG_ADMIN_URL, name)


def drop_test_database(url):
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    psql(PG_ADMIN_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Vppd:
    """One vppd serve process with its own data dir.

    The store is SQLite in the data dir, or, when VPPD_TEST_DATABASE_URL is set, a
    fresh PostgreSQL database (dropped by cleanup) unless `database_url` names one
    to share (several instances on one database) or `sqlite` insists on SQLite.
    """

    def __init__(self, *extra_args, data_dir=None, dev=True, env=None, database_url=None, sqlite=False):
        self.owns_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="vppd-test-")
        self.extra_args = list(extra_args)
        self.dev = dev
        self.env = dict(env or {})
        self.owns_database = database_url is None and bool(PG_ADMIN_URL) and not sqlite
        self.database_url = database_url or (create_test_database() if self.owns_database else None)
        if self.database_url:
            self.env["VPPD_DATABASE_URL"] = self.database_url
        self.proc = None
        self.port = None
        fd, self.log_path = tempfile.mkstemp(prefix="vppd-stderr-", suffix=".log")
        os.close(fd)

    def start(self):
        args = [VPPD, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir, "--threads", "2"]
        if self.dev:
            args.append("--dev")
        args += self.extra_args
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=self.process_env())
        try:
            self.port, self.url = _read_announcement(self.proc, "vppd listening on", log_path=self.log_path)
        except Exception:
            self.stop()
            raise
        return self

    def process_env(self):
        env = dict(os.environ)
        env.update(self.env)
        return env

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode if self.proc else None

    def cleanup(self):
        try:
            self.stop()
        finally:
            if self.owns_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)
            if self.owns_database:
                drop_test_database(self.database_url)
                self.owns_database = False
            if os.path.exists(self.log_path):
                os.unlink(self.log_path)

    def cli(self, *args, check=True, input=None):
        """Runs a vppd subcommand against this data dir."""
        r = subprocess.run([VPPD, *args], capture_output=True, text=True, timeout=30, input=input,
                           env=self.process_env())
        if check and r.returncode != 0:
            raise RuntimeError(f"vppd {' '.join(args)} failed: {r.stderr}")
        return r

    def dev_token(self, *args):
        return self.cli("dev-token", "--data-dir", self.data_dir, *args).stdout.strip()

    def request(self, method, path, token=None, headers=None, body=None):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        return request(self.port, method, path, h, body)

    def collect(self, path, token):
        """Every element of a Graph collection, following @odata.nextLink."""
        items, url = [], path
        while url:
            r = self.request("GET", url, token=token)
            if r.status != 200:
                raise AssertionError(f"GET {url}: {r}")
            items += r.json()["value"]
            link = r.json().get("@odata.nextLink")
            url = link.split(str(self.port), 1)[1] if link else None
        return items

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


def expected_apps(sim, stoken):
    """The apps Graph should show for a location, from the simulator's truth:
    {(adamId, pricingParam, "iOS"|"macOS"): (totalCount, assignedCount)}, one per App
    asset and platform family."""
    out = {}
    for a in sim.walk("assets", stoken, "assets"):
        if a["productType"] != "App":
            continue
        families = {"macOS" if p == "macOS" else "iOS" for p in (a.get("supportedPlatforms") or ["iOS"])}
        for fam in families:
            out[(a["adamId"], a["pricingParam"], fam)] = (a["totalCount"], a["assignedCount"])
    return out


def graph_app_counts(apps, expected):
    """Graph mobileApps in the shape of expected_apps() (their pricingParam is not on
    the Graph surface, so it is taken from `expected`)."""
    got = {}
    for a in apps:
        fam = "macOS" if a["@odata.type"] == "#microsoft.graph.macOsVppApp" else "iOS"
        adam = a["appStoreUrl"].rsplit("/id", 1)[1]
        pricing = "STDQ" if (adam, "STDQ", fam) in expected else "PLUS"
        got[(adam, pricing, fam)] = (a["totalLicenseCount"], a["usedLicenseCount"])
    return got


# What an operator gives every instance sharing one database: the sToken key and, in
# --dev mode, the dev signing key (the installation id is in the database itself).
SHARED_FILES = ("secret.key", "dev-signing-key.pem")


def start_instances(n, *args, database_url, on_create=None):
    """n `vppd serve` on one database; the first one's shared files copied to the others.
    on_create(vppd) is called on each before it starts (e.g. to register its cleanup)."""
    instances = []
    for i in range(n):
        v = Vppd(*args, database_url=database_url)
        if on_create:
            on_create(v)
        if i > 0:
            for name in SHARED_FILES:
                shutil.copy2(os.path.join(instances[0].data_dir, name), os.path.join(v.data_dir, name))
        instances.append(v.start())
    return instances


def quote(s):
    return urllib.parse.quote(s, safe="")


class Sim:
    """One apple-vpp-sim process; `control` talks to its /_sim/ API."""

    def __init__(self, *args):
        self.args = list(args)
        self.proc = None
        fd, self.log_path = tempfile.mkstemp(prefix="sim-stderr-", suffix=".log")
        os.close(fd)

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([SIM, "--listen", "127.0.0.1:0", *self.args], stdout=subprocess.PIPE,
                                         stderr=log)
        self.port, self.url = _read_announcement(self.proc, "apple-vpp-sim listening on", log_path=self.log_path)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def cleanup(self):
        self.stop()
        if os.path.exists(self.log_path):
            os.unlink(self.log_path)

    def control(self, method, path, body=None):
        r = request(self.port, method, "/_sim/" + path, body=body)
        if r.status >= 400:
            raise RuntimeError(f"sim {method} {path}: {r}")
        return r.json() if r.body else None

    def locations(self):
        return self.control("GET", "locations")["locations"]

    def apple(self, path, stoken):
        """GET an Apple endpoint as a plain client would."""
        return request(self.port, "GET", "/mdm/v2/" + path, {"Authorization": "Bearer " + stoken})

    def walk(self, endpoint, stoken, key):
        """Every item of a paged Apple endpoint."""
        items, page = [], 0
        while True:
            sep = "&" if "?" in endpoint else "?"
            body = self.apple(f"{endpoint}{sep}pageIndex={page}", stoken).json()
            items += body.get(key, [])
            if "nextPageIndex" not in body:
                return items
            page = body["nextPageIndex"]

    def counters(self):
        return self.control("GET", "counters")["total"]
