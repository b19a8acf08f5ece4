"""A VM assembled from the layers below it, with its lifecycle.

Data flows one way: KVM exit -> run loop (:mod:`pyvmm.runloop`) -> dispatcher
-> hypercall handler -> device -> result into the vCPU's ``rax``.
"""

from __future__ import annotations

import enum
import errno
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyvmm.devices.console import Console
from pyvmm.devices.spec import ChannelSpec, DeviceError, open_device
from pyvmm.devices.timer import TimerService
from pyvmm.kvm import Cap, Kvm, KvmError, Vcpu
from pyvmm.kvm.shadow import ShadowMmu, shadow_paging_in_use
from pyvmm.loader import LoadedElf, read_elf
from pyvmm.memory import GuestMemory
from pyvmm.paravirt import abi
from pyvmm.paravirt.abi import Layout
from pyvmm.paravirt.address_spaces import AddressSpaceManager, install_address_spaces
from pyvmm.paravirt.channel_calls import install_channel_calls
from pyvmm.paravirt.dispatcher import Dispatcher
from pyvmm.paravirt.events import EventChannels, install_events
from pyvmm.paravirt.hypercalls import ChannelTable, install_core
from pyvmm.paravirt.multicall import install_multicall
from pyvmm.paravirt.sched import install_sched
from pyvmm.parking import Parker
from pyvmm.x86 import boot
from pyvmm.x86.cpuid import guest_cpuid, has_nx
from pyvmm.x86.paging import FramePool, PageTables, Pte, identity_map

if TYPE_CHECKING:
    from pathlib import Path

    from pyvmm.crash import CrashReport

MIN_MEMORY = 4 << 20
MAX_MEMORY = 64 << 30
MAX_VCPUS = 64
# Three pages KVM may use for real-mode emulation on Intel; outside guest RAM.
TSS_ADDR = 0xFFFB_D000
MSR_IA32_TSC = 0x10
KICK_SIGNAL = signal.SIGRTMIN
_POLL_S = 0.05  # how often run() looks at request_stop()

REQUIRED_CAPS = (Cap.USER_MEMORY, Cap.SYNC_REGS, Cap.IMMEDIATE_EXIT)


class MachineError(Exception):
    """The VM cannot be built as configured (bad size, missing capability...)."""


class StopReason(enum.Enum):
    SHUTDOWN = "shutdown"  # the guest called SHUTDOWN
    CRASH = "crash"  # triple fault, internal error, unhandled exit
    TIMEOUT = "timeout"  # --timeout elapsed
    SIGNAL = "signal"  # SIGINT / SIGTERM on the host


@dataclass
class MachineConfig:
    kernel: Path
    memory: int = 64 << 20
    cmdline: str = ""
    vcpus: int = 1
    timeout: float | None = None
    console_fd: int = 1
    kvm_path: str = "/dev/kvm"
    #: Block and stream channels, in handle order after the console (see pyvmm.devices.spec).
    channels: tuple[ChannelSpec, ...] = ()
    #: Time every exit into ``Machine.metrics`` (``pyvmm run --stats``): the instrumented loop.
    stats: bool = False
    #: Add a null-sink channel (discards sends), for benchmarks.
    null_sink: bool = False


@dataclass
class RunResult:
    reason: StopReason
    exit_code: int = 0
    crash: CrashReport | None = None
    signal: int | None = None


@dataclass
class BootTimes:
    """Monotonic nanosecond timestamps of the boot milestones."""

    create_start: int = 0  # just before KVM_CREATE_VM
    first_run: int = 0  # just before the boot vCPU's first KVM_RUN
    first_hypercall: int = 0

    @property
    def to_first_hypercall_ns(self) -> int:
        return self.first_hypercall - self.create_start if self.first_hypercall else 0


