"""``pyvmm bench --hw-api``: each workload through the system-call API and the hardware API.

Every comparison class runs twice: a timing pass under the default run loop (the
latencies, and the host CPU time and KVM's own exit counters read at the guest's
two markers around the timed phase), and a shorter counting pass under the
``--stats`` loop, whose ``KVM_RUN`` count between the markers is the exits that
reached pyvmm. The markers are extension hypercall ``EXT_BASE + 1`` (the bench
program calls it only when the host registered it), outside every timed window.

Per workload the table gives, for each API: median and p99 latency, exits per
operation (to pyvmm; all, as KVM counts them, in-kernel ones included), host CPU
per operation (every thread of the process: vCPUs, guest time, pyvmm's threads),
the device state a snapshot would have to save, and the lines of pyvmm code that
serve the operation once the VM runs. docs/hwapi.md explains each figure.
"""

from __future__ import annotations

import ast
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyvmm.bench.classes import BenchClass

#: Extension hypercall the bench program calls at the start (0) and end (1) of its timed phase.
MARK_OFFSET = 1
#: KVM's per-vCPU counters read at the markers (pyvmm.kvm.stats).
KVM_COUNTERS = ("exits", "io_exits", "halt_exits", "irq_injections", "insn_emulation")
#: Iterations of the counting pass (the --stats loop is slower; counts need few).
COUNT_ITERS = 100

_PKG = Path(__file__).resolve().parent.parent
#: The pyvmm modules that serve each workload once the VM runs (setup-only code left out).
SERVING: dict[str, tuple[str, ...]] = {
    "sc-notify": ("paravirt/calls/events.py", "paravirt/events.py", "paravirt/calls/sched.py"),
    "sc-timer": ("paravirt/calls/sched.py", "paravirt/timers.py", "devices/timer.py", "paravirt/events.py"),
    "sc-console": ("paravirt/calls/core.py", "devices/console.py", "devices/outbuf.py"),
    # The in-kernel LAPIC serves IPIs, EOIs and its timer without leaving KVM: no pyvmm code.
    "hw-notify": (),
    # The doorbell (ioeventfd = irqfd) is wired at build time; at run time KVM alone serves it.
    "sc-notify-kernel": (),
    "hw-timer": (),
    "hw-console": ("hw/uart.py", "hw/ports.py", "devices/console.py", "devices/outbuf.py"),
    "sc-disk": ("paravirt/calls/core.py", "devices/block.py"),
    "hw-disk": ("hw/virtio_blk.py", "hw/mmio.py", "devices/block.py"),
}


@dataclass
class Mark:
    cpu_ns: int
    kvm: dict[str, int]
    to_pyvmm: int | None  # KVM_RUN returns so far (counting pass only)


@dataclass
class Figures:
    """The per-operation figures of one comparison class (medians are in the Result)."""

    ops: int = 0
    exits_to_pyvmm: float | None = None
    kvm_exits: dict[str, float] = field(default_factory=dict)
    cpu_ns: float | None = None
    state_bytes: dict[str, int] = field(default_factory=dict)
    vmm_lines: int = 0
    vmm_files: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {
            "ops": self.ops,
            "exits_to_pyvmm_per_op": _round(self.exits_to_pyvmm),
            "kvm_exits_per_op": {k: _round(v) for k, v in self.kvm_exits.items()},
            "host_cpu_ns_per_op": _round(self.cpu_ns),
            "device_state_bytes": self.state_bytes,
            "device_state_total": sum(self.state_bytes.values()),
            "vmm_lines": self.vmm_lines,
            "vmm_files": list(self.vmm_files),
        }


def _round(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.4g}")


class Probe:
    """Attached to one bench VM before it runs: serves the marker, reads the counters."""

    def __init__(self, cls: BenchClass) -> None:
        self.cls = cls
        self.marks: dict[int, Mark] = {}
        self._stats: list = []
        self._metrics = None

    def attach(self, machine) -> None:
        from pyvmm.extensions import Extensions
        from pyvmm.kvm import Cap
        from pyvmm.kvm.stats import VcpuStats
        from pyvmm.paravirt.abi import EXT_BASE

        if machine.kvm.check_extension(Cap.BINARY_STATS_FD):
            self._stats = [VcpuStats(v.fd.stats_fd()) for v in machine.vcpus]
        self._metrics = machine.metrics
        ext = Extensions()
        ext.hypercall(EXT_BASE + MARK_OFFSET, self._mark)
        ext.attach(machine)

    def _mark(self, vcpu_id: int, args: tuple, memory) -> int:
        kvm: dict[str, int] = {}
        for st in self._stats:
            for k, v in st.read(KVM_COUNTERS).items():
                kvm[k] = kvm.get(k, 0) + v
        to_pyvmm = None
        if self._metrics is not None:
            to_pyvmm = self._metrics.summary().total_kvm_run.count
        self.marks[int(args[0]) & 1] = Mark(time.process_time_ns(), kvm, to_pyvmm)
        return 0

    def window(self) -> tuple[Mark, Mark] | None:
        if 0 in self.marks and 1 in self.marks:
            return self.marks[0], self.marks[1]
        return None

    def state_bytes(self, machine) -> dict[str, int]:
        """What a snapshot must save for the devices serving this workload, measured on
        the machine after its run."""
        serving = self.cls.serving
        hw = machine.hw
        if serving == "sc-notify-kernel":
            rows = json.dumps(machine.events.export_state(), separators=(",", ":"))
            return {"event_ports": len(rows.encode()), "lapic": hw.state_bytes(len(machine.vcpus))["lapic"]}
        if serving.startswith("hw-"):
            figures = hw.state_bytes(len(machine.vcpus))
            if serving == "hw-console":
                return {"uart": figures["uart"]}
            if serving == "hw-disk":
                return {"virtio_blk": figures["virtio_blk"]}
            out = {"lapic": figures["lapic"]}
            if serving == "hw-timer":
                out["tsc_deadline_msr"] = 8 * len(machine.vcpus)
            return out
        if serving in ("sc-console", "sc-disk"):
            return {}  # no mutable device state: a snapshot records the channel's handle and path
        rows = json.dumps(machine.events.export_state(), separators=(",", ":"))
        out = {"event_ports": len(rows.encode())}
        if serving == "sc-timer":
            out["timer_deadline"] = 8 * len(machine.vcpus)
        return out

    def close(self) -> None:
        for st in self._stats:
            st.close()
        self._stats = []


