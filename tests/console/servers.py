"""Starts `vppd demo` (vppd in dev mode with apple-vpp-sim in-process) on 127.0.0.1, port 0,
runs a command against it, stops it.

    python3 tests/console/servers.py -- node --test tests/console/test/*.test.mjs

`vppd demo` is what the README's first command starts, so the console is tested against
the same thing a person sees: the demo's location added as a vppToken and synced before the
command starts. The command gets, through the environment:
  VPPD_URL     http://127.0.0.1:PORT, the console's URL (no version segment)
  VPPD_TOKEN   dev bearer token with DeviceManagementServiceConfig.ReadWrite.All,
               DeviceManagementApps.ReadWrite.All and the directory's write scopes
               (DIRECTORY_SCOPES; for the tests' own Graph calls)
  SIM_URL      http://127.0.0.1:PORT of the simulator (its control API is SIM_URL/_sim/)
  DEMO_OUTPUT  what `vppd demo` printed (the console's URL is in it)

Exit status: the command's; 2 when the demo could not be started; 124 when the command ran
longer than --timeout seconds (it is killed). The demo's output is printed when the command
fails. Uses tests/lib/harness.py (standard library only); binaries come from $VPPD_BIN_DIR.
"""
import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness import VPPD, WRITE_SCOPE, run_command  # noqa: E402

APPS_SCOPE = "DeviceManagementApps.ReadWrite.All"
# The Assignments tests make a group of devices and a group of people through Graph's directory routes.
DIRECTORY_SCOPES = "Group.ReadWrite.All GroupMember.ReadWrite.All Device.ReadWrite.All " \
    "DeviceManagementManagedDevices.ReadWrite.All User.ReadWrite.All"
# The last line `vppd demo` prints once its location is synced.
DEMO_READY = "Ctrl-C stops both."


def start_demo(data_dir, log_path, deadline_s=180):
    """Runs `vppd demo` until it has printed DEMO_READY; returns (process, its stdout so far)."""
    log = open(log_path, "ab")
    proc = subprocess.Popen([VPPD, "demo", "--listen", "127.0.0.1:0", "--sim-listen", "127.0.0.1:0",
                             "--data-dir", data_dir, "--sim-assets", "40", "--sim-assignments", "400"],
                            stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    log.close()
    out = b""
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vppd demo exited with {proc.returncode}: {out.decode(errors='replace')}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            out += chunk
            if DEMO_READY.encode() in out:
                return proc, out.decode(errors="replace")
    proc.kill()
    raise RuntimeError(f"vppd demo was not ready within {deadline_s}s: {out.decode(errors='replace')}")


def url_after(text, prefix):
    """The http://… URL that follows `prefix` in `text`."""
    at = text.index(prefix) + len(prefix)
    return text[at:].split()[0].rstrip(")")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=300, help="seconds the command may run")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command to run")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    workdir = tempfile.mkdtemp(prefix="vppd-console-")
    log_path = os.path.join(workdir, "demo-stderr.log")
    data_dir = os.path.join(workdir, "data")
    demo = None
    output = ""
    try:
        try:
            demo, output = start_demo(data_dir, log_path)
            token = subprocess.run([VPPD, "dev-token", "--data-dir", data_dir, "--scopes",
                                    f"{WRITE_SCOPE} {APPS_SCOPE} {DIRECTORY_SCOPES}"],
                                   capture_output=True, text=True, timeout=30, check=True).stdout.strip()
            env = dict(os.environ)
            env.update({
                "VPPD_URL": url_after(output, "vppd listening on "),
                "VPPD_TOKEN": token,
                "SIM_URL": url_after(output, "Apple simulated at "),
                "DEMO_OUTPUT": output,
            })
        except Exception as e:  # noqa: BLE001 — any start failure is reported the same way
            print(f"servers.py: could not start vppd demo: {e}", file=sys.stderr)
            return 2

        rc = run_command(command, env, args.timeout)
        if rc != 0:
            print("---- vppd demo stdout ----\n" + output[-3000:], file=sys.stderr)
            with open(log_path, "rb") as f:
                print("---- vppd demo stderr (tail) ----\n" + f.read().decode(errors="replace")[-4000:],
                      file=sys.stderr)
        return rc
    finally:
        if demo and demo.poll() is None:
            os.killpg(demo.pid, signal.SIGTERM)
            try:
                demo.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
