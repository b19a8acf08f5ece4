"""``pyvmm exec``: unmodified static Linux programs (musl test programs compiled here, Debian's
busybox-static) as CPL3 tasks on the real /dev/kvm, outputs compared with the same programs run
natively. The musl programs are built with ``musl-gcc -static`` at test time (cached by source)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import assert_one_line_error, pyvmm

pytestmark = pytest.mark.kvm

SOURCES = Path(__file__).parent / "exec_programs"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def _cache() -> Path:
    root = Path(os.environ.get("PYVMM_CACHE_DIR") or Path.home() / ".cache" / "pyvmm") / "exec-tests"
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="session")
def musl():
    """``musl("hello")`` -> the path of hello.c built with ``musl-gcc -static`` (cached)."""
    cc = shutil.which("musl-gcc")
    if cc is None:
        pytest.skip("musl-gcc is not installed (Debian: apt-get install musl-tools)")

    def build(name: str, *flags: str) -> str:
        src = SOURCES / f"{name}.c"
        key = hashlib.sha256(src.read_bytes() + " ".join(flags).encode()).hexdigest()[:16]
        out = _cache() / f"{name}-{key}"
        if not out.exists():
            tmp = out.with_suffix(".tmp")
            subprocess.run([cc, "-static", "-O2", *flags, "-o", str(tmp), str(src)], check=True)
            tmp.replace(out)
        return str(out)

    return build


@pytest.fixture
def busybox():
    if (
        not os.path.exists(BUSYBOX)
        or subprocess.run(["file", BUSYBOX], capture_output=True, text=True).stdout.find("statically linked") < 0
    ):
        pytest.skip("Debian's busybox-static is not installed (apt-get install busybox-static)")
    return BUSYBOX


@pytest.fixture
def share(tmp_path):
    (tmp_path / "hello.txt").write_text("hello, share\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("b\n")
    data = bytes((i * 131 + i // 4096) & 0xFF for i in range(300_000))
    (tmp_path / "data.bin").write_bytes(data)
    os.symlink("hello.txt", tmp_path / "rel-link")
    os.symlink("/etc", tmp_path / "abs-link")
    os.symlink("../../../../../etc", tmp_path / "out-link")
    return tmp_path


def test_hello_write_writev_and_the_exit_code(musl):
    run = pyvmm("exec", musl("hello"), "7")
    assert run.returncode == 7, run
    assert run.stdout == "hello from musl\nvia writev\n"  # stdout is the program's alone
    assert run.stderr == "to stderr\n"  # stderr apart, as a user expects


def test_argv_env_auxv_and_user_sse(musl):
    prog = musl("auxv")
    run = pyvmm("exec", "--env", "GREETING=hi there", prog, "one", "two words")
    assert run.returncode == 0, run
    out = run.stdout.splitlines()
    assert out[:4] == ["argc=3", f"argv[0]={prog}", "argv[1]=one", "argv[2]=two words"]
    assert "env GREETING=hi there" in out and "env HOME=/" in out
    readelf = subprocess.run(["readelf", "-hl", prog], capture_output=True, text=True).stdout
    entry = int(readelf.split("Entry point address:")[1].split()[0], 16)
    aux = next(line for line in out if line.startswith("AT_PAGESZ"))
    assert f"AT_ENTRY={entry:#x}" in aux and "AT_PAGESZ=4096 AT_PHENT=56" in aux
    assert "AT_PHDR=0x400040" in aux  # the headers of a non-PIE linked at 0x400000
    assert f"AT_UID={os.getuid()} AT_GID={os.getgid()} AT_SECURE=0 AT_CLKTCK=100 AT_RANDOM nonzero=1" in run.stdout
    assert f"AT_EXECFN={prog}" in run.stdout
    assert "cwd=/ pid=1" in out and "sse=6.750" in out


def test_malloc_stress_over_brk_and_mmap(musl):
    run = pyvmm("exec", "--stats", musl("malloc"), timeout=120)
    assert run.returncode == 0, run
    assert run.stdout.startswith("malloc ok: ")
    calls = run.stderr.split("linux calls: ")[1].splitlines()[0]
    assert "brk=" in calls or "mmap=" in calls
    assert "munmap=" in calls  # the large blocks went back


def test_a_shared_file_reads_as_on_the_host(musl, share):
    data = (share / "data.bin").read_bytes()
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & (2**64 - 1)
    run = pyvmm("exec", "--share", str(share), musl("readfile"), "/data.bin")
    assert run.returncode == 0, run
    assert run.stdout == f"size={len(data)} read={len(data)} fnv={h:016x}\n"
    # relative to --cwd, through a relative symlink
    run = pyvmm("exec", "--share", str(share), "--cwd", "/sub", musl("readfile"), "../rel-link")
    assert run.stdout.startswith("size=13 read=13 "), run


def test_directory_listing(musl, share):
    run = pyvmm("exec", "--share", str(share), musl("listdir"), "/")
    assert run.returncode == 0, run
    got = sorted(run.stdout.splitlines())
    want = [".. 4", ". 4", "hello.txt 8", "sub 4", "data.bin 8", "rel-link 10", "abs-link 10", "out-link 10"]
    assert got == sorted(want)  # name and d_type (4 dir, 8 file, 10 symlink)


def test_segfault_is_sigsegv_139_with_one_line(musl):
    run = pyvmm("exec", musl("hostile"), "segv")
    assert run.returncode == 139, run
    assert run.stdout == "about to fault\n"
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert lines[0].startswith("pyvmm exec: SIGSEGV: write at 0x12345678 (not mapped), rip 0x4")


@pytest.mark.parametrize(
    ("case", "status", "fragment"),
    [
        ("write-text", 139, "SIGSEGV: write at 0x4"),  # read-only text mapping
        ("jump-kernel", 139, "SIGSEGV: exec at 0x200000 (protection), rip 0x200000"),  # the kernel's image
        ("ud", 132, "SIGILL: trap 6"),
        ("abort", 134, "killed by signal 6"),
    ],
)
def test_hostile_programs_get_their_signal(musl, case, status, fragment):
    run = pyvmm("exec", musl("hostile"), case)
    assert run.returncode == status, run
    assert fragment in run.stderr and "Traceback" not in run.stderr


def test_bad_pointers_in_system_calls_are_efault_and_unknown_calls_enosys(musl):
    run = pyvmm("exec", "--stats", musl("hostile"), "pointers", input="")
    assert run.returncode == 0, run
    got = dict(line.split(": ", 1) for line in run.stdout.splitlines())
    for case in ("write-kernel", "write-unmapped", "write-noncanonical", "read-into-text", "stat-kernel"):
        assert got[case] == "-1 errno=14", (case, got)  # EFAULT, the VMM untouched
    for case in ("open-bad-path", "writev-bad-iov", "getcwd-kernel", "clock-kernel"):
        assert got[case] == "-1 errno=14", (case, got)
    assert got["mmap-fixed-kernel"] == "-1 errno=22"
    assert got["unknown-999"] == "-1 errno=38" and got["unknown-fork"] == "-1 errno=38"
    refused = run.stderr.split("refused (-ENOSYS): ")[1].splitlines()[0]
    assert "fork=1" in refused and "other=1" in refused  # 999: past the counted numbers


def test_paths_cannot_escape_the_share_and_it_is_read_only(musl, share):
    run = pyvmm("exec", "--share", str(share), musl("hostile"), "escape")
    assert run.returncode == 0, run
    got = dict(line.split(": ", 1) for line in run.stdout.splitlines())
    assert got["dotdot"] == "-1 errno=2"  # "/.." is the share's root: /etc/passwd is not in it
    assert got["abs-link"] == "-1 errno=18"  # EXDEV: an absolute symlink, refused (RESOLVE_BENEATH)
    assert got["rel-link-out"] == "-1 errno=18"  # a relative one climbing out
    assert got["write-ro"] == "-1 errno=30"  # EROFS without :rw
    assert not (share / "new-file").exists()


def test_a_memory_hog_is_killed_not_the_host(musl):
    run = pyvmm("exec", "--memory", "64M", musl("hostile"), "hog", timeout=120)
    assert run.returncode == 137, run  # SIGKILL, as Linux's OOM killer
    assert "out of memory" in run.stderr and "Traceback" not in run.stderr
    assert "32 MiB" in run.stdout  # it got the RAM there was first


def test_glibc_static_pie(tmp_path):
    src = SOURCES / "hello.c"
    out = tmp_path / "hello-pie"
    if subprocess.run(["gcc", "-static-pie", "-O2", "-o", str(out), str(src)], capture_output=True).returncode:
        pytest.skip("gcc cannot link -static-pie here (glibc's rcrt1.o missing)")
    run = pyvmm("exec", str(out), "5")
    assert run.returncode == 5, run
    assert run.stdout == "hello from musl\nvia writev\n"  # (the source's text: built with glibc here)


def test_user_errors_are_one_line(tmp_path):
    assert_one_line_error(pyvmm("exec", str(tmp_path / "missing")), "No such file")
    (tmp_path / "text").write_text("not an elf")
    assert_one_line_error(pyvmm("exec", str(tmp_path / "text")), "not an ELF")
    assert_one_line_error(pyvmm("exec", "/bin/sh"), "dynamically linked")
    assert_one_line_error(pyvmm("exec", "--share", str(tmp_path / "nodir"), BUSYBOX, "true"), "not a directory")
    assert_one_line_error(pyvmm("exec", "--env", "NOEQUALS", BUSYBOX, "true"), "KEY=VALUE")


@pytest.mark.parametrize(
    "argv",
    [
        ["echo", "hello", "from busybox"],
        ["cat", "hello.txt", "sub/b.txt"],
        ["wc", "-c", "data.bin"],
        ["sha256sum", "data.bin"],
        ["ls", "-a", "."],
        ["ls", "-ln", "sub"],  # numeric ids: the share has no /etc/passwd
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_busybox_output_equals_native(busybox, share, argv):
    native = subprocess.run([busybox, *argv], capture_output=True, text=True, cwd=share)
    run = pyvmm("exec", "--share", str(share), busybox, *argv)
    assert (run.returncode, run.stdout) == (native.returncode, native.stdout), run.stderr
