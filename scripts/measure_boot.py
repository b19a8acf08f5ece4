#!/usr/bin/env python3
"""Boot figures for the bundled guest, medians over repeated fresh processes.

  * whole-process ``pyvmm run`` wall time, beside ``python3 -c pass``;
  * VM creation (just before KVM_CREATE_VM) to the guest's first hypercall;
  * VMM peak RSS minus the guest RAM it has touched (VmHWM - guest mapping Rss).

Usage: scripts/measure_boot.py [--runs N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, sys
from pyvmm.guest import bundled_kernel
from pyvmm.machine import Machine, MachineConfig
m = Machine(MachineConfig(kernel=bundled_kernel(), console_fd=2))
r = m.run()
t = m.times
start = m.memory.host_address
guest_rss_kib = 0
with open("/proc/self/smaps") as f:
    inside = False
    for line in f:
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo = int(head.split("-")[0], 16)
            inside = lo == start
        elif inside and head == "Rss:":
            guest_rss_kib = int(line.split()[1])
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
m.close()
print(json.dumps({
    "exit_code": r.exit_code,
    "create_to_first_hypercall_ms": (t.first_hypercall - t.create_start) / 1e6,
    "create_to_first_run_ms": (t.first_run - t.create_start) / 1e6,
    "first_run_to_first_hypercall_ms": (t.first_hypercall - t.first_run) / 1e6,
    "peak_rss_kib": hwm,
    "guest_rss_kib": guest_rss_kib,
}))
"""


def wall(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()

    py = sys.executable
    # The console script, as a user types it (python -m would add runpy's import time).
    script = os.path.join(os.path.dirname(py), "pyvmm")
    pyvmm = [script, "run"] if os.access(script, os.X_OK) else [py, "-m", "pyvmm", "run"]
    subprocess.run(pyvmm, check=True, stdout=subprocess.DEVNULL)  # build/cache the guest, warm the page cache
    baseline = wall([py, "-c", "pass"], args.runs)
    whole = wall(pyvmm, args.runs)
    children = [
        json.loads(subprocess.check_output([py, "-c", CHILD], stderr=subprocess.DEVNULL)) for _ in range(args.runs)
    ]

    def med(key):
        return statistics.median(c[key] for c in children)

    beyond = [(c["peak_rss_kib"] - c["guest_rss_kib"]) / 1024 for c in children]
    result = {
        "machine": {"kernel": platform.release(), "python": platform.python_version(), "cpus": os.cpu_count()},
        # With PYTHONDONTWRITEBYTECODE every module is compiled from source on every run.
        "bytecode_cache": not os.environ.get("PYTHONDONTWRITEBYTECODE"),
        "runs": args.runs,
        "python_c_pass_ms_median": statistics.median(baseline),
        "pyvmm_run_ms_median": statistics.median(whole),
        "pyvmm_run_ms_min": min(whole),
        "create_to_first_hypercall_ms_median": med("create_to_first_hypercall_ms"),
        "create_to_first_run_ms_median": med("create_to_first_run_ms"),
        "first_run_to_first_hypercall_ms_median": med("first_run_to_first_hypercall_ms"),
        "peak_rss_mib_median": med("peak_rss_kib") / 1024,
        "guest_rss_mib_median": med("guest_rss_kib") / 1024,
        "vmm_rss_beyond_guest_mib_median": statistics.median(beyond),
    }
    for key, value in result.items():
        print(f"{key:42} {value:.2f}" if isinstance(value, float) else f"{key:42} {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
