"""Presenting benchmark results: the terminal table, the JSON document, the plot."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pyvmm.bench.classes import BASELINE_A, Group
from pyvmm.bench.compare import comparison_json, format_comparison
from pyvmm.bench.run import Params, Result

JSON_VERSION = 1


@dataclass(frozen=True)
class Target:
    what: str
    value: float | None
    limit: float
    at_most: bool  # True: value <= limit is met
    unit: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def format(self) -> str:
        if self.value is None:
            return f"{self.what}: not measured"
        op = "<=" if self.at_most else ">="
        verdict = "met" if self.met else "MISSED"
        return f"{self.what}: {self.value:.2f}{self.unit} ({op} {self.limit:g}{self.unit}: {verdict})"

    def to_dict(self) -> dict:
        return {"value": self.value, "limit": self.limit, "at_most": self.at_most, "met": self.met}


def targets(results: list[Result]) -> list[Target]:
    """The issue's targets, read off one run."""
    by = {r.cls.name: r for r in results}

    def ratio(name: str) -> float | None:
        r = by.get(name)
        return r.ratio if r else None

    def vs_null(name: str) -> float | None:
        r = by.get(name)
        return r.null_ratio if r else None

    pyvmm = by.get("exit-pyvmm")
    send = by.get("send-1m")
    return [
        Target("null hypercall / C baseline (a)", ratio("null"), 1.25, True, "x"),
        Target(
            "pyvmm's own time per exit, median",
            pyvmm.dist.median / 1000 if pyvmm and pyvmm.dist else None,
            2,
            True,
            " us",
        ),
        Target("send 1 MiB throughput", send.throughput_gb_s if send else None, 1, False, " GB/s"),
        Target("notify round trip / C baseline (a)", ratio("notify-rtt"), 6, True, "x"),
        Target("address-space switch / null hypercall", vs_null("as-switch"), 1.5, True, "x"),
        Target("page fault served (CPL3, end to end) / null hypercall", vs_null("as-fault"), 2.5, True, "x"),
        Target("map of 512 pages in one batch / null hypercall", vs_null("as-map-512"), 5, True, "x"),
        Target("one-range map of 512 pages in one batch / null hypercall", vs_null("as-map-512-range"), 5, True, "x"),
    ]


def fault_split(results: list[Result]) -> str | None:
    """The demand-zero fault taken apart: the VMM's share (PAGE_FAULT alone) and the guest's rest."""
    by = {r.cls.name: r for r in results if r.dist is not None}
    whole, vmm = by.get("as-fault"), by.get("as-fault-vmm")
    if not (whole and vmm):
        return None
    share = vmm.dist.median / whole.dist.median if whole.dist.median > 0 else 0.0
    line = (
        f"page fault, end to end {_ns(whole.dist.median)} ns = the VMM's share (PAGE_FAULT alone) "
        f"{_ns(vmm.dist.median)} ns ({share:.0%})"
    )
    if vmm.null_ratio is not None:
        line += f", {vmm.null_ratio:.2f}x null,"
    line += f" + CPL3 #PF delivery, kernel entry/exit, IRET, retry {_ns(whole.dist.median - vmm.dist.median)} ns"
    sys = by.get("as-syscall")
    if sys is not None:
        line += f" (a CPL3 system call round trip alone: {_ns(sys.dist.median)} ns)"
    return line


def net_null_ratio(results: list[Result]) -> float | None:
    """null / (a) with the guest's timing window (tsc-window) taken off both: the exit costs alone."""
    by = {r.cls.name: r.dist for r in results if r.dist is not None}
    null, base, window = by.get("null"), by.get(BASELINE_A), by.get("tsc-window")
    if not (null and base and window) or base.median <= window.median:
        return None
    return (null.median - window.median) / (base.median - window.median)


def _ns(v: float) -> str:
    return f"{v:,.0f}"


