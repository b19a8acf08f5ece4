#!/usr/bin/env python3
"""Run pyvmm's test suite on AMD SVM: KVM nested under QEMU's software emulation.

This host's ``/dev/kvm`` is PVM. To check pyvmm on SVM as well, this script boots
Debian's kernel under QEMU TCG (``-cpu max`` emulates SVM with nested paging),
loads ``kvm_amd`` there, mounts this host's root read-only over 9p and runs
pyvmm's tests inside, one file at a time under its own timeout, so that a file
that wedges the nested kernel costs its timeout and not the run.

What it needs comes from Debian: ``qemu-system-x86`` and ``busybox-static`` are
installed with apt-get when missing; the kernel package (the one
``linux-image-amd64`` depends on) is only downloaded and unpacked under the work
directory, never installed on this host. Everything it writes is under a
temporary directory (``--workdir`` to keep it); QEMU sees this host's root
read-only and a tmpfs of its own for ``/tmp``.

A wedge is bounded too. The nested kernel has, in some runs, stopped running its
userspace: once silent (QEMU spinning, no console output at all), once with both of
its CPUs printing soft-lockup reports while a ``pause``-loop guest spun. When the
console is silent for ``--silence`` seconds, or a file runs ``--grace`` seconds past
its own ``--timeout-per-file`` (the ``timeout -s KILL`` inside cannot end a process
whose vCPU never leaves ``KVM_RUN``), QEMU is killed, that file is reported as
wedged, and the files after it run in a fresh boot. QEMU itself runs under
``timeout -s KILL`` too, so it ends even if this script is killed outright.

Prints one ``PASS``/``FAIL`` line per check (the boot, each test file, each test)
and a summary line; exits 0 only if everything passed.

Usage: scripts/nested_svm.py [--tests tests/test_boot.py ...] [-k EXPR]
                             [--timeout-per-file 600] [--timeout 2400] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nestedkit
from nestedkit import DIR, EXEC, FILE, MARK, CheckError, Entry, fetch_kernel, newc_archive, run

ROOT = Path(__file__).resolve().parent.parent

# Modules the nested kernel needs, in insmod order (each after what it depends on):
# kvm_amd, then virtio-pci and 9p for the host's root.
MODULES = (
    "drivers/crypto/ccp/ccp",
    "virt/lib/irqbypass",
    "arch/x86/kvm/kvm",
    "arch/x86/kvm/kvm-amd",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci",
    "net/9p/9pnet",
    "net/9p/9pnet_virtio",
    "fs/netfs/netfs",
    "fs/fscache/fscache",
    "fs/9p/9p",
)

# TCG's threading: `single` and `multi` both ran 30 of 30 `test=spin --timeout 0.3` kicks
# without a wedge (docs/backends.md), so the faster one stays; --tcg-threads picks.
TCG_THREADS = "multi"

# Tests that cannot run inside: they need the network or write into the checkout
# (a wheel built and installed into a fresh venv), which the read-only 9p root
# refuses. Everything else runs.
NOT_INSIDE = ("tests/test_sdk.py::test_wheel_sdk_builds_a_guest_outside_the_tree",)

PYTEST_RESULT = re.compile(r"^(tests/\S+::\S+?)(?:\s+|\s.*\s)(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")


@dataclass
class Outcome:
    booted: bool = False
    kvm: bool = False
    boot_seconds: float | None = None
    files: dict[str, int | None] = field(default_factory=dict)  # exit status, None if unfinished
    file_seconds: dict[str, float] = field(default_factory=dict)
    tests: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    wedged: list[str] = field(default_factory=list)  # files during which the nested kernel stopped
    run_output: dict[str, list[str]] = field(default_factory=dict)  # --run name -> its lines
    current: str | None = None  # the file or --run running now
    current_since: float = 0.0  # host monotonic seconds when it started
    lockups: int = 0  # the nested kernel's soft-lockup reports


# --- setup on this host ------------------------------------------------------------------


def ensure_packages() -> None:
    nestedkit.ensure_packages({"qemu-system-x86": shutil.which("qemu-system-x86_64") is not None})


def init_script(job: str) -> str:
    """The nested side's /init: modules, the host's root over 9p, then the job."""
    return f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do
    insmod /modules/$m.ko || echo "{MARK} insmod $m failed"
done
[ -c /dev/kvm ] && echo "{MARK} kvm $(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null)"
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host \\
    || echo "{MARK} 9p mount failed"
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
# A checkout under /tmp (a CI clone, say) would be hidden by the tmpfs: keep the host's
# /tmp reachable through a bind mount taken first, and bind the checkout back from it.
mkdir -p /hosttmp
mount -o bind /host/tmp /hosttmp
mount -t tmpfs -o size=2g tmp /host/tmp
case "{ROOT}" in /tmp/*)
    mkdir -p /host{ROOT}
    mount -o bind /hosttmp{str(ROOT).removeprefix("/tmp")} /host{ROOT} ;;
esac
echo "{MARK} booted $(cut -d' ' -f1 /proc/uptime)"
{job}
echo "{MARK} done"
reboot -f
"""


