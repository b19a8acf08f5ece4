"""Typed bindings for the KVM ioctl API: system → VM → vCPU handles.

Layering follows rust-vmm's ``kvm-ioctls``: :class:`Kvm` opens ``/dev/kvm``,
:meth:`Kvm.create_vm` gives a :class:`Vm`, :meth:`Vm.create_vcpu` a
:class:`VcpuFd` with its mapped ``kvm_run`` page. Every failure is a
:class:`KvmError`.
"""

from pyvmm.kvm.constants import Cap, ExitReason, Ioctl
from pyvmm.kvm.errors import KvmError
from pyvmm.kvm.system import Kvm
from pyvmm.kvm.vcpu import VcpuFd
from pyvmm.kvm.vm import Vm

__all__ = ["Cap", "ExitReason", "Ioctl", "Kvm", "KvmError", "VcpuFd", "Vm"]
