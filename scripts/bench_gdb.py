#!/usr/bin/env python3
"""What ``--gdb`` costs and how fast the stub answers, measured in one run.

1. Null hypercalls (``test=hcloop``) with and without ``--gdb --gdb-nowait`` (no
   gdb attached, no breakpoints), runs alternating: the ratio of the medians.
2. Single step: ``vCont;s`` round trips on a stopped vCPU (``test=spin``): steps per second.
3. Breakpoint round trip: an int3 in ``spin_main``'s loop, ``vCont;c`` until the
   ``T05 swbreak`` reply (gdb's own cycle: remove, step over, re-insert, continue).

    scripts/bench_gdb.py [--reps 5] [--iters 20000] [--steps 300] [--hits 100]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyvmm.gdb.client import RspClient  # noqa: E402
from pyvmm.guest import bundled_kernel_debug as bundled_kernel  # noqa: E402  (its symbols)


def pyvmm_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pyvmm", "run", *args]


def hcloop_ns(iters: int, gdb_sock: str | None) -> float:
    args = ["--cmdline", f"test=hcloop iters={iters}", "--timeout", "120"]
    if gdb_sock:
        args = ["--gdb", f"unix:{gdb_sock}", "--gdb-nowait", *args]
    out = subprocess.run(pyvmm_cmd(*args), capture_output=True, text=True, cwd=ROOT, stdin=subprocess.DEVNULL)
    m = re.search(r"hypercalls=(\d+) ns=(\d+)", out.stdout)
    if out.returncode != 0 or not m:
        raise SystemExit(f"hcloop failed: {out.returncode} {out.stdout} {out.stderr}")
    return int(m.group(2)) / int(m.group(1))


def start_stopped(sock: str, cmdline: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        pyvmm_cmd("--gdb", f"unix:{sock}", "--cmdline", cmdline, "--timeout", "300"),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not os.path.exists(sock):
        time.sleep(0.02)
    return proc


def step_and_break(sock: str, steps: int, hits: int) -> tuple[float, list[float]]:
    proc = start_stopped(sock, "test=spin")
    try:
        c = RspClient(sock)
        spin = _symbol("spin_main")
        # Run into the loop first (a hardware breakpoint on spin_main, then steps to the pause).
        assert c.ask(b"Z1,%x,1" % spin) == b"OK"
        c.send(b"vCont;c")
        c.reply()
        assert c.ask(b"z1,%x,1" % spin) == b"OK"
        code = bytes.fromhex(c.ask(b"m%x,40" % spin).decode())
        pause = spin + code.index(b"\xf3\x90")
        t = time.perf_counter()
        for _ in range(steps):
            c.send(b"vCont;s:1")
            reply = c.reply()
            assert reply.startswith(b"T05"), reply
        step_rate = steps / (time.perf_counter() - t)
        trips = []
        for _ in range(hits):
            assert c.ask(b"Z0,%x,1" % pause) == b"OK"
            t = time.perf_counter()
            c.send(b"vCont;c")
            reply = c.reply()
            trips.append(time.perf_counter() - t)
            assert b"swbreak" in reply, reply
            assert c.ask(b"z0,%x,1" % pause) == b"OK"
            c.send(b"vCont;s:1")  # step over the breakpoint's instruction, as gdb does
            c.reply()
        c.send(b"k")
        proc.wait(timeout=30)
        return step_rate, trips
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _symbol(name: str) -> int:
    out = subprocess.run(["nm", bundled_kernel()], capture_output=True, text=True, check=True).stdout
    return next(
        int(a, 16) for a, _, n in (line.split() for line in out.splitlines() if line.count(" ") == 2) if n == name
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--hits", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "gdb.sock")
        plain, gdb = [], []
        for _ in range(args.reps):  # alternating, so host noise hits both alike
            plain.append(hcloop_ns(args.iters, None))
            gdb.append(hcloop_ns(args.iters, sock))
        p, g = statistics.median(plain), statistics.median(gdb)
        print(
            f"null hypercall: without --gdb {p / 1000:.2f} us, with --gdb (nothing set) {g / 1000:.2f} us, "
            f"ratio {g / p:.3f} (medians of {args.reps} runs of {args.iters})"
        )
        rate, trips = step_and_break(sock, args.steps, args.hits)
        print(f"single step: {rate:,.0f} steps/s ({1e6 / rate:.0f} us a vCont;s round trip, {args.steps} steps)")
        print(
            f"breakpoint round trip (vCont;c to T05 swbreak): median {statistics.median(trips) * 1e6:.0f} us, "
            f"p90 {sorted(trips)[int(len(trips) * 0.9)] * 1e6:.0f} us ({args.hits} hits)"
        )


if __name__ == "__main__":
    main()