def job_script(
    repo: Path, python: Path, cache: Path, files: list[str], keyword: str | None, per_file: int, runs: dict[str, str]
) -> str:
    """Shell lines run inside (after /init's mounts): one pytest per test file, and for a
    name in *runs* (``run-N``) that ``pyvmm`` command line instead, its output shown."""
    deselect = " ".join(f"--deselect {t}" for t in NOT_INSIDE)
    select = f"-k '{keyword}'" if keyword else ""
    lines = [
        # The prebuilt caches (guest kernel, compiled loop; carried in the initramfs, as
        # the host's /tmp is hidden by the tmpfs) copied onto the tmpfs: the cache is
        # keyed by the sources' stat, which 9p shows unchanged, so nothing is rebuilt.
        "cp -a /cache /host/tmp/pyvmm-cache",
    ]
    env = (
        "HOME=/tmp PYVMM_CACHE_DIR=/tmp/pyvmm-cache XDG_CACHE_HOME=/tmp/xdg "
        "PYTHONDONTWRITEBYTECODE=1 PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    )
    for name in files:
        lines.append(f'echo "{MARK} file {name} start $(cut -d" " -f1 /proc/uptime)"')
        # stdin from /dev/null: the serial console as stdin made every run ~8x slower.
        if name in runs:
            lines.append(
                f"chroot /host /usr/bin/env -i {env} /usr/bin/timeout -s KILL {per_file} "
                f"/bin/sh -c 'cd {repo} && exec {python} -m pyvmm {runs[name]}' </dev/null 2>&1"
            )
            lines.append(f'echo "{MARK} file {name} exit $? $(cut -d" " -f1 /proc/uptime)"')
            continue
        lines.append(
            f"chroot /host /usr/bin/env -i {env} /usr/bin/timeout -s KILL {per_file} "
            f"/bin/sh -c 'cd {repo} && exec {python} -m pytest -p no:cacheprovider -v --color=no "
            f"--tb=short -o console_output_style=classic {deselect} {select} {name}' </dev/null"
        )
        lines.append(f'echo "{MARK} file {name} exit $? $(cut -d" " -f1 /proc/uptime)"')
    return "\n".join(lines)


def prebuild_caches(python: Path, cache: Path) -> None:
    """Build the guest kernel and the compiled loop on this host, into `cache`."""
    env = dict(os.environ, PYVMM_CACHE_DIR=str(cache))
    # One boot builds everything a boot needs (the guest kernel, the compiled loop);
    # what single tests build beyond that is built inside, with the host's gcc.
    run([str(python), "-m", "pyvmm", "run", "--timeout", "60"], env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
    # Bytecode for pyvmm and its tests, so the nested interpreter reads .pyc over 9p
    # instead of compiling every module under emulation.
    subprocess.run([str(python), "-m", "compileall", "-q", "pyvmm", "tests"], cwd=ROOT, capture_output=True)


def build_initramfs(work: Path, modules_dir: Path, cache: Path, job: str) -> Path:
    entries = [Entry(d, DIR) for d in ("bin", "proc", "sys", "dev", "host", "modules", "tmp", "cache")]
    entries.append(nestedkit.busybox_entry())
    modules, order = nestedkit.kernel_modules(modules_dir, MODULES)
    entries += modules
    for path in sorted(cache.rglob("*")):
        name = "cache/" + str(path.relative_to(cache))
        if path.is_dir():
            entries.append(Entry(name, DIR))
        elif path.is_file():
            entries.append(Entry(name, path.stat().st_mode & 0o777 | 0o100000, path.read_bytes()))
    entries.append(Entry("modules.order", FILE, order.encode()))
    entries.append(Entry("init", EXEC, init_script(job).encode()))
    path = work / "initramfs.cpio"
    path.write_bytes(newc_archive(entries))
    return path


# --- the run -----------------------------------------------------------------------------


def qemu_command(vmlinuz: Path, initramfs: Path, smp: int, memory: str, tcg_threads: str) -> list[str]:
    return [
        "qemu-system-x86_64",
        "-accel",
        f"tcg,thread={tcg_threads}",
        "-cpu",
        "max",
        "-smp",
        str(smp),
        "-m",
        memory,
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        str(vmlinuz),
        "-initrd",
        str(initramfs),
        "-append",
        "console=ttyS0 quiet panic=-1 rdinit=/init",
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
    ]


def parse_line(line: str, outcome: Outcome, started: float) -> None:
    if line.startswith(MARK):
        words = line[len(MARK) :].split()
        if words[:1] == ["booted"]:
            outcome.booted = True
            outcome.boot_seconds = time.monotonic() - started
        elif words[:1] == ["kvm"]:
            outcome.kvm = True
        elif words[:1] == ["file"] and len(words) >= 4:
            name, what = words[1], words[2]
            if what == "start":
                outcome.current = name
                outcome.current_since = time.monotonic()
                outcome.files[name] = None
                outcome.file_seconds[name] = float(words[3])
            elif what == "exit" and len(words) >= 5:
                outcome.files[name] = int(words[3])
                outcome.file_seconds[name] = float(words[4]) - outcome.file_seconds.get(name, 0.0)
        return
    if "soft lockup" in line:
        outcome.lockups += 1
    if outcome.current is not None and outcome.current.startswith("run-"):
        outcome.run_output.setdefault(outcome.current, []).append(line)
        return
    match = PYTEST_RESULT.match(line)
    if match:
        outcome.tests[match.group(1)] = match.group(2)


def run_nested(
    command: list[str], deadline: float, silence: float, per_file: float, verbose: bool, sink, outcome: Outcome
) -> bool:
    """Run QEMU once, feeding its console into *outcome*, until it exits, *deadline*
    (monotonic) passes, it prints nothing for *silence* seconds, or a file runs
    *per_file* seconds past its own timeout. True if it wedged (the nested kernel no
    longer runs its userspace, see the module docstring)."""
    started = time.monotonic()
    # A session of its own: `timeout` (see nestedkit.bounded) makes QEMU part of its
    # process group, and a kill of that group ends both.
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )

    def kill() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    last_output = [time.monotonic()]
    wedged = threading.Event()

    def watchdog() -> None:
        # A thread rather than a read timeout: the console read blocks.
        while proc.poll() is None:
            now = time.monotonic()
            if now - last_output[0] > silence:
                wedged.set()
            # A wedge that still prints (the nested kernel's soft-lockup reports) is not
            # silent: inside, `timeout -s KILL` cannot end a process whose vCPU never
            # leaves KVM_RUN, so a file well past its own timeout is a wedge too.
            if outcome.current is not None and now - outcome.current_since > per_file:
                wedged.set()
            if wedged.is_set() or now > deadline:
                kill()
                return
            time.sleep(1)

    guard = threading.Thread(target=watchdog, daemon=True)
    guard.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            last_output[0] = time.monotonic()
            line = raw.rstrip("\r\n")
            sink.write(line + "\n")
            outcome.lines.append(line)
            parse_line(line, outcome, started)
            if verbose:
                print(line, flush=True)
    finally:
        if proc.poll() is None:
            kill()
        proc.wait()
        guard.join()
    return wedged.is_set()


def report(outcome: Outcome, files: list[str], elapsed: float) -> bool:
    ok = True

    def line(passed: bool, what: str) -> None:
        nonlocal ok
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'} {what}")

    line(outcome.booted, f"boot of the nested kernel ({outcome.boot_seconds or 0:.1f} s)")
    line(outcome.kvm, "kvm_amd loaded, /dev/kvm present")
    for name in files:
        status = outcome.files.get(name, "missing")
        seconds = outcome.file_seconds.get(name)
        took = f" ({seconds:.0f} s)" if isinstance(status, int) and seconds is not None else ""
        if name in outcome.wedged:
            line(False, f"{name}: the nested kernel wedged (silent for --silence, or past its timeout + --grace)")
        elif status is None:
            line(False, f"{name}: did not finish (the whole run timed out)")
        elif status == "missing":
            line(False, f"{name}: never started")
        elif status == 137:
            line(False, f"{name}: killed at its timeout")
        elif name.startswith("run-"):
            # A --run is there for its output (figures, a crash report): its exit status is
            # what the command says, not a verdict.
            print(f"INFO {name}: exit {status}{took}")
        else:
            # pytest exits 5 when -k selects nothing in a file: not a failure.
            line(status in (0, 5), f"{name}: pytest exit {status}{took}")
    for test, result in sorted(outcome.tests.items()):
        if result in ("PASSED", "SKIPPED", "XFAIL"):
            print(f"PASS {test} {result.lower()}")
        else:
            line(False, f"{test} {result.lower()}")
    if outcome.lockups:
        print(f"INFO the nested kernel reported {outcome.lockups} soft lockup(s)")
    counts: dict[str, int] = {}
    for result in outcome.tests.values():
        counts[result] = counts.get(result, 0) + 1
    summary = ", ".join(f"{n} {r.lower()}" for r, n in sorted(counts.items())) or "no tests"
    print(f"{'PASS' if ok else 'FAIL'} nested SVM: {summary} in {elapsed:.0f} s")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", nargs="*", help="test files (default: every tests/test_*.py)")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    parser.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="ARGS",
        help="also run `pyvmm ARGS` inside, output shown (repeatable)",
    )
    parser.add_argument("--timeout-per-file", type=int, default=600)
    parser.add_argument("--timeout", type=int, default=2400, help="the whole nested run, in seconds")
    parser.add_argument(
        "--silence", type=int, default=300, help="seconds without console output that mean the nested kernel wedged"
    )
    parser.add_argument(
        "--grace", type=int, default=120, help="seconds past --timeout-per-file after which a file has wedged"
    )
    parser.add_argument("--smp", type=int, default=2)
    parser.add_argument("--tcg-threads", choices=("single", "multi"), default=TCG_THREADS, help="QEMU TCG's threads")
    parser.add_argument("--memory", default="4G")
    parser.add_argument("--workdir", type=Path, help="keep downloads and logs here (default: a temporary directory)")
    parser.add_argument("--verbose", action="store_true", help="pass the nested console through")
    args = parser.parse_args(argv)

    python = Path(sys.executable)
    if not str(python).startswith(str(ROOT)) and not (ROOT / ".venv").exists():
        print("run this with the project's venv python (.venv/bin/python)", file=sys.stderr)
        return 2
    runs = {f"run-{i}": line for i, line in enumerate(args.run, start=1)}
    if args.tests is not None or not runs:
        files = args.tests or sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py"))
    else:
        files = []
    files += list(runs)

    temporary = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="pyvmm-nested-")) if temporary else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    nestedkit.exit_on_sigterm()
    try:
        ensure_packages()
        vmlinuz, modules_dir, version = fetch_kernel(work)
        cache = work / "pyvmm-cache"
        prebuild_caches(python, cache)
        print(f"nested SVM: kernel {version}, {len(files)} test files, QEMU TCG -smp {args.smp}", flush=True)
        outcome = Outcome()
        deadline = started + args.timeout
        remaining = list(files)
        # A file that wedges the nested kernel (it stops printing: see the module
        # docstring) is killed with QEMU after --silence seconds; the files after it run
        # in a fresh boot, so one wedge costs a file, not the run.
        with (work / "console.log").open("w", buffering=1) as sink:  # line-buffered: watchable
            while remaining and time.monotonic() < deadline:
                job = job_script(ROOT, python, cache, remaining, args.keyword, args.timeout_per_file, runs)
                initramfs = build_initramfs(work, modules_dir, cache, job)
                command = qemu_command(vmlinuz, initramfs, args.smp, args.memory, args.tcg_threads)
                command = nestedkit.bounded(command, deadline - time.monotonic() + 30)
                per_file = args.timeout_per_file + args.grace
                if not run_nested(command, deadline, args.silence, per_file, args.verbose, sink, outcome):
                    break
                stuck = next((f for f in remaining if f in outcome.files and outcome.files[f] is None), None)
                if stuck is None:
                    break
                outcome.wedged.append(stuck)
                print(f"nested SVM: the nested kernel wedged during {stuck}; booting again for the rest", flush=True)
                remaining = remaining[remaining.index(stuck) + 1 :]
    except CheckError as exc:
        print(f"FAIL nested SVM: {exc}")
        return 1
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)
    for name, line in runs.items():
        print(f"{name}: pyvmm {line}")
        for text in outcome.run_output.get(name, []):
            print(f"    {text}")
    ok = report(outcome, files, time.monotonic() - started)
    if not ok and not temporary:
        print(f"console log: {work / 'console.log'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
