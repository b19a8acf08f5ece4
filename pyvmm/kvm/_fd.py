"""The file-descriptor plumbing every KVM handle shares."""

from __future__ import annotations

import os

from pyvmm.kvm._libc import get_errno, ioctl_int, ioctl_ptr
from pyvmm.kvm.constants import Ioctl
from pyvmm.kvm.errors import KvmError


class IoctlFd:
    """Owns one fd; ioctls on it raise :class:`KvmError` named after the request."""

    fd: int

    def _ioctl(self, req: Ioctl, arg: int = 0) -> int:
        ret = ioctl_int(self.fd, req, arg)
        if ret < 0:
            raise KvmError(f"KVM_{req.name}", get_errno())
        return ret

    def _ioctl_struct(self, req: Ioctl, obj) -> int:
        ret = ioctl_ptr(self.fd, req, obj)
        if ret < 0:
            raise KvmError(f"KVM_{req.name}", get_errno())
        return ret

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
