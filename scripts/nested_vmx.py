#!/usr/bin/env python3
"""Smoke-check pyvmm on Intel VT-x: KVM nested under Bochs's VMX emulation.

This host's ``/dev/kvm`` is PVM, and QEMU's software emulation has no VMX. Bochs 2.7
(Debian's ``bochs``) emulates VMX with EPT, VPID and unrestricted guest and makes the
SDM's VM-entry checks, so Debian's kernel booted in it loads ``kvm_intel`` and
``pyvmm run`` works there, on one emulated core that runs a few MIPS of wall time
(a short ``pyvmm run`` takes ~9 s, the nested clock runs 20-35x slower than the
wall clock): a smoke check (a few ``pyvmm run``s, ~5.5 min), not the test suite.

Bochs has no 9p and no direct kernel boot, so the nested side is an isolinux ISO
holding Debian's kernel (downloaded and unpacked, never installed here) and an
initramfs of busybox, the KVM modules, and exactly the files that the same
``pyvmm run`` commands open on this host, found with ``strace -f`` (the
interpreter, the stdlib and venv modules with their bytecode, pyvmm's prebuilt
guest kernel and run loop, libseccomp). The bytecode goes to a
``PYTHONPYCACHEPREFIX`` under the work directory, so nothing is written into the
checkout or the interpreter's tree. Everything is under a temporary directory
(``--workdir`` to keep it); Bochs runs under ``script(1)`` (its ``term`` display
wants a tty) with the console on a file, bounded by ``--timeout``, each check by
``--timeout-per-check`` (inside, and again here: a check that overruns kills
Bochs), and Bochs is killed on every way out.

Prints one ``PASS``/``FAIL`` line per check and a summary line; exits 0 only if
everything passed, 1 otherwise, 2 on a usage error.

Usage: scripts/nested_vmx.py [--checks boot pingpong ...] [--run 'run --stats ...']
                             [--timeout 1500] [--workdir DIR] [--verbose]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nestedkit
from nestedkit import DIR, EXEC, FILE, LINK, MARK, CheckError, Entry

ROOT = Path(__file__).resolve().parent.parent

# kvm_intel and what it needs, in insmod order.
MODULES = ("virt/lib/irqbypass", "arch/x86/kvm/kvm", "arch/x86/kvm/kvm-intel")


@dataclass(frozen=True)
class Check:
    """One ``pyvmm`` command line run inside, and what its output must show."""

    name: str
    args: tuple[str, ...]
    exit_code: int | None  # None: a --run, shown for its output, no verdict
    want: tuple[str, ...] = ()  # substrings its output must contain


CHECKS = (
    Check("boot", ("run",), 0, ("pyvmm guest kernel: ABI",)),
    Check("pingpong", ("run", "--vcpus", "2", "--cmdline", "test=pingpong"), 0, ("pingpong: 2 vcpus", ", ok")),
    Check("trap", ("run", "--cmdline", "test=trap"), 126, ("trap: #UD handled 1 time(s)", "unhandled trap 14")),
    # VMX keeps the guest's state at a triple fault (SVM resets it: docs/backends.md), so the
    # report shows the faulting ud2 itself.
    Check(
        "crash",
        ("run", "--cmdline", "test=crash"),
        125,
        ("triple fault (KVM_EXIT_SHUTDOWN)", "code at rip (gpa", ": 0f 0b"),
    ),
    # The kick: --timeout must pull the vCPU out of a pause loop.
    Check("kick", ("run", "--cmdline", "test=spin", "--timeout", "2"), 124, ("guest stopped after --timeout 2s",)),
    # An upcall raised while interrupts are off, taken after `sti` (the interrupt-window
    # exit) and with the check after it (docs/abi.md section 8). Five rounds, not the
    # default twenty: a round takes tens of seconds here (the guest spins, see below).
    Check("irqwin-sti", ("run", "--cmdline", "test=irqwin mode=sti rounds=5"), 0, ("irqwin: mode=sti", "lost=0")),
    Check("irqwin-check", ("run", "--cmdline", "test=irqwin mode=check rounds=5"), 0, ("irqwin: mode=check", "lost=0")),
)
BY_NAME = {check.name: check for check in CHECKS}

# Never carried in the initramfs: the nested kernel mounts its own.
KERNEL_FILESYSTEMS = ("proc", "sys", "dev")

BOCHSRC = """\
megs: 1024
cpu: model=corei7_skylake_x, ips=100000000
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
ata0-master: type=cdrom, path={iso}, status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev={serial}
display_library: term
clock: sync=none, time0=local
log: {log}
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
mouse: enabled=0
"""

ISOLINUX_CFG = """\
default pyvmm
prompt 0
timeout 0
label pyvmm
  kernel /vmlinuz
  append initrd=/initrd.img console=ttyS0,115200 quiet panic=-1 rdinit=/init
