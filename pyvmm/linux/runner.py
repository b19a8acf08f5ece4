"""``pyvmm exec PROGRAM [ARGS...]``: run a static Linux program as the bundled kernel's one task.

The host reads and validates the ELF, lays out the process (:mod:`pyvmm.linux.image`), and
boots the bundled kernel with ``test=exec``; the kernel's exec program maps the program into a
low-window address space and serves its system calls through hypercalls. The exit status is
the program's (128 + N when a signal ended it: 139 for SIGSEGV); 124 for ``--timeout``, 125 if
the VM crashed, 2 for a user error (one line on stderr).
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass, field

from pyvmm.runner import EXIT_USAGE, fail

DEFAULT_MEMORY = "256M"


@dataclass
class ExecOptions:
    program: str
    args: list[str] = field(default_factory=list)
    memory: str = DEFAULT_MEMORY
    timeout: float | None = None
    vcpus: int = 1
    stats: bool = False
    share: str | None = None
    cwd: str = "/"
    env: list[str] = field(default_factory=list)
    no_seccomp: bool = False


def share_rules(root_fd: int):
    """What the share needs under the seccomp filter: ``openat2`` only relative to its root
    (RESOLVE_BENEATH is in the ``open_how`` struct, which a filter cannot read: the root fd
    is what confines it), ``getdents64`` and ``fcntl(F_DUPFD_CLOEXEC)`` for listings
    (``os.scandir``), ``readlinkat`` for a link's target (on an ``O_PATH`` fd, path ""),
    ``newfstatat`` with ``AT_EMPTY_PATH`` for ``os.fstat``."""
    from pyvmm.sandbox import Rule

    return (
        Rule("openat2", ((0, 4, root_fd, 0),)),  # SCMP_CMP_EQ on the dirfd
        Rule("getdents64"),
        Rule("fcntl", ((1, 4, 1030, 0),)),  # F_DUPFD_CLOEXEC
        Rule("readlinkat"),
        # os.fstat and fdopendir (scandir) are glibc's newfstatat(fd, "", AT_EMPTY_PATH). The
        # filter cannot see that the path is empty, so with a share a compromised pyvmm could
        # read a host path's metadata (never its contents: opens stay beneath the share);
        # without a share the call is refused (docs/robustness.md).
        Rule("newfstatat", ((3, 4, 0x1000, 0),)),  # flags == AT_EMPTY_PATH
    )


def _environment(extra: list[str]) -> tuple[bytes, ...]:
    from pyvmm.linux.image import DEFAULT_ENV

    env: dict[str, str] = {}
    for item in (*DEFAULT_ENV, *extra):
        key, eq, _ = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--env {item!r}: expected KEY=VALUE")
        env[key] = item
    return tuple(os.fsencode(v) for v in env.values())


def exec_program(opts: ExecOptions) -> int:
    from pyvmm.devices.base import DeviceError
    from pyvmm.devices.console import Console
    from pyvmm.devices.share import FileChannel, Share, parse_share
    from pyvmm.guest import GuestBuildError, bundled_kernel
    from pyvmm.kvm import KvmError
    from pyvmm.linux import elf as linux_elf
    from pyvmm.linux import image
    from pyvmm.linux.devices import ExecBlob
    from pyvmm.loader import LoaderError
    from pyvmm.runner import memory_and_timeout

    try:
        memory = memory_and_timeout(opts)
        env = _environment(opts.env)
    except ValueError as e:
        return fail(str(e))
    try:
        fd = os.open(opts.program, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        return fail(f"{opts.program}: {e.strerror}")
    program = FileChannel(fd, "program")
    devices = [program]
    try:
        try:
            data = os.pread(fd, linux_elf.MAX_PROGRAM + 1, 0)
            if len(data) > linux_elf.MAX_PROGRAM:
                return fail(f"{opts.program}: larger than {linux_elf.MAX_PROGRAM >> 20} MiB")
            parsed = linux_elf.parse(data, opts.program)
        except IsADirectoryError:
            return fail(f"{opts.program}: is a directory")
        except OSError as e:
            return fail(f"{opts.program}: {e.strerror}")
        except linux_elf.LinuxElfError as e:
            return fail(str(e))
        proc = image.Process(
            argv=(os.fsencode(opts.program), *map(os.fsencode, opts.args)),
            env=env,
            execfn=os.fsencode(opts.program),
            cwd=os.fsencode(opts.cwd),
            uid=os.getuid(),
            gid=os.getgid(),
            stats=opts.stats,
        )
        try:
            blob = ExecBlob(image.build(parsed, proc))
        except image.ImageError as e:
            return fail(str(e))
        devices.append(blob)
        devices.append(Console(2, name="stderr", in_fd=-1))
        share = None
        if opts.share is not None:
            try:
                path, writable = parse_share(opts.share)
                share = Share(path, writable=writable)
            except (ValueError, DeviceError) as e:
                return fail(str(e))
            devices.append(share)
        try:
            kernel = bundled_kernel()
        except GuestBuildError as e:
            return fail(str(e))
        return _run(opts, memory, kernel, devices, blob, share, (KvmError, LoaderError))
    finally:
        for device in devices:
            device.close()


def _run(opts: ExecOptions, memory: int, kernel, devices, blob, share, build_errors) -> int:
    from pyvmm.boundedstderr import BoundedStderr
    from pyvmm.linux.syscalls import format_stats
    from pyvmm.machine import Machine, MachineConfig, MachineError, RunResult, StopReason
    from pyvmm.runner import format_stats as format_hypercalls

    config = MachineConfig(
        kernel=kernel,
        memory=memory,
        cmdline="test=exec quiet=1",
        vcpus=opts.vcpus,
        timeout=opts.timeout,
        kvm_path=os.environ.get("PYVMM_KVM_DEVICE", "/dev/kvm"),
        extra_channels=tuple(devices),
    )
    try:
        machine = Machine(config)
    except (*build_errors, MachineError) as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"cannot build the VM: {e.strerror or e}")

    def on_signal(signum, frame):
        machine.request_stop(RunResult(StopReason.SIGNAL, exit_code=128 + signum, signal=signum))

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if not opts.no_seccomp:
            from pyvmm import sandbox

            if sandbox.available():
                try:
                    sandbox.apply(share_rules(share.root_fd) if share is not None else ())
                except sandbox.SandboxError as e:
                    return fail(f"cannot confine pyvmm with seccomp ({e}); --no-seccomp runs without it")
        result = machine.run()
    except MachineError as e:
        return fail(str(e))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        machine.close()
        sys.stderr = BoundedStderr()
    if opts.stats:
        print(format_stats(blob.stats), file=sys.stderr)
        print(format_hypercalls(machine), file=sys.stderr)
    if result.reason is StopReason.CRASH and result.crash is not None:
        print(result.crash.format(), file=sys.stderr)
    elif result.reason is StopReason.TIMEOUT:
        print(f"pyvmm: program stopped after --timeout {opts.timeout:g}s", file=sys.stderr)
    elif result.reason is StopReason.SIGNAL:
        print(f"pyvmm: stopped by {signal.Signals(result.signal).name}", file=sys.stderr)
    return result.exit_code


__all__ = ["EXIT_USAGE", "ExecOptions", "exec_program"]
