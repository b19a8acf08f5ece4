#!/usr/bin/env python3
"""pyvmm exec against native, in the same run: medians of N repetitions as JSON (stdout).

  compute  FNV-1a over 64 MiB in memory            pyvmm/native (target <= 1.05)
  getpid   ns per call (native; gVisor KVM platform publishes 763 ns)
  touch    first touch of 256 MiB anonymous memory: ns per page (each a PAGE_FAULT hypercall)
  sha256   busybox sha256sum of a 16 MiB shared file, whole process (target <= 3)

Usage: scripts/measure_exec.py [--reps 5]. Needs musl-gcc and busybox-static.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
PYVMM = [sys.executable, "-m", "pyvmm", "exec"]


def run(cmd: list[str]) -> tuple[float, str, str]:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t, p.stdout, p.stderr


def inner(cmd: list[str], key: str) -> float:
    return json.loads(run(cmd)[1])[key]


def median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    cc, busybox = shutil.which("musl-gcc"), shutil.which("busybox")
    if not cc or not busybox:
        print("needs musl-gcc (musl-tools) and busybox (busybox-static)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="pyvmm-exec-bench-"))
    try:
        prog = str(tmp / "bench")
        subprocess.run([cc, "-static", "-O2", "-o", prog, str(HERE / "exec_bench" / "bench.c")], check=True)
        share = tmp / "share"
        share.mkdir()
        (share / "f16").write_bytes(os.urandom(16 << 20))
        big = ["--memory", "512M"]
        out: dict[str, dict] = {}
        r = range(args.reps)
        nat = [inner([prog, "hash", "64"], "seconds") for _ in r]
        vm = [inner([*PYVMM, *big, prog, "hash", "64"], "seconds") for _ in r]
        out["compute_hash_64MiB"] = {"native_s": median(nat), "pyvmm_s": median(vm)}
        out["compute_hash_64MiB"]["ratio"] = round(median(vm) / median(nat), 3)
        nat = [inner([prog, "getpid", "2000000"], "ns_per_call") for _ in r]
        vm = [inner([*PYVMM, prog, "getpid", "2000"], "ns_per_call") for _ in r]
        out["getpid"] = {"native_ns": median(nat), "pyvmm_ns": median(vm), "gvisor_kvm_published_ns": 763}
        nat = [inner([prog, "touch", "256"], "ns_per_page") for _ in r]
        vm = [inner([*PYVMM, *big, prog, "touch", "256"], "ns_per_page") for _ in r]
        out["touch_256MiB"] = {"native_ns_per_page": median(nat), "pyvmm_ns_per_page": median(vm)}
        nat = [run([busybox, "sha256sum", str(share / "f16")])[0] for _ in r]
        vm = [run([*PYVMM, "--share", str(share), busybox, "sha256sum", "/f16"])[0] for _ in r]
        empty = [run([*PYVMM, busybox, "true"])[0] for _ in r]
        out["busybox_sha256sum_16MiB"] = {
            "native_s": median(nat),
            "pyvmm_s": median(vm),
            "ratio": round(median(vm) / median(nat), 2),
            "pyvmm_busybox_true_s": median(empty),  # the fixed cost: interpreter, VM build, boot
        }
        print(json.dumps(out, indent=2))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
