"""What the nested-KVM checks share: Debian packages, Debian's kernel, initramfs archives.

``scripts/nested_svm.py`` (KVM under QEMU TCG's SVM) and ``scripts/nested_vmx.py``
(KVM under Bochs's VMX) both boot Debian's kernel, unpacked under a work directory
(never installed on this host), with an initramfs built here. This module holds
those pieces and nothing about either emulator.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DIR, FILE, EXEC, LINK = 0o040755, 0o100644, 0o100755, 0o120777

# Lines the nested side prints for the host script to read (everything else is the
# nested kernel's and the checks' own output).
MARK = "NESTED:"


class CheckError(Exception):
    """The check could not be set up or run (not a test failure)."""


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)
    except FileNotFoundError as exc:
        raise CheckError(f"{cmd[0]}: not found") from exc
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:]
        raise CheckError(f"{' '.join(cmd)}: exit {exc.returncode}: {' '.join(tail)}") from exc


def installed(package: str) -> bool:
    probe = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], text=True, capture_output=True)
    return "install ok installed" in probe.stdout


def static_busybox() -> Path | None:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.is_file():
            out = subprocess.run(["file", "-L", str(path)], text=True, capture_output=True).stdout
            # `file` may be missing: then trust busybox-static being installed.
            if "statically linked" in out or (not out and installed("busybox-static")):
                return path
    return None


def ensure_packages(wanted: dict[str, bool]) -> None:
    """apt-get install the packages of *wanted* (package -> present already) that are missing,
    and a static busybox, which every initramfs here is built around."""
    need = [package for package, present in wanted.items() if not present]
    if static_busybox() is None:
        need.append("busybox-static")
    if need:
        print(f"installing {' '.join(need)} ...", flush=True)
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", *need])
    if static_busybox() is None:
        raise CheckError("no statically linked busybox after installing busybox-static")


def fetch_kernel(work: Path) -> tuple[Path, Path, str]:
    """Download and unpack the kernel package; returns (vmlinuz, modules dir, version)."""
    depends = run(["apt-cache", "depends", "linux-image-amd64"]).stdout
    match = re.search(r"Depends: (linux-image-\S+)", depends)
    if match is None:
        raise CheckError("apt-cache: linux-image-amd64 names no kernel package")
    package = match.group(1)
    debs = work / "debs"
    debs.mkdir(exist_ok=True)
    if not list(debs.glob(f"{package}_*.deb")):
        run(["apt-get", "download", package], cwd=debs)
    deb = next(debs.glob(f"{package}_*.deb"))
    kroot = work / "kroot"
    if not kroot.exists():
        run(["dpkg-deb", "-x", str(deb), str(kroot)])
    version = package.removeprefix("linux-image-")
    return kroot / "boot" / f"vmlinuz-{version}", kroot / "lib" / "modules" / version, version


@dataclass(frozen=True)
class Entry:
    """One initramfs member: *data* is a file's contents or a symlink's target."""

    name: str  # relative to the archive's root, no leading slash
    mode: int
    data: bytes = b""
    mtime: int = 0  # seconds: the kernel keeps it (CONFIG_INITRAMFS_PRESERVE_MTIME)


def newc_archive(entries: list[Entry]) -> bytes:
    """A cpio "newc" archive (the initramfs format) of *entries*, in order."""
    out = bytearray()

    def put(entry: Entry, ino: int) -> None:
        encoded = entry.name.encode() + b"\0"
        fields = (ino, entry.mode, 0, 0, 1, entry.mtime, len(entry.data), 0, 0, 0, 0, len(encoded), 0)
        out.extend(("070701" + "".join(f"{v:08x}" for v in fields)).encode() + encoded)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(entry.data)
        out.extend(b"\0" * (-len(out) % 4))

    for ino, entry in enumerate(entries, start=1):
        put(entry, ino)
    put(Entry("TRAILER!!!", 0), 0)
    return bytes(out)


def kernel_modules(modules_dir: Path, modules: tuple[str, ...]) -> tuple[list[Entry], str]:
    """``modules/NAME.ko`` entries for *modules* (paths under the package's ``kernel/``,
    in insmod order) and the ``modules.order`` text /init loads them by."""
    entries = []
    order = []
    for module in modules:
        ko = modules_dir / "kernel" / f"{module}.ko"
        if not ko.is_file():
            raise CheckError(f"kernel package has no {module}.ko")
        name = module.rsplit("/", 1)[1]
        entries.append(Entry(f"modules/{name}.ko", FILE, ko.read_bytes()))
        order.append(name)
    return entries, "\n".join(order) + "\n"


def busybox_entry() -> Entry:
    busybox = static_busybox()
    if busybox is None:
        raise CheckError("no statically linked busybox (install busybox-static)")
    return Entry("bin/busybox", EXEC, busybox.read_bytes())


def have(command: str) -> bool:
    return shutil.which(command) is not None


def bounded(command: list[str], seconds: float) -> list[str]:
    """*command* under ``timeout -s KILL``: the emulator ends by then even if this script is
    killed outright (SIGKILL runs no cleanup) and leaves it behind."""
    return ["timeout", "-s", "KILL", str(max(1, int(seconds))), *command]


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the ``finally`` that kills the emulator runs."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