@dataclass(eq=False)  # identity semantics: contexts are dict keys (timers)
class VcpuContext:
    """Per-vCPU state the run loop and handlers share."""

    id: int
    vcpu: Vcpu
    machine: Machine
    thread: threading.Thread | None = None
    #: Work to run on this vCPU's own thread before its next KVM_RUN (see Machine.run_on_vcpu).
    pending: deque = field(default_factory=deque)
    #: Where BLOCK/HLT sleep; ``parker.guard`` also guards the fields below.
    parker: Parker = field(default_factory=Parker)
    started: bool = False
    in_guest: bool = False  # set by the vCPU thread around KVM_RUN: only then is a kick needed
    want_upcall: bool = False  # inject UPCALL_VECTOR before the next entry (see EventChannels.deliver)
    timer_deadline: int | None = None  # monotonic ns of the armed one-shot timer
    start_regs: tuple[int, int, int] | None = None  # (entry, stack, arg) for a vCPU_UP'd vCPU


def _check_config(cfg: MachineConfig) -> None:
    if not MIN_MEMORY <= cfg.memory <= MAX_MEMORY:
        raise MachineError(f"--memory must be between {MIN_MEMORY >> 20} MiB and {MAX_MEMORY >> 30} GiB")
    if cfg.memory % (2 << 20):
        raise MachineError("--memory must be a multiple of 2 MiB")
    if not 1 <= cfg.vcpus <= MAX_VCPUS:
        raise MachineError(f"--vcpus must be between 1 and {MAX_VCPUS}")
    if len(cfg.cmdline.encode()) > abi.CMDLINE_MAX:
        raise MachineError(f"--cmdline is longer than {abi.CMDLINE_MAX} bytes")


_RO_DATA = int(Pte.PRESENT | Pte.NO_EXECUTE)
_RW_DATA = int(Pte.PRESENT | Pte.WRITABLE | Pte.NO_EXECUTE)


def _low_page_flags(gpa: int) -> int:
    """Kernel permissions for the VMM-reserved low 2 MiB (identity map)."""
    if gpa == Layout.NULL_PAGE:
        return 0  # NULL dereferences fault
    if gpa == Layout.SHARED_PAGE:
        return _RW_DATA
    return _RO_DATA  # boot info, GDT, page tables: read-only


def _scratch_gpa(ram: int) -> int:
    """Where the shadow-flush scratch slot goes: the next GiB boundary past RAM, and past 4 GiB."""
    return max(ram, 4 << 30) + (1 << 30) & ~((1 << 30) - 1)


