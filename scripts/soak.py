#!/usr/bin/env python3
"""The long soak, by hand: 1,000 VMs sequentially in one process, 100 concurrently as processes.

    python scripts/soak.py [--sequential 1000] [--concurrent 100] [--parallel 4]

Prints fds, RSS and threads before and after the sequential run, and the exit codes and
per-process peak RSS of the concurrent one; exit status 1 if anything leaked or failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.soak import soak_concurrent, soak_sequential  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequential", type=int, default=1000)
    ap.add_argument("--concurrent", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=4, help="processes at a time (this host has 2 cores)")
    args = ap.parse_args()
    from pyvmm.guest import bundled_kernel

    kernel = bundled_kernel()
    ok = True
    if args.sequential:
        s = soak_sequential(kernel, args.sequential)
        print(s.summary(), flush=True)
        ok &= s.exit_codes == {3} and s.fds_after == s.fds_before and s.threads_after == s.threads_before
        ok &= s.rss_after_kib - s.rss_before_kib < 16 * 1024
    if args.concurrent:
        c = soak_concurrent(args.concurrent, args.parallel, kernel=kernel)
        print(c.summary(), flush=True)
        for failure in c.failures[:10]:
            print("  ", failure)
        ok &= not c.failures
    print("soak:", "ok" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