"""


# --- what a pyvmm run opens ---------------------------------------------------------------

_CALL = re.compile(r'^(?P<pid>\d+)\s+(?P<call>\w+)\((?:(?:AT_FDCWD|-?\d+), )?"(?P<path>[^"]*)"')
_RESUMED = re.compile(r"^(?P<pid>\d+)\s+<\.\.\. (?P<call>\w+) resumed>")
_RESULT = re.compile(r"\)\s+=\s+(?P<ret>-?\d+|\?)")


def traced_paths(trace: str, cwd: str) -> set[str]:
    """Absolute paths that file system calls in an ``strace -f`` log succeeded on.

    A call split by another thread's (``<unfinished ...>`` then ``<... resumed>``) counts
    by its resumed line's result."""
    paths: set[str] = set()
    pending: dict[str, str] = {}
    for line in trace.splitlines():
        resumed = _RESUMED.match(line)
        if resumed:
            path = pending.pop(resumed["pid"], None)
            result = _RESULT.search(line)
            if path is not None and result and not result["ret"].startswith("-"):
                paths.add(path)
            continue
        call = _CALL.match(line)
        if call is None or not call["path"]:
            continue
        path = os.path.normpath(os.path.join(cwd, call["path"]))
        if line.endswith("<unfinished ...>"):
            pending[call["pid"]] = path
            continue
        result = _RESULT.search(line)
        if result and not result["ret"].startswith("-"):
            paths.add(path)
    return paths


