"""Exit and hypercall metrics, Firecracker-style: counters with (count, sum, min, max) time aggregates.

Filled only by the hooks of :mod:`pyvmm.statshooks` (chosen by
``MachineConfig.stats`` / ``pyvmm run --stats``); the default loop pays
nothing for them. Each vCPU thread updates its own :class:`VcpuMetrics`, so
the hot path takes no lock; :meth:`Metrics.summary` merges them.

Per exit the loop records two times: inside ``KVM_RUN`` (guest running plus
the kernel's exit and entry) and in pyvmm's own code (from ``KVM_RUN``'s
return until the exit is handled and the next entry is ready). Per hypercall
number it records the handler's time and how many calls failed (``-errno``).
Time a handler spends waiting (``BLOCK``) counts as that handler's time.
"""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass

from pyvmm.kvm.constants import ExitReason
from pyvmm.paravirt.abi import Hypercall
from pyvmm.paravirt.dispatcher import Dispatcher

#: Pseudo exit reason for a ``KVM_RUN`` that returned EINTR/EAGAIN (a kick), not an exit.
INTERRUPTED = -1
#: Slot of the per-hypercall table that collects numbers outside the handler table.
OUT_OF_RANGE = Dispatcher.SIZE

_BIG = 1 << 62


def new_agg() -> list[int]:
    """A mutable ``[count, sum, min, max]`` aggregate: the form the hot path updates inline."""
    return [0, 0, _BIG, 0]


def add(agg: list[int], ns: int) -> None:
    agg[0] += 1
    agg[1] += ns
    if ns < agg[2]:
        agg[2] = ns
    if ns > agg[3]:
        agg[3] = ns


@dataclass(frozen=True)
class Aggregate:
    """Count and time aggregate in nanoseconds."""

    count: int = 0
    sum_ns: int = 0
    min_ns: int = 0
    max_ns: int = 0

    @classmethod
    def of(cls, agg: list[int]) -> Aggregate:
        return cls(agg[0], agg[1], agg[2] if agg[0] else 0, agg[3])

    @property
    def mean_ns(self) -> float:
        return self.sum_ns / self.count if self.count else 0.0

    def merge(self, other: Aggregate) -> Aggregate:
        if not other.count:
            return self
        if not self.count:
            return other
        return Aggregate(
            self.count + other.count,
            self.sum_ns + other.sum_ns,
            min(self.min_ns, other.min_ns),
            max(self.max_ns, other.max_ns),
        )

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "sum_ns": self.sum_ns,
            "min_ns": self.min_ns,
            "max_ns": self.max_ns,
            "mean_ns": round(self.mean_ns, 1),
        }


class VcpuMetrics:
    """One vCPU's raw counters; only that vCPU's thread writes them."""

    def __init__(self, keep_samples: bool = False) -> None:
        self.kvm_run: dict[int, list[int]] = {}  # exit reason -> time inside KVM_RUN
        self.vmm: dict[int, list[int]] = {}  # exit reason -> time in pyvmm's own code
        self.hypercalls = [new_agg() for _ in range(OUT_OF_RANGE + 1)]
        self.errors = [0] * (OUT_OF_RANGE + 1)
        # Per hypercall exit, in order (for quantiles): only when asked, e.g. by `pyvmm bench`.
        self.samples_kvm_run: array | None = array("q") if keep_samples else None
        self.samples_vmm: array | None = array("q") if keep_samples else None


def exit_name(reason: int) -> str:
    if reason == INTERRUPTED:
        return "INTERRUPTED"
    try:
        return ExitReason(reason).name
    except ValueError:
        return f"EXIT_{reason}"


def hypercall_name(nr: int) -> str:
    if nr == OUT_OF_RANGE:
        return f"nr>={OUT_OF_RANGE}"
    try:
        return Hypercall(nr).name
    except ValueError:
        return f"nr{nr}"


@dataclass(frozen=True)
class ExitSummary:
    name: str
    kvm_run: Aggregate
    vmm: Aggregate

    def to_dict(self) -> dict:
        return {"count": self.kvm_run.count, "kvm_run": self.kvm_run.to_dict(), "vmm": self.vmm.to_dict()}


@dataclass(frozen=True)
class HypercallSummary:
    name: str
    time: Aggregate
    errors: int

    def to_dict(self) -> dict:
        return {"count": self.time.count, "errors": self.errors, "handler": self.time.to_dict()}


