"""pyvmm paravirtual ABI, version 1: the single source of truth.

The guest's C header ``guest-kernel/include/pyvmm_abi.h`` is generated from
this module (``python -m pyvmm.paravirt.cheader``) and a test fails if the
committed header drifts. ``docs/abi.md`` explains the semantics.

Calling convention (syscall-shaped, like Linux ``syscall`` and KVM's own PV
calls): hypercall number in ``rax``, arguments in ``rdi, rsi, rdx, r10, r8``,
trigger with ``outl %eax, $HYPERCALL_PORT``, result in ``rax`` (a negative
errno on failure). Every other register is preserved.

Over ~400 lines on purpose: every number, struct and call signature of the ABI stays in
this one table, which generates the guest's headers and the docs' tables (a split would
split the source of truth).
"""

from __future__ import annotations

import ctypes
import enum
from ctypes import c_char, c_int64, c_uint32, c_uint64
from typing import NamedTuple

ABI_VERSION_MAJOR = 1
# 1.1: the extension range (EXT_BASE..) and its boot-info fields;
# 1.2 (Feature.FILES): host directory shares, file handles, user-VA transfers, low-window spaces;
# 1.3 (Feature.SNAPSHOT): SNAPSHOT and the clone fields of boot info.
ABI_VERSION_MINOR = 3
ABI_VERSION = (ABI_VERSION_MAJOR << 16) | ABI_VERSION_MINOR

#: The one I/O port a hypercall is issued on (fits ``out %eax, $imm8``).
HYPERCALL_PORT = 0xF5

BOOT_INFO_MAGIC = 0x4F464E49_4D4D5650  # "PVMMINFO" little-endian


class Layout(enum.IntEnum):
    """Fixed guest-physical layout. Everything below ``RESERVED_END`` is the VMM's."""

    NULL_PAGE = 0x0000  # never mapped: catches NULL dereferences
    BOOT_INFO = 0x1000  # struct pvm_boot_info, read-only to the guest
    CMDLINE = 0x2000  # NUL-terminated command line, read-only
    GDT = 0x3000  # boot GDT + TSS, read-only
    SHARED_PAGE = 0x4000  # guest-writable page shared with the VMM (events)
    PAGE_TABLE_POOL = 0x10000  # VMM-owned page-table frames, read-only
    RESERVED_END = 0x200000  # first byte a guest ELF may load at
    PAGE_SIZE = 0x1000


CMDLINE_MAX = 4095
#: The extension range: hypercall numbers EXT_BASE .. EXT_BASE + EXT_COUNT - 1 are the user's.
EXT_BASE = 64
EXT_COUNT = 64