def code_lines(rel: str) -> int:
    """Lines of code in pyvmm/*rel*: not blank, not a comment, not a docstring."""
    text = (_PKG / rel).read_text()
    doc: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                doc.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    return sum(
        1
        for i, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#") and i not in doc
    )


def figures(cls: BenchClass, timing: Probe, counting: Probe | None, ops: int, count_ops: int, state) -> Figures:
    """Per-operation figures from the two passes' markers."""
    f = Figures(ops=ops, state_bytes=state)
    w = timing.window()
    if w is not None and ops:
        a, b = w
        f.cpu_ns = (b.cpu_ns - a.cpu_ns) / ops
        f.kvm_exits = {k: (b.kvm.get(k, 0) - a.kvm.get(k, 0)) / ops for k in b.kvm}
    cw = counting.window() if counting is not None else None
    if cw is not None and count_ops and cw[0].to_pyvmm is not None:
        f.exits_to_pyvmm = (cw[1].to_pyvmm - cw[0].to_pyvmm) / count_ops
    f.vmm_files = SERVING.get(cls.serving, ())
    f.vmm_lines = sum(code_lines(rel) for rel in f.vmm_files)
    return f


def _api(cls: BenchClass) -> str:
    return cls.api or ("hardware" if cls.hw_api else "syscall")


def _f(v: float | None, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def format_comparison(results) -> list[str]:
    """The side-by-side table, one block per workload (empty without comparison rows)."""
    rows = [r for r in results if r.cls.serving and r.compare is not None and r.dist is not None]
    if not rows:
        return []
    lines = [
        "",
        "system-call API vs hardware API, per operation (docs/hwapi.md):",
        f"{'workload':<20} {'API':<14} {'median ns':>11} {'p99 ns':>11} {'exits->pyvmm':>12} {'KVM exits':>9}"
        f" {'host CPU ns':>11} {'state B':>8} {'VMM lines':>9}",
    ]
    by_workload: dict[str, list] = {}
    for r in rows:
        by_workload.setdefault(r.cls.workload, []).append(r)
    for workload, pair in by_workload.items():
        for r in pair:
            c = r.compare
            lines.append(
                f"{workload:<20} {_api(r.cls):<14} {_f(r.dist.median):>11} {_f(r.dist.p99):>11}"
                f" {_f(c.exits_to_pyvmm, '.2f'):>12} {_f(c.kvm_exits.get('exits'), '.2f'):>9}"
                f" {_f(c.cpu_ns):>11} {sum(c.state_bytes.values()):>8} {c.vmm_lines:>9}"
            )
        verdict = verdict_line(pair)
        if verdict:
            lines.append(f"{'':<20} {verdict}")
    return lines


def verdict_line(pair) -> str | None:
    """``median: hardware / syscall = 0.42 (faster)`` for a workload measured more than one way."""
    sc = next((r for r in pair if _api(r.cls) == "syscall"), None)
    others = [r for r in pair if r is not sc]
    if sc is None or not others or sc.dist.median <= 0:
        return None
    parts = []
    for r in others:
        ratio = r.dist.median / sc.dist.median
        parts.append(f"{_api(r.cls)} / syscall = {ratio:.2f} ({'faster' if ratio < 1 else 'slower'})")
    return "median: " + "; ".join(parts)


def comparison_json(results) -> list[dict]:
    """Per workload: both sides' figures and the hardware / syscall median ratio."""
    out: dict[str, dict] = {}
    for r in results:
        if not r.cls.serving or r.dist is None or r.compare is None:
            continue
        entry = out.setdefault(r.cls.workload, {"workload": r.cls.workload})
        entry[_api(r.cls)] = {"class": r.cls.name, "median_ns": r.dist.median, "p99_ns": r.dist.p99}
        entry[_api(r.cls)].update(r.compare.to_json())
    for entry in out.values():
        base = entry.get("syscall", {}).get("median_ns", 0)
        for api in ("hardware", "syscall+kernel"):
            if api in entry and base > 0:
                key = "hardware_over_syscall" if api == "hardware" else "in_kernel_notify_over_syscall"
                entry[key] = round(entry[api]["median_ns"] / base, 3)
    return list(out.values())
