"""Restoring a snapshot: check everything first, then load it into a VM being built.

:func:`open_snapshot` reads and verifies the manifest (format, version, checksum, ABI
version, the host boot, what the user asked for) and the memory file (size, CRC-32 of
its data runs) before anything is built, so bad input is one line and nothing is
half-restored. :func:`channel_specs` decides each channel: disks reopened and checked,
streams reattached or reset. :func:`apply_snapshot` runs inside the machine's build.

Guest RAM is the memory file mapped ``MAP_PRIVATE`` (:class:`~pyvmm.memory.GuestMemory`
with ``backing_fd``): nothing is copied, pages come from the page cache when touched,
so restore time does not grow with RAM size, and clones of one snapshot share its pages.
"""

from __future__ import annotations

import fcntl
import os
import random
import stat
import time
from dataclasses import dataclass

from pyvmm.paravirt import abi
from pyvmm.paravirt.abi import ChannelKind, Layout
from pyvmm.paravirt.services import PauseKind, ThreadStartError
from pyvmm.snapshot import vcpustate
from pyvmm.snapshot.format import MANIFEST, MAX_MANIFEST, MEMORY, Manifest, SnapshotError, decode_manifest, open_dir

_CLONES = "clones"  # the clone counter beside the snapshot


@dataclass
class Restorable:
    """A verified snapshot, ready for a machine to load."""

    path: str
    manifest: Manifest
    memory_fd: int
    clone_id: int

    def close(self) -> None:
        if self.memory_fd >= 0:
            os.close(self.memory_fd)
            self.memory_fd = -1


def open_snapshot(
    path: str,
    *,
    memory: int | None = None,
    vcpus: int | None = None,
    boot_id: str = "",
    clone_id: int | None = None,
) -> Restorable:
    """Read and verify the snapshot in directory *path*. *memory*/*vcpus*: what the user
    asked for (None: whatever the snapshot has). Raises :class:`SnapshotError`."""
    dfd = open_dir(path, path, "no such snapshot directory")
    try:
        manifest = _read_manifest(path, dfd)
        _check_fits(manifest, memory, vcpus, boot_id)
        mfd = _open_memory(path, dfd, manifest)
        try:
            _check_memory(path, mfd, manifest)
            cid = clone_id if clone_id is not None else _next_clone_id(dfd)
        except BaseException:
            os.close(mfd)
            raise
    finally:
        os.close(dfd)
    return Restorable(path, manifest, mfd, cid)