class Hypercall(enum.IntEnum):
    """Hypercall numbers (``rax``).

    Ranges: 0-31 core, channels, events, time and vCPUs; 32-47 address spaces
    (pagetable-set); 48-63 reserved; 64-127 the extension range (:data:`EXT_BASE`,
    hypercalls a user registers in Python: ``-ENOSYS`` until one is, announced in
    ``pvm_boot_info.ext_registered``); numbers >= 128 are always ``-ENOSYS``.
    """

    NULL = 0  # () -> 0; the cheapest round trip, for benchmarks
    SHUTDOWN = 1  # (exit_code) -> does not return
    SEND = 2  # (handle, buf_gpa, len, offset) -> bytes sent
    RECV = 3  # (handle, buf_gpa, len, offset) -> bytes received
    NOTIFY = 4  # (port) -> 0
    BLOCK = 5  # (deadline_ns, notify_port) -> 0 on event, -ETIME at the deadline
    YIELD = 6  # () -> 0
    TIMER_SET = 7  # (deadline_ns) -> 0; -ETIME if already past
    CLOCK_GET = 8  # (clock) -> ns
    VCPU_UP = 9  # (vcpu, entry, stack, arg) -> 0
    MULTICALL = 10  # (entries_gpa, count) -> entries run
    EVENT_BIND = 11  # (kind, target, arg) -> port
    EVENT_CLOSE = 12  # (port) -> 0
    CHANNEL_FLUSH = 13  # (handle) -> 0 once written data is durable
    CHANNEL_INFO = 14  # (handle, info_gpa) -> 0, fills struct pvm_channel_stat
    # ABI 1.2 (Feature.FILES): host directory shares; see docs/abi.md "Shares".
    CHANNEL_OPEN = 15  # (share, path_gpa, path_len, flags, mode) -> a new file/dir handle
    CHANNEL_CLOSE = 16  # (handle) -> 0; only handles CHANNEL_OPEN returned
    FILE_STAT = 17  # (handle, stat_gpa) -> 0, fills struct pvm_file_stat
    SNAPSHOT = 18  # () -> 0 in the original, the clone id (>= 1) in a restored copy (ABI 1.3)
    # 32-47: address spaces (pagetable-set); see docs/abi.md "Address spaces".
    AS_CREATE = 32  # () -> handle
    AS_DESTROY = 33  # (handle) -> 0; -EBUSY while loaded on a vCPU
    AS_MAP = 34  # (handle, va, gpa, len, prot) -> 0
    AS_UNMAP = 35  # (handle, va, len) -> 0
    AS_PROTECT = 36  # (handle, va, len, prot) -> 0
    AS_SWITCH = 37  # (handle) -> 0; loads the space on the calling vCPU (handle 0: the boot space)
    AS_CLONE = 38  # (handle) -> new handle sharing the user pages copy-on-write
    AS_MAP_BATCH = 39  # (handle, ops_gpa, count) -> ops done; struct pvm_as_op[count], result per entry
    AS_LAZY = 40  # (handle, va, len, prot) -> 0; a demand-zero range
    PAGE_FAULT = 41  # (handle, va, error_code, rip) -> 0 "retry", -EFAULT "refused", -ENOMEM
    AS_DONATE = 42  # (gpa, len) -> 0; guest RAM handed to the VMM for demand-zero and COW frames
    # ABI 1.2: SEND/RECV whose buffer is a user virtual address of a space (faults served as the MMU would).
    USER_SEND = 43  # (handle, va, len, offset, space) -> bytes sent
    USER_RECV = 44  # (handle, va, len, offset, space) -> bytes received


class HypercallSpec(NamedTuple):
    """One call's signature: the argument names (``rdi, rsi, rdx, r10, r8`` in order) and
    what ``rax`` holds on success. The table below generates the guest's C wrappers
    (``pyvmm_calls.h``) and is checked against every handler at registration."""

    nr: Hypercall
    args: tuple[str, ...]
    returns: str


def _spec(nr: Hypercall, args: str, returns: str) -> HypercallSpec:
    return HypercallSpec(nr, tuple(args.split()), returns)


HYPERCALL_SPECS: dict[Hypercall, HypercallSpec] = {
    spec.nr: spec
    for spec in (
        _spec(Hypercall.NULL, "", "0"),
        _spec(Hypercall.SHUTDOWN, "code", "does not return"),
        _spec(Hypercall.SEND, "handle buf len offset", "bytes sent"),
        _spec(Hypercall.RECV, "handle buf len offset", "bytes received"),
        _spec(Hypercall.NOTIFY, "port", "0"),
        _spec(Hypercall.BLOCK, "deadline notify_port", "0 on an event, -ETIME at the deadline"),
        _spec(Hypercall.YIELD, "", "0"),
        _spec(Hypercall.TIMER_SET, "deadline", "0; -ETIME if already past"),
        _spec(Hypercall.CLOCK_GET, "clock", "ns"),
        _spec(Hypercall.VCPU_UP, "vcpu entry stack arg", "0"),
        _spec(Hypercall.MULTICALL, "entries count", "entries run"),
        _spec(Hypercall.EVENT_BIND, "kind target arg", "port"),
        _spec(Hypercall.EVENT_CLOSE, "port", "0"),
        _spec(Hypercall.CHANNEL_FLUSH, "handle", "0 once written data is durable"),
        _spec(Hypercall.CHANNEL_INFO, "handle info", "0"),
        _spec(Hypercall.CHANNEL_OPEN, "share path path_len flags mode", "new handle"),
        _spec(Hypercall.CHANNEL_CLOSE, "handle", "0"),
        _spec(Hypercall.FILE_STAT, "handle stat", "0"),
        _spec(Hypercall.SNAPSHOT, "", "0 in the original, the clone id in a restored copy"),
        _spec(Hypercall.AS_CREATE, "flags", "handle"),
        _spec(Hypercall.AS_DESTROY, "handle", "0"),
        _spec(Hypercall.AS_MAP, "handle va gpa len prot", "0"),
        _spec(Hypercall.AS_UNMAP, "handle va len", "0"),
        _spec(Hypercall.AS_PROTECT, "handle va len prot", "0"),
        _spec(Hypercall.AS_SWITCH, "handle", "0"),
        _spec(Hypercall.AS_CLONE, "handle", "new handle"),
        _spec(Hypercall.AS_MAP_BATCH, "handle ops count", "ops done"),
        _spec(Hypercall.AS_LAZY, "handle va len prot", "0"),
        _spec(Hypercall.PAGE_FAULT, "handle va error rip", "0 retry, -EFAULT refused"),
        _spec(Hypercall.AS_DONATE, "gpa len", "0"),
        _spec(Hypercall.USER_SEND, "handle va len offset space", "bytes sent"),
        _spec(Hypercall.USER_RECV, "handle va len offset space", "bytes received"),
    )
}


