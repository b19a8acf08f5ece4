#!/usr/bin/env python3
"""Run ``pyvmm bench`` and keep its results beside a record of what they depend on.

Writes, in --out (default bench-results/):
  bench-<stamp>.json       the results (``pyvmm bench --json``)
  bench-<stamp>.host.json  machine, kernel, KVM backend, CPU model, Python version,
                           pyvmm commit, load average, and the command line used
  bench-<stamp>.txt        the table as printed

Usage: scripts/bench_record.py [--out DIR] [-- any pyvmm bench options, e.g. --quick --only null]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args, bench_args = parser.parse_known_args()
    if bench_args[:1] == ["--"]:
        bench_args = bench_args[1:]
    from pyvmm.bench.hostinfo import host_info

    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = args.out / f"bench-{stamp}.json"
    host = host_info()  # before the run: the load average the run started under
    cmd = [sys.executable, "-m", "pyvmm", "bench", "--json", str(results), *bench_args]
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    print(proc.stdout, end="")
    if proc.returncode != 0:
        return proc.returncode
    (args.out / f"bench-{stamp}.txt").write_text(proc.stdout)
    host.update(pyvmm_commit=git_commit(), command=cmd[1:], results=results.name, recorded_at=stamp)
    (args.out / f"bench-{stamp}.host.json").write_text(json.dumps(host, indent=2) + "\n")
    print(f"recorded: {results} and {results.with_suffix('.host.json').name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
