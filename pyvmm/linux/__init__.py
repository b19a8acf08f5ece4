"""``pyvmm exec``: unmodified static x86-64 Linux programs as CPL3 tasks under the bundled kernel.

- :mod:`pyvmm.linux.elf`: read and validate the program (static, non-PIE or static-PIE);
- :mod:`pyvmm.linux.image`: the load plan and the initial stack (argv, envp, auxv), as the
  ``struct pvm_exec_info`` manifest the guest kernel's exec program follows;
- :mod:`pyvmm.linux.devices`: the channels the exec program finds by name;
- :mod:`pyvmm.linux.syscalls`: Linux system-call names, for ``--stats``;
- :mod:`pyvmm.linux.runner`: the command.

The system calls themselves are served inside the guest (``guest-kernel/linux/``), through
hypercalls; docs/exec.md has the support matrix.
"""
