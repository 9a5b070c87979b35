"""The .deb installed on this machine: what it puts where, and vppd running from it as the user vppd.

Installs $VPPD_DEB (scripts/package --test builds it and sets the variable) with dpkg -i,
checks the files, the user and the data dir's mode, starts `vppd serve --config
/etc/vppd/vppd.toml` as the user vppd (setpriv: systemd may not run here; the unit's
ExecStart is checked to be that same command), asks /healthz, backs the store up while
it serves and restores the backup, then purges the package.

Needs root and a machine without vppd installed (fails, saying why, otherwise); skipped
when VPPD_DEB is not set. About 15 s.
"""
import grp
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import _read_announcement, request  # noqa: E402

DEB = os.environ.get("VPPD_DEB", "")
CONFIG = "/etc/vppd/vppd.toml"
DATA = "/var/lib/vppd"
TENANT = "5e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"


def run(*args, check=True, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=120, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}")
    return r


def as_vppd(*args):
    """The argv that runs `args` as the user vppd, its group and no other."""
    return ["setpriv", "--reuid=vppd", "--regid=vppd", "--init-groups", "--", *args]


def blocker():
    """Why this machine cannot run the test, or None."""
    if os.geteuid() != 0:
        return "installing a package needs root"
    if run("dpkg-query", "-W", "-f=${Status}", "vppd", check=False).stdout.startswith("install ok"):
        return "vppd is installed on this machine: this test would purge it"
    if os.path.exists(DATA):
        return f"{DATA} exists: this test would use (and leave) another deployment's data"
    return None


