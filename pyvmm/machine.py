"""A VM assembled from the layers below it, with its lifecycle.

Data flows one way: KVM exit -> run loop (:mod:`pyvmm.loop`) -> dispatcher
-> hypercall handler (:mod:`pyvmm.paravirt.calls`) -> device -> result into
the vCPU's ``rax``. The machine builds each layer and hands every handler only
the services it names (:mod:`pyvmm.paravirt.services`); nothing below imports
this module.

Over ~400 lines because it is where every layer is assembled (memory, vCPUs, channels,
the broker, snapshots, the debugger hook). The snapshot lifecycle (``request_snapshot``,
``reset``) is the next part to move out, into :mod:`pyvmm.snapshot`.
"""

from __future__ import annotations

import contextlib
import errno
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvmm import stopsignals
from pyvmm.bootinfo import announce_extensions, low_page_flags, write_boot_info
from pyvmm.devices import open_device
from pyvmm.devices.base import Channel as ChannelBase
from pyvmm.devices.base import ChannelTable, DeviceError
from pyvmm.devices.console import Console
from pyvmm.devices.spec import StreamSpec
from pyvmm.kvm import Cap, Kvm, KvmError, VcpuFd
from pyvmm.kvm.shadow import ShadowMmu, shadow_paging_in_use
from pyvmm.loader import LoadedElf, read_elf
from pyvmm.loop import LoopEnv
from pyvmm.memory import GuestMemory
from pyvmm.outcome import OutcomeKind, RunResult, StopReason
from pyvmm.paravirt import abi
from pyvmm.paravirt.abi import Layout
from pyvmm.paravirt.address_spaces import AddressSpaceManager
from pyvmm.paravirt.calls import install_all
from pyvmm.paravirt.dispatcher import Dispatcher
from pyvmm.paravirt.events import EventChannels
from pyvmm.paravirt.services import Services, ThreadStartError
from pyvmm.paravirt.timers import VcpuTimers
from pyvmm.vcpu import Vcpu, VcpuSet, VcpuState, install_kick_handler
from pyvmm.x86 import boot
from pyvmm.x86.cpuid import guest_cpuid, has_nx
from pyvmm.x86.paging import FramePool, PageTables, Pte, identity_map
from pyvmm.x86.tablemem import TableMemory

if TYPE_CHECKING:
    from pathlib import Path

    from pyvmm.debughook import VcpuDebugger
    from pyvmm.devices.base import Channel
    from pyvmm.devices.spec import ChannelSpec
    from pyvmm.snapshot.format import SnapshotDir
    from pyvmm.snapshot.restore import Restorable

__all__ = ["BootTimes", "Machine", "MachineConfig", "MachineError", "RunResult", "StopReason"]

MIN_MEMORY = 4 << 20
HW_API_MAX_MEMORY = 3 << 30  # below pyvmm.hw.virtio_blk.VIRTIO_MMIO_BASE
MAX_MEMORY = 64 << 30
# Three pages KVM may use for real-mode emulation on Intel; outside guest RAM.
TSS_ADDR = 0xFFFB_D000
MSR_IA32_TSC = 0x10
_POLL_S = 0.05  # how often run() looks at request_stop()

REQUIRED_CAPS = (Cap.USER_MEMORY, Cap.SYNC_REGS, Cap.IMMEDIATE_EXIT)


class MachineError(Exception):
    """The VM cannot be built as configured (bad size, missing capability...)."""


@dataclass
class MachineConfig:
    kernel: Path
    memory: int = 64 << 20
    cmdline: str = ""
    vcpus: int = 1
    timeout: float | None = None
    console_fd: int = 1
    #: Where the guest's console RECV reads from.
    console_in_fd: int = 0
    kvm_path: str = "/dev/kvm"
    #: Block and stream channels, in handle order after the console (see pyvmm.devices.spec).
    channels: tuple[ChannelSpec, ...] = ()
    #: Time every exit into ``Machine.metrics`` (``pyvmm run --stats``): the instrumented loop.
    stats: bool = False
    #: Add a null-sink channel (discards sends), for benchmarks.
    null_sink: bool = False
    #: Channel objects after those of ``channels`` (the API's ``VM.add_channel``, plugins).
    extra_channels: tuple[Channel, ...] = ()
    #: Build the VM from this verified snapshot instead of booting ``kernel`` (``pyvmm restore``).
    restore: Restorable | None = None
    #: Where snapshots go (``--snapshot-dir``, ``VM.snapshot``); None: SNAPSHOT is -ENOSYS.
    snapshot_dir: SnapshotDir | None = None
    #: ``--hw-api``: add KVM's in-kernel LAPIC (x2APIC, TSC-deadline timer) and a 16550 UART
    #: at COM1 (:mod:`pyvmm.hw`); the default VM has no emulated hardware at all.
    hw_api: bool = False


