"""The system-call-shaped ABI against the hardware API, workload by workload
(``pyvmm bench --hw-api``, docs/hwapi.md).

Each workload pairs a class that does it through pyvmm's hypercalls with one that does
it the way a guest on QEMU, Firecracker or kvmtool does: KVM's in-kernel local APIC in
x2APIC mode (IPIs by ICR writes, the TSC-deadline timer, EOI) and a 16550 UART. Both
run in the same ``pyvmm bench`` invocation, each in its own fresh VM, and are compared
on: latency (median, p99), the exits that reach pyvmm per operation, the host CPU time
per operation (all threads, guest time included: two runs of different lengths, the
difference divided by the difference in operations, so boot costs cancel), the device
state a snapshot must save, and the lines of pyvmm code that serve the workload.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pyvmm.devices.uart import STATE_BYTES as UART_STATE_BYTES

if TYPE_CHECKING:
    from pyvmm.bench.run import Result

_PKG = Path(__file__).resolve().parent.parent
#: ``KVM_GET_LAPIC``'s register page: what a snapshot saves of each in-kernel local APIC.
LAPIC_STATE_BYTES = 1024
TSC_DEADLINE_BYTES = 8  # the IA32_TSC_DEADLINE MSR


@dataclass(frozen=True)
class Workload:
    name: str
    abi: str  # the class through pyvmm's hypercalls
    hw: str  # the class through the hardware API
    abi_code: tuple[str, ...]  # pyvmm modules (under pyvmm/) that serve the ABI side
    hw_code: tuple[str, ...]  # ... and the hardware side ("" for none: KVM serves it in the kernel)
    hw_state: int  # bytes a snapshot saves for the hardware side (the ABI side's is measured)
    note: str = ""


_EVENTS = ("paravirt/events.py", "paravirt/calls/events.py", "paravirt/calls/sched.py")
_CONSOLE = ("devices/console.py", "devices/outbuf.py", "paravirt/calls/channels.py")

WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "cross-vCPU notify round trip",
        "notify-rtt",
        "hw-ipi-rtt",
        _EVENTS,
        (),
        2 * LAPIC_STATE_BYTES,
        "IPI: ICR write and EOI, both served inside KVM",
    ),
    Workload(
        "timer arm and fire (+200 us)",
        "timer",
        "hw-timer",
        (*_EVENTS, "paravirt/timers.py"),
        (),
        LAPIC_STATE_BYTES + TSC_DEADLINE_BYTES,
        "TSC-deadline MSR write, fired by KVM's hrtimer",
    ),
    *(
        Workload(
            f"console, a {label} line",
            f"console-{n}",
            f"hw-uart-{n}",
            _CONSOLE,
            ("devices/uart.py", *_CONSOLE[:2]),
            UART_STATE_BYTES,
            "LSR read and THR write per byte, each an exit to pyvmm",
        )
        for label, n in (("64 B", "64"), ("1 KiB", "1k"))
    ),
)

#: The classes the comparison needs, ABI side and hardware side.
CLASS_NAMES = tuple(n for w in WORKLOADS for n in (w.abi, w.hw))


def code_lines(modules: tuple[str, ...]) -> int:
    """Lines of the pyvmm *modules* (paths under ``pyvmm/``)."""
    total = 0
    for rel in modules:
        try:
            total += sum(1 for _ in (_PKG / rel).open(encoding="utf-8"))
        except OSError:
            pass
    return total


@dataclass
class Side:
    cls: str
    median_ns: float | None
    p99_ns: float | None
    exits_per_op: float | None
    cpu_ns_per_op: float | None
    state_bytes: int | None
    code_lines: int
    skipped: str | None = None

    def to_dict(self) -> dict:
        return {
            "class": self.cls,
            "median_ns": self.median_ns,
            "p99_ns": self.p99_ns,
            "exits_per_op": self.exits_per_op,
            "host_cpu_ns_per_op": self.cpu_ns_per_op,
            "snapshot_state_bytes": self.state_bytes,
            "vmm_code_lines": self.code_lines,
            "skipped": self.skipped,
        }


@dataclass
class Row:
    workload: Workload
    abi: Side
    hw: Side

    @property
    def hw_over_abi(self) -> float | None:
        """The hardware side's median over the ABI side's (below 1: the hardware API is faster)."""
        if self.abi.median_ns and self.hw.median_ns:
            return self.hw.median_ns / self.abi.median_ns
        return None


def _side(res: Result | None, name: str, code: tuple[str, ...], state: int | None) -> Side:
    if res is None:
        return Side(name, None, None, None, None, state, code_lines(code), skipped="not run")
    d = res.dist
    return Side(
        name,
        d.median if d else None,
        d.p99 if d else None,
        res.exits_per_op,
        res.cpu_ns_per_op,
        state,
        code_lines(code),
        skipped=res.skipped,
    )


def rows(results: list[Result]) -> list[Row]:
    by_name = {r.cls.name: r for r in results}
    out = []
    for w in WORKLOADS:
        abi, hw = by_name.get(w.abi), by_name.get(w.hw)
        if hw is None:
            continue  # the comparison runs with --hw-api (or an --only naming a hardware class)
        abi_state = abi.state_bytes if abi is not None else None
        out.append(Row(w, _side(abi, w.abi, w.abi_code, abi_state), _side(hw, w.hw, w.hw_code, w.hw_state)))
    return out


def _num(v: float | None, unit: str = "", digits: int = 0) -> str:
    if v is None:
        return "-"
    return f"{v:,.{digits}f}{unit}"


def format_comparison(results: list[Result]) -> str:
    table = rows(results)
    if not table:
        return ""
    lines = [
        "",
        "system-call ABI vs hardware API (pyvmm bench --hw-api; docs/hwapi.md)",
        f"  {'workload':<30} {'side':<11} {'median':>11} {'p99':>11} {'exits/op':>9} {'CPU/op':>11} "
        f"{'state B':>8} {'VMM lines':>9}",
    ]
    for row in table:
        for label, side in (("ABI", row.abi), ("hardware", row.hw)):
            if side.skipped:
                lines.append(f"  {row.workload.name if label == 'ABI' else '':<30} {label:<11} skipped: {side.skipped}")
                continue
            lines.append(
                f"  {row.workload.name if label == 'ABI' else '':<30} {label:<11} {_num(side.median_ns, ' ns'):>11} "
                f"{_num(side.p99_ns, ' ns'):>11} {_num(side.exits_per_op, '', 2):>9} "
                f"{_num(side.cpu_ns_per_op, ' ns'):>11} {_num(side.state_bytes):>8} {side.code_lines:>9}"
            )
        ratio = row.hw_over_abi
        if ratio is not None:
            faster = "hardware API faster" if ratio < 1 else "ABI faster"
            lines.append(
                f"  {'':<30} {'hw / ABI':<11} {ratio:>10.2f}x  ({faster}; {row.workload.note or 'served in pyvmm'})"
            )
    return "\n".join(lines)


def to_json(results: list[Result]) -> list[dict]:
    return [
        {
            "workload": r.workload.name,
            "abi": r.abi.to_dict(),
            "hardware": r.hw.to_dict(),
            "hw_over_abi_median": r.hw_over_abi,
        }
        for r in rows(results)
    ]
