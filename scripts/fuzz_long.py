#!/usr/bin/env python3
"""The long fuzz profile, by hand: at least 100,000 cases through the real dispatcher and the loader.

    python scripts/fuzz_long.py [--examples N]

Runs tests/test_fuzz_dispatcher.py (two fuzz tests) and tests/test_fuzz_loader.py (one) with
N examples each (random, not the fixed CI seed) and prints the case counts. Exit status is
pytest's: 0 when no case failed. A failure prints hypothesis's minimal example: make it a
regression test (tests/test_hostile.py or a plain case in the fuzz test) and fix the bug.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 100_000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=-(-TARGET // 3), help="examples per fuzz test (3 tests)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        report = Path(d) / "report.json"
        env = {
            **os.environ,
            "PYVMM_FUZZ_EXAMPLES": str(args.examples),
            "PYVMM_FUZZ_REPORT": str(report),
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        t0 = time.monotonic()
        rc = subprocess.call(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/test_fuzz_dispatcher.py",
                "tests/test_fuzz_loader.py",
            ],
            cwd=ROOT,
            env=env,
        )
        elapsed = time.monotonic() - t0
        counts = json.loads(report.read_text()) if report.exists() else {}
    total = sum(v["cases"] for v in counts.values())
    for name, v in counts.items():
        print(f"{name}: {json.dumps(v)}")
    print(f"fuzz_long: {total} cases in {elapsed:.0f} s, pytest exit status {rc}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