def _read_manifest(path: str, dfd: int) -> Manifest:
    try:
        fd = os.open(MANIFEST, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no {MANIFEST} (not a snapshot, or one whose write failed)") from None
    except OSError as e:
        raise SnapshotError(f"{path}/{MANIFEST}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SnapshotError(f"{path}/{MANIFEST}: not a regular file")
        if st.st_size > MAX_MANIFEST:
            raise SnapshotError(f"{path}/{MANIFEST}: too large for a snapshot manifest")
        return decode_manifest(f.read())


def _check_fits(m: Manifest, memory: int | None, vcpus: int | None, boot_id: str) -> None:
    if m.abi_version != abi.ABI_VERSION:
        have = f"{m.abi_version >> 16}.{m.abi_version & 0xFFFF}"
        ours = f"{abi.ABI_VERSION_MAJOR}.{abi.ABI_VERSION_MINOR}"
        raise SnapshotError(f"snapshot of ABI {have}; this pyvmm speaks {ours}")
    if memory is not None and memory != m.memory_size:
        raise SnapshotError(f"snapshot has {m.memory_size >> 20} MiB of RAM, --memory asks {memory >> 20} MiB")
    if vcpus is not None and vcpus != len(m.vcpus):
        raise SnapshotError(f"snapshot has {len(m.vcpus)} vCPUs, --vcpus asks {vcpus}")
    if not 1 <= len(m.vcpus) <= abi.MAX_VCPUS or [v.id for v in m.vcpus] != list(range(len(m.vcpus))):
        raise SnapshotError("malformed snapshot manifest (vCPU list)")
    if not m.vcpus[0].started:
        raise SnapshotError("malformed snapshot manifest (the boot vCPU never ran)")
    if boot_id and m.boot_id and boot_id != m.boot_id:
        # Guest time is the host's CLOCK_MONOTONIC (and, on PVM, its TSC): it only goes on within one boot.
        raise SnapshotError("snapshot taken on another host boot: its guest clock cannot continue here")
    if len(m.channels) > abi.MAX_CHANNELS or [c.handle for c in m.channels] != list(range(len(m.channels))):
        raise SnapshotError("malformed snapshot manifest (channel list)")
    if not m.channels or m.channels[0].kind != ChannelKind.CONSOLE:
        raise SnapshotError("malformed snapshot manifest (no console)")


def _open_memory(path: str, dfd: int, m: Manifest) -> int:
    try:
        fd = os.open(MEMORY, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
    except OSError as e:
        raise SnapshotError(f"{path}/{MEMORY}: {e.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size != m.memory_size:
        os.close(fd)
        what = "not a regular file" if not stat.S_ISREG(st.st_mode) else f"{st.st_size} bytes, not {m.memory_size}"
        raise SnapshotError(f"{path}/{MEMORY}: {what} (truncated or replaced?)")
    return fd


def _check_memory(path: str, fd: int, m: Manifest) -> None:
    """The CRC-32 of the data runs: reads only the pages that hold data."""
    import mmap
    import zlib

    npages = m.memory_size >> 12
    if any(a < 0 or n <= 0 or a + n > npages for a, n in m.memory_runs):
        raise SnapshotError("malformed snapshot manifest (memory runs)")
    if not m.memory_runs:
        raise SnapshotError(f"{path}/{MEMORY}: no data at all (an empty guest cannot have run)")
    with mmap.mmap(fd, m.memory_size, mmap.MAP_SHARED, mmap.PROT_READ) as mm:
        view = memoryview(mm)
        try:
            crc = 0
            for a, n in m.memory_runs:
                crc = zlib.crc32(view[a << 12 : (a + n) << 12], crc)
        finally:
            view.release()
    if crc != m.memory_crc32:
        raise SnapshotError(f"{path}/{MEMORY}: corrupt (its CRC-32 does not match the manifest)")


def _next_clone_id(dfd: int) -> int:
    """1, 2, 3... per snapshot directory (a counter file under ``flock``), or a random id
    where the directory is read-only: unique among the clones of this snapshot."""
    try:
        fd = os.open(_CLONES, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600, dir_fd=dfd)
    except OSError:
        return random.SystemRandom().randrange(1 << 32, 1 << 48)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, 32, 0)
        n = (int(raw) if raw.strip().isdigit() else 0) + 1
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(n).encode(), 0)
        return n
    finally:
        os.close(fd)


def channel_specs(r: Restorable, disks: list[str], streams: list[str], *, allow_changed_disks: bool = False) -> tuple:
    """The channels after the console, in handle order, for ``MachineConfig.channels``:
    each disk reopened (at ``--disk`` if given, else its recorded path) and checked
    against its record; each stream reattached by a ``--channel`` of the same name, else
    a :class:`~pyvmm.devices.reset_stream.ResetStream`. Raises :class:`SnapshotError`."""
    from pyvmm.devices.block import fd_sha256
    from pyvmm.devices.reset_stream import ResetStream
    from pyvmm.devices.spec import DiskSpec, SpecError, parse_channel

    try:
        attach = {spec.name: spec for spec in map(parse_channel, streams)}
    except SpecError as e:
        raise SnapshotError(str(e)) from None
    records = r.manifest.channels[1:]
    disk_records = [c for c in records if c.kind == ChannelKind.BLOCK]
    if disks and len(disks) != len(disk_records):
        raise SnapshotError(f"the snapshot has {len(disk_records)} disk(s); give none or all of them with --disk")
    out = []
    d = 0
    for rec in records:
        if rec.kind == ChannelKind.BLOCK:
            path = disks[d] if disks else rec.path
            d += 1
            _check_disk(rec, path, fd_sha256, allow_changed_disks)
            out.append(DiskSpec(rec.name, path))
        elif rec.kind == ChannelKind.STREAM:
            out.append(attach.pop(rec.name) if rec.name in attach else ResetStream(rec.name))
        else:
            raise SnapshotError(f"channel {rec.name}: a {ChannelKind(rec.kind).name} channel cannot be restored")
    if attach:
        raise SnapshotError(f"--channel {next(iter(attach))}: the snapshot has no stream of that name")
    return tuple(out)


def _check_disk(rec, path: str, digest, allow_changed: bool) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise SnapshotError(f"--disk {path} ({rec.name}): {e.strerror}") from None
    try:
        st = os.fstat(fd)
        size = st.st_size if stat.S_ISREG(st.st_mode) else os.lseek(fd, 0, os.SEEK_END)
        if size != rec.size:
            raise SnapshotError(f"--disk {path} ({rec.name}): {size} bytes, the snapshot's disk had {rec.size}")
        if not allow_changed and digest(fd, size) != rec.sha256:
            raise SnapshotError(
                f"--disk {path} ({rec.name}): its contents changed since the snapshot "
                "(--allow-changed-disk to restore anyway)"
            )
    finally:
        os.close(fd)


def apply_snapshot(machine, r: Restorable, *, tsc_advance: int | None = None, fresh_vcpus: bool = True) -> list[int]:
    """Load *r* into *machine* (during its build, or stopped for a reset): vCPU states,
    events, timers, address spaces, the clone fields of boot info. Returns the ids of the
    vCPUs to start. Raises :class:`SnapshotError` for state this VM cannot take."""
    from pyvmm.kvm import KvmError

    m = r.manifest
    if tsc_advance is None:
        elapsed = max(time.monotonic_ns() - m.monotonic_ns, 0)
        tsc_advance = elapsed * m.tsc_khz // 1_000_000
    try:
        machine.events.import_state(m.events)
        machine.address_spaces.import_state(m.address_spaces)
    except (ValueError, KeyError, TypeError) as e:
        raise SnapshotError(f"malformed snapshot manifest ({e})") from None
    info = Layout.BOOT_INFO
    mem = machine.memory
    mem.write_u64(info + abi.BootInfo.clone_id.offset, r.clone_id)
    mem.write_u64(info + abi.BootInfo.clone_seed.offset, int.from_bytes(os.urandom(8), "little"))
    start = []
    for rec in m.vcpus:
        vcpu = machine.vcpus[rec.id]
        state = rec.state
        # What the paused call returns in this copy: BLOCK as if woken, SNAPSHOT the clone id.
        if rec.pause is PauseKind.BLOCK:
            state.regs.rax = 0
        elif rec.pause is PauseKind.SNAPSHOT:
            state.regs.rax = r.clone_id
        try:
            vcpustate.apply(vcpu.fd, state, tsc_advance=tsc_advance, set_cpuid=fresh_vcpus)
        except KvmError as e:
            raise SnapshotError(f"vCPU {rec.id}: KVM refused the saved state ({e})") from None
        if rec.timer_deadline is not None:
            try:  # re-armed on the timer thread: a deadline passed meanwhile fires at once
                machine.timers.arm(vcpu, rec.timer_deadline)
            except ThreadStartError as e:
                raise SnapshotError(str(e)) from None
        else:
            machine.timers.cancel(vcpu)
        if machine.events.has_upcall_pending(rec.id):
            vcpu.retry_upcall()  # delivered (or left for the guest to unmask) at its first entry
        if rec.started:
            start.append(rec.id)
    return start
