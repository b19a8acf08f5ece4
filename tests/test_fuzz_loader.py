"""Fuzz the ELF loader with mutations of the bundled guest: byte flips, truncations and
corrupted header fields. Each image is refused with a one-line LoaderError or loads with
segments that satisfy the loader's invariants; no other exception ever escapes."""

from __future__ import annotations

import itertools
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvmm.loader import LoaderError, read_elf
from pyvmm.memory import GuestMemory
from pyvmm.paravirt.abi import Layout

from .fuzz import fuzz_settings, report

MEMORY = 16 << 20
U64 = (1 << 64) - 1
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
# ELF header fields: (offset, size)
EHDR_FIELDS = {
    "e_ident_class": (4, 1),
    "e_ident_data": (5, 1),
    "e_type": (16, 2),
    "e_machine": (18, 2),
    "e_entry": (24, 8),
    "e_phoff": (32, 8),
    "e_phentsize": (54, 2),
    "e_phnum": (56, 2),
}
PHDR_FIELDS = {
    "p_type": (0, 4),
    "p_flags": (4, 4),
    "p_offset": (8, 8),
    "p_vaddr": (16, 8),
    "p_paddr": (24, 8),
    "p_filesz": (32, 8),
    "p_memsz": (40, 8),
}
_counts = {"cases": 0, "refused": 0, "loaded": 0}


@pytest.fixture(scope="module")
def original(guest_kernel) -> bytes:
    return guest_kernel.read_bytes()


@pytest.fixture(scope="module")
def workspace():
    mem = GuestMemory(MEMORY)
    with tempfile.TemporaryDirectory(prefix="pyvmm-fuzz-") as d:
        yield mem, Path(d) / "guest.elf"
    mem.close()
    report("loader", _counts["cases"], refused=_counts["refused"], loaded=_counts["loaded"])


def _field_values(size: int) -> st.SearchStrategy[int]:
    top = (1 << (8 * size)) - 1
    edges = [0, 1, 2, 0x38, 0x40, Layout.RESERVED_END, MEMORY - 1, MEMORY, 1 << 52, top >> 1, top - 1, top]
    return st.one_of(st.sampled_from([e & top for e in edges]), st.integers(0, top))


@st.composite
def mutations(draw, image: bytes) -> bytes:
    """One to four mutations of *image*."""
    data = bytearray(image)
    (_, _, _, _, _, phoff, _, _, _, _, phnum, _, _, _) = _EHDR.unpack_from(image)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "flip-header", "truncate", "ehdr", "phdr", "splice"]))
        if not data:
            break
        if kind == "flip":
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "flip-header":
            i = draw(st.integers(0, min(len(data), phoff + phnum * _PHDR.size) - 1))
            data[i] = draw(st.integers(0, 255))
        elif kind == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind == "ehdr":
            off, size = EHDR_FIELDS[draw(st.sampled_from(sorted(EHDR_FIELDS)))]
            if off + size <= len(data):
                data[off : off + size] = draw(_field_values(size)).to_bytes(size, "little")
        elif kind == "phdr":
            off, size = PHDR_FIELDS[draw(st.sampled_from(sorted(PHDR_FIELDS)))]
            at = phoff + draw(st.integers(0, max(phnum - 1, 0))) * _PHDR.size + off
            if at + size <= len(data):
                data[at : at + size] = draw(_field_values(size)).to_bytes(size, "little")
        else:  # splice random bytes somewhere
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


def _check_loaded(image_bytes: bytes, mem: GuestMemory, loaded) -> None:
    segs = sorted(loaded.segments)
    for s in segs:
        assert Layout.RESERVED_END <= s.gpa and s.end <= mem.size, s
        assert s.filesz <= s.memsz, s
    for a, b in itertools.pairwise(segs):
        assert a.end <= b.gpa, (a, b)
    assert any(s.executable and s.gpa <= loaded.entry < s.gpa + s.filesz for s in segs), hex(loaded.entry)


@fuzz_settings()
@given(data=st.data())
def test_mutated_guest_images(original, workspace, data):
    mem, path = workspace
    blob = data.draw(mutations(original))
    path.write_bytes(blob)
    _counts["cases"] += 1
    try:
        image = read_elf(path)
        loaded = image.load(mem, reserved_end=Layout.RESERVED_END)
    except LoaderError as e:
        message = str(e)
        assert message and "\n" not in message, repr(message)
        assert message.startswith(str(path)), message
        _counts["refused"] += 1
        return
    _check_loaded(blob, mem, loaded)
    for seg, offset in image.segments:  # what was loaded is what the file holds
        assert mem.read(seg.gpa, seg.filesz) == blob[offset : offset + seg.filesz]
    _counts["loaded"] += 1
