"""scripts/nested_vmx.py's pure parts: the strace reader, the initramfs file list, the
console parser and the verdicts.

The Bochs run itself (minutes) is run by hand or by .ci/run's report step.
"""

from __future__ import annotations

import os

import pytest

from .support.scripts import load_script

vmx = load_script("nested_vmx")
kit = load_script("nestedkit")

TRACE = """\
100 execve(".venv/bin/python", [".venv/bin/python", "-m", "pyvmm"], 0x7ffd /* 4 vars */) = 0
100 openat(AT_FDCWD, "/usr/lib/libc.so.6", O_RDONLY|O_CLOEXEC) = 3
100 newfstatat(AT_FDCWD, "/nope", 0x7ffd, 0) = -1 ENOENT (No such file or directory)
100 newfstatat(3, "", {st_mode=S_IFREG|0755, st_size=1926232, ...}, AT_EMPTY_PATH) = 0
101 openat(AT_FDCWD, "/dev/kvm", O_RDWR|O_CLOEXEC <unfinished ...>
100 openat(AT_FDCWD, "pyvmm/x.py", O_RDONLY <unfinished ...>
101 <... openat resumed>) = 5
100 <... openat resumed>) = -1 ENOENT (No such file or directory)
101 readlink("/proc/self/exe", "/usr/bin/python3.11", 4096) = 19
101 +++ exited with 0 +++
"""


def test_traced_paths_keeps_what_succeeded():
    paths = vmx.traced_paths(TRACE, "/repo")
    # Relative paths resolve against the run's directory; failed calls (ENOENT) and the
    # fd-relative fstat (no path) are left out; a call split across threads counts by its
    # resumed line.
    assert paths == {"/repo/.venv/bin/python", "/usr/lib/libc.so.6", "/dev/kvm", "/proc/self/exe"}


def test_file_entries_follow_symlinks_and_keep_mtimes(tmp_path):
    real = tmp_path / "real"
    (real / "lib").mkdir(parents=True)
    lib = real / "lib" / "libx.so.1.2"
    lib.write_bytes(b"ELF?")
    os.utime(lib, (1_700_000_000.7, 1_700_000_000.7))
    (real / "lib" / "libx.so.1").symlink_to("libx.so.1.2")
    (tmp_path / "alias").symlink_to("real")  # a directory reached through a symlink
    paths = {str(tmp_path / "alias" / "lib" / "libx.so.1"), "/proc/self/exe", str(tmp_path / "gone")}
    entries = {e.name: e for e in vmx.file_entries(paths)}
    base = str(tmp_path).lstrip("/")
    assert entries[f"{base}/alias"].mode == kit.LINK and entries[f"{base}/alias"].data == b"real"
    assert entries[f"{base}/real/lib/libx.so.1"].data == b"libx.so.1.2"
    target = entries[f"{base}/real/lib/libx.so.1.2"]
    assert target.data == b"ELF?" and target.mtime == 1_700_000_000 and target.mode & 0o170000 == 0o100000
    assert entries[f"{base}/real/lib"].mode & 0o170000 == 0o040000
    # Nothing is archived through a symlinked directory, nor under /proc, nor what is gone.
    assert not any(n.startswith(f"{base}/alias/") for n in entries)
    assert not any(n.startswith("proc") or n.endswith("gone") for n in entries)
    names = [e.name for e in vmx.file_entries(paths)]
    assert names.index(f"{base}/real") < names.index(f"{base}/real/lib") < names.index(f"{base}/real/lib/libx.so.1")


def test_file_entries_rename_the_guest_cache(tmp_path):
    cache = tmp_path / "cache" / "guest-aaaa"
    cache.mkdir(parents=True)
    (cache / "kernel.elf").write_bytes(b"k")
    entries = vmx.file_entries({str(cache / "kernel.elf")}, {str(cache): str(tmp_path / "cache" / "guest-bbbb")})
    names = {e.name for e in entries}
    base = str(tmp_path).lstrip("/")
    assert f"{base}/cache/guest-bbbb/kernel.elf" in names and not any("guest-aaaa" in n for n in names)


