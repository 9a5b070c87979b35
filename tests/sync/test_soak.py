"""The short soak (bench/soak/run --short): 100 tokens, Apple with faults, syncs, reads, kill -9.

Runs the real vppd and apple-vpp-sim; about 50 s. The long version (≥ 5 min, 20 kills)
is `bench/soak/run`; its figures are in bench/README.md.
"""
import os
import shutil
import subprocess
import sys
import unittest

RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "soak", "run")


class ShortSoak(unittest.TestCase):
    def test_short_soak_passes_every_check(self):
        self.assertIsNotNone(shutil.which("wrk"), "the soak's read load needs wrk (scripts/setup installs it)")
        r = subprocess.run([sys.executable, RUN, "--short"], capture_output=True, text=True, timeout=240)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-6000:])
        self.assertIn("RESULT: PASS", r.stdout, out[-6000:])
        # The checks ran, not just the script: kills happened, tokens were compared.
        self.assertIn("kill 3/3: store ok", r.stdout)
        self.assertIn("license counts: 100 of 100 tokens equal Apple's truth", r.stdout)
        self.assertRegex(r.stdout, r"syncLicenses calls  \d+ accepted")


if __name__ == "__main__":
    unittest.main()
