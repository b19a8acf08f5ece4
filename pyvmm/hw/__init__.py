"""The hardware-API mode (``pyvmm run --hw-api``): the other side of docs/hwapi.md's comparison.

A ``--hw-api`` VM is the default VM plus what a conventional VMM gives a guest: KVM's
in-kernel local APIC (split irqchip: the LAPIC in the kernel, no PIC, IOAPIC or PIT),
CPUID that shows APIC, x2APIC and the TSC-deadline timer, and a 16550 UART at COM1
served here (:mod:`pyvmm.hw.uart`) on the port bus (:mod:`pyvmm.hw.ports`). The
hypercall ABI stays available (SHUTDOWN, BLOCK...), so one guest kernel runs each
workload both ways. The default VM has none of this.
"""
