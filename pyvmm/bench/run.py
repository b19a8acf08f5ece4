"""Running benchmark classes: one fresh VM per guest class, samples read out of guest memory."""

from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyvmm.bench.classes import BASELINE_A, CLASSES, NULL, BenchClass, Group
from pyvmm.bench.compare import COUNT_ITERS, Figures, Probe, figures
from pyvmm.bench.stats import Distribution
from pyvmm.paravirt import abi
from pyvmm.paravirt.abi import Feature, Layout

#: The port the in-kernel baseline writes; matched by KVM_IOEVENTFD, never a userspace exit.
IOEVENTFD_PORT = 0x510
_RESULT = re.compile(r"bench: name=(\S+) count=(\d+) samples=(0x[0-9a-f]+) tsc_khz=(\d+) errors=(\d+)")
_STATS_CLASS = "fp-stats"


class BenchError(Exception):
    """A benchmark could not run (no KVM, the guest failed...): one line for the user."""


@dataclass(frozen=True)
class Params:
    iters: int = 5000
    warmup: int = 500
    reps: int = 5

    @classmethod
    def quick(cls) -> Params:
        return cls(iters=300, warmup=30, reps=2)

    def for_class(self, cls: BenchClass) -> Params:
        iters = max(10, int(self.iters * cls.iter_scale))
        return Params(iters, max(1, int(self.warmup * cls.iter_scale)), self.reps)


@dataclass
class Result:
    cls: BenchClass
    dist: Distribution | None = None
    samples: list[float] = field(default_factory=list, repr=False)
    skipped: str | None = None
    errors: int = 0
    ratio: float | None = None  # median / median of baseline (a)
    compare: Figures | None = None  # comparison classes (--hw-api): per-op exits, CPU, state, lines
    null_ratio: float | None = None  # median / median of the null class (pyvmm hypercall rows)

    @property
    def throughput_gb_s(self) -> float | None:
        if self.dist is None or not self.cls.bytes_per_op or self.dist.median <= 0:
            return None
        return self.cls.bytes_per_op / self.dist.median  # bytes per ns == GB/s

    @property
    def per_call_ns(self) -> float | None:
        if self.dist is None or self.cls.calls_per_op <= 1:
            return None
        return self.dist.median / self.cls.calls_per_op


@dataclass
class GuestRun:
    samples_ns: list[float]
    errors: int
    tsc_khz: int
    metrics: object | None = None
    state_bytes: dict | None = None


#: What ``--hw-api`` runs besides the comparison classes: the same-run baselines (a), (b).
HW_API_BASELINES = (BASELINE_A, "base-ioeventfd")


def select(names: list[str] | None, hw_api: bool = False) -> list[BenchClass]:
    """Classes named by ``--only`` (exact names, or a prefix before '-': ``send`` = every send-*);
    with none, every class (``--hw-api``: only the comparison and the baselines (a), (b))."""
    if not names:
        if hw_api:
            return [c for c in CLASSES if c.group is Group.COMPARE or c.name in HW_API_BASELINES]
        return list(CLASSES)
    wanted = [n.strip() for arg in names for n in arg.split(",") if n.strip()]
    chosen = []
    for name in wanted:
        hits = [c for c in CLASSES if c.name == name or c.name.startswith(name + "-")]
        if not hits:
            raise BenchError(f"--only: no benchmark class '{name}' (see 'pyvmm bench --list')")
        chosen += [c for c in hits if c not in chosen]
    return [c for c in CLASSES if c in chosen]  # table order


def _kvm_path() -> str:
    return os.environ.get("PYVMM_KVM_DEVICE", "/dev/kvm")


def _memory_for(cls: BenchClass, p: Params) -> int:
    need = p.iters * p.reps * 4 + cls.size + (16 << 20)  # kernel image, stacks, slack
    return max(64 << 20, (need + (2 << 20) - 1) & ~((2 << 20) - 1))


def _features(machine) -> int:
    raw = machine.memory.read(Layout.BOOT_INFO, ctypes.sizeof(abi.BootInfo))
    return abi.BootInfo.from_buffer_copy(raw).features


def _missing(cls: BenchClass, offered: int) -> str | None:
    missing = Feature(cls.features & ~offered)
    if not missing:
        return None
    have = "|".join(f.name for f in Feature if f & offered) or "none"
    need = "|".join(f.name for f in Feature if f & missing)
    return f"needs ABI feature {need}; this VMM offers {have}"


class Skip(Exception):  # noqa: N818 - control flow
    """The class cannot run here; the message says why."""