def elf_interpreter(path: str) -> str | None:
    """The PT_INTERP of an ELF64 executable (the kernel opens it at execve, so strace never
    shows it), or None for anything else."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:5] != b"\x7fELF\x02":
                return None
            (phoff,) = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            for i in range(phnum):
                kind, _, offset, _, _, size = struct.unpack_from("<IIQQQQ", table, i * phentsize)
                if kind == 3:  # PT_INTERP
                    f.seek(offset)
                    return f.read(size).rstrip(b"\0").decode()
    except (OSError, struct.error, UnicodeDecodeError):
        return None
    return None


def file_entries(paths: set[str], rename: dict[str, str] | None = None) -> list[Entry]:
    """Initramfs entries for *paths* as they are on this host: each directory on the way,
    each symlink on the way (and what it points at), each file with its mode and mtime.

    *rename* maps a path prefix here to the one the nested side must see it under.
    Parents come before children; paths under the nested kernel's own file systems and
    paths that no longer exist are left out."""
    rename = rename or {}
    found: dict[str, Entry] = {}

    def nested_name(path: str) -> str:
        for old, new in rename.items():
            if path == old or path.startswith(old + "/"):
                path = new + path[len(old) :]
        return path.lstrip("/")

    def add(path: str, depth: int = 0) -> None:
        if path == "/" or depth > 40:  # 40: a symlink loop
            return
        parent = os.path.dirname(path)
        add(parent, depth + 1)
        # Each entry at its place with the directories' symlinks resolved: the archive
        # holds the symlink itself, then what it points at, never a path through it.
        here = os.path.join(os.path.realpath(parent), os.path.basename(path))
        if here in found:
            return
        try:
            st = os.lstat(here)
        except OSError:
            return
        name = nested_name(here)
        if os.path.islink(here):
            target = os.readlink(here)
            found[here] = Entry(name, LINK, target.encode())
            add(os.path.normpath(os.path.join(os.path.dirname(here), target)), depth + 1)
        elif os.path.isdir(here):
            found[here] = Entry(name, DIR | (st.st_mode & 0o7777), b"", int(st.st_mtime))
        elif os.path.isfile(here):
            with open(here, "rb") as f:
                data = f.read()
            found[here] = Entry(name, st.st_mode & 0o170777, data, int(st.st_mtime))

    for path in sorted(paths):
        if path.split("/")[1] not in KERNEL_FILESYSTEMS:
            add(path)
    for entry in list(found.values()):
        if entry.mode & 0o111 and entry.mode & 0o170000 == 0o100000:
            interpreter = elf_interpreter("/" + entry.name)
            if interpreter is not None:
                add(interpreter)
    # Sorted by name, a directory comes before what it holds.
    return sorted(found.values(), key=lambda e: e.name)


def nested_env(work: Path) -> dict[str, str]:
    """The environment every pyvmm command runs in, here (traced) and inside alike."""
    return {
        "HOME": "/tmp",
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "PYVMM_CACHE_DIR": str(work / "pyvmm-cache"),
        "PYTHONPYCACHEPREFIX": str(work / "pycache"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def trace_checks(python: Path, work: Path, checks: list[Check]) -> set[str]:
    """Run every check once to build the caches and bytecode, then again under strace;
    returns what the traced runs opened."""
    env = nested_env(work)
    warm = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    paths: set[str] = set()
    for check in checks:
        cmd = [str(python), "-m", "pyvmm", *check.args]
        subprocess.run(cmd, env=warm, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        log = work / f"strace-{check.name}.txt"
        proc = subprocess.run(
            ["strace", "-f", "-qq", "-e", "trace=%file,readlink", "-o", str(log), *cmd],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check.exit_code is not None and proc.returncode != check.exit_code:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:]
            raise CheckError(f"{check.name} on this host: exit {proc.returncode}, want {check.exit_code}: {tail}")
        paths |= traced_paths(log.read_text(errors="replace"), str(ROOT))
    return paths


def nested_guest_cache(work: Path) -> dict[str, str]:
    """The rename that makes the prebuilt bundled guest valid inside.

    pyvmm keys its guest cache on the sources' sizes and mtimes in ns (pyvmm.guest);
    an initramfs keeps whole seconds, so inside the key is the one of the sources
    with their mtimes truncated, computed here on a copy."""
    from pyvmm.guest import _fingerprint, source_dir

    src = source_dir()
    stage = work / "guest-stage"
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(src, stage, ignore=shutil.ignore_patterns("build"), symlinks=True)
    for path in stage.rglob("*"):
        if path.is_file() and not path.is_symlink():
            original = Path(src) / path.relative_to(stage)
            seconds = int(original.stat().st_mtime)
            os.utime(path, (seconds, seconds))
    cache = work / "pyvmm-cache"
    return {str(cache / f"guest-{_fingerprint(src)}"): str(cache / f"guest-{_fingerprint(str(stage))}")}


# --- the nested side ------------------------------------------------------------------------


def init_script(checks: list[Check], work: Path, python: Path, per_check: int) -> str:
    """The nested side's /init: the KVM modules, then each check, its output between markers."""
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in nested_env(work).items())
    lines = [
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "mkdir -p /proc /sys /dev /tmp",
        "mount -t proc proc /proc",
        "mount -t sysfs sys /sys",
        "mount -t devtmpfs dev /dev",
        "for m in $(cat /modules.order); do",
        f'    insmod /modules/$m.ko || echo "{MARK} insmod $m failed"',
        "done",
        "p=/sys/module/kvm_intel/parameters",
        f'[ -c /dev/kvm ] && echo "{MARK} kvm ept=$(cat $p/ept) vpid=$(cat $p/vpid) '
        f'unrestricted_guest=$(cat $p/unrestricted_guest)"',
        f'echo "{MARK} booted"',
    ]
    for check in checks:
        args = " ".join(shlex.quote(a) for a in check.args)
        lines += [
            f'echo "{MARK} check {check.name} start"',
            f"cd {shlex.quote(str(ROOT))} && env -i {env} timeout -s KILL {per_check} "
            f"{shlex.quote(str(python))} -m pyvmm {args} </dev/null 2>&1",
            f'echo "{MARK} check {check.name} exit $?"',
        ]
    lines += [f'echo "{MARK} done"', "sync", "poweroff -f"]
    return "\n".join(lines) + "\n"