class Errno(enum.IntEnum):
    """Error numbers (Linux values); a failing hypercall returns ``-Errno``."""

    EPERM = 1
    ENOENT = 2
    ESRCH = 3
    EIO = 5
    E2BIG = 7
    EBADF = 9
    EAGAIN = 11
    ENOMEM = 12
    EACCES = 13
    EFAULT = 14
    EBUSY = 16
    EEXIST = 17
    EXDEV = 18  # ABI 1.2: a share path that resolves outside the share
    ENOTDIR = 20
    EISDIR = 21
    EINVAL = 22
    EMFILE = 24
    ENOTTY = 25
    EFBIG = 27
    ENOSPC = 28
    ESPIPE = 29
    EROFS = 30
    EPIPE = 32
    ERANGE = 34
    ENAMETOOLONG = 36
    ENOSYS = 38
    ENOTEMPTY = 39
    ELOOP = 40
    ETIME = 62
    ECONNRESET = 104
    ETIMEDOUT = 110


class Feature(enum.IntFlag):
    """Bits in ``pvm_boot_info.features``: what this VMM offers."""

    CONSOLE = 1 << 0
    EVENTS = 1 << 1  # event channels, notify, block, upcall vector
    TIMER = 1 << 2  # one-shot timer and clocks
    SMP = 1 << 3  # vcpu_up
    MULTICALL = 1 << 4
    BLOCK_DEVICE = 1 << 5  # block channels (--disk)
    INTER_VM = 1 << 6  # stream channels to another VM (--channel)
    ADDRESS_SPACES = 1 << 7  # pagetable-set calls and page-fault forwarding
    EXTENSIONS = 1 << 8  # ABI 1.1: the extension range; ext_* fields of boot info are valid
    FILES = 1 << 9  # ABI 1.2: CHANNEL_OPEN/CLOSE, FILE_STAT, USER_SEND/RECV, AS_CREATE flags
    SHARE = 1 << 10  # a host directory share channel is present (--share)
    SNAPSHOT = 1 << 11  # ABI 1.3: SNAPSHOT has somewhere to write; clone_* fields of boot info are valid


class Prot(enum.IntFlag):
    """Protection of an address-space mapping (``prot`` of AS_MAP, AS_PROTECT, AS_LAZY)."""

    READ = 1 << 0  # required: x86 cannot map a page write- or execute-only
    WRITE = 1 << 1
    EXEC = 1 << 2  # without it the page is no-execute (where the CPU has NX)
    USER = 1 << 3  # reachable from CPL3; without it, kernel-only


class AsOpCode(enum.IntEnum):
    """``struct pvm_as_op.op`` for AS_MAP_BATCH: the same arguments as the single calls."""

    MAP = 1  # va, gpa, len, prot
    UNMAP = 2  # va, len
    PROTECT = 3  # va, len, prot
    LAZY = 4  # va, len, prot


class PfError(enum.IntFlag):
    """x86 page-fault error code bits, as forwarded by PAGE_FAULT."""

    PRESENT = 1 << 0  # 0: not present; 1: protection violation
    WRITE = 1 << 1
    USER = 1 << 2  # the access came from CPL3
    RSVD = 1 << 3
    FETCH = 1 << 4  # instruction fetch


