"""Snapshots: save a running VM to a directory, restore it (in a new process or in place).

- :mod:`pyvmm.snapshot.format`: the on-disk format (docs/snapshot.md) and where it is written;
- :mod:`pyvmm.snapshot.vcpustate`: one vCPU's KVM state, in the order KVM needs;
- :mod:`pyvmm.snapshot.take`: pause the VM at a consistent point and capture everything;
- :mod:`pyvmm.snapshot.restore`: check a snapshot and load it into a VM being built;
- :mod:`pyvmm.snapshot.reset`: roll a VM back to its snapshot in place, dirty pages only.

The machine reaches this package; nothing here imports the machine (it is passed in).
"""