def build_iso(work: Path, vmlinuz: Path, modules_dir: Path, files: list[Entry], init: str) -> Path:
    modules, order = nestedkit.kernel_modules(modules_dir, MODULES)
    entries = [Entry("bin", DIR), Entry("modules", DIR), nestedkit.busybox_entry(), *modules]
    entries += [e for e in files if e.name not in ("bin", "modules")]
    entries.append(Entry("modules.order", FILE, order.encode()))
    entries.append(Entry("init", EXEC, init.encode()))
    tree = work / "iso"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "isolinux").mkdir(parents=True)
    shutil.copy(ISOLINUX_BIN, tree / "isolinux" / "isolinux.bin")
    shutil.copy(LDLINUX_C32, tree / "isolinux" / "ldlinux.c32")
    (tree / "isolinux" / "isolinux.cfg").write_text(ISOLINUX_CFG)
    shutil.copy(vmlinuz, tree / "vmlinuz")
    (tree / "initrd.img").write_bytes(nestedkit.newc_archive(entries))
    iso = work / "boot.iso"
    nestedkit.run(
        ["genisoimage", "-quiet", "-o", str(iso), "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat",
         "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", "-J", "-R", str(tree)]
    )  # fmt: skip
    return iso


ISOLINUX_BIN = Path("/usr/lib/ISOLINUX/isolinux.bin")
LDLINUX_C32 = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")


# --- the run --------------------------------------------------------------------------------


@dataclass
class CheckRun:
    exit_code: int | None = None  # None while it runs (or if it never finished)
    output: list[str] = field(default_factory=list)
    started: float = 0.0  # host monotonic seconds
    seconds: float | None = None


@dataclass
class Outcome:
    booted: bool = False
    boot_seconds: float | None = None
    kvm: str | None = None  # kvm_intel's parameters, once /dev/kvm is there
    runs: dict[str, CheckRun] = field(default_factory=dict)
    current: str | None = None
    done: bool = False
    stopped: str | None = None  # why the host stopped Bochs early


def parse_line(line: str, outcome: Outcome, now: float, started: float) -> None:
    """Feed one console line into *outcome*; *now* and *started* are host monotonic seconds."""
    if not line.startswith(MARK):
        if outcome.current is not None:
            outcome.runs[outcome.current].output.append(line)
        return
    words = line[len(MARK) :].split()
    if words[:1] == ["booted"]:
        outcome.booted = True
        outcome.boot_seconds = now - started
    elif words[:1] == ["kvm"]:
        outcome.kvm = " ".join(words[1:])
    elif words[:1] == ["done"]:
        outcome.done = True
    elif words[:1] == ["check"] and len(words) >= 3:
        name, what = words[1], words[2]
        if what == "start":
            outcome.current = name
            outcome.runs[name] = CheckRun(started=now)
        elif what == "exit" and len(words) >= 4 and name in outcome.runs:
            run = outcome.runs[name]
            run.exit_code = int(words[3])
            run.seconds = now - run.started
            outcome.current = None


def verdict(check: Check, run: CheckRun | None) -> tuple[bool, str]:
    """PASS/FAIL of one check, and the line's text."""
    if run is None:
        return False, f"{check.name}: never started"
    if run.exit_code is None:
        return False, f"{check.name}: did not finish"
    took = f" ({run.seconds:.0f} s)" if run.seconds is not None else ""
    if check.exit_code is None:
        return True, f"{check.name}: pyvmm {' '.join(check.args)}: exit {run.exit_code}{took}"
    text = "\n".join(run.output)
    missing = [w for w in check.want if w not in text]
    if run.exit_code == 137:
        return False, f"{check.name}: killed at its timeout{took}"
    if run.exit_code != check.exit_code:
        last = run.output[-1].strip() if run.output else "no output"
        return False, f"{check.name}: exit {run.exit_code}, want {check.exit_code}{took}: {last}"
    if missing:
        return False, f"{check.name}: output lacks {missing[0]!r}{took}"
    return True, f"{check.name}: pyvmm {' '.join(check.args)}: exit {run.exit_code}{took}"