# Only scripts/package --test asks for it (the suite loop of scripts/test skips it); asked
# for, it fails rather than skips when the machine cannot run it, so that CI never passes
# a package test that did not run.
@unittest.skipUnless(DEB, "VPPD_DEB is not set: scripts/package --test builds the package and runs this")
class InstalledPackage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        problem = blocker()
        if problem:
            raise RuntimeError(f"cannot test the package here: {problem}")
        cls.user_existed = True
        try:
            pwd.getpwnam("vppd")
        except KeyError:
            cls.user_existed = False
        cls.work = tempfile.mkdtemp(prefix="vppd-deb-test-")
        os.chmod(cls.work, 0o755)
        run("dpkg", "-i", DEB)

    @classmethod
    def tearDownClass(cls):
        run("dpkg", "--purge", "vppd", check=False)
        shutil.rmtree(DATA, ignore_errors=True)
        shutil.rmtree(cls.work, ignore_errors=True)
        if not cls.user_existed:
            run("userdel", "vppd", check=False)

    def serve(self):
        """`vppd serve --config /etc/vppd/vppd.toml` as vppd, on a free port; returns (proc, port)."""
        env = dict(os.environ, VPPD_LISTEN="127.0.0.1:0")  # the environment beats the file
        env.pop("VPPD_DATABASE_URL", None)
        log = open(os.path.join(self.work, "serve.log"), "ab")
        proc = subprocess.Popen(as_vppd("/usr/bin/vppd", "serve", "--config", CONFIG), stdout=subprocess.PIPE,
                                stderr=log, env=env)
        log.close()
        self.addCleanup(self.stop, proc)
        port, _ = _read_announcement(proc, "vppd listening on", deadline_s=30, log_path=log.name)
        return proc, port

    @staticmethod
    def stop(proc):
        if proc.poll() is None:
            proc.terminate()
            proc.wait(20)
        proc.stdout.close()

    def test_1_files_user_and_modes(self):
        self.assertTrue(os.access("/usr/bin/vppd", os.X_OK))
        with open("/lib/systemd/system/vppd.service") as f:
            unit = f.read()
        self.assertIn("ExecStart=/usr/bin/vppd serve --config /etc/vppd/vppd.toml\n", unit)
        self.assertIn("User=vppd\n", unit)
        user = pwd.getpwnam("vppd")
        self.assertLess(user.pw_uid, 1000, "a system user")
        self.assertEqual(user.pw_dir, DATA)
        self.assertEqual(grp.getgrgid(user.pw_gid).gr_name, "vppd")
        st = os.stat(DATA)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
        self.assertEqual((st.st_uid, st.st_gid), (user.pw_uid, user.pw_gid))
        st = os.stat(CONFIG)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        self.assertEqual((st.st_uid, st.st_gid), (0, user.pw_gid))
        with open(CONFIG) as f:
            self.assertIn(f'data_dir = "{DATA}"', f.read())
        self.assertIn(CONFIG, run("dpkg-query", "-W", "-f=${Conffiles}", "vppd").stdout)
        self.assertTrue(os.path.exists("/usr/share/vppd/prometheus/vppd-alerts.yml"))
        self.assertTrue(os.path.exists("/usr/share/doc/vppd/README.packaging.md"))
        self.assertFalse(os.path.exists("/usr/bin/apple-vpp-sim"), "the simulator is not packaged")

    def test_2_serves_as_vppd_and_backs_up_and_restores(self):
        user = pwd.getpwnam("vppd")
        proc, port = self.serve()
        self.assertEqual(request(port, "GET", "/healthz").status, 200)
        with open(f"/proc/{proc.pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        self.assertEqual({int(u) for u in uids}, {user.pw_uid}, "vppd runs as the user vppd, not root")
        for name in ("vppd.db", "secret.key"):
            self.assertEqual(os.stat(os.path.join(DATA, name)).st_uid, user.pw_uid, name)
        self.assertEqual(stat.S_IMODE(os.stat(DATA).st_mode), 0o700)

        # Something to back up, written while the server runs.
        run(*as_vppd("/usr/bin/vppd", "tenant", "add", TENANT, "--name", "Backed up", "--data-dir", DATA))
        backups = os.path.join(self.work, "backups")
        os.mkdir(backups, 0o700)
        os.chown(backups, user.pw_uid, user.pw_gid)
        dest = os.path.join(backups, "vppd.db")
        refused = run("/usr/bin/vppd", "backup", dest, "--config", CONFIG, check=False)  # as root
        self.assertEqual(refused.returncode, 1, refused.stderr)
        self.assertIn("runuser -u vppd", refused.stderr)
        out = run(*as_vppd("/usr/bin/vppd", "backup", dest, "--config", CONFIG)).stdout
        self.assertIn("checked", out)
        self.assertEqual(stat.S_IMODE(os.stat(dest).st_mode), 0o600)
        self.assertEqual(request(port, "GET", "/healthz").status, 200, "the server served on")

        # Restore as packaging/README.md says: stop, replace vppd.db, drop the WAL, start.
        self.stop(proc)
        run(*as_vppd("/usr/bin/vppd", "tenant", "remove", TENANT, "--yes", "--data-dir", DATA))
        for suffix in ("-wal", "-shm"):
            if os.path.exists(os.path.join(DATA, "vppd.db" + suffix)):
                os.unlink(os.path.join(DATA, "vppd.db" + suffix))
        run("install", "-m", "0600", "-o", "vppd", "-g", "vppd", dest, os.path.join(DATA, "vppd.db"))
        _, port = self.serve()
        self.assertEqual(request(port, "GET", "/healthz").status, 200)
        listed = run(*as_vppd("/usr/bin/vppd", "tenant", "list", "--data-dir", DATA)).stdout
        self.assertIn(TENANT, listed)
        self.assertIn("Backed up", listed)

    def test_3_purge_removes_the_package_and_keeps_the_data(self):
        run("dpkg", "--purge", "vppd")
        for path in ("/usr/bin/vppd", "/lib/systemd/system/vppd.service", CONFIG):
            self.assertFalse(os.path.exists(path), path)
        self.assertTrue(os.path.isdir(DATA), "the store and its key are kept on purge")


if __name__ == "__main__":
    unittest.main()
