"""pyvmm: a KVM micro-VMM with a system-call-shaped hypercall ABI, usable as a library.

``import pyvmm`` loads nothing until a name is used (the CLI's boot path stays lean):
``pyvmm.VM``, ``pyvmm.Result``, ``pyvmm.HypercallError``, ``pyvmm.Channel``,
``pyvmm.ChannelError``, ``pyvmm.ChannelKind``, ``pyvmm.ChannelFlag``, ``pyvmm.Errno``,
``pyvmm.EXT_BASE``, ``pyvmm.EXT_COUNT``, ``pyvmm.PIPE``, ``pyvmm.StopReason``,
``pyvmm.VmError``. See docs/api.md.
"""

from __future__ import annotations

_PUBLIC = (
    "VM",
    "Result",
    "StopReason",
    "HypercallError",
    "Channel",
    "ChannelError",
    "ChannelKind",
    "ChannelFlag",
    "Errno",
    "EXT_BASE",
    "EXT_COUNT",
    "PIPE",
    "VmError",
)
__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        from pyvmm import api

        return getattr(api, name)
    raise AttributeError(f"module 'pyvmm' has no attribute {name!r}")