#: Address spaces: user mappings live in the lower canonical half above PML4 slot 0
#: (slot 0 is the kernel's identity map of RAM, shared by every space, supervisor-only).
AS_USER_BASE = 0x0000_0080_0000_0000
AS_USER_END = 0x0000_8000_0000_0000
#: Handle of the boot address space (the kernel identity map): AS_SWITCH(0) returns to it.
AS_KERNEL_HANDLE = 0
#: Most entries one AS_MAP_BATCH takes (more: -E2BIG).
AS_BATCH_MAX = 4096
#: ABI 1.2: a space created with ``AsCreateFlag.LOW_WINDOW`` also owns ``[AS_LOW_BASE, AS_USER_BASE)``:
#: PML4 slot 0 keeps only the kernel's first 4 MiB (boot pages and kernel image), so programs linked
#: at the traditional 0x400000 run unmodified. The kernel must not touch RAM above AS_LOW_BASE
#: through its identity map while such a space is loaded.
AS_LOW_BASE = 0x40_0000


class AsCreateFlag(enum.IntFlag):
    """``AS_CREATE(flags)`` (ABI 1.2; 0 is the 1.0 behaviour)."""

    LOW_WINDOW = 1 << 0


class AsOp(ctypes.Structure):
    """``struct pvm_as_op``: one entry of an AS_MAP_BATCH array; ``result`` is written back."""

    _fields_ = [
        ("op", c_uint32),  # AsOpCode
        ("prot", c_uint32),  # Prot
        ("va", c_uint64),
        ("gpa", c_uint64),
        ("len", c_uint64),
        ("result", c_int64),  # 0, or -errno; entries after the first failure are not run
    ]


class ChannelKind(enum.IntEnum):
    CONSOLE = 1  # host stdout (send) / stdin (recv)
    BLOCK = 2  # a host file: send = pwrite, recv = pread at offset; flush = fsync
    STREAM = 3  # a byte stream to another VM over a Unix socket
    NULL_SINK = 4  # discards what is sent, like /dev/null (benchmarks; present only when configured)
    SHARE = 5  # ABI 1.2: a host directory (--share); CHANNEL_OPEN on it returns the kinds below
    FILE = 6  # a regular file: SEND/RECV at byte offsets (pwrite/pread)
    DIR = 7  # a directory: RECV at an offset returns linux_dirent64 records
    PATH = 8  # O_PATH: FILE_STAT only; RECV on a symbolic link returns its target


class EventKind(enum.IntEnum):
    """What an event port is bound to (``EVENT_BIND`` kind)."""

    IPI = 1  # target = vCPU: NOTIFY(port) raises it on that vCPU
    VIRQ = 2  # target = Virq number, arg = vCPU to deliver to
    CHANNEL = 3  # target = channel handle, arg = vCPU: raised when readiness changes


class Virq(enum.IntEnum):
    """Virtual interrupt sources a VIRQ port can be bound to."""

    TIMER = 0  # the vCPU's one-shot timer (TIMER_SET) expired


class Clock(enum.IntEnum):
    """``CLOCK_GET`` clock ids."""

    MONOTONIC = 0  # host CLOCK_MONOTONIC, ns; the clock TIMER_SET and BLOCK deadlines use
    REALTIME = 1  # wall clock, ns since the Unix epoch


#: The one interrupt vector pyvmm injects: "some event is pending on this vCPU".
UPCALL_VECTOR = 32
NR_PORTS = 512
PORTS_PER_GROUP = 64
MAX_VCPUS = 64
MULTICALL_MAX = 1024


