"""Starts apple-vpp-sim and vppd on 127.0.0.1 (port 0), runs a command against them, stops them.

    python3 tests/clients/servers.py -- node --test tests/clients/test/*.test.mjs

The command gets the servers through the environment:
  VPPD_URL            http://127.0.0.1:PORT (no version segment)
  VPPD_TOKEN          dev bearer token with DeviceManagementServiceConfig.ReadWrite.All and
                      DeviceManagementApps.ReadWrite.All
  VPPD_READ_TOKEN     dev bearer token with DeviceManagementServiceConfig.Read.All only
  VPPD_EXPIRED_TOKEN  a write token that expired a minute ago
  SIM_URL             http://127.0.0.1:PORT of the simulator (its control API is SIM_URL/_sim/)
  CLIENTS_TLS_CERT / CLIENTS_TLS_KEY   a self-signed certificate for 127.0.0.1 (PEM files), for the
                      HTTPS front the microsoft-graph-client tests put before vppd

VPPD_TEST_DATABASE_URL, when set, is passed through for test/assignments.test.mjs, which starts
vppds of its own on SQLite and on a fresh database of that PostgreSQL server (lib/vppd.mjs); the
vppd started here stays on SQLite.

vppd runs with --graph-page-size 2 so that every collection of more than two items is paged.
Exit status: the command's; 2 when the servers could not be started; 124 when the command ran
longer than --timeout seconds (it is killed). The servers' stderr is printed when the command fails.
Uses tests/lib/harness.py (standard library only); binaries come from $VPPD_BIN_DIR.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness import READ_SCOPE, WRITE_SCOPE, Sim, Vppd, run_command  # noqa: E402

APPS_SCOPE = "DeviceManagementApps.ReadWrite.All"


def make_certificate(directory):
    """A throw-away self-signed certificate for 127.0.0.1 and localhost; returns (cert, key) paths."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def tail(path, limit=4000):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")[-limit:]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=240, help="seconds the command may run")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command to run")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    workdir = tempfile.mkdtemp(prefix="vppd-clients-")
    sim = vppd = None
    try:
        try:
            cert, key = make_certificate(workdir)
            # One generated location; the tests add their own through the control API.
            sim = Sim("--assets", "12", "--assignments", "60", "--locations", "1", "--seed", "29",
                      "--event-delay-ms", "50").start()
            # SQLite: test/assignments.test.mjs starts vppds of its own on both stores.
            vppd = Vppd("--apple-url", sim.url, "--graph-page-size", "2", "--sync-interval-seconds", "0",
                        "--throttle-window-seconds", "0", "--sync-event-poll-ms", "100", sqlite=True).start()
            env = dict(os.environ)
            env.update({
                "VPPD_URL": f"http://127.0.0.1:{vppd.port}",
                "VPPD_TOKEN": vppd.dev_token("--scopes", f"{WRITE_SCOPE} {APPS_SCOPE}"),
                "VPPD_READ_TOKEN": vppd.dev_token("--scopes", READ_SCOPE),
                "VPPD_EXPIRED_TOKEN": vppd.dev_token("--scopes", WRITE_SCOPE, "--ttl", "-60"),
                "SIM_URL": f"http://127.0.0.1:{sim.port}",
                "CLIENTS_TLS_CERT": cert,
                "CLIENTS_TLS_KEY": key,
                # Node reads this at start-up: fetch trusts the HTTPS front's certificate.
                "NODE_EXTRA_CA_CERTS": cert,
            })
        except Exception as e:  # noqa: BLE001 — any start failure is reported the same way
            print(f"servers.py: could not start the servers: {e}", file=sys.stderr)
            return 2

        rc = run_command(command, env, args.timeout)
        if rc != 0:
            print("---- vppd stderr (tail) ----\n" + tail(vppd.log_path), file=sys.stderr)
            print("---- apple-vpp-sim stderr (tail) ----\n" + tail(sim.log_path), file=sys.stderr)
        return rc
    finally:
        if vppd:
            vppd.cleanup()
        if sim:
            sim.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
