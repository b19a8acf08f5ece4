"""``pyvmm restore DIR``: check a snapshot, rebuild the VM from it, run it like ``pyvmm run``.

Everything is checked before the VM is built (:func:`pyvmm.snapshot.restore.open_snapshot`:
the format, the checksums, the ABI version, the host boot, what ``--memory``/``--vcpus``
ask; each disk's size and contents): a bad snapshot is one line and exit status 2, with
nothing half-restored. Exit statuses are ``pyvmm run``'s (:mod:`pyvmm.runner`).
"""

from __future__ import annotations

import os
from pathlib import Path

from pyvmm.options import RestoreOptions
from pyvmm.runner import execute, fail, snapshot_options


def restore_guest(opts: RestoreOptions) -> int:
    import pyvmm.boundedstderr  # noqa: F401  (now: with the VM built, the fds for an import may be gone)
    from pyvmm.kvm import KvmError
    from pyvmm.machine import Machine, MachineConfig, MachineError
    from pyvmm.memory import parse_size
    from pyvmm.snapshot.format import SnapshotError, host_boot_id
    from pyvmm.snapshot.restore import channel_specs, open_snapshot

    if opts.snapshot is None:
        return fail("restore needs the snapshot directory: pyvmm restore DIR")
    try:
        memory = None if opts.memory is None else parse_size(opts.memory)
    except ValueError as e:
        return fail(f"--memory: {e}")
    if opts.timeout is not None and not opts.timeout > 0:
        return fail("--timeout must be a positive number of seconds")
    if opts.clone_id is not None and not 0 < opts.clone_id < 1 << 63:
        return fail("--clone-id must be a positive number")
    try:
        r = open_snapshot(
            opts.snapshot, memory=memory, vcpus=opts.vcpus, boot_id=host_boot_id(), clone_id=opts.clone_id
        )
    except SnapshotError as e:
        return fail(f"cannot restore {opts.snapshot}: {e}")
    try:
        channels = channel_specs(r, opts.disk, opts.channel, allow_changed_disks=opts.allow_changed_disk)
        snapshot_dir, snapshot_signal = snapshot_options(opts)
    except (SnapshotError, ValueError) as e:
        r.close()
        return fail(f"cannot restore {opts.snapshot}: {e}")
    m = r.manifest
    config = MachineConfig(
        kernel=Path(opts.snapshot),  # unused: the kernel is in the snapshot's RAM
        memory=m.memory_size,
        cmdline=m.cmdline,
        vcpus=len(m.vcpus),
        timeout=opts.timeout,
        channels=channels,
        kvm_path=os.environ.get("PYVMM_KVM_DEVICE", "/dev/kvm"),
        restore=r,
        snapshot_dir=snapshot_dir,
    )
    try:
        machine = Machine(config)
    except (KvmError, MachineError, SnapshotError, OSError) as e:
        if snapshot_dir is not None:
            snapshot_dir.close()
        if isinstance(e, OSError) and not isinstance(e, KvmError):
            return fail(f"cannot build the VM: {e.strerror or e}")
        return fail(f"cannot restore {opts.snapshot}: {e}")
    finally:
        r.close()  # the mapping holds the memory file; its descriptor is not needed
    return execute(machine, opts, snapshot_signal)
