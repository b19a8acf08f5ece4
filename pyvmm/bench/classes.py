"""The registry of benchmark classes: what `pyvmm bench` runs, in table order.

A class is either a guest benchmark (the bundled kernel's ``test=bench``
program runs ``bench=GUEST`` under a run loop) or a host-only one (a
function). Each names the ABI feature bits it needs: when the VM's boot info
lacks one, the class is skipped with the reason printed, so classes for
hypercalls still to come (address spaces) are registered already and start
running the day their feature bit is offered.

Classes with ``vs_null`` are also shown as a ratio to the ``null`` class of
the same run (the address-space targets are written that way), so selecting
one runs ``null`` too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pyvmm.paravirt.abi import Feature

NO_FEATURES = Feature(0)


class Group(enum.Enum):
    PYVMM = "pyvmm hypercalls"
    BASELINE = "baselines"
    FASTPATH = "fast-path experiments (null hypercall)"
    SPLIT = "where the time goes (null hypercall, per exit)"
    COMPARE = "system-call API vs hardware API (--hw-api)"


@dataclass(frozen=True)
class BenchClass:
    name: str
    title: str
    group: Group
    #: ``bench=`` of the guest program; None for a host-only class.
    guest: str | None = None
    #: ``size=`` for the guest (bytes for send; batch entries for multicall; delay in us for timer).
    size: int = 0
    #: Feature bits the VM must offer (boot info ``features``).
    features: Feature = NO_FEATURES
    vcpus: int = 1
    #: Run loop: "pyvmm" (the default loop) or a name in :data:`pyvmm.bench.loops.LOOPS`; "stats" = --stats loop.
    loop: str = "pyvmm"
    #: Bytes moved per iteration: the table shows throughput.
    bytes_per_op: int = 0
    #: Hypercalls per iteration (multicall batches): the table also shows the time per call.
    calls_per_op: int = 1
    #: What calls_per_op counts ("call", or "page" for a batch of page entries).
    per: str = "call"
    #: Fraction of the configured iterations to run (slow classes take fewer).
    iter_scale: float = 1.0
    #: Include the ratio to baseline (a) in the table.
    ratio: bool = True
    #: Needs the ``null`` class of the same run (its target is a ratio to it).
    vs_null: bool = False
    #: What the host adds through :mod:`pyvmm.extensions` before the run: "ext" a Python
    #: extension hypercall that returns 0, "hook" an after-hypercall hook that does nothing.
    host: str | None = None
    #: Boot the VM with ``--hw-api`` (in-kernel LAPIC, UART): the hardware side of a comparison.
    hw_api: bool = False
    #: Comparison classes (:mod:`pyvmm.bench.compare`): the workload's name in the table, and
    #: the key of the pyvmm modules serving it (``sc-*`` system-call side, ``hw-*`` hardware).
    workload: str = ""
    serving: str = ""
    #: Bytes of a temporary ``--disk`` the VM gets (the disk workloads); 0: none.
    disk: int = 0
    #: The comparison table's API column: "syscall", "hardware", or "syscall+kernel" (the
    #: system-call ABI's events with NOTIFY's in-kernel doorbell, pyvmm.hw.doorbell).
    api: str = ""


KIB = 1024
MIB = 1024 * KIB

_EV = Feature.EVENTS
_AS = Feature.ADDRESS_SPACES

CLASSES: tuple[BenchClass, ...] = (
    # -- pyvmm's hypercalls, through the default run loop and the Python dispatcher
    BenchClass("null", "NULL hypercall", Group.PYVMM, guest="null"),
    BenchClass(
        "ext-null",
        "extension hypercall in Python, returns 0",
        Group.PYVMM,
        guest="ext-null",
        features=Feature.EXTENSIONS,
        host="ext",
        vs_null=True,
    ),
    BenchClass("hooked-null", "NULL with a no-op hypercall hook", Group.PYVMM, guest="null", host="hook", vs_null=True),
    *(
        BenchClass(f"send-{label}", f"SEND {label} to a null sink", Group.PYVMM, guest="send", size=n, bytes_per_op=n)
        for label, n in (("0", 0), ("64", 64), ("4k", 4 * KIB), ("64k", 64 * KIB), ("1m", MIB))
    ),
    BenchClass("notify-self", "NOTIFY own port (pending on return)", Group.PYVMM, guest="notify-self", features=_EV),
    BenchClass(
        "notify-rtt",
        "NOTIFY round trip, 2 vCPUs",
        Group.PYVMM,
        guest="notify-rtt",
        features=_EV | Feature.SMP,
        vcpus=2,
        iter_scale=0.25,
    ),
    BenchClass(
        "block-wake",
        "BLOCKed vCPU woken by NOTIFY",
        Group.PYVMM,
        guest="block-wake",
        features=_EV | Feature.SMP,
        vcpus=2,
        iter_scale=0.25,
    ),
    BenchClass(
        "timer",
        "TIMER_SET +200us, fire, wake, minus 200us",
        Group.PYVMM,
        guest="timer",
        size=200,
        features=_EV | Feature.TIMER,
        iter_scale=0.1,
    ),
    *(
        BenchClass(
            f"multicall-{n}",
            f"MULTICALL of {n} NULLs",
            Group.PYVMM,
            guest="multicall",
            size=n,
            features=Feature.MULTICALL,
            calls_per_op=n,
        )
        for n in (1, 8, 64)
    ),
    # -- address spaces (targets are ratios to null): the kernel-side ones time one hypercall
    # NULL again, in a VM whose vCPU switched space once: what the sregs sync that
    # AS_SWITCH turns on costs every later exit.
    BenchClass(
        "as-null", "NULL after one AS_SWITCH (sregs synced)", Group.PYVMM, guest="as-null", features=_AS, vs_null=True
    ),
    BenchClass("as-switch", "AS_SWITCH between two spaces", Group.PYVMM, guest="as-switch", features=_AS, vs_null=True),
    BenchClass(
        "as-map-unmap",
        "AS_MAP + AS_UNMAP one page, loaded space",
        Group.PYVMM,
        guest="as-map-unmap",
        features=_AS,
        calls_per_op=2,
        iter_scale=0.2,
        vs_null=True,
    ),
    BenchClass(
        "as-map-512",
        "AS_MAP_BATCH of 512 one-page MAPs",
        Group.PYVMM,
        guest="as-map-batch",
        size=512,
        features=_AS,
        calls_per_op=512,
        per="page",
        iter_scale=0.02,
        vs_null=True,
    ),
    # The same 512 pages as one MAP entry (one range) in one AS_MAP_BATCH.
    BenchClass(
        "as-map-512-range",
        "AS_MAP_BATCH, one MAP of 512 pages",
        Group.PYVMM,
        guest="as-map-range",
        size=512,
        features=_AS,
        calls_per_op=512,
        per="page",
        iter_scale=0.02,
        vs_null=True,
    ),
    # A demand-zero fault: end to end from a CPL3 task (fault, kernel #PF handler,
    # PAGE_FAULT, IRET, retried store), and the PAGE_FAULT hypercall alone (the VMM's share).
    BenchClass(
        "as-fault",
        "CPL3 page fault, demand-zero, end to end",
        Group.PYVMM,
        guest="as-fault",
        features=_AS,
        iter_scale=0.2,
        vs_null=True,
    ),
    BenchClass(
        "as-fault-vmm",
        "PAGE_FAULT hypercall alone (VMM's share)",
        Group.PYVMM,
        guest="as-fault-vmm",
        features=_AS,
        iter_scale=0.2,
        vs_null=True,
    ),
    # The guest's side of that fault without the VMM: a CPL3 system call round trip
    # (on PVM it arrives through the kernel's #PF path too, see docs/abi.md).
    BenchClass(
        "as-syscall",
        "CPL3 getpid() round trip, no hypercall",
        Group.PYVMM,
        guest="as-syscall",
        features=_AS,
        iter_scale=0.2,
        vs_null=True,
    ),
    # -- the same workloads through the system-call API and the hardware API (docs/hwapi.md).
    # The timer pair waits 1 ms, not the timer class's 200 us: a deadline that passes before
    # TIMER_SET arrives (a loaded host) is an error, and this figure must not depend on load.
    *(
        BenchClass(
            name,
            title,
            Group.COMPARE,
            guest=guest,
            size=size,
            features=feats,
            vcpus=vcpus,
            iter_scale=scale,
            hw_api=name.startswith("hw-"),
            workload=workload,
            serving=serving,
        )
        for name, title, guest, size, feats, vcpus, scale, workload, serving in (
            (
                "sc-notify-rtt",
                "NOTIFY + BLOCK round trip, 2 vCPUs",
                "notify-rtt",
                0,
                _EV | Feature.SMP,
                2,
                0.25,
                "notify round trip",
                "sc-notify",
            ),
            (
                "hw-ipi-rtt",
                "x2APIC IPI + HLT round trip, 2 vCPUs",
                "hw-ipi-rtt",
                0,
                Feature.SMP,
                2,
                0.25,
                "notify round trip",
                "hw-notify",
            ),
            (
                "sc-timer",
                "TIMER_SET +1ms, BLOCK, minus 1ms",
                "timer",
                1000,
                _EV | Feature.TIMER,
                1,
                0.1,
                "timer arm-and-fire",
                "sc-timer",
            ),
            (
                "hw-timer",
                "TSC-deadline +1ms, HLT, minus 1ms",
                "hw-timer",
                1000,
                NO_FEATURES,
                1,
                0.1,
                "timer arm-and-fire",
                "hw-timer",
            ),
            (
                "sc-console-64",
                "SEND 64 B to the console",
                "console",
                64,
                NO_FEATURES,
                1,
                0.2,
                "console 64 bytes",
                "sc-console",
            ),
            (
                "hw-console-64",
                "64 B to the 16550 UART (polled)",
                "hw-console",
                64,
                NO_FEATURES,
                1,
                0.05,
                "console 64 bytes",
                "hw-console",
            ),
        )
    ),
    # NOTIFY's in-kernel path: the same events ABI, the interrupt through a doorbell (ioeventfd =
    # irqfd) into the target's LAPIC; needs the in-kernel LAPIC, so it runs in a --hw-api VM.
    BenchClass(
        "sc-notify-kernel",
        "NOTIFY via in-kernel doorbell + HLT, 2 vCPUs",
        Group.COMPARE,
        guest="notify-doorbell",
        features=_EV | Feature.SMP,
        vcpus=2,
        iter_scale=0.25,
        hw_api=True,
        workload="notify round trip",
        serving="sc-notify-kernel",
        api="syscall+kernel",
    ),
    # Durable writes: SEND + CHANNEL_FLUSH on a --disk against virtio-blk write + flush requests.
    *(
        BenchClass(
            f"{side}-disk-{label}",
            title,
            Group.COMPARE,
            guest=guest,
            size=n,
            features=feats,
            iter_scale=scale,
            hw_api=side == "hw",
            workload=f"disk write+flush {label}",
            serving=f"{side}-disk",
            disk=2 * MIB,
            bytes_per_op=n,
        )
        for label, n, scale in (("4k", 4 * KIB, 0.1), ("1m", MIB, 0.02))
        for side, title, guest, feats in (
            ("sc", f"SEND {label} to a disk + CHANNEL_FLUSH", "disk", Feature.BLOCK_DEVICE),
            ("hw", f"virtio-blk write {label} + flush", "hw-disk", NO_FEATURES),
        )
    ),
    # -- baselines measured in the same run
    BenchClass("base-c-exit", "(a) C exit loop, no dispatch", Group.BASELINE, guest="null", loop="c-null"),
    BenchClass("base-ioeventfd", "(b) in-kernel exit (KVM_IOEVENTFD)", Group.BASELINE, guest="ioeventfd"),
    BenchClass("base-syscall-c", "(c) getppid() system call, C", Group.BASELINE, ratio=False),
    BenchClass("base-syscall-py", "(c) os.getppid(), Python", Group.BASELINE, ratio=False),
    BenchClass("tsc-window", "guest timing window (null's, no OUT)", Group.BASELINE, guest="tsc", ratio=False),
    # -- the same NULL loop under other run loops: kept only what measures faster
    BenchClass("fp-getregs", "GET/SET_REGS instead of sync regs", Group.FASTPATH, guest="null", loop="getregs"),
    BenchClass("fp-nodispatch", "NULL answered inline, no dispatcher", Group.FASTPATH, guest="null", loop="nodispatch"),
    BenchClass("fp-cffi", "KVM_RUN via cffi instead of ctypes", Group.FASTPATH, guest="null", loop="cffi"),
    BenchClass("fp-python-loop", "run loop in Python (no gcc)", Group.FASTPATH, guest="null", loop="python"),
    BenchClass(
        "fp-c-cffi-callback", "C run loop, cffi dispatch callback", Group.FASTPATH, guest="null", loop="c-cffi-callback"
    ),
    BenchClass("fp-stats", "--stats instrumented loop", Group.FASTPATH, guest="null", loop="stats"),
    # -- host-side split of the fp-stats run (filled from its metrics, not run separately)
    BenchClass("exit-kvm-run", "time inside KVM_RUN per exit", Group.SPLIT, ratio=False),
    BenchClass("exit-pyvmm", "time in pyvmm's code per exit", Group.SPLIT, ratio=False),
)

BY_NAME = {c.name: c for c in CLASSES}
BASELINE_A = "base-c-exit"
NULL = "null"