class VcpuEventInfo(ctypes.Structure):
    """Per-vCPU part of the shared page. Bytes, so each side updates them atomically
    with plain stores (VMM) and ``xchg`` (guest): no read-modify-write is shared."""

    _fields_ = [
        ("upcall_pending", ctypes.c_uint8),  # VMM sets 1; guest xchg's to 0 in its upcall handler
        ("upcall_mask", ctypes.c_uint8),  # guest sets 1 to hold upcalls; BLOCK clears it
        ("pad", ctypes.c_uint8 * 6),
        ("pending_sel", ctypes.c_uint8 * (NR_PORTS // PORTS_PER_GROUP)),  # one byte per 64-port group
    ]


class SharedInfo(ctypes.Structure):
    """``struct pvm_shared_info`` at ``Layout.SHARED_PAGE`` (guest-writable)."""

    _fields_ = [
        ("evtchn_pending", ctypes.c_uint8 * NR_PORTS),  # VMM sets 1; guest xchg's to 0 to consume
        ("evtchn_mask", ctypes.c_uint8 * NR_PORTS),  # guest-owned; 1 = do not upcall for this port
        ("vcpu", VcpuEventInfo * MAX_VCPUS),
    ]


class MulticallEntry(ctypes.Structure):
    """One entry of a ``MULTICALL`` batch; ``result`` is written back."""

    _fields_ = [
        ("nr", c_uint64),
        ("args", c_uint64 * 5),
        ("result", c_uint64),
    ]


#: Handle of the console channel (host stdout/stdin), like fd 1.
CONSOLE_HANDLE = 0
MAX_CHANNELS = 16
CHANNEL_NAME_LEN = 24


class ChannelInfo(ctypes.Structure):
    """One entry of the boot-info channel table."""

    _fields_ = [
        ("handle", c_uint32),
        ("kind", c_uint32),
        ("name", c_char * CHANNEL_NAME_LEN),
    ]


class BootInfo(ctypes.Structure):
    """``struct pvm_boot_info`` at ``Layout.BOOT_INFO``; its address is in ``rdi`` at entry."""

    _fields_ = [
        ("magic", c_uint64),
        ("abi_version", c_uint32),  # major << 16 | minor
        ("features", c_uint32),  # Feature bits
        ("mem_size", c_uint64),  # bytes of guest RAM, from GPA 0
        ("cmdline", c_uint64),  # GPA of the NUL-terminated command line
        ("cmdline_len", c_uint32),  # bytes, without the NUL
        ("nr_vcpus", c_uint32),
        ("tsc_khz", c_uint64),  # TSC frequency; 0 if unknown
        ("shared_page", c_uint64),  # GPA of the guest-writable shared page
        ("reserved_end", c_uint64),  # first GPA not owned by the VMM
        ("hypercall_port", c_uint32),
        ("nr_channels", c_uint32),
        ("channels", ChannelInfo * MAX_CHANNELS),
        # -- appended fields (each new one goes at the end) --
        ("tsc_at_boot", c_uint64),  # guest TSC when...
        ("monotonic_at_boot", c_uint64),  # ...the monotonic clock read this (ns): now = this + dTSC/tsc_khz
        ("upcall_vector", c_uint32),
        ("nr_ports", c_uint32),
        # ABI 1.1 (Feature.EXTENSIONS):
        ("ext_base", c_uint32),  # first extension hypercall number (EXT_BASE)
        ("ext_count", c_uint32),  # how many numbers the range has (EXT_COUNT)
        ("ext_registered", c_uint64),  # bit i: number ext_base + i has a handler
        # ABI 1.3 (Feature.SNAPSHOT): rewritten by the VMM in each copy restored from a snapshot.
        ("clone_id", c_uint64),  # 0 in the VM that booted; >= 1 in a restored copy (SNAPSHOT's result)
        ("clone_seed", c_uint64),  # random, fresh in every copy: reseed guest RNGs after a restore
    ]


class ChannelFlag(enum.IntFlag):
    """``pvm_channel_stat.flags``: a channel's readiness, as ``poll(2)`` reports it."""

    READABLE = 1 << 0  # RECV would not return -EAGAIN (data, end of input, or an error to report)
    WRITABLE = 1 << 1  # SEND would not return -EAGAIN
    CONNECTED = 1 << 2  # a stream's peer is connected (always set for console and block)
    CLOSED = 1 << 3  # the peer went away: RECV gives -ECONNRESET once drained, SEND -EPIPE


class ChannelStat(ctypes.Structure):
    """``struct pvm_channel_stat``, filled by ``CHANNEL_INFO(handle, info_gpa)``."""

    _fields_ = [
        ("kind", c_uint32),  # ChannelKind
        ("flags", c_uint32),  # ChannelFlag bits
        ("size", c_uint64),  # a block channel's size in bytes; 0 for other kinds
    ]


class FileStat(ctypes.Structure):
    """``struct pvm_file_stat``, filled by ``FILE_STAT(handle, stat_gpa)`` (ABI 1.2): the host
    file's metadata as ``fstat(2)`` gives it (Linux ``st_mode`` bits, nanosecond times)."""

    _fields_ = [
        ("mode", c_uint32),
        ("nlink", c_uint32),
        ("uid", c_uint32),
        ("gid", c_uint32),
        ("size", c_uint64),
        ("ino", c_uint64),
        ("dev", c_uint64),
        ("blocks", c_uint64),  # 512-byte blocks
        ("atime_ns", c_int64),
        ("mtime_ns", c_int64),
        ("ctime_ns", c_int64),
        ("rdev", c_uint64),
    ]


#: ``CHANNEL_OPEN`` flags: Linux's ``O_*`` values (x86-64); others are -EINVAL.
class OpenFlag(enum.IntFlag):
    WRONLY = 0o1
    RDWR = 0o2
    CREAT = 0o100
    EXCL = 0o200
    TRUNC = 0o1000
    APPEND = 0o2000
    DIRECTORY = 0o200000
    NOFOLLOW = 0o400000
    CLOEXEC = 0o2000000
    PATH = 0o10000000


# -- pyvmm exec: the manifest the host hands the bundled kernel's exec program ------------------
# (a FILE channel named "exec": RECV at offset 0 gives ExecInfo, the initial stack image follows;
# SEND at offset 0 takes the kernel's Linux system-call counters at exit). See docs/exec.md.
EXEC_MAGIC = 0x3143455845_4D5650  # "PVMEXEC1"
EXEC_MAX_REGIONS = 16
EXEC_MAX_COPIES = 16
EXEC_CWD_MAX = 256
#: System-call numbers the exec kernel counts (x86-64 numbers below this); ExecStats arrays.
EXEC_NR_SYSCALLS = 512


class ExecFlag(enum.IntFlag):
    STATS = 1 << 0  # send the system-call counters (ExecStats) before exiting


class ExecRegion(ctypes.Structure):
    """A page-aligned range of the program's image: mapped demand-zero, filled, then given *prot*."""

    _fields_ = [("va", c_uint64), ("len", c_uint64), ("prot", c_uint32), ("pad", c_uint32)]


class ExecCopy(ctypes.Structure):
    """Bytes of the program file (channel "program") at *file_off* that go to *va*."""

    _fields_ = [("va", c_uint64), ("file_off", c_uint64), ("len", c_uint64)]


class ExecInfo(ctypes.Structure):
    """``struct pvm_exec_info``: where everything of the new process goes (all user VAs)."""

    _fields_ = [
        ("magic", c_uint64),
        ("entry", c_uint64),
        ("sp", c_uint64),  # initial rsp: argc, argv[], envp[], auxv[] are the image there
        ("stack_lo", c_uint64),  # the stack's lazy range [stack_lo, stack_hi)
        ("stack_hi", c_uint64),
        ("stack_image_off", c_uint64),  # offset of the stack image in the "exec" channel
        ("stack_image_len", c_uint64),
        ("brk", c_uint64),  # first address of the heap (page aligned)
        ("brk_max", c_uint64),  # the heap may grow up to here
        ("mmap_base", c_uint64),  # anonymous and file mappings go in [mmap_base, mmap_end)
        ("mmap_end", c_uint64),
        ("random", c_uint64 * 4),  # seed for getrandom (host urandom)
        ("nr_regions", c_uint32),
        ("nr_copies", c_uint32),
        ("uid", c_uint32),
        ("gid", c_uint32),
        ("flags", c_uint32),  # ExecFlag
        ("pad", c_uint32),
        ("cwd", c_char * EXEC_CWD_MAX),  # absolute, inside the share
        ("regions", ExecRegion * EXEC_MAX_REGIONS),
        ("copies", ExecCopy * EXEC_MAX_COPIES),
    ]


class ExecStats(ctypes.Structure):
    """What the exec kernel sends back: calls made and refused (-ENOSYS), by x86-64 number."""

    _fields_ = [
        ("magic", c_uint64),
        ("calls", c_uint32 * EXEC_NR_SYSCALLS),
        ("enosys", c_uint32 * EXEC_NR_SYSCALLS),
        ("other", c_uint32),  # calls numbered EXEC_NR_SYSCALLS or more (all -ENOSYS)
        ("pad", c_uint32),
    ]


#: Structures mirrored into the C header, in dependency order.
C_STRUCTS = (
    ChannelInfo,
    BootInfo,
    VcpuEventInfo,
    SharedInfo,
    MulticallEntry,
    ChannelStat,
    AsOp,
    FileStat,
    ExecRegion,
    ExecCopy,
    ExecInfo,
    ExecStats,
)


def errno_result(err: Errno | int) -> int:
    """The ``rax`` value (two's complement u64) for ``-err``."""
    return (-int(err)) & 0xFFFF_FFFF_FFFF_FFFF
