#!/usr/bin/env python3
"""Snapshot, restore, reset and clone figures for the bundled guest (test=snap), JSON medians.

  * snapshot of a 64 MiB guest that touched 4 MiB: time (all, and vCPUs paused), pages, disk use;
  * ``pyvmm restore`` whole process: spawn to the guest's first console line after the restore,
    and the whole process, beside ``python3 -c pass`` and a whole ``pyvmm run``;
  * in-process restore (open + verify + build + first ``KVM_RUN``), 64 MiB vs 1 GiB;
  * reset to snapshot with 16 dirty pages: the reset alone (resets/s, us per dirty page), and
    reset + run of the guest's 16-page step;
  * clone density: N idle restored clones of one snapshot, their private RSS each.

Usage: scripts/measure_snapshot.py [--reps N] [--clones N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PY = sys.executable


def _med(xs):
    return round(statistics.median(xs), 3)


def spawn_until(args, marker: bytes) -> tuple[float, float]:
    """(seconds to the first stdout line containing *marker*, seconds to exit)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    first = None
    for line in p.stdout:
        if first is None and marker in line:
            first = time.perf_counter() - t0
    p.wait()
    return first if first is not None else float("nan"), time.perf_counter() - t0


def measure_snapshot(reps: int) -> dict:
    import pyvmm

    d = tempfile.mkdtemp(prefix="measure-snap-")
    vm = pyvmm.VM(cmdline="test=snap mode=wait count=100000 period_ms=5")
    vm.start(timeout=600)
    while b"snap: tick 1 " not in vm.console_output:
        time.sleep(0.005)
    # 4 MiB touched (non-zero): written through the checked accessor at 16 MiB.
    vm.memory.write(16 << 20, os.urandom(4 << 20))
    totals, pauses, pages = [], [], []
    for _ in range(reps):
        r = vm.snapshot(d)
        totals.append(r.total_ns / 1e6)
        pauses.append(r.pause_ns / 1e6)
        pages.append(r.pages)
    vm.stop()
    vm.wait(30)
    vm.close()
    st = os.stat(os.path.join(d, "memory.bin"))
    return {
        "snapshot_ms": _med(totals),
        "snapshot_paused_ms": _med(pauses),
        "snapshot_pages": int(statistics.median(pages)),
        "snapshot_disk_kib": st.st_blocks * 512 // 1024,
        "ram_mib": 64,
        "touched_mib_written_by_host": 4,
    }


