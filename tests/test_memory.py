"""GuestMemory: the one checked accessor for guest-physical ranges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvmm.memory import GuestMemory, GuestMemoryError, parse_size

SIZE = 1 << 20
U64 = (1 << 64) - 1


@pytest.fixture(scope="module")
def mem():
    m = GuestMemory(SIZE)
    yield m
    m.close()


def test_read_write_roundtrip(mem):
    mem.write(0x1000, b"hello")
    assert mem.read(0x1000, 5) == b"hello"
    mem.write_u64(0x2000, 0x1122334455667788)
    assert mem.read_u64(0x2000) == 0x1122334455667788
    assert mem.read(0x2000, 1) == b"\x88"


def test_edges(mem):
    mem.write(SIZE - 4, b"tail")
    assert mem.read(SIZE - 4, 4) == b"tail"
    assert mem.read(SIZE, 0) == b""
    with pytest.raises(GuestMemoryError):
        mem.read(SIZE - 3, 4)
    with pytest.raises(GuestMemoryError):
        mem.read(SIZE + 1, 0)


@pytest.mark.parametrize(
    ("gpa", "length"),
    [(U64, 2), (U64 - 0xFFF, 0x2000), (0x1000, U64), (1 << 63, 1 << 63), (SIZE, 1), (-1, 1), (0, -1)],
)
def test_overflowing_and_outside_ranges_are_rejected(mem, gpa, length):
    with pytest.raises(GuestMemoryError) as e:
        mem.check(gpa, length)
    assert e.value.errno == 14


@given(gpa=st.integers(0, U64), length=st.integers(0, U64))
def test_check_agrees_with_exact_arithmetic(mem, gpa, length):
    inside = gpa + length <= SIZE
    try:
        mem.check(gpa, length)
        assert inside
    except GuestMemoryError:
        assert not inside


def test_view_is_zero_copy(mem):
    v = mem.view(0x3000, 4)
    v[:] = b"abcd"
    v.release()
    assert mem.read(0x3000, 4) == b"abcd"


def test_read_cstr_clips_to_ram(mem):
    mem.write(SIZE - 3, b"xyz")
    assert mem.read_cstr(SIZE - 3, 100) == b"xyz"


@pytest.mark.parametrize(("text", "size"), [("64M", 64 << 20), ("1G", 1 << 30), ("512MiB", 512 << 20), ("4096", 4096)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "12X", "-1M", "1.5G", "M"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)