def format_table(results: list[Result], p: Params, host: dict) -> str:
    base = next((r for r in results if r.cls.name == BASELINE_A and r.dist), None)
    lines = [
        f"pyvmm bench: {p.iters} iterations x {p.reps} repetitions (+{p.warmup} warm-up) per class; "
        f"{host.get('kvm_backend')} on {host.get('cpu_model')}; Python {host.get('python')}",
        "times are per operation, timed inside the guest with the TSC (host-side classes: clock_gettime)",
        "",
        f"{'class':<16} {'what':<42} {'median ns':>11} {'p99 ns':>11} {'x (a)':>7} {'x null':>7}  other",
    ]
    skipped = []
    for group in Group:
        rows = [r for r in results if r.cls.group is group]
        if not rows:
            continue
        lines.append(f"-- {group.value}")
        for r in rows:
            if r.skipped:
                skipped.append(r)
                continue
            if r.dist is None:
                continue
            ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
            vs_null = f"{r.null_ratio:.2f}" if r.null_ratio is not None else ""
            other = []
            if r.throughput_gb_s is not None:
                other.append(f"{r.throughput_gb_s:.2f} GB/s")
            if r.per_call_ns is not None:
                other.append(f"{_ns(r.per_call_ns)} ns/{r.cls.per}")
            if len(r.dist.rep_medians) > 1:
                lo, hi = min(r.dist.rep_medians), max(r.dist.rep_medians)
                other.append(f"reps {_ns(lo)}..{_ns(hi)}")
            if r.errors:
                other.append(f"{r.errors} ERRORS")
            lines.append(
                f"{r.cls.name:<16} {r.cls.title[:42]:<42} {_ns(r.dist.median):>11} {_ns(r.dist.p99):>11} {ratio:>7}"
                f" {vs_null:>7}  {', '.join(other)}"
            )
    lines += format_comparison(results)
    if skipped:
        lines.append("-- skipped")
        lines += [f"{r.cls.name:<16} {r.skipped}" for r in skipped]
    if base is None:
        lines.append("(no ratios: baseline (a) was not run)")
    lines.append("")
    lines.append("targets:")
    lines += [f"  {t.format()}" for t in targets(results) if t.value is not None]
    net = net_null_ratio(results)
    if net is not None:
        lines.append(f"  (information) null / (a) with the guest timing window taken off both: {net:.2f}x")
    split = fault_split(results)
    if split is not None:
        lines.append(f"  (information) {split}")
    return "\n".join(lines)


def to_json(results: list[Result], p: Params, host: dict) -> dict:
    rows = []
    for r in results:
        row = {"name": r.cls.name, "title": r.cls.title, "group": r.cls.group.name.lower()}
        if r.skipped:
            row["skipped"] = r.skipped
        elif r.dist is not None:
            d = r.dist.to_dict()
            row.update(
                median_ns=d["median"],
                p99_ns=d["p99"],
                mean_ns=d["mean"],
                min_ns=d["min"],
                max_ns=d["max"],
                samples=d["count"],
                rep_medians_ns=d["rep_medians"],
                errors=r.errors,
            )
            if r.ratio is not None:
                row["ratio_to_c_baseline"] = round(r.ratio, 3)
            if r.null_ratio is not None:
                row["ratio_to_null"] = round(r.null_ratio, 3)
            if r.throughput_gb_s is not None:
                row["throughput_gb_s"] = float(
                    f"{r.throughput_gb_s:.4g}"
                )  # significant digits: a slow host's 64-byte SEND is not 0
                row["bytes_per_op"] = r.cls.bytes_per_op
            if r.per_call_ns is not None:
                row["per_call_ns"] = round(r.per_call_ns, 1)
                row["per"] = r.cls.per
            if r.compare is not None:
                row["workload"] = r.cls.workload
                row["compare"] = r.compare.to_json()
        rows.append(row)
    return {
        "version": JSON_VERSION,
        "params": {"iters": p.iters, "warmup": p.warmup, "reps": p.reps},
        "host": host,
        "results": rows,
        "targets": {t.what: t.to_dict() for t in targets(results)},
        "null_ratio_net_of_window": None if (net := net_null_ratio(results)) is None else round(net, 3),
        "page_fault_split": _fault_split_json(results),
        "comparison": comparison_json(results),
    }


def _fault_split_json(results: list[Result]) -> dict | None:
    by = {r.cls.name: r for r in results if r.dist is not None}
    whole, vmm = by.get("as-fault"), by.get("as-fault-vmm")
    if not (whole and vmm):
        return None
    return {
        "end_to_end_ns": round(whole.dist.median, 1),
        "vmm_share_ns": round(vmm.dist.median, 1),
        "guest_side_ns": round(whole.dist.median - vmm.dist.median, 1),
        "vmm_share_ratio_to_null": None if vmm.null_ratio is None else round(vmm.null_ratio, 3),
        "cpl3_syscall_round_trip_ns": round(by["as-syscall"].dist.median, 1) if "as-syscall" in by else None,
    }


def write_json(out: TextIO, doc: dict) -> None:
    """Write *doc* to the open text file *out* (see :func:`pyvmm.reportfile.open_report_file`)."""
    out.write(json.dumps(doc, indent=2) + "\n")


def plot_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plot(path: Path, results: list[Result]) -> None:
    """Latency distributions, one box per class, on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if r.dist is not None and r.samples]
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.35 * len(shown) + 1)))
    import inspect

    # matplotlib 3.10 replaced vert= by orientation= (and labels= by tick_labels=): name neither
    # way where we can, so any 3.x works.
    horizontal = (
        {"orientation": "horizontal"} if "orientation" in inspect.signature(ax.boxplot).parameters else {"vert": False}
    )
    ax.boxplot([[max(s, 1.0) for s in r.samples] for r in shown], whis=(1, 99), showfliers=False, **horizontal)
    ax.set_yticks(range(1, len(shown) + 1), [r.cls.name for r in shown])
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("ns per operation (box: quartiles, whiskers: p1..p99)")
    ax.set_title("pyvmm bench")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