def test_elf_interpreter_is_added_for_executables(tmp_path):
    python = os.path.realpath("/proc/self/exe")
    interp = vmx.elf_interpreter(python)
    if interp is None:
        pytest.skip(f"{python} has no PT_INTERP (a static interpreter)")
    assert interp.startswith("/") and "ld-linux" in interp
    names = {e.name for e in vmx.file_entries({python})}
    assert os.path.realpath(interp).lstrip("/") in names
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/sh\n")
    assert vmx.elf_interpreter(str(script)) is None


def feed(lines: list[str]) -> object:
    out = vmx.Outcome()
    for i, line in enumerate(lines):
        vmx.parse_line(line, out, now=10.0 + i, started=0.0)
    return out


def test_console_lines_become_check_runs():
    out = feed(
        [
            "[    0.47] Failed to access perfctr msr",
            "NESTED: kvm ept=Y vpid=Y unrestricted_guest=Y",
            "NESTED: booted",
            "NESTED: check boot start",
            "pyvmm guest kernel: ABI 1.3, 64 MiB, 1 vCPU(s)",
            "NESTED: check boot exit 0",
            "NESTED: check kick start",
            "spin: looping forever",
        ]
    )
    assert out.booted and out.boot_seconds == 12.0 and out.kvm == "ept=Y vpid=Y unrestricted_guest=Y"
    assert out.runs["boot"].exit_code == 0 and out.runs["boot"].seconds == 2.0
    assert out.runs["boot"].output == ["pyvmm guest kernel: ABI 1.3, 64 MiB, 1 vCPU(s)"]
    assert out.current == "kick" and out.runs["kick"].exit_code is None and not out.done


def test_verdicts():
    crash = vmx.BY_NAME["crash"]
    run = vmx.CheckRun(
        exit_code=125,
        output=["pyvmm: guest crashed on vCPU 0: triple fault (KVM_EXIT_SHUTDOWN)", "code at rip (gpa 0x1): 0f 0b 31"],
        seconds=3.0,
    )
    assert vmx.verdict(crash, run)[0]
    # SVM's reset state (the report falls back on the last exit: no ud2 at rip) fails here.
    reset = vmx.CheckRun(exit_code=125, output=[run.output[0], "  code at rip (gpa 0x2): 48 89 c7"])
    ok, text = vmx.verdict(crash, reset)
    assert not ok and "0f 0b" in text
    assert vmx.verdict(crash, vmx.CheckRun(exit_code=137, output=run.output))[1].startswith("crash: killed")
    assert "exit 0, want 125" in vmx.verdict(crash, vmx.CheckRun(exit_code=0))[1]
    assert not vmx.verdict(crash, vmx.CheckRun())[0] and not vmx.verdict(crash, None)[0]


def test_report_has_a_line_per_check_and_a_summary(capsys):
    checks = [vmx.BY_NAME["boot"], vmx.BY_NAME["kick"]]
    out = vmx.Outcome(booted=True, boot_seconds=30.0, kvm="ept=Y")
    out.runs["boot"] = vmx.CheckRun(exit_code=0, output=["pyvmm guest kernel: ABI 1.3"], seconds=20.0)
    assert not vmx.report(out, checks, 100.0)
    out.runs["kick"] = vmx.CheckRun(exit_code=124, output=["pyvmm: guest stopped after --timeout 2s"], seconds=25.0)
    assert vmx.report(out, checks, 100.0)
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "PASS nested VMX: 2 of 2 checks passed in 100 s"
    assert "FAIL kick: never started" in printed


def test_init_runs_every_check_under_its_timeout(tmp_path):
    init = vmx.init_script(list(vmx.CHECKS), tmp_path, vmx.ROOT / ".venv/bin/python", 300)
    for check in vmx.CHECKS:
        assert f"NESTED: check {check.name} start" in init
    assert init.count("timeout -s KILL 300 ") == len(vmx.CHECKS)
    assert "'test=irqwin mode=sti rounds=5'" in init  # one argument, quoted
    assert init.rstrip().endswith("poweroff -f")