@dataclass
class BootTimes:
    """Monotonic nanosecond timestamps of the boot milestones."""

    create_start: int = 0  # just before KVM_CREATE_VM
    first_run: int = 0  # just before the boot vCPU's first KVM_RUN
    first_hypercall: int = 0

    @property
    def to_first_hypercall_ns(self) -> int:
        return self.first_hypercall - self.create_start if self.first_hypercall else 0

    def set_first_run(self, ns: int) -> None:
        self.first_run = ns

    def set_first_hypercall(self, ns: int) -> None:
        self.first_hypercall = ns


def _check_config(cfg: MachineConfig) -> None:
    if not MIN_MEMORY <= cfg.memory <= MAX_MEMORY:
        raise MachineError(f"--memory must be between {MIN_MEMORY >> 20} MiB and {MAX_MEMORY >> 30} GiB")
    if cfg.memory % (2 << 20):
        raise MachineError("--memory must be a multiple of 2 MiB")
    if not 1 <= cfg.vcpus <= abi.MAX_VCPUS:
        raise MachineError(f"--vcpus must be between 1 and {abi.MAX_VCPUS}")
    if len(cmdline_bytes(cfg.cmdline)) > abi.CMDLINE_MAX:
        raise MachineError(f"--cmdline is longer than {abi.CMDLINE_MAX} bytes")
    if cfg.hw_api and (cfg.restore is not None or cfg.snapshot_dir is not None):
        raise MachineError("--hw-api: snapshots do not save the local APIC or the UART yet")
    if cfg.hw_api and cfg.memory > HW_API_MAX_MEMORY:
        raise MachineError("--hw-api: at most 3 GiB of --memory (the virtio-mmio window is at 3 GiB)")


def cmdline_bytes(cmdline: str) -> bytes:
    """The bytes the guest sees: UTF-8, and argv bytes that were not UTF-8 passed through as
    they were typed (Python decodes argv with ``surrogateescape``). Raises :class:`MachineError`
    for other lone surrogates (only an API caller can make those)."""
    try:
        return cmdline.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise MachineError("--cmdline is not valid text (it holds a lone UTF-16 surrogate)") from None


def _scratch_gpa(ram: int) -> int:
    """Where the shadow-flush scratch slot goes: the next GiB boundary past RAM, and past 4 GiB."""
    return max(ram, 4 << 30) + (1 << 30) & ~((1 << 30) - 1)


def _preload_for_sandbox() -> None:
    """Import what a run and a vCPU thread import, and build and load the compiled loop,
    now, before the VM exists. An import opens files: one failing mid-run (no fd left:
    EMFILE; or the seccomp filter, which refuses ``open``) would kill a vCPU thread
    instead of failing the build."""
    import pyvmm.crash
    import pyvmm.kvm.exits
    import pyvmm.landlock
    import pyvmm.sandbox  # noqa: F401  (contain() needs them)
    from pyvmm.fastloop import library

    library()