@dataclass(frozen=True)
class Summary:
    exits: list[ExitSummary]
    hypercalls: list[HypercallSummary]

    @property
    def total_kvm_run(self) -> Aggregate:
        return _sum(e.kvm_run for e in self.exits)

    @property
    def total_vmm(self) -> Aggregate:
        return _sum(e.vmm for e in self.exits)

    def exit(self, name: str) -> ExitSummary | None:
        return next((e for e in self.exits if e.name == name), None)

    def hypercall(self, name: str) -> HypercallSummary | None:
        return next((h for h in self.hypercalls if h.name == name), None)

    def to_dict(self) -> dict:
        return {
            "exits": {e.name: e.to_dict() for e in self.exits},
            "hypercalls": {h.name: h.to_dict() for h in self.hypercalls},
            "total": {"kvm_run": self.total_kvm_run.to_dict(), "vmm": self.total_vmm.to_dict()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def format(self) -> str:
        """The table ``pyvmm run --stats`` prints (microseconds)."""

        def us(ns: float) -> str:
            return f"{ns / 1000:.2f}"

        lines = ["exit reason          count   KVM_RUN mean/min/max us         pyvmm mean/min/max us"]
        for e in [*self.exits, ExitSummary("total", self.total_kvm_run, self.total_vmm)]:
            k, v = e.kvm_run, e.vmm
            lines.append(
                f"{e.name:<16} {k.count:>9}   {us(k.mean_ns):>9} {us(k.min_ns):>9} {us(k.max_ns):>11}"
                f"   {us(v.mean_ns):>9} {us(v.min_ns):>9} {us(v.max_ns):>11}"
            )
        lines.append("")
        lines.append("hypercall            count    errors   handler mean/min/max us")
        for h in self.hypercalls:
            t = h.time
            lines.append(
                f"{h.name:<16} {t.count:>9} {h.errors:>9}   {us(t.mean_ns):>9} {us(t.min_ns):>9} {us(t.max_ns):>11}"
            )
        return "\n".join(lines)


def _sum(aggs) -> Aggregate:
    total = Aggregate()
    for a in aggs:
        total = total.merge(a)
    return total


class Metrics:
    """The VM's metrics: one :class:`VcpuMetrics` per vCPU, merged on demand."""

    def __init__(self, keep_samples: bool = False) -> None:
        self.keep_samples = keep_samples
        self.vcpus: dict[int, VcpuMetrics] = {}

    def for_vcpu(self, vcpu_id: int) -> VcpuMetrics:
        # Called once per vCPU thread at loop start; dict insertion is atomic under the GIL.
        m = self.vcpus.get(vcpu_id)
        if m is None:
            m = self.vcpus[vcpu_id] = VcpuMetrics(self.keep_samples)
        return m

    def summary(self) -> Summary:
        run: dict[int, Aggregate] = {}
        vmm: dict[int, Aggregate] = {}
        hc = [Aggregate()] * (OUT_OF_RANGE + 1)
        errors = [0] * (OUT_OF_RANGE + 1)
        for m in self.vcpus.values():
            for reason, agg in m.kvm_run.items():
                run[reason] = run.get(reason, Aggregate()).merge(Aggregate.of(agg))
            for reason, agg in m.vmm.items():
                vmm[reason] = vmm.get(reason, Aggregate()).merge(Aggregate.of(agg))
            for nr, agg in enumerate(m.hypercalls):
                hc[nr] = hc[nr].merge(Aggregate.of(agg))
                errors[nr] += m.errors[nr]
        exits = [
            ExitSummary(exit_name(r), run[r], vmm.get(r, Aggregate())) for r in sorted(run, key=lambda r: -run[r].count)
        ]
        calls = [HypercallSummary(hypercall_name(nr), hc[nr], errors[nr]) for nr in range(len(hc)) if hc[nr].count]
        calls.sort(key=lambda h: -h.time.count)
        return Summary(exits, calls)

    def samples(self) -> tuple[list[int], list[int]]:
        """(time inside KVM_RUN, time in pyvmm) per hypercall exit, all vCPUs; empty unless keep_samples."""
        run: list[int] = []
        vmm: list[int] = []
        for m in self.vcpus.values():
            if m.samples_kvm_run is not None:
                run.extend(m.samples_kvm_run)
                vmm.extend(m.samples_vmm)
        return run, vmm