def report(outcome: Outcome, checks: list[Check], elapsed: float) -> bool:
    ok = True

    def line(passed: bool, what: str) -> None:
        nonlocal ok
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'} {what}")

    line(outcome.booted, f"boot of the nested kernel under Bochs ({outcome.boot_seconds or 0:.0f} s)")
    line(outcome.kvm is not None, f"kvm_intel loaded, /dev/kvm present ({outcome.kvm or 'no'})")
    for check in checks:
        passed, text = verdict(check, outcome.runs.get(check.name))
        if check.exit_code is None and passed:
            print(f"INFO {text}")  # a --run: there for its output
        else:
            line(passed, text)
    if outcome.stopped:
        print(f"INFO Bochs stopped early: {outcome.stopped}")
    graded = [c for c in checks if c.exit_code is not None]
    passed = sum(verdict(c, outcome.runs.get(c.name))[0] for c in graded)
    print(f"{'PASS' if ok else 'FAIL'} nested VMX: {passed} of {len(graded)} checks passed in {elapsed:.0f} s")
    return ok


def bochs_command(work: Path, iso: Path, seconds: float) -> list[str]:
    bochsrc = work / "bochsrc"
    bochsrc.write_text(BOCHSRC.format(iso=iso, serial=work / "serial.log", log=work / "bochs.log"))
    # Debian's build has the debugger on and stops in it at start: -rc feeds it `c`.
    (work / "bochs.rc").write_text("c\n")
    bochs = nestedkit.bounded(["bochs", "-q", "-f", str(bochsrc), "-rc", str(work / "bochs.rc")], seconds)
    # script(1) gives Bochs's term display the tty it insists on, in a session of its own
    # that a kill of script's process group misses: the shell records its pid, which
    # `timeout` (exec'd in its place) makes the process group of itself and Bochs.
    inner = f"echo $$ > {shlex.quote(str(work / PIDFILE))}; exec " + " ".join(shlex.quote(w) for w in bochs)
    return ["script", "-q", "-e", "-c", inner, "/dev/null"]


PIDFILE = "bochs.pgid"


@dataclass(frozen=True)
class Limits:
    deadline: float  # host monotonic seconds: the whole run
    boot: float  # seconds from Bochs's start to the nested side's "booted"
    per_check: float  # seconds a check runs inside before its timeout kills it