class Machine:
    """One VM: memory, vCPUs, the hypercall dispatcher and its devices.

    Build it, call :meth:`run` once, then :meth:`close` (or use ``with``).
    Raises :class:`~pyvmm.kvm.KvmError`, :class:`~pyvmm.loader.LoaderError`
    or :class:`MachineError` when it cannot be built.
    """

    def __init__(self, config: MachineConfig) -> None:
        _check_config(config)
        self.config = config
        # Parse and validate the guest before touching KVM: a bad ELF costs nothing.
        self.image = read_elf(config.kernel)
        self.times = BootTimes()
        self.vcpus: list[VcpuContext] = []
        self.memory: GuestMemory | None = None
        self._stop_lock = threading.Lock()
        self._done = threading.Event()
        self.result: RunResult | None = None
        self._requested: RunResult | None = None
        self.stopping = False
        #: The per-vCPU loop (``fn(ctx) -> crash reason | None``); None = :func:`pyvmm.runloop.run_loop`.
        #: ``stats`` selects the instrumented one; benchmarks plug in their variants here.
        self.loop = None
        self.metrics = None
        if config.stats:
            from pyvmm.metrics import Metrics
            from pyvmm.statsloop import run_loop_stats

            self.metrics = Metrics()
            self.loop = run_loop_stats
        # What run() and a vCPU thread import, imported (and the compiled loop built and
        # loaded) now, before the VM exists: an import opens files, and one failing mid-run
        # (no fd left: EMFILE) would kill a vCPU thread instead of failing the build.
        import pyvmm.crash
        import pyvmm.kvm.exits
        import pyvmm.runloop
        import pyvmm.sandbox  # noqa: F401  (contain() needs it)
        from pyvmm.fastloop import library

        library()
        self.kvm = Kvm(config.kvm_path)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # -- assembly ------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.config
        kvm = self.kvm
        kvm.check_api_version()
        missing = [cap.name for cap in REQUIRED_CAPS if not kvm.check_extension(cap)]
        if missing:
            raise KvmError("KVM_CHECK_EXTENSION", errno.ENOTSUP, f"missing capabilities: {', '.join(missing)}")
        # A host property, asked before the VM exists (as Firecracker does at start-up).
        supported = kvm.supported_cpuid()
        self.times.create_start = time.monotonic_ns()
        self.vm = kvm.create_vm()
        try:
            self.vm.set_tss_addr(TSS_ADDR)
        except KvmError as e:
            if e.errno not in (errno.ENOTTY, errno.EINVAL):
                raise  # backends without real-mode emulation do not implement it

        try:
            self.memory = mem = GuestMemory(cfg.memory)
        except OSError as e:
            raise MachineError(f"--memory {cfg.memory >> 20}M: cannot map guest RAM ({e.strerror})") from None
        self.vm.set_user_memory_region(0, 0, mem.size, mem.host_address)
        self.elf: LoadedElf = self.image.load(mem, reserved_end=Layout.RESERVED_END)

        nx = has_nx(supported)
        high = Pte.PRESENT | Pte.WRITABLE
        self.pt_pool = FramePool(mem, Layout.PAGE_TABLE_POOL, Layout.RESERVED_END)
        nx_mask = ~0 if nx else ~int(Pte.NO_EXECUTE)
        low = _low_page_flags if nx else (lambda gpa: _low_page_flags(gpa) & nx_mask)
        self.kernel_tables: PageTables = identity_map(mem, self.pt_pool, mem.size, low_flags=low, high_flags=high)
        mem.write(Layout.GDT, boot.gdt_page(Layout.GDT))

        self.channels = ChannelTable()
        self.console = Console(cfg.console_fd)
        self.channels.add(self.console)  # handle 0 == abi.CONSOLE_HANDLE
        for spec in cfg.channels:
            try:
                self.channels.add(open_device(spec))
            except DeviceError as e:
                raise MachineError(str(e)) from None
        if cfg.null_sink:
            from pyvmm.devices.null_sink import NullSink

            self.channels.add(NullSink())

        self.events = EventChannels(self)
        self.timers = TimerService(self.fire_timer)
        self.dispatcher = Dispatcher()
        install_core(self.dispatcher, self)
        install_events(self.dispatcher, self.events)
        install_sched(self.dispatcher, self)
        install_multicall(self.dispatcher, self)
        install_channel_calls(self.dispatcher, self)
        # Address spaces (issue 4): the manager edits tables in the same VMM-owned pool.
        shadow = ShadowMmu(self.vm, _scratch_gpa(mem.size)) if shadow_paging_in_use() else None
        self.address_spaces = AddressSpaceManager(
            mem, self.pt_pool, self.kernel_tables, nx=nx, reserved_end=Layout.RESERVED_END, machine=self, shadow=shadow
        )
        install_address_spaces(self.dispatcher, self.address_spaces)

        mmap_size = kvm.vcpu_mmap_size()
        for i in range(cfg.vcpus):
            vcpu = self.vm.create_vcpu(i, mmap_size)
            self.vcpus.append(VcpuContext(i, vcpu, self))
            vcpu.set_cpuid2(guest_cpuid(supported, i, cfg.vcpus))
            vcpu.set_sregs(
                boot.long_mode_sregs(vcpu.get_sregs(), cr3=self.kernel_tables.root, gdt_gpa=Layout.GDT, nx=nx)
            )
            vcpu.set_fpu(boot.boot_fpu())
            vcpu.set_msrs(boot.boot_msrs())
            vcpu.enable_sync_regs()
        boot_cpu = self.vcpus[0].vcpu
        self.tsc_khz = self._tsc_khz(boot_cpu)
        self._write_boot_info(boot_cpu)
        boot_cpu.set_regs(boot.boot_regs(entry=self.elf.entry, stack=mem.size, arg=Layout.BOOT_INFO))

    @staticmethod
    def _tsc_khz(vcpu: Vcpu) -> int:
        try:
            return vcpu.tsc_khz()
        except KvmError:
            return 0

    def _write_boot_info(self, boot_cpu: Vcpu) -> None:
        cmdline = self.config.cmdline.encode()
        self.memory.write(Layout.CMDLINE, cmdline + b"\0")
        info = abi.BootInfo(
            magic=abi.BOOT_INFO_MAGIC,
            abi_version=abi.ABI_VERSION,
            features=int(
                abi.Feature.CONSOLE
                | abi.Feature.EVENTS
                | abi.Feature.TIMER
                | abi.Feature.SMP
                | abi.Feature.MULTICALL
                | abi.Feature.ADDRESS_SPACES
            ),
            mem_size=self.memory.size,
            cmdline=Layout.CMDLINE,
            cmdline_len=len(cmdline),
            nr_vcpus=self.config.vcpus,
            tsc_khz=self.tsc_khz,
            shared_page=Layout.SHARED_PAGE,
            reserved_end=Layout.RESERVED_END,
            hypercall_port=abi.HYPERCALL_PORT,
            upcall_vector=abi.UPCALL_VECTOR,
            nr_ports=abi.NR_PORTS,
        )
        # A (guest TSC, monotonic ns) pair lets the guest read the time without a hypercall.
        tsc = boot_cpu.get_msrs([MSR_IA32_TSC]).get(MSR_IA32_TSC, 0)
        info.tsc_at_boot = tsc
        info.monotonic_at_boot = time.monotonic_ns()
        for handle, device in enumerate(self.channels.channels):
            entry = info.channels[handle]
            entry.handle = handle
            entry.kind = int(device.kind)
            entry.name = device.name.encode()[: abi.CHANNEL_NAME_LEN - 1]
        info.nr_channels = len(self.channels.channels)
        info.features |= int(self.channels.features())
        self.memory.write(Layout.BOOT_INFO, bytes(info))

    # -- lifecycle -------------------------------------------------------------
    def run(self) -> RunResult:
        """Run until the guest shuts down, crashes, times out or a signal arrives."""
        from pyvmm.runloop import vcpu_thread_main

        if threading.current_thread() is threading.main_thread():
            # Python's handler is installed without SA_RESTART, so the kick makes KVM_RUN return EINTR.
            signal.signal(KICK_SIGNAL, _ignore_signal)
        boot = self.vcpus[0]
        boot.started = True
        self.start_vcpu(boot, vcpu_thread_main)
        deadline = None if self.config.timeout is None else time.monotonic() + self.config.timeout
        while not self._done.is_set():
            requested = self._requested
            if requested is not None:
                self.stop(requested)
                break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self.stop(RunResult(StopReason.TIMEOUT, exit_code=124))
                break
            # Wake regularly to act on request_stop(): a signal handler must not take locks.
            self._done.wait(_POLL_S if remaining is None else min(remaining, _POLL_S))
        for ctx in self.vcpus:
            if ctx.thread is not None:
                ctx.thread.join()
        return self.result

    def bring_up(self, ctx: VcpuContext, *, entry: int, stack: int, arg: int) -> bool:
        """Start a parked vCPU at *entry* (``VCPU_UP``); False if it already runs."""
        from pyvmm.runloop import vcpu_thread_main

        with ctx.parker.guard:
            if ctx.started or self.stopping:
                return False
            ctx.started = True
            ctx.start_regs = (entry, stack, arg)
        self.start_vcpu(ctx, vcpu_thread_main)
        return True

    def contain(self) -> None:
        """Load the seccomp allow-list (:mod:`pyvmm.sandbox`) into this process: after
        setup, before the first ``KVM_RUN``; irreversible. Raises ``SandboxError``."""
        # Everything the run needs after this was imported (and the compiled loop loaded)
        # in __init__: the filter refuses opening files. No disassembly in crash reports
        # under it: capstone's import would cost more than a whole boot.
        from pyvmm import sandbox
        from pyvmm.devices.spec import StreamSpec

        serves = any(isinstance(spec, StreamSpec) and spec.server for spec in self.config.channels)
        sandbox.apply(sandbox.SERVER_SOCKET_RULES if serves else ())

    def start_vcpu(self, ctx: VcpuContext, target) -> None:
        ctx.thread = threading.Thread(target=target, args=(ctx,), name=f"vcpu{ctx.id}", daemon=True)
        ctx.thread.start()

    def request_stop(self, result: RunResult) -> None:
        """Ask :meth:`run` to stop the VM; safe from a signal handler (takes no lock)."""
        self._requested = result

    def stop(self, result: RunResult) -> None:
        """Record *result* (the first one wins) and stop every vCPU."""
        with self._stop_lock:
            if self.result is None:
                self.result = result
            self.stopping = True
        for ctx in self.vcpus:
            self.kick(ctx)
            ctx.parker.unpark()
        self._done.set()

    # -- events and timers ---------------------------------------------------------
    def wake_vcpu(self, ctx: VcpuContext) -> None:
        """Make *ctx* take its pending upcall soon: wake it if blocked, kick it if running."""
        parker = ctx.parker
        with parker.guard:
            ctx.want_upcall = True
            if not ctx.started:
                return  # delivered when it comes up
        if parker.unpark():
            return  # it was sleeping in BLOCK/HLT: cheaper than a signal
        # Only a vCPU in (or entering) KVM_RUN needs the signal; one running our
        # code checks want_upcall before it re-enters the guest.
        if ctx.in_guest and ctx.thread is not None and ctx.thread.ident != threading.get_ident():
            self.kick(ctx)

    def arm_timer(self, ctx: VcpuContext, deadline_ns: int) -> None:
        ctx.timer_deadline = deadline_ns  # only the vCPU itself arms its timer: it is not parked
        self.timers.arm(ctx, deadline_ns)

    def cancel_timer(self, ctx: VcpuContext) -> None:
        ctx.timer_deadline = None
        self.timers.cancel(ctx)

    def fire_timer(self, ctx: VcpuContext) -> None:
        """Raise *ctx*'s timer VIRQ if its deadline has passed (exactly once per arming)."""
        with ctx.parker.guard:
            deadline = ctx.timer_deadline
            if deadline is None or deadline > time.monotonic_ns():
                return
            ctx.timer_deadline = None
        self.events.raise_virq(ctx.id, abi.Virq.TIMER)

    def run_on_vcpu(self, ctx: VcpuContext, work) -> None:
        """Run ``work(ctx)`` on *ctx*'s own thread before it next enters the guest.

        For state only the vCPU's thread may touch (its registers, its TLB):
        the vCPU is kicked out of ``KVM_RUN``, runs the work, and re-enters.
        """
        ctx.pending.append(work)
        self.kick(ctx)

    def kick(self, ctx: VcpuContext) -> None:
        """Make *ctx*'s ``KVM_RUN`` return ``EINTR`` soon (immediate_exit + signal)."""
        vcpu = ctx.vcpu
        if vcpu.run is None:
            return
        vcpu.set_immediate_exit(True)
        thread = ctx.thread
        if thread is not None and thread.is_alive() and thread.ident is not None:
            try:
                signal.pthread_kill(thread.ident, KICK_SIGNAL)
            except (ProcessLookupError, OSError):
                pass

    def close(self) -> None:
        """Release the channels, timers, events, vCPUs, the memslot, guest memory and the KVM fds."""
        channels = getattr(self, "channels", None)
        if channels is not None:
            channels.close()  # disks fsync'd, peers see the stream close; idempotent
        timers = getattr(self, "timers", None)
        if timers is not None:
            timers.stop()
        events = getattr(self, "events", None)
        if events is not None and events.shared is not None:
            events.close()
        spaces = getattr(self, "address_spaces", None)
        if spaces is not None:
            spaces.close()
        for ctx in self.vcpus:
            ctx.vcpu.close()
        self.vcpus.clear()
        vm = getattr(self, "vm", None)
        if vm is not None:
            if self.memory is not None and vm.fd >= 0:
                try:
                    vm.set_user_memory_region(0, 0, 0, 0)  # tear down the slot before unmapping
                except KvmError:
                    pass
            vm.close()
        if self.memory is not None:
            self.memory.close()
            self.memory = None
        self.kvm.close()

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _ignore_signal(signum, frame) -> None:
    """The kick signal only needs to interrupt ``KVM_RUN``; nothing to do here."""