def _add_host_extras(kind: str, machine) -> None:
    """What a user adds through the public API (:mod:`pyvmm.extensions`), doing nothing."""
    from pyvmm.extensions import Extensions
    from pyvmm.paravirt.abi import EXT_BASE

    ext = Extensions()
    if kind == "ext":
        ext.hypercall(EXT_BASE, lambda vcpu_id, args, memory: 0)
    elif kind == "hook":
        ext.on("hypercall", lambda vcpu_id, nr, args, result, ns: None)
    ext.attach(machine)


def run_guest(cls: BenchClass, p: Params, kernel: Path, probe: Probe | None = None, stats: bool = False) -> GuestRun:
    """Boot the bundled kernel with ``test=bench`` for *cls* and collect its samples (ns).

    *probe* (comparison classes) is attached before the run and measures the device
    state after it; *stats* runs the ``--stats`` loop (the counting pass)."""
    from pyvmm.bench.loops import LOOPS
    from pyvmm.kvm import KvmError
    from pyvmm.loader import LoaderError
    from pyvmm.machine import Machine, MachineConfig, MachineError, StopReason
    from pyvmm.metrics import Metrics
    from pyvmm.statshooks import stats_loop

    cmdline = (
        f"test=bench bench={cls.guest} iters={p.iters} warmup={p.warmup} reps={p.reps} "
        f"size={cls.size} port={IOEVENTFD_PORT:#x}"
    )
    with tempfile.TemporaryFile() as console, tempfile.TemporaryDirectory(prefix="pyvmm-bench-") as tmp:
        channels = ()
        if cls.disk:  # a real file on the temporary directory's filesystem: CHANNEL_FLUSH is its fsync
            from pyvmm.devices.spec import DiskSpec

            path = os.path.join(tmp, "disk.img")
            with open(path, "wb") as f:
                f.truncate(cls.disk)
            channels = (DiskSpec("disk0", path),)
        config = MachineConfig(
            channels=channels,
            kernel=kernel,
            memory=_memory_for(cls, p),
            cmdline=cmdline,
            vcpus=cls.vcpus,
            timeout=600,
            console_fd=console.fileno(),
            kvm_path=_kvm_path(),
            null_sink=True,
            stats=cls.loop == "stats" or stats,
            hw_api=cls.hw_api,
        )
        try:
            machine = Machine(config)
        except (KvmError, LoaderError, MachineError) as e:
            if cls.hw_api and str(e).startswith("--hw-api"):
                raise Skip(str(e)) from None  # the backend lacks the hardware: one line, the rest runs
            raise BenchError(str(e)) from None
        efd = -1
        try:
            why = _missing(cls, _features(machine))
            if why:
                raise Skip(why)
            if cls.guest == "ioeventfd":
                efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
                machine.vm.ioeventfd(efd, IOEVENTFD_PORT, 4)
            if cls.host is not None:
                _add_host_extras(cls.host, machine)
            if probe is not None:
                probe.attach(machine)
            if cls.loop == "stats":
                machine.metrics = Metrics(keep_samples=True)
                machine.loop = stats_loop(machine.metrics)
            elif cls.loop != "pyvmm":
                machine.loop = LOOPS[cls.loop]
            result = machine.run()
            console.seek(0)
            text = console.read().decode(errors="replace")
            last = (text.strip().splitlines() or ["(no output)"])[-1]
            if result.reason is StopReason.CRASH:
                raise BenchError(f"{cls.name}: the guest crashed: {result.crash.reason if result.crash else '?'}")
            if result.exit_code == 3:
                raise Skip(f"the guest cannot run it: {last.removeprefix('bench: ')}")
            if result.exit_code == 2 and "unknown bench" in last:
                raise Skip(f"the bundled guest has no '{cls.guest}' benchmark yet")
            if result.exit_code != 0:
                raise BenchError(f"{cls.name}: the guest exited with {result.exit_code}: {last}")
            m = _RESULT.search(text)
            if m is None:
                raise BenchError(f"{cls.name}: the guest printed no result line: {last}")
            count, gpa, khz, errors = int(m[2]), int(m[3], 16), int(m[4]), int(m[5])
            if khz == 0:
                raise BenchError("the guest's TSC frequency is unknown (KVM_GET_TSC_KHZ failed): no time base")
            raw = array("I")
            raw.frombytes(machine.memory.read(gpa, count * 4))
            scale = 1e6 / khz
            state = probe.state_bytes(machine) if probe is not None else None
            return GuestRun([c * scale for c in raw], errors, khz, machine.metrics, state)
        finally:
            if efd >= 0:
                os.close(efd)
            if probe is not None:
                probe.close()
            machine.close()


def run_syscall_c(p: Params) -> list[float]:
    from pyvmm.bench.native import native

    n = p.iters * p.reps
    out = (ctypes.c_uint32 * n)()
    lib = native()
    lib.pyvmm_syscall_loop(max(1, p.warmup), 10, out)  # warm-up
    lib.pyvmm_syscall_loop(n, 10, out)
    return [float(x) for x in out]


