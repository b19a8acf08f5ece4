"""``pyvmm info``: what this host's KVM offers pyvmm."""

from __future__ import annotations

import os
import sys

from pyvmm.kvm import Cap, Kvm, KvmError
from pyvmm.machine import REQUIRED_CAPS

_BACKENDS = ("kvm_intel", "kvm_amd", "kvm_pvm")


def kvm_backend() -> str:
    """Which KVM module drives ``/dev/kvm`` here (VT-x, AMD-V or PVM)."""
    found = [name for name in _BACKENDS if os.path.isdir(f"/sys/module/{name}")]
    return ", ".join(found) if found else "unknown"


def print_info(path: str | None = None) -> int:
    path = path or os.environ.get("PYVMM_KVM_DEVICE", "/dev/kvm")
    try:
        kvm = Kvm(path)
        version = kvm.api_version()
    except KvmError as e:
        print(f"pyvmm: error: {e}", file=sys.stderr)
        return 2
    with kvm:
        print(f"KVM API version: {version}{'' if version == 12 else ' (pyvmm needs 12)'}")
        print(f"backend module:  {kvm_backend()}")
        from pyvmm import sandbox

        contained = "libseccomp.so.2 (pyvmm run confines itself)" if sandbox.available() else "no libseccomp"
        print(f"seccomp:         {contained}")
        print("capabilities:")
        for cap in Cap:
            value = kvm.check_extension(cap)
            need = " (required)" if cap in REQUIRED_CAPS else ""
            shown = "present" if value == 1 else (f"present ({value})" if value else "MISSING")
            print(f"  {cap.name:<16} {shown}{need}")
    return 0 if version == 12 else 2