def run_bochs(command: list[str], work: Path, outcome: Outcome, limits: Limits, verbose: bool) -> None:
    """Run Bochs until the nested side is done, or a limit passes; Bochs is killed on every way out."""
    serial = work / "serial.log"
    serial.write_bytes(b"")
    (work / PIDFILE).unlink(missing_ok=True)
    started = time.monotonic()
    with (work / "bochs-term.log").open("wb") as term:
        proc = subprocess.Popen(command, cwd=work, stdin=subprocess.DEVNULL, stdout=term, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        with serial.open("rb") as console:
            pending = b""
            while True:
                chunk = console.read()
                now = time.monotonic()
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace").rstrip("\r")
                    parse_line(line, outcome, now, started)
                    if verbose:
                        print(line, flush=True)
                if outcome.done:
                    break
                if proc.poll() is not None:
                    outcome.stopped = outcome.stopped or f"Bochs exited ({proc.returncode}) before the checks were done"
                    break
                if now > limits.deadline:
                    outcome.stopped = "the whole run reached --timeout"
                    break
                if not outcome.booted and now - started > limits.boot:
                    outcome.stopped = f"no boot within {limits.boot:.0f} s"
                    break
                current = outcome.runs.get(outcome.current) if outcome.current else None
                # Inside, each check is under timeout -s KILL already; this bounds a nested
                # kernel that no longer runs its userspace at all.
                if current is not None and now - current.started > limits.per_check + 60:
                    outcome.stopped = f"{outcome.current} overran its timeout: the nested kernel is stuck"
                    break
                if not chunk:
                    time.sleep(0.5)
    finally:
        stop(proc, work / PIDFILE)


def stop(proc: subprocess.Popen, pidfile: Path) -> None:
    """Kill Bochs's process group and script's."""
    groups = [proc.pid]
    try:
        groups.insert(0, int(pidfile.read_text()))
    except (OSError, ValueError):
        pass  # script never started the shell
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


def ensure_packages() -> None:
    nestedkit.ensure_packages(
        {
            "bochs": nestedkit.have("bochs"),
            "bochsbios": Path("/usr/share/bochs/BIOS-bochs-latest").is_file(),
            "vgabios": Path("/usr/share/vgabios/vgabios.bin").is_file(),
            "bochs-term": nestedkit.installed("bochs-term"),
            "isolinux": ISOLINUX_BIN.is_file(),
            "syslinux-common": LDLINUX_C32.is_file(),
            "genisoimage": nestedkit.have("genisoimage"),
            "strace": nestedkit.have("strace"),
            "bsdutils": nestedkit.have("script"),
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", nargs="*", choices=list(BY_NAME), help="default: all of them, in this order")
    parser.add_argument(
        "--run", action="append", default=[], metavar="ARGS", help="also run `pyvmm ARGS` inside, output shown"
    )
    parser.add_argument("--timeout", type=int, default=1500, help="the whole run, in seconds")
    parser.add_argument("--timeout-per-check", type=int, default=400)
    parser.add_argument("--boot-timeout", type=int, default=600)
    parser.add_argument(
        "--workdir", type=Path, help="keep the ISO, traces and logs here (default: a temporary directory)"
    )
    parser.add_argument("--verbose", action="store_true", help="pass the nested console through")
    args = parser.parse_args(argv)

    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        print(
            "no .venv: create it first (python3 -m venv .venv && .venv/bin/pip install -e '.[test]')", file=sys.stderr
        )
        return 2
    checks = [BY_NAME[n] for n in args.checks] if args.checks is not None else list(CHECKS)
    try:
        checks += [Check(f"run-{i}", tuple(shlex.split(line)), None) for i, line in enumerate(args.run, start=1)]
    except ValueError as exc:
        print(f"--run: {exc}", file=sys.stderr)
        return 2
    if not checks:
        print("nothing to run: --checks names none and there is no --run", file=sys.stderr)
        return 2
    temporary = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="pyvmm-vmx-")) if temporary else args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    outcome = Outcome()
    nestedkit.exit_on_sigterm()
    try:
        ensure_packages()
        vmlinuz, modules_dir, version = nestedkit.fetch_kernel(work)
        t0 = time.monotonic()
        paths = trace_checks(python, work, checks)
        files = file_entries(paths, nested_guest_cache(work))
        init = init_script(checks, work, python, args.timeout_per_check)
        iso = build_iso(work, vmlinuz, modules_dir, files, init)
        size = (work / "iso" / "initrd.img").stat().st_size / 2**20
        print(
            f"nested VMX: kernel {version}, {len(checks)} checks, initramfs {len(files)} traced paths "
            f"({size:.0f} MiB), built in {time.monotonic() - t0:.0f} s; booting Bochs",
            flush=True,
        )
        limits = Limits(started + args.timeout, args.boot_timeout, args.timeout_per_check)
        command = bochs_command(work, iso, limits.deadline - time.monotonic() + 30)
        run_bochs(command, work, outcome, limits, args.verbose)
    except (CheckError, subprocess.TimeoutExpired) as exc:
        print(f"FAIL nested VMX: {exc}")
        return 1
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)
    for check in checks:
        run = outcome.runs.get(check.name)
        if run is not None:
            print(f"{check.name}: pyvmm {' '.join(check.args)}")
            for text in run.output:
                print(f"    {text}")
    ok = report(outcome, checks, time.monotonic() - started)
    if not ok and not temporary:
        print(f"console log: {work / 'serial.log'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
