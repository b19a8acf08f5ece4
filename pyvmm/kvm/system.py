"""The ``/dev/kvm`` system handle (rust-vmm's ``Kvm``)."""

from __future__ import annotations

import errno
import os

from pyvmm.kvm import structs as s
from pyvmm.kvm._fd import IoctlFd
from pyvmm.kvm._libc import get_errno, ioctl_ptr
from pyvmm.kvm.constants import API_VERSION, Cap, Ioctl
from pyvmm.kvm.errors import KvmError
from pyvmm.kvm.vm import Vm

DEFAULT_PATH = "/dev/kvm"
_MAX_CPUID_ENTRIES = 256


class Kvm(IoctlFd):
    """An open ``/dev/kvm``: version and capability queries, and VM creation.

    Raises :class:`KvmError` if the device is missing or not accessible; its
    message says what to do.
    """

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise KvmError(
                f"open {path}", errno.ENOENT, "KVM is not available: load kvm_intel/kvm_amd or run on a KVM host"
            ) from None
        except PermissionError:
            raise KvmError(
                f"open {path}", errno.EACCES, "add your user to the 'kvm' group or run with access to the device"
            ) from None
        except OSError as e:
            raise KvmError(f"open {path}", e.errno or errno.EIO) from None
        self.path = path

    # -- plumbing ----------------------------------------------------------
    def __enter__(self) -> Kvm:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- queries -----------------------------------------------------------
    def api_version(self) -> int:
        return self._ioctl(Ioctl.GET_API_VERSION)

    def check_api_version(self) -> None:
        """Raise :class:`KvmError` unless the kernel speaks KVM API 12."""
        version = self.api_version()
        if version != API_VERSION:
            raise KvmError("KVM_GET_API_VERSION", errno.EPROTO, f"kernel reports {version}, pyvmm needs {API_VERSION}")

    def check_extension(self, cap: Cap) -> int:
        """0 if absent, else the capability's value (often 1, sometimes a count)."""
        return self._ioctl(Ioctl.CHECK_EXTENSION, cap)

    def vcpu_mmap_size(self) -> int:
        return self._ioctl(Ioctl.GET_VCPU_MMAP_SIZE)

    def supported_cpuid(self) -> list[s.KvmCpuidEntry2]:
        """``KVM_GET_SUPPORTED_CPUID``: the CPUID leaves KVM can present to a guest."""
        buf = s.cpuid2_type(_MAX_CPUID_ENTRIES)()
        buf.nent = _MAX_CPUID_ENTRIES
        if ioctl_ptr(self.fd, Ioctl.GET_SUPPORTED_CPUID, buf) < 0:
            raise KvmError("KVM_GET_SUPPORTED_CPUID", get_errno())
        return [s.KvmCpuidEntry2.from_buffer_copy(buf.entries[i]) for i in range(buf.nent)]

    # -- VM ----------------------------------------------------------------
    def create_vm(self) -> Vm:
        """Create a VM (it keeps the vCPU mmap size, not this handle)."""
        size = self.vcpu_mmap_size()
        return Vm(self._ioctl(Ioctl.CREATE_VM, 0), size)