def run_syscall_py(p: Params) -> list[float]:
    getppid = os.getppid
    clock = time.perf_counter_ns
    samples = []
    for i in range(p.warmup + p.iters * p.reps):
        t0 = clock()
        getppid(), getppid(), getppid(), getppid(), getppid()
        getppid(), getppid(), getppid(), getppid(), getppid()
        if i >= p.warmup:
            samples.append((clock() - t0) / 10)
    return samples


Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_all(classes: list[BenchClass], p: Params, progress: Progress = _stderr) -> list[Result]:
    """Run *classes*; the split rows come from the --stats run, ratios from baseline (a)."""
    from pyvmm.guest import GuestBuildError, bundled_kernel

    try:
        kernel = bundled_kernel()
    except GuestBuildError as e:
        raise BenchError(str(e)) from None
    names = {c.name for c in classes}
    needs_stats = any(c.group is Group.SPLIT for c in classes) or _STATS_CLASS in names
    ratio_wanted = any(c.ratio for c in classes)
    todo = [c for c in classes if c.group is not Group.SPLIT]
    if needs_stats and _STATS_CLASS not in names:
        todo.append(next(c for c in CLASSES if c.name == _STATS_CLASS))
    if ratio_wanted and BASELINE_A not in names:
        todo.insert(0, next(c for c in CLASSES if c.name == BASELINE_A))
    if any(c.vs_null for c in classes) and NULL not in names:
        todo.insert(0, next(c for c in CLASSES if c.name == NULL))
    results: dict[str, Result] = {}
    for i, cls in enumerate(todo, 1):
        cp = p.for_class(cls)
        started = time.monotonic()
        res = Result(cls)
        try:
            if cls.name == "base-syscall-c":
                res.samples = run_syscall_c(cp)
            elif cls.name == "base-syscall-py":
                res.samples = run_syscall_py(cp)
            elif cls.group is Group.COMPARE:
                res.samples, res.errors, res.compare = run_compared(cls, cp, kernel)
            else:
                run = run_guest(cls, cp, kernel)
                res.samples, res.errors = run.samples_ns, run.errors
                if cls.name == _STATS_CLASS and run.metrics is not None:
                    _split_results(run.metrics, results)
            res.dist = Distribution.of(res.samples, cp.reps if cls.guest else 1)
            shown = f"median {res.dist.median:,.0f} ns, p99 {res.dist.p99:,.0f} ns"
        except Skip as e:
            res.skipped = str(e)
            shown = f"skipped: {e}"
        except Exception as e:
            if isinstance(e, BenchError):
                raise
            from pyvmm.bench.native import NativeBuildError

            if isinstance(e, NativeBuildError):
                raise BenchError(str(e)) from None
            raise
        results[cls.name] = res
        progress(f"[{i}/{len(todo)}] {cls.name:<16} {shown} ({time.monotonic() - started:.1f}s)")
    apply_ratios(results)
    order = [c.name for c in CLASSES]
    return sorted(results.values(), key=lambda r: order.index(r.cls.name))


def run_compared(cls: BenchClass, p: Params, kernel: Path) -> tuple[list[float], int, Figures]:
    """A comparison class: the timing pass, then the counting pass (see pyvmm.bench.compare)."""
    timing = Probe(cls)
    run = run_guest(cls, p, kernel, probe=timing)
    cp = Params(min(p.iters, COUNT_ITERS), min(p.warmup, COUNT_ITERS // 10), 1)
    counting = Probe(cls)
    run_guest(cls, cp, kernel, probe=counting, stats=True)
    figs = figures(cls, timing, counting, p.iters * p.reps, cp.iters * cp.reps, run.state_bytes or {})
    return run.samples_ns, run.errors, figs


def apply_ratios(results: dict[str, Result]) -> None:
    """Medians as ratios: to baseline (a) where the class shows one, and, for pyvmm's own hypercall rows, to null."""
    base = results.get(BASELINE_A)
    base_median = base.dist.median if base and base.dist else None
    null = results.get(NULL)
    null_median = null.dist.median if null and null.dist else None
    for res in results.values():
        if res.dist is not None and res.cls.ratio and base_median:
            res.ratio = res.dist.median / base_median
        if res.dist is not None and res.cls.group is Group.PYVMM and null_median:
            res.null_ratio = res.dist.median / null_median


def _split_results(metrics, results: dict[str, Result]) -> None:
    from pyvmm.bench.classes import BY_NAME

    kvm_run, vmm = metrics.samples()
    for name, samples in (("exit-kvm-run", kvm_run), ("exit-pyvmm", vmm)):
        if samples:
            floats = [float(x) for x in samples]
            results[name] = Result(BY_NAME[name], Distribution.of(floats), floats)
