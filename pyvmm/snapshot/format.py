"""The snapshot format, version 1 (docs/snapshot.md): a directory with two files.

- ``memory.bin``: guest RAM byte for byte, as a sparse file: pages that are zero are
  holes (never written), so its disk use is the touched memory. Restore maps it
  ``MAP_PRIVATE``: the guest's writes stay in the process, the file is never changed.
- ``manifest.json``: everything else (format, ABI version, host facts, every vCPU's raw
  KVM state, the VMM's event/timer/address-space/channel state), with the list of
  memory runs that hold data, their CRC-32, and a SHA-256 over the manifest itself.

A snapshot is written under temporary names and renamed into place, the manifest
last, so a failed write (a full disk) leaves the previous snapshot, or none, never a
mixed one. The directory is opened once (before the seccomp filter) and every file
is reached through that descriptor (``openat``, ``renameat``, ``unlinkat``).
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import dataclass, field

from pyvmm.paravirt.services import PauseKind
from pyvmm.snapshot.vcpustate import VcpuState

FORMAT = "pyvmm-snapshot"
VERSION = 2  # 2: address spaces keep their base and a bounded stats history
MANIFEST = "manifest.json"
MEMORY = "memory.bin"
PAGE = 4096
#: Bigger manifests are refused before parsing (a 64-vCPU snapshot is about 1.5 MiB).
MAX_MANIFEST = 16 << 20


class SnapshotError(Exception):
    """A snapshot cannot be taken, read or restored; the message is one line."""


@dataclass
class VcpuRecord:
    id: int
    started: bool  # its thread ran (False: a parked secondary waiting for VCPU_UP)
    pause: PauseKind  # where it stood: what the restored copy resumes from
    timer_deadline: int | None
    state: VcpuState


@dataclass
class ChannelRecord:
    handle: int
    kind: int  # abi.ChannelKind
    name: str
    path: str | None = None  # disk file, stream socket
    size: int | None = None  # disk size
    sha256: str | None = None  # disk content
    server: bool = False  # a listening stream


@dataclass
class Manifest:
    abi_version: int
    memory_size: int
    cmdline: str
    tsc_khz: int
    monotonic_ns: int  # host CLOCK_MONOTONIC when the VM was paused
    boot_id: str  # the host boot it was taken on (the monotonic clock's epoch)
    kernel_root: int
    vcpus: list[VcpuRecord]
    channels: list[ChannelRecord]
    events: list[list[int]]
    address_spaces: dict
    memory_runs: list[list[int]] = field(default_factory=list)  # [first page, pages] holding data
    memory_crc32: int = 0

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "abi_version": self.abi_version,
            "memory_size": self.memory_size,
            "cmdline": self.cmdline,
            "tsc_khz": self.tsc_khz,
            "monotonic_ns": self.monotonic_ns,
            "boot_id": self.boot_id,
            "kernel_root": self.kernel_root,
            "vcpus": [
                {
                    "id": v.id,
                    "started": v.started,
                    "pause": v.pause.value,
                    "timer_deadline": v.timer_deadline,
                    "state": v.state.to_json(),
                }
                for v in self.vcpus
            ],
            "channels": [c.__dict__ for c in self.channels],
            "events": self.events,
            "address_spaces": self.address_spaces,
            "memory": {"file": MEMORY, "runs": self.memory_runs, "crc32": self.memory_crc32},
        }

    @classmethod
    def from_json(cls, d: dict) -> Manifest:
        """Raises :class:`SnapshotError` for a foreign or malformed manifest."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise SnapshotError("not a pyvmm snapshot (no pyvmm-snapshot manifest)")
        if d.get("version") != VERSION:
            raise SnapshotError(f"snapshot format version {d.get('version')!r}; this pyvmm reads version {VERSION}")
        try:
            vcpus = [
                VcpuRecord(
                    int(v["id"]),
                    bool(v["started"]),
                    PauseKind(v["pause"]),
                    None if v["timer_deadline"] is None else int(v["timer_deadline"]),
                    VcpuState.from_json(v["state"]),
                )
                for v in d["vcpus"]
            ]
            return cls(
                abi_version=int(d["abi_version"]),
                memory_size=int(d["memory_size"]),
                cmdline=str(d["cmdline"]),
                tsc_khz=int(d["tsc_khz"]),
                monotonic_ns=int(d["monotonic_ns"]),
                boot_id=str(d["boot_id"]),
                kernel_root=int(d["kernel_root"]),
                vcpus=vcpus,
                channels=[ChannelRecord(**c) for c in d["channels"]],
                events=[[int(x) for x in row] for row in d["events"]],
                address_spaces=dict(d["address_spaces"]),
                memory_runs=[[int(a), int(n)] for a, n in d["memory"]["runs"]],
                memory_crc32=int(d["memory"]["crc32"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SnapshotError(f"malformed snapshot manifest ({type(e).__name__}: {e})") from None


def encode_manifest(manifest: Manifest) -> bytes:
    body = manifest.to_json()
    digest = hashlib.sha256(_canonical(body)).hexdigest()
    return json.dumps({"sha256": digest, **body}, separators=(",", ":")).encode()


def decode_manifest(raw: bytes) -> Manifest:
    """Parse and verify a manifest. Raises :class:`SnapshotError`."""
    try:
        d = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise SnapshotError("corrupt snapshot manifest (not JSON: truncated or overwritten?)") from None
    if not isinstance(d, dict):
        raise SnapshotError("not a pyvmm snapshot (no pyvmm-snapshot manifest)")
    digest = d.pop("sha256", None)
    if d.get("format") == FORMAT and digest != hashlib.sha256(_canonical(d)).hexdigest():
        raise SnapshotError("corrupt snapshot manifest (its SHA-256 does not match)")
    return Manifest.from_json(d)


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def page_runs(pages: list[int]) -> list[list[int]]:
    """Sorted page numbers as ``[first, count]`` runs."""
    runs: list[list[int]] = []
    for p in pages:
        if runs and runs[-1][0] + runs[-1][1] == p:
            runs[-1][1] += 1
        else:
            runs.append([p, 1])
    return runs


def runs_crc32(view: memoryview, runs: list[list[int]]) -> int:
    """CRC-32 of the data runs of *view* (guest RAM or the mapped file), in order."""
    crc = 0
    for first, n in runs:
        crc = zlib.crc32(view[first * PAGE : (first + n) * PAGE], crc)
    return crc


def open_dir(path: str, label: str, missing: str) -> int:
    """An ``O_DIRECTORY`` descriptor of *path*; :class:`SnapshotError` ``"{label}: why"`` if
    it cannot be had (*missing*: what to say when nothing is there)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SnapshotError(f"{label}: {missing}") from None
    except NotADirectoryError:
        raise SnapshotError(f"{label}: not a directory") from None
    except OSError as e:
        raise SnapshotError(f"{label}: {e.strerror}") from None


class SnapshotDir:
    """Where snapshots go: a directory opened now (before any seccomp filter), written
    through its descriptor. Raises :class:`SnapshotError` if it is not a usable directory."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = open_dir(path, f"--snapshot-dir {path}", "no such directory")
        if not os.access(path, os.W_OK):
            os.close(self.fd)
            raise SnapshotError(f"--snapshot-dir {path}: not writable")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def write(self, manifest: Manifest, ram: memoryview) -> int:
        """Write *ram*'s data runs and *manifest* (runs and CRC filled in here); returns the
        bytes of data written. Raises :class:`SnapshotError`, leaving no partial snapshot."""
        d = self.fd
        tmp_mem, tmp_man = MEMORY + ".tmp", MANIFEST + ".tmp"
        written = 0
        try:
            fd = os.open(tmp_mem, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600, dir_fd=d)
            try:
                os.ftruncate(fd, len(ram))  # the holes: zero pages cost nothing
                crc = 0
                for first, n in manifest.memory_runs:
                    chunk = ram[first * PAGE : (first + n) * PAGE]
                    crc = zlib.crc32(chunk, crc)
                    off = first * PAGE
                    while chunk:
                        done = os.pwrite(fd, chunk, off)
                        chunk, off, written = chunk[done:], off + done, written + done
                manifest.memory_crc32 = crc
                os.fsync(fd)
            finally:
                os.close(fd)
            data = encode_manifest(manifest)
            fd = os.open(tmp_man, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600, dir_fd=d)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            # The old manifest goes first: between the renames no manifest names the new memory.
            _unlink(MANIFEST, d)
            os.rename(tmp_mem, MEMORY, src_dir_fd=d, dst_dir_fd=d)
            os.rename(tmp_man, MANIFEST, src_dir_fd=d, dst_dir_fd=d)
            os.fsync(d)
        except OSError as e:
            _unlink(tmp_mem, d)
            _unlink(tmp_man, d)
            raise SnapshotError(f"cannot write the snapshot to {self.path}: {e.strerror or e}") from None
        return written

    def open_memory(self) -> int:
        """A read-only descriptor of the snapshot's memory file (the reset baseline)."""
        return os.open(MEMORY, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fd)


def _unlink(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def host_boot_id() -> str:
    """The kernel's boot id: CLOCK_MONOTONIC (guest time) continues only within one boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""