class Machine:
    """One VM: memory, vCPUs, the hypercall dispatcher and its devices.

    Build it, call :meth:`run` once, then :meth:`close` (or use ``with``).
    Raises :class:`~pyvmm.kvm.KvmError`, :class:`~pyvmm.loader.LoaderError`
    or :class:`MachineError` when it cannot be built; a half-built machine is
    closed before the error propagates (every resource is released by the
    one stack that acquired it, so :meth:`close` never sees a partial object).
    """

    def __init__(self, config: MachineConfig) -> None:
        _check_config(config)
        self.config = config
        # Parse and validate the guest before touching KVM: a bad ELF costs nothing.
        self.image = read_elf(config.kernel) if config.restore is None else None
        #: The vCPUs run() starts: the boot vCPU, or those a snapshot had running.
        self._start_ids = [0]
        self._runs = 0
        self.times = BootTimes()
        self.result: RunResult | None = None
        self._stop_lock = threading.Lock()
        self._done = threading.Event()
        self._requested: RunResult | None = None
        self._snapshot_requested = False
        self._before_hooks: list = []
        self._after_hooks: list = []
        self._exit_hooks: list = []
        self._debugger: VcpuDebugger | None = None
        #: The per-vCPU loop (:data:`pyvmm.loop.Loop`); None = :func:`pyvmm.loop.run_loop`.
        #: ``stats`` selects the instrumented one; benchmarks plug in their variants here.
        self.loop = None
        self.metrics = None
        if config.stats:
            from pyvmm.metrics import Metrics
            from pyvmm.statshooks import stats_loop

            self.metrics = Metrics()
            self.loop = stats_loop(self.metrics)
        _preload_for_sandbox()
        self._resources = contextlib.ExitStack()
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # -- assembly ------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.config
        own = self._resources
        # First, so it inherits none of the VM's files or memory; closed last (removes socket files).
        self.broker = None
        if any(isinstance(spec, StreamSpec) for spec in cfg.channels):  # a plain VM imports and forks nothing
            from pyvmm.devices.broker import SocketBroker

            with stopsignals.deferred():  # a stop signal here must not leave the broker unrecorded
                self.broker = SocketBroker.for_channels(cfg.channels)
                own.callback(self.broker.close)
        self.kvm = kvm = Kvm(cfg.kvm_path)
        own.callback(kvm.close)
        kvm.check_api_version()
        missing = [cap.name for cap in REQUIRED_CAPS if not kvm.check_extension(cap)]
        if missing:
            raise KvmError("KVM_CHECK_EXTENSION", errno.ENOTSUP, f"missing capabilities: {', '.join(missing)}")
        # A host property, asked before the VM exists (as Firecracker does at start-up).
        supported = kvm.supported_cpuid()
        self.times.create_start = time.monotonic_ns()
        if cfg.hw_api:  # asked first: a backend without the hardware refuses in one line
            from pyvmm.hw.platform import HwApiError, check_backend

            try:
                check_backend(kvm.check_extension)
            except HwApiError as e:
                raise MachineError(str(e)) from None
        self.vm = vm = kvm.create_vm()
        own.callback(vm.close)
        try:
            vm.set_tss_addr(TSS_ADDR)
        except KvmError as e:
            if e.errno not in (errno.ENOTTY, errno.EINVAL):
                raise  # backends without real-mode emulation do not implement it

        restore = cfg.restore
        try:
            mem = GuestMemory(
                cfg.memory,
                vmm_owned_end=Layout.RESERVED_END,
                guest_shared=(Layout.SHARED_PAGE, Layout.SHARED_PAGE + Layout.PAGE_SIZE),
                backing_fd=None if restore is None else restore.memory_fd,
            )
        except OSError as e:
            raise MachineError(f"--memory {cfg.memory >> 20}M: cannot map guest RAM ({e.strerror})") from None
        self.memory = mem
        own.callback(mem.close)
        vm.set_user_memory_region(0, 0, mem.size, mem.host_address)
        own.callback(self._delete_memslot)  # before the unmap above: closing runs last-in first
        nx = has_nx(supported)
        # Tables are written through to RAM and read from the VMM's copy: a guest that writes
        # its pool pages anyway (CR0.WP clear) cannot make pyvmm trust what it wrote.
        tables = TableMemory(mem, Layout.PAGE_TABLE_POOL, Layout.RESERVED_END)
        self.pt_pool = FramePool(tables, Layout.PAGE_TABLE_POOL, Layout.RESERVED_END)
        if restore is None:
            # zeroed: the mapping is fresh anonymous memory, nothing written yet: .bss costs nothing.
            self.elf: LoadedElf | None = self.image.load(mem, reserved_end=Layout.RESERVED_END, zeroed=True)
            nx_mask = ~0 if nx else ~int(Pte.NO_EXECUTE)
            low = low_page_flags if nx else (lambda gpa: low_page_flags(gpa) & nx_mask)
            high = Pte.PRESENT | Pte.WRITABLE
            self.kernel_tables: PageTables = identity_map(
                tables, self.pt_pool, mem.size, low_flags=low, high_flags=high
            )
            mem.write(Layout.GDT, boot.gdt_page(Layout.GDT))
        else:  # tables, GDT, the kernel and its data are all in the snapshot's RAM
            self.elf = None
            self.kernel_tables = PageTables(tables, self.pt_pool, root=restore.manifest.kernel_root)

        self.channels = self._open_channels()
        own.callback(self.channels.close)  # disks fsync'd, peers see the stream close
        self.hw = None
        if cfg.hw_api:  # before the vCPUs: KVM wants the split irqchip first
            from pyvmm.devices.block import BlockDevice
            from pyvmm.hw.platform import HwPlatform

            disk = next((c for c in self.channels if isinstance(c, BlockDevice)), None)
            self.hw = HwPlatform(vm, self.console.send_bytes, self.console.can_send, mem, cfg.vcpus, disk)
            own.callback(self.hw.close)
            # Uncached, no-execute: a device window (the guest kernel never writes a PTE).
            self.hw.map_windows(
                self.kernel_tables, Pte.PRESENT | Pte.WRITABLE | Pte.PCD | (Pte.NO_EXECUTE if nx else 0)
            )
        self.vcpus = VcpuSet(self._vcpu_thread)
        self.events = EventChannels(mem, self.channels, self.vcpus)
        own.callback(self.events.close)
        self.timers = VcpuTimers(self.events)
        own.callback(self.timers.stop)
        shadow = ShadowMmu(vm, _scratch_gpa(mem.size)) if shadow_paging_in_use() else None
        self.address_spaces = AddressSpaceManager(
            mem,
            self.pt_pool,
            self.kernel_tables,
            nx=nx,
            reserved_end=Layout.RESERVED_END,
            vcpus=self.vcpus,
            shadow=shadow,
        )
        own.callback(self.address_spaces.close)
        from pyvmm.snapshot.control import SnapshotControl
        from pyvmm.snapshot.format import host_boot_id

        self.boot_id = host_boot_id()  # read now: /proc is out of reach under seccomp
        self.snapshots = SnapshotControl(self, cfg.snapshot_dir)
        own.callback(self.snapshots.close)
        self.dispatcher = self._install_handlers()

        for i in range(cfg.vcpus):
            fd = vm.create_vcpu(i)
            own.callback(fd.close)
            self.vcpus.add(Vcpu(i, fd))
            if restore is None:
                fd.set_cpuid2(guest_cpuid(supported, i, cfg.vcpus, lapic=cfg.hw_api))
                sregs = boot.long_mode_sregs(fd.get_sregs(), cr3=self.kernel_tables.root, gdt_gpa=Layout.GDT, nx=nx)
                if self.hw is None:
                    # No APIC: IA32_APIC_BASE globally disabled, as on a CPU without one. KVM
                    # derives CPUID.1:EDX.APIC from its enable bit at run time, so without
                    # this the guest would see an APIC bit that guest_cpuid cleared.
                    sregs.apic_base = 0
                fd.set_sregs(sregs)
                fd.set_fpu(boot.boot_fpu())
                fd.set_msrs(boot.boot_msrs())
            fd.enable_sync_regs()
            if self.hw is not None:
                self.hw.setup_vcpu(fd)
        boot_cpu = self.vcpus[0].fd
        self.tsc_khz = _tsc_khz(boot_cpu)
        if restore is not None:
            from pyvmm.snapshot.restore import apply_snapshot

            self._start_ids = apply_snapshot(self, restore)
            return
        write_boot_info(
            mem,
            cmdline=cmdline_bytes(cfg.cmdline),
            nr_vcpus=cfg.vcpus,
            tsc_khz=self.tsc_khz,
            tsc_now=boot_cpu.get_msrs([MSR_IA32_TSC]).get(MSR_IA32_TSC, 0),
            channels=self.channels,
            features=self.channels.features() | (abi.Feature.SNAPSHOT if self.snapshots.available else 0),
        )
        boot_cpu.set_regs(boot.boot_regs(entry=self.elf.entry, stack=mem.size, arg=Layout.BOOT_INFO))

    def own(self, release) -> None:
        """Call *release()* when the machine closes (after every vCPU has stopped)."""
        self._resources.callback(release)

    def add_hooks(self, *, before=(), after=(), on_exit=()) -> None:
        """Before :meth:`run`: call each of *before* as ``fn(vcpu_id, nr, args)`` before every
        hypercall, each of *after* as ``fn(vcpu_id, nr, args, result, ns)`` after it, each of
        *on_exit* as ``fn(vcpu_id, exit_reason)`` on every other exit (:mod:`pyvmm.extensions`).
        With no hypercall hook the loop dispatches directly: hooks cost nothing unless used."""
        self._before_hooks.extend(before)
        self._after_hooks.extend(after)
        self._exit_hooks.extend(on_exit)

    def _loop_env(self) -> LoopEnv:
        dispatch = self.dispatcher.dispatch
        if self._before_hooks or self._after_hooks:
            dispatch = _hooked(dispatch, tuple(self._before_hooks), tuple(self._after_hooks))
        return LoopEnv(
            dispatch=dispatch,
            events=self.events,
            vcpus=self.vcpus,
            timers=self.timers,
            on_first_run=self.times.set_first_run,
            on_first_hypercall=self.times.set_first_hypercall,
            on_exit=_exit_hooks(tuple(self._exit_hooks)),
            debugger=self._debugger,
            ports=None if self.hw is None else self.hw.ports,
            mmio=None if self.hw is None else self.hw.mmio,
        )

    def attach_debugger(self, debugger: VcpuDebugger) -> None:
        """Before :meth:`run`: let *debugger* (``--gdb``) stop and resume the vCPUs."""
        self._debugger = debugger

    def _open_channels(self) -> ChannelTable:
        channels = ChannelTable()
        try:
            self.console = Console(self.config.console_fd, in_fd=self.config.console_in_fd)
            channels.add(self.console)  # handle 0 == abi.CONSOLE_HANDLE
            for spec in self.config.channels:  # a spec, or a device made already (a restore's reset stream)
                if isinstance(spec, ChannelBase):
                    channels.add(spec)
                    continue
                endpoint = self.broker.endpoint_for(spec) if isinstance(spec, StreamSpec) else None
                channels.add(open_device(spec, endpoint))
        except DeviceError as e:
            channels.close()
            raise MachineError(str(e)) from None
        for device in self.config.extra_channels:
            channels.add(device)
        if self.config.null_sink:
            from pyvmm.devices.null_sink import NullSink

            channels.add(NullSink())
        return channels

    def _install_handlers(self) -> Dispatcher:
        d = Dispatcher()
        self.services = Services(
            memory=self.memory,
            channels=self.channels,
            vcpus=self.vcpus,
            events=self.events,
            timers=self.timers,
            address_spaces=self.address_spaces,
            snapshots=self.snapshots,
        )
        install_all(d, self.services)
        return d

    def _delete_memslot(self) -> None:
        try:
            self.vm.set_user_memory_region(0, 0, 0, 0)  # tear down the slot before unmapping
        except KvmError:
            pass

    # -- lifecycle -------------------------------------------------------------
    def run(self) -> RunResult:
        """Run until the guest shuts down, crashes, times out or a signal arrives.

        Raises :class:`MachineError` if the boot vCPU's thread cannot start."""
        if self._runs:  # after reset(): the same VM runs again
            self._done.clear()
            self.result = self._requested = None
            self.console.reopen_output()
        self._runs += 1
        announce_extensions(self.memory, self.dispatcher.extensions())
        if threading.current_thread() is threading.main_thread():
            install_kick_handler()
        self._env = self._loop_env()
        try:
            self.vcpus.start_vcpus(self._start_ids)
        except ThreadStartError as e:  # nothing ran yet: a build-time kind of failure
            raise MachineError(str(e)) from None
        deadline = None if self.config.timeout is None else time.monotonic() + self.config.timeout
        while not self._done.is_set():
            if self._snapshot_requested:  # --snapshot-on SIGNAL: taken here, on the main thread
                self._snapshot_requested = False
                self._snapshot_from_signal()
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
        self.vcpus.join_all()
        # Before run() returns, its output is out (bounded when nobody reads: see OutputBuffer.close).
        self.console.finish_output()
        return self.result

    def _vcpu_thread(self, vcpu: Vcpu) -> None:
        """A vCPU thread's body: run the loop, and turn whatever ends it into a machine stop."""
        from pyvmm.crash import build_report
        from pyvmm.loop import start

        try:
            outcome = start(vcpu, self._env, self.loop)
        except KvmError as e:
            outcome = None
            why = str(e)
        except BaseException as e:  # a VMM bug: stop the VM, never hang the process
            outcome = None
            why = f"pyvmm internal error: {type(e).__name__}: {e}"
        if outcome is not None:
            if outcome.kind is OutcomeKind.SHUTDOWN:
                self.stop(RunResult(StopReason.SHUTDOWN, exit_code=outcome.code))
                return
            if outcome.kind is not OutcomeKind.CRASH:
                return  # stopped: somebody else recorded the result
            why = outcome.reason
        if self._debugger is not None:
            self._debugger.crashed(vcpu, why)  # gdb sees the state first; the report follows
        report = build_report(
            vcpu.fd, vcpu.id, why, self.memory, last_regs=vcpu.last_regs, kernel_cr3=self.kernel_tables.root
        )
        self.stop(RunResult(StopReason.CRASH, exit_code=125, crash=report))

    def contain(self, extra_rules: tuple = ()) -> None:
        """Load the seccomp allow-list (:mod:`pyvmm.sandbox`) into this process: after
        setup, before the first ``KVM_RUN``; irreversible. Raises ``SandboxError``."""
        # Everything the run needs after this was imported (and the compiled loop loaded)
        # by _preload_for_sandbox: the filter refuses opening files. No disassembly in crash
        # reports under it: capstone's import would cost more than a whole boot.
        from pyvmm import landlock, sandbox

        if not sandbox.available():  # loads libseccomp now: under Landlock no library can be opened
            raise sandbox.SandboxError("libseccomp.so.2 is not installed")
        snapshot_dir = self.config.snapshot_dir
        writable = () if snapshot_dir is None else (snapshot_dir.fd,)
        try:  # a second wall where the kernel has Landlock (pyvmm.landlock); seccomp is the first
            self.landlock_abi = landlock.restrict(writable)
        except OSError:
            self.landlock_abi = 0
        extra = () if snapshot_dir is None else sandbox.snapshot_rules(snapshot_dir.fd)
        sandbox.apply((*extra, *extra_rules))

    def request_snapshot(self) -> None:
        """Ask :meth:`run` to snapshot the VM into ``config.snapshot_dir``; safe from a
        signal handler (takes no lock)."""
        self._snapshot_requested = True

    def _snapshot_from_signal(self) -> None:
        from pyvmm.snapshot.format import SnapshotError

        try:
            r = self.snapshots.take()
        except SnapshotError as e:
            print(f"pyvmm: snapshot failed, the VM goes on: {e}", file=sys.stderr)
            return
        print(
            f"pyvmm: snapshot written to {r.path}: {r.pages} pages ({r.bytes_written >> 10} KiB), "
            f"vCPUs paused {r.pause_ns / 1e6:.1f} ms",
            file=sys.stderr,
        )

    def reset(self) -> None:
        """Roll the stopped VM back to the snapshot taken with ``resettable=True``; the next
        :meth:`run` resumes from it. Raises ``SnapshotError``."""
        if any(v.state is VcpuState.RUNNING for v in self.vcpus):
            from pyvmm.snapshot.format import SnapshotError

            raise SnapshotError("reset needs a stopped VM")
        self.vcpus.join_all()
        self.snapshots.clones += 1
        self._start_ids = self.snapshots.baseline_reset(self.snapshots.clones)

    def request_stop(self, result: RunResult) -> None:
        """Ask :meth:`run` to stop the VM; safe from a signal handler (takes no lock)."""
        self._requested = result

    def stop(self, result: RunResult) -> None:
        """Record *result* (the first one wins) and stop every vCPU. Any thread."""
        with self._stop_lock:
            if self.result is None:
                self.result = result
        self.vcpus.stop_all()
        if self._debugger is not None:
            self._debugger.vm_stopping(self.result)
        self._done.set()

    @property
    def stopping(self) -> bool:
        return self.vcpus.stopping

    def close(self) -> None:
        """Release everything the build acquired, last first: address spaces, timers,
        events, channels (disks fsync'd), vCPUs, the memslot, guest memory, the KVM fds.
        Idempotent."""
        self._resources.close()

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _hooked(dispatch, before, after):
    """*dispatch* between the *before* and *after* hooks, timed (``time.perf_counter_ns``)."""
    clock = time.perf_counter_ns

    def hooked(vcpu, nr, a0, a1, a2, a3, a4) -> int:
        args = (a0, a1, a2, a3, a4)
        for hook in before:
            hook(vcpu.id, nr, args)
        t = clock()
        result = dispatch(vcpu, nr, a0, a1, a2, a3, a4)
        ns = clock() - t
        for hook in after:
            hook(vcpu.id, nr, args, result, ns)
        return result

    return hooked


def _exit_hooks(hooks):
    """None (the loop's fast test) or one callable running every ``fn(vcpu_id, exit_reason)``."""
    if not hooks:
        return None

    def on_exit(vcpu_id: int, reason: int) -> None:
        for hook in hooks:
            hook(vcpu_id, reason)

    return on_exit


def _tsc_khz(vcpu: VcpuFd) -> int:
    try:
        return vcpu.tsc_khz()
    except KvmError:
        return 0