def guest_snapshot(memory: str) -> str:
    d = tempfile.mkdtemp(prefix=f"measure-{memory}-")
    run = subprocess.run(
        [PY, "-m", "pyvmm", "run", "--memory", memory, "--cmdline", "test=snap count=4 at=1", "--snapshot-dir", d],
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    assert run.returncode == 0, run.stderr
    return d


def measure_restore(reps: int, d64: str) -> dict:
    first, whole, py, runs = [], [], [], []
    for _ in range(reps):
        a, b = spawn_until([PY, "-m", "pyvmm", "restore", d64], b"snap: snapshot ->")
        first.append(a * 1e3)
        whole.append(b * 1e3)
        t = time.perf_counter()
        subprocess.run([PY, "-c", "pass"])
        py.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        subprocess.run([PY, "-m", "pyvmm", "run"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        runs.append((time.perf_counter() - t) * 1e3)
    return {
        "restore_process_to_first_output_ms": _med(first),
        "restore_process_whole_ms": _med(whole),
        "python_c_pass_ms": _med(py),
        "pyvmm_run_whole_ms": _med(runs),
    }


IN_PROCESS = r"""
import json, sys, time
from pathlib import Path
from pyvmm.machine import Machine, MachineConfig
from pyvmm.snapshot.format import host_boot_id
from pyvmm.snapshot.restore import channel_specs, open_snapshot
d = sys.argv[1]
out = []
for _ in range(int(sys.argv[2])):
    t0 = time.monotonic_ns()
    r = open_snapshot(d, boot_id=host_boot_id(), clone_id=1)
    m = r.manifest
    cfg = MachineConfig(kernel=Path(d), memory=m.memory_size, vcpus=len(m.vcpus), cmdline=m.cmdline,
                        restore=r, channels=channel_specs(r, [], []), console_fd=2)
    mach = Machine(cfg)
    r.close()
    mach.run()
    out.append((mach.times.first_run - t0) / 1e6)
    mach.close()
print(json.dumps(out))
"""


def measure_in_process(reps: int, d64: str, d1g: str) -> dict:
    res = {}
    for name, d in (("64MiB", d64), ("1GiB", d1g)):
        p = subprocess.run([PY, "-c", IN_PROCESS, d, str(reps)], capture_output=True, text=True, check=True)
        res[f"restore_in_process_{name}_ms"] = _med(json.loads(p.stdout.splitlines()[-1]))
    return res


def measure_reset(reps: int) -> dict:
    import pyvmm

    vm = pyvmm.VM(cmdline="test=snap mode=dirty pages=16")
    assert vm.run(timeout=60).exit_code == 1
    reset_us, cycle_us, dirty = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        vm.reset()
        t1 = time.perf_counter_ns()
        r = vm.run(timeout=60)
        t2 = time.perf_counter_ns()
        assert r.exit_code == 1, r
        reset_us.append((t1 - t0) / 1e3)
        cycle_us.append((t2 - t0) / 1e3)
        dirty.append(vm.resets.last_dirty)
    vm.close()
    med = statistics.median(reset_us)
    pages = statistics.median(dirty)
    return {
        "reset_us": round(med, 1),
        "resets_per_s": round(1e6 / med),
        "reset_dirty_pages": pages,
        "reset_us_per_dirty_page": round(med / pages, 2),
        "reset_plus_run_us": round(statistics.median(cycle_us), 1),
        "reset_plus_run_per_s": round(1e6 / statistics.median(cycle_us)),
    }


def _private_kib(pid: int) -> tuple[int, int]:
    rss = pss = priv = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, v = line.split()[:2]
            if k == "Rss:":
                rss = int(v)
            elif k == "Pss:":
                pss = int(v)
            elif k in ("Private_Clean:", "Private_Dirty:"):
                priv += int(v)
    return rss, priv, pss


def measure_density(n: int) -> dict:
    d = tempfile.mkdtemp(prefix="measure-clones-")
    run = subprocess.Popen(
        [
            PY,
            "-m",
            "pyvmm",
            "run",
            "--cmdline",
            "test=snap mode=wait count=1000000 period_ms=1000",
            "--snapshot-dir",
            d,
            "--snapshot-on",
            "SIGUSR1",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    for line in run.stdout:
        if b"snap: tick 0" in line:
            break
    run.send_signal(__import__("signal").SIGUSR1)
    while not os.path.exists(os.path.join(d, "manifest.json")):
        time.sleep(0.05)
    run.terminate()
    run.wait()
    clones = [
        subprocess.Popen(
            [PY, "-m", "pyvmm", "restore", d],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]
    time.sleep(3 + n * 0.3)
    figures = [_private_kib(p.pid) for p in clones if p.poll() is None]
    for p in clones:
        p.terminate()
    for p in clones:
        p.wait()
    avail = next(int(x.split()[1]) for x in open("/proc/meminfo") if x.startswith("MemAvailable:"))
    priv = statistics.median(f[1] for f in figures)
    return {
        "clones_alive": len(figures),
        "clone_rss_kib": statistics.median(f[0] for f in figures),
        "clone_private_kib": priv,
        "clone_pss_kib": statistics.median(f[2] for f in figures),
        "clones_that_fit_in_available_memory": int(avail // max(priv, 1)),
        "host_mem_available_mib": avail // 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--clones", type=int, default=8)
    ap.add_argument("--json")
    a = ap.parse_args()
    d64, d1g = guest_snapshot("64M"), guest_snapshot("1G")
    out = {}
    out.update(measure_snapshot(a.reps))
    out.update(measure_restore(a.reps, d64))
    out.update(measure_in_process(a.reps, d64, d1g))
    out.update(measure_reset(max(a.reps, 200)))
    if a.clones:
        out.update(measure_density(a.clones))
    out["loadavg"] = os.getloadavg()[0]
    text = json.dumps(out, indent=2)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
