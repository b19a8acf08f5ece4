"""ELF loader: the bundled guest loads; every kind of bad image is refused with one clear line."""

from __future__ import annotations

import struct

import pytest
from elftools.elf.elffile import ELFFile

from pyvmm.loader import LoaderError, load_elf, read_elf
from pyvmm.memory import GuestMemory
from pyvmm.paravirt.abi import Layout

RESERVED = Layout.RESERVED_END


@pytest.fixture
def mem():
    m = GuestMemory(16 << 20)
    yield m
    m.close()


def _elf(segments, entry=0x200000, machine=62, etype=2, eclass=2) -> bytes:
    """A minimal ELF64 with the given (paddr, filesz, memsz, flags, data) segments."""
    phoff = 64
    data_off = phoff + 56 * len(segments)
    ident = b"\x7fELF" + bytes([eclass, 1, 1]) + bytes(9)
    ehdr = struct.pack(
        "<16sHHIQQQIHHHHHH", ident, etype, machine, 1, entry, phoff, 0, 0, 64, 56, len(segments), 0, 0, 0
    )
    phdrs = b""
    blobs = b""
    for paddr, filesz, memsz, flags, data in segments:
        phdrs += struct.pack("<IIQQQQQQ", 1, flags, data_off + len(blobs), paddr, paddr, filesz, memsz, 0x1000)
        blobs += data
    return ehdr + phdrs + blobs


CODE = (0x200000, 4, 0x2000, 5, b"\xf4\xf4\xf4\xf4")


def _write(tmp_path, blob, name="g.elf"):
    p = tmp_path / name
    p.write_bytes(blob)
    return p


def test_minimal_elf_loads_and_zero_fills_bss(tmp_path, mem):
    mem.write(0x200004, b"\xff" * 8)  # BSS must be zeroed even over stale bytes
    loaded = load_elf(_write(tmp_path, _elf([CODE])), mem, reserved_end=RESERVED)
    assert loaded.entry == 0x200000
    assert mem.read(0x200000, 4) == b"\xf4" * 4
    assert mem.read(0x200004, 8) == bytes(8)


def test_bundled_guest_agrees_with_pyelftools(guest_kernel, mem):
    loaded = load_elf(guest_kernel, mem, reserved_end=RESERVED)
    with open(guest_kernel, "rb") as f:
        elf = ELFFile(f)
        ref = [
            (s["p_paddr"], s["p_memsz"], s["p_filesz"])
            for s in elf.iter_segments()
            if s["p_type"] == "PT_LOAD" and s["p_memsz"]
        ]
        assert loaded.entry == elf["e_entry"]
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]:
                assert mem.read(seg["p_paddr"], seg["p_filesz"]) == seg.data()
    assert [(s.gpa, s.memsz, s.filesz) for s in loaded.segments] == ref
    assert loaded.symbol("kmain") is not None
    assert loaded.symbol("_start") == loaded.entry
    assert loaded.symbol("no_such_symbol") is None


BAD = {
    "not-elf": (b"#!/bin/sh\necho hi\n", "not an ELF file"),
    "empty": (b"", "not an ELF file"),
    "truncated-header": (b"\x7fELF\x02\x01\x01" + bytes(20), "truncated ELF header"),
    "32-bit": (_elf([CODE], eclass=1), "not a 64-bit ELF"),
    "wrong-machine": (_elf([CODE], machine=183), "wrong machine"),
    "shared-object": (_elf([CODE], etype=3), "not a statically linked executable"),
    "truncated-segment": (_elf([CODE])[:-2], "truncated"),
    "in-reserved": (_elf([(0x1000, 4, 4, 5, b"\x90" * 4)], entry=0x1000), "VMM-reserved"),
    "outside-ram": (_elf([(0x2000000, 4, 4, 5, b"\x90" * 4)], entry=0x2000000), "does not fit in guest memory"),
    "overlap": (
        _elf([CODE, (0x201000, 4, 4, 6, b"\x00" * 4)]),
        "overlap",
    ),
    "entry-outside": (_elf([CODE], entry=0x300000), "entry point"),
    "entry-in-data": (_elf([(0x200000, 4, 4, 6, b"\x00" * 4)]), "entry point"),
    "filesz-gt-memsz": (_elf([(0x200000, 8, 4, 5, b"\x90" * 8)]), "file size larger"),
    "no-segments": (_elf([]), "no program headers"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_images_are_refused(tmp_path, mem, case):
    blob, message = BAD[case]
    with pytest.raises(LoaderError) as e:
        load_elf(_write(tmp_path, blob), mem, reserved_end=RESERVED)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(LoaderError, match="no such file"):
        read_elf(tmp_path / "absent.elf")
    with pytest.raises(LoaderError, match="is a directory"):
        read_elf(tmp_path)


def test_zeroed_memory_gets_no_bss_writes(tmp_path, mem):
    """``zeroed=True`` (fresh guest RAM, as the machine loads into) writes nothing past filesz."""
    mem.write(0x200004, b"\xff" * 8)  # a stale byte would survive: proof that nothing was written
    load_elf_image = read_elf(_write(tmp_path, _elf([CODE])))
    load_elf_image.load(mem, reserved_end=RESERVED, zeroed=True)
    assert mem.read(0x200000, 4) == b"\xf4" * 4
    assert mem.read(0x200004, 8) == b"\xff" * 8
