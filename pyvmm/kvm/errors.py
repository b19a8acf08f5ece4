"""The KVM layer's one error type."""

from __future__ import annotations

import os


class KvmError(OSError):
    """A KVM ioctl (or opening ``/dev/kvm``) failed.

    ``errno`` is the kernel's error number; ``op`` names the operation so a
    message reads "KVM_CREATE_VM: Cannot allocate memory".
    """

    def __init__(self, op: str, errno: int, detail: str = "") -> None:
        msg = f"{op}: {os.strerror(errno)}"
        if detail:
            msg += f" ({detail})"
        super().__init__(errno, msg)
        self.op = op

    def __str__(self) -> str:
        return self.strerror or ""
